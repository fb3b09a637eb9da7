# neti: `make` builds bin/neti (with the preview window; `make headless` for a
# build that links no X11); `make test` runs every check CI runs;
# `make demo` sets up a fresh Debian machine and generates with the built-in model.
GO       ?= go
GLSLC    ?= glslc
SHADERS  := $(wildcard shaders/*.comp)
# Sources that include storage.glsl also build an fp16-capable _h variant.
HALF_SRC := $(shell grep -l '"storage.glsl"' shaders/*.comp)
SPV      := $(SHADERS:.comp=.spv) $(HALF_SRC:.comp=_h.spv)
export VK_ICD_FILENAMES ?= $(firstword $(wildcard /usr/share/vulkan/icd.d/lvp_icd.x86_64.json))

.PHONY: all build headless shaders test bench demo demo-train deps vet fmt clean

all: build

# The preview window (--preview, neti view) needs the build tag `preview`;
# glfw's tag `vulkan` links libvulkan instead of libGL at build time (both
# are only needed to link: GLFW loads them at run time, and our binding
# dlopens libvulkan). The binary then needs libX11 to start.
PREVIEW_TAGS := preview,vulkan
XVFB := xvfb-run -a -s "-screen 0 1280x720x24"

build:
	$(GO) build -tags $(PREVIEW_TAGS) -o bin/neti ./cmd/neti

# Headless: links libc only, never needs X; --preview says it was not built.
headless:
	$(GO) build -o bin/neti ./cmd/neti

# Recompile every shader; the .spv files are committed and embedded.
shaders: $(SPV)

shaders/%.spv: shaders/%.comp $(wildcard shaders/*.glsl)
	cd shaders && $(GLSLC) -O --target-env=vulkan1.2 -I . $(notdir $<) -o $(notdir $@)

shaders/%_h.spv: shaders/%.comp $(wildcard shaders/*.glsl)
	cd shaders && $(GLSLC) -O --target-env=vulkan1.2 -DHALF -I . $(notdir $<) -o $(notdir $@)

deps:
	@scripts/install-deps.sh

vet:
	$(GO) vet ./...
	$(GO) vet -tags $(PREVIEW_TAGS) ./vk/ ./internal/preview/ ./cmd/neti/
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# The whole suite: dependencies, formatting and vet, the tests with the
# Vulkan validation layer on (any message fails), and short fuzz runs.
test: deps vet
	# -timeout: a fresh machine compiles every pipeline once (graph: about
	# 6.5 min with an empty Mesa shader cache on 2 cores, near the 10 min default).
	$(GO) test -count=1 -timeout 20m ./...
	$(GO) test -count=1 -race ./vk/
	GOEXPERIMENT=cgocheck2 $(GO) test -count=1 ./vk/
	# The preview window on a virtual X server: screenshots of the window
	# must show the image pixel for pixel.
	$(XVFB) $(GO) test -count=1 -tags $(PREVIEW_TAGS) ./internal/preview/
	$(XVFB) $(GO) test -count=1 -tags $(PREVIEW_TAGS) -run 'Preview|View' ./cmd/neti/
	@scripts/fuzz.sh

# SD 1.5's 512x512 UNet step runs where its plan fits the device (random
# weights written to a temp folder); NETI_BENCH_SD15=0 skips it.
bench: deps
	NETI_BENCH_SD15=$${NETI_BENCH_SD15:-1} $(GO) test -run '^$$' -bench . -benchtime 3x ./...

demo: deps build
	@scripts/demo.sh

# Trains a NeTI concept (the held-out star of the built-in model) on the
# device with a progress bar. STEPS=400 BATCH=8 is the recipe the official
# NeTI was measured with; a CPU device needs a long time for that.
STEPS ?= 50
BATCH ?= 2
demo-train: deps build
	mkdir -p demo-out
	bin/neti train --images testdata/fixtures/sd-shapes/concept-star --token "<star>" --init-token shape \
		--steps $(STEPS) --batch-size $(BATCH) --grad-accum 1 --lr 1e-3 --seed 1 -o demo-out/star.neti
	bin/neti generate --concept demo-out/star.neti -p "a photo of a <star> on a blue background" --seed 1 -o demo-out/star.png

clean:
	rm -rf bin demo-out

# neti: `make` builds bin/neti; `make test` runs every check CI runs;
# `make demo` sets up a fresh Debian machine and generates with the built-in model.
GO       ?= go
GLSLC    ?= glslc
SHADERS  := $(wildcard shaders/*.comp)
SPV      := $(SHADERS:.comp=.spv)
export VK_ICD_FILENAMES ?= $(firstword $(wildcard /usr/share/vulkan/icd.d/lvp_icd.x86_64.json))

.PHONY: all build shaders test bench demo demo-train deps vet fmt clean

all: build

build:
	$(GO) build -o bin/neti ./cmd/neti

# Recompile every shader; the .spv files are committed and embedded.
shaders: $(SPV)

shaders/%.spv: shaders/%.comp $(wildcard shaders/*.glsl)
	cd shaders && $(GLSLC) -O --target-env=vulkan1.2 -I . $(notdir $<) -o $(notdir $@)

deps:
	@scripts/install-deps.sh

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# The whole suite: dependencies, formatting and vet, the tests with the
# Vulkan validation layer on (any message fails), and short fuzz runs.
test: deps vet
	$(GO) test -count=1 ./...
	$(GO) test -count=1 -race ./vk/
	GOEXPERIMENT=cgocheck2 $(GO) test -count=1 ./vk/
	@scripts/fuzz.sh

bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 3x ./...

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

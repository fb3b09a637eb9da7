#!/bin/bash
# Runs on a lent GPU machine (the device tool) over a copy of the working
# tree: .gl/ holds the Vulkan loader (and .gl/vl the validation layer) .deb
# files, .gpubin.tar.xz the neti binary and the package test binaries, built
# here with scripts/gpu-pack.sh (the machine has no Go). Results go to $OUT.
# Usage: scripts/gpu-check.sh [phase...]  (phases: tests train bench sd15 profile half)
set -u
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
LOG=$OUT/log.txt
R=$(pwd)
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
mkdir -p /tmp/vl && dpkg -x .gl/vl/*.deb /tmp/vl
export VK_LAYER_PATH=/tmp/vl/usr/share/vulkan/explicit_layer.d
export LD_LIBRARY_PATH=/tmp/vl/usr/lib/x86_64-linux-gnu
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
	export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
export REQUIRE_VULKAN=1
B=/tmp/b
mkdir -p $B && xz -dc .gpubin.tar.xz | tar xf - -C $B
T0=$(date +%s)
stamp() { echo "=== [$(( $(date +%s) - T0 ))s] $*" | tee -a "$LOG"; }
stamp devices
$B/neti devices >>"$LOG" 2>&1
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,memory.total --format=csv >>"$LOG" 2>&1

train() { # name images init
	stamp "train $1"
	t=$SECONDS; timeout 100 $B/neti train --images "$2" --token "<$1>" --init-token "$3" \
		--steps 400 --batch-size 8 --grad-accum 1 --lr 1e-3 --seed 1 --save-every 0 --compact -o "$OUT/$1.neti" 2>"$OUT/train-$1.err"
	echo "rc=$? train $1: $((SECONDS-t)) s wall" >>"$LOG"; tr '\r' '\n' <"$OUT/train-$1.err" | tail -4 >>"$LOG"; rm -f "$OUT/train-$1.err"
}

phase_train() {
	mkdir -p /tmp/img
	train star testdata/fixtures/sd-shapes/concept-star shape
	train moon testdata/concepts/moon shape
	# Same seed, same device: the same bytes as the committed plugins.
	for c in star moon; do
		if cmp -s "$OUT/$c.neti" "examples/concepts/$c.neti"; then echo "$c.neti: identical to the committed file" >>"$LOG"; else echo "$c.neti: DIFFERS from the committed file" >>"$LOG"; fi
	done
	stamp generate
	for s in 1000 1001 1002 1003; do
		$B/neti generate --quiet -p "a photo of a <star>" --concept "$OUT/star.neti" --seed $s -o /tmp/img/star-$s.png >>"$LOG" 2>&1
		$B/neti generate --quiet -p "a <moon> on a red background" --concept "$OUT/moon.neti" --seed $s -o /tmp/img/moon-$s.png >>"$LOG" 2>&1
		$B/neti generate --quiet -p "a <star> and a <moon> on a blue background" --concept "$OUT/star.neti" --concept "$OUT/moon.neti" --seed $s -o /tmp/img/both-$s.png >>"$LOG" 2>&1
	done
	tar cf "$OUT/images.tar" -C /tmp/img .
}

phase_tests() {
	for p in vk graph internal/preview model/clip model/unet model/vae model/sd model/neti model/pipeline; do
		n=$(echo $p | tr / _)
		stamp "test $p" >>"$OUT/tests.txt"
		(cd "$R/$p" && timeout 120 $B/$n.test -test.count=1 2>&1 | tail -25) >>"$OUT/tests.txt"
	done
}

phase_bench() {
	stamp "bench graph"
	(cd "$R/graph" && timeout 120 $B/graph.test -test.run '^$' -test.bench "${BENCH:-MatMul|Conv2d|Attention}" -test.benchtime 10x 2>&1) >>"$OUT/bench.txt"
}

phase_sd15() {
	stamp "sd15 init"
	timeout 90 $B/neti model init --config sd15 --out /tmp/sd15 >>"$LOG" 2>&1
	stamp "sd15 bench"
	(cd "$R/model/sd" && NETI_BENCH_SD15_DIR=/tmp/sd15 timeout 150 $B/model_sd.test -test.run '^$' -test.bench 'UNetStep|Plan512' -test.benchtime 10x -test.v 2>&1 | grep -v '^=== ') >>"$OUT/bench.txt"
	for h in "" --no-half; do
		stamp "sd15 generate 512 $h"
		t=$SECONDS; timeout 120 $B/neti generate $h -m /tmp/sd15 -p "a photo of a cat" --steps 25 --seed 1 -o /tmp/sd15.png 2>&1 | tr '\r' '\n' | tail -2 >>"$LOG"
		echo "generate sd15 512 25 steps $h: $((SECONDS-t)) s wall" >>"$LOG"
	done
	stamp "sd15 train plan"
	timeout 60 $B/neti train --dry-run -m /tmp/sd15 --images testdata/fixtures/sd-shapes/concept-star --token "<star>" --init-token a --resolution 512 --batch-size 2 >>"$LOG" 2>&1
	for ck in off on; do
		stamp "sd15 train 512 checkpointing $ck"
		t=$SECONDS; timeout 150 $B/neti train -m /tmp/sd15 --images testdata/fixtures/sd-shapes/concept-star --token "<star>" --init-token a \
			--resolution 512 --steps 6 --batch-size 2 --grad-accum 1 --save-every 0 --checkpointing $ck -o /tmp/sd15-star.neti 2>&1 | tr '\r' '\n' | grep -v '^$' | tail -3 >>"$LOG"
		echo "train sd15 512 6 steps checkpointing $ck: $((SECONDS-t)) s wall" >>"$LOG"
	done
}

# The SD 1.5 UNet step's GPU time per op and shape (NETI_PROFILE_DETAIL),
# and a timed fp16 generation.
phase_profile() {
	stamp "sd15 init"
	[ -d /tmp/sd15 ] || timeout 90 $B/neti model init --config sd15 --out /tmp/sd15 >>"$LOG" 2>&1
	stamp "sd15 profile"
	(cd "$R/model/sd" && NETI_PROFILE_DETAIL=1 NETI_BENCH_SD15_DIR=/tmp/sd15 timeout 150 $B/model_sd.test -test.run '^$' -test.bench 'UNetStep/sd15-512/f16' -test.benchtime 5x -test.v 2>&1 | grep -v '^=== ') >>"$OUT/profile.txt"
	stamp "sd15 generate 512"
	t=$SECONDS; timeout 120 $B/neti generate -m /tmp/sd15 -p "a photo of a cat" --steps 25 --seed 1 -o /tmp/sd15.png 2>&1 | tr '\r' '\n' | tail -2 >>"$LOG"
	echo "generate sd15 512 25 steps: $((SECONDS-t)) s wall" >>"$LOG"
}

# fp16 storage: the kernels' tests (plain and _h variants) and the SD 1.5
# UNet step and generation with fp16 weights and activations, fp16 weights
# only, and fp32.
phase_half() {
	for p in graph model/sd; do
		n=$(echo $p | tr / _)
		stamp "test $p" >>"$OUT/tests.txt"
		(cd "$R/$p" && timeout 150 $B/$n.test -test.count=1 2>&1 | tail -25) >>"$OUT/tests.txt"
	done
	stamp "sd15 init"
	[ -d /tmp/sd15 ] || timeout 90 $B/neti model init --config sd15 --out /tmp/sd15 >>"$LOG" 2>&1
	stamp "sd15 bench"
	(cd "$R/model/sd" && NETI_BENCH_SD15_DIR=/tmp/sd15 timeout 180 $B/model_sd.test -test.run '^$' -test.bench 'UNetStep/sd15|Plan512' -test.benchtime 10x 2>&1 | grep -v '^=== ') >>"$OUT/bench.txt"
	for h in "" --no-half; do
		stamp "sd15 generate 512 $h"
		t=$SECONDS; timeout 120 $B/neti generate $h -m /tmp/sd15 -p "a photo of a cat" --steps 25 --seed 1 -o /tmp/sd15.png 2>&1 | tr '\r' '\n' | tail -2 >>"$LOG"
		echo "generate sd15 512 25 steps $h: $((SECONDS-t)) s wall" >>"$LOG"
	done
}

# Training and the tests share the GPU (timings of neither are reported from
# this part); the benchmarks then run alone.
if [ $# -eq 0 ]; then
	phase_tests & tp=$!
	phase_train
	wait $tp
	phase_bench
	phase_sd15
else
	for ph in "$@"; do phase_$ph; done
fi
stamp done

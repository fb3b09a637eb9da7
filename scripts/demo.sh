#!/bin/sh
# The README's first command: the main job on the built-in model. It shows
# plain generation, then the concept plugins that neti itself trained on the
# built-in model's held-out shapes (examples/concepts: a star and a crescent
# moon, `make demo-train` re-trains the star), one at a time, with a coarser
# nested-dropout truncation, and two concepts in one prompt.
set -e
BIN=${BIN:-bin/neti}
OUT=${OUT:-demo-out}
C=${CONCEPTS:-examples/concepts}
# 15 DPM++ steps keep the demo to a few minutes on a CPU (the model's
# README recommends 25; the images barely change).
S="--steps ${STEPS:-15}"
mkdir -p "$OUT"
"$BIN" devices
"$BIN" generate $S -p "a red circle on a blue background" --seed 1 -o "$OUT/red-circle.png"
"$BIN" generate $S -p "a yellow triangle on a green background" --seed 2 -o "$OUT/yellow-triangle.png"
"$BIN" inspect "$C/star.neti"
"$BIN" generate $S --concept "$C/star.neti" -p "a photo of a <star>" --seed 1000 -o "$OUT/star.png"
"$BIN" generate $S --concept "$C/star.neti:trunc=8" -p "a photo of a <star>" --seed 1000 -o "$OUT/star-trunc8.png"
"$BIN" generate $S --concept "$C/moon.neti" -p "a <moon> on a red background" --seed 1001 -o "$OUT/moon.png"
"$BIN" generate $S --concept "$C/star.neti" --concept "$C/moon.neti" -p "a <star> and a <moon> on a blue background" --seed 1002 -o "$OUT/star-and-moon.png"
echo "demo: images in $OUT/"

#!/bin/sh
# The README's first command: the main job on the built-in model.
set -e
BIN=${BIN:-bin/neti}
OUT=${OUT:-demo-out}
mkdir -p "$OUT"
"$BIN" devices
if "$BIN" help 2>/dev/null | grep -q '^  generate'; then
	"$BIN" generate -p "a red circle on a blue background" --seed 1 -o "$OUT/red-circle.png"
	"$BIN" generate -p "a yellow triangle on a green background" --seed 2 -o "$OUT/yellow-triangle.png"
	echo "demo: images in $OUT/"
else
	"$BIN" tokenize "a red circle on a blue background"
fi

#!/bin/sh
# Builds what scripts/gpu-check.sh runs on a machine without Go: the neti
# binary and the GPU packages' test binaries, stripped, in one xz archive
# (tar + a large xz dictionary shares the embedded model between binaries).
set -e
d=$(mktemp -d)
for p in vk graph internal/preview model/clip model/unet model/vae model/sd model/neti model/pipeline; do
	go test -c -ldflags='-s -w' -o "$d/$(echo $p | tr / _).test" ./$p
done
go build -ldflags='-s -w' -o "$d/neti" ./cmd/neti
tar cf - -C "$d" . | xz -T1 -9 --lzma2=preset=9,dict=128MiB >.gpubin.tar.xz
rm -rf "$d"
ls -la .gpubin.tar.xz

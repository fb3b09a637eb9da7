#!/bin/sh
# Regenerates the test kernels' SPIR-V (committed, so tests need no glslc).
set -e
cd "$(dirname "$0")"
for f in saxpy matmul inc; do
	glslc -O --target-env=vulkan1.2 "$f.comp" -o "$f.spv"
	spirv-val --target-env vulkan1.2 "$f.spv"
done

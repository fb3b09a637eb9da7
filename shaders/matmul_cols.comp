#version 450
// The fp32-weight variant; the body is matmul_cols.glsl.
#include "matmul_cols.glsl"

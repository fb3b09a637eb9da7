#version 450
// The fp32-weight variant; the body is matmul_rows.glsl.
#include "matmul_rows.glsl"

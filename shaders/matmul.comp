#version 450
// The fp32-weight variant; the body is matmul.glsl.
#include "matmul.glsl"

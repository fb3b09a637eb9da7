#version 450
// The fp32-weight variant; the body is matmul_sg.glsl.
#include "matmul_sg.glsl"

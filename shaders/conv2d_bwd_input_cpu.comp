#version 450
// The fp32-weight variant; the body is conv2d_bwd_input_cpu.glsl.
#include "conv2d_bwd_input_cpu.glsl"

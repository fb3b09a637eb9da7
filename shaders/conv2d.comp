#version 450
// The fp32-weight variant; the body is conv2d.glsl.
#include "conv2d.glsl"

#version 450
#include "storage.glsl"
// The body is conv2d_cpu.glsl; its bindings may hold float16 in the _h variant
// (storage.glsl).
#include "conv2d_cpu.glsl"

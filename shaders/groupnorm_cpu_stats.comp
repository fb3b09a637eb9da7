#version 450
#include "storage.glsl"
// The body is groupnorm_cpu.glsl; its bindings may hold float16 in the _h
// variant (storage.glsl).
#define GN_STATS
#include "groupnorm_cpu.glsl"

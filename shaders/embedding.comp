#version 450
// The fp32-weight variant; the body is embedding.glsl.
#include "embedding.glsl"

#version 450
// The fp16-weight variant (weights stored as float16, math in fp32).
#extension GL_EXT_shader_16bit_storage : require
#define WEIGHT_F16 1
#include "matmul_sg.glsl"

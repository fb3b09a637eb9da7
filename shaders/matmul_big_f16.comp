#version 450
// 128x128 tiles with the weight operand stored as float16.
#extension GL_EXT_shader_16bit_storage : require
#define WEIGHT_F16 1
#define TM 8
#include "matmul.glsl"

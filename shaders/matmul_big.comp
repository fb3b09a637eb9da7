#version 450
// 128x128 tiles (TM 8) for large problems on GPUs; the body is matmul.glsl.
#define TM 8
#include "matmul.glsl"

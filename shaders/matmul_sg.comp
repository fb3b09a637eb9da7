#version 450
#include "storage.glsl"
// The body is matmul_sg.glsl. storage.glsl types each binding: float,
// or float16 in the _h variant where HALF_MASK says so.
#include "matmul_sg.glsl"

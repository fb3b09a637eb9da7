// weight.glsl: the element type of a kernel's weight operand. WEIGHT_F16
// (set by the kernel's _f16 variant, which also enables
// GL_EXT_shader_16bit_storage) stores it as float16; every read converts to
// float, so arithmetic and accumulation stay fp32 (graph/precision.go).
#ifdef WEIGHT_F16
#define WTYPE float16_t
#else
#define WTYPE float
#endif

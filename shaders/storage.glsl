// storage.glsl: the element type of every storage binding of a kernel.
//
// A kernel declares its buffers with these macros instead of plain blocks
// and reads and writes them only through the accessors they define:
//
//   RBUF(b, x)   binding b, read-only:  float x_ld(uint i)
//   WBUF(b, y)   binding b, write-only: void  y_st(uint i, float v)
//   RBUF4(b, x)  RBUF plus vec4 x_ld4(uint i), i counting vec4s
//   WBUF4(b, y)  WBUF plus void y_st4(uint i, vec4 v)
//
// Built plainly every binding is float. Built with -DHALF (the kernel's _h
// variant: the Makefile and shaders.Variants build one for every source
// that includes this file) each binding is declared twice, as float and as
// float16, on the same binding number, and bit b of the specialization
// constant HALF_MASK (constant_id 100) says which one binding b holds. The
// driver folds the choice when it builds the pipeline, so an accessor is one
// load or store. Loads convert to float and stores round from float: all
// arithmetic and accumulation stay fp32 whatever the storage
// (graph/precision.go decides which tensors are stored as float16).
//
// Include it right after #version, before any declaration.
#ifdef HALF
#extension GL_EXT_shader_16bit_storage : require
layout(constant_id = 100) const uint HALF_MASK = 0u;
#define HALF_AT(b) ((HALF_MASK & (1u << (b))) != 0u)
#define SDECL_(q, b, name) \
    layout(std430, binding = b) q buffer name##_F32 { float name##_f[]; }; \
    layout(std430, binding = b) q buffer name##_F16 { float16_t name##_h[]; };
#define SDECL4_(q, b, name) \
    layout(std430, binding = b) q buffer name##_F32x4 { vec4 name##_f4[]; }; \
    layout(std430, binding = b) q buffer name##_F16x4 { f16vec4 name##_h4[]; };
#define SLD_(b, name) \
    float name##_ld(uint i) { return HALF_AT(b) ? float(name##_h[i]) : name##_f[i]; }
#define SST_(b, name) \
    void name##_st(uint i, float v) { if (HALF_AT(b)) name##_h[i] = float16_t(v); else name##_f[i] = v; }
#define SLD4_(b, name) \
    vec4 name##_ld4(uint i) { return HALF_AT(b) ? vec4(name##_h4[i]) : name##_f4[i]; }
#define SST4_(b, name) \
    void name##_st4(uint i, vec4 v) { if (HALF_AT(b)) name##_h4[i] = f16vec4(v); else name##_f4[i] = v; }
#else
#define SDECL_(q, b, name) \
    layout(std430, binding = b) q buffer name##_F32 { float name##_f[]; };
#define SDECL4_(q, b, name) \
    layout(std430, binding = b) q buffer name##_F32x4 { vec4 name##_f4[]; };
#define SLD_(b, name) \
    float name##_ld(uint i) { return name##_f[i]; }
#define SST_(b, name) \
    void name##_st(uint i, float v) { name##_f[i] = v; }
#define SLD4_(b, name) \
    vec4 name##_ld4(uint i) { return name##_f4[i]; }
#define SST4_(b, name) \
    void name##_st4(uint i, vec4 v) { name##_f4[i] = v; }
#endif

#define RBUF(b, name) SDECL_(readonly, b, name) SLD_(b, name)
#define WBUF(b, name) SDECL_(writeonly, b, name) SST_(b, name)
#define RBUF4(b, name) RBUF(b, name) SDECL4_(readonly, b, name) SLD4_(b, name)
#define WBUF4(b, name) WBUF(b, name) SDECL4_(writeonly, b, name) SST4_(b, name)

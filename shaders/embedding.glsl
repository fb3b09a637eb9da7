// embedding: out[r, :] = table[ids[r], :]. ids are whole numbers stored as
// float; an id outside the table (or not whole) yields a row of NaN so that
// a bad id can never pass silently.
#include "common.glsl"
layout(local_size_x = 256) in;
// ids stay float32 (graph: embeddingOp.halfIn): float16 holds whole
// numbers exactly only up to 2048.
RBUF(0, table)
RBUF(1, ids)
WBUF(2, o)
layout(push_constant) uniform P { uint total, vocab, d; } p;

void main() {
    uint i = linearGroup() * 256 + gl_LocalInvocationID.x;
    if (i >= p.total) return;
    uint r = i / p.d, c = i % p.d;
    float id = ids_ld(r);
    if (id < 0.0 || id >= float(p.vocab) || id != floor(id)) {
        o_st(i, uintBitsToFloat(0x7fc00000u));
        return;
    }
    o_st(i, table_ld(uint(id) * p.d + c));
}

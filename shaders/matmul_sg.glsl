// matmul_sg: the same product as matmul.comp for CPU Vulkan devices
// (lavapipe), built like conv2d_cpu.glsl. There every storage-buffer load
// is a loop over the SIMD lanes that costs far more than the arithmetic,
// and a vec4 load costs about what a scalar one does (one trip through the
// lane loop fetches all four components), so this kernel issues as few
// loads per multiply-add as it can: all loads and stores are vec4, which
// is why it needs N and K (and M where A is transposed) to be multiples of
// 4; the recorder falls back to matmul_rows/matmul_cols otherwise.
//
// A workgroup is one subgroup (one SIMD vector on lavapipe) computing RM
// rows x 4*CQ*SG columns of C; each lane owns CQ quads of 4 adjacent
// columns (quad q*SG + lane). K advances by 4 per step. A's RM x 4 values
// of a step are loaded cooperatively, one vec4 per lane and SG rows
// (row-major A: 4 consecutive k of one row; transposed A: 4 consecutive
// rows at one k), and subgroupBroadcast hands them to the others. B's
// 4 x 4 values per quad are 4 vec4 loads (row-major B: the quad at one k;
// transposed B: 4 k of one column). Per step that is RM/SG + 4*CQ loads
// for 16*RM*CQ multiply-adds per lane, and each accumulator takes its 4
// multiply-adds in a row, so the ones that do not fit in registers are
// spilled and reloaded once per 4.
//
// Every loop but the K loop carries [[unroll]]: without it NIR stops
// unrolling once the body grows past its size limit, the accumulator array
// is then indexed dynamically and lives in memory (RM = 64 ran 10x slower
// than RM = 32 for that reason). Rows and columns past the edges read the
// last valid ones and store nothing: no data-dependent exits. No shared
// memory, no barriers.
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_ballot : require
layout(local_size_x_id = 3) in; // one subgroup per workgroup
layout(constant_id = 0) const bool TRANS_A = false;
layout(constant_id = 1) const bool TRANS_B = false;
layout(constant_id = 2) const bool HAS_BIAS = false;
layout(constant_id = 3) const uint SG = 8; // the device's subgroup size
layout(constant_id = 4) const uint RM = 32; // rows per workgroup, a multiple of 4*SG
layout(constant_id = 5) const uint CQ = 1; // column quads per lane
// Buffers are bound at 16-byte aligned offsets (graph/program.go plan), so
// element i*4 of a scalar view is element i of the vec4 (or f16vec4) ones.
RBUF4(0, a)
RBUF4(1, b)
RBUF4(2, bias)
WBUF4(3, c)
layout(push_constant) uniform P { uint M, N, K, strideA, strideB, strideC; } p;

const uint NA = RM / SG; // row-major A: loads per lane and step
const uint NT = RM / (4 * SG); // transposed A: loads per lane and k

void main() {
    uint lane = gl_SubgroupInvocationID;
    uint row0 = gl_WorkGroupID.y * RM;
    uint N4 = p.N / 4, K4 = p.K / 4, M4 = p.M / 4;
    uint baseA = gl_WorkGroupID.z * p.strideA / 4;
    uint baseB = gl_WorkGroupID.z * p.strideB / 4;
    // The lane's column quads: q*SG + lane of the workgroup's CQ*SG.
    uint col4[CQ];
    [[unroll]] for (uint q = 0; q < CQ; q++) col4[q] = (gl_WorkGroupID.x * CQ + q) * SG + lane;

    // The vec4 each lane loads for the subgroup: row-major A, row
    // m*SG+lane's k-quad; transposed A, the row quad m*SG+lane at one k.
    uint aOff[NA];
    [[unroll]] for (uint m = 0; m < NA; m++) {
        if (TRANS_A) aOff[m] = baseA + min(row0 / 4 + (m % NT) * SG + lane, M4 - 1);
        else aOff[m] = baseA + min(row0 + m * SG + lane, p.M - 1) * K4;
    }
    // The lane's B vec4s: row-major B, each column quad at k (stepping N4
    // per k); transposed B, the k-quad of each of its columns.
    uint bOff[CQ][4];
    [[unroll]] for (uint q = 0; q < CQ; q++) {
        uint colc = min(col4[q], N4 - 1);
        [[unroll]] for (uint j = 0; j < 4; j++) {
            if (TRANS_B) bOff[q][j] = baseB + (colc * 4 + j) * K4;
            else bOff[q][j] = baseB + colc;
        }
    }

    vec4 acc[RM][CQ];
    [[unroll]] for (uint i = 0; i < RM; i++) [[unroll]] for (uint q = 0; q < CQ; q++) acc[i][q] = vec4(0.0);

    for (uint k4 = 0; k4 < K4; k4++) {
        // bk[q][kk][j]: B at k = 4*k4+kk, column j of the lane's quad q.
        vec4 bk[CQ][4];
        [[unroll]] for (uint q = 0; q < CQ; q++) {
            if (TRANS_B) {
                vec4 bc[4];
                [[unroll]] for (uint j = 0; j < 4; j++) bc[j] = b_ld4(bOff[q][j] + k4);
                [[unroll]] for (uint kk = 0; kk < 4; kk++) bk[q][kk] = vec4(bc[0][kk], bc[1][kk], bc[2][kk], bc[3][kk]);
            } else {
                [[unroll]] for (uint kk = 0; kk < 4; kk++) bk[q][kk] = b_ld4(bOff[q][0] + (k4 * 4 + kk) * N4);
            }
        }
        if (TRANS_A) {
            [[unroll]] for (uint kk = 0; kk < 4; kk++) {
                [[unroll]] for (uint m = 0; m < NT; m++) {
                    vec4 av = a_ld4(aOff[m] + (k4 * 4 + kk) * M4);
                    [[unroll]] for (uint s = 0; s < SG; s++) {
                        vec4 r = subgroupBroadcast(av, s); // rows (m*SG+s)*4 + 0..3
                        uint i = (m * SG + s) * 4;
                        [[unroll]] for (uint q = 0; q < CQ; q++) {
                            acc[i][q] += r.x * bk[q][kk];
                            acc[i + 1][q] += r.y * bk[q][kk];
                            acc[i + 2][q] += r.z * bk[q][kk];
                            acc[i + 3][q] += r.w * bk[q][kk];
                        }
                    }
                }
            }
        } else {
            [[unroll]] for (uint m = 0; m < NA; m++) {
                vec4 av = a_ld4(aOff[m] + k4);
                [[unroll]] for (uint s = 0; s < SG; s++) {
                    vec4 r = subgroupBroadcast(av, s); // row m*SG+s, k = 4*k4 + 0..3
                    uint i = m * SG + s;
                    [[unroll]] for (uint q = 0; q < CQ; q++) {
                        acc[i][q] += r.x * bk[q][0];
                        acc[i][q] += r.y * bk[q][1];
                        acc[i][q] += r.z * bk[q][2];
                        acc[i][q] += r.w * bk[q][3];
                    }
                }
            }
        }
    }

    uint baseC = gl_WorkGroupID.z * p.strideC / 4;
    [[unroll]] for (uint q = 0; q < CQ; q++) {
        if (col4[q] < N4) {
            vec4 bv = HAS_BIAS ? bias_ld4(col4[q]) : vec4(0.0);
            [[unroll]] for (uint i = 0; i < RM; i++) {
                if (row0 + i < p.M) c_st4(baseC + (row0 + i) * N4 + col4[q], acc[i][q] + bv);
            }
        }
    }
}

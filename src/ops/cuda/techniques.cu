// The seed techniques' ops and the query/key preparation, mirroring ops/cpu (rope.c, xsa.c,
// attn_gate.c, elementwise.c). Parameter gradients sum over tokens in fixed row chunks (reduce.cu).
#include <math.h>

#include <vector>

#include "ops/cuda/cuda_check.h"
#include "ops/cuda/ops_cuda.h"
extern "C" {
#include "ops/ops.h"
}

#define THREADS 256

__device__ static float sigm(float z) { return 1.0f / (1.0f + expf(-z)); }

// ---------------------------------------------------------------- q/k preparation: rmsnorm per head, RoPE, gain

// A group of `lanes` lanes per row (a head of a token; lanes a power of two up to 32, as few as cover
// the row), each lane over whole units of VEC values moved at once: a rotated unit is the VEC pairs
// (j, j + rot / 2) from j = u VEC, a tail unit the VEC passed-through values from rot + (u - hu) VEC
// (hu = rot / 2 / VEC rotated units first). The norm and the rotation in one pass over the row; its sums
// a butterfly within the group. The raw rows (forward's x, backward's dx) are `ld` apart per token: a
// column block of the fused q/k/v projection. A lane past the last row still joins its warp's shuffles.
// (A warp per row with a value per lane ran at a quarter of the memory's rate at the presets' 64.)
struct QkRow {
    int row, sub, t, h, hu, units;
    bool live;
};

template <int VEC> __device__ inline QkRow qk_row(int rows, int T, int nh, int Dh, int rot, int lanes) {
    QkRow q;
    q.row = (int)(((size_t)blockIdx.x * blockDim.x + threadIdx.x) / lanes), q.sub = threadIdx.x % lanes;
    q.live = q.row < rows, q.t = (q.row / nh) % T, q.h = q.row % nh;
    q.hu = rot / 2 / VEC, q.units = q.hu + (Dh - rot) / VEC;
    return q;
}

// The lanes per row for units of VEC values, and the blocks of WARP_ROW_THREADS for `rows` rows
static int qk_lanes(int Dh, int rot, int vec) {
    int units = (rot / 2 + Dh - rot) / vec, lanes = 1;
    while (lanes < units && lanes < 32) lanes *= 2;
    return lanes;
}
static unsigned qk_blocks(int rows, int lanes) { return blocks_for((size_t)rows * lanes, WARP_ROW_THREADS); }

// xn = x rstd (rms norm), out = rope(xn) gain[h]: out and/or its rounding outr (either may be NULL);
// x fp32 or bf16 (the raw projection kept only rounded)
template <class In, int VEC>
__global__ static void qk_prep_fwd(float *out, __nv_bfloat16 *outr, float *rstd, const In *x, int ldx, const float *gain,
                                   const float *cos_t, const float *sin_t, int rows, int T, int nh, int Dh, int rot, float eps,
                                   int lanes) {
    QkRow q = qk_row<VEC>(rows, T, nh, Dh, rot, lanes);
    int half = rot / 2;
    const In *xr = x + (size_t)(q.row / nh) * ldx + (size_t)q.h * Dh;
    double ss = 0;
    for (int u = q.sub; q.live && u < q.units; u += lanes) {
        float a[VEC];
        int j = u < q.hu ? u * VEC : rot + (u - q.hu) * VEC;
        load_floats<VEC>(a, xr + j);
        for (int i = 0; i < VEC; i++) ss += (double)a[i] * a[i];
        if (u >= q.hu) continue;
        load_floats<VEC>(a, xr + j + half);
        for (int i = 0; i < VEC; i++) ss += (double)a[i] * a[i];
    }
    float r = (float)(1.0 / sqrt(warp_sum(ss, lanes) / Dh + eps));
    if (!q.live) return; // after the shuffles
    if (q.sub == 0) rstd[q.row] = r;
    float g = gain ? gain[q.h] : 1.0f;
    const float *c = cos_t + (size_t)q.t * half, *s = sin_t + (size_t)q.t * half;
    size_t at = (size_t)q.row * Dh;
    for (int u = q.sub; u < q.units; u += lanes) {
        float a[VEC], b[VEC], o1[VEC], o2[VEC];
        if (u < q.hu) {
            int j = u * VEC;
            float cj[VEC], sj[VEC];
            load_floats<VEC>(a, xr + j), load_floats<VEC>(b, xr + j + half);
            load_floats<VEC>(cj, c + j), load_floats<VEC>(sj, s + j);
            for (int i = 0; i < VEC; i++) {
                float x1 = a[i] * r, x2 = b[i] * r;
                o1[i] = (x1 * cj[i] + x2 * sj[i]) * g, o2[i] = (-x1 * sj[i] + x2 * cj[i]) * g;
            }
            if (out) store_floats<VEC>(out + at + j, o1), store_floats<VEC>(out + at + j + half, o2);
            if (outr) store_floats<VEC>(outr + at + j, o1), store_floats<VEC>(outr + at + j + half, o2);
        } else {
            int j = rot + (u - q.hu) * VEC;
            load_floats<VEC>(a, xr + j);
            for (int i = 0; i < VEC; i++) o1[i] = a[i] * r * g;
            if (out) store_floats<VEC>(out + at + j, o1);
            if (outr) store_floats<VEC>(outr + at + j, o1);
        }
    }
}

// Vectors of 4 where the row's halves, its tail and every row start take them (else single values)
template <class... P> static int qk_vec(int Dh, int rot, int ldx, int ld, const P *...p) {
    return rot / 2 % 4 == 0 && vectors_fit(Dh, p...) && ldx % 4 == 0 && ld % 4 == 0 ? 4 : 1;
}

template <class In>
static void launch_qk_prep_fwd(float *out, __nv_bfloat16 *outr, float *rstd, const In *x, int ldx, const float *gain,
                               const float *cos_t, const float *sin_t, int rows, int T, int nh, int Dh, int rot, float eps) {
    int vec = qk_vec(Dh, rot, ldx, Dh, out, outr, x, cos_t, sin_t), lanes = qk_lanes(Dh, rot, vec);
    auto kernel = vec == 4 ? qk_prep_fwd<In, 4> : qk_prep_fwd<In, 1>; // the emulator's launch rewrite needs a plain name
    kernel<<<qk_blocks(rows, lanes), WARP_ROW_THREADS>>>(out, outr, rstd, x, ldx, gain, cos_t, sin_t, rows, T, nh, Dh, rot, eps,
                                                        lanes);
    CUDA_CHECK_LAUNCH_AT("cuda_qk_prep_forward");
}

extern "C" void cuda_qk_prep_forward(float *out, float *rstd, const float *x, const RoundedInput *x_r, int ldx,
                                     const float *gain, const float *cos_t, const float *sin_t, int B, int T, int nh, int Dh,
                                     int rot, float eps, RoundedInput *out_r) {
    int rows = B * T * nh;
    const __nv_bfloat16 *xb = cuda_input_rounded(__func__, x, x_r, gemm_operand_extent(B * T, nh * Dh, ldx));
    __nv_bfloat16 *outr = cuda_rounded_output(__func__, out, out_r, (size_t)rows * Dh);
    if (xb) launch_qk_prep_fwd(out, outr, rstd, xb, ldx, gain, cos_t, sin_t, rows, T, nh, Dh, rot, eps);
    else launch_qk_prep_fwd(out, outr, rstd, x, ldx, gain, cos_t, sin_t, rows, T, nh, Dh, rot, eps);
}

// The rotation's backward g = d(xn), then the norm's over the same values: dx = rstd (g - xn mean(g
// xn)) into dx and/or its rounding dxr (either may be NULL), xn = x rstd recomputed from the forward's
// input (the same values). g is computed twice (before and after the row's dot) instead of stored, so
// that dx may be left out; each lane reads and writes only its own units, so dx may alias dout.
// acc[row] gets the row's contribution to its head's gain gradient.
// The backward's view of a rotated unit from j: x's pairs (xa, xb), dout's (da, db), the angles' cos
// and sin (cj, sj), and the rotation's backward (g1, g2) = d(xn) of the pairs
template <int VEC> struct QkRotatedUnit {
    float xa[VEC], xb[VEC], da[VEC], db[VEC], cj[VEC], sj[VEC], g1[VEC], g2[VEC];
};
template <int VEC, class Dout, class In>
__device__ static QkRotatedUnit<VEC> qk_rotated_unit(const In *xr, const Dout *d, const float *c, const float *s, int j, int half,
                                                       float g) {
    QkRotatedUnit<VEC> u;
    load_floats<VEC>(u.xa, xr + j), load_floats<VEC>(u.xb, xr + j + half), load_floats<VEC>(u.da, d + j);
    load_floats<VEC>(u.db, d + j + half), load_floats<VEC>(u.cj, c + j), load_floats<VEC>(u.sj, s + j);
    for (int i = 0; i < VEC; i++) {
        u.g1[i] = u.da[i] * g * u.cj[i] - u.db[i] * g * u.sj[i];
        u.g2[i] = u.da[i] * g * u.sj[i] + u.db[i] * g * u.cj[i];
    }
    return u;
}

template <class Dout, class In, int VEC>
__global__ static void qk_prep_bwd(float *dx, __nv_bfloat16 *dxr, int ld, double *acc, const Dout *dout, const In *x, int ldx,
                                   const float *rstd, const float *gain, const float *cos_t, const float *sin_t, int rows, int T,
                                   int nh, int Dh, int rot, int lanes) {
    QkRow q = qk_row<VEC>(rows, T, nh, Dh, rot, lanes);
    int half = rot / 2;
    const float *c = cos_t + (size_t)q.t * half, *s = sin_t + (size_t)q.t * half;
    const Dout *d = dout + (size_t)q.row * Dh;
    const In *xr = x + (size_t)(q.row / nh) * ldx + (size_t)q.h * Dh;
    float g = q.live && gain ? gain[q.h] : 1.0f, r = q.live ? rstd[q.row] : 0.0f;
    double a = 0, dot = 0; // the gain's gradient, and d(xn) . xn for the norm
    for (int u = q.sub; q.live && u < q.units; u += lanes) {
        float xa[VEC], da[VEC];
        if (u < q.hu) {
            QkRotatedUnit<VEC> p = qk_rotated_unit<VEC>(xr, d, c, s, u * VEC, half, g);
            for (int i = 0; i < VEC; i++) {
                float x1 = p.xa[i] * r, x2 = p.xb[i] * r;
                a += (double)p.da[i] * (x1 * p.cj[i] + x2 * p.sj[i]) + (double)p.db[i] * (-x1 * p.sj[i] + x2 * p.cj[i]);
                dot += (double)p.g1[i] * x1 + (double)p.g2[i] * x2;
            }
        } else {
            int j = rot + (u - q.hu) * VEC;
            load_floats<VEC>(xa, xr + j), load_floats<VEC>(da, d + j);
            for (int i = 0; i < VEC; i++) {
                float xn = xa[i] * r;
                a += (double)da[i] * xn;
                dot += (double)(da[i] * g) * xn;
            }
        }
    }
    a = warp_sum(a, lanes);
    float m = (float)(warp_sum(dot, lanes) / Dh);
    if (!q.live) return; // after the shuffles
    if (q.sub == 0) acc[q.row] = a;
    size_t at = (size_t)(q.row / nh) * ld + (size_t)q.h * Dh;
    for (int u = q.sub; u < q.units; u += lanes) {
        float xa[VEC], da[VEC], v1[VEC], v2[VEC];
        if (u < q.hu) {
            int j = u * VEC;
            QkRotatedUnit<VEC> p = qk_rotated_unit<VEC>(xr, d, c, s, j, half, g);
            for (int i = 0; i < VEC; i++) v1[i] = r * (p.g1[i] - p.xa[i] * r * m), v2[i] = r * (p.g2[i] - p.xb[i] * r * m);
            if (dx) store_floats<VEC>(dx + at + j, v1), store_floats<VEC>(dx + at + j + half, v2);
            if (dxr) store_floats<VEC>(dxr + at + j, v1), store_floats<VEC>(dxr + at + j + half, v2);
        } else {
            int j = rot + (u - q.hu) * VEC;
            load_floats<VEC>(xa, xr + j), load_floats<VEC>(da, d + j);
            for (int i = 0; i < VEC; i++) v1[i] = r * (da[i] * g - xa[i] * r * m);
            if (dx) store_floats<VEC>(dx + at + j, v1);
            if (dxr) store_floats<VEC>(dxr + at + j, v1);
        }
    }
}

template <class Dout, class In>
static void launch_qk_prep_bwd(float *dx, __nv_bfloat16 *dxr, int ld, double *acc, const Dout *dout, const In *x, int ldx,
                               const float *rstd, const float *gain, const float *cos_t, const float *sin_t, int rows, int T,
                               int nh, int Dh, int rot) {
    int vec = qk_vec(Dh, rot, ldx, ld, dx, dxr, dout, x, cos_t, sin_t), lanes = qk_lanes(Dh, rot, vec);
    auto kernel = vec == 4 ? qk_prep_bwd<Dout, In, 4> : qk_prep_bwd<Dout, In, 1>;
    kernel<<<qk_blocks(rows, lanes), WARP_ROW_THREADS>>>(dx, dxr, ld, acc, dout, x, ldx, rstd, gain, cos_t, sin_t, rows, T, nh,
                                                        Dh, rot, lanes);
    CUDA_CHECK_LAUNCH_AT("cuda_qk_prep_backward");
}

// The heads' gain gradients as column sums of acc [tokens, nh]: block (head, chunk) sums its chunk's
// rows (a thread each, then block_sum's fixed order) into the column partials (reduce.cu)
__global__ static void gain_partials(double *part, const double *acc, int tokens, int nh) {
    int n = chunk_begin() + threadIdx.x;
    double v = block_sum(n < tokens ? acc[(size_t)n * nh + blockIdx.x] : 0.0);
    if (threadIdx.x == 0) part[(size_t)blockIdx.y * nh + blockIdx.x] = v;
}

extern "C" void cuda_qk_prep_backward(float *dx, int ld_dx, float *dgain, const float *dout, const RoundedInput *dout_r,
                                      const float *x, const RoundedInput *x_r, int ldx, const float *rstd, const float *gain,
                                      const float *cos_t, const float *sin_t, int B, int T, int nh, int Dh, int rot,
                                      RoundedInput *dx_r) {
    int rows = B * T * nh;
    if (dx && dx == dout && ld_dx != nh * Dh)
        die("%s: dx aliases dout with rows %d apart instead of %d", __func__, ld_dx, nh * Dh);
    const __nv_bfloat16 *xb = cuda_input_rounded(__func__, x, x_r, gemm_operand_extent(B * T, nh * Dh, ldx)),
                        *db = cuda_input_rounded(__func__, dout, dout_r, (size_t)rows * Dh);
    double *acc = (double *)cuda_scratch(SCRATCH_ROW_SUMS, sizeof(double) * rows);
    __nv_bfloat16 *dxr = cuda_rounded_output(__func__, dx, dx_r, gemm_operand_extent(B * T, nh * Dh, ld_dx));
    if (db && xb) launch_qk_prep_bwd(dx, dxr, ld_dx, acc, db, xb, ldx, rstd, gain, cos_t, sin_t, rows, T, nh, Dh, rot);
    else if (db) launch_qk_prep_bwd(dx, dxr, ld_dx, acc, db, x, ldx, rstd, gain, cos_t, sin_t, rows, T, nh, Dh, rot);
    else if (xb) launch_qk_prep_bwd(dx, dxr, ld_dx, acc, dout, xb, ldx, rstd, gain, cos_t, sin_t, rows, T, nh, Dh, rot);
    else launch_qk_prep_bwd(dx, dxr, ld_dx, acc, dout, x, ldx, rstd, gain, cos_t, sin_t, rows, T, nh, Dh, rot);
    if (gain && dgain) {
        double *part = column_partials(B * T, nh);
        static_assert(THREADS == SUM_CHUNK_ROWS, "gain_partials: a thread per row of a chunk");
        gain_partials<<<dim3(nh, row_chunks(B * T)), THREADS>>>(part, acc, B * T, nh);
        CUDA_CHECK_LAUNCH();
        column_partials_add(dgain, part, B * T, nh);
    }
}

// ---------------------------------------------------------------- XSA

// A warp per (token, head) row, lanes across it: out = y - (y . v) v / max(|v|, 1e-12)^2 with v the
// row's KV head.
__global__ static void xsa_fwd(float *out, const float *y, const float *v, int N, int H, int Hkv, int Dh) {
    int row = warp_row(), lane = threadIdx.x % 32;
    if (row >= N * H) return; // the whole warp
    int n = row / H, h = row % H;
    const float *vr = v + ((size_t)n * Hkv + h / (H / Hkv)) * Dh, *yr = y + (size_t)row * Dh;
    double vv = 0, yv = 0;
    for (int d = lane; d < Dh; d += 32) vv += (double)vr[d] * vr[d], yv += (double)yr[d] * vr[d];
    vv = warp_sum(vv), yv = warp_sum(yv);
    double norm = fmax(sqrt(vv), 1e-12), a = yv / (norm * norm);
    for (int d = lane; d < Dh; d += 32) out[(size_t)row * Dh + d] = yr[d] - (float)(a * vr[d]);
}

extern "C" void cuda_xsa_forward(float *out, const float *y, const float *v, int N, int H, int Hkv, int Dh) {
    xsa_fwd<<<warp_row_blocks((size_t)N * H), WARP_ROW_THREADS>>>(out, y, v, N, H, Hkv, Dh);
    CUDA_CHECK_LAUNCH();
}

// A warp per (token, KV head), lanes across the row: the heads of its group, then dv through
// u = v / |v|. Each lane owns its columns of dv (which holds du first) and of the heads' dy.
__global__ static void xsa_bwd(float *dy, float *dv, const float *y, const float *v, int N, int H, int Hkv, int Dh) {
    int row = warp_row(), lane = threadIdx.x % 32;
    if (row >= N * Hkv) return; // the whole warp
    int n = row / Hkv, j = row % Hkv, group = H / Hkv;
    const float *vr = v + (size_t)row * Dh;
    float *dvr = dv + (size_t)row * Dh;
    double vv = 0;
    for (int d = lane; d < Dh; d += 32) vv += (double)vr[d] * vr[d], dvr[d] = 0;
    double len = sqrt(warp_sum(vv)), norm = fmax(len, 1e-12);
    for (int g = 0; g < group; g++) {
        int h = j * group + g;
        const float *yr = y + ((size_t)n * H + h) * Dh;
        float *gr = dy + ((size_t)n * H + h) * Dh;
        double a = 0, b = 0;
        for (int d = lane; d < Dh; d += 32) a += (double)yr[d] * vr[d] / norm, b += (double)gr[d] * vr[d] / norm;
        a = warp_sum(a), b = warp_sum(b);
        for (int d = lane; d < Dh; d += 32) {
            dvr[d] -= (float)(a * gr[d] + b * yr[d]);
            gr[d] -= (float)(b * vr[d] / norm);
        }
    }
    double du_u = 0;
    for (int d = lane; d < Dh; d += 32) du_u += (double)dvr[d] * vr[d] / norm;
    du_u = warp_sum(du_u);
    for (int d = lane; d < Dh; d += 32)
        dvr[d] = (float)(len > 1e-12 ? (dvr[d] - du_u * vr[d] / norm) / norm : dvr[d] / 1e-12);
}

extern "C" void cuda_xsa_backward(float *dy, float *dv, const float *y, const float *v, int N, int H, int Hkv, int Dh) {
    xsa_bwd<<<warp_row_blocks((size_t)N * Hkv), WARP_ROW_THREADS>>>(dy, dv, y, v, N, H, Hkv, Dh);
    CUDA_CHECK_LAUNCH();
}

// ---------------------------------------------------------------- gated attention

// G gates per token, each scaling `per` = H Dh / G consecutive values (a head's, or one). The forward
// takes two passes, each coalesced: the gates (a thread each; z and gate may be one buffer), then the
// values (a thread each).
__global__ static void gate_values(float *gate, const float *z, const float *bias, int NG, int G) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < NG) gate[i] = sigm(z[i] + (bias ? bias[i % G] : 0.0f));
}

__global__ static void gate_scale(float *out, const float *y, const float *gate, size_t n, int per, float gain) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e < n) out[e] = gain * gate[e / per] * y[e];
}

extern "C" void cuda_attn_gate_forward(float *out, float *gate, const float *y, const float *z, const float *bias, int N, int H,
                                       int Dh, int G, float gain) {
    size_t n = (size_t)N * H * Dh;
    gate_values<<<blocks_for((size_t)N * G, THREADS), THREADS>>>(gate, z, bias, N * G, G);
    CUDA_CHECK_LAUNCH();
    gate_scale<<<blocks_for(n, THREADS), THREADS>>>(out, y, gate, n, H * Dh / G, gain);
    CUDA_CHECK_LAUNCH();
}

// `lanes` consecutive lanes per gate (a power of two up to 32, so a warp holds whole groups), across
// its values: dz = gain g (1 - g) sum dout y, then dy = gain g dout (dy may be dout: a lane rewrites
// only the values it read).
__global__ static void gate_bwd(float *dy, float *dz, const float *dout, const float *y, const float *gate, int NG, int per,
                                int lanes, float gain) {
    size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x, i = t / lanes, o = i * per;
    int lane = (int)(t % lanes);
    double s = 0;
    if (i < (size_t)NG)
        for (int k = lane; k < per; k += lanes) s += (double)dout[o + k] * y[o + k];
    s = warp_sum(s, lanes); // every lane of the warp takes part, past NG too
    if (i >= (size_t)NG) return;
    float g = gate[i];
    for (int k = lane; k < per; k += lanes) dy[o + k] = gain * g * dout[o + k];
    if (lane == 0) dz[i] = (float)(s * gain * g * (1 - g));
}

// grid (columns, row chunks): the chunk's column partial of x (the gate bias gradient)
__global__ static void column_chunk_sum(double *part, const float *x, int N, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double s = 0;
    for (int n = chunk_begin(); n < chunk_end(N); n++) s += x[(size_t)n * C + c];
    part[(size_t)blockIdx.y * C + c] = s;
}

extern "C" void cuda_attn_gate_backward(float *dy, float *dz, float *dbias, const float *dout, const float *y, const float *gate,
                                        int N, int H, int Dh, int G, float gain) {
    int per = H * Dh / G, lanes = 1;
    while (lanes < per && lanes < 32) lanes *= 2;
    gate_bwd<<<blocks_for((size_t)N * G * lanes, THREADS), THREADS>>>(dy, dz, dout, y, gate, N * G, per, lanes, gain);
    CUDA_CHECK_LAUNCH();
    if (dbias) {
        double *part = column_partials(N, G);
        column_chunk_sum<<<dim3(blocks_for((size_t)G, THREADS), row_chunks(N)), THREADS>>>(part, dz, N, G);
        CUDA_CHECK_LAUNCH();
        column_partials_add(dbias, part, N, G);
    }
}

// ---------------------------------------------------------------- SmearGate, skips, scalar mixes

__global__ static void smear_fwd(float *out, const float *x, const float *gate, int B, int T, int C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)B * T * C) return;
    int c = (int)(i % C);
    int first = (i / C) % T == 0;
    float g = sigm(gate[c]);
    out[i] = (1 - g) * x[i] + (first ? 0.0f : g * x[i - C]);
}

// grid (channels, token chunks): dx for the chunk's column and its partial of the gate's sum.
__global__ static void smear_bwd(float *dx, double *part, const float *dout, const float *x, const float *gate, int B, int T,
                                 int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float g = sigm(gate[c]);
    double s = 0;
    for (int n = chunk_begin(); n < chunk_end(B * T); n++) {
        size_t o = (size_t)n * C + c;
        int first = n % T == 0, last = n % T == T - 1;
        dx[o] = (1 - g) * dout[o] + (last ? 0.0f : g * dout[o + C]);
        s += (double)dout[o] * ((first ? 0.0f : x[o - C]) - x[o]) * g * (1 - g);
    }
    part[(size_t)blockIdx.y * C + c] = s;
}

extern "C" void cuda_smear_forward(float *out, const float *x, const float *gate, int B, int T, int C) {
    smear_fwd<<<blocks_for((size_t)B * T * C, THREADS), THREADS>>>(out, x, gate, B, T, C);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_smear_backward(float *dx, float *dgate, const float *dout, const float *x, const float *gate, int B, int T,
                                    int C) {
    double *part = column_partials(B * T, C);
    smear_bwd<<<dim3(blocks_for((size_t)C, THREADS), row_chunks(B * T)), THREADS>>>(dx, part, dout, x, gate, B, T, C);
    CUDA_CHECK_LAUNCH();
    column_partials_add(dgate, part, B * T, C);
}

__global__ static void skip_lerp_fwd(float *out, const float *x, const float *y, const float *w, const float *gate, int N, int C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N * C) return;
    int c = (int)(i % C);
    float s = sigm(gate[c]);
    out[i] = s * x[i] + (1 - s) * w[c] * y[i];
}

// grid (channels, row chunks): dx, dy for the chunk's column and its partials of dw (part[chunk][C])
// and dgate (after them, part[chunks + chunk][C]).
__global__ static void skip_lerp_bwd(float *dx, float *dy, double *part, const float *dout, const float *x, const float *y,
                                     const float *w, const float *gate, int N, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float s = sigm(gate[c]);
    double sw = 0, sg = 0;
    for (int n = chunk_begin(); n < chunk_end(N); n++) {
        size_t o = (size_t)n * C + c;
        float d = dout[o];
        sw += (double)d * (1 - s) * y[o];
        sg += (double)d * (x[o] - w[c] * y[o]);
        dy[o] = (1 - s) * w[c] * d;
        dx[o] = s * d;
    }
    part[(size_t)blockIdx.y * C + c] = sw;
    part[(size_t)(gridDim.y + blockIdx.y) * C + c] = sg * s * (1 - s);
}

extern "C" void cuda_skip_lerp_forward(float *out, const float *x, const float *y, const float *w, const float *gate, int N, int C) {
    skip_lerp_fwd<<<blocks_for((size_t)N * C, THREADS), THREADS>>>(out, x, y, w, gate, N, C);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_skip_lerp_backward(float *dx, float *dy, float *dw, float *dgate, const float *dout, const float *x,
                                        const float *y, const float *w, const float *gate, int N, int C) {
    double *part = column_partials(N, 2 * C);
    skip_lerp_bwd<<<dim3(blocks_for((size_t)C, THREADS), row_chunks(N)), THREADS>>>(dx, dy, part, dout, x, y, w, gate, N, C);
    CUDA_CHECK_LAUNCH();
    column_partials_add(dw, part, N, C);
    column_partials_add(dgate, part + (size_t)row_chunks(N) * C, N, C);
}

__global__ static void mix2(float *out, const float *v, const float *v0, float l0, float l1, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = l0 * v[i] + l1 * v0[i];
}

// dv = l0 dout (may alias dout), dv0 += l1 dout
__global__ static void mix2_bwd(float *dv, float *dv0, const float *dout, float l0, float l1, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float d = dout[i];
    if (dv0) dv0[i] += l1 * d;
    dv[i] = l0 * d;
}

extern "C" void cuda_value_mix_forward(float *out, const float *v, const float *v0, const float lam[2], size_t n) {
    mix2<<<blocks_for(n, THREADS), THREADS>>>(out, v, v0, lam[0], lam[1], n);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_value_mix_backward(float *dv, float *dv0, double dlam[2], const float *dout, const float *v, const float *v0,
                                        const float lam[2], size_t n) {
    cuda_dots(dlam, dout, v, v0, n); // before dv may overwrite dout
    mix2_bwd<<<blocks_for(n, THREADS), THREADS>>>(dv, dv0, dout, lam[0], lam[1], n);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_axpy_forward(float *x, float a, const float *y, size_t n) {
    mix2<<<blocks_for(n, THREADS), THREADS>>>(x, x, y, 1.0f, a, n);
    CUDA_CHECK_LAUNCH();
}

extern "C" double cuda_axpy_backward(float *dy, const float *dout, float a, const float *y, size_t n) {
    double da[2];
    cuda_dots(da, dout, y, nullptr, n);
    mix2_bwd<<<blocks_for(n, THREADS), THREADS>>>(dy, nullptr, dout, a, 0.0f, n);
    CUDA_CHECK_LAUNCH();
    return da[0];
}

// ---------------------------------------------------------------- embedding gradient

// The host sorts the token positions by id (counting sort, so each id's positions stay in order) into
// one int32 upload: the distinct ids, where each one's positions start, then the positions. A block
// per distinct id adds its rows over a range of channels in that order: no two blocks touch one row,
// and every element gets the same float additions in the same order as the CPU op. A frequent token
// has thousands of positions, so a thread keeps EMBED_LOADS rows' loads in flight (the additions stay
// in order) instead of waiting out each load's latency in turn. (8 in flight: 600 us per baseline
// micro-step on an H200, a token with ~3,000 positions taking ~400 round trips of memory latency.)
#define EMBED_LOADS 32
__global__ static void embedding_bwd(float *dtable, const float *dout, const int32_t *rows, int n_ids, int D) {
    int d = blockIdx.y * blockDim.x + threadIdx.x;
    if (d >= D) return;
    const int32_t *start = rows + n_ids, *pos = start + n_ids + 1;
    float *dst = dtable + (size_t)rows[blockIdx.x] * D + d;
    float acc = *dst;
    int p = start[blockIdx.x], end = start[blockIdx.x + 1];
    for (; p + EMBED_LOADS <= end; p += EMBED_LOADS) {
        float v[EMBED_LOADS];
#pragma unroll
        for (int i = 0; i < EMBED_LOADS; i++) v[i] = dout[(size_t)pos[p + i] * D + d];
#pragma unroll
        for (int i = 0; i < EMBED_LOADS; i++) acc += v[i];
    }
    for (; p < end; p++) acc += dout[(size_t)pos[p] * D + d];
    *dst = acc;
}

extern "C" void cuda_embedding_backward(float *dtable, const float *dout, const int32_t *ids, int N, int D) {
    if (N <= 0) return;
    int32_t vocab = 0;
    for (int n = 0; n < N; n++) vocab = ids[n] >= vocab ? ids[n] + 1 : vocab;
    std::vector<int32_t> count((size_t)vocab + 1, 0), rows;
    for (int n = 0; n < N; n++) count[ids[n] + 1]++;
    for (int32_t v = 0; v < vocab; v++)
        if (count[v + 1]) rows.push_back(v);
    int n_ids = (int)rows.size();
    for (int32_t v = 0; v < vocab; v++) count[v + 1] += count[v]; // count[v]: where id v's positions start
    for (int i = 0; i < n_ids; i++) rows.push_back(count[rows[i]]);
    rows.push_back(N);
    size_t pos0 = rows.size();
    rows.resize(pos0 + N);
    for (int n = 0; n < N; n++) rows[pos0 + count[ids[n]]++] = n;
    int32_t *dev = (int32_t *)cuda_scratch(SCRATCH_EMBED_ROWS, sizeof(int32_t) * rows.size());
    CUDA_CHECK(cudaMemcpy(dev, rows.data(), sizeof(int32_t) * rows.size(), cudaMemcpyHostToDevice));
    embedding_bwd<<<dim3(n_ids, blocks_for((size_t)D, 128)), 128>>>(dtable, dout, dev, n_ids, D);
    CUDA_CHECK_LAUNCH();
}

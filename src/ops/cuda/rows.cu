// Row ops, a warp per row: rms norm (alone, or after the residual stream's update it normalizes) and the softcapped
// cross-entropy. Row sums in a fixed order (shuffle butterflies), so results are deterministic.
#include <math.h>

#include "ops/cuda/cuda_check.h"
#include "ops/cuda/ops_cuda.h"

// rms norm: a warp per row (cuda_check.h's WARP_ROWS), its sums warp_sum's fixed butterfly; lane l
// takes the columns (32 k + l) VEC + j, VEC at a time (4 where vectors_fit, else 1). A block per row
// made the per-head norms of q and k (64 values) half a million tiny blocks per call; a value per lane
// moved 75% of what the memory can.

// Row `row` of the norm (the calling warp) once each lane has its share ss of the row's sum of squares
// (in double): rstd = 1 / sqrt(mean(x^2) + eps), y = x rstd scale into out and/or its rounding yr
// (either may be NULL). Each lane reads back only the x values it may have just written itself (the
// fused updates below).
template <int VEC>
__device__ static void norm_row(float *out, __nv_bfloat16 *yr, float *rstd, const float *x, int row, int C, float eps,
                                float scale, double ss) {
    int lane = threadIdx.x % 32;
    float s = (float)(1.0 / sqrt(warp_sum(ss) / C + eps));
    if (lane == 0) rstd[row] = s;
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        float y[VEC];
        load_floats<VEC>(y, x + c);
        for (int j = 0; j < VEC; j++) y[j] = y[j] * s * scale;
        if (out) store_floats<VEC>(out + (size_t)row * C + c, y);
        if (yr) store_floats<VEC>(yr + (size_t)row * C + c, y);
    }
}

template <int VEC>
__global__ static void rmsnorm_fwd(float *out, __nv_bfloat16 *yr, float *rstd, const float *inp, int rows, int C, float eps,
                                   float scale) {
    int row = warp_row();
    if (row >= rows) return; // the whole warp
    const float *x = inp + (size_t)row * C;
    double ss = 0;
    for (int c = threadIdx.x % 32 * VEC; c < C; c += 32 * VEC) {
        float v[VEC];
        load_floats<VEC>(v, x + c);
        for (int j = 0; j < VEC; j++) ss += (double)v[j] * v[j];
    }
    norm_row<VEC>(out, yr, rstd, x, row, C, eps, scale, ss);
}

// ops.h's resid_mix_rmsnorm_forward: xm = mix[0] x + mix[1] x0, then its norm
template <int VEC>
__global__ static void mix_norm_fwd(float *xm, float *out, __nv_bfloat16 *yr, float *rstd, const float *x, const float *x0,
                                    const float *mix, int rows, int C, float eps, float scale) {
    int row = warp_row();
    if (row >= rows) return; // the whole warp
    size_t at = (size_t)row * C;
    double ss = 0;
    for (int c = threadIdx.x % 32 * VEC; c < C; c += 32 * VEC) {
        float a[VEC], b[VEC], m0[VEC], m1[VEC];
        load_floats<VEC>(a, x + at + c), load_floats<VEC>(b, x0 + at + c), load_floats<VEC>(m0, mix + c);
        load_floats<VEC>(m1, mix + C + c);
        for (int j = 0; j < VEC; j++) a[j] = m0[j] * a[j] + m1[j] * b[j], ss += (double)a[j] * a[j];
        store_floats<VEC>(xm + at + c, a);
    }
    norm_row<VEC>(out, yr, rstd, xm + at, row, C, eps, scale, ss);
}

// ops.h's scaled_add_rmsnorm_forward: x += scale y (y fp32 or bf16), then its norm
template <class Y, int VEC>
__global__ static void add_norm_fwd(float *x, const float *scale, const Y *y, float *out, __nv_bfloat16 *yr, float *rstd,
                                    int rows, int C, float eps, float ln) {
    int row = warp_row();
    if (row >= rows) return; // the whole warp
    size_t at = (size_t)row * C;
    double ss = 0;
    for (int c = threadIdx.x % 32 * VEC; c < C; c += 32 * VEC) {
        float a[VEC], sc[VEC], b[VEC];
        load_floats<VEC>(a, x + at + c), load_floats<VEC>(sc, scale + c), load_floats<VEC>(b, y + at + c);
        for (int j = 0; j < VEC; j++) a[j] += sc[j] * b[j], ss += (double)a[j] * a[j];
        store_floats<VEC>(x + at + c, a);
    }
    norm_row<VEC>(out, yr, rstd, x + at, row, C, eps, ln, ss);
}

// dout fp32 or bf16 (a linear layer's input gradient kept only rounded)
template <class Dout, int VEC>
__global__ static void rmsnorm_bwd(float *dinp, const Dout *dout, const float *out, const float *rstd, int rows, int C,
                                   float scale, int accumulate) {
    int row = warp_row(), lane = threadIdx.x % 32;
    if (row >= rows) return; // the whole warp
    const Dout *dy = dout + (size_t)row * C;
    const float *y = out + (size_t)row * C;
    float *dx = dinp + (size_t)row * C;
    double dot = 0;
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        float d[VEC], v[VEC];
        load_floats<VEC>(d, dy + c), load_floats<VEC>(v, y + c);
        for (int j = 0; j < VEC; j++) dot += (double)d[j] * v[j];
    }
    dot = warp_sum(dot);
    float m = (float)(dot / C) / scale, s = rstd[row];
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        float d[VEC], v[VEC], g[VEC] = {};
        load_floats<VEC>(d, dy + c), load_floats<VEC>(v, y + c);
        if (accumulate) load_floats<VEC>(g, dx + c);
        for (int j = 0; j < VEC; j++) {
            float t = s * (scale * d[j] - v[j] * m);
            g[j] = accumulate ? g[j] + t : t;
        }
        store_floats<VEC>(dx + c, g);
    }
}

// The launches pick the instance through a variable, as the emulator's launch rewrite needs a plain name.
template <class Y>
static void launch_add_norm_fwd(float *x, const float *scale, const Y *y, float *out, __nv_bfloat16 *yr, float *rstd, int rows,
                                int C, float eps, float ln) {
    auto kernel = vectors_fit(C, x, scale, y, out, yr) ? add_norm_fwd<Y, 4> : add_norm_fwd<Y, 1>;
    kernel<<<warp_row_blocks((size_t)rows), WARP_ROW_THREADS>>>(x, scale, y, out, yr, rstd, rows, C, eps, ln);
    CUDA_CHECK_LAUNCH_AT("cuda_scaled_add_rmsnorm_forward");
}

template <class Dout>
static void launch_rmsnorm_bwd(float *dinp, const Dout *dout, const float *out, const float *rstd, int rows, int C, float scale,
                               int accumulate) {
    auto kernel = vectors_fit(C, dinp, dout, out) ? rmsnorm_bwd<Dout, 4> : rmsnorm_bwd<Dout, 1>;
    kernel<<<warp_row_blocks((size_t)rows), WARP_ROW_THREADS>>>(dinp, dout, out, rstd, rows, C, scale, accumulate);
    CUDA_CHECK_LAUNCH_AT("cuda_rmsnorm_backward");
}

extern "C" void cuda_rmsnorm_forward(float *out, float *rstd, const float *inp, int rows, int C, float eps, float scale,
                                     RoundedInput *out_r) {
    __nv_bfloat16 *yr = cuda_rounded_output(__func__, out, out_r, (size_t)rows * C);
    auto kernel = vectors_fit(C, out, yr, inp) ? rmsnorm_fwd<4> : rmsnorm_fwd<1>;
    kernel<<<warp_row_blocks((size_t)rows), WARP_ROW_THREADS>>>(out, yr, rstd, inp, rows, C, eps, scale);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_resid_mix_rmsnorm_forward(float *xm, const float *x, const float *x0, const float *mix, int N, int C,
                                               float *n, float *rstd, float eps, float scale, RoundedInput *n_r) {
    __nv_bfloat16 *yr = cuda_rounded_output(__func__, n, n_r, (size_t)N * C);
    auto kernel = vectors_fit(C, xm, n, yr, x, x0, mix) ? mix_norm_fwd<4> : mix_norm_fwd<1>;
    kernel<<<warp_row_blocks((size_t)N), WARP_ROW_THREADS>>>(xm, n, yr, rstd, x, x0, mix, N, C, eps, scale);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_scaled_add_rmsnorm_forward(float *x, const float *scale, const float *y, const RoundedInput *y_r, int N,
                                                int C, float *n, float *rstd, float eps, float ln, RoundedInput *n_r) {
    const __nv_bfloat16 *yb = cuda_input_rounded(__func__, y, y_r, (size_t)N * C); // before n_r is reset: it may be y_r
    __nv_bfloat16 *yr = cuda_rounded_output(__func__, n, n_r, (size_t)N * C);
    if (yb) launch_add_norm_fwd(x, scale, yb, n, yr, rstd, N, C, eps, ln);
    else launch_add_norm_fwd(x, scale, y, n, yr, rstd, N, C, eps, ln);
}

extern "C" void cuda_rmsnorm_backward(float *dinp, const float *dout, const RoundedInput *dout_r, const float *out,
                                      const float *rstd, int rows, int C, float scale, int accumulate) {
    const __nv_bfloat16 *dyb = cuda_input_rounded(__func__, dout, dout_r, (size_t)rows * C);
    if (dyb) launch_rmsnorm_bwd(dinp, dyb, out, rstd, rows, C, scale, accumulate);
    else launch_rmsnorm_bwd(dinp, dout, out, rstd, rows, C, scale, accumulate);
}

// The softcapped cross-entropy, a warp per row (lanes across it: v = lane, lane + 32, ...). softcap_stats:
// l = cap tanh(z / cap) and each lane's running max and sum of exp(l - max) in one pass, then a butterfly
// that combines the lanes' pairs (each step both ways round, so every lane ends with the row's, equal
// to the bit). fp32 arithmetic: one tanh and about one exp per value and pass.
template <class Z> __device__ static void softcap_stats(const Z *z, int V, float cap, float *max, float *sum) {
    float m = -INFINITY, s = 0;
    for (int v = threadIdx.x % 32; v < V; v += 32) {
        float l = cap * tanhf(as_float(z[v]) / cap);
        if (l > m) s = s * expf(m - l) + 1, m = l;
        else s += expf(l - m);
    }
    for (int o = 16; o > 0; o >>= 1) {
        float mo = __shfl_xor_sync(0xffffffffu, m, o), so = __shfl_xor_sync(0xffffffffu, s, o), mn = fmaxf(m, mo);
        s = (s > 0 ? s * expf(m - mn) : 0) + (so > 0 ? so * expf(mo - mn) : 0); // a lane without values has s 0, m -inf
        m = mn;
    }
    *max = m, *sum = s;
}

template <class Z> __global__ static void xent_fwd(float *loss, const Z *z, const int32_t *targets, int N, int V, float cap) {
    int row = warp_row();
    if (row >= N) return; // the whole warp
    const Z *zr = z + (size_t)row * V;
    float m, s;
    softcap_stats(zr, V, cap, &m, &s);
    if (threadIdx.x % 32 == 0) loss[row] = m + logf(s) - cap * tanhf(as_float(zr[targets[row]]) / cap);
}

// dz and/or its rounding dzr = scale (softmax(l) - onehot) (1 - tanh^2), l = cap tanh(z / cap); either may
// be z itself (each lane reads its values before it writes them)
template <class Z>
__global__ static void xent_bwd(float *dz, __nv_bfloat16 *dzr, const Z *z, const int32_t *targets, int N, int V, float cap,
                                float scale) {
    int row = warp_row();
    if (row >= N) return; // the whole warp
    size_t at = (size_t)row * V;
    float m, s;
    softcap_stats(z + at, V, cap, &m, &s);
    int target = targets[row];
    for (int v = threadIdx.x % 32; v < V; v += 32) {
        float t = tanhf(as_float(z[at + v]) / cap), g = scale * (expf(cap * t - m) / s - (v == target)) * (1 - t * t);
        if (dz) dz[at + v] = g;
        if (dzr) dzr[at + v] = __float2bfloat16_rn(g);
    }
}

template <class Z>
static void launch_xent_fwd(float *loss, const Z *z, const int32_t *targets, int N, int V, float cap) {
    auto kernel = xent_fwd<Z>; // through a variable: the emulator's launch rewrite needs a plain name
    kernel<<<warp_row_blocks((size_t)N), WARP_ROW_THREADS>>>(loss, z, targets, N, V, cap);
    CUDA_CHECK_LAUNCH_AT("cuda_softcap_xent_forward");
}

template <class Z>
static void launch_xent_bwd(float *dz, __nv_bfloat16 *dzr, const Z *z, const int32_t *targets, int N, int V, float cap,
                            float scale) {
    auto kernel = xent_bwd<Z>;
    kernel<<<warp_row_blocks((size_t)N), WARP_ROW_THREADS>>>(dz, dzr, z, targets, N, V, cap, scale);
    CUDA_CHECK_LAUNCH_AT("cuda_softcap_xent_backward");
}

extern "C" void cuda_softcap_xent_forward(float *loss, const float *z, const RoundedInput *z_r, const int32_t *targets, int N,
                                          int V, float cap) {
    const __nv_bfloat16 *zb = cuda_input_rounded(__func__, z, z_r, (size_t)N * V);
    if (zb) launch_xent_fwd(loss, zb, targets, N, V, cap);
    else launch_xent_fwd(loss, z, targets, N, V, cap);
}

extern "C" void cuda_softcap_xent_backward(float *dz, RoundedInput *dz_r, const float *z, const RoundedInput *z_r,
                                           const int32_t *targets, int N, int V, float cap, float scale) {
    size_t n = (size_t)N * V;
    const __nv_bfloat16 *zb = cuda_input_rounded(__func__, z, z_r, n); // before dz_r is reset: it may be z_r
    __nv_bfloat16 *dzr = cuda_rounded_output(__func__, dz, dz_r, n);
    if (zb) launch_xent_bwd(dz, dzr, zb, targets, N, V, cap, scale);
    else launch_xent_bwd(dz, dzr, z, targets, N, V, cap, scale);
}

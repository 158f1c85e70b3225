// Embedding lookup, relu^2 and the per-channel mixes of the residual stream. Per-channel parameter
// gradients sum over tokens, each column's rows walked in order by one thread: deterministic.
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/ops_cuda.h"

#define THREADS 256

__global__ static void embedding_fwd(float *out, const int32_t *ids, const float *table, int N, int D) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N * D) return;
    size_t n = i / D, d = i % D;
    out[i] = table[(size_t)ids[n] * D + d];
}

extern "C" void cuda_embedding_forward(float *out, const int32_t *ids, const float *table, int N, int D) {
    embedding_fwd<<<blocks_for((size_t)N * D, THREADS), THREADS>>>(out, ids, table, N, D);
    CUDA_CHECK_LAUNCH();
}

// out and/or its bf16 rounding (cuda_rounded_storage), either may be NULL; inp fp32 or bf16
template <class In>
__global__ static void relu2_fwd(float *out, __nv_bfloat16 *rounded, const In *inp, size_t n, float slope) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float x = as_float(inp[i]), r = x > 0 ? x : slope * x;
    if (out) out[i] = r * r;
    if (rounded) rounded[i] = __float2bfloat16_rn(r * r);
}

template <class Dout, class In>
__global__ static void relu2_bwd(float *dinp, __nv_bfloat16 *rounded, const Dout *dout, const In *inp, size_t n, float slope) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float x = as_float(inp[i]), g = as_float(dout[i]);
    float d = x > 0 ? 2 * x * g : 2 * slope * slope * x * g;
    if (dinp) dinp[i] = d;
    if (rounded) rounded[i] = __float2bfloat16_rn(d);
}

// The launches name their template arguments through a variable, as the emulator's launch rewrite
// needs a plain kernel name.
template <class In>
static void launch_relu2_fwd(float *out, __nv_bfloat16 *rounded, const In *inp, size_t n, float slope) {
    auto kernel = relu2_fwd<In>;
    kernel<<<blocks_for(n, THREADS), THREADS>>>(out, rounded, inp, n, slope);
    CUDA_CHECK_LAUNCH_AT("cuda_relu2_forward");
}

template <class Dout, class In>
static void launch_relu2_bwd(float *dinp, __nv_bfloat16 *rounded, const Dout *dout, const In *inp, size_t n, float slope) {
    auto kernel = relu2_bwd<Dout, In>;
    kernel<<<blocks_for(n, THREADS), THREADS>>>(dinp, rounded, dout, inp, n, slope);
    CUDA_CHECK_LAUNCH_AT("cuda_relu2_backward");
}

extern "C" void cuda_relu2_forward(float *out, const float *inp, const RoundedInput *inp_r, size_t n, float slope,
                                   RoundedInput *out_r) {
    const __nv_bfloat16 *inp_b = cuda_input_rounded(__func__, inp, inp_r, n); // before out_r is reset: it may be inp_r
    __nv_bfloat16 *rounded = cuda_rounded_output(__func__, out, out_r, n);
    if (inp_b) launch_relu2_fwd(out, rounded, inp_b, n, slope);
    else launch_relu2_fwd(out, rounded, inp, n, slope);
}

extern "C" void cuda_relu2_backward(float *dinp, const float *dout, const RoundedInput *dout_r, const float *inp,
                                    const RoundedInput *inp_r, size_t n, float slope, RoundedInput *dinp_r) {
    const __nv_bfloat16 *dout_b = cuda_input_rounded(__func__, dout, dout_r, n),
                        *inp_b = cuda_input_rounded(__func__, inp, inp_r, n);
    __nv_bfloat16 *rounded = cuda_rounded_output(__func__, dinp, dinp_r, n);
    if (dout_b && inp_b) launch_relu2_bwd(dinp, rounded, dout_b, inp_b, n, slope);
    else if (dout_b) launch_relu2_bwd(dinp, rounded, dout_b, inp, n, slope);
    else if (inp_b) launch_relu2_bwd(dinp, rounded, dout, inp_b, n, slope);
    else launch_relu2_bwd(dinp, rounded, dout, inp, n, slope);
}

// The residual mix's and its norm's backward (ops.h's rmsnorm_resid_mix_backward). Grid: row chunks
// (blockIdx.y, as the column kernels); each thread owns the columns threadIdx.x + k blockDim.x, k <
// NORM_MIX_COLS. Per row: xm and y recomputed, the norm's dot a block sum, then each thread forms g for
// its columns, writes dx_in and dx0 and adds to its columns' partials (in row order, as every column
// kernel's). One pass over the row's inputs instead of the norm's backward and the mix's.
#define NORM_MIX_THREADS 256
#define NORM_MIX_COLS 8

// The widest row these norm backward kernels cover: NORM_MIX_COLS columns per thread
static void check_norm_row_width(const char *op, int C) {
    if (C > NORM_MIX_THREADS * NORM_MIX_COLS)
        die("CUDA %s: model_dim %d above the %d its kernel covers", op, C, NORM_MIX_THREADS * NORM_MIX_COLS);
}
template <class Dn>
__global__ static void norm_mix_bwd(float *__restrict__ dx_in, float *__restrict__ dx0, double *part, const Dn *__restrict__ dn,
                                    const float *__restrict__ dxm, const float *__restrict__ x_in, const float *__restrict__ x0,
                                    const float *__restrict__ mix, const float *__restrict__ rstd, int N, int C, float scale) {
    double s0[NORM_MIX_COLS] = {0}, s1[NORM_MIX_COLS] = {0};
    for (int n = chunk_begin(); n < chunk_end(N); n++) {
        size_t row = (size_t)n * C;
        float r = rstd[n], xi[NORM_MIX_COLS], xz[NORM_MIX_COLS], d[NORM_MIX_COLS];
        double dot = 0;
#pragma unroll
        for (int k = 0; k < NORM_MIX_COLS; k++) {
            int c = threadIdx.x + k * blockDim.x;
            if (c >= C) break;
            xi[k] = x_in[row + c], xz[k] = x0[row + c], d[k] = as_float(dn[row + c]);
            float xm = mix[c] * xi[k] + mix[C + c] * xz[k];
            dot += (double)d[k] * (xm * r * scale);
        }
        float m = (float)(block_sum(dot) / C) / scale;
#pragma unroll
        for (int k = 0; k < NORM_MIX_COLS; k++) {
            int c = threadIdx.x + k * blockDim.x;
            if (c >= C) break;
            float xm = mix[c] * xi[k] + mix[C + c] * xz[k];
            float g = dxm[row + c] + r * (scale * d[k] - xm * r * scale * m);
            dx_in[row + c] = g * mix[c];
            dx0[row + c] += g * mix[C + c];
            s0[k] += (double)g * xi[k];
            s1[k] += (double)g * xz[k];
        }
    }
    for (int k = 0; k < NORM_MIX_COLS; k++) {
        int c = threadIdx.x + k * blockDim.x;
        if (c >= C) break;
        part[(size_t)blockIdx.y * 2 * C + c] = s0[k];
        part[(size_t)blockIdx.y * 2 * C + C + c] = s1[k];
    }
}

template <class Dn>
static void launch_norm_mix_bwd(float *dx_in, float *dx0, double *part, const Dn *dn, const float *dxm, const float *x_in,
                                const float *x0, const float *mix, const float *rstd, int N, int C, float scale) {
    auto kernel = norm_mix_bwd<Dn>; // through a variable: the emulator's launch rewrite needs a plain name
    kernel<<<dim3(1, row_chunks(N)), NORM_MIX_THREADS>>>(dx_in, dx0, part, dn, dxm, x_in, x0, mix, rstd, N, C, scale);
    CUDA_CHECK_LAUNCH_AT("cuda_rmsnorm_resid_mix_backward");
}

extern "C" void cuda_rmsnorm_resid_mix_backward(float *dx_in, float *dx0, float *dmix, const float *dn, const RoundedInput *dn_r,
                                                const float *dxm, const float *x_in, const float *x0, const float *mix,
                                                const float *rstd, int N, int C, float scale) {
    check_norm_row_width("rmsnorm_resid_mix_backward", C);
    const __nv_bfloat16 *dnb = cuda_input_rounded(__func__, dn, dn_r, (size_t)N * C);
    double *part = column_partials(N, 2 * C);
    if (dnb) launch_norm_mix_bwd(dx_in, dx0, part, dnb, dxm, x_in, x0, mix, rstd, N, C, scale);
    else launch_norm_mix_bwd(dx_in, dx0, part, dn, dxm, x_in, x0, mix, rstd, N, C, scale);
    column_partials_add(dmix, part, N, 2 * C);
}

// ops.h's scaled_add_rmsnorm_backward: per row the norm's output recomputed from its input x as the
// forward formed it (x rstd ln), the norm's dot (a block sum), then g = dx + the norm's backward into
// dx, dy = scale g and/or its rounding dyr, and the columns' partials of g y. Grid and columns as
// norm_mix_bwd's; dn and y fp32 or bf16.
template <class Dn, class Y>
__global__ static void add_norm_bwd(float *__restrict__ dx, float *__restrict__ dy, __nv_bfloat16 *__restrict__ dyr, double *part,
                                    const Dn *__restrict__ dn, const float *__restrict__ x, const float *__restrict__ rstd,
                                    const float *__restrict__ scale, const Y *__restrict__ y, int N, int C, float ln) {
    double s[NORM_MIX_COLS] = {0};
    for (int i = chunk_begin(); i < chunk_end(N); i++) {
        size_t row = (size_t)i * C;
        float r = rstd[i], d[NORM_MIX_COLS], v[NORM_MIX_COLS];
        double dot = 0;
#pragma unroll
        for (int k = 0; k < NORM_MIX_COLS; k++) {
            int c = threadIdx.x + k * blockDim.x;
            if (c >= C) break;
            d[k] = as_float(dn[row + c]), v[k] = x[row + c] * r * ln;
            dot += (double)d[k] * v[k];
        }
        float m = (float)(block_sum(dot) / C) / ln;
#pragma unroll
        for (int k = 0; k < NORM_MIX_COLS; k++) {
            int c = threadIdx.x + k * blockDim.x;
            if (c >= C) break;
            float g = dx[row + c] + r * (ln * d[k] - v[k] * m), t = g * scale[c];
            dx[row + c] = g;
            if (dy) dy[row + c] = t;
            if (dyr) dyr[row + c] = __float2bfloat16_rn(t);
            s[k] += (double)g * as_float(y[row + c]);
        }
    }
    for (int k = 0; k < NORM_MIX_COLS; k++) {
        int c = threadIdx.x + k * blockDim.x;
        if (c >= C) break;
        part[(size_t)blockIdx.y * C + c] = s[k];
    }
}

template <class Dn, class Y>
static void launch_add_norm_bwd(float *dx, float *dy, __nv_bfloat16 *dyr, double *part, const Dn *dn, const float *x,
                                const float *rstd, const float *scale, const Y *y, int N, int C, float ln) {
    auto kernel = add_norm_bwd<Dn, Y>;
    kernel<<<dim3(1, row_chunks(N)), NORM_MIX_THREADS>>>(dx, dy, dyr, part, dn, x, rstd, scale, y, N, C, ln);
    CUDA_CHECK_LAUNCH_AT("cuda_scaled_add_rmsnorm_backward");
}

extern "C" void cuda_scaled_add_rmsnorm_backward(float *dx, float *dy, float *dscale, const float *dn, const RoundedInput *dn_r,
                                                 const float *x, const float *rstd, const float *scale, const float *y,
                                                 const RoundedInput *y_r, int N, int C, float ln, RoundedInput *dy_r) {
    check_norm_row_width("scaled_add_rmsnorm_backward", C);
    size_t total = (size_t)N * C;
    const __nv_bfloat16 *dnb = cuda_input_rounded(__func__, dn, dn_r, total), *yb = cuda_input_rounded(__func__, y, y_r, total);
    __nv_bfloat16 *dyr = cuda_rounded_output(__func__, dy, dy_r, total);
    double *part = column_partials(N, C);
    if (dnb && yb) launch_add_norm_bwd(dx, dy, dyr, part, dnb, x, rstd, scale, yb, N, C, ln);
    else if (dnb) launch_add_norm_bwd(dx, dy, dyr, part, dnb, x, rstd, scale, y, N, C, ln);
    else if (yb) launch_add_norm_bwd(dx, dy, dyr, part, dn, x, rstd, scale, yb, N, C, ln);
    else launch_add_norm_bwd(dx, dy, dyr, part, dn, x, rstd, scale, y, N, C, ln);
    column_partials_add(dscale, part, N, C);
}

// out = x + scale y (out may be x); y fp32 or bf16 (a projection's output kept only rounded)
template <class Y>
__global__ static void scaled_add_fwd(float *out, const float *x, const float *scale, const Y *y, int N, int C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N * C) return;
    out[i] = x[i] + scale[i % C] * as_float(y[i]);
}

// grid (channels, row chunks): one thread per column of a chunk of rows. dy and/or its bf16 rounding
// dyr; either may be NULL. The outputs alias no input (ops.h, hence restrict), so the loads of later
// rows may be issued before this row's stores (several rows' loads in flight; the sums keep their order).
template <class Y>
__global__ static void scaled_add_bwd(float *__restrict__ dy, __nv_bfloat16 *__restrict__ dyr, double *part,
                                      const float *__restrict__ dout, const float *__restrict__ scale, const Y *__restrict__ y, int N,
                                      int C, int accumulate) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double s = 0;
#pragma unroll 4
    for (int n = chunk_begin(); n < chunk_end(N); n++) {
        size_t o = (size_t)n * C + c;
        s += (double)dout[o] * as_float(y[o]);
        float d = (accumulate ? dy[o] : 0) + dout[o] * scale[c];
        if (dy) dy[o] = d;
        if (dyr) dyr[o] = __float2bfloat16_rn(d);
    }
    part[(size_t)blockIdx.y * C + c] = s;
}

template <class Y> static void launch_scaled_add_fwd(float *out, const float *x, const float *scale, const Y *y, int N, int C) {
    auto kernel = scaled_add_fwd<Y>;
    kernel<<<blocks_for((size_t)N * C, THREADS), THREADS>>>(out, x, scale, y, N, C);
    CUDA_CHECK_LAUNCH_AT("cuda_scaled_add_forward");
}

template <class Y>
static void launch_scaled_add_bwd(float *dy, __nv_bfloat16 *dyr, double *part, const float *dout, const float *scale, const Y *y,
                                  int N, int C, int accumulate) {
    auto kernel = scaled_add_bwd<Y>;
    kernel<<<dim3(blocks_for((size_t)C, THREADS), row_chunks(N)), THREADS>>>(dy, dyr, part, dout, scale, y, N, C, accumulate);
    CUDA_CHECK_LAUNCH_AT("cuda_scaled_add_backward");
}

extern "C" void cuda_scaled_add_forward(float *out, const float *x, const float *scale, const float *y, const RoundedInput *y_r,
                                        int N, int C) {
    const __nv_bfloat16 *yb = cuda_input_rounded(__func__, y, y_r, (size_t)N * C);
    if (yb) launch_scaled_add_fwd(out, x, scale, yb, N, C);
    else launch_scaled_add_fwd(out, x, scale, y, N, C);
}

extern "C" void cuda_scaled_add_backward(float *dy, float *dscale, const float *dout, const float *scale, const float *y,
                                         const RoundedInput *y_r, int N, int C, int accumulate, RoundedInput *dy_r) {
    const __nv_bfloat16 *yb = cuda_input_rounded(__func__, y, y_r, (size_t)N * C);
    double *part = column_partials(N, C);
    __nv_bfloat16 *dyr = cuda_rounded_output(__func__, dy, dy_r, (size_t)N * C);
    if (!dy && accumulate) die("%s: nothing to accumulate into", __func__);
    if (yb) launch_scaled_add_bwd(dy, dyr, part, dout, scale, yb, N, C, accumulate);
    else launch_scaled_add_bwd(dy, dyr, part, dout, scale, y, N, C, accumulate);
    column_partials_add(dscale, part, N, C);
}

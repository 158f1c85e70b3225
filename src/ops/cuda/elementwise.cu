// Embedding lookup, relu^2 and the per-channel mixes of the residual stream. Per-channel parameter
// gradients sum over tokens with one thread per channel walking the rows in order: deterministic.
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

__global__ static void resid_mix_fwd(float *out, const float *x, const float *x0, const float *mix, int N, int C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N * C) return;
    int c = (int)(i % C);
    out[i] = mix[c] * x[i] + mix[C + c] * x0[i];
}

// grid (channels, row chunks): dx, dx0 for the chunk's column, and its two column partials.
// The outputs alias no input (ops.h), so the loads of later rows may be issued before this row's
// stores: several rows' loads in flight per thread instead of one (the sums keep their order).
__global__ static void resid_mix_bwd(float *__restrict__ dx, float *__restrict__ dx0, double *part, const float *__restrict__ dout,
                                     const float *__restrict__ x, const float *__restrict__ x0, const float *__restrict__ mix, int N,
                                     int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double s0 = 0, s1 = 0;
#pragma unroll 4
    for (int n = chunk_begin(); n < chunk_end(N); n++) {
        size_t o = (size_t)n * C + c;
        s0 += (double)dout[o] * x[o];
        s1 += (double)dout[o] * x0[o];
        dx0[o] += dout[o] * mix[C + c];
        dx[o] = dout[o] * mix[c];
    }
    part[(size_t)blockIdx.y * 2 * C + c] = s0;
    part[(size_t)blockIdx.y * 2 * C + C + c] = s1;
}

extern "C" void cuda_resid_mix_forward(float *out, const float *x, const float *x0, const float *mix, int N, int C) {
    resid_mix_fwd<<<blocks_for((size_t)N * C, THREADS), THREADS>>>(out, x, x0, mix, N, C);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_resid_mix_backward(float *dx, float *dx0, float *dmix, const float *dout, const float *x, const float *x0,
                                        const float *mix, int N, int C) {
    double *part = column_partials(N, 2 * C);
    resid_mix_bwd<<<dim3(blocks_for((size_t)C, THREADS), row_chunks(N)), THREADS>>>(dx, dx0, part, dout, x, x0, mix, N, C);
    CUDA_CHECK_LAUNCH();
    column_partials_add(dmix, part, N, 2 * C);
}

// y fp32 or bf16 (a projection's output kept only rounded)
template <class Y> __global__ static void scaled_add_fwd(float *x, const float *scale, const Y *y, int N, int C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N * C) return;
    x[i] += scale[i % C] * as_float(y[i]);
}

// grid (channels, row chunks), as resid_mix_bwd
// dy and/or its bf16 rounding dyr; either may be NULL; restrict as resid_mix_bwd's
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

template <class Y> static void launch_scaled_add_fwd(float *x, const float *scale, const Y *y, int N, int C) {
    auto kernel = scaled_add_fwd<Y>;
    kernel<<<blocks_for((size_t)N * C, THREADS), THREADS>>>(x, scale, y, N, C);
    CUDA_CHECK_LAUNCH_AT("cuda_scaled_add_forward");
}

template <class Y>
static void launch_scaled_add_bwd(float *dy, __nv_bfloat16 *dyr, double *part, const float *dout, const float *scale, const Y *y,
                                  int N, int C, int accumulate) {
    auto kernel = scaled_add_bwd<Y>;
    kernel<<<dim3(blocks_for((size_t)C, THREADS), row_chunks(N)), THREADS>>>(dy, dyr, part, dout, scale, y, N, C, accumulate);
    CUDA_CHECK_LAUNCH_AT("cuda_scaled_add_backward");
}

extern "C" void cuda_scaled_add_forward(float *x, const float *scale, const float *y, const RoundedInput *y_r, int N, int C) {
    const __nv_bfloat16 *yb = cuda_input_rounded(__func__, y, y_r, (size_t)N * C);
    if (yb) launch_scaled_add_fwd(x, scale, yb, N, C);
    else launch_scaled_add_fwd(x, scale, y, N, C);
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

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

// out and/or its bf16 rounding (cuda_rounded_storage); either may be NULL
__global__ static void relu2_fwd(float *out, __nv_bfloat16 *rounded, const float *inp, size_t n, float slope) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float r = inp[i] > 0 ? inp[i] : slope * inp[i];
    if (out) out[i] = r * r;
    if (rounded) rounded[i] = __float2bfloat16_rn(r * r);
}

__global__ static void relu2_bwd(float *dinp, __nv_bfloat16 *rounded, const float *dout, const float *inp, size_t n,
                                 float slope) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float d = inp[i] > 0 ? 2 * inp[i] * dout[i] : 2 * slope * slope * inp[i] * dout[i];
    if (dinp) dinp[i] = d;
    if (rounded) rounded[i] = __float2bfloat16_rn(d);
}

// Where an op's result goes: out, its rounded copy, or both (out NULL: the copy only, bf16 mode only).
static __nv_bfloat16 *rounded_output(const char *op, float *out, RoundedInput *out_r, size_t n) {
    __nv_bfloat16 *rounded = cuda_rounded_storage(out_r, out, n);
    if (!out && !rounded) die("%s: no output (the fp32 result may be left out only in bf16 mode, with a RoundedInput)", op);
    return rounded;
}

extern "C" void cuda_relu2_forward(float *out, const float *inp, size_t n, float slope, RoundedInput *out_r) {
    relu2_fwd<<<blocks_for(n, THREADS), THREADS>>>(out, rounded_output(__func__, out, out_r, n), inp, n, slope);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_relu2_backward(float *dinp, const float *dout, const float *inp, size_t n, float slope,
                                    RoundedInput *dinp_r) {
    relu2_bwd<<<blocks_for(n, THREADS), THREADS>>>(dinp, rounded_output(__func__, dinp, dinp_r, n), dout, inp, n, slope);
    CUDA_CHECK_LAUNCH();
}

__global__ static void resid_mix_fwd(float *out, const float *x, const float *x0, const float *mix, int N, int C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N * C) return;
    int c = (int)(i % C);
    out[i] = mix[c] * x[i] + mix[C + c] * x0[i];
}

// grid (channels, row chunks): dx, dx0 for the chunk's column, and its two column partials.
__global__ static void resid_mix_bwd(float *dx, float *dx0, double *part, const float *dout, const float *x, const float *x0,
                                     const float *mix, int N, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double s0 = 0, s1 = 0;
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

__global__ static void scaled_add_fwd(float *x, const float *scale, const float *y, int N, int C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N * C) return;
    x[i] += scale[i % C] * y[i];
}

// grid (channels, row chunks), as resid_mix_bwd
// dy and/or its bf16 rounding dyr; either may be NULL
__global__ static void scaled_add_bwd(float *dy, __nv_bfloat16 *dyr, double *part, const float *dout, const float *scale,
                                      const float *y, int N, int C, int accumulate) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double s = 0;
    for (int n = chunk_begin(); n < chunk_end(N); n++) {
        size_t o = (size_t)n * C + c;
        s += (double)dout[o] * y[o];
        float d = (accumulate ? dy[o] : 0) + dout[o] * scale[c];
        if (dy) dy[o] = d;
        if (dyr) dyr[o] = __float2bfloat16_rn(d);
    }
    part[(size_t)blockIdx.y * C + c] = s;
}

extern "C" void cuda_scaled_add_forward(float *x, const float *scale, const float *y, int N, int C) {
    scaled_add_fwd<<<blocks_for((size_t)N * C, THREADS), THREADS>>>(x, scale, y, N, C);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_scaled_add_backward(float *dy, float *dscale, const float *dout, const float *scale, const float *y,
                                         int N, int C, int accumulate, RoundedInput *dy_r) {
    double *part = column_partials(N, C);
    __nv_bfloat16 *dyr = rounded_output(__func__, dy, dy_r, (size_t)N * C);
    if (!dy && accumulate) die("%s: nothing to accumulate into", __func__);
    scaled_add_bwd<<<dim3(blocks_for((size_t)C, THREADS), row_chunks(N)), THREADS>>>(dy, dyr, part, dout, scale, y, N, C,
                                                                                  accumulate);
    CUDA_CHECK_LAUNCH();
    column_partials_add(dscale, part, N, C);
}

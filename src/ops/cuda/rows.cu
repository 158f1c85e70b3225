// Row ops: rms norm (a warp per row) and the softcapped cross-entropy (a block per row). Row sums in a
// fixed order (shuffle butterflies, shared-memory trees), so results are deterministic.
#include <math.h>

#include "ops/cuda/cuda_check.h"
#include "ops/cuda/ops_cuda.h"

#define ROW_THREADS 256

__device__ static double block_max(double v) {
    __shared__ double buf[ROW_THREADS];
    buf[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) buf[threadIdx.x] = fmax(buf[threadIdx.x], buf[threadIdx.x + s]);
        __syncthreads();
    }
    double r = buf[0];
    __syncthreads();
    return r;
}

// rms norm: a warp per row (cuda_check.h's WARP_ROWS), its sums warp_sum's fixed butterfly. A block
// per row made the per-head norms of q and k (64 values) half a million tiny blocks per call.

// yr: out rounded to bf16 as well (cuda_rounded_storage), or NULL
__global__ static void rmsnorm_fwd(float *out, __nv_bfloat16 *yr, float *rstd, const float *inp, int rows, int C, float eps,
                                   float scale) {
    int row = warp_row(), lane = threadIdx.x % 32;
    if (row >= rows) return; // the whole warp
    const float *x = inp + (size_t)row * C;
    float *y = out + (size_t)row * C;
    float s = warp_rstd(x, C, eps);
    if (lane == 0) rstd[row] = s;
    for (int i = lane; i < C; i += 32) {
        y[i] = x[i] * s * scale;
        if (yr) yr[(size_t)row * C + i] = __float2bfloat16_rn(y[i]);
    }
}

// dout fp32 or bf16 (a linear layer's input gradient kept only rounded)
template <class Dout>
__global__ static void rmsnorm_bwd(float *dinp, const Dout *dout, const float *out, const float *rstd, int rows, int C,
                                   float scale, int accumulate) {
    int row = warp_row(), lane = threadIdx.x % 32;
    if (row >= rows) return; // the whole warp
    const Dout *dy = dout + (size_t)row * C;
    const float *y = out + (size_t)row * C;
    float *dx = dinp + (size_t)row * C;
    double dot = 0;
    for (int i = lane; i < C; i += 32) dot += (double)as_float(dy[i]) * y[i];
    dot = warp_sum(dot);
    float m = (float)(dot / C) / scale, s = rstd[row];
    for (int i = lane; i < C; i += 32) {
        float g = s * (scale * as_float(dy[i]) - y[i] * m);
        dx[i] = accumulate ? dx[i] + g : g;
    }
}

template <class Dout>
static void launch_rmsnorm_bwd(float *dinp, const Dout *dout, const float *out, const float *rstd, int rows, int C, float scale,
                               int accumulate) {
    auto kernel = rmsnorm_bwd<Dout>; // through a variable: the emulator's launch rewrite needs a plain name
    kernel<<<warp_row_blocks((size_t)rows), WARP_ROW_THREADS>>>(dinp, dout, out, rstd, rows, C, scale, accumulate);
    CUDA_CHECK_LAUNCH_AT("cuda_rmsnorm_backward");
}

extern "C" void cuda_rmsnorm_forward(float *out, float *rstd, const float *inp, int rows, int C, float eps, float scale,
                                     RoundedInput *out_r) {
    __nv_bfloat16 *yr = cuda_rounded_storage(out_r, out, (size_t)rows * C);
    rmsnorm_fwd<<<warp_row_blocks((size_t)rows), WARP_ROW_THREADS>>>(out, yr, rstd, inp, rows, C, eps, scale);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_rmsnorm_backward(float *dinp, const float *dout, const RoundedInput *dout_r, const float *out,
                                      const float *rstd, int rows, int C, float scale, int accumulate) {
    const __nv_bfloat16 *dyb = cuda_input_rounded(__func__, dout, dout_r, (size_t)rows * C);
    if (dyb) launch_rmsnorm_bwd(dinp, dyb, out, rstd, rows, C, scale, accumulate);
    else launch_rmsnorm_bwd(dinp, dout, out, rstd, rows, C, scale, accumulate);
}

__global__ static void xent_fwd(float *loss, const float *z, const int32_t *targets, int V, float cap) {
    const float *zr = z + (size_t)blockIdx.x * V;
    double m = -INFINITY, sum = 0;
    for (int v = threadIdx.x; v < V; v += blockDim.x) m = fmax(m, (double)(cap * tanhf(zr[v] / cap)));
    m = block_max(m);
    for (int v = threadIdx.x; v < V; v += blockDim.x) sum += exp(cap * tanhf(zr[v] / cap) - m);
    sum = block_sum(sum);
    if (threadIdx.x == 0) loss[blockIdx.x] = (float)(m + log(sum) - cap * tanhf(zr[targets[blockIdx.x]] / cap));
}

// In place: z becomes scale * (softmax(l) - onehot) * (1 - tanh^2), l = cap tanh(z / cap).
__global__ static void xent_bwd(float *z, const int32_t *targets, int V, float cap, float scale) {
    float *zr = z + (size_t)blockIdx.x * V;
    double m = -INFINITY, sum = 0;
    for (int v = threadIdx.x; v < V; v += blockDim.x) m = fmax(m, (double)(cap * tanhf(zr[v] / cap)));
    m = block_max(m);
    for (int v = threadIdx.x; v < V; v += blockDim.x) sum += exp(cap * tanhf(zr[v] / cap) - m);
    sum = block_sum(sum);
    int target = targets[blockIdx.x];
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        float t = tanhf(zr[v] / cap);
        double p = exp(cap * t - m) / sum - (v == target ? 1.0 : 0.0);
        zr[v] = (float)(scale * p * (1.0 - (double)t * t));
    }
}

extern "C" void cuda_softcap_xent_forward(float *loss, const float *z, const int32_t *targets, int N, int V, float cap) {
    xent_fwd<<<N, ROW_THREADS>>>(loss, z, targets, V, cap);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_softcap_xent_backward(float *z, const int32_t *targets, int N, int V, float cap, float scale) {
    xent_bwd<<<N, ROW_THREADS>>>(z, targets, V, cap, scale);
    CUDA_CHECK_LAUNCH();
}

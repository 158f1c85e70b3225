// One thread block per row: rms norm and the softcapped cross-entropy. Row sums in a fixed tree
// order (shared memory), so results are deterministic.
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

__global__ static void rmsnorm_fwd(float *out, float *rstd, const float *inp, int C, float eps, float scale) {
    const float *x = inp + (size_t)blockIdx.x * C;
    float *y = out + (size_t)blockIdx.x * C;
    double ss = 0;
    for (int i = threadIdx.x; i < C; i += blockDim.x) ss += (double)x[i] * x[i];
    ss = block_sum(ss);
    float s = (float)(1.0 / sqrt(ss / C + eps));
    if (threadIdx.x == 0) rstd[blockIdx.x] = s;
    for (int i = threadIdx.x; i < C; i += blockDim.x) y[i] = x[i] * s * scale;
}

__global__ static void rmsnorm_bwd(float *dinp, const float *dout, const float *out, const float *rstd, int C,
                                   float scale, int accumulate) {
    const float *dy = dout + (size_t)blockIdx.x * C, *y = out + (size_t)blockIdx.x * C;
    float *dx = dinp + (size_t)blockIdx.x * C;
    double dot = 0;
    for (int i = threadIdx.x; i < C; i += blockDim.x) dot += (double)dy[i] * y[i];
    dot = block_sum(dot);
    float m = (float)(dot / C) / scale, s = rstd[blockIdx.x];
    for (int i = threadIdx.x; i < C; i += blockDim.x) {
        float g = s * (scale * dy[i] - y[i] * m);
        dx[i] = accumulate ? dx[i] + g : g;
    }
}

// Threads for a row of C values: about two values each, from one warp (the per-head norms of q and
// k, C = 64) to ROW_THREADS (the model width), so short rows do not leave most threads idle.
static unsigned norm_threads(int C) {
    unsigned n = 32;
    while (n < ROW_THREADS && 2 * n < (unsigned)C) n *= 2;
    return n;
}

extern "C" void cuda_rmsnorm_forward(float *out, float *rstd, const float *inp, int rows, int C, float eps, float scale) {
    rmsnorm_fwd<<<rows, norm_threads(C)>>>(out, rstd, inp, C, eps, scale);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_rmsnorm_backward(float *dinp, const float *dout, const float *out, const float *rstd, int rows, int C,
                                      float scale, int accumulate) {
    rmsnorm_bwd<<<rows, norm_threads(C)>>>(dinp, dout, out, rstd, C, scale, accumulate);
    CUDA_CHECK_LAUNCH();
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

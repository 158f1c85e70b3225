// The optimizers' ops on the GPU (optim/ drives them, as on the CPU): Nesterov momentum, row
// normalisation, transposition, the Adam step, the EMA (their reductions: reduce.cu).
#include <math.h>

#include "ops/cuda/cuda_check.h"
#include "ops/cuda/ops_cuda.h"

#define THREADS 256

__global__ static void adam_kernel(float *p, const float *g, float *m, float *v, size_t n, float b1, float b2, float eps,
                                   float step_size, float bc2_sqrt) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    m[i] = b1 * m[i] + (1 - b1) * g[i];
    v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
    p[i] -= step_size * m[i] / (sqrtf(v[i]) / bc2_sqrt + eps);
}

extern "C" void cuda_adam_step(float *p, const float *g, float *m, float *v, size_t n, float b1, float b2, float eps,
                               float step_size, float bc2_sqrt) {
    adam_kernel<<<blocks_for(n, THREADS), THREADS>>>(p, g, m, v, n, b1, b2, eps, step_size, bc2_sqrt);
    CUDA_CHECK_LAUNCH();
}

__global__ static void ema_kernel(float *ema, const float *w, size_t n, float d, float keep) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) ema[i] = d * ema[i] + keep * w[i];
}

extern "C" void cuda_ema_step(float *ema, const float *w, size_t n, double decay) {
    ema_kernel<<<blocks_for(n, THREADS), THREADS>>>(ema, w, n, (float)decay, (float)(1.0 - decay));
    CUDA_CHECK_LAUNCH();
}

__global__ static void nesterov_kernel(float *u, float *buf, const float *g, size_t n, float mom) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    buf[i] = mom * buf[i] + g[i];
    u[i] = g[i] + mom * buf[i];
}

extern "C" void cuda_nesterov_momentum(float *update, float *buf, const float *g, size_t n, float momentum) {
    nesterov_kernel<<<blocks_for(n, THREADS), THREADS>>>(update, buf, g, n, momentum);
    CUDA_CHECK_LAUNCH();
}

// One block per row.
__global__ static void normalize_rows_kernel(float *x, int cols, double s) {
    float *row = x + (size_t)blockIdx.x * cols;
    double ss = 0;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) ss += (double)row[c] * row[c];
    ss = block_sum(ss);
    float f = (float)(s / fmax(s * sqrt(ss), 1e-7));
    for (int c = threadIdx.x; c < cols; c += blockDim.x) row[c] *= f;
}

extern "C" void cuda_normalize_rows(float *x, int rows, int cols, double s) {
    normalize_rows_kernel<<<rows, THREADS>>>(x, cols, s);
    CUDA_CHECK_LAUNCH();
}

__global__ static void transpose_kernel(float *out, const float *in, int rows, int cols) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)rows * cols) return;
    int r = (int)(i / cols), c = (int)(i % cols);
    out[(size_t)c * rows + r] = in[i];
}

extern "C" void cuda_transpose(float *out, const float *in, int rows, int cols) {
    transpose_kernel<<<blocks_for((size_t)rows * cols, THREADS), THREADS>>>(out, in, rows, cols);
    CUDA_CHECK_LAUNCH();
}

__global__ static void scale_kernel(float *x, float s, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= s;
}

extern "C" void cuda_scale_inplace(float *x, float s, size_t n) {
    scale_kernel<<<blocks_for(n, THREADS), THREADS>>>(x, s, n);
    CUDA_CHECK_LAUNCH();
}

// x *= 1 / (sqrt(*sum_sq) + eps), the scale in double as the CPU op forms it
__global__ static void unit_norm_kernel(float *x, const double *sum_sq, size_t n, double eps) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= (float)(1.0 / (sqrt(*sum_sq) + eps));
}

extern "C" void cuda_scale_to_unit_norm(float *x, size_t n, double eps) {
    const double *sum_sq = cuda_dots_on_device(x, x, nullptr, n);
    unit_norm_kernel<<<blocks_for(n, THREADS), THREADS>>>(x, sum_sq, n, eps);
    CUDA_CHECK_LAUNCH();
}

__global__ static void sgd_kernel(float *p, const float *g, float *buf, size_t n, float mom, float lr) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    buf[i] = mom * buf[i] + g[i];
    p[i] -= lr * buf[i];
}

extern "C" void cuda_sgd_momentum_step(float *p, const float *g, float *buf, size_t n, float momentum, float lr) {
    sgd_kernel<<<blocks_for(n, THREADS), THREADS>>>(p, g, buf, n, momentum, lr);
    CUDA_CHECK_LAUNCH();
}

// One block per row: the row's max, then round-half-even (rintf) onto the int6 grid.
__global__ static void fake_quant_kernel(float *w, int cols) {
    __shared__ float buf[THREADS];
    float *row = w + (size_t)blockIdx.x * cols, amax = 0;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) amax = fmaxf(amax, fabsf(row[c]));
    buf[threadIdx.x] = amax;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if ((int)threadIdx.x < k) buf[threadIdx.x] = fmaxf(buf[threadIdx.x], buf[threadIdx.x + k]);
        __syncthreads();
    }
    float s = fmaxf(buf[0] / 31.0f, 1.0f / 31.0f);
    for (int c = threadIdx.x; c < cols; c += blockDim.x) row[c] = fminf(fmaxf(rintf(row[c] / s), -32.0f), 31.0f) * s;
}

extern "C" void cuda_fake_quantize_rows(float *w, int rows, int cols) {
    fake_quant_kernel<<<rows, THREADS>>>(w, cols);
    CUDA_CHECK_LAUNCH();
}

// The optimizers on the GPU: Adam, Muon (Nesterov momentum, MuonEq-R / NorMuon row norms, the quintic
// Newton-Schulz iteration through cuBLAS) and the EMA, with optim/'s arithmetic.
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

extern "C" void cuda_adam_update(float *p, const float *g, float *m, float *v, size_t n, double beta1, double beta2, double eps,
                                 double lr, int64_t step) {
    double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
    adam_kernel<<<blocks_for(n, THREADS), THREADS>>>(p, g, m, v, n, (float)beta1, (float)beta2, (float)eps, (float)(lr / bc1),
                                                    (float)sqrt(bc2));
    CUDA_CHECK_LAUNCH();
}

__global__ static void ema_kernel(float *ema, const float *w, size_t n, float d) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) ema[i] = d * ema[i] + (1 - d) * w[i];
}

extern "C" void cuda_ema_update(float *ema, const float *w, size_t n, double decay) {
    ema_kernel<<<blocks_for(n, THREADS), THREADS>>>(ema, w, n, (float)decay);
    CUDA_CHECK_LAUNCH();
}

// buf = m buf + g; u = g + m buf (Nesterov)
__global__ static void nesterov(float *u, float *buf, const float *g, size_t n, float mom) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    buf[i] = mom * buf[i] + g[i];
    u[i] = g[i] + mom * buf[i];
}

// Each row times s / max(s |row|, 1e-7); one block per row.
__global__ static void normalize_rows_kernel(float *x, int cols, float s) {
    float *row = x + (size_t)blockIdx.x * cols;
    double ss = 0;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) ss += (double)row[c] * row[c];
    ss = block_sum(ss);
    float f = (float)(s / fmax(s * sqrt(ss), 1e-7));
    for (int c = threadIdx.x; c < cols; c += blockDim.x) row[c] *= f;
}

__global__ static void sum_squares_kernel(double *out, const float *x, size_t n) {
    double s = 0;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) s += (double)x[i] * x[i];
    s = block_sum(s);
    if (threadIdx.x == 0) *out = s;
}

// p = p * decay - step * u
__global__ static void apply_update(float *p, const float *u, size_t n, float decay, float step) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) p[i] = p[i] * decay - step * u[i];
}

// Newton-Schulz on X [r x k] row-major (r <= k), in place; A, Bm: r x r scratch, Xn: r x k scratch.
// Row-major X is column-major X^T [k x r]; A = X X^T is symmetric, so its layout is the same either way.
static void newton_schulz(float *X, float *Xn, float *A, float *Bm, int r, int k, int steps) {
    const float a = 3.4445f, b = -4.7750f, c = 2.0315f, one = 1, zero = 0;
    cublasHandle_t h = cuda_blas();
    for (int s = 0; s < steps; s++) {
        // A = X X^T: column-major (X^T)^T X^T with X^T [k x r]
        CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, r, r, k, &one, X, k, X, k, &zero, A, r));
        CUDA_CHECK(cudaMemcpy(Bm, A, sizeof(float) * r * r, cudaMemcpyDeviceToDevice));
        CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, r, r, r, &c, A, r, A, r, &b, Bm, r)); // B = b A + c A A
        CUDA_CHECK(cudaMemcpy(Xn, X, sizeof(float) * r * k, cudaMemcpyDeviceToDevice));
        // X' = a X + B X; column-major X'^T = a X^T + X^T B^T, and B is symmetric
        CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, k, r, r, &one, X, k, Bm, r, &a, Xn, k));
        CUDA_CHECK(cudaMemcpy(X, Xn, sizeof(float) * r * k, cudaMemcpyDeviceToDevice));
    }
}

__global__ static void transpose(float *out, const float *in, int rows, int cols) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)rows * cols) return;
    int r = (int)(i / cols), c = (int)(i % cols);
    out[(size_t)c * rows + r] = in[i];
}

__global__ static void scale_kernel(float *x, size_t n, float s) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= s;
}

extern "C" void cuda_muon_update(float *p, const float *g, float *buf, int rows, int cols, double momentum, int steps,
                                 int row_normalize, int normalize_update_rows, double lr, double wd) {
    size_t n = (size_t)rows * cols;
    int tr = rows > cols, r = tr ? cols : rows, k = tr ? rows : cols;
    float *u = cuda_alloc(n), *X = cuda_alloc(n), *Xn = cuda_alloc(n), *A = cuda_alloc((size_t)r * r),
          *Bm = cuda_alloc((size_t)r * r);
    double *ss = nullptr, host_ss = 0;
    CUDA_CHECK(cudaMalloc(&ss, sizeof(double)));
    nesterov<<<blocks_for(n, THREADS), THREADS>>>(u, buf, g, n, (float)momentum);
    CUDA_CHECK_LAUNCH();
    if (row_normalize) { // MuonEq-R
        normalize_rows_kernel<<<rows, THREADS>>>(u, cols, 1.0f);
        CUDA_CHECK_LAUNCH();
    }
    sum_squares_kernel<<<1, THREADS>>>(ss, u, n);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaMemcpy(&host_ss, ss, sizeof(double), cudaMemcpyDeviceToHost));
    if (tr) {
        transpose<<<blocks_for(n, THREADS), THREADS>>>(X, u, rows, cols);
    } else {
        CUDA_CHECK(cudaMemcpy(X, u, sizeof(float) * n, cudaMemcpyDeviceToDevice));
    }
    CUDA_CHECK_LAUNCH();
    scale_kernel<<<blocks_for(n, THREADS), THREADS>>>(X, n, (float)(1.0 / (sqrt(host_ss) + 1e-7)));
    CUDA_CHECK_LAUNCH();
    newton_schulz(X, Xn, A, Bm, r, k, steps);
    if (tr) {
        transpose<<<blocks_for(n, THREADS), THREADS>>>(u, X, cols, rows);
    } else {
        CUDA_CHECK(cudaMemcpy(u, X, sizeof(float) * n, cudaMemcpyDeviceToDevice));
    }
    CUDA_CHECK_LAUNCH();
    double scale = tr ? sqrt((double)rows / cols) : 1.0;
    if (normalize_update_rows) { // #413's NorMuon: the aspect scale cancels
        normalize_rows_kernel<<<rows, THREADS>>>(u, cols, (float)scale);
        CUDA_CHECK_LAUNCH();
        scale = 1;
    }
    apply_update<<<blocks_for(n, THREADS), THREADS>>>(p, u, n, (float)(1.0 - lr * wd), (float)(lr * scale));
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaFree(ss));
    cuda_free(u), cuda_free(X), cuda_free(Xn), cuda_free(A), cuda_free(Bm);
}

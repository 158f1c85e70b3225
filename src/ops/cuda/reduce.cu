// Deterministic reductions shared by the kernels: whole-buffer dot products and sums (gradient norms,
// the value-residual and skip-scale gradients) and per-column sums over row chunks (per-channel
// parameter gradients); and the reusable device scratch buffers they and the bridge use.
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/ops_cuda.h"

#define THREADS 256
#define REDUCE_BLOCKS 256

void *cuda_scratch(CudaScratch use, size_t bytes) {
    static void *buf[SCRATCH_COUNT];
    static size_t cap[SCRATCH_COUNT];
    if (bytes > cap[use]) {
        if (buf[use]) CUDA_CHECK(cudaFree(buf[use]));
        CUDA_CHECK(cudaMalloc(&buf[use], bytes));
        cap[use] = bytes;
    }
    return buf[use];
}

// ---------------------------------------------------------------- whole buffers
// REDUCE_BLOCKS blocks of partial sums over strided slices, then one block over the partials.

__global__ static void partial_dots(double *part, const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        s += b ? (double)a[i] * b[i] : (double)a[i];
    s = block_sum(s);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

__global__ static void final_sum(double *out, const double *part, int n) {
    double s = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += part[i];
    s = block_sum(s);
    if (threadIdx.x == 0) *out = s;
}

double cuda_dot(const float *a, const float *b, size_t n) {
    double *d = (double *)cuda_scratch(SCRATCH_REDUCE, sizeof(double) * (REDUCE_BLOCKS + 1)), h = 0;
    partial_dots<<<REDUCE_BLOCKS, THREADS>>>(d + 1, a, b, n);
    CUDA_CHECK_LAUNCH();
    final_sum<<<1, THREADS>>>(d, d + 1, REDUCE_BLOCKS);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaMemcpy(&h, d, sizeof(double), cudaMemcpyDeviceToHost));
    return h;
}

extern "C" double cuda_sum_squares(const float *x, size_t n) { return cuda_dot(x, x, n); }
extern "C" double cuda_sum_values(const float *x, size_t n) { return cuda_dot(x, nullptr, n); }

// ---------------------------------------------------------------- columns

double *column_partials(int N, int cols) {
    return (double *)cuda_scratch(SCRATCH_PARTIALS, sizeof(double) * row_chunks(N) * (size_t)cols);
}

__global__ static void add_partials(float *acc, const double *part, int chunks, int cols) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    double s = 0;
    for (int k = 0; k < chunks; k++) s += part[(size_t)k * cols + c];
    acc[c] += (float)s;
}

void column_partials_add(float *acc, const double *part, int N, int cols) {
    add_partials<<<blocks_for((size_t)cols, THREADS), THREADS>>>(acc, part, (int)row_chunks(N), cols);
    CUDA_CHECK_LAUNCH();
}

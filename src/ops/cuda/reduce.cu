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
// REDUCE_BLOCKS blocks of partial sums over strided slices, then one block over the partials; both
// sums of cuda_dots in the same pass.

__global__ static void partial_dots(double *part, const float *a, const float *b, const float *c, size_t n) {
    double s = 0, t = 0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        s += b ? (double)a[i] * b[i] : (double)a[i];
        if (c) t += (double)a[i] * c[i];
    }
    s = block_sum(s);
    t = block_sum(t);
    if (threadIdx.x == 0) part[blockIdx.x] = s, part[REDUCE_BLOCKS + blockIdx.x] = t;
}

// out[0], out[1]: the sums of part[0, n) and part[n, 2n)
__global__ static void final_sums(double *out, const double *part, int n) {
    double s = 0, t = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += part[i], t += part[n + i];
    s = block_sum(s);
    t = block_sum(t);
    if (threadIdx.x == 0) out[0] = s, out[1] = t;
}

const double *cuda_dots_on_device(const float *a, const float *b, const float *c, size_t n) {
    double *d = (double *)cuda_scratch(SCRATCH_REDUCE, sizeof(double) * (2 * REDUCE_BLOCKS + 2));
    partial_dots<<<REDUCE_BLOCKS, THREADS>>>(d + 2, a, b, c, n);
    CUDA_CHECK_LAUNCH();
    final_sums<<<1, THREADS>>>(d, d + 2, REDUCE_BLOCKS);
    CUDA_CHECK_LAUNCH();
    return d;
}

void cuda_dots(double out[2], const float *a, const float *b, const float *c, size_t n) {
    CUDA_CHECK(cudaMemcpy(out, cuda_dots_on_device(a, b, c, n), 2 * sizeof(double), cudaMemcpyDeviceToHost));
    cuda_profile_mark(__func__);
}

extern "C" double cuda_sum_squares(const float *x, size_t n) {
    double s[2];
    cuda_dots(s, x, x, nullptr, n);
    return s[0];
}

extern "C" double cuda_sum_values(const float *x, size_t n) {
    double s[2];
    cuda_dots(s, x, nullptr, nullptr, n);
    return s[0];
}

// ---------------------------------------------------------------- columns

double *column_partials(int N, int cols) {
    return (double *)cuda_scratch(SCRATCH_PARTIALS, sizeof(double) * row_chunks(N) * (size_t)cols);
}

// A block per 32 columns: its threads (column x, stripe y) sum the chunks y, y + PARTIAL_STRIPES, ...
// of their column (neighbouring threads, neighbouring columns), then the stripes' sums in stripe order.
// (A thread per column summing every chunk in turn took ~18 us per call, over 300 calls a baseline step.)
#define PARTIAL_STRIPES 8
__global__ static void add_partials(float *acc, const double *part, int chunks, int cols) {
    __shared__ double stripe[PARTIAL_STRIPES][32];
    int c = blockIdx.x * 32 + threadIdx.x;
    double s = 0;
    for (int k = threadIdx.y; c < cols && k < chunks; k += PARTIAL_STRIPES) s += part[(size_t)k * cols + c];
    stripe[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y || c >= cols) return;
    for (int y = 1; y < PARTIAL_STRIPES; y++) s += stripe[y][threadIdx.x];
    acc[c] += (float)s;
}

void column_partials_add(float *acc, const double *part, int N, int cols) {
    add_partials<<<blocks_for((size_t)cols, 32), dim3(32, PARTIAL_STRIPES)>>>(acc, part, (int)row_chunks(N), cols);
    CUDA_CHECK_LAUNCH();
}

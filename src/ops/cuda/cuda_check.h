// Every CUDA and cuBLAS call is checked: a failure stops pgolf with the call, the file and the reason.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

extern "C" void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

#define CUDA_CHECK(call)                                                                                   \
    do {                                                                                                   \
        cudaError_t err_ = (call);                                                                         \
        if (err_ != cudaSuccess) die("CUDA: %s failed at %s:%d: %s", #call, __FILE__, __LINE__, cudaGetErrorString(err_)); \
    } while (0)

#define CUBLAS_CHECK(call)                                                                                 \
    do {                                                                                                   \
        cublasStatus_t st_ = (call);                                                                       \
        if (st_ != CUBLAS_STATUS_SUCCESS) die("cuBLAS: %s failed at %s:%d: status %d", #call, __FILE__, __LINE__, (int)st_); \
    } while (0)

// After a kernel launch: launch errors now, execution errors at the next synchronizing call.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

static inline unsigned blocks_for(size_t n, unsigned threads) { return (unsigned)((n + threads - 1) / threads); }

// The one cuBLAS handle, created on first use in fp32 math without TF32 (dense.cu).
cublasHandle_t cuda_blas(void);

// The sum of v over a block of at most 256 threads, in a fixed tree order, returned to every thread.
__device__ inline double block_sum(double v) {
    __shared__ double buf[256];
    buf[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) buf[threadIdx.x] += buf[threadIdx.x + s];
        __syncthreads();
    }
    double r = buf[0];
    __syncthreads();
    return r;
}

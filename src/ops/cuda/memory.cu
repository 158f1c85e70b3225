// Device memory and transfers. No managed memory: the host decides every copy.
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/ops_cuda.h"

extern "C" int cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); // clear the sticky "no driver" error
        return 0;
    }
    return n;
}

extern "C" float *cuda_alloc(size_t n) {
    float *p = nullptr;
    CUDA_CHECK(cudaMalloc(&p, (n ? n : 1) * sizeof(float)));
    CUDA_CHECK(cudaMemset(p, 0, (n ? n : 1) * sizeof(float)));
    return p;
}

extern "C" int32_t *cuda_alloc_i32(size_t n) {
    int32_t *p = nullptr;
    CUDA_CHECK(cudaMalloc(&p, (n ? n : 1) * sizeof(int32_t)));
    return p;
}

extern "C" void cuda_free(void *p) {
    if (p) CUDA_CHECK(cudaFree(p));
}

extern "C" void cuda_upload(void *dst, const void *src, size_t bytes) {
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
    cuda_profile_mark(__func__);
}

extern "C" void cuda_download(void *dst, const void *src, size_t bytes) {
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
    cuda_profile_mark(__func__);
}

extern "C" void cuda_sync(void) { CUDA_CHECK(cudaDeviceSynchronize()); }

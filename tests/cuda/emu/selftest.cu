// The emulator's own tests: each kernel or call below has a bug a GPU would punish, and the emulator
// must notice it (`make cuda-emu-test` runs them with the CUDA ops' tests).
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "ops/cuda/cuda_check.h"
#include "ops/cuda/warp_mma.h"

extern "C" {
#include "../../test.h"
}

static float *device_floats(size_t n) {
    float *p = nullptr;
    cudaMalloc(&p, sizeof(float) * n);
    return p;
}

// Thread 0 sums what every thread wrote to shared memory, without the barrier between.
__global__ static void racy_sum(float *out) {
    __shared__ float buf[64];
    buf[threadIdx.x] = 1.0f;
    if (threadIdx.x == 0) {
        float s = 0;
        for (int i = 0; i < 64; i++) s += buf[i];
        *out = s;
    }
}

__global__ static void barrier_sum(float *out) {
    __shared__ float buf[64];
    buf[threadIdx.x] = 1.0f;
    __syncthreads();
    if (threadIdx.x == 0) {
        float s = 0;
        for (int i = 0; i < 64; i++) s += buf[i];
        *out = s;
    }
}

static float sum_with(void (*kernel)(float *), bool reverse) {
    float *d = device_floats(1), h = 0;
    bool was = emu::set_reverse_order(reverse);
    kernel<<<1, 64>>>(d);
    emu::set_reverse_order(was);
    cudaMemcpy(&h, d, sizeof h, cudaMemcpyDeviceToHost);
    cudaFree(d);
    return h;
}

TEST(emu_missing_barrier_changes_result) {
    CHECK(sum_with(barrier_sum, false) == 64 && sum_with(barrier_sum, true) == 64, "the correct kernel sums to 64");
    CHECK(sum_with(racy_sum, false) != 64, "without its barrier the sum must come out wrong in one thread order");
}

__global__ static void fill(float *x, int n, float v) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) x[i] = v; // one too many
}

static void launch_past_end(void *) {
    float *d = device_floats(100);
    fill<<<1, 128>>>(d, 100, 1.0f);
}

static void launch_with_host_pointer(void *) {
    static float host[4];
    fill<<<1, 4>>>(host, 3, 1.0f);
}

static void host_reads_device(void *) {
    float *d = device_floats(4);
    volatile float x = d[1];
    (void)x;
}

static void copy_with_wrong_kind(void *) {
    float *d = device_floats(4), h[4] = {0};
    cudaMemcpy(d, h, sizeof h, cudaMemcpyDeviceToHost);
}

static void gemm_past_end(void *) {
    float *a = device_floats(16), *b = device_floats(16), *c = device_floats(12), one = 1, zero = 0;
    cublasHandle_t h;
    cublasCreate(&h);
    cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, a, 4, b, 4, &zero, c, 4); // C needs 16 floats
}

__global__ static void divergent_barrier(float *x) {
    if (threadIdx.x == 0) return;
    __syncthreads();
    x[threadIdx.x] = 1.0f;
}

static void launch_divergent_barrier(void *) {
    float *d = device_floats(32);
    divergent_barrier<<<1, 32>>>(d);
}

// Each lane gives ldmatrix a row 8 bytes off 16-byte alignment (tests/cuda/test_warp_mma.cu checks the
// fragment layouts themselves, on the emulator and on a GPU).
__global__ static void ldmatrix_misaligned(unsigned *out) {
    extern __shared__ __align__(16) __nv_bfloat16 rows[];
    for (int e = threadIdx.x; e < 33 * 8; e += 32) rows[e] = __float2bfloat16_rn(1.0f);
    __syncthreads();
    unsigned r[4];
    ldmatrix_x4(r, rows + threadIdx.x * 8 + 4);
    out[threadIdx.x] = r[0];
}

static void launch_ldmatrix_misaligned(void *) {
    unsigned *d = nullptr;
    cudaMalloc(&d, 32 * sizeof(unsigned));
    ldmatrix_misaligned<<<1, 32, 33 * 8 * sizeof(__nv_bfloat16)>>>(d);
}

// Four floats read as one vector from a row that starts 4 bytes off 16-byte alignment (a row of an odd
// width; vectors_fit is what keeps the kernels from doing this).
__global__ static void vector_misaligned(float *x) {
    float v[4];
    load_floats<4>(v, x + 1);
    x[0] = v[0];
}

static void launch_vector_misaligned(void *) {
    float *d = device_floats(8);
    cudaMemset(d, 0, 8 * sizeof(float));
    vector_misaligned<<<1, 1>>>(d);
    cudaDeviceSynchronize();
}

TEST(emu_reports_what_a_gpu_would_punish) {
    CHECK(test_dies_with(launch_past_end, nullptr, "AddressSanitizer"), "a kernel writing past its allocation");
    CHECK(test_dies_with(launch_with_host_pointer, nullptr, "host memory a GPU cannot read"), "a kernel given host memory");
    CHECK(test_dies_with(host_reads_device, nullptr, "use-after-poison"), "host code reading device memory");
    CHECK(test_dies_with(copy_with_wrong_kind, nullptr, "cudaMemcpy destination"), "a copy of the wrong kind");
    CHECK(test_dies_with(gemm_past_end, nullptr, "run past the end"), "a cuBLAS operand too short");
    CHECK(test_dies_with(launch_divergent_barrier, nullptr, "a barrier not every thread reaches"), "a divergent barrier");
    CHECK(test_dies_with(launch_ldmatrix_misaligned, nullptr, "is not 16-byte aligned"), "an ldmatrix row 8 bytes off alignment");
    CHECK(test_dies_with(launch_vector_misaligned, nullptr, "misaligned address"), "a float4 access 4 bytes off alignment");
}

__global__ static void big_shared(float *out) {
    extern __shared__ float sh[];
    sh[threadIdx.x] = 1.0f;
    out[threadIdx.x] = sh[threadIdx.x];
}

TEST(emu_refuses_launches_a_gpu_refuses) {
    float *d = device_floats(4096), h = 0;
    cudaMemset(d, 0, sizeof(float) * 4096);
    fill<<<1, 2048>>>(d, 2047, 5.0f);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "a block of 2048 threads is refused");
    fill<<<dim3(1, 70000), 32>>>(d, 31, 5.0f);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "a grid 70000 blocks high is refused");
    cudaMemcpy(&h, d, sizeof h, cudaMemcpyDeviceToHost);
    CHECK(h == 0, "a refused kernel does not run");
    CHECK(cudaGetLastError() == cudaSuccess, "the error is cleared once read");
    big_shared<<<1, 32, 64 * 1024>>>(d);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "64 KiB of shared memory without the opt-in is refused");
    CHECK(cudaFuncSetAttribute(big_shared, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024) == cudaSuccess, "opt-in");
    big_shared<<<1, 32, 64 * 1024>>>(d);
    CHECK(cudaGetLastError() == cudaSuccess, "64 KiB after the opt-in runs");
    CHECK(cudaFuncSetAttribute(big_shared, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024) != cudaSuccess,
          "an opt-in beyond what every bf16 GPU has is refused");
    cudaFree(d);
}

// ---- shuffles

// Two warps, each lane adding its id over a butterfly of __shfl_xor_sync: every lane of warp w ends
// with the sum of its warp's ids. Threads from `active` on return first (whole warps may: a warp's
// shuffles need only its own lanes).
__global__ static void butterfly(float *out, int active) {
    if ((int)threadIdx.x >= active) return;
    float v = (float)threadIdx.x;
    for (int s = 16; s > 0; s >>= 1) v += __shfl_xor_sync(0xffffffffu, v, s);
    out[threadIdx.x] = v;
}

static void butterfly_lane_missing(void *) {
    float *d = device_floats(64);
    butterfly<<<1, 64>>>(d, 40);
}

TEST(emu_warp_shuffles) {
    float *d = device_floats(64), h[64];
    bool was = emu::set_reverse_order(false);
    for (int reverse = 0; reverse < 2; reverse++)
        for (int active = 32; active <= 64; active += 32) {
            emu::set_reverse_order(reverse);
            butterfly<<<1, 64>>>(d, active);
            cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost);
            for (int i = 0; i < active; i++)
                CHECK(h[i] == (i < 32 ? 496.0f : 1520.0f), "lane %d of %d: butterfly sum %g (thread order %d)", i, active, h[i],
                      reverse);
        }
    emu::set_reverse_order(was); // the order EMU_THREAD_ORDER asked for, for the tests that follow
    CHECK(test_dies_with(butterfly_lane_missing, nullptr, "after a lane of its warp finished"),
          "a shuffle in a warp that lost lanes");
    cudaFree(d);
}

__global__ static void copy_kernel(float *out, const float *in, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = in[i];
}

TEST(emu_fresh_device_memory_is_nan) {
    float *in = device_floats(8), *out = device_floats(8), h[8];
    copy_kernel<<<1, 8>>>(out, in, 8);
    cudaMemcpy(h, out, sizeof h, cudaMemcpyDeviceToHost);
    CHECK(isnan(h[3]), "uninitialized device memory reads as NaN, so a kernel relying on zeros shows it");
    cudaFree(in);
    cudaFree(out);
}

// Block b adds 1 to what block b - 1 wrote: a chain no GPU orders (blocks run in any order, or at once).
__global__ static void block_chain(float *x) {
    if (threadIdx.x == 0) x[blockIdx.x + 1] = x[blockIdx.x] + 1;
}

// Only block 0 fills the shared row; every block sums it (the others read shared memory never written).
__global__ static void shared_from_block0(float *out) {
    extern __shared__ float row[];
    if (blockIdx.x == 0) row[threadIdx.x] = 1.0f;
    __syncthreads();
    if (threadIdx.x == 0) {
        float s = 0;
        for (int i = 0; i < 32; i++) s += row[i];
        out[blockIdx.x] = s;
    }
}

TEST(emu_blocks_are_independent) {
    float *d = device_floats(5), h[5];
    bool was = emu::set_reverse_order(false);
    float chain[2];
    for (int reverse = 0; reverse < 2; reverse++) {
        emu::set_reverse_order(reverse);
        cudaMemset(d, 0, sizeof h);
        block_chain<<<4, 32>>>(d);
        cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost);
        chain[reverse] = h[4];
    }
    CHECK(chain[0] == 4 && chain[1] != 4, "the chain through 4 blocks gave %g in block order and %g in reverse", chain[0],
          chain[1]);
    emu::set_reverse_order(was);
    shared_from_block0<<<2, 32, 32 * sizeof(float)>>>(d);
    cudaMemcpy(h, d, 2 * sizeof(float), cudaMemcpyDeviceToHost);
    CHECK(h[0] == 32 && isnan(h[1]), "block 1 read block 0's shared memory (%g, %g): each block's must start unwritten", h[0],
          h[1]);
    cudaFree(d);
}

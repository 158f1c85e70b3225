// Every CUDA and cuBLAS call is checked: a failure stops pgolf with the call, the file and the reason.
#pragma once
#include <stdint.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_bf16.h>
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

// After a kernel launch, cuBLAS call or copy: with PGOLF_CUDA_PROFILE set, waits for the GPU and charges
// the time since the previous mark to `where` (profile.cu); otherwise nothing.
void cuda_profile_mark(const char *where);

// After a kernel launch: launch errors now, execution errors at the next synchronizing call. The
// profile names the launching function, or `where` (inside a lambda, whose __func__ says nothing).
#define CUDA_CHECK_LAUNCH_AT(where)                                                                        \
    do {                                                                                                   \
        CUDA_CHECK(cudaGetLastError());                                                                    \
        cuda_profile_mark(where);                                                                          \
    } while (0)
#define CUDA_CHECK_LAUNCH() CUDA_CHECK_LAUNCH_AT(__func__)

static inline unsigned blocks_for(size_t n, unsigned threads) { return (unsigned)((n + threads - 1) / threads); }

// The one cuBLAS handle, created on first use; fp32 GEMMs run without TF32 (dense.cu).
cublasHandle_t cuda_blas(void);

// Device buffers reused from call to call, one per use, grown on demand (never shrunk). Kernels on the
// default stream run in order, so a buffer is never rewritten while an earlier kernel still reads it.
enum CudaScratch {
    SCRATCH_IDS,
    SCRATCH_HOST_ADD,
    SCRATCH_PARTIALS,
    SCRATCH_EMBED_ROWS,
    SCRATCH_REDUCE,
    SCRATCH_ATTN_ROWDOT,
    SCRATCH_ROW_SUMS, // qk_prep_backward's per-row gain contributions
    SCRATCH_BF16_A, // the linear layers' operands rounded to bf16 (dense.cu)
    SCRATCH_BF16_B,
    SCRATCH_ATTN_Q, // the tensor-core attention's operands rounded to bf16 (attention_tc.cu)
    SCRATCH_ATTN_K,
    SCRATCH_ATTN_V,
    SCRATCH_ATTN_DY,
    SCRATCH_ATTN_O, // cuDNN's attention (attention_cudnn.cu): its bf16 output O, and y rounded again for its backward
    SCRATCH_ATTN_DQ, // dQ, dK, dV: cuDNN's bf16 ones; also pgolf's fp32 ones where they are kept only rounded (dV: or strided)
    SCRATCH_ATTN_DK,
    SCRATCH_ATTN_DV,
    SCRATCH_ATTN_PACKED_V, // a strided v packed for pgolf's kernels (attention.cu)
    SCRATCH_CUDNN_WORKSPACE,
    SCRATCH_COUNT
};
void *cuda_scratch(CudaScratch use, size_t bytes);
// x [n] rounded to bf16 (nearest even) into the scratch buffer `use`, valid until its next use.
const __nv_bfloat16 *cuda_bf16_copy(CudaScratch use, const float *x, size_t n);
// out [n] = in widened to fp32 (exact)
void cuda_bf16_to_float(float *out, const __nv_bfloat16 *in, size_t n);
// out [n] (16-byte aligned, as cudaMalloc's) = x rounded to bf16
void cuda_round_to_bf16(__nv_bfloat16 *out, const float *x, size_t n);
// out and/or its rounding outr [rows, cols], rows ld_out apart, = in [rows, cols], rows ld_in apart: a
// column block of a wider row-major matrix gathered, scattered, widened or rounded (dense.cu)
void cuda_copy_columns(float *out, __nv_bfloat16 *outr, int ld_out, const float *in, int ld_in, int rows, int cols);
void cuda_copy_columns(float *out, __nv_bfloat16 *outr, int ld_out, const __nv_bfloat16 *in, int ld_in, int rows, int cols);
// For an op that writes x [n] and its rounding in one pass: makes r hold x (as matmul_input_round) and
// returns where the bf16 values go, or NULL in fp32 mode (nothing to write). r may be NULL (returns NULL).
struct RoundedInput;
__nv_bfloat16 *cuda_rounded_storage(struct RoundedInput *r, const float *x, size_t n);
// r's bf16 values of x [n], after checking that r holds them (a clear stop if not; `what` names the op).
const __nv_bfloat16 *cuda_rounded_values(const struct RoundedInput *r, const float *x, size_t n, const char *what);
// Where an op's result goes: out, its rounding (returned; NULL in fp32 mode or without out_r), or both;
// out NULL (the rounding only) is allowed in bf16 mode only.
__nv_bfloat16 *cuda_rounded_output(const char *op, float *out, struct RoundedInput *out_r, size_t n);
// An op's input x [n] given with its RoundedInput r (NULL: x itself): in bf16 mode r's bf16 values,
// returned (checked to be x's; x may then be NULL, an input kept only rounded); else NULL, and the op
// reads x (checked: given, and held by r when r is).
const __nv_bfloat16 *cuda_input_rounded(const char *op, const float *x, const struct RoundedInput *r, size_t n);
// A kernel's input value as fp32, whether its buffer holds fp32 or bf16 (cuda_input_rounded).
__device__ inline float as_float(float x) { return x; }
__device__ inline float as_float(__nv_bfloat16 x) { return __bfloat162float(x); }

// VEC consecutive values at p (aligned to VEC values) as floats, and back: one 16-byte access for 4 fp32,
// one 8-byte access for 4 bf16 (memory-bound kernels move whole vectors instead of value by value);
// VEC 1 is a plain access, for rows whose width or address rules vectors out (vectors_fit).
template <int VEC> __device__ inline void load_floats(float *v, const float *p) {
    if constexpr (VEC == 4) {
        float4 t = *(const float4 *)p;
        v[0] = t.x, v[1] = t.y, v[2] = t.z, v[3] = t.w;
    } else {
        static_assert(VEC == 1, "vectors of 4 or single values");
        v[0] = p[0];
    }
}
template <int VEC> __device__ inline void load_floats(float *v, const __nv_bfloat16 *p) {
    if constexpr (VEC == 4) {
        uint2 t = *(const uint2 *)p;
        __nv_bfloat16 h[4];
        memcpy(h, &t, sizeof t);
        for (int j = 0; j < 4; j++) v[j] = __bfloat162float(h[j]);
    } else {
        static_assert(VEC == 1, "vectors of 4 or single values");
        v[0] = __bfloat162float(p[0]);
    }
}
template <int VEC> __device__ inline void store_floats(float *p, const float *v) {
    if constexpr (VEC == 4) *(float4 *)p = make_float4(v[0], v[1], v[2], v[3]);
    else p[0] = v[0];
}
template <int VEC> __device__ inline void store_floats(__nv_bfloat16 *p, const float *v) {
    if constexpr (VEC == 4) {
        __nv_bfloat16 h[4];
        for (int j = 0; j < 4; j++) h[j] = __float2bfloat16_rn(v[j]);
        uint2 t;
        memcpy(&t, h, sizeof t);
        *(uint2 *)p = t;
    } else {
        p[0] = __float2bfloat16_rn(v[0]);
    }
}
// Whether runs of `width` values (a row's, or a whole buffer's) at these buffers (null ones ignored) take
// vectors of 4: the width a multiple of 4 and every buffer 16-byte aligned.
template <class... P> static inline bool vectors_fit(size_t width, const P *...p) {
    return width % 4 == 0 && ((((uintptr_t)p % 16) == 0) && ...);
}

// Per-column sums over many rows, deterministic and parallel: a kernel gives each (chunk of
// SUM_CHUNK_ROWS rows, column) pair one thread that writes its partial (double) to
// column_partials(N, cols)[chunk * cols + col]; column_partials_add then adds each column's partials
// into acc in a fixed order (reduce.cu). A fixed chunking, so the result does not depend on the GPU.
#define SUM_CHUNK_ROWS 256
static inline unsigned row_chunks(int N) { return N > 0 ? (unsigned)((N + SUM_CHUNK_ROWS - 1) / SUM_CHUNK_ROWS) : 1; }
double *column_partials(int N, int cols);
void column_partials_add(float *acc, const double *part, int N, int cols);
// In such a kernel: the first row of this block's chunk (blockIdx.y) and one past its last, of N rows.
__device__ inline int chunk_begin(void) { return blockIdx.y * SUM_CHUNK_ROWS; }
__device__ inline int chunk_end(int N) { return chunk_begin() + SUM_CHUNK_ROWS < N ? chunk_begin() + SUM_CHUNK_ROWS : N; }

// out[0] = a . b (the sum of a when b is null), out[1] = a . c (0 when c is null), over n values in
// one fixed-order pass.
void cuda_dots(double out[2], const float *a, const float *b, const float *c, size_t n);
// The same two sums left in device memory (valid until the next reduction), for a kernel to read.
const double *cuda_dots_on_device(const float *a, const float *b, const float *c, size_t n);

// The sum of v over the calling lane's group of `width` consecutive lanes (a power of two; the whole
// warp by default), returned to each of them: a butterfly of shuffles, the same additions in the same
// order on every run, and the same result on every lane of a group (each step adds a pair both ways
// round, and a + b == b + a). Every lane of the warp must call it.
__device__ inline double warp_sum(double v, int width = 32) {
    for (int s = width / 2; s > 0; s >>= 1) v += __shfl_xor_sync(0xffffffffu, v, s);
    return v;
}

// The sum of v over a block (a multiple of 32 threads, at most 1024), returned to every thread: each
// warp's butterfly, then the warps' sums in warp order: fixed, and two barriers, not one per tree level
// (the fused norm backward sums every row this way).
__device__ inline double block_sum(double v) {
    __shared__ double buf[32];
    v = warp_sum(v);
    if (threadIdx.x % 32 == 0) buf[threadIdx.x / 32] = v;
    __syncthreads();
    double r = 0;
    for (int w = 0; w < (int)(blockDim.x / 32); w++) r += buf[w];
    __syncthreads(); // the next call writes buf again
    return r;
}

// Kernels with a warp per row (its lanes across the row: neighbouring lanes, neighbouring floats)
// hold WARP_ROWS rows in a block of WARP_ROW_THREADS; warp_row() is the calling warp's row, and a
// warp past the last row returns whole (its shuffles need only its own lanes).
#define WARP_ROW_THREADS 256
#define WARP_ROWS (WARP_ROW_THREADS / 32)
__device__ inline int warp_row(void) { return blockIdx.x * WARP_ROWS + threadIdx.x / 32; }
static inline unsigned warp_row_blocks(size_t rows) { return blocks_for(rows, WARP_ROWS); }

// Attention's backward kernels: the lse and D values of n query rows of head h from row t0 (zeros
// past T) into shared memory; lse, D [B,H,T].
__device__ inline void load_row_stats(float *lse_s, float *D_s, const float *lse, const float *D, int b, int h, int t0, int n,
                                      int T, int H) {
    for (int r = threadIdx.x; r < n; r += blockDim.x) {
        size_t o = ((size_t)b * H + h) * T + t0 + r;
        lse_s[r] = t0 + r < T ? lse[o] : 0.0f;
        D_s[r] = t0 + r < T ? D[o] : 0.0f;
    }
}

// Attention on tensor cores (attention_tc.cu), used by attention.cu in bf16 mode for the head sizes
// it supports (a multiple of 16 up to 128); D [B,H,T] = rowsum(dy * y) and dyr (dy in bf16) computed by
// the caller.
// qkv_r: NULL or q, k, v already rounded (ops.h's attention_forward).
int cuda_attention_tc_supports(int Dh);
// An attention operand x [n] as bf16: r's values when given (checked), else x rounded into the scratch
// buffer `use`.
const __nv_bfloat16 *cuda_attention_operand(CudaScratch use, const float *x, const struct RoundedInput *r, size_t n);
// y and/or yr (its bf16 rounding) written; either may be NULL.
void cuda_attention_tc_forward(float *y, __nv_bfloat16 *yr, float *lse, const float *q, const float *k, const float *v,
                               const struct RoundedInput *qkv_r, int B, int T, int H, int Hkv, int Dh);
void cuda_attention_tc_backward(float *dq, float *dk, float *dv, const __nv_bfloat16 *dyr, const float *lse, const float *D,
                                const float *q, const float *k, const float *v, const struct RoundedInput *qkv_r, int B,
                                int T, int H, int Hkv, int Dh);

// cuDNN's fused attention (attention_cudnn.cu), linked only into builds made with CUDNN_HOME and
// CUDNN_FRONTEND: these symbols are weak, so a build without it sees null functions (attention.cu then
// runs its own kernels). The same arguments and results as the tensor-core kernels, for the same head
// sizes, but v (and dv, dvr) with rows ldv apart as ops.h's (the backward forms D itself, and reads dy, y
// as dyb, yb, their bf16 values, where given); each returns 0,
// having done nothing, where cuDNN has no plan for the shape (said once on stderr), and the caller runs
// pgolf's kernels instead. The version reads like "cudnn-9.13.0".
extern "C" {
__attribute__((weak)) const char *cuda_attention_cudnn_version(void);
__attribute__((weak)) int cuda_attention_cudnn_forward(float *y, __nv_bfloat16 *yr, float *lse, const float *q, const float *k,
                                                       const float *v, const struct RoundedInput *qkv_r, int B, int T, int H,
                                                       int Hkv, int Dh, int ldv);
__attribute__((weak)) int cuda_attention_cudnn_backward(float *dq, float *dk, float *dv, __nv_bfloat16 *dqr, __nv_bfloat16 *dkr,
                                                        __nv_bfloat16 *dvr, const float *dy, const __nv_bfloat16 *dyb,
                                                        const float *y, const __nv_bfloat16 *yb, const float *lse,
                                                        const float *q, const float *k, const float *v,
                                                        const struct RoundedInput *qkv_r, int B, int T, int H, int Hkv, int Dh,
                                                        int ldv);
}

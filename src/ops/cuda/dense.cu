// Linear layers through cuBLAS. Row-major [N, C] buffers are column-major [C, N] to cuBLAS, so each
// call below states its column-major form.
//
// Precision (ops_set_matmul_bf16; on by default, as the reference's autocast): the operands of the
// linear layers are rounded to bf16 into scratch buffers and multiplied on tensor cores with fp32
// accumulation and fp32 results (cublasGemmEx; no epilogue is needed, so not cuBLASLt). Weights stay
// fp32 masters; weight gradients come out fp32 (the reference's come out bf16). Off: fp32 SGEMM
// without TF32, matching the CPU to rounding. gram_upper (GPTQ's Hessians, SSYRK) always runs in fp32;
// matmul_gemm (Muon's Newton-Schulz, which the reference runs in bf16) follows the linear
// layers' precision.
#include <cuda_bf16.h>

#include "ops/cuda/cuda_check.h"
#include "ops/cuda/ops_cuda.h"
#include "ops/cuda/warp_mma.h"
extern "C" {
#include "ops/ops.h"
}

#define THREADS 256

static int g_matmul_bf16 = 1;

extern "C" void cuda_set_matmul_bf16(int on) { g_matmul_bf16 = on; }
extern "C" int cuda_matmul_bf16(void) { return g_matmul_bf16; }

cublasHandle_t cuda_blas(void) {
    static cublasHandle_t h = nullptr;
    if (!h) {
        CUBLAS_CHECK(cublasCreate(&h));
        CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
    }
    return h;
}

// out (16-byte aligned: a scratch buffer) = in rounded; 16-byte loads and 8-byte stores where in is
// aligned too (the pass is memory-bound: it ran at half the bandwidth one value per access).
__global__ static void round_to_bf16(__nv_bfloat16 *out, const float *in, size_t n) {
    size_t first = (size_t)blockIdx.x * blockDim.x + threadIdx.x, stride = (size_t)gridDim.x * blockDim.x, done = 0;
    if ((uintptr_t)in % 16 == 0) {
        for (size_t i = first; i < n / 4; i += stride) {
            float4 v = ((const float4 *)in)[i];
            ((uint2 *)out)[i] = make_uint2(pack_bf16(v.x, v.y), pack_bf16(v.z, v.w));
        }
        done = n / 4 * 4;
    }
    for (size_t i = done + first; i < n; i += stride) out[i] = __float2bfloat16_rn(in[i]);
}

void cuda_round_to_bf16(__nv_bfloat16 *out, const float *x, size_t n) {
    size_t blocks = (n / 4 + THREADS) / THREADS;
    round_to_bf16<<<(unsigned)(blocks < 4096 ? blocks : 4096), THREADS>>>(out, x, n);
    CUDA_CHECK_LAUNCH();
}

__global__ static void bf16_to_float(float *out, const __nv_bfloat16 *in, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = __bfloat162float(in[i]);
}

void cuda_bf16_to_float(float *out, const __nv_bfloat16 *in, size_t n) {
    size_t blocks = (n + THREADS - 1) / THREADS;
    bf16_to_float<<<(unsigned)(blocks < 4096 ? blocks : 4096), THREADS>>>(out, in, n);
    CUDA_CHECK_LAUNCH();
}

const __nv_bfloat16 *cuda_bf16_copy(CudaScratch use, const float *x, size_t n) {
    __nv_bfloat16 *out = (__nv_bfloat16 *)cuda_scratch(use, n * sizeof(__nv_bfloat16));
    cuda_round_to_bf16(out, x, n);
    return out;
}

// An operand of a linear layer as cuBLAS reads it: x itself (fp32), or x rounded to bf16 in the scratch
// buffer `use` (valid until that buffer's next use).
static const void *operand(CudaScratch use, const float *x, size_t n) {
    return g_matmul_bf16 ? (const void *)cuda_bf16_copy(use, x, n) : (const void *)x;
}

// Column-major C[m x n] = alpha op(A) op(B) + beta C on operands from operand(); fp32 sums, and fp32
// results (C_type CUDA_R_32F) or the sums rounded to bf16 (CUDA_R_16BF: C holds bf16).
static void linear_gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha, const void *A, int lda,
                        const void *B, int ldb, float beta, void *C, cudaDataType C_type, int ldc) {
    cudaDataType type = g_matmul_bf16 ? CUDA_R_16BF : CUDA_R_32F;
    CUBLAS_CHECK(cublasGemmEx(cuda_blas(), ta, tb, m, n, k, &alpha, A, type, lda, B, type, ldb, &beta, C, C_type, ldc,
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    cuda_profile_mark(__func__);
}

__nv_bfloat16 *cuda_rounded_storage(RoundedInput *r, const float *x, size_t n) {
    if (!r) return nullptr;
    *r = RoundedInput{x, n, g_matmul_bf16, r->rounded, r->capacity, r->view};
    if (!g_matmul_bf16) return nullptr;
    if (n > r->capacity) {
        if (r->view) die("internal: a column view of %zu values asked to hold %zu", r->capacity, n);
        cuda_free(r->rounded);
        CUDA_CHECK(cudaMalloc(&r->rounded, n * sizeof(__nv_bfloat16))); // 256-byte aligned, as round_to_bf16 wants
        r->capacity = n;
    }
    return (__nv_bfloat16 *)r->rounded;
}

extern "C" void cuda_matmul_input_round(RoundedInput *r, const float *x, size_t n) {
    __nv_bfloat16 *out = cuda_rounded_storage(r, x, n);
    if (out) cuda_round_to_bf16(out, x, n);
}

extern "C" void cuda_matmul_input_free(RoundedInput *r) {
    if (r->view) die("internal: a column view owns nothing to free");
    cuda_free(r->rounded);
    *r = RoundedInput{};
}

extern "C" void cuda_matmul_input_hold(RoundedInput *r, const float *x, size_t n) { cuda_rounded_storage(r, x, n); }

extern "C" RoundedInput cuda_matmul_input_columns(const RoundedInput *r, size_t col) {
    if (col > r->n) die("internal: column %zu of a rounded input holding %zu values", col, r->n);
    return RoundedInput{r->of ? r->of + col : nullptr, r->n - col, r->bf16,
                        r->rounded ? (void *)((__nv_bfloat16 *)r->rounded + col) : nullptr,
                        r->capacity > col ? r->capacity - col : 0, 1};
}

// out and/or outr (bf16) [rows, cols], rows ld_out apart, = in [rows, cols], rows ld_in apart (one thread
// per value): a column block of a wider matrix gathered, scattered, widened or rounded
template <class In>
__global__ static void copy_columns(float *out, __nv_bfloat16 *outr, int ld_out, const In *in, int ld_in, int rows, int cols) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)rows * cols) return;
    size_t r = i / cols, c = i % cols;
    float x = as_float(in[r * ld_in + c]);
    if (out) out[r * ld_out + c] = x;
    if (outr) outr[r * ld_out + c] = __float2bfloat16_rn(x);
}

template <class In>
static void launch_copy_columns(float *out, __nv_bfloat16 *outr, int ld_out, const In *in, int ld_in, int rows, int cols) {
    auto kernel = copy_columns<In>; // through a variable: the emulator's launch rewrite needs a plain name
    kernel<<<blocks_for((size_t)rows * cols, THREADS), THREADS>>>(out, outr, ld_out, in, ld_in, rows, cols);
    CUDA_CHECK_LAUNCH_AT("cuda_copy_columns");
}

void cuda_copy_columns(float *out, __nv_bfloat16 *outr, int ld_out, const float *in, int ld_in, int rows, int cols) {
    launch_copy_columns(out, outr, ld_out, in, ld_in, rows, cols);
}

void cuda_copy_columns(float *out, __nv_bfloat16 *outr, int ld_out, const __nv_bfloat16 *in, int ld_in, int rows, int cols) {
    launch_copy_columns(out, outr, ld_out, in, ld_in, rows, cols);
}

extern "C" void cuda_matmul_input_values(float *out, const RoundedInput *r, int rows, int cols, int ld) {
    size_t n = gemm_operand_extent(rows, cols, ld);
    if (n > r->n) die("matmul_input_values: %zu values asked of a rounded input holding %zu", n, r->n);
    if (r->bf16) cuda_copy_columns(out, nullptr, cols, (const __nv_bfloat16 *)r->rounded, ld, rows, cols);
    else cuda_copy_columns(out, nullptr, cols, r->of, ld, rows, cols);
}

extern "C" void cuda_copy_into_columns(float *dst, int ld, const float *x, int rows, int cols, RoundedInput *dst_r) {
    __nv_bfloat16 *rounded = cuda_rounded_output(__func__, dst, dst_r, gemm_operand_extent(rows, cols, ld));
    cuda_copy_columns(dst, rounded, ld, x, cols, rows, cols);
}

const __nv_bfloat16 *cuda_rounded_values(const RoundedInput *r, const float *x, size_t n, const char *what) {
    if (!rounded_input_holds(r, x, n, 1))
        die("CUDA %s: the rounded operand given does not hold bf16 values of its input", what);
    return (const __nv_bfloat16 *)r->rounded;
}

__nv_bfloat16 *cuda_rounded_output(const char *op, float *out, RoundedInput *out_r, size_t n) {
    __nv_bfloat16 *rounded = cuda_rounded_storage(out_r, out, n);
    if (!out && !rounded) die("%s: no output (the fp32 result may be left out only in bf16 mode, with a RoundedInput)", op);
    return rounded;
}

const __nv_bfloat16 *cuda_input_rounded(const char *op, const float *x, const RoundedInput *r, size_t n) {
    if (r && g_matmul_bf16) return cuda_rounded_values(r, x, n, op);
    if (r && !rounded_input_holds(r, x, n, 0)) die("CUDA %s: the rounded input given does not hold this operand", op);
    if (!x) die("CUDA %s: no input (an input may be given only rounded, in bf16 mode)", op);
    return nullptr;
}

// A linear layer's input (or output gradient) as cuBLAS reads it: from r when given (checked), else through operand().
static const void *input_operand(CudaScratch use, const float *x, const RoundedInput *r, size_t n) {
    if (!r) return operand(use, x, n);
    const __nv_bfloat16 *rounded = cuda_input_rounded("matmul", x, r, n);
    return rounded ? (const void *)rounded : (const void *)x;
}

// Where a product's result goes (ops.h's out and out_r): C and its type for the GEMM, fp32 into out, or,
// kept only rounded (out NULL), the tensor cores' sums rounded straight into out_r's bf16 storage; after
// the GEMM, linear_output_done rounds an fp32 result into out_r's copy when there is one.
struct LinearOutput {
    void *C;
    cudaDataType type;
    __nv_bfloat16 *copy;
};

static LinearOutput linear_output(const char *op, float *out, RoundedInput *out_r, size_t n, int accumulate) {
    if (accumulate && !out && (!out_r || !rounded_input_holds(out_r, NULL, n, 1)))
        die("%s: nothing to accumulate into", op); // checked before cuda_rounded_output resets out_r
    __nv_bfloat16 *rounded = cuda_rounded_output(op, out, out_r, n);
    if (out) return LinearOutput{out, CUDA_R_32F, rounded};
    return LinearOutput{rounded, CUDA_R_16BF, nullptr};
}

static void linear_output_done(const LinearOutput &o, size_t n) {
    if (o.copy) cuda_round_to_bf16(o.copy, (const float *)o.C, n);
}

// out[N, Cout] = inp[N, Cin] w[Cout, Cin]^T; column-major: out_cm [Cout x N] = (w_cm [Cin x Cout])^T inp_cm [Cin x N]
extern "C" void cuda_matmul_forward(float *out, const float *inp, const RoundedInput *inp_r, const float *w, int N, int C_in,
                                    int C_out, RoundedInput *out_r) {
    const void *a = operand(SCRATCH_BF16_A, w, (size_t)C_out * C_in),
               *b = input_operand(SCRATCH_BF16_B, inp, inp_r, (size_t)N * C_in);
    size_t n = (size_t)N * C_out;
    LinearOutput o = linear_output(__func__, out, out_r, n, 0);
    linear_gemm(CUBLAS_OP_T, CUBLAS_OP_N, C_out, N, C_in, 1, a, C_in, b, C_in, 0, o.C, o.type, C_out);
    linear_output_done(o, n);
}

// dinp_cm [Cin x N] = w_cm [Cin x Cout] dout_cm [Cout x N]; dw_cm [Cin x Cout] += inp_cm [Cin x N] dout_cm^T
// (dout is rounded once for both products, unless its producer did)
extern "C" void cuda_matmul_backward(float *dinp, float *dw, const float *dout, const RoundedInput *dout_r, const float *inp,
                                     const RoundedInput *inp_r, const float *w, int N, int C_in, int C_out, int accumulate,
                                     RoundedInput *dinp_r) {
    const void *d = input_operand(SCRATCH_BF16_B, dout, dout_r, (size_t)N * C_out);
    if (dinp || dinp_r) {
        size_t n = (size_t)N * C_in;
        LinearOutput o = linear_output(__func__, dinp, dinp_r, n, accumulate);
        linear_gemm(CUBLAS_OP_N, CUBLAS_OP_N, C_in, N, C_out, 1, operand(SCRATCH_BF16_A, w, (size_t)C_out * C_in), C_in, d,
                    C_out, accumulate ? 1.0f : 0.0f, o.C, o.type, C_in);
        linear_output_done(o, n);
    }
    if (dw)
        linear_gemm(CUBLAS_OP_N, CUBLAS_OP_T, C_in, C_out, N, 1, input_operand(SCRATCH_BF16_A, inp, inp_r, (size_t)N * C_in),
                    C_in, d, C_out, 1, dw, CUDA_R_32F, C_in);
}

// BLAS semantics on row-major buffers: C[M,N] = alpha op(A) op(B) + beta C. Column-major cuBLAS sees
// C^T = op(B)^T op(A)^T, so the operands swap places. cuda_matmul_gemm: `count` such products (ops.h's
// matmul_gemm) in the linear layers' precision, one strided batched call (bf16 operands on tensor
// cores, each operand's whole batch rounded once; a shared operand once for both).
extern "C" void cuda_matmul_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                                 size_t stride_a, const float *B, int ldb, size_t stride_b, float beta, float *C, int ldc,
                                 size_t stride_c, int count) {
    if (count <= 0) return;
    size_t na = gemm_batch_extent(count, stride_a, trans_a, M, K, lda);
    size_t nb = gemm_batch_extent(count, stride_b, trans_b, K, N, ldb);
    const void *a = operand(SCRATCH_BF16_A, A, na);
    const void *b = B == A && nb == na && stride_b == stride_a ? a : operand(SCRATCH_BF16_B, B, nb);
    cudaDataType type = g_matmul_bf16 ? CUDA_R_16BF : CUDA_R_32F;
    CUBLAS_CHECK(cublasGemmStridedBatchedEx(cuda_blas(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                            trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, b, type, ldb,
                                            (long long)stride_b, a, type, lda, (long long)stride_a, &beta, C, CUDA_R_32F, ldc,
                                            (long long)stride_c, count, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    cuda_profile_mark(__func__);
}

// Row-major X [N x n] is column-major X^T [n x N]; X^T X's row-major upper triangle is its column-major
// lower one.
extern "C" void cuda_gram_upper(int n, int N, const float *X, int ldx, float beta, float *C) {
    const float one = 1;
    CUBLAS_CHECK(cublasSsyrk(cuda_blas(), CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, n, N, &one, X, ldx, &beta, C, n));
    cuda_profile_mark(__func__);
}

// Linear layers through cuBLAS. Row-major [N, C] buffers are column-major [C, N] to cuBLAS, so
// out = inp w^T becomes out^T = w^T-as-stored... worked out per call below. fp32 math, no TF32, so
// results match the CPU sgemm to rounding.
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/ops_cuda.h"

cublasHandle_t cuda_blas(void) {
    static cublasHandle_t h = nullptr;
    if (!h) {
        CUBLAS_CHECK(cublasCreate(&h));
        CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
    }
    return h;
}

// out[N, Cout] = inp[N, Cin] w[Cout, Cin]^T; column-major: out_cm [Cout x N] = (w_cm [Cin x Cout])^T inp_cm [Cin x N]
extern "C" void cuda_matmul_forward(float *out, const float *inp, const float *w, int N, int C_in, int C_out) {
    const float one = 1, zero = 0;
    CUBLAS_CHECK(cublasSgemm(cuda_blas(), CUBLAS_OP_T, CUBLAS_OP_N, C_out, N, C_in, &one, w, C_in, inp, C_in, &zero, out, C_out));
}

// dinp_cm [Cin x N] = w_cm [Cin x Cout] dout_cm [Cout x N]; dw_cm [Cin x Cout] += inp_cm [Cin x N] dout_cm^T
extern "C" void cuda_matmul_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w, int N,
                                     int C_in, int C_out, int accumulate) {
    const float one = 1, beta = accumulate ? 1.0f : 0.0f;
    CUBLAS_CHECK(cublasSgemm(cuda_blas(), CUBLAS_OP_N, CUBLAS_OP_N, C_in, N, C_out, &one, w, C_in, dout, C_out, &beta, dinp, C_in));
    CUBLAS_CHECK(cublasSgemm(cuda_blas(), CUBLAS_OP_N, CUBLAS_OP_T, C_in, C_out, N, &one, inp, C_in, dout, C_out, &one, dw, C_in));
}

// BLAS semantics on row-major buffers: C[M,N] = alpha op(A) op(B) + beta C. Column-major cuBLAS sees
// C^T = op(B)^T op(A)^T, so the operands swap places.
extern "C" void cuda_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                          int ldb, float beta, float *C, int ldc) {
    CUBLAS_CHECK(cublasSgemm(cuda_blas(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                             &alpha, B, ldb, A, lda, &beta, C, ldc));
}

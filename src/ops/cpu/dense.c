// Dense algebra on the CPU: OpenBLAS does the matmuls. Called outside OpenMP regions it uses all
// threads; inside one (attention's per-head loop) the OpenMP build of OpenBLAS runs single-threaded.
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "util.h"

#ifdef PGOLF_F64
#define cblas_gemm cblas_dgemm
#else
#define cblas_gemm cblas_sgemm
#endif

real *ops_alloc(size_t n) {
    // 64-byte alignment for vector loads; zeroed so gradients start clean.
    size_t bytes = (n * sizeof(real) + 63) & ~(size_t)63;
    real *p = aligned_alloc(64, bytes ? bytes : 64);
    if (!p) die("out of memory allocating %zu values", n);
    memset(p, 0, bytes);
    return p;
}

void ops_free(real *p) { free(p); }
void ops_zero(real *p, size_t n) { memset(p, 0, n * sizeof(real)); }
void ops_copy(real *dst, const real *src, size_t n) { memmove(dst, src, n * sizeof(real)); }

void gemm(int trans_a, int trans_b, int M, int N, int K, real alpha, const real *A, int lda, const real *B, int ldb,
          real beta, real *C, int ldc) {
    if (M == 0 || N == 0) return;
    cblas_gemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha,
               A, lda, B, ldb, beta, C, ldc);
}

void matmul_forward(real *out, const real *inp, const real *w, int N, int C_in, int C_out) {
    gemm(0, 1, N, C_out, C_in, 1, inp, C_in, w, C_in, 0, out, C_out);
}

void matmul_backward(real *dinp, real *dw, const real *dout, const real *inp, const real *w, int N, int C_in, int C_out,
                     int accumulate) {
    if (dinp) gemm(0, 0, N, C_in, C_out, 1, dout, C_out, w, C_in, accumulate ? 1 : 0, dinp, C_in);
    if (dw) gemm(1, 0, C_out, C_in, N, 1, dout, C_out, inp, C_in, 1, dw, C_in);
}

double sum_squares(const real *x, size_t n) {
    double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
    for (size_t i = 0; i < n; i++) s += (double)x[i] * (double)x[i];
    return s;
}

void scale_inplace(real *x, real s, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

void add_inplace(real *dst, const real *src, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

// Shared by the CPU op files only.
#pragma once
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "real.h"

#ifdef _OPENMP
#include <omp.h>
#define omp_get_num_threads_safe() omp_get_num_threads()
#define omp_get_thread_num_safe() omp_get_thread_num()
#define omp_get_max_threads_safe() omp_get_max_threads()
#else
#define omp_get_num_threads_safe() 1
#define omp_get_thread_num_safe() 0
#define omp_get_max_threads_safe() 1
#endif

void ops_profile_attention(double seconds); // adds to the running OpsProfile (dense.c)
// C[M,N] = alpha * op(A) op(B) + beta * C in fp32, op = transpose when trans_* is set (BLAS semantics,
// row-major; dense.c: OpenBLAS, its calls timed while profiling).
void gemm(int trans_a, int trans_b, int M, int N, int K, real alpha, const real *A, int lda, const real *B, int ldb,
          real beta, real *C, int ldc);
// For an op writing x [n] and its rounding together: makes r hold x (as matmul_input_round) and returns
// where the rounded values go, or NULL in fp32 mode or without r (dense.c).
struct RoundedInput;
real *cpu_rounded_storage(struct RoundedInput *r, const real *x, size_t n);
void cpu_round_into(real *out, const real *x, size_t n); // out = x rounded to bf16 values (may be in place; dense.c)
// Where an op's result goes: out, its rounded copy (returned; NULL in fp32 mode or without out_r), or
// both; out NULL (the copy only) is allowed in bf16 mode only (dense.c).
real *cpu_rounded_output(const char *op, real *out, struct RoundedInput *out_r, size_t n);
// The values an op reads of its input x [n] given with its RoundedInput r (NULL: x itself): r's rounded
// values in bf16 mode (checked to be x's; x may then be NULL, an input kept only rounded), else x (dense.c).
const real *cpu_input_values(const char *op, const real *x, const struct RoundedInput *r, size_t n);

// e^x for softmax arguments (x <= 0; below -87, where e^x underflows, about 1e-38). In fp32 a
// plain-arithmetic expf (Cephes': x = n ln2 + r, |r| <= ln2/2, e^r by a degree-7 polynomial, 2^n through
// the exponent bits; within 1e-7 of e^x relative, libm's expf 6e-8) so that the row loops around it
// vectorize: libm's expf is a call per value, and the attention exps every score twice per step
// (forward, and the backward's recompute).
static inline real cpu_softmax_exp(real x) {
#ifdef PGOLF_F64
    return exp(x);
#else
    x = x < -87.0f ? -87.0f : x;
    float n = x * 1.44269504088896341f + 12582912.0f; // round to nearest: 1.5 * 2^23 drops the fraction
    n -= 12582912.0f;
    float r = x - n * 0.693359375f - n * -2.12194440e-4f; // ln2 in two parts: r exact to a rounding
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    return p * two_n;
#endif
}

// tanh(x) in the same plain arithmetic (Cephes' tanhf: an odd polynomial below |x| = 0.625, above it
// 1 - 2e/(1 + e) with e = e^(-2|x|) <= 0.29 by cpu_softmax_exp; within 2e-7 of tanh relative, libm's
// tanhf 1e-7), both computed and one selected, so that the cross-entropy's loop over a row of logits
// vectorizes (libm's tanhf is a call per value and an expm1f inside).
static inline real cpu_tanh(real x) {
#ifdef PGOLF_F64
    return tanh(x);
#else
    float a = fabsf(x), z = x * x;
    float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z + 1.33314422036e-1f) * z -
                   3.33332819422e-1f) * z * x + x;
    float e = cpu_softmax_exp(-2 * a), big = copysignf(1 - 2 * e / (1 + e), x);
    return a < 0.625f ? small : big;
#endif
}

// max of s[0..n) (n >= 1), eight running maxima (not one compare's latency per value; any order gives
// the same max)
static inline real cpu_row_max(const real *s, int n) {
    real m[8];
    for (int k = 0; k < 8; k++) m[k] = s[0];
    int j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; k++) m[k] = s[j + k] > m[k] ? s[j + k] : m[k];
    for (; j < n; j++) m[0] = s[j] > m[0] ? s[j] : m[0];
    for (int k = 1; k < 8; k++) m[0] = m[k] > m[0] ? m[k] : m[0];
    return m[0];
}

// sum of a[i] b[i] over [0, n) in double, eight running sums: a fixed order that vectorizes (one running
// sum waits an add's latency per value; the norms' and RoPE's row reductions were bound by it)
static inline double cpu_row_dot(const real *a, const real *b, int n) {
    double s[8] = {0};
    int j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; k++) s[k] += (double)a[j + k] * b[j + k];
    for (; j < n; j++) s[0] += (double)a[j] * b[j];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

// One row of the norm's backward, y = scale x rstd => dx = base + rstd (scale dy - (y / scale) mean(dy y))
// (base NULL: none; base may be dx, accumulating). rmsnorm_backward's row, and the fused backwards' on
// their recomputed y.
static inline void cpu_norm_row_backward(real *dx, const real *base, const real *dy, const real *y, int C, real rstd,
                                         real scale) {
    real m = (real)(cpu_row_dot(dy, y, C) / C) / scale;
    if (base)
        for (int i = 0; i < C; i++) dx[i] = base[i] + rstd * (scale * dy[i] - y[i] * m);
    else
        for (int i = 0; i < C; i++) dx[i] = rstd * (scale * dy[i] - y[i] * m);
}

// sum of p[0..n) in double, four running sums (a fixed order, and not one add's latency per value)
static inline double cpu_row_sum(const real *p, int n) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int j = 0;
    for (; j + 4 <= n; j += 4) s0 += p[j], s1 += p[j + 1], s2 += p[j + 2], s3 += p[j + 3];
    for (; j < n; j++) s0 += p[j];
    return (s0 + s1) + (s2 + s3);
}

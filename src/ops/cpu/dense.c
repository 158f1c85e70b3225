// Dense algebra on the CPU: OpenBLAS does the matmuls. Called outside OpenMP regions it uses all
// threads; inside one (attention's per-head loop) the OpenMP build of OpenBLAS runs single-threaded.
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ops/ops.h"
#include "ops/cpu/cpu_internal.h"
#include "util.h"

#ifdef PGOLF_F64
#define cblas_gemm cblas_dgemm
#define cblas_syrk cblas_dsyrk
#else
#define cblas_gemm cblas_sgemm
#define cblas_syrk cblas_ssyrk
#endif

const char *ops_backend(void) {
    static char text[64];
    snprintf(text, sizeof text, "cpu threads:%d blas:openblas", omp_get_max_threads());
    return text;
}

// memset by 1 MiB chunks over the threads: a fresh allocation's pages fault on first touch, and the
// faults of several threads overlap (4 GiB here: 6.5 s on one thread, 1.6 s on two).
static void zero_bytes(void *p, size_t bytes) {
    const size_t chunk = (size_t)1 << 20;
    if (bytes <= chunk) {
        memset(p, 0, bytes);
        return;
    }
    size_t n = (bytes + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) memset((char *)p + i * chunk, 0, i + 1 < n ? chunk : bytes - i * chunk);
}

real *ops_alloc(size_t n) {
    // 64-byte alignment for vector loads; zeroed so gradients start clean.
    size_t bytes = (n * sizeof(real) + 63) & ~(size_t)63;
    real *p = aligned_alloc(64, bytes ? bytes : 64);
    if (!p) die("out of memory allocating %zu values", n);
    zero_bytes(p, bytes);
    return p;
}

// Larger passes cost first-touch page faults here. Training steps in passes of 16,384 tokens ran ~14%
// faster than in passes of 4,096 (their faults paid once over many steps). A forward gains nothing from
// size: an evaluation of 65,536 baseline tokens took 75 s (23 GB) in one pass, 18-25 s (6.3 GB) in passes
// of 16,384 and 14.9 s (0.9 GB) in passes of 2,048 (user time about equal: the rest is faults).
size_t ops_activation_budget(PassKind kind) {
    size_t quarter = (size_t)sysconf(_SC_PHYS_PAGES) * (size_t)sysconf(_SC_PAGESIZE) / 4, forward = (size_t)1 << 30;
    return kind == PASS_FORWARD && forward < quarter ? forward : quarter;
}

void ops_free(real *p) { free(p); }
void ops_zero(real *p, size_t n) { zero_bytes(p, n * sizeof(real)); }
void ops_copy(real *dst, const real *src, size_t n) { memmove(dst, src, n * sizeof(real)); }
void ops_to_host(real *host, const real *src, size_t n) { memcpy(host, src, n * sizeof(real)); }
void ops_from_host(real *dst, const real *host, size_t n) { memcpy(dst, host, n * sizeof(real)); }
void ops_add_from_host(real *dst, const real *host, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] += host[i];
}

static int g_profiling;
static OpsProfile g_profile;

void ops_profile_start(void) {
    g_profile = (OpsProfile){0};
    g_profiling = 1;
}

OpsProfile ops_profile_stop(void) {
    g_profiling = 0;
    return g_profile;
}

void ops_profile_attention(double seconds) {
    if (g_profiling) g_profile.attention_seconds += seconds;
}

void gemm(int trans_a, int trans_b, int M, int N, int K, real alpha, const real *A, int lda, const real *B, int ldb,
          real beta, real *C, int ldc) {
    if (M == 0 || N == 0) return;
    int timed = g_profiling && !omp_in_parallel(); // calls inside attention's threads are counted there
    double t0 = timed ? now_seconds() : 0;
    cblas_gemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha,
               A, lda, B, ldb, beta, C, ldc);
    if (timed) {
        g_profile.gemm_seconds += now_seconds() - t0;
        g_profile.gemm_flops += 2.0 * M * N * K;
    }
}

void gram_upper(int n, int N, const real *X, int ldx, real beta, real *C) {
    if (n == 0) return;
    cblas_syrk(CblasRowMajor, CblasUpper, CblasTrans, n, N, 1, X, ldx, beta, C, n);
}

// bf16 operands on the CPU reproduce the CUDA backend's tensor-core numerics: the operands are
// rounded to bfloat16 (kept in floats, so sgemm multiplies bf16 values exactly and sums in fp32).
// Slower than fp32 here (one more pass over each operand); a parity aid, off by default.
static int g_matmul_bf16;

void ops_set_matmul_bf16(int on) { g_matmul_bf16 = on; }
int ops_matmul_bf16(void) { return g_matmul_bf16; }

enum { OPERAND_A, OPERAND_B, OPERANDS };

void cpu_round_into(real *out, const real *x, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = bf16_round((float)x[i]);
}

// x as bf16 values in a reusable buffer per operand slot, or x itself in fp32 mode
static const real *matmul_operand(int slot, const real *x, size_t n) {
    static real *buf[OPERANDS];
    static size_t cap[OPERANDS];
    if (!g_matmul_bf16) return x;
    if (n > cap[slot]) {
        free(buf[slot]);
        buf[slot] = xmalloc(n * sizeof(real));
        cap[slot] = n;
    }
    cpu_round_into(buf[slot], x, n);
    return buf[slot];
}

real *cpu_rounded_storage(RoundedInput *r, const real *x, size_t n) {
    if (!r) return NULL;
    *r = (RoundedInput){.of = x, .n = n, .bf16 = g_matmul_bf16, .rounded = r->rounded, .capacity = r->capacity, .view = r->view};
    if (!g_matmul_bf16) return NULL;
    if (n > r->capacity) {
        if (r->view) die("internal: a column view of %zu values asked to hold %zu", r->capacity, n);
        free(r->rounded);
        r->rounded = xmalloc(n * sizeof(real));
        r->capacity = n;
    }
    return r->rounded;
}

void matmul_input_round(RoundedInput *r, const real *x, size_t n) {
    real *out = cpu_rounded_storage(r, x, n);
    if (out) cpu_round_into(out, x, n);
}

real *cpu_rounded_output(const char *op, real *out, RoundedInput *out_r, size_t n) {
    real *rounded = cpu_rounded_storage(out_r, out, n);
    if (!out && !rounded) die("%s: no output (the fp32 result may be left out only in bf16 mode, with a RoundedInput)", op);
    return rounded;
}

const real *cpu_input_values(const char *op, const real *x, const RoundedInput *r, size_t n) {
    if (r && !rounded_input_holds(r, x, n, g_matmul_bf16)) die("%s: the rounded input given does not hold this operand", op);
    const real *values = r && g_matmul_bf16 ? (const real *)r->rounded : x;
    if (!values) die("%s: no input (an input may be given only rounded, in bf16 mode)", op);
    return values;
}

void matmul_input_free(RoundedInput *r) {
    if (r->view) die("internal: a column view owns nothing to free");
    free(r->rounded);
    *r = (RoundedInput){0};
}

void matmul_input_hold(RoundedInput *r, const real *x, size_t n) { cpu_rounded_storage(r, x, n); }

RoundedInput matmul_input_columns(const RoundedInput *r, size_t col) {
    if (col > r->n) die("internal: column %zu of a rounded input holding %zu values", col, r->n);
    return (RoundedInput){.of = r->of ? r->of + col : NULL, .n = r->n - col, .bf16 = r->bf16,
                          .rounded = r->rounded ? (real *)r->rounded + col : NULL,
                          .capacity = r->capacity > col ? r->capacity - col : 0, .view = 1};
}

void matmul_input_values(real *out, const RoundedInput *r, int rows, int cols, int ld) {
    size_t n = gemm_operand_extent(rows, cols, ld);
    if (n > r->n) die("matmul_input_values: %zu values asked of a rounded input holding %zu", n, r->n);
    const real *src = r->bf16 ? (const real *)r->rounded : r->of;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < rows; i++) memcpy(out + (size_t)i * cols, src + (size_t)i * ld, (size_t)cols * sizeof(real));
}

// src's values are rounded already in bf16 mode: copied into dst's storage, they are dst's rounding
void copy_into_columns(real *dst, int ld, const real *x, int rows, int cols, RoundedInput *dst_r) {
    real *rounded = cpu_rounded_output(__func__, dst, dst_r, gemm_operand_extent(rows, cols, ld));
#pragma omp parallel for schedule(static)
    for (int i = 0; i < rows; i++) {
        const real *src = x + (size_t)i * cols;
        if (dst) memcpy(dst + (size_t)i * ld, src, (size_t)cols * sizeof(real));
        if (rounded) cpu_round_into(rounded + (size_t)i * ld, src, (size_t)cols);
    }
}

// A linear layer's input (or output gradient) as its matmuls read it: from r when given (checked), else rounded here.
static const real *input_operand(int slot, const real *x, const RoundedInput *r, size_t n) {
    return r ? cpu_input_values("matmul", x, r, n) : matmul_operand(slot, x, n);
}

// A product's result [n]: written into out, or, kept only rounded, into out_r's storage (the fp32 sums
// then rounded in place, as the tensor cores round their fp32 accumulators into a bf16 output); `into`
// is where the product goes, and out_r is rounded after it (linear_output_done).
static real *linear_output(const char *op, real *out, RoundedInput *out_r, size_t n, int accumulate) {
    if (accumulate && !out && (!out_r || !rounded_input_holds(out_r, NULL, n, 1)))
        die("%s: nothing to accumulate into", op); // checked before cpu_rounded_output resets out_r
    real *rounded = cpu_rounded_output(op, out, out_r, n);
    return out ? out : rounded;
}

static void linear_output_done(RoundedInput *out_r, const real *into, size_t n) {
    if (out_r && out_r->bf16) cpu_round_into(out_r->rounded, into, n);
}

void matmul_forward(real *out, const real *inp, const RoundedInput *inp_r, const real *w, int N, int C_in, int C_out,
                    RoundedInput *out_r) {
    const real *a = input_operand(OPERAND_A, inp, inp_r, (size_t)N * C_in),
               *b = matmul_operand(OPERAND_B, w, (size_t)C_out * C_in);
    size_t n = (size_t)N * C_out;
    real *into = linear_output(__func__, out, out_r, n, 0);
    gemm(0, 1, N, C_out, C_in, 1, a, C_in, b, C_in, 0, into, C_out);
    linear_output_done(out_r, into, n);
}

void matmul_backward(real *dinp, real *dw, const real *dout, const RoundedInput *dout_r, const real *inp,
                     const RoundedInput *inp_r, const real *w, int N, int C_in, int C_out, int accumulate, RoundedInput *dinp_r) {
    const real *d = input_operand(OPERAND_A, dout, dout_r, (size_t)N * C_out);
    if (dinp || dinp_r) {
        size_t n = (size_t)N * C_in;
        real *into = linear_output(__func__, dinp, dinp_r, n, accumulate);
        gemm(0, 0, N, C_in, C_out, 1, d, C_out, matmul_operand(OPERAND_B, w, (size_t)C_out * C_in), C_in, accumulate ? 1 : 0,
             into, C_in);
        linear_output_done(dinp_r, into, n);
    }
    if (dw) gemm(1, 0, C_out, C_in, N, 1, d, C_out, input_operand(OPERAND_B, inp, inp_r, (size_t)N * C_in), C_in, 1, dw,
                 C_in);
}

void matmul_gemm(int trans_a, int trans_b, int M, int N, int K, real alpha, const real *A, int lda, size_t stride_a,
                 const real *B, int ldb, size_t stride_b, real beta, real *C, int ldc, size_t stride_c, int count) {
    if (count <= 0) return;
    size_t na = gemm_batch_extent(count, stride_a, trans_a, M, K, lda);
    size_t nb = gemm_batch_extent(count, stride_b, trans_b, K, N, ldb);
    const real *a = matmul_operand(OPERAND_A, A, na);
    const real *b = B == A && nb == na && stride_b == stride_a ? a : matmul_operand(OPERAND_B, B, nb);
    for (int i = 0; i < count; i++)
        gemm(trans_a, trans_b, M, N, K, alpha, a + i * stride_a, lda, b + i * stride_b, ldb, beta, C + i * stride_c, ldc);
}

// Fixed blocks summed in block order: the result does not depend on the thread count or timing.
double sum_squares(const real *x, size_t n) {
    enum { BLOCKS = 64 };
    double partial[BLOCKS];
#pragma omp parallel for schedule(static)
    for (int b = 0; b < BLOCKS; b++) {
        double s = 0;
        for (size_t i = n * b / BLOCKS; i < n * (b + 1) / BLOCKS; i++) s += (double)x[i] * (double)x[i];
        partial[b] = s;
    }
    double s = 0;
    for (int b = 0; b < BLOCKS; b++) s += partial[b];
    return s;
}

void scale_inplace(real *x, real s, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

void scale_to_unit_norm(real *x, size_t n, double eps) {
    scale_inplace(x, (real)(1.0 / (sqrt(sum_squares(x, n)) + eps)), n);
}

void add_inplace(real *dst, const real *src, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

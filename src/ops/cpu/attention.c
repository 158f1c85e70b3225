// Causal softmax attention with grouped KV heads, by blocks of query rows so that only one block's
// scores live at a time: S = Q K^T / sqrt(Dh) restricted to columns <= row, P = softmax(S), Y = P V.
// The backward pass recomputes P from the saved log-sum-exp (flash-attention's trade: a second
// Q K^T product instead of B*H*T*T stored probabilities). The query heads that share a KV head run as
// one stacked matrix, so each product reads K or V once per group (baseline layer, 2 heads per group:
// forward 84 -> 75 ms, backward 170 -> 158 ms).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "ops/cpu/cpu_internal.h"
#include "util.h"

// Query rows per block (per head: the products stack a GQA group's heads, group x rows). Each block's
// products repack K and V (OpenBLAS packs its operands per call), so larger blocks pack less; but a
// block's square on the diagonal computes its upper half for nothing. 128 rows from sequences of 1024
// (8 blocks or more): one baseline layer's forward 71 -> 68 ms, backward 141 -> 135 ms against 64 rows
// (heads alone); at 256 tokens 128 rows were 7% slower, at 1024 256 rows no faster. With the heads
// stacked, 64 and 128 rows are even at 1024 and 256 rows 5-8% slower.
static int block_rows(int T) { return T >= 1024 ? 128 : 64; }

// v's rows (and dv's) are ldv apart: at least a row's Hkv * Dh values.
static void check_v_rows(int Hkv, int Dh, int ldv) {
    if (ldv < Hkv * Dh) die("attention: v's rows %d values apart, fewer than their %d values", ldv, Hkv * Dh);
}

// The q, k, v the products read: in bf16 mode the rounded ones a caller passes (as floats; q, k, v may
// be NULL, kept only rounded), as the tensor cores read them; else q, k, v themselves (checked).
static void operand_values(const RoundedInput *r, const real **q, const real **k, const real **v, int B, int T, int H,
                           int Hkv, int Dh, int ldv) {
    size_t nq = (size_t)B * T * H * Dh, nk = (size_t)B * T * Hkv * Dh;
    if (!r) return;
    *q = cpu_input_values("attention", *q, &r[0], nq);
    *k = cpu_input_values("attention", *k, &r[1], nk);
    *v = cpu_input_values("attention", *v, &r[2], gemm_operand_extent(B * T, Hkv * Dh, ldv));
}

// The rows r0..r0+nr of a GQA group's query heads (g * group .. + group - 1, each [T, Dh] in rows ld apart
// from x) as one matrix [group * nr, Dh] (head by head), so that each product reads K and V once for the
// whole group; and back.
static void stack_heads(real *stacked, const real *x, int ld, int g, int group, int Dh, int r0, int nr) {
    for (int i = 0; i < group; i++)
        for (int t = 0; t < nr; t++)
            memcpy(stacked + ((size_t)i * nr + t) * Dh, x + (size_t)(r0 + t) * ld + (size_t)(g * group + i) * Dh,
                   sizeof(real) * (size_t)Dh);
}
static void unstack_heads(real *x, const real *stacked, int ld, int g, int group, int Dh, int r0, int nr) {
    for (int i = 0; i < group; i++)
        for (int t = 0; t < nr; t++)
            memcpy(x + (size_t)(r0 + t) * ld + (size_t)(g * group + i) * Dh, stacked + ((size_t)i * nr + t) * Dh,
                   sizeof(real) * (size_t)Dh);
}

// P[nr, ncols] = exp(scale * S - lse) on the causal part (col <= r0 + i), 0 above it.
static void probs_from_scores(real *P, const real *lse, int r0, int nr, int ncols) {
    for (int i = 0; i < nr; i++) {
        real *p = P + (size_t)i * ncols, l = lse[r0 + i];
        int last = r0 + i;
        for (int j = 0; j <= last; j++) p[j] = cpu_softmax_exp(p[j] - l);
        for (int j = last + 1; j < ncols; j++) p[j] = 0;
    }
}

// Tasks: one per (batch, KV group, block of query rows), the costliest blocks (last rows) first.
void attention_forward(real *y, real *lse, const real *q, const real *k, const real *v, const RoundedInput *qkv_r, int B,
                       int T, int H, int Hkv, int Dh, int ldv, RoundedInput *y_r) {
    check_v_rows(Hkv, Dh, ldv);
    operand_values(qkv_r, &q, &k, &v, B, T, H, Hkv, Dh, ldv);
    size_t ny = (size_t)B * T * H * Dh;
    real *rounded = cpu_rounded_output(__func__, y, y_r, ny), *out = y ? y : rounded;
    const int ldq = H * Dh, ldk = Hkv * Dh, group = H / Hkv;
    const real scale = (real)(1.0 / sqrt((double)Dh));
    const int br = block_rows(T), blocks = (T + br - 1) / br;
    double t0 = now_seconds();
#pragma omp parallel
    {
        real *S = xmalloc(sizeof(real) * (size_t)group * br * T), *Qs = xmalloc(sizeof(real) * (size_t)group * br * Dh);
        real *Ys = xmalloc(sizeof(real) * (size_t)group * br * Dh);
#pragma omp for schedule(dynamic, 1)
        for (int task = 0; task < B * Hkv * blocks; task++) {
            int bg = task / blocks, b = bg / Hkv, g = bg % Hkv, r0 = (blocks - 1 - task % blocks) * br;
            int nr = r0 + br < T ? br : T - r0, ncols = r0 + nr;
            const real *K = k + ((size_t)b * T * Hkv + g) * Dh, *V = v + (size_t)b * T * ldv + (size_t)g * Dh;
            stack_heads(Qs, q + (size_t)b * T * ldq, ldq, g, group, Dh, r0, nr);
            gemm(0, 1, group * nr, ncols, Dh, scale, Qs, Dh, K, ldk, 0, S, ncols);
            for (int row = 0; row < group * nr; row++) { // P = exp(S - max) / sum, each exp once
                real *s = S + (size_t)row * ncols;
                int h = g * group + row / nr, last = r0 + row % nr;
                real m = cpu_row_max(s, last + 1);
                for (int j = 0; j <= last; j++) s[j] = cpu_softmax_exp(s[j] - m);
                double sum = cpu_row_sum(s, last + 1);
                real inv = (real)(1 / sum);
                for (int j = 0; j <= last; j++) s[j] *= inv;
                for (int j = last + 1; j < ncols; j++) s[j] = 0;
                lse[((size_t)b * H + h) * T + last] = m + (real)log(sum);
            }
            gemm(0, 0, group * nr, Dh, ncols, 1, S, ncols, V, ldv, 0, Ys, Dh);
            unstack_heads(out + (size_t)b * T * ldq, Ys, ldq, g, group, Dh, r0, nr);
        }
        free(S);
        free(Qs);
        free(Ys);
    }
    if (rounded) cpu_round_into(rounded, out, ny);
    ops_profile_attention(now_seconds() - t0);
}

void attention_backward(real *dq, real *dk, real *dv, const real *dy, const RoundedInput *dy_r, const real *y,
                        const RoundedInput *y_r, const real *lse, const real *q, const real *k, const real *v,
                        const RoundedInput *qkv_r, int B, int T, int H, int Hkv, int Dh, int ldv, RoundedInput *dq_r,
                        RoundedInput *dk_r, RoundedInput *dv_r) {
    check_v_rows(Hkv, Dh, ldv);
    operand_values(qkv_r, &q, &k, &v, B, T, H, Hkv, Dh, ldv);
    size_t nq = (size_t)B * T * H * Dh, nk = (size_t)B * T * Hkv * Dh, nv = gemm_operand_extent(B * T, Hkv * Dh, ldv);
    dy = cpu_input_values(__func__, dy, dy_r, nq);
    y = cpu_input_values(__func__, y, y_r, nq);
    // dq, dk, dv kept only rounded: computed in their rounded storage, rounded in place at the end
    real *rq = cpu_rounded_output(__func__, dq, dq_r, nq), *rk = cpu_rounded_output(__func__, dk, dk_r, nk);
    real *rv = cpu_rounded_output(__func__, dv, dv_r, nv);
    if (!dq) dq = rq;
    if (!dk) dk = rk;
    if (!dv) dv = rv;
    const int ldq = H * Dh, ldk = Hkv * Dh, group = H / Hkv;
    const real scale = (real)(1.0 / sqrt((double)Dh));
    const int br = block_rows(T), rows = group * br;
    double t0 = now_seconds();
    // One task per (batch, KV group): its query heads, stacked, accumulate into the same dK, dV.
#pragma omp parallel
    {
        real *P = xmalloc(sizeof(real) * (size_t)rows * T), *dP = xmalloc(sizeof(real) * (size_t)rows * T);
        real *Qs = xmalloc(sizeof(real) * (size_t)rows * Dh), *dYs = xmalloc(sizeof(real) * (size_t)rows * Dh);
        real *dQs = xmalloc(sizeof(real) * (size_t)rows * Dh);
#pragma omp for schedule(dynamic, 1)
        for (int bg = 0; bg < B * Hkv; bg++) {
            int b = bg / Hkv, g = bg % Hkv;
            size_t at_v = (size_t)b * T * ldv + (size_t)g * Dh, at_q = (size_t)b * T * ldq;
            const real *K = k + ((size_t)b * T * Hkv + g) * Dh, *V = v + at_v;
            real *dK = dk + ((size_t)b * T * Hkv + g) * Dh, *dV = dv + at_v;
            for (int t = 0; t < T; t++)
                for (int d = 0; d < Dh; d++) dK[(size_t)t * ldk + d] = dV[(size_t)t * ldv + d] = 0;
            for (int r0 = 0; r0 < T; r0 += br) {
                int nr = r0 + br < T ? br : T - r0, ncols = r0 + nr, m = group * nr;
                stack_heads(Qs, q + at_q, ldq, g, group, Dh, r0, nr);
                stack_heads(dYs, dy + at_q, ldq, g, group, Dh, r0, nr);
                gemm(0, 1, m, ncols, Dh, scale, Qs, Dh, K, ldk, 0, P, ncols);
                for (int i = 0; i < group; i++)
                    probs_from_scores(P + (size_t)i * nr * ncols, lse + ((size_t)b * H + g * group + i) * T, r0, nr, ncols);
                gemm(1, 0, ncols, Dh, m, 1, P, ncols, dYs, Dh, 1, dV, ldv);
                gemm(0, 1, m, ncols, Dh, 1, dYs, Dh, V, ldv, 0, dP, ncols);
                // dS = P * (dP - rowsum(P * dP)), and rowsum(P * dP) = dY . Y for each row
                for (int row = 0; row < m; row++) {
                    int h = g * group + row / nr, t = r0 + row % nr;
                    double D = cpu_row_dot(y + at_q + (size_t)t * ldq + (size_t)h * Dh, dYs + (size_t)row * Dh, Dh);
                    real *p = P + (size_t)row * ncols, *dp = dP + (size_t)row * ncols;
                    for (int j = 0; j <= t; j++) p[j] = p[j] * (dp[j] - (real)D) * scale;
                }
                gemm(0, 0, m, Dh, ncols, 1, P, ncols, K, ldk, 0, dQs, Dh);
                unstack_heads(dq + at_q, dQs, ldq, g, group, Dh, r0, nr);
                gemm(1, 0, ncols, Dh, m, 1, P, ncols, Qs, Dh, 1, dK, ldk);
            }
        }
        free(P);
        free(dP);
        free(Qs);
        free(dYs);
        free(dQs);
    }
    if (rq) cpu_round_into(rq, dq, nq);
    if (rk) cpu_round_into(rk, dk, nk);
    if (rv) // row by row: the columns between dv's rows are another op's
        for (int t = 0; t < B * T; t++) cpu_round_into(rv + (size_t)t * ldv, dv + (size_t)t * ldv, (size_t)Hkv * Dh);
    ops_profile_attention(now_seconds() - t0);
}

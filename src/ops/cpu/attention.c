// Causal softmax attention with grouped KV heads, by blocks of query rows so that only one block's
// scores live at a time: S = Q K^T / sqrt(Dh) restricted to columns <= row, P = softmax(S), Y = P V.
// The backward pass recomputes P from the saved log-sum-exp (flash-attention's trade: a second
// Q K^T product instead of B*H*T*T stored probabilities).
#include <math.h>
#include <stdlib.h>

#include "ops/ops.h"
#include "ops/cpu/cpu_internal.h"
#include "util.h"

// Query rows per block. Each block's products repack K and V (OpenBLAS packs its operands per call), so
// larger blocks pack less; but a block's square on the diagonal computes its upper half for nothing.
// 128 rows from sequences of 1024 (8 blocks or more): one baseline layer's forward 71 -> 68 ms, backward
// 141 -> 135 ms against 64 rows; at 256 tokens 128 rows were 7% slower, at 1024 256 rows no faster.
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

// P[nr, ncols] = exp(scale * S - lse) on the causal part (col <= r0 + i), 0 above it.
static void probs_from_scores(real *P, const real *lse, int r0, int nr, int ncols) {
    for (int i = 0; i < nr; i++) {
        real *p = P + (size_t)i * ncols, l = lse[r0 + i];
        int last = r0 + i;
        for (int j = 0; j <= last; j++) p[j] = cpu_softmax_exp(p[j] - l);
        for (int j = last + 1; j < ncols; j++) p[j] = 0;
    }
}

void attention_forward(real *y, real *lse, const real *q, const real *k, const real *v, const RoundedInput *qkv_r, int B,
                       int T, int H, int Hkv, int Dh, int ldv, RoundedInput *y_r) {
    check_v_rows(Hkv, Dh, ldv);
    operand_values(qkv_r, &q, &k, &v, B, T, H, Hkv, Dh, ldv);
    size_t ny = (size_t)B * T * H * Dh;
    real *rounded = cpu_rounded_output(__func__, y, y_r, ny), *out = y ? y : rounded;
    const int ldq = H * Dh, ldk = Hkv * Dh, group = H / Hkv;
    const real scale = (real)(1.0 / sqrt((double)Dh));
    const int br = block_rows(T);
    double t0 = now_seconds();
#pragma omp parallel
    {
        real *S = xmalloc(sizeof(real) * (size_t)br * T);
#pragma omp for schedule(dynamic, 1)
        for (int bh = 0; bh < B * H; bh++) {
            int b = bh / H, h = bh % H, g = h / group;
            const real *Q = q + ((size_t)b * T * H + h) * Dh;
            const real *K = k + ((size_t)b * T * Hkv + g) * Dh, *V = v + (size_t)b * T * ldv + (size_t)g * Dh;
            real *Y = out + ((size_t)b * T * H + h) * Dh, *L = lse + (size_t)bh * T;
            for (int r0 = 0; r0 < T; r0 += br) {
                int nr = r0 + br < T ? br : T - r0, ncols = r0 + nr;
                gemm(0, 1, nr, ncols, Dh, scale, Q + (size_t)r0 * ldq, ldq, K, ldk, 0, S, ncols);
                for (int i = 0; i < nr; i++) { // P = exp(S - max) / sum, each exp once
                    real *s = S + (size_t)i * ncols;
                    int last = r0 + i;
                    real m = cpu_row_max(s, last + 1);
                    for (int j = 0; j <= last; j++) s[j] = cpu_softmax_exp(s[j] - m);
                    double sum = cpu_row_sum(s, last + 1);
                    real inv = (real)(1 / sum);
                    for (int j = 0; j <= last; j++) s[j] *= inv;
                    for (int j = last + 1; j < ncols; j++) s[j] = 0;
                    L[last] = m + (real)log(sum);
                }
                gemm(0, 0, nr, Dh, ncols, 1, S, ncols, V, ldv, 0, Y + (size_t)r0 * ldq, ldq);
            }
        }
        free(S);
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
    const int br = block_rows(T);
    double t0 = now_seconds();
    // One task per (batch, KV head): the query heads sharing a KV head accumulate into the same dK, dV.
#pragma omp parallel
    {
        real *P = xmalloc(sizeof(real) * (size_t)br * T), *dP = xmalloc(sizeof(real) * (size_t)br * T);
#pragma omp for schedule(dynamic, 1)
        for (int bg = 0; bg < B * Hkv; bg++) {
            int b = bg / Hkv, g = bg % Hkv;
            size_t at_v = (size_t)b * T * ldv + (size_t)g * Dh;
            const real *K = k + ((size_t)b * T * Hkv + g) * Dh, *V = v + at_v;
            real *dK = dk + ((size_t)b * T * Hkv + g) * Dh, *dV = dv + at_v;
            for (int t = 0; t < T; t++)
                for (int d = 0; d < Dh; d++) dK[(size_t)t * ldk + d] = dV[(size_t)t * ldv + d] = 0;
            for (int h = g * group; h < (g + 1) * group; h++) {
                size_t off = ((size_t)b * T * H + h) * Dh;
                const real *Q = q + off, *Y = y + off, *dY = dy + off, *L = lse + ((size_t)b * H + h) * T;
                real *dQ = dq + off;
                for (int r0 = 0; r0 < T; r0 += br) {
                    int nr = r0 + br < T ? br : T - r0, ncols = r0 + nr;
                    gemm(0, 1, nr, ncols, Dh, scale, Q + (size_t)r0 * ldq, ldq, K, ldk, 0, P, ncols);
                    probs_from_scores(P, L, r0, nr, ncols);
                    gemm(1, 0, ncols, Dh, nr, 1, P, ncols, dY + (size_t)r0 * ldq, ldq, 1, dV, ldv);
                    gemm(0, 1, nr, ncols, Dh, 1, dY + (size_t)r0 * ldq, ldq, V, ldv, 0, dP, ncols);
                    // dS = P * (dP - rowsum(P * dP)), and rowsum(P * dP) = dY . Y for each row
                    for (int i = 0; i < nr; i++) {
                        const real *yi = Y + (size_t)(r0 + i) * ldq, *dyi = dY + (size_t)(r0 + i) * ldq;
                        double D = cpu_row_dot(yi, dyi, Dh);
                        real *p = P + (size_t)i * ncols, *dp = dP + (size_t)i * ncols;
                        for (int j = 0; j <= r0 + i; j++) p[j] = p[j] * (dp[j] - (real)D) * scale;
                    }
                    gemm(0, 0, nr, Dh, ncols, 1, P, ncols, K, ldk, 0, dQ + (size_t)r0 * ldq, ldq);
                    gemm(1, 0, ncols, Dh, nr, 1, P, ncols, Q + (size_t)r0 * ldq, ldq, 1, dK, ldk);
                }
            }
        }
        free(P);
        free(dP);
    }
    if (rq) cpu_round_into(rq, dq, nq);
    if (rk) cpu_round_into(rk, dk, nk);
    if (rv) // row by row: the columns between dv's rows are another op's
        for (int t = 0; t < B * T; t++) cpu_round_into(rv + (size_t)t * ldv, dv + (size_t)t * ldv, (size_t)Hkv * Dh);
    ops_profile_attention(now_seconds() - t0);
}

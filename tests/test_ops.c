// The CPU ops' bf16 mode for the linear layers and matmul_gemm (the CUDA backend's default numerics):
// it must equal fp32 math on operands rounded to bf16 beforehand, bit for bit, and differ from fp32 on
// the raw ones.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "ops/cpu/cpu_internal.h"
#include "optim/optim.h"
#include "test.h"
#include "util.h"

static void rounded_copy(float *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = bf16_round(src[i]);
}

// The attention's softmax exp (a plain-arithmetic expf, so that its loops vectorize): close to e^x
// over the range a softmax feeds it, exact at 0, underflowing to ~0 far below.
TEST(ops_softmax_exp_accuracy) {
    double worst = 0;
    for (int i = 0; i <= 1000000; i++) {
        real x = (real)(-87.0 * i / 1000000);
        double e = exp((double)x);
        worst = worse_of(worst, fabs(cpu_softmax_exp(x) - e) / e);
    }
    CHECK(worst < 1e-7, "softmax exp: relative error %.3g", worst);
    CHECK(cpu_softmax_exp(0) == 1 && cpu_softmax_exp(-1000) < 2e-38f, "softmax exp: exp(0) %.9g, exp(-1000) %g",
          cpu_softmax_exp(0), cpu_softmax_exp(-1000));
}

TEST(ops_tanh_accuracy) {
    double worst = 0;
    for (int i = -1000000; i <= 1000000; i++) {
        real x = (real)(20.0 * i / 1000000);
        double t = tanh((double)x);
        worst = worse_of(worst, x ? fabs(cpu_tanh(x) - t) / fabs(t) : fabs(cpu_tanh(x)));
    }
    CHECK(worst < 2e-7, "tanh: relative error %.3g", worst);

    CHECK(cpu_tanh(0.625f) < 0.5546f && cpu_tanh(100) == 1 && cpu_tanh(-100) == -1 && cpu_tanh(1e-30f) == 1e-30f,
          "tanh: tanh(0.625) %.9g, tanh(+-100) %g %g, tanh(1e-30) %g", cpu_tanh(0.625f), cpu_tanh(100), cpu_tanh(-100),
          cpu_tanh(1e-30f));
}

TEST(ops_matmul_bf16_rounds_operands) {
    enum { N = 29, I = 40, O = 24 };
    static float x[N * I], w[O * I], d[N * O], xr[N * I], wr[O * I], dr[N * O];
    static float out[N * O], dx[N * I], dw[O * I], out_ref[N * O], dx_ref[N * I], dw_ref[O * I], out_fp32[N * O];
    Rng r;
    rng_seed(&r, 3);
    for (int i = 0; i < N * I; i++) x[i] = (float)rng_normal(&r);
    for (int i = 0; i < O * I; i++) w[i] = (float)rng_normal(&r);
    for (int i = 0; i < N * O; i++) d[i] = (float)rng_normal(&r);
    rounded_copy(xr, x, N * I), rounded_copy(wr, w, O * I), rounded_copy(dr, d, N * O);

    CHECK(!ops_matmul_bf16(), "the CPU default is fp32");
    matmul_forward(out_fp32, x, NULL, w, N, I, O, NULL);
    matmul_forward(out_ref, xr, NULL, wr, N, I, O, NULL);
    matmul_backward(dx_ref, dw_ref, dr, NULL, xr, NULL, wr, N, I, O, 0, NULL);
    ops_set_matmul_bf16(1);
    matmul_forward(out, x, NULL, w, N, I, O, NULL);
    matmul_backward(dx, dw, d, NULL, x, NULL, w, N, I, O, 0, NULL);
    ops_set_matmul_bf16(0);
    CHECK(!memcmp(out, out_ref, sizeof out), "bf16 forward differs from fp32 on rounded operands");
    CHECK(!memcmp(dx, dx_ref, sizeof dx), "bf16 dinp differs from fp32 on rounded operands");
    CHECK(!memcmp(dw, dw_ref, sizeof dw), "bf16 dw differs from fp32 on rounded operands");
    double diff = 0;
    for (int i = 0; i < N * O; i++) diff = fmax(diff, fabs((double)out[i] - out_fp32[i]));
    CHECK(diff > 1e-3, "bf16 forward equals fp32 (max difference %g): the operands were not rounded", diff);
}

// matmul_gemm (Muon's Newton-Schulz): bf16 mode is gemm on rounded operands, both transposes, a strided
// operand (ld past its row) and one matrix as both operands (A X^T, rounded once); fp32 mode is gemm.
TEST(ops_matmul_gemm_follows_matmul_precision) {
    enum { M = 13, K = 21, N = 9, LD = 25 }; // A [M, K] in rows LD apart
    static float a[M * LD], b[K * N], ar[M * LD], br[K * N], c[M * N], c_ref[M * N], s[M * M], s_ref[M * M];
    Rng r;
    rng_seed(&r, 5);
    for (int i = 0; i < M * LD; i++) a[i] = (float)rng_normal(&r);
    for (int i = 0; i < K * N; i++) b[i] = (float)rng_normal(&r);
    rounded_copy(ar, a, M * LD), rounded_copy(br, b, K * N);
    for (int bf16 = 0; bf16 < 2; bf16++) {
        ops_set_matmul_bf16(bf16);
        for (int tb = 0; tb < 2; tb++) { // B as [K, N], or read transposed as [N, K] from the same floats
            for (int i = 0; i < M * N; i++) c[i] = c_ref[i] = 0.5f;
            matmul_gemm(0, tb, M, N, K, 1.5f, a, LD, 0, b, tb ? K : N, 0, 0.25f, c, N, 0, 1);
            gemm(0, tb, M, N, K, 1.5f, bf16 ? ar : a, LD, bf16 ? br : b, tb ? K : N, 0.25f, c_ref, N);
            CHECK(!memcmp(c, c_ref, sizeof c), "matmul_gemm (bf16 %d, B transposed %d) differs from gemm on %s operands", bf16,
                  tb, bf16 ? "rounded" : "the same");
        }
        matmul_gemm(0, 1, M, M, K, 1, a, LD, 0, a, LD, 0, 0, s, M, 0, 1);
        gemm(0, 1, M, M, K, 1, bf16 ? ar : a, LD, bf16 ? ar : a, LD, 0, s_ref, M);
        CHECK(!memcmp(s, s_ref, sizeof s), "matmul_gemm A A^T (bf16 %d) differs from gemm", bf16);
    }
    ops_set_matmul_bf16(0);
}

// gram_upper (GPTQ's Hessians): X^T X + beta C's upper triangle for X in rows LD apart, in fp32 whatever
// the linear layers' precision; the lower triangle keeps what it held.
TEST(ops_gram_upper) {
    enum { N = 37, D = 11, LD = 14 };
    static float x[N * LD], c[D * D];
    Rng r;
    rng_seed(&r, 9);
    for (int i = 0; i < N * LD; i++) x[i] = (float)rng_normal(&r);
    for (int bf16 = 0; bf16 < 2; bf16++) {
        ops_set_matmul_bf16(bf16);
        real beta = bf16 ? 1 : 0;
        for (int i = 0; i < D * D; i++) c[i] = -7;
        gram_upper(D, N, x, LD, beta, c);
        double worst = 0;
        for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++) {
                double e = -7 * beta;
                for (int t = 0; t < N; t++) e += (double)x[t * LD + i] * x[t * LD + j];
                worst = worse_of(worst, fabs(c[i * D + j] - (j >= i ? e : -7)));
            }
        CHECK(worst < 1e-4, "gram_upper (bf16 %d, beta %g) off by %.3g", bf16, beta, worst);
    }
    ops_set_matmul_bf16(0);
}

// Batches of matmul_gemm products (Muon's Newton-Schulz over every matrix of a shape): each product as
// alone, with strides that leave gaps between the matrices; and Newton-Schulz over three matrices
// (wide and tall) as over each alone.
TEST(ops_matmul_gemm_batches) {
    enum { M = 6, K = 10, COUNT = 3, SA = M * K + 5, SC = M * M + 3 };
    static float a[COUNT * SA], c[COUNT * SC], c1[M * M], g[COUNT * 8 * 20], x[COUNT * 8 * 20], x1[8 * 20];
    Rng r;
    rng_seed(&r, 41);
    for (int i = 0; i < COUNT * SA; i++) a[i] = (float)rng_normal(&r);
    for (int i = 0; i < COUNT * 8 * 20; i++) g[i] = (float)rng_normal(&r);
    for (int bf16 = 0; bf16 < 2; bf16++) {
        ops_set_matmul_bf16(bf16);
        for (int i = 0; i < COUNT * SC; i++) c[i] = 0.5f;
        matmul_gemm(0, 1, M, M, K, 1.5f, a, K, SA, a, K, SA, 0.25f, c, M, SC, COUNT); // A_i A_i^T, one operand
        for (int i = 0; i < COUNT; i++) {
            for (int j = 0; j < M * M; j++) c1[j] = 0.5f;
            matmul_gemm(0, 1, M, M, K, 1.5f, a + i * SA, K, 0, a + i * SA, K, 0, 0.25f, c1, M, 0, 1);
            CHECK(!memcmp(c + i * SC, c1, sizeof c1), "batched matmul_gemm product %d (bf16 %d) differs from it alone", i,
                  bf16);
        }
        for (int tall = 0; tall < 2; tall++) {
            int rows = tall ? 20 : 8, cols = tall ? 8 : 20;
            float *scratch = xmalloc(sizeof(float) * newton_schulz5_scratch(COUNT, rows, cols));
            newton_schulz5(x, g, COUNT, rows, cols, 5, scratch);
            for (int i = 0; i < COUNT; i++) {
                newton_schulz5(x1, g + i * 160, 1, rows, cols, 5, scratch);
                CHECK(!memcmp(x + i * 160, x1, sizeof x1), "Newton-Schulz of matrix %d in a batch (bf16 %d, %dx%d) differs",
                      i, bf16, rows, cols);
            }
            free(scratch);
        }
    }
    ops_set_matmul_bf16(0);
}

// A RoundedInput is what the matmuls read in bf16 mode: results equal rounding on use, bit for bit; x
// rewritten after the rounding still gives the old values (the copy is read, x is not rounded again);
// in fp32 mode x itself is read. Given for another buffer, it stops the matmul with an error.
static float g_rounded_x[8 * 16];
static void matmul_wrong_input(void *arg) {
    float out[8 * 4], w[4 * 16] = {0};
    matmul_forward(out, g_rounded_x + 16, arg, w, 7, 16, 4, NULL); // rounded from g_rounded_x, given x + 16
}

TEST(ops_matmul_rounded_input) {
    enum { N = 8, I = 16, O = 4 };
    static float w[O * I], d[N * O], out[N * O], dx[N * I], dw[O * I], out_r[N * O], dx_r[N * I], dw_r[O * I], x0[N * I];
    float *x = g_rounded_x;
    Rng r;
    rng_seed(&r, 7);
    for (int i = 0; i < N * I; i++) x0[i] = x[i] = (float)rng_normal(&r);
    for (int i = 0; i < O * I; i++) w[i] = (float)rng_normal(&r);
    for (int i = 0; i < N * O; i++) d[i] = (float)rng_normal(&r);
    RoundedInput ri = {0};
    for (int bf16 = 0; bf16 < 2; bf16++) {
        ops_set_matmul_bf16(bf16);
        memset(dw, 0, sizeof dw), memset(dw_r, 0, sizeof dw_r);
        matmul_forward(out, x, NULL, w, N, I, O, NULL);
        matmul_backward(dx, dw, d, NULL, x, NULL, w, N, I, O, 0, NULL);
        matmul_input_round(&ri, x, (size_t)N * I);
        for (int i = 0; i < N * I; i++) x[i] += 1e-3f * (float)fabs(x[i]); // rewritten after the rounding
        matmul_forward(out_r, x, &ri, w, N, I, O, NULL);
        matmul_backward(dx_r, dw_r, d, NULL, x, &ri, w, N, I, O, 0, NULL);
        int same = !memcmp(out, out_r, sizeof out) && !memcmp(dw, dw_r, sizeof dw);
        CHECK(bf16 ? same : !same, "bf16 %d: results %s the values rounded before x changed", bf16,
              bf16 ? "differ from" : "come from");
        CHECK(!memcmp(dx, dx_r, sizeof dx), "bf16 %d: dinp depends on the input", bf16);
        memcpy(x, x0, sizeof x0);
    }
    matmul_input_round(&ri, x, (size_t)N * I);
    CHECK(test_dies_with(matmul_wrong_input, &ri, "does not hold this operand"), "a RoundedInput of another buffer was read");
    matmul_input_free(&ri);
    ops_set_matmul_bf16(0);
}

// Results kept only rounded (bf16 mode, out NULL with out_r): a matmul's, bit for bit the rounding of
// its fp32 result (also when its input gradient accumulates into the rounded values), and the
// activation reading such inputs (inp NULL with inp_r) gives what it gives on the rounded values
// themselves. In fp32 mode a missing output or input stops with an error.
static void matmul_without_output(void *arg) {
    float x[2 * 4] = {0}, w[3 * 4] = {0};
    matmul_forward(NULL, x, NULL, w, 2, 4, 3, arg);
}

static void relu2_without_input(void *arg) {
    float out[4];
    relu2_forward(out, NULL, arg, 4, 0.5f, NULL);
}

static int same_as_rounded(const RoundedInput *r, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (((const float *)r->rounded)[i] != bf16_round(x[i])) return 0;
    return r->of == NULL && r->bf16;
}

TEST(ops_rounded_only_inputs_and_products) {
    enum { N = 6, I = 16, O = 5 };
    static float x[N * I], w[O * I], d[N * O], out[N * O], dx[N * I], dw[O * I], h[N * O], g[N * O], hb[N * O], gb[N * O];
    static float act[N * O], dact[N * O];
    Rng r;
    rng_seed(&r, 5);
    for (int i = 0; i < N * I; i++) x[i] = (float)rng_normal(&r);
    for (int i = 0; i < O * I; i++) w[i] = (float)rng_normal(&r);
    for (int i = 0; i < N * O; i++) d[i] = (float)rng_normal(&r);
    RoundedInput pre = {0}, grad = {0}, full = {0}, only = {0};
    ops_set_matmul_bf16(1);
    matmul_forward(out, x, NULL, w, N, I, O, NULL);
    matmul_forward(NULL, x, NULL, w, N, I, O, &pre);
    CHECK(same_as_rounded(&pre, out, N * O), "matmul's rounded-only output is not its result rounded");
    matmul_backward(dx, dw, d, NULL, x, NULL, w, N, I, O, 0, NULL);
    matmul_backward(NULL, dw, d, NULL, x, NULL, w, N, I, O, 0, &grad);
    CHECK(same_as_rounded(&grad, dx, N * I), "matmul's rounded-only input gradient is not dinp rounded");
    for (int i = 0; i < N * I; i++) dx[i] = bf16_round(dx[i]);
    matmul_backward(dx, dw, d, NULL, x, NULL, w, N, I, O, 1, NULL);
    matmul_backward(NULL, dw, d, NULL, x, NULL, w, N, I, O, 1, &grad);
    CHECK(same_as_rounded(&grad, dx, N * I), "accumulating into a rounded-only input gradient differs");
    // the activation on rounded-only inputs: pre (h_pre) and d rounded into grad (d(h_act)) as the model passes them
    matmul_input_round(&grad, d, N * O);
    for (int i = 0; i < N * O; i++) hb[i] = bf16_round(out[i]), gb[i] = bf16_round(d[i]);
    relu2_forward(h, hb, NULL, N * O, 0.5f, NULL);
    relu2_forward(act, NULL, &pre, N * O, 0.5f, NULL);
    CHECK(!memcmp(h, act, sizeof h), "relu2 forward through a rounded-only input differs");
    relu2_backward(g, gb, NULL, hb, NULL, N * O, 0.5f, &full);
    relu2_backward(dact, d, &grad, NULL, &pre, N * O, 0.5f, &only);
    CHECK(!memcmp(g, dact, sizeof g) && !memcmp(full.rounded, only.rounded, sizeof g),
          "relu2 backward through rounded inputs differs");
    // the residual add of a rounded-only projection output, forward and backward (dscale reads it)
    float scale[O], xs[N * O] = {0}, xs_r[N * O] = {0}, ds[O] = {0}, ds_r[O] = {0};
    for (int i = 0; i < O; i++) scale[i] = (float)rng_normal(&r);
    scaled_add_forward(xs, xs, scale, hb, NULL, N, O);
    scaled_add_forward(xs_r, xs_r, scale, NULL, &pre, N, O);
    scaled_add_backward(g, ds, d, scale, hb, NULL, N, O, 0, NULL);
    scaled_add_backward(dact, ds_r, d, scale, NULL, &pre, N, O, 0, NULL);
    CHECK(!memcmp(xs, xs_r, sizeof xs) && !memcmp(ds, ds_r, sizeof ds) && !memcmp(g, dact, sizeof g),
          "scaled_add through a rounded-only input differs");
    // a norm's backward from its output gradient kept only rounded (a linear layer's input gradient)
    float ny[N * O], nrstd[N], ndx[N * O], ndx_r[N * O];
    rmsnorm_forward(ny, nrstd, d, N, O, 1e-6f, 0.5f, NULL);
    rmsnorm_backward(ndx, gb, NULL, ny, nrstd, N, O, 0.5f, 0);
    rmsnorm_backward(ndx_r, d, &grad, ny, nrstd, N, O, 0.5f, 0);
    CHECK(!memcmp(ndx, ndx_r, sizeof ndx), "rmsnorm backward through a rounded-only output gradient differs");
    // the q/k preparation from a rounded-only raw projection into a rounded-only output, and the
    // attention reading rounded-only q, k (v given, rounded too): as on the rounded values themselves
    enum { T = 5, NH = 2, DH = 8, NQ = T * NH * DH };
    static float q[NQ], qb[NQ], rstd[T * NH], rstd_r[T * NH], cs[T * DH / 2], sn[T * DH / 2], y[NQ], y_r[NQ];
    float gain[NH] = {1.5f, 0.5f}, lse[NH * T], lse_r[NH * T];
    for (int i = 0; i < NQ; i++) q[i] = (float)rng_normal(&r), qb[i] = bf16_round(q[i]);
    for (int i = 0; i < T * DH / 2; i++) cs[i] = cosf(0.3f * i), sn[i] = sinf(0.3f * i);
    RoundedInput raw = {0}, qkv[3] = {{0}}, qkv_full = {0};
    matmul_input_round(&raw, q, NQ);
    qk_prep_forward(y, rstd, qb, NULL, NH * DH, gain, cs, sn, 1, T, NH, DH, DH, 1e-6f, &qkv_full);
    qk_prep_forward(NULL, rstd_r, q, &raw, NH * DH, gain, cs, sn, 1, T, NH, DH, DH, 1e-6f, &qkv[0]);
    CHECK(!memcmp(rstd, rstd_r, sizeof rstd) && qkv[0].of == NULL && !memcmp(qkv_full.rounded, qkv[0].rounded, sizeof y),
          "qk_prep through a rounded-only input into a rounded-only output differs");
    qk_prep_forward(NULL, rstd_r, q, &raw, NH * DH, NULL, cs, sn, 1, T, NH, DH, DH, 1e-6f, &qkv[1]); // k: the same rows, no gain
    matmul_input_round(&qkv[2], q, NQ);
    float *qr = qkv_full.rounded, kr[NQ];
    qk_prep_forward(kr, rstd, qb, NULL, NH * DH, NULL, cs, sn, 1, T, NH, DH, DH, 1e-6f, NULL);
    for (int i = 0; i < NQ; i++) kr[i] = bf16_round(kr[i]);
    ops_set_matmul_bf16(0);
    attention_forward(y, lse, qr, kr, qb, NULL, 1, T, NH, NH, DH, NH * DH, NULL);
    ops_set_matmul_bf16(1);
    attention_forward(y_r, lse_r, NULL, NULL, q, qkv, 1, T, NH, NH, DH, NH * DH, NULL);
    CHECK(!memcmp(y, y_r, sizeof y) && !memcmp(lse, lse_r, sizeof lse), "attention on rounded-only q, k differs");
    // its output kept only rounded, and the backward reading it so: as with y rounded by hand
    RoundedInput yo = {0};
    attention_forward(NULL, lse_r, NULL, NULL, q, qkv, 1, T, NH, NH, DH, NH * DH, &yo);
    CHECK(same_as_rounded(&yo, y, NQ), "attention's rounded-only output is not its output rounded");
    static float dyq[NQ], gq[NQ], gk[NQ], gv[NQ], gq_r[NQ], gk_r[NQ], gv_r[NQ];
    for (int i = 0; i < NQ; i++) dyq[i] = (float)rng_normal(&r), y[i] = bf16_round(y[i]);
    attention_backward(gq, gk, gv, dyq, NULL, y, NULL, lse, NULL, NULL, q, qkv, 1, T, NH, NH, DH, NH * DH, NULL, NULL, NULL);
    attention_backward(gq_r, gk_r, gv_r, dyq, NULL, NULL, &yo, lse, NULL, NULL, q, qkv, 1, T, NH, NH, DH, NH * DH, NULL, NULL,
                       NULL);
    CHECK(!memcmp(gq, gq_r, sizeof gq) && !memcmp(gk, gk_r, sizeof gk) && !memcmp(gv, gv_r, sizeof gv),
          "attention backward through a rounded-only output differs");
    RoundedInput dyo = {0}; // and its output gradient kept only rounded too
    matmul_input_round(&dyo, dyq, NQ);
    dyo.of = NULL; // as a result kept only rounded holds (matmul_backward's dinp_r)
    for (int i = 0; i < NQ; i++) dyq[i] = bf16_round(dyq[i]);
    attention_backward(gq, gk, gv, dyq, NULL, y, NULL, lse, NULL, NULL, q, qkv, 1, T, NH, NH, DH, NH * DH, NULL, NULL, NULL);
    attention_backward(gq_r, gk_r, gv_r, NULL, &dyo, NULL, &yo, lse, NULL, NULL, q, qkv, 1, T, NH, NH, DH, NH * DH, NULL, NULL,
                       NULL);
    CHECK(!memcmp(gq, gq_r, sizeof gq) && !memcmp(gk, gk_r, sizeof gk) && !memcmp(gv, gv_r, sizeof gv),
          "attention backward through a rounded-only output gradient differs");
    // dq, dk kept only rounded (q's and k's preparation reads them so): the rounding of the fp32 ones,
    // and qk_prep's backward through them as through the rounded values by hand
    RoundedInput dqo = {0}, dko = {0};
    attention_backward(NULL, NULL, gv_r, NULL, &dyo, NULL, &yo, lse, NULL, NULL, q, qkv, 1, T, NH, NH, DH, NH * DH, &dqo, &dko,
                       NULL);
    CHECK(same_as_rounded(&dqo, gq, NQ) && same_as_rounded(&dko, gk, NQ) && !memcmp(gv, gv_r, sizeof gv),
          "attention's rounded-only dq, dk are not its dq, dk rounded");
    static float dxq[NQ], dxq_r[NQ];
    for (int i = 0; i < NQ; i++) gq[i] = bf16_round(gq[i]);
    qk_prep_backward(dxq, NH * DH, NULL, gq, NULL, q, NULL, NH * DH, rstd, gain, cs, sn, 1, T, NH, DH, DH, NULL);
    qk_prep_backward(dxq_r, NH * DH, NULL, NULL, &dqo, q, NULL, NH * DH, rstd, gain, cs, sn, 1, T, NH, DH, DH, NULL);
    CHECK(!memcmp(dxq, dxq_r, sizeof dxq), "qk_prep backward through a rounded-only dout differs");
    matmul_input_free(&dqo), matmul_input_free(&dko);
    matmul_input_free(&yo), matmul_input_free(&dyo);
    matmul_input_free(&raw), matmul_input_free(&qkv_full);
    for (int i = 0; i < 3; i++) matmul_input_free(&qkv[i]);
    ops_set_matmul_bf16(0);
    RoundedInput empty = {.n = 4}; // holds a NULL buffer of 4 values, as a rounded-only result made in bf16 mode
    CHECK(test_dies_with(matmul_without_output, &empty, "no output"), "matmul without any output in fp32 mode went on");
    CHECK(test_dies_with(relu2_without_input, &empty, "no input"), "relu2 without any input in fp32 mode went on");
    matmul_input_free(&pre), matmul_input_free(&grad), matmul_input_free(&full), matmul_input_free(&only);
}

// relu2 and scaled_add_backward without their fp32 output (bf16 mode, out NULL): the rounded copy
// alone, the same values as the rounding of the full result, and a matmul reads it through the NULL
// buffer it holds; in fp32 mode leaving the output out stops with an error.
static void relu2_without_output(void *arg) {
    float x[4] = {1, -2, 3, -4};
    relu2_forward(NULL, x, NULL, 4, 0.5f, arg);
}

TEST(ops_rounded_only_outputs) {
    enum { N = 6, I = 16, O = 5 };
    static float x[N * I], d[N * I], h[N * I], dh[N * I], w[O * I], out[N * O], out_r[N * O];
    Rng r;
    rng_seed(&r, 11);
    for (int i = 0; i < N * I; i++) x[i] = (float)rng_normal(&r), d[i] = (float)rng_normal(&r);
    for (int i = 0; i < O * I; i++) w[i] = (float)rng_normal(&r);
    RoundedInput full = {0}, only = {0};
    ops_set_matmul_bf16(1);
    relu2_forward(h, x, NULL, N * I, 0.5f, &full);
    relu2_forward(NULL, x, NULL, N * I, 0.5f, &only);
    CHECK(only.of == NULL && only.bf16 && !memcmp(full.rounded, only.rounded, sizeof h), "relu2 forward's copy alone differs");
    matmul_forward(out, h, &full, w, N, I, O, NULL);
    matmul_forward(out_r, NULL, &only, w, N, I, O, NULL);
    CHECK(!memcmp(out, out_r, sizeof out), "a matmul through the copy alone differs");
    relu2_backward(dh, d, NULL, x, NULL, N * I, 0.5f, &full);
    relu2_backward(NULL, d, NULL, x, NULL, N * I, 0.5f, &only);
    CHECK(!memcmp(full.rounded, only.rounded, sizeof dh), "relu2 backward's copy alone differs");
    float scale[I], ds[I] = {0}, ds_only[I] = {0};
    for (int i = 0; i < I; i++) scale[i] = (float)rng_normal(&r);
    scaled_add_backward(dh, ds, d, scale, x, NULL, N, I, 0, &full);
    scaled_add_backward(NULL, ds_only, d, scale, x, NULL, N, I, 0, &only);
    CHECK(!memcmp(full.rounded, only.rounded, sizeof dh) && !memcmp(ds, ds_only, sizeof ds),
          "scaled_add_backward without dy differs");
    ops_set_matmul_bf16(0);
    CHECK(test_dies_with(relu2_without_output, &only, "no output"), "relu2 without any output in fp32 mode went on");
    matmul_input_free(&full), matmul_input_free(&only);
}

// The fused q/k/v projection's column blocks: qk_prep reading one block of a wide row-major matrix
// (its rows W apart) and writing its gradient into one, matmul_input_values and copy_into_columns on
// others; in both precisions, equal to the same ops on the block taken out by hand, and the other
// columns untouched. In bf16 mode the wide matrix exists only rounded, as the model keeps it.
static void view_overflow(void *arg) {
    RoundedInput *whole = arg, v = matmul_input_columns(whole, 4);
    static float x[1024];
    copy_into_columns(NULL, 1, x, (int)whole->n, 1, &v); // 4 values too many
}

TEST(ops_column_blocks) {
    enum { T = 5, NH = 2, DH = 8, Q = NH * DH, Z = 3, K = DH, W = Q + Z + 2 * K, KAT = Q + Z, VAT = Q + Z + K };
    static float wide[T * W], blk[T * K], kb[T * K], out[T * K], ref[T * K], rstd[T], rstd_r[T];
    static float dout[T * K], dwide[T * W], vals[T * K], cs[T * DH / 2], sn[T * DH / 2];
    Rng r;
    rng_seed(&r, 21);
    for (int i = 0; i < T * W; i++) wide[i] = (float)rng_normal(&r);
    for (int i = 0; i < T * K; i++) dout[i] = (float)rng_normal(&r);
    for (int i = 0; i < T * DH / 2; i++) cs[i] = cosf(0.2f * i), sn[i] = sinf(0.2f * i);
    for (int bf16 = 0; bf16 < 2; bf16++) {
        ops_set_matmul_bf16(bf16);
        RoundedInput wide_r = {0}, grad_r = {0};
        matmul_input_round(&wide_r, wide, T * W);
        const float *x = wide + KAT;
        if (bf16) wide_r.of = NULL, x = NULL; // only rounded
        for (int t = 0; t < T; t++)
            for (int j = 0; j < K; j++) {
                float k = wide[t * W + KAT + j];
                kb[t * K + j] = bf16 ? bf16_round(k) : k;
            }
        RoundedInput k_view = matmul_input_columns(&wide_r, KAT), v_view = matmul_input_columns(&wide_r, VAT);
        qk_prep_forward(ref, rstd, kb, NULL, K, NULL, cs, sn, 1, T, 1, DH, DH, 1e-6f, NULL);
        qk_prep_forward(out, rstd_r, x, &k_view, W, NULL, cs, sn, 1, T, 1, DH, DH, 1e-6f, NULL);
        CHECK(!memcmp(ref, out, sizeof out) && !memcmp(rstd, rstd_r, sizeof rstd),
              "qk_prep from a column block differs from the block taken out");
        matmul_input_values(vals, &v_view, T, K, W);
        for (int t = 0; t < T; t++)
            for (int j = 0; j < K; j++) {
                float v = wide[t * W + VAT + j];
                blk[t * K + j] = bf16 ? bf16_round(v) : v;
            }
        CHECK(!memcmp(vals, blk, sizeof blk), "matmul_input_values of a column block differs");
        // backward: the gradient's k block from qk_prep, its v block copied; the rest keeps its marks
        for (int i = 0; i < T * W; i++) dwide[i] = 7;
        matmul_input_round(&grad_r, dwide, T * W); // marks in the rounded storage too
        float *dw = bf16 ? NULL : dwide;
        matmul_input_hold(&grad_r, dw, T * W);
        RoundedInput dk_view = matmul_input_columns(&grad_r, KAT), dv_view = matmul_input_columns(&grad_r, VAT);
        qk_prep_backward(ref, K, NULL, dout, NULL, kb, NULL, K, rstd, NULL, cs, sn, 1, T, 1, DH, DH, NULL);
        qk_prep_backward(dw ? dw + KAT : NULL, W, NULL, dout, NULL, x, &k_view, W, rstd, NULL, cs, sn, 1, T, 1, DH, DH,
                         &dk_view);
        copy_into_columns(dw ? dw + VAT : NULL, W, dout, T, K, &dv_view);
        const float *got = bf16 ? grad_r.rounded : dwide;
        int ok = grad_r.of == dw && grad_r.n == T * W;
        for (int t = 0; t < T; t++)
            for (int j = 0; j < W; j++) {
                float want = j >= KAT && j < VAT ? ref[t * K + j - KAT] : j >= VAT ? dout[t * K + j - VAT] : 7;
                ok &= got[t * W + j] == (bf16 ? bf16_round(want) : want);
            }
        CHECK(ok, "column blocks of a gradient written by qk_prep_backward and copy_into_columns differ");
        if (bf16) CHECK(test_dies_with(view_overflow, &grad_r, "column view"), "a column view grew past its matrix");
        matmul_input_free(&wide_r), matmul_input_free(&grad_r);
    }
    ops_set_matmul_bf16(0);
}

// The residual stream's updates fused with the norm of their result: the same values as the ops
// apart (the mix by hand), in both precisions; in bf16 mode also with the norm kept only rounded.
TEST(ops_fused_norm_updates) {
    enum { N = 7, C = 12 };
    static float x[N * C], x0[N * C], y[N * C], mix[2 * C], xm[N * C], xm_f[N * C], nr[N * C], nf[N * C], rs[N], rs_f[N];
    Rng r;
    rng_seed(&r, 31);
    for (int i = 0; i < N * C; i++) x[i] = (float)rng_normal(&r), x0[i] = (float)rng_normal(&r), y[i] = (float)rng_normal(&r);
    for (int i = 0; i < 2 * C; i++) mix[i] = (float)rng_normal(&r);
    for (int bf16 = 0; bf16 < 2; bf16++) {
        ops_set_matmul_bf16(bf16);
        RoundedInput ref_r = {0}, fused_r = {0}, only = {0};
        for (int n = 0; n < N; n++)
            for (int c = 0; c < C; c++) xm[n * C + c] = mix[c] * x[n * C + c] + mix[C + c] * x0[n * C + c];
        rmsnorm_forward(nr, rs, xm, N, C, 1e-6f, 0.6f, &ref_r);
        resid_mix_rmsnorm_forward(xm_f, x, x0, mix, N, C, nf, rs_f, 1e-6f, 0.6f, &fused_r);
        CHECK(!memcmp(xm, xm_f, sizeof xm) && !memcmp(nr, nf, sizeof nr) && !memcmp(rs, rs_f, sizeof rs) &&
                  (!bf16 || !memcmp(ref_r.rounded, fused_r.rounded, sizeof nr)),
              "resid_mix_rmsnorm_forward differs from the mix and the norm apart");
        if (bf16) {
            resid_mix_rmsnorm_forward(xm_f, x, x0, mix, N, C, NULL, rs_f, 1e-6f, 0.6f, &only);
            CHECK(same_as_rounded(&only, nr, N * C), "resid_mix_rmsnorm_forward's norm kept only rounded differs");
        }
        memcpy(xm_f, xm, sizeof xm);
        scaled_add_forward(xm, xm, mix, y, NULL, N, C);
        rmsnorm_forward(nr, rs, xm, N, C, 1e-6f, 0.6f, &ref_r);
        scaled_add_rmsnorm_forward(xm_f, mix, y, NULL, N, C, nf, rs_f, 1e-6f, 0.6f, &fused_r);
        CHECK(!memcmp(xm, xm_f, sizeof xm) && !memcmp(nr, nf, sizeof nr) && !memcmp(rs, rs_f, sizeof rs) &&
                  (!bf16 || !memcmp(ref_r.rounded, fused_r.rounded, sizeof nr)),
              "scaled_add_rmsnorm_forward differs from the add and the norm apart");
        matmul_input_free(&ref_r), matmul_input_free(&fused_r), matmul_input_free(&only);
    }
    ops_set_matmul_bf16(0);
}

// Finite-difference checks, in double precision, of every op's backward and of the whole model.
// Each op is tested through L = sum(out * R) for a random R, so dL/dout = R.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../test.h"
#include "config.h"
#include "model/gpt.h"
#include "model/host_tables.h"
#include "ops/ops.h"
#include "util.h"

#ifndef PGOLF_F64
#error "gradient checks need the f64 build"
#endif

#define FD_H 1e-6
#define FD_TOL 1e-6 // relative to max(1, |grad|): double-precision central differences reach ~1e-9

static Rng g_rng;

static real *randn(size_t n, double std) {
    real *p = ops_alloc(n);
    for (size_t i = 0; i < n; i++) p[i] = rng_normal(&g_rng) * std;
    return p;
}

typedef double (*LossFn)(void *ctx);

// Compares analytic[i] with the central difference of f at x[i], for up to `max_checks` indices.
static void check_fd(const char *what, real *x, size_t n, const real *analytic, LossFn f, void *ctx, int max_checks) {
    size_t step = n > (size_t)max_checks ? n / (size_t)max_checks : 1;
    double worst = 0;
    for (size_t i = (size_t)(rng_u64(&g_rng) % step); i < n; i += step) {
        real save = x[i];
        x[i] = save + FD_H;
        double lp = f(ctx);
        x[i] = save - FD_H;
        double lm = f(ctx);
        x[i] = save;
        double fd = (lp - lm) / (2 * FD_H), err = fabs(fd - analytic[i]) / fmax(1.0, fabs(fd));
        if (err > worst) worst = err;
        if (err > FD_TOL) {
            CHECK(0, "%s[%zu]: analytic %.10g vs finite difference %.10g", what, i, analytic[i], fd);
            return;
        }
    }
    printf("    %-28s worst relative error %.2e\n", what, worst);
}

static double dot(const real *a, const real *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

// ---------------------------------------------------------------- matmul

typedef struct {
    int N, I, O;
    real *x, *w, *out, *R;
} MatmulCtx;

static double matmul_loss(void *p) {
    MatmulCtx *c = p;
    matmul_forward(c->out, c->x, NULL, c->w, c->N, c->I, c->O, NULL);
    return dot(c->out, c->R, (size_t)c->N * c->O);
}

TEST(grad_matmul) {
    MatmulCtx c = {5, 7, 3};
    c.x = randn(35, 1), c.w = randn(21, 1), c.out = ops_alloc(15), c.R = randn(15, 1);
    real *dx = randn(35, 1), *dw = ops_alloc(21);
    real *dx_before = ops_alloc(35);
    ops_copy(dx_before, dx, 35);
    matmul_backward(dx, dw, c.R, NULL, c.x, NULL, c.w, c.N, c.I, c.O, 1, NULL); // accumulate: dx = before + true grad
    for (int i = 0; i < 35; i++) dx[i] -= dx_before[i];
    check_fd("matmul dx", c.x, 35, dx, matmul_loss, &c, 100);
    check_fd("matmul dw", c.w, 21, dw, matmul_loss, &c, 100);
}

// ---------------------------------------------------------------- rmsnorm

typedef struct {
    int rows, C;
    real *x, *out, *rstd, *R;
    real scale; // LN_SCALE's factor
} NormCtx;

static double norm_loss(void *p) {
    NormCtx *c = p;
    rmsnorm_forward(c->out, c->rstd, c->x, c->rows, c->C, 1e-7, c->scale, NULL);
    return dot(c->out, c->R, (size_t)c->rows * c->C);
}

TEST(grad_rmsnorm) {
    const real scales[] = {1, 0.57735};
    for (int k = 0; k < 2; k++) {
        NormCtx c = {4, 9};
        size_t n = 36;
        c.x = randn(n, 2), c.out = ops_alloc(n), c.rstd = ops_alloc(4), c.R = randn(n, 1), c.scale = scales[k];
        norm_loss(&c);
        real *dx = ops_alloc(n);
        rmsnorm_backward(dx, c.R, NULL, c.out, c.rstd, c.rows, c.C, c.scale, 0);
        check_fd(k ? "rmsnorm (scaled) dx" : "rmsnorm dx", c.x, n, dx, norm_loss, &c, 100);
    }
}

// ---------------------------------------------------------------- q/k preparation (norm + rope + gain)

typedef struct {
    int B, T, nh, Dh, rot, ld;
    real *x, *rstd, *out, *gain, *cos_t, *sin_t, *R;
} QkCtx;

static double qk_loss(void *p) {
    QkCtx *c = p;
    qk_prep_forward(c->out, c->rstd, c->x, NULL, c->ld, c->gain, c->cos_t, c->sin_t, c->B, c->T, c->nh, c->Dh, c->rot,
                    1e-7, NULL);
    return dot(c->out, c->R, (size_t)c->B * c->T * c->nh * c->Dh);
}

// pad: x's rows (and dx's) `pad` values longer than a token's heads, as a column block of a wider matrix;
// the padding's gradient is zero, and dx must leave it so.
static void qk_case(const char *label, int rot, int with_gain, int pad) {
    QkCtx c = {2, 5, 3, 8, rot, 3 * 8 + pad};
    size_t n = (size_t)c.B * c.T * c.nh * c.Dh, nx = (size_t)c.B * c.T * c.ld;
    c.x = randn(nx, 1), c.rstd = ops_alloc(n), c.out = ops_alloc(n), c.R = randn(n, 1);
    c.gain = with_gain ? randn(3, 1) : NULL;
    c.cos_t = ops_alloc((size_t)c.T * rot / 2), c.sin_t = ops_alloc((size_t)c.T * rot / 2);
    rope_tables(c.cos_t, c.sin_t, c.T, rot, 100.0, 0);
    qk_loss(&c);
    real *dx = ops_alloc(nx), *dg = ops_alloc(3);
    qk_prep_backward(dx, c.ld, dg, c.R, NULL, c.x, NULL, c.ld, c.rstd, c.gain, c.cos_t, c.sin_t, c.B, c.T, c.nh, c.Dh, rot,
                     NULL);
    char what[64];
    snprintf(what, sizeof what, "%s dx", label);
    check_fd(what, c.x, nx, dx, qk_loss, &c, 120);
    if (with_gain) {
        snprintf(what, sizeof what, "%s dgain", label);
        check_fd(what, c.gain, 3, dg, qk_loss, &c, 10);
    }
}

TEST(grad_qk_prep) {
    qk_case("qk_prep q", 8, 1, 0);
    qk_case("qk_prep k", 8, 0, 0);
    qk_case("qk_prep partial rope", 4, 1, 0);
    qk_case("qk_prep from a column block", 4, 1, 5);
}

// ---------------------------------------------------------------- attention

typedef struct {
    int B, T, H, Hkv, Dh, ldv;
    real *q, *k, *v, *y, *lse, *R;
} AttnCtx;

static double attn_loss(void *p) {
    AttnCtx *c = p;
    attention_forward(c->y, c->lse, c->q, c->k, c->v, NULL, c->B, c->T, c->H, c->Hkv, c->Dh, c->ldv, NULL);
    return dot(c->y, c->R, (size_t)c->B * c->T * c->H * c->Dh);
}

// v's rows ldv apart: a column block of a wider matrix (the fused q/k/v product's), dv written into the
// same columns of another, its other columns untouched (and with no gradient: the finite differences
// there are 0)
static void attn_case(const char *label, int B, int T, int H, int Hkv, int Dh, int ldv) {
    AttnCtx c = {B, T, H, Hkv, Dh, ldv};
    size_t nq = (size_t)B * T * H * Dh, nk = (size_t)B * T * Hkv * Dh, nv = (size_t)B * T * ldv;
    c.q = randn(nq, 1), c.k = randn(nk, 1), c.v = randn(nv, 1), c.y = ops_alloc(nq), c.lse = ops_alloc((size_t)B * H * T);
    c.R = randn(nq, 1);
    attn_loss(&c);
    real *dq = ops_alloc(nq), *dk = ops_alloc(nk), *dv = ops_alloc(nv);
    for (size_t i = 0; i < nv; i++) dv[i] = 7;
    attention_backward(dq, dk, dv, c.R, NULL, c.y, NULL, c.lse, c.q, c.k, c.v, NULL, B, T, H, Hkv, Dh, ldv, NULL, NULL, NULL);
    int kept = 1;
    for (size_t i = 0; i < nv; i++)
        if ((int)(i % ldv) >= Hkv * Dh) kept &= dv[i] == 7, dv[i] = 0;
    CHECK(kept, "%s: dv written outside its columns", label);
    char what[64];
    snprintf(what, sizeof what, "%s dq", label);
    check_fd(what, c.q, nq, dq, attn_loss, &c, 150);
    snprintf(what, sizeof what, "%s dk", label);
    check_fd(what, c.k, nk, dk, attn_loss, &c, 150);
    snprintf(what, sizeof what, "%s dv", label);
    check_fd(what, c.v, nv, dv, attn_loss, &c, 150);
}

TEST(grad_attention) {
    attn_case("attention gqa", 2, 7, 4, 2, 4, 8);
    attn_case("attention mha", 1, 5, 2, 2, 6, 12);
    attn_case("attention >1 row block", 1, 70, 2, 1, 4, 4); // crosses the 64-row block boundary
    attn_case("attention, 128-row blocks", 1, 1030, 1, 1, 2, 2); // long sequences' blocks, the last one short
    attn_case("attention, v a column block", 2, 9, 4, 2, 4, 13);
}

// ---------------------------------------------------------------- XSA

typedef struct {
    int N, H, Hkv, Dh;
    real *y, *v, *out, *R;
} XsaCtx;

static double xsa_loss(void *p) {
    XsaCtx *c = p;
    xsa_forward(c->out, c->y, c->v, c->N, c->H, c->Hkv, c->Dh);
    return dot(c->out, c->R, (size_t)c->N * c->H * c->Dh);
}

TEST(grad_xsa) {
    XsaCtx c = {5, 4, 2, 6};
    size_t ny = (size_t)c.N * c.H * c.Dh, nv = (size_t)c.N * c.Hkv * c.Dh;
    c.y = randn(ny, 1), c.v = randn(nv, 1), c.out = ops_alloc(ny), c.R = randn(ny, 1);
    real *dy = ops_alloc(ny), *dv = ops_alloc(nv);
    ops_copy(dy, c.R, ny);
    xsa_backward(dy, dv, c.y, c.v, c.N, c.H, c.Hkv, c.Dh);
    check_fd("xsa dy", c.y, ny, dy, xsa_loss, &c, 100);
    check_fd("xsa dv", c.v, nv, dv, xsa_loss, &c, 100);
}

// ---------------------------------------------------------------- gated attention, value residual

typedef struct {
    int N, H, Dh, G;
    real gain;
    real *y, *z, *bias, *gate, *out, *R;
} GateCtx;

static double gate_loss(void *p) {
    GateCtx *c = p;
    attn_gate_forward(c->out, c->gate, c->y, c->z, c->bias, c->N, c->H, c->Dh, c->G, c->gain);
    return dot(c->out, c->R, (size_t)c->N * c->H * c->Dh);
}

static void gate_case(const char *what, int G, real gain) {
    GateCtx c = {5, 3, 4, G, gain};
    size_t ny = (size_t)c.N * c.H * c.Dh, nz = (size_t)c.N * G;
    c.y = randn(ny, 1), c.z = randn(nz, 1), c.bias = randn((size_t)G, 1), c.gate = ops_alloc(nz);
    c.out = ops_alloc(ny), c.R = randn(ny, 1);
    real *dy = ops_alloc(ny), *dz = ops_alloc(nz), *dbias = ops_alloc((size_t)G);
    gate_loss(&c); // gates saved for backward
    attn_gate_backward(dy, dz, dbias, c.R, c.y, c.gate, c.N, c.H, c.Dh, G, gain);
    char name[64];
    snprintf(name, sizeof name, "%s dy", what);
    check_fd(name, c.y, ny, dy, gate_loss, &c, 100);
    snprintf(name, sizeof name, "%s dz", what);
    check_fd(name, c.z, nz, dz, gate_loss, &c, 100);
    snprintf(name, sizeof name, "%s dbias", what);
    check_fd(name, c.bias, (size_t)G, dbias, gate_loss, &c, 100);
}

TEST(grad_attn_gate) {
    gate_case("attn_gate headwise", 3, 1);
    gate_case("attn_gate elementwise x2", 12, 2); // a gain other than 1 checks that it is applied
}

typedef struct {
    size_t n;
    real *v, *v0, *lam, *out, *R;
} VmixCtx;

static double vmix_loss(void *p) {
    VmixCtx *c = p;
    value_mix_forward(c->out, c->v, c->v0, c->lam, c->n);
    return dot(c->out, c->R, c->n);
}

TEST(grad_value_mix) {
    VmixCtx c = {17};
    c.v = randn(c.n, 1), c.v0 = randn(c.n, 1), c.lam = randn(2, 1), c.out = ops_alloc(c.n), c.R = randn(c.n, 1);
    real *dv = ops_alloc(c.n), *dv0 = randn(c.n, 1), *before = ops_alloc(c.n), dlam_r[2];
    double dlam[2];
    ops_copy(before, dv0, c.n);
    value_mix_backward(dv, dv0, dlam, c.R, c.v, c.v0, c.lam, c.n); // dv0 accumulates
    for (size_t i = 0; i < c.n; i++) dv0[i] -= before[i];
    dlam_r[0] = (real)dlam[0], dlam_r[1] = (real)dlam[1];
    check_fd("value_mix dv", c.v, c.n, dv, vmix_loss, &c, 100);
    check_fd("value_mix dv0", c.v0, c.n, dv0, vmix_loss, &c, 100);
    check_fd("value_mix dlam", c.lam, 2, dlam_r, vmix_loss, &c, 100);
}

// ---------------------------------------------------------------- elementwise ops

typedef struct {
    int N, C;
    real *x, *x0, *mix, *scale, *y, *out, *R;
    real slope;          // leaky_relu's negative slope
    real *ny, *rstd, *Rn; // the residual mix's norm (rmsnorm_resid_mix_backward), with its own weights
    real ln;
} EwCtx;

static double relu2_loss(void *p) {
    EwCtx *c = p;
    relu2_forward(c->out, c->x, NULL, (size_t)c->N * c->C, c->slope, NULL);
    return dot(c->out, c->R, (size_t)c->N * c->C);
}

// the mix xm read twice, as in a block: by the residual stream (R) and through its norm (Rn)
static double mix_loss(void *p) {
    EwCtx *c = p;
    resid_mix_rmsnorm_forward(c->out, c->x, c->x0, c->mix, c->N, c->C, c->ny, c->rstd, 1e-6, c->ln, NULL);
    return dot(c->out, c->R, (size_t)c->N * c->C) + dot(c->ny, c->Rn, (size_t)c->N * c->C);
}

// the attention's scaled add and the MLP's norm of its result, both read (as mix_loss)
static double add_norm_loss(void *p) {
    EwCtx *c = p;
    ops_copy(c->out, c->x, (size_t)c->N * c->C);
    scaled_add_rmsnorm_forward(c->out, c->scale, c->y, NULL, c->N, c->C, c->ny, c->rstd, 1e-6, c->ln, NULL);
    return dot(c->out, c->R, (size_t)c->N * c->C) + dot(c->ny, c->Rn, (size_t)c->N * c->C);
}

static double scaled_add_loss(void *p) {
    EwCtx *c = p;
    scaled_add_forward(c->out, c->x, c->scale, c->y, NULL, c->N, c->C);
    return dot(c->out, c->R, (size_t)c->N * c->C);
}

static double skip_lerp_loss(void *p) {
    EwCtx *c = p;
    skip_lerp_forward(c->out, c->x, c->y, c->scale, c->mix, c->N, c->C);
    return dot(c->out, c->R, (size_t)c->N * c->C);
}

TEST(grad_elementwise) {
    EwCtx c = {6, 5};
    size_t n = 30;
    c.x = randn(n, 1), c.x0 = randn(n, 1), c.mix = randn(10, 1), c.scale = randn(5, 1), c.y = randn(n, 1);
    c.out = ops_alloc(n), c.R = randn(n, 1);
    for (size_t i = 0; i < n; i++)
        if (fabs(c.x[i]) < 1e-3) c.x[i] = 0.5; // keep finite differences off relu's kink
    real *dx = ops_alloc(n), *dx0 = randn(n, 1), *dmix = ops_alloc(10), *dscale = ops_alloc(5), *dy = ops_alloc(n);
    relu2_backward(dx, c.R, NULL, c.x, NULL, n, 0, NULL);
    check_fd("relu2 dx", c.x, n, dx, relu2_loss, &c, 100);
    c.slope = 0.5;
    relu2_backward(dx, c.R, NULL, c.x, NULL, n, c.slope, NULL);
    check_fd("leaky_relu(0.5)^2 dx", c.x, n, dx, relu2_loss, &c, 100);
    c.slope = 0;
    real *dx0_before = ops_alloc(n);
    ops_copy(dx0_before, dx0, n);
    c.ny = ops_alloc(n), c.rstd = ops_alloc(6), c.Rn = randn(n, 1), c.ln = 0.7;
    mix_loss(&c);
    rmsnorm_resid_mix_backward(dx, dx0, dmix, c.Rn, NULL, c.R, c.x, c.x0, c.mix, c.rstd, c.N, c.C, c.ln);
    for (size_t i = 0; i < n; i++) dx0[i] -= dx0_before[i];
    check_fd("resid_mix + norm dx", c.x, n, dx, mix_loss, &c, 100);
    check_fd("resid_mix + norm dx0", c.x0, n, dx0, mix_loss, &c, 100);
    check_fd("resid_mix + norm dmix", c.mix, 10, dmix, mix_loss, &c, 100);
    scaled_add_backward(dy, dscale, c.R, c.scale, c.y, NULL, c.N, c.C, 0, NULL);
    check_fd("scaled_add dy", c.y, n, dy, scaled_add_loss, &c, 100);
    check_fd("scaled_add dscale", c.scale, 5, dscale, scaled_add_loss, &c, 100);
    add_norm_loss(&c); // c.out: the stream after the add, whose norm the backward recomputes
    ops_copy(dx, c.R, n);
    ops_zero(dscale, 5);
    scaled_add_rmsnorm_backward(dx, dy, dscale, c.Rn, NULL, c.out, c.rstd, c.scale, c.y, NULL, c.N, c.C, c.ln, NULL);
    check_fd("scaled_add + norm dx", c.x, n, dx, add_norm_loss, &c, 100);
    check_fd("scaled_add + norm dy", c.y, n, dy, add_norm_loss, &c, 100);
    check_fd("scaled_add + norm dscale", c.scale, 5, dscale, add_norm_loss, &c, 100);
    real *dgate = ops_alloc(5); // skip_lerp: mix[0..C) serves as the gate
    ops_zero(dscale, 5);
    skip_lerp_backward(dx, dy, dscale, dgate, c.R, c.x, c.y, c.scale, c.mix, c.N, c.C);
    check_fd("skip_lerp dx", c.x, n, dx, skip_lerp_loss, &c, 100);
    check_fd("skip_lerp dy", c.y, n, dy, skip_lerp_loss, &c, 100);
    check_fd("skip_lerp dw", c.scale, 5, dscale, skip_lerp_loss, &c, 100);
    check_fd("skip_lerp dgate", c.mix, 5, dgate, skip_lerp_loss, &c, 100);
}

// ---------------------------------------------------------------- embedding and head

typedef struct {
    int N, D, V;
    int32_t *ids;
    real *table, *out, *R, *z, *loss;
    real cap;
} HeadCtx;

static double embedding_loss(void *p) {
    HeadCtx *c = p;
    embedding_forward(c->out, c->ids, c->table, c->N, c->D);
    return dot(c->out, c->R, (size_t)c->N * c->D);
}

static double xent_loss(void *p) {
    HeadCtx *c = p;
    softcap_xent_forward(c->loss, c->z, NULL, c->ids, c->N, c->V, c->cap);
    double s = 0;
    for (int n = 0; n < c->N; n++) s += c->loss[n];
    return 0.5 * s; // a scale other than 1 checks that `scale` is applied
}

TEST(grad_embedding_and_head) {
    HeadCtx c = {8, 4, 5};
    c.ids = xmalloc(sizeof(int32_t) * 8);
    for (int i = 0; i < 8; i++) c.ids[i] = i % 3; // repeated ids exercise accumulation
    c.table = randn(20, 1), c.out = ops_alloc(32), c.R = randn(32, 1);
    real *dtable = ops_alloc(20);
    embedding_backward(dtable, c.R, c.ids, c.N, c.D);
    check_fd("embedding dtable", c.table, 20, dtable, embedding_loss, &c, 100);
    c.z = randn(40, 4), c.loss = ops_alloc(8), c.cap = 3;
    real *dz = ops_alloc(40);
    softcap_xent_backward(dz, NULL, c.z, NULL, c.ids, c.N, c.V, c.cap, 0.5);
    check_fd("softcap_xent dz", c.z, 40, dz, xent_loss, &c, 100);
}

// ---------------------------------------------------------------- whole model

typedef struct {
    GPT *m;
    int32_t *x, *y;
    int B, T;
} ModelCtx;

static double model_loss(void *p) {
    ModelCtx *c = p;
    return gpt_forward(c->m, c->x, c->y, c->B, c->T);
}

// techniques 1: partial RoPE (2 of 4 dims), LN scale, LeakyReLU(0.5)^2, XSA on the last 2 layers, SmearGate,
// headwise gated attention, #413's value residual and BigramHash together; 2: the same with elementwise
// gates, the sigmoid value residual, an unprojected BigramHash and gated U-Net skips (4 layers: 2 skips);
// 3: techniques 1 with depth recurrence (layers 1-2 twice), GPT-J parallel blocks, gated skips and #2005's
// gate rows in c_q instead of attn_gate; 4: #1435's two lanes with recurrence and an unprojected VE.
static void model_case(int tied, int layers, int techniques) {
    Config cfg;
    config_defaults(&cfg);
    cfg.vocab_size = 11, cfg.num_layers = layers, cfg.model_dim = 16, cfg.num_heads = 4, cfg.num_kv_heads = 2;
    cfg.mlp_mult = 2, cfg.tie_embeddings = tied, cfg.logit_softcap = 4, cfg.rope_base = 50;
    if (techniques) {
        cfg.rope_dims = 2, cfg.ln_scale = 1, cfg.negative_slope = 0.5, cfg.xsa_last_n = 2, cfg.smear_gate = 1;
        cfg.gated_attention = 1, cfg.value_residual = 1;
        cfg.bigram_vocab_size = 7, cfg.bigram_dim = 5; // projected to the model width
    }
    if (techniques == 3) { // depth recurrence 0 1 2 1 2 3, parallel blocks from layer 2, skips sized from it
        free(cfg.recur_layers);
        cfg.recur_layers = xstrdup("1-2");
        cfg.parallel_residual_start = 2, cfg.recur_virtual_skips = 1, cfg.skip_gates_enabled = 1;
        cfg.gated_attention = 0; // #2005's headwise gate: logits from extra rows of c_q
        free(cfg.gated_attn);
        cfg.gated_attn = xstrdup("headwise");
        cfg.ve_enabled = 1, cfg.ve_dim = 3; // value embedding on a repeated layer and on the last
        free(cfg.ve_layers);
        cfg.ve_layers = xstrdup("2,3");
    }
    if (techniques == 4) { // #1435's shape: 0 1 2 1 2 3 4, two lanes from layer 3 (merge skip at their start), VE
        free(cfg.recur_layers);
        cfg.recur_layers = xstrdup("1,2");
        cfg.parallel_start_layer = 3, cfg.recur_virtual_skips = 1, cfg.skip_gates_enabled = 1;
        cfg.ve_enabled = 1, cfg.ve_dim = 8; // == kv_dim: no projection
        free(cfg.ve_layers);
        cfg.ve_layers = xstrdup("4");
    }
    if (techniques == 2) {
        cfg.gated_attention_elementwise = 1;
        cfg.bigram_dim = 16; // the model width: no projection
        cfg.skip_gates_enabled = 1;
        free(cfg.value_residual_form);
        cfg.value_residual_form = xstrdup("sigmoid");
    }
    cfg.train_seq_len = 6, cfg.train_batch_tokens = 12, cfg.grad_accum_steps = 1;
    GPTConfig g = gpt_config_from(&cfg);
    GPT m;
    gpt_init(&m, &g);
    // random weights everywhere (the real init zeroes projections, which would hide gradient bugs)
    for (size_t i = 0; i < m.n_params; i++) m.params[i] = rng_normal(&g_rng) * 0.5;
    ModelCtx c = {&m, xmalloc(sizeof(int32_t) * 12), xmalloc(sizeof(int32_t) * 12), 2, 6};
    for (int i = 0; i < 12; i++) c.x[i] = (int32_t)(rng_u64(&g_rng) % 11), c.y[i] = (int32_t)(rng_u64(&g_rng) % 11);
    gpt_zero_grad(&m);
    gpt_forward(&m, c.x, c.y, c.B, c.T);
    gpt_backward(&m, c.x, 1);
    for (int t = 0; t < m.param_list.count; t++) {
        TensorView *p = &m.param_list.items[t], *gr = &m.grad_list.items[t];
        char what[192];
        snprintf(what, sizeof what, "%s%s%s", tied ? "" : "untied ", techniques ? "techniques " : "", p->name);
        check_fd(what, p->data, (size_t)tensor_numel(p), gr->data, model_loss, &c, 12);
    }
    gpt_free(&m);
}

TEST(grad_model_tied) { model_case(1, 3, 0); }
TEST(grad_model_untied_even_layers) { model_case(0, 4, 0); }
TEST(grad_model_all_techniques) { model_case(1, 3, 1); }
TEST(grad_model_elementwise_gate_sigmoid_vr) { model_case(0, 4, 2); }
TEST(grad_model_recurrence_parallel) { model_case(1, 4, 3); }
TEST(grad_model_recurrence_lanes) { model_case(1, 5, 4); }

__attribute__((constructor)) static void seed_rng(void) { rng_seed(&g_rng, 42); }

// Per-op figures for the CUDA backend on one micro-step of the baseline shape (65,536 tokens of
// 9 x 512, 8 heads of 64, 4 KV heads, seq 1024, vocab 1024, MLP 2x): the linear layers' forward +
// backward (from fp32 operands; in bf16 also forward and backward apart as the model runs them) and
// the causal attention's in bf16 (tensor cores) and fp32, Muon's Newton-Schulz on one
// 512 x 1024 matrix in both precisions, the norm, q's preparation (per-head norm, RoPE, gain), the
// residual stream's mixes and adds, the MLP's activation and the softcapped cross-entropy. Shows where
// a step's time goes before bench_gpu.sh's end-to-end numbers. Built by `make cuda`
// (build/bench_cuda_ops); BENCH_TOKENS and BENCH_SEQ shrink it (the emulator build runs it tiny in
// `make cuda-emu-test`, to keep it working). Timing: host clock around synchronized runs, repeated for
// at least BENCH_MS (300) milliseconds per op after one warm-up.
#include <stdio.h>
#include <stdlib.h>

#include "ops/cuda/ops_cuda.h"
#include "ops/ops.h"
#include "util.h"

static double g_seconds;

static float *device_random(size_t n, Rng *r) {
    float *h = xmalloc(sizeof(float) * n), *d = cuda_alloc(n);
    for (size_t i = 0; i < n; i++) h[i] = (float)(rng_normal(r) * 0.5);
    cuda_upload(d, h, sizeof(float) * n);
    free(h);
    return d;
}

static long env_long(const char *name, long def) {
    const char *s = getenv(name);
    return s && *s ? atol(s) : def;
}

// Runs op(arg) once, then until g_seconds have passed; returns seconds per run.
static double time_op(void (*op)(void *), void *arg) {
    op(arg);
    cuda_sync();
    int reps = 0;
    double t0 = now_seconds(), dt;
    do {
        op(arg);
        cuda_sync();
        reps++;
    } while ((dt = now_seconds() - t0) < g_seconds);
    return dt / reps;
}

typedef struct {
    float *x, *w, *out, *dx, *dw;
    int N, in, out_dim;
} Linear;

static void linear_step(void *p) {
    Linear *l = p;
    cuda_matmul_forward(l->out, l->x, NULL, l->w, l->N, l->in, l->out_dim, NULL);
    cuda_matmul_backward(l->dx, l->dw, l->out, NULL, l->x, NULL, l->w, l->N, l->in, l->out_dim, 0, NULL);
}

// A linear layer as the bf16 model runs it: its input and output gradient rounded beforehand by the ops
// that wrote them, its output and input gradient kept only rounded, the fp32 weight rounded per call;
// the forward and the backward (input and weight gradients) timed apart.
typedef struct {
    RoundedInput x, out, dout, dx;
    float *w, *dw;
    int N, in, out_dim;
} ModelLinear;

static void model_linear_forward(void *p) {
    ModelLinear *l = p;
    cuda_matmul_forward(NULL, NULL, &l->x, l->w, l->N, l->in, l->out_dim, &l->out);
}

static void model_linear_backward(void *p) {
    ModelLinear *l = p;
    cuda_matmul_backward(NULL, l->dw, NULL, &l->dout, NULL, &l->x, l->w, l->N, l->in, l->out_dim, 0, &l->dx);
}

typedef struct {
    float *q, *k, *v, *y, *lse, *dy, *dq, *dk, *dv;
    int B, T, H, Hkv, Dh;
} Attention;

static void attention_step(void *p) {
    Attention *a = p;
    cuda_attention_forward(a->y, a->lse, a->q, a->k, a->v, NULL, a->B, a->T, a->H, a->Hkv, a->Dh, a->Hkv * a->Dh, NULL);
    cuda_attention_backward(a->dq, a->dk, a->dv, a->dy, NULL, a->y, NULL, a->lse, a->q, a->k, a->v, NULL, a->B, a->T, a->H,
                            a->Hkv, a->Dh, a->Hkv * a->Dh, NULL, NULL, NULL);
}

// The attention as a baseline layer runs it in bf16: q, k rounded by their preparation, v read in place
// from the fused q/k/v product ([N, 1024], v from column 768), y and dy only rounded, dq, dk only
// rounded and dv written into the product's gradient.
typedef struct {
    RoundedInput qkv[3], product, y, dy, dq, dk, grad, dv;
    float *lse;
    int B, T, H, Hkv, Dh, ldv;
} ModelAttention;

static void model_attention_step(void *p) {
    ModelAttention *a = p;
    cuda_attention_forward(NULL, a->lse, NULL, NULL, NULL, a->qkv, a->B, a->T, a->H, a->Hkv, a->Dh, a->ldv, &a->y);
    cuda_attention_backward(NULL, NULL, NULL, NULL, &a->dy, NULL, &a->y, a->lse, NULL, NULL, NULL, a->qkv, a->B, a->T, a->H,
                            a->Hkv, a->Dh, a->ldv, &a->dq, &a->dk, &a->dv);
}

// d [n] on the device kept only rounded in r (as a result the model keeps only rounded)
static void only_rounded(RoundedInput *r, float *d, size_t n) {
    cuda_matmul_input_round(r, d, n);
    r->of = NULL;
    cuda_free(d);
}

typedef struct {
    float *x, *out, *rstd, *dx, *loss;
    int32_t *targets;
    int N, C;
    RoundedInput *xr; // the logits kept only rounded (the bf16 head's), or NULL: x in fp32
} Rows;

static void rmsnorm_step(void *p) {
    Rows *r = p;
    cuda_rmsnorm_forward(r->out, r->rstd, r->x, r->N, r->C, 1e-6f, 1.0f, NULL);
    cuda_rmsnorm_backward(r->dx, r->out, NULL, r->out, r->rstd, r->N, r->C, 1.0f, 0);
}

static void xent_step(void *p) {
    Rows *r = p;
    float *x = r->xr ? NULL : r->x; // the gradient written over the logits, as the model's
    cuda_softcap_xent_forward(r->loss, x, r->xr, r->targets, r->N, r->C, 30.0f);
    cuda_softcap_xent_backward(x, r->xr, x, r->xr, r->targets, r->N, r->C, 30.0f, 1.0f);
}

typedef struct {
    float *x, *dx, *rstd, *out, *gain, *dgain, *cos_t, *sin_t;
    int B, T, H, Dh;
} QkPrep;

static void qk_prep_step(void *p) {
    QkPrep *q = p;
    int w = q->H * q->Dh;
    cuda_qk_prep_forward(q->out, q->rstd, q->x, NULL, w, q->gain, q->cos_t, q->sin_t, q->B, q->T, q->H, q->Dh, q->Dh, 1e-6f,
                         NULL);
    cuda_qk_prep_backward(q->dx, w, q->dgain, q->out, NULL, q->x, NULL, w, q->rstd, q->gain, q->cos_t, q->sin_t, q->B, q->T,
                          q->H, q->Dh, q->Dh, NULL);
}

// The residual stream's per-channel ops over [N, C] (their backward's column sums are the part to
// watch: SUM_CHUNK_ROWS rows per thread), and the MLP's activation over [N, F].
typedef struct {
    float *x, *x0, *y, *out, *dout, *dx, *dx0, *mix, *dmix, *scale, *dscale, *h, *dh, *dhin, *rstd;
    int N, C, F;
} Residual;

static void resid_mix_step(void *p) {
    Residual *r = p;
    cuda_resid_mix_rmsnorm_forward(r->out, r->x, r->x0, r->mix, r->N, r->C, r->y, r->rstd, 1e-6f, 1.0f, NULL);
    cuda_rmsnorm_resid_mix_backward(r->dx, r->dx0, r->dmix, r->y, NULL, r->dout, r->x, r->x0, r->mix, r->rstd, r->N, r->C,
                                    1.0f);
}

static void scaled_add_step(void *p) {
    Residual *r = p;
    cuda_scaled_add_forward(r->out, r->out, r->scale, r->y, NULL, r->N, r->C);
    cuda_scaled_add_backward(r->dx, r->dscale, r->dout, r->scale, r->y, NULL, r->N, r->C, 0, NULL);
}

static void relu2_step(void *p) {
    Residual *r = p;
    cuda_relu2_forward(r->dhin, r->h, NULL, (size_t)r->N * r->F, 0.5f, NULL);
    cuda_relu2_backward(r->dhin, r->dh, NULL, r->h, NULL, (size_t)r->N * r->F, 0.5f, NULL);
}

// Muon's Newton-Schulz (src/optim/muon.c) on `count` rows x cols matrices at once (rows <= cols): 5
// steps of A = X X^T, B = b A + c A A, X = a X + B X, here without the copies between.
typedef struct {
    float *X, *A, *Bm, *Xn;
    int rows, cols, count;
} NewtonSchulz;

static void newton_schulz_step(void *p) {
    NewtonSchulz *n = p;
    int r = n->rows, k = n->cols, c = n->count;
    size_t rk = (size_t)r * k, rr = (size_t)r * r;
    for (int s = 0; s < 5; s++) {
        cuda_matmul_gemm(0, 1, r, r, k, 1, n->X, k, rk, n->X, k, rk, 0, n->A, r, rr, c);
        cuda_matmul_gemm(0, 0, r, r, r, 2.0315f, n->A, r, rr, n->A, r, rr, -4.7750f, n->Bm, r, rr, c);
        cuda_matmul_gemm(0, 0, r, k, r, 1, n->Bm, r, rr, n->X, k, rk, 3.4445f, n->Xn, k, rk, c);
    }
}

// One line: what ran (forward and backward, where the op has one), its time and its rate.
static void report(const char *name, const char *precision, double seconds, double rate, const char *unit) {
    printf("%-44s %-4s %9.3f ms  %8.1f %s\n", name, precision, 1e3 * seconds, rate, unit);
}

int main(void) {
    if (!cuda_device_count()) {
        printf("bench_cuda_ops: no CUDA device\n");
        return 0;
    }
    int N = (int)env_long("BENCH_TOKENS", 65536), T = (int)env_long("BENCH_SEQ", 1024), D = 512, V = 1024;
    g_seconds = env_long("BENCH_MS", 300) / 1000.0;
    Rng rng;
    rng_seed(&rng, 1);
    printf("bench_cuda_ops: %d tokens, seq %d (one micro-step of the baseline at the defaults)\n", N, T);
    struct {
        const char *name;
        int in, out;
    } layers[] = {{"attn.proj 512->512", D, D}, {"(unfused c_k, c_v) 512->256", D, D / 2},
                  {"mlp.fc, fused c_q+c_k+c_v 512->1024", D, 2 * D},
                  {"mlp.proj 1024->512", 2 * D, D}, {"lm_head 512->1024", D, V}};
    for (int bf16 = 1; bf16 >= 0; bf16--) {
        cuda_set_matmul_bf16(bf16);
        for (size_t i = 0; i < sizeof layers / sizeof *layers; i++) {
            int in = layers[i].in, out = layers[i].out;
            Linear l = {device_random((size_t)N * in, &rng), device_random((size_t)out * in, &rng), cuda_alloc((size_t)N * out),
                        cuda_alloc((size_t)N * in), cuda_alloc((size_t)out * in), N, in, out};
            double s = time_op(linear_step, &l);
            char name[64];
            snprintf(name, sizeof name, "linear %s", layers[i].name);
            report(name, bf16 ? "bf16" : "fp32", s, 6.0 * N * in * out / s / 1e12, "TFLOP/s");
            float *bufs[] = {l.x, l.w, l.out, l.dx, l.dw};
            for (int j = 0; j < 5; j++) cuda_free(bufs[j]);
        }
        if (bf16) printf("linear layers as the model runs them (operands rounded beforehand, outputs kept rounded):\n");
        for (size_t i = 0; bf16 && i < sizeof layers / sizeof *layers; i++) {
            int in = layers[i].in, out = layers[i].out;
            ModelLinear l = {.w = device_random((size_t)out * in, &rng), .dw = cuda_alloc((size_t)out * in), .N = N, .in = in,
                             .out_dim = out};
            only_rounded(&l.x, device_random((size_t)N * in, &rng), (size_t)N * in);
            only_rounded(&l.dout, device_random((size_t)N * out, &rng), (size_t)N * out);
            double fwd = time_op(model_linear_forward, &l), bwd = time_op(model_linear_backward, &l);
            char name[64];
            snprintf(name, sizeof name, "  %s fwd", layers[i].name);
            report(name, "bf16", fwd, 2.0 * N * in * out / fwd / 1e12, "TFLOP/s");
            snprintf(name, sizeof name, "  %s bwd", layers[i].name);
            report(name, "bf16", bwd, 4.0 * N * in * out / bwd / 1e12, "TFLOP/s");
            RoundedInput *held[] = {&l.x, &l.out, &l.dout, &l.dx};
            for (int j = 0; j < 4; j++) cuda_matmul_input_free(held[j]);
            cuda_free(l.w), cuda_free(l.dw);
        }
        int H = 8, Hkv = 4, Dh = 64, B = N / T;
        size_t nq = (size_t)N * H * Dh, nk = (size_t)N * Hkv * Dh;
        Attention a = {device_random(nq, &rng), device_random(nk, &rng), device_random(nk, &rng), cuda_alloc(nq),
                       cuda_alloc((size_t)B * H * T), device_random(nq, &rng), cuda_alloc(nq), cuda_alloc(nk), cuda_alloc(nk),
                       B, T, H, Hkv, Dh};
        double s = time_op(attention_step, &a);
        double fwd = 4.0 * B * H * Dh * (double)T * T / 2; // causal: half the score matrix; backward counted 2.5x
        char name[64];
        snprintf(name, sizeof name, "attention B%d T%d H%d/%d Dh%d", B, T, H, Hkv, Dh);
        report(name, bf16 ? "bf16" : "fp32", s, 3.5 * fwd / s / 1e12, "TFLOP/s");
        float *bufs[] = {a.q, a.k, a.v, a.y, a.lse, a.dy, a.dq, a.dk, a.dv};
        for (int j = 0; j < 9; j++) cuda_free(bufs[j]);
        if (!bf16) continue;
        int W = (H + 2 * Hkv) * Dh; // the fused product's row: q, k, v
        ModelAttention ma = {.lse = cuda_alloc((size_t)B * H * T), .B = B, .T = T, .H = H, .Hkv = Hkv, .Dh = Dh, .ldv = W};
        only_rounded(&ma.qkv[0], device_random(nq, &rng), nq);
        only_rounded(&ma.qkv[1], device_random(nk, &rng), nk);
        only_rounded(&ma.product, device_random((size_t)N * W, &rng), (size_t)N * W);
        only_rounded(&ma.dy, device_random(nq, &rng), nq);
        ma.qkv[2] = cuda_matmul_input_columns(&ma.product, (size_t)(H + Hkv) * Dh);
        cuda_matmul_input_hold(&ma.grad, NULL, (size_t)N * W);
        ma.dv = cuda_matmul_input_columns(&ma.grad, (size_t)(H + Hkv) * Dh);
        s = time_op(model_attention_step, &ma);
        report("attention, as a layer runs it (v in place)", "bf16", s, 3.5 * fwd / s / 1e12, "TFLOP/s");
        RoundedInput *owned[] = {&ma.qkv[0], &ma.qkv[1], &ma.product, &ma.y, &ma.dy, &ma.dq, &ma.dk, &ma.grad};
        for (int j = 0; j < 8; j++) cuda_matmul_input_free(owned[j]);
        cuda_free(ma.lse);
    }
    for (int bf16 = 1; bf16 >= 0; bf16--) {
        cuda_set_matmul_bf16(bf16);
        for (int count = 1; count <= 9; count += 8) { // one matrix, and the baseline's 9 mlp.fc as Muon batches them
            size_t c = (size_t)count;
            NewtonSchulz ns = {device_random(c * D * 2 * D, &rng), cuda_alloc(c * D * D), cuda_alloc(c * D * D),
                               cuda_alloc(c * D * 2 * D), D, 2 * D, count};
            double s = time_op(newton_schulz_step, &ns), flops = count * 5 * (4.0 * D * D * 2 * D + 2.0 * D * D * D);
            char name[64];
            snprintf(name, sizeof name, "Newton-Schulz %d x 512x1024, 5 iterations", count);
            report(name, bf16 ? "bf16" : "fp32", s, flops / s / 1e12, "TFLOP/s");
            float *bufs[] = {ns.X, ns.A, ns.Bm, ns.Xn};
            for (int j = 0; j < 4; j++) cuda_free(bufs[j]);
        }
    }
    cuda_set_matmul_bf16(1);
    int32_t *targets = xmalloc(sizeof(int32_t) * N), *dt = cuda_alloc_i32((size_t)N);
    for (int i = 0; i < N; i++) targets[i] = (int32_t)(rng_u64(&rng) % V);
    cuda_upload(dt, targets, sizeof(int32_t) * N);
    Rows norm = {device_random((size_t)N * D, &rng), cuda_alloc((size_t)N * D), cuda_alloc((size_t)N), cuda_alloc((size_t)N * D),
                 NULL, NULL, N, D, NULL};
    double s = time_op(rmsnorm_step, &norm);
    report("rmsnorm (5 passes over N x 512)", "fp32", s, 5.0 * 4 * N * D / s / 1e9, "GB/s");
    int H = 8, Dh = 64;
    QkPrep qk = {device_random((size_t)N * D, &rng), cuda_alloc((size_t)N * D), cuda_alloc((size_t)N * H), cuda_alloc((size_t)N * D),
                 device_random((size_t)H, &rng), cuda_alloc((size_t)H), device_random((size_t)T * Dh / 2, &rng),
                 device_random((size_t)T * Dh / 2, &rng), N / T, T, H, Dh};
    s = time_op(qk_prep_step, &qk); // fwd: x in, out; bwd: dout and x in, dx out (both read again from cache)
    report("qk_prep q (5 passes over N x 512)", "fp32", s, 5.0 * 4 * N * D / s / 1e9, "GB/s");
    Residual res = {device_random((size_t)N * D, &rng), device_random((size_t)N * D, &rng), device_random((size_t)N * D, &rng),
                    cuda_alloc((size_t)N * D), device_random((size_t)N * D, &rng), cuda_alloc((size_t)N * D),
                    cuda_alloc((size_t)N * D), device_random(2 * (size_t)D, &rng), cuda_alloc(2 * (size_t)D),
                    device_random((size_t)D, &rng), cuda_alloc((size_t)D), device_random((size_t)N * 2 * D, &rng),
                    device_random((size_t)N * 2 * D, &rng), cuda_alloc((size_t)N * 2 * D), device_random((size_t)N, &rng), N, D,
                    2 * D};
    s = time_op(resid_mix_step, &res); // fwd: x, x0 in, xm and n out; bwd: dn, dout, x, x0, dx0 in, dx0, dx out
    report("resid_mix + norm (11 passes over N x 512)", "fp32", s, 11.0 * 4 * N * D / s / 1e9, "GB/s");
    s = time_op(scaled_add_step, &res); // fwd: x, y in, x out; bwd: dout, y in, dy out
    report("scaled_add (6 passes over N x 512)", "fp32", s, 6.0 * 4 * N * D / s / 1e9, "GB/s");
    s = time_op(relu2_step, &res); // fwd: h in, out; bwd: dout, h in, dinp out
    report("leaky relu^2 (5 passes over N x 1024)", "fp32", s, 5.0 * 4 * N * 2 * D / s / 1e9, "GB/s");
    Rows head = {device_random((size_t)N * V, &rng), NULL, NULL, NULL, cuda_alloc((size_t)N), dt, N, V, NULL};
    s = time_op(xent_step, &head); // fwd: z in; bwd: z in, dz out
    report("softcap xent (3 passes over N x 1024)", "fp32", s, 3.0 * 4 * N * V / s / 1e9, "GB/s");
    RoundedInput logits_r = {0};
    cuda_matmul_input_round(&logits_r, head.x, (size_t)N * V);
    logits_r.of = NULL;
    head.xr = &logits_r;
    s = time_op(xent_step, &head);
    report("softcap xent (3 passes over N x 1024)", "bf16", s, 3.0 * 2 * N * V / s / 1e9, "GB/s");
    cuda_matmul_input_free(&logits_r);
    free(targets);
    return 0;
}

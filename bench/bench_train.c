// Training-step benchmark on this CPU: sgemm GFLOP/s, then ms/step and tokens/s for a small shape and
// the baseline shape, with the share of the step spent in matmuls and in attention.
// Prints figures only; compare with `/usr/bin/python3 bench/torch_ref.py` on the same machine.
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "model/gpt.h"
#include "ops/cpu/cpu_internal.h" // gemm: sgemm figures of the CPU backend
#include "ops/ops.h"
#include "optim/optim.h"
#include "optim/qat.h"
#include "util.h"

static void bench_sgemm(int M, int N, int K) {
    real *A = ops_alloc((size_t)M * K), *B = ops_alloc((size_t)N * K), *C = ops_alloc((size_t)M * N);
    for (size_t i = 0; i < (size_t)M * K; i++) A[i] = (real)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)N * K; i++) B[i] = (real)(i % 5) * 0.1f;
    gemm(0, 1, M, N, K, 1, A, K, B, K, 0, C, N);
    int reps = 0;
    double t0 = now_seconds(), dt;
    do {
        gemm(0, 1, M, N, K, 1, A, K, B, K, 0, C, N);
        reps++;
    } while ((dt = now_seconds() - t0) < 1.0);
    printf("sgemm %5dx%5dx%5d: %6.1f GFLOP/s\n", M, N, K, 2.0 * M * N * K * reps / dt / 1e9);
    ops_free(A);
    ops_free(B);
    ops_free(C);
}

typedef struct {
    const char *name;
    int layers, dim, heads, kv_heads, seq, tokens_per_step, steps;
} Shape;

static void apply_rope16(Config *c) { c->rope_dims = 16; } // of head_dim 64
static void apply_ln_scale(Config *c) { c->ln_scale = 1; }
static void apply_leaky(Config *c) { c->negative_slope = 0.5; }
static void apply_xsa_all(Config *c) { c->xsa_last_n = c->num_layers; }
static void apply_smear(Config *c) { c->smear_gate = 1; }
static void set_str(char **field, const char *v) {
    free(*field);
    *field = xstrdup(v);
}
static void apply_ga(Config *c) { c->gated_attention = 1; }
static void apply_ga_elementwise(Config *c) { c->gated_attention = 1, c->gated_attention_elementwise = 1; }
static void apply_ga_qrows(Config *c) { set_str(&c->gated_attn, "headwise"); }
static void apply_vr(Config *c) { c->value_residual = 1; }
static void apply_vr_sigmoid(Config *c) { c->value_residual = 1, set_str(&c->value_residual_form, "sigmoid"); }
static void apply_bigram(Config *c) { c->bigram_vocab_size = 4096, c->bigram_dim = 128; }
static void apply_skip_gates(Config *c) { c->skip_gates_enabled = 1; }
static void apply_ve(Config *c) { c->ve_enabled = 1, set_str(&c->ve_layers, "2,3"); }
static void apply_recur(Config *c) { set_str(&c->recur_layers, "1-2"); } // 6 virtual layers of 4
static void apply_gptj(Config *c) { c->parallel_residual_start = 2; }
static void apply_lanes(Config *c) { c->parallel_start_layer = 2; }
static void apply_muon_eqr_wd(Config *c) { c->muon_row_normalize = 1, c->muon_wd = 0.04, c->adam_wd = 0.04; }
static void apply_qat(Config *c) { c->qat_enabled = 1; }
static void apply_ema(Config *c) { c->ema_enabled = 1; }

// Mean ms per training step (forward, backward, optimizer; with QAT's bracket and the EMA update when
// the config has them, as pgolf train does) of config c over `steps` steps after one warm-up step;
// prof and opt_s (optimizer seconds per step) when not NULL.
static double step_ms(const Config *c, int steps, OpsProfile *prof, double *opt_s, size_t *params) {
    GPTConfig g = gpt_config_from(c);
    GPT m;
    gpt_init(&m, &g);
    gpt_init_weights(&m, 1);
    OptimState os;
    optim_init(&os, &m);
    OptimSettings o = optim_settings(c);
    QatState qat = {0};
    if (c->ema_enabled) ema_enable(&os), ema_start(&os, &m);
    int T = (int)c->train_seq_len, B = (int)(c->train_batch_tokens / T), N = B * T;
    int32_t *x = xmalloc(sizeof(int32_t) * (size_t)(N + 1));
    Rng r;
    rng_seed(&r, 7);
    for (int i = 0; i <= N; i++) x[i] = (int32_t)(rng_u64(&r) % (uint64_t)g.vocab);
    double total = 0, opt = 0;
    for (int step = -1; step < steps; step++) { // step -1 warms caches and allocations
        if (step == 0) ops_profile_start();
        double t0 = now_seconds();
        gpt_zero_grad(&m);
        if (c->qat_enabled) qat_begin(&qat, &m);
        gpt_forward(&m, x, x + 1, B, T);
        gpt_backward(&m, x, 1);
        if (c->qat_enabled) qat_end(&qat, &m);
        double t1 = now_seconds();
        optim_step(&os, &m, &o, 1.0);
        if (c->ema_enabled) ema_update(&os, &m, c->ema_decay);
        if (step >= 0) total += now_seconds() - t0, opt += now_seconds() - t1;
    }
    OpsProfile p = ops_profile_stop();
    if (prof) *prof = p;
    if (opt_s) *opt_s = opt / steps;
    if (params) *params = m.n_params;
    optim_free(&os);
    qat_free(&qat);
    gpt_free(&m);
    free(x);
    return 1000 * total / steps;
}

static Config shape_config(const Shape *s) {
    Config c;
    config_defaults(&c);
    c.num_layers = s->layers, c.model_dim = s->dim, c.num_heads = s->heads, c.num_kv_heads = s->kv_heads;
    c.train_seq_len = s->seq, c.train_batch_tokens = s->tokens_per_step, c.grad_accum_steps = 1;
    return c;
}

static void bench_shape(const Shape *s) {
    Config c = shape_config(s);
    OpsProfile prof;
    double opt_s;
    size_t params;
    double ms = step_ms(&c, s->steps, &prof, &opt_s, &params), total = ms / 1000 * s->steps;
    printf("pgolf shape=%s layers=%d dim=%d heads=%d/%d seq=%d tokens_per_step=%d params=%zu threads=%d\n", s->name,
           s->layers, s->dim, s->heads, s->kv_heads, s->seq, s->tokens_per_step, params, omp_get_max_threads());
    printf("  ms_per_step=%.1f tokens_per_s=%.0f\n", ms, s->tokens_per_step / (ms / 1000));
    printf("  share of step: matmul %.1f%% (linear layers and Muon, at %.1f GFLOP/s), attention %.1f%% (blocked sgemm + softmax), "
           "rest %.1f%%; the optimizer step is %.1f%% of the step\n",
           100 * prof.gemm_seconds / total, prof.gemm_flops / prof.gemm_seconds / 1e9, 100 * prof.attention_seconds / total,
           100 * (total - prof.gemm_seconds - prof.attention_seconds) / total, 100 * opt_s * 1000 / ms);
}

// Issue 3's table: each technique switched on alone on the small shape, ms/step against the baseline.
static void bench_techniques(const Shape *s) {
    struct {
        const char *name;
        void (*apply)(Config *c);
    } const techniques[] = {
        {"baseline", NULL},
        {"partial RoPE 16/64", apply_rope16},
        {"LN scale", apply_ln_scale},
        {"LeakyReLU(0.5)^2", apply_leaky},
        {"XSA all layers", apply_xsa_all},
        {"SmearGate", apply_smear},
        {"gated attn (headwise)", apply_ga},
        {"gated attn (elementw.)", apply_ga_elementwise},
        {"gate rows in c_q", apply_ga_qrows},
        {"value residual scalar", apply_vr},
        {"value residual sigmoid", apply_vr_sigmoid},
        {"BigramHash 4096x128", apply_bigram},
        {"skip gates", apply_skip_gates},
        {"value embedding @2,3", apply_ve},
        {"recurrence 1-2 (6 of 4)", apply_recur},
        {"GPT-J parallel from 2", apply_gptj},
        {"two lanes from 2", apply_lanes},
        {"MuonEq-R + WD", apply_muon_eqr_wd},
        {"QAT (int6 fake quant)", apply_qat},
        {"EMA", apply_ema},
    };
    Config base = shape_config(s);
    double base_ms = step_ms(&base, s->steps, NULL, NULL, NULL);
    printf("technique cost, shape=%s (ms/step, on vs off):\n", s->name);
    for (size_t i = 0; i < sizeof techniques / sizeof *techniques; i++) {
        Config c = shape_config(s);
        if (techniques[i].apply) techniques[i].apply(&c);
        double ms = techniques[i].apply ? step_ms(&c, s->steps, NULL, NULL, NULL) : base_ms;
        printf("  %-24s %9.1f ms  %+6.1f%%\n", techniques[i].name, ms, 100 * (ms / base_ms - 1));
    }
    double again = step_ms(&base, s->steps, NULL, NULL, NULL); // shows how much the machine drifted meanwhile
    printf("  %-24s %9.1f ms  %+6.1f%%\n", "baseline (again)", again, 100 * (again / base_ms - 1));
}

// `bench_train techniques` prints only the per-technique table.
int main(int argc, char **argv) {
    Shape small = {"small", 4, 256, 4, 2, 256, 8192, 5};
    if (argc > 1 && !strcmp(argv[1], "techniques")) {
        bench_techniques(&small);
        return 0;
    }
    bench_sgemm(8192, 512, 512);
    bench_sgemm(8192, 1024, 512);
    bench_sgemm(1024, 1024, 1024);
    Shape baseline = {"baseline", 9, 512, 8, 4, 1024, 8192, 3};
    bench_shape(&small);
    bench_shape(&baseline);
    bench_techniques(&small);
    return 0;
}

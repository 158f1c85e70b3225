// Evaluation methods: the sliding-window plan (every position once, with the longest context), its
// equivalence with eval_val at stride == window, PPM-C against a hand computation, and score-first TTT
// never training on a position before it was scored.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval_final.h"
#include "eval/eval_windows.h"
#include "eval/ppm.h"
#include "eval/stats.h"
#include "eval/ttt.h"
#include "test.h"
#include "util.h"

TEST(eval_window_plan_scores_every_position_once) {
    const int64_t cases[][4] = {{1000, 64, 64, 0}, {1000, 64, 16, 0}, {999, 64, 7, 0}, {37, 64, 16, 0}, {1001, 50, 50, 0},
                                {777, 33, 5, 100}, {500, 64, 1, 63}, {64, 64, 64, 0}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        int64_t total = cases[k][0], W = cases[k][1], S = cases[k][2], a = cases[k][3];
        int *seen = xcalloc((size_t)total, sizeof(int));
        Window *w;
        int64_t nw = window_plan(a, total, W, S, &w), bad_ctx = 0, bad_len = 0;
        for (int64_t i = 0; i < nw; i++) {
            bad_len += w[i].len > W || w[i].start < 0 || w[i].start + w[i].len > total;
            for (int64_t p = w[i].start + w[i].score_from; p < w[i].start + w[i].len; p++) {
                seen[p]++;
                int64_t ctx = p - w[i].start, best = p < W - S ? p : W - S; // tokens before val[p] in the window
                bad_ctx += ctx < best;
            }
        }
        int64_t once = 0, other = 0;
        for (int64_t p = 0; p < total; p++) {
            if (p < a) other += seen[p] != 0;
            else once += seen[p] == 1, other += seen[p] != 1;
        }
        CHECK(once == total - a && other == 0 && bad_ctx == 0 && bad_len == 0,
              "total %lld window %lld stride %lld from %lld: %lld once, %lld wrong, %lld short contexts, %lld bad windows",
              (long long)total, (long long)W, (long long)S, (long long)a, (long long)once, (long long)other, (long long)bad_ctx,
              (long long)bad_len);
        free(w);
        free(seen);
    }
}

static void tiny_model(GPT *m, Config *c) {
    config_defaults(c);
    c->vocab_size = 64, c->num_layers = 2, c->model_dim = 32, c->num_heads = 4, c->num_kv_heads = 2, c->train_seq_len = 16;
    c->val_batch_size = 64, c->grad_accum_steps = 1;
    GPTConfig g = gpt_config_from(c);
    gpt_init(m, &g);
    gpt_init_weights(m, 5);
    Rng r;
    rng_seed(&r, 6);
    for (size_t i = 0; i < m->n_params; i++) m->params[i] += (real)(0.05 * rng_normal(&r));
}

static uint16_t *tiny_val(int64_t n) {
    uint16_t *v = xmalloc(sizeof(uint16_t) * (size_t)n);
    Rng r;
    rng_seed(&r, 7);
    for (int64_t i = 0; i < n; i++) v[i] = (uint16_t)(i % 3 == 0 ? 1 : 2 + rng_u64(&r) % 62);
    return v;
}

static ByteTables unit_bytes(void) {
    ByteTables bt = {64, xcalloc(64, 2), xcalloc(64, 1), xcalloc(64, 1)};
    for (int i = 0; i < 64; i++) bt.base_bytes[i] = (int16_t)(1 + i % 3), bt.has_leading_space[i] = i % 2;
    bt.is_boundary[1] = 1;
    return bt;
}

// gpt_forward_scored (sliding windows' forwards): the losses of gpt_forward at positions >= score_from,
// in fp32 and bf16 mode, and no backward after it.
static void backward_after_scored(void *arg) { // (a forked child: no OpenMP before the check)
    GPT *m = arg;
    int32_t x[16] = {0};
    gpt_backward(m, x, 1);
}
TEST(eval_scored_and_hidden_forwards_are_the_forward_at_their_rows) {
    enum { B = 3, T = 16, FROM = 11, S = T - FROM };
    int32_t x[B * T], y[B * T];
    Rng r;
    rng_seed(&r, 12);
    for (int i = 0; i < B * T; i++) x[i] = (int32_t)(rng_u64(&r) % 64), y[i] = (int32_t)(rng_u64(&r) % 64);
    for (int bf16 = 0; bf16 < 2; bf16++) {
        ops_set_matmul_bf16(bf16);
        GPT m;
        Config c;
        tiny_model(&m, &c);
        real full[B * T];
        gpt_forward(&m, x, y, B, T);
        memcpy(full, gpt_token_losses(&m), sizeof full);
        double mean = gpt_forward_scored(&m, x, y, B, T, FROM), worst = 0, sum = 0;
        const real *scored = gpt_token_losses(&m);
        for (int b = 0; b < B; b++)
            for (int t = FROM; t < T; t++) {
                worst = worse_of(worst, fabs(scored[b * S + t - FROM] - full[b * T + t]));
                sum += full[b * T + t];
            }
        CHECK(worst < 1e-5 && fabs(mean - sum / (B * S)) < 1e-5, "bf16 %d: scored losses off by %.3g, mean %.6f vs %.6f",
              bf16, worst, mean, sum / (B * S));
        CHECK(m.acts.score_from == FROM &&
                  test_dies_with(backward_after_scored, &m, "gpt_backward after a forward that scored"),
              "a backward after a scored forward should die");
        // Without targets: the logits of a scored row are the full forward's at its position (sampling reads
        // the last one), and gpt_forward_hidden's final-norm output (calibration reads it) is the full one.
        int D = m.cfg.dim, V = m.cfg.vocab;
        real *nf_full = xmalloc(sizeof(real) * B * T * D), *nf = xmalloc(sizeof(real) * B * T * D);
        real *z_full = xmalloc(sizeof(real) * V), *z = xmalloc(sizeof(real) * V);
        gpt_forward(&m, x, NULL, B, T);
        ops_to_host(nf_full, m.acts.nf, (size_t)B * T * D);
        gpt_logits_row(&m, 2 * T + T - 1, z_full);
        gpt_forward_scored(&m, x, NULL, B, T, FROM);
        gpt_logits_row(&m, 2 * S + S - 1, z);
        worst = 0;
        for (int v = 0; v < V; v++) worst = worse_of(worst, fabs(z[v] - z_full[v]));
        gpt_forward_hidden(&m, x, B, T);
        ops_to_host(nf, m.acts.nf, (size_t)B * T * D);
        CHECK(worst < 1e-5 && !memcmp(nf, nf_full, sizeof(real) * B * T * D) && m.acts.score_from == T,
              "bf16 %d: scored logits off by %.3g, or the hidden forward's final norm differs", bf16, worst);
        free(nf_full);
        free(nf);
        free(z_full);
        free(z);
        gpt_free(&m);
    }
    ops_set_matmul_bf16(0);
}

// Sliding windows with stride == window are the plain evaluation; a smaller stride scores the same
// positions with more context (a different, finite result).
TEST(eval_sliding_stride_equal_window_is_plain) {
    GPT m;
    Config c;
    tiny_model(&m, &c);
    int64_t n = 16 * 20 + 1;
    uint16_t *val = tiny_val(n);
    ByteTables bt = unit_bytes();
    double plain_loss, plain_bpb;
    eval_val(&m, &c, val, n, &bt, 64, &plain_loss, &plain_bpb);
    EvalReport r;
    c.eval_stride = 16, c.ppm_order = 1, c.ppm_alpha = 1.0; // goes through the windows; alpha 1 leaves the model alone
    eval_final(&m, &c, val, n, &bt, 64, &r);
    CHECK_CLOSE(r.val_loss, plain_loss, 1e-9, 1e-6, "windows at stride == window vs eval_val (loss)");
    CHECK_CLOSE(r.val_bpb, plain_bpb, 1e-9, 1e-6, "windows at stride == window vs eval_val (bpb)");
    CHECK_CLOSE(r.ppm_val_bpb, plain_bpb, 1e-9, 1e-6, "alpha = 1 mixing");
    c.eval_stride = 5;
    eval_final(&m, &c, val, n, &bt, 64, &r);
    CHECK(isfinite(r.val_bpb) && r.val_bpb != plain_bpb, "stride 5: %g", r.val_bpb);
    free(val);
    byte_tables_free(&bt);
    gpt_free(&m);
}

// After "0 1 0" (order 1, vocab 4): P(.|0) = {1/3, 1/2, 1/12, 1/12} by method C with exclusion.
TEST(eval_ppm_c_hand_example) {
    Ppm *p = ppm_new(1, 4);
    uint16_t seq[] = {0, 1, 0};
    for (int i = 0; i < 3; i++) ppm_update(p, seq, i, seq[i]);
    uint16_t ctx[] = {0};
    double want[4] = {1.0 / 3, 0.5, 1.0 / 12, 1.0 / 12}, dist[4];
    ppm_distribution(p, ctx, 1, dist);
    for (int s = 0; s < 4; s++) {
        CHECK_CLOSE(ppm_prob(p, ctx, 1, s), want[s], 1e-15, 0, "ppm_prob");
        CHECK_CLOSE(dist[s], want[s], 1e-15, 0, "ppm_distribution");
    }
    ppm_free(p);
}

TEST(eval_ppm_distributions_sum_to_one) {
    for (int order = 0; order <= 3; order++) {
        Ppm *p = ppm_new(order, 50);
        uint16_t *seq = tiny_val(3000);
        for (int64_t i = 0; i < 3000; i++) seq[i] %= 50;
        double worst = 0, *dist = xmalloc(sizeof(double) * 50);
        for (int64_t i = 0; i < 3000; i++) {
            if (i % 97 == 0) {
                ppm_distribution(p, seq, i, dist);
                double sum = 0;
                for (int s = 0; s < 50; s++) {
                    sum += dist[s];
                    worst = worse_of(worst, fabs(dist[s] - ppm_prob(p, seq, i, s)));
                }
                worst = worse_of(worst, fabs(sum - 1));
            }
            ppm_update(p, seq, i, seq[i]);
        }
        CHECK(worst < 1e-12, "order %d: off by %g", order, worst);
        free(dist);
        free(seq);
        ppm_free(p);
    }
}

typedef struct {
    int64_t scored_to, trained_steps, violations, first_chunk_end;
} TttLog;

static void watch(int kind, int64_t a, int64_t b, void *ctx) {
    TttLog *l = ctx;
    if (kind == 0) {
        l->violations += a != l->scored_to; // chunks are scored in order, each exactly once
        l->scored_to = b;
        if (!l->first_chunk_end) l->first_chunk_end = b;
    } else {
        l->trained_steps++;
        l->violations += b > l->scored_to; // a training target not yet scored
    }
}

// The instrumented run: every training step uses only positions already scored. With 0 epochs TTT is
// the plain sliding evaluation; with training, later chunks are scored by adapted weights.
TEST(eval_ttt_scores_before_training) {
    GPT m;
    Config c;
    tiny_model(&m, &c);
    int64_t n = 16 * 40 + 1;
    uint16_t *val = tiny_val(n);
    double *nll0 = xmalloc(sizeof(double) * (size_t)n), *nll1 = xmalloc(sizeof(double) * (size_t)n);
    TttOptions none = {.chunk_tokens = 100, .epochs = 0, .lr = 0.005, .momentum = 0.9, .grad_clip = 1.0, .seq_len = 16};
    TttOptions train = none;
    train.epochs = 3, train.lr = 0.05;
    TttLog log0_ = {0}, log1 = {0};
    real *w0 = xmalloc(sizeof(real) * m.n_params);
    memcpy(w0, m.params, sizeof(real) * m.n_params);
    ttt_score_first(&m, val, n, 16, 8, 64, &none, nll0, watch, &log0_);
    ttt_score_first(&m, val, n, 16, 8, 64, &train, nll1, watch, &log1);
    CHECK(log0_.violations == 0 && log0_.trained_steps == 0 && log0_.scored_to == n - 1, "no-epoch run: %lld violations",
          (long long)log0_.violations);
    CHECK(log1.violations == 0 && log1.trained_steps > 0 && log1.scored_to == n - 1, "%lld violations in %lld steps",
          (long long)log1.violations, (long long)log1.trained_steps);
    Window *w;
    int64_t nw = window_plan(0, n - 1, 16, 8, &w);
    double *plain = xmalloc(sizeof(double) * (size_t)n);
    memcpy(m.params, w0, sizeof(real) * m.n_params);
    score_windows(&m, val, w, nw, 64, plain);
    int same_first = 1, differ_later = 0, equal_all = 1;
    for (int64_t p = 0; p < n - 1; p++) {
        equal_all &= fabs(nll0[p] - plain[p]) < 1e-6;
        if (p < log1.first_chunk_end) same_first &= fabs(nll1[p] - plain[p]) < 1e-6; // scored before any training
        else differ_later |= fabs(nll1[p] - plain[p]) > 1e-6;
    }
    CHECK(equal_all && same_first && differ_later, "0 epochs = plain %d, first chunk untouched %d, later chunks adapted %d",
          equal_all, same_first, differ_later);
    free(w);
    free(plain);
    free(w0);
    free(nll0);
    free(nll1);
    free(val);
    gpt_free(&m);
}

// Passes (MAX_PASS_TOKENS): a batch run as equal passes of whole sequences gives the batch's loss and
// gradient (training, TTT) and the same evaluation; the pass planning takes the largest divisor that fits.
TEST(eval_passes_give_the_batch_results) {
    const int plans[][4] = {{12, 16, 80, 4}, {12, 16, 16, 1}, {12, 16, 8, 1}, {7, 16, 96, 1}, {12, 16, 0, 12}, {12, 16, 999, 12}};
    for (size_t k = 0; k < sizeof plans / sizeof *plans; k++)
        CHECK(gpt_pass_seqs(plans[k][0], plans[k][1], plans[k][2]) == plans[k][3], "%d sequences of %d in %d tokens: %d, not %d",
              plans[k][0], plans[k][1], plans[k][2], gpt_pass_seqs(plans[k][0], plans[k][1], plans[k][2]), plans[k][3]);
    GPT m;
    Config c;
    tiny_model(&m, &c);
    int64_t train_cap = gpt_pass_token_cap(&m.cfg, 0, PASS_TRAIN), forward_cap = gpt_pass_token_cap(&m.cfg, 0, PASS_FORWARD);
    CHECK(gpt_pass_token_cap(&m.cfg, 77, PASS_TRAIN) == 77 && gpt_pass_token_cap(&m.cfg, 77, PASS_FORWARD) == 77 &&
              forward_cap > 1000 && forward_cap <= train_cap,
          "pass caps: 77 given, automatic %lld for training, %lld forward only", (long long)train_cap, (long long)forward_cap);
    // the CPU's budgets: a quarter of the RAM for training passes, at most 1 GiB for a forward
    size_t quarter = ops_activation_budget(PASS_TRAIN), forward = ops_activation_budget(PASS_FORWARD);
    CHECK(forward == (quarter < ((size_t)1 << 30) ? quarter : (size_t)1 << 30), "forward budget %zu, training %zu", forward,
          quarter);
    size_t b1 = gpt_activation_bytes(&m.cfg, 1024), b2 = gpt_activation_bytes(&m.cfg, 2048);
    CHECK(b1 > 1024 * 4 * 32 * 10 && b2 > 2 * b1 - 4096 && b2 < 2 * b1 + 4096, "activation bytes %zu, %zu", b1, b2);

    enum { B = 4, T = 16, N = B * T };
    int64_t n = 16 * 20 + 1;
    uint16_t *val = tiny_val(n);
    int32_t x[N], y[N];
    for (int i = 0; i < N; i++) x[i] = val[i], y[i] = val[i + 1];
    real *whole = xmalloc(sizeof(real) * m.n_params);
    gpt_zero_grad(&m);
    double loss = gpt_train_batch(&m, x, y, B, T, B, 0.5f);
    memcpy(whole, m.grads, sizeof(real) * m.n_params);
    for (int per = 1; per < B; per *= 2) {
        gpt_zero_grad(&m);
        double l = gpt_train_batch(&m, x, y, B, T, per, 0.5f);
        double worst = 0, big = 0;
        for (size_t i = 0; i < m.n_params; i++)
            worst = worse_of(worst, fabs(m.grads[i] - whole[i])), big = fmax(big, fabs(whole[i]));
        CHECK(fabs(l - loss) < 1e-6 && worst < 1e-5 * big, "passes of %d: loss %.8f vs %.8f, gradients off by %.3g of %.3g", per,
              l, loss, worst, big);
    }
    // evaluation and TTT on a fresh copy of the model, in passes of one sequence: its activations
    // never held more than one sequence
    ByteTables bt = unit_bytes();
    GPT q;
    Config cq;
    tiny_model(&q, &cq);
    cq.max_pass_tokens = 16;
    double l0, b0, l1, b1_;
    eval_val(&m, &c, val, n, &bt, 64, &l0, &b0);
    eval_val(&q, &cq, val, n, &bt, 64, &l1, &b1_);
    CHECK(q.acts_tokens == 16, "eval_val held %zu tokens in a pass", q.acts_tokens);
    CHECK_CLOSE(l1, l0, 1e-12, 1e-9, "eval_val in passes of one sequence (loss)");
    CHECK_CLOSE(b1_, b0, 1e-12, 1e-9, "eval_val in passes of one sequence (bpb)");
    double *nll0 = xmalloc(sizeof(double) * (size_t)n), *nll1 = xmalloc(sizeof(double) * (size_t)n);
    TttOptions o = {.chunk_tokens = 100, .epochs = 2, .lr = 0.05, .momentum = 0.9, .seq_len = 16};
    ttt_score_first(&m, val, n, 16, 16, 64, &o, nll0, NULL, NULL);
    o.pass_tokens = o.score_pass_tokens = 16;
    ttt_score_first(&q, val, n, 16, 16, 64, &o, nll1, NULL, NULL);
    CHECK(q.acts_tokens == 16, "TTT held %zu tokens in a pass", q.acts_tokens);
    double worst = 0;
    for (int64_t p = 0; p < n - 1; p++) worst = worse_of(worst, fabs(nll1[p] - nll0[p]));
    CHECK(worst < 1e-4, "TTT with its batches in passes of one sequence: scores off by %.3g", worst);
    free(nll0), free(nll1), free(whole), free(val);
    byte_tables_free(&bt);
    gpt_free(&q);
    gpt_free(&m);
}

// Student-t tails against numerical integration of the density (tests' reference values), and a
// Welch test worked by hand.
TEST(eval_stats_student_t_and_welch) {
    const double cases[][3] = {{2.0, 10, 0.03669401738537047}, {1.0, 5, 0.1816087338245635}, {3.0, 4, 0.019970984035859583},
                               {0.5, 2.7, 0.32747353099788545}, {-1.2, 7.3, 0.8661846667241774}, {0, 3, 0.5}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++)
        CHECK_CLOSE(student_t_sf(cases[k][0], cases[k][1]), cases[k][2], 1e-9, 1e-7, "student_t_sf");
    // control {2.0, 2.1, 1.9}, variant {1.8, 1.85, 1.75}: means 2.0 / 1.8, sds 0.1 / 0.05, margin 0.005
    double c[] = {2.0, 2.1, 1.9}, v[] = {1.8, 1.85, 1.75}, t, df;
    double p = welch_one_sided_p(sample_of(c, 3), sample_of(v, 3), 0.005, &t, &df);
    double se = sqrt(0.01 / 3 + 0.0025 / 3), want_t = 0.195 / se;
    double want_df = pow(0.0125 / 3, 2) / (pow(0.01 / 3, 2) / 2 + pow(0.0025 / 3, 2) / 2);
    CHECK_CLOSE(t, want_t, 1e-12, 1e-9, "welch t");
    CHECK_CLOSE(df, want_df, 1e-12, 1e-9, "welch df");
    CHECK_CLOSE(p, student_t_sf(want_t, want_df), 1e-15, 1e-12, "welch p");
}

// TTT_PARAMS adapts only the named tensors; Adam is a choice of optimizer; an unmatched name is an error.
static void no_such_params(void *arg) {
    GPT *m = arg;
    TttOptions o = {.chunk_tokens = 100, .epochs = 1, .lr = 0.01, .seq_len = 16, .params = "no_such_tensor"};
    double nll[700];
    uint16_t *val = tiny_val(641);
    ttt_score_first(m, val, 641, 16, 16, 64, &o, nll, NULL, NULL);
}

TEST(eval_ttt_params_and_adam) {
    GPT m;
    Config c;
    tiny_model(&m, &c);
    int64_t n = 16 * 40 + 1;
    uint16_t *val = tiny_val(n);
    double *nll = xmalloc(sizeof(double) * (size_t)n);
    real *w0 = xmalloc(sizeof(real) * m.n_params);
    memcpy(w0, m.params, sizeof(real) * m.n_params);
    TttOptions o = {.chunk_tokens = 100, .epochs = 2, .lr = 0.01, .grad_clip = 1.0, .seq_len = 16, .params = "mlp.fc", .adam = 1};
    ttt_score_first(&m, val, n, 16, 16, 64, &o, nll, NULL, NULL);
    int moved_fc = 0, moved_other = 0;
    for (int k = 0; k < m.param_list.count; k++) {
        const TensorView *t = &m.param_list.items[k];
        int moved = memcmp(t->data, w0 + (t->data - m.params), sizeof(real) * (size_t)tensor_numel(t)) != 0;
        if (strstr(t->name, "mlp.fc")) moved_fc += moved;
        else moved_other += moved;
    }
    CHECK(moved_fc == 2 && moved_other == 0, "adapted %d mlp.fc tensors and %d others", moved_fc, moved_other);
    CHECK(test_dies_with(no_such_params, &m, "TTT_PARAMS=no_such_tensor matches no tensor"), "unmatched TTT_PARAMS");
    free(w0);
    free(nll);
    free(val);
    gpt_free(&m);
}

// TTT_LR_SCHEDULE=cosine (#2005): with three chunks the first trains at lr, the second at lr/2 and the
// last not at all, so against the constant schedule the scores of the first two chunks are equal
// and those of the third differ.
TEST(eval_ttt_cosine_schedule) {
    GPT m;
    Config c;
    tiny_model(&m, &c);
    int64_t n = 16 * 40 + 1;
    uint16_t *val = tiny_val(n);
    double *a = xmalloc(sizeof(double) * (size_t)n), *b = xmalloc(sizeof(double) * (size_t)n);
    real *w0 = xmalloc(sizeof(real) * m.n_params);
    memcpy(w0, m.params, sizeof(real) * m.n_params);
    TttOptions o = {.chunk_tokens = 240, .epochs = 2, .lr = 0.05, .momentum = 0.9, .grad_clip = 1.0, .seq_len = 16};
    TttLog log = {0};
    ttt_score_first(&m, val, n, 16, 16, 64, &o, a, watch, &log);
    memcpy(m.params, w0, sizeof(real) * m.n_params);
    o.cosine = 1;
    ttt_score_first(&m, val, n, 16, 16, 64, &o, b, NULL, NULL);
    int64_t second_end = 2 * log.first_chunk_end; // whole windows under 240 positions: 0-224, 224-448, 448-640
    int same = 1, differ = 0;
    for (int64_t p = 0; p < n - 1; p++) {
        if (p < second_end) same &= a[p] == b[p];
        else differ |= a[p] != b[p];
    }
    CHECK(log.first_chunk_end == 224 && same && differ, "first chunk ends at %lld; chunks 1-2 equal %d, chunk 3 differs %d",
          (long long)log.first_chunk_end, same, differ);
    free(w0);
    free(a);
    free(b);
    free(val);
    gpt_free(&m);
}

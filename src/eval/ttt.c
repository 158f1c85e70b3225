#include "eval/ttt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval_windows.h"
#include "ops/ops.h"
#include "optim/optim.h"
#include "util.h"

typedef struct {
    uint8_t *adapt;  // per tensor of param_list: 1 where it is adapted
    real *m1, *m2;   // SGD momentum buffer / Adam moments (backend memory, laid out like the parameters)
    int64_t steps;
} TttState;

static int selected(const char *name, const char *params) {
    if (!params || !params[0]) return 1;
    char *copy = xstrdup(params);
    int hit = 0;
    for (char *tok = strtok(copy, ","); tok && !hit; tok = strtok(NULL, ",")) hit = strstr(name, tok) != NULL;
    free(copy);
    return hit;
}

static TttState ttt_state(const GPT *m, const TttOptions *o) {
    TttState st = {xcalloc((size_t)m->param_list.count, 1), ops_alloc(m->n_params), ops_alloc(m->n_params), 0};
    int any = 0;
    for (int k = 0; k < m->param_list.count; k++) any |= st.adapt[k] = (uint8_t)selected(m->param_list.items[k].name, o->params);
    if (!any) die("TTT_PARAMS=%s matches no tensor of the model", o->params);
    return st;
}

static void ttt_state_free(TttState *st) {
    free(st->adapt);
    ops_free(st->m1);
    ops_free(st->m2);
}

// One step on the adapted tensors: torch.optim.SGD (buf = momentum * buf + g; w -= lr * buf) or Adam
// (betas 0.9, 0.999, eps 1e-8).
static void ttt_step(GPT *m, TttState *st, const TttOptions *o) {
    if (o->grad_clip > 0) clip_grad_norm(m, o->grad_clip);
    st->steps++;
    double bc1 = 1 - pow(0.9, (double)st->steps), bc2 = 1 - pow(0.999, (double)st->steps);
    for (int k = 0; k < m->param_list.count; k++) {
        if (!st->adapt[k]) continue;
        const TensorView *t = &m->param_list.items[k];
        size_t off = (size_t)(t->data - m->params), n = (size_t)tensor_numel(t);
        if (o->adam)
            adam_step(t->data, m->grads + off, st->m1 + off, st->m2 + off, n, 0.9f, 0.999f, 1e-8f, (real)(o->lr / bc1),
                      (real)sqrt(bc2));
        else
            sgd_momentum_step(t->data, m->grads + off, st->m1 + off, n, (real)o->momentum, (real)o->lr);
    }
}

// A pass cap (0: none) within a batch of max_tokens.
static int64_t within(int64_t cap, int64_t max_tokens) { return cap > 0 && cap < max_tokens ? cap : max_tokens; }

// Epochs over the chunk's whole sequences: targets lie in [c0, c1), all already scored. Each step's batch
// holds max_tokens, run in passes of at most pass_cap.
static void adapt(GPT *m, const uint16_t *val, int64_t c0, int64_t c1, int64_t max_tokens, int64_t pass_cap,
                  const TttOptions *o, TttState *st, TttObserver observe, void *ctx) {
    int64_t T = o->seq_len, n_seq = (c1 - c0) / T, per = max_tokens / T > 0 ? max_tokens / T : 1;
    int32_t *x = xmalloc(sizeof(int32_t) * (size_t)(per * T)), *y = xmalloc(sizeof(int32_t) * (size_t)(per * T));
    for (int e = 0; e < o->epochs; e++)
        for (int64_t s0 = 0; s0 < n_seq; s0 += per) {
            int64_t B = n_seq - s0 < per ? n_seq - s0 : per;
            for (int64_t i = 0; i < B * T; i++) {
                x[i] = val[c0 + s0 * T + i];
                y[i] = val[c0 + s0 * T + i + 1];
            }
            if (observe) observe(1, c0 + s0 * T, c0 + (s0 + B) * T, ctx);
            gpt_zero_grad(m);
            gpt_train_batch(m, x, y, (int)B, (int)T, gpt_pass_seqs((int)B, (int)T, pass_cap), 1.0f);
            ttt_step(m, st, o);
        }
    free(x);
    free(y);
}

// The windows [i0, return) of one chunk: whole windows until the chunk would pass chunk_tokens
// positions; at least one window; the last chunk takes the rest.
static int64_t chunk_end(const Window *w, int64_t nw, int64_t i0, int64_t chunk_tokens) {
    int64_t c0 = w[i0].start + w[i0].score_from, i1 = i0;
    while (i1 < nw && w[i1].start + w[i1].len - c0 < chunk_tokens) i1++;
    if (i1 == i0 || i1 == nw) i1 = i1 < nw ? i1 + 1 : nw;
    return i1;
}

void ttt_score_first(GPT *m, const uint16_t *val, int64_t n, int64_t window, int64_t stride, int64_t max_tokens,
                     const TttOptions *o, double *nll, TttObserver observe, void *ctx) {
    if (o->chunk_tokens < 1 || o->epochs < 0 || o->seq_len < 1) die("TTT needs TTT_CHUNK_TOKENS >= 1, TTT_EPOCHS >= 0");
    // The windows of the plain sliding evaluation, cut into chunks at window boundaries: with no
    // training this is exactly that evaluation.
    Window *w;
    int64_t nw = window_plan(0, n - 1, window, stride, &w), total = n - 1, n_chunks = 0;
    for (int64_t i0 = 0; i0 < nw; n_chunks++) i0 = chunk_end(w, nw, i0, o->chunk_tokens);
    TttState st = ttt_state(m, o);
    int64_t pass_cap = within(o->pass_tokens, max_tokens), score_cap = within(o->score_pass_tokens, max_tokens);
    for (int64_t i0 = 0, chunk = 0; i0 < nw; chunk++) {
        int64_t c0 = w[i0].start + w[i0].score_from, i1 = chunk_end(w, nw, i0, o->chunk_tokens);
        int64_t c1 = w[i1 - 1].start + w[i1 - 1].len;
        score_windows(m, val, w + i0, i1 - i0, score_cap, nll); // first: the score of every position in the chunk
        if (observe) observe(0, c0, c1, ctx);
        TttOptions oc = *o; // #2005's cosine: lr * 0.5 (1 + cos(pi chunk / (chunks - 1)))
        if (o->cosine && n_chunks > 1) oc.lr = o->lr * 0.5 * (1 + cos(M_PI * (double)chunk / (double)(n_chunks - 1)));
        if (c1 < total) adapt(m, val, c0, c1, max_tokens, pass_cap, &oc, &st, observe, ctx); // then: learn from it
        progress("ttt: positions", c1, total);
        i0 = i1;
    }
    ttt_state_free(&st);
    free(w);
}

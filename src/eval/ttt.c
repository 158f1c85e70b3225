#include "eval/ttt.h"

#include <stdlib.h>
#include <string.h>

#include "eval/eval_windows.h"
#include "optim/optim.h"
#include "util.h"

// One SGD step (torch.optim.SGD: buf = momentum * buf + g; w -= lr * buf) on every parameter.
static void sgd_step(GPT *m, real *buf, const TttOptions *o) {
    if (o->grad_clip > 0) clip_grad_norm(m, o->grad_clip);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < m->n_params; i++) {
        buf[i] = (real)o->momentum * buf[i] + m->grads[i];
        m->params[i] -= (real)o->lr * buf[i];
    }
}

// Epochs over the chunk's whole sequences: targets lie in [c0, c1), all already scored.
static void adapt(GPT *m, const uint16_t *val, int64_t c0, int64_t c1, int64_t max_tokens, const TttOptions *o, real *buf,
                  TttObserver observe, void *ctx) {
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
            gpt_forward(m, x, y, (int)B, (int)T);
            gpt_backward(m, x, 1.0f);
            sgd_step(m, buf, o);
        }
    free(x);
    free(y);
}

void ttt_score_first(GPT *m, const uint16_t *val, int64_t n, int64_t window, int64_t stride, int64_t max_tokens,
                     const TttOptions *o, double *nll, TttObserver observe, void *ctx) {
    if (o->chunk_tokens < 1 || o->epochs < 0 || o->seq_len < 1) die("TTT needs TTT_CHUNK_TOKENS >= 1, TTT_EPOCHS >= 0");
    // The windows of the plain sliding evaluation, cut into chunks at window boundaries: with no
    // training this is exactly that evaluation.
    Window *w;
    int64_t nw = window_plan(0, n - 1, window, stride, &w), chunks = 0, total = n - 1;
    real *buf = xcalloc(m->n_params, sizeof(real));
    for (int64_t i0 = 0; i0 < nw; chunks++) {
        int64_t c0 = w[i0].start + w[i0].score_from, i1 = i0;
        while (i1 < nw && w[i1].start + w[i1].len - c0 < o->chunk_tokens) i1++;
        if (i1 == i0 || i1 == nw) i1 = i1 < nw ? i1 + 1 : nw; // at least one window; the last chunk takes the rest
        int64_t c1 = w[i1 - 1].start + w[i1 - 1].len;
        score_windows(m, val, w + i0, i1 - i0, max_tokens, nll); // first: the score of every position in the chunk
        if (observe) observe(0, c0, c1, ctx);
        if (c1 < total) adapt(m, val, c0, c1, max_tokens, o, buf, observe, ctx); // then: learn from it
        progress("ttt: positions", c1, total);
        i0 = i1;
    }
    free(buf);
    free(w);
}

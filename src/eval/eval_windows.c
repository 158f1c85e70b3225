#include "eval/eval_windows.h"

#include <math.h>
#include <stdlib.h>

#include "util.h"

int64_t window_plan(int64_t a, int64_t b, int64_t window, int64_t stride, Window **out) {
    if (window < 1 || stride < 1 || stride > window) die("sliding window %lld with stride %lld: need 1 <= stride <= window", (long long)window, (long long)stride);
    int64_t cap = 2 + (b - a) / stride, n = 0;
    Window *w = xmalloc(sizeof(Window) * (size_t)cap);
    for (int64_t s = a; s < b; n++) {
        int64_t e = s + (s == 0 ? window : stride);
        if (e > b) e = b;
        int64_t ws = e - window > 0 ? e - window : 0;
        w[n] = (Window){ws, e - ws, s - ws};
        s = e;
    }
    *out = w;
    return n;
}

void score_windows(GPT *m, const uint16_t *val, const Window *w, int64_t nw, int64_t max_tokens, double *nll) {
    int64_t i = 0;
    int32_t *x = NULL, *y = NULL;
    size_t cap = 0;
    while (i < nw) {
        int64_t len = w[i].len, from = w[i].score_from, per = max_tokens / len > 0 ? max_tokens / len : 1, B = 0;
        while (i + B < nw && B < per && w[i + B].len == len && w[i + B].score_from == from) B++; // alike windows at once
        if ((size_t)(B * len) > cap) {
            cap = (size_t)(B * len);
            x = xrealloc(x, sizeof(int32_t) * cap);
            y = xrealloc(y, sizeof(int32_t) * cap);
        }
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < len; t++) {
                x[b * len + t] = val[w[i + b].start + t];
                y[b * len + t] = val[w[i + b].start + t + 1];
            }
        gpt_forward_scored(m, x, y, (int)B, (int)len, (int)from); // the head only where a window scores
        const real *losses = gpt_token_losses(m);
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = from; t < len; t++) nll[w[i + b].start + t] = losses[b * (len - from) + t - from];
        i += B;
        progress("eval", i, nw);
    }
    free(x);
    free(y);
}

void summarize_positions(const uint16_t *val, const double *nll, int64_t a, int64_t b, const ByteTables *bt,
                         double *val_loss, double *val_bpb) {
    double loss = 0, bytes = 0;
    for (int64_t p = a; p < b; p++) {
        loss += nll[p];
        bytes += token_bytes(bt, val[p], val[p + 1]);
    }
    *val_loss = loss / (double)(b - a);
    *val_bpb = (*val_loss / log(2.0)) * ((double)(b - a) / bytes);
}

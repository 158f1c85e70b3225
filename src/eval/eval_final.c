#include "eval/eval_final.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval_windows.h"
#include "eval/ppm.h"
#include "eval/ttt.h"
#include "util.h"

void ppm_mix(const uint16_t *val, int64_t n, const double *nll, int order, double alpha, int vocab, double *mixed) {
    Ppm *ppm = ppm_new(order, vocab);
    for (int64_t p = 0; p + 1 < n; p++) {
        int64_t h0 = p + 1 > order ? p + 1 - order : 0; // context: val[h0 .. p]
        double q = ppm_prob(ppm, val + h0, p + 1 - h0, val[p + 1]);
        mixed[p] = -log(alpha * exp(-nll[p]) + (1 - alpha) * q);
        ppm_update(ppm, val + h0, p + 1 - h0, val[p + 1]);
        if ((p & 4095) == 0 || p + 2 == n) progress("ppm", p + 1, n - 1);
    }
    ppm_free(ppm);
}

void eval_final(GPT *m, const Config *c, const uint16_t *val, int64_t n, const ByteTables *bt, int64_t max_tokens,
                EvalReport *r) {
    *r = (EvalReport){0};
    if (c->ppm_order > 0 && !(c->ppm_alpha >= 0 && c->ppm_alpha <= 1)) die("PPM_ALPHA=%g must lie in [0, 1]", c->ppm_alpha);
    int64_t window = c->eval_seq_len > 0 ? c->eval_seq_len : c->train_seq_len;
    int64_t stride = c->eval_stride > 0 && c->eval_stride < window ? c->eval_stride : window;
    if (stride == window && !c->ttt_enabled && c->ppm_order == 0) {
        log0("final_eval_mode:standard");
        eval_val(m, c, val, n, bt, max_tokens, &r->val_loss, &r->val_bpb);
        return;
    }
    if (stride < window) log0("final_eval_mode:sliding_window stride:%lld window:%lld", (long long)stride, (long long)window);
    else log0("final_eval_mode:standard windows:%lld", (long long)window);
    double *nll = xmalloc(sizeof(double) * (size_t)n);
    int64_t pass_cap = gpt_pass_token_cap(&m->cfg, c->max_pass_tokens, PASS_FORWARD); // a forward's memory (MAX_PASS_TOKENS)
    if (c->ttt_enabled) {
        TttOptions o = {.chunk_tokens = c->ttt_chunk_tokens, .epochs = (int)c->ttt_epochs, .lr = c->ttt_lr,
                        .momentum = c->ttt_momentum, .grad_clip = c->ttt_grad_clip, .params = c->ttt_params,
                        .adam = !strcmp(c->ttt_optimizer, "adam"), .seq_len = c->train_seq_len,
                        .cosine = !strcmp(c->ttt_lr_schedule, "cosine"), .score_pass_tokens = pass_cap,
                        .pass_tokens = gpt_pass_token_cap(&m->cfg, c->max_pass_tokens, PASS_TRAIN)};
        ttt_score_first(m, val, n, window, stride, max_tokens, &o, nll, NULL, NULL);
        log0("ttt:score_first chunk_tokens:%lld epochs:%lld optimizer:%s lr:%g%s momentum:%g params:%s", (long long)o.chunk_tokens,
             (long long)o.epochs, c->ttt_optimizer, o.lr, o.cosine ? " (cosine over chunks)" : "", o.momentum,
             o.params[0] ? o.params : "all");
    } else {
        Window *w;
        int64_t nw = window_plan(0, n - 1, window, stride, &w);
        score_windows(m, val, w, nw, max_tokens < pass_cap ? max_tokens : pass_cap, nll);
        free(w);
    }
    summarize_positions(val, nll, 0, n - 1, bt, &r->val_loss, &r->val_bpb);
    if (c->ppm_order > 0) {
        double *mixed = xmalloc(sizeof(double) * (size_t)n);
        ppm_mix(val, n, nll, (int)c->ppm_order, c->ppm_alpha, (int)c->vocab_size, mixed);
        summarize_positions(val, mixed, 0, n - 1, bt, &r->ppm_val_loss, &r->ppm_val_bpb);
        log0("ppm_mix order:%lld alpha:%g val_bpb_without:%.8f val_bpb_with:%.8f delta:%+.6f", (long long)c->ppm_order,
             c->ppm_alpha, r->val_bpb, r->ppm_val_bpb, r->ppm_val_bpb - r->val_bpb);
        free(mixed);
    }
    free(nll);
}

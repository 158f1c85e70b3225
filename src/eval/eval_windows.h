// Window-based scoring of the validation stream: the sliding-window evaluation of the records
// (EVAL_STRIDE, EVAL_SEQ_LEN) and the plain one as its stride == window case. Position p is the
// prediction of val[p + 1] from val[.. p]; there are n - 1 positions.
//
// Unlike the record's eval_val_sliding, whose trailing partial windows score the last positions up to
// window/stride times, every position is scored exactly once: the first window scores its whole
// length, then each block of `stride` positions is scored by the window that ends with it, so every
// position sees at least window - stride earlier tokens (all of them near the start).
#pragma once
#include <stdint.h>

#include "eval/eval_val.h"
#include "model/gpt.h"

typedef struct {
    int64_t start, len;  // x = val[start .. start + len), targets val[start + 1 .. start + len]
    int64_t score_from;  // positions start + score_from .. start + len - 1 are scored
} Window;

// Windows scoring positions [a, b) (0 <= a < b <= total); *out is malloc'd; returns the count.
int64_t window_plan(int64_t a, int64_t b, int64_t window, int64_t stride, Window **out);
// Runs the windows in batches of at most max_tokens tokens and writes nll[p] for every scored position.
void score_windows(GPT *m, const uint16_t *val, const Window *w, int64_t nw, int64_t max_tokens, double *nll);
// val_loss and val_bpb of positions [a, b) from their losses, with the reference's byte accounting.
void summarize_positions(const uint16_t *val, const double *nll, int64_t a, int64_t b, const ByteTables *bt,
                         double *val_loss, double *val_bpb);

// Legal score-first test-time training (#2005): the validation positions are cut into chunks; each
// chunk is first scored with the current weights, and only then does the model train on that chunk
// (SGD with momentum, a few epochs) before the next chunk is scored. There is no way to train on a
// chunk before scoring it: this function is the only entry point and it always scores first.
#pragma once
#include <stdint.h>

#include "model/gpt.h"

typedef struct {
    int64_t chunk_tokens; // TTT_CHUNK_TOKENS (32,000 in #2005)
    int epochs;           // TTT_EPOCHS
    double lr, momentum;  // TTT_LR, TTT_MOMENTUM (torch.optim.SGD)
    double grad_clip;     // TTT_GRAD_CLIP (0: off)
    const char *params;   // TTT_PARAMS: name fragments of the tensors adapted ("" or NULL: all)
    int adam;             // TTT_OPTIMIZER=adam: torch.optim.Adam (betas 0.9, 0.999, eps 1e-8) instead of SGD
    int64_t seq_len;      // training sequences cut from the chunk
    int cosine;           // TTT_LR_SCHEDULE=cosine: chunk i of n trains at lr 0.5 (1 + cos(pi i / (n - 1)))
    int64_t pass_tokens;  // the most tokens a training pass holds (gpt_pass_token_cap, PASS_TRAIN; 0: max_tokens)
    int64_t score_pass_tokens; // and a scoring forward (PASS_FORWARD; 0: max_tokens)
} TttOptions;

// Observer for tests: kind 0 = positions [a, b) were scored, 1 = a training step used targets [a, b).
typedef void (*TttObserver)(int kind, int64_t a, int64_t b, void *ctx);

// Scores positions [0, n - 1) of val into nll with windows of `window` advancing by `stride` (see
// eval_windows.h), adapting m chunk by chunk. max_tokens: the tokens of a training step's batch (and of
// a scoring forward), each run in passes of at most o->pass_tokens (o->score_pass_tokens).
void ttt_score_first(GPT *m, const uint16_t *val, int64_t n, int64_t window, int64_t stride, int64_t max_tokens,
                     const TttOptions *o, double *nll, TttObserver observe, void *ctx);

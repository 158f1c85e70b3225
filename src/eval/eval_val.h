// Validation loss and val_bpb exactly as train_gpt.py's eval_val computes them.
#pragma once
#include <stdint.h>

#include "config.h"
#include "model/gpt.h"

// Per-token byte accounting from the tokenizer (build_sentencepiece_luts).
typedef struct {
    int64_t size;
    int16_t *base_bytes;
    uint8_t *has_leading_space, *is_boundary;
} ByteTables;

ByteTables byte_tables_load(const char *tokenizer_path, int64_t vocab_size); // dies on vocab mismatch
void byte_tables_free(ByteTables *t);

// Bytes of target token `tgt` after `prev`: base bytes, plus 1 for a leading space not after a boundary.
static inline int token_bytes(const ByteTables *t, int prev, int tgt) {
    return t->base_bytes[tgt] + (t->has_leading_space[tgt] && !t->is_boundary[prev]);
}

// val: n = whole sequences * seq_len + 1 tokens. Sequences are evaluated VAL_BATCH_SIZE /
// GRAD_ACCUM_STEPS tokens at a time as in the reference, each batch run in forward passes of at
// most `max_tokens` and gpt_pass_token_cap's (MAX_PASS_TOKENS) tokens (per-token losses do not depend
// on how sequences are grouped).
void eval_val(GPT *m, const Config *c, const uint16_t *val, int64_t n, const ByteTables *bt, int64_t max_tokens,
              double *val_loss, double *val_bpb);

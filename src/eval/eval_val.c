#include "eval/eval_val.h"

#include <math.h>
#include <stdlib.h>

#include "data/spm.h"
#include "ops/ops.h"
#include "util.h"

ByteTables byte_tables_load(const char *tokenizer_path, int64_t vocab_size) {
    SpmModel *sp = spm_load(tokenizer_path);
    spm_check_vocab(sp, vocab_size, tokenizer_path);
    ByteTables t;
    t.size = spm_vocab_size(sp) > vocab_size ? spm_vocab_size(sp) : vocab_size;
    t.base_bytes = xcalloc((size_t)t.size, sizeof(int16_t));
    t.has_leading_space = xcalloc((size_t)t.size, 1);
    t.is_boundary = xcalloc((size_t)t.size, 1);
    spm_byte_tables(sp, vocab_size, t.base_bytes, t.has_leading_space, t.is_boundary);
    spm_free(sp);
    return t;
}

void byte_tables_free(ByteTables *t) {
    free(t->base_bytes);
    free(t->has_leading_space);
    free(t->is_boundary);
}

void eval_val(GPT *m, const Config *c, const uint16_t *val, int64_t n, const ByteTables *bt, int64_t max_tokens,
              double *val_loss, double *val_bpb) {
    int64_t T = c->train_seq_len, total_seqs = (n - 1) / T;
    int64_t batch_seqs = c->val_batch_size / c->grad_accum_steps / T;
    if (batch_seqs < 1)
        die("VAL_BATCH_SIZE must provide at least one sequence per batch; got VAL_BATCH_SIZE=%lld, "
            "GRAD_ACCUM_STEPS=%lld, TRAIN_SEQ_LEN=%lld",
            (long long)c->val_batch_size, (long long)c->grad_accum_steps, (long long)T);
    int64_t chunk_seqs = max_tokens / T < batch_seqs ? max_tokens / T : batch_seqs;
    // a forward's memory (MAX_PASS_TOKENS)
    int64_t pass_seqs = gpt_pass_token_cap(&m->cfg, c->max_pass_tokens, PASS_FORWARD) / T;
    if (chunk_seqs > pass_seqs) chunk_seqs = pass_seqs;
    if (chunk_seqs < 1) chunk_seqs = 1;
    int32_t *x = xmalloc(sizeof(int32_t) * (size_t)(chunk_seqs * T)), *y = xmalloc(sizeof(int32_t) * (size_t)(chunk_seqs * T));
    double loss_sum = 0, tokens = 0, bytes = 0;
    for (int64_t s0 = 0; s0 < total_seqs; s0 += chunk_seqs) {
        int64_t ns = s0 + chunk_seqs <= total_seqs ? chunk_seqs : total_seqs - s0;
        const uint16_t *span = val + s0 * T;
        for (int64_t i = 0; i < ns * T; i++) {
            x[i] = span[i];
            y[i] = span[i + 1];
            bytes += token_bytes(bt, x[i], y[i]);
        }
        gpt_forward(m, x, y, (int)ns, (int)T);
        loss_sum += sum_values(m->acts.losses, (size_t)(ns * T));
        tokens += (double)(ns * T);
        progress("eval", s0 + ns, total_seqs);
    }
    free(x);
    free(y);
    *val_loss = loss_sum / tokens;
    *val_bpb = (*val_loss / log(2.0)) * (tokens / bytes);
}

// GPTQ calibration: Hessians H = sum over batches of X^T X / batches for the input X of every matrix
// GPTQ quantizes, read from the activations the forward pass keeps for backward (#1435/#2005 hook the
// same inputs): c_q/c_k/c_v share the normed attention input, attn.proj sees the attention output,
// mlp.fc the normed MLP input, mlp.proj relu^2 of the hidden layer, and the tied embedding (or lm_head)
// the final-norm output.
#pragma once
#include <stdint.h>

#include "data/shard.h"
#include "model/gpt.h"

typedef struct {
    int layers, dim, hidden, batches;
    double **attn_in, **attn_out, **mlp_in, **mlp_hidden; // per layer: [dim^2], [dim^2], [dim^2], [hidden^2]
    double *head_in;                                       // [dim^2]
    int tied;
} Hessians;

// Runs `batches` forward passes of tokens_per_batch tokens (sequences of seq_len) from the stream.
Hessians *hessians_collect(GPT *m, TokenStream *stream, int batches, int64_t tokens_per_batch, int seq_len);
// HessianFn for quant_scheme_state: ctx is a Hessians*; the name is a state_dict name.
const double *hessians_for(const char *name, void *ctx);
void hessians_free(Hessians *h);

// GPTQ calibration: Hessians H = sum over batches of X^T X / batches for the input X of every matrix
// GPTQ quantizes, read from the activations the forward pass keeps for backward (#1435/#2005 hook the
// same inputs): c_q/c_k/c_v share the normed attention input, attn.proj sees the attention output,
// mlp.fc the normed MLP input, mlp.proj relu^2 of the hidden layer, and the tied embedding (or lm_head)
// the final-norm output. The sums over tokens and batches are fp32 (the reference's addmm_ into an fp32
// accumulator), kept in backend memory until the end; H is their double copy divided by batches.
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

// Training data as the calibration set: `batches` loader batches of tokens_per_batch tokens (each run
// as forward passes of at most pass_cap tokens: gpt_pass_seqs; the same Hessians up to float rounding).
Hessians *hessians_from_stream(GPT *m, TokenStream *stream, int batches, int64_t tokens_per_batch, int seq_len,
                               int64_t pass_cap);
// Text the model writes itself as the calibration set (no data needed, as some records do): B sequences
// of T tokens sampled from BOS at `temperature` per batch, from a generator seeded with `seed` (its
// draws in the same order whatever pass_cap splits the forwards into).
Hessians *hessians_from_generated(GPT *m, int batches, int B, int T, double temperature, uint64_t seed, int64_t pass_cap);
// HessianFn for quant_scheme_state: ctx is a Hessians*; the name is a state_dict name.
const double *hessians_for(const char *name, void *ctx);
void hessians_free(Hessians *h);

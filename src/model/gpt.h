// The baseline GPT of train_gpt.py: parameters, activations, forward and backward.
// All math goes through ops/ops.h; this file only decides the order and the buffers.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "ops/ops.h"
#include "real.h"
#include "tensor.h"

#define GPT_MAX_VIRTUAL 256 // virtual layers (physical layers plus repeats)

typedef struct {
    int vocab, layers, dim, heads, kv_heads, head_dim, kv_dim, hidden, tied, rope_dims, rope_bf16;
    int skips; // U-Net: rows of skip_weights (the first half of the layers push, the second half pop)
    // Depth recurrence: the looped order of physical layers (virtual layers); without RECUR_LAYERS it
    // is 0..layers-1. The plain order is always 0..layers-1.
    int looped_len, looped[GPT_MAX_VIRTUAL];
    int parallel_from;                 // PARALLEL_RESIDUAL_START (layers: none)
    int lanes_from;                    // PARALLEL_START_LAYER (#1435's two lanes; layers: none)
    int skip_gates;                    // SKIP_GATES_ENABLED: sigmoid-gated skips
    int ln_scale;          // LN_SCALE: block i's normed inputs times 1/sqrt(i+1)
    int smear;             // SMEAR_GATE: smear.gate [dim] on the normed embedding
    int bigram_buckets, bigram_dim; // BigramHash (0 buckets: off); no projection when bigram_dim == dim
    int ve_dim, n_ve, ve_slot[GPT_MAX_VIRTUAL]; // value embedding (n_ve layers; slot k of layer l, or -1)
    int xsa_from;          // XSA on blocks xsa_from .. layers-1 (layers: none)
    int attn_gates;        // GATED_ATTENTION/GATED_ATTN: gates per token (heads, or dim when elementwise); 0: off
    int gate_in_q;         // GATED_ATTN (#2005): the gate logits are rows dim.. of c_q, without a bias
    int value_residual;    // VALUE_RESIDUAL: VR_NONE, VR_SCALAR (#413) or VR_SIGMOID (#638)
    double negative_slope; // MLP activation leaky_relu(x, slope)^2
    int ortho_init, ortho_proj_scale; // ORTHO_INIT, ORTHO_PROJ_SCALE (initialization only)
    double rope_base, softcap, qk_gain_init, tied_embed_init_std;
    int rope_train_seq_len; // ROPE_TRAIN_SEQ_LEN: NTK scaling of the base beyond it (0: off)
} GPTConfig;

enum { VR_NONE, VR_SCALAR, VR_SIGMOID };

GPTConfig gpt_config_from(const Config *c);

// A projected embedding (BigramHash, the value embedding): scale * proj(embed[ids]), the projection
// absent when the table already has the target width.
typedef struct {
    real *scale, *embed, *proj; // [], [rows, width], [target, width] or NULL
} BranchTensors;

// Pointers into one flat block of parameters (or, with the same layout, of gradients).
typedef struct {
    real *c_q, *c_k, *c_v, *attn_proj, *q_gain, *fc, *mlp_proj, *attn_scale, *mlp_scale, *resid_mix;
    real *attn_gate_w, *attn_gate_b; // GATED_ATTENTION: [gates, dim], [gates]; GATED_ATTN: c_q's extra rows, NULL
    real *vr;                        // VALUE_RESIDUAL: vr_lambda [2] (scalar) or vrl_alpha [1] (sigmoid)
} BlockTensors;

typedef struct {
    real *tok_emb, *skip_weights, *lm_head; // lm_head NULL when tied
    real *skip_gates;                       // NULL without SKIP_GATES_ENABLED
    real *lane_merge;                       // [] with PARALLEL_START_LAYER, else NULL
    real *smear_gate;                       // NULL without SMEAR_GATE
    BranchTensors bigram;  // BigramHash: [buckets, bdim] projected to dim (all NULL when off)
    BranchTensors ve;      // value embedding: [vocab, ve_dim] projected to kv_dim (all NULL when off)
    real *ve_layer_scales; // n_ve x [1]
    BlockTensors *blocks;
} ModelTensors;

// Which optimizer group a tensor belongs to (train_gpt.py's split). GROUP_UNUSED: a tensor the forward
// never reads (block 0's value-residual mix), which torch's optimizers skip for lack of a gradient.
typedef enum { GROUP_MATRIX, GROUP_SCALAR, GROUP_EMBED, GROUP_HEAD, GROUP_UNUSED } ParamGroup;

// Saved activations of one block for a micro-batch of N = B*T tokens.
typedef struct {
    const real *x_in; // the block's input: the previous output itself, or skip_sum where a U-Net skip joins
    real *skip_sum;   // that output plus the skip (owns the block's allocation)
    real *n1, *rstd1, *qf, *rstd_q, *kf, *rstd_k, *v, *att_y, *lse, *att_x, *att_out; // n1, qf, kf: NULL in bf16 mode
    // the fused q/k/v projection's output [N, gpt_qkv_width] (each token's q, gate logits, k, v), which
    // qk_prep reads forward and backward: raw (NULL in bf16 mode), raw_r (in bf16 mode the only copy)
    real *raw;
    RoundedInput raw_r;
    real *n2, *rstd2, *h_pre, *h_act, *mlp_out, *x_out; // h_pre, h_act, mlp_out: NULL in bf16 mode (gpt.c's only_rounded)
    real *x_mid; // serial blocks: the stream after the attention's add (n2's input; n2 kept only rounded in bf16 mode)
    real *gate, *att_g; // GATED_ATTENTION: sigmoid gates [N, gates], gated output [N, D]; else NULL
    real *v_raw;        // VALUE_RESIDUAL, blocks after 0: this block's own v before mixing; else NULL
    real *lane;         // PARALLEL_START_LAYER: the MLP lane after this block [N, D]; else NULL
    // the linear layers' inputs rounded once for their matmuls, forward and backward: n1, the
    // projection's input (gpt_proj_input), n2, h_act; and the attention's qf, kf, v. Outputs of linear
    // layers that in bf16 mode exist only rounded: fc's (h_pre, read by the activation forward and
    // backward) and the projections' (att_out, mlp_out, read by the residual adds forward and backward)
    RoundedInput n1_r, proj_r, n2_r, h_r, qkv_r[3], h_pre_r, att_out_r, mlp_out_r;
} BlockActs;

// A projected embedding's activations: e = embed[ids] [N, width], p = proj(e) [N, target] (p == e
// without a projection), and their gradients.
typedef struct {
    real *e, *p, *de, *dp;
} BranchActs;

typedef struct {
    int B, T;
    int score_from; // the last forward's head ran on positions t >= score_from only (gpt_forward_scored)
    real *emb, *emb_rstd, *emb_n, *x0, *nf, *rstd_f, *logits, *losses; // emb_n: normed, before SmearGate
    int32_t *bigram_ids;  // BigramHash bucket of each token
    BranchActs bigram, ve; // their embeddings and projections, with gradients
    RoundedInput nf_r;    // nf rounded for the head's matmuls
    // the logits z (and, in place, the backward's dL/dz): in bf16 mode only rounded, in logits_r (logits
    // NULL; gpt_logits_row widens a row into logit_row), as the reference's bf16 ones
    RoundedInput logits_r;
    real *logit_row;
    real *lane_x, *dl1;   // the merged lanes (input of the final norm) and the MLP lane's gradient
    BlockActs *blocks;
    const int32_t *targets;
    // backward scratch
    real *dx, *dx0, *dres, *dn, *dq, *dk, *dv, *dv_xsa, *dv0, *datt, *dh, *dskip; // dq, dk: NULL in bf16 mode
    real *dqkv;         // the fused q/k/v projection's output gradient [N, gpt_qkv_width] (NULL in bf16 mode)
    real *backward_mem; // owns them (dx and dres trade places after each block)
    RoundedInput dres_r, dh_r, dqkv_r; // output gradients rounded by the ops that write them, for the matmuls
    RoundedInput dha_r; // d(h_act) from mlp.proj's backward, for the activation's (in bf16 mode only rounded)
    RoundedInput datt_r; // d(attention output) where only the attention's backward reads it (gpt_attn_plain)
    RoundedInput dn_r;   // a norm's output gradient from its readers' products (in bf16 mode only rounded)
    RoundedInput dq_r, dk_r; // the attention's dq, dk for q's and k's preparation (in bf16 mode only rounded)
} Activations;

// The scalar parameters the model uses as host numbers (value-residual lambdas, the VE and BigramHash
// scales, the lane merge). On a GPU each read or gradient add is a synchronizing copy, several per block
// and micro-step; instead their values are read once per forward (parameters change only between steps)
// and their gradients summed on the host through the backward and added at its end.
#define GPT_MAX_SCALARS (3 * GPT_MAX_VIRTUAL + 3)
typedef struct {
    int n;
    const real *param[GPT_MAX_SCALARS]; // backend addresses, registered in layout order
    real *grad[GPT_MAX_SCALARS];
    real value[GPT_MAX_SCALARS];      // as of the last forward
    double grad_sum[GPT_MAX_SCALARS]; // the running backward's
} HostScalars;

typedef struct {
    GPTConfig cfg;
    size_t n_params;
    real *params, *grads;
    ModelTensors p, g;
    TensorList param_list, grad_list; // state_dict order and names
    ParamGroup *groups;               // one per tensor of param_list
    Activations acts;   // one BlockActs per virtual layer position
    size_t acts_tokens; // capacity of acts in tokens
    int recur_on;       // depth recurrence active: the forward runs cfg.looped, else 0..layers-1
    int n_order;        // the current order: its length and physical layers
    const int *order;
    real *rope_cos, *rope_sin;
    int rope_T;
    int plain[GPT_MAX_VIRTUAL]; // 0..layers-1
    real *host_losses;          // gpt_token_losses' buffer (acts_tokens values)
    HostScalars scalars;
} GPT;

void gpt_init(GPT *m, const GPTConfig *cfg);
// Names, views and pointers of the layout over any flat block `base` of gpt_count_params values (the
// model's own views are built this way; gpt_init_weights fills a host block through them).
void gpt_views(const GPTConfig *c, real *base, TensorList *list, ModelTensors *ptrs);
void gpt_views_free(TensorList *list, ModelTensors *ptrs);
void gpt_free(GPT *m);
// train_gpt.py's init (kaiming-uniform linears, zero projections, normal tied embedding, ones,
// resid_mix (1, 0)), rounded to bf16 as the reference's model.bfloat16() does. pgolf's generator is
// its own (xoshiro256**), so values differ from torch's for the same seed; use INIT_CHECKPOINT for
// bit-identical starts.
void gpt_init_weights(GPT *m, uint64_t seed);
// Switches depth recurrence on or off (it starts on when configured; training switches it by step).
void gpt_set_recurrence(GPT *m, int on);
// The attention output at virtual position v of the last forward, after XSA where it is on.
static inline const real *gpt_attn_output(const GPT *m, int v) {
    return m->order[v] >= m->cfg.xsa_from ? m->acts.blocks[v].att_x : m->acts.blocks[v].att_y;
}
// The attention's input projections run as one product: c_q (with GATED_ATTN's gate rows), c_k and c_v
// are consecutive rows of the parameter block, so each token gets [q | gate logits | k | v] at once.
static inline int gpt_q_rows(const GPTConfig *c) { return c->dim + (c->gate_in_q ? c->attn_gates : 0); }
static inline int gpt_qkv_width(const GPTConfig *c) { return gpt_q_rows(c) + 2 * c->kv_dim; }
// Whether the attention output at position v feeds only the output projection (no XSA, no gate): the
// attention then writes it into the block's proj_r, and in bf16 mode only there (only rounded).
static inline int gpt_attn_plain(const GPT *m, int v) { return m->order[v] < m->cfg.xsa_from && !m->cfg.attn_gates; }
// The input of the attention output projection: that output, gated where the gate is on; NULL where it
// exists only rounded (bf16 mode, gpt_attn_plain; the block's proj_r holds it in every case).
static inline const real *gpt_proj_input(const GPT *m, int v) {
    if (gpt_attn_plain(m, v) && ops_matmul_bf16()) return NULL;
    return m->cfg.attn_gates ? m->acts.blocks[v].att_g : gpt_attn_output(m, v);
}

// Forward over x [B,T]. With targets, returns the mean loss and keeps per-token losses in
// m->acts.losses; without, returns 0 and leaves the raw logits z (gpt_logits_row reads them).
double gpt_forward(GPT *m, const int32_t *x, const int32_t *targets, int B, int T);
// Evaluation's forward: gpt_forward with the final norm, the head and the loss only at positions
// t >= score_from of each sequence (sliding windows score their last positions; the head's product and
// the cross-entropy of the others are skipped). The per-token losses are then B x (T - score_from), and
// the forward cannot be followed by gpt_backward.
double gpt_forward_scored(GPT *m, const int32_t *x, const int32_t *targets, int B, int T, int score_from);
// The forward up to the final norm's output (acts.nf, all B*T rows): what GPTQ's calibration reads, without
// the head's product. Neither losses nor logits follow, nor gpt_backward.
void gpt_forward_hidden(GPT *m, const int32_t *x, int B, int T);
// Accumulates into m->grads the gradient of loss_scale * mean loss of the last forward.
void gpt_backward(GPT *m, const int32_t *x, real loss_scale);

// Passes: a batch whose activations would not fit runs as equal passes of whole sequences, each a
// forward and backward of its own (memory of one pass), the gradients summed: the batch's gradient up
// to float rounding. The activations of one pass over `tokens` tokens take gpt_activation_bytes (in
// bf16 mode with an estimate of the rounded copies).
size_t gpt_activation_bytes(const GPTConfig *c, int64_t tokens);
// The most tokens one pass of this kind may hold: max_pass_tokens (MAX_PASS_TOKENS) where > 0, else (0)
// as many as ops_activation_budget(kind) holds.
int64_t gpt_pass_token_cap(const GPTConfig *c, int64_t max_pass_tokens, PassKind kind);
// Sequences per pass for a batch of `seqs` sequences of T tokens: the largest divisor of seqs whose pass
// holds at most cap tokens (cap <= 0: seqs), at least 1.
int gpt_pass_seqs(int seqs, int T, int64_t cap);
// Forward and backward over x, y [B, T] in passes of pass_seqs sequences (a divisor of B): accumulates
// into m->grads the gradient of loss_scale * the batch's mean loss; returns that mean loss.
double gpt_train_batch(GPT *m, const int32_t *x, const int32_t *y, int B, int T, int pass_seqs, real loss_scale);
void gpt_zero_grad(GPT *m);
// Host copies of the last forward's outputs: the per-token losses [B*(T - score_from)] (valid until the
// next call) and the raw logits z of one scored token row (row b * (T - score_from) + t - score_from
// holds position t of sequence b).
const real *gpt_token_losses(GPT *m);
void gpt_logits_row(const GPT *m, int64_t row, real *out);
int64_t gpt_count_params(const GPTConfig *cfg);

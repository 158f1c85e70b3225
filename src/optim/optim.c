// The optimizer split and schedule of train_gpt.py, driving muon.c and adam.c.
#include "optim/optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "ops/ops.h"
#include "util.h"

// Muon runs every matrix of one shape as one batch (muon_step): whether tensor u is a Muon matrix of
// tensor t's shape.
static int same_shape(const GPT *m, int t, int u) {
    const TensorView *a = &m->param_list.items[t], *b = &m->param_list.items[u];
    return m->groups[u] == GROUP_MATRIX && a->shape[0] == b->shape[0] && a->shape[1] == b->shape[1];
}

// The Muon matrices (param_list indices) grouped by shape into s->muon_order: each shape's in layout
// order, shapes in the order they first appear.
static void group_muon_matrices(OptimState *s, const GPT *m) {
    int count = m->param_list.count;
    s->muon_order = xmalloc(sizeof(int) * (size_t)(count ? count : 1));
    s->n_muon = 0;
    for (int t = 0; t < count; t++) {
        int seen = m->groups[t] != GROUP_MATRIX;
        for (int i = 0; i < s->n_muon && !seen; i++) seen = same_shape(m, s->muon_order[i], t);
        for (int u = t; u < count && !seen; u++)
            if (same_shape(m, t, u)) s->muon_order[s->n_muon++] = u;
    }
}

// The number of same-shaped matrices from muon_order[i] on: one batch.
static int batch_len(const OptimState *s, const GPT *m, int i) {
    int k = 1;
    while (i + k < s->n_muon && same_shape(m, s->muon_order[i], s->muon_order[i + k])) k++;
    return k;
}

// Scratch for the largest batch: the updates, then Newton-Schulz's work space.
static size_t scratch_size(const OptimState *s, const GPT *m) {
    size_t best = 0;
    for (int i = 0, k; i < s->n_muon; i += k) {
        k = batch_len(s, m, i);
        const TensorView *v = &m->param_list.items[s->muon_order[i]];
        size_t need = (size_t)k * (size_t)tensor_numel(v) + newton_schulz5_scratch(k, (int)v->shape[0], (int)v->shape[1]);
        if (need > best) best = need;
    }
    return best;
}

void optim_init(OptimState *s, const GPT *m) {
    s->n = m->n_params;
    s->muon_buf = ops_alloc(s->n);
    s->adam_m = ops_alloc(s->n);
    s->adam_v = ops_alloc(s->n);
    group_muon_matrices(s, m);
    s->ns_scratch = ops_alloc(scratch_size(s, m));
    s->ema = NULL; // ema_enable
    s->adam_step = 0;
}

void optim_free(OptimState *s) {
    ops_free(s->muon_buf);
    ops_free(s->adam_m);
    ops_free(s->adam_v);
    ops_free(s->ns_scratch);
    free(s->muon_order);
    ops_free(s->ema);
}

void ema_enable(OptimState *s) {
    if (!s->ema) s->ema = ops_alloc(s->n);
}

void ema_start(OptimState *s, const GPT *m) { ops_copy(s->ema, m->params, s->n); }

void ema_update(OptimState *s, const GPT *m, double decay) { ema_step(s->ema, m->params, s->n, decay); }

void ema_apply(const OptimState *s, GPT *m) { ops_copy(m->params, s->ema, s->n); }

void optim_reset(OptimState *s) {
    ops_zero(s->muon_buf, s->n);
    ops_zero(s->adam_m, s->n);
    ops_zero(s->adam_v, s->n);
    s->adam_step = 0;
}

OptimSettings optim_settings(const Config *c) {
    OptimSettings o;
    o.lr_matrix = c->matrix_lr;
    o.lr_scalar = c->scalar_lr;
    o.lr_embed = c->tie_embeddings ? c->tied_embed_lr : c->embed_lr;
    o.lr_head = c->head_lr;
    o.muon_momentum = c->muon_momentum;
    o.muon_steps = (int)c->muon_backend_steps;
    o.beta1 = c->beta1;
    o.beta2 = c->beta2;
    o.eps = c->adam_eps;
    o.muon_wd = c->muon_wd;
    o.adam_wd = c->adam_wd;
    o.embed_wd = c->embed_wd >= 0 ? c->embed_wd : c->adam_wd;
    o.muon_row_normalize = c->muon_row_normalize;
    o.muon_normalize_update_rows = c->muon_normalize_update_rows;
    return o;
}

// Decoupled weight decay, applied before the group's update as Muon's weight_decay and AdamW do.
static void decay_weights(real *p, size_t n, double lr_wd) {
    if (lr_wd != 0) scale_inplace(p, (real)(1.0 - lr_wd), n);
}

// The Muon group, one batch per shape (each matrix's update is its own; batching only shares the
// products' launches): the baseline's 54 matrices are 4 batches.
static void muon_step(OptimState *s, GPT *m, const OptimSettings *o, double lr_mul) {
    MuonMatrix *batch = xmalloc(sizeof(MuonMatrix) * (size_t)(s->n_muon ? s->n_muon : 1));
    double lr = o->lr_matrix * lr_mul;
    for (int i = 0, k; i < s->n_muon; i += k) {
        k = batch_len(s, m, i);
        const TensorView *p = &m->param_list.items[s->muon_order[i]];
        size_t n = (size_t)tensor_numel(p);
        for (int j = 0; j < k; j++) {
            real *w = m->param_list.items[s->muon_order[i + j]].data;
            size_t off = (size_t)(w - m->params);
            decay_weights(w, n, lr * o->muon_wd);
            batch[j] = (MuonMatrix){w, m->grads + off, s->muon_buf + off};
        }
        muon_update(batch, k, (int)p->shape[0], (int)p->shape[1], o, lr, s->ns_scratch + (size_t)k * n, s->ns_scratch);
    }
    free(batch);
}

void optim_step(OptimState *s, GPT *m, const OptimSettings *o, double lr_mul) {
    s->adam_step++;
    muon_step(s, m, o, lr_mul);
    for (int t = 0; t < m->param_list.count; t++) {
        TensorView *p = &m->param_list.items[t];
        size_t off = (size_t)(p->data - m->params), n = (size_t)tensor_numel(p);
        const real *g = m->grads + off;
        switch (m->groups[t]) {
        case GROUP_MATRIX: break; // muon_step
        case GROUP_SCALAR:
            decay_weights(p->data, n, o->lr_scalar * lr_mul * o->adam_wd);
            adam_update(p->data, g, s->adam_m + off, s->adam_v + off, n, o, o->lr_scalar * lr_mul, s->adam_step);
            break;
        case GROUP_EMBED:
            decay_weights(p->data, n, o->lr_embed * lr_mul * o->embed_wd);
            adam_update(p->data, g, s->adam_m + off, s->adam_v + off, n, o, o->lr_embed * lr_mul, s->adam_step);
            break;
        case GROUP_HEAD:
            adam_update(p->data, g, s->adam_m + off, s->adam_v + off, n, o, o->lr_head * lr_mul, s->adam_step);
            break;
        case GROUP_UNUSED: break;
        }
    }
}

TensorList optim_state_views(const OptimState *s, const GPT *m) {
    TensorList out = {xcalloc((size_t)m->param_list.count * 3, sizeof(TensorView)), 0};
    for (int t = 0; t < m->param_list.count; t++) {
        const TensorView *p = &m->param_list.items[t];
        size_t off = (size_t)(p->data - m->params);
        int muon = m->groups[t] == GROUP_MATRIX, kinds = (muon ? 1 : 2) + (s->ema != NULL);
        for (int k = 0; k < kinds; k++) {
            TensorView *v = &out.items[out.count++];
            *v = *p;
            int ema = k == kinds - 1 && s->ema; // the EMA comes last
            const char *kind = ema ? "ema" : muon ? "muon_buf" : k == 0 ? "adam_m" : "adam_v";
            real *base = ema ? s->ema : muon ? s->muon_buf : k == 0 ? s->adam_m : s->adam_v;
            if (snprintf(v->name, sizeof v->name, "optim.%s.%s", kind, p->name) >= (int)sizeof v->name)
                die("optimizer state name for %s is too long", p->name);
            v->data = base + off;
        }
    }
    return out;
}

double training_frac(const Config *c, int64_t step, double elapsed_ms) {
    return c->max_wallclock_seconds > 0 ? elapsed_ms / (1000.0 * c->max_wallclock_seconds)
                                        : (double)step / (double)(c->iterations > 1 ? c->iterations : 1);
}

double lr_schedule(const Config *c, int64_t step, double elapsed_ms) {
    if (c->warmdown_frac > 0) { // #1435/#2005: by the fraction of the run done, floored at MIN_LR
        double frac = training_frac(c, step, elapsed_ms);
        return frac >= 1 - c->warmdown_frac ? fmax((1 - frac) / c->warmdown_frac, c->min_lr) : 1.0;
    }
    if (c->warmdown_iters <= 0) return 1.0;
    if (c->max_wallclock_seconds <= 0) {
        int64_t start = c->iterations - c->warmdown_iters > 0 ? c->iterations - c->warmdown_iters : 0;
        if (step < start || step >= c->iterations) return 1.0;
        double v = (double)(c->iterations - step) / (double)(c->warmdown_iters > 1 ? c->warmdown_iters : 1);
        return v > 0 ? v : 0;
    }
    double step_ms = elapsed_ms / (double)(step > 1 ? step : 1);
    double warmdown_ms = (double)c->warmdown_iters * step_ms;
    double remaining = 1000.0 * c->max_wallclock_seconds - elapsed_ms;
    if (remaining < 0) remaining = 0;
    return remaining <= warmdown_ms ? remaining / fmax(warmdown_ms, 1e-9) : 1.0;
}

int recurrence_active(const Config *c, int64_t step, double elapsed_ms) {
    if (c->recur_start_step > 0 && step >= c->recur_start_step) return 1;
    if (c->enable_looping_at > 0 && training_frac(c, step, elapsed_ms) >= c->enable_looping_at) return 1;
    return c->recur_start_step <= 0 && c->enable_looping_at <= 0;
}

double muon_momentum_at(const Config *c, int64_t step) {
    double frac = c->muon_momentum_warmup_steps > 0 ? fmin((double)step / (double)c->muon_momentum_warmup_steps, 1.0) : 1.0;
    return (1 - frac) * c->muon_momentum_warmup_start + frac * c->muon_momentum;
}

void clip_grad_norm(GPT *m, double max_norm) {
    double norm = sqrt(sum_squares(m->grads, m->n_params));
    double coef = max_norm / (norm + 1e-6); // torch: clip_coef = max_norm / (total_norm + 1e-6), clamped to 1
    if (coef < 1.0) scale_inplace(m->grads, (real)coef, m->n_params);
}

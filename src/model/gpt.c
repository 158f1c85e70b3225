#include "model/gpt.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/host_tables.h"
#include "ops/ops.h"
#include "util.h"

// rms_norm's eps in train_gpt.py is None, i.e. float32 machine epsilon (also in the f64 build, so
// both builds compute the same function).
#define NORM_EPS ((real)FLT_EPSILON)

// RECUR_LAYERS "a,b,...,z" (consecutive) or "a-z": layers before a, then a..z (1 + NUM_LOOPS) times, then
// the rest. #1435's "4,5" with one loop: 0 1 2 3 4 5 4 5 6 ...; #2005's 3-5 with two: 0 1 2 3 4 5 3 4 5 3 4 5 6 ...
static void recurrence_order(GPTConfig *g, const Config *c) {
    int first = -1, last = -1, n = 0;
    g->looped_len = 0;
    if (*c->recur_layers) {
        const char *s = c->recur_layers;
        char *end;
        first = last = (int)strtol(s, &end, 10);
        if (end == s) die("RECUR_LAYERS=%s: expected layers like 4,5 or 3-5", c->recur_layers);
        if (*end == '-') {
            last = (int)strtol(s = end + 1, &end, 10);
            if (end == s) die("RECUR_LAYERS=%s: expected layers like 4,5 or 3-5", c->recur_layers);
        }
        while (*end == ',') {
            int next = (int)strtol(s = end + 1, &end, 10);
            if (end == s || next != last + 1) die("RECUR_LAYERS=%s must list consecutive layers", c->recur_layers);
            last = next;
        }
        if (*end) die("RECUR_LAYERS=%s: unexpected '%s'", c->recur_layers, end);
        if (first < 1 || last < first || last >= g->layers)
            die("RECUR_LAYERS=%s must lie within layers 1..%d (layer 0 provides the value residual)", c->recur_layers,
                g->layers - 1);
        n = (last - first + 1) * (int)c->num_loops;
    }
    if (g->layers + n > GPT_MAX_VIRTUAL) die("%d virtual layers exceed pgolf's %d", g->layers + n, GPT_MAX_VIRTUAL);
    for (int l = 0; l < g->layers; l++) {
        g->looped[g->looped_len++] = l;
        if (l == last)
            for (int k = 0; k < (int)c->num_loops; k++)
                for (int r = first; r <= last; r++) g->looped[g->looped_len++] = r;
    }
}

// VE_LAYERS "9,10": the layers whose v gets the value embedding, each with its own ve_layer_scales.k.
static void value_embedding_layers(GPTConfig *g, const Config *c) {
    for (int l = 0; l < g->layers; l++) g->ve_slot[l] = -1;
    g->n_ve = 0;
    g->ve_dim = (int)c->ve_dim;
    if (!c->ve_enabled) return;
    if (c->ve_dim <= 0) die("VE_DIM=%lld must be positive", (long long)c->ve_dim);
    const char *s = c->ve_layers;
    while (*s) {
        char *end;
        long l = strtol(s, &end, 10);
        if (end == s || l < 0 || l >= g->layers || (*end && *end != ','))
            die("VE_LAYERS=%s must list layers in 0..%d, like 9,10", c->ve_layers, g->layers - 1);
        if (g->ve_slot[l] < 0) g->ve_slot[l] = g->n_ve++;
        s = *end ? end + 1 : end;
    }
    if (!g->n_ve) die("VE_ENABLED=1 needs VE_LAYERS");
}

GPTConfig gpt_config_from(const Config *c) {
    config_validate_model(c);
    GPTConfig g = {0};
    g.vocab = (int)c->vocab_size;
    g.layers = (int)c->num_layers;
    g.dim = (int)c->model_dim;
    g.heads = (int)c->num_heads;
    g.kv_heads = (int)c->num_kv_heads;
    g.head_dim = g.dim / g.heads;
    g.kv_dim = g.kv_heads * g.head_dim;
    g.hidden = (int)c->mlp_mult * g.dim;
    g.tied = c->tie_embeddings;
    g.rope_dims = c->rope_dims > 0 ? (int)c->rope_dims : g.head_dim;
    g.ln_scale = c->ln_scale;
    g.smear = c->smear_gate;
    g.bigram_buckets = (int)c->bigram_vocab_size;
    g.bigram_dim = (int)c->bigram_dim;
    value_embedding_layers(&g, c);
    g.xsa_from = g.layers - (int)c->xsa_last_n;
    g.attn_gates = !c->gated_attention ? 0 : c->gated_attention_elementwise ? g.dim : g.heads;
    g.gate_in_q = strcmp(c->gated_attn, "none") != 0;
    if (g.gate_in_q) g.attn_gates = !strcmp(c->gated_attn, "elementwise") ? g.dim : g.heads;
    g.value_residual = !c->value_residual ? VR_NONE : !strcmp(c->value_residual_form, "sigmoid") ? VR_SIGMOID : VR_SCALAR;
    g.negative_slope = c->negative_slope;
    g.ortho_init = c->ortho_init;
    g.ortho_proj_scale = c->ortho_proj_scale;
    g.rope_bf16 = c->rope_bf16;
    recurrence_order(&g, c);
    g.skips = (c->recur_virtual_skips ? g.looped_len : g.layers) / 2; // min(encoder, decoder) of that layout
    g.parallel_from = c->parallel_residual_start >= 0 ? (int)c->parallel_residual_start : g.layers;
    g.lanes_from = c->parallel_start_layer > 0 ? (int)c->parallel_start_layer : g.layers;
    g.skip_gates = c->skip_gates_enabled;
    g.rope_base = c->rope_base;
    g.rope_train_seq_len = (int)c->rope_train_seq_len;
    g.softcap = c->logit_softcap;
    g.qk_gain_init = c->qk_gain_init;
    g.tied_embed_init_std = c->tied_embed_init_std;
    return g;
}

// ---------------------------------------------------------------- parameter layout

// Walks the tensors in train_gpt.py's state_dict order (a module's own parameters before its
// children's). With base == NULL it only counts; otherwise it fills names, views and pointers.
typedef struct {
    real *base;
    size_t offset;
    TensorList *list;
    ModelTensors *ptrs;
} LayoutWalk;

static real *layout_add(LayoutWalk *w, const char *name, int ndim, int64_t d0, int64_t d1) {
    int64_t numel = ndim == 2 ? d0 * d1 : ndim == 1 ? d0 : 1; // ndim 0: a scalar
    real *p = w->base ? w->base + w->offset : NULL;
    if (w->list) {
        TensorView *t = &w->list->items[w->list->count++];
        snprintf(t->name, sizeof t->name, "%s", name);
        t->ndim = ndim;
        t->shape[0] = ndim >= 1 ? d0 : 0;
        t->shape[1] = ndim == 2 ? d1 : 0;
        t->data = p;
    }
    w->offset += (size_t)numel;
    return p;
}

// A projected embedding module: its own scale, then embed and (when the widths differ) proj.
static void layout_branch(LayoutWalk *w, const char *prefix, int rows, int width, int target, BranchTensors *t) {
    char name[TENSOR_NAME_MAX];
    snprintf(name, sizeof name, "%s.scale", prefix);
    real *scale = layout_add(w, name, 0, 1, 0);
    snprintf(name, sizeof name, "%s.embed.weight", prefix);
    real *embed = layout_add(w, name, 2, rows, width);
    snprintf(name, sizeof name, "%s.proj.weight", prefix);
    real *proj = width != target ? layout_add(w, name, 2, target, width) : NULL;
    if (t) *t = (BranchTensors){scale, embed, proj};
}

static void layout_walk(const GPTConfig *c, LayoutWalk *w) {
    ModelTensors *m = w->ptrs;
    real *p;
    char name[TENSOR_NAME_MAX];
    p = layout_add(w, "skip_weights", 2, c->skips, c->dim);
    if (m) m->skip_weights = p;
    p = c->skip_gates ? layout_add(w, "skip_gates", 2, c->skips, c->dim) : NULL;
    if (m) m->skip_gates = p;
    p = c->lanes_from < c->layers ? layout_add(w, "lane_merge", 0, 1, 0) : NULL;
    if (m) m->lane_merge = p;
    p = layout_add(w, "tok_emb.weight", 2, c->vocab, c->dim);
    if (m) m->tok_emb = p;
    if (c->bigram_buckets) layout_branch(w, "bigram", c->bigram_buckets, c->bigram_dim, c->dim, m ? &m->bigram : NULL);
    p = c->smear ? layout_add(w, "smear.gate", 1, c->dim, 0) : NULL; // the records' state_dict order
    if (m) m->smear_gate = p;
    for (int i = 0; i < c->layers; i++) {
        BlockTensors *b = m ? &m->blocks[i] : &(BlockTensors){0};
#define ADD(field, suffix, nd, d0, d1)                           \
    snprintf(name, sizeof name, "blocks.%d.%s", i, suffix);      \
    b->field = layout_add(w, name, nd, d0, d1);
        ADD(attn_scale, "attn_scale", 1, c->dim, 0);
        ADD(mlp_scale, "mlp_scale", 1, c->dim, 0);
        ADD(resid_mix, "resid_mix", 2, 2, c->dim);
        ADD(q_gain, "attn.q_gain", 1, c->heads, 0);
        if (c->value_residual == VR_SCALAR) {
            ADD(vr, "attn.vr_lambda", 1, 2, 0);
        } else if (c->value_residual == VR_SIGMOID) {
            ADD(vr, "attn.vrl_alpha", 1, 1, 0);
        }
        ADD(c_q, "attn.c_q.weight", 2, c->dim + (c->gate_in_q ? c->attn_gates : 0), c->dim);
        if (c->gate_in_q) { // #2005: q_raw, gate_logits = c_q(x).split([dim, gates])
            b->attn_gate_w = b->c_q ? b->c_q + (size_t)c->dim * c->dim : NULL;
            b->attn_gate_b = NULL;
        }
        ADD(c_k, "attn.c_k.weight", 2, c->kv_dim, c->dim);
        ADD(c_v, "attn.c_v.weight", 2, c->kv_dim, c->dim);
        ADD(attn_proj, "attn.proj.weight", 2, c->dim, c->dim);
        if (c->attn_gates && !c->gate_in_q) { // nn.Linear(dim, gates, bias=True), registered after proj
            ADD(attn_gate_w, "attn.attn_gate.weight", 2, c->attn_gates, c->dim);
            ADD(attn_gate_b, "attn.attn_gate.bias", 1, c->attn_gates, 0);
        }
        ADD(fc, "mlp.fc.weight", 2, c->hidden, c->dim);
        ADD(mlp_proj, "mlp.proj.weight", 2, c->dim, c->hidden);
#undef ADD
    }
    if (c->n_ve) { // ValueEmbedding, then the ParameterList of per-layer scales
        layout_branch(w, "ve_shared", c->vocab, c->ve_dim, c->kv_dim, m ? &m->ve : NULL);
        for (int k = 0; k < c->n_ve; k++) {
            snprintf(name, sizeof name, "ve_layer_scales.%d", k);
            p = layout_add(w, name, 1, 1, 0);
            if (m && k == 0) m->ve_layer_scales = p; // consecutive: slot k at ve_layer_scales + k
        }
    }
    if (!c->tied) {
        p = layout_add(w, "lm_head.weight", 2, c->vocab, c->dim);
        if (m) m->lm_head = p;
    } else if (m) {
        m->lm_head = NULL;
    }
}

static int layout_tensor_count(const GPTConfig *c) {
    int per_block = 10 + (c->attn_gates && !c->gate_in_q ? 2 : 0) + (c->value_residual != VR_NONE);
    int bigram = c->bigram_buckets ? 2 + (c->bigram_dim != c->dim) : 0;
    int ve = c->n_ve ? 2 + (c->ve_dim != c->kv_dim) + c->n_ve : 0;
    return 2 + per_block * c->layers + (c->tied ? 0 : 1) + c->smear + bigram + c->skip_gates + ve + (c->lanes_from < c->layers);
}

int64_t gpt_count_params(const GPTConfig *cfg) {
    LayoutWalk w = {0};
    layout_walk(cfg, &w);
    return (int64_t)w.offset;
}

// The records' split: embedding tables with tok_emb (AdamW at the token lr), every other matrix outside the
// control patterns (block matrices, bigram.proj) to Muon, the rest to the scalar AdamW.
static ParamGroup group_of(const TensorView *t) {
    if (!strcmp(t->name, "tok_emb.weight") || !strcmp(t->name, "bigram.embed.weight") ||
        !strcmp(t->name, "ve_shared.embed.weight"))
        return GROUP_EMBED;
    if (!strcmp(t->name, "lm_head.weight")) return GROUP_HEAD;
    if (tensor_is_control(t->name)) return GROUP_SCALAR;
    return t->ndim == 2 ? GROUP_MATRIX : GROUP_SCALAR;
}

void gpt_views(const GPTConfig *c, real *base, TensorList *list, ModelTensors *ptrs) {
    list->items = xcalloc((size_t)layout_tensor_count(c), sizeof(TensorView));
    list->count = 0;
    ptrs->blocks = xcalloc((size_t)c->layers, sizeof(BlockTensors));
    LayoutWalk w = {base, 0, list, ptrs};
    layout_walk(c, &w);
}

void gpt_views_free(TensorList *list, ModelTensors *ptrs) {
    free(list->items);
    free(ptrs->blocks);
}

// ---------------------------------------------------------------- host scalars (HostScalars in gpt.h)

static void add_host_scalars(HostScalars *h, const real *param, real *grad, int count) {
    for (int i = 0; i < count; i++) {
        if (h->n == GPT_MAX_SCALARS) die("more than %d scalar parameters read on the host", GPT_MAX_SCALARS);
        h->param[h->n] = param + i;
        h->grad[h->n++] = grad + i;
    }
}

static void register_host_scalars(GPT *m) {
    const GPTConfig *c = &m->cfg;
    HostScalars *h = &m->scalars;
    h->n = 0;
    for (int l = 0; l < c->layers && c->value_residual; l++)
        add_host_scalars(h, m->p.blocks[l].vr, m->g.blocks[l].vr, c->value_residual == VR_SCALAR ? 2 : 1);
    if (c->n_ve) {
        add_host_scalars(h, m->p.ve_layer_scales, m->g.ve_layer_scales, c->n_ve);
        add_host_scalars(h, m->p.ve.scale, m->g.ve.scale, 1);
    }
    if (c->bigram_buckets) add_host_scalars(h, m->p.bigram.scale, m->g.bigram.scale, 1);
    if (m->p.lane_merge) add_host_scalars(h, m->p.lane_merge, m->g.lane_merge, 1);
}

// The length of the run of registered scalars from i whose addresses (param, or grad) are consecutive,
// so that one copy moves them all.
static int scalar_run(const HostScalars *h, int i, int grads) {
    int len = 1;
    while (i + len < h->n && (grads ? h->grad[i + len] == h->grad[i] + len : h->param[i + len] == h->param[i] + len)) len++;
    return len;
}

static void read_host_scalars(GPT *m) {
    HostScalars *h = &m->scalars;
    for (int i = 0, len; i < h->n; i += len) {
        len = scalar_run(h, i, 0);
        ops_to_host(h->value + i, h->param[i], (size_t)len);
    }
}

// Adds the backward's scalar gradients to the gradient block (runs with any nonzero sum) and clears
// them for the next backward (they start at zero with the model).
static void flush_scalar_grads(GPT *m) {
    HostScalars *h = &m->scalars;
    for (int i = 0, len; i < h->n; i += len) {
        len = scalar_run(h, i, 1);
        real add[GPT_MAX_SCALARS];
        int any = 0;
        for (int k = 0; k < len; k++) add[k] = (real)h->grad_sum[i + k], any |= h->grad_sum[i + k] != 0;
        if (any) ops_add_from_host(h->grad[i], add, (size_t)len);
    }
    memset(h->grad_sum, 0, sizeof h->grad_sum);
}

// A registered scalar parameter's value as of this forward (HostScalars).
static real scalar(const GPT *m, const real *p) {
    const HostScalars *h = &m->scalars;
    for (int i = 0; i < h->n; i++)
        if (h->param[i] == p) return h->value[i];
    die("internal: a scalar parameter read on the host is not registered (register_host_scalars)");
}

// Adds to a registered scalar's gradient; the sum reaches the gradient block at the end of the backward.
static void add_scalar(GPT *m, const real *g, double v) {
    HostScalars *h = &m->scalars;
    for (int i = 0; i < h->n; i++)
        if (h->grad[i] == g) {
            h->grad_sum[i] += v;
            return;
        }
    die("internal: a scalar gradient added on the host is not registered (register_host_scalars)");
}

void gpt_init(GPT *m, const GPTConfig *cfg) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->n_params = (size_t)gpt_count_params(cfg);
    m->params = ops_alloc(m->n_params);
    m->grads = ops_alloc(m->n_params);
    gpt_views(cfg, m->params, &m->param_list, &m->p);
    gpt_views(cfg, m->grads, &m->grad_list, &m->g);
    m->groups = xmalloc(sizeof(ParamGroup) * (size_t)m->param_list.count);
    for (int i = 0; i < m->param_list.count; i++) { // block 0 mixes nothing into its own v: unused
        const TensorView *t = &m->param_list.items[i];
        m->groups[i] = t->data && t->data == m->p.blocks[0].vr ? GROUP_UNUSED : group_of(t);
    }
    for (int l = 0; l < cfg->layers; l++) {
        const BlockTensors *b = &m->p.blocks[l];
        if (b->c_k != b->c_q + (size_t)gpt_q_rows(cfg) * cfg->dim || b->c_v != b->c_k + (size_t)cfg->kv_dim * cfg->dim)
            die("internal: block %d's c_q, c_k, c_v are not consecutive (the fused q/k/v product needs them so)", l);
        m->plain[l] = l;
    }
    gpt_set_recurrence(m, 1);
    register_host_scalars(m);
}

void gpt_set_recurrence(GPT *m, int on) {
    m->recur_on = on && m->cfg.looped_len > m->cfg.layers;
    m->order = m->recur_on ? m->cfg.looped : m->plain;
    m->n_order = m->recur_on ? m->cfg.looped_len : m->cfg.layers;
}

static void free_acts(Activations *a, int n_blocks) {
    if (!a->blocks) return;
    for (int v = 0; v < n_blocks; v++) {
        BlockActs *b = &a->blocks[v];
        ops_free(b->skip_sum); // one allocation per block, see ensure_acts
        matmul_input_free(&b->n1_r);
        matmul_input_free(&b->proj_r);
        matmul_input_free(&b->n2_r);
        matmul_input_free(&b->h_r);
        matmul_input_free(&b->h_pre_r);
        matmul_input_free(&b->att_out_r);
        matmul_input_free(&b->mlp_out_r);
        matmul_input_free(&b->raw_r);
        for (int i = 0; i < 3; i++) matmul_input_free(&b->qkv_r[i]);
    }
    matmul_input_free(&a->nf_r);
    matmul_input_free(&a->logits_r);
    RoundedInput *grads_r[] = {&a->dres_r, &a->dh_r, &a->dqkv_r, &a->dha_r, &a->datt_r, &a->dn_r, &a->dq_r, &a->dk_r};
    for (int i = 0; i < 8; i++) matmul_input_free(grads_r[i]);
    free(a->blocks);
    ops_free(a->emb);
    ops_free(a->backward_mem);
    free(a->bigram_ids);
    ops_free(a->bigram.e);
    ops_free(a->ve.e);
    memset(a, 0, sizeof *a);
}

void gpt_free(GPT *m) {
    free_acts(&m->acts, m->cfg.looped_len);
    ops_free(m->params);
    ops_free(m->grads);
    gpt_views_free(&m->param_list, &m->p);
    gpt_views_free(&m->grad_list, &m->g);
    free(m->groups);
    ops_free(m->rope_cos);
    ops_free(m->rope_sin);
    free(m->host_losses);
    memset(m, 0, sizeof *m);
}

void gpt_zero_grad(GPT *m) { ops_zero(m->grads, m->n_params); }

const real *gpt_token_losses(GPT *m) {
    size_t n = (size_t)m->acts.B * (m->acts.T - m->acts.score_from);
    m->host_losses = xrealloc(m->host_losses, sizeof(real) * (n ? n : 1));
    ops_to_host(m->host_losses, m->acts.losses, n);
    return m->host_losses;
}

void gpt_logits_row(const GPT *m, int64_t row, real *out) {
    const Activations *a = &m->acts;
    int V = m->cfg.vocab;
    if (a->logits) {
        ops_to_host(out, a->logits + (size_t)row * V, (size_t)V);
        return;
    }
    RoundedInput at_row = matmul_input_columns(&a->logits_r, (size_t)row * V); // only rounded (bf16 mode)
    matmul_input_values(a->logit_row, &at_row, 1, V, V);
    ops_to_host(out, a->logit_row, (size_t)V);
}

// ---------------------------------------------------------------- activations

static real *carve(real **cursor, size_t n) {
    real *p = *cursor;
    *cursor += (n + 15) & ~(size_t)15; // keep every view 64-byte aligned
    return p;
}

static size_t pad(size_t n) { return (n + 15) & ~(size_t)15; }

// One block for a projected embedding's activations and gradients (b->e owns it), of branch_values.
static size_t branch_values(size_t N, size_t width, size_t target) {
    return 2 * pad(N * width) + (width != target ? 2 * pad(N * target) : 0);
}

static void branch_alloc(BranchActs *b, size_t N, size_t width, size_t target) {
    int proj = width != target;
    real *cur = ops_alloc(branch_values(N, width, target));
    b->e = carve(&cur, N * width);
    b->de = carve(&cur, N * width);
    b->p = proj ? carve(&cur, N * target) : b->e;
    b->dp = proj ? carve(&cur, N * target) : b->de;
}

// The values ensure_acts allocates for N tokens: each virtual position's block, the embedding's and
// head's, the backward scratch, and the projected embeddings' (branch_alloc). In bf16 mode n1, qf, kf,
// att_out, h_pre, h_act, mlp_out, raw, dqkv, dq, dk and the logits exist only rounded (RoundedInput
// storage, allocated by the ops that write them: `rounded` estimates how many; bf16 on a GPU, floats
// in the CPU's bf16 mode, a parity aid).
typedef struct {
    size_t per_block, head, backward, branches, rounded;
} ActSizes;

static ActSizes act_sizes(const GPTConfig *c, size_t N) {
    size_t D = c->dim, KV = c->kv_dim, F = c->hidden, H = c->heads, HK = c->kv_heads, W = gpt_qkv_width(c), V = c->vocab;
    int fp32 = !ops_matmul_bf16();
    size_t lanes = c->lanes_from < c->layers ? pad(N * D) : 0;
    size_t G = c->attn_gates, gated = G ? pad(N * G) + pad(N * D) : 0, vr = c->value_residual ? pad(N * KV) : 0;
    size_t QKV = fp32 ? pad(N * W) : 0, FD = F > D ? F : D;
    ActSizes s;
    s.per_block = (6 + 4 * fp32) * pad(N * D) + (1 + fp32) * pad(N * KV) + 2 * fp32 * pad(N * F) + 3 * pad(N) + pad(N * H) * 2 +
                  QKV + pad(N * HK) + gated + vr + lanes;
    s.head = 5 * pad(N * D) + (fp32 ? pad(N * V) : pad(V)) + 3 * pad(N) + 2 * lanes;
    s.backward = (5 + fp32) * pad(N * D) + (3 + fp32) * pad(N * KV) + pad(N * FD) + (size_t)c->skips * pad(N * D) + QKV;
    s.branches = (c->bigram_buckets ? branch_values(N, c->bigram_dim, D) : 0) + (c->n_ve ? branch_values(N, c->ve_dim, KV) : 0);
    // the matmuls' rounded operands and outputs: per block n1, proj, n2, h, h_pre, att_out, mlp_out, raw,
    // q, k, v; the head's nf and logits; the gradients dres, dh, dqkv, dha, datt, dn, dq, dk
    s.rounded = ops_matmul_bf16() ? (size_t)c->looped_len * N * (6 * D + 2 * F + W + 2 * KV) + N * (D + V) +
                                        N * (5 * D + 2 * F + W + KV)
                                  : 0;
    return s;
}

size_t gpt_activation_bytes(const GPTConfig *c, int64_t tokens) {
    ActSizes s = act_sizes(c, (size_t)tokens);
    return sizeof(real) * ((size_t)c->looped_len * s.per_block + s.head + s.backward + s.branches) + 2 * s.rounded +
           sizeof(int32_t) * (size_t)tokens * (c->bigram_buckets ? 1 : 0);
}

static void ensure_acts(GPT *m, int B, int T) {
    const GPTConfig *c = &m->cfg;
    size_t N = (size_t)B * T, D = c->dim, KV = c->kv_dim, F = c->hidden, H = c->heads, HK = c->kv_heads;
    Activations *a = &m->acts;
    if (N > m->acts_tokens) {
        free_acts(a, c->looped_len);
        a->blocks = xcalloc((size_t)c->looped_len, sizeof(BlockActs)); // every virtual position
        ActSizes sizes = act_sizes(c, N);
        int fp32 = !ops_matmul_bf16(), lanes = c->lanes_from < c->layers;
        size_t G = c->attn_gates;
        for (int l = 0; l < c->looped_len; l++) {
            real *cur = ops_alloc(sizes.per_block);
            BlockActs *b = &a->blocks[l];
            b->skip_sum = carve(&cur, N * D);
            b->n1 = fp32 ? carve(&cur, N * D) : NULL;
            b->rstd1 = carve(&cur, N);
            b->qf = fp32 ? carve(&cur, N * D) : NULL;
            b->rstd_q = carve(&cur, N * H);
            b->kf = fp32 ? carve(&cur, N * KV) : NULL;
            b->rstd_k = carve(&cur, N * HK);
            b->v = carve(&cur, N * KV);
            b->att_y = carve(&cur, N * D);
            b->lse = carve(&cur, N * H);
            b->att_x = carve(&cur, N * D);
            b->att_out = fp32 ? carve(&cur, N * D) : NULL;
            b->n2 = carve(&cur, N * D);
            b->rstd2 = carve(&cur, N);
            b->h_pre = fp32 ? carve(&cur, N * F) : NULL;
            b->h_act = fp32 ? carve(&cur, N * F) : NULL;
            b->mlp_out = fp32 ? carve(&cur, N * D) : NULL;
            b->x_mid = carve(&cur, N * D);
            b->x_out = carve(&cur, N * D);
            b->gate = G ? carve(&cur, N * G) : NULL;
            b->att_g = G ? carve(&cur, N * D) : NULL;
            b->v_raw = c->value_residual ? carve(&cur, N * KV) : NULL;
            b->lane = lanes ? carve(&cur, N * D) : NULL;
            b->raw = fp32 ? carve(&cur, N * gpt_qkv_width(c)) : NULL;
        }
        size_t V = c->vocab;
        real *cur = ops_alloc(sizes.head);
        a->emb = cur; // owns the block
        carve(&cur, N * D);
        a->emb_rstd = carve(&cur, N);
        a->emb_n = carve(&cur, N * D);
        a->x0 = carve(&cur, N * D);
        a->nf = carve(&cur, N * D);
        a->rstd_f = carve(&cur, N);
        a->logits = fp32 ? carve(&cur, N * V) : NULL; // in bf16 mode only rounded, in logits_r
        a->logit_row = fp32 ? NULL : carve(&cur, V);
        a->losses = carve(&cur, N);
        a->lane_x = lanes ? carve(&cur, N * D) : NULL;
        a->dl1 = lanes ? carve(&cur, N * D) : NULL;
        // backward scratch; dskip holds one gradient per U-Net skip
        size_t FD = F > D ? F : D;
        cur = ops_alloc(sizes.backward);
        a->backward_mem = cur;
        a->dx = carve(&cur, N * D);
        a->dx0 = carve(&cur, N * D);
        a->dres = carve(&cur, N * D);
        a->dn = carve(&cur, N * D);
        a->dq = fp32 ? carve(&cur, N * D) : NULL; // dq, dk: in bf16 mode only rounded
        a->datt = carve(&cur, N * D);
        a->dk = fp32 ? carve(&cur, N * KV) : NULL;
        a->dv = carve(&cur, N * KV);
        a->dv_xsa = carve(&cur, N * KV);
        a->dv0 = carve(&cur, N * KV);
        a->dh = carve(&cur, N * FD);
        a->dskip = carve(&cur, (size_t)c->skips * N * D);
        a->dqkv = fp32 ? carve(&cur, N * gpt_qkv_width(c)) : NULL;
        if (c->bigram_buckets) {
            a->bigram_ids = xmalloc(sizeof(int32_t) * N);
            branch_alloc(&a->bigram, N, c->bigram_dim, D);
        }
        if (c->n_ve) branch_alloc(&a->ve, N, c->ve_dim, KV);
        m->acts_tokens = N;
    }
    a->B = B;
    a->T = T;
    // The tables of a longer sequence serve shorter ones, except under NTK scaling, where the base
    // itself depends on T (#638's Rotary recomputes them for every new length).
    int ntk = c->rope_train_seq_len > 0 && (T > c->rope_train_seq_len || m->rope_T > c->rope_train_seq_len);
    if (T > m->rope_T || (ntk && T != m->rope_T)) {
        ops_free(m->rope_cos);
        ops_free(m->rope_sin);
        m->rope_cos = ops_alloc((size_t)T * c->rope_dims / 2);
        m->rope_sin = ops_alloc((size_t)T * c->rope_dims / 2);
        double base = c->rope_base, rd = c->rope_dims;
        if (c->rope_train_seq_len > 0 && T > c->rope_train_seq_len && rd > 2)
            base *= pow((double)T / c->rope_train_seq_len, rd / (rd - 2));
        size_t nt = (size_t)T * c->rope_dims / 2;
        real *cs = xmalloc(sizeof(real) * 2 * nt);
        rope_tables(cs, cs + nt, T, c->rope_dims, base, c->rope_bf16);
        ops_from_host(m->rope_cos, cs, nt);
        ops_from_host(m->rope_sin, cs + nt, nt);
        free(cs);
        m->rope_T = T;
    }
}

// ---------------------------------------------------------------- forward

// LN_SCALE (#638): block l's normed attention and MLP inputs are multiplied by 1/sqrt(l + 1).
static real block_ln_scale(const GPTConfig *c, int l) { return c->ln_scale ? (real)(1.0 / sqrt(l + 1.0)) : 1; }

// VALUE_RESIDUAL as value_mix coefficients (v, v0): #413/#638 v = vr_lambda[0] v0 + vr_lambda[1] v;
// the sigmoid form (2026-03-25_ValCalib record) v = v + sigmoid(vrl_alpha) v0.
static const real *value_lambdas(const GPT *m, const BlockTensors *w, real lam[2]) {
    if (m->cfg.value_residual == VR_SCALAR) {
        lam[0] = scalar(m, w->vr + 1);
        lam[1] = scalar(m, w->vr);
    } else {
        lam[0] = 1;
        lam[1] = (real)(1.0 / (1.0 + exp(-(double)scalar(m, w->vr))));
    }
    return lam;
}

// VE at layer l: v += ve_layer_scales[k] * ve_shared.scale * proj(embed[ids])
static real ve_coef(const GPT *m, int l) {
    return scalar(m, m->p.ve_layer_scales + m->cfg.ve_slot[l]) * scalar(m, m->p.ve.scale);
}

// b->p = proj(embed[ids]) (b->p is b->e without a projection); the scale is applied by the caller.
static void branch_forward(const BranchTensors *t, BranchActs *b, const int32_t *ids, int N, int width, int target) {
    embedding_forward(b->e, ids, t->embed, N, width);
    if (t->proj) matmul_forward(b->p, b->e, NULL, t->proj, N, width, target, NULL);
}

// From b->dp = dL/d(proj(embed[ids])): the projection's and the table's gradients.
static void branch_backward(const BranchTensors *t, BranchTensors *g, BranchActs *b, const int32_t *ids, int N, int width,
                            int target) {
    if (t->proj) matmul_backward(b->de, g->proj, b->dp, NULL, b->e, NULL, t->proj, N, width, target, 0, NULL);
    embedding_backward(g->embed, b->de, ids, N, width);
}

// Results whose readers all take their RoundedInput exist in bf16 mode only rounded: the fp32 values are
// not written, and the buffer is NULL, so a reader of them fails instead of seeing stale values. Those
// that only such results use are not allocated in bf16 mode: n1 (the block's first norm; its backward
// recomputes it), qf, kf (the prepared q and k), att_out, mlp_out (the projections' outputs), h_pre,
// h_act (the MLP's pre-activation and activation), raw, dqkv (the fused q/k/v projection's output and
// its gradient), dq, dk (the attention's). Buffers that also serve in fp32 elsewhere are passed through
// this: the attention's output att_y in plain layers (gpt_attn_plain), v where only the attention reads
// it (attention_v), and the backward's dres, dh, datt and dn (the gradients of the projections'
// outputs, of the MLP's hidden tensors, of a plain attention output and of the norms' outputs).
static real *only_rounded(real *x) { return ops_matmul_bf16() ? NULL : x; }

// x's values from column col on (a column block of a wider matrix), or NULL where x exists only rounded
static real *columns_from(real *x, int col) { return x ? x + col : NULL; }

// Whether only the attention reads v at position v (no value embedding, value residual or XSA there).
static int v_attention_only(const GPT *m, int v) {
    int l = m->order[v];
    return m->cfg.ve_slot[l] < 0 && !m->cfg.value_residual && l < m->cfg.xsa_from;
}

// The attention's v at position v (*v_in) and its q, k, v rounded (qkv); returns v's row stride. Where
// only the attention reads v, v is the fused product's column block itself, read in place (its rows the
// product's apart; in bf16 mode only rounded, a column view of raw_r), and the backward writes dv into the
// product's gradient the same way; elsewhere s->v with s->qkv_r[2].
static int attention_inputs(const GPT *m, int v, const real **v_in, RoundedInput qkv[3]) {
    const GPTConfig *c = &m->cfg;
    const BlockActs *s = &m->acts.blocks[v];
    qkv[0] = s->qkv_r[0], qkv[1] = s->qkv_r[1];
    if (!v_attention_only(m, v)) {
        *v_in = s->v, qkv[2] = s->qkv_r[2];
        return c->kv_dim;
    }
    int col = gpt_q_rows(c) + c->kv_dim;
    *v_in = columns_from(s->raw, col);
    qkv[2] = matmul_input_columns(&s->raw_r, (size_t)col);
    return gpt_qkv_width(c);
}

// The MLP's norm n2 at position v: in a serial block only rounded in bf16 mode (its backward recomputes
// it from x_mid), else kept (parallel blocks and lanes: rmsnorm_backward reads it).
static real *mlp_norm(const GPT *m, int v, int serial) {
    real *n2 = m->acts.blocks[v].n2;
    return serial ? only_rounded(n2) : n2;
}

// x_in -> x_out of the block at virtual position v (physical layer l = order[v]). x0 is the normed
// embedding every block mixes back in. Serial: x += attn(norm(x)); x += mlp(norm(x)). Parallel (GPT-J,
// from PARALLEL_RESIDUAL_START): both read norm(x) of the same x and both outputs are added. Lanes
// (#1435, lane_in != NULL): x_out = x + attn(norm(x)) is the attention lane; the MLP lane is
// s->lane = lane_in + mlp(norm(lane_in)), with no x0 mix.
static void block_forward(GPT *m, int v, const real *x0, const real *lane_in) {
    const GPTConfig *c = &m->cfg;
    int l = m->order[v];
    const BlockTensors *w = &m->p.blocks[l];
    BlockActs *s = &m->acts.blocks[v];
    int B = m->acts.B, T = m->acts.T, N = B * T, D = c->dim, KV = c->kv_dim, parallel = l >= c->parallel_from;
    int serial = !parallel && !lane_in;
    // the residual stream inside the block: x_out itself, or, serial, x_mid (the stream after the
    // attention's add, kept: the MLP norm's backward recomputes n2 from it, so in bf16 mode n2 exists
    // only rounded) and x_out = x_mid + mlp_scale * mlp_out
    real *xm = serial ? s->x_mid : s->x_out, *n2 = mlp_norm(m, v, serial);
    real ln = block_ln_scale(c, l);
    resid_mix_rmsnorm_forward(xm, s->x_in, x0, w->resid_mix, N, D, s->n1, s->rstd1, NORM_EPS, ln, &s->n1_r);
    if (parallel && !lane_in) rmsnorm_forward(s->n2, s->rstd2, xm, N, D, NORM_EPS, ln, &s->n2_r);
    if (lane_in) rmsnorm_forward(s->n2, s->rstd2, lane_in, N, D, NORM_EPS, ln, &s->n2_r);
    // q, the gate rows' logits (GATED_ATTN), k and v in one product: each token's [q | z | k | v] in s->raw
    // (in bf16 mode only rounded, in s->raw_r); qk_prep reads q and k from it (and again in the backward,
    // instead of a saved normed copy), and its outputs only the attention reads (through qkv_r)
    int Q = gpt_q_rows(c), W = gpt_qkv_width(c);
    real *raw = s->raw;
    RoundedInput *raw_r = &s->raw_r;
    matmul_forward(raw, s->n1, &s->n1_r, w->c_q, N, D, W, raw_r); // (views of raw_r only after it holds raw)
    RoundedInput q_raw = matmul_input_columns(raw_r, 0), k_raw = matmul_input_columns(raw_r, Q),
                 v_raw = matmul_input_columns(raw_r, Q + KV);
    qk_prep_forward(s->qf, s->rstd_q, raw, &q_raw, W, w->q_gain, m->rope_cos, m->rope_sin, B, T, c->heads, c->head_dim,
                    c->rope_dims, NORM_EPS, &s->qkv_r[0]);
    qk_prep_forward(s->kf, s->rstd_k, columns_from(raw, Q), &k_raw, W, NULL, m->rope_cos, m->rope_sin, B, T,
                    c->kv_heads, c->head_dim, c->rope_dims, NORM_EPS, &s->qkv_r[1]);
    int mix_v = c->value_residual && v > 0; // the first block's own v is v0
    if (!v_attention_only(m, v)) { // v widened from the product for VE, value residual and XSA
        matmul_input_values(mix_v ? s->v_raw : s->v, &v_raw, N, KV, W);
        if (c->ve_slot[l] >= 0) axpy_forward(mix_v ? s->v_raw : s->v, ve_coef(m, l), m->acts.ve.p, (size_t)N * KV); // + VE
        real lam[2];
        if (mix_v) value_mix_forward(s->v, s->v_raw, m->acts.blocks[0].v, value_lambdas(m, w, lam), (size_t)N * KV);
        matmul_input_round(&s->qkv_r[2], s->v, (size_t)N * KV);
    }
    int plain = gpt_attn_plain(m, v); // the output goes straight into the projection's rounded input
    const real *v_in;
    RoundedInput qkv[3];
    int ldv = attention_inputs(m, v, &v_in, qkv);
    attention_forward(plain ? only_rounded(s->att_y) : s->att_y, s->lse, s->qf, s->kf, v_in, qkv, B, T, c->heads, c->kv_heads,
                      c->head_dim, ldv, plain ? &s->proj_r : NULL);
    if (l >= c->xsa_from) xsa_forward(s->att_x, s->att_y, s->v, N, c->heads, c->kv_heads, c->head_dim);
    if (c->attn_gates) { // gate logits from the attention's input (the fused product's, or attn_gate's), in place into s->gate
        RoundedInput z = matmul_input_columns(raw_r, D);
        if (c->gate_in_q) matmul_input_values(s->gate, &z, N, c->attn_gates, W);
        else matmul_forward(s->gate, s->n1, &s->n1_r, w->attn_gate_w, N, D, c->attn_gates, NULL);
        attn_gate_forward(s->att_g, s->gate, gpt_attn_output(m, v), s->gate, w->attn_gate_b, N, c->heads, c->head_dim,
                          c->attn_gates, 1);
    }
    if (!plain) matmul_input_round(&s->proj_r, gpt_proj_input(m, v), (size_t)N * D);
    matmul_forward(s->att_out, gpt_proj_input(m, v), &s->proj_r, w->attn_proj, N, D, D, &s->att_out_r);
    if (serial) // x_mid = xm + attn_scale * att_out, and the MLP's norm of x_mid
        scaled_add_rmsnorm_forward(xm, w->attn_scale, s->att_out, &s->att_out_r, N, D, n2, s->rstd2, NORM_EPS, ln, &s->n2_r);
    else if (lane_in)
        scaled_add_forward(xm, xm, w->attn_scale, s->att_out, &s->att_out_r, N, D);
    matmul_forward(s->h_pre, n2, &s->n2_r, w->fc, N, D, c->hidden, &s->h_pre_r);
    relu2_forward(s->h_act, s->h_pre, &s->h_pre_r, (size_t)N * c->hidden, (real)c->negative_slope, &s->h_r);
    matmul_forward(s->mlp_out, s->h_act, &s->h_r, w->mlp_proj, N, c->hidden, D, &s->mlp_out_r);
    if (parallel && !lane_in) scaled_add_forward(xm, xm, w->attn_scale, s->att_out, &s->att_out_r, N, D);
    if (lane_in) scaled_add_forward(s->lane, lane_in, w->mlp_scale, s->mlp_out, &s->mlp_out_r, N, D);
    else scaled_add_forward(s->x_out, xm, w->mlp_scale, s->mlp_out, &s->mlp_out_r, N, D);
}

// U-Net over the current order: the first half (enc) push their outputs; decoder position j takes
// the output of encoder position enc-1-j while j < skip rows and outputs remain.
static int unet_enc(const GPT *m) { return m->n_order / 2; }
static int unet_skips(const GPT *m) { return unet_enc(m) < m->cfg.skips ? unet_enc(m) : m->cfg.skips; }
// #1435's lanes start at the first decoder position whose layer is >= PARALLEL_START_LAYER (n_order: never).
// Later skip merges would write into a stream the lane merge discards, so they are not run.
static int lanes_start(const GPT *m) {
    for (int v = unet_enc(m); v < m->n_order; v++)
        if (m->order[v] >= m->cfg.lanes_from) return v;
    return m->n_order;
}

static const real *head_weight(const GPT *m) { return m->cfg.tied ? m->p.tok_emb : m->p.lm_head; }

double gpt_forward(GPT *m, const int32_t *x, const int32_t *targets, int B, int T) {
    return gpt_forward_scored(m, x, targets, B, T, 0);
}

// The forward up to the final norm: embeddings, the blocks and the lanes' merge; returns the final norm's
// input [B*T, D].
static const real *forward_trunk(GPT *m, const int32_t *x, const int32_t *targets, int B, int T) {
    const GPTConfig *c = &m->cfg;
    ensure_acts(m, B, T);
    read_host_scalars(m);
    Activations *a = &m->acts;
    int N = B * T, D = c->dim;
    size_t ND = (size_t)N * D;
    a->targets = targets;
    embedding_forward(a->emb, x, m->p.tok_emb, N, D);
    if (c->bigram_buckets) { // + scale * proj(bigram_embed[hash(prev, cur)]), before the norm
        bigram_hash(a->bigram_ids, x, B, T, c->bigram_buckets);
        branch_forward(&m->p.bigram, &a->bigram, a->bigram_ids, N, c->bigram_dim, D);
        axpy_forward(a->emb, scalar(m, m->p.bigram.scale), a->bigram.p, ND);
    }
    if (c->smear) {
        rmsnorm_forward(a->emb_n, a->emb_rstd, a->emb, N, D, NORM_EPS, 1, NULL);
        smear_forward(a->x0, a->emb_n, m->p.smear_gate, B, T, D);
    } else {
        rmsnorm_forward(a->x0, a->emb_rstd, a->emb, N, D, NORM_EPS, 1, NULL);
    }
    if (c->n_ve) branch_forward(&m->p.ve, &a->ve, x, N, c->ve_dim, c->kv_dim); // once, for every VE layer
    const real *prev = a->x0;
    int enc = unet_enc(m), skips = unet_skips(m), lanes_at = lanes_start(m);
    for (int v = 0; v < m->n_order; v++) {
        BlockActs *s = &a->blocks[v];
        s->x_in = prev; // saved outputs stay untouched until the backward, so no copy
        int dec = v - enc;
        if (dec >= 0 && dec < skips && v <= lanes_at) { // decoder position j adds encoder position enc-1-j's output
            const real *skip = a->blocks[enc - 1 - dec].x_out, *sw = m->p.skip_weights + (size_t)dec * D;
            if (c->skip_gates) {
                skip_lerp_forward(s->skip_sum, prev, skip, sw, m->p.skip_gates + (size_t)dec * D, N, D);
            } else {
                scaled_add_forward(s->skip_sum, prev, sw, skip, NULL, N, D);
            }
            s->x_in = s->skip_sum;
        }
        const real *lane_in = v < lanes_at ? NULL : v == lanes_at ? s->x_in : a->blocks[v - 1].lane;
        block_forward(m, v, a->x0, lane_in);
        prev = s->x_out;
    }
    if (lanes_at < m->n_order) { // x = lane_merge * attention lane + (1 - lane_merge) * MLP lane
        real merge = scalar(m, m->p.lane_merge), lam[2] = {merge, 1 - merge};
        value_mix_forward(a->lane_x, prev, a->blocks[m->n_order - 1].lane, lam, ND);
        prev = a->lane_x;
    }
    return prev;
}

void gpt_forward_hidden(GPT *m, const int32_t *x, int B, int T) {
    Activations *a = &m->acts;
    const real *prev = forward_trunk(m, x, NULL, B, T);
    a->score_from = T; // no head: neither losses, logits nor a backward
    rmsnorm_forward(a->nf, a->rstd_f, prev, B * T, m->cfg.dim, NORM_EPS, 1, &a->nf_r);
}

double gpt_forward_scored(GPT *m, const int32_t *x, const int32_t *targets, int B, int T, int score_from) {
    const GPTConfig *c = &m->cfg;
    if (score_from < 0 || score_from >= T) die("internal: scoring from position %d of %d", score_from, T);
    const real *prev = forward_trunk(m, x, targets, B, T);
    Activations *a = &m->acts;
    int N = B * T, D = c->dim;
    // the head over each sequence's scored rows, normed into consecutive rows of nf (all of them, kept
    // rounded for the backward, when every position scores)
    a->score_from = score_from;
    int S = T - score_from, M = B * S;
    if (score_from == 0) rmsnorm_forward(a->nf, a->rstd_f, prev, N, D, NORM_EPS, 1, &a->nf_r);
    for (int b = 0; score_from && b < B; b++)
        rmsnorm_forward(a->nf + (size_t)b * S * D, a->rstd_f + (size_t)b * S, prev + ((size_t)b * T + score_from) * D, S, D,
                        NORM_EPS, 1, NULL);
    matmul_forward(a->logits, a->nf, score_from ? NULL : &a->nf_r, head_weight(m), M, D, c->vocab, &a->logits_r);
    if (!targets) return 0;
    int32_t *scored = score_from ? xmalloc(sizeof(int32_t) * (size_t)M) : NULL;
    for (int b = 0; scored && b < B; b++)
        memcpy(scored + (size_t)b * S, targets + (size_t)b * T + score_from, sizeof(int32_t) * (size_t)S);
    softcap_xent_forward(a->losses, a->logits, &a->logits_r, scored ? scored : targets, M, c->vocab, (real)c->softcap);
    free(scored);
    return sum_values(a->losses, (size_t)M) / M;
}

int64_t gpt_pass_token_cap(const GPTConfig *c, int64_t max_pass_tokens, PassKind kind) {
    if (max_pass_tokens > 0) return max_pass_tokens;
    double per_token = (double)gpt_activation_bytes(c, 4096) / 4096; // the buffers' padding spread thin
    int64_t cap = (int64_t)((double)ops_activation_budget(kind) / per_token);
    return cap > 0 ? cap : 1;
}

int gpt_pass_seqs(int seqs, int T, int64_t cap) {
    if (cap <= 0) return seqs;
    for (int per = seqs; per > 1; per--)
        if (seqs % per == 0 && (int64_t)per * T <= cap) return per;
    return 1;
}

double gpt_train_batch(GPT *m, const int32_t *x, const int32_t *y, int B, int T, int pass_seqs, real loss_scale) {
    if (pass_seqs < 1 || B % pass_seqs) die("internal: %d sequences in passes of %d", B, pass_seqs);
    int passes = B / pass_seqs;
    double loss = 0;
    for (int p = 0; p < passes; p++) { // equal passes: the batch's mean is the mean of theirs
        size_t at = (size_t)p * pass_seqs * T;
        loss += gpt_forward(m, x + at, y + at, pass_seqs, T);
        gpt_backward(m, x + at, loss_scale / (real)passes);
    }
    return loss / passes;
}

// ---------------------------------------------------------------- backward

// On entry a->dx holds dL/d(x_out) of the block at virtual position v; on exit dL/d(x_in). dx0 accumulates,
// and the physical layer's parameter gradients accumulate over its positions. In lanes mode a->dl1 holds
// dL/d(s->lane) on entry and dL/d(lane_in) on exit.
static void block_backward(GPT *m, int v, int lanes) {
    const GPTConfig *c = &m->cfg;
    int l = m->order[v];
    const BlockTensors *w = &m->p.blocks[l];
    BlockTensors *g = &m->g.blocks[l];
    BlockActs *s = &m->acts.blocks[v];
    Activations *a = &m->acts;
    int B = a->B, T = a->T, N = B * T, D = c->dim, KV = c->kv_dim, F = c->hidden, parallel = l >= c->parallel_from;
    int serial = !parallel && !lanes;
    real *dmlp = lanes ? a->dl1 : a->dx; // the gradient of the stream the MLP output is added to
    real *dres = only_rounded(a->dres); // the projections' output gradient, read only by their matmuls
    // x_out = x_mid + mlp_scale * mlp_out; dx stays the gradient of the residual stream
    scaled_add_backward(dres, g->mlp_scale, dmlp, w->mlp_scale, s->mlp_out, &s->mlp_out_r, N, D, 0, &a->dres_r);
    real *dh = only_rounded(a->dh); // d(h_act), then (written over it) d(h_pre)
    matmul_backward(dh, g->mlp_proj, dres, &a->dres_r, s->h_act, &s->h_r, w->mlp_proj, N, F, D, 0, &a->dha_r);
    real ln = block_ln_scale(c, l);
    relu2_backward(dh, dh, &a->dha_r, s->h_pre, &s->h_pre_r, (size_t)N * F, (real)c->negative_slope, &a->dh_r);
    real *dn = only_rounded(a->dn); // the norms' output gradients, read only by their backward (in dn_r)
    matmul_backward(dn, g->fc, dh, &a->dh_r, mlp_norm(m, v, serial), &s->n2_r, w->fc, N, D, F, 0, &a->dn_r);
    if (!serial) { // the attention output adds to x_out itself: take its gradient before the MLP's norm path
        scaled_add_backward(dres, g->attn_scale, a->dx, w->attn_scale, s->att_out, &s->att_out_r, N, D, 0, &a->dres_r);
        rmsnorm_backward(dmlp, dn, &a->dn_r, s->n2, s->rstd2, N, D, ln, 1);
    } else { // x_mid = xm + attn_scale * att_out; the norm recomputed from x_mid
        scaled_add_rmsnorm_backward(a->dx, dres, g->attn_scale, dn, &a->dn_r, s->x_mid, s->rstd2, w->attn_scale, s->att_out,
                                    &s->att_out_r, N, D, ln, &a->dres_r);
    }
    // the attention output's gradient: only rounded where only the attention's backward reads it (plain, as
    // its output in the forward), else fp32 (XSA and the gate rewrite it in place)
    int plain = gpt_attn_plain(m, v);
    real *datt = plain ? only_rounded(a->datt) : a->datt, *att_y = plain ? only_rounded(s->att_y) : s->att_y;
    matmul_backward(datt, g->attn_proj, dres, &a->dres_r, gpt_proj_input(m, v), &s->proj_r, w->attn_proj, N, D, D, 0,
                    plain ? &a->datt_r : NULL);
    if (c->attn_gates) // gate-logit gradients wait in dh until the input gradient dn is formed below
        attn_gate_backward(a->datt, a->dh, g->attn_gate_b, a->datt, gpt_attn_output(m, v), s->gate, N, c->heads,
                           c->head_dim, c->attn_gates, 1);
    int xsa = l >= c->xsa_from;
    if (xsa) xsa_backward(a->datt, a->dv_xsa, s->att_y, s->v, N, c->heads, c->kv_heads, c->head_dim);
    // the fused projection's output gradient [dq | dz | dk | dv] (as block_forward's raw), one column block
    // per op, then its two products (in bf16 mode only rounded, in dqkv_r)
    int Q = gpt_q_rows(c), W = gpt_qkv_width(c);
    real *dqkv = a->dqkv;
    matmul_input_hold(&a->dqkv_r, dqkv, (size_t)N * W);
    RoundedInput dq_c = matmul_input_columns(&a->dqkv_r, 0), dz_c = matmul_input_columns(&a->dqkv_r, D),
                 dk_c = matmul_input_columns(&a->dqkv_r, Q), dv_c = matmul_input_columns(&a->dqkv_r, Q + KV);
    const real *v_in;
    RoundedInput qkv[3];
    int ldv = attention_inputs(m, v, &v_in, qkv), v_only = v_attention_only(m, v);
    real *dv = v_only ? columns_from(dqkv, Q + KV) : a->dv; // v read in place: dv written in place
    attention_backward(a->dq, a->dk, dv, datt, plain ? &a->datt_r : NULL, att_y, plain ? &s->proj_r : NULL, s->lse, s->qf,
                       s->kf, v_in, qkv, B, T, c->heads, c->kv_heads, c->head_dim, ldv, &a->dq_r, &a->dk_r,
                       v_only ? &dv_c : NULL);
    if (xsa) add_inplace(a->dv, a->dv_xsa, (size_t)N * KV);
    if (c->value_residual && v > 0) { // dv: d(mixed v) -> d(own v); dv0 collects the first block's share
        real lam[2];
        double dl[2];
        value_mix_backward(a->dv, a->dv0, dl, a->dv, s->v_raw, a->blocks[0].v, value_lambdas(m, w, lam), (size_t)N * KV);
        if (c->value_residual == VR_SCALAR) {
            add_scalar(m, g->vr, dl[1]);
            add_scalar(m, g->vr + 1, dl[0]);
        } else {
            add_scalar(m, g->vr, dl[1] * lam[1] * (1 - lam[1]));
        }
    } else if (c->value_residual) {
        add_inplace(a->dv, a->dv0, (size_t)N * KV);
    }
    if (c->ve_slot[l] >= 0) { // dv is d(c_v(x) + VE) here; dv_xsa is free scratch
        int k = c->ve_slot[l];
        double dcoef = axpy_backward(a->dv_xsa, a->dv, ve_coef(m, l), a->ve.p, (size_t)N * KV);
        add_inplace(a->ve.dp, a->dv_xsa, (size_t)N * KV);
        add_scalar(m, m->g.ve_layer_scales + k, dcoef * scalar(m, m->p.ve.scale));
        add_scalar(m, m->g.ve.scale, dcoef * scalar(m, m->p.ve_layer_scales + k));
    }
    RoundedInput q_raw = matmul_input_columns(&s->raw_r, 0), k_raw = matmul_input_columns(&s->raw_r, Q);
    qk_prep_backward(dqkv, W, g->q_gain, a->dq, &a->dq_r, s->raw, &q_raw, W, s->rstd_q, w->q_gain, m->rope_cos, m->rope_sin,
                     B, T, c->heads, c->head_dim, c->rope_dims, &dq_c);
    qk_prep_backward(columns_from(dqkv, Q), W, NULL, a->dk, &a->dk_r, columns_from(s->raw, Q), &k_raw, W, s->rstd_k, NULL,
                     m->rope_cos, m->rope_sin, B, T, c->kv_heads, c->head_dim, c->rope_dims, &dk_c);
    if (!v_only) copy_into_columns(columns_from(dqkv, Q + KV), W, a->dv, N, KV, &dv_c);
    if (c->gate_in_q) copy_into_columns(columns_from(dqkv, D), W, a->dh, N, c->attn_gates, &dz_c);
    matmul_backward(dn, g->c_q, dqkv, &a->dqkv_r, s->n1, &s->n1_r, w->c_q, N, D, W, 0, &a->dn_r);
    if (c->attn_gates && !c->gate_in_q)
        matmul_backward(dn, g->attn_gate_w, a->dh, NULL, s->n1, &s->n1_r, w->attn_gate_w, N, D, c->attn_gates, 1, &a->dn_r);
    // n1 = norm(xm), xm = mix[0] * x_in + mix[1] * x0 (recomputed: in bf16 mode n1 exists only rounded)
    rmsnorm_resid_mix_backward(a->dres, a->dx0, g->resid_mix, dn, &a->dn_r, a->dx, s->x_in, a->x0, w->resid_mix, s->rstd1, N, D,
                               ln);
    real *dx_in = a->dres; // dres holds dL/d(x_in): the buffers trade roles instead of copying
    a->dres = a->dx, a->dx = dx_in;
}

void gpt_backward(GPT *m, const int32_t *x, real loss_scale) {
    const GPTConfig *c = &m->cfg;
    Activations *a = &m->acts;
    if (a->score_from) die("internal: gpt_backward after a forward that scored only positions from %d", a->score_from);
    int N = a->B * a->T, D = c->dim;
    size_t ND = (size_t)N * D;
    // head: logits = nf W^T, loss = softcap cross-entropy (the logits are overwritten by their gradient)
    softcap_xent_backward(a->logits, &a->logits_r, a->logits, &a->logits_r, a->targets, N, c->vocab, (real)c->softcap,
                          loss_scale / (real)N);
    real *dW = c->tied ? m->g.tok_emb : m->g.lm_head;
    real *dn = only_rounded(a->dn);
    matmul_backward(dn, dW, a->logits, &a->logits_r, a->nf, &a->nf_r, head_weight(m), N, D, c->vocab, 0, &a->dn_r);
    rmsnorm_backward(a->dx, dn, &a->dn_r, a->nf, a->rstd_f, N, D, 1, 0);
    ops_zero(a->dx0, ND);
    if (c->value_residual) ops_zero(a->dv0, (size_t)N * c->kv_dim);
    if (c->n_ve) ops_zero(a->ve.dp, (size_t)N * c->kv_dim);
    ops_zero(a->dskip, (size_t)c->skips * ND);
    int enc = unet_enc(m), skips = unet_skips(m), lanes_at = lanes_start(m);
    if (lanes_at < m->n_order) { // the lane merge: dx -> d(attention lane), dl1 = d(MLP lane)
        real merge = scalar(m, m->p.lane_merge), lam[2] = {merge, 1 - merge};
        double dl[2];
        ops_zero(a->dl1, ND);
        value_mix_backward(a->dx, a->dl1, dl, a->dx, a->blocks[m->n_order - 1].x_out, a->blocks[m->n_order - 1].lane, lam, ND);
        add_scalar(m, m->g.lane_merge, dl[0] - dl[1]);
    }
    for (int v = m->n_order - 1; v >= 0; v--) {
        int enc_skip = enc - 1 - v; // encoder position v feeds decoder position enc_skip's skip
        if (v < enc && enc_skip < skips) add_inplace(a->dx, a->dskip + (size_t)enc_skip * ND, ND);
        block_backward(m, v, v >= lanes_at);
        if (v == lanes_at) add_inplace(a->dx, a->dl1, ND); // both lanes start from this block's input
        int dec = v - enc;
        if (dec >= 0 && dec < skips && v <= lanes_at) {
            const real *skip = a->blocks[enc - 1 - dec].x_out, *sw = m->p.skip_weights + (size_t)dec * D;
            real *dskip = a->dskip + (size_t)dec * ND, *dsw = m->g.skip_weights + (size_t)dec * D;
            if (c->skip_gates)
                skip_lerp_backward(a->dx, dskip, dsw, m->g.skip_gates + (size_t)dec * D, a->dx, a->blocks[v - 1].x_out, skip,
                                   sw, m->p.skip_gates + (size_t)dec * D, N, D);
            else
                scaled_add_backward(dskip, dsw, a->dx, sw, skip, NULL, N, D, 0, NULL);
        }
    }
    add_inplace(a->dx0, a->dx, ND); // block 0's input is x0 itself
    if (c->smear) {
        smear_backward(a->dn, m->g.smear_gate, a->dx0, a->emb_n, m->p.smear_gate, a->B, a->T, D);
        rmsnorm_backward(a->dx0, a->dn, NULL, a->emb_n, a->emb_rstd, N, D, 1, 0);
        ops_copy(a->dn, a->dx0, ND);
    } else {
        rmsnorm_backward(a->dn, a->dx0, NULL, a->x0, a->emb_rstd, N, D, 1, 0);
    }
    embedding_backward(m->g.tok_emb, a->dn, x, N, D);
    if (c->n_ve) branch_backward(&m->p.ve, &m->g.ve, &a->ve, x, N, c->ve_dim, c->kv_dim);
    if (c->bigram_buckets) {
        add_scalar(m, m->g.bigram.scale, axpy_backward(a->bigram.dp, a->dn, scalar(m, m->p.bigram.scale), a->bigram.p, ND));
        branch_backward(&m->p.bigram, &m->g.bigram, &a->bigram, a->bigram_ids, N, c->bigram_dim, D);
    }
    flush_scalar_grads(m);
}

// The initial weights of train_gpt.py and of the records: nn.Linear's kaiming-uniform or, with
// ORTHO_INIT, orthogonal matrices; zero output projections; the records' constants for the extras.
// Every value is rounded to bf16 as the reference's model.bfloat16() does.
#include <math.h>
#include <stdlib.h>

#include "model/gpt.h"
#include "ops/ops.h"
#include "util.h"

static void fill_uniform(real *p, size_t n, double bound, Rng *r) {
    for (size_t i = 0; i < n; i++) p[i] = bf16_round((float)((2 * rng_uniform(r) - 1) * bound));
}

static void fill_normal(real *p, size_t n, double std, Rng *r) {
    for (size_t i = 0; i < n; i++) p[i] = bf16_round((float)(rng_normal(r) * std));
}

static void fill_const(real *p, size_t n, real v) {
    for (size_t i = 0; i < n; i++) p[i] = v;
}

// OrthoInit (#413's _init_weights): every nn.Linear without _zero_init whose dims are both >= 64.
static int ortho_applies(const GPTConfig *c, int rows, int cols) { return c->ortho_init && rows >= 64 && cols >= 64; }

// torch.nn.init.orthogonal_ times gain (rounded once, as the reference scales in fp32 before its
// bf16 cast): a Haar-random matrix with orthonormal rows (rows <= cols) or
// columns. The normal draws are orthonormalised by modified Gram-Schmidt in double, run twice for
// full precision; torch's QR with sign correction gives the same distribution.
static void fill_orthogonal(real *w, int rows, int cols, double gain, Rng *r) {
    int tall = rows > cols, n = tall ? cols : rows, len = tall ? rows : cols; // n vectors of length len
    double *v = xmalloc(sizeof(double) * (size_t)n * len);
    for (size_t i = 0; i < (size_t)n * len; i++) v[i] = rng_normal(r);
    for (int i = 0; i < n; i++) {
        double *vi = v + (size_t)i * len;
        for (int pass = 0; pass < 2; pass++)
            for (int j = 0; j < i; j++) {
                const double *vj = v + (size_t)j * len;
                double d = 0;
                for (int k = 0; k < len; k++) d += vi[k] * vj[k];
                for (int k = 0; k < len; k++) vi[k] -= d * vj[k];
            }
        double norm = 0;
        for (int k = 0; k < len; k++) norm += vi[k] * vi[k];
        norm = sqrt(norm);
        for (int k = 0; k < len; k++) vi[k] /= norm;
    }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < len; k++) {
            size_t at = tall ? (size_t)k * cols + i : (size_t)i * cols + k;
            w[at] = bf16_round((float)(gain * v[(size_t)i * len + k]));
        }
    free(v);
}

// A block matrix [rows, cols]: orthogonal under ORTHO_INIT where the rule applies, else nn.Linear's
// default kaiming_uniform(a=sqrt(5)), i.e. uniform(+-1/sqrt(cols)).
static void fill_linear(const GPTConfig *c, real *w, int rows, int cols, Rng *r) {
    if (ortho_applies(c, rows, cols)) fill_orthogonal(w, rows, cols, 1, r);
    else fill_uniform(w, (size_t)rows * cols, 1.0 / sqrt((double)cols), r);
}

// A projected embedding's proj (bigram.proj, ve_shared.proj; NULL when absent): zeros_ in its constructor,
// then OrthoInit overwrites it, scaled by 1/sqrt(2L) as a ".proj" in #413/#638.
static void fill_branch_proj(const GPTConfig *c, real *proj, int rows, int cols, Rng *r) {
    if (!proj) return;
    if (ortho_applies(c, rows, cols)) fill_orthogonal(proj, rows, cols, c->ortho_proj_scale ? 1.0 / sqrt(2.0 * c->layers) : 1.0, r);
    else fill_const(proj, (size_t)rows * cols, 0);
}

void gpt_init_weights(GPT *m, uint64_t seed) {
    // filled in host memory through the same layout, then handed to the backend in one copy
    const GPTConfig *c = &m->cfg;
    real *host = xcalloc(m->n_params, sizeof(real));
    ModelTensors p;
    TensorList list;
    gpt_views(c, host, &list, &p);
    Rng r;
    rng_seed(&r, seed);
    size_t D = (size_t)c->dim;
    fill_const(p.skip_weights, (size_t)c->skips * D, 1);
    if (c->skip_gates) fill_const(p.skip_gates, (size_t)c->skips * D, 0); // sigmoid(0): half skip, half x
    fill_normal(p.tok_emb, (size_t)c->vocab * D, c->tied ? c->tied_embed_init_std : 1.0, &r);
    if (c->smear) fill_const(p.smear_gate, D, 0);
    if (c->bigram_buckets) { // zeros_(embed), proj as below, scale 0.05
        fill_const(p.bigram.scale, 1, (real)0.05f);
        fill_const(p.bigram.embed, (size_t)c->bigram_buckets * c->bigram_dim, 0);
        fill_branch_proj(c, p.bigram.proj, c->dim, c->bigram_dim, &r);
    }
    if (c->n_ve) { // normal_(embed, std 0.01), proj as below, scale 0.1, layer scales 1
        fill_normal(p.ve.embed, (size_t)c->vocab * c->ve_dim, 0.01, &r);
        fill_branch_proj(c, p.ve.proj, c->kv_dim, c->ve_dim, &r);
        fill_const(p.ve.scale, 1, (real)0.1f);
        fill_const(p.ve_layer_scales, (size_t)c->n_ve, 1);
    }
    for (int i = 0; i < c->layers; i++) {
        BlockTensors *b = &p.blocks[i];
        fill_const(b->attn_scale, D, 1);
        fill_const(b->mlp_scale, D, 1);
        fill_const(b->resid_mix, D, 1);
        fill_const(b->resid_mix + D, D, 0);
        fill_const(b->q_gain, (size_t)c->heads, (real)bf16_round((float)c->qk_gain_init));
        fill_linear(c, b->c_q, c->dim + (c->gate_in_q ? c->attn_gates : 0), c->dim, &r); // GATED_ATTN: with the gate rows
        fill_linear(c, b->c_k, c->kv_dim, c->dim, &r);
        fill_linear(c, b->c_v, c->kv_dim, c->dim, &r);
        fill_const(b->attn_proj, D * D, 0); // _zero_init
        fill_linear(c, b->fc, c->hidden, c->dim, &r);
        fill_const(b->mlp_proj, D * (size_t)c->hidden, 0); // _zero_init
        if (c->attn_gates && !c->gate_in_q) { // #413: zeros_(weight), constant_(bias, 4.0): the gates start near 1
            fill_const(b->attn_gate_w, (size_t)c->attn_gates * D, 0);
            fill_const(b->attn_gate_b, (size_t)c->attn_gates, 4);
        }
        if (c->value_residual == VR_SCALAR) fill_const(b->vr, 2, 0.5f);
        if (c->value_residual == VR_SIGMOID) fill_const(b->vr, 1, 0);
    }
    if (p.lm_head) fill_const(p.lm_head, (size_t)c->vocab * D, 0); // _zero_init
    ops_from_host(m->params, host, m->n_params);
    gpt_views_free(&list, &p);
    free(host);
}

#include "export/calib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "util.h"

static double *alloc_h(int n) { return xcalloc((size_t)n * (size_t)n, sizeof(double)); }

// H += X^T X / batches for X [N x n]; the product in fp32 sgemm, the sum in double.
static void accumulate(double *H, const real *X, int N, int n, int batches, real *tmp) {
    gemm(1, 0, n, n, N, 1, X, n, X, n, 0, tmp, n);
    for (size_t i = 0; i < (size_t)n * (size_t)n; i++) H[i] += (double)tmp[i] / batches;
}

Hessians *hessians_collect(GPT *m, TokenStream *stream, int batches, int64_t tokens_per_batch, int seq_len) {
    const GPTConfig *c = &m->cfg;
    if (batches < 1) die("GPTQ_CALIBRATION_BATCHES=%d must be at least 1", batches);
    Hessians *h = xcalloc(1, sizeof *h);
    h->layers = c->layers, h->dim = c->dim, h->hidden = c->hidden, h->batches = batches, h->tied = c->tied;
    h->attn_in = xcalloc((size_t)c->layers, sizeof(double *));
    h->attn_out = xcalloc((size_t)c->layers, sizeof(double *));
    h->mlp_in = xcalloc((size_t)c->layers, sizeof(double *));
    h->mlp_hidden = xcalloc((size_t)c->layers, sizeof(double *));
    for (int l = 0; l < c->layers; l++) {
        h->attn_in[l] = alloc_h(c->dim);
        h->attn_out[l] = alloc_h(c->dim);
        h->mlp_in[l] = alloc_h(c->dim);
        h->mlp_hidden[l] = alloc_h(c->hidden);
    }
    h->head_in = alloc_h(c->dim);
    int N = (int)tokens_per_batch, B = N / seq_len;
    int32_t *x = xmalloc(sizeof(int32_t) * (size_t)N), *y = xmalloc(sizeof(int32_t) * (size_t)N);
    int big = c->hidden > c->dim ? c->hidden : c->dim;
    real *tmp = ops_alloc((size_t)big * (size_t)big);
    for (int b = 0; b < batches; b++) {
        loader_next_batch(stream, tokens_per_batch, seq_len, 1, x, y);
        gpt_forward(m, x, NULL, B, seq_len);
        for (int l = 0; l < c->layers; l++) {
            const BlockActs *s = &m->acts.blocks[l];
            accumulate(h->attn_in[l], s->n1, N, c->dim, batches, tmp);
            accumulate(h->attn_out[l], s->att_y, N, c->dim, batches, tmp);
            accumulate(h->mlp_in[l], s->n2, N, c->dim, batches, tmp);
            accumulate(h->mlp_hidden[l], s->h_act, N, c->hidden, batches, tmp);
        }
        accumulate(h->head_in, m->acts.nf, N, c->dim, batches, tmp);
        progress("export: gptq calibration", b + 1, batches);
    }
    ops_free(tmp);
    free(x);
    free(y);
    return h;
}

const double *hessians_for(const char *name, void *ctx) {
    const Hessians *h = ctx;
    if (!strcmp(name, h->tied ? "tok_emb.weight" : "lm_head.weight")) return h->head_in;
    int layer, used = 0;
    char part[64];
    if (sscanf(name, "blocks.%d.%63s%n", &layer, part, &used) != 2 || layer < 0 || layer >= h->layers) return NULL;
    if (!strcmp(part, "attn.c_q.weight") || !strcmp(part, "attn.c_k.weight") || !strcmp(part, "attn.c_v.weight"))
        return h->attn_in[layer];
    if (!strcmp(part, "attn.proj.weight")) return h->attn_out[layer];
    if (!strcmp(part, "mlp.fc.weight")) return h->mlp_in[layer];
    if (!strcmp(part, "mlp.proj.weight")) return h->mlp_hidden[layer];
    return NULL;
}

void hessians_free(Hessians *h) {
    if (!h) return;
    for (int l = 0; l < h->layers; l++) {
        free(h->attn_in[l]);
        free(h->attn_out[l]);
        free(h->mlp_in[l]);
        free(h->mlp_hidden[l]);
    }
    free(h->attn_in);
    free(h->attn_out);
    free(h->mlp_in);
    free(h->mlp_hidden);
    free(h->head_in);
    free(h);
}

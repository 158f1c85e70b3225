#include "export/calib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "util.h"

// Hessian `i` of h and its width: per layer attn_in, attn_out, mlp_in, mlp_hidden, then head_in.
static double *slot(const Hessians *h, int i, int *n) {
    if (i == 4 * h->layers) return *n = h->dim, h->head_in;
    double **per_layer[4] = {h->attn_in, h->attn_out, h->mlp_in, h->mlp_hidden};
    *n = i % 4 == 3 ? h->hidden : h->dim;
    return per_layer[i % 4][i / 4];
}
static int slots(const Hessians *h) { return 4 * h->layers + 1; }

// Empty Hessians for a model.
static Hessians *hessians_new(const GPTConfig *c, int batches) {
    if (batches < 1) die("GPTQ_CALIBRATION_BATCHES=%d must be at least 1", batches);
    Hessians *h = xcalloc(1, sizeof *h);
    h->layers = c->layers, h->dim = c->dim, h->hidden = c->hidden, h->batches = batches, h->tied = c->tied;
    h->attn_in = xcalloc((size_t)c->layers, sizeof(double *));
    h->attn_out = xcalloc((size_t)c->layers, sizeof(double *));
    h->mlp_in = xcalloc((size_t)c->layers, sizeof(double *));
    h->mlp_hidden = xcalloc((size_t)c->layers, sizeof(double *));
    for (int l = 0; l < c->layers; l++) {
        h->attn_in[l] = xcalloc((size_t)c->dim * c->dim, sizeof(double));
        h->attn_out[l] = xcalloc((size_t)c->dim * c->dim, sizeof(double));
        h->mlp_in[l] = xcalloc((size_t)c->dim * c->dim, sizeof(double));
        h->mlp_hidden[l] = xcalloc((size_t)c->hidden * c->hidden, sizeof(double));
    }
    h->head_in = xcalloc((size_t)c->dim * c->dim, sizeof(double));
    return h;
}

// Each Hessian's fp32 sum of X^T X in backend memory (zeroed), in slot order; finished frees them.
static real **sums_new(const Hessians *h) {
    real **sums = xcalloc((size_t)slots(h), sizeof(real *));
    for (int i = 0, n; i < slots(h); i++) {
        slot(h, i, &n);
        sums[i] = ops_alloc((size_t)n * n);
    }
    return sums;
}

// One forward pass over x [B, T]; each input's X^T X added to its sum (upper triangle: gram_upper).
static void add_batch(real **sums, GPT *m, const int32_t *x, int B, int T) {
    const GPTConfig *c = &m->cfg;
    int N = B * T;
    // the block's two normed inputs, the MLP activation and the projection's input as their products read
    // them (in bf16 mode the model keeps them only rounded: gpt.c)
    real *h_act = ops_alloc((size_t)N * c->hidden), *proj_in = ops_alloc((size_t)N * c->dim);
    gpt_forward_hidden(m, x, B, T);
    for (int v = 0; v < m->n_order; v++) { // a layer run more than once (depth recurrence) sums its inputs
        const BlockActs *s = &m->acts.blocks[v];
        real **sum = sums + 4 * m->order[v];
        matmul_input_values(proj_in, &s->n1_r, N, c->dim, c->dim); // (in bf16 mode n1 exists only rounded)
        gram_upper(c->dim, N, proj_in, c->dim, 1, sum[0]);
        matmul_input_values(proj_in, &s->proj_r, N, c->dim, c->dim);
        gram_upper(c->dim, N, proj_in, c->dim, 1, sum[1]);
        matmul_input_values(proj_in, &s->n2_r, N, c->dim, c->dim); // (in bf16 mode serial blocks keep n2 only rounded)
        gram_upper(c->dim, N, proj_in, c->dim, 1, sum[2]);
        matmul_input_values(h_act, &s->h_r, N, c->hidden, c->hidden); // what mlp.proj read
        gram_upper(c->hidden, N, h_act, c->hidden, 1, sum[3]);
    }
    gram_upper(c->dim, N, m->acts.nf, c->dim, 1, sums[4 * c->layers]);
    ops_free(h_act);
    ops_free(proj_in);
}

// The sums as Hessians: H = sum / batches in double, both triangles; the sums freed.
static Hessians *finished(Hessians *h, real **sums) {
    int big = h->hidden > h->dim ? h->hidden : h->dim;
    real *host = xmalloc(sizeof(real) * (size_t)big * big);
    for (int i = 0, n; i < slots(h); i++) {
        double *H = slot(h, i, &n);
        ops_to_host(host, sums[i], (size_t)n * n);
        ops_free(sums[i]);
        for (size_t r = 0; r < (size_t)n; r++)
            for (size_t k = r; k < (size_t)n; k++) H[r * n + k] = H[k * n + r] = (double)host[r * n + k] / h->batches;
    }
    free(host);
    free(sums);
    return h;
}

// A batch's sequences as passes of at most pass_cap tokens (gpt_pass_seqs): X^T X is a sum over tokens.
static void add_batch_in_passes(real **sums, GPT *m, const int32_t *x, int B, int T, int64_t pass_cap) {
    int per = gpt_pass_seqs(B, T, pass_cap);
    for (int b0 = 0; b0 < B; b0 += per) add_batch(sums, m, x + (size_t)b0 * T, per, T);
}

Hessians *hessians_from_stream(GPT *m, TokenStream *stream, int batches, int64_t tokens_per_batch, int seq_len,
                               int64_t pass_cap) {
    Hessians *h = hessians_new(&m->cfg, batches);
    real **sums = sums_new(h);
    int32_t *x = xmalloc(sizeof(int32_t) * (size_t)tokens_per_batch), *y = xmalloc(sizeof(int32_t) * (size_t)tokens_per_batch);
    for (int b = 0; b < batches; b++) {
        loader_next_batch(stream, tokens_per_batch, seq_len, 1, x, y);
        add_batch_in_passes(sums, m, x, (int)(tokens_per_batch / seq_len), seq_len, pass_cap);
        progress("export: gptq calibration", b + 1, batches);
    }
    free(x);
    free(y);
    return finished(h, sums);
}

// Samples token t of every row from the logits at position t-1 (softcapped, / temperature).
static void sample_next(GPT *m, int32_t *x, int B, int t, int T, double temperature, Rng *rng) {
    const GPTConfig *c = &m->cfg;
    double *p = xmalloc(sizeof(double) * (size_t)c->vocab);
    real *z = xmalloc(sizeof(real) * (size_t)c->vocab);
    for (int b = 0; b < B; b++) {
        gpt_logits_row(m, b, z); // (the forward scored position t - 1 only)
        double zmax = -INFINITY, sum = 0;
        for (int v = 0; v < c->vocab; v++) {
            p[v] = c->softcap * tanh(z[v] / c->softcap) / temperature;
            zmax = fmax(zmax, p[v]);
        }
        for (int v = 0; v < c->vocab; v++) sum += (p[v] = exp(p[v] - zmax));
        double u = rng_uniform(rng) * sum;
        int v = 0;
        while (v < c->vocab - 1 && (u -= p[v]) > 0) v++;
        x[(size_t)b * T + t] = v;
    }
    free(z);
    free(p);
}

Hessians *hessians_from_generated(GPT *m, int batches, int B, int T, double temperature, uint64_t seed, int64_t pass_cap) {
    if (!(temperature > 0)) die("GPTQ calibration temperature must be > 0 (got %g)", temperature);
    Hessians *h = hessians_new(&m->cfg, batches);
    real **sums = sums_new(h);
    int32_t *x = xmalloc(sizeof(int32_t) * (size_t)B * (size_t)T), *prefix = xmalloc(sizeof(int32_t) * (size_t)B * (size_t)T);
    int per = gpt_pass_seqs(B, T, pass_cap); // rows per forward; the rows sampled in order whatever per is
    Rng rng;
    rng_seed(&rng, seed);
    for (int b = 0; b < batches; b++) {
        for (int r = 0; r < B; r++) x[(size_t)r * T] = 1; // BOS, as every document starts
        for (int t = 1; t < T; t++) { // no KV cache: each step reruns the prefix [per, t]
            for (int r0 = 0; r0 < B; r0 += per) {
                for (int r = 0; r < per; r++)
                    memcpy(prefix + (size_t)r * t, x + (size_t)(r0 + r) * T, sizeof(int32_t) * (size_t)t);
                gpt_forward_scored(m, prefix, NULL, per, t, t - 1); // the head at the last position only
                sample_next(m, x + (size_t)r0 * T, per, t, T, temperature, &rng);
            }
            progress("export: generating calibration text", (int64_t)b * T + t + 1, (int64_t)batches * T);
        }
        add_batch_in_passes(sums, m, x, B, T, pass_cap);
    }
    free(x);
    free(prefix);
    return finished(h, sums);
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

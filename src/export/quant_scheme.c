#include "export/quant_scheme.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "export/gptq.h"
#include "export/quant_rows.h"
#include "util.h"

static const char *const ARTIFACT_NAMES[] = {QUANT_INT8_SCHEME, "int6_amax_per_row_v1", "int6_lite_per_row_v1",
                                             "gptq_per_row_v1"};
static const char *const NAMES[] = {"int8", "int6", "int6-lite", "gptq"};
static const char *const LABELS[] = {"int8", "int6", "int6_lite", "gptq"}; // in log lines (final_int6_lite_zstd_...)

int quant_scheme_known(const char *artifact_scheme) {
    for (int i = 0; i < 4; i++)
        if (!strcmp(artifact_scheme, ARTIFACT_NAMES[i])) return 1;
    return 0;
}

QuantScheme quant_scheme_from_config(const Config *c) {
    QuantScheme s = {.attn_bits = (int)(c->attn_bits > 0 ? c->attn_bits : c->matrix_bits),
                     .mlp_bits = (int)(c->mlp_bits > 0 ? c->mlp_bits : c->matrix_bits), .embed_bits = (int)c->embed_bits,
                     .matrix_clip_sigmas = c->matrix_clip_sigmas, .embed_clip_sigmas = c->embed_clip_sigmas};
    int found = 0;
    for (int i = 0; i < 4; i++)
        if (!strcmp(c->quant_scheme, NAMES[i])) s.id = (SchemeId)i, found = 1;
    if (!found) die("QUANT_SCHEME=%s is not one of int8, int6, int6-lite, gptq", c->quant_scheme);
    const struct {
        const char *name;
        int64_t bits;
    } widths[] = {{"MATRIX_BITS", c->matrix_bits}, {"ATTN_BITS", s.attn_bits}, {"MLP_BITS", s.mlp_bits}, {"EMBED_BITS", c->embed_bits}};
    for (int i = 0; i < 4; i++)
        if (widths[i].bits < 5 || widths[i].bits > 8) die("%s=%lld is outside 5..8", widths[i].name, (long long)widths[i].bits);
    if (!(c->matrix_clip_sigmas > 0) || !(c->embed_clip_sigmas > 0)) die("MATRIX_CLIP_SIGMAS and EMBED_CLIP_SIGMAS must be > 0");
    if (strcmp(c->gptq_calibration_source, "train") && strcmp(c->gptq_calibration_source, "generated"))
        die("GPTQ_CALIBRATION_SOURCE=%s is not train or generated", c->gptq_calibration_source);
    if (!strcmp(c->gptq_clip, "search")) s.clip_search = 1;
    else if (strcmp(c->gptq_clip, "sdclip")) die("GPTQ_CLIP=%s is not sdclip or search", c->gptq_clip);
    return s;
}

const char *quant_scheme_artifact_name(const QuantScheme *s) { return ARTIFACT_NAMES[s->id]; }
const char *quant_scheme_label(const QuantScheme *s) { return LABELS[s->id]; }

TensorClass quant_tensor_class(const char *name) {
    if (strstr(name, "tok_emb") || strstr(name, "lm_head")) return CLASS_EMBED;
    if (strstr(name, ".mlp.")) return CLASS_MLP;
    if (strstr(name, ".attn.") || strstr(name, ".proj.")) return CLASS_ATTN;
    return CLASS_OTHER;
}

// #1435's search: GPTQ for each candidate scale set (rounding if H cannot be factorised), judged by
// the MSE against W with dead columns zeroed.
static void gptq_or_round(const real *w, int64_t rows, int64_t cols, const uint16_t *scales, int qmax, int8_t *q, void *H) {
    if (!gptq_quantize(w, rows, cols, H, scales, qmax, q)) quant_rows_round(w, rows, cols, scales, -qmax, qmax, q);
}

static double gptq_error(const real *w, int64_t rows, int64_t cols, const int8_t *q, const uint16_t *scales, void *H) {
    return gptq_mse(w, rows, cols, H, q, scales);
}

// GPTQ with the scheme's scale rule; no Hessian or a failed factorisation: round to nearest instead.
static void gptq_tensor(const QuantScheme *s, const TensorView *t, int bits, double k, const double *H, QuantTensor *out) {
    int64_t rows = t->shape[0], cols = t->shape[1];
    int qmax = quant_qmax(bits);
    quant_rows_alloc(t, bits, out);
    if (!s->clip_search) {
        quant_scales_sdclip(t->data, rows, cols, bits, k, out->row_scales);
        if (!H || !gptq_quantize(t->data, rows, cols, H, out->row_scales, qmax, out->q))
            quant_rows_round(t->data, rows, cols, out->row_scales, -qmax, qmax, out->q);
        return;
    }
    if (!H) {
        quant_tensor_free(out);
        quant_rows_tensor(t, bits, ROWS_SEARCH, out);
        return;
    }
    quant_rows_search(t->data, rows, cols, bits, gptq_or_round, gptq_error, (void *)H, out);
}

static void keep_float(const TensorView *t, QuantKind kind, QuantTensor *out) {
    memset(out, 0, sizeof *out);
    memcpy(out->name, t->name, sizeof out->name);
    out->ndim = t->ndim;
    memcpy(out->shape, t->shape, sizeof out->shape);
    out->kind = kind;
    int64_t n = tensor_numel(t);
    if (kind == QUANT_FP16) {
        out->f16 = xmalloc(sizeof(uint16_t) * (size_t)n + 1);
        for (int64_t k = 0; k < n; k++) out->f16[k] = f32_to_f16((float)t->data[k]);
    } else {
        out->f32 = xmalloc(sizeof(float) * (size_t)n + 1);
        for (int64_t k = 0; k < n; k++) out->f32[k] = (float)t->data[k];
    }
}

static void quantize_one(const QuantScheme *s, const TensorView *t, HessianFn hessian, void *ctx, QuantTensor *out) {
    int64_t n = tensor_numel(t);
    if (n <= QUANT_KEEP_FLOAT_MAX_NUMEL) return keep_float(t, QUANT_FP16, out);
    if (tensor_is_control(t->name)) return keep_float(t, QUANT_FP32, out);
    TensorClass cls = quant_tensor_class(t->name);
    int bits = cls == CLASS_ATTN ? s->attn_bits : cls == CLASS_MLP ? s->mlp_bits : s->embed_bits;
    int rows = t->ndim == 2 && (cls == CLASS_ATTN || cls == CLASS_MLP || (cls == CLASS_EMBED && (s->embed_bits < 8 || s->id == SCHEME_GPTQ)));
    if (rows && s->id == SCHEME_INT6) return quant_rows_tensor(t, bits, ROWS_AMAX, out);
    if (rows && s->id == SCHEME_INT6_LITE) return quant_rows_tensor(t, bits, ROWS_SEARCH, out);
    if (rows && s->id == SCHEME_GPTQ) {
        const double *H = hessian ? hessian(t->name, ctx) : NULL;
        return gptq_tensor(s, t, bits, cls == CLASS_EMBED ? s->embed_clip_sigmas : s->matrix_clip_sigmas, H, out);
    }
    quant_int8_tensor(t, out); // the reference's int8 for everything else
}

void quant_scheme_state(const QuantScheme *s, const TensorList *state, HessianFn hessian, void *ctx, QuantState *out,
                        QuantStats *stats) {
    if (s->id == SCHEME_INT8) return quant_int8_state(state, out, stats);
    memset(stats, 0, sizeof *stats);
    out->count = state->count;
    out->items = xcalloc((size_t)state->count + 1, sizeof(QuantTensor));
    for (int k = 0; k < state->count; k++) {
        QuantTensor *qt = &out->items[k];
        quantize_one(s, &state->items[k], hessian, ctx, qt);
        int64_t n = quant_tensor_numel(qt);
        stats->param_count += n;
        stats->num_tensors++;
        stats->baseline_tensor_bytes += 4 * n;
        stats->int8_payload_bytes += quant_tensor_bytes(qt);
        if (qt->kind != QUANT_FP16 && qt->kind != QUANT_FP32) stats->num_float_tensors++;
        progress("export: quantizing", k + 1, state->count);
    }
}

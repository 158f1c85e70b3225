#include "export/quant_int8.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

QuantKind quant_int8_kind(const char *name, int ndim, int64_t numel) {
    if (numel <= QUANT_KEEP_FLOAT_MAX_NUMEL) return tensor_is_control(name) ? QUANT_FP32 : QUANT_FP16;
    return ndim == 2 ? QUANT_INT8_ROW : QUANT_INT8_TENSOR;
}

const char *quant_storage_name(const QuantTensor *qt, char *buf) {
    switch (qt->kind) {
    case QUANT_INT8_ROW: return strcpy(buf, "int8 per-row + fp16 scales");
    case QUANT_INT8_TENSOR: return strcpy(buf, "int8 per-tensor + fp32 scale");
    case QUANT_FP16: return strcpy(buf, "fp16");
    case QUANT_FP32: return strcpy(buf, "fp32");
    case QUANT_ROW_NBIT: snprintf(buf, 48, "int%d per-row + fp16 scales", qt->bits); return buf;
    }
    return strcpy(buf, "unknown");
}

int64_t quant_tensor_numel(const QuantTensor *qt) {
    int64_t n = 1;
    for (int d = 0; d < qt->ndim; d++) n *= qt->shape[d];
    return n;
}

int64_t quant_tensor_bytes(const QuantTensor *qt) {
    int64_t n = quant_tensor_numel(qt);
    switch (qt->kind) {
    case QUANT_INT8_ROW:
    case QUANT_ROW_NBIT: return n + 2 * qt->shape[0];
    case QUANT_INT8_TENSOR: return n + 4;
    case QUANT_FP16: return 2 * n;
    case QUANT_FP32: return 4 * n;
    }
    return 0;
}

// ---------------------------------------------------------------- clip percentile

// Partially orders a[0..n) so that a[k] is the k-th smallest and a[k+1..n) >= a[k] (Hoare's select).
static float select_kth(float *a, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1;
    while (hi > lo) {
        float x = a[lo], y = a[lo + (hi - lo) / 2], z = a[hi];
        float pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y)); // median of three
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i <= j) {
                float t = a[i];
                a[i++] = a[j];
                a[j--] = t;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else break; // a[j+1..i) all equal the pivot
    }
    return a[k];
}

// torch.quantile(|x|, q) with linear interpolation, computed the way torch 1.13 does on CPU: q is
// rounded to fp32, rank = q * (n - 1) in fp32, and lerp's two branches are fused multiply-adds
// (torch's CPU kernels are built with FMA contraction; an unfused lerp differs in the last bit for
// about one 512-wide row in 30,000).
float quant_quantile_abs(const real *x, int64_t n, double q, float *scratch) {
    if (n == 0) return 0.0f; // the reference's clip for an empty tensor
    for (int64_t k = 0; k < n; k++) scratch[k] = fabsf((float)x[k]);
    float rank = (float)q * (float)(n - 1);
    int64_t below = (int64_t)rank, above = (int64_t)ceilf(rank);
    if (above > n - 1) above = n - 1;
    float w = rank - (float)below;
    float lo = select_kth(scratch, n, below), hi = lo;
    if (above > below) {
        hi = scratch[below + 1];
        for (int64_t k = below + 2; k < n; k++) hi = scratch[k] < hi ? scratch[k] : hi;
    }
    float d = hi - lo;
    return fabsf(w) < 0.5f ? fmaf(w, d, lo) : fmaf(-d, 1.0f - w, hi);
}

// round-half-to-even (rintf in the default rounding mode, like torch.round), clamped to [-127, 127].
static int8_t quantize_value(float x, float clip, float scale) {
    float r = rintf(fmaxf(fminf(x, clip), -clip) / scale);
    return (int8_t)(r > 127.0f ? 127.0f : r < -127.0f ? -127.0f : r);
}

// ---------------------------------------------------------------- tensors

void quant_int8_tensor(const TensorView *t, QuantTensor *out) {
    int64_t n = tensor_numel(t);
    memset(out, 0, sizeof *out);
    memcpy(out->name, t->name, sizeof out->name);
    out->ndim = t->ndim;
    memcpy(out->shape, t->shape, sizeof out->shape);
    out->kind = quant_int8_kind(t->name, t->ndim, n);
    if (out->kind == QUANT_FP16) {
        out->f16 = xmalloc(sizeof(uint16_t) * (size_t)n);
        for (int64_t k = 0; k < n; k++) out->f16[k] = f32_to_f16((float)t->data[k]);
        return;
    }
    if (out->kind == QUANT_FP32) {
        out->f32 = xmalloc(sizeof(float) * (size_t)n);
        for (int64_t k = 0; k < n; k++) out->f32[k] = (float)t->data[k];
        return;
    }
    for (int64_t k = 0; k < n; k++)
        if (!isfinite((float)t->data[k]))
            die("cannot quantize tensor %s: element %lld is %g (NaN and Inf have no int8 code)", t->name, (long long)k,
                (double)t->data[k]);
    out->q = xmalloc((size_t)n);
    if (out->kind == QUANT_INT8_TENSOR) {
        float *scratch = xmalloc(sizeof(float) * (size_t)n);
        float clip = quant_quantile_abs(t->data, n, QUANT_CLIP_PERCENTILE / 100.0, scratch);
        // the reference computes clip / 127 in Python (double) and stores it as an fp32 tensor
        out->scale = clip > 0 ? (float)((double)clip / 127.0) : 1.0f;
        for (int64_t k = 0; k < n; k++) out->q[k] = quantize_value((float)t->data[k], clip, out->scale);
        free(scratch);
        return;
    }
    int64_t rows = t->shape[0], cols = t->shape[1];
    out->row_scales = xmalloc(sizeof(uint16_t) * (size_t)rows);
#pragma omp parallel
    {
        float *scratch = xmalloc(sizeof(float) * (size_t)cols);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            const real *x = t->data + r * cols;
            float clip = quant_quantile_abs(x, cols, QUANT_CLIP_PERCENTILE / 100.0, scratch);
            float scale = clip / 127.0f, min_scale = (float)(1.0 / 127.0);
            if (scale < min_scale) scale = min_scale;
            // q uses the fp32 scale; only the stored copy (and so dequantization) is fp16
            for (int64_t c = 0; c < cols; c++) out->q[r * cols + c] = quantize_value((float)x[c], clip, scale);
            out->row_scales[r] = f32_to_f16(scale);
        }
        free(scratch);
    }
}

void dequant_int8_tensor(const QuantTensor *qt, real *out) {
    int64_t n = quant_tensor_numel(qt);
    switch (qt->kind) {
    case QUANT_INT8_ROW:
    case QUANT_ROW_NBIT: {
        int64_t rows = qt->shape[0], cols = n / rows;
        for (int64_t r = 0; r < rows; r++) {
            float s = f16_to_f32(qt->row_scales[r]);
            for (int64_t c = 0; c < cols; c++) out[r * cols + c] = (real)((float)qt->q[r * cols + c] * s);
        }
        break;
    }
    case QUANT_INT8_TENSOR:
        for (int64_t k = 0; k < n; k++) out[k] = (real)((float)qt->q[k] * qt->scale);
        break;
    case QUANT_FP16:
        for (int64_t k = 0; k < n; k++) out[k] = (real)f16_to_f32(qt->f16[k]);
        break;
    case QUANT_FP32:
        for (int64_t k = 0; k < n; k++) out[k] = (real)qt->f32[k];
        break;
    }
}

void quant_tensor_free(QuantTensor *qt) {
    free(qt->q);
    free(qt->row_scales);
    free(qt->f16);
    free(qt->f32);
    qt->q = NULL;
    qt->row_scales = qt->f16 = NULL;
    qt->f32 = NULL;
}

// ---------------------------------------------------------------- state dicts

void quant_int8_state(const TensorList *state, QuantState *out, QuantStats *stats) {
    memset(stats, 0, sizeof *stats);
    out->count = state->count;
    out->items = xcalloc((size_t)state->count, sizeof(QuantTensor));
    for (int k = 0; k < state->count; k++) {
        QuantTensor *qt = &out->items[k];
        quant_int8_tensor(&state->items[k], qt);
        int64_t n = quant_tensor_numel(qt);
        stats->param_count += n;
        stats->num_tensors++;
        stats->baseline_tensor_bytes += 4 * n;
        stats->int8_payload_bytes += quant_tensor_bytes(qt);
        if (qt->kind == QUANT_INT8_ROW || qt->kind == QUANT_INT8_TENSOR) stats->num_float_tensors++;
        progress("export: quantizing", k + 1, state->count);
    }
}

void quant_state_free(QuantState *qs) {
    for (int k = 0; k < qs->count; k++) quant_tensor_free(&qs->items[k]);
    free(qs->items);
    qs->items = NULL;
    qs->count = 0;
}

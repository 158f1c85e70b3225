#include "export/quant_rows.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int quant_qmax(int bits) {
    if (bits < 5 || bits > 8) die("quantization bit width %d is outside 5..8", bits);
    return (1 << (bits - 1)) - 1;
}

static void check_finite(const real *w, int64_t n, const char *name) {
    for (int64_t k = 0; k < n; k++)
        if (!isfinite((float)w[k])) die("cannot quantize tensor %s: element %lld is %g", name, (long long)k, (double)w[k]);
}

void quant_scales_amax(const real *w, int64_t rows, int64_t cols, int bits, uint16_t *scales) {
    float qmax = (float)quant_qmax(bits);
    for (int64_t r = 0; r < rows; r++) {
        float amax = 0;
        for (int64_t c = 0; c < cols; c++) amax = fmaxf(amax, fabsf((float)w[r * cols + c]));
        scales[r] = f32_to_f16(fmaxf(amax / qmax, 1.0f / qmax));
    }
}

void quant_scales_percentile(const real *w, int64_t rows, int64_t cols, int bits, double pct, uint16_t *scales) {
    if (pct >= 1.0) {
        quant_scales_amax(w, rows, cols, bits, scales);
        return;
    }
    float qmax = (float)quant_qmax(bits);
#pragma omp parallel
    {
        float *scratch = xmalloc(sizeof(float) * (size_t)(cols > 0 ? cols : 1));
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            float clip = quant_quantile_abs(w + r * cols, cols, pct, scratch);
            scales[r] = f32_to_f16(fmaxf(clip / qmax, 1.0f / qmax));
        }
        free(scratch);
    }
}

void quant_scales_sdclip(const real *w, int64_t rows, int64_t cols, int bits, double k, uint16_t *scales) {
    double qmax = quant_qmax(bits);
    for (int64_t r = 0; r < rows; r++) {
        double mean = 0, ss = 0;
        for (int64_t c = 0; c < cols; c++) mean += w[r * cols + c];
        mean /= (double)cols;
        for (int64_t c = 0; c < cols; c++) ss += (w[r * cols + c] - mean) * (w[r * cols + c] - mean);
        double std = cols > 1 ? sqrt(ss / (double)(cols - 1)) : 0.0;
        scales[r] = f32_to_f16((float)fmax(k * std / qmax, 1e-10));
    }
}

void quant_rows_round(const real *w, int64_t rows, int64_t cols, const uint16_t *scales, int qmin, int qmax, int8_t *q) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        float s = f16_to_f32(scales[r]);
        for (int64_t c = 0; c < cols; c++) {
            // a scale that underflowed fp16 (SDClip's 1e-10 floor on a zero row) codes everything as 0
            float v = s > 0 ? rintf((float)w[r * cols + c] / s) : 0.0f;
            q[r * cols + c] = (int8_t)fminf(fmaxf(v, (float)qmin), (float)qmax);
        }
    }
}

double quant_rows_mse(const real *w, int64_t rows, int64_t cols, const int8_t *q, const uint16_t *scales) {
    double err = 0;
    for (int64_t r = 0; r < rows; r++) {
        float s = f16_to_f32(scales[r]);
        for (int64_t c = 0; c < cols; c++) {
            double d = (double)w[r * cols + c] - (double)((float)q[r * cols + c] * s);
            err += d * d;
        }
    }
    return err / (double)(rows * cols > 0 ? rows * cols : 1);
}

void quant_rows_alloc(const TensorView *t, int bits, QuantTensor *out) {
    if (t->ndim != 2) die("cannot quantize %s per row: it is not a matrix", t->name);
    memset(out, 0, sizeof *out);
    memcpy(out->name, t->name, sizeof out->name);
    out->ndim = 2;
    memcpy(out->shape, t->shape, sizeof out->shape);
    out->kind = QUANT_ROW_NBIT;
    out->bits = bits;
    out->q = xmalloc((size_t)(t->shape[0] * t->shape[1]) + 1);
    out->row_scales = xmalloc(sizeof(uint16_t) * (size_t)t->shape[0] + 1);
}

static void round_symmetric(const real *w, int64_t rows, int64_t cols, const uint16_t *scales, int qmax, int8_t *q,
                            void *ctx) {
    quant_rows_round(w, rows, cols, scales, -qmax, qmax, q);
}

static double mse(const real *w, int64_t rows, int64_t cols, const int8_t *q, const uint16_t *scales, void *ctx) {
    return quant_rows_mse(w, rows, cols, q, scales);
}

void quant_rows_tensor(const TensorView *t, int bits, RowRule rule, QuantTensor *out) {
    int64_t rows = t->shape[0], cols = t->shape[1];
    int qmax = quant_qmax(bits);
    check_finite(t->data, rows * cols, t->name);
    quant_rows_alloc(t, bits, out);
    if (rule == ROWS_AMAX) {
        quant_scales_amax(t->data, rows, cols, bits, out->row_scales);
        quant_rows_round(t->data, rows, cols, out->row_scales, -qmax - 1, qmax, out->q);
        return;
    }
    quant_rows_search(t->data, rows, cols, bits, round_symmetric, mse, NULL, out);
}

void quant_rows_search(const real *w, int64_t rows, int64_t cols, int bits, RowQuantizer quantize, RowError error,
                       void *ctx, QuantTensor *out) {
    const double pcts[] = QUANT_SEARCH_PCTS;
    int qmax = quant_qmax(bits);
    uint16_t *scales = xmalloc(sizeof(uint16_t) * (size_t)rows + 1);
    int8_t *q = xmalloc((size_t)(rows * cols) + 1);
    double best = INFINITY;
    for (int i = 0; i < QUANT_SEARCH_COUNT; i++) {
        quant_scales_percentile(w, rows, cols, bits, pcts[i], scales);
        quantize(w, rows, cols, scales, qmax, q, ctx);
        double err = error(w, rows, cols, q, scales, ctx);
        if (err < best) {
            best = err;
            memcpy(out->row_scales, scales, sizeof(uint16_t) * (size_t)rows);
            memcpy(out->q, q, (size_t)(rows * cols));
        }
    }
    free(scales);
    free(q);
}

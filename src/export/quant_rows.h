// Per-row symmetric quantization of a matrix W [rows x cols] at 5..8 bits with fp16 row scales, the
// int6 family of the records (spec section 3). Each rule fixes the scales; rounding is then
// q = clamp(round_half_even(w / s), qmin, qmax) with s the fp16-rounded scale, as the records compute it.
#pragma once
#include <stdint.h>

#include "export/quant_int8.h"
#include "real.h"

// qmax = 2^(bits-1) - 1. Dies unless 5 <= bits <= 8.
int quant_qmax(int bits);

// #638 (records/..._XSA4_EMA_Int6_...): s = fp16(max(amax_row / qmax, 1 / qmax)).
void quant_scales_amax(const real *w, int64_t rows, int64_t cols, int bits, uint16_t *scales);
// GPTQ-lite's candidate: s = fp16(max(quantile(|row|, pct) / qmax, 1 / qmax)) (pct 1.0: the row max).
void quant_scales_percentile(const real *w, int64_t rows, int64_t cols, int bits, double pct, uint16_t *scales);
// #1435/#2005 SDClip: s = fp16(max(k * std(row) / qmax, 1e-10)), std unbiased (torch's default).
void quant_scales_sdclip(const real *w, int64_t rows, int64_t cols, int bits, double k, uint16_t *scales);

// Round-to-nearest with given scales into q [rows x cols].
void quant_rows_round(const real *w, int64_t rows, int64_t cols, const uint16_t *scales, int qmin, int qmax, int8_t *q);
// mean((w - q * s)^2) over the whole matrix, in double.
double quant_rows_mse(const real *w, int64_t rows, int64_t cols, const int8_t *q, const uint16_t *scales);

// The percentiles GPTQ-lite tries; the one with the lowest whole-matrix MSE wins (ties: the earlier).
#define QUANT_SEARCH_PCTS {0.9990, 0.9995, 0.9999, 0.99999, 1.0}
#define QUANT_SEARCH_COUNT 5

// GPTQ-lite's search, generic in how codes are made: for each candidate percentile, scales from it,
// codes from `quantize`, error from `error`; out keeps the lowest error's scales and codes.
typedef void (*RowQuantizer)(const real *w, int64_t rows, int64_t cols, const uint16_t *scales, int qmax, int8_t *q,
                             void *ctx);
typedef double (*RowError)(const real *w, int64_t rows, int64_t cols, const int8_t *q, const uint16_t *scales, void *ctx);
void quant_rows_search(const real *w, int64_t rows, int64_t cols, int bits, RowQuantizer quantize, RowError error,
                       void *ctx, QuantTensor *out);

// Fills out (kind QUANT_ROW_NBIT) from a 2-D tensor: rule "amax" clamps to [-qmax-1, qmax] like #638,
// "search" is GPTQ-lite (symmetric). Dies on NaN/Inf.
typedef enum { ROWS_AMAX, ROWS_SEARCH } RowRule;
void quant_rows_tensor(const TensorView *t, int bits, RowRule rule, QuantTensor *out);
// Allocates out as an empty QUANT_ROW_NBIT tensor shaped like t (q and row_scales uninitialised).
void quant_rows_alloc(const TensorView *t, int bits, QuantTensor *out);

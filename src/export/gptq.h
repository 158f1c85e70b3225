// GPTQ (Frantar et al. 2022) as records #1435 and #2005 run it: W [rows x cols] (out x in) is
// quantized column by column in order of decreasing Hessian diagonal; each column's rounding error,
// divided by U[j][j], is subtracted from the columns not yet quantized along row j of U, the upper
// Cholesky factor of H^-1. H [cols x cols] = sum of X^T X over calibration inputs X of this matrix.
// Dead columns (H[j][j] = 0) are zeroed; H is damped by 0.01 * mean(diag H) first.
#pragma once
#include <stdint.h>

#include "real.h"

#define GPTQ_DAMP 0.01

// scales: per-row fp16 bits, fixed beforehand (the records' rule). q: [rows x cols] in [-qmax, qmax].
// Returns 0 if H is not positive definite even after damping (the caller falls back to rounding).
int gptq_quantize(const real *w, int64_t rows, int64_t cols, const double *H, const uint16_t *scales, int qmax,
                  int8_t *q);
// mean((w' - q * s)^2) with w' = w with GPTQ's dead columns zeroed (#1435's clip-search criterion).
double gptq_mse(const real *w, int64_t rows, int64_t cols, const double *H, const int8_t *q, const uint16_t *scales);
// ||X W^T - X Wq^T||_F^2 / ||X W^T||_F^2 expressed through H = X^T X: trace(D H D^T) / trace(W H W^T),
// D = W - Wq. The layer-output error GPTQ minimises.
double gptq_output_error(const real *w, int64_t rows, int64_t cols, const double *H, const int8_t *q,
                         const uint16_t *scales);

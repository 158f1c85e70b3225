// The optimizers' elementwise and per-row work (optim/, TTT and QAT drive it; the CUDA backend has the
// same ops): Nesterov and SGD momentum, row normalisation, transposition, the Adam step, the EMA, QAT's
// fake quantization.
#include <math.h>

#include "ops/ops.h"
#include "ops/cpu/cpu_internal.h"

void nesterov_momentum(real *update, real *buf, const real *g, size_t n, real momentum) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        buf[i] = momentum * buf[i] + g[i];
        update[i] = g[i] + momentum * buf[i];
    }
}

void normalize_rows(real *x, int rows, int cols, double s) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        real *row = x + (size_t)r * cols;
        real f = (real)(s / fmax(s * sqrt(cpu_row_dot(row, row, cols)), 1e-7));
        for (int c = 0; c < cols; c++) row[c] *= f;
    }
}

void transpose(real *out, const real *in, int rows, int cols) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) out[(size_t)j * rows + i] = in[(size_t)i * cols + j];
}

void adam_step(real *p, const real *g, real *m, real *v, size_t n, real b1, real b2, real eps, real step_size,
               real bc2_sqrt) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        p[i] -= step_size * m[i] / (rsqrt(v[i]) / bc2_sqrt + eps);
    }
}

void ema_step(real *ema, const real *w, size_t n, double decay) {
    real d = (real)decay, keep = (real)(1.0 - decay); // torch: mul_(d).add_(w, alpha=1 - d)
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) ema[i] = d * ema[i] + keep * w[i];
}

void sgd_momentum_step(real *p, const real *g, real *buf, size_t n, real momentum, real lr) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        buf[i] = momentum * buf[i] + g[i];
        p[i] -= lr * buf[i];
    }
}

void fake_quantize_rows(real *w, int rows, int cols) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        real *row = w + (size_t)r * cols;
        float amax = 0;
        for (int k = 0; k < cols; k++) amax = fmaxf(amax, fabsf((float)row[k]));
        float s = fmaxf(amax / 31.0f, 1.0f / 31.0f);
        for (int k = 0; k < cols; k++) row[k] = (real)(fminf(fmaxf(nearbyintf((float)row[k] / s), -32), 31) * s);
    }
}

double sum_values(const real *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i]; // in order: the mean loss does not depend on the thread count
    return s;
}

// RMS normalization without a weight (train_gpt.py's F.rms_norm with eps = float32 epsilon).
#include <math.h>
#include <stdlib.h>

#include "ops/ops.h"
#include "ops/cpu/cpu_internal.h"
#include "util.h"

// One row: y = scale * x * rstd (scale: LN_SCALE's 1/sqrt(layer+1), else 1); returns rstd.
static real norm_row(real *y, const real *x, int C, real eps, real scale) {
    real s = (real)(1.0 / sqrt(cpu_row_dot(x, x, C) / C + eps));
    for (int i = 0; i < C; i++) y[i] = x[i] * s * scale;
    return s;
}

// inp, out [rows, C]; rstd [rows]
void rmsnorm_forward(real *out, real *rstd, const real *inp, int rows, int C, real eps, real scale, RoundedInput *out_r) {
    size_t n = (size_t)rows * C;
    real *rounded = cpu_rounded_output(__func__, out, out_r, n), *dst = out ? out : rounded;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) rstd[r] = norm_row(dst + (size_t)r * C, inp + (size_t)r * C, C, eps, scale);
    if (rounded) cpu_round_into(rounded, dst, n); // a separate pass: the CPU's bf16 mode is a parity aid
}

// The residual stream's update and the norm of its result, row by row (ops.h: the block's mix and
// first norm, the attention's scaled add and the MLP's norm); the same arithmetic as the ops apart.
void resid_mix_rmsnorm_forward(real *out, const real *x, const real *x0, const real *mix, int N, int C, real *n, real *rstd,
                               real eps, real scale, RoundedInput *n_r) {
    size_t total = (size_t)N * C;
    real *rounded = cpu_rounded_output(__func__, n, n_r, total), *dst = n ? n : rounded;
    const real *m0 = mix, *m1 = mix + C;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < N; r++) {
        size_t o = (size_t)r * C;
        for (int c = 0; c < C; c++) out[o + c] = m0[c] * x[o + c] + m1[c] * x0[o + c];
        rstd[r] = norm_row(dst + o, out + o, C, eps, scale);
    }
    if (rounded) cpu_round_into(rounded, dst, total);
}

void scaled_add_rmsnorm_forward(real *x, const real *scale, const real *y, const RoundedInput *y_r, int N, int C, real *n,
                                real *rstd, real eps, real ln, RoundedInput *n_r) {
    y = cpu_input_values(__func__, y, y_r, (size_t)N * C);
    size_t total = (size_t)N * C;
    real *rounded = cpu_rounded_output(__func__, n, n_r, total), *dst = n ? n : rounded;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < N; r++) {
        size_t o = (size_t)r * C;
        for (int c = 0; c < C; c++) x[o + c] += scale[c] * y[o + c];
        rstd[r] = norm_row(dst + o, x + o, C, eps, ln);
    }
    if (rounded) cpu_round_into(rounded, dst, total);
}

// y = a * x * s with s = (mean(x^2) + eps)^-1/2  =>  dx = s * (a dy - (y / a) mean(dy * y))
void rmsnorm_backward(real *dinp, const real *dout, const RoundedInput *dout_r, const real *out, const real *rstd, int rows,
                      int C, real scale, int accumulate) {
    dout = cpu_input_values(__func__, dout, dout_r, (size_t)rows * C);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        real *dx = dinp + (size_t)r * C;
        cpu_norm_row_backward(dx, accumulate ? dx : NULL, dout + (size_t)r * C, out + (size_t)r * C, C, rstd[r], scale);
    }
}

// The norm's backward from its input x (its output x rstd ln recomputed into each thread's row buffer, as
// the forward's norm_row formed it), then scaled_add_backward: the fusion saves memory passes on a GPU,
// not here.
void scaled_add_rmsnorm_backward(real *dx, real *dy, real *dscale, const real *dn, const RoundedInput *dn_r, const real *x,
                                 const real *rstd, const real *scale, const real *y, const RoundedInput *y_r, int N, int C,
                                 real ln, RoundedInput *dy_r) {
    dn = cpu_input_values(__func__, dn, dn_r, (size_t)N * C);
#pragma omp parallel
    {
        real *out = xmalloc(sizeof(real) * (size_t)C);
#pragma omp for schedule(static)
        for (int r = 0; r < N; r++) {
            const real *xr = x + (size_t)r * C;
            real *g = dx + (size_t)r * C, s = rstd[r];
            for (int i = 0; i < C; i++) out[i] = xr[i] * s * ln;
            cpu_norm_row_backward(g, g, dn + (size_t)r * C, out, C, s, ln);
        }
        free(out);
    }
    scaled_add_backward(dy, dscale, dx, scale, y, y_r, N, C, 0, dy_r);
}

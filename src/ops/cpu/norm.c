// RMS normalization without a weight (train_gpt.py's F.rms_norm with eps = float32 epsilon).
#include <math.h>

#include "ops/ops.h"
#include "ops/cpu/cpu_internal.h"

// inp, out [rows, C]; rstd [rows]; out = scale * x * rstd (scale: LN_SCALE's 1/sqrt(layer+1), else 1)
void rmsnorm_forward(real *out, real *rstd, const real *inp, int rows, int C, real eps, real scale, RoundedInput *out_r) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        const real *x = inp + (size_t)r * C;
        real *y = out + (size_t)r * C;
        double ss = 0;
        for (int i = 0; i < C; i++) ss += (double)x[i] * x[i];
        real s = (real)(1.0 / sqrt(ss / C + eps));
        rstd[r] = s;
        for (int i = 0; i < C; i++) y[i] = x[i] * s * scale;
    }
    if (out_r) matmul_input_round(out_r, out, (size_t)rows * C); // a separate pass: the CPU's bf16 mode is a parity aid
}

// y = a * x * s with s = (mean(x^2) + eps)^-1/2  =>  dx = s * (a dy - (y / a) mean(dy * y))
void rmsnorm_backward(real *dinp, const real *dout, const RoundedInput *dout_r, const real *out, const real *rstd, int rows,
                      int C, real scale, int accumulate) {
    dout = cpu_input_values(__func__, dout, dout_r, (size_t)rows * C);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        const real *dy = dout + (size_t)r * C, *y = out + (size_t)r * C;
        real *dx = dinp + (size_t)r * C;
        double dot = 0;
        for (int i = 0; i < C; i++) dot += (double)dy[i] * y[i];
        real m = (real)(dot / C) / scale, s = rstd[r];
        if (accumulate)
            for (int i = 0; i < C; i++) dx[i] += s * (scale * dy[i] - y[i] * m);
        else
            for (int i = 0; i < C; i++) dx[i] = s * (scale * dy[i] - y[i] * m);
    }
}

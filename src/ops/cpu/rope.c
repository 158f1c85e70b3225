// The query/key preparation around rotary embeddings: rmsnorm over each head, rotate, gain.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "ops/cpu/cpu_internal.h"
#include "util.h"

void qk_prep_forward(real *out, real *rstd, const real *x, const RoundedInput *x_r, int ldx, const real *gain,
                     const real *cos_t, const real *sin_t, int B, int T, int nh, int Dh, int rot, real eps, RoundedInput *out_r) {
    int half = rot / 2, rows = B * T * nh;
    size_t n = (size_t)rows * Dh;
    x = cpu_input_values(__func__, x, x_r, gemm_operand_extent(B * T, nh * Dh, ldx));
    real *rounded = cpu_rounded_output(__func__, out, out_r, n), *dst = out ? out : rounded;
#pragma omp parallel for schedule(static)
    for (int row = 0; row < rows; row++) {
        int t = (row / nh) % T, h = row % nh;
        const real *c = cos_t + (size_t)t * half, *s = sin_t + (size_t)t * half;
        const real *xi = x + (size_t)(row / nh) * ldx + (size_t)h * Dh;
        real *o = dst + (size_t)row * Dh;
        // rmsnorm_forward's arithmetic, on a row of the strided input
        real r = (real)(1.0 / sqrt(cpu_row_dot(xi, xi, Dh) / Dh + eps));
        rstd[row] = r;
        real g = gain ? gain[h] : 1;
        for (int j = 0; j < half; j++) {
            real x1 = xi[j] * r, x2 = xi[j + half] * r;
            o[j] = (x1 * c[j] + x2 * s[j]) * g;
            o[j + half] = (-x1 * s[j] + x2 * c[j]) * g;
        }
        for (int j = rot; j < Dh; j++) o[j] = xi[j] * r * g;
    }
    if (rounded) cpu_round_into(rounded, dst, n); // a separate pass: the CPU's bf16 mode is a parity aid
}

// One row of the backward through the rotation and the gain, from the row's xn and d = dout: xrot, the
// rotated xn (the forward's output before the gain), and o = d(xn). Its own function so that restrict
// tells the vectorizer the rows do not overlap.
static void rotate_row_backward(real *restrict o, real *restrict xrot, const real *restrict xr, const real *restrict d,
                                const real *restrict c, const real *restrict s, real g, int half, int rot, int Dh) {
    for (int j = 0; j < half; j++) {
        real x1 = xr[j], x2 = xr[j + half];
        xrot[j] = x1 * c[j] + x2 * s[j], xrot[j + half] = -x1 * s[j] + x2 * c[j];
        real d1 = d[j] * g, d2 = d[j + half] * g;
        o[j] = d1 * c[j] - d2 * s[j];
        o[j + half] = d1 * s[j] + d2 * c[j];
    }
    for (int j = rot; j < Dh; j++) xrot[j] = xr[j], o[j] = d[j] * g;
}

void qk_prep_backward(real *dx, int ld_dx, real *dgain, const real *dout, const RoundedInput *dout_r, const real *x,
                      const RoundedInput *x_r, int ldx, const real *rstd, const real *gain, const real *cos_t,
                      const real *sin_t, int B, int T, int nh, int Dh, int rot, RoundedInput *dx_r) {
    int half = rot / 2, rows = B * T * nh;
    if (dx && dx == dout && ld_dx != nh * Dh)
        die("%s: dx aliases dout with rows %d apart instead of %d", __func__, ld_dx, nh * Dh);
    x = cpu_input_values(__func__, x, x_r, gemm_operand_extent(B * T, nh * Dh, ldx));
    dout = cpu_input_values(__func__, dout, dout_r, (size_t)rows * Dh);
    real *rounded = cpu_rounded_output(__func__, dx, dx_r, gemm_operand_extent(B * T, nh * Dh, ld_dx));
    // dgain partial sums per thread, merged in thread order so results do not depend on timing; a row's
    // d(xn), xn and rotated xn, per thread. Each thread's part 64 bytes past the previous one's: threads
    // writing into one cache line stall each other (the dgain sums did, 12% of the op's time).
    int max_threads = omp_get_max_threads(), dg_stride = nh + 8, row_stride = 3 * Dh + 16;
    double *partial = xcalloc((size_t)max_threads * dg_stride, sizeof(double));
    real *scratch = xmalloc(sizeof(real) * (size_t)max_threads * row_stride);
#pragma omp parallel
    {
        double *dg = partial + (size_t)omp_get_thread_num() * dg_stride;
        real *o = scratch + (size_t)omp_get_thread_num() * row_stride, *xr = o + Dh, *xrot = xr + Dh;
#pragma omp for schedule(static)
        for (int row = 0; row < rows; row++) {
            int t = (row / nh) % T, h = row % nh;
            const real *c = cos_t + (size_t)t * half, *s = sin_t + (size_t)t * half;
            const real *xi = x + (size_t)(row / nh) * ldx + (size_t)h * Dh, *d = dout + (size_t)row * Dh;
            for (int j = 0; j < Dh; j++) xr[j] = xi[j] * rstd[row]; // xn as the forward computed it
            rotate_row_backward(o, xrot, xr, d, c, s, gain ? gain[h] : 1, half, rot, Dh);
            dg[h] += cpu_row_dot(d, xrot, Dh); // the gain's gradient: dout . (the output before the gain)
            // then rmsnorm_backward's arithmetic (scale 1) from d(xn) to dx
            real m = (real)(cpu_row_dot(o, xr, Dh) / Dh), r = rstd[row];
            size_t at = (size_t)(row / nh) * ld_dx + (size_t)h * Dh;
            for (int j = 0; j < Dh; j++) {
                real v = r * (o[j] - xr[j] * m);
                if (dx) dx[at + j] = v;
                if (rounded) rounded[at + j] = bf16_round((float)v);
            }
        }
    }
    if (gain && dgain)
        for (int h = 0; h < nh; h++) {
            double sum = 0;
            for (int k = 0; k < max_threads; k++) sum += partial[(size_t)k * dg_stride + h];
            dgain[h] += (real)sum;
        }
    free(partial);
    free(scratch);
}

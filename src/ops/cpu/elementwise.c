// Embedding lookup, relu^2, SmearGate, and the per-channel mixes and scales of the residual stream.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "util.h"
#include "ops/cpu/cpu_internal.h"

void embedding_forward(real *out, const int32_t *ids, const real *table, int N, int D) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) memcpy(out + (size_t)n * D, table + (size_t)ids[n] * D, sizeof(real) * D);
}

// Rows repeat across tokens, so threads split the columns instead of the tokens: no write races.
void embedding_backward(real *dtable, const real *dout, const int32_t *ids, int N, int D) {
#pragma omp parallel
    {
        int nt = omp_get_num_threads_safe(), tid = omp_get_thread_num_safe();
        int c0 = D * tid / nt, c1 = D * (tid + 1) / nt;
        for (int n = 0; n < N; n++) {
            real *dst = dtable + (size_t)ids[n] * D;
            const real *src = dout + (size_t)n * D;
            for (int c = c0; c < c1; c++) dst[c] += src[c];
        }
    }
}

// leaky_relu(x, slope)^2: the baseline's relu^2 at slope 0, #2005's LeakyReLU(0.5)^2 at 0.5.
void relu2_forward(real *out, const real *inp, const RoundedInput *inp_r, size_t n, real slope, RoundedInput *out_r) {
    inp = cpu_input_values(__func__, inp, inp_r, n);
    real *rounded = cpu_rounded_output(__func__, out, out_r, n);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        real r = inp[i] > 0 ? inp[i] : slope * inp[i];
        if (out) out[i] = r * r;
        if (rounded) rounded[i] = bf16_round((float)(r * r));
    }
}

void relu2_backward(real *dinp, const real *dout, const RoundedInput *dout_r, const real *inp, const RoundedInput *inp_r,
                    size_t n, real slope, RoundedInput *dinp_r) {
    dout = cpu_input_values(__func__, dout, dout_r, n);
    inp = cpu_input_values(__func__, inp, inp_r, n);
    real *rounded = cpu_rounded_output(__func__, dinp, dinp_r, n);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        real d = inp[i] > 0 ? 2 * inp[i] * dout[i] : 2 * slope * slope * inp[i] * dout[i];
        if (dinp) dinp[i] = d;
        if (rounded) rounded[i] = bf16_round((float)d);
    }
}

// Column sums (over N rows) are split by columns across threads for the same no-race reason.
// Per-channel sums over tokens: each thread owns a range of channels and walks the rows in order, so
// memory is read row by row (not with a stride of C) and every sum has the same order at any thread count.
// The residual mix's backward from g = dL/dxm: dx = g mix[0] (written; may alias g), dx0 += g mix[1],
// dmix += the column sums of g x and g x0.
static void resid_mix_columns_backward(real *dx, real *dx0, real *dmix, const real *g, const real *x, const real *x0,
                                       const real *mix, int N, int C) {
    const real *m0 = mix, *m1 = mix + C;
#pragma omp parallel
    {
        int nt = omp_get_num_threads_safe(), tid = omp_get_thread_num_safe();
        int c0 = C * tid / nt, c1 = C * (tid + 1) / nt;
        double *s = xcalloc(2 * (size_t)(c1 - c0) + 1, sizeof(double));
        double *s0 = s, *s1 = s + (c1 - c0);
        for (int n = 0; n < N; n++) {
            size_t row = (size_t)n * C;
            for (int c = c0; c < c1; c++) {
                size_t o = row + c;
                s0[c - c0] += (double)g[o] * x[o];
                s1[c - c0] += (double)g[o] * x0[o];
                dx0[o] += g[o] * m1[c];
                dx[o] = g[o] * m0[c];
            }
        }
        for (int c = c0; c < c1; c++) {
            dmix[c] += (real)s0[c - c0];
            dmix[C + c] += (real)s1[c - c0];
        }
        free(s);
    }
}

// g row by row into dx_in (rmsnorm_backward's arithmetic on the recomputed norm y, in each thread's
// row buffer: the forward's expressions (norm.c), so the same values), then the mix's backward in place.
void rmsnorm_resid_mix_backward(real *dx_in, real *dx0, real *dmix, const real *dn, const RoundedInput *dn_r, const real *dxm,
                                const real *x_in, const real *x0, const real *mix, const real *rstd, int N, int C, real scale) {
    dn = cpu_input_values(__func__, dn, dn_r, (size_t)N * C);
    const real *m0 = mix, *m1 = mix + C;
#pragma omp parallel
    {
        real *y = xmalloc(sizeof(real) * (size_t)C);
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            size_t o = (size_t)n * C;
            real s = rstd[n];
            for (int c = 0; c < C; c++) y[c] = (m0[c] * x_in[o + c] + m1[c] * x0[o + c]) * s * scale;
            cpu_norm_row_backward(dx_in + o, dxm + o, dn + o, y, C, s, scale);
        }
        free(y);
    }
    resid_mix_columns_backward(dx_in, dx0, dmix, dx_in, x_in, x0, mix, N, C);
}

void scaled_add_forward(real *out, const real *x, const real *scale, const real *y, const RoundedInput *y_r, int N, int C) {
    y = cpu_input_values(__func__, y, y_r, (size_t)N * C);
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        size_t o = (size_t)n * C;
        for (int c = 0; c < C; c++) out[o + c] = x[o + c] + scale[c] * y[o + c];
    }
}

void scaled_add_backward(real *dy, real *dscale, const real *dout, const real *scale, const real *y, const RoundedInput *y_r,
                         int N, int C, int accumulate, RoundedInput *dy_r) {
    y = cpu_input_values(__func__, y, y_r, (size_t)N * C);
    real *rounded = cpu_rounded_output(__func__, dy, dy_r, (size_t)N * C);
    if (!dy && accumulate) die("scaled_add_backward: nothing to accumulate into");
#pragma omp parallel
    {
        int nt = omp_get_num_threads_safe(), tid = omp_get_thread_num_safe();
        int c0 = C * tid / nt, c1 = C * (tid + 1) / nt;
        double *s = xcalloc((size_t)(c1 - c0) + 1, sizeof(double));
        for (int n = 0; n < N; n++) {
            size_t row = (size_t)n * C;
            for (int c = c0; c < c1; c++) {
                size_t o = row + c;
                s[c - c0] += (double)dout[o] * y[o];
                real d = (accumulate ? dy[o] : 0) + dout[o] * scale[c];
                if (dy) dy[o] = d;
                if (rounded) rounded[o] = bf16_round((float)d);
            }
        }
        for (int c = c0; c < c1; c++) dscale[c] += (real)s[c - c0];
        free(s);
    }
}

// SmearGate (#413/#638): out[b,t] = (1 - g) x[b,t] + g x[b,t-1] (x[b,-1] = 0), g = sigmoid(gate) per channel.
void smear_forward(real *out, const real *x, const real *gate, int B, int T, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < B * T; n++) {
        size_t o = (size_t)n * C;
        int first = n % T == 0;
        for (int c = 0; c < C; c++) {
            real g = (real)(1.0 / (1.0 + exp(-(double)gate[c])));
            out[o + c] = (1 - g) * x[o + c] + (first ? 0 : g * x[o + c - C]);
        }
    }
}

void smear_backward(real *dx, real *dgate, const real *dout, const real *x, const real *gate, int B, int T, int C) {
#pragma omp parallel
    {
        int nt = omp_get_num_threads_safe(), tid = omp_get_thread_num_safe();
        int c0 = C * tid / nt, c1 = C * (tid + 1) / nt;
        double *s = xcalloc((size_t)(c1 - c0) + 1, sizeof(double));
        for (int n = 0; n < B * T; n++) {
            size_t o = (size_t)n * C;
            int first = n % T == 0, last = n % T == T - 1;
            for (int c = c0; c < c1; c++) {
                real g = (real)(1.0 / (1.0 + exp(-(double)gate[c])));
                dx[o + c] = (1 - g) * dout[o + c] + (last ? 0 : g * dout[o + c + C]);
                s[c - c0] += (double)dout[o + c] * ((first ? 0 : x[o + c - C]) - x[o + c]) * g * (1 - g);
            }
        }
        for (int c = c0; c < c1; c++) dgate[c] += (real)s[c - c0];
        free(s);
    }
}

// Value residual: out = lam[0] v + lam[1] v0 (#413/#638: two learned scalars; sigmoid form: lam = (1, sigmoid(alpha))).
void value_mix_forward(real *out, const real *v, const real *v0, const real lam[2], size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = lam[0] * v[i] + lam[1] * v0[i];
}

// Per-thread partial sums over fixed index ranges, added in thread order: the same result at a given
// thread count, run after run.
void value_mix_backward(real *dv, real *dv0, double dlam[2], const real *dout, const real *v, const real *v0,
                        const real lam[2], size_t n) {
    int max_threads = omp_get_max_threads_safe();
    double *part = xcalloc(2 * (size_t)max_threads, sizeof(double));
#pragma omp parallel
    {
        int nt = omp_get_num_threads_safe(), tid = omp_get_thread_num_safe();
        size_t i0 = n * tid / nt, i1 = n * (tid + 1) / nt;
        double s0 = 0, s1 = 0;
        for (size_t i = i0; i < i1; i++) {
            real d = dout[i];
            s0 += (double)d * v[i];
            s1 += (double)d * v0[i];
            dv0[i] += lam[1] * d;
            dv[i] = lam[0] * d;
        }
        part[2 * tid] = s0;
        part[2 * tid + 1] = s1;
    }
    dlam[0] = dlam[1] = 0;
    for (int t = 0; t < max_threads; t++) dlam[0] += part[2 * t], dlam[1] += part[2 * t + 1];
    free(part);
}

void axpy_forward(real *x, real a, const real *y, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) x[i] += a * y[i];
}

double axpy_backward(real *dy, const real *dout, real a, const real *y, size_t n) {
    int max_threads = omp_get_max_threads_safe();
    double *part = xcalloc((size_t)max_threads, sizeof(double)), sum = 0;
#pragma omp parallel
    {
        int nt = omp_get_num_threads_safe(), tid = omp_get_thread_num_safe();
        size_t i0 = n * tid / nt, i1 = n * (tid + 1) / nt;
        double s = 0;
        for (size_t i = i0; i < i1; i++) {
            s += (double)dout[i] * y[i];
            dy[i] = a * dout[i];
        }
        part[tid] = s;
    }
    for (int t = 0; t < max_threads; t++) sum += part[t];
    free(part);
    return sum;
}

void skip_lerp_forward(real *out, const real *x, const real *y, const real *w, const real *gate, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        size_t o = (size_t)n * C;
        for (int c = 0; c < C; c++) {
            real s = (real)(1.0 / (1.0 + exp(-(double)gate[c])));
            out[o + c] = s * x[o + c] + (1 - s) * w[c] * y[o + c];
        }
    }
}

// Channels split across threads, rows walked in order: deterministic sums, no write races.
void skip_lerp_backward(real *dx, real *dy, real *dw, real *dgate, const real *dout, const real *x, const real *y,
                        const real *w, const real *gate, int N, int C) {
#pragma omp parallel
    {
        int nt = omp_get_num_threads_safe(), tid = omp_get_thread_num_safe();
        int c0 = C * tid / nt, c1 = C * (tid + 1) / nt;
        double *sw = xcalloc(2 * (size_t)(c1 - c0) + 1, sizeof(double)), *sg = sw + (c1 - c0);
        for (int n = 0; n < N; n++) {
            size_t row = (size_t)n * C;
            for (int c = c0; c < c1; c++) {
                size_t o = row + c;
                real s = (real)(1.0 / (1.0 + exp(-(double)gate[c]))), d = dout[o];
                sw[c - c0] += (double)d * (1 - s) * y[o];
                sg[c - c0] += (double)d * (x[o] - w[c] * y[o]);
                dy[o] = (1 - s) * w[c] * d;
                dx[o] = s * d;
            }
        }
        for (int c = c0; c < c1; c++) {
            real s = (real)(1.0 / (1.0 + exp(-(double)gate[c])));
            dw[c] += (real)sw[c - c0];
            dgate[c] += (real)(sg[c - c0] * s * (1 - s));
        }
        free(sw);
    }
}

// Gated attention (#413/#638 GATED_ATTENTION, #2005's headwise output gate): the attention output is
// multiplied by gain * sigmoid(z + bias) before the output projection, one gate per head (headwise,
// G = H) or per channel (elementwise, G = H * Dh). z = x W_g^T comes from a matmul in the model.
#include <math.h>
#include <stdlib.h>

#include "ops/ops.h"
#include "util.h"
#include "ops/cpu/cpu_internal.h"

static inline real sigmoid(real z) { return (real)(1.0 / (1.0 + exp(-(double)z))); }

void attn_gate_forward(real *out, real *gate, const real *y, const real *z, const real *bias, int N, int H, int Dh,
                       int G, real gain) {
    int per = H * Dh / G; // channels one gate covers: Dh (headwise) or 1 (elementwise)
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        size_t o = (size_t)n * H * Dh;
        real *gr = gate + (size_t)n * G;
        for (int j = 0; j < G; j++) {
            gr[j] = sigmoid(z[(size_t)n * G + j] + (bias ? bias[j] : 0));
            real s = gain * gr[j];
            for (int i = 0; i < per; i++) out[o + (size_t)j * per + i] = s * y[o + (size_t)j * per + i];
        }
    }
}

// Tokens are split across threads for dy and dz; the bias sums are per-gate columns, so each thread
// owns a range of gates and walks the rows in order (deterministic at any thread count).
void attn_gate_backward(real *dy, real *dz, real *dbias, const real *dout, const real *y, const real *gate, int N,
                        int H, int Dh, int G, real gain) {
    int per = H * Dh / G;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        size_t o = (size_t)n * H * Dh;
        const real *gr = gate + (size_t)n * G;
        for (int j = 0; j < G; j++) {
            double s = 0;
            for (int i = 0; i < per; i++) {
                size_t k = o + (size_t)j * per + i;
                s += (double)dout[k] * y[k];
                dy[k] = gain * gr[j] * dout[k];
            }
            dz[(size_t)n * G + j] = (real)(s * gain * gr[j] * (1 - gr[j]));
        }
    }
    if (!dbias) return;
#pragma omp parallel
    {
        int nt = omp_get_num_threads_safe(), tid = omp_get_thread_num_safe();
        int j0 = G * tid / nt, j1 = G * (tid + 1) / nt;
        double *s = xcalloc((size_t)(j1 - j0) + 1, sizeof(double));
        for (int n = 0; n < N; n++)
            for (int j = j0; j < j1; j++) s[j - j0] += dz[(size_t)n * G + j];
        for (int j = j0; j < j1; j++) dbias[j] += (real)s[j - j0];
        free(s);
    }
}

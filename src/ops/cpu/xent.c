// The head's nonlinearity and loss, fused: l = cap * tanh(z / cap), loss = logsumexp(l) - l[target].
#include <math.h>
#include <stdlib.h>

#include "ops/ops.h"
#include "util.h"
#include "ops/cpu/cpu_internal.h"

// One row [V]: t = tanh(z / cap) and e = exp(l - max l), l = cap t (each computed once, into the
// calling thread's buffers, by the vectorizable tanh and softmax exp), the largest l and the sum of e.
static void softcap_row(real *t, real *e, const real *z, int V, real cap, real *max, double *sum) {
    for (int v = 0; v < V; v++) t[v] = cpu_tanh(z[v] / cap);
    real m = cap * cpu_row_max(t, V); // cap > 0: the largest l, as rounded
    for (int v = 0; v < V; v++) e[v] = cpu_softmax_exp(cap * t[v] - m);
    *max = m, *sum = cpu_row_sum(e, V);
}

// Each row's softcap_row, then its loss (into loss), or the gradient of L = scale * sum_n loss[n] (into
// dz and/or its rounding; either may be z itself: a row is read before it is written over). Each thread
// keeps its rows' t and e in its own buffers.
static void softcap_rows(real *loss, real *dz, real *rounded, const real *z, const int32_t *targets, int N, int V, real cap,
                         real scale) {
#pragma omp parallel
    {
        real *t = xmalloc(sizeof(real) * 2 * (size_t)V), *e = t + V;
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            real m;
            double sum;
            softcap_row(t, e, z + (size_t)n * V, V, cap, &m, &sum);
            if (loss)
                loss[n] = (real)(m + log(sum) - cap * t[targets[n]]);
            else
                for (int v = 0; v < V; v++) { // dL/dl = scale (softmax(l) - onehot(target)); dl/dz = 1 - t^2
                    double p = e[v] / sum - (v == targets[n] ? 1.0 : 0.0);
                    real g = (real)(scale * p * (1.0 - (double)t[v] * t[v]));
                    size_t at = (size_t)n * V + v;
                    if (dz) dz[at] = g;
                    if (rounded) rounded[at] = bf16_round((float)g);
                }
        }
        free(t);
    }
}

void softcap_xent_forward(real *loss, const real *z, const RoundedInput *z_r, const int32_t *targets, int N, int V, real cap) {
    z = cpu_input_values(__func__, z, z_r, (size_t)N * V);
    softcap_rows(loss, NULL, NULL, z, targets, N, V, cap, 0);
}

void softcap_xent_backward(real *dz, RoundedInput *dz_r, const real *z, const RoundedInput *z_r, const int32_t *targets, int N,
                           int V, real cap, real scale) {
    size_t n = (size_t)N * V;
    z = cpu_input_values(__func__, z, z_r, n); // before dz_r is reset: it may be z_r
    real *rounded = cpu_rounded_output(__func__, dz, dz_r, n);
    softcap_rows(NULL, dz, rounded, z, targets, N, V, cap, scale);
}

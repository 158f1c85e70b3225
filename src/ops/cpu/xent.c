// The head's nonlinearity and loss, fused: l = cap * tanh(z / cap), loss = logsumexp(l) - l[target].
#include <math.h>
#include <stdlib.h>

#include "ops/ops.h"
#include "util.h"
#include "ops/cpu/cpu_internal.h"

// t = tanh(z / cap) of one row [V] (computed once: each thread keeps its row's in a buffer), the row's
// largest l and the sum of exp(l - max).
static void softcap_row(real *t, const real *z, int V, real cap, double *max, double *sum) {
    double m = -INFINITY, s = 0;
    for (int v = 0; v < V; v++) {
        t[v] = rtanh(z[v] / cap);
        m = cap * t[v] > m ? cap * t[v] : m;
    }
    for (int v = 0; v < V; v++) s += exp(cap * t[v] - m);
    *max = m, *sum = s;
}

void softcap_xent_forward(real *loss, const real *z, const RoundedInput *z_r, const int32_t *targets, int N, int V, real cap) {
    z = cpu_input_values(__func__, z, z_r, (size_t)N * V);
#pragma omp parallel
    {
        real *t = xmalloc(sizeof(real) * (size_t)V);
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            double m, sum;
            softcap_row(t, z + (size_t)n * V, V, cap, &m, &sum);
            loss[n] = (real)(m + log(sum) - cap * t[targets[n]]);
        }
        free(t);
    }
}

// dL/dl = scale * (softmax(l) - onehot(target));  dl/dz = 1 - tanh(z / cap)^2
void softcap_xent_backward(real *dz, RoundedInput *dz_r, const real *z, const RoundedInput *z_r, const int32_t *targets, int N,
                           int V, real cap, real scale) {
    size_t n_all = (size_t)N * V;
    z = cpu_input_values(__func__, z, z_r, n_all); // before dz_r is reset: it may be z_r
    real *rounded = cpu_rounded_output(__func__, dz, dz_r, n_all);
#pragma omp parallel
    {
        real *t = xmalloc(sizeof(real) * (size_t)V);
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            double m, sum;
            softcap_row(t, z + (size_t)n * V, V, cap, &m, &sum); // the row is read before it is written over
            for (int v = 0; v < V; v++) {
                double p = exp(cap * t[v] - m) / sum - (v == targets[n] ? 1.0 : 0.0);
                real g = (real)(scale * p * (1.0 - (double)t[v] * t[v]));
                size_t at = (size_t)n * V + v;
                if (dz) dz[at] = g;
                if (rounded) rounded[at] = bf16_round((float)g);
            }
        }
        free(t);
    }
}

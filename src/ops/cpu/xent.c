// The head's nonlinearity and loss, fused: l = cap * tanh(z / cap), loss = logsumexp(l) - l[target].
#include <math.h>

#include "ops/ops.h"

void softcap_xent_forward(real *loss, const real *z, const int32_t *targets, int N, int V, real cap) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const real *zr = z + (size_t)n * V;
        double m = -INFINITY, sum = 0;
        for (int v = 0; v < V; v++) {
            double l = cap * rtanh(zr[v] / cap);
            m = l > m ? l : m;
        }
        for (int v = 0; v < V; v++) sum += exp(cap * rtanh(zr[v] / cap) - m);
        loss[n] = (real)(m + log(sum) - cap * rtanh(zr[targets[n]] / cap));
    }
}

// dL/dl = scale * (softmax(l) - onehot(target));  dl/dz = 1 - tanh(z / cap)^2
void softcap_xent_backward(real *z, const int32_t *targets, int N, int V, real cap, real scale) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        real *zr = z + (size_t)n * V;
        double m = -INFINITY, sum = 0;
        for (int v = 0; v < V; v++) {
            real t = rtanh(zr[v] / cap);
            zr[v] = t; // keep tanh, the rest follows from it
            m = cap * t > m ? cap * t : m;
        }
        for (int v = 0; v < V; v++) sum += exp(cap * zr[v] - m);
        for (int v = 0; v < V; v++) {
            real t = zr[v];
            double p = exp(cap * t - m) / sum - (v == targets[n] ? 1.0 : 0.0);
            zr[v] = (real)(scale * p * (1.0 - (double)t * t));
        }
    }
}

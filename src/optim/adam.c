// Adam with torch.optim.Adam's arithmetic: p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
#include <math.h>

#include "optim/optim.h"

void adam_update(real *p, const real *g, real *m, real *v, size_t n, const OptimSettings *o, double lr, int64_t step) {
    double bc1 = 1.0 - pow(o->beta1, (double)step), bc2 = 1.0 - pow(o->beta2, (double)step);
    real step_size = (real)(lr / bc1), bc2_sqrt = (real)sqrt(bc2), eps = (real)o->eps;
    real b1 = (real)o->beta1, b2 = (real)o->beta2;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        p[i] -= step_size * m[i] / (rsqrt(v[i]) / bc2_sqrt + eps);
    }
}

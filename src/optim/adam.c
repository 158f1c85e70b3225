// Adam with torch.optim.Adam's arithmetic: p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
#include <math.h>

#include "ops/ops.h"
#include "optim/optim.h"

void adam_update(real *p, const real *g, real *m, real *v, size_t n, const OptimSettings *o, double lr, int64_t step) {
    double bc1 = 1.0 - pow(o->beta1, (double)step), bc2 = 1.0 - pow(o->beta2, (double)step);
    adam_step(p, g, m, v, n, (real)o->beta1, (real)o->beta2, (real)o->eps, (real)(lr / bc1), (real)sqrt(bc2));
}

// XSA, exclusive self-attention (#1435/#2005): each head's attention output loses its component
// along the token's own value vector (of the KV head it reads): y -= (y . u) u, u = v / max(|v|, 1e-12)
// as F.normalize computes it.
#include <math.h>

#include "ops/ops.h"
#include "ops/cpu/cpu_internal.h"

#define XSA_EPS 1e-12

void xsa_forward(real *out, const real *y, const real *v, int N, int H, int Hkv, int Dh) {
    int group = H / Hkv;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int h = 0; h < H; h++) {
            const real *vr = v + ((size_t)n * Hkv + h / group) * Dh, *yr = y + ((size_t)n * H + h) * Dh;
            real *o = out + ((size_t)n * H + h) * Dh;
            double vv = cpu_row_dot(vr, vr, Dh), yv = cpu_row_dot(yr, vr, Dh);
            double norm = fmax(sqrt(vv), XSA_EPS), a = yv / (norm * norm); // (y . u) / |v|
            for (int i = 0; i < Dh; i++) o[i] = yr[i] - (real)(a * vr[i]);
        }
}

// In place on dy (dout -> d(input y)); dv = d(v) from the projections of every head that reads it.
void xsa_backward(real *dy, real *dv, const real *y, const real *v, int N, int H, int Hkv, int Dh) {
    int group = H / Hkv;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int j = 0; j < Hkv; j++) {
            const real *vr = v + ((size_t)n * Hkv + j) * Dh;
            real *dvr = dv + ((size_t)n * Hkv + j) * Dh;
            double vv = cpu_row_dot(vr, vr, Dh);
            double len = sqrt(vv), norm = fmax(len, XSA_EPS);
            double du[XSA_MAX_HEAD_DIM]; // Dh <= XSA_MAX_HEAD_DIM, checked by the model config
            for (int i = 0; i < Dh; i++) du[i] = 0;
            for (int g = 0; g < group; g++) {
                int h = j * group + g;
                const real *yr = y + ((size_t)n * H + h) * Dh;
                real *gr = dy + ((size_t)n * H + h) * Dh;
                double a = cpu_row_dot(yr, vr, Dh) / norm, b = cpu_row_dot(gr, vr, Dh) / norm; // y . u, g . u
                for (int i = 0; i < Dh; i++) {
                    du[i] -= a * gr[i] + b * yr[i];
                    gr[i] -= (real)(b * vr[i] / norm);
                }
            }
            double du_u = 0;
            for (int i = 0; i < Dh; i++) du_u += du[i] * vr[i] / norm;
            for (int i = 0; i < Dh; i++)
                dvr[i] = (real)(len > XSA_EPS ? (du[i] - du_u * vr[i] / norm) / norm : du[i] / XSA_EPS);
        }
}

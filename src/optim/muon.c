// Muon: momentum + Nesterov, then orthogonalize the update with a quintic Newton-Schulz iteration.
#include <math.h>
#include <string.h>

#include "ops/ops.h"
#include "optim/optim.h"

// X <- a X + (b A + c A A) X with A = X X^T, on the wide orientation (rows <= cols).
void newton_schulz5(real *out, const real *G, int rows, int cols, int steps, real *scratch) {
    const real a = 3.4445f, b = -4.7750f, c = 2.0315f;
    int transposed = rows > cols, r = transposed ? cols : rows, k = transposed ? rows : cols;
    size_t n = (size_t)rows * cols;
    real *X = scratch, *Xn = X + n, *A = Xn + n, *Bm = A + (size_t)r * r;
    real inv = (real)(1.0 / (sqrt(sum_squares(G, n)) + 1e-7));
    if (transposed) {
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++) X[(size_t)j * rows + i] = G[(size_t)i * cols + j] * inv;
    } else {
        for (size_t i = 0; i < n; i++) X[i] = G[i] * inv;
    }
    for (int s = 0; s < steps; s++) {
        gemm(0, 1, r, r, k, 1, X, k, X, k, 0, A, r);      // A = X X^T
        ops_copy(Bm, A, (size_t)r * r);
        gemm(0, 0, r, r, r, c, A, r, A, r, b, Bm, r);     // B = b A + c A A
        ops_copy(Xn, X, n);
        gemm(0, 0, r, k, r, 1, Bm, r, X, k, a, Xn, k);    // X = a X + B X
        real *t = X;
        X = Xn;
        Xn = t;
    }
    if (transposed) {
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++) out[(size_t)i * cols + j] = X[(size_t)j * rows + i];
    } else {
        ops_copy(out, X, n);
    }
}

// Each row of x times s divided by max(|row times s|, 1e-7), as g / g.norm(dim=-1).clamp_min(1e-7).
static void normalize_rows(real *x, int rows, int cols, double s) {
    for (int r = 0; r < rows; r++) {
        real *row = x + (size_t)r * cols;
        double ss = 0;
        for (int c = 0; c < cols; c++) ss += (double)row[c] * row[c];
        real f = (real)(s / fmax(s * sqrt(ss), 1e-7));
        for (int c = 0; c < cols; c++) row[c] *= f;
    }
}

// p -= lr * NS(g + m * buf') * max(1, rows/cols)^0.5, buf' = m * buf + g. MuonEq-R (#1435/#2005's
// MUON_ROW_NORMALIZE) divides each row of g + m * buf' by max(|row|, 1e-7) before Newton-Schulz;
// #413's NorMuon (MUON_NORMALIZE_UPDATE_ROWS) divides each row of the scaled update after it.
void muon_update(real *p, const real *g, real *buf, int rows, int cols, const OptimSettings *o, double lr,
                 real *scratch, real *update) {
    size_t n = (size_t)rows * cols;
    real mom = (real)o->muon_momentum;
    for (size_t i = 0; i < n; i++) {
        buf[i] = mom * buf[i] + g[i];
        update[i] = g[i] + mom * buf[i];
    }
    if (o->muon_row_normalize) normalize_rows(update, rows, cols, 1);
    newton_schulz5(update, update, rows, cols, o->muon_steps, scratch);
    double scale = rows > cols ? sqrt((double)rows / cols) : 1.0;
    if (o->muon_normalize_update_rows) normalize_rows(update, rows, cols, scale), scale = 1; // the scale cancels
    real step = (real)(lr * scale);
    for (size_t i = 0; i < n; i++) p[i] -= step * update[i];
}

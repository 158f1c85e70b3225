// Muon: momentum + Nesterov, then orthogonalize the update with a quintic Newton-Schulz iteration.
#include <math.h>
#include <string.h>

#include "ops/ops.h"
#include "optim/optim.h"

// X <- a X + (b A + c A A) X with A = X X^T, on the wide orientation (rows <= cols). The products run in
// the linear layers' precision: bf16 operands under MATMUL_PRECISION=bf16, as the reference's
// Newton-Schulz multiplies bf16 matrices (its sums and scalings, bf16 there, stay fp32 here).
void newton_schulz5(real *out, const real *G, int rows, int cols, int steps, real *scratch) {
    const real a = 3.4445f, b = -4.7750f, c = 2.0315f;
    int transposed = rows > cols, r = transposed ? cols : rows, k = transposed ? rows : cols;
    size_t n = (size_t)rows * cols;
    real *X = scratch, *Xn = X + n, *A = Xn + n, *Bm = A + (size_t)r * r;
    if (transposed) transpose(X, G, rows, cols);
    else ops_copy(X, G, n);
    scale_to_unit_norm(X, n, 1e-7);
    for (int s = 0; s < steps; s++) {
        matmul_gemm(0, 1, r, r, k, 1, X, k, X, k, 0, A, r);  // A = X X^T
        ops_copy(Bm, A, (size_t)r * r);
        matmul_gemm(0, 0, r, r, r, c, A, r, A, r, b, Bm, r); // B = b A + c A A
        ops_copy(Xn, X, n);
        matmul_gemm(0, 0, r, k, r, 1, Bm, r, X, k, a, Xn, k); // X = a X + B X
        real *t = X;
        X = Xn;
        Xn = t;
    }
    if (transposed) transpose(out, X, cols, rows);
    else ops_copy(out, X, n);
}

// p -= lr * NS(g + m * buf') * max(1, rows/cols)^0.5, buf' = m * buf + g. MuonEq-R (#1435/#2005's
// MUON_ROW_NORMALIZE) divides each row of g + m * buf' by max(|row|, 1e-7) before Newton-Schulz;
// #413's NorMuon (MUON_NORMALIZE_UPDATE_ROWS) divides each row of the scaled update after it.
void muon_update(real *p, const real *g, real *buf, int rows, int cols, const OptimSettings *o, double lr,
                 real *scratch, real *update) {
    size_t n = (size_t)rows * cols;
    nesterov_momentum(update, buf, g, n, (real)o->muon_momentum);
    if (o->muon_row_normalize) normalize_rows(update, rows, cols, 1);
    newton_schulz5(update, update, rows, cols, o->muon_steps, scratch);
    double scale = rows > cols ? sqrt((double)rows / cols) : 1.0;
    if (o->muon_normalize_update_rows) normalize_rows(update, rows, cols, scale), scale = 1; // the scale cancels
    axpy_forward(p, (real)(-lr * scale), update, n);
}

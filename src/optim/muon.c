// Muon: momentum + Nesterov, then orthogonalize the update with a quintic Newton-Schulz iteration.
#include <math.h>
#include <string.h>

#include "ops/ops.h"
#include "optim/optim.h"

// X <- a X + (b A + c A A) X with A = X X^T, on the wide orientation (rows <= cols). The products run in
// the linear layers' precision: bf16 operands under MATMUL_PRECISION=bf16, as the reference's
// Newton-Schulz multiplies bf16 matrices (its sums and scalings, bf16 there, stay fp32 here). Each
// product covers all `count` matrices at once (matmul_gemm's batches), the norms and transposes go one
// matrix at a time.
size_t newton_schulz5_scratch(int count, int rows, int cols) {
    size_t r = (size_t)(rows < cols ? rows : cols);
    return (size_t)count * (2 * (size_t)rows * cols + 2 * r * r);
}

void newton_schulz5(real *out, const real *G, int count, int rows, int cols, int steps, real *scratch) {
    const real a = 3.4445f, b = -4.7750f, c = 2.0315f;
    int transposed = rows > cols, r = transposed ? cols : rows, k = transposed ? rows : cols;
    size_t n = (size_t)rows * cols, rr = (size_t)r * r, all = n * count;
    real *X = scratch, *Xn = X + all, *A = Xn + all, *Bm = A + rr * count;
    for (int i = 0; i < count; i++) {
        if (transposed) transpose(X + i * n, G + i * n, rows, cols);
        else ops_copy(X + i * n, G + i * n, n);
        scale_to_unit_norm(X + i * n, n, 1e-7);
    }
    for (int s = 0; s < steps; s++) {
        matmul_gemm(0, 1, r, r, k, 1, X, k, n, X, k, n, 0, A, r, rr, count); // A = X X^T
        ops_copy(Bm, A, rr * count);
        matmul_gemm(0, 0, r, r, r, c, A, r, rr, A, r, rr, b, Bm, r, rr, count); // B = b A + c A A
        ops_copy(Xn, X, all);
        matmul_gemm(0, 0, r, k, r, 1, Bm, r, rr, X, k, n, a, Xn, k, n, count); // X = a X + B X
        real *t = X;
        X = Xn;
        Xn = t;
    }
    for (int i = 0; i < count; i++) {
        if (transposed) transpose(out + i * n, X + i * n, cols, rows);
        else ops_copy(out + i * n, X + i * n, n);
    }
}

// p -= lr * NS(g + m * buf') * max(1, rows/cols)^0.5, buf' = m * buf + g. MuonEq-R (#1435/#2005's
// MUON_ROW_NORMALIZE) divides each row of g + m * buf' by max(|row|, 1e-7) before Newton-Schulz;
// #413's NorMuon (MUON_NORMALIZE_UPDATE_ROWS) divides each row of the scaled update after it.
void muon_update(const MuonMatrix *mats, int count, int rows, int cols, const OptimSettings *o, double lr, real *scratch,
                 real *update) {
    size_t n = (size_t)rows * cols;
    for (int i = 0; i < count; i++) {
        nesterov_momentum(update + i * n, mats[i].buf, mats[i].g, n, (real)o->muon_momentum);
        if (o->muon_row_normalize) normalize_rows(update + i * n, rows, cols, 1);
    }
    newton_schulz5(update, update, count, rows, cols, o->muon_steps, scratch);
    double scale = rows > cols ? sqrt((double)rows / cols) : 1.0;
    for (int i = 0; i < count; i++) {
        double s = scale;
        if (o->muon_normalize_update_rows) normalize_rows(update + i * n, rows, cols, s), s = 1; // the scale cancels
        axpy_forward(mats[i].p, (real)(-lr * s), update + i * n, n);
    }
}

#include "export/gptq.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

// LAPACK from OpenBLAS (column-major; our matrices are symmetric, so the layout does not matter for input).
extern void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
extern void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info);

static const double *g_sort_diag;
// Descending diagonal; ties by index, so the order is deterministic (torch.argsort's tie order is not specified).
static int by_diag_desc(const void *a, const void *b) {
    int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
    double di = g_sort_diag[i], dj = g_sort_diag[j];
    if (di != dj) return di > dj ? -1 : 1;
    return i < j ? -1 : i > j;
}

// U (upper, column-major n x n: U[j][k] = u[j + k*n]) with Hinv = U^T U, for the permuted, damped H.
static int upper_factor_of_inverse(double *h, int64_t n) {
    int nn = (int)n, info;
    dpotrf_("L", &nn, h, &nn, &info);
    if (info != 0) return 0;
    dpotri_("L", &nn, h, &nn, &info);
    if (info != 0) return 0;
    for (int64_t j = 0; j < n; j++) // mirror the lower triangle (i >= j) into the upper
        for (int64_t i = j + 1; i < n; i++) h[j + i * n] = h[i + j * n];
    dpotrf_("U", &nn, h, &nn, &info);
    return info == 0;
}

static int *dead_columns(const double *H, int64_t cols) {
    int *dead = xcalloc((size_t)cols + 1, sizeof(int));
    for (int64_t j = 0; j < cols; j++) dead[j] = H[j * cols + j] == 0.0;
    return dead;
}

int gptq_quantize(const real *w, int64_t rows, int64_t cols, const double *H, const uint16_t *scales, int qmax,
                  int8_t *q) {
    int *dead = dead_columns(H, cols);
    double *diag = xmalloc(sizeof(double) * (size_t)cols + 8), mean = 0;
    for (int64_t j = 0; j < cols; j++) {
        diag[j] = dead[j] ? 1.0 : H[j * cols + j];
        mean += diag[j];
    }
    double damp = GPTQ_DAMP * mean / (double)cols;
    for (int64_t j = 0; j < cols; j++) diag[j] += damp;
    int64_t *perm = xmalloc(sizeof(int64_t) * (size_t)cols + 8);
    for (int64_t j = 0; j < cols; j++) perm[j] = j;
    g_sort_diag = diag;
    qsort(perm, (size_t)cols, sizeof(int64_t), by_diag_desc);
    double *u = xmalloc(sizeof(double) * (size_t)(cols * cols) + 8);
    for (int64_t a = 0; a < cols; a++)
        for (int64_t b = 0; b < cols; b++)
            u[a + b * cols] = a == b ? diag[perm[a]] : H[perm[a] * cols + perm[b]];
    int ok = upper_factor_of_inverse(u, cols);
    if (ok) { // row-major copy of U's rows: the error update walks U[j][j+1..]
        double *ut = xmalloc(sizeof(double) * (size_t)(cols * cols) + 8);
        for (int64_t j = 0; j < cols; j++)
            for (int64_t k = j; k < cols; k++) ut[j * cols + k] = u[j + k * cols];
        free(u);
        u = ut;
#pragma omp parallel
        {
            double *row = xmalloc(sizeof(double) * (size_t)cols + 8);
#pragma omp for schedule(dynamic, 4)
            for (int64_t r = 0; r < rows; r++) {
                double s = f16_to_f32(scales[r]);
                for (int64_t j = 0; j < cols; j++) row[j] = dead[perm[j]] ? 0.0 : (double)w[r * cols + perm[j]];
                for (int64_t j = 0; j < cols; j++) {
                    double v = s > 0 ? fmin(fmax(rint(row[j] / s), (double)-qmax), (double)qmax) : 0.0;
                    q[r * cols + perm[j]] = (int8_t)v;
                    const double *uj = u + j * cols;
                    double err = (row[j] - v * s) / uj[j];
                    for (int64_t k = j + 1; k < cols; k++) row[k] -= err * uj[k];
                }
            }
            free(row);
        }
    }
    free(u);
    free(perm);
    free(diag);
    free(dead);
    return ok;
}

double gptq_mse(const real *w, int64_t rows, int64_t cols, const double *H, const int8_t *q, const uint16_t *scales) {
    int *dead = dead_columns(H, cols);
    double err = 0;
    for (int64_t r = 0; r < rows; r++) {
        double s = f16_to_f32(scales[r]);
        for (int64_t c = 0; c < cols; c++) {
            double d = (dead[c] ? 0.0 : (double)w[r * cols + c]) - q[r * cols + c] * s;
            err += d * d;
        }
    }
    free(dead);
    return err / (double)(rows * cols);
}

double gptq_output_error(const real *w, int64_t rows, int64_t cols, const double *H, const int8_t *q,
                         const uint16_t *scales) {
    double num = 0, den = 0;
    double *d = xmalloc(sizeof(double) * (size_t)cols + 8), *x = xmalloc(sizeof(double) * (size_t)cols + 8);
    for (int64_t r = 0; r < rows; r++) {
        double s = f16_to_f32(scales[r]);
        for (int64_t c = 0; c < cols; c++) {
            x[c] = w[r * cols + c];
            d[c] = x[c] - q[r * cols + c] * s;
        }
        for (int64_t a = 0; a < cols; a++) {
            double hd = 0, hx = 0;
            for (int64_t b = 0; b < cols; b++) {
                hd += H[a * cols + b] * d[b];
                hx += H[a * cols + b] * x[b];
            }
            num += d[a] * hd;
            den += x[a] * hx;
        }
    }
    free(d);
    free(x);
    return den > 0 ? num / den : 0.0;
}

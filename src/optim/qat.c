#include "optim/qat.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void qat_fake_quantize_rows(real *w, int rows, int cols) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        real *row = w + (size_t)r * cols;
        float amax = 0;
        for (int k = 0; k < cols; k++) amax = fmaxf(amax, fabsf((float)row[k]));
        float s = fmaxf(amax / 31.0f, 1.0f / 31.0f);
        for (int k = 0; k < cols; k++) row[k] = (real)(fminf(fmaxf(nearbyintf((float)row[k] / s), -32), 31) * s);
    }
}

static int quantized(const GPT *m, int t) { return m->groups[t] == GROUP_MATRIX || m->groups[t] == GROUP_HEAD; }

void qat_begin(QatState *q, GPT *m) {
    if (!q->saved) q->saved = xmalloc(sizeof(real) * m->n_params);
    for (int t = 0; t < m->param_list.count; t++) {
        TensorView *p = &m->param_list.items[t];
        if (!quantized(m, t)) continue;
        size_t off = (size_t)(p->data - m->params), n = (size_t)tensor_numel(p);
        memcpy(q->saved + off, p->data, sizeof(real) * n);
        qat_fake_quantize_rows(p->data, (int)p->shape[0], (int)p->shape[1]);
    }
}

void qat_end(QatState *q, GPT *m) {
    for (int t = 0; t < m->param_list.count; t++) {
        TensorView *p = &m->param_list.items[t];
        if (!quantized(m, t)) continue;
        size_t off = (size_t)(p->data - m->params);
        memcpy(p->data, q->saved + off, sizeof(real) * (size_t)tensor_numel(p));
    }
}

void qat_free(QatState *q) {
    free(q->saved);
    q->saved = NULL;
}

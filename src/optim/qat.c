#include "optim/qat.h"

#include <stdlib.h>

#include "ops/ops.h"
#include "util.h"

static int quantized(const GPT *m, int t) { return m->groups[t] == GROUP_MATRIX || m->groups[t] == GROUP_HEAD; }

void qat_begin(QatState *q, GPT *m) {
    if (!q->saved) q->saved = ops_alloc(m->n_params);
    for (int t = 0; t < m->param_list.count; t++) {
        TensorView *p = &m->param_list.items[t];
        if (!quantized(m, t)) continue;
        size_t off = (size_t)(p->data - m->params), n = (size_t)tensor_numel(p);
        ops_copy(q->saved + off, p->data, n);
        fake_quantize_rows(p->data, (int)p->shape[0], (int)p->shape[1]);
    }
}

void qat_end(QatState *q, GPT *m) {
    for (int t = 0; t < m->param_list.count; t++) {
        TensorView *p = &m->param_list.items[t];
        if (!quantized(m, t)) continue;
        size_t off = (size_t)(p->data - m->params);
        ops_copy(p->data, q->saved + off, (size_t)tensor_numel(p));
    }
}

void qat_free(QatState *q) {
    ops_free(q->saved);
    q->saved = NULL;
}

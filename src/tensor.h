// A named view of a tensor of reals: how the model's parameters, optimizer state and gradients are
// handed to checkpoints, export and optimizers. Names follow train_gpt.py's state_dict.
#pragma once
#include <stdint.h>

#include "real.h"

#define TENSOR_MAX_DIMS 4
#define TENSOR_NAME_MAX 128

typedef struct {
    char name[TENSOR_NAME_MAX];
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    real *data; // numel values, owned elsewhere
} TensorView;

static inline int64_t tensor_numel(const TensorView *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

// A list of views, e.g. the model's parameters in state_dict order.
typedef struct {
    TensorView *items;
    int count;
} TensorList;

const TensorView *tensor_list_find(const TensorList *list, const char *name); // NULL if absent

// Whether a tensor is a control tensor: its name contains one of the records'
// CONTROL_TENSOR_NAME_PATTERNS (attn_scale, resid_mix, q_gain, skip_weights, smear, attn_gate, ...).
// Control tensors train with the scalar Adam group even when 2-D and are kept float at export.
int tensor_is_control(const char *name);
// The records' list (2026-03-25_ValCalib_GPTQ_XSA_BigramHash3072) plus #1435/#2005's skip_gates; the
// root train_gpt.py has the first nine, and its models have no tensor the others would match.
#define TENSOR_CONTROL_PATTERNS_DEFAULT                                                                         \
    "attn_scale,attn_scales,mlp_scale,mlp_scales,resid_mix,resid_mixes,q_gain,skip_weight,skip_weights,"     \
    "skip_gates,smear,dtg_gate,ve_layer_scales,ve_shared.scale,attn_gate,vr_lambda"
void tensor_set_control_patterns(const char *csv); // "attn_scale,resid_mix,..." (CONTROL_TENSOR_NAME_PATTERNS)

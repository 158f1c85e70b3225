#include "tensor.h"

#include <string.h>

const TensorView *tensor_list_find(const TensorList *list, const char *name) {
    for (int i = 0; i < list->count; i++)
        if (!strcmp(list->items[i].name, name)) return &list->items[i];
    return NULL;
}

// The records' list (2026-03-25_ValCalib_GPTQ_XSA_BigramHash3072) plus #1435/#2005's skip_gates; the
// root train_gpt.py has the first nine, and its models have no tensor the others would match.
static const char *const CONTROL_PATTERNS[] = {
    "attn_scale", "attn_scales", "mlp_scale", "mlp_scales", "resid_mix", "resid_mixes", "q_gain", "skip_weight",
    "skip_weights", "skip_gates", "smear", "dtg_gate", "ve_layer_scales", "ve_shared.scale", "attn_gate", "vr_lambda"};

int tensor_is_control(const char *name) {
    for (size_t k = 0; k < sizeof CONTROL_PATTERNS / sizeof CONTROL_PATTERNS[0]; k++)
        if (strstr(name, CONTROL_PATTERNS[k])) return 1;
    return 0;
}

// Quantization-aware training as the records do it (#638's CastedLinear): while on, every linear
// weight of the forward and backward is its int6 fake-quantized copy, and the gradient so computed
// updates the float weights (the straight-through estimator). QAT_ENABLED turns it on from the
// start, LATE_QAT once the lr multiplier drops below QAT_THRESHOLD.
#pragma once
#include "model/gpt.h"

typedef struct {
    real *saved; // the float weights while the fake-quantized ones (ops.h's fake_quantize_rows) are in the model
} QatState;

// Saves the linear weights (Muon's matrices and an untied lm_head) and puts their fake-quantized
// values in their place; qat_end puts the float weights back (before the optimizer step).
void qat_begin(QatState *q, GPT *m);
void qat_end(QatState *q, GPT *m);
void qat_free(QatState *q);

// The final evaluation as configured: plain (train_gpt.py's eval_val) or sliding windows
// (EVAL_STRIDE, EVAL_SEQ_LEN), optionally with legal score-first TTT (TTT_*) and a PPM-C mixer
// (PPM_ORDER, PPM_ALPHA). Logs the mode lines; TTT changes m's weights.
#pragma once
#include <stdint.h>

#include "config.h"
#include "eval/eval_val.h"
#include "model/gpt.h"

typedef struct {
    double val_loss, val_bpb;         // the network alone (after TTT when it ran)
    double ppm_val_loss, ppm_val_bpb; // mixed with PPM-C, when PPM_ORDER > 0
} EvalReport;

void eval_final(GPT *m, const Config *c, const uint16_t *val, int64_t n, const ByteTables *bt, int64_t max_tokens,
                EvalReport *r);
// PPM-C mixing over positions [0, n - 1): mixed[p] = -log(alpha exp(-nll[p]) + (1 - alpha) p_ppm), the PPM
// model updated with each target only after its position was mixed.
void ppm_mix(const uint16_t *val, int64_t n, const double *nll, int order, double alpha, int vocab, double *mixed);

#include "presets.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

// The #413 ablation (README run command; everything it leaves unset is that script's default).
// pgolf deviations, all small: #413's Muon normalizes update rows after Newton-Schulz and trains
// attn_gate.weight with Muon; pgolf uses its standard Muon and, as #638 does, Adam for attn_gate.
#define PR413_BASE                                                                                                   \
    "VOCAB_SIZE=1024\nNUM_LAYERS=9\nMODEL_DIM=512\nNUM_HEADS=8\nNUM_KV_HEADS=4\nMLP_MULT=2\nTRAIN_SEQ_LEN=1024\n"      \
    "TRAIN_BATCH_TOKENS=131072\nITERATIONS=1000\nWARMDOWN_ITERS=3000\nWARMUP_STEPS=20\nMAX_WALLCLOCK_SECONDS=600\n"  \
    "SMEAR_GATE=1\nBIGRAM_VOCAB_SIZE=4096\nBIGRAM_DIM=128\nORTHO_INIT=1\nORTHO_PROJ_SCALE=1\nMUON_WD=0.04\n"          \
    "ADAM_WD=0.04\nMATRIX_LR=0.02\nSCALAR_LR=0.02\nTIED_EMBED_LR=0.05\nMUON_MOMENTUM=0.99\n"                         \
    "MUON_MOMENTUM_WARMUP_START=0.92\nMUON_MOMENTUM_WARMUP_STEPS=1500\nGRAD_CLIP_NORM=0.3\nVALUE_RESIDUAL_FORM=scalar\n" \
    "QUANT_SCHEME=int6\nCOMPRESSOR=zstd\nCOMPRESSOR_LEVEL=22\nEVAL_SEQ_LEN=1024\nEVAL_STRIDE=128\n"

static const Preset PRESETS[] = {
    {"pr413-control", "#413's ablation control: 9x512, SmearGate, BigramHash 4096, OrthoInit, WD 0.04, 1000 steps",
     PR413_BASE "GATED_ATTENTION=0\nVALUE_RESIDUAL=0\n", 17650249},
    {"pr413-ga", "#413 control + gated attention", PR413_BASE "GATED_ATTENTION=1\nVALUE_RESIDUAL=0\n", 17687185},
    {"pr413-vr", "#413 control + value residual (vr_lambda)", PR413_BASE "GATED_ATTENTION=0\nVALUE_RESIDUAL=1\n", 17650267},
    {"pr413-gavr", "#413 control + gated attention + value residual (its 1.4525)",
     PR413_BASE "GATED_ATTENTION=1\nVALUE_RESIDUAL=1\n", 17687203},
    // #638's record 2026-03-25_XSA_all_LeakyReLU_VR_GA (README run command = the PR head's defaults).
    // Deviation: its Rotary is built for seq 1024, so at 2048 it stretches the RoPE base (NTK) to
    // about 22,080; pgolf keeps ROPE_BASE=10000.
    {"pr638", "#638 (1.1164): 11x512, MLP 3x leaky^2, XSA all, VR + GA, partial RoPE 16, LN scale, EMA, int6 + zstd",
     "VOCAB_SIZE=1024\nNUM_LAYERS=11\nMODEL_DIM=512\nNUM_HEADS=8\nNUM_KV_HEADS=4\nMLP_MULT=3\nNEGATIVE_SLOPE=0.5\n"
     "TRAIN_SEQ_LEN=2048\nEVAL_SEQ_LEN=2048\nTRAIN_BATCH_TOKENS=786432\nITERATIONS=7500\nWARMDOWN_ITERS=3500\n"
     "WARMUP_STEPS=20\nMAX_WALLCLOCK_SECONDS=0\nMATRIX_LR=0.025\nSCALAR_LR=0.025\nTIED_EMBED_LR=0.035\n"
     "MUON_MOMENTUM=0.99\nMUON_MOMENTUM_WARMUP_START=0.92\nMUON_MOMENTUM_WARMUP_STEPS=1500\nMUON_WD=0.04\nADAM_WD=0.04\n"
     "GRAD_CLIP_NORM=0.3\nXSA_LAST_N=11\nROPE_DIMS=16\nLN_SCALE=1\nVALUE_RESIDUAL=1\nVALUE_RESIDUAL_FORM=scalar\n"
     "GATED_ATTENTION=1\nBIGRAM_VOCAB_SIZE=4096\nBIGRAM_DIM=128\nSMEAR_GATE=1\nORTHO_INIT=1\nORTHO_PROJ_SCALE=1\n"
     "EMA_ENABLED=1\nEMA_DECAY=0.997\nQUANT_SCHEME=int6\nCOMPRESSOR=zstd\nCOMPRESSOR_LEVEL=21\nEVAL_STRIDE=64\n",
     27137223},
};
#define N_PRESETS ((int)(sizeof PRESETS / sizeof PRESETS[0]))

const Preset *preset_find(const char *name) {
    for (int i = 0; i < N_PRESETS; i++)
        if (!strcmp(PRESETS[i].name, name)) return &PRESETS[i];
    return NULL;
}

const Preset *preset_at(int i) { return i >= 0 && i < N_PRESETS ? &PRESETS[i] : NULL; }

void preset_die_unknown(const char *name) {
    char names[512] = "";
    for (int i = 0; i < N_PRESETS; i++) {
        strncat(names, i ? ", " : "", sizeof names - strlen(names) - 1);
        strncat(names, PRESETS[i].name, sizeof names - strlen(names) - 1);
    }
    die("unknown preset '%s' (presets: %s)", name, names);
}

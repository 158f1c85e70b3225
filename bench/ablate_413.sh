#!/usr/bin/env bash
# #413's ablation in small on the built-in data (KJV, `pgolf prep`): control, gated attention, value
# residual and both, each over ABLATE_SEEDS, with #413's common stack (SmearGate, BigramHash, OrthoInit,
# weight decay 0.04) on a 4x128 model for 300 steps. Prints `pgolf ablate`'s table; about 40 minutes on
# 2 cores (16 runs). Every setting can be overridden from the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
export DATA_PATH=${DATA_PATH:-data/datasets/kjv_sp1024} TOKENIZER_PATH=${TOKENIZER_PATH:-data/tokenizers/kjv_1024_bpe.model}
[ -f "$TOKENIZER_PATH" ] || ./pgolf prep
export NUM_LAYERS=${NUM_LAYERS:-4} MODEL_DIM=${MODEL_DIM:-128} NUM_HEADS=${NUM_HEADS:-4} NUM_KV_HEADS=${NUM_KV_HEADS:-2}
export TRAIN_SEQ_LEN=${TRAIN_SEQ_LEN:-128} TRAIN_BATCH_TOKENS=${TRAIN_BATCH_TOKENS:-4096} GRAD_ACCUM_STEPS=${GRAD_ACCUM_STEPS:-1}
export ITERATIONS=${ITERATIONS:-300} WARMDOWN_ITERS=${WARMDOWN_ITERS:-100} WARMUP_STEPS=0 MAX_WALLCLOCK_SECONDS=0
export VAL_LOSS_EVERY=0 TRAIN_LOG_EVERY=100 VAL_MAX_TOKENS=${VAL_MAX_TOKENS:-65536} OUT_DIR=${OUT_DIR:-runs/ablate_413}
export SMEAR_GATE=1 BIGRAM_VOCAB_SIZE=4096 BIGRAM_DIM=64 ORTHO_INIT=1 MUON_WD=0.04 ADAM_WD=0.04 MATRIX_LR=0.02 SCALAR_LR=0.02
export ABLATE_SEEDS=${ABLATE_SEEDS:-1337,42,2024,7}
./pgolf ablate control: ga:GATED_ATTENTION=1 vr:VALUE_RESIDUAL=1 gavr:GATED_ATTENTION=1,VALUE_RESIDUAL=1

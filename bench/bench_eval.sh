#!/usr/bin/env bash
# Evaluation benchmark: throughput (tokens/s) and val_bpb of one artifact under the plain evaluation,
# sliding windows (stride 64), PPM-C mixing, and score-first TTT. Figures only.
#
#   ARTIFACT=runs/demo/final_model.int8.ptz bash bench/bench_eval.sh
# The model's shape and data come from the demo's settings unless set in the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
ARTIFACT=${ARTIFACT:-runs/demo/final_model.int8.ptz}
[ -f "$ARTIFACT" ] || { echo "bench_eval: $ARTIFACT not found (run: bash scripts/demo.sh)" >&2; exit 1; }
make -s pgolf >/dev/null
export DATA_PATH=${DATA_PATH:-data/datasets/kjv_sp1024} TOKENIZER_PATH=${TOKENIZER_PATH:-data/tokenizers/kjv_1024_bpe.model}
export TRAIN_SEQ_LEN=${TRAIN_SEQ_LEN:-256} TRAIN_BATCH_TOKENS=${TRAIN_BATCH_TOKENS:-8192} GRAD_ACCUM_STEPS=${GRAD_ACCUM_STEPS:-1}
export VAL_MAX_TOKENS=${VAL_MAX_TOKENS:-65536}
printf "%-34s %10s %12s %12s\n" method val_bpb seconds tokens_per_s
for method in "plain:" "sliding 64:--stride 64" "sliding 64 + ppm-c 2:--stride 64 --ppm 2" \
              "ttt (chunk 16384, 3 ep):--ttt 1 --ttt-chunk-tokens 16384" "sliding 64 + ttt:--stride 64 --ttt 1 --ttt-chunk-tokens 16384"; do
  name=${method%%:*} args=${method#*:}
  # shellcheck disable=SC2086 # $args is a list of flags
  log=$(./pgolf eval "$ARTIFACT" $args 2>/dev/null)
  bpb=$(grep -o 'final_eval_exact val_loss:[0-9.]* val_bpb:[0-9.]*' <<<"$log" | sed 's/.*val_bpb://')
  ppm=$(grep -o 'final_eval_ppm_exact val_loss:[0-9.]* val_bpb:[0-9.]*' <<<"$log" | sed 's/.*val_bpb://' || true)
  ms=$(grep -o 'eval_time:[0-9]*ms' <<<"$log" | tr -dc 0-9)
  tokens=$(grep -o 'ms tokens:[0-9]*' <<<"$log" | cut -d: -f2)
  [ -n "$ppm" ] && bpb="$bpb -> $ppm (mixed)"
  awk -v n="$name" -v b="$bpb" -v ms="$ms" -v t="$tokens" 'BEGIN { printf "%-34s %10s %12.1f %12.0f\n", n, b, ms / 1000, t / (ms / 1000) }'
done

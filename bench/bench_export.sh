#!/usr/bin/env bash
# Export benchmark: re-exports one trained model (ITERATIONS=0 INIT_CHECKPOINT=...) with every
# quantization scheme x compressor and prints bytes, round-trip val_bpb, the delta against the
# unquantized model, and export time. Figures only; nothing passes or fails.
#
#   MODEL=runs/demo/final_model.safetensors bash bench/bench_export.sh
# The model's shape comes from the same environment as the demo (4 x 256, seq 256 on the KJV data);
# `bash scripts/demo.sh` makes one.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-runs/demo/final_model.safetensors}
[ -f "$MODEL" ] || { echo "bench_export: $MODEL not found (run: bash scripts/demo.sh)" >&2; exit 1; }
make -s pgolf >/dev/null
export DATA_PATH=${DATA_PATH:-data/datasets/kjv_sp1024} TOKENIZER_PATH=${TOKENIZER_PATH:-data/tokenizers/kjv_1024_bpe.model}
export NUM_LAYERS=${NUM_LAYERS:-4} MODEL_DIM=${MODEL_DIM:-256} NUM_HEADS=${NUM_HEADS:-4} NUM_KV_HEADS=${NUM_KV_HEADS:-2}
export TRAIN_SEQ_LEN=${TRAIN_SEQ_LEN:-256} TRAIN_BATCH_TOKENS=${TRAIN_BATCH_TOKENS:-8192} GRAD_ACCUM_STEPS=${GRAD_ACCUM_STEPS:-1}
export ITERATIONS=0 WARMUP_STEPS=0 INIT_CHECKPOINT="$MODEL" RUN_ID=bench_export
out=$(mktemp -d)
printf "%-28s %-16s %12s %10s %10s %10s\n" scheme compressor bytes val_bpb delta export_s
for scheme in "QUANT_SCHEME=int8" "QUANT_SCHEME=int6" "QUANT_SCHEME=int6-lite" "QUANT_SCHEME=gptq GPTQ_CLIP=sdclip" \
              "QUANT_SCHEME=gptq GPTQ_CLIP=search"; do
  for comp in "zlib 0" "zstd 0" "brotli 0" "brotli 1" "lzma 0" "lzma 1"; do
    set -- $comp
    # shellcheck disable=SC2086 # $scheme is a list of settings
    log=$(env $scheme COMPRESSOR=$1 BYTE_SHUFFLE=$2 OUT_DIR="$out" ./pgolf train 2>/dev/null)
    base=$(grep -o 'step:0/0 val_loss:[0-9.]* val_bpb:[0-9.]*' <<<"$log" | sed 's/.*val_bpb://')
    bpb=$(grep -o 'roundtrip_exact val_loss:[0-9.]* val_bpb:[0-9.]*' <<<"$log" | sed 's/.*val_bpb://')
    bytes=$(grep -o '^Serialized model [a-z0-9_]*+[a-z]*: [0-9]*' <<<"$log" | awk '{print $NF}')
    ms=$(grep -o 'export_time:[0-9]*' <<<"$log" | cut -d: -f2)
    label=$1
    if [ "$2" = 1 ]; then label="$1+shuffle"; fi
    awk -v s="${scheme#QUANT_SCHEME=}" -v c="$label" -v b="$bytes" -v v="$bpb" -v base="$base" -v ms="$ms" \
      'BEGIN { printf "%-28s %-16s %12s %10.4f %+10.4f %10.2f\n", s, c, b, v, v - base, ms / 1000 }'
  done
done
echo "unquantized val_bpb: $base"
rm -rf "$out"

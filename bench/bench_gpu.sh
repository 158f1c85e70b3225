#!/usr/bin/env bash
# GPU benchmark (issue 6), for the machine with an NVIDIA GPU: ms/step, tokens/s, achieved TFLOP/s and
# model FLOP utilisation of ./pgolf-cuda (bf16 tensor cores, then train_gpt.py run the same way when
# REF_DIR holds it, then pgolf-cuda in fp32) for the baseline shape (TRAIN_BATCH_TOKENS=524288, seq
# 1024) and #638's shape. Bring the reference script in an ignored folder (e.g. runs/ref/train_gpt.py;
# never commit it). Needs sp1024 shards in DATA_PATH. PEAK_TFLOPS: the GPU's dense bf16 peak for the
# MFU column (989 for an H100 or H200 SXM). RUN_TIMEOUT (seconds) caps each run; a run stopped by it
# is still reported from its last logged step (TRAIN_LOG_EVERY=1). RUNS picks the runs (default
# "bf16 ref fp32"; bf16-pgolf-attention: bf16 with PGOLF_CUDA_ATTENTION=pgolf, pgolf's attention kernels
# where the build also has cuDNN's). CUDA_MAKE_ARGS: extra arguments for building pgolf-cuda, e.g.
# "$(bash scripts/cudnn.sh)". Prints one line per run; paste them into bench/RESULTS.md with the
# device name.
set -euo pipefail
cd "$(dirname "$0")/.."
make -j"$(nproc)" pgolf pgolf-cuda ${CUDA_MAKE_ARGS:-} >/dev/null
export DATA_PATH=${DATA_PATH:-./data/datasets/fineweb10B_sp1024} TOKENIZER_PATH=${TOKENIZER_PATH:-./data/tokenizers/fineweb_1024_bpe.model}
STEPS=${STEPS:-20} PEAK_TFLOPS=${PEAK_TFLOPS:-989} RUN_TIMEOUT=${RUN_TIMEOUT:-600} RUNS=${RUNS:-bf16 ref fp32}
device=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || echo unknown)
common="ITERATIONS=$STEPS WARMUP_STEPS=3 VAL_LOSS_EVERY=0 VAL_MAX_TOKENS=65536 TRAIN_LOG_EVERY=1 MAX_WALLCLOCK_SECONDS=0"

# step_avg of the last logged step, and the model FLOPs per token: 6 x the parameters (the tied
# embedding is also the head) plus the causal attention's 6 x layers x dim x seq; `wall`: the whole
# run's seconds (build-up, torch.compile, evaluation and export included), for planning device time
step_ms() { (grep -so 'step_avg:[0-9.]*ms' "$1" || true) | tail -1 | tr -dc '0-9.'; } # of a log, or nothing
report() { # name, log file, tokens per step, params, layers, dim, seq, wall seconds
    local ms; ms=$(step_ms "$2")
    if [ -z "$ms" ]; then echo "$1 FAILED after $8 s: $(tail -1 "$2")"; return; fi
    awk -v n="$1" -v ms="$ms" -v tok="$3" -v p="$4" -v l="$5" -v d="$6" -v s="$7" -v wall="$8" -v dev="$device" \
        -v peak="$PEAK_TFLOPS" 'BEGIN {
        f = 6 * p + 6 * l * d * s; tps = tok / (ms / 1000); tf = f * tps / 1e12;
        printf "%-32s %s  ms/step %.1f  tokens/s %.0f  TFLOP/s %.1f  MFU %.1f%%  wall %d s\n", n, dev, ms, tps, tf,
            100 * tf / peak, wall }'
}

run_shape() { # name, env settings, matrix params, layers, dim, seq, tokens per step
    local name=$1 settings=$2 log rc label start
    mkdir -p runs/bench_gpu
    for run in $RUNS; do # bf16: tensor cores (pgolf-cuda's default); ref: the reference; fp32: CUDA cores
        log=runs/bench_gpu/$name-$run.log rc=0 start=$SECONDS
        if [ $run = ref ]; then
            [ -n "${REF_DIR:-}" ] && [ -f "$REF_DIR/train_gpt.py" ] || continue
            timeout "$RUN_TIMEOUT" env $common $settings RUN_ID=ref_$name \
                python3 -m torch.distributed.run --standalone --nproc_per_node=1 "$REF_DIR/train_gpt.py" > "$log" 2>&1 || rc=$?
        else
            local precision=${run%%-*} attention=pgolf
            [ "$run" = bf16-pgolf-attention ] || attention= # the build's default
            timeout "$RUN_TIMEOUT" env $common $settings MATMUL_PRECISION=$precision PGOLF_CUDA_ATTENTION=$attention \
                OUT_DIR=runs/bench_gpu/$name-$run RUN_ID=$name-$run ./pgolf-cuda train > "$log" 2>&1 || rc=$?
        fi
        label="pgolf-cuda $run $name"
        [ $run = ref ] && label="train_gpt.py $name"
        case $rc in 0) ;; 124) label="$label (stopped at ${RUN_TIMEOUT}s)" ;; *) label="$label (exit $rc)" ;; esac
        report "$label" "$log" "$7" "$3" "$4" "$5" "$6" $((SECONDS - start))
    done
    # the issue's comparison, when this call ran both
    [[ " $RUNS " == *" bf16 "* && " $RUNS " == *" ref "* ]] || return 0
    local pg rf; pg=$(step_ms runs/bench_gpu/$name-bf16.log) rf=$(step_ms runs/bench_gpu/$name-ref.log)
    if [ -n "$pg" ] && [ -n "$rf" ]; then
        awk -v n="$name" -v pg="$pg" -v rf="$rf" -v dev="$device" 'BEGIN {
            printf "%s on %s: pgolf-cuda bf16 %.1f ms/step, train_gpt.py %.1f: pgolf-cuda %s (%.2fx the reference'"'"'s speed)\n",
                n, dev, pg, rf, pg < rf ? "faster" : "NOT faster", rf / pg }'
    fi
}

params() { env "$@" ./pgolf info | grep -o 'model_params:[0-9]*' | tr -dc '0-9'; } # counted on the CPU build
baseline="TRAIN_BATCH_TOKENS=524288 TRAIN_SEQ_LEN=1024"
# #638's shape (11 x 512, MLP 3x, seq 2048, 786,432 tokens per step) with the baseline's math, which
# both programs share
shape638="NUM_LAYERS=11 MLP_MULT=3 TRAIN_SEQ_LEN=2048 TRAIN_BATCH_TOKENS=786432"
for shape in ${SHAPES:-baseline shape638}; do # SHAPES picks (one call on the device machine may not fit both)
    case $shape in
    baseline) run_shape baseline "$baseline" "$(params $baseline)" 9 512 1024 524288 ;;
    shape638) run_shape shape638 "$shape638" "$(params $shape638)" 11 512 2048 786432 ;;
    *) echo "unknown shape $shape (baseline, shape638)" >&2; exit 2 ;;
    esac
done

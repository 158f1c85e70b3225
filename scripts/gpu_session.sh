#!/usr/bin/env bash
# Issue 6's checks on the lent GPU machine (see scripts/gpu_carry.sh for what travels and how to call
# it). `test`: install the carried libraries into gpu_carry/root where the image lacks them, build
# pgolf and pgolf-cuda (with cuDNN's attention where scripts/cudnn.sh finds cuDNN and the carried
# cudnn-frontend headers; without it if that build fails), run the CUDA tests (every kernel against the
# CPU, the training runs against pgolf; the attention ones again with PGOLF_CUDA_ATTENTION=pgolf) and
# the per-op benchmark (build/bench_cuda_ops, with either attention). `bench`: bench/bench_gpu.sh on
# the carried KJV shards, with train_gpt.py when it was carried. `profile`: three baseline steps of
# pgolf-cuda under PGOLF_CUDA_PROFILE (time per CUDA call site), and Nsight Compute's speed-of-light
# section for pgolf's attention kernels where ncu works. `all`: test, the baseline benchmark (pgolf-cuda
# bf16 with each attention, the reference), profile, then #638's shape (10 steps each; the fp32 runs,
# 100x slower, only with `bench`), every stage cut short so that the whole ends within DEADLINE seconds
# (default 540); `quick` and `record`: less (below). BASELINE_RUNS and SHAPE638_RUNS pick bench_gpu.sh's RUNS
# for each shape, NCU=0 skips ncu. Logs go to $OUT (the device tool brings them back) or runs/gpu_session.
set -uo pipefail
cd "$(dirname "$0")/.."
carry=$PWD/gpu_carry out=${OUT:-runs/gpu_session} deadline=${DEADLINE:-540}
mkdir -p "$out"
root=$carry/root lib=$carry/root/usr/lib/x86_64-linux-gnu
if [ ! -d "$root" ]; then
    for f in "$carry"/debs/*.deb; do dpkg -x "$f" "$root"; done
fi
export OPENBLAS_INC=$root/usr/include/x86_64-linux-gnu/openblas-openmp
export CFLAGS="-O3 -march=native -I$root/usr/include -I$root/usr/include/x86_64-linux-gnu"
# DT_RPATH (not RUNPATH) also serves the libraries' own dependencies, and leaves other programs
# (PyTorch for the reference) on the image's libraries
export LDFLAGS="-L$lib/openblas-openmp -L$lib -Wl,--disable-new-dtags -Wl,-rpath,$lib/openblas-openmp -Wl,-rpath,$lib"
export PGOLF_SHARED_DATA=$carry PATH=$PATH:/usr/local/cuda/bin
# the lent machines are Hopper (H100, H200): one device pass instead of the default two saves build time
export CUDA_ARCHS=${CUDA_ARCHS:--gencode arch=compute_90,code=sm_90}
export DATA_PATH=$carry/data/kjv_sp1024 TOKENIZER_PATH=$carry/data/kjv_1024_bpe.model

# runs "$@" for at most cap seconds and never past the deadline
within() { # cap, command...
    local cap=$1 left=$((deadline - SECONDS)); shift
    [ "$left" -lt "$cap" ] && cap=$left
    if [ "$cap" -le 5 ]; then echo "skipped (deadline): $*"; return 124; fi
    timeout "$cap" "$@"
}

# pgolf-cuda with cuDNN's attention where it builds, else without (CUDA_MAKE_ARGS: what bench_gpu.sh's
# make gets too)
build() {
    export CUDNN_FRONTEND=$carry/cudnn_frontend/include
    CUDA_MAKE_ARGS=$(bash scripts/cudnn.sh 2>> "$out/build.txt")
    export CUDA_MAKE_ARGS
    if ! within 300 make -j"$(nproc)" pgolf cuda $CUDA_MAKE_ARGS >> "$out/build.txt" 2>&1 && [ -n "$CUDA_MAKE_ARGS" ]; then
        echo "the cuDNN build failed (build.txt): building without it"; tail -15 "$out/build.txt"
        CUDA_MAKE_ARGS=
        rm -f pgolf-cuda build/run_cuda_tests build/bench_cuda_ops
        within 240 make -j"$(nproc)" pgolf cuda >> "$out/build.txt" 2>&1 || { tail -30 "$out/build.txt"; exit 1; }
    fi
    [ -x pgolf-cuda ] || { tail -30 "$out/build.txt"; exit 1; }
}

run_tests() {
    { nvidia-smi; nvcc --version; } > "$out/device.txt" 2>&1
    build
    within 240 build/run_cuda_tests 2>&1 | tee "$out/cuda_tests.txt" | grep -E '^(ok|FAIL|skip)|passed|cuDNN'
    if [ -n "$CUDA_MAKE_ARGS" ] && [ "${ALSO_PGOLF_ATTENTION:-1}" = 1 ]; then # pgolf's own attention kernels too
        within 120 env PGOLF_CUDA_ATTENTION=pgolf build/run_cuda_tests attention 2>&1 | tee "$out/cuda_tests_pgolf_attention.txt" |
            grep -E '^(ok|FAIL|skip)|passed'
        within 60 env PGOLF_CUDA_ATTENTION=pgolf build/run_cuda_tests warp_mma 2>&1 | grep -E '^(ok|FAIL|skip)|passed'
        within 60 env PGOLF_CUDA_ATTENTION=pgolf build/bench_cuda_ops > "$out/ops_pgolf_attention.txt" 2>&1
        grep -i attention "$out/ops_pgolf_attention.txt"
    fi
    [ "${OPS:-1}" = 1 ] && within 60 build/bench_cuda_ops 2>&1 | tee "$out/ops.txt" # per-op figures: where a step's time goes
}

run_profile() {
    within 90 env PGOLF_CUDA_PROFILE=1 ITERATIONS=3 WARMUP_STEPS=0 VAL_LOSS_EVERY=0 VAL_MAX_TOKENS=65536 MAX_WALLCLOCK_SECONDS=0 \
        TRAIN_BATCH_TOKENS=524288 TRAIN_SEQ_LEN=1024 OUT_DIR=runs/gpu_profile RUN_ID=profile \
        ./pgolf-cuda train > "$out/profile.txt" 2>&1
    grep -m 25 cuda_profile: "$out/profile.txt"
    [ "${NCU:-1}" = 1 ] && command -v ncu > /dev/null &&
        within 60 env PGOLF_CUDA_ATTENTION=pgolf ncu --section SpeedOfLight --section Occupancy --section LaunchStats -k regex:attn_.*_tc -c 3 build/bench_cuda_ops > "$out/ncu.txt" 2>&1
}

run_bench() {
    [ -f "$carry/ref/train_gpt.py" ] && export REF_DIR=$carry/ref
    STEPS=${STEPS:-20} within $((deadline - SECONDS)) bash bench/bench_gpu.sh 2>&1 | tee "$out/bench.txt"
    tar czf "$out/bench_logs_${SHAPES:-all}.tgz" runs/bench_gpu/*.log 2>/dev/null
}

case "${1:-test}" in
test) run_tests ;;
bench) build; run_bench ;;
profile) build; run_profile ;;
all)
    run_tests
    SHAPES=baseline RUNS=${BASELINE_RUNS:-bf16 bf16-pgolf-attention ref} STEPS=${STEPS:-10} RUN_TIMEOUT=${RUN_TIMEOUT:-240} \
        run_bench
    run_profile
    SHAPES=shape638 RUNS=${SHAPE638_RUNS:-bf16 ref} STEPS=${STEPS:-10} RUN_TIMEOUT=${RUN_TIMEOUT:-240} run_bench
    ;;
quick) # a first look in about three minutes: what `all` does but the fallback attention, ncu and #638's shape
    ALSO_PGOLF_ATTENTION=0 run_tests
    SHAPES=baseline RUNS=bf16 STEPS=${STEPS:-10} RUN_TIMEOUT=${RUN_TIMEOUT:-120} run_bench
    NCU=0 run_profile
    ;;
record) # what the issue's record needs and no more: the tests (TESTS=0 skips them: a second call on a
    # machine that ran them), then each shape SHAPES names (#638's first) beside the reference, whose
    # run takes ~3 minutes a shape on an H200 (torch.compile; 2026-11-26): ~9-10 minutes for both, more
    # than one call is safe to ask for, so call it per shape (scripts/gpu_carry.sh)
    if [ "${TESTS:-1}" = 1 ]; then ALSO_PGOLF_ATTENTION=0 OPS=0 run_tests; else build; fi
    SHAPES=${SHAPES:-shape638 baseline} RUNS="bf16 ref" STEPS=${STEPS:-10} RUN_TIMEOUT=${RUN_TIMEOUT:-300} run_bench
    ;;
*) echo "usage: $0 test|bench|profile|all|quick|record" >&2; exit 2 ;;
esac

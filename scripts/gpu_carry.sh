#!/usr/bin/env bash
# Prepares, on this (CPU) machine, what issue 6's GPU checks need on the lent GPU machine, which can
# fetch nothing and does not receive ../shared: the folder gpu_carry/ (in .gitignore) with Debian
# packages of the build's libraries (OpenBLAS-OpenMP, zstd, brotli, lzma, zlib; the GPU image has nvcc and
# gcc), cudnn-frontend's headers (scripts/cudnn.sh fetches them; cuDNN itself is PyTorch's there), the
# sp1024 tokenizer, the built-in KJV shards and tokenizer (speed does not depend on the text), and
# train_gpt.py from the reference repository when REF_REPO (a git directory, e.g. a
# fetched mirror of openai/parameter-golf) is given: bench_gpu.sh times it beside pgolf-cuda. Never
# commit the folder. Then, with the device tool (a call runs at most 10 minutes; a session has 15
# minutes of device time and a start costs ~30 s), what the issue asks for in two calls back to back,
# the second while the machine is still warm (it keeps the build), then give it back:
#   run(command="DEADLINE=480 SHAPES=shape638 bash scripts/gpu_session.sh record", carry=["gpu_carry"],
#       timeout_s=510)   # the tests, then #638's shape beside the reference: ~6 minutes
#   run(command="DEADLINE=420 SHAPES=baseline TESTS=0 bash scripts/gpu_session.sh record",
#       carry=["gpu_carry"], timeout_s=450)   # the baseline beside the reference: ~4-5 minutes
# (the second call's DEADLINE: at most status's budget_left_s - 30; make may rebuild first, ~1 minute)
# (the reference's run takes ~3 minutes a shape, mostly torch.compile; both shapes in one call, ~9-10
# minutes, were cut off once). `quick` (~2 minutes), `all`, `test`, `profile` and `bench` measure more
# or less (gpu_session.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
carry=gpu_carry
rm -rf "$carry"
mkdir -p "$carry/debs" "$carry/data"
(cd "$carry/debs" && apt-get download libopenblas0-openmp libopenblas-openmp-dev libgfortran5 libzstd1 libzstd-dev \
    libbrotli1 libbrotli-dev liblzma5 liblzma-dev zlib1g-dev >/dev/null)
bash scripts/cudnn.sh > /dev/null
cp -r build/cudnn_frontend "$carry/cudnn_frontend"
cp -r "${PGOLF_SHARED_DATA:-../shared/data}/tokenizers" "$carry/"
[ -f data/tokenizers/kjv_1024_bpe.model ] || { make -j2 pgolf >/dev/null && ./pgolf prep; }
cp -r data/datasets/kjv_sp1024 "$carry/data/"
cp data/tokenizers/kjv_1024_bpe.model "$carry/data/"
if [ -n "${REF_REPO:-}" ]; then
    mkdir -p "$carry/ref"
    git --git-dir="$REF_REPO" show HEAD:train_gpt.py > "$carry/ref/train_gpt.py"
fi
du -sh "$carry"

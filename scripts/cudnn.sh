#!/usr/bin/env bash
# Prints the make arguments that link cuDNN's fused attention into `make cuda` (the Makefile's
# CUDNN_HOME and CUDNN_FRONTEND), or nothing, saying why on stderr, where either is missing:
#   make cuda $(bash scripts/cudnn.sh)
# cuDNN: $CUDNN_HOME, else the one PyTorch's pip wheels installed (python3's nvidia.cudnn), else the
# CUDA toolkit's (include/cudnn.h beside nvcc's folder). cudnn-frontend, header-only: $CUDNN_FRONTEND,
# else build/cudnn_frontend/include, taken on first use from its PyPI wheel (nvidia-cudnn-frontend,
# pinned below; only its headers are used).
set -uo pipefail
cd "$(dirname "$0")/.."
frontend_version=1.32.0
say() { echo "cudnn.sh: $*" >&2; }

frontend=${CUDNN_FRONTEND:-build/cudnn_frontend/include}
if [ ! -f "$frontend/cudnn_frontend.h" ] && [ -z "${CUDNN_FRONTEND:-}" ]; then
    tmp=$(mktemp -d)
    if python3 -m pip download -q --no-deps --only-binary=:all: "nvidia-cudnn-frontend==$frontend_version" -d "$tmp" >&2; then
        rm -rf build/cudnn_frontend
        unzip -q -o "$tmp"/*.whl 'include/*' -d build/cudnn_frontend
    fi
    rm -rf "$tmp"
fi
if [ ! -f "$frontend/cudnn_frontend.h" ]; then
    say "no cudnn-frontend headers in $frontend (set CUDNN_FRONTEND): the build uses pgolf's own attention kernels"
    exit 0
fi
home=${CUDNN_HOME:-}
if [ -z "$home" ]; then
    for py in python3 /usr/bin/python3; do
        d=$("$py" -c 'import nvidia.cudnn as m; print(list(m.__path__)[0])' 2>/dev/null) &&
            [ -f "$d/include/cudnn.h" ] && { home=$d; break; }
    done
fi
if [ -z "$home" ]; then
    nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
    d=$(dirname "$(dirname "$nvcc")")
    [ -f "$d/include/cudnn.h" ] && home=$d
fi
if [ -z "$home" ]; then
    say "no cuDNN found (set CUDNN_HOME): the build uses pgolf's own attention kernels"
    exit 0
fi

say "cuDNN in $home, cudnn-frontend in $frontend"
echo "CUDNN_HOME=$home CUDNN_FRONTEND=$(cd "$frontend" && pwd)"

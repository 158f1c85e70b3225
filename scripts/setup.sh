#!/usr/bin/env bash
# Installs everything pgolf needs on Debian 12 (run as root): the compiler, the OpenMP build of
# OpenBLAS (the pthread build fights OpenMP threads; the reference BLAS is 30x slower), zlib, zstd,
# brotli and liblzma (the artifacts' compressors), xz (the source bundle whose size is the code
# bytes), SentencePiece tools for `pgolf prep`, the King James Bible as the built-in corpus, clang
# (libFuzzer, for `make fuzz`) and, for the tests, Debian's PyTorch and sentencepiece Python packages
# as the parity reference.
set -euo pipefail
packages=(build-essential libopenblas-openmp-dev libopenblas0-openmp zlib1g-dev libzstd-dev libbrotli-dev
          liblzma-dev sentencepiece bible-kjv python3-torch python3-sentencepiece python3-numpy clang xz-utils)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Make sure the OpenMP OpenBLAS is the one libblas/libopenblas resolve to.
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
if [ -e "/usr/lib/$arch/openblas-openmp/libopenblas.so.0" ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO update-alternatives --quiet --set "libopenblas.so.0-$arch" "/usr/lib/$arch/openblas-openmp/libopenblas.so.0" || true
  $SUDO update-alternatives --quiet --set "libblas.so.3-$arch" "/usr/lib/$arch/openblas-openmp/libblas.so.3" || true
fi
echo "setup: ok"

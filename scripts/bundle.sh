#!/usr/bin/env bash
# bundle.sh OUT TARGET FILE...: writes OUT, the counted code of one binary as a submission ships it: a
# short sh header, then the FILEs as a tar compressed by xz. `sh OUT [DIR [ARGS]]` unpacks them into DIR
# (default pgolf-src) and runs `make TARGET ARGS` there (a cuDNN build: CUDNN_HOME=... CUDNN_FRONTEND=...). This is the analog of the records' train_gpt.py, an
# lzma'd payload behind a two-line exec; the Makefile counts OUT's bytes against the 16,000,000.
# Deterministic for the same files (sorted names, no dates, owners or umask; xz on one thread), so the
# count compiled into the binary is the size of the bundle any build of the same sources writes.
set -euo pipefail
out=$1 target=$2
shift 2
header() {
  printf '#!/bin/sh\n# pgolf sources, an xz tar after 3 lines: sh FILE [DIR [ARGS]] unpacks them into DIR, runs make %s ARGS\n' \
    "$target"
  printf 'set -e;d=${1:-pgolf-src};[ $# -gt 0 ]&&shift;mkdir -p "$d";tail -c +%s "$0"|xz -dc|tar -xf - -C "$d";exec make -C "$d" %s "$@"\n' \
    "$1" "$target"
}
offset=1 # the payload starts right after the header, whose length depends on the offset's digits
while :; do
  next=$(($(header "$offset" | wc -c) + 1))
  [ "$next" -eq "$offset" ] && break
  offset=$next
done
# xz -9e on one thread; where xz is not installed (a bare GPU image), Python's lzma writes the same bytes
compress() {
  if command -v xz >/dev/null; then
    xz -9e -T1 -c
  else
    python3 -c 'import lzma, sys
sys.stdout.buffer.write(lzma.compress(sys.stdin.buffer.read(), lzma.FORMAT_XZ, lzma.CHECK_CRC64, 9 | lzma.PRESET_EXTREME))'
  fi
}
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
mkdir -p "$(dirname "$out")"
{
  header "$offset"
  tar --format=gnu --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --mode=u=rw,go=r -cf - "$@" | compress
} >"$tmp"
mv "$tmp" "$out"

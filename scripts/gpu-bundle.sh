#!/usr/bin/env bash
# Build a self-contained bundle for a GPU host that has no Rust toolchain:
#
#   bash scripts/gpu-bundle.sh            # → gpu-bundle/ (git-ignored, < 60 MiB)
#   ...copy gpu-bundle/ to the GPU host...
#   bash gpu-bundle/run.sh                # versions, compile test, parity tests, sanitizers
#
# Contents: the release test binaries that touch CUDA (cuda_parity, cuda_parity_vae, kernels_compile, the library's
# unit tests) and every bench binary, stripped and xz-compressed; NVRTC 12.9 from PyPI
# (scripts/install-nvrtc.sh), xz-compressed (106 MB → ~31 MB; the compressed copy is cached in
# .cuda-wheels/); a copy of kernels/ for the compile test; and run.sh (scripts/gpu-bundle-run.sh).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$REPO/gpu-bundle"
WHEELS="${CUDA_WHEELS:-$REPO/.cuda-wheels}"
LIMIT_MIB=60
cd "$REPO"

bash scripts/install-nvrtc.sh >/dev/null
NVRTC_DIR="$WHEELS/nvidia/cuda_nvrtc/lib"

rm -rf "$OUT"
mkdir -p "$OUT/bin" "$OUT/lib" "$OUT/kernels"

# 1. Test and bench executables, as cargo reports them.
list_executables() {
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        kind = m["target"]["kind"][0]
        if kind == "bench" or m.get("profile", {}).get("test"):
            print(m["target"]["name"], kind, m["executable"])
'
}
echo "building release test binaries…" >&2
cargo test --release --no-run --message-format=json | list_executables > "$OUT/.tests"
echo "building release bench binaries…" >&2
cargo bench --no-run --message-format=json | list_executables > "$OUT/.benches" || true

pack() {  # pack <source> <dest name>
    local tmp
    tmp="$(mktemp)"
    cp "$1" "$tmp"
    strip --strip-debug "$tmp" 2>/dev/null || true
    xz -T0 -6 -c "$tmp" > "$OUT/bin/$2.xz"
    rm -f "$tmp"
    echo "  $2 ($(du -h "$OUT/bin/$2.xz" | cut -f1) compressed)" >&2
}
while read -r name kind exe; do
    case "$name:$kind" in
        cuda_parity:test|cuda_parity_vae:test|kernels_compile:test) pack "$exe" "$name" ;;
        ssvae:lib) pack "$exe" "unit_tests" ;;
    esac
done < "$OUT/.tests"
while read -r name kind exe; do
    [[ "$kind" == "bench" ]] && pack "$exe" "bench-$name"
done < "$OUT/.benches"
rm -f "$OUT/.tests" "$OUT/.benches"

# 2. NVRTC (the compressed copy is cached next to the wheel).
for lib in libnvrtc.so.12 libnvrtc-builtins.so.12.9; do
    cache="$WHEELS/$lib.xz"
    if [[ ! -f "$cache" || "$cache" -ot "$NVRTC_DIR/$lib" ]]; then
        echo "compressing $lib (once)…" >&2
        xz -T0 -6 -c "$NVRTC_DIR/$lib" > "$cache.tmp" && mv "$cache.tmp" "$cache"
    fi
    cp "$cache" "$OUT/lib/"
done

# 3. Kernel sources for the compile test, and the runner.
cp kernels/*.cu kernels/*.cuh "$OUT/kernels/"
cp scripts/gpu-bundle-run.sh "$OUT/run.sh"
chmod +x "$OUT/run.sh"
git rev-parse HEAD > "$OUT/COMMIT" 2>/dev/null || echo unknown > "$OUT/COMMIT"

SIZE_KIB=$(du -sk "$OUT" | cut -f1)
echo "gpu-bundle: $((SIZE_KIB / 1024)) MiB in $OUT" >&2
ls -la "$OUT" "$OUT/bin" "$OUT/lib" >&2
if (( SIZE_KIB > LIMIT_MIB * 1024 )); then
    echo "error: bundle is larger than $LIMIT_MIB MiB" >&2
    exit 1
fi

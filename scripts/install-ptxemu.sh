#!/usr/bin/env bash
# Build the PTX interpreter's stand-in driver (ptxemu/, a cdylib) and install it as
# target/ptxemu/libcuda.so.1 (with libcuda.so a symlink to it, so cudarc and NVRTC, which open
# the two names, share one driver). Prints the folder to put first on LD_LIBRARY_PATH:
#
#   eval "$(bash scripts/install-ptxemu.sh --print-export)"
#
# With it there, `--device cuda` and the CUDA tests run every kernel on the interpreter.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
cargo build --release -p ptxemu --lib >&2
DIR="$REPO/target/ptxemu"
mkdir -p "$DIR"
cp -f "$REPO/target/release/libptxemu.so" "$DIR/libcuda.so.1.tmp"
mv -f "$DIR/libcuda.so.1.tmp" "$DIR/libcuda.so.1"
ln -sf libcuda.so.1 "$DIR/libcuda.so"
if [[ "${1:-}" == "--print-export" ]]; then
    echo "export LD_LIBRARY_PATH=\"$DIR\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\""
else
    echo "stand-in libcuda installed in $DIR; put it first on LD_LIBRARY_PATH:" >&2
    echo "export LD_LIBRARY_PATH=\"$DIR\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\""
fi

#!/usr/bin/env bash
# Install NVIDIA's NVRTC shared library from PyPI into $REPO/.cuda-wheels (idempotent), for
# compiling the kernels with no CUDA toolkit and no GPU (tests/kernels_compile.rs) and for the
# GPU bundle (scripts/gpu-bundle.sh). Needs only python3 with pip and access to PyPI.
#
#   bash scripts/install-nvrtc.sh            # installs if missing, prints the export line
#   eval "$(bash scripts/install-nvrtc.sh --print-export)"
#
# The kernels include only common.cuh and philox.cuh (no cuda_fp16.h / cuda_bf16.h), so the
# runtime-headers wheel (nvidia-cuda-runtime-cu12) is not needed.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CUDA_WHEELS:-$REPO/.cuda-wheels}"
PKG="nvidia-cuda-nvrtc-cu12==12.9.86"
LIBDIR="$TARGET/nvidia/cuda_nvrtc/lib"

if [[ -f "$LIBDIR/libnvrtc.so.12" && -f "$TARGET/.installed-nvrtc-12.9.86" ]]; then
    [[ "${1:-}" == "--print-export" ]] || echo "NVRTC already installed in $LIBDIR" >&2
else
    echo "installing $PKG into $TARGET" >&2
    mkdir -p "$TARGET"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --no-deps --upgrade \
        --target "$TARGET" "$PKG" >&2
    if [[ ! -f "$LIBDIR/libnvrtc.so.12" ]]; then
        echo "error: $LIBDIR/libnvrtc.so.12 missing after pip install" >&2
        exit 1
    fi
    touch "$TARGET/.installed-nvrtc-12.9.86"
fi

if [[ "${1:-}" == "--print-export" ]]; then
    echo "export LD_LIBRARY_PATH=\"$LIBDIR\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\""
else
    echo "NVRTC library folder: $LIBDIR" >&2
    echo "add it to the loader path with:" >&2
    echo "export LD_LIBRARY_PATH=\"$LIBDIR\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\""
fi

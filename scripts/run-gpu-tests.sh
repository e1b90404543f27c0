#!/usr/bin/env bash
# Run the CUDA tests on a machine with a GPU.
#   - With cargo: build and run the compile test and the parity tests in place (NVRTC from
#     .cuda-wheels, installed by scripts/install-nvrtc.sh if needed).
#   - Without cargo: run the prebuilt bundle (bash scripts/gpu-bundle.sh on a dev machine first,
#     then copy gpu-bundle/ here).
# Output also goes to $OUT/gpu-tests.log when $OUT is set.
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

if command -v cargo >/dev/null; then
    [[ -n "${OUT:-}" ]] && { mkdir -p "$OUT"; exec > >(tee -a "$OUT/gpu-tests.log") 2>&1; }
    eval "$(bash scripts/install-nvrtc.sh --print-export)"
    export SSVAE_REQUIRE_NVRTC=1 SSVAE_REQUIRE_GPU=1 RUST_BACKTRACE=1
    command -v nvidia-smi >/dev/null && nvidia-smi
    status=0
    cargo test --release --test kernels_compile -- --nocapture || status=1
    cargo test --release --test cuda_parity -- --nocapture --test-threads=1 || status=1
    cargo test --release --test cuda_parity_vae -- --nocapture --test-threads=1 || status=1
    cargo test --release --test cuda_parity -- --ignored --nocapture perf_report || status=1
    exit $status
elif [[ -x "$REPO/gpu-bundle/run.sh" ]]; then
    exec bash "$REPO/gpu-bundle/run.sh"
else
    echo "no cargo and no gpu-bundle/: run scripts/gpu-bundle.sh on a machine with Rust first" >&2
    exit 2
fi

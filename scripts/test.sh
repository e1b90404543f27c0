#!/usr/bin/env bash
# The project's test command (the README's): everything CI checks, runnable on a fresh clone with
# ../shared beside it and no GPU.
#  - NVRTC comes from NVIDIA's PyPI wheel (scripts/install-nvrtc.sh), so tests/kernels_compile.rs
#    compiles every kernels/*.cu for sm_80 and sm_90 on a machine with no GPU and no CUDA toolkit;
#    SSVAE_REQUIRE_NVRTC=1 makes that test fail rather than skip when NVRTC cannot be loaded.
#  - GPU parity tests (tests/cuda_parity.rs) print why they skip when there is no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/install-nvrtc.sh --print-export)"
export SSVAE_REQUIRE_NVRTC=1
# --show-output prints what passing tests wrote, so that the log shows how many kernel files the
# NVRTC compile test compiled and why each CUDA parity test skipped on a machine without a GPU.
if [ $# -eq 0 ]; then set -- -- --show-output; fi
cargo test --release "$@"

#!/usr/bin/env bash
# The project's test command (the README's): everything CI checks, runnable on a fresh clone with
# ../shared beside it and no GPU.
#  - NVRTC comes from NVIDIA's PyPI wheel (scripts/install-nvrtc.sh), so every kernels/*.cu is
#    compiled for sm_80 and sm_90 on a machine with no GPU and no CUDA toolkit
#    (SSVAE_REQUIRE_NVRTC=1 makes those tests fail rather than skip without NVRTC).
#  - The CUDA backend runs on the PTX interpreter: scripts/install-ptxemu.sh builds ptxemu/ as a
#    stand-in libcuda.so ahead of any real driver on the loader path, unless a real GPU is here
#    (nvidia-smi answers) or SSVAE_REAL_GPU=1. Every CUDA parity test, the interpreter's own
#    tests, the opcode coverage test, the planted-bug tests and a digits training run on
#    --device cuda then execute every kernel; SSVAE_REQUIRE_GPU=1 makes a skipped GPU test fail.
#  - Last, `ssvae bench --device cuda --quick` must complete (its figures marked emulated).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/install-nvrtc.sh --print-export)"
if [[ "${SSVAE_REAL_GPU:-}" != 1 ]] && ! nvidia-smi >/dev/null 2>&1; then
    eval "$(bash scripts/install-ptxemu.sh --print-export)"
fi
export SSVAE_REQUIRE_NVRTC=1 SSVAE_REQUIRE_GPU=1
# --show-output prints what passing tests wrote: how many kernel files compiled, which device the
# CUDA tests ran on, the planted bugs' diagnostics and the emulated training's per-epoch figures.
if [ $# -eq 0 ]; then set -- -- --show-output; fi
cargo test --release --workspace "$@"
cargo run --release --quiet -- bench --device cuda --quick --profile

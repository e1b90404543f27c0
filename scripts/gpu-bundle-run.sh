#!/usr/bin/env bash
# run.sh of the GPU bundle (made by scripts/gpu-bundle.sh): runs the CUDA tests on a GPU host with
# no Rust toolchain. Prints the GPU, driver and NVRTC versions first; unpacks the binaries and
# NVRTC (xz) into $SSVAE_BUNDLE_WORK (default: $TMPDIR/ssvae-gpu-bundle); then runs
#   1. the NVRTC compile test (every kernels/*.cu for sm_80 and sm_90, warnings are failures),
#   2. the CPU↔CUDA parity tests (cuda_parity, cuda_parity_vae), and the library's unit tests,
#   3. compute-sanitizer memcheck on the parity tests, racecheck/synccheck on the shared-memory
#      kernels (set SANITIZE=0 to skip; needs compute-sanitizer on PATH or in /usr/local/cuda/bin),
#   4. the throughput report (PERF=0 to skip) and any bench binaries (BENCH=1 to run them).
# Output goes to stdout and to $OUT/gpu-tests.log when $OUT is set. Exit status: non-zero if any
# step failed.
set -uo pipefail

B="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
W="${SSVAE_BUNDLE_WORK:-${TMPDIR:-/tmp}/ssvae-gpu-bundle}"  # outside the bundle: keep it small
if [[ -n "${OUT:-}" ]]; then
    mkdir -p "$OUT"
    exec > >(tee -a "$OUT/gpu-tests.log") 2>&1
fi
status=0
step() {  # step <title> <command…>
    echo
    echo "================ $1"
    shift
    echo "+ $*"
    "$@"
    local rc=$?
    echo "================ exit $rc"
    (( rc == 0 )) || status=1
    return 0
}

echo "bundle commit: $(cat "$B/COMMIT" 2>/dev/null)"
echo "host: $(uname -a)"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi || true
    nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv || true
else
    echo "nvidia-smi not found"
fi

unxz_to() {  # unxz_to <file.xz> <dest>
    if command -v xz >/dev/null; then
        xz -dc "$1" > "$2"
    else
        python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"
    fi
}
mkdir -p "$W/bin" "$W/lib"
for f in "$B"/lib/*.xz "$B"/bin/*.xz; do
    [[ -e "$f" ]] || continue
    sub="$(basename "$(dirname "$f")")"
    dest="$W/$sub/$(basename "${f%.xz}")"
    if [[ ! -s "$dest" || "$dest" -ot "$f" ]]; then
        unxz_to "$f" "$dest.tmp" && mv "$dest.tmp" "$dest"
    fi
    [[ "$sub" == bin ]] && chmod +x "$dest"
done
export LD_LIBRARY_PATH="$W/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export SSVAE_REQUIRE_NVRTC=1
export SSVAE_REQUIRE_GPU="${SSVAE_REQUIRE_GPU:-1}"  # parity tests fail (not skip) without a GPU
export SSVAE_KERNELS_DIR="$B/kernels"
export RUST_BACKTRACE=1

step "NVRTC compile test" "$W/bin/kernels_compile" --nocapture
step "CPU/CUDA parity tests" "$W/bin/cuda_parity" --nocapture --test-threads=1
step "CPU/CUDA parity tests: fused VAE kernels" "$W/bin/cuda_parity_vae" --nocapture --test-threads=1
[[ -x "$W/bin/unit_tests" ]] && step "library unit tests" "$W/bin/unit_tests" --test-threads=2

if [[ "${SANITIZE:-1}" == 1 ]]; then
    CS="$(command -v compute-sanitizer || true)"
    [[ -z "$CS" && -x /usr/local/cuda/bin/compute-sanitizer ]] && CS=/usr/local/cuda/bin/compute-sanitizer
    if [[ -n "$CS" ]]; then
        step "memcheck: parity tests" "$CS" --tool memcheck --error-exitcode 99 --print-limit 20 \
            "$W/bin/cuda_parity" --test-threads=1
        step "memcheck: VAE parity tests" "$CS" --tool memcheck --error-exitcode 99 --print-limit 20 \
            "$W/bin/cuda_parity_vae" --test-threads=1 --skip m2_end_to_end
        # elbo_marginal_* hand results between warps through global memory and __syncthreads
        step "synccheck: elbo" "$CS" --tool synccheck --error-exitcode 99 \
            "$W/bin/cuda_parity_vae" --test-threads=1 elbo_marginal_forward_and_backward
        for t in reduce softmax bce matmul_f32_all conv2d_forward transpose; do
            step "racecheck: $t" "$CS" --tool racecheck --racecheck-report all --error-exitcode 99 \
                "$W/bin/cuda_parity" --test-threads=1 "$t"
            step "synccheck: $t" "$CS" --tool synccheck --error-exitcode 99 \
                "$W/bin/cuda_parity" --test-threads=1 "$t"
        done
    else
        echo "compute-sanitizer not found: sanitizers skipped"
    fi
fi

if [[ "${PERF:-1}" == 1 ]]; then
    step "throughput report" "$W/bin/cuda_parity" --ignored --nocapture perf_report
fi
if [[ "${BENCH:-0}" == 1 ]]; then
    for b in "$W"/bin/bench-*; do
        [[ -x "$b" ]] && step "bench $(basename "$b")" "$b" --bench
    done
fi

echo
if (( status == 0 )); then echo "ALL GPU STEPS PASSED"; else echo "SOME GPU STEPS FAILED"; fi
exit $status

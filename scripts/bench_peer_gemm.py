#!/usr/bin/env python3
"""The peer for `benches/gemm.rs`: numpy (OpenBLAS) float32 SGEMM at the same shapes.

Usage:
    python3 -m venv target/bench-venv && target/bench-venv/bin/pip install numpy
    target/bench-venv/bin/python scripts/bench_peer_gemm.py

Each shape (m, n, k) computes C (m×n) = op(A)·op(B) with op(A) m×k and op(B) k×n, as in
`ssvae::backend::cpu::gemm::GemmShape`: "tn" stores A as k×m and multiplies by its transpose
(a strided view, which numpy hands to BLAS as a transpose flag, no copy), "nt" likewise for B.
Every shape is warmed up, then timed over repetitions totalling about one second; the median
repetition is reported as GFLOP/s = 2·m·n·k / seconds / 1e9. OpenBLAS uses all cores unless
OPENBLAS_NUM_THREADS says otherwise.
"""
import os
import statistics
import time

import numpy as np

SHAPES = [
    # (m, n, k, trans_a, trans_b)
    (1024, 1024, 1024, False, False),
    (100, 500, 784, False, False),
    (100, 784, 500, False, False),
    (1000, 500, 784, False, False),
    (100, 500, 60, False, False),
    (64, 256, 3136, False, False),
    (64, 3136, 256, False, False),
    (784, 500, 100, True, False),
    (100, 784, 500, False, True),
]


def operands(m, n, k, trans_a, trans_b, rng):
    a = rng.standard_normal((k, m) if trans_a else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n), dtype=np.float32)
    return (a.T if trans_a else a), (b.T if trans_b else b)


def measure(m, n, k, trans_a, trans_b):
    rng = np.random.default_rng(0)
    a, b = operands(m, n, k, trans_a, trans_b, rng)
    c = np.empty((m, n), dtype=np.float32)
    t0 = time.perf_counter()
    warm = 0
    while warm < 3 or time.perf_counter() - t0 < 0.2:
        np.matmul(a, b, out=c)
        warm += 1
    per = (time.perf_counter() - t0) / warm
    reps = max(5, min(2000, int(1.0 / per)))
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        np.matmul(a, b, out=c)
        times.append(time.perf_counter() - t)
    return 2.0 * m * n * k / statistics.median(times) / 1e9


def main():
    print(f"numpy {np.__version__}, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    try:
        from threadpoolctl import threadpool_info

        for info in threadpool_info():
            print(f"  {info.get('internal_api')} {info.get('version')} "
                  f"{info.get('architecture')} threads={info.get('num_threads')}")
    except ImportError:
        pass
    for m, n, k, ta, tb in SHAPES:
        t = ("t" if ta else "n") + ("t" if tb else "n")
        print(f"{m:>5} {n:>5} {k:>5} {t}  {measure(m, n, k, ta, tb):8.1f} GFLOP/s")


if __name__ == "__main__":
    main()

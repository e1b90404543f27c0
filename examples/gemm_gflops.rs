//! Quick SGEMM throughput probe, for the same sitting as `scripts/bench_peer_gemm.py`.
//!
//! ```text
//! cargo run --release --example gemm_gflops                  # the benchmark shapes
//! cargo run --release --example gemm_gflops -- 1024 1024 1024 [nn|nt|tn|tt] [avx512|avx2|scalar]
//! ```
//!
//! Each shape is warmed up, then timed over repetitions totalling about one second; the median
//! repetition is reported as GFLOP/s = 2·m·n·k / seconds / 1e9. The second figure divides the
//! flops by the CPU time all threads used (a per-core efficiency that survives a busy machine).
use ssvae::backend::cpu::gemm::{gemm_flops, gemm_with_kernel, GemmKernel, GemmShape};
use std::time::Instant;

/// CPU time (ns) consumed so far by all threads of this process, from /proc/self/task/*/schedstat
/// (Linux; 0 elsewhere). Unlike wall time it does not count time spent waiting for a core, so it
/// still means something when other processes compete for the CPUs.
fn cpu_ns() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// (median wall-clock GFLOP/s, GFLOP/s per CPU-second).
fn measure(kernel: GemmKernel, s: &GemmShape) -> (f64, f64) {
    let a: Vec<f32> = (0..s.m * s.k)
        .map(|i| ((i % 17) as f32 - 8.0) * 0.01)
        .collect();
    let b: Vec<f32> = (0..s.k * s.n)
        .map(|i| ((i % 13) as f32 - 6.0) * 0.01)
        .collect();
    let mut c = vec![0.0f32; s.m * s.n];
    // Warm up (caches, rayon pool, packing buffers) and size the repetition count.
    let t = Instant::now();
    let mut warm = 0;
    while warm < 3 || t.elapsed().as_secs_f64() < 0.2 {
        gemm_with_kernel(kernel, s, &a, &b, &mut c, false);
        warm += 1;
    }
    let per = t.elapsed().as_secs_f64() / warm as f64;
    let reps = ((1.0 / per) as usize).clamp(5, 2000);
    let cpu0 = cpu_ns();
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            gemm_with_kernel(kernel, s, &a, &b, &mut c, false);
            t.elapsed().as_secs_f64()
        })
        .collect();
    let cpu = (cpu_ns() - cpu0) as f64 * 1e-9;
    times.sort_by(f64::total_cmp);
    (
        gemm_flops(s) / times[reps / 2] / 1e9,
        gemm_flops(s) * reps as f64 / cpu / 1e9,
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let kernel = match args.get(4).map(String::as_str) {
        Some("avx512") => GemmKernel::Avx512,
        Some("avx2") => GemmKernel::Avx2,
        Some("scalar") => GemmKernel::Scalar,
        _ => GemmKernel::best(),
    };
    let shapes: Vec<(usize, usize, usize, bool, bool)> = if args.len() >= 3 {
        let d: Vec<usize> = args[..3]
            .iter()
            .map(|x| x.parse().expect("m n k"))
            .collect();
        let t = args.get(3).map(String::as_str).unwrap_or("nn");
        vec![(d[0], d[1], d[2], t.starts_with('t'), t.ends_with('t'))]
    } else {
        vec![
            (1024, 1024, 1024, false, false),
            (100, 500, 784, false, false),
            (100, 784, 500, false, false),
            (1000, 500, 784, false, false),
            (100, 500, 60, false, false),
            (64, 256, 3136, false, false),
            (64, 3136, 256, false, false),
            (784, 500, 100, true, false),
            (100, 784, 500, false, true),
        ]
    };
    println!(
        "kernel {kernel:?}, {} rayon threads",
        rayon::current_num_threads()
    );
    for (m, n, k, trans_a, trans_b) in shapes {
        let s = GemmShape {
            m,
            n,
            k,
            trans_a,
            trans_b,
        };
        let (g, per_cpu) = measure(kernel, &s);
        let t = format!(
            "{}{}",
            if trans_a { "t" } else { "n" },
            if trans_b { "t" } else { "n" }
        );
        println!("{m:>5} {n:>5} {k:>5} {t}  {g:8.1} GFLOP/s (median wall)  {per_cpu:8.1} GFLOP/s per CPU-second");
    }
}

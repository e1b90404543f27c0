//! Criterion benchmark of the CPU SGEMM (`cargo bench --bench gemm`).
//!
//! Shapes: 1024³ (the classic yardstick) and the products a VAE on MNIST runs, batch 100 or 64:
//! a 784→500 dense layer forward (100×500×784) and its backward passes, dX = dY·Wᵀ ("nt",
//! 100×784×500) and dW = Xᵀ·dY ("tn", 784×500×100), a 500→784 decoder layer, a full-dataset
//! style 1000-row batch, a 500→60 latent head, and the im2col-style products of a 64-channel
//! 56×56 convolution (64×256×3136 and 64×3136×256).
//!
//! Throughput is declared as `Throughput::Elements(2·m·n·k)`, so the "thrpt" criterion prints in
//! elem/s is the flop rate: 150 Melem/s would be 0.15 GFLOP/s, 150 Gelem/s is 150 GFLOP/s.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ssvae::backend::cpu::gemm::{gemm_flops, gemm_with_kernel, GemmKernel, GemmShape};
use std::hint::black_box;
use std::time::Duration;

/// (m, n, k, trans_a, trans_b)
const SHAPES: &[(usize, usize, usize, bool, bool)] = &[
    (1024, 1024, 1024, false, false),
    (100, 500, 784, false, false),
    (100, 784, 500, false, false),
    (1000, 500, 784, false, false),
    (100, 500, 60, false, false),
    (64, 256, 3136, false, false),
    (64, 3136, 256, false, false),
    (784, 500, 100, true, false),
    (100, 784, 500, false, true),
];

fn bench_shape(
    c: &mut Criterion,
    group: &str,
    kernel: GemmKernel,
    shapes: &[(usize, usize, usize, bool, bool)],
) {
    let mut g = c.benchmark_group(group);
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for &(m, n, k, trans_a, trans_b) in shapes {
        let s = GemmShape {
            m,
            n,
            k,
            trans_a,
            trans_b,
        };
        // Deterministic, well-scaled inputs (values in [-0.08, 0.08]).
        let a: Vec<f32> = (0..m * k).map(|i| ((i % 17) as f32 - 8.0) * 0.01).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i % 13) as f32 - 6.0) * 0.01).collect();
        let mut out = vec![0.0f32; m * n];
        let t = format!(
            "{}{}",
            if trans_a { "t" } else { "n" },
            if trans_b { "t" } else { "n" }
        );
        g.throughput(Throughput::Elements(gemm_flops(&s) as u64));
        g.bench_function(
            BenchmarkId::from_parameter(format!("{m}x{n}x{k}_{t}")),
            |bench| {
                bench.iter(|| {
                    gemm_with_kernel(
                        kernel,
                        &s,
                        black_box(&a),
                        black_box(&b),
                        black_box(&mut out),
                        false,
                    )
                })
            },
        );
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    bench_shape(c, "sgemm", GemmKernel::best(), SHAPES);
    // The fallback kernel at the yardstick size, for reference.
    if GemmKernel::Avx2.is_available() {
        bench_shape(c, "sgemm_avx2", GemmKernel::Avx2, &SHAPES[..1]);
    }
}

criterion_group!(gemm_benches, benches);
criterion_main!(gemm_benches);

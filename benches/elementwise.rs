//! Criterion benchmarks of the CPU backend's memory-bound kernels: unary maps, broadcasting
//! binary ops, axis reductions and row softmax, through the public `Tensor` API.
//!
//! `Throughput::Bytes` counts the bytes each kernel must move (inputs read once, output written
//! once), so criterion's "thrpt" column is effective bandwidth in GB/s, comparable with the
//! machine's copy bandwidth (`copy` below is a plain clone of the same buffer, the roof).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ssvae::rng::RngKey;
use ssvae::{Device, Tensor};
use std::time::Duration;

const ROWS: usize = 4096;
const COLS: usize = 4096; // 16 Mi elements, 64 MiB per f32 buffer: far beyond the caches

fn bench(c: &mut Criterion) {
    let dev = Device::Cpu;
    let key = RngKey {
        seed: 1,
        stream: 0,
        offset: 0,
    };
    let x = Tensor::randn([ROWS, COLS], key, dev).unwrap();
    let y = Tensor::randn(
        [ROWS, COLS],
        RngKey {
            offset: 1 << 30,
            ..key
        },
        dev,
    )
    .unwrap();
    let row = Tensor::randn(
        [COLS],
        RngKey {
            offset: 1 << 40,
            ..key
        },
        dev,
    )
    .unwrap();
    let n = (ROWS * COLS) as u64;
    let f = 4u64; // bytes per f32

    let mut g = c.benchmark_group("memory_bound");
    g.sample_size(10).measurement_time(Duration::from_secs(3));

    g.throughput(Throughput::Bytes(2 * n * f));
    g.bench_function(BenchmarkId::new("copy", n), |b| {
        b.iter(|| x.copy().unwrap())
    });
    g.bench_function(BenchmarkId::new("exp", n), |b| b.iter(|| x.exp().unwrap()));
    g.bench_function(BenchmarkId::new("softplus", n), |b| {
        b.iter(|| x.softplus().unwrap())
    });
    g.bench_function(BenchmarkId::new("relu", n), |b| {
        b.iter(|| x.relu().unwrap())
    });
    g.bench_function(BenchmarkId::new("softmax_rows", n), |b| {
        b.iter(|| x.softmax().unwrap())
    });

    g.throughput(Throughput::Bytes(3 * n * f));
    g.bench_function(BenchmarkId::new("add", n), |b| {
        b.iter(|| x.add(&y).unwrap())
    });

    g.throughput(Throughput::Bytes(2 * n * f));
    g.bench_function(BenchmarkId::new("add_row_broadcast", n), |b| {
        b.iter(|| x.add(&row).unwrap())
    });

    g.throughput(Throughput::Bytes(n * f));
    g.bench_function(BenchmarkId::new("sum_axis1", n), |b| {
        b.iter(|| x.sum(1).unwrap())
    });
    g.bench_function(BenchmarkId::new("sum_axis0", n), |b| {
        b.iter(|| x.sum(0).unwrap())
    });
    g.bench_function(BenchmarkId::new("max_axis1", n), |b| {
        b.iter(|| x.max(1).unwrap())
    });
    g.bench_function(BenchmarkId::new("logsumexp_rows", n), |b| {
        b.iter(|| x.logsumexp().unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

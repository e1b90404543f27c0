//! CPU conv2d kernels at the VAE's shapes, batch 64.
//!
//! Throughput is reported as `Throughput::Elements(flops)` with
//! flops = 2·n·c_out·h_out·w_out·c_in·kh·kw (one multiply and one add per filter tap per output),
//! the same count for all three kernels of one shape, so criterion's "elem/s" reads as FLOP/s.
//! The decoder's transposed convolutions are `conv2d_backward_input` of the matching convolution:
//! ConvT(64→32) 7→14 is backward-input of Conv(32→64) 14→7, ConvT(32→1) 14→28 is backward-input
//! of Conv(1→32) 28→14.
//!
//! Group `conv_b64` is the fast kernels, group `conv_b64_reference` the naive loops (the test
//! oracles, single-threaded) for scale; filter with e.g. `cargo bench --bench conv -- 'conv_b64/'`.
//!
//! Run: `cargo bench --bench conv`.
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ssvae::backend::cpu::conv::{
    conv2d, conv2d_backward_input, conv2d_backward_input_reference, conv2d_backward_weight,
    conv2d_backward_weight_reference, conv2d_reference,
};
use ssvae::backend::Conv2dShape;
use ssvae::rng::Rng;

const BATCH: usize = 64;

fn conv_shape(
    c_in: usize,
    c_out: usize,
    hw: usize,
    k: usize,
    stride: usize,
    pad: usize,
) -> Conv2dShape {
    let out = (hw + 2 * pad - k) / stride + 1;
    Conv2dShape {
        n: BATCH,
        c_in,
        h: hw,
        w: hw,
        c_out,
        kh: k,
        kw: k,
        stride,
        padding: pad,
        h_out: out,
        w_out: out,
    }
}

fn flops(s: &Conv2dShape) -> u64 {
    (2 * s.n * s.c_out * s.h_out * s.w_out * s.c_in * s.kh * s.kw) as u64
}

fn randn(rng: &mut Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.normal()).collect()
}

fn bench_conv(c: &mut Criterion) {
    // (label of the forward conv, label of its adjoint as the decoder's ConvT, shape)
    let cases = [
        (
            "conv1_1to32_28to14",
            "convT_32to1_14to28",
            conv_shape(1, 32, 28, 4, 2, 1),
        ),
        (
            "conv2_32to64_14to7",
            "convT_64to32_7to14",
            conv_shape(32, 64, 14, 4, 2, 1),
        ),
    ];
    let mut rng = Rng::new(2026, 0);
    let data: Vec<_> = cases
        .iter()
        .map(|(_, _, s)| {
            let (xl, wl, yl) = s.sizes();
            (
                randn(&mut rng, xl),
                randn(&mut rng, wl),
                randn(&mut rng, yl),
            )
        })
        .collect();
    for reference in [false, true] {
        let group = if reference {
            "conv_b64_reference"
        } else {
            "conv_b64"
        };
        let mut g = c.benchmark_group(group);
        g.sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(2));
        for ((conv_name, convt_name, s), (x, w, dy)) in cases.iter().zip(&data) {
            let s = *s;
            g.throughput(Throughput::Elements(flops(&s)));
            g.bench_function(format!("forward/{conv_name}"), |b| {
                b.iter(|| {
                    if reference {
                        conv2d_reference(black_box(x), black_box(w), &s)
                    } else {
                        conv2d(black_box(x), black_box(w), &s)
                    }
                })
            });
            g.bench_function(format!("backward_input/{conv_name}={convt_name}"), |b| {
                b.iter(|| {
                    if reference {
                        conv2d_backward_input_reference(black_box(dy), black_box(w), &s)
                    } else {
                        conv2d_backward_input(black_box(dy), black_box(w), &s)
                    }
                })
            });
            g.bench_function(format!("backward_weight/{conv_name}"), |b| {
                b.iter(|| {
                    if reference {
                        conv2d_backward_weight_reference(black_box(x), black_box(dy), &s)
                    } else {
                        conv2d_backward_weight(black_box(x), black_box(dy), &s)
                    }
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench_conv);
criterion_main!(benches);

//! Fused VAE ops (`ssvae::vae`) against their unfused compositions (`ssvae::vae::composed`),
//! forward + backward through the tape, on the CPU backend:
//!
//! - the class-marginalised M2 ELBO at (B, K, D) = (64, 10, 784) and (512, 100, 3072); the
//!   second has 157M decoder logits (629 MB per (B·K)×D buffer);
//! - reparameterisation + KL at B = 512, D = 3072;
//! - Gumbel-softmax at B = 512, K = 100.
//!
//! Throughput is the nominal traffic of the big buffers, the same for both forms so that GB/s
//! compare directly: ELBO 12·B·K·D bytes (logits read in the forward and the backward, their
//! gradient written); reparam 8·4·B·D (μ, lv read and z written forward; μ, lv, dz read and
//! dμ, dlv written backward); Gumbel 5·4·B·K (ℓ read, y written; ℓ, dy read, dℓ written).
//!
//! Run: `cargo bench --bench vae_ops` (results in `benches/RESULTS-vae.md`).
//! `VAE_AB=1 cargo bench --bench vae_ops` instead times fused and unfused alternately (A, B, A,
//! B, …) and prints the best of N of each as a markdown table: on a shared machine whose load
//! drifts, alternating keeps the two forms under the same conditions, which criterion's
//! one-after-the-other groups do not.

use criterion::{criterion_group, BenchmarkId, Criterion, SamplingMode, Throughput};
use ssvae::rng::RngKey;
use ssvae::vae::{self, composed, Likelihood};
use ssvae::{Device, Result, Tensor};
use std::time::{Duration, Instant};

const DEV: Device = Device::Cpu;

fn key(offset: u64) -> RngKey {
    RngKey {
        seed: 42,
        stream: 7,
        offset,
    }
}

/// The ELBO's inputs: decoded [B·K, D] and class logits [B, K] and kl [B·K] as variables,
/// targets [B, D] in [0, 1], log prior [K].
struct ElboInputs {
    decoded: Tensor,
    targets: Tensor,
    kl: Tensor,
    logits: Tensor,
    log_prior: Tensor,
}

fn elbo_inputs(b: usize, k: usize, d: usize) -> Result<ElboInputs> {
    Ok(ElboInputs {
        decoded: Tensor::randn([b * k, d], key(0), DEV)?.variable(),
        targets: Tensor::rand([b, d], key(1 << 40), DEV)?,
        kl: Tensor::rand([b * k], key(2 << 40), DEV)?
            .mul_scalar(5.0)?
            .variable(),
        logits: Tensor::randn([b, k], key(3 << 40), DEV)?.variable(),
        log_prior: Tensor::full(-(k as f32).ln(), [k], DEV)?,
    })
}

type ElboFn = fn(&Tensor, &Tensor, &Tensor, &Tensor, &Tensor, Likelihood) -> Result<Tensor>;

fn elbo_step(i: &ElboInputs, f: ElboFn) -> Result<()> {
    let u = f(
        &i.decoded,
        &i.targets,
        &i.kl,
        &i.logits,
        &i.log_prior,
        Likelihood::Bernoulli,
    )?;
    let g = u.sum_all()?.backward()?;
    std::hint::black_box(g.len());
    Ok(())
}

fn bench_elbo(c: &mut Criterion) {
    for (b, k, d, big) in [(64, 10, 784, false), (512, 100, 3072, true)] {
        let inputs = elbo_inputs(b, k, d).expect("inputs");
        let mut g = c.benchmark_group(format!("elbo_marginal_fwd_bwd/B{b}_K{k}_D{d}"));
        g.throughput(Throughput::Bytes(12 * (b * k * d) as u64));
        if big {
            g.sample_size(10)
                .sampling_mode(SamplingMode::Flat)
                .warm_up_time(Duration::from_secs(1))
                .measurement_time(Duration::from_secs(20));
        }
        let forms: [(&str, ElboFn); 2] = [
            ("fused", vae::elbo_marginal),
            ("unfused", composed::elbo_marginal),
        ];
        for (name, f) in forms {
            g.bench_function(BenchmarkId::from_parameter(name), |bch| {
                bch.iter(|| elbo_step(&inputs, f).expect("elbo step"))
            });
        }
        g.finish();
    }
}

type ReparamFn = fn(&Tensor, &Tensor, RngKey) -> Result<(Tensor, Tensor)>;

fn bench_reparam(c: &mut Criterion) {
    let (b, d) = (512, 3072);
    let mu = Tensor::randn([b, d], key(0), DEV).expect("mu").variable();
    let lv = Tensor::randn([b, d], key(1 << 40), DEV)
        .and_then(|t| t.mul_scalar(0.5))
        .expect("lv")
        .variable();
    let mut g = c.benchmark_group(format!("reparam_fwd_bwd/B{b}_D{d}"));
    g.throughput(Throughput::Bytes(8 * 4 * (b * d) as u64));
    let forms: [(&str, ReparamFn); 2] = [
        ("fused", vae::reparameterize),
        ("unfused", composed::reparameterize),
    ];
    for (name, f) in forms {
        g.bench_function(BenchmarkId::from_parameter(name), |bch| {
            bch.iter(|| {
                let (z, kl) = f(&mu, &lv, key(5 << 40)).expect("forward");
                let loss = z
                    .sum_all()
                    .and_then(|s| s.add(&kl.sum_all()?))
                    .expect("loss");
                std::hint::black_box(loss.backward().expect("backward").len())
            })
        });
    }
    g.finish();
}

type GumbelFn = fn(&Tensor, f32, bool, RngKey) -> Result<Tensor>;

fn bench_gumbel(c: &mut Criterion) {
    let (b, k) = (512, 100);
    let logits = Tensor::randn([b, k], key(0), DEV)
        .expect("logits")
        .variable();
    let mut g = c.benchmark_group(format!("gumbel_softmax_fwd_bwd/B{b}_K{k}"));
    g.throughput(Throughput::Bytes(5 * 4 * (b * k) as u64));
    let forms: [(&str, GumbelFn); 2] = [
        ("fused", vae::gumbel_softmax),
        ("unfused", composed::gumbel_softmax),
    ];
    // Σ r ⊙ y: a plain sum would have a zero gradient (rows of y sum to 1).
    let r = Tensor::randn([b, k], key(9 << 40), DEV).expect("weights");
    for (name, f) in forms {
        g.bench_function(BenchmarkId::from_parameter(name), |bch| {
            bch.iter(|| {
                let y = f(&logits, 0.67, false, key(7 << 40)).expect("forward");
                let loss = y.mul(&r).and_then(|t| t.sum_all()).expect("loss");
                std::hint::black_box(loss.backward().expect("backward").len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_elbo, bench_reparam, bench_gumbel);

/// Best-of-`reps` wall time of `a` and of `b`, run alternately (A B, then B A, …, so neither
/// always runs first).
fn alternate(reps: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
    let (mut ta, mut tb) = (f64::MAX, f64::MAX);
    let time = |f: &mut dyn FnMut(), best: &mut f64| {
        let t = Instant::now();
        f();
        *best = best.min(t.elapsed().as_secs_f64());
    };
    for r in 0..reps {
        if r % 2 == 0 {
            time(&mut a, &mut ta);
            time(&mut b, &mut tb);
        } else {
            time(&mut b, &mut tb);
            time(&mut a, &mut ta);
        }
    }
    (ta, tb)
}

/// One markdown row: case, fused, unfused, unfused/fused, GB/s of each.
fn row(case: &str, bytes: f64, (f, u): (f64, f64)) {
    let ms = |t: f64| {
        if t >= 1.0 {
            format!("{t:.2} s")
        } else {
            format!("{:.2} ms", t * 1e3)
        }
    };
    println!(
        "| {case} | {} | {} | {:.2} | {:.2} | {:.2} |",
        ms(f),
        ms(u),
        u / f,
        bytes / f / 1e9,
        bytes / u / 1e9
    );
}

fn alternating_table() -> Result<()> {
    println!("| case (fwd+bwd) | fused | unfused | unfused/fused | fused GB/s | unfused GB/s |");
    println!("|---|---|---|---|---|---|");
    for (b, k, d, reps) in [(64, 10, 784, 100), (512, 100, 3072, 6)] {
        let i = elbo_inputs(b, k, d)?;
        let t = alternate(
            reps,
            || elbo_step(&i, vae::elbo_marginal).expect("fused"),
            || elbo_step(&i, composed::elbo_marginal).expect("unfused"),
        );
        row(
            &format!("elbo_marginal B={b} K={k} D={d}"),
            12.0 * (b * k * d) as f64,
            t,
        );
    }
    let (b, d) = (512, 3072);
    let mu = Tensor::randn([b, d], key(0), DEV)?.variable();
    let lv = Tensor::randn([b, d], key(1 << 40), DEV)?
        .mul_scalar(0.5)?
        .variable();
    let rep = |f: ReparamFn| {
        let (z, kl) = f(&mu, &lv, key(5 << 40)).expect("forward");
        let loss = z
            .sum_all()
            .and_then(|s| s.add(&kl.sum_all()?))
            .expect("loss");
        std::hint::black_box(loss.backward().expect("backward").len());
    };
    let t = alternate(
        20,
        || rep(vae::reparameterize),
        || rep(composed::reparameterize),
    );
    row(
        &format!("reparameterize B={b} D={d}"),
        32.0 * (b * d) as f64,
        t,
    );
    let (b, k) = (512, 100);
    let logits = Tensor::randn([b, k], key(0), DEV)?.variable();
    let r = Tensor::randn([b, k], key(9 << 40), DEV)?;
    let gum = |f: GumbelFn| {
        let y = f(&logits, 0.67, false, key(7 << 40)).expect("forward");
        let loss = y.mul(&r).and_then(|t| t.sum_all()).expect("loss");
        std::hint::black_box(loss.backward().expect("backward").len());
    };
    let t = alternate(
        200,
        || gum(vae::gumbel_softmax),
        || gum(composed::gumbel_softmax),
    );
    row(
        &format!("gumbel_softmax B={b} K={k}"),
        20.0 * (b * k) as f64,
        t,
    );
    Ok(())
}

fn main() {
    if std::env::var_os("VAE_AB").is_some() {
        if let Err(e) = alternating_table() {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

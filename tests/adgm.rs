//! The auxiliary models (adgm, sdgm; `src/models/adgm.rs`) beyond the zoo's shared tests:
//! - the unlabelled bound U(x) of the fused path (one `vae::elbo_marginal`) equals
//!   Σ_y q(y|a,x)·L(x,y) + H(q(y|a,x)) composed here on the host from the per-class bounds of
//!   the same draws, and equals the composed (unfused) path of the same weights;
//! - `a_samples` S: a step's terms are those of the batch with every example repeated S times
//!   (the S-sample average of each example's bound and cross-entropy);
//! - the CUDA backend gives the CPU's loss, loss terms and gradients on one batch (same seed):
//!   on the PTX interpreter where no GPU is present, skipped without a CUDA device unless
//!   `SSVAE_REQUIRE_GPU=1`.
//!
//! (Training on digits is in tests/models.rs, the checkpoint round trip in tests/checkpoint.rs.)

use ssvae::models::{Adgm, AdgmConfig, Arch, Auxiliary, Batch, Model, StepContext};
use ssvae::rng::Rng;
use ssvae::{no_grad, Device, Tensor};

// The GPU guard (skips without a CUDA device unless SSVAE_REQUIRE_GPU=1) and error measure.
#[cfg(feature = "cuda")]
#[macro_use]
mod common;

const CLASSES: usize = 10;
const X_DIM: usize = 64;

fn config(variant: Auxiliary, fused: bool) -> AdgmConfig {
    AdgmConfig {
        variant,
        arch: Arch::Mlp,
        input: (1, 8, 8),
        classes: CLASSES,
        hidden: 16,
        z_dim: 4,
        a_dim: 3,
        alpha: 2.5,
        a_samples: 1,
        fused,
    }
}

/// The same freshly initialised weights for every call with the same variant.
fn model(variant: Auxiliary, fused: bool, device: Device) -> Adgm {
    Adgm::new(config(variant, fused), &mut Rng::new(11, 3), device).unwrap()
}

/// `n` inputs in [0, 1) (host draws, so that every device gets the same numbers).
fn inputs(n: usize, seed: u64, device: Device) -> Tensor {
    let v = Tensor::rand(
        [n, X_DIM],
        Rng::new(seed, 0).next_key(n * X_DIM),
        Device::Cpu,
    )
    .unwrap()
    .to_vec()
    .unwrap();
    Tensor::from_vec(v, [n, X_DIM], device).unwrap()
}

#[test]
fn the_unlabelled_bound_sums_the_class_bounds_under_q_plus_the_entropy() {
    let x = inputs(5, 1, Device::Cpu);
    let _g = no_grad();
    for variant in [Auxiliary::Adgm, Auxiliary::Sdgm] {
        let fused = model(variant, true, Device::Cpu);
        let u = fused
            .neg_elbo(&x, &mut Rng::new(4, 4))
            .unwrap()
            .to_vec()
            .unwrap();
        let (logits, l) = fused.class_bounds(&x, &mut Rng::new(4, 4)).unwrap();
        let (logits, l) = (logits.to_vec().unwrap(), l.to_vec().unwrap());
        for (b, &u_b) in u.iter().enumerate() {
            let c = &logits[b * CLASSES..(b + 1) * CLASSES];
            let max = c.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            let z: f64 = c.iter().map(|&v| (v as f64 - max).exp()).sum();
            let q: Vec<f64> = c.iter().map(|&v| (v as f64 - max).exp() / z).collect();
            // −U = Σ_y q·L + H(q), with L = −(the class bound's loss).
            let expected_l: f64 = (0..CLASSES)
                .map(|y| q[y] * -(l[b * CLASSES + y] as f64))
                .sum();
            let entropy: f64 = -q.iter().map(|&p| p * p.ln()).sum::<f64>();
            let want = -(expected_l + entropy);
            assert!(
                (u_b as f64 - want).abs() < 1e-4 * want.abs(),
                "{variant:?} row {b}: U {u_b} vs Σ q L + H = {want}"
            );
            // The per-class bounds differ (y enters q(z|a,x,y) and p(a|·), p(x|·)).
            let row = &l[b * CLASSES..(b + 1) * CLASSES];
            assert!(row.iter().any(|&v| v != row[0]), "{variant:?}: {row:?}");
        }
        // The composed path of the same weights and draws gives the same U.
        let composed = model(variant, false, Device::Cpu);
        let uc = composed
            .neg_elbo(&x, &mut Rng::new(4, 4))
            .unwrap()
            .to_vec()
            .unwrap();
        for (a, b) in u.iter().zip(&uc) {
            assert!(
                (a - b).abs() < 1e-4 * a.abs(),
                "{variant:?}: fused {a} composed {b}"
            );
        }
        // A fresh draw of a changes U: the auxiliary variable is sampled, not its mean.
        let other = fused
            .neg_elbo(&x, &mut Rng::new(5, 4))
            .unwrap()
            .to_vec()
            .unwrap();
        assert_ne!(u, other, "{variant:?}");
    }
}

/// A fixed batch (4 labelled, 6 unlabelled) on `device`, each example repeated `r` times.
fn batch(device: Device, r: usize) -> Batch {
    let labels = [3, 0, 9, 3];
    Batch {
        x_lab: Some(inputs(4, 2, device).repeat_interleave(r).unwrap()),
        y_lab: labels
            .iter()
            .flat_map(|&y| std::iter::repeat_n(y, r))
            .collect(),
        x_unlab: Some(inputs(6, 3, device).repeat_interleave(r).unwrap()),
        rows_lab: None,
        rows_unlab: None,
    }
}

/// The loss terms of one training step of `m` on `batch` (step seed fixed) and the gradients
/// of every parameter.
fn step_of(m: &Adgm, batch: &Batch) -> (Vec<(String, f32)>, Vec<Vec<f32>>) {
    let mut rng = Rng::new(8, 1);
    let mut ctx = StepContext {
        epoch: 1,
        epochs: 1,
        progress: 0.0,
        rng: &mut rng,
    };
    let terms = m.loss(batch, &mut ctx).unwrap();
    let grads = terms.loss.backward().unwrap();
    let mut values = vec![("loss".to_string(), terms.loss.to_scalar().unwrap())];
    for (name, t) in &terms.parts {
        values.push((name.to_string(), t.to_scalar().unwrap()));
    }
    let g = ssvae::nn::parameters(m, "")
        .iter()
        .map(|(n, p)| {
            grads
                .get(p)
                .unwrap_or_else(|| panic!("{n}: no gradient"))
                .to_vec()
                .unwrap()
        })
        .collect();
    (values, g)
}

/// [`step_of`] the fused model of `variant` on the fixed batch, on `device`.
fn step(variant: Auxiliary, device: Device) -> (Vec<(String, f32)>, Vec<Vec<f32>>) {
    step_of(&model(variant, true, device), &batch(device, 1))
}

#[test]
fn several_draws_of_a_average_the_bound_over_repeated_examples() {
    for variant in [Auxiliary::Adgm, Auxiliary::Sdgm] {
        let cfg = AdgmConfig {
            a_samples: 3,
            ..config(variant, true)
        };
        let three = Adgm::new(cfg, &mut Rng::new(11, 3), Device::Cpu).unwrap();
        let got = step_of(&three, &batch(Device::Cpu, 1));
        let want = step_of(&model(variant, true, Device::Cpu), &batch(Device::Cpu, 3));
        assert_eq!(got, want, "{variant:?}");
        // …and differ from a single draw.
        assert_ne!(got.0, step(variant, Device::Cpu).0, "{variant:?}");
    }
}

/// Same weights, batch and Philox draws on both backends: the loss and its terms within 1e-4
/// relative, every parameter's gradient within 1e-4 (relative L2; observed ≈ 6e-7 on the PTX
/// interpreter).
#[cfg(feature = "cuda")]
#[test]
fn a_training_step_on_cuda_matches_the_cpu() {
    let _gpu = gpu_or_skip!();
    for variant in [Auxiliary::Adgm, Auxiliary::Sdgm] {
        let (cpu, cpu_g) = step(variant, Device::Cpu);
        let (gpu, gpu_g) = step(variant, Device::Cuda(0));
        println!("{variant:?} cpu {cpu:?}\n{variant:?} cuda {gpu:?}");
        assert_eq!(cpu.len(), gpu.len());
        for ((name, a), (_, b)) in cpu.iter().zip(&gpu) {
            let r = ((a - b).abs() / a.abs()) as f64;
            assert!(
                r < common::REDUCTION,
                "{variant:?} {name}: cpu {a} cuda {b} ({r:.2e})"
            );
        }
        let errors: Vec<f64> = cpu_g
            .iter()
            .zip(&gpu_g)
            .map(|(a, b)| common::rel_err(b, a))
            .collect();
        let worst = errors.iter().cloned().fold(0.0, f64::max);
        println!("{variant:?}: worst gradient rel. error {worst:.2e}");
        assert!(
            worst < common::REDUCTION,
            "{variant:?}: gradient rel. errors {errors:?}"
        );
    }
}

#[test]
fn a_training_step_is_deterministic_on_the_cpu() {
    // The reference the CUDA test compares against: same seed, same numbers, and every
    // parameter receives a gradient.
    for variant in [Auxiliary::Adgm, Auxiliary::Sdgm] {
        let (a, ga) = step(variant, Device::Cpu);
        let (b, gb) = step(variant, Device::Cpu);
        assert_eq!(a, b);
        assert_eq!(ga, gb);
        assert!(a.iter().all(|(_, v)| v.is_finite()), "{a:?}");
        let names: Vec<&str> = a.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["loss", "labelled", "ce", "unlabelled"]);
    }
}

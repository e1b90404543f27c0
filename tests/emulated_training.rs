//! `ssvae train --device cuda` on digits against the same run on the CPU (M2, and the
//! sparse-label VAE, the adversarial autoencoder and the Ladder VAE, models built from the
//! op interface alone): per-epoch losses and
//! test metrics within the parity bounds (1e-4 relative: the CUDA reductions sum in another
//! order). On a machine without a GPU this runs every kernel of a real training run on the PTX
//! interpreter (ptxemu, installed by scripts/test.sh as the stand-in libcuda).
//!
//! Without a CUDA device (real or emulated) the test prints why and passes, unless
//! `SSVAE_REQUIRE_GPU=1`.
// The CUDA backend is the `cuda` feature (on by default).
#![cfg(feature = "cuda")]

mod cli_support;
use cli_support::*;
use ssvae::backend::cuda::runtime::cuda_status;

/// metrics.csv's header and rows; an empty field (a figure the model has not, such as the
/// test bound of a model without one) is `None`.
fn metrics(dir: &std::path::Path) -> (Vec<String>, Vec<Vec<Option<f64>>>) {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .map(|l| {
            l.split(',')
                .map(|v| (!v.is_empty()).then(|| v.parse::<f64>().unwrap_or(f64::NAN)))
                .collect()
        })
        .collect();
    (header, rows)
}

#[test]
fn digits_training_on_cuda_matches_the_cpu() {
    cuda_run_matches_the_cpu("m2", 3);
}

/// The sparse-label VAE, built from the op interface alone (no kernel of its own), on both
/// backends.
#[test]
fn sparse_vae_training_on_cuda_matches_the_cpu() {
    cuda_run_matches_the_cpu("sparse", 2);
}

/// The adversarial autoencoder: two discriminators, detached branches, one loss.
#[test]
fn aae_training_on_cuda_matches_the_cpu() {
    cuda_run_matches_the_cpu("aae", 2);
}

/// The Ladder VAE: precision-weighted posteriors and Gaussian KLs composed from the op set.
#[test]
fn ladder_training_on_cuda_matches_the_cpu() {
    cuda_run_matches_the_cpu("ladder", 2);
}

/// `ssvae train --model MODEL` for `epochs` epochs on the CPU and on CUDA: every metrics.csv
/// column but the timings within 1e-4 relative.
fn cuda_run_matches_the_cpu(model: &str, epochs: usize) {
    if let Err(why) = cuda_status() {
        assert_ne!(
            std::env::var("SSVAE_REQUIRE_GPU").as_deref(),
            Ok("1"),
            "SSVAE_REQUIRE_GPU=1 but {why}"
        );
        println!("skipped: {why}");
        return;
    }
    let dd = data_dir();
    let epochs_s = epochs.to_string();
    let mut runs = Vec::new();
    for device in ["cpu", "cuda"] {
        let out = temp_dir(&format!("emulated-training-{model}-{device}"));
        let out_s = out.to_string_lossy().into_owned();
        let extra = ["--model", model, "--epochs", &epochs_s, "--device", device];
        let log = ok(&train_args(&dd, &out_s, &extra));
        println!("--- {model} on {device}:\n{log}");
        runs.push(metrics(&out));
    }
    let ((header, cpu), (_, cuda)) = (&runs[0], &runs[1]);
    assert_eq!(cpu.len(), epochs);
    assert_eq!(cuda.len(), epochs);
    // Every column but the timings: the loss terms, test error, bound, ACC and NMI.
    for (e, (a, b)) in cpu.iter().zip(cuda).enumerate() {
        for (i, name) in header.iter().enumerate() {
            if matches!(
                name.as_str(),
                "epoch" | "unix_time" | "wall_s" | "examples_per_s"
            ) {
                continue;
            }
            let (x, y) = match (a[i], b[i]) {
                (None, None) => continue,
                (Some(x), Some(y)) => (x, y),
                (x, y) => panic!("epoch {}: {name} cpu {x:?} cuda {y:?}", e + 1),
            };
            assert!(
                x.is_finite() && y.is_finite(),
                "epoch {}: {name} cpu {x} cuda {y}",
                e + 1
            );
            let rel = (x - y).abs() / x.abs().max(1e-3);
            println!(
                "{model} epoch {} {name:<16} cpu {x:<14.7} cuda {y:<14.7} rel {rel:.1e}",
                e + 1
            );
            assert!(
                rel <= 1e-4,
                "{model} epoch {}: {name} cpu {x} cuda {y} (rel {rel:.1e})",
                e + 1
            );
        }
    }
}

//! `ssvae train --device cuda` on digits against the same run on the CPU: per-epoch losses and
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

fn metrics(dir: &std::path::Path) -> (Vec<String>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .map(|l| {
            l.split(',')
                .map(|v| v.parse::<f64>().unwrap_or(f64::NAN))
                .collect()
        })
        .collect();
    (header, rows)
}

#[test]
fn digits_training_on_cuda_matches_the_cpu() {
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
    let mut runs = Vec::new();
    for device in ["cpu", "cuda"] {
        let out = temp_dir(&format!("emulated-training-{device}"));
        let out_s = out.to_string_lossy().into_owned();
        let args = train_args(&dd, &out_s, &["--epochs", "3", "--device", device]);
        let log = ok(&args);
        println!("--- {device}:\n{log}");
        runs.push(metrics(&out));
    }
    let ((header, cpu), (_, cuda)) = (&runs[0], &runs[1]);
    assert_eq!(cpu.len(), 3);
    assert_eq!(cuda.len(), 3);
    // Every column but the timings: the loss terms, test error, bound, ACC and NMI.
    for (e, (a, b)) in cpu.iter().zip(cuda).enumerate() {
        for (i, name) in header.iter().enumerate() {
            if matches!(
                name.as_str(),
                "epoch" | "unix_time" | "wall_s" | "examples_per_s"
            ) {
                continue;
            }
            let (x, y) = (a[i], b[i]);
            assert!(
                x.is_finite() && y.is_finite(),
                "epoch {}: {name} cpu {x} cuda {y}",
                e + 1
            );
            let rel = (x - y).abs() / x.abs().max(1e-3);
            println!(
                "epoch {} {name:<16} cpu {x:<14.7} cuda {y:<14.7} rel {rel:.1e}",
                e + 1
            );
            assert!(
                rel <= 1e-4,
                "epoch {}: {name} cpu {x} cuda {y} (rel {rel:.1e})",
                e + 1
            );
        }
    }
}

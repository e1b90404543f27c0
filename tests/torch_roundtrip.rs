//! The PyTorch round trip: a small model trained on digits by `ssvae train`, loaded by
//! `scripts/torch_load.py` into its `torch.nn.Module` with `load_state_dict(strict=True)`,
//! misclassifies exactly as many test images there as `ssvae eval` counts (m2 with both
//! architectures, and the conv classifier and the mlp m1).
//!
//! Python is `$SSVAE_TORCH_PYTHON`, else `python3`; when it cannot `import torch` the test
//! prints why and passes, unless `SSVAE_REQUIRE_TORCH=1`, which makes that a failure.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

mod cli_support;

use cli_support::{data_dir, ok, temp_dir, train_args};

/// The Python that has torch, or None after printing why the test skips.
fn torch_python() -> Option<String> {
    let python = std::env::var("SSVAE_TORCH_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let why = match Command::new(&python).args(["-c", "import torch"]).output() {
        Ok(o) if o.status.success() => return Some(python),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            format!(
                "{python} cannot import torch: {}",
                err.trim().lines().last().unwrap_or("")
            )
        }
        Err(e) => format!("{python} does not run: {e}"),
    };
    if std::env::var("SSVAE_REQUIRE_TORCH").as_deref() == Ok("1") {
        panic!("SSVAE_REQUIRE_TORCH=1 but {why}");
    }
    println!("skipped: {why} (set SSVAE_TORCH_PYTHON to a Python with torch)");
    None
}

/// Misclassified test images according to `ssvae eval` (its "test error  P%" line, two
/// decimals: exact for the 400 digits, where one image is 0.25%).
fn ssvae_misclassified(dir: &str, test_images: u64) -> u64 {
    let out = ok(&["eval", dir, "--data-dir", &data_dir(), "--device", "cpu"]);
    let pct: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("test error"))
        .and_then(|r| r.trim().strip_suffix('%'))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no test error in {out}"));
    (pct / 100.0 * test_images as f64).round() as u64
}

#[test]
fn torch_misclassifies_the_same_test_images_as_ssvae_eval() {
    let Some(python) = torch_python() else {
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/torch_load.py");
    let dd = data_dir();
    for (model, arch) in [
        ("m2", "mlp"),
        ("m2", "conv"),
        ("classifier", "conv"),
        ("m1", "mlp"),
    ] {
        let dir = temp_dir(&format!("{model}-{arch}"));
        let d = dir.to_str().unwrap();
        let extra = [
            "--model",
            model,
            "--arch",
            arch,
            "--epochs",
            "2",
            "--steps-per-epoch",
            "8",
            "--device",
            "cpu",
        ];
        ok(&train_args(&dd, d, &extra));
        let out = Command::new(&python)
            .arg(&script)
            .args([d, "--data-dir", &dd, "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{model} {arch}: torch_load.py failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        let n = r["test_images"].as_u64().unwrap();
        assert_eq!(n, 400, "{model} {arch}: the digits test set");
        let torch = r["misclassified"].as_u64().unwrap();
        let ssvae = ssvae_misclassified(d, n);
        println!("{model} {arch}: {ssvae} of {n} misclassified by ssvae eval, {torch} by torch");
        assert_eq!(torch, ssvae, "{model} {arch}");
    }
}

//! Helpers for the tests that run the `ssvae` binary on the shared digits set (tests/cli.rs,
//! tests/checkpoint.rs): where the data is, a scratch directory per test, running the binary
//! expecting success or a clear failure, and the arguments of a small digits run.
#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The shared datasets folder beside the checkout (its digits set is what these tests train on).
pub fn data_dir() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets");
    assert!(
        dir.join("digits").is_dir(),
        "these tests need the shared datasets at {} (a folder shared/datasets next to the checkout)",
        dir.display()
    );
    dir.to_string_lossy().into_owned()
}

/// A fresh, empty directory for one test (named after the test file and `name`).
pub fn temp_dir(name: &str) -> PathBuf {
    let d =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-{name}", env!("CARGO_CRATE_NAME")));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the binary with `args`.
pub fn ssvae(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ssvae"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs `args`, expects success, returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = ssvae(args);
    assert!(
        out.status.success(),
        "ssvae {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `args`, expects failure, returns stderr.
pub fn fails(args: &[&str]) -> String {
    let out = ssvae(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "ssvae {args:?} succeeded; stderr: {err}"
    );
    // A "notice:" line (e.g. --device auto falling back to the CPU) may come first.
    assert!(err.lines().any(|l| l.starts_with("error: ")), "{err}");
    err
}

/// `train` on digits with a small M2 into `out`, plus extra arguments.
pub fn train_args<'a>(dd: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "train",
        "--dataset",
        "digits",
        "--labels",
        "50",
        "--hidden",
        "32",
        "--z-dim",
        "4",
        "--batch-size",
        "64",
        "--labelled-batch",
        "25",
        "--data-dir",
        dd,
        "--out",
        out,
    ];
    v.extend_from_slice(extra);
    v
}

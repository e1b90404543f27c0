//! The machine-readable side of the `ssvae` binary: `eval --json` and `bench --json` print one
//! JSON document on stdout and nothing else there, with the figures metrics.csv and the text
//! output give (error rates in percent everywhere), and `eval --active-units` answers for M2
//! (the default model) with exit status 0.

mod cli_support;

use cli_support::{data_dir, ok, ssvae, temp_dir, train_args};
use serde_json::Value;

/// The whole of `stdout` as one JSON document.
fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not one JSON document ({e}): {stdout}"))
}

/// Column `name` of the last row of `dir/metrics.csv`.
fn last_csv_value(dir: &std::path::Path, name: &str) -> f64 {
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|c| *c == name).unwrap();
    csv.lines()
        .last()
        .unwrap()
        .split(',')
        .nth(col)
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn eval_json_is_one_document_with_the_figures_of_the_text_and_the_csv() {
    let dd = data_dir();
    let dir = temp_dir("eval-json");
    let d = dir.to_str().unwrap();
    ok(&train_args(&dd, d, &["--epochs", "2", "--device", "cpu"]));
    let extra = ["--confusion", "--active-units", "--iwae-k", "2"];
    let args = [
        &["eval", d, "--data-dir", &dd, "--device", "cpu"][..],
        &extra,
    ]
    .concat();
    let doc = json(&ok(&[&args[..], &["--json"]].concat()));
    assert_eq!(doc["model"], "m2");
    assert_eq!(doc["dataset"], "digits");
    assert_eq!(
        (doc["epoch"].as_u64(), doc["labels"].as_u64()),
        (Some(2), Some(50))
    );
    assert!(doc["checkpoint"].as_str().unwrap().ends_with("epoch-0002"));
    // In percent, as metrics.csv's columns.
    let error = doc["test_error_pct"].as_f64().unwrap();
    assert_eq!(error, last_csv_value(&dir, "test_error_pct"));
    assert_eq!(
        doc["test_acc_pct"].as_f64(),
        Some(last_csv_value(&dir, "test_acc_pct"))
    );
    assert_eq!(
        doc["test_elbo"].as_f64(),
        Some(last_csv_value(&dir, "test_elbo"))
    );
    assert!(doc["test_nmi"].as_f64().is_some());
    // The confusion counts: a row per true class of the 400 test images; off the diagonal, the
    // test error.
    assert_eq!(doc["confusion"]["columns"], "class");
    let counts: Vec<Vec<u64>> = serde_json::from_value(doc["confusion"]["counts"].clone()).unwrap();
    assert_eq!(counts.len(), 10);
    let total: u64 = counts.iter().flatten().sum();
    let right: u64 = (0..10).map(|t| counts[t][t]).sum();
    assert_eq!(total, 400);
    assert_eq!(
        ssvae::metrics::percent((total - right) as f64 / total as f64),
        error
    );
    let au = &doc["active_units"];
    let var: Vec<f64> = serde_json::from_value(au["variance"].clone()).unwrap();
    assert_eq!(var.len(), 4);
    assert_eq!(
        au["active"].as_u64().unwrap() as usize,
        var.iter()
            .filter(|&&v| v > au["threshold"].as_f64().unwrap())
            .count()
    );
    assert_eq!(doc["test_iwae"]["k"], 2);
    assert!(doc["test_iwae"]["bound"].as_f64().unwrap() < 0.0);

    // The text says the same.
    let text = ok(&args);
    assert!(
        text.contains(&format!("test error       {error:.2}%")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "test IWAE (K=2) {:.3} nats",
            doc["test_iwae"]["bound"].as_f64().unwrap()
        )),
        "{text}"
    );
}

/// M2's z depends on y in q(z|x,y); --active-units measures the mean of q(z|x) with y summed
/// out. It used to print the test figures and then fail with exit status 1.
#[test]
fn eval_active_units_of_m2_exits_0() {
    let dd = data_dir();
    let dir = temp_dir("active-units-m2");
    let d = dir.to_str().unwrap();
    ok(&train_args(&dd, d, &["--epochs", "1", "--device", "cpu"]));
    let out = ssvae(&[
        "eval",
        d,
        "--data-dir",
        &dd,
        "--device",
        "cpu",
        "--active-units",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("active units"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains(" of 4 (Var_x E[z|x] > 0.01"), "{line}");
    // A model without a latent posterior fails before printing anything.
    let dir = temp_dir("active-units-classifier");
    let c = dir.to_str().unwrap();
    ok(&train_args(
        &dd,
        c,
        &["--model", "classifier", "--epochs", "1", "--device", "cpu"],
    ));
    let out = ssvae(&[
        "eval",
        c,
        "--data-dir",
        &dd,
        "--device",
        "cpu",
        "--active-units",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--active-units"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bench_json_is_one_document_and_the_table_goes_to_stderr() {
    let out = ssvae(&["bench", "--quick", "--device", "cpu", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let doc = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(doc["device"], "cpu");
    assert_eq!(doc["quick"], true);
    assert_eq!(doc["emulated"], false);
    assert!(doc["threads"].as_u64().unwrap() >= 1);
    assert!(doc.get("profile").is_none());
    let ms = doc["measurements"].as_array().unwrap();
    let names: Vec<&str> = ms.iter().map(|m| m["name"].as_str().unwrap()).collect();
    for want in [
        "gemm",
        "conv2d 1→32 k4 s2 p1 fwd",
        "add a+b",
        "M2-conv training step",
        "M2-mlp training step",
    ] {
        assert!(names.contains(&want), "{want} missing in {names:?}");
    }
    for m in ms {
        let (s, rate) = (m["median_s"].as_f64().unwrap(), m["rate"].as_f64().unwrap());
        assert!(s > 0.0 && rate > 0.0 && rate.is_finite(), "{m}");
        assert!(
            ["GFLOP/s", "GB/s", "ex/s"].contains(&m["unit"].as_str().unwrap()),
            "{m}"
        );
        assert!(!m["shape"].as_str().unwrap().is_empty(), "{m}");
    }
    // The human table, as progress, on stderr: a line per measurement after the header.
    assert!(
        stderr.contains("benchmark") && stderr.contains("M2-conv training step"),
        "{stderr}"
    );
}

/// `bench --steps`: just the training steps, the PyTorch peer's two workloads (64 + 64) and
/// the CLI's default MLP batch (100 + 100), in the order of `ssvae::bench::STEP_WORKLOADS`.
#[test]
fn bench_steps_times_the_peer_workloads_alone() {
    let out = ssvae(&["bench", "--quick", "--device", "cpu", "--steps", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = json(&String::from_utf8_lossy(&out.stdout));
    let ms = doc["measurements"].as_array().unwrap();
    let got: Vec<(&str, &str)> = ms
        .iter()
        .map(|m| (m["name"].as_str().unwrap(), m["shape"].as_str().unwrap()))
        .collect();
    let want = [
        ("M2-conv training step", "64+64 × 784, conv h256 z32"),
        ("M2-mlp training step", "64+64 × 784, mlp h500 z50"),
        ("M2-mlp training step", "100+100 × 784, mlp h500 z50"),
    ];
    assert_eq!(got, want);
    for m in ms {
        assert_eq!(m["unit"], "ex/s", "{m}");
        assert!(m["median_s"].as_f64().unwrap() > 0.0, "{m}");
    }
}

/// metrics.csv of a run trained before the unix_time and lr columns (and percent error
/// rates): a resume says so before training, rather than failing after an epoch.
#[test]
fn resuming_with_an_old_metrics_csv_says_what_to_do() {
    let dd = data_dir();
    let dir = temp_dir("old-metrics");
    let d = dir.to_str().unwrap();
    ok(&train_args(&dd, d, &["--epochs", "1", "--device", "cpu"]));
    let old = "epoch,wall_s,examples_per_s,loss,labelled,ce,unlabelled,test_error,test_elbo,test_acc,test_nmi\n\
               1,0.1,1000.0,90,45,2,43,0.6,-42,0.4,0.3\n";
    std::fs::write(dir.join("metrics.csv"), old).unwrap();
    let err = cli_support::fails(&["train", "--resume", d, "--epochs", "2", "--data-dir", &dd]);
    assert!(
        err.contains("metrics.csv") && err.contains("older ssvae") && err.contains("move it aside"),
        "{err}"
    );
    std::fs::rename(dir.join("metrics.csv"), dir.join("metrics.old.csv")).unwrap();
    ok(&["train", "--resume", d, "--epochs", "2", "--data-dir", &dd]);
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert!(
        csv.starts_with("epoch,unix_time,wall_s,examples_per_s,lr,"),
        "{csv}"
    );
    assert_eq!(
        csv.lines().count(),
        2,
        "the new log starts at the resumed epoch: {csv}"
    );
}

//! How `ssvae train` stops and what it keeps, end to end on the shared digits set: Ctrl-C
//! (SIGINT) or SIGTERM part-way through an epoch writes a checkpoint of that step, prints the
//! command that continues the run and exits with 128 + the signal's number, and that command
//! finishes the run with the very numbers (and checkpoint files) of an uninterrupted one;
//! `--keep-last N` keeps the N newest epoch checkpoints, `--save-best val_error` a copy of the
//! one with the lowest validation error.

mod cli_support;

use cli_support::{data_dir, fails, ok, temp_dir, train_args};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};

/// The entries of `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// metrics.csv without the timing columns (unix_time, wall_s, examples_per_s).
fn csv_without_timing(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            [&c[..1], &c[4..]].concat().join(",")
        })
        .collect()
}

/// The bytes of the four files of checkpoint `dir/name`.
fn checkpoint_files(dir: &Path, name: &str) -> Vec<(String, Vec<u8>)> {
    [
        "model.safetensors",
        "optimizer.safetensors",
        "config.json",
        "state.json",
    ]
    .iter()
    .map(|f| {
        (
            f.to_string(),
            std::fs::read(dir.join(name).join(f)).unwrap(),
        )
    })
    .collect()
}

/// What an interrupted `train` left: exit status, stdout, stderr.
struct Stopped {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `args`, waits for the first epoch's line, lets the second epoch get going, then sends
/// `signal` (`INT`, `TERM`) and waits for the process to end.
#[cfg(unix)]
fn train_and_signal(args: &[&str], signal: &str) -> Stopped {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ssvae"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "train ended before its first epoch: {seen}"
        );
        seen += &line;
        if line.starts_with("epoch   1") {
            break;
        }
    }
    // An epoch here is 400 steps (a second or more): the signal lands inside epoch 2.
    std::thread::sleep(std::time::Duration::from_millis(150));
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    stdout.read_to_string(&mut seen).unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap().code();
    Stopped {
        status,
        stdout: seen,
        stderr,
    }
}

/// The command printed after "continue with: ", as the arguments of the binary.
fn resume_command(stderr: &str) -> Vec<String> {
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("continue with: "))
        .unwrap_or_else(|| panic!("no resume command in {stderr}"));
    let words: Vec<String> = line.split_whitespace().map(String::from).collect();
    assert_eq!(words[..3], ["ssvae", "train", "--resume"], "{line}");
    words[1..].to_vec()
}

#[cfg(unix)]
#[test]
fn ctrl_c_mid_epoch_then_the_printed_resume_matches_an_uninterrupted_run_bit_for_bit() {
    let dd = data_dir();
    let (a, b) = (temp_dir("sigint-straight"), temp_dir("sigint-stopped"));
    let run = |dir: &Path| -> Vec<String> {
        let extra = [
            "--seed",
            "5",
            "--epochs",
            "4",
            "--steps-per-epoch",
            "400",
            "--keep-last",
            "2",
            "--device",
            "cpu",
        ];
        train_args(&dd, dir.to_str().unwrap(), &extra)
            .into_iter()
            .map(String::from)
            .collect()
    };
    let args_b = run(&b);
    let args_b: Vec<&str> = args_b.iter().map(String::as_str).collect();
    let stopped = train_and_signal(&args_b, "INT");
    assert_eq!(stopped.status, Some(130), "{}", stopped.stderr);
    assert!(
        stopped.stderr.contains("interrupted by SIGINT"),
        "{}",
        stopped.stderr
    );
    assert!(
        !stopped.stdout.contains("epoch   2"),
        "stopped inside epoch 2: {}",
        stopped.stdout
    );
    // The epoch checkpoint and one of the step it stopped at, which LATEST names.
    let latest = std::fs::read_to_string(b.join("LATEST")).unwrap();
    let latest = latest.trim();
    assert!(latest.starts_with("step-"), "{latest}");
    assert_eq!(
        listing(&b),
        ["LATEST", "epoch-0001", "metrics.csv", latest],
        "{}",
        stopped.stderr
    );
    let step: usize = latest["step-".len()..].parse().unwrap();
    assert!((401..=800).contains(&step), "{latest}");
    assert!(
        stopped
            .stderr
            .contains(&format!("after step {step}; checkpoint")),
        "{}",
        stopped.stderr
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(b.join(latest).join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["epoch"], 1);
    assert_eq!(config["steps_into_epoch"], step - 400);
    assert_eq!(csv_without_timing(&b).len(), 2, "the row of epoch 1 only");

    // The printed command continues the run to the end...
    let resume = resume_command(&stopped.stderr);
    let resume: Vec<&str> = resume.iter().map(String::as_str).collect();
    assert_eq!(resume[2], b.to_str().unwrap());
    let out = ok(&resume);
    assert!(
        out.contains(&format!("{} steps into epoch 2", step - 400)),
        "{out}"
    );
    // ...where the mid-epoch checkpoint is gone and the two newest epochs are kept...
    assert_eq!(
        listing(&b),
        ["LATEST", "epoch-0003", "epoch-0004", "metrics.csv"]
    );
    // ...with the numbers of a run that was never stopped: every metric but the timings, and
    // every byte of the checkpoint files.
    let args_a = run(&a);
    ok(&args_a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(csv_without_timing(&a), csv_without_timing(&b));
    assert_eq!(csv_without_timing(&a).len(), 5);
    for epoch in ["epoch-0003", "epoch-0004"] {
        assert!(
            checkpoint_files(&a, epoch) == checkpoint_files(&b, epoch),
            "{epoch} differs"
        );
    }
}

#[cfg(unix)]
#[test]
fn sigterm_also_checkpoints_and_exits_with_143() {
    let dd = data_dir();
    let dir = temp_dir("sigterm");
    let d = dir.to_str().unwrap();
    let stopped = train_and_signal(
        &train_args(
            &dd,
            d,
            &[
                "--epochs",
                "3",
                "--steps-per-epoch",
                "400",
                "--device",
                "cpu",
            ],
        ),
        "TERM",
    );
    assert_eq!(stopped.status, Some(143), "{}", stopped.stderr);
    assert!(
        stopped.stderr.contains("interrupted by SIGTERM"),
        "{}",
        stopped.stderr
    );
    let resume = resume_command(&stopped.stderr);
    assert_eq!(resume, ["train", "--resume", d, "--data-dir", &dd]);
    // Default --keep-last 1: the last epoch and the step.
    let names = listing(&dir);
    assert_eq!(names.len(), 4, "{names:?}");
    assert_eq!(names[..3], ["LATEST", "epoch-0001", "metrics.csv"]);
    assert!(names[3].starts_with("step-"), "{names:?}");
}

#[test]
fn keep_last_keeps_the_newest_epochs_and_is_saved_with_the_run() {
    let dd = data_dir();
    let dir = temp_dir("keep-last");
    let d = dir.to_str().unwrap();
    ok(&train_args(
        &dd,
        d,
        &["--epochs", "4", "--keep-last", "2", "--device", "cpu"],
    ));
    assert_eq!(
        listing(&dir),
        ["LATEST", "epoch-0003", "epoch-0004", "metrics.csv"]
    );
    // A resume keeps the run's own setting...
    ok(&["train", "--resume", d, "--epochs", "5", "--data-dir", &dd]);
    assert_eq!(
        listing(&dir),
        ["LATEST", "epoch-0004", "epoch-0005", "metrics.csv"]
    );
    // ...unless told another, which it then saves.
    ok(&[
        "train",
        "--resume",
        d,
        "--epochs",
        "7",
        "--keep-last",
        "3",
        "--data-dir",
        &dd,
    ]);
    assert_eq!(
        listing(&dir),
        [
            "LATEST",
            "epoch-0005",
            "epoch-0006",
            "epoch-0007",
            "metrics.csv"
        ]
    );
    // Each kept checkpoint is whole and can be evaluated.
    let ev = ok(&["eval", &format!("{d}/epoch-0005"), "--data-dir", &dd]);
    assert!(ev.contains("epoch 5"), "{ev}");
    let err = fails(&train_args(
        &dd,
        temp_dir("keep-none").to_str().unwrap(),
        &["--keep-last", "0"],
    ));
    assert!(
        err.contains("--keep-last") && err.contains("at least 1"),
        "{err}"
    );
}

#[test]
fn save_best_keeps_the_checkpoint_with_the_lowest_validation_error() {
    let dd = data_dir();
    let dir = temp_dir("save-best");
    let d = dir.to_str().unwrap();
    ok(&train_args(
        &dd,
        d,
        &[
            "--epochs",
            "5",
            "--validation",
            "200",
            "--save-best",
            "val_error",
            "--device",
            "cpu",
        ],
    ));
    assert_eq!(
        listing(&dir),
        ["LATEST", "best", "epoch-0005", "metrics.csv"]
    );
    assert_eq!(
        listing(&dir.join("best")),
        [
            "best.json",
            "config.json",
            "model.safetensors",
            "optimizer.safetensors",
            "state.json"
        ]
    );
    // The first epoch with the lowest val_error_pct of metrics.csv.
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|c| *c == "val_error_pct").unwrap();
    let errors: Vec<f64> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(col).unwrap().parse().unwrap())
        .collect();
    let lowest = errors.iter().copied().fold(f64::INFINITY, f64::min);
    let best_epoch = 1 + errors.iter().position(|&e| e == lowest).unwrap();
    let best: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("best/best.json")).unwrap())
            .unwrap();
    assert_eq!(best["metric"], "val_error_pct", "{best}");
    assert_eq!(best["value"].as_f64(), Some(lowest), "{best} vs {errors:?}");
    assert_eq!(best["epoch"], best_epoch, "{best} vs {errors:?}");
    let ev = ok(&["eval", &format!("{d}/best"), "--data-dir", &dd]);
    assert!(ev.contains(&format!("epoch {best_epoch} ")), "{ev}");

    // It needs a validation set and a model with an error rate; unknown metrics are named.
    let scratch = temp_dir("save-best-refused");
    let s = scratch.to_str().unwrap();
    let err = fails(&train_args(&dd, s, &["--save-best", "val_error"]));
    assert!(
        err.contains("--save-best") && err.contains("--validation"),
        "{err}"
    );
    let err = fails(&train_args(&dd, s, &["--save-best", "val_elbo"]));
    assert!(err.contains("unknown metric \"val_elbo\""), "{err}");
    let err = fails(&train_args(
        &dd,
        s,
        &[
            "--model",
            "vae",
            "--validation",
            "200",
            "--save-best",
            "val_error",
        ],
    ));
    assert!(err.contains("vae does not classify"), "{err}");
    ok(&train_args(&dd, s, &["--epochs", "1", "--device", "cpu"]));
    let err = fails(&[
        "train",
        "--resume",
        s,
        "--epochs",
        "2",
        "--save-best",
        "val_error",
        "--data-dir",
        &dd,
    ]);
    assert!(err.contains("holds out no validation set"), "{err}");
}

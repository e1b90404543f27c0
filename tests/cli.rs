//! The `ssvae` binary end to end on the shared digits set: `train` writes metrics.csv and a
//! checkpoint, `eval` and `sample` read it, impossible flags and corrupt checkpoints fail with
//! a clear message, and a diverging run stops with the last good checkpoint named.

mod cli_support;

use cli_support::{data_dir, fails, ok, temp_dir, train_args};
use std::path::Path;

/// Width and height of a PNG, decoding it fully (so a broken file fails here).
fn png_size(path: &Path) -> (u32, u32) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    (info.width, info.height)
}

#[test]
fn train_eval_sample_on_digits() {
    let dd = data_dir();
    let dir = temp_dir("train");
    let d = dir.to_str().unwrap();
    let out = ok(&train_args(&dd, d, &["--epochs", "2"]));
    assert!(
        out.contains("epoch   1") && out.contains("epoch   2"),
        "{out}"
    );
    assert!(out.contains("test error"), "{out}");

    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "epoch,unix_time,wall_s,examples_per_s,lr,loss,labelled,ce,unlabelled,test_error_pct,test_elbo,test_acc_pct,test_nmi"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let mut times = Vec::new();
    for (i, l) in lines[1..].iter().enumerate() {
        let cells: Vec<&str> = l.split(',').collect();
        assert_eq!(cells.len(), 13, "{l}");
        assert_eq!(cells[0], (i + 1).to_string());
        for c in &cells[1..] {
            let v: f64 = c.parse().unwrap_or_else(|_| panic!("cell {c:?} of {l}"));
            assert!(v.is_finite(), "{l}");
        }
        // When the row was written (Unix seconds, to the millisecond), and the epoch's rate.
        let t: f64 = cells[1].parse().unwrap();
        assert!(t <= now && t > now - 600.0, "{l}");
        assert_eq!(cells[1].split('.').nth(1).map(str::len), Some(3), "{l}");
        times.push(t);
        assert_eq!(cells[4], "0.001", "{l}");
        // Error and ACC in percent, and they add up to 100 (M2's classes are classes).
        let (err, acc): (f64, f64) = (cells[9].parse().unwrap(), cells[11].parse().unwrap());
        assert!(
            (0.0..=100.0).contains(&err) && (err + acc - 100.0).abs() < 1e-9,
            "{l}"
        );
    }
    assert!(times[0] <= times[1], "{csv}");

    // One checkpoint directory, the newest, with its four files.
    assert_eq!(
        std::fs::read_to_string(dir.join("LATEST")).unwrap().trim(),
        "epoch-0002"
    );
    for f in [
        "model.safetensors",
        "optimizer.safetensors",
        "config.json",
        "state.json",
    ] {
        assert!(dir.join("epoch-0002").join(f).is_file(), "{f}");
    }
    assert!(!dir.join("epoch-0001").exists());

    let ev = ok(&["eval", d, "--data-dir", &dd, "--iwae-k", "4"]);
    for want in [
        "test error",
        "test ELBO",
        "clustering ACC",
        "clustering NMI",
        "test IWAE (K=4)",
    ] {
        assert!(ev.contains(want), "{want} missing in {ev}");
    }
    // The reported test error is the one of the last CSV row.
    // Both in percent: the console shows the CSV's value to two decimals.
    let err_csv: f64 = lines[2].split(',').nth(9).unwrap().parse().unwrap();
    assert!(
        ev.contains(&format!("test error       {err_csv:.2}%")),
        "{ev}"
    );
    // The confusion matrix: a row per true class, a column per predicted class, then the
    // class's error; its off-diagonal share is the test error.
    let cm = ok(&["eval", d, "--data-dir", &dd, "--confusion"]);
    let rows: Vec<Vec<&str>> = cm
        .lines()
        .skip_while(|l| !l.starts_with("confusion (rows: true class"))
        .skip(2)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 10, "{cm}");
    let (mut total, mut wrong) = (0usize, 0usize);
    for (t, r) in rows.iter().enumerate() {
        assert_eq!((r[0], r.len()), (t.to_string().as_str(), 12), "{cm}");
        let counts: Vec<usize> = r[1..11].iter().map(|c| c.parse().unwrap()).collect();
        let n: usize = counts.iter().sum();
        assert_eq!(
            r[11],
            format!("{:.2}%", 100.0 * (n - counts[t]) as f64 / n as f64),
            "{cm}"
        );
        total += n;
        wrong += n - counts[t];
    }
    assert_eq!(
        ssvae::metrics::percent(wrong as f64 / total as f64),
        err_csv,
        "{cm}"
    );

    // Class-conditional grid: 10 classes × 10 samples of 8×8 with 1-pixel gaps.
    let png = dir.join("grid.png");
    ok(&["sample", d, "--out", png.to_str().unwrap()]);
    assert_eq!(png_size(&png), (10 * 8 + 9, 10 * 8 + 9));
    // A grid for a folder that does not exist: the error names the file and the folder.
    let lost = dir.join("no-such-folder/grid.png");
    let err = fails(&["sample", d, "--out", lost.to_str().unwrap()]);
    assert!(
        err.contains(&format!("cannot write {}", lost.display()))
            && err.contains("no-such-folder is not a directory"),
        "{err}"
    );
    ok(&[
        "sample",
        d,
        "--out",
        png.to_str().unwrap(),
        "--rows",
        "3",
        "--cols",
        "5",
    ]);
    assert_eq!(png_size(&png), (5 * 8 + 4, 3 * 8 + 2));
    ok(&[
        "sample",
        d,
        "--out",
        png.to_str().unwrap(),
        "--rows",
        "2",
        "--cols",
        "3",
        "--scale",
        "4",
    ]);
    assert_eq!(png_size(&png), (3 * 32 + 2, 2 * 32 + 1));
    // Analogies: each row a test image and its style with each of the 10 classes.
    let an = dir.join("analogy.png");
    ok(&[
        "sample",
        d,
        "--analogy",
        "--rows",
        "4",
        "--out",
        an.to_str().unwrap(),
        "--data-dir",
        &dd,
    ]);
    assert_eq!(png_size(&an), (11 * 8 + 10, 4 * 8 + 3));

    // The run directory is protected from an accidental restart...
    let err = fails(&train_args(&dd, d, &["--epochs", "1"]));
    assert!(
        err.contains("already holds a checkpoint") && err.contains("--resume"),
        "{err}"
    );
    // ...--resume refuses settings it would ignore...
    let err = fails(&["train", "--resume", d, "--lr", "0.1"]);
    assert!(err.contains("--lr cannot be given"), "{err}");
    let err = fails(&["train", "--resume", d, "--augment-shift", "1"]);
    assert!(err.contains("--augment-shift cannot be given"), "{err}");
    // ...and a finished run says so.
    let out = ok(&["train", "--resume", d, "--data-dir", &dd]);
    assert!(out.contains("already at epoch 2 of 2"), "{out}");
}

#[test]
fn help_lists_the_possible_values_of_the_choice_flags() {
    let help = ok(&["train", "--help"]);
    for values in [
        "[possible values: vae, m1, m2, m1m2, gmvae, shot, sparse, aae, ladder, adgm, sdgm, classifier]",
        "[possible values: mlp, conv]",
    ] {
        assert!(help.contains(values), "{values} not in:\n{help}");
    }
    // --dataset also takes NumPy arrays (npz:FILE, npy:DIR), so its names are listed in its
    // help text rather than as clap values.
    assert!(
        help.contains("mnist | fashion-mnist | cifar10 | digits | svhn"),
        "{help}"
    );
    // Dataset names are case-insensitive: DIGITS parses, and the run fails only at the next
    // check.
    let err = fails(&["train", "--dataset", "DIGITS", "--epochs", "0"]);
    assert!(err.contains("--epochs: must be at least 1"), "{err}");
}

#[test]
fn impossible_flags_fail_clearly() {
    let dd = data_dir();
    let dir = temp_dir("flags");
    let d = dir.to_str().unwrap();
    let cases: [(&[&str], &str); 20] = [
        (&["--labels", "15"], "multiple of the number of classes"),
        (&["--labels", "5000"], "class"),
        (&["--epochs", "0"], "--epochs: must be at least 1"),
        (&["--batch-size", "0"], "--batch-size: must be at least 1"),
        (
            &["--labelled-batch", "0"],
            "--labelled-batch: must be at least 1",
        ),
        (&["--device", "tpu"], "expected auto, cpu, cuda or cuda:N"),
        (
            &["--model", "m3"],
            "invalid value 'm3' for '--model <MODEL>'\n  [possible values: vae, m1, m2, m1m2, gmvae, shot, sparse, aae, ladder, adgm, sdgm, classifier]",
        ),
        (
            &["--arch", "rnn"],
            "invalid value 'rnn' for '--arch <ARCH>'\n  [possible values: mlp, conv]",
        ),
        (&["--lr", "0"], "--lr: must be a positive number"),
        (
            &["--lr-gamma", "0"],
            "--lr-gamma: must be a positive number",
        ),
        (
            &["--lr-milestones", "5,3"],
            "--lr-milestones: must be epochs ≥ 1 in increasing order",
        ),
        (&["--align"], "--align: applies to shot only, not to m2"),
        (
            &["--model", "shot", "--freeze-m1-after", "3"],
            "--freeze-m1-after: applies to m1m2 only, not to shot",
        ),
        (
            &["--drop-inactive-z1"],
            "--drop-inactive-z1: applies to m1m2 only, not to m2",
        ),
        (
            &["--model", "shot", "--labelled-bound-weight", "0.5"],
            "--labelled-bound-weight: applies to m2 and m1m2 only, not to shot",
        ),
        (
            &["--model", "m1m2", "--labelled-bound-weight=-1"],
            "invalid value '-1' for '--labelled-bound-weight <W>': must be a finite number ≥ 0, not -1",
        ),
        (
            &["--labelled-bound-weight=inf"],
            "invalid value 'inf' for '--labelled-bound-weight <W>': must be a finite number ≥ 0, not inf",
        ),
        (
            &["--a-samples", "5"],
            "--a-samples: applies to adgm and sdgm only, not to m2",
        ),
        (
            &["--model", "sdgm", "--a-samples", "0"],
            "--a-samples: must be at least 1",
        ),
        (
            &["--augment-shift", "8"],
            "--augment-shift: a shift of 8 pixels can move a 8×8 image out of its frame; it must be below 8",
        ),
    ];
    for (extra, want) in cases {
        // Each fails before any training starts.
        let mut args = vec![
            "train",
            "--dataset",
            "digits",
            "--data-dir",
            &dd,
            "--out",
            d,
        ];
        args.extend_from_slice(extra);
        let err = fails(&args);
        assert!(err.contains(want), "{extra:?}: {err}");
    }
    // Without a GPU, asking for one is a clear error (on a GPU machine it would simply run).
    if ssvae::device::cuda_status().is_err() {
        let err = fails(&["bench", "--device", "cuda"]);
        assert!(err.contains("cuda requested but"), "{err}");
        let mut args = vec![
            "train",
            "--dataset",
            "digits",
            "--data-dir",
            &dd,
            "--out",
            d,
        ];
        args.extend_from_slice(&["--device", "cuda:0"]);
        let err = fails(&args);
        assert!(err.contains("cuda:0 requested but"), "{err}");
    }
    let err = fails(&["eval", d]);
    assert!(err.contains("not a checkpoint"), "{err}");
}

#[test]
fn resume_stays_on_the_saved_device_unless_told_otherwise() {
    let dd = data_dir();
    let dir = temp_dir("resume-device");
    let d = dir.to_str().unwrap();
    ok(&train_args(
        &dd,
        d,
        &["--epochs", "1", "--steps-per-epoch", "2", "--device", "cpu"],
    ));
    // A CPU run continues on the CPU with no --device, whatever this machine has; given a
    // checkpoint directory, the run it belongs to goes on (its metrics.csv, its LATEST).
    let first = dir.join("epoch-0001");
    let first = first.to_str().unwrap();
    let out = ok(&[
        "train",
        "--resume",
        first,
        "--epochs",
        "2",
        "--data-dir",
        &dd,
    ]);
    assert!(out.contains("to epoch 2, device cpu"), "{out}");
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert_eq!(
        std::fs::read_to_string(dir.join("LATEST")).unwrap().trim(),
        "epoch-0002"
    );
    // `sample` of a checkpoint directory writes its default grid into the run directory.
    ok(&["sample", dir.join("epoch-0002").to_str().unwrap()]);
    assert!(dir.join("samples.png").is_file());
    // A run saved as trained on a GPU, resumed on a machine without one: a clear error that
    // says how to go on, and going on with --device cpu works.
    if ssvae::device::cuda_status().is_ok() {
        println!("skipped the GPU-run half: this machine has CUDA");
        return;
    }
    let config = dir.join("epoch-0002/config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("\"device\": \"cpu\""), "{text}");
    std::fs::write(
        &config,
        text.replace("\"device\": \"cpu\"", "\"device\": \"cuda:0\""),
    )
    .unwrap();
    let err = fails(&["train", "--resume", d, "--epochs", "3", "--data-dir", &dd]);
    assert!(
        err.contains("was trained on cuda:0, which this machine lacks")
            && err.contains("pass --device cpu"),
        "{err}"
    );
    let out = ok(&[
        "train",
        "--resume",
        d,
        "--epochs",
        "3",
        "--device",
        "cpu",
        "--data-dir",
        &dd,
    ]);
    assert!(out.contains("to epoch 3, device cpu"), "{out}");
}

#[test]
fn corrupt_checkpoint_files_are_named() {
    let dd = data_dir();
    let dir = temp_dir("corrupt");
    let d = dir.to_str().unwrap();
    ok(&train_args(
        &dd,
        d,
        &["--epochs", "1", "--steps-per-epoch", "3"],
    ));
    let ckpt = dir.join("epoch-0001");

    let model = ckpt.join("model.safetensors");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&model, &bytes[..bytes.len() - 100]).unwrap();
    let err = fails(&["eval", d, "--data-dir", &dd]);
    assert!(err.contains(&model.display().to_string()), "{err}");
    assert!(err.contains("corrupt or truncated"), "{err}");
    std::fs::write(&model, &bytes).unwrap();

    let config = ckpt.join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, &text[..text.len() / 2]).unwrap();
    let err = fails(&["sample", d]);
    assert!(err.contains(&config.display().to_string()), "{err}");
    std::fs::write(&config, &text).unwrap();

    let state = ckpt.join("state.json");
    std::fs::write(&state, "{").unwrap();
    let err = fails(&["train", "--resume", d, "--epochs", "2", "--data-dir", &dd]);
    assert!(err.contains(&state.display().to_string()), "{err}");
}

#[test]
fn divergence_stops_with_the_last_good_checkpoint_named() {
    let dd = data_dir();
    let dir = temp_dir("diverge");
    let d = dir.to_str().unwrap();
    ok(&train_args(
        &dd,
        d,
        &["--epochs", "1", "--steps-per-epoch", "2"],
    ));
    // Make the run diverge from here: with an absurd learning rate the next step (3) is still
    // finite but throws the weights to ±1e30, and the loss of step 4 overflows.
    let config = dir.join("epoch-0001/config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\"lr\": 0.001", "\"lr\": 1e30")).unwrap();
    let err = fails(&["train", "--resume", d, "--epochs", "3", "--data-dir", &dd]);
    assert!(err.contains("non-finite value"), "{err}");
    assert!(err.contains("at step 4 (epoch 2)"), "{err}");
    assert!(
        err.contains("last good checkpoint is") && err.contains("epoch-0001"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("LATEST")).unwrap().trim(),
        "epoch-0001"
    );
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    // The checkpoint still loads and evaluates to finite numbers.
    let ev = ok(&["eval", d, "--data-dir", &dd]);
    assert!(!ev.contains("NaN"), "{ev}");

    // Diverging within the first epoch: no checkpoint to point at, and the message says so.
    let dir = temp_dir("diverge-first");
    let d = dir.to_str().unwrap();
    let err = fails(&train_args(&dd, d, &["--epochs", "2", "--lr", "1e30"]));
    assert!(err.contains("at step 2 (epoch 1)"), "{err}");
    assert!(err.contains("no checkpoint was written"), "{err}");
    assert!(!dir.join("LATEST").exists());
}

#[test]
fn a_validation_set_is_held_out_and_reported_every_epoch() {
    let dd = data_dir();
    let dir = temp_dir("validation");
    let d = dir.to_str().unwrap();
    let out = ok(&train_args(
        &dd,
        d,
        &["--validation", "200", "--epochs", "2", "--device", "cpu"],
    ));
    assert!(
        out.contains("val error") && out.contains("val ELBO"),
        "{out}"
    );
    // Resuming keeps the split (the saved --validation) and the columns.
    ok(&["train", "--resume", d, "--epochs", "3", "--data-dir", &dd]);
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    let header: Vec<&str> = lines[0].split(',').collect();
    assert_eq!(
        header[header.len() - 2..],
        ["val_error_pct", "val_elbo"],
        "{csv}"
    );
    for line in &lines[1..] {
        let row: Vec<f64> = line.split(',').map(|c| c.parse().unwrap()).collect();
        let (err, elbo) = (row[row.len() - 2], row[row.len() - 1]);
        // 200 examples: the error in percent is a multiple of 0.5; the bound is a finite
        // log-probability.
        assert!((0.0..=100.0).contains(&err), "{line}");
        assert_eq!((err * 2.0).round(), err * 2.0, "{line}");
        assert!(elbo.is_finite() && elbo < 0.0, "{line}");
    }
    // More validation examples than the training set holds beside the labels: refused.
    let err = fails(&train_args(
        &dd,
        temp_dir("validation-too-many").to_str().unwrap(),
        &["--validation", "5000"],
    ));
    assert!(
        err.contains("--validation") && err.contains("exceed"),
        "{err}"
    );
}

/// A model whose loss gains terms mid-run (M1+M2 trains M1 alone for the first third) still logs
/// one metrics.csv row per epoch under one header.
#[test]
fn metrics_columns_stay_fixed_across_training_phases() {
    let dd = data_dir();
    let dir = temp_dir("m1m2-phases");
    let d = dir.to_str().unwrap();
    ok(&[
        "train",
        "--model",
        "m1m2",
        "--dataset",
        "digits",
        "--data-dir",
        &dd,
        "--labels",
        "100",
        "--epochs",
        "3",
        "--hidden",
        "32",
        "--z-dim",
        "4",
        "--device",
        "cpu",
        "--out",
        d,
    ]);
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    let columns = lines[0].split(',').count();
    assert!(
        lines.iter().all(|l| l.split(',').count() == columns),
        "{csv}"
    );
    assert!(
        lines[0].contains("unlabelled") && lines[0].contains("ce"),
        "{csv}"
    );
}

#[test]
fn eval_counts_the_active_latent_units_of_a_vae() {
    let dd = data_dir();
    let dir = temp_dir("active-units");
    let d = dir.to_str().unwrap();
    ok(&train_args(
        &dd,
        d,
        &["--model", "vae", "--epochs", "1", "--device", "cpu"],
    ));
    let out = ok(&["eval", d, "--data-dir", &dd, "--active-units"]);
    let line = out
        .lines()
        .find(|l| l.starts_with("active units"))
        .unwrap_or_else(|| panic!("{out}"));
    // "active units     k of 4 (Var_x E[z|x] > 0.01; per unit, largest first: a b c d)"
    let words: Vec<&str> = line.split_whitespace().collect();
    let (active, of): (usize, &str) = (words[2].parse().unwrap(), words[4]);
    assert_eq!(of, "4", "{line}");
    let var: Vec<f64> = line
        .rsplit(": ")
        .next()
        .unwrap()
        .trim_end_matches(')')
        .split(' ')
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(var.len(), 4, "{line}");
    assert!(var.windows(2).all(|w| w[0] >= w[1]), "{line}");
    assert_eq!(active, var.iter().filter(|&&v| v > 0.01).count(), "{line}");
}

/// The GMVAE is a clustering model without labels (no test error: its components are not
/// classes) and a classifier with them (the labelled cross-entropy ties component k to class k).
#[test]
fn gmvae_reports_test_error_only_when_trained_with_labels() {
    let dd = data_dir();
    for (labels, want_error) in [("0", false), ("50", true)] {
        let dir = temp_dir(&format!("gmvae-{labels}"));
        let d = dir.to_str().unwrap();
        let mut args = train_args(
            &dd,
            d,
            &["--model", "gmvae", "--epochs", "1", "--device", "cpu"],
        );
        args[4] = labels; // the value after --labels
        let stdout = ok(&args);
        let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        let header: Vec<&str> = lines[0].split(',').collect();
        let row: Vec<&str> = lines[1].split(',').collect();
        let col = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
        assert_eq!(!col("test_error_pct").is_empty(), want_error, "{csv}");
        assert_eq!(stdout.contains("test error"), want_error, "{stdout}");
        assert!(
            !col("test_acc_pct").is_empty(),
            "ACC is reported either way: {csv}"
        );
        // The confusion matrix of a clustering run has cluster columns, and its per-class
        // errors (under the Hungarian map) add up to 1 − ACC; trained with labels, to the test
        // error.
        let cm = ok(&["eval", d, "--data-dir", &dd, "--confusion"]);
        let kind = if want_error { "class" } else { "cluster" };
        assert!(cm.contains(&format!("columns: predicted {kind})")), "{cm}");
        let (mut total, mut wrong) = (0.0f64, 0.0f64);
        for line in cm
            .lines()
            .skip_while(|l| !l.starts_with("confusion"))
            .skip(2)
        {
            let r: Vec<&str> = line.split_whitespace().collect();
            let n: f64 = r[1..11].iter().map(|c| c.parse::<f64>().unwrap()).sum();
            let err: f64 = r[11].trim_end_matches('%').parse().unwrap();
            total += n;
            wrong += (err / 100.0 * n).round();
        }
        let want: f64 = if want_error {
            col("test_error_pct").parse::<f64>().unwrap() / 100.0
        } else {
            1.0 - col("test_acc_pct").parse::<f64>().unwrap() / 100.0
        };
        assert!((wrong / total - want).abs() < 1e-12, "{cm}\nwant {want}");
    }
}

/// `train` on digits with the data directory, a width of 64 and the CPU, plus `extra`.
fn digits<'a>(dd: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "train",
        "--dataset",
        "digits",
        "--data-dir",
        dd,
        "--hidden",
        "64",
        "--device",
        "cpu",
    ];
    a.extend_from_slice(extra);
    a
}

/// The tensors of the checkpoint `epoch` of run `dir`, by name, as raw bytes.
fn saved_tensors(dir: &Path, epoch: &str) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(dir.join(epoch).join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut v: Vec<(String, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.data().to_vec()))
        .collect();
    v.sort();
    v
}

/// `train --model m1m2 --m1-from DIR`, the paper's protocol: M1 is the trained VAE of DIR and
/// stays frozen (the run's M1 tensors are DIR's, bit for bit, after training), M2 alone learns
/// on its features and classifies well above chance; `--drop-inactive-z1` measures the frozen
/// M1's units; a source that does not fit is refused.
#[test]
fn m1m2_starts_from_a_trained_vae_and_keeps_it_frozen() {
    let dd = data_dir();
    let dir = temp_dir("m1-from");
    let (vae, run, other, m2) = (
        dir.join("vae"),
        dir.join("m1m2"),
        dir.join("other"),
        dir.join("m2"),
    );
    let (v, r, o) = (
        vae.to_str().unwrap(),
        run.to_str().unwrap(),
        other.to_str().unwrap(),
    );
    let vae_args = [
        "--model", "vae", "--z-dim", "8", "--epochs", "20", "--out", v,
    ];
    ok(&digits(&dd, &vae_args));
    let m1m2_args = [
        "--model",
        "m1m2",
        "--z-dim",
        "8",
        "--epochs",
        "15",
        "--m1-from",
        v,
        "--out",
        r,
    ];
    let out = ok(&digits(&dd, &m1m2_args));
    assert!(
        out.contains("M1 from ") && out.contains("(frozen after epoch 0)"),
        "{out}"
    );

    let source = saved_tensors(&vae, "epoch-0020");
    let m1: Vec<(String, Vec<u8>)> = saved_tensors(&run, "epoch-0015")
        .into_iter()
        .filter_map(|(n, b)| n.strip_prefix("m1.").map(|n| (n.to_string(), b)))
        .collect();
    assert_eq!(m1.len(), source.len());
    assert!(m1 == source, "M1 changed while frozen");

    // M2 learnt on the frozen features: well below the 90% of guessing among 10 classes.
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|c| *c == "test_error_pct").unwrap();
    let cells: Vec<&str> = csv.lines().last().unwrap().split(',').collect();
    let error: f64 = cells[col].parse().unwrap();
    assert!(error < 75.0, "test error {error}% after 15 epochs\n{csv}");
    let config = std::fs::read_to_string(run.join("epoch-0015").join("config.json")).unwrap();
    assert!(
        config.contains("\"m1_from\"") && config.contains("\"freeze_m1_after\": 0"),
        "{config}"
    );
    // The paper's weighting of the labelled bound by default, N_labelled/N_unlabelled, recorded.
    let json: serde_json::Value = serde_json::from_str(&config).unwrap();
    let model = &json["model"];
    let pool = model["n_train"].as_f64().unwrap() - json["validation"].as_f64().unwrap();
    let want = model["n_labelled"].as_f64().unwrap() / pool;
    let got = model["labelled_bound_weight"].as_f64().unwrap();
    assert!(
        (got - want).abs() < 1e-6 * want && want < 0.1,
        "{got} vs {want}"
    );

    // An m1m2 run is a source too (its M1).
    ok(&digits(
        &dd,
        &[
            "--model",
            "m1m2",
            "--z-dim",
            "8",
            "--epochs",
            "1",
            "--m1-from",
            r,
            "--out",
            o,
            "--drop-inactive-z1",
        ],
    ));
    // With --drop-inactive-z1 the loaded M1's units are measured (every unit starts at
    // activity 1, which the frozen M1's batches then replace).
    let activity = saved_tensors(&other, "epoch-0001")
        .into_iter()
        .find(|(n, _)| n == "z1_activity")
        .map(|(_, b)| b)
        .expect("a z1_activity buffer");
    assert_eq!(activity.len(), 8 * 4);
    assert_ne!(
        activity,
        1f32.to_le_bytes().repeat(8),
        "activity not measured"
    );
    // Refusals, each naming what does not fit: (model, z dim, source, message).
    let refused = dir.join("refused");
    let (m2_dir, x) = (m2.to_str().unwrap(), refused.to_str().unwrap());
    ok(&digits(
        &dd,
        &[
            "--model", "m2", "--z-dim", "8", "--epochs", "1", "--out", m2_dir,
        ],
    ));
    for (model, z, source, want) in [
        ("m1m2", "6", v, "z dim 8 (this run: 6)"),
        ("m2", "8", v, "--m1-from: applies to m1m2 only"),
        ("m1m2", "8", m2_dir, "holds a model of kind m2"),
    ] {
        let a = digits(
            &dd,
            &[
                "--model",
                model,
                "--z-dim",
                z,
                "--m1-from",
                source,
                "--out",
                x,
            ],
        );
        assert!(fails(&a).contains(want), "{a:?}: no {want:?}");
    }
}

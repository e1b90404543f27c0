//! Bad input against the `ssvae` binary, as a new user would give it (issue #24): a checkpoint
//! holding NaN, impossible loss weights, sizes far beyond the machine's memory, an IWAE K that
//! would run for days, IDX headers that lie about their size, and files that are not what
//! they claim. Each test is a table of cases for one kind; every case asserts the exit code,
//! that the process neither panicked nor aborted (no "panicked", no "memory allocation", no
//! backtrace; exit codes 101, 134, 137 and 139 never pass), and the words of the message. The
//! datasets are tiny files written into a temporary directory, and the one checkpoint is a
//! two-step digits run, so the whole file runs in seconds.

mod cli_support;

use cli_support::{data_dir, ok, temp_dir, train_args};
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// One bad input: the arguments, the exit code, words the message must hold and words it must
/// not (the wrong problem it used to name).
struct Case {
    args: Vec<String>,
    /// Run under `bash -c "<shell>; exec ssvae …"` (resource limits), when given.
    shell: Option<&'static str>,
    code: i32,
    want: Vec<String>,
    not: Vec<&'static str>,
}

impl Case {
    fn new(args: &[&str], code: i32, want: &[&str]) -> Case {
        Case {
            args: args.iter().map(|s| s.to_string()).collect(),
            shell: None,
            code,
            want: want.iter().map(|s| s.to_string()).collect(),
            not: Vec::new(),
        }
    }

    fn not(mut self, words: &[&'static str]) -> Case {
        self.not.extend_from_slice(words);
        self
    }

    fn under(mut self, shell: &'static str) -> Case {
        self.shell = Some(shell);
        self
    }
}

/// Run every case and check it; returns each case's stderr.
fn check(cases: &[Case]) -> Vec<String> {
    let bin = env!("CARGO_BIN_EXE_ssvae");
    cases
        .iter()
        .map(|c| {
            let out = match c.shell {
                None => Command::new(bin).args(&c.args).output().unwrap(),
                Some(sh) => Command::new("bash")
                    .arg("-c")
                    .arg(format!("{sh}; exec \"$0\" \"$@\""))
                    .arg(bin)
                    .args(&c.args)
                    .output()
                    .unwrap(),
            };
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            let code = out.status.code();
            assert!(
                code.is_some() && ![101, 134, 137, 139].contains(&code.unwrap_or(0)),
                "ssvae {:?}: killed or aborted ({:?})\n{err}",
                c.args,
                out.status
            );
            for bad in ["panicked", "memory allocation", "stack backtrace"] {
                assert!(!err.contains(bad), "ssvae {:?}: {bad}\n{err}", c.args);
            }
            assert_eq!(code, Some(c.code), "ssvae {:?}\n{err}", c.args);
            for w in &c.want {
                assert!(
                    err.contains(w.as_str()),
                    "ssvae {:?}: no {w:?} in\n{err}",
                    c.args
                );
            }
            for w in &c.not {
                assert!(!err.contains(w), "ssvae {:?}: {w:?} in\n{err}", c.args);
            }
            err
        })
        .collect()
}

/// A small trained digits run (two steps of M2 on the CPU), shared by the tests that need a
/// checkpoint; they copy it before changing anything.
fn trained_run() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = temp_dir("trained");
        let dd = data_dir();
        let d = dir.to_str().unwrap();
        ok(&train_args(
            &dd,
            d,
            &["--epochs", "1", "--steps-per-epoch", "2", "--device", "cpu"],
        ));
        dir
    })
}

/// A copy of the trained run in a fresh directory `name`.
fn copy_of_run(name: &str) -> PathBuf {
    let src = trained_run();
    let dst = temp_dir(name);
    std::fs::copy(src.join("LATEST"), dst.join("LATEST")).unwrap();
    std::fs::copy(src.join("metrics.csv"), dst.join("metrics.csv")).unwrap();
    std::fs::create_dir(dst.join("epoch-0001")).unwrap();
    for f in std::fs::read_dir(src.join("epoch-0001")).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), dst.join("epoch-0001").join(f.file_name())).unwrap();
    }
    dst
}

/// Overwrite the first value of the tensor named first (in name order) among those `pick`
/// accepts in the safetensors file at `path` with `value`; returns the tensor's name.
fn poison(path: &Path, pick: impl Fn(&str) -> bool, value: f32) -> String {
    let mut bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mut names: Vec<&String> = header
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "__metadata__" && pick(k))
        .collect();
    names.sort();
    let name = names[0].clone();
    let start = header[&name]["data_offsets"][0].as_u64().unwrap() as usize;
    bytes[8 + n + start..8 + n + start + 4].copy_from_slice(&value.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
    name
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// IDX bytes: magic, big-endian dims, data.
fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

/// `n` 28×28 images of varied bytes.
fn images(n: usize) -> Vec<u8> {
    (0..n * 784).map(|k| (k * 7 % 251) as u8).collect()
}

/// `n` labels 0..9 in turn.
fn labels(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 10) as u8).collect()
}

/// A data directory holding `mnist/` with 20 training and 20 test images (gzipped), whose
/// training image file is then replaced by `train_images` when given. Returns the data dir.
fn mnist_dir(name: &str, train_images: Option<(&str, Vec<u8>)>) -> PathBuf {
    let root = temp_dir(name);
    let dir = root.join("mnist");
    std::fs::create_dir_all(&dir).unwrap();
    for (file, bytes) in [
        (
            "train-images-idx3-ubyte.gz",
            idx(0x803, &[20, 28, 28], &images(20)),
        ),
        ("train-labels-idx1-ubyte.gz", idx(0x801, &[20], &labels(20))),
        (
            "t10k-images-idx3-ubyte.gz",
            idx(0x803, &[20, 28, 28], &images(20)),
        ),
        ("t10k-labels-idx1-ubyte.gz", idx(0x801, &[20], &labels(20))),
    ] {
        std::fs::write(dir.join(file), gzip(&bytes)).unwrap();
    }
    if let Some((file, bytes)) = train_images {
        std::fs::remove_file(dir.join("train-images-idx3-ubyte.gz")).unwrap();
        std::fs::write(dir.join(file), bytes).unwrap();
    }
    root
}

/// `train` on the data in `data` with `extra`, into a scratch run directory.
fn train_on(data: &Path, dataset: &str, extra: &[&str]) -> Vec<String> {
    let out = data.join("run");
    let mut a: Vec<String> = [
        "train",
        "--dataset",
        dataset,
        "--labels",
        "10",
        "--device",
        "cpu",
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn case(args: Vec<String>, code: i32, want: &[&str]) -> Case {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Case::new(&refs, code, want)
}

/// Item 1 of the issue: A checkpoint holding NaN (or infinity) is refused on loading, naming the tensor, by
/// every command that loads one; and NaN propagates through the activations instead of
/// becoming 0 (the CPU relu mapped NaN to 0, so such a checkpoint evaluated to a plausible
/// test error with exit 0).
#[test]
fn a_checkpoint_holding_nan_is_refused_naming_the_tensor() {
    let dd = data_dir();
    let run = copy_of_run("nan-model");
    let r = run.to_str().unwrap();
    let name = poison(
        &run.join("epoch-0001/model.safetensors"),
        |_| true,
        f32::NAN,
    );
    let tensor = format!("tensor '{name}' holds NaN at index 0");
    let cases = [
        Case::new(
            &["eval", r, "--data-dir", &dd, "--device", "cpu"],
            1,
            &[&tensor, "model.safetensors"],
        ),
        Case::new(&["sample", r, "--device", "cpu"], 1, &[&tensor]),
        Case::new(
            &["train", "--resume", r, "--epochs", "2", "--data-dir", &dd],
            1,
            &[&tensor],
        ),
    ];
    check(&cases);
    // Adam's moments are checked too (a resume would train on them).
    let run = copy_of_run("inf-moment");
    let r = run.to_str().unwrap();
    let name = poison(
        &run.join("epoch-0001/optimizer.safetensors"),
        |n| n.starts_with("v/"),
        f32::INFINITY,
    );
    check(&[Case::new(
        &["train", "--resume", r, "--epochs", "2", "--data-dir", &dd],
        1,
        &[
            &format!("tensor '{name}' holds inf"),
            "optimizer.safetensors",
        ],
    )]);
    // The activations pass NaN on (PyTorch's max(NaN, 0) is NaN), forward and backward.
    use ssvae::{Device, Tensor};
    let x = Tensor::from_slice(&[f32::NAN, -1.0, 2.0], [3], Device::Cpu)
        .unwrap()
        .variable();
    for (what, y) in [
        ("relu", x.relu()),
        ("leaky_relu", x.leaky_relu(0.1)),
        ("elu", x.elu(1.0)),
    ] {
        let y = y.unwrap();
        let v = y.to_vec().unwrap();
        assert!(v[0].is_nan(), "{what}(NaN) = {}", v[0]);
        assert_eq!(v[2], 2.0, "{what}");
        let g = y.sum_all().unwrap().backward().unwrap();
        let dx = g.get(&x).unwrap().to_vec().unwrap();
        assert!(dx[0].is_nan(), "{what}'(NaN) = {}", dx[0]);
    }
}

/// Item 2 of the issue: A negative or non-finite loss weight is refused as the command line is read (`--alpha
/// -1` trained to 100% error with exit 0; `--alpha nan` failed at step 1 with a hint about
/// the learning rate), and one edited into a checkpoint's config before a resume trains.
#[test]
fn negative_or_non_finite_loss_weights_are_refused_before_training() {
    let dd = data_dir();
    let scratch = temp_dir("weights");
    let out = scratch.join("run");
    let o = out.to_str().unwrap();
    let mut cases = Vec::new();
    for (flag, v, shown) in [
        ("--alpha", "-1", "-1"),
        ("--alpha", "nan", "NaN"),
        ("--alpha", "inf", "inf"),
        ("--alpha", "-0.5", "-0.5"),
        ("--labelled-bound-weight", "nan", "NaN"),
        ("--labelled-bound-weight", "-1", "-1"),
    ] {
        let args = train_args(&dd, o, &[flag, v, "--device", "cpu"]);
        cases.push(
            Case::new(
                &args,
                2,
                &[
                    &format!("invalid value '{v}' for '{flag}"),
                    &format!("must be a finite number ≥ 0, not {shown}"),
                ],
            )
            .not(&["lr", "step 1"]),
        );
    }
    check(&cases);
    assert!(!out.exists(), "nothing was written");
    // Edited into a saved config: refused by the resume, before a step.
    let run = copy_of_run("weights-resume");
    let config = run.join("epoch-0001/config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("\"alpha\": null"), "{text}");
    std::fs::write(&config, text.replace("\"alpha\": null", "\"alpha\": -1.0")).unwrap();
    let r = run.to_str().unwrap();
    check(&[Case::new(
        &["train", "--resume", r, "--epochs", "2", "--data-dir", &dd],
        1,
        &["--alpha: must be a finite number ≥ 0, not -1"],
    )]);
}

/// Item 3 of the issue: Sizes from flags are checked against the memory they imply before anything is
/// allocated, and refused with the figure and the limit (they ended in a Rust allocation
/// failure: exit 134 and a backtrace).
#[test]
fn sizes_beyond_the_machines_memory_are_refused_before_allocating() {
    let run = trained_run().to_str().unwrap();
    let png = temp_dir("sizes").join("grid.png");
    let p = png.to_str().unwrap();
    let mnist = mnist_dir("sizes-mnist", None);
    let dd = data_dir();
    let digits = PathBuf::from(&dd);
    let refused = [
        "more than this machine's memory",
        "refused before allocating",
    ];
    let mut cases = vec![
        Case::new(
            &[
                "sample", run, "--scale", "100000", "--out", p, "--device", "cpu",
            ],
            1,
            &["--scale 100000", "(8000009×8000009 pixels)", "TiB"],
        ),
        Case::new(
            &[
                "sample",
                run,
                "--cols",
                "100000000",
                "--out",
                p,
                "--device",
                "cpu",
            ],
            1,
            &["--cols 100000000"],
        ),
        case(
            train_on(&mnist, "mnist", &["--hidden", "100000000"]),
            1,
            &[
                "model m2 (--hidden 100000000",
                "weights with their gradients and Adam's moments",
                "TiB",
            ],
        ),
        case(
            train_on(&digits, "digits", &["--z-dim", "10000000000"]),
            1,
            &["--z-dim 10000000000"],
        ),
    ];
    for c in &mut cases {
        c.want.extend(refused.iter().map(|s| s.to_string()));
    }
    check(&cases);
    assert!(!png.exists());
}

/// Item 4 of the issue: A long IWAE evaluation prints an estimate of its time from its first chunks and shows
/// progress, and one estimated at more than 24 hours is refused unless `--force` (`eval
/// --iwae-k 100000000` ran for days with no output). K = 10^10 is over 24 hours on any CPU.
#[test]
fn an_iwae_k_that_would_take_days_is_refused_unless_forced() {
    let dd = data_dir();
    let run = trained_run().to_str().unwrap();
    let errs = check(&[
        Case::new(
            &[
                "eval",
                run,
                "--data-dir",
                &dd,
                "--device",
                "cpu",
                "--iwae-k",
                "10000000000",
            ],
            1,
            &[
                "--iwae-k: 10000000000 draws for each of the 400 test examples, about",
                "draws/s",
                "more than 24.0 h",
                "--force",
            ],
        ),
        // A short one runs and says how long it expects to take.
        Case::new(
            &[
                "eval",
                run,
                "--data-dir",
                &dd,
                "--device",
                "cpu",
                "--iwae-k",
                "10",
            ],
            0,
            &["IWAE (K=10): 10 draws for each of the 400 test examples, about"],
        ),
    ]);
    assert!(
        errs[0].contains("days") || errs[0].contains("years"),
        "{}",
        errs[0]
    );
}

/// Item 5 of the issue: An IDX header's claimed size is checked before its data is read (against what a gzip
/// file of its length can hold, and an image count against the label file's), and the data
/// is checked as it streams in: reading stops at the claimed size (a 13 MB gzip claiming 3 GB
/// was refused only after 2.95 GB of RAM).
#[test]
fn idx_claims_are_checked_against_the_stream_not_after_buffering_it() {
    // 3,826,531 images of 28×28: 3 GB claimed by a file of a few kilobytes.
    let claim = 3_826_531u32;
    let mut cases = vec![];
    let d = mnist_dir(
        "idx-3gb",
        Some((
            "train-images-idx3-ubyte.gz",
            gzip(&idx(0x803, &[claim, 28, 28], &images(20))),
        )),
    );
    let need = format!(
        "need {} bytes (16 header + {} data), but a gzip file of",
        16 + claim as u64 * 784,
        claim as u64 * 784
    );
    cases.push(case(
        train_on(&d, "mnist", &[]),
        1,
        &[
            "train-images-idx3-ubyte.gz",
            "truncated IDX file",
            &need,
            "deflate's limit is 1032:1",
        ],
    ));
    // A header of 40 images beside a label file of 20: refused before the images are read.
    let d = mnist_dir(
        "idx-count",
        Some((
            "train-images-idx3-ubyte.gz",
            gzip(&idx(0x803, &[40, 28, 28], &images(40))),
        )),
    );
    cases.push(case(
        train_on(&d, "mnist", &[]),
        1,
        &["count mismatch", "holds 40 images", "holds 20 labels"],
    ));
    // 20 images claimed, then 64 MB of zeros: reading stops just past the claim.
    let mut bomb = images(20);
    bomb.resize(20 * 784 + (64 << 20), 0);
    let d = mnist_dir(
        "idx-bomb",
        Some((
            "train-images-idx3-ubyte.gz",
            gzip(&idx(0x803, &[20, 28, 28], &bomb)),
        )),
    );
    cases.push(case(
        train_on(&d, "mnist", &[]),
        1,
        &[
            "more than 65536 trailing bytes after the IDX data",
            "reading stopped there",
        ],
    ));
    // A plausible claim that the stream does not hold: found short once it ends.
    let d = mnist_dir(
        "idx-short",
        Some((
            "train-images-idx3-ubyte.gz",
            gzip(&idx(0x803, &[20, 28, 28], &images(15))),
        )),
    );
    cases.push(case(
        train_on(&d, "mnist", &[]),
        1,
        &["truncated IDX file", "found 11776 bytes (3920 missing)"],
    ));
    check(&cases);
}

/// Item 6 of the issue: Messages name the problem there is: label magic in an image file and a zero dimension
/// (reported as trailing bytes), an empty digits file ("found 1 columns"), a directory or a
/// device in place of a file ("file not found"), an unwritable `--out` (which named the hidden
/// temporary file); and a save that fails (here, a file size limit standing in for a full
/// disk) leaves no `.tmp-epoch-NNNN` behind.
#[test]
fn messages_name_the_real_problem_and_failed_saves_leave_nothing_behind() {
    let mut cases = vec![];
    // An image file with a label file's magic (its data then looks like trailing bytes).
    let d = mnist_dir(
        "label-magic",
        Some((
            "train-images-idx3-ubyte",
            idx(0x801, &[20, 28, 28], &images(20)),
        )),
    );
    cases.push(
        case(
            train_on(&d, "mnist", &[]),
            1,
            &[
                "train-images-idx3-ubyte",
                "not an IDX image file: magic 0x00000801",
            ],
        )
        .not(&["trailing"]),
    );
    // A zero dimension.
    let d = mnist_dir(
        "zero-dim",
        Some((
            "train-images-idx3-ubyte",
            idx(0x803, &[20, 0, 28], &images(20)),
        )),
    );
    cases.push(
        case(
            train_on(&d, "mnist", &[]),
            1,
            &["IDX image dimensions [20, 0, 28] have an empty image side"],
        )
        .not(&["trailing"]),
    );
    // An empty digits file, and one of blank lines.
    for (name, content, want) in [
        (
            "digits-empty",
            "",
            "digits CSV holds no rows: the file is empty",
        ),
        (
            "digits-blank",
            "\n\n",
            "digits CSV holds no rows: its 2 bytes are blank lines only",
        ),
    ] {
        let root = temp_dir(name);
        std::fs::create_dir_all(root.join("digits")).unwrap();
        std::fs::write(root.join("digits/digits.csv"), content).unwrap();
        cases.push(case(train_on(&root, "digits", &[]), 1, &[want]).not(&["columns"]));
    }
    // A directory, and /dev/zero, where the file should be.
    let root = temp_dir("not-a-file");
    std::fs::create_dir_all(root.join("digits/digits.csv")).unwrap();
    cases.push(
        case(
            train_on(&root, "digits", &[]),
            1,
            &["digits.csv: is a directory, not a regular file"],
        )
        .not(&["not found"]),
    );
    let root = temp_dir("dev-zero");
    std::fs::create_dir_all(root.join("digits")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", root.join("digits/digits.csv")).unwrap();
    cases.push(
        case(
            train_on(&root, "digits", &[]),
            1,
            &["digits.csv: is a device, pipe or socket, not a regular file"],
        )
        .not(&["not found"]),
    );
    // A PNG where no file can be created: the message names it, not the temporary file.
    let run = trained_run().to_str().unwrap();
    cases.push(
        Case::new(
            &["sample", run, "--out", "/proc/x.png", "--device", "cpu"],
            1,
            &["cannot write /proc/x.png: "],
        )
        .not(&[".tmp-"]),
    );
    // A save that fails: no file may exceed 8 KiB (model.safetensors does), SIGXFSZ ignored
    // so that the write fails with EFBIG as on a full disk.
    let dd = data_dir();
    let full = temp_dir("failed-save");
    let f = full.to_str().unwrap();
    let args = train_args(
        &dd,
        f,
        &["--epochs", "1", "--steps-per-epoch", "2", "--device", "cpu"],
    );
    cases.push(
        Case::new(&args, 1, &["model.safetensors", "File too large"])
            .under("trap '' XFSZ; ulimit -f 8"),
    );
    check(&cases);
    let left: Vec<String> = std::fs::read_dir(&full)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !left
            .iter()
            .any(|n| n.starts_with(".tmp-") || n == "LATEST" || n.starts_with("epoch-")),
        "{left:?}"
    );
}

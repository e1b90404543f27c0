//! The `ssvae` command line: the subcommands (a file each), the helpers they share, and
//! `bench`, which is a thin wrapper over `ssvae::bench`.

mod eval;
mod interrupt;
mod plot;
mod sample;
mod train;
mod train_loop;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use ssvae::data::{self, DatasetSpec};
use ssvae::device::parse_device;
use ssvae::models::{ModelKind, ModelSpec};
use ssvae::train::checkpoint::RunConfig;
use ssvae::{bench, Device, Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ssvae",
    version,
    about = "Semi-supervised VAEs on a from-scratch tensor engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model and report per-epoch loss, ELBO and test error.
    ///
    /// Writes DIR/metrics.csv (a row per epoch) and a checkpoint after every epoch
    /// (DIR/epoch-NNNN/, the newest named by DIR/LATEST). Ctrl-C or SIGTERM stops at the next
    /// step with a checkpoint of it (DIR/step-NNNNNNNN/) and the command that continues the
    /// run (exit status 130 for Ctrl-C, 143 for SIGTERM); a second one exits at once.
    Train(Box<train::TrainArgs>),
    /// Evaluate a checkpoint on the test set: error, ELBO, clustering ACC/NMI, and with
    /// --iwae-k K the importance-weighted bound on log p(x).
    Eval(eval::EvalArgs),
    /// Draw image grids from a checkpoint: one row per class (or mixture component) and one
    /// column per z ~ N(0, I), rows of z ~ N(0, I) for vae and m1, with --analogy a test
    /// image's style decoded with every class, or with --reconstruct rows of test images each
    /// above the row of their reconstructions.
    Sample(sample::SampleArgs),
    /// Draw the training curves of RUN/metrics.csv as a PNG: a panel per metric family
    /// (training loss, ELBO, error, clustering, learning rate, throughput) over the epochs.
    Plot(plot::PlotArgs),
    /// Measure GEMM, convolution, elementwise and M2 training-step speed on this machine.
    Bench {
        /// auto | cpu | cuda | cuda:N
        #[arg(long, default_value = "auto")]
        device: String,
        /// Fewer repetitions and smaller arrays (seconds rather than a minute)
        #[arg(long)]
        quick: bool,
        /// On the PTX interpreter (ptxemu): count instructions, global sectors, shared-memory
        /// bank conflicts and barriers per kernel and print them as a table
        #[arg(long)]
        profile: bool,
        /// Only the M2 training steps (M2-conv and M2-mlp at 64 + 64, the PyTorch peer's
        /// workloads, and M2-mlp at 100 + 100), in ms/step
        #[arg(long)]
        steps: bool,
        /// Print one JSON document on stdout instead of the table: device, threads, quick,
        /// emulated, measurements (name, shape, median_s, rate, unit) and, with --profile,
        /// profile (counts per kernel); the table lines go to stderr as they are measured
        #[arg(long)]
        json: bool,
    },
}

/// Parse the command line, run the command, print an error as one line and exit non-zero.
pub fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Command::Train(args) => train::train_cmd(*args, &matches),
        Command::Eval(args) => eval::eval_cmd(args).map(|()| ExitCode::SUCCESS),
        Command::Sample(args) => sample::sample_cmd(args).map(|()| ExitCode::SUCCESS),
        Command::Plot(args) => plot::plot_cmd(args).map(|()| ExitCode::SUCCESS),
        Command::Bench {
            device,
            quick,
            profile,
            steps,
            json,
        } => bench_cmd(&device, quick, profile, steps, json).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `Ok` when `v` is positive, else an error for `flag`.
fn positive(flag: &'static str, v: usize) -> Result<()> {
    if v == 0 {
        return Err(Error::invalid(flag, "must be at least 1"));
    }
    Ok(())
}

/// Whether a model's classifier output is a cluster, not a class (no test error for it): the
/// GMVAE trained without labels. With labels its cross-entropy ties component k to class k.
fn is_clustering(spec: &ModelSpec) -> bool {
    spec.kind == ModelKind::Gmvae && spec.n_labelled == 0
}

/// Datasets of a saved run, checked against the sizes the checkpoint recorded.
fn load_run_data(rc: &RunConfig, data_dir: Option<PathBuf>) -> Result<data::TrainTest> {
    let name: DatasetSpec = rc.dataset.parse()?;
    let dir = data_dir.unwrap_or_else(data::default_data_dir);
    let tt = name.load(&dir)?;
    let (c, h, w) = rc.model.input;
    if tt.train.n != rc.model.n_train
        || (tt.train.channels, tt.train.height, tt.train.width) != (c, h, w)
    {
        return Err(Error::msg(format!(
            "the {name} data in {} ({} training images of {}×{}×{}) is not what the checkpoint was trained on ({} of {c}×{h}×{w})",
            dir.display(),
            tt.train.n,
            tt.train.channels,
            tt.train.height,
            tt.train.width,
            rc.model.n_train
        )));
    }
    Ok(tt)
}

/// The run directory of checkpoint `ckpt`, resolved from `dir` as given on the command line:
/// `dir` itself, or its parent when `dir` is the checkpoint directory.
fn run_dir_of(dir: &Path, ckpt: &Path) -> PathBuf {
    if ckpt == dir {
        dir.parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    } else {
        dir.to_path_buf()
    }
}

/// `bench --json`: the run and its results.
#[derive(serde::Serialize)]
struct BenchReport {
    device: String,
    threads: usize,
    quick: bool,
    emulated: bool,
    measurements: Vec<bench::Measurement>,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<Vec<bench::KernelProfile>>,
}

/// `bench`. With `profile`, the stand-in driver is told (before it starts) to write one CSV row
/// of counts per launch to a temporary file, summed per kernel after the run. With `json`, the
/// table goes to stderr line by line and the results to stdout as one JSON document.
fn bench_cmd(device: &str, quick: bool, profile: bool, steps_only: bool, json: bool) -> Result<()> {
    let profile_file = if profile {
        let path = std::env::temp_dir().join(format!("ssvae-profile-{}.csv", std::process::id()));
        let _ = std::fs::remove_file(&path);
        // Read by the stand-in libcuda at cuInit, which parse_device triggers below.
        std::env::set_var("PTXEMU_PROFILE", &path);
        Some(path)
    } else {
        None
    };
    let device = parse_device(device)?;
    let emulated = matches!(device, Device::Cuda(n) if ssvae::device::is_emulated(n));
    if profile && !emulated {
        return Err(Error::invalid(
            "profile",
            "--profile counts what the PTX interpreter executes: it needs --device cuda with the \
             stand-in libcuda of ptxemu/ on the loader path (scripts/install-ptxemu.sh)",
        ));
    }
    // The table: on stdout, or beside the JSON on stderr (as progress).
    let line = |s: &str| {
        if json {
            eprintln!("{s}");
        } else {
            println!("{s}");
            let _ = std::io::stdout().flush();
        }
    };
    line(&format!(
        "ssvae bench on {device} ({} threads){}{}",
        rayon::current_num_threads(),
        if quick { ", quick" } else { "" },
        if emulated {
            " — EMULATED: the PTX interpreter (ptxemu), one repetition each, large arrays \
             shrunk; its rates are the interpreter's, not a GPU's"
        } else {
            ""
        }
    ));
    line(&bench::header());
    let measurements = bench::run(device, quick, steps_only, |m| line(&bench::format_line(m)))?;
    let profile = match profile_file {
        Some(path) => {
            let csv = std::fs::read_to_string(&path).map_err(|e| {
                Error::Msg(format!(
                    "reading the interpreter's profile {}: {e}",
                    path.display()
                ))
            })?;
            let _ = std::fs::remove_file(&path);
            Some(bench::profile_summary(&csv)?)
        }
        None => None,
    };
    if json {
        let report = BenchReport {
            device: device.to_string(),
            threads: rayon::current_num_threads(),
            quick,
            emulated,
            measurements,
            profile,
        };
        let doc = serde_json::to_string(&report)
            .map_err(|e| Error::msg(format!("writing the JSON report: {e}")))?;
        println!("{doc}");
    } else if let Some(kernels) = profile {
        println!();
        print!("{}", bench::profile_table(&kernels));
    }
    Ok(())
}

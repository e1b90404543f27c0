//! The `ssvae` command line: `train` (with per-epoch checkpoints, a metrics log, exact
//! `--resume`), `eval` (test error, ELBO, importance-weighted bound, clustering ACC/NMI of a
//! checkpoint), `sample` (class-conditional and analogy grids as PNG) and `bench` (a quick
//! table of the engine's speed on this machine).

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ssvae::backend::cuda::parse_device;
use ssvae::data::{self, Dataset, DatasetName, SemiSupervised};
use ssvae::models::{self, Arch, Model, ModelKind, ModelSpec};
use ssvae::rng::Rng;
use ssvae::train::checkpoint::{self, RunConfig};
use ssvae::train::log::MetricsLog;
use ssvae::train::{
    evaluate_all, fit_with, grid, iwae_bound, latent_activity, EpochReport, Evaluation, Observer,
    StepInfo, TrainConfig, TrainState, INIT_STREAM,
};
use ssvae::{bench, Device, Error, Result};
use std::io::{IsTerminal, Write};
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
    /// (DIR/epoch-NNNN/, the newest named by DIR/LATEST).
    Train {
        /// vae | m1 | m2 | m1m2 | gmvae | shot | classifier (labels only: the baseline)
        #[arg(long, default_value = "m2")]
        model: String,
        /// mnist | fashion-mnist | cifar10 | digits
        #[arg(long, default_value = "mnist")]
        dataset: String,
        /// Directory holding <dataset>/ folders [default: $SSVAE_DATA_DIR, else ../shared/datasets]
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Labelled examples, N/K per class. The unlabelled pool is the whole training set
        /// (labelled examples included; papers differ on this).
        #[arg(long, default_value_t = 100)]
        labels: usize,
        /// Hold out N random training examples (never labelled, not in the unlabelled pool)
        /// and report the error and ELBO on them after every epoch (val_error, val_elbo)
        #[arg(long, default_value_t = 0, value_name = "N")]
        validation: usize,
        #[arg(long, default_value_t = 10)]
        epochs: usize,
        /// Unlabelled examples per step
        #[arg(long, default_value_t = 100)]
        batch_size: usize,
        /// Labelled examples per step
        #[arg(long, default_value_t = 100)]
        labelled_batch: usize,
        #[arg(long, default_value_t = 1e-3)]
        lr: f32,
        /// Epochs after which the learning rate is multiplied by --lr-gamma, e.g. 30,40
        /// (PyTorch's MultiStepLR). With --resume: milestones may be added or moved only
        /// where they leave the rate of the epochs already trained unchanged.
        #[arg(long, value_delimiter = ',', value_name = "EPOCHS")]
        lr_milestones: Vec<usize>,
        /// The factor of each --lr-milestones step
        #[arg(long, default_value_t = ssvae::train::DEFAULT_LR_GAMMA)]
        lr_gamma: f32,
        /// Weight of the labelled cross-entropy [default: 0.1·N/N_labelled]
        #[arg(long)]
        alpha: Option<f32>,
        #[arg(long, default_value_t = 500)]
        hidden: usize,
        /// Latent size [default: 50 for --arch mlp, 32 for --arch conv]
        #[arg(long)]
        z_dim: Option<usize>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Encoder/decoder family: mlp | conv
        #[arg(long, default_value = "mlp")]
        arch: String,
        /// Run directory for metrics.csv and checkpoints
        /// [default: runs/<model>-<dataset>-<labels>-s<seed>]
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue the run in DIR exactly where its last checkpoint stopped (its saved
        /// settings apply, its device included; only --epochs, --device, --data-dir,
        /// --lr-milestones, --lr-gamma and --freeze-m1-after may be given)
        #[arg(long, value_name = "DIR")]
        resume: Option<PathBuf>,
        /// Start over in an --out directory that already holds a checkpoint
        #[arg(long)]
        overwrite: bool,
        /// Steps per epoch [default: one pass over the unlabelled pool]
        #[arg(long)]
        steps_per_epoch: Option<usize>,
        /// auto | cpu | cuda | cuda:N (auto: CUDA when a driver and a GPU are present, else the CPU)
        #[arg(long, default_value = "auto")]
        device: String,
        /// m1m2: freeze M1 after epoch E and train the upper M2 alone from then on, on features
        /// resampled from the frozen q(z1|x) (the paper's protocol; faster epochs). With
        /// --resume: only where it leaves the epochs already trained unchanged.
        #[arg(long, value_name = "E")]
        freeze_m1_after: Option<usize>,
        /// shot: distribution alignment (ReMixMatch) of the interpolation targets, q(y|x)
        /// divided by a running mean of q(y|x) and renormalised; not in SHOT-VAE, off by default
        #[arg(long)]
        align: bool,
        /// m1m2: M2 models only the active units of z1 (running variance of the posterior mean
        /// above 0.01, as Kingma et al.'s code keeps only those); the inactive ones are hidden
        /// from q(y|z1) and q(z2|z1,y) and get a fixed N(0, 1) likelihood
        #[arg(long)]
        drop_inactive_z1: bool,
        /// M2: compose the ELBO from primitives instead of the fused VAE ops (same maths and
        /// random draws; for comparison and benchmarking)
        #[arg(long)]
        unfused: bool,
        /// Shift each training image (labelled and unlabelled) by up to N pixels per axis, a
        /// fresh uniform offset per image and step, vacated pixels 0 (torchvision's
        /// RandomCrop with padding N); evaluation never shifts. 0: off
        #[arg(long, default_value_t = 0, value_name = "N")]
        augment_shift: usize,
    },
    /// Evaluate a checkpoint on the test set: error, ELBO, clustering ACC/NMI, and with
    /// --iwae-k K the importance-weighted bound on log p(x).
    Eval {
        /// A run directory (its latest checkpoint) or a checkpoint directory
        dir: PathBuf,
        /// Samples of the importance-weighted bound log p(x) ≥ E log 1/K Σ p(x,h)/q(h|x)
        /// (0 skips it; 5000 is the usual choice)
        #[arg(long, default_value_t = 0)]
        iwae_k: usize,
        /// Also print the test set's confusion matrix (a row per true class, a column per
        /// predicted class or cluster) with each class's error
        #[arg(long)]
        confusion: bool,
        /// Also print how many latent units are active on the test set: the variance over x
        /// of the posterior mean E[z|x] above 0.01 (Burda et al. 2016; vae, m1, m1m2's z1, shot)
        #[arg(long)]
        active_units: bool,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// auto | cpu | cuda
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// Draw image grids from a checkpoint: one row per class and one column per z ~ N(0, I),
    /// or with --analogy a test image's style decoded with every class.
    Sample {
        /// A run directory (its latest checkpoint) or a checkpoint directory
        dir: PathBuf,
        /// The PNG to write [default: DIR/samples.png, or DIR/analogy.png]
        #[arg(long)]
        out: Option<PathBuf>,
        /// Rows: classes shown (the first R) [default: all], or test images with --analogy
        /// [default: 10]
        #[arg(long)]
        rows: Option<usize>,
        /// Columns: z samples per class [default: 10] (with --analogy, one per class)
        #[arg(long)]
        cols: Option<usize>,
        /// The analogy grid: each row a test image, then its style with every class
        #[arg(long)]
        analogy: bool,
        /// Enlarge every image this many times (nearest neighbour), e.g. 4 for 8×8 digits
        #[arg(long, default_value_t = 1)]
        scale: usize,
        /// Seed of the z draws (and of the choice of test images)
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// auto | cpu | cuda
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// Measure GEMM, convolution, elementwise and M2 training-step speed on this machine.
    Bench {
        /// auto | cpu | cuda
        #[arg(long, default_value = "auto")]
        device: String,
        /// Fewer repetitions and smaller arrays (seconds rather than a minute)
        #[arg(long)]
        quick: bool,
    },
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

/// The semi-supervised split of a run, with errors phrased for `--labels`.
fn make_split(
    train: &Dataset,
    labels: usize,
    validation: usize,
    seed: u64,
) -> Result<SemiSupervised> {
    let flag = if validation > 0 && labels.saturating_add(validation) > train.n {
        "--validation"
    } else {
        "--labels"
    };
    data::split(&train.y, train.classes, labels, validation, seed).map_err(|e| match e {
        Error::Invalid { why, .. } => Error::invalid(flag, why),
        e => e,
    })
}

/// Datasets of a saved run, checked against the sizes the checkpoint recorded.
fn load_run_data(rc: &RunConfig, data_dir: Option<PathBuf>) -> Result<data::TrainTest> {
    let name: DatasetName = rc.dataset.parse()?;
    let dir = data_dir.unwrap_or_else(data::default_data_dir);
    let tt = data::load(name, &dir)?;
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

/// The ids of `sub`'s arguments given on the command line (not defaulted).
fn given_flags(matches: &clap::ArgMatches, sub: &str) -> Vec<String> {
    let (Some(m), Some(cmd)) = (
        matches.subcommand_matches(sub),
        Cli::command().find_subcommand(sub).cloned(),
    ) else {
        return Vec::new();
    };
    cmd.get_arguments()
        .map(|a| a.get_id().as_str().to_string())
        .filter(|id| m.value_source(id) == Some(ValueSource::CommandLine))
        .collect()
}

/// The command-line spelling of a clap argument id (`lr_gamma` → `--lr-gamma`).
fn flag_name(id: &str) -> String {
    format!("--{}", id.replace('_', "-"))
}

/// Flags of `train` that `--resume` accepts (the rest come from the checkpoint; `resume`
/// first).
const RESUME_FLAGS: [&str; 7] = [
    "resume",
    "epochs",
    "device",
    "data_dir",
    "lr_milestones",
    "lr_gamma",
    "freeze_m1_after",
];

fn run(cli: Cli, matches: &clap::ArgMatches) -> Result<()> {
    match cli.command {
        Command::Train {
            model,
            dataset,
            data_dir,
            labels,
            validation,
            epochs,
            batch_size,
            labelled_batch,
            lr,
            lr_milestones,
            lr_gamma,
            alpha,
            hidden,
            z_dim,
            seed,
            arch,
            out,
            resume,
            overwrite,
            steps_per_epoch,
            device,
            freeze_m1_after,
            align,
            drop_inactive_z1,
            unfused,
            augment_shift,
        } => {
            let given = given_flags(matches, "train");
            positive("--epochs", epochs)?;
            if let Some(dir) = resume {
                let extra: Vec<String> = given
                    .iter()
                    .filter(|id| !RESUME_FLAGS.contains(&id.as_str()))
                    .map(|id| flag_name(id))
                    .collect();
                if !extra.is_empty() {
                    let allowed: Vec<String> =
                        RESUME_FLAGS[1..].iter().map(|id| flag_name(id)).collect();
                    return Err(Error::invalid(
                        "--resume",
                        format!(
                            "continues the run in {} with its saved settings, so {} cannot be given (allowed: {})",
                            dir.display(),
                            extra.join(", "),
                            allowed.join(", ")
                        ),
                    ));
                }
                let was_given = |flag: &str| given.iter().any(|g| g == flag);
                let change = ResumeChange {
                    epochs: was_given("epochs").then_some(epochs),
                    lr_milestones: was_given("lr_milestones").then_some(lr_milestones),
                    lr_gamma: was_given("lr_gamma").then_some(lr_gamma),
                    freeze_m1_after,
                };
                // The saved device unless one is asked for: a CPU run resumed on a GPU
                // machine stays on the CPU, so it continues with the same numbers.
                let device = was_given("device")
                    .then(|| parse_device(&device))
                    .transpose()?;
                return resume_run(&dir, change, device, data_dir);
            }
            let device = parse_device(&device)?;
            positive("--batch-size", batch_size)?;
            positive("--labelled-batch", labelled_batch)?;
            positive("--hidden", hidden)?;
            let arch: Arch = arch.parse()?;
            let z_dim = z_dim.unwrap_or(models::arch::default_z_dim(arch));
            positive("--z-dim", z_dim)?;
            if let Some(s) = steps_per_epoch {
                positive("--steps-per-epoch", s)?;
            }
            ssvae::train::check_lr_schedule(lr, &lr_milestones, lr_gamma)?;
            let kind: ModelKind = model.parse()?;
            let name: DatasetName = dataset.parse()?;
            let out = out.unwrap_or_else(|| {
                PathBuf::from("runs").join(format!("{kind}-{name}-{labels}-s{seed}"))
            });
            if checkpoint::exists(&out) {
                if !overwrite {
                    return Err(Error::msg(format!(
                        "{} already holds a checkpoint; continue it with `ssvae train --resume {}`, start over with --overwrite, or choose another --out",
                        out.display(),
                        out.display()
                    )));
                }
                checkpoint::clear(&out)?;
            }
            let dir = data_dir.unwrap_or_else(data::default_data_dir);
            let tt = data::load(name, &dir)?;
            let input = (tt.train.channels, tt.train.height, tt.train.width);
            data::augment::check_shift(augment_shift, input)?;
            let split = make_split(&tt.train, labels, validation, seed)?;
            let mut rng = Rng::new(seed, INIT_STREAM);
            let spec = ModelSpec {
                kind,
                arch,
                input,
                classes: tt.train.classes,
                hidden,
                z_dim,
                // None: each model's own default (0.1·N/N_labelled for M2, M1+M2, GMVAE).
                alpha,
                n_train: tt.train.n,
                n_labelled: split.labelled.len(),
                fused: !unfused,
                freeze_m1_after,
                align,
                drop_inactive_z1,
            };
            let model = models::build(&spec, &mut rng, device)?;
            let use_unlabelled = kind != ModelKind::Classifier;
            let cfg = TrainConfig {
                epochs,
                batch_size,
                labelled_batch,
                lr,
                lr_milestones,
                lr_gamma,
                seed,
                device,
                eval_batch: 500,
                steps_per_epoch,
                use_unlabelled,
                augment_shift,
            };
            println!(
                "training {} on {} ({} train, {} test), {} labels, {} held out for validation, alpha {}, {epochs} epochs{}, device {device} → {}",
                model.name(),
                name,
                tt.train.n,
                tt.test.n,
                split.labelled.len(),
                split.validation.len(),
                alpha.map_or("(model default)".to_string(), |a| format!("{a}")),
                if augment_shift > 0 {
                    format!(", training images shifted by up to {augment_shift} pixels")
                } else {
                    String::new()
                },
                out.display()
            );
            let rc = RunConfig {
                format: checkpoint::FORMAT_VERSION,
                model: spec,
                dataset: name.to_string(),
                labels,
                validation,
                seed,
                train: cfg,
                epoch: 0,
                step: 0,
            };
            std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
            let state = TrainState::new(model.as_ref(), &split, &rc.train)?;
            let log = MetricsLog::create(&out)?;
            train_loop(&out, rc, model.as_ref(), &tt, &split, state, log, None)
        }
        Command::Eval {
            dir,
            iwae_k,
            confusion,
            active_units,
            data_dir,
            device,
        } => eval_cmd(
            &dir,
            EvalExtras {
                iwae_k,
                confusion,
                active_units,
            },
            data_dir,
            parse_device(&device)?,
        ),
        Command::Sample {
            dir,
            out,
            rows,
            cols,
            analogy,
            scale,
            seed,
            data_dir,
            device,
        } => sample_cmd(
            &dir,
            out,
            (rows, cols, scale),
            analogy,
            seed,
            data_dir,
            parse_device(&device)?,
        ),
        Command::Bench { device, quick } => bench_cmd(parse_device(&device)?, quick),
    }
}

/// What `train --resume` may change of a run's saved settings (None: keep the saved value).
struct ResumeChange {
    epochs: Option<usize>,
    lr_milestones: Option<Vec<usize>>,
    lr_gamma: Option<f32>,
    freeze_m1_after: Option<usize>,
}

/// `train --resume DIR`: rebuild model, optimiser, RNG and batchers from DIR's latest
/// checkpoint and continue to `change.epochs` (default: the run's own target), with the
/// learning-rate schedule and M1 freezing `change` gives, if any, on `device` (default: the
/// device the run was trained on).
fn resume_run(
    dir: &Path,
    change: ResumeChange,
    device: Option<Device>,
    data_dir: Option<PathBuf>,
) -> Result<()> {
    let ckpt = checkpoint::resolve(dir)?;
    let mut rc = checkpoint::load_config(&ckpt)?;
    // The run directory: DIR itself, or the parent when DIR is a checkpoint directory.
    let run_dir = if ckpt == dir {
        dir.parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    } else {
        dir.to_path_buf()
    };
    let device = match device {
        Some(d) => d,
        None => saved_device_available(rc.train.device, &ckpt)?,
    };
    rc.train.device = device;
    if let Some(e) = change.epochs {
        rc.train.epochs = e;
    }
    rc.train
        .reschedule(change.lr_milestones, change.lr_gamma, rc.epoch)?;
    if let Some(e) = change.freeze_m1_after {
        rc.model.freeze_m1_from(e, rc.epoch)?;
    }
    if rc.epoch >= rc.train.epochs {
        println!(
            "{} is already at epoch {} of {}; pass --epochs N with N > {} to train further",
            run_dir.display(),
            rc.epoch,
            rc.train.epochs,
            rc.epoch
        );
        return Ok(());
    }
    let model = checkpoint::build_model(&ckpt, &rc, device)?;
    let tt = load_run_data(&rc, data_dir)?;
    let split = make_split(&tt.train, rc.labels, rc.validation, rc.seed)?;
    if split.labelled.len() != rc.model.n_labelled {
        return Err(Error::msg(format!(
            "the split of {} labels has {} labelled examples, the checkpoint {}",
            rc.labels,
            split.labelled.len(),
            rc.model.n_labelled
        )));
    }
    let state = checkpoint::load_train_state(&ckpt, model.as_ref(), &split, &rc.train)?;
    let log = MetricsLog::resume(&run_dir, rc.epoch)?;
    println!(
        "resuming {} on {} from {} (epoch {}, step {}) to epoch {}, device {device}",
        model.name(),
        rc.dataset,
        ckpt.display(),
        rc.epoch,
        rc.step,
        rc.train.epochs
    );
    train_loop(
        &run_dir,
        rc,
        model.as_ref(),
        &tt,
        &split,
        state,
        log,
        Some(ckpt),
    )
}

/// `device`, the one a checkpoint was trained on, if this machine has it; otherwise an error
/// that says how to continue elsewhere.
fn saved_device_available(device: Device, ckpt: &Path) -> Result<Device> {
    match device {
        Device::Cpu => Ok(Device::Cpu),
        Device::Cuda(_) => parse_device(&device.to_string()).map_err(|why| {
            Error::invalid(
                "--resume",
                format!(
                    "{} was trained on {device}, which this machine lacks ({why}); pass --device cpu (or another device) to continue there, with numbers that differ from an uninterrupted run",
                    ckpt.display()
                ),
            )
        }),
    }
}

/// What `train` does after each step and epoch: progress bar, metrics row, checkpoint, line.
struct CliObserver<'a> {
    run_dir: &'a Path,
    rc: RunConfig,
    model: &'a dyn Model,
    log: MetricsLog,
    /// The held-out validation examples, evaluated after every epoch (None: no validation set).
    validation: Option<Dataset>,
    bar: Option<ProgressBar>,
    show_bar: bool,
    /// The newest checkpoint on disk.
    last_ckpt: Option<PathBuf>,
}

impl CliObserver<'_> {
    fn bar_for(&mut self, info: &StepInfo) -> &ProgressBar {
        self.bar.get_or_insert_with(|| {
            let style = ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} steps  {msg}  eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            let pb = ProgressBar::with_draw_target(
                Some(info.steps_per_epoch as u64),
                ProgressDrawTarget::stderr_with_hz(8),
            )
            .with_style(style);
            pb.set_prefix(format!("epoch {:>3}", info.epoch));
            pb
        })
    }
}

impl Observer for CliObserver<'_> {
    fn on_step(&mut self, info: &StepInfo) {
        if !self.show_bar {
            return;
        }
        let pb = self.bar_for(info);
        pb.set_message(format!(
            "{:.0} ex/s",
            info.examples as f64 / info.elapsed_s.max(1e-9)
        ));
        pb.set_position(info.step_in_epoch as u64);
    }

    fn on_epoch(&mut self, r: &EpochReport, state: &TrainState) -> Result<()> {
        if let Some(pb) = self.bar.take() {
            pb.finish_and_clear();
        }
        let clustering = is_clustering(&self.rc.model);
        let val = match &self.validation {
            Some(ds) => Some(evaluate_all(self.model, ds, &self.rc.train)?),
            None => None,
        };
        self.log.append(r, !clustering, val.as_ref())?;
        let path = checkpoint::save(self.run_dir, &self.rc, self.model, state)?;
        self.last_ckpt = Some(path);
        println!("{}", epoch_line(r, clustering, val.as_ref()));
        std::io::stdout()
            .flush()
            .map_err(|e| Error::io("stdout", e))?;
        Ok(())
    }
}

fn epoch_line(r: &EpochReport, clustering: bool, val: Option<&Evaluation>) -> String {
    let terms: Vec<String> = r.train.iter().map(|(n, v)| format!("{n} {v:.3}")).collect();
    let mut s = format!(
        "epoch {:>3}  {:.1}s  {:.0} ex/s  lr {:.3e}  {}",
        r.epoch,
        r.wall_s,
        r.examples_per_s,
        r.lr,
        terms.join("  ")
    );
    if !clustering && !r.test_error.is_nan() {
        s += &format!("  test error {:.2}%", 100.0 * r.test_error);
    }
    if let Some(v) = r.test_neg_elbo {
        s += &format!("  ELBO {:.2}", -v);
    }
    if let (Some(a), Some(n)) = (r.test_acc, r.test_nmi) {
        s += &format!("  ACC {:.2}%  NMI {:.3}", 100.0 * a, n);
    }
    if let Some(v) = val {
        if let Some(e) = v.error.filter(|_| !clustering) {
            s += &format!("  val error {:.2}%", 100.0 * e);
        }
        if let Some(e) = v.neg_elbo {
            s += &format!("  val ELBO {:.2}", -e);
        }
    }
    s
}

/// Train from `state` to `rc.train.epochs`, checkpointing into `run_dir` after each epoch.
/// A non-finite loss stops training with a message naming the last good checkpoint.
#[allow(clippy::too_many_arguments)]
fn train_loop(
    run_dir: &Path,
    rc: RunConfig,
    model: &dyn Model,
    tt: &data::TrainTest,
    split: &SemiSupervised,
    mut state: TrainState,
    log: MetricsLog,
    last_ckpt: Option<PathBuf>,
) -> Result<()> {
    let cfg = rc.train.clone();
    let validation = if split.validation.is_empty() {
        None
    } else {
        Some(data::subset(&tt.train, &split.validation, "validation")?)
    };
    let mut obs = CliObserver {
        run_dir,
        rc,
        model,
        log,
        validation,
        bar: None,
        show_bar: std::io::stdout().is_terminal(),
        last_ckpt,
    };
    let result = fit_with(
        model, &tt.train, &tt.test, split, &cfg, &mut state, &mut obs,
    );
    if let Some(pb) = obs.bar.take() {
        pb.abandon();
    }
    match result {
        Ok(_) => {
            if let Some(p) = &obs.last_ckpt {
                println!(
                    "checkpoint {}  metrics {}",
                    p.display(),
                    obs.log.path().display()
                );
            }
            Ok(())
        }
        Err(Error::NonFinite { what }) => {
            let hint = match &obs.last_ckpt {
                Some(p) => format!(
                    "training stopped; the last good checkpoint is {} (intact): `ssvae train --resume {}` continues from it, or start over with a lower --lr",
                    p.display(),
                    run_dir.display()
                ),
                None => "training stopped before the first epoch ended, so no checkpoint was written; try a lower --lr".to_string(),
            };
            Err(Error::NonFinite {
                what: format!("{what}; {hint}"),
            })
        }
        Err(e) => Err(e),
    }
}

fn pct(v: f64) -> String {
    format!("{:.2}%", 100.0 * v)
}

/// `eval DIR`.
/// What `eval` reports beyond error, ELBO and clustering scores.
struct EvalExtras {
    /// Samples of the importance-weighted bound (0: skip it).
    iwae_k: usize,
    confusion: bool,
    active_units: bool,
}

fn eval_cmd(
    dir: &Path,
    extras: EvalExtras,
    data_dir: Option<PathBuf>,
    device: Device,
) -> Result<()> {
    let EvalExtras {
        iwae_k,
        confusion,
        active_units,
    } = extras;
    let (ckpt, mut rc, model) = checkpoint::load_model(dir, device)?;
    rc.train.device = device;
    let tt = load_run_data(&rc, data_dir)?;
    println!(
        "{}: {} on {}, {} labels, seed {}, epoch {} (step {})",
        ckpt.display(),
        model.name(),
        rc.dataset,
        rc.labels,
        rc.seed,
        rc.epoch,
        rc.step
    );
    let ev = evaluate_all(model.as_ref(), &tt.test, &rc.train)?;
    let clustering = is_clustering(&rc.model);
    if let Some(e) = ev.error.filter(|_| !clustering) {
        println!("test error       {}", pct(e));
    }
    if let Some(v) = ev.neg_elbo {
        println!("test ELBO        {:.3} nats", -v);
    }
    if let (Some(a), Some(n)) = (ev.acc, ev.nmi) {
        println!("clustering ACC   {}", pct(a));
        println!("clustering NMI   {n:.4}");
    }
    if confusion {
        let table = ssvae::metrics::confusion_table(
            &ev.predictions,
            &tt.test.y,
            ev.clusters,
            tt.test.classes,
            clustering,
        )?;
        print!("{table}");
    }
    if active_units {
        let var = latent_activity(model.as_ref(), &tt.test, &rc.train)?;
        let active = var
            .iter()
            .filter(|&&v| v > ssvae::metrics::ACTIVE_UNIT_THRESHOLD)
            .count();
        let mut sorted = var.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let list: Vec<String> = sorted.iter().map(|v| format!("{v:.4}")).collect();
        println!(
            "active units     {active} of {} (Var_x E[z|x] > {}; per unit, largest first: {})",
            var.len(),
            ssvae::metrics::ACTIVE_UNIT_THRESHOLD,
            list.join(" ")
        );
    }
    if iwae_k > 0 {
        let bar = (std::io::stdout().is_terminal()).then(|| {
            let style =
                ProgressStyle::with_template("IWAE [{bar:30}] {pos}/{len} examples  eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
            ProgressBar::new(tt.test.n as u64).with_style(style)
        });
        let bound = iwae_bound(
            model.as_ref(),
            &tt.test,
            iwae_k,
            2048,
            rc.seed,
            device,
            |done, _| {
                if let Some(b) = &bar {
                    b.set_position(done as u64);
                }
            },
        );
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        println!("test IWAE (K={iwae_k}) {:.3} nats", bound?);
    }
    Ok(())
}

/// `sample DIR`.
#[allow(clippy::too_many_arguments)]
fn sample_cmd(
    dir: &Path,
    out: Option<PathBuf>,
    (rows, cols, scale): (Option<usize>, Option<usize>, usize),
    analogy: bool,
    seed: u64,
    data_dir: Option<PathBuf>,
    device: Device,
) -> Result<()> {
    let (ckpt, rc, model) = checkpoint::load_model(dir, device)?;
    let run_dir = if ckpt == dir {
        dir.parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    } else {
        dir.to_path_buf()
    };
    let k = rc.model.classes;
    let mut rng = Rng::new(seed, 0x5A3F);
    let (g, default_name) = if analogy {
        if cols.is_some() {
            return Err(Error::invalid(
                "--cols",
                "does not apply with --analogy (one column per class)",
            ));
        }
        let rows = rows.unwrap_or(10);
        positive("--rows", rows)?;
        let tt = load_run_data(&rc, data_dir)?;
        if rows > tt.test.n {
            return Err(Error::invalid(
                "--rows",
                format!("{rows} rows but the test set has {} images", tt.test.n),
            ));
        }
        let mut idx: Vec<usize> = (0..tt.test.n).collect();
        rng.shuffle(&mut idx);
        idx.truncate(rows);
        (
            grid::analogy_grid(model.as_ref(), &tt.test, &idx, k, device)?,
            "analogy.png",
        )
    } else {
        let rows = rows.unwrap_or(k);
        let cols = cols.unwrap_or(10);
        positive("--rows", rows)?;
        positive("--cols", cols)?;
        if rows > k {
            return Err(Error::invalid(
                "--rows",
                format!("{rows} rows but the model has {k} classes"),
            ));
        }
        let classes: Vec<usize> = (0..rows).collect();
        (
            grid::class_grid(model.as_ref(), &rc.model, &classes, cols, &mut rng, device)?,
            "samples.png",
        )
    };
    positive("--scale", scale)?;
    let g = g.scaled(scale);
    let out = out.unwrap_or_else(|| run_dir.join(default_name));
    g.write_png(&out)?;
    let (w, h) = g.image_size();
    println!(
        "wrote {} ({}×{} tiles, {w}×{h} pixels) from {}",
        out.display(),
        g.rows,
        g.cols,
        ckpt.display()
    );
    Ok(())
}

/// `bench`.
fn bench_cmd(device: Device, quick: bool) -> Result<()> {
    println!(
        "ssvae bench on {device} ({} threads){}",
        rayon::current_num_threads(),
        if quick { ", quick" } else { "" }
    );
    println!("{}", bench::header());
    bench::run(device, quick, |m| {
        println!("{}", bench::format_line(m));
        let _ = std::io::stdout().flush();
    })?;
    Ok(())
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    match run(cli, &matches) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

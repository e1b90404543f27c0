//! `ssvae train`: the flags, a new run (model, split and optimiser state from the seed) or the
//! exact continuation of a saved one (`--resume`, also from a checkpoint written part-way
//! through an epoch by Ctrl-C), and which checkpoints it keeps (`--keep-last`, `--save-best`).

use super::train_loop::train_loop;
use super::{load_run_data, positive, run_dir_of, Cli};
use clap::parser::ValueSource;
use clap::{Args, CommandFactory};
use ssvae::data::{self, Dataset, DatasetSpec, SemiSupervised};
use ssvae::device::{ensure_available, parse_device};
use ssvae::models::{self, Arch, Model, ModelKind, ModelSpec};
use ssvae::rng::Rng;
use ssvae::train::checkpoint::{self, BestMetric, Retention, RunConfig};
use ssvae::train::log::MetricsLog;
use ssvae::train::{TrainConfig, TrainState, INIT_STREAM};
use ssvae::{Device, Error, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The flags of `ssvae train`.
#[derive(Args)]
pub struct TrainArgs {
    /// The model (classifier: labels only, the baseline)
    #[arg(long, value_enum, default_value_t = ModelKind::M2)]
    model: ModelKind,
    /// mnist | fashion-mnist | cifar10 | digits | svhn, or NumPy arrays: npz:FILE (holding
    /// x_train, y_train, x_test, y_test) | npy:DIR (x_train.npy …); see datasets/README.md
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
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    epochs: usize,
    /// Unlabelled examples per step
    #[arg(long, default_value_t = TrainConfig::default().batch_size)]
    batch_size: usize,
    /// Labelled examples per step
    #[arg(long, default_value_t = TrainConfig::default().labelled_batch)]
    labelled_batch: usize,
    #[arg(long, default_value_t = TrainConfig::default().lr)]
    lr: f32,
    /// Epochs after which the learning rate is multiplied by --lr-gamma, e.g. 30,40
    /// (PyTorch's MultiStepLR). With --resume: milestones may be added or moved only
    /// where they leave the rate of the epochs already trained unchanged.
    #[arg(long, value_delimiter = ',', value_name = "EPOCHS")]
    lr_milestones: Vec<usize>,
    /// The factor of each --lr-milestones step
    #[arg(long, default_value_t = ssvae::train::DEFAULT_LR_GAMMA)]
    lr_gamma: f32,
    /// Weight of the labelled cross-entropy, a finite number ≥ 0 [default: 0.1·N/N_labelled]
    #[arg(long, value_parser = loss_weight, allow_negative_numbers = true)]
    alpha: Option<f32>,
    #[arg(long, default_value_t = models::DEFAULT_HIDDEN)]
    hidden: usize,
    /// Latent size [default: 50 for --arch mlp, 32 for --arch conv]
    #[arg(long)]
    z_dim: Option<usize>,
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    seed: u64,
    /// Encoder/decoder family
    #[arg(long, value_enum, default_value_t = Arch::Mlp)]
    arch: Arch,
    /// Run directory for metrics.csv and checkpoints
    /// [default: runs/<model>-<dataset>-<labels>-s<seed>]
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in DIR exactly where its last checkpoint stopped, also part-way
    /// through an epoch (its saved settings apply, its device included; only --epochs,
    /// --device, --data-dir, --lr-milestones, --lr-gamma, --freeze-m1-after, --keep-last and
    /// --save-best may be given)
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// Keep the N newest epoch checkpoints (DIR/epoch-NNNN/), deleting older ones as new ones
    /// are written [default: 1, or the run's own with --resume]
    #[arg(long, value_name = "N")]
    keep_last: Option<usize>,
    /// Also keep a copy of the checkpoint with the lowest validation error in DIR/best/
    /// (best.json says its epoch and value; needs --validation N). Metric: val_error
    #[arg(long, value_name = "METRIC")]
    save_best: Option<String>,
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
    /// m1m2: start M1 from the trained VAE of DIR (a vae, m1 or m1m2 run of the same arch,
    /// width and z dim on the same dataset) and keep it frozen (--freeze-m1-after 0 unless
    /// given): M2 trains alone on its features from the first step, the paper's protocol
    #[arg(long, value_name = "DIR")]
    m1_from: Option<PathBuf>,
    /// shot: distribution alignment (ReMixMatch) of the interpolation targets, q(y|x)
    /// divided by a running mean of q(y|x) and renormalised; not in SHOT-VAE, off by default
    #[arg(long)]
    align: bool,
    /// m1m2: M2 models only the active units of z1 (running variance of the posterior mean
    /// above 0.01, as Kingma et al.'s code keeps only those); the inactive ones are hidden
    /// from q(y|z1) and q(z2|z1,y) and get a fixed N(0, 1) likelihood
    #[arg(long)]
    drop_inactive_z1: bool,
    /// m2, m1m2: weight w of the labelled bound L(x, y) in w·mean L + α·mean CE + mean U over
    /// the labelled and unlabelled batches [default: m1m2 N_labelled/N_unlabelled, the paper's
    /// objective Σ_l L + Σ_u U, every example counted once; m2 1, the labelled batch weighed
    /// as much as the unlabelled one]
    #[arg(long, value_name = "W", value_parser = loss_weight, allow_negative_numbers = true)]
    labelled_bound_weight: Option<f32>,
    /// adgm, sdgm: draws of the auxiliary a ~ q(a|x) per training example, the bound and the
    /// cross-entropy averaged over them (the reference code uses 5) [default: 1]
    #[arg(long, value_name = "S")]
    a_samples: Option<usize>,
    /// M2: compose the ELBO from primitives instead of the fused VAE ops (same maths and
    /// random draws; for comparison and benchmarking)
    #[arg(long)]
    unfused: bool,
    /// Shift each training image (labelled and unlabelled) by up to N pixels per axis, a
    /// fresh uniform offset per image and step, vacated pixels 0 (torchvision's
    /// RandomCrop with padding N); evaluation never shifts. 0: off
    #[arg(long, default_value_t = 0, value_name = "N")]
    augment_shift: usize,
    /// Dynamic binarisation: each training pixel (after any shift) a fresh Bernoulli draw of
    /// its intensity at every step, as Kingma et al.'s M1; evaluation sees the grey levels
    #[arg(long)]
    binarize: bool,
}

/// Flags of `train` that `--resume` accepts (the rest come from the checkpoint; `resume`
/// first).
const RESUME_FLAGS: [&str; 9] = [
    "resume",
    "epochs",
    "device",
    "data_dir",
    "lr_milestones",
    "lr_gamma",
    "freeze_m1_after",
    "keep_last",
    "save_best",
];

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

/// clap's parser of a loss weight (`--alpha`, `--labelled-bound-weight`): a number that
/// [`models::check_loss_weight`] accepts, so that `--alpha nan` or `--alpha -1` is refused as
/// the command line is read (clap's message names the flag).
fn loss_weight(s: &str) -> std::result::Result<f32, String> {
    let w: f32 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    models::check_loss_weight("", w).map_err(|e| match e {
        Error::Invalid { why, .. } => why,
        e => e.to_string(),
    })?;
    Ok(w)
}

/// The command-line spelling of a clap argument id (`lr_gamma` → `--lr-gamma`).
fn flag_name(id: &str) -> String {
    format!("--{}", id.replace('_', "-"))
}

/// `train`: a new run, or with `--resume` the continuation of a saved one (`matches`: the
/// parsed command line, to tell the flags given from the defaults). The exit code is success,
/// or 128 + the signal's number when Ctrl-C or SIGTERM stopped training.
pub fn train_cmd(args: TrainArgs, matches: &clap::ArgMatches) -> Result<ExitCode> {
    let TrainArgs {
        model: kind,
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
        keep_last,
        save_best,
        overwrite,
        steps_per_epoch,
        device,
        freeze_m1_after,
        m1_from,
        align,
        drop_inactive_z1,
        labelled_bound_weight,
        a_samples,
        unfused,
        augment_shift,
        binarize,
    } = args;
    let given = given_flags(matches, "train");
    positive("--epochs", epochs)?;
    if let Some(n) = keep_last {
        positive("--keep-last", n)?;
    }
    let save_best: Option<BestMetric> = save_best.map(|m| m.parse()).transpose()?;
    if let Some(dir) = resume {
        let extra: Vec<String> = given
            .iter()
            .filter(|id| !RESUME_FLAGS.contains(&id.as_str()))
            .map(|id| flag_name(id))
            .collect();
        if !extra.is_empty() {
            let allowed: Vec<String> = RESUME_FLAGS[1..].iter().map(|id| flag_name(id)).collect();
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
            keep_last,
            save_best,
        };
        // The saved device unless one is asked for: a CPU run resumed on a GPU
        // machine stays on the CPU, so it continues with the same numbers.
        let device = was_given("device")
            .then(|| parse_device(&device))
            .transpose()?;
        return resume_run(&dir, change, device, data_dir);
    }
    if save_best.is_some() && validation == 0 {
        return Err(Error::invalid(
            "--save-best",
            "ranks checkpoints by their validation error, so it needs a validation set: add --validation N",
        ));
    }
    let device = parse_device(&device)?;
    positive("--batch-size", batch_size)?;
    positive("--labelled-batch", labelled_batch)?;
    positive("--hidden", hidden)?;
    let z_dim = z_dim.unwrap_or(models::arch::default_z_dim(arch));
    positive("--z-dim", z_dim)?;
    if let Some(s) = a_samples {
        positive("--a-samples", s)?;
    }
    if let Some(s) = steps_per_epoch {
        positive("--steps-per-epoch", s)?;
    }
    ssvae::train::check_lr_schedule(lr, &lr_milestones, lr_gamma)?;
    if m1_from.is_some() && kind != ModelKind::M1M2 {
        return Err(Error::invalid(
            "--m1-from",
            format!("applies to m1m2 only, not to {kind}"),
        ));
    }
    // A trained M1 stays frozen unless told when to freeze it.
    let freeze_m1_after = match m1_from {
        Some(_) => freeze_m1_after.or(Some(0)),
        None => freeze_m1_after,
    };
    // A path is recorded absolute: the run may be evaluated or resumed from elsewhere.
    let name = dataset.parse::<DatasetSpec>()?.absolute()?;
    let out = out.unwrap_or_else(|| {
        let short = name.short_name();
        PathBuf::from("runs").join(format!("{kind}-{short}-{labels}-s{seed}"))
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
    let resume_hint = resume_command(&out, data_dir.as_deref());
    let dir = data_dir.unwrap_or_else(data::default_data_dir);
    let tt = name.load(&dir)?;
    let input = (tt.train.channels, tt.train.height, tt.train.width);
    data::augment::check_shift(augment_shift, input)?;
    let split = make_split(&tt.train, labels, validation, seed)?;
    let mut rng = Rng::new(seed, INIT_STREAM);
    let defaults = ModelSpec::new(kind, arch, &tt.train, &split);
    let spec = ModelSpec {
        hidden,
        z_dim,
        // None: each model's own default (0.1·N/N_labelled for M2, M1+M2, GMVAE, ADGM, SDGM).
        alpha,
        fused: !unfused,
        freeze_m1_after,
        align,
        drop_inactive_z1,
        // m1m2: the paper's weighting unless told.
        labelled_bound_weight: labelled_bound_weight.or(defaults.labelled_bound_weight),
        a_samples,
        ..defaults
    };
    let model = models::build(&spec, &mut rng, device)?;
    let retention = Retention {
        keep_last: keep_last.unwrap_or(Retention::default().keep_last),
        save_best,
    };
    check_save_best(&retention, &spec, model.as_ref())?;
    let m1_from = match m1_from {
        Some(dir) => {
            let ckpt = checkpoint::load_m1_weights(&dir, &spec, &name.to_string(), model.as_ref())?;
            // Recorded absolute: the run may be resumed from another directory.
            let ckpt = std::fs::canonicalize(&ckpt).map_err(|e| Error::io(&ckpt, e))?;
            println!(
                "M1 from {} (frozen after epoch {})",
                ckpt.display(),
                spec.freeze_m1_after.unwrap_or(0)
            );
            Some(ckpt)
        }
        None => None,
    };
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
        steps_per_epoch,
        use_unlabelled,
        augment_shift,
        binarize,
        ..TrainConfig::default()
    };
    println!(
        "training {} on {} ({} train, {} test), {} labels, {} held out for validation, alpha {}, {epochs} epochs{}{}, device {device} → {}",
        model.name(),
        name,
        tt.train.n,
        tt.test.n,
        split.labelled.len(),
        split.validation.len(),
        spec.effective_alpha()
            .map_or("(none: no labelled cross-entropy)".to_string(), |a| format!("{a}")),
        if augment_shift > 0 {
            format!(", training images shifted by up to {augment_shift} pixels")
        } else {
            String::new()
        },
        if binarize {
            ", training images binarised"
        } else {
            ""
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
        m1_from,
        steps_into_epoch: 0,
        retention,
    };
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    let state = TrainState::new(model.as_ref(), &split, &rc.train)?;
    let log = MetricsLog::create(&out)?;
    train_loop(
        &out,
        rc,
        model.as_ref(),
        &tt,
        &split,
        state,
        log,
        None,
        &resume_hint,
    )
}

/// Refuses `--save-best val_error` for a model without an error rate (a generative model, a
/// clustering GMVAE); the validation set is checked where the flag is read.
fn check_save_best(retention: &Retention, spec: &ModelSpec, model: &dyn Model) -> Result<()> {
    let Some(metric) = retention.save_best else {
        return Ok(());
    };
    match metric {
        BestMetric::ValError if !model.classifies() => Err(Error::invalid(
            "--save-best",
            format!(
                "{} does not classify, so it has no validation error to rank by",
                spec.kind
            ),
        )),
        BestMetric::ValError if super::is_clustering(spec) => Err(Error::invalid(
            "--save-best",
            "a GMVAE trained without labels has clusters, not classes, so no validation error",
        )),
        BestMetric::ValError => Ok(()),
    }
}

/// The command that continues the run in `run_dir`, for a message that tells it: the
/// `--data-dir` given to this one is passed on (the data directory is not saved with the run).
fn resume_command(run_dir: &Path, data_dir: Option<&Path>) -> String {
    let mut words = vec![
        "ssvae".to_string(),
        "train".into(),
        "--resume".into(),
        shell_word(&run_dir.to_string_lossy()),
    ];
    if let Some(d) = data_dir {
        words.push("--data-dir".into());
        words.push(shell_word(&d.to_string_lossy()));
    }
    words.join(" ")
}

/// `s` as one word of a POSIX shell command: as is when it holds no character the shell would
/// interpret, else in single quotes.
fn shell_word(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./:=+,@%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
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

/// What `train --resume` may change of a run's saved settings (None: keep the saved value).
struct ResumeChange {
    epochs: Option<usize>,
    lr_milestones: Option<Vec<usize>>,
    lr_gamma: Option<f32>,
    freeze_m1_after: Option<usize>,
    keep_last: Option<usize>,
    save_best: Option<BestMetric>,
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
) -> Result<ExitCode> {
    let data_dir_given = data_dir.clone();
    let ckpt = checkpoint::resolve(dir)?;
    let mut rc = checkpoint::load_config(&ckpt)?;
    let run_dir = run_dir_of(dir, &ckpt);
    let device = match device {
        Some(d) => d,
        None => saved_device_available(rc.train.device, &ckpt)?,
    };
    rc.train.device = device;
    if let Some(e) = change.epochs {
        rc.train.epochs = e;
    }
    // An epoch stopped part-way counts as trained: its steps so far had its rate.
    rc.train
        .reschedule(change.lr_milestones, change.lr_gamma, rc.epochs_begun())?;
    if let Some(e) = change.freeze_m1_after {
        rc.model.freeze_m1_from(e, rc.epochs_begun())?;
    }
    if let Some(n) = change.keep_last {
        rc.retention.keep_last = n;
    }
    if let Some(m) = change.save_best {
        if rc.validation == 0 {
            return Err(Error::invalid(
                "--save-best",
                format!(
                    "ranks checkpoints by their validation error, but the run in {} holds out no validation set (--validation N is fixed when a run starts)",
                    run_dir.display()
                ),
            ));
        }
        rc.retention.save_best = Some(m);
    }
    if rc.epochs_begun() > rc.train.epochs {
        return Err(Error::invalid(
            "--epochs",
            format!(
                "{} stopped part-way through epoch {}, so --epochs must be at least {}",
                ckpt.display(),
                rc.epoch + 1,
                rc.epoch + 1
            ),
        ));
    }
    if rc.epoch >= rc.train.epochs {
        println!(
            "{} is already at epoch {} of {}; pass --epochs N with N > {} to train further",
            run_dir.display(),
            rc.epoch,
            rc.train.epochs,
            rc.epoch
        );
        return Ok(ExitCode::SUCCESS);
    }
    let model = checkpoint::build_model(&ckpt, &rc, device)?;
    check_save_best(&rc.retention, &rc.model, model.as_ref())?;
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
        "resuming {} on {} from {} (epoch {}, step {}{}) to epoch {}, device {device}",
        model.name(),
        rc.dataset,
        ckpt.display(),
        rc.epoch,
        rc.step,
        match rc.steps_into_epoch {
            0 => String::new(),
            n => format!(", {n} steps into epoch {}", rc.epoch + 1),
        },
        rc.train.epochs
    );
    let resume_hint = resume_command(&run_dir, data_dir_given.as_deref());
    train_loop(
        &run_dir,
        rc,
        model.as_ref(),
        &tt,
        &split,
        state,
        log,
        Some(ckpt),
        &resume_hint,
    )
}

/// `device`, the one a checkpoint was trained on, if this machine has it; otherwise an error
/// that says how to continue elsewhere.
fn saved_device_available(device: Device, ckpt: &Path) -> Result<Device> {
    ensure_available(device, &device.to_string()).map_err(|why| {
        Error::invalid(
            "--resume",
            format!(
                "{} was trained on {device}, which this machine lacks ({why}); pass --device cpu (or another device) to continue there, with numbers that differ from an uninterrupted run",
                ckpt.display()
            ),
        )
    })
}

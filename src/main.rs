//! The `ssvae` command line: `train` (and, as they land, `eval`, `sample`, `bench`).

use clap::{Parser, Subcommand, ValueEnum};
use ssvae::data::{self, DatasetName};
use ssvae::models::{Classifier, M2Config, Model, M2};
use ssvae::nn::Activation;
use ssvae::rng::Rng;
use ssvae::train::{fit, TrainConfig};
use ssvae::{Device, Error, Result};
use std::path::PathBuf;
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

#[derive(Clone, Copy, ValueEnum, Debug)]
enum ModelKind {
    /// Kingma et al. 2014 M2, y marginalised exactly
    M2,
    /// q(y|x) alone trained on the labelled examples: the baseline
    Classifier,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model and report per-epoch loss, ELBO and test error.
    Train {
        #[arg(long, value_enum, default_value_t = ModelKind::M2)]
        model: ModelKind,
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
        /// Weight of the labelled cross-entropy [default: 0.1·N/N_labelled]
        #[arg(long)]
        alpha: Option<f32>,
        #[arg(long, default_value_t = 500)]
        hidden: usize,
        #[arg(long, default_value_t = 50)]
        z_dim: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Steps per epoch [default: one pass over the unlabelled pool]
        #[arg(long)]
        steps_per_epoch: Option<usize>,
        /// cpu (the CUDA backend is selected with cuda once it lands)
        #[arg(long, default_value = "cpu")]
        device: String,
        /// M2: compose the ELBO from primitives instead of the fused VAE ops (same maths and
        /// random draws; for comparison and benchmarking)
        #[arg(long)]
        unfused: bool,
    },
}

fn parse_device(s: &str) -> Result<Device> {
    match s {
        "cpu" | "auto" => Ok(Device::Cpu),
        other => Err(Error::invalid(
            "--device",
            format!("unknown device '{other}' (expected auto, cpu)"),
        )),
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train {
            model,
            dataset,
            data_dir,
            labels,
            epochs,
            batch_size,
            labelled_batch,
            lr,
            alpha,
            hidden,
            z_dim,
            seed,
            steps_per_epoch,
            device,
            unfused,
        } => {
            let device = parse_device(&device)?;
            let name: DatasetName = dataset.parse()?;
            let dir = data_dir.unwrap_or_else(data::default_data_dir);
            let tt = data::load(name, &dir)?;
            let split = data::split(&tt.train.y, tt.train.classes, labels, 0, seed)?;
            let n = tt.train.n as f32;
            let alpha = alpha.unwrap_or(0.1 * n / labels.max(1) as f32);
            let mut rng = Rng::new(seed, 0x1417);
            let act = Activation::Relu;
            let model: Box<dyn Model> = match model {
                ModelKind::M2 => Box::new(M2::new(
                    M2Config {
                        x_dim: tt.train.dim(),
                        classes: tt.train.classes,
                        hidden,
                        z_dim,
                        alpha,
                        activation: act,
                        fused: !unfused,
                    },
                    &mut rng,
                    device,
                )?),
                ModelKind::Classifier => Box::new(Classifier::new(
                    tt.train.dim(),
                    hidden,
                    tt.train.classes,
                    act,
                    &mut rng,
                    device,
                )?),
            };
            let use_unlabelled = !matches!(model.name(), "classifier");
            let cfg = TrainConfig {
                epochs,
                batch_size,
                labelled_batch,
                lr,
                seed,
                device,
                eval_batch: 500,
                steps_per_epoch,
                use_unlabelled,
            };
            println!(
                "training {} on {} ({} train, {} test), {} labels, alpha {alpha:.1}, {epochs} epochs, device {device}",
                model.name(),
                name,
                tt.train.n,
                tt.test.n,
                split.labelled.len()
            );
            fit(model.as_ref(), &tt.train, &tt.test, &split, &cfg, |r| {
                let terms: Vec<String> =
                    r.train.iter().map(|(n, v)| format!("{n} {v:.3}")).collect();
                let elbo = r
                    .test_neg_elbo
                    .map(|v| format!(" test ELBO {:.2}", -v))
                    .unwrap_or_default();
                println!(
                    "epoch {:>3}  {:.1}s  {:.0} ex/s  {}  test error {:.2}%{elbo}",
                    r.epoch,
                    r.wall_s,
                    r.examples_per_s,
                    terms.join("  "),
                    100.0 * r.test_error
                );
                Ok(())
            })?;
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

//! `ssvae eval DIR`: a checkpoint's test error, ELBO and clustering ACC/NMI, and on request
//! the confusion matrix, the active latent units and the importance-weighted bound.

use super::{is_clustering, load_run_data};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use ssvae::backend::cuda::parse_device;
use ssvae::train::checkpoint;
use ssvae::train::{evaluate_all, iwae_bound, latent_activity};
use ssvae::Result;
use std::io::IsTerminal;
use std::path::PathBuf;

/// The flags of `ssvae eval`.
#[derive(Args)]
pub struct EvalArgs {
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
    /// Directory holding <dataset>/ folders, as for train [default: $SSVAE_DATA_DIR, else
    /// ../shared/datasets]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// auto | cpu | cuda | cuda:N
    #[arg(long, default_value = "auto")]
    device: String,
}

fn pct(v: f64) -> String {
    format!("{:.2}%", 100.0 * v)
}

/// `eval DIR`.
pub fn eval_cmd(args: EvalArgs) -> Result<()> {
    let EvalArgs {
        dir,
        iwae_k,
        confusion,
        active_units,
        data_dir,
        device,
    } = args;
    let device = parse_device(&device)?;
    let (ckpt, mut rc, model) = checkpoint::load_model(&dir, device)?;
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

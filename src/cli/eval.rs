//! `ssvae eval DIR`: a checkpoint's test error, ELBO and clustering ACC/NMI, and on request
//! the confusion matrix, the active latent units and the importance-weighted bound (with its
//! progress and an estimate of its time, refused when absurd unless `--force`); printed for
//! people, or with `--json` as one JSON document on stdout (progress stays on stderr).
//! Everything requested but the slow IWAE bound is measured before anything is printed, so a
//! request the model cannot answer fails before any output.

use super::{is_clustering, load_run_data};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use ssvae::device::parse_device;
use ssvae::train::checkpoint;
use ssvae::train::{evaluate_all, iwae_bound, latent_activity, IwaeProgress};
use ssvae::{Error, Result};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

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
    /// Run an --iwae-k evaluation even when it is estimated to take more than 24 hours
    #[arg(long)]
    force: bool,
    /// Print one JSON document on stdout instead of the text: checkpoint, model, dataset,
    /// labels, seed, epoch, step, test_error_pct, test_elbo, test_acc_pct, test_nmi (null where
    /// the model has none), and confusion, active_units, test_iwae when asked for
    #[arg(long)]
    json: bool,
}

/// What `eval` measured: the `--json` document, and what the text is printed from.
#[derive(Serialize)]
struct EvalReport {
    checkpoint: String,
    model: &'static str,
    dataset: String,
    labels: usize,
    seed: u64,
    epoch: usize,
    step: usize,
    /// Percent, as metrics.csv's column.
    test_error_pct: Option<f64>,
    /// Nats per example.
    test_elbo: Option<f64>,
    /// Percent.
    test_acc_pct: Option<f64>,
    test_nmi: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    confusion: Option<Confusion>,
    #[serde(skip_serializing_if = "Option::is_none")]
    active_units: Option<ActiveUnits>,
    #[serde(skip_serializing_if = "Option::is_none")]
    test_iwae: Option<Iwae>,
}

/// `--confusion`: counts per true class (rows) and predicted class or cluster (columns).
#[derive(Serialize)]
struct Confusion {
    /// "class" or "cluster": what the columns are.
    columns: &'static str,
    counts: Vec<Vec<usize>>,
    /// The table printed without --json.
    #[serde(skip)]
    table: String,
}

/// `--active-units`.
#[derive(Serialize)]
struct ActiveUnits {
    /// Units whose variance exceeds `threshold`.
    active: usize,
    threshold: f64,
    /// Var_x E[z|x] of each unit, in unit order.
    variance: Vec<f64>,
}

/// `--iwae-k K`.
#[derive(Serialize)]
struct Iwae {
    k: usize,
    /// The bound on the mean log p(x), nats per example.
    bound: f64,
}

/// An --iwae-k evaluation estimated (on its second chunk of draws) to take longer than this is
/// refused unless `--force`: K = 5000, the usual choice, takes minutes on the test sets.
const MAX_IWAE_SECONDS: f64 = 24.0 * 3600.0;

/// Without a progress bar (stderr is not a terminal), a progress line this often.
const PROGRESS_LINE_SECONDS: f64 = 60.0;

/// A duration for people: `40 s`, `12 min`, `3.5 h`, `30.2 days`, `1.2e4 years`.
fn duration(s: f64) -> String {
    if s < 90.0 {
        format!("{s:.0} s")
    } else if s < 90.0 * 60.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 48.0 * 3600.0 {
        format!("{:.1} h", s / 3600.0)
    } else if s < 365.0 * 86400.0 {
        format!("{:.1} days", s / 86400.0)
    } else {
        format!("{:.1e} years", s / (365.25 * 86400.0))
    }
}

/// The progress of an --iwae-k evaluation: a bar on a terminal, else a line a minute on
/// stderr; after the second chunk of draws (the first pays one-time costs such as kernel
/// compilation) an estimate of the whole run, printed, and refused above
/// [`MAX_IWAE_SECONDS`] unless `force`.
struct IwaeWatch {
    k: usize,
    force: bool,
    bar: Option<ProgressBar>,
    start: Instant,
    /// When the previous chunk ended, and the pairs done then.
    last: (Instant, u128),
    chunks: usize,
    last_line: Instant,
}

impl IwaeWatch {
    fn new(k: usize, force: bool) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let style =
                ProgressStyle::with_template("IWAE [{bar:30}] {percent:>3}%  {msg}  eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
            ProgressBar::new(0).with_style(style)
        });
        let now = Instant::now();
        IwaeWatch {
            k,
            force,
            bar,
            start: now,
            last: (now, 0),
            chunks: 0,
            last_line: now,
        }
    }

    fn update(&mut self, p: &IwaeProgress) -> Result<()> {
        let now = Instant::now();
        self.chunks += 1;
        let (t0, d0) = std::mem::replace(&mut self.last, (now, p.draws_done));
        let left = (p.draws_total - p.draws_done) as f64;
        if self.chunks == 2 {
            // Draws per second of this chunk alone, warm.
            let rate = (p.draws_done - d0) as f64 / now.duration_since(t0).as_secs_f64().max(1e-9);
            let estimate = self.start.elapsed().as_secs_f64() + left / rate;
            let what = format!(
                "{} draws for each of the {} test examples, about {} at the measured {rate:.0} draws/s (chunks of {})",
                self.k,
                p.examples,
                duration(estimate),
                p.chunk
            );
            if estimate > MAX_IWAE_SECONDS && !self.force {
                return Err(Error::invalid(
                    "--iwae-k",
                    format!(
                        "{what}, more than {}: pass --force to run it anyway, or choose a smaller K (5000 is the usual choice)",
                        duration(MAX_IWAE_SECONDS)
                    ),
                ));
            }
            eprintln!("IWAE (K={}): {what}", self.k);
        }
        let u64_of = |v: u128| u64::try_from(v).unwrap_or(u64::MAX);
        match &self.bar {
            Some(b) => {
                b.set_length(u64_of(p.draws_total));
                b.set_position(u64_of(p.draws_done));
                b.set_message(format!("{}/{} examples", p.examples_done, p.examples));
            }
            None if now.duration_since(self.last_line).as_secs_f64() >= PROGRESS_LINE_SECONDS => {
                self.last_line = now;
                let elapsed = self.start.elapsed().as_secs_f64();
                let rate = p.draws_done as f64 / elapsed.max(1e-9);
                eprintln!(
                    "IWAE (K={}): {:.1}% ({}/{} examples) after {}, about {} left",
                    self.k,
                    100.0 * p.draws_done as f64 / p.draws_total as f64,
                    p.examples_done,
                    p.examples,
                    duration(elapsed),
                    duration(left / rate)
                );
            }
            None => {}
        }
        Ok(())
    }
}

/// The text of `report` (all but the IWAE bound, which comes later).
fn print_text(r: &EvalReport) {
    println!(
        "{}: {} on {}, {} labels, seed {}, epoch {} (step {})",
        r.checkpoint, r.model, r.dataset, r.labels, r.seed, r.epoch, r.step
    );
    if let Some(e) = r.test_error_pct {
        println!("test error       {e:.2}%");
    }
    if let Some(v) = r.test_elbo {
        println!("test ELBO        {v:.3} nats");
    }
    if let (Some(a), Some(n)) = (r.test_acc_pct, r.test_nmi) {
        println!("clustering ACC   {a:.2}%");
        println!("clustering NMI   {n:.4}");
    }
    if let Some(c) = &r.confusion {
        print!("{}", c.table);
    }
    if let Some(au) = &r.active_units {
        let mut sorted = au.variance.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let list: Vec<String> = sorted.iter().map(|v| format!("{v:.4}")).collect();
        println!(
            "active units     {} of {} (Var_x E[z|x] > {}; per unit, largest first: {})",
            au.active,
            au.variance.len(),
            au.threshold,
            list.join(" ")
        );
    }
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
        force,
        json,
    } = args;
    let device = parse_device(&device)?;
    let (ckpt, mut rc, model) = checkpoint::load_model(&dir, device)?;
    rc.train.device = device;
    let tt = load_run_data(&rc, data_dir)?;
    let ev = evaluate_all(model.as_ref(), &tt.test, &rc.train)?;
    let clustering = is_clustering(&rc.model);
    let percent = |v: Option<f64>| v.map(ssvae::metrics::percent);
    let confusion = match confusion {
        true => {
            let table = ssvae::metrics::confusion_table(
                &ev.predictions,
                &tt.test.y,
                ev.clusters,
                tt.test.classes,
                clustering,
            )?;
            // metrics::confusion counts [predicted][true]; the rows here are true classes.
            let c = ssvae::metrics::confusion(
                &ev.predictions,
                &tt.test.y,
                ev.clusters,
                tt.test.classes,
            )?;
            let counts = (0..tt.test.classes)
                .map(|t| c.iter().map(|row| row[t]).collect())
                .collect();
            Some(Confusion {
                columns: if clustering { "cluster" } else { "class" },
                counts,
                table,
            })
        }
        false => None,
    };
    let active_units = match active_units {
        true => {
            let variance = latent_activity(model.as_ref(), &tt.test, &rc.train)?;
            let threshold = ssvae::metrics::ACTIVE_UNIT_THRESHOLD;
            Some(ActiveUnits {
                active: variance.iter().filter(|&&v| v > threshold).count(),
                threshold,
                variance,
            })
        }
        false => None,
    };
    let mut report = EvalReport {
        checkpoint: ckpt.display().to_string(),
        model: model.name(),
        dataset: rc.dataset.clone(),
        labels: rc.labels,
        seed: rc.seed,
        epoch: rc.epoch,
        step: rc.step,
        test_error_pct: percent(ev.error.filter(|_| !clustering)),
        test_elbo: ev.neg_elbo.map(|v| -v),
        test_acc_pct: percent(ev.acc.filter(|_| ev.nmi.is_some())),
        test_nmi: ev.nmi.filter(|_| ev.acc.is_some()),
        confusion,
        active_units,
        test_iwae: None,
    };
    if !json {
        print_text(&report);
    }
    if iwae_k > 0 {
        let mut watch = IwaeWatch::new(iwae_k, force);
        let bound = iwae_bound(
            model.as_ref(),
            &tt.test,
            iwae_k,
            2048,
            rc.seed,
            device,
            |p| watch.update(p),
        );
        if let Some(b) = watch.bar.take() {
            b.finish_and_clear();
        }
        let bound = bound?;
        if !json {
            println!("test IWAE (K={iwae_k}) {bound:.3} nats");
        }
        report.test_iwae = Some(Iwae { k: iwae_k, bound });
    }
    if json {
        let doc = serde_json::to_string(&report)
            .map_err(|e| Error::msg(format!("writing the JSON report: {e}")))?;
        println!("{doc}");
    }
    Ok(())
}

//! The loop of `ssvae train`, new or resumed: `fit_with` and an observer that shows a
//! progress bar with examples/s during an epoch, then writes the epoch's row in metrics.csv
//! and its checkpoint (and with `--save-best` the best one's copy) and prints a one-line
//! summary; a non-finite loss ends it with a message naming the last good checkpoint, and
//! Ctrl-C or SIGTERM at the next step boundary with a checkpoint of that step and the command
//! that continues from it.

use super::interrupt::Interrupt;
use super::is_clustering;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ssvae::data::{self, Dataset, SemiSupervised};
use ssvae::models::Model;
use ssvae::train::checkpoint::{self, RunConfig};
use ssvae::train::log::MetricsLog;
use ssvae::train::{
    evaluate_all, fit_with, EpochReport, Evaluation, Observer, StepInfo, TrainState,
};
use ssvae::{Error, Result};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
    /// Raised by Ctrl-C or SIGTERM.
    interrupt: Interrupt,
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
        let mut line = epoch_line(r, clustering, val.as_ref());
        if let Some(metric) = self.rc.retention.save_best {
            // The one metric, val_error, in the percent of its metrics.csv column.
            let value = val
                .as_ref()
                .and_then(|v| v.error)
                .map(ssvae::metrics::percent);
            if let Some(v) = value {
                if checkpoint::save_best(self.run_dir, &path, metric, v)? {
                    line += &format!("  (best {}: saved)", metric.as_str());
                }
            }
        }
        self.last_ckpt = Some(path);
        println!("{line}");
        std::io::stdout()
            .flush()
            .map_err(|e| Error::io("stdout", e))?;
        Ok(())
    }

    fn stop_requested(&mut self) -> bool {
        self.interrupt.requested()
    }
}

/// The line printed after each epoch: time, speed, rate, the loss terms, then the test (and
/// validation) figures that apply to the model.
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
/// A non-finite loss stops training with a message naming the last good checkpoint. Ctrl-C or
/// SIGTERM stops it at the next step boundary: a checkpoint of that step is written (none is
/// needed at an epoch boundary, whose checkpoint is there), `resume_hint` (the command that
/// continues the run) is printed, and the exit code is 128 + the signal's number.
#[allow(clippy::too_many_arguments)]
pub fn train_loop(
    run_dir: &Path,
    rc: RunConfig,
    model: &dyn Model,
    tt: &data::TrainTest,
    split: &SemiSupervised,
    mut state: TrainState,
    log: MetricsLog,
    last_ckpt: Option<PathBuf>,
    resume_hint: &str,
) -> Result<ExitCode> {
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
        interrupt: Interrupt::install()?,
    };
    let result = fit_with(
        model, &tt.train, &tt.test, split, &cfg, &mut state, &mut obs,
    );
    if let Some(pb) = obs.bar.take() {
        pb.abandon();
    }
    match result {
        Ok(_) if state.epoch < cfg.epochs => interrupted(&obs, &state, resume_hint),
        Ok(_) => {
            if let Some(p) = &obs.last_ckpt {
                println!(
                    "checkpoint {}  metrics {}",
                    p.display(),
                    obs.log.path().display()
                );
            }
            Ok(ExitCode::SUCCESS)
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

/// The end of a run that Ctrl-C or SIGTERM stopped (`state` as `fit_with` left it): save the
/// step it stopped at unless it stopped at an epoch boundary (whose checkpoint is on disk),
/// say where and how to continue, and give the exit code of the signal.
fn interrupted(obs: &CliObserver, state: &TrainState, resume_hint: &str) -> Result<ExitCode> {
    let at = match &state.partial {
        Some(p) => {
            let path = checkpoint::save(obs.run_dir, &obs.rc, obs.model, state)?;
            Some(format!(
                "{} (epoch {}, {} of its steps done)",
                path.display(),
                state.epoch + 1,
                p.steps_done
            ))
        }
        None => obs
            .last_ckpt
            .as_ref()
            .map(|p| format!("{} (end of epoch {})", p.display(), state.epoch)),
    };
    let name = obs.interrupt.name();
    match at {
        Some(at) => eprintln!(
            "interrupted by {name} after step {}; checkpoint {at}\ncontinue with: {resume_hint}",
            state.step
        ),
        None => eprintln!("interrupted by {name} before the first step; no checkpoint was written"),
    }
    Ok(ExitCode::from(obs.interrupt.exit_status()))
}

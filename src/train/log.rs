//! The per-epoch metrics log `DIR/metrics.csv`:
//!
//! ```text
//! epoch,unix_time,wall_s,examples_per_s,lr,<loss terms…>,test_error_pct,test_elbo,test_acc_pct,test_nmi[,val_error_pct,val_elbo]
//! ```
//!
//! one row per epoch, written and flushed as the epoch ends: `unix_time` is when (seconds
//! since 1970-01-01 UTC, to the millisecond), `wall_s` how long the epoch's steps took, `lr`
//! its learning rate. The loss-term columns are the model's (`loss` first, then its parts,
//! e.g. `labelled,ce,unlabelled` for M2), as means over the epoch's steps, printed with full
//! precision (a value reads back to the same f64). Error rates and clustering accuracy are in
//! percent, as `ssvae train` and `ssvae eval` print them (the `_pct` columns); ELBOs in nats
//! per example, NMI in [0, 1]. A column is left empty when it has no meaning for the model (no
//! ELBO for a plain classifier, no test error for a clustering model, whose clusters are not
//! classes). The last two columns are there when the run holds out a validation set
//! (`--validation N`). A resumed run keeps the rows up to its checkpoint's epoch and appends.

use super::{EpochReport, Evaluation};
use crate::metrics::percent;
use crate::{Error, Result};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The log's file name in a run directory.
pub const METRICS_FILE: &str = "metrics.csv";

/// The columns before the loss terms.
const LEAD: [&str; 5] = ["epoch", "unix_time", "wall_s", "examples_per_s", "lr"];
/// The columns after the loss terms.
const TAIL: [&str; 4] = ["test_error_pct", "test_elbo", "test_acc_pct", "test_nmi"];
/// The columns of a run with a validation set, last.
const VALIDATION: [&str; 2] = ["val_error_pct", "val_elbo"];

/// The CSV header for a run whose loss terms are `terms`, with or without a validation set.
pub fn header(terms: &[&str], validation: bool) -> Vec<String> {
    let val: &[&str] = if validation { &VALIDATION } else { &[] };
    LEAD.iter()
        .chain(terms)
        .chain(TAIL.iter())
        .chain(val)
        .map(|s| s.to_string())
        .collect()
}

/// An open `metrics.csv`.
pub struct MetricsLog {
    path: PathBuf,
    /// The header written (None until the first row fixes the loss terms).
    columns: Option<Vec<String>>,
    file: File,
}

impl MetricsLog {
    /// A new, empty log in `run_dir` (an existing one is truncated); the header is written
    /// with the first row, when the model's loss terms are known.
    pub fn create(run_dir: &Path) -> Result<Self> {
        let path = run_dir.join(METRICS_FILE);
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        Ok(MetricsLog {
            path,
            columns: None,
            file,
        })
    }

    /// The log of a run resumed from its checkpoint of `epoch`: rows of later epochs (trained
    /// again after the resume) are dropped, atomically, and new rows are appended. A missing
    /// log starts afresh.
    pub fn resume(run_dir: &Path, epoch: usize) -> Result<Self> {
        let path = run_dir.join(METRICS_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Self::create(run_dir),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let mut lines = text.lines();
        let columns: Option<Vec<String>> = lines
            .next()
            .filter(|h| !h.trim().is_empty())
            .map(|h| h.split(',').map(str::to_string).collect());
        if let Some(c) = &columns {
            if c.first().map(String::as_str) != Some("epoch") {
                return Err(Error::data(&path, "first line is not a metrics.csv header"));
            }
            if !c.starts_with(&LEAD.map(String::from)) {
                return Err(Error::data(
                    &path,
                    format!(
                        "has the columns of an older ssvae ({}; now {}, and error rates in percent); move it aside to resume (a new one is started)",
                        c.join(","),
                        LEAD.join(",")
                    ),
                ));
            }
        }
        let mut kept = String::new();
        if let Some(c) = &columns {
            kept.push_str(&c.join(","));
            kept.push('\n');
        }
        for (i, line) in lines.enumerate() {
            let first = line.split(',').next().unwrap_or("");
            let e: usize = first.parse().map_err(|_| {
                Error::data(
                    &path,
                    format!("line {}: epoch {first:?} is not a number", i + 2),
                )
            })?;
            if e <= epoch {
                kept.push_str(line);
                kept.push('\n');
            }
        }
        if kept != text {
            super::checkpoint::write_atomic(&path, kept.as_bytes())?;
        }
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok(MetricsLog {
            path,
            columns,
            file,
        })
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append `r`'s row (and the header first, for a new log). `show_error`: whether the test
    /// and validation error columns are meaningful (false for clustering models); `val`: the
    /// epoch's evaluation on the validation set, for a run that has one.
    pub fn append(
        &mut self,
        r: &EpochReport,
        show_error: bool,
        val: Option<&Evaluation>,
    ) -> Result<()> {
        let terms: Vec<&str> = r.train.iter().map(|(n, _)| n.as_str()).collect();
        let want = header(&terms, val.is_some());
        let mut out = String::new();
        match &self.columns {
            None => {
                out.push_str(&want.join(","));
                out.push('\n');
                self.columns = Some(want);
            }
            Some(c) if *c != want => {
                return Err(Error::data(
                    &self.path,
                    format!(
                        "has columns {} but this run logs {}",
                        c.join(","),
                        want.join(",")
                    ),
                ))
            }
            Some(_) => {}
        }
        out.push_str(&row(r, show_error, val).join(","));
        out.push('\n');
        self.file
            .write_all(out.as_bytes())
            .and_then(|_| self.file.flush())
            .map_err(|e| Error::io(&self.path, e))
    }
}

/// A value in full precision (shortest round-trip form), or an empty cell.
fn cell(v: Option<f64>) -> String {
    v.map(|x| format!("{x}")).unwrap_or_default()
}

/// Seconds since the Unix epoch, now, to the millisecond (0 on a clock set before 1970).
fn unix_time() -> String {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{:.3}", since.as_secs_f64())
}

/// The cells of `r`'s row.
fn row(r: &EpochReport, show_error: bool, val: Option<&Evaluation>) -> Vec<String> {
    let mut v = vec![
        r.epoch.to_string(),
        unix_time(),
        format!("{:.3}", r.wall_s),
        format!("{:.1}", r.examples_per_s),
        r.lr.to_string(),
    ];
    v.extend(r.train.iter().map(|(_, x)| cell(Some(*x))));
    let err = (show_error && !r.test_error.is_nan()).then_some(r.test_error);
    v.push(cell(err.map(percent)));
    v.push(cell(r.test_neg_elbo.map(|x| -x)));
    v.push(cell(r.test_acc.map(percent)));
    v.push(cell(r.test_nmi));
    if let Some(e) = val {
        v.push(cell(e.error.filter(|_| show_error).map(percent)));
        v.push(cell(e.neg_elbo.map(|x| -x)));
    }
    v
}

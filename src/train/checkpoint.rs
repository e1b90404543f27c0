//! Checkpoints: everything needed to rebuild a trained model, evaluate it, or continue its
//! training exactly where it stopped.
//!
//! A run directory `DIR` holds a checkpoint directory per saved epoch, `DIR/epoch-NNNN/`, and
//! for a run stopped part-way through an epoch (Ctrl-C) one named by its global step,
//! `DIR/step-NNNNNNNN/`:
//!
//! * `model.safetensors`: every tensor of [`nn::state`] (parameters and buffers) by name, f32;
//! * `optimizer.safetensors`: Adam's first and second moments, `m/<param>` and `v/<param>`;
//! * `config.json`: the [`RunConfig`] (model spec, dataset, labels, seed, training config,
//!   epoch and step, which checkpoints to keep) and the model's [`Description`] (ssvae
//!   version, likelihood, activation, the α used, the layer list), which loading ignores (it is
//!   derived from the spec);
//! * `state.json`: Adam's step count, the training RNG, both batchers' positions and, in a
//!   mid-epoch checkpoint, how far the epoch had got ([`EpochProgress`]: its steps, examples
//!   and running loss sums, so that finishing it gives the numbers of an uninterrupted epoch).
//!
//! and a pointer file `DIR/LATEST` naming the newest complete one. Saving is atomic as a whole:
//! the four files are written (and fsynced) into a staging directory `DIR/.tmp-epoch-NNNN/`,
//! which is renamed to `DIR/epoch-NNNN/`; then `LATEST` is replaced by rename; only then are
//! older checkpoint directories removed: all but the [`Retention::keep_last`] newest epoch
//! checkpoints (1 by default) and every mid-epoch one but the one just written. A crash at any
//! point leaves `LATEST` naming a complete checkpoint (or no `LATEST` before the first save),
//! never a mix of two saves. Both safetensors files also carry the format, epoch and step in
//! their metadata (one key, [`METADATA_KEY`], holding JSON), checked on load;
//! `model.safetensors` adds the model spec and description, so that it describes itself
//! without `config.json`. [`save_best`] keeps a copy of the checkpoint with the best
//! validation error in `DIR/best/` (`train --save-best val_error`).
//!
//! Format 2 stores a convolution's bias as PyTorch does, `[C]`; format 1 stored it as
//! `[1, C, 1, 1]` and stamped its safetensors files with a key `ssvae_position`. Format-1
//! checkpoints still load (the bias is the same values).
//!
//! Loading checks every tensor's name, dtype and shape against the model built from the saved
//! spec and that all its values are finite (an error names the tensor; saving refuses a model
//! holding NaN or infinity, so a checkpoint that does is corrupt), and a truncated or corrupt
//! file is an error naming the file.

use super::{EpochProgress, TrainConfig, TrainState, INIT_STREAM};
use crate::data::{Batcher, BatcherState, SemiSupervised};
use crate::models::{self, Description, Model, ModelKind, ModelSpec};
use crate::rng::Rng;
use crate::storage::Storage;
use crate::{nn, Device, Error, Result, Tensor};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The model's tensors.
pub const MODEL_FILE: &str = "model.safetensors";
/// Adam's moments.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// The [`RunConfig`].
pub const CONFIG_FILE: &str = "config.json";
/// Optimiser step count, RNG and batcher positions.
pub const STATE_FILE: &str = "state.json";
/// The pointer to the newest checkpoint directory of a run directory.
pub const LATEST_FILE: &str = "LATEST";
/// The copy of the best checkpoint in a run directory ([`save_best`]).
pub const BEST_DIR: &str = "best";
/// What [`save_best`] records beside the copy: metric, value, epoch.
pub const BEST_FILE: &str = "best.json";
/// Where [`save_best`] stages a new copy.
const BEST_STAGING: &str = ".tmp-best";
/// Where the previous copy waits while [`save_best`] swaps in a new one.
const BEST_OLD: &str = ".old-best";
/// The version written into `config.json` and the safetensors metadata (see the module docs
/// for what changed).
pub const FORMAT_VERSION: u32 = 2;

/// What a run is (config.json): enough to rebuild the model, its data and its training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// [`FORMAT_VERSION`] of the writer.
    pub format: u32,
    pub model: ModelSpec,
    /// The dataset's command-line name (e.g. `mnist`).
    pub dataset: String,
    /// Labelled examples of the semi-supervised split.
    pub labels: usize,
    /// Training examples held out as the validation set (0: none); see [`crate::data::split`](fn@crate::data::split).
    #[serde(default)]
    pub validation: usize,
    /// The run's seed (model initialisation, split, training draws).
    pub seed: u64,
    pub train: TrainConfig,
    /// Completed epochs when saved.
    pub epoch: usize,
    /// Completed optimiser steps when saved.
    pub step: usize,
    /// m1m2 started from a trained M1: the checkpoint directory its M1 weights were copied
    /// from before the first step ([`load_m1_weights`]). A record of where the run came from;
    /// a resume does not read it (the weights are in the run's own checkpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m1_from: Option<PathBuf>,
    /// Steps of epoch `epoch + 1` done when saved, in a checkpoint written part-way through an
    /// epoch (training stopped by Ctrl-C); 0 in one written at an epoch's end.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub steps_into_epoch: usize,
    /// Which checkpoints the run keeps.
    #[serde(default)]
    pub retention: Retention,
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

impl RunConfig {
    /// The epochs the saved run has trained at least one step of: `epoch`, plus the one in
    /// progress in a mid-epoch checkpoint (a resume may not change their learning rate or M1
    /// freezing, or it would not continue the same run).
    pub fn epochs_begun(&self) -> usize {
        self.epoch + usize::from(self.steps_into_epoch > 0)
    }
}

/// Which checkpoints a run keeps (`train --keep-last`, `--save-best`); saved in its config, so
/// that a resumed run goes on keeping them the same way.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Retention {
    /// How many of the newest epoch checkpoints to keep (at least 1: the newest is the one a
    /// resume continues).
    pub keep_last: usize,
    /// Also keep a copy of the checkpoint that scored best on this metric, in `DIR/best/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save_best: Option<BestMetric>,
}

impl Default for Retention {
    /// The newest epoch checkpoint only, no best copy.
    fn default() -> Self {
        Retention {
            keep_last: 1,
            save_best: None,
        }
    }
}

/// A metric that `--save-best` ranks checkpoints by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BestMetric {
    /// The error on the held-out validation set (lower is better; needs `--validation N`).
    ValError,
}

impl BestMetric {
    /// The metric's name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            BestMetric::ValError => "val_error",
        }
    }

    /// Its column in metrics.csv, whose unit [`save_best`] records the value in.
    pub fn column(self) -> &'static str {
        match self {
            BestMetric::ValError => "val_error_pct",
        }
    }
}

impl std::str::FromStr for BestMetric {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "val_error" => Ok(BestMetric::ValError),
            _ => Err(Error::invalid(
                "--save-best",
                format!("unknown metric {s:?} (known: val_error)"),
            )),
        }
    }
}

/// state.json.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StateJson {
    epoch: usize,
    step: usize,
    adam_t: u64,
    /// The training generator's (seed, stream, next block).
    rng: (u64, u32, u64),
    labelled: Option<BatcherState>,
    unlabelled: Option<BatcherState>,
    /// A mid-epoch checkpoint's epoch in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    partial: Option<EpochProgress>,
}

/// The checkpoint directory's name for `epoch`.
pub fn epoch_dir_name(epoch: usize) -> String {
    format!("epoch-{epoch:04}")
}

/// The name of a mid-epoch checkpoint directory, saved after global step `step`.
pub fn step_dir_name(step: usize) -> String {
    format!("step-{step:08}")
}

/// What a checkpoint directory's name says it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CheckpointName {
    /// `epoch-NNNN`: the end of an epoch.
    Epoch(usize),
    /// `step-NNNNNNNN`: part-way through an epoch.
    Step,
}

fn parse_checkpoint_name(name: &str) -> Option<CheckpointName> {
    let digits = |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
    if let Some(n) = name.strip_prefix("epoch-").filter(|n| digits(n)) {
        return n.parse().ok().map(CheckpointName::Epoch);
    }
    name.strip_prefix("step-")
        .filter(|n| digits(n))
        .map(|_| CheckpointName::Step)
}

fn is_checkpoint_name(name: &str) -> bool {
    parse_checkpoint_name(name).is_some()
}

/// Write `bytes` to `path` durably: the file is created, written and fsynced.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

/// Fsync a directory so that renames in it are durable (a no-op where directories cannot be
/// opened, as on Windows).
fn sync_dir(dir: &Path) -> Result<()> {
    if cfg!(unix) {
        File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

/// Replace `path` atomically with `bytes` (a sibling temporary file, fsynced, then renamed); a
/// failure is an error naming `path` and removes the temporary file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid("write_atomic", "path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".tmp-");
    tmp_name.push(name);
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir.filter(|d| !d.is_dir()) {
        return Err(Error::msg(format!(
            "cannot write {}: {} is not a directory",
            path.display(),
            dir.display()
        )));
    }
    let tmp = path.with_file_name(tmp_name);
    // The temporary file is an implementation detail: a failure names `path`, and leaves no
    // temporary file behind.
    let written = write_synced(&tmp, bytes)
        .and_then(|()| fs::rename(&tmp, path).map_err(|e| Error::io(path, e)));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        let why = match e {
            Error::Io { source, .. } => source.to_string(),
            e => e.to_string(),
        };
        return Err(Error::msg(format!(
            "cannot write {}: {why}",
            path.display()
        )));
    }
    if let Some(dir) = dir {
        sync_dir(dir)?;
    }
    Ok(())
}

/// A tensor's values as little-endian bytes.
fn le_bytes(t: &Tensor) -> Result<Vec<u8>> {
    Ok(t.to_vec()?.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// A safetensors file of `tensors` (f32) with `meta` as its metadata.
fn safetensors_bytes(
    tensors: &[(String, Tensor)],
    meta: HashMap<String, String>,
    path: &Path,
) -> Result<Vec<u8>> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, t)| le_bytes(t))
        .collect::<Result<_>>()?;
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, t), b)| {
            TensorView::new(Dtype::F32, t.dims().to_vec(), b)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::data(path, format!("tensor '{name}': {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, Some(meta)).map_err(|e| Error::data(path, e.to_string()))
}

/// The metadata key of both safetensors files, holding a JSON object (format, epoch, step; for
/// the model's file also its spec and description). One key, so that the header's metadata (a
/// hash map) is written in the same order every time and equal checkpoints are equal files.
pub const METADATA_KEY: &str = "ssvae";
/// Format 1's metadata key, holding `epoch=E,step=S`.
const V1_POSITION_KEY: &str = "ssvae_position";

/// The metadata of a safetensors file: where in training it was saved, and for the model's
/// file what the model is.
#[derive(Serialize)]
struct Stamp<'a> {
    format: u32,
    epoch: usize,
    step: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a ModelSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a Description>,
}

/// The part of a [`Stamp`] that loading checks.
#[derive(Deserialize)]
struct Position {
    epoch: usize,
    step: usize,
}

fn stamp_meta(stamp: &Stamp, path: &Path) -> Result<HashMap<String, String>> {
    let json = serde_json::to_string(stamp).map_err(|e| Error::data(path, e.to_string()))?;
    Ok(HashMap::from([(METADATA_KEY.to_string(), json)]))
}

/// `config.json`: the run's config, and the model's description after it.
#[derive(Serialize)]
struct ConfigFile<'a> {
    #[serde(flatten)]
    run: &'a RunConfig,
    description: &'a Description,
}

/// Save a checkpoint of `model` and `state` under `run_dir` (created if needed) and point
/// `run_dir/LATEST` at it; `config.epoch`, `config.step` and `config.steps_into_epoch` are
/// taken from `state`. A state part-way through an epoch ([`TrainState::partial`]) gives a
/// mid-epoch checkpoint, `step-NNNNNNNN`. Then older checkpoints go, as
/// `config.retention` says. Returns the checkpoint directory.
///
/// Refuses (with [`Error::NonFinite`] naming the tensor) to save a model or Adam moments
/// holding NaN or infinity, so that the checkpoint on disk stays the last good one. A save
/// that fails part-way (a full disk, say) removes its staging directory, leaving the run
/// directory as it was.
pub fn save(
    run_dir: &Path,
    config: &RunConfig,
    model: &dyn Model,
    state: &TrainState,
) -> Result<PathBuf> {
    let tensors = nn::state(model, "");
    let params = nn::parameters(model, "");
    let moments = state.opt.moments();
    if params.len() != moments.len() {
        return Err(Error::invalid(
            "checkpoint",
            format!(
                "the optimiser holds {} moment pairs for {} parameters",
                moments.len(),
                params.len()
            ),
        ));
    }
    let mut opt_tensors = Vec::with_capacity(2 * params.len());
    for ((pname, _), (m, v)) in params.iter().zip(moments) {
        opt_tensors.push((format!("m/{pname}"), m.clone()));
        opt_tensors.push((format!("v/{pname}"), v.clone()));
    }
    // Loading refuses non-finite tensors, so neither may be saved.
    for (kind, (name, t)) in tensors
        .iter()
        .map(|t| ("model tensor", t))
        .chain(opt_tensors.iter().map(|t| ("Adam's moment", t)))
    {
        if let Some((_, v)) = first_non_finite(&t.to_vec()?) {
            return Err(Error::NonFinite {
                what: format!(
                    "{kind} '{name}' holds {v} after epoch {}; the checkpoint was not written",
                    state.epoch
                ),
            });
        }
    }
    fs::create_dir_all(run_dir).map_err(|e| Error::io(run_dir, e))?;
    let name = match &state.partial {
        Some(_) => step_dir_name(state.step),
        None => epoch_dir_name(state.epoch),
    };
    let final_dir = run_dir.join(&name);
    let staging = run_dir.join(format!(".tmp-{name}"));
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
    }
    let published = (|| {
        fs::create_dir(&staging).map_err(|e| Error::io(&staging, e))?;
        let description = models::describe(&config.model, model);
        let mut stamp = Stamp {
            format: FORMAT_VERSION,
            epoch: state.epoch,
            step: state.step,
            model: Some(&config.model),
            description: Some(&description),
        };
        let p = staging.join(MODEL_FILE);
        write_synced(
            &p,
            &safetensors_bytes(&tensors, stamp_meta(&stamp, &p)?, &p)?,
        )?;
        (stamp.model, stamp.description) = (None, None);
        let p = staging.join(OPTIMIZER_FILE);
        write_synced(
            &p,
            &safetensors_bytes(&opt_tensors, stamp_meta(&stamp, &p)?, &p)?,
        )?;

        let mut cfg = config.clone();
        cfg.format = FORMAT_VERSION;
        cfg.epoch = state.epoch;
        cfg.step = state.step;
        cfg.steps_into_epoch = state.partial.as_ref().map_or(0, |p| p.steps_done);
        let p = staging.join(CONFIG_FILE);
        let file = ConfigFile {
            run: &cfg,
            description: &description,
        };
        write_synced(&p, &to_json(&file, &p)?)?;

        let st = StateJson {
            epoch: state.epoch,
            step: state.step,
            adam_t: state.opt.t,
            rng: state.rng.state(),
            labelled: state.labelled.as_ref().map(Batcher::state),
            unlabelled: state.unlabelled.as_ref().map(Batcher::state),
            partial: state.partial.clone(),
        };
        let p = staging.join(STATE_FILE);
        // Compact: the batchers' orders are long lists of indices.
        let bytes = serde_json::to_vec(&st).map_err(|e| Error::data(&p, e.to_string()))?;
        write_synced(&p, &bytes)?;
        sync_dir(&staging)?;

        // Publish: staging → epoch-NNNN.
        let latest = read_latest(run_dir)?;
        if final_dir.exists() {
            if latest.as_deref() == Some(name.as_str()) {
                return Err(Error::invalid(
                    "checkpoint",
                    format!(
                        "{} is the latest checkpoint already; not replacing it in place",
                        final_dir.display()
                    ),
                ));
            }
            // An unreferenced leftover of an interrupted save.
            fs::remove_dir_all(&final_dir).map_err(|e| Error::io(&final_dir, e))?;
        }
        fs::rename(&staging, &final_dir).map_err(|e| Error::io(&final_dir, e))
    })();
    if let Err(e) = published {
        // A failed save (a full disk, say) leaves no half-written staging directory behind;
        // the error that stopped it is the one to report, so a failure to remove is not.
        let _ = fs::remove_dir_all(&staging);
        return Err(e);
    }
    sync_dir(run_dir)?;
    // Then LATEST → epoch-NNNN.
    write_atomic(&run_dir.join(LATEST_FILE), format!("{name}\n").as_bytes())?;

    // Only now drop the older checkpoints and any staging leftovers.
    prune(run_dir, &name, state.epoch, config.retention.keep_last)?;
    Ok(final_dir)
}

/// Remove the checkpoints of `run_dir` that are not to be kept now that `current` is the newest
/// (saved with `epoch` epochs complete): every mid-epoch checkpoint but `current`, staging
/// leftovers, epoch checkpoints after `epoch` (left by a run resumed from an older checkpoint,
/// whose later epochs it trains again) and all but the `keep_last` newest of the others.
fn prune(run_dir: &Path, current: &str, epoch: usize, keep_last: usize) -> Result<()> {
    let mut stale = Vec::new();
    let mut epochs = Vec::new();
    for entry in fs::read_dir(run_dir).map_err(|e| Error::io(run_dir, e))? {
        let entry = entry.map_err(|e| Error::io(run_dir, e))?;
        if !entry.path().is_dir() {
            continue;
        }
        let fname = entry.file_name();
        let Some(s) = fname.to_str() else { continue };
        match parse_checkpoint_name(s) {
            _ if s == current => {}
            Some(CheckpointName::Epoch(e)) if e <= epoch => epochs.push((e, entry.path())),
            Some(_) => stale.push(entry.path()),
            None if s.strip_prefix(".tmp-").is_some_and(is_checkpoint_name) => {
                stale.push(entry.path())
            }
            None => {}
        }
    }
    // Newest first; `current` counts among the kept when it is an epoch checkpoint.
    epochs.sort_by_key(|(e, _)| std::cmp::Reverse(*e));
    let kept_besides_current = match parse_checkpoint_name(current) {
        Some(CheckpointName::Epoch(_)) => keep_last.saturating_sub(1),
        _ => keep_last.max(1),
    };
    stale.extend(
        epochs
            .into_iter()
            .skip(kept_besides_current)
            .map(|(_, p)| p),
    );
    for dir in stale {
        fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    Ok(())
}

/// best.json of `DIR/best/`: what the copy scored, on which metric, when.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct BestJson {
    /// The metrics.csv column of the value ([`BestMetric::column`]).
    metric: String,
    value: f64,
    epoch: usize,
}

/// Keep a copy of checkpoint `ckpt` (of `run_dir`, just saved) in `run_dir/best/` when its
/// `value` of `metric` (in the unit of the metric's metrics.csv column; lower is better) beats
/// the copy there, or there is none; a NaN never does, and a tie keeps the earlier copy. The
/// copy and a `best.json` with metric, value and epoch are staged in `run_dir/.tmp-best/`, then
/// swapped in by two renames (the old copy moves to `run_dir/.old-best/` in between, which the
/// next call puts back should a crash have struck there). `run_dir/best/` is a checkpoint
/// directory like any other (`ssvae eval DIR/best`). Returns whether it was copied.
pub fn save_best(run_dir: &Path, ckpt: &Path, metric: BestMetric, value: f64) -> Result<bool> {
    let best = run_dir.join(BEST_DIR);
    let old = run_dir.join(BEST_OLD);
    if !best.exists() && old.is_dir() {
        fs::rename(&old, &best).map_err(|e| Error::io(&best, e))?;
    }
    let bp = best.join(BEST_FILE);
    if bp.is_file() {
        let held: BestJson = read_json(&bp)?;
        if held.metric != metric.column() {
            return Err(Error::data(
                &bp,
                format!(
                    "ranks by {} but this run keeps the best by {}",
                    held.metric,
                    metric.column()
                ),
            ));
        }
        // Only a strictly lower value replaces the copy (never a NaN, which compares to nothing).
        if value.partial_cmp(&held.value) != Some(std::cmp::Ordering::Less) {
            return Ok(false);
        }
    } else if value.is_nan() {
        return Ok(false);
    }
    let staging = run_dir.join(BEST_STAGING);
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
    }
    let staged = (|| {
        fs::create_dir(&staging).map_err(|e| Error::io(&staging, e))?;
        for f in [MODEL_FILE, OPTIMIZER_FILE, CONFIG_FILE, STATE_FILE] {
            let (src, dst) = (ckpt.join(f), staging.join(f));
            fs::copy(&src, &dst).map_err(|e| Error::io(&dst, e))?;
            File::open(&dst)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(&dst, e))?;
        }
        let epoch = load_config(ckpt)?.epoch;
        let record = BestJson {
            metric: metric.column().to_string(),
            value,
            epoch,
        };
        let p = staging.join(BEST_FILE);
        write_synced(&p, &to_json(&record, &p)?)?;
        sync_dir(&staging)
    })();
    if let Err(e) = staged {
        let _ = fs::remove_dir_all(&staging);
        return Err(e);
    }
    if best.exists() {
        if old.exists() {
            fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
        }
        fs::rename(&best, &old).map_err(|e| Error::io(&best, e))?;
    }
    fs::rename(&staging, &best).map_err(|e| Error::io(&best, e))?;
    sync_dir(run_dir)?;
    if old.exists() {
        fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    }
    Ok(true)
}

/// Remove every checkpoint of `run_dir` (the `LATEST` pointer first, then the checkpoint,
/// best-copy and staging directories): the start of a run that overwrites an old one.
pub fn clear(run_dir: &Path) -> Result<()> {
    let latest = run_dir.join(LATEST_FILE);
    if latest.exists() {
        fs::remove_file(&latest).map_err(|e| Error::io(&latest, e))?;
    }
    if !run_dir.is_dir() {
        return Ok(());
    }
    for entry in fs::read_dir(run_dir).map_err(|e| Error::io(run_dir, e))? {
        let entry = entry.map_err(|e| Error::io(run_dir, e))?;
        let fname = entry.file_name();
        let Some(s) = fname.to_str() else { continue };
        let ours = is_checkpoint_name(s)
            || s.strip_prefix(".tmp-").is_some_and(is_checkpoint_name)
            || [BEST_DIR, BEST_STAGING, BEST_OLD].contains(&s);
        if ours && entry.path().is_dir() {
            fs::remove_dir_all(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
        }
    }
    Ok(())
}

fn to_json<T: Serialize>(v: &T, path: &Path) -> Result<Vec<u8>> {
    let mut s = serde_json::to_vec_pretty(v).map_err(|e| Error::data(path, e.to_string()))?;
    s.push(b'\n');
    Ok(s)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::data(path, format!("corrupt or truncated JSON: {e}")))
}

/// The name in `run_dir/LATEST`, or None when there is no such file.
fn read_latest(run_dir: &Path) -> Result<Option<String>> {
    let p = run_dir.join(LATEST_FILE);
    match fs::read_to_string(&p) {
        Ok(s) => {
            let name = s.trim().to_string();
            if !is_checkpoint_name(&name) {
                return Err(Error::data(
                    &p,
                    format!("expected a checkpoint name like epoch-0001 or step-00000042, found {name:?}"),
                ));
            }
            Ok(Some(name))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&p, e)),
    }
}

/// Whether `run_dir` holds a checkpoint (a `LATEST` pointer).
pub fn exists(run_dir: &Path) -> bool {
    run_dir.join(LATEST_FILE).is_file()
}

/// The checkpoint directory of `dir`: `dir` itself when it holds a `config.json`, else the one
/// its `LATEST` names.
pub fn resolve(dir: &Path) -> Result<PathBuf> {
    if dir.join(CONFIG_FILE).is_file() {
        return Ok(dir.to_path_buf());
    }
    if !dir.is_dir() {
        return Err(Error::data(dir, "no such directory"));
    }
    match read_latest(dir)? {
        Some(name) => {
            let d = dir.join(&name);
            if !d.join(CONFIG_FILE).is_file() {
                return Err(Error::data(
                    d.join(CONFIG_FILE),
                    format!("{LATEST_FILE} names {name} but its config.json is missing"),
                ));
            }
            Ok(d)
        }
        None => Err(Error::data(
            dir,
            format!("not a checkpoint: neither {CONFIG_FILE} nor {LATEST_FILE} is here"),
        )),
    }
}

/// The [`RunConfig`] of checkpoint directory `ckpt`.
pub fn load_config(ckpt: &Path) -> Result<RunConfig> {
    let p = ckpt.join(CONFIG_FILE);
    let cfg: RunConfig = read_json(&p)?;
    if cfg.format > FORMAT_VERSION {
        return Err(Error::data(
            &p,
            format!(
                "checkpoint format {} is newer than this build's {FORMAT_VERSION}",
                cfg.format
            ),
        ));
    }
    Ok(cfg)
}

/// The safetensors file at `path`, read whole.
fn read_file(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| Error::io(path, e))
}

fn parse_safetensors<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes).map_err(|e| {
        Error::data(
            path,
            format!(
                "corrupt or truncated safetensors file ({} bytes): {e}",
                bytes.len()
            ),
        )
    })
}

/// Check that `path`'s metadata records `epoch` and `step` (a file of another save otherwise),
/// in format 2's [`METADATA_KEY`] or format 1's `ssvae_position`.
fn check_position(path: &Path, bytes: &[u8], epoch: usize, step: usize) -> Result<()> {
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| Error::data(path, format!("corrupt or truncated safetensors file: {e}")))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let stamped = match (meta.get(METADATA_KEY), meta.get(V1_POSITION_KEY)) {
        (Some(json), _) => serde_json::from_str::<Position>(json)
            .ok()
            .map(|p| (p.epoch, p.step)),
        (None, Some(v1)) => v1
            .strip_prefix("epoch=")
            .and_then(|r| r.split_once(",step="))
            .and_then(|(e, s)| Some((e.parse().ok()?, s.parse().ok()?))),
        (None, None) => None,
    };
    match stamped {
        Some(p) if p == (epoch, step) => Ok(()),
        Some((e, s)) => Err(Error::data(
            path,
            format!(
                "stamped epoch {e}, step {s} but {CONFIG_FILE} says epoch {epoch}, step {step} (files of different saves)"
            ),
        )),
        None => Err(Error::data(
            path,
            format!(
                "its metadata holds no readable '{METADATA_KEY}' stamp of epoch and step (not a checkpoint file of ssvae, or a corrupt one)"
            ),
        )),
    }
}

/// The first value of `v` that is NaN or infinite, with its index.
fn first_non_finite(v: &[f32]) -> Option<(usize, f32)> {
    v.iter().copied().enumerate().find(|(_, x)| !x.is_finite())
}

/// Copy the f32 tensor `name` of `st` into `dst`, checking dtype, shape and that every value
/// is finite (a NaN weight would otherwise evaluate to plausible numbers).
fn copy_tensor(path: &Path, st: &SafeTensors, name: &str, dst: &Tensor) -> Result<()> {
    let view = st.tensor(name).map_err(|_| {
        Error::data(
            path,
            format!("tensor '{name}' (shape {:?}) is missing", dst.dims()),
        )
    })?;
    if view.dtype() != Dtype::F32 {
        return Err(Error::data(
            path,
            format!("tensor '{name}' is {:?}, expected F32", view.dtype()),
        ));
    }
    // A conv bias of a format-1 checkpoint, [1, C, 1, 1], holds the values of today's [C].
    let v1_conv_bias = matches!(view.shape(), [1, c, 1, 1] if dst.dims() == [*c]);
    if view.shape() != dst.dims() && !v1_conv_bias {
        return Err(Error::data(
            path,
            format!(
                "tensor '{name}' has shape {:?} but the model's is {:?}",
                view.shape(),
                dst.dims()
            ),
        ));
    }
    let v: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if let Some((i, x)) = first_non_finite(&v) {
        return Err(Error::data(
            path,
            format!(
                "tensor '{name}' holds {x} at index {i} (of {}): a checkpoint holds finite numbers only, so this file is corrupt or was not written by ssvae",
                v.len()
            ),
        ));
    }
    let s = Storage::from_slice(&v, dst.device())?;
    *dst.storage_mut() = s;
    Ok(())
}

/// Reject tensors of the file that the model does not have.
fn check_no_extra(path: &Path, st: &SafeTensors, expected: &[String]) -> Result<()> {
    let mut extra: Vec<&str> = st
        .names()
        .into_iter()
        .filter(|n| !expected.iter().any(|e| e == n))
        .collect();
    extra.sort_unstable();
    match extra.first() {
        None => Ok(()),
        Some(first) => Err(Error::data(
            path,
            format!(
                "tensor '{first}' is not in the model ({} unexpected tensor(s))",
                extra.len()
            ),
        )),
    }
}

/// Overwrite `model`'s tensors with those of `ckpt/model.safetensors` (every name and shape
/// must match, no tensor may be missing or extra).
pub fn load_weights(ckpt: &Path, model: &dyn Model) -> Result<()> {
    let path = ckpt.join(MODEL_FILE);
    let bytes = read_file(&path)?;
    let st = parse_safetensors(&path, &bytes)?;
    let tensors = nn::state(model, "");
    let names: Vec<String> = tensors.iter().map(|(n, _)| n.clone()).collect();
    check_no_extra(&path, &st, &names)?;
    for (name, t) in &tensors {
        copy_tensor(&path, &st, name, t)?;
    }
    Ok(())
}

/// Build the model of the checkpoint in `dir` (a run directory or a checkpoint directory) on
/// `device` and load its weights. Returns the checkpoint directory, its config and the model.
pub fn load_model(dir: &Path, device: Device) -> Result<(PathBuf, RunConfig, Box<dyn Model>)> {
    let ckpt = resolve(dir)?;
    let cfg = load_config(&ckpt)?;
    let model = build_model(&ckpt, &cfg, device)?;
    Ok((ckpt, cfg, model))
}

/// The model `cfg` describes, on `device`, with the weights saved in checkpoint directory
/// `ckpt`. `cfg` is the checkpoint's config or one edited by a resume in what does not change
/// the parameters (e.g. [`ModelSpec::freeze_m1_after`](crate::models::ModelSpec)).
pub fn build_model(ckpt: &Path, cfg: &RunConfig, device: Device) -> Result<Box<dyn Model>> {
    let mut rng = Rng::new(cfg.seed, INIT_STREAM);
    let model = models::build(&cfg.model, &mut rng, device)?;
    let path = ckpt.join(MODEL_FILE);
    check_position(&path, &read_file(&path)?, cfg.epoch, cfg.step)?;
    load_weights(ckpt, model.as_ref())?;
    Ok(model)
}

/// Where the VAE that M1+M2 stacks on sits among the tensors of each model that has one: the
/// whole of a `vae`, `vae.*` of an `m1`, `m1.*` of an `m1m2`.
fn m1_prefix(kind: ModelKind) -> Option<&'static str> {
    match kind {
        ModelKind::Vae => Some(""),
        ModelKind::M1 => Some("vae."),
        ModelKind::M1M2 => Some("m1."),
        _ => None,
    }
}

/// Start an M1+M2 model from a trained M1, the paper's protocol (M1 trained to convergence
/// first, then M2 on its frozen features): copy the VAE of the checkpoint in `dir` (a run or
/// checkpoint directory of a `vae`, `m1` or `m1m2` run) into `model`'s M1 (its `m1.*`
/// tensors), which `spec` describes and which was trained on `dataset`. The source must be a
/// VAE of the same architecture, input, width and latent size, trained on the same dataset;
/// anything else is refused naming the difference. Returns the checkpoint directory read.
pub fn load_m1_weights(
    dir: &Path,
    spec: &ModelSpec,
    dataset: &str,
    model: &dyn Model,
) -> Result<PathBuf> {
    const FLAG: &str = "--m1-from";
    if spec.kind != ModelKind::M1M2 {
        return Err(Error::invalid(
            FLAG,
            format!("applies to m1m2 only, not to {}", spec.kind),
        ));
    }
    let ckpt = resolve(dir)?;
    let src = load_config(&ckpt)?;
    let prefix = m1_prefix(src.model.kind).ok_or_else(|| {
        Error::invalid(
            FLAG,
            format!(
                "{} holds a model of kind {}; M1 comes from a vae, m1 or m1m2 run",
                ckpt.display(),
                src.model.kind
            ),
        )
    })?;
    let width = |s: &ModelSpec| models::arch::trunk_width(s.arch, s.hidden);
    let differences: Vec<String> = [
        (src.dataset != dataset).then(|| format!("dataset {} (this run: {dataset})", src.dataset)),
        (src.model.arch != spec.arch).then(|| {
            format!(
                "arch {} (this run: {})",
                src.model.arch.as_str(),
                spec.arch.as_str()
            )
        }),
        (src.model.input != spec.input)
            .then(|| format!("input {:?} (this run: {:?})", src.model.input, spec.input)),
        (width(&src.model) != width(spec)).then(|| {
            format!(
                "hidden width {} (this run: {})",
                width(&src.model),
                width(spec)
            )
        }),
        (src.model.z_dim != spec.z_dim)
            .then(|| format!("z dim {} (this run: {})", src.model.z_dim, spec.z_dim)),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !differences.is_empty() {
        return Err(Error::invalid(
            FLAG,
            format!(
                "the M1 of {} differs from this run's: {}",
                ckpt.display(),
                differences.join(", ")
            ),
        ));
    }
    let path = ckpt.join(MODEL_FILE);
    let bytes = read_file(&path)?;
    check_position(&path, &bytes, src.epoch, src.step)?;
    let st = parse_safetensors(&path, &bytes)?;
    for (name, t) in nn::state(model, "") {
        if let Some(rest) = name.strip_prefix("m1.") {
            copy_tensor(&path, &st, &format!("{prefix}{rest}"), &t)?;
        }
    }
    Ok(ckpt)
}

/// The training state saved in checkpoint directory `ckpt` for `model` (whose weights were
/// loaded from it), the run's `split` and training config `train`: Adam over `model`'s
/// parameters with the saved moments and step count, and the saved RNG and batchers.
pub fn load_train_state(
    ckpt: &Path,
    model: &dyn Model,
    split: &SemiSupervised,
    train: &TrainConfig,
) -> Result<TrainState> {
    let cfg = load_config(ckpt)?;
    let sp = ckpt.join(STATE_FILE);
    let st: StateJson = read_json(&sp)?;
    let steps_into_epoch = st.partial.as_ref().map_or(0, |p| p.steps_done);
    if st.epoch != cfg.epoch || st.step != cfg.step || steps_into_epoch != cfg.steps_into_epoch {
        return Err(Error::data(
            &sp,
            format!(
                "written at epoch {}, step {} ({steps_into_epoch} into the next epoch) but {CONFIG_FILE} says epoch {}, step {} ({} into the next epoch; files of different saves)",
                st.epoch, st.step, cfg.epoch, cfg.step, cfg.steps_into_epoch
            ),
        ));
    }
    let mut state = TrainState::new(model, split, train)?;
    if let Some(p) = &st.partial {
        let steps = state.steps_per_epoch(train);
        if p.steps_done == 0 || p.steps_done > steps {
            return Err(Error::data(
                &sp,
                format!(
                    "an epoch stopped after {} of its {steps} steps cannot be resumed",
                    p.steps_done
                ),
            ));
        }
    }

    let path = ckpt.join(OPTIMIZER_FILE);
    let bytes = read_file(&path)?;
    check_position(&path, &bytes, cfg.epoch, cfg.step)?;
    let file = parse_safetensors(&path, &bytes)?;
    let params = nn::parameters(model, "");
    let names: Vec<String> = params
        .iter()
        .flat_map(|(n, _)| [format!("m/{n}"), format!("v/{n}")])
        .collect();
    check_no_extra(&path, &file, &names)?;
    let mut moments = Vec::with_capacity(params.len());
    for (name, p) in &params {
        let m = Tensor::zeros(p.shape().clone(), p.device())?;
        let v = Tensor::zeros(p.shape().clone(), p.device())?;
        copy_tensor(&path, &file, &format!("m/{name}"), &m)?;
        copy_tensor(&path, &file, &format!("v/{name}"), &v)?;
        moments.push((m, v));
    }
    state.opt.load_state(st.adam_t, &moments)?;

    let (seed, stream, next) = st.rng;
    state.rng = Rng::from_state(seed, stream, next);
    let restore = |saved: Option<BatcherState>,
                   fresh: &Option<Batcher>,
                   indices: &[usize],
                   batch: usize,
                   what: &str|
     -> Result<Option<Batcher>> {
        match (saved, fresh) {
            (Some(s), Some(_)) => Batcher::from_state(indices, batch, s)
                .map(Some)
                .map_err(|e| Error::data(&sp, format!("{what} batcher: {e}"))),
            (None, None) => Ok(None),
            _ => Err(Error::data(
                &sp,
                format!("the {what} batcher does not match this run's split and config"),
            )),
        }
    };
    state.labelled = restore(
        st.labelled,
        &state.labelled,
        &split.labelled,
        train.labelled_batch,
        "labelled",
    )?;
    state.unlabelled = restore(
        st.unlabelled,
        &state.unlabelled,
        &split.unlabelled,
        train.batch_size,
        "unlabelled",
    )?;
    state.epoch = st.epoch;
    state.step = st.step;
    state.partial = st.partial;
    Ok(state)
}

//! The training loop: minibatches of labelled and unlabelled examples (optionally shifted at
//! random, [`TrainConfig::augment_shift`], and binarised, [`TrainConfig::binarize`]), one Adam step per minibatch, an evaluation on the
//! test set after each epoch. It knows models only through [`Model`]; NaN or infinity in any
//! loss term stops training with the step and term named, and so does a non-finite test ELBO
//! (the epoch is then not reported, so not checkpointed).
//!
//! Everything that changes during training apart from the model's own tensors (Adam's moments
//! and step count, the training RNG, both batchers' positions, the epoch and step counters,
//! and, for a run stopped part-way through an epoch, that epoch's running sums) lives in one
//! [`TrainState`], which [`checkpoint`] saves and restores: [`fit_with`] started from a restored
//! state continues exactly as the uninterrupted run would have, also from the middle of an
//! epoch. An [`Observer`] may ask [`fit_with`] to stop at the next step boundary
//! ([`Observer::stop_requested`], what Ctrl-C does in `ssvae train`). [`fit`] is the simple
//! entry point (fresh state, one callback per epoch).

pub mod checkpoint;
pub mod grid;
pub mod log;

use crate::data::{Batcher, Dataset, SemiSupervised};
use crate::models::{Batch, Model, StepContext};
use crate::optim::{Adam, AdamConfig};
use crate::rng::Rng;
use crate::{metrics, nn, no_grad, Device, Error, Result, Tensor};
use std::time::Instant;

/// The Philox stream of model initialisation (seeded with the run's seed).
pub const INIT_STREAM: u32 = 0x1417;
/// The stream of the training loop's draws (reparameterisation noise and the like).
pub const TRAIN_STREAM: u32 = 0x7EA1;
/// The stream of the labelled batcher's shuffles.
pub const LABELLED_STREAM: u32 = 0x1AB;
/// The stream of the unlabelled batcher's shuffles.
pub const UNLABELLED_STREAM: u32 = 0x0B1AB;
/// The stream of evaluation draws (fresh for every evaluation, so evaluations are repeatable).
pub const EVAL_STREAM: u32 = 0xE7A1;

/// How to train.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    /// Unlabelled examples per step.
    pub batch_size: usize,
    /// Labelled examples per step.
    pub labelled_batch: usize,
    /// The base learning rate (of epoch 1).
    pub lr: f32,
    /// Epochs after which the learning rate is multiplied by `lr_gamma`, as PyTorch's
    /// `MultiStepLR`: with milestones `[m]`, epochs 1..=m train at `lr` and epochs m+1… at
    /// `lr·lr_gamma`. Empty: a constant rate. Strictly increasing, each at least 1.
    #[serde(default)]
    pub lr_milestones: Vec<usize>,
    /// The factor of each milestone.
    #[serde(default = "default_lr_gamma")]
    pub lr_gamma: f32,
    pub seed: u64,
    #[serde(with = "device_name")]
    pub device: Device,
    /// Examples per forward pass during evaluation.
    pub eval_batch: usize,
    /// Steps per epoch; by default one pass over the unlabelled pool (or the labelled set when
    /// the model uses labels only).
    pub steps_per_epoch: Option<usize>,
    /// Use the unlabelled pool (false trains on labels alone).
    pub use_unlabelled: bool,
    /// Shift every training image (labelled and unlabelled) by up to this many pixels per axis,
    /// a fresh uniform offset per image and step ([`crate::data::augment::random_shift`],
    /// drawn from the training stream); 0 (the default) trains on the images as they are.
    /// Evaluation never shifts.
    #[serde(default)]
    pub augment_shift: usize,
    /// Dynamic binarisation of the training images (after any shift): each pixel a fresh
    /// Bernoulli draw of its intensity at every step ([`crate::data::augment::binarize`], from
    /// the training stream). Evaluation sees the grey levels.
    #[serde(default)]
    pub binarize: bool,
}

/// The usual step decay: a tenth at each milestone.
pub const DEFAULT_LR_GAMMA: f32 = 0.1;

impl Default for TrainConfig {
    /// The defaults of `ssvae train`, on the CPU: 10 epochs of one pass over the unlabelled
    /// pool in batches of 100 (and 100 labelled examples per step), Adam at 10⁻³ without a
    /// schedule, seed 0, evaluation in chunks of 500, no augmentation. The command line sets
    /// `use_unlabelled: false` for the classifier, which learns from labels alone (an epoch is
    /// then one pass over the labelled set).
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: 100,
            labelled_batch: 100,
            lr: 1e-3,
            lr_milestones: Vec::new(),
            lr_gamma: DEFAULT_LR_GAMMA,
            seed: 0,
            device: Device::Cpu,
            eval_batch: 500,
            steps_per_epoch: None,
            use_unlabelled: true,
            augment_shift: 0,
            binarize: false,
        }
    }
}

fn default_lr_gamma() -> f32 {
    DEFAULT_LR_GAMMA
}

impl TrainConfig {
    /// The learning rate of `epoch` (1-based): `lr·lr_gamma^n`, n the milestones before it.
    pub fn lr_at(&self, epoch: usize) -> f32 {
        let passed = self.lr_milestones.iter().filter(|&&m| m < epoch).count();
        (0..passed).fold(self.lr, |lr, _| lr * self.lr_gamma)
    }

    /// Replace the learning-rate milestones and/or factor (None: keep) of a run that has
    /// trained `done` epochs. The new schedule must give every trained epoch the rate it had,
    /// or continuing would not be the uninterrupted run with that schedule; else an error
    /// naming the first epoch it would change, and `self` is left as it was.
    pub fn reschedule(
        &mut self,
        milestones: Option<Vec<usize>>,
        gamma: Option<f32>,
        done: usize,
    ) -> Result<()> {
        let mut new = self.clone();
        if let Some(m) = milestones {
            new.lr_milestones = m;
        }
        if let Some(g) = gamma {
            new.lr_gamma = g;
        }
        new.check_lr_schedule()?;
        if let Some(e) = (1..=done).find(|&e| new.lr_at(e) != self.lr_at(e)) {
            return Err(Error::invalid(
                "--resume",
                format!(
                    "the new learning-rate schedule changes epoch {e}, already trained (rate {} → {}); milestones may be added or moved only at or after epoch {done}",
                    self.lr_at(e),
                    new.lr_at(e)
                ),
            ));
        }
        *self = new;
        Ok(())
    }

    /// Checks the learning-rate schedule (see [`check_lr_schedule`]).
    pub fn check_lr_schedule(&self) -> Result<()> {
        check_lr_schedule(self.lr, &self.lr_milestones, self.lr_gamma)
    }
}

/// A positive rate and factor, milestones strictly increasing from 1; else an error naming the
/// command-line flag.
pub fn check_lr_schedule(lr: f32, milestones: &[usize], gamma: f32) -> Result<()> {
    for (flag, v) in [("--lr", lr), ("--lr-gamma", gamma)] {
        if !(v.is_finite() && v > 0.0) {
            return Err(Error::invalid(
                flag,
                format!("must be a positive number, not {v}"),
            ));
        }
    }
    if milestones.first() == Some(&0) || milestones.windows(2).any(|w| w[0] >= w[1]) {
        return Err(Error::invalid(
            "--lr-milestones",
            format!("must be epochs ≥ 1 in increasing order, not {milestones:?}"),
        ));
    }
    Ok(())
}

/// A [`Device`] in JSON as its display name, "cpu" or "cuda:N".
mod device_name {
    use crate::Device;
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Device, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&d.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Device, D::Error> {
        let s = String::deserialize(d)?;
        if s == "cpu" {
            return Ok(Device::Cpu);
        }
        s.strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(Device::Cuda)
            .ok_or_else(|| D::Error::custom(format!("unknown device {s:?}")))
    }
}

/// What one epoch measured.
#[derive(Clone, Debug)]
pub struct EpochReport {
    pub epoch: usize,
    pub wall_s: f64,
    pub examples_per_s: f64,
    /// The epoch's learning rate.
    pub lr: f32,
    /// Mean of each loss term over the epoch's steps, in the model's order ("loss" first).
    pub train: Vec<(String, f64)>,
    /// Test error of argmax q(y|x); NaN when the model does not classify.
    pub test_error: f64,
    /// Mean negative ELBO on the test set (nats per example), when the model has one.
    pub test_neg_elbo: Option<f64>,
    /// Clustering accuracy of argmax q(y|x) under the best one-to-one map to the classes.
    pub test_acc: Option<f64>,
    /// Normalised mutual information between argmax q(y|x) and the classes.
    pub test_nmi: Option<f64>,
}

/// What [`evaluate_all`] measures on a dataset; `None` where the model lacks the part.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Error rate of argmax q(y|x).
    pub error: Option<f64>,
    /// Mean negative ELBO (nats per example).
    pub neg_elbo: Option<f64>,
    /// Hungarian clustering accuracy of argmax q(y|x).
    pub acc: Option<f64>,
    /// NMI of argmax q(y|x) against the labels.
    pub nmi: Option<f64>,
    /// argmax q(y|x) per example (empty when the model does not classify), for confusion
    /// matrices and the like.
    pub predictions: Vec<usize>,
    /// The number of classes (or clusters) of q(y|x); 0 when the model does not classify.
    pub clusters: usize,
}

/// Rows `idx` of `ds` as an [n, D] tensor and their labels.
pub fn batch_tensor(ds: &Dataset, idx: &[usize], device: Device) -> Result<(Tensor, Vec<u32>)> {
    let (x, y) = crate::data::gather(ds, idx)?;
    rows_to_tensor(x, y, ds, device)
}

/// Gathered rows (`x`: n records of `ds.dim()` values) and labels as an [n, D] tensor and
/// `u32` labels.
fn rows_to_tensor(
    x: Vec<f32>,
    y: Vec<u8>,
    ds: &Dataset,
    device: Device,
) -> Result<(Tensor, Vec<u32>)> {
    let t = Tensor::from_vec(x, [y.len(), ds.dim()], device)?;
    Ok((t, y.into_iter().map(u32::from).collect()))
}

/// A training batch: rows `idx` of `ds` as in [`batch_tensor`], each image shifted at random
/// by up to `cfg.augment_shift` pixels with offsets drawn from `rng` (no draws when it is 0),
/// then binarised with draws from `rng` if `cfg.binarize`.
fn training_batch(
    ds: &Dataset,
    idx: &[usize],
    cfg: &TrainConfig,
    rng: &mut Rng,
) -> Result<(Tensor, Vec<u32>)> {
    let (mut x, y) = crate::data::gather(ds, idx)?;
    let shape = (ds.channels, ds.height, ds.width);
    crate::data::augment::random_shift(&mut x, shape, cfg.augment_shift, rng)?;
    if cfg.binarize {
        crate::data::augment::binarize(&mut x, rng);
    }
    rows_to_tensor(x, y, ds, cfg.device)
}

/// Test error, mean negative ELBO, clustering ACC and NMI of `model` on `ds` (evaluation mode,
/// no gradients, draws from a fresh [`EVAL_STREAM`] generator so that repeated evaluations of
/// the same weights agree).
pub fn evaluate_all(model: &dyn Model, ds: &Dataset, cfg: &TrainConfig) -> Result<Evaluation> {
    in_eval_mode(model, || evaluate_inner(model, ds, cfg))
}

/// Runs `f` with `model` in evaluation mode and no gradient recording, then puts the model
/// back in training mode (also when `f` fails).
pub fn in_eval_mode<T>(model: &dyn Model, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let _g = no_grad();
    model.set_training(false);
    let out = f();
    model.set_training(true);
    out
}

fn evaluate_inner(model: &dyn Model, ds: &Dataset, cfg: &TrainConfig) -> Result<Evaluation> {
    let mut rng = Rng::new(cfg.seed, EVAL_STREAM);
    let mut pred = Vec::with_capacity(ds.n);
    let mut clusters = 0usize;
    let mut elbo_sum = 0.0f64;
    let all: Vec<usize> = (0..ds.n).collect();
    for chunk in all.chunks(cfg.eval_batch.max(1)) {
        let (x, _) = batch_tensor(ds, chunk, cfg.device)?;
        let (logits, neg_elbo) = match (model.classifies(), model.has_elbo()) {
            (true, true) => {
                let (logits, neg_elbo) = model.classify_and_neg_elbo(&x, &mut rng)?;
                (Some(logits), Some(neg_elbo))
            }
            (true, false) => (Some(model.classify(&x)?), None),
            (false, true) => (None, Some(model.neg_elbo(&x, &mut rng)?)),
            (false, false) => (None, None),
        };
        if let Some(logits) = logits {
            clusters = logits.dim("evaluate", 1)?;
            pred.extend(logits.argmax_rows()?);
        }
        if let Some(neg_elbo) = neg_elbo {
            elbo_sum += neg_elbo.sum_all()?.to_scalar()? as f64;
        }
    }
    let (error, acc, nmi) = if model.classifies() && ds.n > 0 {
        (
            Some(metrics::error_rate(&pred, &ds.y)?),
            Some(metrics::hungarian_accuracy(&pred, &ds.y, clusters)?),
            Some(metrics::nmi(&pred, &ds.y)?),
        )
    } else {
        (None, None, None)
    };
    let neg_elbo = (model.has_elbo() && ds.n > 0).then(|| elbo_sum / ds.n as f64);
    Ok(Evaluation {
        error,
        neg_elbo,
        acc,
        nmi,
        predictions: pred,
        clusters,
    })
}

/// The activity of each latent unit of `model` on `ds` ([`metrics::active_units`] of the
/// posterior means [`Model::latent_mean`]; evaluation mode, no gradients). Errors: the model
/// has no x-conditioned posterior mean, or `ds` is empty.
pub fn latent_activity(model: &dyn Model, ds: &Dataset, cfg: &TrainConfig) -> Result<Vec<f64>> {
    let (means, dim) = in_eval_mode(model, || {
        let mut means = Vec::new();
        let mut dim = 0;
        let all: Vec<usize> = (0..ds.n).collect();
        for chunk in all.chunks(cfg.eval_batch.max(1)) {
            let (x, _) = batch_tensor(ds, chunk, cfg.device)?;
            let mu = model.latent_mean(&x)?;
            dim = mu.dim("latent_activity", 1)?;
            means.extend(mu.to_vec()?);
        }
        Ok((means, dim))
    })?;
    metrics::active_units(&means, dim)
}

/// Test error of argmax q(y|x) (NaN when the model does not classify), and the mean negative
/// ELBO when the model has one.
pub fn evaluate(model: &dyn Model, ds: &Dataset, cfg: &TrainConfig) -> Result<(f64, Option<f64>)> {
    let e = evaluate_all(model, ds, cfg)?;
    Ok((e.error.unwrap_or(f64::NAN), e.neg_elbo))
}

/// Where an [`iwae_bound`] stands, after a chunk of draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IwaeProgress {
    /// (example, draw) pairs evaluated so far.
    pub draws_done: u128,
    /// (example, draw) pairs in all: examples × K.
    pub draws_total: u128,
    /// Examples whose K draws are all done.
    pub examples_done: usize,
    /// Examples in all.
    pub examples: usize,
    /// Draws per chunk (at most `budget` pairs are alive at once).
    pub chunk: usize,
}

/// The importance-weighted bound (Burda et al., 2016) averaged over `ds`:
/// mean_i log (1/K) Σ_k exp(w_ik) with the model's [`Model::log_weights`], a lower bound on the
/// mean log p(x) that tightens as K grows. The K draws per example are taken in chunks so that
/// at most about `budget` (example, draw) pairs are alive at once, whatever K (memory does not
/// grow with K, time does, linearly); chunks combine exactly by log-sum-exp. `progress` is
/// called after each chunk of draws, and an error it returns (a caller that finds the run
/// would take too long, say) ends the evaluation with that error.
pub fn iwae_bound(
    model: &dyn Model,
    ds: &Dataset,
    k: usize,
    budget: usize,
    seed: u64,
    device: Device,
    mut progress: impl FnMut(&IwaeProgress) -> Result<()>,
) -> Result<f64> {
    if k == 0 {
        return Err(Error::invalid("iwae", "K must be positive"));
    }
    if ds.n == 0 {
        return Err(Error::invalid("iwae", "no examples"));
    }
    let mut rng = Rng::new(seed, EVAL_STREAM ^ 0x1BAE);
    let budget = budget.max(1);
    // Examples per batch, and draws per chunk for each batch.
    let per_batch = (budget / k).clamp(1, 500);
    let k_chunk = k.min(budget);
    let all: Vec<usize> = (0..ds.n).collect();
    let mut total = 0.0f64;
    let mut done = 0usize;
    let mut at = IwaeProgress {
        draws_done: 0,
        draws_total: ds.n as u128 * k as u128,
        examples_done: 0,
        examples: ds.n,
        chunk: k_chunk,
    };
    in_eval_mode(model, || {
        for chunk in all.chunks(per_batch) {
            let (x, _) = batch_tensor(ds, chunk, device)?;
            // Running log Σ exp over the chunks of draws, per example.
            let mut acc = vec![f64::NEG_INFINITY; chunk.len()];
            let mut left = k;
            while left > 0 {
                let kc = left.min(k_chunk);
                let w = model.log_weights(&x, kc, &mut rng)?;
                if w.dims() != [chunk.len(), kc] {
                    return Err(Error::shape(
                        "iwae",
                        w.dims(),
                        &[chunk.len(), kc],
                        "log_weights must return [n, k]",
                    ));
                }
                for (a, row) in acc.iter_mut().zip(w.to_vec()?.chunks(kc)) {
                    for &v in row {
                        *a = log_add_exp(*a, v as f64);
                    }
                }
                left -= kc;
                at.draws_done += (chunk.len() * kc) as u128;
                at.examples_done = done + if left == 0 { chunk.len() } else { 0 };
                progress(&at)?;
            }
            total += acc.iter().map(|a| a - (k as f64).ln()).sum::<f64>();
            done += chunk.len();
        }
        Ok(total / ds.n as f64)
    })
}

/// log(eᵃ + eᵇ) without overflow.
fn log_add_exp(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        hi
    } else {
        hi + (lo - hi).exp().ln_1p()
    }
}

/// How far an epoch had got when training stopped part-way through it: what [`fit_with`]
/// needs to finish it with the numbers of an uninterrupted epoch.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochProgress {
    /// Steps of the epoch done (at least 1; all of them when training stopped between the last
    /// step and the epoch's evaluation).
    pub steps_done: usize,
    /// Examples (labelled + unlabelled) seen in those steps.
    pub examples: usize,
    /// Seconds spent on them (the epoch's `wall_s` adds the time after the resume).
    pub wall_s: f64,
    /// The running sum of each loss term over those steps, in the model's order.
    pub sums: Vec<(String, f64)>,
}

/// Everything that changes during training besides the model's tensors; with them it is the
/// whole state of a run (what a checkpoint stores).
pub struct TrainState {
    /// Completed epochs.
    pub epoch: usize,
    /// Completed optimiser steps.
    pub step: usize,
    /// The epoch after `epoch` when training stopped part-way through it (None at an epoch
    /// boundary).
    pub partial: Option<EpochProgress>,
    pub opt: Adam,
    /// The generator of the loss's draws.
    pub rng: Rng,
    /// Batches of the labelled examples (None when there are none).
    pub labelled: Option<Batcher>,
    /// Batches of the unlabelled pool (None when the run does not use it).
    pub unlabelled: Option<Batcher>,
}

impl TrainState {
    /// The state before the first step: Adam with zero moments over `model`'s parameters, fresh
    /// generators seeded from `cfg.seed`, batchers at their first batch.
    pub fn new(model: &dyn Model, split: &SemiSupervised, cfg: &TrainConfig) -> Result<Self> {
        if cfg.batch_size == 0 || cfg.labelled_batch == 0 {
            return Err(Error::invalid("train", "batch sizes must be positive"));
        }
        let params: Vec<Tensor> = nn::parameters(model, "")
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        let opt = Adam::new(
            params,
            AdamConfig {
                lr: cfg.lr,
                ..AdamConfig::default()
            },
        )?;
        let labelled = if split.labelled.is_empty() {
            None
        } else {
            Some(Batcher::new(
                &split.labelled,
                cfg.labelled_batch,
                Rng::new(cfg.seed, LABELLED_STREAM),
            )?)
        };
        let unlabelled = if cfg.use_unlabelled && !split.unlabelled.is_empty() {
            Some(Batcher::new(
                &split.unlabelled,
                cfg.batch_size,
                Rng::new(cfg.seed, UNLABELLED_STREAM),
            )?)
        } else {
            None
        };
        if labelled.is_none() && unlabelled.is_none() {
            return Err(Error::invalid(
                "train",
                "nothing to train on: no labelled examples (--labels 0) and this model does not use the unlabelled pool",
            ));
        }
        Ok(TrainState {
            epoch: 0,
            step: 0,
            partial: None,
            opt,
            rng: Rng::new(cfg.seed, TRAIN_STREAM),
            labelled,
            unlabelled,
        })
    }

    /// Steps in one epoch: `cfg.steps_per_epoch`, else one pass over the unlabelled pool (or
    /// over the labelled set when the pool is not used).
    pub fn steps_per_epoch(&self, cfg: &TrainConfig) -> usize {
        cfg.steps_per_epoch.unwrap_or_else(|| {
            self.unlabelled
                .as_ref()
                .or(self.labelled.as_ref())
                .map_or(0, Batcher::batches_per_epoch)
        })
    }
}

/// Where training stands after a step (for progress bars).
#[derive(Clone, Copy, Debug)]
pub struct StepInfo {
    pub epoch: usize,
    /// Global step count (all epochs).
    pub step: usize,
    /// Steps done in this epoch, 1-based.
    pub step_in_epoch: usize,
    pub steps_per_epoch: usize,
    /// Examples (labelled + unlabelled) seen in this epoch.
    pub examples: usize,
    /// Seconds since the epoch began.
    pub elapsed_s: f64,
}

/// Callbacks of [`fit_with`].
pub trait Observer {
    /// After every optimiser step.
    fn on_step(&mut self, _info: &StepInfo) {}
    /// After every epoch's evaluation, with the state as of the end of the epoch (what a
    /// checkpoint saves). An error stops training.
    fn on_epoch(&mut self, report: &EpochReport, state: &TrainState) -> Result<()>;
    /// Asked after every step and before every epoch: true makes [`fit_with`] return at once,
    /// with [`TrainState::partial`] recording how far the epoch in progress had got (None
    /// when it stops at an epoch boundary). Never, by default.
    fn stop_requested(&mut self) -> bool {
        false
    }
}

/// Train `model` and call `on_epoch` after each epoch (to print, log or checkpoint).
pub fn fit(
    model: &dyn Model,
    train: &Dataset,
    test: &Dataset,
    split: &SemiSupervised,
    cfg: &TrainConfig,
    on_epoch: impl FnMut(&EpochReport) -> Result<()>,
) -> Result<Vec<EpochReport>> {
    struct Adapter<F>(F);
    impl<F: FnMut(&EpochReport) -> Result<()>> Observer for Adapter<F> {
        fn on_epoch(&mut self, report: &EpochReport, _state: &TrainState) -> Result<()> {
            (self.0)(report)
        }
    }
    let mut state = TrainState::new(model, split, cfg)?;
    fit_with(
        model,
        train,
        test,
        split,
        cfg,
        &mut state,
        &mut Adapter(on_epoch),
    )
}

/// Train `model` from `state` (fresh from [`TrainState::new`] or restored from a checkpoint,
/// at an epoch boundary or part-way through an epoch) up to `cfg.epochs` epochs, advancing
/// `state` as it goes. `split` is only checked to match the state's batchers; the batches come
/// from `state`. Returns early, with `state.epoch < cfg.epochs`, when the observer asks it to
/// stop ([`Observer::stop_requested`]).
pub fn fit_with(
    model: &dyn Model,
    train: &Dataset,
    test: &Dataset,
    split: &SemiSupervised,
    cfg: &TrainConfig,
    state: &mut TrainState,
    observer: &mut dyn Observer,
) -> Result<Vec<EpochReport>> {
    if let Some(b) = &state.labelled {
        if b.len() != split.labelled.len() {
            return Err(Error::invalid(
                "train",
                "the training state's labelled batcher does not match the split",
            ));
        }
    }
    cfg.check_lr_schedule()?;
    let shape = (train.channels, train.height, train.width);
    crate::data::augment::check_shift(cfg.augment_shift, shape)?;
    let steps = state.steps_per_epoch(cfg);
    let mut reports = Vec::new();
    model.set_training(true);
    // Batches carry row indices into `train`, which may not be the last fit's training set.
    model.forget_rows();
    // The images are the stored rows unless augmentation changes them.
    let as_stored = cfg.augment_shift == 0 && !cfg.binarize;
    while state.epoch < cfg.epochs {
        let epoch = state.epoch + 1;
        // An epoch stopped part-way goes on from its running sums; otherwise a stop request
        // (one that came during the last evaluation, say) is granted at the epoch boundary.
        let resumed = state.partial.take();
        if resumed.is_none() && observer.stop_requested() {
            break;
        }
        let EpochProgress {
            steps_done,
            mut examples,
            wall_s: wall_before,
            mut sums,
        } = resumed.unwrap_or_default();
        state.opt.config.lr = cfg.lr_at(epoch);
        let t0 = Instant::now();
        let elapsed = || wall_before + t0.elapsed().as_secs_f64();
        for i in steps_done..steps {
            let step = state.step + 1;
            let (x_lab, y_lab, rows_lab) = match state.labelled.as_mut() {
                Some(b) => {
                    let li = b.next_batch().to_vec();
                    examples += li.len();
                    let (x, y) = training_batch(train, &li, cfg, &mut state.rng)?;
                    (Some(x), y, as_stored.then_some(li))
                }
                None => (None, Vec::new(), None),
            };
            let (x_unlab, rows_unlab) = match state.unlabelled.as_mut() {
                Some(b) => {
                    let ui = b.next_batch().to_vec();
                    examples += ui.len();
                    let x = training_batch(train, &ui, cfg, &mut state.rng)?.0;
                    (Some(x), as_stored.then_some(ui))
                }
                None => (None, None),
            };
            let batch = Batch {
                x_lab,
                y_lab,
                x_unlab,
                rows_lab,
                rows_unlab,
            };
            let mut ctx = StepContext {
                epoch,
                epochs: cfg.epochs,
                // Fraction of all steps done, so warm-up schedules move within an epoch too.
                progress: ((epoch - 1) * steps + i) as f32 / (cfg.epochs * steps).max(1) as f32,
                rng: &mut state.rng,
            };
            let terms = model.loss(&batch, &mut ctx)?;
            let loss = terms.loss.to_scalar()?;
            let mut values = vec![("loss".to_string(), loss as f64)];
            for (name, t) in &terms.parts {
                values.push((name.to_string(), t.to_scalar()? as f64));
            }
            // Name the first non-finite part (more telling than the total), else the total.
            let bad = values
                .iter()
                .skip(1)
                .find(|(_, v)| !v.is_finite())
                .or_else(|| values.first().filter(|(_, v)| !v.is_finite()));
            if let Some((name, v)) = bad {
                return Err(Error::NonFinite {
                    what: format!("loss term '{name}' = {v} at step {step} (epoch {epoch})"),
                });
            }
            let grads = terms.loss.backward()?;
            state.opt.step(&grads)?;
            state.step = step;
            if sums.is_empty() {
                sums = values.iter().map(|(n, _)| (n.clone(), 0.0)).collect();
            }
            for (s, (_, v)) in sums.iter_mut().zip(&values) {
                s.1 += v;
            }
            observer.on_step(&StepInfo {
                epoch,
                step,
                step_in_epoch: i + 1,
                steps_per_epoch: steps,
                examples,
                elapsed_s: elapsed(),
            });
            if observer.stop_requested() {
                state.partial = Some(EpochProgress {
                    steps_done: i + 1,
                    examples,
                    wall_s: elapsed(),
                    sums,
                });
                return Ok(reports);
            }
        }
        let wall = elapsed();
        let ev = evaluate_all(model, test, cfg)?;
        // Finite weights give a finite bound; anything else means the model has diverged, and
        // the epoch must not be reported (or checkpointed) as good.
        if let Some(v) = ev.neg_elbo.filter(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: format!(
                    "test ELBO = {} after epoch {epoch} (step {})",
                    -v, state.step
                ),
            });
        }
        let report = EpochReport {
            epoch,
            wall_s: wall,
            examples_per_s: examples as f64 / wall.max(1e-9),
            lr: state.opt.config.lr,
            train: sums
                .into_iter()
                .map(|(n, s)| (n, s / steps.max(1) as f64))
                .collect(),
            test_error: ev.error.unwrap_or(f64::NAN),
            test_neg_elbo: ev.neg_elbo,
            test_acc: ev.acc,
            test_nmi: ev.nmi,
        };
        state.epoch = epoch;
        observer.on_epoch(&report, state)?;
        reports.push(report);
    }
    Ok(reports)
}

//! The training loop: minibatches of labelled and unlabelled examples, one Adam step per
//! minibatch, an evaluation on the test set after each epoch. It knows models only through
//! [`Model`]; NaN or infinity in any loss term stops training with the step and term named.

use crate::data::{Batcher, Dataset, SemiSupervised};
use crate::models::{Batch, Model, StepContext};
use crate::optim::{Adam, AdamConfig};
use crate::rng::Rng;
use crate::{metrics, nn, no_grad, Device, Error, Result, Tensor};
use std::time::Instant;

/// How to train.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub epochs: usize,
    /// Unlabelled examples per step.
    pub batch_size: usize,
    /// Labelled examples per step.
    pub labelled_batch: usize,
    pub lr: f32,
    pub seed: u64,
    pub device: Device,
    /// Examples per forward pass during evaluation.
    pub eval_batch: usize,
    /// Steps per epoch; by default one pass over the unlabelled pool (or the labelled set when
    /// the model uses labels only).
    pub steps_per_epoch: Option<usize>,
    /// Use the unlabelled pool (false trains on labels alone).
    pub use_unlabelled: bool,
}

/// What one epoch measured.
#[derive(Clone, Debug)]
pub struct EpochReport {
    pub epoch: usize,
    pub wall_s: f64,
    pub examples_per_s: f64,
    /// Mean of each loss term over the epoch's steps, in the model's order ("loss" first).
    pub train: Vec<(String, f64)>,
    pub test_error: f64,
    /// Mean negative ELBO on the test set (nats per example), when the model has one.
    pub test_neg_elbo: Option<f64>,
}

/// Rows `idx` of `ds` as an [n, D] tensor and their labels.
pub fn batch_tensor(ds: &Dataset, idx: &[usize], device: Device) -> Result<(Tensor, Vec<u32>)> {
    let (x, y) = crate::data::gather(ds, idx)?;
    let t = Tensor::from_vec(x, [idx.len(), ds.dim()], device)?;
    Ok((t, y.into_iter().map(u32::from).collect()))
}

/// Test error of argmax q(y|x), and the mean negative ELBO when the model has one.
pub fn evaluate(model: &dyn Model, ds: &Dataset, cfg: &TrainConfig) -> Result<(f64, Option<f64>)> {
    let _g = no_grad();
    model.set_training(false);
    let mut rng = Rng::new(cfg.seed, 0xE7A1);
    let mut pred = Vec::with_capacity(ds.n);
    let mut elbo_sum = 0.0f64;
    let all: Vec<usize> = (0..ds.n).collect();
    for chunk in all.chunks(cfg.eval_batch.max(1)) {
        let (x, _) = batch_tensor(ds, chunk, cfg.device)?;
        pred.extend(model.classify(&x)?.argmax_rows()?);
        if model.has_elbo() {
            elbo_sum += model.neg_elbo(&x, &mut rng)?.sum_all()?.to_scalar()? as f64;
        }
    }
    model.set_training(true);
    let err = metrics::error_rate(&pred, &ds.y)?;
    Ok((err, model.has_elbo().then(|| elbo_sum / ds.n as f64)))
}

/// Train `model` and call `on_epoch` after each epoch (to print, log or checkpoint).
pub fn fit(
    model: &dyn Model,
    train: &Dataset,
    test: &Dataset,
    split: &SemiSupervised,
    cfg: &TrainConfig,
    mut on_epoch: impl FnMut(&EpochReport) -> Result<()>,
) -> Result<Vec<EpochReport>> {
    let params: Vec<Tensor> = nn::parameters(model, "")
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    let mut opt = Adam::new(
        params,
        AdamConfig {
            lr: cfg.lr,
            ..AdamConfig::default()
        },
    )?;
    let mut rng = Rng::new(cfg.seed, 0x7EA1);
    let mut lab = Batcher::new(
        &split.labelled,
        cfg.labelled_batch,
        Rng::new(cfg.seed, 0x1AB),
    )?;
    let mut unlab = Batcher::new(
        &split.unlabelled,
        cfg.batch_size,
        Rng::new(cfg.seed, 0x0B1AB),
    )?;
    let steps = cfg.steps_per_epoch.unwrap_or(if cfg.use_unlabelled {
        unlab.batches_per_epoch()
    } else {
        lab.batches_per_epoch()
    });
    let mut reports = Vec::new();
    let mut step = 0usize;
    model.set_training(true);
    for epoch in 1..=cfg.epochs {
        let t0 = Instant::now();
        let mut sums: Vec<(String, f64)> = Vec::new();
        let mut examples = 0usize;
        for _ in 0..steps {
            step += 1;
            let li = lab.next_batch().to_vec();
            let (xl, yl) = batch_tensor(train, &li, cfg.device)?;
            examples += li.len();
            let x_unlab = if cfg.use_unlabelled {
                let ui = unlab.next_batch().to_vec();
                examples += ui.len();
                Some(batch_tensor(train, &ui, cfg.device)?.0)
            } else {
                None
            };
            let batch = Batch {
                x_lab: Some(xl),
                y_lab: yl,
                x_unlab,
            };
            let mut ctx = StepContext {
                epoch,
                epochs: cfg.epochs,
                progress: (epoch - 1) as f32 / cfg.epochs.max(1) as f32,
                rng: &mut rng,
            };
            let terms = model.loss(&batch, &mut ctx)?;
            let loss = terms.loss.to_scalar()?;
            let mut values = vec![("loss".to_string(), loss as f64)];
            for (name, t) in &terms.parts {
                values.push((name.to_string(), t.to_scalar()? as f64));
            }
            if let Some((name, v)) = values.iter().find(|(_, v)| !v.is_finite()) {
                return Err(Error::NonFinite {
                    what: format!("loss term '{name}' = {v} at step {step} (epoch {epoch})"),
                });
            }
            let grads = terms.loss.backward()?;
            opt.step(&grads)?;
            if sums.is_empty() {
                sums = values.iter().map(|(n, _)| (n.clone(), 0.0)).collect();
            }
            for (s, (_, v)) in sums.iter_mut().zip(&values) {
                s.1 += v;
            }
        }
        let wall = t0.elapsed().as_secs_f64();
        let (test_error, test_neg_elbo) = evaluate(model, test, cfg)?;
        let report = EpochReport {
            epoch,
            wall_s: wall,
            examples_per_s: examples as f64 / wall.max(1e-9),
            train: sums
                .into_iter()
                .map(|(n, s)| (n, s / steps.max(1) as f64))
                .collect(),
            test_error,
            test_neg_elbo,
        };
        on_epoch(&report)?;
        reports.push(report);
    }
    Ok(reports)
}

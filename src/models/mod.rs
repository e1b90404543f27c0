//! Models: plain structs of modules with a `loss(batch)` that returns the terms to log. The
//! training loop only sees the [`Model`] trait, never which model it runs.

pub mod classifier;
pub mod m2;

pub use classifier::Classifier;
pub use m2::{M2Config, M2};

use crate::nn::{Activation, Module};
use crate::rng::Rng;
use crate::{Device, Error, Result, Tensor};
use std::fmt;
use std::str::FromStr;

/// The models `ssvae train --model` knows.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Vae,
    M1,
    M2,
    M1M2,
    Gmvae,
    Shot,
    Classifier,
}

impl ModelKind {
    /// Every kind, in the order the help lists them.
    pub const ALL: [ModelKind; 7] = [
        ModelKind::Vae,
        ModelKind::M1,
        ModelKind::M2,
        ModelKind::M1M2,
        ModelKind::Gmvae,
        ModelKind::Shot,
        ModelKind::Classifier,
    ];
    /// The command-line name.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Vae => "vae",
            ModelKind::M1 => "m1",
            ModelKind::M2 => "m2",
            ModelKind::M1M2 => "m1m2",
            ModelKind::Gmvae => "gmvae",
            ModelKind::Shot => "shot",
            ModelKind::Classifier => "classifier",
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ModelKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ModelKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = ModelKind::ALL.iter().map(|k| k.as_str()).collect();
                Error::invalid(
                    "--model",
                    format!("unknown model '{s}' (expected one of {})", names.join(", ")),
                )
            })
    }
}

/// Encoder/decoder family.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Mlp,
    Conv,
}

impl Arch {
    /// The command-line name.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Mlp => "mlp",
            Arch::Conv => "conv",
        }
    }
}

impl FromStr for Arch {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mlp" => Ok(Arch::Mlp),
            "conv" => Ok(Arch::Conv),
            _ => Err(Error::invalid(
                "--arch",
                format!("unknown architecture '{s}' (expected mlp or conv)"),
            )),
        }
    }
}

/// Everything needed to rebuild a model (what a checkpoint's config records).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelSpec {
    pub kind: ModelKind,
    pub arch: Arch,
    /// Input (channels, height, width); D = c·h·w.
    pub input: (usize, usize, usize),
    pub classes: usize,
    pub hidden: usize,
    pub z_dim: usize,
    /// Labelled cross-entropy weight; None = the model's default (0.1·N/N_labelled for M2).
    pub alpha: Option<f32>,
    pub n_train: usize,
    pub n_labelled: usize,
    /// Use the fused VAE kernels where the model has them.
    pub fused: bool,
}

/// Build a freshly initialised model from its spec.
pub fn build(spec: &ModelSpec, rng: &mut Rng, device: Device) -> Result<Box<dyn Model>> {
    let (c, h, w) = spec.input;
    let x_dim = c * h * w;
    match (spec.kind, spec.arch) {
        (ModelKind::M2, Arch::Mlp) => Ok(Box::new(M2::new(
            M2Config {
                x_dim,
                classes: spec.classes,
                hidden: spec.hidden,
                z_dim: spec.z_dim,
                alpha: spec
                    .alpha
                    .unwrap_or(0.1 * spec.n_train as f32 / spec.n_labelled.max(1) as f32),
                activation: Activation::Relu,
                fused: spec.fused,
            },
            rng,
            device,
        )?)),
        (ModelKind::Classifier, Arch::Mlp) => Ok(Box::new(Classifier::new(
            x_dim,
            spec.hidden,
            spec.classes,
            Activation::Relu,
            rng,
            device,
        )?)),
        (kind, arch) => Err(Error::invalid(
            "--model",
            format!("{kind} with --arch {} is not built yet", arch.as_str()),
        )),
    }
}

/// One training step's data: a labelled batch and an unlabelled batch (either may be empty).
pub struct Batch {
    /// Labelled inputs [b_l, D].
    pub x_lab: Option<Tensor>,
    /// Their labels.
    pub y_lab: Vec<u32>,
    /// Unlabelled inputs [b_u, D].
    pub x_unlab: Option<Tensor>,
}

/// A scalar loss to minimise and named values to report (already reduced to numbers).
pub struct Terms {
    pub loss: Tensor,
    pub parts: Vec<(&'static str, Tensor)>,
}

/// Where a step sits in training, for schedules (temperatures, warm-ups) and random draws.
pub struct StepContext<'a> {
    pub epoch: usize,
    pub epochs: usize,
    /// Fraction of training done, in [0, 1].
    pub progress: f32,
    pub rng: &'a mut Rng,
}

/// What the training loop, evaluation and checkpoints need from a model.
pub trait Model: Module {
    /// The model's name on the command line.
    fn name(&self) -> &'static str;
    /// The training objective for one step.
    fn loss(&self, batch: &Batch, ctx: &mut StepContext) -> Result<Terms>;
    /// Class logits q(y|x) for inputs [n, D].
    fn classify(&self, x: &Tensor) -> Result<Tensor>;
    /// The negative ELBO per example (an upper bound on −log p(x)) for inputs [n, D].
    fn neg_elbo(&self, x: &Tensor, rng: &mut Rng) -> Result<Tensor>;
    /// Whether [`Model::neg_elbo`] exists (false for a plain classifier).
    fn has_elbo(&self) -> bool {
        true
    }
    /// Whether [`Model::classify`] exists (false for a purely generative model); evaluation
    /// reports test error, clustering ACC and NMI only for models that classify.
    fn classifies(&self) -> bool {
        true
    }
    /// Log importance weights for the importance-weighted bound (Burda et al., 2016):
    /// `[n, k]` entries log p(x, h_j) − log q(h_j | x) for k independent draws h_j ~ q(·|x) of
    /// the latent variables, so that log (1/k) Σ_j exp(w_ij) ≤ log p(x_i) in expectation.
    /// Draws come from `rng`. Not every model has it (the default is an error).
    fn log_weights(&self, _x: &Tensor, _k: usize, _rng: &mut Rng) -> Result<Tensor> {
        Err(unsupported(
            self.name(),
            "importance weights (eval --iwae-k)",
        ))
    }
    /// Bernoulli logits of p(x | y, z) [n, D] for latent codes `z` [n, z_dim] and one-hot
    /// classes `y` [n, K]: the hook of `ssvae sample`. The default is an error.
    fn decode_class(&self, _z: &Tensor, _y: &Tensor) -> Result<Tensor> {
        Err(unsupported(
            self.name(),
            "class-conditional decoding (sample)",
        ))
    }
    /// The mean of q(z | x, y) [n, z_dim] for inputs `x` [n, D] and one-hot `y` [n, K]: the
    /// "style" of `x` given its class, for analogies. The default is an error.
    fn style(&self, _x: &Tensor, _y: &Tensor) -> Result<Tensor> {
        Err(unsupported(
            self.name(),
            "inferring a style z from (x, y) (sample --analogy)",
        ))
    }
}

/// The error of a [`Model`] hook that `model` does not implement.
pub fn unsupported(model: &'static str, what: &str) -> Error {
    Error::invalid(model, format!("{what} is not supported by this model yet"))
}

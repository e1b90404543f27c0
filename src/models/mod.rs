//! Models: plain structs of modules with a `loss(batch)` that returns the terms to log. The
//! training loop only sees the [`Model`] trait, never which model it runs.

pub mod classifier;
pub mod m2;

pub use classifier::Classifier;
pub use m2::{M2Config, M2};

use crate::nn::Module;
use crate::rng::Rng;
use crate::{Result, Tensor};

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
}

//! A plain MLP classifier trained on the labelled examples only: the baseline every
//! semi-supervised model must beat. Same architecture as M2's q(y|x).

use super::{Batch, Model, StepContext, Terms};
use crate::nn::{join, Activation, Init, Linear, Module};
use crate::rng::Rng;
use crate::{Device, Error, Result, Tensor};

/// x → hidden → K logits.
pub struct Classifier {
    hidden: Linear,
    out: Linear,
    activation: Activation,
}

impl Classifier {
    /// A freshly initialised classifier.
    pub fn new(
        x_dim: usize,
        hidden: usize,
        classes: usize,
        activation: Activation,
        rng: &mut Rng,
        device: Device,
    ) -> Result<Self> {
        Ok(Classifier {
            hidden: Linear::new(x_dim, hidden, Init::KaimingUniform, rng, device)?,
            out: Linear::new(hidden, classes, Init::KaimingUniform, rng, device)?,
            activation,
        })
    }
}

impl Module for Classifier {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.out
            .forward(&self.activation.apply(&self.hidden.forward(x)?)?)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, bool)) {
        self.hidden.visit(&join(prefix, "hidden"), f);
        self.out.visit(&join(prefix, "out"), f);
    }
}

impl Model for Classifier {
    fn name(&self) -> &'static str {
        "classifier"
    }
    fn loss(&self, batch: &Batch, _ctx: &mut StepContext) -> Result<Terms> {
        let x = batch
            .x_lab
            .as_ref()
            .ok_or_else(|| Error::invalid("classifier", "needs labelled data"))?;
        let ce = self.forward(x)?.cross_entropy_labels(&batch.y_lab)?.mean_all()?;
        Ok(Terms {
            loss: ce.clone(),
            parts: vec![("ce", ce)],
        })
    }
    fn classify(&self, x: &Tensor) -> Result<Tensor> {
        self.forward(x)
    }
    fn has_elbo(&self) -> bool {
        false
    }
    fn neg_elbo(&self, _x: &Tensor, _rng: &mut Rng) -> Result<Tensor> {
        Err(Error::invalid("classifier", "a classifier has no ELBO"))
    }
}

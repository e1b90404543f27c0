//! A classifier trained on the labelled examples only: the baseline every semi-supervised model
//! must beat. It is q(y|x) of the other models on its own: the `--arch` encoder trunk (for
//! `mlp` one hidden layer of ReLU units, as M2's q(y|x); for `conv` the benchmark conv trunk),
//! then Linear(H→K).

use super::arch::{encoder, Encoder};
use super::{Arch, Batch, Model, StepContext, Terms};
use crate::nn::{join, Init, Linear, Module, Role};
use crate::rng::Rng;
use crate::{Device, Error, Result, Tensor};

/// x → trunk → h → K logits.
pub struct Classifier {
    pub trunk: Encoder,
    pub out: Linear,
    x_dim: usize,
}

impl Classifier {
    /// A freshly initialised classifier on the `arch` trunk of width `hidden`.
    pub fn new(
        arch: Arch,
        input: (usize, usize, usize),
        hidden: usize,
        classes: usize,
        rng: &mut Rng,
        device: Device,
    ) -> Result<Self> {
        let trunk = encoder(arch, input, hidden, 1, rng, device)?;
        let x_dim = input.0 * input.1 * input.2;
        let out = Linear::new(
            trunk.out_dim(x_dim),
            classes,
            Init::KaimingUniform,
            rng,
            device,
        )?;
        Ok(Classifier { trunk, out, x_dim })
    }
}

impl Module for Classifier {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, d) = x.dims2("classifier")?;
        if d != self.x_dim {
            return Err(Error::shape(
                "classifier",
                x.dims(),
                &[self.x_dim],
                "input width differs from the model's",
            ));
        }
        self.out.forward(&self.trunk.forward(x)?)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, Role)) {
        self.trunk.visit(&join(prefix, "trunk"), f);
        self.out.visit(&join(prefix, "out"), f);
    }
}

impl Model for Classifier {
    fn name(&self) -> &'static str {
        "classifier"
    }
    fn loss(&self, batch: &Batch, _ctx: &mut StepContext) -> Result<Terms> {
        let x = batch
            .labelled()
            .ok_or_else(|| Error::invalid("classifier", "needs labelled data"))?;
        let ce = self
            .forward(x)?
            .cross_entropy_labels(&batch.y_lab)?
            .mean_all()?;
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

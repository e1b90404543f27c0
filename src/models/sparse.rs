//! The sparse-label VAE of Berkhahn, Keys and Ha (2019), "Augmenting variational autoencoders
//! with sparse labels: a unified framework for unsupervised, semi- and supervised learning":
//! a VAE whose encoder's topmost layer also feeds a classification layer, whose class
//! distribution π(x) = softmax ℓ(x) is concatenated with the resampled latent z as the
//! decoder's input. The classification layer is deterministic (no prior, no KL on it); labels,
//! where there are any, enter only through a cross-entropy on the labelled points.
//!
//! Per example, one reparameterised sample z = μ(x) + σ(x)·ε:
//!   −ELBO(x) = BCE(dec([z, π(x)]), x) + KL(q(z|x) ‖ N(0, I))
//!   J        = mean over the labelled and unlabelled batches together of −ELBO(x)
//!              + α·mean_lab CE(π(x), y)
//! α defaults to 0.1·N/N_labelled, the weight M2 gives its labelled cross-entropy against its
//! bound ([`super::ModelSpec::effective_alpha`]). The labelled images are bounded too: the paper's
//! ELBO runs over every training point, labelled or not. Unlike M2, y is neither enumerated nor
//! sampled: one decoder pass per example, so a step costs what a plain VAE's does.
//!
//! [`Model::neg_elbo`] is the bound above (of p(x | π(x)), the decoder conditioned on the
//! deterministic class code; it is not a bound of the same p(x) as M2's). Samples decode
//! z ~ N(0, I) with a one-hot y in place of π; reconstructions decode μ(x) with π(x).
//!
//! Architecture: [`ClassStyleNet`] — the MLP trunk of two hidden layers (the paper's encoder
//! and decoder are two-layer MLPs; its widths are `--hidden`) or the conv trunk, heads μ,
//! log σ² and ℓ on the trunk's top layer, and the decoder on [z, π].

use super::arch::util;
use super::class_style::{ClassStyleNet, ClassStyleSizes};
use super::{Batch, Model, StepContext, Terms};
use crate::nn::{Module, Role};
use crate::rng::Rng;
use crate::{Device, Result, Tensor};

/// Hidden layers of the MLP trunk and decoder.
pub const SPARSE_MLP_LAYERS: usize = 2;

/// The sparse-label VAE's sizes and weight.
#[derive(Clone, Debug, PartialEq)]
pub struct SparseConfig {
    pub sizes: ClassStyleSizes,
    /// Weight α of the labelled cross-entropy.
    pub alpha: f32,
}

/// Encoder with a classification layer on its top, decoder on [z, π(x)].
pub struct Sparse {
    pub cfg: SparseConfig,
    net: ClassStyleNet,
    device: Device,
}

/// The per-example terms of one pass over a batch.
struct Pass {
    /// BCE(dec([z, π]), x) [n].
    rec: Tensor,
    /// KL(q(z|x) ‖ N(0, I)) [n].
    kl: Tensor,
    /// ℓ(x) [n, K].
    logits: Tensor,
}

impl Sparse {
    /// A freshly initialised sparse-label VAE.
    pub fn new(cfg: SparseConfig, rng: &mut Rng, device: Device) -> Result<Self> {
        super::check_loss_weight("--alpha", cfg.alpha)?;
        let net = ClassStyleNet::new("sparse", &cfg.sizes, SPARSE_MLP_LAYERS, rng, device)?;
        Ok(Sparse { cfg, net, device })
    }

    fn pass(&self, x: &Tensor, rng: &mut Rng) -> Result<Pass> {
        let p = self.net.encode(x)?;
        let z = util::reparam(&p.mu, &p.lv, rng, self.device)?;
        let rec = self
            .net
            .decode(&z, &p.logits.softmax()?)?
            .bce_with_logits_rows(x)?;
        Ok(Pass {
            rec,
            kl: p.mu.kl_diag_gaussian_rows(&p.lv)?,
            logits: p.logits,
        })
    }
}

impl Module for Sparse {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.classify(x)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, Role)) {
        self.net.visit(prefix, f);
    }
}

impl Model for Sparse {
    fn name(&self) -> &'static str {
        "sparse"
    }

    fn loss(&self, batch: &Batch, ctx: &mut StepContext) -> Result<Terms> {
        let (x, n_lab) = batch.labelled_then_unlabelled("sparse")?;
        let p = self.pass(&x, ctx.rng)?;
        let (rec, kl) = (p.rec.mean_all()?, p.kl.mean_all()?);
        let loss = rec.add(&kl)?;
        let parts = vec![("rec", rec), ("kl", kl)];
        Terms { loss, parts }.plus_labelled_ce(&p.logits, n_lab, &batch.y_lab, self.cfg.alpha)
    }

    fn classify(&self, x: &Tensor) -> Result<Tensor> {
        self.net.classify(x)
    }
    fn neg_elbo(&self, x: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        let p = self.pass(x, rng)?;
        p.rec.add(&p.kl)
    }
    fn classify_and_neg_elbo(&self, x: &Tensor, rng: &mut Rng) -> Result<(Tensor, Tensor)> {
        let p = self.pass(x, rng)?;
        Ok((p.logits, p.rec.add(&p.kl)?))
    }
    generative_hooks_of_class_style_net!();
}

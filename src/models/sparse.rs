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
use super::class_style::ClassStyleNet;
use super::{Arch, Batch, Model, Prior, StepContext, Terms};
use crate::nn::{Module, Role};
use crate::rng::Rng;
use crate::{Device, Error, Result, Tensor};

/// Hidden layers of the MLP trunk and decoder.
pub const SPARSE_MLP_LAYERS: usize = 2;

/// The sparse-label VAE's sizes and weight.
#[derive(Clone, Debug, PartialEq)]
pub struct SparseConfig {
    pub arch: Arch,
    /// (channels, height, width); D = c·h·w.
    pub input: (usize, usize, usize),
    pub classes: usize,
    pub hidden: usize,
    pub z_dim: usize,
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
        if cfg.classes == 0 || cfg.z_dim == 0 || cfg.hidden == 0 {
            return Err(Error::invalid(
                "sparse",
                "classes, z_dim and hidden must be positive",
            ));
        }
        super::check_loss_weight("--alpha", cfg.alpha)?;
        let net = ClassStyleNet::new(
            cfg.arch,
            cfg.input,
            cfg.hidden,
            SPARSE_MLP_LAYERS,
            cfg.z_dim,
            cfg.classes,
            rng,
            device,
        )?;
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
        // One pass over both batches: the labelled rows first, so that their logits are the
        // first n_l rows.
        let (x, n_lab) = match (batch.labelled(), batch.unlabelled()) {
            (Some(l), Some(u)) => (Tensor::concat(&[l, u], 0)?, l.dim("sparse", 0)?),
            (Some(l), None) => (l.clone(), l.dim("sparse", 0)?),
            (None, Some(u)) => (u.clone(), 0),
            (None, None) => return Err(Error::invalid("sparse", "empty batch")),
        };
        let p = self.pass(&x, ctx.rng)?;
        let (rec, kl) = (p.rec.mean_all()?, p.kl.mean_all()?);
        let mut loss = rec.add(&kl)?;
        let mut parts = vec![("rec", rec), ("kl", kl)];
        if n_lab > 0 {
            let ce = p
                .logits
                .narrow(0, 0, n_lab)?
                .cross_entropy_labels(&batch.y_lab)?
                .mean_all()?;
            loss = loss.add(&ce.mul_scalar(self.cfg.alpha)?)?;
            parts.push(("ce", ce));
        }
        Ok(Terms { loss, parts })
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
    fn latent_mean(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.net.encode(x)?.mu)
    }
    fn prior(&self) -> Prior {
        Prior::PerClass
    }
    fn decode_class(&self, z: &Tensor, y: &Tensor) -> Result<Tensor> {
        self.net.decode(z, y)
    }
    /// q(z|x) does not depend on y: the style is μ(x) whatever the class.
    fn style(&self, x: &Tensor, _y: &Tensor) -> Result<Tensor> {
        Ok(self.net.encode(x)?.mu)
    }
    fn reconstruct(&self, x: &Tensor) -> Result<Tensor> {
        let p = self.net.encode(x)?;
        self.net.decode(&p.mu, &p.logits.softmax()?)
    }
}

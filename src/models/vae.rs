//! The plain VAE (Kingma and Welling 2014): p(z) = N(0, I), p(x|z) Bernoulli with logits
//! dec(z), q(z|x) = N(μ(x), diag exp(log σ²(x))).
//!
//! Loss (the negated ELBO, minimised), one reparameterised sample z = μ + σ·ε per example:
//!   −ELBO(x) = BCE(dec(z), x) + KL(q(z|x) ‖ N(0, I))
//!   J        = mean over the unlabelled batch of −ELBO(x)
//! (the unlabelled pool already holds every training example; when a step has no unlabelled
//! batch the labelled inputs are used instead, their labels ignored). [`VaeConfig::kl_warmup`]
//! can anneal the KL's weight from 0 to 1 over the first part of training; `build` uses none for
//! `vae` (the plain ELBO) and 0.5 for M1's VAE in m1 and m1m2 (see [`super::m1`]).
//!
//! Architecture: MLP encoder x → H → H → (μ, log σ²) and decoder z → H → H → D (two hidden
//! layers, as M1 in Kingma et al.'s code: 784-500-500-50), or the conv trunk and decoder of
//! [`super::arch`] with heads Linear(256 → z) for μ and log σ².
//!
//! Samples decode z ~ N(0, I) ([`Model::decode_prior`]); reconstructions decode the posterior
//! mean μ(x). A VAE has no classifier: [`Model::classifies`] is false and [`Model::classify`] returns
//! all-zero logits [n, K] (so that an evaluation loop that does not check still runs; its
//! "error" is then that of always predicting class 0 and means nothing). This struct is also
//! M1's feature extractor and the lower layer of M1+M2.

use super::arch::{self, util, Decoder, Encoder};
use super::{Arch, Batch, Model, Prior, StepContext, Terms};
use crate::nn::{join, Init, Linear, Module, Role};
use crate::rng::Rng;
use crate::{Device, Error, Result, Tensor};

/// Hidden layers of the MLP encoder and decoder.
pub const VAE_MLP_LAYERS: usize = 2;

/// A VAE's sizes.
#[derive(Clone, Debug, PartialEq)]
pub struct VaeConfig {
    pub arch: Arch,
    /// (channels, height, width); D = c·h·w.
    pub input: (usize, usize, usize),
    /// Width of the hidden layers (the conv architecture's dense width).
    pub hidden: usize,
    pub z_dim: usize,
    /// Classes of the dataset (only for the shape of [`Model::classify`]'s zero logits).
    pub classes: usize,
    /// KL warm-up: the training loss weighs the KL by β = min(1, progress / kl_warmup)
    /// (0 = no warm-up, β = 1 throughout). Evaluation always uses the true ELBO (β = 1).
    pub kl_warmup: f32,
}

impl VaeConfig {
    /// The KL weight β at `progress` ∈ [0, 1] of training.
    pub fn kl_weight(&self, progress: f32) -> f32 {
        if self.kl_warmup > 0.0 {
            (progress / self.kl_warmup).clamp(0.0, 1.0)
        } else {
            1.0
        }
    }
}

/// Encoder, Gaussian heads, Bernoulli decoder.
pub struct Vae {
    pub cfg: VaeConfig,
    pub enc: Encoder,
    pub enc_mu: Linear,
    pub enc_lv: Linear,
    pub dec: Decoder,
    device: Device,
}

impl Vae {
    /// A freshly initialised VAE.
    pub fn new(cfg: VaeConfig, rng: &mut Rng, device: Device) -> Result<Self> {
        if cfg.z_dim == 0 || cfg.hidden == 0 {
            return Err(Error::invalid("vae", "z_dim and hidden must be positive"));
        }
        let (c, h, w) = cfg.input;
        let d = c * h * w;
        let enc = arch::encoder(cfg.arch, cfg.input, cfg.hidden, VAE_MLP_LAYERS, rng, device)?;
        let hd = enc.out_dim(d);
        let init = Init::KaimingUniform;
        let enc_mu = Linear::new(hd, cfg.z_dim, init, rng, device)?;
        let enc_lv = Linear::new(hd, cfg.z_dim, init, rng, device)?;
        let dec = arch::decoder(
            cfg.arch,
            cfg.z_dim,
            cfg.input,
            cfg.hidden,
            VAE_MLP_LAYERS,
            rng,
            device,
        )?;
        Ok(Vae {
            cfg,
            enc,
            enc_mu,
            enc_lv,
            dec,
            device,
        })
    }

    /// (μ, log σ²) of q(z|x) for inputs [n, D].
    pub fn encode(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let h = self.enc.forward(x)?;
        Ok((self.enc_mu.forward(&h)?, self.enc_lv.forward(&h)?))
    }

    /// Bernoulli logits of p(x|z).
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        self.dec.forward(z)
    }

    /// One pass over `x` with one sample z ~ q(z|x) per row.
    pub fn pass(&self, x: &Tensor, rng: &mut Rng) -> Result<VaePass> {
        let (mu, lv) = self.encode(x)?;
        let z = util::reparam(&mu, &lv, rng, self.device)?;
        let rec = self.decode(&z)?.bce_with_logits_rows(x)?;
        let kl = mu.kl_diag_gaussian_rows(&lv)?;
        Ok(VaePass { rec, kl, z, mu })
    }

    /// The training loss mean[BCE + β·KL] on `x` (β from the warm-up at `progress`), its
    /// parts (unweighted), and the pass it came from.
    pub fn loss_on(&self, x: &Tensor, progress: f32, rng: &mut Rng) -> Result<(Terms, VaePass)> {
        let pass = self.pass(x, rng)?;
        let (rec, kl) = (pass.rec.mean_all()?, pass.kl.mean_all()?);
        let beta = self.cfg.kl_weight(progress);
        let loss = if beta == 1.0 {
            rec.add(&kl)?
        } else {
            rec.add(&kl.mul_scalar(beta)?)?
        };
        Ok((
            Terms {
                loss,
                parts: vec![("rec", rec), ("kl", kl)],
            },
            pass,
        ))
    }
}

/// What [`Vae::pass`] computes for a batch [n, D].
pub struct VaePass {
    /// BCE(dec(z), x) per row, `[n]`.
    pub rec: Tensor,
    /// KL(q(z|x) ‖ N(0, I)) per row, `[n]`.
    pub kl: Tensor,
    /// The sample z ~ q(z|x) [n, z_dim].
    pub z: Tensor,
    /// The posterior mean μ(x) [n, z_dim].
    pub mu: Tensor,
}

impl Module for Vae {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.encode(x)?.0)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, Role)) {
        self.enc.visit(&join(prefix, "enc"), f);
        self.enc_mu.visit(&join(prefix, "enc_mu"), f);
        self.enc_lv.visit(&join(prefix, "enc_lv"), f);
        self.dec.visit(&join(prefix, "dec"), f);
    }
}

impl Model for Vae {
    fn name(&self) -> &'static str {
        "vae"
    }
    fn loss(&self, batch: &Batch, ctx: &mut StepContext) -> Result<Terms> {
        let x = batch
            .unlabelled()
            .or(batch.labelled())
            .ok_or_else(|| Error::invalid("vae", "empty batch"))?;
        Ok(self.loss_on(x, ctx.progress, ctx.rng)?.0)
    }
    fn classify(&self, x: &Tensor) -> Result<Tensor> {
        util::zero_logits(x.dim("vae", 0)?, self.cfg.classes, self.device)
    }
    fn latent_mean(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.encode(x)?.0)
    }
    fn neg_elbo(&self, x: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        let p = self.pass(x, rng)?;
        p.rec.add(&p.kl)
    }
    fn classifies(&self) -> bool {
        false
    }
    fn prior(&self) -> Prior {
        Prior::Standard
    }
    fn decode_prior(&self, z: &Tensor) -> Result<Tensor> {
        self.decode(z)
    }
    fn reconstruct(&self, x: &Tensor) -> Result<Tensor> {
        self.decode(&self.encode(x)?.0)
    }
}

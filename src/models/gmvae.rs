//! The Gaussian-mixture VAE with a Gumbel-softmax class variable, as in jariasf/GMVAE (after
//! Rui Shu's formulation): p(y) = Cat(1/K), p(z|y) = N(μ_y, diag σ²_y) with μ_y = W_μ·y + b and
//! σ²_y = softplus(W_σ·y + b), p(x|z) Bernoulli; inference q(y|x) = Cat(softmax ℓ(x)) and
//! q(z|x,y) = N(μ(x,y), diag σ²(x,y)) with σ² = softplus(·).
//!
//! Loss per unlabelled example (minimised; every term one sample):
//!   y ~ GumbelSoftmax(ℓ(x), τ)  (soft relaxed sample),   z ~ q(z|x,y)
//!   J(x) = BCE(dec(z), x)                         (reconstruction, summed over pixels)
//!        + log q(z|x,y) − log p(z|y)              (single-sample KL of the Gaussian part)
//!        + KL(q(y|x) ‖ U(K))                      (= −H(q(y|x)) + log K)
//! all weights 1 (jariasf's w_rec = w_gauss = w_cat = 1), with the temperature
//!   τ(epoch) = max(exp(−0.013862944·(epoch − 1)), 0.5)
//! (1 in the first epoch, 0.5 from epoch 51 on, jariasf's schedule; `ctx.epoch` counts from 1).
//! Variances get 1e-8 added before logs and square roots, as in the reference.
//! [`GmvaeConfig::kl_warmup`] can anneal the weight of the two KL terms, β = min(1,
//! progress/kl_warmup); `build` uses none (jariasf's objective as is). On the 8×8 digits the
//! unsupervised model sits in the single-component collapse (q(y|x) ≈ uniform, Hungarian ACC
//! ≈ 0.2–0.3) for many hundred steps at β = 1; `tests/models.rs` anneals across the run
//! (kl_warmup = 1) and z = 2, which gives ACC ≈ 0.5–0.6 in 880 steps.
//!
//! Unsupervised by default: [`Model::classify`] returns the q(y|x) logits, whose argmax is a
//! cluster index — evaluate it with Hungarian accuracy and NMI, not the error rate. When built
//! with labels (`ModelSpec::n_labelled > 0`), the labelled batch adds α·CE(q(y|x), y)
//! (α defaults to 0.1·N/N_labelled, as for M2) and the clusters become classes. When built
//! without labels, labelled batches are ignored (the unlabelled pool already holds every
//! training example).
//!
//! [`Model::neg_elbo`] enumerates y exactly instead of sampling it (an unrelaxed bound):
//!   −ELBO(x) = Σ_y q(y|x)·[BCE(dec(z_y), x) + log q(z_y|x,y) − log p(z_y|y)] + KL(q(y|x) ‖ U),
//! z_y ~ q(z|x,y) one sample per class.
//!
//! Samples ([`Model::decode_class`]) draw z ~ p(z|y) for a chosen component y and decode it;
//! a reconstruction decodes μ(x, y) of q(z|x,y) with y = argmax q(y|x).
//!
//! Architecture: MLP (jariasf's): q(y|x) = x → H → H → K, q(z|x,y) = [x, y] → H → H → (μ, σ²),
//! p(x|z) = z → H → H → D, ReLU. Conv: the trunk h(x) of [`super::arch`] is shared, q(y|x) =
//! Linear(256→K) on h and q(z|x,y) = Linear(256+K → z) twice (μ and σ²) on [h, y]; p(x|z) the
//! conv decoder.

use super::arch::{self, util, Decoder, Encoder, Mlp};
use super::{Arch, Batch, Model, Prior, StepContext, Terms};
use crate::nn::{join, Activation, Init, Linear, Module, Role};
use crate::rng::Rng;
use crate::{Device, Error, Result, Tensor};

/// Hidden layers of the MLP networks (jariasf: 512-512).
pub const GMVAE_MLP_LAYERS: usize = 2;
/// Added to variances before logarithms and square roots.
const VAR_EPS: f32 = 1e-8;

/// GMVAE settings.
#[derive(Clone, Debug, PartialEq)]
pub struct GmvaeConfig {
    pub arch: Arch,
    pub input: (usize, usize, usize),
    /// Mixture components (= classes).
    pub classes: usize,
    pub hidden: usize,
    pub z_dim: usize,
    /// Add α·CE on labelled batches.
    pub supervised: bool,
    pub alpha: f32,
    /// τ = max(tau_init·exp(−tau_rate·(epoch − 1)), tau_min).
    pub tau_init: f32,
    pub tau_rate: f32,
    pub tau_min: f32,
    /// KL warm-up: the training loss weighs the two KL terms by β = min(1, progress/kl_warmup)
    /// (0 = none). Evaluation always uses the true bound.
    pub kl_warmup: f32,
}

impl GmvaeConfig {
    /// The Gumbel-softmax temperature in `epoch` (counted from 1).
    pub fn tau(&self, epoch: usize) -> f32 {
        let t = epoch.saturating_sub(1) as f32;
        (self.tau_init * (-self.tau_rate * t).exp()).max(self.tau_min)
    }
}

/// The GMVAE.
pub struct Gmvae {
    pub cfg: GmvaeConfig,
    /// q(y|x): trunk (MLP on x, or the conv trunk) and output layer.
    qy_trunk: Encoder,
    qy_out: Linear,
    /// q(z|x,y)'s hidden layers on [x, y] (MLP); None for conv, whose heads read [h, y].
    qz_h: Option<Mlp>,
    qz_mu: Linear,
    qz_var: Linear,
    /// p(z|y).
    pz_mu: Linear,
    pz_var: Linear,
    dec: Decoder,
    device: Device,
}

impl Gmvae {
    /// A freshly initialised GMVAE.
    pub fn new(cfg: GmvaeConfig, rng: &mut Rng, device: Device) -> Result<Self> {
        let (c, h, w) = cfg.input;
        let (d, k, z, hid) = (c * h * w, cfg.classes, cfg.z_dim, cfg.hidden);
        if k == 0 || z == 0 || hid == 0 {
            return Err(Error::invalid(
                "gmvae",
                "classes, z_dim and hidden must be positive",
            ));
        }
        let init = Init::KaimingUniform;
        let qy_trunk = arch::encoder(cfg.arch, cfg.input, hid, GMVAE_MLP_LAYERS, rng, device)?;
        let th = qy_trunk.out_dim(d);
        let qy_out = Linear::new(th, k, init, rng, device)?;
        let (qz_h, qz_in) = match cfg.arch {
            Arch::Mlp => {
                let m = Mlp::new(d + k, hid, GMVAE_MLP_LAYERS, Activation::Relu, rng, device)?;
                let o = m.out_dim(d + k);
                (Some(m), o)
            }
            Arch::Conv => (None, th + k),
        };
        let qz_mu = Linear::new(qz_in, z, init, rng, device)?;
        let qz_var = Linear::new(qz_in, z, init, rng, device)?;
        let pz_mu = Linear::new(k, z, init, rng, device)?;
        let pz_var = Linear::new(k, z, init, rng, device)?;
        let dec = arch::decoder(cfg.arch, z, cfg.input, hid, GMVAE_MLP_LAYERS, rng, device)?;
        Ok(Gmvae {
            cfg,
            qy_trunk,
            qy_out,
            qz_h,
            qz_mu,
            qz_var,
            pz_mu,
            pz_var,
            dec,
            device,
        })
    }

    /// (trunk features h, q(y|x) logits).
    fn infer_y(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let h = self.qy_trunk.forward(x)?;
        let logits = self.qy_out.forward(&h)?;
        Ok((h, logits))
    }

    /// (μ, σ²) of q(z|x,y) for inputs `x`, their trunk features `h` and class rows `y`.
    fn posterior_z(&self, x: &Tensor, h: &Tensor, y: &Tensor) -> Result<(Tensor, Tensor)> {
        let inp = match &self.qz_h {
            Some(m) => m.forward(&Tensor::concat(&[x, y], 1)?)?,
            None => Tensor::concat(&[h, y], 1)?,
        };
        let mu = self.qz_mu.forward(&inp)?;
        let var = self.qz_var.forward(&inp)?.softplus()?.add_scalar(VAR_EPS)?;
        Ok((mu, var))
    }

    /// (μ_y, σ²_y) of p(z|y) for class rows `y`.
    fn prior_z(&self, y: &Tensor) -> Result<(Tensor, Tensor)> {
        let mu = self.pz_mu.forward(y)?;
        let var = self.pz_var.forward(y)?.softplus()?.add_scalar(VAR_EPS)?;
        Ok((mu, var))
    }

    /// Per row: (BCE(dec(z), x), log q(z|x,y) − log p(z|y)) for one z ~ q(z|x,y); `h` are the
    /// trunk features of `x` and `y` the (relaxed or one-hot) class rows.
    fn bound_rows(
        &self,
        x: &Tensor,
        h: &Tensor,
        y: &Tensor,
        rng: &mut Rng,
    ) -> Result<(Tensor, Tensor)> {
        let (mu, var) = self.posterior_z(x, h, y)?;
        let eps = Tensor::randn(
            mu.shape().clone(),
            rng.next_key(mu.elem_count()),
            self.device,
        )?;
        let z = mu.add(&var.sqrt()?.mul(&eps)?)?;
        let (py_mu, py_var) = self.prior_z(y)?;
        let gauss = util::log_normal_var_rows(&z, &mu, &var)?
            .sub(&util::log_normal_var_rows(&z, &py_mu, &py_var)?)?;
        let rec = self.dec.forward(&z)?.bce_with_logits_rows(x)?;
        Ok((rec, gauss))
    }
}

impl Module for Gmvae {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.classify(x)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, Role)) {
        self.qy_trunk.visit(&join(prefix, "qy_trunk"), f);
        self.qy_out.visit(&join(prefix, "qy_out"), f);
        if let Some(m) = &self.qz_h {
            m.visit(&join(prefix, "qz_h"), f);
        }
        self.qz_mu.visit(&join(prefix, "qz_mu"), f);
        self.qz_var.visit(&join(prefix, "qz_var"), f);
        self.pz_mu.visit(&join(prefix, "pz_mu"), f);
        self.pz_var.visit(&join(prefix, "pz_var"), f);
        self.dec.visit(&join(prefix, "dec"), f);
    }
}

impl Model for Gmvae {
    fn name(&self) -> &'static str {
        "gmvae"
    }

    fn loss(&self, batch: &Batch, ctx: &mut StepContext) -> Result<Terms> {
        let labelled = batch.labelled().filter(|_| self.cfg.supervised);
        // Without an unlabelled batch, the labelled inputs still train the ELBO.
        let x = batch.unlabelled().or(batch.labelled());
        let mut parts = Vec::new();
        let mut total: Option<Tensor> = None;
        if let Some(x) = x {
            let (h, logits) = self.infer_y(x)?;
            let y = util::gumbel_softmax(&logits, self.cfg.tau(ctx.epoch), ctx.rng)?;
            let (rec, gauss) = self.bound_rows(x, &h, &y, ctx.rng)?;
            let cat = util::kl_categorical_uniform_rows(&logits)?.mean_all()?;
            let (rec, gauss) = (rec.mean_all()?, gauss.mean_all()?);
            let beta = if self.cfg.kl_warmup > 0.0 {
                (ctx.progress / self.cfg.kl_warmup).clamp(0.0, 1.0)
            } else {
                1.0
            };
            total = Some(rec.add(&gauss.add(&cat)?.mul_scalar(beta)?)?);
            parts.push(("rec", rec));
            parts.push(("gauss", gauss));
            parts.push(("cat", cat));
        }
        if let Some(xl) = labelled {
            let (_, logits) = self.infer_y(xl)?;
            let ce = logits.cross_entropy_labels(&batch.y_lab)?.mean_all()?;
            let w = ce.mul_scalar(self.cfg.alpha)?;
            total = Some(match total {
                Some(t) => t.add(&w)?,
                None => w,
            });
            parts.push(("ce", ce));
        }
        let loss = total.ok_or_else(|| Error::invalid("gmvae", "empty batch"))?;
        Ok(Terms { loss, parts })
    }

    fn classify(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.infer_y(x)?.1)
    }

    fn neg_elbo(&self, x: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        let k = self.cfg.classes;
        let n = x.dim("gmvae", 0)?;
        let (h, logits) = self.infer_y(x)?;
        let (_, y) = util::enumerate_classes(n, k, self.device)?;
        let (rec, gauss) =
            self.bound_rows(&x.repeat_interleave(k)?, &h.repeat_interleave(k)?, &y, rng)?;
        let per_class = rec.add(&gauss)?.reshape([n, k])?;
        logits
            .softmax()?
            .mul(&per_class)?
            .sum(1)?
            .add(&util::kl_categorical_uniform_rows(&logits)?)
    }

    fn prior(&self) -> Prior {
        Prior::PerClass
    }

    /// A draw of component y's Gaussian p(z|y) = N(μ_y, σ²_y), z = μ_y + σ_y·ε, decoded.
    fn decode_class(&self, eps: &Tensor, y: &Tensor) -> Result<Tensor> {
        let (mu, var) = self.prior_z(y)?;
        self.dec.forward(&mu.add(&var.sqrt()?.mul(eps)?)?)
    }

    /// (μ(x, y) − μ_y) / σ_y: the posterior mean standardised by the component's prior.
    fn style(&self, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        let (h, _) = self.infer_y(x)?;
        let (mu, _) = self.posterior_z(x, &h, y)?;
        let (py_mu, py_var) = self.prior_z(y)?;
        mu.sub(&py_mu)?.div(&py_var.sqrt()?)
    }

    /// μ(x, y) of q(z|x,y) for the component y = argmax q(y|x), decoded.
    fn reconstruct(&self, x: &Tensor) -> Result<Tensor> {
        let (h, logits) = self.infer_y(x)?;
        let y = util::argmax_one_hot(&logits)?;
        let (mu, _) = self.posterior_z(x, &h, &y)?;
        self.dec.forward(&mu)
    }
}

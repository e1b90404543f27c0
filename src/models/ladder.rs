//! The Ladder VAE of Sønderby, Raiko, Maaløe, Sønderby and Winther (2016), two stochastic
//! layers, with a semi-supervised class head.
//!
//! Generative model: p(z2) = N(0, I), p(z1 | z2, y) = N(μ_p(z2, y), σ_p²(z2, y)), p(x | z1)
//! Bernoulli. Inference shares the generative model's top-down path: a deterministic bottom-up
//! pass d1 = f1(x), d2 = f2(d1) gives q(z2|x) = N(μ̂2(d2), σ̂2²(d2)) and an estimate
//! (μ̂1(d1), σ̂1²(d1)) for z1, which is combined with the top-down prior by precision weighting,
//!
//!   σ_q² = 1 / (σ̂1⁻² + σ_p⁻²),   μ_q = (μ̂1·σ̂1⁻² + μ_p·σ_p⁻²)·σ_q²,   q(z1 | x, z2) = N(μ_q, σ_q²)
//!
//! (written with variances, σ_q² = σ̂1²·σ_p² / (σ̂1² + σ_p²) and μ_q = (μ̂1·σ_p² + μ_p·σ̂1²) /
//! (σ̂1² + σ_p²), which needs no reciprocal of a vanishing variance).
//!
//! The semi-supervised head (not in the paper, which is unsupervised): class logits ℓ(d2) on the
//! top deterministic layer, and the class distribution π = softmax ℓ enters the top-down path
//! as a deterministic code beside z2 — the construction of the sparse-label VAE
//! ([`super::sparse`]) applied at the top of the ladder. Per example, z2 and z1 one
//! reparameterised sample each:
//!
//!   −ELBO(x) = BCE(dec(z1), x) + KL(q(z1|x, z2) ‖ p(z1|z2, π)) + KL(q(z2|x) ‖ N(0, I))
//!   J        = mean over the labelled and unlabelled batches of −ELBO(x)
//!              + α·mean_lab CE(ℓ(x), y)
//!
//! both KLs analytic (diagonal Gaussians); α defaults to 0.1·N/N_labelled as M2's
//! ([`super::ModelSpec::effective_alpha`]). Samples draw z2 ~ N(0, I), take π one-hot, z1 ~
//! p(z1|z2, y) at its mean, and decode; reconstructions decode μ_q at z2 = μ̂2 with π(x).
//!
//! Architecture: f1 = x → H (MLP; or the conv trunk of [`super::arch`], H = 256), f2 = H → H,
//! the top-down block [z2, π] → H, the decoder z1 → H → D (or the conv decoder), one ReLU
//! layer each; |z1| = `--z-dim`, |z2| = ⌈|z1| / 2⌉ (the paper's ladders halve the latent width
//! going up: 64-32-…).

use super::arch::{self, util, Decoder, Encoder, Mlp};
use super::{Arch, Batch, Model, Prior, StepContext, Terms};
use crate::nn::{join, Activation, Init, Linear, Module, Role};
use crate::rng::Rng;
use crate::{Device, Error, Result, Tensor};

/// Hidden layers of each deterministic block and of the decoder.
pub const LADDER_MLP_LAYERS: usize = 1;

/// The Ladder VAE's sizes and weight.
#[derive(Clone, Debug, PartialEq)]
pub struct LadderConfig {
    pub arch: Arch,
    /// (channels, height, width); D = c·h·w.
    pub input: (usize, usize, usize),
    pub classes: usize,
    pub hidden: usize,
    /// Width of the lower latent z1 (z2 has half as many units, rounded up).
    pub z_dim: usize,
    /// Weight α of the labelled cross-entropy.
    pub alpha: f32,
}

impl LadderConfig {
    /// Width of the top latent z2.
    pub fn z2_dim(&self) -> usize {
        self.z_dim.div_ceil(2)
    }
}

/// A Gaussian head: two linear maps from a block's output to (μ, log σ²).
struct GaussianHead {
    mu: Linear,
    lv: Linear,
}

impl GaussianHead {
    fn new(in_dim: usize, out: usize, rng: &mut Rng, device: Device) -> Result<Self> {
        let init = Init::KaimingUniform;
        Ok(GaussianHead {
            mu: Linear::new(in_dim, out, init, rng, device)?,
            lv: Linear::new(in_dim, out, init, rng, device)?,
        })
    }
    fn forward(&self, h: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((self.mu.forward(h)?, self.lv.forward(h)?))
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, Role)) {
        self.mu.visit(&join(prefix, "mu"), f);
        self.lv.visit(&join(prefix, "lv"), f);
    }
}

/// Bottom-up blocks and heads, top-down block and prior head, decoder.
pub struct Ladder {
    pub cfg: LadderConfig,
    up1: Encoder,
    up2: Mlp,
    q1: GaussianHead,
    q2: GaussianHead,
    cls: Linear,
    down: Mlp,
    p1: GaussianHead,
    dec: Decoder,
    device: Device,
}

/// What one pass over a batch computes.
struct Pass {
    /// BCE(dec(z1), x) [n].
    rec: Tensor,
    /// KL(q(z1|x, z2) ‖ p(z1|z2, π)) [n].
    kl1: Tensor,
    /// KL(q(z2|x) ‖ N(0, I)) [n].
    kl2: Tensor,
    /// ℓ(x) [n, K].
    logits: Tensor,
    /// μ_q of z1 [n, z1] (at the sampled z2).
    mu1: Tensor,
}

/// KL(N(μ_q, e^{lv_q}) ‖ N(μ_p, e^{lv_p})) per row, diagonal Gaussians:
/// ½ Σ [lv_p − lv_q + (e^{lv_q} + (μ_q − μ_p)²)·e^{−lv_p} − 1].
fn kl_diag_gaussians_rows(
    mu_q: &Tensor,
    lv_q: &Tensor,
    mu_p: &Tensor,
    lv_p: &Tensor,
) -> Result<Tensor> {
    let spread = lv_q.exp()?.add(&mu_q.sub(mu_p)?.square()?)?;
    lv_p.sub(lv_q)?
        .add(&spread.mul(&lv_p.neg()?.exp()?)?)?
        .add_scalar(-1.0)?
        .sum(1)?
        .mul_scalar(0.5)
}

/// The precision-weighted combination of the bottom-up estimate (μ̂, lv̂) and the top-down prior
/// (μ_p, lv_p): (μ_q, log σ_q²), see the module doc.
fn precision_weighted(
    mu_hat: &Tensor,
    lv_hat: &Tensor,
    mu_p: &Tensor,
    lv_p: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let (v_hat, v_p) = (lv_hat.exp()?, lv_p.exp()?);
    let total = v_hat.add(&v_p)?;
    let mu = mu_hat.mul(&v_p)?.add(&mu_p.mul(&v_hat)?)?.div(&total)?;
    let lv = lv_hat.add(lv_p)?.sub(&total.log()?)?;
    Ok((mu, lv))
}

impl Ladder {
    /// A freshly initialised Ladder VAE.
    pub fn new(cfg: LadderConfig, rng: &mut Rng, device: Device) -> Result<Self> {
        let (c, h, w) = cfg.input;
        let d = c * h * w;
        let (k, hid, z1, z2) = (cfg.classes, cfg.hidden, cfg.z_dim, cfg.z2_dim());
        if d == 0 || k == 0 || hid == 0 || z1 == 0 {
            return Err(Error::invalid(
                "ladder",
                "input, classes, z_dim and hidden must be positive",
            ));
        }
        super::check_loss_weight("--alpha", cfg.alpha)?;
        let relu = Activation::Relu;
        let l = LADDER_MLP_LAYERS;
        let up1 = arch::encoder(cfg.arch, cfg.input, hid, l, rng, device)?;
        let h1 = up1.out_dim(d);
        let up2 = Mlp::new(h1, hid, l, relu, rng, device)?;
        Ok(Ladder {
            q1: GaussianHead::new(h1, z1, rng, device)?,
            q2: GaussianHead::new(hid, z2, rng, device)?,
            cls: Linear::new(hid, k, Init::KaimingUniform, rng, device)?,
            down: Mlp::new(z2 + k, hid, l, relu, rng, device)?,
            p1: GaussianHead::new(hid, z1, rng, device)?,
            dec: arch::decoder(cfg.arch, z1, cfg.input, hid, l, rng, device)?,
            up1,
            up2,
            cfg,
            device,
        })
    }

    /// p(z1 | z2, π): (μ_p, log σ_p²).
    fn prior1(&self, z2: &Tensor, pi: &Tensor) -> Result<(Tensor, Tensor)> {
        self.p1
            .forward(&self.down.forward(&Tensor::concat(&[z2, pi], 1)?)?)
    }

    /// One pass; with `rng`, z2 and z1 are drawn (without, both sit at their means).
    fn pass(&self, x: &Tensor, rng: Option<&mut Rng>) -> Result<Pass> {
        let d1 = self.up1.forward(x)?;
        let d2 = self.up2.forward(&d1)?;
        let logits = self.cls.forward(&d2)?;
        let (mu_hat, lv_hat) = self.q1.forward(&d1)?;
        let (mu2, lv2) = self.q2.forward(&d2)?;
        let pi = logits.softmax()?;
        let draw = |mu: &Tensor, lv: &Tensor, rng: &mut Option<&mut Rng>| match rng {
            Some(r) => util::reparam(mu, lv, r, self.device),
            None => Ok(mu.clone()),
        };
        let mut rng = rng;
        let z2 = draw(&mu2, &lv2, &mut rng)?;
        let (mu_p, lv_p) = self.prior1(&z2, &pi)?;
        let (mu1, lv1) = precision_weighted(&mu_hat, &lv_hat, &mu_p, &lv_p)?;
        let z1 = draw(&mu1, &lv1, &mut rng)?;
        Ok(Pass {
            rec: self.dec.forward(&z1)?.bce_with_logits_rows(x)?,
            kl1: kl_diag_gaussians_rows(&mu1, &lv1, &mu_p, &lv_p)?,
            kl2: mu2.kl_diag_gaussian_rows(&lv2)?,
            logits,
            mu1,
        })
    }

    fn bound(p: &Pass) -> Result<Tensor> {
        p.rec.add(&p.kl1)?.add(&p.kl2)
    }
}

impl Module for Ladder {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.classify(x)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, Role)) {
        self.up1.visit(&join(prefix, "up1"), f);
        self.up2.visit(&join(prefix, "up2"), f);
        self.q1.visit(&join(prefix, "q1"), f);
        self.q2.visit(&join(prefix, "q2"), f);
        self.cls.visit(&join(prefix, "cls"), f);
        self.down.visit(&join(prefix, "down"), f);
        self.p1.visit(&join(prefix, "p1"), f);
        self.dec.visit(&join(prefix, "dec"), f);
    }
}

impl Model for Ladder {
    fn name(&self) -> &'static str {
        "ladder"
    }

    fn loss(&self, batch: &Batch, ctx: &mut StepContext) -> Result<Terms> {
        let (x, n_lab) = batch.labelled_then_unlabelled("ladder")?;
        let p = self.pass(&x, Some(ctx.rng))?;
        let (rec, kl1, kl2) = (p.rec.mean_all()?, p.kl1.mean_all()?, p.kl2.mean_all()?);
        let loss = rec.add(&kl1)?.add(&kl2)?;
        let parts = vec![("rec", rec), ("kl1", kl1), ("kl2", kl2)];
        Terms { loss, parts }.plus_labelled_ce(&p.logits, n_lab, &batch.y_lab, self.cfg.alpha)
    }

    fn classify(&self, x: &Tensor) -> Result<Tensor> {
        self.cls.forward(&self.up2.forward(&self.up1.forward(x)?)?)
    }
    fn neg_elbo(&self, x: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        Self::bound(&self.pass(x, Some(rng))?)
    }
    fn classify_and_neg_elbo(&self, x: &Tensor, rng: &mut Rng) -> Result<(Tensor, Tensor)> {
        let p = self.pass(x, Some(rng))?;
        Ok((p.logits.clone(), Self::bound(&p)?))
    }
    /// The mean of q(z1 | x, z2) at z2 = μ̂2(x): the lower latent, the one the decoder reads.
    fn latent_mean(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.pass(x, None)?.mu1)
    }
    fn prior(&self) -> Prior {
        Prior::PerClass
    }
    /// `z` [n, z_dim] are standard-normal draws (the sampler draws `--z-dim` of them): its first
    /// |z2| columns are z2, and z1 is the mean of p(z1 | z2, y).
    fn decode_class(&self, z: &Tensor, y: &Tensor) -> Result<Tensor> {
        let z2 = z.narrow(1, 0, self.cfg.z2_dim())?;
        let (mu_p, _) = self.prior1(&z2, y)?;
        self.dec.forward(&mu_p)
    }
    fn reconstruct(&self, x: &Tensor) -> Result<Tensor> {
        self.dec.forward(&self.pass(x, None)?.mu1)
    }
}

#[cfg(test)]
mod tests {
    //! The two Gaussian formulas of the ladder against the textbook ones in f64: the precision-
    //! weighted posterior (as precisions, 1/σ_q² = 1/σ̂² + 1/σ_p²) and the KL of two diagonal
    //! Gaussians (against a Monte Carlo estimate would be noisy; against the closed form per
    //! dimension, summed, it is exact up to f32 rounding: bound 1e-5 relative).
    use super::*;

    fn t(v: &[f32]) -> Tensor {
        Tensor::from_slice(v, [2, v.len() / 2], Device::Cpu).unwrap()
    }

    #[test]
    fn precision_weighting_adds_precisions_and_weighs_means_by_them() {
        let (mh, lh) = ([0.5f32, -1.0, 2.0, 0.0], [0.3f32, -2.0, 1.5, -0.7]);
        let (mp, lp) = ([-0.2f32, 0.4, 1.0, 3.0], [-1.0f32, 0.8, 0.1, 2.0]);
        let (mu, lv) = precision_weighted(&t(&mh), &t(&lh), &t(&mp), &t(&lp)).unwrap();
        let (mu, lv) = (mu.to_vec().unwrap(), lv.to_vec().unwrap());
        for i in 0..4 {
            let (ph, pp) = ((-lh[i] as f64).exp(), (-lp[i] as f64).exp());
            let want_lv = -(ph + pp).ln();
            let want_mu = (mh[i] as f64 * ph + mp[i] as f64 * pp) / (ph + pp);
            assert!(
                (lv[i] as f64 - want_lv).abs() <= 1e-5 * (1.0 + want_lv.abs()),
                "{i}"
            );
            assert!(
                (mu[i] as f64 - want_mu).abs() <= 1e-5 * (1.0 + want_mu.abs()),
                "{i}"
            );
        }
    }

    #[test]
    fn kl_of_diagonal_gaussians_is_the_closed_form_and_zero_for_equal_ones() {
        let (mq, lq) = ([0.5f32, -1.0, 2.0, 0.0], [0.3f32, -2.0, 1.5, -0.7]);
        let (mp, lp) = ([-0.2f32, 0.4, 1.0, 3.0], [-1.0f32, 0.8, 0.1, 2.0]);
        let kl = kl_diag_gaussians_rows(&t(&mq), &t(&lq), &t(&mp), &t(&lp))
            .unwrap()
            .to_vec()
            .unwrap();
        for (row, &got) in kl.iter().enumerate() {
            let want: f64 = (2 * row..2 * row + 2)
                .map(|i| {
                    let (vq, vp) = ((lq[i] as f64).exp(), (lp[i] as f64).exp());
                    let d = mq[i] as f64 - mp[i] as f64;
                    0.5 * ((vp / vq).ln() + (vq + d * d) / vp - 1.0)
                })
                .sum();
            assert!(
                (got as f64 - want).abs() <= 1e-5 * want.abs(),
                "{got} vs {want}"
            );
            assert!(want > 0.0);
        }
        let same = kl_diag_gaussians_rows(&t(&mq), &t(&lq), &t(&mq), &t(&lq)).unwrap();
        assert!(same.to_vec().unwrap().iter().all(|v| v.abs() <= 1e-6));
    }
}

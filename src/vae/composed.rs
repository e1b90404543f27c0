//! The unfused forms of the fused VAE ops: the same maths written as compositions of engine
//! primitives (randn/rand, exp, log, softmax, `bce_with_logits_rows`, `kl_diag_gaussian_rows`,
//! index_select, broadcasting arithmetic …), each recording its own tape nodes.
//!
//! They are the reference the fused ops are tested against (`tests/vae_ops.rs`: forward and every
//! gradient agree to float rounding), the baseline `benches/vae_ops.rs` measures them against,
//! and what M2 runs with `fused = false`. Random draws use the same Philox keys as the fused
//! kernels, so for a given key both forms compute the same numbers.

use super::mixup::{MixClass, MixLatent, Mixed};
use super::Likelihood;
use crate::rng::RngKey;
use crate::{Error, Result, Tensor};

/// z = μ + exp(½ lv) ⊙ ε with ε = `Tensor::randn(key)`, and KL via `kl_diag_gaussian_rows`.
pub fn reparameterize(mu: &Tensor, logvar: &Tensor, key: RngKey) -> Result<(Tensor, Tensor)> {
    let eps = Tensor::randn(mu.shape().clone(), key, mu.device())?;
    let z = mu.add(&logvar.mul_scalar(0.5)?.exp()?.mul(&eps)?)?;
    let kl = mu.kl_diag_gaussian_rows(logvar)?;
    Ok((z, kl))
}

/// ½ Σ_d (lvp − lvq + (e^{lvq} + (μq − μp)²) · e^{−lvp} − 1) per row.
pub fn gaussian_kl(
    mu_q: &Tensor,
    logvar_q: &Tensor,
    mu_p: &Tensor,
    logvar_p: &Tensor,
) -> Result<Tensor> {
    let dm2 = mu_q.sub(mu_p)?.square()?;
    let ratio = logvar_q.exp()?.add(&dm2)?.mul(&logvar_p.neg()?.exp()?)?;
    logvar_p
        .sub(logvar_q)?
        .add(&ratio)?
        .add_scalar(-1.0)?
        .sum(1)?
        .mul_scalar(0.5)
}

/// Standard Gumbel noise g = −log(−log u), u = `Tensor::rand(like.shape(), key)`.
pub fn gumbel_noise(like: &Tensor, key: RngKey) -> Result<Tensor> {
    Tensor::rand(like.shape().clone(), key, like.device())?
        .log()?
        .neg()?
        .log()?
        .neg()
}

/// softmax((ℓ + g)/τ); with `hard`, y_soft + stop_gradient(onehot(argmax) − y_soft).
pub fn gumbel_softmax(logits: &Tensor, tau: f32, hard: bool, key: RngKey) -> Result<Tensor> {
    let y = logits
        .add(&gumbel_noise(logits, key)?)?
        .mul_scalar(1.0 / tau)?
        .softmax()?;
    if !hard {
        return Ok(y);
    }
    let (_, k) = logits.dims2("gumbel_softmax")?;
    let idx: Vec<u32> = y.argmax_rows()?.into_iter().map(|i| i as u32).collect();
    let onehot = Tensor::one_hot(&idx, k, logits.device())?;
    y.add(&onehot.sub(&y.detach())?)
}

/// Σ_k π_k (log π_k + log K) per row, π = softmax(ℓ).
pub fn categorical_kl_uniform(logits: &Tensor) -> Result<Tensor> {
    let (_, k) = logits.dims2("categorical_kl_uniform")?;
    let lp = logits.log_softmax()?;
    lp.exp()?.mul(&lp.add_scalar((k as f32).ln())?)?.sum(1)
}

/// Σ_d −log p(x | o) per row for the given likelihood.
fn nll_rows(decoded: &Tensor, targets: &Tensor, likelihood: Likelihood) -> Result<Tensor> {
    match likelihood {
        Likelihood::Bernoulli => decoded.bce_with_logits_rows(targets),
        Likelihood::Gaussian { sigma } => decoded.gaussian_nll_rows(targets, sigma),
    }
}

/// U_b as M2 composes it: ℓ = nll(L, x repeated K times) + kl − log_prior, reshaped [B, K];
/// U = Σ_k q (ℓ + log q) with log q = log_softmax(c).
pub fn elbo_marginal(
    decoded: &Tensor,
    targets: &Tensor,
    kl: &Tensor,
    class_logits: &Tensor,
    log_prior: &Tensor,
    likelihood: Likelihood,
) -> Result<Tensor> {
    let (b, k) = class_logits.dims2("elbo_marginal")?;
    let xr = targets.repeat_interleave(k)?;
    let l = nll_rows(decoded, &xr, likelihood)?
        .add(&kl.reshape([b * k])?)?
        .reshape([b, k])?
        .sub(log_prior)?;
    let logq = class_logits.log_softmax()?;
    logq.exp()?.mul(&l.add(&logq)?)?.sum(1)
}

/// L_b = nll(L_b, x_b) + kl_b − log_prior(y_b).
pub fn elbo_labelled(
    decoded: &Tensor,
    targets: &Tensor,
    kl: &Tensor,
    labels: &[u32],
    log_prior: &Tensor,
    likelihood: Likelihood,
) -> Result<Tensor> {
    nll_rows(decoded, targets, likelihood)?
        .add(kl)?
        .sub(&log_prior.index_select(labels)?)
}

/// λ a + (1 − λ) a[partner] row-wise for a [B, …] tensor, through index_select and broadcasting.
fn mix_rows(a: &Tensor, partner: &[u32], lambda: &[f32]) -> Result<Tensor> {
    let b = a.dim("mixup_build", 0)?;
    let flat = a.reshape([b, a.elem_count() / b.max(1)])?;
    let lam = Tensor::from_slice(lambda, [b, 1], a.device())?;
    let one_minus: Vec<f32> = lambda.iter().map(|l| 1.0 - l).collect();
    let oml = Tensor::from_slice(&one_minus, [b, 1], a.device())?;
    flat.mul(&lam)?
        .add(&flat.index_select(partner)?.mul(&oml)?)?
        .reshape(a.shape().clone())
}

/// The mixup targets through index_select / mul / add (detached).
pub fn mixup_build(
    x: &Tensor,
    class: MixClass<'_>,
    latent: Option<MixLatent<'_>>,
    partner: &[u32],
    lambda: &[f32],
) -> Result<Mixed> {
    let _g = crate::no_grad();
    let q = match class {
        MixClass::Probs(q) => q.clone(),
        MixClass::Labels { labels, classes } => Tensor::one_hot(labels, classes, x.device())?,
    };
    let mix = |t: &Tensor| mix_rows(&t.detach(), partner, lambda);
    Ok(Mixed {
        x: mix(x)?,
        p: mix(&q)?,
        mu: latent.map(|l| mix(l.mu)).transpose()?,
        sigma: latent.map(|l| mix(l.sigma)).transpose()?,
    })
}

/// CE(softmax(c̃), p̃) via `cross_entropy_rows` + w(Σ (μ − μ̃)² + Σ (σ − σ̃)²).
pub fn mixup_loss(
    logits: &Tensor,
    latent: Option<MixLatent<'_>>,
    targets: &Mixed,
    latent_weight: f32,
) -> Result<Tensor> {
    let ce = logits.cross_entropy_rows(&targets.p)?;
    match (latent, &targets.mu, &targets.sigma) {
        (None, None, None) => Ok(ce),
        (Some(l), Some(mt), Some(st)) => {
            let w2 =
                l.mu.sub(mt)?
                    .square()?
                    .sum(1)?
                    .add(&l.sigma.sub(st)?.square()?.sum(1)?)?;
            ce.add(&w2.mul_scalar(latent_weight)?)
        }
        _ => Err(Error::invalid(
            "mixup_loss",
            "give the posterior (mu, sigma) exactly when the targets have mixed mu, sigma",
        )),
    }
}

//! SHOT-VAE's optimal-interpolation mixup (Feng et al., AAAI 2021) as tensor ops: building the
//! mixed inputs and their targets ([`mixup_build`], no gradient), and the loss of the encoder's
//! answer on the mixed input ([`mixup_loss`], differentiable). Kernels: `backend/cpu/mixup.rs`,
//! `kernels/mixup.cu`.
//!
//! ## Targets
//! Row b has a partner π(b) (a permutation of the batch, `partner`) and a weight λ_b ∈ [0, 1]
//! (`lambda`, e.g. from `backend::cpu::mixup::mixup_lambdas`):
//!
//! ```text
//! x̃_b = λ_b x_b + (1 − λ_b) x_π(b)          p̃_b = λ_b q_b + (1 − λ_b) q_π(b)
//! μ̃_b = λ_b μ_b + (1 − λ_b) μ_π(b)          σ̃_b = λ_b σ_b + (1 − λ_b) σ_π(b)
//! ```
//!
//! q_b is a detached probability row or onehot(y_b) for labels. p̃ is the minimiser of
//! λ KL(q_b‖p) + (1 − λ) KL(q_π(b)‖p); (μ̃, σ̃) is the 2-Wasserstein geodesic point between the two
//! diagonal Gaussians. λ = 1 returns row b exactly, λ = 0 its partner exactly.
//!
//! ## Loss
//! For classifier logits c̃ [B, K] and posterior μ(x̃), σ(x̃) [B, Z] computed on x̃:
//!
//! ```text
//! J_b = CE(softmax(c̃_b), p̃_b) + w (‖μ(x̃)_b − μ̃_b‖² + ‖σ(x̃)_b − σ̃_b‖²)
//! dc̃ = g (softmax(c̃) Σ_k p̃_k − p̃),   dμ = 2wg (μ − μ̃),   dσ = 2wg (σ − σ̃)
//! ```
//!
//! The targets (x̃, p̃, μ̃, σ̃) are constants: no gradient flows into them.

use super::{expect_dims, grad, rows_cols};
use crate::autograd::record;
use crate::backend::vae::{
    MixClass as BackendMixClass, MixupLossArgs, MixupOut, MixupShape, MixupSrc,
};
use crate::storage::Storage;
use crate::{Error, Result, Shape, Tensor};

/// The class information mixed by [`mixup_build`].
#[derive(Clone, Copy, Debug)]
pub enum MixClass<'a> {
    /// Class probabilities q(y|x) [B, K] (used as constants).
    Probs(&'a Tensor),
    /// Integer labels (B, each < `classes`): onehot targets.
    Labels { labels: &'a [u32], classes: usize },
}

/// A diagonal Gaussian posterior per row: means and standard deviations (not log-variances),
/// both [B, Z].
#[derive(Clone, Copy, Debug)]
pub struct MixLatent<'a> {
    pub mu: &'a Tensor,
    pub sigma: &'a Tensor,
}

/// What [`mixup_build`] returns: the mixed input and the targets, all without gradient.
#[derive(Clone, Debug)]
pub struct Mixed {
    /// x̃, the shape of x.
    pub x: Tensor,
    /// p̃ [B, K].
    pub p: Tensor,
    /// μ̃ [B, Z], when a latent was given.
    pub mu: Option<Tensor>,
    /// σ̃ [B, Z], when a latent was given.
    pub sigma: Option<Tensor>,
}

/// The rows B of `t` and the elements per row.
fn batch_rows(op: &'static str, t: &Tensor) -> Result<(usize, usize)> {
    match t.dims().split_first() {
        Some((&b, rest)) => Ok((b, rest.iter().product())),
        None => Err(Error::shape(
            op,
            t.dims(),
            &[],
            "x must have a batch axis (rank ≥ 1)",
        )),
    }
}

/// Mix each row of `x` (any shape [B, …]), its class information and (optionally) its Gaussian
/// posterior with row `partner[b]`, weight `lambda[b]` ∈ [0, 1]. All outputs are constants.
pub fn mixup_build(
    x: &Tensor,
    class: MixClass<'_>,
    latent: Option<MixLatent<'_>>,
    partner: &[u32],
    lambda: &[f32],
) -> Result<Mixed> {
    let op = "mixup_build";
    let (b, d) = batch_rows(op, x)?;
    if partner.len() != b || lambda.len() != b {
        return Err(Error::shape(
            op,
            &[partner.len(), lambda.len()],
            &[b, b],
            format!(
                "partner and lambda need one entry per row of x {:?}",
                x.dims()
            ),
        ));
    }
    let k = match class {
        MixClass::Probs(q) => {
            let (qb, k) = rows_cols(op, "q", q)?;
            if qb != b {
                return Err(Error::shape(
                    op,
                    q.dims(),
                    x.dims(),
                    "q needs one row per row of x",
                ));
            }
            k
        }
        MixClass::Labels { labels, classes } => {
            if labels.len() != b {
                return Err(Error::shape(
                    op,
                    &[labels.len()],
                    x.dims(),
                    "labels need one entry per row of x",
                ));
            }
            classes
        }
    };
    let z = match latent {
        Some(l) => {
            let (lb, z) = rows_cols(op, "mu", l.mu)?;
            if lb != b {
                return Err(Error::shape(
                    op,
                    l.mu.dims(),
                    x.dims(),
                    "mu needs one row per row of x",
                ));
            }
            expect_dims(op, "sigma", l.sigma, l.mu.dims())?;
            z
        }
        None => 0,
    };
    let s = MixupShape {
        batch: b,
        features: d,
        classes: k,
        latent: z,
    };
    let empty = Storage::zeros(0, x.device())?;
    let build = |class: BackendMixClass<'_, Storage>| -> Result<MixupOut<Storage>> {
        let xs = x.storage();
        let (ms, ss) = match latent {
            Some(l) => (Some(l.mu.storage()), Some(l.sigma.storage())),
            None => (None, None),
        };
        let src = MixupSrc {
            x: &*xs,
            class,
            mu: ms.as_deref().unwrap_or(&empty),
            sigma: ss.as_deref().unwrap_or(&empty),
        };
        Storage::mixup_build(s, &src, partner, lambda)
    };
    let out = match class {
        MixClass::Probs(q) => build(BackendMixClass::Probs(&q.storage()))?,
        MixClass::Labels { labels, .. } => build(BackendMixClass::Labels(labels))?,
    };
    let MixupOut {
        x: mx,
        p,
        mu,
        sigma,
    } = out;
    let t = |st: Storage, dims: Vec<usize>| Tensor::from_storage(st, Shape(dims), None);
    Ok(Mixed {
        x: t(mx, x.dims().to_vec()),
        p: t(p, vec![b, k]),
        mu: latent.map(|_| t(mu, vec![b, z])),
        sigma: latent.map(|_| t(sigma, vec![b, z])),
    })
}

/// Per-row J_b = CE(softmax(c̃_b), p̃_b) + w(‖μ(x̃)_b − μ̃_b‖² + ‖σ(x̃)_b − σ̃_b‖²) → \[B\], for
/// `logits` c̃ [B, K] and (optionally) the posterior on x̃; `targets` from [`mixup_build`] (with
/// μ̃, σ̃ exactly when `latent` is given). Differentiable w.r.t. logits, μ(x̃) and σ(x̃).
pub fn mixup_loss(
    logits: &Tensor,
    latent: Option<MixLatent<'_>>,
    targets: &Mixed,
    latent_weight: f32,
) -> Result<Tensor> {
    let op = "mixup_loss";
    let (b, k) = rows_cols(op, "logits", logits)?;
    if k == 0 {
        return Err(Error::shape(
            op,
            logits.dims(),
            &[],
            "need at least one class",
        ));
    }
    expect_dims(op, "target p", &targets.p, &[b, k])?;
    if !latent_weight.is_finite() {
        return Err(Error::invalid(
            op,
            format!("latent_weight must be finite, got {latent_weight}"),
        ));
    }
    let mut ins = vec![logits.clone()];
    let (z, tgt) = match (latent, &targets.mu, &targets.sigma) {
        (Some(l), Some(mt), Some(st)) => {
            let (lb, z) = rows_cols(op, "mu", l.mu)?;
            if lb != b {
                return Err(Error::shape(
                    op,
                    l.mu.dims(),
                    logits.dims(),
                    "mu needs one row per row of the logits",
                ));
            }
            expect_dims(op, "sigma", l.sigma, l.mu.dims())?;
            expect_dims(op, "target mu", mt, l.mu.dims())?;
            expect_dims(op, "target sigma", st, l.mu.dims())?;
            ins.push(l.mu.clone());
            ins.push(l.sigma.clone());
            (z, Some((mt.clone(), st.clone())))
        }
        (None, None, None) => (0, None),
        _ => {
            return Err(Error::invalid(
                op,
                "give the posterior (mu, sigma) exactly when the targets have mixed mu, sigma",
            ))
        }
    };
    let s = MixupShape {
        batch: b,
        features: 0,
        classes: k,
        latent: z,
    };
    let device = logits.device();
    // Every buffer the kernels read, in a fixed order: logits, p, then (μ, μ̃, σ, σ̃) or empties.
    let bufs: Vec<Tensor> = {
        let mut v = vec![logits.clone(), targets.p.clone()];
        match (&tgt, latent) {
            (Some((mt, st)), Some(l)) => {
                v.extend([l.mu.clone(), mt.clone(), l.sigma.clone(), st.clone()])
            }
            _ => {
                let e = Tensor::zeros([b, 0], device)?;
                v.extend([e.clone(), e.clone(), e.clone(), e]);
            }
        }
        v
    };
    let run = move |grad_out: Option<&Tensor>| -> Result<(Storage, Option<[Storage; 3]>)> {
        let g: Vec<_> = bufs.iter().map(|t| t.storage()).collect();
        let args = MixupLossArgs {
            logits: &*g[0],
            p: &*g[1],
            mu: &*g[2],
            mu_target: &*g[3],
            sigma: &*g[4],
            sigma_target: &*g[5],
            latent_weight,
        };
        match grad_out {
            None => Ok((Storage::mixup_loss_forward(s, &args)?, None)),
            Some(up) => {
                let gr = Storage::mixup_loss_backward(s, &args, &up.storage())?;
                Ok((
                    Storage::zeros(0, up.device())?,
                    Some([gr.d_logits, gr.d_mu, gr.d_sigma]),
                ))
            }
        }
    };
    let (loss, _) = run(None)?;
    let with_latent = tgt.is_some();
    Ok(record(loss, Shape(vec![b]), op, ins, move |g| {
        let (_, grads) = run(Some(g))?;
        let [dl, dm, ds] =
            grads.ok_or_else(|| Error::msg("mixup_loss: the backward returned no gradients"))?;
        let mut out = vec![Some(grad(dl, &Shape(vec![b, k])))];
        if with_latent {
            out.push(Some(grad(dm, &Shape(vec![b, z]))));
            out.push(Some(grad(ds, &Shape(vec![b, z]))));
        }
        Ok(out)
    }))
}

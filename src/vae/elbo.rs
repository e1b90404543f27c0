//! M2's negative ELBO (Kingma et al. 2014, Eq. 6–7) as one fused, differentiable tensor op per
//! case: [`elbo_marginal`] (unlabelled, y summed out exactly) and [`elbo_labelled`] (kernels:
//! `backend/cpu/elbo.rs`, `kernels/elbo.cu`).
//!
//! ## Unlabelled (marginal) bound
//! Inputs: decoder outputs L [B·K, D] (row b·K + k is x_b decoded with y = k), targets x [B, D],
//! kl \[B·K\] (or [B, K]) = KL(q(z|x_b, y=k) ‖ p(z)), classifier logits c [B, K] with
//! q_b = softmax(c_b), and log_prior \[K\] = log p(y = k).
//!
//! ```text
//! ℓ_bk = nll_bk + kl_bk − log_prior_k,        nll_bk = Σ_d −log p(x_bd | L_bk,d)
//! U_b  = Σ_k q_bk ℓ_bk − H(q_b) = Σ_k q_bk a_bk,   a_bk = ℓ_bk + log q_bk
//! ```
//!
//! with −log p the Bernoulli BCE-with-logits or a fixed-σ Gaussian ([`Likelihood`]). For an
//! upstream g_b = ∂J/∂U_b the gradients are
//!
//! ```text
//! dL_bk,d       = g_b q_bk ∂nll/∂L         (Bernoulli: σ(L) − x;  Gaussian: (L − x)/σ²)
//! dkl_bk        = g_b q_bk
//! dc_bj         = g_b q_bj (a_bj − U_b)    (through the softmax; sums to 0 over j)
//! dlog_prior_k  = −Σ_b g_b q_bk
//! ```
//!
//! The forward reads L once and keeps only nll \[B·K\] for the backward; no (B·K)×D intermediate
//! is stored, where the composition of primitives stores several (the BCE's repeated targets,
//! its gradient, the broadcast products).
//!
//! ## Labelled bound
//! q_b = onehot(y_b): L [B, D], kl \[B\], and L_b = nll_b + kl_b − log_prior_{y_b}; gradients
//! dL = g ∂nll/∂L, dkl = g, dlog_prior_k = −Σ_{b: y_b = k} g_b.
//!
//! No gradient flows to the targets x (data).

use super::{expect_dims, grad, rows_cols};
use crate::autograd::record;
use crate::backend::vae::{ClassQ, ElboArgs, ElboShape, Likelihood};
use crate::storage::Storage;
use crate::{Error, Result, Shape, Tensor};

/// D of `targets` [B, D] (B given), checked to be at least 1.
fn features(op: &'static str, targets: &Tensor, batch: usize) -> Result<usize> {
    let (b, d) = rows_cols(op, "targets", targets)?;
    if b != batch || d == 0 {
        return Err(Error::shape(
            op,
            targets.dims(),
            &[batch],
            format!("targets must be [B = {batch}, D ≥ 1]"),
        ));
    }
    Ok(d)
}

/// The per-row unlabelled negative ELBO U_b \[B\] of M2 with y marginalised exactly (see the
/// module docs): `decoded` [B·K, D], `targets` [B, D], `kl` \[B·K\] or [B, K], `class_logits`
/// [B, K], `log_prior` \[K\]. Differentiable w.r.t. `decoded`, `kl`, `class_logits` and
/// `log_prior`.
pub fn elbo_marginal(
    decoded: &Tensor,
    targets: &Tensor,
    kl: &Tensor,
    class_logits: &Tensor,
    log_prior: &Tensor,
    likelihood: Likelihood,
) -> Result<Tensor> {
    let op = "elbo_marginal";
    let (b, k) = rows_cols(op, "class_logits", class_logits)?;
    if k == 0 {
        return Err(Error::shape(
            op,
            class_logits.dims(),
            &[],
            "need at least one class",
        ));
    }
    let d = features(op, targets, b)?;
    expect_dims(op, "decoded", decoded, &[b * k, d])?;
    if kl.dims() != [b * k] && kl.dims() != [b, k] {
        return Err(Error::shape(
            op,
            kl.dims(),
            &[b * k],
            format!("kl must be [B·K] = [{}] or [B, K] = [{b}, {k}]", b * k),
        ));
    }
    expect_dims(op, "log_prior", log_prior, &[k])?;
    let shape = ElboShape {
        batch: b,
        classes: k,
        features: d,
    };
    let out = {
        let (ds, xs, ks, cs, ps) = (
            decoded.storage(),
            targets.storage(),
            kl.storage(),
            class_logits.storage(),
            log_prior.storage(),
        );
        let args = ElboArgs {
            decoded: &*ds,
            targets: &*xs,
            kl: &*ks,
            log_prior: &*ps,
            q: ClassQ::Logits(&*cs),
        };
        Storage::elbo_marginal_forward(likelihood, shape, &args)?
    };
    let nll = Tensor::from_storage(out.nll, Shape(vec![b * k]), None);
    let ins = [
        decoded.clone(),
        targets.clone(),
        kl.clone(),
        class_logits.clone(),
        log_prior.clone(),
    ];
    let saved = ins.clone();
    Ok(record(
        out.loss,
        Shape(vec![b]),
        op,
        ins.to_vec(),
        move |g| {
            let [dec, x, kl, c, lp] = &saved;
            let gr = {
                let (ds, xs, ks, cs, ps) = (
                    dec.storage(),
                    x.storage(),
                    kl.storage(),
                    c.storage(),
                    lp.storage(),
                );
                let args = ElboArgs {
                    decoded: &*ds,
                    targets: &*xs,
                    kl: &*ks,
                    log_prior: &*ps,
                    q: ClassQ::Logits(&*cs),
                };
                Storage::elbo_marginal_backward(
                    likelihood,
                    shape,
                    &args,
                    &nll.storage(),
                    &g.storage(),
                )?
            };
            let d_logits = gr.d_logits.ok_or_else(|| {
                Error::msg("elbo_marginal: the backward kernel returned no class-logit gradient")
            })?;
            let d_kl = grad(gr.d_kl, kl.shape());
            let d_prior = if lp.tracks_grad() {
                Some(d_kl.reshape([b, k])?.sum(0)?.neg()?)
            } else {
                None
            };
            Ok(vec![
                Some(grad(gr.d_decoded, dec.shape())),
                None,
                Some(d_kl),
                Some(grad(d_logits, c.shape())),
                d_prior,
            ])
        },
    ))
}

/// The per-row labelled negative ELBO L_b = nll_b + kl_b − log_prior_{y_b} \[B\] of M2:
/// `decoded` [B, D] (x_b decoded with its label), `targets` [B, D], `kl` \[B\], `labels` (B, each
/// < K), `log_prior` \[K\]. Differentiable w.r.t. `decoded`, `kl` and `log_prior`.
pub fn elbo_labelled(
    decoded: &Tensor,
    targets: &Tensor,
    kl: &Tensor,
    labels: &[u32],
    log_prior: &Tensor,
    likelihood: Likelihood,
) -> Result<Tensor> {
    let op = "elbo_labelled";
    let b = labels.len();
    let d = features(op, targets, b)?;
    expect_dims(op, "decoded", decoded, &[b, d])?;
    expect_dims(op, "kl", kl, &[b])?;
    let k = match log_prior.dims() {
        &[k] if k > 0 => k,
        dims => {
            return Err(Error::shape(
                op,
                dims,
                &[],
                "log_prior must be [K] with K ≥ 1",
            ))
        }
    };
    let shape = ElboShape {
        batch: b,
        classes: k,
        features: d,
    };
    let out = {
        let (ds, xs, ks, ps) = (
            decoded.storage(),
            targets.storage(),
            kl.storage(),
            log_prior.storage(),
        );
        let args = ElboArgs {
            decoded: &*ds,
            targets: &*xs,
            kl: &*ks,
            log_prior: &*ps,
            q: ClassQ::Labels(labels),
        };
        Storage::elbo_marginal_forward(likelihood, shape, &args)?
    };
    let nll = Tensor::from_storage(out.nll, Shape(vec![b]), None);
    let ins = [
        decoded.clone(),
        targets.clone(),
        kl.clone(),
        log_prior.clone(),
    ];
    let saved = ins.clone();
    let labels = labels.to_vec();
    Ok(record(
        out.loss,
        Shape(vec![b]),
        op,
        ins.to_vec(),
        move |g| {
            let [dec, x, kl, lp] = &saved;
            let gr = {
                let (ds, xs, ks, ps) = (dec.storage(), x.storage(), kl.storage(), lp.storage());
                let args = ElboArgs {
                    decoded: &*ds,
                    targets: &*xs,
                    kl: &*ks,
                    log_prior: &*ps,
                    q: ClassQ::Labels(&labels),
                };
                Storage::elbo_marginal_backward(
                    likelihood,
                    shape,
                    &args,
                    &nll.storage(),
                    &g.storage(),
                )?
            };
            let d_prior = if lp.tracks_grad() {
                let summed = g.storage().index_add_rows(&labels, 1, k)?;
                Some(grad(summed, lp.shape()).neg()?)
            } else {
                None
            };
            Ok(vec![
                Some(grad(gr.d_decoded, dec.shape())),
                None,
                Some(grad(gr.d_kl, kl.shape())),
                d_prior,
            ])
        },
    ))
}

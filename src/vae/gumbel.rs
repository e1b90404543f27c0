//! Gumbel-softmax sampling and the KL of a categorical to the uniform prior, as differentiable
//! tensor ops (kernels: `backend/cpu/gumbel.rs`, `kernels/gumbel.cu`).
//!
//! ## Gumbel-softmax (Jang et al. 2017; Maddison et al. 2017)
//! For logits ℓ [B, K], temperature τ > 0 and u_bk = element b·K + k of the U(0, 1) Philox draw
//! at `key` (the numbers of `Tensor::rand([B, K], key)`):
//!
//! ```text
//! g_bk = −log(−log u_bk),   y_b = softmax((ℓ_b + g_b) / τ)
//! dℓ_bj = (1/τ) · y_bj · (dy_bj − Σ_k dy_bk y_bk)
//! ```
//!
//! With `hard`, the forward returns the one-hot of argmax_k (ℓ_bk + g_bk) (ties to the lowest
//! index) and the backward is still the soft one above: the straight-through estimator, i.e.
//! the gradient of y_soft + stop_gradient(onehot − y_soft).
//!
//! ## KL to the uniform prior
//! With π_b = softmax(ℓ_b):
//!
//! ```text
//! KL_b = Σ_k π_bk (log π_bk + log K),   dℓ_bj = dKL_b · π_bj (log π_bj + log K − KL_b)
//! ```
//!
//! computed through log-softmax, so classes with π → 0 contribute exactly 0 (no 0·∞).

use super::{grad, rows_cols};
use crate::autograd::record;
use crate::rng::RngKey;
use crate::{Error, Result, Shape, Tensor};

/// A Gumbel-softmax sample [B, K] of `logits` [B, K] at temperature `tau` (finite, > 0), noise
/// from `key`. `hard` gives exact one-hot rows with the straight-through gradient.
pub fn gumbel_softmax(logits: &Tensor, tau: f32, hard: bool, key: RngKey) -> Result<Tensor> {
    let op = "gumbel_softmax";
    let (rows, cols) = rows_cols(op, "logits", logits)?;
    if cols == 0 {
        return Err(Error::shape(
            op,
            logits.dims(),
            &[],
            "a categorical needs at least one class",
        ));
    }
    if !(tau.is_finite() && tau > 0.0) {
        return Err(Error::invalid(
            op,
            format!("temperature must be finite and > 0, got {tau}"),
        ));
    }
    let y = logits
        .storage()
        .gumbel_softmax_forward(rows, cols, tau, hard, key)?;
    let l = logits.clone();
    Ok(record(
        y,
        logits.shape().clone(),
        if hard {
            "gumbel_softmax_hard"
        } else {
            "gumbel_softmax"
        },
        vec![logits.clone()],
        move |g| {
            let d = l
                .storage()
                .gumbel_softmax_backward(&g.storage(), rows, cols, tau, key)?;
            Ok(vec![Some(grad(d, l.shape()))])
        },
    ))
}

/// KL(softmax(ℓ_b) ‖ Uniform(K)) per row of `logits` [B, K] → \[B\].
pub fn categorical_kl_uniform(logits: &Tensor) -> Result<Tensor> {
    let op = "categorical_kl_uniform";
    let (rows, cols) = rows_cols(op, "logits", logits)?;
    if cols == 0 {
        return Err(Error::shape(
            op,
            logits.dims(),
            &[],
            "a categorical needs at least one class",
        ));
    }
    let kl = logits
        .storage()
        .categorical_kl_uniform_forward(rows, cols)?;
    let l = logits.clone();
    Ok(record(
        kl,
        Shape(vec![rows]),
        op,
        vec![logits.clone()],
        move |g| {
            let d = l
                .storage()
                .categorical_kl_uniform_backward(&g.storage(), rows, cols)?;
            Ok(vec![Some(grad(d, l.shape()))])
        },
    ))
}

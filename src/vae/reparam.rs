//! The reparameterisation trick fused with its KL term, and the KL between two diagonal
//! Gaussians, as differentiable tensor ops (kernels: `backend/cpu/reparam.rs`,
//! `kernels/reparam.cu`).
//!
//! ## Reparameterisation
//! For μ, lv = log σ² of shape [B, D] and ε_bd = element b·D + d of the N(0, 1) Philox draw at
//! `key` (exactly the numbers of `Tensor::randn([B, D], key)`):
//!
//! ```text
//! z_bd  = μ_bd + exp(½ lv_bd) · ε_bd
//! kl_b  = KL(N(μ_b, diag e^{lv_b}) ‖ N(0, I)) = −½ Σ_d (1 + lv_bd − μ_bd² − e^{lv_bd})
//! ```
//!
//! Gradients, for upstream dz [B, D] and dkl \[B\]:
//!
//! ```text
//! dμ  = dz + dkl_b · μ
//! dlv = dz · ½ e^{½ lv} · ε + dkl_b · ½ (e^{lv} − 1)
//! ```
//!
//! z and kl are two tensors with one tape node each (inputs μ, lv). When a loss uses both, the
//! tape sums the two nodes' contributions at μ and lv, which is exactly the formula above (it is
//! linear in (dz, dkl)); the kl node's backward reads no ε, so the cost of the split is one
//! extra elementwise pass.
//!
//! ## KL between diagonal Gaussians
//!
//! ```text
//! KL(N(μq, e^{lvq}) ‖ N(μp, e^{lvp})) = ½ Σ_d (lvp − lvq + (e^{lvq} + (μq − μp)²) / e^{lvp} − 1)
//! ∂/∂μq = Δ e^{−lvp},  ∂/∂μp = −Δ e^{−lvp},  ∂/∂lvq = ½ (e^{δ} − 1),
//! ∂/∂lvp = −½ (e^{δ} − 1 + Δ² e^{−lvp}),       δ = lvq − lvp, Δ = μq − μp.
//! ```

use super::{expect_dims, grad, rows_cols};
use crate::autograd::record;
use crate::rng::RngKey;
use crate::{Result, Shape, Tensor};

/// z = μ + exp(½ lv) ⊙ ε and the per-row KL(q ‖ N(0, I)), for `mu`, `logvar` of shape [B, D].
/// ε is the N(0, 1) draw at `key` (the same numbers as `Tensor::randn([B, D], key)`, on every
/// backend). Returns (z [B, D], kl \[B\]); both are differentiable w.r.t. μ and log σ².
pub fn reparameterize(mu: &Tensor, logvar: &Tensor, key: RngKey) -> Result<(Tensor, Tensor)> {
    let op = "reparameterize";
    let (rows, cols) = rows_cols(op, "mu", mu)?;
    expect_dims(op, "logvar", logvar, mu.dims())?;
    let out = mu
        .storage()
        .reparam_forward(&logvar.storage(), rows, cols, key)?;
    let inputs = vec![mu.clone(), logvar.clone()];
    let (m, l) = (mu.clone(), logvar.clone());
    let z = record(
        out.z,
        mu.shape().clone(),
        "reparameterize_z",
        inputs.clone(),
        move |g| {
            let gr = m.storage().reparam_backward(
                &l.storage(),
                Some(&g.storage()),
                None,
                rows,
                cols,
                key,
            )?;
            Ok(vec![
                Some(grad(gr.d_mu, m.shape())),
                Some(grad(gr.d_logvar, l.shape())),
            ])
        },
    );
    let (m, l) = (mu.clone(), logvar.clone());
    let kl = record(
        out.kl,
        Shape(vec![rows]),
        "reparameterize_kl",
        inputs,
        move |g| {
            let gr = m.storage().reparam_backward(
                &l.storage(),
                None,
                Some(&g.storage()),
                rows,
                cols,
                key,
            )?;
            Ok(vec![
                Some(grad(gr.d_mu, m.shape())),
                Some(grad(gr.d_logvar, l.shape())),
            ])
        },
    );
    Ok((z, kl))
}

/// Per-row KL(N(μq, diag e^{lvq}) ‖ N(μp, diag e^{lvp})) for four [B, D] tensors; exactly 0 when
/// q = p. Differentiable w.r.t. all four (broadcast a shared prior with `broadcast_as` first: its
/// gradient is then summed back by the tape).
pub fn gaussian_kl(
    mu_q: &Tensor,
    logvar_q: &Tensor,
    mu_p: &Tensor,
    logvar_p: &Tensor,
) -> Result<Tensor> {
    let op = "gaussian_kl";
    let (rows, cols) = rows_cols(op, "mu_q", mu_q)?;
    expect_dims(op, "logvar_q", logvar_q, mu_q.dims())?;
    expect_dims(op, "mu_p", mu_p, mu_q.dims())?;
    expect_dims(op, "logvar_p", logvar_p, mu_q.dims())?;
    let kl = mu_q.storage().gaussian_kl_forward(
        &logvar_q.storage(),
        &mu_p.storage(),
        &logvar_p.storage(),
        rows,
        cols,
    )?;
    let ins = [
        mu_q.clone(),
        logvar_q.clone(),
        mu_p.clone(),
        logvar_p.clone(),
    ];
    let saved = ins.clone();
    Ok(record(
        kl,
        Shape(vec![rows]),
        "gaussian_kl",
        ins.to_vec(),
        move |g| {
            let [mq, lq, mp, lp] = &saved;
            let gr = mq.storage().gaussian_kl_backward(
                &lq.storage(),
                &mp.storage(),
                &lp.storage(),
                &g.storage(),
                rows,
                cols,
            )?;
            let shape = mq.shape();
            Ok(vec![
                Some(grad(gr.d_mu_q, shape)),
                Some(grad(gr.d_logvar_q, shape)),
                Some(grad(gr.d_mu_p, shape)),
                Some(grad(gr.d_logvar_p, shape)),
            ])
        },
    ))
}

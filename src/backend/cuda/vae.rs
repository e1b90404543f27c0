//! Launches the fused VAE kernels — `kernels/{reparam,gumbel,elbo,mixup}.cu` — as the CUDA
//! implementation of [`VaeKernels`]. The maths of every kernel is in its `.cu` header and in the
//! doc comment of its CPU twin (`backend/cpu/{reparam,gumbel,elbo,mixup}.rs`); this file only
//! checks arguments, picks launch shapes and queues the kernels.
//!
//! Validation happens here, on the host, before anything is launched, with the CPU twins' checks
//! and messages (`Error::shape` / `Error::invalid`): buffer lengths, a class and a feature for
//! the categorical / ELBO ops, τ > 0, a finite σ > 0 for the Gaussian likelihood, labels < K,
//! partners < B, λ ∈ [0, 1] — for the ELBO and mixup ops these are the very `check` methods of
//! the argument structs in `backend/vae.rs` that the CPU runs — and every buffer on the same
//! device. The kernels do not
//! re-check (a bad label there would read out of bounds), and every dimension must fit the
//! kernels' `int`.
//!
//! Launch shapes (the ones documented in the `.cu` files):
//! - warp per row — `reparam_forward`, `gaussian_kl_forward`, everything in `gumbel.cu`,
//!   `elbo_labelled_forward`, `mixup_loss_*`: 256 threads (8 warps, 8 rows) per block,
//!   grid = ⌈rows / 8⌉;
//! - block per batch row — `elbo_marginal_*` (32·min(K, 8) threads: one warp per class, at most
//!   8 warps) and `mixup_build` (32–256 threads, enough to cover the widest of D, K, Z): grid = B;
//! - elementwise grid-stride — `reparam_backward`, `gaussian_kl_backward`,
//!   `elbo_labelled_backward`: 256 threads, ⌈n / 256⌉ blocks (capped, the loop strides).
//!
//! Host side inputs (labels, mixup partners and weights λ) go to the device through the runtime's
//! pinned staging ring ([`CudaRuntime::upload`]): queued on the one stream, no host wait. The
//! temporary device copy is released right after the launch; the caching allocator hands it out
//! again only to work queued later on the same stream, so that is safe. No op synchronises.
//!
//! Empty problems (B = 0, or D = 0 where the CPU allows it) launch nothing: outputs are empty, or
//! zero where the CPU returns zeros (the per-row KLs of a 0-column input).

use super::runtime::{launch, CudaRuntime};
use super::{grid_1d, to_i32, CudaStorage};
use crate::backend::vae::{check_len, numel};
use crate::backend::vae::{
    BufferLen, ClassQ, ElboArgs, ElboGrad, ElboOut, ElboShape, GaussianKlGrad, Likelihood,
    MixClass, MixupLossArgs, MixupLossGrad, MixupOut, MixupShape, MixupSrc, ReparamGrad,
    ReparamOut, VaeKernels,
};
use crate::rng::RngKey;
use crate::{Error, Result};
use cudarc::driver::LaunchConfig;
use std::sync::Arc;

const REPARAM: &str = "reparam.cu";
const GUMBEL: &str = "gumbel.cu";
const ELBO: &str = "elbo.cu";
const MIXUP: &str = "mixup.cu";

/// Threads per block of the warp-per-row kernels (8 warps, so 8 rows per block).
const ROW_BLOCK: u32 = 256;

/// Threads per block of the elementwise grid-stride kernels.
const ELEMENTWISE_BLOCK: u32 = 256;

/// Warp per row (vae_common.cuh): blockDim.x a multiple of 32, grid = ⌈rows / (blockDim.x/32)⌉.
fn warp_per_row(rows: i32) -> LaunchConfig {
    let rows_per_block = ROW_BLOCK / 32;
    LaunchConfig {
        grid_dim: ((rows as u32).div_ceil(rows_per_block).max(1), 1, 1),
        block_dim: (ROW_BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Block per batch row: grid = B, `threads` a multiple of 32 (required by the kernels that finish
/// sums with full-warp shuffles).
fn block_per_row(batch: i32, threads: u32) -> LaunchConfig {
    debug_assert!(threads.is_multiple_of(32) && (32..=1024).contains(&threads));
    LaunchConfig {
        grid_dim: (batch.max(1) as u32, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// `elbo_marginal_*`: one warp per class, at most 8 warps (classes past 8 are strided).
fn elbo_block(classes: usize) -> u32 {
    32 * classes.clamp(1, 8) as u32
}

/// `mixup_build`: enough threads to cover the widest of D, K, Z in one stride, 32 to 256.
fn mixup_block(s: MixupShape) -> u32 {
    let widest = s.features.max(s.classes).max(s.latent).clamp(1, 256);
    (widest.div_ceil(32) * 32) as u32
}

/// An error unless every buffer lives on `first`'s device.
fn same_device(op: &'static str, first: &CudaStorage, others: &[&CudaStorage]) -> Result<()> {
    others.iter().try_for_each(|o| first.same_device(op, o))
}

/// Every dimension as the kernels' `int`.
fn dims<const N: usize>(op: &'static str, named: [(&str, usize); N]) -> Result<[i32; N]> {
    let mut out = [0i32; N];
    for (o, (what, v)) in out.iter_mut().zip(named) {
        *o = to_i32(op, what, v)?;
    }
    Ok(out)
}

/// The kernels' `(likelihood, sigma)` pair: 0 = Bernoulli, 1 = Gaussian with a finite σ > 0.
fn likelihood_args(op: &'static str, l: Likelihood) -> Result<(i32, f32)> {
    match l {
        Likelihood::Bernoulli => Ok((0, 1.0)),
        Likelihood::Gaussian { sigma } => {
            if !(sigma.is_finite() && sigma > 0.0) {
                return Err(Error::invalid(
                    op,
                    format!("Gaussian likelihood needs a finite σ > 0, got {sigma}"),
                ));
            }
            Ok((1, sigma))
        }
    }
}

/// A categorical needs a class and a finite temperature τ > 0 (gumbel.rs's checks).
fn check_gumbel(op: &'static str, logits: &CudaStorage, rows: usize, cols: usize) -> Result<usize> {
    if cols == 0 {
        return Err(Error::invalid(op, "a categorical needs at least one class"));
    }
    let n = numel(op, &[rows, cols])?;
    check_len(op, "logits", logits.len, n)?;
    Ok(n)
}

fn check_tau(op: &'static str, tau: f32) -> Result<()> {
    if !(tau.is_finite() && tau > 0.0) {
        return Err(Error::invalid(
            op,
            format!("temperature must be finite and > 0, got {tau}"),
        ));
    }
    Ok(())
}

/// The ELBO's argument checks (shared with the CPU twin) plus one device for every buffer;
/// returns the decoder rows per batch row, K (`Logits`) or 1 (`Labels`).
fn check_elbo(op: &'static str, s: ElboShape, inp: &ElboArgs<'_, CudaStorage>) -> Result<usize> {
    let per_row = inp.check(op, s)?;
    if let ClassQ::Logits(c) = inp.q {
        inp.decoded.same_device(op, c)?;
    }
    same_device(op, inp.decoded, &[inp.targets, inp.kl, inp.log_prior])?;
    Ok(per_row)
}

/// The mixup loss's argument checks (shared with the CPU twin) plus one device for every buffer.
fn check_mixup_loss(
    op: &'static str,
    s: MixupShape,
    inp: &MixupLossArgs<'_, CudaStorage>,
) -> Result<()> {
    inp.check(op, s)?;
    same_device(
        op,
        inp.logits,
        &[inp.p, inp.mu, inp.mu_target, inp.sigma, inp.sigma_target],
    )
}

impl BufferLen for CudaStorage {
    fn buffer_len(&self) -> usize {
        self.len
    }
}

/// `n` uninitialised f32 on `rt`.
fn out(rt: &Arc<CudaRuntime>, n: usize) -> Result<CudaStorage> {
    CudaStorage::uninit(rt, n)
}

impl VaeKernels for CudaStorage {
    fn reparam_forward(
        &self,
        logvar: &Self,
        rows: usize,
        cols: usize,
        key: RngKey,
    ) -> Result<ReparamOut<Self>> {
        const OP: &str = "reparam_forward";
        let n = numel(OP, &[rows, cols])?;
        check_len(OP, "mu", self.len, n)?;
        check_len(OP, "logvar", logvar.len, n)?;
        self.same_device(OP, logvar)?;
        let [r, c] = dims(OP, [("rows", rows), ("cols", cols)])?;
        let rt = self.runtime();
        if n == 0 {
            // D = 0: every row's KL is an empty sum.
            return Ok(ReparamOut {
                z: out(rt, 0)?,
                kl: CudaStorage::zeroed(rt, rows)?,
            });
        }
        let (z, kl) = (out(rt, n)?, out(rt, rows)?);
        let (mp, lp, zp, kp) = (self.ptr(), logvar.ptr(), z.ptr(), kl.ptr());
        launch!(
            rt,
            REPARAM,
            "reparam_forward",
            warp_per_row(r),
            &mp,
            &lp,
            &zp,
            &kp,
            &r,
            &c,
            &key.seed,
            &key.offset,
            &key.stream
        )?;
        Ok(ReparamOut { z, kl })
    }

    fn reparam_backward(
        &self,
        logvar: &Self,
        dz: Option<&Self>,
        dkl: Option<&Self>,
        rows: usize,
        cols: usize,
        key: RngKey,
    ) -> Result<ReparamGrad<Self>> {
        const OP: &str = "reparam_backward";
        let n = numel(OP, &[rows, cols])?;
        check_len(OP, "mu", self.len, n)?;
        check_len(OP, "logvar", logvar.len, n)?;
        self.same_device(OP, logvar)?;
        if let Some(dz) = dz {
            check_len(OP, "dz", dz.len, n)?;
            self.same_device(OP, dz)?;
        }
        if let Some(dkl) = dkl {
            check_len(OP, "dkl", dkl.len, rows)?;
            self.same_device(OP, dkl)?;
        }
        let [r, c] = dims(OP, [("rows", rows), ("cols", cols)])?;
        let rt = self.runtime();
        let (d_mu, d_logvar) = (out(rt, n)?, out(rt, n)?);
        if n == 0 {
            return Ok(ReparamGrad { d_mu, d_logvar });
        }
        // A null pointer tells the kernel that upstream is zero.
        let (dzp, dkp) = (dz.map_or(0, |d| d.ptr()), dkl.map_or(0, |d| d.ptr()));
        let (mp, lp, gm, gl) = (self.ptr(), logvar.ptr(), d_mu.ptr(), d_logvar.ptr());
        launch!(
            rt,
            REPARAM,
            "reparam_backward",
            grid_1d(n as u64, ELEMENTWISE_BLOCK),
            &mp,
            &lp,
            &dzp,
            &dkp,
            &gm,
            &gl,
            &r,
            &c,
            &key.seed,
            &key.offset,
            &key.stream
        )?;
        Ok(ReparamGrad { d_mu, d_logvar })
    }

    fn gaussian_kl_forward(
        &self,
        logvar_q: &Self,
        mu_p: &Self,
        logvar_p: &Self,
        rows: usize,
        cols: usize,
    ) -> Result<Self> {
        const OP: &str = "gaussian_kl_forward";
        let n = numel(OP, &[rows, cols])?;
        for (what, s) in [
            ("mu_q", self),
            ("logvar_q", logvar_q),
            ("mu_p", mu_p),
            ("logvar_p", logvar_p),
        ] {
            check_len(OP, what, s.len, n)?;
        }
        same_device(OP, self, &[logvar_q, mu_p, logvar_p])?;
        let [r, c] = dims(OP, [("rows", rows), ("cols", cols)])?;
        let rt = self.runtime();
        if n == 0 {
            return CudaStorage::zeroed(rt, rows);
        }
        let kl = out(rt, rows)?;
        let (a, b, cp, d, kp) = (
            self.ptr(),
            logvar_q.ptr(),
            mu_p.ptr(),
            logvar_p.ptr(),
            kl.ptr(),
        );
        launch!(
            rt,
            REPARAM,
            "gaussian_kl_forward",
            warp_per_row(r),
            &a,
            &b,
            &cp,
            &d,
            &kp,
            &r,
            &c
        )?;
        Ok(kl)
    }

    fn gaussian_kl_backward(
        &self,
        logvar_q: &Self,
        mu_p: &Self,
        logvar_p: &Self,
        dkl: &Self,
        rows: usize,
        cols: usize,
    ) -> Result<GaussianKlGrad<Self>> {
        const OP: &str = "gaussian_kl_backward";
        let n = numel(OP, &[rows, cols])?;
        for (what, s) in [
            ("mu_q", self),
            ("logvar_q", logvar_q),
            ("mu_p", mu_p),
            ("logvar_p", logvar_p),
        ] {
            check_len(OP, what, s.len, n)?;
        }
        check_len(OP, "dkl", dkl.len, rows)?;
        same_device(OP, self, &[logvar_q, mu_p, logvar_p, dkl])?;
        let [r, c] = dims(OP, [("rows", rows), ("cols", cols)])?;
        let rt = self.runtime();
        let g = GaussianKlGrad {
            d_mu_q: out(rt, n)?,
            d_logvar_q: out(rt, n)?,
            d_mu_p: out(rt, n)?,
            d_logvar_p: out(rt, n)?,
        };
        if n == 0 {
            return Ok(g);
        }
        let (a, b, cp, d, gp) = (
            self.ptr(),
            logvar_q.ptr(),
            mu_p.ptr(),
            logvar_p.ptr(),
            dkl.ptr(),
        );
        let (o0, o1, o2, o3) = (
            g.d_mu_q.ptr(),
            g.d_logvar_q.ptr(),
            g.d_mu_p.ptr(),
            g.d_logvar_p.ptr(),
        );
        launch!(
            rt,
            REPARAM,
            "gaussian_kl_backward",
            grid_1d(n as u64, ELEMENTWISE_BLOCK),
            &a,
            &b,
            &cp,
            &d,
            &gp,
            &o0,
            &o1,
            &o2,
            &o3,
            &r,
            &c
        )?;
        Ok(g)
    }

    fn gumbel_softmax_forward(
        &self,
        rows: usize,
        cols: usize,
        tau: f32,
        hard: bool,
        key: RngKey,
    ) -> Result<Self> {
        const OP: &str = "gumbel_softmax_forward";
        check_tau(OP, tau)?;
        let n = check_gumbel(OP, self, rows, cols)?;
        let [r, c] = dims(OP, [("rows", rows), ("cols", cols)])?;
        let rt = self.runtime();
        let y = out(rt, n)?;
        if n == 0 {
            return Ok(y);
        }
        let (lp, yp, h) = (self.ptr(), y.ptr(), hard as i32);
        launch!(
            rt,
            GUMBEL,
            "gumbel_softmax_forward",
            warp_per_row(r),
            &lp,
            &yp,
            &r,
            &c,
            &tau,
            &h,
            &key.seed,
            &key.offset,
            &key.stream
        )?;
        Ok(y)
    }

    fn gumbel_softmax_backward(
        &self,
        dy: &Self,
        rows: usize,
        cols: usize,
        tau: f32,
        key: RngKey,
    ) -> Result<Self> {
        const OP: &str = "gumbel_softmax_backward";
        check_tau(OP, tau)?;
        let n = check_gumbel(OP, self, rows, cols)?;
        check_len(OP, "dy", dy.len, n)?;
        self.same_device(OP, dy)?;
        let [r, c] = dims(OP, [("rows", rows), ("cols", cols)])?;
        let rt = self.runtime();
        let dl = out(rt, n)?;
        if n == 0 {
            return Ok(dl);
        }
        let (lp, gp, op) = (self.ptr(), dy.ptr(), dl.ptr());
        launch!(
            rt,
            GUMBEL,
            "gumbel_softmax_backward",
            warp_per_row(r),
            &lp,
            &gp,
            &op,
            &r,
            &c,
            &tau,
            &key.seed,
            &key.offset,
            &key.stream
        )?;
        Ok(dl)
    }

    fn categorical_kl_uniform_forward(&self, rows: usize, cols: usize) -> Result<Self> {
        const OP: &str = "categorical_kl_uniform_forward";
        check_gumbel(OP, self, rows, cols)?;
        let [r, c] = dims(OP, [("rows", rows), ("cols", cols)])?;
        let rt = self.runtime();
        let kl = out(rt, rows)?;
        if rows == 0 {
            return Ok(kl);
        }
        let (lp, kp) = (self.ptr(), kl.ptr());
        launch!(
            rt,
            GUMBEL,
            "categorical_kl_uniform_forward",
            warp_per_row(r),
            &lp,
            &kp,
            &r,
            &c
        )?;
        Ok(kl)
    }

    fn categorical_kl_uniform_backward(
        &self,
        dkl: &Self,
        rows: usize,
        cols: usize,
    ) -> Result<Self> {
        const OP: &str = "categorical_kl_uniform_backward";
        let n = check_gumbel(OP, self, rows, cols)?;
        check_len(OP, "dkl", dkl.len, rows)?;
        self.same_device(OP, dkl)?;
        let [r, c] = dims(OP, [("rows", rows), ("cols", cols)])?;
        let rt = self.runtime();
        let dl = out(rt, n)?;
        if n == 0 {
            return Ok(dl);
        }
        let (lp, gp, op) = (self.ptr(), dkl.ptr(), dl.ptr());
        launch!(
            rt,
            GUMBEL,
            "categorical_kl_uniform_backward",
            warp_per_row(r),
            &lp,
            &gp,
            &op,
            &r,
            &c
        )?;
        Ok(dl)
    }

    fn elbo_marginal_forward(
        likelihood: Likelihood,
        s: ElboShape,
        inp: &ElboArgs<'_, Self>,
    ) -> Result<ElboOut<Self>> {
        const OP: &str = "elbo_marginal_forward";
        let (lik, sigma) = likelihood_args(OP, likelihood)?;
        let per_row = check_elbo(OP, s, inp)?;
        let [b, k, d] = dims(
            OP,
            [
                ("batch", s.batch),
                ("classes", s.classes),
                ("features", s.features),
            ],
        )?;
        let rt = inp.decoded.runtime();
        let (loss, nll) = (out(rt, s.batch)?, out(rt, s.batch * per_row)?);
        if s.batch == 0 {
            return Ok(ElboOut { loss, nll });
        }
        let (dp, xp, kp, pp) = (
            inp.decoded.ptr(),
            inp.targets.ptr(),
            inp.kl.ptr(),
            inp.log_prior.ptr(),
        );
        let (np, lp) = (nll.ptr(), loss.ptr());
        match inp.q {
            ClassQ::Logits(c) => {
                let cp = c.ptr();
                launch!(
                    rt,
                    ELBO,
                    "elbo_marginal_forward",
                    block_per_row(b, elbo_block(s.classes)),
                    &dp,
                    &xp,
                    &kp,
                    &cp,
                    &pp,
                    &np,
                    &lp,
                    &b,
                    &k,
                    &d,
                    &lik,
                    &sigma
                )?;
            }
            ClassQ::Labels(y) => {
                let labels = rt.upload(y)?;
                let yp = labels.ptr();
                launch!(
                    rt,
                    ELBO,
                    "elbo_labelled_forward",
                    warp_per_row(b),
                    &dp,
                    &xp,
                    &kp,
                    &yp,
                    &pp,
                    &np,
                    &lp,
                    &b,
                    &k,
                    &d,
                    &lik,
                    &sigma
                )?;
            }
        }
        Ok(ElboOut { loss, nll })
    }

    fn elbo_marginal_backward(
        likelihood: Likelihood,
        s: ElboShape,
        inp: &ElboArgs<'_, Self>,
        nll: &Self,
        grad: &Self,
    ) -> Result<ElboGrad<Self>> {
        const OP: &str = "elbo_marginal_backward";
        let (lik, sigma) = likelihood_args(OP, likelihood)?;
        let per_row = check_elbo(OP, s, inp)?;
        check_len(OP, "nll", nll.len, s.batch * per_row)?;
        check_len(OP, "grad", grad.len, s.batch)?;
        same_device(OP, inp.decoded, &[nll, grad])?;
        let [b, k, d] = dims(
            OP,
            [
                ("batch", s.batch),
                ("classes", s.classes),
                ("features", s.features),
            ],
        )?;
        let rt = inp.decoded.runtime();
        let d_decoded = out(rt, inp.decoded.len)?;
        let d_kl = out(rt, s.batch * per_row)?;
        let d_logits = match inp.q {
            ClassQ::Logits(_) => Some(out(rt, s.batch * s.classes)?),
            ClassQ::Labels(_) => None,
        };
        let (dp, xp, gp, odp, okp) = (
            inp.decoded.ptr(),
            inp.targets.ptr(),
            grad.ptr(),
            d_decoded.ptr(),
            d_kl.ptr(),
        );
        if s.batch > 0 {
            match (inp.q, &d_logits) {
                (ClassQ::Logits(c), Some(dc)) => {
                    let (kp, cp, pp, np, ocp) = (
                        inp.kl.ptr(),
                        c.ptr(),
                        inp.log_prior.ptr(),
                        nll.ptr(),
                        dc.ptr(),
                    );
                    launch!(
                        rt,
                        ELBO,
                        "elbo_marginal_backward",
                        block_per_row(b, elbo_block(s.classes)),
                        &dp,
                        &xp,
                        &kp,
                        &cp,
                        &pp,
                        &np,
                        &gp,
                        &odp,
                        &okp,
                        &ocp,
                        &b,
                        &k,
                        &d,
                        &lik,
                        &sigma
                    )?;
                }
                _ => {
                    // Labelled: the gradient does not depend on the label (only the forward's
                    // −log p(y) term does, and log_prior gets no gradient from this op).
                    launch!(
                        rt,
                        ELBO,
                        "elbo_labelled_backward",
                        grid_1d((s.batch * s.features) as u64, ELEMENTWISE_BLOCK),
                        &dp,
                        &xp,
                        &gp,
                        &odp,
                        &okp,
                        &b,
                        &d,
                        &lik,
                        &sigma
                    )?;
                }
            }
        }
        Ok(ElboGrad {
            d_decoded,
            d_kl,
            d_logits,
        })
    }

    fn mixup_build(
        s: MixupShape,
        src: &MixupSrc<'_, Self>,
        partner: &[u32],
        lambda: &[f32],
    ) -> Result<MixupOut<Self>> {
        const OP: &str = "mixup_build";
        src.check(OP, s, partner, lambda)?;
        let (b, d, k, z) = (s.batch, s.features, s.classes, s.latent);
        let bk = numel(OP, &[b, k])?;
        same_device(OP, src.x, &[src.mu, src.sigma])?;
        let labels = match src.class {
            MixClass::Probs(q) => {
                src.x.same_device(OP, q)?;
                None
            }
            MixClass::Labels(y) => Some(y),
        };
        let [bi, di, ki, zi] = dims(
            OP,
            [("batch", b), ("features", d), ("classes", k), ("latent", z)],
        )?;
        let rt = src.x.runtime();
        let o = MixupOut {
            x: out(rt, b * d)?,
            p: out(rt, bk)?,
            mu: out(rt, b * z)?,
            sigma: out(rt, b * z)?,
        };
        if b == 0 {
            return Ok(o);
        }
        // One upload for the three host slices: [partner (B) | λ bits (B) | labels (B, if any)].
        let mut host: Vec<u32> = Vec::with_capacity(3 * b);
        host.extend_from_slice(partner);
        host.extend(lambda.iter().map(|l| l.to_bits()));
        if let Some(y) = labels {
            host.extend_from_slice(y);
        }
        let side = rt.upload(&host)?;
        let partner_p = side.ptr();
        let lambda_p = partner_p + 4 * b as u64;
        let (qp, yp) = match src.class {
            MixClass::Probs(q) => (q.ptr(), 0u64),
            MixClass::Labels(_) => (0u64, partner_p + 8 * b as u64),
        };
        let (xp, mp, sp) = (src.x.ptr(), src.mu.ptr(), src.sigma.ptr());
        let (ox, op, om, os) = (o.x.ptr(), o.p.ptr(), o.mu.ptr(), o.sigma.ptr());
        launch!(
            rt,
            MIXUP,
            "mixup_build",
            block_per_row(bi, mixup_block(s)),
            &xp,
            &qp,
            &yp,
            &mp,
            &sp,
            &partner_p,
            &lambda_p,
            &ox,
            &op,
            &om,
            &os,
            &bi,
            &di,
            &ki,
            &zi
        )?;
        Ok(o)
    }

    fn mixup_loss_forward(s: MixupShape, inp: &MixupLossArgs<'_, Self>) -> Result<Self> {
        const OP: &str = "mixup_loss_forward";
        check_mixup_loss(OP, s, inp)?;
        let [b, k, z] = dims(
            OP,
            [
                ("batch", s.batch),
                ("classes", s.classes),
                ("latent", s.latent),
            ],
        )?;
        let rt = inp.logits.runtime();
        let loss = out(rt, s.batch)?;
        if s.batch == 0 {
            return Ok(loss);
        }
        let (cp, pp, mp, mtp, sp, stp, lp) = (
            inp.logits.ptr(),
            inp.p.ptr(),
            inp.mu.ptr(),
            inp.mu_target.ptr(),
            inp.sigma.ptr(),
            inp.sigma_target.ptr(),
            loss.ptr(),
        );
        let w = inp.latent_weight;
        launch!(
            rt,
            MIXUP,
            "mixup_loss_forward",
            warp_per_row(b),
            &cp,
            &pp,
            &mp,
            &mtp,
            &sp,
            &stp,
            &lp,
            &b,
            &k,
            &z,
            &w
        )?;
        Ok(loss)
    }

    fn mixup_loss_backward(
        s: MixupShape,
        inp: &MixupLossArgs<'_, Self>,
        grad: &Self,
    ) -> Result<MixupLossGrad<Self>> {
        const OP: &str = "mixup_loss_backward";
        check_mixup_loss(OP, s, inp)?;
        check_len(OP, "grad", grad.len, s.batch)?;
        inp.logits.same_device(OP, grad)?;
        let [b, k, z] = dims(
            OP,
            [
                ("batch", s.batch),
                ("classes", s.classes),
                ("latent", s.latent),
            ],
        )?;
        let rt = inp.logits.runtime();
        let g = MixupLossGrad {
            d_logits: out(rt, s.batch * s.classes)?,
            d_mu: out(rt, s.batch * s.latent)?,
            d_sigma: out(rt, s.batch * s.latent)?,
        };
        if s.batch == 0 {
            return Ok(g);
        }
        let (cp, pp, mp, mtp, sp, stp, gp) = (
            inp.logits.ptr(),
            inp.p.ptr(),
            inp.mu.ptr(),
            inp.mu_target.ptr(),
            inp.sigma.ptr(),
            inp.sigma_target.ptr(),
            grad.ptr(),
        );
        let (oc, om, os) = (g.d_logits.ptr(), g.d_mu.ptr(), g.d_sigma.ptr());
        let w = inp.latent_weight;
        launch!(
            rt,
            MIXUP,
            "mixup_loss_backward",
            warp_per_row(b),
            &cp,
            &pp,
            &mp,
            &mtp,
            &sp,
            &stp,
            &gp,
            &oc,
            &om,
            &os,
            &b,
            &k,
            &z,
            &w
        )?;
        Ok(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_shapes() {
        // warp per row: 8 rows per 256-thread block
        let c = warp_per_row(33);
        assert_eq!((c.grid_dim.0, c.block_dim.0), (5, 256));
        assert_eq!(warp_per_row(1).grid_dim.0, 1);
        assert_eq!(warp_per_row(8).grid_dim.0, 1);
        assert_eq!(warp_per_row(9).grid_dim.0, 2);
        // ELBO: one warp per class up to 8 warps, always a multiple of 32
        assert_eq!(elbo_block(1), 32);
        assert_eq!(elbo_block(7), 224);
        assert_eq!(elbo_block(37), 256);
        // mixup_build: covers the widest of D, K, Z, a multiple of 32 in 32..=256
        let shape = |d, k, z| MixupShape {
            batch: 3,
            features: d,
            classes: k,
            latent: z,
        };
        assert_eq!(mixup_block(shape(0, 0, 0)), 32);
        assert_eq!(mixup_block(shape(1, 10, 0)), 32);
        assert_eq!(mixup_block(shape(33, 10, 2)), 64);
        assert_eq!(mixup_block(shape(784, 10, 50)), 256);
        for t in [elbo_block(5), mixup_block(shape(100, 3, 3))] {
            assert!(t.is_multiple_of(32) && (32..=1024).contains(&t));
        }
        assert_eq!(block_per_row(7, 64).grid_dim.0, 7);
    }

    #[test]
    fn likelihood_arguments() {
        assert_eq!(likelihood_args("t", Likelihood::Bernoulli).unwrap().0, 0);
        assert_eq!(
            likelihood_args("t", Likelihood::Gaussian { sigma: 0.5 }).unwrap(),
            (1, 0.5)
        );
        for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            assert!(likelihood_args("t", Likelihood::Gaussian { sigma: bad }).is_err());
        }
        assert!(check_tau("t", 0.5).is_ok());
        assert!(check_tau("t", 0.0).is_err());
        assert!(check_tau("t", f32::NAN).is_err());
    }
}

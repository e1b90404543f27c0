//! The fused, class-marginalised negative ELBO of M2 (Kingma et al. 2014, "Semi-supervised
//! learning with deep generative models", Eq. 7) — the op that makes an unlabelled batch cost one
//! pass over the K decoded copies instead of K separate loss graphs. CPU reference of
//! `kernels/elbo.cu`.
//!
//! ## Inputs (B rows, K classes, D features)
//! - decoder outputs L, (B·K)×D: row b·K + k is x_b decoded with y = k (logits for a Bernoulli
//!   likelihood, means for a Gaussian one);
//! - targets x, B×D;
//! - kl, B·K: KL(q(z|x_b, y=k) ‖ p(z)) (from the reparam op);
//! - classifier logits c, B×K, q_b = softmax(c_b) = q(y|x_b);
//! - log_prior, K: log p(y = k).
//!
//! ## Unlabelled loss (what the forward returns per row)
//! ℓ_bk = nll_bk + kl_bk − log_prior_k,  nll_bk = Σ_d −log p(x_bd | L_bk,d),
//! U_b  = Σ_k q_bk ℓ_bk − H(q_b) = Σ_k q_bk (ℓ_bk + log q_bk) = Σ_k q_bk a_k,
//! with a_k = ℓ_bk + log q_bk and log q from log_softmax (finite where q underflows; a term with
//! q_bk = 0 contributes exactly 0, never −∞·0).
//!
//! Likelihoods (per element, `Likelihood`):
//! - Bernoulli: −log p = BCE(l, x) = max(l, 0) − l·x + log(1 + e^{−|l|}), ∂/∂l = σ(l) − x;
//! - Gaussian, fixed σ: −log p = ½((x − o)²/σ² + log(2πσ²)), ∂/∂o = (o − x)/σ².
//!
//! ## Backward (upstream g_b = ∂J/∂U_b)
//! - ∂U_b/∂L_bk,d = q_bk · ∂nll_bk/∂L_bk,d, so dL_bk,d = g_b q_bk (σ(L_bk,d) − x_bd) (Bernoulli).
//! - ∂U_b/∂kl_bk = q_bk, so dkl_bk = g_b q_bk.
//! - Through the softmax: ∂q_k/∂c_j = q_k(δ_kj − q_j) and ∂log q_k/∂c_j = δ_kj − q_j, hence
//!
//! ```text
//! ∂U/∂c_j = Σ_k ∂q_k/∂c_j · a_k + Σ_k q_k ∂log q_k/∂c_j
//!         = (q_j a_j − q_j Σ_k q_k a_k) + (q_j − q_j Σ_k q_k)
//!         = q_j (a_j − U)          (the second bracket vanishes since Σ_k q_k = 1)
//! ```
//!
//! so dc_bj = g_b · q_bj · (a_j − Σ_k q_bk a_k). Checks: it sums to 0 over j, as any gradient
//! through a softmax must; with ℓ constant in k it reduces to the gradient of −H(q), and with
//! a_j all equal (q ∝ e^{−ℓ}, the optimum of U over q) it vanishes.
//!
//! ## Labelled variant
//! q is the one-hot of y_b: decoder outputs are B×D (only the true class), kl is B, and
//! L_b = nll_b + kl_b − log_prior_{y_b}; no entropy and no classifier gradient.
//!
//! ## One pass
//! The forward reads every decoder output once and writes only nll (B·K, saved for the
//! backward) and U (B): no (B·K)×D intermediate. The backward recomputes log q from c and
//! a_k from the saved nll, and writes dL in a single pass. Per-row sums accumulate in f32 over
//! 16 interleaved lanes (`math::sum_zip`), so the loop vectorises; the kernel's per-thread f32
//! partial sums and warp tree are another order of the same f32 sum.

use super::math::{sigmoid, softplus, sum_zip};
use super::pool;
use rayon::prelude::*;

use super::gumbel::{log_softmax_row, rows_per_task};
use crate::backend::vae::{check_len, ClassQ, ElboArgs};
use crate::{Error, Result};

/// The per-element likelihood p(x | decoder output).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Likelihood {
    /// Bernoulli with logits: −log p = BCE-with-logits.
    Bernoulli,
    /// Gaussian with fixed standard deviation σ around the decoder output.
    Gaussian { sigma: f32 },
}

/// Sizes: B rows, K classes, D features.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElboShape {
    pub batch: usize,
    pub classes: usize,
    pub features: usize,
}

/// Outputs of [`elbo_marginal_forward`].
#[derive(Clone, Debug, PartialEq)]
pub struct ElboForward {
    /// U_b (or L_b for labels), B.
    pub loss: Vec<f32>,
    /// nll_bk = Σ_d −log p(x_b | L_bk) (B·K; B for labels), needed by the backward.
    pub nll: Vec<f32>,
}

/// Gradients of [`elbo_marginal_backward`].
#[derive(Clone, Debug, PartialEq)]
pub struct ElboGrads {
    /// Same shape as `decoded`.
    pub d_decoded: Vec<f32>,
    /// Same shape as `kl`.
    pub d_kl: Vec<f32>,
    /// d c (B×K) for `Logits`; `None` for `Labels`.
    pub d_logits: Option<Vec<f32>>,
}

/// A likelihood with its constants folded, used per element.
#[derive(Clone, Copy)]
enum Lik {
    Bernoulli,
    Gaussian { inv_var: f32, log_norm: f32 },
}

impl Lik {
    fn new(op: &'static str, l: Likelihood) -> Result<Self> {
        match l {
            Likelihood::Bernoulli => Ok(Lik::Bernoulli),
            Likelihood::Gaussian { sigma } => {
                if !(sigma.is_finite() && sigma > 0.0) {
                    return Err(Error::invalid(
                        op,
                        format!("Gaussian likelihood needs a finite σ > 0, got {sigma}"),
                    ));
                }
                let var = sigma * sigma;
                Ok(Lik::Gaussian {
                    inv_var: 1.0 / var,
                    log_norm: (std::f32::consts::TAU * var).ln(),
                })
            }
        }
    }

    /// −log p(x | o) for one element.
    #[inline]
    fn nll(self, o: f32, x: f32) -> f32 {
        match self {
            Lik::Bernoulli => softplus(o) - o * x,
            Lik::Gaussian { inv_var, log_norm } => {
                let d = x - o;
                0.5 * (d * d * inv_var + log_norm)
            }
        }
    }

    /// ∂(−log p)/∂o for one element.
    #[inline]
    fn grad(self, o: f32, x: f32) -> f32 {
        match self {
            Lik::Bernoulli => sigmoid(o) - x,
            Lik::Gaussian { inv_var, .. } => (o - x) * inv_var,
        }
    }
}

/// Σ_d −log p(x_d | o_d) over one row (16 lanes, so the loop vectorises).
#[inline]
fn row_nll(lik: Lik, o: &[f32], x: &[f32]) -> f32 {
    match lik {
        // One loop per likelihood, so that no match is left inside it.
        Lik::Bernoulli => sum_zip(o, x, |o, x| Lik::Bernoulli.nll(o, x)),
        Lik::Gaussian { .. } => sum_zip(o, x, |o, x| lik.nll(o, x)),
    }
}

/// out_d = w · ∂(−log p(x_d | o_d))/∂o_d over one row.
#[inline]
fn row_grad(lik: Lik, w: f32, o: &[f32], x: &[f32], out: &mut [f32]) {
    let rows = out.iter_mut().zip(o).zip(x);
    match lik {
        // One loop per likelihood, so that no match is left inside it.
        Lik::Bernoulli => rows.for_each(|((d, &o), &x)| *d = w * Lik::Bernoulli.grad(o, x)),
        Lik::Gaussian { .. } => rows.for_each(|((d, &o), &x)| *d = w * lik.grad(o, x)),
    }
}

/// Σ_k q_k a_k with a_k = ℓ_k + log q_k written into `a` (log q given in `a` on entry);
/// terms with q_k = 0 contribute 0.
#[inline]
fn marginal_row(nll: &[f32], kl: &[f32], log_prior: &[f32], a: &mut [f32]) -> f32 {
    let mut u = 0.0f32;
    for k in 0..a.len() {
        let lq = a[k];
        a[k] = nll[k] + kl[k] - log_prior[k] + lq;
        let q = lq.exp();
        if q > 0.0 {
            u += q * a[k];
        }
    }
    u
}

/// The per-row negative ELBO: U_b (marginalised over classes, `ClassQ::Logits`) or L_b
/// (`ClassQ::Labels`), plus the per-(b, k) reconstruction nll the backward needs.
pub fn elbo_marginal_forward(
    likelihood: Likelihood,
    s: ElboShape,
    inp: &ElboArgs<[f32]>,
) -> Result<ElboForward> {
    let op = "elbo_marginal_forward";
    let lik = Lik::new(op, likelihood)?;
    let per_row = inp.check(op, s)?;
    let (b, k, d) = (s.batch, s.classes, s.features);
    let mut loss = pool::zeros(b);
    let mut nll = pool::zeros(b * per_row);
    loss.par_iter_mut()
        .zip(nll.par_chunks_mut(per_row))
        .zip(inp.decoded.par_chunks(per_row * d))
        .zip(inp.targets.par_chunks(d))
        .with_min_len(rows_per_task(per_row * d))
        .enumerate()
        .for_each(|(r, (((u, nr), dec), x))| {
            for (j, n) in nr.iter_mut().enumerate() {
                *n = row_nll(lik, &dec[j * d..(j + 1) * d], x);
            }
            *u = match inp.q {
                ClassQ::Labels(y) => nr[0] + inp.kl[r] - inp.log_prior[y[r] as usize],
                ClassQ::Logits(c) => {
                    let mut a = vec![0.0f32; k];
                    log_softmax_row(&c[r * k..(r + 1) * k], &mut a);
                    marginal_row(nr, &inp.kl[r * k..(r + 1) * k], inp.log_prior, &mut a)
                }
            };
        });
    Ok(ElboForward { loss, nll })
}

/// Gradients of [`elbo_marginal_forward`] given its saved `nll` and the upstream g (B):
/// dL_bk,d = g_b q_bk ∂nll/∂L, dkl_bk = g_b q_bk, dc_bj = g_b q_bj (a_j − U_b).
pub fn elbo_marginal_backward(
    likelihood: Likelihood,
    s: ElboShape,
    inp: &ElboArgs<[f32]>,
    nll: &[f32],
    grad: &[f32],
) -> Result<ElboGrads> {
    let op = "elbo_marginal_backward";
    let lik = Lik::new(op, likelihood)?;
    let per_row = inp.check(op, s)?;
    let (b, k, d) = (s.batch, s.classes, s.features);
    check_len(op, "nll", nll.len(), b * per_row)?;
    check_len(op, "grad", grad.len(), b)?;
    let mut d_decoded = pool::zeros(inp.decoded.len());
    let mut d_kl = pool::zeros(b * per_row);
    let mut d_logits = match inp.q {
        ClassQ::Logits(_) => pool::zeros(b * k),
        ClassQ::Labels(_) => Vec::new(),
    };
    let tasks = rows_per_task(per_row * d);
    match inp.q {
        ClassQ::Labels(_) => {
            d_decoded
                .par_chunks_mut(d)
                .zip(d_kl.par_iter_mut())
                .zip(inp.decoded.par_chunks(d).zip(inp.targets.par_chunks(d)))
                .zip(grad.par_iter())
                .with_min_len(tasks)
                .for_each(|(((dr, dk), (o, x)), &g)| {
                    *dk = g;
                    row_grad(lik, g, o, x, dr);
                });
        }
        ClassQ::Logits(c) => {
            d_decoded
                .par_chunks_mut(k * d)
                .zip(d_kl.par_chunks_mut(k))
                .zip(d_logits.par_chunks_mut(k))
                .zip(inp.decoded.par_chunks(k * d).zip(inp.targets.par_chunks(d)))
                .with_min_len(tasks)
                .enumerate()
                .for_each(|(r, (((dr, dk), dc), (dec, x)))| {
                    let g = grad[r];
                    // dc holds log q, then a_k, then the gradient.
                    log_softmax_row(&c[r * k..(r + 1) * k], dc);
                    let lq: Vec<f32> = dc.to_vec();
                    let u = marginal_row(
                        &nll[r * k..(r + 1) * k],
                        &inp.kl[r * k..(r + 1) * k],
                        inp.log_prior,
                        dc,
                    );
                    for j in 0..k {
                        let q = lq[j].exp();
                        let w = g * q;
                        dk[j] = w;
                        dc[j] = if q > 0.0 { w * (dc[j] - u) } else { 0.0 };
                        let span = j * d..(j + 1) * d;
                        row_grad(lik, w, &dec[span.clone()], x, &mut dr[span]);
                    }
                });
        }
    }
    Ok(ElboGrads {
        d_decoded,
        d_kl,
        d_logits: match inp.q {
            ClassQ::Logits(_) => Some(d_logits),
            ClassQ::Labels(_) => None,
        },
    })
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)] // index loops read like the formulas
mod tests {
    use super::super::gumbel::test_util::*;
    use super::*;
    use crate::rng::Rng;

    fn f64s(v: &[f32]) -> Vec<f64> {
        v.iter().map(|&x| x as f64).collect()
    }

    /// −log p(x | o) in f64, written plainly.
    fn ref_nll(lik: Likelihood, o: f64, x: f64) -> f64 {
        match lik {
            Likelihood::Bernoulli => o.max(0.0) - o * x + (1.0 + (-o.abs()).exp()).ln(),
            Likelihood::Gaussian { sigma } => {
                let s2 = (sigma as f64).powi(2);
                0.5 * ((x - o).powi(2) / s2 + (2.0 * std::f64::consts::PI * s2).ln())
            }
        }
    }

    /// The unfused reference: loops over b, k, d in f64, no tricks beyond a stable log-softmax.
    /// Returns U_b per row.
    #[allow(clippy::too_many_arguments)]
    fn ref_marginal(
        lik: Likelihood,
        b: usize,
        k: usize,
        d: usize,
        dec: &[f64],
        x: &[f64],
        kl: &[f64],
        c: &[f64],
        lp: &[f64],
    ) -> Vec<f64> {
        (0..b)
            .map(|r| {
                let cr = &c[r * k..(r + 1) * k];
                let m = cr.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let lse = m + cr.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
                let mut u = 0.0;
                for j in 0..k {
                    let log_q = cr[j] - lse;
                    let q = log_q.exp();
                    let mut bce = 0.0;
                    for e in 0..d {
                        bce += ref_nll(lik, dec[(r * k + j) * d + e], x[r * d + e]);
                    }
                    let ell = bce + kl[r * k + j] - lp[j];
                    u += q * ell; // Σ q ℓ
                    u += q * log_q; // − H(q)
                }
                u
            })
            .collect()
    }

    struct Problem {
        b: usize,
        k: usize,
        d: usize,
        dec: Vec<f32>,
        x: Vec<f32>,
        kl: Vec<f32>,
        c: Vec<f32>,
        lp: Vec<f32>,
    }

    fn problem(seed: u64, b: usize, k: usize, d: usize, scale: f32) -> Problem {
        let mut rng = Rng::new(seed, 0);
        let dec = normals(&mut rng, b * k * d, scale);
        // binary targets, with a few fractional ones (grey pixels)
        let x = uniforms(&mut rng, b * d, 0.0, 1.0)
            .into_iter()
            .map(|u| {
                if u < 0.4 {
                    0.0
                } else if u < 0.8 {
                    1.0
                } else {
                    u
                }
            })
            .collect();
        let kl = uniforms(&mut rng, b * k, 0.0, 5.0);
        let c = normals(&mut rng, b * k, 2.0);
        let lp = vec![-(k as f32).ln(); k];
        Problem {
            b,
            k,
            d,
            dec,
            x,
            kl,
            c,
            lp,
        }
    }

    impl Problem {
        fn shape(&self) -> ElboShape {
            ElboShape {
                batch: self.b,
                classes: self.k,
                features: self.d,
            }
        }
        fn inputs(&self) -> ElboArgs<'_, [f32]> {
            ElboArgs {
                decoded: &self.dec,
                targets: &self.x,
                kl: &self.kl,
                log_prior: &self.lp,
                q: ClassQ::Logits(&self.c),
            }
        }
        fn reference(&self, lik: Likelihood) -> Vec<f64> {
            ref_marginal(
                lik,
                self.b,
                self.k,
                self.d,
                &f64s(&self.dec),
                &f64s(&self.x),
                &f64s(&self.kl),
                &f64s(&self.c),
                &f64s(&self.lp),
            )
        }
    }

    const LIKS: [Likelihood; 2] = [Likelihood::Bernoulli, Likelihood::Gaussian { sigma: 0.7 }];

    /// The fused forward equals the plain f64 loop to ≤ 1e-5 relative, at MNIST-like sizes.
    #[test]
    fn fused_forward_equals_unfused_reference() {
        for lik in LIKS {
            let p = problem(1, 8, 10, 784, 3.0);
            let f = elbo_marginal_forward(lik, p.shape(), &p.inputs()).unwrap();
            let want = p.reference(lik);
            for r in 0..p.b {
                let rel = (f.loss[r] as f64 - want[r]).abs() / want[r].abs();
                assert!(
                    rel <= 1e-5,
                    "{lik:?} row {r}: {} vs {} ({rel})",
                    f.loss[r],
                    want[r]
                );
            }
            // the saved nll is the per-(b, k) reconstruction term
            for (i, &n) in f.nll.iter().enumerate() {
                let (r, _) = (i / p.k, i % p.k);
                let want: f64 = (0..p.d)
                    .map(|e| ref_nll(lik, p.dec[i * p.d + e] as f64, p.x[r * p.d + e] as f64))
                    .sum();
                assert!((n as f64 - want).abs() <= 1e-5 * want.abs());
            }
        }
    }

    #[test]
    fn backward_matches_finite_differences() {
        for lik in LIKS {
            let p = problem(2, 3, 4, 5, 1.5);
            let mut rng = Rng::new(3, 0);
            let g = normals(&mut rng, p.b, 1.0);
            let f = elbo_marginal_forward(lik, p.shape(), &p.inputs()).unwrap();
            let gr = elbo_marginal_backward(lik, p.shape(), &p.inputs(), &f.nll, &g).unwrap();
            let (dec, x, kl, c, lp) = (
                f64s(&p.dec),
                f64s(&p.x),
                f64s(&p.kl),
                f64s(&p.c),
                f64s(&p.lp),
            );
            let j = |dec: &[f64], kl: &[f64], c: &[f64]| -> f64 {
                ref_marginal(lik, p.b, p.k, p.d, dec, &x, kl, c, &lp)
                    .iter()
                    .zip(&g)
                    .map(|(u, &g)| u * g as f64)
                    .sum()
            };
            check_grad("d_decoded", &p.dec, &gr.d_decoded, 1e-1, |v| j(v, &kl, &c));
            check_grad("d_kl", &p.kl, &gr.d_kl, 1e-1, |v| j(&dec, v, &c));
            let dc = gr.d_logits.unwrap();
            check_grad("d_logits", &p.c, &dc, 1e-1, |v| j(&dec, &kl, v));
            // a gradient through a softmax sums to zero over classes
            for r in 0..p.b {
                let s: f32 = dc[r * p.k..(r + 1) * p.k].iter().sum();
                assert!(s.abs() < 1e-4, "row {r}: Σ dc = {s}");
            }
        }
    }

    fn labelled_reference(lik: Likelihood, p: &Problem, y: &[u32]) -> Vec<f64> {
        (0..p.b)
            .map(|r| {
                let yk = y[r] as usize;
                let mut nll = 0.0;
                for e in 0..p.d {
                    let o = p.dec[(r * p.k + yk) * p.d + e] as f64;
                    nll += ref_nll(lik, o, p.x[r * p.d + e] as f64);
                }
                nll + p.kl[r * p.k + yk] as f64 - p.lp[yk] as f64
            })
            .collect()
    }

    /// The labelled inputs picked out of a marginal problem: row y_b of each b.
    fn labelled_slices(p: &Problem, y: &[u32]) -> (Vec<f32>, Vec<f32>) {
        let mut dec = Vec::new();
        let mut kl = Vec::new();
        for r in 0..p.b {
            let row = r * p.k + y[r] as usize;
            dec.extend_from_slice(&p.dec[row * p.d..(row + 1) * p.d]);
            kl.push(p.kl[row]);
        }
        (dec, kl)
    }

    #[test]
    fn labelled_forward_backward() {
        for lik in LIKS {
            let p = problem(4, 5, 3, 6, 1.5);
            let y = [2u32, 0, 1, 1, 2];
            let (dec, kl) = labelled_slices(&p, &y);
            let inp: ElboArgs<[f32]> = ElboArgs {
                decoded: &dec,
                targets: &p.x,
                kl: &kl,
                log_prior: &p.lp,
                q: ClassQ::Labels(&y),
            };
            let f = elbo_marginal_forward(lik, p.shape(), &inp).unwrap();
            let want = labelled_reference(lik, &p, &y);
            for r in 0..p.b {
                assert!((f.loss[r] as f64 - want[r]).abs() <= 1e-5 * want[r].abs());
            }
            let mut rng = Rng::new(5, 0);
            let g = normals(&mut rng, p.b, 1.0);
            let gr = elbo_marginal_backward(lik, p.shape(), &inp, &f.nll, &g).unwrap();
            assert!(gr.d_logits.is_none());
            assert_eq!(gr.d_kl, g);
            let x = f64s(&p.x);
            let kl64 = f64s(&kl);
            check_grad("d_decoded", &dec, &gr.d_decoded, 1e-1, |v| {
                (0..p.b)
                    .map(|r| {
                        let yk = y[r] as usize;
                        let n: f64 = (0..p.d)
                            .map(|e| ref_nll(lik, v[r * p.d + e], x[r * p.d + e]))
                            .sum();
                        g[r] as f64 * (n + kl64[r] - p.lp[yk] as f64)
                    })
                    .sum()
            });
        }
    }

    /// With one logit at +100 (the rest 0) q is one-hot to f32 precision, and the marginal loss
    /// must equal the labelled one; so must the decoder and KL gradients.
    #[test]
    fn labelled_equals_marginal_for_one_hot_q() {
        for lik in LIKS {
            let mut p = problem(6, 4, 5, 30, 2.0);
            let y = [3u32, 0, 4, 2];
            p.c = vec![0.0; p.b * p.k];
            for r in 0..p.b {
                p.c[r * p.k + y[r] as usize] = 100.0;
            }
            let m = elbo_marginal_forward(lik, p.shape(), &p.inputs()).unwrap();
            let (dec, kl) = labelled_slices(&p, &y);
            let inp: ElboArgs<[f32]> = ElboArgs {
                decoded: &dec,
                targets: &p.x,
                kl: &kl,
                log_prior: &p.lp,
                q: ClassQ::Labels(&y),
            };
            let l = elbo_marginal_forward(lik, p.shape(), &inp).unwrap();
            for r in 0..p.b {
                assert!(
                    (m.loss[r] - l.loss[r]).abs() <= 1e-6 * l.loss[r].abs(),
                    "{} vs {}",
                    m.loss[r],
                    l.loss[r]
                );
            }
            let g = vec![1.0; p.b];
            let gm = elbo_marginal_backward(lik, p.shape(), &p.inputs(), &m.nll, &g).unwrap();
            let gl = elbo_marginal_backward(lik, p.shape(), &inp, &l.nll, &g).unwrap();
            let (gdec, gkl) = labelled_slices(
                &Problem {
                    dec: gm.d_decoded.clone(),
                    kl: gm.d_kl.clone(),
                    ..problem(6, 4, 5, 30, 2.0)
                },
                &y,
            );
            assert_eq!(gdec, gl.d_decoded);
            assert_eq!(gkl, gl.d_kl);
            assert!(gm.d_logits.unwrap().iter().all(|v| v.abs() < 1e-30));
        }
    }

    #[test]
    fn edge_cases() {
        for lik in LIKS {
            // K = 1: the marginal loss is the labelled one (q = 1, H = 0), dc = 0.
            let p = problem(7, 3, 1, 4, 1.0);
            let f = elbo_marginal_forward(lik, p.shape(), &p.inputs()).unwrap();
            let want = p.reference(lik);
            for r in 0..p.b {
                assert!((f.loss[r] as f64 - want[r]).abs() <= 1e-5 * want[r].abs());
            }
            let gr =
                elbo_marginal_backward(lik, p.shape(), &p.inputs(), &f.nll, &[1.0; 3]).unwrap();
            assert_eq!(gr.d_logits.unwrap(), vec![0.0; 3]);
            // D = 1, B = 1
            let p = problem(8, 1, 3, 1, 1.0);
            let f = elbo_marginal_forward(lik, p.shape(), &p.inputs()).unwrap();
            let want = p.reference(lik);
            assert!((f.loss[0] as f64 - want[0]).abs() <= 1e-5 * want[0].abs());
        }
        // decoder logits ±100 and classifier logits ±100 (q_bk → 0): finite everywhere, and
        // the reference agrees (BCE(±100, x) is exact: max(l,0) − l·x + log1p(e^{−100})).
        let mut p = problem(9, 4, 6, 20, 1.0);
        for (i, v) in p.dec.iter_mut().enumerate() {
            *v = if i % 3 == 0 { 100.0 } else { -100.0 };
        }
        for (i, v) in p.c.iter_mut().enumerate() {
            *v = if i % 5 == 0 { 100.0 } else { -100.0 };
        }
        let f = elbo_marginal_forward(Likelihood::Bernoulli, p.shape(), &p.inputs()).unwrap();
        let want = p.reference(Likelihood::Bernoulli);
        for r in 0..p.b {
            assert!(f.loss[r].is_finite());
            assert!((f.loss[r] as f64 - want[r]).abs() <= 1e-5 * want[r].abs());
        }
        let gr = elbo_marginal_backward(
            Likelihood::Bernoulli,
            p.shape(),
            &p.inputs(),
            &f.nll,
            &[1.0; 4],
        )
        .unwrap();
        assert!(gr
            .d_decoded
            .iter()
            .chain(&gr.d_kl)
            .chain(gr.d_logits.as_ref().unwrap())
            .all(|v| v.is_finite()));
        // a class with logit −∞ (q = 0 exactly, log q = −∞) contributes 0, not NaN
        let mut p = problem(10, 2, 3, 4, 1.0);
        p.c[1] = f32::NEG_INFINITY;
        let f = elbo_marginal_forward(Likelihood::Bernoulli, p.shape(), &p.inputs()).unwrap();
        assert!(f.loss.iter().all(|v| v.is_finite()));
        let gr = elbo_marginal_backward(
            Likelihood::Bernoulli,
            p.shape(),
            &p.inputs(),
            &f.nll,
            &[1.0; 2],
        )
        .unwrap();
        assert_eq!(gr.d_logits.as_ref().unwrap()[1], 0.0);
        assert!(gr.d_logits.unwrap().iter().all(|v| v.is_finite()));
    }

    #[test]
    fn bad_arguments_are_errors() {
        let p = problem(11, 2, 3, 4, 1.0);
        let s = p.shape();
        let mut inp = p.inputs();
        inp.decoded = &p.dec[1..];
        assert!(elbo_marginal_forward(Likelihood::Bernoulli, s, &inp).is_err());
        let mut inp = p.inputs();
        inp.kl = &p.kl[1..];
        assert!(elbo_marginal_forward(Likelihood::Bernoulli, s, &inp).is_err());
        let g = Likelihood::Gaussian { sigma: 0.0 };
        assert!(elbo_marginal_forward(g, s, &p.inputs()).is_err());
        let y = [0u32, 3];
        let mut inp = p.inputs();
        inp.q = ClassQ::Labels(&y);
        inp.decoded = &p.dec[..8];
        inp.kl = &p.kl[..2];
        assert!(elbo_marginal_forward(Likelihood::Bernoulli, s, &inp).is_err()); // label 3 ≥ K
        let f = elbo_marginal_forward(Likelihood::Bernoulli, s, &p.inputs()).unwrap();
        assert!(elbo_marginal_backward(
            Likelihood::Bernoulli,
            s,
            &p.inputs(),
            &f.nll[1..],
            &[1.0; 2]
        )
        .is_err());
        assert!(
            elbo_marginal_backward(Likelihood::Bernoulli, s, &p.inputs(), &f.nll, &[1.0; 3])
                .is_err()
        );
    }
}

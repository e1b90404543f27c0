//! The reparameterisation trick fused with its KL term, and the analytic KL between two diagonal
//! Gaussians — the continuous half of every VAE. CPU reference of `kernels/reparam.cu`.
//!
//! Layout: μ, log σ² are B rows × D latent dims, row-major. ε of element (b, d) is element
//! i = b·D + d of the Philox normal draw at `key` ([`crate::rng::normal_at`]); the CUDA kernels
//! draw the same numbers, so the two backends agree on z to rounding.
//!
//! ## Reparameterisation (forward)
//! z = μ + σ ⊙ ε with σ = exp(½ lv), and per row
//! KL(N(μ, σ²) ‖ N(0, I)) = −½ Σ_d (1 + lv − μ² − e^{lv}),
//! evaluated as −½ Σ_d (lv − expm1(lv) − μ²) so that the per-dimension term keeps its relative
//! accuracy when lv → 0 (1 + lv − e^{lv} ≈ −lv²/2 cancels catastrophically otherwise).
//!
//! ## Backward
//! Given dz (B×D) and dkl (B): ∂z/∂μ = 1, ∂z/∂lv = ½ e^{½lv} ε, ∂KL/∂μ = μ, ∂KL/∂lv = ½(e^{lv} − 1):
//! dμ = dz + dkl_b·μ,   dlv = dz·½e^{½lv}·ε + dkl_b·½ expm1(lv).
//! ε is recomputed from the key (no saved B×D buffer). Either upstream may be absent (`None`).
//!
//! ## KL between two diagonal Gaussians (for p(z|y) priors)
//! KL(N(μq, σq²) ‖ N(μp, σp²)) = ½ Σ_d (lvp − lvq + (e^{lvq} + (μq − μp)²)/e^{lvp} − 1)
//!                             = ½ Σ_d (expm1(δ) − δ + Δ² e^{−lvp}),  δ = lvq − lvp, Δ = μq − μp,
//! which is exactly 0 when q = p. Its partial derivatives:
//! ∂/∂μq = Δ e^{−lvp},  ∂/∂μp = −Δ e^{−lvp},  ∂/∂lvq = ½ expm1(δ),
//! ∂/∂lvp = ½(1 − e^{δ} − Δ² e^{−lvp}) = −½(expm1(δ) + Δ² e^{−lvp}).
//!
//! Row sums are accumulated in f64 (each term is computed in f32, as in the kernel).

use super::pool;
use rayon::prelude::*;

use super::gumbel::rows_per_task;
use crate::backend::vae::{check_len, numel};
use crate::rng::{normal_at, RngKey};
use crate::Result;

/// Outputs of [`reparam_forward`].
#[derive(Clone, Debug, PartialEq)]
pub struct ReparamForward {
    /// z = μ + exp(½ lv) ⊙ ε (B×D).
    pub z: Vec<f32>,
    /// KL(N(μ, σ²) ‖ N(0, I)) per row (B).
    pub kl: Vec<f32>,
}

/// Gradients of [`reparam_backward`].
#[derive(Clone, Debug, PartialEq)]
pub struct ReparamGrads {
    pub d_mu: Vec<f32>,
    pub d_logvar: Vec<f32>,
}

/// Gradients of [`gaussian_kl_backward`] w.r.t. its four inputs (each B×D).
#[derive(Clone, Debug, PartialEq)]
pub struct GaussianKlGrads {
    pub d_mu_q: Vec<f32>,
    pub d_logvar_q: Vec<f32>,
    pub d_mu_p: Vec<f32>,
    pub d_logvar_p: Vec<f32>,
}

/// The (b, d)-th ε: element b·D + d of the normal draw at `key`.
#[inline]
fn eps(key: RngKey, i: usize) -> f32 {
    normal_at(key, i as u64)
}

/// z = μ + exp(½ lv) ⊙ ε and per-row KL(N(μ, e^{lv}) ‖ N(0, I)) for μ, lv of B×D.
pub fn reparam_forward(
    mu: &[f32],
    logvar: &[f32],
    rows: usize,
    cols: usize,
    key: RngKey,
) -> Result<ReparamForward> {
    let op = "reparam_forward";
    let n = numel(op, &[rows, cols])?;
    check_len(op, "mu", mu.len(), n)?;
    check_len(op, "logvar", logvar.len(), n)?;
    let mut z = pool::zeros(n);
    let mut kl = pool::zeros(rows);
    if cols > 0 {
        z.par_chunks_mut(cols)
            .zip(kl.par_iter_mut())
            .with_min_len(rows_per_task(cols))
            .enumerate()
            .for_each(|(b, (zr, klb))| {
                let base = b * cols;
                let mut acc = 0.0f64;
                for (d, zd) in zr.iter_mut().enumerate() {
                    let i = base + d;
                    let (m, lv) = (mu[i], logvar[i]);
                    *zd = m + (0.5 * lv).exp() * eps(key, i);
                    acc += (lv - lv.exp_m1() - m * m) as f64;
                }
                *klb = (-0.5 * acc) as f32;
            });
    }
    Ok(ReparamForward { z, kl })
}

/// dμ, dlv of [`reparam_forward`] given the upstream gradients of z (B×D) and of the KL (B);
/// a `None` upstream counts as zero. ε is recomputed from `key`.
pub fn reparam_backward(
    mu: &[f32],
    logvar: &[f32],
    dz: Option<&[f32]>,
    dkl: Option<&[f32]>,
    rows: usize,
    cols: usize,
    key: RngKey,
) -> Result<ReparamGrads> {
    let op = "reparam_backward";
    let n = numel(op, &[rows, cols])?;
    check_len(op, "mu", mu.len(), n)?;
    check_len(op, "logvar", logvar.len(), n)?;
    if let Some(dz) = dz {
        check_len(op, "dz", dz.len(), n)?;
    }
    if let Some(dkl) = dkl {
        check_len(op, "dkl", dkl.len(), rows)?;
    }
    let mut d_mu = pool::zeros(n);
    let mut d_logvar = pool::zeros(n);
    if cols > 0 {
        d_mu.par_chunks_mut(cols)
            .zip(d_logvar.par_chunks_mut(cols))
            .with_min_len(rows_per_task(cols))
            .enumerate()
            .for_each(|(b, (dmr, dlr))| {
                let gk = dkl.map_or(0.0, |g| g[b]);
                for d in 0..cols {
                    let i = b * cols + d;
                    let (m, lv) = (mu[i], logvar[i]);
                    let (mut gm, mut gl) = (gk * m, gk * 0.5 * lv.exp_m1());
                    if let Some(dz) = dz {
                        gm += dz[i];
                        gl += dz[i] * 0.5 * (0.5 * lv).exp() * eps(key, i);
                    }
                    dmr[d] = gm;
                    dlr[d] = gl;
                }
            });
    }
    Ok(ReparamGrads { d_mu, d_logvar })
}

fn check_kl_inputs(
    op: &'static str,
    ins: [(&str, &[f32]); 4],
    rows: usize,
    cols: usize,
) -> Result<usize> {
    let n = numel(op, &[rows, cols])?;
    for (name, s) in ins {
        check_len(op, name, s.len(), n)?;
    }
    Ok(n)
}

/// Per-row KL(N(μq, e^{lvq}) ‖ N(μp, e^{lvp})) for four B×D inputs (diagonal Gaussians).
pub fn gaussian_kl_forward(
    mu_q: &[f32],
    logvar_q: &[f32],
    mu_p: &[f32],
    logvar_p: &[f32],
    rows: usize,
    cols: usize,
) -> Result<Vec<f32>> {
    let op = "gaussian_kl_forward";
    let ins = [
        ("mu_q", mu_q),
        ("logvar_q", logvar_q),
        ("mu_p", mu_p),
        ("logvar_p", logvar_p),
    ];
    check_kl_inputs(op, ins, rows, cols)?;
    let mut kl = pool::zeros(rows);
    kl.par_iter_mut()
        .with_min_len(rows_per_task(cols))
        .enumerate()
        .for_each(|(b, out)| {
            let mut acc = 0.0f64;
            for i in b * cols..(b + 1) * cols {
                let delta = logvar_q[i] - logvar_p[i];
                let dm = mu_q[i] - mu_p[i];
                acc += (delta.exp_m1() - delta + dm * dm * (-logvar_p[i]).exp()) as f64;
            }
            *out = (0.5 * acc) as f32;
        });
    Ok(kl)
}

/// Gradients of [`gaussian_kl_forward`] w.r.t. μq, lvq, μp, lvp given dkl (B).
pub fn gaussian_kl_backward(
    mu_q: &[f32],
    logvar_q: &[f32],
    mu_p: &[f32],
    logvar_p: &[f32],
    dkl: &[f32],
    rows: usize,
    cols: usize,
) -> Result<GaussianKlGrads> {
    let op = "gaussian_kl_backward";
    let ins = [
        ("mu_q", mu_q),
        ("logvar_q", logvar_q),
        ("mu_p", mu_p),
        ("logvar_p", logvar_p),
    ];
    let n = check_kl_inputs(op, ins, rows, cols)?;
    check_len(op, "dkl", dkl.len(), rows)?;
    let mut g = GaussianKlGrads {
        d_mu_q: pool::zeros(n),
        d_logvar_q: pool::zeros(n),
        d_mu_p: pool::zeros(n),
        d_logvar_p: pool::zeros(n),
    };
    if cols > 0 {
        g.d_mu_q
            .par_chunks_mut(cols)
            .zip(g.d_logvar_q.par_chunks_mut(cols))
            .zip(g.d_mu_p.par_chunks_mut(cols))
            .zip(g.d_logvar_p.par_chunks_mut(cols))
            .with_min_len(rows_per_task(cols))
            .enumerate()
            .for_each(|(b, (((dmq, dlq), dmp), dlp))| {
                let gb = dkl[b];
                for d in 0..cols {
                    let i = b * cols + d;
                    let delta = logvar_q[i] - logvar_p[i];
                    let em1 = delta.exp_m1();
                    let inv_vp = (-logvar_p[i]).exp();
                    let dm = mu_q[i] - mu_p[i];
                    let gmu = gb * dm * inv_vp;
                    dmq[d] = gmu;
                    dmp[d] = -gmu;
                    dlq[d] = gb * 0.5 * em1;
                    dlp[d] = -gb * 0.5 * (em1 + dm * dm * inv_vp);
                }
            });
    }
    Ok(g)
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)] // index loops read like the formulas
mod tests {
    use super::super::gumbel::test_util::*;
    use super::*;
    use crate::rng::Rng;

    fn key(seed: u64) -> RngKey {
        RngKey {
            seed,
            stream: 1,
            offset: 1000,
        }
    }

    fn f64s(v: &[f32]) -> Vec<f64> {
        v.iter().map(|&x| x as f64).collect()
    }

    /// Plain f64 KL(N(μ, e^{lv}) ‖ N(0, 1)) of one row, straight from the textbook formula.
    fn ref_kl_std(m: &[f64], lv: &[f64]) -> f64 {
        -0.5 * m
            .iter()
            .zip(lv)
            .map(|(m, l)| 1.0 + l - m * m - l.exp())
            .sum::<f64>()
    }

    /// Plain f64 KL between two diagonal Gaussians of one row, textbook form.
    fn ref_kl2(mq: &[f64], lq: &[f64], mp: &[f64], lp: &[f64]) -> f64 {
        0.5 * (0..mq.len())
            .map(|d| lp[d] - lq[d] + (lq[d].exp() + (mq[d] - mp[d]).powi(2)) / lp[d].exp() - 1.0)
            .sum::<f64>()
    }

    #[test]
    fn forward_matches_reference() {
        let (b, d) = (6, 9);
        let mut rng = Rng::new(10, 0);
        let mu = normals(&mut rng, b * d, 1.0);
        let lv = normals(&mut rng, b * d, 0.8);
        let out = reparam_forward(&mu, &lv, b, d, key(3)).unwrap();
        for r in 0..b {
            let s = r * d..(r + 1) * d;
            let want = ref_kl_std(&f64s(&mu[s.clone()]), &f64s(&lv[s]));
            assert!((out.kl[r] as f64 - want).abs() < 1e-5 * (1.0 + want.abs()));
            for c in 0..d {
                let i = r * d + c;
                let e = normal_at(key(3), i as u64) as f64;
                let want = mu[i] as f64 + (0.5 * lv[i] as f64).exp() * e;
                assert!((out.z[i] as f64 - want).abs() < 1e-5 * (1.0 + want.abs()));
            }
        }
    }

    #[test]
    fn backward_matches_finite_differences() {
        let (b, d) = (4, 5);
        let mut rng = Rng::new(11, 0);
        let mu = normals(&mut rng, b * d, 1.0);
        let lv = normals(&mut rng, b * d, 0.7);
        let dz = normals(&mut rng, b * d, 1.0);
        let dkl = normals(&mut rng, b, 1.0);
        let k = key(4);
        let e: Vec<f64> = (0..b * d).map(|i| normal_at(k, i as u64) as f64).collect();
        // scalar loss Σ dz·z + Σ dkl·KL, all in f64
        let loss = |m: &[f64], l: &[f64]| -> f64 {
            let mut acc = 0.0;
            for r in 0..b {
                for c in 0..d {
                    let i = r * d + c;
                    acc += dz[i] as f64 * (m[i] + (0.5 * l[i]).exp() * e[i]);
                }
                acc += dkl[r] as f64 * ref_kl_std(&m[r * d..(r + 1) * d], &l[r * d..(r + 1) * d]);
            }
            acc
        };
        let g = reparam_backward(&mu, &lv, Some(&dz), Some(&dkl), b, d, k).unwrap();
        let lv64 = f64s(&lv);
        let mu64 = f64s(&mu);
        check_grad("dmu", &mu, &g.d_mu, 1e-1, |x| loss(x, &lv64));
        check_grad("dlogvar", &lv, &g.d_logvar, 1e-1, |x| loss(&mu64, x));
        // `None` upstreams are zeros.
        let z = vec![0.0; b * d];
        let zk = vec![0.0; b];
        let only_z = reparam_backward(&mu, &lv, Some(&dz), None, b, d, k).unwrap();
        assert_eq!(
            only_z,
            reparam_backward(&mu, &lv, Some(&dz), Some(&zk), b, d, k).unwrap()
        );
        let only_kl = reparam_backward(&mu, &lv, None, Some(&dkl), b, d, k).unwrap();
        assert_eq!(
            only_kl,
            reparam_backward(&mu, &lv, Some(&z), Some(&dkl), b, d, k).unwrap()
        );
    }

    #[test]
    fn gaussian_kl_forward_and_backward() {
        let (b, d) = (3, 7);
        let mut rng = Rng::new(12, 0);
        let mq = normals(&mut rng, b * d, 1.0);
        let lq = normals(&mut rng, b * d, 0.6);
        let mp = normals(&mut rng, b * d, 1.0);
        let lp = normals(&mut rng, b * d, 0.6);
        let kl = gaussian_kl_forward(&mq, &lq, &mp, &lp, b, d).unwrap();
        for r in 0..b {
            let s = r * d..(r + 1) * d;
            let want = ref_kl2(
                &f64s(&mq[s.clone()]),
                &f64s(&lq[s.clone()]),
                &f64s(&mp[s.clone()]),
                &f64s(&lp[s]),
            );
            assert!(
                (kl[r] as f64 - want).abs() < 1e-5 * (1.0 + want),
                "{} vs {want}",
                kl[r]
            );
        }
        let g = normals(&mut rng, b, 1.0);
        let gr = gaussian_kl_backward(&mq, &lq, &mp, &lp, &g, b, d).unwrap();
        let ins = [f64s(&mq), f64s(&lq), f64s(&mp), f64s(&lp)];
        let loss = |v: &[Vec<f64>; 4]| -> f64 {
            (0..b)
                .map(|r| {
                    let s = r * d..(r + 1) * d;
                    g[r] as f64
                        * ref_kl2(
                            &v[0][s.clone()],
                            &v[1][s.clone()],
                            &v[2][s.clone()],
                            &v[3][s],
                        )
                })
                .sum()
        };
        let grads = [&gr.d_mu_q, &gr.d_logvar_q, &gr.d_mu_p, &gr.d_logvar_p];
        let raw = [&mq, &lq, &mp, &lp];
        for which in 0..4 {
            check_grad(
                ["d_mu_q", "d_logvar_q", "d_mu_p", "d_logvar_p"][which],
                raw[which],
                grads[which],
                1e-1,
                |x| {
                    let mut v = ins.clone();
                    v[which] = x.to_vec();
                    loss(&v)
                },
            );
        }
    }

    #[test]
    fn gaussian_kl_limits() {
        let mut rng = Rng::new(13, 0);
        let (b, d) = (2, 6);
        let m = normals(&mut rng, b * d, 1.0);
        let l = normals(&mut rng, b * d, 1.0);
        // q = p → exactly 0, and zero gradients.
        assert_eq!(
            gaussian_kl_forward(&m, &l, &m, &l, b, d).unwrap(),
            vec![0.0; b]
        );
        let g = gaussian_kl_backward(&m, &l, &m, &l, &[1.0, 1.0], b, d).unwrap();
        assert!(g.d_mu_q.iter().chain(&g.d_logvar_p).all(|&v| v == 0.0));
        // p = N(0, I) → the reparam's KL.
        let zeros = vec![0.0; b * d];
        let a = gaussian_kl_forward(&m, &l, &zeros, &zeros, b, d).unwrap();
        let r = reparam_forward(&m, &l, b, d, key(0)).unwrap();
        for i in 0..b {
            assert!((a[i] - r.kl[i]).abs() < 1e-5 * (1.0 + a[i].abs()));
        }
    }

    #[test]
    fn edge_cases() {
        // B = 1, D = 1; μ = 0, lv = 0 → z = ε, KL = 0 exactly.
        let k = key(7);
        let r = reparam_forward(&[0.0], &[0.0], 1, 1, k).unwrap();
        assert_eq!(r.z, vec![normal_at(k, 0)]);
        assert_eq!(r.kl, vec![0.0]);
        // tiny lv keeps relative accuracy: KL ≈ ¼ lv² per dimension.
        let r = reparam_forward(&[0.0], &[1e-3], 1, 1, k).unwrap();
        let want = 0.5 * ((1e-3f64).exp() - 1.0 - 1e-3);
        assert!(
            (r.kl[0] as f64 - want).abs() < 1e-3 * want,
            "{} vs {want}",
            r.kl[0]
        );
        // large |lv| stays finite
        let r = reparam_forward(&[1.0, -1.0], &[30.0, -30.0], 1, 2, k).unwrap();
        assert!(r.z.iter().chain(&r.kl).all(|v| v.is_finite()));
        // D = 0: empty z, zero KL; B = 0: empty.
        let r = reparam_forward(&[], &[], 3, 0, k).unwrap();
        assert!(r.z.is_empty() && r.kl == vec![0.0; 3]);
        let r = reparam_forward(&[], &[], 0, 4, k).unwrap();
        assert!(r.z.is_empty() && r.kl.is_empty());
    }

    #[test]
    fn bad_arguments_are_errors() {
        let k = key(0);
        assert!(reparam_forward(&[0.0; 4], &[0.0; 3], 2, 2, k).is_err());
        assert!(reparam_backward(&[0.0; 4], &[0.0; 4], Some(&[0.0; 3]), None, 2, 2, k).is_err());
        assert!(reparam_backward(&[0.0; 4], &[0.0; 4], None, Some(&[0.0; 3]), 2, 2, k).is_err());
        let v = [0.0f32; 4];
        assert!(gaussian_kl_forward(&v, &v, &v, &v[..3], 2, 2).is_err());
        assert!(gaussian_kl_backward(&v, &v, &v, &v, &[0.0], 2, 2).is_err());
    }

    /// 10⁶ ε through the op (μ = 0, lv = 0 makes z = ε exactly). For N(0,1) the standard
    /// errors are 1/√n = 1e-3 (mean), √(2/n) = 1.4e-3 (variance), √(6/n) = 2.4e-3 (skewness),
    /// √(24/n) = 4.9e-3 (excess kurtosis); tolerances ≈ 5 SE: 5e-3, 1e-2, 1.2e-2, 2.5e-2.
    #[test]
    fn epsilon_is_standard_normal() {
        let (b, d) = (1000, 1000);
        let zeros = vec![0.0f32; b * d];
        let r = reparam_forward(&zeros, &zeros, b, d, key(2024)).unwrap();
        let (mean, var, skew, kurt) = moments(&r.z);
        assert!(mean.abs() < 5e-3, "mean {mean}");
        assert!((var - 1.0).abs() < 1e-2, "var {var}");
        assert!(skew.abs() < 1.2e-2, "skew {skew}");
        assert!(kurt.abs() < 2.5e-2, "excess kurtosis {kurt}");
        // and z = μ + σ ε has the requested location and scale
        let mu = vec![2.0f32; b * d];
        let lv = vec![(0.25f32).ln(); b * d];
        let r = reparam_forward(&mu, &lv, b, d, key(7)).unwrap();
        let (mean, var, _, _) = moments(&r.z);
        assert!((mean - 2.0).abs() < 2.5e-3, "mean {mean}");
        assert!((var - 0.25).abs() < 2.5e-3, "var {var}");
    }
}

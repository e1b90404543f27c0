//! SHOT-VAE's optimal-interpolation mixup (Feng et al., AAAI 2021): build mixed inputs and their
//! targets, then score the encoder's answer on the mixed input against those targets. CPU
//! reference of `kernels/mixup.cu`.
//!
//! ## Building the targets (`mixup_build`)
//! Each row b has a partner π(b) (a random permutation of the batch) and a weight λ_b ∈ [0, 1]
//! (drawn from Beta(α, α) on the host, one per batch or one per example):
//! - x̃_b = λ_b x_b + (1 − λ_b) x_π(b)                        (the mixed input, B×D)
//! - p̃_b = λ_b q_b + (1 − λ_b) q_π(b)                        (target class probabilities, B×K)
//! - μ̃_b = λ_b μ_b + (1 − λ_b) μ_π(b),  σ̃_b likewise        (B×Z each)
//!
//! p̃ is the mixture, the closed-form minimiser over p of λ KL(q_b‖p) + (1 − λ) KL(q_π(b)‖p);
//! (μ̃, σ̃) is the point at fraction 1 − λ along the 2-Wasserstein geodesic from N(μ_b, σ_b²) to
//! N(μ_π(b), σ_π(b)²) — for diagonal Gaussians W2 interpolates means and standard deviations
//! linearly. With labels instead of probabilities, q_b is onehot(y_b), so
//! p̃_b = λ onehot(y_b) + (1 − λ) onehot(y_π(b)) (SHOT-VAE's labelled "smooth" term).
//! Every mix is computed as λ·a + (1 − λ)·b, so λ = 1 returns a exactly and λ = 0 returns b
//! exactly (the kernel uses the same rounding: no fused multiply-add).
//!
//! ## The loss (`mixup_loss_forward`)
//! Given the classifier logits c̃ (B×K) and posterior μ(x̃), σ(x̃) (B×Z) computed on x̃:
//! J_b = CE(softmax(c̃_b), p̃_b) + w (‖μ(x̃)_b − μ̃_b‖² + ‖σ(x̃)_b − σ̃_b‖²),
//! CE(q, p) = −Σ_k p_k log q_k with log q = log_softmax(c̃), w = `latent_weight` (1 in SHOT-VAE's
//! formula; exposed because the paper weights the W2 term separately). The labelled loss
//! λ CE(q, y_b) + (1 − λ) CE(q, y_π(b)) is the same CE with the label targets above (Z = 0).
//!
//! ## Backward (targets are detached)
//! ∂CE/∂c̃_j = −Σ_k p_k (δ_kj − q_j) = q_j Σ_k p_k − p_j, so dc̃ = g (softmax(c̃) Σ_k p̃_k − p̃);
//! dμ = 2 w g (μ − μ̃), dσ = 2 w g (σ − σ̃).

use super::pool;
use rayon::prelude::*;

use super::gumbel::{log_softmax_row, rows_per_task};
use crate::backend::vae::{check_len, numel, MixClass, MixupLossArgs, MixupSrc};
use crate::rng::Rng;
use crate::{Error, Result};

/// Sizes: B rows, D input features, K classes, Z latent dims (Z may be 0, D may be 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MixupShape {
    pub batch: usize,
    pub features: usize,
    pub classes: usize,
    pub latent: usize,
}

/// Outputs of [`mixup_build`].
#[derive(Clone, Debug, PartialEq)]
pub struct MixupTargets {
    /// x̃, B×D.
    pub x: Vec<f32>,
    /// p̃, B×K.
    pub p: Vec<f32>,
    /// μ̃, B×Z.
    pub mu: Vec<f32>,
    /// σ̃, B×Z.
    pub sigma: Vec<f32>,
}

/// Gradients of [`mixup_loss_backward`].
#[derive(Clone, Debug, PartialEq)]
pub struct MixupLossGrads {
    pub d_logits: Vec<f32>,
    pub d_mu: Vec<f32>,
    pub d_sigma: Vec<f32>,
}

/// λ a + (1 − λ) b, exact at λ ∈ {0, 1}.
#[inline]
fn mix(l: f32, a: f32, b: f32) -> f32 {
    l * a + (1.0 - l) * b
}

/// out_b = λ_b src_b + (1 − λ_b) src_π(b) for rows of `cols`.
fn mix_rows(src: &[f32], cols: usize, partner: &[u32], lambda: &[f32]) -> Vec<f32> {
    let mut out = pool::zeros(src.len());
    if cols > 0 {
        out.par_chunks_mut(cols)
            .with_min_len(rows_per_task(cols))
            .enumerate()
            .for_each(|(b, o)| {
                let (l, pb) = (lambda[b], partner[b] as usize);
                let (a, c) = (
                    &src[b * cols..(b + 1) * cols],
                    &src[pb * cols..(pb + 1) * cols],
                );
                for ((o, &a), &c) in o.iter_mut().zip(a).zip(c) {
                    *o = mix(l, a, c);
                }
            });
    }
    out
}

/// Builds x̃, p̃, μ̃, σ̃ for partners `partner` (B, each < B) and weights `lambda` (B, each in
/// [0, 1]). See the module docs.
pub fn mixup_build(
    s: MixupShape,
    src: &MixupSrc<[f32]>,
    partner: &[u32],
    lambda: &[f32],
) -> Result<MixupTargets> {
    let op = "mixup_build";
    src.check(op, s, partner, lambda)?;
    let (b, d, k, z) = (s.batch, s.features, s.classes, s.latent);
    let bk = numel(op, &[b, k])?;
    let p = match src.class {
        MixClass::Probs(q) => mix_rows(q, k, partner, lambda),
        MixClass::Labels(y) => {
            let mut p = pool::zeros(bk);
            if k > 0 {
                p.par_chunks_mut(k)
                    .with_min_len(rows_per_task(k))
                    .enumerate()
                    .for_each(|(r, pr)| {
                        let (ya, yb) = (y[r] as usize, y[partner[r] as usize] as usize);
                        let l = lambda[r];
                        for (j, pj) in pr.iter_mut().enumerate() {
                            let a = if j == ya { 1.0 } else { 0.0 };
                            let c = if j == yb { 1.0 } else { 0.0 };
                            *pj = mix(l, a, c);
                        }
                    });
            }
            p
        }
    };
    Ok(MixupTargets {
        x: mix_rows(src.x, d, partner, lambda),
        p,
        mu: mix_rows(src.mu, z, partner, lambda),
        sigma: mix_rows(src.sigma, z, partner, lambda),
    })
}

/// CE(softmax(c), p) of one row with log q in `lq`; classes with p_k = 0 contribute 0.
#[inline]
fn cross_entropy(lq: &[f32], p: &[f32]) -> f32 {
    -lq.iter()
        .zip(p)
        .map(|(&l, &p)| if p != 0.0 { p * l } else { 0.0 })
        .sum::<f32>()
}

/// ‖a − b‖² of one row.
#[inline]
fn sq_dist(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(&a, &b)| (a - b) * (a - b)).sum()
}

/// Per-row J_b = CE(softmax(c̃_b), p̃_b) + w (‖μ(x̃)_b − μ̃_b‖² + ‖σ(x̃)_b − σ̃_b‖²) (B values);
/// `s.features` is not used.
pub fn mixup_loss_forward(s: MixupShape, inp: &MixupLossArgs<[f32]>) -> Result<Vec<f32>> {
    let op = "mixup_loss_forward";
    inp.check(op, s)?;
    let (k, z) = (s.classes, s.latent);
    let mut loss = pool::zeros(s.batch);
    loss.par_iter_mut()
        .with_min_len(rows_per_task(k + 2 * z))
        .enumerate()
        .for_each(|(b, out)| {
            let mut lq = vec![0.0f32; k];
            log_softmax_row(&inp.logits[b * k..(b + 1) * k], &mut lq);
            let ce = cross_entropy(&lq, &inp.p[b * k..(b + 1) * k]);
            let zr = b * z..(b + 1) * z;
            let w2 = sq_dist(&inp.mu[zr.clone()], &inp.mu_target[zr.clone()])
                + sq_dist(&inp.sigma[zr.clone()], &inp.sigma_target[zr]);
            *out = ce + inp.latent_weight * w2;
        });
    Ok(loss)
}

/// dc̃ = g (softmax(c̃) Σp̃ − p̃), dμ = 2wg (μ − μ̃), dσ = 2wg (σ − σ̃) given g (B).
pub fn mixup_loss_backward(
    s: MixupShape,
    inp: &MixupLossArgs<[f32]>,
    grad: &[f32],
) -> Result<MixupLossGrads> {
    let op = "mixup_loss_backward";
    inp.check(op, s)?;
    check_len(op, "grad", grad.len(), s.batch)?;
    let (k, z) = (s.classes, s.latent);
    let mut d_logits = pool::zeros(s.batch * k);
    d_logits
        .par_chunks_mut(k)
        .with_min_len(rows_per_task(k))
        .enumerate()
        .for_each(|(b, dc)| {
            // dc holds log q, then the gradient.
            log_softmax_row(&inp.logits[b * k..(b + 1) * k], dc);
            let p = &inp.p[b * k..(b + 1) * k];
            let psum: f32 = p.iter().sum();
            for (d, &pj) in dc.iter_mut().zip(p) {
                *d = grad[b] * (d.exp() * psum - pj);
            }
        });
    let latent_grad = |x: &[f32], t: &[f32]| -> Vec<f32> {
        let mut out = pool::zeros(x.len());
        if z > 0 {
            out.par_chunks_mut(z)
                .with_min_len(rows_per_task(z))
                .enumerate()
                .for_each(|(b, o)| {
                    let c = 2.0 * inp.latent_weight * grad[b];
                    for (j, oj) in o.iter_mut().enumerate() {
                        let i = b * z + j;
                        *oj = c * (x[i] - t[i]);
                    }
                });
        }
        out
    };
    Ok(MixupLossGrads {
        d_logits,
        d_mu: latent_grad(inp.mu, inp.mu_target),
        d_sigma: latent_grad(inp.sigma, inp.sigma_target),
    })
}

/// B mixing weights λ ~ Beta(α, α): one draw repeated B times, or one per example.
pub fn mixup_lambdas(
    rng: &mut Rng,
    batch: usize,
    alpha: f32,
    per_example: bool,
) -> Result<Vec<f32>> {
    if !(alpha.is_finite() && alpha > 0.0) {
        return Err(Error::invalid(
            "mixup_lambdas",
            format!("Beta(α, α) needs a finite α > 0, got {alpha}"),
        ));
    }
    // clamp guards against a rounding excursion of x/(x+y) outside [0, 1]
    let mut draw = || rng.beta(alpha, alpha).clamp(0.0, 1.0);
    Ok(if per_example {
        (0..batch).map(|_| draw()).collect()
    } else {
        vec![draw(); batch]
    })
}

/// A uniformly random permutation of 0..B (Fisher–Yates), the mixing partners π(b). Like
/// `torch.randperm`, it may have fixed points (a row mixed with itself is left unchanged).
pub fn partner_permutation(rng: &mut Rng, batch: usize) -> Vec<u32> {
    let mut p: Vec<u32> = (0..batch as u32).collect();
    rng.shuffle(&mut p);
    p
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)] // index loops read like the formulas
mod tests {
    use super::super::gumbel::test_util::*;
    use super::*;

    fn shape(b: usize, d: usize, k: usize, z: usize) -> MixupShape {
        MixupShape {
            batch: b,
            features: d,
            classes: k,
            latent: z,
        }
    }

    /// Random probability rows.
    fn probs(rng: &mut Rng, b: usize, k: usize) -> Vec<f32> {
        let mut q = uniforms(rng, b * k, 0.01, 1.0);
        for r in q.chunks_mut(k) {
            let s: f32 = r.iter().sum();
            r.iter_mut().for_each(|v| *v /= s);
        }
        q
    }

    struct Data {
        x: Vec<f32>,
        q: Vec<f32>,
        mu: Vec<f32>,
        sigma: Vec<f32>,
    }

    fn data(seed: u64, s: MixupShape) -> Data {
        let mut rng = Rng::new(seed, 0);
        Data {
            x: uniforms(&mut rng, s.batch * s.features, 0.0, 1.0),
            q: probs(&mut rng, s.batch, s.classes),
            mu: normals(&mut rng, s.batch * s.latent, 1.0),
            sigma: uniforms(&mut rng, s.batch * s.latent, 0.1, 2.0),
        }
    }

    impl Data {
        fn sources(&self) -> MixupSrc<'_, [f32]> {
            MixupSrc {
                x: &self.x,
                class: MixClass::Probs(&self.q),
                mu: &self.mu,
                sigma: &self.sigma,
            }
        }
    }

    #[test]
    fn build_matches_definition() {
        let s = shape(6, 5, 4, 3);
        let dt = data(1, s);
        let mut rng = Rng::new(2, 0);
        let perm = partner_permutation(&mut rng, s.batch);
        let lam = mixup_lambdas(&mut rng, s.batch, 2.0, true).unwrap();
        let t = mixup_build(s, &dt.sources(), &perm, &lam).unwrap();
        let check = |out: &[f32], src: &[f32], cols: usize| {
            for b in 0..s.batch {
                let pb = perm[b] as usize;
                for j in 0..cols {
                    let l = lam[b] as f64;
                    let want = l * src[b * cols + j] as f64 + (1.0 - l) * src[pb * cols + j] as f64;
                    assert!((out[b * cols + j] as f64 - want).abs() < 1e-6);
                }
            }
        };
        check(&t.x, &dt.x, s.features);
        check(&t.p, &dt.q, s.classes);
        check(&t.mu, &dt.mu, s.latent);
        check(&t.sigma, &dt.sigma, s.latent);
        // p̃ is still a distribution
        for r in t.p.chunks(s.classes) {
            assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn lambda_one_is_identity_and_zero_is_partner_exactly() {
        let s = shape(5, 7, 3, 4);
        let dt = data(3, s);
        let perm = vec![3u32, 0, 4, 1, 2];
        let t = mixup_build(s, &dt.sources(), &perm, &[1.0; 5]).unwrap();
        assert_eq!(
            t,
            MixupTargets {
                x: dt.x.clone(),
                p: dt.q.clone(),
                mu: dt.mu.clone(),
                sigma: dt.sigma.clone()
            }
        );
        let t = mixup_build(s, &dt.sources(), &perm, &[0.0; 5]).unwrap();
        let gather = |src: &[f32], cols: usize| -> Vec<f32> {
            perm.iter()
                .flat_map(|&p| src[p as usize * cols..(p as usize + 1) * cols].to_vec())
                .collect()
        };
        assert_eq!(t.x, gather(&dt.x, s.features));
        assert_eq!(t.p, gather(&dt.q, s.classes));
        assert_eq!(t.mu, gather(&dt.mu, s.latent));
        assert_eq!(t.sigma, gather(&dt.sigma, s.latent));
    }

    #[test]
    fn label_targets() {
        let s = shape(4, 2, 3, 0);
        let x = [0.0f32; 8];
        let y = [0u32, 2, 1, 2];
        let perm = [1u32, 0, 3, 2];
        let lam = [0.25f32, 0.25, 1.0, 0.6];
        let src: MixupSrc<[f32]> = MixupSrc {
            x: &x,
            class: MixClass::Labels(&y),
            mu: &[],
            sigma: &[],
        };
        let t = mixup_build(s, &src, &perm, &lam).unwrap();
        #[rustfmt::skip]
        let want = [
            0.25, 0.0, 0.75, // y 0 with partner y 2
            0.75, 0.0, 0.25, // y 2 with partner y 0
            0.0, 1.0, 0.0,   // λ = 1
            0.0, 0.4, 0.6,   // y 2 (λ 0.6) with y 1
        ];
        for (a, b) in t.p.iter().zip(want) {
            assert!((a - b).abs() < 1e-7, "{:?}", t.p);
        }
        assert!(t.mu.is_empty() && t.sigma.is_empty());
        // the labelled CE is λ CE(q, y_b) + (1 − λ) CE(q, y_π(b))
        let mut rng = Rng::new(4, 0);
        let c = normals(&mut rng, 12, 1.0);
        let inp: MixupLossArgs<[f32]> = MixupLossArgs {
            logits: &c,
            p: &t.p,
            mu: &[],
            mu_target: &[],
            sigma: &[],
            sigma_target: &[],
            latent_weight: 1.0,
        };
        let j = mixup_loss_forward(s, &inp).unwrap();
        for b in 0..4 {
            let row: Vec<f64> = c[b * 3..(b + 1) * 3].iter().map(|&v| v as f64).collect();
            let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
            let ce = |k: u32| lse - row[k as usize];
            let l = lam[b] as f64;
            let want = l * ce(y[b]) + (1.0 - l) * ce(y[perm[b] as usize]);
            assert!((j[b] as f64 - want).abs() < 1e-5, "{} vs {want}", j[b]);
        }
    }

    /// f64 reference of Σ_b g_b J_b.
    #[allow(clippy::too_many_arguments)]
    fn ref_loss(
        s: MixupShape,
        g: &[f32],
        c: &[f64],
        p: &[f32],
        mu: &[f64],
        mt: &[f32],
        sg: &[f64],
        st: &[f32],
        w: f64,
    ) -> f64 {
        let (k, z) = (s.classes, s.latent);
        (0..s.batch)
            .map(|b| {
                let row = &c[b * k..(b + 1) * k];
                let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
                let mut j = 0.0;
                for i in 0..k {
                    j -= p[b * k + i] as f64 * (row[i] - lse);
                }
                for i in b * z..(b + 1) * z {
                    j += w * (mu[i] - mt[i] as f64).powi(2);
                    j += w * (sg[i] - st[i] as f64).powi(2);
                }
                g[b] as f64 * j
            })
            .sum()
    }

    #[test]
    fn loss_forward_and_backward() {
        let s = shape(5, 0, 6, 4);
        let mut rng = Rng::new(5, 0);
        let c = normals(&mut rng, 30, 1.5);
        let p = probs(&mut rng, 5, 6);
        let mu = normals(&mut rng, 20, 1.0);
        let mt = normals(&mut rng, 20, 1.0);
        let sg = uniforms(&mut rng, 20, 0.1, 2.0);
        let st = uniforms(&mut rng, 20, 0.1, 2.0);
        let g = normals(&mut rng, 5, 1.0);
        let f64s = |v: &[f32]| -> Vec<f64> { v.iter().map(|&x| x as f64).collect() };
        for w in [1.0f32, 0.3] {
            let inp: MixupLossArgs<[f32]> = MixupLossArgs {
                logits: &c,
                p: &p,
                mu: &mu,
                mu_target: &mt,
                sigma: &sg,
                sigma_target: &st,
                latent_weight: w,
            };
            let j = mixup_loss_forward(s, &inp).unwrap();
            for b in 0..5 {
                let mut gb = vec![0.0; 5];
                gb[b] = 1.0;
                let want = ref_loss(
                    s,
                    &gb,
                    &f64s(&c),
                    &p,
                    &f64s(&mu),
                    &mt,
                    &f64s(&sg),
                    &st,
                    w as f64,
                );
                assert!((j[b] as f64 - want).abs() < 1e-5 * (1.0 + want.abs()));
            }
            let gr = mixup_loss_backward(s, &inp, &g).unwrap();
            let (c64, mu64, sg64) = (f64s(&c), f64s(&mu), f64s(&sg));
            let w = w as f64;
            check_grad("d_logits", &c, &gr.d_logits, 1e-1, |v| {
                ref_loss(s, &g, v, &p, &mu64, &mt, &sg64, &st, w)
            });
            check_grad("d_mu", &mu, &gr.d_mu, 1e-1, |v| {
                ref_loss(s, &g, &c64, &p, v, &mt, &sg64, &st, w)
            });
            check_grad("d_sigma", &sg, &gr.d_sigma, 1e-1, |v| {
                ref_loss(s, &g, &c64, &p, &mu64, &mt, v, &st, w)
            });
        }
    }

    #[test]
    fn loss_edge_cases() {
        // K = 1: CE = −p·0 = 0 for a normalised target, gradient 0.
        let s = shape(2, 0, 1, 0);
        let inp: MixupLossArgs<[f32]> = MixupLossArgs {
            logits: &[5.0, -3.0],
            p: &[1.0, 1.0],
            mu: &[],
            mu_target: &[],
            sigma: &[],
            sigma_target: &[],
            latent_weight: 1.0,
        };
        assert_eq!(mixup_loss_forward(s, &inp).unwrap(), vec![0.0, 0.0]);
        let g = mixup_loss_backward(s, &inp, &[1.0, 1.0]).unwrap();
        assert_eq!(g.d_logits, vec![0.0, 0.0]);
        // logits ±100: target on the +100 class → CE ≈ 0; on a −100 class → CE ≈ 200; finite.
        let s = shape(2, 0, 3, 0);
        let logits = [100.0, -100.0, -100.0, 100.0, -100.0, -100.0];
        let p = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        let inp: MixupLossArgs<[f32]> = MixupLossArgs {
            logits: &logits,
            p: &p,
            ..inp
        };
        let j = mixup_loss_forward(s, &inp).unwrap();
        assert!(j[0].abs() < 1e-6 && (j[1] - 200.0).abs() < 1e-3, "{j:?}");
        let g = mixup_loss_backward(s, &inp, &[1.0, 1.0]).unwrap();
        assert!(g.d_logits.iter().all(|v| v.is_finite()));
        assert!((g.d_logits[3] - 1.0).abs() < 1e-6 && (g.d_logits[4] + 1.0).abs() < 1e-6);
        // B = 1, D = 1, Z = 1 build with λ = 0.5 and self-partner: unchanged.
        let s = shape(1, 1, 2, 1);
        let src: MixupSrc<[f32]> = MixupSrc {
            x: &[0.3],
            class: MixClass::Probs(&[0.2, 0.8]),
            mu: &[1.5],
            sigma: &[0.4],
        };
        let t = mixup_build(s, &src, &[0], &[0.5]).unwrap();
        assert_eq!(
            (t.x, t.p, t.mu, t.sigma),
            (vec![0.3], vec![0.2, 0.8], vec![1.5], vec![0.4])
        );
    }

    #[test]
    fn bad_arguments_are_errors() {
        let s = shape(2, 1, 2, 1);
        let src: MixupSrc<[f32]> = MixupSrc {
            x: &[0.0, 1.0],
            class: MixClass::Probs(&[0.5; 4]),
            mu: &[0.0; 2],
            sigma: &[1.0; 2],
        };
        assert!(mixup_build(s, &src, &[0, 2], &[0.5, 0.5]).is_err()); // partner ≥ B
        assert!(mixup_build(s, &src, &[0, 1], &[0.5, 1.5]).is_err()); // λ ∉ [0, 1]
        assert!(mixup_build(s, &src, &[0, 1], &[0.5]).is_err());
        let bad: MixupSrc<[f32]> = MixupSrc {
            class: MixClass::Labels(&[0, 2]),
            ..src
        };
        assert!(mixup_build(s, &bad, &[0, 1], &[0.5, 0.5]).is_err()); // label ≥ K
        let inp: MixupLossArgs<[f32]> = MixupLossArgs {
            logits: &[0.0; 3],
            p: &[0.5; 4],
            mu: &[0.0; 2],
            mu_target: &[0.0; 2],
            sigma: &[0.0; 2],
            sigma_target: &[0.0; 2],
            latent_weight: 1.0,
        };
        assert!(mixup_loss_forward(s, &inp).is_err());
        let inp: MixupLossArgs<[f32]> = MixupLossArgs {
            logits: &[0.0; 4],
            ..inp
        };
        assert!(mixup_loss_backward(s, &inp, &[1.0]).is_err());
        let mut rng = Rng::new(0, 0);
        assert!(mixup_lambdas(&mut rng, 3, 0.0, false).is_err());
    }

    #[test]
    fn lambdas_and_permutation() {
        let mut rng = Rng::new(6, 0);
        let l = mixup_lambdas(&mut rng, 8, 2.0, false).unwrap();
        assert!(l.iter().all(|&v| v == l[0]) && (0.0..=1.0).contains(&l[0]));
        let l = mixup_lambdas(&mut rng, 20_000, 0.1, true).unwrap();
        assert!(l.iter().all(|v| (0.0..=1.0).contains(v)));
        let mean = l.iter().sum::<f32>() / l.len() as f32;
        assert!((mean - 0.5).abs() < 0.02, "Beta(0.1, 0.1) mean {mean}");
        let p = partner_permutation(&mut rng, 100);
        let mut sorted = p.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<u32>>());
        assert_ne!(p, sorted);
    }
}

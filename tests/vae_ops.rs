//! The fused VAE tensor ops (`ssvae::vae`) against (a) their unfused compositions of engine
//! primitives (`ssvae::vae::composed`: forward values and every input gradient through
//! `backward()`), (b) central finite differences through the tensor API, and (d) edge cases
//! (K = 1, D = 1, B = 1, logits ±100, τ = 0.1, λ ∈ {0, 1}) plus shape errors.
//!
//! (a) Fused and unfused compute the same maths from the same Philox draws, so they differ only
//!     by float rounding: f32 rounding of O(1) quantities (~1e-7 relative) compounded over a few
//!     ops and the fused kernels' f64 row sums. The bound ‖fused − unfused‖ / ‖unfused‖ ≤ 1e-5 is
//!     two orders above that and far below any formula error (a wrong sign, factor or index
//!     shows up as O(1) relative error).
//! (b) As in `tests/gradcheck.rs`: L(x) = Σ r ⊙ f(x) with fixed random r (accumulated in f64),
//!     h = 1e-2, |fd − analytic| ≤ 1e-2·(1 + |fd|). The engine is f32, so the difference
//!     quotient carries rounding noise of about ‖r‖·ε_f32·|f|/h ≈ 1e-4 and truncation error
//!     h²·f‴/6 ≈ 1e-5 for these O(1)-curvature functions; the bound is two orders above both, yet
//!     a sign error (error 2|g|), a factor 2 (|g|) or a misplaced index fails it because the
//!     r-weighted gradients are O(1) (each check also asserts that a gradient is not all ~0).
//!     Sizes are tiny (every input element costs two forward passes), so the binary stays fast.

use ssvae::rng::{Rng, RngKey};
use ssvae::vae::{self, composed, Likelihood, MixClass, MixLatent, Mixed};
use ssvae::{Device, Error, Result, Tensor};

const DEV: Device = Device::Cpu;

fn key(seed: u64) -> RngKey {
    RngKey {
        seed,
        stream: 5,
        offset: 123,
    }
}

fn normals(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut rng = Rng::new(seed, 11);
    (0..n).map(|_| scale * rng.normal()).collect()
}

fn uniforms(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut rng = Rng::new(seed, 12);
    (0..n).map(|_| lo + (hi - lo) * rng.uniform()).collect()
}

/// Binary targets with some grey values, like pixels.
fn pixels(n: usize, seed: u64) -> Vec<f32> {
    uniforms(n, seed, 0.0, 1.0)
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
        .collect()
}

/// Rows of probabilities (log of them is a valid log prior / q).
fn probs(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut p = uniforms(rows * cols, seed, 0.05, 1.0);
    for r in p.chunks_mut(cols) {
        let s: f32 = r.iter().sum();
        r.iter_mut().for_each(|v| *v /= s);
    }
    p
}

/// One input of a checked function: values, dims, and whether it should receive a gradient.
#[derive(Clone)]
struct In {
    v: Vec<f32>,
    dims: Vec<usize>,
    grad: bool,
}

fn var(v: Vec<f32>, dims: &[usize]) -> In {
    In {
        v,
        dims: dims.to_vec(),
        grad: true,
    }
}

fn data(v: Vec<f32>, dims: &[usize]) -> In {
    In {
        v,
        dims: dims.to_vec(),
        grad: false,
    }
}

fn tensors(ins: &[In]) -> Vec<Tensor> {
    ins.iter()
        .map(|i| {
            let t = Tensor::from_slice(&i.v, i.dims.clone(), DEV).unwrap();
            if i.grad {
                t.variable()
            } else {
                t
            }
        })
        .collect()
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt()
}

/// ‖a − b‖ / ‖b‖ (absolute when ‖b‖ = 0).
fn rel(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let d: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let nb = norm(b);
    if nb > 0.0 {
        d / nb
    } else {
        d
    }
}

/// Fixed random weights for output `o`.
fn weights(out: &Tensor, o: usize) -> Tensor {
    let r = normals(out.elem_count(), 900 + o as u64, 1.0);
    Tensor::from_slice(&r, out.shape().clone(), DEV).unwrap()
}

/// Σ_o Σ r_o ⊙ out_o as a scalar tensor.
fn weighted_sum(outs: &[Tensor]) -> Tensor {
    let mut total: Option<Tensor> = None;
    for (o, t) in outs.iter().enumerate() {
        let s = t.mul(&weights(t, o)).unwrap().sum_all().unwrap();
        total = Some(match total {
            Some(a) => a.add(&s).unwrap(),
            None => s,
        });
    }
    total.expect("at least one output")
}

type Op<'a> = &'a dyn Fn(&[Tensor]) -> Result<Vec<Tensor>>;
/// An owned op, for the (fused, unfused) pairs built below.
type BoxOp = Box<dyn Fn(&[Tensor]) -> Result<Vec<Tensor>>>;

const REL_TOL: f64 = 1e-5;

/// (a): fused and unfused agree on every output and on the gradient of Σ r ⊙ outputs w.r.t.
/// every differentiable input. Returns the fused outputs.
fn compare(name: &str, ins: &[In], fused: Op, unfused: Op) -> Vec<Vec<f32>> {
    let vars = tensors(ins);
    let of = fused(&vars).unwrap();
    let ou = unfused(&vars).unwrap();
    assert_eq!(of.len(), ou.len(), "{name}: output count");
    let mut vals = Vec::new();
    for (o, (a, b)) in of.iter().zip(&ou).enumerate() {
        assert_eq!(a.dims(), b.dims(), "{name}: output {o} shape");
        let (va, vb) = (a.to_vec().unwrap(), b.to_vec().unwrap());
        assert!(
            va.iter().all(|v| v.is_finite()),
            "{name}: output {o} {va:?}"
        );
        let r = rel(&va, &vb);
        assert!(r <= REL_TOL, "{name}: output {o} differs, rel {r:e}");
        println!("{name}: output {o} rel {r:.1e}");
        vals.push(va);
    }
    let gf = weighted_sum(&of).backward().unwrap();
    let gu = weighted_sum(&ou).backward().unwrap();
    for (i, (inp, v)) in ins.iter().zip(&vars).enumerate() {
        if !inp.grad {
            assert!(gf.get(v).is_none(), "{name}: data input {i} got a gradient");
            continue;
        }
        let a = gf
            .get(v)
            .unwrap_or_else(|| panic!("{name}: fused gave input {i} no gradient"))
            .to_vec()
            .unwrap();
        let b = gu
            .get(v)
            .unwrap_or_else(|| panic!("{name}: unfused gave input {i} no gradient"))
            .to_vec()
            .unwrap();
        assert!(a.iter().all(|g| g.is_finite()), "{name}: grad {i} {a:?}");
        let r = rel(&a, &b);
        assert!(
            r <= REL_TOL,
            "{name}: gradient of input {i} differs, rel {r:e}"
        );
        assert!(norm(&b) > 1e-3, "{name}: gradient of input {i} is ~0");
        println!("{name}: grad {i} rel {r:.1e}");
    }
    vals
}

const H: f32 = 1e-2;
const FD_TOL: f64 = 1e-2;

/// (b): central finite differences of Σ r ⊙ outputs against `backward()`.
fn fd_check(name: &str, ins: &[In], f: Op) {
    let vars = tensors(ins);
    let outs = f(&vars).unwrap();
    let grads = weighted_sum(&outs).backward().unwrap();
    let eval = |vals: &[Vec<f32>]| -> f64 {
        let _g = ssvae::no_grad();
        let ts: Vec<Tensor> = vals
            .iter()
            .zip(ins)
            .map(|(v, i)| Tensor::from_slice(v, i.dims.clone(), DEV).unwrap())
            .collect();
        f(&ts)
            .unwrap()
            .iter()
            .enumerate()
            .map(|(o, t)| {
                let r = weights(t, o).to_vec().unwrap();
                let v = t.to_vec().unwrap();
                v.iter()
                    .zip(&r)
                    .map(|(&a, &b)| a as f64 * b as f64)
                    .sum::<f64>()
            })
            .sum()
    };
    let base: Vec<Vec<f32>> = ins.iter().map(|i| i.v.clone()).collect();
    for (i, (inp, v)) in ins.iter().zip(&vars).enumerate() {
        if !inp.grad {
            continue;
        }
        let an = grads
            .get(v)
            .unwrap_or_else(|| panic!("{name}: input {i} got no gradient"))
            .to_vec()
            .unwrap();
        let mut max_abs = 0.0f64;
        for j in 0..inp.v.len() {
            let mut plus = base.clone();
            plus[i][j] += H;
            let mut minus = base.clone();
            minus[i][j] -= H;
            let fd = (eval(&plus) - eval(&minus)) / (2.0 * H as f64);
            let a = an[j] as f64;
            assert!(
                (fd - a).abs() <= FD_TOL * (1.0 + fd.abs()),
                "{name}: input {i}[{j}]: finite difference {fd:.6} vs analytic {a:.6}"
            );
            max_abs = max_abs.max(a.abs());
        }
        assert!(max_abs > 1e-3, "{name}: input {i} gradient is all ~0");
    }
}

// ---------------------------------------------------------------------------------------------
// Problems: each op's inputs and its fused / unfused closures.

fn reparam_inputs(b: usize, d: usize, seed: u64) -> Vec<In> {
    vec![
        var(normals(b * d, seed, 1.0), &[b, d]),
        var(normals(b * d, seed + 1, 0.6), &[b, d]),
    ]
}

/// Which reparam outputs a check uses: z, kl, or both (gradients must combine).
fn reparam_ops(k: RngKey, which: &'static str) -> (BoxOp, BoxOp) {
    let pick = move |(z, kl): (Tensor, Tensor)| match which {
        "z" => vec![z],
        "kl" => vec![kl],
        _ => vec![z, kl],
    };
    (
        Box::new(move |t: &[Tensor]| Ok(pick(vae::reparameterize(&t[0], &t[1], k)?))),
        Box::new(move |t: &[Tensor]| Ok(pick(composed::reparameterize(&t[0], &t[1], k)?))),
    )
}

fn gauss_kl_inputs(b: usize, d: usize, seed: u64) -> Vec<In> {
    vec![
        var(normals(b * d, seed, 1.0), &[b, d]),
        var(normals(b * d, seed + 1, 0.6), &[b, d]),
        var(normals(b * d, seed + 2, 1.0), &[b, d]),
        var(normals(b * d, seed + 3, 0.6), &[b, d]),
    ]
}

fn gauss_kl_fused(t: &[Tensor]) -> Result<Vec<Tensor>> {
    Ok(vec![vae::gaussian_kl(&t[0], &t[1], &t[2], &t[3])?])
}

fn gauss_kl_unfused(t: &[Tensor]) -> Result<Vec<Tensor>> {
    Ok(vec![composed::gaussian_kl(&t[0], &t[1], &t[2], &t[3])?])
}

/// decoded [B·K, D], targets [B, D], kl [B·K], class logits [B, K], log prior [K].
fn elbo_inputs(b: usize, k: usize, d: usize, seed: u64, logit_scale: f32) -> Vec<In> {
    let lp: Vec<f32> = probs(1, k, seed + 4).iter().map(|p| p.ln()).collect();
    vec![
        var(normals(b * k * d, seed, 1.5), &[b * k, d]),
        data(pixels(b * d, seed + 1), &[b, d]),
        var(uniforms(b * k, seed + 2, 0.0, 5.0), &[b * k]),
        var(normals(b * k, seed + 3, logit_scale), &[b, k]),
        var(lp, &[k]),
    ]
}

fn elbo_ops(lik: Likelihood) -> (BoxOp, BoxOp) {
    (
        Box::new(move |t: &[Tensor]| {
            Ok(vec![vae::elbo_marginal(
                &t[0], &t[1], &t[2], &t[3], &t[4], lik,
            )?])
        }),
        Box::new(move |t: &[Tensor]| {
            Ok(vec![composed::elbo_marginal(
                &t[0], &t[1], &t[2], &t[3], &t[4], lik,
            )?])
        }),
    )
}

/// decoded [B, D], targets [B, D], kl [B], log prior [K]; labels separately.
fn labelled_inputs(b: usize, k: usize, d: usize, seed: u64) -> (Vec<In>, Vec<u32>) {
    let lp: Vec<f32> = probs(1, k, seed + 4).iter().map(|p| p.ln()).collect();
    let mut rng = Rng::new(seed, 13);
    let mut labels: Vec<u32> = (0..b).map(|_| rng.below(k) as u32).collect();
    labels[0] = (k - 1) as u32; // make sure more than one class occurs when k > 1
    (
        vec![
            var(normals(b * d, seed, 1.5), &[b, d]),
            data(pixels(b * d, seed + 1), &[b, d]),
            var(uniforms(b, seed + 2, 0.0, 5.0), &[b]),
            var(lp, &[k]),
        ],
        labels,
    )
}

fn labelled_ops(labels: Vec<u32>, lik: Likelihood) -> (BoxOp, BoxOp) {
    let l2 = labels.clone();
    (
        Box::new(move |t: &[Tensor]| {
            Ok(vec![vae::elbo_labelled(
                &t[0], &t[1], &t[2], &labels, &t[3], lik,
            )?])
        }),
        Box::new(move |t: &[Tensor]| {
            Ok(vec![composed::elbo_labelled(
                &t[0], &t[1], &t[2], &l2, &t[3], lik,
            )?])
        }),
    )
}

/// Mixup problem: logits [B, K], μ(x̃), σ(x̃) [B, Z] (differentiable); sources x [B, D],
/// q [B, K], μ, σ [B, Z] (data). The op returns (J, x̃, p̃, μ̃, σ̃).
struct MixProblem {
    ins: Vec<In>,
    partner: Vec<u32>,
    lambda: Vec<f32>,
    labels: Option<(Vec<u32>, usize)>,
    weight: f32,
}

fn mix_problem(b: usize, d: usize, k: usize, z: usize, seed: u64) -> MixProblem {
    let mut rng = Rng::new(seed, 14);
    let mut partner: Vec<u32> = (0..b as u32).collect();
    rng.shuffle(&mut partner);
    let lambda: Vec<f32> = (0..b).map(|_| rng.beta(2.0, 2.0)).collect();
    MixProblem {
        ins: vec![
            var(normals(b * k, seed, 1.5), &[b, k]),
            var(normals(b * z, seed + 1, 1.0), &[b, z]),
            var(uniforms(b * z, seed + 2, 0.1, 2.0), &[b, z]),
            data(uniforms(b * d, seed + 3, 0.0, 1.0), &[b, d]),
            data(probs(b, k, seed + 4), &[b, k]),
            data(normals(b * z, seed + 5, 1.0), &[b, z]),
            data(uniforms(b * z, seed + 6, 0.1, 2.0), &[b, z]),
        ],
        partner,
        lambda,
        labels: None,
        weight: 0.7,
    }
}

type BuildFn = fn(&Tensor, MixClass<'_>, Option<MixLatent<'_>>, &[u32], &[f32]) -> Result<Mixed>;
type LossFn = fn(&Tensor, Option<MixLatent<'_>>, &Mixed, f32) -> Result<Tensor>;

impl MixProblem {
    fn run(&self, t: &[Tensor], build: BuildFn, loss: LossFn) -> Result<Vec<Tensor>> {
        let class = match &self.labels {
            Some((y, k)) => MixClass::Labels {
                labels: y,
                classes: *k,
            },
            None => MixClass::Probs(&t[4]),
        };
        let z = t[1].dims()[1];
        let src = (z > 0).then_some(MixLatent {
            mu: &t[5],
            sigma: &t[6],
        });
        let mixed = build(&t[3], class, src, &self.partner, &self.lambda)?;
        let post = (z > 0).then_some(MixLatent {
            mu: &t[1],
            sigma: &t[2],
        });
        let j = loss(&t[0], post, &mixed, self.weight)?;
        let mut out = vec![j, mixed.x, mixed.p];
        out.extend(mixed.mu);
        out.extend(mixed.sigma);
        Ok(out)
    }
    fn fused(&self, t: &[Tensor]) -> Result<Vec<Tensor>> {
        self.run(t, vae::mixup_build, vae::mixup_loss)
    }
    fn unfused(&self, t: &[Tensor]) -> Result<Vec<Tensor>> {
        self.run(t, composed::mixup_build, composed::mixup_loss)
    }
    /// Without a latent, μ(x̃), σ(x̃) get no gradient: mark them as data.
    fn ins(&self) -> Vec<In> {
        let mut ins = self.ins.clone();
        if ins[1].dims[1] == 0 {
            ins[1].grad = false;
            ins[2].grad = false;
        }
        ins
    }
}

// ---------------------------------------------------------------------------------------------
// (a) fused = unfused

#[test]
fn reparameterize_matches_composition() {
    let ins = reparam_inputs(6, 5, 1);
    for which in ["z", "kl", "both"] {
        let (f, u) = reparam_ops(key(1), which);
        compare(&format!("reparameterize[{which}]"), &ins, &f, &u);
    }
    // ε is exactly Tensor::randn at the same key: μ = 0, lv = 0 gives z = ε bit for bit.
    let zeros = Tensor::zeros([6, 5], DEV).unwrap();
    let (z, kl) = vae::reparameterize(&zeros, &zeros, key(2)).unwrap();
    let eps = Tensor::randn([6, 5], key(2), DEV).unwrap();
    assert_eq!(z.to_vec().unwrap(), eps.to_vec().unwrap());
    assert_eq!(kl.to_vec().unwrap(), vec![0.0; 6]);
}

#[test]
fn gaussian_kl_matches_composition() {
    compare(
        "gaussian_kl",
        &gauss_kl_inputs(5, 4, 10),
        &gauss_kl_fused,
        &gauss_kl_unfused,
    );
}

#[test]
fn gumbel_softmax_matches_composition() {
    let ins = vec![var(normals(6 * 5, 20, 2.0), &[6, 5])];
    for (tau, hard) in [(0.7, false), (1.0, false), (0.5, true)] {
        let f = move |t: &[Tensor]| Ok(vec![vae::gumbel_softmax(&t[0], tau, hard, key(3))?]);
        let u = move |t: &[Tensor]| Ok(vec![composed::gumbel_softmax(&t[0], tau, hard, key(3))?]);
        let out = compare(&format!("gumbel_softmax τ={tau} hard={hard}"), &ins, &f, &u);
        if hard {
            // exact one-hot rows
            for r in out[0].chunks(5) {
                assert_eq!(r.iter().filter(|&&v| v == 1.0).count(), 1, "{r:?}");
                assert_eq!(r.iter().filter(|&&v| v == 0.0).count(), 4, "{r:?}");
            }
        }
    }
    // Straight-through: the hard sample's gradient is the soft sample's.
    let l = Tensor::from_slice(&normals(30, 21, 1.0), [6, 5], DEV)
        .unwrap()
        .variable();
    let r = weights(&l, 0);
    let g = |hard| {
        let y = vae::gumbel_softmax(&l, 0.5, hard, key(4)).unwrap();
        let gs = y.mul(&r).unwrap().sum_all().unwrap().backward().unwrap();
        gs.get(&l).unwrap().to_vec().unwrap()
    };
    assert_eq!(g(true), g(false));
}

#[test]
fn categorical_kl_uniform_matches_composition() {
    let ins = vec![var(normals(6 * 5, 30, 2.0), &[6, 5])];
    compare(
        "categorical_kl_uniform",
        &ins,
        &|t| Ok(vec![vae::categorical_kl_uniform(&t[0])?]),
        &|t| Ok(vec![composed::categorical_kl_uniform(&t[0])?]),
    );
}

#[test]
fn elbo_marginal_matches_composition() {
    for lik in [Likelihood::Bernoulli, Likelihood::Gaussian { sigma: 0.7 }] {
        let (f, u) = elbo_ops(lik);
        compare(
            &format!("elbo_marginal {lik:?}"),
            &elbo_inputs(4, 3, 7, 40, 1.5),
            &f,
            &u,
        );
    }
    // kl given as [B, K] is accepted and its gradient keeps that shape.
    let mut ins = elbo_inputs(3, 4, 5, 41, 1.0);
    ins[2].dims = vec![3, 4];
    let (f, u) = elbo_ops(Likelihood::Bernoulli);
    compare("elbo_marginal kl [B, K]", &ins, &f, &u);
}

#[test]
fn elbo_labelled_matches_composition() {
    for lik in [Likelihood::Bernoulli, Likelihood::Gaussian { sigma: 1.3 }] {
        let (ins, labels) = labelled_inputs(5, 4, 6, 50);
        let (f, u) = labelled_ops(labels, lik);
        compare(&format!("elbo_labelled {lik:?}"), &ins, &f, &u);
    }
}

#[test]
fn mixup_matches_composition() {
    let p = mix_problem(6, 7, 4, 3, 60);
    compare("mixup (probs, latent)", &p.ins(), &|t| p.fused(t), &|t| {
        p.unfused(t)
    });
    // labels, no latent (SHOT-VAE's labelled smoothing term)
    let mut p = mix_problem(6, 7, 4, 0, 61);
    p.labels = Some((vec![0, 3, 1, 3, 2, 0], 4));
    compare("mixup (labels)", &p.ins(), &|t| p.fused(t), &|t| {
        p.unfused(t)
    });
}

// ---------------------------------------------------------------------------------------------
// (b) finite differences through the tensor API

#[test]
fn finite_differences() {
    let ins = reparam_inputs(3, 4, 70);
    let (f, _) = reparam_ops(key(5), "both");
    fd_check("reparameterize", &ins, &f);
    fd_check("gaussian_kl", &gauss_kl_inputs(3, 3, 71), &gauss_kl_fused);
    let lg = vec![var(normals(3 * 4, 72, 1.0), &[3, 4])];
    fd_check("gumbel_softmax", &lg, &|t| {
        Ok(vec![vae::gumbel_softmax(&t[0], 0.8, false, key(6))?])
    });
    fd_check("categorical_kl_uniform", &lg, &|t| {
        Ok(vec![vae::categorical_kl_uniform(&t[0])?])
    });
    for lik in [Likelihood::Bernoulli, Likelihood::Gaussian { sigma: 1.5 }] {
        let (f, _) = elbo_ops(lik);
        fd_check("elbo_marginal", &elbo_inputs(2, 3, 4, 73, 1.0), &f);
        let (ins, labels) = labelled_inputs(3, 3, 4, 74);
        let (f, _) = labelled_ops(labels, lik);
        fd_check("elbo_labelled", &ins, &f);
    }
    let p = mix_problem(3, 2, 3, 2, 75);
    fd_check("mixup_loss", &p.ins(), &|t| p.fused(t));
}

// ---------------------------------------------------------------------------------------------
// (d) edge cases

fn all_finite(name: &str, t: &Tensor) {
    let v = t.to_vec().unwrap();
    assert!(v.iter().all(|x| x.is_finite()), "{name}: {v:?}");
}

/// Outputs and every gradient of Σ r ⊙ outputs are finite.
fn finite_everywhere(name: &str, ins: &[In], f: Op) -> Vec<Vec<f32>> {
    let vars = tensors(ins);
    let outs = f(&vars).unwrap();
    for o in &outs {
        all_finite(name, o);
    }
    let g = weighted_sum(&outs).backward().unwrap();
    for (inp, v) in ins.iter().zip(&vars) {
        if inp.grad {
            all_finite(name, g.get(v).expect("gradient"));
        }
    }
    outs.iter().map(|o| o.to_vec().unwrap()).collect()
}

#[test]
fn edge_k1_d1_b1() {
    // B = 1, D = 1 reparam and Gaussian KL.
    let (f, u) = reparam_ops(key(8), "both");
    compare("reparameterize B=1 D=1", &reparam_inputs(1, 1, 80), &f, &u);
    compare(
        "gaussian_kl B=1 D=1",
        &gauss_kl_inputs(1, 1, 81),
        &gauss_kl_fused,
        &gauss_kl_unfused,
    );
    // ELBO with B = 1 and with D = 1 (K = 3), against the composition.
    for (b, k, d) in [(1, 3, 5), (4, 3, 1)] {
        let (f, u) = elbo_ops(Likelihood::Bernoulli);
        compare(
            &format!("elbo_marginal B={b} K={k} D={d}"),
            &elbo_inputs(b, k, d, 82, 1.0),
            &f,
            &u,
        );
    }
    // K = 1: q = 1, so U = nll + kl − log p(y) and the class logits get exactly zero gradient
    // (compare() would call a zero gradient vacuous, so check it directly).
    let ins = elbo_inputs(3, 1, 4, 83, 1.0);
    let vars = tensors(&ins);
    let (f, _) = elbo_ops(Likelihood::Bernoulli);
    let (_, u) = elbo_ops(Likelihood::Bernoulli);
    let a = f(&vars).unwrap().remove(0);
    let b = u(&vars).unwrap().remove(0);
    assert!(rel(&a.to_vec().unwrap(), &b.to_vec().unwrap()) <= REL_TOL);
    let g = weighted_sum(&[a]).backward().unwrap();
    assert_eq!(g.get(&vars[3]).unwrap().to_vec().unwrap(), vec![0.0; 3]);
    // K = 1 categoricals: y = 1 exactly, KL = 0, zero gradients.
    let l = Tensor::from_slice(&[3.0, -2.0], [2, 1], DEV)
        .unwrap()
        .variable();
    let y = vae::gumbel_softmax(&l, 0.1, false, key(9)).unwrap();
    assert_eq!(y.to_vec().unwrap(), vec![1.0, 1.0]);
    let kl = vae::categorical_kl_uniform(&l).unwrap();
    assert_eq!(kl.to_vec().unwrap(), vec![0.0, 0.0]);
    let g = y
        .add(&kl.reshape([2, 1]).unwrap())
        .unwrap()
        .sum_all()
        .unwrap();
    let g = g.backward().unwrap();
    assert_eq!(g.get(&l).unwrap().to_vec().unwrap(), vec![0.0, 0.0]);
    // K = 1 labelled ELBO, B = 1.
    let (ins, labels) = labelled_inputs(1, 1, 3, 84);
    let (f, u) = labelled_ops(labels, Likelihood::Bernoulli);
    let vars = tensors(&ins);
    let (a, b) = (f(&vars).unwrap(), u(&vars).unwrap());
    assert!(rel(&a[0].to_vec().unwrap(), &b[0].to_vec().unwrap()) <= REL_TOL);
    // B = 1 mixup (self-partner, λ = 0.5) and Gumbel-softmax.
    let mut p = mix_problem(1, 1, 2, 1, 85);
    p.lambda = vec![0.5];
    let out = finite_everywhere("mixup B=1", &p.ins(), &|t| p.fused(t));
    assert_eq!(out[1], p.ins[3].v, "self-partner leaves x unchanged");
    let lg = vec![var(normals(4, 86, 1.0), &[1, 4])];
    compare(
        "gumbel_softmax B=1",
        &lg,
        &|t| Ok(vec![vae::gumbel_softmax(&t[0], 0.9, false, key(10))?]),
        &|t| Ok(vec![composed::gumbel_softmax(&t[0], 0.9, false, key(10))?]),
    );
}

#[test]
fn edge_logits_pm100_and_tau_01() {
    let l: Vec<f32> = (0..4 * 5)
        .map(|i| if i % 5 == i / 5 { 100.0 } else { -100.0 })
        .collect();
    let ins = vec![var(l, &[4, 5])];
    for hard in [false, true] {
        let out = finite_everywhere("gumbel ±100 τ=0.1", &ins, &|t| {
            Ok(vec![vae::gumbel_softmax(&t[0], 0.1, hard, key(11))?])
        });
        // the +100 class wins every row, soft or hard
        for (r, row) in out[0].chunks(5).enumerate() {
            assert_eq!(row[r], 1.0, "row {r}: {row:?}");
        }
    }
    let out = finite_everywhere("categorical KL ±100", &ins, &|t| {
        Ok(vec![vae::categorical_kl_uniform(&t[0])?])
    });
    for v in &out[0] {
        assert!((v - 5f32.ln()).abs() < 1e-5, "{v}");
    }
    // ELBO with class logits ±100 (q one-hot to rounding) and decoder logits ±100.
    let (b, k, d) = (4, 5, 6);
    let mut ins = elbo_inputs(b, k, d, 90, 1.0);
    ins[3].v = (0..b * k)
        .map(|i| if i % k == (i / k) % k { 100.0 } else { -100.0 })
        .collect();
    ins[0].v = normals(b * k * d, 91, 1.0)
        .into_iter()
        .map(|v| if v > 0.0 { 100.0 } else { -100.0 })
        .collect();
    let (f, u) = elbo_ops(Likelihood::Bernoulli);
    let fused = finite_everywhere("elbo ±100", &ins, &f);
    let unfused = finite_everywhere("elbo ±100 (composed)", &ins, &u);
    assert!(rel(&fused[0], &unfused[0]) <= REL_TOL);
    // τ = 0.1 with moderate logits: still equal to the composition, rows sum to 1.
    let ins = vec![var(normals(6 * 5, 92, 1.0), &[6, 5])];
    let out = compare(
        "gumbel_softmax τ=0.1",
        &ins,
        &|t| Ok(vec![vae::gumbel_softmax(&t[0], 0.1, false, key(12))?]),
        &|t| Ok(vec![composed::gumbel_softmax(&t[0], 0.1, false, key(12))?]),
    );
    for r in out[0].chunks(5) {
        assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    // mixup CE with logits ±100 stays finite.
    let mut p = mix_problem(3, 2, 3, 2, 93);
    p.ins[0].v = (0..9)
        .map(|i| if i % 4 == 0 { 100.0 } else { -100.0 })
        .collect();
    finite_everywhere("mixup ±100", &p.ins(), &|t| p.fused(t));
}

#[test]
fn edge_lambda_0_and_1() {
    for lam in [0.0f32, 1.0] {
        let mut p = mix_problem(5, 4, 3, 2, 100);
        p.lambda = vec![lam; 5];
        let out = compare(
            &format!("mixup λ={lam}"),
            &p.ins(),
            &|t| p.fused(t),
            &|t| p.unfused(t),
        );
        // λ = 1 returns each row exactly, λ = 0 its partner exactly, for x, p, μ, σ.
        for (o, src) in [(1, 3), (2, 4), (3, 5), (4, 6)] {
            let s = &p.ins[src];
            let cols = s.dims[1];
            let want: Vec<f32> = (0..5)
                .flat_map(|b| {
                    let r = if lam == 1.0 { b } else { p.partner[b] as usize };
                    s.v[r * cols..(r + 1) * cols].to_vec()
                })
                .collect();
            assert_eq!(out[o], want, "λ={lam}, output {o}");
        }
    }
    // mixed λ ∈ {0, 1} per row with labels: p̃ is an exact one-hot.
    let mut p = mix_problem(4, 3, 3, 0, 101);
    p.lambda = vec![0.0, 1.0, 1.0, 0.0];
    p.labels = Some((vec![2, 0, 1, 1], 3));
    let out = compare("mixup λ∈{0,1} labels", &p.ins(), &|t| p.fused(t), &|t| {
        p.unfused(t)
    });
    for r in out[2].chunks(3) {
        assert_eq!(r.iter().filter(|&&v| v == 1.0).count(), 1, "{r:?}");
    }
}

#[test]
fn shape_errors_name_the_op() {
    let t = |d: &[usize]| Tensor::zeros(d.to_vec(), DEV).unwrap();
    let is_shape = |r: Result<Tensor>, op: &str| match r {
        Err(e @ Error::Shape { .. }) => assert!(e.to_string().starts_with(op), "{e}"),
        Err(e) => panic!("{op}: expected a shape error, got {e}"),
        Ok(_) => panic!("{op}: expected a shape error"),
    };
    assert!(matches!(
        vae::reparameterize(&t(&[2, 3]), &t(&[3, 2]), key(0)),
        Err(Error::Shape {
            op: "reparameterize",
            ..
        })
    ));
    assert!(matches!(
        vae::reparameterize(&t(&[6]), &t(&[6]), key(0)),
        Err(Error::Shape {
            op: "reparameterize",
            ..
        })
    ));
    is_shape(
        vae::gaussian_kl(&t(&[2, 3]), &t(&[2, 3]), &t(&[2, 3]), &t(&[2, 4])),
        "gaussian_kl",
    );
    is_shape(
        vae::gumbel_softmax(&t(&[2, 3, 1]), 1.0, false, key(0)),
        "gumbel_softmax",
    );
    is_shape(
        vae::categorical_kl_uniform(&t(&[2, 0])),
        "categorical_kl_uniform",
    );
    let (b, k, d) = (2, 3, 4);
    let ok = [t(&[b * k, d]), t(&[b, d]), t(&[b * k]), t(&[b, k]), t(&[k])];
    assert!(vae::elbo_marginal(
        &ok[0],
        &ok[1],
        &ok[2],
        &ok[3],
        &ok[4],
        Likelihood::Bernoulli
    )
    .is_ok());
    for (i, bad) in [
        t(&[b, d]),
        t(&[b, d + 1]),
        t(&[b]),
        t(&[b, k + 1]),
        t(&[k + 1]),
    ]
    .into_iter()
    .enumerate()
    {
        let mut a = ok.clone();
        a[i] = bad;
        is_shape(
            vae::elbo_marginal(&a[0], &a[1], &a[2], &a[3], &a[4], Likelihood::Bernoulli),
            "elbo_marginal",
        );
    }
    is_shape(
        vae::elbo_labelled(
            &t(&[2, 4]),
            &t(&[2, 4]),
            &t(&[3]),
            &[0, 1],
            &t(&[3]),
            Likelihood::Bernoulli,
        ),
        "elbo_labelled",
    );
    // labels out of range: an invalid-argument error from the kernel, not a panic
    assert!(vae::elbo_labelled(
        &t(&[2, 4]),
        &t(&[2, 4]),
        &t(&[2]),
        &[0, 3],
        &t(&[3]),
        Likelihood::Bernoulli
    )
    .is_err());
    let x = t(&[3, 2]);
    assert!(matches!(
        vae::mixup_build(
            &x,
            MixClass::Probs(&t(&[2, 2])),
            None,
            &[0, 1, 2],
            &[0.5; 3]
        ),
        Err(Error::Shape {
            op: "mixup_build",
            ..
        })
    ));
    assert!(matches!(
        vae::mixup_build(&x, MixClass::Probs(&t(&[3, 2])), None, &[0, 1], &[0.5; 3]),
        Err(Error::Shape {
            op: "mixup_build",
            ..
        })
    ));
    assert!(vae::mixup_build(
        &x,
        MixClass::Probs(&t(&[3, 2])),
        None,
        &[0, 1, 3],
        &[0.5; 3]
    )
    .is_err());
    let m = vae::mixup_build(
        &x,
        MixClass::Probs(&t(&[3, 2])),
        None,
        &[0, 1, 2],
        &[0.5; 3],
    )
    .unwrap();
    is_shape(vae::mixup_loss(&t(&[3, 3]), None, &m, 1.0), "mixup_loss");
    let (mu, sigma) = (t(&[3, 1]), t(&[3, 1]));
    let lat = MixLatent {
        mu: &mu,
        sigma: &sigma,
    };
    assert!(vae::mixup_loss(&t(&[3, 2]), Some(lat), &m, 1.0).is_err());
}

//! Finite-difference gradient checks, one test per differentiable op, named after the op.
//!
//! Method: for an op f and fixed random weights r, L(x) = Σ r ⊙ f(x) (accumulated in f64 on the
//! host). Every input element j is perturbed by ±h and the central difference
//! (L(x + h e_j) − L(x − h e_j)) / 2h is compared with the analytic ∂L/∂x_j from `backward()`.
//!
//! Tolerance: |fd − analytic| ≤ 1e-2·(1 + |fd|) per element, with h = 1e-2. The engine is f32, so
//! the finite difference carries rounding noise of about ‖r‖·ε_f32·|f|/h ≈ 1e-4 and truncation
//! error h²·f‴/6 ≈ 2e-5; the bound sits two orders above that. It still fails on a sign error
//! (error 2|g|), a factor of 2 (error |g|) or a gradient landing on the wrong index, because the
//! r-weighted gradients are O(1) (each test also asserts the gradient is not all ~0). Inputs to
//! ops with kinks (relu, abs, max …) are kept at least 0.1 away from the kink, farther than h.

use ssvae::nn::{BatchNorm, Module};
use ssvae::rng::Rng;
use ssvae::{Device, Result, Tensor};

const H: f32 = 1e-2;
const TOL: f64 = 1e-2;

/// Values in ±[lo, hi] with random signs (or only positive when `positive`).
fn values(n: usize, seed: u64, lo: f32, hi: f32, positive: bool) -> Vec<f32> {
    let mut rng = Rng::new(seed, 9);
    (0..n)
        .map(|_| {
            let m = lo + (hi - lo) * rng.uniform();
            if positive || rng.uniform() < 0.5 {
                m
            } else {
                -m
            }
        })
        .collect()
}

fn randn(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed, 3);
    (0..n).map(|_| rng.normal()).collect()
}

/// Check every input's gradient of Σ r ⊙ f(inputs).
fn check(name: &str, inputs: &[(Vec<f32>, Vec<usize>)], f: impl Fn(&[Tensor]) -> Result<Tensor>) {
    let dev = Device::Cpu;
    let vars: Vec<Tensor> = inputs
        .iter()
        .map(|(v, s)| Tensor::from_slice(v, s.clone(), dev).unwrap().variable())
        .collect();
    let out = f(&vars).unwrap();
    let r = randn(out.elem_count(), 77);
    let rt = Tensor::from_slice(&r, out.shape().clone(), dev).unwrap();
    let loss = out.mul(&rt).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();

    let eval = |vals: &[Vec<f32>]| -> f64 {
        let _g = ssvae::no_grad();
        let ts: Vec<Tensor> = vals
            .iter()
            .zip(inputs)
            .map(|(v, (_, s))| Tensor::from_slice(v, s.clone(), dev).unwrap())
            .collect();
        let o = f(&ts).unwrap().to_vec().unwrap();
        o.iter().zip(&r).map(|(&a, &b)| a as f64 * b as f64).sum()
    };
    let base: Vec<Vec<f32>> = inputs.iter().map(|(v, _)| v.clone()).collect();
    for (i, var) in vars.iter().enumerate() {
        let analytic = grads
            .get(var)
            .unwrap_or_else(|| panic!("{name}: input {i} got no gradient"))
            .to_vec()
            .unwrap();
        assert_eq!(analytic.len(), base[i].len(), "{name}: gradient size");
        let mut max_abs = 0.0f64;
        for j in 0..base[i].len() {
            let mut plus = base.clone();
            plus[i][j] += H;
            let mut minus = base.clone();
            minus[i][j] -= H;
            let fd = (eval(&plus) - eval(&minus)) / (2.0 * H as f64);
            let an = analytic[j] as f64;
            assert!(an.is_finite(), "{name}: input {i}[{j}] gradient is {an}");
            assert!(
                (fd - an).abs() <= TOL * (1.0 + fd.abs()),
                "{name}: input {i}[{j}]: finite difference {fd:.6} vs analytic {an:.6}"
            );
            max_abs = max_abs.max(an.abs());
        }
        assert!(
            max_abs > 1e-3,
            "{name}: input {i} gradient is all ~0, the check would be vacuous"
        );
    }
}

fn unary(name: &str, positive: bool, f: impl Fn(&Tensor) -> Result<Tensor>) {
    check(
        name,
        &[(values(12, 1, 0.1, 1.5, positive), vec![3, 4])],
        |t| f(&t[0]),
    );
}

#[test]
fn neg() {
    unary("neg", false, |x| x.neg());
}
#[test]
fn exp() {
    unary("exp", false, |x| x.exp());
}
#[test]
fn log() {
    unary("log", true, |x| x.log());
}
#[test]
fn sqrt() {
    unary("sqrt", true, |x| x.sqrt());
}
#[test]
fn square() {
    unary("square", false, |x| x.square());
}
#[test]
fn relu() {
    unary("relu", false, |x| x.relu());
}
#[test]
fn leaky_relu() {
    unary("leaky_relu", false, |x| x.leaky_relu(0.2));
}
#[test]
fn elu() {
    unary("elu", false, |x| x.elu(0.7));
}
#[test]
fn softplus() {
    unary("softplus", false, |x| x.softplus());
}
#[test]
fn sigmoid() {
    unary("sigmoid", false, |x| x.sigmoid());
}
#[test]
fn tanh() {
    unary("tanh", false, |x| x.tanh());
}
#[test]
fn abs() {
    unary("abs", false, |x| x.abs());
}
#[test]
fn affine() {
    unary("affine", false, |x| x.affine(-1.5, 0.3));
}

/// A binary op on equal shapes, a row vector, a column vector and a scalar.
fn binary(name: &str, f: impl Fn(&Tensor, &Tensor) -> Result<Tensor> + Copy) {
    let a = values(12, 2, 0.5, 1.5, false);
    for (i, rhs_shape) in [vec![3, 4], vec![4], vec![3, 1], vec![1]]
        .into_iter()
        .enumerate()
    {
        let n: usize = rhs_shape.iter().product();
        let b = values(n, 10 + i as u64, 0.5, 1.5, false);
        check(name, &[(a.clone(), vec![3, 4]), (b, rhs_shape)], |t| {
            f(&t[0], &t[1])
        });
    }
}

#[test]
fn add() {
    binary("add", |a, b| a.add(b));
}
#[test]
fn sub() {
    binary("sub", |a, b| a.sub(b));
}
#[test]
fn mul() {
    binary("mul", |a, b| a.mul(b));
}
#[test]
fn div() {
    binary("div", |a, b| a.div(b));
}
#[test]
fn maximum() {
    // Values drawn apart so no pair is within h of a tie.
    let a: Vec<f32> = (0..12).map(|i| (i as f32) * 0.3 - 1.7).collect();
    let b: Vec<f32> = (0..12).map(|i| 1.6 - (i as f32) * 0.29 + 0.05).collect();
    check("maximum", &[(a, vec![3, 4]), (b, vec![3, 4])], |t| {
        t[0].maximum(&t[1])
    });
}
#[test]
fn broadcast_as() {
    check(
        "broadcast_as",
        &[(values(4, 3, 0.1, 1.0, false), vec![4])],
        |t| t[0].broadcast_as(&ssvae::Shape::new(&[3, 4])),
    );
}

fn x34() -> Vec<(Vec<f32>, Vec<usize>)> {
    vec![(values(24, 4, 0.1, 2.0, false), vec![2, 3, 4])]
}
#[test]
fn sum() {
    for axis in 0..3 {
        check("sum", &x34(), |t| t[0].sum(axis));
    }
    check("sum_all", &x34(), |t| t[0].sum_all());
}
#[test]
fn mean() {
    for axis in 0..3 {
        check("mean", &x34(), |t| t[0].mean(axis));
    }
    check("mean_all", &x34(), |t| t[0].mean_all());
}
#[test]
fn max() {
    // Distinct values spaced 0.1 apart (a permutation), so the argmax is stable under ±h.
    let mut v: Vec<f32> = (0..24).map(|i| i as f32 * 0.1).collect();
    Rng::new(5, 0).shuffle(&mut v);
    for axis in 0..3 {
        check("max", &[(v.clone(), vec![2, 3, 4])], |t| t[0].max(axis));
    }
}
#[test]
fn logsumexp() {
    check("logsumexp", &x34(), |t| t[0].logsumexp());
}
#[test]
fn softmax() {
    check("softmax", &x34(), |t| t[0].softmax());
}
#[test]
fn log_softmax() {
    check("log_softmax", &x34(), |t| t[0].log_softmax());
}

#[test]
fn matmul() {
    let a = (values(15, 6, 0.1, 1.0, false), vec![3, 5]);
    let b = (values(10, 7, 0.1, 1.0, false), vec![5, 2]);
    check("matmul", &[a, b], |t| t[0].matmul(&t[1]));
    let a = (values(30, 8, 0.1, 1.0, false), vec![2, 3, 5]);
    let b = (values(20, 9, 0.1, 1.0, false), vec![2, 5, 2]);
    check("matmul_batched", &[a.clone(), b], |t| t[0].matmul(&t[1]));
    let b = (values(10, 10, 0.1, 1.0, false), vec![5, 2]);
    check("matmul_shared_rhs", &[a, b], |t| t[0].matmul(&t[1]));
}
#[test]
fn linear() {
    let x = (values(15, 11, 0.1, 1.0, false), vec![3, 5]);
    let w = (values(20, 12, 0.1, 1.0, false), vec![4, 5]);
    let b = (values(4, 13, 0.1, 1.0, false), vec![4]);
    check("linear", &[x, w, b], |t| t[0].linear(&t[1], Some(&t[2])));
}
#[test]
fn conv2d() {
    for (stride, padding) in [(1, 0), (2, 1), (3, 2)] {
        let x = (values(2 * 2 * 5 * 6, 14, 0.1, 1.0, false), vec![2, 2, 5, 6]);
        let w = (values(3 * 2 * 3 * 3, 15, 0.1, 1.0, false), vec![3, 2, 3, 3]);
        check("conv2d", &[x, w], |t| t[0].conv2d(&t[1], stride, padding));
    }
}
#[test]
fn conv_transpose2d() {
    for (stride, padding, op) in [(1, 0, 0), (2, 1, 0), (2, 1, 1), (3, 0, 2)] {
        let x = (values(2 * 3 * 3 * 4, 16, 0.1, 1.0, false), vec![2, 3, 3, 4]);
        let w = (values(3 * 2 * 4 * 4, 17, 0.1, 1.0, false), vec![3, 2, 4, 4]);
        check("conv_transpose2d", &[x, w], |t| {
            t[0].conv_transpose2d(&t[1], stride, padding, op)
        });
    }
}
#[test]
fn batch_norm() {
    for (shape, train) in [
        (vec![5, 3], true),
        (vec![5, 3], false),
        (vec![2, 3, 2, 2], true),
        (vec![2, 3, 2, 2], false),
    ] {
        let n: usize = shape.iter().product();
        let x = (values(n, 18, 0.1, 2.0, false), shape);
        let g = (values(3, 19, 0.5, 1.5, false), vec![3]);
        let b = (values(3, 20, 0.1, 1.0, false), vec![3]);
        check("batch_norm", &[x, g, b], |t| {
            let mut bn = BatchNorm::new(3, Device::Cpu)?;
            bn.set_training(train);
            // The layer's own parameters replaced by the checked variables.
            bn.gamma = t[1].clone();
            bn.beta = t[2].clone();
            bn.forward(&t[0])
        });
    }
}
#[test]
fn reshape() {
    check("reshape", &x34(), |t| {
        t[0].reshape([4, 6])?.mul(&t[0].reshape([4, 6])?)
    });
}
#[test]
fn transpose() {
    check("transpose", &x34(), |t| t[0].transpose(0, 2));
    check("transpose", &x34(), |t| t[0].transpose(1, 2));
}
#[test]
fn concat() {
    let a = (values(6, 21, 0.1, 1.0, false), vec![2, 3]);
    let b = (values(4, 22, 0.1, 1.0, false), vec![2, 2]);
    check("concat", &[a, b], |t| Tensor::concat(&[&t[0], &t[1]], 1));
    let a = (values(6, 23, 0.1, 1.0, false), vec![2, 3]);
    let b = (values(9, 24, 0.1, 1.0, false), vec![3, 3]);
    check("concat", &[a, b], |t| Tensor::concat(&[&t[0], &t[1]], 0));
}
#[test]
fn narrow() {
    check("narrow", &x34(), |t| t[0].narrow(2, 1, 2));
    check("narrow", &x34(), |t| t[0].narrow(0, 1, 1));
}
#[test]
fn index_select() {
    check("index_select", &x34(), |t| t[0].index_select(&[1, 0, 1, 1]));
}
#[test]
fn repeat_interleave() {
    check("repeat_interleave", &x34(), |t| t[0].repeat_interleave(3));
}
#[test]
fn repeat_rows() {
    check("repeat_rows", &x34(), |t| t[0].repeat_rows(2));
}
#[test]
fn bce_with_logits_rows() {
    let l = (values(12, 25, 0.1, 3.0, false), vec![3, 4]);
    let x: Vec<f32> = values(12, 26, 0.0, 1.0, true);
    check("bce_with_logits_rows", &[l], |t| {
        t[0].bce_with_logits_rows(&Tensor::from_slice(&x, [3, 4], Device::Cpu)?)
    });
}
#[test]
fn cross_entropy_rows() {
    let l = (values(12, 27, 0.1, 3.0, false), vec![3, 4]);
    let p = Tensor::from_slice(&values(12, 28, 0.0, 1.0, true), [3, 4], Device::Cpu)
        .unwrap()
        .softmax()
        .unwrap();
    check("cross_entropy_rows", &[l], |t| t[0].cross_entropy_rows(&p));
}
#[test]
fn kl_diag_gaussian_rows() {
    let mu = (values(12, 29, 0.1, 1.5, false), vec![3, 4]);
    let lv = (values(12, 30, 0.1, 1.5, false), vec![3, 4]);
    check("kl_diag_gaussian_rows", &[mu, lv], |t| {
        t[0].kl_diag_gaussian_rows(&t[1])
    });
}
#[test]
fn gaussian_nll_rows() {
    let mu = (values(12, 31, 0.1, 1.5, false), vec![3, 4]);
    let x = Tensor::from_slice(&values(12, 32, 0.1, 1.5, false), [3, 4], Device::Cpu).unwrap();
    check("gaussian_nll_rows", &[mu], |t| {
        t[0].gaussian_nll_rows(&x, 0.7)
    });
}
#[test]
fn gaussian_nll_logvar_rows() {
    let mu = (values(12, 33, 0.1, 1.5, false), vec![3, 4]);
    let lv = (values(12, 34, 0.1, 1.0, false), vec![3, 4]);
    let x = Tensor::from_slice(&values(12, 35, 0.1, 1.5, false), [3, 4], Device::Cpu).unwrap();
    check("gaussian_nll_logvar_rows", &[mu, lv], |t| {
        t[0].gaussian_nll_logvar_rows(&x, &t[1])
    });
    // At logvar = log σ² it is the fixed-σ loss.
    let (m, s2) = (
        Tensor::from_slice(&values(12, 36, 0.1, 1.5, false), [3, 4], Device::Cpu).unwrap(),
        0.49f32,
    );
    let lv = Tensor::full(s2.ln(), [3, 4], Device::Cpu).unwrap();
    let a = m
        .gaussian_nll_logvar_rows(&x, &lv)
        .unwrap()
        .to_vec()
        .unwrap();
    let b = m
        .gaussian_nll_rows(&x, s2.sqrt())
        .unwrap()
        .to_vec()
        .unwrap();
    for (a, b) in a.iter().zip(&b) {
        assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
    }
}

#[test]
fn gradients_accumulate_across_uses() {
    // y = x·x + 3x ⇒ dy/dx = 2x + 3, with x used three times.
    let x = Tensor::from_slice(&[0.5, -2.0], [2], Device::Cpu)
        .unwrap()
        .variable();
    let y = x
        .mul(&x)
        .unwrap()
        .add(&x.mul_scalar(3.0).unwrap())
        .unwrap()
        .sum_all()
        .unwrap();
    let g = y.backward().unwrap();
    assert_eq!(g.get(&x).unwrap().to_vec().unwrap(), vec![4.0, -1.0]);
}

#[test]
fn no_grad_records_nothing() {
    let x = Tensor::from_slice(&[1.0, 2.0], [2], Device::Cpu)
        .unwrap()
        .variable();
    let y = {
        let _g = ssvae::no_grad();
        x.exp().unwrap().sum_all().unwrap()
    };
    assert!(!y.tracks_grad());
    assert!(y.backward().unwrap().get(&x).is_none());
}

#[test]
fn shape_errors_name_the_op_and_shapes() {
    let a = Tensor::zeros([2, 3], Device::Cpu).unwrap();
    let b = Tensor::zeros([4, 5], Device::Cpu).unwrap();
    let e = a.matmul(&b).unwrap_err().to_string();
    assert!(
        e.contains("matmul") && e.contains("[2, 3]") && e.contains("[4, 5]"),
        "{e}"
    );
    let e = a.add(&b).unwrap_err().to_string();
    assert!(e.contains("add") && e.contains("[2, 3]"), "{e}");
}

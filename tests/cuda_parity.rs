//! CPU ↔ CUDA parity: every `BackendStorage` method and every `BackendDevice` constructor, run on
//! both backends with the same fresh random inputs, awkward shapes (1, primes, sizes that are not
//! multiples of any tile) and both directions (forward and backward ops). The CPU backend is the
//! reference.
//!
//! Error measure: ‖cuda − cpu‖₂ / ‖cpu‖₂ (absolute ‖cuda − cpu‖₂ when the reference is all
//! zeros). A NaN anywhere never passes; ±∞ must sit at the same places in both. Bounds:
//! - elementwise maps, their derivatives, copies, Adam, draws: 1e-5 (copies/gathers: exact);
//! - reductions, softmax family, BCE rows, GEMM (F32), convolutions: 1e-4;
//! - GEMM on tensor cores (TF32 operands, f32 accumulation): 5e-3.
//!
//! Random draws: uniforms bit-equal (the map u32 → (0,1) is exact), normals within 1e-5
//! (Box–Muller's log/cos may differ by an ulp between libm and CUDA's libdevice).
//!
//! Without a GPU (no libcuda, no libnvrtc, or no device) every test prints `skipped: <reason>` and
//! passes, unless `SSVAE_REQUIRE_GPU=1`. GPU tests share one runtime per process, so they hold a lock while they run: the
//! allocator test counts `cuMemAlloc` calls and the precision test flips a runtime-wide setting.
// The CUDA backend is the `cuda` feature (on by default).
#![cfg(feature = "cuda")]

use ssvae::backend::cpu::{CpuDevice, CpuStorage};
use ssvae::backend::cuda::{AdamTensors, CudaDevice, CudaStorage, GemmPrecision};
use ssvae::backend::{
    AdamStep, BackendDevice, BackendStorage, BinaryOp, Conv2dShape, MatmulShape, ReduceOp, UnaryOp,
};
use ssvae::rng::{Rng, RngKey};

#[macro_use]
mod common;
use common::*;

const TF32: f64 = 5e-3;

const SIZES: [usize; 7] = [1, 3, 4, 7, 1000, 4099, 65_537];

fn all_unary() -> Vec<UnaryOp> {
    vec![
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Square,
        UnaryOp::Relu,
        UnaryOp::LeakyRelu(0.01),
        UnaryOp::LeakyRelu(0.2),
        UnaryOp::Elu(1.0),
        UnaryOp::Elu(0.5),
        UnaryOp::Softplus,
        UnaryOp::Sigmoid,
        UnaryOp::Tanh,
        UnaryOp::Affine {
            mul: -1.5,
            add: 0.25,
        },
        UnaryOp::Abs,
    ]
}

/// Inputs inside the op's domain.
fn unary_input(op: UnaryOp, seed: u64, n: usize) -> Vec<f32> {
    match op {
        UnaryOp::Log | UnaryOp::Sqrt => uniforms(seed, n, 0.05, 20.0),
        UnaryOp::Exp => normals(seed, n, 3.0),
        _ => normals(seed, n, 4.0),
    }
}

#[test]
fn unary_forward_and_backward() {
    let (dev, _g) = gpu_or_skip!();
    for (k, op) in all_unary().into_iter().enumerate() {
        for &n in &SIZES {
            let x = unary_input(op, 100 + k as u64, n);
            let g = normals(200 + k as u64, n, 1.0);
            let (xc, xg) = both(&dev, &x);
            let (gc, gg) = both(&dev, &g);
            let want = xc.unary(op).unwrap().to_vec().unwrap();
            let got = host(&xg.unary(op).unwrap());
            assert_close(&format!("unary {op:?} n={n}"), &got, &want, ELEMENTWISE);
            let want = xc.unary_backward(op, &gc).unwrap().to_vec().unwrap();
            let got = host(&xg.unary_backward(op, &gg).unwrap());
            assert_close(
                &format!("unary_backward {op:?} n={n}"),
                &got,
                &want,
                ELEMENTWISE,
            );
        }
    }
}

#[test]
fn unary_at_special_points() {
    let (dev, _g) = gpu_or_skip!();
    // Zeros and the branch points of Relu / LeakyRelu / Elu / Abs / Sigmoid.
    let x = vec![
        0.0, -0.0, 1e-30, -1e-30, 30.0, -30.0, 88.0, -88.0, 1.0, -1.0,
    ];
    let g = vec![1.0; x.len()];
    let (xc, xg) = both(&dev, &x);
    let (gc, gg) = both(&dev, &g);
    for op in all_unary() {
        if matches!(op, UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Exp) {
            continue;
        }
        let want = xc.unary(op).unwrap().to_vec().unwrap();
        assert_close(
            &format!("{op:?} special"),
            &host(&xg.unary(op).unwrap()),
            &want,
            ELEMENTWISE,
        );
        let want = xc.unary_backward(op, &gc).unwrap().to_vec().unwrap();
        let got = host(&xg.unary_backward(op, &gg).unwrap());
        assert_close(&format!("{op:?}' special"), &got, &want, ELEMENTWISE);
    }
}

/// NaN propagates alike on both backends: at a NaN input every op gives NaN on the GPU where
/// the CPU does (relu, whose `fmaxf` would give 0, and the flat sides of the derivatives
/// included), and the numbers around it agree; Maximum gives NaN when either operand is.
#[test]
fn nan_propagates_alike() {
    let (dev, _g) = gpu_or_skip!();
    let x: Vec<f32> = (0..1003)
        .map(|i| {
            if i % 7 == 0 {
                f32::NAN
            } else {
                (i as f32 - 500.0) / 97.0
            }
        })
        .collect();
    let g = vec![1.0; x.len()];
    let (xc, xg) = both(&dev, &x);
    let (gc, gg) = both(&dev, &g);
    let same = |what: String, got: Vec<f32>, want: Vec<f32>| {
        let nan_at = |v: &[f32]| v.iter().map(|x| x.is_nan()).collect::<Vec<_>>();
        assert_eq!(
            nan_at(&got),
            nan_at(&want),
            "{what}: NaN at different places"
        );
        let keep = |v: &[f32]| {
            v.iter()
                .copied()
                .filter(|x| !x.is_nan())
                .collect::<Vec<_>>()
        };
        assert_close(&what, &keep(&got), &keep(&want), ELEMENTWISE);
    };
    for op in all_unary() {
        let want = xc.unary(op).unwrap().to_vec().unwrap();
        assert!(
            want.iter().step_by(7).all(|v| v.is_nan()),
            "{op:?} on the CPU"
        );
        same(format!("{op:?} NaN"), host(&xg.unary(op).unwrap()), want);
        let want = xc.unary_backward(op, &gc).unwrap().to_vec().unwrap();
        same(
            format!("{op:?}' NaN"),
            host(&xg.unary_backward(op, &gg).unwrap()),
            want,
        );
    }
    let zeros = vec![0.0; x.len()];
    let (zc, zg) = both(&dev, &zeros);
    let d = [x.len()];
    for (a, b, ac, bc) in [(&xg, &zg, &xc, &zc), (&zg, &xg, &zc, &xc)] {
        let want = ac
            .binary(BinaryOp::Maximum, bc, &d, &d, &d)
            .unwrap()
            .to_vec()
            .unwrap();
        assert!(
            want.iter().step_by(7).all(|v| v.is_nan()),
            "Maximum on the CPU"
        );
        same(
            "Maximum NaN".to_string(),
            host(&a.binary(BinaryOp::Maximum, b, &d, &d, &d).unwrap()),
            want,
        );
    }
}

/// Operands for `op`: Div gets a divisor away from 0, Eq small integers so that ties happen.
fn binary_inputs(op: BinaryOp, seed: u64, ln: usize, rn: usize) -> (Vec<f32>, Vec<f32>) {
    match op {
        BinaryOp::Div => (normals(seed, ln, 2.0), uniforms(seed + 1, rn, 0.5, 3.0)),
        BinaryOp::Eq | BinaryOp::Maximum => (
            uniforms(seed, ln, 0.0, 3.0)
                .iter()
                .map(|v| v.floor())
                .collect(),
            uniforms(seed + 1, rn, 0.0, 3.0)
                .iter()
                .map(|v| v.floor())
                .collect(),
        ),
        _ => (normals(seed, ln, 2.0), normals(seed + 1, rn, 2.0)),
    }
}

fn broadcast_to(a: &[usize], b: &[usize]) -> Vec<usize> {
    a.iter().zip(b).map(|(&x, &y)| x.max(y)).collect()
}

fn check_binary(dev: &CudaDevice, op: BinaryOp, ld: &[usize], rd: &[usize], seed: u64) {
    let od = broadcast_to(ld, rd);
    let (l, r) = binary_inputs(op, seed, ld.iter().product(), rd.iter().product());
    let (lc, lg) = both(dev, &l);
    let (rc, rg) = both(dev, &r);
    let want = lc.binary(op, &rc, ld, rd, &od).unwrap().to_vec().unwrap();
    let got = host(&lg.binary(op, &rg, ld, rd, &od).unwrap());
    assert_close(
        &format!("binary {op:?} {ld:?} ∘ {rd:?}"),
        &got,
        &want,
        ELEMENTWISE,
    );
}

#[test]
fn binary_equal_shapes_and_broadcasting() {
    let (dev, _g) = gpu_or_skip!();
    let cases: Vec<(Vec<usize>, Vec<usize>)> = vec![
        (vec![1], vec![1]),
        (vec![7], vec![7]),
        (vec![4099], vec![4099]),
        (vec![3, 65_537], vec![3, 65_537]),
        (vec![4, 1, 3], vec![1, 5, 1]),
        (vec![2, 3, 4, 5], vec![1, 1, 1, 5]),
        (vec![1, 1], vec![7, 13]),
        (vec![7, 13], vec![1, 1]),
        (vec![129, 1], vec![1, 257]),
        (vec![3, 1, 1, 1, 1, 1, 1, 5], vec![3, 2, 1, 2, 1, 2, 1, 5]),
        (vec![2, 1, 3, 1, 2, 1], vec![1, 4, 1, 3, 1, 2]),
        (vec![1, 31, 1, 17], vec![5, 31, 3, 1]),
    ];
    for (k, op) in BinaryOp::ALL.into_iter().enumerate() {
        for (c, (ld, rd)) in cases.iter().enumerate() {
            check_binary(&dev, op, ld, rd, 1000 + (k * 100 + c) as u64);
        }
    }
}

#[test]
fn binary_random_broadcasts() {
    let (dev, _g) = gpu_or_skip!();
    let mut r = Rng::new(77, 0);
    for case in 0..60 {
        let rank = 1 + r.below(6);
        let od: Vec<usize> = (0..rank).map(|_| 1 + r.below(9)).collect();
        let ld: Vec<usize> = od
            .iter()
            .map(|&d| if r.below(3) == 0 { 1 } else { d })
            .collect();
        let rd: Vec<usize> = od
            .iter()
            .map(|&d| if r.below(3) == 0 { 1 } else { d })
            .collect();
        let op = BinaryOp::ALL[case % BinaryOp::ALL.len()];
        check_binary(&dev, op, &ld, &rd, 5000 + case as u64);
    }
}

#[test]
fn binary_rejects_what_it_cannot_do() {
    let (dev, _g) = gpu_or_skip!();
    let a = dev.storage_from_slice(&[1.0; 6]).unwrap();
    let b = dev.storage_from_slice(&[1.0; 4]).unwrap();
    assert!(a.binary(BinaryOp::Add, &b, &[6], &[4], &[6]).is_err());
    assert!(a.binary(BinaryOp::Add, &b, &[2, 3], &[4], &[2, 3]).is_err());
    // Alternating broadcast over 7 real dims cannot be merged below the kernel's 6: an error,
    // never a wrong answer.
    let ld = [2, 1, 2, 1, 2, 1, 2];
    let rd = [1, 2, 1, 2, 1, 2, 1];
    let od = [2; 7];
    let l = dev.storage_from_slice(&[1.0; 16]).unwrap();
    let r = dev.storage_from_slice(&[1.0; 8]).unwrap();
    assert!(l.binary(BinaryOp::Add, &r, &ld, &rd, &od).is_err());
}

#[test]
fn reduce_sum_and_max() {
    let (dev, _g) = gpu_or_skip!();
    let shapes = [
        (1, 1, 1),
        (1, 7, 1),
        (3, 1000, 1),
        (129, 13, 1),
        (1, 100_003, 1),
        (5, 1025, 1),
        (2, 40_000, 1),
        (5, 17, 33),
        (2, 3, 4099),
        (1, 2048, 3),
        (7, 1, 5),
        (4, 0, 3),
        (3, 0, 1),
        (70_000, 3, 2),
    ];
    for (k, &(o, l, i)) in shapes.iter().enumerate() {
        // A positive mean keeps every sum away from 0, so the CPU's own sequential rounding
        // (the reference) stays well inside the bound even for 10⁵ terms.
        let x = uniforms(300 + k as u64, o * l * i, -0.5, 1.5);
        let (xc, xg) = both(&dev, &x);
        for op in [ReduceOp::Sum, ReduceOp::Max] {
            let want = xc.reduce(op, o, l, i).unwrap().to_vec().unwrap();
            let got = host(&xg.reduce(op, o, l, i).unwrap());
            let what = format!("reduce {op:?} ({o}, {l}, {i})");
            match op {
                ReduceOp::Sum => assert_close(&what, &got, &want, REDUCTION),
                ReduceOp::Max => assert_exact(&what, &got, &want),
            }
        }
    }
    let x = dev.storage_from_slice(&[1.0; 10]).unwrap();
    assert!(x.reduce(ReduceOp::Sum, 3, 3, 1).is_err());
}

#[test]
fn softmax_log_softmax_logsumexp() {
    let (dev, _g) = gpu_or_skip!();
    let shapes = [
        (1, 1),
        (3, 10),
        (129, 10),
        (1000, 3),
        (7, 1024),
        (7, 1025),
        (2, 40_000),
        (1, 100_003),
        (5, 0),
    ];
    for (k, &(r, c)) in shapes.iter().enumerate() {
        let x = normals(400 + k as u64, r * c, 5.0);
        let (xc, xg) = both(&dev, &x);
        for log in [false, true] {
            let want = xc.softmax_rows(r, c, log).unwrap().to_vec().unwrap();
            let got = host(&xg.softmax_rows(r, c, log).unwrap());
            assert_close(
                &format!("softmax log={log} {r}x{c}"),
                &got,
                &want,
                REDUCTION,
            );
        }
        let want = xc.logsumexp_rows(r, c).unwrap().to_vec().unwrap();
        let got = host(&xg.logsumexp_rows(r, c).unwrap());
        assert_close(&format!("logsumexp {r}x{c}"), &got, &want, REDUCTION);
    }
    // Rows with −∞ entries, an all-(−∞) row, and huge logits.
    let ninf = f32::NEG_INFINITY;
    let x = vec![ninf, 0.0, 1.0, ninf, ninf, ninf, 1000.0, -1000.0, 999.0];
    let (xc, xg) = both(&dev, &x);
    let want = xc.logsumexp_rows(3, 3).unwrap().to_vec().unwrap();
    let got = host(&xg.logsumexp_rows(3, 3).unwrap());
    assert_close("logsumexp with -inf", &got, &want, REDUCTION);
    let rows_ok = [0usize, 2];
    for log in [false, true] {
        let want = xc.softmax_rows(3, 3, log).unwrap().to_vec().unwrap();
        let got = host(&xg.softmax_rows(3, 3, log).unwrap());
        for r in rows_ok {
            let s = r * 3..r * 3 + 3;
            assert_close(
                &format!("softmax -inf log={log} row {r}"),
                &got[s.clone()],
                &want[s],
                REDUCTION,
            );
        }
    }
}

fn cpu_matmul(a: &CpuStorage, b: &CpuStorage, s: &MatmulShape) -> Vec<f32> {
    a.matmul(b, s).unwrap().to_vec().unwrap()
}

/// A contiguous batched problem with the given transposes.
fn mm_shape(batch: usize, m: usize, n: usize, k: usize, ta: bool, tb: bool) -> MatmulShape {
    MatmulShape {
        batch,
        m,
        n,
        k,
        trans_lhs: ta,
        trans_rhs: tb,
        lhs_batch_stride: m * k,
        rhs_batch_stride: k * n,
    }
}

fn check_matmul(dev: &CudaDevice, s: &MatmulShape, seed: u64, p: GemmPrecision, tol: f64) {
    let ln = if s.batch == 0 {
        0
    } else {
        (s.batch - 1) * s.lhs_batch_stride + s.m * s.k
    };
    let rn = if s.batch == 0 {
        0
    } else {
        (s.batch - 1) * s.rhs_batch_stride + s.k * s.n
    };
    let (ac, ag) = both(dev, &normals(seed, ln, 1.0));
    let (bc, bg) = both(dev, &normals(seed + 1, rn, 1.0));
    let want = cpu_matmul(&ac, &bc, s);
    let got = host(&ag.matmul_with(&bg, s, p).unwrap());
    assert_close(&format!("matmul {p:?} {s:?}"), &got, &want, tol);
}

const MM_SHAPES: [(usize, usize, usize); 12] = [
    (1, 1, 1),
    (1, 7, 3),
    (13, 1, 17),
    (5, 6, 0),
    (8, 8, 8),
    (31, 33, 9),
    (127, 129, 131),
    (128, 128, 8),
    (64, 200, 784),
    (257, 65, 300),
    (100, 10, 512),
    (3, 1000, 2),
];

#[test]
fn matmul_f32_all_transposes() {
    let (dev, _g) = gpu_or_skip!();
    for (k, &(m, n, kk)) in MM_SHAPES.iter().enumerate() {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let s = mm_shape(1, m, n, kk, ta, tb);
            check_matmul(&dev, &s, 600 + k as u64, GemmPrecision::F32, REDUCTION);
        }
    }
}

#[test]
fn matmul_f32_batched_and_broadcast_operands() {
    let (dev, _g) = gpu_or_skip!();
    // Batch of 3 with each transpose; rhs shared (stride 0); lhs shared.
    for (ta, tb) in [(false, false), (true, true), (false, true)] {
        check_matmul(
            &dev,
            &mm_shape(3, 17, 23, 29, ta, tb),
            700,
            GemmPrecision::F32,
            REDUCTION,
        );
    }
    let mut s = mm_shape(4, 9, 11, 13, false, false);
    s.rhs_batch_stride = 0;
    check_matmul(&dev, &s, 710, GemmPrecision::F32, REDUCTION);
    let mut s = mm_shape(4, 9, 11, 13, true, false);
    s.lhs_batch_stride = 0;
    check_matmul(&dev, &s, 720, GemmPrecision::F32, REDUCTION);
    // Enough 128×128 tiles to select the big kernel (≥ one block per SM on any current GPU),
    // with ragged edges in m, n and k.
    check_matmul(
        &dev,
        &mm_shape(40, 257, 255, 67, false, true),
        730,
        GemmPrecision::F32,
        REDUCTION,
    );
    check_matmul(
        &dev,
        &mm_shape(2, 1031, 1153, 37, true, false),
        740,
        GemmPrecision::F32,
        REDUCTION,
    );
    // batch = 0 and m = 0 produce empty outputs.
    check_matmul(
        &dev,
        &mm_shape(0, 3, 3, 3, false, false),
        750,
        GemmPrecision::F32,
        REDUCTION,
    );
    check_matmul(
        &dev,
        &mm_shape(2, 0, 3, 3, false, false),
        760,
        GemmPrecision::F32,
        REDUCTION,
    );
}

#[test]
fn matmul_random_shapes() {
    let (dev, _g) = gpu_or_skip!();
    let mut r = Rng::new(99, 0);
    for case in 0..40 {
        let s = mm_shape(
            1 + r.below(3),
            1 + r.below(150),
            1 + r.below(150),
            1 + r.below(150),
            r.below(2) == 1,
            r.below(2) == 1,
        );
        check_matmul(&dev, &s, 800 + case, GemmPrecision::F32, REDUCTION);
        check_matmul(&dev, &s, 900 + case, GemmPrecision::Tf32, TF32);
    }
}

#[test]
fn matmul_tf32_and_the_precision_setting() {
    let (dev, _g) = gpu_or_skip!();
    for (k, &(m, n, kk)) in MM_SHAPES.iter().enumerate() {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let s = mm_shape(2, m, n, kk, ta, tb);
            check_matmul(&dev, &s, 1100 + k as u64, GemmPrecision::Tf32, TF32);
        }
    }
    check_matmul(
        &dev,
        &mm_shape(1, 1031, 1153, 257, false, false),
        1150,
        GemmPrecision::Tf32,
        TF32,
    );

    // The trait's matmul follows the runtime setting, F32 by default.
    let rt = dev.runtime().unwrap();
    assert_eq!(rt.gemm_precision(), GemmPrecision::F32);
    let s = mm_shape(1, 70, 90, 300, false, false);
    let (ac, ag) = both(&dev, &normals(1200, 70 * 300, 1.0));
    let (bc, bg) = both(&dev, &normals(1201, 300 * 90, 1.0));
    let want = cpu_matmul(&ac, &bc, &s);
    let f32_default = host(&ag.matmul(&bg, &s).unwrap());
    assert_exact(
        "default = F32",
        &f32_default,
        &host(&ag.matmul_with(&bg, &s, GemmPrecision::F32).unwrap()),
    );
    assert_close("default precision", &f32_default, &want, REDUCTION);
    rt.set_gemm_precision(GemmPrecision::Tf32);
    let tf = host(&ag.matmul(&bg, &s).unwrap());
    rt.set_gemm_precision(GemmPrecision::F32);
    assert_close("TF32 via setting", &tf, &want, TF32);
    if rt.compute_capability().0 >= 8 {
        // TF32 rounds the operands: with k = 300 the result cannot be bit-identical to F32.
        assert!(
            tf != f32_default,
            "the TF32 setting did not reach the tensor-core kernel"
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn conv_shape(
    n: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    padding: usize,
) -> Conv2dShape {
    Conv2dShape {
        n,
        c_in,
        h,
        w,
        c_out,
        kh: k,
        kw: k,
        stride,
        padding,
        h_out: (h + 2 * padding - k) / stride + 1,
        w_out: (w + 2 * padding - k) / stride + 1,
    }
}

fn check_conv(dev: &CudaDevice, s: &Conv2dShape, seed: u64) {
    let (xs, ws, ys) = s.sizes();
    let (xc, xg) = both(dev, &normals(seed, xs, 1.0));
    let (wc, wg) = both(dev, &normals(seed + 1, ws, 0.5));
    let (dyc, dyg) = both(dev, &normals(seed + 2, ys, 1.0));
    let want = xc.conv2d(&wc, s).unwrap().to_vec().unwrap();
    assert_close(
        &format!("conv2d {s:?}"),
        &host(&xg.conv2d(&wg, s).unwrap()),
        &want,
        REDUCTION,
    );
    let want = dyc.conv2d_backward_input(&wc, s).unwrap().to_vec().unwrap();
    let got = host(&dyg.conv2d_backward_input(&wg, s).unwrap());
    assert_close(
        &format!("conv2d_backward_input {s:?}"),
        &got,
        &want,
        REDUCTION,
    );
    let want = xc
        .conv2d_backward_weight(&dyc, s)
        .unwrap()
        .to_vec()
        .unwrap();
    let got = host(&xg.conv2d_backward_weight(&dyg, s).unwrap());
    assert_close(
        &format!("conv2d_backward_weight {s:?}"),
        &got,
        &want,
        REDUCTION,
    );
}

#[test]
fn conv2d_forward_and_both_backwards() {
    let (dev, _g) = gpu_or_skip!();
    let shapes = [
        conv_shape(1, 1, 1, 1, 1, 1, 1, 0),
        conv_shape(2, 3, 7, 5, 4, 3, 1, 1),
        conv_shape(3, 5, 13, 11, 7, 3, 2, 1),
        conv_shape(2, 1, 28, 28, 32, 4, 2, 1),
        conv_shape(4, 32, 14, 14, 64, 4, 2, 1),
        conv_shape(1, 2, 9, 9, 3, 5, 3, 2),
        conv_shape(2, 3, 8, 8, 5, 1, 1, 0),
        conv_shape(1, 1, 2, 2, 1, 3, 1, 1),
        conv_shape(2, 67, 6, 6, 70, 3, 1, 1),
        // Long K for the weight gradient: exercises the split-K path and its reduction.
        conv_shape(64, 1, 28, 28, 32, 4, 2, 1),
        conv_shape(16, 3, 32, 32, 8, 3, 1, 1),
    ];
    for (k, s) in shapes.iter().enumerate() {
        check_conv(&dev, s, 1300 + 10 * k as u64);
    }
}

#[test]
fn conv2d_random_geometries() {
    let (dev, _g) = gpu_or_skip!();
    let mut r = Rng::new(123, 0);
    let mut done = 0;
    let mut case = 0;
    while done < 25 {
        case += 1;
        let k = 1 + r.below(5);
        let stride = 1 + r.below(3);
        let padding = r.below(3);
        let h = 1 + r.below(12);
        let w = 1 + r.below(12);
        if h + 2 * padding < k || w + 2 * padding < k {
            continue;
        }
        let s = conv_shape(
            1 + r.below(4),
            1 + r.below(6),
            h,
            w,
            1 + r.below(9),
            k,
            stride,
            padding,
        );
        check_conv(&dev, &s, 2000 + 10 * case);
        done += 1;
    }
}

#[test]
fn transpose_any_axes() {
    let (dev, _g) = gpu_or_skip!();
    let cases: Vec<(Vec<usize>, usize, usize)> = vec![
        (vec![1, 1], 0, 1),
        (vec![7, 1], 0, 1),
        (vec![2, 3], 0, 1),
        (vec![33, 65], 0, 1),
        (vec![5, 33, 65], 1, 2),
        (vec![3, 1000, 17], 0, 2),
        (vec![2, 3, 4, 5], 1, 3),
        (vec![2, 3, 4, 5], 0, 1),
        (vec![2, 3, 4, 5], 2, 3),
        (vec![4, 129, 3, 7, 2], 1, 3),
    ];
    for (k, (dims, d0, d1)) in cases.iter().enumerate() {
        let x = normals(1500 + k as u64, dims.iter().product(), 1.0);
        let (xc, xg) = both(&dev, &x);
        let want = xc.transpose(dims, *d0, *d1).unwrap().to_vec().unwrap();
        let got = host(&xg.transpose(dims, *d0, *d1).unwrap());
        assert_exact(&format!("transpose {dims:?} ({d0}, {d1})"), &got, &want);
    }
    let x = dev.storage_from_slice(&[0.0; 6]).unwrap();
    assert!(x.transpose(&[2, 3], 1, 0).is_err());
    assert!(x.transpose(&[2, 3], 0, 2).is_err());
}

#[test]
fn copy2d_blocks() {
    let (dev, _g) = gpu_or_skip!();
    // (rows, cols, src_stride, dst_stride, src_off, dst_off, src_len, dst_len)
    let cases = [
        (1, 1, 1, 1, 0, 0, 1, 1),
        (3, 5, 7, 5, 2, 0, 30, 15),
        (17, 9, 9, 20, 0, 11, 153, 400),
        (100, 33, 40, 33, 5, 0, 4005, 3300),
        (4, 3, 0, 3, 1, 0, 4, 12),
    ];
    for (k, &(rows, cols, ss, ds, so, dof, sl, dl)) in cases.iter().enumerate() {
        let src = normals(1600 + k as u64, sl, 1.0);
        let dst = normals(1650 + k as u64, dl, 1.0);
        let (sc, sg) = both(&dev, &src);
        let (mut dc, mut dg) = both(&dev, &dst);
        sc.copy2d(&mut dc, rows, cols, ss, ds, so, dof).unwrap();
        sg.copy2d(&mut dg, rows, cols, ss, ds, so, dof).unwrap();
        assert_exact(
            &format!("copy2d case {k}"),
            &host(&dg),
            &dc.to_vec().unwrap(),
        );
    }
    let s = dev.storage_from_slice(&[0.0; 10]).unwrap();
    let mut d = dev.storage_from_slice(&[0.0; 10]).unwrap();
    assert!(s.copy2d(&mut d, 3, 4, 4, 4, 0, 0).is_err());
}

#[test]
fn index_select_and_index_add_rows() {
    let (dev, _g) = gpu_or_skip!();
    let (rows, row_len) = (37, 13);
    let x = normals(1700, rows * row_len, 1.0);
    let (xc, xg) = both(&dev, &x);
    let mut r = Rng::new(5, 5);
    for n_ids in [1usize, 7, 100, 1000] {
        let ids: Vec<u32> = (0..n_ids).map(|_| r.below(rows) as u32).collect();
        let want = xc
            .index_select_rows(&ids, row_len)
            .unwrap()
            .to_vec()
            .unwrap();
        let got = host(&xg.index_select_rows(&ids, row_len).unwrap());
        assert_exact(&format!("index_select_rows {n_ids}"), &got, &want);
        let y = normals(1800 + n_ids as u64, n_ids * row_len, 1.0);
        let (yc, yg) = both(&dev, &y);
        let want = yc
            .index_add_rows(&ids, row_len, rows)
            .unwrap()
            .to_vec()
            .unwrap();
        let got = host(&yg.index_add_rows(&ids, row_len, rows).unwrap());
        // Repeated ids add in a different order than the CPU's.
        assert_close(&format!("index_add_rows {n_ids}"), &got, &want, ELEMENTWISE);
    }
    // A wide row and an empty selection.
    let (xc2, xg2) = both(&dev, &normals(1900, 3 * 5000, 1.0));
    let ids = [2u32, 0, 2, 1];
    assert_exact(
        "index_select wide",
        &host(&xg2.index_select_rows(&ids, 5000).unwrap()),
        &xc2.index_select_rows(&ids, 5000).unwrap().to_vec().unwrap(),
    );
    assert_eq!(xg.index_select_rows(&[], row_len).unwrap().len(), 0);
    // Out-of-range ids are errors, not memory faults.
    assert!(xg.index_select_rows(&[rows as u32], row_len).is_err());
    let y = dev.storage_from_slice(&[1.0; 13]).unwrap();
    assert!(y.index_add_rows(&[5], row_len, 5).is_err());
    assert!(y.index_add_rows(&[0, 1], row_len, 5).is_err());
}

#[test]
fn bce_with_logits_rows_forward_backward() {
    let (dev, _g) = gpu_or_skip!();
    for (k, &(rows, cols)) in [(1, 1), (3, 784), (129, 10), (2, 3072), (5, 40_000), (4, 0)]
        .iter()
        .enumerate()
    {
        let l = normals(2100 + k as u64, rows * cols, 6.0);
        let t = uniforms(2150 + k as u64, rows * cols, 0.0, 1.0);
        let g = normals(2180 + k as u64, rows, 1.0);
        let (lc, lg) = both(&dev, &l);
        let (tc, tg) = both(&dev, &t);
        let (gc, gg) = both(&dev, &g);
        let want = lc
            .bce_with_logits_rows(&tc, rows, cols)
            .unwrap()
            .to_vec()
            .unwrap();
        let got = host(&lg.bce_with_logits_rows(&tg, rows, cols).unwrap());
        assert_close(&format!("bce rows {rows}x{cols}"), &got, &want, REDUCTION);
        let want = lc
            .bce_with_logits_rows_backward(&tc, &gc, rows, cols)
            .unwrap()
            .to_vec()
            .unwrap();
        let got = host(
            &lg.bce_with_logits_rows_backward(&tg, &gg, rows, cols)
                .unwrap(),
        );
        assert_close(
            &format!("bce backward {rows}x{cols}"),
            &got,
            &want,
            ELEMENTWISE,
        );
    }
}

fn adam_params(t: i32, decoupled: bool) -> AdamStep {
    let (beta1, beta2) = (0.9f32, 0.999f32);
    AdamStep {
        lr: 1e-3,
        beta1,
        beta2,
        eps: 1e-8,
        weight_decay: 0.01,
        decoupled,
        bias1: 1.0 - beta1.powi(t),
        bias2: 1.0 - beta2.powi(t),
    }
}

#[test]
fn adam_single_and_multi_tensor() {
    let (dev, _g) = gpu_or_skip!();
    for decoupled in [false, true] {
        // Per-tensor trait method, three steps.
        for (k, &n) in [1usize, 5, 4099, 65_537].iter().enumerate() {
            let seed = 2200 + 10 * k as u64;
            let (mut pc, mut pg) = both(&dev, &normals(seed, n, 1.0));
            let (mut mc, mut mg) = both(&dev, &vec![0.0; n]);
            let (mut vc, mut vg) = both(&dev, &vec![0.0; n]);
            for t in 1..=3 {
                let (gc, gg) = both(&dev, &normals(seed + t as u64, n, 1.0));
                let s = adam_params(t, decoupled);
                pc.adam_step(&gc, &mut mc, &mut vc, &s).unwrap();
                pg.adam_step(&gg, &mut mg, &mut vg, &s).unwrap();
            }
            let what = format!("adam n={n} decoupled={decoupled}");
            assert_close(
                &format!("{what} p"),
                &host(&pg),
                &pc.to_vec().unwrap(),
                ELEMENTWISE,
            );
            assert_close(
                &format!("{what} m"),
                &host(&mg),
                &mc.to_vec().unwrap(),
                ELEMENTWISE,
            );
            assert_close(
                &format!("{what} v"),
                &host(&vg),
                &vc.to_vec().unwrap(),
                ELEMENTWISE,
            );
        }
        // One multi-tensor launch over tensors of mixed sizes (and an empty one).
        let sizes = [3usize, 1, 1000, 0, 70_001, 17];
        let mut cpu: Vec<[CpuStorage; 4]> = Vec::new();
        let mut gpu: Vec<[CudaStorage; 4]> = Vec::new();
        for (k, &n) in sizes.iter().enumerate() {
            let seed = 2300 + 10 * k as u64;
            let data = [
                normals(seed, n, 1.0),
                normals(seed + 1, n, 1.0),
                normals(seed + 2, n, 0.1),
                uniforms(seed + 3, n, 0.0, 0.01),
            ];
            cpu.push(
                data.clone()
                    .map(|d| CpuDevice.storage_from_slice(&d).unwrap()),
            );
            gpu.push(data.map(|d| dev.storage_from_slice(&d).unwrap()));
        }
        let s = adam_params(7, decoupled);
        for [p, g, m, v] in cpu.iter_mut() {
            p.adam_step(g, m, v, &s).unwrap();
        }
        let mut tensors: Vec<AdamTensors<'_>> = gpu
            .iter_mut()
            .map(|[p, g, m, v]| AdamTensors {
                param: p,
                grad: &*g,
                m,
                v,
            })
            .collect();
        dev.adam_step_multi(&mut tensors, &s).unwrap();
        drop(tensors);
        for (k, (c, g)) in cpu.iter().zip(&gpu).enumerate() {
            for (j, name) in [(0, "p"), (2, "m"), (3, "v")] {
                assert_close(
                    &format!("adam_multi tensor {k} {name} decoupled={decoupled}"),
                    &host(&g[j]),
                    &c[j].to_vec().unwrap(),
                    ELEMENTWISE,
                );
            }
        }
    }
    let mut p = dev.storage_from_slice(&[1.0; 4]).unwrap();
    let g = dev.storage_from_slice(&[1.0; 3]).unwrap();
    let mut m = dev.zeros(4).unwrap();
    let mut v = dev.zeros(4).unwrap();
    assert!(p
        .adam_step(&g, &mut m, &mut v, &adam_params(1, true))
        .is_err());
}

#[test]
fn scale_in_place_and_constructors() {
    let (dev, _g) = gpu_or_skip!();
    for &n in &SIZES {
        let x = normals(2400 + n as u64, n, 3.0);
        let (mut xc, mut xg) = both(&dev, &x);
        xc.scale_in_place(-0.37).unwrap();
        xg.scale_in_place(-0.37).unwrap();
        assert_exact(&format!("scale n={n}"), &host(&xg), &xc.to_vec().unwrap());
        // Upload round trip and zeros.
        assert_exact("upload", &host(&dev.storage_from_slice(&x).unwrap()), &x);
        assert_exact("zeros", &host(&dev.zeros(n).unwrap()), &vec![0.0; n]);
        assert_eq!(xg.len(), n);
        assert_eq!(xg.device(), ssvae::Device::Cuda(0));
        let c = xg.try_clone().unwrap();
        assert_exact("try_clone", &host(&c), &host(&xg));
    }
    // A big upload (past the staging ring) and the empty buffer.
    let big = normals(2500, 3_000_001, 1.0);
    assert_exact(
        "big upload",
        &host(&dev.storage_from_slice(&big).unwrap()),
        &big,
    );
    let e = dev.storage_from_slice(&[]).unwrap();
    assert!(e.is_empty());
    assert_eq!(host(&e), Vec::<f32>::new());
    assert_eq!(host(&e.unary(UnaryOp::Exp).unwrap()).len(), 0);
}

#[test]
fn random_draws_match_the_cpu() {
    let (dev, _g) = gpu_or_skip!();
    let keys = [
        RngKey {
            seed: 0,
            stream: 0,
            offset: 0,
        },
        RngKey {
            seed: 0xDEAD_BEEF_1234_5678,
            stream: 3,
            offset: 17,
        },
        RngKey {
            seed: 42,
            stream: u32::MAX,
            offset: (1 << 32) - 2, // crosses the 32-bit boundary of the block counter
        },
    ];
    for key in keys {
        for n in [1usize, 2, 3, 4, 5, 1001, 100_003] {
            let want = CpuDevice.rand_uniform(n, key).unwrap().to_vec().unwrap();
            let got = host(&dev.rand_uniform(n, key).unwrap());
            assert_exact(&format!("uniform n={n} {key:?}"), &got, &want);
            let want = CpuDevice.rand_normal(n, key).unwrap().to_vec().unwrap();
            let got = host(&dev.rand_normal(n, key).unwrap());
            assert_close(&format!("normal n={n} {key:?}"), &got, &want, ELEMENTWISE);
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
                .fold(0f32, f32::max);
            assert!(worst <= 1e-5, "normal n={n}: element error {worst}");
            // Same key ⇒ same numbers, bit for bit.
            let again = host(&dev.rand_normal(n, key).unwrap());
            assert_exact("normal repeat", &again, &got);
        }
    }
}

/// One "training step" worth of ops, results dropped at the end.
fn step(dev: &CudaDevice) {
    let x = dev.rand_normal(128 * 784, RngKey::default()).unwrap();
    let w = dev.rand_normal(784 * 256, RngKey::default()).unwrap();
    let s = mm_shape(1, 128, 256, 784, false, false);
    let h = x.matmul(&w, &s).unwrap();
    let a = h.unary(UnaryOp::Relu).unwrap();
    let da = a.unary_backward(UnaryOp::Relu, &h).unwrap();
    let sm = a.softmax_rows(128, 256, true).unwrap();
    let sum = sm.reduce(ReduceOp::Sum, 1, 128, 256).unwrap();
    let b = sum
        .binary(BinaryOp::Mul, &sum, &[1, 256], &[1, 256], &[1, 256])
        .unwrap();
    let ids: Vec<u32> = (0..64).collect();
    let sel = a.index_select_rows(&ids, 256).unwrap();
    let mut p = dev.zeros(784 * 256).unwrap();
    let mut m = dev.zeros(784 * 256).unwrap();
    let mut v = dev.zeros(784 * 256).unwrap();
    p.adam_step(&w, &mut m, &mut v, &adam_params(1, true))
        .unwrap();
    let conv = conv_shape(8, 1, 28, 28, 16, 4, 2, 1);
    let img = dev.rand_normal(conv.sizes().0, RngKey::default()).unwrap();
    let filt = dev.rand_normal(conv.sizes().1, RngKey::default()).unwrap();
    let y = img.conv2d(&filt, &conv).unwrap();
    let dw = img.conv2d_backward_weight(&y, &conv).unwrap();
    let _ = (da, b, sel, dw);
}

#[test]
fn caching_allocator_reaches_steady_state() {
    let (dev, _g) = gpu_or_skip!();
    let rt = dev.runtime().unwrap();
    step(&dev);
    dev.synchronize().unwrap();
    let first = rt.alloc_stats();
    step(&dev);
    dev.synchronize().unwrap();
    let second = rt.alloc_stats();
    println!("after step 1: {first:?}\nafter step 2: {second:?}");
    assert_eq!(
        second.device_allocs, first.device_allocs,
        "the second identical step called cuMemAlloc"
    );
    assert!(second.cache_hits > first.cache_hits);
    // Everything the steps allocated is back in the cache; empty_cache gives it to the driver.
    rt.empty_cache().unwrap();
    let after = rt.alloc_stats();
    assert_eq!(after.bytes_cached, 0);
    assert!(after.device_frees > second.device_frees);
}

#[test]
fn errors_are_results_not_panics() {
    let (dev, _g) = gpu_or_skip!();
    let a = dev.storage_from_slice(&[1.0; 6]).unwrap();
    let b = dev.storage_from_slice(&[1.0; 5]).unwrap();
    assert!(a.unary_backward(UnaryOp::Exp, &b).is_err());
    assert!(a.softmax_rows(4, 2, false).is_err());
    assert!(a.logsumexp_rows(4, 2).is_err());
    assert!(a.matmul(&b, &mm_shape(1, 2, 3, 3, false, false)).is_err());
    let s = conv_shape(1, 1, 3, 3, 1, 2, 1, 0);
    assert!(a.conv2d(&b, &s).is_err());
    assert!(a.conv2d_backward_input(&b, &s).is_err());
    assert!(a.conv2d_backward_weight(&b, &s).is_err());
    assert!(a.bce_with_logits_rows(&b, 2, 3).is_err());
    assert!(a.bce_with_logits_rows_backward(&a, &b, 2, 3).is_err());
    // The device is still healthy afterwards.
    assert_exact("healthy", &host(&a), &[1.0; 6]);
}

/// Throughput figures (not a pass/fail test): `cargo test --release --test cuda_parity --
/// --ignored --nocapture perf_report`. Times are host wall-clock around a synchronised loop.
#[test]
#[ignore]
fn perf_report() {
    let (dev, _g) = gpu_or_skip!();
    let time = |f: &mut dyn FnMut()| {
        f();
        dev.synchronize().unwrap();
        let reps = 10;
        let t = std::time::Instant::now();
        for _ in 0..reps {
            f();
        }
        dev.synchronize().unwrap();
        t.elapsed().as_secs_f64() / reps as f64
    };
    for &(m, n, k) in &[(4096, 4096, 4096), (128, 512, 784), (1024, 1024, 1024)] {
        let a = dev.rand_normal(m * k, RngKey::default()).unwrap();
        let b = dev.rand_normal(k * n, RngKey::default()).unwrap();
        let s = mm_shape(1, m, n, k, false, false);
        for p in [GemmPrecision::F32, GemmPrecision::Tf32] {
            let sec = time(&mut || {
                a.matmul_with(&b, &s, p).unwrap();
            });
            let tflops = 2.0 * (m * n * k) as f64 / sec / 1e12;
            println!(
                "gemm {m}x{n}x{k} {p:?}: {:.3} ms, {tflops:.2} TFLOP/s",
                sec * 1e3
            );
        }
    }
    let c = conv_shape(128, 32, 14, 14, 64, 4, 2, 1);
    let (xs, ws, ys) = c.sizes();
    let x = dev.rand_normal(xs, RngKey::default()).unwrap();
    let w = dev.rand_normal(ws, RngKey::default()).unwrap();
    let dy = dev.rand_normal(ys, RngKey::default()).unwrap();
    let flops = 2.0 * (ys * c.c_in * c.kh * c.kw) as f64;
    let f = time(&mut || {
        x.conv2d(&w, &c).unwrap();
    });
    let bi = time(&mut || {
        dy.conv2d_backward_input(&w, &c).unwrap();
    });
    let bw = time(&mut || {
        x.conv2d_backward_weight(&dy, &c).unwrap();
    });
    for (name, sec) in [("fwd", f), ("bwd_input", bi), ("bwd_weight", bw)] {
        println!(
            "conv {c:?} {name}: {:.3} ms, {:.2} TFLOP/s",
            sec * 1e3,
            flops / sec / 1e12
        );
    }
    let n = 1 << 24;
    let x = dev.rand_normal(n, RngKey::default()).unwrap();
    let sec = time(&mut || {
        x.unary(UnaryOp::Tanh).unwrap();
    });
    println!(
        "unary tanh 16M: {:.3} ms, {:.0} GB/s",
        sec * 1e3,
        8.0 * n as f64 / sec / 1e9
    );
    let sec = time(&mut || {
        x.softmax_rows(4096, 4096, false).unwrap();
    });
    println!(
        "softmax 4096x4096: {:.3} ms, {:.0} GB/s",
        sec * 1e3,
        8.0 * n as f64 / sec / 1e9
    );
    let sec = time(&mut || {
        x.reduce(ReduceOp::Sum, 1, 4096, 4096).unwrap();
    });
    println!(
        "reduce cols 4096x4096: {:.3} ms, {:.0} GB/s",
        sec * 1e3,
        4.0 * n as f64 / sec / 1e9
    );
}

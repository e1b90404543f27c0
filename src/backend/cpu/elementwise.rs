//! CPU elementwise kernels: unary maps, their derivatives, and broadcasting binary ops.
//!
//! Each unary op is a scalar function `f` and its derivative `f'`; the loops are generic over a
//! closure so the compiler emits one tight (auto-vectorised) loop per op. NaN propagates
//! through every op and derivative that reads its input, as in PyTorch (relu and maximum
//! included, where `f32::max` would turn NaN into the other operand), so a NaN can never
//! become a number; `kernels/elementwise.cu` does the same. Large buffers are split
//! across rayon workers in chunks of `PAR_CHUNK` elements.

use super::math::{exp, sigmoid, softplus};
use super::pool;
use crate::backend::broadcast::{broadcast_strides, simplify};
use crate::backend::{BinaryOp, UnaryOp};
use rayon::prelude::*;

/// Below this many elements a loop runs on the calling thread (spawning costs more than it saves).
pub const PAR_CHUNK: usize = 1 << 15;

/// `out[i] = f(x[i])`.
///
/// `f` is called from one place, the chunk loop `kernel`, which both the serial and the
/// parallel path run: LLVM inlines a function into its only call site whatever its size, but
/// with two call sites it kept a large `f` (softplus: exp and ln_1p inlined into it) out of
/// line, one scalar call per element instead of a vectorised loop — a quarter of an M1+M2
/// training step's CPU time. The same holds for [`zip_map`].
pub fn map<F: Fn(f32) -> f32 + Sync>(x: &[f32], f: F) -> Vec<f32> {
    let mut out = pool::for_overwrite(x.len());
    let kernel = |o: &mut [f32], x: &[f32]| o.iter_mut().zip(x).for_each(|(o, &v)| *o = f(v));
    if x.len() < PAR_CHUNK {
        kernel(&mut out, x);
    } else {
        out.par_chunks_mut(PAR_CHUNK)
            .zip(x.par_chunks(PAR_CHUNK))
            .for_each(|(o, x)| kernel(o, x));
    }
    out
}

/// `out[i] = f(x[i], y[i])` (`f` called from one place, as in [`map`]).
pub fn zip_map<F: Fn(f32, f32) -> f32 + Sync>(x: &[f32], y: &[f32], f: F) -> Vec<f32> {
    let mut out = pool::for_overwrite(x.len());
    let kernel = |o: &mut [f32], x: &[f32], y: &[f32]| {
        for ((o, &a), &b) in o.iter_mut().zip(x).zip(y) {
            *o = f(a, b);
        }
    };
    if x.len() < PAR_CHUNK {
        kernel(&mut out, x, y);
    } else {
        out.par_chunks_mut(PAR_CHUNK)
            .zip(x.par_chunks(PAR_CHUNK).zip(y.par_chunks(PAR_CHUNK)))
            .for_each(|(o, (x, y))| kernel(o, x, y));
    }
    out
}

/// y = f(x) for a unary op.
pub fn unary(op: UnaryOp, x: &[f32]) -> Vec<f32> {
    match op {
        UnaryOp::Neg => map(x, |v| -v),
        UnaryOp::Exp => map(x, exp),
        UnaryOp::Log => map(x, f32::ln),
        UnaryOp::Sqrt => map(x, f32::sqrt),
        UnaryOp::Square => map(x, |v| v * v),
        // max(v, 0) keeps every non-NaN result bit for bit; NaN stays NaN (f32::max would
        // return 0: a NaN weight then evaluated to plausible numbers).
        UnaryOp::Relu => map(x, |v| if v.is_nan() { v } else { v.max(0.0) }),
        UnaryOp::LeakyRelu(s) => map(x, |v| if v > 0.0 { v } else { s * v }),
        UnaryOp::Elu(a) => map(x, |v| if v > 0.0 { v } else { a * v.exp_m1() }),
        UnaryOp::Softplus => map(x, softplus),
        UnaryOp::Sigmoid => map(x, sigmoid),
        UnaryOp::Tanh => map(x, f32::tanh),
        UnaryOp::Affine { mul, add } => map(x, |v| v * mul + add),
        UnaryOp::Abs => map(x, f32::abs),
    }
}

/// dx = dy · f'(x) for a unary op.
pub fn unary_backward(op: UnaryOp, x: &[f32], g: &[f32]) -> Vec<f32> {
    match op {
        UnaryOp::Neg => map(g, |g| -g),
        UnaryOp::Exp => zip_map(x, g, |x, g| g * exp(x)),
        UnaryOp::Log => zip_map(x, g, |x, g| g / x),
        UnaryOp::Sqrt => zip_map(x, g, |x, g| g * 0.5 / x.sqrt()),
        UnaryOp::Square => zip_map(x, g, |x, g| 2.0 * x * g),
        // At a NaN input the derivative is NaN, not the slope of either side.
        UnaryOp::Relu => zip_map(x, g, |x, g| if x > 0.0 { g } else { nan_or(x, 0.0) }),
        UnaryOp::LeakyRelu(s) => zip_map(x, g, |x, g| if x > 0.0 { g } else { nan_or(x, s * g) }),
        UnaryOp::Elu(a) => zip_map(x, g, |x, g| if x > 0.0 { g } else { g * a * exp(x) }),
        UnaryOp::Softplus => zip_map(x, g, |x, g| g * sigmoid(x)),
        UnaryOp::Sigmoid => zip_map(x, g, |x, g| {
            let s = sigmoid(x);
            g * s * (1.0 - s)
        }),
        UnaryOp::Tanh => zip_map(x, g, |x, g| {
            let t = x.tanh();
            g * (1.0 - t * t)
        }),
        UnaryOp::Affine { mul, .. } => map(g, |g| g * mul),
        UnaryOp::Abs => zip_map(x, g, |x, g| {
            if x > 0.0 {
                g
            } else if x < 0.0 {
                -g
            } else {
                nan_or(x, 0.0)
            }
        }),
    }
}

/// `x` when it is NaN, else `otherwise`: how a kernel whose result would not depend on a NaN
/// input (a derivative of 0 on the flat side) still passes it on.
#[inline(always)]
fn nan_or(x: f32, otherwise: f32) -> f32 {
    if x.is_nan() {
        x
    } else {
        otherwise
    }
}

/// max(a, b) that propagates NaN, as `torch.maximum` (`f32::max` returns the other operand);
/// the same bits as `f32::max` otherwise.
#[inline(always)]
fn maximum(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        a + b
    } else {
        a.max(b)
    }
}

/// out = lhs ∘ rhs with numpy broadcasting; all three dims lists have the same rank.
pub fn binary(
    op: BinaryOp,
    lhs: &[f32],
    rhs: &[f32],
    ld: &[usize],
    rd: &[usize],
    od: &[usize],
) -> Vec<f32> {
    // One monomorphised copy of the loops per op, so that each inner loop vectorises.
    match op {
        BinaryOp::Add => broadcast(lhs, rhs, ld, rd, od, |a, b| a + b),
        BinaryOp::Sub => broadcast(lhs, rhs, ld, rd, od, |a, b| a - b),
        BinaryOp::Mul => broadcast(lhs, rhs, ld, rd, od, |a, b| a * b),
        BinaryOp::Div => broadcast(lhs, rhs, ld, rd, od, |a, b| a / b),
        BinaryOp::Eq => broadcast(lhs, rhs, ld, rd, od, |a, b| (a == b) as u8 as f32),
        BinaryOp::Maximum => broadcast(lhs, rhs, ld, rd, od, maximum),
    }
}

/// out = f(lhs, rhs) with numpy broadcasting (see [`binary`]).
fn broadcast<F: Fn(f32, f32) -> f32 + Sync>(
    lhs: &[f32],
    rhs: &[f32],
    ld: &[usize],
    rd: &[usize],
    od: &[usize],
    f: F,
) -> Vec<f32> {
    if ld == od && rd == od {
        return zip_map(lhs, rhs, f);
    }
    let n: usize = od.iter().product();
    let mut out = pool::for_overwrite(n); // every row is written below
    if n == 0 {
        return out;
    }
    // Merged dimensions: `[n, c, h, w] + [1, c, 1, 1]` is walked as `[n, c, h·w]`, so rows are
    // h·w long rather than w.
    // Not empty: all-1 shapes are equal and were handled above.
    let (od, ls, rs) = simplify(od, &broadcast_strides(ld, od), &broadcast_strides(rd, od));
    let rank = od.len();
    let inner = od[rank - 1];
    // One output row (all dims but the last) at a time: find both operands' row offsets, then
    // the row as a plain zip (the innermost stride is 1, or 0 where the operand is stretched).
    let row = |r: usize, o: &mut [f32]| {
        let (mut lo, mut ro, mut rem) = (0, 0, r);
        for d in (0..rank - 1).rev() {
            let i = rem % od[d];
            rem /= od[d];
            lo += i * ls[d];
            ro += i * rs[d];
        }
        match (ls[rank - 1], rs[rank - 1]) {
            (0, 0) => o.fill(f(lhs[lo], rhs[ro])),
            (0, _) => {
                let a = lhs[lo];
                o.iter_mut()
                    .zip(&rhs[ro..ro + inner])
                    .for_each(|(o, &b)| *o = f(a, b));
            }
            (_, 0) => {
                let b = rhs[ro];
                o.iter_mut()
                    .zip(&lhs[lo..lo + inner])
                    .for_each(|(o, &a)| *o = f(a, b));
            }
            _ => o
                .iter_mut()
                .zip(&lhs[lo..lo + inner])
                .zip(&rhs[ro..ro + inner])
                .for_each(|((o, &a), &b)| *o = f(a, b)),
        }
    };
    if n < PAR_CHUNK {
        out.chunks_mut(inner)
            .enumerate()
            .for_each(|(r, o)| row(r, o));
    } else {
        // Short rows are grouped so that a rayon task is not a handful of elements.
        out.par_chunks_mut(inner)
            .with_min_len(PAR_CHUNK.div_ceil(inner))
            .enumerate()
            .for_each(|(r, o)| row(r, o));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// out[idx] = lhs[idx with stretched dims at 0] ∘ rhs[…], index by index.
    fn naive(
        op: BinaryOp,
        l: &[f32],
        r: &[f32],
        ld: &[usize],
        rd: &[usize],
        od: &[usize],
    ) -> Vec<f32> {
        let n: usize = od.iter().product();
        let offset = |dims: &[usize], mut flat: usize| {
            let (mut off, mut stride) = (0, 1);
            for d in (0..od.len()).rev() {
                let i = flat % od[d];
                flat /= od[d];
                if dims[d] != 1 {
                    off += i * stride;
                }
                stride *= dims[d];
            }
            off
        };
        (0..n)
            .map(|k| {
                let (a, b) = (l[offset(ld, k)], r[offset(rd, k)]);
                match op {
                    BinaryOp::Add => a + b,
                    BinaryOp::Sub => a - b,
                    BinaryOp::Mul => a * b,
                    BinaryOp::Div => a / b,
                    BinaryOp::Eq => (a == b) as u8 as f32,
                    BinaryOp::Maximum => maximum(a, b),
                }
            })
            .collect()
    }

    /// Every op reading its input, and every derivative reading it, gives NaN at a NaN input
    /// (relu and the flat sides of the derivatives included), and maximum does at either
    /// operand; finite inputs give the bits of the former formulas (`f32::max`).
    #[test]
    fn nan_propagates_and_numbers_keep_their_bits() {
        let ops = [
            UnaryOp::Exp,
            UnaryOp::Log,
            UnaryOp::Sqrt,
            UnaryOp::Square,
            UnaryOp::Relu,
            UnaryOp::LeakyRelu(0.2),
            UnaryOp::Elu(1.0),
            UnaryOp::Softplus,
            UnaryOp::Sigmoid,
            UnaryOp::Tanh,
            UnaryOp::Affine { mul: 2.0, add: 1.0 },
            UnaryOp::Abs,
            UnaryOp::Neg,
        ];
        // Past PAR_CHUNK too, so that both loops (serial and rayon) are covered.
        for n in [5, PAR_CHUNK + 5] {
            let x: Vec<f32> = (0..n)
                .map(|i| if i % 5 == 0 { f32::NAN } else { -1.0 })
                .collect();
            let g = vec![1.0; n];
            for op in ops {
                let y = unary(op, &x);
                assert!(y.iter().step_by(5).all(|v| v.is_nan()), "{op:?}");
                // The derivatives of neg and affine do not depend on x.
                if !matches!(op, UnaryOp::Neg | UnaryOp::Affine { .. }) {
                    let d = unary_backward(op, &x, &g);
                    assert!(d.iter().step_by(5).all(|v| v.is_nan()), "{op:?}'");
                }
            }
        }
        let nan = [f32::NAN];
        assert!(binary(BinaryOp::Maximum, &nan, &[0.0], &[1], &[1], &[1])[0].is_nan());
        assert!(binary(BinaryOp::Maximum, &[0.0], &nan, &[1], &[1], &[1])[0].is_nan());
        let special = [
            0.0,
            -0.0,
            1e-40,
            -1e-40,
            f32::MIN_POSITIVE,
            -3.5,
            2.5,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            f32::MIN,
        ];
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        // The former kernels, loops and all: the sign a zero gets from `f32::max` depends on
        // how LLVM lowers it (`maxps` returns its second operand on ±0), so the reference is
        // the same loop, not a scalar `max`.
        let relu = unary(UnaryOp::Relu, &special);
        assert_eq!(bits(&relu), bits(&map(&special, |v| v.max(0.0))));
        let zeros = vec![0.0; special.len()];
        let max = binary(BinaryOp::Maximum, &special, &zeros, &[11], &[11], &[11]);
        assert_eq!(bits(&max), bits(&zip_map(&special, &zeros, f32::max)));
    }

    #[test]
    fn broadcasting_matches_index_by_index_evaluation() {
        let mut rng = Rng::new(11, 0);
        // Random ranks 1–4, sizes 1–7 (and one large case past the parallel threshold), each
        // operand dimension either the output's or stretched from 1.
        for case in 0..400 {
            let rank = 1 + case % 4;
            let od: Vec<usize> = (0..rank)
                .map(|d| {
                    if case == 399 && d == rank - 1 {
                        PAR_CHUNK + 3
                    } else {
                        1 + (rng.uniform() * 7.0) as usize
                    }
                })
                .collect();
            let pick = |rng: &mut Rng| -> Vec<usize> {
                od.iter()
                    .map(|&n| if rng.uniform() < 0.4 { 1 } else { n })
                    .collect()
            };
            let (ld, rd) = (pick(&mut rng), pick(&mut rng));
            let fill = |dims: &[usize], rng: &mut Rng| -> Vec<f32> {
                (0..dims.iter().product::<usize>())
                    .map(|_| (rng.uniform() * 4.0).floor() - 1.5)
                    .collect()
            };
            let (l, r) = (fill(&ld, &mut rng), fill(&rd, &mut rng));
            for op in BinaryOp::ALL {
                let got = binary(op, &l, &r, &ld, &rd, &od);
                let want = naive(op, &l, &r, &ld, &rd, &od);
                assert_eq!(got, want, "{op:?} {ld:?} ∘ {rd:?} → {od:?}");
            }
        }
    }
}

//! CPU elementwise kernels: unary maps, their derivatives, and broadcasting binary ops.
//!
//! Each unary op is a scalar function `f` and its derivative `f'`; the loops are generic over a
//! closure so the compiler emits one tight (auto-vectorised) loop per op. Large buffers are split
//! across rayon workers in chunks of `PAR_CHUNK` elements.

use super::math::{exp, sigmoid, softplus};
use super::pool;
use crate::backend::{BinaryOp, UnaryOp};
use rayon::prelude::*;

/// Below this many elements a loop runs on the calling thread (spawning costs more than it saves).
pub const PAR_CHUNK: usize = 1 << 15;

/// out[i] = f(x[i]).
pub fn map<F: Fn(f32) -> f32 + Sync>(x: &[f32], f: F) -> Vec<f32> {
    let mut out = pool::for_overwrite(x.len());
    if x.len() < PAR_CHUNK {
        out.iter_mut().zip(x).for_each(|(o, &v)| *o = f(v));
    } else {
        out.par_chunks_mut(PAR_CHUNK)
            .zip(x.par_chunks(PAR_CHUNK))
            .for_each(|(o, x)| o.iter_mut().zip(x).for_each(|(o, &v)| *o = f(v)));
    }
    out
}

/// out[i] = f(x[i], y[i]).
pub fn zip_map<F: Fn(f32, f32) -> f32 + Sync>(x: &[f32], y: &[f32], f: F) -> Vec<f32> {
    let mut out = pool::for_overwrite(x.len());
    if x.len() < PAR_CHUNK {
        for ((o, &a), &b) in out.iter_mut().zip(x).zip(y) {
            *o = f(a, b);
        }
    } else {
        out.par_chunks_mut(PAR_CHUNK)
            .zip(x.par_chunks(PAR_CHUNK).zip(y.par_chunks(PAR_CHUNK)))
            .for_each(|(o, (x, y))| {
                for ((o, &a), &b) in o.iter_mut().zip(x).zip(y) {
                    *o = f(a, b);
                }
            });
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
        UnaryOp::Relu => map(x, |v| v.max(0.0)),
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
        UnaryOp::Relu => zip_map(x, g, |x, g| if x > 0.0 { g } else { 0.0 }),
        UnaryOp::LeakyRelu(s) => zip_map(x, g, |x, g| if x > 0.0 { g } else { s * g }),
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
                0.0
            }
        }),
    }
}

#[inline]
fn apply(op: BinaryOp, a: f32, b: f32) -> f32 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Eq => (a == b) as u8 as f32,
        BinaryOp::Maximum => a.max(b),
    }
}

/// Broadcast strides of `dims` against `out` (same rank): 0 where a dimension of 1 is stretched.
fn broadcast_strides(dims: &[usize], out: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; dims.len()];
    let mut acc = 1;
    for i in (0..dims.len()).rev() {
        strides[i] = if dims[i] == 1 && out[i] != 1 { 0 } else { acc };
        acc *= dims[i];
    }
    strides
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
    if ld == od && rd == od {
        return match op {
            BinaryOp::Add => zip_map(lhs, rhs, |a, b| a + b),
            BinaryOp::Sub => zip_map(lhs, rhs, |a, b| a - b),
            BinaryOp::Mul => zip_map(lhs, rhs, |a, b| a * b),
            BinaryOp::Div => zip_map(lhs, rhs, |a, b| a / b),
            _ => zip_map(lhs, rhs, |a, b| apply(op, a, b)),
        };
    }
    let n: usize = od.iter().product();
    let mut out = pool::for_overwrite(n); // every row is written below
    if n == 0 {
        return out;
    }
    let rank = od.len();
    let inner = od[rank - 1];
    let ls = broadcast_strides(ld, od);
    let rs = broadcast_strides(rd, od);
    let (lsi, rsi) = (ls[rank - 1], rs[rank - 1]);
    // One output row (all dims but the last) at a time: find both operands' row offsets, then a
    // unit- or zero-stride inner loop.
    let row = |r: usize, o: &mut [f32]| {
        let (mut lo, mut ro, mut rem) = (0, 0, r);
        for d in (0..rank - 1).rev() {
            let i = rem % od[d];
            rem /= od[d];
            lo += i * ls[d];
            ro += i * rs[d];
        }
        for (j, o) in o.iter_mut().enumerate() {
            *o = apply(op, lhs[lo + j * lsi], rhs[ro + j * rsi]);
        }
    };
    if n < PAR_CHUNK {
        out.chunks_mut(inner)
            .enumerate()
            .for_each(|(r, o)| row(r, o));
    } else {
        out.par_chunks_mut(inner)
            .enumerate()
            .for_each(|(r, o)| row(r, o));
    }
    out
}

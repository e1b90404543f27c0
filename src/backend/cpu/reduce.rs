//! CPU reductions: sums and maxima along one axis, and the row-wise softmax family.
//!
//! An axis reduction sees its input as (outer, len, inner) and produces (outer, inner). Row kernels
//! (softmax, log-softmax, logsumexp) see rows × cols with cols contiguous and make one pass per row
//! after finding the row maximum, which keeps exp() from overflowing.

use super::elementwise::PAR_CHUNK;
use super::{math, pool};
use crate::backend::ReduceOp;
use rayon::prelude::*;

/// out[o, i] = op_j x[o, j, i].
pub fn reduce(op: ReduceOp, x: &[f32], outer: usize, len: usize, inner: usize) -> Vec<f32> {
    let init = match op {
        ReduceOp::Sum => 0.0,
        ReduceOp::Max => f32::NEG_INFINITY,
    };
    let mut out = pool::filled(outer * inner, init);
    if inner == 0 || outer == 0 {
        return out;
    }
    let one = |o: usize, dst: &mut [f32]| {
        let block = &x[o * len * inner..(o + 1) * len * inner];
        for row in block.chunks_exact(inner) {
            match op {
                ReduceOp::Sum => dst.iter_mut().zip(row).for_each(|(d, &v)| *d += v),
                ReduceOp::Max => dst.iter_mut().zip(row).for_each(|(d, &v)| *d = d.max(v)),
            }
        }
    };
    if inner == 1 {
        // Contiguous rows: a dot-product-like loop per output.
        let f = |(o, d): (usize, &mut f32)| {
            let row = &x[o * len..(o + 1) * len];
            *d = match op {
                ReduceOp::Sum => math::sum(row),
                ReduceOp::Max => row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)),
            };
        };
        if outer * len < PAR_CHUNK {
            out.iter_mut().enumerate().for_each(f);
        } else {
            out.par_iter_mut().enumerate().for_each(f);
        }
    } else if outer * len * inner < PAR_CHUNK || outer == 1 {
        out.chunks_mut(inner)
            .enumerate()
            .for_each(|(o, d)| one(o, d));
    } else {
        out.par_chunks_mut(inner)
            .enumerate()
            .for_each(|(o, d)| one(o, d));
    }
    out
}

fn row_max(row: &[f32]) -> f32 {
    row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v))
}

/// Row-wise softmax or log-softmax.
pub fn softmax_rows(x: &[f32], rows: usize, cols: usize, log: bool) -> Vec<f32> {
    let mut out = pool::zeros(rows * cols);
    if cols == 0 {
        return out;
    }
    let f = |(o, r): (&mut [f32], &[f32])| {
        let m = row_max(r);
        o.iter_mut()
            .zip(r)
            .for_each(|(o, &v)| *o = math::exp(v - m));
        let s = math::sum(o);
        if log {
            let ls = s.ln();
            o.iter_mut().zip(r).for_each(|(o, &v)| *o = v - m - ls);
        } else {
            let inv = 1.0 / s;
            o.iter_mut().for_each(|o| *o *= inv);
        }
    };
    if rows * cols < PAR_CHUNK {
        out.chunks_mut(cols).zip(x.chunks(cols)).for_each(f);
    } else {
        out.par_chunks_mut(cols).zip(x.par_chunks(cols)).for_each(f);
    }
    out
}

/// Row-wise log Σ exp.
pub fn logsumexp_rows(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let f = |r: &[f32]| {
        let m = row_max(r);
        if m == f32::NEG_INFINITY {
            return m;
        }
        m + math::sum_map(r, |v| math::exp(v - m)).ln()
    };
    if cols == 0 {
        return vec![f32::NEG_INFINITY; rows];
    }
    if rows * cols < PAR_CHUNK {
        x.chunks(cols).map(f).collect()
    } else {
        x.par_chunks(cols).map(f).collect()
    }
}

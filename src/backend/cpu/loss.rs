//! CPU per-row losses that deserve a kernel of their own: binary cross-entropy with logits,
//! written in the overflow-free form max(l, 0) − l·x + log(1 + e^{−|l|}).

use super::math::{sigmoid, softplus, sum_zip};
use super::pool;
use rayon::prelude::*;

/// Per row Σ_j BCE(l_j, x_j).
pub fn bce_with_logits_rows(l: &[f32], x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = pool::zeros(rows);
    if cols == 0 {
        return out;
    }
    out.par_iter_mut()
        .zip(l.par_chunks(cols).zip(x.par_chunks(cols)))
        .for_each(|(o, (l, x))| {
            *o = sum_zip(l, x, |l, x| softplus(l) - l * x);
        });
    out
}

/// d/dl = (σ(l) − x) · g_row.
pub fn bce_with_logits_rows_backward(l: &[f32], x: &[f32], g: &[f32], cols: usize) -> Vec<f32> {
    let mut out = pool::zeros(l.len());
    if cols == 0 {
        return out;
    }
    out.par_chunks_mut(cols)
        .zip(l.par_chunks(cols).zip(x.par_chunks(cols)))
        .zip(g.par_iter())
        .for_each(|((o, (l, x)), &g)| {
            for ((o, &l), &x) in o.iter_mut().zip(l).zip(x) {
                *o = (sigmoid(l) - x) * g;
            }
        });
    out
}

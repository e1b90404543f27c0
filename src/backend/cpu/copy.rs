//! CPU data-movement kernels: axis transpose, 2-D block copies (the primitive under concat and
//! slice), row gathers and scatter-adds (under index_select, repeat and their gradients).

use super::pool;
use crate::{Error, Result};
use rayon::prelude::*;

/// Swap axes d0 < d1. Viewing the input as (A, I, B, J, C) with I = `dims[d0]`, J = `dims[d1]`, the
/// output is (A, J, B, I, C): out[a, j, b, i, c] = x[a, i, b, j, c].
pub fn transpose(x: &[f32], dims: &[usize], d0: usize, d1: usize) -> Vec<f32> {
    let i_len = dims[d0];
    let b: usize = dims[d0 + 1..d1].iter().product();
    let j_len = dims[d1];
    let c: usize = dims[d1 + 1..].iter().product();
    let mut out = pool::zeros(x.len());
    if out.is_empty() {
        return out;
    }
    // One output block of (B, I, C) per (a, j): parallel over those blocks.
    out.par_chunks_mut(b * i_len * c)
        .enumerate()
        .for_each(|(aj, dst)| {
            let (ai, j) = (aj / j_len, aj % j_len);
            for bi in 0..b {
                for i in 0..i_len {
                    let src = (((ai * i_len + i) * b + bi) * j_len + j) * c;
                    let d = (bi * i_len + i) * c;
                    dst[d..d + c].copy_from_slice(&x[src..src + c]);
                }
            }
        });
    out
}

/// dst[dst_off + r·dst_stride + c] = src[src_off + r·src_stride + c] for r < rows, c < cols.
#[allow(clippy::too_many_arguments)]
pub fn copy2d(
    src: &[f32],
    dst: &mut [f32],
    rows: usize,
    cols: usize,
    src_stride: usize,
    dst_stride: usize,
    src_off: usize,
    dst_off: usize,
) -> Result<()> {
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let src_end = src_off + (rows - 1) * src_stride + cols;
    let dst_end = dst_off + (rows - 1) * dst_stride + cols;
    if src_end > src.len() || dst_end > dst.len() {
        return Err(Error::invalid(
            "copy2d",
            format!(
                "block {rows}x{cols} reaches {src_end}/{dst_end} past buffers of {}/{}",
                src.len(),
                dst.len()
            ),
        ));
    }
    for r in 0..rows {
        let s = src_off + r * src_stride;
        let d = dst_off + r * dst_stride;
        dst[d..d + cols].copy_from_slice(&src[s..s + cols]);
    }
    Ok(())
}

fn check_ids(op: &'static str, ids: &[u32], rows: usize) -> Result<()> {
    match ids.iter().find(|&&i| i as usize >= rows) {
        Some(bad) => Err(Error::invalid(
            op,
            format!("row index {bad} out of range for {rows} rows"),
        )),
        None => Ok(()),
    }
}

/// `out[i, :] = x[ids[i], :]`.
pub fn index_select_rows(x: &[f32], ids: &[u32], row_len: usize) -> Result<Vec<f32>> {
    let rows = x.len().checked_div(row_len).unwrap_or(0);
    check_ids("index_select_rows", ids, rows)?;
    let mut out = pool::zeros(ids.len() * row_len);
    if row_len == 0 {
        return Ok(out);
    }
    out.par_chunks_mut(row_len)
        .zip(ids.par_iter())
        .for_each(|(o, &i)| {
            let s = i as usize * row_len;
            o.copy_from_slice(&x[s..s + row_len]);
        });
    Ok(out)
}

/// `out = zeros(out_rows × row_len); out[ids[i], :] += x[i, :]`, in index order (deterministic).
pub fn index_add_rows(x: &[f32], ids: &[u32], row_len: usize, out_rows: usize) -> Result<Vec<f32>> {
    check_ids("index_add_rows", ids, out_rows)?;
    if ids.len() * row_len != x.len() {
        return Err(Error::invalid(
            "index_add_rows",
            format!(
                "{} ids of rows of {row_len} for {} values",
                ids.len(),
                x.len()
            ),
        ));
    }
    let mut out = pool::zeros(out_rows * row_len);
    for (i, &id) in ids.iter().enumerate() {
        let d = id as usize * row_len;
        out[d..d + row_len]
            .iter_mut()
            .zip(&x[i * row_len..(i + 1) * row_len])
            .for_each(|(o, &v)| *o += v);
    }
    Ok(out)
}

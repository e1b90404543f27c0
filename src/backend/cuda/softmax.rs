//! Launches `kernels/softmax.cu`: row-wise softmax / log-softmax and log-sum-exp, one online
//! (max, Σexp) pass per row with a warp or a block per row.

use super::runtime::launch;
use super::{check_len, row_config, to_u32, CudaStorage};
use crate::Result;

const FILE: &str = "softmax.cu";

pub(super) fn softmax_rows(
    x: &CudaStorage,
    rows: usize,
    cols: usize,
    log: bool,
) -> Result<CudaStorage> {
    const OP: &str = "softmax_rows";
    check_len(OP, "input", x.len, rows * cols)?;
    let out = CudaStorage::uninit(x.runtime(), rows * cols)?;
    if rows * cols == 0 {
        return Ok(out);
    }
    to_u32(OP, "rows·cols", rows * cols)?;
    let (r, c) = (to_u32(OP, "rows", rows)?, to_u32(OP, "cols", cols)?);
    let (xp, yp, l) = (x.ptr(), out.ptr(), log as i32);
    launch!(
        x.rt(),
        FILE,
        "softmax_rows_f32",
        row_config(r, cols),
        &xp,
        &yp,
        &r,
        &c,
        &l
    )?;
    Ok(out)
}

pub(super) fn logsumexp_rows(x: &CudaStorage, rows: usize, cols: usize) -> Result<CudaStorage> {
    const OP: &str = "logsumexp_rows";
    check_len(OP, "input", x.len, rows * cols)?;
    let out = CudaStorage::uninit(x.runtime(), rows)?;
    if rows == 0 {
        return Ok(out);
    }
    to_u32(OP, "rows·cols", rows * cols)?;
    let (r, c) = (to_u32(OP, "rows", rows)?, to_u32(OP, "cols", cols)?);
    let (xp, op) = (x.ptr(), out.ptr());
    launch!(
        x.rt(),
        FILE,
        "logsumexp_rows_f32",
        row_config(r, cols),
        &xp,
        &op,
        &r,
        &c
    )?;
    Ok(out)
}

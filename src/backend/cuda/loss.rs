//! Launches `kernels/loss.cu`: per-row binary cross-entropy with logits and its gradient.

use super::runtime::launch;
use super::{check_len, grid_1d, row_config, to_u32, CudaStorage};
use crate::Result;

const FILE: &str = "loss.cu";

pub(super) fn bce_with_logits_rows(
    l: &CudaStorage,
    t: &CudaStorage,
    rows: usize,
    cols: usize,
) -> Result<CudaStorage> {
    const OP: &str = "bce_with_logits";
    l.same_device(OP, t)?;
    check_len(OP, "logits", l.len, rows * cols)?;
    check_len(OP, "targets", t.len, rows * cols)?;
    let out = CudaStorage::uninit(l.runtime(), rows)?;
    if rows == 0 {
        return Ok(out);
    }
    to_u32(OP, "rows·cols", rows * cols)?;
    let (r, c) = (to_u32(OP, "rows", rows)?, cols as u32);
    let (lp, tp, op) = (l.ptr(), t.ptr(), out.ptr());
    launch!(
        l.rt(),
        FILE,
        "bce_rows_f32",
        row_config(r, cols),
        &lp,
        &tp,
        &op,
        &r,
        &c
    )?;
    Ok(out)
}

pub(super) fn bce_with_logits_rows_backward(
    l: &CudaStorage,
    t: &CudaStorage,
    g: &CudaStorage,
    rows: usize,
    cols: usize,
) -> Result<CudaStorage> {
    const OP: &str = "bce_with_logits_backward";
    l.same_device(OP, t)?;
    l.same_device(OP, g)?;
    check_len(OP, "logits", l.len, rows * cols)?;
    check_len(OP, "targets", t.len, rows * cols)?;
    check_len(OP, "grad", g.len, rows)?;
    let out = CudaStorage::uninit(l.runtime(), rows * cols)?;
    if rows * cols == 0 {
        return Ok(out);
    }
    let n = to_u32(OP, "rows·cols", rows * cols)?;
    let (r, c) = (rows as u32, cols as u32);
    let (lp, tp, gp, op) = (l.ptr(), t.ptr(), g.ptr(), out.ptr());
    launch!(
        l.rt(),
        FILE,
        "bce_rows_backward_f32",
        grid_1d(n as u64, 256),
        &lp,
        &tp,
        &gp,
        &op,
        &r,
        &c
    )?;
    Ok(out)
}

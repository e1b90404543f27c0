//! Launches `kernels/index.cu`: row gathers and scatter-adds. The ids live on the host; they are
//! range-checked there, then uploaded through the runtime's pinned staging ring (no host wait).

use super::runtime::launch;
use super::{grid_1d, to_u32, CudaStorage};
use crate::{Error, Result};

const FILE: &str = "index.cu";

fn check_ids(op: &'static str, ids: &[u32], rows: usize) -> Result<()> {
    match ids.iter().find(|&&i| i as usize >= rows) {
        Some(bad) => Err(Error::invalid(
            op,
            format!("row index {bad} out of range for {rows} rows"),
        )),
        None => Ok(()),
    }
}

pub(super) fn index_select_rows(
    x: &CudaStorage,
    ids: &[u32],
    row_len: usize,
) -> Result<CudaStorage> {
    const OP: &str = "index_select_rows";
    let rows = x.len.checked_div(row_len).unwrap_or(0);
    check_ids(OP, ids, rows)?;
    let rt = x.runtime();
    let n = ids.len() * row_len;
    let out = CudaStorage::uninit(rt, n)?;
    if n == 0 {
        return Ok(out);
    }
    to_u32(OP, "output elements", n)?;
    let (ni, rl) = (ids.len() as u32, row_len as u32);
    let dev_ids = rt.upload(ids)?;
    let (xp, ip, op) = (x.ptr(), dev_ids.ptr(), out.ptr());
    launch!(
        rt,
        FILE,
        "index_select_rows_f32",
        grid_1d(n as u64, 256),
        &xp,
        &ip,
        &op,
        &ni,
        &rl
    )?;
    Ok(out)
}

pub(super) fn index_add_rows(
    x: &CudaStorage,
    ids: &[u32],
    row_len: usize,
    out_rows: usize,
) -> Result<CudaStorage> {
    const OP: &str = "index_add_rows";
    check_ids(OP, ids, out_rows)?;
    if ids.len() * row_len != x.len {
        return Err(Error::invalid(
            OP,
            format!(
                "{} ids of rows of {row_len} for {} values",
                ids.len(),
                x.len
            ),
        ));
    }
    let rt = x.runtime();
    let out = CudaStorage::zeroed(rt, out_rows * row_len)?;
    let n = x.len;
    if n == 0 {
        return Ok(out);
    }
    to_u32(OP, "input elements", n)?;
    to_u32(OP, "output elements", out_rows * row_len)?;
    let (ni, rl) = (ids.len() as u32, row_len as u32);
    let dev_ids = rt.upload(ids)?;
    let (xp, ip, op) = (x.ptr(), dev_ids.ptr(), out.ptr());
    launch!(
        rt,
        FILE,
        "index_add_rows_f32",
        grid_1d(n as u64, 256),
        &xp,
        &ip,
        &op,
        &ni,
        &rl
    )?;
    Ok(out)
}

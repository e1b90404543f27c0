//! Launches `kernels/copy.cu`: axis transpose (a shared-memory tiled kernel for the batched
//! matrix case, a gather kernel otherwise) and 2-D block copies.

use super::runtime::launch;
use super::{check_len, grid_1d, to_u32, CudaStorage};
use crate::{Error, Result};
use cudarc::driver::LaunchConfig;

const FILE: &str = "copy.cu";

pub(super) fn transpose(
    x: &CudaStorage,
    dims: &[usize],
    d0: usize,
    d1: usize,
) -> Result<CudaStorage> {
    const OP: &str = "transpose";
    check_len(OP, "input", x.len, dims.iter().product())?;
    if !(d0 < d1 && d1 < dims.len()) {
        return Err(Error::invalid(
            OP,
            format!("axes {d0}, {d1} for rank {}", dims.len()),
        ));
    }
    let out = CudaStorage::uninit(x.runtime(), x.len)?;
    if x.len == 0 {
        return Ok(out);
    }
    let n = to_u32(OP, "elements", x.len)?;
    // All factors divide n < 2^32.
    let a = dims[..d0].iter().product::<usize>() as u32;
    let i = dims[d0] as u32;
    let b = dims[d0 + 1..d1].iter().product::<usize>() as u32;
    let j = dims[d1] as u32;
    let c = dims[d1 + 1..].iter().product::<usize>() as u32;
    let (xp, op) = (x.ptr(), out.ptr());
    if b == 1 && c == 1 {
        let cfg = LaunchConfig {
            grid_dim: (j.div_ceil(32), i.div_ceil(32), a.min(65535)),
            block_dim: (32, 8, 1),
            shared_mem_bytes: 0,
        };
        if i.div_ceil(32) > 65535 {
            return Err(Error::invalid(
                OP,
                format!("{i} rows exceed the tiled kernel's grid"),
            ));
        }
        launch!(x.rt(), FILE, "transpose2d_f32", cfg, &xp, &op, &a, &i, &j)?;
    } else {
        launch!(
            x.rt(),
            FILE,
            "transpose_f32",
            grid_1d(n as u64, 256),
            &xp,
            &op,
            &n,
            &a,
            &i,
            &b,
            &j,
            &c
        )?;
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn copy2d(
    src: &CudaStorage,
    dst: &mut CudaStorage,
    rows: usize,
    cols: usize,
    src_stride: usize,
    dst_stride: usize,
    src_off: usize,
    dst_off: usize,
) -> Result<()> {
    const OP: &str = "copy2d";
    src.same_device(OP, dst)?;
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let src_end = src_off + (rows - 1) * src_stride + cols;
    let dst_end = dst_off + (rows - 1) * dst_stride + cols;
    if src_end > src.len || dst_end > dst.len {
        return Err(Error::invalid(
            OP,
            format!(
                "block {rows}x{cols} reaches {src_end}/{dst_end} past buffers of {}/{}",
                src.len, dst.len
            ),
        ));
    }
    let n = to_u32(OP, "rows·cols", rows * cols)?;
    let (r, c) = (rows as u32, cols as u32);
    let (ss, ds, so, dof) = (
        src_stride as u64,
        dst_stride as u64,
        src_off as u64,
        dst_off as u64,
    );
    let (sp, dp) = (src.ptr(), dst.ptr());
    launch!(
        src.rt(),
        FILE,
        "copy2d_f32",
        grid_1d(n as u64, 256),
        &sp,
        &dp,
        &r,
        &c,
        &ss,
        &ds,
        &so,
        &dof
    )
}

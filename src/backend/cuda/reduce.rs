//! Launches `kernels/reduce.cu`: Sum / Max along the middle axis of (outer, len, inner).
//! Contiguous rows (inner = 1) get a warp or a block per row; otherwise a 32×8 block per 32
//! consecutive columns of one outer index.

use super::runtime::{launch, CudaRuntime};
use super::{check_len, row_config, to_u32, CudaStorage};
use crate::backend::ReduceOp;
use crate::Result;
use cudarc::driver::LaunchConfig;

const FILE: &str = "reduce.cu";

/// Queue out[o, i] = op_j x[o, j, i] between raw device buffers (x: outer·len·inner floats, out:
/// outer·inner floats). Also used by the convolution's split-K reduction.
pub(super) fn reduce_raw(
    rt: &CudaRuntime,
    x: u64,
    out: u64,
    op: ReduceOp,
    outer: usize,
    len: usize,
    inner: usize,
) -> Result<()> {
    const OP: &str = "reduce";
    if outer == 0 || inner == 0 {
        return Ok(());
    }
    to_u32(OP, "outer·len·inner", outer * len * inner)?;
    let code: i32 = match op {
        ReduceOp::Sum => 0,
        ReduceOp::Max => 1,
    };
    let len32 = to_u32(OP, "len", len)?;
    if inner == 1 {
        let rows = to_u32(OP, "rows", outer)?;
        launch!(
            rt,
            FILE,
            "reduce_rows_f32",
            row_config(rows, len),
            &x,
            &out,
            &rows,
            &len32,
            &code
        )
    } else {
        let outer32 = to_u32(OP, "outer", outer)?;
        let inner32 = to_u32(OP, "inner", inner)?;
        let cfg = LaunchConfig {
            grid_dim: (inner32.div_ceil(32), outer32.min(65535), 1),
            block_dim: (32, 8, 1),
            shared_mem_bytes: 0,
        };
        launch!(
            rt,
            FILE,
            "reduce_cols_f32",
            cfg,
            &x,
            &out,
            &outer32,
            &len32,
            &inner32,
            &code
        )
    }
}

pub(super) fn reduce(
    x: &CudaStorage,
    op: ReduceOp,
    outer: usize,
    len: usize,
    inner: usize,
) -> Result<CudaStorage> {
    check_len("reduce", "input", x.len, outer * len * inner)?;
    let out = CudaStorage::uninit(x.runtime(), outer * inner)?;
    reduce_raw(x.rt(), x.ptr(), out.ptr(), op, outer, len, inner)?;
    Ok(out)
}

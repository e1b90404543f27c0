//! Launches `kernels/gemm.cu`: batched C[z] = op(A[z])·op(B[z]).
//!
//! F32: the 128×128 register-blocked kernel when it yields at least one block per SM, else the
//! 64×64 one (small products need more, smaller blocks to fill the GPU). Tf32: the tensor-core
//! kernel on sm_80+, the F32 path below that.

use super::runtime::{launch, GemmPrecision};
use super::{to_i32, to_u32, CudaStorage};
use crate::backend::MatmulShape;
use crate::{Error, Result};
use cudarc::driver::LaunchConfig;

const FILE: &str = "gemm.cu";

pub(super) fn matmul(
    lhs: &CudaStorage,
    rhs: &CudaStorage,
    s: &MatmulShape,
    precision: GemmPrecision,
) -> Result<CudaStorage> {
    const OP: &str = "matmul";
    lhs.same_device(OP, rhs)?;
    let (lsz, rsz) = (s.m * s.k, s.k * s.n);
    let need_l = (s.batch.max(1) - 1) * s.lhs_batch_stride + lsz;
    let need_r = (s.batch.max(1) - 1) * s.rhs_batch_stride + rsz;
    if s.batch > 0 && (lhs.len < need_l || rhs.len < need_r) {
        return Err(Error::invalid(
            OP,
            format!(
                "{s:?} needs {need_l}/{need_r} elements, got {}/{}",
                lhs.len, rhs.len
            ),
        ));
    }
    let rt = lhs.runtime();
    let out = CudaStorage::uninit(rt, s.batch * s.m * s.n)?;
    if out.len == 0 {
        return Ok(out);
    }
    let (m, n, k) = (
        to_i32(OP, "m", s.m)?,
        to_i32(OP, "n", s.n)?,
        to_i32(OP, "k", s.k)?,
    );
    let batch = to_u32(OP, "batch", s.batch)?;
    let (ta, tb) = (s.trans_lhs as i32, s.trans_rhs as i32);
    let (sa, sb) = (s.lhs_batch_stride as u64, s.rhs_batch_stride as u64);
    let (ap, bp, cp) = (lhs.ptr(), rhs.ptr(), out.ptr());
    let cc = rt.compute_capability();
    let (func, tile, threads) = match precision {
        GemmPrecision::Tf32 if cc.0 >= 8 => ("gemm_tf32_64x64", 64u32, 128u32),
        _ => {
            let big = (n as u64).div_ceil(128) * (m as u64).div_ceil(128) * batch as u64;
            if big >= rt.sm_count() as u64 {
                ("sgemm_128x128", 128, 256)
            } else {
                ("sgemm_64x64", 64, 256)
            }
        }
    };
    let gy = (m as u32).div_ceil(tile);
    if gy > 65535 {
        return Err(Error::invalid(
            OP,
            format!("m = {m} exceeds the kernel's grid"),
        ));
    }
    let cfg = LaunchConfig {
        grid_dim: ((n as u32).div_ceil(tile), gy, batch.min(65535)),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    };
    launch!(rt, FILE, func, cfg, &ap, &bp, &cp, &m, &n, &k, &ta, &tb, &sa, &sb, &batch)?;
    Ok(out)
}

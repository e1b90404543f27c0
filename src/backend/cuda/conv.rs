//! Launches `kernels/conv.cu`: 2-D convolution forward, backward-input and backward-weight as
//! implicit GEMMs (no im2col buffer). The backward-weight product has a long K (N·Ho·Wo) and a
//! small M×N, so it is split over K across grid.z into a workspace that `reduce.cu` then sums.

use super::reduce::reduce_raw;
use super::runtime::launch;
use super::{check_len, to_i32, CudaStorage};
use crate::backend::{Conv2dShape, ReduceOp};
use crate::{Error, Result};
use cudarc::driver::LaunchConfig;

const FILE: &str = "conv.cu";
const TILE: u32 = 64;
const BK: usize = 8;

/// `ConvGeom` of conv.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct ConvGeom {
    n: i32,
    ci: i32,
    h: i32,
    w: i32,
    co: i32,
    kh: i32,
    kw: i32,
    stride: i32,
    pad: i32,
    ho: i32,
    wo: i32,
}
unsafe impl cudarc::driver::DeviceRepr for ConvGeom {}

fn geom(op: &'static str, s: &Conv2dShape) -> Result<ConvGeom> {
    if s.stride == 0 {
        return Err(Error::invalid(op, "stride 0"));
    }
    // Every flattened GEMM dimension must fit in an i32.
    let (xs, ws, ys) = s.sizes();
    for (what, v) in [("input size", xs), ("weight size", ws), ("output size", ys)] {
        to_i32(op, what, v)?;
    }
    Ok(ConvGeom {
        n: to_i32(op, "n", s.n)?,
        ci: to_i32(op, "c_in", s.c_in)?,
        h: to_i32(op, "h", s.h)?,
        w: to_i32(op, "w", s.w)?,
        co: to_i32(op, "c_out", s.c_out)?,
        kh: to_i32(op, "kh", s.kh)?,
        kw: to_i32(op, "kw", s.kw)?,
        stride: to_i32(op, "stride", s.stride)?,
        pad: to_i32(op, "padding", s.padding)?,
        ho: to_i32(op, "h_out", s.h_out)?,
        wo: to_i32(op, "w_out", s.w_out)?,
    })
}

fn grid(op: &'static str, m: usize, ncols: usize, z: u32) -> Result<LaunchConfig> {
    let gy = (m as u64).div_ceil(TILE as u64);
    if gy > 65535 {
        return Err(Error::invalid(
            op,
            format!("{m} GEMM rows exceed the kernel's grid"),
        ));
    }
    Ok(LaunchConfig {
        grid_dim: ((ncols as u64).div_ceil(TILE as u64) as u32, gy as u32, z),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    })
}

pub(super) fn conv2d(x: &CudaStorage, w: &CudaStorage, s: &Conv2dShape) -> Result<CudaStorage> {
    const OP: &str = "conv2d";
    x.same_device(OP, w)?;
    let (xs, ws, ys) = s.sizes();
    check_len(OP, "input", x.len, xs)?;
    check_len(OP, "weight", w.len, ws)?;
    let g = geom(OP, s)?;
    let out = CudaStorage::uninit(x.runtime(), ys)?;
    if ys == 0 {
        return Ok(out);
    }
    let cfg = grid(OP, s.c_out, s.n * s.h_out * s.w_out, 1)?;
    let (xp, wp, yp) = (x.ptr(), w.ptr(), out.ptr());
    launch!(x.rt(), FILE, "conv2d_fwd_f32", cfg, &xp, &wp, &yp, &g)?;
    Ok(out)
}

pub(super) fn conv2d_backward_input(
    dy: &CudaStorage,
    w: &CudaStorage,
    s: &Conv2dShape,
) -> Result<CudaStorage> {
    const OP: &str = "conv2d_backward_input";
    dy.same_device(OP, w)?;
    let (xs, ws, ys) = s.sizes();
    check_len(OP, "grad", dy.len, ys)?;
    check_len(OP, "weight", w.len, ws)?;
    let g = geom(OP, s)?;
    let out = CudaStorage::uninit(dy.runtime(), xs)?;
    if xs == 0 {
        return Ok(out);
    }
    let cfg = grid(OP, s.c_in, s.n * s.h * s.w, 1)?;
    let (dyp, wp, dxp) = (dy.ptr(), w.ptr(), out.ptr());
    launch!(
        dy.rt(),
        FILE,
        "conv2d_bwd_input_f32",
        cfg,
        &dyp,
        &wp,
        &dxp,
        &g
    )?;
    Ok(out)
}

pub(super) fn conv2d_backward_weight(
    x: &CudaStorage,
    dy: &CudaStorage,
    s: &Conv2dShape,
) -> Result<CudaStorage> {
    const OP: &str = "conv2d_backward_weight";
    x.same_device(OP, dy)?;
    let (xs, ws, ys) = s.sizes();
    check_len(OP, "input", x.len, xs)?;
    check_len(OP, "grad", dy.len, ys)?;
    let g = geom(OP, s)?;
    let rt = x.runtime();
    let out = CudaStorage::uninit(rt, ws)?;
    if ws == 0 {
        return Ok(out);
    }
    let (m, ncols, k) = (s.c_out, s.c_in * s.kh * s.kw, s.n * s.h_out * s.w_out);
    // Split K so that the grid has about two blocks per SM, each split at least 256 long.
    let tiles = (m.div_ceil(TILE as usize) * ncols.div_ceil(TILE as usize)).max(1);
    let want = (2 * rt.sm_count() as usize).div_ceil(tiles);
    let splits = want.clamp(1, k.div_ceil(256).max(1)).min(65535);
    let chunk = k.div_ceil(splits).div_ceil(BK).max(1) * BK;
    let splits = k.div_ceil(chunk).max(1);
    let chunk32 = to_i32(OP, "k chunk", chunk)?;
    let cfg = grid(OP, m, ncols, splits as u32)?;
    let (xp, dyp) = (x.ptr(), dy.ptr());
    if splits == 1 {
        let op = out.ptr();
        launch!(
            rt,
            FILE,
            "conv2d_bwd_weight_f32",
            cfg,
            &xp,
            &dyp,
            &op,
            &g,
            &chunk32
        )?;
    } else {
        let ws_buf = CudaStorage::uninit(rt, splits * ws)?;
        let wp = ws_buf.ptr();
        launch!(
            rt,
            FILE,
            "conv2d_bwd_weight_f32",
            cfg,
            &xp,
            &dyp,
            &wp,
            &g,
            &chunk32
        )?;
        reduce_raw(rt, wp, out.ptr(), ReduceOp::Sum, 1, splits, ws)?;
    }
    Ok(out)
}

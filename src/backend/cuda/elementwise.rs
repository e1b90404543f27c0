//! Launches `kernels/elementwise.cu`: unary maps and their derivatives, broadcasting binary ops,
//! in-place scaling. Broadcast geometry is simplified on the host (size-1 output dims dropped,
//! adjacent dims merged where both operands stay contiguous across them) before it reaches the
//! kernel, so any rank works as long as at most 6 "real" dims remain.

use super::runtime::launch;
use super::{check_len, grid_1d, to_u32, CudaStorage};
use crate::backend::broadcast::{broadcast_strides, simplify};
use crate::backend::{BinaryOp, UnaryOp};
use crate::{Error, Result};

const FILE: &str = "elementwise.cu";
const BLOCK: u32 = 256;
const MAX_RANK: usize = 6;

/// The kernel's op code and parameters (see the table at the top of elementwise.cu).
fn unary_code(op: UnaryOp) -> (i32, f32, f32) {
    match op {
        UnaryOp::Neg => (0, 0.0, 0.0),
        UnaryOp::Exp => (1, 0.0, 0.0),
        UnaryOp::Log => (2, 0.0, 0.0),
        UnaryOp::Sqrt => (3, 0.0, 0.0),
        UnaryOp::Square => (4, 0.0, 0.0),
        UnaryOp::Relu => (5, 0.0, 0.0),
        UnaryOp::LeakyRelu(s) => (6, s, 0.0),
        UnaryOp::Elu(a) => (7, a, 0.0),
        UnaryOp::Softplus => (8, 0.0, 0.0),
        UnaryOp::Sigmoid => (9, 0.0, 0.0),
        UnaryOp::Tanh => (10, 0.0, 0.0),
        UnaryOp::Affine { mul, add } => (11, mul, add),
        UnaryOp::Abs => (12, 0.0, 0.0),
    }
}

fn binary_code(op: BinaryOp) -> i32 {
    match op {
        BinaryOp::Add => 0,
        BinaryOp::Sub => 1,
        BinaryOp::Mul => 2,
        BinaryOp::Div => 3,
        BinaryOp::Eq => 4,
        BinaryOp::Maximum => 5,
    }
}

/// 1 when every pointer is 16-byte aligned (float4 access allowed).
fn vec4(ptrs: &[u64]) -> i32 {
    ptrs.iter().all(|p| p % 16 == 0) as i32
}

pub(super) fn unary(x: &CudaStorage, op: UnaryOp) -> Result<CudaStorage> {
    let rt = x.runtime();
    let n = x.len as u64;
    let out = CudaStorage::uninit(rt, x.len)?;
    if n == 0 {
        return Ok(out);
    }
    let (code, p0, p1) = unary_code(op);
    let (xp, yp) = (x.ptr(), out.ptr());
    let v = vec4(&[xp, yp]);
    launch!(
        rt,
        FILE,
        "unary_f32",
        grid_1d(n.div_ceil(4), BLOCK),
        &xp,
        &yp,
        &n,
        &code,
        &p0,
        &p1,
        &v
    )?;
    Ok(out)
}

pub(super) fn unary_backward(x: &CudaStorage, op: UnaryOp, g: &CudaStorage) -> Result<CudaStorage> {
    x.same_device("unary_backward", g)?;
    check_len("unary_backward", "grad", g.len, x.len)?;
    let rt = x.runtime();
    let n = x.len as u64;
    let out = CudaStorage::uninit(rt, x.len)?;
    if n == 0 {
        return Ok(out);
    }
    let (code, p0, _) = unary_code(op);
    let (xp, gp, dp) = (x.ptr(), g.ptr(), out.ptr());
    let v = vec4(&[xp, gp, dp]);
    launch!(
        rt,
        FILE,
        "unary_backward_f32",
        grid_1d(n.div_ceil(4), BLOCK),
        &xp,
        &gp,
        &dp,
        &n,
        &code,
        &p0,
        &v
    )?;
    Ok(out)
}

/// `BcastMeta` of elementwise.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct BcastMeta {
    rank: u32,
    dims: [u32; MAX_RANK],
    a_strides: [u32; MAX_RANK],
    b_strides: [u32; MAX_RANK],
}
unsafe impl cudarc::driver::DeviceRepr for BcastMeta {}

pub(super) fn binary(
    lhs: &CudaStorage,
    op: BinaryOp,
    rhs: &CudaStorage,
    ld: &[usize],
    rd: &[usize],
    od: &[usize],
) -> Result<CudaStorage> {
    const OP: &str = "binary";
    lhs.same_device(OP, rhs)?;
    if ld.len() != od.len() || rd.len() != od.len() {
        return Err(Error::shape(
            OP,
            ld,
            rd,
            format!("ranks differ from the output's {od:?}"),
        ));
    }
    for i in 0..od.len() {
        for (d, name) in [(ld[i], "lhs"), (rd[i], "rhs")] {
            if d != od[i] && d != 1 {
                return Err(Error::shape(
                    OP,
                    ld,
                    rd,
                    format!("{name} dim {i} ({d}) does not broadcast to {}", od[i]),
                ));
            }
        }
    }
    check_len(OP, "lhs", lhs.len, ld.iter().product())?;
    check_len(OP, "rhs", rhs.len, rd.iter().product())?;
    let n: usize = od.iter().product();
    let rt = lhs.runtime();
    let out = CudaStorage::uninit(rt, n)?;
    if n == 0 {
        return Ok(out);
    }
    let code = binary_code(op);
    let (ap, bp, op_) = (lhs.ptr(), rhs.ptr(), out.ptr());
    if ld == od && rd == od {
        let n64 = n as u64;
        let v = vec4(&[ap, bp, op_]);
        launch!(
            rt,
            FILE,
            "binary_same_f32",
            grid_1d(n64.div_ceil(4), BLOCK),
            &ap,
            &bp,
            &op_,
            &n64,
            &code,
            &v
        )?;
        return Ok(out);
    }
    let n32 = to_u32(OP, "output elements", n)?;
    let (dims, sa, sb) = simplify(od, &broadcast_strides(ld, od), &broadcast_strides(rd, od));
    if dims.len() > MAX_RANK {
        return Err(Error::invalid(
            OP,
            format!(
                "broadcast of {ld:?} with {rd:?} needs {} dims after merging; at most {MAX_RANK}",
                dims.len()
            ),
        ));
    }
    let mut meta = BcastMeta {
        rank: dims.len() as u32,
        ..Default::default()
    };
    for i in 0..dims.len() {
        // All below n < 2^32.
        meta.dims[i] = dims[i] as u32;
        meta.a_strides[i] = sa[i] as u32;
        meta.b_strides[i] = sb[i] as u32;
    }
    launch!(
        rt,
        FILE,
        "binary_bcast_f32",
        grid_1d(n as u64, BLOCK),
        &ap,
        &bp,
        &op_,
        &n32,
        &code,
        &meta
    )?;
    Ok(out)
}

pub(super) fn scale_in_place(x: &mut CudaStorage, factor: f32) -> Result<()> {
    let n = x.len as u64;
    if n == 0 {
        return Ok(());
    }
    let xp = x.ptr();
    let v = vec4(&[xp]);
    launch!(
        x.rt(),
        FILE,
        "scale_f32",
        grid_1d(n.div_ceil(4), BLOCK),
        &xp,
        &n,
        &factor,
        &v
    )
}

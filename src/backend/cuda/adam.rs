//! Launches `kernels/adam.cu`: one multi-tensor Adam/AdamW kernel. The host writes a table of
//! (param, grad, m, v, len) device pointers, uploads it through the staging ring, and one launch
//! updates every tensor. The trait's per-tensor `adam_step` is the one-entry case.

use super::runtime::{launch, CudaRuntime};
use super::{check_len, CudaStorage};
use crate::backend::AdamStep;
use crate::{Error, Result};
use cudarc::driver::LaunchConfig;

const FILE: &str = "adam.cu";
const BLOCK: u32 = 256;

/// One tensor's Adam state for [`super::CudaDevice::adam_step_multi`].
pub struct AdamTensors<'a> {
    pub param: &'a mut CudaStorage,
    pub grad: &'a CudaStorage,
    pub m: &'a mut CudaStorage,
    pub v: &'a mut CudaStorage,
}

/// `AdamEntry` of adam.cu.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct AdamEntry {
    p: u64,
    g: u64,
    m: u64,
    v: u64,
    n: u64,
}

/// `AdamParams` of adam.cu.
#[repr(C)]
#[derive(Clone, Copy)]
struct AdamParams {
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    bias1: f32,
    bias2: f32,
    decoupled: i32,
}
unsafe impl cudarc::driver::DeviceRepr for AdamParams {}

pub(super) fn adam_step_multi(
    rt: &std::sync::Arc<CudaRuntime>,
    ts: &mut [AdamTensors<'_>],
    s: &AdamStep,
) -> Result<()> {
    const OP: &str = "adam_step";
    let mut table = Vec::with_capacity(ts.len());
    let mut max_n = 0usize;
    for t in ts.iter() {
        let n = t.param.len;
        for (what, other) in [("grad", t.grad), ("m", &*t.m), ("v", &*t.v)] {
            if other.rt().ordinal() != rt.ordinal() || t.param.rt().ordinal() != rt.ordinal() {
                return Err(Error::Device(format!(
                    "{OP}: {what} is not on cuda:{}",
                    rt.ordinal()
                )));
            }
            check_len(OP, what, other.len, n)?;
        }
        if n == 0 {
            continue;
        }
        max_n = max_n.max(n);
        table.push(AdamEntry {
            p: t.param.ptr(),
            g: t.grad.ptr(),
            m: t.m.ptr(),
            v: t.v.ptr(),
            n: n as u64,
        });
    }
    if table.is_empty() {
        return Ok(());
    }
    let count = table.len() as u32;
    let dev_table = rt.upload(&table)?;
    let params = AdamParams {
        lr: s.lr,
        beta1: s.beta1,
        beta2: s.beta2,
        eps: s.eps,
        weight_decay: s.weight_decay,
        bias1: s.bias1,
        bias2: s.bias2,
        decoupled: s.decoupled as i32,
    };
    let cfg = LaunchConfig {
        grid_dim: (
            (max_n as u64).div_ceil(BLOCK as u64).clamp(1, 1024) as u32,
            count.min(65535),
            1,
        ),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    };
    let tp = dev_table.ptr();
    launch!(rt, FILE, "adam_multi_f32", cfg, &tp, &count, &params)
}

//! Launches `kernels/random.cu`: U(0,1) and N(0,1) draws from in-kernel Philox4x32-10, equal
//! element for element to the CPU backend's (same key ⇒ same numbers, up to libm rounding in
//! Box–Muller).

use super::runtime::{launch, CudaRuntime};
use super::{grid_1d, CudaStorage};
use crate::rng::RngKey;
use crate::Result;
use std::sync::Arc;

const FILE: &str = "random.cu";

/// `PhiloxKey` of philox.cuh (24 bytes: two u64, a u32, tail padding).
#[repr(C)]
#[derive(Clone, Copy)]
struct PhiloxKey {
    seed: u64,
    offset: u64,
    stream: u32,
    _pad: u32,
}
unsafe impl cudarc::driver::DeviceRepr for PhiloxKey {}

fn key_of(k: RngKey) -> PhiloxKey {
    PhiloxKey {
        seed: k.seed,
        offset: k.offset,
        stream: k.stream,
        _pad: 0,
    }
}

fn draw(rt: &Arc<CudaRuntime>, n: usize, key: RngKey, func: &'static str) -> Result<CudaStorage> {
    let out = CudaStorage::uninit(rt, n)?;
    if n == 0 {
        return Ok(out);
    }
    let (op, n64, k) = (out.ptr(), n as u64, key_of(key));
    launch!(rt, FILE, func, grid_1d(n64, 256), &op, &n64, &k)?;
    Ok(out)
}

pub(super) fn rand_uniform(rt: &Arc<CudaRuntime>, n: usize, key: RngKey) -> Result<CudaStorage> {
    draw(rt, n, key, "rand_uniform_f32")
}

pub(super) fn rand_normal(rt: &Arc<CudaRuntime>, n: usize, key: RngKey) -> Result<CudaStorage> {
    draw(rt, n, key, "rand_normal_f32")
}

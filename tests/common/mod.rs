//! Helpers shared by the CPU ↔ CUDA parity tests (tests/cuda_parity.rs, tests/cuda_parity_vae.rs):
//! the GPU guard that skips with a printed reason, the relative-error measure and assertions, and
//! seeded host data.
#![allow(dead_code)] // each test file uses its own subset

use ssvae::backend::cpu::{CpuDevice, CpuStorage};
use ssvae::backend::cuda::runtime::{driver_version, nvrtc_version};
use ssvae::backend::cuda::{cuda_status, CudaDevice, CudaStorage};
use ssvae::backend::{BackendDevice, BackendStorage};
use ssvae::rng::Rng;
use std::sync::{Mutex, MutexGuard};

/// Bound for elementwise maps, copies and draws.
pub const ELEMENTWISE: f64 = 1e-5;
/// Bound for anything through a reduction (sums, softmax family, GEMM, conv, losses).
pub const REDUCTION: f64 = 1e-4;

pub static GPU_LOCK: Mutex<()> = Mutex::new(());

/// The GPU (and the lock that serialises GPU tests), or None after printing why the test skips.
/// With `SSVAE_REQUIRE_GPU=1` (the GPU bundle sets it) a missing GPU is a failure instead.
pub fn gpu() -> Option<(CudaDevice, MutexGuard<'static, ()>)> {
    if std::env::var("SSVAE_REQUIRE_GPU").as_deref() == Ok("1") {
        if let Err(why) = cuda_status() {
            panic!("SSVAE_REQUIRE_GPU=1 but {why}");
        }
    }
    match cuda_status() {
        Ok(n) if n > 0 => {
            let guard = GPU_LOCK.lock().unwrap_or_else(|p| p.into_inner());
            let dev = CudaDevice::new(0);
            let rt = dev.runtime().expect("CUDA runtime");
            println!(
                "running on {} ({}, {} SMs), driver CUDA {:?}, NVRTC {:?}",
                rt.name(),
                rt.arch(),
                rt.sm_count(),
                driver_version().ok(),
                nvrtc_version().ok()
            );
            Some((dev, guard))
        }
        Ok(_) => {
            println!("skipped: no CUDA device");
            None
        }
        Err(why) => {
            println!("skipped: {why}");
            None
        }
    }
}

macro_rules! gpu_or_skip {
    () => {
        match common::gpu() {
            Some(g) => g,
            None => return,
        }
    };
}

/// ‖got − want‖ / ‖want‖ (absolute when ‖want‖ = 0); +∞ for any NaN or mismatched infinity.
pub fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let (mut num, mut den) = (0f64, 0f64);
    for (&g, &w) in got.iter().zip(want) {
        if g.is_nan() || w.is_nan() {
            return f64::INFINITY;
        }
        if g.is_infinite() || w.is_infinite() {
            if g != w {
                return f64::INFINITY;
            }
            continue;
        }
        num += (g as f64 - w as f64).powi(2);
        den += (w as f64).powi(2);
    }
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f64) {
    let e = rel_err(got, want);
    // Written so that a NaN error (never produced by rel_err, but still) fails too.
    if e.is_nan() || e > tol {
        let worst = got
            .iter()
            .zip(want)
            .enumerate()
            .max_by(|a, b| {
                let da = (a.1 .0 - a.1 .1).abs();
                let db = (b.1 .0 - b.1 .1).abs();
                da.partial_cmp(&db).unwrap_or(std::cmp::Ordering::Greater)
            })
            .map(|(i, (g, w))| format!("worst at {i}: cuda {g} vs cpu {w}"))
            .unwrap_or_default();
        panic!(
            "{what}: relative error {e:.3e} > {tol:.0e} ({} values; {worst}; first cuda {:?} cpu {:?})",
            got.len(),
            &got[..got.len().min(6)],
            &want[..want.len().min(6)]
        );
    }
}

#[track_caller]
pub fn assert_exact(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits() || (g == w && !g.is_nan()),
            "{what}: element {i}: cuda {g} vs cpu {w}"
        );
    }
}

/// Host data: N(0, scale²) draws from a fixed seed (different per call site through `seed`).
pub fn normals(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut r = Rng::new(seed, 11);
    (0..n).map(|_| r.normal() * scale).collect()
}

pub fn uniforms(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut r = Rng::new(seed, 12);
    (0..n).map(|_| lo + (hi - lo) * r.uniform()).collect()
}

/// The same data on both devices.
pub fn both(dev: &CudaDevice, data: &[f32]) -> (CpuStorage, CudaStorage) {
    (
        CpuDevice.storage_from_slice(data).unwrap(),
        dev.storage_from_slice(data).unwrap(),
    )
}

pub fn host(s: &CudaStorage) -> Vec<f32> {
    s.to_vec().expect("to_vec")
}

//! A cache of freed host buffers: the CPU twin of the CUDA backend's caching allocator.
//!
//! Why: a training step allocates the same large buffers (activations, im2col panels, gradients)
//! step after step. glibc serves a large `vec![0.0; n]` with a fresh `mmap`, whose pages the
//! kernel must fault in and zero on first touch, and returns it to the OS on `free`; so every
//! step paid ~one page fault per 4 KiB written. Measured on the conv SHOT-VAE (60 steps, 2
//! cores): 16.8 s of system time out of 29 s wall before this pool; see `benches/RESULTS.md`.
//!
//! How: [`CpuStorage`](super::CpuStorage) hands its buffer to [`recycle`] when dropped; the
//! kernels take their outputs from [`zeros`] / [`filled`], which reuse a cached buffer of exactly
//! the requested length when there is one (re-filling it, so a kernel always sees the same
//! initial contents as a fresh `vec!` and results do not depend on the cache), or from
//! [`for_overwrite`] when they write every element themselves (no re-fill). Only buffers of
//! at least [`MIN_POOLED_LEN`] elements are cached (smaller ones come from malloc's heap, which is
//! already fast), and at most [`MAX_POOLED_BYTES`] in total: a buffer that would exceed it empties
//! the cache first, so a shape change (training → evaluation batches) cannot pin stale buffers.

use super::elementwise::PAR_CHUNK;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Buffers shorter than this (128 KiB of f32, glibc's default mmap threshold) are not cached.
pub const MIN_POOLED_LEN: usize = 1 << 15;

/// Upper bound on the bytes held by the cache.
pub const MAX_POOLED_BYTES: usize = 2 << 30;

/// Free buffers by length, and their total size in bytes.
struct Pool {
    free: BTreeMap<usize, Vec<Vec<f32>>>,
    bytes: usize,
    hits: u64,
    misses: u64,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    free: BTreeMap::new(),
    bytes: 0,
    hits: 0,
    misses: 0,
});

/// Counters of the cache, for benchmarks and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStats {
    /// Requests served from the cache.
    pub hits: u64,
    /// Requests (of cacheable size) that had to allocate.
    pub misses: u64,
    /// Bytes currently cached.
    pub bytes: usize,
}

fn lock() -> std::sync::MutexGuard<'static, Pool> {
    // The pool holds no invariant a panicking thread could break halfway (each operation is a
    // push or a pop plus a counter), so a poisoned lock is still usable.
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A buffer of `n` zeros.
pub fn zeros(n: usize) -> Vec<f32> {
    filled(n, 0.0)
}

/// A buffer of `n` copies of `value`, reusing a cached buffer of length `n` when there is one.
pub fn filled(n: usize, value: f32) -> Vec<f32> {
    match take(n) {
        Some(mut buf) => {
            buf.par_chunks_mut(PAR_CHUNK).for_each(|c| c.fill(value));
            buf
        }
        None => vec![value; n],
    }
}

/// A buffer of `n` elements whose contents are unspecified (a cached buffer keeps the values
/// of its last use): only for kernels that write every element, which then skip [`zeros`]'s
/// extra pass over memory — what bounds a memory-bound kernel.
pub fn for_overwrite(n: usize) -> Vec<f32> {
    take(n).unwrap_or_else(|| vec![0.0; n])
}

/// A cached buffer of exactly `n` elements, if there is one.
fn take(n: usize) -> Option<Vec<f32>> {
    if n < MIN_POOLED_LEN {
        return None;
    }
    let mut p = lock();
    let buf = p.free.get_mut(&n).and_then(Vec::pop);
    match buf {
        Some(_) => {
            p.hits += 1;
            p.bytes -= n * 4;
        }
        None => p.misses += 1,
    }
    buf
}

/// Give a buffer back for reuse (called by `CpuStorage`'s `Drop`).
pub fn recycle(buf: Vec<f32>) {
    let n = buf.len();
    if n < MIN_POOLED_LEN || n * 4 > MAX_POOLED_BYTES {
        return;
    }
    let mut p = lock();
    if p.bytes + n * 4 > MAX_POOLED_BYTES {
        p.free.clear();
        p.bytes = 0;
    }
    p.bytes += n * 4;
    p.free.entry(n).or_default().push(buf);
}

/// The cache's counters.
pub fn stats() -> PoolStats {
    let p = lock();
    PoolStats {
        hits: p.hits,
        misses: p.misses,
        bytes: p.bytes,
    }
}

/// A work buffer (an im2col panel, say) drawn from the cache and given back to it when dropped.
#[derive(Default)]
pub struct Scratch(Vec<f32>);

impl Scratch {
    /// The buffer, exactly `len` long. Its contents are unspecified: callers overwrite them.
    pub fn get(&mut self, len: usize) -> &mut [f32] {
        if self.0.len() != len {
            recycle(std::mem::take(&mut self.0));
            self.0 = zeros(len);
        }
        &mut self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        recycle(std::mem::take(&mut self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Other tests of this binary allocate and drop buffers concurrently, so this one only
    // asserts what they cannot disturb: its own unusual length, the pointer, and a counter that
    // only grows.
    #[test]
    fn reuses_buffers_of_the_same_length_and_refills_them() {
        let n = MIN_POOLED_LEN + 7;
        let mut a = filled(n, 3.0);
        assert!(a.iter().all(|&v| v == 3.0));
        a.iter_mut().for_each(|v| *v = 9.0);
        let ptr = a.as_ptr();
        let hits = stats().hits;
        recycle(a);
        let b = zeros(n);
        assert_eq!(b.as_ptr(), ptr, "the cached buffer was reused");
        assert!(b.iter().all(|&v| v == 0.0), "a reused buffer is re-filled");
        assert!(stats().hits > hits);
        recycle(b);
    }
}

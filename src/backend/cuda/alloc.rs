//! The caching device allocator.
//!
//! `cuMemAlloc`/`cuMemFree` are slow (and `cuMemFree` synchronises the device), and a training
//! step allocates and frees the same sizes over and over. So a freed buffer is not given back to
//! the driver: it goes to a free list keyed by its size class, and the next request of that class
//! takes it. Size classes: 512 B minimum, powers of two up to 4 MiB, then multiples of 2 MiB. A
//! buffer is handed out again only to work queued later on the same (single) stream, so stream
//! order makes the reuse safe without any event.
//!
//! The counters ([`AllocStats`]) let a test check that a steady-state step does no `cuMemAlloc`.

use super::runtime::{driver_err, CudaRuntime};
use crate::Result;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Allocator counters since the runtime started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocStats {
    /// Requests served by `cuMemAlloc` (cache misses).
    pub device_allocs: u64,
    /// Requests served from the free lists.
    pub cache_hits: u64,
    /// Buffers given back to the driver by [`CudaRuntime::empty_cache`] or an out-of-memory retry.
    pub device_frees: u64,
    /// Bytes currently held from the driver (in use + cached).
    pub bytes_reserved: usize,
    /// Bytes currently sitting in the free lists.
    pub bytes_cached: usize,
}

/// The size class of a request of `bytes` bytes.
pub fn size_class(bytes: usize) -> usize {
    const MIN: usize = 512;
    const POW2_LIMIT: usize = 4 << 20;
    const GRANULE: usize = 2 << 20;
    if bytes <= MIN {
        MIN
    } else if bytes <= POW2_LIMIT {
        bytes.next_power_of_two()
    } else {
        bytes.div_ceil(GRANULE) * GRANULE
    }
}

/// Free lists plus counters. Lives inside [`CudaRuntime`].
#[derive(Default)]
pub struct CachingAllocator {
    free: Mutex<HashMap<usize, Vec<u64>>>,
    device_allocs: AtomicU64,
    cache_hits: AtomicU64,
    device_frees: AtomicU64,
    bytes_reserved: AtomicUsize,
    bytes_cached: AtomicUsize,
}

impl CachingAllocator {
    /// A buffer of class `size_class(bytes)`: (pointer, class). The caller has bound the context.
    /// `sync` waits for the stream; it is called only before freeing the cache on out-of-memory.
    pub fn alloc(&self, bytes: usize, sync: impl Fn() -> Result<()>) -> Result<(u64, usize)> {
        let class = size_class(bytes);
        {
            let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(ptr) = free.get_mut(&class).and_then(|v| v.pop()) {
                self.cache_hits.fetch_add(1, Ordering::Relaxed);
                self.bytes_cached.fetch_sub(class, Ordering::Relaxed);
                return Ok((ptr, class));
            }
        }
        let ptr = match unsafe { cudarc::driver::result::malloc_sync(class) } {
            Ok(p) => p,
            Err(_) => {
                // Out of memory (or fragmented): give the cache back and try once more.
                sync()?;
                self.empty_cache()?;
                unsafe { cudarc::driver::result::malloc_sync(class) }
                    .map_err(|e| driver_err(&format!("cuMemAlloc({class} bytes)"), e))?
            }
        };
        self.device_allocs.fetch_add(1, Ordering::Relaxed);
        self.bytes_reserved.fetch_add(class, Ordering::Relaxed);
        Ok((ptr, class))
    }

    /// Put a buffer back on its free list.
    pub fn release(&self, ptr: u64, class: usize) {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        free.entry(class).or_default().push(ptr);
        self.bytes_cached.fetch_add(class, Ordering::Relaxed);
    }

    /// `cuMemFree` every cached buffer. The caller has synchronised the stream.
    pub fn empty_cache(&self) -> Result<()> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        for (class, ptrs) in free.drain() {
            for ptr in ptrs {
                unsafe { cudarc::driver::result::free_sync(ptr) }
                    .map_err(|e| driver_err("cuMemFree", e))?;
                self.device_frees.fetch_add(1, Ordering::Relaxed);
                self.bytes_reserved.fetch_sub(class, Ordering::Relaxed);
                self.bytes_cached.fetch_sub(class, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// The counters.
    pub fn stats(&self) -> AllocStats {
        AllocStats {
            device_allocs: self.device_allocs.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            device_frees: self.device_frees.load(Ordering::Relaxed),
            bytes_reserved: self.bytes_reserved.load(Ordering::Relaxed),
            bytes_cached: self.bytes_cached.load(Ordering::Relaxed),
        }
    }
}

/// A device allocation from the cache; returns to the cache on drop. Pointer 0 for zero bytes.
pub struct DeviceBuffer {
    rt: Arc<CudaRuntime>,
    ptr: u64,
    class: usize,
}

impl DeviceBuffer {
    pub(crate) fn new(rt: Arc<CudaRuntime>, ptr: u64, class: usize) -> Self {
        DeviceBuffer { rt, ptr, class }
    }
    pub(crate) fn empty(rt: Arc<CudaRuntime>) -> Self {
        DeviceBuffer {
            rt,
            ptr: 0,
            class: 0,
        }
    }
    /// The device address.
    pub fn ptr(&self) -> u64 {
        self.ptr
    }
    /// Capacity in bytes (the size class).
    pub fn capacity(&self) -> usize {
        self.class
    }
    /// The runtime that owns the memory.
    pub fn runtime(&self) -> &Arc<CudaRuntime> {
        &self.rt
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        if self.class > 0 {
            self.rt.allocator.release(self.ptr, self.class);
        }
    }
}

impl std::fmt::Debug for DeviceBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceBuffer({:#x}, {} B)", self.ptr, self.class)
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes() {
        assert_eq!(size_class(1), 512);
        assert_eq!(size_class(512), 512);
        assert_eq!(size_class(513), 1024);
        assert_eq!(size_class(4 << 20), 4 << 20);
        assert_eq!(size_class((4 << 20) + 1), 6 << 20);
        assert_eq!(size_class(7 << 20), 8 << 20);
    }
}

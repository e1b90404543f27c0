//! The emulated device as a library: device memory, loaded modules, kernel launches. The
//! stand-in driver ([`crate::driver`]) is a thin C ABI over this; the interpreter's own tests and
//! benches use it directly.
//!
//! A launch runs to completion before [`Machine::launch`] returns (the driver makes it look
//! asynchronous by reporting a fault at the next synchronisation).

use crate::error::{EmuError, EmuResult};
use crate::exec;
use crate::ir::Module;
use crate::memory::GlobalMemory;
use crate::parse;
use crate::profile::LaunchProfile;
use std::sync::Arc;

/// Limits of the emulated device (those of an H100: sm_90, 1024 threads and 48 KiB of static
/// shared memory per block, 227 KiB with opt-in).
pub mod limits {
    pub const MAX_THREADS_PER_BLOCK: u32 = 1024;
    pub const MAX_BLOCK_DIM: [u32; 3] = [1024, 1024, 64];
    pub const MAX_GRID_DIM: [u32; 3] = [i32::MAX as u32, 65535, 65535];
    pub const MAX_SHARED_PER_BLOCK: u32 = 48 * 1024;
    pub const MAX_SHARED_PER_BLOCK_OPTIN: u32 = 227 * 1024;
    pub const WARP_SIZE: u32 = 32;
    pub const SM_COUNT: u32 = 132;
    pub const COMPUTE_CAPABILITY: (i32, i32) = (9, 0);
}

/// A kernel: (module slot, entry index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KernelId {
    pub module: usize,
    pub entry: usize,
}

/// A launch's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchConfig {
    pub grid: [u32; 3],
    pub block: [u32; 3],
    /// Dynamic shared memory (`extern .shared`) in bytes.
    pub shared_bytes: u32,
}

/// The device.
pub struct Machine {
    pub mem: GlobalMemory,
    modules: Vec<Option<Arc<Module>>>,
    /// Count instructions, memory transactions and bank conflicts per launch.
    pub profiling: bool,
}

impl Default for Machine {
    fn default() -> Self {
        Self::new()
    }
}

impl Machine {
    pub fn new() -> Self {
        Machine {
            mem: GlobalMemory::new(),
            modules: Vec::new(),
            profiling: false,
        }
    }

    /// Load a module from an image: PTX text (NUL-terminated or not). Anything else (a CUBIN,
    /// a fatbin) is refused with [`EmuError::NotPtx`]. Initialised `.global` variables are
    /// allocated in device memory now.
    pub fn load_module(&mut self, image: &[u8]) -> EmuResult<usize> {
        if image.starts_with(b"\x7fELF") {
            return Err(EmuError::NotPtx(
                "an ELF image (CUBIN): machine code for a real GPU; load the PTX instead".into(),
            ));
        }
        let end = image.iter().position(|&b| b == 0).unwrap_or(image.len());
        let text = std::str::from_utf8(&image[..end])
            .map_err(|_| EmuError::NotPtx("neither an ELF image nor UTF-8 PTX text".into()))?;
        if !text.contains(".version") || !text.contains(".target") {
            return Err(EmuError::NotPtx(
                "no .version/.target directive: not PTX".into(),
            ));
        }
        let mut placed = Vec::new();
        let mem = &mut self.mem;
        let parsed = parse::parse_module(text, &mut |g| {
            let ptr = mem.alloc(g.init.len().max(1))?;
            placed.push(ptr);
            mem.write(ptr, &g.init)?;
            Ok(ptr)
        });
        let module = match parsed {
            Ok(m) => m,
            Err(e) => {
                for p in placed {
                    self.mem.free(p)?;
                }
                return Err(e);
            }
        };
        self.modules.push(Some(Arc::new(module)));
        Ok(self.modules.len() - 1)
    }

    /// Unload a module (its globals are freed).
    pub fn unload_module(&mut self, module: usize) -> EmuResult<()> {
        let m = self
            .modules
            .get_mut(module)
            .and_then(|m| m.take())
            .ok_or_else(|| EmuError::Invalid(format!("no module {module}")))?;
        for g in &m.globals {
            self.mem.free(g.address)?;
        }
        Ok(())
    }

    pub fn module(&self, module: usize) -> EmuResult<&Arc<Module>> {
        self.modules
            .get(module)
            .and_then(|m| m.as_ref())
            .ok_or_else(|| EmuError::Invalid(format!("no module {module}")))
    }

    /// The kernel called `name` in `module`.
    pub fn function(&self, module: usize, name: &str) -> EmuResult<KernelId> {
        let m = self.module(module)?;
        let entry = m
            .kernels
            .iter()
            .position(|k| k.name == name)
            .ok_or_else(|| EmuError::NotFound(format!("no kernel named {name} in the module")))?;
        Ok(KernelId { module, entry })
    }

    /// The byte size of each parameter of a kernel, in order.
    pub fn param_sizes(&self, k: KernelId) -> EmuResult<Vec<usize>> {
        let m = self.module(k.module)?;
        Ok(m.kernels[k.entry].params.iter().map(|p| p.size).collect())
    }

    /// The kernel's name.
    pub fn kernel_name(&self, k: KernelId) -> EmuResult<String> {
        Ok(self.module(k.module)?.kernels[k.entry].name.clone())
    }

    /// Static shared memory of a kernel in bytes.
    pub fn static_shared_bytes(&self, k: KernelId) -> EmuResult<u32> {
        Ok(self.module(k.module)?.kernels[k.entry].shared_bytes)
    }

    /// Local memory (stack) per thread in bytes.
    pub fn local_bytes(&self, k: KernelId) -> EmuResult<u32> {
        Ok(self.module(k.module)?.kernels[k.entry].local_bytes)
    }

    /// Number of virtual registers a kernel declares (reported as its register count).
    pub fn register_count(&self, k: KernelId) -> EmuResult<u32> {
        Ok(self.module(k.module)?.kernels[k.entry].num_regs as u32)
    }

    /// A `.global` variable of the module: (device address, size in bytes).
    pub fn global_symbol(&self, module: usize, name: &str) -> EmuResult<(u64, usize)> {
        let m = self.module(module)?;
        m.globals
            .iter()
            .find(|g| g.name == name)
            .map(|g| (g.address, g.init.len()))
            .ok_or_else(|| EmuError::NotFound(format!("no global named {name} in the module")))
    }

    /// Check a launch against the device's and the kernel's limits and its parameter buffer
    /// against the kernel's signature (one slice per parameter, each of the declared size).
    pub fn check_launch(&self, k: KernelId, cfg: &LaunchConfig, params: &[&[u8]]) -> EmuResult<()> {
        use limits::*;
        let kernel = &self.module(k.module)?.kernels[k.entry];
        let bad = |s: String| Err(EmuError::InvalidLaunch(format!("{}: {s}", kernel.name)));
        for d in 0..3 {
            if cfg.block[d] == 0 || cfg.grid[d] == 0 {
                return bad(format!(
                    "grid {:?} block {:?} has a zero dimension",
                    cfg.grid, cfg.block
                ));
            }
            if cfg.block[d] > MAX_BLOCK_DIM[d] {
                return bad(format!(
                    "block {:?}: dimension {d} exceeds {}",
                    cfg.block, MAX_BLOCK_DIM[d]
                ));
            }
            if cfg.grid[d] > MAX_GRID_DIM[d] {
                return bad(format!(
                    "grid {:?}: dimension {d} exceeds {}",
                    cfg.grid, MAX_GRID_DIM[d]
                ));
            }
        }
        let threads = cfg.block.iter().map(|&x| x as u64).product::<u64>();
        let max_threads = kernel.max_ntid.unwrap_or(MAX_THREADS_PER_BLOCK) as u64;
        if threads > max_threads {
            return bad(format!(
                "block {:?} has {threads} threads, more than the {max_threads} allowed",
                cfg.block
            ));
        }
        let shared = kernel.shared_bytes as u64 + cfg.shared_bytes as u64;
        if shared > MAX_SHARED_PER_BLOCK as u64 {
            return bad(format!(
                "{shared} bytes of shared memory ({} static + {} dynamic), more than {}",
                kernel.shared_bytes, cfg.shared_bytes, MAX_SHARED_PER_BLOCK
            ));
        }
        if params.len() != kernel.params.len() {
            return bad(format!(
                "{} parameters passed, the kernel takes {}",
                params.len(),
                kernel.params.len()
            ));
        }
        for (i, (p, decl)) in params.iter().zip(&kernel.params).enumerate() {
            if p.len() != decl.size {
                return bad(format!(
                    "parameter {i} ({}) is {} bytes, the kernel declares {}",
                    decl.name,
                    p.len(),
                    decl.size
                ));
            }
        }
        Ok(())
    }

    /// Run a kernel to completion. `params` holds each parameter's bytes.
    pub fn launch(
        &mut self,
        k: KernelId,
        cfg: &LaunchConfig,
        params: &[&[u8]],
    ) -> EmuResult<LaunchProfile> {
        self.check_launch(k, cfg, params)?;
        let module = self.module(k.module)?.clone();
        let kernel = &module.kernels[k.entry];
        let mut buf = vec![0u8; kernel.param_bytes];
        for (p, decl) in params.iter().zip(&kernel.params) {
            buf[decl.offset..decl.offset + decl.size].copy_from_slice(p);
        }
        exec::run_kernel(&module, kernel, &mut self.mem, cfg, &buf, self.profiling)
    }
}

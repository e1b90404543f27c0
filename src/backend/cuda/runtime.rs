//! The CUDA runtime under [`super::CudaStorage`]: one per device ordinal, created on first use and
//! kept for the life of the process.
//!
//! What it holds:
//! - the device's primary context and ONE non-blocking stream. Every kernel, copy and memset of the
//!   backend is queued on that stream, so stream order alone makes them correct; cudarc's per-buffer
//!   event tracking is switched off before anything is allocated (it would cost two event records
//!   per launch and buys nothing with one stream);
//! - the kernel modules, compiled lazily by NVRTC from the sources embedded in the binary
//!   (`include_str!` of `kernels/*.cu`; the headers `common.cuh` and `philox.cuh` are handed to
//!   NVRTC as named headers, so nothing is read from disk at run time). Each module is compiled
//!   to a CUBIN for the device's own `sm_XY` and loaded with `cuModuleLoadData`; PTX is used
//!   when the installed NVRTC does not know the device's architecture (then the driver JITs it)
//!   and when the driver refuses the CUBIN as no binary for its GPU (the PTX interpreter of
//!   `ptxemu/`, which runs this backend on machines without a GPU);
//! - the caching allocator ([`super::alloc`]) and a pinned staging ring for host→device uploads.
//!
//! Synchronisation: ops only enqueue work. The host waits for the device in exactly three places:
//! [`CudaRuntime::synchronize`] (used by `to_vec`), a pageable upload larger than half the staging
//! ring, and a staging-ring wrap that catches up with copies still in flight.
//!
//! [`compile_program`] / [`compile_cubin`] need only libnvrtc (no driver, no GPU); the kernel
//! compile test (`tests/kernels_compile.rs`) uses them on machines without a GPU.

use super::alloc::{AllocStats, CachingAllocator, DeviceBuffer};
use crate::{Error, Result};
use cudarc::driver::sys::CUresult;
use cudarc::driver::{CudaContext, CudaEvent, CudaFunction, CudaModule, CudaStream, DriverError};
use cudarc::nvrtc::sys as nvrtc_sys;
use cudarc::nvrtc::Ptx;
use std::collections::{HashMap, VecDeque};
use std::ffi::{c_char, CString};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// The headers every kernel may include, by the name used in `#include "…"`.
pub const HEADERS: &[(&str, &str)] = &[
    ("common.cuh", include_str!("../../../kernels/common.cuh")),
    ("philox.cuh", include_str!("../../../kernels/philox.cuh")),
    (
        "vae_common.cuh",
        include_str!("../../../kernels/vae_common.cuh"),
    ),
];

/// The kernel files this backend launches, by file name.
pub const KERNEL_SOURCES: &[(&str, &str)] = &[
    (
        "elementwise.cu",
        include_str!("../../../kernels/elementwise.cu"),
    ),
    ("reduce.cu", include_str!("../../../kernels/reduce.cu")),
    ("softmax.cu", include_str!("../../../kernels/softmax.cu")),
    ("copy.cu", include_str!("../../../kernels/copy.cu")),
    ("index.cu", include_str!("../../../kernels/index.cu")),
    ("loss.cu", include_str!("../../../kernels/loss.cu")),
    ("adam.cu", include_str!("../../../kernels/adam.cu")),
    ("random.cu", include_str!("../../../kernels/random.cu")),
    ("gemm.cu", include_str!("../../../kernels/gemm.cu")),
    ("conv.cu", include_str!("../../../kernels/conv.cu")),
    // The fused VAE kernels (their launchers live with the VAE ops).
    ("reparam.cu", include_str!("../../../kernels/reparam.cu")),
    ("gumbel.cu", include_str!("../../../kernels/gumbel.cu")),
    ("elbo.cu", include_str!("../../../kernels/elbo.cu")),
    ("mixup.cu", include_str!("../../../kernels/mixup.cu")),
];

/// Arithmetic used by the GEMM kernels.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum GemmPrecision {
    /// Plain f32 FMA on the CUDA cores (the default; matches the CPU to ~1e-6 relative).
    #[default]
    F32,
    /// Tensor cores: operands rounded to TF32 (10-bit mantissa), f32 accumulation
    /// (`mma.sync.m16n8k8`, sm_80+). Roughly 1e-3 relative error; not used unless asked for.
    Tf32,
}

/// An [`Error::Cuda`] for a driver call that failed in `what`.
pub(crate) fn driver_err(what: &str, e: DriverError) -> Error {
    Error::Cuda(format!("{what}: {e}"))
}

fn nvrtc_err(what: &str, r: nvrtc_sys::nvrtcResult) -> Error {
    Error::Cuda(format!("{what}: NVRTC returned {r:?}"))
}

/// Whether libnvrtc can be loaded (checked once; cudarc panics on first use when it cannot).
pub fn nvrtc_available() -> bool {
    static P: OnceLock<bool> = OnceLock::new();
    *P.get_or_init(|| unsafe { nvrtc_sys::is_culib_present() })
}

/// Whether libcuda (the driver) can be loaded.
pub fn driver_available() -> bool {
    static P: OnceLock<bool> = OnceLock::new();
    *P.get_or_init(|| unsafe { cudarc::driver::sys::is_culib_present() })
}

/// Number of CUDA devices, or why CUDA cannot be used here. Looks for libcuda and libnvrtc before
/// any other cudarc call, so it never panics.
pub fn cuda_status() -> std::result::Result<usize, String> {
    if !driver_available() {
        return Err(
            "libcuda (the NVIDIA driver library) was not found by the dynamic loader".into(),
        );
    }
    if !nvrtc_available() {
        return Err(
            "libnvrtc was not found by the dynamic loader (run scripts/install-nvrtc.sh \
                    and put the printed folder on LD_LIBRARY_PATH)"
                .into(),
        );
    }
    match CudaContext::device_count() {
        Ok(0) => Err("the CUDA driver reports no device".into()),
        Ok(n) => Ok(n as usize),
        Err(e) => Err(format!("the CUDA driver cannot start: {e}")),
    }
}

/// The name the stand-in driver of `ptxemu/` gives its one device: a PTX interpreter, not a GPU.
pub const EMULATOR_NAME_PREFIX: &str = "ptxemu";

/// Whether CUDA device `ordinal` is the PTX interpreter (the stand-in libcuda of `ptxemu/`)
/// rather than a GPU. Call only after [`cuda_status`] succeeded.
pub fn is_emulated(ordinal: usize) -> bool {
    cudarc::driver::result::device::get(ordinal as i32)
        .and_then(cudarc::driver::result::device::get_name)
        .is_ok_and(|n| n.starts_with(EMULATOR_NAME_PREFIX))
}

/// NVRTC's (major, minor) version.
pub fn nvrtc_version() -> Result<(i32, i32)> {
    if !nvrtc_available() {
        return Err(Error::Cuda("libnvrtc not found".into()));
    }
    let (mut major, mut minor) = (0, 0);
    let r = unsafe { nvrtc_sys::nvrtcVersion(&mut major, &mut minor) };
    if r != nvrtc_sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(nvrtc_err("nvrtcVersion", r));
    }
    Ok((major, minor))
}

/// The CUDA version the driver supports, e.g. 13000 for 13.0.
pub fn driver_version() -> Result<i32> {
    if !driver_available() {
        return Err(Error::Cuda("libcuda not found".into()));
    }
    let mut v = 0;
    unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut v) }
        .result()
        .map_err(|e| driver_err("cuDriverGetVersion", e))?;
    Ok(v)
}

/// The architectures NVRTC can compile for, as numbers (e.g. 90 for sm_90).
pub fn nvrtc_supported_archs() -> Result<Vec<i32>> {
    if !nvrtc_available() {
        return Err(Error::Cuda("libnvrtc not found".into()));
    }
    let mut n = 0;
    let r = unsafe { nvrtc_sys::nvrtcGetNumSupportedArchs(&mut n) };
    if r != nvrtc_sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(nvrtc_err("nvrtcGetNumSupportedArchs", r));
    }
    let mut archs = vec![0i32; n.max(0) as usize];
    let r = unsafe { nvrtc_sys::nvrtcGetSupportedArchs(archs.as_mut_ptr()) };
    if r != nvrtc_sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(nvrtc_err("nvrtcGetSupportedArchs", r));
    }
    Ok(archs)
}

/// What NVRTC produced for one source.
#[derive(Clone, Debug, Default)]
pub struct Compiled {
    /// The CUBIN (empty when compiled for a virtual `compute_XY` architecture).
    pub cubin: Vec<u8>,
    /// The PTX.
    pub ptx: String,
    /// The compile log (warnings, and the ptxas report when `-Xptxas=-v` was given).
    pub log: String,
}

/// The options the runtime compiles with for `arch` (`sm_90`, or `compute_90` for PTX only).
pub fn default_options(arch: &str) -> Vec<String> {
    vec![
        format!("--gpu-architecture={arch}"),
        "--std=c++17".into(),
        "-lineinfo".into(),
        "--device-as-default-execution-space".into(),
    ]
}

/// Compile `source` (file `name`) for `arch` with the runtime's options and the embedded headers:
/// returns the CUBIN and the compile log. Needs libnvrtc only (no driver, no GPU).
pub fn compile_cubin(source: &str, name: &str, arch: &str) -> Result<(Vec<u8>, String)> {
    let c = compile_program(source, name, HEADERS, &default_options(arch))?;
    Ok((c.cubin, c.log))
}

fn c_string(what: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::Cuda(format!("{what} contains a NUL byte")))
}

fn log_of(prog: nvrtc_sys::nvrtcProgram) -> String {
    let mut size = 0usize;
    if unsafe { nvrtc_sys::nvrtcGetProgramLogSize(prog, &mut size) }
        != nvrtc_sys::nvrtcResult::NVRTC_SUCCESS
    {
        return "<no log: nvrtcGetProgramLogSize failed>".into();
    }
    let mut buf = vec![0u8; size.max(1)];
    if unsafe { nvrtc_sys::nvrtcGetProgramLog(prog, buf.as_mut_ptr() as *mut c_char) }
        != nvrtc_sys::nvrtcResult::NVRTC_SUCCESS
    {
        return "<no log: nvrtcGetProgramLog failed>".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).trim_end().to_string()
}

/// Compile one CUDA source with NVRTC. `headers` are (include name, source) pairs resolved by
/// `#include "name"`; `options` are passed to NVRTC unchanged. An error carries the file name and
/// NVRTC's full log.
pub fn compile_program(
    source: &str,
    name: &str,
    headers: &[(&str, &str)],
    options: &[String],
) -> Result<Compiled> {
    if !nvrtc_available() {
        return Err(Error::Cuda(format!(
            "cannot compile {name}: libnvrtc was not found by the dynamic loader"
        )));
    }
    let src = c_string(name, source)?;
    let cname = c_string(name, name)?;
    let mut hdr_src = Vec::with_capacity(headers.len());
    let mut hdr_name = Vec::with_capacity(headers.len());
    for (n, s) in headers {
        hdr_src.push(c_string(n, s)?);
        hdr_name.push(c_string(n, n)?);
    }
    let hdr_src_ptrs: Vec<*const c_char> = hdr_src.iter().map(|s| s.as_ptr()).collect();
    let hdr_name_ptrs: Vec<*const c_char> = hdr_name.iter().map(|s| s.as_ptr()).collect();
    let opts: Vec<CString> = options
        .iter()
        .map(|o| c_string("an NVRTC option", o))
        .collect::<Result<_>>()?;
    let opt_ptrs: Vec<*const c_char> = opts.iter().map(|s| s.as_ptr()).collect();

    let mut prog: nvrtc_sys::nvrtcProgram = std::ptr::null_mut();
    let r = unsafe {
        nvrtc_sys::nvrtcCreateProgram(
            &mut prog,
            src.as_ptr(),
            cname.as_ptr(),
            headers.len() as i32,
            if headers.is_empty() {
                std::ptr::null()
            } else {
                hdr_src_ptrs.as_ptr()
            },
            if headers.is_empty() {
                std::ptr::null()
            } else {
                hdr_name_ptrs.as_ptr()
            },
        )
    };
    if r != nvrtc_sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(nvrtc_err(&format!("nvrtcCreateProgram({name})"), r));
    }
    // From here on the program must be destroyed whatever happens.
    let out = (|| {
        let r = unsafe {
            nvrtc_sys::nvrtcCompileProgram(prog, opt_ptrs.len() as i32, opt_ptrs.as_ptr())
        };
        let log = log_of(prog);
        if r != nvrtc_sys::nvrtcResult::NVRTC_SUCCESS {
            return Err(Error::Cuda(format!(
                "NVRTC failed to compile {name} ({r:?}) with options {options:?}:\n{log}"
            )));
        }
        let mut ptx_size = 0usize;
        let r = unsafe { nvrtc_sys::nvrtcGetPTXSize(prog, &mut ptx_size) };
        if r != nvrtc_sys::nvrtcResult::NVRTC_SUCCESS {
            return Err(nvrtc_err(&format!("nvrtcGetPTXSize({name})"), r));
        }
        let mut ptx = vec![0u8; ptx_size.max(1)];
        let r = unsafe { nvrtc_sys::nvrtcGetPTX(prog, ptx.as_mut_ptr() as *mut c_char) };
        if r != nvrtc_sys::nvrtcResult::NVRTC_SUCCESS {
            return Err(nvrtc_err(&format!("nvrtcGetPTX({name})"), r));
        }
        let end = ptx.iter().position(|&b| b == 0).unwrap_or(ptx.len());
        let ptx = String::from_utf8_lossy(&ptx[..end]).into_owned();
        let mut cubin_size = 0usize;
        let r = unsafe { nvrtc_sys::nvrtcGetCUBINSize(prog, &mut cubin_size) };
        let cubin = if r == nvrtc_sys::nvrtcResult::NVRTC_SUCCESS && cubin_size > 0 {
            let mut cubin = vec![0u8; cubin_size];
            let r = unsafe { nvrtc_sys::nvrtcGetCUBIN(prog, cubin.as_mut_ptr() as *mut c_char) };
            if r != nvrtc_sys::nvrtcResult::NVRTC_SUCCESS {
                return Err(nvrtc_err(&format!("nvrtcGetCUBIN({name})"), r));
            }
            cubin
        } else {
            Vec::new()
        };
        Ok(Compiled { cubin, ptx, log })
    })();
    unsafe { nvrtc_sys::nvrtcDestroyProgram(&mut prog) };
    out
}

/// Launch kernel `$func` of file `$file` on the runtime's stream with `$cfg`, pushing each
/// argument (a reference to a device pointer `u64`, a scalar, or a `#[repr(C)]` struct that
/// implements `DeviceRepr`) in order. Evaluates to `Result<()>`.
macro_rules! launch {
    ($rt:expr, $file:expr, $func:expr, $cfg:expr, $($arg:expr),* $(,)?) => {{
        use cudarc::driver::PushKernelArg as _;
        let rt: &$crate::backend::cuda::runtime::CudaRuntime = &$rt;
        let f = rt.function($file, $func)?;
        let mut b = rt.stream().launch_builder(&f);
        $( b.arg($arg); )*
        // SAFETY: the argument list matches the kernel's signature in kernels/$file, and every
        // pointer refers to a live buffer of the size the kernel indexes (checked by the caller).
        unsafe { b.launch($cfg) }
            .map(|_| ())
            .map_err(|e| $crate::backend::cuda::runtime::driver_err(&format!("launch {}: {}", $file, $func), e))
    }};
}
pub(crate) use launch;

/// The pinned host ring that uploads go through, so that `cuMemcpyHtoDAsync` is truly
/// asynchronous (from pageable memory the driver would first wait for the stream).
struct Staging {
    base: *mut u8,
    cap: usize,
    head: usize,
    inflight: VecDeque<(usize, usize, CudaEvent)>,
    spare: Vec<CudaEvent>,
}

// SAFETY: the pinned pointer is only touched under the runtime's mutex.
unsafe impl Send for Staging {}

const STAGING_BYTES: usize = 8 << 20;

/// One device: context, stream, compiled modules, allocator, staging ring.
pub struct CudaRuntime {
    ordinal: usize,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    cc: (i32, i32),
    sm_count: u32,
    /// `sm_XY` (CUBIN) or `compute_XY` (PTX, when NVRTC does not know the device).
    arch: String,
    name: String,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    functions: Mutex<HashMap<(&'static str, &'static str), CudaFunction>>,
    pub(crate) allocator: CachingAllocator,
    staging: Mutex<Staging>,
    gemm_precision: AtomicU8,
}

impl std::fmt::Debug for CudaRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CudaRuntime(cuda:{}, {}, {})",
            self.ordinal, self.name, self.arch
        )
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked while holding it; the maps stay valid.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl CudaRuntime {
    /// The runtime of device `ordinal`, created on first call.
    pub fn get(ordinal: usize) -> Result<Arc<CudaRuntime>> {
        static ALL: OnceLock<Mutex<HashMap<usize, Arc<CudaRuntime>>>> = OnceLock::new();
        let all = ALL.get_or_init(|| Mutex::new(HashMap::new()));
        let mut all = lock(all);
        if let Some(rt) = all.get(&ordinal) {
            return Ok(rt.clone());
        }
        let rt = Arc::new(Self::new(ordinal)?);
        all.insert(ordinal, rt.clone());
        Ok(rt)
    }

    fn new(ordinal: usize) -> Result<CudaRuntime> {
        let count = cuda_status().map_err(|why| Error::Device(format!("cuda:{ordinal}: {why}")))?;
        if ordinal >= count {
            return Err(Error::Device(format!(
                "cuda:{ordinal} requested but the driver reports {count} device(s)"
            )));
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| driver_err("CudaContext::new", e))?;
        // One stream, so no per-buffer events; must come before any allocation.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx
            .new_stream()
            .map_err(|e| driver_err("cuStreamCreate", e))?;
        let cc = ctx
            .compute_capability()
            .map_err(|e| driver_err("compute capability", e))?;
        let name = ctx.name().unwrap_or_else(|_| "?".into());
        let sm_count = ctx
            .attribute(
                cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
            )
            .map_err(|e| driver_err("multiprocessor count", e))?
            .max(1) as u32;
        let want = cc.0 * 10 + cc.1;
        let archs = nvrtc_supported_archs()?;
        let arch = if archs.contains(&want) {
            format!("sm_{want}")
        } else {
            match archs.iter().filter(|&&a| a <= want).max() {
                Some(a) => format!("compute_{a}"),
                None => {
                    return Err(Error::Cuda(format!(
                        "NVRTC supports {archs:?}, nothing usable for sm_{want} ({name})"
                    )))
                }
            }
        };
        Ok(CudaRuntime {
            ordinal,
            ctx,
            stream,
            cc,
            sm_count,
            arch,
            name,
            modules: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
            allocator: CachingAllocator::default(),
            staging: Mutex::new(Staging {
                base: std::ptr::null_mut(),
                cap: STAGING_BYTES,
                head: 0,
                inflight: VecDeque::new(),
                spare: Vec::new(),
            }),
            gemm_precision: AtomicU8::new(0),
        })
    }

    /// The device ordinal.
    pub fn ordinal(&self) -> usize {
        self.ordinal
    }
    /// (major, minor) compute capability.
    pub fn compute_capability(&self) -> (i32, i32) {
        self.cc
    }
    /// Number of streaming multiprocessors.
    pub fn sm_count(&self) -> u32 {
        self.sm_count
    }
    /// The target kernels are compiled for (`sm_90` …).
    pub fn arch(&self) -> &str {
        &self.arch
    }
    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The context.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }
    /// The one stream all work goes to.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The precision `matmul` uses (F32 unless changed).
    pub fn gemm_precision(&self) -> GemmPrecision {
        match self.gemm_precision.load(Ordering::Relaxed) {
            1 => GemmPrecision::Tf32,
            _ => GemmPrecision::F32,
        }
    }
    /// Change the precision `matmul` uses on this device.
    pub fn set_gemm_precision(&self, p: GemmPrecision) {
        self.gemm_precision
            .store(matches!(p, GemmPrecision::Tf32) as u8, Ordering::Relaxed);
    }

    /// Bind the context to the calling thread (raw driver calls need it).
    pub(crate) fn bind(&self) -> Result<()> {
        self.ctx
            .bind_to_thread()
            .map_err(|e| driver_err("cuCtxSetCurrent", e))
    }

    /// Kernel `func` of file `file` (one of [`KERNEL_SOURCES`]), compiling the file on first use.
    pub fn function(&self, file: &'static str, func: &'static str) -> Result<CudaFunction> {
        let mut fns = lock(&self.functions);
        if let Some(f) = fns.get(&(file, func)) {
            return Ok(f.clone());
        }
        let module = self.module(file)?;
        let f = module
            .load_function(func)
            .map_err(|e| driver_err(&format!("cuModuleGetFunction({file}: {func})"), e))?;
        fns.insert((file, func), f.clone());
        Ok(f)
    }

    fn module(&self, file: &'static str) -> Result<Arc<CudaModule>> {
        let mut mods = lock(&self.modules);
        if let Some(m) = mods.get(file) {
            return Ok(m.clone());
        }
        let src = KERNEL_SOURCES
            .iter()
            .find(|(n, _)| *n == file)
            .map(|(_, s)| *s)
            .ok_or_else(|| Error::Cuda(format!("no embedded kernel source named {file}")))?;
        let c = compile_program(src, file, HEADERS, &default_options(&self.arch))?;
        // A driver that cannot run this machine code answers NO_BINARY_FOR_GPU: the PTX
        // interpreter behind the stand-in libcuda (ptxemu/) does, as would a device whose real
        // architecture differs from the one it reported. Its PTX then goes in instead.
        let image = if c.cubin.is_empty() {
            Ptx::from_src(c.ptx.clone())
        } else {
            Ptx::from_binary(c.cubin)
        };
        let m = match self.ctx.load_module(image) {
            Err(DriverError(CUresult::CUDA_ERROR_NO_BINARY_FOR_GPU)) => {
                self.ctx.load_module(Ptx::from_src(c.ptx))
            }
            loaded => loaded,
        }
        .map_err(|e| driver_err(&format!("cuModuleLoadData({file}, {})", self.arch), e))?;
        mods.insert(file, m.clone());
        Ok(m)
    }

    /// Compile and load every kernel file now (instead of on first use).
    pub fn warm_up(&self) -> Result<()> {
        for (file, _) in KERNEL_SOURCES {
            self.module(file)?;
        }
        Ok(())
    }

    /// A device buffer of at least `bytes` bytes from the caching allocator (uninitialised).
    pub fn alloc_bytes(self: &Arc<Self>, bytes: usize) -> Result<DeviceBuffer> {
        if bytes == 0 {
            return Ok(DeviceBuffer::empty(self.clone()));
        }
        self.bind()?;
        let (ptr, bucket) = self.allocator.alloc(bytes, || self.synchronize())?;
        Ok(DeviceBuffer::new(self.clone(), ptr, bucket))
    }

    /// Allocator counters (device allocations, cache hits, bytes).
    pub fn alloc_stats(&self) -> AllocStats {
        self.allocator.stats()
    }

    /// Wait for the stream, then give every cached (unused) buffer back to the driver.
    pub fn empty_cache(&self) -> Result<()> {
        self.synchronize()?;
        self.allocator.empty_cache()
    }

    /// Block the host until all queued work is done; reports any error of an earlier launch.
    pub fn synchronize(&self) -> Result<()> {
        self.bind()?;
        self.stream
            .synchronize()
            .map_err(|e| driver_err("cuStreamSynchronize (an earlier kernel failed?)", e))?;
        self.ctx
            .check_err()
            .map_err(|e| driver_err("deferred driver error", e))
    }

    /// Queue `cuMemsetD8Async(ptr, 0, bytes)`.
    pub fn memset_zero(&self, ptr: u64, bytes: usize) -> Result<()> {
        if bytes == 0 {
            return Ok(());
        }
        self.bind()?;
        unsafe { cudarc::driver::result::memset_d8_async(ptr, 0, bytes, self.stream.cu_stream()) }
            .map_err(|e| driver_err("cuMemsetD8Async", e))
    }

    /// Queue a device→device copy of `bytes` bytes.
    pub fn copy_dtod(&self, dst: u64, src: u64, bytes: usize) -> Result<()> {
        if bytes == 0 {
            return Ok(());
        }
        self.bind()?;
        unsafe {
            cudarc::driver::result::memcpy_dtod_async(dst, src, bytes, self.stream.cu_stream())
        }
        .map_err(|e| driver_err("cuMemcpyDtoDAsync", e))
    }

    /// Queue a host→device copy of `data` to `dst`. Small copies go through the pinned staging
    /// ring (no host wait); copies over half the ring go straight from pageable memory.
    pub fn upload_bytes(&self, data: &[u8], dst: u64) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.bind()?;
        let stream = self.stream.cu_stream();
        if data.len() > STAGING_BYTES / 2 {
            return unsafe { cudarc::driver::result::memcpy_htod_async(dst, data, stream) }
                .map_err(|e| driver_err("cuMemcpyHtoDAsync", e));
        }
        let mut st = lock(&self.staging);
        if st.base.is_null() {
            let p = unsafe { cudarc::driver::result::malloc_host(st.cap, 0) }
                .map_err(|e| driver_err("cuMemHostAlloc (staging ring)", e))?;
            st.base = p as *mut u8;
        }
        let len = data.len().div_ceil(256) * 256;
        if st.head + len > st.cap {
            st.head = 0;
        }
        let (lo, hi) = (st.head, st.head + len);
        // Wait for (oldest first) every earlier copy whose region we are about to overwrite.
        while st.inflight.iter().any(|(s, e, _)| *s < hi && lo < *e) {
            if let Some((_, _, ev)) = st.inflight.pop_front() {
                ev.synchronize()
                    .map_err(|e| driver_err("cuEventSynchronize (staging)", e))?;
                st.spare.push(ev);
            }
        }
        // SAFETY: [lo, lo + data.len()) lies inside the pinned ring and no queued copy reads it.
        let region = unsafe {
            let p = st.base.add(lo);
            std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len());
            std::slice::from_raw_parts(p as *const u8, data.len())
        };
        unsafe { cudarc::driver::result::memcpy_htod_async(dst, region, stream) }
            .map_err(|e| driver_err("cuMemcpyHtoDAsync (staged)", e))?;
        let ev = match st.spare.pop() {
            Some(ev) => ev,
            None => self
                .ctx
                .new_event(None)
                .map_err(|e| driver_err("cuEventCreate", e))?,
        };
        ev.record(&self.stream)
            .map_err(|e| driver_err("cuEventRecord", e))?;
        st.inflight.push_back((lo, hi, ev));
        st.head = hi;
        Ok(())
    }

    /// Upload plain-old-data values into a fresh device buffer.
    pub fn upload<T: bytemuck::Pod>(self: &Arc<Self>, data: &[T]) -> Result<DeviceBuffer> {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let buf = self.alloc_bytes(bytes.len())?;
        self.upload_bytes(bytes, buf.ptr())?;
        Ok(buf)
    }

    /// Copy `n` f32 from `src` to the host; waits for the stream (the one sync point of the ops).
    pub fn download_f32(&self, src: u64, n: usize) -> Result<Vec<f32>> {
        let mut out = vec![0f32; n];
        self.synchronize()?;
        if n > 0 {
            unsafe {
                cudarc::driver::result::memcpy_dtoh_async(&mut out, src, self.stream.cu_stream())
            }
            .map_err(|e| driver_err("cuMemcpyDtoHAsync", e))?;
            self.synchronize()?;
        }
        Ok(out)
    }
}

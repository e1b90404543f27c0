//! The stand-in `libcuda`: the CUDA driver API, as C functions, over one [`Machine`].
//!
//! Built as a `cdylib` and installed as `libcuda.so`/`libcuda.so.1`, this module *is* the driver
//! that cudarc (which `dlopen`s libcuda and resolves each `cu*` symbol by name on first use) and
//! NVRTC load. Every symbol that ssvae's CUDA backend reaches through cudarc's safe API and the
//! `cudarc::driver::result` functions it calls is exported here with the exact name (`_v2`
//! suffixes included) and C signature of `cuda.h`; a symbol missing here would make cudarc panic.
//!
//! # The device is synchronous
//!
//! [`cuLaunchKernel`] runs the kernel to completion (through [`Machine::launch`]) before it
//! returns, and every copy and memset is done when its call returns, `Async` or not. So:
//! - streams need no queue: a stream is only a handle to validate, [`cuStreamSynchronize`],
//!   [`cuStreamQuery`] and [`cuStreamWaitEvent`] have nothing to wait for, and
//!   [`cuCtxSynchronize`]/[`cuEventSynchronize`] likewise. They are not dead no-ops: they are
//!   where an earlier kernel's fault is reported (below);
//! - an event records the host time at [`cuEventRecord`], so [`cuEventElapsedTime`] gives the
//!   real wall time between two records, and [`cuEventQuery`] is always complete;
//! - `cuMemAllocAsync`/`cuMemFreeAsync` are plain allocations (`MEMORY_POOLS_SUPPORTED` is 0, so
//!   cudarc uses `cuMemAlloc_v2` anyway).
//!
//! # Errors, and the sticky fault
//!
//! A refused call returns its code at once and leaves the context usable: invalid arguments and
//! launch configurations ([`EmuError::Invalid`], [`EmuError::InvalidLaunch`], [`EmuError::BadCopy`]:
//! `CUDA_ERROR_INVALID_VALUE`, or `CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES` for a block larger than the
//! kernel's `.maxntid`, as the real driver reports a launch-bounds violation), unknown handles
//! (`CUDA_ERROR_INVALID_HANDLE`), images (`CUDA_ERROR_NO_BINARY_FOR_GPU` for an ELF CUBIN, so the
//! caller can fall back to PTX; `CUDA_ERROR_INVALID_IMAGE` for anything else that is not PTX;
//! `CUDA_ERROR_INVALID_PTX` for PTX that does not parse), `CUDA_ERROR_NOT_FOUND`,
//! `CUDA_ERROR_OUT_OF_MEMORY`.
//!
//! A kernel fault ([`EmuError::Fault`]) behaves like an asynchronous kernel error on a GPU: the
//! launch itself returns `CUDA_SUCCESS`, the fault is printed to stderr at once (a
//! compute-sanitizer-like `========= ptxemu: …` block), and it becomes the context's sticky
//! error: every later call that does work on the context (synchronise, copy, allocate, launch,
//! create or destroy a stream, event or module…) returns it, until the primary context is reset
//! (`cuDevicePrimaryCtxReset_v2`) or released to a count of zero. Codes: out of bounds →
//! `CUDA_ERROR_ILLEGAL_ADDRESS` (700), misaligned → `CUDA_ERROR_MISALIGNED_ADDRESS` (716), an
//! instruction the interpreter does not implement → `CUDA_ERROR_ILLEGAL_INSTRUCTION` (715) (the
//! device cannot run it), and the checks a GPU has no code for (uninitialised read, shared-memory
//! race, deadlock, trap) → `CUDA_ERROR_LAUNCH_FAILED` (719, "unspecified launch failure").
//! Context bookkeeping (`cuCtxGetCurrent`/`SetCurrent`, device queries) never returns it, so
//! cudarc's `bind_to_thread` still works and the error surfaces from the call that synchronises.
//!
//! [`cuGetErrorString`] returns, for a code this driver returned, the NVIDIA text followed by why
//! (the most recent error of that code, process-wide): for the sticky code the full fault text
//! (kernel, block, thread, PTX line, CUDA source line, detail), so cudarc's `DriverError`, whose
//! `Display` calls it, carries the fault into ssvae's `Result` errors. The strings are interned and
//! never freed, so every pointer handed out stays valid.
//!
//! # State
//!
//! One device (ordinal 0) with one primary context, all behind one `Mutex`: [`cuInit`] creates it;
//! before that every call but the version and error-string queries returns
//! `CUDA_ERROR_NOT_INITIALIZED`. Each thread's current context (a stack, for
//! `cuCtxPushCurrent`/`PopCurrent`) is thread-local; a call that works on the context needs the
//! primary context current and retained (else `CUDA_ERROR_INVALID_CONTEXT`). Handles are opaque
//! non-null integers (a kind tag in bits 40+ and a serial number that is never reused), checked
//! against the tables of live streams, events, modules and functions: an unknown one is
//! `CUDA_ERROR_INVALID_HANDLE`. Releasing the primary context to zero (or resetting it) destroys
//! the device state: memory, modules, streams, events, the sticky error. Pinned host memory
//! (`cuMemHostAlloc`) is real host memory in a table of its own, which outlives the context.
//!
//! # Profiling
//!
//! With `PTXEMU_PROFILE=FILE` in the environment (read by the first `cuInit`), the machine counts
//! and every successful launch appends [`LaunchProfile::csv_row`] to FILE (the header first when
//! the file is new or empty), written at once.
//!
//! Every entry point runs inside [`std::panic::catch_unwind`] (a panic becomes
//! `CUDA_ERROR_UNKNOWN` and a message on stderr, never an unwind across `extern "C"`), checks its
//! pointers, and never aborts the process.

// The C names of the driver API, and its parameter names, are the interface.
#![allow(non_snake_case)]
// Every entry point is `unsafe` for one reason, the C API's contract: the pointers passed must be
// valid for what `cuda.h` documents them as (handles are checked; raw memory cannot be). The
// private `unsafe fn` helpers take those pointers on, under the same contract.
#![allow(clippy::missing_safety_doc)]

use crate::error::{EmuError, FaultKind};
use crate::ir;
use crate::machine::{limits, KernelId, LaunchConfig, Machine};
use crate::memory::TOTAL_BYTES;
use crate::profile::LaunchProfile;
use std::alloc::Layout;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::{c_char, c_int, c_uchar, c_uint, c_void, CStr, CString};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

// ---------------------------------------------------------------------------------------------
// C types and constants of `cuda.h`
// ---------------------------------------------------------------------------------------------

/// `CUresult` (a C enum: an `unsigned int` in the ABI).
pub type CUresult = c_uint;
pub type CUdevice = c_int;
pub type CUdeviceptr = u64;
pub type CUcontext = *mut c_void;
pub type CUstream = *mut c_void;
pub type CUevent = *mut c_void;
pub type CUmodule = *mut c_void;
pub type CUfunction = *mut c_void;

/// `CUuuid`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CUuuid {
    pub bytes: [c_char; 16],
}

/// `CUlaunchAttribute`: an id and a 64-byte union (of which only the id is read).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CUlaunchAttribute {
    pub id: c_uint,
    pub pad: [c_char; 4],
    pub value: [u64; 8],
}

/// `CUlaunchConfig` of `cuLaunchKernelEx`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CUlaunchConfig {
    pub grid_dim_x: c_uint,
    pub grid_dim_y: c_uint,
    pub grid_dim_z: c_uint,
    pub block_dim_x: c_uint,
    pub block_dim_y: c_uint,
    pub block_dim_z: c_uint,
    pub shared_mem_bytes: c_uint,
    pub h_stream: CUstream,
    pub attrs: *mut CUlaunchAttribute,
    pub num_attrs: c_uint,
}

pub const CUDA_SUCCESS: CUresult = 0;
pub const CUDA_ERROR_INVALID_VALUE: CUresult = 1;
pub const CUDA_ERROR_OUT_OF_MEMORY: CUresult = 2;
pub const CUDA_ERROR_NOT_INITIALIZED: CUresult = 3;
pub const CUDA_ERROR_INVALID_DEVICE: CUresult = 101;
pub const CUDA_ERROR_INVALID_IMAGE: CUresult = 200;
pub const CUDA_ERROR_INVALID_CONTEXT: CUresult = 201;
pub const CUDA_ERROR_NO_BINARY_FOR_GPU: CUresult = 209;
pub const CUDA_ERROR_UNSUPPORTED_LIMIT: CUresult = 215;
pub const CUDA_ERROR_INVALID_PTX: CUresult = 218;
pub const CUDA_ERROR_FILE_NOT_FOUND: CUresult = 301;
pub const CUDA_ERROR_INVALID_HANDLE: CUresult = 400;
pub const CUDA_ERROR_NOT_FOUND: CUresult = 500;
pub const CUDA_ERROR_ILLEGAL_ADDRESS: CUresult = 700;
pub const CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES: CUresult = 701;
pub const CUDA_ERROR_ILLEGAL_INSTRUCTION: CUresult = 715;
pub const CUDA_ERROR_MISALIGNED_ADDRESS: CUresult = 716;
pub const CUDA_ERROR_LAUNCH_FAILED: CUresult = 719;
pub const CUDA_ERROR_NOT_SUPPORTED: CUresult = 801;
pub const CUDA_ERROR_UNKNOWN: CUresult = 999;

/// The keys of `cuLaunchKernel`'s `extra` array.
pub const CU_LAUNCH_PARAM_END: usize = 0;
pub const CU_LAUNCH_PARAM_BUFFER_POINTER: usize = 1;
pub const CU_LAUNCH_PARAM_BUFFER_SIZE: usize = 2;

/// The special stream handles: `CU_STREAM_LEGACY` and `CU_STREAM_PER_THREAD` (and NULL, the
/// default stream). On a synchronous device all three are the same.
pub const CU_STREAM_LEGACY: usize = 1;
pub const CU_STREAM_PER_THREAD: usize = 2;

/// The `CUfunction_attribute`s with a value of their own here.
pub const CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK: c_uint = 0;
pub const CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES: c_uint = 1;
pub const CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES: c_uint = 2;
pub const CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES: c_uint = 3;
pub const CU_FUNC_ATTRIBUTE_NUM_REGS: c_uint = 4;
pub const CU_FUNC_ATTRIBUTE_PTX_VERSION: c_uint = 5;
pub const CU_FUNC_ATTRIBUTE_BINARY_VERSION: c_uint = 6;
pub const CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: c_uint = 8;
pub const CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT: c_uint = 9;

/// The CUDA version this driver reports (12.9, the NVRTC the project installs).
pub const DRIVER_VERSION: c_int = 12090;
/// The device's name, saying what it is.
pub const DEVICE_NAME: &str = "ptxemu (PTX interpreter, sm_90)";

/// Code, `cuGetErrorName` and NVIDIA's `cuGetErrorString` of every code this driver returns
/// (and a few a caller may ask about).
const ERRORS: &[(CUresult, &CStr, &CStr)] = &[
    (0, c"CUDA_SUCCESS", c"no error"),
    (1, c"CUDA_ERROR_INVALID_VALUE", c"invalid argument"),
    (2, c"CUDA_ERROR_OUT_OF_MEMORY", c"out of memory"),
    (3, c"CUDA_ERROR_NOT_INITIALIZED", c"initialization error"),
    (4, c"CUDA_ERROR_DEINITIALIZED", c"driver shutting down"),
    (
        100,
        c"CUDA_ERROR_NO_DEVICE",
        c"no CUDA-capable device is detected",
    ),
    (101, c"CUDA_ERROR_INVALID_DEVICE", c"invalid device ordinal"),
    (
        200,
        c"CUDA_ERROR_INVALID_IMAGE",
        c"device kernel image is invalid",
    ),
    (
        201,
        c"CUDA_ERROR_INVALID_CONTEXT",
        c"invalid device context",
    ),
    (
        209,
        c"CUDA_ERROR_NO_BINARY_FOR_GPU",
        c"no kernel image is available for execution on the device",
    ),
    (
        215,
        c"CUDA_ERROR_UNSUPPORTED_LIMIT",
        c"limit is not supported on this architecture",
    ),
    (
        218,
        c"CUDA_ERROR_INVALID_PTX",
        c"a PTX JIT compilation failed",
    ),
    (301, c"CUDA_ERROR_FILE_NOT_FOUND", c"file not found"),
    (
        400,
        c"CUDA_ERROR_INVALID_HANDLE",
        c"invalid resource handle",
    ),
    (500, c"CUDA_ERROR_NOT_FOUND", c"named symbol not found"),
    (600, c"CUDA_ERROR_NOT_READY", c"device not ready"),
    (
        700,
        c"CUDA_ERROR_ILLEGAL_ADDRESS",
        c"an illegal memory access was encountered",
    ),
    (
        701,
        c"CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES",
        c"too many resources requested for launch",
    ),
    (
        715,
        c"CUDA_ERROR_ILLEGAL_INSTRUCTION",
        c"an illegal instruction was encountered",
    ),
    (716, c"CUDA_ERROR_MISALIGNED_ADDRESS", c"misaligned address"),
    (
        719,
        c"CUDA_ERROR_LAUNCH_FAILED",
        c"unspecified launch failure",
    ),
    (801, c"CUDA_ERROR_NOT_SUPPORTED", c"operation not supported"),
    (999, c"CUDA_ERROR_UNKNOWN", c"unknown error"),
];

fn error_entry(code: CUresult) -> Option<&'static (CUresult, &'static CStr, &'static CStr)> {
    ERRORS.iter().find(|e| e.0 == code)
}

/// NVIDIA's text for `code`.
fn nvidia_text(code: CUresult) -> &'static str {
    error_entry(code)
        .and_then(|e| e.2.to_str().ok())
        .unwrap_or("unknown error")
}

/// The sticky code of a kernel fault (see the module documentation).
fn fault_code(kind: FaultKind) -> CUresult {
    match kind {
        FaultKind::OutOfBounds => CUDA_ERROR_ILLEGAL_ADDRESS,
        FaultKind::Misaligned => CUDA_ERROR_MISALIGNED_ADDRESS,
        FaultKind::Unsupported => CUDA_ERROR_ILLEGAL_INSTRUCTION,
        FaultKind::UninitialisedRead
        | FaultKind::SharedRace
        | FaultKind::Deadlock
        | FaultKind::Trap => CUDA_ERROR_LAUNCH_FAILED,
    }
}

// ---------------------------------------------------------------------------------------------
// Errors, their messages, and the common prologue of every entry point
// ---------------------------------------------------------------------------------------------

/// A failed call: its code and why (None: nothing new to say, e.g. the sticky error again).
struct DrvErr {
    code: CUresult,
    msg: Option<String>,
    /// Also print the message to stderr (an illegal copy: the caller's bug, worth seeing even
    /// if the caller drops the error).
    loud: bool,
}

type DrvResult<T = ()> = Result<T, DrvErr>;

impl DrvErr {
    fn new(code: CUresult, msg: impl Into<String>) -> Self {
        DrvErr {
            code,
            msg: Some(msg.into()),
            loud: false,
        }
    }
    fn bare(code: CUresult) -> Self {
        DrvErr {
            code,
            msg: None,
            loud: false,
        }
    }
}

fn invalid(msg: impl Into<String>) -> DrvErr {
    DrvErr::new(CUDA_ERROR_INVALID_VALUE, msg)
}

fn bad_handle(what: &str, h: *mut c_void) -> DrvErr {
    DrvErr::new(
        CUDA_ERROR_INVALID_HANDLE,
        format!("{h:p} is not a live {what} handle"),
    )
}

impl From<EmuError> for DrvErr {
    fn from(e: EmuError) -> Self {
        let code = match &e {
            EmuError::Invalid(_) | EmuError::InvalidLaunch(_) | EmuError::BadCopy(_) => {
                CUDA_ERROR_INVALID_VALUE
            }
            EmuError::NotPtx(_) => CUDA_ERROR_INVALID_IMAGE,
            EmuError::Parse(_) => CUDA_ERROR_INVALID_PTX,
            EmuError::NotFound(_) => CUDA_ERROR_NOT_FOUND,
            EmuError::OutOfMemory(_) => CUDA_ERROR_OUT_OF_MEMORY,
            EmuError::Fault(f) => fault_code(f.kind),
        };
        DrvErr {
            code,
            loud: matches!(e, EmuError::BadCopy(_)),
            msg: Some(e.to_string()),
        }
    }
}

/// Print to stderr; never panics (a closed stderr is ignored).
fn warn(args: fmt::Arguments) {
    let _ = writeln!(std::io::stderr(), "{args}");
}

/// The most recent message of each code, as interned C strings that are never freed.
struct ErrorLog {
    latest: BTreeMap<CUresult, &'static CStr>,
    interned: BTreeSet<&'static CStr>,
}

static ERROR_LOG: Mutex<ErrorLog> = Mutex::new(ErrorLog {
    latest: BTreeMap::new(),
    interned: BTreeSet::new(),
});

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a panic was caught inside a call; the state is still the best there is.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Make `text` what `cuGetErrorString(code)` returns.
fn remember(code: CUresult, text: &str) {
    let c = CString::new(text.replace('\0', " ")).unwrap_or_default();
    let mut log = lock(&ERROR_LOG);
    let s = match log.interned.get(c.as_c_str()) {
        Some(&s) => s,
        None => {
            let s: &'static CStr = Box::leak(c.into_boxed_c_str());
            log.interned.insert(s);
            s
        }
    };
    log.latest.insert(code, s);
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Run the body of entry point `name`: a panic becomes `CUDA_ERROR_UNKNOWN`, an error's message is
/// remembered for `cuGetErrorString`, and the code is returned.
fn guard(name: &'static str, body: impl FnOnce() -> DrvResult) -> CUresult {
    let err = match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return CUDA_SUCCESS,
        Ok(Err(e)) => e,
        Err(payload) => {
            let what = panic_text(&*payload);
            warn(format_args!("ptxemu: {name} panicked: {what}"));
            DrvErr::new(CUDA_ERROR_UNKNOWN, format!("ptxemu panicked: {what}"))
        }
    };
    if let Some(msg) = &err.msg {
        if err.loud {
            warn(format_args!("ptxemu: {name}: {msg}"));
        }
        remember(
            err.code,
            &format!("{}: {name}: {msg}", nvidia_text(err.code)),
        );
    }
    err.code
}

/// What a call needs before its body runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    /// `cuInit` done (device queries, primary-context and current-context bookkeeping).
    Driver,
    /// And the primary context current on this thread and retained (context queries).
    Context,
    /// And no sticky fault (everything that does work on the context).
    Work,
}

/// The prologue of every stateful entry point: [`guard`], lock the driver, check `level`, run.
fn call(name: &'static str, level: Level, body: impl FnOnce(&mut Driver) -> DrvResult) -> CUresult {
    guard(name, || {
        let mut g = lock(&DRIVER);
        let d = g.as_mut().ok_or_else(|| {
            DrvErr::new(CUDA_ERROR_NOT_INITIALIZED, "cuInit(0) has not been called")
        })?;
        if level != Level::Driver {
            d.check_context()?;
        }
        if level == Level::Work {
            if let Some(code) = d.dev.sticky {
                return Err(DrvErr::bare(code));
            }
        }
        body(d)
    })
}

/// An output pointer, checked for NULL before the call does anything (so that a call that fails
/// on it has done nothing).
struct Out<T>(*mut T);

impl<T> Out<T> {
    fn set(self, v: T) {
        // SAFETY: non-null, and valid for a write (the promise made to `out`).
        unsafe { self.0.write(v) }
    }
}

/// # Safety
/// `p` is NULL or valid for writing a `T` (what the C API promises of its output pointers).
unsafe fn out<T>(p: *mut T, what: &str) -> DrvResult<Out<T>> {
    if p.is_null() {
        Err(invalid(format!("{what} is NULL")))
    } else {
        Ok(Out(p))
    }
}

/// Optional output pointers (NULL: not wanted).
///
/// # Safety
/// As [`out`].
unsafe fn out_opt<T>(p: *mut T, v: T) {
    if !p.is_null() {
        Out(p).set(v)
    }
}

// ---------------------------------------------------------------------------------------------
// Driver state
// ---------------------------------------------------------------------------------------------

/// Handle kinds (bits 40 and up of a handle).
#[derive(Clone, Copy)]
enum Kind {
    Context = 1,
    Stream = 2,
    Event = 3,
    Module = 4,
    Function = 5,
}

const fn handle(kind: Kind, serial: usize) -> usize {
    (kind as usize) << 40 | serial
}

/// The primary context's handle (the only context there is).
const PRIMARY: usize = handle(Kind::Context, 1);

struct Event {
    timing: bool,
    recorded: Option<Instant>,
}

#[derive(Clone, Copy)]
struct Function {
    kernel: KernelId,
    module: usize,
    max_dynamic_shared: u32,
    carveout: c_int,
}

/// `CU_LIMIT_*` 0..=6 and their defaults (those of an H100).
const LIMIT_DEFAULTS: [usize; 7] = [1024, 1 << 20, 8 << 20, 2, 2048, 64, 0];

/// The primary context's state, destroyed when it is reset or released to zero.
struct Device {
    machine: Machine,
    sticky: Option<CUresult>,
    streams: HashSet<usize>,
    events: HashMap<usize, Event>,
    /// Module handle → the machine's module slot.
    modules: HashMap<usize, usize>,
    functions: HashMap<usize, Function>,
    limits: [usize; 7],
    cache_config: c_uint,
}

impl Device {
    fn new(profiling: bool) -> Self {
        let mut machine = Machine::new();
        machine.profiling = profiling;
        Device {
            machine,
            sticky: None,
            streams: HashSet::new(),
            events: HashMap::new(),
            modules: HashMap::new(),
            functions: HashMap::new(),
            limits: LIMIT_DEFAULTS,
            cache_config: 0,
        }
    }

    fn stream(&self, s: CUstream) -> DrvResult {
        let h = s as usize;
        if h == 0 || h == CU_STREAM_LEGACY || h == CU_STREAM_PER_THREAD || self.streams.contains(&h)
        {
            Ok(())
        } else {
            Err(bad_handle("stream", s))
        }
    }

    fn event(&mut self, e: CUevent) -> DrvResult<&mut Event> {
        self.events
            .get_mut(&(e as usize))
            .ok_or_else(|| bad_handle("event", e))
    }

    fn module(&self, m: CUmodule) -> DrvResult<usize> {
        self.modules
            .get(&(m as usize))
            .copied()
            .ok_or_else(|| bad_handle("module", m))
    }

    fn function(&self, f: CUfunction) -> DrvResult<Function> {
        self.functions
            .get(&(f as usize))
            .copied()
            .ok_or_else(|| bad_handle("function", f))
    }

    /// The decoded kernel behind a function.
    fn kernel(&self, f: &Function) -> DrvResult<(std::sync::Arc<ir::Module>, usize)> {
        let m = self.machine.module(f.kernel.module)?.clone();
        if f.kernel.entry >= m.kernels.len() {
            return Err(invalid("the function's kernel is gone"));
        }
        Ok((m, f.kernel.entry))
    }
}

struct Driver {
    /// Retain count of the primary context.
    refs: u32,
    /// `cuDevicePrimaryCtxSetFlags` / `cuCtxSetFlags`.
    flags: c_uint,
    dev: Device,
    /// Pinned host allocations: address → layout.
    host: HashMap<usize, Layout>,
    /// `PTXEMU_PROFILE`'s file.
    profile: Option<File>,
    /// The last serial number handed out (never reused, so a stale handle stays invalid).
    serial: usize,
}

static DRIVER: Mutex<Option<Driver>> = Mutex::new(None);

thread_local! {
    /// This thread's context stack (its top is the current context).
    static CURRENT: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

fn with_stack<R>(f: impl FnOnce(&mut Vec<usize>) -> R) -> DrvResult<R> {
    CURRENT
        .try_with(|s| f(&mut s.borrow_mut()))
        .map_err(|_| DrvErr::new(CUDA_ERROR_UNKNOWN, "the calling thread is exiting"))
}

fn check_device(dev: CUdevice) -> DrvResult {
    if dev == 0 {
        Ok(())
    } else {
        Err(DrvErr::new(
            CUDA_ERROR_INVALID_DEVICE,
            format!("device {dev}: there is one device, 0"),
        ))
    }
}

fn check_ctx(ctx: CUcontext) -> DrvResult {
    if ctx as usize == PRIMARY {
        Ok(())
    } else {
        Err(DrvErr::new(
            CUDA_ERROR_INVALID_CONTEXT,
            format!("{ctx:p} is not a context (the primary context is {PRIMARY:#x})"),
        ))
    }
}

impl Driver {
    fn new() -> Self {
        let profile = open_profile();
        Driver {
            refs: 0,
            flags: 0,
            dev: Device::new(profile.is_some()),
            host: HashMap::new(),
            profile,
            serial: 1,
        }
    }

    fn new_handle(&mut self, kind: Kind) -> usize {
        self.serial += 1;
        handle(kind, self.serial)
    }

    fn check_context(&self) -> DrvResult {
        match with_stack(|s| s.last().copied())? {
            None => Err(DrvErr::new(
                CUDA_ERROR_INVALID_CONTEXT,
                "no context is current on this thread (cuCtxSetCurrent)",
            )),
            Some(_) if self.refs == 0 => Err(DrvErr::new(
                CUDA_ERROR_INVALID_CONTEXT,
                "the primary context is not retained (cuDevicePrimaryCtxRetain)",
            )),
            Some(_) => Ok(()),
        }
    }

    /// Destroy the primary context's state (a reset, or a release to zero).
    fn destroy_context(&mut self) {
        self.dev = Device::new(self.profile.is_some());
    }

    fn log_profile(&mut self, kernel: &str, cfg: &LaunchConfig, p: &LaunchProfile) {
        if let Some(file) = &mut self.profile {
            let row = p.csv_row(kernel, cfg.grid, cfg.block) + "\n";
            if let Err(e) = file.write_all(row.as_bytes()).and_then(|_| file.flush()) {
                warn(format_args!(
                    "ptxemu: PTXEMU_PROFILE: {e}; no more profile rows are written"
                ));
                self.profile = None;
            }
        }
    }
}

/// The `PTXEMU_PROFILE` file, opened for appending, with the CSV header written if it is empty.
fn open_profile() -> Option<File> {
    let path = std::env::var_os("PTXEMU_PROFILE").filter(|p| !p.is_empty())?;
    let opened = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| {
            if f.metadata()?.len() == 0 {
                f.write_all(format!("{}\n", LaunchProfile::CSV_HEADER).as_bytes())?;
            }
            Ok(f)
        });
    match opened {
        Ok(f) => Some(f),
        Err(e) => {
            warn(format_args!(
                "ptxemu: PTXEMU_PROFILE={}: {e}; profiling is off",
                path.to_string_lossy()
            ));
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Initialisation, versions, errors
// ---------------------------------------------------------------------------------------------

/// Create the driver state (once; later calls do nothing) and read `PTXEMU_PROFILE`.
#[no_mangle]
pub unsafe extern "C" fn cuInit(flags: c_uint) -> CUresult {
    guard("cuInit", || {
        if flags != 0 {
            return Err(invalid(format!("flags {flags:#x}: must be 0")));
        }
        lock(&DRIVER).get_or_insert_with(Driver::new);
        Ok(())
    })
}

/// The CUDA version of the driver ([`DRIVER_VERSION`]); works before `cuInit`, as on NVIDIA's.
#[no_mangle]
pub unsafe extern "C" fn cuDriverGetVersion(driver_version: *mut c_int) -> CUresult {
    guard("cuDriverGetVersion", || {
        out(driver_version, "driverVersion")?.set(DRIVER_VERSION);
        Ok(())
    })
}

/// NVIDIA's text for `error`, followed by why the most recent error of that code happened (the
/// full fault text for a kernel fault). The string is never freed.
#[no_mangle]
pub unsafe extern "C" fn cuGetErrorString(error: CUresult, p_str: *mut *const c_char) -> CUresult {
    guard("cuGetErrorString", || {
        let o = out(p_str, "pStr")?;
        let Some(&(_, _, text)) = error_entry(error) else {
            o.set(std::ptr::null());
            return Err(DrvErr::bare(CUDA_ERROR_INVALID_VALUE));
        };
        let latest = lock(&ERROR_LOG).latest.get(&error).copied();
        o.set(latest.unwrap_or(text).as_ptr());
        Ok(())
    })
}

/// The enum name of `error` (`CUDA_ERROR_ILLEGAL_ADDRESS` …).
#[no_mangle]
pub unsafe extern "C" fn cuGetErrorName(error: CUresult, p_str: *mut *const c_char) -> CUresult {
    guard("cuGetErrorName", || {
        let o = out(p_str, "pStr")?;
        match error_entry(error) {
            Some(&(_, name, _)) => {
                o.set(name.as_ptr());
                Ok(())
            }
            None => {
                o.set(std::ptr::null());
                Err(DrvErr::bare(CUDA_ERROR_INVALID_VALUE))
            }
        }
    })
}

/// NVRTC asks for NVIDIA's private export tables (inside `nvrtcCompileProgram`); there are none
/// here, and `CUDA_ERROR_NOT_SUPPORTED` is what makes NVRTC carry on without them.
#[no_mangle]
pub unsafe extern "C" fn cuGetExportTable(
    pp_export_table: *mut *const c_void,
    _p_export_table_id: *const CUuuid,
) -> CUresult {
    guard("cuGetExportTable", || {
        out_opt(pp_export_table, std::ptr::null());
        Err(DrvErr::bare(CUDA_ERROR_NOT_SUPPORTED))
    })
}

// ---------------------------------------------------------------------------------------------
// The device
// ---------------------------------------------------------------------------------------------

/// One device.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetCount(count: *mut c_int) -> CUresult {
    call("cuDeviceGetCount", Level::Driver, |_| {
        out(count, "count")?.set(1);
        Ok(())
    })
}

/// Device 0 (any other ordinal: `CUDA_ERROR_INVALID_DEVICE`).
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGet(device: *mut CUdevice, ordinal: c_int) -> CUresult {
    call("cuDeviceGet", Level::Driver, |_| {
        let o = out(device, "device")?;
        check_device(ordinal)?;
        o.set(0);
        Ok(())
    })
}

/// [`DEVICE_NAME`], truncated to `len - 1` bytes and NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetName(name: *mut c_char, len: c_int, dev: CUdevice) -> CUresult {
    call("cuDeviceGetName", Level::Driver, |_| {
        out(name, "name")?;
        check_device(dev)?;
        if len <= 0 {
            return Err(invalid(format!("len {len}")));
        }
        let n = DEVICE_NAME.len().min(len as usize - 1);
        std::ptr::copy_nonoverlapping(DEVICE_NAME.as_ptr(), name as *mut u8, n);
        *name.add(n) = 0;
        Ok(())
    })
}

/// Per-SM resources of an H100 (for the attributes and the occupancy calculator).
const THREADS_PER_SM: usize = 2048;
const BLOCKS_PER_SM: usize = 32;
const SHARED_PER_SM: usize = 228 * 1024;
/// Shared memory the system reserves per resident block.
const RESERVED_SHARED_PER_BLOCK: usize = 1024;

/// The value of a `CUdevice_attribute`: an H100's (sm_90, [`limits`]) for what the interpreter
/// does like one, 0 for the features it does not have (managed memory, memory pools, host
/// mapping, cooperative and cluster launches, concurrent kernels, copy engines: it is synchronous)
/// and for every attribute not listed (documented as "0, success" rather than an error, so a
/// caller probing a newer attribute carries on).
fn device_attribute(attrib: c_uint) -> c_int {
    use limits::*;
    let i = |x: u32| x as c_int;
    match attrib {
        1 => i(MAX_THREADS_PER_BLOCK), // MAX_THREADS_PER_BLOCK
        2..=4 => i(MAX_BLOCK_DIM[attrib as usize - 2]), // MAX_BLOCK_DIM_X/Y/Z
        5..=7 => i(MAX_GRID_DIM[attrib as usize - 5]), // MAX_GRID_DIM_X/Y/Z
        8 => i(MAX_SHARED_PER_BLOCK),  // MAX_SHARED_MEMORY_PER_BLOCK
        9 => 64 * 1024,                // TOTAL_CONSTANT_MEMORY
        10 => i(WARP_SIZE),            // WARP_SIZE
        11 => c_int::MAX,              // MAX_PITCH
        12 | 82 => 64 * 1024,          // MAX_REGISTERS_PER_BLOCK / _PER_MULTIPROCESSOR
        13 => 1_980_000,               // CLOCK_RATE (kHz)
        14 | 30 => 512,                // TEXTURE_ALIGNMENT, SURFACE_ALIGNMENT
        16 => i(SM_COUNT),             // MULTIPROCESSOR_COUNT
        36 => 2_619_000,               // MEMORY_CLOCK_RATE (kHz)
        37 => 5120,                    // GLOBAL_MEMORY_BUS_WIDTH
        38 => 50 * 1024 * 1024,        // L2_CACHE_SIZE
        39 => THREADS_PER_SM as c_int, // MAX_THREADS_PER_MULTIPROCESSOR
        41 => 1,                       // UNIFIED_ADDRESSING
        51 => 32,                      // TEXTURE_PITCH_ALIGNMENT
        75 => COMPUTE_CAPABILITY.0,    // COMPUTE_CAPABILITY_MAJOR
        76 => COMPUTE_CAPABILITY.1,    // COMPUTE_CAPABILITY_MINOR
        78..=80 => 1, // STREAM_PRIORITIES_SUPPORTED, GLOBAL_/LOCAL_L1_CACHE_SUPPORTED
        81 => SHARED_PER_SM as c_int, // MAX_SHARED_MEMORY_PER_MULTIPROCESSOR
        87 => 2,      // SINGLE_TO_DOUBLE_PRECISION_PERF_RATIO
        97 => i(MAX_SHARED_PER_BLOCK_OPTIN), // MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
        106 => BLOCKS_PER_SM as c_int, // MAX_BLOCKS_PER_MULTIPROCESSOR
        111 => RESERVED_SHARED_PER_BLOCK as c_int, // RESERVED_SHARED_MEMORY_PER_BLOCK
        115 => 0,     // MEMORY_POOLS_SUPPORTED: cudarc then uses cuMemAlloc_v2
        _ => 0,
    }
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetAttribute(
    pi: *mut c_int,
    attrib: c_uint,
    dev: CUdevice,
) -> CUresult {
    call("cuDeviceGetAttribute", Level::Driver, |_| {
        let o = out(pi, "pi")?;
        check_device(dev)?;
        o.set(device_attribute(attrib));
        Ok(())
    })
}

/// The emulated memory's size ([`TOTAL_BYTES`]).
#[no_mangle]
pub unsafe extern "C" fn cuDeviceTotalMem_v2(bytes: *mut usize, dev: CUdevice) -> CUresult {
    call("cuDeviceTotalMem_v2", Level::Driver, |_| {
        let o = out(bytes, "bytes")?;
        check_device(dev)?;
        o.set(TOTAL_BYTES as usize);
        Ok(())
    })
}

/// A fixed UUID, the bytes of `"ptxemu sm_90 emu"`.
unsafe fn device_uuid(name: &'static str, uuid: *mut CUuuid, dev: CUdevice) -> CUresult {
    call(name, Level::Driver, |_| {
        let o = out(uuid, "uuid")?;
        check_device(dev)?;
        let mut bytes = [0 as c_char; 16];
        for (b, &c) in bytes.iter_mut().zip(b"ptxemu sm_90 emu") {
            *b = c as c_char;
        }
        o.set(CUuuid { bytes });
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetUuid(uuid: *mut CUuuid, dev: CUdevice) -> CUresult {
    device_uuid("cuDeviceGetUuid", uuid, dev)
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetUuid_v2(uuid: *mut CUuuid, dev: CUdevice) -> CUresult {
    device_uuid("cuDeviceGetUuid_v2", uuid, dev)
}

// ---------------------------------------------------------------------------------------------
// The primary context
// ---------------------------------------------------------------------------------------------

/// Retain the primary context (its handle never changes); it is active while retained.
#[no_mangle]
pub unsafe extern "C" fn cuDevicePrimaryCtxRetain(pctx: *mut CUcontext, dev: CUdevice) -> CUresult {
    call("cuDevicePrimaryCtxRetain", Level::Driver, |d| {
        let o = out(pctx, "pctx")?;
        check_device(dev)?;
        d.refs += 1;
        o.set(PRIMARY as CUcontext);
        Ok(())
    })
}

/// Release it; at zero its state (memory, modules, streams, events, sticky error) is destroyed.
#[no_mangle]
pub unsafe extern "C" fn cuDevicePrimaryCtxRelease_v2(dev: CUdevice) -> CUresult {
    call("cuDevicePrimaryCtxRelease_v2", Level::Driver, |d| {
        check_device(dev)?;
        if d.refs == 0 {
            return Err(DrvErr::new(
                CUDA_ERROR_INVALID_CONTEXT,
                "the primary context is not retained",
            ));
        }
        d.refs -= 1;
        if d.refs == 0 {
            d.destroy_context();
        }
        Ok(())
    })
}

/// Destroy the primary context's state now (clearing a sticky fault); the retain count stays.
#[no_mangle]
pub unsafe extern "C" fn cuDevicePrimaryCtxReset_v2(dev: CUdevice) -> CUresult {
    call("cuDevicePrimaryCtxReset_v2", Level::Driver, |d| {
        check_device(dev)?;
        d.destroy_context();
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuDevicePrimaryCtxGetState(
    dev: CUdevice,
    flags: *mut c_uint,
    active: *mut c_int,
) -> CUresult {
    call("cuDevicePrimaryCtxGetState", Level::Driver, |d| {
        let (f, a) = (out(flags, "flags")?, out(active, "active")?);
        check_device(dev)?;
        f.set(d.flags);
        a.set((d.refs > 0) as c_int);
        Ok(())
    })
}

/// Scheduling flags are kept and reported; on a synchronous device they change nothing.
#[no_mangle]
pub unsafe extern "C" fn cuDevicePrimaryCtxSetFlags_v2(dev: CUdevice, flags: c_uint) -> CUresult {
    call("cuDevicePrimaryCtxSetFlags_v2", Level::Driver, |d| {
        check_device(dev)?;
        d.flags = flags;
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// The calling thread's current context
// ---------------------------------------------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn cuCtxGetCurrent(pctx: *mut CUcontext) -> CUresult {
    call("cuCtxGetCurrent", Level::Driver, |_| {
        let o = out(pctx, "pctx")?;
        let top = with_stack(|s| s.last().copied())?;
        o.set(top.unwrap_or(0) as CUcontext);
        Ok(())
    })
}

/// Replace the top of this thread's context stack (NULL: pop it).
#[no_mangle]
pub unsafe extern "C" fn cuCtxSetCurrent(ctx: CUcontext) -> CUresult {
    call("cuCtxSetCurrent", Level::Driver, |_| {
        if ctx.is_null() {
            return with_stack(|s| {
                s.pop();
            });
        }
        check_ctx(ctx)?;
        with_stack(|s| {
            s.pop();
            s.push(ctx as usize)
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuCtxPushCurrent_v2(ctx: CUcontext) -> CUresult {
    call("cuCtxPushCurrent_v2", Level::Driver, |_| {
        check_ctx(ctx)?;
        with_stack(|s| s.push(ctx as usize))
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuCtxPopCurrent_v2(pctx: *mut CUcontext) -> CUresult {
    call("cuCtxPopCurrent_v2", Level::Driver, |_| {
        let top = with_stack(|s| s.pop())?
            .ok_or_else(|| DrvErr::new(CUDA_ERROR_INVALID_CONTEXT, "the context stack is empty"))?;
        out_opt(pctx, top as CUcontext);
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuCtxGetDevice(device: *mut CUdevice) -> CUresult {
    call("cuCtxGetDevice", Level::Context, |_| {
        out(device, "device")?.set(0);
        Ok(())
    })
}

/// Nothing is ever in flight; returns the sticky fault, if there is one.
#[no_mangle]
pub unsafe extern "C" fn cuCtxSynchronize() -> CUresult {
    call("cuCtxSynchronize", Level::Work, |_| Ok(()))
}

/// 3020, what NVIDIA's driver reports for every context since CUDA 3.2.
#[no_mangle]
pub unsafe extern "C" fn cuCtxGetApiVersion(ctx: CUcontext, version: *mut c_uint) -> CUresult {
    call("cuCtxGetApiVersion", Level::Context, |_| {
        let o = out(version, "version")?;
        if !ctx.is_null() {
            check_ctx(ctx)?;
        }
        o.set(3020);
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuCtxGetFlags(flags: *mut c_uint) -> CUresult {
    call("cuCtxGetFlags", Level::Context, |d| {
        out(flags, "flags")?.set(d.flags);
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuCtxSetFlags(flags: c_uint) -> CUresult {
    call("cuCtxSetFlags", Level::Context, |d| {
        d.flags = flags;
        Ok(())
    })
}

fn limit_slot(limit: c_uint) -> DrvResult<usize> {
    let i = limit as usize;
    if i < LIMIT_DEFAULTS.len() {
        Ok(i)
    } else {
        Err(DrvErr::new(
            CUDA_ERROR_UNSUPPORTED_LIMIT,
            format!("limit {limit}"),
        ))
    }
}

/// `CU_LIMIT_*` values are kept and reported (the interpreter sizes nothing by them).
#[no_mangle]
pub unsafe extern "C" fn cuCtxGetLimit(pvalue: *mut usize, limit: c_uint) -> CUresult {
    call("cuCtxGetLimit", Level::Context, |d| {
        let o = out(pvalue, "pvalue")?;
        o.set(d.dev.limits[limit_slot(limit)?]);
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuCtxSetLimit(limit: c_uint, value: usize) -> CUresult {
    call("cuCtxSetLimit", Level::Context, |d| {
        d.dev.limits[limit_slot(limit)?] = value;
        Ok(())
    })
}

/// The L1/shared split preference is kept and reported; it changes nothing here.
#[no_mangle]
pub unsafe extern "C" fn cuCtxGetCacheConfig(pconfig: *mut c_uint) -> CUresult {
    call("cuCtxGetCacheConfig", Level::Context, |d| {
        out(pconfig, "pconfig")?.set(d.dev.cache_config);
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuCtxSetCacheConfig(config: c_uint) -> CUresult {
    call("cuCtxSetCacheConfig", Level::Context, |d| {
        d.dev.cache_config = config;
        Ok(())
    })
}

/// An H100's range, 0 (least) to -5 (greatest); priorities change nothing on a synchronous device.
#[no_mangle]
pub unsafe extern "C" fn cuCtxGetStreamPriorityRange(
    least_priority: *mut c_int,
    greatest_priority: *mut c_int,
) -> CUresult {
    call("cuCtxGetStreamPriorityRange", Level::Context, |_| {
        out_opt(least_priority, 0);
        out_opt(greatest_priority, -5);
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Streams: handles only, since every call completes before it returns
// ---------------------------------------------------------------------------------------------

unsafe fn stream_create(name: &'static str, ph_stream: *mut CUstream, flags: c_uint) -> CUresult {
    call(name, Level::Work, |d| {
        let o = out(ph_stream, "phStream")?;
        if flags & !1 != 0 {
            return Err(invalid(format!(
                "flags {flags:#x}: only CU_STREAM_NON_BLOCKING (1)"
            )));
        }
        let h = d.new_handle(Kind::Stream);
        d.dev.streams.insert(h);
        o.set(h as CUstream);
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuStreamCreate(ph_stream: *mut CUstream, flags: c_uint) -> CUresult {
    stream_create("cuStreamCreate", ph_stream, flags)
}

/// The priority is accepted and ignored (nothing ever waits behind anything).
#[no_mangle]
pub unsafe extern "C" fn cuStreamCreateWithPriority(
    ph_stream: *mut CUstream,
    flags: c_uint,
    _priority: c_int,
) -> CUresult {
    stream_create("cuStreamCreateWithPriority", ph_stream, flags)
}

#[no_mangle]
pub unsafe extern "C" fn cuStreamDestroy_v2(h_stream: CUstream) -> CUresult {
    call("cuStreamDestroy_v2", Level::Work, |d| {
        if d.dev.streams.remove(&(h_stream as usize)) {
            Ok(())
        } else {
            Err(bad_handle("stream", h_stream))
        }
    })
}

/// Nothing is queued: validates the stream and reports the sticky fault, if any.
#[no_mangle]
pub unsafe extern "C" fn cuStreamSynchronize(h_stream: CUstream) -> CUresult {
    call("cuStreamSynchronize", Level::Work, |d| {
        d.dev.stream(h_stream)
    })
}

/// Always complete (`CUDA_SUCCESS`), or the sticky fault.
#[no_mangle]
pub unsafe extern "C" fn cuStreamQuery(h_stream: CUstream) -> CUresult {
    call("cuStreamQuery", Level::Work, |d| d.dev.stream(h_stream))
}

/// The event's work is already done: validates both handles.
#[no_mangle]
pub unsafe extern "C" fn cuStreamWaitEvent(
    h_stream: CUstream,
    h_event: CUevent,
    flags: c_uint,
) -> CUresult {
    call("cuStreamWaitEvent", Level::Work, |d| {
        d.dev.stream(h_stream)?;
        d.dev.event(h_event)?;
        if flags & !1 != 0 {
            return Err(invalid(format!("flags {flags:#x}")));
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Events: host timestamps taken at record time
// ---------------------------------------------------------------------------------------------

/// `CU_EVENT_DEFAULT`, `BLOCKING_SYNC` (1), `DISABLE_TIMING` (2), `INTERPROCESS` (4).
#[no_mangle]
pub unsafe extern "C" fn cuEventCreate(ph_event: *mut CUevent, flags: c_uint) -> CUresult {
    call("cuEventCreate", Level::Work, |d| {
        let o = out(ph_event, "phEvent")?;
        if flags & !7 != 0 {
            return Err(invalid(format!("flags {flags:#x}")));
        }
        let h = d.new_handle(Kind::Event);
        d.dev.events.insert(
            h,
            Event {
                timing: flags & 2 == 0,
                recorded: None,
            },
        );
        o.set(h as CUevent);
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuEventDestroy_v2(h_event: CUevent) -> CUresult {
    call("cuEventDestroy_v2", Level::Work, |d| {
        d.dev
            .events
            .remove(&(h_event as usize))
            .map(|_| ())
            .ok_or_else(|| bad_handle("event", h_event))
    })
}

fn event_record(
    name: &'static str,
    h_event: CUevent,
    h_stream: CUstream,
    flags: c_uint,
) -> CUresult {
    call(name, Level::Work, |d| {
        d.dev.stream(h_stream)?;
        if flags & !1 != 0 {
            return Err(invalid(format!("flags {flags:#x}")));
        }
        d.dev.event(h_event)?.recorded = Some(Instant::now());
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuEventRecord(h_event: CUevent, h_stream: CUstream) -> CUresult {
    event_record("cuEventRecord", h_event, h_stream, 0)
}

#[no_mangle]
pub unsafe extern "C" fn cuEventRecordWithFlags(
    h_event: CUevent,
    h_stream: CUstream,
    flags: c_uint,
) -> CUresult {
    event_record("cuEventRecordWithFlags", h_event, h_stream, flags)
}

/// A recorded event is complete when recorded: validates, and reports the sticky fault.
#[no_mangle]
pub unsafe extern "C" fn cuEventSynchronize(h_event: CUevent) -> CUresult {
    call("cuEventSynchronize", Level::Work, |d| {
        d.dev.event(h_event).map(|_| ())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuEventQuery(h_event: CUevent) -> CUresult {
    call("cuEventQuery", Level::Work, |d| {
        d.dev.event(h_event).map(|_| ())
    })
}

/// Host wall time between the two records, in ms (`CUDA_ERROR_INVALID_HANDLE` if either was
/// never recorded or was created with `CU_EVENT_DISABLE_TIMING`, as on NVIDIA's driver).
unsafe fn event_elapsed(
    name: &'static str,
    ms: *mut f32,
    start: CUevent,
    end: CUevent,
) -> CUresult {
    call(name, Level::Work, |d| {
        let o = out(ms, "pMilliseconds")?;
        let mut time = |e: CUevent| -> DrvResult<Instant> {
            let ev = d.dev.event(e)?;
            match (ev.timing, ev.recorded) {
                (true, Some(t)) => Ok(t),
                (false, _) => Err(DrvErr::new(
                    CUDA_ERROR_INVALID_HANDLE,
                    format!("event {e:p} was created with CU_EVENT_DISABLE_TIMING"),
                )),
                (true, None) => Err(DrvErr::new(
                    CUDA_ERROR_INVALID_HANDLE,
                    format!("event {e:p} was never recorded"),
                )),
            }
        };
        let (t0, t1) = (time(start)?, time(end)?);
        let secs = if t1 >= t0 {
            (t1 - t0).as_secs_f64()
        } else {
            -(t0 - t1).as_secs_f64()
        };
        o.set((secs * 1e3) as f32);
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuEventElapsedTime(
    ms: *mut f32,
    h_start: CUevent,
    h_end: CUevent,
) -> CUresult {
    event_elapsed("cuEventElapsedTime", ms, h_start, h_end)
}

#[no_mangle]
pub unsafe extern "C" fn cuEventElapsedTime_v2(
    ms: *mut f32,
    h_start: CUevent,
    h_end: CUevent,
) -> CUresult {
    event_elapsed("cuEventElapsedTime_v2", ms, h_start, h_end)
}

/// An entry point and its stream-ordered twin: `SYNC(args…)` and `ASYNC(args…, h_stream)`, both
/// `#[no_mangle] pub unsafe extern "C"` and returning `CUresult`, run `body` with `name` bound
/// to the C name of the symbol called and `stream` to its stream (NULL, the default stream, for
/// `SYNC`). On this synchronous device the two differ only in the stream they validate.
macro_rules! sync_and_async {
    (
        $(#[$doc:meta])*
        $sync:ident / $async_:ident ($($arg:ident: $ty:ty),* $(,)?)
            => |$name:ident, $stream:ident| $body:expr
    ) => {
        $(#[$doc])*
        #[no_mangle]
        pub unsafe extern "C" fn $sync($($arg: $ty),*) -> CUresult {
            let ($name, $stream): (&'static str, CUstream) =
                (stringify!($sync), std::ptr::null_mut());
            $body
        }

        $(#[$doc])*
        #[no_mangle]
        pub unsafe extern "C" fn $async_($($arg: $ty,)* h_stream: CUstream) -> CUresult {
            let ($name, $stream): (&'static str, CUstream) = (stringify!($async_), h_stream);
            $body
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Device memory, pinned host memory, copies and memsets (all complete on return)
// ---------------------------------------------------------------------------------------------

unsafe fn mem_alloc(
    name: &'static str,
    dptr: *mut CUdeviceptr,
    bytes: usize,
    stream: CUstream,
) -> CUresult {
    call(name, Level::Work, |d| {
        let o = out(dptr, "dptr")?;
        d.dev.stream(stream)?;
        o.set(d.dev.machine.mem.alloc(bytes)?);
        Ok(())
    })
}

sync_and_async! {
    /// Device memory. The stream-ordered form is a plain allocation too: on a synchronous device
    /// stream order is program order.
    cuMemAlloc_v2 / cuMemAllocAsync(dptr: *mut CUdeviceptr, bytesize: usize)
        => |name, stream| mem_alloc(name, dptr, bytesize, stream)
}

fn mem_free(name: &'static str, ptr: CUdeviceptr, stream: CUstream) -> CUresult {
    call(name, Level::Work, |d| {
        d.dev.stream(stream)?;
        if ptr != 0 {
            d.dev.machine.mem.free(ptr)?;
        }
        Ok(())
    })
}

sync_and_async! {
    /// Free an allocation (0 is a no-op, as on NVIDIA's driver).
    cuMemFree_v2 / cuMemFreeAsync(dptr: CUdeviceptr) => |name, stream| mem_free(name, dptr, stream)
}

/// `(free, total)` of the emulated memory.
#[no_mangle]
pub unsafe extern "C" fn cuMemGetInfo_v2(free: *mut usize, total: *mut usize) -> CUresult {
    call("cuMemGetInfo_v2", Level::Work, |d| {
        let (f, t) = (out(free, "free")?, out(total, "total")?);
        f.set(TOTAL_BYTES.saturating_sub(d.dev.machine.mem.used()) as usize);
        t.set(TOTAL_BYTES as usize);
        Ok(())
    })
}

/// Real (zeroed, page-aligned) host memory, kept in a table so that `cuMemFreeHost` can check it.
/// Flags `PORTABLE` (1), `DEVICEMAP` (2), `WRITECOMBINED` (4) are accepted and change nothing.
unsafe fn host_alloc(
    name: &'static str,
    pp: *mut *mut c_void,
    bytes: usize,
    flags: c_uint,
) -> CUresult {
    call(name, Level::Work, |d| {
        let o = out(pp, "pp")?;
        if flags & !7 != 0 {
            return Err(invalid(format!("flags {flags:#x}")));
        }
        if bytes == 0 {
            return Err(invalid("0 bytes"));
        }
        let layout = Layout::from_size_align(bytes, 4096)
            .map_err(|e| invalid(format!("{bytes} bytes: {e}")))?;
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { std::alloc::alloc_zeroed(layout) };
        if p.is_null() {
            return Err(DrvErr::new(
                CUDA_ERROR_OUT_OF_MEMORY,
                format!("{bytes} bytes of host memory"),
            ));
        }
        d.host.insert(p as usize, layout);
        o.set(p as *mut c_void);
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuMemHostAlloc(
    pp: *mut *mut c_void,
    bytesize: usize,
    flags: c_uint,
) -> CUresult {
    host_alloc("cuMemHostAlloc", pp, bytesize, flags)
}

#[no_mangle]
pub unsafe extern "C" fn cuMemAllocHost_v2(pp: *mut *mut c_void, bytesize: usize) -> CUresult {
    host_alloc("cuMemAllocHost_v2", pp, bytesize, 0)
}

#[no_mangle]
pub unsafe extern "C" fn cuMemFreeHost(p: *mut c_void) -> CUresult {
    call("cuMemFreeHost", Level::Work, |d| {
        let layout = d
            .host
            .remove(&(p as usize))
            .ok_or_else(|| invalid(format!("{p:p} was not allocated by cuMemHostAlloc")))?;
        // SAFETY: allocated by `host_alloc` with this layout, and removed from the table.
        unsafe { std::alloc::dealloc(p as *mut u8, layout) };
        Ok(())
    })
}

fn memset(
    name: &'static str,
    dst: CUdeviceptr,
    value: u32,
    width: usize,
    n: usize,
    stream: CUstream,
) -> CUresult {
    call(name, Level::Work, |d| {
        d.dev.stream(stream)?;
        let mem = &mut d.dev.machine.mem;
        if width == 1 {
            mem.memset(dst, value as u8, n)?;
        } else if !dst.is_multiple_of(4) {
            return Err(invalid(format!("{dst:#x} is not 4-byte aligned")));
        } else {
            mem.memset32(dst, value, n)?;
        }
        Ok(())
    })
}

sync_and_async! {
    /// Set `n` bytes to `uc`.
    cuMemsetD8_v2 / cuMemsetD8Async(dst_device: CUdeviceptr, uc: c_uchar, n: usize)
        => |name, stream| memset(name, dst_device, uc.into(), 1, n, stream)
}

sync_and_async! {
    /// Set `n` 32-bit words (at a 4-byte aligned address) to `ui`.
    cuMemsetD32_v2 / cuMemsetD32Async(dst_device: CUdeviceptr, ui: c_uint, n: usize)
        => |name, stream| memset(name, dst_device, ui, 4, n, stream)
}

fn host_ptr_check(p: *const c_void, n: usize) -> DrvResult {
    if p.is_null() && n > 0 {
        Err(invalid(format!("host pointer is NULL for {n} bytes")))
    } else {
        Ok(())
    }
}

/// The host end of a copy between host memory and the device.
#[derive(Clone, Copy)]
enum HostEnd {
    /// Host to device: `n` bytes are read from here.
    From(*const c_void),
    /// Device to host: `n` bytes are written here.
    Into(*mut c_void),
}

/// Copy `n` bytes between the device at `dev` and the host, in the direction `host` says.
///
/// # Safety
/// The host pointer is valid for `n` bytes (reading for `From`, writing for `Into`), by the C
/// API's contract.
unsafe fn memcpy_host(
    name: &'static str,
    dev: CUdeviceptr,
    host: HostEnd,
    n: usize,
    stream: CUstream,
) -> CUresult {
    call(name, Level::Work, |d| {
        d.dev.stream(stream)?;
        let p = match host {
            HostEnd::From(p) => p,
            HostEnd::Into(p) => p as *const c_void,
        };
        host_ptr_check(p, n)?;
        if n == 0 {
            return Ok(());
        }
        let mem = &mut d.dev.machine.mem;
        match host {
            HostEnd::From(src) => {
                // SAFETY: `src` is valid for `n` bytes by the C API's contract.
                let bytes = unsafe { std::slice::from_raw_parts(src as *const u8, n) };
                mem.write(dev, bytes)?;
            }
            HostEnd::Into(dst) => {
                // SAFETY: `dst` is valid for writing `n` bytes by the C API's contract.
                let bytes = unsafe { std::slice::from_raw_parts_mut(dst as *mut u8, n) };
                mem.read(dev, bytes)?;
            }
        }
        Ok(())
    })
}

sync_and_async! {
    /// Copy `byte_count` bytes from the host to the device.
    cuMemcpyHtoD_v2 / cuMemcpyHtoDAsync_v2(
        dst_device: CUdeviceptr,
        src_host: *const c_void,
        byte_count: usize,
    ) => |name, stream| {
        memcpy_host(name, dst_device, HostEnd::From(src_host), byte_count, stream)
    }
}

sync_and_async! {
    /// Copy `byte_count` bytes from the device to the host.
    cuMemcpyDtoH_v2 / cuMemcpyDtoHAsync_v2(
        dst_host: *mut c_void,
        src_device: CUdeviceptr,
        byte_count: usize,
    ) => |name, stream| {
        memcpy_host(name, src_device, HostEnd::Into(dst_host), byte_count, stream)
    }
}

fn memcpy_dtod(
    name: &'static str,
    dst: CUdeviceptr,
    src: CUdeviceptr,
    n: usize,
    stream: CUstream,
) -> CUresult {
    call(name, Level::Work, |d| {
        d.dev.stream(stream)?;
        d.dev.machine.mem.copy(dst, src, n)?;
        Ok(())
    })
}

sync_and_async! {
    /// Copy `byte_count` bytes within the device.
    cuMemcpyDtoD_v2 / cuMemcpyDtoDAsync_v2(
        dst_device: CUdeviceptr,
        src_device: CUdeviceptr,
        byte_count: usize,
    ) => |name, stream| memcpy_dtod(name, dst_device, src_device, byte_count, stream)
}

// ---------------------------------------------------------------------------------------------
// Modules and functions
// ---------------------------------------------------------------------------------------------

/// The bytes of a module image given only by its address: NUL-terminated PTX text, or, for an
/// image that starts like an ELF (a CUBIN), its magic only (enough for the machine to refuse it).
unsafe fn image_bytes<'a>(image: *const c_void) -> DrvResult<&'a [u8]> {
    if image.is_null() {
        return Err(invalid("image is NULL"));
    }
    let p = image as *const u8;
    if *p == 0x7f {
        let n = (1..4).find(|&i| *p.add(i) == 0).unwrap_or(4);
        return Ok(std::slice::from_raw_parts(p, n));
    }
    Ok(CStr::from_ptr(p as *const c_char).to_bytes())
}

/// Load a module image (PTX) into the machine and hand out its handle.
fn load_module(d: &mut Driver, image: &[u8]) -> DrvResult<CUmodule> {
    let slot = d.dev.machine.load_module(image).map_err(|e| {
        let mut e = DrvErr::from(e);
        if e.code == CUDA_ERROR_INVALID_IMAGE && image.starts_with(b"\x7fELF") {
            // A CUBIN: machine code for a real GPU. This code tells the caller to load PTX.
            e.code = CUDA_ERROR_NO_BINARY_FOR_GPU;
        }
        e
    })?;
    let h = d.new_handle(Kind::Module);
    d.dev.modules.insert(h, slot);
    Ok(h as CUmodule)
}

unsafe fn module_load_data(
    name: &'static str,
    module: *mut CUmodule,
    image: *const c_void,
) -> CUresult {
    call(name, Level::Work, |d| {
        let o = out(module, "module")?;
        // SAFETY: `image` is a module image by the C API's contract.
        let bytes = unsafe { image_bytes(image)? };
        o.set(load_module(d, bytes)?);
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuModuleLoadData(module: *mut CUmodule, image: *const c_void) -> CUresult {
    module_load_data("cuModuleLoadData", module, image)
}

/// JIT options (log buffers, optimisation levels…) are ignored: there is no JIT; a PTX error is
/// in `cuGetErrorString(CUDA_ERROR_INVALID_PTX)`.
#[no_mangle]
pub unsafe extern "C" fn cuModuleLoadDataEx(
    module: *mut CUmodule,
    image: *const c_void,
    _num_options: c_uint,
    _options: *mut c_uint,
    _option_values: *mut *mut c_void,
) -> CUresult {
    module_load_data("cuModuleLoadDataEx", module, image)
}

/// Load a PTX file.
#[no_mangle]
pub unsafe extern "C" fn cuModuleLoad(module: *mut CUmodule, fname: *const c_char) -> CUresult {
    call("cuModuleLoad", Level::Work, |d| {
        let o = out(module, "module")?;
        if fname.is_null() {
            return Err(invalid("fname is NULL"));
        }
        let path = CStr::from_ptr(fname).to_string_lossy().into_owned();
        let bytes = std::fs::read(&path)
            .map_err(|e| DrvErr::new(CUDA_ERROR_FILE_NOT_FOUND, format!("{path}: {e}")))?;
        o.set(load_module(d, &bytes)?);
        Ok(())
    })
}

/// Unload a module: its globals are freed and its function handles die with it.
#[no_mangle]
pub unsafe extern "C" fn cuModuleUnload(hmod: CUmodule) -> CUresult {
    call("cuModuleUnload", Level::Work, |d| {
        let slot = d.dev.module(hmod)?;
        d.dev.machine.unload_module(slot)?;
        d.dev.modules.remove(&(hmod as usize));
        d.dev.functions.retain(|_, f| f.module != hmod as usize);
        Ok(())
    })
}

fn name_arg<'a>(name: *const c_char) -> DrvResult<&'a str> {
    if name.is_null() {
        return Err(invalid("name is NULL"));
    }
    // SAFETY: a NUL-terminated string by the C API's contract.
    unsafe { CStr::from_ptr(name) }
        .to_str()
        .map_err(|_| DrvErr::new(CUDA_ERROR_NOT_FOUND, "the name is not UTF-8"))
}

/// The kernel `name` of a module; asking twice gives the same handle.
#[no_mangle]
pub unsafe extern "C" fn cuModuleGetFunction(
    hfunc: *mut CUfunction,
    hmod: CUmodule,
    name: *const c_char,
) -> CUresult {
    call("cuModuleGetFunction", Level::Work, |d| {
        let o = out(hfunc, "hfunc")?;
        let slot = d.dev.module(hmod)?;
        let kernel = d.dev.machine.function(slot, name_arg(name)?)?;
        if let Some((&h, _)) = d.dev.functions.iter().find(|(_, f)| f.kernel == kernel) {
            o.set(h as CUfunction);
            return Ok(());
        }
        let static_shared = d.dev.machine.static_shared_bytes(kernel)?;
        let h = d.new_handle(Kind::Function);
        d.dev.functions.insert(
            h,
            Function {
                kernel,
                module: hmod as usize,
                max_dynamic_shared: limits::MAX_SHARED_PER_BLOCK.saturating_sub(static_shared),
                carveout: -1,
            },
        );
        o.set(h as CUfunction);
        Ok(())
    })
}

/// Address and size of a module's `.global` variable (either output may be NULL).
#[no_mangle]
pub unsafe extern "C" fn cuModuleGetGlobal_v2(
    dptr: *mut CUdeviceptr,
    bytes: *mut usize,
    hmod: CUmodule,
    name: *const c_char,
) -> CUresult {
    call("cuModuleGetGlobal_v2", Level::Work, |d| {
        let slot = d.dev.module(hmod)?;
        let (address, size) = d.dev.machine.global_symbol(slot, name_arg(name)?)?;
        out_opt(dptr, address);
        out_opt(bytes, size);
        Ok(())
    })
}

/// `CUfunction_attribute`s: the kernel's own figures from the PTX; `PTX_VERSION` is the
/// virtual architecture of the module's `.target` (`sm_90` → 90), `BINARY_VERSION` the device's
/// (90: the module "runs" as sm_90 code), `CONST_SIZE_BYTES` 0 (no `.const` banks), the cache
/// mode and cluster attributes 0; others `CUDA_ERROR_INVALID_VALUE`.
fn function_attribute(d: &Driver, f: &Function, attrib: c_uint) -> DrvResult<c_int> {
    let m = &d.dev.machine;
    let (module, entry) = d.dev.kernel(f)?;
    let kernel = &module.kernels[entry];
    let i = |x: u32| x.min(c_int::MAX as u32) as c_int;
    Ok(match attrib {
        CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK => {
            i(kernel.max_ntid.unwrap_or(limits::MAX_THREADS_PER_BLOCK))
        }
        CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES => i(m.static_shared_bytes(f.kernel)?),
        CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES => 0,
        CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES => i(m.local_bytes(f.kernel)?),
        CU_FUNC_ATTRIBUTE_NUM_REGS => i(m.register_count(f.kernel)?),
        CU_FUNC_ATTRIBUTE_PTX_VERSION => {
            let (maj, min) = limits::COMPUTE_CAPABILITY;
            let digits: String = module.target.chars().filter(char::is_ascii_digit).collect();
            digits.parse().unwrap_or(maj * 10 + min)
        }
        CU_FUNC_ATTRIBUTE_BINARY_VERSION => {
            let (maj, min) = limits::COMPUTE_CAPABILITY;
            maj * 10 + min
        }
        CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES => i(f.max_dynamic_shared),
        CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT => f.carveout,
        7 | 10..=15 => 0,
        _ => return Err(invalid(format!("function attribute {attrib}"))),
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuFuncGetAttribute(
    pi: *mut c_int,
    attrib: c_uint,
    hfunc: CUfunction,
) -> CUresult {
    call("cuFuncGetAttribute", Level::Context, |d| {
        let o = out(pi, "pi")?;
        let f = d.dev.function(hfunc)?;
        o.set(function_attribute(d, &f, attrib)?);
        Ok(())
    })
}

/// `MAX_DYNAMIC_SHARED_SIZE_BYTES` (up to the opt-in limit less the static shared memory, as on an
/// H100; note the interpreter itself runs at most [`limits::MAX_SHARED_PER_BLOCK`] per block, and
/// says so at launch) and `PREFERRED_SHARED_MEMORY_CARVEOUT` (-1..=100, kept, no effect).
#[no_mangle]
pub unsafe extern "C" fn cuFuncSetAttribute(
    hfunc: CUfunction,
    attrib: c_uint,
    value: c_int,
) -> CUresult {
    call("cuFuncSetAttribute", Level::Work, |d| {
        let mut f = d.dev.function(hfunc)?;
        match attrib {
            CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES => {
                let static_shared = d.dev.machine.static_shared_bytes(f.kernel)?;
                let max = limits::MAX_SHARED_PER_BLOCK_OPTIN.saturating_sub(static_shared);
                f.max_dynamic_shared =
                    u32::try_from(value)
                        .ok()
                        .filter(|&v| v <= max)
                        .ok_or_else(|| {
                            invalid(format!(
                                "{value} bytes of dynamic shared memory: at most {max}"
                            ))
                        })?;
            }
            CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT if (-1..=100).contains(&value) => {
                f.carveout = value;
            }
            _ => return Err(invalid(format!("function attribute {attrib} = {value}"))),
        }
        d.dev.functions.insert(hfunc as usize, f);
        Ok(())
    })
}

/// Validates the function; the preference changes nothing here.
#[no_mangle]
pub unsafe extern "C" fn cuFuncSetCacheConfig(hfunc: CUfunction, _config: c_uint) -> CUresult {
    call("cuFuncSetCacheConfig", Level::Work, |d| {
        d.dev.function(hfunc).map(|_| ())
    })
}

// ---------------------------------------------------------------------------------------------
// Launches
// ---------------------------------------------------------------------------------------------

/// The `extra` buffer of a launch: (`CU_LAUNCH_PARAM_BUFFER_POINTER`, `CU_LAUNCH_PARAM_BUFFER_SIZE`)
/// pairs up to `CU_LAUNCH_PARAM_END`.
unsafe fn extra_buffer<'a>(extra: *mut *mut c_void) -> DrvResult<&'a [u8]> {
    const MAX_ENTRIES: usize = 64;
    let (mut buf, mut size): (*const u8, Option<usize>) = (std::ptr::null(), None);
    let mut i = 0;
    loop {
        if i >= MAX_ENTRIES {
            return Err(invalid("extra is not terminated by CU_LAUNCH_PARAM_END"));
        }
        match *extra.add(i) as usize {
            CU_LAUNCH_PARAM_END => break,
            CU_LAUNCH_PARAM_BUFFER_POINTER => buf = *extra.add(i + 1) as *const u8,
            CU_LAUNCH_PARAM_BUFFER_SIZE => {
                let p = *extra.add(i + 1) as *const usize;
                if p.is_null() {
                    return Err(invalid("CU_LAUNCH_PARAM_BUFFER_SIZE points at NULL"));
                }
                size = Some(*p);
            }
            key => return Err(invalid(format!("unknown key {key:#x} in extra"))),
        }
        i += 2;
    }
    match size {
        None => Err(invalid("extra has no CU_LAUNCH_PARAM_BUFFER_SIZE")),
        Some(0) => Ok(&[]),
        Some(_) if buf.is_null() => Err(invalid("extra has no CU_LAUNCH_PARAM_BUFFER_POINTER")),
        Some(n) => Ok(std::slice::from_raw_parts(buf, n)),
    }
}

/// Each parameter's bytes, from `kernelParams` (one pointer per parameter) or `extra` (one
/// buffer, exactly the kernel's parameter buffer size, sliced at each parameter's offset).
unsafe fn param_slices<'a>(
    kernel: &ir::Kernel,
    params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> DrvResult<Vec<&'a [u8]>> {
    match (params.is_null(), extra.is_null()) {
        (false, false) => Err(invalid("both kernelParams and extra are set: pass one")),
        // NVIDIA's driver accepts neither for a kernel without parameters.
        (true, true) if kernel.params.is_empty() => Ok(Vec::new()),
        (true, true) => Err(invalid(format!(
            "kernel {} takes {} parameters but kernelParams and extra are both NULL",
            kernel.name,
            kernel.params.len()
        ))),
        (false, true) => (0..kernel.params.len())
            .map(|i| {
                let p = *params.add(i);
                if p.is_null() {
                    Err(invalid(format!("kernelParams[{i}] is NULL")))
                } else {
                    Ok(std::slice::from_raw_parts(
                        p as *const u8,
                        kernel.params[i].size,
                    ))
                }
            })
            .collect(),
        (true, false) => {
            let buf = extra_buffer(extra)?;
            if buf.len() != kernel.param_bytes {
                return Err(invalid(format!(
                    "the extra parameter buffer is {} bytes (CU_LAUNCH_PARAM_BUFFER_SIZE), \
                     kernel {} takes {} bytes of parameters",
                    buf.len(),
                    kernel.name,
                    kernel.param_bytes
                )));
            }
            kernel
                .params
                .iter()
                .map(|p| {
                    buf.get(p.offset..p.offset + p.size).ok_or_else(|| {
                        invalid(format!("parameter {} lies outside the buffer", p.name))
                    })
                })
                .collect()
        }
    }
}

/// The code of a refused launch configuration: `CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES` for a block
/// the device could run but the kernel's `.maxntid` forbids (a launch-bounds violation on NVIDIA's
/// driver), `CUDA_ERROR_INVALID_VALUE` for the rest (block or grid beyond the device, too much
/// shared memory, wrong parameters).
fn invalid_launch_code(kernel: &ir::Kernel, cfg: &LaunchConfig) -> CUresult {
    let threads: u64 = cfg.block.iter().map(|&b| b as u64).product();
    let device_ok = (0..3).all(|i| cfg.block[i] <= limits::MAX_BLOCK_DIM[i])
        && threads <= limits::MAX_THREADS_PER_BLOCK as u64;
    match kernel.max_ntid {
        Some(m) if device_ok && threads > m as u64 => CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES,
        _ => CUDA_ERROR_INVALID_VALUE,
    }
}

/// Run a kernel to completion. A fault returns success and becomes the sticky error.
unsafe fn launch(
    d: &mut Driver,
    hfunc: CUfunction,
    cfg: LaunchConfig,
    stream: CUstream,
    params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> DrvResult {
    let f = d.dev.function(hfunc)?;
    d.dev.stream(stream)?;
    let (module, entry) = d.dev.kernel(&f)?;
    let kernel = &module.kernels[entry];
    let slices = param_slices(kernel, params, extra)?;
    if cfg.shared_bytes > f.max_dynamic_shared {
        return Err(invalid(format!(
            "{}: {} bytes of dynamic shared memory, more than the function's \
             CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES ({})",
            kernel.name, cfg.shared_bytes, f.max_dynamic_shared
        )));
    }
    match d.dev.machine.launch(f.kernel, &cfg, &slices) {
        Ok(profile) => {
            d.log_profile(&kernel.name, &cfg, &profile);
            Ok(())
        }
        Err(EmuError::Fault(fault)) => {
            let code = fault_code(fault.kind);
            let name = error_entry(code)
                .and_then(|e| e.1.to_str().ok())
                .unwrap_or("?");
            warn(format_args!(
                "========= ptxemu: {fault}\n=========     the launch returned CUDA_SUCCESS; \
                 the next call on the context returns {name} ({code}) until the context is reset"
            ));
            remember(code, &format!("{}: {fault}", nvidia_text(code)));
            d.dev.sticky = Some(code);
            Ok(())
        }
        Err(EmuError::InvalidLaunch(msg)) => {
            Err(DrvErr::new(invalid_launch_code(kernel, &cfg), msg))
        }
        Err(e) => Err(e.into()),
    }
}

#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn cuLaunchKernel(
    f: CUfunction,
    grid_dim_x: c_uint,
    grid_dim_y: c_uint,
    grid_dim_z: c_uint,
    block_dim_x: c_uint,
    block_dim_y: c_uint,
    block_dim_z: c_uint,
    shared_mem_bytes: c_uint,
    h_stream: CUstream,
    kernel_params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> CUresult {
    let cfg = LaunchConfig {
        grid: [grid_dim_x, grid_dim_y, grid_dim_z],
        block: [block_dim_x, block_dim_y, block_dim_z],
        shared_bytes: shared_mem_bytes,
    };
    call("cuLaunchKernel", Level::Work, |d| {
        launch(d, f, cfg, h_stream, kernel_params, extra)
    })
}

/// Launch attributes that mean nothing on a synchronous device are accepted (`IGNORE`,
/// `ACCESS_POLICY_WINDOW`, `SYNCHRONIZATION_POLICY`, `PROGRAMMATIC_STREAM_SERIALIZATION`,
/// `PRIORITY`, `MEM_SYNC_DOMAIN_MAP`, `MEM_SYNC_DOMAIN`); cooperative and cluster launches and
/// programmatic events are `CUDA_ERROR_NOT_SUPPORTED`.
#[no_mangle]
pub unsafe extern "C" fn cuLaunchKernelEx(
    config: *const CUlaunchConfig,
    f: CUfunction,
    kernel_params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> CUresult {
    call("cuLaunchKernelEx", Level::Work, |d| {
        if config.is_null() {
            return Err(invalid("config is NULL"));
        }
        let c = &*config;
        if c.num_attrs > 0 && c.attrs.is_null() {
            return Err(invalid("config->attrs is NULL"));
        }
        for i in 0..c.num_attrs as usize {
            let id = (*c.attrs.add(i)).id;
            if !matches!(id, 0 | 1 | 3 | 6 | 8 | 9 | 10) {
                return Err(DrvErr::new(
                    CUDA_ERROR_NOT_SUPPORTED,
                    format!("launch attribute {id} (cooperative, cluster or programmatic launch)"),
                ));
            }
        }
        let cfg = LaunchConfig {
            grid: [c.grid_dim_x, c.grid_dim_y, c.grid_dim_z],
            block: [c.block_dim_x, c.block_dim_y, c.block_dim_z],
            shared_bytes: c.shared_mem_bytes,
        };
        launch(d, f, cfg, c.h_stream, kernel_params, extra)
    })
}

// ---------------------------------------------------------------------------------------------
// Occupancy
// ---------------------------------------------------------------------------------------------

/// Resident blocks per SM of an H100 for this kernel and block size, limited by blocks (32),
/// threads (2048) and shared memory (228 KiB, 1 KiB reserved per block) per SM. Registers are not
/// a limit: the interpreter's count is of virtual registers, which says nothing about a GPU's.
unsafe fn max_active_blocks(
    name: &'static str,
    num_blocks: *mut c_int,
    hfunc: CUfunction,
    block_size: c_int,
    dyn_smem: usize,
) -> CUresult {
    call(name, Level::Context, |d| {
        let o = out(num_blocks, "numBlocks")?;
        let f = d.dev.function(hfunc)?;
        let (module, entry) = d.dev.kernel(&f)?;
        let kernel = &module.kernels[entry];
        let max_threads = kernel.max_ntid.unwrap_or(limits::MAX_THREADS_PER_BLOCK);
        if block_size <= 0 {
            return Err(invalid(format!("blockSize {block_size}")));
        }
        if block_size as u32 > max_threads {
            o.set(0);
            return Ok(());
        }
        let warps = (block_size as usize).div_ceil(limits::WARP_SIZE as usize);
        let by_threads = THREADS_PER_SM / (warps * limits::WARP_SIZE as usize);
        let shared = kernel.shared_bytes as usize + dyn_smem + RESERVED_SHARED_PER_BLOCK;
        let by_shared = SHARED_PER_SM / shared;
        o.set(by_threads.min(by_shared).min(BLOCKS_PER_SM) as c_int);
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuOccupancyMaxActiveBlocksPerMultiprocessor(
    num_blocks: *mut c_int,
    func: CUfunction,
    block_size: c_int,
    dynamic_smem_size: usize,
) -> CUresult {
    max_active_blocks(
        "cuOccupancyMaxActiveBlocksPerMultiprocessor",
        num_blocks,
        func,
        block_size,
        dynamic_smem_size,
    )
}

/// The flags (`CU_OCCUPANCY_DISABLE_CACHING_OVERRIDE`) change nothing here.
#[no_mangle]
pub unsafe extern "C" fn cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(
    num_blocks: *mut c_int,
    func: CUfunction,
    block_size: c_int,
    dynamic_smem_size: usize,
    _flags: c_uint,
) -> CUresult {
    max_active_blocks(
        "cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags",
        num_blocks,
        func,
        block_size,
        dynamic_smem_size,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The only test of this binary that touches the driver state, so nothing has called `cuInit`.
    #[test]
    fn refusals_before_init_and_panics() {
        let mut n = 0;
        assert_eq!(
            unsafe { cuDeviceGetCount(&mut n) },
            CUDA_ERROR_NOT_INITIALIZED
        );
        let mut v = 0;
        assert_eq!(unsafe { cuDriverGetVersion(&mut v) }, CUDA_SUCCESS);
        assert_eq!(guard("cuTest", || panic!("boom")), CUDA_ERROR_UNKNOWN);
        let mut p = std::ptr::null();
        assert_eq!(
            unsafe { cuGetErrorString(CUDA_ERROR_UNKNOWN, &mut p) },
            CUDA_SUCCESS
        );
        let text = unsafe { CStr::from_ptr(p) }.to_str().unwrap();
        assert_eq!(text, "unknown error: cuTest: ptxemu panicked: boom");
    }
}

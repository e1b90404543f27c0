//! The stand-in driver's C API, called directly as Rust functions.
//!
//! The driver is one process-wide state, so the tests take turns ([`session`]) and each ends by
//! releasing the primary context to zero, which destroys everything it made (and a sticky fault).
//! `PTXEMU_PROFILE` is set before the first `cuInit`, so every launch of this binary is profiled.
//!
//! Tests marked **[PTX]** load and launch the tiny kernel [`STORE_PTX`] (`*dst = value`): they
//! need the real parser and interpreter, or stubs that do the same.

use ptxemu::driver::*;
use ptxemu::LaunchProfile;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::path::PathBuf;
use std::ptr::{null, null_mut};
use std::sync::{Mutex, MutexGuard, Once};

/// `*dst = value`, as NVRTC would write it for
/// `__global__ void store_u32(unsigned value, unsigned *dst) { *dst = value; }`.
const STORE_PTX: &str = "\
.version 8.0
.target sm_90
.address_size 64

.visible .entry store_u32(
\t.param .u32 store_u32_param_0,
\t.param .u64 store_u32_param_1
)
{
\t.reg .b32 \t%r<2>;
\t.reg .b64 \t%rd<3>;

\tld.param.u32 \t%r1, [store_u32_param_0];
\tld.param.u64 \t%rd1, [store_u32_param_1];
\tcvta.to.global.u64 \t%rd2, %rd1;
\tst.global.u32 \t[%rd2], %r1;
\tret;
}
";

static SERIAL: Mutex<()> = Mutex::new(());
static PROFILE: Once = Once::new();

fn profile_path() -> PathBuf {
    std::env::temp_dir().join(format!("ptxemu-driver-test-{}.csv", std::process::id()))
}

/// The driver to oneself: initialised, the primary context retained and current.
struct Session {
    ctx: CUcontext,
    _turn: MutexGuard<'static, ()>,
}

fn session() -> Session {
    let turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    PROFILE.call_once(|| {
        let _ = std::fs::remove_file(profile_path());
        std::env::set_var("PTXEMU_PROFILE", profile_path());
    });
    let mut ctx = null_mut();
    unsafe {
        assert_eq!(cuInit(0), CUDA_SUCCESS);
        assert_eq!(cuDevicePrimaryCtxRetain(&mut ctx, 0), CUDA_SUCCESS);
        assert_eq!(cuCtxSetCurrent(ctx), CUDA_SUCCESS);
    }
    Session { ctx, _turn: turn }
}

impl Drop for Session {
    fn drop(&mut self) {
        unsafe {
            while cuDevicePrimaryCtxRelease_v2(0) == CUDA_SUCCESS {}
            cuCtxSetCurrent(null_mut());
        }
    }
}

fn error_string(code: CUresult) -> String {
    let mut p: *const c_char = null();
    assert_eq!(unsafe { cuGetErrorString(code, &mut p) }, CUDA_SUCCESS);
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn attribute(attrib: c_uint) -> c_int {
    let mut v = -1;
    assert_eq!(
        unsafe { cuDeviceGetAttribute(&mut v, attrib, 0) },
        CUDA_SUCCESS
    );
    v
}

fn alloc(bytes: usize) -> CUdeviceptr {
    let mut p = 0;
    assert_eq!(unsafe { cuMemAlloc_v2(&mut p, bytes) }, CUDA_SUCCESS);
    p
}

fn read_u32(p: CUdeviceptr) -> u32 {
    let mut v = 0u32;
    let r = unsafe { cuMemcpyDtoH_v2(&mut v as *mut u32 as *mut c_void, p, 4) };
    assert_eq!(r, CUDA_SUCCESS);
    v
}

fn load_store_kernel() -> (CUmodule, CUfunction) {
    let ptx = CString::new(STORE_PTX).unwrap();
    let (mut module, mut f) = (null_mut(), null_mut());
    unsafe {
        assert_eq!(
            cuModuleLoadData(&mut module, ptx.as_ptr() as *const c_void),
            CUDA_SUCCESS
        );
        assert_eq!(
            cuModuleGetFunction(&mut f, module, c"store_u32".as_ptr()),
            CUDA_SUCCESS
        );
    }
    (module, f)
}

/// Launch `store_u32(value, dst)` on `grid` × `block` threads through `kernelParams`.
fn launch_store(f: CUfunction, value: u32, dst: CUdeviceptr, grid: u32, block: u32) -> CUresult {
    let (mut value, mut dst) = (value, dst);
    let mut params = [
        &mut value as *mut u32 as *mut c_void,
        &mut dst as *mut u64 as *mut c_void,
    ];
    unsafe {
        cuLaunchKernel(
            f,
            grid,
            1,
            1,
            block,
            1,
            1,
            0,
            null_mut(),
            params.as_mut_ptr(),
            null_mut(),
        )
    }
}

/// Launch `store_u32` with a parameter buffer of `size` bytes through `extra`.
fn launch_extra(f: CUfunction, buf: &mut [u8], size: usize) -> CUresult {
    let mut size = size;
    let mut extra = [
        CU_LAUNCH_PARAM_BUFFER_POINTER as *mut c_void,
        buf.as_mut_ptr() as *mut c_void,
        CU_LAUNCH_PARAM_BUFFER_SIZE as *mut c_void,
        &mut size as *mut usize as *mut c_void,
        CU_LAUNCH_PARAM_END as *mut c_void,
    ];
    unsafe {
        cuLaunchKernel(
            f,
            1,
            1,
            1,
            1,
            1,
            1,
            0,
            null_mut(),
            null_mut(),
            extra.as_mut_ptr(),
        )
    }
}

#[test]
fn init_device_attributes_and_context() {
    let s = session();
    unsafe {
        let mut v = 0;
        assert_eq!(cuDriverGetVersion(&mut v), CUDA_SUCCESS);
        assert!(v >= 12060, "{v}");
        assert_eq!(cuInit(1), CUDA_ERROR_INVALID_VALUE);

        let mut n = 0;
        assert_eq!(cuDeviceGetCount(&mut n), CUDA_SUCCESS);
        assert_eq!(n, 1);
        let mut dev = -1;
        assert_eq!(cuDeviceGet(&mut dev, 0), CUDA_SUCCESS);
        assert_eq!(dev, 0);
        assert_eq!(cuDeviceGet(&mut dev, 1), CUDA_ERROR_INVALID_DEVICE);
        assert_eq!(cuDeviceGet(null_mut(), 0), CUDA_ERROR_INVALID_VALUE);

        let mut name = [0 as c_char; 128];
        assert_eq!(cuDeviceGetName(name.as_mut_ptr(), 128, 0), CUDA_SUCCESS);
        let name = CStr::from_ptr(name.as_ptr()).to_str().unwrap().to_string();
        assert!(name.contains("ptxemu") && name.contains("sm_90"), "{name}");
        let mut short = [1 as c_char; 7];
        assert_eq!(cuDeviceGetName(short.as_mut_ptr(), 7, 0), CUDA_SUCCESS);
        assert_eq!(CStr::from_ptr(short.as_ptr()).to_str().unwrap(), "ptxemu");

        let mut uuid = CUuuid { bytes: [0; 16] };
        assert_eq!(cuDeviceGetUuid(&mut uuid, 0), CUDA_SUCCESS);
        assert_ne!(uuid.bytes, [0; 16]);
        let mut total = 0;
        assert_eq!(cuDeviceTotalMem_v2(&mut total, 0), CUDA_SUCCESS);
        assert_eq!(total as u64, ptxemu::memory::TOTAL_BYTES);
    }
    assert_eq!(attribute(75), 9, "COMPUTE_CAPABILITY_MAJOR");
    assert_eq!(attribute(76), 0, "COMPUTE_CAPABILITY_MINOR");
    assert_eq!(attribute(16), 132, "MULTIPROCESSOR_COUNT");
    assert_eq!(attribute(10), 32, "WARP_SIZE");
    assert_eq!(attribute(1), 1024, "MAX_THREADS_PER_BLOCK");
    assert_eq!(attribute(8), 48 * 1024, "MAX_SHARED_MEMORY_PER_BLOCK");
    assert_eq!(
        attribute(97),
        227 * 1024,
        "MAX_SHARED_MEMORY_PER_BLOCK_OPTIN"
    );
    assert_eq!(attribute(115), 0, "MEMORY_POOLS_SUPPORTED");
    assert_eq!(attribute(41), 1, "UNIFIED_ADDRESSING");
    assert_eq!(attribute(100_000), 0, "unknown attributes are 0");

    unsafe {
        let mut cur = null_mut();
        assert_eq!(cuCtxGetCurrent(&mut cur), CUDA_SUCCESS);
        assert_eq!(cur, s.ctx);
        assert!(!s.ctx.is_null());
        let mut dev = -1;
        assert_eq!(cuCtxGetDevice(&mut dev), CUDA_SUCCESS);
        assert_eq!(dev, 0);
        let (mut flags, mut active) = (9, 0);
        assert_eq!(
            cuDevicePrimaryCtxGetState(0, &mut flags, &mut active),
            CUDA_SUCCESS
        );
        assert_eq!((flags, active), (0, 1));
        let mut again = null_mut();
        assert_eq!(cuDevicePrimaryCtxRetain(&mut again, 0), CUDA_SUCCESS);
        assert_eq!(again, s.ctx, "the primary context's handle is stable");

        // A stack per thread.
        assert_eq!(cuCtxPushCurrent_v2(s.ctx), CUDA_SUCCESS);
        assert_eq!(cuCtxPopCurrent_v2(&mut cur), CUDA_SUCCESS);
        assert_eq!(cuCtxPopCurrent_v2(null_mut()), CUDA_SUCCESS);
        assert_eq!(cuCtxGetCurrent(&mut cur), CUDA_SUCCESS);
        assert!(cur.is_null());
        assert_eq!(cuCtxPopCurrent_v2(&mut cur), CUDA_ERROR_INVALID_CONTEXT);
        let mut p = 0;
        assert_eq!(cuMemAlloc_v2(&mut p, 16), CUDA_ERROR_INVALID_CONTEXT);
        assert!(error_string(CUDA_ERROR_INVALID_CONTEXT).contains("no context is current"));
        assert_eq!(
            cuCtxSetCurrent(0x1234 as CUcontext),
            CUDA_ERROR_INVALID_CONTEXT
        );
        assert_eq!(cuCtxSetCurrent(s.ctx), CUDA_SUCCESS);
        assert_eq!(cuCtxSynchronize(), CUDA_SUCCESS);

        // Other threads have no current context until they set one.
        let ctx = s.ctx as usize;
        std::thread::spawn(move || {
            let mut p = 0;
            assert_eq!(cuMemAlloc_v2(&mut p, 16), CUDA_ERROR_INVALID_CONTEXT);
            assert_eq!(cuCtxSetCurrent(ctx as CUcontext), CUDA_SUCCESS);
            assert_eq!(cuMemAlloc_v2(&mut p, 16), CUDA_SUCCESS);
            assert_eq!(cuMemFree_v2(p), CUDA_SUCCESS);
        })
        .join()
        .unwrap();

        let mut limit = 0;
        assert_eq!(cuCtxGetLimit(&mut limit, 0), CUDA_SUCCESS);
        assert_eq!(limit, 1024, "CU_LIMIT_STACK_SIZE");
        assert_eq!(cuCtxSetLimit(0, 4096), CUDA_SUCCESS);
        assert_eq!(cuCtxGetLimit(&mut limit, 0), CUDA_SUCCESS);
        assert_eq!(limit, 4096);
        assert_eq!(cuCtxGetLimit(&mut limit, 99), CUDA_ERROR_UNSUPPORTED_LIMIT);
    }
}

#[test]
fn error_names_strings_and_export_table() {
    let _s = session();
    unsafe {
        let mut p: *const c_char = null();
        assert_eq!(
            cuGetErrorName(CUDA_ERROR_ILLEGAL_ADDRESS, &mut p),
            CUDA_SUCCESS
        );
        assert_eq!(
            CStr::from_ptr(p).to_str().unwrap(),
            "CUDA_ERROR_ILLEGAL_ADDRESS"
        );
        assert_eq!(cuGetErrorName(12345, &mut p), CUDA_ERROR_INVALID_VALUE);
        assert!(p.is_null());
        assert_eq!(cuGetErrorString(12345, &mut p), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(
            cuGetErrorString(CUDA_SUCCESS, null_mut()),
            CUDA_ERROR_INVALID_VALUE
        );
        let mut table: *const c_void = std::ptr::dangling();
        let id = CUuuid { bytes: [0; 16] };
        assert_eq!(cuGetExportTable(&mut table, &id), CUDA_ERROR_NOT_SUPPORTED);
        assert!(table.is_null());
    }
    assert_eq!(error_string(CUDA_SUCCESS), "no error");
    assert!(error_string(CUDA_ERROR_NOT_SUPPORTED).starts_with("operation not supported"));
}

#[test]
fn alloc_memset_and_copies_round_trip() {
    let _s = session();
    unsafe {
        let (mut free0, mut total) = (0, 0);
        assert_eq!(cuMemGetInfo_v2(&mut free0, &mut total), CUDA_SUCCESS);
        let a = alloc(64);
        let b = alloc(64);
        let mut free1 = 0;
        assert_eq!(cuMemGetInfo_v2(&mut free1, &mut total), CUDA_SUCCESS);
        assert_eq!(free0 - free1, 128);

        let mut stream = null_mut();
        assert_eq!(cuStreamCreate(&mut stream, 1), CUDA_SUCCESS);
        assert_eq!(cuMemsetD8_v2(a, 0xab, 64), CUDA_SUCCESS);
        assert_eq!(
            cuMemsetD32Async(a + 8, 0x0102_0304, 2, stream),
            CUDA_SUCCESS
        );
        let src: Vec<u8> = (0..16).collect();
        assert_eq!(
            cuMemcpyHtoDAsync_v2(a + 32, src.as_ptr() as *const c_void, 16, stream),
            CUDA_SUCCESS
        );
        assert_eq!(cuMemcpyDtoDAsync_v2(b, a, 64, stream), CUDA_SUCCESS);
        assert_eq!(cuStreamSynchronize(stream), CUDA_SUCCESS);
        let mut back = vec![0u8; 64];
        assert_eq!(
            cuMemcpyDtoHAsync_v2(back.as_mut_ptr() as *mut c_void, b, 64, stream),
            CUDA_SUCCESS
        );
        let mut want = vec![0xabu8; 64];
        want[8..16].copy_from_slice(&[4, 3, 2, 1, 4, 3, 2, 1]);
        want[32..48].copy_from_slice(&src);
        assert_eq!(back, want);
        assert_eq!(cuMemsetD8Async(b, 7, 4, stream), CUDA_SUCCESS);
        assert_eq!(cuMemsetD32_v2(b + 4, 9, 1), CUDA_SUCCESS);
        assert_eq!(cuMemcpyDtoD_v2(a, b, 8), CUDA_SUCCESS);
        assert_eq!(read_u32(a), 0x0707_0707);
        assert_eq!(read_u32(a + 4), 9);

        // Refused calls, each with its reason in cuGetErrorString.
        assert_eq!(
            cuMemcpyHtoD_v2(a + 60, src.as_ptr() as *const c_void, 8),
            CUDA_ERROR_INVALID_VALUE
        );
        let why = error_string(CUDA_ERROR_INVALID_VALUE);
        assert!(
            why.starts_with("invalid argument: cuMemcpyHtoD_v2: "),
            "{why}"
        );
        assert!(why.contains("past the end"), "{why}");
        assert_eq!(cuMemcpyHtoD_v2(a, null(), 8), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(cuMemsetD32_v2(a + 2, 0, 1), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(cuMemAlloc_v2(null_mut(), 8), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(cuMemAlloc_v2(&mut 0, 0), CUDA_ERROR_INVALID_VALUE);
        let mut huge = 0;
        assert_eq!(cuMemAlloc_v2(&mut huge, 1 << 40), CUDA_ERROR_OUT_OF_MEMORY);
        assert_eq!(cuMemFree_v2(a + 1), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(cuMemFree_v2(0), CUDA_SUCCESS);
        assert_eq!(cuMemFree_v2(a), CUDA_SUCCESS);
        assert_eq!(cuMemFree_v2(a), CUDA_ERROR_INVALID_VALUE, "double free");
        let mut c = 0;
        assert_eq!(cuMemAllocAsync(&mut c, 32, stream), CUDA_SUCCESS);
        assert_eq!(cuMemFreeAsync(c, stream), CUDA_SUCCESS);
        assert_eq!(cuMemFree_v2(b), CUDA_SUCCESS);
        assert_eq!(cuStreamDestroy_v2(stream), CUDA_SUCCESS);

        // Pinned host memory is real memory, checked on free.
        let mut h = null_mut();
        assert_eq!(cuMemHostAlloc(&mut h, 4096, 0), CUDA_SUCCESS);
        std::slice::from_raw_parts_mut(h as *mut u8, 4096).fill(5);
        let mut h2 = null_mut();
        assert_eq!(cuMemAllocHost_v2(&mut h2, 16), CUDA_SUCCESS);
        assert_eq!(cuMemFreeHost(h), CUDA_SUCCESS);
        assert_eq!(cuMemFreeHost(h), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(
            cuMemFreeHost(src.as_ptr() as *mut c_void),
            CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(cuMemFreeHost(h2), CUDA_SUCCESS);
        assert_eq!(cuMemHostAlloc(&mut h, 16, 0x100), CUDA_ERROR_INVALID_VALUE);
    }
}

#[test]
fn handles_are_validated_and_events_time() {
    let _s = session();
    unsafe {
        for special in [0usize, 1, 2] {
            assert_eq!(cuStreamSynchronize(special as CUstream), CUDA_SUCCESS);
        }
        let bogus = 0xdead_beef_usize as *mut c_void;
        assert_eq!(cuStreamSynchronize(bogus), CUDA_ERROR_INVALID_HANDLE);
        assert!(error_string(CUDA_ERROR_INVALID_HANDLE).contains("0xdeadbeef"));
        let mut s = null_mut();
        assert_eq!(cuStreamCreateWithPriority(&mut s, 0, -1), CUDA_SUCCESS);
        assert_eq!(cuStreamQuery(s), CUDA_SUCCESS);
        assert_eq!(cuStreamDestroy_v2(s), CUDA_SUCCESS);
        assert_eq!(cuStreamDestroy_v2(s), CUDA_ERROR_INVALID_HANDLE);
        assert_eq!(cuStreamDestroy_v2(null_mut()), CUDA_ERROR_INVALID_HANDLE);
        assert_eq!(cuStreamCreate(&mut s, 4), CUDA_ERROR_INVALID_VALUE);

        let (mut e0, mut e1, mut untimed) = (null_mut(), null_mut(), null_mut());
        assert_eq!(cuEventCreate(&mut e0, 0), CUDA_SUCCESS);
        assert_eq!(cuEventCreate(&mut e1, 0), CUDA_SUCCESS);
        assert_eq!(cuEventCreate(&mut untimed, 2), CUDA_SUCCESS);
        let mut ms = 0f32;
        assert_eq!(
            cuEventElapsedTime(&mut ms, e0, e1),
            CUDA_ERROR_INVALID_HANDLE,
            "not recorded"
        );
        assert_eq!(cuEventRecord(e0, null_mut()), CUDA_SUCCESS);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(cuEventRecordWithFlags(e1, 2 as CUstream, 0), CUDA_SUCCESS);
        assert_eq!(cuEventSynchronize(e1), CUDA_SUCCESS);
        assert_eq!(cuEventQuery(e1), CUDA_SUCCESS);
        assert_eq!(cuEventElapsedTime(&mut ms, e0, e1), CUDA_SUCCESS);
        assert!((19.0..2000.0).contains(&ms), "{ms} ms");
        assert_eq!(cuEventElapsedTime_v2(&mut ms, e1, e0), CUDA_SUCCESS);
        assert!(ms < 0.0);
        assert_eq!(cuEventRecord(untimed, null_mut()), CUDA_SUCCESS);
        assert_eq!(
            cuEventElapsedTime(&mut ms, e0, untimed),
            CUDA_ERROR_INVALID_HANDLE
        );
        assert_eq!(cuStreamWaitEvent(null_mut(), e0, 0), CUDA_SUCCESS);
        assert_eq!(
            cuStreamWaitEvent(null_mut(), bogus, 0),
            CUDA_ERROR_INVALID_HANDLE
        );
        assert_eq!(cuEventRecord(e0, bogus), CUDA_ERROR_INVALID_HANDLE);
        for e in [e0, e1, untimed] {
            assert_eq!(cuEventDestroy_v2(e), CUDA_SUCCESS);
        }
        assert_eq!(cuEventSynchronize(e0), CUDA_ERROR_INVALID_HANDLE);

        let mut f = null_mut();
        assert_eq!(
            cuModuleGetFunction(&mut f, bogus, c"k".as_ptr()),
            CUDA_ERROR_INVALID_HANDLE
        );
        assert_eq!(cuModuleUnload(bogus), CUDA_ERROR_INVALID_HANDLE);
        let mut v = 0;
        assert_eq!(
            cuFuncGetAttribute(&mut v, 0, bogus),
            CUDA_ERROR_INVALID_HANDLE
        );
        let r = cuLaunchKernel(
            bogus,
            1,
            1,
            1,
            1,
            1,
            1,
            0,
            null_mut(),
            null_mut(),
            null_mut(),
        );
        assert_eq!(r, CUDA_ERROR_INVALID_HANDLE);
    }
}

#[test]
fn images_that_are_not_ptx_are_refused() {
    let _s = session();
    unsafe {
        let mut m = null_mut();
        let cubin = b"\x7fELF\x02\x01\x01\x33\0\0\0\0";
        assert_eq!(
            cuModuleLoadData(&mut m, cubin.as_ptr() as *const c_void),
            CUDA_ERROR_NO_BINARY_FOR_GPU
        );
        assert!(error_string(CUDA_ERROR_NO_BINARY_FOR_GPU).contains("CUBIN"));
        assert_eq!(
            cuModuleLoadData(&mut m, c"hello".as_ptr() as *const c_void),
            CUDA_ERROR_INVALID_IMAGE
        );
        assert_eq!(cuModuleLoadData(&mut m, null()), CUDA_ERROR_INVALID_VALUE);
        let mut p = c"/nonexistent/ptxemu.ptx".as_ptr();
        assert_eq!(cuModuleLoad(&mut m, p), CUDA_ERROR_FILE_NOT_FOUND);
        p = null();
        assert_eq!(cuModuleLoad(&mut m, p), CUDA_ERROR_INVALID_VALUE);
    }
}

/// **[PTX]** A module that does not parse is `CUDA_ERROR_INVALID_PTX`, with the parser's reason.
#[test]
fn ptx_that_does_not_parse_is_invalid_ptx() {
    let _s = session();
    let bad = c".version 8.0\n.target sm_90\n.address_size 64\n\n.visible .entry bad()\n{\n\tsyntax error;\n}\n";
    let mut m = null_mut();
    assert_eq!(
        unsafe { cuModuleLoadData(&mut m, bad.as_ptr() as *const c_void) },
        CUDA_ERROR_INVALID_PTX
    );
    assert!(error_string(CUDA_ERROR_INVALID_PTX)
        .starts_with("a PTX JIT compilation failed: cuModuleLoadData: "));
}

/// **[PTX]** Parameters by `kernelParams` and by `extra`; refused launches are not sticky.
#[test]
fn launch_through_kernel_params_and_extra() {
    let _s = session();
    let (module, f) = load_store_kernel();
    let dst = alloc(4);
    unsafe {
        let mut again = null_mut();
        assert_eq!(
            cuModuleGetFunction(&mut again, module, c"store_u32".as_ptr()),
            CUDA_SUCCESS
        );
        assert_eq!(again, f, "the same kernel gives the same handle");
        assert_eq!(
            cuModuleGetFunction(&mut again, module, c"nope".as_ptr()),
            CUDA_ERROR_NOT_FOUND
        );
        let attr = |a| {
            let mut v = -1;
            assert_eq!(cuFuncGetAttribute(&mut v, a, f), CUDA_SUCCESS);
            v
        };
        assert_eq!(attr(CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK), 1024);
        assert_eq!(attr(CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES), 0);
        assert_eq!(attr(CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES), 0);
        assert_eq!(attr(CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES), 0);
        assert!(attr(CU_FUNC_ATTRIBUTE_NUM_REGS) > 0);
        assert_eq!(attr(CU_FUNC_ATTRIBUTE_PTX_VERSION), 90);
        assert_eq!(attr(CU_FUNC_ATTRIBUTE_BINARY_VERSION), 90);
        assert_eq!(
            attr(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES),
            48 * 1024
        );
        assert_eq!(
            cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 1 << 20),
            CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(
            cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 1024),
            CUDA_SUCCESS
        );
        assert_eq!(attr(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES), 1024);
        let mut blocks = 0;
        assert_eq!(
            cuOccupancyMaxActiveBlocksPerMultiprocessor(&mut blocks, f, 256, 0),
            CUDA_SUCCESS
        );
        assert_eq!(blocks, 8);

        assert_eq!(launch_store(f, 42, dst, 1, 1), CUDA_SUCCESS);
        assert_eq!(read_u32(dst), 42);

        // extra: value at offset 0, dst at offset 8, 16 bytes in all.
        let mut buf = [0u8; 16];
        buf[..4].copy_from_slice(&7u32.to_le_bytes());
        buf[8..].copy_from_slice(&dst.to_le_bytes());
        assert_eq!(launch_extra(f, &mut buf, 16), CUDA_SUCCESS);
        assert_eq!(read_u32(dst), 7);
        assert_eq!(launch_extra(f, &mut buf, 12), CUDA_ERROR_INVALID_VALUE);
        let why = error_string(CUDA_ERROR_INVALID_VALUE);
        assert!(
            why.contains("12 bytes") && why.contains("16 bytes"),
            "{why}"
        );

        let mut params = [null_mut::<c_void>(); 2];
        let mut extra = [null_mut::<c_void>(); 1];
        let r = cuLaunchKernel(
            f,
            1,
            1,
            1,
            1,
            1,
            1,
            0,
            null_mut(),
            params.as_mut_ptr(),
            extra.as_mut_ptr(),
        );
        assert_eq!(r, CUDA_ERROR_INVALID_VALUE, "both kernelParams and extra");
        let r = cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, null_mut(), null_mut(), null_mut());
        assert_eq!(r, CUDA_ERROR_INVALID_VALUE, "neither");
        let r = cuLaunchKernel(
            f,
            1,
            1,
            1,
            1,
            1,
            1,
            0,
            null_mut(),
            params.as_mut_ptr(),
            null_mut(),
        );
        assert_eq!(r, CUDA_ERROR_INVALID_VALUE, "NULL parameter pointers");
        assert_eq!(
            launch_store(f, 1, dst, 1, 2048),
            CUDA_ERROR_INVALID_VALUE,
            "block too large"
        );
        assert_eq!(
            launch_store(f, 1, dst, 0, 1),
            CUDA_ERROR_INVALID_VALUE,
            "empty grid"
        );
        let mut value = 3u32;
        let mut d = dst;
        let mut params = [
            &mut value as *mut u32 as *mut c_void,
            &mut d as *mut u64 as *mut c_void,
        ];
        let r = cuLaunchKernel(
            f,
            1,
            1,
            1,
            1,
            1,
            1,
            4096,
            null_mut(),
            params.as_mut_ptr(),
            null_mut(),
        );
        assert_eq!(
            r, CUDA_ERROR_INVALID_VALUE,
            "more dynamic shared memory than the attribute allows"
        );
        let config = CUlaunchConfig {
            grid_dim_x: 1,
            grid_dim_y: 1,
            grid_dim_z: 1,
            block_dim_x: 1,
            block_dim_y: 1,
            block_dim_z: 1,
            shared_mem_bytes: 0,
            h_stream: null_mut(),
            attrs: null_mut(),
            num_attrs: 0,
        };
        assert_eq!(
            cuLaunchKernelEx(&config, f, params.as_mut_ptr(), null_mut()),
            CUDA_SUCCESS
        );
        assert_eq!(read_u32(dst), 3);

        // None of that was sticky.
        assert_eq!(cuCtxSynchronize(), CUDA_SUCCESS);
        assert_eq!(cuModuleUnload(module), CUDA_SUCCESS);
        assert_eq!(
            launch_store(f, 1, dst, 1, 1),
            CUDA_ERROR_INVALID_HANDLE,
            "unloaded with its module"
        );
    }
}

/// **[PTX]** A store through a null pointer: the launch succeeds, the fault is sticky, and its text
/// is what `cuGetErrorString` says, until the context is reset.
#[test]
fn a_kernel_fault_is_sticky_until_reset() {
    let _s = session();
    let (module, f) = load_store_kernel();
    let dst = alloc(4);
    unsafe {
        assert_eq!(
            launch_store(f, 1, 0, 1, 1),
            CUDA_SUCCESS,
            "a fault is reported asynchronously"
        );
        assert_eq!(cuStreamSynchronize(null_mut()), CUDA_ERROR_ILLEGAL_ADDRESS);
        let why = error_string(CUDA_ERROR_ILLEGAL_ADDRESS);
        assert!(
            why.starts_with("an illegal memory access was encountered: "),
            "{why}"
        );
        assert!(
            why.contains("out-of-bounds") && why.contains("store_u32"),
            "{why}"
        );
        assert!(why.contains("block (0,0,0) thread (0,0,0)"), "{why}");

        let mut p = 0;
        assert_eq!(cuMemAlloc_v2(&mut p, 4), CUDA_ERROR_ILLEGAL_ADDRESS);
        assert_eq!(read_u32_result(dst), CUDA_ERROR_ILLEGAL_ADDRESS);
        assert_eq!(launch_store(f, 1, dst, 1, 1), CUDA_ERROR_ILLEGAL_ADDRESS);
        assert_eq!(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
        // Context bookkeeping still works (cudarc binds the context before every call).
        let mut cur = null_mut();
        assert_eq!(cuCtxGetCurrent(&mut cur), CUDA_SUCCESS);
        assert_eq!(cuCtxSetCurrent(cur), CUDA_SUCCESS);
        assert_eq!(
            error_string(CUDA_ERROR_ILLEGAL_ADDRESS),
            why,
            "the message stays"
        );

        assert_eq!(cuDevicePrimaryCtxReset_v2(0), CUDA_SUCCESS);
        assert_eq!(cuCtxSynchronize(), CUDA_SUCCESS);
        assert_eq!(
            cuModuleUnload(module),
            CUDA_ERROR_INVALID_HANDLE,
            "the reset destroyed it"
        );
        let (_, f) = load_store_kernel();
        let dst = alloc(4);
        assert_eq!(launch_store(f, 5, dst, 1, 1), CUDA_SUCCESS);
        assert_eq!(read_u32(dst), 5);
    }
}

fn read_u32_result(p: CUdeviceptr) -> CUresult {
    let mut v = 0u32;
    unsafe { cuMemcpyDtoH_v2(&mut v as *mut u32 as *mut c_void, p, 4) }
}

/// **[PTX]** `PTXEMU_PROFILE` gets the CSV header once, then a row per launch.
#[test]
fn profile_rows_are_appended() {
    let _s = session();
    let (_, f) = load_store_kernel();
    let dst = alloc(4);
    assert_eq!(launch_store(f, 1, dst, 2, 32), CUDA_SUCCESS);
    let text = std::fs::read_to_string(profile_path()).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(LaunchProfile::CSV_HEADER));
    assert!(!lines.clone().any(|l| l == LaunchProfile::CSV_HEADER));
    let row = lines
        .find(|l| l.starts_with("store_u32,2x1x1,32x1x1,"))
        .unwrap_or_else(|| panic!("no row for the launch in\n{text}"));
    assert_eq!(
        row.split(',').count(),
        LaunchProfile::CSV_HEADER.split(',').count()
    );
}

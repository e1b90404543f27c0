//! The CUDA backend: [`CudaStorage`] (a device buffer) and [`CudaDevice`] implement the op
//! interface of [`crate::backend`] with hand-written kernels (`kernels/*.cu`), compiled at run time
//! by NVRTC and launched through cudarc. No cuBLAS, no cuDNN.
//!
//! Layout: [`runtime`] owns the context, the one stream, the compiled modules and the staging
//! ring; [`alloc`] the caching allocator; one launch file per kernel file (`gemm.rs` launches
//! `kernels/gemm.cu`, …) checks arguments, picks the launch shape and queues the kernel. Ops never
//! wait for the GPU; [`BackendStorage::to_vec`] is the synchronisation point, and it is where an
//! error of an earlier kernel surfaces.
//!
//! Everything here returns `Result`; nothing touches cudarc before [`cuda_status`] has checked
//! that libcuda and libnvrtc can be loaded (cudarc panics otherwise).

pub mod alloc;
pub mod runtime;

mod adam;
mod conv;
mod copy;
mod elementwise;
mod gemm;
mod index;
mod loss;
mod random;
mod reduce;
mod softmax;
mod vae;

pub use adam::AdamTensors;
pub use alloc::{AllocStats, DeviceBuffer};
pub use runtime::{cuda_status, CudaRuntime, GemmPrecision};

use crate::backend::{
    AdamStep, BackendDevice, BackendStorage, BinaryOp, Conv2dShape, MatmulShape, ReduceOp, UnaryOp,
};
use crate::rng::RngKey;
use crate::{Device, Error, Result};
use cudarc::driver::LaunchConfig;
use std::sync::Arc;

/// A buffer of f32 on a CUDA device (memory from the caching allocator; returned to it on drop).
pub struct CudaStorage {
    buf: DeviceBuffer,
    len: usize,
}

impl std::fmt::Debug for CudaStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CudaStorage(cuda:{}, {} f32)",
            self.buf.runtime().ordinal(),
            self.len
        )
    }
}

/// Check that a buffer has the number of elements an op needs.
pub(crate) fn check_len(op: &'static str, what: &str, got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(Error::invalid(
            op,
            format!("{what} has {got} elements, expected {want}"),
        ));
    }
    Ok(())
}

/// `v` as u32, or an error: the kernels index with 32-bit integers where it is faster. Limited to
/// 2³¹ − 1 so that a grid-stride loop `i += gridDim.x · blockDim.x` (stride ≤ 2²⁸) cannot wrap.
pub(crate) fn to_u32(op: &'static str, what: &str, v: usize) -> Result<u32> {
    if v > i32::MAX as usize {
        return Err(Error::invalid(
            op,
            format!("{what} = {v} exceeds the kernels' 31-bit index range"),
        ));
    }
    Ok(v as u32)
}

/// `v` as i32, or an error (GEMM and convolution dimensions).
pub(crate) fn to_i32(op: &'static str, what: &str, v: usize) -> Result<i32> {
    i32::try_from(v)
        .map_err(|_| Error::invalid(op, format!("{what} = {v} does not fit in 31 bits")))
}

/// A 1-D grid for a grid-stride kernel over `n` items, `block` threads per block.
pub(crate) fn grid_1d(n: u64, block: u32) -> LaunchConfig {
    let blocks = n.div_ceil(block as u64).clamp(1, 1 << 20) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (block, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The launch shape of a row kernel (common.cuh): a warp per row for short rows, 8 rows per
/// block; a block of 256–1024 threads per row for long ones.
pub(crate) fn row_config(rows: u32, cols: usize) -> LaunchConfig {
    if cols <= 1024 {
        LaunchConfig {
            grid_dim: (rows.div_ceil(8).max(1), 1, 1),
            block_dim: (32, 8, 1),
            shared_mem_bytes: 0,
        }
    } else {
        let threads = if cols <= 8192 {
            256
        } else if cols <= 32768 {
            512
        } else {
            1024
        };
        LaunchConfig {
            grid_dim: (rows.max(1), 1, 1),
            block_dim: (threads, 1, 1),
            shared_mem_bytes: 0,
        }
    }
}

impl CudaStorage {
    /// A buffer of `len` f32 with undefined contents.
    pub(crate) fn uninit(rt: &Arc<CudaRuntime>, len: usize) -> Result<Self> {
        let bytes = len
            .checked_mul(4)
            .ok_or_else(|| Error::invalid("alloc", format!("{len} f32 overflow a byte count")))?;
        Ok(CudaStorage {
            buf: rt.alloc_bytes(bytes)?,
            len,
        })
    }

    /// A buffer of `len` zeros.
    pub(crate) fn zeroed(rt: &Arc<CudaRuntime>, len: usize) -> Result<Self> {
        let s = Self::uninit(rt, len)?;
        rt.memset_zero(s.ptr(), len * 4)?;
        Ok(s)
    }

    /// The device address of element 0 (0 for an empty buffer).
    pub fn ptr(&self) -> u64 {
        self.buf.ptr()
    }

    /// The runtime of the device this buffer lives on.
    pub fn runtime(&self) -> &Arc<CudaRuntime> {
        self.buf.runtime()
    }

    pub(crate) fn rt(&self) -> &CudaRuntime {
        self.buf.runtime()
    }

    /// An error unless `other` lives on the same device.
    pub(crate) fn same_device(&self, op: &'static str, other: &CudaStorage) -> Result<()> {
        let (a, b) = (self.rt().ordinal(), other.rt().ordinal());
        if a != b {
            return Err(Error::Device(format!(
                "{op}: operands on cuda:{a} and cuda:{b}"
            )));
        }
        Ok(())
    }

    /// A device-side copy.
    pub fn try_clone(&self) -> Result<Self> {
        let out = Self::uninit(self.runtime(), self.len)?;
        self.rt().copy_dtod(out.ptr(), self.ptr(), self.len * 4)?;
        Ok(out)
    }

    /// [`BackendStorage::matmul`] with an explicit precision (the trait method uses the runtime's
    /// setting, F32 unless changed with [`CudaRuntime::set_gemm_precision`]).
    pub fn matmul_with(
        &self,
        rhs: &Self,
        s: &MatmulShape,
        precision: GemmPrecision,
    ) -> Result<Self> {
        gemm::matmul(self, rhs, s, precision)
    }
}

impl BackendStorage for CudaStorage {
    fn device(&self) -> Device {
        Device::Cuda(self.rt().ordinal())
    }
    fn len(&self) -> usize {
        self.len
    }
    fn to_vec(&self) -> Result<Vec<f32>> {
        self.rt().download_f32(self.ptr(), self.len)
    }
    fn unary(&self, op: UnaryOp) -> Result<Self> {
        elementwise::unary(self, op)
    }
    fn unary_backward(&self, op: UnaryOp, grad: &Self) -> Result<Self> {
        elementwise::unary_backward(self, op, grad)
    }
    fn binary(
        &self,
        op: BinaryOp,
        rhs: &Self,
        lhs_dims: &[usize],
        rhs_dims: &[usize],
        out_dims: &[usize],
    ) -> Result<Self> {
        elementwise::binary(self, op, rhs, lhs_dims, rhs_dims, out_dims)
    }
    fn reduce(&self, op: ReduceOp, outer: usize, len: usize, inner: usize) -> Result<Self> {
        reduce::reduce(self, op, outer, len, inner)
    }
    fn softmax_rows(&self, rows: usize, cols: usize, log: bool) -> Result<Self> {
        softmax::softmax_rows(self, rows, cols, log)
    }
    fn logsumexp_rows(&self, rows: usize, cols: usize) -> Result<Self> {
        softmax::logsumexp_rows(self, rows, cols)
    }
    fn matmul(&self, rhs: &Self, s: &MatmulShape) -> Result<Self> {
        gemm::matmul(self, rhs, s, self.rt().gemm_precision())
    }
    fn conv2d(&self, w: &Self, s: &Conv2dShape) -> Result<Self> {
        conv::conv2d(self, w, s)
    }
    fn conv2d_backward_input(&self, w: &Self, s: &Conv2dShape) -> Result<Self> {
        conv::conv2d_backward_input(self, w, s)
    }
    fn conv2d_backward_weight(&self, grad_out: &Self, s: &Conv2dShape) -> Result<Self> {
        conv::conv2d_backward_weight(self, grad_out, s)
    }
    fn transpose(&self, dims: &[usize], d0: usize, d1: usize) -> Result<Self> {
        copy::transpose(self, dims, d0, d1)
    }
    fn copy2d(
        &self,
        dst: &mut Self,
        rows: usize,
        cols: usize,
        src_stride: usize,
        dst_stride: usize,
        src_off: usize,
        dst_off: usize,
    ) -> Result<()> {
        copy::copy2d(
            self, dst, rows, cols, src_stride, dst_stride, src_off, dst_off,
        )
    }
    fn index_select_rows(&self, ids: &[u32], row_len: usize) -> Result<Self> {
        index::index_select_rows(self, ids, row_len)
    }
    fn index_add_rows(&self, ids: &[u32], row_len: usize, out_rows: usize) -> Result<Self> {
        index::index_add_rows(self, ids, row_len, out_rows)
    }
    fn bce_with_logits_rows(&self, targets: &Self, rows: usize, cols: usize) -> Result<Self> {
        loss::bce_with_logits_rows(self, targets, rows, cols)
    }
    fn bce_with_logits_rows_backward(
        &self,
        targets: &Self,
        grad_rows: &Self,
        rows: usize,
        cols: usize,
    ) -> Result<Self> {
        loss::bce_with_logits_rows_backward(self, targets, grad_rows, rows, cols)
    }
    fn adam_step(&mut self, grad: &Self, m: &mut Self, v: &mut Self, s: &AdamStep) -> Result<()> {
        let rt = self.runtime().clone();
        adam::adam_step_multi(
            &rt,
            &mut [AdamTensors {
                param: self,
                grad,
                m,
                v,
            }],
            s,
        )
    }
    fn scale_in_place(&mut self, factor: f32) -> Result<()> {
        elementwise::scale_in_place(self, factor)
    }
}

/// CUDA device `ordinal` as a creator of buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CudaDevice {
    pub ordinal: usize,
}

impl CudaDevice {
    /// Device `ordinal` (nothing is initialised until the first buffer is made).
    pub fn new(ordinal: usize) -> Self {
        CudaDevice { ordinal }
    }

    /// The device's runtime (created on first call).
    pub fn runtime(&self) -> Result<Arc<CudaRuntime>> {
        CudaRuntime::get(self.ordinal)
    }

    /// One Adam step on many tensors in a single multi-tensor kernel launch.
    pub fn adam_step_multi(&self, tensors: &mut [AdamTensors<'_>], s: &AdamStep) -> Result<()> {
        adam::adam_step_multi(&self.runtime()?, tensors, s)
    }

    /// Block until every queued kernel on this device has finished.
    pub fn synchronize(&self) -> Result<()> {
        self.runtime()?.synchronize()
    }
}

impl BackendDevice for CudaDevice {
    type Storage = CudaStorage;
    fn storage_from_slice(&self, data: &[f32]) -> Result<CudaStorage> {
        let rt = self.runtime()?;
        let s = CudaStorage::uninit(&rt, data.len())?;
        rt.upload_bytes(bytemuck::cast_slice(data), s.ptr())?;
        Ok(s)
    }
    fn zeros(&self, n: usize) -> Result<CudaStorage> {
        CudaStorage::zeroed(&self.runtime()?, n)
    }
    fn rand_uniform(&self, n: usize, key: RngKey) -> Result<CudaStorage> {
        random::rand_uniform(&self.runtime()?, n, key)
    }
    fn rand_normal(&self, n: usize, key: RngKey) -> Result<CudaStorage> {
        random::rand_normal(&self.runtime()?, n, key)
    }
}

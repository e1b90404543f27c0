//! The CPU backend: a `Vec<f32>` per buffer and rayon kernels. It is the reference every CUDA
//! kernel is compared against, so its kernels favour plain, checkable loops; the two hot spots
//! (GEMM and convolution) are blocked and vectorised in their own files.

pub mod adam;
pub mod conv;
pub mod copy;
pub mod elbo;
pub mod elementwise;
pub mod gemm;
pub mod gumbel;
pub mod loss;
pub mod math;
pub mod mixup;
pub mod pool;
pub mod reduce;
pub mod reparam;

use crate::backend::{
    AdamStep, BackendDevice, BackendStorage, BinaryOp, Conv2dShape, MatmulShape, ReduceOp, UnaryOp,
};
use crate::rng::{normal_at, uniform_at, RngKey};
use crate::{memory, Device, Error, Result};
use rayon::prelude::*;

/// A host buffer. Dropping it gives the memory to the buffer cache ([`pool`]) for reuse.
#[derive(Debug, PartialEq)]
pub struct CpuStorage(pub Vec<f32>);

impl Clone for CpuStorage {
    /// An identity map: a cached output buffer, filled in parallel.
    fn clone(&self) -> Self {
        CpuStorage(elementwise::map(&self.0, |v| v))
    }
}

impl Drop for CpuStorage {
    fn drop(&mut self) {
        pool::recycle(std::mem::take(&mut self.0));
    }
}

/// The CPU as a device that creates buffers.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuDevice;

/// What a host buffer of `n` values is called in a refusal.
fn tensor_of(n: usize) -> String {
    format!("a tensor of {n} values")
}

fn check_len(op: &'static str, what: &str, got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(Error::invalid(
            op,
            format!("{what} has {got} elements, expected {want}"),
        ));
    }
    Ok(())
}

impl BackendStorage for CpuStorage {
    fn device(&self) -> Device {
        Device::Cpu
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn to_vec(&self) -> Result<Vec<f32>> {
        Ok(self.0.clone())
    }
    fn unary(&self, op: UnaryOp) -> Result<Self> {
        Ok(CpuStorage(elementwise::unary(op, &self.0)))
    }
    fn unary_backward(&self, op: UnaryOp, grad: &Self) -> Result<Self> {
        check_len("unary_backward", "grad", grad.len(), self.len())?;
        Ok(CpuStorage(elementwise::unary_backward(
            op, &self.0, &grad.0,
        )))
    }
    fn binary(
        &self,
        op: BinaryOp,
        rhs: &Self,
        lhs_dims: &[usize],
        rhs_dims: &[usize],
        out_dims: &[usize],
    ) -> Result<Self> {
        check_len("binary", "lhs", self.len(), lhs_dims.iter().product())?;
        check_len("binary", "rhs", rhs.len(), rhs_dims.iter().product())?;
        Ok(CpuStorage(elementwise::binary(
            op, &self.0, &rhs.0, lhs_dims, rhs_dims, out_dims,
        )))
    }
    fn reduce(&self, op: ReduceOp, outer: usize, len: usize, inner: usize) -> Result<Self> {
        check_len("reduce", "input", self.len(), outer * len * inner)?;
        Ok(CpuStorage(reduce::reduce(op, &self.0, outer, len, inner)))
    }
    fn softmax_rows(&self, rows: usize, cols: usize, log: bool) -> Result<Self> {
        check_len("softmax_rows", "input", self.len(), rows * cols)?;
        Ok(CpuStorage(reduce::softmax_rows(&self.0, rows, cols, log)))
    }
    fn logsumexp_rows(&self, rows: usize, cols: usize) -> Result<Self> {
        check_len("logsumexp_rows", "input", self.len(), rows * cols)?;
        Ok(CpuStorage(reduce::logsumexp_rows(&self.0, rows, cols)))
    }
    fn matmul(&self, rhs: &Self, s: &MatmulShape) -> Result<Self> {
        let (lsz, rsz) = (s.m * s.k, s.k * s.n);
        let need_l = (s.batch.max(1) - 1) * s.lhs_batch_stride + lsz;
        let need_r = (s.batch.max(1) - 1) * s.rhs_batch_stride + rsz;
        if s.batch > 0 && (self.len() < need_l || rhs.len() < need_r) {
            return Err(Error::invalid(
                "matmul",
                format!(
                    "{s:?} needs {need_l}/{need_r} elements, got {}/{}",
                    self.len(),
                    rhs.len()
                ),
            ));
        }
        let mut out = pool::zeros(s.batch * s.m * s.n);
        let g = gemm::GemmShape {
            m: s.m,
            n: s.n,
            k: s.k,
            trans_a: s.trans_lhs,
            trans_b: s.trans_rhs,
        };
        for (b, c) in out.chunks_mut((s.m * s.n).max(1)).enumerate().take(s.batch) {
            let a = &self.0[b * s.lhs_batch_stride..b * s.lhs_batch_stride + lsz];
            let bb = &rhs.0[b * s.rhs_batch_stride..b * s.rhs_batch_stride + rsz];
            gemm::gemm(&g, a, bb, c, false);
        }
        Ok(CpuStorage(out))
    }
    fn conv2d(&self, w: &Self, s: &Conv2dShape) -> Result<Self> {
        let (xs, ws, _) = s.sizes();
        check_len("conv2d", "input", self.len(), xs)?;
        check_len("conv2d", "weight", w.len(), ws)?;
        Ok(CpuStorage(conv::conv2d(&self.0, &w.0, s)))
    }
    fn conv2d_backward_input(&self, w: &Self, s: &Conv2dShape) -> Result<Self> {
        let (_, ws, ys) = s.sizes();
        check_len("conv2d_backward_input", "grad", self.len(), ys)?;
        check_len("conv2d_backward_input", "weight", w.len(), ws)?;
        Ok(CpuStorage(conv::conv2d_backward_input(&self.0, &w.0, s)))
    }
    fn conv2d_with_weight_grad(
        &self,
        w: &Self,
        grad_out: &Self,
        s: &Conv2dShape,
    ) -> Result<(Self, Self)> {
        let (xs, ws, ys) = s.sizes();
        check_len("conv2d_with_weight_grad", "input", self.len(), xs)?;
        check_len("conv2d_with_weight_grad", "weight", w.len(), ws)?;
        check_len("conv2d_with_weight_grad", "grad", grad_out.len(), ys)?;
        let (y, dw) = conv::conv2d_with_weight_grad(&self.0, &w.0, &grad_out.0, s);
        Ok((CpuStorage(y), CpuStorage(dw)))
    }
    fn conv2d_backward_weight(&self, grad_out: &Self, s: &Conv2dShape) -> Result<Self> {
        let (xs, _, ys) = s.sizes();
        check_len("conv2d_backward_weight", "input", self.len(), xs)?;
        check_len("conv2d_backward_weight", "grad", grad_out.len(), ys)?;
        Ok(CpuStorage(conv::conv2d_backward_weight(
            &self.0,
            &grad_out.0,
            s,
        )))
    }
    fn transpose(&self, dims: &[usize], d0: usize, d1: usize) -> Result<Self> {
        check_len("transpose", "input", self.len(), dims.iter().product())?;
        if !(d0 < d1 && d1 < dims.len()) {
            return Err(Error::invalid(
                "transpose",
                format!("axes {d0}, {d1} for rank {}", dims.len()),
            ));
        }
        Ok(CpuStorage(copy::transpose(&self.0, dims, d0, d1)))
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
            &self.0, &mut dst.0, rows, cols, src_stride, dst_stride, src_off, dst_off,
        )
    }
    fn index_select_rows(&self, ids: &[u32], row_len: usize) -> Result<Self> {
        Ok(CpuStorage(copy::index_select_rows(&self.0, ids, row_len)?))
    }
    fn index_add_rows(&self, ids: &[u32], row_len: usize, out_rows: usize) -> Result<Self> {
        Ok(CpuStorage(copy::index_add_rows(
            &self.0, ids, row_len, out_rows,
        )?))
    }
    fn bce_with_logits_rows(&self, targets: &Self, rows: usize, cols: usize) -> Result<Self> {
        check_len("bce_with_logits", "logits", self.len(), rows * cols)?;
        check_len("bce_with_logits", "targets", targets.len(), rows * cols)?;
        Ok(CpuStorage(loss::bce_with_logits_rows(
            &self.0, &targets.0, rows, cols,
        )))
    }
    fn bce_with_logits_rows_backward(
        &self,
        targets: &Self,
        grad_rows: &Self,
        rows: usize,
        cols: usize,
    ) -> Result<Self> {
        check_len(
            "bce_with_logits_backward",
            "logits",
            self.len(),
            rows * cols,
        )?;
        check_len(
            "bce_with_logits_backward",
            "targets",
            targets.len(),
            rows * cols,
        )?;
        check_len("bce_with_logits_backward", "grad", grad_rows.len(), rows)?;
        Ok(CpuStorage(loss::bce_with_logits_rows_backward(
            &self.0,
            &targets.0,
            &grad_rows.0,
            cols,
        )))
    }
    fn adam_step(&mut self, grad: &Self, m: &mut Self, v: &mut Self, s: &AdamStep) -> Result<()> {
        let n = self.len();
        check_len("adam_step", "grad", grad.len(), n)?;
        check_len("adam_step", "m", m.len(), n)?;
        check_len("adam_step", "v", v.len(), n)?;
        adam::adam_step(&mut self.0, &grad.0, &mut m.0, &mut v.0, s);
        Ok(())
    }
    fn scale_in_place(&mut self, factor: f32) -> Result<()> {
        self.0
            .par_iter_mut()
            .with_min_len(4096)
            .for_each(|v| *v *= factor);
        Ok(())
    }
}

impl BackendDevice for CpuDevice {
    type Storage = CpuStorage;
    fn storage_from_slice(&self, data: &[f32]) -> Result<CpuStorage> {
        let mut v = memory::try_vec(data.len(), || tensor_of(data.len()))?;
        v.extend_from_slice(data);
        Ok(CpuStorage(v))
    }
    fn zeros(&self, n: usize) -> Result<CpuStorage> {
        memory::check(memory::bytes_of(n, 4), || tensor_of(n))?;
        Ok(CpuStorage(pool::zeros(n)))
    }
    fn rand_uniform(&self, n: usize, key: RngKey) -> Result<CpuStorage> {
        memory::check(memory::bytes_of(n, 4), || tensor_of(n))?;
        Ok(CpuStorage(
            (0..n as u64)
                .into_par_iter()
                .map(|i| uniform_at(key, i))
                .collect(),
        ))
    }
    fn rand_normal(&self, n: usize, key: RngKey) -> Result<CpuStorage> {
        memory::check(memory::bytes_of(n, 4), || tensor_of(n))?;
        Ok(CpuStorage(
            (0..n as u64)
                .into_par_iter()
                .map(|i| normal_at(key, i))
                .collect(),
        ))
    }
}

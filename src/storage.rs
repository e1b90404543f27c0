//! `Storage`: a buffer on some device. Each method checks that its operands live on the same
//! device and forwards to that device's [`BackendStorage`] implementation; nothing else happens
//! here. Adding a device means adding a variant and one arm per method.
//! Host↔device moves go through [`Storage::to_device`] (an explicit copy, never implicit).
//!
//! Without the `cuda` cargo feature there is no CUDA variant: its arms are compiled out, a
//! buffer asked for on `cuda:N` is an error saying the build has no CUDA backend, and the
//! device-mismatch arms, which then match nothing, are allowed to be unreachable.
#![cfg_attr(not(feature = "cuda"), allow(unreachable_patterns))]

use crate::backend::cpu::{CpuDevice, CpuStorage};
#[cfg(feature = "cuda")]
use crate::backend::cuda::{CudaDevice, CudaStorage};
use crate::backend::vae::{
    ElboArgs, ElboGrad, ElboOut, ElboShape, GaussianKlGrad, Likelihood, MixupLossArgs,
    MixupLossGrad, MixupOut, MixupShape, MixupSrc, ReparamGrad, ReparamOut, VaeKernels,
};
use crate::backend::{
    AdamStep, BackendDevice, BackendStorage, BinaryOp, Conv2dShape, MatmulShape, ReduceOp, UnaryOp,
};
use crate::rng::RngKey;
use crate::{Device, Error, Result};

/// A buffer of f32 on a device.
pub enum Storage {
    Cpu(CpuStorage),
    #[cfg(feature = "cuda")]
    Cuda(CudaStorage),
}

fn mismatch(op: &str, a: Device, b: Device) -> Error {
    Error::Device(format!(
        "{op}: operands on {a} and {b}; move one with to_device first"
    ))
}

/// Dispatch a method on one storage.
macro_rules! unary_dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Storage::Cpu($s) => Ok(Storage::Cpu($e?)),
            #[cfg(feature = "cuda")]
            Storage::Cuda($s) => Ok(Storage::Cuda($e?)),
        }
    };
}

/// Dispatch a method on two storages that must share a device.
macro_rules! binary_dispatch {
    ($op:expr, $a:expr, $b:expr, |$x:ident, $y:ident| $e:expr) => {
        match ($a, $b) {
            (Storage::Cpu($x), Storage::Cpu($y)) => Ok(Storage::Cpu($e?)),
            #[cfg(feature = "cuda")]
            (Storage::Cuda($x), Storage::Cuda($y)) => Ok(Storage::Cuda($e?)),
            (a, b) => Err(mismatch($op, a.device(), b.device())),
        }
    };
}

impl Storage {
    /// Upload `data` to `device`.
    pub fn from_slice(data: &[f32], device: Device) -> Result<Self> {
        match device {
            Device::Cpu => Ok(Storage::Cpu(CpuDevice.storage_from_slice(data)?)),
            #[cfg(feature = "cuda")]
            Device::Cuda(i) => Ok(Storage::Cuda(CudaDevice::new(i).storage_from_slice(data)?)),
            #[cfg(not(feature = "cuda"))]
            Device::Cuda(i) => Err(crate::device::no_cuda(i)),
        }
    }
    /// `n` zeros on `device`.
    pub fn zeros(n: usize, device: Device) -> Result<Self> {
        match device {
            Device::Cpu => Ok(Storage::Cpu(CpuDevice.zeros(n)?)),
            #[cfg(feature = "cuda")]
            Device::Cuda(i) => Ok(Storage::Cuda(CudaDevice::new(i).zeros(n)?)),
            #[cfg(not(feature = "cuda"))]
            Device::Cuda(i) => Err(crate::device::no_cuda(i)),
        }
    }
    /// `n` uniform draws at `key`.
    pub fn rand_uniform(n: usize, key: RngKey, device: Device) -> Result<Self> {
        match device {
            Device::Cpu => Ok(Storage::Cpu(CpuDevice.rand_uniform(n, key)?)),
            #[cfg(feature = "cuda")]
            Device::Cuda(i) => Ok(Storage::Cuda(CudaDevice::new(i).rand_uniform(n, key)?)),
            #[cfg(not(feature = "cuda"))]
            Device::Cuda(i) => Err(crate::device::no_cuda(i)),
        }
    }
    /// `n` normal draws at `key`.
    pub fn rand_normal(n: usize, key: RngKey, device: Device) -> Result<Self> {
        match device {
            Device::Cpu => Ok(Storage::Cpu(CpuDevice.rand_normal(n, key)?)),
            #[cfg(feature = "cuda")]
            Device::Cuda(i) => Ok(Storage::Cuda(CudaDevice::new(i).rand_normal(n, key)?)),
            #[cfg(not(feature = "cuda"))]
            Device::Cuda(i) => Err(crate::device::no_cuda(i)),
        }
    }
    /// The device of this buffer.
    pub fn device(&self) -> Device {
        match self {
            Storage::Cpu(s) => s.device(),
            #[cfg(feature = "cuda")]
            Storage::Cuda(s) => s.device(),
        }
    }
    /// Element count.
    pub fn len(&self) -> usize {
        match self {
            Storage::Cpu(s) => s.len(),
            #[cfg(feature = "cuda")]
            Storage::Cuda(s) => s.len(),
        }
    }
    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Copy to the host.
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        match self {
            Storage::Cpu(s) => s.to_vec(),
            #[cfg(feature = "cuda")]
            Storage::Cuda(s) => s.to_vec(),
        }
    }
    /// A copy on `device`.
    pub fn to_device(&self, device: Device) -> Result<Self> {
        if device == self.device() {
            return self.try_clone();
        }
        Storage::from_slice(&self.to_vec()?, device)
    }
    /// A deep copy on the same device.
    pub fn try_clone(&self) -> Result<Self> {
        match self {
            Storage::Cpu(s) => Ok(Storage::Cpu(s.clone())),
            #[cfg(feature = "cuda")]
            Storage::Cuda(s) => Ok(Storage::Cuda(s.try_clone()?)),
        }
    }
    pub fn unary(&self, op: UnaryOp) -> Result<Self> {
        unary_dispatch!(self, s => s.unary(op))
    }
    pub fn unary_backward(&self, op: UnaryOp, grad: &Self) -> Result<Self> {
        binary_dispatch!("unary_backward", self, grad, |a, b| a.unary_backward(op, b))
    }
    pub fn binary(
        &self,
        op: BinaryOp,
        rhs: &Self,
        ld: &[usize],
        rd: &[usize],
        od: &[usize],
    ) -> Result<Self> {
        binary_dispatch!("binary", self, rhs, |a, b| a.binary(op, b, ld, rd, od))
    }
    pub fn reduce(&self, op: ReduceOp, outer: usize, len: usize, inner: usize) -> Result<Self> {
        unary_dispatch!(self, s => s.reduce(op, outer, len, inner))
    }
    pub fn softmax_rows(&self, rows: usize, cols: usize, log: bool) -> Result<Self> {
        unary_dispatch!(self, s => s.softmax_rows(rows, cols, log))
    }
    pub fn logsumexp_rows(&self, rows: usize, cols: usize) -> Result<Self> {
        unary_dispatch!(self, s => s.logsumexp_rows(rows, cols))
    }
    pub fn matmul(&self, rhs: &Self, s: &MatmulShape) -> Result<Self> {
        binary_dispatch!("matmul", self, rhs, |a, b| a.matmul(b, s))
    }
    pub fn conv2d(&self, w: &Self, s: &Conv2dShape) -> Result<Self> {
        binary_dispatch!("conv2d", self, w, |a, b| a.conv2d(b, s))
    }
    pub fn conv2d_backward_input(&self, w: &Self, s: &Conv2dShape) -> Result<Self> {
        binary_dispatch!("conv2d_backward_input", self, w, |a, b| a
            .conv2d_backward_input(b, s))
    }
    pub fn conv2d_backward_weight(&self, grad_out: &Self, s: &Conv2dShape) -> Result<Self> {
        binary_dispatch!("conv2d_backward_weight", self, grad_out, |a, b| a
            .conv2d_backward_weight(b, s))
    }
    /// `(conv2d(self, w), conv2d_backward_weight(self, grad_out))` (see the backend trait).
    pub fn conv2d_with_weight_grad(
        &self,
        w: &Self,
        grad_out: &Self,
        s: &Conv2dShape,
    ) -> Result<(Self, Self)> {
        let op = "conv2d_with_weight_grad";
        match (self, w, grad_out) {
            (Storage::Cpu(x), Storage::Cpu(w), Storage::Cpu(g)) => {
                let (y, dw) = x.conv2d_with_weight_grad(w, g, s)?;
                Ok((Storage::Cpu(y), Storage::Cpu(dw)))
            }
            #[cfg(feature = "cuda")]
            (Storage::Cuda(x), Storage::Cuda(w), Storage::Cuda(g)) => {
                let (y, dw) = x.conv2d_with_weight_grad(w, g, s)?;
                Ok((Storage::Cuda(y), Storage::Cuda(dw)))
            }
            (x, w, g) => Err(mismatch(
                op,
                x.device(),
                if x.device() == w.device() {
                    g.device()
                } else {
                    w.device()
                },
            )),
        }
    }
    pub fn transpose(&self, dims: &[usize], d0: usize, d1: usize) -> Result<Self> {
        unary_dispatch!(self, s => s.transpose(dims, d0, d1))
    }
    #[allow(clippy::too_many_arguments)]
    pub fn copy2d(
        &self,
        dst: &mut Self,
        rows: usize,
        cols: usize,
        src_stride: usize,
        dst_stride: usize,
        src_off: usize,
        dst_off: usize,
    ) -> Result<()> {
        match (self, dst) {
            (Storage::Cpu(s), Storage::Cpu(d)) => {
                s.copy2d(d, rows, cols, src_stride, dst_stride, src_off, dst_off)
            }
            #[cfg(feature = "cuda")]
            (Storage::Cuda(s), Storage::Cuda(d)) => {
                s.copy2d(d, rows, cols, src_stride, dst_stride, src_off, dst_off)
            }
            (s, d) => Err(mismatch("copy2d", s.device(), d.device())),
        }
    }
    pub fn index_select_rows(&self, ids: &[u32], row_len: usize) -> Result<Self> {
        unary_dispatch!(self, s => s.index_select_rows(ids, row_len))
    }
    pub fn index_add_rows(&self, ids: &[u32], row_len: usize, out_rows: usize) -> Result<Self> {
        unary_dispatch!(self, s => s.index_add_rows(ids, row_len, out_rows))
    }
    pub fn bce_with_logits_rows(&self, targets: &Self, rows: usize, cols: usize) -> Result<Self> {
        binary_dispatch!("bce_with_logits", self, targets, |a, b| a
            .bce_with_logits_rows(b, rows, cols))
    }
    pub fn bce_with_logits_rows_backward(
        &self,
        targets: &Self,
        grad_rows: &Self,
        rows: usize,
        cols: usize,
    ) -> Result<Self> {
        match (self, targets, grad_rows) {
            (Storage::Cpu(l), Storage::Cpu(x), Storage::Cpu(g)) => Ok(Storage::Cpu(
                l.bce_with_logits_rows_backward(x, g, rows, cols)?,
            )),
            #[cfg(feature = "cuda")]
            (Storage::Cuda(l), Storage::Cuda(x), Storage::Cuda(g)) => Ok(Storage::Cuda(
                l.bce_with_logits_rows_backward(x, g, rows, cols)?,
            )),
            (l, x, _) => Err(mismatch("bce_with_logits_backward", l.device(), x.device())),
        }
    }
    pub fn adam_step(
        &mut self,
        grad: &Self,
        m: &mut Self,
        v: &mut Self,
        s: &AdamStep,
    ) -> Result<()> {
        match (self, grad, m, v) {
            (Storage::Cpu(p), Storage::Cpu(g), Storage::Cpu(m), Storage::Cpu(v)) => {
                p.adam_step(g, m, v, s)
            }
            #[cfg(feature = "cuda")]
            (Storage::Cuda(p), Storage::Cuda(g), Storage::Cuda(m), Storage::Cuda(v)) => {
                p.adam_step(g, m, v, s)
            }
            (p, g, _, _) => Err(mismatch("adam_step", p.device(), g.device())),
        }
    }
    pub fn scale_in_place(&mut self, factor: f32) -> Result<()> {
        match self {
            Storage::Cpu(s) => s.scale_in_place(factor),
            #[cfg(feature = "cuda")]
            Storage::Cuda(s) => s.scale_in_place(factor),
        }
    }
}

/// The fused VAE kernels ([`VaeKernels`]). Each matches on its first buffer's device and asks
/// every other buffer for the same device's type (`as_cpu`, `as_cuda`), so a mismatch is an
/// error naming the op; a new device adds one arm per method and an `as_<device>` accessor.
impl Storage {
    /// This buffer as a CPU buffer, or a device-mismatch error for `op`.
    fn as_cpu(&self, op: &'static str) -> Result<&CpuStorage> {
        match self {
            Storage::Cpu(s) => Ok(s),
            other => Err(mismatch(op, Device::Cpu, other.device())),
        }
    }
    #[cfg(feature = "cuda")]
    /// This buffer as a CUDA buffer, or a device-mismatch error for `op` (`want` names the
    /// device of the op's first buffer; two CUDA ordinals are told apart by the op itself).
    fn as_cuda(&self, op: &'static str, want: Device) -> Result<&CudaStorage> {
        match self {
            #[cfg(feature = "cuda")]
            Storage::Cuda(s) => Ok(s),
            other => Err(mismatch(op, want, other.device())),
        }
    }
    pub fn reparam_forward(
        &self,
        logvar: &Self,
        rows: usize,
        cols: usize,
        key: RngKey,
    ) -> Result<ReparamOut<Self>> {
        let op = "reparam_forward";
        match self {
            Storage::Cpu(mu) => Ok(mu
                .reparam_forward(logvar.as_cpu(op)?, rows, cols, key)?
                .map(Storage::Cpu)),
            #[cfg(feature = "cuda")]
            Storage::Cuda(mu) => {
                let dev = self.device();
                Ok(mu
                    .reparam_forward(logvar.as_cuda(op, dev)?, rows, cols, key)?
                    .map(Storage::Cuda))
            }
        }
    }
    #[allow(clippy::too_many_arguments)]
    pub fn reparam_backward(
        &self,
        logvar: &Self,
        dz: Option<&Self>,
        dkl: Option<&Self>,
        rows: usize,
        cols: usize,
        key: RngKey,
    ) -> Result<ReparamGrad<Self>> {
        let op = "reparam_backward";
        match self {
            Storage::Cpu(mu) => Ok(mu
                .reparam_backward(
                    logvar.as_cpu(op)?,
                    dz.map(|d| d.as_cpu(op)).transpose()?,
                    dkl.map(|d| d.as_cpu(op)).transpose()?,
                    rows,
                    cols,
                    key,
                )?
                .map(Storage::Cpu)),
            #[cfg(feature = "cuda")]
            Storage::Cuda(mu) => {
                let dev = self.device();
                Ok(mu
                    .reparam_backward(
                        logvar.as_cuda(op, dev)?,
                        dz.map(|d| d.as_cuda(op, dev)).transpose()?,
                        dkl.map(|d| d.as_cuda(op, dev)).transpose()?,
                        rows,
                        cols,
                        key,
                    )?
                    .map(Storage::Cuda))
            }
        }
    }
    pub fn gaussian_kl_forward(
        &self,
        logvar_q: &Self,
        mu_p: &Self,
        logvar_p: &Self,
        rows: usize,
        cols: usize,
    ) -> Result<Self> {
        let op = "gaussian_kl_forward";
        match self {
            Storage::Cpu(mu_q) => Ok(Storage::Cpu(mu_q.gaussian_kl_forward(
                logvar_q.as_cpu(op)?,
                mu_p.as_cpu(op)?,
                logvar_p.as_cpu(op)?,
                rows,
                cols,
            )?)),
            #[cfg(feature = "cuda")]
            Storage::Cuda(mu_q) => {
                let dev = self.device();
                Ok(Storage::Cuda(mu_q.gaussian_kl_forward(
                    logvar_q.as_cuda(op, dev)?,
                    mu_p.as_cuda(op, dev)?,
                    logvar_p.as_cuda(op, dev)?,
                    rows,
                    cols,
                )?))
            }
        }
    }
    #[allow(clippy::too_many_arguments)]
    pub fn gaussian_kl_backward(
        &self,
        logvar_q: &Self,
        mu_p: &Self,
        logvar_p: &Self,
        dkl: &Self,
        rows: usize,
        cols: usize,
    ) -> Result<GaussianKlGrad<Self>> {
        let op = "gaussian_kl_backward";
        match self {
            Storage::Cpu(mu_q) => Ok(mu_q
                .gaussian_kl_backward(
                    logvar_q.as_cpu(op)?,
                    mu_p.as_cpu(op)?,
                    logvar_p.as_cpu(op)?,
                    dkl.as_cpu(op)?,
                    rows,
                    cols,
                )?
                .map(Storage::Cpu)),
            #[cfg(feature = "cuda")]
            Storage::Cuda(mu_q) => {
                let dev = self.device();
                Ok(mu_q
                    .gaussian_kl_backward(
                        logvar_q.as_cuda(op, dev)?,
                        mu_p.as_cuda(op, dev)?,
                        logvar_p.as_cuda(op, dev)?,
                        dkl.as_cuda(op, dev)?,
                        rows,
                        cols,
                    )?
                    .map(Storage::Cuda))
            }
        }
    }
    pub fn gumbel_softmax_forward(
        &self,
        rows: usize,
        cols: usize,
        tau: f32,
        hard: bool,
        key: RngKey,
    ) -> Result<Self> {
        unary_dispatch!(self, s => s.gumbel_softmax_forward(rows, cols, tau, hard, key))
    }
    pub fn gumbel_softmax_backward(
        &self,
        dy: &Self,
        rows: usize,
        cols: usize,
        tau: f32,
        key: RngKey,
    ) -> Result<Self> {
        let op = "gumbel_softmax_backward";
        match self {
            Storage::Cpu(l) => Ok(Storage::Cpu(l.gumbel_softmax_backward(
                dy.as_cpu(op)?,
                rows,
                cols,
                tau,
                key,
            )?)),
            #[cfg(feature = "cuda")]
            Storage::Cuda(l) => Ok(Storage::Cuda(l.gumbel_softmax_backward(
                dy.as_cuda(op, self.device())?,
                rows,
                cols,
                tau,
                key,
            )?)),
        }
    }
    pub fn categorical_kl_uniform_forward(&self, rows: usize, cols: usize) -> Result<Self> {
        unary_dispatch!(self, s => s.categorical_kl_uniform_forward(rows, cols))
    }
    pub fn categorical_kl_uniform_backward(
        &self,
        dkl: &Self,
        rows: usize,
        cols: usize,
    ) -> Result<Self> {
        let op = "categorical_kl_uniform_backward";
        match self {
            Storage::Cpu(l) => Ok(Storage::Cpu(l.categorical_kl_uniform_backward(
                dkl.as_cpu(op)?,
                rows,
                cols,
            )?)),
            #[cfg(feature = "cuda")]
            Storage::Cuda(l) => Ok(Storage::Cuda(l.categorical_kl_uniform_backward(
                dkl.as_cuda(op, self.device())?,
                rows,
                cols,
            )?)),
        }
    }
    pub fn elbo_marginal_forward(
        likelihood: Likelihood,
        s: ElboShape,
        inp: &ElboArgs<'_, Self>,
    ) -> Result<ElboOut<Self>> {
        let op = "elbo_marginal_forward";
        match inp.decoded {
            Storage::Cpu(_) => {
                let inp = inp.try_map(|b| b.as_cpu(op))?;
                Ok(CpuStorage::elbo_marginal_forward(likelihood, s, &inp)?.map(Storage::Cpu))
            }
            #[cfg(feature = "cuda")]
            Storage::Cuda(_) => {
                let dev = inp.decoded.device();
                let inp = inp.try_map(|b| b.as_cuda(op, dev))?;
                Ok(CudaStorage::elbo_marginal_forward(likelihood, s, &inp)?.map(Storage::Cuda))
            }
        }
    }
    pub fn elbo_marginal_backward(
        likelihood: Likelihood,
        s: ElboShape,
        inp: &ElboArgs<'_, Self>,
        nll: &Self,
        grad: &Self,
    ) -> Result<ElboGrad<Self>> {
        let op = "elbo_marginal_backward";
        match inp.decoded {
            Storage::Cpu(_) => {
                let inp = inp.try_map(|b| b.as_cpu(op))?;
                let (nll, grad) = (nll.as_cpu(op)?, grad.as_cpu(op)?);
                Ok(
                    CpuStorage::elbo_marginal_backward(likelihood, s, &inp, nll, grad)?
                        .map(Storage::Cpu),
                )
            }
            #[cfg(feature = "cuda")]
            Storage::Cuda(_) => {
                let dev = inp.decoded.device();
                let inp = inp.try_map(|b| b.as_cuda(op, dev))?;
                let (nll, grad) = (nll.as_cuda(op, dev)?, grad.as_cuda(op, dev)?);
                Ok(
                    CudaStorage::elbo_marginal_backward(likelihood, s, &inp, nll, grad)?
                        .map(Storage::Cuda),
                )
            }
        }
    }
    pub fn mixup_build(
        s: MixupShape,
        src: &MixupSrc<'_, Self>,
        partner: &[u32],
        lambda: &[f32],
    ) -> Result<MixupOut<Self>> {
        let op = "mixup_build";
        match src.x {
            Storage::Cpu(_) => {
                let src = src.try_map(|b| b.as_cpu(op))?;
                Ok(CpuStorage::mixup_build(s, &src, partner, lambda)?.map(Storage::Cpu))
            }
            #[cfg(feature = "cuda")]
            Storage::Cuda(_) => {
                let dev = src.x.device();
                let src = src.try_map(|b| b.as_cuda(op, dev))?;
                Ok(CudaStorage::mixup_build(s, &src, partner, lambda)?.map(Storage::Cuda))
            }
        }
    }
    pub fn mixup_loss_forward(s: MixupShape, inp: &MixupLossArgs<'_, Self>) -> Result<Self> {
        let op = "mixup_loss_forward";
        match inp.logits {
            Storage::Cpu(_) => {
                let inp = inp.try_map(|b| b.as_cpu(op))?;
                Ok(Storage::Cpu(CpuStorage::mixup_loss_forward(s, &inp)?))
            }
            #[cfg(feature = "cuda")]
            Storage::Cuda(_) => {
                let dev = inp.logits.device();
                let inp = inp.try_map(|b| b.as_cuda(op, dev))?;
                Ok(Storage::Cuda(CudaStorage::mixup_loss_forward(s, &inp)?))
            }
        }
    }
    pub fn mixup_loss_backward(
        s: MixupShape,
        inp: &MixupLossArgs<'_, Self>,
        grad: &Self,
    ) -> Result<MixupLossGrad<Self>> {
        let op = "mixup_loss_backward";
        match inp.logits {
            Storage::Cpu(_) => {
                let inp = inp.try_map(|b| b.as_cpu(op))?;
                Ok(CpuStorage::mixup_loss_backward(s, &inp, grad.as_cpu(op)?)?.map(Storage::Cpu))
            }
            #[cfg(feature = "cuda")]
            Storage::Cuda(_) => {
                let dev = inp.logits.device();
                let inp = inp.try_map(|b| b.as_cuda(op, dev))?;
                let grad = grad.as_cuda(op, dev)?;
                Ok(CudaStorage::mixup_loss_backward(s, &inp, grad)?.map(Storage::Cuda))
            }
        }
    }
}

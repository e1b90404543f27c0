//! Batch normalisation over [N, C] (1-D) or [N, C, H, W] (2-D) inputs.
//!
//! Training: x̂ = (x − μ_B)/√(σ²_B + ε) with the batch's per-channel mean and (biased) variance,
//! y = γ·x̂ + β, and running statistics r ← (1 − m)·r + m·stat (unbiased variance, as PyTorch).
//! Evaluation: the running statistics replace the batch's. Composed from engine ops, so its
//! gradient is the composition's.

use super::{join, Layer, Module, Role};
use crate::storage::Storage;
use crate::{no_grad, Device, Error, Result, Tensor};
use std::sync::atomic::{AtomicBool, Ordering};

/// Batch norm with learnable scale and shift.
pub struct BatchNorm {
    pub gamma: Tensor,
    pub beta: Tensor,
    /// Running mean, shape `[C]` (a buffer, updated in place).
    pub running_mean: Tensor,
    /// Running variance, shape `[C]`.
    pub running_var: Tensor,
    pub momentum: f32,
    pub eps: f32,
    training: AtomicBool,
}

impl BatchNorm {
    /// Batch norm for `channels` channels (γ = 1, β = 0, running stats 0 and 1).
    pub fn new(channels: usize, device: Device) -> Result<Self> {
        Ok(BatchNorm {
            gamma: Tensor::ones([channels], device)?.variable(),
            beta: Tensor::zeros([channels], device)?.variable(),
            running_mean: Tensor::zeros([channels], device)?,
            running_var: Tensor::ones([channels], device)?,
            momentum: 0.1,
            eps: 1e-5,
            training: AtomicBool::new(true),
        })
    }
}

impl Module for BatchNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = self.gamma.elem_count();
        // View as [N, C, S] with S = H·W (1 for 1-D inputs).
        let (n, s) = match x.dims() {
            &[n, ch] if ch == c => (n, 1),
            &[n, ch, h, w] if ch == c => (n, h * w),
            d => {
                return Err(Error::shape(
                    "batch_norm",
                    d,
                    &[c],
                    "expected [N, C] or [N, C, H, W] with C channels",
                ))
            }
        };
        let x3 = x.reshape([n, c, s])?;
        let chan = |t: &Tensor| t.reshape([1, c, 1]);
        let (mean, var) = if self.training.load(Ordering::Relaxed) {
            let count = n * s;
            if count < 2 {
                return Err(Error::invalid(
                    "batch_norm",
                    "training needs more than one value per channel",
                ));
            }
            let mean = x3
                .sum_keepdim(2)?
                .sum_keepdim(0)?
                .mul_scalar(1.0 / count as f32)?;
            let centred = x3.sub(&mean)?;
            let var = centred
                .square()?
                .sum_keepdim(2)?
                .sum_keepdim(0)?
                .mul_scalar(1.0 / count as f32)?;
            {
                let _g = no_grad();
                let m = self.momentum;
                let unbiased = count as f32 / (count - 1) as f32;
                let rm = self
                    .running_mean
                    .mul_scalar(1.0 - m)?
                    .add(&mean.reshape([c])?.mul_scalar(m)?)?;
                let rv = self
                    .running_var
                    .mul_scalar(1.0 - m)?
                    .add(&var.reshape([c])?.mul_scalar(m * unbiased)?)?;
                replace(&self.running_mean, &rm)?;
                replace(&self.running_var, &rv)?;
            }
            (mean, var)
        } else {
            (chan(&self.running_mean)?, chan(&self.running_var)?)
        };
        let xhat = x3.sub(&mean)?.div(&var.add_scalar(self.eps)?.sqrt()?)?;
        let y = xhat.mul(&chan(&self.gamma)?)?.add(&chan(&self.beta)?)?;
        y.reshape(x.shape().clone())
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, Role)) {
        let layer = Layer::BatchNorm {
            eps: self.eps,
            momentum: self.momentum,
        };
        f(&join(prefix, "gamma"), &self.gamma, Role::param(layer));
        f(&join(prefix, "beta"), &self.beta, Role::param(layer));
        f(
            &join(prefix, "running_mean"),
            &self.running_mean,
            Role::buffer(layer),
        );
        f(
            &join(prefix, "running_var"),
            &self.running_var,
            Role::buffer(layer),
        );
    }
    fn set_training(&self, training: bool) {
        self.training.store(training, Ordering::Relaxed);
    }
}

/// Overwrite a buffer's values in place.
fn replace(dst: &Tensor, src: &Tensor) -> Result<()> {
    let s: Storage = src.storage().try_clone()?;
    *dst.storage_mut() = s;
    Ok(())
}

//! Per-row losses, each returning one value per row of a [rows, features] input.
//!
//! - `bce_with_logits_rows`: Σ_j max(l,0) − l·x + log(1+e^{−|l|}); d/dl = σ(l) − x (own kernel).
//! - `cross_entropy_rows`: −Σ_k p_k log softmax(l)_k for target distributions p (one-hot or soft).
//! - `kl_diag_gaussian_rows`: KL(N(μ, e^{lv}) ‖ N(0, I)) = −½ Σ (1 + lv − μ² − e^{lv}).
//! - `gaussian_nll_rows`: ½ Σ ((x − μ)²/σ² + log 2πσ²) for a fixed σ.
//! - `gaussian_nll_logvar_rows`: the same with a per-element learned log σ² (composed from
//!   primitives, so its gradient is theirs).

use crate::autograd::record;
use crate::{Error, Result, Shape, Tensor};

fn same_2d(op: &'static str, a: &Tensor, b: &Tensor) -> Result<(usize, usize)> {
    let (r, c) = a.dims2(op)?;
    if a.dims() != b.dims() {
        return Err(Error::shape(op, a.dims(), b.dims(), "shapes must be equal"));
    }
    Ok((r, c))
}

impl Tensor {
    /// Binary cross-entropy of logits `self` against targets in [0, 1], summed per row.
    /// The targets are data: no gradient flows to them.
    pub fn bce_with_logits_rows(&self, targets: &Tensor) -> Result<Tensor> {
        let (rows, cols) = same_2d("bce_with_logits_rows", self, targets)?;
        let storage = self
            .storage()
            .bce_with_logits_rows(&targets.storage(), rows, cols)?;
        let (l, x) = (self.clone(), targets.clone());
        Ok(record(
            storage,
            Shape(vec![rows]),
            "bce_with_logits_rows",
            vec![self.clone()],
            move |g| {
                let d = l.storage().bce_with_logits_rows_backward(
                    &x.storage(),
                    &g.storage(),
                    rows,
                    cols,
                )?;
                Ok(vec![Some(Tensor::from_storage(d, l.shape().clone(), None))])
            },
        ))
    }

    /// Cross-entropy of logits `self` against target distributions (rows of `targets`).
    pub fn cross_entropy_rows(&self, targets: &Tensor) -> Result<Tensor> {
        same_2d("cross_entropy_rows", self, targets)?;
        self.log_softmax()?.mul(targets)?.sum(1)?.neg()
    }

    /// Cross-entropy of logits against integer labels.
    pub fn cross_entropy_labels(&self, labels: &[u32]) -> Result<Tensor> {
        let (_, k) = self.dims2("cross_entropy_labels")?;
        let targets = Tensor::one_hot(labels, k, self.device())?;
        self.cross_entropy_rows(&targets)
    }

    /// KL(N(μ = self, diag e^{logvar}) ‖ N(0, I)) per row.
    pub fn kl_diag_gaussian_rows(&self, logvar: &Tensor) -> Result<Tensor> {
        same_2d("kl_diag_gaussian_rows", self, logvar)?;
        let inner = logvar
            .add_scalar(1.0)?
            .sub(&self.square()?)?
            .sub(&logvar.exp()?)?;
        inner.sum(1)?.mul_scalar(-0.5)
    }

    /// Negative log-likelihood of `targets` under N(self, σ²) per row.
    pub fn gaussian_nll_rows(&self, targets: &Tensor, sigma: f32) -> Result<Tensor> {
        let (_, cols) = same_2d("gaussian_nll_rows", self, targets)?;
        let c = cols as f32 * 0.5 * (2.0 * std::f32::consts::PI * sigma * sigma).ln();
        self.sub(targets)?
            .square()?
            .sum(1)?
            .mul_scalar(0.5 / (sigma * sigma))?
            .add_scalar(c)
    }

    /// Gaussian negative log-likelihood of `targets` under N(self, exp(logvar)), summed per row:
    /// ½ Σ_j ((x_j − μ_j)²·exp(−logvar_j) + logvar_j + log 2π). Gradients flow to the mean
    /// (`self`) and to `logvar`; `targets` are data.
    pub fn gaussian_nll_logvar_rows(&self, targets: &Tensor, logvar: &Tensor) -> Result<Tensor> {
        let (_, cols) = same_2d("gaussian_nll_logvar_rows", self, targets)?;
        same_2d("gaussian_nll_logvar_rows", self, logvar)?;
        let c = cols as f32 * 0.5 * (2.0 * std::f32::consts::PI).ln();
        self.sub(targets)?
            .square()?
            .mul(&logvar.neg()?.exp()?)?
            .add(logvar)?
            .sum(1)?
            .mul_scalar(0.5)?
            .add_scalar(c)
    }
}

//! Fused VAE ops as differentiable tensor ops: each checks shapes, runs one fused device kernel
//! through [`crate::storage::Storage`] (the [`crate::backend::vae::VaeKernels`] interface) and
//! records one tape node whose backward is the matching fused backward kernel.
//!
//! - [`reparameterize`] — z = μ + σ ⊙ ε together with KL(q(z|x) ‖ N(0, I)) per row;
//!   [`gaussian_kl`] — KL between two diagonal Gaussians (learned priors p(z|y)).
//! - [`gumbel_softmax`] — a relaxed (or straight-through hard) categorical sample;
//!   [`categorical_kl_uniform`] — KL(q(y|x) ‖ Uniform(K)).
//! - [`elbo_marginal`] — M2's unlabelled bound U(x) with y summed out exactly in one pass over
//!   the K decoded copies; [`elbo_labelled`] — the labelled bound L(x, y).
//! - [`mixup_build`] / [`mixup_loss`] — SHOT-VAE's optimal-interpolation mixup.
//!
//! Each op equals the composition of engine primitives in [`composed`] (forward and every
//! gradient; `tests/vae_ops.rs`), which is also what `benches/vae_ops.rs` measures it against.
//! The fused forms save memory traffic: no (B·K)×D intermediate for the ELBO, no ε buffer for the
//! reparameterisation (recomputed from the Philox key in the backward), no noise buffer for the
//! Gumbel-softmax.

pub mod composed;
pub mod elbo;
pub mod gumbel;
pub mod mixup;
pub mod reparam;

pub use crate::backend::vae::Likelihood;
pub use elbo::{elbo_labelled, elbo_marginal};
pub use gumbel::{categorical_kl_uniform, gumbel_softmax};
pub use mixup::{mixup_build, mixup_loss, MixClass, MixLatent, Mixed};
pub use reparam::{gaussian_kl, reparameterize};

use crate::storage::Storage;
use crate::{Error, Result, Shape, Tensor};

/// (rows, cols) of a rank-2 tensor, or a shape error naming `op` and the input `what`.
pub(crate) fn rows_cols(op: &'static str, what: &str, t: &Tensor) -> Result<(usize, usize)> {
    match t.dims() {
        &[r, c] => Ok((r, c)),
        d => Err(Error::shape(
            op,
            d,
            &[],
            format!("{what} must be a rank-2 [rows, cols] tensor"),
        )),
    }
}

/// `Ok` when `t` has exactly `want` dims, else a shape error naming `op` and `what`.
pub(crate) fn expect_dims(op: &'static str, what: &str, t: &Tensor, want: &[usize]) -> Result<()> {
    if t.dims() == want {
        Ok(())
    } else {
        Err(Error::shape(
            op,
            t.dims(),
            want,
            format!("{what} has shape {:?}, expected {want:?}", t.dims()),
        ))
    }
}

/// A gradient tensor (no node) from a backward kernel's buffer.
pub(crate) fn grad(storage: Storage, shape: &Shape) -> Tensor {
    Tensor::from_storage(storage, shape.clone(), None)
}

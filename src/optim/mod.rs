//! Optimisers and gradient clipping. An optimiser owns per-parameter state (tensors, so a
//! checkpoint can save them) and updates parameter buffers in place from a [`GradStore`](crate::autograd::GradStore).

pub mod adam;
pub mod clip;
pub mod sgd;

pub use adam::{Adam, AdamConfig};
pub use clip::clip_grad_norm;
pub use sgd::Sgd;

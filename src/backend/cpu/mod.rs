//! The CPU backend (placeholder).
pub mod conv;
pub mod elbo;
pub mod gemm;
pub mod gumbel;
pub mod mixup;
pub mod reparam;

//! The CPU backend (placeholder).
pub mod conv;
pub mod gemm;

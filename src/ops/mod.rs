//! Differentiable tensor ops, one file per family. Each op checks shapes, calls the device kernel
//! through [`crate::storage::Storage`], and records its gradient formula on the tape.

pub mod conv;
pub mod elementwise;
pub mod losses;
pub mod matmul;
pub mod reduce;
pub mod shape_ops;

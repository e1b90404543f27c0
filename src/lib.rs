//! ssvae
pub mod autograd;
pub mod backend;
pub mod bench;
pub mod data;
pub mod device;
pub mod error;
pub mod memory;
pub mod metrics;
pub mod models;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod plot;
pub mod rng;
pub mod shape;
pub mod storage;
pub mod tensor;
pub mod train;
pub mod vae;

pub use autograd::{no_grad, GradStore};
pub use device::Device;
pub use error::{Error, Result};
pub use shape::Shape;
pub use tensor::{Tensor, TensorId};

//! ssvae
pub mod backend;
pub mod data;
pub mod device;
pub mod error;
pub mod metrics;
pub mod rng;
pub mod shape;

pub use device::Device;
pub use error::{Error, Result};
pub use shape::Shape;

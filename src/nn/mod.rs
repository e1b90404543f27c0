//! Layers. A [`Module`] maps a tensor to a tensor and exposes its state (parameters and buffers)
//! by name, which is all that optimisers and checkpoints need to know about it.

pub mod batchnorm;
pub mod conv;
pub mod describe;
pub mod init;
pub mod linear;
pub mod sequential;

pub use batchnorm::BatchNorm;
pub use conv::{Conv2d, ConvTranspose2d};
pub use describe::{layers, Layer, LayerEntry, Role};
pub use init::Init;
pub use linear::Linear;
pub use sequential::{Activation, Reshape, Sequential};

use crate::{Result, Tensor};

/// A layer or a network of layers.
pub trait Module: Send + Sync {
    /// Apply the module.
    fn forward(&self, x: &Tensor) -> Result<Tensor>;
    /// Call `f(name, tensor, role)` for every parameter (`role.trainable`) and buffer (not),
    /// with names prefixed by `prefix`; `role.layer` says which kind of layer holds it.
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, Role));
    /// Switch between training and evaluation behaviour (batch norm); a no-op by default.
    fn set_training(&self, _training: bool) {}
}

/// The trainable parameters of `m`, by name.
pub fn parameters(m: &dyn Module, prefix: &str) -> Vec<(String, Tensor)> {
    let mut v = Vec::new();
    m.visit(prefix, &mut |name, t, role| {
        if role.trainable {
            v.push((name.to_string(), t.clone()));
        }
    });
    v
}

/// Every parameter and buffer of `m`, by name (what a checkpoint stores).
pub fn state(m: &dyn Module, prefix: &str) -> Vec<(String, Tensor)> {
    let mut v = Vec::new();
    m.visit(prefix, &mut |name, t, _| {
        v.push((name.to_string(), t.clone()))
    });
    v
}

/// `prefix.name`, or `name` when the prefix is empty.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

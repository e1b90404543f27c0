//! Composition: a sequential container, activation layers, and a reshape layer (for decoders
//! that go from a vector to feature maps).

use super::{join, Module, Role};
use crate::{Result, Shape, Tensor};

/// Modules applied in order; parameters are named by position ("0.weight", "2.bias", …).
#[derive(Default)]
pub struct Sequential(pub Vec<Box<dyn Module>>);

impl Sequential {
    /// An empty container.
    pub fn new() -> Self {
        Sequential(Vec::new())
    }
    /// Append a module.
    pub fn push(mut self, m: impl Module + 'static) -> Self {
        self.0.push(Box::new(m));
        self
    }
}

impl Module for Sequential {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for m in &self.0 {
            h = m.forward(&h)?;
        }
        Ok(h)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, Role)) {
        for (i, m) in self.0.iter().enumerate() {
            m.visit(&join(prefix, &i.to_string()), f);
        }
    }
    fn set_training(&self, training: bool) {
        self.0.iter().for_each(|m| m.set_training(training));
    }
}

/// A pointwise nonlinearity as a layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Relu,
    LeakyRelu(f32),
    Elu(f32),
    Softplus,
    Sigmoid,
    Tanh,
}

impl Activation {
    /// The name of PyTorch's function for it: `relu`, `leaky_relu`, `elu`, `softplus`,
    /// `sigmoid` or `tanh` (leaky_relu's slope and elu's α are not part of the name).
    pub fn name(&self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::LeakyRelu(_) => "leaky_relu",
            Activation::Elu(_) => "elu",
            Activation::Softplus => "softplus",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
        }
    }

    /// Apply to a tensor.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        match *self {
            Activation::Relu => x.relu(),
            Activation::LeakyRelu(s) => x.leaky_relu(s),
            Activation::Elu(a) => x.elu(a),
            Activation::Softplus => x.softplus(),
            Activation::Sigmoid => x.sigmoid(),
            Activation::Tanh => x.tanh(),
        }
    }
}

impl Module for Activation {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.apply(x)
    }
    fn visit(&self, _: &str, _: &mut dyn FnMut(&str, &Tensor, Role)) {}
}

/// Reshape every row: [n, …] → [n, dims…].
pub struct Reshape(pub Vec<usize>);

impl Module for Reshape {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let n = x.dim("reshape", 0)?;
        let mut d = vec![n];
        d.extend_from_slice(&self.0);
        x.reshape(Shape(d))
    }
    fn visit(&self, _: &str, _: &mut dyn FnMut(&str, &Tensor, Role)) {}
}

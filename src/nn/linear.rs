//! Fully connected layer y = x·Wᵀ + b, W [out, in].

use super::{join, Init, Layer, Module, Role};
use crate::rng::Rng;
use crate::{Device, Result, Tensor};

/// A dense layer.
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    /// A layer with `init` for the weight and PyTorch's default uniform bias.
    pub fn new(
        fan_in: usize,
        fan_out: usize,
        init: Init,
        rng: &mut Rng,
        device: Device,
    ) -> Result<Self> {
        let weight = init.variable([fan_out, fan_in], fan_in, fan_out, rng, device)?;
        let bias = Init::KaimingUniform.variable([fan_out], fan_in, fan_out, rng, device)?;
        Ok(Linear {
            weight,
            bias: Some(bias),
        })
    }
    /// Input features.
    pub fn in_features(&self) -> usize {
        self.weight.dims()[1]
    }
    /// Output features.
    pub fn out_features(&self) -> usize {
        self.weight.dims()[0]
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.linear(&self.weight, self.bias.as_ref())
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, Role)) {
        f(
            &join(prefix, "weight"),
            &self.weight,
            Role::param(Layer::Linear),
        );
        if let Some(b) = &self.bias {
            f(&join(prefix, "bias"), b, Role::param(Layer::Linear));
        }
    }
}

//! Convolution layers (NCHW): Conv2d with weight [out, in, k, k] and ConvTranspose2d with weight
//! [in, out, k, k] (PyTorch's layouts), each with a per-channel bias of shape `[C]`, also
//! PyTorch's, so that a checkpoint's tensors load into `torch.nn` as they are. The bias is
//! viewed as `[1, C, 1, 1]` only where it is added to the [N, C, H, W] output.

use super::{join, Init, Layer, Module, Role};
use crate::rng::Rng;
use crate::{Device, Result, Tensor};

/// `out` + `bias` (`[C]`) broadcast over the batch and the pixels of `out` (`[N, C, H, W]`).
fn add_channel_bias(out: &Tensor, bias: &Tensor) -> Result<Tensor> {
    out.add(&bias.reshape([1, bias.elem_count(), 1, 1])?)
}

/// y = conv2d(x, W) + b.
pub struct Conv2d {
    pub weight: Tensor,
    pub bias: Tensor,
    pub stride: usize,
    pub padding: usize,
}

impl Conv2d {
    /// A square-kernel convolution layer.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        padding: usize,
        init: Init,
        rng: &mut Rng,
        device: Device,
    ) -> Result<Self> {
        let fan_in = c_in * k * k;
        Ok(Conv2d {
            weight: init.variable([c_out, c_in, k, k], fan_in, c_out * k * k, rng, device)?,
            bias: Init::KaimingUniform.variable([c_out], fan_in, c_out, rng, device)?,
            stride,
            padding,
        })
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        add_channel_bias(
            &x.conv2d(&self.weight, self.stride, self.padding)?,
            &self.bias,
        )
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, Role)) {
        let role = Role::param(Layer::Conv2d {
            stride: self.stride,
            padding: self.padding,
        });
        f(&join(prefix, "weight"), &self.weight, role);
        f(&join(prefix, "bias"), &self.bias, role);
    }
}

/// y = conv_transpose2d(x, W) + b.
pub struct ConvTranspose2d {
    pub weight: Tensor,
    pub bias: Tensor,
    pub stride: usize,
    pub padding: usize,
    pub output_padding: usize,
}

impl ConvTranspose2d {
    /// A square-kernel transposed convolution layer.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        padding: usize,
        output_padding: usize,
        init: Init,
        rng: &mut Rng,
        device: Device,
    ) -> Result<Self> {
        // PyTorch computes the fan-in of a transposed conv from weight dim 1 (= c_out).
        let fan_in = c_out * k * k;
        Ok(ConvTranspose2d {
            weight: init.variable([c_in, c_out, k, k], fan_in, c_in * k * k, rng, device)?,
            bias: Init::KaimingUniform.variable([c_out], fan_in, c_out, rng, device)?,
            stride,
            padding,
            output_padding,
        })
    }
}

impl Module for ConvTranspose2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        add_channel_bias(
            &x.conv_transpose2d(&self.weight, self.stride, self.padding, self.output_padding)?,
            &self.bias,
        )
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, Role)) {
        let role = Role::param(Layer::ConvTranspose2d {
            stride: self.stride,
            padding: self.padding,
            output_padding: self.output_padding,
        });
        f(&join(prefix, "weight"), &self.weight, role);
        f(&join(prefix, "bias"), &self.bias, role);
    }
}

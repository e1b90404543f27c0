//! The network shared by the models whose q(z|x) does not depend on the class: one encoder
//! trunk h(x) with three heads, μ(x) and log σ²(x) of q(z|x) = N(μ, diag σ²) and class logits
//! ℓ(x), and a decoder p(x|y, z) on the concatenation [z, y] (y one-hot, or a relaxed or
//! predicted class distribution). SHOT-VAE ([`super::shot`]) and the sparse-label VAE
//! ([`super::sparse`]) differ only in their objectives; they share this struct so that the
//! network, its initialisation order and its checkpoint names (`trunk`, `enc_mu`, `enc_lv`,
//! `cls`, `dec`) are written once.

use super::arch::{self, Decoder, Encoder};

/// The [`Model`](super::Model) hooks of the generative side, written once for the models that
/// hold a [`ClassStyleNet`] in a field `net` and decode its predicted class distribution with
/// the style (sparse, aae): E[z|x] = μ(x), per-class sampling with z ~ N(0, I) decoded with a
/// one-hot y, style μ(x) whatever the class (q(z|x) does not depend on y), reconstruction μ(x)
/// decoded with softmax ℓ(x). Expands to `fn` items inside an `impl Model for …` block.
macro_rules! generative_hooks_of_class_style_net {
    () => {
        fn latent_mean(&self, x: &Tensor) -> Result<Tensor> {
            Ok(self.net.encode(x)?.mu)
        }
        fn prior(&self) -> super::Prior {
            super::Prior::PerClass
        }
        fn decode_class(&self, z: &Tensor, y: &Tensor) -> Result<Tensor> {
            self.net.decode(z, y)
        }
        fn style(&self, x: &Tensor, _y: &Tensor) -> Result<Tensor> {
            Ok(self.net.encode(x)?.mu)
        }
        fn reconstruct(&self, x: &Tensor) -> Result<Tensor> {
            self.net.reconstruct_with_predicted_class(x)
        }
    };
}
use super::Arch;
use crate::nn::{join, Init, Linear, Module, Role};
use crate::rng::Rng;
use crate::{Device, Error, Result, Tensor};

/// The sizes of a [`ClassStyleNet`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClassStyleSizes {
    pub arch: Arch,
    /// (channels, height, width); D = c·h·w.
    pub input: (usize, usize, usize),
    pub classes: usize,
    /// Width of the MLP layers (the conv architecture's dense width).
    pub hidden: usize,
    pub z_dim: usize,
}

/// What the encoder says about a batch [n, D].
pub struct Posterior {
    /// μ(x) [n, z].
    pub mu: Tensor,
    /// log σ²(x) [n, z].
    pub lv: Tensor,
    /// Class logits ℓ(x) [n, K].
    pub logits: Tensor,
}

/// Trunk, three heads, decoder on [z, y].
pub struct ClassStyleNet {
    pub trunk: Encoder,
    pub enc_mu: Linear,
    pub enc_lv: Linear,
    pub cls: Linear,
    pub dec: Decoder,
}

impl ClassStyleNet {
    /// A freshly initialised network of `model` (the name its errors give): the `arch` trunk
    /// (an MLP of `layers` hidden layers of width `hidden`, or the conv trunk), heads for
    /// `z_dim` and `classes`, the decoder of the same family on z_dim + classes inputs.
    /// Error: a size that is zero.
    pub fn new(
        model: &'static str,
        sizes: &ClassStyleSizes,
        layers: usize,
        rng: &mut Rng,
        device: Device,
    ) -> Result<Self> {
        let ClassStyleSizes {
            arch,
            input,
            classes,
            hidden,
            z_dim,
        } = *sizes;
        if classes == 0 || z_dim == 0 || hidden == 0 {
            return Err(Error::invalid(
                model,
                "classes, z_dim and hidden must be positive",
            ));
        }
        let init = Init::KaimingUniform;
        let trunk = arch::encoder(arch, input, hidden, layers, rng, device)?;
        let th = trunk.out_dim(input.0 * input.1 * input.2);
        Ok(ClassStyleNet {
            enc_mu: Linear::new(th, z_dim, init, rng, device)?,
            enc_lv: Linear::new(th, z_dim, init, rng, device)?,
            cls: Linear::new(th, classes, init, rng, device)?,
            dec: arch::decoder(arch, z_dim + classes, input, hidden, layers, rng, device)?,
            trunk,
        })
    }

    /// The three heads on one trunk pass.
    pub fn encode(&self, x: &Tensor) -> Result<Posterior> {
        let h = self.trunk.forward(x)?;
        Ok(Posterior {
            mu: self.enc_mu.forward(&h)?,
            lv: self.enc_lv.forward(&h)?,
            logits: self.cls.forward(&h)?,
        })
    }

    /// Class logits alone (the z heads are not computed).
    pub fn classify(&self, x: &Tensor) -> Result<Tensor> {
        self.cls.forward(&self.trunk.forward(x)?)
    }

    /// Bernoulli logits of p(x | y, z) [n, D] for z [n, z_dim] and y [n, K].
    pub fn decode(&self, z: &Tensor, y: &Tensor) -> Result<Tensor> {
        self.dec.forward(&Tensor::concat(&[z, y], 1)?)
    }

    /// μ(x) decoded with the predicted class distribution softmax ℓ(x): the reconstruction of
    /// the models whose decoder reads q(y|x) itself.
    pub fn reconstruct_with_predicted_class(&self, x: &Tensor) -> Result<Tensor> {
        let p = self.encode(x)?;
        self.decode(&p.mu, &p.logits.softmax()?)
    }

    /// The parameters under `prefix`: trunk, enc_mu, enc_lv, cls, dec.
    pub fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, Role)) {
        self.trunk.visit(&join(prefix, "trunk"), f);
        self.enc_mu.visit(&join(prefix, "enc_mu"), f);
        self.enc_lv.visit(&join(prefix, "enc_lv"), f);
        self.cls.visit(&join(prefix, "cls"), f);
        self.dec.visit(&join(prefix, "dec"), f);
    }
}

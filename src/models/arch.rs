//! Encoder and decoder builders shared by the model zoo: MLPs and the fixed convolutional
//! architecture the benchmarks compare across frameworks.
//!
//! ## MLP
//! Encoder trunk: x [n, D] → (Linear(·→H), activation) × `layers` → h [n, H].
//! Decoder: [n, in] → (Linear(·→H), activation) × `layers` → Linear(H→D) → Bernoulli logits.
//!
//! ## Conv (NCHW, images of c × h × w with h and w multiples of 4)
//! Encoder trunk, for 28×28×1 (MNIST):
//!   Conv(1→32, k4, s2, p1) ReLU → Conv(32→64, k4, s2, p1) ReLU → flatten (64·7·7 = 3136)
//!   → Linear(3136→256) ReLU = h
//! Decoder (input z, or [z, y]):
//!   Linear(in→256) ReLU → Linear(256→3136) ReLU → reshape 64×7×7
//!   → ConvT(64→32, k4, s2, p1) ReLU → ConvT(32→1, k4, s2, p1) → Bernoulli logits [n, 784].
//! The same stack scales with the input: CIFAR-10 (3×32×32) gives an 8×8 feature map, so the
//! trunk's linear layer is Linear(64·8·8 = 4096 → 256) and the decoder ends in ConvT(32→3); the
//! 8×8 digits give a 2×2 map (Linear(256→256)) — the conv stack is *adapted*, not refused, for
//! any h, w that are positive multiples of 4. Other sizes are refused with an error.
//! The benchmark architecture uses H = [`CONV_HIDDEN`] = 256 and z = [`CONV_Z_DIM`] = 32;
//! [`super::build`] always uses 256 for the conv trunk and decoder (`ModelSpec::hidden` then only
//! sizes the models' MLP parts, e.g. M1+M2's upper M2 or M1's classifier).
//!
//! The heads on top of h (q(y|x), q(z|x,y), …) belong to the models. Parameter names are stable:
//! MLP layers are "0", "1", … (plus "out" for a decoder's last layer); conv layers are "conv1",
//! "conv2", "fc" (encoder) and "fc1", "fc2", "deconv1", "deconv2" (decoder).

use super::Arch;
use crate::nn::{join, Activation, Conv2d, ConvTranspose2d, Init, Linear, Module, Role};
use crate::rng::Rng;
use crate::{Device, Error, Result, Tensor};

/// Width of the conv architecture's dense layers (the benchmark setting).
pub const CONV_HIDDEN: usize = 256;
/// Latent size of the conv architecture's benchmark setting (`--z-dim` overrides it).
pub const CONV_Z_DIM: usize = 32;
/// Channels of the two conv layers.
const CONV_CHANNELS: (usize, usize) = (32, 64);

/// The latent size a command line should use for `arch` when `--z-dim` is not given.
pub fn default_z_dim(arch: Arch) -> usize {
    match arch {
        Arch::Mlp => 50,
        Arch::Conv => CONV_Z_DIM,
    }
}

/// The hidden width a command line should use for `arch` when `--hidden` is not given.
pub fn default_hidden(arch: Arch) -> usize {
    match arch {
        Arch::Mlp => 500,
        Arch::Conv => CONV_HIDDEN,
    }
}

/// The feature map after the two stride-2 convolutions: (64, h/4, w/4). Error: h or w not a
/// positive multiple of 4.
pub fn conv_feature_map(input: (usize, usize, usize)) -> Result<(usize, usize, usize)> {
    let (c, h, w) = input;
    if c == 0 || h == 0 || w == 0 || h % 4 != 0 || w % 4 != 0 {
        return Err(Error::invalid(
            "--arch conv",
            format!(
                "the conv architecture needs images whose height and width are positive multiples \
                 of 4 (two stride-2 convolutions); got {c}×{h}×{w} — use --arch mlp"
            ),
        ));
    }
    Ok((CONV_CHANNELS.1, h / 4, w / 4))
}

/// Hidden layers of an MLP, each followed by the activation.
pub struct Mlp {
    pub layers: Vec<Linear>,
    pub activation: Activation,
}

impl Mlp {
    /// `layers` hidden layers of width `hidden` on `in_dim` inputs (`layers` may be 0: identity).
    pub fn new(
        in_dim: usize,
        hidden: usize,
        layers: usize,
        activation: Activation,
        rng: &mut Rng,
        device: Device,
    ) -> Result<Self> {
        let mut v = Vec::with_capacity(layers);
        let mut d = in_dim;
        for _ in 0..layers {
            v.push(Linear::new(d, hidden, Init::KaimingUniform, rng, device)?);
            d = hidden;
        }
        Ok(Mlp {
            layers: v,
            activation,
        })
    }

    /// Width of the output.
    pub fn out_dim(&self, in_dim: usize) -> usize {
        self.layers.last().map_or(in_dim, Linear::out_features)
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for l in &self.layers {
            h = self.activation.apply(&l.forward(&h)?)?;
        }
        Ok(h)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, Role)) {
        for (i, l) in self.layers.iter().enumerate() {
            l.visit(&join(prefix, &i.to_string()), f);
        }
    }
}

/// The conv encoder trunk: x [n, c·h·w] → h [n, hidden] (see the module docs).
pub struct ConvEncoder {
    pub conv1: Conv2d,
    pub conv2: Conv2d,
    pub fc: Linear,
    input: (usize, usize, usize),
}

impl ConvEncoder {
    /// The trunk for `input` = (c, h, w) images, ending in a dense layer of width `hidden`.
    pub fn new(
        input: (usize, usize, usize),
        hidden: usize,
        rng: &mut Rng,
        device: Device,
    ) -> Result<Self> {
        let (fc_c, fh, fw) = conv_feature_map(input)?;
        let (c1, c2) = CONV_CHANNELS;
        let init = Init::KaimingUniform;
        Ok(ConvEncoder {
            conv1: Conv2d::new(input.0, c1, 4, 2, 1, init, rng, device)?,
            conv2: Conv2d::new(c1, c2, 4, 2, 1, init, rng, device)?,
            fc: Linear::new(fc_c * fh * fw, hidden, init, rng, device)?,
            input,
        })
    }

    /// Width of h.
    pub fn out_dim(&self) -> usize {
        self.fc.out_features()
    }
}

impl Module for ConvEncoder {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let n = x.dim("conv encoder", 0)?;
        let (c, h, w) = self.input;
        let img = x.reshape([n, c, h, w])?;
        let a = self.conv1.forward(&img)?.relu()?;
        let b = self.conv2.forward(&a)?.relu()?;
        self.fc.forward(&b.flatten_rows()?)?.relu()
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, Role)) {
        self.conv1.visit(&join(prefix, "conv1"), f);
        self.conv2.visit(&join(prefix, "conv2"), f);
        self.fc.visit(&join(prefix, "fc"), f);
    }
}

/// An encoder trunk x [n, D] → h [n, H] of either family.
pub enum Encoder {
    Mlp(Mlp),
    Conv(ConvEncoder),
}

impl Encoder {
    /// Width of h.
    pub fn out_dim(&self, in_dim: usize) -> usize {
        match self {
            Encoder::Mlp(m) => m.out_dim(in_dim),
            Encoder::Conv(c) => c.out_dim(),
        }
    }
}

impl Module for Encoder {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Encoder::Mlp(m) => m.forward(x),
            Encoder::Conv(c) => c.forward(x),
        }
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, Role)) {
        match self {
            Encoder::Mlp(m) => m.visit(prefix, f),
            Encoder::Conv(c) => c.visit(prefix, f),
        }
    }
}

/// The encoder trunk for `arch`: an MLP of `layers` hidden layers of width `hidden`, or the conv
/// trunk (which ignores `layers` and ends in a dense layer of width `hidden`).
pub fn encoder(
    arch: Arch,
    input: (usize, usize, usize),
    hidden: usize,
    layers: usize,
    rng: &mut Rng,
    device: Device,
) -> Result<Encoder> {
    let (c, h, w) = input;
    Ok(match arch {
        Arch::Mlp => Encoder::Mlp(Mlp::new(
            c * h * w,
            hidden,
            layers,
            Activation::Relu,
            rng,
            device,
        )?),
        Arch::Conv => Encoder::Conv(ConvEncoder::new(input, hidden, rng, device)?),
    })
}

/// An MLP decoder: hidden layers, then a linear layer to the D logits.
pub struct MlpDecoder {
    pub hidden: Mlp,
    pub out: Linear,
}

/// The conv decoder: [n, in] → Bernoulli logits [n, c·h·w] (see the module docs).
pub struct ConvDecoder {
    pub fc1: Linear,
    pub fc2: Linear,
    pub deconv1: ConvTranspose2d,
    pub deconv2: ConvTranspose2d,
    /// The feature map fc2 is reshaped to.
    map: (usize, usize, usize),
}

impl ConvDecoder {
    /// The decoder from `in_dim` inputs to `input` = (c, h, w) images, dense width `hidden`.
    pub fn new(
        in_dim: usize,
        input: (usize, usize, usize),
        hidden: usize,
        rng: &mut Rng,
        device: Device,
    ) -> Result<Self> {
        let map = conv_feature_map(input)?;
        let (c1, c2) = CONV_CHANNELS;
        let init = Init::KaimingUniform;
        Ok(ConvDecoder {
            fc1: Linear::new(in_dim, hidden, init, rng, device)?,
            fc2: Linear::new(hidden, map.0 * map.1 * map.2, init, rng, device)?,
            deconv1: ConvTranspose2d::new(c2, c1, 4, 2, 1, 0, init, rng, device)?,
            deconv2: ConvTranspose2d::new(c1, input.0, 4, 2, 1, 0, init, rng, device)?,
            map,
        })
    }
}

impl Module for ConvDecoder {
    fn forward(&self, z: &Tensor) -> Result<Tensor> {
        let n = z.dim("conv decoder", 0)?;
        let a = self.fc1.forward(z)?.relu()?;
        let b = self.fc2.forward(&a)?.relu()?;
        let (c, h, w) = self.map;
        let m = b.reshape([n, c, h, w])?;
        let d = self.deconv1.forward(&m)?.relu()?;
        self.deconv2.forward(&d)?.flatten_rows()
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, Role)) {
        self.fc1.visit(&join(prefix, "fc1"), f);
        self.fc2.visit(&join(prefix, "fc2"), f);
        self.deconv1.visit(&join(prefix, "deconv1"), f);
        self.deconv2.visit(&join(prefix, "deconv2"), f);
    }
}

/// A decoder [n, in] → logits [n, D] of either family.
pub enum Decoder {
    Mlp(MlpDecoder),
    Conv(ConvDecoder),
}

impl Module for Decoder {
    fn forward(&self, z: &Tensor) -> Result<Tensor> {
        match self {
            Decoder::Mlp(m) => m.out.forward(&m.hidden.forward(z)?),
            Decoder::Conv(c) => c.forward(z),
        }
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, Role)) {
        match self {
            Decoder::Mlp(m) => {
                m.hidden.visit(prefix, f);
                m.out.visit(&join(prefix, "out"), f);
            }
            Decoder::Conv(c) => c.visit(prefix, f),
        }
    }
}

/// The decoder for `arch` from `in_dim` inputs to `input` images: an MLP of `layers` hidden
/// layers of width `hidden`, or the conv decoder (dense width `hidden`, `layers` ignored).
pub fn decoder(
    arch: Arch,
    in_dim: usize,
    input: (usize, usize, usize),
    hidden: usize,
    layers: usize,
    rng: &mut Rng,
    device: Device,
) -> Result<Decoder> {
    let (c, h, w) = input;
    Ok(match arch {
        Arch::Mlp => {
            let hid = Mlp::new(in_dim, hidden, layers, Activation::Relu, rng, device)?;
            let out = Linear::new(
                hid.out_dim(in_dim),
                c * h * w,
                Init::KaimingUniform,
                rng,
                device,
            )?;
            Decoder::Mlp(MlpDecoder { hidden: hid, out })
        }
        Arch::Conv => Decoder::Conv(ConvDecoder::new(in_dim, input, hidden, rng, device)?),
    })
}

/// The width the conv layers use, or `hidden` for an MLP (see the module docs).
pub fn trunk_width(arch: Arch, hidden: usize) -> usize {
    match arch {
        Arch::Mlp => hidden,
        Arch::Conv => CONV_HIDDEN,
    }
}

/// Shared pieces of the models' losses.
pub(crate) mod util {
    use crate::rng::Rng;
    use crate::{Device, Result, Tensor};

    /// Folds `value` into the running mean `buffer` in place (buffer ← m·buffer + (1 − m)·value,
    /// m = `momentum`), without recording gradients: the update of a model's state buffers
    /// (SHOT's class marginal, M1+M2's z1 activity), which checkpoints save with the weights.
    pub fn update_running_mean(buffer: &Tensor, value: &Tensor, momentum: f32) -> Result<()> {
        let _g = crate::no_grad();
        let updated = buffer
            .mul_scalar(momentum)?
            .add(&value.mul_scalar(1.0 - momentum)?)?;
        std::mem::swap(&mut *buffer.storage_mut(), &mut *updated.storage_mut());
        Ok(())
    }

    /// z = μ + exp(½ log σ²)·ε, ε ~ N(0, I) (the reparameterisation trick).
    pub fn reparam(mu: &Tensor, lv: &Tensor, rng: &mut Rng, device: Device) -> Result<Tensor> {
        let eps = Tensor::randn(mu.shape().clone(), rng.next_key(mu.elem_count()), device)?;
        mu.add(&lv.mul_scalar(0.5)?.exp()?.mul(&eps)?)
    }

    /// A relaxed one-hot sample softmax((ℓ + g)/τ) with g = −log(−log u), u ~ U(0, 1)
    /// (Gumbel-softmax; Jang et al. 2017, Maddison et al. 2017). `logits` may be unnormalised.
    pub fn gumbel_softmax(logits: &Tensor, tau: f32, rng: &mut Rng) -> Result<Tensor> {
        let u = Tensor::rand(
            logits.shape().clone(),
            rng.next_key(logits.elem_count()),
            logits.device(),
        )?;
        // u lies in the open interval (0, 1), so both logarithms are finite.
        let g = u.log()?.neg()?.log()?.neg()?;
        logits.add(&g)?.mul_scalar(1.0 / tau)?.softmax()
    }

    /// Sum over rows of the weight `w(t) = w_max·exp(−5(1 − min(1, t/T))²)`: the sigmoid-shaped
    /// warm-up ramp of Laine and Aila (2017) that SHOT-VAE uses for all its weights. `t` and `T`
    /// are in the same unit (epochs or fractions of training); T ≤ 0 means no ramp.
    pub fn ramp(w_max: f32, t: f32, t_max: f32) -> f32 {
        if t_max <= 0.0 {
            return w_max;
        }
        let r = 1.0 - (t / t_max).min(1.0);
        w_max * (-5.0 * r * r).exp()
    }

    /// KL(Cat(softmax ℓ) ‖ U(K)) = Σ_k π_k (log π_k + log K) per row.
    pub fn kl_categorical_uniform_rows(logits: &Tensor) -> Result<Tensor> {
        let (_, k) = logits.dims2("kl_categorical_uniform_rows")?;
        let logq = logits.log_softmax()?;
        logq.exp()?.mul(&logq.add_scalar((k as f32).ln())?)?.sum(1)
    }

    /// log N(z; μ, σ²) per row with σ² given directly (not its log).
    pub fn log_normal_var_rows(z: &Tensor, mu: &Tensor, var: &Tensor) -> Result<Tensor> {
        let (_, d) = z.dims2("log_normal_var_rows")?;
        let c = -0.5 * d as f32 * (2.0 * std::f32::consts::PI).ln();
        var.log()?
            .add(&z.sub(mu)?.square()?.div(var)?)?
            .sum(1)?
            .mul_scalar(-0.5)?
            .add_scalar(c)
    }

    /// log N(z; μ, exp(lv)) per row.
    pub fn log_normal_lv_rows(z: &Tensor, mu: &Tensor, lv: &Tensor) -> Result<Tensor> {
        let (_, d) = z.dims2("log_normal_lv_rows")?;
        let c = -0.5 * d as f32 * (2.0 * std::f32::consts::PI).ln();
        lv.add(&z.sub(mu)?.square()?.mul(&lv.neg()?.exp()?)?)?
            .sum(1)?
            .mul_scalar(-0.5)?
            .add_scalar(c)
    }

    /// The one-hot rows [n, K] of each row's most likely class under `logits` [n, K]: the class
    /// a model names for an input, which its reconstruction is conditioned on.
    pub fn argmax_one_hot(logits: &Tensor) -> Result<Tensor> {
        let (_, k) = logits.dims2("argmax_one_hot")?;
        let ys: Vec<u32> = logits
            .argmax_rows()?
            .into_iter()
            .map(|c| c as u32)
            .collect();
        Tensor::one_hot(&ys, k, logits.device())
    }

    /// Every example of a batch of `n` paired with each of the `k` classes: the labels
    /// (row b·k + j is class j) and their one-hot rows [n·k, k], the y of a bound that sums y out
    /// exactly (inputs repeated with `repeat_interleave(k)` line up with them).
    pub fn enumerate_classes(n: usize, k: usize, device: Device) -> Result<(Vec<u32>, Tensor)> {
        let classes: Vec<u32> = (0..n).flat_map(|_| 0..k as u32).collect();
        let y = Tensor::one_hot(&classes, k, device)?;
        Ok((classes, y))
    }

    /// log p(y) = −log K for every class, as a \[K\] tensor (the fused ELBO's `log_prior`).
    pub fn uniform_log_prior(k: usize, device: Device) -> Result<Tensor> {
        Tensor::full(-(k as f32).ln(), [k], device)
    }

    /// A [n, k] tensor of zeros: the "no opinion" logits of a model without a classifier.
    pub fn zero_logits(n: usize, k: usize, device: Device) -> Result<Tensor> {
        Tensor::zeros([n, k], device)
    }
}

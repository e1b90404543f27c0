//! The semi-supervised adversarial autoencoder (Makhzani, Shlens, Jaitly, Goodfellow and Frey
//! 2016, "Adversarial autoencoders", §5): an autoencoder whose code is split into a class part
//! q(y|x) = softmax ℓ(x) and a style part z ~ q(z|x) = N(μ(x), diag σ²(x)) (the paper's
//! "Gaussian posterior" encoder), decoded together by p(x|y, z). Instead of a KL term, two
//! discriminators shape the aggregated posteriors: D_z tells z ~ q(z|x) from z ~ N(0, I), D_y
//! tells q(y|x) from one-hot y ~ Cat(1/K); the encoder is trained to fool both. Labels enter
//! through a cross-entropy on the labelled points.
//!
//! The paper alternates three phases per mini-batch (reconstruction, regularisation, semi-
//! supervised classification), each with its own optimiser step. Here one loss and one Adam
//! step do all three, each discriminator term written so that its gradient reaches only the
//! side it is meant to train: the discriminator's own loss sees the encoder's outputs detached,
//! and the encoder's ("generator") loss goes through detached copies of the discriminator's
//! weights. That is simultaneous gradient play on the GAN game with the non-saturating
//! generator loss of Goodfellow et al. (the encoder maximises log D, which keeps its gradient
//! when the discriminator wins; the saturating minimax form lost it here: D_z's loss fell to
//! 0.04 on digits within 15 epochs). Per step, over the labelled and unlabelled rows together
//! (n of them), ⌊·⌋ marking a detached tensor:
//!
//!   rec    = mean BCE(dec([z, q(y|x)]), x)
//!   disc_z = mean BCE(D_z(z'), 1) + mean BCE(D_z(⌊z⌋), 0),   z' ~ N(0, I), n draws
//!   gen_z  = mean BCE(D_⌊z⌋(z), 1)                          (D_z's weights detached)
//!   disc_y, gen_y: the same with q(y|x) against one-hot y' ~ Cat(1/K)
//!   J      = rec + w·(disc_z + gen_z + disc_y + gen_y) + α·mean_lab CE(ℓ(x), y)
//!
//! with w = [`AAE_ADVERSARIAL_WEIGHT`] and α the labelled weight (default 0.1·N/N_labelled as
//! M2's, [`super::ModelSpec::effective_alpha`]).
//!
//! An AAE has no likelihood bound ([`Model::has_elbo`] is false). Samples decode z ~ N(0, I)
//! with a one-hot y (the prior the discriminators matched); reconstructions decode μ(x) with
//! q(y|x).
//!
//! Architecture: [`ClassStyleNet`] (the MLP trunk of two hidden layers, as the paper's
//! 1000-1000 encoder and decoder with `--hidden`, or the conv trunk), and two discriminators of
//! two hidden ReLU layers of width `hidden` each (the paper's are 1000-1000).

use super::arch::{util, Mlp};
use super::class_style::{ClassStyleNet, ClassStyleSizes};
use super::{Batch, Model, StepContext, Terms};
use crate::nn::{join, Activation, Init, Linear, Module, Role};
use crate::rng::Rng;
use crate::{Device, Error, Result, Tensor};

/// Hidden layers of the MLP trunk, the decoder and each discriminator.
pub const AAE_MLP_LAYERS: usize = 2;

/// Weight w of the two adversarial terms against the reconstruction.
pub const AAE_ADVERSARIAL_WEIGHT: f32 = 1.0;

/// The adversarial autoencoder's sizes and weights.
#[derive(Clone, Debug, PartialEq)]
pub struct AaeConfig {
    pub sizes: ClassStyleSizes,
    /// Weight α of the labelled cross-entropy.
    pub alpha: f32,
    /// Weight w of the adversarial terms.
    pub adversarial_weight: f32,
}

/// A discriminator: `in → H → H → 1` logit of "drawn from the prior".
struct Discriminator {
    hidden: Mlp,
    out: Linear,
}

impl Discriminator {
    fn new(in_dim: usize, hidden: usize, rng: &mut Rng, device: Device) -> Result<Self> {
        let mlp = Mlp::new(
            in_dim,
            hidden,
            AAE_MLP_LAYERS,
            Activation::Relu,
            rng,
            device,
        )?;
        let out = Linear::new(mlp.out_dim(in_dim), 1, Init::KaimingUniform, rng, device)?;
        Ok(Discriminator { hidden: mlp, out })
    }

    /// The logit of `t` being a prior draw, `[n, 1]`; with `frozen`, through detached copies
    /// of the weights, so that a loss on it trains only what produced `t`.
    fn logit(&self, t: &Tensor, frozen: bool) -> Result<Tensor> {
        let layer = |l: &Linear, h: &Tensor| {
            if frozen {
                let bias = l.bias.as_ref().map(Tensor::detach);
                h.linear(&l.weight.detach(), bias.as_ref())
            } else {
                l.forward(h)
            }
        };
        let mut h = t.clone();
        for l in &self.hidden.layers {
            h = self.hidden.activation.apply(&layer(l, &h)?)?;
        }
        layer(&self.out, &h)
    }

    /// (its own loss on prior draws `real` and encoder outputs `fake`, the encoder's loss on
    /// `fake`); see the module doc.
    fn losses(&self, real: &Tensor, fake: &Tensor) -> Result<(Tensor, Tensor)> {
        let n = fake.dim("aae", 0)?;
        let device = fake.device();
        let ones = Tensor::from_vec(vec![1.0; n], [n, 1], device)?;
        let zeros = Tensor::from_vec(vec![0.0; n], [n, 1], device)?;
        let bce = |logit: Tensor, target: &Tensor| logit.bce_with_logits_rows(target)?.mean_all();
        let disc = bce(self.logit(real, false)?, &ones)?
            .add(&bce(self.logit(&fake.detach(), false)?, &zeros)?)?;
        let gen = bce(self.logit(fake, true)?, &ones)?;
        Ok((disc, gen))
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, Role)) {
        self.hidden.visit(&join(prefix, "hidden"), f);
        self.out.visit(&join(prefix, "out"), f);
    }
}

/// Encoder, decoder and the two discriminators.
pub struct Aae {
    pub cfg: AaeConfig,
    net: ClassStyleNet,
    disc_z: Discriminator,
    disc_y: Discriminator,
    device: Device,
}

impl Aae {
    /// A freshly initialised adversarial autoencoder.
    pub fn new(cfg: AaeConfig, rng: &mut Rng, device: Device) -> Result<Self> {
        super::check_loss_weight("--alpha", cfg.alpha)?;
        super::check_loss_weight("aae adversarial weight", cfg.adversarial_weight)?;
        let net = ClassStyleNet::new("aae", &cfg.sizes, AAE_MLP_LAYERS, rng, device)?;
        let sz = &cfg.sizes;
        let disc_z = Discriminator::new(sz.z_dim, sz.hidden, rng, device)?;
        let disc_y = Discriminator::new(sz.classes, sz.hidden, rng, device)?;
        Ok(Aae {
            cfg,
            net,
            disc_z,
            disc_y,
            device,
        })
    }
}

impl Module for Aae {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.classify(x)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, Role)) {
        self.net.visit(prefix, f);
        self.disc_z.visit(&join(prefix, "disc_z"), f);
        self.disc_y.visit(&join(prefix, "disc_y"), f);
    }
}

impl Model for Aae {
    fn name(&self) -> &'static str {
        "aae"
    }

    fn loss(&self, batch: &Batch, ctx: &mut StepContext) -> Result<Terms> {
        let (x, n_lab) = batch.labelled_then_unlabelled("aae")?;
        let n = x.dim("aae", 0)?;
        let (k, zd) = (self.cfg.sizes.classes, self.cfg.sizes.z_dim);
        let p = self.net.encode(&x)?;
        let z = util::reparam(&p.mu, &p.lv, ctx.rng, self.device)?;
        let qy = p.logits.softmax()?;
        let rec = self
            .net
            .decode(&z, &qy)?
            .bce_with_logits_rows(&x)?
            .mean_all()?;
        let z_prior = Tensor::randn([n, zd], ctx.rng.next_key(n * zd), self.device)?;
        let classes: Vec<u32> = (0..n).map(|_| ctx.rng.below(k) as u32).collect();
        let y_prior = Tensor::one_hot(&classes, k, self.device)?;
        let (disc_z, gen_z) = self.disc_z.losses(&z_prior, &z)?;
        let (disc_y, gen_y) = self.disc_y.losses(&y_prior, &qy)?;
        let adversarial = disc_z.add(&gen_z)?.add(&disc_y)?.add(&gen_y)?;
        let loss = rec.add(&adversarial.mul_scalar(self.cfg.adversarial_weight)?)?;
        let parts = vec![
            ("rec", rec),
            ("disc_z", disc_z),
            ("gen_z", gen_z),
            ("disc_y", disc_y),
            ("gen_y", gen_y),
        ];
        Terms { loss, parts }.plus_labelled_ce(&p.logits, n_lab, &batch.y_lab, self.cfg.alpha)
    }

    fn classify(&self, x: &Tensor) -> Result<Tensor> {
        self.net.classify(x)
    }
    fn has_elbo(&self) -> bool {
        false
    }
    fn neg_elbo(&self, _x: &Tensor, _rng: &mut Rng) -> Result<Tensor> {
        Err(Error::invalid(
            "aae",
            "an adversarial autoencoder has no likelihood bound",
        ))
    }
    generative_hooks_of_class_style_net!();
}

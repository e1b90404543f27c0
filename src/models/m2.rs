//! M2 of Kingma, Rezende, Mohamed and Welling (2014), "Semi-supervised learning with deep
//! generative models": p(y) = Cat(1/K), p(z) = N(0, I), p(x|y,z) Bernoulli; inference
//! q(y|x) = Cat(π(x)) and q(z|x,y) = N(μ(x,y), diag σ²(x,y)).
//!
//! Losses (negated bounds, minimised):
//!   L(x,y) = BCE(dec(z, y), x) + KL(q(z|x,y) ‖ N(0,I)) − log p(y),   z ~ q(z|x,y) (one sample)
//!   U(x)   = Σ_y q(y|x)·L(x,y) − H(q(y|x))    (y enumerated exactly over all K classes)
//!   J      = w·mean_lab L + α·mean_lab CE(q(y|x), y) + mean_unlab U
//! α defaults to 0.1·N/N_labelled, the reference code's weight of a labelled example's CE
//! against its own bound (its β); against the unlabelled term the reference weighs the CE
//! w·α with w = N_labelled/N_unlabelled, i.e. 0.1 on MNIST-100 (see [`super::m1m2`]). w defaults
//! to 1, which weighs the labelled batch as much as the unlabelled one; the paper's J = Σ_l L +
//! Σ_u U counts each example once, w = N_labelled/N_unlabelled (`train
//! --labelled-bound-weight`). That is M1+M2's default (see [`super::m1m2`], where it took the
//! test error from 9.07 ± 3.56% to 5.04 ± 0.70%); here it is measured over 10-epoch runs only
//! (13.75 ± 1.31% against 16.2 ± 3.6%, three seeds, RESULTS.md), so M2 keeps w = 1 until
//! full-length runs confirm it.
//!
//! Two architectures (see [`super::arch`]):
//! - **MLP**: q(y|x) = x → H → K; q(z|x,y) = [x, y] → H → (μ, log σ²); p(x|y,z) = [z, y] → H → D.
//!   The first layer of q(z|x,y) acts on the concatenation [x, y]; it is computed as
//!   W_x·x + W_y·y so that W_x·x runs once per example rather than once per (example, class).
//! - **Conv**: one trunk h(x) (conv, conv, dense 256) shared by q(y|x) = Linear(256→K) and
//!   q(z|x,y) = Linear(256+K → 2·z) → (μ, log σ²), the latter computed as W_h·h + W_y·y by the
//!   same split (identical parameters to one Linear on [h, y]); p(x|y,z) is the conv decoder on
//!   [z, y]. The trunk runs once per batch and feeds both heads (`EncX::encode`); computing
//!   it twice, once per head, cost 13 % of a training step's flops.
//!
//! With `fused` (the CLI default), L and U are each one fused op after the decoder
//! (`vae::reparameterize` + `vae::elbo_labelled` / `vae::elbo_marginal`); otherwise they are
//! composed from primitives as written above. Both paths draw the same ε.

use super::arch::util;
use super::arch::{ConvDecoder, ConvEncoder};
use super::{Batch, Model, Prior, StepContext, Terms};
use crate::nn::{join, Activation, Init, Linear, Module, Role};
use crate::rng::Rng;
use crate::vae::{self, Likelihood};
use crate::{Device, Error, Result, Tensor};

/// M2's sizes.
#[derive(Clone, Debug)]
pub struct M2Config {
    pub x_dim: usize,
    pub classes: usize,
    pub hidden: usize,
    pub z_dim: usize,
    /// Weight of the labelled cross-entropy term.
    pub alpha: f32,
    /// Weight w of the labelled bound, w·mean_lab L (see the module comment).
    pub labelled_weight: f32,
    pub activation: Activation,
    /// Use the fused ops (`vae::reparameterize` + `vae::elbo_labelled` / `vae::elbo_marginal`)
    /// rather than the composition of primitives. Same maths and the same random draws, so the
    /// two agree to float rounding; the fused path skips the (B·K)×D intermediates.
    pub fused: bool,
}

/// Everything that reads x: q(y|x)'s hidden layer, and the x-dependent half of q(z|x,y)'s input
/// layer (what `M2::encode_z` adds W_y·y to).
enum EncX {
    /// MLP: q(y|x)'s own hidden layer, and W_x·x + b, the x half of q(z|x,y)'s hidden layer.
    Mlp { cls_h: Linear, enc_x: Linear },
    /// Conv: the shared trunk h(x), and W_h·h + b, the h half of the (μ, log σ²) layer.
    Conv { trunk: ConvEncoder, head: Linear },
}

impl EncX {
    /// The x part of q(z|x,y)'s input layer.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            EncX::Mlp { enc_x, .. } => enc_x.forward(x),
            EncX::Conv { trunk, head } => head.forward(&trunk.forward(x)?),
        }
    }

    /// Both at once: (the features q(y|x)'s output layer reads, the x part of q(z|x,y)'s input
    /// layer), sharing the conv trunk.
    fn encode(&self, x: &Tensor, activation: Activation) -> Result<(Tensor, Tensor)> {
        match self {
            EncX::Mlp { cls_h, enc_x } => {
                Ok((activation.apply(&cls_h.forward(x)?)?, enc_x.forward(x)?))
            }
            EncX::Conv { trunk, head } => {
                let h = trunk.forward(x)?;
                let hx = head.forward(&h)?;
                Ok((h, hx))
            }
        }
    }

    /// The features q(y|x)'s output layer reads.
    fn cls_hidden(&self, x: &Tensor, activation: Activation) -> Result<Tensor> {
        match self {
            EncX::Mlp { cls_h, .. } => activation.apply(&cls_h.forward(x)?),
            EncX::Conv { trunk, .. } => trunk.forward(x),
        }
    }
}

/// The rest of the network.
enum Net {
    Mlp {
        /// q(z|x,y)'s heads on the hidden layer.
        enc_mu: Linear,
        enc_lv: Linear,
        /// p(x|y,z): [z, y] → hidden → D logits.
        dec_h: Linear,
        dec_out: Linear,
    },
    Conv {
        /// p(x|y,z): the conv decoder on [z, y].
        dec: ConvDecoder,
    },
}

/// The M2 model: MLP or conv encoder, classifier and decoder.
pub struct M2 {
    pub cfg: M2Config,
    /// q(y|x)'s output layer (on the MLP hidden layer or the conv trunk).
    cls_out: Linear,
    /// See [`EncX`].
    enc_x: EncX,
    /// W_y of q(z|x,y)'s input layer (no bias).
    enc_y: Linear,
    net: Net,
    device: Device,
}

impl M2 {
    /// A freshly initialised MLP M2.
    pub fn new(cfg: M2Config, rng: &mut Rng, device: Device) -> Result<Self> {
        super::check_loss_weight("--labelled-bound-weight", cfg.labelled_weight)?;
        let (d, k, h, z) = (cfg.x_dim, cfg.classes, cfg.hidden, cfg.z_dim);
        let init = Init::KaimingUniform;
        // Drawn in this order so that a seed gives the same network as before the conv variant.
        let cls_h = Linear::new(d, h, init, rng, device)?;
        let cls_out = Linear::new(h, k, init, rng, device)?;
        let enc_x = Linear::new(d, h, init, rng, device)?;
        let mut enc_y = Linear::new(k, h, init, rng, device)?;
        enc_y.bias = None;
        let enc_mu = Linear::new(h, z, init, rng, device)?;
        let enc_lv = Linear::new(h, z, init, rng, device)?;
        let dec_h = Linear::new(z + k, h, init, rng, device)?;
        let dec_out = Linear::new(h, d, init, rng, device)?;
        Ok(M2 {
            cls_out,
            enc_x: EncX::Mlp { cls_h, enc_x },
            enc_y,
            net: Net::Mlp {
                enc_mu,
                enc_lv,
                dec_h,
                dec_out,
            },
            cfg,
            device,
        })
    }

    /// A freshly initialised conv M2 for `input` = (c, h, w) images; `cfg.hidden` is the width
    /// of the trunk's and decoder's dense layers (256 in the benchmark architecture) and
    /// `cfg.x_dim` must equal c·h·w.
    pub fn new_conv(
        cfg: M2Config,
        input: (usize, usize, usize),
        rng: &mut Rng,
        device: Device,
    ) -> Result<Self> {
        super::check_loss_weight("--labelled-bound-weight", cfg.labelled_weight)?;
        let (k, h, z) = (cfg.classes, cfg.hidden, cfg.z_dim);
        if cfg.x_dim != input.0 * input.1 * input.2 {
            return Err(Error::invalid(
                "m2",
                format!("x_dim {} is not c·h·w of {input:?}", cfg.x_dim),
            ));
        }
        let init = Init::KaimingUniform;
        let trunk = ConvEncoder::new(input, h, rng, device)?;
        let cls_out = Linear::new(h, k, init, rng, device)?;
        // Linear(h + K → 2z) split into its h and y column blocks (fan-in h + K for both).
        let mut head = Linear::new(h + k, 2 * z, init, rng, device)?;
        let w = head.weight.clone();
        head.weight = w.narrow(1, 0, h)?.copy()?.variable();
        let enc_y = Linear {
            weight: w.narrow(1, h, k)?.copy()?.variable(),
            bias: None,
        };
        let dec = ConvDecoder::new(z + k, input, h, rng, device)?;
        Ok(M2 {
            cls_out,
            enc_x: EncX::Conv { trunk, head },
            enc_y,
            net: Net::Conv { dec },
            cfg,
            device,
        })
    }

    /// (μ, log σ²) of q(z|x,y) for `hx` = enc_x(x) already repeated to match the rows of `y`.
    fn encode_z(&self, hx: &Tensor, y: &Tensor) -> Result<(Tensor, Tensor)> {
        let s = hx.add(&self.enc_y.forward(y)?)?;
        match &self.net {
            Net::Mlp { enc_mu, enc_lv, .. } => {
                let h = self.cfg.activation.apply(&s)?;
                Ok((enc_mu.forward(&h)?, enc_lv.forward(&h)?))
            }
            Net::Conv { .. } => {
                let z = self.cfg.z_dim;
                Ok((s.narrow(1, 0, z)?, s.narrow(1, z, z)?))
            }
        }
    }

    /// Bernoulli logits of p(x|y,z).
    pub fn decode(&self, z: &Tensor, y: &Tensor) -> Result<Tensor> {
        let zy = Tensor::concat(&[z, y], 1)?;
        match &self.net {
            Net::Mlp { dec_h, dec_out, .. } => {
                let h = self.cfg.activation.apply(&dec_h.forward(&zy)?)?;
                dec_out.forward(&h)
            }
            Net::Conv { dec } => dec.forward(&zy),
        }
    }

    /// log p(y) = −log K for every class, as a \[K\] tensor (the fused ELBO's `log_prior`).
    fn log_prior(&self) -> Result<Tensor> {
        util::uniform_log_prior(self.cfg.classes, self.device)
    }

    /// The fused path's sample: z ~ q(z|x,y) with its KL (one fused op) and the decoder logits.
    /// Draws ε with the same key as the composed path.
    fn sample_decode(&self, hx: &Tensor, y: &Tensor, rng: &mut Rng) -> Result<(Tensor, Tensor)> {
        let (mu, lv) = self.encode_z(hx, y)?;
        let key = rng.next_key(mu.elem_count());
        let (z, kl) = vae::reparameterize(&mu, &lv, key)?;
        Ok((self.decode(&z, y)?, kl))
    }

    /// L(x, y) per row for inputs `x` [n, D], labels `labels` (one-hot `y` [n, K]), and
    /// `hx` = enc_x(x) [n, H].
    fn labelled_bound(
        &self,
        x: &Tensor,
        hx: &Tensor,
        y: &Tensor,
        labels: &[u32],
        rng: &mut Rng,
    ) -> Result<Tensor> {
        if self.cfg.fused {
            let (logits, kl) = self.sample_decode(hx, y, rng)?;
            let lp = self.log_prior()?;
            return vae::elbo_labelled(&logits, x, &kl, labels, &lp, Likelihood::Bernoulli);
        }
        let (mu, lv) = self.encode_z(hx, y)?;
        let eps = Tensor::randn(
            mu.shape().clone(),
            rng.next_key(mu.elem_count()),
            self.device,
        )?;
        let z = mu.add(&lv.mul_scalar(0.5)?.exp()?.mul(&eps)?)?;
        let logits = self.decode(&z, y)?;
        let log_prior = -(self.cfg.classes as f32).ln();
        logits
            .bce_with_logits_rows(x)?
            .add(&mu.kl_diag_gaussian_rows(&lv)?)?
            .add_scalar(-log_prior)
    }

    /// (q(y|x)'s logits, the x part of q(z|x,y)'s input layer) for inputs `x`: the encoder's
    /// work, done once per batch.
    fn encode(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let (h, hx) = self.enc_x.encode(x, self.cfg.activation)?;
        Ok((self.cls_out.forward(&h)?, hx))
    }

    /// U(x) per row: every example decoded once per class, weighted by q(y|x), minus H(q).
    /// `logits` and `hx` are [`M2::encode`] of `x`.
    fn unlabelled_bound(
        &self,
        x: &Tensor,
        logits: &Tensor,
        hx: &Tensor,
        rng: &mut Rng,
    ) -> Result<Tensor> {
        let k = self.cfg.classes;
        let n = x.dim("m2", 0)?;
        let hx = hx.repeat_interleave(k)?;
        let (classes, y) = util::enumerate_classes(n, k, self.device)?;
        if self.cfg.fused {
            // One pass over the n·K decoded rows: no repeated x, no [n·K, D] loss intermediates.
            let (dec_logits, kl) = self.sample_decode(&hx, &y, rng)?;
            let lp = self.log_prior()?;
            return vae::elbo_marginal(&dec_logits, x, &kl, logits, &lp, Likelihood::Bernoulli);
        }
        let xr = x.repeat_interleave(k)?;
        let l = self
            .labelled_bound(&xr, &hx, &y, &classes, rng)?
            .reshape([n, k])?;
        let logq = logits.log_softmax()?;
        let q = logq.exp()?;
        // Σ_k q·L + Σ_k q·log q  (the second sum is −H(q)).
        q.mul(&l.add(&logq)?)?.sum(1)
    }
}

impl Module for M2 {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.classify(x)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, Role)) {
        match &self.enc_x {
            EncX::Mlp { cls_h, enc_x } => {
                cls_h.visit(&join(prefix, "cls_h"), f);
                self.cls_out.visit(&join(prefix, "cls_out"), f);
                enc_x.visit(&join(prefix, "enc_x"), f);
            }
            EncX::Conv { trunk, head } => {
                trunk.visit(&join(prefix, "trunk"), f);
                self.cls_out.visit(&join(prefix, "cls_out"), f);
                head.visit(&join(prefix, "enc_x"), f);
            }
        }
        self.enc_y.visit(&join(prefix, "enc_y"), f);
        match &self.net {
            Net::Mlp {
                enc_mu,
                enc_lv,
                dec_h,
                dec_out,
            } => {
                enc_mu.visit(&join(prefix, "enc_mu"), f);
                enc_lv.visit(&join(prefix, "enc_lv"), f);
                dec_h.visit(&join(prefix, "dec_h"), f);
                dec_out.visit(&join(prefix, "dec_out"), f);
            }
            Net::Conv { dec } => dec.visit(&join(prefix, "dec"), f),
        }
    }
}

impl Model for M2 {
    fn name(&self) -> &'static str {
        "m2"
    }

    fn loss(&self, batch: &Batch, ctx: &mut StepContext) -> Result<Terms> {
        let labelled = match &batch.x_lab {
            Some(xl) => {
                let y = Tensor::one_hot(&batch.y_lab, self.cfg.classes, self.device)?;
                let (logits, hx) = self.encode(xl)?;
                let l = self
                    .labelled_bound(xl, &hx, &y, &batch.y_lab, ctx.rng)?
                    .mean_all()?;
                let ce = logits.cross_entropy_labels(&batch.y_lab)?.mean_all()?;
                Some((l, ce))
            }
            None => None,
        };
        let unlabelled = match &batch.x_unlab {
            Some(xu) => {
                let (logits, hx) = self.encode(xu)?;
                Some(
                    self.unlabelled_bound(xu, &logits, &hx, ctx.rng)?
                        .mean_all()?,
                )
            }
            None => None,
        };
        Terms::semi_supervised(
            "m2",
            labelled,
            unlabelled,
            self.cfg.labelled_weight,
            self.cfg.alpha,
        )
    }

    fn classify(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.enc_x.cls_hidden(x, self.cfg.activation)?;
        self.cls_out.forward(&h)
    }

    fn neg_elbo(&self, x: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        let (logits, hx) = self.encode(x)?;
        self.unlabelled_bound(x, &logits, &hx, rng)
    }

    fn classify_and_neg_elbo(&self, x: &Tensor, rng: &mut Rng) -> Result<(Tensor, Tensor)> {
        let (logits, hx) = self.encode(x)?;
        let neg_elbo = self.unlabelled_bound(x, &logits, &hx, rng)?;
        Ok((logits, neg_elbo))
    }

    fn log_weights(&self, x: &Tensor, k: usize, rng: &mut Rng) -> Result<Tensor> {
        self.importance_weights(x, k, rng)
    }

    fn prior(&self) -> Prior {
        Prior::PerClass
    }

    fn decode_class(&self, z: &Tensor, y: &Tensor) -> Result<Tensor> {
        self.decode(z, y)
    }

    /// μ(x, y) of q(z|x,y) for y = argmax q(y|x), decoded with that y.
    fn reconstruct(&self, x: &Tensor) -> Result<Tensor> {
        let y = util::argmax_one_hot(&self.classify(x)?)?;
        self.decode(&self.style_mean(x, &y)?, &y)
    }

    fn style(&self, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        self.style_mean(x, y)
    }

    fn latent_mean(&self, x: &Tensor) -> Result<Tensor> {
        self.posterior_mean(x)
    }
}

// Evaluation and sampling hooks (kept apart from the training bounds above).
impl M2 {
    /// The mean μ(x, y) of q(z|x,y) for inputs `x` [n, D] and one-hot `y` [n, K].
    pub fn style_mean(&self, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        let hx = self.enc_x.forward(x)?;
        Ok(self.encode_z(&hx, y)?.0)
    }

    /// E[z|x] = Σ_y q(y|x)·μ(x, y) [n, z_dim]: the mean of M2's posterior of z given x alone,
    /// q(z|x) = Σ_y q(y|x)·q(z|x,y), with y summed out exactly (what `eval --active-units`
    /// measures). Combined on the host: an evaluation hook, not a training op.
    pub fn posterior_mean(&self, x: &Tensor) -> Result<Tensor> {
        let (n, k, z) = (
            x.dim("m2 posterior_mean", 0)?,
            self.cfg.classes,
            self.cfg.z_dim,
        );
        let q = self.classify(x)?.softmax()?.to_vec()?;
        let hx = self.enc_x.forward(x)?;
        let mut mean = vec![0.0f32; n * z];
        for y in 0..k {
            let onehot = Tensor::one_hot(&vec![y as u32; n], k, x.device())?;
            let mu = self.encode_z(&hx, &onehot)?.0.to_vec()?;
            for (i, (m, u)) in mean.iter_mut().zip(&mu).enumerate() {
                *m += q[(i / z) * k + y] * u;
            }
        }
        Tensor::from_vec(mean, [n, z], x.device())
    }

    /// `[n, k]` log importance weights with y summed out exactly: for each of the k draws, one
    /// z_y ~ q(z|x,y) per class y, and
    ///   w = Σ_y p(y)·p(x|y,z_y)·p(z_y) / q(z_y|x,y),
    /// an unbiased estimate of p(x) (q(y|x) is not needed: y is enumerated, not sampled). Its
    /// k = 1 bound is, in expectation, already at least the ELBO −U(x). Costs k·K decoder
    /// passes per example.
    pub fn importance_weights(&self, x: &Tensor, k: usize, rng: &mut Rng) -> Result<Tensor> {
        let classes = self.cfg.classes;
        let n = x.dim("m2 log_weights", 0)?;
        if k == 0 {
            return Err(Error::invalid("m2 log_weights", "k must be positive"));
        }
        let per = k * classes;
        let hx = self.enc_x.forward(x)?.repeat_interleave(per)?;
        let (_, y) = util::enumerate_classes(n * k, classes, self.device)?;
        let (mu, lv) = self.encode_z(&hx, &y)?;
        let eps = Tensor::randn(
            mu.shape().clone(),
            rng.next_key(mu.elem_count()),
            self.device,
        )?;
        let z = mu.add(&lv.mul_scalar(0.5)?.exp()?.mul(&eps)?)?;
        let log_px = self
            .decode(&z, &y)?
            .bce_with_logits_rows(&x.repeat_interleave(per)?)?
            .neg()?;
        // log N(z; 0, I) − log N(z; μ, σ²) = ½ Σ_d (ε² − z² + log σ²); the 2π terms cancel.
        let log_ratio = eps
            .square()?
            .sub(&z.square()?)?
            .add(&lv)?
            .sum(1)?
            .mul_scalar(0.5)?;
        let log_prior = -(classes as f32).ln();
        log_px
            .add(&log_ratio)?
            .add_scalar(log_prior)?
            .reshape([n * k, classes])?
            .logsumexp()?
            .reshape([n, k])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_labelled_bound_is_weighted_by_its_weight_alone() {
        let cfg = M2Config {
            x_dim: 6,
            classes: 3,
            hidden: 5,
            z_dim: 2,
            alpha: 2.0,
            labelled_weight: 1.0,
            activation: Activation::Relu,
            fused: true,
        };
        let mut rng = Rng::new(2, 0);
        let mut model = M2::new(cfg, &mut rng, Device::Cpu).unwrap();
        let x = |n: usize, rng: &mut Rng| {
            Tensor::rand([n, 6], rng.next_key(n * 6), Device::Cpu).unwrap()
        };
        let batch = Batch {
            x_lab: Some(x(3, &mut rng)),
            y_lab: vec![2, 0, 1],
            x_unlab: Some(x(4, &mut rng)),
            rows_lab: None,
            rows_unlab: None,
        };
        let loss_at = |w| {
            model.cfg.labelled_weight = w;
            let mut step_rng = Rng::new(7, 7);
            let mut ctx = StepContext {
                epoch: 1,
                epochs: 1,
                progress: 0.0,
                rng: &mut step_rng,
            };
            model.loss(&batch, &mut ctx).unwrap()
        };
        crate::models::test_util::assert_labelled_weight_scales_labelled_term(loss_at, 2.0);
    }
}

//! The auxiliary deep generative models of Maaløe, Sønderby, Sønderby and Winther (2016),
//! "Auxiliary deep generative models": M2 with an auxiliary latent a, in two variants.
//!
//! Inference (both): q(a,y,z|x) = q(a|x)·q(y|a,x)·q(z|a,x,y) with q(a|x) = N(μ_a(x), σ_a²(x)),
//! q(y|a,x) = Cat(π(a,x)), q(z|a,x,y) = N(μ(a,x,y), σ²(a,x,y)). Priors p(y) = Cat(1/K),
//! p(z) = N(0, I); x is Bernoulli.
//! - **ADGM** (`--model adgm`): p(x,a,y,z) = p(a|x,y,z)·p(x|y,z)·p(y)·p(z). Marginalising a
//!   leaves M2's generative model; a only makes q(z|x) = ∫ q(a|x) q(z|a,x,·) da richer.
//! - **SDGM** (`--model sdgm`, "skip"): p(x,a,y,z) = p(a|z,y)·p(x|a,z,y)·p(y)·p(z): a is a
//!   second stochastic layer of the generative model.
//!
//! Losses (negated bounds, minimised), with p(a|·) = p(a|x,y,z) (ADGM) or p(a|z,y) (SDGM) and
//! p(x|·) = p(x|y,z) or p(x|a,z,y):
//!   L(x,y) = −log p(x|·) + KL(q(z|a,x,y) ‖ N(0,I)) + log q(a|x) − log p(a|·) − log p(y),
//!            a ~ q(a|x), z ~ q(z|a,x,y) (one sample each)
//!   U(x)   = Σ_y q(y|a,x)·L(x,y) − H(q(y|a,x)),   y enumerated exactly over all K classes:
//!            one a per example shared by the K classes, one z per (example, class)
//!   J      = mean_lab L + α·mean_lab CE(q(y|a,x), y) + mean_unlab U
//! α defaults to 0.1·N/N_labelled as for M2 (the reference code's β scaled by n/n_l). The KL of
//! z is analytic (as in M2); the a terms are the single-sample log-densities.
//! Classification (`classify`, evaluation) is argmax q(y|a,x) at a = μ_a(x).
//!
//! Networks (one hidden layer of width H each, ReLU; the reference uses two of 500, and a = z =
//! 100; here the auxiliary size is the latent size, `--z-dim`):
//! - f(x): x itself (MLP), or the conv trunk (see [`super::arch`]) that every x-reading
//!   network of either side reads.
//! - q(a|x) = f → H → (μ_a, log σ_a²); q(y|a,x) = [f, a] → H → K;
//!   q(z|a,x,y) = [f, a, y] → H → (μ, log σ²), its input layer computed as W_fa·[f, a] + W_y·y
//!   so that W_fa·[f, a] runs once per example rather than once per (example, class).
//! - ADGM: p(a|x,y,z) = [f, z, y] → H → (μ, log σ²) (split W_f·f + W_zy·[z, y] likewise);
//!   p(x|y,z) = the decoder on [z, y].
//! - SDGM: p(a|z,y) = [z, y] → H → (μ, log σ²); p(x|a,z,y) = the decoder on [a, z, y].
//!   The decoder is an MLP of one hidden layer or the conv decoder.
//!
//! With `fused` (the CLI default), −L and U are each one fused op after the decoder
//! (`vae::elbo_labelled` / `vae::elbo_marginal`, the a terms passed in with the KL of z);
//! otherwise they are composed from primitives as written above. Both paths draw the same
//! a and z (z through `vae::reparameterize` in both).

use super::arch::{self, util, Decoder, Encoder};
use super::{Arch, Batch, Model, Prior, StepContext, Terms};
use crate::nn::{join, Activation, Init, Linear, Module, Role};
use crate::rng::Rng;
use crate::vae::{self, Likelihood};
use crate::{Device, Error, Result, Tensor};

/// Which generative model of the auxiliary family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auxiliary {
    /// p(a|x,y,z)·p(x|y,z): the auxiliary deep generative model.
    Adgm,
    /// p(a|z,y)·p(x|a,z,y): the skip deep generative model.
    Sdgm,
}

impl Auxiliary {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Auxiliary::Adgm => "adgm",
            Auxiliary::Sdgm => "sdgm",
        }
    }
}

/// The sizes of an auxiliary model.
#[derive(Clone, Debug)]
pub struct AdgmConfig {
    pub variant: Auxiliary,
    pub arch: Arch,
    /// Input (channels, height, width); D = c·h·w.
    pub input: (usize, usize, usize),
    pub classes: usize,
    /// Width H of every hidden layer.
    pub hidden: usize,
    pub z_dim: usize,
    /// Size of the auxiliary latent a.
    pub a_dim: usize,
    /// Weight of the labelled cross-entropy term.
    pub alpha: f32,
    /// Draws of a ~ q(a|x) per training example (the reference uses 5): each example's bound
    /// and cross-entropy are averaged over them (a y-enumeration and a z per draw). Evaluation
    /// draws one.
    pub a_samples: usize,
    /// Use the fused ELBO ops rather than the composition of primitives (see the module docs).
    pub fused: bool,
}

/// The nonlinearity of every hidden layer (the decoders of [`arch`] are ReLU too).
const ACTIVATION: Activation = Activation::Relu;

/// A Gaussian's (μ, log σ²) heads on a hidden layer.
struct Gaussian {
    mu: Linear,
    lv: Linear,
}

impl Gaussian {
    fn new(hidden: usize, dim: usize, rng: &mut Rng, device: Device) -> Result<Self> {
        Ok(Gaussian {
            mu: Linear::new(hidden, dim, Init::KaimingUniform, rng, device)?,
            lv: Linear::new(hidden, dim, Init::KaimingUniform, rng, device)?,
        })
    }

    /// (μ, log σ²) of the pre-activation `s` of the hidden layer.
    fn forward(&self, s: &Tensor) -> Result<(Tensor, Tensor)> {
        let h = ACTIVATION.apply(s)?;
        Ok((self.mu.forward(&h)?, self.lv.forward(&h)?))
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, Role)) {
        self.mu.visit(&join(prefix, "mu"), f);
        self.lv.visit(&join(prefix, "lv"), f);
    }
}

/// A linear layer without bias (the second column block of a split input layer).
fn unbiased(fan_in: usize, fan_out: usize, rng: &mut Rng, device: Device) -> Result<Linear> {
    let mut l = Linear::new(fan_in, fan_out, Init::KaimingUniform, rng, device)?;
    l.bias = None;
    Ok(l)
}

/// An ADGM or SDGM.
pub struct Adgm {
    pub cfg: AdgmConfig,
    /// f(x): identity (MLP, no parameters) or the conv trunk.
    trunk: Encoder,
    /// q(a|x).
    qa_h: Linear,
    qa: Gaussian,
    /// q(y|a,x) on [f, a].
    cls_h: Linear,
    cls_out: Linear,
    /// q(z|a,x,y)'s input layer: W_fa·[f, a] + b, and W_y·y.
    qz_fa: Linear,
    qz_y: Linear,
    qz: Gaussian,
    /// p(a|·)'s input layer: ADGM W_f·f + b (`pa_f`) plus W_zy·[z, y] (`pa_zy`, no bias);
    /// SDGM W_zy·[z, y] + b alone.
    pa_f: Option<Linear>,
    pa_zy: Linear,
    pa: Gaussian,
    /// p(x|·): on [z, y] (ADGM) or [a, z, y] (SDGM).
    dec: Decoder,
    device: Device,
}

/// What the inference side computes once per example.
struct Inferred {
    /// f(x) [n, F].
    f: Tensor,
    /// a ~ q(a|x) [n, A] (or its mean, for classification).
    a: Tensor,
    /// log q(a|x) \[n\] at that a.
    log_qa: Tensor,
    /// q(y|a,x)'s logits [n, K].
    logits: Tensor,
    /// W_fa·[f, a] + b [n, H], the example's part of q(z|a,x,y)'s input layer.
    hz: Tensor,
}

/// The rows of a bound before its reduction: x decoded for each (example, class) row and the
/// per-row KL(q(z) ‖ p(z)) + log q(a|x) − log p(a|·).
struct Decoded {
    logits: Tensor,
    extra: Tensor,
}

impl Adgm {
    /// A freshly initialised model.
    pub fn new(cfg: AdgmConfig, rng: &mut Rng, device: Device) -> Result<Self> {
        if cfg.a_samples == 0 {
            return Err(Error::invalid("--a-samples", "must be at least 1"));
        }
        let (k, h, z, a) = (cfg.classes, cfg.hidden, cfg.z_dim, cfg.a_dim);
        let init = Init::KaimingUniform;
        let trunk = arch::encoder(cfg.arch, cfg.input, h, 0, rng, device)?;
        let (c, ih, iw) = cfg.input;
        let f = trunk.out_dim(c * ih * iw);
        let qa_h = Linear::new(f, h, init, rng, device)?;
        let qa = Gaussian::new(h, a, rng, device)?;
        let cls_h = Linear::new(f + a, h, init, rng, device)?;
        let cls_out = Linear::new(h, k, init, rng, device)?;
        let qz_fa = Linear::new(f + a, h, init, rng, device)?;
        let qz_y = unbiased(k, h, rng, device)?;
        let qz = Gaussian::new(h, z, rng, device)?;
        let (pa_f, pa_zy, dec_in) = match cfg.variant {
            Auxiliary::Adgm => (
                Some(Linear::new(f, h, init, rng, device)?),
                unbiased(z + k, h, rng, device)?,
                z + k,
            ),
            Auxiliary::Sdgm => (None, Linear::new(z + k, h, init, rng, device)?, a + z + k),
        };
        let pa = Gaussian::new(h, a, rng, device)?;
        let dec = arch::decoder(cfg.arch, dec_in, cfg.input, h, 1, rng, device)?;
        Ok(Adgm {
            cfg,
            trunk,
            qa_h,
            qa,
            cls_h,
            cls_out,
            qz_fa,
            qz_y,
            qz,
            pa_f,
            pa_zy,
            pa,
            dec,
            device,
        })
    }

    /// The inference side's work per example: a drawn from q(a|x) with `rng`, or a = μ_a(x)
    /// without one.
    fn infer(&self, x: &Tensor, rng: Option<&mut Rng>) -> Result<Inferred> {
        let f = self.trunk.forward(x)?;
        let (mu, lv) = self.qa.forward(&self.qa_h.forward(&f)?)?;
        let a = match rng {
            Some(rng) => util::reparam(&mu, &lv, rng, self.device)?,
            None => mu.clone(),
        };
        let log_qa = util::log_normal_lv_rows(&a, &mu, &lv)?;
        let fa = Tensor::concat(&[&f, &a], 1)?;
        let logits = self
            .cls_out
            .forward(&ACTIVATION.apply(&self.cls_h.forward(&fa)?)?)?;
        let hz = self.qz_fa.forward(&fa)?;
        Ok(Inferred {
            f,
            a,
            log_qa,
            logits,
            hz,
        })
    }

    /// (μ, log σ²) of q(z|a,x,y) for the one-hot rows `y` [n·r, K], r rows per example.
    fn encode_z(&self, inf: &Inferred, y: &Tensor, r: usize) -> Result<(Tensor, Tensor)> {
        let s = inf.hz.repeat_interleave(r)?.add(&self.qz_y.forward(y)?)?;
        self.qz.forward(&s)
    }

    /// (μ, log σ²) of p(a|·) and the decoder's logits for codes `z` and one-hot `y` [n·r, ·],
    /// r rows per example of `inf`, with `a` [n·r, A] the auxiliary draw (SDGM decodes it).
    fn generate(
        &self,
        inf: &Inferred,
        a: &Tensor,
        z: &Tensor,
        y: &Tensor,
        r: usize,
    ) -> Result<((Tensor, Tensor), Tensor)> {
        let zy = Tensor::concat(&[z, y], 1)?;
        let mut s = self.pa_zy.forward(&zy)?;
        if let Some(pa_f) = &self.pa_f {
            s = pa_f.forward(&inf.f)?.repeat_interleave(r)?.add(&s)?;
        }
        Ok((self.pa.forward(&s)?, self.decode_with(a, z, y)?))
    }

    /// The decoder's logits: p(x|y,z) (ADGM, `a` unused) or p(x|a,z,y) (SDGM).
    fn decode_with(&self, a: &Tensor, z: &Tensor, y: &Tensor) -> Result<Tensor> {
        match self.cfg.variant {
            Auxiliary::Adgm => self.dec.forward(&Tensor::concat(&[z, y], 1)?),
            Auxiliary::Sdgm => self.dec.forward(&Tensor::concat(&[a, z, y], 1)?),
        }
    }

    /// The rows of the bound for one-hot `y` [n·r, K] (r rows per example of `inf`, sharing the
    /// example's a): z ~ q(z|a,x,y) and the decoder's logits, with the per-row extra terms.
    fn decode_rows(&self, inf: &Inferred, y: &Tensor, r: usize, rng: &mut Rng) -> Result<Decoded> {
        let (mu, lv) = self.encode_z(inf, y, r)?;
        let (z, kl) = vae::reparameterize(&mu, &lv, rng.next_key(mu.elem_count()))?;
        let a = inf.a.repeat_interleave(r)?;
        let ((pa_mu, pa_lv), logits) = self.generate(inf, &a, &z, y, r)?;
        let log_pa = util::log_normal_lv_rows(&a, &pa_mu, &pa_lv)?;
        let extra = kl.add(&inf.log_qa.repeat_interleave(r)?)?.sub(&log_pa)?;
        Ok(Decoded { logits, extra })
    }

    /// −L(x, y) per row of the decoded rows `d` against targets `x` (one row each) for
    /// `labels`.
    fn neg_bound(&self, d: &Decoded, x: &Tensor, labels: &[u32]) -> Result<Tensor> {
        let k = self.cfg.classes;
        if self.cfg.fused {
            let lp = util::uniform_log_prior(k, self.device)?;
            return vae::elbo_labelled(&d.logits, x, &d.extra, labels, &lp, Likelihood::Bernoulli);
        }
        d.logits
            .bce_with_logits_rows(x)?
            .add(&d.extra)?
            .add_scalar((k as f32).ln())
    }

    /// (q(y|a,x)'s logits [n, K], −L(x, y) [n, K] for every class y), one a ~ q(a|x) per
    /// example shared by its K classes and one z per (example, class): the terms U(x) sums
    /// (`Σ_y q(y)·(−L) − H(q)`), for checking it.
    pub fn class_bounds(&self, x: &Tensor, rng: &mut Rng) -> Result<(Tensor, Tensor)> {
        let inf = self.infer(x, Some(rng))?;
        let l = self.class_rows(x, &inf, rng)?;
        Ok((inf.logits, l))
    }

    /// −L(x, y) [n, K] for every class of the examples of `inf`.
    fn class_rows(&self, x: &Tensor, inf: &Inferred, rng: &mut Rng) -> Result<Tensor> {
        let (n, k) = (x.dim("adgm", 0)?, self.cfg.classes);
        let (classes, y) = util::enumerate_classes(n, k, self.device)?;
        let d = self.decode_rows(inf, &y, k, rng)?;
        self.neg_bound(&d, &x.repeat_interleave(k)?, &classes)?
            .reshape([n, k])
    }

    /// U(x) per row (see the module docs).
    fn unlabelled_bound(&self, x: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        let inf = self.infer(x, Some(rng))?;
        if self.cfg.fused {
            let (n, k) = (x.dim("adgm", 0)?, self.cfg.classes);
            let (_, y) = util::enumerate_classes(n, k, self.device)?;
            let d = self.decode_rows(&inf, &y, k, rng)?;
            let lp = util::uniform_log_prior(k, self.device)?;
            return vae::elbo_marginal(
                &d.logits,
                x,
                &d.extra,
                &inf.logits,
                &lp,
                Likelihood::Bernoulli,
            );
        }
        let l = self.class_rows(x, &inf, rng)?;
        let logq = inf.logits.log_softmax()?;
        // Σ_k q·L + Σ_k q·log q  (the second sum is −H(q)).
        logq.exp()?.mul(&l.add(&logq)?)?.sum(1)
    }

    /// (mean −L(x, y), mean CE(q(y|a,x), y)) of a labelled batch.
    fn labelled_terms(
        &self,
        x: &Tensor,
        labels: &[u32],
        rng: &mut Rng,
    ) -> Result<(Tensor, Tensor)> {
        let inf = self.infer(x, Some(rng))?;
        let y = Tensor::one_hot(labels, self.cfg.classes, self.device)?;
        let d = self.decode_rows(&inf, &y, 1, rng)?;
        let l = self.neg_bound(&d, x, labels)?.mean_all()?;
        let ce = inf.logits.cross_entropy_labels(labels)?.mean_all()?;
        Ok((l, ce))
    }

    /// Bernoulli logits of p(x|·) for codes `z` and one-hot `y`, with a = the mean of p(a|z,y)
    /// for the SDGM (the ADGM's p(x|y,z) does not read a).
    pub fn decode(&self, z: &Tensor, y: &Tensor) -> Result<Tensor> {
        match self.cfg.variant {
            Auxiliary::Adgm => self.dec.forward(&Tensor::concat(&[z, y], 1)?),
            Auxiliary::Sdgm => {
                let (a, _) = self
                    .pa
                    .forward(&self.pa_zy.forward(&Tensor::concat(&[z, y], 1)?)?)?;
                self.decode_with(&a, z, y)
            }
        }
    }

    /// The mean of q(z|a,x,y) at a = μ_a(x), for inputs `x` and one-hot `y` [n, K].
    pub fn style_mean(&self, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        let inf = self.infer(x, None)?;
        Ok(self.encode_z(&inf, y, 1)?.0)
    }
}

impl Module for Adgm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.classify(x)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, Role)) {
        self.trunk.visit(&join(prefix, "trunk"), f);
        self.qa_h.visit(&join(prefix, "qa_h"), f);
        self.qa.visit(&join(prefix, "qa"), f);
        self.cls_h.visit(&join(prefix, "cls_h"), f);
        self.cls_out.visit(&join(prefix, "cls_out"), f);
        self.qz_fa.visit(&join(prefix, "qz_fa"), f);
        self.qz_y.visit(&join(prefix, "qz_y"), f);
        self.qz.visit(&join(prefix, "qz"), f);
        if let Some(pa_f) = &self.pa_f {
            pa_f.visit(&join(prefix, "pa_f"), f);
        }
        self.pa_zy.visit(&join(prefix, "pa_zy"), f);
        self.pa.visit(&join(prefix, "pa"), f);
        self.dec.visit(&join(prefix, "dec"), f);
    }
}

impl Model for Adgm {
    fn name(&self) -> &'static str {
        self.cfg.variant.name()
    }

    /// With `a_samples` S > 1 every example is repeated S times, so that the means over the
    /// rows are the means over the examples of the S-sample averages.
    fn loss(&self, batch: &Batch, ctx: &mut StepContext) -> Result<Terms> {
        let s = self.cfg.a_samples;
        let labelled = match batch.labelled() {
            Some(xl) => {
                let labels: Vec<u32> = batch
                    .y_lab
                    .iter()
                    .flat_map(|&y| std::iter::repeat_n(y, s))
                    .collect();
                Some(self.labelled_terms(&xl.repeat_interleave(s)?, &labels, ctx.rng)?)
            }
            None => None,
        };
        let unlabelled = match batch.unlabelled() {
            Some(xu) => Some(
                self.unlabelled_bound(&xu.repeat_interleave(s)?, ctx.rng)?
                    .mean_all()?,
            ),
            None => None,
        };
        Terms::semi_supervised(self.name(), labelled, unlabelled, 1.0, self.cfg.alpha)
    }

    /// q(y|a,x)'s logits at a = μ_a(x).
    fn classify(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.infer(x, None)?.logits)
    }

    fn neg_elbo(&self, x: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        self.unlabelled_bound(x, rng)
    }

    fn prior(&self) -> Prior {
        Prior::PerClass
    }

    fn decode_class(&self, z: &Tensor, y: &Tensor) -> Result<Tensor> {
        self.decode(z, y)
    }

    /// x encoded at a = μ_a(x), y = argmax q(y|a,x), z = μ(a,x,y), and decoded with that y.
    fn reconstruct(&self, x: &Tensor) -> Result<Tensor> {
        let inf = self.infer(x, None)?;
        let y = util::argmax_one_hot(&inf.logits)?;
        let z = self.encode_z(&inf, &y, 1)?.0;
        // The SDGM decodes the inferred a rather than p(a|z,y)'s mean: a reconstruction.
        self.decode_with(&inf.a, &z, &y)
    }

    fn style(&self, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        self.style_mean(x, y)
    }
}

//! M1+M2 of Kingma, Rezende, Mohamed and Welling (2014): M2 stacked on the latent features of
//! M1. Generative model p(x, y, z1, z2) = p(y) p(z2) p(z1|y,z2) p(x|z1) with p(y) = Cat(1/K),
//! p(z2) = N(0, I), p(z1|y,z2) = N(g(z2, y), diag s²(z2, y)) with the log-variance predicted by
//! the decoder (or a fixed σ, see below), and p(x|z1) M1's Bernoulli decoder; inference
//! q(z1|x) (M1), q(y|z1) and q(z2|z1,y) (the upper M2).
//!
//! Loss per step, every term a mean over its batch:
//!   M1:  BCE(dec(z1), x_u) + KL(q(z1|x_u) ‖ N(0,I)),        z1 ~ q(z1|x_u)
//!   M2:  w·L(f_l, y) + α·CE(q(y|f_l), y) + U(f_u)
//!        L(f, y) = −log N(f; g(z2, y), σ²I) + KL(q(z2|f,y) ‖ N(0,I)) − log p(y),  z2 ~ q(z2|f,y)
//!        U(f)    = Σ_y q(y|f)·L(f, y) − H(q(y|f))          (y enumerated over all K classes)
//! with features f = z1 **re-sampled from q(z1|x) at every step and detached** (the reference
//! code resamples them each minibatch as well): f_u is the very z1 of M1's reconstruction term
//! on the unlabelled batch, f_l a fresh sample for the labelled batch. α defaults to
//! 0.1·N/N_labelled, as for M2. w ([`M1M2Config::labelled_weight`], `train
//! --labelled-bound-weight`) defaults to 1, as in M2 and most reimplementations (a batch mean of
//! L beside a batch mean of U); the paper's J = Σ_l L(x, y) + Σ_u U(x) counts each labelled
//! example once, i.e. w = N_labelled/N_unlabelled (100/60 000 on MNIST-100), which `ssvae
//! train` uses unless told otherwise. With w = 1 the hundred labelled examples weigh as much
//! in p(z1|y,z2) as the whole unlabelled set and the class-conditional densities fit them
//! closely (MNIST, conv M1: labelled bound ~39 nats against ~45.6 for the unlabelled), and
//! q(y|z1), which follows those densities on unlabelled data, can settle on merged classes:
//! MNIST-100, the same conv M1 and seeds 0 / 1 / 2, 55 epochs: 5.26 / 12.31 / 9.65% test
//! error with w = 1, 4.55 / 4.72 / 5.84% with w = 0.0017 (RESULTS.md). α keeps the reference
//! code's ratio of cross-entropy to labelled bound (its β = 0.1·N/N_labelled), so against the
//! unlabelled term the CE weighs 600× more here than there (α = 60 on this batch mean against
//! the reference's 0.1 = w·β); with α = 0.1 the same runs ended at 5.02 / 5.21% (seeds 0 / 2),
//! no different, so the default α stays.
//!
//! Training schedule, a choice: the paper trains M1 to convergence, then M2 on the frozen
//! features. Here one loop does both in two stages driven by `ctx.progress`: while it is below
//! [`M1M2Config::m1_only_fraction`] (1/3 by default in [`super::build`]) only M1 is trained;
//! after that M1 **and** M2 are trained jointly, with detached features — M2's gradient never
//! reaches M1, so M1 optimises exactly its own VAE objective, as in the paper, and M2 always
//! sees the current q(z1|x). Why: M2 steps taken on immature features are wasted (its classifier
//! has to unlearn them), and freezing M1 after the first stage would stop its features from
//! improving in a short run. On the digits (hidden 128, z 8, 10 epochs, seeds 0/1/2) the staged
//! schedule reached 33.3 / 37.0 / 33.3% test error against 34.7 / 40.5 / 34.5% for joint
//! training from the first step (`m1_only_fraction = 0`), at a lower cost. M1's KL is warmed up
//! as in [`super::m1`] (see [`super::vae::VaeConfig::kl_warmup`]).
//!
//! A third stage, the paper's own protocol, on request ([`M1M2Config::freeze_m1_after`],
//! `train --freeze-m1-after E`, which `--resume` may add): after epoch E, M1 is frozen and only
//! the upper M2 trains, on features resampled from the frozen q(z1|x) at every step. M1's terms
//! are then not computed (they read 0 in the log) and its parameters get no gradient, so Adam
//! leaves them alone; an epoch costs the encoder's forward pass and M2, not M1's decoder and
//! backward pass (MNIST, conv M1, two threads: ~22 s an epoch against ~65 s jointly). Frozen
//! epochs train M2 whatever `m1_only_fraction` says (a resume that lengthens the run moves
//! `ctx.progress` back, which must not switch M2 off).
//! While M1 is frozen, q(z1|x) of a training image no longer changes: the features are fresh
//! draws at every step, but the encoder's mean and log-variance are computed once per image
//! and kept (`PosteriorCache`, keyed by the training-set row the loop passes in
//! [`Batch::rows_unlab`] and [`Batch::rows_lab`], forgotten when a fit starts; not with
//! augmentation, whose images differ at every step), as Kingma et al.'s code computes M1's
//! outputs once and samples from them. The encoder's output for a row does not depend on the
//! other rows of its batch (asserted in the tests below), so a kept row is bit for bit what
//! the encoder would give again: the numbers are those of the uncached run, and an epoch
//! costs M2 alone (MNIST, conv M1, M2 hidden 300, one thread: 34.2 s an epoch before, 11.8 s
//! with the cache, the same losses to the last digit).
//! With `freeze_m1_after = 0` M1 never trains: that is how a run starts from an M1 trained
//! elsewhere (`train --m1-from DIR`, [`crate::train::checkpoint::load_m1_weights`] copies the
//! VAE of a `vae`, `m1` or `m1m2` checkpoint into `m1.*`), the paper's protocol exactly: M1
//! trained on its own as long as it takes, then M2 alone on its frozen features.
//!
//! The likelihood's variance is learned per dimension ([`super::M1M2_SIGMA`] = `None`), as in
//! the reference code's Gaussian p(x|y,z): the uninformative z1 dimensions (posterior ≈ prior,
//! i.e. N(0, 1) noise) get s ≈ 1 and cost a constant, while the informative ones get a small s,
//! which makes the reconstruction term — and so the unlabelled bound's signal to q(y|z1) —
//! depend on them. Measured on MNIST-100 (seed 0, 20-epoch schedule, same binary otherwise):
//! test error at epochs 8 / 10 / 13 of 24.84 / 23.62 / 23.55% with a fixed σ = 1 against
//! 23.96 / 21.94 / 20.87% learned (RESULTS.md has the whole run). A fixed σ stays available
//! through [`M1M2Config::sigma`]; σ = 0.5 was worse than σ = 1 on the digits.
//!
//! Architecture: M1 is [`super::vae::Vae`] (MLP or conv); the upper M2 is always an MLP on the
//! z1 features (one hidden layer of `hidden` units, softplus as in the reference), with
//! q(z2|f,y)'s first layer computed as W_f·f + W_y·y like M2's.
//!
//! Inactive units of z1 (an option, [`M1M2Config::drop_inactive_z1`], `train
//! --drop-inactive-z1`): the reference keeps only the z1 dimensions whose posterior-mean
//! standard deviation exceeds 0.1. A unit whose μ(x) hardly varies is posterior collapse: its
//! resampled feature is N(0, 1) noise at training time and ≈ 0 (its mean) at test time, which
//! q(y|z1) has to learn to ignore. Without the option every unit is modelled (the learned
//! variance explains the noise at a constant cost, s ≈ 1). With it, a running activity per
//! unit, a ← m·a + (1 − m)·Var_batch(μ(x_u)) with m = [`ACTIVITY_MOMENTUM`] over the
//! unlabelled batches (a buffer, checkpointed; it follows M1 while M1 trains and measures the
//! frozen M1 after, so that an M1 loaded with `--m1-from` is measured too: every unit counts
//! as active at first, a collapsed one drops below the threshold within ~45 steps),
//! decides which units are active (a > [`ACTIVE_UNIT_THRESHOLD`] = 0.01, the same criterion as
//! `eval --active-units`), and with the mask m_z of active units:
//!   - q(y|f) and q(z2|f,y) read f ⊙ m_z (the inactive units are hidden from them);
//!   - p(z1|y,z2) keeps its density for the active units and is N(0, 1) for the inactive ones
//!     (mean and log-variance masked to 0), so the bound stays a bound on all of z1.
//!
//! Measured by `eval --active-units` on MNIST (test set): the MLP M1 after the 20-epoch
//! schedule has 22 of its 50 units active, the conv M1 after 30 epochs 25 (seed 0) and 24
//! (seed 1) of 32. With the option the MLP M1+M2 (seed 0, same 20 epochs; the mask ends on the
//! same 22 units) reached 16.78% test error against 17.04% without: no gain beyond the
//! run-to-run noise, so the option stays off by default.
//!
//! Classification uses q(y|μ(x)), the posterior mean of z1. [`Model::neg_elbo`] is the bound of
//! the whole stacked model, −log p(x) ≤ E_q(z1|x)[−log p(x|z1) + log q(z1|x) + U(z1)]
//! (one sample), since U(z1) ≥ −log p(z1) under the upper model.

use super::arch::util;
use super::vae::{Vae, VaeConfig};
use super::{Batch, Model, Prior, StepContext, Terms};
use crate::metrics::ACTIVE_UNIT_THRESHOLD;
use crate::nn::{join, Activation, Init, Layer, Linear, Module, Role};
use crate::rng::Rng;
use crate::{no_grad, Device, Error, Result, Tensor};
use std::sync::Mutex;

/// The upper M2's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct M1M2Config {
    /// Hidden width of the upper M2.
    pub hidden: usize,
    /// Latent size z2 of the upper M2.
    pub z2_dim: usize,
    /// Standard deviation of p(z1|y,z2): fixed, or `None` for a per-dimension log-variance
    /// predicted by the decoder from (z2, y) (the reference code's Gaussian likelihood).
    pub sigma: Option<f32>,
    /// Weight of the labelled cross-entropy.
    pub alpha: f32,
    /// Fraction of training (by `ctx.progress`) during which only M1 is trained.
    pub m1_only_fraction: f32,
    /// Freeze M1 after this epoch: from epoch E + 1 on only the upper M2 trains, on features
    /// resampled from the frozen q(z1|x) (see the module comment). `None`: M1 trains throughout.
    pub freeze_m1_after: Option<usize>,
    /// Model only the active units of z1 with M2 (see the module comment); off: all of z1.
    pub drop_inactive_z1: bool,
    /// Weight w of the labelled bound: the loss is mean U(f_u) + w·mean L(f_l, y) + α·CE (see
    /// the module comment). 1 weighs the labelled batch as much as the unlabelled one;
    /// N_labelled/N_unlabelled is the paper's J = Σ_l L + Σ_u U, each example once.
    pub labelled_weight: f32,
    pub activation: Activation,
}

/// Momentum of the running activity of z1's units (an average of batch variances of μ(x)):
/// about the last ten batches, so that it follows M1 as it trains (a unit's activity changes
/// over training) and forgets its start (every unit at 1) within a hundred steps.
pub const ACTIVITY_MOMENTUM: f32 = 0.9;

/// The variance of p(z1|y,z2).
enum Variance {
    Fixed(f32),
    /// The decoder's log-variance head.
    Learned(Linear),
}

/// M2 with a Gaussian likelihood over feature vectors f [n, F].
struct GaussianM2 {
    cls_h: Linear,
    cls_out: Linear,
    enc_x: Linear,
    enc_y: Linear,
    enc_mu: Linear,
    enc_lv: Linear,
    dec_h: Linear,
    dec_out: Linear,
    variance: Variance,
    classes: usize,
    activation: Activation,
    device: Device,
}

impl GaussianM2 {
    fn new(
        f_dim: usize,
        classes: usize,
        cfg: &M1M2Config,
        rng: &mut Rng,
        device: Device,
    ) -> Result<Self> {
        let (h, z, k) = (cfg.hidden, cfg.z2_dim, classes);
        let init = Init::KaimingUniform;
        let cls_h = Linear::new(f_dim, h, init, rng, device)?;
        let cls_out = Linear::new(h, k, init, rng, device)?;
        let enc_x = Linear::new(f_dim, h, init, rng, device)?;
        let mut enc_y = Linear::new(k, h, init, rng, device)?;
        enc_y.bias = None;
        Ok(GaussianM2 {
            cls_h,
            cls_out,
            enc_x,
            enc_y,
            enc_mu: Linear::new(h, z, init, rng, device)?,
            enc_lv: Linear::new(h, z, init, rng, device)?,
            dec_h: Linear::new(z + k, h, init, rng, device)?,
            dec_out: Linear::new(h, f_dim, init, rng, device)?,
            variance: match cfg.sigma {
                Some(sigma) => Variance::Fixed(sigma),
                None => Variance::Learned(Linear::new(h, f_dim, init, rng, device)?),
            },
            classes,
            activation: cfg.activation,
            device,
        })
    }

    /// What the networks read of the features: f, or f ⊙ mask (inactive units zeroed).
    fn input(f: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        match mask {
            Some(m) => f.mul(m),
            None => Ok(f.clone()),
        }
    }

    /// Logits of q(y|f).
    fn classify(&self, f: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let h = self
            .activation
            .apply(&self.cls_h.forward(&Self::input(f, mask)?)?)?;
        self.cls_out.forward(&h)
    }

    /// enc_x(f), q(z2|f,y)'s f half of its hidden layer.
    fn encode_f(&self, f: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        self.enc_x.forward(&Self::input(f, mask)?)
    }

    /// The hidden layer of p(z1|y,z2)'s networks for codes `z` [n, z2] and one-hot `y` [n, K].
    fn decoder_hidden(&self, z: &Tensor, y: &Tensor) -> Result<Tensor> {
        let zy = Tensor::concat(&[z, y], 1)?;
        self.activation.apply(&self.dec_h.forward(&zy)?)
    }

    /// The mean g(z2, y) of p(z1|y,z2), inactive units (with a mask) at their N(0, 1) mean 0.
    fn decode_mean(&self, z: &Tensor, y: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        Self::input(&self.dec_out.forward(&self.decoder_hidden(z, y)?)?, mask)
    }

    /// L(f, y) per row, for one-hot `y` and `hf` = [`Self::encode_f`] matching its rows. With
    /// a mask, the likelihood of an inactive unit is N(0, 1) (mean and log-variance masked to
    /// 0; σ² with a fixed σ).
    fn labelled_bound(
        &self,
        f: &Tensor,
        hf: &Tensor,
        y: &Tensor,
        mask: Option<&Tensor>,
        rng: &mut Rng,
    ) -> Result<Tensor> {
        let h = self.activation.apply(&hf.add(&self.enc_y.forward(y)?)?)?;
        let (mu, lv) = (self.enc_mu.forward(&h)?, self.enc_lv.forward(&h)?);
        let z = util::reparam(&mu, &lv, rng, self.device)?;
        let dh = self.decoder_hidden(&z, y)?;
        let mean = Self::input(&self.dec_out.forward(&dh)?, mask)?;
        let nll = match &self.variance {
            Variance::Learned(lv_head) => {
                let f_lv = Self::input(&lv_head.forward(&dh)?, mask)?;
                mean.gaussian_nll_logvar_rows(f, &f_lv)?
            }
            Variance::Fixed(sigma) => mean.gaussian_nll_rows(f, *sigma)?,
        };
        nll.add(&mu.kl_diag_gaussian_rows(&lv)?)?
            .add_scalar((self.classes as f32).ln())
    }

    /// U(f) per row.
    fn unlabelled_bound(&self, f: &Tensor, mask: Option<&Tensor>, rng: &mut Rng) -> Result<Tensor> {
        let k = self.classes;
        let n = f.dim("m1m2", 0)?;
        let hf = self.encode_f(f, mask)?.repeat_interleave(k)?;
        let (_, y) = util::enumerate_classes(n, k, self.device)?;
        let fr = f.repeat_interleave(k)?;
        let l = self
            .labelled_bound(&fr, &hf, &y, mask, rng)?
            .reshape([n, k])?;
        let logq = self.classify(f, mask)?.log_softmax()?;
        logq.exp()?.mul(&l.add(&logq)?)?.sum(1)
    }
}

impl Module for GaussianM2 {
    fn forward(&self, f: &Tensor) -> Result<Tensor> {
        self.classify(f, None)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, Role)) {
        self.cls_h.visit(&join(prefix, "cls_h"), f);
        self.cls_out.visit(&join(prefix, "cls_out"), f);
        self.enc_x.visit(&join(prefix, "enc_x"), f);
        self.enc_y.visit(&join(prefix, "enc_y"), f);
        self.enc_mu.visit(&join(prefix, "enc_mu"), f);
        self.enc_lv.visit(&join(prefix, "enc_lv"), f);
        self.dec_h.visit(&join(prefix, "dec_h"), f);
        self.dec_out.visit(&join(prefix, "dec_out"), f);
        if let Variance::Learned(l) = &self.variance {
            l.visit(&join(prefix, "dec_lv"), f);
        }
    }
}

/// q(z1|x)'s mean and log-variance of the training rows met while M1 is frozen, each computed
/// once (see the module comment): row r's z1 values at `r·z1..(r + 1)·z1`.
#[derive(Default)]
struct PosteriorCache {
    mu: Vec<f32>,
    lv: Vec<f32>,
    known: Vec<bool>,
}

impl PosteriorCache {
    /// q(z1|x)'s (mean, log-variance) [n, z1] for the images `x` [n, D] of training `rows`,
    /// running M1's encoder only on rows not met before.
    fn posterior(&mut self, m1: &Vae, x: &Tensor, rows: &[usize]) -> Result<(Tensor, Tensor)> {
        let z = m1.cfg.z_dim;
        if rows.len() != x.dim("m1m2 rows", 0)? {
            return Err(Error::invalid(
                "m1m2",
                format!("{} rows for {} images", rows.len(), x.dims()[0]),
            ));
        }
        let missing: Vec<usize> = (0..rows.len())
            .filter(|&i| !self.known.get(rows[i]).copied().unwrap_or(false))
            .collect();
        if !missing.is_empty() {
            let ids: Vec<u32> = missing.iter().map(|&i| i as u32).collect();
            let (mu, lv) = match missing.len() == rows.len() {
                true => m1.encode(x)?,
                false => m1.encode(&x.index_select(&ids)?)?,
            };
            let (mu, lv) = (mu.to_vec()?, lv.to_vec()?);
            let end = rows.iter().max().map_or(0, |&r| r + 1);
            if self.known.len() < end {
                self.known.resize(end, false);
                self.mu.resize(end * z, 0.0);
                self.lv.resize(end * z, 0.0);
            }
            for (j, &i) in missing.iter().enumerate() {
                let r = rows[i];
                self.mu[r * z..(r + 1) * z].copy_from_slice(&mu[j * z..(j + 1) * z]);
                self.lv[r * z..(r + 1) * z].copy_from_slice(&lv[j * z..(j + 1) * z]);
                self.known[r] = true;
            }
        }
        let gather = |v: &[f32]| -> Vec<f32> {
            rows.iter()
                .flat_map(|&r| v[r * z..(r + 1) * z].iter().copied())
                .collect()
        };
        let device = x.device();
        Ok((
            Tensor::from_vec(gather(&self.mu), [rows.len(), z], device)?,
            Tensor::from_vec(gather(&self.lv), [rows.len(), z], device)?,
        ))
    }
}

/// M1 (a VAE) with M2 on its latent features.
pub struct M1M2 {
    pub cfg: M1M2Config,
    pub m1: Vae,
    m2: GaussianM2,
    /// With [`M1M2Config::drop_inactive_z1`]: the running activity of each unit of z1, a
    /// buffer [z1] (saved in checkpoints, not trained).
    z1_activity: Option<Tensor>,
    /// The frozen M1's q(z1|x) per training row (filled only while M1 is frozen).
    posterior_cache: Mutex<PosteriorCache>,
    classes: usize,
    device: Device,
}

impl M1M2 {
    /// A freshly initialised stacked model.
    pub fn new(m1: VaeConfig, cfg: M1M2Config, rng: &mut Rng, device: Device) -> Result<Self> {
        if let Some(s) = cfg.sigma {
            if s.is_nan() || s <= 0.0 {
                return Err(Error::invalid("m1m2", "sigma must be positive"));
            }
        }
        super::check_loss_weight("--labelled-bound-weight", cfg.labelled_weight)?;
        let (z1, classes) = (m1.z_dim, m1.classes);
        let m1 = Vae::new(m1, rng, device)?;
        let m2 = GaussianM2::new(z1, classes, &cfg, rng, device)?;
        // Every unit counts as active until measured.
        let z1_activity = match cfg.drop_inactive_z1 {
            true => Some(Tensor::ones([z1], device)?),
            false => None,
        };
        Ok(M1M2 {
            cfg,
            m1,
            m2,
            z1_activity,
            posterior_cache: Mutex::default(),
            classes,
            device,
        })
    }

    /// The mask [z1] of active units: 1 where the running activity exceeds
    /// [`ACTIVE_UNIT_THRESHOLD`], else 0 (`None` without [`M1M2Config::drop_inactive_z1`]).
    fn active_mask(&self) -> Result<Option<Tensor>> {
        let Some(a) = &self.z1_activity else {
            return Ok(None);
        };
        let _g = no_grad();
        let t = Tensor::scalar(ACTIVE_UNIT_THRESHOLD as f32, self.device)?;
        // max(a, t) equals t exactly where a ≤ t.
        let inactive = a.maximum(&t)?.eq(&t)?;
        Ok(Some(inactive.neg()?.add_scalar(1.0)?))
    }

    /// Folds the batch variance of the posterior means `mu` [n, z1] into the running activity:
    /// a ← m·a + (1 − m)·Var_batch(μ), m = [`ACTIVITY_MOMENTUM`].
    fn track_activity(&self, mu: &Tensor) -> Result<()> {
        let Some(a) = &self.z1_activity else {
            return Ok(());
        };
        let _g = no_grad();
        let mu = mu.detach();
        let var = mu.sub(&mu.mean_keepdim(0)?)?.square()?.mean(0)?;
        util::update_running_mean(a, &var, ACTIVITY_MOMENTUM)?;
        Ok(())
    }

    /// Features for the upper M2: (μ(x), z1 ~ q(z1|x)), detached (no gradient reaches M1).
    /// With the training `rows` of `x` (only while M1 is frozen), q(z1|x) comes from the cache.
    fn features(
        &self,
        x: &Tensor,
        rows: Option<&[usize]>,
        rng: &mut Rng,
    ) -> Result<(Tensor, Tensor)> {
        let _g = no_grad();
        let (mu, lv) = match rows {
            Some(rows) => self
                .posterior_cache
                .lock()
                .map_err(|_| Error::invalid("m1m2", "the q(z1|x) cache was poisoned"))?
                .posterior(&self.m1, x, rows)?,
            None => self.m1.encode(x)?,
        };
        let z = util::reparam(&mu, &lv, rng, self.device)?;
        Ok((mu, z))
    }
}

impl Module for M1M2 {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.classify(x)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, Role)) {
        self.m1.visit(&join(prefix, "m1"), f);
        self.m2.visit(&join(prefix, "m2"), f);
        if let Some(a) = &self.z1_activity {
            f(&join(prefix, "z1_activity"), a, Role::buffer(Layer::Buffer));
        }
    }
}

impl Model for M1M2 {
    fn name(&self) -> &'static str {
        "m1m2"
    }

    fn loss(&self, batch: &Batch, ctx: &mut StepContext) -> Result<Terms> {
        let m1_frozen = self.cfg.freeze_m1_after.is_some_and(|e| ctx.epoch > e);
        let train_m2 = m1_frozen || ctx.progress >= self.cfg.m1_only_fraction;
        let mut parts = Vec::new();
        let mut total: Option<Tensor> = None;
        let mut add = |t: &Tensor| -> Result<()> {
            total = Some(match total.take() {
                Some(s) => s.add(t)?,
                None => t.clone(),
            });
            Ok(())
        };
        // The training rows of each batch, to look q(z1|x) up under a frozen M1.
        let (rows_u, rows_l) = match m1_frozen {
            true => (batch.rows_unlab.as_deref(), batch.rows_lab.as_deref()),
            false => (None, None),
        };
        // z1 ~ q(z1|xu), detached: from M1's own objective while it trains (on the unlabelled
        // batch, the labelled one when there is none), a draw from the frozen M1 for M2 after.
        // The units' activity follows the unlabelled batches' posterior means either way.
        let mut z1 = None;
        if let (false, Some(x)) = (m1_frozen, batch.unlabelled().or(batch.labelled())) {
            let (t, pass) = self.m1.loss_on(x, ctx.progress, ctx.rng)?;
            add(&t.loss)?;
            parts.extend(t.parts);
            self.track_activity(&pass.mu)?;
            z1 = Some(pass.z.detach());
        } else if let (true, Some(xu)) = (train_m2, batch.unlabelled()) {
            let (mu, z) = self.features(xu, rows_u, ctx.rng)?;
            self.track_activity(&mu)?;
            z1 = Some(z);
        }
        let mask = self.active_mask()?;
        let mask = mask.as_ref();
        if let (true, Some(f)) = (train_m2, z1.filter(|_| batch.unlabelled().is_some())) {
            let u = self.m2.unlabelled_bound(&f, mask, ctx.rng)?.mean_all()?;
            add(&u)?;
            parts.push(("unlabelled", u));
        }
        if let (true, Some(xl)) = (train_m2, batch.labelled()) {
            let (_, f) = self.features(xl, rows_l, ctx.rng)?;
            let y = Tensor::one_hot(&batch.y_lab, self.classes, self.device)?;
            let hf = self.m2.encode_f(&f, mask)?;
            let l = self
                .m2
                .labelled_bound(&f, &hf, &y, mask, ctx.rng)?
                .mean_all()?;
            let ce = self
                .m2
                .classify(&f, mask)?
                .cross_entropy_labels(&batch.y_lab)?
                .mean_all()?;
            add(&l
                .mul_scalar(self.cfg.labelled_weight)?
                .add(&ce.mul_scalar(self.cfg.alpha)?)?)?;
            parts.push(("labelled", l));
            parts.push(("ce", ce));
        }
        let loss = total.ok_or_else(|| Error::invalid("m1m2", "empty batch"))?;
        // The same terms in the same order every step (metrics.csv has a column per term): M2's
        // read 0 while only M1 trains, M1's (not computed) once it is frozen.
        let parts = ["rec", "kl", "unlabelled", "labelled", "ce"]
            .into_iter()
            .map(|name| {
                let t = match parts.iter().find(|(n, _)| *n == name) {
                    Some((_, t)) => t.clone(),
                    None => Tensor::scalar(0.0, self.device)?,
                };
                Ok((name, t))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Terms { loss, parts })
    }

    fn forget_rows(&self) {
        // A poisoned lock holds a cache of no use either; replace it all the same.
        match self.posterior_cache.lock() {
            Ok(mut c) => *c = PosteriorCache::default(),
            Err(p) => *p.into_inner() = PosteriorCache::default(),
        }
    }

    fn classify(&self, x: &Tensor) -> Result<Tensor> {
        let (mu, _) = self.m1.encode(x)?;
        self.m2.classify(&mu, self.active_mask()?.as_ref())
    }

    fn latent_mean(&self, x: &Tensor) -> Result<Tensor> {
        self.m1.latent_mean(x)
    }
    fn prior(&self) -> Prior {
        Prior::PerClass
    }
    /// z2 and y decoded to the mean of p(z1|y,z2), decoded by M1.
    fn decode_class(&self, z: &Tensor, y: &Tensor) -> Result<Tensor> {
        let z1 = self.m2.decode_mean(z, y, self.active_mask()?.as_ref())?;
        self.m1.decode(&z1)
    }
    /// M1's reconstruction, through the z1 that the upper M2 models.
    fn reconstruct(&self, x: &Tensor) -> Result<Tensor> {
        self.m1.reconstruct(x)
    }
    fn neg_elbo(&self, x: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        let (mu, lv) = self.m1.encode(x)?;
        let z1 = util::reparam(&mu, &lv, rng, self.device)?;
        let rec = self.m1.decode(&z1)?.bce_with_logits_rows(x)?;
        let log_q = util::log_normal_lv_rows(&z1, &mu, &lv)?;
        let u = self
            .m2
            .unlabelled_bound(&z1, self.active_mask()?.as_ref(), rng)?;
        rec.add(&log_q)?.add(&u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Arch;

    /// A tiny stacked model on 2×2 inputs with z1 = 4, modelling only active units.
    fn stacked() -> M1M2 {
        let m1 = VaeConfig {
            arch: Arch::Mlp,
            input: (1, 2, 2),
            hidden: 5,
            z_dim: 4,
            classes: 3,
            kl_warmup: 0.0,
        };
        M1M2::new(m1, small_m2(None, true), &mut Rng::new(0, 0), Device::Cpu).unwrap()
    }

    /// The upper M2 of the test models: 6 hidden units, z2 = 2.
    fn small_m2(freeze_m1_after: Option<usize>, drop_inactive_z1: bool) -> M1M2Config {
        M1M2Config {
            hidden: 6,
            z2_dim: 2,
            sigma: None,
            alpha: 1.0,
            m1_only_fraction: 0.0,
            freeze_m1_after,
            drop_inactive_z1,
            labelled_weight: 1.0,
            activation: Activation::Softplus,
        }
    }

    /// A conv M1 (8×8 inputs, frozen from the start) under a small M2, and 12 random images.
    fn frozen_conv() -> (M1M2, Tensor) {
        let m1 = VaeConfig {
            arch: Arch::Conv,
            input: (1, 8, 8),
            hidden: 16,
            z_dim: 3,
            classes: 3,
            kl_warmup: 0.0,
        };
        let mut rng = Rng::new(3, 0);
        let model = M1M2::new(m1, small_m2(Some(0), false), &mut rng, Device::Cpu).unwrap();
        let x = Tensor::rand([12, 64], rng.next_key(12 * 64), Device::Cpu).unwrap();
        (model, x)
    }

    /// The loss of a training step in epoch 1 (so with a frozen M1 from `frozen_conv`).
    fn train_step_loss(model: &M1M2, batch: &Batch, mut rng: Rng) -> Terms {
        let mut ctx = StepContext {
            epoch: 1,
            epochs: 1,
            progress: 0.5,
            rng: &mut rng,
        };
        model.loss(batch, &mut ctx).unwrap()
    }

    #[test]
    fn the_encoder_gives_a_row_the_same_bits_in_any_batch() {
        let (model, x) = frozen_conv();
        let (mu, lv) = model.m1.encode(&x).unwrap();
        let (mu, lv) = (mu.to_vec().unwrap(), lv.to_vec().unwrap());
        for ids in [vec![7u32], vec![11, 0, 5], (0..12).rev().collect()] {
            let (m, l) = model.m1.encode(&x.index_select(&ids).unwrap()).unwrap();
            let (m, l) = (m.to_vec().unwrap(), l.to_vec().unwrap());
            for (j, &i) in ids.iter().enumerate() {
                let i = i as usize;
                assert_eq!(m[j * 3..(j + 1) * 3], mu[i * 3..(i + 1) * 3], "{ids:?}");
                assert_eq!(l[j * 3..(j + 1) * 3], lv[i * 3..(i + 1) * 3], "{ids:?}");
            }
        }
    }

    #[test]
    fn a_frozen_m1s_cached_posterior_gives_the_uncached_loss_bit_for_bit() {
        let (model, x) = frozen_conv();
        // Unlabelled rows 0..8 of the training set, labelled rows 8..12; then batches that
        // mix rows already met with new ones (and repeat one), as the batchers' do.
        let steps: [(Vec<u32>, Vec<u32>); 3] = [
            ((0..8).collect(), (8..12).collect()),
            (vec![3, 9, 1, 1, 10], vec![8, 11]),
            ((0..12).rev().collect(), vec![10, 9]),
        ];
        let params = crate::nn::parameters(&model, "");
        for (step, (u, l)) in steps.iter().enumerate() {
            let loss = |rows: bool| {
                let batch = Batch {
                    x_lab: Some(x.index_select(l).unwrap()),
                    y_lab: l.iter().map(|&r| r % 3).collect(),
                    x_unlab: Some(x.index_select(u).unwrap()),
                    rows_lab: rows.then(|| l.iter().map(|&r| r as usize).collect()),
                    rows_unlab: rows.then(|| u.iter().map(|&r| r as usize).collect()),
                };
                let terms = train_step_loss(&model, &batch, Rng::new(9, step as u32));
                let store = terms.loss.backward().unwrap();
                let grads: Vec<Vec<f32>> = params
                    .iter()
                    .filter_map(|(_, p)| store.get(p))
                    .map(|g| g.to_vec().unwrap())
                    .collect();
                (terms.loss.to_scalar().unwrap(), grads)
            };
            let (plain, cached) = (loss(false), loss(true));
            assert!(plain.0.is_finite() && !plain.1.is_empty());
            assert_eq!(plain, cached, "step {step}");
        }
        assert_eq!(
            model.posterior_cache.lock().unwrap().known,
            [true; 12],
            "every row met was kept"
        );
        model.forget_rows();
        assert!(model.posterior_cache.lock().unwrap().known.is_empty());
    }

    #[test]
    fn a_frozen_m1s_units_are_measured_on_the_unlabelled_batches() {
        let (mut model, x) = frozen_conv();
        model.cfg.drop_inactive_z1 = true;
        model.z1_activity = Some(Tensor::ones([3], Device::Cpu).unwrap());
        let batch = Batch {
            x_lab: Some(x.index_select(&[0, 1]).unwrap()),
            y_lab: vec![0, 1],
            x_unlab: Some(x.clone()),
            rows_lab: Some(vec![0, 1]),
            rows_unlab: Some((0..12).collect()),
        };
        train_step_loss(&model, &batch, Rng::new(1, 1));
        let (mu, _) = model.m1.encode(&x).unwrap();
        let var = mu.sub(&mu.mean_keepdim(0).unwrap()).unwrap();
        let var = var.square().unwrap().mean(0).unwrap().to_vec().unwrap();
        let a = model.z1_activity.as_ref().unwrap().to_vec().unwrap();
        let m = ACTIVITY_MOMENTUM;
        for (got, v) in a.iter().zip(var) {
            assert!((got - (m + (1.0 - m) * v)).abs() < 1e-6, "{a:?}");
        }
    }

    #[test]
    fn the_labelled_bound_is_weighted_by_its_weight_alone() {
        let (mut model, x) = frozen_conv();
        let batch = Batch {
            x_lab: Some(x.index_select(&[0, 1, 2]).unwrap()),
            y_lab: vec![0, 1, 2],
            x_unlab: Some(x.clone()),
            rows_lab: None,
            rows_unlab: None,
        };
        let alpha = model.cfg.alpha;
        let loss_at = |w| {
            model.cfg.labelled_weight = w;
            train_step_loss(&model, &batch, Rng::new(4, 4))
        };
        crate::models::test_util::assert_labelled_weight_scales_labelled_term(loss_at, alpha);
    }

    fn set_activity(model: &M1M2, a: &[f32]) {
        let t = Tensor::from_vec(a.to_vec(), [a.len()], Device::Cpu).unwrap();
        let buffer = model.z1_activity.as_ref().unwrap();
        std::mem::swap(&mut *buffer.storage_mut(), &mut *t.storage_mut());
    }

    fn row(v: [f32; 4]) -> Tensor {
        Tensor::from_vec(v.to_vec(), [1, 4], Device::Cpu).unwrap()
    }

    #[test]
    fn the_mask_keeps_the_units_above_the_threshold() {
        let model = stacked();
        let all = model.active_mask().unwrap().unwrap().to_vec().unwrap();
        assert_eq!(all, [1.0; 4], "every unit counts as active until measured");
        set_activity(&model, &[0.5, 0.001, 0.01, 0.0101]);
        let mask = model.active_mask().unwrap().unwrap().to_vec().unwrap();
        assert_eq!(mask, [1.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn activity_is_a_running_mean_of_batch_variances() {
        let model = stacked();
        // Batch means per unit: 1, 1, 5, 0; population variances: 1, 0, 4, 0.25.
        let mu = Tensor::from_vec(
            vec![0.0, 1.0, 3.0, 0.5, 2.0, 1.0, 7.0, -0.5],
            [2, 4],
            Device::Cpu,
        )
        .unwrap();
        model.track_activity(&mu).unwrap();
        let a = model.z1_activity.as_ref().unwrap().to_vec().unwrap();
        let m = ACTIVITY_MOMENTUM;
        for (got, var) in a.iter().zip([1.0f32, 0.0, 4.0, 0.25]) {
            let want = m + (1.0 - m) * var;
            assert!((got - want).abs() < 1e-6, "{a:?}");
        }
    }

    #[test]
    fn inactive_units_are_hidden_from_q_y_and_have_a_standard_normal_likelihood() {
        let model = stacked();
        set_activity(&model, &[1.0, 0.0, 1.0, 0.0]);
        let mask = model.active_mask().unwrap().unwrap();
        let m2 = &model.m2;
        let (a, b, c) = (
            row([0.3, 0.0, -0.2, 0.0]),
            row([0.3, 1.0, -0.2, -2.0]),
            row([0.9, 0.0, -0.2, 0.0]),
        );
        let logits = |f: &Tensor| m2.classify(f, Some(&mask)).unwrap().to_vec().unwrap();
        assert_eq!(logits(&a), logits(&b), "inactive units change nothing");
        assert_ne!(logits(&a), logits(&c), "active ones do");
        // L(f, y) with the same draw of z2: moving the inactive units from 0 to (1, −2) adds
        // their standard-normal negative log density, (1² + 2²)/2 = 2.5 nats.
        let y = Tensor::one_hot(&[1], 3, Device::Cpu).unwrap();
        let bound = |f: &Tensor| {
            let hf = m2.encode_f(f, Some(&mask)).unwrap();
            let l = m2.labelled_bound(f, &hf, &y, Some(&mask), &mut Rng::new(5, 5));
            l.unwrap().to_vec().unwrap()[0]
        };
        assert!((bound(&b) - bound(&a) - 2.5).abs() < 1e-5);
        // Without the mask the same change goes through M2's own density instead.
        let plain = |f: &Tensor| {
            let hf = m2.encode_f(f, None).unwrap();
            let l = m2.labelled_bound(f, &hf, &y, None, &mut Rng::new(5, 5));
            l.unwrap().to_vec().unwrap()[0]
        };
        assert!((plain(&b) - plain(&a) - 2.5).abs() > 1e-3);
    }
}

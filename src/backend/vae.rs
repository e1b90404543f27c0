//! The fused-VAE part of the op interface: [`VaeKernels`], one forward and one backward method
//! per fused kernel (reparameterisation + KL, Gaussian KL, Gumbel-softmax, categorical KL to the
//! uniform prior, the class-marginalised M2 ELBO, SHOT-VAE mixup), and its CPU implementation,
//! which forwards to the reference kernels in `backend/cpu/{reparam,gumbel,elbo,mixup}.rs`.
//!
//! The methods mirror those CPU functions argument for argument, with `&Self` device buffers in
//! place of `&[f32]`. Small integer side inputs (labels, mixup partners) and the host-drawn
//! mixup weights λ stay host slices, as `index_select_rows`' ids do: a device uploads them
//! itself. Multi-buffer inputs travel in the small structs below, generic over the buffer
//! (`[f32]` for the CPU reference functions, a device's own buffer type for its kernels), so
//! every device names each buffer exactly as the kernel does and their argument checks
//! (`check`) are written once. The maths of every kernel is in the doc comment of its CPU twin;
//! the differentiable tensor ops on top live in `crate::vae`.

use super::cpu::{elbo, gumbel, mixup, reparam, CpuStorage};
use super::BackendStorage;
use crate::rng::RngKey;
use crate::{Error, Result};

pub use super::cpu::elbo::{ElboShape, Likelihood};
pub use super::cpu::mixup::MixupShape;

/// A buffer whose length the argument checks below can read: a host slice (the CPU reference
/// kernels work on `[f32]`) or a device buffer.
pub trait BufferLen {
    /// Length in f32 elements.
    fn buffer_len(&self) -> usize;
}

impl BufferLen for [f32] {
    fn buffer_len(&self) -> usize {
        self.len()
    }
}

/// `Ok` when a buffer called `what` has `want` elements, else a shape error for `op`.
pub(crate) fn check_len(op: &'static str, what: &str, got: usize, want: usize) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(Error::shape(
            op,
            &[got],
            &[want],
            format!("{what} has {got} elements, expected {want}"),
        ))
    }
}

/// a·b·…, or an invalid-argument error when the element count overflows `usize`.
pub(crate) fn numel(op: &'static str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::invalid(op, format!("element count of {dims:?} overflows")))
}

/// The first label ≥ `k`, as an error.
pub(crate) fn check_labels(op: &'static str, y: &[u32], k: usize) -> Result<()> {
    match y.iter().enumerate().find(|(_, &v)| v as usize >= k) {
        Some((i, &bad)) => Err(Error::invalid(
            op,
            format!("label {bad} at row {i} is not below K = {k}"),
        )),
        None => Ok(()),
    }
}

/// What q(y|x) is for each row of the ELBO.
#[derive(Debug)]
pub enum ClassQ<'a, S: ?Sized> {
    /// Classifier logits c (B×K): q_b = softmax(c_b), marginalised over all K classes.
    Logits(&'a S),
    /// Known labels y (B, host), each < K: q_b = onehot(y_b) (the labelled loss).
    Labels(&'a [u32]),
}

// Derived Clone/Copy would demand S: Clone; these types only hold references.
impl<S: ?Sized> Clone for ClassQ<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<S: ?Sized> Copy for ClassQ<'_, S> {}

/// The ELBO kernel's inputs, as host slices (`S = [f32]`, the CPU reference) or device buffers;
/// the expected lengths depend on `q` (see `backend/cpu/elbo.rs`).
#[derive(Debug)]
pub struct ElboArgs<'a, S: ?Sized> {
    /// (B·K)×D for `Logits`, B×D for `Labels`: logits (Bernoulli) or means (Gaussian).
    pub decoded: &'a S,
    /// x, B×D.
    pub targets: &'a S,
    /// KL(q(z|x, y) ‖ p(z)): B·K for `Logits`, B for `Labels`.
    pub kl: &'a S,
    /// log p(y = k), K.
    pub log_prior: &'a S,
    pub q: ClassQ<'a, S>,
}

impl<S: ?Sized> Clone for ElboArgs<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<S: ?Sized> Copy for ElboArgs<'_, S> {}

impl<'a, S: ?Sized> ElboArgs<'a, S> {
    /// The same arguments with every buffer converted by `f` (e.g. a device-generic buffer to a
    /// device's own type, failing on a device mismatch).
    pub fn try_map<T: ?Sized>(
        &self,
        f: impl Fn(&'a S) -> Result<&'a T>,
    ) -> Result<ElboArgs<'a, T>> {
        Ok(ElboArgs {
            decoded: f(self.decoded)?,
            targets: f(self.targets)?,
            kl: f(self.kl)?,
            log_prior: f(self.log_prior)?,
            q: match self.q {
                ClassQ::Logits(c) => ClassQ::Logits(f(c)?),
                ClassQ::Labels(y) => ClassQ::Labels(y),
            },
        })
    }
}

impl<S: BufferLen + ?Sized> ElboArgs<'_, S> {
    /// Checks every length against `s` (and labels < K); returns the decoder rows per batch
    /// row: K (`Logits`) or 1 (`Labels`).
    pub fn check(&self, op: &'static str, s: ElboShape) -> Result<usize> {
        let (b, k, d) = (s.batch, s.classes, s.features);
        if k == 0 || d == 0 {
            return Err(Error::invalid(
                op,
                format!("need at least one class and one feature, got K = {k}, D = {d}"),
            ));
        }
        check_len(
            op,
            "targets",
            self.targets.buffer_len(),
            numel(op, &[b, d])?,
        )?;
        check_len(op, "log_prior", self.log_prior.buffer_len(), k)?;
        let per_row = match self.q {
            ClassQ::Logits(c) => {
                check_len(op, "classifier logits", c.buffer_len(), numel(op, &[b, k])?)?;
                k
            }
            ClassQ::Labels(y) => {
                check_len(op, "labels", y.len(), b)?;
                check_labels(op, y, k)?;
                1
            }
        };
        let decoded = numel(op, &[b, per_row, d])?;
        check_len(op, "decoded", self.decoded.buffer_len(), decoded)?;
        check_len(op, "kl", self.kl.buffer_len(), b * per_row)?;
        Ok(per_row)
    }
}

/// The class information mixed by `mixup_build`.
#[derive(Debug)]
pub enum MixClass<'a, S: ?Sized> {
    /// Detached class probabilities q(y|x), B×K.
    Probs(&'a S),
    /// Labels, B (host), each < K (one-hot targets).
    Labels(&'a [u32]),
}

impl<S: ?Sized> Clone for MixClass<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<S: ?Sized> Copy for MixClass<'_, S> {}

/// What `mixup_build` mixes.
#[derive(Debug)]
pub struct MixupSrc<'a, S: ?Sized> {
    /// x, B×D.
    pub x: &'a S,
    pub class: MixClass<'a, S>,
    /// μ(x), B×Z (Z may be 0; detached).
    pub mu: &'a S,
    /// σ(x), B×Z (detached; standard deviations, not log-variances).
    pub sigma: &'a S,
}

impl<S: ?Sized> Clone for MixupSrc<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<S: ?Sized> Copy for MixupSrc<'_, S> {}

impl<'a, S: ?Sized> MixupSrc<'a, S> {
    /// The same sources with every buffer converted by `f`.
    pub fn try_map<T: ?Sized>(
        &self,
        f: impl Fn(&'a S) -> Result<&'a T>,
    ) -> Result<MixupSrc<'a, T>> {
        Ok(MixupSrc {
            x: f(self.x)?,
            class: match self.class {
                MixClass::Probs(q) => MixClass::Probs(f(q)?),
                MixClass::Labels(y) => MixClass::Labels(y),
            },
            mu: f(self.mu)?,
            sigma: f(self.sigma)?,
        })
    }
}

impl<S: BufferLen + ?Sized> MixupSrc<'_, S> {
    /// Checks every length against `s`, partners < B, λ ∈ [0, 1] and labels < K.
    pub fn check(
        &self,
        op: &'static str,
        s: MixupShape,
        partner: &[u32],
        lambda: &[f32],
    ) -> Result<()> {
        let (b, d, k, z) = (s.batch, s.features, s.classes, s.latent);
        check_len(op, "x", self.x.buffer_len(), numel(op, &[b, d])?)?;
        check_len(op, "mu", self.mu.buffer_len(), numel(op, &[b, z])?)?;
        check_len(op, "sigma", self.sigma.buffer_len(), b * z)?;
        check_len(op, "partner", partner.len(), b)?;
        check_len(op, "lambda", lambda.len(), b)?;
        if let Some((i, &p)) = partner.iter().enumerate().find(|(_, &p)| p as usize >= b) {
            return Err(Error::invalid(
                op,
                format!("partner {p} of row {i} is not below the batch size {b}"),
            ));
        }
        if let Some((i, &l)) = lambda
            .iter()
            .enumerate()
            .find(|(_, &l)| !(0.0..=1.0).contains(&l))
        {
            return Err(Error::invalid(
                op,
                format!("lambda {l} of row {i} is not in [0, 1]"),
            ));
        }
        match self.class {
            MixClass::Probs(q) => check_len(op, "q", q.buffer_len(), numel(op, &[b, k])?),
            MixClass::Labels(y) => {
                check_len(op, "labels", y.len(), b)?;
                check_labels(op, y, k)
            }
        }
    }
}

/// The mixup loss's inputs.
#[derive(Debug)]
pub struct MixupLossArgs<'a, S: ?Sized> {
    /// c̃ = classifier logits on x̃, B×K.
    pub logits: &'a S,
    /// p̃, B×K.
    pub p: &'a S,
    /// μ(x̃), B×Z.
    pub mu: &'a S,
    /// μ̃, B×Z.
    pub mu_target: &'a S,
    /// σ(x̃), B×Z.
    pub sigma: &'a S,
    /// σ̃, B×Z.
    pub sigma_target: &'a S,
    /// w, the weight of the squared-W2 term (1 for the plain loss).
    pub latent_weight: f32,
}

impl<S: ?Sized> Clone for MixupLossArgs<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<S: ?Sized> Copy for MixupLossArgs<'_, S> {}

impl<'a, S: ?Sized> MixupLossArgs<'a, S> {
    /// The same arguments with every buffer converted by `f`.
    pub fn try_map<T: ?Sized>(
        &self,
        f: impl Fn(&'a S) -> Result<&'a T>,
    ) -> Result<MixupLossArgs<'a, T>> {
        Ok(MixupLossArgs {
            logits: f(self.logits)?,
            p: f(self.p)?,
            mu: f(self.mu)?,
            mu_target: f(self.mu_target)?,
            sigma: f(self.sigma)?,
            sigma_target: f(self.sigma_target)?,
            latent_weight: self.latent_weight,
        })
    }
}

impl<S: BufferLen + ?Sized> MixupLossArgs<'_, S> {
    /// Checks every length against `s`, a class, and a finite `latent_weight`.
    pub fn check(&self, op: &'static str, s: MixupShape) -> Result<()> {
        let (b, k, z) = (s.batch, s.classes, s.latent);
        if k == 0 {
            return Err(Error::invalid(op, "a categorical needs at least one class"));
        }
        if !self.latent_weight.is_finite() {
            return Err(Error::invalid(
                op,
                format!("latent_weight must be finite, got {}", self.latent_weight),
            ));
        }
        let bk = numel(op, &[b, k])?;
        let bz = numel(op, &[b, z])?;
        check_len(op, "logits", self.logits.buffer_len(), bk)?;
        check_len(op, "p", self.p.buffer_len(), bk)?;
        check_len(op, "mu", self.mu.buffer_len(), bz)?;
        check_len(op, "mu_target", self.mu_target.buffer_len(), bz)?;
        check_len(op, "sigma", self.sigma.buffer_len(), bz)?;
        check_len(op, "sigma_target", self.sigma_target.buffer_len(), bz)
    }
}

/// Declares an output struct of buffers with a `map` that converts each of them.
macro_rules! buffers {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $f:ident),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq)]
        pub struct $name<S> {
            $($(#[$fm])* pub $f: S,)+
        }
        impl<S> $name<S> {
            /// The same buffers converted by `f` (e.g. wrapped into `Storage`).
            pub fn map<T>(self, f: impl Fn(S) -> T) -> $name<T> {
                $name { $($f: f(self.$f),)+ }
            }
        }
    };
}

buffers!(
    /// Outputs of `reparam_forward`.
    ReparamOut {
        /// z = μ + exp(½ lv) ⊙ ε, B×D.
        z,
        /// KL(N(μ, e^{lv}) ‖ N(0, I)) per row, B.
        kl,
    }
);
buffers!(
    /// Gradients of `reparam_backward` (each B×D).
    ReparamGrad { d_mu, d_logvar }
);
buffers!(
    /// Gradients of `gaussian_kl_backward` (each B×D).
    GaussianKlGrad {
        d_mu_q,
        d_logvar_q,
        d_mu_p,
        d_logvar_p,
    }
);
buffers!(
    /// Outputs of `elbo_marginal_forward`.
    ElboOut {
        /// U_b (or L_b for labels), B.
        loss,
        /// nll_bk, B·K (B for labels): saved for the backward.
        nll,
    }
);
buffers!(
    /// Outputs of `mixup_build`.
    MixupOut {
        /// x̃, B×D.
        x,
        /// p̃, B×K.
        p,
        /// μ̃, B×Z.
        mu,
        /// σ̃, B×Z.
        sigma,
    }
);
buffers!(
    /// Gradients of `mixup_loss_backward`.
    MixupLossGrad {
        /// B×K.
        d_logits,
        /// B×Z.
        d_mu,
        /// B×Z.
        d_sigma,
    }
);

/// Gradients of `elbo_marginal_backward`.
#[derive(Clone, Debug, PartialEq)]
pub struct ElboGrad<S> {
    /// Same shape as `decoded`.
    pub d_decoded: S,
    /// Same shape as `kl`.
    pub d_kl: S,
    /// dc (B×K) for `Logits`; `None` for `Labels`.
    pub d_logits: Option<S>,
}

impl<S> ElboGrad<S> {
    /// The same buffers converted by `f`.
    pub fn map<T>(self, f: impl Fn(S) -> T) -> ElboGrad<T> {
        ElboGrad {
            d_decoded: f(self.d_decoded),
            d_kl: f(self.d_kl),
            d_logits: self.d_logits.map(f),
        }
    }
}

/// The fused VAE kernels a device provides. `self` is the op's first buffer; every other buffer
/// must be on the same device. Row-major B×D / B×K layouts throughout, see the CPU twins.
pub trait VaeKernels: BackendStorage {
    /// z = μ + exp(½ lv) ⊙ ε (ε = normal draw at `key`, element b·D + d) and per-row
    /// KL(N(μ, e^{lv}) ‖ N(0, I)); `self` = μ. See [`reparam::reparam_forward`].
    fn reparam_forward(
        &self,
        logvar: &Self,
        rows: usize,
        cols: usize,
        key: RngKey,
    ) -> Result<ReparamOut<Self>>;

    /// dμ, dlv given dz (B×D) and dkl (B), either absent meaning zero; ε recomputed from `key`.
    /// See [`reparam::reparam_backward`].
    #[allow(clippy::too_many_arguments)]
    fn reparam_backward(
        &self,
        logvar: &Self,
        dz: Option<&Self>,
        dkl: Option<&Self>,
        rows: usize,
        cols: usize,
        key: RngKey,
    ) -> Result<ReparamGrad<Self>>;

    /// Per-row KL(N(μq, e^{lvq}) ‖ N(μp, e^{lvp})); `self` = μq.
    /// See [`reparam::gaussian_kl_forward`].
    fn gaussian_kl_forward(
        &self,
        logvar_q: &Self,
        mu_p: &Self,
        logvar_p: &Self,
        rows: usize,
        cols: usize,
    ) -> Result<Self>;

    /// Gradients of the Gaussian KL w.r.t. its four inputs given dkl (B).
    #[allow(clippy::too_many_arguments)]
    fn gaussian_kl_backward(
        &self,
        logvar_q: &Self,
        mu_p: &Self,
        logvar_p: &Self,
        dkl: &Self,
        rows: usize,
        cols: usize,
    ) -> Result<GaussianKlGrad<Self>>;

    /// A Gumbel-softmax sample of logits `self` (B×K) at temperature `tau`, noise at `key`;
    /// `hard` returns the one-hot of the argmax. See [`gumbel::gumbel_softmax_forward`].
    fn gumbel_softmax_forward(
        &self,
        rows: usize,
        cols: usize,
        tau: f32,
        hard: bool,
        key: RngKey,
    ) -> Result<Self>;

    /// dℓ given dy, through the soft sample (also the straight-through gradient of `hard`).
    fn gumbel_softmax_backward(
        &self,
        dy: &Self,
        rows: usize,
        cols: usize,
        tau: f32,
        key: RngKey,
    ) -> Result<Self>;

    /// KL(softmax(ℓ_b) ‖ Uniform(K)) per row of logits `self` (B×K).
    fn categorical_kl_uniform_forward(&self, rows: usize, cols: usize) -> Result<Self>;

    /// dℓ of the categorical KL given dkl (B).
    fn categorical_kl_uniform_backward(&self, dkl: &Self, rows: usize, cols: usize)
        -> Result<Self>;

    /// The per-row negative ELBO (marginal U_b or labelled L_b) and the saved nll.
    /// See [`elbo::elbo_marginal_forward`].
    fn elbo_marginal_forward(
        likelihood: Likelihood,
        s: ElboShape,
        inp: &ElboArgs<'_, Self>,
    ) -> Result<ElboOut<Self>>;

    /// Gradients of the ELBO given the saved `nll` and the upstream `grad` (B).
    /// See [`elbo::elbo_marginal_backward`].
    fn elbo_marginal_backward(
        likelihood: Likelihood,
        s: ElboShape,
        inp: &ElboArgs<'_, Self>,
        nll: &Self,
        grad: &Self,
    ) -> Result<ElboGrad<Self>>;

    /// x̃, p̃, μ̃, σ̃ for partners `partner` and weights `lambda` (host slices, B each).
    /// See [`mixup::mixup_build`].
    fn mixup_build(
        s: MixupShape,
        src: &MixupSrc<'_, Self>,
        partner: &[u32],
        lambda: &[f32],
    ) -> Result<MixupOut<Self>>;

    /// Per-row J_b = CE(softmax(c̃_b), p̃_b) + w(‖μ − μ̃‖² + ‖σ − σ̃‖²).
    /// See [`mixup::mixup_loss_forward`].
    fn mixup_loss_forward(s: MixupShape, inp: &MixupLossArgs<'_, Self>) -> Result<Self>;

    /// dc̃, dμ, dσ of the mixup loss given the upstream `grad` (B).
    fn mixup_loss_backward(
        s: MixupShape,
        inp: &MixupLossArgs<'_, Self>,
        grad: &Self,
    ) -> Result<MixupLossGrad<Self>>;
}

/// A CPU buffer's host slice (for `try_map` into the reference kernels' arguments).
fn host(s: &CpuStorage) -> Result<&[f32]> {
    Ok(&s.0)
}

impl VaeKernels for CpuStorage {
    fn reparam_forward(
        &self,
        logvar: &Self,
        rows: usize,
        cols: usize,
        key: RngKey,
    ) -> Result<ReparamOut<Self>> {
        let r = reparam::reparam_forward(&self.0, &logvar.0, rows, cols, key)?;
        Ok(ReparamOut {
            z: CpuStorage(r.z),
            kl: CpuStorage(r.kl),
        })
    }

    fn reparam_backward(
        &self,
        logvar: &Self,
        dz: Option<&Self>,
        dkl: Option<&Self>,
        rows: usize,
        cols: usize,
        key: RngKey,
    ) -> Result<ReparamGrad<Self>> {
        let g = reparam::reparam_backward(
            &self.0,
            &logvar.0,
            dz.map(|d| d.0.as_slice()),
            dkl.map(|d| d.0.as_slice()),
            rows,
            cols,
            key,
        )?;
        Ok(ReparamGrad {
            d_mu: CpuStorage(g.d_mu),
            d_logvar: CpuStorage(g.d_logvar),
        })
    }

    fn gaussian_kl_forward(
        &self,
        logvar_q: &Self,
        mu_p: &Self,
        logvar_p: &Self,
        rows: usize,
        cols: usize,
    ) -> Result<Self> {
        Ok(CpuStorage(reparam::gaussian_kl_forward(
            &self.0,
            &logvar_q.0,
            &mu_p.0,
            &logvar_p.0,
            rows,
            cols,
        )?))
    }

    fn gaussian_kl_backward(
        &self,
        logvar_q: &Self,
        mu_p: &Self,
        logvar_p: &Self,
        dkl: &Self,
        rows: usize,
        cols: usize,
    ) -> Result<GaussianKlGrad<Self>> {
        let g = reparam::gaussian_kl_backward(
            &self.0,
            &logvar_q.0,
            &mu_p.0,
            &logvar_p.0,
            &dkl.0,
            rows,
            cols,
        )?;
        Ok(GaussianKlGrad {
            d_mu_q: g.d_mu_q,
            d_logvar_q: g.d_logvar_q,
            d_mu_p: g.d_mu_p,
            d_logvar_p: g.d_logvar_p,
        }
        .map(CpuStorage))
    }

    fn gumbel_softmax_forward(
        &self,
        rows: usize,
        cols: usize,
        tau: f32,
        hard: bool,
        key: RngKey,
    ) -> Result<Self> {
        Ok(CpuStorage(gumbel::gumbel_softmax_forward(
            &self.0, rows, cols, tau, hard, key,
        )?))
    }

    fn gumbel_softmax_backward(
        &self,
        dy: &Self,
        rows: usize,
        cols: usize,
        tau: f32,
        key: RngKey,
    ) -> Result<Self> {
        Ok(CpuStorage(gumbel::gumbel_softmax_backward(
            &self.0, &dy.0, rows, cols, tau, key,
        )?))
    }

    fn categorical_kl_uniform_forward(&self, rows: usize, cols: usize) -> Result<Self> {
        Ok(CpuStorage(gumbel::categorical_kl_uniform_forward(
            &self.0, rows, cols,
        )?))
    }

    fn categorical_kl_uniform_backward(
        &self,
        dkl: &Self,
        rows: usize,
        cols: usize,
    ) -> Result<Self> {
        Ok(CpuStorage(gumbel::categorical_kl_uniform_backward(
            &self.0, &dkl.0, rows, cols,
        )?))
    }

    fn elbo_marginal_forward(
        likelihood: Likelihood,
        s: ElboShape,
        inp: &ElboArgs<'_, Self>,
    ) -> Result<ElboOut<Self>> {
        let f = elbo::elbo_marginal_forward(likelihood, s, &inp.try_map(host)?)?;
        Ok(ElboOut {
            loss: f.loss,
            nll: f.nll,
        }
        .map(CpuStorage))
    }

    fn elbo_marginal_backward(
        likelihood: Likelihood,
        s: ElboShape,
        inp: &ElboArgs<'_, Self>,
        nll: &Self,
        grad: &Self,
    ) -> Result<ElboGrad<Self>> {
        let g = elbo::elbo_marginal_backward(likelihood, s, &inp.try_map(host)?, &nll.0, &grad.0)?;
        Ok(ElboGrad {
            d_decoded: g.d_decoded,
            d_kl: g.d_kl,
            d_logits: g.d_logits,
        }
        .map(CpuStorage))
    }

    fn mixup_build(
        s: MixupShape,
        src: &MixupSrc<'_, Self>,
        partner: &[u32],
        lambda: &[f32],
    ) -> Result<MixupOut<Self>> {
        let t = mixup::mixup_build(s, &src.try_map(host)?, partner, lambda)?;
        Ok(MixupOut {
            x: t.x,
            p: t.p,
            mu: t.mu,
            sigma: t.sigma,
        }
        .map(CpuStorage))
    }

    fn mixup_loss_forward(s: MixupShape, inp: &MixupLossArgs<'_, Self>) -> Result<Self> {
        Ok(CpuStorage(mixup::mixup_loss_forward(
            s,
            &inp.try_map(host)?,
        )?))
    }

    fn mixup_loss_backward(
        s: MixupShape,
        inp: &MixupLossArgs<'_, Self>,
        grad: &Self,
    ) -> Result<MixupLossGrad<Self>> {
        let g = mixup::mixup_loss_backward(s, &inp.try_map(host)?, &grad.0)?;
        Ok(MixupLossGrad {
            d_logits: g.d_logits,
            d_mu: g.d_mu,
            d_sigma: g.d_sigma,
        }
        .map(CpuStorage))
    }
}

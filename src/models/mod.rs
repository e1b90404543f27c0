//! Models: plain structs of modules with a `loss(batch)` that returns the terms to log. The
//! training loop only sees the [`Model`] trait, never which model it runs.

#[macro_use]
pub mod class_style;
pub mod aae;
pub mod adgm;
pub mod arch;
pub mod classifier;
pub mod describe;
pub mod gmvae;
pub mod ladder;
pub mod m1;
pub mod m1m2;
pub mod m2;
pub mod shot;
pub mod sparse;
pub mod vae;

pub use aae::{Aae, AaeConfig, AAE_ADVERSARIAL_WEIGHT};
pub use adgm::{Adgm, AdgmConfig, Auxiliary};
pub use class_style::ClassStyleSizes;
pub use classifier::Classifier;
pub use describe::{describe, Description};
pub use gmvae::{Gmvae, GmvaeConfig};
pub use ladder::{Ladder, LadderConfig};
pub use m1::M1;
pub use m1m2::{M1M2Config, M1M2};
pub use m2::{M2Config, M2};
pub use shot::{Shot, ShotConfig};
pub use sparse::{Sparse, SparseConfig};
pub use vae::{Vae, VaeConfig};

use crate::data::{Dataset, SemiSupervised};
use crate::nn::{Activation, Module};
use crate::rng::Rng;
use crate::{Device, Error, Result, Tensor};
use std::fmt;
use std::str::FromStr;

/// The models `ssvae train --model` knows.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Vae,
    M1,
    M2,
    M1M2,
    Gmvae,
    Shot,
    Sparse,
    Aae,
    Ladder,
    Adgm,
    Sdgm,
    Classifier,
}

impl ModelKind {
    /// Every kind, in the order the help lists them.
    pub const ALL: [ModelKind; 12] = [
        ModelKind::Vae,
        ModelKind::M1,
        ModelKind::M2,
        ModelKind::M1M2,
        ModelKind::Gmvae,
        ModelKind::Shot,
        ModelKind::Sparse,
        ModelKind::Aae,
        ModelKind::Ladder,
        ModelKind::Adgm,
        ModelKind::Sdgm,
        ModelKind::Classifier,
    ];
    /// The command-line name.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Vae => "vae",
            ModelKind::M1 => "m1",
            ModelKind::M2 => "m2",
            ModelKind::M1M2 => "m1m2",
            ModelKind::Gmvae => "gmvae",
            ModelKind::Shot => "shot",
            ModelKind::Sparse => "sparse",
            ModelKind::Aae => "aae",
            ModelKind::Ladder => "ladder",
            ModelKind::Adgm => "adgm",
            ModelKind::Sdgm => "sdgm",
            ModelKind::Classifier => "classifier",
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ModelKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ModelKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = ModelKind::ALL.iter().map(|k| k.as_str()).collect();
                Error::invalid(
                    "--model",
                    format!("unknown model '{s}' (expected one of {})", names.join(", ")),
                )
            })
    }
}

/// Encoder/decoder family.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Mlp,
    Conv,
}

impl Arch {
    /// Both families, in the order the help lists them.
    pub const ALL: [Arch; 2] = [Arch::Mlp, Arch::Conv];
    /// The command-line name.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Mlp => "mlp",
            Arch::Conv => "conv",
        }
    }
}

impl FromStr for Arch {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mlp" => Ok(Arch::Mlp),
            "conv" => Ok(Arch::Conv),
            _ => Err(Error::invalid(
                "--arch",
                format!("unknown architecture '{s}' (expected mlp or conv)"),
            )),
        }
    }
}

/// Everything needed to rebuild a model (what a checkpoint's config records).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelSpec {
    pub kind: ModelKind,
    pub arch: Arch,
    /// Input (channels, height, width); D = c·h·w.
    pub input: (usize, usize, usize),
    pub classes: usize,
    pub hidden: usize,
    pub z_dim: usize,
    /// Labelled cross-entropy weight; None = the model's default (0.1·N/N_labelled for M2,
    /// adgm and sdgm;
    /// the value used is [`ModelSpec::effective_alpha`], which checkpoints record).
    pub alpha: Option<f32>,
    pub n_train: usize,
    pub n_labelled: usize,
    /// Use the fused VAE kernels where the model has them.
    pub fused: bool,
    /// m1m2 only: freeze M1 after this epoch and train the upper M2 alone from then on
    /// ([`M1M2Config::freeze_m1_after`]); `None` trains M1 throughout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze_m1_after: Option<usize>,
    /// shot only: distribution alignment of the interpolation targets ([`ShotConfig::align`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub align: bool,
    /// m1m2 only: M2 models only the active units of z1
    /// ([`M1M2Config::drop_inactive_z1`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drop_inactive_z1: bool,
    /// m2 and m1m2: weight of the labelled bound against the unlabelled one
    /// ([`M1M2Config::labelled_weight`], [`M2Config::labelled_weight`]); `None` = 1, the
    /// weighting of checkpoints written before the option existed (`ssvae train` sets
    /// N_labelled/N_unlabelled for m1m2 unless told).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labelled_bound_weight: Option<f32>,
    /// adgm and sdgm: draws of a ~ q(a|x) per training example ([`AdgmConfig::a_samples`]);
    /// `None` = 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a_samples: Option<usize>,
}

/// The hidden width of the MLP layers when none is chosen (`ssvae train --hidden`).
pub const DEFAULT_HIDDEN: usize = 500;

impl ModelSpec {
    /// A spec of `kind` on `arch` for the training set `train` split as `split`, with the
    /// defaults of `ssvae train`: [`DEFAULT_HIDDEN`] hidden units, the latent size
    /// [`arch::default_z_dim`], `alpha` and the labelled-bound weight the model's own (for
    /// m1m2 the paper's N_labelled/N_unlabelled), the fused kernels, no model options. Change
    /// what you need with struct-update syntax, `ModelSpec { hidden: 64, ..ModelSpec::new(…) }`.
    pub fn new(kind: ModelKind, arch: Arch, train: &Dataset, split: &SemiSupervised) -> Self {
        ModelSpec {
            kind,
            arch,
            input: (train.channels, train.height, train.width),
            classes: train.classes,
            hidden: DEFAULT_HIDDEN,
            z_dim: arch::default_z_dim(arch),
            alpha: None,
            n_train: train.n,
            n_labelled: split.labelled.len(),
            fused: true,
            freeze_m1_after: None,
            align: false,
            drop_inactive_z1: false,
            // Written into the checkpoint, so that a resumed run keeps it (a spec without one
            // means 1, the weighting before the option existed).
            labelled_bound_weight: (kind == ModelKind::M1M2)
                .then(|| split.labelled.len() as f32 / split.unlabelled.len().max(1) as f32),
            a_samples: None,
        }
    }

    /// The weight of the labelled cross-entropy the model trains with: `alpha` when given, else
    /// the model's default (0.1·N/N_labelled for m2, m1m2, gmvae, sparse, aae, ladder, adgm
    /// and sdgm, 1 for m1 and shot); `None` for the models without that term (vae, classifier,
    /// and gmvae, sparse, aae and ladder without labels).
    pub fn effective_alpha(&self) -> Option<f32> {
        let given_or = |default: f32| Some(self.alpha.unwrap_or(default));
        let per_label = 0.1 * self.n_train as f32 / self.n_labelled.max(1) as f32;
        match self.kind {
            ModelKind::Vae | ModelKind::Classifier => None,
            ModelKind::Gmvae | ModelKind::Sparse | ModelKind::Aae | ModelKind::Ladder
                if self.n_labelled == 0 =>
            {
                None
            }
            ModelKind::M1 => given_or(1.0),
            ModelKind::Shot => {
                given_or(ShotConfig::default_for(self.arch, self.input, self.classes, 0, 0).alpha)
            }
            ModelKind::M2
            | ModelKind::M1M2
            | ModelKind::Gmvae
            | ModelKind::Sparse
            | ModelKind::Aae
            | ModelKind::Ladder
            | ModelKind::Adgm
            | ModelKind::Sdgm => given_or(per_label),
        }
    }

    /// Freeze M1 after `epoch` in a run that has trained `done` epochs (a resume): refused for
    /// models other than m1m2 and when it would change an epoch already trained, i.e. unless
    /// both the old freezing epoch (none: never) and the new one are at least `done`.
    pub fn freeze_m1_from(&mut self, epoch: usize, done: usize) -> Result<()> {
        let mut new = self.clone();
        new.freeze_m1_after = Some(epoch);
        new.check_model_options()?;
        let earliest = self.freeze_m1_after.map_or(epoch, |old| old.min(epoch));
        if earliest < done {
            return Err(Error::invalid(
                "--freeze-m1-after",
                format!(
                    "the run has trained {done} epochs{}, so M1 can only be frozen after epoch {done} or later",
                    self.freeze_m1_after
                        .map_or(String::new(), |old| format!(" (M1 frozen after epoch {old})"))
                ),
            ));
        }
        *self = new;
        Ok(())
    }

    /// Refuses an option set for a model it does not apply to (`--freeze-m1-after` and
    /// `--drop-inactive-z1` are m1m2's, `--align` shot's, `--labelled-bound-weight` m2's and
    /// m1m2's, `--a-samples` adgm's and sdgm's), naming the flag.
    fn check_model_options(&self) -> Result<()> {
        use ModelKind::{Adgm, Sdgm, Shot, M1M2, M2};
        for (set, flag, kinds) in [
            (
                self.freeze_m1_after.is_some(),
                "--freeze-m1-after",
                &[M1M2][..],
            ),
            (self.align, "--align", &[Shot]),
            (self.drop_inactive_z1, "--drop-inactive-z1", &[M1M2]),
            (
                self.labelled_bound_weight.is_some(),
                "--labelled-bound-weight",
                &[M2, M1M2],
            ),
            (self.a_samples.is_some(), "--a-samples", &[Adgm, Sdgm]),
        ] {
            if set && !kinds.contains(&self.kind) {
                let names: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
                return Err(Error::invalid(
                    flag,
                    format!(
                        "applies to {} only, not to {}",
                        names.join(" and "),
                        self.kind
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Refuses a loss weight that is negative or not finite (a negative weight trains the model
/// to get worse at that term; NaN or infinity makes the loss non-finite at the first step):
/// `--alpha` (the labelled cross-entropy's weight) and the labelled-bound weight
/// ([`M2Config::labelled_weight`], [`M1M2Config::labelled_weight`]); `flag` names it.
pub fn check_loss_weight(flag: &'static str, w: f32) -> Result<()> {
    if w.is_finite() && w >= 0.0 {
        return Ok(());
    }
    Err(Error::invalid(
        flag,
        format!("must be a finite number ≥ 0, not {w}"),
    ))
}

/// The KL warm-up of M1's VAE in m1 and m1m2, as a fraction of training (see [`VaeConfig`]):
/// their classifiers need informative features, and a VAE left at β = 1 from the first step
/// can sit at the collapsed optimum (KL ≈ 0) for a long time on low-information data (the
/// 8×8 digits). The plain `vae` trains the true ELBO from the first step.
pub const M1_KL_WARMUP: f32 = 0.5;

/// The KL warm-up of gmvae as a fraction of training (see [`GmvaeConfig`]); none, as in
/// jariasf/GMVAE.
pub const GMVAE_KL_WARMUP: f32 = 0.0;

/// Standard deviation of M1+M2's Gaussian p(z1|y,z2): `None` = a per-dimension variance
/// predicted by its decoder (see [`m1m2`]).
pub const M1M2_SIGMA: Option<f32> = None;

/// The fraction of training during which M1+M2 trains M1 alone (see [`m1m2`]).
pub const M1M2_M1_ONLY: f32 = 1.0 / 3.0;

/// The nonlinearity of M2's MLP layers (its conv layers are ReLU, as every trunk's).
pub const M2_ACTIVATION: Activation = Activation::Relu;

/// The nonlinearity of M1+M2's upper M2 (softplus, as in the reference code); its M1 is a
/// [`vae`] of ReLU layers.
pub const M1M2_ACTIVATION: Activation = Activation::Softplus;

/// Build a freshly initialised model from its spec, for every (kind, arch).
///
/// - `hidden` sizes the MLP layers; the conv trunk and decoder always use the benchmark width
///   [`arch::CONV_HIDDEN`] = 256 (`hidden` then sizes only the MLP parts: M1's classifier,
///   M1+M2's upper M2). `z_dim` is used as given (the benchmark conv setting is
///   [`arch::default_z_dim`]`(Conv)` = 32; a command line should default to it).
/// - The conv architecture needs height and width that are multiples of 4 (MNIST, CIFAR-10 and
///   the 8×8 digits all qualify); other inputs are refused with an error.
/// - `alpha` (None = the model's default): the labelled cross-entropy weight of m2, m1m2,
///   gmvae, sparse, aae, ladder, adgm and sdgm (default 0.1·N/N_labelled), of shot's labelled mixup
///   cross-entropy (default 1), and
///   of m1's classifier (default 1; under Adam it hardly matters, the classifier being trained
///   on detached features). vae and classifier ignore it.
/// - gmvae is unsupervised when `n_labelled` is 0 and adds the labelled cross-entropy otherwise.
/// - `fused` selects the fused ELBO ops of m2, adgm and sdgm; the other models ignore it.
/// - adgm and sdgm use an auxiliary latent a of size `z_dim`.
///
/// The weights are counted against this machine's memory as they are created (with their
/// gradients and Adam's moments; see [`crate::memory`]): a model too large to train is an
/// [`Error::TooLarge`] naming its kind, `hidden` and `z_dim`, before the memory is allocated.
/// A negative or non-finite `alpha` is refused here, a labelled-bound weight by the models
/// that take one.
pub fn build(spec: &ModelSpec, rng: &mut Rng, device: Device) -> Result<Box<dyn Model>> {
    if let Some(a) = spec.alpha {
        check_loss_weight("--alpha", a)?;
    }
    crate::memory::with_model_ledger(
        || {
            format!(
                "model {} (--hidden {}, --z-dim {}, input {:?})",
                spec.kind, spec.hidden, spec.z_dim, spec.input
            )
        },
        || construct(spec, rng, device),
    )
}

/// The model of `spec`, freshly initialised (see [`build`]).
fn construct(spec: &ModelSpec, rng: &mut Rng, device: Device) -> Result<Box<dyn Model>> {
    let (c, h, w) = spec.input;
    let x_dim = c * h * w;
    if x_dim == 0 || spec.classes == 0 || spec.hidden == 0 || spec.z_dim == 0 {
        return Err(Error::invalid(
            "model spec",
            format!(
                "input {:?}, classes {}, hidden {} and z_dim {} must all be positive",
                spec.input, spec.classes, spec.hidden, spec.z_dim
            ),
        ));
    }
    if spec.arch == Arch::Conv {
        arch::conv_feature_map(spec.input)?;
    }
    spec.check_model_options()?;
    let width = arch::trunk_width(spec.arch, spec.hidden);
    // vae, classifier and a gmvae without labels have no labelled cross-entropy to weigh.
    let alpha = spec.effective_alpha().unwrap_or(0.0);
    let vae = VaeConfig {
        arch: spec.arch,
        input: spec.input,
        hidden: width,
        z_dim: spec.z_dim,
        classes: spec.classes,
        kl_warmup: M1_KL_WARMUP,
    };
    let class_style = ClassStyleSizes {
        arch: spec.arch,
        input: spec.input,
        classes: spec.classes,
        hidden: width,
        z_dim: spec.z_dim,
    };
    Ok(match (spec.kind, spec.arch) {
        (ModelKind::Vae, _) => Box::new(Vae::new(
            VaeConfig {
                kl_warmup: 0.0,
                ..vae
            },
            rng,
            device,
        )?),
        (ModelKind::M1, _) => Box::new(M1::new(vae, spec.hidden, alpha, rng, device)?),
        (ModelKind::M2, arch) => {
            let cfg = M2Config {
                x_dim,
                classes: spec.classes,
                hidden: width,
                z_dim: spec.z_dim,
                alpha,
                labelled_weight: spec.labelled_bound_weight.unwrap_or(1.0),
                activation: M2_ACTIVATION,
                fused: spec.fused,
            };
            match arch {
                Arch::Mlp => Box::new(M2::new(cfg, rng, device)?),
                Arch::Conv => Box::new(M2::new_conv(cfg, spec.input, rng, device)?),
            }
        }
        (ModelKind::M1M2, _) => Box::new(M1M2::new(
            vae,
            M1M2Config {
                hidden: spec.hidden,
                z2_dim: spec.z_dim,
                sigma: M1M2_SIGMA,
                alpha,
                m1_only_fraction: M1M2_M1_ONLY,
                freeze_m1_after: spec.freeze_m1_after,
                drop_inactive_z1: spec.drop_inactive_z1,
                labelled_weight: spec.labelled_bound_weight.unwrap_or(1.0),
                activation: M1M2_ACTIVATION,
            },
            rng,
            device,
        )?),
        (ModelKind::Gmvae, arch) => Box::new(Gmvae::new(
            GmvaeConfig {
                arch,
                input: spec.input,
                classes: spec.classes,
                hidden: width,
                z_dim: spec.z_dim,
                supervised: spec.n_labelled > 0,
                alpha,
                tau_init: 1.0,
                tau_rate: 0.013_862_944,
                tau_min: 0.5,
                kl_warmup: GMVAE_KL_WARMUP,
            },
            rng,
            device,
        )?),
        (ModelKind::Shot, arch) => {
            let mut cfg =
                ShotConfig::default_for(arch, spec.input, spec.classes, width, spec.z_dim);
            cfg.alpha = alpha;
            cfg.align = spec.align;
            Box::new(Shot::new(cfg, rng, device)?)
        }
        (ModelKind::Sparse, _) => Box::new(Sparse::new(
            SparseConfig {
                sizes: class_style,
                alpha,
            },
            rng,
            device,
        )?),
        (ModelKind::Aae, _) => Box::new(Aae::new(
            AaeConfig {
                sizes: class_style,
                alpha,
                adversarial_weight: AAE_ADVERSARIAL_WEIGHT,
            },
            rng,
            device,
        )?),
        (ModelKind::Ladder, arch) => Box::new(Ladder::new(
            LadderConfig {
                arch,
                input: spec.input,
                classes: spec.classes,
                hidden: width,
                z_dim: spec.z_dim,
                alpha,
            },
            rng,
            device,
        )?),
        (ModelKind::Adgm | ModelKind::Sdgm, arch) => Box::new(Adgm::new(
            AdgmConfig {
                variant: match spec.kind {
                    ModelKind::Adgm => Auxiliary::Adgm,
                    _ => Auxiliary::Sdgm,
                },
                arch,
                input: spec.input,
                classes: spec.classes,
                hidden: width,
                z_dim: spec.z_dim,
                a_dim: spec.z_dim,
                a_samples: spec.a_samples.unwrap_or(1),
                alpha,
                fused: spec.fused,
            },
            rng,
            device,
        )?),
        (ModelKind::Classifier, arch) => Box::new(Classifier::new(
            arch,
            spec.input,
            width,
            spec.classes,
            rng,
            device,
        )?),
    })
}

/// One training step's data: a labelled batch and an unlabelled batch (either may be empty).
pub struct Batch {
    /// Labelled inputs [b_l, D].
    pub x_lab: Option<Tensor>,
    /// Their labels.
    pub y_lab: Vec<u32>,
    /// Unlabelled inputs [b_u, D].
    pub x_unlab: Option<Tensor>,
    /// The training-set rows whose images `x_lab` holds, when it holds them exactly as stored
    /// (no augmentation): a key under which a model may keep per-example results that depend
    /// on the image alone (M1+M2 keeps its frozen M1's q(z1|x); see [`Model::forget_rows`]).
    /// `None`: nothing to key on.
    pub rows_lab: Option<Vec<usize>>,
    /// The same for `x_unlab`.
    pub rows_unlab: Option<Vec<usize>>,
}

impl Batch {
    /// The labelled inputs, when present with at least one row.
    pub fn labelled(&self) -> Option<&Tensor> {
        self.x_lab.as_ref().filter(|t| has_rows(t))
    }
    /// The unlabelled inputs, when present with at least one row.
    pub fn unlabelled(&self) -> Option<&Tensor> {
        self.x_unlab.as_ref().filter(|t| has_rows(t))
    }
    /// Both batches as one tensor, the labelled rows first, and how many of those there are:
    /// for the models that treat every row alike but for a labelled term on the first ones.
    /// Error (naming `model`): both batches empty.
    pub fn labelled_then_unlabelled(&self, model: &'static str) -> Result<(Tensor, usize)> {
        match (self.labelled(), self.unlabelled()) {
            (Some(l), Some(u)) => Ok((Tensor::concat(&[l, u], 0)?, l.dim(model, 0)?)),
            (Some(l), None) => Ok((l.clone(), l.dim(model, 0)?)),
            (None, Some(u)) => Ok((u.clone(), 0)),
            (None, None) => Err(Error::invalid(model, "empty batch")),
        }
    }
}

fn has_rows(t: &Tensor) -> bool {
    t.dims().first().is_some_and(|&n| n > 0)
}

/// A scalar loss to minimise and named values to report (already reduced to numbers). A model
/// reports the same names in the same order at every step: they are the columns of metrics.csv.
pub struct Terms {
    pub loss: Tensor,
    pub parts: Vec<(&'static str, Tensor)>,
}

impl Terms {
    /// The semi-supervised objective of m2 and the auxiliary models (adgm, sdgm):
    /// J = w·mean_lab L + α·mean_lab CE + mean_unlab U, from `labelled` = (mean L, mean CE) of
    /// the labelled batch and `unlabelled` = mean U of the unlabelled one, each when the batch
    /// has it. Reported as "labelled", "ce", "unlabelled"; `model` names an empty batch's error.
    pub fn semi_supervised(
        model: &'static str,
        labelled: Option<(Tensor, Tensor)>,
        unlabelled: Option<Tensor>,
        labelled_weight: f32,
        alpha: f32,
    ) -> Result<Terms> {
        let mut parts = Vec::new();
        let mut terms = Vec::new();
        if let Some((l, ce)) = labelled {
            terms.push(l.mul_scalar(labelled_weight)?.add(&ce.mul_scalar(alpha)?)?);
            parts.push(("labelled", l));
            parts.push(("ce", ce));
        }
        if let Some(u) = unlabelled {
            terms.push(u.clone());
            parts.push(("unlabelled", u));
        }
        let mut terms = terms.into_iter();
        let first = terms
            .next()
            .ok_or_else(|| Error::invalid(model, "empty batch"))?;
        let loss = terms.try_fold(first, |s, t| s.add(&t))?;
        Ok(Terms { loss, parts })
    }

    /// These terms plus α·mean CE(logits of the first `n_lab` rows, `labels`), reported as
    /// "ce": the labelled term of the models that bound every row alike and classify the
    /// labelled ones first ([`Batch::labelled_then_unlabelled`]: sparse, aae, ladder). No term
    /// when `n_lab` is 0.
    pub fn plus_labelled_ce(
        mut self,
        logits: &Tensor,
        n_lab: usize,
        labels: &[u32],
        alpha: f32,
    ) -> Result<Terms> {
        if n_lab > 0 {
            let ce = logits
                .narrow(0, 0, n_lab)?
                .cross_entropy_labels(labels)?
                .mean_all()?;
            self.loss = self.loss.add(&ce.mul_scalar(alpha)?)?;
            self.parts.push(("ce", ce));
        }
        Ok(self)
    }
}

/// Where a step sits in training, for schedules (temperatures, warm-ups) and random draws.
pub struct StepContext<'a> {
    pub epoch: usize,
    pub epochs: usize,
    /// Fraction of training done, in [0, 1].
    pub progress: f32,
    pub rng: &'a mut Rng,
}

/// What the training loop, evaluation and checkpoints need from a model.
pub trait Model: Module {
    /// The model's name on the command line.
    fn name(&self) -> &'static str;
    /// The training objective for one step.
    fn loss(&self, batch: &Batch, ctx: &mut StepContext) -> Result<Terms>;
    /// Class logits q(y|x) for inputs [n, D].
    fn classify(&self, x: &Tensor) -> Result<Tensor>;
    /// The negative ELBO per example (an upper bound on −log p(x)) for inputs [n, D].
    fn neg_elbo(&self, x: &Tensor, rng: &mut Rng) -> Result<Tensor>;
    /// [`Model::classify`] and [`Model::neg_elbo`] of the same inputs, for models that have
    /// both: what evaluation asks for. A model whose two share an encoder overrides it to run
    /// the encoder once.
    fn classify_and_neg_elbo(&self, x: &Tensor, rng: &mut Rng) -> Result<(Tensor, Tensor)> {
        Ok((self.classify(x)?, self.neg_elbo(x, rng)?))
    }
    /// Whether [`Model::neg_elbo`] exists (false for a plain classifier).
    fn has_elbo(&self) -> bool {
        true
    }
    /// Forget whatever the model keeps per training row ([`Batch::rows_lab`] and
    /// [`Batch::rows_unlab`] index the training set of one fit, so the training loop calls this
    /// when a fit starts). Nothing by default.
    fn forget_rows(&self) {}
    /// Whether [`Model::classify`] exists (false for a purely generative model); evaluation
    /// reports test error, clustering ACC and NMI only for models that classify.
    fn classifies(&self) -> bool {
        true
    }
    /// Log importance weights for the importance-weighted bound (Burda et al., 2016):
    /// `[n, k]` entries log p(x, h_j) − log q(h_j | x) for k independent draws h_j ~ q(·|x) of
    /// the latent variables, so that log (1/k) Σ_j exp(w_ij) ≤ log p(x_i) in expectation.
    /// Draws come from `rng`. Not every model has it (the default is an error).
    fn log_weights(&self, _x: &Tensor, _k: usize, _rng: &mut Rng) -> Result<Tensor> {
        Err(unsupported(
            self.name(),
            "importance weights (eval --iwae-k)",
        ))
    }
    /// The mean of the x-conditioned posterior, `E_q(z|x)[z]`, `[n, z_dim]`, for inputs [n, D]:
    /// z of vae and shot, M1's z1 of m1 and m1m2, and for m2, whose q(z|x, y) depends on y, the
    /// mean Σ_y q(y|x)·μ(x, y) of the mixture q(z|x). What [`crate::metrics::active_units`]
    /// measures. The default is an error.
    fn latent_mean(&self, _x: &Tensor) -> Result<Tensor> {
        Err(unsupported(
            self.name(),
            "a posterior mean of z given x alone (eval --active-units)",
        ))
    }
    /// What `ssvae sample` draws from: the default is nothing (a model without a generative
    /// side, the classifier).
    fn prior(&self) -> Prior {
        Prior::None
    }
    /// Bernoulli logits of p(x | z) [n, D] for codes `z` [n, z_dim] drawn from p(z) = N(0, I),
    /// for a model whose prior is [`Prior::Standard`]. The default is an error.
    fn decode_prior(&self, _z: &Tensor) -> Result<Tensor> {
        Err(unsupported(self.name(), "decoding prior draws z (sample)"))
    }
    /// Bernoulli logits of p(x | y, z) [n, D] for one-hot classes (or mixture components) `y`
    /// [n, K] and standard-normal draws `z` [n, z_dim], for a model whose prior is
    /// [`Prior::PerClass`]: `z` is the latent code itself where p(z | y) = N(0, I) (m2, m1m2's
    /// z2, shot), and is mapped to μ_y + σ_y·z where the prior's Gaussian depends on y (gmvae),
    /// so that a column of `ssvae sample` shares its noise. The default is an error.
    fn decode_class(&self, _z: &Tensor, _y: &Tensor) -> Result<Tensor> {
        Err(unsupported(
            self.name(),
            "class-conditional decoding (sample)",
        ))
    }
    /// Bernoulli logits of the reconstruction of inputs `x` [n, D]: x encoded to the mean of
    /// its posterior (conditioned, in models with a class variable, on the class the model
    /// names for x) and decoded (`sample --reconstruct`). The default is an error.
    fn reconstruct(&self, _x: &Tensor) -> Result<Tensor> {
        Err(unsupported(
            self.name(),
            "reconstruction (sample --reconstruct)",
        ))
    }
    /// The "style" of inputs `x` [n, D] given their one-hot classes `y` [n, K], for analogies:
    /// the mean of q(z | x, y), in the noise space of [`Model::decode_class`] (standardised by
    /// p(z | y) where that depends on y). The default is an error.
    fn style(&self, _x: &Tensor, _y: &Tensor) -> Result<Tensor> {
        Err(unsupported(
            self.name(),
            "inferring a style z from (x, y) (sample --analogy)",
        ))
    }
}

/// How a model's generative side is sampled ([`Model::prior`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prior {
    /// z ~ N(0, I), decoded by [`Model::decode_prior`]: vae and m1.
    Standard,
    /// A class or mixture component y with standard-normal noise, decoded by
    /// [`Model::decode_class`]: m2, m1m2, shot and gmvae.
    PerClass,
    /// No generative model: the classifier.
    None,
}

/// The error of a [`Model`] hook that `model` does not implement.
pub fn unsupported(model: &'static str, what: &str) -> Error {
    Error::invalid(model, format!("{what} is not supported by this model yet"))
}

/// Test helpers shared by the models' unit tests.
#[cfg(test)]
pub(crate) mod test_util {
    use super::Terms;

    /// Asserts that a loss is w·labelled + unlabelled + α·ce: `loss_at(w)` gives a training
    /// step's terms with the labelled-bound weight set to w (same batch and draws every call).
    pub fn assert_labelled_weight_scales_labelled_term(
        mut loss_at: impl FnMut(f32) -> Terms,
        alpha: f32,
    ) {
        let mut terms = |w| {
            let t = loss_at(w);
            let value = |name| {
                let part = t.parts.iter().find(|(n, _)| *n == name).unwrap();
                part.1.to_scalar().unwrap() as f64
            };
            let rest = value("unlabelled") + alpha as f64 * value("ce");
            (t.loss.to_scalar().unwrap() as f64, value("labelled"), rest)
        };
        let (full, l, rest) = terms(1.0);
        assert!((full - (l + rest)).abs() < 1e-4 * full.abs(), "w = 1");
        let (loss, l_again, rest_again) = terms(0.25);
        assert_eq!(
            (l, rest),
            (l_again, rest_again),
            "the terms do not change with w"
        );
        assert!(
            (loss - (0.25 * l + rest)).abs() < 1e-4 * loss.abs(),
            "w = 0.25"
        );
    }
}

//! What a checkpoint says about its model beyond the [`ModelSpec`] it was built from, so that
//! the files alone are enough to rebuild the network elsewhere (`scripts/torch_load.py` does it
//! in PyTorch): the ssvae version that wrote it, the likelihood of p(x|·), the hidden
//! nonlinearity, the labelled cross-entropy weight actually used (the spec's `alpha` may be
//! `None`, "the model's default") and the layer list with each layer's kind, settings and
//! tensor shapes ([`nn::layers`]).

use super::{Model, ModelKind, ModelSpec, M1M2_ACTIVATION, M2_ACTIVATION};
use crate::nn::{self, Activation, LayerEntry};
use serde::Serialize;

/// The self-description of a model (`config.json`'s `description`, and the metadata of
/// `model.safetensors`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Description {
    /// The version of the ssvae that built the model.
    pub ssvae_version: &'static str,
    /// The distribution of p(x|·) whose parameters the decoder outputs: `bernoulli` (the
    /// decoder's outputs are logits); `None` for a model with no decoder (classifier).
    pub likelihood: Option<&'static str>,
    /// The nonlinearity after every hidden layer (conv and dense) of the encoders and decoders.
    pub activation: &'static str,
    /// m1m2: the nonlinearity of the upper M2 (its M1 has [`Description::activation`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upper_activation: Option<&'static str>,
    /// The weight of the labelled cross-entropy the model trains with
    /// ([`ModelSpec::effective_alpha`]); `None` for models without that term.
    pub alpha: Option<f32>,
    /// The layers, in the order of the checkpoint's tensors.
    pub layers: Vec<LayerEntry>,
}

/// The description of `model`, built from `spec`.
pub fn describe(spec: &ModelSpec, model: &dyn Model) -> Description {
    let (activation, upper) = match spec.kind {
        ModelKind::M2 => (M2_ACTIVATION, None),
        ModelKind::M1M2 => (Activation::Relu, Some(M1M2_ACTIVATION)),
        // The trunks, decoders and heads of arch.rs and the other models are all ReLU.
        _ => (Activation::Relu, None),
    };
    Description {
        ssvae_version: env!("CARGO_PKG_VERSION"),
        // Every decoder of the zoo outputs Bernoulli logits (M1+M2's Gaussian p(z1|y,z2) is a
        // latent layer's, not the likelihood of x).
        likelihood: (spec.kind != ModelKind::Classifier).then_some("bernoulli"),
        activation: activation.name(),
        upper_activation: upper.map(|a| a.name()),
        alpha: spec.effective_alpha(),
        layers: nn::layers(model),
    }
}

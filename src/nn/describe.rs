//! What a module's tensors are, beyond their names and shapes: [`Role`], passed with every
//! tensor by [`Module::visit`] (trainable or not, and the [`Layer`] it belongs to), and
//! [`layers`], which folds the visit into the layer list a checkpoint's `config.json` records,
//! so that another framework can rebuild the network from the file alone (a transposed
//! convolution's weight has the same rank as a convolution's; only the layer can tell them
//! apart, and only it knows its stride and padding).

use super::Module;
use serde::Serialize;
use std::collections::BTreeMap;

/// The kind of layer a tensor belongs to, with the settings that its shape does not show.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Layer {
    /// y = x·Wᵀ + b, weight [out, in] (PyTorch's `nn.Linear`).
    Linear,
    /// Weight [out, in, k, k] (PyTorch's `nn.Conv2d`).
    Conv2d { stride: usize, padding: usize },
    /// Weight [in, out, k, k] (PyTorch's `nn.ConvTranspose2d`).
    ConvTranspose2d {
        stride: usize,
        padding: usize,
        output_padding: usize,
    },
    /// γ, β and running statistics of [`super::BatchNorm`].
    BatchNorm { eps: f32, momentum: f32 },
    /// A model's own running statistic, in no layer (SHOT's class marginal, M1+M2's z1
    /// activity).
    Buffer,
}

/// What [`Module::visit`] says about a tensor besides its name.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Role {
    /// A parameter the optimiser trains; false for a buffer (a running mean and the like).
    pub trainable: bool,
    /// The layer it belongs to.
    pub layer: Layer,
}

impl Role {
    /// A trainable tensor of `layer`.
    pub fn param(layer: Layer) -> Self {
        Role {
            trainable: true,
            layer,
        }
    }
    /// A buffer (not trained) of `layer`.
    pub fn buffer(layer: Layer) -> Self {
        Role {
            trainable: false,
            layer,
        }
    }
}

/// One entry of [`layers`]: in JSON `{"name": "trunk.conv1", "op": "conv2d", "stride": 2,
/// "padding": 1, "bias": [32], "weight": [32, 1, 4, 4]}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerEntry {
    /// The tensors' common prefix (the layer's name); a [`Layer::Buffer`]'s own name.
    pub name: String,
    #[serde(flatten)]
    pub layer: Layer,
    /// Each tensor's shape by the last part of its name (`weight`, `bias`, `running_mean`, …;
    /// `shape` for a buffer).
    #[serde(flatten)]
    pub tensors: BTreeMap<String, Vec<usize>>,
}

/// The layers of `m` in visiting order (the order of its tensors in a checkpoint): the tensors
/// `L.weight`, `L.bias`, … of one layer make one entry named `L`.
pub fn layers(m: &dyn Module) -> Vec<LayerEntry> {
    let mut out: Vec<LayerEntry> = Vec::new();
    m.visit("", &mut |name, t, role| {
        let (prefix, leaf) = match role.layer {
            Layer::Buffer => (name, "shape"),
            _ => name.rsplit_once('.').unwrap_or(("", name)),
        };
        let shape = t.dims().to_vec();
        match out.last_mut() {
            Some(e) if e.name == prefix && e.layer == role.layer && role.layer != Layer::Buffer => {
                e.tensors.insert(leaf.to_string(), shape);
            }
            _ => out.push(LayerEntry {
                name: prefix.to_string(),
                layer: role.layer,
                tensors: BTreeMap::from([(leaf.to_string(), shape)]),
            }),
        }
    });
    out
}

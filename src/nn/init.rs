//! Seeded weight initialisation. All draws come from the host [`Rng`], so the same seed gives the
//! same network on every device.

use crate::rng::Rng;
use crate::{memory, Device, Result, Shape, Tensor};

/// How to fill a weight tensor with `fan_in` inputs and `fan_out` outputs per unit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// U(−1/√fan_in, 1/√fan_in): PyTorch's default for Linear and Conv layers.
    KaimingUniform,
    /// N(0, 2/fan_in): He et al. for ReLU networks.
    KaimingNormal,
    /// U(−a, a) with a = √(6/(fan_in + fan_out)): Glorot and Bengio.
    XavierUniform,
    /// N(0, std²).
    Normal(f32),
    /// A constant.
    Constant(f32),
}

impl Init {
    /// A variable tensor of `shape` filled according to this rule.
    pub fn variable(
        self,
        shape: impl Into<Shape>,
        fan_in: usize,
        fan_out: usize,
        rng: &mut Rng,
        device: Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        // Refused before a byte is allocated when the weight (with its training copies, and
        // with the model's other weights when a ledger is open) exceeds the machine's memory.
        memory::claim_weight(shape.dims())?;
        let n = shape.elem_count();
        let mut v = memory::try_vec(n, || format!("a weight of shape {:?}", shape.dims()))?;
        let (fi, fo) = (fan_in.max(1) as f32, fan_out.max(1) as f32);
        match self {
            Init::KaimingUniform => {
                let a = 1.0 / fi.sqrt();
                v.extend((0..n).map(|_| (2.0 * rng.uniform() - 1.0) * a));
            }
            Init::KaimingNormal => {
                let s = (2.0 / fi).sqrt();
                v.extend((0..n).map(|_| rng.normal() * s));
            }
            Init::XavierUniform => {
                let a = (6.0 / (fi + fo)).sqrt();
                v.extend((0..n).map(|_| (2.0 * rng.uniform() - 1.0) * a));
            }
            Init::Normal(s) => v.extend((0..n).map(|_| rng.normal() * s)),
            Init::Constant(c) => v.resize(n, c),
        }
        Ok(Tensor::from_vec(v, shape, device)?.variable())
    }
}

//! Adam (Kingma and Ba, 2015) with bias correction, and AdamW's decoupled weight decay as an
//! option. One fused kernel per parameter tensor does the whole update (see `AdamStep`).

use crate::backend::AdamStep;
use crate::{no_grad, Error, GradStore, Result, Tensor};

/// Adam's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// AdamW (decay the weights directly) rather than L2 added to the gradient.
    pub decoupled: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        }
    }
}

/// Adam over a fixed list of parameters.
pub struct Adam {
    pub config: AdamConfig,
    params: Vec<Tensor>,
    /// First and second moments, one pair per parameter.
    moments: Vec<(Tensor, Tensor)>,
    /// Steps taken.
    pub t: u64,
}

impl Adam {
    /// An optimiser for `params` (zero moments).
    pub fn new(params: Vec<Tensor>, config: AdamConfig) -> Result<Self> {
        let moments = params
            .iter()
            .map(|p| {
                Ok((
                    Tensor::zeros(p.shape().clone(), p.device())?,
                    Tensor::zeros(p.shape().clone(), p.device())?,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(Adam {
            config,
            params,
            moments,
            t: 0,
        })
    }

    /// One update from `grads`; parameters without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        let _g = no_grad();
        self.t += 1;
        let c = self.config;
        let s = AdamStep {
            lr: c.lr,
            beta1: c.beta1,
            beta2: c.beta2,
            eps: c.eps,
            weight_decay: c.weight_decay,
            decoupled: c.decoupled,
            bias1: 1.0 - c.beta1.powi(self.t as i32),
            bias2: 1.0 - c.beta2.powi(self.t as i32),
        };
        for (p, (m, v)) in self.params.iter().zip(&self.moments) {
            if let Some(g) = grads.get(p) {
                p.storage_mut().adam_step(
                    &g.storage(),
                    &mut m.storage_mut(),
                    &mut v.storage_mut(),
                    &s,
                )?;
            }
        }
        Ok(())
    }

    /// The moment tensors, in parameter order (for checkpoints).
    pub fn moments(&self) -> &[(Tensor, Tensor)] {
        &self.moments
    }

    /// The parameters updated, in order.
    pub fn params(&self) -> &[Tensor] {
        &self.params
    }

    /// Restore the step count and the moments (first, second) of every parameter, in parameter
    /// order, as saved from [`Adam::moments`] and `t`: the next step is then exactly the one
    /// the saved optimiser would have taken. Values are copied into the existing buffers on
    /// the parameters' devices. Errors: a count or shape that differs from the parameters'.
    pub fn load_state(&mut self, t: u64, moments: &[(Tensor, Tensor)]) -> Result<()> {
        if moments.len() != self.params.len() {
            return Err(Error::invalid(
                "Adam::load_state",
                format!(
                    "{} moment pairs for {} parameters",
                    moments.len(),
                    self.params.len()
                ),
            ));
        }
        for (i, ((m, v), p)) in moments.iter().zip(&self.params).enumerate() {
            for t in [m, v] {
                if t.dims() != p.dims() {
                    return Err(Error::shape(
                        "Adam::load_state",
                        t.dims(),
                        p.dims(),
                        format!("moment of parameter {i} has another shape"),
                    ));
                }
            }
        }
        for ((m, v), (dm, dv)) in moments.iter().zip(&self.moments) {
            // Copy first, then lock for writing (the source may share the destination's lock).
            let (sm, sv) = (
                m.storage().to_device(dm.device())?,
                v.storage().to_device(dv.device())?,
            );
            *dm.storage_mut() = sm;
            *dv.storage_mut() = sv;
        }
        self.t = t;
        Ok(())
    }
}

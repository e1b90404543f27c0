//! Stochastic gradient descent with momentum and L2 weight decay (PyTorch's formulation):
//! g' = g + wd·p, v ← μ·v + g', p ← p − lr·v.

use crate::{no_grad, GradStore, Result, Tensor};

/// SGD over a fixed list of parameters.
pub struct Sgd {
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    params: Vec<Tensor>,
    velocity: Vec<Tensor>,
}

impl Sgd {
    /// An optimiser for `params`.
    pub fn new(params: Vec<Tensor>, lr: f32, momentum: f32, weight_decay: f32) -> Result<Self> {
        let velocity = params
            .iter()
            .map(|p| Tensor::zeros(p.shape().clone(), p.device()))
            .collect::<Result<_>>()?;
        Ok(Sgd {
            lr,
            momentum,
            weight_decay,
            params,
            velocity,
        })
    }

    /// One update from `grads`.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        let _g = no_grad();
        for (p, v) in self.params.iter().zip(&self.velocity) {
            let Some(g) = grads.get(p) else { continue };
            let g = if self.weight_decay != 0.0 {
                g.add(&p.mul_scalar(self.weight_decay)?)?
            } else {
                g.clone()
            };
            let nv = v.mul_scalar(self.momentum)?.add(&g)?;
            let np = p.sub(&nv.mul_scalar(self.lr)?)?;
            let nv_s = nv.storage().try_clone()?;
            *v.storage_mut() = nv_s;
            let np_s = np.storage().try_clone()?;
            *p.storage_mut() = np_s;
        }
        Ok(())
    }

    /// The velocity tensors, in parameter order (for checkpoints).
    pub fn velocity(&self) -> &[Tensor] {
        &self.velocity
    }
}

//! CPU Adam/AdamW update, in place:
//!   g' = g + wd·p (L2 form only), m ← β₁m + (1−β₁)g', v ← β₂v + (1−β₂)g'²,
//!   p ← p − lr·(m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε) − lr·wd·p (decoupled form only).

use crate::backend::AdamStep;
use rayon::prelude::*;

/// One Adam step over one parameter tensor.
pub fn adam_step(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: &AdamStep) {
    let f = |((p, &g), (m, v)): ((&mut f32, &f32), (&mut f32, &mut f32))| {
        let g = if s.decoupled {
            g
        } else {
            g + s.weight_decay * *p
        };
        *m = s.beta1 * *m + (1.0 - s.beta1) * g;
        *v = s.beta2 * *v + (1.0 - s.beta2) * g * g;
        let mhat = *m / s.bias1;
        let vhat = *v / s.bias2;
        let decay = if s.decoupled {
            s.lr * s.weight_decay * *p
        } else {
            0.0
        };
        *p -= s.lr * mhat / (vhat.sqrt() + s.eps) + decay;
    };
    p.par_iter_mut()
        .zip(g.par_iter())
        .zip(m.par_iter_mut().zip(v.par_iter_mut()))
        .with_min_len(4096)
        .for_each(f);
}

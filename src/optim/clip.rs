//! Global-norm gradient clipping: if ‖g‖₂ over all gradients exceeds `max_norm`, scale every
//! gradient by max_norm/‖g‖₂. Returns the norm before clipping (worth logging).

use crate::{no_grad, GradStore, Result};

/// Clip `grads` in place to a global L2 norm of at most `max_norm`.
pub fn clip_grad_norm(grads: &GradStore, max_norm: f32) -> Result<f32> {
    let _g = no_grad();
    let mut total = 0.0f64;
    for g in grads.values() {
        total += g.square()?.sum_all()?.to_scalar()? as f64;
    }
    let norm = total.sqrt() as f32;
    if norm.is_finite() && norm > max_norm && norm > 0.0 {
        let factor = max_norm / norm;
        for g in grads.values() {
            g.storage_mut().scale_in_place(factor)?;
        }
    }
    Ok(norm)
}

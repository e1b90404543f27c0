//! Reverse-mode automatic differentiation on a tape.
//!
//! Every op that reads a tensor which needs gradients records a `Node`: its inputs and a closure
//! that maps the gradient of its output to gradients of its inputs (the closure captures whatever
//! the formula needs, e.g. the input values). The nodes reachable from a loss, sorted so that each
//! comes after its inputs, form the tape; [`Tensor::backward`] walks it from the end, running each
//! closure once and summing the gradients that meet at a tensor used more than once.
//!
//! Gradient formulas are written with tensor ops, so they run on whatever device the tensors are
//! on. They run with recording switched off: no graph of the backward pass is built.

use crate::storage::Storage;
use crate::tensor::{Tensor, TensorId};
use crate::{Error, Result, Shape};
use std::cell::Cell;
use std::collections::{HashMap, HashSet};

/// Maps the output gradient to one optional gradient per input.
pub(crate) type BackwardFn = Box<dyn Fn(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync>;

/// One recorded op.
pub(crate) struct Node {
    pub name: &'static str,
    pub inputs: Vec<Tensor>,
    pub backward: BackwardFn,
}

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether ops record themselves on this thread.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Switches recording off until dropped (evaluation, optimiser steps, backward formulas).
pub struct NoGradGuard {
    prev: bool,
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.prev));
    }
}

/// Stop recording until the guard is dropped.
pub fn no_grad() -> NoGradGuard {
    let prev = GRAD_ENABLED.with(|g| g.replace(false));
    NoGradGuard { prev }
}

/// A node for an op on `inputs`, or `None` when nothing needs a gradient or recording is off.
pub(crate) fn make_node(
    name: &'static str,
    inputs: Vec<Tensor>,
    backward: impl Fn(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync + 'static,
) -> Option<Node> {
    if !is_grad_enabled() || !inputs.iter().any(Tensor::tracks_grad) {
        return None;
    }
    Some(Node {
        name,
        inputs,
        backward: Box::new(backward),
    })
}

/// A new tensor made by an op, with its node when gradients flow.
pub(crate) fn record(
    storage: Storage,
    shape: Shape,
    name: &'static str,
    inputs: Vec<Tensor>,
    backward: impl Fn(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync + 'static,
) -> Tensor {
    let node = make_node(name, inputs, backward);
    Tensor::from_storage(storage, shape, node)
}

/// Gradients of a loss with respect to the variables it depends on, by tensor id.
#[derive(Default)]
pub struct GradStore(HashMap<TensorId, Tensor>);

impl GradStore {
    /// The gradient of `t`, if it received one.
    pub fn get(&self, t: &Tensor) -> Option<&Tensor> {
        self.0.get(&t.id())
    }
    /// Take the gradient of `t` out.
    pub fn remove(&mut self, t: &Tensor) -> Option<Tensor> {
        self.0.remove(&t.id())
    }
    /// Set the gradient of `t`.
    pub fn insert(&mut self, t: &Tensor, g: Tensor) {
        self.0.insert(t.id(), g);
    }
    /// All gradients.
    pub fn values(&self) -> impl Iterator<Item = &Tensor> {
        self.0.values()
    }
    /// Number of gradients held.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The tape: tensors reachable from `root` through recorded nodes, inputs before outputs.
fn tape(root: &Tensor) -> Vec<Tensor> {
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    // Iterative post-order DFS (a deep network must not overflow the stack).
    let mut stack = vec![(root.clone(), false)];
    while let Some((t, expanded)) = stack.pop() {
        if expanded {
            order.push(t);
            continue;
        }
        if !seen.insert(t.id()) {
            continue;
        }
        stack.push((t.clone(), true));
        if let Some(node) = t.node() {
            for input in node.inputs.iter().filter(|i| i.tracks_grad()) {
                if !seen.contains(&input.id()) {
                    stack.push((input.clone(), false));
                }
            }
        }
    }
    order
}

impl Tensor {
    /// Gradients of this one-element tensor with respect to every variable it depends on.
    pub fn backward(&self) -> Result<GradStore> {
        if self.elem_count() != 1 {
            return Err(Error::shape(
                "backward",
                self.dims(),
                &[],
                "backward starts from a one-element loss",
            ));
        }
        let _guard = no_grad();
        let mut grads: HashMap<TensorId, Tensor> = HashMap::new();
        grads.insert(
            self.id(),
            Tensor::ones(self.shape().clone(), self.device())?,
        );
        for t in tape(self).iter().rev() {
            let Some(node) = t.node() else { continue };
            let Some(g) = grads.remove(&t.id()) else {
                continue;
            };
            let input_grads = (node.backward)(&g)?;
            if input_grads.len() != node.inputs.len() {
                return Err(Error::msg(format!(
                    "backward of {} returned {} gradients for {} inputs",
                    node.name,
                    input_grads.len(),
                    node.inputs.len()
                )));
            }
            for (input, ig) in node.inputs.iter().zip(input_grads) {
                let Some(ig) = ig else { continue };
                if !input.tracks_grad() {
                    continue;
                }
                if ig.dims() != input.dims() {
                    return Err(Error::shape(
                        node.name,
                        input.dims(),
                        ig.dims(),
                        "gradient shape differs from its input's (backward formula bug)",
                    ));
                }
                let acc = match grads.remove(&input.id()) {
                    Some(prev) => prev.add(&ig)?,
                    None => ig,
                };
                grads.insert(input.id(), acc);
            }
        }
        grads.retain(|id, _| *id != self.id() || self.is_variable());
        Ok(GradStore(grads))
    }
}

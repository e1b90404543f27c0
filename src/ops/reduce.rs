//! Reductions: sum, mean and max along an axis or over everything; logsumexp, softmax and
//! log-softmax along the last axis.
//!
//! Gradients: sum spreads dy back over the reduced axis; max sends it to the maxima (every tied
//! maximum receives it); softmax dx = y ⊙ (dy − Σ dy⊙y); log-softmax dx = dy − softmax·Σ dy;
//! logsumexp dx = dy·softmax(x).

use crate::autograd::record;
use crate::backend::ReduceOp;
use crate::{Error, Result, Shape, Tensor};

impl Tensor {
    fn reduce_keepdim(&self, op: ReduceOp, axis: usize, name: &'static str) -> Result<Tensor> {
        let (outer, len, inner) = self.shape().split_at_axis(name, axis)?;
        let storage = self.storage().reduce(op, outer, len, inner)?;
        let mut dims = self.dims().to_vec();
        dims[axis] = 1;
        let x = self.clone();
        let out_shape = Shape(dims);
        let saved_out = out_shape.clone();
        let y = Tensor::from_storage(storage, out_shape, None);
        let y_saved = y.clone();
        let node = crate::autograd::make_node(name, vec![self.clone()], move |g| {
            let dx = match op {
                ReduceOp::Sum => g.broadcast_as(x.shape())?,
                ReduceOp::Max => {
                    let mask = x.eq(&y_saved.reshape(saved_out.clone())?)?;
                    mask.mul(g)?
                }
            };
            Ok(vec![Some(dx)])
        });
        Ok(y.with_node(node))
    }

    /// Σ along `axis`, keeping it with length 1.
    pub fn sum_keepdim(&self, axis: usize) -> Result<Tensor> {
        self.reduce_keepdim(ReduceOp::Sum, axis, "sum")
    }
    /// Σ along `axis`, removing it.
    pub fn sum(&self, axis: usize) -> Result<Tensor> {
        let t = self.sum_keepdim(axis)?;
        t.reshape(remove_axis(self.dims(), axis))
    }
    /// Σ of every element, as a scalar.
    pub fn sum_all(&self) -> Result<Tensor> {
        self.reshape([self.elem_count()])?
            .sum_keepdim(0)?
            .reshape(Shape(vec![]))
    }
    /// Mean along `axis`, removing it.
    pub fn mean(&self, axis: usize) -> Result<Tensor> {
        let n = self.dim("mean", axis)?;
        self.sum(axis)?.mul_scalar(1.0 / n.max(1) as f32)
    }
    /// Mean along `axis`, keeping it.
    pub fn mean_keepdim(&self, axis: usize) -> Result<Tensor> {
        let n = self.dim("mean", axis)?;
        self.sum_keepdim(axis)?.mul_scalar(1.0 / n.max(1) as f32)
    }
    /// Mean of every element, as a scalar.
    pub fn mean_all(&self) -> Result<Tensor> {
        let n = self.elem_count().max(1);
        self.sum_all()?.mul_scalar(1.0 / n as f32)
    }
    /// Max along `axis`, keeping it.
    pub fn max_keepdim(&self, axis: usize) -> Result<Tensor> {
        self.reduce_keepdim(ReduceOp::Max, axis, "max")
    }
    /// Max along `axis`, removing it.
    pub fn max(&self, axis: usize) -> Result<Tensor> {
        let t = self.max_keepdim(axis)?;
        t.reshape(remove_axis(self.dims(), axis))
    }

    fn rows_cols(&self, op: &'static str) -> Result<(usize, usize)> {
        let cols = *self
            .dims()
            .last()
            .ok_or_else(|| crate::Error::shape(op, self.dims(), &[], "needs rank ≥ 1"))?;
        Ok((self.elem_count() / cols.max(1), cols))
    }

    /// Softmax along the last axis.
    pub fn softmax(&self) -> Result<Tensor> {
        let (rows, cols) = self.rows_cols("softmax")?;
        let storage = self.storage().softmax_rows(rows, cols, false)?;
        let y = Tensor::from_storage(storage, self.shape().clone(), None);
        let ys = y.clone();
        let node = crate::autograd::make_node("softmax", vec![self.clone()], move |g| {
            let last = ys.rank() - 1;
            let dot = g.mul(&ys)?.sum_keepdim(last)?;
            Ok(vec![Some(ys.mul(&g.sub(&dot)?)?)])
        });
        Ok(y.with_node(node))
    }

    /// Log-softmax along the last axis.
    pub fn log_softmax(&self) -> Result<Tensor> {
        let (rows, cols) = self.rows_cols("log_softmax")?;
        let storage = self.storage().softmax_rows(rows, cols, true)?;
        let y = Tensor::from_storage(storage, self.shape().clone(), None);
        let ys = y.clone();
        let node = crate::autograd::make_node("log_softmax", vec![self.clone()], move |g| {
            let last = ys.rank() - 1;
            let total = g.sum_keepdim(last)?;
            Ok(vec![Some(g.sub(&ys.exp()?.mul(&total)?)?)])
        });
        Ok(y.with_node(node))
    }

    /// log Σ exp along the last axis (removing it).
    pub fn logsumexp(&self) -> Result<Tensor> {
        let (rows, cols) = self.rows_cols("logsumexp")?;
        let storage = self.storage().logsumexp_rows(rows, cols)?;
        let out = Shape(remove_axis(self.dims(), self.rank() - 1));
        let x = self.clone();
        Ok(record(
            storage,
            out,
            "logsumexp",
            vec![self.clone()],
            move |g| {
                let mut keep = x.dims().to_vec();
                *keep.last_mut().unwrap_or(&mut 0) = 1;
                let g = g.reshape(keep)?;
                Ok(vec![Some(x.softmax()?.mul(&g)?)])
            },
        ))
    }

    /// Index of the maximum along the last axis, per row (host side; no gradient). A row
    /// holding NaN has no maximum: an [`Error::NonFinite`] naming the row, rather than an
    /// index that would count as a prediction.
    pub fn argmax_rows(&self) -> Result<Vec<usize>> {
        let (_, cols) = self.rows_cols("argmax_rows")?;
        let v = self.to_vec()?;
        v.chunks(cols.max(1))
            .enumerate()
            .map(|(row, r)| {
                if r.iter().any(|x| x.is_nan()) {
                    return Err(Error::NonFinite {
                        what: format!("argmax of row {row}, which holds NaN"),
                    });
                }
                Ok(r.iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| {
                        if x > bv {
                            (i, x)
                        } else {
                            (bi, bv)
                        }
                    })
                    .0)
            })
            .collect()
    }
}

pub(crate) fn remove_axis(dims: &[usize], axis: usize) -> Vec<usize> {
    let mut d = dims.to_vec();
    d.remove(axis);
    d
}

//! Shapes and broadcasting. A shape is the list of dimensions of a contiguous row-major tensor;
//! strides are implied. Broadcasting follows numpy: align on the right, a dimension of 1 stretches.

use crate::{Error, Result};

/// The dimensions of a contiguous, row-major tensor.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct Shape(pub Vec<usize>);

impl Shape {
    /// A shape from its dimensions.
    pub fn new(dims: &[usize]) -> Self {
        Shape(dims.to_vec())
    }
    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }
    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.len()
    }
    /// Number of elements (1 for a scalar of rank 0).
    pub fn elem_count(&self) -> usize {
        self.0.iter().product()
    }
    /// Dimension `axis`, or an error naming `op`.
    pub fn dim(&self, op: &'static str, axis: usize) -> Result<usize> {
        self.0.get(axis).copied().ok_or_else(|| {
            Error::invalid(
                op,
                format!("axis {axis} out of range for shape {:?}", self.0),
            )
        })
    }
    /// Row-major strides in elements.
    pub fn strides(&self) -> Vec<usize> {
        let mut s = vec![1; self.0.len()];
        for i in (0..self.0.len().saturating_sub(1)).rev() {
            s[i] = s[i + 1] * self.0[i + 1];
        }
        s
    }
    /// Split around `axis` into (outer, axis_len, inner): the view every axis-wise kernel uses.
    pub fn split_at_axis(&self, op: &'static str, axis: usize) -> Result<(usize, usize, usize)> {
        let len = self.dim(op, axis)?;
        let outer = self.0[..axis].iter().product();
        let inner = self.0[axis + 1..].iter().product();
        Ok((outer, len, inner))
    }
    /// The shape `self` and `rhs` broadcast to, or a shape error naming `op`.
    pub fn broadcast(&self, rhs: &Shape, op: &'static str) -> Result<Shape> {
        let (a, b) = (&self.0, &rhs.0);
        let rank = a.len().max(b.len());
        let mut out = vec![0; rank];
        for i in 0..rank {
            let da = if i < rank - a.len() {
                1
            } else {
                a[i - (rank - a.len())]
            };
            let db = if i < rank - b.len() {
                1
            } else {
                b[i - (rank - b.len())]
            };
            out[i] = match (da, db) {
                (x, y) if x == y => x,
                (1, y) => y,
                (x, 1) => x,
                _ => {
                    return Err(Error::shape(
                        op,
                        a,
                        b,
                        format!("dimension {i} ({da} vs {db}) cannot broadcast"),
                    ))
                }
            };
        }
        Ok(Shape(out))
    }
}

impl From<&[usize]> for Shape {
    fn from(d: &[usize]) -> Self {
        Shape(d.to_vec())
    }
}
impl From<Vec<usize>> for Shape {
    fn from(d: Vec<usize>) -> Self {
        Shape(d)
    }
}
impl<const N: usize> From<[usize; N]> for Shape {
    fn from(d: [usize; N]) -> Self {
        Shape(d.to_vec())
    }
}
impl From<&Shape> for Shape {
    fn from(s: &Shape) -> Self {
        s.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_rules() {
        let a = Shape::new(&[4, 1, 3]);
        let b = Shape::new(&[5, 1]);
        assert_eq!(a.broadcast(&b, "t").unwrap().dims(), &[4, 5, 3]);
        assert!(Shape::new(&[2, 3])
            .broadcast(&Shape::new(&[4]), "t")
            .is_err());
        assert_eq!(Shape::new(&[2, 3, 4]).strides(), vec![12, 4, 1]);
        assert_eq!(
            Shape::new(&[2, 3, 4]).split_at_axis("t", 1).unwrap(),
            (2, 3, 4)
        );
    }
}

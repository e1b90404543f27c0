//! Elementwise ops: unary maps and binary arithmetic with numpy broadcasting.
//!
//! Gradients: for y = f(x), dx = dy·f'(x) (one backend kernel). For z = a ∘ b with broadcasting,
//! each operand's gradient is summed back over the axes it was stretched along ([`Tensor::sum_to`]).

use crate::autograd::record;
use crate::backend::{BinaryOp, UnaryOp};
use crate::{Result, Shape, Tensor};

/// `dims` left-padded with ones to `rank`.
pub(crate) fn pad_dims(dims: &[usize], rank: usize) -> Vec<usize> {
    let mut d = vec![1; rank - dims.len()];
    d.extend_from_slice(dims);
    d
}

impl Tensor {
    fn unary_op(&self, op: UnaryOp, name: &'static str) -> Result<Tensor> {
        let storage = self.storage().unary(op)?;
        let x = self.clone();
        Ok(record(
            storage,
            self.shape().clone(),
            name,
            vec![self.clone()],
            move |g| {
                let dx = x.storage().unary_backward(op, &g.storage())?;
                Ok(vec![Some(Tensor::from_storage(
                    dx,
                    x.shape().clone(),
                    None,
                ))])
            },
        ))
    }

    /// −x
    pub fn neg(&self) -> Result<Tensor> {
        self.unary_op(UnaryOp::Neg, "neg")
    }
    /// eˣ
    pub fn exp(&self) -> Result<Tensor> {
        self.unary_op(UnaryOp::Exp, "exp")
    }
    /// ln x
    pub fn log(&self) -> Result<Tensor> {
        self.unary_op(UnaryOp::Log, "log")
    }
    /// √x
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary_op(UnaryOp::Sqrt, "sqrt")
    }
    /// x²
    pub fn square(&self) -> Result<Tensor> {
        self.unary_op(UnaryOp::Square, "square")
    }
    /// max(x, 0)
    pub fn relu(&self) -> Result<Tensor> {
        self.unary_op(UnaryOp::Relu, "relu")
    }
    /// max(x, slope·x)
    pub fn leaky_relu(&self, slope: f32) -> Result<Tensor> {
        self.unary_op(UnaryOp::LeakyRelu(slope), "leaky_relu")
    }
    /// x if x > 0 else α(eˣ − 1)
    pub fn elu(&self, alpha: f32) -> Result<Tensor> {
        self.unary_op(UnaryOp::Elu(alpha), "elu")
    }
    /// log(1 + eˣ)
    pub fn softplus(&self) -> Result<Tensor> {
        self.unary_op(UnaryOp::Softplus, "softplus")
    }
    /// 1 / (1 + e⁻ˣ)
    pub fn sigmoid(&self) -> Result<Tensor> {
        self.unary_op(UnaryOp::Sigmoid, "sigmoid")
    }
    /// tanh x
    pub fn tanh(&self) -> Result<Tensor> {
        self.unary_op(UnaryOp::Tanh, "tanh")
    }
    /// |x|
    pub fn abs(&self) -> Result<Tensor> {
        self.unary_op(UnaryOp::Abs, "abs")
    }
    /// mul·x + add
    pub fn affine(&self, mul: f32, add: f32) -> Result<Tensor> {
        self.unary_op(UnaryOp::Affine { mul, add }, "affine")
    }
    /// x + c
    pub fn add_scalar(&self, c: f32) -> Result<Tensor> {
        self.affine(1.0, c)
    }
    /// c·x
    pub fn mul_scalar(&self, c: f32) -> Result<Tensor> {
        self.affine(c, 0.0)
    }

    fn binary_op(&self, rhs: &Tensor, op: BinaryOp, name: &'static str) -> Result<Tensor> {
        let out = self.shape().broadcast(rhs.shape(), name)?;
        let rank = out.rank();
        let (ld, rd) = (pad_dims(self.dims(), rank), pad_dims(rhs.dims(), rank));
        let storage = self
            .storage()
            .binary(op, &rhs.storage(), &ld, &rd, out.dims())?;
        let (a, b) = (self.clone(), rhs.clone());
        Ok(record(
            storage,
            out,
            name,
            vec![self.clone(), rhs.clone()],
            move |g| {
                let (ga, gb) = match op {
                    BinaryOp::Add => (g.clone(), g.clone()),
                    BinaryOp::Sub => (g.clone(), g.neg()?),
                    BinaryOp::Mul => (g.mul(&b)?, g.mul(&a)?),
                    BinaryOp::Div => (g.div(&b)?, g.mul(&a)?.div(&b.square()?)?.neg()?),
                    BinaryOp::Maximum => {
                        // The gradient goes to the lhs where it won (ties included), else the rhs.
                        let lhs = a.broadcast_as(g.shape())?;
                        let lhs_won = lhs.eq(&lhs.maximum(&b)?)?;
                        let ga = g.mul(&lhs_won)?;
                        (ga.clone(), g.sub(&ga)?)
                    }
                    BinaryOp::Eq => return Ok(vec![None, None]),
                };
                Ok(vec![
                    Some(ga.sum_to(a.shape())?),
                    Some(gb.sum_to(b.shape())?),
                ])
            },
        ))
    }

    /// a + b (broadcasting)
    pub fn add(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary_op(rhs, BinaryOp::Add, "add")
    }
    /// a − b (broadcasting)
    pub fn sub(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary_op(rhs, BinaryOp::Sub, "sub")
    }
    /// a · b (broadcasting)
    pub fn mul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary_op(rhs, BinaryOp::Mul, "mul")
    }
    /// a / b (broadcasting)
    pub fn div(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary_op(rhs, BinaryOp::Div, "div")
    }
    /// max(a, b) elementwise (broadcasting)
    pub fn maximum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary_op(rhs, BinaryOp::Maximum, "maximum")
    }
    /// 1.0 where a == b else 0.0 (no gradient)
    pub fn eq(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary_op(rhs, BinaryOp::Eq, "eq")
    }

    /// This tensor stretched to `shape` by broadcasting (a materialised copy).
    pub fn broadcast_as(&self, shape: &Shape) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let out = self.shape().broadcast(shape, "broadcast_as")?;
        if &out != shape {
            return Err(crate::Error::shape(
                "broadcast_as",
                self.dims(),
                shape.dims(),
                "target is not a broadcast of the source",
            ));
        }
        let rank = out.rank();
        let zero = crate::storage::Storage::zeros(1, self.device())?;
        let storage = self.storage().binary(
            BinaryOp::Add,
            &zero,
            &pad_dims(self.dims(), rank),
            &vec![1; rank],
            out.dims(),
        )?;
        let src = self.shape().clone();
        Ok(record(
            storage,
            out,
            "broadcast_as",
            vec![self.clone()],
            move |g| Ok(vec![Some(g.sum_to(&src)?)]),
        ))
    }

    /// Sum over the axes along which `shape` was broadcast to this tensor's shape.
    pub fn sum_to(&self, shape: &Shape) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let rank = self.rank();
        if shape.rank() > rank {
            return Err(crate::Error::shape(
                "sum_to",
                self.dims(),
                shape.dims(),
                "target has a higher rank",
            ));
        }
        let target = pad_dims(shape.dims(), rank);
        let mut t = self.clone();
        for (axis, &d) in target.iter().enumerate() {
            if d == 1 && t.dims()[axis] != 1 {
                t = t.sum_keepdim(axis)?;
            } else if d != t.dims()[axis] {
                return Err(crate::Error::shape(
                    "sum_to",
                    self.dims(),
                    shape.dims(),
                    "target is not a broadcast source of this shape",
                ));
            }
        }
        t.reshape(shape.clone())
    }
}

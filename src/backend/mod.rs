//! The op interface. Every device implements [`BackendStorage`]: a flat buffer of f32 plus the
//! kernels that read and write such buffers. Shapes, broadcasting rules and gradient formulas live
//! once, above this trait (in `ops/` and `vae/`); a backend only supplies kernels.
//!
//! Conventions shared by every method:
//! - buffers are contiguous row-major f32;
//! - an "axis" kernel sees its input as (outer, len, inner) (see [`crate::Shape::split_at_axis`]);
//! - a "rows" kernel sees its input as rows × cols with cols contiguous.

pub mod broadcast;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod vae;

use crate::rng::RngKey;
use crate::{Device, Result};

/// Pointwise functions of one argument.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Sqrt,
    Square,
    Relu,
    /// max(x, slope·x)
    LeakyRelu(f32),
    /// x if x > 0 else alpha·(eˣ − 1)
    Elu(f32),
    /// log(1 + eˣ), computed stably
    Softplus,
    Sigmoid,
    Tanh,
    /// mul·x + add
    Affine {
        mul: f32,
        add: f32,
    },
    /// |x| (its derivative at 0 is taken as 0)
    Abs,
}

/// Pointwise functions of two arguments, with numpy broadcasting.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    /// 1.0 where lhs == rhs, else 0.0 (not differentiable; used by max's backward)
    Eq,
    /// max(lhs, rhs) elementwise
    Maximum,
}

impl BinaryOp {
    /// Every binary op (for tests that sweep them all).
    pub const ALL: [BinaryOp; 6] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Eq,
        BinaryOp::Maximum,
    ];
}

/// Reductions along one axis.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReduceOp {
    Sum,
    Max,
}

/// A (batched) matrix product `C[b] = op(A[b]) · op(B[b])`, each operand contiguous per batch.
/// op(A) is m×k (A stored k×m when `trans_lhs`), op(B) is k×n (B stored n×k when `trans_rhs`).
/// `lhs_batch_stride`/`rhs_batch_stride` may be 0 to reuse one operand across the batch.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MatmulShape {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_lhs: bool,
    pub trans_rhs: bool,
    pub lhs_batch_stride: usize,
    pub rhs_batch_stride: usize,
}

/// The geometry of a 2-D convolution, NCHW, weight [c_out, c_in, kh, kw], no dilation or groups.
/// `h_out = (h + 2·padding − kh) / stride + 1`, likewise `w_out`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Conv2dShape {
    pub n: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub padding: usize,
    pub h_out: usize,
    pub w_out: usize,
}

impl Conv2dShape {
    /// Element counts of (input, weight, output).
    pub fn sizes(&self) -> (usize, usize, usize) {
        (
            self.n * self.c_in * self.h * self.w,
            self.c_out * self.c_in * self.kh * self.kw,
            self.n * self.c_out * self.h_out * self.w_out,
        )
    }
}

/// One Adam/AdamW step's scalars. `lr_t` already includes bias correction:
/// p ← p − lr_t · m̂/(√v̂ + eps) − lr · weight_decay · p (decoupled when `decoupled`).
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct AdamStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// true: AdamW (decay applied to the parameter); false: L2 added to the gradient.
    pub decoupled: bool,
    /// 1 − beta1^t
    pub bias1: f32,
    /// 1 − beta2^t
    pub bias2: f32,
}

/// What a device must provide: a buffer type and its kernels.
pub trait BackendStorage: Sized + Send + Sync {
    /// The device this buffer lives on.
    fn device(&self) -> Device;
    /// Number of f32 elements.
    fn len(&self) -> usize;
    /// Whether the buffer is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Copy to the host.
    fn to_vec(&self) -> Result<Vec<f32>>;

    /// y = f(x).
    fn unary(&self, op: UnaryOp) -> Result<Self>;
    /// dx = dy · f'(x), with `self` = x.
    fn unary_backward(&self, op: UnaryOp, grad: &Self) -> Result<Self>;
    /// out = lhs ∘ rhs with broadcasting from `lhs_dims`, `rhs_dims` to `out_dims` (same rank).
    fn binary(
        &self,
        op: BinaryOp,
        rhs: &Self,
        lhs_dims: &[usize],
        rhs_dims: &[usize],
        out_dims: &[usize],
    ) -> Result<Self>;
    /// Reduce the middle of (outer, len, inner): out[o, i] = op_j x[o, j, i].
    fn reduce(&self, op: ReduceOp, outer: usize, len: usize, inner: usize) -> Result<Self>;
    /// Row-wise softmax (or log-softmax) of a rows × cols matrix, one pass per row.
    fn softmax_rows(&self, rows: usize, cols: usize, log: bool) -> Result<Self>;
    /// Row-wise log Σ exp, stable (max-shifted): rows values.
    fn logsumexp_rows(&self, rows: usize, cols: usize) -> Result<Self>;
    /// Batched matrix product, see [`MatmulShape`].
    fn matmul(&self, rhs: &Self, s: &MatmulShape) -> Result<Self>;
    /// y = conv2d(x = self, w).
    fn conv2d(&self, w: &Self, s: &Conv2dShape) -> Result<Self>;
    /// dx from dy = self (this is also conv_transpose2d's forward).
    fn conv2d_backward_input(&self, w: &Self, s: &Conv2dShape) -> Result<Self>;
    /// dw from x = self and dy.
    fn conv2d_backward_weight(&self, grad_out: &Self, s: &Conv2dShape) -> Result<Self>;
    /// `(conv2d(self, w), conv2d_backward_weight(self, grad_out))`, both from the same input
    /// (a transposed convolution's backward). A backend that lowers the input (the CPU's
    /// im2col) overrides it to lower once for both.
    fn conv2d_with_weight_grad(
        &self,
        w: &Self,
        grad_out: &Self,
        s: &Conv2dShape,
    ) -> Result<(Self, Self)> {
        Ok((
            self.conv2d(w, s)?,
            self.conv2d_backward_weight(grad_out, s)?,
        ))
    }
    /// Swap axes d0 < d1 of a tensor with `dims`, materialising the result.
    fn transpose(&self, dims: &[usize], d0: usize, d1: usize) -> Result<Self>;
    /// Copy a rows × cols block: dst[dst_off + r·dst_stride + c] = src[src_off + r·src_stride + c].
    #[allow(clippy::too_many_arguments)]
    fn copy2d(
        &self,
        dst: &mut Self,
        rows: usize,
        cols: usize,
        src_stride: usize,
        dst_stride: usize,
        src_off: usize,
        dst_off: usize,
    ) -> Result<()>;
    /// `out[i, :] = self[ids[i], :]`, rows of `row_len` elements.
    fn index_select_rows(&self, ids: &[u32], row_len: usize) -> Result<Self>;
    /// `out = zeros(out_rows, row_len); out[ids[i], :] += self[i, :]`.
    fn index_add_rows(&self, ids: &[u32], row_len: usize, out_rows: usize) -> Result<Self>;
    /// Per row Σ_j [max(l,0) − l·x + log(1 + e^{−|l|})] with l = self (logits), x = targets.
    fn bce_with_logits_rows(&self, targets: &Self, rows: usize, cols: usize) -> Result<Self>;
    /// d/dlogits of the above times the per-row upstream gradient: (σ(l) − x) · g_row.
    fn bce_with_logits_rows_backward(
        &self,
        targets: &Self,
        grad_rows: &Self,
        rows: usize,
        cols: usize,
    ) -> Result<Self>;
    /// One Adam step in place on (param = self, m, v) given grad.
    fn adam_step(&mut self, grad: &Self, m: &mut Self, v: &mut Self, s: &AdamStep) -> Result<()>;
    /// Multiply in place by a scalar (gradient clipping).
    fn scale_in_place(&mut self, factor: f32) -> Result<()>;
}

/// Creation of buffers on a device: what the tensor constructors need from a backend.
pub trait BackendDevice {
    type Storage: BackendStorage;
    /// Upload host data.
    fn storage_from_slice(&self, data: &[f32]) -> Result<Self::Storage>;
    /// A buffer of `n` zeros.
    fn zeros(&self, n: usize) -> Result<Self::Storage>;
    /// `n` draws of U(0,1) from Philox at `key` (element i uses counter key.offset + i/4, word i%4).
    fn rand_uniform(&self, n: usize, key: RngKey) -> Result<Self::Storage>;
    /// `n` draws of N(0,1) from Philox at `key` (Box–Muller on the words of counter key.offset + i/2).
    fn rand_normal(&self, n: usize, key: RngKey) -> Result<Self::Storage>;
}

//! 2-D convolution and its transpose, NCHW.
//!
//! conv2d: y = x ⋆ w, w [c_out, c_in, kh, kw]; dx = conv2d_backward_input(dy, w),
//! dw = conv2d_backward_weight(x, dy). conv_transpose2d is the adjoint of conv2d: its forward is
//! conv2d's backward-input, its input gradient is conv2d's forward, with weight [c_in, c_out, k, k]
//! (PyTorch's layout). Output sizes: conv (h + 2p − k)/s + 1; transpose (h − 1)s − 2p + k + op.

use crate::autograd::record;
use crate::backend::Conv2dShape;
use crate::{Error, Result, Shape, Tensor};

fn dims4(t: &Tensor, op: &'static str) -> Result<[usize; 4]> {
    match t.dims() {
        &[a, b, c, d] => Ok([a, b, c, d]),
        d => Err(Error::shape(op, d, &[], "expected a rank-4 NCHW tensor")),
    }
}

impl Tensor {
    /// 2-D convolution of an NCHW input with weight [c_out, c_in, kh, kw].
    pub fn conv2d(&self, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
        let [n, c_in, h, wd] = dims4(self, "conv2d")?;
        let [c_out, wc_in, kh, kw] = dims4(w, "conv2d")?;
        if c_in != wc_in {
            return Err(Error::shape(
                "conv2d",
                self.dims(),
                w.dims(),
                "input channels differ from the weight's",
            ));
        }
        if stride == 0 || h + 2 * padding < kh || wd + 2 * padding < kw {
            return Err(Error::shape(
                "conv2d",
                self.dims(),
                w.dims(),
                format!("kernel does not fit (stride {stride}, padding {padding})"),
            ));
        }
        let s = Conv2dShape {
            n,
            c_in,
            h,
            w: wd,
            c_out,
            kh,
            kw,
            stride,
            padding,
            h_out: (h + 2 * padding - kh) / stride + 1,
            w_out: (wd + 2 * padding - kw) / stride + 1,
        };
        let storage = self.storage().conv2d(&w.storage(), &s)?;
        let (x, wt) = (self.clone(), w.clone());
        Ok(record(
            storage,
            Shape(vec![n, c_out, s.h_out, s.w_out]),
            "conv2d",
            vec![self.clone(), w.clone()],
            move |g| {
                // The first layer's input is the data, which needs no gradient.
                let dx = x
                    .tracks_grad()
                    .then(|| g.storage().conv2d_backward_input(&wt.storage(), &s))
                    .transpose()?;
                let dw = wt
                    .tracks_grad()
                    .then(|| x.storage().conv2d_backward_weight(&g.storage(), &s))
                    .transpose()?;
                Ok(vec![
                    dx.map(|d| Tensor::from_storage(d, x.shape().clone(), None)),
                    dw.map(|d| Tensor::from_storage(d, wt.shape().clone(), None)),
                ])
            },
        ))
    }

    /// Transposed 2-D convolution of an NCHW input with weight [c_in, c_out, kh, kw].
    pub fn conv_transpose2d(
        &self,
        w: &Tensor,
        stride: usize,
        padding: usize,
        output_padding: usize,
    ) -> Result<Tensor> {
        let [n, c_in, h, wd] = dims4(self, "conv_transpose2d")?;
        let [wc_in, c_out, kh, kw] = dims4(w, "conv_transpose2d")?;
        if c_in != wc_in {
            return Err(Error::shape(
                "conv_transpose2d",
                self.dims(),
                w.dims(),
                "input channels differ from the weight's first dimension",
            ));
        }
        if stride == 0 || output_padding >= stride {
            return Err(Error::invalid(
                "conv_transpose2d",
                format!("output_padding {output_padding} must be below stride {stride}"),
            ));
        }
        let full_h = (h - 1) * stride + kh + output_padding;
        let full_w = (wd - 1) * stride + kw + output_padding;
        if h == 0 || wd == 0 || full_h <= 2 * padding || full_w <= 2 * padding {
            return Err(Error::shape(
                "conv_transpose2d",
                self.dims(),
                w.dims(),
                format!("padding {padding} leaves no output"),
            ));
        }
        // The conv2d whose input gradient this is: its "input" is our output.
        let s = Conv2dShape {
            n,
            c_in: c_out,
            h: full_h - 2 * padding,
            w: full_w - 2 * padding,
            c_out: c_in,
            kh,
            kw,
            stride,
            padding,
            h_out: h,
            w_out: wd,
        };
        let storage = self.storage().conv2d_backward_input(&w.storage(), &s)?;
        let (x, wt) = (self.clone(), w.clone());
        Ok(record(
            storage,
            Shape(vec![n, c_out, s.h, s.w]),
            "conv_transpose2d",
            vec![self.clone(), w.clone()],
            move |g| {
                // dx = conv2d(g, w) and dw = backward-weight(g, x) read the same g: one pass.
                let (g, w) = (g.storage(), wt.storage());
                let (dx, dw) = match (x.tracks_grad(), wt.tracks_grad()) {
                    (true, true) => {
                        let (dx, dw) = g.conv2d_with_weight_grad(&w, &x.storage(), &s)?;
                        (Some(dx), Some(dw))
                    }
                    (true, false) => (Some(g.conv2d(&w, &s)?), None),
                    (false, true) => (None, Some(g.conv2d_backward_weight(&x.storage(), &s)?)),
                    (false, false) => (None, None),
                };
                Ok(vec![
                    dx.map(|d| Tensor::from_storage(d, x.shape().clone(), None)),
                    dw.map(|d| Tensor::from_storage(d, wt.shape().clone(), None)),
                ])
            },
        ))
    }
}

//! Matrix products: `matmul` (2-D, or batched 3-D with an optional shared rhs) and `linear`
//! (x·Wᵀ + b, the layer's op, with Wᵀ never materialised).
//!
//! Gradients of C = A·B: dA = dC·Bᵀ, dB = Aᵀ·dC, computed with the transpose flags of the GEMM
//! kernel instead of copies.

use crate::autograd::record;
use crate::backend::MatmulShape;
use crate::{Error, Result, Shape, Tensor};

/// C = op(A)·op(B) for 2-D operands, without recording (the building block of the gradients).
fn mm2(a: &Tensor, b: &Tensor, ta: bool, tb: bool) -> Result<Tensor> {
    let (ar, ac) = a.dims2("matmul")?;
    let (br, bc) = b.dims2("matmul")?;
    let (m, k) = if ta { (ac, ar) } else { (ar, ac) };
    let (k2, n) = if tb { (bc, br) } else { (br, bc) };
    if k != k2 {
        return Err(Error::shape(
            "matmul",
            a.dims(),
            b.dims(),
            format!("inner dimensions {k} and {k2} differ (transposes {ta}, {tb})"),
        ));
    }
    let s = MatmulShape {
        batch: 1,
        m,
        n,
        k,
        trans_lhs: ta,
        trans_rhs: tb,
        lhs_batch_stride: 0,
        rhs_batch_stride: 0,
    };
    let storage = a.storage().matmul(&b.storage(), &s)?;
    Ok(Tensor::from_storage(storage, Shape(vec![m, n]), None))
}

impl Tensor {
    /// Matrix product. Shapes: `[m,k]·[k,n] → [m,n]`; `[b,m,k]·[b,k,n] → [b,m,n]`;
    /// `[b,m,k]·[k,n] → [b,m,n]` (rhs shared across the batch).
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        match (self.dims(), rhs.dims()) {
            (&[_, _], &[_, _]) => {
                let out = mm2(self, rhs, false, false)?;
                let (a, b) = (self.clone(), rhs.clone());
                let node =
                    crate::autograd::make_node("matmul", vec![a.clone(), b.clone()], move |g| {
                        Ok(vec![
                            Some(mm2(g, &b, false, true)?),
                            Some(mm2(&a, g, true, false)?),
                        ])
                    });
                Ok(out.with_node(node))
            }
            (&[bt, m, k], &[k2, n]) if k == k2 => {
                // Shared rhs: fold the batch into the rows.
                self.reshape([bt * m, k])?.matmul(rhs)?.reshape([bt, m, n])
            }
            (&[bt, m, k], &[bt2, k2, n]) if bt == bt2 && k == k2 => {
                let s = MatmulShape {
                    batch: bt,
                    m,
                    n,
                    k,
                    trans_lhs: false,
                    trans_rhs: false,
                    lhs_batch_stride: m * k,
                    rhs_batch_stride: k * n,
                };
                let storage = self.storage().matmul(&rhs.storage(), &s)?;
                let (a, b) = (self.clone(), rhs.clone());
                Ok(record(
                    storage,
                    Shape(vec![bt, m, n]),
                    "matmul",
                    vec![self.clone(), rhs.clone()],
                    move |g| {
                        let ga = g.matmul(&b.transpose(1, 2)?)?;
                        let gb = a.transpose(1, 2)?.matmul(g)?;
                        Ok(vec![Some(ga), Some(gb)])
                    },
                ))
            }
            (l, r) => Err(Error::shape(
                "matmul",
                l,
                r,
                "expected [m,k]·[k,n], [b,m,k]·[k,n] or [b,m,k]·[b,k,n]",
            )),
        }
    }

    /// x·Wᵀ + b with x `[n, in]`, W `[out, in]`, b `[out]`.
    pub fn linear(&self, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
        let (_, fin) = self.dims2("linear")?;
        let (fout, win) = w.dims2("linear")?;
        if fin != win {
            return Err(Error::shape(
                "linear",
                self.dims(),
                w.dims(),
                format!("input has {fin} features, weight expects {win}"),
            ));
        }
        let y = mm2(self, w, false, true)?;
        let (x, wt) = (self.clone(), w.clone());
        let node = crate::autograd::make_node("linear", vec![x.clone(), wt.clone()], move |g| {
            // A network's first layer reads the data, which needs no gradient: skip its product.
            let dx = x
                .tracks_grad()
                .then(|| mm2(g, &wt, false, false))
                .transpose()?;
            let dw = wt
                .tracks_grad()
                .then(|| mm2(g, &x, true, false))
                .transpose()?;
            Ok(vec![dx, dw])
        });
        let y = y.with_node(node);
        match b {
            None => Ok(y),
            Some(b) => {
                if b.dims() != [fout] {
                    return Err(Error::shape(
                        "linear",
                        w.dims(),
                        b.dims(),
                        "bias must have one value per output",
                    ));
                }
                y.add(b)
            }
        }
    }
}

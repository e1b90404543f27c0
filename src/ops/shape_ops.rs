//! Ops that move data without arithmetic: transpose, concat and slice along an axis, row gathers
//! (index_select), row repetition (what M2 needs to decode every example once per class).
//!
//! Gradients: transpose → transpose back; concat → slices; slice → zero-padded copy;
//! index_select → scatter-add of the rows (ids may repeat, so gradients add up).

use crate::autograd::record;
use crate::storage::Storage;
use crate::{Error, Result, Shape, Tensor};

impl Tensor {
    /// Swap two axes (a materialised copy).
    pub fn transpose(&self, d0: usize, d1: usize) -> Result<Tensor> {
        let rank = self.rank();
        if d0 >= rank || d1 >= rank {
            return Err(Error::invalid(
                "transpose",
                format!("axes {d0}, {d1} for shape {:?}", self.dims()),
            ));
        }
        if d0 == d1 {
            return Ok(self.clone());
        }
        let (a, b) = (d0.min(d1), d0.max(d1));
        let storage = self.storage().transpose(self.dims(), a, b)?;
        let mut dims = self.dims().to_vec();
        dims.swap(a, b);
        Ok(record(
            storage,
            Shape(dims),
            "transpose",
            vec![self.clone()],
            move |g| Ok(vec![Some(g.transpose(a, b)?)]),
        ))
    }

    /// The transpose of a matrix.
    pub fn t(&self) -> Result<Tensor> {
        self.dims2("t")?;
        self.transpose(0, 1)
    }

    /// Join tensors along `axis`; all other dimensions must agree.
    pub fn concat(tensors: &[&Tensor], axis: usize) -> Result<Tensor> {
        let first = tensors
            .first()
            .ok_or_else(|| Error::invalid("concat", "no tensors"))?;
        let (outer, _, inner) = first.shape().split_at_axis("concat", axis)?;
        let mut total = 0;
        for t in tensors {
            let mut a = t.dims().to_vec();
            let mut b = first.dims().to_vec();
            if a.len() != b.len() {
                return Err(Error::shape(
                    "concat",
                    first.dims(),
                    t.dims(),
                    "ranks differ",
                ));
            }
            total += a[axis];
            a[axis] = 0;
            b[axis] = 0;
            if a != b {
                return Err(Error::shape(
                    "concat",
                    first.dims(),
                    t.dims(),
                    format!("dimensions other than {axis} differ"),
                ));
            }
        }
        let device = first.device();
        let mut out = Storage::zeros(outer * total * inner, device)?;
        let mut offset = 0;
        let mut lens = Vec::with_capacity(tensors.len());
        for t in tensors {
            let len = t.dims()[axis];
            t.storage().copy2d(
                &mut out,
                outer,
                len * inner,
                len * inner,
                total * inner,
                0,
                offset * inner,
            )?;
            lens.push(len);
            offset += len;
        }
        let mut dims = first.dims().to_vec();
        dims[axis] = total;
        let inputs: Vec<Tensor> = tensors.iter().map(|t| (*t).clone()).collect();
        Ok(record(out, Shape(dims), "concat", inputs, move |g| {
            let mut start = 0;
            let mut grads = Vec::with_capacity(lens.len());
            for &len in &lens {
                grads.push(Some(g.narrow(axis, start, len)?));
                start += len;
            }
            Ok(grads)
        }))
    }

    /// Elements start..start+len along `axis`.
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Result<Tensor> {
        let (outer, n, inner) = self.shape().split_at_axis("narrow", axis)?;
        if start + len > n {
            return Err(Error::invalid(
                "narrow",
                format!("{start}..{} past length {n} of axis {axis}", start + len),
            ));
        }
        if start == 0 && len == n {
            return Ok(self.clone());
        }
        let mut out = Storage::zeros(outer * len * inner, self.device())?;
        self.storage().copy2d(
            &mut out,
            outer,
            len * inner,
            n * inner,
            len * inner,
            start * inner,
            0,
        )?;
        let mut dims = self.dims().to_vec();
        dims[axis] = len;
        let src = self.shape().clone();
        Ok(record(
            out,
            Shape(dims),
            "narrow",
            vec![self.clone()],
            move |g| {
                let mut dx = Storage::zeros(src.elem_count(), g.device())?;
                g.storage().copy2d(
                    &mut dx,
                    outer,
                    len * inner,
                    len * inner,
                    n * inner,
                    0,
                    start * inner,
                )?;
                Ok(vec![Some(Tensor::from_storage(dx, src.clone(), None))])
            },
        ))
    }

    /// Rows `ids` of the first axis (ids may repeat).
    pub fn index_select(&self, ids: &[u32]) -> Result<Tensor> {
        let rows = self.dim("index_select", 0)?;
        let row_len = self.elem_count() / rows.max(1);
        let storage = self.storage().index_select_rows(ids, row_len)?;
        let mut dims = self.dims().to_vec();
        dims[0] = ids.len();
        let ids = ids.to_vec();
        let src = self.shape().clone();
        Ok(record(
            storage,
            Shape(dims),
            "index_select",
            vec![self.clone()],
            move |g| {
                let dx = g.storage().index_add_rows(&ids, row_len, rows)?;
                Ok(vec![Some(Tensor::from_storage(dx, src.clone(), None))])
            },
        ))
    }

    /// Each row repeated `k` times in place: rows r0,r0,…,r1,r1,… (row b·k + j is row b).
    pub fn repeat_interleave(&self, k: usize) -> Result<Tensor> {
        let rows = self.dim("repeat_interleave", 0)?;
        let ids: Vec<u32> = (0..rows as u32)
            .flat_map(|r| std::iter::repeat_n(r, k))
            .collect();
        self.index_select(&ids)
    }

    /// The whole first axis repeated `k` times: r0,r1,…,r0,r1,…
    pub fn repeat_rows(&self, k: usize) -> Result<Tensor> {
        let rows = self.dim("repeat_rows", 0)?;
        let ids: Vec<u32> = (0..k).flat_map(|_| 0..rows as u32).collect();
        self.index_select(&ids)
    }

    /// Flatten every axis after the first: [n, …] → [n, rest].
    pub fn flatten_rows(&self) -> Result<Tensor> {
        let n = self.dim("flatten_rows", 0)?;
        self.reshape([n, self.elem_count() / n.max(1)])
    }
}

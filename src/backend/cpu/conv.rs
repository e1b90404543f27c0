//! CPU 2-D convolution kernels (NCHW, weight `[c_out, c_in, kh, kw]`, stride, symmetric zero
//! padding, no dilation or groups): forward, backward-input (which is also `conv_transpose2d`'s
//! forward) and backward-weight, each lowered to one GEMM per image.
//!
//! # Why a convolution is a matrix product
//!
//! Write `K = c_in·kh·kw` (the length of one filter) and `P = h_out·w_out` (the number of output
//! positions). For one image, output `y[co, p]` is the dot product of filter `co` with the `K`
//! input values that filter sees when it sits at position `p`. If those `K` values are laid out as
//! column `p` of a matrix `cols` (`K × P`), the whole image is one matrix product:
//!
//! ```text
//!   y_n [c_out × P]  =  W [c_out × K]  ·  cols_n [K × P]          (W used as stored, row-major)
//! ```
//!
//! **im2col** builds `cols_n`: row `r = (ci·kh + i)·kw + j` (one filter tap) holds, for every output
//! position `p = oh·w_out + ow`, the input pixel that tap reads,
//! `x[ci, oh·stride + i − pad, ow·stride + j − pad]`, or 0 where that falls in the padding. Every
//! input pixel is copied about `kh·kw / stride²` times; the price buys a dense, cache-friendly GEMM
//! that does all the arithmetic.
//!
//! The two backward passes are the same picture read the other way:
//!
//! ```text
//!   backward-input:   cols_n [K × P]     =  Wᵀ [K × c_out]  ·  dy_n [c_out × P]
//!                     dx_n               =  col2im(cols_n)
//!   backward-weight:  dW [c_out × K]    +=  dy_n [c_out × P]  ·  cols_nᵀ [P × K]
//! ```
//!
//! **col2im** is the adjoint of im2col: each entry of `cols_n` is *added* back to the input pixel
//! it was copied from (a scatter-add, since overlapping windows read the same pixel several times),
//! and entries that came from the padding are dropped. `cols_nᵀ` is never materialised: [`gemm`]
//! reads it through its `trans_b` flag. `Wᵀ` is built once per call (it is one filter bank, tiny
//! next to the batch) so every backward-input GEMM reads plain row-major operands.
//!
//! # Several images per GEMM
//!
//! One image alone makes a poor GEMM at a VAE's shapes: the second encoder layer has `P = 49`
//! output positions, so `W · cols_n` is 64 × 49 with a 512-long inner dimension, mostly ragged
//! edge tiles of the micro-kernel, and its weight-gradient product has an inner dimension of
//! only 49. So the kernels lower a *group* of `G` images side by side: `cols` is `K × G·P`,
//! image `g` in columns `g·P .. (g+1)·P`, and `dy` for the group is gathered into the same
//! channel-major layout `c_out × G·P`:
//!
//! ```text
//!   forward:          Y_g [c_out × G·P]  =  W · cols_g            then scattered to NCHW
//!   backward-input:   cols_g             =  Wᵀ · dY_g [c_out × G·P], col2im per image
//!   backward-weight:  dW                +=  dY_g · cols_gᵀ        (inner dimension G·P)
//! ```
//!
//! `G` is the smallest count with `G·P ≥` [`GROUP_COLUMNS`] (capped at the batch), but 1 for
//! images with at least [`ONE_IMAGE_COLUMNS`] output positions: it depends on the shape only,
//! never on the thread count. The gather and scatter copy `c_out·G·P` values per group; with a
//! long filter (`K = 512` at 14→7) that is little next to the `c_out·K·G·P` multiply-adds, but
//! with `K = 16` (the 28→14 layer, `P = 196`) the copies cost more than the bigger GEMM saves
//! (measured ~10% slower), so such images go one at a time, where both layouts coincide and
//! nothing is copied.
//!
//! # Parallelism, scratch, determinism
//!
//! Groups are independent, so forward and backward-input run one group per rayon task, each
//! task reusing its scratch buffers across the groups it processes (rayon's `for_each_init`),
//! so the hot loop does not allocate per group. Backward-weight sums over the batch: the batch
//! is cut into at most [`MAX_WEIGHT_PARTIALS`] contiguous ranges, a fixed function of `n` alone,
//! each range accumulates its own partial `dW` group by group in image order, and the partials
//! are then summed in range order. The result is therefore bit-identical from run to run and
//! for any number of threads (given a deterministic [`gemm`]).
//!
//! The `*_reference` functions are the plain loops straight from the definition; they are the test
//! oracles, not meant to be fast.
use rayon::prelude::*;

use super::gemm::{gemm, GemmShape};
use super::pool::{self, Scratch};
use crate::backend::Conv2dShape;

/// The most partial weight gradients backward-weight keeps, i.e. its parallelism over the batch.
/// Fixed (not the thread count) so that the summation order, hence the result, depends on the
/// shape only.
pub const MAX_WEIGHT_PARTIALS: usize = 16;

/// The fewest columns (images × output positions) one lowered group aims for: enough for the
/// GEMM's micro-kernel to run mostly full tiles and to amortise packing `W` (see the module
/// doc). A group of the second encoder layer (`P = 49`) then holds 11 images, `cols` 1.1 MB.
pub const GROUP_COLUMNS: usize = 512;

/// Images with at least this many output positions are lowered one at a time (see the module
/// doc).
pub const ONE_IMAGE_COLUMNS: usize = 128;

/// Derived sizes shared by the three kernels.
#[derive(Clone, Copy, Debug)]
struct Lowering {
    /// c_in·kh·kw: rows of `cols`, length of one filter.
    k: usize,
    /// h_out·w_out: output positions per channel, the columns one image takes in `cols`.
    p: usize,
    /// c_in·h·w: elements of one input image.
    in_img: usize,
    /// c_out·h_out·w_out: elements of one output image.
    out_img: usize,
    /// Images lowered together (the last group of a batch may hold fewer).
    group: usize,
}

impl Lowering {
    fn new(s: &Conv2dShape) -> Self {
        let p = s.h_out * s.w_out;
        Lowering {
            k: s.c_in * s.kh * s.kw,
            p,
            in_img: s.c_in * s.h * s.w,
            out_img: s.c_out * p,
            group: if p >= ONE_IMAGE_COLUMNS {
                1
            } else {
                GROUP_COLUMNS.div_ceil(p.max(1)).clamp(1, s.n.max(1))
            },
        }
    }

    /// Nothing to compute: the result is all zeros (or empty). Covers empty batches, zero channels,
    /// empty kernels and empty images (every tap then reads padding).
    fn trivial(&self, s: &Conv2dShape) -> bool {
        s.n == 0 || self.k == 0 || self.in_img == 0 || self.out_img == 0
    }

    /// `cols` (`K × G·P`) of the group of images `x_g` (`G·c_in·h·w` values, G ≤ `group`),
    /// filled in the scratch buffer, and G·P, the group's column count.
    fn lower<'a>(
        &self,
        x_g: &[f32],
        s: &Conv2dShape,
        cols: &'a mut Scratch,
    ) -> (&'a mut [f32], usize) {
        let width = x_g.len() / self.in_img * self.p;
        let cols = cols.get(self.k * width);
        for (g, x_n) in x_g.chunks_exact(self.in_img).enumerate() {
            im2col(x_n, s, &mut cols[g * self.p..], width);
        }
        (cols, width)
    }
}

/// The output indices `o` in `0..n_out` whose input coordinate `o·stride + tap − pad` lies in
/// `0..len`, as a half-open range `lo..hi` (with `lo == hi` when there are none).
#[inline]
fn valid_range(len: usize, n_out: usize, stride: usize, tap: usize, pad: usize) -> (usize, usize) {
    // o·stride + tap ≥ pad
    let lo = if pad > tap {
        (pad - tap).div_ceil(stride)
    } else {
        0
    };
    // o·stride + tap − pad ≤ len − 1
    let hi = match (len + pad).checked_sub(tap + 1) {
        Some(last) => (last / stride + 1).min(n_out),
        None => 0,
    };
    (lo.min(hi), hi)
}

/// Fill image `x`'s columns of `cols` (see the module doc): tap row `r` of this image is
/// `cols[r·width .. r·width + P]`, so `cols` starts at the image's first column and `width` is
/// the group's row length.
fn im2col(x: &[f32], s: &Conv2dShape, cols: &mut [f32], width: usize) {
    let (h, w, stride, pad) = (s.h, s.w, s.stride, s.padding);
    let (w_out, p) = (s.w_out, s.h_out * s.w_out);
    let mut r = 0;
    for plane in x.chunks_exact(h * w).take(s.c_in) {
        for i in 0..s.kh {
            let (oh_lo, oh_hi) = valid_range(h, s.h_out, stride, i, pad);
            for j in 0..s.kw {
                let (ow_lo, ow_hi) = valid_range(w, w_out, stride, j, pad);
                let row = &mut cols[r * width..r * width + p];
                r += 1;
                row[..oh_lo * w_out].fill(0.0);
                row[oh_hi * w_out..].fill(0.0);
                for oh in oh_lo..oh_hi {
                    let dst = &mut row[oh * w_out..(oh + 1) * w_out];
                    dst[..ow_lo].fill(0.0);
                    dst[ow_hi..].fill(0.0);
                    if ow_lo == ow_hi {
                        continue;
                    }
                    let ih = oh * stride + i - pad;
                    let iw0 = ow_lo * stride + j - pad;
                    let src = &plane[ih * w + iw0..(ih + 1) * w];
                    let dst = &mut dst[ow_lo..ow_hi];
                    if stride == 1 {
                        dst.copy_from_slice(&src[..dst.len()]);
                    } else {
                        for (d, &v) in dst.iter_mut().zip(src.iter().step_by(stride)) {
                            *d = v;
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: add every entry of this image's columns of `cols` (laid out as
/// there) into the pixel of `dx` (`c_in × h × w`, accumulated into, not overwritten) it was read
/// from; padding entries are dropped.
fn col2im(cols: &[f32], s: &Conv2dShape, dx: &mut [f32], width: usize) {
    let (h, w, stride, pad) = (s.h, s.w, s.stride, s.padding);
    let w_out = s.w_out;
    let mut r = 0;
    for plane in dx.chunks_exact_mut(h * w).take(s.c_in) {
        for i in 0..s.kh {
            let (oh_lo, oh_hi) = valid_range(h, s.h_out, stride, i, pad);
            for j in 0..s.kw {
                let (ow_lo, ow_hi) = valid_range(w, w_out, stride, j, pad);
                let row = &cols[r * width..];
                r += 1;
                if ow_lo == ow_hi {
                    continue;
                }
                for oh in oh_lo..oh_hi {
                    let src = &row[oh * w_out + ow_lo..oh * w_out + ow_hi];
                    let ih = oh * stride + i - pad;
                    let iw0 = ow_lo * stride + j - pad;
                    let dst = &mut plane[ih * w + iw0..(ih + 1) * w];
                    if stride == 1 {
                        for (d, &v) in dst.iter_mut().zip(src) {
                            *d += v;
                        }
                    } else {
                        for (d, &v) in dst.iter_mut().step_by(stride).zip(src) {
                            *d += v;
                        }
                    }
                }
            }
        }
    }
}

/// A group of images (`G` of `rows × p` each, image-major as in NCHW) in the channel-major
/// layout `rows × G·p` the group GEMMs read, `[r, g·p + q] = src[g][r, q]`: `src` itself when it
/// holds one image (the two layouts then coincide), else gathered into `buf`.
fn as_channel_major<'a>(src: &'a [f32], rows: usize, p: usize, buf: &'a mut Scratch) -> &'a [f32] {
    if src.len() == rows * p {
        return src;
    }
    let width = src.len() / rows;
    let dst = buf.get(src.len());
    for (g, img) in src.chunks_exact(rows * p).enumerate() {
        for (r, row) in img.chunks_exact(p).enumerate() {
            dst[r * width + g * p..r * width + (g + 1) * p].copy_from_slice(row);
        }
    }
    dst
}

/// The inverse of [`as_channel_major`]: `dst[g][r, q] = src[r, g·p + q]`.
fn scatter_channel_major(src: &[f32], rows: usize, p: usize, dst: &mut [f32]) {
    let width = src.len() / rows;
    for (g, img) in dst.chunks_exact_mut(rows * p).enumerate() {
        for (r, row) in img.chunks_exact_mut(p).enumerate() {
            row.copy_from_slice(&src[r * width + g * p..r * width + (g + 1) * p]);
        }
    }
}

/// y = conv2d(x, w): x `[n, c_in, h, w]`, w `[c_out, c_in, kh, kw]` → y `[n, c_out, h_out, w_out]`.
pub fn conv2d(x: &[f32], w: &[f32], s: &Conv2dShape) -> Vec<f32> {
    let (x_len, w_len, y_len) = s.sizes();
    debug_assert!(x.len() >= x_len && w.len() >= w_len, "conv2d: short input");
    let mut y = pool::zeros(y_len);
    let l = Lowering::new(s);
    if l.trivial(s) {
        return y;
    }
    let (x, w) = (&x[..x_len], &w[..w_len]);
    y.par_chunks_mut(l.group * l.out_img)
        .zip(x.par_chunks(l.group * l.in_img))
        .for_each_init(
            || (Scratch::default(), Scratch::default()),
            |(cols, out), (y_g, x_g)| {
                let (cols, width) = l.lower(x_g, s, cols);
                forward_group(&l, s, w, cols, width, y_g, out);
            },
        );
    y
}

/// The forward GEMM of one lowered group: `Y_g [c_out × G·P] = W [c_out × K] · cols_g [K × G·P]`,
/// written to the group's NCHW output `y_g` (through the scratch `out` when G > 1).
fn forward_group(
    l: &Lowering,
    s: &Conv2dShape,
    w: &[f32],
    cols: &[f32],
    width: usize,
    y_g: &mut [f32],
    out: &mut Scratch,
) {
    let g = GemmShape {
        m: s.c_out,
        n: width,
        k: l.k,
        trans_a: false,
        trans_b: false,
    };
    if y_g.len() == l.out_img {
        gemm(&g, w, cols, y_g, false);
    } else {
        let out = out.get(s.c_out * width);
        gemm(&g, w, cols, out, false);
        scatter_channel_major(out, s.c_out, l.p, y_g);
    }
}

/// dx from dy: the adjoint of [`conv2d`] in x (also `conv_transpose2d`'s forward).
/// dy `[n, c_out, h_out, w_out]`, w `[c_out, c_in, kh, kw]` → dx `[n, c_in, h, w]`.
pub fn conv2d_backward_input(dy: &[f32], w: &[f32], s: &Conv2dShape) -> Vec<f32> {
    let (x_len, w_len, y_len) = s.sizes();
    debug_assert!(
        dy.len() >= y_len && w.len() >= w_len,
        "conv2d_backward_input: short input"
    );
    let mut dx = pool::zeros(x_len);
    let l = Lowering::new(s);
    if l.trivial(s) {
        return dx;
    }
    let dy = &dy[..y_len];
    // Wᵀ once per call (one filter bank, small next to the batch), so that every group GEMM
    // reads both operands in their natural row-major layout.
    let mut wt = pool::zeros(w_len);
    for (co, w_row) in w[..w_len].chunks_exact(l.k).enumerate() {
        for (r, &v) in w_row.iter().enumerate() {
            wt[r * s.c_out + co] = v;
        }
    }
    let w = &wt[..];
    dx.par_chunks_mut(l.group * l.in_img)
        .zip(dy.par_chunks(l.group * l.out_img))
        .for_each_init(
            || (Scratch::default(), Scratch::default()),
            |(cols, dy_cm), (dx_g, dy_g)| {
                let width = dy_g.len() / l.out_img * l.p;
                let dy_cm = as_channel_major(dy_g, s.c_out, l.p, dy_cm);
                // cols_g [K × G·P] = Wᵀ [K × c_out] · dY_g [c_out × G·P]
                let g = GemmShape {
                    m: l.k,
                    n: width,
                    k: s.c_out,
                    trans_a: false,
                    trans_b: false,
                };
                let cols = cols.get(l.k * width);
                gemm(&g, w, dy_cm, cols, false);
                for (g, dx_n) in dx_g.chunks_exact_mut(l.in_img).enumerate() {
                    col2im(&cols[g * l.p..], s, dx_n, width);
                }
            },
        );
    pool::recycle(wt);
    dx
}

/// dw from x and dy: dw `[c_out, c_in, kh, kw]` = Σ_n dy_n · cols_nᵀ. Bit-reproducible: the batch
/// split and the order of summation depend on the shape only (see the module doc).
pub fn conv2d_backward_weight(x: &[f32], dy: &[f32], s: &Conv2dShape) -> Vec<f32> {
    let (x_len, w_len, y_len) = s.sizes();
    debug_assert!(
        x.len() >= x_len && dy.len() >= y_len,
        "conv2d_backward_weight: short input"
    );
    let l = Lowering::new(s);
    if l.trivial(s) {
        return pool::zeros(w_len);
    }
    let (x, dy) = (&x[..x_len], &dy[..y_len]);
    let per_range = weight_range(s);
    let partials = x
        .par_chunks(per_range * l.in_img)
        .zip(dy.par_chunks(per_range * l.out_img))
        .map(|(x_r, dy_r)| weight_grad_range(&l, s, x_r, dy_r, None))
        .collect();
    sum_partials(partials)
}

/// [`conv2d`]`(x, w)` and [`conv2d_backward_weight`]`(x, dy)` in one pass, lowering each group
/// of `x` once for both products: what a transposed convolution's backward needs (its input
/// gradient is conv2d of its output gradient, its weight gradient backward-weight of the same).
/// Each result equals its op's alone: the weight gradient bit for bit, the output to rounding
/// (its groups are cut within the weight ranges rather than across the whole batch).
pub fn conv2d_with_weight_grad(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    s: &Conv2dShape,
) -> (Vec<f32>, Vec<f32>) {
    let (x_len, w_len, y_len) = s.sizes();
    debug_assert!(
        x.len() >= x_len && w.len() >= w_len && dy.len() >= y_len,
        "conv2d_with_weight_grad: short input"
    );
    let mut y = pool::zeros(y_len);
    let l = Lowering::new(s);
    if l.trivial(s) {
        return (y, pool::zeros(w_len));
    }
    let (x, w, dy) = (&x[..x_len], &w[..w_len], &dy[..y_len]);
    let per_range = weight_range(s);
    let partials = x
        .par_chunks(per_range * l.in_img)
        .zip(dy.par_chunks(per_range * l.out_img))
        .zip(y.par_chunks_mut(per_range * l.out_img))
        .map(|((x_r, dy_r), y_r)| weight_grad_range(&l, s, x_r, dy_r, Some((w, y_r))))
        .collect();
    (y, sum_partials(partials))
}

/// Images per range of backward-weight's batch split: at most [`MAX_WEIGHT_PARTIALS`] ranges.
fn weight_range(s: &Conv2dShape) -> usize {
    s.n.div_ceil(s.n.min(MAX_WEIGHT_PARTIALS))
}

/// The partial weight gradient of one range of images (`x_r`, `dy_r`), group by group in image
/// order; with `forward = Some((w, y_r))` also the range's conv2d output from the same `cols`.
fn weight_grad_range(
    l: &Lowering,
    s: &Conv2dShape,
    x_r: &[f32],
    dy_r: &[f32],
    mut forward: Option<(&[f32], &mut [f32])>,
) -> Vec<f32> {
    let mut dw = pool::zeros(s.c_out * l.k);
    let (mut cols, mut dy_cm, mut out) =
        (Scratch::default(), Scratch::default(), Scratch::default());
    let groups = x_r
        .chunks(l.group * l.in_img)
        .zip(dy_r.chunks(l.group * l.out_img));
    for (i, (x_g, dy_g)) in groups.enumerate() {
        let (cols, width) = l.lower(x_g, s, &mut cols);
        if let Some((w, y_r)) = forward.as_mut() {
            let y_g = &mut y_r[i * l.group * l.out_img..][..dy_g.len()];
            forward_group(l, s, w, cols, width, y_g, &mut out);
        }
        let dy_cm = as_channel_major(dy_g, s.c_out, l.p, &mut dy_cm);
        // dW [c_out × K] += dY_g [c_out × G·P] · cols_gᵀ [G·P × K]   (cols_g stored K × G·P)
        let g = GemmShape {
            m: s.c_out,
            n: l.k,
            k: width,
            trans_a: false,
            trans_b: true,
        };
        gemm(&g, dy_cm, cols, &mut dw, true);
    }
    dw
}

/// dW = p_0 + p_1 + … in range order; element blocks in parallel, the same order in each.
fn sum_partials(mut partials: Vec<Vec<f32>>) -> Vec<f32> {
    let mut dw = partials.remove(0);
    const BLOCK: usize = 4096;
    dw.par_chunks_mut(BLOCK).enumerate().for_each(|(b, d)| {
        for part in &partials {
            for (d, &v) in d.iter_mut().zip(&part[b * BLOCK..]) {
                *d += v;
            }
        }
    });
    partials.into_iter().for_each(pool::recycle);
    dw
}

/// y = conv2d(x, w) as plain loops straight from the definition (test oracle).
pub fn conv2d_reference(x: &[f32], w: &[f32], s: &Conv2dShape) -> Vec<f32> {
    let mut y = vec![0.0; s.sizes().2];
    for n in 0..s.n {
        for co in 0..s.c_out {
            for oh in 0..s.h_out {
                for ow in 0..s.w_out {
                    let mut acc = 0.0;
                    for ci in 0..s.c_in {
                        for i in 0..s.kh {
                            for j in 0..s.kw {
                                let ih = (oh * s.stride + i) as isize - s.padding as isize;
                                let iw = (ow * s.stride + j) as isize - s.padding as isize;
                                if ih < 0 || iw < 0 || ih >= s.h as isize || iw >= s.w as isize {
                                    continue;
                                }
                                acc += x
                                    [((n * s.c_in + ci) * s.h + ih as usize) * s.w + iw as usize]
                                    * w[((co * s.c_in + ci) * s.kh + i) * s.kw + j];
                            }
                        }
                    }
                    y[((n * s.c_out + co) * s.h_out + oh) * s.w_out + ow] = acc;
                }
            }
        }
    }
    y
}

/// dx from dy as plain loops (test oracle).
pub fn conv2d_backward_input_reference(dy: &[f32], w: &[f32], s: &Conv2dShape) -> Vec<f32> {
    let mut dx = vec![0.0; s.sizes().0];
    for n in 0..s.n {
        for co in 0..s.c_out {
            for oh in 0..s.h_out {
                for ow in 0..s.w_out {
                    let g = dy[((n * s.c_out + co) * s.h_out + oh) * s.w_out + ow];
                    for ci in 0..s.c_in {
                        for i in 0..s.kh {
                            for j in 0..s.kw {
                                let ih = (oh * s.stride + i) as isize - s.padding as isize;
                                let iw = (ow * s.stride + j) as isize - s.padding as isize;
                                if ih < 0 || iw < 0 || ih >= s.h as isize || iw >= s.w as isize {
                                    continue;
                                }
                                dx[((n * s.c_in + ci) * s.h + ih as usize) * s.w + iw as usize] +=
                                    g * w[((co * s.c_in + ci) * s.kh + i) * s.kw + j];
                            }
                        }
                    }
                }
            }
        }
    }
    dx
}

/// dw from x and dy as plain loops (test oracle).
pub fn conv2d_backward_weight_reference(x: &[f32], dy: &[f32], s: &Conv2dShape) -> Vec<f32> {
    let mut dw = vec![0.0; s.sizes().1];
    for n in 0..s.n {
        for co in 0..s.c_out {
            for oh in 0..s.h_out {
                for ow in 0..s.w_out {
                    let g = dy[((n * s.c_out + co) * s.h_out + oh) * s.w_out + ow];
                    for ci in 0..s.c_in {
                        for i in 0..s.kh {
                            for j in 0..s.kw {
                                let ih = (oh * s.stride + i) as isize - s.padding as isize;
                                let iw = (ow * s.stride + j) as isize - s.padding as isize;
                                if ih < 0 || iw < 0 || ih >= s.h as isize || iw >= s.w as isize {
                                    continue;
                                }
                                dw[((co * s.c_in + ci) * s.kh + i) * s.kw + j] += g * x
                                    [((n * s.c_in + ci) * s.h + ih as usize) * s.w + iw as usize];
                            }
                        }
                    }
                }
            }
        }
    }
    dw
}

#[cfg(test)]
mod tests {
    //! Fast kernels against the reference loops, and the adjoint identities that tie the three
    //! kernels together. Bounds: kernels vs reference, relative error ‖a − b‖₂ / ‖b‖₂ ≤ 1e-5 (f32
    //! sums of at most a few hundred terms in a different order land around 1e-7), every output
    //! finite; adjoint identities, |lhs − rhs| ≤ 1e-5 · Σ|terms| (see `dot`: relative to the value
    //! itself the check is ill-posed when the inner product nearly cancels).
    use super::*;
    use crate::rng::Rng;

    const TOL: f64 = 1e-5;

    #[allow(clippy::too_many_arguments)]
    fn shape(
        n: usize,
        c_in: usize,
        c_out: usize,
        h: usize,
        w: usize,
        (kh, kw): (usize, usize),
        stride: usize,
        padding: usize,
    ) -> Conv2dShape {
        Conv2dShape {
            n,
            c_in,
            h,
            w,
            c_out,
            kh,
            kw,
            stride,
            padding,
            h_out: (h + 2 * padding - kh) / stride + 1,
            w_out: (w + 2 * padding - kw) / stride + 1,
        }
    }

    /// The shapes the brief asks for, plus a few that exercise other paths.
    fn shapes() -> Vec<(&'static str, Conv2dShape)> {
        vec![
            (
                "enc1 n3 1->32 28x28 k4 s2 p1",
                shape(3, 1, 32, 28, 28, (4, 4), 2, 1),
            ),
            (
                "enc2 n2 32->64 14x14 k4 s2 p1",
                shape(2, 32, 64, 14, 14, (4, 4), 2, 1),
            ),
            (
                "odd n1 3->5 7x9 k3 s1 p0",
                shape(1, 3, 5, 7, 9, (3, 3), 1, 0),
            ),
            ("n2 2->3 5x5 k3 s2 p1", shape(2, 2, 3, 5, 5, (3, 3), 2, 1)),
            ("n1 1->1 1x1 k1 s1 p0", shape(1, 1, 1, 1, 1, (1, 1), 1, 0)),
            (
                "kernel > input n1 2->2 2x2 k3 s1 p1",
                shape(1, 2, 2, 2, 2, (3, 3), 1, 1),
            ),
            (
                "stride 3 n2 2->3 10x8 k3 s3 p1",
                shape(2, 2, 3, 10, 8, (3, 3), 3, 1),
            ),
            (
                "stride 3 no pad n1 3->2 11x11 k2 s3 p0",
                shape(1, 3, 2, 11, 11, (2, 2), 3, 0),
            ),
            ("1x1 n2 4->3 5x6", shape(2, 4, 3, 5, 6, (1, 1), 1, 0)),
            ("1x1 s2 p1 n2 3->2 5x6", shape(2, 3, 2, 5, 6, (1, 1), 2, 1)),
            (
                "non-square k2x3 n2 3->2 6x7 s2 p1",
                shape(2, 3, 2, 6, 7, (2, 3), 2, 1),
            ),
            // P = 196 goes one image at a time; P = 49 groups 11 images (11, 11, then 3).
            (
                "enc1 n7 1->32 28x28 k4 s2 p1",
                shape(7, 1, 32, 28, 28, (4, 4), 2, 1),
            ),
            (
                "enc2 n25 32->64 14x14 k4 s2 p1",
                shape(25, 32, 64, 14, 14, (4, 4), 2, 1),
            ),
            (
                "uneven batch n37 2->3 6x6 k3 s1 p1",
                shape(37, 2, 3, 6, 6, (3, 3), 1, 1),
            ),
            (
                "padding 2 n2 2->2 4x5 k3 s1 p2",
                shape(2, 2, 2, 4, 5, (3, 3), 1, 2),
            ),
        ]
    }

    fn randn(rng: &mut Rng, len: usize) -> Vec<f32> {
        (0..len).map(|_| rng.normal()).collect()
    }

    /// (x, w, dy) of the right sizes for `s`.
    fn inputs(s: &Conv2dShape, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (xl, wl, yl) = s.sizes();
        let mut rng = Rng::new(seed, 0);
        (
            randn(&mut rng, xl),
            randn(&mut rng, wl),
            randn(&mut rng, yl),
        )
    }

    /// ‖a − b‖₂ / ‖b‖₂ in f64, after checking lengths and finiteness.
    fn rel_err(what: &str, a: &[f32], b: &[f32]) -> f64 {
        assert_eq!(a.len(), b.len(), "{what}: length");
        assert!(a.iter().all(|v| v.is_finite()), "{what}: non-finite output");
        let (mut num, mut den) = (0.0f64, 0.0f64);
        for (&x, &y) in a.iter().zip(b) {
            num += (x as f64 - y as f64).powi(2);
            den += (y as f64).powi(2);
        }
        assert!(den > 0.0, "{what}: reference is all zeros, test is vacuous");
        (num / den).sqrt()
    }

    /// (<a, b>, Σ|a_i·b_i|) in f64. The second is the scale a rounding error of the dot product
    /// is measured against: f32 inputs carry ~1e-7 relative error per element, so the error of
    /// <a, b> is ~1e-7·Σ|a_i·b_i|, whereas <a, b> itself can be near 0 by cancellation.
    fn dot(a: &[f32], b: &[f32]) -> (f64, f64) {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).fold((0.0, 0.0), |(d, s), (&x, &y)| {
            let p = x as f64 * y as f64;
            (d + p, s + p.abs())
        })
    }

    /// |<·,·>₁ − <·,·>₂| / max(Σ|terms|₁, Σ|terms|₂): both sides of an adjoint identity, relative
    /// to the magnitude of the terms (see [`dot`]).
    fn rel_diff((a, sa): (f64, f64), (b, sb): (f64, f64)) -> f64 {
        let scale = sa.max(sb);
        assert!(a.is_finite() && b.is_finite() && scale > 0.0);
        (a - b).abs() / scale
    }

    #[test]
    fn conv_forward_matches_reference() {
        for (seed, (name, s)) in shapes().into_iter().enumerate() {
            let (x, w, _) = inputs(&s, seed as u64);
            let e = rel_err(name, &conv2d(&x, &w, &s), &conv2d_reference(&x, &w, &s));
            assert!(e <= TOL, "{name}: forward rel err {e:e}");
        }
    }

    #[test]
    fn conv_backward_input_matches_reference() {
        for (seed, (name, s)) in shapes().into_iter().enumerate() {
            let (_, w, dy) = inputs(&s, 100 + seed as u64);
            let fast = conv2d_backward_input(&dy, &w, &s);
            let e = rel_err(name, &fast, &conv2d_backward_input_reference(&dy, &w, &s));
            assert!(e <= TOL, "{name}: backward-input rel err {e:e}");
        }
    }

    #[test]
    fn conv_backward_weight_matches_reference() {
        for (seed, (name, s)) in shapes().into_iter().enumerate() {
            let (x, _, dy) = inputs(&s, 200 + seed as u64);
            let fast = conv2d_backward_weight(&x, &dy, &s);
            let e = rel_err(name, &fast, &conv2d_backward_weight_reference(&x, &dy, &s));
            assert!(e <= TOL, "{name}: backward-weight rel err {e:e}");
        }
    }

    /// The one-pass pair equals its two ops: the weight gradient bit for bit (same ranges, same
    /// groups, same order), the output within the kernels' bound of the reference.
    #[test]
    fn conv_with_weight_grad_matches_the_separate_ops() {
        for (seed, (name, s)) in shapes().into_iter().enumerate() {
            let (x, w, dy) = inputs(&s, 500 + seed as u64);
            let (y, dw) = conv2d_with_weight_grad(&x, &w, &dy, &s);
            assert_eq!(
                dw,
                conv2d_backward_weight(&x, &dy, &s),
                "{name}: weight grad"
            );
            let e = rel_err(name, &y, &conv2d_reference(&x, &w, &s));
            assert!(e <= TOL, "{name}: forward rel err {e:e}");
        }
    }

    /// <conv2d(x; w), y> == <x, conv2d_backward_input(y; w)>: backward-input is the adjoint.
    #[test]
    fn conv_backward_input_is_adjoint_of_forward() {
        for (seed, (name, s)) in shapes().into_iter().enumerate() {
            let (x, w, y) = inputs(&s, 300 + seed as u64);
            let lhs = dot(&conv2d(&x, &w, &s), &y);
            let rhs = dot(&x, &conv2d_backward_input(&y, &w, &s));
            let e = rel_diff(rhs, lhs);
            assert!(e <= TOL, "{name}: <Ax,y>={lhs:?} <x,A'y>={rhs:?} rel {e:e}");
        }
    }

    /// conv2d is linear in w, so <dw(x, dy), v> == <conv2d(x; v), dy> for every v.
    #[test]
    fn conv_backward_weight_is_derivative_of_forward() {
        for (seed, (name, s)) in shapes().into_iter().enumerate() {
            let (x, v, dy) = inputs(&s, 400 + seed as u64);
            let lhs = dot(&conv2d_backward_weight(&x, &dy, &s), &v);
            let rhs = dot(&conv2d(&x, &v, &s), &dy);
            let e = rel_diff(lhs, rhs);
            assert!(
                e <= TOL,
                "{name}: <dw,v>={lhs:?} <conv(x;v),dy>={rhs:?} rel {e:e}"
            );
        }
    }

    /// backward-weight sums over the batch in an order fixed by the shape: bit-identical across
    /// runs and thread counts. Forward and backward-input are per-image, so likewise.
    #[test]
    fn conv_results_are_bit_reproducible_across_thread_counts() {
        let s = shape(37, 3, 4, 9, 9, (3, 3), 2, 1);
        let (x, w, dy) = inputs(&s, 7);
        let run = || {
            (
                conv2d(&x, &w, &s),
                conv2d_backward_input(&dy, &w, &s),
                conv2d_backward_weight(&x, &dy, &s),
                conv2d_with_weight_grad(&x, &w, &dy, &s),
            )
        };
        let default = run();
        assert_eq!(default, run(), "two runs differ");
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("thread pool");
            assert_eq!(default, pool.install(run), "{threads} threads differ");
        }
    }

    /// Degenerate but consistent shapes give zeros of the right size instead of panicking.
    #[test]
    fn conv_degenerate_shapes_give_zeros() {
        let cases = [
            shape(0, 2, 3, 5, 5, (3, 3), 1, 1), // empty batch
            shape(2, 0, 3, 5, 5, (3, 3), 1, 1), // no input channels
            shape(2, 2, 0, 5, 5, (3, 3), 1, 1), // no output channels
            shape(1, 2, 3, 0, 0, (2, 2), 1, 1), // empty image, padding only
        ];
        for s in cases {
            let (x, w, dy) = inputs(&s, 9);
            let (xl, wl, yl) = s.sizes();
            let y = conv2d(&x, &w, &s);
            let dx = conv2d_backward_input(&dy, &w, &s);
            let dw = conv2d_backward_weight(&x, &dy, &s);
            assert_eq!(
                (y.clone(), dw.clone()),
                conv2d_with_weight_grad(&x, &w, &dy, &s)
            );
            assert_eq!((y.len(), dx.len(), dw.len()), (yl, xl, wl), "{s:?}");
            assert_eq!(y, conv2d_reference(&x, &w, &s), "{s:?}");
            assert_eq!(dx, conv2d_backward_input_reference(&dy, &w, &s), "{s:?}");
            assert_eq!(dw, conv2d_backward_weight_reference(&x, &dy, &s), "{s:?}");
        }
    }

    #[test]
    fn conv_valid_range_bounds() {
        // w = 5, pad 1, stride 2, tap 0: o·2 − 1 ∈ [0, 5) ⇒ o ∈ {1, 2}
        assert_eq!(valid_range(5, 3, 2, 0, 1), (1, 3));
        // tap 3 with pad 1 on a 2-wide input, stride 1: o + 2 ∈ [0, 2) ⇒ none
        assert_eq!(valid_range(2, 2, 1, 3, 1), (0, 0));
        // empty input: whatever the bounds, the range is empty
        let (lo, hi) = valid_range(0, 1, 1, 0, 1);
        assert_eq!(lo, hi);
        // everything valid
        assert_eq!(valid_range(7, 5, 1, 2, 0), (0, 5));
    }
}

//! Image grids of a trained generative model, written as 8-bit PNG (`ssvae sample`):
//!
//! * [`class_grid`]: one row per class y (or mixture component), one column per z ~ N(0, I)
//!   (the same z down a column, so a column shows one "style" across classes), each tile
//!   p(x | y, z) (Kingma et al. 2014, figure 1);
//! * [`prior_grid`]: for a model whose prior has no class (vae, m1), rows × columns of
//!   independent z ~ N(0, I) decoded through p(x | z);
//! * [`analogy_grid`]: one row per test image x, its style z = μ(x, y_true) of q(z|x,y)
//!   decoded with every class y; the first column is x itself (the analogies of the same
//!   paper);
//! * [`reconstruction_grid`]: rows of test images, each followed by a row of their
//!   reconstructions ([`Model::reconstruct`]).
//!
//! Every decoded tile is the mean of the Bernoulli p(x | …), the sigmoid of the logits.
//!
//! Tiles are separated by 1-pixel white gaps. One-channel images become a grey PNG, three
//! channels (CIFAR-10, CHW) an RGB one.

use super::in_eval_mode;
use crate::data::Dataset;
use crate::models::{Model, ModelSpec};
use crate::rng::Rng;
use crate::{memory, Device, Error, Result, Tensor};
#[cfg(feature = "png")]
use std::path::Path;

/// The grey level of the gaps between tiles.
const GAP: u8 = 255;

/// `rows × cols` images of `channels × height × width` values in [0, 1], row-major, each in
/// CHW order.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    pub rows: usize,
    pub cols: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub pixels: Vec<f32>,
}

impl Grid {
    /// The grid with every tile enlarged `factor` times (nearest neighbour; gaps stay 1 pixel),
    /// for small images such as the 8×8 digits; refused by [`check_size`] when the result
    /// would not fit in memory.
    pub fn scaled(&self, factor: usize) -> Result<Grid> {
        let f = factor.max(1);
        let (c, h, w) = (self.channels, self.height, self.width);
        check_size(self.rows, self.cols, (c, h, w), f)?;
        let tiles = self.pixels.len() / (c * h * w).max(1);
        let mut pixels = memory::try_vec(self.pixels.len() * f * f, || {
            format!("a grid enlarged {f} times")
        })?;
        for t in 0..tiles {
            for ch in 0..c {
                let plane = &self.pixels[(t * c + ch) * h * w..][..h * w];
                for y in 0..h * f {
                    let row = &plane[(y / f) * w..][..w];
                    pixels.extend((0..w * f).map(|x| row[x / f]));
                }
            }
        }
        Ok(Grid {
            height: h * f,
            width: w * f,
            pixels,
            ..self.clone()
        })
    }

    /// The PNG's width and height: tiles plus 1-pixel gaps between them.
    pub fn image_size(&self) -> (usize, usize) {
        (
            self.cols * self.width + self.cols.saturating_sub(1),
            self.rows * self.height + self.rows.saturating_sub(1),
        )
    }

    /// The image as 8-bit samples, interleaved per pixel (grey, or RGB for three channels).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let (c, h, w) = (self.channels, self.height, self.width);
        if c != 1 && c != 3 {
            return Err(Error::invalid(
                "grid",
                format!("{c} channels: only grey (1) and RGB (3) images can be written"),
            ));
        }
        let tile = c * h * w;
        if self.pixels.len() != self.rows * self.cols * tile {
            return Err(Error::invalid(
                "grid",
                format!(
                    "{} values for {}×{} tiles of {tile}",
                    self.pixels.len(),
                    self.rows,
                    self.cols
                ),
            ));
        }
        let (iw, ih) = self.image_size();
        check_size(self.rows, self.cols, (c, h, w), 1)?;
        let mut out = memory::try_filled(iw * ih * c, GAP, || {
            format!("a {iw}×{ih}-pixel image of {c} channels")
        })?;
        for r in 0..self.rows {
            for col in 0..self.cols {
                let t = &self.pixels[(r * self.cols + col) * tile..][..tile];
                let (y0, x0) = (r * (h + 1), col * (w + 1));
                for y in 0..h {
                    for x in 0..w {
                        for ch in 0..c {
                            let v = t[ch * h * w + y * w + x];
                            let b = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                            out[((y0 + y) * iw + x0 + x) * c + ch] = b;
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Encode as PNG bytes (cargo feature `png`).
    #[cfg(feature = "png")]
    pub fn to_png(&self) -> Result<Vec<u8>> {
        let (iw, ih) = self.image_size();
        crate::png_image::encode("grid", iw, ih, self.channels, &self.to_bytes()?)
    }

    /// Write as a PNG file (atomically: a temporary file renamed into place; feature `png`).
    #[cfg(feature = "png")]
    pub fn write_png(&self, path: &Path) -> Result<()> {
        let (iw, ih) = self.image_size();
        crate::png_image::write(path, "grid", iw, ih, self.channels, &self.to_bytes()?)
    }
}

/// Bytes per sample of a grid at its peak while it is written as PNG: the scaled f32 pixels,
/// the 8-bit image, and the PNG (at most about one byte per sample).
const PEAK_BYTES_PER_SAMPLE: usize = 4 + 1 + 1;

/// Refuses a grid of `rows × cols` tiles of `input` (channels, height, width) enlarged `scale`
/// times whose memory at its peak (6 bytes per sample: the scaled f32 pixels, the 8-bit image
/// and the PNG) would exceed the machine's; `ssvae sample` asks before drawing anything.
pub fn check_size(
    rows: usize,
    cols: usize,
    input: (usize, usize, usize),
    scale: usize,
) -> Result<()> {
    let (c, h, w) = input;
    let bytes = memory::bytes_of_dims(&[rows, cols, c, h, scale, w, scale], PEAK_BYTES_PER_SAMPLE);
    memory::check(bytes, || {
        // f64: the sides of an absurd grid need not fit an integer.
        let side = |n: usize, px: usize| n as f64 * px as f64 * scale as f64 + n as f64 - 1.0;
        format!(
            "a grid of {rows}×{cols} tiles of {c}×{h}×{w} pixels enlarged {scale} times ({:.0}×{:.0} pixels)",
            side(cols, w),
            side(rows, h)
        )
    })
}

/// Class-conditional samples of `model` (built from `spec`): a row per class in `classes`, a
/// column per z ~ N(0, I) drawn from `rng`, decoded with [`Model::decode_class`] and a sigmoid.
pub fn class_grid(
    model: &dyn Model,
    spec: &ModelSpec,
    classes: &[usize],
    cols: usize,
    rng: &mut Rng,
    device: Device,
) -> Result<Grid> {
    let (num_classes, z_dim) = (spec.classes, spec.z_dim);
    if classes.is_empty() || cols == 0 {
        return Err(Error::invalid(
            "sample",
            "a grid needs at least one row and one column",
        ));
    }
    if let Some(&c) = classes.iter().find(|&&c| c >= num_classes) {
        return Err(Error::invalid(
            "sample",
            format!("class {c} is not below the model's {num_classes} classes"),
        ));
    }
    in_eval_mode(model, || {
        let z = Tensor::randn([cols, z_dim], rng.next_key(cols * z_dim), device)?;
        let z = z.repeat_rows(classes.len())?;
        let ys: Vec<u32> = classes
            .iter()
            .flat_map(|&c| std::iter::repeat_n(c as u32, cols))
            .collect();
        let y = Tensor::one_hot(&ys, num_classes, device)?;
        let x = model.decode_class(&z, &y)?.sigmoid()?;
        grid_of(x.to_vec()?, classes.len(), cols, spec.input)
    })
}

/// Samples of a model whose prior is p(z) = N(0, I) ([`crate::models::Prior::Standard`]):
/// `rows × cols` independent draws from `rng`, decoded with [`Model::decode_prior`].
pub fn prior_grid(
    model: &dyn Model,
    spec: &ModelSpec,
    rows: usize,
    cols: usize,
    rng: &mut Rng,
    device: Device,
) -> Result<Grid> {
    if rows == 0 || cols == 0 {
        return Err(Error::invalid(
            "sample",
            "a grid needs at least one row and one column",
        ));
    }
    let n = rows * cols;
    in_eval_mode(model, || {
        let z = Tensor::randn([n, spec.z_dim], rng.next_key(n * spec.z_dim), device)?;
        let x = model.decode_prior(&z)?.sigmoid()?;
        grid_of(x.to_vec()?, rows, cols, spec.input)
    })
}

/// Reconstructions: the test examples `indices` of `ds`, `cols` to a row, each row of images
/// followed by the row of their reconstructions (so `2 · indices.len() / cols` rows).
pub fn reconstruction_grid(
    model: &dyn Model,
    ds: &Dataset,
    indices: &[usize],
    cols: usize,
    device: Device,
) -> Result<Grid> {
    if indices.is_empty() || cols == 0 || !indices.len().is_multiple_of(cols) {
        return Err(Error::invalid(
            "sample",
            format!("{} images do not fill rows of {cols}", indices.len()),
        ));
    }
    in_eval_mode(model, || {
        let (x, _) = super::batch_tensor(ds, indices, device)?;
        let rec = model.reconstruct(&x)?.sigmoid()?.to_vec()?;
        let xs = x.to_vec()?;
        let row = cols * ds.dim();
        let pixels: Vec<f32> = xs
            .chunks(row)
            .zip(rec.chunks(row))
            .flat_map(|(orig, rec)| orig.iter().chain(rec).copied())
            .collect();
        let rows = 2 * indices.len() / cols;
        grid_of(pixels, rows, cols, (ds.channels, ds.height, ds.width))
    })
}

/// Analogies: for each test example `indices[i]` of `ds`, a row with the image itself and
/// then its style μ(x, y_true) decoded with every class.
pub fn analogy_grid(
    model: &dyn Model,
    ds: &Dataset,
    indices: &[usize],
    num_classes: usize,
    device: Device,
) -> Result<Grid> {
    if indices.is_empty() {
        return Err(Error::invalid(
            "sample",
            "an analogy grid needs at least one row",
        ));
    }
    in_eval_mode(model, || {
        let (x, y) = super::batch_tensor(ds, indices, device)?;
        let style = model.style(&x, &Tensor::one_hot(&y, num_classes, device)?)?;
        let z = style.repeat_interleave(num_classes)?;
        let ys: Vec<u32> = (0..indices.len())
            .flat_map(|_| 0..num_classes as u32)
            .collect();
        let gen = model
            .decode_class(&z, &Tensor::one_hot(&ys, num_classes, device)?)?
            .sigmoid()?
            .to_vec()?;
        let d = ds.dim();
        let xs = x.to_vec()?;
        let mut pixels = Vec::with_capacity(indices.len() * (num_classes + 1) * d);
        for i in 0..indices.len() {
            pixels.extend_from_slice(&xs[i * d..(i + 1) * d]);
            pixels.extend_from_slice(&gen[i * num_classes * d..(i + 1) * num_classes * d]);
        }
        grid_of(
            pixels,
            indices.len(),
            num_classes + 1,
            (ds.channels, ds.height, ds.width),
        )
    })
}

/// A grid of `rows × cols` tiles of `shape` from their pixels, row by row.
fn grid_of(
    pixels: Vec<f32>,
    rows: usize,
    cols: usize,
    shape: (usize, usize, usize),
) -> Result<Grid> {
    let (channels, height, width) = shape;
    if pixels.len() != rows * cols * channels * height * width {
        return Err(Error::invalid(
            "sample",
            format!(
                "the decoder gave {} values for {rows}×{cols} images of {channels}×{height}×{width}",
                pixels.len()
            ),
        ));
    }
    Ok(Grid {
        rows,
        cols,
        channels,
        height,
        width,
        pixels,
    })
}

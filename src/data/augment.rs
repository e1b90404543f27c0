//! Data augmentation of training batches: random translation of images and dynamic
//! binarisation.
//!
//! [`random_shift`] moves every image of a batch by its own offset (dy, dx), each drawn
//! uniformly from {−s, …, s}; pixels shifted in from outside the image are 0 and pixels shifted
//! out are lost. That is torchvision's `RandomCrop(size, padding = s)` with zero fill: pad by s
//! on every side, then crop a window of the original size at a uniform position. All channels
//! of an image move together.
//!
//! Why: with 100 labels, a semi-supervised model sees each labelled digit hundreds of times per
//! epoch; small translations are the standard way to stop it memorising their exact pixels
//! (SHOT-VAE's reference code pads and crops its CIFAR inputs by 4). Training only: evaluation
//! always sees the images as they are. The trainer draws the offsets from its own generator
//! (the checkpointed training stream), so augmented runs are deterministic and resume exactly.
//!
//! [`binarize`] replaces every pixel intensity p ∈ [0, 1] by a fresh Bernoulli(p) draw, 1 with
//! probability p, else 0: "dynamically binarised MNIST" (Salakhutdinov and Murray 2008; the
//! setting of Kingma et al.'s M1 code, `bernoulli_x=True`), in which the Bernoulli decoder
//! models the binary images it is trained on, and every epoch sees another binarisation of
//! each image. Training only, after the shift; evaluation sees the grey levels, each the
//! expectation of its binarisations. Drawn from the training stream as well.

use crate::rng::{block, u32_to_unit, Rng};
use crate::{Error, Result};

/// Refuses a shift that could move an image entirely out of its frame: `max_shift` must be
/// below both the height and the width of `shape` = (channels, height, width).
pub fn check_shift(max_shift: usize, shape: (usize, usize, usize)) -> Result<()> {
    let (_, h, w) = shape;
    if max_shift >= h.min(w) {
        return Err(Error::invalid(
            "--augment-shift",
            format!(
                "a shift of {max_shift} pixels can move a {h}×{w} image out of its frame; it must be below {}",
                h.min(w)
            ),
        ));
    }
    Ok(())
}

/// Translates one image `src` (CHW, `shape` = (c, h, w)) by `dy` rows down and `dx` columns
/// right into `dst`: dst[ch, i, j] = src[ch, i − dy, j − dx] where that lies inside the image,
/// 0 elsewhere.
pub fn translate(src: &[f32], dst: &mut [f32], shape: (usize, usize, usize), dy: isize, dx: isize) {
    let (c, h, w) = shape;
    debug_assert!(src.len() == c * h * w && dst.len() == c * h * w);
    dst.fill(0.0);
    // Destination rows/columns whose source lies inside the image.
    let rows = dy.max(0) as usize..(h as isize + dy.min(0)).max(0) as usize;
    let cols = dx.max(0) as usize..(w as isize + dx.min(0)).max(0) as usize;
    if cols.is_empty() {
        return;
    }
    let (src_col0, width) = ((cols.start as isize - dx) as usize, cols.len());
    for ch in 0..c {
        for i in rows.clone() {
            let si = (i as isize - dy) as usize;
            let d = (ch * h + i) * w + cols.start;
            let s = (ch * h + si) * w + src_col0;
            dst[d..d + width].copy_from_slice(&src[s..s + width]);
        }
    }
}

/// Shifts each record of `x` (rows of c·h·w values, `shape` = (c, h, w)) in place by its own
/// offset (dy, dx), each uniform on {−max_shift, …, max_shift}, drawn from `rng` (dy then dx,
/// record by record). `max_shift` = 0 leaves `x` alone and draws nothing.
pub fn random_shift(
    x: &mut [f32],
    shape: (usize, usize, usize),
    max_shift: usize,
    rng: &mut Rng,
) -> Result<()> {
    let (c, h, w) = shape;
    let dim = c * h * w;
    if dim == 0 || !x.len().is_multiple_of(dim) {
        return Err(Error::invalid(
            "random_shift",
            format!("{} values are not whole records of {c}×{h}×{w}", x.len()),
        ));
    }
    if max_shift == 0 {
        return Ok(());
    }
    check_shift(max_shift, shape)?;
    let span = 2 * max_shift + 1;
    let mut shifted = vec![0.0f32; dim];
    for record in x.chunks_exact_mut(dim) {
        let dy = rng.below(span) as isize - max_shift as isize;
        let dx = rng.below(span) as isize - max_shift as isize;
        translate(record, &mut shifted, shape, dy, dx);
        record.copy_from_slice(&shifted);
    }
    Ok(())
}

/// Dynamic binarisation of `x` in place: each value p becomes 1 with probability p, else 0
/// (values at or below 0 always become 0, at or above 1 always 1), one uniform per value drawn
/// from `rng` by counter: value i uses element i of one key,
/// [`uniform_at`](crate::rng::uniform_at)`(key, i)`, taken here four at a time from each
/// Philox block (one block per four pixels, not per pixel).
pub fn binarize(x: &mut [f32], rng: &mut Rng) {
    let key = rng.next_key(x.len());
    for (j, four) in x.chunks_mut(4).enumerate() {
        let words = block(key, key.offset + j as u64);
        for (v, w) in four.iter_mut().zip(words) {
            *v = if u32_to_unit(w) < *v { 1.0 } else { 0.0 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2×3×4 image whose values name their position: 100·ch + 10·i + j (+1, so none is 0).
    fn labelled_image() -> Vec<f32> {
        let mut v = Vec::new();
        for ch in 0..2 {
            for i in 0..3 {
                for j in 0..4 {
                    v.push((100 * ch + 10 * i + j + 1) as f32);
                }
            }
        }
        v
    }

    #[test]
    fn translate_moves_every_channel_and_fills_with_zero() {
        let src = labelled_image();
        let mut dst = vec![f32::NAN; src.len()];
        translate(&src, &mut dst, (2, 3, 4), 1, -2);
        #[rustfmt::skip]
        let want = vec![
            0.0, 0.0, 0.0, 0.0,
            3.0, 4.0, 0.0, 0.0,
            13.0, 14.0, 0.0, 0.0,
            0.0, 0.0, 0.0, 0.0,
            103.0, 104.0, 0.0, 0.0,
            113.0, 114.0, 0.0, 0.0,
        ];
        assert_eq!(dst, want);
        translate(&src, &mut dst, (2, 3, 4), 0, 0);
        assert_eq!(dst, src);
        // Every pixel shifted out: all zero.
        translate(&src, &mut dst, (2, 3, 4), 0, 4);
        assert!(dst.iter().all(|&v| v == 0.0));
        translate(&src, &mut dst, (2, 3, 4), -3, 0);
        assert!(dst.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn translate_matches_the_definition_for_every_offset() {
        let src = labelled_image();
        let (c, h, w) = (2usize, 3usize, 4usize);
        let mut dst = vec![0.0; src.len()];
        for dy in -3..=3isize {
            for dx in -4..=4isize {
                translate(&src, &mut dst, (c, h, w), dy, dx);
                for ch in 0..c {
                    for i in 0..h as isize {
                        for j in 0..w as isize {
                            let (si, sj) = (i - dy, j - dx);
                            let want =
                                if (0..h as isize).contains(&si) && (0..w as isize).contains(&sj) {
                                    src[(ch * h + si as usize) * w + sj as usize]
                                } else {
                                    0.0
                                };
                            let got = dst[(ch * h + i as usize) * w + j as usize];
                            assert_eq!(got, want, "dy {dy} dx {dx} at ({ch}, {i}, {j})");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn random_shift_draws_every_offset_per_record_and_is_repeatable() {
        // One lit pixel in the middle of a 1×9×9 image: where it lands is the offset.
        let shape = (1, 9, 9);
        let records = 2000;
        let mut x = vec![0.0f32; records * 81];
        for r in 0..records {
            x[r * 81 + 4 * 9 + 4] = 1.0;
        }
        let mut y = x.clone();
        random_shift(&mut x, shape, 2, &mut Rng::new(7, 1)).unwrap();
        random_shift(&mut y, shape, 2, &mut Rng::new(7, 1)).unwrap();
        assert_eq!(x, y, "same generator, same shifts");
        let mut counts = [[0usize; 5]; 5];
        for r in x.chunks_exact(81) {
            let lit: Vec<usize> = (0..81).filter(|&p| r[p] == 1.0).collect();
            assert_eq!(
                lit.len(),
                1,
                "a shift by at most 2 keeps the centre pixel inside"
            );
            assert_eq!(r.iter().sum::<f32>(), 1.0);
            let (i, j) = (lit[0] / 9, lit[0] % 9);
            counts[i - 2][j - 2] += 1;
        }
        // 25 offsets, 80 expected each; a binomial sd is ~8.8, so 40..120 is > 4.5 sd.
        for row in counts {
            for n in row {
                assert!((40..120).contains(&n), "offset counts {counts:?}");
            }
        }
    }

    #[test]
    fn zero_shift_is_the_identity_and_draws_nothing() {
        let mut x = labelled_image();
        let mut rng = Rng::new(3, 4);
        random_shift(&mut x, (2, 3, 4), 0, &mut rng).unwrap();
        assert_eq!(x, labelled_image());
        assert_eq!(rng.state(), Rng::new(3, 4).state());
    }

    #[test]
    fn impossible_shifts_and_ragged_batches_are_refused() {
        let mut x = labelled_image();
        let e = random_shift(&mut x, (2, 3, 4), 3, &mut Rng::new(0, 0)).unwrap_err();
        assert!(e.to_string().contains("--augment-shift"), "{e}");
        assert!(e.to_string().contains("below 3"), "{e}");
        assert!(check_shift(2, (2, 3, 4)).is_ok());
        let e = random_shift(&mut x[..23], (2, 3, 4), 1, &mut Rng::new(0, 0)).unwrap_err();
        assert!(e.to_string().contains("whole records"), "{e}");
    }

    #[test]
    fn binarize_draws_each_pixel_from_its_bernoulli() {
        let n = 200_000;
        let levels = [0.0f32, 0.1, 0.5, 0.9, 1.0];
        let grey: Vec<f32> = (0..n).map(|i| levels[i % levels.len()]).collect();
        let draw = |seed| {
            let mut x = grey.clone();
            binarize(&mut x, &mut Rng::new(seed, 1));
            x
        };
        let x = draw(7);
        // Pixel i is 1 exactly when element i of the key's uniform draw is below its level.
        let key = Rng::new(7, 1).next_key(n);
        let by_element =
            (0..n).map(|i| (crate::rng::uniform_at(key, i as u64) < grey[i]) as u8 as f32);
        assert!(x.iter().copied().eq(by_element));
        assert_eq!(x, draw(7), "the same stream gives the same images");
        assert_ne!(x, draw(8), "another stream, other images");
        assert!(x.iter().all(|&v| v == 0.0 || v == 1.0));
        for (j, &p) in levels.iter().enumerate() {
            let ones = x
                .iter()
                .skip(j)
                .step_by(levels.len())
                .filter(|&&v| v == 1.0);
            let freq = ones.count() as f64 / (n / levels.len()) as f64;
            // 40 000 draws per level: the standard error is at most 0.0025.
            assert!((freq - p as f64).abs() < 0.01, "p = {p}: frequency {freq}");
            if p == 0.0 || p == 1.0 {
                assert_eq!(freq, p as f64, "0 and 1 stay as they are");
            }
        }
    }
}

//! A small RGB raster to draw charts on: filled rectangles, anti-aliased lines of any width
//! and discs, and text in the bitmap font of [`super::font`], written out as an 8-bit RGB PNG.
//!
//! Lines are drawn by coverage rather than by Bresenham's or Xiaolin Wu's stepping: each pixel
//! near the segment is blended with the line's colour in proportion to how much of it lies
//! within half the width of the segment (its distance to the segment, clamped to a one-pixel
//! ramp). That gives smooth lines two or three pixels wide with round ends, so that a polyline
//! of such segments has no gaps at its joints, which Wu's one-pixel lines do not give; a disc
//! is the same shape with both ends at one point. Coordinates are in pixels, (0, 0) the top
//! left corner, and anything outside the canvas is clipped.

use std::path::Path;

use super::font;
use crate::{memory, Error, Result};

/// An 8-bit RGB colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    pub const WHITE: Rgb = Rgb(255, 255, 255);
    pub const BLACK: Rgb = Rgb(0, 0, 0);
}

/// `width × height` RGB pixels, row-major.
pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pixels: Vec<u8>,
}

impl Canvas {
    /// A canvas filled with `background` (its memory checked first).
    pub fn new(width: usize, height: usize, background: Rgb) -> Result<Canvas> {
        let n = width.checked_mul(height).and_then(|p| p.checked_mul(3));
        let n = n.ok_or_else(|| Error::invalid("canvas", format!("{width}×{height} overflows")))?;
        let mut pixels = memory::try_vec(n, || format!("a {width}×{height}-pixel RGB canvas"))?;
        for _ in 0..width * height {
            pixels.extend([background.0, background.1, background.2]);
        }
        Ok(Canvas {
            width,
            height,
            pixels,
        })
    }

    /// The colour at (x, y), or None outside.
    pub fn get(&self, x: usize, y: usize) -> Option<Rgb> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = 3 * (y * self.width + x);
        Some(Rgb(self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]))
    }

    /// Mix `c` into pixel (x, y) with weight `alpha` ∈ [0, 1]; outside the canvas, nothing.
    fn blend(&mut self, x: i64, y: i64, c: Rgb, alpha: f32) {
        if x < 0 || y < 0 || x as usize >= self.width || y as usize >= self.height {
            return;
        }
        let a = alpha.clamp(0.0, 1.0);
        let i = 3 * (y as usize * self.width + x as usize);
        for (k, v) in [c.0, c.1, c.2].into_iter().enumerate() {
            let old = self.pixels[i + k] as f32;
            self.pixels[i + k] = (old + (v as f32 - old) * a).round() as u8;
        }
    }

    /// Fill the rectangle of `w × h` pixels whose top-left corner is (x, y).
    pub fn fill_rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: Rgb) {
        for yy in y.max(0)..(y + h).min(self.height as i64) {
            for xx in x.max(0)..(x + w).min(self.width as i64) {
                self.blend(xx, yy, c, 1.0);
            }
        }
    }

    /// The outline, one pixel wide, of the rectangle `w × h` at (x, y).
    pub fn stroke_rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: Rgb) {
        self.fill_rect(x, y, w, 1, c);
        self.fill_rect(x, y + h - 1, w, 1, c);
        self.fill_rect(x, y, 1, h, c);
        self.fill_rect(x + w - 1, y, 1, h, c);
    }

    /// An anti-aliased segment from `a` to `b`, `width` pixels wide, with round ends.
    pub fn line(&mut self, a: (f32, f32), b: (f32, f32), width: f32, c: Rgb) {
        let half = width / 2.0;
        let reach = half + 1.0;
        let (x0, x1) = (a.0.min(b.0) - reach, a.0.max(b.0) + reach);
        let (y0, y1) = (a.1.min(b.1) - reach, a.1.max(b.1) + reach);
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len2 = dx * dx + dy * dy;
        for y in y0.floor() as i64..=y1.ceil() as i64 {
            for x in x0.floor() as i64..=x1.ceil() as i64 {
                // Pixel centres sit at half-integers.
                let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
                let t = if len2 > 0.0 {
                    (((px - a.0) * dx + (py - a.1) * dy) / len2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let (qx, qy) = (a.0 + t * dx - px, a.1 + t * dy - py);
                let coverage = half + 0.5 - (qx * qx + qy * qy).sqrt();
                if coverage > 0.0 {
                    self.blend(x, y, c, coverage);
                }
            }
        }
    }

    /// A filled, anti-aliased disc of `radius` pixels around `centre`.
    pub fn disc(&mut self, centre: (f32, f32), radius: f32, c: Rgb) {
        self.line(centre, centre, 2.0 * radius, c);
    }

    /// `text` with its top-left corner at (x, y), each font pixel a `scale × scale` square.
    pub fn text(&mut self, x: i64, y: i64, text: &str, scale: usize, c: Rgb) {
        let s = scale as i64;
        for (i, ch) in text.chars().enumerate() {
            let left = x + (i * font::ADVANCE) as i64 * s;
            for (col, row) in font::pixels(ch) {
                self.fill_rect(left + col as i64 * s, y + row as i64 * s, s, s, c);
            }
        }
    }

    /// Encode as an 8-bit RGB PNG.
    pub fn to_png(&self) -> Result<Vec<u8>> {
        crate::png_image::encode("canvas", self.width, self.height, 3, &self.pixels)
    }

    /// Write as a PNG file, atomically (a temporary file renamed into place).
    pub fn write_png(&self, path: &Path) -> Result<()> {
        crate::png_image::write(path, "canvas", self.width, self.height, 3, &self.pixels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_covers_its_middle_and_fades_at_its_edge() {
        let mut c = Canvas::new(20, 10, Rgb::WHITE).unwrap();
        c.line((2.0, 5.0), (18.0, 5.0), 2.0, Rgb::BLACK);
        assert_eq!(c.get(10, 4), Some(Rgb::BLACK));
        assert_eq!(c.get(10, 5), Some(Rgb::BLACK));
        assert_eq!(c.get(10, 1), Some(Rgb::WHITE));
        // The round end reaches one pixel past the endpoint, no further.
        assert_eq!(c.get(19, 5), Some(Rgb::WHITE));
        // Off-canvas drawing is clipped, not a panic.
        c.line((-50.0, -5.0), (100.0, 40.0), 3.0, Rgb::BLACK);
        c.text(15, 8, "clipped", 2, Rgb::BLACK);
    }

    #[test]
    fn text_inks_its_glyphs_at_the_scale() {
        let mut c = Canvas::new(30, 20, Rgb::WHITE).unwrap();
        c.text(1, 1, "-", 2, Rgb::BLACK);
        // '-' is row 3 of the glyph: at scale 2 rows 7..9 of the canvas, columns 1..11.
        assert_eq!(c.get(1, 7), Some(Rgb::BLACK));
        assert_eq!(c.get(10, 8), Some(Rgb::BLACK));
        assert_eq!(c.get(11, 8), Some(Rgb::WHITE));
        assert_eq!(c.get(5, 6), Some(Rgb::WHITE));
    }
}

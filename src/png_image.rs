//! 8-bit PNG encoding for the images ssvae writes (sample grids, training-curve plots), behind
//! the `png` cargo feature: one place that checks the sides PNG can hold, picks the colour type
//! from the channel count and writes the file atomically.

use crate::{Error, Result};
use std::path::Path;

/// `pixels` (row-major, `channels` = 1 grey or 3 RGB bytes per pixel, `width × height`) as PNG
/// bytes. `what` names the image in errors.
pub fn encode(
    what: &'static str,
    width: usize,
    height: usize,
    channels: usize,
    pixels: &[u8],
) -> Result<Vec<u8>> {
    let side = |v: usize| {
        u32::try_from(v)
            .ok()
            .filter(|&v| v > 0 && v <= i32::MAX as u32)
    };
    let (Some(w), Some(h)) = (side(width), side(height)) else {
        return Err(Error::invalid(
            what,
            format!("a {width}×{height}-pixel image: PNG sides are 1 to 2^31 − 1 pixels"),
        ));
    };
    let color = match channels {
        1 => png::ColorType::Grayscale,
        3 => png::ColorType::Rgb,
        c => {
            return Err(Error::invalid(
                what,
                format!("{c} channels: PNG images here are grey (1) or RGB (3)"),
            ))
        }
    };
    let png_err = |e: png::EncodingError| Error::msg(format!("png: {e}"));
    let mut buf = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut buf, w, h);
        enc.set_color(color);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(png_err)?;
        writer.write_image_data(pixels).map_err(png_err)?;
        writer.finish().map_err(png_err)?;
    }
    Ok(buf)
}

/// [`encode`] written to `path` atomically (a temporary file renamed into place).
pub fn write(
    path: &Path,
    what: &'static str,
    width: usize,
    height: usize,
    channels: usize,
    pixels: &[u8],
) -> Result<()> {
    let bytes = encode(what, width, height, channels, pixels)?;
    crate::train::checkpoint::write_atomic(path, &bytes)
}

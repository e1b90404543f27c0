//! The Street View House Numbers in their cropped-digits form (Netzer et al. 2011, "Reading
//! Digits in Natural Images with Unsupervised Feature Learning"): `train_32x32.mat` (73,257
//! images) and `test_32x32.mat` (26,032), MATLAB Level 5 files ([`super::matfile`]) as
//! distributed at `ufldl.stanford.edu/housenumbers/`.
//!
//! Each file holds `X`, a `uint8` array of 32×32×3×N (MATLAB's column-major order: row, then
//! column, then channel, then image, the row varying fastest), and `y`, N×1 `double` labels
//! 1..10 where **10 stands for the digit 0**, mapped to 0 as torchvision's `SVHN` does. Images
//! become CHW records (red, green, blue planes, each row-major), pixels divided by 255. The
//! file's `X` must be exactly that (class `uint8` stored as bytes, 32×32×3×N with N > 0) and
//! its `y` N values that are whole numbers from 1 to 10; anything else is an error naming the
//! file, the variable and what was found. The `extra_32x32.mat` set is not loaded.

use std::path::Path;

use super::matfile::{self, Variable, MX_UINT8};
use super::{find_file, read_maybe_gz, scale_pixels, Dataset, TrainTest};
use crate::{Error, Result};

/// Image side in pixels.
pub const SIDE: usize = 32;
/// Colour channels.
pub const CHANNELS: usize = 3;
/// Number of classes (the digits 0..9).
pub const CLASSES: usize = 10;
/// The label SVHN gives the digit 0.
pub const ZERO_LABEL: f64 = 10.0;

/// Read one SVHN `.mat` file (gzipped or not) into a [`Dataset`] named `name`.
pub fn read_mat(path: &Path, name: &str) -> Result<Dataset> {
    let bytes = read_maybe_gz(path)?;
    let vars = matfile::read_variables(&bytes, path)?;
    let bad = |why: String| Err(Error::data(path, why));
    let find = |want: &str| {
        vars.iter().find(|v| v.name == want).ok_or_else(|| {
            let names: Vec<&str> = vars.iter().map(|v| v.name.as_str()).collect();
            Error::data(
                path,
                format!(
                    "no variable {want:?} (an SVHN file holds X and y); found {}",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            )
        })
    };
    let x = find("X")?;
    let y = find("y")?;
    if x.class != MX_UINT8 || x.complex {
        return bad(format!(
            "X is a {}{} array, expected uint8 (SVHN's X is uint8 32x32x3xN)",
            if x.complex { "complex " } else { "" },
            matfile::class_name(x.class)
        ));
    }
    let Some(raw) = x.as_u8() else {
        return bad("X is uint8 but its data is not stored as bytes (miUINT8)".to_string());
    };
    let n = match x.dims[..] {
        [SIDE, SIDE, CHANNELS, n] if n > 0 => n,
        _ => {
            return bad(format!(
                "X has dimensions {}, expected 32x32x3xN with N > 0",
                x.dims_str()
            ))
        }
    };
    let labels = read_labels(y, n).map_err(|why| Error::data(path, why))?;
    // Column-major (row, col, channel, image) to CHW records: the value of image i, channel c,
    // row r and column k is at r + 32·k + 1024·c + 3072·i.
    let plane = SIDE * SIDE;
    let mut chw = Vec::with_capacity(raw.len());
    for img in raw.chunks_exact(CHANNELS * plane) {
        for ch in img.chunks_exact(plane) {
            chw.extend((0..plane).map(|p| ch[(p % SIDE) * SIDE + p / SIDE]));
        }
    }
    Ok(Dataset {
        x: scale_pixels(&chw, 255)?,
        y: labels,
        n,
        channels: CHANNELS,
        height: SIDE,
        width: SIDE,
        classes: CLASSES,
        name: name.to_string(),
    })
}

/// SVHN's labels `y` (n values 1..10, 10 for the digit 0) as 0..9.
fn read_labels(y: &Variable, n: usize) -> std::result::Result<Vec<u8>, String> {
    if !y.is_numeric() || y.complex {
        return Err(format!(
            "y is a {} array, expected real numbers",
            matfile::class_name(y.class)
        ));
    }
    let count: usize = y.dims.iter().product();
    if y.dims.len() != 2 || !y.dims.contains(&1) || count != n {
        return Err(format!(
            "y has dimensions {}, expected {n}x1 (one label per image of X)",
            y.dims_str()
        ));
    }
    y.values()
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if v.fract() != 0.0 || !(1.0..=ZERO_LABEL).contains(&v) {
                Err(format!(
                    "label {v} at index {i} of y is out of range: SVHN labels are 1..10 (10 for the digit 0)"
                ))
            } else if v == ZERO_LABEL {
                Ok(0)
            } else {
                Ok(v as u8)
            }
        })
        .collect()
}

/// Load SVHN from `dir`: `train_32x32.mat` for training and `test_32x32.mat` for testing,
/// each optionally gzipped (`.mat.gz`).
pub fn load_dir(dir: &Path) -> Result<TrainTest> {
    let train = find_file(dir, "train_32x32.mat")?;
    let test = find_file(dir, "test_32x32.mat")?;
    Ok(TrainTest {
        train: read_mat(&train, "svhn/train")?,
        test: read_mat(&test, "svhn/test")?,
    })
}

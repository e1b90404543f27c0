//! Image datasets from NumPy arrays, for data in no format of its own:
//!
//! * `--dataset npz:FILE`: one `.npz` archive ([`super::npz`]) holding the arrays `x_train`,
//!   `y_train`, `x_test` and `y_test` (the layout of Keras's `mnist.npz`), written by
//!   `np.savez` or `np.savez_compressed`;
//! * `--dataset npy:DIR`: the same four arrays as `.npy` files ([`super::npy`]),
//!   `DIR/x_train.npy`, `DIR/y_train.npy`, `DIR/x_test.npy`, `DIR/y_test.npy` (each may be
//!   gzipped).
//!
//! Images (`x_*`) are `uint8` (0..255, divided by 255) or `float32` (already in [0, 1]; a value
//! outside it, NaN included, is refused), in one of three layouts told apart by the shape:
//!
//! * N×H×W: grey-scale images;
//! * N×C×H×W (channels first, PyTorch's) when dimension 1 is 1 or 3;
//! * N×H×W×C (channels last, Keras's and TensorFlow's) when dimension 1 is neither and the
//!   last dimension is 1 or 3.
//!
//! Labels (`y_*`) are N whole numbers in 0..=255 of shape (N,) or (N, 1), of any integer
//! dtype or floats. The number of classes is one more than the largest label of the two sets.
//! Both sets must have the same image shape, and each as many labels as images. Every refusal
//! names the file (and the array inside an `.npz`) and the problem.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use super::npy::{self, Array, Kind};
use super::npz::Archive;
use super::{find_file, read_maybe_gz, scale_pixels, Dataset, TrainTest};
use crate::{memory, Error, Result};

/// The four arrays' names, without the `.npy` suffix.
pub const KEYS: [&str; 4] = ["x_train", "y_train", "x_test", "y_test"];
/// The largest label a [`Dataset`] can hold.
const MAX_LABEL: f64 = u8::MAX as f64;

/// Where an array came from, for error messages: a file, and the entry in an `.npz`.
#[derive(Clone)]
struct Origin {
    path: PathBuf,
    entry: Option<String>,
}

impl Origin {
    fn error(&self, why: impl std::fmt::Display) -> Error {
        match &self.entry {
            Some(e) => Error::data(&self.path, format!("{e}: {why}")),
            None => Error::data(&self.path, why.to_string()),
        }
    }

    /// The array's name beside another of the same source: the `.npz` entry, or the file.
    fn describe(&self) -> String {
        match &self.entry {
            Some(e) => e.clone(),
            None => self.path.display().to_string(),
        }
    }
}

/// One split's images and labels before they become a [`Dataset`], and where the images are.
struct Split {
    x: Vec<f32>,
    shape: (usize, usize, usize),
    y: Vec<u8>,
    origin: Origin,
}

/// Load `npz:FILE`: the four arrays of the archive at `path` (see the module docs).
pub fn load_npz(path: &Path) -> Result<TrainTest> {
    let bytes = read_maybe_gz(path)?;
    let archive = Archive::parse(&bytes, path)?;
    load_arrays(&stem(path), |key| {
        let entry = format!("{key}.npy");
        let data = archive.read(&entry)?;
        let origin = Origin {
            path: path.to_path_buf(),
            entry: Some(entry),
        };
        Ok((data, origin))
    })
}

/// Load `npy:DIR`: `DIR/x_train.npy` … (see the module docs), each optionally gzipped.
pub fn load_npy_dir(dir: &Path) -> Result<TrainTest> {
    load_arrays(&stem(dir), |key| {
        let path = find_file(dir, &format!("{key}.npy"))?;
        let data = read_maybe_gz(&path)?;
        Ok((Cow::Owned(data), Origin { path, entry: None }))
    })
}

/// The train and test sets from the arrays [`KEYS`] that `read` gives (their bytes and where
/// they are), named `name/train` and `name/test`.
fn load_arrays<'a>(
    name: &str,
    read: impl Fn(&str) -> Result<(Cow<'a, [u8]>, Origin)>,
) -> Result<TrainTest> {
    let split_of = |xk: &str, yk: &str| -> Result<Split> {
        let (xb, xo) = read(xk)?;
        let (yb, yo) = read(yk)?;
        split(&xb, xo, &yb, &yo)
    };
    let train = split_of(KEYS[0], KEYS[1])?;
    let test = split_of(KEYS[2], KEYS[3])?;
    if train.shape != test.shape {
        return Err(test.origin.error(format!(
            "images of (channels, height, width) {:?}, but the training images of {} are {:?}",
            test.shape,
            train.origin.describe(),
            train.shape
        )));
    }
    let classes = train
        .y
        .iter()
        .chain(&test.y)
        .max()
        .map_or(1, |&m| m as usize + 1);
    let dataset = |s: Split, part: &str| {
        let (channels, height, width) = s.shape;
        Dataset {
            n: s.y.len(),
            x: s.x,
            y: s.y,
            channels,
            height,
            width,
            classes,
            name: format!("{name}/{part}"),
        }
    };
    Ok(TrainTest {
        train: dataset(train, "train"),
        test: dataset(test, "test"),
    })
}

/// A path's file name without its extension, for dataset names (`mnist.npz` → `mnist`).
fn stem(path: &Path) -> String {
    path.file_stem().map_or_else(
        || "arrays".to_string(),
        |s| s.to_string_lossy().into_owned(),
    )
}

/// One split from its image and label arrays' bytes.
fn split(xb: &[u8], xo: Origin, yb: &[u8], yo: &Origin) -> Result<Split> {
    let xa = npy::parse(xb, &xo.path, xo.entry.as_deref())?;
    let ya = npy::parse(yb, &yo.path, yo.entry.as_deref())?;
    let (x, shape) = images(&xa, &xo)?;
    let n = xa.shape[0];
    let y = labels(&ya, yo)?;
    if y.len() != n {
        return Err(xo.error(format!(
            "{n} images but {} holds {} labels",
            yo.describe(),
            y.len()
        )));
    }
    Ok(Split {
        x,
        shape,
        y,
        origin: xo,
    })
}

/// The images of `a` as CHW records in [0, 1] and their (channels, height, width).
fn images(a: &Array, o: &Origin) -> Result<(Vec<f32>, (usize, usize, usize))> {
    let is_channels = |d: usize| d == 1 || d == 3;
    let (n, c, h, w, channels_last) = match a.shape[..] {
        [n, h, w] => (n, 1, h, w, false),
        [n, c, h, w] if is_channels(c) => (n, c, h, w, false),
        [n, h, w, c] if is_channels(c) => (n, c, h, w, true),
        _ => {
            return Err(o.error(format!(
            "images of shape {} fit none of the layouts N×H×W, N×C×H×W or N×H×W×C with C = 1 or 3",
            a.shape_str()
        )))
        }
    };
    if n == 0 || h == 0 || w == 0 {
        return Err(o.error(format!("holds no images: shape {}", a.shape_str())));
    }
    // Index in the array of the value at (image i, channel ch, row r, column k).
    let at = |i: usize, ch: usize, r: usize, k: usize| {
        if channels_last {
            ((i * h + r) * w + k) * c + ch
        } else {
            ((i * c + ch) * h + r) * w + k
        }
    };
    let order = || {
        (0..n).flat_map(move |i| {
            (0..c)
                .flat_map(move |ch| (0..h).flat_map(move |r| (0..w).map(move |k| at(i, ch, r, k))))
        })
    };
    let x = match (a.dtype.kind, a.dtype.size) {
        (Kind::Unsigned, 1) => {
            let raw = a.as_u8().unwrap_or_default();
            let chw: Vec<u8> = if channels_last {
                order().map(|j| raw[j]).collect()
            } else {
                raw.to_vec()
            };
            scale_pixels(&chw, 255)?
        }
        (Kind::Float, 4) => {
            let mut x = memory::try_vec(a.len(), || format!("{} pixels as f32", a.len()))?;
            for j in order() {
                let v = a.get(j);
                if !(0.0..=1.0).contains(&v) {
                    return Err(o.error(format!(
                        "float32 pixel {v} at flat index {j} is outside [0, 1] (scale the images to [0, 1], or store them as uint8)"
                    )));
                }
                x.push(v as f32);
            }
            x
        }
        _ => {
            return Err(o.error(format!(
                "images of dtype {} are not supported: expected uint8 (0..255) or float32 (0..1)",
                a.dtype.name()
            )))
        }
    };
    Ok((x, (c, h, w)))
}

/// The labels of `a`: shape (N,) or (N, 1), whole numbers in 0..=255.
fn labels(a: &Array, o: &Origin) -> Result<Vec<u8>> {
    if !matches!(a.shape[..], [_] | [_, 1]) {
        return Err(o.error(format!(
            "labels of shape {}, expected (N,) or (N, 1)",
            a.shape_str()
        )));
    }
    (0..a.len())
        .map(|i| {
            let v = a.get(i);
            if v.fract() == 0.0 && (0.0..=MAX_LABEL).contains(&v) {
                Ok(v as u8)
            } else {
                Err(o.error(format!(
                    "label {v} at index {i} is out of range: labels are whole numbers 0..=255"
                )))
            }
        })
        .collect()
}

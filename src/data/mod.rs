//! Datasets on the host: the [`Dataset`] type (pixels scaled to [0, 1], labels as `u8`), the
//! [`load`] entry point that finds a dataset's standard files under `DATA_DIR/<name>/`, and the
//! file readers it dispatches to (IDX for MNIST / Fashion-MNIST, the CIFAR-10 binary batches, the
//! scikit-learn digits CSV), plus the semi-supervised splits and minibatching in [`split`](mod@split) and
//! the training-time augmentation in [`augment`].
//!
//! Everything here is plain Rust on `Vec`s, independent of the tensor engine: the trainer gathers
//! a batch with [`split::gather`] and uploads it. Files may be gzipped or not; that is decided by
//! the gzip magic bytes `1f 8b`, not by the extension. Every malformed input is an
//! [`Error::Data`] naming the file and the problem; nothing here panics.

pub mod augment;
pub mod cifar;
pub mod digits;
pub mod idx;
pub mod split;

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use flate2::bufread::MultiGzDecoder;

use crate::{Error, Result};

pub use split::{batches, gather, split, subset, Batcher, BatcherState, SemiSupervised};

/// A labelled image dataset held in host memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// `n × dim()` pixels, row-major, each record in CHW order, scaled to [0, 1].
    pub x: Vec<f32>,
    /// `n` labels in `0..classes`.
    pub y: Vec<u8>,
    /// Number of records.
    pub n: usize,
    /// Channels per image (1 for the grey-scale sets, 3 for CIFAR-10).
    pub channels: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// Number of classes; every label is below it.
    pub classes: usize,
    /// A short name, e.g. `mnist/train`.
    pub name: String,
}

impl Dataset {
    /// Values per record: `channels · height · width`.
    pub fn dim(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Record `i`'s pixels, or `None` past the end.
    pub fn image(&self, i: usize) -> Option<&[f32]> {
        let d = self.dim();
        if i < self.n {
            self.x.get(i * d..(i + 1) * d)
        } else {
            None
        }
    }

    /// How many records each class has (`classes` entries).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut c = vec![0usize; self.classes];
        for &l in &self.y {
            if let Some(slot) = c.get_mut(l as usize) {
                *slot += 1;
            }
        }
        c
    }

    /// Check the invariants between the fields (lengths, label range); `what` names the source.
    pub fn validate(&self, what: &Path) -> Result<()> {
        let dim = self.dim();
        let want = self.n.checked_mul(dim);
        if want != Some(self.x.len()) {
            return Err(Error::data(
                what,
                format!(
                    "{} holds {} pixel values, expected n·dim = {}·{}",
                    self.name,
                    self.x.len(),
                    self.n,
                    dim
                ),
            ));
        }
        if self.y.len() != self.n {
            return Err(Error::data(
                what,
                format!(
                    "{} holds {} labels for {} records",
                    self.name,
                    self.y.len(),
                    self.n
                ),
            ));
        }
        if let Some(i) = self.y.iter().position(|&l| l as usize >= self.classes) {
            return Err(Error::data(
                what,
                format!(
                    "{}: label {} at index {i} is not below the {} classes",
                    self.name, self.y[i], self.classes
                ),
            ));
        }
        Ok(())
    }
}

/// A dataset's official (or, for digits, documented) train / test split.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainTest {
    pub train: Dataset,
    pub test: Dataset,
}

/// The datasets [`load`] knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DatasetName {
    /// MNIST, 60,000 + 10,000 28×28 grey-scale digits, IDX files.
    Mnist,
    /// Fashion-MNIST, 60,000 + 10,000 28×28 grey-scale clothes, IDX files.
    FashionMnist,
    /// CIFAR-10, 50,000 + 10,000 32×32 RGB images, binary batches.
    Cifar10,
    /// scikit-learn's 1,797 8×8 digits (pixels 0..16), one CSV.
    Digits,
}

impl DatasetName {
    /// Every dataset, in the order of the command-line spelling list.
    pub const ALL: [DatasetName; 4] = [
        DatasetName::Mnist,
        DatasetName::FashionMnist,
        DatasetName::Cifar10,
        DatasetName::Digits,
    ];

    /// The command-line spelling, which is also the folder name under the data directory.
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetName::Mnist => "mnist",
            DatasetName::FashionMnist => "fashion-mnist",
            DatasetName::Cifar10 => "cifar10",
            DatasetName::Digits => "digits",
        }
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DatasetName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        DatasetName::ALL
            .iter()
            .copied()
            .find(|d| d.as_str() == t)
            .ok_or_else(|| {
                Error::invalid(
                    "dataset",
                    format!("unknown dataset {s:?}; expected one of mnist, fashion-mnist, cifar10, digits"),
                )
            })
    }
}

/// Load `name`'s train and test sets from `data_dir/<name>/`.
///
/// * `mnist`, `fashion-mnist`: `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
///   `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each with or without `.gz`;
///   28×28 images are required.
/// * `cifar10`: `data_batch_1.bin` … `data_batch_5.bin` (train) and `test_batch.bin` (test),
///   also found in a `cifar-10-batches-bin/` subfolder as the official tarball unpacks.
/// * `digits`: `digits.csv` or `digits.csv.gz`; the first 1,397 rows are the training set and
///   the last 400 the test set (see [`digits`]).
///
/// A missing file is an error naming every path looked for.
pub fn load(name: DatasetName, data_dir: &Path) -> Result<TrainTest> {
    let dir = data_dir.join(name.as_str());
    match name {
        DatasetName::Mnist | DatasetName::FashionMnist => idx::load_dir(&dir, name.as_str()),
        DatasetName::Cifar10 => cifar::load_dir(&dir),
        DatasetName::Digits => digits::load_dir(&dir),
    }
}

/// Where datasets live when no `--data-dir` is given: `$SSVAE_DATA_DIR` if set and non-empty,
/// else `../shared/datasets` (relative to the current directory) if that exists, else
/// `./datasets`.
pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SSVAE_DATA_DIR") {
        if !d.is_empty() {
            return PathBuf::from(d);
        }
    }
    let shared = PathBuf::from("../shared/datasets");
    if shared.is_dir() {
        return shared;
    }
    PathBuf::from("datasets")
}

/// The first of `dir/base` and `dir/base.gz` that exists, or an error naming both.
pub fn find_file(dir: &Path, base: &str) -> Result<PathBuf> {
    let plain = dir.join(base);
    let gz = dir.join(format!("{base}.gz"));
    for p in [&plain, &gz] {
        if p.is_file() {
            return Ok(p.clone());
        }
    }
    Err(Error::data(
        &plain,
        format!(
            "file not found (looked for {} and {}); point --data-dir or SSVAE_DATA_DIR at the folder holding <dataset>/ (see datasets/README.md)",
            plain.display(),
            gz.display()
        ),
    ))
}

/// The whole content of `path`, decompressed when it starts with the gzip magic `1f 8b`
/// (concatenated gzip members are read in sequence). A corrupt or truncated gzip stream is an
/// [`Error::Data`] naming the file; other read failures are [`Error::Io`].
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map(|m| m.len() as usize).unwrap_or(0);
    let mut rd = BufReader::with_capacity(1 << 16, file);
    let head = rd.fill_buf().map_err(|e| Error::io(path, e))?;
    let gzipped = head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b;
    if !gzipped {
        let mut out = Vec::with_capacity(len);
        rd.read_to_end(&mut out).map_err(|e| Error::io(path, e))?;
        return Ok(out);
    }
    // Compression ratios of the datasets are 2–5×; a generous first guess saves reallocations.
    let mut out = Vec::with_capacity(len.saturating_mul(4).min(1 << 30));
    let mut dec = MultiGzDecoder::new(rd);
    dec.read_to_end(&mut out).map_err(|e| {
        Error::data(
            path,
            format!(
                "corrupt or truncated gzip stream after {} decompressed bytes: {e}",
                out.len()
            ),
        )
    })?;
    Ok(out)
}

/// Pixels 0..=`max` scaled to [0, 1] by a table lookup (exactly `v / max` in f32).
pub(crate) fn scale_pixels(raw: &[u8], max: u8) -> Vec<f32> {
    let mut lut = [0f32; 256];
    for (i, v) in lut.iter_mut().enumerate() {
        *v = i as f32 / max as f32;
    }
    raw.iter().map(|&b| lut[b as usize]).collect()
}

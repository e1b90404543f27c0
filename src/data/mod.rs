//! Datasets on the host: the [`Dataset`] type (pixels scaled to [0, 1], labels as `u8`), the
//! [`load`] entry point that finds a dataset's standard files under `DATA_DIR/<name>/`, and the
//! file readers it dispatches to (IDX for MNIST / Fashion-MNIST, the CIFAR-10 binary batches, the
//! scikit-learn digits CSV, SVHN's MATLAB files), the NumPy arrays of [`arrays`] that
//! [`DatasetSpec`] (what `--dataset` names) adds, plus the semi-supervised splits and
//! minibatching in [`split`](mod@split) and the training-time augmentation in [`augment`].
//!
//! Everything here is plain Rust on `Vec`s, independent of the tensor engine: the trainer gathers
//! a batch with [`split::gather`] and uploads it. Files may be gzipped or not; that is decided by
//! the gzip magic bytes `1f 8b`, not by the extension. Files are streamed ([`Source`]) into
//! buffers that grow with the data that arrives, never sized on a header's word, and capped
//! by the machine's memory. Every malformed input (a directory or a device where a file should
//! be included) is an [`Error::Data`] naming the file and the problem; nothing here panics.

pub mod arrays;
pub mod augment;
pub mod cifar;
pub mod digits;
pub mod idx;
pub mod matfile;
pub mod npy;
pub mod npz;
pub mod spec;
pub mod split;
pub mod svhn;

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use flate2::bufread::MultiGzDecoder;

use crate::{Error, Result};

pub use spec::DatasetSpec;
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
    /// SVHN, 73,257 + 26,032 32×32 RGB house-number digits, MATLAB files.
    Svhn,
}

impl DatasetName {
    /// Every dataset, in the order of the command-line spelling list.
    pub const ALL: [DatasetName; 5] = [
        DatasetName::Mnist,
        DatasetName::FashionMnist,
        DatasetName::Cifar10,
        DatasetName::Digits,
        DatasetName::Svhn,
    ];

    /// The command-line spelling, which is also the folder name under the data directory.
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetName::Mnist => "mnist",
            DatasetName::FashionMnist => "fashion-mnist",
            DatasetName::Cifar10 => "cifar10",
            DatasetName::Digits => "digits",
            DatasetName::Svhn => "svhn",
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
                    format!("unknown dataset {s:?}; expected one of mnist, fashion-mnist, cifar10, digits, svhn, or npz:FILE / npy:DIR for NumPy arrays"),
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
/// * `svhn`: `train_32x32.mat` and `test_32x32.mat`, optionally gzipped (see [`svhn`]).
///
/// A missing file is an error naming every path looked for.
pub fn load(name: DatasetName, data_dir: &Path) -> Result<TrainTest> {
    let dir = data_dir.join(name.as_str());
    match name {
        DatasetName::Mnist | DatasetName::FashionMnist => idx::load_dir(&dir, name.as_str()),
        DatasetName::Cifar10 => cifar::load_dir(&dir),
        DatasetName::Digits => digits::load_dir(&dir),
        DatasetName::Svhn => svhn::load_dir(&dir),
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

/// The first of `dir/base` and `dir/base.gz` that is a regular file (symbolic links followed).
/// When neither is, an error naming both, or naming the one that exists but is something
/// else (a directory, a device such as `/dev/zero`, a pipe), which cannot be a dataset file.
pub fn find_file(dir: &Path, base: &str) -> Result<PathBuf> {
    let plain = dir.join(base);
    let gz = dir.join(format!("{base}.gz"));
    let found: Vec<(&PathBuf, std::fs::Metadata)> = [&plain, &gz]
        .into_iter()
        .filter_map(|p| std::fs::metadata(p).ok().map(|m| (p, m)))
        .collect();
    if let Some((p, _)) = found.iter().find(|(_, m)| m.is_file()) {
        return Ok((*p).clone());
    }
    if let Some((p, m)) = found.first() {
        return Err(not_a_regular_file(p, m));
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

/// The error for a dataset path `p` that exists but is not a regular file (metadata `m`).
fn not_a_regular_file(p: &Path, m: &std::fs::Metadata) -> Error {
    let what = if m.is_dir() {
        "a directory"
    } else {
        "a device, pipe or socket"
    };
    Error::data(
        p,
        format!("is {what}, not a regular file, so it cannot be a dataset file"),
    )
}

/// The most a dataset file read whole ([`read_maybe_gz`]) may decompress to: a fifth of the
/// machine's memory, since a loader keeps the bytes and their f32 copy (4 bytes a value).
fn max_content_bytes() -> u64 {
    crate::memory::limit() / 5
}

/// Deflate's largest compression ratio (1032:1): a gzip file of n bytes cannot decompress to
/// more than about 1032·n, which bounds what a header inside it can truthfully claim.
pub const DEFLATE_MAX_RATIO: u64 = 1032;

/// Bytes read per step while streaming a file.
const CHUNK: usize = 1 << 16;

/// A dataset file opened for streaming: its content, decompressed on the fly when the file
/// starts with the gzip magic `1f 8b` (concatenated gzip members are read in sequence). Read
/// errors name the file: a corrupt or truncated gzip stream is an [`Error::Data`], other
/// failures are [`Error::Io`].
pub struct Source {
    path: PathBuf,
    reader: Box<dyn Read>,
    /// Whether the file is gzipped.
    pub gzipped: bool,
    /// The file's length on disk.
    pub file_len: u64,
    /// Content bytes read so far (decompressed).
    pub pos: u64,
}

impl Source {
    /// Open `path`, which must be a regular file.
    pub fn open(path: &Path) -> Result<Source> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let meta = file.metadata().map_err(|e| Error::io(path, e))?;
        if !meta.is_file() {
            return Err(not_a_regular_file(path, &meta));
        }
        let mut rd = BufReader::with_capacity(CHUNK, file);
        let head = rd.fill_buf().map_err(|e| Error::io(path, e))?;
        let gzipped = head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b;
        let reader: Box<dyn Read> = if gzipped {
            Box::new(MultiGzDecoder::new(rd))
        } else {
            Box::new(rd)
        };
        Ok(Source {
            path: path.to_path_buf(),
            reader,
            gzipped,
            file_len: meta.len(),
            pos: 0,
        })
    }

    /// The most the content can hold: the file's length, or for a gzip file
    /// [`DEFLATE_MAX_RATIO`] times it (plus a little for the smallest files).
    pub fn max_content(&self) -> u64 {
        if self.gzipped {
            self.file_len
                .saturating_mul(DEFLATE_MAX_RATIO)
                .saturating_add(1 << 10)
        } else {
            self.file_len
        }
    }

    /// Read into `buf` until it is full or the content ends; returns the bytes read.
    pub fn read_full(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            let n = match self.reader.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if self.gzipped => {
                    return Err(Error::data(
                        &self.path,
                        format!(
                            "corrupt or truncated gzip stream after {} decompressed bytes: {e}",
                            self.pos + got as u64
                        ),
                    ))
                }
                Err(e) => return Err(Error::io(&self.path, e)),
            };
            got += n;
        }
        self.pos += got as u64;
        Ok(got)
    }

    /// Append up to `n` more content bytes to `out`, fewer only where the content ends. The
    /// vector grows with what arrives (never to more than `n` beyond its length, reserved
    /// fallibly), so a header's claim costs no memory until the data is there.
    pub fn read_into(&mut self, out: &mut Vec<u8>, n: u64) -> Result<()> {
        let end = (out.len() as u64).saturating_add(n);
        let mut buf = vec![0u8; CHUNK];
        while (out.len() as u64) < end {
            let want = (end - out.len() as u64).min(CHUNK as u64) as usize;
            let got = self.read_full(&mut buf[..want])?;
            if got == 0 {
                break;
            }
            if out.capacity() - out.len() < got {
                let grown = (out.capacity() as u64)
                    .saturating_mul(2)
                    .max(CHUNK as u64)
                    .min(end);
                let extra = (grown as usize).max(out.len() + got) - out.len();
                out.try_reserve_exact(extra).map_err(|_| {
                    Error::data(
                        &self.path,
                        format!(
                            "the allocator refused {} for its content",
                            crate::memory::format_bytes(grown as u128)
                        ),
                    )
                })?;
            }
            out.extend_from_slice(&buf[..got]);
        }
        Ok(())
    }
}

/// The whole content of `path`, decompressed when it starts with the gzip magic `1f 8b`
/// (see [`Source`]). Content past a fifth of the machine's memory is refused as it streams in,
/// before it is buffered; a corrupt or truncated gzip stream is an [`Error::Data`] naming the
/// file, other read failures are [`Error::Io`].
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let mut src = Source::open(path)?;
    let cap = max_content_bytes();
    let mut out = Vec::new();
    src.read_into(&mut out, cap.saturating_add(1))?;
    if out.len() as u64 > cap {
        return Err(Error::data(
            path,
            format!(
                "holds more than {} of content{}, a fifth of this machine's memory and the most a dataset file may hold; stopped reading",
                crate::memory::format_bytes(cap as u128),
                if src.gzipped { " decompressed" } else { "" }
            ),
        ));
    }
    Ok(out)
}

/// Pixels 0..=`max` scaled to [0, 1] by a table lookup (exactly `v / max` in f32), in a
/// vector reserved fallibly (an error, not an abort, when the memory is not there).
pub(crate) fn scale_pixels(raw: &[u8], max: u8) -> Result<Vec<f32>> {
    let mut lut = [0f32; 256];
    for (i, v) in lut.iter_mut().enumerate() {
        *v = i as f32 / max as f32;
    }
    let mut out = crate::memory::try_vec(raw.len(), || format!("{} pixels as f32", raw.len()))?;
    out.extend(raw.iter().map(|&b| lut[b as usize]));
    Ok(out)
}

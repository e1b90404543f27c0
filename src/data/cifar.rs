//! The CIFAR-10 binary format (Krizhevsky, 2009, "binary version"): each record is one label
//! byte (0..9) followed by 3,072 pixel bytes, the 32×32 red plane, then green, then blue (CHW,
//! row-major within a plane). The official files hold 10,000 records each:
//! `data_batch_1.bin` … `data_batch_5.bin` form the training set, `test_batch.bin` the test set.
//!
//! The reader accepts any positive whole number of records per file (the tests use tiny
//! crafted batches); a length that is not a multiple of 3,073 bytes or a label ≥ 10 is an error
//! naming the file. Pixels are scaled by 1/255 and kept in CHW order.

use std::path::{Path, PathBuf};

use super::{find_file, read_maybe_gz, scale_pixels, Dataset, TrainTest};
use crate::{Error, Result};

/// Image side in pixels.
pub const SIDE: usize = 32;
/// Colour channels.
pub const CHANNELS: usize = 3;
/// Pixel bytes per record.
pub const PIXELS: usize = CHANNELS * SIDE * SIDE;
/// Bytes per record: one label byte, then the pixels.
pub const RECORD: usize = 1 + PIXELS;
/// Number of classes.
pub const CLASSES: usize = 10;
/// Records in each official batch file (informative; not required).
pub const RECORDS_PER_FILE: usize = 10_000;

/// Read one batch file: `(pixels, labels)` with `labels.len()` records and raw pixel bytes
/// (`labels.len() · 3072`, CHW per record).
pub fn read_batch(path: &Path) -> Result<(Vec<u8>, Vec<u8>)> {
    let bytes = read_maybe_gz(path)?;
    if bytes.is_empty() {
        return Err(Error::data(path, "empty CIFAR-10 batch file (0 records)"));
    }
    if bytes.len() % RECORD != 0 {
        return Err(Error::data(
            path,
            format!(
                "wrong length for a CIFAR-10 batch: {} bytes is not a multiple of the {RECORD}-byte record (1 label + {PIXELS} pixels); {} whole records and {} bytes left over",
                bytes.len(),
                bytes.len() / RECORD,
                bytes.len() % RECORD
            ),
        ));
    }
    let n = bytes.len() / RECORD;
    let mut labels = Vec::with_capacity(n);
    let mut pixels = Vec::with_capacity(n * PIXELS);
    for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
        let l = rec[0];
        if l as usize >= CLASSES {
            return Err(Error::data(
                path,
                format!(
                    "bad label {l} in record {i} (byte offset {}): expected 0..9",
                    i * RECORD
                ),
            ));
        }
        labels.push(l);
        pixels.extend_from_slice(&rec[1..]);
    }
    Ok((pixels, labels))
}

/// Concatenate the batch files `paths`, in order, into one [`Dataset`] named `name`.
pub fn read_batches(paths: &[PathBuf], name: &str) -> Result<Dataset> {
    let mut raw = Vec::new();
    let mut y = Vec::new();
    for p in paths {
        let (px, l) = read_batch(p)?;
        raw.extend_from_slice(&px);
        y.extend_from_slice(&l);
    }
    if y.is_empty() {
        return Err(Error::invalid(
            "cifar10",
            format!("no batch files given for {name}"),
        ));
    }
    Ok(Dataset {
        x: scale_pixels(&raw, 255)?,
        n: y.len(),
        y,
        channels: CHANNELS,
        height: SIDE,
        width: SIDE,
        classes: CLASSES,
        name: name.to_string(),
    })
}

/// Load CIFAR-10 from `dir` (or from `dir/cifar-10-batches-bin/`, as the official tarball
/// unpacks): `data_batch_{1..5}.bin` for training and `test_batch.bin` for testing, each
/// optionally gzipped (`.bin.gz`).
pub fn load_dir(dir: &Path) -> Result<TrainTest> {
    let nested = dir.join("cifar-10-batches-bin");
    let dir = if find_file(dir, "data_batch_1.bin").is_err() && nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    };
    let train: Vec<PathBuf> = (1..=5)
        .map(|k| find_file(&dir, &format!("data_batch_{k}.bin")))
        .collect::<Result<_>>()?;
    let test = [find_file(&dir, "test_batch.bin")?];
    Ok(TrainTest {
        train: read_batches(&train, "cifar10/train")?,
        test: read_batches(&test, "cifar10/test")?,
    })
}

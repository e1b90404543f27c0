//! The IDX file format of MNIST and Fashion-MNIST (LeCun et al.), for any IDX file of unsigned
//! bytes: a big-endian magic `00 00 08 NN` (`08` = ubyte, `NN` = number of dimensions), `NN`
//! big-endian u32 dimension sizes, then the data, row-major.
//!
//! The reader is strict, because a silently short or shifted file trains a model on garbage:
//! the magic, the data type, the dimensions and the exact byte length are checked (a truncated
//! file and trailing bytes are both refused, with expected and actual sizes), an image file and
//! its label file must agree on the count, and every label must be below the number of classes.
//! Gzipped files (`1f 8b`) are streamed through flate2's decoder; see
//! [`read_maybe_gz`].

use std::path::Path;

use super::{find_file, read_maybe_gz, scale_pixels, Dataset, TrainTest};
use crate::{Error, Result};

/// Magic of an image file: ubyte, 3 dimensions (count, rows, cols).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic of a label file: ubyte, 1 dimension (count).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// The IDX data-type code of unsigned bytes.
pub const UBYTE: u8 = 0x08;

/// A parsed IDX file of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idx {
    /// The magic number as read (`0x0000_08NN`).
    pub magic: u32,
    /// The dimension sizes, outermost first.
    pub dims: Vec<usize>,
    bytes: Vec<u8>,
    header: usize,
}

impl Idx {
    /// The data bytes after the header (exactly the product of `dims`).
    pub fn data(&self) -> &[u8] {
        &self.bytes[self.header..]
    }

    /// Size of the header in bytes: `4 + 4·dims.len()`.
    pub fn header_len(&self) -> usize {
        self.header
    }
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Parse the (already decompressed) content `bytes` of the IDX file `path`.
pub fn parse(path: &Path, bytes: Vec<u8>) -> Result<Idx> {
    let bad = |why: String| Err(Error::data(path, why));
    let Some(magic) = be_u32(&bytes, 0) else {
        return bad(format!(
            "not an IDX file: {} bytes, too short for the 4-byte magic",
            bytes.len()
        ));
    };
    let [z0, z1, ty, nd] = magic.to_be_bytes();
    if z0 != 0 || z1 != 0 {
        return bad(format!(
            "not an IDX file: bad magic 0x{magic:08x}, expected 00 00 08 NN (images 0x{IMAGES_MAGIC:08x}, labels 0x{LABELS_MAGIC:08x})"
        ));
    }
    if ty != UBYTE {
        return bad(format!(
            "IDX data type 0x{ty:02x} (magic 0x{magic:08x}) is not supported; only unsigned bytes (0x08)"
        ));
    }
    if nd == 0 {
        return bad(format!("IDX magic 0x{magic:08x} declares 0 dimensions"));
    }
    let header = 4 + 4 * nd as usize;
    if bytes.len() < header {
        return bad(format!(
            "truncated IDX header: {nd} dimensions need {header} header bytes, the file has {} bytes",
            bytes.len()
        ));
    }
    let mut dims = Vec::with_capacity(nd as usize);
    let mut count: Option<usize> = Some(1);
    for k in 0..nd as usize {
        let d = be_u32(&bytes, 4 + 4 * k).unwrap_or(0) as usize;
        dims.push(d);
        count = count.and_then(|c| c.checked_mul(d));
    }
    let Some(expected) = count.and_then(|c| c.checked_add(header)) else {
        return bad(format!(
            "IDX dimensions {dims:?} overflow the address space"
        ));
    };
    let actual = bytes.len();
    if actual < expected {
        return bad(format!(
            "truncated IDX file: dimensions {dims:?} need {expected} bytes ({header} header + {} data), found {actual} bytes ({} missing)",
            expected - header,
            expected - actual
        ));
    }
    if actual > expected {
        return bad(format!(
            "{} trailing bytes after the IDX data: dimensions {dims:?} need {expected} bytes ({header} header + {} data), found {actual} bytes",
            actual - expected,
            expected - header
        ));
    }
    Ok(Idx {
        magic,
        dims,
        bytes,
        header,
    })
}

/// Read and parse the IDX file at `path`, gzipped or not.
pub fn read(path: &Path) -> Result<Idx> {
    parse(path, read_maybe_gz(path)?)
}

/// Read an IDX image file (magic `0x00000803`: count × rows × cols). Returns the parsed file;
/// `dims` is `[count, rows, cols]` with rows, cols > 0.
pub fn read_images(path: &Path) -> Result<Idx> {
    let idx = read(path)?;
    if idx.magic != IMAGES_MAGIC {
        return Err(Error::data(
            path,
            format!(
                "not an IDX image file: magic 0x{:08x} ({} dimensions), expected 0x{IMAGES_MAGIC:08x} (3 dimensions: count, rows, cols)",
                idx.magic,
                idx.dims.len()
            ),
        ));
    }
    if idx.dims[1] == 0 || idx.dims[2] == 0 {
        return Err(Error::data(
            path,
            format!(
                "IDX image dimensions {:?} have an empty image side",
                idx.dims
            ),
        ));
    }
    Ok(idx)
}

/// Read an IDX label file (magic `0x00000801`) and check every label is below `classes`.
pub fn read_labels(path: &Path, classes: usize) -> Result<Vec<u8>> {
    let idx = read(path)?;
    if idx.magic != LABELS_MAGIC {
        return Err(Error::data(
            path,
            format!(
                "not an IDX label file: magic 0x{:08x} ({} dimensions), expected 0x{LABELS_MAGIC:08x} (1 dimension: count)",
                idx.magic,
                idx.dims.len()
            ),
        ));
    }
    if let Some(i) = idx.data().iter().position(|&l| l as usize >= classes) {
        return Err(Error::data(
            path,
            format!(
                "label {} at index {i} is out of range: expected 0..{} ({classes} classes)",
                idx.data()[i],
                classes.saturating_sub(1)
            ),
        ));
    }
    let header = idx.header;
    let mut bytes = idx.bytes;
    bytes.drain(..header);
    Ok(bytes)
}

/// Load one image file and its label file into a [`Dataset`] named `name`. `hw`, when given, is
/// the required (rows, cols). The two files must hold the same, non-zero number of records.
pub fn load_pair(
    images: &Path,
    labels: &Path,
    classes: usize,
    hw: Option<(usize, usize)>,
    name: &str,
) -> Result<Dataset> {
    let img = read_images(images)?;
    let (n, rows, cols) = (img.dims[0], img.dims[1], img.dims[2]);
    if let Some((h, w)) = hw {
        if (rows, cols) != (h, w) {
            return Err(Error::data(
                images,
                format!("wrong image dimensions: expected {h}x{w} images, found {rows}x{cols} (dims {:?})", img.dims),
            ));
        }
    }
    if n == 0 {
        return Err(Error::data(images, "IDX image file holds no images"));
    }
    let y = read_labels(labels, classes)?;
    if y.len() != n {
        return Err(Error::data(
            images,
            format!(
                "image/label count mismatch: {} holds {n} images but {} holds {} labels",
                images.display(),
                labels.display(),
                y.len()
            ),
        ));
    }
    Ok(Dataset {
        x: scale_pixels(img.data(), 255),
        y,
        n,
        channels: 1,
        height: rows,
        width: cols,
        classes,
        name: name.to_string(),
    })
}

/// Load the four standard MNIST-style files from `dir` (28×28 images, 10 classes).
pub fn load_dir(dir: &Path, name: &str) -> Result<TrainTest> {
    let tr_x = find_file(dir, "train-images-idx3-ubyte")?;
    let tr_y = find_file(dir, "train-labels-idx1-ubyte")?;
    let te_x = find_file(dir, "t10k-images-idx3-ubyte")?;
    let te_y = find_file(dir, "t10k-labels-idx1-ubyte")?;
    let hw = Some((28, 28));
    Ok(TrainTest {
        train: load_pair(&tr_x, &tr_y, 10, hw, &format!("{name}/train"))?,
        test: load_pair(&te_x, &te_y, 10, hw, &format!("{name}/test"))?,
    })
}

//! The IDX file format of MNIST and Fashion-MNIST (LeCun et al.), for any IDX file of unsigned
//! bytes: a big-endian magic `00 00 08 NN` (`08` = ubyte, `NN` = number of dimensions), `NN`
//! big-endian u32 dimension sizes, then the data, row-major.
//!
//! The reader is strict, because a silently short or shifted file trains a model on garbage:
//! the magic, the data type, the dimensions and the exact byte length are checked (a truncated
//! file and trailing bytes are both refused, with expected and actual sizes), an image file and
//! its label file must agree on the count, and every label must be below the number of classes.
//! Gzipped files (`1f 8b`) are streamed through flate2's decoder ([`Source`]).
//!
//! Nothing is allocated on a header's word: every check that needs only the header (the magic
//! and the kind of file, the header's length, a zero dimension, the claimed size against the
//! machine's memory, and against the file's length, or for a gzip file the most deflate can
//! hold in it) is made before the data is read; the data is then read in chunks into a buffer
//! that grows with what arrives, and reading stops at the claimed size. An image file's header
//! is checked against its label file's count before its data is read.

use std::path::Path;

use super::{find_file, scale_pixels, Dataset, Source, TrainTest};
use crate::{memory, Error, Result};

/// Magic of an image file: ubyte, 3 dimensions (count, rows, cols).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic of a label file: ubyte, 1 dimension (count).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// The IDX data-type code of unsigned bytes.
pub const UBYTE: u8 = 0x08;

/// Trailing bytes counted past the data before the reader stops and reports "more than".
const TRAILING_PROBE: usize = 1 << 16;

/// A parsed IDX file of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idx {
    /// The magic number as read (`0x0000_08NN`).
    pub magic: u32,
    /// The dimension sizes, outermost first.
    pub dims: Vec<usize>,
    data: Vec<u8>,
    header: usize,
}

impl Idx {
    /// The data bytes after the header (exactly the product of `dims`).
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Size of the header in bytes: `4 + 4·dims.len()`.
    pub fn header_len(&self) -> usize {
        self.header
    }
}

/// What a reader expects of a file: any IDX file, or an image or a label file (checked on the
/// magic, before anything else is read).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Any,
    Images,
    Labels,
}

impl Kind {
    /// Bytes of memory the loader needs per data byte: an image byte also becomes an f32.
    fn bytes_per_value(self) -> usize {
        match self {
            Kind::Images => 5,
            Kind::Any | Kind::Labels => 1,
        }
    }
}

/// An IDX file whose header has been read and checked; the data is still in the stream.
struct Opened {
    src: Source,
    magic: u32,
    dims: Vec<usize>,
    header: usize,
    /// The data's size in bytes (the product of `dims`).
    data_len: u64,
}

/// Open the IDX file at `path` (gzipped or not) and read its header, checking in this order,
/// each before anything more is read: the magic (and the kind of file `kind` asks for), the
/// header's length, that no dimension is 0, that the claimed size fits in memory and, for a
/// plain file, that its length is exactly header plus data (for a gzip file, that deflate can
/// hold that much in the file's size).
fn open(path: &Path, kind: Kind) -> Result<Opened> {
    let bad = |why: String| Err(Error::data(path, why));
    let mut src = Source::open(path)?;
    let mut m = [0u8; 4];
    let got = src.read_full(&mut m)?;
    if got < 4 {
        return bad(format!(
            "not an IDX file: {got} bytes, too short for the 4-byte magic"
        ));
    }
    let magic = u32::from_be_bytes(m);
    let [z0, z1, ty, nd] = m;
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
    let want = match kind {
        Kind::Any => None,
        Kind::Images => Some((IMAGES_MAGIC, "image", "3 dimensions: count, rows, cols")),
        Kind::Labels => Some((LABELS_MAGIC, "label", "1 dimension: count")),
    };
    if let Some((want, name, layout)) = want.filter(|w| w.0 != magic) {
        return bad(format!(
            "not an IDX {name} file: magic 0x{magic:08x} ({nd} dimensions), expected 0x{want:08x} ({layout})"
        ));
    }
    let header = 4 + 4 * nd as usize;
    let mut raw = vec![0u8; header - 4];
    let got = src.read_full(&mut raw)?;
    if got < raw.len() {
        return bad(format!(
            "truncated IDX header: {nd} dimensions need {header} header bytes, the file has {} bytes",
            4 + got
        ));
    }
    let dims: Vec<usize> = raw
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    match kind {
        Kind::Images if dims[1] == 0 || dims[2] == 0 => {
            return bad(format!(
                "IDX image dimensions {dims:?} have an empty image side"
            ))
        }
        Kind::Images if dims[0] == 0 => return bad("IDX image file holds no images".into()),
        Kind::Labels if dims[0] == 0 => return bad("IDX label file holds no labels".into()),
        _ => {}
    }
    if let Some(k) = dims.iter().position(|&d| d == 0) {
        return bad(format!(
            "IDX dimensions {dims:?} hold no data: dimension {} is 0",
            k + 1
        ));
    }
    // The file's own bound first (it holds at most so much), then the machine's memory.
    let Some(data_len) = memory::bytes_of_dims(&dims, 1).and_then(|b| u64::try_from(b).ok()) else {
        return bad(format!("IDX dimensions {dims:?} overflow a 64-bit size"));
    };
    let opened = Opened {
        src,
        magic,
        dims,
        header,
        data_len,
    };
    let expected = opened.expected();
    let max = opened.src.max_content();
    if expected > max {
        return bad(if opened.src.gzipped {
            format!(
                "{}, but a gzip file of {} bytes decompresses to at most {max} (deflate's limit is {}:1)",
                opened.need(),
                opened.src.file_len,
                super::DEFLATE_MAX_RATIO
            )
        } else {
            opened.short_by(max)
        });
    }
    if !opened.src.gzipped && max > expected {
        return bad(opened.trailing(max - expected, true));
    }
    memory::check(
        memory::bytes_of_dims(&opened.dims, kind.bytes_per_value()),
        || format!("{}: IDX dimensions {:?}", path.display(), opened.dims),
    )?;
    Ok(opened)
}

impl Opened {
    /// Header plus data, in bytes.
    fn expected(&self) -> u64 {
        (self.header as u64).saturating_add(self.data_len)
    }

    /// "truncated IDX file: dimensions … need N bytes (h header + d data)".
    fn need(&self) -> String {
        format!(
            "truncated IDX file: dimensions {:?} need {} bytes ({} header + {} data)",
            self.dims,
            self.expected(),
            self.header,
            self.data_len
        )
    }

    /// The message for content of `found` bytes, fewer than expected.
    fn short_by(&self, found: u64) -> String {
        format!(
            "{}, found {found} bytes ({} missing)",
            self.need(),
            self.expected() - found
        )
    }

    /// The message for `extra` bytes past the data (`exact`: all of them were counted).
    fn trailing(&self, extra: u64, exact: bool) -> String {
        let count = if exact {
            format!("{extra} trailing bytes")
        } else {
            format!("more than {extra} trailing bytes")
        };
        let found = if exact {
            format!("found {} bytes", self.expected() + extra)
        } else {
            "and the stream goes on (reading stopped there)".to_string()
        };
        format!(
            "{count} after the IDX data: dimensions {:?} need {} bytes ({} header + {} data), {found}",
            self.dims,
            self.expected(),
            self.header,
            self.data_len
        )
    }

    /// Read the data, checking it against the header's claim as it streams in: reading stops
    /// at the claimed size (then a short probe counts any trailing bytes), and the buffer grows
    /// with the data that arrives, not with the claim.
    fn finish(mut self, path: &Path) -> Result<Idx> {
        let mut data = Vec::new();
        self.src.read_into(&mut data, self.data_len)?;
        let got = self.header as u64 + data.len() as u64;
        if got < self.expected() {
            return Err(Error::data(path, self.short_by(got)));
        }
        let mut probe = vec![0u8; TRAILING_PROBE + 1];
        let extra = self.src.read_full(&mut probe)?;
        if extra > 0 {
            let exact = extra <= TRAILING_PROBE;
            let n = extra.min(TRAILING_PROBE) as u64;
            return Err(Error::data(path, self.trailing(n, exact)));
        }
        Ok(Idx {
            magic: self.magic,
            dims: self.dims,
            data,
            header: self.header,
        })
    }
}

/// Read and parse the IDX file at `path`, gzipped or not (the module docs say what is checked
/// before the data is read, and how the data is read).
pub fn read(path: &Path) -> Result<Idx> {
    open(path, Kind::Any)?.finish(path)
}

/// Read an IDX image file (magic `0x00000803`: count × rows × cols). Returns the parsed file;
/// `dims` is `[count, rows, cols]`, all > 0.
pub fn read_images(path: &Path) -> Result<Idx> {
    open(path, Kind::Images)?.finish(path)
}

/// Read an IDX label file (magic `0x00000801`) and check every label is below `classes`.
pub fn read_labels(path: &Path, classes: usize) -> Result<Vec<u8>> {
    let idx = open(path, Kind::Labels)?.finish(path)?;
    if let Some(i) = idx.data.iter().position(|&l| l as usize >= classes) {
        return Err(Error::data(
            path,
            format!(
                "label {} at index {i} is out of range: expected 0..{} ({classes} classes)",
                idx.data[i],
                classes.saturating_sub(1)
            ),
        ));
    }
    Ok(idx.data)
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
    // The image header first, then the (small) label file, and only when both agree the image
    // data: a header claiming more images than there are labels is refused before its data
    // is read.
    let img = open(images, Kind::Images)?;
    let (n, rows, cols) = (img.dims[0], img.dims[1], img.dims[2]);
    if let Some((h, w)) = hw {
        if (rows, cols) != (h, w) {
            return Err(Error::data(
                images,
                format!("wrong image dimensions: expected {h}x{w} images, found {rows}x{cols} (dims {:?})", img.dims),
            ));
        }
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
    let img = img.finish(images)?;
    Ok(Dataset {
        x: scale_pixels(img.data(), 255)?,
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

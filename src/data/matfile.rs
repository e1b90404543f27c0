//! MATLAB's Level 5 MAT-file format (MathWorks, "MAT-File Format", the v5/v6/v7 files that
//! `save` writes and `scipy.io.savemat` writes; not v7.3, which is HDF5, nor v4), for numeric
//! arrays: what SVHN's `*_32x32.mat` files hold.
//!
//! Layout: a 128-byte header (116 bytes of text starting `MATLAB 5.0 MAT-file`, 8 bytes of
//! subsystem offset, a version `0x0100` and the endian indicator `IM` for a little-endian file,
//! `MI` for a big-endian one), then data elements, each a tag (u32 data type, u32 byte count)
//! and its data, padded to 8 bytes inside a matrix. A tag whose upper 16 bits are not zero is
//! the compact "small element" form (type in the low 16 bits, count in the high ones, up to 4
//! bytes of data in the tag's second word). Each variable is a top-level `miMATRIX` element, or
//! an `miCOMPRESSED` element holding one `miMATRIX` element deflated as a zlib stream (v7's
//! compression; not padded). A numeric `miMATRIX` holds four subelements: the array flags
//! (class in the low byte, complex bit `0x800`), the dimensions (`miINT32`, column-major: the
//! first dimension varies fastest), the name (`miINT8`) and the real part, whose storage type
//! may be narrower than the class (MATLAB stores a double array of small integers as `miUINT8`).
//!
//! [`read_variables`] lists every variable; numeric ones carry their real part, the rest
//! (cells, structs, characters, sparse arrays) only their name and class, so a loader can say
//! what it found instead of what it wanted. Every bound is checked against the bytes there: a
//! truncated element, a count that overruns its matrix, a real part whose size disagrees with
//! the dimensions, a corrupt zlib stream or an unknown data type is an error naming the file,
//! the variable where known and the byte offset.

use std::borrow::Cow;
use std::io::Read;
use std::ops::Range;
use std::path::Path;

use flate2::read::ZlibDecoder;

use super::npy::{Dtype, Kind};
use crate::{memory, Error, Result};

/// The header's length.
pub const HEADER_LEN: usize = 128;
/// Data types of elements (the `mi*` constants of the format).
pub const MI_INT8: u32 = 1;
pub const MI_UINT8: u32 = 2;
pub const MI_INT16: u32 = 3;
pub const MI_UINT16: u32 = 4;
pub const MI_INT32: u32 = 5;
pub const MI_UINT32: u32 = 6;
pub const MI_SINGLE: u32 = 7;
pub const MI_DOUBLE: u32 = 9;
pub const MI_INT64: u32 = 12;
pub const MI_UINT64: u32 = 13;
pub const MI_MATRIX: u32 = 14;
pub const MI_COMPRESSED: u32 = 15;
/// Array classes (the `mx*_CLASS` constants) of the numeric arrays.
pub const MX_DOUBLE: u8 = 6;
pub const MX_UINT8: u8 = 9;
pub const MX_UINT64: u8 = 15;
/// The complex bit of the array flags.
const COMPLEX: u32 = 0x0800;

/// The name of array class `c` in MATLAB's words.
pub fn class_name(c: u8) -> &'static str {
    match c {
        1 => "cell",
        2 => "struct",
        3 => "object",
        4 => "char",
        5 => "sparse",
        6 => "double",
        7 => "single",
        8 => "int8",
        9 => "uint8",
        10 => "int16",
        11 => "uint16",
        12 => "int32",
        13 => "uint32",
        14 => "int64",
        15 => "uint64",
        _ => "unknown",
    }
}

/// The element type of storage type `mi`, for the numeric ones.
fn storage_dtype(mi: u32, big_endian: bool) -> Option<Dtype> {
    let (kind, size) = match mi {
        MI_INT8 => (Kind::Signed, 1),
        MI_UINT8 => (Kind::Unsigned, 1),
        MI_INT16 => (Kind::Signed, 2),
        MI_UINT16 => (Kind::Unsigned, 2),
        MI_INT32 => (Kind::Signed, 4),
        MI_UINT32 => (Kind::Unsigned, 4),
        MI_SINGLE => (Kind::Float, 4),
        MI_DOUBLE => (Kind::Float, 8),
        MI_INT64 => (Kind::Signed, 8),
        MI_UINT64 => (Kind::Unsigned, 8),
        _ => return None,
    };
    Some(Dtype {
        kind,
        size,
        big_endian,
    })
}

/// One variable of a MAT-file.
#[derive(Clone, Debug)]
pub struct Variable<'a> {
    pub name: String,
    /// The array class (`mx*_CLASS`; 6..=15 are numeric).
    pub class: u8,
    /// Dimension sizes, column-major (the first varies fastest).
    pub dims: Vec<usize>,
    pub complex: bool,
    /// The real part's storage type and bytes (numeric classes only).
    real: Option<(Dtype, Cow<'a, [u8]>)>,
}

impl Variable<'_> {
    /// Whether the class is a numeric one (`double` … `uint64`).
    pub fn is_numeric(&self) -> bool {
        (MX_DOUBLE..=MX_UINT64).contains(&self.class)
    }

    /// The real part's bytes when it is stored as `miUINT8`.
    pub fn as_u8(&self) -> Option<&[u8]> {
        match &self.real {
            Some((d, bytes)) if d.kind == Kind::Unsigned && d.size == 1 => Some(bytes),
            _ => None,
        }
    }

    /// The real part's values as f64 (empty for a non-numeric variable).
    pub fn values(&self) -> Vec<f64> {
        match &self.real {
            Some((d, bytes)) => bytes.chunks_exact(d.size).map(|c| d.value(c)).collect(),
            None => Vec::new(),
        }
    }

    /// The dimensions as MATLAB prints them: `32x32x3x73257`.
    pub fn dims_str(&self) -> String {
        let d: Vec<String> = self.dims.iter().map(usize::to_string).collect();
        d.join("x")
    }
}

/// Every variable of the MAT-file `bytes`, read from `path`, in file order.
pub fn read_variables<'a>(bytes: &'a [u8], path: &Path) -> Result<Vec<Variable<'a>>> {
    let err = |why: String| Error::data(path, why);
    let big_endian = header_endianness(bytes).map_err(err)?;
    let mut vars = Vec::new();
    let mut pos = HEADER_LEN;
    while pos < bytes.len() {
        let el = Elements {
            b: bytes,
            big_endian,
        };
        let (ty, data) = el
            .top_level(pos)
            .map_err(|why| err(format!("at byte {pos}: {why}")))?;
        let next = data.end;
        match ty {
            MI_MATRIX => {
                let (mut var, real): (Variable<'a>, _) =
                    el.matrix(data).map_err(|why| err(format!("variable at byte {pos}: {why}")))?;
                var.real = real.map(|(d, r)| (d, Cow::Borrowed(&bytes[r])));
                vars.push(var);
            }
            MI_COMPRESSED => {
                let inner = inflate(&bytes[data])
                    .map_err(|why| err(format!("compressed variable at byte {pos}: {why}")))?;
                let el = Elements {
                    b: &inner,
                    big_endian,
                };
                let parsed = el.top_level(0).and_then(|(ty, data)| match ty {
                    MI_MATRIX => el.matrix(data),
                    _ => Err(format!("holds an element of type {ty}, not a matrix (14)")),
                });
                let (mut var, real): (Variable<'a>, _) = parsed
                    .map_err(|why| err(format!("compressed variable at byte {pos}: {why}")))?;
                var.real = real.map(|(d, r)| {
                    let mut owned = inner;
                    owned.truncate(r.end);
                    owned.drain(..r.start);
                    (d, Cow::Owned(owned))
                });
                vars.push(var);
            }
            _ => {
                return Err(err(format!(
                    "element of type {ty} at byte {pos} is not a variable (miMATRIX 14 or miCOMPRESSED 15)"
                )))
            }
        }
        pos = next;
    }
    Ok(vars)
}

/// Check the 128-byte header; whether the file is big-endian.
fn header_endianness(b: &[u8]) -> std::result::Result<bool, String> {
    if b.len() < HEADER_LEN {
        return Err(format!(
            "truncated MAT-file: {} bytes, less than its {HEADER_LEN}-byte header",
            b.len()
        ));
    }
    if !b.starts_with(b"MATLAB") {
        return Err(
            "not a MATLAB Level 5 MAT-file: the header text does not start with \"MATLAB\" (v4 files are not supported)"
                .to_string(),
        );
    }
    let big_endian = match &b[126..128] {
        b"IM" => false,
        b"MI" => true,
        e => {
            return Err(format!(
                "bad endian indicator {:02x} {:02x} at byte 126 (expected \"IM\" or \"MI\")",
                e[0], e[1]
            ))
        }
    };
    let raw = [b[124], b[125]];
    let version = if big_endian {
        u16::from_be_bytes(raw)
    } else {
        u16::from_le_bytes(raw)
    };
    match version {
        0x0100 => Ok(big_endian),
        0x0200 => Err(
            "a MATLAB v7.3 MAT-file (HDF5) is not supported; save it with -v7 (or scipy.io.savemat)"
                .to_string(),
        ),
        v => Err(format!(
            "MAT-file version 0x{v:04x} is not supported (Level 5 files are 0x0100)"
        )),
    }
}

/// Where a numeric variable's real part is in its buffer, and its storage type.
type RealPart = (Dtype, Range<usize>);

/// Reads of elements in a buffer of the file's byte order.
struct Elements<'b> {
    b: &'b [u8],
    big_endian: bool,
}

impl Elements<'_> {
    fn u32_at(&self, at: usize) -> Option<u32> {
        let raw: [u8; 4] = self.b.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(if self.big_endian {
            u32::from_be_bytes(raw)
        } else {
            u32::from_le_bytes(raw)
        })
    }

    /// The top-level element at `at`: its type and the range of its data (not padded).
    fn top_level(&self, at: usize) -> std::result::Result<(u32, Range<usize>), String> {
        let (Some(ty), Some(n)) = (self.u32_at(at), self.u32_at(at + 4)) else {
            return Err(format!(
                "truncated element tag: 8 bytes needed, {} left",
                self.b.len() - at
            ));
        };
        let start = at + 8;
        let end = start + n as usize;
        if end > self.b.len() {
            return Err(format!(
                "the element of type {ty} declares {n} bytes, only {} remain (truncated)",
                self.b.len() - start
            ));
        }
        Ok((ty, start..end))
    }

    /// The subelement at `at` inside a matrix ending at `end`: its type, data range and the
    /// offset of the next one (8-byte aligned), in the long or the small form.
    fn subelement(
        &self,
        at: usize,
        end: usize,
        what: &str,
    ) -> std::result::Result<(u32, Range<usize>, usize), String> {
        let word = self
            .u32_at(at)
            .filter(|_| at + 8 <= end)
            .ok_or_else(|| format!("the matrix ends before its {what}"))?;
        if word >> 16 != 0 {
            let n = (word >> 16) as usize;
            if n > 4 {
                return Err(format!(
                    "the {what}'s small element claims {n} bytes (at most 4)"
                ));
            }
            return Ok((word & 0xffff, at + 4..at + 4 + n, at + 8));
        }
        let n = self.u32_at(at + 4).unwrap_or(0) as usize;
        let start = at + 8;
        let data_end = start.checked_add(n).filter(|&e| e <= end).ok_or_else(|| {
            format!(
                "the {what} declares {n} bytes, the matrix holds {} more (truncated or corrupt)",
                end - start
            )
        })?;
        Ok((word, start..data_end, data_end.div_ceil(8) * 8))
    }

    /// The variable of the `miMATRIX` data at `m` and, for a numeric class, the storage type
    /// and range of its real part.
    fn matrix(
        &self,
        m: Range<usize>,
    ) -> std::result::Result<(Variable<'static>, Option<RealPart>), String> {
        let end = m.end;
        let (ty, flags, next) = self.subelement(m.start, end, "array flags")?;
        if ty != MI_UINT32 || flags.len() != 8 {
            return Err(format!(
                "the array flags are of type {ty} and {} bytes, expected miUINT32 (6) and 8",
                flags.len()
            ));
        }
        let word = self.u32_at(flags.start).unwrap_or(0);
        let class = (word & 0xff) as u8;
        let (ty, dims_at, next) = self.subelement(next, end, "dimensions")?;
        if ty != MI_INT32 || dims_at.len() % 4 != 0 || dims_at.len() < 8 {
            return Err(format!(
                "the dimensions are of type {ty} and {} bytes, expected miINT32 (5) and at least two",
                dims_at.len()
            ));
        }
        let mut dims = Vec::new();
        for at in dims_at.step_by(4) {
            let d = self.u32_at(at).unwrap_or(0) as i32;
            dims.push(usize::try_from(d).map_err(|_| format!("negative dimension {d}"))?);
        }
        let (ty, name_at, next) = self.subelement(next, end, "name")?;
        if ty != MI_INT8 {
            return Err(format!("the name is of type {ty}, expected miINT8 (1)"));
        }
        let name = String::from_utf8_lossy(&self.b[name_at]).into_owned();
        let var = Variable {
            name,
            class,
            dims,
            complex: word & COMPLEX != 0,
            real: None,
        };
        if !var.is_numeric() {
            return Ok((var, None));
        }
        let (ty, real, _) = self.subelement(next, end, "real part")?;
        let named = |why: String| format!("{:?}: {why}", var.name);
        let dtype = storage_dtype(ty, self.big_endian)
            .ok_or_else(|| named(format!("the real part's data type {ty} is not numeric")))?;
        let count = memory::bytes_of_dims(&var.dims, 1).unwrap_or(u128::MAX);
        if real.len() % dtype.size != 0 || (real.len() / dtype.size) as u128 != count {
            return Err(named(format!(
                "dimensions {} hold {count} values, its real part holds {} bytes of {}-byte values",
                var.dims_str(),
                real.len(),
                dtype.size
            )));
        }
        Ok((var, Some((dtype, real))))
    }
}

/// Inflate one `miCOMPRESSED` element's zlib stream (at most the memory's limit).
fn inflate(raw: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let cap = memory::limit() / 5;
    let mut out = Vec::new();
    ZlibDecoder::new(raw)
        .take(cap + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("cannot inflate its zlib stream (corrupt or truncated): {e}"))?;
    if out.len() as u64 > cap {
        return Err(format!(
            "inflates to more than {}, a fifth of this machine's memory",
            memory::format_bytes(cap as u128)
        ));
    }
    Ok(out)
}

//! The NumPy `.npy` array format, versions 1.0, 2.0 and 3.0 (`numpy.lib.format`): the magic
//! `\x93NUMPY`, a major and a minor version byte, the header's length (u16 little-endian in
//! 1.0, u32 in 2.0 and 3.0), the header itself, a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (100, 28, 28), }` padded with spaces and
//! a newline, and then the data in C (row-major) order.
//!
//! [`parse`] reads an array from bytes (a file's, or an `.npz` entry's) and refuses, naming
//! the file and the problem: a wrong magic or an unknown version, a header that is truncated
//! or not such a dict, a dtype that is not a plain number (unsigned or signed integers of 1, 2,
//! 4 or 8 bytes, f32 or f64, either byte order; objects, strings and structured dtypes are
//! refused), a Fortran-ordered array, and data that is not exactly the shape's element count
//! times the item size (truncated data and trailing bytes alike).

use std::path::Path;

use crate::{memory, Error, Result};

/// The first six bytes of every `.npy` file.
pub const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// What kind of number an element is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Unsigned,
    Signed,
    Float,
}

/// An element type: kind, size in bytes and byte order, as a `descr` such as `<f4` says (also
/// the storage types of MAT-file data, [`super::matfile`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dtype {
    pub kind: Kind,
    /// Bytes per element.
    pub size: usize,
    pub big_endian: bool,
}

impl Dtype {
    /// The dtype of a `descr` string (`|u1`, `<f4`, `>i8` …), or None for anything that is not
    /// a plain number of a supported size.
    fn from_descr(descr: &str) -> Option<Dtype> {
        let b = descr.as_bytes();
        if b.len() < 3 {
            return None;
        }
        let big_endian = match b[0] {
            b'<' | b'|' | b'=' => false,
            b'>' => true,
            _ => return None,
        };
        let kind = match b[1] {
            b'u' => Kind::Unsigned,
            b'i' => Kind::Signed,
            b'f' => Kind::Float,
            _ => return None,
        };
        let size: usize = descr[2..].parse().ok()?;
        let valid = match kind {
            Kind::Float => size == 4 || size == 8,
            Kind::Unsigned | Kind::Signed => matches!(size, 1 | 2 | 4 | 8),
        };
        valid.then_some(Dtype {
            kind,
            size,
            big_endian,
        })
    }

    /// The element whose `size` bytes are `raw`, as f64 (exact for every type except 64-bit
    /// integers above 2^53).
    pub fn value(&self, raw: &[u8]) -> f64 {
        let mut le = [0u8; 8];
        le[..self.size].copy_from_slice(&raw[..self.size]);
        if self.big_endian {
            le[..self.size].reverse();
        }
        let u = u64::from_le_bytes(le);
        match (self.kind, self.size) {
            (Kind::Float, 4) => f32::from_bits(u as u32) as f64,
            (Kind::Float, _) => f64::from_bits(u),
            (Kind::Unsigned, _) => u as f64,
            // Sign-extend from the element's width.
            (Kind::Signed, _) => {
                let shift = 64 - 8 * self.size as u32;
                (((u << shift) as i64) >> shift) as f64
            }
        }
    }

    /// NumPy's name of the type (`uint8`, `float32` …).
    pub fn name(&self) -> String {
        let kind = match self.kind {
            Kind::Unsigned => "uint",
            Kind::Signed => "int",
            Kind::Float => "float",
        };
        format!("{kind}{}", 8 * self.size)
    }
}

/// An array parsed from `.npy` bytes; its data borrows them.
#[derive(Clone, Debug)]
pub struct Array<'a> {
    pub dtype: Dtype,
    /// The dimension sizes, outermost first (empty for a scalar).
    pub shape: Vec<usize>,
    /// The raw elements, C order, `len() = count · dtype.size`.
    data: &'a [u8],
}

impl<'a> Array<'a> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len() / self.dtype.size
    }

    /// Whether the array holds no element.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The raw bytes of a uint8 array, or None for any other dtype.
    pub fn as_u8(&self) -> Option<&'a [u8]> {
        (self.dtype.kind == Kind::Unsigned && self.dtype.size == 1).then_some(self.data)
    }

    /// Element `i` as f64 (see [`Dtype::value`]).
    pub fn get(&self, i: usize) -> f64 {
        let size = self.dtype.size;
        self.dtype.value(&self.data[i * size..(i + 1) * size])
    }

    /// The shape as NumPy prints it: `(60000, 28, 28)`.
    pub fn shape_str(&self) -> String {
        shape_str(&self.shape)
    }
}

/// A shape as NumPy prints it: `(60000, 28, 28)`, `(5,)`, `()`.
pub fn shape_str(shape: &[usize]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => {
            let parts: Vec<String> = shape.iter().map(usize::to_string).collect();
            format!("({})", parts.join(", "))
        }
    }
}

/// Parse `.npy` bytes; `path` (and `entry`, the name inside an `.npz`, if any) name the
/// source in errors.
pub fn parse<'a>(bytes: &'a [u8], path: &Path, entry: Option<&str>) -> Result<Array<'a>> {
    let bad = |why: String| {
        let why = match entry {
            Some(e) => format!("{e}: {why}"),
            None => why,
        };
        Err(Error::data(path, why))
    };
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        let head: Vec<String> = bytes.iter().take(6).map(|b| format!("{b:02x}")).collect();
        return bad(format!(
            "not a .npy array: the file starts with {}, not the magic 93 4e 55 4d 50 59 (\\x93NUMPY)",
            if head.is_empty() {
                "nothing (it is empty)".to_string()
            } else {
                head.join(" ")
            }
        ));
    }
    if bytes.len() < 8 {
        return bad(format!(
            "truncated .npy header: {} bytes, the magic and version need 8",
            bytes.len()
        ));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let len_bytes = match major {
        1 => 2,
        2 | 3 => 4,
        _ => {
            return bad(format!(
                ".npy format version {major}.{minor} is not supported (only 1.0, 2.0 and 3.0)"
            ))
        }
    };
    let start = 8 + len_bytes;
    if bytes.len() < start {
        return bad(format!(
            "truncated .npy header: version {major}.{minor} needs {start} bytes before the header, the file has {}",
            bytes.len()
        ));
    }
    let mut n = [0u8; 4];
    n[..len_bytes].copy_from_slice(&bytes[8..start]);
    let header_len = u32::from_le_bytes(n) as usize;
    let Some(header) = bytes.get(start..start + header_len) else {
        return bad(format!(
            "truncated .npy header: it claims {header_len} bytes, {} are there",
            bytes.len() - start
        ));
    };
    let Ok(header) = std::str::from_utf8(header) else {
        return bad("the .npy header is not text".to_string());
    };
    let fields = match parse_header(header) {
        Ok(f) => f,
        Err(why) => return bad(format!("malformed .npy header {:?}: {why}", header.trim())),
    };
    let Some(dtype) = Dtype::from_descr(&fields.descr) else {
        return bad(format!(
            "dtype {:?} is not supported: expected a plain number (u1…u8, i1…i8, f4, f8)",
            fields.descr
        ));
    };
    if fields.fortran_order {
        return bad(format!(
            "the array {} is stored in Fortran order; save it C-ordered (np.ascontiguousarray)",
            shape_str(&fields.shape)
        ));
    }
    let data = &bytes[start + header_len..];
    let Some(want) = memory::bytes_of_dims(&fields.shape, dtype.size) else {
        return bad(format!(
            "shape {} overflows a 128-bit size",
            shape_str(&fields.shape)
        ));
    };
    if want != data.len() as u128 {
        let what = if (data.len() as u128) < want {
            "truncated data"
        } else {
            "trailing bytes after the data"
        };
        return bad(format!(
            "{what}: shape {} of {} needs {want} data bytes, the file holds {}",
            shape_str(&fields.shape),
            dtype.name(),
            data.len()
        ));
    }
    Ok(Array {
        dtype,
        shape: fields.shape,
        data,
    })
}

/// The three fields every `.npy` header holds.
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// A value of the header's dict.
enum Literal {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

/// Parse the header dict: `{'descr': STR, 'fortran_order': BOOL, 'shape': TUPLE}` with the
/// keys in any order, single or double quotes, optional trailing commas; the error says what
/// was expected where.
fn parse_header(text: &str) -> std::result::Result<Header, String> {
    let mut p = Literals {
        s: text.as_bytes(),
        pos: 0,
    };
    p.expect(b'{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        p.skip_space();
        if p.eat(b'}') {
            break;
        }
        let Literal::Str(key) = p.literal()? else {
            return Err(format!("a key at character {} is not a string", p.pos));
        };
        p.expect(b':')?;
        let at = p.pos;
        match (key.as_str(), p.literal()?) {
            ("descr", Literal::Str(s)) => descr = Some(s),
            ("fortran_order", Literal::Bool(b)) => fortran = Some(b),
            ("shape", Literal::Tuple(t)) => shape = Some(t),
            ("descr" | "fortran_order" | "shape", _) => {
                return Err(format!(
                    "the value of {key:?} at character {at} has the wrong type"
                ))
            }
            _ => return Err(format!("unknown key {key:?}")),
        }
        p.skip_space();
        if !p.eat(b',') {
            p.expect(b'}')?;
            break;
        }
    }
    match (descr, fortran, shape) {
        (Some(descr), Some(fortran_order), Some(shape)) => Ok(Header {
            descr,
            fortran_order,
            shape,
        }),
        _ => Err("it lacks one of 'descr', 'fortran_order' and 'shape'".to_string()),
    }
}

/// A cursor over the header's Python literals.
struct Literals<'s> {
    s: &'s [u8],
    pos: usize,
}

impl Literals<'_> {
    fn skip_space(&mut self) {
        while self.s.get(self.pos).is_some_and(u8::is_ascii_whitespace) {
            self.pos += 1;
        }
    }

    /// Consume `c` (after spaces) if it comes next.
    fn eat(&mut self, c: u8) -> bool {
        self.skip_space();
        if self.s.get(self.pos) == Some(&c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!(
                "expected '{}' at character {}",
                c as char, self.pos
            ))
        }
    }

    /// A string, `True`/`False`, or a tuple of non-negative integers.
    fn literal(&mut self) -> std::result::Result<Literal, String> {
        self.skip_space();
        let rest = &self.s[self.pos..];
        match rest.first() {
            Some(&q @ (b'\'' | b'"')) => {
                let len = rest[1..]
                    .iter()
                    .position(|&c| c == q)
                    .ok_or_else(|| format!("unterminated string at character {}", self.pos))?;
                let s = String::from_utf8_lossy(&rest[1..1 + len]).into_owned();
                self.pos += len + 2;
                Ok(Literal::Str(s))
            }
            Some(b'(') => {
                self.pos += 1;
                let mut dims = Vec::new();
                loop {
                    if self.eat(b')') {
                        break;
                    }
                    let from = self.pos;
                    while self.s.get(self.pos).is_some_and(u8::is_ascii_digit) {
                        self.pos += 1;
                    }
                    let digits = std::str::from_utf8(&self.s[from..self.pos]).unwrap_or("");
                    let d = digits
                        .parse::<usize>()
                        .map_err(|_| format!("expected a dimension size at character {from}"))?;
                    dims.push(d);
                    if !self.eat(b',') {
                        self.expect(b')')?;
                        break;
                    }
                }
                Ok(Literal::Tuple(dims))
            }
            _ if rest.starts_with(b"True") => {
                self.pos += 4;
                Ok(Literal::Bool(true))
            }
            _ if rest.starts_with(b"False") => {
                self.pos += 5;
                Ok(Literal::Bool(false))
            }
            _ => Err(format!("expected a value at character {}", self.pos)),
        }
    }
}

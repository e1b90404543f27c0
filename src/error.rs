//! The crate's one error type. Library code returns `Result<T>`; nothing in `src/` panics on bad
//! input. Each variant carries enough context (the op, the shapes, the file) for a user to act on.

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong in ssvae.
#[derive(Debug)]
pub enum Error {
    /// Two shapes that an op cannot combine, e.g. `matmul` with mismatched inner dimensions.
    Shape {
        op: &'static str,
        lhs: Vec<usize>,
        rhs: Vec<usize>,
        why: String,
    },
    /// An argument outside its domain (axis out of range, zero stride, index past the end …).
    Invalid { op: &'static str, why: String },
    /// Tensors on different devices were combined, or an op is missing on a device.
    Device(String),
    /// A dataset or checkpoint file that is missing, truncated or malformed.
    Data { path: PathBuf, why: String },
    /// The CUDA driver or NVRTC reported an error (kernel name and compile log included).
    Cuda(String),
    /// A non-finite value appeared where training cannot continue.
    NonFinite { what: String },
    /// A size from a flag, a file or a checkpoint that needs more memory than this machine has
    /// (see [`crate::memory`]), refused before allocating; `bytes` is None when computing it
    /// overflowed.
    TooLarge {
        what: String,
        bytes: Option<u128>,
        limit: u64,
    },
    /// An I/O error with the path it happened on.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Anything else, with a sentence for the user.
    Msg(String),
}

/// `std::result::Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A shape error for `op` between `lhs` and `rhs`.
    pub fn shape(op: &'static str, lhs: &[usize], rhs: &[usize], why: impl Into<String>) -> Self {
        Error::Shape {
            op,
            lhs: lhs.to_vec(),
            rhs: rhs.to_vec(),
            why: why.into(),
        }
    }

    /// An invalid-argument error for `op`.
    pub fn invalid(op: &'static str, why: impl Into<String>) -> Self {
        Error::Invalid {
            op,
            why: why.into(),
        }
    }

    /// A data-file error naming the file.
    pub fn data(path: impl Into<PathBuf>, why: impl Into<String>) -> Self {
        Error::Data {
            path: path.into(),
            why: why.into(),
        }
    }

    /// An I/O error naming the file.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A free-form message.
    pub fn msg(m: impl Into<String>) -> Self {
        Error::Msg(m.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Shape { op, lhs, rhs, why } => {
                write!(f, "{op}: shapes {lhs:?} and {rhs:?} do not fit: {why}")
            }
            Error::Invalid { op, why } => write!(f, "{op}: {why}"),
            Error::Device(m) => write!(f, "device: {m}"),
            Error::Data { path, why } => write!(f, "{}: {why}", path.display()),
            Error::Cuda(m) => write!(f, "cuda: {m}"),
            Error::NonFinite { what } => write!(f, "non-finite value: {what}"),
            Error::TooLarge { what, bytes, limit } => {
                let need = match bytes {
                    Some(b) => crate::memory::format_bytes(*b),
                    None => "more bytes than 128-bit arithmetic counts".to_string(),
                };
                write!(
                    f,
                    "{what} needs {need}, more than this machine's memory ({}); refused before allocating",
                    crate::memory::format_bytes(*limit as u128)
                )
            }
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Msg(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Return early with an [`Error::Invalid`] for `op` when `cond` is false.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $op:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::Error::invalid($op, format!($($fmt)+)));
        }
    };
}

//! Where a tensor lives. `Device::Cpu` is the rayon reference backend; `Device::Cuda(n)` is GPU `n`
//! through the hand-written kernels of `kernels/*.cu`. Also: which devices this machine (and
//! this build: the CUDA backend is the `cuda` cargo feature) has, and choosing one from a
//! command-line string, `auto`, `cpu`, `cuda` (= `cuda:0`) or `cuda:N`.

use crate::{Error, Result};
use std::fmt;

/// A compute device.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum Device {
    /// The CPU backend (rayon), the reference every kernel is checked against.
    #[default]
    Cpu,
    /// CUDA device with this ordinal.
    Cuda(usize),
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// Why this build cannot use CUDA at all: it was compiled without the `cuda` feature.
#[cfg(not(feature = "cuda"))]
const NO_CUDA_BACKEND: &str =
    "this ssvae was built without the CUDA backend (the `cuda` cargo feature is off)";

/// Number of CUDA devices, or why CUDA cannot be used here (also: this build has no CUDA
/// backend). Never panics.
pub fn cuda_status() -> std::result::Result<usize, String> {
    #[cfg(feature = "cuda")]
    {
        crate::backend::cuda::cuda_status()
    }
    #[cfg(not(feature = "cuda"))]
    {
        Err(NO_CUDA_BACKEND.to_string())
    }
}

/// Whether CUDA device `ordinal` is the PTX interpreter (the stand-in libcuda of `ptxemu/`)
/// rather than a GPU; false without the CUDA backend. Call only after [`cuda_status`]
/// succeeded.
pub fn is_emulated(ordinal: usize) -> bool {
    #[cfg(feature = "cuda")]
    {
        crate::backend::cuda::runtime::is_emulated(ordinal)
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = ordinal;
        false
    }
}

/// The error of a buffer asked for on `cuda:ordinal` by a build without the CUDA backend.
#[cfg(not(feature = "cuda"))]
pub(crate) fn no_cuda(ordinal: usize) -> Error {
    Error::Device(format!("cuda:{ordinal} requested but {NO_CUDA_BACKEND}"))
}

/// Parse a device name. `auto` picks `cuda:0` when [`cuda_status`] finds a GPU (not the PTX
/// interpreter), otherwise the CPU with a one-line notice on stderr. `cuda[:N]` is checked
/// against the devices present (an error in a build without the CUDA backend).
pub fn parse_device(s: &str) -> Result<Device> {
    let t = s.trim().to_ascii_lowercase();
    match t.as_str() {
        "cpu" => Ok(Device::Cpu),
        "auto" => match cuda_status() {
            // The PTX interpreter is a CUDA device for checking kernels, far slower than the
            // CPU: `auto` takes only a real GPU (`--device cuda` still reaches the interpreter).
            Ok(n) if n > 0 && !is_emulated(0) => Ok(Device::Cuda(0)),
            Ok(n) if n > 0 => {
                eprintln!(
                    "notice: the only CUDA device is the PTX interpreter (ptxemu); running on \
                     the CPU (--device cuda runs on the interpreter)"
                );
                Ok(Device::Cpu)
            }
            Ok(_) => {
                eprintln!("notice: no CUDA device found; running on the CPU");
                Ok(Device::Cpu)
            }
            // A build without CUDA has nothing to fall back from: no notice.
            Err(_) if !cfg!(feature = "cuda") => Ok(Device::Cpu),
            Err(why) => {
                eprintln!("notice: CUDA unavailable ({why}); running on the CPU");
                Ok(Device::Cpu)
            }
        },
        _ => {
            let ordinal = if t == "cuda" {
                0
            } else if let Some(n) = t.strip_prefix("cuda:") {
                n.parse::<usize>().map_err(|_| {
                    Error::invalid("device", format!("{s:?}: expected cuda:N with N a number"))
                })?
            } else {
                return Err(Error::invalid(
                    "device",
                    format!("{s:?}: expected auto, cpu, cuda or cuda:N"),
                ));
            };
            ensure_available(Device::Cuda(ordinal), s)
        }
    }
}

/// `device` itself when this machine has it (always for the CPU; for `cuda:N`, when
/// [`cuda_status`] finds more than N devices), else an error naming it as `requested`.
pub fn ensure_available(device: Device, requested: &str) -> Result<Device> {
    let Device::Cuda(ordinal) = device else {
        return Ok(device);
    };
    match cuda_status() {
        Ok(count) if ordinal < count => Ok(device),
        Ok(count) => Err(Error::Device(format!(
            "{requested}: only {count} CUDA device(s) present"
        ))),
        Err(why) => Err(Error::Device(format!("{requested} requested but {why}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        assert_eq!(parse_device(" CPU ").unwrap(), Device::Cpu);
        assert!(parse_device("gpu").is_err());
        assert!(parse_device("cuda:x").is_err());
        // auto never fails: a GPU when present, the CPU otherwise (also when the only CUDA
        // device is the PTX interpreter, which cuda:0 still reaches).
        let d = parse_device("auto").unwrap();
        match cuda_status() {
            Ok(_) if is_emulated(0) => {
                assert_eq!(d, Device::Cpu);
                assert_eq!(parse_device("cuda:0").unwrap(), Device::Cuda(0));
            }
            Ok(_) => assert_eq!(d, Device::Cuda(0)),
            Err(_) => {
                assert_eq!(d, Device::Cpu);
                assert!(parse_device("cuda:0").is_err());
            }
        }
    }

    #[test]
    #[cfg(not(feature = "cuda"))]
    fn cuda_without_the_backend_is_a_clear_error() {
        let e = parse_device("cuda").unwrap_err().to_string();
        assert!(e.contains("built without the CUDA backend"), "{e}");
        let e = crate::Tensor::zeros([2], Device::Cuda(0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cuda:0 requested but"), "{e}");
    }
}

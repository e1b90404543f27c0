//! Choosing a device from a command-line string: `auto`, `cpu`, `cuda` (= `cuda:0`) or `cuda:N`.

use super::runtime::{cuda_status, is_emulated};
use crate::{Device, Error, Result};

/// Parse a device name. `auto` picks `cuda:0` when [`cuda_status`] finds a GPU (not the PTX
/// interpreter), otherwise the CPU with a one-line notice on stderr. `cuda[:N]` is checked against the devices present.
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
}

//! Where a tensor lives. `Device::Cpu` is the rayon reference backend; `Device::Cuda(n)` is GPU `n`
//! through the hand-written kernels of `kernels/*.cu`.

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

//! # ptxemu: a PTX interpreter behind a stand-in `libcuda`
//!
//! Runs ssvae's CUDA backend on a machine without a GPU, unchanged: cudarc `dlopen`s
//! `libcuda.so` and resolves each driver call by name, so this crate, built as a `cdylib` and
//! installed as `libcuda.so`/`libcuda.so.1` ahead of any real driver on the loader path, is the
//! driver. NVRTC (the real one) still compiles `kernels/*.cu` to PTX; this crate interprets it.
//!
//! Read it in this order:
//! - [`parse`]: PTX text → [`ir`] (one decoded [`ir::Inst`] per instruction, strict: a form it
//!   does not know is an error, never skipped);
//! - [`float`]: the exact f32/f64 arithmetic of the ISA (every rounding mode, `.ftz`, `.sat`,
//!   the correctly rounded `div.rn`/`sqrt.rn`/`rcp.rn`, conversions, TF32);
//! - [`exec`]: the instruction semantics and the scheduler (sm_70+ independent thread
//!   scheduling: every thread runs until it reaches a collective; lanes that share a program
//!   counter run together, which changes only the speed);
//! - [`memory`]: device memory with an allocation table and a written-byte shadow;
//! - [`error`]: the sanitizer checks' reports;
//! - [`profile`]: per-launch instruction, sector and bank-conflict counts;
//! - [`machine`]: the device as a library; [`driver`]: the C driver API over it.

pub mod driver;
pub mod error;
pub mod exec;
pub mod float;
pub mod ir;
pub mod machine;
pub mod memory;
pub mod parse;
pub mod profile;

pub use error::{EmuError, EmuResult, Fault, FaultKind};
pub use machine::{KernelId, LaunchConfig, Machine};
pub use profile::LaunchProfile;

//! What can go wrong, and how it is reported.
//!
//! Two families, as on a real GPU:
//! - [`EmuError::Invalid`] and friends: a driver call refused at once (bad pointer, bad launch
//!   configuration, an image that is not PTX). The context stays usable.
//! - [`EmuError::Fault`]: a kernel did something a sanitizer would flag (an out-of-bounds or
//!   misaligned access, a read of never-written memory, a shared-memory race, a deadlocked
//!   collective). A [`Fault`] names the kernel, block, thread, PTX line and (from `.loc`) the
//!   CUDA source line. The driver layer makes it sticky and reports it at the next
//!   synchronisation, the way an asynchronous launch error surfaces on hardware.

use std::fmt;

/// Which check a kernel failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// A global/shared/local/param access outside every allocation (or a freed one).
    OutOfBounds,
    /// An access whose address is not a multiple of its size.
    Misaligned,
    /// A load of device or shared memory that nothing ever wrote.
    UninitialisedRead,
    /// Two threads touched the same shared-memory word between two barriers, at least one
    /// writing, with no synchronisation ordering them.
    SharedRace,
    /// A `bar.sync`, `shfl.sync` or `mma.sync` that not every required thread can reach.
    Deadlock,
    /// An instruction the interpreter does not implement, or an operand it cannot take.
    Unsupported,
    /// A trap or a division the ISA leaves undefined that we refuse to guess at.
    Trap,
}

impl FaultKind {
    /// A short name, as compute-sanitizer would print it.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::OutOfBounds => "out-of-bounds access",
            FaultKind::Misaligned => "misaligned access",
            FaultKind::UninitialisedRead => "read of uninitialised memory",
            FaultKind::SharedRace => "shared-memory data race",
            FaultKind::Deadlock => "deadlock",
            FaultKind::Unsupported => "unsupported instruction",
            FaultKind::Trap => "trap",
        }
    }
}

/// One kernel fault, with where it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    /// The kernel's name (its `.entry`).
    pub kernel: String,
    /// `%ctaid` of the faulting thread.
    pub block: [u32; 3],
    /// `%tid` of the faulting thread.
    pub thread: [u32; 3],
    /// 1-based line of the instruction in the PTX text.
    pub ptx_line: u32,
    /// The instruction as written in the PTX.
    pub instruction: String,
    /// `file:line` of the CUDA source, from the last `.loc` before the instruction.
    pub source: Option<String>,
    /// What exactly was wrong (addresses, sizes, the other thread of a race…).
    pub detail: String,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [bx, by, bz] = self.block;
        let [tx, ty, tz] = self.thread;
        write!(
            f,
            "{} in kernel {} at block ({bx},{by},{bz}) thread ({tx},{ty},{tz}), PTX line {}",
            self.kind.name(),
            self.kernel,
            self.ptx_line
        )?;
        if let Some(s) = &self.source {
            write!(f, " ({s})")?;
        }
        write!(f, ": `{}`: {}", self.instruction, self.detail)
    }
}

/// An error of the interpreter or its driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EmuError {
    /// A bad argument to a driver call (null pointer, unknown handle, bad size).
    Invalid(String),
    /// A launch the device cannot run (block too large, grid dimension out of range, too much
    /// shared memory, wrong parameter buffer size).
    InvalidLaunch(String),
    /// A module image that is not PTX text (a CUBIN is machine code for a real GPU).
    NotPtx(String),
    /// PTX that does not parse, or uses what the interpreter does not implement.
    Parse(String),
    /// No such kernel or symbol.
    NotFound(String),
    /// Not enough (emulated) device memory.
    OutOfMemory(String),
    /// A copy or memset touching memory outside every allocation.
    BadCopy(String),
    /// A kernel fault.
    Fault(Box<Fault>),
}

impl fmt::Display for EmuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmuError::Invalid(s) => write!(f, "invalid value: {s}"),
            EmuError::InvalidLaunch(s) => write!(f, "invalid launch: {s}"),
            EmuError::NotPtx(s) => write!(f, "not a PTX image: {s}"),
            EmuError::Parse(s) => write!(f, "PTX parse error: {s}"),
            EmuError::NotFound(s) => write!(f, "not found: {s}"),
            EmuError::OutOfMemory(s) => write!(f, "out of memory: {s}"),
            EmuError::BadCopy(s) => write!(f, "illegal copy: {s}"),
            EmuError::Fault(x) => write!(f, "{x}"),
        }
    }
}

impl std::error::Error for EmuError {}

/// Results of the interpreter.
pub type EmuResult<T> = std::result::Result<T, EmuError>;

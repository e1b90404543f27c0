//! Ctrl-C (SIGINT) and SIGTERM during `ssvae train`: the first one only raises a flag, which the
//! training loop reads at the next step boundary to checkpoint and stop (exit status 128 + the
//! signal's number, 130 for Ctrl-C, as a shell reports a process the signal killed); a second
//! one ends the process at once with that status (a checkpoint being written then is lost, the
//! previous one stays intact: saving is atomic).

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;
use ssvae::{Error, Result};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// The signals that stop training gracefully.
const SIGNALS: [i32; 2] = [SIGINT, SIGTERM];

/// The handlers' flags: whether a stop was asked for, and by which signal.
pub struct Interrupt {
    requested: Arc<AtomicBool>,
    signal: Arc<AtomicUsize>,
}

impl Interrupt {
    /// Install the handlers of SIGINT and SIGTERM (for the rest of the process).
    pub fn install() -> Result<Self> {
        let requested = Arc::new(AtomicBool::new(false));
        let signal = Arc::new(AtomicUsize::new(0));
        for sig in SIGNALS {
            let registered = (|| {
                // Registered first, so it runs before the flag is raised: it exits only on a
                // signal that finds the flag raised already, i.e. on the second one.
                flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&requested))?;
                flag::register_usize(sig, Arc::clone(&signal), sig as usize)?;
                flag::register(sig, Arc::clone(&requested))
            })();
            registered.map_err(|e| {
                Error::msg(format!(
                    "cannot install the handler of {}: {e}",
                    signal_name(sig as usize)
                ))
            })?;
        }
        Ok(Interrupt { requested, signal })
    }

    /// Whether a stop was asked for.
    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// The name of the signal that asked for the stop (`SIGINT`, `SIGTERM`).
    pub fn name(&self) -> &'static str {
        signal_name(self.signal.load(Ordering::SeqCst))
    }

    /// The exit status that reports the stop: 128 + the signal's number.
    pub fn exit_status(&self) -> u8 {
        u8::try_from(128 + self.signal.load(Ordering::SeqCst)).unwrap_or(u8::MAX)
    }
}

fn signal_name(sig: usize) -> &'static str {
    match sig {
        s if s == SIGINT as usize => "SIGINT",
        s if s == SIGTERM as usize => "SIGTERM",
        _ => "a signal",
    }
}

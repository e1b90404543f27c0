//! Memory limits checked before allocating. Where a size comes from outside the program (a
//! flag such as `--hidden` or `--scale`, an IDX header, a checkpoint's config), the bytes it
//! implies are computed with checked arithmetic and compared with [`limit`], this machine's
//! memory, so that an impossible size is an [`Error::TooLarge`] naming the figure and the limit
//! instead of an allocation failure (which aborts a Rust process with a backtrace) or a kill by
//! the kernel's out-of-memory handler. Vectors sized from such input are reserved with
//! `try_reserve` ([`try_vec`]), so that a size under the limit that the allocator still cannot
//! serve is an error too, never an abort.
//!
//! A model is checked as it is built: [`with_model_ledger`] opens a ledger on the calling
//! thread, and every weight initialised by [`Init::variable`](crate::nn::Init::variable) (all
//! the weights of every model) claims four times its bytes there before it is allocated (the
//! value, its gradient and Adam's two moments), so that `--hidden 100000000` is refused at the
//! first weight that overdraws the machine, not after the allocations that fit have filled it.

use crate::{Error, Result};
use std::cell::Cell;
use std::sync::OnceLock;

/// Bytes of host memory an allocation (or a model, with its training state) may reach: the
/// machine's physical memory (`MemTotal` of `/proc/meminfo`), or a container's memory limit
/// (cgroup v2 `memory.max`, v1 `memory.limit_in_bytes`) when that is lower. Where neither can
/// be read, `isize::MAX` (the largest allocation Rust can make), so that only sizes that
/// overflow are refused and `try_reserve` does the rest.
pub fn limit() -> u64 {
    static LIMIT: OnceLock<u64> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        let total = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().strip_suffix("kB"))
                    .and_then(|kb| kb.trim().parse::<u64>().ok())
            })
            .map(|kb| kb.saturating_mul(1024));
        let cgroup = [
            "/sys/fs/cgroup/memory.max",
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        ]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter_map(|s| s.trim().parse::<u64>().ok())
        .min();
        [total, cgroup]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(isize::MAX as u64)
    })
}

/// `count · size` bytes, or `None` when that overflows 128 bits.
pub fn bytes_of(count: usize, size: usize) -> Option<u128> {
    (count as u128).checked_mul(size as u128)
}

/// The product of `dims` times `size` bytes, or `None` on overflow.
pub fn bytes_of_dims(dims: &[usize], size: usize) -> Option<u128> {
    dims.iter()
        .try_fold(size as u128, |acc, &d| acc.checked_mul(d as u128))
}

/// `Ok` when `bytes` (None: an overflow) fit within [`limit`]; else [`Error::TooLarge`] for
/// `what` (e.g. "--scale 100000: a grid of 8900000×8900000 pixels"), built only on refusal.
pub fn check(bytes: Option<u128>, what: impl FnOnce() -> String) -> Result<()> {
    let limit = limit();
    match bytes {
        Some(b) if b <= limit as u128 => Ok(()),
        _ => Err(Error::TooLarge {
            what: what(),
            bytes,
            limit,
        }),
    }
}

/// An empty vector with room for `n` elements, checked against [`limit`] and reserved with
/// `try_reserve_exact`: an error for `what`, never an abort.
pub fn try_vec<T>(n: usize, what: impl Fn() -> String) -> Result<Vec<T>> {
    let bytes = bytes_of(n, std::mem::size_of::<T>());
    check(bytes, &what)?;
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| Error::TooLarge {
        what: format!("{} (the allocator refused it)", what()),
        bytes,
        limit: limit(),
    })?;
    Ok(v)
}

/// `n` copies of `value` in a vector from [`try_vec`].
pub fn try_filled<T: Clone>(n: usize, value: T, what: impl Fn() -> String) -> Result<Vec<T>> {
    let mut v = try_vec(n, what)?;
    v.resize(n, value);
    Ok(v)
}

/// A byte count for people: `23.5 GiB`, `812 B`.
pub fn format_bytes(bytes: u128) -> String {
    const UNITS: [&str; 8] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// How many copies of each weight training holds: the value, its gradient and Adam's first
/// and second moments.
pub const TRAINING_COPIES: usize = 4;

thread_local! {
    /// The bytes claimed by the model being built on this thread (None: no ledger open).
    static LEDGER: Cell<Option<u128>> = const { Cell::new(None) };
}

/// Run `build` (a model's constructor) with a ledger open on this thread: each weight
/// [`claim_weight`]s its training bytes before it is allocated, and the first claim that takes
/// the total past [`limit`] fails the build with an [`Error::TooLarge`] naming `what` (the
/// model and the flags that size it). Ledgers nest (the inner one's claims count in the outer).
pub fn with_model_ledger<T>(
    what: impl FnOnce() -> String,
    build: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let outer = LEDGER.with(|l| l.replace(Some(0)));
    let result = build();
    let claimed = LEDGER.with(|l| l.replace(outer)).unwrap_or(0);
    if let Some(o) = outer {
        LEDGER.with(|l| l.set(Some(o.saturating_add(claimed))));
    }
    result.map_err(|e| in_context(e, what))
}

/// `e` with `context` (e.g. the flags that sized it) put before its subject when it is an
/// [`Error::TooLarge`]; any other error unchanged.
pub fn in_context(e: Error, context: impl FnOnce() -> String) -> Error {
    match e {
        Error::TooLarge { what, bytes, limit } => Error::TooLarge {
            what: format!("{}: {what}", context()),
            bytes,
            limit,
        },
        e => e,
    }
}

/// Claim the training bytes of a weight of `dims` (f32, [`TRAINING_COPIES`] copies) in this
/// thread's ledger, if one is open, and check the weight alone against [`limit`] either way.
pub fn claim_weight(dims: &[usize]) -> Result<()> {
    let bytes = bytes_of_dims(dims, 4 * TRAINING_COPIES);
    let total = LEDGER.with(|l| match (l.get(), bytes) {
        (Some(sum), Some(b)) => {
            let t = sum.checked_add(b);
            l.set(Some(t.unwrap_or(u128::MAX)));
            t
        }
        (None, b) => b,
        (Some(_), None) => None,
    });
    check(total, || {
        format!(
            "its weights with their gradients and Adam's moments, counted up to the weight of shape {dims:?},"
        )
    })
}

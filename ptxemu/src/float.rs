//! # `float`: the arithmetic of PTX's `.f32` and `.f64` instructions, bit for bit
//!
//! Every floating-point value the interpreter writes to a register is computed here: `add`,
//! `sub`, `mul` and `fma` in all four rounding directions, the correctly rounded
//! `div`/`sqrt`/`rcp` family, the `.approx` special functions, `min`/`max`, the conversions of
//! `cvt`, and the TF32 rounding of the tensor-core path.
//!
//! ## Why the host's float operators are not enough
//!
//! Rust's `+ - * /` round to nearest, ties to even, and nothing else: there is no per-operation
//! rounding direction. PTX names one on each instruction (`.rn .rz .rm .rp`), and CUDA code that
//! uses `__fadd_rd`, `__fdiv_ru` and friends (interval bounds, reproducible reductions) depends
//! on it. The host also chooses its own NaN bit patterns, where the GPU writes fixed ones.
//!
//! ## How: one exact engine, one rounding step
//!
//! 1. Each finite operand is split into sign · significand · 2^exponent with an integer
//!    significand (`Term`).
//! 2. The exact result is computed with integers (`Exact`): a product of two significands
//!    fits a `u128` (53 + 53 bits); a sum is aligned in a 126-bit window, an addend that falls
//!    below the window leaving only a *sticky* flag ("something nonzero was here"); a quotient
//!    or square root is computed to 74 or 63 bits, its nonzero remainder again a sticky flag.
//! 3. `round` turns the exact result into the destination's bits in the requested direction,
//!    with gradual underflow (subnormal results) and IEEE overflow (a direction that points
//!    toward zero for the result's sign, such as `.rz`, or `.rm` for a positive value, stops at
//!    the largest finite value instead of reaching infinity).
//!
//! `f32` and `f64` differ only in two field widths and a NaN rule (`Format`), so both go
//! through the same code.
//!
//! The familiar alternative (round to nearest on the host, compute the exact error with TwoSum
//! or an `f64::mul_add` residual, then step one ulp in the error's direction) is sound for `f32`
//! computed in `f64`, which has room to spare. For `f64` itself it fails near the bottom of the
//! range: the residual of a product or quotient whose result is near 2^-1074 is itself
//! unrepresentable, may round to zero, and then the step goes the wrong way, silently and only
//! for tiny values. Integer arithmetic has no such corner, so this file uses it for both widths.
//!
//! ## What the ISA says (PTX ISA, "Floating-Point Instructions" and "cvt"), and what follows
//!
//! - "Instructions that support rounding modifiers are IEEE-754 compliant." The results below
//!   are the IEEE 754 correctly rounded ones, including the sign of exact zeros
//!   (`x + (-x)` is `+0` except under `.rm`, where it is `-0`).
//! - Subnormals are supported by default (sm_20+); `.ftz` "flushes subnormal inputs and results
//!   to sign-preserving zero". No function here flushes: the caller implements `.ftz` by
//!   applying [`ftz`] to each input and to the result. Likewise `.sat` ("clamps the result to
//!   [0.0, 1.0]. NaN results are flushed to +0.0f") is [`saturate`] applied to the result.
//! - NaN bits: "NaN payloads are supported for double-precision instructions (except for
//!   `rcp.approx.ftz.f64` and `rsqrt.approx.ftz.f64`, which maps input NaNs to a canonical
//!   NaN). Single-precision instructions return an unspecified NaN." The NaN the hardware
//!   writes is `0x7fffffff` (NVIDIA's instruction notes: operations that would result in NaN
//!   "generate NVIDIA canonical NaN (0x7fff_ffff)"), so every `f32` NaN result here is
//!   [`CANONICAL_NAN_F32`]. For `f64` the ISA's rule is kept: a NaN operand passes through with
//!   its payload (quiet bit set; the first NaN operand in order `a, b, c`), and a NaN created by
//!   an invalid operation (`inf - inf`, `0 * inf`, `0 / 0`, `sqrt(-1)`) is [`CANONICAL_NAN_F64`].
//!   `neg` and `abs` are sign-bit operations left to the caller (the ISA: "NaN inputs yield an
//!   unspecified NaN").
//! - `min`/`max` return the other operand when one is NaN and order `-0.0 < +0.0`.
//! - The `.approx` functions are computed in `f64` and rounded to the nearest `f32`: far inside
//!   the ISA's error bounds, and the same answer on every run (for `ex2`, `lg2`, `sin`, `cos`
//!   the f64 value comes from the host's libm, so another host may differ in the last f32 bit
//!   in rare near-tie cases). Their `.ftz` forms are, again, [`ftz`] on input and result.
//!   The ISA's special-value tables are reproduced exactly.

use std::cmp::Ordering;

use crate::ir::IntRounding;

/// IEEE rounding direction of an f32/f64 result: `.rn .rz .rm .rp`.
///
/// PTX ISA, "Floating-Point Instructions: add": ".rn mantissa LSB rounds to nearest even, .rz
/// ... towards zero, .rm ... towards negative infinity, .rp ... towards positive infinity";
/// `.rn` is the default where a modifier may be omitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Rounding {
    /// `.rn`: the nearest representable value; a tie goes to the one with an even significand.
    #[default]
    Nearest,
    /// `.rz`: the nearest value no larger in magnitude (truncation).
    Zero,
    /// `.rm`: the nearest value not above the exact result (toward −∞).
    Down,
    /// `.rp`: the nearest value not below the exact result (toward +∞).
    Up,
}

/// The NaN the GPU writes for every single-precision NaN result: sign clear, all exponent and
/// fraction bits set. PTX does not propagate f32 NaN payloads.
pub const CANONICAL_NAN_F32: u32 = 0x7fff_ffff;

/// The NaN this file writes when a double-precision operation *creates* a NaN from non-NaN
/// operands (`inf - inf`, `0 * inf`, `0 / 0`, `sqrt(-1)`). A NaN *operand* of an f64
/// operation instead passes through with its payload, as the ISA specifies.
pub const CANONICAL_NAN_F64: u64 = 0x7fff_ffff_ffff_ffff;

/// The NaN [`cvt_rna_tf32`] and [`tf32_truncate`] write: the canonical f32 NaN with the 13
/// fraction bits TF32 lacks cleared (all 10 TF32 fraction bits set), so that every TF32 result
/// keeps its low 13 bits zero.
pub const CANONICAL_NAN_TF32: u32 = 0x7fff_e000;

/// `.ftz` ("flush to zero"): a subnormal becomes the zero of the same sign; every other value,
/// NaN included, is returned unchanged.
///
/// PTX ISA, Floating-Point Instructions: "`.ftz` flushes subnormal inputs and results to
/// sign-preserving zero". The caller applies it to each `.f32` input before the operation and
/// to the result after it.
pub fn ftz(x: f32) -> f32 {
    if x.is_subnormal() {
        f32::from_bits(x.to_bits() & 0x8000_0000)
    } else {
        x
    }
}

/// `.sat`: clamp a result to [+0.0, 1.0]; NaN becomes +0.0.
///
/// PTX ISA, "add": "`add.sat.f32` clamps the result to [0.0, 1.0]. NaN results are flushed to
/// +0.0f." (likewise `sub`, `mul`, `fma`, `mad`, and `cvt` to a float type). A negative zero is
/// clamped to `+0.0` too: NVIDIA's own description of the hardware saturation names the range
/// (+0.0, 1.0).
pub fn saturate(x: f32) -> f32 {
    if x > 0.0 {
        x.min(1.0)
    } else {
        0.0
    }
}

/// The three numbers that distinguish IEEE binary32 from binary64, and the NaN rule that
/// distinguishes PTX's f32 instructions from its f64 ones.
#[derive(Clone, Copy)]
struct Format {
    /// Significand bits, counting the implicit leading one: 24 or 53.
    precision: u32,
    /// Width of the biased exponent field: 8 or 11.
    exponent_bits: u32,
    /// Whether a NaN operand's payload reaches the result (f64) or every NaN result is the
    /// canonical one (f32).
    keeps_nan_payload: bool,
}

const BINARY32: Format = Format {
    precision: 24,
    exponent_bits: 8,
    keeps_nan_payload: false,
};

const BINARY64: Format = Format {
    precision: 53,
    exponent_bits: 11,
    keeps_nan_payload: true,
};

impl Format {
    fn fraction_bits(self) -> u32 {
        self.precision - 1
    }

    fn sign_bit(self) -> u64 {
        1 << (self.fraction_bits() + self.exponent_bits)
    }

    /// Bits of +∞: exponent field all ones, fraction zero. Every larger magnitude is a NaN.
    fn infinity(self) -> u64 {
        ((1 << self.exponent_bits) - 1) << self.fraction_bits()
    }

    /// Bits of the largest finite magnitude (`f32::MAX`, `f64::MAX`).
    fn largest_finite(self) -> u64 {
        self.infinity() - 1
    }

    /// All bits but the sign: `0x7fff_ffff` and `0x7fff_ffff_ffff_ffff`.
    fn canonical_nan(self) -> u64 {
        self.sign_bit() - 1
    }

    /// The most significant fraction bit, set in a quiet NaN.
    fn quiet_bit(self) -> u64 {
        1 << (self.fraction_bits() - 1)
    }

    fn bias(self) -> i32 {
        (1 << (self.exponent_bits - 1)) - 1
    }

    /// The exponent of the smallest subnormal, which is also the spacing of all subnormals and
    /// of the smallest normal binade: 2^-149 for f32, 2^-1074 for f64.
    fn min_quantum(self) -> i32 {
        1 - self.bias() - self.fraction_bits() as i32
    }

    /// The spacing exponent of the largest finite binade: 2^104 for f32, 2^971 for f64.
    fn max_quantum(self) -> i32 {
        self.bias() - self.fraction_bits() as i32
    }

    fn signed(self, negative: bool, magnitude: u64) -> u64 {
        if negative {
            magnitude | self.sign_bit()
        } else {
            magnitude
        }
    }

    /// The NaN an operation returns. `operands` are the inputs in instruction order; when one
    /// is a NaN and the format keeps payloads (f64), the first such operand is returned,
    /// quieted. Otherwise the NaN was created by the operation (or the format is f32) and the
    /// canonical NaN is returned.
    fn nan_result(self, operands: &[u64]) -> u64 {
        let magnitude_mask = self.sign_bit() - 1;
        let first_nan = operands
            .iter()
            .find(|&&bits| bits & magnitude_mask > self.infinity());
        match first_nan {
            Some(&nan) if self.keeps_nan_payload => nan | self.quiet_bit(),
            _ => self.canonical_nan(),
        }
    }
}

/// A finite nonzero value, exactly: (−1)^negative · significand · 2^exponent.
#[derive(Clone, Copy)]
struct Term {
    negative: bool,
    significand: u128,
    exponent: i32,
}

/// What an operand is, as far as the special cases of IEEE arithmetic care.
enum Class {
    Nan,
    Infinite { negative: bool },
    Zero { negative: bool },
    Finite(Term),
}

fn classify(format: Format, bits: u64) -> Class {
    let negative = bits & format.sign_bit() != 0;
    let magnitude = bits & (format.sign_bit() - 1);
    let fraction = magnitude & ((1 << format.fraction_bits()) - 1);
    let biased_exponent = (magnitude >> format.fraction_bits()) as i32;
    if magnitude > format.infinity() {
        Class::Nan
    } else if magnitude == format.infinity() {
        Class::Infinite { negative }
    } else if magnitude == 0 {
        Class::Zero { negative }
    } else if biased_exponent == 0 {
        // Subnormal: no implicit one, the spacing of the smallest binade.
        Class::Finite(Term {
            negative,
            significand: fraction.into(),
            exponent: format.min_quantum(),
        })
    } else {
        Class::Finite(Term {
            negative,
            significand: (fraction | 1 << format.fraction_bits()).into(),
            exponent: biased_exponent - 1 + format.min_quantum(),
        })
    }
}

fn is_negative(format: Format, bits: u64) -> bool {
    bits & format.sign_bit() != 0
}

/// An exact result awaiting rounding. Its magnitude is `significand · 2^exponent` when
/// `sticky` is false, and lies strictly between `significand · 2^exponent` and
/// `(significand + 1) · 2^exponent` when it is true (the bits below were nonzero but are not
/// kept).
///
/// Every producer keeps the significand below 2^127. Those that set `sticky` keep at least
/// `precision + 1` significant bits, so the unknown tail sits entirely below the half-ulp bit
/// of the result; that is what lets [`round`] decide every direction, ties included.
#[derive(Clone, Copy)]
struct Exact {
    negative: bool,
    significand: u128,
    exponent: i32,
    sticky: bool,
}

impl From<Term> for Exact {
    fn from(term: Term) -> Exact {
        Exact {
            negative: term.negative,
            significand: term.significand,
            exponent: term.exponent,
            sticky: false,
        }
    }
}

/// Number of significant bits of `x` (0 for 0).
fn bit_length(x: u128) -> i32 {
    (u128::BITS - x.leading_zeros()) as i32
}

/// IEEE 754 rounding of an exact value to `format`, in direction `rounding`.
///
/// The unit in the last place of the result is 2^quantum with
/// `quantum = max(top − precision, min_quantum)`, `top` being one past the leading bit's
/// position: `precision` bits are kept for a normal result, fewer for a subnormal one
/// (gradual underflow). The discarded bits (and the sticky tail) are compared with half a
/// unit; the kept significand is then incremented or not according to the direction:
///
/// | direction | increment when                                        |
/// |-----------|-------------------------------------------------------|
/// | `.rn`     | discarded > ½, or = ½ exactly and the kept value is odd |
/// | `.rz`     | never                                                 |
/// | `.rp`     | discarded ≠ 0 and the value is positive               |
/// | `.rm`     | discarded ≠ 0 and the value is negative               |
///
/// Encoding uses a property of IEEE formats: for a result `kept · 2^quantum`, the bits are
/// `(quantum − min_quantum) << fraction_bits` plus `kept` (whose implicit one, when present,
/// carries into the exponent field). This covers subnormals, the smallest normal binade and a
/// carry out of the significand (`kept` reaching 2^precision) alike.
///
/// Overflow (a rounded result beyond the largest binade) gives ∞ when the direction rounds
/// away from zero for this sign (`.rn`; `.rp` for positive, `.rm` for negative values) and the
/// largest finite value otherwise, as IEEE 754 §7.4 prescribes.
///
/// An exact zero (`significand == 0`, no sticky tail) returns a zero with the given sign; the
/// operations decide that sign by their own IEEE rule before calling.
fn round(format: Format, value: Exact, rounding: Rounding) -> u64 {
    if value.significand == 0 && !value.sticky {
        return format.signed(value.negative, 0);
    }
    let precision = format.precision as i32;
    let top = value.exponent + bit_length(value.significand);
    let mut quantum = (top - precision).max(format.min_quantum());
    let shift = quantum - value.exponent;
    // `kept`: the significand at the result's spacing. `discarded_vs_half`: how the bits
    // shifted out compare with half a unit of that spacing.
    let (mut kept, discarded_vs_half, discarded_nonzero) = if shift <= 0 {
        // Nothing to discard: the value sits on the result's grid. The shift is at most
        // `precision - bit_length`, so the left shift cannot overflow.
        (value.significand << -shift, Ordering::Less, false)
    } else if shift >= 128 {
        // Everything is discarded, and it is below half a unit (2^(shift-1) ≥ 2^127), since
        // every producer keeps its significand below 2^127.
        (0, Ordering::Less, value.significand != 0)
    } else {
        let kept = value.significand >> shift;
        let discarded = value.significand - (kept << shift);
        (kept, discarded.cmp(&(1 << (shift - 1))), discarded != 0)
    };
    let inexact = discarded_nonzero || value.sticky;
    // A sticky tail turns "exactly half" into "above half" and leaves "below half" below,
    // because the tail is smaller than one unit of the lowest discarded bit.
    let above_half = match discarded_vs_half {
        Ordering::Greater => true,
        Ordering::Equal => value.sticky,
        Ordering::Less => false,
    };
    let exactly_half = discarded_vs_half == Ordering::Equal && !value.sticky;
    let increment = match rounding {
        Rounding::Nearest => above_half || (exactly_half && kept & 1 == 1),
        Rounding::Zero => false,
        Rounding::Up => inexact && !value.negative,
        Rounding::Down => inexact && value.negative,
    };
    if increment {
        kept += 1;
        if kept == 1 << precision {
            kept >>= 1;
            quantum += 1;
        }
    }
    if quantum > format.max_quantum() {
        let away_from_zero = match rounding {
            Rounding::Nearest => true,
            Rounding::Zero => false,
            Rounding::Up => !value.negative,
            Rounding::Down => value.negative,
        };
        let magnitude = if away_from_zero {
            format.infinity()
        } else {
            format.largest_finite()
        };
        return format.signed(value.negative, magnitude);
    }
    // `quantum - min_quantum` is in 0..=max_quantum-min_quantum here and `kept` below
    // 2^precision, so both fit the format's bits.
    let exponent_field = ((quantum - format.min_quantum()) as u64) << format.fraction_bits();
    format.signed(value.negative, exponent_field + kept as u64)
}

/// The sign of an exact zero sum `x + y` (IEEE 754 §6.3): the common sign when both addends
/// are zeros of that sign; otherwise (opposite signs, or exact cancellation of nonzero
/// values) `+0`, except `-0` when rounding toward −∞.
fn zero_sum_is_negative(x_negative: bool, y_negative: bool, rounding: Rounding) -> bool {
    if x_negative == y_negative {
        x_negative
    } else {
        rounding == Rounding::Down
    }
}

/// The exact product of two terms: the significands multiply (at most 106 bits), the
/// exponents add.
fn exact_product(x: Term, y: Term) -> Term {
    Term {
        negative: x.negative != y.negative,
        significand: x.significand * y.significand,
        exponent: x.exponent + y.exponent,
    }
}

/// Significant bits of the window [`exact_sum`] aligns its addends in.
const SUM_WINDOW_BITS: i32 = 126;

/// The exact sum of two terms of at most 106 significant bits, or `None` when it is zero.
///
/// The addend with the higher leading bit (`high`) is shifted so its leading bit is bit 125
/// of a `u128`; the other (`low`) is shifted to the same exponent. If `low` reaches below bit
/// 0, its bits there are dropped and remembered as the sticky flag. This is exact enough:
///
/// - Bits are dropped only when `low`'s exponent is below the window, so `low`'s aligned value
///   is below 2^106 while `high`'s is at least 2^125. The sum (or difference) then has at least
///   124 bits, far more than the 54 that rounding needs, and the dropped tail (less than one
///   unit of bit 0) is correctly described by the sticky flag.
/// - For a difference with a dropped tail t (0 < t < 1): `high − (low + t)` equals
///   `(high − low − 1) + (1 − t)`, with `0 < 1 − t < 1`: the significand `high − low − 1`
///   with the sticky flag set.
/// - Without dropped bits the arithmetic is exact; a difference may cancel to any size,
///   including zero.
///
/// Nothing overflows: both aligned values are below 2^126, so their sum is below 2^127.
fn exact_sum(x: Term, y: Term) -> Option<Exact> {
    let top = |term: &Term| term.exponent + bit_length(term.significand);
    let (high, low) = if top(&x) >= top(&y) { (x, y) } else { (y, x) };
    let exponent = top(&high) - SUM_WINDOW_BITS;
    let high_aligned = high.significand << (high.exponent - exponent);
    let low_shift = low.exponent - exponent;
    let (low_aligned, low_dropped) = if low_shift >= 0 {
        (low.significand << low_shift, false)
    } else {
        let right = (-low_shift) as u32;
        let kept = low.significand.checked_shr(right).unwrap_or(0);
        let dropped = low.significand != kept.checked_shl(right).unwrap_or(0);
        (kept, dropped)
    };
    let (negative, significand, sticky) = if high.negative == low.negative {
        (high.negative, high_aligned + low_aligned, low_dropped)
    } else if low_dropped {
        (high.negative, high_aligned - low_aligned - 1, true)
    } else {
        match high_aligned.cmp(&low_aligned) {
            Ordering::Equal => return None,
            Ordering::Greater => (high.negative, high_aligned - low_aligned, false),
            Ordering::Less => (low.negative, low_aligned - high_aligned, false),
        }
    };
    Some(Exact {
        negative,
        significand,
        exponent,
        sticky,
    })
}

/// The exact quotient x / y of two terms of at most 53 bits, to at least 74 bits plus sticky.
///
/// The dividend's significand is shifted so it has 127 bits; integer division by a
/// significand of at most 53 bits then leaves a quotient of at least 127 − 53 = 74 bits, and
/// the remainder is nonzero exactly when the true quotient has more bits (sticky).
fn exact_quotient(x: Term, y: Term) -> Exact {
    let shift = 127 - bit_length(x.significand);
    let dividend = x.significand << shift;
    Exact {
        negative: x.negative != y.negative,
        significand: dividend / y.significand,
        exponent: x.exponent - shift - y.exponent,
        sticky: !dividend.is_multiple_of(y.significand),
    }
}

/// The exact square root of a positive term of at most 53 bits, to 63 bits plus sticky.
///
/// The significand is shifted left so it has 125 or 126 bits, by an amount that leaves the
/// exponent even (so it halves exactly); the integer square root of a number of at least 2^124
/// has 63 bits, and the remainder is nonzero exactly when the root is irrational (sticky).
fn exact_square_root(x: Term) -> Exact {
    let mut shift = 126 - bit_length(x.significand);
    if (x.exponent - shift).rem_euclid(2) != 0 {
        shift -= 1;
    }
    let radicand = x.significand << shift;
    let root = integer_square_root(radicand);
    Exact {
        negative: false,
        significand: root,
        exponent: (x.exponent - shift) / 2,
        sticky: root * root != radicand,
    }
}

/// ⌊√n⌋ for n > 0, by the binary digit-by-digit method: the root is built one bit at a time
/// from the top, `remainder` tracking n minus the square of the root so far.
fn integer_square_root(n: u128) -> u128 {
    let mut remainder = n;
    let mut root = 0u128;
    // The largest power of four not above n.
    let mut bit = 1u128 << ((bit_length(n) - 1) & !1);
    while bit != 0 {
        if remainder >= root + bit {
            remainder -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    root
}

/// `add.rnd`: a + b, rounded once (IEEE 754 addition).
fn add_bits(format: Format, a: u64, b: u64, rounding: Rounding) -> u64 {
    match (classify(format, a), classify(format, b)) {
        (Class::Nan, _) | (_, Class::Nan) => format.nan_result(&[a, b]),
        (Class::Infinite { negative: x }, Class::Infinite { negative: y }) if x != y => {
            format.nan_result(&[])
        }
        (Class::Infinite { .. }, _) => a,
        (_, Class::Infinite { .. }) => b,
        (Class::Zero { negative: x }, Class::Zero { negative: y }) => {
            format.signed(zero_sum_is_negative(x, y, rounding), 0)
        }
        // x + 0 = x exactly, and x is representable.
        (Class::Zero { .. }, Class::Finite(_)) => b,
        (Class::Finite(_), Class::Zero { .. }) => a,
        (Class::Finite(x), Class::Finite(y)) => match exact_sum(x, y) {
            Some(sum) => round(format, sum, rounding),
            None => format.signed(rounding == Rounding::Down, 0),
        },
    }
}

/// `mul.rnd`: a · b, rounded once.
fn mul_bits(format: Format, a: u64, b: u64, rounding: Rounding) -> u64 {
    let negative = is_negative(format, a) != is_negative(format, b);
    match (classify(format, a), classify(format, b)) {
        (Class::Nan, _) | (_, Class::Nan) => format.nan_result(&[a, b]),
        (Class::Infinite { .. }, Class::Zero { .. })
        | (Class::Zero { .. }, Class::Infinite { .. }) => format.nan_result(&[]),
        (Class::Infinite { .. }, _) | (_, Class::Infinite { .. }) => {
            format.signed(negative, format.infinity())
        }
        (Class::Zero { .. }, _) | (_, Class::Zero { .. }) => format.signed(negative, 0),
        (Class::Finite(x), Class::Finite(y)) => round(format, exact_product(x, y).into(), rounding),
    }
}

/// `fma.rnd`: a · b + c with a single rounding ("computes the product of a and b to infinite
/// precision and then adds c to this product, again in infinite precision").
fn fma_bits(format: Format, a: u64, b: u64, c: u64, rounding: Rounding) -> u64 {
    let product_negative = is_negative(format, a) != is_negative(format, b);
    match (
        classify(format, a),
        classify(format, b),
        classify(format, c),
    ) {
        (Class::Nan, _, _) | (_, Class::Nan, _) | (_, _, Class::Nan) => {
            format.nan_result(&[a, b, c])
        }
        (Class::Infinite { .. }, Class::Zero { .. }, _)
        | (Class::Zero { .. }, Class::Infinite { .. }, _) => format.nan_result(&[]),
        (Class::Infinite { .. }, _, Class::Infinite { negative })
        | (_, Class::Infinite { .. }, Class::Infinite { negative })
            if negative != product_negative =>
        {
            format.nan_result(&[])
        }
        (Class::Infinite { .. }, _, _) | (_, Class::Infinite { .. }, _) => {
            format.signed(product_negative, format.infinity())
        }
        (_, _, Class::Infinite { .. }) => c,
        (Class::Zero { .. }, _, Class::Zero { negative })
        | (_, Class::Zero { .. }, Class::Zero { negative }) => format.signed(
            zero_sum_is_negative(product_negative, negative, rounding),
            0,
        ),
        // 0 + c = c exactly.
        (Class::Zero { .. }, _, _) | (_, Class::Zero { .. }, _) => c,
        (Class::Finite(x), Class::Finite(y), Class::Zero { .. }) => {
            round(format, exact_product(x, y).into(), rounding)
        }
        (Class::Finite(x), Class::Finite(y), Class::Finite(z)) => {
            match exact_sum(exact_product(x, y), z) {
                Some(sum) => round(format, sum, rounding),
                None => format.signed(rounding == Rounding::Down, 0),
            }
        }
    }
}

/// `div.rnd`: a / b, correctly rounded.
fn div_bits(format: Format, a: u64, b: u64, rounding: Rounding) -> u64 {
    let negative = is_negative(format, a) != is_negative(format, b);
    match (classify(format, a), classify(format, b)) {
        (Class::Nan, _) | (_, Class::Nan) => format.nan_result(&[a, b]),
        (Class::Infinite { .. }, Class::Infinite { .. })
        | (Class::Zero { .. }, Class::Zero { .. }) => format.nan_result(&[]),
        (Class::Infinite { .. }, _) | (Class::Finite(_), Class::Zero { .. }) => {
            format.signed(negative, format.infinity())
        }
        (_, Class::Infinite { .. }) | (Class::Zero { .. }, _) => format.signed(negative, 0),
        (Class::Finite(x), Class::Finite(y)) => round(format, exact_quotient(x, y), rounding),
    }
}

/// `sqrt.rnd`: √a, correctly rounded; √(−0) = −0, √(+∞) = +∞, and any other negative
/// operand (−∞ included) is invalid.
fn sqrt_bits(format: Format, a: u64, rounding: Rounding) -> u64 {
    match classify(format, a) {
        Class::Nan => format.nan_result(&[a]),
        Class::Zero { .. } | Class::Infinite { negative: false } => a,
        Class::Infinite { negative: true } => format.nan_result(&[]),
        Class::Finite(x) if x.negative => format.nan_result(&[]),
        Class::Finite(x) => round(format, exact_square_root(x), rounding),
    }
}

fn f32_from_bits(bits: u64) -> f32 {
    // Every BINARY32 result has its bits in the low 32.
    f32::from_bits(bits as u32)
}

/// `x`, or the canonical NaN when `x` is a NaN. The choice is made on the bits: LLVM may fold
/// a float `select(isnan(x), NaN, x)` into `x`, since it treats all NaNs as one value.
#[inline]
fn canonical_f32(x: f32) -> f32 {
    let bits = x.to_bits();
    let nan = (bits & 0x7fff_ffff) > 0x7f80_0000;
    f32::from_bits(if nan { CANONICAL_NAN_F32 } else { bits })
}

/// `add{.rnd}.f32`: a + b, correctly rounded in direction `rounding` (PTX ISA, "add").
pub fn add_f32(a: f32, b: f32, rounding: Rounding) -> f32 {
    // Round to nearest is what the host's IEEE arithmetic does: the fast path (only the NaN
    // it returns is made canonical), checked against the exact path in the tests.
    if rounding == Rounding::Nearest {
        return canonical_f32(a + b);
    }
    f32_from_bits(add_bits(
        BINARY32,
        a.to_bits().into(),
        b.to_bits().into(),
        rounding,
    ))
}

/// `sub{.rnd}.f32`: a − b, which IEEE defines as a + (−b), zero signs included
/// (PTX ISA, "sub").
pub fn sub_f32(a: f32, b: f32, rounding: Rounding) -> f32 {
    add_f32(a, -b, rounding)
}

/// `mul{.rnd}.f32`: a · b, correctly rounded (PTX ISA, "mul").
pub fn mul_f32(a: f32, b: f32, rounding: Rounding) -> f32 {
    // Round to nearest is what the host's IEEE arithmetic does: the fast path (only the NaN
    // it returns is made canonical), checked against the exact path in the tests.
    if rounding == Rounding::Nearest {
        return canonical_f32(a * b);
    }
    f32_from_bits(mul_bits(
        BINARY32,
        a.to_bits().into(),
        b.to_bits().into(),
        rounding,
    ))
}

/// `fma.rnd.f32` and `mad.rnd.f32` (the same instruction on sm_20+): a · b + c with one
/// rounding (PTX ISA, "fma").
pub fn fma_f32(a: f32, b: f32, c: f32, rounding: Rounding) -> f32 {
    // Round to nearest is what the host's IEEE arithmetic does: the fast path (only the NaN
    // it returns is made canonical), checked against the exact path in the tests.
    if rounding == Rounding::Nearest {
        return canonical_f32(a.mul_add(b, c));
    }
    f32_from_bits(fma_bits(
        BINARY32,
        a.to_bits().into(),
        b.to_bits().into(),
        c.to_bits().into(),
        rounding,
    ))
}

/// `div.rnd.f32` (`.rn .rz .rm .rp`): a / b with "IEEE 754 compliant rounding"
/// (PTX ISA, "div").
pub fn div_f32(a: f32, b: f32, rounding: Rounding) -> f32 {
    // Round to nearest is what the host's IEEE arithmetic does: the fast path (only the NaN
    // it returns is made canonical), checked against the exact path in the tests.
    if rounding == Rounding::Nearest {
        return canonical_f32(a / b);
    }
    f32_from_bits(div_bits(
        BINARY32,
        a.to_bits().into(),
        b.to_bits().into(),
        rounding,
    ))
}

/// `sqrt.rnd.f32`: √a with IEEE 754 compliant rounding (PTX ISA, "sqrt").
pub fn sqrt_f32(a: f32, rounding: Rounding) -> f32 {
    // Round to nearest is what the host's IEEE arithmetic does: the fast path (only the NaN
    // it returns is made canonical), checked against the exact path in the tests.
    if rounding == Rounding::Nearest {
        return canonical_f32(a.sqrt());
    }
    f32_from_bits(sqrt_bits(BINARY32, a.to_bits().into(), rounding))
}

/// `rcp.rnd.f32`: 1 / a with IEEE 754 compliant rounding (PTX ISA, "rcp").
pub fn rcp_f32(a: f32, rounding: Rounding) -> f32 {
    div_f32(1.0, a, rounding)
}

/// `div.approx.f32` and `div.full.f32`: the correctly rounded quotient.
///
/// PTX ISA, "div": `div.full.f32` has "maximum ulp error ... 2 across the full range of
/// inputs", and `div.approx.f32` (computed as `a * (1/b)`) 2 ulp for |b| in [2^-126, 2^126].
/// The correctly rounded quotient (½ ulp) meets both. One difference remains: for
/// 2^126 < |b| < 2^128 the ISA specifies that `div.approx.f32` returns a sign-preserving zero
/// (NaN if a is infinite), where this function returns the true quotient (a value below
/// 2^-126 · |a|, or ±∞ for an infinite a). A caller that needs that quirk of `div.approx`
/// applies it before calling.
pub fn div_approx_f32(a: f32, b: f32) -> f32 {
    div_f32(a, b, Rounding::Nearest)
}

/// `rcp.approx.f32`: 1 / a rounded to nearest; the ISA allows 1 ulp. Special values per the
/// ISA's table: 1/±0 = ±∞, 1/±∞ = ±0, NaN → NaN.
pub fn rcp_approx_f32(a: f32) -> f32 {
    rcp_f32(a, Rounding::Nearest)
}

/// `sqrt.approx.f32`: √a rounded to nearest; the ISA allows a relative error of 2^-23. Special
/// values per the ISA's table: √(−∞) and √(negative) = NaN, √(±0) = ±0, √(+∞) = +∞.
pub fn sqrt_approx_f32(a: f32) -> f32 {
    sqrt_f32(a, Rounding::Nearest)
}

/// `rsqrt.approx.f32`: 1/√a, computed in f64 and rounded to the nearest f32 (relative error
/// below 2^-23.9; the ISA allows 2^-22.9). Special values per the ISA's table: negative
/// (−∞ included) → NaN, −0 → −∞, +0 → +∞, +∞ → +0.
pub fn rsqrt_approx_f32(a: f32) -> f32 {
    if a.is_nan() || a < 0.0 {
        f32::from_bits(CANONICAL_NAN_F32)
    } else if a == 0.0 {
        f32::INFINITY.copysign(a)
    } else {
        (1.0 / f64::from(a).sqrt()) as f32
    }
}

/// `ex2.approx.f32`: 2^a, computed in f64 and rounded to the nearest f32 (the ISA allows 2 ulp
/// "from correctly rounded result across the full range"). Special values per the ISA's
/// table: −∞ → +0, ±0 → +1, +∞ → +∞, NaN → NaN; overflow gives +∞ and underflow subnormals
/// or +0.
pub fn ex2_approx_f32(a: f32) -> f32 {
    if a.is_nan() {
        f32::from_bits(CANONICAL_NAN_F32)
    } else {
        f64::from(a).exp2() as f32
    }
}

/// `lg2.approx.f32`: log₂ a, computed in f64 and rounded to the nearest f32 (the ISA allows an
/// absolute error of 2^-22 on (0.5, 2) and a relative one of 2^-22 elsewhere). Special values
/// per the ISA's table: negative (−∞ included) → NaN, ±0 → −∞, +∞ → +∞.
pub fn lg2_approx_f32(a: f32) -> f32 {
    if a.is_nan() || a < 0.0 {
        f32::from_bits(CANONICAL_NAN_F32)
    } else {
        f64::from(a).log2() as f32
    }
}

/// `sin.approx.f32`: sin a (radians), computed in f64 and rounded to the nearest f32 (the ISA
/// allows an absolute error of 2^-20.5 on [−2π, 2π] and promises nothing beyond ±100π).
/// Special values per the ISA's table: ±∞ → NaN, ±0 → ±0.
pub fn sin_approx_f32(a: f32) -> f32 {
    if a.is_finite() {
        f64::from(a).sin() as f32
    } else {
        f32::from_bits(CANONICAL_NAN_F32)
    }
}

/// `cos.approx.f32`: cos a (radians), as [`sin_approx_f32`]. Special values per the ISA's
/// table: ±∞ → NaN, ±0 → +1.
pub fn cos_approx_f32(a: f32) -> f32 {
    if a.is_finite() {
        f64::from(a).cos() as f32
    } else {
        f32::from_bits(CANONICAL_NAN_F32)
    }
}

/// `min.f32`: the smaller operand.
///
/// PTX ISA, "min" (`min_num`): both NaN → NaN (canonical here); one NaN → the other
/// operand; otherwise `(a < b) ? a : b` with the note "-0.0 < +0.0 here" ("If values of both
/// inputs are 0.0, then +0.0 > -0.0"). The chosen operand is returned bit for bit.
pub fn min_f32(a: f32, b: f32) -> f32 {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => f32::from_bits(CANONICAL_NAN_F32),
        (true, false) => b,
        (false, true) => a,
        (false, false) => {
            if a < b || (a == b && a.is_sign_negative()) {
                a
            } else {
                b
            }
        }
    }
}

/// `max.f32`: the larger operand, with the NaN and signed-zero rules of [`min_f32`]
/// ("+0.0 > -0.0 here").
pub fn max_f32(a: f32, b: f32) -> f32 {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => f32::from_bits(CANONICAL_NAN_F32),
        (true, false) => b,
        (false, true) => a,
        (false, false) => {
            if a > b || (a == b && a.is_sign_positive()) {
                a
            } else {
                b
            }
        }
    }
}

/// `add{.rnd}.f64`: a + b, correctly rounded; NaN operands keep their payload.
pub fn add_f64(a: f64, b: f64, rounding: Rounding) -> f64 {
    f64::from_bits(add_bits(BINARY64, a.to_bits(), b.to_bits(), rounding))
}

/// `mul{.rnd}.f64`: a · b, correctly rounded; NaN operands keep their payload.
pub fn mul_f64(a: f64, b: f64, rounding: Rounding) -> f64 {
    f64::from_bits(mul_bits(BINARY64, a.to_bits(), b.to_bits(), rounding))
}

/// `fma.rnd.f64` / `mad.rnd.f64`: a · b + c with one rounding; NaN operands keep their
/// payload.
pub fn fma_f64(a: f64, b: f64, c: f64, rounding: Rounding) -> f64 {
    f64::from_bits(fma_bits(
        BINARY64,
        a.to_bits(),
        b.to_bits(),
        c.to_bits(),
        rounding,
    ))
}

/// `div.rnd.f64`: a / b, correctly rounded; NaN operands keep their payload.
pub fn div_f64(a: f64, b: f64, rounding: Rounding) -> f64 {
    f64::from_bits(div_bits(BINARY64, a.to_bits(), b.to_bits(), rounding))
}

/// `sqrt.rnd.f64`: √a, correctly rounded; a NaN operand keeps its payload.
pub fn sqrt_f64(a: f64, rounding: Rounding) -> f64 {
    f64::from_bits(sqrt_bits(BINARY64, a.to_bits(), rounding))
}

/// `cvt.{rni,rzi,rmi,rpi}.f32.f32`: round to an integral value, kept in floating point
/// (PTX ISA, "cvt", Integer Notes: `.rni` "choosing even integer if source is equidistant
/// between two integers", `.rzi` toward zero, `.rmi` toward −∞, `.rpi` toward +∞). Zeros and
/// infinities are returned as they are, a result of zero keeps the operand's sign (−0.4 →
/// −0), and NaN becomes the canonical NaN.
pub fn round_to_integral_f32(a: f32, rounding: IntRounding) -> f32 {
    if a.is_nan() {
        return f32::from_bits(CANONICAL_NAN_F32);
    }
    match rounding {
        IntRounding::Nearest => a.round_ties_even(),
        IntRounding::Zero => a.trunc(),
        IntRounding::Down => a.floor(),
        IntRounding::Up => a.ceil(),
    }
}

/// `cvt.{rni,rzi,rmi,rpi}.f64.f64`: as [`round_to_integral_f32`]; a NaN keeps its payload
/// (quieted), as for the other f64 operations.
pub fn round_to_integral_f64(a: f64, rounding: IntRounding) -> f64 {
    if a.is_nan() {
        return f64::from_bits(BINARY64.nan_result(&[a.to_bits()]));
    }
    match rounding {
        IntRounding::Nearest => a.round_ties_even(),
        IntRounding::Zero => a.trunc(),
        IntRounding::Down => a.floor(),
        IntRounding::Up => a.ceil(),
    }
}

/// `cvt.{rni,rzi,rmi,rpi}.{s,u}{8,16,32,64}.{f32,f64}`: float → integer.
///
/// PTX ISA, "cvt": the value is rounded to an integer in the given direction, then "for
/// float-to-integer conversions, the result is clamped to the destination range by default"
/// (so −1.0 to an unsigned type is 0 and +∞ to `.s32` is `i32::MAX`), and "NaN inputs are
/// converted to 0". `bits` is the destination width (8, 16, 32 or 64; anything else is read as
/// the nearest of 1..=64). The result is the integer's two's-complement bits zero-extended to
/// 64 (−1 as `.s32` is `0x0000_0000_ffff_ffff`); sign extension to a wider register is the
/// caller's. An f32 source is passed widened to f64, which is exact; `.ftz` is the caller's.
pub fn f64_to_int(a: f64, rounding: IntRounding, signed: bool, bits: u32) -> u64 {
    if a.is_nan() {
        return 0;
    }
    let width = bits.clamp(1, 64);
    let (lowest, highest): (i128, i128) = if signed {
        (-(1 << (width - 1)), (1 << (width - 1)) - 1)
    } else {
        (0, (1 << width) - 1)
    };
    // An integral f64 converts to i128 exactly when in range; `as` saturates beyond it (±∞
    // included), and every destination range lies inside i128's.
    let integer = (round_to_integral_f64(a, rounding) as i128).clamp(lowest, highest);
    let mask = u64::MAX >> (64 - width);
    (integer as u64) & mask
}

/// `cvt.rnd.f32.s64` (and narrower sources, sign-extended): the integer correctly rounded to
/// f32 in direction `rounding`; 0 converts to +0.
pub fn i64_to_f32(a: i64, rounding: Rounding) -> f32 {
    f32_from_bits(integer_to_bits(BINARY32, a < 0, a.unsigned_abs(), rounding))
}

/// `cvt.rnd.f32.u64` (and narrower sources, zero-extended).
pub fn u64_to_f32(a: u64, rounding: Rounding) -> f32 {
    f32_from_bits(integer_to_bits(BINARY32, false, a, rounding))
}

/// `cvt.rnd.f64.s64` (and narrower sources, sign-extended).
pub fn i64_to_f64(a: i64, rounding: Rounding) -> f64 {
    f64::from_bits(integer_to_bits(BINARY64, a < 0, a.unsigned_abs(), rounding))
}

/// `cvt.rnd.f64.u64` (and narrower sources, zero-extended).
pub fn u64_to_f64(a: u64, rounding: Rounding) -> f64 {
    f64::from_bits(integer_to_bits(BINARY64, false, a, rounding))
}

fn integer_to_bits(format: Format, negative: bool, magnitude: u64, rounding: Rounding) -> u64 {
    let value = Exact {
        negative,
        significand: magnitude.into(),
        exponent: 0,
        sticky: false,
    };
    round(format, value, rounding)
}

/// `cvt.rnd.f32.f64`: the double correctly rounded to f32 in direction `rounding`, with
/// subnormal results and directed overflow as for arithmetic. A NaN becomes the canonical f32
/// NaN (the result is single precision).
pub fn f64_to_f32(a: f64, rounding: Rounding) -> f32 {
    let bits = match classify(BINARY64, a.to_bits()) {
        Class::Nan => CANONICAL_NAN_F32.into(),
        Class::Infinite { negative } => BINARY32.signed(negative, BINARY32.infinity()),
        Class::Zero { negative } => BINARY32.signed(negative, 0),
        Class::Finite(term) => round(BINARY32, term.into(), rounding),
    };
    f32_from_bits(bits)
}

/// The 13 low fraction bits of an f32 that TF32 (1 sign, 8 exponent, 10 fraction bits) lacks.
const TF32_DROPPED_BITS: u32 = 0x1fff;

/// Half a TF32 ulp, as an f32 bit pattern: the highest dropped bit.
const TF32_HALF_ULP: u32 = 0x1000;

/// `cvt.rna.tf32.f32`: round to TF32, to nearest with ties *away from zero*; the result is an
/// f32 bit pattern whose low 13 bits are zero.
///
/// PTX ISA, "cvt": `.rna` "mantissa LSB rounds to nearest, ties away from zero". Adding half a
/// TF32 ulp to the bit pattern and clearing the 13 dropped bits does exactly that, on the
/// magnitude whatever the sign: a carry out of the fraction moves into the exponent field,
/// which is the next binade (or, from the largest binade, +∞). TF32 has f32's exponent range,
/// so subnormals round at the same bit and there is nothing to flush. Without `.satfinite` a
/// magnitude at or above `0x7f7f_f000` (the largest TF32 plus half an ulp) therefore becomes
/// ±∞, and ±∞ stays ±∞ (its dropped bits are zero). A NaN becomes [`CANONICAL_NAN_TF32`].
pub fn cvt_rna_tf32(a: f32) -> f32 {
    if a.is_nan() {
        return f32::from_bits(CANONICAL_NAN_TF32);
    }
    // No overflow: the largest non-NaN pattern, 0xff80_0000, plus 0x1000 fits in 32 bits.
    f32::from_bits((a.to_bits() + TF32_HALF_ULP) & !TF32_DROPPED_BITS)
}

/// The value `mma.sync` with `.tf32` operands multiplies: the register's low 13 fraction bits
/// are ignored, i.e. the f32 is truncated toward zero to TF32.
///
/// A NaN whose payload lies only in those low bits would truncate to ±∞; it is returned as
/// [`CANONICAL_NAN_TF32`] instead, so a NaN operand stays a NaN.
pub fn tf32_truncate(a: f32) -> f32 {
    if a.is_nan() {
        f32::from_bits(CANONICAL_NAN_TF32)
    } else {
        f32::from_bits(a.to_bits() & !TF32_DROPPED_BITS)
    }
}

#[cfg(test)]
mod tests {
    //! The reference here shares no code with the implementation above: exact values are
    //! dyadic rationals over a fixed-capacity big natural number, and a result is accepted in
    //! direction r only if it *brackets* the exact value the way r demands (checked by exact
    //! comparisons against the result, its neighbours and the midpoints between them). Division
    //! and square roots are checked by the sign of the residual (d·b against a, d² against a),
    //! so the reference never divides or takes a root.

    use super::*;

    const ROUNDINGS: [Rounding; 4] = [
        Rounding::Nearest,
        Rounding::Zero,
        Rounding::Down,
        Rounding::Up,
    ];

    /// Limbs of [`Natural`]: 4608 bits, enough for every comparison below (the widest is an
    /// f64 `a·b + c` aligned to 2^-2149: about 4200 bits).
    const LIMBS: usize = 72;

    /// A natural number, little-endian 64-bit limbs; limbs at and above `len` are zero.
    #[derive(Clone, Copy)]
    struct Natural {
        limbs: [u64; LIMBS],
        len: usize,
    }

    impl Natural {
        fn from_u128(value: u128) -> Natural {
            let mut n = Natural {
                limbs: [0; LIMBS],
                len: 2,
            };
            n.limbs[0] = value as u64;
            n.limbs[1] = (value >> 64) as u64;
            n.trim();
            n
        }

        fn trim(&mut self) {
            while self.len > 0 && self.limbs[self.len - 1] == 0 {
                self.len -= 1;
            }
        }

        fn is_zero(&self) -> bool {
            self.len == 0
        }

        fn bit_length(&self) -> i64 {
            if self.len == 0 {
                0
            } else {
                64 * self.len as i64 - i64::from(self.limbs[self.len - 1].leading_zeros())
            }
        }

        fn shifted_left(&self, bits: u64) -> Natural {
            if self.is_zero() {
                return *self;
            }
            let limb_shift = (bits / 64) as usize;
            let bit_shift = (bits % 64) as u32;
            let mut out = Natural {
                limbs: [0; LIMBS],
                len: self.len + limb_shift + 1,
            };
            for i in 0..self.len {
                out.limbs[i + limb_shift] |= self.limbs[i] << bit_shift;
                if bit_shift != 0 {
                    out.limbs[i + limb_shift + 1] |= self.limbs[i] >> (64 - bit_shift);
                }
            }
            out.trim();
            out
        }

        fn plus(&self, other: &Natural) -> Natural {
            let len = self.len.max(other.len);
            let mut out = Natural {
                limbs: [0; LIMBS],
                len: len + 1,
            };
            let mut carry = 0u128;
            for i in 0..len {
                let sum = u128::from(self.limbs[i]) + u128::from(other.limbs[i]) + carry;
                out.limbs[i] = sum as u64;
                carry = sum >> 64;
            }
            out.limbs[len] = carry as u64;
            out.trim();
            out
        }

        /// self − other, for self ≥ other.
        fn minus(&self, other: &Natural) -> Natural {
            let mut out = Natural {
                limbs: [0; LIMBS],
                len: self.len,
            };
            let mut borrow = false;
            for i in 0..self.len {
                let (d1, b1) = self.limbs[i].overflowing_sub(other.limbs[i]);
                let (d2, b2) = d1.overflowing_sub(u64::from(borrow));
                out.limbs[i] = d2;
                borrow = b1 || b2;
            }
            out.trim();
            out
        }

        fn times(&self, other: &Natural) -> Natural {
            if self.is_zero() || other.is_zero() {
                return Natural::from_u128(0);
            }
            let mut out = Natural {
                limbs: [0; LIMBS],
                len: self.len + other.len,
            };
            for i in 0..self.len {
                let mut carry = 0u128;
                for j in 0..other.len {
                    let t = u128::from(self.limbs[i]) * u128::from(other.limbs[j])
                        + u128::from(out.limbs[i + j])
                        + carry;
                    out.limbs[i + j] = t as u64;
                    carry = t >> 64;
                }
                out.limbs[i + other.len] = carry as u64;
            }
            out.trim();
            out
        }

        fn compare(&self, other: &Natural) -> Ordering {
            self.len.cmp(&other.len).then_with(|| {
                (0..self.len)
                    .rev()
                    .map(|i| self.limbs[i].cmp(&other.limbs[i]))
                    .find(|&o| o != Ordering::Equal)
                    .unwrap_or(Ordering::Equal)
            })
        }
    }

    /// An exact dyadic rational ±magnitude · 2^exponent (zero is never negative).
    #[derive(Clone, Copy)]
    struct Dyadic {
        negative: bool,
        magnitude: Natural,
        exponent: i64,
    }

    impl Dyadic {
        fn new(negative: bool, magnitude: u128, exponent: i64) -> Dyadic {
            Dyadic {
                negative: negative && magnitude != 0,
                magnitude: Natural::from_u128(magnitude),
                exponent,
            }
        }

        fn integer(value: i128) -> Dyadic {
            Dyadic::new(value < 0, value.unsigned_abs(), 0)
        }

        fn is_zero(&self) -> bool {
            self.magnitude.is_zero()
        }

        fn aligned(&self, other: &Dyadic) -> (Natural, Natural) {
            let exponent = self.exponent.min(other.exponent);
            (
                self.magnitude
                    .shifted_left((self.exponent - exponent) as u64),
                other
                    .magnitude
                    .shifted_left((other.exponent - exponent) as u64),
            )
        }

        fn plus(&self, other: &Dyadic) -> Dyadic {
            if self.is_zero() {
                return *other;
            }
            if other.is_zero() {
                return *self;
            }
            let (x, y) = self.aligned(other);
            let exponent = self.exponent.min(other.exponent);
            let (negative, magnitude) = if self.negative == other.negative {
                (self.negative, x.plus(&y))
            } else {
                match x.compare(&y) {
                    Ordering::Greater => (self.negative, x.minus(&y)),
                    Ordering::Less => (other.negative, y.minus(&x)),
                    Ordering::Equal => (false, Natural::from_u128(0)),
                }
            };
            Dyadic {
                negative: negative && !magnitude.is_zero(),
                magnitude,
                exponent,
            }
        }

        fn times(&self, other: &Dyadic) -> Dyadic {
            let magnitude = self.magnitude.times(&other.magnitude);
            Dyadic {
                negative: self.negative != other.negative && !magnitude.is_zero(),
                magnitude,
                exponent: self.exponent + other.exponent,
            }
        }

        fn halved(&self) -> Dyadic {
            Dyadic {
                exponent: self.exponent - 1,
                ..*self
            }
        }

        fn compare(&self, other: &Dyadic) -> Ordering {
            let sign = |d: &Dyadic| match (d.is_zero(), d.negative) {
                (true, _) => 0,
                (false, true) => -1,
                (false, false) => 1,
            };
            let (s, t) = (sign(self), sign(other));
            if s != t || s == 0 {
                return s.cmp(&t);
            }
            let top = |d: &Dyadic| d.exponent + d.magnitude.bit_length();
            let magnitude_order = if top(self) != top(other) {
                top(self).cmp(&top(other))
            } else {
                let (x, y) = self.aligned(other);
                x.compare(&y)
            };
            if s < 0 {
                magnitude_order.reverse()
            } else {
                magnitude_order
            }
        }
    }

    /// An IEEE binary interchange layout, described independently of `Format`.
    #[derive(Clone, Copy)]
    struct Layout {
        width: u32,
        fraction_bits: u32,
    }

    const SINGLE: Layout = Layout {
        width: 32,
        fraction_bits: 23,
    };

    const DOUBLE: Layout = Layout {
        width: 64,
        fraction_bits: 52,
    };

    impl Layout {
        fn sign_bit(self) -> u64 {
            1 << (self.width - 1)
        }

        fn infinity(self) -> u64 {
            ((1u64 << (self.width - 1 - self.fraction_bits)) - 1) << self.fraction_bits
        }

        fn bias(self) -> i64 {
            (1 << (self.width - 2 - self.fraction_bits)) - 1
        }

        fn magnitude(self, bits: u64) -> u64 {
            bits & (self.sign_bit() - 1)
        }

        fn is_negative(self, bits: u64) -> bool {
            bits & self.sign_bit() != 0
        }

        fn is_nan(self, bits: u64) -> bool {
            self.magnitude(bits) > self.infinity()
        }

        fn is_infinite(self, bits: u64) -> bool {
            self.magnitude(bits) == self.infinity()
        }

        fn is_zero(self, bits: u64) -> bool {
            self.magnitude(bits) == 0
        }

        /// The exact value of finite `bits`.
        fn value(self, bits: u64) -> Dyadic {
            let magnitude = self.magnitude(bits);
            let fraction = magnitude & ((1 << self.fraction_bits) - 1);
            let biased = (magnitude >> self.fraction_bits) as i64;
            let fraction_bits = i64::from(self.fraction_bits);
            if biased == 0 {
                Dyadic::new(
                    self.is_negative(bits),
                    fraction.into(),
                    1 - self.bias() - fraction_bits,
                )
            } else {
                Dyadic::new(
                    self.is_negative(bits),
                    (fraction | 1 << self.fraction_bits).into(),
                    biased - self.bias() - fraction_bits,
                )
            }
        }

        /// Position of `bits` on the number line: consecutive representable values have
        /// consecutive ordinals (both zeros are 0, ±∞ are ±infinity()).
        fn ordinal(self, bits: u64) -> i64 {
            let magnitude = self.magnitude(bits) as i64;
            if self.is_negative(bits) {
                -magnitude
            } else {
                magnitude
            }
        }

        fn bits_at(self, ordinal: i64) -> u64 {
            if ordinal < 0 {
                ordinal.unsigned_abs() | self.sign_bit()
            } else {
                ordinal as u64
            }
        }

        /// The value round-to-nearest treats ±∞ as: 2^(emax+1), one ulp past the largest
        /// finite value, so that the overflow threshold is the midpoint between the two.
        fn point(self, ordinal: i64) -> Dyadic {
            let limit = self.infinity() as i64;
            if ordinal.abs() >= limit {
                Dyadic::new(ordinal < 0, 1, self.bias() + 1)
            } else {
                self.value(self.bits_at(ordinal))
            }
        }

        /// The NaN PTX produces: canonical for single precision; for double precision the
        /// first NaN operand quieted, or the canonical NaN for a NaN the operation created.
        fn expected_nan(self, operands: &[u64]) -> u64 {
            let canonical = self.sign_bit() - 1;
            if self.width == 32 {
                return canonical;
            }
            operands
                .iter()
                .find(|&&bits| self.is_nan(bits))
                .map_or(canonical, |&nan| nan | 1 << (self.fraction_bits - 1))
        }

        fn signed_zero(self, negative: bool) -> u64 {
            if negative {
                self.sign_bit()
            } else {
                0
            }
        }

        fn signed_infinity(self, negative: bool) -> u64 {
            self.infinity() | self.signed_zero(negative)
        }
    }

    /// What a correctly rounded result must be.
    enum Reference {
        /// The same bits in every direction (a NaN, an infinity, a zero product, ...).
        Fixed(u64),
        /// An exact zero sum of addends with these signs: their sign if they agree, otherwise
        /// +0, or −0 when rounding down (IEEE 754 §6.3).
        ZeroSum(bool, bool),
        /// A finite nonzero exact value v of the given sign; `compare(d)` orders d against v.
        Exact {
            negative: bool,
            compare: Box<dyn Fn(&Dyadic) -> Ordering>,
        },
    }

    fn exact_value(value: Dyadic) -> Reference {
        if value.is_zero() {
            // Callers turn exact zeros into `ZeroSum` or `Fixed` first.
            panic!("exact_value of zero");
        }
        Reference::Exact {
            negative: value.negative,
            compare: Box::new(move |d| d.compare(&value)),
        }
    }

    /// Accepts `result` iff it is the rounding of the reference in direction `rounding`.
    fn verify(
        layout: Layout,
        reference: &Reference,
        rounding: Rounding,
        result: u64,
    ) -> Result<(), String> {
        let (negative, compare) = match reference {
            Reference::Fixed(bits) => {
                return if result == *bits {
                    Ok(())
                } else {
                    Err(format!("expected {bits:#x}"))
                };
            }
            Reference::ZeroSum(x, y) => {
                let negative = if x == y {
                    *x
                } else {
                    rounding == Rounding::Down
                };
                let expected = layout.signed_zero(negative);
                return if result == expected {
                    Ok(())
                } else {
                    Err(format!("expected the zero {expected:#x}"))
                };
            }
            Reference::Exact { negative, compare } => (*negative, compare),
        };
        if layout.is_nan(result) {
            return Err("NaN for a finite exact result".into());
        }
        if layout.is_zero(result) && layout.is_negative(result) != negative {
            return Err("zero of the wrong sign".into());
        }
        let limit = layout.infinity() as i64;
        let ordinal = layout.ordinal(result);
        // ±∞ compare beyond every finite value.
        let compare_at = |ord: i64| {
            if ord >= limit {
                Ordering::Greater
            } else if ord <= -limit {
                Ordering::Less
            } else {
                compare(&layout.value(layout.bits_at(ord)))
            }
        };
        // Up: result ≥ v and its predecessor < v. Down: result ≤ v and its successor > v.
        let up_ok = || {
            compare_at(ordinal) != Ordering::Less
                && (ordinal <= -limit || compare_at(ordinal - 1) == Ordering::Less)
        };
        let down_ok = || {
            compare_at(ordinal) != Ordering::Greater
                && (ordinal >= limit || compare_at(ordinal + 1) == Ordering::Greater)
        };
        let correct = match rounding {
            Rounding::Up => up_ok(),
            Rounding::Down => down_ok(),
            Rounding::Zero if negative => up_ok(),
            Rounding::Zero => down_ok(),
            Rounding::Nearest => {
                // v lies between the midpoints to both neighbours; on a midpoint only if the
                // result's significand is even.
                let even = result & 1 == 0;
                let side_ok =
                    |o: Ordering, wanted: Ordering| o == wanted || (o == Ordering::Equal && even);
                let midpoint = |x: i64, y: i64| layout.point(x).plus(&layout.point(y)).halved();
                (ordinal <= -limit
                    || side_ok(compare(&midpoint(ordinal - 1, ordinal)), Ordering::Less))
                    && (ordinal >= limit
                        || side_ok(compare(&midpoint(ordinal, ordinal + 1)), Ordering::Greater))
            }
        };
        if correct {
            Ok(())
        } else {
            Err("does not bracket the exact value as the direction requires".into())
        }
    }

    /// Verifies `implementation` in all four directions, and, when given, that its
    /// round-to-nearest result equals the host's (IEEE round-to-nearest) for non-NaN results.
    fn check(
        layout: Layout,
        reference: &Reference,
        implementation: &dyn Fn(Rounding) -> u64,
        host_nearest: Option<u64>,
        describe: &dyn Fn() -> String,
    ) {
        for rounding in ROUNDINGS {
            let result = implementation(rounding);
            if let Err(why) = verify(layout, reference, rounding, result) {
                panic!("{}, {rounding:?} -> {result:#x}: {why}", describe());
            }
        }
        if let Some(host) = host_nearest.filter(|&bits| !layout.is_nan(bits)) {
            let ours = implementation(Rounding::Nearest);
            assert_eq!(ours, host, "{}: .rn differs from the host", describe());
        }
    }

    fn reference_add(layout: Layout, a: u64, b: u64) -> Reference {
        if layout.is_nan(a) || layout.is_nan(b) {
            return Reference::Fixed(layout.expected_nan(&[a, b]));
        }
        match (layout.is_infinite(a), layout.is_infinite(b)) {
            (true, true) if layout.is_negative(a) != layout.is_negative(b) => {
                Reference::Fixed(layout.expected_nan(&[]))
            }
            (true, _) => Reference::Fixed(a),
            (_, true) => Reference::Fixed(b),
            _ => {
                let sum = layout.value(a).plus(&layout.value(b));
                if sum.is_zero() {
                    Reference::ZeroSum(layout.is_negative(a), layout.is_negative(b))
                } else {
                    exact_value(sum)
                }
            }
        }
    }

    fn reference_mul(layout: Layout, a: u64, b: u64) -> Reference {
        let negative = layout.is_negative(a) != layout.is_negative(b);
        let (infinite, zero) = (
            layout.is_infinite(a) || layout.is_infinite(b),
            layout.is_zero(a) || layout.is_zero(b),
        );
        if layout.is_nan(a) || layout.is_nan(b) {
            Reference::Fixed(layout.expected_nan(&[a, b]))
        } else if infinite && zero {
            Reference::Fixed(layout.expected_nan(&[]))
        } else if infinite {
            Reference::Fixed(layout.signed_infinity(negative))
        } else if zero {
            Reference::Fixed(layout.signed_zero(negative))
        } else {
            exact_value(layout.value(a).times(&layout.value(b)))
        }
    }

    fn reference_fma(layout: Layout, a: u64, b: u64, c: u64) -> Reference {
        let product_negative = layout.is_negative(a) != layout.is_negative(b);
        let product_infinite = layout.is_infinite(a) || layout.is_infinite(b);
        let product_zero = layout.is_zero(a) || layout.is_zero(b);
        if layout.is_nan(a) || layout.is_nan(b) || layout.is_nan(c) {
            return Reference::Fixed(layout.expected_nan(&[a, b, c]));
        }
        if product_infinite && product_zero {
            return Reference::Fixed(layout.expected_nan(&[]));
        }
        if product_infinite {
            return if layout.is_infinite(c) && layout.is_negative(c) != product_negative {
                Reference::Fixed(layout.expected_nan(&[]))
            } else {
                Reference::Fixed(layout.signed_infinity(product_negative))
            };
        }
        if layout.is_infinite(c) {
            return Reference::Fixed(c);
        }
        let exact = layout
            .value(a)
            .times(&layout.value(b))
            .plus(&layout.value(c));
        if exact.is_zero() {
            Reference::ZeroSum(product_negative, layout.is_negative(c))
        } else {
            exact_value(exact)
        }
    }

    fn reference_div(layout: Layout, a: u64, b: u64) -> Reference {
        let negative = layout.is_negative(a) != layout.is_negative(b);
        let (a_inf, b_inf) = (layout.is_infinite(a), layout.is_infinite(b));
        let (a_zero, b_zero) = (layout.is_zero(a), layout.is_zero(b));
        if layout.is_nan(a) || layout.is_nan(b) {
            Reference::Fixed(layout.expected_nan(&[a, b]))
        } else if (a_inf && b_inf) || (a_zero && b_zero) {
            Reference::Fixed(layout.expected_nan(&[]))
        } else if a_inf || b_zero {
            Reference::Fixed(layout.signed_infinity(negative))
        } else if b_inf || a_zero {
            Reference::Fixed(layout.signed_zero(negative))
        } else {
            // d < a/b ⇔ d·b < a for b > 0, and the reverse for b < 0.
            let (dividend, divisor) = (layout.value(a), layout.value(b));
            Reference::Exact {
                negative,
                compare: Box::new(move |d| {
                    let order = d.times(&divisor).compare(&dividend);
                    if divisor.negative {
                        order.reverse()
                    } else {
                        order
                    }
                }),
            }
        }
    }

    fn reference_sqrt(layout: Layout, a: u64) -> Reference {
        if layout.is_nan(a) {
            Reference::Fixed(layout.expected_nan(&[a]))
        } else if layout.is_zero(a) || a == layout.infinity() {
            Reference::Fixed(a)
        } else if layout.is_negative(a) {
            Reference::Fixed(layout.expected_nan(&[]))
        } else {
            // For d > 0: d < √a ⇔ d² < a.
            let radicand = layout.value(a);
            Reference::Exact {
                negative: false,
                compare: Box::new(move |d| {
                    if d.is_zero() || d.negative {
                        Ordering::Less
                    } else {
                        d.times(d).compare(&radicand)
                    }
                }),
            }
        }
    }

    /// SplitMix64: a small, fixed-seed generator, so failures reproduce.
    struct Random(u64);

    impl Random {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn f32_edge_values() -> Vec<u32> {
        let positive = [
            0x0000_0000, // +0
            0x0000_0001, // smallest subnormal
            0x0000_0002,
            0x0000_0003,
            0x0040_0000, // 2^-127
            0x007f_ffff, // largest subnormal
            0x0080_0000, // smallest normal
            0x0080_0001,
            0x0100_0000,
            0x3380_0000, // 2^-24: half an ulp of 1
            0x3400_0000, // 2^-23: an ulp of 1
            0x3eaa_aaab, // ~1/3
            0x3f00_0000, // 0.5
            0x3f7f_ffff, // 1 - 2^-24
            0x3f80_0000, // 1
            0x3f80_0001, // 1 + 2^-23
            0x3fc0_0000, // 1.5
            0x3fff_ffff,
            0x4000_0000, // 2
            0x4040_0000, // 3
            0x4b00_0000, // 2^23
            0x4b80_0000, // 2^24
            0x4b80_0001,
            0x5f80_0000, // 2^64
            0x7f00_0000, // 2^127
            0x7f7f_fffe,
            0x7f7f_ffff, // f32::MAX
            0x7f80_0000, // +inf
            0x7fc0_0000, // quiet NaN
            0x7f80_0001, // signaling NaN
            0x7fc1_2345, // NaN with payload
        ];
        positive
            .iter()
            .flat_map(|&bits| [bits, bits | 0x8000_0000])
            .collect()
    }

    fn f64_edge_values() -> Vec<u64> {
        let positive = [
            0x0000_0000_0000_0000,
            0x0000_0000_0000_0001, // smallest subnormal
            0x0000_0000_0000_0003,
            0x0008_0000_0000_0000, // 2^-1023
            0x000f_ffff_ffff_ffff, // largest subnormal
            0x0010_0000_0000_0000, // smallest normal
            0x0010_0000_0000_0001,
            0x1e60_0000_0000_0000, // 2^-537: sqrt of the smallest subnormal
            0x3ca0_0000_0000_0000, // 2^-53
            0x3cb0_0000_0000_0000, // 2^-52
            0x3fd5_5555_5555_5555, // ~1/3
            0x3fef_ffff_ffff_ffff, // 1 - 2^-53
            0x3ff0_0000_0000_0000, // 1
            0x3ff0_0000_0000_0001,
            0x3ff8_0000_0000_0000, // 1.5
            0x4000_0000_0000_0000, // 2
            0x4008_0000_0000_0000, // 3
            0x4340_0000_0000_0000, // 2^53
            0x4340_0000_0000_0001,
            0x47ef_ffff_e000_0000, // f32::MAX
            0x7fe0_0000_0000_0000, // 2^1023
            0x7fef_ffff_ffff_ffff, // f64::MAX
            0x7ff0_0000_0000_0000, // +inf
            0x7ff8_0000_0000_0000, // quiet NaN
            0x7ff0_0000_0000_0001, // signaling NaN
            0x7ff8_0000_dead_beef, // NaN with payload
        ];
        positive
            .iter()
            .flat_map(|&bits| [bits, bits | 1 << 63])
            .collect()
    }

    /// A random f32 pattern: mostly uniform bits, with extra weight on subnormals and tiny
    /// exponents and on the edge values.
    fn random_f32(rng: &mut Random, edges: &[u32]) -> u32 {
        match rng.below(8) {
            0 => (rng.next() as u32) & 0x81ff_ffff,
            1 => edges[rng.below(edges.len() as u64) as usize],
            _ => rng.next() as u32,
        }
    }

    /// A second operand related to `a`: the same binade (so sums cancel), a value next to −a
    /// (massive cancellation), a neighbour of a, or unrelated.
    fn related_f32(rng: &mut Random, a: u32, edges: &[u32]) -> u32 {
        match rng.below(5) {
            0 => {
                let exponent = (((a >> 23) & 0xff) as i64 + rng.below(5) as i64 - 2).clamp(0, 254);
                (rng.next() as u32 & 0x807f_ffff) | ((exponent as u32) << 23)
            }
            1 => (a ^ 0x8000_0000)
                .wrapping_add(rng.below(64) as u32)
                .wrapping_sub(32),
            2 => a
                .wrapping_add(rng.below(1 << 12) as u32)
                .wrapping_sub(1 << 11),
            _ => random_f32(rng, edges),
        }
    }

    fn random_f64(rng: &mut Random, edges: &[u64]) -> u64 {
        match rng.below(8) {
            0 => rng.next() & 0x801f_ffff_ffff_ffff,
            1 => edges[rng.below(edges.len() as u64) as usize],
            _ => rng.next(),
        }
    }

    fn related_f64(rng: &mut Random, a: u64, edges: &[u64]) -> u64 {
        match rng.below(5) {
            0 => {
                let exponent =
                    (((a >> 52) & 0x7ff) as i64 + rng.below(5) as i64 - 2).clamp(0, 2046);
                (rng.next() & 0x800f_ffff_ffff_ffff) | ((exponent as u64) << 52)
            }
            1 => (a ^ 1 << 63).wrapping_add(rng.below(64)).wrapping_sub(32),
            2 => a.wrapping_add(rng.below(1 << 30)).wrapping_sub(1 << 29),
            _ => random_f64(rng, edges),
        }
    }

    const RANDOM_CASES: usize = 200_000;

    fn bits32(x: f32) -> u64 {
        x.to_bits().into()
    }

    #[test]
    fn rounding_defaults_to_nearest() {
        assert_eq!(Rounding::default(), Rounding::Nearest);
    }

    #[test]
    fn ftz_flushes_subnormals_only() {
        assert_eq!(ftz(f32::from_bits(1)).to_bits(), 0);
        assert_eq!(ftz(f32::from_bits(0x807f_ffff)).to_bits(), 0x8000_0000);
        assert_eq!(ftz(f32::MIN_POSITIVE), f32::MIN_POSITIVE);
        assert_eq!(ftz(-0.0).to_bits(), 0x8000_0000);
        assert_eq!(ftz(f32::from_bits(0x7fc1_2345)).to_bits(), 0x7fc1_2345);
        assert_eq!(ftz(f32::NEG_INFINITY), f32::NEG_INFINITY);
    }

    #[test]
    fn saturate_clamps_to_unit_interval() {
        assert_eq!(saturate(0.25), 0.25);
        assert_eq!(saturate(1.5), 1.0);
        assert_eq!(saturate(f32::INFINITY), 1.0);
        assert_eq!(saturate(-3.0).to_bits(), 0);
        assert_eq!(saturate(-0.0).to_bits(), 0);
        assert_eq!(saturate(f32::NEG_INFINITY).to_bits(), 0);
        assert_eq!(saturate(f32::NAN).to_bits(), 0);
        assert_eq!(saturate(f32::from_bits(1)).to_bits(), 1);
    }

    /// Hand-computed results for the cases directed rounding most often gets wrong.
    #[test]
    fn f32_directed_edge_cases() {
        use Rounding::{Down, Nearest, Up, Zero};
        let tiny = 2f32.powi(-30);
        let up_from_one = 1f32.next_up();
        for (r, expected) in [(Nearest, 1.0), (Zero, 1.0), (Down, 1.0), (Up, up_from_one)] {
            assert_eq!(add_f32(1.0, tiny, r), expected, "{r:?}");
            assert_eq!(
                add_f32(-1.0, -tiny, r),
                -expected_mirror(r, expected),
                "{r:?}"
            );
        }
        // A tie rounds to even at .rn: 1 + 2^-24 lies halfway between 1 and 1 + 2^-23.
        assert_eq!(add_f32(1.0, 2f32.powi(-24), Nearest), 1.0);
        assert_eq!(
            add_f32(up_from_one, 2f32.powi(-24), Nearest),
            up_from_one.next_up()
        );
        // Overflow: only the directions away from zero reach infinity.
        let max = f32::MAX;
        for (r, pos, neg) in [
            (Nearest, f32::INFINITY, f32::NEG_INFINITY),
            (Zero, max, -max),
            (Down, max, f32::NEG_INFINITY),
            (Up, f32::INFINITY, -max),
        ] {
            assert_eq!(add_f32(max, max, r), pos, "{r:?}");
            assert_eq!(add_f32(-max, -max, r), neg, "{r:?}");
            assert_eq!(mul_f32(max, 2.0, r), pos, "{r:?}");
        }
        // MAX + half an ulp is a tie; MAX's significand is odd, so .rn goes to "2^128" = inf.
        assert_eq!(add_f32(max, 2f32.powi(103), Nearest), f32::INFINITY);
        assert_eq!(add_f32(max, 2f32.powi(102), Nearest), max);
        assert_eq!(add_f32(max, 2f32.powi(102), Up), f32::INFINITY);
        // Exact zeros: x + (-x) is +0 except at .rm; (-0) + (-0) is -0 everywhere.
        for r in ROUNDINGS {
            let cancel = if r == Down { 0x8000_0000 } else { 0 };
            assert_eq!(add_f32(1.5, -1.5, r).to_bits(), cancel, "{r:?}");
            assert_eq!(sub_f32(1.5, 1.5, r).to_bits(), cancel, "{r:?}");
            assert_eq!(add_f32(0.0, -0.0, r).to_bits(), cancel, "{r:?}");
            assert_eq!(add_f32(-0.0, -0.0, r).to_bits(), 0x8000_0000, "{r:?}");
            assert_eq!(add_f32(0.0, 0.0, r).to_bits(), 0, "{r:?}");
            assert_eq!(fma_f32(2.0, 3.0, -6.0, r).to_bits(), cancel, "{r:?}");
            assert_eq!(fma_f32(-0.0, 1.0, -0.0, r).to_bits(), 0x8000_0000, "{r:?}");
            assert_eq!(fma_f32(-0.0, 1.0, 0.0, r).to_bits(), cancel, "{r:?}");
        }
        // Subnormal results are kept (no .ftz here); half the smallest subnormal is a tie
        // between 0 and 2^-149, which .rn breaks toward the even 0.
        let min_sub = f32::from_bits(1);
        assert_eq!(add_f32(min_sub, min_sub, Nearest).to_bits(), 2);
        assert_eq!(
            add_f32(f32::from_bits(0x007f_ffff), min_sub, Zero),
            f32::MIN_POSITIVE
        );
        for (r, pos, neg) in [
            (Nearest, 0, 0x8000_0000),
            (Zero, 0, 0x8000_0000),
            (Down, 0, 0x8000_0001),
            (Up, 1, 0x8000_0000),
        ] {
            assert_eq!(mul_f32(min_sub, 0.5, r).to_bits(), pos, "{r:?}");
            assert_eq!(mul_f32(-min_sub, 0.5, r).to_bits(), neg, "{r:?}");
        }
        assert_eq!(mul_f32(min_sub, 0.75, Nearest).to_bits(), 1);
        // Tiny + huge: only the directed modes notice the tiny addend.
        let huge = 1.0e30f32;
        assert_eq!(add_f32(huge, min_sub, Nearest), huge);
        assert_eq!(add_f32(huge, min_sub, Up), huge.next_up());
        assert_eq!(add_f32(huge, -min_sub, Zero), huge.next_down());
        assert_eq!(add_f32(huge, -min_sub, Down), huge.next_down());
        assert_eq!(add_f32(huge, -min_sub, Up), huge);
        // fma rounds once: 1 + 2^-24 + 2^-48 is above the tie, although (1+2^-24)² rounded
        // first would tie down to 1.
        let a = 1.0 + 2f32.powi(-12);
        assert_eq!(
            fma_f32(a, a, -1.0, Nearest),
            2f32.powi(-11) + 2f32.powi(-24)
        );
        assert_eq!(
            fma_f32(up_from_one, up_from_one, -1.0, Zero),
            2f32.powi(-22)
        );
        // Division and square root in each direction.
        // 1/3 rounded to nearest is 0x3eaaaaab, above 1/3; truncation gives 0x3eaaaaaa.
        let (third_below, third_above) = (f32::from_bits(0x3eaa_aaaa), f32::from_bits(0x3eaa_aaab));
        assert_eq!(div_f32(1.0, 3.0, Nearest), third_above);
        assert_eq!(div_f32(1.0, 3.0, Zero), third_below);
        assert_eq!(div_f32(1.0, 3.0, Down), third_below);
        assert_eq!(div_f32(1.0, 3.0, Up), third_above);
        assert_eq!(div_f32(-1.0, 3.0, Up), -third_below);
        assert_eq!(div_f32(-1.0, 3.0, Down), -third_above);
        assert_eq!(rcp_f32(3.0, Zero), third_below);
        assert_eq!(div_f32(max, 0.5, Zero), max);
        assert_eq!(div_f32(max, 0.5, Nearest), f32::INFINITY);
        // √2 rounded to nearest is 0x3fb504f3, below √2.
        let root2 = 2f32.sqrt();
        assert_eq!(root2.to_bits(), 0x3fb5_04f3);
        assert_eq!(sqrt_f32(2.0, Nearest), root2);
        assert_eq!(sqrt_f32(2.0, Down), root2);
        assert_eq!(sqrt_f32(2.0, Up), root2.next_up());
        assert_eq!(sqrt_f32(4.0, Up), 2.0);
        assert_eq!(sqrt_f32(-0.0, Up).to_bits(), 0x8000_0000);
        assert_eq!(sqrt_f32(min_sub, Nearest), 2f32.powf(-74.5));
        // NaN results are the canonical NaN whatever went in.
        assert_eq!(
            add_f32(f32::INFINITY, f32::NEG_INFINITY, Nearest).to_bits(),
            CANONICAL_NAN_F32
        );
        assert_eq!(mul_f32(0.0, f32::INFINITY, Up).to_bits(), CANONICAL_NAN_F32);
        assert_eq!(div_f32(0.0, -0.0, Zero).to_bits(), CANONICAL_NAN_F32);
        assert_eq!(sqrt_f32(-1.0, Down).to_bits(), CANONICAL_NAN_F32);
        let payload = f32::from_bits(0xffc1_2345);
        assert_eq!(add_f32(payload, 1.0, Nearest).to_bits(), CANONICAL_NAN_F32);
        assert_eq!(
            fma_f32(1.0, 1.0, payload, Nearest).to_bits(),
            CANONICAL_NAN_F32
        );
        assert_eq!(rcp_f32(payload, Nearest).to_bits(), CANONICAL_NAN_F32);
    }

    /// The magnitude `add_f32(-1, -tiny)` must have in direction `r`, given the magnitude
    /// `add_f32(1, tiny)` has: .rm and .rp swap roles under negation.
    fn expected_mirror(r: Rounding, expected: f32) -> f32 {
        match r {
            Rounding::Up => 1.0,
            Rounding::Down => 1f32.next_up(),
            _ => expected,
        }
    }

    #[test]
    fn f32_arithmetic_on_all_edge_pairs() {
        let edges = f32_edge_values();
        for &a in &edges {
            let fa = f32::from_bits(a);
            for &b in &edges {
                let fb = f32::from_bits(b);
                let (x, y) = (u64::from(a), u64::from(b));
                let describe = || format!("{fa:e} ({a:#x}), {fb:e} ({b:#x})");
                check(
                    SINGLE,
                    &reference_add(SINGLE, x, y),
                    &|r| bits32(add_f32(fa, fb, r)),
                    Some(bits32(fa + fb)),
                    &describe,
                );
                let negated = y ^ SINGLE.sign_bit();
                check(
                    SINGLE,
                    &reference_add(SINGLE, x, negated),
                    &|r| bits32(sub_f32(fa, fb, r)),
                    Some(bits32(fa - fb)),
                    &describe,
                );
                check(
                    SINGLE,
                    &reference_mul(SINGLE, x, y),
                    &|r| bits32(mul_f32(fa, fb, r)),
                    Some(bits32(fa * fb)),
                    &describe,
                );
                check(
                    SINGLE,
                    &reference_div(SINGLE, x, y),
                    &|r| bits32(div_f32(fa, fb, r)),
                    Some(bits32(fa / fb)),
                    &describe,
                );
                for &c in edges.iter().step_by(3) {
                    let fc = f32::from_bits(c);
                    check(
                        SINGLE,
                        &reference_fma(SINGLE, x, y, c.into()),
                        &|r| bits32(fma_f32(fa, fb, fc, r)),
                        Some(bits32(fa.mul_add(fb, fc))),
                        &|| format!("fma {}, {fc:e} ({c:#x})", describe()),
                    );
                }
            }
            let describe = || format!("{fa:e} ({a:#x})");
            check(
                SINGLE,
                &reference_sqrt(SINGLE, a.into()),
                &|r| bits32(sqrt_f32(fa, r)),
                Some(bits32(fa.sqrt())),
                &describe,
            );
            check(
                SINGLE,
                &reference_div(SINGLE, bits32(1.0), a.into()),
                &|r| bits32(rcp_f32(fa, r)),
                Some(bits32(1.0 / fa)),
                &describe,
            );
        }
    }

    /// Runs `body` on RANDOM_CASES random f32 operand pairs (related so that sums cancel).
    fn for_random_f32_pairs(seed: u64, mut body: impl FnMut(f32, f32)) {
        let edges = f32_edge_values();
        let mut rng = Random(seed);
        for _ in 0..RANDOM_CASES {
            let a = random_f32(&mut rng, &edges);
            let b = related_f32(&mut rng, a, &edges);
            body(f32::from_bits(a), f32::from_bits(b));
        }
    }

    #[test]
    fn f32_add_random() {
        for_random_f32_pairs(1, |a, b| {
            let reference = reference_add(SINGLE, bits32(a), bits32(b));
            check(
                SINGLE,
                &reference,
                &|r| bits32(add_f32(a, b, r)),
                Some(bits32(a + b)),
                &|| format!("{a:e} + {b:e}"),
            );
        });
    }

    #[test]
    fn f32_sub_random() {
        for_random_f32_pairs(2, |a, b| {
            let reference = reference_add(SINGLE, bits32(a), bits32(-b));
            check(
                SINGLE,
                &reference,
                &|r| bits32(sub_f32(a, b, r)),
                Some(bits32(a - b)),
                &|| format!("{a:e} - {b:e}"),
            );
        });
    }

    #[test]
    fn f32_mul_random() {
        for_random_f32_pairs(3, |a, b| {
            let reference = reference_mul(SINGLE, bits32(a), bits32(b));
            check(
                SINGLE,
                &reference,
                &|r| bits32(mul_f32(a, b, r)),
                Some(bits32(a * b)),
                &|| format!("{a:e} * {b:e}"),
            );
        });
    }

    #[test]
    fn f32_div_random() {
        for_random_f32_pairs(4, |a, b| {
            let reference = reference_div(SINGLE, bits32(a), bits32(b));
            check(
                SINGLE,
                &reference,
                &|r| bits32(div_f32(a, b, r)),
                Some(bits32(a / b)),
                &|| format!("{a:e} / {b:e}"),
            );
        });
    }

    #[test]
    fn f32_fma_random() {
        let edges = f32_edge_values();
        let mut rng = Random(5);
        for _ in 0..RANDOM_CASES {
            let a = f32::from_bits(random_f32(&mut rng, &edges));
            let b = f32::from_bits(random_f32(&mut rng, &edges));
            // Often aim c at the product's binade, negated, so the sum cancels.
            let c = if rng.below(2) == 0 {
                f32::from_bits(related_f32(
                    &mut rng,
                    (a * b).to_bits() ^ 0x8000_0000,
                    &edges,
                ))
            } else {
                f32::from_bits(random_f32(&mut rng, &edges))
            };
            let reference = reference_fma(SINGLE, bits32(a), bits32(b), bits32(c));
            check(
                SINGLE,
                &reference,
                &|r| bits32(fma_f32(a, b, c, r)),
                Some(bits32(a.mul_add(b, c))),
                &|| format!("fma({a:e}, {b:e}, {c:e})"),
            );
        }
    }

    #[test]
    fn f32_sqrt_and_rcp_random() {
        for_random_f32_pairs(6, |a, b| {
            let positive = a.abs();
            check(
                SINGLE,
                &reference_sqrt(SINGLE, bits32(positive)),
                &|r| bits32(sqrt_f32(positive, r)),
                Some(bits32(positive.sqrt())),
                &|| format!("sqrt {positive:e}"),
            );
            check(
                SINGLE,
                &reference_sqrt(SINGLE, bits32(a)),
                &|r| bits32(sqrt_f32(a, r)),
                Some(bits32(a.sqrt())),
                &|| format!("sqrt {a:e}"),
            );
            check(
                SINGLE,
                &reference_div(SINGLE, bits32(1.0), bits32(b)),
                &|r| bits32(rcp_f32(b, r)),
                Some(bits32(1.0 / b)),
                &|| format!("rcp {b:e}"),
            );
        });
    }

    #[test]
    fn f64_arithmetic_on_all_edge_pairs() {
        let edges = f64_edge_values();
        for &a in &edges {
            let fa = f64::from_bits(a);
            for &b in &edges {
                let fb = f64::from_bits(b);
                let describe = || format!("{fa:e} ({a:#x}), {fb:e} ({b:#x})");
                let host = |x: f64| Some(x.to_bits()).filter(|_| !(fa.is_nan() || fb.is_nan()));
                check(
                    DOUBLE,
                    &reference_add(DOUBLE, a, b),
                    &|r| add_f64(fa, fb, r).to_bits(),
                    host(fa + fb),
                    &describe,
                );
                check(
                    DOUBLE,
                    &reference_mul(DOUBLE, a, b),
                    &|r| mul_f64(fa, fb, r).to_bits(),
                    host(fa * fb),
                    &describe,
                );
                check(
                    DOUBLE,
                    &reference_div(DOUBLE, a, b),
                    &|r| div_f64(fa, fb, r).to_bits(),
                    host(fa / fb),
                    &describe,
                );
                for &c in edges.iter().step_by(3) {
                    let fc = f64::from_bits(c);
                    check(
                        DOUBLE,
                        &reference_fma(DOUBLE, a, b, c),
                        &|r| fma_f64(fa, fb, fc, r).to_bits(),
                        None,
                        &|| format!("fma {}, {fc:e} ({c:#x})", describe()),
                    );
                }
            }
            check(
                DOUBLE,
                &reference_sqrt(DOUBLE, a),
                &|r| sqrt_f64(fa, r).to_bits(),
                None,
                &|| format!("sqrt {fa:e}"),
            );
        }
    }

    /// The host's f64 operators give IEEE round-to-nearest, but their NaN bits are the host's.
    fn host_f64(x: f64) -> Option<u64> {
        Some(x.to_bits()).filter(|_| !x.is_nan())
    }

    #[test]
    fn f64_add_and_mul_random() {
        let edges = f64_edge_values();
        let mut rng = Random(7);
        for _ in 0..RANDOM_CASES {
            let (a, b) = {
                let a = random_f64(&mut rng, &edges);
                (a, related_f64(&mut rng, a, &edges))
            };
            let (fa, fb) = (f64::from_bits(a), f64::from_bits(b));
            check(
                DOUBLE,
                &reference_add(DOUBLE, a, b),
                &|r| add_f64(fa, fb, r).to_bits(),
                host_f64(fa + fb),
                &|| format!("{fa:e} + {fb:e}"),
            );
            check(
                DOUBLE,
                &reference_mul(DOUBLE, a, b),
                &|r| mul_f64(fa, fb, r).to_bits(),
                host_f64(fa * fb),
                &|| format!("{fa:e} * {fb:e}"),
            );
        }
    }

    #[test]
    fn f64_fma_random() {
        let edges = f64_edge_values();
        let mut rng = Random(8);
        for _ in 0..RANDOM_CASES {
            let a = f64::from_bits(random_f64(&mut rng, &edges));
            let b = f64::from_bits(random_f64(&mut rng, &edges));
            let c = if rng.below(2) == 0 {
                f64::from_bits(related_f64(&mut rng, (a * b).to_bits() ^ 1 << 63, &edges))
            } else {
                f64::from_bits(random_f64(&mut rng, &edges))
            };
            let reference = reference_fma(DOUBLE, a.to_bits(), b.to_bits(), c.to_bits());
            check(
                DOUBLE,
                &reference,
                &|r| fma_f64(a, b, c, r).to_bits(),
                host_f64(a.mul_add(b, c)),
                &|| format!("fma({a:e}, {b:e}, {c:e})"),
            );
        }
    }

    #[test]
    fn f64_div_and_sqrt_random() {
        let edges = f64_edge_values();
        let mut rng = Random(9);
        for _ in 0..RANDOM_CASES {
            let a = random_f64(&mut rng, &edges);
            let b = related_f64(&mut rng, a, &edges);
            let (fa, fb) = (f64::from_bits(a), f64::from_bits(b));
            check(
                DOUBLE,
                &reference_div(DOUBLE, a, b),
                &|r| div_f64(fa, fb, r).to_bits(),
                host_f64(fa / fb),
                &|| format!("{fa:e} / {fb:e}"),
            );
            let positive = fa.abs();
            check(
                DOUBLE,
                &reference_sqrt(DOUBLE, positive.to_bits()),
                &|r| sqrt_f64(positive, r).to_bits(),
                host_f64(positive.sqrt()),
                &|| format!("sqrt {positive:e}"),
            );
        }
    }

    #[test]
    fn f64_nan_payloads_pass_through() {
        let quiet = f64::from_bits(0x7ff8_0000_dead_beef);
        let signaling = f64::from_bits(0xfff0_0000_0000_0001);
        assert_eq!(
            add_f64(quiet, 1.0, Rounding::Nearest).to_bits(),
            0x7ff8_0000_dead_beef
        );
        assert_eq!(
            add_f64(1.0, signaling, Rounding::Up).to_bits(),
            0xfff8_0000_0000_0001
        );
        assert_eq!(
            mul_f64(signaling, quiet, Rounding::Zero).to_bits(),
            0xfff8_0000_0000_0001
        );
        assert_eq!(
            fma_f64(1.0, quiet, signaling, Rounding::Down).to_bits(),
            0x7ff8_0000_dead_beef
        );
        assert_eq!(
            div_f64(0.0, quiet, Rounding::Nearest).to_bits(),
            0x7ff8_0000_dead_beef
        );
        assert_eq!(
            sqrt_f64(signaling, Rounding::Nearest).to_bits(),
            0xfff8_0000_0000_0001
        );
        assert_eq!(
            round_to_integral_f64(signaling, IntRounding::Zero).to_bits(),
            0xfff8_0000_0000_0001
        );
        // Created NaNs are canonical.
        assert_eq!(
            add_f64(f64::INFINITY, f64::NEG_INFINITY, Rounding::Nearest).to_bits(),
            CANONICAL_NAN_F64
        );
        assert_eq!(
            mul_f64(0.0, f64::NEG_INFINITY, Rounding::Nearest).to_bits(),
            CANONICAL_NAN_F64
        );
        assert_eq!(
            fma_f64(f64::INFINITY, 1.0, f64::NEG_INFINITY, Rounding::Up).to_bits(),
            CANONICAL_NAN_F64
        );
        assert_eq!(
            div_f64(f64::INFINITY, f64::INFINITY, Rounding::Nearest).to_bits(),
            CANONICAL_NAN_F64
        );
        assert_eq!(
            sqrt_f64(-2.0, Rounding::Nearest).to_bits(),
            CANONICAL_NAN_F64
        );
        // A single-precision result of a double NaN is the canonical f32 NaN.
        assert_eq!(
            f64_to_f32(quiet, Rounding::Nearest).to_bits(),
            CANONICAL_NAN_F32
        );
    }

    #[test]
    fn f64_directed_edge_cases() {
        use Rounding::{Down, Nearest, Up, Zero};
        let min_sub = f64::from_bits(1);
        // A product far below the smallest subnormal: only .rp (positive) reaches it.
        let tiny = 2f64.powi(-600);
        for (r, expected) in [(Nearest, 0), (Zero, 0), (Down, 0), (Up, 1)] {
            assert_eq!(mul_f64(tiny, tiny, r).to_bits(), expected, "{r:?}");
        }
        assert_eq!(mul_f64(-tiny, tiny, Down).to_bits(), 0x8000_0000_0000_0001);
        // Just above half the smallest subnormal rounds to it at .rn.
        assert_eq!(mul_f64(min_sub, 0.5f64.next_up(), Nearest), min_sub);
        assert_eq!(mul_f64(min_sub, 0.5, Nearest).to_bits(), 0);
        for (r, pos) in [
            (Nearest, f64::INFINITY),
            (Zero, f64::MAX),
            (Down, f64::MAX),
            (Up, f64::INFINITY),
        ] {
            assert_eq!(add_f64(f64::MAX, f64::MAX, r), pos, "{r:?}");
            assert_eq!(fma_f64(f64::MAX, 2.0, -f64::MAX, r), f64::MAX, "{r:?}");
        }
        // In f64, 1/3 rounds down at .rn (0x3fd5555555555555) and √2 up (0x3ff6a09e667f3bcd).
        let third = 1.0f64 / 3.0;
        assert_eq!(div_f64(1.0, 3.0, Up), third.next_up());
        assert_eq!(div_f64(1.0, 3.0, Down), third);
        assert_eq!(sqrt_f64(2.0, Up).to_bits(), 0x3ff6_a09e_667f_3bcd);
        assert_eq!(sqrt_f64(2.0, Zero).to_bits(), 0x3ff6_a09e_667f_3bcc);
        assert_eq!(sqrt_f64(min_sub, Nearest), 2f64.powf(-537.0));
        assert_eq!(add_f64(1.0, -1.0, Down).to_bits(), 1 << 63);
        assert_eq!(add_f64(1.0, -1.0, Up).to_bits(), 0);
        // The exact product of 1 + 2^-52 with itself is 1 + 2^-51 + 2^-104.
        let next_one = 1f64.next_up();
        assert_eq!(
            fma_f64(next_one, next_one, -1.0, Nearest),
            2f64.powi(-51) + 2f64.powi(-104)
        );
        assert_eq!(mul_f64(next_one, next_one, Up), 1.0 + 3.0 * 2f64.powi(-52));
        assert_eq!(mul_f64(next_one, next_one, Down), 1.0 + 2f64.powi(-51));
    }

    #[test]
    fn f64_to_f32_rounds_in_every_direction() {
        let edges = f64_edge_values();
        let mut rng = Random(10);
        let mut cases: Vec<u64> = edges.clone();
        for _ in 0..RANDOM_CASES {
            let bits = match rng.below(4) {
                // Anywhere, mostly out of f32's range.
                0 => random_f64(&mut rng, &edges),
                // Inside f32's range, subnormal and overflow thresholds included.
                1 => (rng.next() & 0x800f_ffff_ffff_ffff) | ((rng.below(310) + 1023 - 160) << 52),
                // On, or a few f64 ulps from, an f32 value or the midpoint above it.
                _ => {
                    let value = f32::from_bits(rng.next() as u32 & 0x7f7f_ffff);
                    let midpoint = (f64::from(value) + f64::from(value.next_up())) / 2.0;
                    let target = if rng.below(2) == 0 {
                        f64::from(value)
                    } else {
                        midpoint
                    };
                    let nudge = rng.below(5) as i64 - 2;
                    target.to_bits().wrapping_add_signed(nudge) ^ (rng.below(2) << 63)
                }
            };
            cases.push(bits);
        }
        for bits in cases {
            let a = f64::from_bits(bits);
            let reference = if DOUBLE.is_nan(bits) {
                Reference::Fixed(CANONICAL_NAN_F32.into())
            } else if DOUBLE.is_infinite(bits) {
                Reference::Fixed(SINGLE.signed_infinity(a < 0.0))
            } else if a == 0.0 {
                Reference::Fixed(SINGLE.signed_zero(a.is_sign_negative()))
            } else {
                exact_value(DOUBLE.value(bits))
            };
            check(
                SINGLE,
                &reference,
                &|r| bits32(f64_to_f32(a, r)),
                Some(bits32(a as f32)),
                &|| format!("{a:e} ({bits:#x})"),
            );
        }
    }

    #[test]
    fn integers_to_floats_round_in_every_direction() {
        let mut rng = Random(11);
        let mut values: Vec<u64> = vec![
            0,
            1,
            2,
            (1 << 24) + 1,
            (1 << 53) + 1,
            u64::MAX,
            1 << 63,
            (1 << 63) - 1,
            0xffff_ff80_0000_0000,
        ];
        for _ in 0..RANDOM_CASES {
            let width = rng.below(64) + 1;
            values.push(rng.next() >> (64 - width));
        }
        for &u in &values {
            let exact = exact_value_or_zero(Dyadic::integer(u.into()));
            check(
                SINGLE,
                &exact,
                &|r| bits32(u64_to_f32(u, r)),
                Some(bits32(u as f32)),
                &|| format!("u64 {u}"),
            );
            check(
                DOUBLE,
                &exact,
                &|r| u64_to_f64(u, r).to_bits(),
                Some((u as f64).to_bits()),
                &|| format!("u64 {u}"),
            );
            let i = u as i64;
            let exact = exact_value_or_zero(Dyadic::integer(i.into()));
            check(
                SINGLE,
                &exact,
                &|r| bits32(i64_to_f32(i, r)),
                Some(bits32(i as f32)),
                &|| format!("i64 {i}"),
            );
            check(
                DOUBLE,
                &exact,
                &|r| i64_to_f64(i, r).to_bits(),
                Some((i as f64).to_bits()),
                &|| format!("i64 {i}"),
            );
        }
        assert_eq!(u64_to_f32(u64::MAX, Rounding::Zero).to_bits(), 0x5f7f_ffff);
        assert_eq!(u64_to_f32(u64::MAX, Rounding::Nearest), 2f32.powi(64));
        assert_eq!(i64_to_f32(i64::MIN, Rounding::Up), -(2f32.powi(63)));
        assert_eq!(i64_to_f32(-(1 << 24) - 1, Rounding::Down), -16_777_218.0);
        assert_eq!(i64_to_f32(-(1 << 24) - 1, Rounding::Up), -16_777_216.0);
        assert_eq!(i64_to_f64(0, Rounding::Down).to_bits(), 0);
    }

    fn exact_value_or_zero(value: Dyadic) -> Reference {
        if value.is_zero() {
            Reference::Fixed(0)
        } else {
            exact_value(value)
        }
    }

    /// The integer `a` rounds to, computed from its exact binary form (no float operations);
    /// `None` beyond ±2^100, where every destination saturates anyway.
    fn reference_integer(a: f64, rounding: IntRounding) -> Option<i128> {
        let bits = a.to_bits();
        let negative = bits >> 63 != 0;
        let biased = ((bits >> 52) & 0x7ff) as i64;
        let fraction = bits & ((1 << 52) - 1);
        let (significand, exponent) = if biased == 0 {
            (fraction, -1074)
        } else {
            (fraction | 1 << 52, biased - 1075)
        };
        if exponent > 40 {
            return None;
        }
        let (whole, remainder, half): (u128, u128, u128) = if exponent >= 0 {
            ((u128::from(significand)) << exponent, 0, 1)
        } else if exponent < -100 {
            (0, u128::from(significand), 1 << 100)
        } else {
            let shift = (-exponent) as u32;
            let s = u128::from(significand);
            (s >> shift, s & ((1 << shift) - 1), 1 << (shift - 1))
        };
        let away = match rounding {
            IntRounding::Nearest => remainder > half || (remainder == half && whole & 1 == 1),
            IntRounding::Zero => false,
            IntRounding::Down => negative && remainder != 0,
            IntRounding::Up => !negative && remainder != 0,
        };
        let magnitude = (whole + u128::from(away)) as i128;
        Some(if negative { -magnitude } else { magnitude })
    }

    #[test]
    fn float_to_integer_saturates_and_rounds() {
        use IntRounding::{Down, Nearest, Up, Zero};
        let irs = [Nearest, Zero, Down, Up];
        assert_eq!(f64_to_int(f64::NAN, Nearest, true, 32), 0);
        assert_eq!(f64_to_int(-1.0, Zero, true, 32), 0xffff_ffff);
        assert_eq!(f64_to_int(-1.0, Zero, true, 64), u64::MAX);
        assert_eq!(f64_to_int(-1.0, Zero, false, 32), 0);
        assert_eq!(f64_to_int(f64::INFINITY, Zero, true, 32), 0x7fff_ffff);
        assert_eq!(f64_to_int(f64::NEG_INFINITY, Zero, true, 32), 0x8000_0000);
        assert_eq!(f64_to_int(f64::INFINITY, Zero, false, 64), u64::MAX);
        assert_eq!(f64_to_int(2f64.powi(63), Zero, true, 64), i64::MAX as u64);
        assert_eq!(f64_to_int(-(2f64.powi(63)), Zero, true, 64), 1 << 63);
        assert_eq!(f64_to_int(255.5, Nearest, false, 8), 255);
        assert_eq!(f64_to_int(254.5, Nearest, false, 8), 254);
        assert_eq!(f64_to_int(-128.5, Down, true, 8), 0x80);
        assert_eq!(f64_to_int(-0.5, Nearest, false, 16), 0);
        assert_eq!(f64_to_int(-2.5, Nearest, true, 16), 0xfffe);
        assert_eq!(f64_to_int(-2.5, Up, true, 16), 0xfffe);
        assert_eq!(f64_to_int(-2.5, Down, true, 16), 0xfffd);
        assert_eq!(f64_to_int(2.5, Up, true, 16), 3);
        assert_eq!(f64_to_int(1e-300, Up, true, 32), 1);
        let edges = f64_edge_values();
        let mut rng = Random(12);
        for i in 0..RANDOM_CASES {
            let a = if i % 2 == 0 {
                f64::from(f32::from_bits(rng.next() as u32))
            } else if i % 4 == 1 {
                // Near integers and half-integers of every destination's range.
                let scale = 2f64.powi(rng.below(66) as i32);
                (rng.next() as i64 as f64 / 2f64.powi(63)) * scale
                    + (rng.below(5) as f64 - 2.0) * 0.25
            } else {
                f64::from_bits(random_f64(&mut rng, &edges))
            };
            for rounding in irs {
                let signed = rng.below(2) == 0;
                let bits = [8, 16, 32, 64][rng.below(4) as usize];
                let (lowest, highest): (i128, i128) = if signed {
                    (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
                } else {
                    (0, (1 << bits) - 1)
                };
                let expected = if a.is_nan() {
                    0
                } else {
                    let integer = reference_integer(a, rounding)
                        .unwrap_or(if a < 0.0 { i128::MIN } else { i128::MAX })
                        .clamp(lowest, highest);
                    (integer as u64) & (u64::MAX >> (64 - bits))
                };
                assert_eq!(
                    f64_to_int(a, rounding, signed, bits),
                    expected,
                    "{a:e} {rounding:?} signed={signed} bits={bits}"
                );
                // The same rounding kept in floating point.
                if let Some(integer) =
                    reference_integer(a, rounding).filter(|_| a.abs() < 2f64.powi(60))
                {
                    let ours = round_to_integral_f64(a, rounding);
                    assert_eq!(ours, integer as f64, "{a:e} {rounding:?}");
                    assert_eq!(
                        ours.is_sign_negative(),
                        a.is_sign_negative(),
                        "sign of {a:e} {rounding:?}"
                    );
                    let single = a as f32;
                    if f64::from(single) == a {
                        let ours = round_to_integral_f32(single, rounding);
                        assert_eq!(f64::from(ours), integer as f64, "{single:e} {rounding:?}");
                        assert_eq!(ours.is_sign_negative(), single.is_sign_negative());
                    }
                }
            }
        }
        assert_eq!(
            round_to_integral_f32(f32::NAN, Nearest).to_bits(),
            CANONICAL_NAN_F32
        );
        assert_eq!(
            round_to_integral_f32(f32::NEG_INFINITY, Up),
            f32::NEG_INFINITY
        );
        assert_eq!(round_to_integral_f32(-0.25, Up).to_bits(), 0x8000_0000);
        assert_eq!(round_to_integral_f32(0.5, Nearest).to_bits(), 0);
        assert_eq!(round_to_integral_f32(1.5, Nearest), 2.0);
        assert_eq!(round_to_integral_f32(2.5, Nearest), 2.0);
        assert_eq!(round_to_integral_f32(-2.5, Zero), -2.0);
        assert_eq!(round_to_integral_f32(-2.5, Down), -3.0);
        assert_eq!(round_to_integral_f32(16_777_215.0, Up), 16_777_215.0);
    }

    #[test]
    fn tf32_rounds_to_nearest_ties_away() {
        assert_eq!(cvt_rna_tf32(1.0), 1.0);
        // 1 + 2^-11 is the tie between 1 and 1 + 2^-10: away from zero.
        assert_eq!(cvt_rna_tf32(1.0 + 2f32.powi(-11)), 1.0 + 2f32.powi(-10));
        assert_eq!(cvt_rna_tf32(-1.0 - 2f32.powi(-11)), -1.0 - 2f32.powi(-10));
        assert_eq!(cvt_rna_tf32(1.0 + 2f32.powi(-11) - 2f32.powi(-23)), 1.0);
        assert_eq!(cvt_rna_tf32(f32::MAX), f32::INFINITY);
        assert_eq!(
            cvt_rna_tf32(f32::from_bits(0x7f7f_efff)).to_bits(),
            0x7f7f_e000
        );
        assert_eq!(cvt_rna_tf32(f32::NEG_INFINITY), f32::NEG_INFINITY);
        assert_eq!(
            cvt_rna_tf32(f32::from_bits(0x7f80_0001)).to_bits(),
            CANONICAL_NAN_TF32
        );
        assert_eq!(cvt_rna_tf32(f32::from_bits(0x007f_ffff)), f32::MIN_POSITIVE);
        assert_eq!(
            cvt_rna_tf32(f32::from_bits(0x0000_1000)).to_bits(),
            0x0000_2000
        );
        assert_eq!(cvt_rna_tf32(f32::from_bits(0x0000_0fff)).to_bits(), 0);
        assert_eq!(cvt_rna_tf32(-0.0).to_bits(), 0x8000_0000);
        assert_eq!(tf32_truncate(f32::from_bits(0x3f80_1fff)), 1.0);
        assert_eq!(
            tf32_truncate(f32::from_bits(0xbf80_3fff)).to_bits(),
            0xbf80_2000
        );
        assert_eq!(
            tf32_truncate(f32::from_bits(0x7f80_0001)).to_bits(),
            CANONICAL_NAN_TF32
        );
        assert_eq!(tf32_truncate(f32::INFINITY), f32::INFINITY);
        // Against the definition: the nearer of the two TF32 neighbours, ties to the larger
        // magnitude, compared exactly in f64.
        let mut rng = Random(13);
        for _ in 0..RANDOM_CASES {
            let bits = rng.next() as u32;
            let a = f32::from_bits(bits);
            let ours = cvt_rna_tf32(a);
            assert_eq!(ours.to_bits() & 0x1fff, 0, "{bits:#x}");
            if a.is_nan() {
                assert_eq!(ours.to_bits(), CANONICAL_NAN_TF32);
                continue;
            }
            let below = f32::from_bits(bits & !0x1fff);
            let above = f32::from_bits((bits & !0x1fff) + 0x2000);
            let expected = if a == below {
                below
            } else {
                let (distance_below, distance_above) = (
                    (f64::from(a) - f64::from(below)).abs(),
                    if above.is_infinite() {
                        // The step past the largest TF32 is to 2^128.
                        (2f64.powi(128) - f64::from(a).abs()).abs()
                    } else {
                        (f64::from(above) - f64::from(a)).abs()
                    },
                );
                if distance_above <= distance_below {
                    above
                } else {
                    below
                }
            };
            assert_eq!(ours.to_bits(), expected.to_bits(), "{bits:#x}");
            assert_eq!(tf32_truncate(a).to_bits(), below.to_bits(), "{bits:#x}");
        }
    }

    #[test]
    fn min_max_follow_the_isa() {
        let nan = f32::from_bits(0x7fc1_2345);
        assert_eq!(min_f32(nan, 2.0), 2.0);
        assert_eq!(min_f32(2.0, nan), 2.0);
        assert_eq!(max_f32(nan, -2.0), -2.0);
        assert_eq!(max_f32(-2.0, nan), -2.0);
        assert_eq!(min_f32(nan, nan).to_bits(), CANONICAL_NAN_F32);
        assert_eq!(max_f32(nan, f32::NAN).to_bits(), CANONICAL_NAN_F32);
        for (a, b) in [(0.0f32, -0.0f32), (-0.0, 0.0)] {
            assert_eq!(min_f32(a, b).to_bits(), 0x8000_0000);
            assert_eq!(max_f32(a, b).to_bits(), 0);
        }
        assert_eq!(min_f32(-0.0, -0.0).to_bits(), 0x8000_0000);
        assert_eq!(max_f32(0.0, 0.0).to_bits(), 0);
        assert_eq!(min_f32(f32::NEG_INFINITY, f32::MIN), f32::NEG_INFINITY);
        assert_eq!(max_f32(f32::from_bits(1), 0.0).to_bits(), 1);
        let edges = f32_edge_values();
        let mut rng = Random(14);
        for _ in 0..RANDOM_CASES {
            let (a, b) = {
                let a = random_f32(&mut rng, &edges);
                (
                    f32::from_bits(a),
                    f32::from_bits(related_f32(&mut rng, a, &edges)),
                )
            };
            let (low, high) = (min_f32(a, b), max_f32(a, b));
            if a.is_nan() || b.is_nan() {
                continue;
            }
            // One operand each, ordered, with -0 counted below +0.
            let key = |x: f32| (x, x.is_sign_positive());
            assert!(low.to_bits() == a.to_bits() || low.to_bits() == b.to_bits());
            assert!(high.to_bits() == a.to_bits() || high.to_bits() == b.to_bits());
            assert!(
                key(low).partial_cmp(&key(high)) != Some(Ordering::Greater),
                "{a:e} {b:e}"
            );
            assert!(key(low) <= key(a) && key(low) <= key(b), "{a:e} {b:e}");
            assert!(key(high) >= key(a) && key(high) >= key(b), "{a:e} {b:e}");
        }
    }

    /// The special-value tables of the ISA's `.approx` instructions, entry by entry.
    #[test]
    fn approx_special_values() {
        let nan = CANONICAL_NAN_F32;
        let inf = f32::INFINITY;
        let subnormal = f32::from_bits(0x0000_0010);
        let bits = |x: f32| x.to_bits();
        // rcp.approx: -Inf → -0, -0 → -Inf, +0 → +Inf, +Inf → +0, NaN → NaN.
        assert_eq!(bits(rcp_approx_f32(-inf)), 0x8000_0000);
        assert_eq!(rcp_approx_f32(-0.0), -inf);
        assert_eq!(rcp_approx_f32(0.0), inf);
        assert_eq!(bits(rcp_approx_f32(inf)), 0);
        assert_eq!(bits(rcp_approx_f32(f32::NAN)), nan);
        // sqrt.approx: -Inf, -normal → NaN; ±0 → ±0; +Inf → +Inf.
        assert_eq!(bits(sqrt_approx_f32(-inf)), nan);
        assert_eq!(bits(sqrt_approx_f32(-2.0)), nan);
        assert_eq!(bits(sqrt_approx_f32(-0.0)), 0x8000_0000);
        assert_eq!(bits(sqrt_approx_f32(0.0)), 0);
        assert_eq!(sqrt_approx_f32(inf), inf);
        assert_eq!(bits(sqrt_approx_f32(f32::NAN)), nan);
        // rsqrt.approx: -Inf, -normal → NaN; -0 → -Inf; +0 → +Inf; +Inf → +0.
        assert_eq!(bits(rsqrt_approx_f32(-inf)), nan);
        assert_eq!(bits(rsqrt_approx_f32(-4.0)), nan);
        assert_eq!(bits(rsqrt_approx_f32(-subnormal)), nan);
        assert_eq!(rsqrt_approx_f32(-0.0), -inf);
        assert_eq!(rsqrt_approx_f32(0.0), inf);
        assert_eq!(bits(rsqrt_approx_f32(inf)), 0);
        assert_eq!(bits(rsqrt_approx_f32(f32::NAN)), nan);
        assert_eq!(rsqrt_approx_f32(4.0), 0.5);
        // ex2.approx: -Inf → +0, ±0 → +1, +Inf → +Inf.
        assert_eq!(bits(ex2_approx_f32(-inf)), 0);
        assert_eq!(ex2_approx_f32(-0.0), 1.0);
        assert_eq!(ex2_approx_f32(0.0), 1.0);
        assert_eq!(ex2_approx_f32(inf), inf);
        assert_eq!(bits(ex2_approx_f32(f32::NAN)), nan);
        assert_eq!(ex2_approx_f32(128.0), inf);
        assert_eq!(ex2_approx_f32(-149.0), f32::from_bits(1));
        assert_eq!(bits(ex2_approx_f32(-151.0)), 0);
        assert_eq!(ex2_approx_f32(10.0), 1024.0);
        // lg2.approx: -Inf, -normal → NaN; ±0 → -Inf; +Inf → +Inf.
        assert_eq!(bits(lg2_approx_f32(-inf)), nan);
        assert_eq!(bits(lg2_approx_f32(-1.0)), nan);
        assert_eq!(lg2_approx_f32(-0.0), -inf);
        assert_eq!(lg2_approx_f32(0.0), -inf);
        assert_eq!(lg2_approx_f32(inf), inf);
        assert_eq!(bits(lg2_approx_f32(f32::NAN)), nan);
        assert_eq!(lg2_approx_f32(f32::from_bits(1)), -149.0);
        assert_eq!(lg2_approx_f32(8.0), 3.0);
        // sin.approx / cos.approx: ±Inf → NaN; sin(±0) = ±0; cos(±0) = +1.
        assert_eq!(bits(sin_approx_f32(inf)), nan);
        assert_eq!(bits(sin_approx_f32(-inf)), nan);
        assert_eq!(bits(sin_approx_f32(-0.0)), 0x8000_0000);
        assert_eq!(bits(sin_approx_f32(0.0)), 0);
        assert_eq!(bits(sin_approx_f32(f32::NAN)), nan);
        assert_eq!(bits(cos_approx_f32(-inf)), nan);
        assert_eq!(cos_approx_f32(-0.0), 1.0);
        assert_eq!(cos_approx_f32(0.0), 1.0);
        assert_eq!(bits(cos_approx_f32(f32::NAN)), nan);
        // div.approx / div.full: the correctly rounded quotient, special cases IEEE.
        assert_eq!(div_approx_f32(1.0, 3.0), 1.0f32 / 3.0);
        assert_eq!(div_approx_f32(-1.0, 0.0), -inf);
        assert_eq!(bits(div_approx_f32(0.0, 0.0)), nan);
    }

    /// Each `.approx` function within the ISA's stated bound of the true value (taken from f64,
    /// whose own error is some 2^-29 of these bounds).
    #[test]
    fn approx_functions_meet_isa_error_bounds() {
        let ulp = |x: f32| f64::from(x.abs().next_up()) - f64::from(x.abs());
        let mut rng = Random(15);
        for _ in 0..RANDOM_CASES / 4 {
            let x = f32::from_bits(rng.next() as u32);
            if !x.is_finite() {
                continue;
            }
            let wide = f64::from(x);
            if x > 0.0 {
                let r = rsqrt_approx_f32(x);
                let truth = 1.0 / wide.sqrt();
                assert!(
                    ((f64::from(r) - truth) / truth).abs() <= 2f64.powf(-22.9),
                    "rsqrt {x:e}"
                );
                let s = sqrt_approx_f32(x);
                assert!(
                    ((f64::from(s) - wide.sqrt()) / wide.sqrt()).abs() <= 2f64.powi(-23),
                    "sqrt {x:e}"
                );
                let l = lg2_approx_f32(x);
                let truth = wide.log2();
                if (0.5..2.0).contains(&wide) {
                    assert!((f64::from(l) - truth).abs() <= 2f64.powi(-22), "lg2 {x:e}");
                } else {
                    assert!(
                        ((f64::from(l) - truth) / truth).abs() <= 2f64.powi(-22),
                        "lg2 {x:e}"
                    );
                }
            }
            let reciprocal = rcp_approx_f32(x);
            if reciprocal.is_finite() && reciprocal != 0.0 {
                assert!(
                    (f64::from(reciprocal) - 1.0 / wide).abs() <= ulp(reciprocal),
                    "rcp {x:e}"
                );
            }
            let exponent = f32::from_bits((rng.next() as u32 & 0x807f_ffff) | 0x4200_0000); // |x| in [32, 64)
            let e = ex2_approx_f32(exponent * 4.0);
            let truth = f64::from(exponent * 4.0).exp2();
            if e.is_finite() && e > f32::MIN_POSITIVE {
                assert!(
                    (f64::from(e) - truth).abs() <= 2.0 * ulp(e),
                    "ex2 {exponent:e}"
                );
            }
            let angle =
                (rng.next() as i64 as f64 / 2f64.powi(63) * 2.0 * std::f64::consts::PI) as f32;
            let wide_angle = f64::from(angle);
            assert!(
                (f64::from(sin_approx_f32(angle)) - wide_angle.sin()).abs() <= 2f64.powf(-20.5),
                "sin {angle:e}"
            );
            assert!(
                (f64::from(cos_approx_f32(angle)) - wide_angle.cos()).abs() <= 2f64.powf(-20.5),
                "cos {angle:e}"
            );
        }
    }

    /// No input pattern makes any function panic (arithmetic overflow is checked in debug
    /// test builds), including every exponent/fraction corner of both formats.
    #[test]
    fn no_panics_on_any_pattern() {
        let mut rng = Random(16);
        let edges32 = f32_edge_values();
        let edges64 = f64_edge_values();
        let mut sink = 0u64;
        for _ in 0..RANDOM_CASES / 4 {
            let (a, b, c) = (
                f32::from_bits(random_f32(&mut rng, &edges32)),
                f32::from_bits(random_f32(&mut rng, &edges32)),
                f32::from_bits(random_f32(&mut rng, &edges32)),
            );
            let (x, y) = (
                f64::from_bits(random_f64(&mut rng, &edges64)),
                f64::from_bits(random_f64(&mut rng, &edges64)),
            );
            for r in ROUNDINGS {
                sink ^= bits32(f64_to_f32(x, r)) ^ u64_to_f64(y.to_bits(), r).to_bits();
                sink ^= bits32(i64_to_f32(x.to_bits() as i64, r));
            }
            let irs = [
                IntRounding::Nearest,
                IntRounding::Zero,
                IntRounding::Down,
                IntRounding::Up,
            ];
            for ir in irs {
                sink ^= f64_to_int(x, ir, true, (y.to_bits() % 70) as u32);
                sink ^= bits32(round_to_integral_f32(a, ir));
            }
            for f in [
                ex2_approx_f32,
                lg2_approx_f32,
                sin_approx_f32,
                cos_approx_f32,
                rsqrt_approx_f32,
                cvt_rna_tf32,
                tf32_truncate,
                saturate,
                ftz,
            ] {
                sink ^= bits32(f(a));
            }
            sink ^= bits32(min_f32(a, b)) ^ bits32(max_f32(b, c)) ^ bits32(div_approx_f32(a, c));
            sink ^= bits32(fma_f32(a, b, c, Rounding::Up));
        }
        // Odd widths are read as the nearest of 1..=64.
        assert_eq!(f64_to_int(300.0, IntRounding::Zero, false, 0), 1);
        assert_eq!(f64_to_int(-1.0, IntRounding::Zero, true, 99), u64::MAX);
        assert_ne!(sink, 0x5eed);
    }
}

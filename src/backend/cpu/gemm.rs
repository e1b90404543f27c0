//! CPU single-precision GEMM: C = op(A)·op(B) (+ C when accumulating), row-major.
//!
//! `gemm_reference` is the plain triple loop every faster path is tested against; `gemm` is a
//! cache-blocked, register-tiled, multi-threaded SGEMM in the GotoBLAS / BLIS style. This comment
//! explains how it works, from the innermost loop outwards.
//!
//! # Why the triple loop is slow
//!
//! A matrix product does 2·m·n·k flops on only m·k + k·n + m·n numbers, so every number can be
//! reused many times. The naive loop throws that away: for each C element it streams a row of A
//! and a column of B from memory, one multiply-add per two loads, and the column of B is strided.
//! A modern core can do 32 flops per cycle (two 8-wide FMA pipes) but only about two loads per
//! cycle, so the naive loop runs an order of magnitude below peak even with perfect caches.
//!
//! # 1. The micro-kernel: an MR×NR block of C lives in registers
//!
//! The heart is a *micro-kernel* that computes a small MR×NR tile of C as a sum of kc rank-1
//! updates (outer products):
//!
//! ```text
//!     for p in 0..kc:                       C_tile (MR×NR, in registers)
//!         b = B[p, 0..NR]   (NR/16 vector loads)
//!         for i in 0..MR:
//!             C_tile[i, :] += A[i, p] * b   (1 broadcast, NR/16 FMAs)
//! ```
//!
//! With AVX-512 (32 registers of 16 floats), MR = 14 and NR = 32 use 28 registers for the tile,
//! 2 for the row of B and 1 for the broadcast of A: per step of p that is 28 FMAs (448 flops)
//! for 2 vector loads and 14 scalar broadcasts, so the FMA pipes, not the loads, set the pace.
//! There are 28 independent accumulators, far more than the FMA latency (4 cycles) times the
//! issue rate needs, so the pipes never wait on a previous FMA. The AVX2 kernel (16 registers of
//! 8 floats) uses the classic 6×16 tile: 12 accumulators + 2 for B + 1 broadcast = 15 registers.
//! A portable scalar kernel (4×8, plain arrays the compiler may vectorise) is the fallback.
//!
//! # 2. Packing: make the micro-kernel's inputs contiguous
//!
//! The micro-kernel reads A column-by-column (MR values per p) and B row-by-row (NR values per
//! p). Instead of chasing strides (and the four transpose combinations) inside the hot loop, we
//! copy ("pack") the operands first:
//!
//! * an *A panel* is MR rows × kc columns of op(A), stored p-major: `ap[p·MR + i] = op(A)[i, p]`;
//! * a *B panel* is kc rows × NR columns of op(B), stored p-major: `bp[p·NR + j] = op(B)[p, j]`.
//!
//! The micro-kernel then walks both panels with unit stride. Transposition is handled entirely
//! by the packing routines (which read A or B with whatever stride op() implies), so one kernel
//! serves NN, NT, TN and TT. Ragged edges (m not a multiple of MR, n not a multiple of NR) are
//! packed with zeros, so the kernel always computes a full tile; for an edge tile it writes to a
//! small scratch tile whose valid part is then copied into C.
//!
//! # 3. Cache blocking: the five loops around the micro-kernel
//!
//! ```text
//! for jc in (0..n).step_by(NC):             B block kc×NC    -> L3 (shared by both cores)
//!   for pc in (0..k).step_by(KC):
//!     pack B[pc..pc+kc, jc..jc+nc] into NR-wide panels   (once, shared, in parallel)
//!     for each task (a block of ≤ MC rows × a range of B panels), in parallel:
//!       pack A[rows, pc..pc+kc] into MR-tall panels      -> L2 (private to the core)
//!       for each B panel (jr):                           -> that panel, kc×NR, stays in L1
//!         for each A panel (ir):
//!           micro-kernel(kc, A panel, B panel, C tile)
//! ```
//!
//! Each level keeps the operand that is reused most in the cache level that fits it: a B panel
//! (kc×NR) is reused by every A panel of the block, so it should stay in L1; the packed A block
//! (mc×kc) is reused by every B panel, so it should stay in L2; the packed B block (kc×nc) is
//! reused by every row block, so it should stay in L3. C is read and written once per kc step,
//! so a larger kc amortises that traffic. The AVX-512 parameters below (Zen 4: 32 KiB L1d and
//! 1 MiB L2 per core, 32 MiB shared L3) are KC = 256 (B panel 256·32·4 B = 32 KiB, A panel
//! 14 KiB, both streamed with unit stride so the hardware prefetcher covers the overflow),
//! MC = 168 (A block 168·256·4 B = 168 KiB, well inside L2), NC = 4096 (B block 4 MiB of L3).
//! See [`Kernel`] implementations for the AVX2 and scalar choices.
//!
//! # 4. Threads
//!
//! Problems of at least [`PARALLEL_MIN_FLOPS`] flops run on the rayon pool. The B block is packed
//! in parallel (one task per group of panels), then the C block is cut into tasks: by rows when
//! there are enough MR-panels of rows to give every thread several, otherwise (small m, e.g. a
//! batch of 64 or 100) by columns, so both cores stay busy on the skinny shapes a VAE produces.
//! Tasks write disjoint tiles of C. Below the threshold the fork/join cost (a few µs) would eat
//! the gain, so small products run on the calling thread.
//!
//! # 5. Instruction sets
//!
//! The kernel is chosen at run time: AVX-512F if the CPU has it, else AVX2 + FMA, else scalar
//! (`is_x86_feature_detected!`, no `-C target-cpu` needed). The SIMD kernels are
//! `#[target_feature]` functions, compiled for their instruction set regardless of the build's
//! baseline, and only ever called after the detection said the CPU supports it.

use rayon::prelude::*;
use std::cell::RefCell;
use std::thread::LocalKey;

/// Problem description: op(A) is m×k, op(B) is k×n, C is m×n, all row-major and contiguous.
/// When `trans_a`, A is stored k×m (so op(A) = Aᵀ); when `trans_b`, B is stored n×k.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct GemmShape {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
}

/// The flop count of a product, 2·m·n·k (one multiply and one add per term).
pub fn gemm_flops(s: &GemmShape) -> f64 {
    2.0 * s.m as f64 * s.n as f64 * s.k as f64
}

/// Products with fewer flops than this run single-threaded: 2·m·n·k < 4·2²⁰ (≈ 4.2 Mflop, about
/// 40 µs on one Zen 4 core), where a rayon fork/join (a few µs per phase, two phases per kc
/// step) would cost more than the second core saves.
pub const PARALLEL_MIN_FLOPS: f64 = 4.0 * 1024.0 * 1024.0;

/// The micro-kernel families, from fastest to most portable.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum GemmKernel {
    /// 14×32 tile, AVX-512F (x86-64 only).
    Avx512,
    /// 6×16 tile, AVX2 + FMA (x86-64 only).
    Avx2,
    /// 4×8 tile in plain Rust, any target.
    Scalar,
}

impl GemmKernel {
    /// The fastest kernel the running CPU supports.
    pub fn best() -> GemmKernel {
        if GemmKernel::Avx512.is_available() {
            GemmKernel::Avx512
        } else if GemmKernel::Avx2.is_available() {
            GemmKernel::Avx2
        } else {
            GemmKernel::Scalar
        }
    }

    /// Whether the running CPU has the instructions this kernel needs.
    pub fn is_available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            GemmKernel::Avx512 => is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            GemmKernel::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(not(target_arch = "x86_64"))]
            GemmKernel::Avx512 | GemmKernel::Avx2 => false,
            GemmKernel::Scalar => true,
        }
    }
}

/// C (m×n) = op(A)·op(B), or C += op(A)·op(B) when `accumulate`, with the fastest kernel the CPU
/// supports. `a`, `b` and `c` must hold at least m·k, k·n and m·n elements.
pub fn gemm(s: &GemmShape, a: &[f32], b: &[f32], c: &mut [f32], accumulate: bool) {
    gemm_with_kernel(GemmKernel::best(), s, a, b, c, accumulate)
}

/// [`gemm`] with an explicit micro-kernel family (for tests and benchmarks). A kernel the CPU
/// does not support is never run: the portable scalar kernel is used instead.
pub fn gemm_with_kernel(
    kernel: GemmKernel,
    s: &GemmShape,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    accumulate: bool,
) {
    let (m, n, k) = (s.m, s.n, s.k);
    // The blocked code writes C through raw pointers, so the lengths are checked for real (O(1)).
    // A violation is a caller bug: debug builds stop on it, release builds leave C untouched
    // rather than read or write out of bounds.
    let (need_a, need_b, need_c) = (m * k, k * n, m * n);
    if a.len() < need_a || b.len() < need_b || c.len() < need_c {
        debug_assert!(
            false,
            "gemm {s:?}: slices too short (a {} < {need_a}, b {} < {need_b} or c {} < {need_c})",
            a.len(),
            b.len(),
            c.len()
        );
        return;
    }
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // An empty sum: C = 0, or C unchanged when accumulating.
        if !accumulate {
            c[..need_c].fill(0.0);
        }
        return;
    }
    let kernel = if kernel.is_available() {
        kernel
    } else {
        GemmKernel::Scalar
    };
    match kernel {
        #[cfg(target_arch = "x86_64")]
        GemmKernel::Avx512 => gemm_blocked::<Avx512, 14, 32>(s, a, b, c, accumulate),
        #[cfg(target_arch = "x86_64")]
        GemmKernel::Avx2 => gemm_blocked::<Avx2, 6, 16>(s, a, b, c, accumulate),
        _ => gemm_blocked::<Scalar, 4, 8>(s, a, b, c, accumulate),
    }
}

/// The obvious triple loop (f32 accumulation), the oracle for tests.
pub fn gemm_reference(s: &GemmShape, a: &[f32], b: &[f32], c: &mut [f32], accumulate: bool) {
    let (m, n, k) = (s.m, s.n, s.k);
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f32;
            for p in 0..k {
                let av = if s.trans_a {
                    a[p * m + i]
                } else {
                    a[i * k + p]
                };
                let bv = if s.trans_b {
                    b[j * k + p]
                } else {
                    b[p * n + j]
                };
                acc += av * bv;
            }
            if accumulate {
                c[i * n + j] += acc;
            } else {
                c[i * n + j] = acc;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Micro-kernels
// ---------------------------------------------------------------------------------------------

/// A micro-kernel and the blocking parameters tuned for it.
trait Kernel {
    /// Rows of the register tile (height of an A panel).
    const MR: usize;
    /// Columns of the register tile (width of a B panel).
    const NR: usize;
    /// Most depth of one packed block (columns of A / rows of B per pass).
    const KC: usize;
    /// Most rows of op(A) one task packs and keeps in L2 (a multiple of MR).
    const MC: usize;
    /// Most columns of op(B) packed at once (a multiple of NR).
    const NC: usize;

    /// C_tile (MR×NR at `c`, row stride `ldc`) = A panel · B panel (+ C_tile when `beta_one`).
    ///
    /// # Safety
    /// The CPU supports the kernel's instruction set; `a` points to kc·MR readable floats, `b`
    /// to kc·NR readable floats, and `c` to an MR×NR tile with row stride `ldc`, all valid.
    /// When `beta_one` is false C is only written, never read.
    unsafe fn full(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        beta_one: bool,
    );

    /// The same for a ragged tile: only the top-left `rows × cols` (1 ≤ rows ≤ MR,
    /// 1 ≤ cols ≤ NR) of C is read or written. The default runs [`Kernel::full`] on a scratch
    /// tile and copies the valid part to and from C.
    ///
    /// # Safety
    /// As [`Kernel::full`], except that only the `rows × cols` part of the C tile need be valid.
    #[allow(clippy::too_many_arguments)]
    unsafe fn edge(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        rows: usize,
        cols: usize,
        beta_one: bool,
    ) {
        let mut scratch = [0.0f32; MAX_TILE];
        let nr = Self::NR;
        debug_assert!(Self::MR * nr <= MAX_TILE && rows <= Self::MR && cols <= nr);
        if beta_one {
            for i in 0..rows {
                // SAFETY: row i of the valid part of the C tile, `cols` floats.
                let src = unsafe { std::slice::from_raw_parts(c.add(i * ldc), cols) };
                scratch[i * nr..i * nr + cols].copy_from_slice(src);
            }
        }
        // SAFETY: the scratch tile holds MR×NR ≤ MAX_TILE floats with row stride NR; the panel
        // pointers and the instruction set are the caller's guarantee.
        unsafe { Self::full(kc, a, b, scratch.as_mut_ptr(), nr, beta_one) };
        for i in 0..rows {
            // SAFETY: row i of the valid part of the C tile, `cols` floats.
            let dst = unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), cols) };
            dst.copy_from_slice(&scratch[i * nr..i * nr + cols]);
        }
    }
}

/// The largest MR·NR of the kernels that use the scratch-tile edge path.
const MAX_TILE: usize = 6 * 16;

#[cfg(target_arch = "x86_64")]
struct Avx512;

#[cfg(target_arch = "x86_64")]
impl Kernel for Avx512 {
    const MR: usize = 14;
    const NR: usize = 32;
    // B panel 256×32×4 B = 32 KiB (L1), A block 168×256×4 B = 168 KiB (L2), B block 4 MiB (L3).
    const KC: usize = 256;
    const MC: usize = 168;
    const NC: usize = 4096;

    unsafe fn full(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        beta_one: bool,
    ) {
        // SAFETY: `gemm_blocked::<Avx512>` is only instantiated after `GemmKernel::Avx512`
        // reported avx512f; the pointer contract is the caller's, forwarded unchanged.
        unsafe { tile_avx512::<14>(kc, a, b, c, ldc, !0, !0, beta_one) }
    }

    unsafe fn edge(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        rows: usize,
        cols: usize,
        beta_one: bool,
    ) {
        // Ragged columns: lane masks (bit j set ⇔ column j is inside C). Ragged rows: a kernel
        // instance with exactly `rows` rows, so no flops are spent on padding rows.
        let mask = |lo: usize| -> u16 {
            let w = cols.saturating_sub(lo).min(16);
            ((1u32 << w) - 1) as u16
        };
        let (m0, m1) = (mask(0), mask(16));
        macro_rules! rows {
            ($($r:literal)*) => {
                match rows {
                    // SAFETY: as in `full`; the masks keep every C access inside `cols`.
                    $($r => unsafe { tile_avx512::<$r>(kc, a, b, c, ldc, m0, m1, beta_one) },)*
                    _ => debug_assert!(false, "edge tile with {rows} rows"),
                }
            };
        }
        rows!(1 2 3 4 5 6 7 8 9 10 11 12 13 14);
    }
}

/// The AVX-512 micro-kernel for the top `R` rows (R ≤ 14) of a 14×32 tile: 2·R zmm
/// accumulators (28 for a full tile). Column `j` of C is touched only where bit `j` of `m0`
/// (columns 0–15) or bit `j − 16` of `m1` (columns 16–31) is set.
///
/// # Safety
/// The CPU supports AVX-512F; `a` points to kc·14 floats, `b` to kc·32 floats, and C's rows
/// 0..R at `c` (stride `ldc`) are valid where the masks say.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_avx512<const R: usize>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    m0: u16,
    m1: u16,
    beta_one: bool,
) {
    use std::arch::x86_64::*;
    const MR: usize = 14;
    const NR: usize = 32;
    // SAFETY (whole body): reads of A are at p·MR + i < kc·MR and of B at p·NR + {0, 16} + 15
    // < kc·NR. C is only accessed through masked loads and stores, which touch exactly the
    // lanes the caller vouched for (masked-off lanes are not accessed and cannot fault); the
    // addresses of the second half and of the prefetches are formed with wrapping arithmetic
    // because they may lie outside C when masked off (a prefetch never faults).
    unsafe {
        // Ask for the C tile early: it is needed only after the k loop, by then it is in L1.
        for i in 0..R {
            let row = c.wrapping_add(i * ldc);
            _mm_prefetch::<_MM_HINT_T0>(row as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(NR - 1) as *const i8);
        }
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        let (mut pa, mut pb) = (a, b);
        for _ in 0..kc {
            let b0 = _mm512_loadu_ps(pb);
            let b1 = _mm512_loadu_ps(pb.add(16));
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm512_set1_ps(*pa.add(i));
                row[0] = _mm512_fmadd_ps(ai, b0, row[0]);
                row[1] = _mm512_fmadd_ps(ai, b1, row[1]);
            }
            pa = pa.add(MR);
            pb = pb.add(NR);
        }
        for (i, row) in acc.iter().enumerate() {
            let c0 = c.wrapping_add(i * ldc);
            let c1 = c0.wrapping_add(16);
            let (mut r0, mut r1) = (row[0], row[1]);
            if beta_one {
                r0 = _mm512_add_ps(r0, _mm512_maskz_loadu_ps(m0, c0));
                r1 = _mm512_add_ps(r1, _mm512_maskz_loadu_ps(m1, c1));
            }
            _mm512_mask_storeu_ps(c0, m0, r0);
            _mm512_mask_storeu_ps(c1, m1, r1);
        }
    }
}

#[cfg(target_arch = "x86_64")]
struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Kernel for Avx2 {
    const MR: usize = 6;
    const NR: usize = 16;
    // B panel 256×16×4 B = 16 KiB (L1), A block 144×256×4 B = 144 KiB (L2), B block 4 MiB (L3).
    const KC: usize = 256;
    const MC: usize = 144;
    const NC: usize = 4096;

    unsafe fn full(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        beta_one: bool,
    ) {
        // SAFETY: `gemm_blocked::<Avx2>` is only instantiated after `GemmKernel::Avx2` reported
        // avx2 and fma; the pointer contract is the caller's, forwarded unchanged.
        unsafe { tile_avx2(kc, a, b, c, ldc, beta_one) }
    }
}

/// The 6×16 AVX2 + FMA micro-kernel: 12 ymm accumulators.
///
/// # Safety
/// See [`Kernel::full`] with MR = 6, NR = 16; the CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    beta_one: bool,
) {
    use std::arch::x86_64::*;
    const MR: usize = 6;
    const NR: usize = 16;
    // SAFETY (whole body): reads of A are at p·MR + i < kc·MR and of B at p·NR + {0, 8} + 7
    // < kc·NR; C accesses are at i·ldc + {0..16} for i < MR, inside the caller's tile.
    unsafe {
        for i in 0..MR {
            _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc + NR - 1) as *const i8);
        }
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        let (mut pa, mut pb) = (a, b);
        for _ in 0..kc {
            let b0 = _mm256_loadu_ps(pb);
            let b1 = _mm256_loadu_ps(pb.add(8));
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm256_broadcast_ss(&*pa.add(i));
                row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
                row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
            }
            pa = pa.add(MR);
            pb = pb.add(NR);
        }
        for (i, row) in acc.iter().enumerate() {
            let cp = c.add(i * ldc);
            let (mut r0, mut r1) = (row[0], row[1]);
            if beta_one {
                r0 = _mm256_add_ps(r0, _mm256_loadu_ps(cp));
                r1 = _mm256_add_ps(r1, _mm256_loadu_ps(cp.add(8)));
            }
            _mm256_storeu_ps(cp, r0);
            _mm256_storeu_ps(cp.add(8), r1);
        }
    }
}

/// The portable kernel: plain Rust on a 4×8 tile (the compiler may use the baseline SIMD).
struct Scalar;

impl Kernel for Scalar {
    const MR: usize = 4;
    const NR: usize = 8;
    // B panel 256×8×4 B = 8 KiB (L1), A block 128×256×4 B = 128 KiB (L2).
    const KC: usize = 256;
    const MC: usize = 128;
    const NC: usize = 4096;

    unsafe fn full(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        beta_one: bool,
    ) {
        const MR: usize = Scalar::MR;
        const NR: usize = Scalar::NR;
        // SAFETY: the caller guarantees kc·MR floats at `a`, kc·NR at `b` and an MR×NR tile
        // with row stride `ldc` at `c` (no instruction-set requirement here).
        let (ap, bp) = unsafe {
            (
                std::slice::from_raw_parts(a, kc * MR),
                std::slice::from_raw_parts(b, kc * NR),
            )
        };
        let mut acc = [[0.0f32; NR]; MR];
        for (av, bv) in ap.chunks_exact(MR).zip(bp.chunks_exact(NR)) {
            for (row, &ai) in acc.iter_mut().zip(av) {
                for (x, &bj) in row.iter_mut().zip(bv) {
                    // Multiply then add (two roundings), as the reference does; `mul_add`
                    // would be a slow libm call without hardware FMA.
                    *x += ai * bj;
                }
            }
        }
        for (i, row) in acc.iter().enumerate() {
            // SAFETY: row i of the tile, NR floats at c + i·ldc, inside the caller's tile.
            let crow = unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), NR) };
            for (dst, &x) in crow.iter_mut().zip(row) {
                *dst = if beta_one { *dst + x } else { x };
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Packing
// ---------------------------------------------------------------------------------------------

/// Pack rows `i0 .. i0+MR` (those < m; the rest zero) and columns `p0 .. p0+kc` of op(A) into
/// `dst` (kc·MR floats), p-major: `dst[p·MR + i] = op(A)[i0 + i, p0 + p]`.
fn pack_a_panel<const MR: usize>(
    s: &GemmShape,
    a: &[f32],
    i0: usize,
    p0: usize,
    kc: usize,
    dst: &mut [f32],
) {
    let rows = MR.min(s.m - i0);
    let dst = dst.chunks_exact_mut(MR).take(kc);
    if s.trans_a {
        // A is stored k×m: op(A)[i, p] = a[p·m + i], so each p gives `rows` contiguous values.
        for (p, d) in dst.enumerate() {
            let src = &a[(p0 + p) * s.m + i0..];
            if rows == MR {
                d.copy_from_slice(&src[..MR]); // a fixed-size copy: a few vector moves
            } else {
                d[..rows].copy_from_slice(&src[..rows]);
                d[rows..].fill(0.0);
            }
        }
    } else {
        // A is stored m×k: op(A)[i, p] = a[i·k + p]. Walk the `rows` rows in step (one read
        // stream per row) and write the panel sequentially, one p-column of MR values at a time.
        let src: [&[f32]; MR] = std::array::from_fn(|i| {
            if i < rows {
                &a[(i0 + i) * s.k + p0..][..kc]
            } else {
                &[]
            }
        });
        if rows == MR {
            for (p, d) in dst.enumerate() {
                for (x, row) in d.iter_mut().zip(&src) {
                    *x = row[p];
                }
            }
        } else {
            for (p, d) in dst.enumerate() {
                for (x, row) in d.iter_mut().zip(&src) {
                    *x = row.get(p).copied().unwrap_or(0.0);
                }
            }
        }
    }
}

/// Pack rows `p0 .. p0+kc` and columns `j0 .. j0+NR` (those < n; the rest zero) of op(B) into
/// `dst` (kc·NR floats), p-major: `dst[p·NR + j] = op(B)[p0 + p, j0 + j]`.
fn pack_b_panel<const NR: usize>(
    s: &GemmShape,
    b: &[f32],
    j0: usize,
    p0: usize,
    kc: usize,
    dst: &mut [f32],
) {
    let cols = NR.min(s.n - j0);
    let dst = dst.chunks_exact_mut(NR).take(kc);
    if s.trans_b {
        // B is stored n×k: column j of op(B) is row j of B, contiguous. Walk the `cols` rows in
        // step and write the panel sequentially, one p-row of NR values at a time.
        let src: [&[f32]; NR] = std::array::from_fn(|j| {
            if j < cols {
                &b[(j0 + j) * s.k + p0..][..kc]
            } else {
                &[]
            }
        });
        if cols == NR {
            for (p, d) in dst.enumerate() {
                for (x, col) in d.iter_mut().zip(&src) {
                    *x = col[p];
                }
            }
        } else {
            for (p, d) in dst.enumerate() {
                for (x, col) in d.iter_mut().zip(&src) {
                    *x = col.get(p).copied().unwrap_or(0.0);
                }
            }
        }
    } else {
        // B is stored k×n: each p gives `cols` contiguous values.
        for (p, d) in dst.enumerate() {
            let src = &b[(p0 + p) * s.n + j0..];
            if cols == NR {
                d.copy_from_slice(&src[..NR]); // a fixed-size copy: a few vector moves
            } else {
                d[..cols].copy_from_slice(&src[..cols]);
                d[cols..].fill(0.0);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Packing buffers
// ---------------------------------------------------------------------------------------------

thread_local! {
    /// The calling thread's packed B block, reused across calls.
    static PACK_B: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// Each worker's packed A block, reused across tasks and calls.
    static PACK_A: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Run `f` on a 64-byte-aligned scratch slice of `len` floats from `key`'s thread-local buffer
/// (so vector loads of packed panels never straddle cache lines). If that buffer is already in
/// use on this thread (a nested gemm run by rayon work stealing), a fresh one is allocated.
fn with_buffer<R>(
    key: &'static LocalKey<RefCell<Vec<f32>>>,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    fn aligned(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
        const PAD: usize = 16; // 64 bytes of f32
        if v.len() < len + PAD {
            v.resize(len + PAD, 0.0);
        }
        let off = v.as_ptr().align_offset(64).min(PAD);
        &mut v[off..off + len]
    }
    let mut f = Some(f);
    let r = key
        .try_with(|cell| {
            let mut v = cell.try_borrow_mut().ok()?;
            let f = f.take()?;
            Some(f(aligned(&mut v, len)))
        })
        .ok()
        .flatten();
    match (r, f) {
        (Some(r), _) => r,
        (None, Some(f)) => f(aligned(&mut Vec::new(), len)),
        // Unreachable: `f` is taken only on the path that returns Some.
        (None, None) => unreachable!("with_buffer: closure consumed without a result"),
    }
}

/// A raw pointer to C that tasks may share: each task writes a disjoint set of tiles.
#[derive(Clone, Copy)]
struct SyncPtr(*mut f32);
// SAFETY: the pointer is only dereferenced inside `gemm_blocked`, where the tasks that share it
// write pairwise disjoint tiles of C and C outlives the parallel section.
unsafe impl Send for SyncPtr {}
// SAFETY: as above.
unsafe impl Sync for SyncPtr {}

/// `[lo, hi)` of part `i` when `total` items are cut into `parts` near-equal parts.
fn part(total: usize, parts: usize, i: usize) -> (usize, usize) {
    (i * total / parts, (i + 1) * total / parts)
}

// ---------------------------------------------------------------------------------------------
// The blocked driver
// ---------------------------------------------------------------------------------------------

/// The five-loop GotoBLAS algorithm around kernel `K`. Requires m, n, k > 0 and slice lengths
/// already checked by `gemm_with_kernel`, and `K`'s instruction set available.
/// `MR` and `NR` repeat `K::MR` and `K::NR` as const parameters (for the packing routines).
fn gemm_blocked<K: Kernel, const MR: usize, const NR: usize>(
    s: &GemmShape,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    accumulate: bool,
) {
    const { assert!(K::MR == MR && K::NR == NR) };
    let (m, n, k) = (s.m, s.n, s.k);
    let (mr, nr) = (MR, NR);
    let threads = if gemm_flops(s) >= PARALLEL_MIN_FLOPS {
        rayon::current_num_threads().max(1)
    } else {
        1
    };
    let m_panels = m.div_ceil(mr);
    let n_panels_all = n.div_ceil(nr);
    // Cut k into equal passes of at most KC (k = 784 → 4 × 196, not 3 × 256 + 16: a short
    // last pass would pay the C load/store of a whole pass for little work). Likewise n.
    let k_passes = k.div_ceil(K::KC);
    let n_passes = n_panels_all.div_ceil(K::NC / nr);
    let kc_max = k.div_ceil(k_passes);
    let nc_panels_max = n_panels_all.div_ceil(n_passes);
    let c_ptr = SyncPtr(c.as_mut_ptr());

    with_buffer(&PACK_B, nc_panels_max * kc_max * nr, |bpack| {
        for jb in 0..n_passes {
            let (jp_lo, jp_hi) = part(n_panels_all, n_passes, jb);
            let jc = jp_lo * nr;
            let n_panels = jp_hi - jp_lo;
            for kb in 0..k_passes {
                let (pc, pc_end) = part(k, k_passes, kb);
                let kc = pc_end - pc;
                // The first pass overwrites C (unless accumulating); later passes add to it.
                let beta_one = accumulate || kb > 0;

                // Pack the B block kc×nc, one NR-wide panel per chunk.
                let bp = &mut bpack[..n_panels * kc * nr];
                let pack_b = |(jp, dst): (usize, &mut [f32])| {
                    pack_b_panel::<NR>(s, b, jc + jp * nr, pc, kc, dst)
                };
                if threads > 1 && n_panels > 1 {
                    bp.par_chunks_mut(kc * nr)
                        .enumerate()
                        .with_min_len(4)
                        .for_each(pack_b);
                } else {
                    bp.chunks_mut(kc * nr).enumerate().for_each(pack_b);
                }
                let bp = &*bp;

                // Cut C[.., jc..jc+nc] into tasks: m_blocks row blocks × n_blocks column blocks.
                let mut m_blocks = m_panels.div_ceil(K::MC / mr);
                let mut n_blocks = 1;
                if threads > 1 {
                    if m_panels >= 4 * threads {
                        // Plenty of rows: cut by rows only, into a multiple of the thread count.
                        m_blocks = m_blocks.div_ceil(threads) * threads;
                    } else {
                        // Skinny (small m): cut the columns too so every thread has work.
                        n_blocks = threads.min(n_panels);
                    }
                }
                let task = |t: usize| {
                    let (mb, nb) = (t / n_blocks, t % n_blocks);
                    let (ip0, ip1) = part(m_panels, m_blocks, mb);
                    let (jp0, jp1) = part(n_panels, n_blocks, nb);
                    if ip0 == ip1 || jp0 == jp1 {
                        return;
                    }
                    with_buffer(&PACK_A, (ip1 - ip0) * kc * mr, |apack| {
                        for (ip, dst) in apack.chunks_mut(kc * mr).enumerate() {
                            pack_a_panel::<MR>(s, a, (ip0 + ip) * mr, pc, kc, dst);
                        }
                        for jp in jp0..jp1 {
                            let bpanel = bp[jp * kc * nr..][..kc * nr].as_ptr();
                            let j0 = jc + jp * nr;
                            let cols = nr.min(n - j0);
                            for (ip, apanel) in apack.chunks(kc * mr).enumerate() {
                                let i0 = (ip0 + ip) * mr;
                                let rows = mr.min(m - i0);
                                let apanel = apanel.as_ptr();
                                let c = c_ptr;
                                // SAFETY: K's instruction set was detected by the caller; the A
                                // and B panels hold kc·MR and kc·NR floats; the C tile's valid
                                // part (rows × cols at (i0, j0)) is inside the m×n C (length
                                // checked) and no other task touches it (tasks own disjoint
                                // row × column blocks).
                                unsafe {
                                    let ctile = c.0.add(i0 * n + j0);
                                    if rows == mr && cols == nr {
                                        K::full(kc, apanel, bpanel, ctile, n, beta_one);
                                    } else {
                                        K::edge(kc, apanel, bpanel, ctile, n, rows, cols, beta_one);
                                    }
                                }
                            }
                        }
                    });
                };
                let tasks = m_blocks * n_blocks;
                if threads > 1 && tasks > 1 {
                    (0..tasks).into_par_iter().for_each(task);
                } else {
                    (0..tasks).for_each(task);
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn random(len: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed, 0);
        (0..len).map(|_| rng.normal()).collect()
    }

    /// ‖x − y‖₂ / ‖y‖₂ (0 when both are empty or zero).
    fn rel_err(x: &[f32], y: &[f32]) -> f64 {
        let (mut num, mut den) = (0.0f64, 0.0f64);
        for (&a, &b) in x.iter().zip(y) {
            num += ((a - b) as f64).powi(2);
            den += (b as f64).powi(2);
        }
        if den == 0.0 {
            num.sqrt()
        } else {
            (num / den).sqrt()
        }
    }

    const SHAPES: &[(usize, usize, usize)] = &[
        (1, 1, 1),
        (0, 5, 3),
        (5, 0, 3),
        (4, 6, 0),
        (7, 13, 5),
        (17, 31, 29),
        (64, 64, 64),
        (129, 65, 257),
        (500, 784, 100),
        // Several k passes, several row blocks, both parallel task layouts (rows: 100×70×600;
        // columns, for small m: 20×700×300), and two n passes (n > NC = 4096).
        (100, 70, 600),
        (20, 700, 300),
        (3, 1000, 300),
        (5, 4500, 17),
    ];

    /// Compare `kernel` with the reference on every shape, transpose combination and
    /// accumulate flag. Both sum k products in f32, in different orders (and with or without
    /// fused multiply-add), so they differ by rounding: for N(0,1) inputs the relative error of
    /// a length-k f32 dot product grows like √k·2⁻²⁴ ≈ 1e-6 at k = 600, so 1e-5 leaves a 10×
    /// margin while any indexing or packing mistake gives an error of order 1.
    fn check(kernel: GemmKernel) {
        const TOL: f64 = 1e-5;
        let mut seed = 1;
        for &(m, n, k) in SHAPES {
            for (trans_a, trans_b) in [(false, false), (false, true), (true, false), (true, true)] {
                for accumulate in [false, true] {
                    seed += 1;
                    let s = GemmShape {
                        m,
                        n,
                        k,
                        trans_a,
                        trans_b,
                    };
                    let a = random(m * k, seed);
                    let b = random(k * n, seed + 1000);
                    let c0 = random(m * n, seed + 2000);
                    let mut want = c0.clone();
                    gemm_reference(&s, &a, &b, &mut want, accumulate);
                    let mut got = if accumulate {
                        c0.clone()
                    } else {
                        // Garbage (NaN) in C must be overwritten, not multiplied by zero.
                        vec![f32::NAN; m * n]
                    };
                    gemm_with_kernel(kernel, &s, &a, &b, &mut got, accumulate);
                    assert!(
                        got.iter().all(|x| !x.is_nan()),
                        "{kernel:?} {s:?} acc={accumulate}: NaN in result"
                    );
                    let e = rel_err(&got, &want);
                    assert!(e <= TOL, "{kernel:?} {s:?} acc={accumulate}: rel err {e:e}");
                }
            }
        }
    }

    #[test]
    fn gemm_default_matches_reference() {
        let mut seed = 0;
        for &(m, n, k) in SHAPES {
            for (trans_a, trans_b) in [(false, false), (false, true), (true, false), (true, true)] {
                seed += 1;
                let s = GemmShape {
                    m,
                    n,
                    k,
                    trans_a,
                    trans_b,
                };
                let (a, b) = (random(m * k, seed), random(k * n, seed + 7));
                let mut want = vec![0.0; m * n];
                gemm_reference(&s, &a, &b, &mut want, false);
                let mut got = vec![1.0; m * n];
                gemm(&s, &a, &b, &mut got, false);
                assert!(got.iter().all(|x| !x.is_nan()));
                let e = rel_err(&got, &want);
                assert!(e <= 1e-5, "{s:?}: rel err {e:e}");
            }
        }
    }

    #[test]
    fn gemm_avx512_matches_reference() {
        if GemmKernel::Avx512.is_available() {
            check(GemmKernel::Avx512);
        } else {
            eprintln!("AVX-512F not available on this CPU: AVX-512 kernel not tested");
        }
    }

    #[test]
    fn gemm_avx2_matches_reference() {
        if GemmKernel::Avx2.is_available() {
            check(GemmKernel::Avx2);
        } else {
            eprintln!("AVX2+FMA not available on this CPU: AVX2 kernel not tested");
        }
    }

    #[test]
    fn gemm_scalar_matches_reference() {
        check(GemmKernel::Scalar);
    }

    #[test]
    fn gemm_large_parallel_matches_reference() {
        // Above the parallel threshold with a ragged edge in every dimension and two kc passes.
        let s = GemmShape {
            m: 301,
            n: 517,
            k: 263,
            trans_a: false,
            trans_b: false,
        };
        assert!(gemm_flops(&s) >= PARALLEL_MIN_FLOPS);
        let (a, b) = (random(s.m * s.k, 11), random(s.k * s.n, 12));
        let mut want = vec![0.0; s.m * s.n];
        gemm_reference(&s, &a, &b, &mut want, false);
        let mut got = vec![0.0; s.m * s.n];
        gemm(&s, &a, &b, &mut got, false);
        let e = rel_err(&got, &want);
        assert!(e <= 1e-5, "rel err {e:e}");
    }

    #[test]
    fn gemm_nested_in_rayon_matches_reference() {
        // Products run from inside rayon tasks (as a batched matmul would): the packing buffers
        // of a thread may then be in use by an outer product and must not be shared.
        let s = GemmShape {
            m: 120,
            n: 200,
            k: 150,
            trans_a: false,
            trans_b: true,
        };
        assert!(gemm_flops(&s) >= PARALLEL_MIN_FLOPS);
        let results: Vec<f64> = (0..6u64)
            .into_par_iter()
            .map(|i| {
                let (a, b) = (random(s.m * s.k, 20 + i), random(s.k * s.n, 40 + i));
                let mut want = vec![0.0; s.m * s.n];
                gemm_reference(&s, &a, &b, &mut want, false);
                let mut got = vec![0.0; s.m * s.n];
                gemm(&s, &a, &b, &mut got, false);
                rel_err(&got, &want)
            })
            .collect();
        for e in results {
            assert!(e <= 1e-5, "rel err {e:e}");
        }
    }

    /// Release builds leave C untouched when a slice is too short (debug builds assert).
    #[cfg(not(debug_assertions))]
    #[test]
    fn gemm_short_slices_leave_c_untouched() {
        let s = GemmShape {
            m: 4,
            n: 4,
            k: 4,
            trans_a: false,
            trans_b: false,
        };
        let (a, b) = (vec![1.0; 16], vec![1.0; 15]);
        let mut c = vec![7.0; 16];
        gemm(&s, &a, &b, &mut c, false);
        assert!(c.iter().all(|&x| x == 7.0));
    }

    #[test]
    fn gemm_exact_on_small_integers() {
        // Small integers multiply and add exactly in f32, so every kernel must agree bit for bit.
        let s = GemmShape {
            m: 19,
            n: 37,
            k: 23,
            trans_a: true,
            trans_b: false,
        };
        let a: Vec<f32> = (0..s.m * s.k).map(|i| ((i * 7) % 5) as f32 - 2.0).collect();
        let b: Vec<f32> = (0..s.k * s.n).map(|i| ((i * 3) % 7) as f32 - 3.0).collect();
        let mut want = vec![0.0; s.m * s.n];
        gemm_reference(&s, &a, &b, &mut want, false);
        for kernel in [GemmKernel::Avx512, GemmKernel::Avx2, GemmKernel::Scalar] {
            let mut got = vec![0.0; s.m * s.n];
            gemm_with_kernel(kernel, &s, &a, &b, &mut got, false);
            assert_eq!(got, want, "{kernel:?}");
        }
    }

    #[test]
    fn gemm_flops_counts_two_per_term() {
        let s = GemmShape {
            m: 3,
            n: 5,
            k: 7,
            trans_a: false,
            trans_b: false,
        };
        assert_eq!(gemm_flops(&s), 210.0);
    }
}

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
//! by the packing routines (which read A or B with whatever stride op() implies: a plain copy
//! when the panel's values for one p are contiguous in storage, a small 4×4-at-a-time transpose
//! when they are not), so one kernel serves NN, NT, TN and TT. Packing costs O(mk + kn) memory
//! traffic against O(mnk) flops, and it is what lets the kernel run at full speed.
//!
//! Ragged edges (m not a multiple of MR, n not a multiple of NR) are packed with zeros. The
//! AVX-512 kernel then handles an edge tile directly: an instance compiled for exactly the
//! valid number of rows (no flops spent on padding rows) and lane masks on the C loads and
//! stores for the valid columns. The other kernels compute a full tile into a scratch buffer
//! and copy its valid part.
//!
//! # 3. Cache blocking: the loops around the micro-kernel
//!
//! ```text
//! for jc in n, step NC:                              (one pass for n ≤ 4096)
//!   for pc in k, step KC:                            (k = 784 → 4 equal passes of 196)
//!     pack B[pc..pc+kc, jc..jc+nc] into NR-wide panels    -> B block, L2 / L3
//!     for ic in m, step MC:
//!       pack A[ic..ic+mc, pc..pc+kc] into MR-tall panels  -> A block, L2
//!       for each B panel (jr):                            -> kc×NR, L1
//!         for each A panel (ir):
//!           micro-kernel(kc, A panel, B panel, C tile at (ir, jr))
//! ```
//!
//! Each level keeps the operand that is reused most in the cache level that fits it: a B panel
//! (kc×NR) is reused by every A panel of the block, so it should stay in L1; the packed A block
//! (mc×kc) is reused by every B panel, so it should stay in L2; the packed B block (kc×nc) is
//! reused by every A block, so it should stay in L2 or L3. C is read and written once per kc
//! pass, so a larger kc amortises that traffic. The AVX-512 parameters (Zen 4: 32 KiB L1d and
//! 1 MiB L2 per core, 32 MiB shared L3) are KC = 384, MC = 168 and NC = 4096: the A block is
//! 168·384·4 B = 252 KiB, a quarter of L2; the B block at most 384·4096·4 B = 6 MiB, in L3.
//! The B panel, 384·32·4 B = 48 KiB, overflows L1 on purpose: per step of p the kernel needs
//! only 184 B for 28 FMA cycles, which L2 feeds easily (and the prefetcher sees unit stride),
//! while the longer kc halves the C traffic of KC = 192. Measured single-threaded on the 2-core
//! Zen 4 VM, KC = 384 beat 128, 192, 256 and 512 by 1–5 % over the benchmark shapes, and MC
//! between 84 and 504 made no difference beyond noise.
//! k and n are cut into equal passes no longer than KC and NC. The AVX2 and scalar choices are
//! stated with their kernels.
//!
//! # 4. Threads
//!
//! Products of at least [`PARALLEL_MIN_FLOPS`] flops use the rayon pool: C is cut into one
//! block per thread, by rows or by columns, whichever makes the slowest block cheapest
//! (`plan`: a row cut has every thread pack all of B, a column cut all of A), and each block
//! runs the whole loop nest above independently, with its own packing buffers. So a call costs
//! one fork/join however many passes it makes, and the skinny products of a VAE (batch 64 or
//! 100 rows) are cut by columns and keep both cores busy. The calling thread computes the first
//! block itself and then spin-waits briefly for the others rather than sleeping (see
//! `gemm_blocked`). Smaller products run on the calling thread.
//!
//! # 5. Instruction sets
//!
//! The kernel is chosen at run time: AVX-512F if the CPU has it, else AVX2 + FMA, else scalar
//! (`is_x86_feature_detected!`, no `-C target-cpu` needed). The SIMD kernels are
//! `#[target_feature]` functions, compiled for their instruction set regardless of the build's
//! baseline, and only ever called after the detection said the CPU supports it.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// Products with fewer flops than this run single-threaded: 2·m·n·k < 2²¹ (≈ 2.1 Mflop, about
/// 20 µs on one Zen 4 core). Measured on the 2-core VM with warm workers, two threads start to
/// win between 1 and 1.5 Mflop (fork/join costs a few µs) and are 1.5–1.8× faster at 2 Mflop.
pub const PARALLEL_MIN_FLOPS: f64 = (1u64 << 21) as f64;

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
    // rather than read or write out of bounds. (A size that overflows usize cannot fit either.)
    let fits = |len: usize, x: usize, y: usize| x.checked_mul(y).is_some_and(|need| len >= need);
    if !(fits(a.len(), m, k) && fits(b.len(), k, n) && fits(c.len(), m, n)) {
        debug_assert!(
            false,
            "gemm {s:?}: slices too short (a: {}, b: {}, c: {} elements)",
            a.len(),
            b.len(),
            c.len()
        );
        return;
    }
    let need_c = m * n;
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
        // The scratch tile must hold a full MR×NR tile: checked at compile time for every kernel
        // that uses this default.
        const { assert!(Self::MR * Self::NR <= MAX_TILE) };
        let mut scratch = [0.0f32; MAX_TILE];
        let nr = Self::NR;
        debug_assert!(rows <= Self::MR && cols <= nr);
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
    // See the module comment: A block 168×384×4 B = 252 KiB (L2), B panel 48 KiB (L1 + L2),
    // B block ≤ 6 MiB (L3).
    const KC: usize = 384;
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
//
// Packing a block of op(A) or op(B) comes in two flavours, depending on how the operand is
// stored relative to the panel layout:
//
// * "copy": the values one step of p needs (MR of an A panel, NR of a B panel) are contiguous
//   in memory: A stored transposed (k×m) or B stored plainly (k×n). We walk the block's rows of
//   storage in order (sequential reads, which the prefetcher loves) and deal each row out to the
//   panels, a short fixed-size copy per panel.
// * "transpose": the panel's values for one p are a column of storage: A stored plainly (m×k)
//   or B stored transposed (n×k). Then each panel is a small transpose, done 4×4 at a time with
//   SSE shuffles on x86-64 (4 loads, 8 shuffles, 4 stores per 16 values) and elementwise
//   elsewhere.

/// Pack rows `i0 .. i1` and columns `p0 .. p0+kc` of op(A) into MR-tall panels of kc·MR floats
/// each, p-major: panel q holds `dst[q·kc·MR + p·MR + i] = op(A)[i0 + q·MR + i, p0 + p]`, with
/// zeros in the rows past `i1` of the last panel.
fn pack_a_block<const MR: usize>(
    s: &GemmShape,
    a: &[f32],
    (i0, i1): (usize, usize),
    p0: usize,
    kc: usize,
    dst: &mut [f32],
) {
    let panels = dst.chunks_exact_mut(kc * MR);
    if s.trans_a {
        // A stored k×m: op(A)[i, p] = a[p·m + i], rows of storage run along i ("copy").
        let mut panels: Vec<&mut [f32]> = panels.collect();
        for p in 0..kc {
            let src = &a[(p0 + p) * s.m + i0..(p0 + p) * s.m + i1];
            deal::<MR>(src, &mut panels, p);
        }
    } else {
        // A stored m×k: op(A)[i, p] = a[i·k + p] ("transpose").
        for (q, panel) in panels.enumerate() {
            let r = i0 + q * MR;
            let rows = MR.min(i1 - r);
            transpose_pack(&a[r * s.k + p0..], s.k, rows, kc, MR, panel);
        }
    }
}

/// Pack rows `p0 .. p0+kc` and columns `j0 .. j1` of op(B) into NR-wide panels of kc·NR floats
/// each, p-major: panel q holds `dst[q·kc·NR + p·NR + j] = op(B)[p0 + p, j0 + q·NR + j]`, with
/// zeros in the columns past `j1` of the last panel.
fn pack_b_block<const NR: usize>(
    s: &GemmShape,
    b: &[f32],
    (j0, j1): (usize, usize),
    p0: usize,
    kc: usize,
    dst: &mut [f32],
) {
    let panels = dst.chunks_exact_mut(kc * NR);
    if s.trans_b {
        // B stored n×k: op(B)[p, j] = b[j·k + p] ("transpose").
        for (q, panel) in panels.enumerate() {
            let c = j0 + q * NR;
            let cols = NR.min(j1 - c);
            transpose_pack(&b[c * s.k + p0..], s.k, cols, kc, NR, panel);
        }
    } else {
        // B stored k×n: op(B)[p, j] = b[p·n + j], rows of storage run along j ("copy").
        let mut panels: Vec<&mut [f32]> = panels.collect();
        for p in 0..kc {
            let src = &b[(p0 + p) * s.n + j0..(p0 + p) * s.n + j1];
            deal::<NR>(src, &mut panels, p);
        }
    }
}

/// Deal one row of storage out to the panels: `panels[q][p·W .. p·W + W]` = `src[q·W ..]`,
/// padded with zeros past the end of `src`.
fn deal<const W: usize>(src: &[f32], panels: &mut [&mut [f32]], p: usize) {
    let mut chunks = src.chunks_exact(W);
    for (panel, chunk) in panels.iter_mut().zip(&mut chunks) {
        // A fixed-size copy: a couple of vector moves.
        panel[p * W..p * W + W].copy_from_slice(chunk);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        if let Some(panel) = panels.get_mut(src.len() / W) {
            let d = &mut panel[p * W..p * W + W];
            d[..rest.len()].copy_from_slice(rest);
            d[rest.len()..].fill(0.0);
        }
    }
}

/// `dst[p·w + i] = src[i·ld + p]` for i < rows, p < kc, and 0 for rows ≤ i < w: transpose
/// `rows` strided rows of `kc` values into the p-major layout of a panel of width w.
fn transpose_pack(src: &[f32], ld: usize, rows: usize, kc: usize, w: usize, dst: &mut [f32]) {
    debug_assert!(rows <= w && dst.len() >= kc * w);
    let mut done = 0; // rows handled by the vector path
    #[cfg(target_arch = "x86_64")]
    {
        let fits = rows == 0 || src.len() >= (rows - 1) * ld + kc;
        if fits && dst.len() >= kc * w {
            use std::arch::x86_64::*;
            let (rows4, kc4) = (rows / 4 * 4, kc / 4 * 4);
            let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
            for i in (0..rows4).step_by(4) {
                for p in (0..kc4).step_by(4) {
                    // SAFETY: SSE is part of the x86-64 baseline. Loads read src[(i+r)·ld + p ..
                    // + 4] with i + r < rows and p + 4 ≤ kc, inside src by the `fits` check;
                    // stores write dst[(p+q)·w + i .. + 4] with p + q < kc and i + 4 ≤ rows ≤ w,
                    // inside dst (len ≥ kc·w, checked).
                    unsafe {
                        let r0 = _mm_loadu_ps(s.add(i * ld + p));
                        let r1 = _mm_loadu_ps(s.add((i + 1) * ld + p));
                        let r2 = _mm_loadu_ps(s.add((i + 2) * ld + p));
                        let r3 = _mm_loadu_ps(s.add((i + 3) * ld + p));
                        let t0 = _mm_unpacklo_ps(r0, r1); // r0[0] r1[0] r0[1] r1[1]
                        let t1 = _mm_unpacklo_ps(r2, r3); // r2[0] r3[0] r2[1] r3[1]
                        let t2 = _mm_unpackhi_ps(r0, r1); // r0[2] r1[2] r0[3] r1[3]
                        let t3 = _mm_unpackhi_ps(r2, r3); // r2[2] r3[2] r2[3] r3[3]
                        _mm_storeu_ps(d.add(p * w + i), _mm_movelh_ps(t0, t1));
                        _mm_storeu_ps(d.add((p + 1) * w + i), _mm_movehl_ps(t1, t0));
                        _mm_storeu_ps(d.add((p + 2) * w + i), _mm_movelh_ps(t2, t3));
                        _mm_storeu_ps(d.add((p + 3) * w + i), _mm_movehl_ps(t3, t2));
                    }
                }
                for p in kc4..kc {
                    for r in i..i + 4 {
                        dst[p * w + r] = src[r * ld + p];
                    }
                }
            }
            done = rows4;
        }
    }
    for i in done..rows {
        let row = &src[i * ld..i * ld + kc];
        for (d, &v) in dst.chunks_exact_mut(w).zip(row) {
            d[i] = v;
        }
    }
    if rows < w {
        for d in dst.chunks_exact_mut(w).take(kc) {
            d[rows..].fill(0.0);
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
// SAFETY: the pointer is only dereferenced inside `gemm_block`, and the tasks that share it
// write pairwise disjoint blocks of C, which outlives the parallel section.
unsafe impl Send for SyncPtr {}
// SAFETY: as above.
unsafe impl Sync for SyncPtr {}

// ---------------------------------------------------------------------------------------------
// The blocked driver
// ---------------------------------------------------------------------------------------------

/// `[lo, hi)` of part `i` when `total` items are cut into `parts` near-equal parts whose inner
/// boundaries are multiples of `align`.
fn part(total: usize, parts: usize, align: usize, i: usize) -> (usize, usize) {
    let cut = |j: usize| {
        if j >= parts {
            total
        } else {
            ((j * total / parts + align / 2) / align * align).min(total)
        }
    };
    (cut(i), cut(i + 1))
}

/// How to cut C among `threads` workers: `tm` row blocks × `tn` column blocks (tm·tn =
/// threads), each computed independently by one task.
///
/// The cost of a task, in cycles, is modelled as its share of the flops at 32 flops/cycle
/// (columns counted in whole NR-wide panels, since padding columns are computed too) plus its
/// packing, about one cycle per packed element: a row split makes every task pack all of B, a
/// column split makes every task pack all of A. The cut with the cheapest slowest task wins: a
/// skinny product (m = 64 or 100) is cut by columns, a square one by rows.
fn plan(m: usize, n: usize, k: usize, nr: usize, threads: usize) -> (usize, usize) {
    let mut best = (1, threads);
    let mut best_cost = f64::INFINITY;
    for tm in 1..=threads {
        if !threads.is_multiple_of(tm) {
            continue;
        }
        let tn = threads / tm;
        let rows = m.div_ceil(tm);
        let cols = n.div_ceil(tn).div_ceil(nr) * nr;
        let cost = (rows * cols * k) as f64 / 16.0 + ((rows + cols) * k) as f64;
        if cost < best_cost {
            best = (tm, tn);
            best_cost = cost;
        }
    }
    best
}

/// The five-loop GotoBLAS algorithm around kernel `K`. Requires m, n, k > 0 and slice lengths
/// already checked by `gemm_with_kernel`, and `K`'s instruction set available. `MR` and `NR`
/// repeat `K::MR` and `K::NR` as const parameters (for the packing routines).
///
/// Large products are cut into one block of C per rayon thread ([`plan`]); each block runs
/// the whole loop nest independently with its own packing buffers, so a call costs a single
/// fork/join however many k and n passes it makes.
fn gemm_blocked<K: Kernel, const MR: usize, const NR: usize>(
    s: &GemmShape,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    accumulate: bool,
) {
    const { assert!(K::MR == MR && K::NR == NR) };
    let threads = if gemm_flops(s) >= PARALLEL_MIN_FLOPS {
        rayon::current_num_threads().max(1)
    } else {
        1
    };
    let c_ptr = SyncPtr(c.as_mut_ptr());
    if threads == 1 {
        // SAFETY: the only block is all of C, and nothing else touches C meanwhile.
        unsafe { gemm_block::<K, MR, NR>(s, a, b, c_ptr, (0, s.m), (0, s.n), accumulate) };
        return;
    }
    let (tm, tn) = plan(s.m, s.n, s.k, NR, threads);
    let run = |t: usize| {
        let rows = part(s.m, tm, 1, t / tn);
        let cols = part(s.n, tn, NR, t % tn);
        if rows.0 < rows.1 && cols.0 < cols.1 {
            // SAFETY: the blocks (rows × cols) of different tasks are disjoint: `part` cuts
            // 0..m and 0..n into disjoint ranges.
            unsafe { gemm_block::<K, MR, NR>(s, a, b, c_ptr, rows, cols, accumulate) };
        }
    };
    // Blocks 1.. go to the pool, block 0 runs right here. A thread outside the pool that waits
    // for a rayon job sleeps on a lock and is woken by the OS, which costs ~20 µs on this VM
    // (measured), as much as a small product; so the caller instead spins on a counter of
    // unfinished blocks, for at most SPIN_LIMIT, before the scope's own (sleeping) wait. A
    // pool thread skips the spin: rayon's wait lets it run other jobs, its own blocks included.
    const SPIN_LIMIT: std::time::Duration = std::time::Duration::from_micros(500);
    let left = AtomicUsize::new(tm * tn - 1);
    rayon::in_place_scope(|scope| {
        for t in 1..tm * tn {
            let (run, left) = (&run, &left);
            scope.spawn(move |_| {
                run(t);
                left.fetch_sub(1, Ordering::Release);
            });
        }
        run(0);
        if rayon::current_thread_index().is_none() {
            let start = std::time::Instant::now();
            'wait: while left.load(Ordering::Acquire) > 0 {
                for _ in 0..64 {
                    std::hint::spin_loop();
                    if left.load(Ordering::Acquire) == 0 {
                        break 'wait;
                    }
                }
                if start.elapsed() > SPIN_LIMIT {
                    break;
                }
            }
        }
    });
}

/// C[r0..r1, c0..c1] = op(A)[r0..r1, :] · op(B)[:, c0..c1] (+ C when `accumulate`), on the
/// calling thread.
///
/// # Safety
/// `K`'s instruction set is available; `c` points to the m×n C (length checked) and no other
/// thread accesses its block `rows × cols` during the call; `a` and `b` hold op(A) and op(B).
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_block<K: Kernel, const MR: usize, const NR: usize>(
    s: &GemmShape,
    a: &[f32],
    b: &[f32],
    c: SyncPtr,
    (r0, r1): (usize, usize),
    (c0, c1): (usize, usize),
    accumulate: bool,
) {
    let (n, k) = (s.n, s.k);
    // Cut k into equal passes of at most KC (k = 784 → 4 × 196, not 3 × 256 + 16: a short
    // last pass would pay the C load/store of a whole pass for little work). Likewise n.
    let k_passes = k.div_ceil(K::KC);
    let kc_max = k.div_ceil(k_passes);
    let n_panels = (c1 - c0).div_ceil(NR);
    let n_passes = n_panels.div_ceil(K::NC / NR);
    let nc_panels_max = n_panels.div_ceil(n_passes);
    let mc_max = K::MC.min((r1 - r0).div_ceil(MR) * MR);

    with_buffer(&PACK_B, nc_panels_max * kc_max * NR, |bpack| {
        with_buffer(&PACK_A, mc_max * kc_max, |apack| {
            for jb in 0..n_passes {
                let (jp0, jp1) = part(n_panels, n_passes, 1, jb);
                let jc = c0 + jp0 * NR;
                let jc_end = (c0 + jp1 * NR).min(c1);
                for kb in 0..k_passes {
                    let (pc, pc_end) = part(k, k_passes, 1, kb);
                    let kc = pc_end - pc;
                    // The first pass overwrites C (unless accumulating); later passes add to it.
                    let beta_one = accumulate || kb > 0;

                    // Pack the B block op(B)[pc.., jc..jc_end] into NR-wide panels (L3/L2).
                    let bp = &mut bpack[..(jp1 - jp0) * kc * NR];
                    pack_b_block::<NR>(s, b, (jc, jc_end), pc, kc, bp);
                    let bp = &*bp;

                    for ic in (r0..r1).step_by(K::MC) {
                        let ic_end = (ic + K::MC).min(r1);
                        // Pack the A block op(A)[ic..ic_end, pc..] into MR-tall panels (L2).
                        let ap = &mut apack[..(ic_end - ic).div_ceil(MR) * MR * kc];
                        pack_a_block::<MR>(s, a, (ic, ic_end), pc, kc, ap);
                        let ap = &*ap;

                        // The macro-kernel: every B panel (L1) against every A panel.
                        for (jp, bpanel) in bp.chunks_exact(kc * NR).enumerate() {
                            let j0 = jc + jp * NR;
                            let cols = NR.min(jc_end - j0);
                            for (ip, apanel) in ap.chunks_exact(kc * MR).enumerate() {
                                let i0 = ic + ip * MR;
                                let rows = MR.min(ic_end - i0);
                                let (pa, pb) = (apanel.as_ptr(), bpanel.as_ptr());
                                // SAFETY: the panels hold kc·MR and kc·NR floats; the tile's
                                // valid part, rows × cols at (i0, j0), lies inside this task's
                                // block of C, which the caller vouched for; the instruction
                                // set is the caller's guarantee.
                                unsafe {
                                    let ct = c.0.add(i0 * n + j0);
                                    if rows == MR && cols == NR {
                                        K::full(kc, pa, pb, ct, n, beta_one);
                                    } else {
                                        K::edge(kc, pa, pb, ct, n, rows, cols, beta_one);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        })
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use rayon::prelude::*;

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

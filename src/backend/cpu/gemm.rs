//! CPU single-precision GEMM: C = op(A)·op(B) (+ C when accumulating), row-major.
//!
//! `gemm_reference` is the plain triple loop every faster path is tested against.

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

/// C (m×n) = op(A)·op(B), or C += op(A)·op(B) when `accumulate`.
pub fn gemm(s: &GemmShape, a: &[f32], b: &[f32], c: &mut [f32], accumulate: bool) {
    gemm_reference(s, a, b, c, accumulate)
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

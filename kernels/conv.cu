// conv.cu — 2-D convolution (NCHW, weight [Co, Ci, KH, KW], stride s, zero padding p, no dilation
// or groups) as IMPLICIT GEMM: the GEMM tile loaders compute the image coordinates of each operand
// element on the fly, so no im2col matrix is ever written.
//
// Notation: x [N, Ci, H, W], w [Co, Ci, KH, KW], y / dy [N, Co, Ho, Wo],
//   ih = oh·s + i − p,  iw = ow·s + j − p,  a term exists when 0 ≤ ih < H and 0 ≤ iw < W.
//
// forward (conv2d_fwd_f32):           y[n, co, oh, ow] = Σ_{ci,i,j} w[co, ci, i, j] · x[n, ci, ih, iw]
//   GEMM  M = Co, N = N·Ho·Wo, K = Ci·KH·KW
//   A[co, (ci,i,j)] = w (already row-major Co × K)
//   B[(ci,i,j), (n,oh,ow)] = x[n, ci, ih, iw] or 0
// backward-input (conv2d_bwd_input_f32): dx[n, ci, ih, iw] = Σ_{co,i,j} w[co, ci, i, j] · dy[n, co, oh, ow]
//   over the (oh, ow) with oh·s + i − p = ih, ow·s + j − p = iw
//   GEMM  M = Ci, N = N·H·W, K = Co·KH·KW
//   A[ci, (co,i,j)] = w[co, ci, i, j]
//   B[(co,i,j), (n,ih,iw)] = dy[n, co, oh, ow] with oh = (ih + p − i)/s, ow = (iw + p − j)/s when
//   those divide exactly and land in [0, Ho)×[0, Wo), else 0
// backward-weight (conv2d_bwd_weight_f32): dw[co, ci, i, j] = Σ_{n,oh,ow} dy[n, co, oh, ow] · x[n, ci, ih, iw]
//   GEMM  M = Co, N = Ci·KH·KW, K = N·Ho·Wo
//   A[co, (n,oh,ow)] = dy[n, co, oh, ow]
//   B[(n,oh,ow), (ci,i,j)] = x[n, ci, ih, iw] or 0
//   K is long and M×N small, so K is split across grid.z: split z writes its partial product to
//   ws[z] (M×N), and reduce_cols_f32 (reduce.cu) sums the splits (deterministic, no atomics).
//
// The tile engine is the 64×64×8 one of gemm.cu (4×4 registers per thread, 256 threads, double-
// buffered shared memory); only the operand loaders and the output scatter differ per direction.
// A thread's B-loads always fall in the same column of the tile, so that column's decomposition
// (n, oh, ow) or (ci, i, j) is computed once, outside the K loop.
#include "common.cuh"

struct ConvGeom {
    int n, ci, h, w, co, kh, kw, stride, pad, ho, wo;
};

#define CV_BM 64
#define CV_BN 64
#define CV_BK 8
#define CV_THREADS 256
#define CV_PAD 4

enum { CONV_FWD = 0, CONV_BWD_INPUT = 1, CONV_BWD_WEIGHT = 2 };

// Per-thread precomputed facts about its B column.
struct ColInfo {
    bool valid;
    int a, b, c;   // FWD: (n, oh, ow)  BWD_INPUT: (n, ih, iw)  BWD_WEIGHT: (ci, i, j)
};

template <int MODE>
__device__ __forceinline__ ColInfo col_info(const ConvGeom& g, int col, int Ncols) {
    ColInfo ci;
    ci.valid = col < Ncols;
    if (!ci.valid) {
        ci.a = ci.b = ci.c = 0;
        return ci;
    }
    if (MODE == CONV_FWD) {
        const int hw = g.ho * g.wo, r = col % hw;
        ci.a = col / hw;
        ci.b = r / g.wo;
        ci.c = r % g.wo;
    } else if (MODE == CONV_BWD_INPUT) {
        const int hw = g.h * g.w, r = col % hw;
        ci.a = col / hw;
        ci.b = r / g.w;
        ci.c = r % g.w;
    } else {
        const int khw = g.kh * g.kw, r = col % khw;
        ci.a = col / khw;
        ci.b = r / g.kw;
        ci.c = r % g.kw;
    }
    return ci;
}

// A[row, k] (0 outside the matrix or past this split's end kend). K is A's full row length.
template <int MODE>
__device__ __forceinline__ float conv_load_a(const ConvGeom& g, const float* __restrict__ P,
                                             int row, int k, int M, int K, int kend) {
    if (row >= M || k >= kend) return 0.0f;
    if (MODE == CONV_FWD) {
        return P[(u64)row * K + k];  // w [Co, Ci·KH·KW]
    } else if (MODE == CONV_BWD_INPUT) {
        const int khw = g.kh * g.kw, co = k / khw, r = k % khw;  // k = (co, i, j), row = ci
        return P[((u64)co * g.ci + row) * khw + r];
    } else {
        const int hw = g.ho * g.wo, n = k / hw, r = k % hw;  // k = (n, oh, ow), row = co
        return P[((u64)n * g.co + row) * hw + r];             // dy
    }
}

// B[k, col] (0 outside, past this split's end kend, or in the padding).
template <int MODE>
__device__ __forceinline__ float conv_load_b(const ConvGeom& g, const float* __restrict__ P,
                                             const ColInfo& c, int k, int kend) {
    if (!c.valid || k >= kend) return 0.0f;
    if (MODE == CONV_FWD) {
        const int khw = g.kh * g.kw, ci = k / khw, r = k % khw, i = r / g.kw, j = r % g.kw;
        const int ih = c.b * g.stride + i - g.pad, iw = c.c * g.stride + j - g.pad;
        if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) return 0.0f;
        return P[(((u64)c.a * g.ci + ci) * g.h + ih) * g.w + iw];  // x
    } else if (MODE == CONV_BWD_INPUT) {
        const int khw = g.kh * g.kw, co = k / khw, r = k % khw, i = r / g.kw, j = r % g.kw;
        const int th = c.b + g.pad - i, tw = c.c + g.pad - j;
        if (th < 0 || tw < 0 || th % g.stride != 0 || tw % g.stride != 0) return 0.0f;
        const int oh = th / g.stride, ow = tw / g.stride;
        if (oh >= g.ho || ow >= g.wo) return 0.0f;
        return P[(((u64)c.a * g.co + co) * g.ho + oh) * g.wo + ow];  // dy
    } else {
        const int hw = g.ho * g.wo, n = k / hw, r = k % hw, oh = r / g.wo, ow = r % g.wo;
        const int ih = oh * g.stride + c.b - g.pad, iw = ow * g.stride + c.c - g.pad;
        if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) return 0.0f;
        return P[(((u64)n * g.ci + c.a) * g.h + ih) * g.w + iw];  // x
    }
}

// Where C[row, col] goes.
template <int MODE>
__device__ __forceinline__ u64 conv_out_index(const ConvGeom& g, int row, int col, int Ncols) {
    if (MODE == CONV_FWD) {
        const int hw = g.ho * g.wo, n = col / hw, r = col % hw;
        return ((u64)n * g.co + row) * hw + r;
    } else if (MODE == CONV_BWD_INPUT) {
        const int hw = g.h * g.w, n = col / hw, r = col % hw;
        return ((u64)n * g.ci + row) * hw + r;
    } else {
        return (u64)row * Ncols + col;
    }
}

// Thread tid's slots in the 64×8 A slice and 8×64 B slice. A: k fastest (A rows are contiguous
// along k in all three directions, or at least piecewise). B: column fastest (x / dy are
// contiguous along the column's innermost coordinate).
__device__ __forceinline__ void cv_a_slot(int e, int& r, int& k) {
    r = e / CV_BK;
    k = e % CV_BK;
}
__device__ __forceinline__ void cv_b_slot(int e, int& k, int& c) {
    k = e / CV_BN;
    c = e % CV_BN;
}

template <int MODE>
__device__ __forceinline__ void conv_igemm(const float* __restrict__ PA, const float* __restrict__ PB,
                                           float* __restrict__ out, ConvGeom g, int M, int Ncols,
                                           int K, int k_chunk) {
    constexpr int A_LOADS = CV_BM * CV_BK / CV_THREADS;  // 2
    constexpr int B_LOADS = CV_BN * CV_BK / CV_THREADS;  // 2
    __shared__ __align__(16) float As[2][CV_BK][CV_BM + CV_PAD];
    __shared__ __align__(16) float Bs[2][CV_BK][CV_BN + CV_PAD];

    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const int bm = blockIdx.y * CV_BM, bn = blockIdx.x * CV_BN;
    // This block's share of K: [kb, ke).
    const int kb = blockIdx.z * k_chunk;
    const int ke = min(K, kb + k_chunk);

    // Every B slot of this thread has the same column (tid % 64); see cv_b_slot.
    const ColInfo cinfo = col_info<MODE>(g, bn + tid % CV_BN, Ncols);

    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;

    float ra[A_LOADS], rb[B_LOADS];
#pragma unroll
    for (int q = 0; q < A_LOADS; ++q) {
        int r, k;
        cv_a_slot(tid + q * CV_THREADS, r, k);
        ra[q] = conv_load_a<MODE>(g, PA, bm + r, kb + k, M, K, ke);
    }
#pragma unroll
    for (int q = 0; q < B_LOADS; ++q) {
        int k, c;
        cv_b_slot(tid + q * CV_THREADS, k, c);
        rb[q] = conv_load_b<MODE>(g, PB, cinfo, kb + k, ke);
    }
#pragma unroll
    for (int q = 0; q < A_LOADS; ++q) {
        int r, k;
        cv_a_slot(tid + q * CV_THREADS, r, k);
        As[0][k][r] = ra[q];
    }
#pragma unroll
    for (int q = 0; q < B_LOADS; ++q) {
        int k, c;
        cv_b_slot(tid + q * CV_THREADS, k, c);
        Bs[0][k][c] = rb[q];
    }
    __syncthreads();

    int buf = 0;
    for (int k0 = kb; k0 < ke; k0 += CV_BK) {
        const bool has_next = k0 + CV_BK < ke;
        if (has_next) {
#pragma unroll
            for (int q = 0; q < A_LOADS; ++q) {
                int r, k;
                cv_a_slot(tid + q * CV_THREADS, r, k);
                ra[q] = conv_load_a<MODE>(g, PA, bm + r, k0 + CV_BK + k, M, K, ke);
            }
#pragma unroll
            for (int q = 0; q < B_LOADS; ++q) {
                int k, c;
                cv_b_slot(tid + q * CV_THREADS, k, c);
                rb[q] = conv_load_b<MODE>(g, PB, cinfo, k0 + CV_BK + k, ke);
            }
        }
#pragma unroll
        for (int kk = 0; kk < CV_BK; ++kk) {
            const float4 a = *reinterpret_cast<const float4*>(&As[buf][kk][ty * 4]);
            const float4 b = *reinterpret_cast<const float4*>(&Bs[buf][kk][tx * 4]);
            const float af[4] = {a.x, a.y, a.z, a.w}, bf[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(af[i], bf[j], acc[i][j]);
        }
        if (has_next) {
#pragma unroll
            for (int q = 0; q < A_LOADS; ++q) {
                int r, k;
                cv_a_slot(tid + q * CV_THREADS, r, k);
                As[buf ^ 1][k][r] = ra[q];
            }
#pragma unroll
            for (int q = 0; q < B_LOADS; ++q) {
                int k, c;
                cv_b_slot(tid + q * CV_THREADS, k, c);
                Bs[buf ^ 1][k][c] = rb[q];
            }
        }
        __syncthreads();
        buf ^= 1;
    }

    // Split z of a split-K launch writes its own M×Ncols slab of the workspace.
    float* dst = out + (u64)blockIdx.z * ((MODE == CONV_BWD_WEIGHT) ? (u64)M * Ncols : 0);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int r = bm + ty * 4 + i;
        if (r >= M) continue;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int c = bn + tx * 4 + j;
            if (c < Ncols) dst[conv_out_index<MODE>(g, r, c, Ncols)] = acc[i][j];
        }
    }
}

// grid = (ceil(N·Ho·Wo / 64), ceil(Co / 64), 1), block = 256.
extern "C" __global__ void __launch_bounds__(CV_THREADS, 2)
conv2d_fwd_f32(const float* __restrict__ x, const float* __restrict__ w, float* __restrict__ y,
               ConvGeom g) {
    const int K = g.ci * g.kh * g.kw;
    conv_igemm<CONV_FWD>(w, x, y, g, g.co, g.n * g.ho * g.wo, K, K);
}

// grid = (ceil(N·H·W / 64), ceil(Ci / 64), 1), block = 256.
extern "C" __global__ void __launch_bounds__(CV_THREADS, 2)
conv2d_bwd_input_f32(const float* __restrict__ dy, const float* __restrict__ w,
                     float* __restrict__ dx, ConvGeom g) {
    const int K = g.co * g.kh * g.kw;
    conv_igemm<CONV_BWD_INPUT>(w, dy, dx, g, g.ci, g.n * g.h * g.w, K, K);
}

// grid = (ceil(Ci·KH·KW / 64), ceil(Co / 64), splits), block = 256; k_chunk a multiple of 8 with
// splits · k_chunk ≥ N·Ho·Wo. out is dw itself when splits = 1, else the [splits, Co, Ci·KH·KW]
// workspace.
extern "C" __global__ void __launch_bounds__(CV_THREADS, 2)
conv2d_bwd_weight_f32(const float* __restrict__ x, const float* __restrict__ dy,
                      float* __restrict__ out, ConvGeom g, int k_chunk) {
    conv_igemm<CONV_BWD_WEIGHT>(dy, x, out, g, g.co, g.ci * g.kh * g.kw, g.n * g.ho * g.wo, k_chunk);
}

// gemm.cu — batched single-precision matrix product, row-major:
//
//   C[z] (M×N) = op(A[z]) · op(B[z]),   C[z][r, c] = Σ_{k < K} op(A)[r, k] · op(B)[k, c]
//   op(A)[r, k] = transA ? A[k·M + r] : A[r·K + k]      (A stored K×M when transposed)
//   op(B)[k, c] = transB ? B[c·K + k] : B[k·N + c]      (B stored N×K when transposed)
//   A[z] = A + z·strideA, B[z] = B + z·strideB (a stride may be 0), C[z] = C + z·M·N.
//
// sgemm_128x128 / sgemm_64x64 — CUDA cores, f32 FMA. A block computes a BM×BN tile of C,
// stepping through K in slices of BK = 8: each slice of op(A) (BM×8) and op(B) (8×BN) is staged in
// shared memory, stored k-major (As[k][r], Bs[k][c]) so the inner product reads float4 rows. Each
// thread owns a TM×TN register tile made of (TM/4)×(TN/4) blocks of 4×4, spaced BM/(TM/4) apart so
// that a warp's float4 reads of Bs cover consecutive addresses (no bank conflicts). Two shared
// buffers: while the block multiplies slice s, the next slice's global loads are already in
// registers, and they go to the other buffer afterwards (one __syncthreads per slice). Loads
// outside [0, M)×[0, K) or [0, K)×[0, N) read as 0; stores outside C are skipped, so any M, N, K
// work (K = 0 gives zeros).
//   128×128, 8×8 per thread, 256 threads: big problems.
//    64×64,  4×4 per thread, 256 threads: small ones (more blocks to fill the GPU).
//
// gemm_tf32_64x64 — tensor cores (sm_80+): mma.sync.aligned.m16n8k8 with TF32 operands (inputs
// rounded to nearest with cvt.rna.tf32.f32 as they enter shared memory) and f32 accumulation.
// 4 warps in a 2×2 arrangement, each computing 32×32 of the 64×64 tile as 2×4 mma tiles; BK = 16.
// Fragment layout (PTX ISA, "mma.m16n8k8", .tf32), g = lane / 4, t = lane % 4:
//   A (16×8, row):  a0 = A[g][t], a1 = A[g+8][t], a2 = A[g][t+4], a3 = A[g+8][t+4]
//   B (8×8, col):   b0 = B[t][g], b1 = B[t+4][g]
//   C (16×8):       c0 = C[g][2t], c1 = C[g][2t+1], c2 = C[g+8][2t], c3 = C[g+8][2t+1]
// Shared rows are padded by 8 words so the fragment reads (8 rows × 4 words per warp) hit 32
// different banks.
#include "common.cuh"

// op(A)[r, k] (0 outside the matrix).
__device__ __forceinline__ float load_op_a(const float* __restrict__ A, int M, int K, int transA,
                                           int r, int k) {
    if (r >= M || k >= K) return 0.0f;
    return transA ? A[(u64)k * M + r] : A[(u64)r * K + k];
}

// op(B)[k, c] (0 outside the matrix).
__device__ __forceinline__ float load_op_b(const float* __restrict__ B, int K, int N, int transB,
                                           int k, int c) {
    if (k >= K || c >= N) return 0.0f;
    return transB ? B[(u64)c * K + k] : B[(u64)k * N + c];
}

// Which (row, k) of the BM×BK slice element e of a thread's loads is. Consecutive threads take
// consecutive addresses in memory: along k when A is stored row-major, along r when transposed.
template <int BM, int BK>
__device__ __forceinline__ void a_slot(int e, int transA, int& r, int& k) {
    if (transA) {
        k = e / BM;
        r = e % BM;
    } else {
        r = e / BK;
        k = e % BK;
    }
}

template <int BN, int BK>
__device__ __forceinline__ void b_slot(int e, int transB, int& k, int& c) {
    if (transB) {
        c = e / BK;
        k = e % BK;
    } else {
        k = e / BN;
        c = e % BN;
    }
}

template <int BM, int BN, int BK, int TM, int TN>
__device__ __forceinline__ void sgemm_tile(const float* __restrict__ A, const float* __restrict__ B,
                                           float* __restrict__ C, int M, int N, int K, int transA,
                                           int transB, u64 strideA, u64 strideB, u32 batch) {
    constexpr int THREADS = (BM / TM) * (BN / TN);
    constexpr int A_LOADS = BM * BK / THREADS;
    constexpr int B_LOADS = BN * BK / THREADS;
    constexpr int PAD = 4;
    constexpr int RG = TM / 4, CG = TN / 4;           // 4×4 blocks per thread
    constexpr int RSTEP = BM / RG, CSTEP = BN / CG;   // distance between a thread's blocks
    static_assert(BM * BK % THREADS == 0 && BN * BK % THREADS == 0, "loads must divide");
    static_assert(TM % 4 == 0 && TN % 4 == 0, "register tile is made of 4x4 blocks");

    __shared__ __align__(16) float As[2][BK][BM + PAD];
    __shared__ __align__(16) float Bs[2][BK][BN + PAD];

    const int tid = threadIdx.x;
    const int tx = tid % (BN / TN), ty = tid / (BN / TN);
    const int bm = blockIdx.y * BM, bn = blockIdx.x * BN;

    for (u32 z = blockIdx.z; z < batch; z += gridDim.z) {
        const float* Az = A + (u64)z * strideA;
        const float* Bz = B + (u64)z * strideB;
        float* Cz = C + (u64)z * M * N;

        float acc[TM][TN];
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
            for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

        float ra[A_LOADS], rb[B_LOADS];
        // Slice 0 → registers → buffer 0.
#pragma unroll
        for (int q = 0; q < A_LOADS; ++q) {
            int r, k;
            a_slot<BM, BK>(tid + q * THREADS, transA, r, k);
            ra[q] = load_op_a(Az, M, K, transA, bm + r, k);
        }
#pragma unroll
        for (int q = 0; q < B_LOADS; ++q) {
            int k, c;
            b_slot<BN, BK>(tid + q * THREADS, transB, k, c);
            rb[q] = load_op_b(Bz, K, N, transB, k, bn + c);
        }
#pragma unroll
        for (int q = 0; q < A_LOADS; ++q) {
            int r, k;
            a_slot<BM, BK>(tid + q * THREADS, transA, r, k);
            As[0][k][r] = ra[q];
        }
#pragma unroll
        for (int q = 0; q < B_LOADS; ++q) {
            int k, c;
            b_slot<BN, BK>(tid + q * THREADS, transB, k, c);
            Bs[0][k][c] = rb[q];
        }
        __syncthreads();

        int buf = 0;
        for (int k0 = 0; k0 < K; k0 += BK) {
            const bool has_next = k0 + BK < K;
            if (has_next) {
#pragma unroll
                for (int q = 0; q < A_LOADS; ++q) {
                    int r, k;
                    a_slot<BM, BK>(tid + q * THREADS, transA, r, k);
                    ra[q] = load_op_a(Az, M, K, transA, bm + r, k0 + BK + k);
                }
#pragma unroll
                for (int q = 0; q < B_LOADS; ++q) {
                    int k, c;
                    b_slot<BN, BK>(tid + q * THREADS, transB, k, c);
                    rb[q] = load_op_b(Bz, K, N, transB, k0 + BK + k, bn + c);
                }
            }
#pragma unroll
            for (int kk = 0; kk < BK; ++kk) {
                float af[TM], bf[TN];
#pragma unroll
                for (int g = 0; g < RG; ++g) {
                    const float4 v = *reinterpret_cast<const float4*>(&As[buf][kk][g * RSTEP + ty * 4]);
                    af[g * 4 + 0] = v.x;
                    af[g * 4 + 1] = v.y;
                    af[g * 4 + 2] = v.z;
                    af[g * 4 + 3] = v.w;
                }
#pragma unroll
                for (int g = 0; g < CG; ++g) {
                    const float4 v = *reinterpret_cast<const float4*>(&Bs[buf][kk][g * CSTEP + tx * 4]);
                    bf[g * 4 + 0] = v.x;
                    bf[g * 4 + 1] = v.y;
                    bf[g * 4 + 2] = v.z;
                    bf[g * 4 + 3] = v.w;
                }
#pragma unroll
                for (int i = 0; i < TM; ++i)
#pragma unroll
                    for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(af[i], bf[j], acc[i][j]);
            }
            if (has_next) {
#pragma unroll
                for (int q = 0; q < A_LOADS; ++q) {
                    int r, k;
                    a_slot<BM, BK>(tid + q * THREADS, transA, r, k);
                    As[buf ^ 1][k][r] = ra[q];
                }
#pragma unroll
                for (int q = 0; q < B_LOADS; ++q) {
                    int k, c;
                    b_slot<BN, BK>(tid + q * THREADS, transB, k, c);
                    Bs[buf ^ 1][k][c] = rb[q];
                }
            }
            __syncthreads();
            buf ^= 1;
        }

        // Thread row i ↦ tile row (i/4)·RSTEP + ty·4 + i%4; likewise columns.
        const bool vec = (N % 4) == 0;
#pragma unroll
        for (int i = 0; i < TM; ++i) {
            const int r = bm + (i / 4) * RSTEP + ty * 4 + (i % 4);
            if (r >= M) continue;
            float* crow = Cz + (u64)r * N;
#pragma unroll
            for (int g = 0; g < CG; ++g) {
                const int c = bn + g * CSTEP + tx * 4;
                if (vec && c + 3 < N) {
                    *reinterpret_cast<float4*>(&crow[c]) =
                        make_float4(acc[i][g * 4], acc[i][g * 4 + 1], acc[i][g * 4 + 2], acc[i][g * 4 + 3]);
                } else {
#pragma unroll
                    for (int j = 0; j < 4; ++j)
                        if (c + j < N) crow[c + j] = acc[i][g * 4 + j];
                }
            }
        }
    }
}

// grid = (ceil(N/128), ceil(M/128), min(batch, 65535)), block = 256.
extern "C" __global__ void __launch_bounds__(256)
sgemm_128x128(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
              int M, int N, int K, int transA, int transB, u64 strideA, u64 strideB, u32 batch) {
    sgemm_tile<128, 128, 8, 8, 8>(A, B, C, M, N, K, transA, transB, strideA, strideB, batch);
}

// grid = (ceil(N/64), ceil(M/64), min(batch, 65535)), block = 256.
extern "C" __global__ void __launch_bounds__(256)
sgemm_64x64(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
            int M, int N, int K, int transA, int transB, u64 strideA, u64 strideB, u32 batch) {
    sgemm_tile<64, 64, 8, 4, 4>(A, B, C, M, N, K, transA, transB, strideA, strideB, batch);
}

// ---------------------------------------------------------------------------------------------
// TF32 tensor-core path.

__device__ __forceinline__ u32 to_tf32(float x) {
#if __CUDA_ARCH__ >= 800
    u32 r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
#else
    return __float_as_uint(x);
#endif
}

__device__ __forceinline__ void mma_tf32_16x8x8(float (&c)[4], const u32 (&a)[4], const u32 (&b)[2]) {
#if __CUDA_ARCH__ >= 800
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
    (void)c;
    (void)a;
    (void)b;
    __trap();  // the host never launches this kernel below sm_80
#endif
}

#define TC_BM 64
#define TC_BN 64
#define TC_BK 16
#define TC_THREADS 128
#define TC_PAD 8

// grid = (ceil(N/64), ceil(M/64), min(batch, 65535)), block = 128.
extern "C" __global__ void __launch_bounds__(TC_THREADS)
gemm_tf32_64x64(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
                int M, int N, int K, int transA, int transB, u64 strideA, u64 strideB, u32 batch) {
    constexpr int A_LOADS = TC_BM * TC_BK / TC_THREADS;  // 8
    constexpr int B_LOADS = TC_BN * TC_BK / TC_THREADS;  // 8
    __shared__ __align__(16) u32 As[2][TC_BK][TC_BM + TC_PAD];
    __shared__ __align__(16) u32 Bs[2][TC_BK][TC_BN + TC_PAD];

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int g = lane >> 2, t = lane & 3;
    const int wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
    const int bm = blockIdx.y * TC_BM, bn = blockIdx.x * TC_BN;

    for (u32 z = blockIdx.z; z < batch; z += gridDim.z) {
        const float* Az = A + (u64)z * strideA;
        const float* Bz = B + (u64)z * strideB;
        float* Cz = C + (u64)z * M * N;

        float acc[2][4][4];
#pragma unroll
        for (int mi = 0; mi < 2; ++mi)
#pragma unroll
            for (int ni = 0; ni < 4; ++ni)
#pragma unroll
                for (int e = 0; e < 4; ++e) acc[mi][ni][e] = 0.0f;

        float ra[A_LOADS], rb[B_LOADS];
#pragma unroll
        for (int q = 0; q < A_LOADS; ++q) {
            int r, k;
            a_slot<TC_BM, TC_BK>(tid + q * TC_THREADS, transA, r, k);
            ra[q] = load_op_a(Az, M, K, transA, bm + r, k);
        }
#pragma unroll
        for (int q = 0; q < B_LOADS; ++q) {
            int k, c;
            b_slot<TC_BN, TC_BK>(tid + q * TC_THREADS, transB, k, c);
            rb[q] = load_op_b(Bz, K, N, transB, k, bn + c);
        }
#pragma unroll
        for (int q = 0; q < A_LOADS; ++q) {
            int r, k;
            a_slot<TC_BM, TC_BK>(tid + q * TC_THREADS, transA, r, k);
            As[0][k][r] = to_tf32(ra[q]);
        }
#pragma unroll
        for (int q = 0; q < B_LOADS; ++q) {
            int k, c;
            b_slot<TC_BN, TC_BK>(tid + q * TC_THREADS, transB, k, c);
            Bs[0][k][c] = to_tf32(rb[q]);
        }
        __syncthreads();

        int buf = 0;
        for (int k0 = 0; k0 < K; k0 += TC_BK) {
            const bool has_next = k0 + TC_BK < K;
            if (has_next) {
#pragma unroll
                for (int q = 0; q < A_LOADS; ++q) {
                    int r, k;
                    a_slot<TC_BM, TC_BK>(tid + q * TC_THREADS, transA, r, k);
                    ra[q] = load_op_a(Az, M, K, transA, bm + r, k0 + TC_BK + k);
                }
#pragma unroll
                for (int q = 0; q < B_LOADS; ++q) {
                    int k, c;
                    b_slot<TC_BN, TC_BK>(tid + q * TC_THREADS, transB, k, c);
                    rb[q] = load_op_b(Bz, K, N, transB, k0 + TC_BK + k, bn + c);
                }
            }
#pragma unroll
            for (int kk = 0; kk < TC_BK; kk += 8) {
                u32 af[2][4], bf[4][2];
#pragma unroll
                for (int mi = 0; mi < 2; ++mi) {
                    const int m0 = wm + mi * 16;
                    af[mi][0] = As[buf][kk + t][m0 + g];
                    af[mi][1] = As[buf][kk + t][m0 + g + 8];
                    af[mi][2] = As[buf][kk + t + 4][m0 + g];
                    af[mi][3] = As[buf][kk + t + 4][m0 + g + 8];
                }
#pragma unroll
                for (int ni = 0; ni < 4; ++ni) {
                    const int n0 = wn + ni * 8;
                    bf[ni][0] = Bs[buf][kk + t][n0 + g];
                    bf[ni][1] = Bs[buf][kk + t + 4][n0 + g];
                }
#pragma unroll
                for (int mi = 0; mi < 2; ++mi)
#pragma unroll
                    for (int ni = 0; ni < 4; ++ni) mma_tf32_16x8x8(acc[mi][ni], af[mi], bf[ni]);
            }
            if (has_next) {
#pragma unroll
                for (int q = 0; q < A_LOADS; ++q) {
                    int r, k;
                    a_slot<TC_BM, TC_BK>(tid + q * TC_THREADS, transA, r, k);
                    As[buf ^ 1][k][r] = to_tf32(ra[q]);
                }
#pragma unroll
                for (int q = 0; q < B_LOADS; ++q) {
                    int k, c;
                    b_slot<TC_BN, TC_BK>(tid + q * TC_THREADS, transB, k, c);
                    Bs[buf ^ 1][k][c] = to_tf32(rb[q]);
                }
            }
            __syncthreads();
            buf ^= 1;
        }

#pragma unroll
        for (int mi = 0; mi < 2; ++mi)
#pragma unroll
            for (int ni = 0; ni < 4; ++ni) {
                const int r = bm + wm + mi * 16 + g;
                const int c = bn + wn + ni * 8 + 2 * t;
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int rr = r + (e >> 1) * 8, cc = c + (e & 1);
                    if (rr < M && cc < N) Cz[(u64)rr * N + cc] = acc[mi][ni][e];
                }
            }
    }
}

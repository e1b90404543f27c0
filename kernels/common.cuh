// common.cuh — helpers shared by the ssvae kernels.
//
// Reductions over a "row group": the blockDim.x threads that share one threadIdx.y. Two launch
// shapes are used by every row kernel (softmax, logsumexp, row sums, BCE rows):
//   - a warp per row:   blockDim = (32, R)  — R rows per block, reductions are pure warp shuffles;
//   - a block per row:  blockDim = (T, 1)   — T a multiple of 32 (≤ 1024); warp shuffles, then the
//                                             per-warp partials meet in shared memory.
// Every thread of the block must call a row_* reduction (it may __syncthreads), and every thread
// receives the result. Threads without a row to work on still call it with the identity.
#pragma once

#define SSVAE_INF __int_as_float(0x7f800000)
#define SSVAE_FULL_MASK 0xffffffffu

typedef unsigned long long u64;
typedef unsigned int u32;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(SSVAE_FULL_MASK, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(SSVAE_FULL_MASK, v, o));
    return v;
}

// Online-softmax state (running max m, running Σ exp(x − m)) and its merge. m = −∞ means "empty".
struct MaxSum {
    float m;
    float s;
};

__device__ __forceinline__ MaxSum maxsum_merge(MaxSum a, MaxSum b) {
    float m = fmaxf(a.m, b.m);
    if (m == -SSVAE_INF) return MaxSum{m, 0.0f};
    float s = (a.m == -SSVAE_INF ? 0.0f : a.s * expf(a.m - m)) +
              (b.m == -SSVAE_INF ? 0.0f : b.s * expf(b.m - m));
    return MaxSum{m, s};
}

// Add one value: one exp per element (two only when the max moves).
__device__ __forceinline__ MaxSum maxsum_push(MaxSum a, float x) {
    if (x > a.m) {
        a.s = (a.m == -SSVAE_INF ? 0.0f : a.s * expf(a.m - x)) + 1.0f;
        a.m = x;
    } else if (x != -SSVAE_INF) {
        a.s += expf(x - a.m);
    }
    return a;
}

__device__ __forceinline__ MaxSum warp_maxsum(MaxSum v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        MaxSum w;
        w.m = __shfl_xor_sync(SSVAE_FULL_MASK, v.m, o);
        w.s = __shfl_xor_sync(SSVAE_FULL_MASK, v.s, o);
        v = maxsum_merge(v, w);
    }
    return v;
}

// Sum over the row group. `scratch` is __shared__ float[32].
__device__ __forceinline__ float row_sum(float v, float* scratch) {
    v = warp_sum(v);
    if (blockDim.x == 32) return v;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();  // scratch may still be read by a previous call
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < nw ? scratch[lane] : 0.0f;
    return warp_sum(v);  // every warp re-reduces the partials: no broadcast needed
}

// Max over the row group. `scratch` is __shared__ float[32].
__device__ __forceinline__ float row_max(float v, float* scratch) {
    v = warp_max(v);
    if (blockDim.x == 32) return v;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < nw ? scratch[lane] : -SSVAE_INF;
    return warp_max(v);
}

// (max, Σexp) over the row group. `scratch` is __shared__ float[64].
__device__ __forceinline__ MaxSum row_maxsum(MaxSum v, float* scratch) {
    v = warp_maxsum(v);
    if (blockDim.x == 32) return v;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) {
        scratch[warp] = v.m;
        scratch[32 + warp] = v.s;
    }
    __syncthreads();
    v = lane < nw ? MaxSum{scratch[lane], scratch[32 + lane]} : MaxSum{-SSVAE_INF, 0.0f};
    return warp_maxsum(v);
}

// Grid-stride loop over [0, n) with 64-bit indices.
#define SSVAE_GRID_LOOP(i, n)                                                        \
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < (u64)(n);          \
         i += (u64)gridDim.x * blockDim.x)

// Numerically stable logistic function (same branches as the CPU's).
__device__ __forceinline__ float sigmoidf_stable(float x) {
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

// log(1 + e^x) without overflow: max(x, 0) + log1p(e^{−|x|}).
__device__ __forceinline__ float softplusf_stable(float x) {
    return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x)));
}

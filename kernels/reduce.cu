// reduce.cu — reductions along the middle axis of a tensor seen as (outer, len, inner):
//
//   op 0 (Sum):  out[o, i] = Σ_{j < len} x[o, j, i]
//   op 1 (Max):  out[o, i] = max_{j < len} x[o, j, i]        (−∞ when len = 0)
//
// reduce_rows_f32 (inner == 1): one row group per output (a warp per row, or a block per long
// row; see common.cuh). Each thread accumulates a strided slice of the row, then a warp-shuffle
// tree (plus one shared-memory step across warps) combines the partials.
//
// reduce_cols_f32 (inner > 1): a 32×8 block owns 32 consecutive i of one o. Its 8 thread rows take
// every 8th j, so each warp reads 32 consecutive floats (one 128-byte line) per step; the 8
// partials of a column then meet in a shared-memory tree (8 → 4 → 2 → 1).
#include "common.cuh"

__device__ __forceinline__ float reduce_op(int op, float acc, float v) {
    return op == 0 ? acc + v : fmaxf(acc, v);
}

extern "C" __global__ void reduce_rows_f32(const float* __restrict__ x, float* __restrict__ out,
                                           u32 rows, u32 len, int op) {
    __shared__ float scratch[32];
    const u32 row = blockIdx.x * blockDim.y + threadIdx.y;
    const bool active = row < rows;
    const float identity = op == 0 ? 0.0f : -SSVAE_INF;
    float acc = identity;
    if (active) {
        const float* xr = x + (u64)row * len;
        for (u32 j = threadIdx.x; j < len; j += blockDim.x) acc = reduce_op(op, acc, xr[j]);
    }
    acc = op == 0 ? row_sum(acc, scratch) : row_max(acc, scratch);
    if (active && threadIdx.x == 0) out[row] = acc;
}

// blockDim = (32, 8); grid = (ceil(inner / 32), min(outer, 65535)).
extern "C" __global__ void reduce_cols_f32(const float* __restrict__ x, float* __restrict__ out,
                                           u32 outer, u32 len, u32 inner, int op) {
    __shared__ float part[8][33];
    const u32 i = blockIdx.x * 32 + threadIdx.x;
    const float identity = op == 0 ? 0.0f : -SSVAE_INF;
    for (u32 o = blockIdx.y; o < outer; o += gridDim.y) {
        float acc = identity;
        if (i < inner) {
            const float* xo = x + (u64)o * len * inner + i;
            for (u32 j = threadIdx.y; j < len; j += 8) acc = reduce_op(op, acc, xo[(u64)j * inner]);
        }
        part[threadIdx.y][threadIdx.x] = acc;
        __syncthreads();
#pragma unroll
        for (int s = 4; s > 0; s >>= 1) {
            if ((int)threadIdx.y < s)
                part[threadIdx.y][threadIdx.x] =
                    reduce_op(op, part[threadIdx.y][threadIdx.x], part[threadIdx.y + s][threadIdx.x]);
            __syncthreads();
        }
        if (threadIdx.y == 0 && i < inner) out[(u64)o * inner + i] = part[0][threadIdx.x];
        __syncthreads();  // part is rewritten by the next o
    }
}

// copy.cu — data movement.
//
//   transpose_f32:    swap two axes. Seeing the input as (A, I, B, J, C) with I, J the swapped
//                     axes, the output is (A, J, B, I, C):  out[a, j, b, i, c] = x[a, i, b, j, c].
//   transpose2d_f32:  the B = C = 1 case, out[a, j, i] = x[a, i, j], through a 32×33 shared tile
//                     so both the read and the write are coalesced (the +1 column avoids bank
//                     conflicts on the transposed read).
//   copy2d_f32:       dst[dst_off + r·dst_stride + c] = src[src_off + r·src_stride + c],
//                     r < rows, c < cols (the primitive under concat and slicing).
// The host checks that element counts fit in 32 bits; offsets are computed in 64 bits.
#include "common.cuh"

extern "C" __global__ void transpose_f32(const float* __restrict__ x, float* __restrict__ out,
                                         u32 n, u32 A, u32 I, u32 B, u32 J, u32 C) {
    (void)A;
    for (u32 o = blockIdx.x * blockDim.x + threadIdx.x; o < n; o += gridDim.x * blockDim.x) {
        // o = (((a·J + j)·B + b)·I + i)·C + c
        u32 t = o;
        const u32 c = t % C;
        t /= C;
        const u32 i = t % I;
        t /= I;
        const u32 b = t % B;
        t /= B;
        const u32 j = t % J;
        const u32 a = t / J;
        const u64 src = ((((u64)a * I + i) * B + b) * J + j) * C + c;
        out[o] = x[src];
    }
}

// blockDim = (32, 8); grid = (ceil(J / 32), ceil(I / 32), min(batch, 65535)).
extern "C" __global__ void transpose2d_f32(const float* __restrict__ x, float* __restrict__ out,
                                           u32 batch, u32 I, u32 J) {
    __shared__ float tile[32][33];
    const u32 j0 = blockIdx.x * 32, i0 = blockIdx.y * 32;
    for (u32 z = blockIdx.z; z < batch; z += gridDim.z) {
        const float* xb = x + (u64)z * I * J;
        float* ob = out + (u64)z * I * J;
#pragma unroll
        for (u32 k = 0; k < 32; k += 8) {
            const u32 i = i0 + threadIdx.y + k, j = j0 + threadIdx.x;
            if (i < I && j < J) tile[threadIdx.y + k][threadIdx.x] = xb[(u64)i * J + j];
        }
        __syncthreads();
#pragma unroll
        for (u32 k = 0; k < 32; k += 8) {
            const u32 j = j0 + threadIdx.y + k, i = i0 + threadIdx.x;  // out row j, column i
            if (j < J && i < I) ob[(u64)j * I + i] = tile[threadIdx.x][threadIdx.y + k];
        }
        __syncthreads();
    }
}

extern "C" __global__ void copy2d_f32(const float* __restrict__ src, float* __restrict__ dst,
                                      u32 rows, u32 cols, u64 src_stride, u64 dst_stride,
                                      u64 src_off, u64 dst_off) {
    const u32 n = rows * cols;  // < 2^32, checked by the host
    for (u32 e = blockIdx.x * blockDim.x + threadIdx.x; e < n; e += gridDim.x * blockDim.x) {
        const u32 r = e / cols, c = e % cols;
        dst[dst_off + r * dst_stride + c] = src[src_off + r * src_stride + c];
    }
}

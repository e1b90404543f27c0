// index.cu — row gathers and scatter-adds (index_select along axis 0 and its gradient).
//
//   index_select_rows_f32:  out[i, c] = x[ids[i], c]                      i < n_ids, c < row_len
//   index_add_rows_f32:     out[ids[i], c] += x[i, c]   (out zeroed by the host; atomicAdd, so
//                           repeated ids add in an unspecified order)
// The host checks every id against the row count before launching.
#include "common.cuh"

extern "C" __global__ void index_select_rows_f32(const float* __restrict__ x,
                                                 const u32* __restrict__ ids,
                                                 float* __restrict__ out, u32 n_ids, u32 row_len) {
    const u32 n = n_ids * row_len;  // < 2^32, checked by the host
    for (u32 e = blockIdx.x * blockDim.x + threadIdx.x; e < n; e += gridDim.x * blockDim.x) {
        const u32 i = e / row_len, c = e % row_len;
        out[e] = x[(u64)ids[i] * row_len + c];
    }
}

extern "C" __global__ void index_add_rows_f32(const float* __restrict__ x,
                                              const u32* __restrict__ ids, float* __restrict__ out,
                                              u32 n_ids, u32 row_len) {
    const u32 n = n_ids * row_len;
    for (u32 e = blockIdx.x * blockDim.x + threadIdx.x; e < n; e += gridDim.x * blockDim.x) {
        const u32 i = e / row_len, c = e % row_len;
        atomicAdd(&out[(u64)ids[i] * row_len + c], x[e]);
    }
}

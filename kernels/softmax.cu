// softmax.cu — row-wise softmax, log-softmax and log-sum-exp of a rows × cols matrix.
//
//   m_r = max_j x[r, j],   s_r = Σ_j exp(x[r, j] − m_r)
//   softmax:      y[r, j] = exp(x[r, j] − m_r) / s_r
//   log-softmax:  y[r, j] = (x[r, j] − m_r) − log s_r
//   logsumexp:    out[r]  = m_r + log s_r                (−∞ for an empty or all-(−∞) row)
//
// (m, s) come from ONE read of the row with the online rule (Milakov & Gimelshein 2018): each
// thread keeps a running max and a sum rescaled whenever its max grows; partial states merge as
// (m, s) ⊕ (m', s') = (M, s·e^{m−M} + s'·e^{m'−M}), M = max(m, m'). A second read writes y.
// One row group (warp or block, see common.cuh) per row.
#include "common.cuh"

extern "C" __global__ void softmax_rows_f32(const float* __restrict__ x, float* __restrict__ y,
                                            u32 rows, u32 cols, int log_out) {
    __shared__ float scratch[64];
    const u32 row = blockIdx.x * blockDim.y + threadIdx.y;
    const bool active = row < rows;
    const float* xr = x + (u64)row * cols;
    MaxSum st{-SSVAE_INF, 0.0f};
    if (active)
        for (u32 j = threadIdx.x; j < cols; j += blockDim.x) st = maxsum_push(st, xr[j]);
    st = row_maxsum(st, scratch);
    if (!active) return;  // after the last block-wide reduction: safe
    float* yr = y + (u64)row * cols;
    if (log_out) {
        const float ls = logf(st.s);
        for (u32 j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = (xr[j] - st.m) - ls;
    } else {
        const float inv = 1.0f / st.s;
        for (u32 j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = expf(xr[j] - st.m) * inv;
    }
}

extern "C" __global__ void logsumexp_rows_f32(const float* __restrict__ x, float* __restrict__ out,
                                              u32 rows, u32 cols) {
    __shared__ float scratch[64];
    const u32 row = blockIdx.x * blockDim.y + threadIdx.y;
    const bool active = row < rows;
    const float* xr = x + (u64)row * cols;
    MaxSum st{-SSVAE_INF, 0.0f};
    if (active)
        for (u32 j = threadIdx.x; j < cols; j += blockDim.x) st = maxsum_push(st, xr[j]);
    st = row_maxsum(st, scratch);
    if (active && threadIdx.x == 0) out[row] = st.m == -SSVAE_INF ? -SSVAE_INF : st.m + logf(st.s);
}

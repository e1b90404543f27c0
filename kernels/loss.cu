// loss.cu — binary cross-entropy with logits, per row (the Bernoulli decoder's −log p(x|z)).
//
//   bce_rows_f32:           out[r] = Σ_j [ max(l, 0) − l·x + log(1 + e^{−|l|}) ],  l = l[r, j], x = t[r, j]
//                           (the overflow-free form of −x·log σ(l) − (1 − x)·log(1 − σ(l)))
//   bce_rows_backward_f32:  dl[r, j] = (σ(l[r, j]) − x[r, j]) · g[r]
// bce_rows_f32 uses one row group per row (common.cuh).
#include "common.cuh"

extern "C" __global__ void bce_rows_f32(const float* __restrict__ l, const float* __restrict__ t,
                                        float* __restrict__ out, u32 rows, u32 cols) {
    __shared__ float scratch[32];
    const u32 row = blockIdx.x * blockDim.y + threadIdx.y;
    const bool active = row < rows;
    float acc = 0.0f;
    if (active) {
        const float* lr = l + (u64)row * cols;
        const float* tr = t + (u64)row * cols;
        for (u32 j = threadIdx.x; j < cols; j += blockDim.x) {
            const float v = lr[j], x = tr[j];
            acc += fmaxf(v, 0.0f) - v * x + log1pf(expf(-fabsf(v)));
        }
    }
    acc = row_sum(acc, scratch);
    if (active && threadIdx.x == 0) out[row] = acc;
}

extern "C" __global__ void bce_rows_backward_f32(const float* __restrict__ l,
                                                 const float* __restrict__ t,
                                                 const float* __restrict__ g,
                                                 float* __restrict__ dl, u32 rows, u32 cols) {
    const u32 n = rows * cols;  // < 2^32, checked by the host
    for (u32 e = blockIdx.x * blockDim.x + threadIdx.x; e < n; e += gridDim.x * blockDim.x)
        dl[e] = (sigmoidf_stable(l[e]) - t[e]) * g[e / cols];
}

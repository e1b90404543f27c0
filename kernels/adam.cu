// adam.cu — Adam / AdamW over many tensors in ONE launch (multi-tensor apply).
//
// For every element of every tensor in the table, with the step's scalars s:
//   g' = g + wd·p                          (L2 form, decoupled = 0 only)
//   m ← β₁·m + (1 − β₁)·g'
//   v ← β₂·v + (1 − β₂)·g'²
//   p ← p − [ lr · (m / bias1) / (√(v / bias2) + ε) + lr·wd·p ]   (the lr·wd·p term: decoupled only)
// with bias1 = 1 − β₁ᵗ, bias2 = 1 − β₂ᵗ precomputed by the host.
//
// Launch: grid.y walks the table (one tensor per y, striding when there are more than gridDim.y),
// grid.x × blockDim.x threads stride over that tensor's elements. The table lives in device memory
// (uploaded by the host), so the launch's parameter size does not grow with the tensor count.
#include "common.cuh"

struct AdamEntry {
    float* p;
    const float* g;
    float* m;
    float* v;
    u64 n;
};

struct AdamParams {
    float lr, beta1, beta2, eps, weight_decay, bias1, bias2;
    int decoupled;
};

extern "C" __global__ void adam_multi_f32(const AdamEntry* __restrict__ table, u32 count,
                                          AdamParams s) {
    for (u32 t = blockIdx.y; t < count; t += gridDim.y) {
        const AdamEntry e = table[t];
        SSVAE_GRID_LOOP(i, e.n) {
            const float p = e.p[i];
            float g = e.g[i];
            if (!s.decoupled) g = g + s.weight_decay * p;
            const float m = s.beta1 * e.m[i] + (1.0f - s.beta1) * g;
            const float v = s.beta2 * e.v[i] + (1.0f - s.beta2) * g * g;
            e.m[i] = m;
            e.v[i] = v;
            const float mhat = m / s.bias1, vhat = v / s.bias2;
            const float decay = s.decoupled ? s.lr * s.weight_decay * p : 0.0f;
            e.p[i] = p - (s.lr * mhat / (sqrtf(vhat) + s.eps) + decay);
        }
    }
}

// vae_common.cuh — small device helpers shared by the fused VAE kernels (reparam.cu, gumbel.cu,
// elbo.cu, mixup.cu). Their CPU twins live in src/backend/cpu/{gumbel,elbo,mixup}.rs.
//
// Two launch shapes are used throughout:
//   * warp per row — blockDim.x is a multiple of 32 (256 recommended), grid = ceil(rows / (blockDim.x/32)).
//     Row r is handled by warp (threadIdx.x / 32) of block r / (blockDim.x/32); lane j touches
//     columns j, j+32, j+64, ... and the row's sums are finished with __shfl_xor_sync butterflies,
//     so no shared memory and no __syncthreads are needed. A whole warp exits together when its
//     row is past the end, so the full-mask shuffles are always legal.
//   * block per batch row (elbo.cu, mixup_build) — documented in those files.
//
// All maths uses the precise libm functions (expf, logf, log1pf, expm1f): the kernels are compiled
// without fast-math so that results agree with the CPU reference to a few ulp.
#pragma once

#include "common.cuh"  // warp_sum, warp_max (butterfly shuffles: every lane gets the result)
#include "philox.cuh"

__device__ __forceinline__ float vae_neg_inf() { return __int_as_float(0xff800000); }
__device__ __forceinline__ float vae_nan() { return __int_as_float(0x7fc00000); }

// The row this warp owns in a warp-per-row launch, and the lane within the warp.
__device__ __forceinline__ int vae_warp_row() {
    return (int)(blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5));
}
__device__ __forceinline__ int vae_lane() { return (int)(threadIdx.x & 31); }

// The Philox key of a draw, from the three scalars every stochastic kernel takes (the fields of
// the Rust RngKey { seed, stream, offset }).
__device__ __forceinline__ PhiloxKey vae_key(unsigned long long seed, unsigned long long offset,
                                             unsigned int stream) {
    PhiloxKey key;
    key.seed = seed;
    key.offset = offset;
    key.stream = stream;
    return key;
}

// Stable log-softmax statistics of one row of n logits, computed by a whole warp:
// *m = max_k l_k and *log_s = log Σ_k exp(l_k − m), so log softmax(l)_k = (l_k − m) − log_s,
// finite wherever l is finite even when exp of it underflows (the CPU's log_softmax_row).
__device__ __forceinline__ void vae_warp_log_softmax_stats(const float* row, int n, int lane,
                                                           float* m, float* log_s) {
    float mx = vae_neg_inf();
    for (int k = lane; k < n; k += 32) mx = fmaxf(mx, row[k]);
    mx = warp_max(mx);
    float s = 0.0f;
    for (int k = lane; k < n; k += 32) s += expf(row[k] - mx);
    s = warp_sum(s);
    *m = mx;
    *log_s = logf(s);
}

// ---- per-element likelihoods of the decoder output o for a target x -------------------------
// Bernoulli (logits):  −log p = max(o, 0) − o·x + log(1 + e^{−|o|}),   ∂/∂o = σ(o) − x
// Gaussian (fixed σ):  −log p = ½((x − o)²/σ² + log(2πσ²)),             ∂/∂o = (o − x)/σ²
#define VAE_LIK_BERNOULLI 0
#define VAE_LIK_GAUSSIAN 1

// σ(l) without overflow for either sign.
__device__ __forceinline__ float vae_sigmoid(float l) {
    if (l >= 0.0f) return 1.0f / (1.0f + expf(-l));
    float e = expf(l);
    return e / (1.0f + e);
}

// The Gaussian constants 1/σ² and log(2πσ²), computed as the CPU does.
__device__ __forceinline__ void vae_gaussian_constants(float sigma, float* inv_var, float* log_norm) {
    float var = sigma * sigma;
    *inv_var = 1.0f / var;
    *log_norm = logf(6.28318530717958647692f * var);
}

__device__ __forceinline__ float vae_nll(int likelihood, float o, float x, float inv_var,
                                         float log_norm) {
    if (likelihood == VAE_LIK_BERNOULLI) return fmaxf(o, 0.0f) - o * x + log1pf(expf(-fabsf(o)));
    float d = x - o;
    return 0.5f * (d * d * inv_var + log_norm);
}

__device__ __forceinline__ float vae_nll_grad(int likelihood, float o, float x, float inv_var) {
    if (likelihood == VAE_LIK_BERNOULLI) return vae_sigmoid(o) - x;
    return (o - x) * inv_var;
}

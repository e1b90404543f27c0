// gumbel.cu — Gumbel-softmax sampling and the KL of a categorical to the uniform prior.
// CPU twin: src/backend/cpu/gumbel.rs (same function names).
//
// A categorical sample y ~ Cat(softmax(ℓ)) is not differentiable in ℓ. The Gumbel-max trick
// writes it as argmax_k (ℓ_k + g_k) with g_k = −log(−log u_k) i.i.d. standard Gumbel; the
// Gumbel-softmax (Jang, Gu & Poole 2017; Maddison et al. 2017) relaxes the argmax to a softmax
// at temperature τ:
//
//     s_k = (ℓ_k + g_k) / τ,     y_k = exp(s_k − max_j s_j) / Σ_j exp(s_j − max_j s_j).
//
// As τ → 0 the sample approaches a one-hot; as τ grows it flattens towards uniform. The noise of
// element (b, k) is element b·K + k of the Philox Gumbel draw (philox_gumbel / gumbel_at), so the
// CPU and GPU draw the same g and the backward can recompute it instead of saving y.
//
// With `hard`, the forward returns the exact one-hot of argmax_k s_k (ties → the lowest index)
// and the backward differentiates the soft sample anyway: the straight-through estimator.
//
// Backward: ∂y_k/∂ℓ_j = (1/τ) y_k (δ_kj − y_j), so for an upstream dy
//
//     dℓ_j = Σ_k dy_k ∂y_k/∂ℓ_j = (1/τ) · y_j · (dy_j − Σ_k dy_k y_k),     y the soft sample.
//
// KL to the uniform prior, from logits (the "L_C" term of GMVAE, SHOT-VAE's KL_y):
//
//     π = softmax(ℓ),  log π = log_softmax(ℓ),  KL(π ‖ U(K)) = Σ_k π_k (log π_k + log K),
//
// log π comes from log_softmax, so a class with π_k → 0 contributes exactly 0 (never −∞ · 0).
// With a_k = log π_k + log K:
//
//     ∂KL/∂ℓ_j = Σ_k π_k(δ_kj − π_j) a_k + Σ_k π_k(δ_kj − π_j) = π_j (a_j − KL).
//
// Launch shape: every kernel here is warp per row (vae_common.cuh): blockDim.x a multiple of 32,
// grid = ceil(rows / (blockDim.x / 32)). K is small (2..100), so one warp per row is plenty.
// Logits are rows×cols, row-major.
#include "vae_common.cuh"

// The soft sample of one row into y (lane-strided), computed as the CPU does: s, then the
// max-shifted exponentials, then the division by their sum. Each lane reads back only its own
// writes, so no synchronisation beyond the warp reductions is needed.
__device__ __forceinline__ void gumbel_soft_row(const float* l, float* y, int cols,
                                                unsigned long long base, float inv_tau,
                                                PhiloxKey key, int lane) {
    float m = vae_neg_inf();
    for (int k = lane; k < cols; k += 32) {
        const float s = (l[k] + philox_gumbel(key, base + (unsigned long long)k)) * inv_tau;
        y[k] = s;
        m = fmaxf(m, s);
    }
    m = warp_max(m);
    float sum = 0.0f;
    for (int k = lane; k < cols; k += 32) {
        const float e = expf(y[k] - m);
        y[k] = e;
        sum += e;
    }
    sum = warp_sum(sum);
    for (int k = lane; k < cols; k += 32) y[k] = y[k] / sum;
}

// y = Gumbel-softmax(logits, τ) per row; with hard != 0 the one-hot of the argmax instead.
extern "C" __global__ void gumbel_softmax_forward(const float* __restrict__ logits,
                                                  float* __restrict__ y, int rows, int cols,
                                                  float tau, int hard, unsigned long long seed,
                                                  unsigned long long offset, unsigned int stream) {
    const int row = vae_warp_row();
    const int lane = vae_lane();
    if (row >= rows) return;
    const PhiloxKey key = vae_key(seed, offset, stream);
    const unsigned long long base = (unsigned long long)row * (unsigned long long)cols;
    const float* l = logits + base;
    float* out = y + base;
    const float inv_tau = 1.0f / tau;
    if (!hard) {
        gumbel_soft_row(l, out, cols, base, inv_tau, key, lane);
        return;
    }
    // Argmax with ties to the lowest index: each lane keeps its first maximum (strict >, starting
    // from its own first column like the CPU starts from column 0), then the butterfly keeps the
    // larger value, or the lower index on equal values. A lane with no column never wins.
    float best = vae_neg_inf();
    int best_k = lane < cols ? lane : 0x7fffffff;
    for (int k = lane; k < cols; k += 32) {
        const float s = (l[k] + philox_gumbel(key, base + (unsigned long long)k)) * inv_tau;
        if (s > best) {
            best = s;
            best_k = k;
        }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float ob = __shfl_xor_sync(SSVAE_FULL_MASK, best, o);
        const int ok = __shfl_xor_sync(SSVAE_FULL_MASK, best_k, o);
        if (ob > best || (ob == best && ok < best_k)) {
            best = ob;
            best_k = ok;
        }
    }
    for (int k = lane; k < cols; k += 32) out[k] = k == best_k ? 1.0f : 0.0f;
}

// dlogits = (1/τ) y ⊙ (dy − Σ_k dy_k y_k), y the soft sample recomputed from (logits, τ, key).
// The same for soft and hard forwards (straight-through).
extern "C" __global__ void gumbel_softmax_backward(const float* __restrict__ logits,
                                                   const float* __restrict__ dy,
                                                   float* __restrict__ dlogits, int rows, int cols,
                                                   float tau, unsigned long long seed,
                                                   unsigned long long offset, unsigned int stream) {
    const int row = vae_warp_row();
    const int lane = vae_lane();
    if (row >= rows) return;
    const PhiloxKey key = vae_key(seed, offset, stream);
    const unsigned long long base = (unsigned long long)row * (unsigned long long)cols;
    const float* g = dy + base;
    float* out = dlogits + base;
    const float inv_tau = 1.0f / tau;
    gumbel_soft_row(logits + base, out, cols, base, inv_tau, key, lane);  // out = y (soft)
    float dot = 0.0f;
    for (int k = lane; k < cols; k += 32) dot += out[k] * g[k];
    dot = warp_sum(dot);
    for (int k = lane; k < cols; k += 32) out[k] = inv_tau * out[k] * (g[k] - dot);
}

// kl[b] = KL(softmax(logits_b) ‖ Uniform(cols)).
extern "C" __global__ void categorical_kl_uniform_forward(const float* __restrict__ logits,
                                                          float* __restrict__ kl, int rows,
                                                          int cols) {
    const int row = vae_warp_row();
    const int lane = vae_lane();
    if (row >= rows) return;
    const float* l = logits + (long long)row * cols;
    const float log_k = logf((float)cols);
    float m, log_s;
    vae_warp_log_softmax_stats(l, cols, lane, &m, &log_s);
    float acc = 0.0f;
    for (int k = lane; k < cols; k += 32) {
        const float lp = (l[k] - m) - log_s;
        const float p = expf(lp);
        if (p > 0.0f) acc += p * (lp + log_k);
    }
    acc = warp_sum(acc);
    if (lane == 0) kl[row] = acc;
}

// dlogits[b, j] = dkl[b] · π_bj · (log π_bj + log K − KL_b).
extern "C" __global__ void categorical_kl_uniform_backward(const float* __restrict__ logits,
                                                           const float* __restrict__ dkl,
                                                           float* __restrict__ dlogits, int rows,
                                                           int cols) {
    const int row = vae_warp_row();
    const int lane = vae_lane();
    if (row >= rows) return;
    const long long base = (long long)row * cols;
    const float* l = logits + base;
    const float log_k = logf((float)cols);
    float m, log_s;
    vae_warp_log_softmax_stats(l, cols, lane, &m, &log_s);
    float kl = 0.0f;
    for (int k = lane; k < cols; k += 32) {
        const float lp = (l[k] - m) - log_s;
        const float p = expf(lp);
        if (p > 0.0f) kl += p * (lp + log_k);
    }
    kl = warp_sum(kl);
    const float g = dkl[row];
    for (int k = lane; k < cols; k += 32) {
        const float lp = (l[k] - m) - log_s;
        const float p = expf(lp);
        dlogits[base + k] = p > 0.0f ? g * p * (lp + log_k - kl) : 0.0f;
    }
}

// elbo.cu — the fused, class-marginalised negative ELBO of M2 (Kingma et al. 2014, Eq. 7).
// CPU twin: src/backend/cpu/elbo.rs (elbo_marginal_forward/backward there cover both variants
// through an enum; here the labelled variant has its own kernels, elbo_labelled_*).
//
// M2 has a class variable y next to the continuous z. For an unlabelled x it sums the labelled
// bound over every class, weighted by the classifier q(y|x):
//
//     U(x) = Σ_k q(k|x) · L(x, k) − H(q(·|x)),
//     L(x, k) = −log p(x | z_k, y=k) + KL(q(z|x, k) ‖ p(z)) − log p(y=k).
//
// The batch is decoded once per class, giving decoder outputs L of shape (B·K)×D (row b·K + k is
// x_b decoded with y = k). Done naively, U costs K loss graphs and a (B·K)×D loss tensor. Here
// one kernel reads every decoder output exactly once and writes only
//
//     nll[b·K + k] = Σ_d −log p(x_bd | L_bk,d)   (B·K, saved for the backward)
//     loss[b]      = U_b                         (B)
//
// with, per row b (q = softmax(c_b), log q = log_softmax(c_b)):
//
//     ℓ_k = nll_bk + kl_bk − log_prior_k,   a_k = ℓ_k + log q_k,   U_b = Σ_k q_k a_k
//
// (Σ_k q_k log q_k is −H(q)). log q comes from a log-softmax, so q_k → 0 gives a finite log q_k
// and a term q_k a_k = 0 — never −∞ · 0. Per-element likelihoods (vae_common.cuh):
// Bernoulli  −log p = max(l,0) − l·x + log(1 + e^{−|l|})     ∂/∂l = σ(l) − x
// Gaussian   −log p = ½((x − o)²/σ² + log(2πσ²))            ∂/∂o = (o − x)/σ²
// which are stable for logits of ±100 (no exp of a positive number).
//
// Backward, with upstream g_b:
//   dL_bk,d = g_b q_bk ∂nll/∂L        (each decoded copy is weighted by its class probability)
//   dkl_bk  = g_b q_bk
//   dc_bj   = g_b q_bj (a_j − U_b)
// The last line: ∂q_k/∂c_j = q_k(δ_kj − q_j) and ∂log q_k/∂c_j = δ_kj − q_j, so
//   ∂U/∂c_j = Σ_k q_k(δ_kj − q_j) a_k + Σ_k q_k(δ_kj − q_j) = q_j a_j − q_j U + q_j − q_j.
// Note dkl_bk = g_b q_bk is also exactly the weight of row (b, k) in dL — the backward kernel
// writes it first and then uses it as that weight.
//
// Labelled variant (q = onehot(y_b)): decoder outputs B×D (only the true class), kl is B,
//   L_b = nll_b + kl_b − log_prior_{y_b};  dL = g_b ∂nll/∂L, dkl_b = g_b; no entropy, no dc.
//
// `likelihood` is 0 (Bernoulli) or 1 (Gaussian with standard deviation `sigma`; ignored for 0).
//
// Launch shapes:
//   elbo_marginal_forward/backward: one block per batch row b (grid = B), blockDim.x a multiple of
//     32 (256 recommended). Warp w of the block handles classes k = w, w + nwarps, ...: its lanes
//     stride over the D features of row (b, k) (coalesced) and finish the sum with shuffles. After
//     one __syncthreads, warp 0 combines the K classes. No shared memory.
//   elbo_labelled_forward: warp per row (vae_common.cuh). elbo_labelled_backward: elementwise
//     grid-stride over B·D.
#include "vae_common.cuh"

extern "C" __global__ void elbo_marginal_forward(const float* __restrict__ decoded,
                                                 const float* __restrict__ x,
                                                 const float* __restrict__ kl,
                                                 const float* __restrict__ logits,
                                                 const float* __restrict__ log_prior,
                                                 float* nll, float* __restrict__ loss, int B,
                                                 int K, int D, int likelihood, float sigma) {
    const int b = blockIdx.x;
    if (b >= B) return;  // uniform over the block, before any barrier
    const int warp = (int)(threadIdx.x >> 5);
    const int lane = vae_lane();
    const int nwarps = (int)(blockDim.x >> 5);
    float inv_var = 0.0f, log_norm = 0.0f;
    if (likelihood == VAE_LIK_GAUSSIAN) vae_gaussian_constants(sigma, &inv_var, &log_norm);
    const long long bk = (long long)b * K;
    const float* xb = x + (long long)b * D;

    // Pass over the decoder outputs: one warp per (b, k) row.
    for (int k = warp; k < K; k += nwarps) {
        const float* row = decoded + (bk + k) * D;
        float acc = 0.0f;
        for (int d = lane; d < D; d += 32) acc += vae_nll(likelihood, row[d], xb[d], inv_var, log_norm);
        acc = warp_sum(acc);
        if (lane == 0) nll[bk + k] = acc;
    }
    __syncthreads();  // makes this block's nll writes visible to warp 0
    if (warp != 0) return;

    // Combine the K classes: U_b = Σ_k q_k (ℓ_k + log q_k).
    const float* c = logits + bk;
    float m, log_s;
    vae_warp_log_softmax_stats(c, K, lane, &m, &log_s);
    float u = 0.0f;
    for (int k = lane; k < K; k += 32) {
        const float lq = (c[k] - m) - log_s;
        const float q = expf(lq);
        const float a = nll[bk + k] + kl[bk + k] - log_prior[k] + lq;
        if (q > 0.0f) u += q * a;
    }
    u = warp_sum(u);
    if (lane == 0) loss[b] = u;
}

extern "C" __global__ void elbo_marginal_backward(const float* __restrict__ decoded,
                                                  const float* __restrict__ x,
                                                  const float* __restrict__ kl,
                                                  const float* __restrict__ logits,
                                                  const float* __restrict__ log_prior,
                                                  const float* __restrict__ nll,
                                                  const float* __restrict__ grad,
                                                  float* __restrict__ d_decoded, float* d_kl,
                                                  float* __restrict__ d_logits, int B, int K,
                                                  int D, int likelihood, float sigma) {
    const int b = blockIdx.x;
    if (b >= B) return;
    const int warp = (int)(threadIdx.x >> 5);
    const int lane = vae_lane();
    const int nwarps = (int)(blockDim.x >> 5);
    const long long bk = (long long)b * K;

    // Warp 0: recompute log q and U_b from the saved nll, write dkl = g q and dc.
    if (warp == 0) {
        const float g = grad[b];
        const float* c = logits + bk;
        float m, log_s;
        vae_warp_log_softmax_stats(c, K, lane, &m, &log_s);
        float u = 0.0f;
        for (int k = lane; k < K; k += 32) {
            const float lq = (c[k] - m) - log_s;
            const float q = expf(lq);
            const float a = nll[bk + k] + kl[bk + k] - log_prior[k] + lq;
            if (q > 0.0f) u += q * a;
        }
        u = warp_sum(u);
        for (int k = lane; k < K; k += 32) {
            const float lq = (c[k] - m) - log_s;
            const float q = expf(lq);
            const float a = nll[bk + k] + kl[bk + k] - log_prior[k] + lq;
            const float w = g * q;
            d_kl[bk + k] = w;
            d_logits[bk + k] = q > 0.0f ? w * (a - u) : 0.0f;
        }
    }
    __syncthreads();  // d_kl (= the per-row weights g q) is now visible to every warp

    // One pass over the decoder outputs: dL_bk,d = (g q_bk) ∂nll/∂L.
    float inv_var = 0.0f, log_norm = 0.0f;
    if (likelihood == VAE_LIK_GAUSSIAN) vae_gaussian_constants(sigma, &inv_var, &log_norm);
    const float* xb = x + (long long)b * D;
    for (int k = warp; k < K; k += nwarps) {
        const float w = d_kl[bk + k];
        const long long r = (bk + k) * D;
        for (int d = lane; d < D; d += 32)
            d_decoded[r + d] = w * vae_nll_grad(likelihood, decoded[r + d], xb[d], inv_var);
    }
}

// Labelled: nll[b] = Σ_d −log p(x_bd | L_bd), loss[b] = nll[b] + kl[b] − log_prior[y_b]
// (NaN when y_b ≥ K — the host checks labels first; this only makes a bad launch loud).
extern "C" __global__ void elbo_labelled_forward(const float* __restrict__ decoded,
                                                 const float* __restrict__ x,
                                                 const float* __restrict__ kl,
                                                 const unsigned int* __restrict__ labels,
                                                 const float* __restrict__ log_prior,
                                                 float* __restrict__ nll, float* __restrict__ loss,
                                                 int B, int K, int D, int likelihood, float sigma) {
    const int row = vae_warp_row();
    const int lane = vae_lane();
    if (row >= B) return;
    float inv_var = 0.0f, log_norm = 0.0f;
    if (likelihood == VAE_LIK_GAUSSIAN) vae_gaussian_constants(sigma, &inv_var, &log_norm);
    const long long base = (long long)row * D;
    float acc = 0.0f;
    for (int d = lane; d < D; d += 32)
        acc += vae_nll(likelihood, decoded[base + d], x[base + d], inv_var, log_norm);
    acc = warp_sum(acc);
    if (lane == 0) {
        const unsigned int y = labels[row];
        nll[row] = acc;
        loss[row] = y < (unsigned int)K ? acc + kl[row] - log_prior[y] : vae_nan();
    }
}

// Labelled backward: dL = g_b ∂nll/∂L (B·D), dkl_b = g_b.
extern "C" __global__ void elbo_labelled_backward(const float* __restrict__ decoded,
                                                  const float* __restrict__ x,
                                                  const float* __restrict__ grad,
                                                  float* __restrict__ d_decoded,
                                                  float* __restrict__ d_kl, int B, int D,
                                                  int likelihood, float sigma) {
    float inv_var = 0.0f, log_norm = 0.0f;
    if (likelihood == VAE_LIK_GAUSSIAN) vae_gaussian_constants(sigma, &inv_var, &log_norm);
    const long long n = (long long)B * D;
    const long long step = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
        const long long row = i / D;
        const float g = grad[row];
        d_decoded[i] = g * vae_nll_grad(likelihood, decoded[i], x[i], inv_var);
        if (i - row * D == 0) d_kl[row] = g;
    }
}

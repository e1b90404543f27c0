// mixup.cu — SHOT-VAE's optimal-interpolation mixup (Feng et al., AAAI 2021).
// CPU twin: src/backend/cpu/mixup.rs (same function names).
//
// Mixup trains on convex combinations of pairs of examples. SHOT-VAE asks what the encoder
// *should* output on a mixed input x̃ = λ x_a + (1 − λ) x_b, and answers with the "optimal
// interpolation" of the two posteriors it already has:
//
//   * for the class posterior, the mixture p̃ = λ q_a + (1 − λ) q_b — the minimiser over p of
//     λ KL(q_a ‖ p) + (1 − λ) KL(q_b ‖ p);
//   * for the diagonal Gaussian N(μ, σ²), the point at fraction 1 − λ along the 2-Wasserstein
//     geodesic from N(μ_a, σ_a²) to N(μ_b, σ_b²), which for diagonal Gaussians simply
//     interpolates means and standard deviations: μ̃ = λ μ_a + (1 − λ) μ_b, σ̃ likewise.
//
// Row b of a batch is mixed with its partner π(b) (a random permutation) with weight λ_b
// (λ ~ Beta(α, α) drawn on the host, one per batch or one per example):
//
//     x̃_b = λ_b x_b + (1 − λ_b) x_π(b)    p̃_b, μ̃_b, σ̃_b the same way.
//
// With labels instead of probabilities, q_b = onehot(y_b) and p̃_b = λ onehot(y_b) + (1 − λ)
// onehot(y_π(b)), which turns the CE below into λ CE(q, y_b) + (1 − λ) CE(q, y_π(b)).
// Every mix is λ·a + (1 − λ)·b with explicitly rounded operations (__fmul_rn/__fadd_rn, no
// contraction into an FMA): bit-identical to the CPU, and exactly a at λ = 1, exactly b at λ = 0.
//
// The loss scores the encoder's outputs on x̃ — logits c̃ (B×K), μ(x̃), σ(x̃) (B×Z) — against the
// (detached) targets, per row:
//
//     J_b = CE(softmax(c̃_b), p̃_b) + w (‖μ(x̃)_b − μ̃_b‖² + ‖σ(x̃)_b − σ̃_b‖²),
//     CE(q, p) = −Σ_k p_k log q_k,  log q = log_softmax(c̃)  (a class with p_k = 0 adds 0),
//
// w = latent_weight (1 for the plain loss). Backward, with upstream g_b:
//
//     dc̃ = g (softmax(c̃) Σ_k p̃_k − p̃)      [∂CE/∂c̃_j = −Σ_k p_k(δ_kj − q_j) = q_j Σp − p_j]
//     dμ = 2 w g (μ − μ̃),   dσ = 2 w g (σ − σ̃).
//
// Launch shapes: mixup_build is one block per batch row (grid = B, any blockDim.x; 128–256 is
// good, the block strides over D, then K, then Z). mixup_loss_forward/backward are warp per row
// (vae_common.cuh). mu/sigma pointers may be null when Z = 0; q may be null when labels are given.
#include "vae_common.cuh"

// λ a + (1 − λ) b with (1 − λ) precomputed as om, rounded like the CPU's `l * a + (1.0 - l) * b`.
__device__ __forceinline__ float mixup_mix(float l, float om, float a, float b) {
    return __fadd_rn(__fmul_rn(l, a), __fmul_rn(om, b));
}

// x̃ (B×D), p̃ (B×K), μ̃, σ̃ (B×Z) in one launch. If labels != nullptr the class targets are
// one-hot labels (q unused), else q holds probabilities (B×K).
extern "C" __global__ void mixup_build(const float* __restrict__ x, const float* __restrict__ q,
                                       const unsigned int* __restrict__ labels,
                                       const float* __restrict__ mu,
                                       const float* __restrict__ sigma,
                                       const unsigned int* __restrict__ partner,
                                       const float* __restrict__ lambda, float* __restrict__ x_out,
                                       float* __restrict__ p_out, float* __restrict__ mu_out,
                                       float* __restrict__ sigma_out, int B, int D, int K, int Z) {
    const int b = blockIdx.x;
    if (b >= B) return;
    const long long pb = (long long)partner[b];
    const float l = lambda[b];
    const float om = 1.0f - l;
    for (int j = threadIdx.x; j < D; j += blockDim.x)
        x_out[(long long)b * D + j] = mixup_mix(l, om, x[(long long)b * D + j], x[pb * D + j]);
    if (labels != nullptr) {
        const unsigned int ya = labels[b];
        const unsigned int yb = labels[pb];
        for (int j = threadIdx.x; j < K; j += blockDim.x)
            p_out[(long long)b * K + j] = mixup_mix(l, om, (unsigned int)j == ya ? 1.0f : 0.0f,
                                                    (unsigned int)j == yb ? 1.0f : 0.0f);
    } else {
        for (int j = threadIdx.x; j < K; j += blockDim.x)
            p_out[(long long)b * K + j] = mixup_mix(l, om, q[(long long)b * K + j], q[pb * K + j]);
    }
    for (int j = threadIdx.x; j < Z; j += blockDim.x) {
        const long long i = (long long)b * Z + j;
        const long long ip = pb * Z + j;
        mu_out[i] = mixup_mix(l, om, mu[i], mu[ip]);
        sigma_out[i] = mixup_mix(l, om, sigma[i], sigma[ip]);
    }
}

extern "C" __global__ void mixup_loss_forward(const float* __restrict__ logits,
                                              const float* __restrict__ p,
                                              const float* __restrict__ mu,
                                              const float* __restrict__ mu_target,
                                              const float* __restrict__ sigma,
                                              const float* __restrict__ sigma_target,
                                              float* __restrict__ loss, int B, int K, int Z,
                                              float latent_weight) {
    const int row = vae_warp_row();
    const int lane = vae_lane();
    if (row >= B) return;
    const float* c = logits + (long long)row * K;
    const float* pr = p + (long long)row * K;
    float m, log_s;
    vae_warp_log_softmax_stats(c, K, lane, &m, &log_s);
    float ce = 0.0f;
    for (int k = lane; k < K; k += 32) {
        const float pk = pr[k];
        if (pk != 0.0f) ce += pk * ((c[k] - m) - log_s);
    }
    ce = -warp_sum(ce);
    float w2 = 0.0f;
    for (int j = lane; j < Z; j += 32) {
        const long long i = (long long)row * Z + j;
        const float dm = mu[i] - mu_target[i];
        const float ds = sigma[i] - sigma_target[i];
        w2 += dm * dm + ds * ds;
    }
    w2 = warp_sum(w2);
    if (lane == 0) loss[row] = ce + latent_weight * w2;
}

extern "C" __global__ void mixup_loss_backward(const float* __restrict__ logits,
                                               const float* __restrict__ p,
                                               const float* __restrict__ mu,
                                               const float* __restrict__ mu_target,
                                               const float* __restrict__ sigma,
                                               const float* __restrict__ sigma_target,
                                               const float* __restrict__ grad,
                                               float* __restrict__ d_logits,
                                               float* __restrict__ d_mu,
                                               float* __restrict__ d_sigma, int B, int K, int Z,
                                               float latent_weight) {
    const int row = vae_warp_row();
    const int lane = vae_lane();
    if (row >= B) return;
    const float g = grad[row];
    const long long base = (long long)row * K;
    const float* c = logits + base;
    const float* pr = p + base;
    float m, log_s;
    vae_warp_log_softmax_stats(c, K, lane, &m, &log_s);
    float psum = 0.0f;
    for (int k = lane; k < K; k += 32) psum += pr[k];
    psum = warp_sum(psum);
    for (int k = lane; k < K; k += 32)
        d_logits[base + k] = g * (expf((c[k] - m) - log_s) * psum - pr[k]);
    const float cz = 2.0f * latent_weight * g;
    for (int j = lane; j < Z; j += 32) {
        const long long i = (long long)row * Z + j;
        d_mu[i] = cz * (mu[i] - mu_target[i]);
        d_sigma[i] = cz * (sigma[i] - sigma_target[i]);
    }
}

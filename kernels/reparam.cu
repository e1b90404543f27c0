// reparam.cu — the reparameterisation trick fused with its KL term, and the analytic KL between
// two diagonal Gaussians. CPU twin: src/backend/cpu/reparam.rs (same function names).
//
// A VAE's encoder outputs, per example b and latent dimension d, a mean μ and a log-variance
// lv = log σ². To backpropagate through a sample z ~ N(μ, σ²) we write it as a deterministic
// function of the parameters and of parameter-free noise (Kingma & Welling 2014):
//
//     z = μ + σ ⊙ ε,   σ = exp(½ lv),   ε ~ N(0, I).
//
// ε of element (b, d) is element i = b·D + d of the Philox normal draw at (seed, stream, offset)
// (philox_normal in philox.cuh, normal_at in src/rng.rs) — so the CPU and GPU draw the same ε, and
// the backward recomputes ε from the key instead of keeping a B×D buffer alive.
//
// The ELBO's prior term for p(z) = N(0, I) is analytic, per row:
//
//     KL(N(μ, σ²) ‖ N(0, I)) = −½ Σ_d (1 + lv − μ² − e^{lv})  =  −½ Σ_d (lv − expm1(lv) − μ²).
//
// The second form keeps its relative accuracy as lv → 0, where 1 + lv − e^{lv} ≈ −lv²/2 would be
// the difference of two numbers close to 1. Fusing the KL into the sampling kernel reads μ, lv once.
//
// Backward, given dz (B×D) and dkl (B), from ∂z/∂μ = 1, ∂z/∂lv = ½σε, ∂KL/∂μ = μ,
// ∂KL/∂lv = ½(e^{lv} − 1):
//
//     dμ  = dz + dkl_b · μ
//     dlv = dz · ½ e^{½lv} ε + dkl_b · ½ expm1(lv)
//
// Either upstream may be a null pointer (that output did not reach the loss).
//
// Conditional priors p(z|y) = N(μp, σp²) (GMVAE, M1+M2) need the KL between two diagonal Gaussians:
//
//     KL(q‖p) = ½ Σ_d (lvp − lvq + (e^{lvq} + (μq − μp)²)/e^{lvp} − 1)
//             = ½ Σ_d (expm1(δ) − δ + Δ² e^{−lvp}),   δ = lvq − lvp,  Δ = μq − μp,
//
// exactly 0 when q = p. Its partial derivatives, times dkl_b:
//
//     ∂/∂μq = Δ e^{−lvp}      ∂/∂μp = −Δ e^{−lvp}
//     ∂/∂lvq = ½ expm1(δ)     ∂/∂lvp = −½ (expm1(δ) + Δ² e^{−lvp})
//
// Launch shapes: the *_forward kernels are warp per row (see vae_common.cuh: blockDim.x a multiple
// of 32, grid = ceil(rows / (blockDim.x / 32))); the *_backward kernels are elementwise
// grid-stride loops over rows·cols (any 1-D grid). All buffers contiguous row-major f32.
#include "vae_common.cuh"

// z = μ + exp(½ lv) ε and kl[b] = KL(N(μ_b, e^{lv_b}) ‖ N(0, I)).
extern "C" __global__ void reparam_forward(const float* __restrict__ mu,
                                           const float* __restrict__ logvar,
                                           float* __restrict__ z, float* __restrict__ kl,
                                           int rows, int cols, unsigned long long seed,
                                           unsigned long long offset, unsigned int stream) {
    const int row = vae_warp_row();
    const int lane = vae_lane();
    if (row >= rows) return;
    const PhiloxKey key = vae_key(seed, offset, stream);
    const long long base = (long long)row * cols;
    float acc = 0.0f;
    for (int d = lane; d < cols; d += 32) {
        const long long i = base + d;
        const float m = mu[i];
        const float lv = logvar[i];
        z[i] = m + expf(0.5f * lv) * philox_normal(key, (unsigned long long)i);
        acc += lv - expm1f(lv) - m * m;
    }
    acc = warp_sum(acc);
    if (lane == 0) kl[row] = -0.5f * acc;
}

// dμ, dlv of reparam_forward; dz (rows·cols) and dkl (rows) may be null (= zero).
extern "C" __global__ void reparam_backward(const float* __restrict__ mu,
                                            const float* __restrict__ logvar,
                                            const float* __restrict__ dz,
                                            const float* __restrict__ dkl,
                                            float* __restrict__ dmu, float* __restrict__ dlogvar,
                                            int rows, int cols, unsigned long long seed,
                                            unsigned long long offset, unsigned int stream) {
    const PhiloxKey key = vae_key(seed, offset, stream);
    const long long n = (long long)rows * cols;
    const long long step = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
        const float m = mu[i];
        const float lv = logvar[i];
        const float gk = dkl != nullptr ? dkl[i / cols] : 0.0f;
        float gm = gk * m;
        float gl = gk * 0.5f * expm1f(lv);
        if (dz != nullptr) {
            const float g = dz[i];
            gm += g;
            gl += g * 0.5f * expf(0.5f * lv) * philox_normal(key, (unsigned long long)i);
        }
        dmu[i] = gm;
        dlogvar[i] = gl;
    }
}

// kl[b] = KL(N(μq, e^{lvq}) ‖ N(μp, e^{lvp})) over row b, all four inputs rows×cols.
extern "C" __global__ void gaussian_kl_forward(const float* __restrict__ mu_q,
                                               const float* __restrict__ logvar_q,
                                               const float* __restrict__ mu_p,
                                               const float* __restrict__ logvar_p,
                                               float* __restrict__ kl, int rows, int cols) {
    const int row = vae_warp_row();
    const int lane = vae_lane();
    if (row >= rows) return;
    const long long base = (long long)row * cols;
    float acc = 0.0f;
    for (int d = lane; d < cols; d += 32) {
        const long long i = base + d;
        const float delta = logvar_q[i] - logvar_p[i];
        const float dm = mu_q[i] - mu_p[i];
        acc += expm1f(delta) - delta + dm * dm * expf(-logvar_p[i]);
    }
    acc = warp_sum(acc);
    if (lane == 0) kl[row] = 0.5f * acc;
}

// Gradients of gaussian_kl_forward w.r.t. μq, lvq, μp, lvp given dkl (rows).
extern "C" __global__ void gaussian_kl_backward(const float* __restrict__ mu_q,
                                                const float* __restrict__ logvar_q,
                                                const float* __restrict__ mu_p,
                                                const float* __restrict__ logvar_p,
                                                const float* __restrict__ dkl,
                                                float* __restrict__ d_mu_q,
                                                float* __restrict__ d_logvar_q,
                                                float* __restrict__ d_mu_p,
                                                float* __restrict__ d_logvar_p, int rows, int cols) {
    const long long n = (long long)rows * cols;
    const long long step = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
        const float g = dkl[i / cols];
        const float delta = logvar_q[i] - logvar_p[i];
        const float em1 = expm1f(delta);
        const float inv_vp = expf(-logvar_p[i]);
        const float dm = mu_q[i] - mu_p[i];
        const float gmu = g * dm * inv_vp;
        d_mu_q[i] = gmu;
        d_mu_p[i] = -gmu;
        d_logvar_q[i] = g * 0.5f * em1;
        d_logvar_p[i] = -g * 0.5f * (em1 + dm * dm * inv_vp);
    }
}

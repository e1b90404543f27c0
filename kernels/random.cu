// random.cu — U(0,1) and N(0,1) draws from Philox4x32-10 (philox.cuh), element for element equal
// to the CPU backend's (src/rng.rs):
//   uniform element i = unit(word i mod 4 of block key.offset + ⌊i/4⌋)
//   normal  element i = √(−2 ln u₁) · cos(2π u₂), u₁, u₂ = unit(words 2(i mod 2), 2(i mod 2)+1 of
//                       block key.offset + ⌊i/2⌋)
// with unit(w) = (⌊w / 2⁹⌋ + ½) · 2⁻²³ ∈ (0, 1). One thread per element: Philox is a few dozen
// integer ops, far cheaper than the store.
#include "common.cuh"
#include "philox.cuh"

extern "C" __global__ void rand_uniform_f32(float* __restrict__ out, u64 n, PhiloxKey key) {
    SSVAE_GRID_LOOP(i, n) out[i] = philox_uniform(key, i);
}

extern "C" __global__ void rand_normal_f32(float* __restrict__ out, u64 n, PhiloxKey key) {
    SSVAE_GRID_LOOP(i, n) out[i] = philox_normal(key, i);
}

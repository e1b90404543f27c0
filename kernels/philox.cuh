// philox.cuh — Philox4x32-10, the in-kernel twin of src/rng.rs.
//
// Counter-based: the i-th number of a draw is a pure function of (seed, stream, offset, i), so any
// thread can compute its own numbers with no state, and the CPU backend (src/rng.rs) computes the
// very same words. Layout (identical to src/rng.rs):
//   key     = (seed_lo, seed_hi)
//   counter = (block_lo, block_hi, stream, 0)
//   uniform element i: block offset + i/4, word i%4, mapped to ((w >> 9) + 0.5) * 2^-23 in (0, 1)
//   normal  element i: block offset + i/2, words 2(i%2), 2(i%2)+1, Box–Muller cosine branch
//   gumbel  element i: -log(-log(uniform_i))
#pragma once

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

struct PhiloxKey {
    unsigned long long seed;
    unsigned long long offset;
    unsigned int stream;
};

__device__ __forceinline__ uint4 philox4x32_10(uint4 c, uint2 k) {
#pragma unroll
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {
            k.x += PHILOX_W0;
            k.y += PHILOX_W1;
        }
        unsigned int hi0 = __umulhi(PHILOX_M0, c.x), lo0 = PHILOX_M0 * c.x;
        unsigned int hi1 = __umulhi(PHILOX_M1, c.z), lo1 = PHILOX_M1 * c.z;
        c = make_uint4(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
    }
    return c;
}

__device__ __forceinline__ uint4 philox_block(PhiloxKey key, unsigned long long block) {
    uint4 c = make_uint4((unsigned int)block, (unsigned int)(block >> 32), key.stream, 0u);
    uint2 k = make_uint2((unsigned int)key.seed, (unsigned int)(key.seed >> 32));
    return philox4x32_10(c, k);
}

__device__ __forceinline__ float philox_u32_to_unit(unsigned int x) {
    return ((float)(x >> 9) + 0.5f) * (1.0f / 8388608.0f);
}

__device__ __forceinline__ unsigned int philox_word(uint4 w, unsigned int j) {
    return j == 0 ? w.x : j == 1 ? w.y : j == 2 ? w.z : w.w;
}

// Element i of a U(0,1) draw.
__device__ __forceinline__ float philox_uniform(PhiloxKey key, unsigned long long i) {
    uint4 w = philox_block(key, key.offset + i / 4);
    return philox_u32_to_unit(philox_word(w, (unsigned int)(i % 4)));
}

// Element i of an N(0,1) draw (Box–Muller, cosine branch). Precise logf/cosf/sqrtf (no fast math)
// so the result matches the CPU's f32 libm to a few ulp.
__device__ __forceinline__ float philox_normal(PhiloxKey key, unsigned long long i) {
    uint4 w = philox_block(key, key.offset + i / 2);
    unsigned int j = 2 * (unsigned int)(i % 2);
    float u1 = philox_u32_to_unit(philox_word(w, j));
    float u2 = philox_u32_to_unit(philox_word(w, j + 1));
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958647692f * u2);
}

// Element i of a standard Gumbel draw.
__device__ __forceinline__ float philox_gumbel(PhiloxKey key, unsigned long long i) {
    return -logf(-logf(philox_uniform(key, i)));
}

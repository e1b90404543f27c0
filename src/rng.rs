//! Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011), the one
//! random-number generator of ssvae.
//!
//! It is counter-based: the n-th draw is a pure function of (seed, stream, n), so the CUDA kernels in
//! `kernels/philox.cuh` compute exactly the same words in-kernel, in any order, with no state to
//! carry between threads. That is what lets the two backends agree on stochastic ops (ε of the
//! reparameterisation, the Gumbel noise) to rounding, not just in distribution.
//!
//! Layout used everywhere: key = (seed_lo, seed_hi); counter = (block_lo, block_hi, stream, 0).
//! A draw of n uniforms at `RngKey { offset, .. }` uses blocks offset + i/4 and word i % 4; a draw
//! of n normals uses blocks offset + i/2, words 2(i%2) and 2(i%2)+1 (Box–Muller, cosine branch).

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// Where a draw starts: the generator's seed, an independent stream id, and a block offset.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct RngKey {
    pub seed: u64,
    pub stream: u32,
    pub offset: u64,
}

#[inline(always)]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = (a as u64) * (b as u64);
    ((p >> 32) as u32, p as u32)
}

/// The Philox4x32 bijection with 10 rounds.
#[inline]
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = ctr;
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(W0);
            k[1] = k[1].wrapping_add(W1);
        }
        let (hi0, lo0) = mulhilo(M0, c[0]);
        let (hi1, lo1) = mulhilo(M1, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// The four words of block `block` of `key`'s stream.
#[inline]
pub fn block(key: RngKey, block: u64) -> [u32; 4] {
    philox4x32_10(
        [block as u32, (block >> 32) as u32, key.stream, 0],
        [key.seed as u32, (key.seed >> 32) as u32],
    )
}

/// A u32 mapped to the open interval (0, 1): (⌊x/2⁹⌋ + ½)·2⁻²³, exact in f32, never 0 or 1.
#[inline]
pub fn u32_to_unit(x: u32) -> f32 {
    ((x >> 9) as f32 + 0.5) * (1.0 / 8_388_608.0)
}

/// Box–Muller (cosine branch) from two open-interval uniforms.
#[inline]
pub fn box_muller(u1: f32, u2: f32) -> f32 {
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// Element `i` of a U(0,1) draw at `key`.
#[inline]
pub fn uniform_at(key: RngKey, i: u64) -> f32 {
    u32_to_unit(block(key, key.offset + i / 4)[(i % 4) as usize])
}

/// Element `i` of an N(0,1) draw at `key`.
#[inline]
pub fn normal_at(key: RngKey, i: u64) -> f32 {
    let w = block(key, key.offset + i / 2);
    let j = 2 * (i % 2) as usize;
    box_muller(u32_to_unit(w[j]), u32_to_unit(w[j + 1]))
}

/// Element `i` of a standard Gumbel draw at `key`: g = −log(−log u), u from [`uniform_at`].
#[inline]
pub fn gumbel_at(key: RngKey, i: u64) -> f32 {
    -(-uniform_at(key, i).ln()).ln()
}

/// A sequential generator on top of the counter: hands out keys for device draws (reserving block
/// ranges so that no two draws overlap) and host-side numbers for shuffles and initialisation.
#[derive(Clone, Debug)]
pub struct Rng {
    seed: u64,
    stream: u32,
    /// Next unused block.
    next_block: u64,
}

impl Rng {
    /// A generator for (seed, stream), starting at block 0.
    pub fn new(seed: u64, stream: u32) -> Self {
        Rng {
            seed,
            stream,
            next_block: 0,
        }
    }

    /// The generator's position, to save in a checkpoint.
    pub fn state(&self) -> (u64, u32, u64) {
        (self.seed, self.stream, self.next_block)
    }

    /// Rebuild a generator from [`Rng::state`].
    pub fn from_state(seed: u64, stream: u32, next_block: u64) -> Self {
        Rng {
            seed,
            stream,
            next_block,
        }
    }

    /// Reserve the blocks for `n` elements (enough for uniform or normal draws) and return the key.
    pub fn next_key(&mut self, n: usize) -> RngKey {
        let key = RngKey {
            seed: self.seed,
            stream: self.stream,
            offset: self.next_block,
        };
        self.next_block += (n as u64).div_ceil(2).max(1);
        key
    }

    /// Four fresh words.
    pub fn next_block(&mut self) -> [u32; 4] {
        let key = self.next_key(2);
        block(key, key.offset)
    }

    /// One U(0,1) number.
    pub fn uniform(&mut self) -> f32 {
        u32_to_unit(self.next_block()[0])
    }

    /// One N(0,1) number.
    pub fn normal(&mut self) -> f32 {
        let w = self.next_block();
        box_muller(u32_to_unit(w[0]), u32_to_unit(w[1]))
    }

    /// A uniform integer in 0..n (n > 0), without modulo bias worth speaking of (64-bit multiply).
    pub fn below(&mut self, n: usize) -> usize {
        let w = self.next_block();
        let x = ((w[0] as u64) << 32) | w[1] as u64;
        ((x as u128 * n as u128) >> 64) as usize
    }

    /// Fisher–Yates shuffle in place.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }

    /// A Gamma(shape, 1) draw (Marsaglia–Tsang), for Beta(α, α) mixing weights.
    pub fn gamma(&mut self, shape: f32) -> f32 {
        if shape < 1.0 {
            // Boost: Gamma(a) = Gamma(a + 1) · U^{1/a}.
            let u = self.uniform();
            return self.gamma(shape + 1.0) * u.powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = self.uniform();
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }

    /// A Beta(a, b) draw through two Gamma draws.
    pub fn beta(&mut self, a: f32, b: f32) -> f32 {
        let x = self.gamma(a);
        let y = self.gamma(b);
        if x + y > 0.0 {
            x / (x + y)
        } else {
            0.5
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known-answer vectors of Random123's `kat_vectors` for philox4x32_10.
    #[test]
    fn philox_known_answers() {
        assert_eq!(
            philox4x32_10([0, 0, 0, 0], [0, 0]),
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0]
            ),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn unit_interval_is_open() {
        assert!(u32_to_unit(0) > 0.0);
        assert!(u32_to_unit(u32::MAX) < 1.0);
    }

    #[test]
    fn beta_mean() {
        let mut r = Rng::new(7, 0);
        let n = 20_000;
        let m: f32 = (0..n).map(|_| r.beta(2.0, 2.0)).sum::<f32>() / n as f32;
        assert!((m - 0.5).abs() < 0.01, "mean {m}");
        let m: f32 = (0..n).map(|_| r.beta(0.1, 0.1)).sum::<f32>() / n as f32;
        assert!((m - 0.5).abs() < 0.02, "mean {m}");
    }
}

//! The CPU buffer cache (`backend::cpu::pool`) must never change a result: a kernel that takes a
//! cached buffer either re-fills it or writes every element. The gradient-check tests use
//! tensors too small to be cached, so this test runs a conv-VAE-sized forward and backward pass
//! (every buffer ≥ the cache's minimum) three times: on real inputs, then on all-NaN inputs —
//! which leaves NaN-filled buffers of exactly the right lengths in the cache — then on the real
//! inputs again. The third run must equal the first bit for bit and contain no NaN.

use ssvae::backend::cpu::pool;
use ssvae::rng::Rng;
use ssvae::{Device, Result, Tensor};

const N: usize = 64;

/// Inputs: x [N,1,28,28], conv weight [32,1,4,4], linear weight [6272, 48], row bias [48],
/// and the fixed random weights of the outputs.
fn inputs(nan: bool) -> Vec<(Vec<f32>, Vec<usize>)> {
    let shapes: [Vec<usize>; 6] = [
        vec![N, 1, 28, 28],
        vec![32, 1, 4, 4],
        vec![32 * 14 * 14, 48],
        vec![48],
        vec![N * 784],
        vec![N, 48],
    ];
    let mut rng = Rng::new(5, 0);
    shapes
        .into_iter()
        .map(|s| {
            let n: usize = s.iter().product();
            let v = (0..n)
                .map(|_| if nan { f32::NAN } else { 0.1 * rng.normal() })
                .collect();
            (v, s)
        })
        .collect()
}

/// Forward outputs and every gradient, as host vectors.
fn run(nan: bool) -> Result<Vec<Vec<f32>>> {
    let dev = Device::Cpu;
    let vars = inputs(nan)
        .into_iter()
        .map(|(v, s)| Ok(Tensor::from_vec(v, s, dev)?.variable()))
        .collect::<Result<Vec<_>>>()?;
    let (x, w, wl, b, r1, r2) = (&vars[0], &vars[1], &vars[2], &vars[3], &vars[4], &vars[5]);
    // conv → relu → (conv-transpose back to the image, and a dense layer) → softmax family.
    let h = x.conv2d(w, 2, 1)?.relu()?; // [N, 32, 14, 14]
    let back = h.conv_transpose2d(w, 2, 1, 0)?.reshape([N * 784])?; // [N·784]
    let flat = h.reshape([N, 32 * 14 * 14])?;
    let a = flat.matmul(wl)?.add(b)?; // [N, 48], row-broadcast bias
    let cols = flat.transpose(0, 1)?.sum(1)?; // [6272]
    let both = Tensor::concat(&[&flat, &flat.exp()?], 1)?; // [N, 12544]
    let loss = back
        .mul(r1)?
        .sum_all()?
        .add(&a.log_softmax()?.mul(r2)?.sum_all()?)?
        .add(&a.softmax()?.mul(r2)?.sum_all()?)?
        .add(&cols.square()?.sum_all()?)?
        .add(&both.narrow(1, 100, 6000)?.mean_all()?)?;
    let grads = loss.backward()?;
    let mut out = vec![loss.to_vec()?, back.to_vec()?, a.to_vec()?, both.to_vec()?];
    for v in &vars {
        let g = grads
            .get(v)
            .ok_or_else(|| ssvae::Error::invalid("test", "missing gradient"))?;
        out.push(g.to_vec()?);
    }
    Ok(out)
}

#[test]
fn cached_buffers_never_change_results() {
    let want = run(false).unwrap();
    assert!(
        want.iter().flatten().all(|v| v.is_finite()),
        "the reference run is finite"
    );
    let poisoned = run(true).unwrap();
    assert!(
        poisoned[0][0].is_nan(),
        "the NaN run did poison its buffers"
    );
    let hits = pool::stats().hits;
    let got = run(false).unwrap();
    assert!(
        pool::stats().hits > hits,
        "the third run reused cached buffers"
    );
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.len(), w.len());
        let bad = g
            .iter()
            .zip(w)
            .position(|(a, b)| a.to_bits() != b.to_bits());
        assert!(
            bad.is_none(),
            "output {i} differs at {bad:?} after reusing cached buffers"
        );
    }
}

//! `ssvae bench`: a quick, user-facing measurement of the engine on this machine (the
//! criterion benches in `benches/` are the careful, statistical ones):
//!
//! * GEMM GFLOP/s at 1024³ and at the shapes of M2's MLP on MNIST (batch 100 + 100, hidden
//!   500, z 50, 10 classes: the unlabelled half enumerates y, so some products have 1000 rows);
//! * conv2d forward and backward (input and weight gradients) GFLOP/s at the conv
//!   architecture's shapes, batch 64: Conv(1→32, k4, s2, p1) on 28×28, Conv(32→64) on 14×14,
//!   and the transposes ConvT(64→32) on 7×7 and ConvT(32→1) on 14×14;
//! * elementwise and reduction GB/s at 64 Mi elements (bytes read + written);
//! * one M2 training step (forward, backward, Adam) on a batch of 100 labelled + 100
//!   unlabelled examples, in examples per second.
//!
//! Each figure is the median of repeated runs after a warm-up (at least five, more while a
//! time budget lasts). `quick` settles for fewer repetitions (down to one for kernels slower
//! than half a second) and 8 Mi-element arrays.

use crate::backend::Conv2dShape;
use crate::models::{M2Config, Model, StepContext, M2};
use crate::nn::Activation;
use crate::optim::{Adam, AdamConfig};
use crate::rng::Rng;
use crate::{nn, no_grad, Device, Result, Tensor};
use std::time::Instant;

/// One line of the table.
#[derive(Clone, Debug)]
pub struct Measurement {
    /// What was run.
    pub name: String,
    /// Its sizes.
    pub shape: String,
    /// Median seconds per run.
    pub median_s: f64,
    /// Work per second in `unit`.
    pub rate: f64,
    pub unit: &'static str,
}

/// Repetitions: warm-up runs, then at least `min` and at most `max` timed runs, stopping after
/// `budget_s` seconds once `min` are done.
#[derive(Clone, Copy, Debug)]
struct Reps {
    warmup: usize,
    min: usize,
    max: usize,
    budget_s: f64,
}

/// Make sure `t` is computed (device backends may run asynchronously).
fn sync(t: &Tensor) -> Result<()> {
    if t.device() != Device::Cpu && t.elem_count() > 0 {
        t.reshape([t.elem_count()])?.narrow(0, 0, 1)?.to_vec()?;
    }
    Ok(())
}

/// Median seconds of `f`.
fn time(reps: Reps, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    // Warm up; a single warm-up suffices for runs that take longer than the budget.
    let warm = Instant::now();
    for _ in 0..reps.warmup {
        f()?;
        if warm.elapsed().as_secs_f64() > reps.budget_s {
            break;
        }
    }
    let mut times = Vec::with_capacity(reps.max);
    let start = Instant::now();
    while times.len() < reps.max.max(1)
        && (times.len() < reps.min.max(1) || start.elapsed().as_secs_f64() < reps.budget_s)
    {
        let t0 = Instant::now();
        f()?;
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn uniform(shape: &[usize], rng: &mut Rng, device: Device) -> Result<Tensor> {
    let n = shape.iter().product();
    Tensor::rand(shape.to_vec(), rng.next_key(n), device)
}

/// A conv layer of the benchmark: the geometry of the convolution (for a transpose: of the
/// convolution it is the adjoint of) and whether it runs transposed.
struct ConvCase {
    name: &'static str,
    s: Conv2dShape,
    transposed: bool,
}

fn conv_shape(n: usize, c_in: usize, hw: usize, c_out: usize) -> Conv2dShape {
    let (k, stride, padding) = (4, 2, 1);
    let out = (hw + 2 * padding - k) / stride + 1;
    Conv2dShape {
        n,
        c_in,
        h: hw,
        w: hw,
        c_out,
        kh: k,
        kw: k,
        stride,
        padding,
        h_out: out,
        w_out: out,
    }
}

/// Run every benchmark on `device`, calling `each` as each line is measured.
pub fn run(
    device: Device,
    quick: bool,
    mut each: impl FnMut(&Measurement),
) -> Result<Vec<Measurement>> {
    // On the PTX interpreter (ptxemu) the same kernels run 10⁴× slower than on a GPU: one
    // repetition of each, and the largest arrays shrunk, so `--quick` stays a CI-sized check.
    let emulated = matches!(device, Device::Cuda(n) if crate::device::is_emulated(n));
    let reps = if emulated {
        Reps {
            warmup: 0,
            min: 1,
            max: 1,
            budget_s: 0.0,
        }
    } else if quick {
        Reps {
            warmup: 1,
            min: 1,
            max: 5,
            budget_s: 0.5,
        }
    } else {
        Reps {
            warmup: 2,
            min: 5,
            max: 25,
            budget_s: 2.0,
        }
    };
    let mut out = Vec::new();
    let mut push = |m: Measurement| {
        each(&m);
        out.push(m);
    };
    let mut rng = Rng::new(0, 0xBE7C);
    let guard = no_grad();

    // GEMM: C = A·B at 1024³, then x·Wᵀ at M2's layer shapes.
    let gemms: [(&str, usize, usize, usize, bool); 5] = [
        if emulated {
            ("gemm", 256, 256, 256, false)
        } else {
            ("gemm", 1024, 1024, 1024, false)
        },
        ("gemm  x·Wᵀ q(y|x), enc_x", 100, 784, 500, true),
        ("gemm  x·Wᵀ dec_h (×K)", 1000, 60, 500, true),
        ("gemm  x·Wᵀ dec_out (×K)", 1000, 500, 784, true),
        ("gemm  x·Wᵀ enc_mu (×K)", 1000, 500, 50, true),
    ];
    for (name, m, k, n, linear) in gemms {
        let a = uniform(&[m, k], &mut rng, device)?;
        let b = if linear {
            uniform(&[n, k], &mut rng, device)?
        } else {
            uniform(&[k, n], &mut rng, device)?
        };
        let s = time(reps, || {
            let c = if linear {
                a.linear(&b, None)?
            } else {
                a.matmul(&b)?
            };
            sync(&c)
        })?;
        push(Measurement {
            name: name.to_string(),
            shape: format!("{m}×{k}·{k}×{n}"),
            median_s: s,
            rate: 2.0 * (m * n * k) as f64 / s / 1e9,
            unit: "GFLOP/s",
        });
    }

    // Convolutions at the conv architecture's shapes, batch 64.
    let cases = [
        ConvCase {
            name: "conv2d 1→32 k4 s2 p1",
            s: conv_shape(64, 1, 28, 32),
            transposed: false,
        },
        ConvCase {
            name: "conv2d 32→64 k4 s2 p1",
            s: conv_shape(64, 32, 14, 64),
            transposed: false,
        },
        ConvCase {
            name: "conv_t 64→32 k4 s2 p1",
            s: conv_shape(64, 32, 14, 64),
            transposed: true,
        },
        ConvCase {
            name: "conv_t 32→1 k4 s2 p1",
            s: conv_shape(64, 1, 28, 32),
            transposed: true,
        },
    ];
    for c in &cases {
        let s = &c.s;
        let big = uniform(&[s.n, s.c_in, s.h, s.w], &mut rng, device)?;
        let small = uniform(&[s.n, s.c_out, s.h_out, s.w_out], &mut rng, device)?;
        let w = uniform(&[s.c_out, s.c_in, s.kh, s.kw], &mut rng, device)?;
        let flops = 2.0 * (s.n * s.c_out * s.h_out * s.w_out * s.c_in * s.kh * s.kw) as f64;
        // Forward and backward exactly as ops/conv.rs records them.
        let (fwd, bwd, shape) = if c.transposed {
            let fwd = time(reps, || {
                small.storage().conv2d_backward_input(&w.storage(), s)?;
                Ok(())
            })?;
            let bwd = time(reps, || {
                big.storage().conv2d(&w.storage(), s)?;
                big.storage().conv2d_backward_weight(&small.storage(), s)?;
                Ok(())
            })?;
            let shape = format!(
                "{}×{}×{}×{} → {}×{}",
                s.n, s.c_out, s.h_out, s.w_out, s.h, s.w
            );
            (fwd, bwd, shape)
        } else {
            let fwd = time(reps, || {
                big.storage().conv2d(&w.storage(), s)?;
                Ok(())
            })?;
            let bwd = time(reps, || {
                small.storage().conv2d_backward_input(&w.storage(), s)?;
                big.storage().conv2d_backward_weight(&small.storage(), s)?;
                Ok(())
            })?;
            let shape = format!(
                "{}×{}×{}×{} → {}×{}",
                s.n, s.c_in, s.h, s.w, s.h_out, s.w_out
            );
            (fwd, bwd, shape)
        };
        push(Measurement {
            name: format!("{} fwd", c.name),
            shape: shape.clone(),
            median_s: fwd,
            rate: flops / fwd / 1e9,
            unit: "GFLOP/s",
        });
        push(Measurement {
            name: format!("{} bwd", c.name),
            shape,
            median_s: bwd,
            rate: 2.0 * flops / bwd / 1e9,
            unit: "GFLOP/s",
        });
    }

    // Memory-bound kernels.
    let n: usize = if emulated {
        1 << 20
    } else if quick {
        8 << 20
    } else {
        64 << 20
    };
    let a = uniform(&[n], &mut rng, device)?;
    let b = uniform(&[n], &mut rng, device)?;
    let label = format!("{} Mi f32", n >> 20);
    let elementwise: [(&str, f64); 3] = [("add a+b", 12.0), ("exp", 8.0), ("sum (reduce)", 4.0)];
    for (name, bytes) in elementwise {
        let s = time(reps, || {
            let c = match name {
                "add a+b" => a.add(&b)?,
                "exp" => a.exp()?,
                _ => a.sum_all()?,
            };
            sync(&c)
        })?;
        push(Measurement {
            name: name.to_string(),
            shape: label.clone(),
            median_s: s,
            rate: bytes * n as f64 / s / 1e9,
            unit: "GB/s",
        });
    }
    drop((a, b));
    drop(guard);

    // One M2 training step on MNIST-sized data.
    let (d, k, bl, bu) = (784, 10, 100, 100);
    let model = M2::new(
        M2Config {
            x_dim: d,
            classes: k,
            hidden: 500,
            z_dim: 50,
            alpha: 0.1 * 60_000.0 / 100.0,
            labelled_weight: 1.0,
            activation: Activation::Relu,
            fused: true,
        },
        &mut rng,
        device,
    )?;
    let params: Vec<Tensor> = nn::parameters(&model, "")
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    let mut opt = Adam::new(params, AdamConfig::default())?;
    let batch = crate::models::Batch {
        x_lab: Some(uniform(&[bl, d], &mut rng, device)?),
        y_lab: (0..bl as u32).map(|i| i % k as u32).collect(),
        x_unlab: Some(uniform(&[bu, d], &mut rng, device)?),
        rows_lab: None,
        rows_unlab: None,
    };
    let mut train_rng = Rng::new(0, 0x57E9);
    let step_reps = if emulated {
        reps
    } else {
        Reps {
            warmup: 1,
            min: if quick { 1 } else { 5 },
            max: if quick { 3 } else { 20 },
            budget_s: if quick { 0.5 } else { 3.0 },
        }
    };
    let s = time(step_reps, || {
        let mut ctx = StepContext {
            epoch: 1,
            epochs: 1,
            progress: 0.0,
            rng: &mut train_rng,
        };
        let terms = model.loss(&batch, &mut ctx)?;
        let grads = terms.loss.backward()?;
        opt.step(&grads)?;
        sync(&terms.loss)
    })?;
    push(Measurement {
        name: "M2 training step".to_string(),
        shape: format!("{bl}+{bu} × {d}, h500 z50"),
        median_s: s,
        rate: (bl + bu) as f64 / s,
        unit: "ex/s",
    });
    Ok(out)
}

/// The table header.
pub fn header() -> String {
    format!(
        "{:<30} {:<26} {:>10} {:>16}",
        "benchmark", "shape", "median", "rate"
    )
}

/// One measurement as a table line.
pub fn format_line(m: &Measurement) -> String {
    let t = if m.median_s >= 1.0 {
        format!("{:.2} s", m.median_s)
    } else {
        format!("{:.3} ms", m.median_s * 1e3)
    };
    format!(
        "{:<30} {:<26} {:>10} {:>16}",
        m.name,
        m.shape,
        t,
        format!("{:.1} {}", m.rate, m.unit)
    )
}

/// The per-kernel summary of the PTX interpreter's profile CSV (`PTXEMU_PROFILE`: one row per
/// launch, columns as ptxemu's `LaunchProfile::CSV_HEADER`). Counts, never times: lanes per
/// warp instruction (SIMT efficiency), 32-byte sectors per global request and the fraction of
/// them the ideal access pattern would need (coalescing), shared-memory bank conflicts
/// (wavefronts beyond one per request) and barriers.
pub fn profile_table(csv: &str) -> Result<String> {
    use std::collections::BTreeMap;
    const COLUMNS: usize = 12;
    let mut per: BTreeMap<String, [u64; COLUMNS - 2]> = BTreeMap::new();
    for (i, line) in csv.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != COLUMNS {
            return Err(crate::Error::Msg(format!(
                "profile line {}: {} columns, expected {COLUMNS}",
                i + 1,
                f.len()
            )));
        }
        let e = per.entry(f[0].to_string()).or_default();
        e[0] += 1;
        for (k, v) in f[3..].iter().enumerate() {
            e[k + 1] += v.parse::<u64>().map_err(|_| {
                crate::Error::Msg(format!("profile line {}: {v:?} is not a count", i + 1))
            })?;
        }
    }
    let mut s = format!(
        "{:<28} {:>8} {:>14} {:>9} {:>11} {:>10} {:>9} {:>10} {:>10} {:>9}\n",
        "kernel (emulated counts)",
        "launches",
        "lane instr",
        "lanes/wi",
        "gmem req",
        "sect/req",
        "coalesc",
        "smem req",
        "bank confl",
        "barriers"
    );
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    for (k, v) in &per {
        let [launches, wi, li, greq, gsec, gideal, _gbytes, sreq, swave, bars] = *v;
        s += &format!(
            "{:<28} {:>8} {:>14} {:>9.1} {:>11} {:>10.2} {:>8.0}% {:>10} {:>10} {:>9}\n",
            k,
            launches,
            li,
            ratio(li, wi),
            greq,
            ratio(gsec, greq),
            100.0 * ratio(gideal, gsec),
            sreq,
            swave.saturating_sub(sreq),
            bars
        );
    }
    Ok(s)
}

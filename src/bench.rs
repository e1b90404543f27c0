//! `ssvae bench`: a quick, user-facing measurement of the engine on this machine (the
//! criterion benches in `benches/` are the careful, statistical ones):
//!
//! * GEMM GFLOP/s at 1024³ and at the shapes of M2's MLP on MNIST (batch 100 + 100, hidden
//!   500, z 50, 10 classes: the unlabelled half enumerates y, so some products have 1000 rows);
//! * conv2d forward and backward (input and weight gradients) GFLOP/s at the conv
//!   architecture's shapes, batch 64: Conv(1→32, k4, s2, p1) on 28×28, Conv(32→64) on 14×14,
//!   and the transposes ConvT(64→32) on 7×7 and ConvT(32→1) on 14×14;
//! * elementwise and reduction GB/s at 64 Mi elements (bytes read + written);
//! * M2 training steps (forward, backward, Adam) as `ssvae train --model m2` builds them, in
//!   milliseconds per step and examples per second: M2-conv and M2-mlp at 64 labelled + 64
//!   unlabelled examples, the workloads of the PyTorch peer `../shared/peers/torch_m2.py
//!   --bench --arch conv|mlp` (same model, loss, batch and Adam), and M2-mlp at the CLI's
//!   default 100 + 100. `steps_only` runs just these.
//!
//! Each figure is the median of repeated runs after a warm-up (at least five, more while a
//! time budget lasts). `quick` settles for fewer repetitions (down to one for kernels slower
//! than half a second) and 8 Mi-element arrays. Measurements and the interpreter's per-kernel
//! profile serialise to JSON (`ssvae bench --json`) as well as to table lines.

use crate::backend::Conv2dShape;
use crate::models::arch::{default_hidden, default_z_dim};
use crate::models::{self, Arch, Batch, ModelKind, ModelSpec, StepContext};
use crate::optim::{Adam, AdamConfig};
use crate::rng::Rng;
use crate::{nn, no_grad, Device, Result, Tensor};
use std::time::Instant;

/// One line of the table.
#[derive(Clone, Debug, serde::Serialize)]
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
    steps_only: bool,
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
    if !steps_only {
        kernels(device, quick, emulated, reps, &mut push)?;
    }
    for w in &STEP_WORKLOADS {
        // The interpreter runs a conv step's 700-row decoder for many minutes: MLP only there.
        if emulated && w.arch == Arch::Conv {
            continue;
        }
        push(train_step(w, device, quick, emulated, reps)?);
    }
    Ok(out)
}

/// The kernel lines of the table: GEMM, convolutions, memory-bound kernels.
fn kernels(
    device: Device,
    quick: bool,
    emulated: bool,
    reps: Reps,
    push: &mut impl FnMut(Measurement),
) -> Result<()> {
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

    Ok(())
}

/// A training-step workload: the model `ssvae train --model m2 --arch ARCH` builds, on a batch
/// of `labelled` + `unlabelled` MNIST-sized examples.
#[derive(Clone, Copy, Debug)]
pub struct StepWorkload {
    pub name: &'static str,
    pub arch: Arch,
    pub labelled: usize,
    pub unlabelled: usize,
}

/// The training steps `bench` times: the two workloads of the PyTorch peer
/// (`../shared/peers/torch_m2.py --bench --arch conv|mlp`, batch 64 + 64, the same model, loss
/// and optimiser) and the CLI's default MLP batch of 100 + 100.
pub const STEP_WORKLOADS: [StepWorkload; 3] = [
    StepWorkload {
        name: "M2-conv training step",
        arch: Arch::Conv,
        labelled: 64,
        unlabelled: 64,
    },
    StepWorkload {
        name: "M2-mlp training step",
        arch: Arch::Mlp,
        labelled: 64,
        unlabelled: 64,
    },
    StepWorkload {
        name: "M2-mlp training step",
        arch: Arch::Mlp,
        labelled: 100,
        unlabelled: 100,
    },
];

/// Median time of one training step (forward, backward, Adam) of workload `w`: the M2 that
/// `ssvae train` builds for its architecture (MNIST's 1×28×28 input, 10 classes, the default
/// hidden width and latent size, fused ELBO), on a fixed batch of uniform random images.
fn train_step(
    w: &StepWorkload,
    device: Device,
    quick: bool,
    emulated: bool,
    reps: Reps,
) -> Result<Measurement> {
    let (input, classes) = ((1, 28, 28), 10);
    let d = input.0 * input.1 * input.2;
    let spec = ModelSpec {
        kind: ModelKind::M2,
        arch: w.arch,
        input,
        classes,
        hidden: default_hidden(w.arch),
        z_dim: default_z_dim(w.arch),
        alpha: None,
        n_train: 60_000,
        n_labelled: 100,
        fused: true,
        freeze_m1_after: None,
        align: false,
        drop_inactive_z1: false,
        labelled_bound_weight: None,
        a_samples: None,
    };
    let mut rng = Rng::new(0, 0xBE7C);
    let model = models::build(&spec, &mut rng, device)?;
    let params: Vec<Tensor> = nn::parameters(model.as_ref(), "")
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    let mut opt = Adam::new(params, AdamConfig::default())?;
    let (bl, bu) = (w.labelled, w.unlabelled);
    let batch = Batch {
        x_lab: Some(uniform(&[bl, d], &mut rng, device)?),
        y_lab: (0..bl as u32).map(|i| i % classes as u32).collect(),
        x_unlab: Some(uniform(&[bu, d], &mut rng, device)?),
        rows_lab: None,
        rows_unlab: None,
    };
    let mut train_rng = Rng::new(0, 0x57E9);
    let step_reps = if emulated {
        reps
    } else {
        Reps {
            warmup: if quick { 1 } else { 3 },
            min: if quick { 1 } else { 7 },
            max: if quick { 3 } else { 30 },
            budget_s: if quick { 0.5 } else { 4.0 },
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
    Ok(Measurement {
        name: w.name.to_string(),
        shape: format!(
            "{bl}+{bu} × {d}, {} h{} z{}",
            w.arch.as_str(),
            spec.hidden,
            spec.z_dim
        ),
        median_s: s,
        rate: (bl + bu) as f64 / s,
        unit: "ex/s",
    })
}

/// The table header.
pub fn header() -> String {
    format!(
        "{:<30} {:<32} {:>11} {:>16}",
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
        "{:<30} {:<32} {:>11} {:>16}",
        m.name,
        m.shape,
        t,
        format!("{:.1} {}", m.rate, m.unit)
    )
}

/// One kernel's summed counts in the PTX interpreter's profile ([`profile_summary`]).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct KernelProfile {
    pub kernel: String,
    pub launches: u64,
    /// Warp instructions issued, and the lanes active in them.
    pub warp_instructions: u64,
    pub lane_instructions: u64,
    /// Global-memory requests, the 32-byte sectors they touched, and the sectors the ideal
    /// (fully coalesced) access pattern would have needed.
    pub global_requests: u64,
    pub global_sectors: u64,
    pub global_ideal_sectors: u64,
    /// Bytes the global requests moved.
    pub global_bytes: u64,
    /// Shared-memory requests and the wavefronts they took (one per request without bank
    /// conflicts).
    pub shared_requests: u64,
    pub shared_wavefronts: u64,
    pub barriers: u64,
}

/// The per-kernel sums of the PTX interpreter's profile CSV (`PTXEMU_PROFILE`: one row per
/// launch, columns as ptxemu's `LaunchProfile::CSV_HEADER`), by kernel name.
pub fn profile_summary(csv: &str) -> Result<Vec<KernelProfile>> {
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
    Ok(per
        .into_iter()
        .map(|(kernel, v)| {
            let [launches, wi, li, greq, gsec, gideal, gbytes, sreq, swave, bars] = v;
            KernelProfile {
                kernel,
                launches,
                warp_instructions: wi,
                lane_instructions: li,
                global_requests: greq,
                global_sectors: gsec,
                global_ideal_sectors: gideal,
                global_bytes: gbytes,
                shared_requests: sreq,
                shared_wavefronts: swave,
                barriers: bars,
            }
        })
        .collect())
}

/// The per-kernel profile as a table. Counts, never times: lanes per warp instruction (SIMT
/// efficiency), 32-byte sectors per global request and the fraction of them the ideal access
/// pattern would need (coalescing), shared-memory bank conflicts (wavefronts beyond one per
/// request) and barriers.
pub fn profile_table(kernels: &[KernelProfile]) -> String {
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
    for k in kernels {
        s += &format!(
            "{:<28} {:>8} {:>14} {:>9.1} {:>11} {:>10.2} {:>8.0}% {:>10} {:>10} {:>9}\n",
            k.kernel,
            k.launches,
            k.lane_instructions,
            ratio(k.lane_instructions, k.warp_instructions),
            k.global_requests,
            ratio(k.global_sectors, k.global_requests),
            100.0 * ratio(k.global_ideal_sectors, k.global_sectors),
            k.shared_requests,
            k.shared_wavefronts.saturating_sub(k.shared_requests),
            k.barriers
        );
    }
    s
}

//! Planted bugs: real kernels of `kernels/` with one deliberate mistake each, compiled by NVRTC
//! and run on the interpreter, which must fail and point at the mistake.
//! - an off-by-one loop bound → an out-of-bounds fault naming the kernel, thread, PTX line and
//!   the `.cu` line, and how far past the end of which allocation;
//! - a missing `__syncthreads()` → a shared-memory race naming both threads;
//! - a wrong shuffle offset → wrong numbers, which the CPU parity comparison catches;
//! - code that relies on warp-synchronous execution (no `__syncwarp()`) → a race, while the
//!   same code with `__syncwarp()` passes.
//!
//! Without libnvrtc the tests print why and pass, unless `SSVAE_REQUIRE_NVRTC=1` (CI).

use ptxemu::{EmuError, FaultKind, LaunchConfig, Machine};
use ssvae::backend::cuda::runtime::{compile_program, default_options, nvrtc_available, HEADERS};

fn nvrtc_or_skip() -> bool {
    if nvrtc_available() {
        return true;
    }
    assert_ne!(
        std::env::var("SSVAE_REQUIRE_NVRTC").as_deref(),
        Ok("1"),
        "SSVAE_REQUIRE_NVRTC=1 but libnvrtc was not found"
    );
    println!("skipped: libnvrtc not found by the dynamic loader");
    false
}

fn kernel_source(file: &str) -> String {
    std::fs::read_to_string(format!("{}/../kernels/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Compile `source` (as file `name`) with the runtime's options and `headers`, and load it.
fn load(m: &mut Machine, name: &str, source: &str, headers: &[(&str, &str)]) -> usize {
    let c = compile_program(source, name, headers, &default_options("sm_90"))
        .unwrap_or_else(|e| panic!("{e}"));
    m.load_module(c.ptx.as_bytes()).unwrap()
}

/// `source` with `from` replaced by `to` (which must occur exactly once).
fn plant(source: &str, from: &str, to: &str) -> String {
    assert_eq!(source.matches(from).count(), 1, "{from:?} must occur once");
    source.replacen(from, to, 1)
}

fn upload(m: &mut Machine, v: &[f32]) -> u64 {
    let p = m.mem.alloc(v.len() * 4).unwrap();
    m.mem.write(p, bytemuck_f32(v)).unwrap();
    p
}

fn bytemuck_f32(v: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding and any byte pattern is a valid u8.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, v.len() * 4) }
}

fn download(m: &Machine, p: u64, n: usize) -> Vec<f32> {
    let mut b = vec![0u8; n * 4];
    m.mem.read(p, &mut b).unwrap();
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn fault(e: EmuError) -> ptxemu::Fault {
    match e {
        EmuError::Fault(f) => *f,
        e => panic!("expected a kernel fault, got {e}"),
    }
}

/// reduce_rows_f32 (one warp per row) over `rows × len`, returning the row sums.
fn reduce_rows(
    m: &mut Machine,
    module: usize,
    x: &[f32],
    rows: u32,
    len: u32,
) -> Result<Vec<f32>, EmuError> {
    let k = m.function(module, "reduce_rows_f32").unwrap();
    let xp = upload(m, x);
    let out = m.mem.alloc(rows as usize * 4).unwrap();
    let cfg = LaunchConfig {
        grid: [rows.div_ceil(4), 1, 1],
        block: [32, 4, 1],
        shared_bytes: 0,
    };
    let op = 0i32;
    m.launch(
        k,
        &cfg,
        &[
            &xp.to_le_bytes(),
            &out.to_le_bytes(),
            &rows.to_le_bytes(),
            &len.to_le_bytes(),
            &op.to_le_bytes(),
        ],
    )?;
    Ok(download(m, out, rows as usize))
}

fn data(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 8.0)
        .collect()
}

#[test]
fn the_unchanged_kernel_passes() {
    if !nvrtc_or_skip() {
        return;
    }
    let mut m = Machine::new();
    let module = load(&mut m, "reduce.cu", &kernel_source("reduce.cu"), HEADERS);
    let x = data(6 * 100);
    let got = reduce_rows(&mut m, module, &x, 6, 100).unwrap();
    for (r, g) in got.iter().enumerate() {
        let want: f32 = x[r * 100..(r + 1) * 100].iter().sum();
        assert!(
            (g - want).abs() <= 1e-4 * want.abs().max(1.0),
            "row {r}: {g} vs {want}"
        );
    }
}

#[test]
fn an_off_by_one_bound_is_an_out_of_bounds_fault() {
    if !nvrtc_or_skip() {
        return;
    }
    let src = plant(
        &kernel_source("reduce.cu"),
        "j < len; j += blockDim.x",
        "j <= len; j += blockDim.x",
    );
    let mut m = Machine::new();
    let module = load(&mut m, "reduce.cu", &src, HEADERS);
    let f = fault(reduce_rows(&mut m, module, &data(3 * 64), 3, 64).unwrap_err());
    println!("{f}");
    assert_eq!(f.kind, FaultKind::OutOfBounds);
    assert_eq!(f.kernel, "reduce_rows_f32");
    // Row 2 (the last) reads x[3 * 64], just past the end; its warp is threadIdx.y = 2.
    assert_eq!(f.thread, [0, 2, 0]);
    assert!(
        f.detail.contains("0 bytes past the end of allocation"),
        "{}",
        f.detail
    );
    assert!(
        f.source.as_deref().unwrap_or("").starts_with("reduce.cu:"),
        "{:?}",
        f.source
    );
    assert!(f.instruction.starts_with("ld.global"), "{}", f.instruction);
}

#[test]
fn a_missing_syncthreads_is_a_shared_memory_race() {
    if !nvrtc_or_skip() {
        return;
    }
    let src = plant(
        &kernel_source("reduce.cu"),
        "part[threadIdx.y][threadIdx.x] = acc;\n        __syncthreads();",
        "part[threadIdx.y][threadIdx.x] = acc;",
    );
    let mut m = Machine::new();
    let module = load(&mut m, "reduce.cu", &src, HEADERS);
    let k = m.function(module, "reduce_cols_f32").unwrap();
    let (outer, len, inner) = (2u32, 16u32, 40u32);
    let x = upload(&mut m, &data((outer * len * inner) as usize));
    let out = m.mem.alloc((outer * inner) as usize * 4).unwrap();
    let cfg = LaunchConfig {
        grid: [inner.div_ceil(32), outer, 1],
        block: [32, 8, 1],
        shared_bytes: 0,
    };
    let op = 0i32;
    let e = m
        .launch(
            k,
            &cfg,
            &[
                &x.to_le_bytes(),
                &out.to_le_bytes(),
                &outer.to_le_bytes(),
                &len.to_le_bytes(),
                &inner.to_le_bytes(),
                &op.to_le_bytes(),
            ],
        )
        .unwrap_err();
    let f = fault(e);
    println!("{f}");
    // Warp 0 runs first and reads part[4][x] before warp 4 wrote it: never written yet (had it
    // been written by then, the same read would be a race; both name the missing barrier).
    assert!(
        matches!(f.kind, FaultKind::UninitialisedRead | FaultKind::SharedRace),
        "{f}"
    );
    assert_eq!(f.kernel, "reduce_cols_f32");
    assert!(f.detail.contains("missing __syncthreads"), "{}", f.detail);
    assert!(
        f.source.as_deref().unwrap_or("").starts_with("reduce.cu:"),
        "{:?}",
        f.source
    );
}

#[test]
fn a_wrong_shuffle_offset_gives_numbers_the_parity_check_rejects() {
    if !nvrtc_or_skip() {
        return;
    }
    let common = HEADERS.iter().find(|(n, _)| *n == "common.cuh").unwrap().1;
    let bad = plant(
        common,
        "v += __shfl_xor_sync(SSVAE_FULL_MASK, v, o);",
        "v += __shfl_xor_sync(SSVAE_FULL_MASK, v, o / 2);",
    );
    let headers: Vec<(&str, &str)> = HEADERS
        .iter()
        .map(|&(n, s)| {
            if n == "common.cuh" {
                (n, bad.as_str())
            } else {
                (n, s)
            }
        })
        .collect();
    let mut m = Machine::new();
    let module = load(&mut m, "reduce.cu", &kernel_source("reduce.cu"), &headers);
    let x = data(4 * 100);
    let got = reduce_rows(&mut m, module, &x, 4, 100).unwrap();
    let want: Vec<f32> = (0..4)
        .map(|r| x[r * 100..(r + 1) * 100].iter().sum())
        .collect();
    let err = got
        .iter()
        .zip(&want)
        .map(|(g, w)| ((g - w) as f64).powi(2))
        .sum::<f64>()
        .sqrt()
        / want.iter().map(|w| (*w as f64).powi(2)).sum::<f64>().sqrt();
    println!(
        "relative error of the planted kernel: {err:.3e} (the parity bound for reductions is 1e-4)"
    );
    assert!(
        err > 1e-4,
        "the wrong offset went unnoticed: {got:?} vs {want:?}"
    );
}

/// The pre-Volta warp-synchronous reduction through `volatile` shared memory: correct only with
/// a `__syncwarp()` between its steps, whatever a lockstep machine would do.
const WARP_SYNCHRONOUS: &str = r#"
extern "C" __global__ void warp_reduce(const float* in, float* out) {
    __shared__ float s[32];
    volatile float* v = s;
    const unsigned t = threadIdx.x;
    v[t] = in[t];
    SYNC
    for (unsigned o = 16; o > 0; o >>= 1) {
        if (t < o) v[t] += v[t + o];
        SYNC
    }
    if (t == 0) out[0] = v[0];
}
"#;

#[test]
fn relying_on_warp_synchronous_execution_is_caught() {
    if !nvrtc_or_skip() {
        return;
    }
    let input: Vec<f32> = (0..32).map(|i| i as f32).collect();
    for (sync, ok) in [("", false), ("__syncwarp();", true)] {
        let mut m = Machine::new();
        let module = load(
            &mut m,
            "warp_reduce.cu",
            &WARP_SYNCHRONOUS.replace("SYNC", sync),
            &[],
        );
        let k = m.function(module, "warp_reduce").unwrap();
        let inp = upload(&mut m, &input);
        let out = m.mem.alloc(4).unwrap();
        let cfg = LaunchConfig {
            grid: [1, 1, 1],
            block: [32, 1, 1],
            shared_bytes: 0,
        };
        let r = m.launch(k, &cfg, &[&inp.to_le_bytes(), &out.to_le_bytes()]);
        if ok {
            r.unwrap();
            assert_eq!(download(&m, out, 1), vec![496.0]);
        } else {
            let f = fault(r.unwrap_err());
            println!("without __syncwarp: {f}");
            assert_eq!(f.kind, FaultKind::SharedRace);
            assert!(f.detail.contains("with no synchronisation"), "{}", f.detail);
        }
    }
}

//! The interpreter's speed in lane-instructions per second (one lane executing one PTX
//! instruction), on one core, for three kinds of code:
//! - `fma_loop`: converged arithmetic, registers only (the scheduler's best case);
//! - `saxpy`: one global load and store per element (checked accesses dominate);
//! - `warp_reduce`: `shfl.sync.bfly` trees and a `bar.sync` (collectives and their waits).
//!
//! Criterion's throughput is set to the launch's lane-instruction count, so "elem/s" reads as
//! lane-instructions per second. `cargo bench -p ptxemu --bench interpreter`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ptxemu::{LaunchConfig, Machine};

const HEAD: &str = ".version 8.8\n.target sm_90\n.address_size 64\n";

/// out[i] = 32 steps of x = x * a + b, for i < n.
const FMA_LOOP: &str = r#"
.visible .entry fma_loop(.param .u64 p_out, .param .u32 p_n)
{
    .reg .pred %p<3>;
    .reg .f32 %f<4>;
    .reg .b32 %r<8>;
    .reg .b64 %rd<5>;
    ld.param.u64 %rd1, [p_out];
    ld.param.u32 %r1, [p_n];
    mov.u32 %r2, %ctaid.x;
    mov.u32 %r3, %ntid.x;
    mov.u32 %r4, %tid.x;
    mad.lo.s32 %r5, %r2, %r3, %r4;
    setp.ge.u32 %p1, %r5, %r1;
    @%p1 bra $done;
    cvt.rn.f32.u32 %f1, %r5;
    mov.u32 %r6, 0;
$loop:
    fma.rn.f32 %f1, %f1, 0f3F7FF000, 0f3C000000;
    add.s32 %r6, %r6, 1;
    setp.lt.u32 %p2, %r6, 32;
    @%p2 bra $loop;
    cvta.to.global.u64 %rd2, %rd1;
    mul.wide.u32 %rd3, %r5, 4;
    add.s64 %rd4, %rd2, %rd3;
    st.global.f32 [%rd4], %f1;
$done:
    ret;
}
"#;

/// y[i] = a * x[i] + y[i] over a grid-stride loop.
const SAXPY: &str = r#"
.visible .entry saxpy(.param .u64 p_x, .param .u64 p_y, .param .u32 p_n)
{
    .reg .pred %p<2>;
    .reg .f32 %f<4>;
    .reg .b32 %r<8>;
    .reg .b64 %rd<8>;
    ld.param.u64 %rd1, [p_x];
    ld.param.u64 %rd2, [p_y];
    ld.param.u32 %r1, [p_n];
    cvta.to.global.u64 %rd1, %rd1;
    cvta.to.global.u64 %rd2, %rd2;
    mov.u32 %r2, %ctaid.x;
    mov.u32 %r3, %ntid.x;
    mov.u32 %r4, %tid.x;
    mad.lo.s32 %r5, %r2, %r3, %r4;
    mov.u32 %r6, %nctaid.x;
    mul.lo.s32 %r7, %r6, %r3;
$loop:
    setp.ge.u32 %p1, %r5, %r1;
    @%p1 bra $done;
    mul.wide.u32 %rd3, %r5, 4;
    add.s64 %rd4, %rd1, %rd3;
    add.s64 %rd5, %rd2, %rd3;
    ld.global.nc.f32 %f1, [%rd4];
    ld.global.f32 %f2, [%rd5];
    fma.rn.f32 %f3, %f1, 0f40000000, %f2;
    st.global.f32 [%rd5], %f3;
    add.s32 %r5, %r5, %r7;
    bra.uni $loop;
$done:
    ret;
}
"#;

/// Each warp sums its 32 values with a shuffle tree (a butterfly step for each lane distance
/// 16, 8, 4, 2, 1); warp sums meet in shared memory.
fn warp_reduce() -> String {
    let step = |distance: u32| {
        format!(
            "    shfl.sync.bfly.b32 %r2, %f1, {distance}, 31, -1;
    mov.b32 %f2, %r2;
    add.f32 %f1, %f1, %f2;
"
        )
    };
    let tree: String = [16, 8, 4, 2, 1].map(step).concat();
    format!("{WARP_REDUCE_HEAD}{tree}{WARP_REDUCE_TAIL}")
}

/// [`warp_reduce`] up to its shuffle tree.
const WARP_REDUCE_HEAD: &str = r#"
.visible .entry warp_reduce(.param .u64 p_out)
{
    .reg .pred %p<3>;
    .reg .f32 %f<8>;
    .reg .b32 %r<12>;
    .reg .b64 %rd<6>;
    .shared .align 4 .b8 partial[32];
    mov.u32 %r1, %tid.x;
    cvt.rn.f32.u32 %f1, %r1;
"#;

/// [`warp_reduce`] after its shuffle tree.
const WARP_REDUCE_TAIL: &str = r#"
    and.b32 %r3, %r1, 31;
    shr.u32 %r4, %r1, 5;
    setp.ne.s32 %p1, %r3, 0;
    mov.u64 %rd1, partial;
    mul.wide.u32 %rd2, %r4, 4;
    add.s64 %rd3, %rd1, %rd2;
    @!%p1 st.shared.f32 [%rd3], %f1;
    bar.sync 0;
    setp.ne.s32 %p2, %r1, 0;
    @%p2 bra $done;
    ld.shared.f32 %f3, [partial];
    ld.shared.f32 %f4, [partial+4];
    add.f32 %f3, %f3, %f4;
    ld.param.u64 %rd4, [p_out];
    cvta.to.global.u64 %rd4, %rd4;
    mov.u32 %r5, %ctaid.x;
    mul.wide.u32 %rd5, %r5, 4;
    add.s64 %rd4, %rd4, %rd5;
    st.global.f32 [%rd4], %f3;
$done:
    ret;
}
"#;

fn bench(c: &mut Criterion) {
    let mut m = Machine::new();
    let n: u32 = 1 << 16;
    let out = m.mem.alloc(n as usize * 4).expect("alloc");
    let x = m.mem.alloc(n as usize * 4).expect("alloc");
    m.mem.memset(x, 0, n as usize * 4).expect("memset");
    m.mem.memset(out, 0, n as usize * 4).expect("memset");
    let warp_reduce = warp_reduce();
    let mut g = c.benchmark_group("interpreter");
    g.sample_size(10);
    type Case<'a> = (&'a str, &'a str, LaunchConfig, Vec<Vec<u8>>);
    let cases: Vec<Case> = vec![
        (
            "fma_loop",
            FMA_LOOP,
            LaunchConfig {
                grid: [n / 256, 1, 1],
                block: [256, 1, 1],
                shared_bytes: 0,
            },
            vec![out.to_le_bytes().to_vec(), n.to_le_bytes().to_vec()],
        ),
        (
            "saxpy",
            SAXPY,
            LaunchConfig {
                grid: [64, 1, 1],
                block: [256, 1, 1],
                shared_bytes: 0,
            },
            vec![
                x.to_le_bytes().to_vec(),
                out.to_le_bytes().to_vec(),
                n.to_le_bytes().to_vec(),
            ],
        ),
        (
            "warp_reduce",
            &warp_reduce,
            LaunchConfig {
                grid: [n / 64, 1, 1],
                block: [64, 1, 1],
                shared_bytes: 0,
            },
            vec![out.to_le_bytes().to_vec()],
        ),
    ];
    for (name, body, cfg, params) in cases {
        let module = m
            .load_module(format!("{HEAD}{body}").as_bytes())
            .expect("parse");
        let k = m.function(module, name).expect("kernel");
        let p: Vec<&[u8]> = params.iter().map(|v| v.as_slice()).collect();
        let lanes = m.launch(k, &cfg, &p).expect("launch").lane_instructions;
        g.throughput(Throughput::Elements(lanes));
        g.bench_function(name, |b| b.iter(|| m.launch(k, &cfg, &p).expect("launch")));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! Instruction-level tests of the interpreter: small hand-written PTX kernels, each checking one
//! family of instructions bit for bit against the PTX ISA's definitions (not against what
//! `float.rs` happens to compute).
//!
//! Most tests use [`per_thread`]: a kernel `k(out, in)` whose threads each read their own
//! 16-slot row of `in` (thread `t` at `in + 128·t`, in `%rd4`) and write their own row of `out`
//! (`%rd5`), so one launch checks up to 1024 cases of one instruction. 32-bit values live in the
//! low word of a 64-bit slot. Expected values come from the ISA's text and pseudocode (integer
//! semantics, shift clamping, `bfi`, `shfl.sync`, the `mma` fragment layouts), from IEEE 754
//! (Rust's native `f32`/`f64` operators are correctly rounded to nearest, and directed results
//! are derived from them by comparing against the exact value), or are written out as bits.
//!
//! The rest build their own kernels: the memory spaces, the sanitizer faults (each checking the
//! fault kind, the PTX line of the offending instruction and the words of the detail), launch
//! validation, independent thread scheduling, and the profile counts.

use ptxemu::{
    EmuError, EmuResult, Fault, FaultKind, KernelId, LaunchConfig, LaunchProfile, Machine,
};
use std::cmp::Ordering;
use std::fmt::Write as _;

// ---------------------------------------------------------------------------------------------
// Helpers.

/// 64-bit slots per thread in the input and output rows of [`per_thread`].
const SLOTS: usize = 16;
type Row = [u64; SLOTS];

const HEADER: &str = ".version 8.8\n.target sm_90\n.address_size 64\n";

/// Registers every kernel declares (more than any test uses).
const REGS: &str = "\t.reg .pred \t%p<40>;
\t.reg .b16 \t%rs<32>;
\t.reg .b32 \t%r<128>;
\t.reg .f32 \t%f<64>;
\t.reg .b64 \t%rd<64>;
\t.reg .f64 \t%fd<32>;
";

/// A module: `globals` at module scope, then one kernel `k` with parameters `k_param_0…` of the
/// given types (`".u64"`, or `".align 8 .b8[24]"` for a byte array), the declarations `decls`,
/// the standard registers, `body` and a final `ret`.
fn module(globals: &str, params: &[&str], decls: &str, body: &str) -> String {
    let params = params
        .iter()
        .enumerate()
        .map(|(i, ty)| match ty.split_once('[') {
            Some((t, n)) => format!("\t.param {t} k_param_{i}[{n}"),
            None => format!("\t.param {ty} k_param_{i}"),
        })
        .collect::<Vec<_>>()
        .join(",\n");
    format!(
        "{HEADER}\n{globals}\n.visible .entry k(\n{params}\n)\n{{\n{decls}{REGS}\n{body}\n\tret;\n}}\n"
    )
}

/// `%r1` = `%tid.x`, `%rd4` = this thread's input row, `%rd5` = its output row.
const PROLOGUE: &str = "\tld.param.u64 \t%rd1, [k_param_0];
\tld.param.u64 \t%rd2, [k_param_1];
\tcvta.to.global.u64 \t%rd1, %rd1;
\tcvta.to.global.u64 \t%rd2, %rd2;
\tmov.u32 \t%r1, %tid.x;
\tmul.wide.u32 \t%rd3, %r1, 128;
\tadd.s64 \t%rd4, %rd2, %rd3;
\tadd.s64 \t%rd5, %rd1, %rd3;
";

fn per_thread_ptx(decls: &str, body: &str) -> String {
    module("", &[".u64", ".u64"], decls, &format!("{PROLOGUE}{body}"))
}

fn load(ptx: &str) -> (Machine, KernelId) {
    let mut m = Machine::new();
    let module = m
        .load_module(ptx.as_bytes())
        .unwrap_or_else(|e| panic!("{e}\n{ptx}"));
    let k = m.function(module, "k").unwrap();
    (m, k)
}

fn block(threads: u32) -> LaunchConfig {
    LaunchConfig {
        grid: [1, 1, 1],
        block: [threads, 1, 1],
        shared_bytes: 0,
    }
}

/// A device buffer holding `bytes`.
fn upload(m: &mut Machine, bytes: &[u8]) -> u64 {
    let p = m.mem.alloc(bytes.len()).unwrap();
    m.mem.write(p, bytes).unwrap();
    p
}

fn download(m: &Machine, p: u64, n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    m.mem.read(p, &mut b).unwrap();
    b
}

fn words32(b: &[u8]) -> Vec<u32> {
    b.chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Launch a [`per_thread_ptx`] kernel with one thread per input row.
fn run_rows(ptx: &str, input: &[Row]) -> EmuResult<Vec<Row>> {
    let (mut m, k) = load(ptx);
    let bytes: Vec<u8> = input
        .iter()
        .flatten()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let inp = upload(&mut m, &bytes);
    let out = m.mem.alloc(bytes.len()).unwrap();
    m.mem.memset(out, 0, bytes.len()).unwrap();
    m.launch(
        k,
        &block(input.len() as u32),
        &[&out.to_le_bytes(), &inp.to_le_bytes()],
    )?;
    let b = download(&m, out, bytes.len());
    Ok(b.chunks_exact(SLOTS * 8)
        .map(|r| {
            let mut row = [0u64; SLOTS];
            for (s, c) in row.iter_mut().zip(r.chunks_exact(8)) {
                *s = u64::from_le_bytes(c.try_into().unwrap());
            }
            row
        })
        .collect())
}

/// The PTX type a register of the standard set holds: `%rd` u64, `%rs` u16, `%fd` f64, `%f` f32,
/// `%r` u32.
fn reg_type(reg: &str) -> &'static str {
    [
        ("%rd", "u64"),
        ("%rs", "u16"),
        ("%fd", "f64"),
        ("%f", "f32"),
        ("%r", "u32"),
    ]
    .into_iter()
    .find(|(prefix, _)| reg.starts_with(prefix))
    .map(|(_, ty)| ty)
    .unwrap_or_else(|| panic!("no type for register {reg}"))
}

/// A [`per_thread`] body: input slot `i` loaded into `loads[i]`, then `ops`, then `stores[j]`
/// stored to output slot `j` (each load and store of its register's [`reg_type`]).
fn io_body(loads: &[&str], ops: &str, stores: &[&str]) -> String {
    // `[base]` for slot 0, `[base+8·i]` after, as the compiler writes them.
    let at = |base: &str, i: usize| match i {
        0 => format!("[{base}]"),
        _ => format!("[{base}+{}]", 8 * i),
    };
    let mut s = String::new();
    for (i, reg) in loads.iter().enumerate() {
        let ty = reg_type(reg);
        writeln!(s, "\tld.global.{ty} \t{reg}, {};", at("%rd4", i)).unwrap();
    }
    s.push_str(ops);
    for (j, reg) in stores.iter().enumerate() {
        let ty = reg_type(reg);
        writeln!(s, "\tst.global.{ty} \t{}, {reg};", at("%rd5", j)).unwrap();
    }
    s
}

/// A body for the rows `[a32, b32, a64, b64]` (in `%r10`, `%r11`, `%rd10`, `%rd11`): each of
/// `ops` writes a fresh register (`%r12…` or `%rd12…`, by the width its type ends in) that goes
/// to the next output slot. An op is an opcode, applied to the two operands of its width
/// (`"div.s32"`: `div.s32 %r12, %r10, %r11`), or an opcode and its own operands
/// (`"not.b64 %rd10"`, `"add.s32 %r10, -1"`).
fn pair_ops_body(ops: &[&str]) -> String {
    let (mut lines, mut stores) = (String::new(), Vec::new());
    let (mut used32, mut used64) = (0, 0);
    for op in ops {
        let (opcode, operands) = op.split_once(' ').unwrap_or((op, ""));
        let wide = opcode.ends_with("64");
        let (class, used) = if wide {
            ("%rd", &mut used64)
        } else {
            ("%r", &mut used32)
        };
        let d = format!("{class}{}", 12 + *used);
        *used += 1;
        let operands = match operands {
            "" => format!("{class}10, {class}11"),
            given => given.to_string(),
        };
        writeln!(lines, "\t{opcode} \t{d}, {operands};").unwrap();
        stores.push(d);
    }
    let stores: Vec<&str> = stores.iter().map(String::as_str).collect();
    io_body(&["%r10", "%r11", "%rd10", "%rd11"], &lines, &stores)
}

/// Run `body` once per case (thread t gets `cases[t]` in its input row) and return the rows.
fn per_thread<const N: usize>(body: &str, cases: &[[u64; N]]) -> Vec<Row> {
    let ptx = per_thread_ptx("", body);
    run_rows(&ptx, &rows(cases)).unwrap_or_else(|e| panic!("{e}"))
}

fn rows<const N: usize>(cases: &[[u64; N]]) -> Vec<Row> {
    cases
        .iter()
        .map(|c| {
            let mut r = [0u64; SLOTS];
            r[..N].copy_from_slice(c);
            r
        })
        .collect()
}

/// A 32-bit value in a slot (zero-extended, as a kernel's 32-bit store leaves it).
fn w(x: i64) -> u64 {
    u64::from(x as u32)
}

fn fb(x: f32) -> u64 {
    u64::from(x.to_bits())
}

fn f32_of(slot: u64) -> f32 {
    f32::from_bits(slot as u32)
}

/// Distance in units in the last place between two finite f32 of the same sign.
fn ulps(a: f32, b: f32) -> u64 {
    (i64::from(a.to_bits()) - i64::from(b.to_bits())).unsigned_abs()
}

/// Lines that OR `1 << k` into `%r21` when predicate `preds[k]` is set, then store `%r21` to
/// output slot `slot`.
fn pred_mask_lines(preds: &[&str], slot: usize) -> String {
    let mut s = String::from("\tmov.u32 \t%r21, 0;\n");
    for (k, p) in preds.iter().enumerate() {
        writeln!(s, "\tselp.b32 \t%r20, {}, 0, {p};", 1u32 << k).unwrap();
        s.push_str("\tor.b32 \t%r21, %r21, %r20;\n");
    }
    writeln!(s, "\tst.global.u32 \t[%rd5+{}], %r21;", slot * 8).unwrap();
    s
}

/// The kernel fault of a launch.
fn fault_of<T: std::fmt::Debug>(r: EmuResult<T>) -> Fault {
    match r {
        Err(EmuError::Fault(f)) => *f,
        Err(e) => panic!("expected a kernel fault, got the error {e}"),
        Ok(v) => panic!("expected a kernel fault, the launch succeeded: {v:?}"),
    }
}

/// The 1-based line of the one line of `ptx` that contains `needle`.
fn line_of(ptx: &str, needle: &str) -> u32 {
    let hits: Vec<u32> = ptx
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .map(|(i, _)| i as u32 + 1)
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "`{needle}` must be on exactly one line of\n{ptx}"
    );
    hits[0]
}

/// A small deterministic generator (xorshift64).
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A finite nonzero f32: half of them anywhere in the range (subnormals included), half
    /// within 2^±24 of 1.
    fn f32(&mut self) -> f32 {
        loop {
            let r = self.next_u64();
            let mut bits = r as u32;
            if (r >> 40) & 1 == 0 {
                let exp = 127 - 24 + ((r >> 41) % 49) as u32;
                bits = (bits & 0x807f_ffff) | (exp << 23);
            }
            let x = f32::from_bits(bits);
            if x.is_finite() && x != 0.0 {
                return x;
            }
        }
    }

    /// A normal f64 within 2^±300 of 1.
    fn f64(&mut self) -> f64 {
        let r = self.next_u64();
        let exp = 1023 - 300 + (self.next_u64() % 601);
        f64::from_bits((r & 0x800f_ffff_ffff_ffff) | (exp << 52))
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Integer arithmetic, logic and comparisons.

#[test]
fn add_sub_wrap_at_32_and_64_bits() {
    let body = pair_ops_body(&[
        "add.s32",
        "sub.s32",
        "add.u32",
        "add.s32 %r10, -1",
        "add.s64",
        "sub.s64",
        "sub.u64",
    ]);
    let cases: [[u64; 4]; 6] = [
        [0x7fff_ffff, 1, i64::MAX as u64, 1],
        [0xffff_ffff, 1, u64::MAX, 1],
        [0x8000_0000, 0xffff_ffff, 1 << 63, u64::MAX],
        [0, 1, 0, 1],
        [
            0x1234_5678,
            0x9abc_def0,
            0x0123_4567_89ab_cdef,
            0xfedc_ba98_7654_3210,
        ],
        [0x8000_0000, 1, 1 << 63, 1],
    ];
    let out = per_thread(&body, &cases);
    for (c, o) in cases.iter().zip(&out) {
        let (a, b) = (c[0] as u32, c[1] as u32);
        assert_eq!(o[0], u64::from(a.wrapping_add(b)), "add.s32 {c:x?}");
        assert_eq!(o[1], u64::from(a.wrapping_sub(b)), "sub.s32 {c:x?}");
        assert_eq!(o[2], u64::from(a.wrapping_add(b)), "add.u32 {c:x?}");
        assert_eq!(o[3], u64::from(a.wrapping_sub(1)), "add.s32 -1 {c:x?}");
        assert_eq!(o[4], c[2].wrapping_add(c[3]), "add.s64 {c:x?}");
        assert_eq!(o[5], c[2].wrapping_sub(c[3]), "sub.s64 {c:x?}");
        assert_eq!(o[6], c[2].wrapping_sub(c[3]), "sub.u64 {c:x?}");
    }
    // Spelled out: INT_MAX + 1 wraps to INT_MIN, 0 - 1 to all ones.
    assert_eq!(out[0][0], 0x8000_0000);
    assert_eq!(out[0][4], 1 << 63);
    assert_eq!(out[3][1], 0xffff_ffff);
    assert_eq!(out[3][5], u64::MAX);
}

#[test]
fn mul_lo_hi_wide_and_mad_lo_signed_and_unsigned() {
    let body = io_body(
        &["%r10", "%r11", "%r12", "%rd12", "%rd13"],
        "\tmul.lo.s32 \t%r13, %r10, %r11;
\tmul.hi.s32 \t%r14, %r10, %r11;
\tmul.hi.u32 \t%r15, %r10, %r11;
\tmul.wide.s32 \t%rd10, %r10, %r11;
\tmul.wide.u32 \t%rd11, %r10, %r11;
\tmad.lo.s32 \t%r16, %r10, %r11, %r12;
\tmul.lo.s64 \t%rd14, %rd12, %rd13;
\tmul.hi.s64 \t%rd15, %rd12, %rd13;
\tmul.hi.u64 \t%rd16, %rd12, %rd13;
\tmul.lo.u32 \t%r17, %r10, 7;
\tmad.wide.u32 \t%rd17, %r10, %r11, %rd12;
\tmad.wide.s32 \t%rd18, %r10, %r11, %rd12;
",
        &[
            "%r13", "%r14", "%r15", "%rd10", "%rd11", "%r16", "%rd14", "%rd15", "%rd16", "%r17",
            "%rd17", "%rd18",
        ],
    );
    let cases: [(i32, i32, i32, i64, i64); 7] = [
        (-3, 5, 7, -3, 5),
        (i32::MIN, 2, 0, i64::MIN, 2),
        (-1, -1, 1, -1, -1),
        (
            123_456_789,
            -987_654_321,
            -1,
            0x0123_4567_89ab_cdef,
            -0x0fed_cba9_8765_4321,
        ),
        (i32::MAX, i32::MAX, i32::MAX, i64::MAX, i64::MAX),
        (0, -1, 5, 0, -1),
        (-46_341, 46_341, 100, i64::MIN, -1),
    ];
    let input: Vec<[u64; 5]> = cases
        .iter()
        .map(|&(a, b, c, a64, b64)| {
            [
                w(a.into()),
                w(b.into()),
                w(c.into()),
                a64 as u64,
                b64 as u64,
            ]
        })
        .collect();
    let out = per_thread(&body, &input);
    for (&(a, b, c, a64, b64), o) in cases.iter().zip(&out) {
        let sp = i64::from(a) * i64::from(b);
        let up = u64::from(a as u32) * u64::from(b as u32);
        let what = format!("a={a} b={b} c={c} a64={a64} b64={b64}");
        assert_eq!(
            o[0],
            u64::from((a as u32).wrapping_mul(b as u32)),
            "mul.lo.s32 {what}"
        );
        assert_eq!(o[1], u64::from((sp >> 32) as u32), "mul.hi.s32 {what}");
        assert_eq!(o[2], up >> 32, "mul.hi.u32 {what}");
        assert_eq!(o[3], sp as u64, "mul.wide.s32 {what}");
        assert_eq!(o[4], up, "mul.wide.u32 {what}");
        assert_eq!(
            o[5],
            u64::from((a as u32).wrapping_mul(b as u32).wrapping_add(c as u32)),
            "mad.lo.s32 {what}"
        );
        assert_eq!(o[6], a64.wrapping_mul(b64) as u64, "mul.lo.s64 {what}");
        let s128 = i128::from(a64) * i128::from(b64);
        assert_eq!(o[7], (s128 >> 64) as u64, "mul.hi.s64 {what}");
        let u128_ = u128::from(a64 as u64) * u128::from(b64 as u64);
        assert_eq!(o[8], (u128_ >> 64) as u64, "mul.hi.u64 {what}");
        assert_eq!(
            o[9],
            u64::from((a as u32).wrapping_mul(7)),
            "mul.lo.u32 imm {what}"
        );
        assert_eq!(o[10], up.wrapping_add(a64 as u64), "mad.wide.u32 {what}");
        assert_eq!(
            o[11],
            (sp as u64).wrapping_add(a64 as u64),
            "mad.wide.s32 {what}"
        );
    }
    // Spelled out: -3 × 5 = -15 (high word all ones), 0xffffffff² as unsigned.
    assert_eq!(out[0][1], 0xffff_ffff);
    assert_eq!(out[0][3], (-15i64) as u64);
    assert_eq!(out[2][2], 0xffff_fffe);
    assert_eq!(out[2][4], 0xffff_fffe_0000_0001);
    assert_eq!(out[2][3], 1);
}

#[test]
fn div_rem_truncate_toward_zero() {
    let body = pair_ops_body(&[
        "div.s32", "rem.s32", "div.u32", "rem.u32", "div.s64", "rem.s64", "div.u64", "rem.u64",
    ]);
    let cases: [(i32, i32, i64, i64); 8] = [
        (7, 2, 7, 2),
        (-7, 2, -7, 2),
        (7, -2, 7, -2),
        (-7, -2, -7, -2),
        (i32::MIN, 3, i64::MIN, 3),
        (-1, 7, -1, 7),
        (i32::MAX, -i32::MAX, -0x0123_4567_89ab_cdef, 0x1_0000),
        (100, 7, 1 << 40, -(1 << 20) - 1),
    ];
    let input: Vec<[u64; 4]> = cases
        .iter()
        .map(|&(a, b, a64, b64)| [w(a.into()), w(b.into()), a64 as u64, b64 as u64])
        .collect();
    let out = per_thread(&body, &input);
    for (&(a, b, a64, b64), o) in cases.iter().zip(&out) {
        let what = format!("{a} / {b}, {a64} / {b64}");
        assert_eq!(o[0], w((a / b).into()), "div.s32 {what}");
        assert_eq!(o[1], w((a % b).into()), "rem.s32 {what}");
        assert_eq!(o[2], u64::from(a as u32 / b as u32), "div.u32 {what}");
        assert_eq!(o[3], u64::from(a as u32 % b as u32), "rem.u32 {what}");
        assert_eq!(o[4], (a64 / b64) as u64, "div.s64 {what}");
        assert_eq!(o[5], (a64 % b64) as u64, "rem.s64 {what}");
        assert_eq!(o[6], a64 as u64 / b64 as u64, "div.u64 {what}");
        assert_eq!(o[7], a64 as u64 % b64 as u64, "rem.u64 {what}");
    }
    // Spelled out: -7 / 2 = -3 rem -1; 7 / -2 = -3 rem 1; -7 / -2 = 3 rem -1.
    assert_eq!((out[1][0], out[1][1]), (w(-3), w(-1)));
    assert_eq!((out[2][0], out[2][1]), (w(-3), 1));
    assert_eq!((out[3][0], out[3][1]), (3, w(-1)));
    assert_eq!(out[1][2], u64::from((-7i32) as u32 / 2));
}

const SHIFT_AMOUNTS: [u32; 9] = [0, 1, 31, 32, 33, 63, 64, 65, 0xffff_ffff];

/// Every shift of two 32-bit and two 64-bit values by each of [`SHIFT_AMOUNTS`]: the cases
/// `[a32, n, a64]` and the rows (shl.b32, shr.u32, shr.s32, shr.b32, shl.b64, shr.u64,
/// shr.s64).
fn shifts() -> (Vec<[u64; 3]>, Vec<Row>) {
    let body = io_body(
        &["%r10", "%r11", "%rd10"],
        "\tshl.b32 \t%r12, %r10, %r11;
\tshr.u32 \t%r13, %r10, %r11;
\tshr.s32 \t%r14, %r10, %r11;
\tshr.b32 \t%r15, %r10, %r11;
\tshl.b64 \t%rd11, %rd10, %r11;
\tshr.u64 \t%rd12, %rd10, %r11;
\tshr.s64 \t%rd13, %rd10, %r11;
",
        &["%r12", "%r13", "%r14", "%r15", "%rd11", "%rd12", "%rd13"],
    );
    let values: [(u32, u64); 2] = [
        (0x8000_0001, 0x8000_0000_0000_0001),
        (0x7fff_fffe, 0x7fff_ffff_ffff_fffe),
    ];
    let mut cases = Vec::new();
    for &(a, a64) in &values {
        for &n in &SHIFT_AMOUNTS {
            cases.push([u64::from(a), u64::from(n), a64]);
        }
    }
    let out = per_thread(&body, &cases);
    (cases, out)
}

#[test]
fn shl_and_shr_s_clamp_amounts_at_the_register_width() {
    let (cases, out) = shifts();
    for (c, o) in cases.iter().zip(&out) {
        let (a, n, a64) = (c[0] as u32, c[1] as u32, c[2]);
        // ISA: "Shift amounts greater than the register width N are clamped to N."
        let shl32 = if n >= 32 { 0 } else { a << n };
        let sar32 = ((a as i32) >> n.min(31)) as u32;
        let shl64 = if n >= 64 { 0 } else { a64 << n };
        let sar64 = ((a64 as i64) >> n.min(63)) as u64;
        let what = format!("a={a:#x} a64={a64:#x} n={n}");
        assert_eq!(o[0], u64::from(shl32), "shl.b32 {what}");
        assert_eq!(o[2], u64::from(sar32), "shr.s32 {what}");
        assert_eq!(o[4], shl64, "shl.b64 {what}");
        assert_eq!(o[6], sar64, "shr.s64 {what}");
        // Logical right shifts by less than the width (the rest: the next test).
        if n < 32 {
            assert_eq!(o[1], u64::from(a >> n), "shr.u32 {what}");
            assert_eq!(o[3], u64::from(a >> n), "shr.b32 {what}");
        }
        if n < 64 {
            assert_eq!(o[5], a64 >> n, "shr.u64 {what}");
        }
    }
    // Spelled out for 0x80000001: by 32, 33 and 0xffffffff shl gives 0, shr.s all ones.
    for i in [3, 4, 8] {
        assert_eq!(
            (out[i][0], out[i][2]),
            (0, 0xffff_ffff),
            "n={}",
            SHIFT_AMOUNTS[i]
        );
    }
    assert_eq!(
        (out[2][0], out[2][1], out[2][2]),
        (0x8000_0000, 1, 0xffff_ffff)
    );
    assert_eq!(
        (out[0][0], out[0][1], out[0][2]),
        (0x8000_0001, 0x8000_0001, 0x8000_0001)
    );
    assert_eq!((out[6][4], out[6][6]), (0, u64::MAX));
}

/// Was a bug (fixed in exec.rs, `IntOp::Shr`): unsigned amounts were clamped to width - 1.
#[test]
fn shr_u_by_the_register_width_or_more_gives_zero() {
    let (cases, out) = shifts();
    for (c, o) in cases.iter().zip(&out) {
        let (a, n, a64) = (c[0] as u32, c[1] as u32, c[2]);
        let shr32 = if n >= 32 { 0 } else { a >> n };
        let shr64 = if n >= 64 { 0 } else { a64 >> n };
        let what = format!("a={a:#x} a64={a64:#x} n={n}");
        assert_eq!(o[1], u64::from(shr32), "shr.u32 {what}");
        assert_eq!(o[3], u64::from(shr32), "shr.b32 {what}");
        assert_eq!(o[5], shr64, "shr.u64 {what}");
    }
}

/// `bfi` by the ISA's pseudocode, bit by bit.
fn bfi_reference(a: u64, b: u64, c: u32, d: u32, bits: u32) -> u64 {
    let msb = bits - 1;
    let pos = c & 0xff;
    let len = d & 0xff;
    let mut f = b;
    let mut i = 0;
    while i < len && pos + i <= msb {
        let bit = (a >> i) & 1;
        f = (f & !(1u64 << (pos + i))) | (bit << (pos + i));
        i += 1;
    }
    f
}

#[test]
fn bfi_inserts_fields_with_isa_edge_cases() {
    let body = io_body(
        &["%rd10", "%rd11", "%r10", "%r11"],
        "\tbfi.b64 \t%rd12, %rd10, %rd11, %r10, %r11;
\tcvt.u32.u64 \t%r12, %rd10;
\tcvt.u32.u64 \t%r13, %rd11;
\tbfi.b32 \t%r14, %r12, %r13, %r10, %r11;
",
        &["%rd12", "%r14"],
    );
    let a = 0x0123_4567_89ab_cdefu64;
    let b = 0xaaaa_5555_ffff_0000u64;
    // (pos, len): whole width, len 0, inside, pos+len > width, last bit, pos = width, pos
    // beyond, len 255, pos and len above 255 (only their low 8 bits count).
    let fields: [(u32, u32); 14] = [
        (0, 64),
        (0, 0),
        (10, 0),
        (8, 16),
        (60, 8),
        (63, 1),
        (64, 4),
        (200, 10),
        (0, 255),
        (0x104, 8),
        (4, 0x108),
        (32, 32),
        (1, 63),
        (28, 8),
    ];
    let cases: Vec<[u64; 4]> = fields
        .iter()
        .map(|&(p, l)| [a, b, u64::from(p), u64::from(l)])
        .collect();
    let out = per_thread(&body, &cases);
    for (&(p, l), o) in fields.iter().zip(&out) {
        assert_eq!(
            o[0],
            bfi_reference(a, b, p, l, 64),
            "bfi.b64 pos={p} len={l}"
        );
        assert_eq!(
            o[1],
            bfi_reference(a & 0xffff_ffff, b & 0xffff_ffff, p, l, 32),
            "bfi.b32 pos={p} len={l}"
        );
    }
    // Spelled out.
    assert_eq!(out[0][0], a, "pos 0 len 64: all of a");
    assert_eq!(out[1][0], b, "len 0: b");
    assert_eq!(out[2][0], b, "len 0: b");
    assert_eq!(out[3][0], 0xaaaa_5555_ffcd_ef00, "pos 8 len 16");
    assert_eq!(
        out[4][0], 0xfaaa_5555_ffff_0000,
        "pos 60 len 8: only 4 bits fit"
    );
    assert_eq!(out[6][0], b, "pos 64: beyond the msb");
    assert_eq!(out[9][0], 0xaaaa_5555_ffff_0ef0, "pos 0x104 is pos 4");
    assert_eq!(out[10][0], 0xaaaa_5555_ffff_0ef0, "len 0x108 is len 8");
    assert_eq!(out[11][1], 0xffff_0000, "bfi.b32 pos 32: b");
}

#[test]
fn min_max_signed_versus_unsigned() {
    let body = pair_ops_body(&[
        "min.s32", "max.s32", "min.u32", "max.u32", "min.s64", "max.s64", "min.u64", "max.u64",
    ]);
    let cases: [(i32, i32, i64, i64); 5] = [
        (-1, 1, -1, 1),
        (i32::MIN, i32::MAX, i64::MIN, i64::MAX),
        (5, 5, 5, 5),
        (0, -2, 0, -2),
        (7, 3, 1 << 40, -(1 << 40)),
    ];
    let input: Vec<[u64; 4]> = cases
        .iter()
        .map(|&(a, b, a64, b64)| [w(a.into()), w(b.into()), a64 as u64, b64 as u64])
        .collect();
    let out = per_thread(&body, &input);
    for (&(a, b, a64, b64), o) in cases.iter().zip(&out) {
        let what = format!("{a} {b} {a64} {b64}");
        assert_eq!(o[0], w(a.min(b).into()), "min.s32 {what}");
        assert_eq!(o[1], w(a.max(b).into()), "max.s32 {what}");
        assert_eq!(o[2], u64::from((a as u32).min(b as u32)), "min.u32 {what}");
        assert_eq!(o[3], u64::from((a as u32).max(b as u32)), "max.u32 {what}");
        assert_eq!(o[4], a64.min(b64) as u64, "min.s64 {what}");
        assert_eq!(o[5], a64.max(b64) as u64, "max.s64 {what}");
        assert_eq!(o[6], (a64 as u64).min(b64 as u64), "min.u64 {what}");
        assert_eq!(o[7], (a64 as u64).max(b64 as u64), "max.u64 {what}");
    }
    // Spelled out: -1 vs 1.
    assert_eq!(&out[0][..4], &[0xffff_ffff, 1, 1, 0xffff_ffff]);
}

#[test]
fn bitwise_and_or_xor_not() {
    let body = pair_ops_body(&[
        "and.b32",
        "or.b32",
        "xor.b32",
        "not.b32 %r10",
        "and.b64",
        "or.b64",
        "xor.b64",
        "not.b64 %rd10",
        "and.b32 %r10, 0xff00ff",
    ]);
    let cases: [[u64; 4]; 3] = [
        [
            0xf0f0_1234,
            0x0ff0_ffff,
            0xf0f0_0000_1234_5678,
            0x00ff_ff00_ffff_0000,
        ],
        [0, 0xffff_ffff, 0, u64::MAX],
        [0x8000_0001, 0x8000_0001, 1 << 63, 1],
    ];
    let out = per_thread(&body, &cases);
    for (c, o) in cases.iter().zip(&out) {
        let (a, b) = (c[0], c[1]);
        assert_eq!(o[0], a & b, "{c:x?}");
        assert_eq!(o[1], a | b, "{c:x?}");
        assert_eq!(o[2], a ^ b, "{c:x?}");
        assert_eq!(o[3], !a & 0xffff_ffff, "{c:x?}");
        assert_eq!(o[4], c[2] & c[3], "{c:x?}");
        assert_eq!(o[5], c[2] | c[3], "{c:x?}");
        assert_eq!(o[6], c[2] ^ c[3], "{c:x?}");
        assert_eq!(o[7], !c[2], "{c:x?}");
        assert_eq!(o[8], a & 0x00ff_00ff, "{c:x?}");
    }
}

#[test]
fn neg_and_abs_of_int_min_wrap() {
    let body = io_body(
        &["%r10", "%rd10"],
        "\tneg.s32 \t%r11, %r10;
\tabs.s32 \t%r12, %r10;
\tneg.s64 \t%rd11, %rd10;
\tabs.s64 \t%rd12, %rd10;
",
        &["%r11", "%r12", "%rd11", "%rd12"],
    );
    let cases: [(i32, i64); 5] = [
        (i32::MIN, i64::MIN),
        (-5, -5),
        (5, 5),
        (0, 0),
        (i32::MAX, i64::MAX),
    ];
    let input: Vec<[u64; 2]> = cases
        .iter()
        .map(|&(a, b)| [w(a.into()), b as u64])
        .collect();
    let out = per_thread(&body, &input);
    for (&(a, b), o) in cases.iter().zip(&out) {
        assert_eq!(o[0], w(a.wrapping_neg().into()), "neg.s32 {a}");
        assert_eq!(o[1], w(a.wrapping_abs().into()), "abs.s32 {a}");
        assert_eq!(o[2], b.wrapping_neg() as u64, "neg.s64 {b}");
        assert_eq!(o[3], b.wrapping_abs() as u64, "abs.s64 {b}");
    }
    // -INT_MIN and |INT_MIN| are INT_MIN (two's complement wrap).
    assert_eq!(&out[0][..4], &[0x8000_0000, 0x8000_0000, 1 << 63, 1 << 63]);
}

#[test]
fn selp_picks_by_predicate() {
    let body = io_body(
        &["%r10", "%r11", "%r12", "%rd10", "%rd11"],
        "\tsetp.ne.s32 \t%p1, %r12, 0;
\tselp.b32 \t%r13, %r10, %r11, %p1;
\tselp.b64 \t%rd12, %rd10, %rd11, %p1;
\tselp.u32 \t%r14, 7, 9, %p1;
\tselp.s32 \t%r15, -1, 1, %p1;
",
        &["%r13", "%rd12", "%r14", "%r15"],
    );
    let cases: [[u64; 5]; 2] = [
        [0x1111, 0x2222, 1, 0x3333_0000_0000, 0x4444_0000_0000],
        [0x1111, 0x2222, 0, 0x3333_0000_0000, 0x4444_0000_0000],
    ];
    let out = per_thread(&body, &cases);
    assert_eq!(&out[0][..4], &[0x1111, 0x3333_0000_0000, 7, 0xffff_ffff]);
    assert_eq!(&out[1][..4], &[0x2222, 0x4444_0000_0000, 9, 1]);
}

fn wide(a: i32) -> i64 {
    i64::from(a) * 0x1_0001
}

type IntCmp = (&'static str, &'static str, fn(i32, i32) -> bool);

#[test]
fn setp_integer_comparisons_signed_unsigned_16_32_64() {
    let forms: [IntCmp; 28] = [
        ("eq.s32", "%r10, %r11", |a, b| a == b),
        ("ne.s32", "%r10, %r11", |a, b| a != b),
        ("lt.s32", "%r10, %r11", |a, b| a < b),
        ("le.s32", "%r10, %r11", |a, b| a <= b),
        ("gt.s32", "%r10, %r11", |a, b| a > b),
        ("ge.s32", "%r10, %r11", |a, b| a >= b),
        ("lt.u32", "%r10, %r11", |a, b| (a as u32) < (b as u32)),
        ("le.u32", "%r10, %r11", |a, b| (a as u32) <= (b as u32)),
        ("gt.u32", "%r10, %r11", |a, b| (a as u32) > (b as u32)),
        ("ge.u32", "%r10, %r11", |a, b| (a as u32) >= (b as u32)),
        ("lo.u32", "%r10, %r11", |a, b| (a as u32) < (b as u32)),
        ("ls.u32", "%r10, %r11", |a, b| (a as u32) <= (b as u32)),
        ("hi.u32", "%r10, %r11", |a, b| (a as u32) > (b as u32)),
        ("hs.u32", "%r10, %r11", |a, b| (a as u32) >= (b as u32)),
        ("eq.b32", "%r10, %r11", |a, b| a == b),
        ("ne.b32", "%r10, %r11", |a, b| a != b),
        ("lt.s16", "%rs10, %rs11", |a, b| (a as i16) < (b as i16)),
        ("ge.s16", "%rs10, %rs11", |a, b| (a as i16) >= (b as i16)),
        ("gt.s16", "%rs10, %rs11", |a, b| (a as i16) > (b as i16)),
        ("lt.u16", "%rs10, %rs11", |a, b| (a as u16) < (b as u16)),
        ("hi.u16", "%rs10, %rs11", |a, b| (a as u16) > (b as u16)),
        ("eq.s16", "%rs10, %rs11", |a, b| (a as u16) == (b as u16)),
        ("lt.s64", "%rd10, %rd11", |a, b| wide(a) < wide(b)),
        ("le.s64", "%rd10, %rd11", |a, b| wide(a) <= wide(b)),
        ("lo.u64", "%rd10, %rd11", |a, b| {
            (wide(a) as u64) < (wide(b) as u64)
        }),
        ("hs.u64", "%rd10, %rd11", |a, b| {
            (wide(a) as u64) >= (wide(b) as u64)
        }),
        ("gt.u64", "%rd10, %rd11", |a, b| {
            (wide(a) as u64) > (wide(b) as u64)
        }),
        ("ne.s64", "%rd10, %rd11", |a, b| wide(a) != wide(b)),
    ];
    let mut body = String::from(
        "\tld.global.u32 \t%r10, [%rd4];
\tld.global.u32 \t%r11, [%rd4+8];
\tld.global.u16 \t%rs10, [%rd4+16];
\tld.global.u16 \t%rs11, [%rd4+24];
\tld.global.u64 \t%rd10, [%rd4+32];
\tld.global.u64 \t%rd11, [%rd4+40];
\tmov.u32 \t%r21, 0;
",
    );
    for (k, (form, ops, _)) in forms.iter().enumerate() {
        writeln!(body, "\tsetp.{form} \t%p1, {ops};").unwrap();
        writeln!(body, "\tselp.b32 \t%r20, {}, 0, %p1;", 1u32 << k).unwrap();
        body.push_str("\tor.b32 \t%r21, %r21, %r20;\n");
    }
    body.push_str("\tst.global.u32 \t[%rd5], %r21;\n");
    let pairs: [(i32, i32); 12] = [
        (1, 2),
        (2, 1),
        (5, 5),
        (-1, 1),
        (1, -1),
        (i32::MIN, i32::MAX),
        (i32::MAX, i32::MIN),
        (-1, -1),
        (0, -1),
        (-2, -1),
        (0x7fff, 0x8000),
        (0x1_8000, 0x1_0001),
    ];
    let cases: Vec<[u64; 6]> = pairs
        .iter()
        .map(|&(a, b)| {
            [
                w(a.into()),
                w(b.into()),
                u64::from(a as u16),
                u64::from(b as u16),
                wide(a) as u64,
                wide(b) as u64,
            ]
        })
        .collect();
    let out = per_thread(&body, &cases);
    for (&(a, b), o) in pairs.iter().zip(&out) {
        for (k, (form, _, f)) in forms.iter().enumerate() {
            assert_eq!(
                ((o[0] >> k) & 1) == 1,
                f(a, b),
                "setp.{form} a={a:#x} b={b:#x}"
            );
        }
    }
    // Spelled out: -1 vs 1 is "less" signed and "higher" unsigned.
    let m = out[3][0];
    assert_eq!((m >> 2) & 1, 1, "lt.s32 -1 < 1");
    assert_eq!((m >> 12) & 1, 1, "hi.u32 0xffffffff > 1");
    assert_eq!((m >> 10) & 1, 0, "lo.u32");
}

#[test]
fn predicate_logic_setp_complement_combine_and_guards() {
    let mut body = String::from(
        "\tld.global.u32 \t%r10, [%rd4];
\tld.global.u32 \t%r11, [%rd4+8];
\tsetp.ne.s32 \t%p1, %r10, 0;
\tsetp.ne.s32 \t%p2, %r11, 0;
\tand.pred \t%p3, %p1, %p2;
\tor.pred \t%p4, %p1, %p2;
\txor.pred \t%p5, %p1, %p2;
\tnot.pred \t%p6, %p1;
\tsetp.lt.s32 \t%p7|%p8, %r10, %r11;
\tsetp.lt.and.s32 \t%p9|%p10, %r10, %r11, %p2;
\tsetp.lt.or.s32 \t%p11, %r10, %r11, !%p2;
\tsetp.lt.xor.s32 \t%p12, %r10, %r11, %p1;
\tmov.u32 \t%r22, 0;
\t@%p1 add.s32 \t%r22, %r22, 1;
\t@!%p2 add.s32 \t%r22, %r22, 2;
\tst.global.u32 \t[%rd5+8], %r22;
",
    );
    body += &pred_mask_lines(
        &[
            "%p3", "%p4", "%p5", "%p6", "%p7", "%p8", "%p9", "%p10", "%p11", "%p12",
        ],
        0,
    );
    let pairs: [(i32, i32); 6] = [(0, 0), (0, 1), (1, 0), (1, 1), (-1, 2), (3, -2)];
    let cases: Vec<[u64; 2]> = pairs
        .iter()
        .map(|&(a, b)| [w(a.into()), w(b.into())])
        .collect();
    let out = per_thread(&body, &cases);
    for (&(a, b), o) in pairs.iter().zip(&out) {
        let (p, q, lt) = (a != 0, b != 0, a < b);
        let want = [
            p && q,
            p || q,
            p ^ q,
            !p,
            lt,
            !lt,
            lt && q,
            !lt && q,
            lt || !q,
            lt ^ p,
        ];
        for (k, &bit) in want.iter().enumerate() {
            assert_eq!(((o[0] >> k) & 1) == 1, bit, "predicate {k} for a={a} b={b}");
        }
        assert_eq!(
            o[1],
            u64::from(p) + 2 * u64::from(!q),
            "guards for a={a} b={b}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 2. cvt.

#[test]
fn cvt_between_integer_widths() {
    let body = io_body(
        &["%r10", "%rd10"],
        "\tcvt.s64.s32 \t%rd11, %r10;
\tcvt.u64.u32 \t%rd12, %r10;
\tcvt.u32.u64 \t%r11, %rd10;
\tcvt.u16.u32 \t%rs10, %r10;
\tcvt.s32.s16 \t%r12, %rs10;
\tcvt.u32.u16 \t%r13, %rs10;
\tcvt.s32.s8 \t%r14, %r10;
\tcvt.u32.u8 \t%r15, %r10;
\tcvt.s64.s16 \t%rd13, %rs10;
",
        &[
            "%rd11", "%rd12", "%r11", "%rs10", "%r12", "%r13", "%r14", "%r15", "%rd13",
        ],
    );
    let cases: [[u64; 2]; 7] = [
        [w(-5), 0x0001_2345_6789],
        [0x0001_2345, 0xffff_ffff_0000_0001],
        [0x8000, u64::MAX],
        [0x1ff, 0x8000_0000],
        [0x17f, 0],
        [0x8000_0000, 0x7fff_ffff_ffff_ffff],
        [0xffff_ffff, 0x1_0000_0000],
    ];
    let out = per_thread(&body, &cases);
    for (c, o) in cases.iter().zip(&out) {
        let a = c[0] as u32;
        assert_eq!(o[0], i64::from(a as i32) as u64, "cvt.s64.s32 {a:#x}");
        assert_eq!(o[1], u64::from(a), "cvt.u64.u32 {a:#x}");
        assert_eq!(o[2], u64::from(c[1] as u32), "cvt.u32.u64 {:#x}", c[1]);
        assert_eq!(o[3], u64::from(a as u16), "cvt.u16.u32 {a:#x}");
        assert_eq!(
            o[4],
            u64::from(i32::from(a as u16 as i16) as u32),
            "cvt.s32.s16 {a:#x}"
        );
        assert_eq!(o[5], u64::from(a as u16), "cvt.u32.u16 {a:#x}");
        assert_eq!(
            o[6],
            u64::from(i32::from(a as u8 as i8) as u32),
            "cvt.s32.s8 {a:#x}"
        );
        assert_eq!(o[7], u64::from(a as u8), "cvt.u32.u8 {a:#x}");
        assert_eq!(
            o[8],
            i64::from(a as u16 as i16) as u64,
            "cvt.s64.s16 {a:#x}"
        );
    }
    // Spelled out.
    assert_eq!(out[0][0], 0xffff_ffff_ffff_fffb, "sign extension of -5");
    assert_eq!(out[0][2], 0x2345_6789, "truncation to 32 bits");
    assert_eq!(out[1][3], 0x2345, "truncation to 16 bits");
    assert_eq!(out[2][4], 0xffff_8000, "s16 0x8000 sign-extended");
    assert_eq!(
        (out[3][6], out[4][6]),
        (0xffff_ffff, 0x7f),
        "s8 of 0x1ff and 0x17f"
    );
}

/// A result rounded in direction `mode` (`'z'`, `'m'` or `'p'`), from `rn`, the correctly
/// rounded nearest value, how `rn` compares with the exact value, and the exact value's sign.
fn directed<F: Copy>(
    rn: F,
    rn_vs_exact: Ordering,
    exact_positive: bool,
    mode: char,
    next_up: fn(F) -> F,
    next_down: fn(F) -> F,
) -> F {
    if rn_vs_exact == Ordering::Equal {
        return rn;
    }
    let (up, down) = if rn_vs_exact == Ordering::Greater {
        (rn, next_down(rn))
    } else {
        (next_up(rn), rn)
    };
    match mode {
        'p' => up,
        'm' => down,
        _ if exact_positive => down,
        _ => up,
    }
}

/// `v` rounded to f32 in a directed mode.
fn int_to_f32_directed(v: i128, mode: char) -> f32 {
    let rn = v as f32;
    directed(
        rn,
        (rn as i128).cmp(&v),
        v > 0,
        mode,
        f32::next_up,
        f32::next_down,
    )
}

/// `v` rounded to f64 in a directed mode.
fn int_to_f64_directed(v: i128, mode: char) -> f64 {
    let rn = v as f64;
    directed(
        rn,
        (rn as i128).cmp(&v),
        v > 0,
        mode,
        f64::next_up,
        f64::next_down,
    )
}

#[test]
fn cvt_integer_to_float_rounds_to_nearest_even_and_directed() {
    let body = io_body(
        &["%r10", "%rd10"],
        "\tcvt.rn.f32.s32 \t%f10, %r10;
\tcvt.rn.f32.u32 \t%f11, %r10;
\tcvt.rz.f32.s32 \t%f12, %r10;
\tcvt.rm.f32.s32 \t%f13, %r10;
\tcvt.rp.f32.u32 \t%f14, %r10;
\tcvt.rn.f64.s64 \t%fd10, %rd10;
\tcvt.rn.f64.u64 \t%fd11, %rd10;
\tcvt.rz.f64.s64 \t%fd12, %rd10;
\tcvt.rn.f32.s64 \t%f15, %rd10;
\tcvt.rn.f64.s32 \t%fd13, %r10;
",
        &[
            "%f10", "%f11", "%f12", "%f13", "%f14", "%fd10", "%fd11", "%fd12", "%f15", "%fd13",
        ],
    );
    let p53 = 1i64 << 53;
    let cases: [(i64, i64); 12] = [
        (16_777_217, p53 + 1),
        (16_777_219, p53 + 3),
        (16_777_218, p53 + 2),
        (-16_777_217, -(p53 + 1)),
        (-16_777_219, i64::MAX),
        (0x7fff_ffff, i64::MIN),
        (i64::from(i32::MIN), -1),
        (0x8000_0081, 0x7fff_ffff_ffff_fe00),
        (0xffff_ffff, 0x4000_0000_0000_0201),
        (0, 0),
        (1, 1),
        (33_554_435, -(p53 + 3)),
    ];
    let input: Vec<[u64; 2]> = cases.iter().map(|&(a, b)| [w(a), b as u64]).collect();
    let out = per_thread(&body, &input);
    for (&(a, b), o) in cases.iter().zip(&out) {
        let s = i128::from(a as u32 as i32);
        let u = i128::from(a as u32);
        let what = format!("a={a:#x} b={b:#x}");
        assert_eq!(o[0], fb(s as f32), "cvt.rn.f32.s32 {what}");
        assert_eq!(o[1], fb(u as f32), "cvt.rn.f32.u32 {what}");
        assert_eq!(
            o[2],
            fb(int_to_f32_directed(s, 'z')),
            "cvt.rz.f32.s32 {what}"
        );
        assert_eq!(
            o[3],
            fb(int_to_f32_directed(s, 'm')),
            "cvt.rm.f32.s32 {what}"
        );
        assert_eq!(
            o[4],
            fb(int_to_f32_directed(u, 'p')),
            "cvt.rp.f32.u32 {what}"
        );
        assert_eq!(o[5], (b as f64).to_bits(), "cvt.rn.f64.s64 {what}");
        assert_eq!(o[6], (b as u64 as f64).to_bits(), "cvt.rn.f64.u64 {what}");
        assert_eq!(
            o[7],
            int_to_f64_directed(i128::from(b), 'z').to_bits(),
            "cvt.rz.f64.s64 {what}"
        );
        assert_eq!(o[8], fb(b as f32), "cvt.rn.f32.s64 {what}");
        assert_eq!(o[9], (s as f64).to_bits(), "cvt.rn.f64.s32 {what}");
    }
    // Spelled out: 2^24+1 and 2^24+3 are ties (to the even 2^24 and 2^24+4).
    assert_eq!(out[0][0], 0x4b80_0000);
    assert_eq!(out[1][0], 0x4b80_0002);
    assert_eq!(out[3][0], 0xcb80_0000);
    assert_eq!(out[0][2], 0x4b80_0000, "rz");
    assert_eq!(out[0][4], 0x4b80_0001, "rp");
    assert_eq!(out[3][3], 0xcb80_0001, "rm of -(2^24+1)");
    assert_eq!(out[5][0], 0x4f00_0000, "INT_MAX → 2^31");
    assert_eq!(out[8][1], 0x4f80_0000, "UINT_MAX → 2^32");
    assert_eq!(out[7][1], 0x4f00_0001, "2^31+129 rounds up to 2^31+256");
    assert_eq!(out[0][5], 0x4340_0000_0000_0000, "2^53+1 → 2^53");
    assert_eq!(out[1][5], 0x4340_0000_0000_0002, "2^53+3 → 2^53+4");
    assert_eq!(out[4][5], 0x43e0_0000_0000_0000, "i64::MAX → 2^63");
    assert_eq!(out[4][7], 0x43df_ffff_ffff_ffff, "rz of i64::MAX");
    assert_eq!(out[6][6], 0x43f0_0000_0000_0000, "u64::MAX → 2^64");
}

/// `x` (not NaN) rounded to f32 in a directed mode.
fn f64_to_f32_directed(x: f64, mode: char) -> f32 {
    let rn = x as f32;
    let rn_vs_exact = f64::from(rn).partial_cmp(&x).expect("x is not NaN");
    directed(rn, rn_vs_exact, x > 0.0, mode, f32::next_up, f32::next_down)
}

#[test]
fn cvt_f32_from_f64_in_every_rounding() {
    let body = io_body(
        &["%fd10"],
        "\tcvt.rn.f32.f64 \t%f10, %fd10;
\tcvt.rz.f32.f64 \t%f11, %fd10;
\tcvt.rm.f32.f64 \t%f12, %fd10;
\tcvt.rp.f32.f64 \t%f13, %fd10;
\tcvt.f64.f32 \t%fd11, %f10;
",
        &["%f10", "%f11", "%f12", "%f13", "%fd11"],
    );
    let p = |e: i32| 2f64.powi(e);
    let max = f64::from(f32::MAX);
    let values = [
        1.0 + p(-24),
        1.0 + p(-24) + p(-50),
        1.0 + 3.0 * p(-24),
        -(1.0 + p(-24)),
        -(1.0 + p(-24) + p(-50)),
        1e300,
        -1e300,
        1e-50,
        -1e-50,
        1.5 * p(-149),
        2.5 * p(-149),
        max * (1.0 + p(-25)),
        max + p(103),
        0.1,
        1.0 / 3.0,
        -0.0,
        f64::INFINITY,
        f64::NAN,
    ];
    let cases: Vec<[u64; 1]> = values.iter().map(|x| [x.to_bits()]).collect();
    let out = per_thread(&body, &cases);
    for (&x, o) in values.iter().zip(&out) {
        if x.is_nan() {
            assert!(f32_of(o[0]).is_nan() && f32_of(o[1]).is_nan(), "cvt of NaN");
            assert!(f64::from_bits(o[4]).is_nan());
            continue;
        }
        assert_eq!(o[0], fb(x as f32), "cvt.rn.f32.f64 {x:e}");
        for (slot, mode) in [(1, 'z'), (2, 'm'), (3, 'p')] {
            assert_eq!(
                o[slot],
                fb(f64_to_f32_directed(x, mode)),
                "cvt.r{mode}.f32.f64 {x:e}"
            );
        }
        assert_eq!(o[4], f64::from(x as f32).to_bits(), "cvt.f64.f32 {x:e}");
    }
    // Spelled out.
    assert_eq!(
        &out[0][..4],
        &[0x3f80_0000, 0x3f80_0000, 0x3f80_0000, 0x3f80_0001],
        "tie"
    );
    assert_eq!(out[1][0], 0x3f80_0001, "above the tie");
    assert_eq!(out[2][0], 0x3f80_0002, "tie to even upward");
    assert_eq!(
        &out[5][..4],
        &[0x7f80_0000, 0x7f7f_ffff, 0x7f7f_ffff, 0x7f80_0000],
        "overflow"
    );
    assert_eq!(
        &out[8][..4],
        &[0x8000_0000, 0x8000_0000, 0x8000_0001, 0x8000_0000],
        "-tiny"
    );
    assert_eq!(out[9][0], 2, "1.5·2^-149 ties to the even 2^-148");
    assert_eq!(out[10][0], 2, "2.5·2^-149 ties to the even 2^-148");
    assert_eq!(out[11][0], 0x7f7f_ffff, "just above MAX rounds to MAX");
    assert_eq!(
        out[12][0], 0x7f80_0000,
        "MAX + half an ulp ties to infinity"
    );
}

#[test]
fn cvt_f32_to_integer_and_integral_roundings_saturation_and_tf32() {
    let body = io_body(
        &["%f10"],
        "\tcvt.rni.s32.f32 \t%r10, %f10;
\tcvt.rzi.s32.f32 \t%r11, %f10;
\tcvt.rmi.s32.f32 \t%r12, %f10;
\tcvt.rpi.s32.f32 \t%r13, %f10;
\tcvt.rni.u32.f32 \t%r14, %f10;
\tcvt.rni.s64.f32 \t%rd10, %f10;
\tcvt.rni.f32.f32 \t%f11, %f10;
\tcvt.rzi.f32.f32 \t%f12, %f10;
\tcvt.sat.f32.f32 \t%f13, %f10;
\tcvt.rna.tf32.f32 \t%r15, %f10;
",
        &[
            "%r10", "%r11", "%r12", "%r13", "%r14", "%rd10", "%f11", "%f12", "%f13", "%r15",
        ],
    );
    let values: Vec<f32> = [
        0.5f32,
        1.5,
        2.5,
        -0.5,
        -1.5,
        -2.5,
        f32::from_bits(0x3eff_ffff),
        2.7,
        -2.7,
        -2.2,
        2.2,
        3e9,
        -3e9,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        8_388_609.0,
        1e30,
        2.0,
        0.25,
        4_294_967_040.0,
        1e-30,
    ]
    .into_iter()
    .chain(
        [
            0x3f80_1000u32,
            0x3f80_0fff,
            0xbf80_1000,
            0xbf80_0fff,
            0x3f80_3000,
            0x3f80_2fff,
        ]
        .map(f32::from_bits),
    )
    .collect();
    let cases: Vec<[u64; 1]> = values.iter().map(|&x| [fb(x)]).collect();
    let out = per_thread(&body, &cases);
    for (&x, o) in values.iter().zip(&out) {
        // Float → integer: round, then clamp to the destination's range; NaN → 0 (which is
        // what Rust's saturating `as` does too).
        assert_eq!(
            o[0],
            w(x.round_ties_even() as i32 as i64),
            "cvt.rni.s32.f32 {x:e}"
        );
        assert_eq!(o[1], w(x.trunc() as i32 as i64), "cvt.rzi.s32.f32 {x:e}");
        assert_eq!(o[2], w(x.floor() as i32 as i64), "cvt.rmi.s32.f32 {x:e}");
        assert_eq!(o[3], w(x.ceil() as i32 as i64), "cvt.rpi.s32.f32 {x:e}");
        assert_eq!(
            o[4],
            u64::from(x.round_ties_even() as u32),
            "cvt.rni.u32.f32 {x:e}"
        );
        assert_eq!(
            o[5],
            x.round_ties_even() as i64 as u64,
            "cvt.rni.s64.f32 {x:e}"
        );
        if x.is_nan() {
            assert!(
                f32_of(o[6]).is_nan() && f32_of(o[7]).is_nan(),
                "integral of NaN"
            );
            assert_eq!(o[8], 0, "cvt.sat of NaN is +0");
            assert!(f32_of(o[9]).is_nan(), "tf32 of NaN");
            continue;
        }
        assert_eq!(o[6], fb(x.round_ties_even()), "cvt.rni.f32.f32 {x:e}");
        assert_eq!(o[7], fb(x.trunc()), "cvt.rzi.f32.f32 {x:e}");
        let sat = if x > 0.0 { x.min(1.0) } else { 0.0 };
        assert_eq!(o[8], fb(sat), "cvt.sat.f32.f32 {x:e}");
        // .rna: to nearest TF32 (10 fraction bits), ties away from zero (in magnitude).
        let b = x.to_bits();
        let tf = if (b & 0x1fff) >= 0x1000 {
            (b & !0x1fff) + 0x2000
        } else {
            b & !0x1fff
        };
        assert_eq!(o[9], u64::from(tf), "cvt.rna.tf32.f32 {b:#010x}");
    }
    // Spelled out.
    let rni: Vec<u64> = out[..6].iter().map(|o| o[0]).collect();
    assert_eq!(rni, [0, 2, 2, 0, w(-2), w(-2)], "rni ties to even");
    assert_eq!(
        (out[11][0], out[12][0]),
        (0x7fff_ffff, 0x8000_0000),
        "saturation"
    );
    assert_eq!(
        (out[13][0], out[14][0], out[15][0]),
        (0x7fff_ffff, 0x8000_0000, 0),
        "inf, NaN"
    );
    assert_eq!(out[4][4], 0, "rni.u32 of -1.5 clamps to 0");
    assert_eq!(out[3][6], 0x8000_0000, "rni.f32 of -0.5 is -0");
    assert_eq!(out[2][6], fb(2.0));
    assert_eq!(out[3][8], 0, "sat of -0.5 is +0");
    assert_eq!(out[18][8], fb(1.0), "sat of 2 is 1");
    assert_eq!(out[22][9], 0x3f80_2000, "tie rounds away from zero");
    assert_eq!(out[23][9], 0x3f80_0000, "below the tie rounds down");
    assert_eq!(
        out[24][9], 0xbf80_2000,
        "negative tie rounds away from zero"
    );
    assert_eq!(out[25][9], 0xbf80_0000);
}

// ---------------------------------------------------------------------------------------------
// 3. f32 arithmetic.

/// `OP.rn/.rz/.rm/.rp` of the slots' operands into output slots 0..4, and the unmodified
/// form (add) or `mul.rn` (fma) into slot 4.
fn rounding_body(op: &str) -> String {
    let operands = if op == "fma" {
        "%f10, %f11, %f12"
    } else {
        "%f10, %f11"
    };
    let mut s = String::from(
        "\tld.global.f32 \t%f10, [%rd4];
\tld.global.f32 \t%f11, [%rd4+8];
\tld.global.f32 \t%f12, [%rd4+16];
",
    );
    for (i, r) in ["rn", "rz", "rm", "rp"].iter().enumerate() {
        writeln!(s, "\t{op}.{r}.f32 \t%f{}, {operands};", 20 + i).unwrap();
        writeln!(s, "\tst.global.f32 \t[%rd5+{}], %f{};", 8 * i, 20 + i).unwrap();
    }
    if op == "fma" {
        s.push_str("\tmul.rn.f32 \t%f30, %f10, %f11;\n");
    } else {
        writeln!(s, "\t{op}.f32 \t%f30, %f10, %f11;").unwrap();
    }
    s.push_str("\tst.global.f32 \t[%rd5+32], %f30;\n");
    s
}

#[test]
fn add_f32_rounds_in_each_direction() {
    // (a, b) → [rn, rz, rm, rp] of a + b.
    let cases: [(u32, u32, [u32; 4]); 10] = [
        // 1 + 2^-24 + 2^-30: just above the midpoint between 1 and 1 + 2^-23.
        (
            0x3f80_0000,
            0x3382_0000,
            [0x3f80_0001, 0x3f80_0000, 0x3f80_0000, 0x3f80_0001],
        ),
        // 1 + 2^-24: a tie, to the even 1.
        (
            0x3f80_0000,
            0x3380_0000,
            [0x3f80_0000, 0x3f80_0000, 0x3f80_0000, 0x3f80_0001],
        ),
        // (1 + 2^-23) + 2^-24: a tie, to the even 1 + 2^-22.
        (
            0x3f80_0001,
            0x3380_0000,
            [0x3f80_0002, 0x3f80_0001, 0x3f80_0001, 0x3f80_0002],
        ),
        // -(1 + 2^-24 + 2^-30).
        (
            0xbf80_0000,
            0xb382_0000,
            [0xbf80_0001, 0xbf80_0000, 0xbf80_0001, 0xbf80_0000],
        ),
        // 1 - 1: +0, except -0 rounding down.
        (0x3f80_0000, 0xbf80_0000, [0, 0, 0x8000_0000, 0]),
        // MAX + MAX overflows: to infinity or to MAX by direction.
        (
            0x7f7f_ffff,
            0x7f7f_ffff,
            [0x7f80_0000, 0x7f7f_ffff, 0x7f7f_ffff, 0x7f80_0000],
        ),
        // 1 - 2^-25: the midpoint below 1, ties to the even 1.
        (
            0x3f80_0000,
            0xb300_0000,
            [0x3f80_0000, 0x3f7f_ffff, 0x3f7f_ffff, 0x3f80_0000],
        ),
        // Subnormals add exactly.
        (0x0000_0001, 0x0000_0001, [2, 2, 2, 2]),
        (0x8000_0000, 0x8000_0000, [0x8000_0000; 4]),
        (0x8000_0000, 0x0000_0000, [0, 0, 0x8000_0000, 0]),
    ];
    let input: Vec<[u64; 2]> = cases.iter().map(|c| [c.0.into(), c.1.into()]).collect();
    let out = per_thread(&rounding_body("add"), &input);
    for (c, o) in cases.iter().zip(&out) {
        let got = [o[0], o[1], o[2], o[3]].map(|x| x as u32);
        assert_eq!(
            got, c.2,
            "add.{{rn,rz,rm,rp}}.f32 {:#010x} + {:#010x}",
            c.0, c.1
        );
        let native = f32::from_bits(c.0) + f32::from_bits(c.1);
        assert_eq!(o[0], fb(native), "add.rn agrees with IEEE");
        assert_eq!(o[4], o[0], "add.f32 defaults to .rn");
    }
}

#[test]
fn fma_f32_rounds_once_in_each_direction() {
    // (a, b, c) → [rn, rz, rm, rp] of a·b + c, exactly then rounded once.
    let cases: [(u32, u32, u32, [u32; 4]); 7] = [
        // (1 + 2^-12)² + 2^-30 = 1 + 2^-11 + 2^-24 + 2^-30: above the midpoint.
        (
            0x3f80_0800,
            0x3f80_0800,
            0x3080_0000,
            [0x3f80_1001, 0x3f80_1000, 0x3f80_1000, 0x3f80_1001],
        ),
        // (1 + 2^-12)² = 1 + 2^-11 + 2^-24: a tie, to even.
        (
            0x3f80_0800,
            0x3f80_0800,
            0,
            [0x3f80_1000, 0x3f80_1000, 0x3f80_1000, 0x3f80_1001],
        ),
        // Negated.
        (
            0xbf80_0800,
            0x3f80_0800,
            0xb080_0000,
            [0xbf80_1001, 0xbf80_1000, 0xbf80_1001, 0xbf80_1000],
        ),
        // (1 + 2^-12)² - (1 + 2^-11) = 2^-24 exactly (a separate multiply would give 0).
        (0x3f80_0800, 0x3f80_0800, 0xbf80_1000, [0x3380_0000; 4]),
        // 1·1 - 1: +0, except -0 rounding down.
        (
            0x3f80_0000,
            0x3f80_0000,
            0xbf80_0000,
            [0, 0, 0x8000_0000, 0],
        ),
        // 2^-149 · 0.5 = 2^-150: a tie between 0 and the least subnormal, to the even 0.
        (0x0000_0001, 0x3f00_0000, 0, [0, 0, 0, 1]),
        // 3 · RN(1/3) - 1 = 2^-25 exactly.
        (0x4040_0000, 0x3eaa_aaab, 0xbf80_0000, [0x3300_0000; 4]),
    ];
    let input: Vec<[u64; 3]> = cases
        .iter()
        .map(|c| [c.0.into(), c.1.into(), c.2.into()])
        .collect();
    let out = per_thread(&rounding_body("fma"), &input);
    for (c, o) in cases.iter().zip(&out) {
        let got = [o[0], o[1], o[2], o[3]].map(|x| x as u32);
        let what = format!("fma {:#010x} {:#010x} {:#010x}", c.0, c.1, c.2);
        assert_eq!(got, c.3, "{what}");
        let (a, b, cc) = (
            f32::from_bits(c.0),
            f32::from_bits(c.1),
            f32::from_bits(c.2),
        );
        assert_eq!(
            o[0],
            fb(a.mul_add(b, cc)),
            "fma.rn agrees with IEEE: {what}"
        );
        assert_eq!(o[4], fb(a * b), "mul.rn: {what}");
    }
    assert_eq!(
        out[3][4],
        fb(f32::from_bits(0x3f80_1000)),
        "the unfused product rounds"
    );
}

#[test]
fn ftz_flushes_subnormal_inputs_and_results() {
    let body = io_body(
        &["%f10", "%f11"],
        "\tadd.f32 \t%f12, %f10, %f11;
\tadd.ftz.f32 \t%f13, %f10, %f11;
\tmul.f32 \t%f14, %f10, %f11;
\tmul.ftz.f32 \t%f15, %f10, %f11;
\tfma.rn.ftz.f32 \t%f16, %f10, %f11, %f11;
",
        &["%f12", "%f13", "%f14", "%f15", "%f16"],
    );
    let ftz = |x: f32| {
        if x.is_subnormal() {
            0.0f32.copysign(x)
        } else {
            x
        }
    };
    let cases: [(u32, u32); 7] = [
        (0x0000_0001, 0),
        (0x8000_0001, 0x8000_0000),
        (0x0040_0000, 0x4000_0000),
        (0x0080_0000, 0x3f00_0000),
        (0x0080_0000, 0x8000_0001),
        (0x3f80_0000, 0x0000_0001),
        (0x8040_0000, 0x3f80_0000),
    ];
    let input: Vec<[u64; 2]> = cases.iter().map(|c| [c.0.into(), c.1.into()]).collect();
    let out = per_thread(&body, &input);
    for (&(a, b), o) in cases.iter().zip(&out) {
        let (x, y) = (f32::from_bits(a), f32::from_bits(b));
        let what = format!("{a:#010x} {b:#010x}");
        assert_eq!(o[0], fb(x + y), "add.f32 keeps subnormals: {what}");
        assert_eq!(o[1], fb(ftz(ftz(x) + ftz(y))), "add.ftz.f32 {what}");
        assert_eq!(o[2], fb(x * y), "mul.f32 keeps subnormals: {what}");
        assert_eq!(o[3], fb(ftz(ftz(x) * ftz(y))), "mul.ftz.f32 {what}");
        assert_eq!(
            o[4],
            fb(ftz(ftz(x).mul_add(ftz(y), ftz(y)))),
            "fma.rn.ftz.f32 {what}"
        );
    }
    // Spelled out.
    assert_eq!((out[0][0], out[0][1]), (1, 0), "2^-149 + 0");
    assert_eq!(
        out[1][1], 0x8000_0000,
        "a flushed -subnormal keeps its sign"
    );
    assert_eq!((out[2][2], out[2][3]), (0x0080_0000, 0), "subnormal × 2");
    assert_eq!(
        (out[3][2], out[3][3]),
        (0x0040_0000, 0),
        "a subnormal result is flushed"
    );
    assert_eq!(
        (out[4][0], out[4][1]),
        (0x007f_ffff, 0x0080_0000),
        "2^-126 - 2^-149"
    );
    assert_eq!(out[6][3], 0x8000_0000, "-subnormal × 1 → -0");
    // setp.ftz compares the flushed values: a subnormal equals zero.
    let cmp = per_thread(
        &[
            "\tld.global.f32 \t%f10, [%rd4];
\tsetp.eq.ftz.f32 \t%p1, %f10, 0f00000000;
\tsetp.eq.f32 \t%p2, %f10, 0f00000000;
\tsetp.lt.ftz.f32 \t%p3, %f10, 0f00000000;
",
            &pred_mask_lines(&["%p1", "%p2", "%p3"], 0),
        ]
        .concat(),
        &[[1], [0x8000_0001], [0x0080_0000]],
    );
    assert_eq!([cmp[0][0], cmp[1][0], cmp[2][0]], [1, 1, 0], "setp.ftz");
}

#[test]
fn div_rcp_sqrt_rn_are_correctly_rounded() {
    let body = io_body(
        &["%f10", "%f11"],
        "\tdiv.rn.f32 \t%f12, %f10, %f11;
\trcp.rn.f32 \t%f13, %f11;
\tabs.f32 \t%f14, %f10;
\tsqrt.rn.f32 \t%f15, %f14;
",
        &["%f12", "%f13", "%f15"],
    );
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut pairs: Vec<(f32, f32)> = vec![
        (1.0, 3.0),
        (2.0, 7.0),
        (f32::from_bits(1), 0.5),
        (f32::MAX, 0.5),
        (1.0, f32::MAX),
        (f32::from_bits(0x0080_0000), 3.0),
        (1.0, f32::from_bits(3)),
        (-5.0, 1e-3),
        (f32::from_bits(0x007f_ffff), f32::from_bits(0x0000_0007)),
    ];
    while pairs.len() < 256 {
        pairs.push((rng.f32(), rng.f32()));
    }
    let cases: Vec<[u64; 2]> = pairs.iter().map(|&(a, b)| [fb(a), fb(b)]).collect();
    let out = per_thread(&body, &cases);
    for (&(a, b), o) in pairs.iter().zip(&out) {
        let what = format!("a={:#010x} b={:#010x}", a.to_bits(), b.to_bits());
        assert_eq!(o[0], fb(a / b), "div.rn.f32 {what}");
        assert_eq!(o[1], fb(1.0 / b), "rcp.rn.f32 {what}");
        assert_eq!(o[2], fb(a.abs().sqrt()), "sqrt.rn.f32 {what}");
    }
    assert_eq!(out[0][0], 0x3eaa_aaab, "1/3");
    assert_eq!(out[1][2], 0x3fb5_04f3, "sqrt 2");
}

#[test]
fn div_rcp_sqrt_rn_ieee_special_values() {
    let body = io_body(
        &["%f10", "%f11"],
        "\tdiv.rn.f32 \t%f12, %f10, %f11;
\trcp.rn.f32 \t%f13, %f11;
\tsqrt.rn.f32 \t%f14, %f10;
",
        &["%f12", "%f13", "%f14"],
    );
    let (inf, nan) = (f32::INFINITY, f32::NAN);
    // (a, b) → (a / b, 1 / b, sqrt a), None for NaN.
    let cases: [(f32, f32, [Option<f32>; 3]); 6] = [
        (0.0, 0.0, [None, Some(inf), Some(0.0)]),
        (1.0, -0.0, [Some(-inf), Some(-inf), Some(1.0)]),
        (-0.0, inf, [Some(-0.0), Some(0.0), Some(-0.0)]),
        (inf, inf, [None, Some(0.0), Some(inf)]),
        (-1.0, -inf, [Some(0.0), Some(-0.0), None]),
        (nan, 2.0, [None, Some(0.5), None]),
    ];
    let input: Vec<[u64; 2]> = cases.iter().map(|c| [fb(c.0), fb(c.1)]).collect();
    let out = per_thread(&body, &input);
    for (c, o) in cases.iter().zip(&out) {
        for (k, want) in c.2.iter().enumerate() {
            match want {
                Some(x) => assert_eq!(o[k], fb(*x), "op {k} of ({}, {})", c.0, c.1),
                None => assert!(f32_of(o[k]).is_nan(), "op {k} of ({}, {}) is NaN", c.0, c.1),
            }
        }
    }
}

#[test]
fn sat_clamps_arithmetic_results_to_zero_one_and_nan_to_zero() {
    let body = io_body(
        &["%f10", "%f11"],
        "\tadd.sat.f32 \t%f12, %f10, %f11;
\tmul.sat.f32 \t%f13, %f10, %f11;
\tfma.rn.sat.f32 \t%f14, %f10, %f11, %f11;
",
        &["%f12", "%f13", "%f14"],
    );
    let (inf, nan) = (f32::INFINITY, f32::NAN);
    // (a, b) → (a + b, a · b, a · b + b), clamped to [+0, 1], NaN → +0.
    let cases: [(f32, f32, [f32; 3]); 6] = [
        (0.25, 0.5, [0.75, 0.125, 0.625]),
        (2.0, 3.0, [1.0, 1.0, 1.0]),
        (-2.0, 0.5, [0.0, 0.0, 0.0]),
        (inf, -inf, [0.0, 0.0, 0.0]),
        (nan, 0.5, [0.0, 0.0, 0.0]),
        (0.0, inf, [1.0, 0.0, 0.0]),
    ];
    let input: Vec<[u64; 2]> = cases.iter().map(|c| [fb(c.0), fb(c.1)]).collect();
    let out = per_thread(&body, &input);
    for (c, o) in cases.iter().zip(&out) {
        assert_eq!([o[0], o[1], o[2]], c.2.map(fb), "sat of ({}, {})", c.0, c.1);
    }
}

#[test]
fn ex2_and_rcp_approx_ftz_special_values_and_accuracy() {
    let body = io_body(
        &["%f10"],
        "\tex2.approx.ftz.f32 \t%f11, %f10;
\tex2.approx.f32 \t%f12, %f10;
\trcp.approx.ftz.f32 \t%f13, %f10;
",
        &["%f11", "%f12", "%f13"],
    );
    let values = [
        0.0f32,
        1.0,
        f32::NEG_INFINITY,
        f32::INFINITY,
        f32::NAN,
        10.5,
        -0.0,
        -1.0,
        0.5,
        -140.0,
        f32::from_bits(1),
        3.0,
        -20.25,
        100.0,
    ];
    let cases: Vec<[u64; 1]> = values.iter().map(|&x| [fb(x)]).collect();
    let out = per_thread(&body, &cases);
    let ex2 = |i: usize| f32_of(out[i][0]);
    // The ISA's special values.
    assert_eq!(out[0][0], fb(1.0), "ex2(+0) = 1");
    assert_eq!(out[6][0], fb(1.0), "ex2(-0) = 1");
    assert_eq!(out[2][0], 0, "ex2(-inf) = +0");
    assert_eq!(out[3][0], fb(f32::INFINITY), "ex2(+inf) = +inf");
    assert!(ex2(4).is_nan(), "ex2(NaN) = NaN");
    assert_eq!(
        out[10][0],
        fb(1.0),
        "ex2.ftz of a subnormal: its input is flushed to 0"
    );
    assert_eq!(
        out[9][0], 0,
        "ex2.ftz(-140) = 2^-140, subnormal, flushed to +0"
    );
    // Within 2 ulp of 2^x elsewhere.
    for (i, &x) in values.iter().enumerate() {
        if !x.is_finite() || x.abs() < 1e-30 || x == -140.0 {
            continue;
        }
        let want = f64::from(x).exp2() as f32;
        assert!(
            ulps(ex2(i), want) <= 2,
            "ex2.approx.ftz({x}) = {} vs {want}",
            ex2(i)
        );
        assert!(ulps(f32_of(out[i][1]), want) <= 2, "ex2.approx({x})");
    }
    assert!(
        ulps(f32_of(out[9][1]), f32::from_bits(0x200)) <= 2,
        "ex2(-140) without ftz"
    );
    assert!(
        ulps(f32_of(out[11][2]), f32::from_bits(0x3eaa_aaab)) <= 1,
        "rcp.approx(3)"
    );
    assert_eq!(
        out[10][2],
        fb(f32::INFINITY),
        "rcp.approx.ftz of a subnormal is 1/+0"
    );
    assert_eq!(out[2][2], 0x8000_0000, "rcp(-inf) = -0");
}

#[test]
fn min_max_f32_return_the_other_operand_of_a_nan() {
    let body = io_body(
        &["%f10", "%f11"],
        "\tmax.f32 \t%f12, %f10, %f11;
\tmin.f32 \t%f13, %f10, %f11;
",
        &["%f12", "%f13"],
    );
    let nan = f32::NAN;
    let pairs = [
        (nan, 1.0f32),
        (1.0, nan),
        (nan, f32::NEG_INFINITY),
        (-3.0, nan),
        (1.0, 2.0),
        (-1.0, -2.0),
        (-0.0, 0.0),
        (0.0, -0.0),
        (nan, nan),
    ];
    let cases: Vec<[u64; 2]> = pairs.iter().map(|&(a, b)| [fb(a), fb(b)]).collect();
    let out = per_thread(&body, &cases);
    let want = [
        (1.0f32, 1.0f32),
        (1.0, 1.0),
        (f32::NEG_INFINITY, f32::NEG_INFINITY),
        (-3.0, -3.0),
        (2.0, 1.0),
        (-1.0, -2.0),
        (0.0, -0.0),
        (0.0, -0.0),
    ];
    for (i, &(mx, mn)) in want.iter().enumerate() {
        assert_eq!(
            (out[i][0], out[i][1]),
            (fb(mx), fb(mn)),
            "max/min of {:?}",
            pairs[i]
        );
    }
    assert!(
        f32_of(out[8][0]).is_nan() && f32_of(out[8][1]).is_nan(),
        "both NaN"
    );
}

type FloatCmp = (&'static str, fn(f32, f32) -> bool);

#[test]
fn setp_f32_ordered_and_unordered_comparisons_with_nan() {
    let forms: [FloatCmp; 14] = [
        ("eq", |a, b| a == b),
        ("ne", |a, b| !a.is_nan() && !b.is_nan() && a != b),
        ("lt", |a, b| a < b),
        ("le", |a, b| a <= b),
        ("gt", |a, b| a > b),
        ("ge", |a, b| a >= b),
        ("equ", |a, b| a.is_nan() || b.is_nan() || a == b),
        ("neu", |a, b| a != b),
        ("ltu", |a, b| a.is_nan() || b.is_nan() || a < b),
        ("leu", |a, b| a.is_nan() || b.is_nan() || a <= b),
        ("gtu", |a, b| a.is_nan() || b.is_nan() || a > b),
        ("geu", |a, b| a.is_nan() || b.is_nan() || a >= b),
        ("num", |a, b| !a.is_nan() && !b.is_nan()),
        ("nan", |a, b| a.is_nan() || b.is_nan()),
    ];
    let mut body = String::from(
        "\tld.global.f32 \t%f10, [%rd4];
\tld.global.f32 \t%f11, [%rd4+8];
\tmov.u32 \t%r21, 0;
",
    );
    for (k, (form, _)) in forms.iter().enumerate() {
        writeln!(body, "\tsetp.{form}.f32 \t%p1, %f10, %f11;").unwrap();
        writeln!(body, "\tselp.b32 \t%r20, {}, 0, %p1;", 1u32 << k).unwrap();
        body.push_str("\tor.b32 \t%r21, %r21, %r20;\n");
    }
    body.push_str("\tst.global.u32 \t[%rd5], %r21;\n");
    let nan = f32::NAN;
    let pairs = [
        (nan, 1.0f32),
        (1.0, nan),
        (nan, nan),
        (1.0, 2.0),
        (2.0, 1.0),
        (1.0, 1.0),
        (-0.0, 0.0),
        (f32::INFINITY, f32::INFINITY),
        (f32::NEG_INFINITY, 1.0),
    ];
    let cases: Vec<[u64; 2]> = pairs.iter().map(|&(a, b)| [fb(a), fb(b)]).collect();
    let out = per_thread(&body, &cases);
    for (&(a, b), o) in pairs.iter().zip(&out) {
        for (k, (form, f)) in forms.iter().enumerate() {
            assert_eq!(((o[0] >> k) & 1) == 1, f(a, b), "setp.{form}.f32 {a} {b}");
        }
    }
    // Spelled out with NaN: ltu true, lt false, eq false (also NaN == NaN).
    let m = out[0][0];
    assert_eq!(((m >> 8) & 1, (m >> 2) & 1, m & 1), (1, 0, 0));
    assert_eq!(out[2][0] & 1, 0, "NaN == NaN is false");
    assert_eq!((out[6][0] & 1, (out[6][0] >> 2) & 1), (1, 0), "-0 == +0");
}

#[test]
fn neg_and_abs_f32_change_only_the_sign_bit() {
    let body = io_body(
        &["%f10"],
        "\tneg.f32 \t%f11, %f10;
\tabs.f32 \t%f12, %f10;
",
        &["%f11", "%f12"],
    );
    let values = [
        0x0000_0000u32,
        0x8000_0000,
        0x3f80_0000,
        0xff80_0000,
        0x8000_0001,
        0x7f7f_ffff,
    ];
    let cases: Vec<[u64; 1]> = values.iter().map(|&x| [x.into()]).collect();
    let out = per_thread(&body, &cases);
    for (&x, o) in values.iter().zip(&out) {
        assert_eq!(o[0], u64::from(x ^ 0x8000_0000), "neg.f32 {x:#010x}");
        assert_eq!(o[1], u64::from(x & 0x7fff_ffff), "abs.f32 {x:#010x}");
    }
    let nan = per_thread(&body, &[[fb(f32::NAN)], [0xffc0_0000]]);
    for o in &nan {
        assert!(
            f32_of(o[0]).is_nan() && f32_of(o[1]).is_nan(),
            "neg/abs of NaN is NaN"
        );
        assert_eq!(o[1] & 0x8000_0000, 0, "abs clears the sign of a NaN too");
    }
}

// ---------------------------------------------------------------------------------------------
// 4. f64.

#[test]
fn mul_f64_rounds_correctly_in_each_direction() {
    let body = io_body(
        &["%fd10", "%fd11"],
        "\tmul.f64 \t%fd12, %fd10, %fd11;
\tmul.rn.f64 \t%fd13, %fd10, %fd11;
\tmul.rz.f64 \t%fd14, %fd10, %fd11;
\tmul.rm.f64 \t%fd15, %fd10, %fd11;
\tmul.rp.f64 \t%fd16, %fd10, %fd11;
",
        &["%fd12", "%fd13", "%fd14", "%fd15", "%fd16"],
    );
    let one_ulp = f64::from_bits(0x3ff0_0000_0000_0001);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut pairs: Vec<(f64, f64)> = vec![(one_ulp, one_ulp), (-one_ulp, one_ulp), (3.0, 0.1)];
    while pairs.len() < 128 {
        pairs.push((rng.f64(), rng.f64()));
    }
    let cases: Vec<[u64; 2]> = pairs
        .iter()
        .map(|(a, b)| [a.to_bits(), b.to_bits()])
        .collect();
    let out = per_thread(&body, &cases);
    for (&(a, b), o) in pairs.iter().zip(&out) {
        let p = a * b;
        // The exact residual a·b - p (representable here: no underflow in this range).
        let r = a.mul_add(b, -p);
        let down = if r < 0.0 { p.next_down() } else { p };
        let up = if r > 0.0 { p.next_up() } else { p };
        let zero = if p > 0.0 { down } else { up };
        let what = format!("{:#018x} × {:#018x}", a.to_bits(), b.to_bits());
        assert_eq!(o[0], p.to_bits(), "mul.f64 {what}");
        assert_eq!(o[1], p.to_bits(), "mul.rn.f64 {what}");
        assert_eq!(o[2], zero.to_bits(), "mul.rz.f64 {what}");
        assert_eq!(o[3], down.to_bits(), "mul.rm.f64 {what}");
        assert_eq!(o[4], up.to_bits(), "mul.rp.f64 {what}");
    }
    // (1 + 2^-52)² = 1 + 2^-51 + 2^-104.
    assert_eq!(
        &out[0][1..5],
        &[
            0x3ff0_0000_0000_0002,
            0x3ff0_0000_0000_0002,
            0x3ff0_0000_0000_0002,
            0x3ff0_0000_0000_0003
        ]
    );
    assert_eq!(
        &out[1][1..5],
        &[
            0xbff0_0000_0000_0002,
            0xbff0_0000_0000_0002,
            0xbff0_0000_0000_0003,
            0xbff0_0000_0000_0002
        ]
    );
    // Gradual underflow and overflow, to nearest.
    let extremes = [
        (1.1 * 2f64.powi(-1000), 1.3 * 2f64.powi(-70)),
        (f64::MIN_POSITIVE, 0.75),
        (f64::from_bits(3), 0.5),
        (f64::MAX, 1.5),
        (-f64::MAX, 2.0),
    ];
    let cases: Vec<[u64; 2]> = extremes
        .iter()
        .map(|(a, b)| [a.to_bits(), b.to_bits()])
        .collect();
    let out = per_thread(&body, &cases);
    for (&(a, b), o) in extremes.iter().zip(&out) {
        assert_eq!(o[1], (a * b).to_bits(), "mul.rn.f64 {a:e} × {b:e}");
    }
    assert_eq!(out[2][1], 2, "3·2^-1074 × 0.5 ties to the even 2·2^-1074");
    assert_eq!(
        out[3][2],
        f64::MAX.to_bits(),
        "mul.rz.f64 overflow stops at MAX"
    );
}

#[test]
fn f64_arithmetic_min_max_neg_abs_to_nearest() {
    let body = io_body(
        &["%fd10", "%fd11"],
        "\tadd.rn.f64 \t%fd12, %fd10, %fd11;
\tsub.rn.f64 \t%fd13, %fd10, %fd11;
\tdiv.rn.f64 \t%fd14, %fd10, %fd11;
\trcp.rn.f64 \t%fd15, %fd11;
\tabs.f64 \t%fd16, %fd10;
\tsqrt.rn.f64 \t%fd17, %fd16;
\tneg.f64 \t%fd18, %fd10;
\tmin.f64 \t%fd19, %fd10, %fd11;
\tmax.f64 \t%fd20, %fd10, %fd11;
",
        &[
            "%fd12", "%fd13", "%fd14", "%fd15", "%fd16", "%fd17", "%fd18", "%fd19", "%fd20",
        ],
    );
    let nan = f64::NAN;
    let pairs = [
        (1.5, -0.25),
        (0.1, 3.0),
        (-2.0, 7.0),
        (1e300, 1e-300),
        (nan, 2.0),
        (-3.0, nan),
        (f64::INFINITY, -1.0),
        (-0.0, 5.0),
    ];
    let cases: Vec<[u64; 2]> = pairs
        .iter()
        .map(|(a, b)| [a.to_bits(), b.to_bits()])
        .collect();
    let out = per_thread(&body, &cases);
    // NaN or the same bits.
    let same = |got: u64, want: f64| {
        if want.is_nan() {
            f64::from_bits(got).is_nan()
        } else {
            got == want.to_bits()
        }
    };
    for (&(a, b), o) in pairs.iter().zip(&out) {
        let other_of_nan = |m: fn(f64, f64) -> f64| {
            if a.is_nan() {
                b
            } else if b.is_nan() {
                a
            } else {
                m(a, b)
            }
        };
        let want = [
            a + b,
            a - b,
            a / b,
            1.0 / b,
            a.abs(),
            a.abs().sqrt(),
            -a,
            other_of_nan(f64::min),
            other_of_nan(f64::max),
        ];
        let names = [
            "add", "sub", "div", "rcp", "abs", "sqrt", "neg", "min", "max",
        ];
        for (k, (&w, name)) in want.iter().zip(names).enumerate() {
            assert!(
                same(o[k], w),
                "{name}.f64 of ({a:e}, {b:e}): {:e}",
                f64::from_bits(o[k])
            );
        }
    }
    // Spelled out: neg and abs change only the sign bit, NaN included.
    assert_eq!(out[4][6] ^ out[4][4], 1 << 63, "neg and abs of a NaN");
    assert_eq!(out[7][6], 0.0f64.to_bits(), "neg of -0 is +0");
    assert_eq!(
        (out[4][7], out[5][8]),
        (2.0f64.to_bits(), (-3.0f64).to_bits())
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Memory spaces.

#[test]
fn vector_loads_and_stores_in_global_and_shared() {
    let body = "\tld.global.v4.f32 \t{%f10, %f11, %f12, %f13}, [%rd4];
\tmov.u64 \t%rd10, sm;
\tmul.wide.u32 \t%rd11, %r1, 16;
\tadd.s64 \t%rd12, %rd10, %rd11;
\tst.shared.v4.f32 \t[%rd12], {%f10, %f11, %f12, %f13};
\tbar.sync \t0;
\txor.b32 \t%r10, %r1, 1;
\tmul.wide.u32 \t%rd13, %r10, 16;
\tadd.s64 \t%rd14, %rd10, %rd13;
\tld.shared.v4.f32 \t{%f14, %f15, %f16, %f17}, [%rd14];
\tst.global.v4.f32 \t[%rd5], {%f17, %f16, %f15, %f14};
\tcvta.shared.u64 \t%rd15, %rd12;
\tld.f32 \t%f18, [%rd15+4];
\tst.global.f32 \t[%rd5+16], %f18;
\tld.shared.v2.u32 \t{%r11, %r12}, [%rd14+8];
\tst.global.v2.u32 \t[%rd5+24], {%r12, %r11};
";
    let ptx = per_thread_ptx("\t.shared .align 16 .b8 sm[512];\n", body);
    let val = |t: usize, i: usize| (t * 4 + i) as f32 + 0.5;
    let pack = |x: f32, y: f32| fb(x) | (fb(y) << 32);
    let input: Vec<Row> = (0..32)
        .map(|t| {
            let mut r = [0u64; SLOTS];
            r[0] = pack(val(t, 0), val(t, 1));
            r[1] = pack(val(t, 2), val(t, 3));
            r
        })
        .collect();
    let out = run_rows(&ptx, &input).unwrap();
    for (t, o) in out.iter().enumerate() {
        let p = t ^ 1;
        assert_eq!(o[0], pack(val(p, 3), val(p, 2)), "thread {t}");
        assert_eq!(o[1], pack(val(p, 1), val(p, 0)), "thread {t}");
        assert_eq!(
            o[2],
            fb(val(t, 1)),
            "generic load from the shared window, thread {t}"
        );
        assert_eq!(o[3], pack(val(p, 3), val(p, 2)), "v2.u32, thread {t}");
    }
}

#[test]
fn ld_param_reads_a_struct_parameter_at_offsets() {
    let body = "\tld.param.u64 \t%rd1, [k_param_0];
\tcvta.to.global.u64 \t%rd1, %rd1;
\tld.param.u32 \t%r10, [k_param_1];
\tld.param.f32 \t%f10, [k_param_1+4];
\tld.param.u64 \t%rd10, [k_param_1+8];
\tld.param.u16 \t%rs10, [k_param_1+16];
\tld.param.s8 \t%rs11, [k_param_1+18];
\tld.param.u32 \t%r11, [k_param_1+20];
\tld.param.u8 \t%r12, [k_param_1+19];
\tst.global.u32 \t[%rd1], %r10;
\tst.global.f32 \t[%rd1+4], %f10;
\tst.global.u64 \t[%rd1+8], %rd10;
\tst.global.u16 \t[%rd1+16], %rs10;
\tst.global.u16 \t[%rd1+18], %rs11;
\tst.global.u32 \t[%rd1+20], %r11;
\tst.global.u32 \t[%rd1+24], %r12;
";
    let ptx = module("", &[".u64", ".align 8 .b8[24]"], "", body);
    let (mut m, k) = load(&ptx);
    assert_eq!(m.param_sizes(k).unwrap(), [8, 24]);
    let mut s = Vec::new();
    s.extend_from_slice(&0xdead_beefu32.to_le_bytes());
    s.extend_from_slice(&1.25f32.to_le_bytes());
    s.extend_from_slice(&0x0123_4567_89ab_cdefu64.to_le_bytes());
    s.extend_from_slice(&0xbeefu16.to_le_bytes());
    s.extend_from_slice(&[0x80, 0xc3]);
    s.extend_from_slice(&0x7654_3210u32.to_le_bytes());
    let out = m.mem.alloc(28).unwrap();
    m.launch(k, &block(1), &[&out.to_le_bytes(), &s]).unwrap();
    let w = words32(&download(&m, out, 28));
    assert_eq!(w[0], 0xdead_beef);
    assert_eq!(w[1], 1.25f32.to_bits());
    assert_eq!((w[2], w[3]), (0x89ab_cdef, 0x0123_4567));
    assert_eq!(
        w[4], 0xff80_beef,
        "u16 at 16, then s8 0x80 sign-extended to 16 bits"
    );
    assert_eq!(w[5], 0x7654_3210);
    assert_eq!(w[6], 0xc3, "u8 zero-extended");
}

#[test]
fn local_array_through_the_stack_depot() {
    let decls =
        "\t.local .align 8 .b8 \t__local_depot0[32];\n\t.reg .b64 \t%SP;\n\t.reg .b64 \t%SPL;\n";
    let body = "\tmov.u64 \t%SPL, __local_depot0;
\tcvta.local.u64 \t%SP, %SPL;
\tadd.u64 \t%rd10, %SPL, 0;
\tmov.u32 \t%r10, 0;
$L__BB0_1:
\tmad.lo.s32 \t%r11, %r1, 100, %r10;
\tmul.wide.u32 \t%rd11, %r10, 4;
\tadd.s64 \t%rd12, %rd10, %rd11;
\tst.local.u32 \t[%rd12], %r11;
\tadd.s32 \t%r10, %r10, 1;
\tsetp.lt.u32 \t%p1, %r10, 8;
\t@%p1 bra \t$L__BB0_1;
\tand.b32 \t%r12, %r1, 7;
\tmul.wide.u32 \t%rd13, %r12, 4;
\tadd.s64 \t%rd14, %rd10, %rd13;
\tld.local.u32 \t%r13, [%rd14];
\tld.u32 \t%r14, [%SP+28];
\tst.u32 \t[%SP+4], %r12;
\tld.local.u32 \t%r15, [%rd10+4];
\tst.global.u32 \t[%rd5], %r13;
\tst.global.u32 \t[%rd5+8], %r14;
\tst.global.u32 \t[%rd5+16], %r15;
";
    let ptx = per_thread_ptx(decls, body);
    let (m, k) = load(&ptx);
    assert_eq!(m.local_bytes(k).unwrap(), 32);
    let out = run_rows(&ptx, &[[0u64; SLOTS]; 64]).unwrap();
    for (t, o) in out.iter().enumerate() {
        let t = t as u64;
        assert_eq!(
            o[0],
            t * 100 + (t & 7),
            "ld.local of word tid%8, thread {t}"
        );
        assert_eq!(
            o[1],
            t * 100 + 7,
            "generic ld through cvta.local, thread {t}"
        );
        assert_eq!(o[2], t & 7, "generic st seen by ld.local, thread {t}");
    }
}

#[test]
fn initialised_global_table_is_readable_through_its_address() {
    let globals = ".global .align 4 .b8 tbl[8] = {1, 2, 3, 4, 5, 6, 7, 8};\n";
    let body = format!(
        "{PROLOGUE}\tmov.u64 \t%rd10, tbl;
\tld.global.u32 \t%r10, [%rd10];
\tld.global.u32 \t%r11, [%rd10+4];
\tand.b32 \t%r12, %r1, 7;
\tcvt.u64.u32 \t%rd11, %r12;
\tadd.s64 \t%rd12, %rd10, %rd11;
\tld.global.u8 \t%r13, [%rd12];
\tld.global.u32 \t%r14, [tbl+4];
\tst.global.u32 \t[%rd5], %r10;
\tst.global.u32 \t[%rd5+8], %r11;
\tst.global.u32 \t[%rd5+16], %r13;
\tst.global.u32 \t[%rd5+24], %r14;
"
    );
    let ptx = module(globals, &[".u64", ".u64"], "", &body);
    let (m, _) = load(&ptx);
    let (addr, size) = m.global_symbol(0, "tbl").unwrap();
    assert_eq!(size, 8);
    assert_eq!(download(&m, addr, 8), [1, 2, 3, 4, 5, 6, 7, 8]);
    let out = run_rows(&ptx, &[[0u64; SLOTS]; 32]).unwrap();
    for (t, o) in out.iter().enumerate() {
        assert_eq!(o[0], 0x0403_0201);
        assert_eq!(o[1], 0x0807_0605);
        assert_eq!(o[2], (t % 8) as u64 + 1, "byte tid%8, thread {t}");
        assert_eq!(o[3], 0x0807_0605, "[tbl+4]");
    }
}

#[test]
fn atom_global_add_from_64_threads_returns_the_old_values() {
    let body = "\tld.param.u64 \t%rd1, [k_param_0];
\tld.param.u64 \t%rd2, [k_param_1];
\tld.param.u64 \t%rd3, [k_param_2];
\tcvta.to.global.u64 \t%rd1, %rd1;
\tcvta.to.global.u64 \t%rd2, %rd2;
\tcvta.to.global.u64 \t%rd3, %rd3;
\tmov.u32 \t%r1, %tid.x;
\tadd.s32 \t%r2, %r1, 1;
\tcvt.rn.f32.u32 \t%f1, %r2;
\tmul.f32 \t%f2, %f1, 0f3F000000;
\tatom.global.add.f32 \t%f3, [%rd2], %f2;
\tatom.global.add.u32 \t%r3, [%rd3], 1;
\tmul.wide.u32 \t%rd4, %r1, 8;
\tadd.s64 \t%rd5, %rd1, %rd4;
\tst.global.f32 \t[%rd5], %f3;
\tst.global.u32 \t[%rd5+4], %r3;
";
    let ptx = module("", &[".u64", ".u64", ".u64"], "", body);
    let (mut m, k) = load(&ptx);
    let out = m.mem.alloc(64 * 8).unwrap();
    let acc = upload(&mut m, &0f32.to_le_bytes());
    let count = upload(&mut m, &0u32.to_le_bytes());
    m.launch(
        k,
        &block(64),
        &[&out.to_le_bytes(), &acc.to_le_bytes(), &count.to_le_bytes()],
    )
    .unwrap();
    // Each thread adds (t + 1)/2, exact in f32, so the order cannot change the sum.
    assert_eq!(words32(&download(&m, acc, 4))[0], 1040f32.to_bits());
    assert_eq!(words32(&download(&m, count, 4))[0], 64);
    let w = words32(&download(&m, out, 64 * 8));
    // The old values are the running sums in the order the adds happened.
    let mut olds: Vec<(f32, f32)> = (0..64)
        .map(|t| (f32::from_bits(w[2 * t]), (t + 1) as f32 * 0.5))
        .collect();
    olds.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut running = 0.0f32;
    for (old, add) in olds {
        assert_eq!(old, running, "the old values chain");
        running += add;
    }
    assert_eq!(running, 1040.0);
    let mut counts: Vec<u32> = (0..64).map(|t| w[2 * t + 1]).collect();
    counts.sort_unstable();
    assert_eq!(
        counts,
        (0..64).collect::<Vec<u32>>(),
        "atom.add.u32 hands out 0..63"
    );
}

#[test]
fn atom_shared_add_from_every_lane_between_barriers() {
    let ptx = two_pointer_kernel(
        "\t.shared .align 4 .b8 sm[4];\n",
        "\tsetp.eq.s32 \t%p1, %r1, 0;
\tmov.u32 \t%r2, 0;
\t@%p1 st.shared.u32 \t[sm], %r2;
\tbar.sync \t0;
\tadd.s32 \t%r3, %r1, 1;
\tatom.shared.add.u32 \t%r4, [sm], %r3;
\tbar.sync \t0;
\tld.shared.u32 \t%r5, [sm];
\tmul.wide.u32 \t%rd3, %r1, 8;
\tadd.s64 \t%rd4, %rd1, %rd3;
\tst.global.u32 \t[%rd4], %r4;
\tst.global.u32 \t[%rd4+4], %r5;
",
    );
    let (mut m, k) = load(&ptx);
    let out = m.mem.alloc(64 * 8).unwrap();
    m.launch(k, &block(64), &[&out.to_le_bytes(), &out.to_le_bytes()])
        .unwrap();
    let w = words32(&download(&m, out, 64 * 8));
    let total: u32 = (1..=64).sum();
    let mut olds: Vec<(u32, u32)> = (0..64).map(|t| (w[2 * t], t as u32 + 1)).collect();
    olds.sort_unstable();
    let mut running = 0;
    for (t, (old, add)) in olds.into_iter().enumerate() {
        assert_eq!(old, running, "old values chain ({t})");
        running += add;
        assert_eq!(
            w[2 * t + 1],
            total,
            "everyone sees the total after the barrier"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 6. shfl.sync.

/// Run shuffle lines over `%r10` = 10·lane + 7 in one warp.
fn shfl_run(lines: &str) -> Vec<Row> {
    let body = format!("\tmad.lo.s32 \t%r10, %r1, 10, 7;\n{lines}");
    per_thread(&body, &[[0u64; 1]; 32])
}

fn lane_value(l: usize) -> u64 {
    (l * 10 + 7) as u64
}

#[test]
fn shfl_bfly_exchanges_with_the_lane_xor_offset() {
    let out = shfl_run(
        &[
            "\tshfl.sync.bfly.b32 \t%r11|%p1, %r10, 1, 31, -1;
\tshfl.sync.bfly.b32 \t%r12|%p2, %r10, 16, 0x1f, -1;
\tst.global.u32 \t[%rd5], %r11;
\tst.global.u32 \t[%rd5+8], %r12;
",
            &pred_mask_lines(&["%p1", "%p2"], 2),
        ]
        .concat(),
    );
    for (l, o) in out.iter().enumerate() {
        assert_eq!(o[0], lane_value(l ^ 1), "bfly 1, lane {l}");
        assert_eq!(o[1], lane_value(l ^ 16), "bfly 16, lane {l}");
        assert_eq!(o[2], 3, "both predicates true, lane {l}");
    }
}

#[test]
fn shfl_up_with_c0_keeps_the_low_lanes_and_clears_their_predicate() {
    let out = shfl_run(
        &[
            "\tshfl.sync.up.b32 \t%r11|%p1, %r10, 3, 0, -1;
\tst.global.u32 \t[%rd5], %r11;
",
            &pred_mask_lines(&["%p1"], 1),
        ]
        .concat(),
    );
    for (l, o) in out.iter().enumerate() {
        if l < 3 {
            assert_eq!(
                (o[0], o[1]),
                (lane_value(l), 0),
                "lane {l} keeps its own value"
            );
        } else {
            assert_eq!((o[0], o[1]), (lane_value(l - 3), 1), "lane {l}");
        }
    }
}

#[test]
fn shfl_down_with_c1f_clamps_at_lane_31() {
    let out = shfl_run(
        &[
            "\tmov.u32 \t%r30, 3;
\tshfl.sync.down.b32 \t%r11|%p1, %r10, %r30, 0x1f, -1;
\tst.global.u32 \t[%rd5], %r11;
",
            &pred_mask_lines(&["%p1"], 1),
        ]
        .concat(),
    );
    for (l, o) in out.iter().enumerate() {
        if l + 3 > 31 {
            assert_eq!(
                (o[0], o[1]),
                (lane_value(l), 0),
                "lane {l} keeps its own value"
            );
        } else {
            assert_eq!((o[0], o[1]), (lane_value(l + 3), 1), "lane {l}");
        }
    }
}

#[test]
fn shfl_idx_uses_only_the_low_five_bits_of_the_source_lane() {
    let out = shfl_run(
        &[
            "\tshfl.sync.idx.b32 \t%r11|%p1, %r10, 37, 31, -1;
\txor.b32 \t%r20, %r1, 95;
\tshfl.sync.idx.b32 \t%r12|%p2, %r10, %r20, 31, -1;
\tst.global.u32 \t[%rd5], %r11;
\tst.global.u32 \t[%rd5+8], %r12;
",
            &pred_mask_lines(&["%p1", "%p2"], 2),
        ]
        .concat(),
    );
    for (l, o) in out.iter().enumerate() {
        assert_eq!(o[0], lane_value(5), "idx 37 is lane 5, lane {l}");
        assert_eq!(
            o[1],
            lane_value(31 - l),
            "idx lane^95 is lane 31-lane, lane {l}"
        );
        assert_eq!(o[2], 3, "predicates, lane {l}");
    }
}

#[test]
fn shfl_segmented_width_8_follows_the_isa_pseudocode() {
    // CUDA's width-8 shuffles: c = ((32 - 8) << 8) | 0x1f for idx/down/bfly, (32 - 8) << 8
    // for up; the segment mask c[12:8] = 0x18 keeps each shuffle inside its 8-lane segment,
    // except that bfly may read an earlier segment (pval: j <= maxLane).
    let out = shfl_run(
        &[
            "\tshfl.sync.idx.b32 \t%r11|%p1, %r10, 10, 0x181f, -1;
\tshfl.sync.down.b32 \t%r12|%p2, %r10, 3, 0x181f, -1;
\tmov.u32 \t%r30, 0x1800;
\tshfl.sync.up.b32 \t%r13|%p3, %r10, 3, %r30, -1;
\tshfl.sync.bfly.b32 \t%r14|%p4, %r10, 9, 0x181f, -1;
\tshfl.sync.bfly.b32 \t%r15|%p5, %r10, 2, 0x181f, -1;
\tst.global.u32 \t[%rd5], %r11;
\tst.global.u32 \t[%rd5+8], %r12;
\tst.global.u32 \t[%rd5+16], %r13;
\tst.global.u32 \t[%rd5+24], %r14;
\tst.global.u32 \t[%rd5+32], %r15;
",
            &pred_mask_lines(&["%p1", "%p2", "%p3", "%p4", "%p5"], 5),
        ]
        .concat(),
    );
    for (l, o) in out.iter().enumerate() {
        let seg = l & !7;
        let pos = l & 7;
        // idx 10: lane 10 & 7 = 2 of this segment.
        let idx = seg | 2;
        let (down, pd) = if pos + 3 <= 7 {
            (l + 3, true)
        } else {
            (l, false)
        };
        let (up, pu) = if pos >= 3 { (l - 3, true) } else { (l, false) };
        let (bfly9, pb) = if (l & 8) != 0 {
            (l ^ 9, true)
        } else {
            (l, false)
        };
        let want_mask = 1 | (u64::from(pd) << 1) | (u64::from(pu) << 2) | (u64::from(pb) << 3) | 16;
        assert_eq!(o[0], lane_value(idx), "idx, lane {l}");
        assert_eq!(o[1], lane_value(down), "down 3, lane {l}");
        assert_eq!(o[2], lane_value(up), "up 3, lane {l}");
        assert_eq!(o[3], lane_value(bfly9), "bfly 9, lane {l}");
        assert_eq!(o[4], lane_value(l ^ 2), "bfly 2, lane {l}");
        assert_eq!(o[5], want_mask, "predicates, lane {l}");
    }
}

#[test]
fn shfl_with_a_partial_member_mask() {
    let out = shfl_run(
        "\tsetp.ge.u32 \t%p1, %r1, 16;
\t@%p1 bra \t$L__skip;
\tshfl.sync.bfly.b32 \t%r11, %r10, 1, 31, 0xffff;
\tst.global.u32 \t[%rd5], %r11;
$L__skip:
",
    );
    for (l, o) in out.iter().enumerate() {
        let want = if l < 16 { lane_value(l ^ 1) } else { 0 };
        assert_eq!(o[0], want, "lane {l}");
    }
}

// ---------------------------------------------------------------------------------------------
// 7. mma.sync m16n8k8 tf32.

#[test]
fn mma_m16n8k8_tf32_matches_a_truncated_host_product() {
    let body = "\tld.param.u64 \t%rd1, [k_param_0];
\tld.param.u64 \t%rd2, [k_param_1];
\tld.param.u64 \t%rd3, [k_param_2];
\tld.param.u64 \t%rd4, [k_param_3];
\tcvta.to.global.u64 \t%rd1, %rd1;
\tcvta.to.global.u64 \t%rd2, %rd2;
\tcvta.to.global.u64 \t%rd3, %rd3;
\tcvta.to.global.u64 \t%rd4, %rd4;
\tmov.u32 \t%r1, %laneid;
\tshr.u32 \t%r2, %r1, 2;
\tand.b32 \t%r3, %r1, 3;
\tshl.b32 \t%r4, %r2, 3;
\tadd.s32 \t%r5, %r4, %r3;
\tmul.wide.u32 \t%rd5, %r5, 4;
\tadd.s64 \t%rd6, %rd2, %rd5;
\tld.global.u32 \t%r10, [%rd6];
\tld.global.u32 \t%r11, [%rd6+256];
\tld.global.u32 \t%r12, [%rd6+16];
\tld.global.u32 \t%r13, [%rd6+272];
\tadd.s64 \t%rd7, %rd3, %rd5;
\tld.global.u32 \t%r14, [%rd7];
\tld.global.u32 \t%r15, [%rd7+16];
\tshl.b32 \t%r6, %r3, 1;
\tadd.s32 \t%r7, %r4, %r6;
\tmul.wide.u32 \t%rd8, %r7, 4;
\tadd.s64 \t%rd9, %rd4, %rd8;
\tld.global.f32 \t%f1, [%rd9];
\tld.global.f32 \t%f2, [%rd9+4];
\tld.global.f32 \t%f3, [%rd9+256];
\tld.global.f32 \t%f4, [%rd9+260];
\tmma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%f5, %f6, %f7, %f8}, {%r10, %r11, %r12, %r13}, {%r14, %r15}, {%f1, %f2, %f3, %f4};
\tadd.s64 \t%rd10, %rd1, %rd8;
\tst.global.f32 \t[%rd10], %f5;
\tst.global.f32 \t[%rd10+4], %f6;
\tst.global.f32 \t[%rd10+256], %f7;
\tst.global.f32 \t[%rd10+260], %f8;
";
    let ptx = module("", &[".u64", ".u64", ".u64", ".u64"], "", body);
    // Small integers (exact in TF32), each with junk in the 13 low mantissa bits that the
    // tensor core ignores (some of it above half a TF32 ulp, so rounding would differ).
    let junk = |i: usize| ((i * 2_654_435_761) >> 7) as u32 & 0x1fff;
    let int_a = |i: usize, k: usize| ((i * 3 + k * 5) % 9) as f32 - 4.0;
    let int_b = |k: usize, n: usize| ((k * 7 + n * 2) % 5) as f32 - 2.0;
    let with_junk = |x: f32, i: usize| f32::from_bits(x.to_bits() | junk(i));
    let mut a = [0f32; 128]; // row-major 16×8
    let mut b = [0f32; 64]; // column-major: B[k][n] at n·8 + k
    let mut c = [0f32; 128]; // row-major 16×8
    for (idx, v) in a.iter_mut().enumerate() {
        *v = with_junk(int_a(idx / 8, idx % 8), idx);
    }
    for (idx, v) in b.iter_mut().enumerate() {
        *v = with_junk(int_b(idx % 8, idx / 8), idx + 1000);
    }
    for (idx, v) in c.iter_mut().enumerate() {
        // Full f32 precision (C is not converted to TF32); every partial sum stays exact.
        *v = ((idx / 8) as f32 - (idx % 8) as f32) * 0.25 + 2f32.powi(-14);
    }
    let tf32 = |x: f32| f32::from_bits(x.to_bits() & !0x1fff);
    let mut want = [0f32; 128];
    for (idx, d) in want.iter_mut().enumerate() {
        let (i, n) = (idx / 8, idx % 8);
        let mut acc = c[idx];
        for k in 0..8 {
            acc += tf32(a[i * 8 + k]) * tf32(b[n * 8 + k]);
        }
        *d = acc;
    }
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let (mut m, k) = load(&ptx);
    let pa = upload(&mut m, &bytes(&a));
    let pb = upload(&mut m, &bytes(&b));
    let pc = upload(&mut m, &bytes(&c));
    let pd = m.mem.alloc(512).unwrap();
    m.launch(
        k,
        &block(32),
        &[
            &pd.to_le_bytes(),
            &pa.to_le_bytes(),
            &pb.to_le_bytes(),
            &pc.to_le_bytes(),
        ],
    )
    .unwrap();
    let got = words32(&download(&m, pd, 512));
    for (idx, (&g, &w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            g,
            w.to_bits(),
            "D[{}][{}]: {} vs {w}",
            idx / 8,
            idx % 8,
            f32::from_bits(g)
        );
    }
    // At least one product must have depended on the truncation.
    let rounded_differs = a.iter().any(|x| (x.to_bits() & 0x1000) != 0);
    assert!(rounded_differs);
}

// ---------------------------------------------------------------------------------------------
// 8. Faults and launch validation.

/// Kernel `k(out, in)` with `%r1` = tid, `%rd1` = out, `%rd2` = in (global addresses).
fn two_pointer_kernel(decls: &str, body: &str) -> String {
    let head = "\tld.param.u64 \t%rd1, [k_param_0];
\tld.param.u64 \t%rd2, [k_param_1];
\tcvta.to.global.u64 \t%rd1, %rd1;
\tcvta.to.global.u64 \t%rd2, %rd2;
\tmov.u32 \t%r1, %tid.x;
";
    module("", &[".u64", ".u64"], decls, &format!("{head}{body}"))
}

/// Launch a [`two_pointer_kernel`] on `threads` threads with a written output buffer and an
/// input buffer of `in_bytes` (written when `write_in`).
fn launch_two(
    ptx: &str,
    threads: u32,
    in_bytes: usize,
    write_in: bool,
) -> EmuResult<LaunchProfile> {
    let (mut m, k) = load(ptx);
    let out = m.mem.alloc(threads as usize * 4).unwrap();
    m.mem.memset(out, 0, threads as usize * 4).unwrap();
    let inp = m.mem.alloc(in_bytes).unwrap();
    if write_in {
        m.mem.memset(inp, 0, in_bytes).unwrap();
    }
    m.launch(
        k,
        &block(threads),
        &[&out.to_le_bytes(), &inp.to_le_bytes()],
    )
}

#[test]
fn fault_global_load_one_past_the_end_is_out_of_bounds() {
    let ptx = two_pointer_kernel(
        "",
        "\tadd.s32 \t%r2, %r1, 1;
\tmul.wide.u32 \t%rd3, %r2, 4;
\tadd.s64 \t%rd4, %rd2, %rd3;
\tld.global.f32 \t%f1, [%rd4];
\tmul.wide.u32 \t%rd5, %r1, 4;
\tadd.s64 \t%rd6, %rd1, %rd5;
\tst.global.f32 \t[%rd6], %f1;
",
    );
    let f = fault_of(launch_two(&ptx, 32, 128, true));
    assert_eq!(f.kind, FaultKind::OutOfBounds, "{f}");
    assert_eq!(
        f.ptx_line,
        line_of(&ptx, "ld.global.f32 \t%f1, [%rd4]"),
        "{f}"
    );
    assert_eq!(
        f.thread,
        [31, 0, 0],
        "only the last thread reads past the end: {f}"
    );
    assert_eq!(f.kernel, "k");
    assert!(f.instruction.starts_with("ld.global.f32"), "{f}");
    assert!(f.detail.contains("past the end"), "{f}");
}

/// Thread t loads element t + 1 of a 64-element buffer that was freed before the launch (a
/// live 128-byte buffer lies just before it).
fn load_from_freed_buffer() -> (String, Fault) {
    let ptx = two_pointer_kernel(
        "",
        "\tadd.s32 \t%r2, %r1, 1;
\tmul.wide.u32 \t%rd3, %r2, 4;
\tadd.s64 \t%rd4, %rd2, %rd3;
\tld.global.f32 \t%f1, [%rd4];
\tmul.wide.u32 \t%rd5, %r1, 4;
\tadd.s64 \t%rd6, %rd1, %rd5;
\tst.global.f32 \t[%rd6], %f1;
",
    );
    let (mut m, k) = load(&ptx);
    let out = m.mem.alloc(128).unwrap();
    let inp = upload(&mut m, &[0u8; 256]);
    m.mem.free(inp).unwrap();
    let f = fault_of(m.launch(k, &block(32), &[&out.to_le_bytes(), &inp.to_le_bytes()]));
    (ptx, f)
}

#[test]
fn fault_load_from_a_freed_buffer_is_out_of_bounds() {
    let (ptx, f) = load_from_freed_buffer();
    assert_eq!(f.kind, FaultKind::OutOfBounds, "{f}");
    assert_eq!(
        f.ptx_line,
        line_of(&ptx, "ld.global.f32 \t%f1, [%rd4]"),
        "{f}"
    );
    assert_eq!(f.thread, [0, 0, 0], "{f}");
}

#[test]
fn fault_load_from_a_freed_buffer_says_it_was_freed() {
    let (_, f) = load_from_freed_buffer();
    assert!(f.detail.contains("freed"), "{f}");
    assert!(!f.detail.contains("past the end"), "{f}");
}

#[test]
fn fault_misaligned_global_load() {
    let ptx = two_pointer_kernel(
        "",
        "\tld.global.f32 \t%f1, [%rd2+2];
\tst.global.f32 \t[%rd1], %f1;
",
    );
    let f = fault_of(launch_two(&ptx, 1, 64, true));
    assert_eq!(f.kind, FaultKind::Misaligned, "{f}");
    assert_eq!(f.ptx_line, line_of(&ptx, "[%rd2+2]"), "{f}");
    assert!(f.detail.contains("aligned"), "{f}");
    // A vector access must be aligned to its whole size: v4.f32 at 8 mod 16 is misaligned.
    let ptx = two_pointer_kernel(
        "",
        "\tld.global.v4.f32 \t{%f1, %f2, %f3, %f4}, [%rd2+8];
\tst.global.f32 \t[%rd1], %f1;
",
    );
    let f = fault_of(launch_two(&ptx, 1, 64, true));
    assert_eq!(f.kind, FaultKind::Misaligned, "{f}");
    assert_eq!(f.ptx_line, line_of(&ptx, "[%rd2+8]"), "{f}");
    assert!(f.detail.contains("16-byte"), "{f}");
}

#[test]
fn fault_load_of_never_written_memory() {
    let ptx = two_pointer_kernel(
        "",
        "\tmul.wide.u32 \t%rd3, %r1, 4;
\tadd.s64 \t%rd4, %rd2, %rd3;
\tld.global.u32 \t%r2, [%rd4];
\tadd.s64 \t%rd5, %rd1, %rd3;
\tst.global.u32 \t[%rd5], %r2;
",
    );
    let f = fault_of(launch_two(&ptx, 32, 128, false));
    assert_eq!(f.kind, FaultKind::UninitialisedRead, "{f}");
    assert_eq!(f.ptx_line, line_of(&ptx, "ld.global.u32 \t%r2"), "{f}");
    assert_eq!(f.thread, [0, 0, 0], "{f}");
    assert!(f.detail.contains("never written"), "{f}");
    // The same kernel over written memory runs.
    launch_two(&ptx, 32, 128, true).unwrap();
}

/// Lane 0 writes a shared word, `sync`, then every lane reads it.
fn shared_broadcast_kernel(sync: &str) -> String {
    two_pointer_kernel(
        "\t.shared .align 4 .b8 sm[4];\n",
        &"\tsetp.eq.s32 \t%p1, %r1, 0;
\tadd.s32 \t%r3, %r1, 42;
\t@%p1 st.shared.u32 \t[sm], %r3;
SYNC
\tld.shared.u32 \t%r2, [sm];
\tmul.wide.u32 \t%rd3, %r1, 4;
\tadd.s64 \t%rd4, %rd1, %rd3;
\tst.global.u32 \t[%rd4], %r2;
"
        .replace("SYNC", sync),
    )
}

#[test]
fn fault_shared_read_after_write_without_a_barrier_is_a_race() {
    let ptx = shared_broadcast_kernel("");
    let f = fault_of(launch_two(&ptx, 32, 4, true));
    assert_eq!(f.kind, FaultKind::SharedRace, "{f}");
    assert_eq!(f.ptx_line, line_of(&ptx, "ld.shared.u32"), "{f}");
    assert_eq!(
        f.thread,
        [1, 0, 0],
        "lane 0 reads its own write; lane 1 races: {f}"
    );
    assert!(
        f.detail.contains("thread (0,0,0)") && f.detail.contains("wrote"),
        "{f}"
    );
}

/// After a barrier every lane reads a word, `sync`, then lane 5 overwrites it.
fn shared_write_after_reads_kernel(sync: &str) -> String {
    two_pointer_kernel(
        "\t.shared .align 4 .b8 sm[4];\n",
        &"\tsetp.eq.s32 \t%p1, %r1, 0;
\t@%p1 st.shared.u32 \t[sm], %r1;
\tbar.sync \t0;
\tld.shared.u32 \t%r2, [sm];
\tsetp.eq.s32 \t%p2, %r1, 5;
SYNC
\t@%p2 st.shared.u32 \t[sm], %r6;
"
        .replace("SYNC", sync),
    )
}

#[test]
fn fault_shared_write_after_reads_without_sync_is_a_race() {
    let ptx = shared_write_after_reads_kernel("");
    let f = fault_of(launch_two(&ptx, 32, 4, true));
    assert_eq!(f.kind, FaultKind::SharedRace, "{f}");
    assert_eq!(f.ptx_line, line_of(&ptx, "[sm], %r6"), "{f}");
    assert_eq!(f.thread, [5, 0, 0], "{f}");
    assert!(f.detail.contains("read"), "{f}");
    let ptx = shared_write_after_reads_kernel("\tbar.warp.sync \t-1;");
    launch_two(&ptx, 32, 4, true).unwrap();
}

#[test]
fn fault_warp_sync_does_not_order_shared_accesses_of_another_warp() {
    let ptx = shared_broadcast_kernel("\tbar.warp.sync \t-1;");
    let f = fault_of(launch_two(&ptx, 64, 4, true));
    assert_eq!(f.kind, FaultKind::SharedRace, "{f}");
    assert_eq!(f.ptx_line, line_of(&ptx, "ld.shared.u32"), "{f}");
    assert!(f.thread[0] >= 32, "a thread of warp 1: {f}");
    assert!(f.detail.contains("thread (0,0,0)"), "{f}");
    // A block-wide barrier does order them.
    launch_two(&shared_broadcast_kernel("\tbar.sync \t0;"), 64, 4, true).unwrap();
}

#[test]
fn shared_read_after_write_with_warp_sync_or_barrier_passes() {
    for sync in ["\tbar.warp.sync \t-1;", "\tbar.sync \t0;"] {
        let ptx = shared_broadcast_kernel(sync);
        let (mut m, k) = load(&ptx);
        let out = m.mem.alloc(128).unwrap();
        m.launch(k, &block(32), &[&out.to_le_bytes(), &out.to_le_bytes()])
            .unwrap_or_else(|e| panic!("with {sync}: {e}"));
        assert_eq!(words32(&download(&m, out, 128)), [42; 32], "with {sync}");
    }
}

#[test]
fn fault_shared_load_of_an_unwritten_word() {
    let ptx = two_pointer_kernel(
        "\t.shared .align 4 .b8 sm[128];\n",
        "\tld.shared.u32 \t%r2, [sm+8];
\tst.global.u32 \t[%rd1], %r2;
",
    );
    let f = fault_of(launch_two(&ptx, 1, 4, true));
    assert_eq!(f.kind, FaultKind::UninitialisedRead, "{f}");
    assert_eq!(f.ptx_line, line_of(&ptx, "[sm+8]"), "{f}");
}

#[test]
fn bar_sync_is_not_blocked_by_a_warp_that_exited() {
    let ptx = two_pointer_kernel(
        "\t.shared .align 4 .b8 sm[128];\n",
        "\tsetp.ge.u32 \t%p1, %r1, 32;
\t@%p1 bra \t$L__done;
\tmul.wide.u32 \t%rd3, %r1, 4;
\tst.shared.u32 \t[%rd3], %r1;
\tbar.sync \t0;
\txor.b32 \t%r5, %r1, 31;
\tmul.wide.u32 \t%rd5, %r5, 4;
\tld.shared.u32 \t%r2, [%rd5];
\tadd.s64 \t%rd4, %rd1, %rd3;
\tst.global.u32 \t[%rd4], %r2;
$L__done:
",
    );
    let (mut m, k) = load(&ptx);
    let out = m.mem.alloc(256).unwrap();
    m.mem.memset(out, 0, 256).unwrap();
    m.launch(k, &block(64), &[&out.to_le_bytes(), &out.to_le_bytes()])
        .unwrap();
    let w = words32(&download(&m, out, 256));
    for (t, &v) in w.iter().enumerate() {
        let want = if t < 32 { 31 - t as u32 } else { 0 };
        assert_eq!(v, want, "thread {t}");
    }
}

#[test]
fn fault_shfl_waiting_for_an_exited_lane_while_another_warp_waits_at_a_barrier() {
    let ptx = two_pointer_kernel(
        "",
        "\tsetp.lt.u32 \t%p1, %r1, 32;
\t@%p1 bra \t$L__warp0;
\tbar.sync \t0;
\tbra.uni \t$L__done;
$L__warp0:
\tsetp.eq.s32 \t%p2, %r1, 3;
\t@%p2 bra \t$L__done;
\tshfl.sync.bfly.b32 \t%r2, %r1, 1, 31, -1;
\tmul.wide.u32 \t%rd3, %r1, 4;
\tadd.s64 \t%rd4, %rd1, %rd3;
\tst.global.u32 \t[%rd4], %r2;
$L__done:
",
    );
    let f = fault_of(launch_two(&ptx, 64, 4, true));
    assert_eq!(f.kind, FaultKind::Deadlock, "{f}");
    assert_eq!(f.ptx_line, line_of(&ptx, "shfl.sync"), "{f}");
    assert!(
        f.thread[0] < 32 && f.thread[0] != 3,
        "a lane of warp 0 at the shfl: {f}"
    );
    assert!(
        f.detail.contains("lane 3") && f.detail.contains("exited"),
        "{f}"
    );
}

#[test]
fn fault_full_mask_shfl_after_lane_5_exited() {
    let ptx = two_pointer_kernel(
        "",
        "\tsetp.eq.s32 \t%p1, %r1, 5;
\t@%p1 ret;
\tshfl.sync.idx.b32 \t%r2, %r1, 0, 31, -1;
\tmul.wide.u32 \t%rd3, %r1, 4;
\tadd.s64 \t%rd4, %rd1, %rd3;
\tst.global.u32 \t[%rd4], %r2;
",
    );
    let f = fault_of(launch_two(&ptx, 32, 4, true));
    assert_eq!(f.kind, FaultKind::Deadlock, "{f}");
    assert_eq!(f.ptx_line, line_of(&ptx, "shfl.sync"), "{f}");
    assert_ne!(f.thread[0], 5, "{f}");
    assert!(
        f.detail.contains("lane 5") && f.detail.contains("exited"),
        "{f}"
    );
}

#[test]
fn fault_shfl_waiting_for_lanes_held_at_a_bar_sync() {
    let ptx = two_pointer_kernel(
        "",
        "\tsetp.lt.u32 \t%p1, %r1, 16;
\t@%p1 bra \t$L__low;
\tshfl.sync.bfly.b32 \t%r2, %r1, 1, 31, -1;
\tbra.uni \t$L__done;
$L__low:
\tbar.sync \t0;
$L__done:
",
    );
    let f = fault_of(launch_two(&ptx, 32, 4, true));
    assert_eq!(f.kind, FaultKind::Deadlock, "{f}");
    assert_eq!(f.ptx_line, line_of(&ptx, "shfl.sync"), "{f}");
    assert!(f.detail.contains("bar.sync"), "{f}");
}

#[test]
fn fault_bar_sync_in_divergent_code_of_one_warp() {
    let ptx = two_pointer_kernel(
        "",
        "\tsetp.lt.u32 \t%p1, %r1, 16;
\t@%p1 bra \t$L__low;
\tbar.sync \t0; // high
\tbra.uni \t$L__done;
$L__low:
\tbar.sync \t0; // low
$L__done:
",
    );
    let f = fault_of(launch_two(&ptx, 32, 4, true));
    assert_eq!(f.kind, FaultKind::Deadlock, "{f}");
    let lines = [line_of(&ptx, "// high"), line_of(&ptx, "// low")];
    assert!(lines.contains(&f.ptx_line), "{f}");
    assert!(f.detail.contains("aligned"), "{f}");
}

#[test]
fn fault_mma_with_an_exited_lane() {
    let ptx = two_pointer_kernel(
        "",
        "\tsetp.eq.s32 \t%p1, %r1, 7;
\t@%p1 ret;
\tmov.b32 \t%r2, 0f3F800000;
\tmov.f32 \t%f1, 0f00000000;
\tmma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%f2, %f3, %f4, %f5}, {%r2, %r2, %r2, %r2}, {%r2, %r2}, {%f1, %f1, %f1, %f1};
",
    );
    let f = fault_of(launch_two(&ptx, 32, 4, true));
    assert_eq!(f.kind, FaultKind::Deadlock, "{f}");
    assert_eq!(f.ptx_line, line_of(&ptx, "mma.sync"), "{f}");
    assert!(f.detail.contains("lane 7"), "{f}");
}

#[test]
fn invalid_launches_are_refused_before_running() {
    let ptx = two_pointer_kernel("", "");
    let (mut m, k) = load(&ptx);
    let p = m.mem.alloc(4).unwrap().to_le_bytes();
    let launch = |m: &mut Machine, block: [u32; 3], params: &[&[u8]]| {
        let cfg = LaunchConfig {
            grid: [1, 1, 1],
            block,
            shared_bytes: 0,
        };
        match m.launch(k, &cfg, params) {
            Err(EmuError::InvalidLaunch(msg)) => msg,
            r => panic!("expected InvalidLaunch, got {r:?}"),
        }
    };
    let msg = launch(&mut m, [1025, 1, 1], &[&p, &p]);
    assert!(msg.contains("1024"), "{msg}");
    let msg = launch(&mut m, [32, 32, 2], &[&p, &p]);
    assert!(msg.contains("2048") && msg.contains("1024"), "{msg}");
    let msg = launch(&mut m, [0, 1, 1], &[&p, &p]);
    assert!(msg.contains("zero"), "{msg}");
    let msg = launch(&mut m, [32, 1, 1], &[&p, &p[..4]]);
    assert!(
        msg.contains("4 bytes") && msg.contains('8'),
        "both sizes named: {msg}"
    );
    let msg = launch(&mut m, [32, 1, 1], &[&p]);
    assert!(msg.contains('1') && msg.contains('2'), "{msg}");
    // A valid launch still runs.
    m.launch(k, &block(1024), &[&p, &p]).unwrap();
}

// ---------------------------------------------------------------------------------------------
// 9. Independent thread scheduling.

#[test]
fn diverged_lanes_reconverge_before_a_full_warp_shfl() {
    let body = "\tmov.u32 \t%r10, %laneid;
\tsetp.lt.u32 \t%p1, %r10, 16;
\t@!%p1 bra \t$L__else;
\tmul.lo.s32 \t%r11, %r1, 3;
\tbra.uni \t$L__join;
$L__else:
\tadd.s32 \t%r11, %r1, 100;
$L__join:
\tshfl.sync.bfly.b32 \t%r12, %r11, 16, 31, -1;
\tst.global.u32 \t[%rd5], %r12;
\t@!%p1 bra \t$L__else2;
\tmul.lo.s32 \t%r13, %r1, 3;
\tshfl.sync.bfly.b32 \t%r14, %r13, 16, 31, -1;
\tbra.uni \t$L__join2;
$L__else2:
\tadd.s32 \t%r15, %r1, 100;
\tshfl.sync.bfly.b32 \t%r14, %r15, 16, 31, -1;
$L__join2:
\tst.global.u32 \t[%rd5+8], %r14;
";
    let v = |t: usize| (if t < 16 { 3 * t } else { t + 100 }) as u64;
    let out = per_thread(body, &[[0u64; 1]; 32]);
    for (l, o) in out.iter().enumerate() {
        assert_eq!(o[0], v(l ^ 16), "after reconvergence, lane {l}");
        assert_eq!(o[1], v(l ^ 16), "shfl in both arms of the branch, lane {l}");
    }
}

#[test]
fn lane_dependent_loop_then_shfl() {
    let body = "\tmov.u32 \t%r10, %laneid;
\tmov.u32 \t%r11, 0;
\tmov.u32 \t%r12, 0;
$L__loop:
\tsetp.gt.u32 \t%p2, %r12, %r10;
\t@%p2 bra \t$L__after;
\tadd.s32 \t%r11, %r11, %r12;
\tadd.s32 \t%r12, %r12, 1;
\tbra.uni \t$L__loop;
$L__after:
\txor.b32 \t%r14, %r10, 31;
\tshfl.sync.idx.b32 \t%r13, %r11, %r14, 31, -1;
\tshfl.sync.bfly.b32 \t%r15, %r11, 1, 31, -1;
\tst.global.u32 \t[%rd5], %r13;
\tst.global.u32 \t[%rd5+8], %r15;
\tst.global.u32 \t[%rd5+16], %r11;
";
    let tri = |l: usize| (l * (l + 1) / 2) as u64;
    let out = per_thread(body, &[[0u64; 1]; 64]);
    for (t, o) in out.iter().enumerate() {
        let l = t % 32;
        assert_eq!(o[2], tri(l), "own sum, thread {t}");
        assert_eq!(o[0], tri(31 - l), "idx from lane 31-l, thread {t}");
        assert_eq!(o[1], tri(l ^ 1), "bfly 1, thread {t}");
    }
}

// ---------------------------------------------------------------------------------------------
// Profile counts.

/// The profile of a launch of `body` (after `%rd2` = in, `%r1` = tid) on `grid` blocks of
/// `threads` threads, over a written 16 KiB input.
fn profile_of(decls: &str, body: &str, grid: u32, threads: u32) -> LaunchProfile {
    let ptx = two_pointer_kernel(decls, body);
    let (mut m, k) = load(&ptx);
    m.profiling = true;
    let inp = m.mem.alloc(16 << 10).unwrap();
    m.mem.memset(inp, 1, 16 << 10).unwrap();
    let cfg = LaunchConfig {
        grid: [grid, 1, 1],
        block: [threads, 1, 1],
        shared_bytes: 0,
    };
    m.launch(k, &cfg, &[&inp.to_le_bytes(), &inp.to_le_bytes()])
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn profile_counts_global_sectors_of_coalesced_and_strided_loads() {
    let load_with_stride = |stride: u32| {
        profile_of(
            "",
            &format!(
                "\tmul.wide.u32 \t%rd3, %r1, {stride};
\tadd.s64 \t%rd4, %rd2, %rd3;
\tld.global.f32 \t%f1, [%rd4];
"
            ),
            1,
            32,
        )
    };
    let p = load_with_stride(4);
    assert_eq!(
        (
            p.global_requests,
            p.global_sectors,
            p.global_ideal_sectors,
            p.global_bytes
        ),
        (1, 4, 4, 128),
        "consecutive floats: {p:?}"
    );
    let p = load_with_stride(128);
    assert_eq!(
        (p.global_requests, p.global_sectors, p.global_ideal_sectors),
        (1, 32, 4),
        "a stride of 32 floats: {p:?}"
    );
    assert_eq!((p.shared_requests, p.barriers), (0, 0));
    let p = load_with_stride(0);
    assert_eq!(
        (p.global_requests, p.global_sectors, p.global_ideal_sectors),
        (1, 1, 1),
        "a broadcast of one word: {p:?}"
    );
}

#[test]
fn profile_counts_shared_wavefronts_of_bank_conflicts() {
    let store_with_stride = |stride: u32| {
        profile_of(
            "\t.shared .align 4 .b8 sm[4096];\n",
            &format!(
                "\tmul.lo.s32 \t%r2, %r1, {stride};
\tmov.u32 \t%r3, sm;
\tadd.s32 \t%r4, %r3, %r2;
\tst.shared.u32 \t[%r4], %r1;
"
            ),
            1,
            32,
        )
    };
    let p = store_with_stride(4);
    assert_eq!(
        (p.shared_requests, p.shared_wavefronts),
        (1, 1),
        "stride 1 word: {p:?}"
    );
    let p = store_with_stride(128);
    assert_eq!(
        (p.shared_requests, p.shared_wavefronts),
        (1, 32),
        "stride 32 words: {p:?}"
    );
    assert_eq!(p.global_requests, 0);
    // Every lane loading one word: a broadcast, one wavefront (after a store of stride 1).
    let p = profile_of(
        "\t.shared .align 4 .b8 sm[128];\n",
        "\tmul.lo.s32 \t%r2, %r1, 4;
\tst.shared.u32 \t[%r2], %r1;
\tbar.sync \t0;
\tld.shared.u32 \t%r3, [sm+8];
",
        1,
        32,
    );
    assert_eq!(
        (p.shared_requests, p.shared_wavefronts),
        (2, 2),
        "broadcast: {p:?}"
    );
    // 16 bytes per lane: 128 words over 32 banks, 4 per bank.
    let p = profile_of(
        "\t.shared .align 16 .b8 sm[512];\n",
        "\tmul.lo.s32 \t%r2, %r1, 16;
\tmov.f32 \t%f1, 0f3F800000;
\tst.shared.v4.f32 \t[%r2], {%f1, %f1, %f1, %f1};
",
        1,
        32,
    );
    assert_eq!(
        (p.shared_requests, p.shared_wavefronts),
        (1, 4),
        "v4 stores: {p:?}"
    );
}

#[test]
fn profile_counts_each_barrier_once_per_block() {
    let p = profile_of("", "\tbar.sync \t0;\n\tbar.sync \t0;\n", 3, 64);
    assert_eq!(p.barriers, 6, "two barriers in each of three blocks: {p:?}");
}

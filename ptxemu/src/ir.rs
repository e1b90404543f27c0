//! The decoded form of a PTX module: what the parser ([`crate::parse`]) produces and the
//! interpreter ([`crate::exec`]) runs.
//!
//! Every PTX instruction becomes one [`Inst`] whose [`Op`] has its types and modifiers already
//! resolved, so the interpreter never looks at text. Registers are numbered slots: each thread
//! has one `u64` per slot, holding the value zero-extended from its width (a `.b32`/`.f32`
//! register uses the low 32 bits, a predicate is 0 or 1). Special registers (`%tid.x` …) get
//! slots too, filled when a warp starts. Immediates are stored as the bits of the instruction's
//! type (`0f3F800000` as 0x3f800000, `-1` of a `.u32` as 0xffff_ffff).

use crate::float::Rounding;

/// A register slot.
pub type Reg = u32;

/// A source operand: a register or a constant (already in the instruction's type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    Reg(Reg),
    Imm(u64),
}

/// A state space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Space {
    /// The generic address space (global, with the shared and local windows inside it).
    Generic,
    Global,
    Shared,
    Local,
    Param,
}

/// The scalar types of PTX (`.bN` are bit types: treated as unsigned).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ty {
    B8,
    B16,
    B32,
    B64,
    U8,
    U16,
    U32,
    U64,
    S8,
    S16,
    S32,
    S64,
    F16,
    F32,
    F64,
    Pred,
    Tf32,
}

impl Ty {
    /// Width in bytes (a predicate counts as 1).
    pub fn bytes(self) -> u32 {
        match self {
            Ty::B8 | Ty::U8 | Ty::S8 | Ty::Pred => 1,
            Ty::B16 | Ty::U16 | Ty::S16 | Ty::F16 => 2,
            Ty::B32 | Ty::U32 | Ty::S32 | Ty::F32 | Ty::Tf32 => 4,
            Ty::B64 | Ty::U64 | Ty::S64 | Ty::F64 => 8,
        }
    }
    pub fn bits(self) -> u32 {
        self.bytes() * 8
    }
    pub fn is_signed(self) -> bool {
        matches!(self, Ty::S8 | Ty::S16 | Ty::S32 | Ty::S64)
    }
    pub fn is_float(self) -> bool {
        matches!(self, Ty::F16 | Ty::F32 | Ty::F64 | Ty::Tf32)
    }
}

/// Integer (and bitwise) operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntOp {
    Add,
    Sub,
    /// `mul.lo`: the low half of the product.
    MulLo,
    /// `mul.hi`: the high half of the double-width product.
    MulHi,
    /// `mul.wide`: the full product into a register of twice the width.
    MulWide,
    /// `mad.lo` (a·b + c, low half).
    MadLo,
    MadHi,
    MadWide,
    Div,
    Rem,
    Min,
    Max,
    Neg,
    Abs,
    And,
    Or,
    Xor,
    Not,
    /// Shift left; the amount is clamped (≥ width gives 0).
    Shl,
    /// Shift right, logical for unsigned/bit types and arithmetic for signed ones.
    Shr,
    /// `bfi`: insert the low `d` bits of `a` into `b` at position `c` (with `len` in `e`).
    Bfi,
}

/// f32/f64 operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloatOp {
    Add,
    Sub,
    Mul,
    Fma,
    Div,
    /// `div.approx` / `div.full` (within 2 ulp).
    DivApprox,
    Rcp,
    RcpApprox,
    Sqrt,
    SqrtApprox,
    RsqrtApprox,
    Ex2Approx,
    Lg2Approx,
    SinApprox,
    CosApprox,
    Neg,
    Abs,
    Min,
    Max,
}

/// The comparison of a `setp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Lo,
    Ls,
    Hi,
    Hs,
    /// The unordered float forms: true when either side is NaN.
    Equ,
    Neu,
    Ltu,
    Leu,
    Gtu,
    Geu,
    /// Both ordered (`num`) / either NaN (`nan`).
    Num,
    Nan,
}

/// How a `setp` result is combined with a third predicate (`setp.lt.and.f32 p, a, b, q`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoolOp {
    And,
    Or,
    Xor,
}

/// Rounding of a float → integer or float → integral-float `cvt` (`.rni .rzi .rmi .rpi`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntRounding {
    Nearest,
    Zero,
    Down,
    Up,
}

/// The exchange pattern of a `shfl.sync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShflMode {
    Up,
    Down,
    Bfly,
    Idx,
}

/// An address operand `[base + offset]`: a register plus a constant, or a constant alone (a
/// symbol's address already added in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addr {
    pub base: Option<Reg>,
    pub offset: i64,
}

/// Integer arithmetic and logic: `op.ty d, a, b, c, e` (operands an op does not take are
/// `Imm(0)`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IntArith {
    pub op: IntOp,
    pub ty: Ty,
    pub d: Reg,
    pub a: Operand,
    pub b: Operand,
    pub c: Operand,
    pub e: Operand,
}

/// f32 arithmetic with its rounding, `.ftz` and `.sat` (`b` and `c` `Imm(0)` where unused).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct F32Arith {
    pub op: FloatOp,
    pub rnd: Rounding,
    pub ftz: bool,
    pub sat: bool,
    pub d: Reg,
    pub a: Operand,
    pub b: Operand,
    pub c: Operand,
}

/// f64 arithmetic with its rounding (`b` and `c` `Imm(0)` where unused).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct F64Arith {
    pub op: FloatOp,
    pub rnd: Rounding,
    pub d: Reg,
    pub a: Operand,
    pub b: Operand,
    pub c: Operand,
}

/// `cvt.dty.sty d, a` with its rounding and modifiers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cvt {
    pub dty: Ty,
    pub sty: Ty,
    /// Float rounding (`.rn .rz .rm .rp`) for conversions whose result is a float (`.rna`
    /// for `tf32`).
    pub frnd: Option<Rounding>,
    /// Integer rounding (`.rni .rzi .rmi .rpi`) for float → integer or float → integral.
    pub irnd: Option<IntRounding>,
    /// `cvt.rna.tf32.f32`: round to nearest, ties away from zero.
    pub rna: bool,
    pub ftz: bool,
    pub sat: bool,
    pub d: Reg,
    pub a: Operand,
}

/// One decoded instruction.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// `mov` of a register, an immediate, a special register or a symbol's address.
    Mov {
        d: Reg,
        a: Operand,
    },
    /// `mov.b64 d, {lo, hi}` / `mov.b32 d, {lo, hi}` (halves of `half_bits` each).
    Pack {
        d: Reg,
        parts: Vec<Operand>,
        half_bits: u32,
    },
    /// `mov.b64 {lo, hi}, a`.
    Unpack {
        parts: Vec<Reg>,
        a: Operand,
        half_bits: u32,
    },
    Int(IntArith),
    /// f32 arithmetic with its rounding, `.ftz` and `.sat`.
    F32(F32Arith),
    /// f64 arithmetic.
    F64(F64Arith),
    Setp {
        cmp: Cmp,
        ty: Ty,
        ftz: bool,
        p: Reg,
        /// The complement `q` of `setp p|q`.
        q: Option<Reg>,
        a: Operand,
        b: Operand,
        /// `setp.cmp.boolop p, a, b, [!]c`.
        combine: Option<(BoolOp, Operand, bool)>,
    },
    /// Predicate logic: `and/or/xor.pred d, a, b`, `not.pred d, a` (b unused).
    PredLogic {
        op: IntOp,
        d: Reg,
        a: Operand,
        b: Operand,
    },
    Selp {
        ty: Ty,
        d: Reg,
        a: Operand,
        b: Operand,
        p: Operand,
    },
    Cvt(Cvt),
    /// `cvta.to.SPACE` (to_generic = false) or `cvta.SPACE` (to_generic = true).
    Cvta {
        space: Space,
        to_generic: bool,
        d: Reg,
        a: Operand,
    },
    Ld {
        space: Space,
        ty: Ty,
        d: Vec<Reg>,
        addr: Addr,
    },
    St {
        space: Space,
        ty: Ty,
        a: Vec<Operand>,
        addr: Addr,
    },
    /// `atom.SPACE.add.TY d, [addr], b` (only `add` is emitted by the kernels).
    AtomAdd {
        space: Space,
        ty: Ty,
        d: Reg,
        addr: Addr,
        b: Operand,
    },
    /// A jump to instruction index `target`.
    Bra {
        target: u32,
    },
    /// `ret` / `exit` from a kernel: the thread ends.
    Exit,
    /// `bar.sync id[, count]` (`barrier.sync.aligned` too).
    Bar {
        id: Operand,
        count: Option<Operand>,
    },
    /// `bar.warp.sync mask` (`__syncwarp`): the lanes of the mask meet.
    WarpSync {
        mask: Operand,
    },
    Shfl {
        mode: ShflMode,
        d: Reg,
        p: Option<Reg>,
        a: Operand,
        b: Operand,
        c: Operand,
        mask: Operand,
    },
    /// `mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32`.
    MmaTf32 {
        d: [Reg; 4],
        a: [Operand; 4],
        b: [Operand; 2],
        c: [Operand; 4],
    },
}

/// One instruction with its guard and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Inst {
    pub op: Op,
    /// `@p` (false) or `@!p` (true).
    pub guard: Option<(Reg, bool)>,
    /// 1-based line in the PTX text.
    pub ptx_line: u32,
    /// Index into [`Kernel::locs`] of the `.loc` in force (u32::MAX when none).
    pub loc: u32,
    /// The opcode with its modifiers as written, e.g. `fma.rn.f32` (the coverage test's unit).
    pub form: String,
    /// The whole instruction as written in the PTX, for messages.
    pub text: String,
}

/// A special register a kernel reads, and the slot it lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Special {
    Tid(u8),
    Ntid(u8),
    Ctaid(u8),
    Nctaid(u8),
    LaneId,
    WarpId,
    NWarpId,
    /// `%laneid`-relative masks (`%lanemask_lt` …): 0 lt, 1 le, 2 eq, 3 ge, 4 gt.
    LaneMask(u8),
    /// Always-zero clocks and SM ids (hardware-independent stand-ins).
    Zero,
}

/// A kernel parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub size: usize,
    pub align: usize,
    /// Byte offset in the parameter buffer.
    pub offset: usize,
}

/// A `.loc`: the CUDA source position of the instructions that follow it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceLoc {
    pub file: u32,
    pub line: u32,
    /// `inlined_at FILE LINE`.
    pub inlined_at: Option<(u32, u32)>,
}

/// One `.entry`.
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    pub name: String,
    pub params: Vec<Param>,
    /// Size of the parameter buffer.
    pub param_bytes: usize,
    pub insts: Vec<Inst>,
    /// Register slots per thread (virtual registers and special registers).
    pub num_regs: usize,
    /// Register names by slot, for messages.
    pub reg_names: Vec<String>,
    /// Special registers and their slots.
    pub specials: Vec<(Reg, Special)>,
    /// Static shared memory in bytes; dynamic (`extern .shared`) memory starts at the aligned
    /// end of it, at `dynamic_shared_offset`.
    pub shared_bytes: u32,
    pub dynamic_shared_offset: u32,
    /// Local memory (`.local` arrays, the stack depot) per thread in bytes.
    pub local_bytes: u32,
    /// `.maxntid` product, when declared.
    pub max_ntid: Option<u32>,
    pub locs: Vec<SourceLoc>,
}

/// A module-scope `.global` variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Global {
    pub name: String,
    pub align: usize,
    /// Its initial bytes (zeros when not initialised).
    pub init: Vec<u8>,
    /// Device address, given by the loader as the module is parsed.
    pub address: u64,
}

/// A parsed module.
#[derive(Clone, Debug, PartialEq)]
pub struct Module {
    pub version: (u32, u32),
    pub target: String,
    pub kernels: Vec<Kernel>,
    pub globals: Vec<Global>,
    /// `.file N "name"`.
    pub files: Vec<(u32, String)>,
}

impl Module {
    /// `file:line` (and where it was inlined) of a kernel's source location `loc`.
    pub fn describe_loc(&self, kernel: &Kernel, loc: u32) -> Option<String> {
        let l = kernel.locs.get(loc as usize)?;
        let name = |f: u32| {
            self.files
                .iter()
                .find(|(n, _)| *n == f)
                .map(|(_, s)| s.rsplit('/').next().unwrap_or(s).to_string())
                .unwrap_or_else(|| format!("file{f}"))
        };
        let mut s = format!("{}:{}", name(l.file), l.line);
        if let Some((f, line)) = l.inlined_at {
            s += &format!(", inlined at {}:{line}", name(f));
        }
        Some(s)
    }
}

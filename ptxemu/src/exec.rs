//! The interpreter: instruction semantics and the scheduler.
//!
//! **Execution model (sm_70+, independent thread scheduling).** Every thread has its own
//! program counter and runs until it reaches a collective (`bar.sync`, `shfl.sync`,
//! `mma.sync`) or exits; there it waits until every thread the collective needs has arrived.
//! Nothing runs in lockstep by rule. For speed, the lanes of a warp whose program counters are
//! equal run together (a *group*: one decoded instruction applied to a lane mask); the group with
//! the lowest program counter runs first, so lanes that diverged meet again where their paths
//! join. That choice changes only the speed, never the result of a correctly synchronised kernel;
//! a kernel that relies on warp-synchronous execution without synchronising is caught by the
//! shared-memory race check below, which knows only the synchronisation the ISA guarantees.
//!
//! **Checks.** Every access is bounds- and alignment-checked against its state space (global:
//! the allocation table; shared: the block's window; local: the thread's stack; param: the
//! parameter buffer). Loads of never-written global or shared memory fault. Shared memory has a
//! shadow word per 4 bytes recording the barrier interval, the last writer and the readers, so
//! two threads touching a word between two barriers (one of them writing) fault unless the same
//! warp synchronised in between (a full-warp `shfl.sync`, `bar.warp.sync` or `mma.sync`). A collective that some
//! required thread can never reach (it exited, or it waits elsewhere) is a deadlock fault.
//!
//! **Registers.** One `u64` per register slot per lane; a warp's registers are laid out
//! `[slot][lane]`, so one instruction reads and writes contiguous 32-lane rows.

// Lane loops index several 32-lane rows (registers, addresses, results) by the lane number:
// an iterator over one of them would hide that the index is the lane.
#![allow(clippy::needless_range_loop)]

use crate::error::{EmuError, EmuResult, Fault, FaultKind};
use crate::float::{self as fl, Rounding};
use crate::ir::*;
use crate::machine::LaunchConfig;
use crate::memory::GlobalMemory;
use crate::profile::LaunchProfile;

/// Generic addresses of the shared window (`cvta.shared`): offset + this.
pub const SHARED_WINDOW: u64 = 0x0000_1000_0000_0000;
/// Generic addresses of the local window (`cvta.local`): offset + this.
pub const LOCAL_WINDOW: u64 = 0x0000_2000_0000_0000;
const WINDOW_SIZE: u64 = 0x0000_1000_0000_0000;

const FULL: u32 = u32::MAX;

/// A lane's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lane {
    /// Runnable at its program counter.
    Ready,
    /// Waiting at the `bar.sync` at its program counter.
    AtBarrier,
    /// Waiting at the `shfl.sync` or `mma.sync` at its program counter.
    AtCollective,
    Exited,
    /// Beyond the block's thread count (a partial last warp).
    Absent,
}

struct Warp {
    pc: [u32; 32],
    state: [Lane; 32],
    /// Completed full-warp collectives: orders this warp's shared accesses (see [`Shadow`]).
    syncs: u32,
}

/// What is known about one 4-byte word of shared memory.
#[derive(Clone, Copy, Default)]
struct Shadow {
    written: bool,
    /// The barrier interval of `writer` and `readers` (1-based; 0 = none yet).
    epoch: u32,
    /// Last writer's thread index + 1 (0: none in this interval).
    writer: u32,
    writer_syncs: u32,
    /// 0: no reader in this interval; t + 1: only thread t; MANY: several.
    readers: u32,
    /// The warp of all readers (u32::MAX when they span warps) and the least warp-sync count
    /// among them.
    readers_warp: u32,
    readers_syncs: u32,
}

const MANY: u32 = u32::MAX;

/// One launch's state that outlives a block.
struct Launch<'a> {
    module: &'a Module,
    kernel: &'a Kernel,
    mem: &'a mut GlobalMemory,
    params: &'a [u8],
    cfg: LaunchConfig,
    profiling: bool,
    prof: LaunchProfile,
    /// Allocation hit by the last global access (most accesses of a warp hit the same one).
    last_alloc: usize,
}

/// One block's state.
struct Block {
    ctaid: [u32; 3],
    nthreads: u32,
    warps: Vec<Warp>,
    regs: Vec<u64>,
    shared: Vec<u8>,
    shadow: Vec<Shadow>,
    local: Vec<u8>,
    epoch: u32,
}

/// Run `kernel` over the whole grid.
pub fn run_kernel(
    module: &Module,
    kernel: &Kernel,
    mem: &mut GlobalMemory,
    cfg: &LaunchConfig,
    params: &[u8],
    profiling: bool,
) -> EmuResult<LaunchProfile> {
    let mut l = Launch {
        module,
        kernel,
        mem,
        params,
        cfg: *cfg,
        profiling,
        prof: LaunchProfile::default(),
        last_alloc: 0,
    };
    let [bx, by, bz] = cfg.block;
    let nthreads = bx * by * bz;
    let nwarps = nthreads.div_ceil(32) as usize;
    let shared_len =
        (kernel.dynamic_shared_offset.max(kernel.shared_bytes) + cfg.shared_bytes) as usize;
    let mut b = Block {
        ctaid: [0; 3],
        nthreads,
        warps: Vec::with_capacity(nwarps),
        regs: vec![0; nwarps * kernel.num_regs * 32],
        shared: vec![0; shared_len],
        shadow: vec![Shadow::default(); shared_len.div_ceil(4)],
        local: vec![0; nthreads as usize * kernel.local_bytes as usize],
        epoch: 1,
    };
    for z in 0..cfg.grid[2] {
        for y in 0..cfg.grid[1] {
            for x in 0..cfg.grid[0] {
                b.ctaid = [x, y, z];
                l.run_block(&mut b)?;
            }
        }
    }
    Ok(l.prof)
}

/// The bits of register operand `o` for `lane` of the warp whose rows are `r`.
#[inline(always)]
fn rd(r: &[u64], o: Operand, lane: usize) -> u64 {
    match o {
        Operand::Reg(x) => r[x as usize * 32 + lane],
        Operand::Imm(v) => v,
    }
}

#[inline(always)]
fn f32_of(v: u64) -> f32 {
    f32::from_bits(v as u32)
}

#[inline(always)]
fn bits_f32(x: f32) -> u64 {
    x.to_bits() as u64
}

#[inline(always)]
fn sext(v: u64, bits: u32) -> i64 {
    let s = 64 - bits;
    ((v << s) as i64) >> s
}

#[inline(always)]
fn mask_of(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// Apply `f` to every lane of `mask` (a plain loop when all 32 are active).
macro_rules! for_lanes {
    ($mask:expr, |$l:ident| $body:block) => {{
        let m: u32 = $mask;
        if m == FULL {
            for $l in 0..32usize $body
        } else {
            let mut m = m;
            while m != 0 {
                let $l = m.trailing_zeros() as usize;
                m &= m - 1;
                $body
            }
        }
    }};
}

/// d = f(a, b, c) for the lanes of `mask`.
#[inline(always)]
fn map3(
    r: &mut [u64],
    mask: u32,
    d: Reg,
    a: Operand,
    b: Operand,
    c: Operand,
    f: impl Fn(u64, u64, u64) -> u64,
) {
    let d = d as usize * 32;
    for_lanes!(mask, |l| {
        let v = f(rd(r, a, l), rd(r, b, l), rd(r, c, l));
        r[d + l] = v;
    });
}

impl Launch<'_> {
    fn fault(
        &self,
        b: &Block,
        w: usize,
        lane: usize,
        pc: u32,
        kind: FaultKind,
        detail: String,
    ) -> EmuError {
        let inst = self.kernel.insts.get(pc as usize);
        EmuError::Fault(Box::new(Fault {
            kind,
            kernel: self.kernel.name.clone(),
            block: b.ctaid,
            thread: self.tid(w as u32 * 32 + lane as u32),
            ptx_line: inst.map(|i| i.ptx_line).unwrap_or(0),
            instruction: inst.map(|i| i.text.clone()).unwrap_or_default(),
            source: inst.and_then(|i| self.module.describe_loc(self.kernel, i.loc)),
            detail,
        }))
    }

    /// `%tid` of the block's `t`-th thread (x fastest).
    fn tid(&self, t: u32) -> [u32; 3] {
        let [bx, by, _] = self.cfg.block;
        [t % bx, (t / bx) % by, t / (bx * by)]
    }

    fn thread_name(&self, t: u32) -> String {
        let [x, y, z] = self.tid(t);
        format!("thread ({x},{y},{z})")
    }

    fn init_block(&self, b: &mut Block) {
        let k = self.kernel;
        let nwarps = b.nthreads.div_ceil(32) as usize;
        b.warps.clear();
        for w in 0..nwarps {
            let mut warp = Warp {
                pc: [0; 32],
                state: [Lane::Ready; 32],
                syncs: 0,
            };
            for l in 0..32 {
                if w as u32 * 32 + l as u32 >= b.nthreads {
                    warp.state[l] = Lane::Absent;
                }
            }
            b.warps.push(warp);
            let r = &mut b.regs[w * k.num_regs * 32..(w + 1) * k.num_regs * 32];
            for &(slot, sp) in &k.specials {
                for l in 0..32u32 {
                    let t = w as u32 * 32 + l;
                    let tid = self.tid(t);
                    let v: u64 = match sp {
                        Special::Tid(d) => tid[d as usize] as u64,
                        Special::Ntid(d) => self.cfg.block[d as usize] as u64,
                        Special::Ctaid(d) => b.ctaid[d as usize] as u64,
                        Special::Nctaid(d) => self.cfg.grid[d as usize] as u64,
                        Special::LaneId => l as u64,
                        Special::WarpId => w as u64,
                        Special::NWarpId => nwarps as u64,
                        Special::LaneMask(m) => {
                            let bit = 1u64 << l;
                            (match m {
                                0 => bit - 1,
                                1 => (bit << 1) - 1,
                                2 => bit,
                                3 => !(bit - 1),
                                _ => !((bit << 1) - 1),
                            }) & 0xffff_ffff
                        }
                        Special::Zero => 0,
                    };
                    r[slot as usize * 32 + l as usize] = v;
                }
            }
        }
        b.shadow.fill(Shadow::default());
        b.epoch = 1;
    }

    fn run_block(&mut self, b: &mut Block) -> EmuResult<()> {
        self.init_block(b);
        loop {
            for w in 0..b.warps.len() {
                self.run_warp(b, w)?;
            }
            // Every warp is now blocked at a barrier, exited, or stuck at a collective.
            let mut waiting = 0u32;
            let mut live = 0u32;
            for warp in &b.warps {
                for l in 0..32 {
                    match warp.state[l] {
                        Lane::AtBarrier => {
                            waiting += 1;
                            live += 1;
                        }
                        Lane::Ready | Lane::AtCollective => live += 1,
                        _ => {}
                    }
                }
            }
            if live == 0 {
                return Ok(());
            }
            if waiting == live {
                self.release_barrier(b)?;
                continue;
            }
            return Err(self.deadlock(b));
        }
    }

    /// Every live thread waits at a barrier: check they wait at the same one, then let them go.
    fn release_barrier(&mut self, b: &mut Block) -> EmuResult<()> {
        let mut first: Option<(usize, usize, u32)> = None;
        for w in 0..b.warps.len() {
            let warp = &b.warps[w];
            let mut warp_pc: Option<u32> = None;
            for l in 0..32 {
                if warp.state[l] != Lane::AtBarrier {
                    continue;
                }
                let pc = warp.pc[l];
                // bar.sync is barrier.sync.aligned: all lanes of a warp at one instruction.
                if let Some(p) = warp_pc {
                    if p != pc {
                        let other = self.kernel.insts[p as usize].ptx_line;
                        return Err(self.fault(
                            b,
                            w,
                            l,
                            pc,
                            FaultKind::Deadlock,
                            format!(
                                "bar.sync is .aligned: the lanes of warp {w} must reach the same \
                                 barrier, but others of them wait at PTX line {other} (a \
                                 __syncthreads in divergent code)"
                            ),
                        ));
                    }
                }
                warp_pc = Some(pc);
                let id = self.barrier_id(b, w, l, pc)?;
                match first {
                    None => first = Some((w, l, id)),
                    Some((_, _, fid)) if fid != id => {
                        return Err(self.fault(
                            b,
                            w,
                            l,
                            pc,
                            FaultKind::Deadlock,
                            format!(
                                "waits at barrier {id} while other threads wait at barrier {fid}"
                            ),
                        ));
                    }
                    _ => {}
                }
            }
        }
        for warp in &mut b.warps {
            for l in 0..32 {
                if warp.state[l] == Lane::AtBarrier {
                    warp.state[l] = Lane::Ready;
                    warp.pc[l] += 1;
                }
            }
        }
        b.epoch += 1;
        self.prof.barriers += 1;
        Ok(())
    }

    fn barrier_id(&self, b: &Block, w: usize, l: usize, pc: u32) -> EmuResult<u32> {
        let r = &b.regs[w * self.kernel.num_regs * 32..];
        match &self.kernel.insts[pc as usize].op {
            Op::Bar { id, count } => {
                if let Some(c) = count {
                    let c = rd(r, *c, l) as u32;
                    if c != b.nthreads.div_ceil(32) * 32 {
                        return Err(self.fault(
                            b,
                            w,
                            l,
                            pc,
                            FaultKind::Unsupported,
                            format!(
                                "bar.sync with a thread count ({c}) other than the whole block"
                            ),
                        ));
                    }
                }
                Ok(rd(r, *id, l) as u32)
            }
            _ => Ok(0),
        }
    }

    fn deadlock(&self, b: &Block) -> EmuError {
        // Name one thread stuck at a collective and why it cannot complete.
        for (w, warp) in b.warps.iter().enumerate() {
            for l in 0..32 {
                if warp.state[l] == Lane::AtCollective {
                    let pc = warp.pc[l];
                    let mut at_bar = Vec::new();
                    for (l2, s) in warp.state.iter().enumerate() {
                        if *s == Lane::AtBarrier {
                            at_bar.push(l2);
                        }
                    }
                    return self.fault(
                        b,
                        w,
                        l,
                        pc,
                        FaultKind::Deadlock,
                        format!(
                            "waits for lanes of its warp that can never arrive (lanes {at_bar:?} \
                             wait at a bar.sync)"
                        ),
                    );
                }
            }
        }
        for (w, warp) in b.warps.iter().enumerate() {
            for l in 0..32 {
                if warp.state[l] == Lane::AtBarrier {
                    return self.fault(
                        b,
                        w,
                        l,
                        warp.pc[l],
                        FaultKind::Deadlock,
                        "waits at a barrier that other threads never reach".into(),
                    );
                }
            }
        }
        EmuError::Invalid("deadlock with no waiting thread".into())
    }

    /// Run warp `w` until none of its lanes can make progress.
    fn run_warp(&mut self, b: &mut Block, w: usize) -> EmuResult<()> {
        loop {
            // The ready group with the lowest program counter.
            let warp = &b.warps[w];
            let mut pc = u32::MAX;
            for l in 0..32 {
                if warp.state[l] == Lane::Ready && warp.pc[l] < pc {
                    pc = warp.pc[l];
                }
            }
            if pc == u32::MAX {
                if self.try_collective(b, w)? {
                    continue;
                }
                return Ok(());
            }
            let mut mask = 0u32;
            let mut other = u32::MAX;
            for l in 0..32 {
                if warp.state[l] == Lane::Ready {
                    if warp.pc[l] == pc {
                        mask |= 1 << l;
                    } else {
                        other = other.min(warp.pc[l]);
                    }
                }
            }
            self.run_group(b, w, pc, mask, other)?;
        }
    }

    /// Run the lanes of `mask`, all at `pc`, until they diverge, block or pass `other` (the
    /// lowest program counter of the warp's other ready lanes). Saves their program counters.
    fn run_group(
        &mut self,
        b: &mut Block,
        w: usize,
        mut pc: u32,
        mut mask: u32,
        mut other: u32,
    ) -> EmuResult<()> {
        let nregs = self.kernel.num_regs;
        let kernel = self.kernel;
        loop {
            if pc >= other {
                if pc == other {
                    // Lanes waiting here join the group.
                    let warp = &b.warps[w];
                    let mut next = u32::MAX;
                    for l in 0..32 {
                        if warp.state[l] == Lane::Ready && mask & (1 << l) == 0 {
                            if warp.pc[l] == pc {
                                mask |= 1 << l;
                            } else {
                                next = next.min(warp.pc[l]);
                            }
                        }
                    }
                    other = next;
                } else {
                    break;
                }
            }
            let Some(inst) = kernel.insts.get(pc as usize) else {
                return Err(self.fault(
                    b,
                    w,
                    mask.trailing_zeros() as usize,
                    pc.saturating_sub(1),
                    FaultKind::Trap,
                    "ran past the last instruction without ret/exit".into(),
                ));
            };
            let mut exec = mask;
            if let Some((p, neg)) = inst.guard {
                let r = &b.regs[w * nregs * 32 + p as usize * 32..][..32];
                let mut m = 0u32;
                for_lanes!(mask, |l| {
                    if (r[l] != 0) != neg {
                        m |= 1 << l;
                    }
                });
                exec = m;
            }
            self.prof.warp_instructions += 1;
            self.prof.lane_instructions += exec.count_ones() as u64;
            match &inst.op {
                Op::Bra { target } => {
                    if exec == mask {
                        pc = *target;
                    } else if exec == 0 {
                        pc += 1;
                    } else {
                        let warp = &mut b.warps[w];
                        for_lanes!(mask, |l| {
                            warp.pc[l] = if exec & (1 << l) != 0 {
                                *target
                            } else {
                                pc + 1
                            };
                        });
                        return Ok(());
                    }
                    continue;
                }
                Op::Exit => {
                    let warp = &mut b.warps[w];
                    for_lanes!(exec, |l| {
                        warp.state[l] = Lane::Exited;
                    });
                    mask &= !exec;
                    if mask == 0 {
                        return Ok(());
                    }
                    pc += 1;
                    continue;
                }
                Op::Bar { .. } | Op::Shfl { .. } | Op::WarpSync { .. } | Op::MmaTf32 { .. } => {
                    if exec != 0 {
                        let st = if matches!(inst.op, Op::Bar { .. }) {
                            Lane::AtBarrier
                        } else {
                            Lane::AtCollective
                        };
                        let warp = &mut b.warps[w];
                        for_lanes!(mask, |l| {
                            warp.pc[l] = pc;
                            if exec & (1 << l) != 0 {
                                warp.state[l] = st;
                            } else {
                                warp.pc[l] = pc + 1;
                            }
                        });
                        return Ok(());
                    }
                    pc += 1;
                    continue;
                }
                _ => {}
            }
            if exec != 0 {
                self.step(b, w, pc, exec, inst)?;
            }
            pc += 1;
        }
        let warp = &mut b.warps[w];
        for_lanes!(mask, |l| {
            warp.pc[l] = pc;
        });
        Ok(())
    }

    /// Complete a collective of warp `w` whose lanes all wait. Returns whether one completed.
    fn try_collective(&mut self, b: &mut Block, w: usize) -> EmuResult<bool> {
        let nregs = self.kernel.num_regs;
        let warp = &b.warps[w];
        let mut waiting = 0u32;
        for l in 0..32 {
            if warp.state[l] == Lane::AtCollective {
                waiting |= 1 << l;
            }
        }
        if waiting == 0 {
            return Ok(false);
        }
        let first = waiting.trailing_zeros() as usize;
        let pc0 = warp.pc[first];
        let r = &b.regs[w * nregs * 32..(w + 1) * nregs * 32];
        match &self.kernel.insts[pc0 as usize].op {
            Op::MmaTf32 { .. } => {
                // .aligned: all 32 lanes at this very instruction.
                for l in 0..32 {
                    let ok = warp.state[l] == Lane::AtCollective && warp.pc[l] == pc0;
                    if !ok {
                        if matches!(warp.state[l], Lane::Ready | Lane::AtCollective) {
                            return Ok(false);
                        }
                        return Err(self.fault(
                            b,
                            w,
                            first,
                            pc0,
                            FaultKind::Deadlock,
                            format!(
                                "mma.sync.aligned needs all 32 lanes of the warp, but lane {l} {}",
                                lane_story(warp.state[l], warp.pc[l], self.kernel)
                            ),
                        ));
                    }
                }
                self.mma(b, w, pc0);
            }
            Op::Shfl { .. } | Op::WarpSync { .. } => {
                // Each waiting lane's member mask must be covered by waiting lanes (with the
                // same mask, at the same kind of collective).
                let kind = |op: &Op| match op {
                    Op::Shfl { mask, .. } => Some((*mask, "shfl.sync")),
                    Op::WarpSync { mask } => Some((*mask, "bar.warp.sync")),
                    _ => None,
                };
                let first_kind = kind(&self.kernel.insts[pc0 as usize].op).map(|k| k.1);
                let mut group = 0u32;
                for l in 0..32 {
                    if waiting & (1 << l) == 0 {
                        continue;
                    }
                    let Some((mask, what)) = kind(&self.kernel.insts[warp.pc[l] as usize].op)
                    else {
                        continue;
                    };
                    let m = rd(r, mask, l) as u32;
                    if m & (1 << l) == 0 {
                        return Err(self.fault(b, w, l, warp.pc[l], FaultKind::Deadlock, format!("{what} member mask {m:#010x} does not include the executing lane {l}")));
                    }
                    if l == first {
                        group = m;
                    }
                }
                for l in 0..32 {
                    if group & (1 << l) == 0 {
                        continue;
                    }
                    match warp.state[l] {
                        Lane::AtCollective => {
                            let this = kind(&self.kernel.insts[warp.pc[l] as usize].op);
                            let Some((mask, what)) = this.filter(|k| Some(k.1) == first_kind)
                            else {
                                return Err(self.fault(b, w, l, warp.pc[l], FaultKind::Deadlock, format!("waits at another kind of collective while lane {first} waits at a {}", first_kind.unwrap_or("?"))));
                            };
                            let m = rd(r, mask, l) as u32;
                            if m != group {
                                return Err(self.fault(b, w, l, warp.pc[l], FaultKind::Deadlock, format!("{what} with member mask {m:#010x} while lane {first} uses {group:#010x}")));
                            }
                        }
                        Lane::Ready => return Ok(false),
                        s => {
                            return Err(self.fault(
                                b,
                                w,
                                first,
                                pc0,
                                FaultKind::Deadlock,
                                format!(
                                    "{} member mask {group:#010x} includes lane {l}, which {}",
                                    first_kind.unwrap_or("?"),
                                    lane_story(s, warp.pc[l], self.kernel)
                                ),
                            ));
                        }
                    }
                }
                if first_kind == Some("shfl.sync") {
                    self.shfl(b, w, group)?;
                } else {
                    self.release_group(b, w, group);
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn shfl(&mut self, b: &mut Block, w: usize, group: u32) -> EmuResult<()> {
        let nregs = self.kernel.num_regs;
        let base = w * nregs * 32;
        let mut out = [(0u64, 0u64, None::<Reg>, 0 as Reg); 32];
        {
            let r = &b.regs[base..base + nregs * 32];
            let warp = &b.warps[w];
            for_lanes!(group, |l| {
                let Op::Shfl {
                    mode,
                    d,
                    p,
                    a: _,
                    b: bo,
                    c,
                    ..
                } = &self.kernel.insts[warp.pc[l] as usize].op
                else {
                    continue;
                };
                // The ISA's pseudocode (shfl.sync): clamp and segment mask from c.
                let lane = l as i32;
                let bval = (rd(r, *bo, l) & 0x1f) as i32;
                let cv = rd(r, *c, l) as u32;
                let cval = (cv & 0x1f) as i32;
                let segmask = ((cv >> 8) & 0x1f) as i32;
                let max_lane = (lane & segmask) | (cval & !segmask);
                let min_lane = lane & segmask;
                let (j, pval) = match mode {
                    ShflMode::Up => (lane - bval, lane - bval >= max_lane),
                    ShflMode::Down => (lane + bval, lane + bval <= max_lane),
                    ShflMode::Bfly => (lane ^ bval, (lane ^ bval) <= max_lane),
                    ShflMode::Idx => {
                        let j = min_lane | (bval & !segmask);
                        (j, j <= max_lane)
                    }
                };
                let j = if pval { j as usize } else { l };
                out[l] = (j as u64, pval as u64, *p, *d);
            });
            for_lanes!(group, |l| {
                let j = out[l].0 as usize;
                if group & (1 << j) == 0 {
                    let pc = b.warps[w].pc[l];
                    return Err(self.fault(b, w, l, pc, FaultKind::Deadlock, format!(
                        "shfl.sync reads lane {j}, which is not in the member mask {group:#010x} (the result is undefined)"
                    )));
                }
                let Op::Shfl { a, .. } = &self.kernel.insts[b.warps[w].pc[j] as usize].op else {
                    continue;
                };
                out[l].0 = rd(r, *a, j) & 0xffff_ffff;
            });
        }
        let r = &mut b.regs[base..base + nregs * 32];
        let warp = &mut b.warps[w];
        for_lanes!(group, |l| {
            let (v, pv, p, d) = out[l];
            r[d as usize * 32 + l] = v;
            if let Some(p) = p {
                r[p as usize * 32 + l] = pv;
            }
            warp.state[l] = Lane::Ready;
            warp.pc[l] += 1;
        });
        if group | self.absent_or_exited(warp) == FULL {
            warp.syncs += 1;
        }
        self.prof.warp_instructions += 1;
        self.prof.lane_instructions += group.count_ones() as u64;
        Ok(())
    }

    /// Let the lanes of a completed `bar.warp.sync` go on.
    fn release_group(&mut self, b: &mut Block, w: usize, group: u32) {
        let others = self.absent_or_exited(&b.warps[w]);
        let warp = &mut b.warps[w];
        for_lanes!(group, |l| {
            warp.state[l] = Lane::Ready;
            warp.pc[l] += 1;
        });
        if group | others == FULL {
            warp.syncs += 1;
        }
        self.prof.warp_instructions += 1;
        self.prof.lane_instructions += group.count_ones() as u64;
    }

    fn absent_or_exited(&self, warp: &Warp) -> u32 {
        let mut m = 0;
        for l in 0..32 {
            if matches!(warp.state[l], Lane::Absent | Lane::Exited) {
                m |= 1 << l;
            }
        }
        m
    }

    /// `mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32`: D(16×8) = A(16×8)·B(8×8) + C,
    /// the fragments gathered by the ISA's layout tables (groupID = lane / 4, t = lane % 4):
    /// A: a0 (g, t), a1 (g+8, t), a2 (g, t+4), a3 (g+8, t+4); B: b0 (k = t, n = g), b1 (t+4, g);
    /// C/D: c0 (g, 2t), c1 (g, 2t+1), c2 (g+8, 2t), c3 (g+8, 2t+1). TF32 operands keep 10
    /// mantissa bits (the tensor core ignores the low 13); products are exact in f32 and are
    /// accumulated in f32, k in order, onto C.
    fn mma(&mut self, b: &mut Block, w: usize, pc: u32) {
        let nregs = self.kernel.num_regs;
        let base = w * nregs * 32;
        let Op::MmaTf32 { d, a, b: bb, c } = &self.kernel.insts[pc as usize].op else {
            return;
        };
        let r = &mut b.regs[base..base + nregs * 32];
        let mut am = [[0f32; 8]; 16];
        let mut bm = [[0f32; 8]; 8];
        let mut cm = [[0f32; 8]; 16];
        for l in 0..32 {
            let (g, t) = (l / 4, l % 4);
            let tf = |o: Operand| fl::tf32_truncate(f32_of(rd(r, o, l)));
            am[g][t] = tf(a[0]);
            am[g + 8][t] = tf(a[1]);
            am[g][t + 4] = tf(a[2]);
            am[g + 8][t + 4] = tf(a[3]);
            bm[t][g] = tf(bb[0]);
            bm[t + 4][g] = tf(bb[1]);
            cm[g][2 * t] = f32_of(rd(r, c[0], l));
            cm[g][2 * t + 1] = f32_of(rd(r, c[1], l));
            cm[g + 8][2 * t] = f32_of(rd(r, c[2], l));
            cm[g + 8][2 * t + 1] = f32_of(rd(r, c[3], l));
        }
        let mut dm = [[0f32; 8]; 16];
        for i in 0..16 {
            for j in 0..8 {
                let mut acc = cm[i][j];
                for (k, brow) in bm.iter().enumerate() {
                    acc += am[i][k] * brow[j];
                }
                dm[i][j] = acc;
            }
        }
        for l in 0..32 {
            let (g, t) = (l / 4, l % 4);
            r[d[0] as usize * 32 + l] = bits_f32(dm[g][2 * t]);
            r[d[1] as usize * 32 + l] = bits_f32(dm[g][2 * t + 1]);
            r[d[2] as usize * 32 + l] = bits_f32(dm[g + 8][2 * t]);
            r[d[3] as usize * 32 + l] = bits_f32(dm[g + 8][2 * t + 1]);
        }
        let warp = &mut b.warps[w];
        for l in 0..32 {
            warp.state[l] = Lane::Ready;
            warp.pc[l] += 1;
        }
        warp.syncs += 1;
        self.prof.warp_instructions += 1;
        self.prof.lane_instructions += 32;
    }

    /// Execute one non-control instruction for the lanes of `exec`.
    fn step(&mut self, b: &mut Block, w: usize, pc: u32, exec: u32, inst: &Inst) -> EmuResult<()> {
        let nregs = self.kernel.num_regs;
        let base = w * nregs * 32;
        match &inst.op {
            Op::Ld { .. } | Op::St { .. } | Op::AtomAdd { .. } => {
                return self.memory(b, w, pc, exec, inst)
            }
            _ => {}
        }
        let r = &mut b.regs[base..base + nregs * 32];
        match &inst.op {
            Op::Mov { d, a } => map3(r, exec, *d, *a, *a, *a, |a, _, _| a),
            Op::Pack {
                d,
                parts,
                half_bits,
            } => {
                let d = *d as usize * 32;
                let hm = mask_of(*half_bits);
                for_lanes!(exec, |l| {
                    let mut v = 0u64;
                    for (i, p) in parts.iter().enumerate() {
                        v |= (rd(r, *p, l) & hm) << (i as u32 * half_bits);
                    }
                    r[d + l] = v;
                });
            }
            Op::Unpack {
                parts,
                a,
                half_bits,
            } => {
                let hm = mask_of(*half_bits);
                for_lanes!(exec, |l| {
                    let v = rd(r, *a, l);
                    for (i, p) in parts.iter().enumerate() {
                        r[*p as usize * 32 + l] = (v >> (i as u32 * half_bits)) & hm;
                    }
                });
            }
            Op::Int(i) => int_op(r, exec, i),
            Op::PredLogic { op, d, a, b: bo } => match op {
                IntOp::And => map3(r, exec, *d, *a, *bo, *bo, |a, b, _| (a & b) & 1),
                IntOp::Or => map3(r, exec, *d, *a, *bo, *bo, |a, b, _| (a | b) & 1),
                IntOp::Xor => map3(r, exec, *d, *a, *bo, *bo, |a, b, _| (a ^ b) & 1),
                _ => map3(r, exec, *d, *a, *a, *a, |a, _, _| (a ^ 1) & 1),
            },
            Op::F32(f) => f32_op(r, exec, f),
            Op::F64(f) => f64_op(r, exec, f),
            Op::Setp {
                cmp,
                ty,
                ftz,
                p,
                q,
                a,
                b: bo,
                combine,
            } => {
                let (p, q) = (*p as usize * 32, q.map(|q| q as usize * 32));
                for_lanes!(exec, |l| {
                    let t = compare(*cmp, *ty, *ftz, rd(r, *a, l), rd(r, *bo, l));
                    let (tp, tq) = match combine {
                        None => (t, !t),
                        Some((op, c, neg)) => {
                            let cv = (rd(r, *c, l) != 0) != *neg;
                            let f = |x: bool| match op {
                                BoolOp::And => x && cv,
                                BoolOp::Or => x || cv,
                                BoolOp::Xor => x ^ cv,
                            };
                            (f(t), f(!t))
                        }
                    };
                    r[p + l] = tp as u64;
                    if let Some(q) = q {
                        r[q + l] = tq as u64;
                    }
                });
            }
            Op::Selp { d, a, b: bo, p, .. } => {
                map3(
                    r,
                    exec,
                    *d,
                    *a,
                    *bo,
                    *p,
                    |a, b, p| if p != 0 { a } else { b },
                )
            }
            Op::Cvt(cvt) => {
                let cvt = *cvt;
                map3(r, exec, cvt.d, cvt.a, cvt.a, cvt.a, move |v, _, _| {
                    convert(&cvt, v)
                });
            }
            Op::Cvta {
                space,
                to_generic,
                d,
                a,
            } => {
                let window = match space {
                    Space::Shared => SHARED_WINDOW,
                    Space::Local => LOCAL_WINDOW,
                    _ => 0,
                };
                if *to_generic {
                    map3(r, exec, *d, *a, *a, *a, |v, _, _| v.wrapping_add(window));
                } else {
                    map3(r, exec, *d, *a, *a, *a, |v, _, _| v.wrapping_sub(window));
                }
            }
            Op::Ld { .. }
            | Op::St { .. }
            | Op::AtomAdd { .. }
            | Op::Bra { .. }
            | Op::Exit
            | Op::Bar { .. }
            | Op::Shfl { .. }
            | Op::WarpSync { .. }
            | Op::MmaTf32 { .. } => {}
        }
        Ok(())
    }

    /// Loads, stores and atomics, with every check.
    fn memory(
        &mut self,
        b: &mut Block,
        w: usize,
        pc: u32,
        exec: u32,
        inst: &Inst,
    ) -> EmuResult<()> {
        let nregs = self.kernel.num_regs;
        let base = w * nregs * 32;
        let (space, ty, addr, n, is_store, is_atom) = match &inst.op {
            Op::Ld { space, ty, d, addr } => (*space, *ty, *addr, d.len(), false, false),
            Op::St { space, ty, a, addr } => (*space, *ty, *addr, a.len(), true, false),
            Op::AtomAdd {
                space, ty, addr, ..
            } => (*space, *ty, *addr, 1, true, true),
            _ => return Ok(()),
        };
        let esize = ty.bytes() as u64;
        let size = esize * n as u64;
        let mut addrs = [0u64; 32];
        {
            let r = &b.regs[base..base + nregs * 32];
            for_lanes!(exec, |l| {
                let a = match addr.base {
                    Some(x) => r[x as usize * 32 + l],
                    None => 0,
                };
                addrs[l] = a.wrapping_add(addr.offset as u64);
            });
        }
        if self.profiling {
            self.count_memory(space, &addrs, exec, size);
        }
        for_lanes!(exec, |l| {
            let a = addrs[l];
            // A vector access must be aligned to its whole size (v4.f32: 16 bytes).
            if a % size != 0 {
                return Err(self.fault(
                    b,
                    w,
                    l,
                    pc,
                    FaultKind::Misaligned,
                    format!(
                        "{size}-byte {} at {a:#x}, which is not {size}-byte aligned",
                        if is_store { "store" } else { "load" }
                    ),
                ));
            }
            // Resolve the space of a generic address.
            let (sp, off) = match space {
                Space::Generic => {
                    if (SHARED_WINDOW..SHARED_WINDOW + WINDOW_SIZE).contains(&a) {
                        (Space::Shared, a - SHARED_WINDOW)
                    } else if (LOCAL_WINDOW..LOCAL_WINDOW + WINDOW_SIZE).contains(&a) {
                        (Space::Local, a - LOCAL_WINDOW)
                    } else {
                        (Space::Global, a)
                    }
                }
                s => (s, a),
            };
            let mut buf = [0u8; 32];
            if is_store {
                let r = &b.regs[base..base + nregs * 32];
                match &inst.op {
                    Op::St { a: vals, .. } => {
                        for (i, v) in vals.iter().enumerate() {
                            let bytes = rd(r, *v, l).to_le_bytes();
                            buf[i * esize as usize..(i + 1) * esize as usize]
                                .copy_from_slice(&bytes[..esize as usize]);
                        }
                    }
                    Op::AtomAdd { b: bo, .. } => {
                        let bytes = rd(r, *bo, l).to_le_bytes();
                        buf[..esize as usize].copy_from_slice(&bytes[..esize as usize]);
                    }
                    _ => {}
                }
            }
            let data = &mut buf[..size as usize];
            if is_atom {
                let mut old = [0u8; 8];
                self.access(b, w, l, pc, sp, off, &mut old[..size as usize], false, true)?;
                let o = u64::from_le_bytes(old);
                let add = u64::from_le_bytes(buf[..8].try_into().unwrap_or([0; 8]));
                let new = match ty {
                    Ty::F32 => bits_f32(f32_of(o) + f32_of(add)),
                    Ty::F64 => (f64::from_bits(o) + f64::from_bits(add)).to_bits(),
                    _ => o.wrapping_add(add) & mask_of(ty.bits()),
                };
                self.access(
                    b,
                    w,
                    l,
                    pc,
                    sp,
                    off,
                    &mut new.to_le_bytes()[..size as usize],
                    true,
                    true,
                )?;
                if let Op::AtomAdd { d, .. } = &inst.op {
                    b.regs[base + *d as usize * 32 + l] = o;
                }
            } else {
                self.access(b, w, l, pc, sp, off, data, is_store, false)?;
                if !is_store {
                    if let Op::Ld { d, .. } = &inst.op {
                        for (i, dr) in d.iter().enumerate() {
                            let mut v = [0u8; 8];
                            v[..esize as usize].copy_from_slice(
                                &data[i * esize as usize..(i + 1) * esize as usize],
                            );
                            let mut v = u64::from_le_bytes(v);
                            if ty.is_signed() {
                                v = sext(v, ty.bits()) as u64;
                            }
                            b.regs[base + *dr as usize * 32 + l] = v;
                        }
                    }
                }
            }
        });
        Ok(())
    }

    /// Read (`store` false) or write `data` at `off` of space `sp` for one lane.
    #[allow(clippy::too_many_arguments)]
    fn access(
        &mut self,
        b: &mut Block,
        w: usize,
        l: usize,
        pc: u32,
        sp: Space,
        off: u64,
        data: &mut [u8],
        store: bool,
        atomic: bool,
    ) -> EmuResult<()> {
        let len = data.len() as u64;
        let what = if store { "store" } else { "load" };
        match sp {
            Space::Global | Space::Generic => {
                let hit = {
                    let i = self.last_alloc;
                    let ok = i < self.mem.allocation_count() && {
                        let a = self.mem.get(i);
                        off >= a.base && off + len <= a.end()
                    };
                    if ok {
                        Some(i)
                    } else {
                        self.mem.find(off, len)
                    }
                };
                let Some(i) = hit else {
                    let why = self.mem.explain(off, len);
                    return Err(self.fault(
                        b,
                        w,
                        l,
                        pc,
                        FaultKind::OutOfBounds,
                        format!("global {what}: {why}"),
                    ));
                };
                self.last_alloc = i;
                let a = self.mem.get_mut(i);
                let o = (off - a.base) as usize;
                let n = data.len();
                if store {
                    a.data[o..o + n].copy_from_slice(data);
                    a.init[o..o + n].fill(1);
                } else {
                    if a.init[o..o + n].contains(&0) {
                        let (id, base, sz) = (a.id, a.base, a.data.len());
                        return Err(self.fault(b, w, l, pc, FaultKind::UninitialisedRead, format!(
                            "global load of {n} bytes at {off:#x} (offset {o} of allocation #{id} at {base:#x}, {sz} bytes), never written"
                        )));
                    }
                    data.copy_from_slice(&a.data[o..o + n]);
                }
            }
            Space::Shared => {
                if off + len > b.shared.len() as u64 {
                    return Err(self.fault(b, w, l, pc, FaultKind::OutOfBounds, format!(
                        "shared {what} of {len} bytes at offset {off}, beyond the block's {} bytes of shared memory",
                        b.shared.len()
                    )));
                }
                self.shared_check(b, w, l, pc, off, len, store, atomic)?;
                let o = off as usize;
                if store {
                    b.shared[o..o + data.len()].copy_from_slice(data);
                } else {
                    data.copy_from_slice(&b.shared[o..o + data.len()]);
                }
            }
            Space::Local => {
                let per = self.kernel.local_bytes as u64;
                if off + len > per {
                    return Err(self.fault(b, w, l, pc, FaultKind::OutOfBounds, format!(
                        "local {what} of {len} bytes at offset {off}, beyond the thread's {per} bytes of local memory"
                    )));
                }
                let t = (w * 32 + l) as u64;
                let o = (t * per + off) as usize;
                if store {
                    b.local[o..o + data.len()].copy_from_slice(data);
                } else {
                    data.copy_from_slice(&b.local[o..o + data.len()]);
                }
            }
            Space::Param => {
                if store {
                    return Err(self.fault(
                        b,
                        w,
                        l,
                        pc,
                        FaultKind::Unsupported,
                        "store to kernel parameter space".into(),
                    ));
                }
                if off + len > self.params.len() as u64 {
                    return Err(self.fault(b, w, l, pc, FaultKind::OutOfBounds, format!(
                        "param load of {len} bytes at offset {off}, beyond the {}-byte parameter buffer",
                        self.params.len()
                    )));
                }
                data.copy_from_slice(&self.params[off as usize..(off + len) as usize]);
            }
        }
        Ok(())
    }

    /// The shared-memory race and initialisation checks for one lane's access.
    #[allow(clippy::too_many_arguments)]
    fn shared_check(
        &mut self,
        b: &mut Block,
        w: usize,
        l: usize,
        pc: u32,
        off: u64,
        len: u64,
        store: bool,
        atomic: bool,
    ) -> EmuResult<()> {
        let t = (w * 32 + l) as u32;
        let syncs = b.warps[w].syncs;
        let epoch = b.epoch;
        let ordered =
            |prev: u32, prev_syncs: u32| prev == t || (prev / 32 == t / 32 && syncs > prev_syncs);
        for word in (off / 4)..(off + len).div_ceil(4) {
            let s = b.shadow[word as usize];
            let mut conflict: Option<(u32, &str)> = None;
            if !store && !s.written {
                return Err(self.fault(b, w, l, pc, FaultKind::UninitialisedRead, format!(
                    "shared load at offset {}: this word has not been written in this block (yet: a \
                     missing __syncthreads before the read?)", word * 4
                )));
            }
            if s.epoch == epoch && !atomic {
                if s.writer != 0 && !ordered(s.writer - 1, s.writer_syncs) {
                    conflict = Some((s.writer - 1, "wrote"));
                }
                if store && conflict.is_none() {
                    match s.readers {
                        0 => {}
                        MANY => {
                            if s.readers_warp != t / 32 || syncs <= s.readers_syncs {
                                conflict = Some((u32::MAX, "read"));
                            }
                        }
                        x => {
                            if !ordered(x - 1, s.readers_syncs) {
                                conflict = Some((x - 1, "read"));
                            }
                        }
                    }
                }
            }
            if let Some((other, did)) = conflict {
                let who = if other == u32::MAX {
                    "several other threads".to_string()
                } else {
                    self.thread_name(other)
                };
                return Err(self.fault(
                    b,
                    w,
                    l,
                    pc,
                    FaultKind::SharedRace,
                    format!(
                    "{} of shared offset {} while {who} {did} it since the last barrier, with no \
                     synchronisation in between (a missing __syncthreads or __syncwarp?)",
                    if store { "write" } else { "read" },
                    word * 4
                ),
                ));
            }
            let sh = &mut b.shadow[word as usize];
            if sh.epoch != epoch {
                *sh = Shadow {
                    written: sh.written,
                    epoch,
                    ..Shadow::default()
                };
            }
            if store {
                sh.written = true;
                sh.writer = t + 1;
                sh.writer_syncs = syncs;
                sh.readers = 0;
            } else {
                match sh.readers {
                    0 => {
                        sh.readers = t + 1;
                        sh.readers_warp = t / 32;
                        sh.readers_syncs = syncs;
                    }
                    x if x == t + 1 => sh.readers_syncs = syncs,
                    _ => {
                        if sh.readers_warp != t / 32 {
                            sh.readers_warp = u32::MAX;
                        }
                        sh.readers = MANY;
                        sh.readers_syncs = sh.readers_syncs.min(syncs);
                    }
                }
            }
        }
        Ok(())
    }

    /// Requests, sectors and bank-conflict wavefronts of one warp-level access.
    fn count_memory(&mut self, space: Space, addrs: &[u64; 32], exec: u32, size: u64) {
        let shared = space == Space::Shared
            || (space == Space::Generic
                && (SHARED_WINDOW..SHARED_WINDOW + WINDOW_SIZE)
                    .contains(&addrs[exec.trailing_zeros() as usize]));
        if space == Space::Param || space == Space::Local {
            return;
        }
        if shared {
            self.prof.shared_requests += 1;
            // Lanes per phase: a 128-byte (32-bank) pass.
            let per_lane_words = size.div_ceil(4).max(1) as usize;
            let lanes_per_phase = (32 / per_lane_words).max(1);
            let mut wavefronts = 0u64;
            for phase in 0..32 / lanes_per_phase {
                let mut words: Vec<u64> = Vec::with_capacity(32);
                for l in phase * lanes_per_phase..(phase + 1) * lanes_per_phase {
                    if exec & (1 << l) == 0 {
                        continue;
                    }
                    let a = addrs[l] % WINDOW_SIZE;
                    for k in 0..per_lane_words as u64 {
                        words.push(a / 4 + k);
                    }
                }
                if words.is_empty() {
                    continue;
                }
                words.sort_unstable();
                words.dedup();
                let mut per_bank = [0u32; 32];
                for wd in &words {
                    per_bank[(wd % 32) as usize] += 1;
                }
                wavefronts += *per_bank.iter().max().unwrap_or(&1) as u64;
            }
            self.prof.shared_wavefronts += wavefronts.max(1);
        } else {
            self.prof.global_requests += 1;
            let mut sectors: Vec<u64> = Vec::with_capacity(64);
            let mut starts: Vec<u64> = Vec::with_capacity(32);
            for_lanes!(exec, |l| {
                let a = addrs[l];
                for s in a / 32..=(a + size - 1) / 32 {
                    sectors.push(s);
                }
                starts.push(a);
            });
            sectors.sort_unstable();
            sectors.dedup();
            self.prof.global_bytes += starts.len() as u64 * size;
            // Ideal: the distinct bytes asked for, packed into whole sectors (a broadcast of
            // one word to every lane ideally costs one sector).
            starts.sort_unstable();
            starts.dedup();
            self.prof.global_sectors += sectors.len() as u64;
            self.prof.global_ideal_sectors += (starts.len() as u64 * size).div_ceil(32);
        }
    }
}

fn lane_story(s: Lane, pc: u32, k: &Kernel) -> String {
    let line = k.insts.get(pc as usize).map(|i| i.ptx_line).unwrap_or(0);
    match s {
        Lane::Exited => "has exited".into(),
        Lane::Absent => "does not exist (the block's last warp is partial)".into(),
        Lane::AtBarrier => format!("waits at the bar.sync of PTX line {line}"),
        Lane::AtCollective => format!("waits at another collective (PTX line {line})"),
        Lane::Ready => format!("is still running (PTX line {line})"),
    }
}

/// Integer and bitwise operations (values are read as the type's width, signed types
/// sign-extended; results are stored zero-extended).
fn int_op(r: &mut [u64], exec: u32, i: &IntArith) {
    let IntArith {
        op,
        ty,
        d,
        a,
        b,
        c,
        e,
    } = *i;
    let bits = ty.bits();
    let wm = mask_of(bits);
    let signed = ty.is_signed();
    let s = move |v: u64| sext(v, bits);
    match op {
        IntOp::Add => map3(r, exec, d, a, b, b, |a, b, _| a.wrapping_add(b) & wm),
        IntOp::Sub => map3(r, exec, d, a, b, b, |a, b, _| a.wrapping_sub(b) & wm),
        IntOp::MulLo => map3(r, exec, d, a, b, b, |a, b, _| a.wrapping_mul(b) & wm),
        IntOp::MadLo => map3(r, exec, d, a, b, c, |a, b, c| {
            a.wrapping_mul(b).wrapping_add(c) & wm
        }),
        IntOp::MulHi | IntOp::MadHi => {
            let hi = move |a: u64, b: u64| -> u64 {
                let p: u128 = if signed {
                    (s(a) as i128 * s(b) as i128) as u128
                } else {
                    (a & wm) as u128 * (b & wm) as u128
                };
                ((p >> bits) as u64) & wm
            };
            if op == IntOp::MulHi {
                map3(r, exec, d, a, b, b, move |a, b, _| hi(a, b));
            } else {
                map3(r, exec, d, a, b, c, move |a, b, c| {
                    hi(a, b).wrapping_add(c) & wm
                });
            }
        }
        IntOp::MulWide | IntOp::MadWide => {
            let ww = mask_of(bits * 2);
            let prod = move |a: u64, b: u64| -> u64 {
                if signed {
                    (s(a).wrapping_mul(s(b))) as u64 & ww
                } else {
                    ((a & wm) * (b & wm)) & ww
                }
            };
            if op == IntOp::MulWide {
                map3(r, exec, d, a, b, b, move |a, b, _| prod(a, b));
            } else {
                map3(r, exec, d, a, b, c, move |a, b, c| {
                    prod(a, b).wrapping_add(c) & ww
                });
            }
        }
        // Division by zero is undefined in the ISA; we return all ones (as the hardware's
        // unsigned divide does) for the quotient and the dividend for the remainder.
        IntOp::Div => map3(r, exec, d, a, b, b, move |a, b, _| {
            if signed {
                let (x, y) = (s(a), s(b));
                if y == 0 {
                    wm
                } else {
                    (x.wrapping_div(y) as u64) & wm
                }
            } else {
                (a & wm).checked_div(b & wm).unwrap_or(wm)
            }
        }),
        IntOp::Rem => map3(r, exec, d, a, b, b, move |a, b, _| {
            if signed {
                let (x, y) = (s(a), s(b));
                if y == 0 {
                    a & wm
                } else {
                    (x.wrapping_rem(y) as u64) & wm
                }
            } else if b & wm == 0 {
                a & wm
            } else {
                ((a & wm) % (b & wm)) & wm
            }
        }),
        IntOp::Min => map3(r, exec, d, a, b, b, move |a, b, _| {
            if signed {
                (s(a).min(s(b)) as u64) & wm
            } else {
                (a & wm).min(b & wm)
            }
        }),
        IntOp::Max => map3(r, exec, d, a, b, b, move |a, b, _| {
            if signed {
                (s(a).max(s(b)) as u64) & wm
            } else {
                (a & wm).max(b & wm)
            }
        }),
        IntOp::Neg => map3(r, exec, d, a, a, a, |a, _, _| a.wrapping_neg() & wm),
        IntOp::Abs => map3(r, exec, d, a, a, a, move |a, _, _| {
            (s(a).wrapping_abs() as u64) & wm
        }),
        IntOp::And => map3(r, exec, d, a, b, b, |a, b, _| a & b & wm),
        IntOp::Or => map3(r, exec, d, a, b, b, |a, b, _| (a | b) & wm),
        IntOp::Xor => map3(r, exec, d, a, b, b, |a, b, _| (a ^ b) & wm),
        IntOp::Not => map3(r, exec, d, a, a, a, |a, _, _| !a & wm),
        // Shift amounts are unsigned and clamped: ≥ the width shifts everything out.
        IntOp::Shl => map3(r, exec, d, a, b, b, move |a, b, _| {
            let n = b & 0xffff_ffff;
            if n >= bits as u64 {
                0
            } else {
                (a << n) & wm
            }
        }),
        IntOp::Shr => map3(r, exec, d, a, b, b, move |a, b, _| {
            let n = b & 0xffff_ffff;
            if signed {
                ((s(a) >> n.min(63)) as u64) & wm
            } else if n >= bits as u64 {
                0
            } else {
                (a & wm) >> n
            }
        }),
        // bfi f, a, b, pos, len: b with bits [pos, pos+len) replaced by a's low len bits.
        IntOp::Bfi => {
            let d = d as usize * 32;
            for_lanes!(exec, |l| {
                let (av, bv, pos, len) = (
                    rd(r, a, l),
                    rd(r, b, l),
                    rd(r, c, l) & 0xff,
                    rd(r, e, l) & 0xff,
                );
                r[d + l] = if len == 0 || pos >= bits as u64 {
                    bv & wm
                } else {
                    let n = len.min(bits as u64 - pos);
                    let m = mask_of(n as u32) << pos;
                    ((bv & !m) | ((av << pos) & m)) & wm
                };
            });
        }
    }
}

fn f32_op(r: &mut [u64], exec: u32, f: &F32Arith) {
    let F32Arith {
        op,
        rnd,
        ftz,
        sat,
        d,
        a,
        b,
        c,
    } = *f;
    let inp = move |v: u64| {
        let x = f32_of(v);
        if ftz {
            fl::ftz(x)
        } else {
            x
        }
    };
    let out = move |x: f32| {
        let x = if ftz { fl::ftz(x) } else { x };
        bits_f32(if sat { fl::saturate(x) } else { x })
    };
    macro_rules! un {
        ($f:expr) => {
            map3(r, exec, d, a, a, a, move |a, _, _| out($f(inp(a))))
        };
    }
    macro_rules! bin {
        ($f:expr) => {
            map3(r, exec, d, a, b, b, move |a, b, _| out($f(inp(a), inp(b))))
        };
    }
    match op {
        FloatOp::Add => bin!(|x, y| fl::add_f32(x, y, rnd)),
        FloatOp::Sub => bin!(|x, y| fl::sub_f32(x, y, rnd)),
        FloatOp::Mul => bin!(|x, y| fl::mul_f32(x, y, rnd)),
        FloatOp::Fma => map3(r, exec, d, a, b, c, move |a, b, c| {
            out(fl::fma_f32(inp(a), inp(b), inp(c), rnd))
        }),
        FloatOp::Div => bin!(|x, y| fl::div_f32(x, y, rnd)),
        FloatOp::DivApprox => bin!(fl::div_approx_f32),
        FloatOp::Rcp => un!(|x| fl::rcp_f32(x, rnd)),
        FloatOp::RcpApprox => un!(fl::rcp_approx_f32),
        FloatOp::Sqrt => un!(|x| fl::sqrt_f32(x, rnd)),
        FloatOp::SqrtApprox => un!(fl::sqrt_approx_f32),
        FloatOp::RsqrtApprox => un!(fl::rsqrt_approx_f32),
        FloatOp::Ex2Approx => un!(fl::ex2_approx_f32),
        FloatOp::Lg2Approx => un!(fl::lg2_approx_f32),
        FloatOp::SinApprox => un!(fl::sin_approx_f32),
        FloatOp::CosApprox => un!(fl::cos_approx_f32),
        // neg/abs flip or clear the sign bit (NaN included).
        FloatOp::Neg => un!(|x: f32| f32::from_bits(x.to_bits() ^ 0x8000_0000)),
        FloatOp::Abs => un!(|x: f32| f32::from_bits(x.to_bits() & 0x7fff_ffff)),
        FloatOp::Min => bin!(fl::min_f32),
        FloatOp::Max => bin!(fl::max_f32),
    }
}

fn f64_op(r: &mut [u64], exec: u32, f: &F64Arith) {
    let F64Arith {
        op,
        rnd,
        d,
        a,
        b,
        c,
    } = *f;
    let f = f64::from_bits;
    macro_rules! un {
        ($g:expr) => {
            map3(r, exec, d, a, a, a, move |a, _, _| $g(f(a)).to_bits())
        };
    }
    macro_rules! bin {
        ($g:expr) => {
            map3(r, exec, d, a, b, b, move |a, b, _| $g(f(a), f(b)).to_bits())
        };
    }
    // min and max return the other operand of a NaN.
    let unless_nan = |x: f64, y: f64, pick: fn(f64, f64) -> f64| {
        if x.is_nan() {
            y
        } else if y.is_nan() {
            x
        } else {
            pick(x, y)
        }
    };
    match op {
        FloatOp::Add => bin!(|x, y| fl::add_f64(x, y, rnd)),
        FloatOp::Sub => bin!(|x, y: f64| fl::add_f64(x, -y, rnd)),
        FloatOp::Mul => bin!(|x, y| fl::mul_f64(x, y, rnd)),
        FloatOp::Fma => map3(r, exec, d, a, b, c, move |a, b, c| {
            fl::fma_f64(f(a), f(b), f(c), rnd).to_bits()
        }),
        FloatOp::Div => bin!(|x, y| fl::div_f64(x, y, rnd)),
        FloatOp::Rcp | FloatOp::RcpApprox => un!(|x| fl::div_f64(1.0, x, rnd)),
        FloatOp::Sqrt => un!(|x| fl::sqrt_f64(x, rnd)),
        // neg/abs flip or clear the sign bit (NaN included).
        FloatOp::Neg => map3(r, exec, d, a, a, a, |a, _, _| a ^ (1 << 63)),
        FloatOp::Abs => map3(r, exec, d, a, a, a, |a, _, _| a & !(1 << 63)),
        FloatOp::Min => bin!(|x, y| unless_nan(x, y, f64::min)),
        FloatOp::Max => bin!(|x, y| unless_nan(x, y, f64::max)),
        // The parser refuses the other f64 forms (approximate transcendentals).
        FloatOp::DivApprox
        | FloatOp::SqrtApprox
        | FloatOp::RsqrtApprox
        | FloatOp::Ex2Approx
        | FloatOp::Lg2Approx
        | FloatOp::SinApprox
        | FloatOp::CosApprox => {}
    }
}

fn compare(cmp: Cmp, ty: Ty, ftz: bool, a: u64, b: u64) -> bool {
    if ty.is_float() {
        let (x, y) = if ty == Ty::F64 {
            (f64::from_bits(a), f64::from_bits(b))
        } else {
            let (x, y) = (f32_of(a), f32_of(b));
            let (x, y) = if ftz {
                (fl::ftz(x), fl::ftz(y))
            } else {
                (x, y)
            };
            (x as f64, y as f64)
        };
        let nan = x.is_nan() || y.is_nan();
        return match cmp {
            Cmp::Eq => !nan && x == y,
            Cmp::Ne => !nan && x != y,
            Cmp::Lt | Cmp::Lo => !nan && x < y,
            Cmp::Le | Cmp::Ls => !nan && x <= y,
            Cmp::Gt | Cmp::Hi => !nan && x > y,
            Cmp::Ge | Cmp::Hs => !nan && x >= y,
            Cmp::Equ => nan || x == y,
            Cmp::Neu => nan || x != y,
            Cmp::Ltu => nan || x < y,
            Cmp::Leu => nan || x <= y,
            Cmp::Gtu => nan || x > y,
            Cmp::Geu => nan || x >= y,
            Cmp::Num => !nan,
            Cmp::Nan => nan,
        };
    }
    let bits = ty.bits();
    let wm = mask_of(bits);
    let (ua, ub) = (a & wm, b & wm);
    let (sa, sb) = (sext(a, bits), sext(b, bits));
    let signed = ty.is_signed();
    match cmp {
        Cmp::Eq | Cmp::Equ => ua == ub,
        Cmp::Ne | Cmp::Neu => ua != ub,
        Cmp::Lt | Cmp::Ltu => {
            if signed {
                sa < sb
            } else {
                ua < ub
            }
        }
        Cmp::Le | Cmp::Leu => {
            if signed {
                sa <= sb
            } else {
                ua <= ub
            }
        }
        Cmp::Gt | Cmp::Gtu => {
            if signed {
                sa > sb
            } else {
                ua > ub
            }
        }
        Cmp::Ge | Cmp::Geu => {
            if signed {
                sa >= sb
            } else {
                ua >= ub
            }
        }
        Cmp::Lo => ua < ub,
        Cmp::Ls => ua <= ub,
        Cmp::Hi => ua > ub,
        Cmp::Hs => ua >= ub,
        Cmp::Num => true,
        Cmp::Nan => false,
    }
}

/// `cvt`: every combination of integer and float types the parser accepts.
fn convert(cvt: &Cvt, v: u64) -> u64 {
    let Cvt {
        dty,
        sty,
        frnd,
        irnd,
        rna,
        ftz,
        sat,
        ..
    } = *cvt;
    let rn = frnd.unwrap_or_default();
    if rna {
        let x = f32_of(v);
        return bits_f32(fl::cvt_rna_tf32(if ftz { fl::ftz(x) } else { x }));
    }
    let dbits = dty.bits();
    // The source as a value.
    if sty.is_float() {
        let x: f64 = if sty == Ty::F64 {
            f64::from_bits(v)
        } else {
            let x = f32_of(v);
            (if ftz { fl::ftz(x) } else { x }) as f64
        };
        if dty.is_float() {
            if dty == Ty::F64 {
                let y = match irnd {
                    Some(m) => fl::round_to_integral_f64(x, m),
                    None => x,
                };
                return y.to_bits();
            }
            let y = match (sty, irnd) {
                (Ty::F32, Some(m)) => fl::round_to_integral_f32(x as f32, m),
                (Ty::F32, None) => x as f32,
                (_, Some(m)) => fl::f64_to_f32(fl::round_to_integral_f64(x, m), Rounding::Nearest),
                (_, None) => fl::f64_to_f32(x, rn),
            };
            let y = if y.is_nan() {
                f32::from_bits(fl::CANONICAL_NAN_F32)
            } else {
                y
            };
            let y = if ftz { fl::ftz(y) } else { y };
            return bits_f32(if sat { fl::saturate(y) } else { y });
        }
        // float → integer: saturating, NaN → 0.
        return fl::f64_to_int(x, irnd.unwrap_or(IntRounding::Zero), dty.is_signed(), dbits);
    }
    let sbits = sty.bits();
    if dty.is_float() {
        let y = if sty.is_signed() {
            let i = sext(v, sbits);
            if dty == Ty::F64 {
                return fl::i64_to_f64(i, rn).to_bits();
            }
            fl::i64_to_f32(i, rn)
        } else {
            let u = v & mask_of(sbits);
            if dty == Ty::F64 {
                return fl::u64_to_f64(u, rn).to_bits();
            }
            fl::u64_to_f32(u, rn)
        };
        return bits_f32(if sat { fl::saturate(y) } else { y });
    }
    // integer → integer: extend by the source's signedness, then truncate (or clamp with .sat).
    let x: i128 = if sty.is_signed() {
        sext(v, sbits) as i128
    } else {
        (v & mask_of(sbits)) as i128
    };
    if sat {
        let (lo, hi): (i128, i128) = if dty.is_signed() {
            (-(1i128 << (dbits - 1)), (1i128 << (dbits - 1)) - 1)
        } else {
            (0, (1i128 << dbits) - 1)
        };
        return (x.clamp(lo, hi) as u64) & mask_of(dbits);
    }
    (x as u64) & mask_of(dbits)
}

//! PTX text → [`crate::ir`].
//!
//! Three passes, each small:
//! 1. **Lines.** Comments go; `.loc`/`.file` (which end at the line, not at a `;`) become
//!    events; `.section` blocks (DWARF strings under `-lineinfo`) are skipped whole.
//! 2. **Tokens.** A word is anything made of letters, digits, `_ $ % .` (so `ld.global.f32`,
//!    `%tid.x`, `$L__BB0_4` and `0f3F800000` are one token each); punctuation is one character.
//! 3. **Statements.** Module directives, `.entry` signatures and bodies; each instruction is
//!    decoded (`Decode::decode`) into an [`Op`] with its types and modifiers resolved.
//!
//! The parser is strict on purpose: an opcode, modifier, type or operand shape it does not know
//! is an error naming the PTX line, never skipped, so a kernel can't silently fall outside what
//! the interpreter implements (the coverage test compiles every kernel and parses it).

use crate::error::{EmuError, EmuResult};
use crate::float::Rounding;
use crate::ir::*;
use std::collections::HashMap;

/// How a module-scope `.global` gets its device address: called once per variable as it is
/// parsed, so instructions that name it are decoded with the address already in them.
pub type PlaceGlobal<'a> = dyn FnMut(&Global) -> EmuResult<u64> + 'a;

/// Parse a whole module; `place` gives each `.global` variable its address.
pub fn parse_module(text: &str, place: &mut PlaceGlobal<'_>) -> EmuResult<Module> {
    let (toks, locs, files) = tokenize(text)?;
    let mut p = Parser {
        toks,
        pos: 0,
        place,
        locs,
        module: Module {
            version: (0, 0),
            target: String::new(),
            kernels: Vec::new(),
            globals: Vec::new(),
            files,
        },
    };
    p.module()?;
    Ok(p.module)
}

// ---------------------------------------------------------------------------------------------
// Passes 1 and 2: lines and tokens.

#[derive(Clone, Debug, PartialEq)]
enum T {
    Word(String),
    Punct(char),
    Str(String),
    /// A `.loc` took effect here (index into the location list).
    Loc(u32),
}

#[derive(Clone, Debug)]
struct Tok {
    t: T,
    line: u32,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '%' | '.')
}

type Tokens = (Vec<Tok>, Vec<SourceLoc>, Vec<(u32, String)>);

fn tokenize(text: &str) -> EmuResult<Tokens> {
    let mut toks = Vec::new();
    let mut locs = Vec::new();
    let mut files = Vec::new();
    let mut in_block_comment = false;
    let mut section_depth: Option<i32> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i as u32 + 1;
        // Strip comments.
        let mut s = String::with_capacity(raw.len());
        let mut chars = raw.chars().peekable();
        let mut in_str = false;
        while let Some(c) = chars.next() {
            if in_block_comment {
                if c == '*' && chars.peek() == Some(&'/') {
                    chars.next();
                    in_block_comment = false;
                }
                continue;
            }
            if in_str {
                s.push(c);
                if c == '"' {
                    in_str = false;
                }
                continue;
            }
            match c {
                '"' => {
                    in_str = true;
                    s.push(c);
                }
                '/' if chars.peek() == Some(&'/') => break,
                '/' if chars.peek() == Some(&'*') => {
                    chars.next();
                    in_block_comment = true;
                }
                _ => s.push(c),
            }
        }
        let trimmed = s.trim();
        if let Some(depth) = section_depth.as_mut() {
            *depth += trimmed.matches('{').count() as i32 - trimmed.matches('}').count() as i32;
            if *depth <= 0 && trimmed.contains('}') {
                section_depth = None;
            }
            continue;
        }
        if trimmed.starts_with(".section") {
            let d = trimmed.matches('{').count() as i32 - trimmed.matches('}').count() as i32;
            section_depth = Some(d);
            if d == 0 && trimmed.contains('}') {
                section_depth = None;
            }
            continue;
        }
        if let Some(rest) = trimmed
            .strip_prefix(".loc")
            .filter(|r| r.starts_with(char::is_whitespace))
        {
            locs.push(parse_loc(rest, line)?);
            toks.push(Tok {
                t: T::Loc(locs.len() as u32 - 1),
                line,
            });
            continue;
        }
        if let Some(rest) = trimmed
            .strip_prefix(".file")
            .filter(|r| r.starts_with(char::is_whitespace))
        {
            let rest = rest.trim();
            let (n, name) = rest.split_once(char::is_whitespace).ok_or_else(|| {
                EmuError::Parse(format!("line {line}: malformed .file directive"))
            })?;
            let n: u32 = n
                .parse()
                .map_err(|_| EmuError::Parse(format!("line {line}: bad .file number {n}")))?;
            let name = name.trim();
            let name = name.split('"').nth(1).unwrap_or(name).to_string();
            files.push((n, name));
            continue;
        }
        // Tokens.
        let mut cs = s.char_indices().peekable();
        while let Some(&(start, c)) = cs.peek() {
            if c.is_whitespace() {
                cs.next();
            } else if c == '"' {
                cs.next();
                let mut v = String::new();
                for (_, c) in cs.by_ref() {
                    if c == '"' {
                        break;
                    }
                    v.push(c);
                }
                toks.push(Tok { t: T::Str(v), line });
            } else if is_word_char(c) {
                let mut end = start;
                while let Some(&(j, c)) = cs.peek() {
                    if !is_word_char(c) {
                        break;
                    }
                    end = j + c.len_utf8();
                    cs.next();
                }
                toks.push(Tok {
                    t: T::Word(s[start..end].to_string()),
                    line,
                });
            } else {
                cs.next();
                toks.push(Tok {
                    t: T::Punct(c),
                    line,
                });
            }
        }
    }
    Ok((toks, locs, files))
}

/// `.loc FILE LINE COL[, function_name LABEL, inlined_at FILE LINE COL]`
fn parse_loc(rest: &str, line: u32) -> EmuResult<SourceLoc> {
    let bad = || EmuError::Parse(format!("line {line}: malformed .loc directive"));
    let mut parts = rest.split(',');
    let head: Vec<u32> = parts
        .next()
        .ok_or_else(bad)?
        .split_whitespace()
        .map(|w| w.parse().map_err(|_| bad()))
        .collect::<EmuResult<_>>()?;
    if head.len() < 2 {
        return Err(bad());
    }
    let mut inlined_at = None;
    for p in parts {
        let w: Vec<&str> = p.split_whitespace().collect();
        if w.first() == Some(&"inlined_at") && w.len() >= 3 {
            inlined_at = Some((
                w[1].parse().map_err(|_| bad())?,
                w[2].parse().map_err(|_| bad())?,
            ));
        }
    }
    Ok(SourceLoc {
        file: head[0],
        line: head[1],
        inlined_at,
    })
}

// ---------------------------------------------------------------------------------------------
// Pass 3: statements.

struct Parser<'p, 'q> {
    toks: Vec<Tok>,
    pos: usize,
    place: &'p mut PlaceGlobal<'q>,
    locs: Vec<SourceLoc>,
    module: Module,
}

/// An operand as written, before it is typed.
#[derive(Clone, Debug, PartialEq)]
enum Syn {
    /// `%r1`, `%tid.x`, or a bare name (a symbol or a label).
    Name(String),
    /// A literal: `-1`, `0x1f`, `0f3F800000`, `0d…`.
    Lit(String),
    /// `[base + offset]` with `base` a register or a symbol.
    Addr(Option<String>, i64),
    /// `{a, b, …}`.
    Vector(Vec<Syn>),
    /// `a|b` (setp and shfl's second destination).
    Pair(Box<Syn>, Box<Syn>),
    /// `!p`.
    Not(Box<Syn>),
}

/// What a kernel body declares while it is parsed.
struct Scope {
    regs: HashMap<String, Reg>,
    reg_names: Vec<String>,
    specials: Vec<(Reg, Special)>,
    /// Shared symbols → offset in the block's shared window.
    shared: HashMap<String, u32>,
    shared_bytes: u32,
    /// Local symbols → offset in the thread's local window.
    local: HashMap<String, u32>,
    local_bytes: u32,
    params: HashMap<String, usize>,
    labels: HashMap<String, u32>,
    /// (instruction index, label) of branches to patch.
    fixups: Vec<(usize, String, u32)>,
}

/// A variable or parameter declaration, as [`Parser::decl`] reads it.
struct Decl {
    align: Option<usize>,
    ty: Ty,
    name: String,
    count: usize,
}

fn align_up(x: u32, a: u32) -> u32 {
    x.div_ceil(a.max(1)) * a.max(1)
}

impl Parser<'_, '_> {
    fn err<T>(&self, msg: impl std::fmt::Display) -> EmuResult<T> {
        let line = self.toks.get(self.pos).map(|t| t.line).unwrap_or(0);
        Err(EmuError::Parse(format!("line {line}: {msg}")))
    }

    fn peek(&self) -> Option<&T> {
        self.toks.get(self.pos).map(|t| &t.t)
    }

    fn line(&self) -> u32 {
        self.toks.get(self.pos).map(|t| t.line).unwrap_or(0)
    }

    fn next(&mut self) -> EmuResult<T> {
        match self.toks.get(self.pos) {
            Some(t) => {
                self.pos += 1;
                Ok(t.t.clone())
            }
            None => self.err("unexpected end of the module"),
        }
    }

    fn word(&mut self) -> EmuResult<String> {
        match self.next()? {
            T::Word(w) => Ok(w),
            t => {
                self.pos -= 1;
                self.err(format!("expected a word, found {t:?}"))
            }
        }
    }

    fn punct(&mut self, c: char) -> EmuResult<()> {
        match self.next()? {
            T::Punct(x) if x == c => Ok(()),
            t => {
                self.pos -= 1;
                self.err(format!("expected `{c}`, found {t:?}"))
            }
        }
    }

    fn eat_punct(&mut self, c: char) -> bool {
        if self.peek() == Some(&T::Punct(c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_word(&mut self, w: &str) -> bool {
        if matches!(self.peek(), Some(T::Word(x)) if x == w) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn number(&mut self) -> EmuResult<u64> {
        let w = self.word()?;
        match parse_int(&w) {
            Some(v) => Ok(v as u64),
            None => self.err(format!("expected a number, found {w}")),
        }
    }

    fn skip_locs(&mut self) {
        while matches!(self.peek(), Some(T::Loc(_))) {
            self.pos += 1;
        }
    }

    fn module(&mut self) -> EmuResult<()> {
        loop {
            self.skip_locs();
            let Some(t) = self.peek().cloned() else {
                break;
            };
            match t {
                T::Word(w) => match w.as_str() {
                    ".version" => {
                        self.pos += 1;
                        let v = self.word()?;
                        let (a, b) = v.split_once('.').unwrap_or((&v, "0"));
                        self.module.version = (a.parse().unwrap_or(0), b.parse().unwrap_or(0));
                    }
                    ".target" => {
                        self.pos += 1;
                        self.module.target = self.word()?;
                        while self.eat_punct(',') {
                            self.word()?;
                        }
                    }
                    ".address_size" => {
                        self.pos += 1;
                        let n = self.number()?;
                        if n != 64 {
                            return self.err(format!(".address_size {n}: only 64 is supported"));
                        }
                    }
                    ".visible" | ".weak" => self.pos += 1,
                    ".extern" => {
                        return self.err(".extern at module scope: not supported");
                    }
                    ".entry" => {
                        self.pos += 1;
                        let k = self.entry()?;
                        self.module.kernels.push(k);
                    }
                    ".func" => {
                        return self.err(".func (device functions, call) is not supported");
                    }
                    ".global" | ".const" => {
                        self.pos += 1;
                        if w == ".const" {
                            return self.err(".const variables are not supported");
                        }
                        let mut g = self.global()?;
                        g.address = (self.place)(&g)?;
                        self.module.globals.push(g);
                    }
                    _ => return self.err(format!("unexpected `{w}` at module scope")),
                },
                t => return self.err(format!("unexpected {t:?} at module scope")),
            }
        }
        Ok(())
    }

    /// A declaration after its state space, `[.align A] .TYPE name[N]`: the alignment if given,
    /// the type, the name and the element count (1 without brackets; 0 for `[]`, an `.extern`
    /// array, where `unsized_ok`). `what` names the declaration in errors.
    fn decl(&mut self, what: &str, unsized_ok: bool) -> EmuResult<Decl> {
        let mut align = None;
        if self.eat_word(".align") {
            align = Some(self.number()? as usize);
        }
        let ty = self.word()?;
        let ty = match parse_type(ty.trim_start_matches('.')) {
            Some(t) => t,
            None => return self.err(format!("{what} of unknown type {ty}")),
        };
        let name = self.word()?;
        let mut count = 1;
        if self.eat_punct('[') {
            if unsized_ok && self.eat_punct(']') {
                count = 0;
            } else {
                count = self.number()? as usize;
                self.punct(']')?;
            }
        }
        Ok(Decl {
            align,
            ty,
            name,
            count,
        })
    }

    /// `.global .align A .TYPE name[N] = {…};` (after `.global`).
    fn global(&mut self) -> EmuResult<Global> {
        let Decl {
            align,
            ty,
            name,
            count,
        } = self.decl("global", false)?;
        let align = align.unwrap_or(1);
        let esize = ty.bytes() as usize;
        let mut init = vec![0u8; count * esize];
        if self.eat_punct('=') {
            let mut vals = Vec::new();
            if self.eat_punct('{') {
                loop {
                    let neg = self.eat_punct('-');
                    let w = self.word()?;
                    let v = parse_int(&w).ok_or_else(|| {
                        EmuError::Parse(format!("bad initialiser {w} of global {name}"))
                    })?;
                    vals.push(if neg { v.wrapping_neg() } else { v });
                    if !self.eat_punct(',') {
                        break;
                    }
                }
                self.punct('}')?;
            } else {
                let w = self.word()?;
                vals.push(parse_int(&w).ok_or_else(|| {
                    EmuError::Parse(format!("bad initialiser {w} of global {name}"))
                })?);
            }
            if vals.len() > count {
                return self.err(format!("global {name}: more initialisers than elements"));
            }
            for (i, v) in vals.iter().enumerate() {
                let bytes = (*v as u64).to_le_bytes();
                init[i * esize..(i + 1) * esize].copy_from_slice(&bytes[..esize]);
            }
        }
        self.punct(';')?;
        Ok(Global {
            name,
            align,
            init,
            address: 0,
        })
    }

    fn entry(&mut self) -> EmuResult<Kernel> {
        let name = self.word()?;
        let mut params = Vec::new();
        let mut param_bytes = 0usize;
        self.punct('(')?;
        if !self.eat_punct(')') {
            loop {
                if !self.eat_word(".param") {
                    return self.err("expected .param");
                }
                let Decl {
                    align,
                    ty,
                    name: pname,
                    count,
                } = self.decl("parameter", false)?;
                let size = ty.bytes() as usize * count;
                // Unaligned (or `.align 0`): the type's own alignment.
                let align = match align {
                    Some(a) if a > 0 => a,
                    _ => ty.bytes() as usize,
                };
                let offset = param_bytes.div_ceil(align) * align;
                param_bytes = offset + size;
                params.push(Param {
                    name: pname,
                    size,
                    align,
                    offset,
                });
                if !self.eat_punct(',') {
                    break;
                }
            }
            self.punct(')')?;
        }
        let mut max_ntid = None;
        loop {
            self.skip_locs();
            if self.eat_word(".maxntid") || self.eat_word(".reqntid") {
                let mut n = self.number()?;
                while self.eat_punct(',') {
                    n *= self.number()?;
                }
                max_ntid = Some(n as u32);
            } else if self.eat_word(".minnctapersm") || self.eat_word(".maxnreg") {
                self.number()?;
            } else {
                break;
            }
        }
        self.punct('{')?;
        let mut scope = Scope {
            regs: HashMap::new(),
            reg_names: Vec::new(),
            specials: Vec::new(),
            shared: HashMap::new(),
            shared_bytes: 0,
            local: HashMap::new(),
            local_bytes: 0,
            params: params.iter().map(|p| (p.name.clone(), p.offset)).collect(),
            labels: HashMap::new(),
            fixups: Vec::new(),
        };
        let mut insts: Vec<Inst> = Vec::new();
        let mut loc = u32::MAX;
        let mut kernel_locs: Vec<SourceLoc> = Vec::new();
        let mut loc_map: HashMap<u32, u32> = HashMap::new();
        loop {
            let line = self.line();
            match self.next()? {
                T::Punct('}') => break,
                T::Loc(i) => {
                    let next = kernel_locs.len() as u32;
                    let k = *loc_map.entry(i).or_insert(next);
                    if k == next {
                        kernel_locs.push(self.locs[i as usize].clone());
                    }
                    loc = k;
                }
                T::Punct('@') => {
                    let neg = self.eat_punct('!');
                    let p = self.word()?;
                    let r = self.reg(&mut scope, &p)?;
                    let op = self.word()?;
                    let mut inst = self.instruction(&mut scope, &op, insts.len(), line)?;
                    inst.guard = Some((r, neg));
                    inst.loc = loc;
                    insts.push(inst);
                }
                T::Word(w) => {
                    if self.eat_punct(':') {
                        scope.labels.insert(w, insts.len() as u32);
                        continue;
                    }
                    match w.as_str() {
                        ".reg" => self.reg_decl(&mut scope)?,
                        ".shared" => self.var_decl(&mut scope, true, false)?,
                        ".local" => self.var_decl(&mut scope, false, false)?,
                        ".extern" => {
                            if !self.eat_word(".shared") {
                                return self.err(".extern in a kernel body must be .shared");
                            }
                            self.var_decl(&mut scope, true, true)?;
                        }
                        ".pragma" => {
                            while !self.eat_punct(';') {
                                self.next()?;
                            }
                        }
                        _ if w.starts_with('.') => {
                            return self.err(format!("unsupported directive {w} in a kernel body"))
                        }
                        _ => {
                            let mut inst = self.instruction(&mut scope, &w, insts.len(), line)?;
                            inst.loc = loc;
                            insts.push(inst);
                        }
                    }
                }
                t => return self.err(format!("unexpected {t:?} in a kernel body")),
            }
        }
        for (i, label, line) in std::mem::take(&mut scope.fixups) {
            let Some(&target) = scope.labels.get(&label) else {
                return Err(EmuError::Parse(format!(
                    "line {line}: branch to undefined label {label}"
                )));
            };
            if let Op::Bra { target: t } = &mut insts[i].op {
                *t = target;
            }
        }
        // Dynamic shared memory starts after the static arrays, 16-byte aligned (every
        // `extern .shared` symbol resolved to this offset in `symbol`, since NVRTC declares
        // all of a body's variables before its first instruction).
        let dynamic_shared_offset = align_up(scope.shared_bytes, 16);
        Ok(Kernel {
            name,
            params,
            param_bytes,
            insts,
            num_regs: scope.reg_names.len(),
            reg_names: scope.reg_names,
            specials: scope.specials,
            shared_bytes: scope.shared_bytes,
            dynamic_shared_offset,
            local_bytes: scope.local_bytes,
            max_ntid,
            locs: kernel_locs,
        })
    }

    /// `.reg .TYPE %name<N>;` or `.reg .TYPE %a, %b;`
    fn reg_decl(&mut self, s: &mut Scope) -> EmuResult<()> {
        let ty = self.word()?;
        if parse_type(ty.trim_start_matches('.')).is_none() {
            return self.err(format!("register of unknown type {ty}"));
        }
        loop {
            let name = self.word()?;
            if self.eat_punct('<') {
                let n = self.number()?;
                self.punct('>')?;
                for i in 0..n {
                    new_reg(s, format!("{name}{i}"));
                }
            } else {
                new_reg(s, name);
            }
            if !self.eat_punct(',') {
                break;
            }
        }
        self.punct(';')
    }

    /// `.shared .align A .b8 name[N];` / `.local …` / `.extern .shared … name[];`
    fn var_decl(&mut self, s: &mut Scope, shared: bool, is_extern: bool) -> EmuResult<()> {
        let Decl {
            align,
            ty,
            name,
            count,
        } = self.decl("variable", true)?;
        let (align, count) = (align.unwrap_or(1) as u32, count as u32);
        if self.eat_punct('=') {
            return self.err("initialised .shared/.local variables are not supported");
        }
        self.punct(';')?;
        let bytes = ty.bytes() * count;
        if shared {
            if is_extern {
                // A marker: `symbol` resolves it to the start of the dynamic region.
                s.shared.insert(name, u32::MAX);
            } else {
                let off = align_up(s.shared_bytes, align);
                s.shared.insert(name, off);
                s.shared_bytes = off + bytes;
            }
        } else {
            let off = align_up(s.local_bytes, align);
            s.local.insert(name, off);
            s.local_bytes = off + bytes;
        }
        Ok(())
    }

    /// A register by name (special registers get a slot on first use).
    fn reg(&self, s: &mut Scope, name: &str) -> EmuResult<Reg> {
        if let Some(&r) = s.regs.get(name) {
            return Ok(r);
        }
        if let Some(sp) = special(name) {
            let r = new_reg(s, name.to_string());
            s.specials.push((r, sp));
            return Ok(r);
        }
        self.err(format!("undeclared register {name}"))
    }

    /// The address of a symbol (shared, local, param or global), in its own space.
    fn symbol(&self, s: &Scope, name: &str) -> Option<i64> {
        if let Some(&o) = s.shared.get(name) {
            if o == u32::MAX {
                return Some(align_up(s.shared_bytes, 16) as i64);
            }
            return Some(o as i64);
        }
        if let Some(&o) = s.local.get(name) {
            return Some(o as i64);
        }
        if let Some(&o) = s.params.get(name) {
            return Some(o as i64);
        }
        self.module
            .globals
            .iter()
            .find(|g| g.name == name)
            .map(|g| g.address as i64)
    }

    /// Operands up to `;`.
    fn operands(&mut self) -> EmuResult<Vec<Syn>> {
        let mut out = Vec::new();
        if self.eat_punct(';') {
            return Ok(out);
        }
        loop {
            let o = self.operand()?;
            let o = if self.eat_punct('|') {
                Syn::Pair(Box::new(o), Box::new(self.operand()?))
            } else {
                o
            };
            out.push(o);
            if self.eat_punct(';') {
                return Ok(out);
            }
            self.punct(',')?;
        }
    }

    fn operand(&mut self) -> EmuResult<Syn> {
        match self.next()? {
            T::Punct('!') => Ok(Syn::Not(Box::new(self.operand()?))),
            T::Punct('-') => {
                let w = self.word()?;
                Ok(Syn::Lit(format!("-{w}")))
            }
            T::Punct('{') => {
                let mut v = Vec::new();
                loop {
                    v.push(self.operand()?);
                    if self.eat_punct('}') {
                        return Ok(Syn::Vector(v));
                    }
                    self.punct(',')?;
                }
            }
            T::Punct('[') => {
                let mut base = None;
                let mut offset = 0i64;
                if let Some(T::Word(w)) = self.peek().cloned() {
                    if parse_int(&w).is_none() {
                        self.pos += 1;
                        base = Some(w);
                    }
                }
                loop {
                    if self.eat_punct(']') {
                        break;
                    }
                    // `+ off`, `+ -off` or `- off`.
                    self.eat_punct('+');
                    let neg = self.eat_punct('-');
                    let w = self.word()?;
                    let v = match parse_int(&w) {
                        Some(v) => v as i64,
                        None => return self.err(format!("bad address offset {w}")),
                    };
                    offset = offset.wrapping_add(if neg { v.wrapping_neg() } else { v });
                }
                Ok(Syn::Addr(base, offset))
            }
            T::Word(w) => {
                if w.starts_with('%') || !starts_like_number(&w) {
                    Ok(Syn::Name(w))
                } else {
                    Ok(Syn::Lit(w))
                }
            }
            t => {
                self.pos -= 1;
                self.err(format!("unexpected {t:?} as an operand"))
            }
        }
    }

    fn instruction(
        &mut self,
        s: &mut Scope,
        opcode: &str,
        index: usize,
        line: u32,
    ) -> EmuResult<Inst> {
        let start = self.pos;
        let ops = self.operands()?;
        let text = self.text_of(opcode, start);
        let mut cx = Decode { p: self, s, line };
        let op = cx.decode(opcode, &ops, index)?;
        Ok(Inst {
            op,
            guard: None,
            ptx_line: line,
            loc: u32::MAX,
            form: opcode.to_string(),
            text,
        })
    }

    /// The instruction's text rebuilt from its tokens (`opcode op, op, …;`).
    fn text_of(&self, opcode: &str, start: usize) -> String {
        let mut s = opcode.to_string();
        let mut first = true;
        for t in &self.toks[start..self.pos] {
            match &t.t {
                T::Word(w) => {
                    if first {
                        s.push(' ');
                        first = false;
                    }
                    s.push_str(w);
                }
                T::Punct(',') => s.push_str(", "),
                T::Punct(c) => {
                    if first && *c != ';' {
                        s.push(' ');
                        first = false;
                    }
                    s.push(*c);
                }
                T::Str(x) => s.push_str(x),
                T::Loc(_) => {}
            }
        }
        s
    }
}

fn new_reg(s: &mut Scope, name: String) -> Reg {
    let r = s.reg_names.len() as Reg;
    s.regs.insert(name.clone(), r);
    s.reg_names.push(name);
    r
}

fn special(name: &str) -> Option<Special> {
    let dim = |s: &str| match s {
        "x" => Some(0u8),
        "y" => Some(1),
        "z" => Some(2),
        _ => None,
    };
    let (head, tail) = name.split_once('.').unwrap_or((name, ""));
    Some(match head {
        "%tid" => Special::Tid(dim(tail)?),
        "%ntid" => Special::Ntid(dim(tail)?),
        "%ctaid" => Special::Ctaid(dim(tail)?),
        "%nctaid" => Special::Nctaid(dim(tail)?),
        "%laneid" => Special::LaneId,
        "%warpid" => Special::WarpId,
        "%nwarpid" => Special::NWarpId,
        "%lanemask_lt" => Special::LaneMask(0),
        "%lanemask_le" => Special::LaneMask(1),
        "%lanemask_eq" => Special::LaneMask(2),
        "%lanemask_ge" => Special::LaneMask(3),
        "%lanemask_gt" => Special::LaneMask(4),
        "%clock" | "%clock64" | "%smid" | "%globaltimer" => Special::Zero,
        _ => return None,
    })
}

fn starts_like_number(w: &str) -> bool {
    w.chars().next().is_some_and(|c| c.is_ascii_digit())
}

/// An integer literal: decimal, `0x` hex, `0b` binary, octal with a leading 0, optional `U`.
fn parse_int(w: &str) -> Option<i128> {
    let (neg, w) = match w.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, w),
    };
    let w = w.strip_suffix('U').unwrap_or(w);
    let v = if let Some(h) = w.strip_prefix("0x").or_else(|| w.strip_prefix("0X")) {
        i128::from_str_radix(h, 16).ok()?
    } else if let Some(b) = w.strip_prefix("0b").or_else(|| w.strip_prefix("0B")) {
        i128::from_str_radix(b, 2).ok()?
    } else if w.len() > 1 && w.starts_with('0') && w.chars().all(|c| c.is_ascii_digit()) {
        i128::from_str_radix(&w[1..], 8).ok()?
    } else {
        w.parse::<i128>().ok()?
    };
    Some(if neg { -v } else { v })
}

fn parse_type(t: &str) -> Option<Ty> {
    Some(match t {
        "b8" => Ty::B8,
        "b16" => Ty::B16,
        "b32" => Ty::B32,
        "b64" => Ty::B64,
        "u8" => Ty::U8,
        "u16" => Ty::U16,
        "u32" => Ty::U32,
        "u64" => Ty::U64,
        "s8" => Ty::S8,
        "s16" => Ty::S16,
        "s32" => Ty::S32,
        "s64" => Ty::S64,
        "f16" => Ty::F16,
        "f32" => Ty::F32,
        "f64" => Ty::F64,
        "pred" => Ty::Pred,
        "tf32" => Ty::Tf32,
        _ => return None,
    })
}

/// The width mask of a type's register value.
fn width_mask(ty: Ty) -> u64 {
    match ty.bits() {
        64 => u64::MAX,
        b => (1u64 << b) - 1,
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding one instruction.

struct Decode<'a, 'p, 'q> {
    p: &'a Parser<'p, 'q>,
    s: &'a mut Scope,
    line: u32,
}

/// The modifiers of an opcode, consumed one by one; leftovers are an error.
struct Mods<'a> {
    opcode: &'a str,
    parts: Vec<&'a str>,
}

impl<'a> Mods<'a> {
    fn new(opcode: &'a str) -> Self {
        Mods {
            opcode,
            parts: opcode.split('.').skip(1).collect(),
        }
    }
    fn take(&mut self, m: &str) -> bool {
        match self.parts.iter().position(|p| *p == m) {
            Some(i) => {
                self.parts.remove(i);
                true
            }
            None => false,
        }
    }
    fn take_any(&mut self, ms: &[&'a str]) -> Option<&'a str> {
        let i = self.parts.iter().position(|p| ms.contains(p))?;
        Some(self.parts.remove(i))
    }
    /// Remove and return the types (in order) among the modifiers.
    fn types(&mut self) -> Vec<Ty> {
        let mut out = Vec::new();
        self.parts.retain(|p| match parse_type(p) {
            Some(t) => {
                out.push(t);
                false
            }
            None => true,
        });
        out
    }
    fn done(&self, line: u32) -> EmuResult<()> {
        if self.parts.is_empty() {
            Ok(())
        } else {
            Err(EmuError::Parse(format!(
                "line {line}: `{}`: modifier(s) {:?} not supported",
                self.opcode, self.parts
            )))
        }
    }
}

fn rounding(m: &str) -> Option<Rounding> {
    Some(match m {
        "rn" => Rounding::Nearest,
        "rz" => Rounding::Zero,
        "rm" => Rounding::Down,
        "rp" => Rounding::Up,
        _ => return None,
    })
}

impl Decode<'_, '_, '_> {
    fn err<T>(&self, msg: impl std::fmt::Display) -> EmuResult<T> {
        Err(EmuError::Parse(format!("line {}: {msg}", self.line)))
    }

    fn dst(&mut self, o: &Syn) -> EmuResult<Reg> {
        match o {
            Syn::Name(n) if n.starts_with('%') => self.p.reg(self.s, n),
            _ => self.err(format!("expected a register, found {o:?}")),
        }
    }

    /// A source operand of type `ty`.
    fn src(&mut self, o: &Syn, ty: Ty) -> EmuResult<Operand> {
        match o {
            Syn::Name(n) if n.starts_with('%') => Ok(Operand::Reg(self.p.reg(self.s, n)?)),
            Syn::Name(n) => match self.p.symbol(self.s, n) {
                Some(v) => Ok(Operand::Imm(v as u64)),
                None => self.err(format!("unknown symbol {n}")),
            },
            Syn::Lit(w) => self.literal(w, ty).map(Operand::Imm),
            _ => self.err(format!("unexpected operand {o:?}")),
        }
    }

    fn literal(&self, w: &str, ty: Ty) -> EmuResult<u64> {
        let (neg, body) = match w.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, w),
        };
        if let Some(h) = body.strip_prefix("0f").or_else(|| body.strip_prefix("0F")) {
            let bits = u32::from_str_radix(h, 16)
                .map_err(|_| EmuError::Parse(format!("line {}: bad f32 literal {w}", self.line)))?;
            let bits = if neg { bits ^ 0x8000_0000 } else { bits };
            return match ty {
                Ty::F32 | Ty::B32 | Ty::Tf32 => Ok(bits as u64),
                Ty::F64 => Ok((f32::from_bits(bits) as f64).to_bits()),
                _ => self.err(format!("f32 literal {w} for a {ty:?} operand")),
            };
        }
        if let Some(h) = body.strip_prefix("0d").or_else(|| body.strip_prefix("0D")) {
            let bits = u64::from_str_radix(h, 16)
                .map_err(|_| EmuError::Parse(format!("line {}: bad f64 literal {w}", self.line)))?;
            let bits = if neg { bits ^ (1 << 63) } else { bits };
            return match ty {
                Ty::F64 | Ty::B64 => Ok(bits),
                Ty::F32 => Ok(
                    crate::float::f64_to_f32(f64::from_bits(bits), Rounding::Nearest).to_bits()
                        as u64,
                ),
                _ => self.err(format!("f64 literal {w} for a {ty:?} operand")),
            };
        }
        if let Some(v) = parse_int(w) {
            return match ty {
                Ty::F32 => Ok((v as f32).to_bits() as u64),
                Ty::F64 => Ok((v as f64).to_bits()),
                Ty::Pred => Ok((v != 0) as u64),
                _ => Ok((v as u64) & width_mask(ty)),
            };
        }
        if body.contains('.') || body.contains('e') {
            if let Ok(f) = w.parse::<f64>() {
                return match ty {
                    Ty::F32 => Ok((f as f32).to_bits() as u64),
                    Ty::F64 => Ok(f.to_bits()),
                    _ => self.err(format!("float literal {w} for a {ty:?} operand")),
                };
            }
        }
        self.err(format!("bad literal {w}"))
    }

    fn addr(&mut self, o: &Syn) -> EmuResult<Addr> {
        let Syn::Addr(base, offset) = o else {
            return self.err(format!("expected an address [..], found {o:?}"));
        };
        let mut a = Addr {
            base: None,
            offset: *offset,
        };
        if let Some(b) = base {
            if b.starts_with('%') {
                a.base = Some(self.p.reg(self.s, b)?);
            } else {
                match self.p.symbol(self.s, b) {
                    Some(v) => a.offset = a.offset.wrapping_add(v),
                    None => return self.err(format!("unknown symbol {b} in an address")),
                }
            }
        }
        Ok(a)
    }

    fn n_ops(&self, ops: &[Syn], n: usize, opcode: &str) -> EmuResult<()> {
        if ops.len() == n {
            Ok(())
        } else {
            self.err(format!(
                "`{opcode}` takes {n} operands, found {}",
                ops.len()
            ))
        }
    }

    fn one_type(&self, m: &mut Mods, opcode: &str) -> EmuResult<Ty> {
        let t = m.types();
        match t.as_slice() {
            [t] => Ok(*t),
            _ => self.err(format!("`{opcode}`: expected one type")),
        }
    }

    fn decode(&mut self, opcode: &str, ops: &[Syn], index: usize) -> EmuResult<Op> {
        let base = opcode.split('.').next().unwrap_or("");
        let mut m = Mods::new(opcode);
        let line = self.line;
        let op = match base {
            "mov" => {
                let ty = self.one_type(&mut m, opcode)?;
                self.n_ops(ops, 2, opcode)?;
                match (&ops[0], &ops[1]) {
                    (Syn::Vector(parts), src) => {
                        let parts = parts
                            .iter()
                            .map(|p| self.dst(p))
                            .collect::<EmuResult<_>>()?;
                        let a = self.src(src, ty)?;
                        Op::Unpack {
                            half_bits: ty.bits() / 2,
                            parts,
                            a,
                        }
                    }
                    (d, Syn::Vector(parts)) => {
                        let d = self.dst(d)?;
                        let n = parts.len() as u32;
                        let half = half_type(ty.bits() / n.max(1));
                        let parts = parts
                            .iter()
                            .map(|p| self.src(p, half))
                            .collect::<EmuResult<_>>()?;
                        Op::Pack {
                            d,
                            parts,
                            half_bits: ty.bits() / n.max(1),
                        }
                    }
                    (d, a) => Op::Mov {
                        d: self.dst(d)?,
                        a: self.src(a, ty)?,
                    },
                }
            }
            "add" | "sub" | "mul" | "mad" | "fma" | "div" | "rem" | "min" | "max" | "neg"
            | "abs" | "and" | "or" | "xor" | "not" | "shl" | "shr" | "rcp" | "sqrt" | "rsqrt"
            | "ex2" | "lg2" | "sin" | "cos" | "bfi" => self.arith(base, opcode, &mut m, ops)?,
            "setp" => {
                let cmp = match m.take_any(&[
                    "eq", "ne", "lt", "le", "gt", "ge", "lo", "ls", "hi", "hs", "equ", "neu",
                    "ltu", "leu", "gtu", "geu", "num", "nan",
                ]) {
                    Some(c) => cmp_of(c),
                    None => return self.err(format!("`{opcode}`: no comparison")),
                };
                let bop = m.take_any(&["and", "or", "xor"]).map(|b| match b {
                    "and" => BoolOp::And,
                    "or" => BoolOp::Or,
                    _ => BoolOp::Xor,
                });
                let ftz = m.take("ftz");
                let ty = self.one_type(&mut m, opcode)?;
                let (p, q) = match &ops.first() {
                    Some(Syn::Pair(a, b)) => (self.dst(a)?, Some(self.dst(b)?)),
                    Some(a) => (self.dst(a)?, None),
                    None => return self.err("setp without operands"),
                };
                let combine = match bop {
                    Some(b) => {
                        self.n_ops(ops, 4, opcode)?;
                        let (neg, c) = match &ops[3] {
                            Syn::Not(c) => (true, self.src(c, Ty::Pred)?),
                            c => (false, self.src(c, Ty::Pred)?),
                        };
                        Some((b, c, neg))
                    }
                    None => {
                        self.n_ops(ops, 3, opcode)?;
                        None
                    }
                };
                Op::Setp {
                    cmp,
                    ty,
                    ftz,
                    p,
                    q,
                    a: self.src(&ops[1], ty)?,
                    b: self.src(&ops[2], ty)?,
                    combine,
                }
            }
            "selp" => {
                let ty = self.one_type(&mut m, opcode)?;
                self.n_ops(ops, 4, opcode)?;
                Op::Selp {
                    ty,
                    d: self.dst(&ops[0])?,
                    a: self.src(&ops[1], ty)?,
                    b: self.src(&ops[2], ty)?,
                    p: self.src(&ops[3], Ty::Pred)?,
                }
            }
            "cvt" => {
                let frnd = m.take_any(&["rn", "rz", "rm", "rp"]).and_then(rounding);
                let rna = m.take("rna");
                let irnd = m.take_any(&["rni", "rzi", "rmi", "rpi"]).map(|r| match r {
                    "rni" => IntRounding::Nearest,
                    "rzi" => IntRounding::Zero,
                    "rmi" => IntRounding::Down,
                    _ => IntRounding::Up,
                });
                let ftz = m.take("ftz");
                let sat = m.take("sat");
                let t = m.types();
                let [dty, sty] = t[..] else {
                    return self.err(format!("`{opcode}`: expected two types"));
                };
                self.n_ops(ops, 2, opcode)?;
                if [dty, sty].iter().any(|t| matches!(t, Ty::F16 | Ty::Pred))
                    || (dty == Ty::Tf32) != rna
                    || sty == Ty::Tf32
                {
                    return self.err(format!("`{opcode}`: conversion not supported"));
                }
                if rna && !(dty == Ty::Tf32 && sty == Ty::F32) {
                    return self.err(format!("`{opcode}`: .rna only for tf32.f32"));
                }
                let d = self.dst(&ops[0])?;
                let a = self.src(&ops[1], sty)?;
                // An integer-to-integer cvt with rounding, or float→float rounding where the
                // ISA requires one, are caught here.
                if dty.is_float() && sty.is_float() && dty.bits() < sty.bits() && frnd.is_none() {
                    return self.err(format!("`{opcode}`: narrowing float cvt needs a rounding"));
                }
                Op::Cvt(Cvt {
                    dty,
                    sty,
                    frnd,
                    irnd,
                    rna,
                    ftz,
                    sat,
                    d,
                    a,
                })
            }
            "cvta" => {
                let to = m.take("to");
                let space = match m.take_any(&["global", "shared", "local", "param"]) {
                    Some(s) => space_of(s),
                    None => return self.err(format!("`{opcode}`: no state space")),
                };
                let t = m.types();
                if t != [Ty::U64] {
                    return self.err(format!("`{opcode}`: only .u64 is supported"));
                }
                self.n_ops(ops, 2, opcode)?;
                Op::Cvta {
                    space,
                    to_generic: !to,
                    d: self.dst(&ops[0])?,
                    a: self.src(&ops[1], Ty::U64)?,
                }
            }
            "ld" | "st" => {
                let space = match m.take_any(&["global", "shared", "local", "param"]) {
                    Some(s) => space_of(s),
                    None => Space::Generic,
                };
                m.take("nc");
                // Every access of the interpreter goes to memory at once, so `.volatile` (no
                // caching in registers) holds by construction.
                m.take("volatile");
                m.take_any(&["ca", "cg", "cs", "lu", "cv", "wb", "wt"]);
                let vec = match m.take_any(&["v2", "v4"]) {
                    Some("v2") => 2,
                    Some(_) => 4,
                    None => 1,
                };
                let ty = self.one_type(&mut m, opcode)?;
                self.n_ops(ops, 2, opcode)?;
                let (val, adr) = if base == "ld" {
                    (&ops[0], &ops[1])
                } else {
                    (&ops[1], &ops[0])
                };
                let addr = self.addr(adr)?;
                let vals: Vec<&Syn> = match val {
                    Syn::Vector(v) if vec > 1 && v.len() == vec => v.iter().collect(),
                    v if vec == 1 => vec![v],
                    _ => {
                        return self
                            .err(format!("`{opcode}`: operand count does not match .v{vec}"))
                    }
                };
                if base == "ld" {
                    Op::Ld {
                        space,
                        ty,
                        d: vals.iter().map(|v| self.dst(v)).collect::<EmuResult<_>>()?,
                        addr,
                    }
                } else {
                    Op::St {
                        space,
                        ty,
                        a: vals
                            .iter()
                            .map(|v| self.src(v, ty))
                            .collect::<EmuResult<_>>()?,
                        addr,
                    }
                }
            }
            "atom" | "red" => {
                let space = match m.take_any(&["global", "shared"]) {
                    Some(s) => space_of(s),
                    None => Space::Generic,
                };
                if !m.take("add") {
                    return self.err(format!("`{opcode}`: only atom.add is supported"));
                }
                m.take("relaxed");
                m.take("gpu");
                let ty = self.one_type(&mut m, opcode)?;
                if base == "red" {
                    self.n_ops(ops, 2, opcode)?;
                    return self.err("red is not supported");
                }
                self.n_ops(ops, 3, opcode)?;
                Op::AtomAdd {
                    space,
                    ty,
                    d: self.dst(&ops[0])?,
                    addr: self.addr(&ops[1])?,
                    b: self.src(&ops[2], ty)?,
                }
            }
            "bra" => {
                m.take("uni");
                self.n_ops(ops, 1, opcode)?;
                let Syn::Name(label) = &ops[0] else {
                    return self.err("bra needs a label");
                };
                self.s.fixups.push((index, label.clone(), line));
                Op::Bra { target: u32::MAX }
            }
            "ret" | "exit" => {
                self.n_ops(ops, 0, opcode)?;
                Op::Exit
            }
            "bar" if m.take("warp") => {
                if !m.take("sync") {
                    return self.err(format!("`{opcode}`: only bar.warp.sync"));
                }
                self.n_ops(ops, 1, opcode)?;
                Op::WarpSync {
                    mask: self.src(&ops[0], Ty::B32)?,
                }
            }
            "bar" | "barrier" => {
                if !(m.take("sync") || m.take("aligned")) {
                    return self.err(format!("`{opcode}`: only bar.sync is supported"));
                }
                m.take("aligned");
                m.take("sync");
                if ops.is_empty() || ops.len() > 2 {
                    return self.err(format!("`{opcode}`: takes 1 or 2 operands"));
                }
                Op::Bar {
                    id: self.src(&ops[0], Ty::U32)?,
                    count: match ops.get(1) {
                        Some(c) => Some(self.src(c, Ty::U32)?),
                        None => None,
                    },
                }
            }
            "shfl" => {
                if !m.take("sync") {
                    return self.err(format!("`{opcode}`: only shfl.sync (sm_70+) is supported"));
                }
                let mode = match m.take_any(&["up", "down", "bfly", "idx"]) {
                    Some("up") => ShflMode::Up,
                    Some("down") => ShflMode::Down,
                    Some("bfly") => ShflMode::Bfly,
                    Some(_) => ShflMode::Idx,
                    None => return self.err(format!("`{opcode}`: no mode")),
                };
                if !m.take("b32") {
                    return self.err(format!("`{opcode}`: only .b32"));
                }
                self.n_ops(ops, 5, opcode)?;
                let (d, p) = match &ops[0] {
                    Syn::Pair(a, b) => (self.dst(a)?, Some(self.dst(b)?)),
                    a => (self.dst(a)?, None),
                };
                Op::Shfl {
                    mode,
                    d,
                    p,
                    a: self.src(&ops[1], Ty::B32)?,
                    b: self.src(&ops[2], Ty::B32)?,
                    c: self.src(&ops[3], Ty::B32)?,
                    mask: self.src(&ops[4], Ty::B32)?,
                }
            }
            "mma" => {
                for want in ["sync", "aligned", "m16n8k8", "row", "col"] {
                    if !m.take(want) {
                        return self
                            .err(format!("`{opcode}`: only mma.sync.aligned.m16n8k8.row.col"));
                    }
                }
                let t = m.types();
                if t != [Ty::F32, Ty::Tf32, Ty::Tf32, Ty::F32] {
                    return self.err(format!("`{opcode}`: only .f32.tf32.tf32.f32"));
                }
                self.n_ops(ops, 4, opcode)?;
                let regs = |cx: &mut Self, o: &Syn, n: usize| -> EmuResult<Vec<Syn>> {
                    match o {
                        Syn::Vector(v) if v.len() == n => Ok(v.clone()),
                        _ => cx.err(format!("mma operand: expected {n} registers")),
                    }
                };
                let dv = regs(self, &ops[0], 4)?;
                let av = regs(self, &ops[1], 4)?;
                let bv = regs(self, &ops[2], 2)?;
                let cv = regs(self, &ops[3], 4)?;
                let d = [
                    self.dst(&dv[0])?,
                    self.dst(&dv[1])?,
                    self.dst(&dv[2])?,
                    self.dst(&dv[3])?,
                ];
                let a = [
                    self.src(&av[0], Ty::B32)?,
                    self.src(&av[1], Ty::B32)?,
                    self.src(&av[2], Ty::B32)?,
                    self.src(&av[3], Ty::B32)?,
                ];
                let b = [self.src(&bv[0], Ty::B32)?, self.src(&bv[1], Ty::B32)?];
                let c = [
                    self.src(&cv[0], Ty::F32)?,
                    self.src(&cv[1], Ty::F32)?,
                    self.src(&cv[2], Ty::F32)?,
                    self.src(&cv[3], Ty::F32)?,
                ];
                Op::MmaTf32 { d, a, b, c }
            }
            _ => return self.err(format!("unsupported instruction `{opcode}`")),
        };
        m.done(line)?;
        Ok(op)
    }

    fn arith(&mut self, base: &str, opcode: &str, m: &mut Mods, ops: &[Syn]) -> EmuResult<Op> {
        let rnd = m.take_any(&["rn", "rz", "rm", "rp"]).and_then(rounding);
        let approx = m.take("approx");
        let full = m.take("full");
        let ftz = m.take("ftz");
        let sat = m.take("sat");
        let half = m.take_any(&["lo", "hi", "wide"]);
        let ty = self.one_type(m, opcode)?;
        let unary = matches!(
            base,
            "neg" | "abs" | "not" | "rcp" | "sqrt" | "rsqrt" | "ex2" | "lg2" | "sin" | "cos"
        );
        let ternary = matches!(base, "mad" | "fma");
        let n = if unary {
            2
        } else if ternary {
            4
        } else if base == "bfi" {
            5
        } else {
            3
        };
        self.n_ops(ops, n, opcode)?;
        if ty == Ty::Pred {
            if !matches!(base, "and" | "or" | "xor" | "not") {
                return self.err(format!("`{opcode}` on predicates"));
            }
            let op = match base {
                "and" => IntOp::And,
                "or" => IntOp::Or,
                "xor" => IntOp::Xor,
                _ => IntOp::Not,
            };
            let d = self.dst(&ops[0])?;
            let a = self.src(&ops[1], Ty::Pred)?;
            let b = match ops.get(2) {
                Some(b) => self.src(b, Ty::Pred)?,
                None => Operand::Imm(0),
            };
            return Ok(Op::PredLogic { op, d, a, b });
        }
        if ty.is_float() {
            let fop = match (base, approx || full) {
                ("add", false) => FloatOp::Add,
                ("sub", false) => FloatOp::Sub,
                ("mul", false) => FloatOp::Mul,
                ("fma", false) | ("mad", false) => FloatOp::Fma,
                ("div", false) => FloatOp::Div,
                ("div", true) => FloatOp::DivApprox,
                ("rcp", false) => FloatOp::Rcp,
                ("rcp", true) => FloatOp::RcpApprox,
                ("sqrt", false) => FloatOp::Sqrt,
                ("sqrt", true) => FloatOp::SqrtApprox,
                ("rsqrt", true) => FloatOp::RsqrtApprox,
                ("ex2", true) => FloatOp::Ex2Approx,
                ("lg2", true) => FloatOp::Lg2Approx,
                ("sin", true) => FloatOp::SinApprox,
                ("cos", true) => FloatOp::CosApprox,
                ("neg", false) => FloatOp::Neg,
                ("abs", false) => FloatOp::Abs,
                ("min", false) => FloatOp::Min,
                ("max", false) => FloatOp::Max,
                _ => return self.err(format!("unsupported float instruction `{opcode}`")),
            };
            // The ISA requires a rounding on div/sqrt/rcp unless .approx/.full, and on fma.
            let needs_rnd = matches!(
                fop,
                FloatOp::Div | FloatOp::Rcp | FloatOp::Sqrt | FloatOp::Fma
            );
            if needs_rnd && rnd.is_none() {
                return self.err(format!("`{opcode}` needs a rounding modifier"));
            }
            if half.is_some() {
                return self.err(format!("`{opcode}`: .lo/.hi/.wide on a float"));
            }
            let d = self.dst(&ops[0])?;
            let a = self.src(&ops[1], ty)?;
            let b = match ops.get(2) {
                Some(b) => self.src(b, ty)?,
                None => Operand::Imm(0),
            };
            let c = match ops.get(3) {
                Some(c) => self.src(c, ty)?,
                None => Operand::Imm(0),
            };
            let rnd = rnd.unwrap_or_default();
            return match ty {
                Ty::F32 => Ok(Op::F32(F32Arith {
                    op: fop,
                    rnd,
                    ftz,
                    sat,
                    d,
                    a,
                    b,
                    c,
                })),
                Ty::F64 => {
                    if ftz || sat {
                        return self.err(format!("`{opcode}`: .ftz/.sat on f64"));
                    }
                    // The f64 forms the interpreter implements (exec::f64_op).
                    if !matches!(
                        fop,
                        FloatOp::Add
                            | FloatOp::Sub
                            | FloatOp::Mul
                            | FloatOp::Fma
                            | FloatOp::Div
                            | FloatOp::Rcp
                            | FloatOp::RcpApprox
                            | FloatOp::Sqrt
                            | FloatOp::Neg
                            | FloatOp::Abs
                            | FloatOp::Min
                            | FloatOp::Max
                    ) {
                        return self.err(format!("unsupported f64 instruction `{opcode}`"));
                    }
                    Ok(Op::F64(F64Arith {
                        op: fop,
                        rnd,
                        d,
                        a,
                        b,
                        c,
                    }))
                }
                _ => self.err(format!("`{opcode}`: {ty:?} arithmetic is not supported")),
            };
        }
        if rnd.is_some() || approx || full || ftz {
            return self.err(format!("`{opcode}`: float modifier on an integer op"));
        }
        if sat && !(ty == Ty::S32 && matches!(base, "add" | "sub")) {
            return self.err(format!("`{opcode}`: .sat only on add/sub.s32"));
        }
        if sat {
            return self.err(format!(
                "`{opcode}`: .sat integer arithmetic is not supported"
            ));
        }
        let iop = match (base, half) {
            ("add", None) => IntOp::Add,
            ("sub", None) => IntOp::Sub,
            ("mul", Some("lo")) => IntOp::MulLo,
            ("mul", Some("hi")) => IntOp::MulHi,
            ("mul", Some("wide")) => IntOp::MulWide,
            ("mad", Some("lo")) => IntOp::MadLo,
            ("mad", Some("hi")) => IntOp::MadHi,
            ("mad", Some("wide")) => IntOp::MadWide,
            ("div", None) => IntOp::Div,
            ("rem", None) => IntOp::Rem,
            ("min", None) => IntOp::Min,
            ("max", None) => IntOp::Max,
            ("neg", None) => IntOp::Neg,
            ("abs", None) => IntOp::Abs,
            ("and", None) => IntOp::And,
            ("or", None) => IntOp::Or,
            ("xor", None) => IntOp::Xor,
            ("not", None) => IntOp::Not,
            ("shl", None) => IntOp::Shl,
            ("shr", None) => IntOp::Shr,
            ("bfi", None) => IntOp::Bfi,
            _ => return self.err(format!("unsupported integer instruction `{opcode}`")),
        };
        if matches!(iop, IntOp::MulWide | IntOp::MadWide) && ty.bits() == 64 {
            return self.err(format!("`{opcode}`: .wide of a 64-bit type"));
        }
        let wide = |t: Ty| match t {
            Ty::U16 => Ty::U32,
            Ty::S16 => Ty::S32,
            Ty::U32 => Ty::U64,
            Ty::S32 => Ty::S64,
            t => t,
        };
        let d = self.dst(&ops[0])?;
        // Shift amounts and bfi's position/length are .u32 whatever the data type.
        let b_ty = if matches!(iop, IntOp::Shl | IntOp::Shr) {
            Ty::U32
        } else {
            ty
        };
        let a = self.src(&ops[1], ty)?;
        let b = match ops.get(2) {
            Some(b) => self.src(b, b_ty)?,
            None => Operand::Imm(0),
        };
        let c_ty = if iop == IntOp::Bfi {
            Ty::U32
        } else if iop == IntOp::MadWide {
            wide(ty)
        } else {
            ty
        };
        let c = match ops.get(3) {
            Some(c) => self.src(c, c_ty)?,
            None => Operand::Imm(0),
        };
        let e = match ops.get(4) {
            Some(e) => self.src(e, Ty::U32)?,
            None => Operand::Imm(0),
        };
        Ok(Op::Int(IntArith {
            op: iop,
            ty,
            d,
            a,
            b,
            c,
            e,
        }))
    }
}

fn half_type(bits: u32) -> Ty {
    match bits {
        8 => Ty::B8,
        16 => Ty::B16,
        32 => Ty::B32,
        _ => Ty::B64,
    }
}

fn cmp_of(c: &str) -> Cmp {
    match c {
        "eq" => Cmp::Eq,
        "ne" => Cmp::Ne,
        "lt" => Cmp::Lt,
        "le" => Cmp::Le,
        "gt" => Cmp::Gt,
        "ge" => Cmp::Ge,
        "lo" => Cmp::Lo,
        "ls" => Cmp::Ls,
        "hi" => Cmp::Hi,
        "hs" => Cmp::Hs,
        "equ" => Cmp::Equ,
        "neu" => Cmp::Neu,
        "ltu" => Cmp::Ltu,
        "leu" => Cmp::Leu,
        "gtu" => Cmp::Gtu,
        "geu" => Cmp::Geu,
        "num" => Cmp::Num,
        _ => Cmp::Nan,
    }
}

fn space_of(s: &str) -> Space {
    match s {
        "global" => Space::Global,
        "shared" => Space::Shared,
        "local" => Space::Local,
        _ => Space::Param,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// These modules declare no `.global`.
    fn no_globals(g: &Global) -> EmuResult<u64> {
        Err(EmuError::Invalid(format!("unexpected global {}", g.name)))
    }

    const SAXPY: &str = r#"
.version 8.8
.target sm_90
.address_size 64

	// .globl	saxpy
.visible .entry saxpy(
	.param .u64 saxpy_param_0,
	.param .f32 saxpy_param_1,
	.param .u32 saxpy_param_2
)
{
	.reg .pred 	%p<2>;
	.reg .f32 	%f<4>;
	.reg .b32 	%r<6>;
	.reg .b64 	%rd<5>;
	.loc	1 3 0

	ld.param.u64 	%rd1, [saxpy_param_0];
	ld.param.f32 	%f1, [saxpy_param_1];
	ld.param.u32 	%r2, [saxpy_param_2];
	mov.u32 	%r3, %ctaid.x;
	mov.u32 	%r4, %ntid.x;
	mov.u32 	%r5, %tid.x;
	mad.lo.s32 	%r1, %r3, %r4, %r5;
	setp.ge.u32 	%p1, %r1, %r2;
	@%p1 bra 	$L__BB0_2;
	cvta.to.global.u64 	%rd2, %rd1;
	mul.wide.u32 	%rd3, %r1, 4;
	add.s64 	%rd4, %rd2, %rd3;
	ld.global.f32 	%f2, [%rd4];
	fma.rn.f32 	%f3, %f2, %f1, 0f3F800000;
	st.global.f32 	[%rd4], %f3;
$L__BB0_2:
	ret;
}
	.file	1 "/work/main/saxpy.cu"
"#;

    #[test]
    fn parses_a_small_kernel() {
        let m = parse_module(SAXPY, &mut no_globals).unwrap();
        assert_eq!(m.version, (8, 8));
        assert_eq!(m.target, "sm_90");
        let k = &m.kernels[0];
        assert_eq!(k.name, "saxpy");
        assert_eq!(
            k.params
                .iter()
                .map(|p| (p.offset, p.size))
                .collect::<Vec<_>>(),
            vec![(0, 8), (8, 4), (12, 4)]
        );
        assert_eq!(k.param_bytes, 16);
        assert_eq!(k.insts.len(), 16);
        // The branch points at the `ret` after the label.
        assert_eq!(k.insts[8].op, Op::Bra { target: 15 });
        assert!(k.insts[8].guard.is_some());
        assert_eq!(k.insts[15].op, Op::Exit);
        // The immediate of the fma is the f32 bits of 1.0.
        match &k.insts[13].op {
            Op::F32(F32Arith { op, c, .. }) => {
                assert_eq!(*op, FloatOp::Fma);
                assert_eq!(*c, Operand::Imm(0x3f80_0000));
            }
            o => panic!("{o:?}"),
        }
        assert_eq!(
            m.describe_loc(k, k.insts[13].loc).as_deref(),
            Some("saxpy.cu:3")
        );
        assert_eq!(k.specials.len(), 3);
    }

    #[test]
    fn unknown_forms_are_errors_with_the_line() {
        let bad = SAXPY.replace("fma.rn.f32", "fma.rn.sat.relu.f32");
        let e = parse_module(&bad, &mut no_globals).unwrap_err().to_string();
        assert!(e.contains("line 32") && e.contains("relu"), "{e}");
        let bad = SAXPY.replace("add.s64", "addc.s64");
        assert!(parse_module(&bad, &mut no_globals)
            .unwrap_err()
            .to_string()
            .contains("addc.s64"));
        let bad = SAXPY.replace("$L__BB0_2;", "$L__nowhere;");
        assert!(parse_module(&bad, &mut no_globals)
            .unwrap_err()
            .to_string()
            .contains("undefined label"));
        let bad = SAXPY.replace("%rd4, %rd2", "%rd9, %rd2");
        assert!(parse_module(&bad, &mut no_globals)
            .unwrap_err()
            .to_string()
            .contains("undeclared register %rd9"));
    }

    #[test]
    fn literals_take_the_operand_type() {
        assert_eq!(parse_int("-1"), Some(-1));
        assert_eq!(parse_int("0x1F"), Some(31));
        assert_eq!(parse_int("010"), Some(8));
        assert_eq!(parse_int("7U"), Some(7));
        let m = parse_module(&SAXPY.replace("%r1, 4;", "%r1, -1;"), &mut no_globals).unwrap();
        match &m.kernels[0].insts[10].op {
            Op::Int(IntArith { b, .. }) => assert_eq!(*b, Operand::Imm(0xffff_ffff)),
            o => panic!("{o:?}"),
        }
    }
}

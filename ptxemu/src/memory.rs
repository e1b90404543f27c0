//! Emulated device (global) memory: an allocation table with a shadow byte per byte that says
//! whether it was ever written.
//!
//! Addresses are handed out from a counter that only grows, each allocation aligned to 256 bytes
//! and followed by an unmapped gap of at least 256 bytes, so an access past the end of a buffer,
//! or into a freed one, lands in no allocation and is reported as out of bounds (with the nearest
//! allocation named) instead of silently reading a neighbour. Lookups binary-search the table,
//! which stays sorted because bases only grow.

use crate::error::{EmuError, EmuResult};

/// Where device addresses start (looks like a real GPU's, and is far from 0 so that a null or a
/// small integer used as a pointer faults).
pub const GLOBAL_BASE: u64 = 0x7f00_0000_0000;
const ALIGN: u64 = 256;
const GAP: u64 = 256;
/// The emulated device's memory size, reported by `cuMemGetInfo`/`cuDeviceTotalMem`.
pub const TOTAL_BYTES: u64 = 16 << 30;

/// One `cuMemAlloc`.
pub struct Allocation {
    pub base: u64,
    pub data: Vec<u8>,
    /// 1 where the byte was written (by a copy, a memset or a kernel store), 0 where never.
    pub init: Vec<u8>,
    /// A number for messages ("allocation #12").
    pub id: u64,
}

impl Allocation {
    pub fn end(&self) -> u64 {
        self.base + self.data.len() as u64
    }
}

/// The allocation table.
#[derive(Default)]
pub struct GlobalMemory {
    allocs: Vec<Allocation>,
    next: u64,
    next_id: u64,
    used: u64,
    /// (base, size, id) of the most recently freed allocations, for messages.
    freed: Vec<(u64, u64, u64)>,
}

impl GlobalMemory {
    pub fn new() -> Self {
        GlobalMemory {
            next: GLOBAL_BASE,
            ..Default::default()
        }
    }

    /// Bytes currently allocated.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// A new allocation of `bytes` bytes (uninitialised).
    pub fn alloc(&mut self, bytes: usize) -> EmuResult<u64> {
        if bytes == 0 {
            return Err(EmuError::Invalid("cuMemAlloc of 0 bytes".into()));
        }
        if self.used + bytes as u64 > TOTAL_BYTES {
            return Err(EmuError::OutOfMemory(format!(
                "{bytes} bytes requested, {} of {} in use",
                self.used, TOTAL_BYTES
            )));
        }
        let base = self.next.div_ceil(ALIGN) * ALIGN;
        self.next = base + bytes as u64 + GAP;
        self.next_id += 1;
        self.used += bytes as u64;
        self.allocs.push(Allocation {
            base,
            data: vec![0; bytes],
            init: vec![0; bytes],
            id: self.next_id,
        });
        Ok(base)
    }

    /// Free the allocation that starts at `ptr`.
    pub fn free(&mut self, ptr: u64) -> EmuResult<()> {
        let i = self
            .allocs
            .binary_search_by_key(&ptr, |a| a.base)
            .map_err(|_| {
                EmuError::Invalid(format!(
                    "cuMemFree({ptr:#x}): not the start of an allocation"
                ))
            })?;
        let a = self.allocs.remove(i);
        self.used -= a.data.len() as u64;
        self.freed.push((a.base, a.data.len() as u64, a.id));
        if self.freed.len() > 4096 {
            self.freed.drain(..2048);
        }
        Ok(())
    }

    /// How many allocations are live (indices for [`GlobalMemory::get`] run below it).
    pub fn allocation_count(&self) -> usize {
        self.allocs.len()
    }

    /// The index of the allocation holding `[addr, addr + len)`, if one does.
    #[inline]
    pub fn find(&self, addr: u64, len: u64) -> Option<usize> {
        let i = self.allocs.partition_point(|a| a.base <= addr);
        if i == 0 {
            return None;
        }
        let a = &self.allocs[i - 1];
        (addr.checked_add(len)? <= a.end()).then_some(i - 1)
    }

    #[inline]
    pub fn get(&self, i: usize) -> &Allocation {
        &self.allocs[i]
    }

    #[inline]
    pub fn get_mut(&mut self, i: usize) -> &mut Allocation {
        &mut self.allocs[i]
    }

    /// Why `[addr, addr + len)` is not addressable, for a fault message.
    pub fn explain(&self, addr: u64, len: u64) -> String {
        // A freed allocation's addresses are never reused: say so before naming a neighbour.
        if let Some((b, n, id)) = self
            .freed
            .iter()
            .rev()
            .find(|(b, n, _)| addr >= *b && addr < b + n)
        {
            return format!(
                "{len} bytes at {addr:#x} lie in allocation #{id} ({b:#x}, {n} bytes), which was freed"
            );
        }
        let i = self.allocs.partition_point(|a| a.base <= addr);
        if i > 0 {
            let a = &self.allocs[i - 1];
            if addr < a.end() {
                return format!(
                    "{len} bytes at {addr:#x} run {} bytes past the end of allocation #{} \
                     ({:#x}, {} bytes)",
                    addr + len - a.end(),
                    a.id,
                    a.base,
                    a.data.len()
                );
            }
            if addr - a.end() < 1 << 20 {
                let after = addr - a.end();
                let ofs = addr - a.base;
                let elems = a.data.len() as u64 / len.max(1);
                return format!(
                    "{len} bytes at {addr:#x} are {after} bytes past the end of allocation #{} \
                     ({:#x}, {} bytes; offset {ofs}, element {} of {elems})",
                    a.id,
                    a.base,
                    a.data.len(),
                    ofs / len.max(1)
                );
            }
        }
        if let Some(a) = self.allocs.get(i) {
            if a.base - addr < 1 << 20 {
                return format!(
                    "{len} bytes at {addr:#x} are {} bytes before the start of allocation #{} \
                     ({:#x}, {} bytes)",
                    a.base - addr,
                    a.id,
                    a.base,
                    a.data.len()
                );
            }
        }
        format!("{len} bytes at {addr:#x} lie in no allocation")
    }

    fn range(&self, what: &str, addr: u64, len: usize) -> EmuResult<(usize, usize)> {
        let i = self.find(addr, len as u64).ok_or_else(|| {
            EmuError::BadCopy(format!("{what}: {}", self.explain(addr, len as u64)))
        })?;
        Ok((i, (addr - self.allocs[i].base) as usize))
    }

    /// Host → device copy; marks the bytes written.
    pub fn write(&mut self, dst: u64, src: &[u8]) -> EmuResult<()> {
        if src.is_empty() {
            return Ok(());
        }
        let (i, o) = self.range("host-to-device copy", dst, src.len())?;
        let a = &mut self.allocs[i];
        a.data[o..o + src.len()].copy_from_slice(src);
        a.init[o..o + src.len()].fill(1);
        Ok(())
    }

    /// Device → host copy. Copying never-written bytes is not an error (a real `cudaMemcpy`
    /// would copy whatever was there; here, zeros).
    pub fn read(&self, src: u64, dst: &mut [u8]) -> EmuResult<()> {
        if dst.is_empty() {
            return Ok(());
        }
        let (i, o) = self.range("device-to-host copy", src, dst.len())?;
        dst.copy_from_slice(&self.allocs[i].data[o..o + dst.len()]);
        Ok(())
    }

    /// `cuMemsetD8`; marks the bytes written.
    pub fn memset(&mut self, dst: u64, value: u8, len: usize) -> EmuResult<()> {
        if len == 0 {
            return Ok(());
        }
        let (i, o) = self.range("memset", dst, len)?;
        let a = &mut self.allocs[i];
        a.data[o..o + len].fill(value);
        a.init[o..o + len].fill(1);
        Ok(())
    }

    /// `cuMemsetD32`; marks the bytes written.
    pub fn memset32(&mut self, dst: u64, value: u32, count: usize) -> EmuResult<()> {
        if count == 0 {
            return Ok(());
        }
        let (i, o) = self.range("memset", dst, count * 4)?;
        let a = &mut self.allocs[i];
        for c in a.data[o..o + count * 4].chunks_exact_mut(4) {
            c.copy_from_slice(&value.to_le_bytes());
        }
        a.init[o..o + count * 4].fill(1);
        Ok(())
    }

    /// Device → device copy; the written-ness of each byte travels with it.
    pub fn copy(&mut self, dst: u64, src: u64, len: usize) -> EmuResult<()> {
        if len == 0 {
            return Ok(());
        }
        let (si, so) = self.range("device-to-device copy (source)", src, len)?;
        let (di, d_o) = self.range("device-to-device copy (destination)", dst, len)?;
        let data = self.allocs[si].data[so..so + len].to_vec();
        let init = self.allocs[si].init[so..so + len].to_vec();
        let a = &mut self.allocs[di];
        a.data[d_o..d_o + len].copy_from_slice(&data);
        a.init[d_o..d_o + len].copy_from_slice(&init);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_are_separated_and_never_reused() {
        let mut m = GlobalMemory::new();
        let a = m.alloc(100).unwrap();
        let b = m.alloc(100).unwrap();
        assert!(b >= a + 100 + GAP);
        assert!(m.find(a, 100).is_some());
        assert!(
            m.find(a + 97, 4).is_none(),
            "a 4-byte read straddling the end"
        );
        assert!(m.explain(a + 97, 4).contains("1 bytes past the end"));
        assert!(m.explain(a + 100, 4).contains("0 bytes past the end"));
        m.free(a).unwrap();
        let c = m.alloc(100).unwrap();
        assert!(c > b);
        assert!(m.explain(a, 4).contains("freed"));
    }

    #[test]
    fn copies_carry_written_ness() {
        let mut m = GlobalMemory::new();
        let a = m.alloc(8).unwrap();
        let b = m.alloc(8).unwrap();
        m.write(a, &[1, 2, 3, 4]).unwrap();
        m.copy(b, a, 8).unwrap();
        let i = m.find(b, 8).unwrap();
        assert_eq!(m.get(i).init, vec![1, 1, 1, 1, 0, 0, 0, 0]);
        assert!(m.write(a + 6, &[0; 4]).is_err());
    }
}

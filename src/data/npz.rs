//! The `.npz` archive of NumPy (`np.savez`, `np.savez_compressed`): a zip file holding one
//! `.npy` file per array, named `<key>.npy`, stored (method 0, `savez`) or deflated (method 8,
//! `savez_compressed`).
//!
//! Hand-written against the zip specification (PKWARE's APPNOTE), for the little of it an
//! `.npz` uses: the reader finds the End Of Central Directory record (in the last 64 KiB + 22
//! bytes, where its variable-length comment may push it), follows the Zip64 locator when the
//! record's counts or offsets are saturated, lists the central directory (name, method, CRC-32,
//! sizes and the local header's offset, 64-bit values from the Zip64 extra field where the
//! 32-bit ones read `0xFFFFFFFF`; NumPy writes Zip64 local headers for every entry), and reads
//! an entry through its local header, whose name and extra field lengths may differ from the
//! central directory's. A stored entry is a slice of the file, a deflated one is inflated with
//! flate2 to exactly its declared size, and either must match its CRC-32. A well-kept crate
//! (`zip`) would bring a dozen compression features for these two methods; this way every
//! refusal names the file, the entry and the problem: not a zip archive, truncated records,
//! offsets past the end, encryption, other methods, size or CRC mismatches, a missing key.

use std::borrow::Cow;
use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::DeflateDecoder;

use crate::{memory, Error, Result};

const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const LOCAL_SIG: u32 = 0x0403_4b50;
/// Fixed sizes of the records.
const EOCD_LEN: usize = 22;
const ZIP64_LOCATOR_LEN: usize = 20;
const ZIP64_EOCD_LEN: usize = 56;
const CENTRAL_LEN: usize = 46;
const LOCAL_LEN: usize = 30;
/// The most a zip comment can add after the EOCD record.
const MAX_COMMENT: usize = u16::MAX as usize;
/// The extra-field id of Zip64's 64-bit sizes and offset.
const ZIP64_EXTRA_ID: u16 = 0x0001;
/// A 32-bit field that says "see the Zip64 record".
const SATURATED: u32 = u32::MAX;

/// Compression methods an `.npz` uses.
const STORED: u16 = 0;
const DEFLATED: u16 = 8;

/// One file of the archive, as the central directory lists it.
#[derive(Clone, Debug)]
struct Entry {
    name: String,
    flags: u16,
    method: u16,
    crc: u32,
    compressed: u64,
    size: u64,
    local_offset: u64,
}

/// A zip archive in memory: the file's bytes and its central directory.
pub struct Archive<'a> {
    path: PathBuf,
    bytes: &'a [u8],
    entries: Vec<Entry>,
}

/// Little-endian reads at an offset, `None` past the end.
fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

impl<'a> Archive<'a> {
    /// Parse the central directory of the zip archive `bytes`, read from `path`.
    pub fn parse(bytes: &'a [u8], path: &Path) -> Result<Archive<'a>> {
        let bad = |why: String| Err(Error::data(path, why));
        let Some(eocd) = find_eocd(bytes) else {
            return bad(if bytes.starts_with(super::npy::MAGIC) {
                "this is a single .npy array, not an .npz archive; use npy:DIR with x_train.npy … (see datasets/README.md)".to_string()
            } else {
                format!(
                    "not a zip archive (an .npz is one): no end-of-central-directory record in its {} bytes; the file is truncated or of another kind",
                    bytes.len()
                )
            });
        };
        let (mut count, mut cd_size, mut cd_offset) = (
            u16_at(bytes, eocd + 10).unwrap_or(0) as u64,
            u32_at(bytes, eocd + 12).unwrap_or(0) as u64,
            u32_at(bytes, eocd + 16).unwrap_or(0) as u64,
        );
        let saturated = count == u16::MAX as u64
            || cd_size == SATURATED as u64
            || cd_offset == SATURATED as u64;
        let locator = eocd.checked_sub(ZIP64_LOCATOR_LEN);
        if let Some(loc) = locator.filter(|&l| u32_at(bytes, l) == Some(ZIP64_LOCATOR_SIG)) {
            let at = u64_at(bytes, loc + 8).unwrap_or(u64::MAX);
            let rec = usize::try_from(at)
                .ok()
                .filter(|&r| r.checked_add(ZIP64_EOCD_LEN).is_some_and(|e| e <= loc))
                .filter(|&r| u32_at(bytes, r) == Some(ZIP64_EOCD_SIG));
            let Some(rec) = rec else {
                return bad(format!(
                    "the Zip64 locator points at byte {at}, where no Zip64 end-of-central-directory record is"
                ));
            };
            count = u64_at(bytes, rec + 32).unwrap_or(0);
            cd_size = u64_at(bytes, rec + 40).unwrap_or(0);
            cd_offset = u64_at(bytes, rec + 48).unwrap_or(0);
        } else if saturated {
            return bad(
                "the end-of-central-directory record defers to a Zip64 record that is missing"
                    .to_string(),
            );
        }
        let cd_end = cd_offset.checked_add(cd_size);
        if cd_end.is_none_or(|e| e > eocd as u64) {
            return bad(format!(
                "the central directory (offset {cd_offset}, {cd_size} bytes) runs past its end record at byte {eocd}: the file is truncated or corrupt"
            ));
        }
        let mut entries = Vec::new();
        let mut at = cd_offset as usize;
        for i in 0..count {
            let entry = central_entry(bytes, at, cd_end.unwrap_or(0) as usize).map_err(|why| {
                Error::data(
                    path,
                    format!("central directory entry {i} (byte {at}): {why}"),
                )
            })?;
            at = entry.1;
            entries.push(entry.0);
        }
        Ok(Archive {
            path: path.to_path_buf(),
            bytes,
            entries,
        })
    }

    /// The names of the archive's files, in directory order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.name.as_str())
    }

    /// The content of file `name`: borrowed when stored, inflated when deflated, checked
    /// against its declared size and CRC-32. A missing name is an error listing those there.
    pub fn read(&self, name: &str) -> Result<Cow<'a, [u8]>> {
        let Some(e) = self.entries.iter().find(|e| e.name == name) else {
            let names: Vec<&str> = self.names().collect();
            return Err(Error::data(
                &self.path,
                format!(
                    "has no entry {name:?}; it holds {}",
                    if names.is_empty() {
                        "nothing".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            ));
        };
        let bad = |why: String| Err(Error::data(&self.path, format!("entry {name:?}: {why}")));
        if e.flags & 1 != 0 {
            return bad("is encrypted".to_string());
        }
        let local = usize::try_from(e.local_offset).unwrap_or(usize::MAX);
        if u32_at(self.bytes, local) != Some(LOCAL_SIG) {
            return bad(format!(
                "no local file header at byte {} (the file is truncated or corrupt)",
                e.local_offset
            ));
        }
        let (Some(name_len), Some(extra_len)) = (
            u16_at(self.bytes, local + 26),
            u16_at(self.bytes, local + 28),
        ) else {
            return bad("truncated local file header".to_string());
        };
        let start = local + LOCAL_LEN + name_len as usize + extra_len as usize;
        let end = (start as u64).checked_add(e.compressed);
        let Some(raw) = end.and_then(|end| self.bytes.get(start..usize::try_from(end).ok()?))
        else {
            return bad(format!(
                "its {} bytes of data from byte {start} run past the end of the file ({} bytes): truncated",
                e.compressed,
                self.bytes.len()
            ));
        };
        let data: Cow<'a, [u8]> = match e.method {
            STORED if e.compressed != e.size => {
                return bad(format!(
                    "stored with {} bytes but declares {} uncompressed",
                    e.compressed, e.size
                ))
            }
            STORED => Cow::Borrowed(raw),
            DEFLATED => Cow::Owned(inflate(raw, e.size).map_err(|why| {
                Error::data(&self.path, format!("entry {name:?}: {why}"))
            })?),
            m => {
                return bad(format!(
                    "compression method {m} is not supported (np.savez stores, np.savez_compressed deflates)"
                ))
            }
        };
        let mut crc = flate2::Crc::new();
        crc.update(&data);
        if crc.sum() != e.crc {
            return bad(format!(
                "CRC-32 mismatch: the data gives {:08x}, the directory says {:08x} (corrupt)",
                crc.sum(),
                e.crc
            ));
        }
        Ok(data)
    }
}

/// The offset of the End Of Central Directory record: its signature, searched backwards over
/// the largest comment, at a place where the comment it declares ends the file.
fn find_eocd(bytes: &[u8]) -> Option<usize> {
    let last = bytes.len().checked_sub(EOCD_LEN)?;
    let first = last.saturating_sub(MAX_COMMENT);
    (first..=last).rev().find(|&at| {
        u32_at(bytes, at) == Some(EOCD_SIG)
            && u16_at(bytes, at + 20).is_some_and(|c| at + EOCD_LEN + c as usize == bytes.len())
    })
}

/// The central directory entry at `at` (its records end at `end`) and the offset of the next.
fn central_entry(
    bytes: &[u8],
    at: usize,
    end: usize,
) -> std::result::Result<(Entry, usize), String> {
    if at + CENTRAL_LEN > end || u32_at(bytes, at) != Some(CENTRAL_SIG) {
        return Err("not a central directory header (truncated or corrupt directory)".to_string());
    }
    let field16 = |o: usize| u16_at(bytes, at + o).unwrap_or(0);
    let field32 = |o: usize| u32_at(bytes, at + o).unwrap_or(0);
    let (name_len, extra_len, comment_len) = (
        field16(28) as usize,
        field16(30) as usize,
        field16(32) as usize,
    );
    let name_at = at + CENTRAL_LEN;
    let next = name_at + name_len + extra_len + comment_len;
    if next > end {
        return Err(format!(
            "its name, extra field and comment ({} bytes) run past the directory's end",
            name_len + extra_len + comment_len
        ));
    }
    let name = String::from_utf8_lossy(&bytes[name_at..name_at + name_len]).into_owned();
    let mut entry = Entry {
        name,
        flags: field16(8),
        method: field16(10),
        crc: field32(16),
        compressed: field32(20) as u64,
        size: field32(24) as u64,
        local_offset: field32(42) as u64,
    };
    // The Zip64 extra field holds, in this order, the 64-bit values of exactly the fields
    // whose 32-bit value is saturated.
    let extra = &bytes[name_at + name_len..name_at + name_len + extra_len];
    let mut saturated: Vec<&mut u64> = [
        &mut entry.size,
        &mut entry.compressed,
        &mut entry.local_offset,
    ]
    .into_iter()
    .filter(|v| **v == SATURATED as u64)
    .collect();
    if !saturated.is_empty() {
        let zip64 = zip64_extra(extra).ok_or_else(|| {
            format!(
                "{:?}: sizes saturated at 0xFFFFFFFF without a Zip64 extra field",
                entry.name
            )
        })?;
        for (k, v) in saturated.iter_mut().enumerate() {
            **v = u64_at(zip64, 8 * k)
                .ok_or_else(|| format!("{:?}: the Zip64 extra field is too short", entry.name))?;
        }
    }
    Ok((entry, next))
}

/// The data of the Zip64 field in an extra-field block (a sequence of id, length, data).
fn zip64_extra(mut extra: &[u8]) -> Option<&[u8]> {
    while extra.len() >= 4 {
        let (id, len) = (u16_at(extra, 0)?, u16_at(extra, 2)? as usize);
        let data = extra.get(4..4 + len)?;
        if id == ZIP64_EXTRA_ID {
            return Some(data);
        }
        extra = &extra[4 + len..];
    }
    None
}

/// Inflate a raw deflate stream to exactly `size` bytes (the memory checked first); a stream
/// that is corrupt, ends early or holds more is an error.
fn inflate(raw: &[u8], size: u64) -> std::result::Result<Vec<u8>, String> {
    let n = usize::try_from(size).map_err(|_| format!("declares {size} bytes"))?;
    let mut out =
        memory::try_vec::<u8>(n, || format!("{n} inflated bytes")).map_err(|e| e.to_string())?;
    let mut dec = DeflateDecoder::new(raw);
    dec.by_ref()
        .take(size)
        .read_to_end(&mut out)
        .map_err(|e| format!("cannot inflate its data: {e}"))?;
    if out.len() < n {
        return Err(format!(
            "the deflate stream ends after {} of its declared {n} bytes (truncated)",
            out.len()
        ));
    }
    let mut probe = [0u8; 1];
    if dec.read(&mut probe).unwrap_or(0) > 0 {
        return Err(format!(
            "the deflate stream holds more than its declared {n} bytes"
        ));
    }
    Ok(out)
}

//! The SVHN (MATLAB Level 5 `.mat`) and NumPy (`.npy`, `.npz`) loaders on files these tests
//! write themselves with small hand-written writers (the real SVHN is not on this machine, and
//! NumPy is not needed): good files in each form (plain and `miCOMPRESSED` `.mat`, little- and
//! big-endian; stored, deflated and Zip64 `.npz`; the three image layouts) with their values
//! and labels asserted, and corrupt ones (truncated, wrong magic, wrong dtype, shape/length
//! mismatches, labels out of range, CRC errors) with the message asserted to name the file and
//! the problem. The last test trains the `ssvae` binary on an `npz:` dataset.

mod cli_support;

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::{DeflateEncoder, ZlibEncoder};
use flate2::Compression;
use ssvae::data::{self, DatasetName, DatasetSpec, TrainTest};

// ---------------------------------------------------------------------------------------------
// helpers

/// A fresh scratch folder for one test.
fn scratch(name: &str) -> PathBuf {
    cli_support::temp_dir(name)
}

/// The error's message, which must exist.
fn err_msg<T: std::fmt::Debug>(r: ssvae::Result<T>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => {
            eprintln!("refused: {e}");
            e.to_string()
        }
    }
}

fn assert_contains(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "error message {msg:?} lacks {p:?}");
    }
}

fn write(path: &Path, bytes: &[u8]) -> PathBuf {
    std::fs::write(path, bytes).unwrap();
    path.to_path_buf()
}

// ---------------------------------------------------------------------------------------------
// a MATLAB Level 5 writer

/// A numeric variable: name, array class, column-major dims, storage type and its bytes
/// (little-endian; swapped per element for a big-endian file).
struct MatVar {
    name: &'static str,
    class: u8,
    dims: Vec<u32>,
    storage: u32,
    item: usize,
    data: Vec<u8>,
}

const MX_DOUBLE: u8 = 6;
const MX_UINT8: u8 = 9;
const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_DOUBLE: u32 = 9;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;

/// SVHN's `X`: uint8 32×32×3×n from the CHW images `chw` (n · 3072 bytes).
fn svhn_x(chw: &[u8]) -> MatVar {
    let n = chw.len() / 3072;
    let mut data = vec![0u8; chw.len()];
    for i in 0..n {
        for c in 0..3 {
            for r in 0..32 {
                for k in 0..32 {
                    data[r + 32 * k + 1024 * c + 3072 * i] = chw[i * 3072 + c * 1024 + r * 32 + k];
                }
            }
        }
    }
    MatVar {
        name: "X",
        class: MX_UINT8,
        dims: vec![32, 32, 3, n as u32],
        storage: MI_UINT8,
        item: 1,
        data,
    }
}

/// SVHN's `y`: double n×1.
fn svhn_y(labels: &[f64]) -> MatVar {
    MatVar {
        name: "y",
        class: MX_DOUBLE,
        dims: vec![labels.len() as u32, 1],
        storage: MI_DOUBLE,
        item: 8,
        data: labels.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

/// Words in the file's byte order.
struct Mat {
    big_endian: bool,
}

impl Mat {
    fn u32(&self, v: u32) -> [u8; 4] {
        if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    fn tag(&self, out: &mut Vec<u8>, ty: u32, n: usize) {
        out.extend(self.u32(ty));
        out.extend(self.u32(n as u32));
    }

    /// One subelement, padded to 8 bytes (the small form for ≤ 4 bytes).
    fn sub(&self, out: &mut Vec<u8>, ty: u32, data: &[u8]) {
        if data.len() <= 4 && !data.is_empty() {
            out.extend(self.u32(((data.len() as u32) << 16) | ty));
            out.extend(data);
            out.extend(std::iter::repeat_n(0, 4 - data.len()));
            return;
        }
        self.tag(out, ty, data.len());
        out.extend(data);
        out.extend(std::iter::repeat_n(0, (8 - data.len() % 8) % 8));
    }

    /// The `miMATRIX` element of `v`.
    fn matrix(&self, v: &MatVar) -> Vec<u8> {
        let mut body = Vec::new();
        let flags: Vec<u8> = [self.u32(v.class as u32), self.u32(0)].concat();
        self.sub(&mut body, MI_UINT32, &flags);
        let dims: Vec<u8> = v.dims.iter().flat_map(|&d| self.u32(d)).collect();
        self.sub(&mut body, MI_INT32, &dims);
        self.sub(&mut body, MI_INT8, v.name.as_bytes());
        let mut data = v.data.clone();
        if self.big_endian {
            data.chunks_mut(v.item).for_each(<[u8]>::reverse);
        }
        self.sub(&mut body, v.storage, &data);
        let mut out = Vec::new();
        self.tag(&mut out, MI_MATRIX, body.len());
        out.extend(body);
        out
    }

    /// A whole file: the header, then each variable plain or as `miCOMPRESSED`.
    fn file(&self, vars: &[MatVar], compressed: bool) -> Vec<u8> {
        let mut out = format!(
            "MATLAB 5.0 MAT-file, Platform: test, Created by: {}",
            file!()
        )
        .into_bytes();
        out.resize(116, b' ');
        out.extend([0u8; 8]);
        let version: [u8; 2] = if self.big_endian {
            0x0100u16.to_be_bytes()
        } else {
            0x0100u16.to_le_bytes()
        };
        out.extend(version);
        out.extend(if self.big_endian { b"MI" } else { b"IM" });
        for v in vars {
            let m = self.matrix(v);
            if compressed {
                let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
                z.write_all(&m).unwrap();
                let z = z.finish().unwrap();
                self.tag(&mut out, MI_COMPRESSED, z.len());
                out.extend(z);
            } else {
                out.extend(m);
            }
        }
        out
    }
}

fn little() -> Mat {
    Mat { big_endian: false }
}

/// `n` CHW 32×32×3 images whose byte at (i, c, r, k) is a mix of all four, so that any
/// transposition shows.
fn svhn_images(n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n * 3072);
    for i in 0..n {
        for c in 0..3 {
            for r in 0..32 {
                for k in 0..32 {
                    v.push((i * 101 + c * 67 + r * 7 + k * 3) as u8);
                }
            }
        }
    }
    v
}

// ---------------------------------------------------------------------------------------------
// NumPy writers

/// `.npy` (version 1.0) bytes of an array.
fn npy_with(descr: &str, shape: &[usize], data: &[u8], fortran: bool) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape = if shape.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let order = if fortran { "True" } else { "False" };
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}");
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((h.len() as u16).to_le_bytes());
    out.extend(h.as_bytes());
    out.extend(data);
    out
}

fn npy(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    npy_with(descr, shape, data, false)
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn i64s(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// How the zip writer stores entries.
#[derive(Clone, Copy, PartialEq)]
enum Zip {
    /// `np.savez`: stored.
    Stored,
    /// `np.savez_compressed`: deflated.
    Deflated,
    /// Stored, with NumPy's Zip64 local headers, and 64-bit sizes and offsets in the central
    /// directory and a Zip64 end record (as a file over 4 GiB has).
    Zip64,
}

/// A zip archive of `(name, content)` entries.
fn zip(entries: &[(&str, &[u8])], how: Zip) -> Vec<u8> {
    let (mut out, mut central) = (Vec::new(), Vec::new());
    let u16le = |v: u16| v.to_le_bytes();
    let u32le = |v: u32| v.to_le_bytes();
    for (name, content) in entries {
        let data = match how {
            Zip::Deflated => {
                let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
                e.write_all(content).unwrap();
                e.finish().unwrap()
            }
            _ => content.to_vec(),
        };
        let mut crc = flate2::Crc::new();
        crc.update(content);
        let method: u16 = if how == Zip::Deflated { 8 } else { 0 };
        let offset = out.len() as u64;
        let zip64 = how == Zip::Zip64;
        let (csize, usize_) = (data.len() as u64, content.len() as u64);
        let sat = |v: u64| if zip64 { u32::MAX } else { v as u32 };
        // The local header: NumPy's carries a Zip64 extra field with both sizes.
        out.extend(u32le(0x0403_4b50));
        out.extend(u16le(45));
        out.extend(u16le(0));
        out.extend(u16le(method));
        out.extend(u16le(0));
        out.extend(u16le(0x21));
        out.extend(u32le(crc.sum()));
        out.extend(u32le(sat(csize)));
        out.extend(u32le(sat(usize_)));
        out.extend(u16le(name.len() as u16));
        out.extend(u16le(if zip64 { 20 } else { 0 }));
        out.extend(name.as_bytes());
        if zip64 {
            out.extend(u16le(1));
            out.extend(u16le(16));
            out.extend(usize_.to_le_bytes());
            out.extend(csize.to_le_bytes());
        }
        out.extend(&data);
        central.extend(u32le(0x0201_4b50));
        central.extend(u16le(45));
        central.extend(u16le(45));
        central.extend(u16le(0));
        central.extend(u16le(method));
        central.extend(u16le(0));
        central.extend(u16le(0x21));
        central.extend(u32le(crc.sum()));
        central.extend(u32le(sat(csize)));
        central.extend(u32le(sat(usize_)));
        central.extend(u16le(name.len() as u16));
        central.extend(u16le(if zip64 { 28 } else { 0 }));
        central.extend([0u8; 6]); // comment length, disk, internal attributes
        central.extend(u32le(0));
        central.extend(u32le(sat(offset)));
        central.extend(name.as_bytes());
        if zip64 {
            central.extend(u16le(1));
            central.extend(u16le(24));
            central.extend(usize_.to_le_bytes());
            central.extend(csize.to_le_bytes());
            central.extend(offset.to_le_bytes());
        }
    }
    let (cd_offset, cd_size) = (out.len() as u64, central.len() as u64);
    out.extend(&central);
    let n = entries.len() as u64;
    if how == Zip::Zip64 {
        let record = out.len() as u64;
        out.extend(u32le(0x0606_4b50));
        out.extend(44u64.to_le_bytes());
        out.extend(u16le(45));
        out.extend(u16le(45));
        out.extend(u32le(0));
        out.extend(u32le(0));
        out.extend(n.to_le_bytes());
        out.extend(n.to_le_bytes());
        out.extend(cd_size.to_le_bytes());
        out.extend(cd_offset.to_le_bytes());
        out.extend(u32le(0x0706_4b50));
        out.extend(u32le(0));
        out.extend(record.to_le_bytes());
        out.extend(u32le(1));
    }
    let z64 = how == Zip::Zip64;
    out.extend(u32le(0x0605_4b50));
    out.extend(u16le(0));
    out.extend(u16le(0));
    let count = if z64 { u16::MAX } else { n as u16 };
    out.extend(u16le(count));
    out.extend(u16le(count));
    out.extend(u32le(if z64 { u32::MAX } else { cd_size as u32 }));
    out.extend(u32le(if z64 { u32::MAX } else { cd_offset as u32 }));
    out.extend(u16le(0));
    out
}

/// The four arrays of a small grey dataset: 5 training and 3 test images of 2×3 uint8 pixels
/// (pixel j of image i = 10·i + j) with int64 labels 0, 1, 2, 0, 1 and 2, 2, 0.
fn grey_arrays() -> Vec<(&'static str, Vec<u8>)> {
    let img = |n: usize, base: usize| -> Vec<u8> {
        (0..n * 6)
            .map(|k| (10 * (base + k / 6) + k % 6) as u8)
            .collect()
    };
    vec![
        ("x_train.npy", npy("|u1", &[5, 2, 3], &img(5, 0))),
        ("y_train.npy", npy("<i8", &[5], &i64s(&[0, 1, 2, 0, 1]))),
        ("x_test.npy", npy("|u1", &[3, 2, 3], &img(3, 5))),
        ("y_test.npy", npy("<i8", &[3], &i64s(&[2, 2, 0]))),
    ]
}

fn npz_of(arrays: &[(&str, Vec<u8>)], how: Zip) -> Vec<u8> {
    let entries: Vec<(&str, &[u8])> = arrays.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    zip(&entries, how)
}

fn load_npz(path: &Path) -> ssvae::Result<TrainTest> {
    DatasetSpec::Npz(path.to_path_buf()).load(Path::new("unused"))
}

fn assert_grey(tt: &TrainTest, name: &str) {
    let (tr, te) = (&tt.train, &tt.test);
    assert_eq!((tr.n, tr.channels, tr.height, tr.width), (5, 1, 2, 3));
    assert_eq!((te.n, te.classes, tr.classes), (3, 3, 3));
    assert_eq!(tr.y, [0, 1, 2, 0, 1]);
    assert_eq!(te.y, [2, 2, 0]);
    assert_eq!(tr.image(1).unwrap()[4], 14.0 / 255.0);
    assert_eq!(te.image(2).unwrap()[5], 75.0 / 255.0);
    assert_eq!(tr.name, format!("{name}/train"));
}

// ---------------------------------------------------------------------------------------------
// SVHN

#[test]
fn svhn_mat_files_load_plain_compressed_and_big_endian() {
    let images = svhn_images(3);
    let labels = [10.0, 1.0, 5.0];
    for (mat, compressed, tag) in [
        (little(), false, "plain"),
        (little(), true, "compressed"),
        (Mat { big_endian: true }, false, "big-endian"),
    ] {
        let dir = scratch(&format!("svhn-{tag}"));
        let svhn = dir.join("svhn");
        std::fs::create_dir_all(&svhn).unwrap();
        let bytes = mat.file(&[svhn_x(&images), svhn_y(&labels)], compressed);
        write(&svhn.join("train_32x32.mat"), &bytes);
        // The test set with MATLAB's narrowed storage: a double y stored as miUINT8.
        let y_narrow = MatVar {
            storage: MI_UINT8,
            item: 1,
            data: vec![3, 10],
            ..svhn_y(&[3.0, 10.0])
        };
        let test = mat.file(&[y_narrow, svhn_x(&images[3072..])], compressed);
        write(&svhn.join("test_32x32.mat"), &test);
        let tt = data::load(DatasetName::Svhn, &dir).unwrap();
        let tr = &tt.train;
        assert_eq!(
            (tr.n, tr.channels, tr.height, tr.width, tr.classes),
            (3, 3, 32, 32, 10),
            "{tag}"
        );
        assert_eq!(tr.y, [0, 1, 5], "{tag}: label 10 is the digit 0");
        assert_eq!(tt.test.y, [3, 0], "{tag}");
        for (i, c, r, k) in [(0, 0, 0, 1), (1, 2, 5, 31), (2, 1, 31, 0)] {
            let want = ((i * 101 + c * 67 + r * 7 + k * 3) as u8) as f32 / 255.0;
            assert_eq!(tr.image(i).unwrap()[c * 1024 + r * 32 + k], want, "{tag}");
        }
        assert_eq!(tt.test.image(1).unwrap(), tr.image(2).unwrap(), "{tag}");
        assert_eq!(tr.name, "svhn/train");
    }
}

#[test]
fn corrupt_svhn_files_are_refused_with_the_file_and_problem_named() {
    let dir = scratch("svhn-bad");
    let images = svhn_images(3);
    let good = || vec![svhn_x(&images), svhn_y(&[1.0, 2.0, 3.0])];
    let load = |name: &str, bytes: &[u8]| {
        let p = write(&dir.join(name), bytes);
        let msg = err_msg(data::svhn::read_mat(&p, "svhn/train"));
        assert_contains(&msg, &[&p.display().to_string()]);
        msg
    };
    let plain = little().file(&good(), false);
    let msg = load("truncated.mat", &plain[..plain.len() - 500]);
    assert_contains(&msg, &["declares", "truncated"]);
    let msg = load("header.mat", &plain[..100]);
    assert_contains(&msg, &["truncated MAT-file: 100 bytes"]);
    let mut magic = plain.clone();
    magic[..6].copy_from_slice(b"HELLO!");
    assert_contains(
        &load("magic.mat", &magic),
        &["not a MATLAB Level 5 MAT-file"],
    );
    let mut hdf5 = plain.clone();
    hdf5[124..126].copy_from_slice(&0x0200u16.to_le_bytes());
    assert_contains(&load("v73.mat", &hdf5), &["v7.3", "HDF5"]);
    let compressed = little().file(&good(), true);
    let mut zlib = compressed.clone();
    for b in &mut zlib[200..260] {
        *b ^= 0x5a;
    }
    assert_contains(
        &load("zlib.mat", &zlib),
        &["compressed variable at byte 128", "zlib"],
    );

    let double_x = MatVar {
        class: MX_DOUBLE,
        storage: MI_DOUBLE,
        item: 8,
        data: images
            .iter()
            .flat_map(|&b| (b as f64).to_le_bytes())
            .collect(),
        ..svhn_x(&images)
    };
    let msg = load(
        "dtype.mat",
        &little().file(&[double_x, svhn_y(&[1.0; 3])], false),
    );
    assert_contains(&msg, &["X is a double array, expected uint8"]);
    let grey = MatVar {
        dims: vec![32, 32, 1, 9],
        ..svhn_x(&images)
    };
    let msg = load(
        "dims.mat",
        &little().file(&[grey, svhn_y(&[1.0; 9])], false),
    );
    assert_contains(&msg, &["X has dimensions 32x32x1x9, expected 32x32x3xN"]);
    let short_data = MatVar {
        dims: vec![32, 32, 3, 4],
        ..svhn_x(&images)
    };
    let msg = load(
        "count.mat",
        &little().file(&[short_data, svhn_y(&[1.0; 4])], false),
    );
    assert_contains(&msg, &["\"X\"", "dimensions 32x32x3x4 hold 12288 values"]);
    let msg = load(
        "ylen.mat",
        &little().file(&[svhn_x(&images), svhn_y(&[1.0, 2.0])], false),
    );
    assert_contains(&msg, &["y has dimensions 2x1, expected 3x1"]);
    for (bad, shown) in [(0.0, "label 0 "), (11.0, "label 11 "), (2.5, "label 2.5 ")] {
        let msg = load(
            "label.mat",
            &little().file(&[svhn_x(&images), svhn_y(&[1.0, bad, 3.0])], false),
        );
        assert_contains(&msg, &[shown, "at index 1 of y is out of range", "1..10"]);
    }
    let msg = load("noy.mat", &little().file(&[svhn_x(&images)], false));
    assert_contains(&msg, &["no variable \"y\"", "found X"]);

    // A folder without the files names both paths looked for.
    let msg = err_msg(data::load(DatasetName::Svhn, &dir));
    assert_contains(
        &msg,
        &["svhn/train_32x32.mat", "train_32x32.mat.gz", "not found"],
    );
}

// ---------------------------------------------------------------------------------------------
// NumPy

#[test]
fn npz_archives_load_stored_deflated_and_zip64() {
    let dir = scratch("npz-good");
    for (how, tag) in [
        (Zip::Stored, "savez"),
        (Zip::Deflated, "savez_compressed"),
        (Zip::Zip64, "zip64"),
    ] {
        let p = write(
            &dir.join(format!("{tag}.npz")),
            &npz_of(&grey_arrays(), how),
        );
        assert_grey(&load_npz(&p).unwrap(), tag);
    }
}

#[test]
fn image_layouts_and_dtypes_of_npy_folders() {
    // Two 3-channel 2×2 images in each layout, value (i, c, r, k) = (12i + 4c + 2r + k)/32.
    let value = |i: usize, c: usize, r: usize, k: usize| (i * 12 + c * 4 + r * 2 + k) as f32 / 32.0;
    let (n, h, w) = (2, 2, 2);
    let mut nchw = Vec::new();
    let mut nhwc = Vec::new();
    for i in 0..n {
        for c in 0..3 {
            for r in 0..h {
                for k in 0..w {
                    nchw.push(value(i, c, r, k));
                }
            }
        }
        for r in 0..h {
            for k in 0..w {
                for c in 0..3 {
                    nhwc.push(value(i, c, r, k));
                }
            }
        }
    }
    let u8s = |v: &[f32]| -> Vec<u8> { v.iter().map(|x| (x * 32.0) as u8).collect() };
    for (tag, descr, shape, bytes, bytes_0_255) in [
        ("nchw-f32", "<f4", [n, 3, h, w], f32s(&nchw), false),
        ("nhwc-f32", "<f4", [n, h, w, 3], f32s(&nhwc), false),
        ("nhwc-u8", "|u1", [n, h, w, 3], u8s(&nhwc), true),
    ] {
        let dir = scratch(&format!("npy-{tag}"));
        write(&dir.join("x_train.npy"), &npy(descr, &shape, &bytes));
        write(&dir.join("x_test.npy"), &npy(descr, &shape, &bytes));
        // Labels: big-endian int32 of shape (N, 1), and float64 whole numbers.
        let be: Vec<u8> = [1i32, 0].iter().flat_map(|v| v.to_be_bytes()).collect();
        write(&dir.join("y_train.npy"), &npy(">i4", &[2, 1], &be));
        let f: Vec<u8> = [0.0f64, 3.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        write(&dir.join("y_test.npy"), &npy("<f8", &[2], &f));
        let tt = DatasetSpec::Npy(dir.clone())
            .load(Path::new("unused"))
            .unwrap();
        let tr = &tt.train;
        assert_eq!(
            (tr.channels, tr.height, tr.width, tr.classes),
            (3, 2, 2, 4),
            "{tag}"
        );
        assert_eq!(
            (tr.y.clone(), tt.test.y.clone()),
            (vec![1, 0], vec![0, 3]),
            "{tag}"
        );
        for (i, c, r, k) in [(0, 0, 0, 1), (1, 2, 1, 0), (1, 1, 0, 1)] {
            let got = tr.image(i).unwrap()[c * 4 + r * 2 + k];
            let want = match bytes_0_255 {
                true => (value(i, c, r, k) * 32.0) / 255.0,
                false => value(i, c, r, k),
            };
            assert!(
                (got - want).abs() < 1e-6,
                "{tag} ({i},{c},{r},{k}): {got} vs {want}"
            );
        }
    }
    // N×H×W grey images, also gzipped.
    let dir = scratch("npy-grey");
    for (name, bytes) in grey_arrays() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(&bytes).unwrap();
        write(&dir.join(format!("{name}.gz")), &gz.finish().unwrap());
    }
    let tt = DatasetSpec::Npy(dir.clone())
        .load(Path::new("unused"))
        .unwrap();
    assert_grey(&tt, &dir.file_name().unwrap().to_string_lossy());
}

#[test]
fn corrupt_numpy_files_are_refused_with_the_file_and_problem_named() {
    let dir = scratch("npz-bad");
    // `arrays` with `entry` replaced, as an .npz (stored) whose message must name the file.
    let with = |tag: &str, entry: &str, bytes: Vec<u8>| {
        let mut arrays = grey_arrays();
        for a in arrays.iter_mut().filter(|a| a.0 == entry) {
            a.1 = bytes.clone();
        }
        let p = write(
            &dir.join(format!("{tag}.npz")),
            &npz_of(&arrays, Zip::Stored),
        );
        let msg = err_msg(load_npz(&p));
        assert_contains(&msg, &[&p.display().to_string()]);
        msg
    };
    let good = npz_of(&grey_arrays(), Zip::Stored);
    let p = write(&dir.join("truncated.npz"), &good[..good.len() / 2]);
    assert_contains(
        &err_msg(load_npz(&p)),
        &[&p.display().to_string(), "not a zip archive", "truncated"],
    );
    let p = write(&dir.join("single.npz"), &grey_arrays()[0].1);
    assert_contains(&err_msg(load_npz(&p)), &["single .npy array", "npy:DIR"]);
    // Byte 180 is a pixel of x_train.npy (30 + 11 bytes of local header, 128 of .npy header).
    let mut crc = good.clone();
    crc[180] ^= 1;
    let p = write(&dir.join("crc.npz"), &crc);
    assert_contains(&err_msg(load_npz(&p)), &["CRC-32 mismatch", "x_train.npy"]);
    let mut arrays = grey_arrays();
    arrays.pop();
    let p = write(&dir.join("missing.npz"), &npz_of(&arrays, Zip::Deflated));
    assert_contains(
        &err_msg(load_npz(&p)),
        &[
            "no entry \"y_test.npy\"",
            "x_train.npy, y_train.npy, x_test.npy",
        ],
    );
    let mut deflated = npz_of(&grey_arrays(), Zip::Deflated);
    for b in &mut deflated[45..55] {
        *b ^= 0xa5;
    }
    let p = write(&dir.join("deflate.npz"), &deflated);
    let msg = err_msg(load_npz(&p));
    assert_contains(&msg, &[&p.display().to_string(), "entry \"x_train.npy\""]);

    let x = grey_arrays()[0].1.clone();
    let mut magic = x.clone();
    magic[1] = b'X';
    assert_contains(
        &with("magic", "x_train.npy", magic),
        &["x_train.npy: not a .npy array", "93 58 55 4d 50 59"],
    );
    let msg = with("trunc", "x_train.npy", x[..x.len() - 4].to_vec());
    assert_contains(
        &msg,
        &["x_train.npy: truncated data: shape (5, 2, 3) of uint8 needs 30 data bytes, the file holds 26"],
    );
    let msg = with("trailing", "x_train.npy", [x.clone(), vec![0; 3]].concat());
    assert_contains(&msg, &["trailing bytes", "holds 33"]);
    let msg = with("header", "x_train.npy", x[..40].to_vec());
    assert_contains(&msg, &["truncated .npy header"]);
    let msg = with("int16", "x_train.npy", npy("<i2", &[5, 2, 3], &[0; 60]));
    assert_contains(
        &msg,
        &[
            "images of dtype int16 are not supported",
            "uint8",
            "float32",
        ],
    );
    let msg = with("unicode", "x_train.npy", npy("<U5", &[5], &[0; 100]));
    assert_contains(&msg, &["dtype \"<U5\" is not supported"]);
    let msg = with(
        "fortran",
        "x_train.npy",
        npy_with("|u1", &[5, 2, 3], &[0; 30], true),
    );
    assert_contains(&msg, &["Fortran order"]);
    let msg = with("layout", "x_train.npy", npy("|u1", &[5, 2, 2, 2], &[0; 40]));
    assert_contains(&msg, &["shape (5, 2, 2, 2) fit none of the layouts"]);
    let msg = with(
        "float",
        "x_train.npy",
        npy("<f4", &[1, 1, 2], &f32s(&[0.5, 1.5])),
    );
    assert_contains(
        &msg,
        &["float32 pixel 1.5 at flat index 1 is outside [0, 1]"],
    );
    let msg = with(
        "count",
        "y_train.npy",
        npy("<i8", &[4], &i64s(&[0, 1, 2, 0])),
    );
    assert_contains(
        &msg,
        &["x_train.npy: 5 images but", "y_train.npy holds 4 labels"],
    );
    for (label, shown) in [(-1i64, "label -1 "), (256, "label 256 ")] {
        let msg = with(
            "label",
            "y_test.npy",
            npy("<i8", &[3], &i64s(&[0, label, 1])),
        );
        assert_contains(&msg, &["y_test.npy: ", shown, "at index 1 is out of range"]);
    }
    let f: Vec<u8> = [0.0f64, 0.5, 1.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let msg = with("fraction", "y_test.npy", npy("<f8", &[3], &f));
    assert_contains(&msg, &["label 0.5 at index 1 is out of range"]);
    let msg = with("ylayout", "y_test.npy", npy("<i8", &[3, 2], &[0; 48]));
    assert_contains(&msg, &["labels of shape (3, 2), expected (N,) or (N, 1)"]);
    let msg = with("shape", "x_test.npy", npy("|u1", &[3, 3, 2], &[0; 18]));
    assert_contains(
        &msg,
        &[
            "x_test.npy: images of (channels, height, width) (1, 3, 2)",
            "are (1, 2, 3)",
        ],
    );
}

#[test]
fn dataset_specs_parse_print_and_name_runs() {
    let spec: DatasetSpec = "npz:data/mnist.npz".parse().unwrap();
    assert_eq!(spec, DatasetSpec::Npz("data/mnist.npz".into()));
    assert_eq!(spec.to_string(), "npz:data/mnist.npz");
    assert_eq!(spec.short_name(), "npz-mnist");
    let spec: DatasetSpec = "npy:/tmp/arrays".parse().unwrap();
    assert_eq!(
        (spec.to_string(), spec.short_name()),
        ("npy:/tmp/arrays".into(), "npy-arrays".into())
    );
    assert_eq!(
        "svhn".parse::<DatasetSpec>().unwrap(),
        DatasetSpec::Named(DatasetName::Svhn)
    );
    assert_contains(&err_msg("npz:".parse::<DatasetSpec>()), &["names no path"]);
    assert_contains(
        &err_msg("usps".parse::<DatasetSpec>()),
        &["svhn", "npz:FILE"],
    );
    let missing = DatasetSpec::Npz("/no/such/file.npz".into());
    assert_contains(&err_msg(missing.absolute()), &["/no/such/file.npz"]);
}

/// `ssvae train --dataset npz:FILE` trains on the arrays, records the absolute path, and
/// `eval` reloads them from another working directory.
#[test]
fn the_cli_trains_and_evaluates_on_an_npz_dataset() {
    let dir = scratch("npz-cli");
    // 60 + 20 8×8 grey images of 4 classes: class c is a bright c-th quarter.
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..80 {
        let c = i % 4;
        y.push(c as i64);
        x.extend((0..64).map(|p| {
            if (p / 16) == c {
                200 + (i % 50) as u8
            } else {
                (i % 7) as u8
            }
        }));
    }
    let arrays = vec![
        ("x_train.npy", npy("|u1", &[60, 8, 8], &x[..60 * 64])),
        ("y_train.npy", npy("<i8", &[60], &i64s(&y[..60]))),
        ("x_test.npy", npy("|u1", &[20, 8, 8], &x[60 * 64..])),
        ("y_test.npy", npy("<i8", &[20], &i64s(&y[60..]))),
    ];
    write(&dir.join("quarters.npz"), &npz_of(&arrays, Zip::Deflated));
    let run = dir.join("run");
    let out = cli_support::ok(&[
        "train",
        "--dataset",
        &format!("npz:{}", dir.join("quarters.npz").display()),
        "--model",
        "m2",
        "--labels",
        "8",
        "--hidden",
        "16",
        "--z-dim",
        "2",
        "--batch-size",
        "20",
        "--labelled-batch",
        "8",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_contains(&out, &["60 train, 20 test", "8 labels"]);
    let config = std::fs::read_to_string(run.join("epoch-0001/config.json")).unwrap();
    let abs = std::fs::canonicalize(dir.join("quarters.npz")).unwrap();
    assert_contains(
        &config,
        &[&format!("\"dataset\": \"npz:{}\"", abs.display())],
    );
    let ev = std::process::Command::new(env!("CARGO_BIN_EXE_ssvae"))
        .args(["eval", run.to_str().unwrap(), "--device", "cpu"])
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&ev.stdout);
    assert!(
        ev.status.success(),
        "{}",
        String::from_utf8_lossy(&ev.stderr)
    );
    assert_contains(&stdout, &["test error"]);
}

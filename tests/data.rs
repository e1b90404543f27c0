//! Integration tests of `ssvae::data`: the real MNIST, Fashion-MNIST and digits files from the
//! shared dataset folder (`../shared/datasets` beside the checkout; these tests FAIL with a clear
//! message when it is missing), every refusal of the readers on crafted bad files written to a
//! temporary folder, CIFAR-10 / IDX / digits round trips on crafted files, and the
//! semi-supervised split and minibatching.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use flate2::write::GzEncoder;
use flate2::Compression;
use ssvae::data::{self, cifar, digits, idx, Batcher, Dataset, DatasetName};
use ssvae::rng::Rng;

// ---------------------------------------------------------------------------------------------
// helpers

/// The shared dataset folder, or a failing test with instructions.
fn shared_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets");
    if !dir.is_dir() {
        panic!(
            "the real-data tests need the shared datasets at {} (a folder `shared/datasets` next to \
             the checkout, holding mnist/, fashion-mnist/ and digits/; see datasets/README.md). \
             It is missing, so these tests fail rather than pass silently.",
            dir.display()
        );
    }
    dir
}

/// A fresh temporary folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let k = COUNTER.fetch_add(1, Ordering::SeqCst);
        let p =
            std::env::temp_dir().join(format!("ssvae-data-test-{}-{tag}-{k}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// IDX bytes: magic, big-endian dims, data.
fn idx_bytes(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write test file");
}

/// `n` 28×28 images whose pixel j of image i is (i·7 + j) mod 256.
fn images28(n: usize) -> Vec<u8> {
    (0..n * 784)
        .map(|k| ((k / 784) * 7 + k % 784) as u8)
        .collect()
}

/// A complete MNIST-style folder with `n_train` / `n_test` records, labels i mod 10.
fn write_mnist_dir(dir: &Path, n_train: usize, n_test: usize, gz: bool) {
    let files = [
        ("train-images-idx3-ubyte", 0x803, n_train, true),
        ("train-labels-idx1-ubyte", 0x801, n_train, false),
        ("t10k-images-idx3-ubyte", 0x803, n_test, true),
        ("t10k-labels-idx1-ubyte", 0x801, n_test, false),
    ];
    for (name, magic, n, is_img) in files {
        let bytes = if is_img {
            idx_bytes(magic, &[n as u32, 28, 28], &images28(n))
        } else {
            let l: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
            idx_bytes(magic, &[n as u32], &l)
        };
        if gz {
            write(&dir.join(format!("{name}.gz")), &gzip(&bytes));
        } else {
            write(&dir.join(name), &bytes);
        }
    }
}

/// The error's message, which must exist.
fn err_msg<T: std::fmt::Debug>(r: ssvae::Result<T>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => {
            // Visible with `--nocapture`: the messages users will read.
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

fn pixel_range(ds: &Dataset) -> (f32, f32) {
    ds.x.iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

// ---------------------------------------------------------------------------------------------
// the real datasets

const MNIST_TRAIN: [usize; 10] = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949];
const MNIST_TEST: [usize; 10] = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];

#[test]
fn real_mnist() {
    let dir = shared_dir();
    let t0 = std::time::Instant::now();
    let tt = data::load(DatasetName::Mnist, &dir).expect("load MNIST");
    eprintln!("MNIST loaded in {:.2?}", t0.elapsed());
    for (ds, n, counts) in [
        (&tt.train, 60_000, MNIST_TRAIN),
        (&tt.test, 10_000, MNIST_TEST),
    ] {
        assert_eq!(ds.n, n);
        assert_eq!(
            (ds.channels, ds.height, ds.width, ds.classes),
            (1, 28, 28, 10)
        );
        assert_eq!(ds.dim(), 784);
        assert_eq!(ds.x.len(), n * 784);
        assert_eq!(ds.y.len(), n);
        assert_eq!(ds.class_counts(), counts.to_vec());
        assert_eq!(pixel_range(ds), (0.0, 1.0));
        ds.validate(&dir).unwrap();
    }
    assert_eq!(tt.train.name, "mnist/train");
    // The first training image is a 5; its pixels are multiples of 1/255.
    assert_eq!(tt.train.y[..5], [5, 0, 4, 1, 9]);
    let img = tt.train.image(0).unwrap();
    assert!(img
        .iter()
        .all(|&v| ((v * 255.0).round() - v * 255.0).abs() < 1e-4));
    assert!(tt.train.image(60_000).is_none());

    // A split of the real labels: 100 labels = 10 per class, 10,000 validation.
    let s = data::split(&tt.train.y, 10, 100, 10_000, 1).unwrap();
    let mut per = [0usize; 10];
    for &i in &s.labelled {
        per[tt.train.y[i] as usize] += 1;
    }
    assert_eq!(per, [10; 10]);
    assert_eq!(s.validation.len(), 10_000);
    assert_eq!(s.unlabelled.len(), 50_000);
}

#[test]
fn real_fashion_mnist() {
    let dir = shared_dir();
    let tt = data::load(DatasetName::FashionMnist, &dir).expect("load Fashion-MNIST");
    assert_eq!((tt.train.n, tt.test.n), (60_000, 10_000));
    assert_eq!(tt.train.class_counts(), vec![6000; 10]);
    assert_eq!(tt.test.class_counts(), vec![1000; 10]);
    assert_eq!(tt.train.dim(), 784);
    assert_eq!(pixel_range(&tt.train), (0.0, 1.0));
    assert_eq!(pixel_range(&tt.test), (0.0, 1.0));
    assert_eq!(tt.test.name, "fashion-mnist/test");
}

#[test]
fn real_digits() {
    let dir = shared_dir();
    let tt = data::load(DatasetName::Digits, &dir).expect("load digits");
    assert_eq!((tt.train.n, tt.test.n), (1397, 400));
    assert_eq!(tt.train.n + tt.test.n, 1797);
    for ds in [&tt.train, &tt.test] {
        assert_eq!(
            (ds.channels, ds.height, ds.width, ds.classes),
            (1, 8, 8, 10)
        );
        assert_eq!(ds.x.len(), ds.n * 64);
        assert_eq!(pixel_range(ds), (0.0, 1.0));
        ds.validate(&dir).unwrap();
    }
    let total: Vec<usize> = tt
        .train
        .class_counts()
        .iter()
        .zip(tt.test.class_counts())
        .map(|(a, b)| a + b)
        .collect();
    assert_eq!(total, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
    // The last 400 rows, in file order (counted with awk on the CSV).
    assert_eq!(
        tt.test.class_counts(),
        [39, 39, 40, 39, 43, 41, 39, 40, 39, 41]
    );
    // Row 0 of the file: 0,0,5,13,9,1,0,0,… label 0; pixels scaled by 1/16.
    assert_eq!(tt.train.y[0], 0);
    assert_eq!(
        &tt.train.x[..8],
        &[
            0.0,
            0.0,
            5.0 / 16.0,
            13.0 / 16.0,
            9.0 / 16.0,
            1.0 / 16.0,
            0.0,
            0.0
        ]
    );
    // The last row of the file ends with label 8.
    assert_eq!(*tt.test.y.last().unwrap(), 8);
}

// ---------------------------------------------------------------------------------------------
// names, directories, missing files

#[test]
fn dataset_names_parse() {
    for (s, d) in [
        ("mnist", DatasetName::Mnist),
        ("fashion-mnist", DatasetName::FashionMnist),
        ("cifar10", DatasetName::Cifar10),
        ("digits", DatasetName::Digits),
        ("svhn", DatasetName::Svhn),
        ("MNIST", DatasetName::Mnist),
    ] {
        assert_eq!(s.parse::<DatasetName>().unwrap(), d);
    }
    for d in DatasetName::ALL {
        assert_eq!(d.to_string().parse::<DatasetName>().unwrap(), d);
    }
    let msg = err_msg("usps".parse::<DatasetName>());
    assert_contains(
        &msg,
        &["usps", "mnist, fashion-mnist, cifar10, digits, svhn"],
    );
}

#[test]
fn default_data_dir_is_a_path() {
    // Only the documented fallbacks can come out when the variable is unset or empty; with it
    // set, its value wins. (The variable is not modified here: tests run in parallel.)
    let d = data::default_data_dir();
    match std::env::var_os("SSVAE_DATA_DIR") {
        Some(v) if !v.is_empty() => assert_eq!(d, PathBuf::from(v)),
        _ => assert!(
            d == Path::new("../shared/datasets") || d == Path::new("datasets"),
            "{}",
            d.display()
        ),
    }
}

#[test]
fn missing_files_name_the_paths_looked_for() {
    let t = TempDir::new("missing");
    let msg = err_msg(data::load(DatasetName::Mnist, t.path()));
    assert_contains(
        &msg,
        &[
            "mnist/train-images-idx3-ubyte",
            "train-images-idx3-ubyte.gz",
            "not found",
        ],
    );
    let msg = err_msg(data::load(DatasetName::Digits, t.path()));
    assert_contains(&msg, &["digits/digits.csv", "digits.csv.gz"]);
    let msg = err_msg(data::load(DatasetName::Cifar10, t.path()));
    assert_contains(&msg, &["cifar10/data_batch_1.bin", "data_batch_1.bin.gz"]);

    // Only the test labels missing: that file is named.
    let dir = t.join("mnist");
    std::fs::create_dir_all(&dir).unwrap();
    write_mnist_dir(&dir, 3, 2, false);
    std::fs::remove_file(dir.join("t10k-labels-idx1-ubyte")).unwrap();
    let msg = err_msg(data::load(DatasetName::Mnist, t.path()));
    assert_contains(&msg, &["t10k-labels-idx1-ubyte", "not found"]);
}

// ---------------------------------------------------------------------------------------------
// IDX

#[test]
fn idx_round_trip_plain_and_gz() {
    for gz in [false, true] {
        let t = TempDir::new("idx-rt");
        let dir = t.join("mnist");
        std::fs::create_dir_all(&dir).unwrap();
        write_mnist_dir(&dir, 12, 5, gz);
        let tt = data::load(DatasetName::Mnist, t.path()).unwrap();
        assert_eq!((tt.train.n, tt.test.n), (12, 5));
        assert_eq!(
            tt.train.y,
            (0..12).map(|i| (i % 10) as u8).collect::<Vec<_>>()
        );
        let raw = images28(12);
        for (k, (&v, &b)) in tt.train.x.iter().zip(&raw).enumerate() {
            assert_eq!(v, b as f32 / 255.0, "pixel {k}");
        }
        // 255 maps to exactly 1.
        assert!(tt.train.x.contains(&1.0));
    }
}

#[test]
fn gzip_is_detected_by_magic_not_extension() {
    let t = TempDir::new("gz-magic");
    let labels = idx_bytes(0x801, &[4], &[3, 1, 4, 1]);
    // Gzipped content under a plain name, plain content under a .gz name.
    let a = t.join("labels-a");
    write(&a, &gzip(&labels));
    let b = t.join("labels-b.gz");
    write(&b, &labels);
    assert_eq!(idx::read_labels(&a, 10).unwrap(), [3, 1, 4, 1]);
    assert_eq!(idx::read_labels(&b, 10).unwrap(), [3, 1, 4, 1]);
    assert_eq!(data::read_maybe_gz(&a).unwrap(), labels);
}

#[test]
fn idx_generic_reader() {
    let t = TempDir::new("idx-generic");
    let p = t.join("cube-idx4-ubyte");
    let data: Vec<u8> = (0..24).collect();
    write(&p, &idx_bytes(0x0000_0804, &[2, 3, 2, 2], &data));
    let f = idx::read(&p).unwrap();
    assert_eq!(f.magic, 0x804);
    assert_eq!(f.dims, [2, 3, 2, 2]);
    assert_eq!(f.data(), &data[..]);
    assert_eq!(f.header_len(), 20);
}

#[test]
fn idx_refuses_wrong_magic() {
    let t = TempDir::new("idx-magic");
    let p = t.join("train-images-idx3-ubyte");
    let mut bytes = idx_bytes(0x803, &[1, 28, 28], &images28(1));
    bytes[..4].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    write(&p, &bytes);
    let msg = err_msg(idx::read_images(&p));
    assert_contains(&msg, &["train-images-idx3-ubyte", "bad magic 0x12345678"]);

    // A non-ubyte data type (0x0D = float).
    write(&p, &idx_bytes(0x0D03, &[1, 1, 1], &[0, 0, 0, 0]));
    let msg = err_msg(idx::read_images(&p));
    assert_contains(&msg, &["train-images-idx3-ubyte", "data type 0x0d"]);

    // A label file where images are expected, and the other way round.
    let l = t.join("train-labels-idx1-ubyte");
    write(&l, &idx_bytes(0x801, &[2], &[0, 1]));
    let msg = err_msg(idx::read_images(&l));
    assert_contains(
        &msg,
        &[
            "train-labels-idx1-ubyte",
            "not an IDX image file",
            "0x00000801",
        ],
    );
    write(&p, &idx_bytes(0x803, &[1, 28, 28], &images28(1)));
    let msg = err_msg(idx::read_labels(&p, 10));
    assert_contains(
        &msg,
        &[
            "train-images-idx3-ubyte",
            "not an IDX label file",
            "0x00000803",
        ],
    );

    // Too short for a magic at all.
    write(&p, &[0, 0]);
    let msg = err_msg(idx::read(&p));
    assert_contains(&msg, &["train-images-idx3-ubyte", "too short"]);
}

#[test]
fn idx_refuses_truncated_file() {
    let t = TempDir::new("idx-trunc");
    let p = t.join("t10k-images-idx3-ubyte");
    let mut bytes = idx_bytes(0x803, &[3, 28, 28], &images28(3));
    bytes.truncate(16 + 3 * 784 - 100);
    write(&p, &bytes);
    let msg = err_msg(idx::read_images(&p));
    assert_contains(
        &msg,
        &[
            "t10k-images-idx3-ubyte",
            "truncated",
            "need 2368 bytes",
            "found 2268 bytes",
            "100 missing",
        ],
    );
    // Truncated inside the header.
    write(&p, &bytes[..10]);
    let msg = err_msg(idx::read_images(&p));
    assert_contains(&msg, &["t10k-images-idx3-ubyte", "truncated IDX header"]);
}

#[test]
fn idx_refuses_trailing_bytes() {
    let t = TempDir::new("idx-trail");
    let p = t.join("train-labels-idx1-ubyte.gz");
    let mut bytes = idx_bytes(0x801, &[4], &[1, 2, 3, 4]);
    bytes.extend_from_slice(&[0, 0, 7]);
    write(&p, &gzip(&bytes));
    let msg = err_msg(idx::read_labels(&p, 10));
    assert_contains(
        &msg,
        &[
            "train-labels-idx1-ubyte.gz",
            "3 trailing bytes",
            "need 12 bytes",
            "found 15 bytes",
        ],
    );
}

#[test]
fn idx_refuses_wrong_dims() {
    let t = TempDir::new("idx-dims");
    let dir = t.join("mnist");
    std::fs::create_dir_all(&dir).unwrap();
    write_mnist_dir(&dir, 2, 2, false);
    // 28×27 training images.
    let data: Vec<u8> = vec![9; 2 * 28 * 27];
    write(
        &dir.join("train-images-idx3-ubyte"),
        &idx_bytes(0x803, &[2, 28, 27], &data),
    );
    let msg = err_msg(data::load(DatasetName::Mnist, t.path()));
    assert_contains(
        &msg,
        &[
            "train-images-idx3-ubyte",
            "wrong image dimensions",
            "expected 28x28",
            "found 28x27",
        ],
    );
    // Images flattened to 2 dimensions (magic 0x0802).
    write(
        &dir.join("train-images-idx3-ubyte"),
        &idx_bytes(0x802, &[2, 784], &images28(2)),
    );
    let msg = err_msg(data::load(DatasetName::Mnist, t.path()));
    assert_contains(
        &msg,
        &[
            "train-images-idx3-ubyte",
            "not an IDX image file",
            "2 dimensions",
        ],
    );
    // Zero-sized image side.
    let p = t.join("empty-side");
    write(&p, &idx_bytes(0x803, &[5, 0, 28], &[]));
    let msg = err_msg(idx::read_images(&p));
    assert_contains(&msg, &["empty-side", "empty image side"]);
}

#[test]
fn idx_refuses_count_mismatch() {
    let t = TempDir::new("idx-count");
    let img = t.join("train-images-idx3-ubyte");
    let lab = t.join("train-labels-idx1-ubyte");
    write(&img, &idx_bytes(0x803, &[3, 28, 28], &images28(3)));
    write(&lab, &idx_bytes(0x801, &[2], &[0, 1]));
    let msg = err_msg(idx::load_pair(&img, &lab, 10, Some((28, 28)), "x"));
    assert_contains(
        &msg,
        &[
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "count mismatch",
            "3 images",
            "2 labels",
        ],
    );
}

#[test]
fn idx_refuses_label_out_of_range() {
    let t = TempDir::new("idx-label");
    let dir = t.join("fashion-mnist");
    std::fs::create_dir_all(&dir).unwrap();
    write_mnist_dir(&dir, 4, 3, true);
    write(
        &dir.join("t10k-labels-idx1-ubyte.gz"),
        &gzip(&idx_bytes(0x801, &[3], &[0, 10, 2])),
    );
    let msg = err_msg(data::load(DatasetName::FashionMnist, t.path()));
    assert_contains(
        &msg,
        &[
            "t10k-labels-idx1-ubyte.gz",
            "label 10 at index 1",
            "out of range",
        ],
    );
}

#[test]
fn idx_refuses_corrupt_gzip() {
    let t = TempDir::new("idx-gz");
    let good = gzip(&idx_bytes(0x803, &[4, 28, 28], &images28(4)));
    // Cut the gzip stream in half.
    let p = t.join("train-images-idx3-ubyte.gz");
    write(&p, &good[..good.len() / 2]);
    let msg = err_msg(idx::read_images(&p));
    assert_contains(&msg, &["train-images-idx3-ubyte.gz", "gzip"]);
    // Flip bits in the middle of the deflate data (caught by the decoder or the CRC).
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    for b in &mut bad[mid..mid + 8] {
        *b ^= 0x5a;
    }
    write(&p, &bad);
    let msg = err_msg(idx::read_images(&p));
    assert_contains(&msg, &["train-images-idx3-ubyte.gz", "gzip"]);
    // A bad CRC alone (last 8 bytes are CRC32 and ISIZE).
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 8] ^= 0xff;
    write(&p, &bad);
    let msg = err_msg(idx::read_images(&p));
    assert_contains(&msg, &["train-images-idx3-ubyte.gz", "gzip"]);
}

// ---------------------------------------------------------------------------------------------
// CIFAR-10

/// A CIFAR record: label, then pixel (c, h, w) = (label·31 + c·7 + h·3 + w + salt) mod 256.
fn cifar_record(label: u8, salt: usize) -> Vec<u8> {
    let mut r = vec![label];
    for c in 0..3 {
        for h in 0..32 {
            for w in 0..32 {
                r.push(((label as usize) * 31 + c * 7 + h * 3 + w + salt) as u8);
            }
        }
    }
    r
}

#[test]
fn cifar_round_trip_two_files() {
    let t = TempDir::new("cifar-rt");
    let a = t.join("data_batch_1.bin");
    let b = t.join("test_batch.bin");
    let mut fa = cifar_record(3, 0);
    fa.extend(cifar_record(9, 1));
    write(&a, &fa);
    write(&b, &gzip(&cifar_record(0, 2)));
    let ds = cifar::read_batches(&[a, b], "crafted").unwrap();
    assert_eq!(ds.n, 3);
    assert_eq!(ds.y, [3, 9, 0]);
    assert_eq!(
        (ds.channels, ds.height, ds.width, ds.classes),
        (3, 32, 32, 10)
    );
    assert_eq!(ds.dim(), 3072);
    assert_eq!(ds.x.len(), 3 * 3072);
    for (rec, (label, salt)) in [(3u8, 0usize), (9, 1), (0, 2)].into_iter().enumerate() {
        for (c, h, w) in [(0, 0, 0), (1, 5, 7), (2, 31, 31), (2, 0, 17)] {
            let want = ((label as usize) * 31 + c * 7 + h * 3 + w + salt) as u8;
            let got = ds.x[rec * 3072 + c * 1024 + h * 32 + w];
            assert_eq!(
                got,
                want as f32 / 255.0,
                "record {rec} (c,h,w)=({c},{h},{w})"
            );
        }
    }
    ds.validate(t.path()).unwrap();
}

#[test]
fn cifar_load_directory_layouts() {
    for nested in [false, true] {
        let t = TempDir::new("cifar-dir");
        let dir = if nested {
            t.join("cifar10/cifar-10-batches-bin")
        } else {
            t.join("cifar10")
        };
        std::fs::create_dir_all(&dir).unwrap();
        for k in 1..=5u8 {
            let mut rec = cifar_record(k, 0);
            rec.extend(cifar_record(k + 1, 1));
            write(&dir.join(format!("data_batch_{k}.bin")), &rec);
        }
        write(&dir.join("test_batch.bin.gz"), &gzip(&cifar_record(7, 5)));
        let tt = data::load(DatasetName::Cifar10, t.path()).unwrap();
        assert_eq!((tt.train.n, tt.test.n), (10, 1));
        assert_eq!(tt.train.y, [1, 2, 2, 3, 3, 4, 4, 5, 5, 6]);
        assert_eq!(tt.test.y, [7]);
        assert_eq!(tt.test.x[0], ((7 * 31 + 5) as u8) as f32 / 255.0);
    }
}

#[test]
fn cifar_refuses_wrong_length_and_bad_label() {
    let t = TempDir::new("cifar-bad");
    let p = t.join("data_batch_2.bin");
    let mut bytes = cifar_record(1, 0);
    bytes.extend(cifar_record(2, 0));
    bytes.extend_from_slice(&[0; 5]);
    write(&p, &bytes);
    let msg = err_msg(cifar::read_batch(&p));
    assert_contains(
        &msg,
        &[
            "data_batch_2.bin",
            "6151 bytes",
            "not a multiple of the 3073-byte record",
        ],
    );

    let mut bytes = cifar_record(1, 0);
    bytes.extend(cifar_record(10, 0));
    write(&p, &bytes);
    let msg = err_msg(cifar::read_batch(&p));
    assert_contains(
        &msg,
        &[
            "data_batch_2.bin",
            "bad label 10 in record 1",
            "expected 0..9",
        ],
    );

    write(&p, &[]);
    let msg = err_msg(cifar::read_batch(&p));
    assert_contains(&msg, &["data_batch_2.bin", "empty"]);
}

// ---------------------------------------------------------------------------------------------
// digits

/// A digits CSV row: pixels (r + j) mod 17, label r mod 10.
fn digits_row(r: usize) -> String {
    let mut f: Vec<String> = (0..64).map(|j| ((r + j) % 17).to_string()).collect();
    f.push((r % 10).to_string());
    f.join(",")
}

#[test]
fn digits_round_trip_and_split() {
    let t = TempDir::new("digits-rt");
    let dir = t.join("digits");
    std::fs::create_dir_all(&dir).unwrap();
    let csv: String = (0..410).map(|r| digits_row(r) + "\r\n").collect();
    write(&dir.join("digits.csv"), csv.as_bytes());
    let tt = data::load(DatasetName::Digits, t.path()).unwrap();
    assert_eq!((tt.train.n, tt.test.n), (10, 400));
    assert_eq!(tt.train.y[3], 3);
    assert_eq!(tt.test.y[0], 0); // row 10
    assert_eq!(tt.train.x[64 + 2], 3.0 / 16.0); // row 1, pixel 2
    assert_eq!(tt.test.x[16], 9.0 / 16.0); // row 10, pixel 16: (10 + 16) mod 17 = 9
}

#[test]
fn digits_refuses_bad_rows() {
    let t = TempDir::new("digits-bad");
    let p = t.join("digits.csv.gz");
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            // 64 columns on line 2.
            format!(
                "{}\n{}\n",
                digits_row(0),
                digits_row(1).rsplit_once(',').unwrap().0
            ),
            vec!["line 2", "expected 65", "found 64 columns"],
        ),
        (
            format!(
                "{}\n{}\nx{}\n",
                digits_row(0),
                digits_row(1),
                &digits_row(2)[1..]
            ),
            vec!["line 3", "\"x\"", "not a non-negative integer"],
        ),
        (
            format!("{}\n", digits_row(0).replacen("1,", "1.5,", 1)),
            vec!["line 1", "\"1.5\"", "not a non-negative integer"],
        ),
        (
            format!("17{}\n", &digits_row(0)[1..]),
            vec!["line 1", "pixel 17 in column 1", "above the maximum 16"],
        ),
        (
            format!(
                "{}\n{},10\n",
                digits_row(0),
                digits_row(1).rsplit_once(',').unwrap().0
            ),
            vec!["line 2", "label 10", "above 9"],
        ),
        (
            format!("{}\n\n{}\n", digits_row(0), digits_row(1)),
            vec!["line 2", "a blank line where a row of 65"],
        ),
    ];
    for (csv, parts) in cases {
        write(&p, &gzip(csv.as_bytes()));
        let msg = err_msg(digits::read_csv(&p));
        let mut all = vec!["digits.csv.gz"];
        all.extend(parts);
        assert_contains(&msg, &all);
    }
    // Too few rows for the fixed 400-row test set.
    write(&p, (digits_row(0) + "\n").as_bytes());
    let all = digits::read_csv(&p).unwrap();
    let msg = err_msg(digits::train_test(all, &p));
    assert_contains(&msg, &["digits.csv.gz", "more than 400"]);
}

// ---------------------------------------------------------------------------------------------
// splits and batches

/// 1,000 labels over 4 classes, unbalanced: class c holds 100·(c+1) examples, interleaved.
fn toy_labels() -> Vec<u8> {
    let mut y = Vec::new();
    for c in 0..4u8 {
        y.extend(std::iter::repeat_n(c, 100 * (c as usize + 1)));
    }
    Rng::new(99, 0).shuffle(&mut y);
    y
}

#[test]
fn split_is_balanced_disjoint_and_complete() {
    let y = toy_labels();
    let s = data::split(&y, 4, 40, 200, 5).unwrap();
    let mut per = [0usize; 4];
    for &i in &s.labelled {
        per[y[i] as usize] += 1;
    }
    assert_eq!(per, [10; 4]);
    assert_eq!(s.labelled.len(), 40);
    assert_eq!(s.validation.len(), 200);
    assert_eq!(s.unlabelled.len(), 800);
    for v in [&s.labelled, &s.validation, &s.unlabelled] {
        assert!(v.windows(2).all(|w| w[0] < w[1]), "sorted and distinct");
    }
    // labelled ∩ validation = ∅; unlabelled = all − validation, labelled included.
    let mut mark = vec![0u8; y.len()];
    for &i in &s.validation {
        mark[i] |= 1;
    }
    for &i in &s.labelled {
        assert_eq!(mark[i] & 1, 0, "index {i} both labelled and validation");
        mark[i] |= 2;
    }
    for &i in &s.unlabelled {
        assert_eq!(mark[i] & 1, 0, "index {i} both unlabelled and validation");
        mark[i] |= 4;
    }
    assert!(mark.iter().all(|&m| m & 1 != 0 || m & 4 != 0));
    assert!(mark.iter().filter(|&&m| m & 2 != 0).all(|&m| m & 4 != 0));
}

#[test]
fn split_is_deterministic_per_seed() {
    let y = toy_labels();
    let a = data::split(&y, 4, 20, 100, 42).unwrap();
    let b = data::split(&y, 4, 20, 100, 42).unwrap();
    let c = data::split(&y, 4, 20, 100, 43).unwrap();
    assert_eq!(a, b);
    assert_ne!(a.labelled, c.labelled);
    assert_ne!(a.validation, c.validation);
}

#[test]
fn split_refuses_bad_requests() {
    let y = toy_labels();
    // Class 0 holds 100 examples; 4 × 101 labels asks for 101 of each.
    let msg = err_msg(data::split(&y, 4, 404, 0, 1));
    assert_contains(
        &msg,
        &[
            "class 0",
            "only 100 examples",
            "101 per class",
            "404 labels",
        ],
    );
    let msg = err_msg(data::split(&y, 4, 42, 0, 1));
    assert_contains(&msg, &["42", "multiple", "4"]);
    let msg = err_msg(data::split(&y, 4, 40, 961, 1));
    assert_contains(&msg, &["40 labelled + 961 validation", "1000"]);
    let msg = err_msg(data::split(&y, 3, 30, 0, 1));
    assert_contains(&msg, &["label 3", "3 classes"]);
    assert!(data::split(&y, 0, 0, 0, 1).is_err());
    // The largest valid requests work: every example of the smallest class labelled.
    let s = data::split(&y, 4, 400, 600, 1).unwrap();
    assert_eq!(
        (s.labelled.len(), s.validation.len(), s.unlabelled.len()),
        (400, 600, 400)
    );
    assert_eq!(s.unlabelled, s.labelled);
}

#[test]
fn batches_cover_each_index_once() {
    let idx: Vec<usize> = (100..123).collect();
    let mut rng = Rng::new(3, 1);
    let b = data::batches(&idx, 5, &mut rng).unwrap();
    assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), [5, 5, 5, 5, 3]);
    let mut all: Vec<usize> = b.concat();
    assert_ne!(all, idx, "shuffled");
    all.sort_unstable();
    assert_eq!(all, idx);
    // Same rng state ⇒ same batches.
    let b2 = data::batches(&idx, 5, &mut Rng::new(3, 1)).unwrap();
    assert_eq!(b, b2);
    assert!(data::batches(&idx, 0, &mut rng).is_err());
    assert!(data::batches(&[], 4, &mut rng).unwrap().is_empty());
}

#[test]
fn batcher_cycles_epochs() {
    let idx: Vec<usize> = (0..10).collect();
    let mut b = Batcher::new(&idx, 4, Rng::new(8, 2)).unwrap();
    assert_eq!((b.len(), b.batches_per_epoch()), (10, 3));
    let mut epochs: Vec<Vec<usize>> = Vec::new();
    for _ in 0..2 {
        let mut seen = Vec::new();
        let mut sizes = Vec::new();
        for _ in 0..3 {
            let batch = b.next_batch().to_vec();
            sizes.push(batch.len());
            seen.extend(batch);
        }
        assert_eq!(sizes, [4, 4, 2]);
        let order = seen.clone();
        seen.sort_unstable();
        assert_eq!(seen, idx);
        epochs.push(order);
    }
    assert_eq!(b.epoch(), 1);
    assert_ne!(epochs[0], epochs[1], "reshuffled each epoch");
    assert!(Batcher::new(&idx, 0, Rng::new(0, 0)).is_err());
    assert!(Batcher::new(&[], 3, Rng::new(0, 0)).is_err());
}

#[test]
fn gather_copies_records_in_order() {
    let ds = Dataset {
        x: (0..12).map(|v| v as f32).collect(),
        y: vec![0, 1, 2],
        n: 3,
        channels: 1,
        height: 2,
        width: 2,
        classes: 3,
        name: "toy".into(),
    };
    let (x, y) = data::gather(&ds, &[2, 0, 2]).unwrap();
    assert_eq!(x, [8., 9., 10., 11., 0., 1., 2., 3., 8., 9., 10., 11.]);
    assert_eq!(y, [2, 0, 2]);
    let msg = err_msg(data::gather(&ds, &[1, 3]));
    assert_contains(&msg, &["index 3", "toy", "3 records"]);
}

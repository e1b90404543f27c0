//! `ssvae sample` for every model with a generative side, on tiny digits runs: prior samples
//! (rows of z ~ N(0, I) for vae and m1, a row per mixture component for gmvae, a row per class
//! for the others) and reconstructions (a row of test images above the row of their
//! reconstructions), each PNG decoded and checked for its size and content; a classifier is
//! refused with a reason.

mod cli_support;

use cli_support::{data_dir, fails, ok, temp_dir};
use std::path::Path;

/// A decoded 8-bit grey PNG: width, height, pixels.
fn read_png(path: &Path) -> (usize, usize, Vec<u8>) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    buf.truncate(info.buffer_size());
    (info.width as usize, info.height as usize, buf)
}

/// The pixels of tile (row, col) of a grid of 8×8 tiles with 1-pixel gaps.
fn tile(png: &(usize, usize, Vec<u8>), row: usize, col: usize) -> Vec<u8> {
    let (w, _, px) = png;
    (0..8)
        .flat_map(|y| {
            let start = (row * 9 + y) * w + col * 9;
            px[start..start + 8].to_vec()
        })
        .collect()
}

/// Whether `v` is a digits pixel k/16 (k = 0..16) written as 8 bits.
fn is_digits_level(v: u8) -> bool {
    (0..=16).any(|k| (k as f32 / 16.0 * 255.0).round() as u8 == v)
}

/// Train `model` with `labels` labels on digits for a few steps into `dir`.
fn tiny_run(model: &str, dir: &Path, labels: &str) {
    let dd = data_dir();
    let args = [
        "train",
        "--model",
        model,
        "--dataset",
        "digits",
        "--labels",
        labels,
        "--hidden",
        "32",
        "--z-dim",
        "4",
        "--batch-size",
        "64",
        "--labelled-batch",
        "25",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "5",
        "--device",
        "cpu",
        "--data-dir",
        &dd,
        "--out",
        dir.to_str().unwrap(),
    ];
    ok(&args);
}

#[test]
fn every_generative_model_samples_and_reconstructs() {
    let dd = data_dir();
    // gmvae unsupervised: its rows are mixture components, not classes.
    for (model, labels) in [
        ("vae", "50"),
        ("m1", "50"),
        ("gmvae", "0"),
        ("m1m2", "50"),
        ("shot", "50"),
        ("adgm", "50"),
        ("sdgm", "50"),
        ("sparse", "50"),
        ("aae", "50"),
        ("ladder", "50"),
    ] {
        let dir = temp_dir(&format!("sample-{model}"));
        tiny_run(model, &dir, labels);
        let d = dir.to_str().unwrap();

        // Prior samples: 10 rows (mixture components for gmvae) × 10 columns of 8×8 tiles.
        let samples = dir.join("samples.png");
        let out = ok(&["sample", d, "--device", "cpu"]);
        assert!(out.contains("samples.png"), "{out}");
        let png = read_png(&samples);
        assert_eq!((png.0, png.1), (10 * 8 + 9, 10 * 8 + 9), "{model}");
        let t = tile(&png, 0, 0);
        assert!(
            t.iter().any(|&v| v != t[0]),
            "{model}: a uniform sample tile"
        );
        assert_ne!(
            tile(&png, 0, 0),
            tile(&png, 1, 1),
            "{model}: identical samples"
        );

        // Reconstructions: 2 rows of 5 test images, each above its reconstructions.
        let rec = dir.join("rec.png");
        let args = ["sample", d, "--reconstruct", "--rows", "2", "--cols", "5"];
        ok(&[
            &args[..],
            &[
                "--out",
                rec.to_str().unwrap(),
                "--data-dir",
                &dd,
                "--device",
                "cpu",
            ],
        ]
        .concat());
        let png = read_png(&rec);
        assert_eq!((png.0, png.1), (5 * 8 + 4, 4 * 8 + 3), "{model}");
        for col in 0..5 {
            for row in [0, 2] {
                let image = tile(&png, row, col);
                let recon = tile(&png, row + 1, col);
                assert!(
                    image.iter().copied().all(is_digits_level),
                    "{model}: row {row} is not test images"
                );
                assert!(
                    image.iter().any(|&v| v != image[0]),
                    "{model}: a blank test image"
                );
                assert!(
                    recon.iter().any(|&v| v != recon[0]),
                    "{model}: a uniform reconstruction"
                );
                assert!(
                    !recon.iter().copied().all(is_digits_level),
                    "{model}: row {} is not decoded",
                    row + 1
                );
            }
        }
    }
}

#[test]
fn gmvae_analogies_and_the_classifier_refusal() {
    let dd = data_dir();
    let dir = temp_dir("sample-gmvae-analogy");
    tiny_run("gmvae", &dir, "50");
    let d = dir.to_str().unwrap();
    let an = dir.join("an.png");
    ok(&[
        "sample",
        d,
        "--analogy",
        "--rows",
        "3",
        "--out",
        an.to_str().unwrap(),
        "--data-dir",
        &dd,
        "--device",
        "cpu",
    ]);
    let png = read_png(&an);
    assert_eq!((png.0, png.1), (11 * 8 + 10, 3 * 8 + 2));
    let err = fails(&["sample", d, "--rows", "11", "--device", "cpu"]);
    assert!(
        err.contains("11 rows but the model has 10 classes"),
        "{err}"
    );
    let err = fails(&[
        "sample",
        d,
        "--reconstruct",
        "--rows",
        "100",
        "--cols",
        "10",
        "--data-dir",
        &dd,
        "--device",
        "cpu",
    ]);
    assert!(
        err.contains("1000 test images asked for, but the test set has 400"),
        "{err}"
    );

    let dir = temp_dir("sample-classifier");
    tiny_run("classifier", &dir, "50");
    let err = fails(&["sample", dir.to_str().unwrap(), "--device", "cpu"]);
    assert!(err.contains("classifier has no generative model"), "{err}");
}

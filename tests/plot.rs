//! `ssvae plot`: the training curves of a real digits run and of crafted `metrics.csv` files
//! (columns in any order, clock and learning-rate columns, empty cells) drawn as PNGs, decoded
//! and checked for their size and content; the panels a table gives, by column name; and the
//! refusals of malformed logs, naming the file and the problem.

mod cli_support;

use cli_support::{data_dir, fails, ok, temp_dir};
use ssvae::plot::Table;
use std::collections::HashSet;
use std::path::Path;

/// A decoded 8-bit RGB PNG: width, height, pixels.
fn read_rgb(path: &Path) -> (usize, usize, Vec<[u8; 3]>) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    buf.truncate(info.buffer_size());
    let px = buf.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect();
    (info.width as usize, info.height as usize, px)
}

/// The picture's size for `panels` panels, two to a row (the layout of `ssvae::plot::chart`).
fn size_for(panels: usize) -> (usize, usize) {
    let cols = panels.clamp(1, 2);
    let rows = panels.div_ceil(cols);
    (
        2 * 24 + cols * 600 + (cols - 1) * 24,
        64 + rows * 380 + (rows - 1) * 24 + 24,
    )
}

/// The first two colours of the curves.
const BLUE: [u8; 3] = [31, 119, 180];
const ORANGE: [u8; 3] = [255, 127, 14];

#[test]
fn a_digits_run_is_plotted_with_a_panel_per_metric_family() {
    let dd = data_dir();
    let dir = temp_dir("plot-run");
    let d = dir.to_str().unwrap();
    ok(&[
        "train",
        "--model",
        "vae",
        "--dataset",
        "digits",
        "--hidden",
        "32",
        "--z-dim",
        "4",
        "--epochs",
        "3",
        "--steps-per-epoch",
        "4",
        "--device",
        "cpu",
        "--data-dir",
        &dd,
        "--out",
        d,
    ]);
    let out = ok(&["plot", d]);
    let png = dir.join("metrics.png");
    assert!(out.contains(&png.display().to_string()), "{out}");
    // A vae logs no test error nor clustering: training loss, ELBO, learning rate and
    // examples/s.
    let table = Table::read(&dir.join("metrics.csv")).unwrap();
    let titles: Vec<String> = table.panels().into_iter().map(|p| p.title).collect();
    assert_eq!(
        titles,
        [
            "training loss (nats)",
            "ELBO (nats)",
            "learning rate",
            "examples / s"
        ]
    );
    let (w, h, px) = read_rgb(&png);
    assert_eq!((w, h), size_for(4));
    let colours: HashSet<[u8; 3]> = px.iter().copied().collect();
    assert!(
        colours.len() > 50,
        "{} colours: not a drawing",
        colours.len()
    );
    assert!(
        colours.contains(&BLUE) && colours.contains(&ORANGE),
        "no curves drawn"
    );
    // Dark text pixels (titles, ticks) exist.
    assert!(px.iter().filter(|p| p.iter().all(|&c| c < 60)).count() > 1000);

    // --out elsewhere; a checkpoint-less CSV path works as well.
    let other = dir.join("curves.png");
    ok(&[
        "plot",
        dir.join("metrics.csv").to_str().unwrap(),
        "--out",
        other.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&other).unwrap(), std::fs::read(&png).unwrap());
}

#[test]
fn columns_are_read_by_name_whatever_their_order() {
    let dir = temp_dir("plot-csv");
    // Columns in an unusual order, a timestamp and a learning rate, an empty test_error_pct
    // column (a clustering model) and an empty cell in a curve.
    let mut csv = String::from(
        "lr,epoch,time,loss,rec,kl,wall_s,test_error_pct,test_elbo,examples_per_s,val_error_pct\n",
    );
    for e in 1..=12 {
        let lr = if e <= 8 { "0.001" } else { "0.0001" };
        let val = if e == 5 {
            String::new()
        } else {
            format!("{}", 50.0 / e as f64)
        };
        csv.push_str(&format!(
            "{lr},{e},2026-01-0{}T00:00:00,{},{},{},{},,{},{},{val}\n",
            e % 9 + 1,
            40.0 / e as f64 + 20.0,
            38.0 / e as f64 + 18.0,
            2.0,
            0.1 * e as f64,
            -(40.0 / e as f64 + 20.0),
            1000 + e
        ));
    }
    let path = dir.join("metrics.csv");
    std::fs::write(&path, &csv).unwrap();
    let panels = Table::read(&path).unwrap().panels();
    let shown: Vec<(String, Vec<String>)> = panels
        .iter()
        .map(|p| {
            (
                p.title.clone(),
                p.series.iter().map(|s| s.label.clone()).collect(),
            )
        })
        .collect();
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        shown,
        [
            (
                "training loss (nats)".to_string(),
                names(&["loss", "rec", "kl"])
            ),
            ("ELBO (nats)".to_string(), names(&["test_elbo"])),
            ("error (%)".to_string(), names(&["val_error_pct"])),
            ("learning rate".to_string(), names(&["lr"])),
            ("examples / s".to_string(), names(&["examples_per_s"])),
        ]
    );
    // Errors are logged and shown in percent, x is the epoch, the empty cell stays a gap.
    let val = &panels[2].series[0].points;
    assert_eq!(val[1], (2.0, Some(25.0)));
    assert_eq!(val[4], (5.0, None));
    assert_eq!(panels[3].series[0].points[9], (10.0, Some(0.0001)));

    let png = dir.join("p.png");
    ok(&[
        "plot",
        path.to_str().unwrap(),
        "--out",
        png.to_str().unwrap(),
    ]);
    let (w, h, px) = read_rgb(&png);
    assert_eq!((w, h), size_for(5));
    assert!(px.contains(&BLUE) && px.contains(&ORANGE));
}

#[test]
fn malformed_logs_are_refused_with_the_file_named() {
    let dir = temp_dir("plot-bad");
    let case = |name: &str, text: &str, want: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let err = fails(&[
            "plot",
            path.to_str().unwrap(),
            "--out",
            dir.join("x.png").to_str().unwrap(),
        ]);
        assert!(
            err.contains(&path.display().to_string()) && err.contains(want),
            "{err}"
        );
    };
    case("empty.csv", "", "is empty");
    case("header.csv", "epoch,loss\n", "no epoch yet");
    case("noepoch.csv", "step,loss\n1,2\n", "has no epoch column");
    case(
        "cells.csv",
        "epoch,loss\n1,2\n2\n",
        "line 3 has 1 cells, the header 2",
    );
    case(
        "number.csv",
        "epoch,loss\n1,abc\n",
        "line 2: loss \"abc\" is not a number",
    );
    case(
        "blank.csv",
        "epoch,loss\n1,\n2,\n",
        "holds no metric value to plot",
    );
    let missing = dir.join("no-run");
    let err = fails(&["plot", missing.to_str().unwrap()]);
    assert!(err.contains("no-run/metrics.csv"), "{err}");
}

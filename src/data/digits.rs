//! scikit-learn's 8×8 digits (`sklearn.datasets.load_digits`, the UCI optdigits test set):
//! `digits.csv[.gz]`, no header, 1,797 rows of 65 comma-separated integers, 64 pixels (0..16,
//! row-major) then the label (0..9). Pixels are scaled by 1/16.
//!
//! The dataset has no official train/test split, so ssvae uses a fixed, documented one: the
//! **first 1,397 rows are the training set and the last [`TEST_ROWS`] = 400 rows the test set**
//! (file order, no shuffling; the last 400 rows hold 39–43 examples of each class). Any bad row
//! (a blank line, a wrong column count, a non-integer, a pixel above 16, a label above 9) is an
//! error naming the file and the 1-based line; an empty file is refused as such.

use std::path::Path;

use super::{find_file, read_maybe_gz, scale_pixels, Dataset, TrainTest};
use crate::{Error, Result};

/// Pixels per image (8×8).
pub const PIXELS: usize = 64;
/// Columns per row: the pixels, then the label.
pub const COLUMNS: usize = PIXELS + 1;
/// Largest pixel value (a count of "on" pixels in a 4×4 block).
pub const MAX_PIXEL: u8 = 16;
/// Number of classes.
pub const CLASSES: usize = 10;
/// The last `TEST_ROWS` rows of the file form the test set.
pub const TEST_ROWS: usize = 400;

/// Parse the digits CSV at `path` (gzipped or not) into one [`Dataset`] of all its rows, named
/// `digits`, pixels scaled to [0, 1].
pub fn read_csv(path: &Path) -> Result<Dataset> {
    let bytes = read_maybe_gz(path)?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        Error::data(
            path,
            format!("not a text CSV: invalid UTF-8 at byte {}", e.valid_up_to()),
        )
    })?;
    let mut raw: Vec<u8> = Vec::with_capacity(PIXELS * 1_800);
    let mut y: Vec<u8> = Vec::with_capacity(1_800);
    let mut lines: Vec<&str> = text.split('\n').collect();
    // The final newline leaves an empty last piece, and blank lines may follow the last row;
    // neither is a row.
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    if lines.is_empty() {
        return Err(Error::data(
            path,
            if text.is_empty() {
                "digits CSV holds no rows: the file is empty".to_string()
            } else {
                format!(
                    "digits CSV holds no rows: its {} bytes are blank lines only",
                    text.len()
                )
            },
        ));
    }
    for (ln, line) in lines.iter().enumerate() {
        let line_no = ln + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        let bad = |why: String| Error::data(path, format!("line {line_no}: {why}"));
        if line.trim().is_empty() {
            return Err(bad(format!(
                "a blank line where a row of {COLUMNS} comma-separated integers (64 pixels + label) was expected"
            )));
        }
        let cols = line.split(',').count();
        if cols != COLUMNS {
            return Err(bad(format!(
                "expected {COLUMNS} comma-separated integers (64 pixels + label), found {cols} columns"
            )));
        }
        for (c, field) in line.split(',').enumerate() {
            let f = field.trim();
            let v: u32 = f.parse().map_err(|_| {
                bad(format!(
                    "column {} is {f:?}, not a non-negative integer",
                    c + 1
                ))
            })?;
            if c < PIXELS {
                if v > MAX_PIXEL as u32 {
                    return Err(bad(format!(
                        "pixel {v} in column {} is above the maximum {MAX_PIXEL}",
                        c + 1
                    )));
                }
                raw.push(v as u8);
            } else {
                if v as usize >= CLASSES {
                    return Err(bad(format!("label {v} (column {COLUMNS}) is above 9")));
                }
                y.push(v as u8);
            }
        }
    }
    Ok(Dataset {
        x: scale_pixels(&raw, MAX_PIXEL)?,
        n: y.len(),
        y,
        channels: 1,
        height: 8,
        width: 8,
        classes: CLASSES,
        name: "digits".to_string(),
    })
}

/// Split `all` (in file order) into the first `n − 400` rows (train) and the last 400 (test).
pub fn train_test(all: Dataset, path: &Path) -> Result<TrainTest> {
    if all.n <= TEST_ROWS {
        return Err(Error::data(
            path,
            format!(
                "{} rows: the digits split needs more than {TEST_ROWS} (the last {TEST_ROWS} rows are the test set)",
                all.n
            ),
        ));
    }
    let n_train = all.n - TEST_ROWS;
    let d = all.dim();
    let mut train = all;
    let test_x = train.x.split_off(n_train * d);
    let test_y = train.y.split_off(n_train);
    train.n = n_train;
    train.name = "digits/train".to_string();
    let test = Dataset {
        x: test_x,
        y: test_y,
        n: TEST_ROWS,
        channels: train.channels,
        height: train.height,
        width: train.width,
        classes: train.classes,
        name: "digits/test".to_string(),
    };
    Ok(TrainTest { train, test })
}

/// Load `digits.csv[.gz]` from `dir` and split it as documented above.
pub fn load_dir(dir: &Path) -> Result<TrainTest> {
    let path = find_file(dir, "digits.csv")?;
    let all = read_csv(&path)?;
    train_test(all, &path)
}

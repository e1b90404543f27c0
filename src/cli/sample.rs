//! `ssvae sample DIR`: PNG grids from a checkpoint: prior samples (for a model with a class
//! variable a row per class or mixture component and a column per z, else rows and columns of
//! z ~ N(0, I)), the analogy grid (a test image's style decoded with every class), or
//! reconstructions (rows of test images, each above the row of their reconstructions).

use super::{load_run_data, positive, run_dir_of};
use clap::Args;
use ssvae::data;
use ssvae::device::parse_device;
use ssvae::models::Prior;
use ssvae::rng::Rng;
use ssvae::train::{checkpoint, grid};
use ssvae::{memory, Error, Result};
use std::path::PathBuf;

/// The flags of `ssvae sample`.
#[derive(Args)]
pub struct SampleArgs {
    /// A run directory (its latest checkpoint) or a checkpoint directory
    dir: PathBuf,
    /// The PNG to write [default: DIR/samples.png, DIR/analogy.png or
    /// DIR/reconstructions.png]
    #[arg(long)]
    out: Option<PathBuf>,
    /// Rows: classes shown (the first R) [default: all] or, for vae and m1, rows of samples
    /// [default: 10]; test images with --analogy [default: 10]; rows of test images, each
    /// with its row of reconstructions, with --reconstruct [default: 1]
    #[arg(long)]
    rows: Option<usize>,
    /// Columns: z samples per row, or test images per row with --reconstruct [default: 10]
    /// (with --analogy, one per class)
    #[arg(long)]
    cols: Option<usize>,
    /// The analogy grid: each row a test image, then its style with every class
    #[arg(long, conflicts_with = "reconstruct")]
    analogy: bool,
    /// Reconstructions: rows of test images, each followed by a row of their reconstructions
    #[arg(long)]
    reconstruct: bool,
    /// Enlarge every image this many times (nearest neighbour), e.g. 4 for 8×8 digits
    #[arg(long, default_value_t = 1)]
    scale: usize,
    /// Seed of the z draws (and of the choice of test images)
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Directory holding <dataset>/ folders, as for train [default: $SSVAE_DATA_DIR, else
    /// ../shared/datasets]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// auto | cpu | cuda | cuda:N
    #[arg(long, default_value = "auto")]
    device: String,
}

/// The random stream of `sample`'s draws (z, and the choice of test images).
const SAMPLE_STREAM: u32 = 0x5A3F;

/// Which grid `sample` draws.
enum Mode {
    Samples(Prior),
    Analogy,
    Reconstruct,
}

/// `sample DIR`.
pub fn sample_cmd(args: SampleArgs) -> Result<()> {
    let SampleArgs {
        dir,
        out,
        rows,
        cols,
        analogy,
        reconstruct,
        scale,
        seed,
        data_dir,
        device,
    } = args;
    let device = parse_device(&device)?;
    let (ckpt, rc, model) = checkpoint::load_model(&dir, device)?;
    let run_dir = run_dir_of(&dir, &ckpt);
    let k = rc.model.classes;
    let mut rng = Rng::new(seed, SAMPLE_STREAM);
    positive("--scale", scale)?;
    let prior = model.prior();
    if prior == Prior::None {
        return Err(Error::invalid(
            "sample",
            format!(
                "{} has no generative model to draw from; sample needs a vae, m1, m2, m1m2, gmvae, shot, adgm or sdgm run",
                rc.model.kind
            ),
        ));
    }
    let mode = match (analogy, reconstruct) {
        (true, _) => Mode::Analogy,
        (_, true) => Mode::Reconstruct,
        _ => Mode::Samples(prior),
    };
    // Rows and columns as given or defaulted, and the rows of the picture.
    let (rows, cols, grid_rows) = match mode {
        Mode::Analogy => {
            if cols.is_some() {
                return Err(Error::invalid(
                    "--cols",
                    "does not apply with --analogy (one column per class)",
                ));
            }
            let r = rows.unwrap_or(10);
            (r, k + 1, r)
        }
        Mode::Reconstruct => {
            let r = rows.unwrap_or(1);
            (r, cols.unwrap_or(10), r.saturating_mul(2))
        }
        Mode::Samples(Prior::PerClass) => {
            let r = rows.unwrap_or(k);
            (r, cols.unwrap_or(10), r)
        }
        Mode::Samples(_) => {
            let r = rows.unwrap_or(10);
            (r, cols.unwrap_or(10), r)
        }
    };
    positive("--rows", rows)?;
    positive("--cols", cols)?;
    // Before anything is decoded: the grid's memory follows from the flags alone.
    grid::check_size(grid_rows, cols, rc.model.input, scale).map_err(|e| {
        memory::in_context(e, || format!("--rows {rows} --cols {cols} --scale {scale}"))
    })?;
    // `count` test images, drawn at random with the seed.
    let test_images = |count: usize| -> Result<(data::Dataset, Vec<usize>)> {
        let tt = load_run_data(&rc, data_dir.clone())?;
        if count > tt.test.n {
            return Err(Error::invalid(
                "--rows",
                format!(
                    "{count} test images asked for, but the test set has {}",
                    tt.test.n
                ),
            ));
        }
        let mut idx: Vec<usize> = (0..tt.test.n).collect();
        Rng::new(seed, SAMPLE_STREAM).shuffle(&mut idx);
        idx.truncate(count);
        Ok((tt.test, idx))
    };
    let (g, default_name) = match mode {
        Mode::Analogy => {
            let (test, idx) = test_images(rows)?;
            (
                grid::analogy_grid(model.as_ref(), &test, &idx, k, device)?,
                "analogy.png",
            )
        }
        Mode::Reconstruct => {
            let (test, idx) = test_images(rows * cols)?;
            (
                grid::reconstruction_grid(model.as_ref(), &test, &idx, cols, device)?,
                "reconstructions.png",
            )
        }
        Mode::Samples(Prior::PerClass) => {
            if rows > k {
                return Err(Error::invalid(
                    "--rows",
                    format!("{rows} rows but the model has {k} classes"),
                ));
            }
            let classes: Vec<usize> = (0..rows).collect();
            (
                grid::class_grid(model.as_ref(), &rc.model, &classes, cols, &mut rng, device)?,
                "samples.png",
            )
        }
        Mode::Samples(_) => (
            grid::prior_grid(model.as_ref(), &rc.model, rows, cols, &mut rng, device)?,
            "samples.png",
        ),
    };
    let g = g.scaled(scale)?;
    let out = out.unwrap_or_else(|| run_dir.join(default_name));
    g.write_png(&out)?;
    let (w, h) = g.image_size();
    println!(
        "wrote {} ({}×{} tiles, {w}×{h} pixels) from {}",
        out.display(),
        g.rows,
        g.cols,
        ckpt.display()
    );
    Ok(())
}

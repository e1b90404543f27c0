//! `ssvae sample DIR`: PNG grids from a checkpoint, class-conditional (a row per class, a
//! column per z) or the analogy grid (a test image's style decoded with every class).

use super::{load_run_data, positive, run_dir_of};
use clap::Args;
use ssvae::device::parse_device;
use ssvae::rng::Rng;
use ssvae::train::{checkpoint, grid};
use ssvae::{memory, Error, Result};
use std::path::PathBuf;

/// The flags of `ssvae sample`.
#[derive(Args)]
pub struct SampleArgs {
    /// A run directory (its latest checkpoint) or a checkpoint directory
    dir: PathBuf,
    /// The PNG to write [default: DIR/samples.png, or DIR/analogy.png]
    #[arg(long)]
    out: Option<PathBuf>,
    /// Rows: classes shown (the first R) [default: all], or test images with --analogy
    /// [default: 10]
    #[arg(long)]
    rows: Option<usize>,
    /// Columns: z samples per class [default: 10] (with --analogy, one per class)
    #[arg(long)]
    cols: Option<usize>,
    /// The analogy grid: each row a test image, then its style with every class
    #[arg(long)]
    analogy: bool,
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

/// `sample DIR`.
pub fn sample_cmd(args: SampleArgs) -> Result<()> {
    let SampleArgs {
        dir,
        out,
        rows,
        cols,
        analogy,
        scale,
        seed,
        data_dir,
        device,
    } = args;
    let device = parse_device(&device)?;
    let (ckpt, rc, model) = checkpoint::load_model(&dir, device)?;
    let run_dir = run_dir_of(&dir, &ckpt);
    let k = rc.model.classes;
    let mut rng = Rng::new(seed, 0x5A3F);
    positive("--scale", scale)?;
    let (rows, cols) = if analogy {
        if cols.is_some() {
            return Err(Error::invalid(
                "--cols",
                "does not apply with --analogy (one column per class)",
            ));
        }
        (rows.unwrap_or(10), k + 1)
    } else {
        (rows.unwrap_or(k), cols.unwrap_or(10))
    };
    positive("--rows", rows)?;
    positive("--cols", cols)?;
    // Before anything is decoded: the grid's memory follows from the flags alone.
    grid::check_size(rows, cols, rc.model.input, scale).map_err(|e| {
        memory::in_context(e, || format!("--rows {rows} --cols {cols} --scale {scale}"))
    })?;
    let (g, default_name) = if analogy {
        let tt = load_run_data(&rc, data_dir)?;
        if rows > tt.test.n {
            return Err(Error::invalid(
                "--rows",
                format!("{rows} rows but the test set has {} images", tt.test.n),
            ));
        }
        let mut idx: Vec<usize> = (0..tt.test.n).collect();
        rng.shuffle(&mut idx);
        idx.truncate(rows);
        (
            grid::analogy_grid(model.as_ref(), &tt.test, &idx, k, device)?,
            "analogy.png",
        )
    } else {
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

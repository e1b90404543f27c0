//! `ssvae plot RUN`: the training curves of a run's `metrics.csv` as a PNG, a panel per metric
//! family (see `ssvae::plot`), titled with the run's directory and, when its checkpoint can be
//! read, its model and dataset.

use clap::Args;
use ssvae::train::checkpoint;
use ssvae::train::log::METRICS_FILE;
use ssvae::{plot, Result};
use std::path::PathBuf;

/// The flags of `ssvae plot`.
#[derive(Args)]
pub struct PlotArgs {
    /// A run directory (holding metrics.csv), or a metrics.csv file
    run: PathBuf,
    /// The PNG to write [default: RUN/metrics.png]
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `plot RUN`.
pub fn plot_cmd(args: PlotArgs) -> Result<()> {
    let (run_dir, csv) = if args.run.is_file() {
        let dir = args.run.parent().map(PathBuf::from).unwrap_or_default();
        (dir, args.run.clone())
    } else {
        (args.run.clone(), args.run.join(METRICS_FILE))
    };
    // The model and dataset of the run, when its latest checkpoint says.
    let about = checkpoint::resolve(&run_dir)
        .and_then(|ckpt| checkpoint::load_config(&ckpt))
        .map(|rc| format!(": {} on {}", rc.model.kind, rc.dataset))
        .unwrap_or_default();
    let title = format!("{}{about}", run_dir.display());
    let canvas = plot::render_metrics(&csv, &title)?;
    let out = args.out.unwrap_or_else(|| run_dir.join("metrics.png"));
    canvas.write_png(&out)?;
    println!(
        "wrote {} ({}×{} pixels) from {}",
        out.display(),
        canvas.width,
        canvas.height,
        csv.display()
    );
    Ok(())
}

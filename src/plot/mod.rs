//! Training curves as a picture (`ssvae plot`): a run's `metrics.csv` read by column name and
//! grouped into panels by metric family ([`series`]), laid out with axes, ticks and legends
//! ([`chart`]) on a small RGB raster ([`canvas`]) whose text is a hand-drawn bitmap font
//! ([`font`]), and written as a PNG.
//!
//! Hand-written rather than a plotting crate: the crates that draw text (plotters' bitmap
//! backend) need a TrueType font from the system or bundled with a font rasteriser, many times
//! the size of these four files, for a handful of line charts whose every label is ASCII.

pub mod canvas;
pub mod chart;
pub mod font;
pub mod series;

use std::path::Path;

use crate::{Error, Result};
pub use canvas::Canvas;
pub use series::{Panel, Series, Table};

/// The picture of the metrics log at `csv`, under `title`.
pub fn render_metrics(csv: &Path, title: &str) -> Result<Canvas> {
    let panels = Table::read(csv)?.panels();
    if panels.is_empty() {
        return Err(Error::data(csv, "holds no metric value to plot"));
    }
    chart::render(title, &panels)
}

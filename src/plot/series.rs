//! What `ssvae plot` draws from a run's `metrics.csv` ([`crate::train::log`]): the table read
//! by column name (never by position, so columns added later need no change here), and its
//! columns grouped into panels by metric family, each a set of curves over the epochs.
//!
//! The families, in panel order, by column name:
//!
//! | panel | columns |
//! | --- | --- |
//! | training loss | every column not listed below: `loss` and the model's terms |
//! | ELBO | names ending in `_elbo` (`test_elbo`, `val_elbo`) |
//! | error (%) | names ending in `_error_pct` |
//! | clustering (%) | names ending in `_acc_pct`, and `_nmi` times 100 |
//! | learning rate | `lr` |
//! | examples / s | `examples_per_s` |
//!
//! `epoch` is the x axis. Clock columns are not plotted: `wall_s`, any other name ending in
//! `_s` but `examples_per_s`, and any name containing `time` (timestamps). An empty cell is a
//! missing value (a column with no meaning for the model, or not yet measured); a panel whose
//! columns hold no value at all is left out.

use std::path::Path;

use crate::{Error, Result};

/// One curve: a label and its (epoch, value) points, `None` where the cell is empty.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, Option<f64>)>,
}

/// One panel: a title and its curves.
#[derive(Clone, Debug, PartialEq)]
pub struct Panel {
    pub title: String,
    pub series: Vec<Series>,
}

/// A metric family: its panel title, which columns belong to it, and the factor a column's
/// values are shown with (so that one panel shares one unit).
struct Family {
    title: &'static str,
    member: fn(&str) -> bool,
    factor: fn(&str) -> f64,
}

/// The families after the training loss, in panel order (see the module docs).
const FAMILIES: [Family; 5] = [
    Family {
        title: "ELBO (nats)",
        member: |c| c.ends_with("_elbo"),
        factor: |_| 1.0,
    },
    Family {
        title: "error (%)",
        member: |c| c.ends_with("_error_pct"),
        factor: |_| 1.0,
    },
    Family {
        title: "clustering (ACC %, NMI x 100)",
        member: |c| c.ends_with("_acc_pct") || c.ends_with("_nmi"),
        factor: |c| if c.ends_with("_nmi") { 100.0 } else { 1.0 },
    },
    Family {
        title: "learning rate",
        member: |c| c == "lr",
        factor: |_| 1.0,
    },
    Family {
        title: "examples / s",
        member: |c| c == "examples_per_s",
        factor: |_| 1.0,
    },
];

/// The title of the panel of every other column.
const LOSS_TITLE: &str = "training loss (nats)";

/// Whether column `name` is a clock reading rather than a metric.
fn is_clock(name: &str) -> bool {
    name.contains("time") || (name.ends_with("_s") && name != "examples_per_s")
}

/// `metrics.csv` as columns: the header's names and, per column, a cell per row.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    /// `cells[c][r]`: column c of data row r, `None` where empty.
    pub cells: Vec<Vec<Option<f64>>>,
}

impl Table {
    /// Read the CSV at `path`: a header and at least one row, every row as many cells as the
    /// header, every cell of a column that is plotted a number or empty (clock columns may
    /// hold anything).
    pub fn read(path: &Path) -> Result<Table> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header = lines
            .next()
            .ok_or_else(|| Error::data(path, "is empty: no header, no epochs"))?;
        let columns: Vec<String> = header.split(',').map(|c| c.trim().to_string()).collect();
        if !columns.iter().any(|c| c == "epoch") {
            return Err(Error::data(
                path,
                format!("has no epoch column (header: {header})"),
            ));
        }
        let mut cells = vec![Vec::new(); columns.len()];
        for (i, line) in lines.enumerate() {
            let row: Vec<&str> = line.split(',').collect();
            if row.len() != columns.len() {
                return Err(Error::data(
                    path,
                    format!(
                        "line {} has {} cells, the header {}",
                        i + 2,
                        row.len(),
                        columns.len()
                    ),
                ));
            }
            for ((name, cell), out) in columns.iter().zip(row).zip(&mut cells) {
                let cell = cell.trim();
                let value = match cell.parse::<f64>() {
                    Ok(v) => Some(v),
                    Err(_) if cell.is_empty() || is_clock(name) => None,
                    Err(_) => {
                        return Err(Error::data(
                            path,
                            format!("line {}: {name} {cell:?} is not a number", i + 2),
                        ))
                    }
                };
                out.push(value);
            }
        }
        if cells[0].is_empty() {
            return Err(Error::data(path, "holds a header but no epoch yet"));
        }
        Ok(Table { columns, cells })
    }

    /// The cells of column `name`.
    pub fn column(&self, name: &str) -> Option<&[Option<f64>]> {
        let i = self.columns.iter().position(|c| c == name)?;
        Some(&self.cells[i])
    }

    /// The panels to draw, in family order, each with its columns in header order; columns
    /// and panels without a value left out. Rows without an epoch are skipped.
    pub fn panels(&self) -> Vec<Panel> {
        let epochs = self.column("epoch").unwrap_or_default();
        let series = |name: &str, factor: f64| {
            let cells = self.column(name).unwrap_or_default();
            let points = epochs
                .iter()
                .zip(cells)
                .filter_map(|(e, v)| e.map(|e| (e, v.map(|v| v * factor))))
                .collect();
            Series {
                label: name.to_string(),
                points,
            }
        };
        let plotted = |c: &&String| c.as_str() != "epoch" && !is_clock(c);
        let family_of = |c: &str| FAMILIES.iter().position(|f| (f.member)(c));
        let mut panels = vec![Panel {
            title: LOSS_TITLE.to_string(),
            series: self
                .columns
                .iter()
                .filter(plotted)
                .filter(|c| family_of(c).is_none())
                .map(|c| series(c, 1.0))
                .collect(),
        }];
        panels.extend(FAMILIES.iter().enumerate().map(|(k, f)| {
            Panel {
                title: f.title.to_string(),
                series: self
                    .columns
                    .iter()
                    .filter(plotted)
                    .filter(|c| family_of(c) == Some(k))
                    .map(|c| series(c, (f.factor)(c)))
                    .collect(),
            }
        }));
        for p in &mut panels {
            p.series
                .retain(|s| s.points.iter().any(|(_, v)| v.is_some()));
        }
        panels.retain(|p| !p.series.is_empty());
        panels
    }
}

//! The layout of `ssvae plot`'s picture: a title, then the panels of [`super::series`] in a
//! grid two wide, each with its title, a legend of its curves, y ticks at "nice" values (1, 2
//! or 5 times a power of ten) with grid lines, epochs on the x axis, and every curve as an
//! anti-aliased polyline in its own colour (with a marker per epoch while there are few),
//! broken where a value is missing.

use super::canvas::{Canvas, Rgb};
use super::font;
use super::series::Panel;
use crate::Result;

/// Every text is drawn with font pixels of this size; the title twice as large.
const TEXT_SCALE: usize = 2;
const TITLE_SCALE: usize = 3;
/// Sizes in pixels.
const PANEL_W: usize = 600;
const PANEL_H: usize = 380;
const GAP: usize = 24;
const MARGIN: usize = 24;
const TITLE_H: usize = 64;
const PAD: i64 = 14;
/// Panels per row.
const COLUMNS: usize = 2;
/// Curves with at most this many points get a marker on each.
const MARKER_POINTS: usize = 40;

const BACKGROUND: Rgb = Rgb(244, 244, 246);
const PANEL: Rgb = Rgb::WHITE;
const FRAME: Rgb = Rgb(200, 200, 206);
const GRID: Rgb = Rgb(232, 232, 236);
const AXIS: Rgb = Rgb(90, 90, 96);
const INK: Rgb = Rgb(30, 30, 34);
const LABEL: Rgb = Rgb(80, 80, 86);
/// The curves' colours (Tableau's ten), in legend order.
const PALETTE: [Rgb; 10] = [
    Rgb(31, 119, 180),
    Rgb(255, 127, 14),
    Rgb(44, 160, 44),
    Rgb(214, 39, 40),
    Rgb(148, 103, 189),
    Rgb(140, 86, 75),
    Rgb(227, 119, 194),
    Rgb(127, 127, 127),
    Rgb(188, 189, 34),
    Rgb(23, 190, 207),
];

/// Text height and width in canvas pixels.
fn text_h(scale: usize) -> i64 {
    (font::HEIGHT * scale) as i64
}
fn text_w(s: &str, scale: usize) -> i64 {
    (font::text_width(s) * scale) as i64
}

/// The picture: `title` above `panels`.
pub fn render(title: &str, panels: &[Panel]) -> Result<Canvas> {
    let cols = panels.len().clamp(1, COLUMNS);
    let rows = panels.len().div_ceil(cols).max(1);
    let width = 2 * MARGIN + cols * PANEL_W + (cols - 1) * GAP;
    let height = TITLE_H + rows * PANEL_H + (rows - 1) * GAP + MARGIN;
    let mut c = Canvas::new(width, height, BACKGROUND)?;
    c.text(MARGIN as i64, 20, title, TITLE_SCALE, INK);
    for (i, p) in panels.iter().enumerate() {
        let x = MARGIN + (i % cols) * (PANEL_W + GAP);
        let y = TITLE_H + (i / cols) * (PANEL_H + GAP);
        draw_panel(&mut c, p, x as i64, y as i64);
    }
    Ok(c)
}

/// A rectangle: left, top, right, bottom.
#[derive(Clone, Copy)]
struct Frame {
    left: i64,
    top: i64,
    right: i64,
    bottom: i64,
}

/// One panel with its top-left corner at (x, y).
fn draw_panel(c: &mut Canvas, p: &Panel, x: i64, y: i64) {
    let (w, h) = (PANEL_W as i64, PANEL_H as i64);
    c.fill_rect(x, y, w, h, PANEL);
    c.stroke_rect(x, y, w, h, FRAME);
    c.text(x + PAD, y + PAD, &p.title, TEXT_SCALE, INK);
    let legend_top = y + PAD + text_h(TEXT_SCALE) + 10;
    let legend_bottom = draw_legend(c, p, x + PAD, legend_top, x + w - PAD);

    let values = p
        .series
        .iter()
        .flat_map(|s| s.points.iter().filter_map(|&(_, v)| v));
    let (lo, hi) = span(values).unwrap_or((0.0, 1.0));
    let y_axis = Axis::nice(lo, hi, 5);
    let epochs = p
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|&(e, _)| e));
    let (e0, e1) = span(epochs).unwrap_or((1.0, 1.0));
    let x_axis = Axis::epochs(e0, e1);

    let labels: Vec<String> = y_axis.ticks().map(|v| y_axis.label(v)).collect();
    let label_w = labels
        .iter()
        .map(|l| text_w(l, TEXT_SCALE))
        .max()
        .unwrap_or(0);
    let area = Frame {
        left: x + PAD + label_w + 10,
        top: legend_bottom + 12,
        right: x + w - PAD - 8,
        bottom: y + h - PAD - 2 * text_h(TEXT_SCALE) - 12,
    };
    let to_px = |e: f64, v: f64| {
        let fx = (e - x_axis.lo) / (x_axis.hi - x_axis.lo);
        let fy = (v - y_axis.lo) / (y_axis.hi - y_axis.lo);
        (
            area.left as f32 + fx as f32 * (area.right - area.left) as f32,
            area.bottom as f32 - fy as f32 * (area.bottom - area.top) as f32,
        )
    };

    // Grid lines and tick labels, then the axes over them.
    for (v, label) in y_axis.ticks().zip(&labels) {
        let py = to_px(x_axis.lo, v).1.round() as i64;
        c.fill_rect(area.left, py, area.right - area.left, 1, GRID);
        let tw = text_w(label, TEXT_SCALE);
        c.text(
            area.left - 8 - tw,
            py - text_h(TEXT_SCALE) / 2 + 2,
            label,
            TEXT_SCALE,
            LABEL,
        );
    }
    for e in x_axis.ticks() {
        let px = to_px(e, y_axis.lo).0.round() as i64;
        c.fill_rect(px, area.top, 1, area.bottom - area.top, GRID);
        c.fill_rect(px, area.bottom, 1, 5, AXIS);
        let label = x_axis.label(e);
        let tw = text_w(&label, TEXT_SCALE);
        c.text(px - tw / 2, area.bottom + 9, &label, TEXT_SCALE, LABEL);
    }
    c.fill_rect(area.left, area.top, 1, area.bottom - area.top + 1, AXIS);
    c.fill_rect(area.left, area.bottom, area.right - area.left + 1, 1, AXIS);
    let epoch_label = "epoch";
    c.text(
        (area.left + area.right - text_w(epoch_label, TEXT_SCALE)) / 2,
        area.bottom + 12 + text_h(TEXT_SCALE),
        epoch_label,
        TEXT_SCALE,
        LABEL,
    );

    // The first curves (the headline: `loss`, the test set) last, on top of the others.
    for (k, s) in p.series.iter().enumerate().rev() {
        let colour = PALETTE[k % PALETTE.len()];
        let markers = s.points.len() <= MARKER_POINTS;
        // Runs of consecutive values; a missing one breaks the curve.
        for run in s.points.split(|(_, v)| v.is_none()) {
            let pts: Vec<(f32, f32)> = run
                .iter()
                .filter_map(|&(e, v)| v.map(|v| to_px(e, v)))
                .collect();
            for pair in pts.windows(2) {
                c.line(pair[0], pair[1], 2.5, colour);
            }
            if markers || pts.len() == 1 {
                for &pt in &pts {
                    c.disc(pt, 3.5, colour);
                }
            }
        }
    }
}

/// The legend from (x, top), wrapping before `right`: a colour swatch and the label of each
/// curve. Returns its bottom.
fn draw_legend(c: &mut Canvas, p: &Panel, x: i64, top: i64, right: i64) -> i64 {
    let line_h = text_h(TEXT_SCALE) + 6;
    let (mut cx, mut cy) = (x, top);
    for (k, s) in p.series.iter().enumerate() {
        let item_w = 28 + text_w(&s.label, TEXT_SCALE) + 18;
        if cx > x && cx + item_w > right {
            cx = x;
            cy += line_h;
        }
        let colour = PALETTE[k % PALETTE.len()];
        let mid = cy as f32 + text_h(TEXT_SCALE) as f32 * 0.4;
        c.line((cx as f32 + 1.0, mid), (cx as f32 + 21.0, mid), 3.0, colour);
        c.text(cx + 28, cy, &s.label, TEXT_SCALE, INK);
        cx += item_w;
    }
    cy + text_h(TEXT_SCALE)
}

/// The smallest and largest of `values` (finite ones only), or None when there is none.
fn span(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// An axis: its range and the step between ticks (the range is a whole number of steps for
/// a value axis).
struct Axis {
    lo: f64,
    hi: f64,
    step: f64,
    /// The first tick.
    first: f64,
}

impl Axis {
    /// About `target` ticks over [lo, hi], at multiples of a nice step, the range widened to
    /// the ticks around it. A flat range (one value) is widened by 5% of it each side.
    fn nice(lo: f64, hi: f64, target: usize) -> Axis {
        let (lo, hi) = if hi > lo {
            (lo, hi)
        } else {
            let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.05 };
            (lo - pad, hi + pad)
        };
        let step = nice_step((hi - lo) / target as f64);
        let (lo, hi) = ((lo / step).floor() * step, (hi / step).ceil() * step);
        Axis {
            lo,
            hi,
            step,
            first: lo,
        }
    }

    /// The epoch axis from e0 to e1: whole-number ticks, a little room at both ends.
    fn epochs(e0: f64, e1: f64) -> Axis {
        let step = nice_step((e1 - e0) / 6.0).max(1.0);
        let pad = ((e1 - e0) * 0.03).max(0.5);
        Axis {
            lo: e0 - pad,
            hi: e1 + pad,
            step,
            first: (e0 / step).ceil() * step,
        }
    }

    /// The tick values, computed as multiples of the step (no drift from repeated sums).
    fn ticks(&self) -> impl Iterator<Item = f64> + '_ {
        let n = ((self.hi - self.first) / self.step + 1e-9).floor() as usize;
        (0..=n).map(|k| self.first + k as f64 * self.step)
    }

    /// A tick's label: fixed-point with as many decimals as the step needs, or scientific for
    /// steps below 0.001 or values of a million and more, with as many mantissa digits as tell
    /// the ticks apart.
    fn label(&self, v: f64) -> String {
        if v.abs() < self.step * 1e-9 {
            return "0".to_string();
        }
        let magnitude = self.lo.abs().max(self.hi.abs());
        if self.step >= 1e-3 && magnitude < 1e6 {
            let decimals = (-self.step.log10()).ceil().max(0.0) as usize;
            format!("{v:.decimals$}")
        } else {
            // Every mantissa has the decimals that reach the step's digit in the largest.
            let exponent = |x: f64| x.abs().log10().floor();
            let decimals = (exponent(magnitude) - exponent(self.step)).max(0.0) as usize;
            format!("{v:.decimals$e}")
        }
    }
}

/// The nice number (1, 2 or 5 times a power of ten) at or above `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw > 0.0 && raw.is_finite()) {
        return 1.0;
    }
    let power = 10f64.powf(raw.log10().floor());
    let mantissa = raw / power;
    let nice = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .find(|&m| m >= mantissa - 1e-9)
        .unwrap_or(10.0);
    nice * power
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps_and_ticks() {
        assert_eq!(nice_step(0.37), 0.5);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(10.0), 10.0);
        let a = Axis::nice(23.4, 31.2, 5);
        assert_eq!((a.lo, a.hi, a.step), (22.0, 32.0, 2.0));
        let t: Vec<String> = a.ticks().map(|v| a.label(v)).collect();
        assert_eq!(t, ["22", "24", "26", "28", "30", "32"]);
        let a = Axis::nice(0.0512, 0.3391, 5);
        let t: Vec<String> = a.ticks().map(|v| a.label(v)).collect();
        assert_eq!(t, ["0", "0.1", "0.2", "0.3", "0.4"]);
        // A flat learning rate: widened, labelled with the digits that tell ticks apart.
        let a = Axis::nice(1e-3, 1e-3, 5);
        let t: Vec<String> = a.ticks().map(|v| a.label(v)).collect();
        assert!(t.len() >= 3 && t.windows(2).all(|w| w[0] != w[1]), "{t:?}");
        assert!(t.iter().all(|l| l.contains('e')), "{t:?}");
        let e = Axis::epochs(1.0, 30.0);
        let t: Vec<f64> = e.ticks().collect();
        assert_eq!(t, [5.0, 10.0, 15.0, 20.0, 25.0, 30.0]);
        let t: Vec<f64> = Axis::epochs(1.0, 1.0).ticks().collect();
        assert_eq!(t, [1.0]);
    }
}

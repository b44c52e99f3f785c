//! SVG charts for run directories and sweeps: panels of named series over a shared kind of x
//! axis, drawn with `plotters`' SVG backend (pure Rust, no font or system library; text is laid
//! out by plotters' built-in estimate and rendered by the viewer).
//!
//! The crate knows nothing of training: a caller turns its figures into [`Panel`]s of
//! [`Series`] and gets SVG text back. Each series is drawn in its own colour of [`PALETTE`]:
//! a line through its points (one `<polyline>`), its points as dots, and a key in the legend,
//! which stands in a column right of the plot so that it never hides a point.
//!
//! ```
//! use mixtrain_plot::{Panel, Series, Style, chart};
//!
//! let panel = Panel {
//!     title: "accuracy".into(),
//!     x_label: "epoch".into(),
//!     y_label: "%".into(),
//!     series: vec![Series::new("val", Style::Line, vec![(1.0, 90.0), (2.0, 95.0)])],
//! };
//! let svg = chart(&[panel])?;
//! assert!(svg.starts_with("<svg"));
//! # Ok::<(), mixtrain_plot::PlotError>(())
//! ```

#![warn(missing_docs)]

use plotters::prelude::*;

/// The series' colours, in order (Tableau's ten); a panel with more series reuses them.
pub const PALETTE: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

/// Pixels per panel: width, height.
const PANEL_SIZE: (u32, u32) = (760, 300);

/// A chart that could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// plotters refused (a layout it cannot fit, a backend error).
    #[error("drawing {what}: {message}")]
    Draw {
        /// The panel being drawn.
        what: String,
        /// plotters' error.
        message: String,
    },
}

/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// A line through the points in order, with a dot at each.
    Line,
    /// Dots only (a scatter).
    Points,
}

/// One named curve or scatter: its points `(x, y)`; points with a non-finite coordinate are
/// left out.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The legend's name.
    pub name: String,
    /// How it is drawn.
    pub style: Style,
    /// The points, in drawing order.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A series of the finite points of `points`.
    pub fn new(name: impl Into<String>, style: Style, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.into(),
            style,
            points: points
                .into_iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect(),
        }
    }
}

/// One chart of several series on shared axes.
#[derive(Clone, Debug, PartialEq)]
pub struct Panel {
    /// The caption above the panel.
    pub title: String,
    /// The x axis' description.
    pub x_label: String,
    /// The y axis' description.
    pub y_label: String,
    /// The series; empty ones are left out (and get no colour).
    pub series: Vec<Series>,
}

/// The panels stacked top to bottom, as one SVG document.
pub fn chart(panels: &[Panel]) -> Result<String, PlotError> {
    let mut svg = String::new();
    {
        let height = PANEL_SIZE.1 * panels.len().max(1) as u32;
        let root = SVGBackend::with_string(&mut svg, (PANEL_SIZE.0, height)).into_drawing_area();
        let fail = |what: &str| {
            let what = what.to_string();
            move |e: DrawingAreaErrorKind<_>| PlotError::Draw {
                what: what.clone(),
                message: e.to_string(),
            }
        };
        root.fill(&WHITE).map_err(fail("the background"))?;
        let areas = root.split_evenly((panels.len().max(1), 1));
        for (area, panel) in areas.iter().zip(panels) {
            draw_panel(area, panel).map_err(fail(&panel.title))?;
        }
        root.present().map_err(fail("the document"))?;
    }
    Ok(svg)
}

/// `[lo, hi]` of the values, widened by 5% (by 0.5 when they are all equal) so that no point
/// sits on the frame.
fn range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let pad = if hi > lo { 0.05 * (hi - lo) } else { 0.5 };
    lo - pad..hi + pad
}

/// Pixels of a panel's right-hand column, where its legend stands clear of the data.
const LEGEND_WIDTH: u32 = 190;

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let drawn: Vec<&Series> = panel
        .series
        .iter()
        .filter(|s| !s.points.is_empty())
        .collect();
    let all = || drawn.iter().flat_map(|s| s.points.iter());
    let (plot, legend) = area.split_horizontally(PANEL_SIZE.0 - LEGEND_WIDTH);
    let mut chart = ChartBuilder::on(&plot)
        .caption(&panel.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(range(all().map(|p| p.0)), range(all().map(|p| p.1)))?;
    chart
        .configure_mesh()
        .x_desc(panel.x_label.as_str())
        .y_desc(panel.y_label.as_str())
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for (i, series) in drawn.iter().enumerate() {
        let (r, g, b) = PALETTE[i % PALETTE.len()];
        let colour = RGBColor(r, g, b);
        let dots = series
            .points
            .iter()
            .map(move |&p| Circle::new(p, 3, colour.filled()));
        chart.draw_series(dots)?;
        if series.style == Style::Line {
            chart.draw_series(LineSeries::new(
                series.points.iter().copied(),
                colour.stroke_width(2),
            ))?;
        }
        // the key: a swatch and the name, one row per series below the caption's height
        let y = 40 + 20 * i as i32;
        legend.draw(&Rectangle::new([(0, y), (14, y + 10)], colour.filled()))?;
        legend.draw(&Text::new(
            series.name.as_str(),
            (20, y - 1),
            ("sans-serif", 13).into_font(),
        ))?;
    }
    Ok(())
}

/// The points of `points` (`(x, y)`, larger is better in both) that no other point beats in
/// both coordinates, sorted by x: the Pareto front.
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut sorted: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    // by x descending, ties by y descending: a point is on the front when its y beats every y
    // before it
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.total_cmp(&a.1)));
    let mut front = Vec::new();
    let mut best = f64::NEG_INFINITY;
    for p in sorted {
        if p.1 > best {
            best = p.1;
            front.push(p);
        }
    }
    front.reverse();
    front
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stroke colours of the `<polyline>`s of `svg` drawn in a series colour (the axes and
    /// ticks are black polylines too), parsed as XML.
    fn polylines(svg: &str) -> Vec<String> {
        let doc = roxmltree::Document::parse(svg).expect("the chart is well-formed XML");
        let palette: Vec<String> = (0..PALETTE.len()).map(rgb).collect();
        doc.descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .filter_map(|n| n.attribute("stroke").map(str::to_string))
            .filter(|s| palette.iter().any(|p| p.eq_ignore_ascii_case(s)))
            .collect()
    }

    fn rgb(i: usize) -> String {
        let (r, g, b) = PALETTE[i];
        format!("#{r:02X}{g:02X}{b:02X}")
    }

    #[test]
    fn each_line_series_is_one_polyline_in_its_own_colour() {
        let line = |name: &str, ys: &[f64]| {
            let points = ys
                .iter()
                .enumerate()
                .map(|(i, &y)| (i as f64 + 1.0, y))
                .collect();
            Series::new(name, Style::Line, points)
        };
        let panels = [
            Panel {
                title: "accuracy".into(),
                x_label: "epoch".into(),
                y_label: "%".into(),
                series: vec![
                    line("train", &[90.0, 95.0, 97.0]),
                    line("val", &[89.0, 94.0, f64::NAN]),
                    line("empty", &[]),
                ],
            },
            Panel {
                title: "loss".into(),
                x_label: "epoch".into(),
                y_label: "loss".into(),
                series: vec![line("loss", &[0.5, 0.5, 0.5])],
            },
        ];
        let svg = chart(&panels).unwrap();
        let strokes = polylines(&svg);
        // train and val in the first panel's first two colours, loss in the second's first
        let count = |c: &str| strokes.iter().filter(|s| s.eq_ignore_ascii_case(c)).count();
        assert_eq!(count(&rgb(0)), 2, "{strokes:?}");
        assert_eq!(count(&rgb(1)), 1, "{strokes:?}");
        assert_eq!(strokes.len(), 3, "{strokes:?}");
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let texts: Vec<String> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text().map(|t| t.trim().to_string()))
            .collect();
        for label in ["accuracy", "loss", "train", "val", "epoch"] {
            assert!(texts.iter().any(|t| t == label), "{label} in {texts:?}");
        }
    }

    #[test]
    fn a_scatter_has_no_line_and_the_front_keeps_the_undominated_points() {
        let points = vec![
            (0.9, 0.5),
            (0.8, 0.7),
            (0.85, 0.6),
            (0.7, 0.65),
            (0.95, 0.2),
        ];
        let front = pareto_front(&points);
        assert_eq!(
            front,
            vec![(0.8, 0.7), (0.85, 0.6), (0.9, 0.5), (0.95, 0.2)]
        );
        let panel = Panel {
            title: "trials".into(),
            x_label: "clean".into(),
            y_label: "verified".into(),
            series: vec![Series::new("trials", Style::Points, points)],
        };
        let svg = chart(&[panel]).unwrap();
        assert!(polylines(&svg).is_empty());
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let dots = doc
            .descendants()
            .filter(|n| n.has_tag_name("circle"))
            .count();
        assert_eq!(dots, 5);
    }
}

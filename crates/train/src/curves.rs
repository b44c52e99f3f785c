//! Pictures of a run: `curves.svg` in the run directory, redrawn from `metrics.jsonl` after
//! every epoch, with three panels: accuracy (train and validation clean, validation verified),
//! the losses (the mixed loss, its natural and robust terms, the warm-up regulariser) and the
//! schedule (eps, alpha or the robust weight). The test split's per-epoch accuracy is left out
//! on purpose: the pictures are what recipes get chosen by.

use std::path::Path;

use mixtrain_nn::write_atomic;
use mixtrain_plot::{Panel, Series, Style, chart};
use serde_json::Value;

use crate::TrainError;

/// A series: its name, its field in `metrics.jsonl`, the factor drawn.
type Field = (&'static str, &'static str, f64);

/// The panels: `(title, y axis, series)`.
const PANELS: [(&str, &str, &[Field]); 3] = [
    (
        "accuracy",
        "%",
        &[
            ("train clean", "train_acc", 100.0),
            ("validation clean", "val_acc", 100.0),
            ("validation verified", "val_vra", 100.0),
        ],
    ),
    (
        "losses",
        "loss",
        &[
            ("mixed loss", "loss", 1.0),
            ("natural term", "natural_loss", 1.0),
            ("robust term", "robust_loss", 1.0),
            ("warm-up regulariser", "regularizer_loss", 1.0),
        ],
    ),
    (
        "schedule",
        "value",
        &[
            ("eps", "eps", 1.0),
            ("alpha", "alpha", 1.0),
            ("robust weight", "robust_weight", 1.0),
        ],
    ),
];

/// The panels of the epochs logged in `metrics` (one JSON object per line); a field an epoch
/// lacks is a gap in its series, and a series no epoch has is left out.
pub(crate) fn panels(metrics: &str) -> Vec<Panel> {
    let epochs: Vec<Value> = metrics
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    PANELS
        .iter()
        .map(|(title, y_label, fields)| Panel {
            title: title.to_string(),
            x_label: "epoch".into(),
            y_label: y_label.to_string(),
            series: fields
                .iter()
                .map(|(name, field, scale)| {
                    let points = epochs
                        .iter()
                        .filter_map(|e| Some((e["epoch"].as_f64()?, e[*field].as_f64()? * scale)))
                        .collect();
                    Series::new(*name, Style::Line, points)
                })
                .filter(|s| !s.points.is_empty())
                .collect(),
        })
        .collect()
}

/// Draws the curves of `metrics` (a `metrics.jsonl`) into `svg`, atomically.
pub(crate) fn write(metrics: &Path, svg: &Path) -> Result<(), TrainError> {
    let text = std::fs::read_to_string(metrics).map_err(TrainError::io(metrics))?;
    let drawn = chart(&panels(&text))
        .map_err(|e| TrainError::io(svg)(std::io::Error::other(e.to_string())))?;
    write_atomic(svg, drawn.as_bytes()).map_err(TrainError::io(svg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_logged_figure_is_a_series_and_absent_ones_are_left_out() {
        let metrics = r#"{"epoch":1,"eps":0.05,"alpha":0.5,"loss":1.0,"natural_loss":0.8,"train_acc":0.9,"val_acc":0.91}
{"epoch":2,"eps":0.1,"alpha":0.5,"loss":0.6,"natural_loss":0.4,"robust_loss":0.9,"train_acc":0.95,"val_acc":0.96,"val_vra":0.8}
"#;
        let panels = panels(metrics);
        let names: Vec<Vec<&str>> = panels
            .iter()
            .map(|p| p.series.iter().map(|s| s.name.as_str()).collect())
            .collect();
        assert_eq!(
            names,
            vec![
                vec!["train clean", "validation clean", "validation verified"],
                vec!["mixed loss", "natural term", "robust term"],
                vec!["eps", "alpha"],
            ]
        );
        assert_eq!(panels[0].series[2].points, vec![(2.0, 80.0)]);
        assert_eq!(panels[0].series[0].points, vec![(1.0, 90.0), (2.0, 95.0)]);
    }
}

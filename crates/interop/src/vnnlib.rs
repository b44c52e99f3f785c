//! VNN-LIB properties (the input language of VNN-COMP verifiers) and the competition's
//! `instances.csv`.
//!
//! A robustness property states the *counterexample* a verifier searches for: an input `X` in
//! the box and an output `Y` where some other class scores at least the label's. `unsat` means
//! the point is verified. Inputs are numbered in the ONNX input's row-major order (`c, h, w`),
//! outputs by class.

use std::fmt::Write;

/// The L_inf robustness property of one point: every input within `eps` of `x`, clipped to
/// `clip` (the input domain, `(0, 1)` for pixels), keeps `label` the strict arg-max of the
/// `classes` outputs.
#[derive(Clone, Debug)]
pub struct Robustness<'a> {
    /// The point, flattened in the network input's row-major order.
    pub x: &'a [f32],
    /// L_inf radius, in the units of `x` (pixels, before the network's normalisation).
    pub eps: f32,
    /// `(lower, upper)` bounds every input value is clipped to.
    pub clip: (f32, f32),
    /// The true class, whose output `Y_label` must stay the strict maximum.
    pub label: usize,
    /// Number of network outputs `Y_0 .. Y_{classes-1}`.
    pub classes: usize,
}

impl Robustness<'_> {
    /// The property in VNN-LIB; `comment` goes first, one `;` line per line of it.
    pub fn to_vnnlib(&self, comment: &str) -> String {
        let mut s = String::new();
        for line in comment.lines() {
            let _ = writeln!(s, "; {line}");
        }
        for i in 0..self.x.len() {
            let _ = writeln!(s, "(declare-const X_{i} Real)");
        }
        for j in 0..self.classes {
            let _ = writeln!(s, "(declare-const Y_{j} Real)");
        }
        let (lo, hi) = self.clip;
        for (i, v) in self.x.iter().enumerate() {
            let lower = (v - self.eps).max(lo);
            let upper = (v + self.eps).min(hi);
            let _ = writeln!(s, "(assert (<= X_{i} {upper}))");
            let _ = writeln!(s, "(assert (>= X_{i} {lower}))");
        }
        let _ = writeln!(s, "(assert (or");
        for j in (0..self.classes).filter(|&j| j != self.label) {
            let _ = writeln!(s, "    (and (>= Y_{j} Y_{}))", self.label);
        }
        let _ = writeln!(s, "))");
        s
    }
}

/// One VNN-COMP instance: a network, a property and a timeout in seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    /// Path of the ONNX network, relative to the benchmark directory.
    pub onnx: String,
    /// Path of the VNN-LIB property, relative to the benchmark directory.
    pub vnnlib: String,
    /// Time a verifier gets for this instance, in seconds.
    pub timeout_s: f64,
}

/// `instances.csv` in VNN-COMP's layout: `onnx,vnnlib,timeout` per line, paths relative to the
/// benchmark directory, no header.
pub fn instances_csv(instances: &[Instance]) -> String {
    instances
        .iter()
        .map(|i| format!("{},{},{}\n", i.onnx, i.vnnlib, i.timeout_s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_property_clips_the_box_and_lists_every_other_class() {
        let x = [0.0, 0.5, 1.0];
        let p = Robustness {
            x: &x,
            eps: 0.1,
            clip: (0.0, 1.0),
            label: 1,
            classes: 3,
        };
        let text = p.to_vnnlib("point 0\nlabel 1");
        assert!(text.starts_with("; point 0\n; label 1\n"));
        for line in [
            "(declare-const X_2 Real)",
            "(declare-const Y_2 Real)",
            "(assert (>= X_0 0))",
            "(assert (<= X_0 0.1))",
            "(assert (>= X_1 0.4))",
            "(assert (<= X_1 0.6))",
            "(assert (<= X_2 1))",
            "    (and (>= Y_0 Y_1))",
            "    (and (>= Y_2 Y_1))",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        assert!(!text.contains("(>= Y_1 Y_1)"));
        assert_eq!(text.matches('(').count(), text.matches(')').count());
    }

    #[test]
    fn instances_are_one_line_each() {
        let csv = instances_csv(&[Instance {
            onnx: "onnx/net.onnx".into(),
            vnnlib: "vnnlib/prop_0.vnnlib".into(),
            timeout_s: 60.0,
        }]);
        assert_eq!(csv, "onnx/net.onnx,vnnlib/prop_0.vnnlib,60\n");
    }
}

//! `cargo xtask gpu-report FILE`: the report `scripts/gpu-check.sh run` wrote on a GPU machine
//! (one JSON object per line), as the markdown docs/performance.md quotes: the GPU, what the
//! machine had, the parity verdicts, ours (cuda, wgpu) beside PyTorch on the same GPU with the
//! ratio, and every error with its message.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

/// The steps in the order the script runs them, with what each times.
const STEPS: [(&str, &str); 6] = [
    ("natural", "natural, one epoch"),
    ("ibp", "IBP, one epoch"),
    ("crown-ibp", "CROWN-IBP, one epoch"),
    (
        "mixtrain",
        "MixTrain k = 5, one epoch (PyTorch: auto_LiRPA CROWN on the 5)",
    ),
    ("verify-crown", "verify 10,000 test images, CROWN-IBP"),
    (
        "verify-alpha-crown",
        "verify 10,000 test images, alpha-CROWN",
    ),
];

pub fn report(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    markdown(&text).with_context(|| format!("reading {}", path.display()))
}

fn markdown(text: &str) -> Result<String> {
    let mut records = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let record: Value =
            serde_json::from_str(line).with_context(|| format!("line {}: not JSON", i + 1))?;
        records.push(record);
    }
    let of = |kind: &'static str| records.iter().filter(move |r| r["kind"] == kind);
    let text_of = |r: &Value, key: &str| r[key].as_str().unwrap_or("").to_string();
    let gpu = of("gpu")
        .next()
        .map(|r| text_of(r, "name"))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "no GPU named (nvidia-smi gave nothing)".into());
    let mut s = format!("GPU: {gpu}.");
    let env: Vec<String> = of("env")
        .map(|r| {
            let value = text_of(r, "value");
            let value = if value.is_empty() {
                "not found".into()
            } else {
                value
            };
            format!("{} {value}", text_of(r, "what"))
        })
        .collect();
    if !env.is_empty() {
        s += &format!(" Found: {}.", env.join("; "));
    }
    if let Some(seconds) = of("done").next().and_then(|r| r["seconds"].as_f64()) {
        s += &format!(" The run took {seconds:.0} s.");
    }
    s += "\n\n| backend | parity with the CPU | detail |\n|---|---|---|\n";
    for r in of("parity") {
        s += &format!(
            "| {} | {} | {} |\n",
            text_of(r, "backend"),
            text_of(r, "status"),
            text_of(r, "detail")
        );
    }

    // (step, side) -> seconds
    let mut times: BTreeMap<(String, String), f64> = BTreeMap::new();
    for r in of("time") {
        if let Some(seconds) = r["seconds"].as_f64() {
            times.insert((text_of(r, "step"), text_of(r, "side")), seconds);
        }
    }
    let cell = |step: &str, side: &str| times.get(&(step.to_string(), side.to_string())).copied();
    // our backends in the order the script ran them (cuda, wgpu; flex in a dry run)
    let mut ours: Vec<String> = Vec::new();
    for r in of("time").chain(of("error")) {
        let side = text_of(r, "side");
        if side != "pytorch" && !side.is_empty() && !ours.contains(&side) {
            ours.push(side);
        }
    }
    let head: Vec<String> = ours.iter().map(|b| format!("ours, {b}")).collect();
    let per: Vec<String> = ours.iter().map(|b| format!("{b} / PyTorch")).collect();
    s += &format!(
        "\n| step | {} | PyTorch | {} |\n|---|{}---|{}\n",
        head.join(" | "),
        per.join(" | "),
        "---|".repeat(ours.len()),
        "---|".repeat(ours.len())
    );
    for (step, label) in STEPS {
        let seconds = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2} s"));
        let torch = cell(step, "pytorch");
        let mine: Vec<String> = ours.iter().map(|b| seconds(cell(step, b))).collect();
        let ratios: Vec<String> = ours
            .iter()
            .map(|b| match (cell(step, b), torch) {
                (Some(o), Some(t)) => format!("{:.2}", o / t),
                _ => "-".into(),
            })
            .collect();
        s += &format!(
            "| {label} | {} | {} | {} |\n",
            mine.join(" | "),
            seconds(torch),
            ratios.join(" | ")
        );
    }
    let errors: Vec<String> = of("error")
        .map(|r| {
            let side = text_of(r, "side");
            let message = text_of(r, "message").replace('\n', " ");
            format!("- {} {}: {}", side, text_of(r, "step"), message.trim())
        })
        .collect();
    if !errors.is_empty() {
        s += &format!("\nErrors and skipped steps:\n{}\n", errors.join("\n"));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_canned_report_reads_as_the_tables_with_ratios_and_errors() {
        let canned = r#"{"kind": "gpu", "name": "NVIDIA H200"}
{"kind": "env", "what": "nvrtc", "value": "/usr/lib/python3/dist-packages/nvidia/cuda_nvrtc/lib"}
{"kind": "env", "what": "vulkan-icd", "value": ""}
{"kind": "parity", "backend": "wgpu", "status": "failed (101)", "detail": "backend parity: SKIPPED wgpu: wgpu: cannot open the default adapter"}
{"kind": "parity", "backend": "cuda", "status": "failed (101)", "detail": "backend parity: comparing cuda (NVIDIA H200) with ndarray"}
{"kind": "time", "side": "cuda", "step": "natural", "seconds": 3.0}
{"kind": "time", "side": "pytorch", "step": "natural", "seconds": 1.5, "device": "NVIDIA H200"}
{"kind": "error", "side": "wgpu", "step": "natural", "message": "error: wgpu: cannot open\nthe default adapter"}
{"kind": "time", "side": "cuda", "step": "verify-alpha-crown", "seconds": 12.25}
{"kind": "time", "side": "wgpu", "step": "ibp", "seconds": 8.0}

{"kind": "done", "seconds": 301.0}
"#;
        let md = markdown(canned).unwrap();
        assert!(md.starts_with("GPU: NVIDIA H200. Found: nvrtc /usr/lib/python3/dist-packages/nvidia/cuda_nvrtc/lib; vulkan-icd not found. The run took 301 s."), "{md}");
        for line in [
            "| cuda | failed (101) | backend parity: comparing cuda (NVIDIA H200) with ndarray |",
            "| step | ours, cuda | ours, wgpu | PyTorch | cuda / PyTorch | wgpu / PyTorch |\n|---|---|---|---|---|---|\n",
            "| natural, one epoch | 3.00 s | - | 1.50 s | 2.00 | - |",
            "| IBP, one epoch | - | 8.00 s | - | - | - |",
            "| CROWN-IBP, one epoch | - | - | - | - | - |",
            "| verify 10,000 test images, alpha-CROWN | 12.25 s | - | - | - | - |",
            "- wgpu natural: error: wgpu: cannot open the default adapter",
        ] {
            assert!(md.contains(line), "{line:?} not in:\n{md}");
        }
        let e = format!(
            "{:#}",
            markdown("{\"kind\": \"gpu\"}\nnot json\n").unwrap_err()
        );
        assert!(e.contains("line 2: not JSON"), "{e}");
    }
}

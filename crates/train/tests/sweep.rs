//! `sweep` end to end on real MNIST (a few hundred images): it never loads the test split (this
//! file is its own process, so the split counter sees only what these tests do), its table and
//! pictures hold one row and one series per trial, a killed sweep resumes without re-running
//! finished trials, and the budget stops new trials. Only `evaluate_run` reads the test split.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use mixtrain_data::{DataDir, Split, split_loads};
use mixtrain_train::{RunOptions, SweepSpec, evaluate_run, sweep};

/// One test at a time: the split counter is per process.
static SERIAL: Mutex<()> = Mutex::new(());

fn opts(out: &Path) -> RunOptions {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mirror = std::env::var_os("MIXTRAIN_MIRROR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../../../shared/datasets"));
    RunOptions {
        out: out.into(),
        resume: false,
        data: DataDir::new(root.join("../../target/test-data")),
        mirror: Some(mirror).filter(|m| m.is_dir()),
        quiet: true,
        validation_only: true,
    }
}

fn spec(budget_minutes: f64) -> SweepSpec {
    let text = format!(
        r#"
preset = "mnist-mixtrain"
budget_minutes = {budget_minutes}
[set]
method = "ibp"
epochs = 2
train_limit = 600
val_size = 100
test_limit = 100
"eps_schedule.ramp_epochs" = 1.0
"final_eval.domain" = "interval"
"final_eval.pgd_steps" = 2
[grid]
"dmt.alpha" = [0.3, 0.7]
"#
    );
    toml::from_str(&text).unwrap()
}

/// The series lines (`<polyline>`s in a colour: axes and ticks are black) and the dots
/// (`<circle>`s) of an SVG file, parsed as XML.
fn shapes(path: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let lines = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .filter(|n| n.attribute("stroke").is_some_and(|s| s != "#000000"))
        .count();
    let dots = doc
        .descendants()
        .filter(|n| n.has_tag_name("circle"))
        .count();
    (lines, dots)
}

#[test]
fn a_sweep_chooses_on_validation_alone_and_resumes() {
    let _serial = SERIAL.lock().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep");
    let (train_before, test_before) = (split_loads(Split::Train), split_loads(Split::Test));
    let summary = sweep(&spec(600.0), &out, &opts(&out)).unwrap();
    assert!(
        split_loads(Split::Train) > train_before,
        "the trials trained"
    );
    assert_eq!(
        split_loads(Split::Test),
        test_before,
        "a sweep never loads the test split"
    );

    assert_eq!(summary.trials.len(), 2);
    assert!(
        summary.trials.iter().all(|t| t.status == "done"),
        "{:?}",
        summary.trials
    );
    let chosen = summary.chosen.unwrap();
    let best = summary
        .trials
        .iter()
        .map(|t| t.val_vra.unwrap())
        .fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(summary.trials[chosen - 1].val_vra, Some(best));
    let csv = std::fs::read_to_string(out.join("trials.csv")).unwrap();
    assert_eq!(
        csv.lines().count(),
        3,
        "a header and one row per trial:\n{csv}"
    );
    assert!(csv.starts_with("trial,dmt.alpha,status"), "{csv}");
    let md = std::fs::read_to_string(out.join("trials.md")).unwrap();
    assert_eq!(md.lines().count(), 4, "{md}");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("pareto.svg") && report.contains("time.svg"),
        "{report}"
    );
    assert!(report.contains("mixtrain eval") && report.contains("has not been read"));
    // a dot per trial and per point of the front, and the front's line; one curve per trial;
    // each run's curves: three accuracies, three losses, eps and alpha
    let points: Vec<(f64, f64)> = summary
        .trials
        .iter()
        .map(|t| (100.0 * t.val_acc.unwrap(), 100.0 * t.val_vra.unwrap()))
        .collect();
    let front = mixtrain_plot::pareto_front(&points);
    let (lines, dots) = shapes(&out.join("pareto.svg"));
    assert_eq!(dots, 2 + front.len());
    assert_eq!(lines, 1);
    assert_eq!(shapes(&out.join("time.svg")).0, 2);
    let trial = summary.chosen_dir.clone().unwrap();
    assert_eq!(shapes(&trial.join("curves.svg")).0, 8);
    assert!(!trial.join("final.json").exists());

    // killed after the second trial trained but before it was recorded: resuming keeps the
    // first and finishes the second from its checkpoint, without another epoch
    let second = out.join("trials/002");
    std::fs::remove_file(second.join("trial.json")).unwrap();
    std::fs::remove_file(second.join("summary.json")).unwrap();
    let first = std::fs::read_to_string(out.join("trials/001/trial.json")).unwrap();
    let resumed = sweep(
        &spec(600.0),
        &out,
        &RunOptions {
            resume: true,
            ..opts(&out)
        },
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(out.join("trials/001/trial.json")).unwrap(),
        first
    );
    let metrics = std::fs::read_to_string(second.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 2, "no epoch trained twice");
    let values = |s: &mixtrain_train::SweepSummary| -> Vec<_> {
        s.trials
            .iter()
            .map(|t| (t.values.clone(), t.val_vra))
            .collect()
    };
    assert_eq!(values(&resumed), values(&summary));
    assert_eq!(split_loads(Split::Test), test_before);
    // another spec does not resume this sweep (another budget may)
    let mut other = spec(600.0);
    other
        .grid
        .insert("dmt.alpha".into(), vec![toml::Value::Float(0.5)]);
    let e = sweep(
        &other,
        &out,
        &RunOptions {
            resume: true,
            ..opts(&out)
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("same sweep"), "{e}");

    // the one reading of the test split: the chosen run's final evaluation
    let eval = evaluate_run(&trial, &opts(&trial)).unwrap();
    assert_eq!(split_loads(Split::Test), test_before + 1);
    assert!(eval.clean_acc > 0.0 && trial.join("final.json").is_file());
}

#[test]
fn the_budget_stops_new_trials() {
    let _serial = SERIAL.lock().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep");
    let summary = sweep(&spec(1e-6), &out, &opts(&out)).unwrap();
    let status: Vec<&str> = summary.trials.iter().map(|t| t.status.as_str()).collect();
    assert_eq!(status, ["done", "skipped (budget)"]);
    assert_eq!(summary.chosen, Some(1));
}

#[test]
fn the_shipped_sweeps_parse_and_name_real_fields() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sweeps");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        // every trial's config is built and checked by from_file
        let spec = SweepSpec::from_file(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        assert!(!spec.trials().is_empty(), "{path:?}");
        n += 1;
    }
    assert!(n > 0);
}

#[test]
fn a_list_search_runs_each_entry_and_gives_the_minutes_to_each_reach() {
    let _serial = SERIAL.lock().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep");
    let text = r#"
preset = "mnist-mixtrain"
search = "list"
budget_minutes = 600
reach = [0, 100]
[set]
method = "ibp"
train_limit = 600
val_size = 100
"eps_schedule.ramp_epochs" = 1.0
[[list]]
epochs = 1
[[list]]
epochs = 2
"dmt.alpha" = 0.7
"dmt.policy" = "fixed"
"#;
    let spec: SweepSpec = toml::from_str(text).unwrap();
    let summary = sweep(&spec, &out, &opts(&out)).unwrap();
    let epochs: Vec<usize> = summary.trials.iter().map(|t| t.curve.len()).collect();
    assert_eq!(epochs, [1, 2], "each entry's own epochs");
    assert_eq!(summary.trials[1].values["dmt.alpha"], "0.7");
    let table = std::fs::read_to_string(out.join("trials.md")).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].contains("dmt.alpha | dmt.policy | epochs |")
            && lines[0].contains("minutes to 0% | minutes to 100% | chosen"),
        "{table}"
    );
    // a string value as its reader wrote it, not in TOML's quotes
    assert!(lines[3].contains("| 0.7 | fixed | 2 |"), "{table}");
    // every trial reaches 0% at its first epoch, and none 100%: an empty cell
    for (line, trial) in lines[2..].iter().zip(&summary.trials) {
        let cells: Vec<&str> = line.split(" | ").collect();
        let first = format!("{:.1}", trial.curve[0].0);
        assert_eq!(cells[cells.len() - 3], first, "{line}");
        assert_eq!(cells[cells.len() - 2], "", "{line}");
    }
    // a list with a grid, an empty list, a reach that is no percentage: refused by name
    for (bad, needle) in [
        ("[grid]\n\"k\" = [1]\n", "no grid"),
        ("", "[[list]]"),
        ("reach = [150]\n[[list]]\nepochs = 1\n", "reach 150"),
    ] {
        let text =
            format!("preset = \"mnist-mixtrain\"\nsearch = \"list\"\nbudget_minutes = 1\n{bad}");
        let e = toml::from_str::<SweepSpec>(&text)
            .map_err(|e| e.to_string())
            .and_then(|s| s.base("spec").map_err(|e| e.to_string()))
            .unwrap_err();
        assert!(e.contains(needle), "{bad}: {e}");
    }
}

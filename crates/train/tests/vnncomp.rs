//! VNN-COMP instances end to end on 2022's `mnist_fc`: known answers, a counterexample that
//! an independent forward pass confirms, a run that resumes, and the comparison with the
//! entrants' results.

use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, TensorData};
use mixtrain_interop::{read_onnx, read_vnnlib};
use mixtrain_nn::Backend;
use mixtrain_train::{
    BenchmarkRun, VnnResult, VnnSettings, compare, read_results, run_benchmark, run_instance,
};

fn benchmark() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/benchmarks/vnncomp2022/mnist_fc");
    assert!(
        dir.is_dir(),
        "{}: the VNN-COMP benchmark is missing",
        dir.display()
    );
    dir
}

fn files(net: &str, prop: &str) -> (PathBuf, PathBuf) {
    let b = benchmark();
    (
        b.join(format!("onnx/mnist-net_{net}.onnx.gz")),
        b.join(format!("vnnlib/{prop}.vnnlib.gz")),
    )
}

/// The counterexample of a result file, `((X_0 v) ... (Y_0 v))`, as `(xs, ys)`.
fn parse_counterexample(text: &str) -> (Vec<f64>, Vec<f64>) {
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for item in text.lines().skip(1) {
        let item = item.trim().trim_start_matches('(').trim_end_matches(')');
        let (name, value) = item.split_once(' ').unwrap();
        let v: f64 = value.trim_end_matches(')').parse().unwrap();
        match name.as_bytes()[0] {
            b'X' => xs.push(v),
            _ => ys.push(v),
        }
    }
    (xs, ys)
}

#[test]
fn known_instances_get_their_answers_and_a_counterexample_that_holds() {
    let device = Backend::Flex.device(None).unwrap();
    let settings = VnnSettings::default();
    // every entrant answered: prop_0 unsat, prop_1 sat (256x2, eps 0.03)
    let (net, prop) = files("256x2", "prop_0_0.03");
    let unsat = run_instance(&net, &prop, 60.0, &settings, &device).unwrap();
    assert_eq!(unsat.result, VnnResult::Unsat);
    let (net, prop) = files("256x2", "prop_1_0.03");
    let sat = run_instance(&net, &prop, 60.0, &settings, &device).unwrap();
    let text = sat.result.to_result_file();
    assert!(text.starts_with("sat\n((X_0 "), "{text}");
    let (xs, ys) = parse_counterexample(&text);
    assert_eq!((xs.len(), ys.len()), (784, 10));
    // checked again here: in the box, and the network's outputs there meet the property
    let property = read_vnnlib(&prop).unwrap();
    let region = &property.regions[0];
    assert!(region.contains(&xs, 0.0));
    let network = read_onnx(&net, &device).unwrap();
    let x: Vec<f32> = xs.iter().map(|v| *v as f32).collect();
    let y: Vec<f32> = network
        .forward(Tensor::from_data(
            TensorData::new(x, [1, 1, 784, 1]),
            &device,
        ))
        .into_data()
        .try_to_vec()
        .unwrap();
    let y: Vec<f64> = y.iter().map(|v| f64::from(*v)).collect();
    assert!(region.violated_by(&y), "{y:?}");
    for (a, b) in y.iter().zip(&ys) {
        assert!(
            (a - b).abs() < 1e-6,
            "the file's Y differ from the forward pass: {a} vs {b}"
        );
    }
}

#[test]
fn a_benchmark_run_resumes_and_agrees_with_the_entrants() {
    let device = Backend::Flex.device(None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let b = benchmark();
    let csv = dir.path().join("instances.csv");
    let rows: String = ["prop_0_0.03", "prop_1_0.03", "prop_2_0.05"]
        .iter()
        .map(|p| {
            format!(
                "{},{},60\n",
                b.join("onnx/mnist-net_256x2.onnx").display(),
                b.join(format!("vnnlib/{p}.vnnlib")).display()
            )
        })
        .collect();
    std::fs::write(&csv, rows).unwrap();
    let out = dir.path().join("results.csv");
    let run = |progress: &mut dyn FnMut(usize, &_, &_)| {
        run_benchmark(
            &csv,
            BenchmarkRun {
                benchmark: "mnist_fc",
                out: &out,
                timeout_cap: Some(30.0),
                progress,
            },
            &VnnSettings::default(),
            &device,
        )
        .unwrap()
    };
    let first = run(&mut |_, _, _| {});
    assert_eq!(first.len(), 3);
    let again = run(&mut |_, _, _| panic!("every instance is in the results already"));
    assert!(again.is_empty());
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        dir.path()
            .join("mnist-net_256x2_prop_1_0.03.counterexample")
            .is_file()
    );

    let tools = std::fs::read_dir(b.join("results"))
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let tool = path.file_stem().unwrap().to_str().unwrap().to_string();
            (tool, read_results(&path).unwrap())
        })
        .collect();
    let comparison = compare(&read_results(&out).unwrap(), &tools, Some(&csv)).unwrap();
    for i in &comparison.instances {
        assert_eq!(i.verdict(), "agrees", "{:?}", i.key);
    }
    let (ours, by_tool) = comparison.summaries();
    assert_eq!((ours.sat + ours.unsat, ours.contradictions), (3, 0));
    assert_eq!(by_tool.len(), 10);
    assert!(
        comparison
            .to_markdown()
            .contains("| mnist-net_256x2 | prop_1_0.03 | sat |")
    );
}

#[test]
fn a_property_that_does_not_fit_the_network_is_refused() {
    let device = Backend::Flex.device(None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let prop = dir.path().join("small.vnnlib");
    std::fs::write(
        &prop,
        "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n\
         (assert (<= X_0 1))\n(assert (>= X_0 0))\n(assert (>= Y_1 Y_0))\n",
    )
    .unwrap();
    let (net, _) = files("256x2", "prop_0_0.03");
    let e = run_instance(&net, &prop, 10.0, &VnnSettings::default(), &device)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("small.vnnlib") && e.contains("1 inputs and 2 outputs"),
        "{e}"
    );
}

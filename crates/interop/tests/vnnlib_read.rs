//! VNN-LIB read: every property VNN-COMP 2022's `mnist_fc` ships, our own export read back,
//! and a property folded into a network's last layer computing the constraints' slacks.

use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, TensorData};
use mixtrain_interop::{Robustness, parse_vnnlib, read_onnx, read_vnnlib};
use mixtrain_nn::{Backend, Network};
use rand::{Rng, SeedableRng};

mod common;
use common::benchmark;

#[test]
fn every_mnist_fc_property_is_a_robustness_property_of_its_label() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(benchmark().join("vnnlib"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 30);
    for file in files {
        let name = file.file_name().unwrap().to_str().unwrap().to_string();
        // prop_<i>_<eps>.vnnlib.gz
        let eps: f64 = name
            .split('_')
            .nth(2)
            .unwrap()
            .trim_end_matches(".vnnlib.gz")
            .parse()
            .unwrap();
        let p = read_vnnlib(&file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (p.inputs, p.outputs, p.regions.len()),
            (784, 10, 1),
            "{name}"
        );
        let region = &p.regions[0];
        let (label, others) = region.robustness().unwrap_or_else(|| panic!("{name}"));
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(std::fs::File::open(&file).unwrap()),
            &mut text,
        )
        .unwrap();
        assert!(
            text.starts_with(&format!("; Mnist property with label: {label}.")),
            "{name}"
        );
        let want: Vec<usize> = (0..10).filter(|&j| j != label).collect();
        assert_eq!(others, want, "{name}");
        for (l, u) in region.lower.iter().zip(&region.upper) {
            assert!(
                *l >= 0.0 && *u <= 1.0 && u - l <= 2.0 * eps + 1e-6 && l <= u,
                "{name}"
            );
        }
    }
}

#[test]
fn our_export_reads_back_as_the_same_box_and_label() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let x: Vec<f32> = (0..12).map(|_| rng.random()).collect();
    let property = Robustness {
        x: &x,
        eps: 0.1,
        clip: (0.0, 1.0),
        label: 3,
        classes: 5,
    };
    let p = parse_vnnlib(&property.to_vnnlib("ours"), Path::new("ours.vnnlib")).unwrap();
    assert_eq!((p.inputs, p.outputs, p.regions.len()), (12, 5, 1));
    let r = &p.regions[0];
    assert_eq!(r.robustness(), Some((3, vec![0, 1, 2, 4])));
    for (i, v) in x.iter().enumerate() {
        let (l, u) = ((v - 0.1).max(0.0), (v + 0.1).min(1.0));
        assert!(
            (r.lower[i] - f64::from(l)).abs() < 1e-6 && (r.upper[i] - f64::from(u)).abs() < 1e-6
        );
    }
}

/// The last layer of `mnist-net_256x2` with a property folded in computes, at points of the
/// box, `z_0 - z_{1+r}` = the slack of constraint `r` at the network's own outputs.
#[test]
fn a_folded_property_computes_the_constraints_slacks() {
    let device = Backend::Flex.device(None).unwrap();
    let dir = benchmark();
    let net = read_onnx(&dir.join("onnx/mnist-net_256x2.onnx.gz"), &device).unwrap();
    let mut text = String::from("(declare-const X_0 Real)\n");
    for i in 1..784 {
        text.push_str(&format!("(declare-const X_{i} Real)\n"));
    }
    for j in 0..10 {
        text.push_str(&format!("(declare-const Y_{j} Real)\n"));
    }
    for i in 0..784 {
        text.push_str(&format!(
            "(assert (>= X_{i} 0.2))\n(assert (<= X_{i} 0.3))\n"
        ));
    }
    text.push_str(
        "(assert (or (and (>= Y_0 Y_4) (<= (- Y_1 (* 0.5 Y_2)) 0.25)) (and (>= (+ Y_3 Y_9) 1.5))))",
    );
    let property = parse_vnnlib(&text, Path::new("mixed.vnnlib")).unwrap();
    let region = &property.regions[0];
    let (rows, _) = region.rows();
    let spec = region.spec_network(&net, &device).unwrap();
    assert_eq!(spec.architecture().classes, 1 + rows.len());
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let x: Vec<f32> = (0..4 * 784).map(|_| rng.random_range(0.2..0.3)).collect();
    let forward = |net: &Network| -> Vec<f32> {
        net.forward(Tensor::from_data(
            TensorData::new(x.clone(), [4, 1, 784, 1]),
            &device,
        ))
        .into_data()
        .try_to_vec()
        .unwrap()
    };
    let (y, z) = (forward(&net), forward(&spec));
    for p in 0..4 {
        let y: Vec<f64> = y[p * 10..(p + 1) * 10]
            .iter()
            .map(|v| f64::from(*v))
            .collect();
        let z = &z[p * (1 + rows.len())..(p + 1) * (1 + rows.len())];
        for (r, row) in rows.iter().enumerate() {
            let margin = f64::from(z[0] - z[1 + r]);
            assert!(
                (margin - row.value(&y)).abs() < 1e-4,
                "point {p}, row {r}: {margin} vs {}",
                row.value(&y)
            );
        }
    }
}

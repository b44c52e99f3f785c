//! Writes a network as ONNX and one robustness property as VNN-LIB, in the layout of a
//! VNN-COMP benchmark, ready for an external verifier such as alpha-beta-CROWN.
//!
//! ```text
//! cargo run -p mixtrain-interop --example export -- [OUT] [WEIGHTS]
//! ```
//!
//! `OUT` is the benchmark directory (default: a fresh one under the system's temporary
//! directory), `WEIGHTS` a PyTorch-layout safetensors file of `mnist_small` (default: a seeded,
//! untrained network). The property is robustness at eps 0.1 around a mid-grey image, for the
//! class the network gives it. `mixtrain export-spec` does the same for real test images.

use std::path::PathBuf;

use burn::tensor::Tensor;
use mixtrain_interop::{Instance, Robustness, instances_csv, to_onnx};
use mixtrain_nn::{Backend, Network, zoo};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = args.next().map_or_else(
        || std::env::temp_dir().join(format!("mixtrain-export-{}", std::process::id())),
        PathBuf::from,
    );
    let weights = args.next();

    let device = Backend::Flex.device(None)?;
    let arch = zoo::architecture("mnist_small")?;
    let net = match &weights {
        Some(path) => Network::load_weights(&arch, path.as_ref(), &device)?,
        None => Network::init(&arch, 0, &device)?,
    };

    let [c, h, w] = arch.input;
    let image = vec![0.5f32; c * h * w];
    let x = Tensor::<4>::full([1, c, h, w], 0.5, &device);
    let label: i64 = net.forward(x).argmax(1).into_scalar();
    let label = label as usize;

    std::fs::create_dir_all(out.join("onnx"))?;
    std::fs::create_dir_all(out.join("vnnlib"))?;
    std::fs::write(out.join("onnx/mnist_small.onnx"), to_onnx(&net))?;
    let property = Robustness {
        x: &image,
        eps: 0.1,
        clip: (0.0, 1.0),
        label,
        classes: arch.classes,
    };
    let vnnlib = property.to_vnnlib("mid-grey image, eps 0.1");
    std::fs::write(out.join("vnnlib/grey_eps0.1.vnnlib"), &vnnlib)?;
    let instances = [Instance {
        onnx: "onnx/mnist_small.onnx".into(),
        vnnlib: "vnnlib/grey_eps0.1.vnnlib".into(),
        timeout_s: 60.0,
    }];
    std::fs::write(out.join("instances.csv"), instances_csv(&instances))?;

    println!("{}:", out.display());
    for file in [
        "onnx/mnist_small.onnx",
        "vnnlib/grey_eps0.1.vnnlib",
        "instances.csv",
    ] {
        println!(
            "  {file} ({} bytes)",
            std::fs::metadata(out.join(file))?.len()
        );
    }
    print!("instances.csv: {}", instances_csv(&instances));
    println!("property (label {label}), its last lines:");
    let lines: Vec<&str> = vnnlib.lines().collect();
    for line in &lines[lines.len() - 4..] {
        println!("  {line}");
    }
    Ok(())
}

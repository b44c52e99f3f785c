//! `mixtrain export` and `mixtrain export-spec`: networks and properties for other tools.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::tensor::{Tensor, TensorData};
use clap::Args;
use mixtrain_interop::{Instance, Robustness, instances_csv, to_onnx};
use mixtrain_nn::{Backend, Network, write_atomic, zoo};

use crate::TestArgs;

#[derive(Args)]
pub struct ExportArgs {
    /// A model of the zoo.
    #[arg(long)]
    model: String,
    /// Weights in PyTorch layout, safetensors or a legacy `.pth` (by layer name or
    /// nn.Sequential index).
    #[arg(long)]
    weights: PathBuf,
    /// safetensors-torch (PyTorch layout, layer names) or onnx (opset 13).
    #[arg(long)]
    format: String,
    /// The file to write.
    #[arg(long)]
    out: PathBuf,
}

pub fn export(args: ExportArgs) -> Result<()> {
    let device = Backend::Flex.device(None)?;
    let arch = zoo::architecture(&args.model)?;
    let net = Network::load_weights(&arch, &args.weights, &device)?;
    match args.format.as_str() {
        "safetensors-torch" => net.save_safetensors(&args.out)?,
        "onnx" => write_atomic(&args.out, &to_onnx(&net))
            .with_context(|| format!("writing {}", args.out.display()))?,
        other => bail!("--format {other:?}: expected safetensors-torch or onnx"),
    }
    println!(
        "{} ({}) written to {}",
        args.model,
        args.format,
        args.out.display()
    );
    Ok(())
}

#[derive(Args)]
pub struct ExportSpecArgs {
    /// The network, and the test images whose properties are written: the correctly
    /// classified ones among the first `--limit`.
    #[command(flatten)]
    test: TestArgs,
    /// L_inf radius in pixel units (`[0, 1]`).
    #[arg(long)]
    eps: f32,
    /// Seconds a verifier gets per instance (instances.csv).
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// The benchmark directory: onnx/, vnnlib/ and instances.csv.
    #[arg(long)]
    out: PathBuf,
}

/// A VNN-COMP benchmark directory: the network as ONNX (normalisation inside, so that boxes
/// are in pixel space, clipped to `[0, 1]`), one robustness property per correctly classified
/// test image (misclassified ones have a trivial counterexample and are skipped, as in
/// VNN-COMP's benchmarks), and instances.csv.
pub fn export_spec(args: ExportSpecArgs) -> Result<()> {
    if !(args.eps >= 0.0 && args.eps.is_finite()) {
        bail!("--eps {}: a radius >= 0", args.eps);
    }
    let (_, device, net, set) = args.test.load()?;
    let arch = net.architecture();
    let dataset = &args.test.dataset;
    for sub in ["onnx", "vnnlib"] {
        std::fs::create_dir_all(args.out.join(sub))
            .with_context(|| format!("creating {}", args.out.join(sub).display()))?;
    }
    let onnx = format!("onnx/{}.onnx", arch.name);
    write_atomic(&args.out.join(&onnx), &to_onnx(&net))
        .with_context(|| format!("writing {}", args.out.join(&onnx).display()))?;

    let mut instances = Vec::new();
    let mut skipped = 0;
    let mut index = 0;
    for batch in set.batches(100, None) {
        let n = batch.len();
        let dims = batch.dims();
        let x = Tensor::<4>::from_data(TensorData::new(batch.pixels.clone(), dims), &device);
        let predicted: Vec<i64> = net
            .forward(x)
            .argmax(1)
            .into_data()
            .convert::<i64>()
            .try_to_vec()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let images = batch.pixels.chunks_exact(batch.pixels.len() / n);
        for ((image, &label), &predicted) in images.zip(&batch.labels).zip(&predicted) {
            let label = label as usize;
            if predicted as usize != label {
                skipped += 1;
            } else {
                let name = format!("vnnlib/{dataset}_{index}_eps{}.vnnlib", args.eps);
                let property = Robustness {
                    x: image,
                    eps: args.eps,
                    clip: (0.0, 1.0),
                    label,
                    classes: arch.classes,
                };
                let comment = format!(
                    "mixtrain-rs: L_inf robustness of {} test image {index} (label {label}) at eps {}, \
                     network {}; unsat = verified",
                    dataset, args.eps, arch.name
                );
                write_atomic(
                    &args.out.join(&name),
                    property.to_vnnlib(&comment).as_bytes(),
                )
                .with_context(|| format!("writing {}", args.out.join(&name).display()))?;
                instances.push(Instance {
                    onnx: onnx.clone(),
                    vnnlib: name,
                    timeout_s: args.timeout,
                });
            }
            index += 1;
        }
    }
    let csv = args.out.join("instances.csv");
    write_atomic(&csv, instances_csv(&instances).as_bytes())
        .with_context(|| format!("writing {}", csv.display()))?;
    println!(
        "{} properties ({} misclassified test images skipped), {onnx} and instances.csv in {}",
        instances.len(),
        skipped,
        args.out.display()
    );
    Ok(())
}

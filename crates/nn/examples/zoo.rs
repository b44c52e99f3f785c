//! Builds every network of the model zoo, runs it, and round-trips its weights through the
//! PyTorch-layout safetensors file that `mixtrain` writes and reads.
//!
//! ```text
//! cargo run -p mixtrain-nn --example zoo
//! ```

use burn::module::Module;
use burn::tensor::Tensor;
use mixtrain_nn::{Backend, Network, zoo};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = Backend::Flex.device(None)?;
    let dir = std::env::temp_dir().join(format!("mixtrain-zoo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    for name in zoo::NAMES {
        let arch = zoo::architecture(name)?;
        let net = Network::init(&arch, 7, &device)?;
        let [c, h, w] = arch.input;
        let x = Tensor::<4>::full([2, c, h, w], 0.5, &device);
        let logits = net.forward(x.clone());

        let path = dir.join(format!("{name}.safetensors"));
        net.save_safetensors(&path)?;
        let back = Network::load_safetensors(&arch, &path, &device)?;
        let gap: f32 = (back.forward(x) - logits.clone()).abs().max().into_scalar();
        if gap != 0.0 {
            return Err(format!("{name}: reloaded weights change the logits by {gap}").into());
        }
        println!(
            "{name:>20}: input {c}x{h}x{w}, {:>2} layers, {:>10} parameters, logits {:?}, \
             safetensors round trip exact",
            arch.layers.len(),
            net.num_params(),
            logits.dims(),
        );
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

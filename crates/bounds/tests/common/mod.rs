//! What the branch and bound tests share.

use mixtrain_nn::{Architecture, Backend, LayerSpec, Network};

/// A fully connected ReLU network on `inputs` values (`[1, 1, inputs]`), seeded: `widths`
/// hidden layers, then `classes` outputs.
pub fn mlp(seed: u64, inputs: usize, widths: &[usize], classes: usize) -> Network {
    let mut layers = vec![LayerSpec::Flatten];
    let mut d_in = inputs;
    for (i, &d) in widths.iter().enumerate() {
        layers.push(LayerSpec::Linear {
            name: format!("fc{i}"),
            in_features: d_in,
            out_features: d,
        });
        layers.push(LayerSpec::Relu);
        d_in = d;
    }
    layers.push(LayerSpec::Linear {
        name: "out".into(),
        in_features: d_in,
        out_features: classes,
    });
    let arch = Architecture {
        name: "tiny".into(),
        input: [1, 1, inputs],
        classes,
        layers,
    };
    Network::init(&arch, seed, &Backend::Flex.device(None).unwrap()).unwrap()
}

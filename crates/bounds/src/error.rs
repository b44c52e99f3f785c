use mixtrain_nn::ActShape;

/// Errors of bound propagation; each names the layer, the domain or the input at fault.
#[derive(Debug, thiserror::Error)]
pub enum BoundsError {
    /// A domain lacks the transfer rule for a layer kind.
    #[error("layer {layer} has no rule in domain {domain}")]
    Unsupported {
        /// The layer kind, e.g. `conv2d`.
        layer: String,
        /// The domain's [`Domain::NAME`](crate::Domain::NAME).
        domain: &'static str,
    },
    /// The network does not have the form the engine needs (its last layer must be linear, its
    /// input shape must match the input set's).
    #[error("network {model}: {message}")]
    Network {
        /// The architecture's name.
        model: String,
        /// What is wrong.
        message: String,
    },
    /// A layer receives activations it cannot take: possible only in a network whose layers
    /// were assembled by hand, since `Architecture::check` rules it out.
    #[error("layer {layer} cannot take activations of shape {input:?}")]
    Shape {
        /// The layer kind, e.g. `conv2d`.
        layer: &'static str,
        /// The shape it receives.
        input: ActShape,
    },
    /// A bad input set or name: a negative or non-finite eps, a box with `lower > upper` or a
    /// NaN, labels that do not match the boxes, an unknown input domain or bounds domain (the
    /// message says which).
    #[error("input set: {0}")]
    Input(String),
}

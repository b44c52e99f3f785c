/// Errors of bound propagation; each names the layer and the domain.
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
    /// The network does not have the form the engine needs (its last layer must be linear).
    #[error("network {model}: {message}")]
    Network {
        /// The architecture's name.
        model: String,
        /// What is wrong.
        message: String,
    },
    /// A bad input set or name: a negative or non-finite eps, an unknown input domain or
    /// bounds domain (the message says which).
    #[error("input set: {0}")]
    Input(String),
}

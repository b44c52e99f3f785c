/// Errors of bound propagation; each names the layer and the domain.
#[derive(Debug, thiserror::Error)]
pub enum BoundsError {
    #[error("layer {layer} has no rule in domain {domain}")]
    Unsupported { layer: String, domain: &'static str },
    #[error("network {model}: {message}")]
    Network { model: String, message: String },
    #[error("input set: {0}")]
    Input(String),
}

use std::path::PathBuf;

use crate::model::ModelError;

/// Errors of the embedding layer. Mapped to HTTP statuses only at the API edge.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(
        "cannot load the ONNX Runtime library from {path}: {message}. Run `scripts/setup` to fetch it, \
         or point --ort-lib (AKIDB_ORT_LIB) at libonnxruntime 1.31.x"
    )]
    RuntimeLibrary { path: PathBuf, message: String },
    #[error("ONNX Runtime failed to {action}: {message}")]
    Runtime { action: &'static str, message: String },
    #[error("execution provider '{device}' is not usable here: {reason}")]
    DeviceUnavailable { device: &'static str, reason: String },
    #[error("cannot load tokenizer {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("tokenization failed: {0}")]
    Tokenize(String),
    #[error("model {model} has an input akidb does not know how to feed: {input}")]
    UnsupportedInput { model: String, input: String },
    #[error("model {model} does not match its manifest: {problem}")]
    ModelMismatch { model: String, problem: String },
    #[error(
        "model '{model}' failed its self-test: probe {probe} ({text:?}) is at cosine distance {distance:.3e} from its reference \
         vector, more than the manifest's {tolerance:e}. The tokenizer or model file is not the one the manifest describes, or \
         this execution provider computes differently (try --device cpu); `akidb check-model` runs the same test"
    )]
    SelfTest { model: String, probe: usize, text: String, distance: f64, tolerance: f64 },
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("the inference thread has stopped")]
    WorkerGone,
    #[error("the embedding backend panicked while running this batch ({0}); it is being restarted")]
    BackendPanicked(String),
    #[error("the embedding backend is restarting after a failure; retry shortly")]
    BackendDown,
}

impl EmbedError {
    /// ort's errors are generic over a recoverable value (not `Send + Sync` for builders): keep the message.
    pub(crate) fn runtime<E: std::fmt::Display>(action: &'static str) -> impl FnOnce(E) -> EmbedError {
        move |err| EmbedError::Runtime { action, message: err.to_string() }
    }
}

//! Model directories and their manifests.

mod manifest;

use std::path::PathBuf;

pub use manifest::{answers_to, FileCheck, HybridDefaults, Manifest, ManifestFile, ModelDir, PaddingSide, Pooling, Probe, ProbeKind, SelfTest, MANIFEST_FILE, MODEL_FILE, TOKENIZER_FILE};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model '{model}' not found: it is neither a directory nor a model under {} (run scripts/setup to fetch the default model, or give --models-dir)", searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    NotFound { model: String, searched: Vec<PathBuf> },
    #[error("model '{model}' is missing {path}: run scripts/setup (or see models/{model}/README.md)")]
    MissingFile { model: String, path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("malformed manifest {path}: {source}")]
    BadManifest { path: PathBuf, source: serde_json::Error },
    #[error("invalid manifest {path}: {problem}")]
    InvalidManifest { path: PathBuf, problem: String },
    #[error("checksum mismatch for {path}: expected sha256 {expected}, found {actual}; run scripts/setup again")]
    ChecksumMismatch { path: PathBuf, expected: String, actual: String },
    #[error("model '{model}' cannot produce {requested} dimensions; allowed: {allowed:?}")]
    UnsupportedDims { model: String, requested: usize, allowed: Vec<usize> },
}

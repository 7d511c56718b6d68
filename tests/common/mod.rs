//! Shared helpers for integration tests. Missing fixtures or setup fail loudly, never skip.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use akidb::embed::{BatchConfig, Device, OnnxOptions, OnnxProvider};
use akidb::model::{Manifest, ModelDir};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/<rel>`; panics with a clear message when the fixture is missing.
pub fn shared(rel: &str) -> PathBuf {
    let path = repo().join("..").join("shared").join(rel);
    assert!(path.exists(), "fixture {} is missing: CI and tests expect ../shared beside the clone", path.display());
    path
}

pub fn ort_library() -> PathBuf {
    let path = repo().join(akidb::embed::runtime::default_ort_library());
    assert!(path.is_file(), "{} is missing: run scripts/setup first", path.display());
    path
}

pub fn options(device: Device) -> OnnxOptions {
    OnnxOptions {
        ort_library: ort_library(),
        device,
        intra_threads: None,
        cache_dir: std::env::temp_dir().join("akidb-test-coreml-cache"),
    }
}

pub fn minilm_dir() -> ModelDir {
    let dir = repo().join("models/minilm-l6-v2");
    for file in ["model.onnx", "tokenizer.json"] {
        assert!(dir.join(file).is_file(), "{}/{file} is missing: run scripts/setup first", dir.display());
    }
    ModelDir::resolve(dir.to_str().expect("utf-8 repo path"), &repo().join("models")).expect("minilm model dir")
}

pub fn minilm(batching: BatchConfig) -> OnnxProvider {
    OnnxProvider::load(&minilm_dir(), &options(Device::Cpu), batching).expect("load minilm")
}

/// A model directory for the tiny Qwen3 fixture, using the shipped Qwen3-Embedding manifest
/// with only the width (16) and whatever `edit` changes.
pub fn qwen3_tiny_dir(edit: impl FnOnce(&mut Manifest)) -> (tempfile::TempDir, ModelDir) {
    let tmp = tempfile::tempdir().expect("tempdir");
    for file in ["model.onnx", "tokenizer.json"] {
        std::os::unix::fs::symlink(shared(&format!("fixtures/qwen3-tiny/{file}")), tmp.path().join(file)).expect("symlink");
    }
    let text = std::fs::read_to_string(repo().join("models/qwen3-embedding-0.6b/manifest.json")).expect("qwen manifest");
    let mut manifest: Manifest = serde_json::from_str(&text).expect("parse qwen manifest");
    manifest.dims = 16;
    manifest.matryoshka_dims = vec![4, 8, 16];
    manifest.intra_threads = Some(1);
    edit(&mut manifest);
    std::fs::write(tmp.path().join("manifest.json"), serde_json::to_string(&manifest).expect("json")).expect("write manifest");
    let dir = ModelDir::resolve(tmp.path().to_str().expect("utf-8"), Path::new("/nonexistent")).expect("qwen dir");
    (tmp, dir)
}

pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read json")).expect("parse json")
}

pub fn floats(value: &serde_json::Value) -> Vec<f32> {
    value.as_array().expect("array").iter().map(|v| v.as_f64().expect("number") as f32).collect()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

//! Shared helpers for integration tests. Missing fixtures or setup fail loudly, never skip.
#![allow(dead_code)]

pub mod hold;
pub mod server;

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
        keep_graph: false,
        interactive_threads: 0,
        spinning: true,
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

pub fn bundled_dir(name: &str) -> ModelDir {
    let dir = repo().join("models").join(name);
    for file in ["model.onnx", "tokenizer.json"] {
        assert!(dir.join(file).is_file(), "{}/{file} is missing: run scripts/setup first", dir.display());
    }
    ModelDir::resolve(dir.to_str().expect("utf-8 repo path"), &repo().join("models")).expect("bundled model dir")
}

pub fn bge(batching: BatchConfig) -> OnnxProvider {
    OnnxProvider::load(&bundled_dir("bge-small-en-v1.5"), &options(Device::Cpu), batching).expect("load bge-small-en-v1.5")
}

/// A copy of a bundled model's folder (files linked, manifest copied) for a test to damage.
pub fn copied_model(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = repo().join("models").join(name);
    for file in ["model.onnx", "tokenizer.json"] {
        std::os::unix::fs::symlink(dir.join(file), tmp.path().join(file)).expect("symlink");
    }
    std::fs::copy(dir.join("manifest.json"), tmp.path().join("manifest.json")).expect("copy manifest");
    tmp
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

/// The first `rows` GloVe-50 vectors (testdata/, fetched by `scripts/setup --test-data`).
/// The file is a Fortran-order float32 .npy of 400,000 x 50.
pub fn glove(rows: usize) -> Vec<Vec<f32>> {
    let path = repo().join("testdata/glove_6B_50d_emb.npy");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}: run scripts/setup --test-data", path.display()));
    assert_eq!(&bytes[..6], b"\x93NUMPY", "not an .npy file");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).expect("npy header");
    assert!(header.contains("'<f4'") && header.contains("(400000, 50)"), "unexpected npy header {header}");
    let fortran = header.contains("'fortran_order': True");
    let data: Vec<f32> = bytes[10 + header_len..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let (n, d) = (400_000usize, 50usize);
    assert!(rows <= n);
    (0..rows).map(|i| (0..d).map(|j| if fortran { data[j * n + i] } else { data[i * d + j] }).collect()).collect()
}

pub fn normalized(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / norm).collect()
}

/// A deterministic pseudo-random unit vector (xorshift from `seed`): distinct seeds give vectors
/// far apart, so each is found at rank 1 by itself.
pub fn unit_vector(seed: u64, dims: usize) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let v: Vec<f32> = (0..dims)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 20_000) as f32 / 10_000.0 - 1.0
        })
        .collect();
    normalized(&v)
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

thread_local! {
    /// The backend `vector_collection` builds with: set per test by `per_backend!`.
    static BACKEND: std::cell::Cell<akidb::domain::IndexBackend> = std::cell::Cell::new(akidb::domain::IndexBackend::default());
}

/// Runs a test body with collections on `backend`.
pub fn with_backend(backend: akidb::domain::IndexBackend, body: impl FnOnce()) {
    BACKEND.with(|b| b.set(backend));
    body();
}

/// Child processes of crash tests learn their parent's backend from this variable.
pub const BACKEND_ENV: &str = "AKIDB_TEST_BACKEND";

/// The backend collections are built with here: the test's, or the parent process's.
pub fn backend() -> akidb::domain::IndexBackend {
    if let Ok(name) = std::env::var(BACKEND_ENV) {
        if let Some(backend) = akidb::domain::IndexBackend::ALL.into_iter().find(|b| b.as_str() == name) {
            return backend;
        }
    }
    BACKEND.with(|b| b.get())
}

/// Runs each test once per index backend: `mod <test> { fn usearch, fn usearch_f16, ... }`.
#[macro_export]
macro_rules! per_backend {
    ($($(#[$meta:meta])* fn $name:ident() $body:block)*) => {
        $(
            $(#[$meta])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                fn body() $body
                #[test]
                fn usearch() {
                    common::with_backend(akidb::domain::IndexBackend::Usearch, body)
                }
                #[test]
                fn usearch_f16() {
                    common::with_backend(akidb::domain::IndexBackend::UsearchF16, body)
                }
                #[test]
                fn usearch_i8() {
                    common::with_backend(akidb::domain::IndexBackend::UsearchI8, body)
                }
                #[test]
                fn hnsw_rs() {
                    common::with_backend(akidb::domain::IndexBackend::HnswRs, body)
                }
                #[test]
                fn hnsw() {
                    common::with_backend(akidb::domain::IndexBackend::Hnsw, body)
                }
            }
        )*
    };
}

/// A vectors-only collection config (no embedding model involved), on the test's backend
/// (f16 and i8 store unit vectors: other metrics fall back to usearch f32).
pub fn vector_collection(name: &str, dims: usize, metric: akidb::store::Metric) -> akidb::store::CollectionConfig {
    let mut backend = backend();
    if metric != akidb::store::Metric::Cosine && matches!(backend, akidb::domain::IndexBackend::UsearchF16 | akidb::domain::IndexBackend::UsearchI8) {
        backend = akidb::domain::IndexBackend::Usearch;
    }
    akidb::store::CollectionConfig {
        id: String::new(),
        name: name.into(),
        model: None,
        dims,
        metric,
        hnsw: akidb::store::HnswParams::default(),
        backend,
        created_at_ms: 0,
        chunking: None,
    }
}

pub fn new_doc(id: String, vector: Vec<f32>, metadata: serde_json::Value) -> akidb::store::NewDocument {
    akidb::store::NewDocument::single(id, String::new(), metadata.as_object().cloned().unwrap_or_default(), vector)
}

/// Top-k ids by cosine similarity among `candidates`, brute force.
pub fn brute_force_top(query: &[f32], vectors: &[(String, Vec<f32>)], k: usize) -> Vec<String> {
    let q = normalized(query);
    let mut scored: Vec<(f32, &String)> = vectors.iter().map(|(id, v)| (dot(&q, &normalized(v)), id)).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(k).map(|(_, id)| id.clone()).collect()
}

pub fn recall(found: &[String], truth: &[String]) -> f64 {
    let hits = found.iter().filter(|id| truth.contains(id)).count();
    hits as f64 / truth.len().max(1) as f64
}

/// `sled::open` for tests that write or inspect a store by hand: sled's IO threads hold the
/// directory lock for a moment after the last handle drops, so wait for it as the store does.
pub fn raw_sled(path: &Path) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match sled::open(path) {
            Ok(db) => return db,
            Err(e) if e.to_string().contains("could not acquire lock") && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("opening {} by hand: {e}", path.display()),
        }
    }
}

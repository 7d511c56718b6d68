//! The model manifest: everything akidb must know about a model that is not in its ONNX graph.
//!
//! A model directory holds `model.onnx`, `tokenizer.json` and `manifest.json`. The manifest's
//! tokenization settings (truncation, padding side, EOS) override whatever `tokenizer.json`
//! carries: the MiniLM tokenizer file ships fixed padding to 128, which corrupts embeddings.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ModelError;

pub const MANIFEST_FILE: &str = "manifest.json";
pub const MODEL_FILE: &str = "model.onnx";
pub const TOKENIZER_FILE: &str = "tokenizer.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// Mean of the token states under the attention mask (sentence-transformers models).
    Mean,
    /// State of the last real token (decoder models such as Qwen3-Embedding).
    LastToken,
    /// State of the first token (`[CLS]`).
    Cls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaddingSide {
    Left,
    Right,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Path relative to the model directory.
    pub path: String,
    /// Expected sha256 (hex). `None` when the publisher could not be reached to pin it.
    pub sha256: Option<String>,
    /// Where the file comes from, e.g. `pypi:package==1.0#path/in/wheel`.
    pub origin: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub family: String,
    #[serde(default)]
    pub description: String,
    /// Other names a client may use for the model, e.g. its hub id (`BAAI/bge-small-en-v1.5`);
    /// matched case-insensitively.
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub notes: Option<String>,
    pub files: Vec<ManifestFile>,
    /// Width of the model's pooled output.
    pub dims: usize,
    /// Inputs longer than this many tokens (special tokens included) are truncated, and reported.
    pub max_tokens: usize,
    pub pooling: Pooling,
    pub normalize: bool,
    pub padding_side: PaddingSide,
    /// Pad id; when absent, the tokenizer's `[PAD]`/`<pad>` token, else 0.
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    /// Whether every text must end with `eos_token_id` (added if the tokenizer did not).
    pub append_eos: bool,
    #[serde(default)]
    pub eos_token_id: Option<u32>,
    /// Template for queries, with `{task}` and `{query}` placeholders; documents are never templated.
    pub query_instruction: Option<String>,
    pub default_task: Option<String>,
    /// Output widths the model was trained for (Matryoshka); always includes `dims`.
    pub matryoshka_dims: Vec<usize>,
    /// Intra-op threads that measured fastest for this model on a 2-core box; `--intra-threads` overrides.
    #[serde(default)]
    pub intra_threads: Option<usize>,
    /// Most texts in one model call, whatever `--max-batch-size` says. 1 for a model whose int8
    /// activations are quantized per call (DynamicQuantizeLinear takes one scale over the whole
    /// batch), where a text's vector would otherwise depend on the texts batched with it.
    #[serde(default)]
    pub max_batch_size: Option<usize>,
    /// Probe texts and their reference vectors, embedded at every load (see `SelfTest`).
    #[serde(default)]
    pub self_test: Option<SelfTest>,
    /// Hybrid search's fusion for this model's collections when a request sets none, tuned on a
    /// benchmark's train split (how much the dense side deserves depends on the model).
    #[serde(default)]
    pub hybrid: Option<HybridDefaults>,
}

/// Weighted Reciprocal Rank Fusion: a hit at rank r on a side scores weight / (rrf_k + r).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HybridDefaults {
    pub rrf_k: f32,
    pub dense_weight: f32,
    pub lexical_weight: f32,
    /// Where the values were measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuned_on: Option<String>,
}

/// What a model must reproduce before it serves: each probe's vector, computed by the reference
/// implementation, within `max_cosine_distance` of what this runtime and device compute. A
/// wrong or damaged tokenizer or model file, or an execution provider that computes differently,
/// fails it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfTest {
    /// Largest cosine distance (1 - cosine) allowed between a probe's vector and its reference.
    pub max_cosine_distance: f64,
    /// Where the reference vectors come from.
    #[serde(default)]
    pub origin: String,
    pub probes: Vec<Probe>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    /// The lane it runs on: `document` (bulk) or `query` (interactive). Either way the text is
    /// embedded as written, so a query probe carries its instruction in `text`.
    pub kind: ProbeKind,
    pub text: String,
    pub vector: Vec<f32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    Document,
    Query,
}

impl Manifest {
    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io { path: path.to_owned(), source })?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|source| ModelError::BadManifest { path: path.to_owned(), source })?;
        manifest.validate().map_err(|problem| ModelError::InvalidManifest { path: path.to_owned(), problem })?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<(), String> {
        if self.dims == 0 {
            return Err("dims must be positive".into());
        }
        if self.max_tokens < 2 {
            return Err("max_tokens must be at least 2".into());
        }
        if !self.matryoshka_dims.contains(&self.dims) {
            return Err(format!("matryoshka_dims must contain the full width {}", self.dims));
        }
        if let Some(bad) = self.matryoshka_dims.iter().find(|&&d| d == 0 || d > self.dims) {
            return Err(format!("matryoshka dim {bad} is outside 1..={}", self.dims));
        }
        if self.append_eos && self.eos_token_id.is_none() {
            return Err("append_eos needs eos_token_id".into());
        }
        if let Some(template) = &self.query_instruction {
            if !template.contains("{query}") {
                return Err("query_instruction must contain {query}".into());
            }
            if template.contains("{task}") && self.default_task.is_none() {
                return Err("query_instruction uses {task} but default_task is not set".into());
            }
        }
        if self.intra_threads == Some(0) {
            return Err("intra_threads must be positive".into());
        }
        if let Some(h) = &self.hybrid {
            // The bound a request's own values get (service::search::MAX_FUSION_PARAMETER).
            if ![h.rrf_k, h.dense_weight, h.lexical_weight].iter().all(|v| (0.0..=1e6).contains(v)) {
                return Err("hybrid: rrf_k and weights must be within 0..=1e6".into());
            }
        }
        if let Some(bad) = self.aliases.iter().find(|a| a.trim().is_empty() || a.eq_ignore_ascii_case(&self.name)) {
            return Err(format!("alias {bad:?} is empty or the model's own name"));
        }
        if self.max_batch_size == Some(0) {
            return Err("max_batch_size must be positive".into());
        }
        if let Some(test) = &self.self_test {
            if !(0.0..=2.0).contains(&test.max_cosine_distance) {
                return Err("self_test.max_cosine_distance must be within 0..=2".into());
            }
            if test.probes.is_empty() {
                return Err("self_test has no probes (leave self_test out instead)".into());
            }
            if let Some((i, _)) = test.probes.iter().enumerate().find(|(_, p)| p.vector.len() != self.dims) {
                return Err(format!("self_test probe {i} has {} dimensions, the model {}", test.probes[i].vector.len(), self.dims));
            }
            if let Some((i, _)) = test.probes.iter().enumerate().find(|(_, p)| !p.vector.iter().all(|v| v.is_finite()) || p.vector.iter().all(|v| *v == 0.0)) {
                return Err(format!("self_test probe {i} has a vector that is not finite or is all zeros"));
            }
        }
        Ok(())
    }

    /// The text actually fed to the tokenizer for a query.
    pub fn format_query(&self, query: &str, task: Option<&str>) -> String {
        match &self.query_instruction {
            None => query.to_owned(),
            Some(template) => {
                let task = task.or(self.default_task.as_deref()).unwrap_or_default();
                // Substitute {task} first so that a query containing "{task}" stays literal.
                let (head, tail) = template.split_once("{query}").unwrap_or((template, ""));
                format!("{}{}{}", head.replace("{task}", task), query, tail.replace("{task}", task))
            }
        }
    }

    /// Whether `name` names this model: its name or one of its aliases, in any case.
    pub fn answers_to(&self, name: &str) -> bool {
        answers_to(&self.name, &self.aliases, name)
    }

    /// Checks a requested output width against the model's Matryoshka widths.
    pub fn check_dims(&self, dims: Option<usize>) -> Result<usize, ModelError> {
        match dims {
            None => Ok(self.dims),
            Some(d) if self.matryoshka_dims.contains(&d) => Ok(d),
            Some(d) => Err(ModelError::UnsupportedDims { model: self.name.clone(), requested: d, allowed: self.matryoshka_dims.clone() }),
        }
    }
}

/// Whether `wanted` names the model called `name` with `aliases`: any of them, in any case.
pub fn answers_to(name: &str, aliases: &[String], wanted: &str) -> bool {
    name.eq_ignore_ascii_case(wanted) || aliases.iter().any(|a| a.eq_ignore_ascii_case(wanted))
}

/// A resolved model directory with its manifest.
#[derive(Debug, Clone)]
pub struct ModelDir {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl ModelDir {
    /// Resolves `--model`: a directory path, or a name under `models_dir`.
    pub fn resolve(model: &str, models_dir: &Path) -> Result<Self, ModelError> {
        Self::resolve_in(model, &[models_dir.to_owned()])
    }

    /// Resolves `--model`: a directory path, or a name under the first of `models_dirs` that
    /// has it; the error names every folder looked in.
    pub fn resolve_in(model: &str, models_dirs: &[PathBuf]) -> Result<Self, ModelError> {
        let as_path = Path::new(model);
        let named = || models_dirs.iter().map(|d| d.join(model)).find(|d| d.is_dir());
        let dir = match (as_path.is_dir(), is_plain_name(model)) {
            (true, _) => as_path.to_owned(),
            (false, true) => named().ok_or_else(|| ModelError::NotFound { model: model.to_owned(), searched: models_dirs.to_vec() })?,
            (false, false) => return Err(ModelError::NotFound { model: model.to_owned(), searched: models_dirs.to_vec() }),
        };
        let manifest = Manifest::from_file(&dir.join(MANIFEST_FILE))?;
        let model_dir = ModelDir { dir, manifest };
        for required in [MODEL_FILE, TOKENIZER_FILE] {
            let path = model_dir.dir.join(required);
            if !path.is_file() {
                return Err(ModelError::MissingFile { model: model_dir.manifest.name.clone(), path });
            }
        }
        Ok(model_dir)
    }

    pub fn model_path(&self) -> PathBuf {
        self.dir.join(MODEL_FILE)
    }

    pub fn tokenizer_path(&self) -> PathBuf {
        self.dir.join(TOKENIZER_FILE)
    }

    /// Verifies every pinned file's sha256. Unpinned files are reported with their actual hash.
    pub fn verify(&self) -> Result<Vec<FileCheck>, ModelError> {
        self.manifest
            .files
            .iter()
            .map(|file| {
                let path = self.dir.join(&file.path);
                let actual = sha256_file(&path)?;
                match &file.sha256 {
                    Some(expected) if !expected.eq_ignore_ascii_case(&actual) => {
                        Err(ModelError::ChecksumMismatch { path, expected: expected.clone(), actual })
                    }
                    expected => Ok(FileCheck { path, sha256: actual, pinned: expected.is_some() }),
                }
            })
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct FileCheck {
    pub path: PathBuf,
    pub sha256: String,
    pub pinned: bool,
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) && name != "." && name != ".."
}

fn sha256_file(path: &Path) -> Result<String, ModelError> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let io_err = |source| ModelError::Io { path: path.to_owned(), source };
    let mut file = std::fs::File::open(path).map_err(io_err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io_err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qwen_like() -> Manifest {
        serde_json::from_str(include_str!("../../models/qwen3-embedding-0.6b/manifest.json")).unwrap()
    }

    #[test]
    fn shipped_manifests_are_valid() {
        let minilm: Manifest = serde_json::from_str(include_str!("../../models/minilm-l6-v2/manifest.json")).unwrap();
        minilm.validate().unwrap();
        assert_eq!(minilm.dims, 384);
        assert_eq!(minilm.pooling, Pooling::Mean);
        let bge: Manifest = serde_json::from_str(include_str!("../../models/bge-small-en-v1.5/manifest.json")).unwrap();
        bge.validate().unwrap();
        assert_eq!(bge.pooling, Pooling::Cls);
        assert!(bge.hybrid.is_some(), "bge-small's fusion is tuned");
        assert!(bge.answers_to("baai/BGE-small-en-v1.5"));
        assert!(minilm.answers_to("sentence-transformers/all-minilm-l6-v2"));
        for m in [&minilm, &bge] {
            assert!(m.self_test.as_ref().is_some_and(|t| t.probes.len() >= 3), "{} carries probes", m.name);
        }
        let qwen = qwen_like();
        qwen.validate().unwrap();
        assert_eq!(qwen.dims, 1024);
        assert_eq!(qwen.pooling, Pooling::LastToken);
        assert_eq!(qwen.padding_side, PaddingSide::Left);
    }

    #[test]
    fn query_template_is_applied_literally() {
        let m = qwen_like();
        assert_eq!(
            m.format_query("Explain gravity", None),
            "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:Explain gravity"
        );
        assert_eq!(m.format_query("a {task} b", Some("T")), "Instruct: T\nQuery:a {task} b");
    }

    #[test]
    fn dims_outside_matryoshka_set_are_refused() {
        let m = qwen_like();
        assert_eq!(m.check_dims(None).unwrap(), 1024);
        assert_eq!(m.check_dims(Some(256)).unwrap(), 256);
        assert!(matches!(m.check_dims(Some(300)), Err(ModelError::UnsupportedDims { requested: 300, .. })));
    }

    #[test]
    fn invalid_manifests_are_refused() {
        let mut m = qwen_like();
        m.matryoshka_dims = vec![32];
        assert!(m.validate().unwrap_err().contains("full width"));
        let mut m = qwen_like();
        m.eos_token_id = None;
        assert!(m.validate().unwrap_err().contains("eos_token_id"));
        let mut m = qwen_like();
        m.query_instruction = Some("no placeholder".into());
        assert!(m.validate().unwrap_err().contains("{query}"));
    }
}

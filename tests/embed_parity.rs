//! The embedding path reproduces the reference implementations' outputs.

mod common;

use std::sync::atomic::Ordering;

use akidb::embed::{BatchConfig, EmbedRequest, EmbeddingProvider, OnnxProvider, TextEncoder};
use common::*;

const TOLERANCE: f32 = 1e-5;

/// Big enough that every fixture batch runs as one padded model call.
const ONE_BATCH: BatchConfig = BatchConfig { max_batch_tokens: 1 << 16, max_batch_size: 64 };

fn strings(value: &serde_json::Value) -> Vec<String> {
    value.as_array().expect("array").iter().map(|v| v.as_str().expect("string").to_owned()).collect()
}

fn ids(value: &serde_json::Value) -> Vec<usize> {
    value.as_array().expect("array").iter().map(|v| v.as_u64().expect("id") as usize).collect()
}

#[test]
fn minilm_matches_reference_one_text_at_a_time() {
    let reference = read_json(&shared("fixtures/minilm-l6-v2/reference.json"));
    let provider = minilm(BatchConfig::default());
    let texts = strings(&reference["texts"]);
    for (i, text) in texts.iter().enumerate() {
        let out = provider.embed_documents(vec![text.clone()]).wait().expect("embed");
        let expected = floats(&reference["embeddings"][i]);
        let diff = max_abs_diff(&out[0].embedding, &expected);
        assert!(diff <= TOLERANCE, "text {i} ({text:?}): max diff {diff}");
        assert_eq!(out[0].tokens, ids(&reference["token_ids"][i]).len(), "text {i} token count");
    }
}

#[test]
fn minilm_matches_reference_in_one_padded_batch() {
    let reference = read_json(&shared("fixtures/minilm-l6-v2/reference.json"));
    let provider = minilm(ONE_BATCH);
    let texts = strings(&reference["texts"]);
    let before = provider.batcher().stats().batches.load(Ordering::Relaxed);
    let out = provider.embed_documents(texts.clone()).wait().expect("embed");
    assert_eq!(provider.batcher().stats().batches.load(Ordering::Relaxed) - before, 1, "all texts in one model call");
    assert_eq!(out.len(), texts.len());
    for (i, embedding) in out.iter().enumerate() {
        let diff = max_abs_diff(&embedding.embedding, &floats(&reference["embeddings"][i]));
        assert!(diff <= TOLERANCE, "text {i}: max diff {diff} in a padded batch");
    }
}

/// akidb removes the NaN scrub PyTorch puts after every attention softmax (a 12-15 % speed-up):
/// the rewritten graph must give bit-identical vectors to the file as it is, padding included.
#[test]
fn minilm_graph_rewrite_changes_no_bit() {
    let reference = read_json(&shared("fixtures/minilm-l6-v2/reference.json"));
    let texts = strings(&reference["texts"]);
    let model = minilm_dir();
    let bytes = std::fs::read(model.model_path()).expect("read model.onnx");
    let rewrite = akidb::embed::graph_rewrite::remove_nan_scrubs(&bytes).expect("MiniLM's export has NaN scrubs");
    assert_eq!(rewrite.nan_scrubs_removed, 6, "one per layer");
    let (_dir, qwen) = qwen3_tiny_dir(|_| {});
    let qwen_bytes = std::fs::read(qwen.model_path()).expect("read the qwen3-tiny model");
    assert_eq!(akidb::embed::graph_rewrite::remove_nan_scrubs(&qwen_bytes), None, "nothing to remove there");
    let load = |keep_graph| {
        let options = akidb::embed::OnnxOptions { keep_graph, ..options(akidb::embed::Device::Cpu) };
        OnnxProvider::load(&model, &options, ONE_BATCH).expect("load minilm")
    };
    let rewritten = load(false).embed_documents(texts.clone()).wait().expect("embed");
    let as_shipped = load(true).embed_documents(texts).wait().expect("embed");
    for (i, (a, b)) in rewritten.iter().zip(&as_shipped).enumerate() {
        assert_eq!(a.embedding, b.embedding, "text {i}");
    }
}

#[test]
fn minilm_tokenization_matches_reference_ids_and_reports_truncation() {
    let reference = read_json(&shared("fixtures/minilm-l6-v2/reference.json"));
    let dir = minilm_dir();
    let encoder = TextEncoder::from_file(&dir.tokenizer_path(), &dir.manifest).expect("tokenizer");
    for (i, text) in strings(&reference["texts"]).iter().enumerate() {
        let encoded = encoder.encode(text).expect("encode");
        let expected: Vec<u32> = ids(&reference["token_ids"][i]).into_iter().map(|id| id as u32).collect();
        assert_eq!(encoded.ids, expected, "text {i} ids");
        // Only the long text (exactly max_tokens after truncation) was cut.
        assert_eq!(encoded.truncated, expected.len() == 256, "text {i} truncation flag");
    }
    let long = "word ".repeat(1000);
    let encoded = encoder.encode(&long).expect("encode");
    assert!(encoded.truncated);
    assert_eq!(encoded.ids.len(), 256);
    assert!(!encoder.encode("short").expect("encode").truncated);
}

#[test]
fn minilm_reports_truncation_per_text() {
    let provider = minilm(BatchConfig::default());
    let out = provider.embed_documents(vec!["short text".into(), "lorem ipsum ".repeat(400), String::new()]).wait().expect("embed");
    assert_eq!(out.iter().map(|e| e.truncated).collect::<Vec<_>>(), vec![false, true, false]);
    assert_eq!(out[1].tokens, 256);
    assert_eq!(out[2].tokens, 2, "an empty text is [CLS] [SEP]");
}

#[test]
fn minilm_refuses_widths_it_was_not_trained_for() {
    let provider = minilm(BatchConfig::default());
    let err = provider.embed(EmbedRequest::documents(vec!["x".into()]).with_dims(Some(128))).wait().expect_err("dims 128");
    assert!(err.to_string().contains("cannot produce 128 dimensions"), "{err}");
    let out = provider.embed(EmbedRequest::documents(vec!["x".into()]).with_dims(Some(384))).wait().expect("dims 384");
    assert_eq!(out[0].embedding.len(), 384);
}

fn qwen_reference() -> (serde_json::Value, Vec<String>, Vec<String>) {
    let reference = read_json(&shared("fixtures/qwen3-tiny/reference.json"));
    let queries = strings(&reference["queries"]);
    let documents = strings(&reference["documents"]);
    (reference, queries, documents)
}

fn qwen_provider(batching: BatchConfig) -> (tempfile::TempDir, OnnxProvider) {
    let (tmp, dir) = qwen3_tiny_dir(|_| {});
    let provider = OnnxProvider::load(&dir, &options(akidb::embed::Device::Cpu), batching).expect("load qwen3-tiny");
    (tmp, provider)
}

#[test]
fn qwen3_applies_the_instruction_and_eos_like_the_reference_tokenizer() {
    let (reference, queries, documents) = qwen_reference();
    let (_tmp, dir) = qwen3_tiny_dir(|_| {});
    let encoder = TextEncoder::from_file(&dir.tokenizer_path(), &dir.manifest).expect("tokenizer");
    let fed: Vec<String> = queries.iter().map(|q| dir.manifest.format_query(q, None)).chain(documents.iter().cloned()).collect();
    assert_eq!(fed, strings(&reference["texts"]), "texts fed to the tokenizer");
    for (i, text) in fed.iter().enumerate() {
        let expected: Vec<u32> = ids(&reference["token_ids"][i]).into_iter().map(|id| id as u32).collect();
        assert_eq!(encoder.encode(text).expect("encode").ids, expected, "text {i}");
    }
}

#[test]
fn qwen3_matches_reference_one_text_at_a_time() {
    let (reference, queries, documents) = qwen_reference();
    let (_tmp, provider) = qwen_provider(BatchConfig::default());
    let mut out = Vec::new();
    for query in &queries {
        out.extend(provider.embed_queries(vec![query.clone()]).wait().expect("query"));
    }
    for document in &documents {
        out.extend(provider.embed_documents(vec![document.clone()]).wait().expect("document"));
    }
    for (i, embedding) in out.iter().enumerate() {
        let diff = max_abs_diff(&embedding.embedding, &floats(&reference["embeddings"][i]));
        assert!(diff <= TOLERANCE, "text {i}: max diff {diff}");
        assert_eq!(embedding.tokens, ids(&reference["token_ids"][i]).len());
    }
}

#[test]
fn qwen3_matches_reference_in_left_padded_batches() {
    let (reference, queries, documents) = qwen_reference();
    let (_tmp, provider) = qwen_provider(ONE_BATCH);
    let before = provider.batcher().stats().batches.load(Ordering::Relaxed);
    let query_out = provider.embed_queries(queries.clone()).wait().expect("queries");
    let doc_out = provider.embed_documents(documents.clone()).wait().expect("documents");
    assert_eq!(provider.batcher().stats().batches.load(Ordering::Relaxed) - before, 2, "one model call per request");
    for (i, embedding) in query_out.iter().chain(&doc_out).enumerate() {
        let diff = max_abs_diff(&embedding.embedding, &floats(&reference["embeddings"][i]));
        assert!(diff <= TOLERANCE, "text {i}: max diff {diff} in a left-padded batch");
    }
}

#[test]
fn qwen3_matryoshka_truncates_then_renormalizes() {
    let (reference, _, documents) = qwen_reference();
    let (_tmp, provider) = qwen_provider(BatchConfig::default());
    let full = floats(&reference["embeddings"][2]);
    let out = provider.embed(EmbedRequest::documents(vec![documents[0].clone()]).with_dims(Some(8))).wait().expect("dims 8");
    let norm: f32 = full[..8].iter().map(|v| v * v).sum::<f32>().sqrt();
    let expected: Vec<f32> = full[..8].iter().map(|v| v / norm).collect();
    assert_eq!(out[0].embedding.len(), 8);
    assert!(max_abs_diff(&out[0].embedding, &expected) <= TOLERANCE);
    let unit: f32 = out[0].embedding.iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((unit - 1.0).abs() < 1e-5);
    assert!(provider.embed(EmbedRequest::documents(vec!["x".into()]).with_dims(Some(5))).wait().is_err());
}

#[test]
fn qwen3_truncation_keeps_the_final_eos_and_is_reported() {
    let (_tmp, dir) = qwen3_tiny_dir(|m| m.max_tokens = 8);
    let provider = OnnxProvider::load(&dir, &options(akidb::embed::Device::Cpu), BatchConfig::default()).expect("load");
    let encoder = TextEncoder::from_file(&dir.tokenizer_path(), &dir.manifest).expect("tokenizer");
    let long = "Gravity is a force that attracts two bodies towards each other.";
    let encoded = encoder.encode(long).expect("encode");
    assert!(encoded.truncated);
    assert_eq!(encoded.ids.len(), 8);
    assert_eq!(encoded.ids.last(), Some(&151643), "last token stays <|endoftext|>, which last-token pooling reads");
    let out = provider.embed_documents(vec![long.into(), "Hi".into()]).wait().expect("embed");
    assert_eq!((out[0].tokens, out[0].truncated), (8, true));
    assert!(!out[1].truncated);
}

/// Issue 9, item 10: the rewrite is proven at every load on the model's own padding side. MiniLM
/// run with left padding (the side decoder embedders such as Qwen3 use) keeps the rewrite only
/// because the probe batch gave the same bits, and a left-padded batch then agrees bit for bit with
/// the file as shipped. qwen3-tiny (left padded, no scrubs) runs its graph as shipped.
#[test]
fn the_rewrite_is_proven_on_left_padded_batches_too() {
    let reference = read_json(&shared("fixtures/minilm-l6-v2/reference.json"));
    let texts = strings(&reference["texts"]);
    let minilm = minilm_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    for file in ["model.onnx", "tokenizer.json"] {
        std::os::unix::fs::symlink(minilm.dir.join(file), tmp.path().join(file)).expect("symlink");
    }
    let mut manifest = minilm.manifest.clone();
    manifest.padding_side = akidb::model::PaddingSide::Left;
    std::fs::write(tmp.path().join("manifest.json"), serde_json::to_string(&manifest).expect("json")).expect("write manifest");
    let left = akidb::model::ModelDir::resolve(tmp.path().to_str().expect("utf-8"), std::path::Path::new("/nonexistent")).expect("left-padded dir");
    let load = |keep_graph| {
        let options = akidb::embed::OnnxOptions { keep_graph, ..options(akidb::embed::Device::Cpu) };
        OnnxProvider::load(&left, &options, ONE_BATCH).expect("load left-padded minilm")
    };
    let (rewritten, as_shipped) = (load(false), load(true));
    assert_eq!(rewritten.info().graph_rewrites, 6, "the probe proved the rewrite on left-padded batches");
    assert_eq!(as_shipped.info().graph_rewrites, 0);
    let a = rewritten.embed_documents(texts.clone()).wait().expect("embed");
    let b = as_shipped.embed_documents(texts).wait().expect("embed");
    for (i, (a, b)) in a.iter().zip(&b).enumerate() {
        assert_eq!(a.embedding, b.embedding, "text {i}, left padded");
    }
    let (_dir, qwen) = qwen3_tiny_dir(|_| {});
    let qwen = OnnxProvider::load(&qwen, &options(akidb::embed::Device::Cpu), ONE_BATCH).expect("load qwen3-tiny");
    assert_eq!(qwen.info().graph_rewrites, 0, "nothing to rewrite in qwen3-tiny: its graph runs as shipped");
}

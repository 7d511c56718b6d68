//! Embedding throughput through the whole provider path (tokenize → queue → ONNX → pool).
//!
//! Workloads (one criterion iteration embeds the whole workload in requests of `batch` texts):
//! - `minilm-docs`:    the first 32 SciFact abstracts (title + " " + text; most hit 256 tokens)
//! - `minilm-queries`: the first 32 SciFact claims (short)
//! - `qwen3-0.6b-{fp32,int8}`: 32 texts of exactly 16 tokens through the full-size Qwen3 graph,
//!   when AKIDB_BENCH_QWEN3_DIR points at the output of benches/peers/prepare_qwen3_06b.py.
//! Each at batch 1/8/32 and 1/2 intra-op threads. benches/peers/embed_vs_python.py runs this and
//! the same workloads in Python onnxruntime, and prints the ratios.

use std::path::{Path, PathBuf};
use std::time::Duration;

use akidb::embed::{BatchConfig, Device, EmbeddingProvider, OnnxOptions, OnnxProvider};
use akidb::model::ModelDir;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};

const WORKLOAD: usize = 32;
const QWEN_WORKLOAD: usize = 32;
/// 16 tokens with the Qwen3 tokenizer, <|endoftext|> included (checked below).
const SIXTEEN_TOKENS: &str = "The quick brown fox jumps over the lazy dog near the river bank today.";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn jsonl_texts(path: &Path, count: usize, doc: bool) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e} (../shared must be beside the repo)", path.display()));
    text.lines()
        .take(count)
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("jsonl");
            let body = v["text"].as_str().unwrap_or_default();
            if doc {
                format!("{} {}", v["title"].as_str().unwrap_or_default(), body)
            } else {
                body.to_owned()
            }
        })
        .collect()
}

fn provider(dir: &Path, threads: usize) -> OnnxProvider {
    let model = ModelDir::resolve(dir.to_str().expect("utf-8 path"), &repo().join("models")).expect("model dir (run scripts/setup)");
    let options = OnnxOptions {
        ort_library: repo().join(akidb::embed::runtime::default_ort_library()),
        device: Device::Cpu,
        intra_threads: Some(threads),
        cache_dir: std::env::temp_dir(),
        // AKIDB_KEEP_GRAPH=1 measures the model file as it is (without akidb's exact rewrites).
        keep_graph: std::env::var_os("AKIDB_KEEP_GRAPH").is_some(),
        // One session: this bench measures model throughput, not the interactive lane.
        interactive_threads: 0,
        spinning: true,
    };
    // AKIDB_MAX_BATCH_TOKENS lets the budget be tuned without a rebuild (default: the server's).
    let mut batching = BatchConfig::default();
    if let Some(tokens) = std::env::var("AKIDB_MAX_BATCH_TOKENS").ok().and_then(|v| v.parse().ok()) {
        batching.max_batch_tokens = tokens;
    }
    OnnxProvider::load(&model, &options, batching).expect("load model")
}

fn run_group(c: &mut Criterion, name: &str, model: &Path, texts: &[String], threads: &[usize]) {
    let mut group = c.benchmark_group(name);
    group.sampling_mode(SamplingMode::Flat).sample_size(10).warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(texts.len() as u64));
    for &t in threads {
        let provider = provider(model, t);
        for batch in [1usize, 8, 32] {
            group.bench_function(format!("b{batch}-t{t}"), |b| {
                b.iter(|| {
                    for chunk in texts.chunks(batch) {
                        provider.embed_documents(chunk.to_vec()).wait().expect("embed");
                    }
                })
            });
        }
    }
    group.finish();
}

fn minilm(c: &mut Criterion) {
    let scifact = repo().join("../shared/data/scifact");
    let model = repo().join("models/minilm-l6-v2");
    run_group(c, "minilm-docs", &model, &jsonl_texts(&scifact.join("corpus.jsonl"), WORKLOAD, true), &[1, 2]);
    run_group(c, "minilm-queries", &model, &jsonl_texts(&scifact.join("queries.jsonl"), WORKLOAD, false), &[1, 2]);
}

fn qwen3_06b(c: &mut Criterion) {
    let Some(root) = std::env::var_os("AKIDB_BENCH_QWEN3_DIR") else {
        eprintln!("qwen3-0.6b: not measured; set AKIDB_BENCH_QWEN3_DIR (see benches/peers/prepare_qwen3_06b.py)");
        return;
    };
    let texts = vec![SIXTEEN_TOKENS.to_owned(); QWEN_WORKLOAD];
    for variant in ["int8", "fp32"] {
        let dir = Path::new(&root).join(format!("qwen3-0.6b-{variant}"));
        let tokens = provider(&dir, 1).embed_documents(vec![SIXTEEN_TOKENS.into()]).wait().expect("embed")[0].tokens;
        assert_eq!(tokens, 16, "the workload text must be 16 tokens");
        run_group(c, &format!("qwen3-0.6b-{variant}"), &dir, &texts, &[1, 2]);
    }
}

criterion_group!(benches, minilm, qwen3_06b);
criterion_main!(benches);

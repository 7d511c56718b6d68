//! akidb as a local RAG backend, in-process: ingest a folder of markdown, ask a question, print
//! the best passages assembled as prompt context for a language model.
//!
//!     scripts/setup
//!     cargo run --release --example rag -- ./docs "How do I configure the server?"
//!
//! Passages are markdown sections (split at headings, then at ~1,200 characters). Re-running is
//! cheap: passage ids are derived from file and position, so ingest is an idempotent upsert.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use akidb::embed::{BatchConfig, Device, EmbeddingProvider, OnnxOptions, OnnxProvider};
use akidb::engine::Engine;
use akidb::model::ModelDir;
use akidb::store::{CollectionConfig, HnswParams, Metric, ModelBinding, NewDocument};

const COLLECTION: &str = "rag";
const PASSAGE_CHARS: usize = 1_200;
const TOP_K: usize = 5;

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            markdown_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "md" || e == "markdown") {
            out.push(path);
        }
    }
    Ok(())
}

/// Sections split at headings, long sections cut at paragraph breaks near `PASSAGE_CHARS`.
fn passages(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let heading = line.starts_with('#');
        if (heading && !current.trim().is_empty()) || (current.len() > PASSAGE_CHARS && line.trim().is_empty()) {
            out.push(std::mem::take(&mut current));
        }
        current.push_str(line);
        current.push('\n');
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out.into_iter().map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(folder), Some(question)) = (args.next(), args.next()) else {
        eprintln!("usage: rag <markdown folder> <question>");
        std::process::exit(2);
    };
    let model = ModelDir::resolve("minilm-l6-v2", Path::new("models"))?;
    let options = OnnxOptions {
        ort_library: akidb::embed::runtime::default_ort_library(),
        device: Device::Auto,
        intra_threads: None,
        cache_dir: PathBuf::from("data/coreml-cache"),
        keep_graph: false,
        interactive_threads: 0,
        spinning: true,
    };
    let provider = OnnxProvider::load(&model, &options, BatchConfig::default())?;
    let engine = Engine::open(Path::new("data/rag-example"))?;
    let collection = match engine.collection(COLLECTION) {
        Ok(collection) => collection,
        Err(_) => engine.create_collection(CollectionConfig {
            id: String::new(),
            name: COLLECTION.into(),
            model: ModelBinding { name: model.manifest.name.clone(), dims: model.manifest.dims, pooling: model.manifest.pooling, query_instruction: None },
            metric: Metric::Cosine,
            hnsw: HnswParams::default(),
            created_at_ms: 0,
        })?,
    };

    let mut files = Vec::new();
    markdown_files(Path::new(&folder), &mut files)?;
    for file in &files {
        let chunks = passages(&std::fs::read_to_string(file)?);
        let embeddings = provider.embed_documents(chunks.clone()).wait().map_err(|e| e.to_string())?;
        let documents = chunks
            .into_iter()
            .zip(embeddings)
            .enumerate()
            .map(|(i, (text, e))| {
                let source = serde_json::json!({"source": file.display().to_string(), "passage": i});
                NewDocument { id: format!("{}#{i}", file.display()), text, metadata: source.as_object().cloned().unwrap_or_default(), vector: e.embedding }
            })
            .collect();
        Arc::clone(&collection).upsert(documents)?;
    }
    eprintln!("{} files indexed, {} passages in the collection", files.len(), collection.stats().documents);

    let query = provider.embed_queries(vec![question.clone()]).wait().map_err(|e| e.to_string())?;
    let vector = collection.prepare_vector(query[0].embedding.clone())?;
    let hits = collection.search(&vector, TOP_K, None, None)?;
    println!("Answer the question using only the context below. Cite sources.\n");
    for (rank, hit) in hits.iter().enumerate() {
        let source = hit.document.metadata.get("source").and_then(|s| s.as_str()).unwrap_or("?");
        println!("[{}] {source} (score {:.3})\n{}\n", rank + 1, hit.score, hit.document.text);
    }
    println!("Question: {question}");
    engine.dump_all()?;
    Ok(())
}

//! akidb as a local RAG backend, in-process: ingest a folder of markdown and text files, ask a
//! question, print the best passages assembled as prompt context for a language model.
//!
//!     scripts/setup
//!     cargo run --release --example rag -- ./docs "How do I configure the server?"
//!
//! It calls the same service layer as the REST API: documents are split into passages that fit
//! the model's window (the collection's default chunking), searched in hybrid mode (BM25 +
//! dense, fused), and each hit carries its passage's character offsets in the file. Re-running
//! is cheap: a file's id is its path, so ingest is an idempotent upsert.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use akidb::embed::{BatchConfig, Device, OnnxOptions, OnnxProvider};
use akidb::engine::Engine;
use akidb::model::ModelDir;
use akidb::service::{DocumentInput, Limits, NewCollection, SearchQuery, Service};

const COLLECTION: &str = "rag";
const TOP_K: usize = 5;
/// Files per ingest call: bounds memory and shows progress on large folders.
const FILES_PER_BATCH: usize = 32;

fn text_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            text_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "md" || e == "markdown" || e == "txt") {
            out.push(path);
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(folder), Some(question)) = (args.next(), args.next()) else {
        eprintln!("usage: rag <folder of .md/.txt files> <question>");
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
    let provider = Arc::new(OnnxProvider::load(&model, &options, BatchConfig::default())?);
    let engine = Arc::new(Engine::open(Path::new("data/rag-example"))?);
    let service = Service::new(engine.clone(), vec![provider], Limits::default());
    if service.collection(COLLECTION).is_err() {
        service.create_collection(NewCollection { name: COLLECTION.into(), ..NewCollection::default() }).await?;
    }

    let mut files = Vec::new();
    text_files(Path::new(&folder), &mut files)?;
    let mut passages = 0;
    for batch in files.chunks(FILES_PER_BATCH) {
        let mut inputs = Vec::with_capacity(batch.len());
        for file in batch {
            let text = std::fs::read_to_string(file)?;
            if text.trim().is_empty() {
                continue;
            }
            let metadata = serde_json::json!({"source": file.display().to_string()});
            inputs.push(DocumentInput { id: Some(file.display().to_string()), text, metadata: metadata.as_object().cloned(), vector: None });
        }
        if inputs.is_empty() {
            continue;
        }
        passages += service.ingest(COLLECTION, inputs).await?.iter().map(|d| d.passages).sum::<usize>();
    }
    eprintln!("{} files indexed as {passages} passages", files.len());

    let hits = service.search_one(COLLECTION, SearchQuery { query: Some(question.clone()), k: TOP_K, ..SearchQuery::default() }).await?;
    println!("Answer the question using only the context below. Cite sources.\n");
    for (rank, hit) in hits.iter().enumerate() {
        println!("[{}] {} chars {}..{} (score {:.4})\n{}\n", rank + 1, hit.id, hit.span.start, hit.span.end, hit.score, hit.text.as_deref().unwrap_or(""));
    }
    println!("Question: {question}");
    engine.dump_all()?;
    Ok(())
}

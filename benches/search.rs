//! Index build time, single-thread QPS and recall@10 at several ef, on GloVe-50.
//!
//! Three search paths on the same graph, so that the cost of each layer is visible:
//! - `hnsw_rs`:  `Hnsw::search` called directly (the library alone)
//! - `index`:    akidb's `VectorIndex` wrapper around the same kind of graph
//! - `engine`:   `Collection::search` (tombstone check, document fetch from sled)
//! Writes target/bench-results/search.json, which benches/peers/search_vs_hnswlib.py reads to
//! print the ratios against hnswlib. Run: `cargo bench --bench search` (after
//! `scripts/setup --test-data`). AKIDB_BENCH_N (default 100000) sets the corpus size.

use std::path::PathBuf;
use std::time::Instant;

use akidb::engine::{Engine, Filter, FilterStrategy};
use akidb::index::new_index;
use akidb::store::{CollectionConfig, HnswParams, Metric, ModelBinding, NewDocument};
use hnsw_rs::prelude::{DistDot, Hnsw};

const QUERIES: usize = 1_000;
const K: usize = 10;
const EFS: [usize; 6] = [10, 16, 32, 64, 128, 256];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn glove(rows: usize) -> Vec<Vec<f32>> {
    let path = repo().join("testdata/glove_6B_50d_emb.npy");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}: run scripts/setup --test-data", path.display()));
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).expect("npy header");
    assert!(header.contains("'fortran_order': True") && header.contains("(400000, 50)"), "unexpected {header}");
    let data: Vec<f32> = bytes[10 + header_len..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    (0..rows)
        .map(|i| {
            let v: Vec<f32> = (0..50).map(|j| data[j * 400_000 + i]).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            v.iter().map(|x| x / norm).collect()
        })
        .collect()
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4096
}

fn truth(corpus: &[Vec<f32>], queries: &[Vec<f32>]) -> Vec<Vec<u64>> {
    queries
        .iter()
        .map(|q| {
            let mut scored: Vec<(f32, u64)> =
                corpus.iter().enumerate().map(|(i, v)| (q.iter().zip(v).map(|(a, b)| a * b).sum::<f32>(), i as u64)).collect();
            scored.select_nth_unstable_by(K, |a, b| b.0.total_cmp(&a.0));
            let mut top: Vec<(f32, u64)> = scored[..K].to_vec();
            top.sort_by(|a, b| b.0.total_cmp(&a.0));
            top.into_iter().map(|(_, i)| i).collect()
        })
        .collect()
}

fn recall(found: &[u64], truth: &[u64]) -> f64 {
    found.iter().filter(|p| truth.contains(p)).count() as f64 / truth.len() as f64
}

/// Runs every query once at `ef` on one thread; returns (QPS, mean recall@10).
fn sweep(queries: &[Vec<f32>], truth: &[Vec<u64>], mut search: impl FnMut(&[f32]) -> Vec<u64>) -> (f64, f64) {
    let started = Instant::now();
    let results: Vec<Vec<u64>> = queries.iter().map(|q| search(q)).collect();
    let seconds = started.elapsed().as_secs_f64();
    let mean = results.iter().zip(truth).map(|(f, t)| recall(f, t)).sum::<f64>() / queries.len() as f64;
    (queries.len() as f64 / seconds, mean)
}

fn main() {
    let n: usize = std::env::var("AKIDB_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let params = HnswParams::default();
    let all = glove(n + QUERIES);
    let (corpus, queries) = all.split_at(n);
    let truth = truth(corpus, queries);
    let points: Vec<(u64, Vec<f32>)> = corpus.iter().cloned().enumerate().map(|(i, v)| (i as u64, v)).collect();
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    println!("GloVe-50, {n} vectors, {QUERIES} queries, M {} ef_construction {}, build on {threads} threads", params.m, params.ef_construction);

    // hnsw_rs alone, built with its own parallel insert on rayon's global pool.
    let started = Instant::now();
    let raw: Hnsw<'static, f32, DistDot> = Hnsw::new(params.m, n, 16, params.ef_construction, DistDot);
    let data: Vec<(&[f32], usize)> = corpus.iter().enumerate().map(|(i, v)| (v.as_slice(), i)).collect();
    raw.parallel_insert_slice(&data);
    let raw_build = started.elapsed().as_secs_f64();
    drop(data);

    // akidb's index wrapper.
    let rss_before = rss_bytes();
    let started = Instant::now();
    let index = new_index(Metric::Cosine, &params, n).expect("index");
    index.insert(&points);
    let index_build = started.elapsed().as_secs_f64();
    let index_rss = rss_bytes().saturating_sub(rss_before);

    // The engine: sled writes (fsync per batch) + index, as an ingest would do it.
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::open(dir.path()).expect("engine");
    let config = CollectionConfig {
        id: String::new(),
        name: "glove".into(),
        model: ModelBinding { name: "vectors".into(), dims: 50, pooling: akidb::model::Pooling::Mean, query_instruction: None },
        metric: Metric::Cosine,
        hnsw: params,
        created_at_ms: 0,
        chunking: None,
    };
    let collection = engine.create_collection(config).expect("collection");
    let started = Instant::now();
    for chunk in corpus.chunks(10_000).enumerate() {
        let (c, vectors) = chunk;
        let docs = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let row = c * 10_000 + i;
                let metadata = serde_json::json!({"bucket": row % 1000}).as_object().cloned().unwrap_or_default();
                NewDocument::single(format!("w{row}"), String::new(), metadata, v.clone())
            })
            .collect();
        collection.upsert(docs).expect("upsert");
    }
    let engine_build = started.elapsed().as_secs_f64();
    println!("build seconds: hnsw_rs {raw_build:.1}, akidb index {index_build:.1}, akidb engine (sled + index) {engine_build:.1}");
    println!("index RSS: {:.1} MB for {n} vectors ({:.0} bytes/vector)", index_rss as f64 / 1e6, index_rss as f64 / n as f64);

    let mut rows = Vec::new();
    println!("| ef | hnsw_rs QPS | index QPS | engine QPS | recall@10 (hnsw_rs / index / engine) |");
    for ef in EFS {
        let (raw_qps, raw_recall) = sweep(queries, &truth, |q| raw.search(q, K, ef).into_iter().map(|n| n.d_id as u64).collect());
        let (index_qps, index_recall) = sweep(queries, &truth, |q| index.search(q, K, ef, None).into_iter().map(|h| h.point).collect());
        let (engine_qps, engine_recall) = sweep(queries, &truth, |q| {
            collection
                .search(q, K, Some(ef), None)
                .expect("search")
                .into_iter()
                .map(|f| f.document.id[1..].parse::<u64>().unwrap_or(u64::MAX))
                .collect()
        });
        println!("| {ef} | {raw_qps:.0} | {index_qps:.0} | {engine_qps:.0} | {raw_recall:.3} / {index_recall:.3} / {engine_recall:.3} |");
        rows.push(serde_json::json!({
            "ef": ef, "hnsw_rs_qps": raw_qps, "hnsw_rs_recall": raw_recall, "index_qps": index_qps,
            "index_recall": index_recall, "engine_qps": engine_qps, "engine_recall": engine_recall,
        }));
    }
    // Filtered search: exact scan over the matches vs the filtered graph walk, by selectivity.
    println!("| filter selectivity | matches | exact QPS | exact recall | graph QPS (ef 64) | graph recall |");
    let mut filter_rows = Vec::new();
    let filter_queries = &queries[..200];
    for buckets in [1usize, 10, 50, 200, 500] {
        let filter = Filter::parse(&serde_json::json!({"bucket": {"$lt": buckets}})).expect("filter");
        let allowed: Vec<usize> = (0..n).filter(|i| i % 1000 < buckets).collect();
        let filtered_truth: Vec<Vec<u64>> = filter_queries
            .iter()
            .map(|q| {
                let mut scored: Vec<(f32, u64)> = allowed.iter().map(|&i| (q.iter().zip(&corpus[i]).map(|(a, b)| a * b).sum::<f32>(), i as u64)).collect();
                scored.sort_by(|a, b| b.0.total_cmp(&a.0));
                scored.into_iter().take(K).map(|(_, i)| i).collect()
            })
            .collect();
        let run = |strategy| {
            sweep(filter_queries, &filtered_truth, |q| {
                collection
                    .search_with(q, K, Some(64), Some(&filter), strategy)
                    .expect("search")
                    .into_iter()
                    .map(|f| f.document.id[1..].parse::<u64>().unwrap_or(u64::MAX))
                    .collect()
            })
        };
        let (exact_qps, exact_recall) = run(FilterStrategy::Exact);
        let (graph_qps, graph_recall) = run(FilterStrategy::Graph);
        let selectivity = buckets as f64 / 1000.0;
        println!("| {:.1}% | {} | {exact_qps:.0} | {exact_recall:.3} | {graph_qps:.0} | {graph_recall:.3} |", selectivity * 100.0, allowed.len());
        filter_rows.push(serde_json::json!({
            "selectivity": selectivity, "matches": allowed.len(), "exact_qps": exact_qps, "exact_recall": exact_recall,
            "graph_qps": graph_qps, "graph_recall": graph_recall,
        }));
    }

    let out = repo().join("target/bench-results");
    std::fs::create_dir_all(&out).expect("results dir");
    let report = serde_json::json!({
        "n": n, "queries": QUERIES, "m": params.m, "ef_construction": params.ef_construction, "threads": threads,
        "build_seconds": {"hnsw_rs": raw_build, "index": index_build, "engine": engine_build},
        "index_rss_bytes": index_rss, "rows": rows, "filters": filter_rows,
    });
    std::fs::write(out.join("search.json"), serde_json::to_vec_pretty(&report).expect("json")).expect("write results");
}

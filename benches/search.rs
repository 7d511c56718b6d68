//! Every index backend on GloVe-50: build time, bytes per vector, dump reload time, and
//! single-thread QPS with recall@10 at several ef; then filtered search through the engine (the
//! payload index and its planner) at 0.1 / 1 / 10 / 50 % selectivity against unfiltered search
//! at the same ef.
//!
//! Writes target/bench-results/search.json, which benches/peers/search_vs_hnswlib.py reads to
//! run hnswlib on the same data in the same run and print the ratios. Run:
//! `benches/peers/search_vs_hnswlib` (after `scripts/setup --test-data`). AKIDB_BENCH_N (default
//! 100000) sets the corpus size; AKIDB_BENCH_BACKENDS (default all) picks backends, comma-separated.

use std::path::PathBuf;
use std::time::Instant;

use akidb::domain::IndexBackend;
use akidb::engine::{Engine, Filter, FilterStrategy};
use akidb::index::{dump, new_index, IndexSpec};
use akidb::store::{CollectionConfig, HnswParams, Metric, NewDocument};

const QUERIES: usize = 1_000;
const K: usize = 10;
const EFS: [usize; 7] = [10, 16, 24, 32, 64, 128, 256];
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The vector set: `AKIDB_BENCH_DATA` (a float32 `.npy`, C or Fortran order), by default
/// GloVe-50; rows L2-normalized. Returns the rows and their width.
fn vectors(rows: usize) -> (Vec<Vec<f32>>, usize) {
    let path = std::env::var("AKIDB_BENCH_DATA").map(PathBuf::from).unwrap_or_else(|_| repo().join("testdata/glove_6B_50d_emb.npy"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}: run scripts/setup --test-data", path.display()));
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).expect("npy header");
    assert!(header.contains("'descr': '<f4'"), "float32 expected: {header}");
    let shape = header.split("'shape': (").nth(1).and_then(|r| r.split(')').next()).expect("npy shape");
    let dims: Vec<usize> = shape.split(',').filter_map(|d| d.trim().parse().ok()).collect();
    let (total, width) = (dims[0], dims[1]);
    assert!(rows <= total, "{} holds {total} rows, {rows} wanted", path.display());
    let fortran = header.contains("'fortran_order': True");
    let data: Vec<f32> = bytes[10 + header_len..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let rows = (0..rows)
        .map(|i| {
            let v: Vec<f32> = (0..width).map(|j| if fortran { data[j * total + i] } else { data[i * width + j] }).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            v.iter().map(|x| x / norm).collect()
        })
        .collect();
    (rows, width)
}

/// A backend name, optionally with the kernel capped: `hnsw:avx2` runs the AVX2 + FMA kernels
/// on an AVX-512 machine (`AKIDB_SIMD`), so one machine measures both paths.
fn backend_of(name: &str) -> Option<(IndexBackend, Option<&str>)> {
    let (backend, simd) = match name.split_once(':') {
        Some((b, simd)) => (b, Some(simd)),
        None => (name, None),
    };
    IndexBackend::ALL.into_iter().find(|b| b.as_str() == backend.trim()).map(|b| (b, simd))
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
    let names = std::env::var("AKIDB_BENCH_BACKENDS").unwrap_or_else(|_| IndexBackend::ALL.map(|b| b.as_str()).join(","));
    let backends: Vec<(&str, IndexBackend, Option<&str>)> = names.split(',').filter_map(|name| backend_of(name).map(|(b, simd)| (name.trim(), b, simd))).collect();
    let params = HnswParams::default();
    let (all, dims) = vectors(n + QUERIES);
    let (corpus, queries) = all.split_at(n);
    let truth = truth(corpus, queries);
    let points: Vec<(u64, Vec<f32>)> = corpus.iter().cloned().enumerate().map(|(i, v)| (i as u64, v)).collect();
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    println!("{dims}-d, {n} vectors, {QUERIES} queries, M {} ef_construction {}, build on {threads} threads", params.m, params.ef_construction);

    let mut results = Vec::new();
    for (name, backend, simd) in backends {
        match simd {
            // Read when an index picks its kernels (at creation and at load).
            Some(simd) => std::env::set_var("AKIDB_SIMD", simd),
            None => std::env::remove_var("AKIDB_SIMD"),
        }
        let spec = IndexSpec { metric: Metric::Cosine, dims, params, backend };
        let rss_before = rss_bytes();
        let started = Instant::now();
        let index = new_index(&spec, n).expect("index");
        index.insert(&points);
        let build = started.elapsed().as_secs_f64();
        let rss = rss_bytes().saturating_sub(rss_before);
        let dir = tempfile::tempdir().expect("tempdir");
        dump::save(&*index, dir.path(), n as u64, &spec).expect("dump");
        let dump_bytes: u64 = walk_bytes(dir.path());
        let started = Instant::now();
        let (reloaded, _) = dump::load(dir.path(), &spec).expect("load").expect("a dump");
        let reload = started.elapsed().as_secs_f64();
        assert_eq!(reloaded.len(), n);
        drop(reloaded);
        println!("{name}: build {build:.1} s, {:.0} B/vector RSS, dump {:.0} B/vector, reload {reload:.2} s", rss as f64 / n as f64, dump_bytes as f64 / n as f64);
        let mut rows = Vec::new();
        for ef in EFS {
            let (qps, recall) = sweep(queries, &truth, |q| index.search(q, K, ef, None).into_iter().map(|h| h.point).collect());
            println!("  ef {ef}: {qps:.0} QPS, recall@10 {recall:.3}");
            rows.push(serde_json::json!({"ef": ef, "qps": qps, "recall": recall}));
        }
        results.push(serde_json::json!({
            "backend": name, "build_seconds": build, "rss_bytes": rss, "dump_bytes": dump_bytes, "reload_seconds": reload, "rows": rows,
        }));
    }

    // AKIDB_BENCH_ENGINE=0 skips the engine part (the index-only comparison of a second set).
    let (engine_build, filter_rows) = if std::env::var("AKIDB_BENCH_ENGINE").as_deref() == Ok("0") {
        (0.0, Vec::new())
    } else {
        engine_filters(corpus, queries, &truth, dims, params)
    };

    let out = repo().join("target/bench-results");
    std::fs::create_dir_all(&out).expect("results dir");
    let report = serde_json::json!({
        "n": n, "queries": QUERIES, "m": params.m, "ef_construction": params.ef_construction, "threads": threads,
        "backends": results, "engine_build_seconds": engine_build, "default_backend": IndexBackend::default().as_str(), "filters": filter_rows,
    });
    std::fs::write(out.join("search.json"), serde_json::to_vec_pretty(&report).expect("json")).expect("write results");
}

/// The engine on the default backend (sled writes + payload index + graph, as an ingest would),
/// then filtered vs unfiltered search: (seconds to write the corpus, one row per filter).
fn engine_filters(corpus: &[Vec<f32>], queries: &[Vec<f32>], truth: &[Vec<u64>], dims: usize, params: HnswParams) -> (f64, Vec<serde_json::Value>) {
    let n = corpus.len();
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::open(dir.path()).expect("engine");
    let config = CollectionConfig {
        id: String::new(),
        name: "glove".into(),
        model: None,
        dims,
        metric: Metric::Cosine,
        hnsw: params,
        backend: IndexBackend::default(),
        created_at_ms: 0,
        chunking: None,
    };
    let collection = engine.create_collection(config).expect("collection");
    let started = Instant::now();
    for (c, vectors) in corpus.chunks(10_000).enumerate() {
        let docs = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let row = c * 10_000 + i;
                let metadata = serde_json::json!({"bucket": row % 1000, "parity": if row % 2 == 0 { "even" } else { "odd" }}).as_object().cloned().unwrap_or_default();
                NewDocument::single(format!("w{row}"), String::new(), metadata, v.clone())
            })
            .collect();
        collection.upsert(docs).expect("upsert");
    }
    let engine_build = started.elapsed().as_secs_f64();
    println!("engine ({}): {n} documents written and indexed in {engine_build:.1} s", IndexBackend::default().as_str());

    // Filtered vs unfiltered at the same ef, the planner choosing (Auto), recall against exact
    // filtered search. Each filter is a numeric range on `bucket` (0..1000).
    let id_of = |f: &akidb::engine::Found| f.document.id[1..].parse::<u64>().unwrap_or(u64::MAX);
    let filter_queries = &queries[..500];
    let unfiltered_truth: Vec<Vec<u64>> = truth[..500].to_vec();
    let mut filter_rows = Vec::new();
    for ef in [64usize] {
        let (unfiltered_qps, unfiltered_recall) =
            sweep(filter_queries, &unfiltered_truth, |q| collection.search(q, K, Some(ef), None).expect("search").iter().map(id_of).collect());
        println!("engine, ef {ef}: unfiltered {unfiltered_qps:.0} QPS, recall {unfiltered_recall:.3}");
        for (label, filter_json, keep) in [
            ("0.1%", serde_json::json!({"bucket": {"$lt": 1}}), Box::new(|i: usize| i % 1000 < 1) as Box<dyn Fn(usize) -> bool>),
            ("1%", serde_json::json!({"bucket": {"$lt": 10}}), Box::new(|i: usize| i % 1000 < 10)),
            ("10%", serde_json::json!({"bucket": {"$lt": 100}}), Box::new(|i: usize| i % 1000 < 100)),
            ("50%", serde_json::json!({"bucket": {"$lt": 500}}), Box::new(|i: usize| i % 1000 < 500)),
            ("50% keyword", serde_json::json!({"parity": "even"}), Box::new(|i: usize| i % 2 == 0)),
        ] {
            let filter = Filter::parse(&filter_json).expect("filter");
            let allowed: Vec<usize> = (0..n).filter(|&i| keep(i)).collect();
            let filtered_truth: Vec<Vec<u64>> = filter_queries
                .iter()
                .map(|q| {
                    let mut scored: Vec<(f32, u64)> = allowed.iter().map(|&i| (q.iter().zip(&corpus[i]).map(|(a, b)| a * b).sum::<f32>(), i as u64)).collect();
                    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
                    scored.into_iter().take(K).map(|(_, i)| i).collect()
                })
                .collect();
            let run = |strategy| sweep(filter_queries, &filtered_truth, |q| collection.search_with(q, K, Some(ef), Some(&filter), strategy).expect("search").iter().map(id_of).collect());
            let (auto_qps, auto_recall) = run(FilterStrategy::Auto);
            let (exact_qps, exact_recall) = run(FilterStrategy::Exact);
            let (graph_qps, graph_recall) = run(FilterStrategy::Graph);
            println!(
                "  {label}: auto {auto_qps:.0} QPS ({:.2}x unfiltered) recall {auto_recall:.3}; exact {exact_qps:.0} / {exact_recall:.3}; graph {graph_qps:.0} / {graph_recall:.3}",
                auto_qps / unfiltered_qps
            );
            filter_rows.push(serde_json::json!({
                "label": label, "ef": ef, "matches": allowed.len(), "unfiltered_qps": unfiltered_qps, "auto_qps": auto_qps, "auto_recall": auto_recall,
                "exact_qps": exact_qps, "exact_recall": exact_recall, "graph_qps": graph_qps, "graph_recall": graph_recall,
            }));
        }
    }

    (engine_build, filter_rows)
}

fn walk_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

//! Crash and concurrency windows, reached deterministically through failpoints (the `fail`
//! crate; this file needs `--features failpoints`, which scripts/test passes). Each test names
//! the item of issue 9 it covers. In-process tests hold a `FailScenario`, which serializes them:
//! failpoints are process-wide. Crash windows run in a child process (this test binary, running
//! `fault_child`) that a failpoint aborts, so nothing is flushed on the way out.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use akidb::engine::{Engine, EngineError};
use akidb::store::migrations::frozen::{self, v1, v2, v3};
use akidb::store::{Metric, SledStore, SCHEMA_VERSION};
use common::server::Server;
use common::hold::{finishes_within, Hold};
use common::*;
use fail::FailScenario;
use serde_json::{json, Value};

const CHILD_SCENARIO: &str = "AKIDB_FAULT_SCENARIO";
const CHILD_DIR: &str = "AKIDB_FAULT_DIR";
const DIMS: usize = 16;

fn vector_for(n: u64) -> Vec<f32> {
    unit_vector(n, DIMS)
}

fn docs(range: std::ops::Range<u64>) -> Vec<akidb::store::NewDocument> {
    range.map(|n| new_doc(format!("doc-{n}"), vector_for(n), json!({"n": n}))).collect()
}

/// Every id is found at rank 1 by its own vector, with score ≥ 0.999.
fn assert_rank_one(collection: &akidb::engine::Collection, numbers: impl IntoIterator<Item = u64>, context: &str) {
    for n in numbers {
        let found = collection.search(&vector_for(n), 1, Some(64), None).unwrap();
        assert_eq!(found.first().map(|f| f.document.id.as_str()), Some(format!("doc-{n}").as_str()), "{context}: doc-{n} is not at rank 1");
        assert!(found[0].score >= 0.999, "{context}: doc-{n} scores {}", found[0].score);
    }
}

fn assert_index_matches_store(engine: &Engine, name: &str) {
    let collection = engine.collection(name).unwrap();
    let stats = collection.stats();
    let count = engine.store().count(collection.id()).unwrap();
    assert_eq!(stats.graph_points - stats.tombstones, count, "index and store disagree: {stats:?}");
}

// ---------------------------------------------------------------------------------------------
// Child processes

fn run_child(scenario: &str, dir: &Path) -> std::process::ExitStatus {
    Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "fault_child", "--nocapture", "--test-threads", "1"])
        .env(CHILD_SCENARIO, scenario)
        .env(BACKEND_ENV, backend().as_str())
        .env(CHILD_DIR, dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("spawn the child")
}

/// The child side of the crash tests: what it does depends on `AKIDB_FAULT_SCENARIO`. It ends
/// by aborting (no destructors, no flush: as close to a power cut as a test gets).
#[test]
#[ignore = "run by the crash tests in this file as their child process"]
fn fault_child() {
    let scenario = std::env::var(CHILD_SCENARIO).expect("fault_child is started by a test in tests/faults.rs");
    let dir = std::path::PathBuf::from(std::env::var(CHILD_DIR).expect("dir"));
    let _scenario = FailScenario::setup();
    if scenario == "watermark" {
        watermark_child(&dir);
    } else if let Some(point) = scenario.strip_prefix("migrate:") {
        fail::cfg_callback(point, || std::process::abort()).unwrap();
        let _ = Engine::open(&dir.join("data"));
    } else {
        panic!("unknown scenario {scenario}");
    }
}

/// Item 1: a write has updated the index but not flushed; a dump runs; the process dies.
fn watermark_child(dir: &Path) {
    // No background flush: what survives the abort is exactly what was flushed.
    let store = Arc::new(SledStore::open_with(&dir.join("data/store"), None).unwrap());
    let engine = Arc::new(Engine::with_store(store, dir.join("data/index")).unwrap());
    let collection = engine.create_collection(vector_collection("w", DIMS, Metric::Cosine)).unwrap();
    collection.upsert(docs(0..10)).unwrap();
    let hold = Hold::at("collection.upsert.before_flush");
    let writer = collection.clone();
    std::thread::spawn(move || writer.upsert(docs(10..20)));
    hold.wait_reached();
    engine.dump_all().unwrap();
    std::process::abort();
}

per_backend! {
    /// Item 1. Fails on the old code: the dump recorded a watermark of 20 while the store's durable
    /// counter was 10, so after the crash doc-20.. reused points 10.. and were hidden as tombstones.
    fn a_dump_never_covers_points_the_store_could_lose() {
        // Held while this process writes and dumps, so no other test's failpoint catches its calls.
        let scenario = FailScenario::setup();
        let dir = tempfile::tempdir().unwrap();
        let status = run_child("watermark", dir.path());
        assert!(!status.success(), "the child must die at the abort, got {status}");
        let engine = Engine::open(&dir.path().join("data")).unwrap();
        let collection = engine.collection("w").unwrap();
        assert_index_matches_store(&engine, "w");
        assert_rank_one(&collection, 0..10, "acknowledged before the crash");
        collection.upsert(docs(20..30)).unwrap();
        assert_rank_one(&collection, 20..30, "written after the crash");
        assert_index_matches_store(&engine, "w");
        drop((collection, engine));
        // And again after a clean restart, from the dump taken at shutdown.
        let engine = Engine::open(&dir.path().join("data")).unwrap();
        engine.dump_all().unwrap();
        drop(engine);
        let engine = Engine::open(&dir.path().join("data")).unwrap();
        assert_rank_one(&engine.collection("w").unwrap(), (0..10).chain(20..30), "after a restart");
        assert_index_matches_store(&engine, "w");
        scenario.teardown();
    }
}

// ---------------------------------------------------------------------------------------------
// In-process windows

per_backend! {
    /// Item 2. Fails on the old code: the in-flight write landed in the new collection's trees (its
    /// point counter and documents) but never in its graph.
    fn a_write_in_flight_across_drop_and_recreate_does_not_reach_the_new_collection() {
        let scenario = FailScenario::setup();
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(Engine::open(dir.path()).unwrap());
        let old = engine.create_collection(vector_collection("c", DIMS, Metric::Cosine)).unwrap();
        old.upsert(docs(0..5)).unwrap();
        let hold = Hold::at("collection.upsert.before_store");
        let in_flight = std::thread::spawn(move || old.upsert(docs(100..101)));
        hold.wait_reached();
        engine.drop_collection("c").unwrap();
        let new = engine.create_collection(vector_collection("c", DIMS, Metric::Cosine)).unwrap();
        hold.release();
        match in_flight.join().unwrap() {
            Err(EngineError::CollectionNotFound(name)) => assert_eq!(name, "c"),
            other => panic!("a write to a dropped collection must fail with not found, got {other:?}"),
        }
        assert_eq!(engine.store().count(new.id()).unwrap(), 0, "nothing of the old collection's write in the new one");
        assert_eq!(engine.store().next_point(new.id()).unwrap(), 0, "the new collection's point counter starts at 0");
        assert!(new.get("doc-0").unwrap().is_none() && new.get("doc-100").unwrap().is_none());
        new.upsert(docs(200..210)).unwrap();
        assert_rank_one(&new, 200..210, "the re-created collection");
        assert_index_matches_store(&engine, "c");
        drop((new, engine));
        let engine = Engine::open(dir.path()).unwrap();
        assert_eq!(engine.store().count(engine.collection("c").unwrap().id()).unwrap(), 10);
        assert_index_matches_store(&engine, "c");
        scenario.teardown();
    }
}

per_backend! {
    /// Item 3. Fails on the old code: drop held the engine-wide lock across sled's flush and
    /// drop_tree, so every lookup (which handlers do on tokio's workers) waited for it.
    fn dropping_a_collection_does_not_stall_lookups_of_others() {
        let scenario = FailScenario::setup();
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(Engine::open(dir.path()).unwrap());
        engine.create_collection(vector_collection("big", DIMS, Metric::Cosine)).unwrap().upsert(docs(0..50)).unwrap();
        engine.create_collection(vector_collection("other", DIMS, Metric::Cosine)).unwrap().upsert(docs(0..5)).unwrap();
        let hold = Hold::at("store.drop_collection.after_commit");
        let dropper = engine.clone();
        let dropping = std::thread::spawn(move || dropper.drop_collection("big"));
        hold.wait_reached();
        let looker = engine.clone();
        let names = finishes_within(Duration::from_secs(10), "a lookup during a drop", move || {
            let other = looker.collection("other").unwrap();
            assert_eq!(other.stats().documents, 5);
            looker.collections().iter().map(|c| c.name().to_string()).collect::<Vec<_>>()
        });
        assert_eq!(names, ["other"], "the dropped collection is gone from lookups at once");
        hold.release();
        dropping.join().unwrap().unwrap();
        scenario.teardown();
    }
}

per_backend! {
    /// Item 3 (and 1). Fails on the old code: the dump held the writer lock while it wrote and
    /// fsynced files, so a write waited for the whole dump.
    fn a_dump_in_progress_does_not_block_writers_and_loses_nothing() {
        let scenario = FailScenario::setup();
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(Engine::open(dir.path()).unwrap());
        let collection = engine.create_collection(vector_collection("d", DIMS, Metric::Cosine)).unwrap();
        collection.upsert(docs(0..100)).unwrap();
        let hold = Hold::at("collection.dump.frozen");
        let dumper = engine.clone();
        let dumping = std::thread::spawn(move || dumper.dump_all());
        hold.wait_reached();
        let writer = collection.clone();
        finishes_within(Duration::from_secs(10), "a write during a dump", move || {
            writer.upsert(docs(100..120)).unwrap();
            writer.upsert(vec![new_doc("doc-5".into(), vector_for(5), json!({"n": 5, "v": 2}))]).unwrap();
            writer.delete(&["doc-6".into()]).unwrap();
        });
        // Read-your-writes while the graph is frozen: new points are searched next to it.
        assert_rank_one(&collection, 100..120, "written during the dump");
        assert_eq!(collection.search(&vector_for(5), 1, None, None).unwrap()[0].document.metadata["v"], 2);
        assert!(collection.search(&vector_for(6), 3, None, None).unwrap().iter().all(|f| f.document.id != "doc-6"));
        hold.release();
        dumping.join().unwrap().unwrap();
        assert_rank_one(&collection, (0..5).chain(7..120), "after the dump");
        assert_index_matches_store(&engine, "d");
        drop((collection, engine));
        let engine = Engine::open(dir.path()).unwrap();
        let collection = engine.collection("d").unwrap();
        assert_rank_one(&collection, (0..5).chain(7..120), "after reopening from that dump");
        assert!(collection.get("doc-6").unwrap().is_none());
        assert_index_matches_store(&engine, "d");
        scenario.teardown();
    }
}

/// Item 10: the graph rewrite is kept only when the probe batch proves it exact for the model at
/// hand; when the probe disagrees, the graph runs as shipped and vectors are unchanged.
#[test]
fn the_graph_rewrite_is_dropped_when_the_load_time_probe_disagrees() {
    let scenario = FailScenario::setup();
    let texts: Vec<String> = ["short", "a somewhat longer text so that the batch is padded", "x"].iter().map(|s| s.to_string()).collect();
    let proven = minilm(akidb::embed::BatchConfig::default());
    assert_eq!(akidb::embed::EmbeddingProvider::info(&proven).graph_rewrites, 6, "MiniLM's six scrubs are removed when proven");
    let expected = akidb::embed::EmbeddingProvider::embed_documents(&proven, texts.clone()).wait().unwrap();
    fail::cfg("embed.rewrite_probe.disagree", "return").unwrap();
    let refused = minilm(akidb::embed::BatchConfig::default());
    assert_eq!(akidb::embed::EmbeddingProvider::info(&refused).graph_rewrites, 0, "a disagreeing probe keeps the graph as shipped");
    let got = akidb::embed::EmbeddingProvider::embed_documents(&refused, texts).wait().unwrap();
    for (a, b) in got.iter().zip(&expected) {
        assert_eq!(a.embedding, b.embedding, "as shipped and rewritten agree bit for bit on MiniLM");
    }
    scenario.teardown();
}

// ---------------------------------------------------------------------------------------------
// Migrations killed midway (item 8)

const V1_COLLECTIONS: [&str; 2] = ["alpha", "beta"];
const V1_DOCS: u64 = 30;

/// A schema-v1 store written with the frozen v1 types: JSON configs and documents, no points.
fn write_v1_store(path: &Path) {
    let db = raw_sled(path);
    db.insert(b"schema_version", &1u32.to_be_bytes()).unwrap();
    let collections = db.open_tree("collections").unwrap();
    for name in V1_COLLECTIONS {
        let config = v1::CollectionConfig {
            name: name.into(),
            model: v1::ModelBinding { name: "vectors".into(), dims: DIMS, pooling: v1::Pooling::Mean, query_instruction: None },
            metric: v1::Metric::Cosine,
            hnsw: v1::HnswParams { m: 16, ef_construction: 200, ef_search: 64 },
            created_at_ms: 7,
        };
        collections.insert(name, serde_json::to_vec(&config).unwrap()).unwrap();
        let docs = db.open_tree(format!("docs/{name}")).unwrap();
        for n in 0..V1_DOCS {
            let doc = v1::Document { text: format!("{name} text {n}"), metadata: json!({"n": n}).as_object().cloned().unwrap(), vector: vector_for(n) };
            docs.insert(format!("doc-{n}"), serde_json::to_vec(&doc).unwrap()).unwrap();
        }
    }
    db.flush().unwrap();
}

/// Everything written in the old version is there, searchable, at the current version, and no
/// tree of an older layout or of the migration's bookkeeping is left.
fn assert_migrated(data: &Path, context: &str) {
    {
        let engine = Engine::open(data).unwrap_or_else(|e| panic!("{context}: reopen failed: {e}"));
        for name in V1_COLLECTIONS {
            let collection = engine.collection(name).unwrap();
            assert_eq!(engine.store().count(collection.id()).unwrap(), V1_DOCS as usize, "{context}: {name}");
            for n in 0..V1_DOCS {
                let doc = collection.get(&format!("doc-{n}")).unwrap().unwrap_or_else(|| panic!("{context}: {name}/doc-{n} lost"));
                assert_eq!((doc.text.as_str(), doc.metadata["n"].clone()), (format!("{name} text {n}").as_str(), json!(n)), "{context}");
                let vectors = collection.vectors_of(&doc.passages.iter().map(|p| p.point).collect::<Vec<_>>()).unwrap();
                assert_eq!(vectors.len(), 1, "{context}: an old document is one passage");
                assert!(max_abs_diff(&vectors[0].1, &vector_for(n)) < 1e-6, "{context}");
            }
            assert_rank_one(&collection, 0..V1_DOCS, context);
            assert_eq!(collection.config.created_at_ms, 7);
            assert_eq!(collection.config.chunking, None, "{context}: old documents stay one passage each");
            // v4 -> v5: an old collection keeps the backend its dumps were written by, and its model.
            assert_eq!(collection.config.backend, akidb::domain::IndexBackend::HnswRs, "{context}");
            assert_eq!(collection.config.model.as_ref().map(|m| m.dims), Some(collection.config.dims), "{context}");
            // The lexical index is built from the migrated text.
            assert_eq!(collection.lexical("text", 1000, None).unwrap().len(), V1_DOCS as usize, "{context}");
        }
    }
    let db = raw_sled(&data.join("store"));
    assert_eq!(db.get(b"schema_version").unwrap().unwrap().as_ref(), &SCHEMA_VERSION.to_be_bytes());
    let trees: Vec<String> = db.tree_names().iter().map(|t| String::from_utf8_lossy(t).into_owned()).collect();
    assert!(
        trees.iter().all(|t| !t.starts_with("docs/") && !t.starts_with("points/") && !t.ends_with("/docs") && !t.ends_with("/points") && !t.starts_with("migration_")),
        "{context}: leftover trees {trees:?}"
    );
}

#[test]
fn a_migration_killed_at_any_step_finishes_on_the_next_open() {
    let points = [
        "migrate.v1_to_v2.documents_written",
        "migrate.v1_to_v2.collection_done",
        "migrate.v2_to_v3.half_copied",
        "migrate.v2_to_v3.copied",
        "migrate.v2_to_v3.committed",
        "migrate.v3_to_v4.copied",
        "migrate.v4_to_v5.written",
        "migrate.v4_to_v5.flushed",
    ];
    for point in points {
        let dir = tempfile::tempdir().unwrap();
        write_v1_store(&dir.path().join("data/store"));
        let status = run_child(&format!("migrate:{point}"), dir.path());
        assert!(!status.success(), "the child must die at {point}, got {status}");
        assert_migrated(&dir.path().join("data"), &format!("killed at {point}"));
    }
    // Killed at every step in turn, each run resuming where the last one died.
    let dir = tempfile::tempdir().unwrap();
    write_v1_store(&dir.path().join("data/store"));
    for point in points {
        let status = run_child(&format!("migrate:{point}"), dir.path());
        assert!(!status.success(), "the child must die at {point}, got {status}");
    }
    assert_migrated(&dir.path().join("data"), "killed at every step in turn");
}

/// The documents of a v2 or v3 collection (the same records, under different tree names).
fn write_v2_documents(db: &sled::Db, name: &str, docs_tree: &str, points_tree: &str) {
    let (docs, points) = (db.open_tree(docs_tree).unwrap(), db.open_tree(points_tree).unwrap());
    for n in 0..V1_DOCS {
        let record = v2::DocRecord {
            point: n,
            text: format!("{name} text {n}"),
            metadata: json!({"n": n}).to_string(),
            vector: vector_for(n).iter().flat_map(|v| v.to_le_bytes()).collect(),
        };
        docs.insert(format!("doc-{n}"), frozen::encode(&record)).unwrap();
        points.insert(n.to_be_bytes(), format!("doc-{n}").as_bytes()).unwrap();
    }
}

/// A schema-v2 store written with the frozen v2 types migrates too.
#[test]
fn a_v2_store_written_with_frozen_types_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = raw_sled(&dir.path().join("data/store"));
        db.insert(b"schema_version", &2u32.to_be_bytes()).unwrap();
        for name in V1_COLLECTIONS {
            let config = v2::CollectionConfig {
                name: name.into(),
                model: v2::ModelBinding { name: "vectors".into(), dims: DIMS, pooling: v2::Pooling::Mean, query_instruction: None },
                metric: v2::Metric::Cosine,
                hnsw: v2::HnswParams { m: 16, ef_construction: 200, ef_search: 64 },
                created_at_ms: 7,
            };
            db.open_tree("collections").unwrap().insert(name, frozen::encode(&config)).unwrap();
            db.open_tree("counters").unwrap().insert(name, &V1_DOCS.to_be_bytes()).unwrap();
            write_v2_documents(&db, name, &v2::docs_tree(name), &v2::points_tree(name));
        }
        db.flush().unwrap();
    }
    std::fs::create_dir_all(dir.path().join("data/index/alpha")).unwrap();
    assert_migrated(&dir.path().join("data"), "v2 store");
    assert!(!dir.path().join("data/index/alpha").exists(), "index directories named by collection name are gone");
}

/// A schema-v3 store (one vector per document, trees `c/<id>/docs|points`) written with the
/// frozen v3 types opens as one passage per document.
#[test]
fn a_v3_store_written_with_frozen_types_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = raw_sled(&dir.path().join("data/store"));
        db.insert(b"schema_version", &3u32.to_be_bytes()).unwrap();
        for name in V1_COLLECTIONS {
            let id = format!("0190-{name}");
            let config = v3::CollectionConfig {
                id: id.clone(),
                name: name.into(),
                model: v3::ModelBinding { name: "vectors".into(), dims: DIMS, pooling: v3::Pooling::Mean, query_instruction: None },
                metric: v3::Metric::Cosine,
                hnsw: v3::HnswParams { m: 16, ef_construction: 200, ef_search: 64 },
                created_at_ms: 7,
            };
            db.open_tree("collections").unwrap().insert(name, frozen::encode(&config)).unwrap();
            db.open_tree("counters").unwrap().insert(id.as_str(), &V1_DOCS.to_be_bytes()).unwrap();
            write_v2_documents(&db, name, &v3::docs_tree(&id), &v3::points_tree(&id));
        }
        db.flush().unwrap();
    }
    assert_migrated(&dir.path().join("data"), "v3 store");
    let engine = Engine::open(&dir.path().join("data")).unwrap();
    let alpha = engine.collection("alpha").unwrap();
    assert_eq!(alpha.id(), "0190-alpha", "the id survives");
    assert!(engine.store().check_passages(alpha.id()).unwrap().is_empty());
    let doc = alpha.get("doc-3").unwrap().unwrap();
    assert_eq!((doc.passages.len(), doc.passages[0].point, doc.passages[0].span.end), (1, 3, "alpha text 3".len()));
}

// ---------------------------------------------------------------------------------------------
// Through the server (FAILPOINTS in its environment)

/// Item 7. Fails on the old code: the timeout answered 408 while the write went on and
/// committed; a retry with server-generated ids then duplicated the documents.
#[test]
fn a_timeout_either_writes_nothing_or_waits_for_the_committed_write() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(
        dir.path(),
        &["--request-timeout-secs", "1"],
        &[("FAILPOINTS", "api.add_documents.before_commit=1*return(2500);collection.upsert.before_store=1*sleep(2500)")],
    );
    assert_eq!(server.post("/collections", &json!({"name": "t"})).0, 201);
    let body = json!({"documents": [{"text": "first"}, {"text": "second"}]});
    // Timed out before the write began: 408, and nothing was written.
    let (status, error) = server.post("/collections/t/documents", &body);
    assert_eq!(status, 408, "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("before anything was written"), "{error}");
    std::thread::sleep(Duration::from_millis(2_000)); // past the handler's delay: it must not write late
    assert_eq!(server.get("/collections/t").1["documents"], 0, "a 408 wrote nothing");
    // The retry commits and then takes longer than the timeout: it is answered, not cut off.
    let started = Instant::now();
    let (status, written) = server.post("/collections/t/documents", &body);
    assert_eq!(status, 200, "{written}");
    assert!(started.elapsed() >= Duration::from_secs(2), "the slow write ran past the 1 s timeout");
    assert_eq!(server.get("/collections/t").1["documents"], 2);
    for id in written["ids"].as_array().unwrap() {
        assert_eq!(server.get(&format!("/collections/t/documents/{}", id.as_str().unwrap())).0, 200);
    }
    // Retries with the client's own ids never duplicate.
    let own = json!({"documents": [{"id": "a", "text": "first"}, {"id": "b", "text": "second"}]});
    for _ in 0..3 {
        assert_eq!(server.post("/collections/t/documents", &own).0, 200);
    }
    assert_eq!(server.get("/collections/t").1["documents"], 4);
}

/// Item 5. Fails on the old code: the panic killed the inference thread; every later embed was
/// a 503 while /ready said 200.
#[test]
fn a_backend_panic_fails_one_request_then_the_backend_is_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(
        dir.path(),
        &[],
        // The load's self-test runs two model calls first (MiniLM's document probes, then its
        // query probe): the first request's call is the third.
        &[("FAILPOINTS", "embed.backend.panic=2*off->1*panic;embed.backend.reload=1*sleep(1500)")],
    );
    let request = json!({"model": "minilm-l6-v2", "input": "hello"});
    let (status, body) = server.post("/v1/embeddings", &request);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "model_unavailable");
    // The reload is held for 1.5 s: not ready meanwhile.
    assert_eq!(server.get("/ready").0, 503, "not ready while no backend runs");
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.get("/ready").0 != 200 {
        assert!(Instant::now() < deadline, "the backend never came back");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body) = server.post("/v1/embeddings", &request);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["embedding"].as_array().unwrap().len(), 384);
    let (_, _, metrics) = server.raw("GET", "/metrics", None, &[]);
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("akidb_embed_backend_restarts_total{") && l.ends_with(" 1")),
        "restart counted:\n{metrics}"
    );
}

/// Item 6. Fails on the old code: tokenization ran on tokio's workers, so slow tokenization of a
/// large ingest (here 20 ms per text, by failpoint) held them and /health waited.
#[test]
fn a_large_ingest_does_not_delay_health_or_vector_search() {
    let dir = tempfile::tempdir().unwrap();
    let server = Arc::new(Server::start_with_env(dir.path(), &[], &[("FAILPOINTS", "embed.tokenize.text=sleep(20)")]));
    assert_eq!(server.post("/collections", &json!({"name": "big"})).0, 201);
    let mut ingests = Vec::new();
    for client in 0..4 {
        let server = server.clone();
        ingests.push(std::thread::spawn(move || {
            let documents: Vec<Value> = (0..100).map(|i| json!({"text": format!("document {i} of client {client}")})).collect();
            server.post("/collections/big/documents", &json!({"documents": documents})).0
        }));
    }
    std::thread::sleep(Duration::from_millis(300)); // the ingests are tokenizing (8 s of work)
    let vector: Vec<f32> = vec![0.05; 384];
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(server.get("/health").0, 200);
        let health = started.elapsed();
        let started = Instant::now();
        let (status, body) = server.post("/collections/big/search", &json!({"vector": vector, "k": 1}));
        assert_eq!(status, 200, "{body}");
        let search = started.elapsed();
        assert!(health < Duration::from_millis(500) && search < Duration::from_millis(500), "/health took {health:?}, a vector search {search:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    for ingest in ingests {
        assert_eq!(ingest.join().unwrap(), 200);
    }
}

/// Item 9. Fails on the old code: 401 and 503 were never counted (the metrics layer sat inside
/// auth and load shedding), totals were gauges, batch histograms had latency buckets, no HELP.
#[test]
fn metrics_parse_with_prometheus_client_and_count_refusals() {
    let dir = tempfile::tempdir().unwrap();
    // Each upsert sleeps 1 s on its blocking thread, so a second request in flight is shed.
    let server = Arc::new(Server::start_with_env(
        dir.path(),
        &["--api-key", "k", "--max-in-flight", "1"],
        &[("FAILPOINTS", "collection.upsert.before_store=sleep(1000)")],
    ));
    let auth = [("Authorization", "Bearer k")];
    let post = |path: &str, body: &Value| server.request("POST", path, Some(body.to_string().as_bytes()), &auth);
    assert_eq!(server.get("/collections").0, 401);
    assert_eq!(post("/collections", &json!({"name": "m"})).0, 201);
    let slow = {
        let server = server.clone();
        std::thread::spawn(move || {
            let body = json!({"documents": [{"text": "hello"}]}).to_string();
            server.request("POST", "/collections/m/documents", Some(body.as_bytes()), &[("Authorization", "Bearer k")]).0
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.request("GET", "/collections", None, &auth).0, 503, "the second request in flight is shed");
    assert_eq!(slow.join().unwrap(), 200);
    let (status, _, text) = server.raw("GET", "/metrics", None, &auth);
    assert_eq!(status, 200);
    let python = repo().join(".venv/bin/python");
    assert!(python.is_file(), "{} is missing: run scripts/test (it installs prometheus-client)", python.display());
    let script = r##"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
text = sys.stdin.read()
helped = {l.split()[2] for l in text.splitlines() if l.startswith("# HELP ")}
out = {}
for family in text_string_to_metric_families(text):
    out[family.name] = {"type": family.type, "help": family.documentation,
                        "samples": [[s.name, s.labels, s.value] for s in family.samples]}
print(json.dumps({"families": out, "helped": sorted(helped)}))
"##;
    let mut child = Command::new(&python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run python");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &text).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "prometheus_client could not parse /metrics:\n{}", String::from_utf8_lossy(&text));
    let parsed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let families = parsed["families"].as_object().unwrap();
    for (name, family) in families {
        assert!(!family["help"].as_str().unwrap_or_default().is_empty(), "{name} has no HELP");
    }
    for name in ["akidb_http_requests", "akidb_embed_batches", "akidb_embed_texts", "akidb_embed_padded_tokens"] {
        assert_eq!(families[name]["type"], "counter", "{name} is a counter");
    }
    let requests = families["akidb_http_requests"]["samples"].as_array().unwrap();
    for status in ["401", "503"] {
        assert!(requests.iter().any(|s| s[1]["status"] == status && s[2].as_f64() >= Some(1.0)), "no {status} counted: {requests:?}");
    }
    let buckets: Vec<f64> = families["akidb_embed_batch_texts"]["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s[0] == "akidb_embed_batch_texts_bucket")
        .filter_map(|s| s[1]["le"].as_str().and_then(|le| le.parse().ok()))
        .collect();
    assert!(buckets.contains(&1.0) && buckets.contains(&32.0), "batch sizes get count buckets: {buckets:?}");
}

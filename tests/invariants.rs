//! Issue 18: the engine's invariants under forced interleavings (failpoints, never sleeps). Each
//! test names the item it covers and what the code before it did. Needs `--features failpoints`
//! (scripts/test passes it); tests hold a `FailScenario`, which serializes them.

mod common;

use std::sync::Arc;
use std::time::Duration;

use akidb::domain::IndexBackend;
use akidb::engine::{Engine, Filter};
use akidb::store::Metric;
use common::hold::{finishes_within, Hold};
use common::*;
use fail::FailScenario;
use serde_json::json;

const DIMS: usize = 16;

fn vector_for(n: u64) -> Vec<f32> {
    unit_vector(n, DIMS)
}

fn doc(n: u64, metadata: serde_json::Value) -> akidb::store::NewDocument {
    new_doc(format!("doc-{n}"), vector_for(n), metadata)
}

/// One passage spanning `text`, with the vector of `n`.
fn text_doc(n: u64, text: &str) -> akidb::store::NewDocument {
    akidb::store::NewDocument::single(format!("doc-{n}"), text.to_owned(), json!({"n": n}).as_object().cloned().unwrap_or_default(), vector_for(n))
}

fn docs(range: std::ops::Range<u64>) -> Vec<akidb::store::NewDocument> {
    range.map(|n| doc(n, json!({"n": n, "half": n % 2}))).collect()
}

fn ids(found: &[akidb::engine::Found]) -> Vec<String> {
    found.iter().map(|f| f.document.id.clone()).collect()
}

/// Every live document at rank 1 by its own vector, and the graph whole (`audit`).
fn assert_whole(collection: &akidb::engine::Collection, live: impl IntoIterator<Item = u64>, context: &str) {
    for n in live {
        let found = collection.search(&vector_for(n), 1, Some(64), None).unwrap();
        assert_eq!(ids(&found), [format!("doc-{n}")], "{context}: doc-{n} is not at rank 1 by its own vector");
    }
    assert_eq!(collection.audit(), Vec::<String>::new(), "{context}: the graph is not whole");
    let stats = collection.stats();
    assert_eq!(stats.graph_points - stats.tombstones, stats.passages, "{context}: {stats:?}");
}

per_backend! {
    /// Item 1. A search paused between its graph walk and its side-list scan, a delete and a dump
    /// thaw all wait on the graph at once. Before: the search held the tombstones' read lock and
    /// asked for the side list's, the delete held the side list's and asked for the tombstones'
    /// write lock, the thaw asked for the side list's write lock: a cycle. Now the graph has one
    /// lock, and all three finish once the search goes on.
    fn a_search_a_delete_and_a_dump_thaw_do_not_wait_on_each_other() {
        let scenario = FailScenario::setup();
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(Engine::open(dir.path()).unwrap());
        let collection = engine.create_collection(vector_collection("lock", DIMS, Metric::Cosine)).unwrap();
        collection.upsert(docs(0..200)).unwrap();
        // A dump frozen with a point in the side list and a tombstone, so every path is taken.
        let frozen = Hold::at("collection.dump.frozen");
        let dumper = engine.clone();
        let dumping = std::thread::spawn(move || dumper.dump_all());
        frozen.wait_reached();
        collection.upsert(docs(200..210)).unwrap();
        collection.delete(&["doc-3".into()]).unwrap();
        let walked = Hold::at("graph.search.walked");
        let searcher = collection.clone();
        let searching = std::thread::spawn(move || searcher.search(&vector_for(205), 1, None, None).map(|f| ids(&f)));
        walked.wait_reached();
        let deleter = collection.clone();
        let deleting = std::thread::spawn(move || deleter.delete(&["doc-205".into(), "doc-7".into()]));
        frozen.release();
        walked.release();
        let found = finishes_within(Duration::from_secs(30), "the paused search", move || searching.join().unwrap().unwrap());
        assert!(!found.contains(&"doc-3".to_owned()), "a deleted document returned: {found:?}");
        finishes_within(Duration::from_secs(30), "the delete", move || deleting.join().unwrap().unwrap());
        finishes_within(Duration::from_secs(30), "the dump thaw", move || dumping.join().unwrap().unwrap());
        let live: Vec<u64> = (0..210).filter(|n| ![3, 7, 205].contains(n)).collect();
        assert_whole(&collection, live.iter().copied(), "after the race");
        for gone in [3, 7, 205] {
            assert!(ids(&collection.search(&vector_for(gone), 3, None, None).unwrap()).iter().all(|id| *id != format!("doc-{gone}")));
        }
        drop((collection, engine));
        let engine = Engine::open(dir.path()).unwrap();
        assert_whole(&engine.collection("lock").unwrap(), live, "after reopening");
        scenario.teardown();
    }
}

per_backend! {
    /// Item 6. A point written while the graph was frozen is deleted while the dump thread moves
    /// it into the graph. Before (usearch): the delete found no key, reported success and left no
    /// tombstone, then the move inserted it: a deleted document stayed in the graph, and the key
    /// list and the graph disagreed (every restart rebuilt the graph). Now the delete wins.
    fn a_delete_during_the_move_after_a_dump_wins() {
        let scenario = FailScenario::setup();
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(Engine::open(dir.path()).unwrap());
        let collection = engine.create_collection(vector_collection("move", DIMS, Metric::Cosine)).unwrap();
        collection.upsert(docs(0..100)).unwrap();
        let frozen = Hold::at("collection.dump.frozen");
        let moving = Hold::at("graph.thaw.moving");
        let dumper = engine.clone();
        let dumping = std::thread::spawn(move || dumper.dump_all());
        frozen.wait_reached();
        collection.upsert(docs(100..110)).unwrap();
        frozen.release();
        moving.wait_reached();
        // Moving: doc-100..110 are in the side list, about to be inserted.
        collection.delete(&["doc-101".into()]).unwrap();
        collection.upsert(vec![doc(102, json!({"v": 2}))]).unwrap();
        moving.release();
        dumping.join().unwrap().unwrap();
        let live: Vec<u64> = (0..110).filter(|&n| n != 101).collect();
        assert_whole(&collection, live.iter().copied(), "after the move");
        assert!(ids(&collection.search(&vector_for(101), 5, None, None).unwrap()).iter().all(|id| id != "doc-101"));
        assert_eq!(collection.search(&vector_for(102), 1, None, None).unwrap()[0].document.metadata["v"], 2);
        engine.dump_all().unwrap();
        drop((collection, engine));
        let engine = Engine::open(dir.path()).unwrap();
        assert_whole(&engine.collection("move").unwrap(), live, "after reopening from the dump");
        scenario.teardown();
    }
}

per_backend! {
    /// Item 3. The lexical write fails after the store commit. Before: the graph was updated after
    /// the lexical index, so the documents were stored but never in the graph, and the next dump's
    /// watermark made the hole permanent. Now the graph is updated first, the lexical index is
    /// marked behind and caught up by the next write (or the next open), and a dump fills holes.
    fn a_failed_lexical_write_leaves_every_path_converging_on_the_store() {
        let scenario = FailScenario::setup();
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(Engine::open(dir.path()).unwrap());
        let collection = engine.create_collection(vector_collection("lex", DIMS, Metric::Cosine)).unwrap();
        let with_text = |n: u64| text_doc(n, &format!("word{n} appears here"));
        collection.upsert((0..20).map(with_text).collect()).unwrap();
        fail::cfg("collection.lexical.write", "1*return").unwrap();
        assert!(collection.upsert((20..30).map(with_text).collect()).is_err(), "the write reports the failure");
        fail::remove("collection.lexical.write");
        // Stored, and in the graph at once.
        assert_whole(&collection, 0..30, "after the failed write");
        engine.dump_all().unwrap();
        // The next write catches the lexical index up.
        collection.upsert((30..31).map(with_text).collect()).unwrap();
        for n in 0..31 {
            let hits = collection.lexical(&format!("word{n}"), 1, None).unwrap();
            let passage = hits.first().and_then(|h| collection.passage_of(h.point).unwrap());
            assert_eq!(passage.map(|p| p.document), Some(format!("doc-{n}")), "word{n} by the lexical index");
        }
        // Failed again, then a restart with no write in between: the open replays it.
        fail::cfg("collection.lexical.write", "1*return").unwrap();
        assert!(collection.upsert((31..35).map(with_text).collect()).is_err());
        fail::remove("collection.lexical.write");
        engine.dump_all().unwrap();
        drop((collection, engine));
        let engine = Engine::open(dir.path()).unwrap();
        let collection = engine.collection("lex").unwrap();
        assert_whole(&collection, 0..35, "after reopening");
        for n in 0..35 {
            let hits = collection.lexical(&format!("word{n}"), 1, None).unwrap();
            assert_eq!(hits.first().and_then(|h| collection.passage_of(h.point).unwrap()).map(|p| p.document), Some(format!("doc-{n}")), "word{n} after reopening");
        }
        assert_eq!(collection.stats().lexical_passages as usize, collection.stats().passages);
        scenario.teardown();
    }
}

per_backend! {
    /// Item 4. A delete by filter races an upsert that makes a matching document stop matching.
    /// Before: the matches were resolved outside the writer lock and deleted unconditionally, so
    /// the changed document was deleted anyway. Now each batch is resolved under the lock.
    fn a_delete_by_filter_spares_a_document_changed_to_no_longer_match() {
        let scenario = FailScenario::setup();
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(Engine::open(dir.path()).unwrap());
        let collection = engine.create_collection(vector_collection("del", DIMS, Metric::Cosine)).unwrap();
        collection.upsert((0..40).map(|n| doc(n, json!({"tag": "old"}))).collect()).unwrap();
        let hold = Hold::at("collection.delete_where.batch");
        let deleter = collection.clone();
        let deleting = std::thread::spawn(move || deleter.delete_where(&Filter::parse(&json!({"tag": "old"})).unwrap()));
        hold.wait_reached();
        collection.upsert(vec![doc(5, json!({"tag": "new"}))]).unwrap();
        hold.release();
        assert_eq!(deleting.join().unwrap().unwrap(), 39);
        assert_eq!(collection.get("doc-5").unwrap().map(|d| d.metadata["tag"].clone()), Some(json!("new")));
        assert_eq!(collection.stats().documents, 1);
        assert_whole(&collection, [5], "after the delete");
        scenario.teardown();
    }
}

/// Item 4: a delete by filter larger than one batch deletes everything it matches, in batches.
#[test]
fn a_delete_by_filter_runs_in_bounded_batches() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let collection = engine.create_collection(vector_collection("batches", DIMS, Metric::Cosine)).unwrap();
    let total = akidb::engine::DELETE_BATCH as u64 * 2 + 7;
    for start in (0..total + 10).step_by(500) {
        collection.upsert((start..(start + 500).min(total + 10)).map(|n| doc(n, json!({"gone": n < total}))).collect()).unwrap();
    }
    let batches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = batches.clone();
    fail::cfg_callback("collection.delete_where.batch", move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    })
    .unwrap();
    assert_eq!(collection.delete_where(&Filter::parse(&json!({"gone": true})).unwrap()).unwrap(), total as usize);
    assert_eq!(batches.load(std::sync::atomic::Ordering::SeqCst), 3, "{total} documents in batches of {}", akidb::engine::DELETE_BATCH);
    assert_eq!(collection.stats().documents, 10);
    scenario.teardown();
}

/// Item 7. An f16 / i8 collection searched with a broad filter while a dump has the graph frozen:
/// the document just written is in the side list. Before: the post-filtered walk cut its
/// candidates to k before the rescoring, and the side list's hits (appended last) were dropped.
#[test]
fn quantized_collections_find_fresh_writes_under_broad_filters_during_a_dump() {
    let scenario = FailScenario::setup();
    for backend in [IndexBackend::UsearchF16, IndexBackend::UsearchI8] {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(Engine::open(dir.path()).unwrap());
        let mut config = vector_collection("q", DIMS, Metric::Cosine);
        config.backend = backend;
        let collection = engine.create_collection(config).unwrap();
        // 6,000 points, half of them passing: above the exact-scan threshold, a post-filtered walk.
        collection.upsert(docs(0..6_000)).unwrap();
        let frozen = Hold::at("collection.dump.frozen");
        let dumper = engine.clone();
        let dumping = std::thread::spawn(move || dumper.dump_all());
        frozen.wait_reached();
        collection.upsert(vec![doc(10_000, json!({"n": 10_000, "half": 0}))]).unwrap();
        let broad = Filter::parse(&json!({"half": 0})).unwrap();
        let found = collection.search(&vector_for(10_000), 3, None, Some(&broad)).unwrap();
        assert_eq!(found.first().map(|f| f.document.id.as_str()), Some("doc-10000"), "{backend:?}: {:?}", ids(&found));
        frozen.release();
        dumping.join().unwrap().unwrap();
    }
    scenario.teardown();
}

/// Item 10: a lexical query past the term limit is refused; one of many repeated words is fine
/// and fast (the terms are deduplicated with a set).
#[test]
fn lexical_queries_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let collection = engine.create_collection(vector_collection("words", DIMS, Metric::Cosine)).unwrap();
    collection.upsert(vec![text_doc(1, "alpha beta")]).unwrap();
    let many: String = (0..akidb::lexical::MAX_QUERY_TERMS + 1).map(|i| format!("w{i} ")).collect();
    match collection.lexical(&many, 10, None) {
        Err(akidb::engine::EngineError::Lexical(akidb::lexical::LexicalError::TooManyTerms(n))) => assert_eq!(n, akidb::lexical::MAX_QUERY_TERMS + 1),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let repeated = "alpha ".repeat(20_000);
    assert_eq!(collection.lexical(&repeated, 10, None).unwrap().len(), 1);
}

/// Item 2. A collection on hnsw_rs (as every collection migrated from an older store is) is
/// rebuilt onto usearch online: writes made during the build are caught up (without stalling
/// writers for the build), searches go on, and the new backend survives a restart.
#[test]
fn an_hnsw_rs_collection_is_rebuilt_onto_usearch_online_and_stays_there() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(Engine::open(dir.path()).unwrap());
    let mut config = vector_collection("legacy", DIMS, Metric::Cosine);
    config.backend = IndexBackend::HnswRs;
    let collection = engine.create_collection(config).unwrap();
    collection.upsert(docs(0..1_000)).unwrap();
    collection.delete(&["doc-1".into()]).unwrap();
    let built = Hold::at("collection.rebuild.built");
    let rebuilder = collection.clone();
    let rebuilding = std::thread::spawn(move || rebuilder.rebuild_on(IndexBackend::Usearch));
    built.wait_reached();
    // The new graph is built; the old one serves, and writes go on (more than the last catch-up).
    let writer = collection.clone();
    finishes_within(Duration::from_secs(30), "writes during a rebuild", move || {
        for start in (1_000..1_600).step_by(100) {
            writer.upsert(docs(start..start + 100)).unwrap();
        }
        writer.delete(&["doc-2".into(), "doc-1500".into()]).unwrap();
    });
    assert_eq!(collection.backend(), IndexBackend::HnswRs);
    assert_eq!(ids(&collection.search(&vector_for(1_200), 1, None, None).unwrap()), ["doc-1200"]);
    built.release();
    rebuilding.join().unwrap().unwrap();
    assert_eq!(collection.backend(), IndexBackend::Usearch);
    let live: Vec<u64> = (0..1_600).filter(|n| ![1, 2, 1500].contains(n)).collect();
    assert_whole(&collection, live.iter().copied(), "after the rebuild");
    drop((collection, engine));
    let engine = Engine::open(dir.path()).unwrap();
    let collection = engine.collection("legacy").unwrap();
    assert_eq!(collection.backend(), IndexBackend::Usearch, "the backend is recorded in the config");
    assert_eq!(engine.store().collection("legacy").unwrap().unwrap().backend, IndexBackend::Usearch);
    assert_whole(&collection, live, "after reopening");
    scenario.teardown();
}

/// Item 10: paging for ids and metadata never reads texts; the answers agree with a full read.
#[test]
fn pages_without_text_carry_the_same_ids_metadata_and_passages() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let collection = engine.create_collection(vector_collection("heads", DIMS, Metric::Cosine)).unwrap();
    collection.upsert((0..30).map(|n| text_doc(n, &"long text ".repeat(1_000))).collect()).unwrap();
    let (full, more) = collection.page(None, 50, None, true).unwrap();
    let (heads, more_heads) = collection.page(None, 50, None, false).unwrap();
    assert_eq!((full.len(), more), (30, false));
    assert_eq!(more_heads, more);
    for (full, head) in full.iter().zip(&heads) {
        assert_eq!((&full.id, &full.metadata, &full.passages), (&head.id, &head.metadata, &head.passages));
        assert!(head.text.is_empty() && !full.text.is_empty());
    }
    let head = collection.get_head("doc-3").unwrap().unwrap();
    assert_eq!(head.metadata, collection.get("doc-3").unwrap().unwrap().metadata);
}

/// Item 13. Before: one collection's failed dump stopped the dumps of the rest (`dump_all`
/// returned early), and a rebuilt lexical index held an empty document for every vector-only
/// passage (its count differed from the one before the rebuild).
#[test]
fn one_failed_dump_does_not_stop_the_others_and_lexical_rebuilds_skip_vector_only_passages() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let first = engine.create_collection(vector_collection("a-first", DIMS, Metric::Cosine)).unwrap();
    let second = engine.create_collection(vector_collection("b-second", DIMS, Metric::Cosine)).unwrap();
    first.upsert(docs(0..10)).unwrap();
    second.upsert(docs(0..10)).unwrap();
    second.upsert((10..15).map(|n| text_doc(n, &format!("words of {n}"))).collect()).unwrap();
    fail::cfg("collection.dump.frozen", "1*return").unwrap();
    assert!(engine.dump_all().is_err(), "the failure is reported");
    fail::remove("collection.dump.frozen");
    assert!(!first.index_dir().join("CURRENT").exists(), "the first collection's dump failed");
    assert!(second.index_dir().join("CURRENT").exists(), "the second collection was dumped all the same");
    assert_eq!(second.stats().lexical_passages, 5, "only passages with text are in the lexical index");
    let lexical_dir = second.index_dir().join("lexical");
    drop((first, second, engine));
    std::fs::remove_dir_all(&lexical_dir).unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let second = engine.collection("b-second").unwrap();
    assert_eq!(second.stats().lexical_passages, 5, "a rebuilt lexical index holds the same passages");
    scenario.teardown();
}

/// Item 3: a lexical *commit* that fails (tantivy's errors of a full disk surface there) rolls
/// the lexical index back to its last commit; the next write replays the store into it.
#[test]
fn a_failed_lexical_commit_is_caught_up_by_the_next_write() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let collection = engine.create_collection(vector_collection("commit", DIMS, Metric::Cosine)).unwrap();
    collection.upsert((0..10).map(|n| text_doc(n, &format!("term{n} here"))).collect()).unwrap();
    fail::cfg("lexical.commit", "1*return").unwrap();
    assert!(collection.upsert((10..20).map(|n| text_doc(n, &format!("term{n} here"))).collect()).is_err());
    fail::remove("lexical.commit");
    collection.delete(&["doc-3".into()]).unwrap();
    for n in (0..20).filter(|&n| n != 3) {
        let hits = collection.lexical(&format!("term{n}"), 1, None).unwrap();
        assert_eq!(hits.first().and_then(|h| collection.passage_of(h.point).unwrap()).map(|p| p.document), Some(format!("doc-{n}")), "term{n}");
    }
    assert!(collection.lexical("term3", 1, None).unwrap().is_empty());
    assert_eq!(collection.stats().lexical_passages, 19);
    assert_whole(&collection, (0..20).filter(|&n| n != 3), "after the failed commit");
    scenario.teardown();
}

/// Issue 19 (review): a payload change reads each document and writes it back under the
/// collection's writer lock. Before, it read outside the lock, so an upsert landing between its
/// read and its write was undone by the stale copy. A metadata change keeps the document's
/// text, points and vectors (no re-embedding, no graph churn) and moves its payload postings.
#[test]
fn a_payload_change_never_undoes_a_concurrent_write() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let collection = engine.create_collection(vector_collection("payload", DIMS, Metric::Cosine)).unwrap();
    collection.upsert((0..20).map(|n| text_doc(n, "first text")).collect()).unwrap();
    let points_before = collection.get("doc-2").unwrap().unwrap().passages;

    let held = Hold::at("collection.upsert.before_store");
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let mut writer = None;
    let changed = collection
        .update_metadata(&["doc-1".to_owned(), "doc-2".to_owned(), "missing".to_owned()], |id, mut metadata| {
            if writer.is_none() {
                let concurrent = collection.clone();
                let done = done_tx.clone();
                writer = Some(std::thread::spawn(move || {
                    concurrent.upsert(vec![text_doc(1, "second text")]).unwrap();
                    let _ = done.send(());
                }));
                held.wait_reached();
                held.release();
                // It waits on the writer lock this change holds.
                assert!(done_rx.recv_timeout(Duration::from_millis(300)).is_err(), "an upsert finished inside a payload change");
            }
            metadata.insert("changed".into(), json!(id));
            Ok::<_, akidb::engine::EngineError>(Some(metadata))
        })
        .unwrap();
    assert_eq!(changed, 2, "the missing document is skipped");
    writer.unwrap().join().unwrap();

    let one = collection.get("doc-1").unwrap().unwrap();
    assert_eq!(one.text, "second text", "the upsert that came after the change is kept");
    assert!(!one.metadata.contains_key("changed"));
    let two = collection.get("doc-2").unwrap().unwrap();
    assert_eq!((two.text.as_str(), two.metadata.get("changed")), ("first text", Some(&json!("doc-2"))));
    assert_eq!(two.passages, points_before, "a payload change keeps the points");
    let changed = Filter::parse(&json!({"changed": "doc-2"})).unwrap();
    assert_eq!(collection.count_matching(&changed).unwrap(), 1, "the payload index moved with the change");
    assert_eq!(collection.count_matching(&Filter::parse(&json!({"n": 2})).unwrap()).unwrap(), 1);
    assert_whole(&collection, 0..20, "after the payload change");
    scenario.teardown();
}

//! The collections store and the vector index: recall, deletes, filters, dumps, migrations.

mod common;

use std::sync::Arc;

use akidb::engine::{Engine, EngineError, Filter};
use akidb::store::{DocumentStore, Metric, SledStore, StoreError, SCHEMA_VERSION};
use common::*;
use serde_json::json;

const K: usize = 10;

fn ids(found: &[akidb::engine::Found]) -> Vec<String> {
    found.iter().map(|f| f.document.id.clone()).collect()
}

/// `count` GloVe vectors as (id, vector) with ids "w<row>".
fn glove_docs(count: usize) -> Vec<(String, Vec<f32>)> {
    glove(count).into_iter().enumerate().map(|(i, v)| (format!("w{i}"), v)).collect()
}

fn ingest(engine: &Engine, name: &str, docs: &[(String, Vec<f32>)], metadata: impl Fn(usize) -> serde_json::Value) {
    let collection = engine.create_collection(vector_collection(name, 50, Metric::Cosine)).expect("create");
    for (chunk_index, chunk) in docs.chunks(5_000).enumerate() {
        let batch = chunk
            .iter()
            .enumerate()
            .map(|(i, (id, v))| new_doc(id.clone(), v.clone(), metadata(chunk_index * 5_000 + i)))
            .collect();
        collection.upsert(batch).expect("upsert");
    }
}

/// A graph rebuilt from the store answers as the dumped one did. Not id for id: two graphs built
/// from the same points in a different order (in parallel) may swap near-ties or miss a 10th-ranked
/// point even at ef = n, and f16/i8 distances tie more often; so at least 99 % of the hits agree.
fn assert_same_results(after: &[Vec<String>], before: &[Vec<String>], what: &str) {
    let total: usize = before.iter().map(Vec::len).sum();
    let shared: usize = after.iter().zip(before).map(|(a, b)| a.iter().filter(|id| b.contains(id)).count()).sum();
    assert!(shared as f64 >= 0.99 * total as f64, "after {what}: {shared} of {total} hits agree");
}

// Every test below runs once per index backend (`per_backend!`: mod <test> { usearch, usearch_f16, usearch_i8, hnsw_rs, hnsw }).
per_backend! {
    fn recall_at_10_on_20k_glove_vectors_is_at_least_095() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let docs = glove_docs(20_000);
        ingest(&engine, "glove", &docs, |_| json!({}));
        let collection = engine.collection("glove").unwrap();
        // Queries: words outside the indexed set.
        let queries: Vec<Vec<f32>> = glove(20_200)[20_000..].to_vec();
        let mut total = 0.0;
        for query in &queries {
            let q = collection.prepare_vector(query.clone()).unwrap();
            let found = collection.search(&q, K, Some(100), None).unwrap();
            assert_eq!(found.len(), K);
            assert!(found.windows(2).all(|w| w[0].score >= w[1].score), "best first");
            total += recall(&ids(&found), &brute_force_top(query, &docs, K));
        }
        let mean = total / queries.len() as f64;
        assert!(mean >= 0.95, "recall@10 = {mean}");
    }

    fn deletes_and_overwrites_never_surface_and_compaction_keeps_only_live_points() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let docs = glove_docs(8_000);
        ingest(&engine, "churn", &docs, |i| json!({"version": 1, "row": i}));
        let collection = engine.collection("churn").unwrap();
        // Delete the even rows, overwrite rows 1, 5, 9, ... (a quarter) with a fresh vector and version 2.
        let deleted: Vec<String> = (0..8_000).step_by(2).map(|i| format!("w{i}")).collect();
        assert_eq!(collection.delete(&deleted).unwrap(), 4_000);
        let fresh = glove(10_000)[8_000..].to_vec();
        let overwritten: Vec<_> = (1..8_000)
            .step_by(4)
            .enumerate()
            .map(|(n, i)| new_doc(format!("w{i}"), fresh[n].clone(), json!({"version": 2, "row": i})))
            .collect();
        collection.upsert(overwritten.clone()).unwrap();
        let deleted_set: std::collections::HashSet<_> = deleted.iter().cloned().collect();
        let check = |collection: &akidb::engine::Collection, exact_top: bool| {
            for query in docs.iter().step_by(40).map(|(_, v)| v).chain(fresh.iter().take(100)) {
                let q = collection.prepare_vector(query.clone()).unwrap();
                for found in collection.search(&q, K, None, None).unwrap() {
                    assert!(!deleted_set.contains(&found.document.id), "deleted {} returned", found.document.id);
                    let current = collection.get(&found.document.id).unwrap().expect("live document");
                    assert_eq!(current.passages[0].point, found.point, "stale version of {} returned", found.document.id);
                }
            }
            // Each overwritten document is found by its new vector, carrying its new metadata: among the
            // top 10 while half the graph is tombstones (HNSW promises no more), first once compacted.
            for doc in overwritten.iter().step_by(50) {
                let q = collection.prepare_vector(doc.passages[0].vector.clone()).unwrap();
                let found = collection.search(&q, 10, Some(128), None).unwrap();
                let hit = found.iter().position(|f| f.document.id == doc.id).unwrap_or_else(|| panic!("{} not in the top 10", doc.id));
                assert!(!exact_top || hit == 0, "{} ranked {hit} in a compacted graph", doc.id);
                assert_eq!(found[hit].document.metadata["version"], 2);
            }
        };
        check(&collection, false);
        collection.compact().unwrap();
        let stats = collection.stats();
        assert_eq!(stats.tombstones, 0);
        assert_eq!(stats.graph_points, 4_000, "the graph holds exactly the live points");
        assert_eq!(stats.documents, 4_000);
        check(&collection, true);
    }

    fn background_compaction_starts_past_the_tombstone_ratio() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let docs = glove_docs(3_000);
        ingest(&engine, "bg", &docs, |_| json!({}));
        let collection = engine.collection("bg").unwrap();
        let victims: Vec<String> = (0..1_000).map(|i| format!("w{i}")).collect();
        collection.delete(&victims).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        // The swap replaces the graph, then the tombstones (in that order, so that no search pairs
        // the old graph with the new, empty tombstones): wait for both.
        while collection.stats().graph_points != 2_000 || collection.stats().tombstones != 0 {
            assert!(std::time::Instant::now() < deadline, "compaction did not finish: {:?}", collection.stats());
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    fn selective_filters_keep_recall_and_broad_filters_use_the_graph() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let docs = glove_docs(20_000);
        // bucket: 1,000 values of 20 documents each (0.1 % selectivity).
        ingest(&engine, "filtered", &docs, |i| json!({"bucket": i % 1000, "half": i % 2}));
        let collection = engine.collection("filtered").unwrap();
        let queries: Vec<Vec<f32>> = glove(20_100)[20_000..].to_vec();
        for (name, filter_json, keep) in [
            ("0.1%", json!({"bucket": 7}), Box::new(|i: usize| i % 1000 == 7) as Box<dyn Fn(usize) -> bool>),
            ("1%", json!({"bucket": {"$lt": 10}}), Box::new(|i: usize| i % 1000 < 10)),
            ("10%", json!({"bucket": {"$gte": 900}}), Box::new(|i: usize| i % 1000 >= 900)),
            ("50%", json!({"half": {"$eq": 1}}), Box::new(|i: usize| i % 2 == 1)),
            ("50% range or keyword", json!({"$or": [{"bucket": {"$lt": 250}}, {"bucket": {"$gte": 750}}]}), Box::new(|i: usize| !(250..750).contains(&(i % 1000)))),
        ] {
            let filter = Filter::parse(&filter_json).unwrap();
            let allowed: Vec<(String, Vec<f32>)> = docs.iter().enumerate().filter(|(i, _)| keep(*i)).map(|(_, d)| d.clone()).collect();
            let mut total = 0.0;
            for query in &queries {
                let q = collection.prepare_vector(query.clone()).unwrap();
                // The default breadth (ef 64), as the filtered-search benchmark runs.
                let found = collection.search(&q, K, None, Some(&filter)).unwrap();
                assert!(found.iter().all(|f| filter.matches(&f.document.metadata)), "{name}: a result fails the filter");
                total += recall(&ids(&found), &brute_force_top(query, &allowed, K));
            }
            let mean = total / queries.len() as f64;
            assert!(mean >= 0.95, "{name} filter: recall@10 = {mean}");
        }
    }

    fn damaged_dumps_are_rebuilt_from_the_store_with_the_same_results() {
        let dir = tempfile::tempdir().unwrap();
        let docs = glove_docs(5_000);
        let queries: Vec<Vec<f32>> = glove(5_050)[5_000..].to_vec();
        // ef as large as the collection: the walk visits every reachable point, so two graphs built
        // from the same points (in parallel, in a different order) give the same top k. At ef 400
        // a rebuilt graph once missed a 10th-ranked point (a fresh-clone run under load).
        let top = |engine: &Engine| -> Vec<Vec<String>> {
            let c = engine.collection("dumped").unwrap();
            queries.iter().map(|q| ids(&c.search(&c.prepare_vector(q.clone()).unwrap(), K, Some(5_000), None).unwrap())).collect()
        };
        let (before, id) = {
            let engine = Engine::open(dir.path()).unwrap();
            ingest(&engine, "dumped", &docs, |_| json!({}));
            engine.dump_all().unwrap();
            (top(&engine), engine.collection("dumped").unwrap().id().to_owned())
        };
        // Index directories are named by the collection's id.
        let index_dir = dir.path().join("index").join(id);
        let dump_dir = || index_dir.join(std::fs::read_to_string(index_dir.join("CURRENT")).unwrap().trim());
        // The graph (and, for usearch, the vectors): whatever the backend, its largest file.
        let biggest = || std::fs::read_dir(dump_dir()).unwrap().map(|e| e.unwrap().path()).max_by_key(|p| std::fs::metadata(p).unwrap().len()).unwrap();
        // Intact: the dump loads and answers the same.
        assert_same_results(&top(&Engine::open(dir.path()).unwrap()), &before, "intact");
        type Damage<'a> = Box<dyn Fn() + 'a>;
        let damages: Vec<(&str, Damage)> = vec![
            ("truncated graph", Box::new(|| {
                let path = biggest();
                let len = std::fs::metadata(&path).unwrap().len();
                std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len / 2).unwrap();
            })),
            ("bit-flipped data", Box::new(|| {
                let path = biggest();
                let mut bytes = std::fs::read(&path).unwrap();
                let middle = bytes.len() / 2;
                bytes[middle] ^= 0x10;
                std::fs::write(&path, bytes).unwrap();
            })),
            ("deleted dump", Box::new(|| std::fs::remove_dir_all(dump_dir()).unwrap())),
        ];
        for (what, damage) in damages {
            damage();
            let engine = Engine::open(dir.path()).unwrap();
            assert_same_results(&top(&engine), &before, what);
            assert_eq!(engine.collection("dumped").unwrap().stats().graph_points, 5_000, "after {what}");
            // Leave a good dump for the next damage.
            engine.dump_all().unwrap();
        }
    }

    fn writes_after_a_dump_are_replayed_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let docs = glove_docs(3_000);
        {
            let engine = Engine::open(dir.path()).unwrap();
            ingest(&engine, "replay", &docs[..2_000], |_| json!({}));
            engine.dump_all().unwrap();
            let c = engine.collection("replay").unwrap();
            c.upsert(docs[2_000..].iter().map(|(id, v)| new_doc(id.clone(), v.clone(), json!({}))).collect()).unwrap();
            c.delete(&["w0".to_owned(), "w1".to_owned()]).unwrap();
        }
        let engine = Engine::open(dir.path()).unwrap();
        let c = engine.collection("replay").unwrap();
        let stats = c.stats();
        assert_eq!(stats.graph_points - stats.tombstones, 2_998);
        assert_eq!(engine.store().count(engine.collection("replay").unwrap().id()).unwrap(), 2_998);
        for (id, v) in docs[2_000..].iter().step_by(97) {
            let found = c.search(&c.prepare_vector(v.clone()).unwrap(), 1, Some(100), None).unwrap();
            assert_eq!(&found[0].document.id, id);
        }
    }

    fn bad_input_is_refused_before_it_reaches_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let c = engine.create_collection(vector_collection("strict", 3, Metric::Cosine)).unwrap();
        for (vector, expected) in [
            (vec![1.0, 2.0], "vector has 2 dimensions, the collection expects 3"),
            (vec![f32::NAN, 0.0, 1.0], "NaN"),
        ] {
            let err = c.upsert(vec![new_doc("a".into(), vector, json!({}))]).unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
        }
        // A batch with one bad vector writes nothing.
        let err = c.upsert(vec![new_doc("ok".into(), vec![1.0, 0.0, 0.0], json!({})), new_doc("bad".into(), vec![1.0], json!({}))]);
        assert!(err.is_err());
        assert_eq!(engine.store().count(engine.collection("strict").unwrap().id()).unwrap(), 0);
        assert!(c.get("ok").unwrap().is_none());
        for name in ["", "has space", "slash/name", &"x".repeat(65), "ünï"] {
            assert!(matches!(engine.create_collection(vector_collection(name, 3, Metric::Cosine)), Err(EngineError::InvalidName(_))), "{name:?}");
        }
        assert!(matches!(engine.create_collection(vector_collection("strict", 3, Metric::Cosine)), Err(EngineError::CollectionExists(_))));
        let mut huge_m = vector_collection("hugem", 3, Metric::Cosine);
        huge_m.hnsw.m = 300;
        assert!(matches!(engine.create_collection(huge_m), Err(EngineError::Index(_))), "m > 256 must be refused, not exit the process");
    }

    fn l2_and_dot_metrics_rank_by_their_own_measure() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let points = [("near", vec![1.0, 0.0]), ("far", vec![10.0, 0.0]), ("opposite", vec![-1.0, 0.0])];
        for (name, metric, expected) in [("l2", Metric::L2, ["near", "opposite", "far"]), ("dot", Metric::Dot, ["far", "near", "opposite"])] {
            let c = engine.create_collection(vector_collection(name, 2, metric)).unwrap();
            c.upsert(points.iter().map(|(id, v)| new_doc((*id).into(), v.clone(), json!({}))).collect()).unwrap();
            let found = c.search(&[2.0, 0.0], 3, None, None).unwrap();
            assert_eq!(ids(&found), expected, "{name}");
            if metric == Metric::L2 {
                assert!((found[0].score - 1.0).abs() < 1e-5, "l2 score is the distance");
            } else {
                assert!((found[0].score - 20.0).abs() < 1e-4, "dot score is the inner product");
            }
        }
    }

    fn a_v1_store_is_migrated_and_a_newer_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        {
            // Schema v1, written with the frozen v1 types: JSON configs and JSON documents, no point ids.
            use akidb::store::migrations::frozen::v1;
            let config = v1::CollectionConfig {
                name: "old".into(),
                model: v1::ModelBinding { name: "vectors".into(), dims: 2, pooling: v1::Pooling::Mean, query_instruction: None },
                metric: v1::Metric::Cosine,
                hnsw: v1::HnswParams { m: 16, ef_construction: 200, ef_search: 64 },
                created_at_ms: 0,
            };
            let db = raw_sled(&path);
            db.insert(b"schema_version", &1u32.to_be_bytes()).unwrap();
            db.open_tree("collections").unwrap().insert("old", serde_json::to_vec(&config).unwrap()).unwrap();
            let docs = db.open_tree("docs/old").unwrap();
            for (id, v, m) in [("a", [1.0f32, 0.0], json!({"n": 1})), ("b", [0.0, 1.0], json!({"n": 2}))] {
                let doc = v1::Document { text: format!("text {id}"), metadata: m.as_object().cloned().unwrap(), vector: v.to_vec() };
                docs.insert(id, serde_json::to_vec(&doc).unwrap()).unwrap();
            }
            db.flush().unwrap();
        }
        {
            let engine = Engine::open(dir.path()).unwrap();
            let c = engine.collection("old").unwrap();
            let b = c.get("b").unwrap().unwrap();
            assert_eq!((b.text.as_str(), b.metadata["n"].clone()), ("text b", json!(2)));
            assert_eq!(b.passages.len(), 1, "an old document is one passage");
            assert_eq!((b.passages[0].span.start, b.passages[0].span.end), (0, 6));
            assert_eq!(c.vectors_of(&[b.passages[0].point]).unwrap()[0].1, vec![0.0, 1.0]);
            assert_eq!(ids(&c.search(&[0.1, 1.0], 1, None, None).unwrap()), ["b"]);
            assert_eq!(engine.store().count(c.id()).unwrap(), 2);
        }
        {
            let db = raw_sled(&path);
            assert_eq!(db.get(b"schema_version").unwrap().unwrap().as_ref(), &SCHEMA_VERSION.to_be_bytes());
            db.insert(b"schema_version", &(SCHEMA_VERSION + 1).to_be_bytes()).unwrap();
            db.flush().unwrap();
        }
        match SledStore::open(&path) {
            Err(StoreError::TooNew { found, supported, .. }) => assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION)),
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("a newer store must be refused"),
        }
    }

    fn upserts_are_all_or_nothing_and_ids_are_replaced_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        let config = akidb::store::CollectionConfig { id: "id-of-c".into(), ..vector_collection("c", 2, Metric::Cosine) };
        store.create_collection(&config, None).unwrap();
        // Contents are addressed by the collection's id, not its name.
        let c = config.id.as_str();
        let first = store.upsert(c, &[new_doc("a".into(), vec![1.0, 0.0], json!({}))]).unwrap();
        let second = store.upsert(c, &[new_doc("a".into(), vec![0.0, 1.0], json!({"v": 2})), new_doc("b".into(), vec![1.0, 1.0], json!({}))]).unwrap();
        assert_eq!(second[0].replaced, first[0].points);
        assert_eq!(store.count(c).unwrap(), 2);
        assert_eq!(store.live_points(c).unwrap(), [second[0].points.clone(), second[1].points.clone()].concat());
        assert_eq!(store.get(c, "a").unwrap().unwrap().metadata["v"], 2);
        assert!(matches!(store.upsert("nope", &[]), Err(StoreError::CollectionNotFound(_))));
    }

    /// A lexical index rebuilt from more passages than one replay batch (10,000) holds them all and
    /// finds the same passages; a replace and a delete made before the rebuild stay visible.
    fn a_lexical_index_rebuilt_in_batches_holds_every_passage() {
        let dir = tempfile::tempdir().unwrap();
        const DOCS: u64 = 12_000;
        let lexical_dir = {
            let engine = Engine::open(dir.path()).unwrap();
            let collection = engine.create_collection(vector_collection("words", 8, Metric::Cosine)).unwrap();
            for chunk in (0..DOCS).collect::<Vec<_>>().chunks(4_000) {
                let docs = chunk
                    .iter()
                    .map(|&n| akidb::store::NewDocument::single(format!("d{n}"), format!("entry number{n} about topic{}", n % 50), Default::default(), unit_vector(n, 8)))
                    .collect();
                collection.upsert(docs).unwrap();
            }
            collection.upsert(vec![akidb::store::NewDocument::single("d7".into(), "entry rewritten".into(), Default::default(), unit_vector(7, 8))]).unwrap();
            collection.delete(&["d8".into()]).unwrap();
            engine.dump_all().unwrap();
            collection.index_dir().join("lexical")
        };
        std::fs::remove_dir_all(&lexical_dir).unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let collection = engine.collection("words").unwrap();
        assert_eq!(collection.stats().lexical_passages, DOCS - 1);
        let top = |query: &str| collection.lexical(query, 1, None).unwrap().first().map(|hit| collection.passage_of(hit.point).unwrap().unwrap().document);
        for n in [0, 9_999, 10_000, 10_001, 11_999] {
            assert_eq!(top(&format!("number{n}")), Some(format!("d{n}")));
        }
        assert_eq!(top("rewritten"), Some("d7".into()));
        assert_eq!(top("number7"), None, "the replaced text is gone");
        assert_eq!(top("number8"), None, "the deleted document is gone");
    }
}

/// Issue 22, item 4. The payload index is saved at each dump and read back at open, with the
/// documents written after the dump added from the store; a delete or a metadata change after
/// the dump (the store's change count moved) or a damaged file makes the open rebuild it from
/// every document. Each way, filters answer as they did before the restart.
#[test]
fn the_saved_payload_index_is_used_only_while_it_covers_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let count = |engine: &Engine, f: serde_json::Value| engine.collection("p").unwrap().count_matching(&Filter::parse(&f).unwrap()).unwrap();
    let docs = |range: std::ops::Range<u64>| range.map(|n| new_doc(format!("d{n}"), unit_vector(n, 8), json!({"b": n % 10, "lang": if n % 2 == 0 { "en" } else { "de" }}))).collect::<Vec<_>>();
    {
        let engine = Engine::open(dir.path()).unwrap();
        let collection = engine.create_collection(vector_collection("p", 8, Metric::Cosine)).unwrap();
        collection.upsert(docs(0..1_000)).unwrap();
        engine.dump_all().unwrap();
        // After the dump: new documents only (the saved index stays usable).
        collection.upsert(docs(1_000..1_200)).unwrap();
    }
    let index_file = |dir: &std::path::Path| {
        let root = dir.join("index");
        std::fs::read_dir(&root).unwrap().flatten().map(|e| e.path().join("payload.bin")).find(|p| p.exists()).expect("a saved payload index")
    };
    {
        let engine = Engine::open(dir.path()).unwrap();
        assert_eq!(count(&engine, json!({"b": 3})), 120);
        assert_eq!(count(&engine, json!({"lang": "en", "b": {"$gte": 5}})), 240);
        let collection = engine.collection("p").unwrap();
        assert_eq!(collection.stats().documents, 1_200);
        engine.dump_all().unwrap();
        // After this dump: a delete and a metadata change, which the saved index cannot know.
        collection.delete(&["d3".into()]).unwrap();
        collection.update_metadata(&["d13".to_owned()], |_, mut m| {
            m.insert("b".into(), json!(99));
            Ok::<_, EngineError>(Some(m))
        }).unwrap();
    }
    {
        let engine = Engine::open(dir.path()).unwrap();
        assert_eq!(count(&engine, json!({"b": 3})), 118, "d3 deleted, d13 moved to 99");
        assert_eq!(count(&engine, json!({"b": 99})), 1);
        assert_eq!(engine.collection("p").unwrap().stats().documents, 1_199);
        engine.dump_all().unwrap();
    }
    let file = index_file(dir.path());
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    assert_eq!(count(&engine, json!({"b": 3})), 118, "a damaged file is rebuilt from the store");
    assert_eq!(count(&engine, json!({"lang": "de"})), 599);
}

/// Issue 22, item 4. After a crash, thousands of points written after the last dump are served
/// from the side list at once (searched exactly) while a background thread moves them into the
/// graph; a dump does it first if it has not happened yet. Every point is found by its own
/// vector throughout, and the graph is whole after.
#[test]
fn points_written_after_the_dump_are_found_at_once_and_moved_into_the_graph_after_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let docs = |range: std::ops::Range<u64>| range.map(|n| new_doc(format!("d{n}"), unit_vector(n, 16), json!({"n": n}))).collect::<Vec<_>>();
    {
        let engine = Engine::open(dir.path()).unwrap();
        let collection = engine.create_collection(vector_collection("late", 16, Metric::Cosine)).unwrap();
        collection.upsert(docs(0..2_000)).unwrap();
        engine.dump_all().unwrap();
        collection.upsert(docs(2_000..4_500)).unwrap();
        collection.delete(&["d2100".into()]).unwrap();
    }
    let engine = Engine::open(dir.path()).unwrap();
    let collection = engine.collection("late").unwrap();
    let check = |context: &str, passages: usize| {
        for n in (0..4_500u64).step_by(37).filter(|n| *n != 2_100) {
            let found = collection.search(&unit_vector(n, 16), 1, Some(64), None).unwrap();
            assert_eq!(ids(&found), [format!("d{n}")], "{context}: d{n} is not at rank 1 by its own vector");
        }
        assert!(ids(&collection.search(&unit_vector(2_100, 16), 3, Some(64), None).unwrap()).iter().all(|id| id != "d2100"), "{context}: a deleted point returned");
        assert_eq!(collection.stats().passages, passages, "{context}");
    };
    check("right after the open", 4_499);
    collection.upsert(docs(4_500..4_600)).unwrap();
    engine.dump_all().unwrap();
    check("after the catch-up and a dump", 4_599);
    assert_eq!(collection.audit(), Vec::<String>::new());
    let stats = collection.stats();
    assert_eq!(stats.graph_points - stats.tombstones, 4_599, "{stats:?}");
}

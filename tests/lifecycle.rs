//! Issue 21 from outside: snapshots while serving, restores, kills during both, damaged files,
//! and re-embedding into another model while clients search and write.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::server::{raw_to, Server};
use serde_json::{json, Value};

const BOTH_MODELS: [&str; 2] = ["--model", "minilm-l6-v2,bge-small-en-v1.5"];

fn call(address: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let body = body.map(Value::to_string);
    let (status, _, bytes) = raw_to(address, method, path, body.as_deref().map(str::as_bytes), &[]);
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Every document of a collection: id → (text, metadata).
fn all_documents(server: &Server, collection: &str) -> BTreeMap<String, (String, Value)> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/collections/{collection}/documents?limit=1000&cursor={c}"),
            None => format!("/collections/{collection}/documents?limit=1000"),
        };
        let (status, page) = server.get(&path);
        assert_eq!(status, 200, "{page}");
        for doc in page["documents"].as_array().expect("documents") {
            out.insert(doc["id"].as_str().unwrap().to_owned(), (doc["text"].as_str().unwrap().to_owned(), doc["metadata"].clone()));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return out,
        }
    }
}

fn vector_of(server: &Server, collection: &str, id: &str) -> Vec<f32> {
    let (status, doc) = server.get(&format!("/collections/{collection}/documents/{id}?include_vector=true"));
    assert_eq!(status, 200, "{doc}");
    doc["vector"].as_array().expect("a one-passage document's vector").iter().map(|v| v.as_f64().unwrap() as f32).collect()
}

fn add(address: &str, collection: &str, docs: Value) -> (u16, Value) {
    call(address, "POST", &format!("/collections/{collection}/documents"), Some(&json!({ "documents": docs })))
}

fn snapshot_bytes(server: &Server, collection: &str) -> (String, Vec<u8>) {
    let (status, made) = server.post(&format!("/collections/{collection}/snapshots"), &json!({}));
    assert_eq!(status, 201, "{made}");
    let name = made["name"].as_str().unwrap().to_owned();
    let (status, _, bytes) = server.raw("GET", &format!("/collections/{collection}/snapshots/{name}"), None, &[]);
    assert_eq!(status, 200);
    assert_eq!(bytes.len() as u64, made["size"].as_u64().unwrap());
    (name, bytes)
}

fn upload(server: &Server, target: &str, bytes: &[u8], replace: bool) -> (u16, Value) {
    server.request("POST", &format!("/collections/{target}/snapshots/upload?replace={replace}"), Some(bytes), &[("Content-Type", "application/octet-stream")])
}

fn lexical_top(server: &Server, collection: &str, word: &str) -> Option<String> {
    let (status, found) = server.post(&format!("/collections/{collection}/search"), &json!({"query": word, "mode": "lexical", "k": 1}));
    assert_eq!(status, 200, "{found}");
    found["results"][0]["id"].as_str().map(str::to_owned)
}

/// One writer changes 4 "hot" documents per request (version k in text and metadata) and
/// deletes a "cold" one per request, while a snapshot is taken. The restored copy must be the
/// source after some prefix of the acknowledged writes, exactly: texts, metadata, vectors
/// (bit for bit where the source still holds the same document) and lexical hits.
#[test]
fn a_snapshot_under_a_concurrent_writer_restores_one_moment_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    assert_eq!(server.post("/collections", &json!({"name": "src"})).0, 201);
    let cold: Vec<Value> = (0..120).map(|j| json!({"id": format!("cold{j}"), "text": format!("cold document {j} about coldword{j} and rivers"), "metadata": {"j": j}})).collect();
    assert_eq!(add(&server.address, "src", json!(cold)).0, 200);
    let hot = |k: usize, j: usize| json!({"id": format!("hot{j}"), "text": format!("hot document {j} version {k} hotword{k}x{j}"), "metadata": {"v": k, "j": j}});
    assert_eq!(add(&server.address, "src", json!((0..4).map(|j| hot(0, j)).collect::<Vec<_>>())).0, 200);

    // The acknowledged writes, in order: ("put", k) or ("delete", j).
    let log: Mutex<Vec<(&str, usize)>> = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let (snapshot, bytes) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            for k in 1.. {
                if stop.load(Ordering::Acquire) || k > 110 {
                    break;
                }
                let (status, body) = add(&server.address, "src", json!((0..4).map(|j| hot(k, j)).collect::<Vec<_>>()));
                assert_eq!(status, 200, "{body}");
                log.lock().unwrap().push(("put", k));
                let (status, body) = call(&server.address, "DELETE", &format!("/collections/src/documents/cold{k}"), None);
                assert_eq!(status, 200, "{body}");
                log.lock().unwrap().push(("delete", k));
            }
        });
        while log.lock().unwrap().len() < 6 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let taken = snapshot_bytes(&server, "src");
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Release);
        writer.join().unwrap();
        taken
    });
    let log = log.into_inner().unwrap();
    assert!(log.len() > 8, "the writer did not run past the snapshot: {}", log.len());

    let (status, restored) = upload(&server, "copy", &bytes, false);
    assert_eq!(status, 200, "{restored}");
    let copy = all_documents(&server, "copy");

    // The states the source went through, after each acknowledged write: one must be the copy.
    let mut state: BTreeMap<String, (String, Value)> = BTreeMap::new();
    for j in 0..120 {
        state.insert(format!("cold{j}"), (format!("cold document {j} about coldword{j} and rivers"), json!({"j": j})));
    }
    let put = |state: &mut BTreeMap<String, (String, Value)>, k: usize| {
        for j in 0..4 {
            let doc = hot(k, j);
            state.insert(doc["id"].as_str().unwrap().to_owned(), (doc["text"].as_str().unwrap().to_owned(), doc["metadata"].clone()));
        }
    };
    put(&mut state, 0);
    let mut moment = (state == copy).then_some(0);
    for (i, (op, k)) in log.iter().enumerate() {
        match *op {
            "put" => put(&mut state, *k),
            _ => {
                state.remove(&format!("cold{k}"));
            }
        }
        if state == copy {
            moment = Some(i + 1);
        }
    }
    let moment = moment.unwrap_or_else(|| panic!("the restored copy is no state the source went through: {} documents", copy.len()));
    assert!(moment < log.len(), "the snapshot saw every write, so it proves nothing about concurrency");
    assert_eq!(restored["documents"].as_u64().unwrap() as usize, copy.len());

    let source_now = all_documents(&server, "src");
    let mut compared = 0;
    for (id, (text, _)) in &copy {
        let copied = vector_of(&server, "copy", id);
        if source_now.get(id).is_some_and(|(t, _)| t == text) {
            // The same document in both: the vector restored is the stored one, bit for bit.
            assert_eq!(copied, vector_of(&server, "src", id), "vector of {id}");
            compared += 1;
        }
        let word = text.split_whitespace().find(|w| w.starts_with("coldword") || w.starts_with("hotword")).unwrap();
        assert_eq!(lexical_top(&server, "copy", word).as_deref(), Some(id.as_str()), "lexical hit for {word}");
    }
    assert!(compared > 50, "too few documents compared bit for bit: {compared}");
    // The snapshot is listed, and the source lost nothing to it.
    let (_, list) = server.get("/collections/src/snapshots");
    assert!(list["snapshots"].as_array().unwrap().iter().any(|s| s["name"] == snapshot.as_str()));
    assert_eq!(source_now.len(), 120 - log.iter().filter(|(op, _)| *op == "delete").count() + 4);
}

#[test]
fn damaged_truncated_and_foreign_files_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    assert_eq!(server.post("/collections", &json!({"name": "docs"})).0, 201);
    assert_eq!(add(&server.address, "docs", json!((0..30).map(|i| json!({"id": format!("d{i}"), "text": format!("text number {i}")})).collect::<Vec<_>>())).0, 200);
    let (_, bytes) = snapshot_bytes(&server, "docs");
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x01;
    let cases: [(&str, &[u8], &str); 4] = [
        ("a flipped byte", &flipped, "checksum mismatch"),
        ("a cut file", &bytes[..bytes.len() - 30], "truncated"),
        ("a Qdrant snapshot", b"PK\x03\x04 not ours", "magic"),
        ("nothing", b"", "empty"),
    ];
    for (what, body, needle) in cases {
        let response = upload(&server, "restored", body, false);
        common::server::assert_error(&response, 400, "invalid_snapshot", needle);
        let (status, _) = server.get("/collections/restored");
        assert_eq!(status, 404, "{what} created a collection");
        // Replacing the source with a bad file leaves the source as it was.
        common::server::assert_error(&upload(&server, "docs", body, true), 400, "invalid_snapshot", needle);
        assert_eq!(all_documents(&server, "docs").len(), 30, "{what} changed the source");
    }
    let (_, list) = server.get("/collections");
    let names: Vec<&str> = list["collections"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["docs"]);
    // The intact file still restores, and an existing name needs replace=true.
    common::server::assert_error(&upload(&server, "docs", &bytes, false), 409, "collection_exists", "docs");
    let (status, body) = upload(&server, "docs", &bytes, true);
    assert_eq!((status, body["replaced"].as_bool()), (200, Some(true)), "{body}");
    // Snapshot names are never paths.
    assert_eq!(server.get("/collections/docs/snapshots/..%2F..%2Fstore%2Fconf").0, 400);
    assert_eq!(server.get("/collections/docs/snapshots/nope.snapshot").0, 404);
}

/// kill -9 while a snapshot is written, then while a restore runs: the next start serves the
/// source untouched, lists no partial snapshot and holds no half-restored collection.
#[test]
fn a_kill_during_a_snapshot_or_a_restore_leaves_a_clean_start_and_the_source_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let docs: Vec<Value> = (0..600).map(|i| json!({"id": format!("d{i:04}"), "text": format!("passage {i} of the kill test with word k{i}"), "metadata": {"i": i}})).collect();
    let before = {
        let server = Server::start(dir.path(), &[]);
        assert_eq!(server.post("/collections", &json!({"name": "src"})).0, 201);
        for chunk in docs.chunks(200) {
            assert_eq!(add(&server.address, "src", json!(chunk)).0, 200);
        }
        let before = all_documents(&server, "src");
        let (_, bytes) = snapshot_bytes(&server, "src");
        std::fs::write(dir.path().join("good.snapshot"), &bytes).unwrap();
        server.stop();
        before
    };
    // A snapshot slowed per batch of documents: killed while its file is half written.
    {
        let server = Server::start_with_env(dir.path(), &[], &[("FAILPOINTS", "snapshot.write.batch=sleep(400)")]);
        let address = server.address.clone();
        let taking = std::thread::spawn(move || call(&address, "POST", "/collections/src/snapshots", None));
        std::thread::sleep(Duration::from_millis(500));
        drop(server); // SIGKILL
        let _ = taking.join();
    }
    // A restore slowed per frame: killed midway.
    {
        let server = Server::start_with_env(dir.path(), &[], &[("FAILPOINTS", "snapshot.restore.batch=sleep(500)")]);
        let (_, list) = server.get("/collections/src/snapshots");
        assert_eq!(list["snapshots"].as_array().unwrap().len(), 1, "a partial snapshot is listed: {list}");
        let address = server.address.clone();
        let bytes = std::fs::read(dir.path().join("good.snapshot")).unwrap();
        let restoring = std::thread::spawn(move || raw_to(&address, "POST", "/collections/copy/snapshots/upload", Some(&bytes), &[("Content-Type", "application/octet-stream")]).0);
        std::thread::sleep(Duration::from_millis(700));
        drop(server);
        let _ = restoring.join();
    }
    let server = Server::start(dir.path(), &[]);
    let (_, list) = server.get("/collections");
    let names: Vec<&str> = list["collections"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["src"], "a half-restored collection survived the kill");
    assert_eq!(all_documents(&server, "src"), before, "the source changed");
    let (_, list) = server.get("/collections/src/snapshots");
    assert_eq!(list["snapshots"].as_array().unwrap().len(), 1, "{list}");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("snapshots/src")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(leftovers.len(), 1, "temp files left beside the snapshot: {leftovers:?}");
    // The killed restore can simply be run again.
    let bytes = std::fs::read(dir.path().join("good.snapshot")).unwrap();
    assert_eq!(upload(&server, "copy", &bytes, false).0, 200);
    assert_eq!(all_documents(&server, "copy"), before);
    assert_eq!(lexical_top(&server, "copy", "k123").as_deref(), Some("d0123"));
}

fn wait_job(server: &Server, id: &str, limit: Duration) -> Value {
    let started = Instant::now();
    loop {
        let (status, job) = server.get(&format!("/jobs/{id}"));
        assert_eq!(status, 200, "{job}");
        if job["state"] != "running" {
            return job;
        }
        assert!(started.elapsed() < limit, "job still running: {job}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn embed(server: &Server, model: &str, text: &str) -> Vec<f32> {
    let (status, body) = server.post("/v1/embeddings", &json!({"model": model, "input": [text]}));
    assert_eq!(status, 200, "{body}");
    body["data"][0]["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect()
}

/// Re-embedding MiniLM → bge-small while one client searches and another adds and deletes:
/// no request fails, every acknowledged write is in the collection afterwards, and every
/// document is found by, and embedded with, the new model.
#[test]
fn a_reembed_under_load_loses_no_write_and_switches_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &BOTH_MODELS);
    assert_eq!(server.post("/collections", &json!({"name": "kb", "model": "minilm-l6-v2"})).0, 201);
    let initial: Vec<Value> = (0..150).map(|i| json!({"id": format!("d{i}"), "text": format!("Document {i} explains topic t{} in plain words, item {i}", i % 9), "metadata": {"i": i}})).collect();
    assert_eq!(add(&server.address, "kb", json!(initial)).0, 200);
    assert_eq!(server.request("PUT", "/aliases/kb-live", Some(json!({"collection": "kb"}).to_string().as_bytes()), &[]).0, 200);

    let stop = AtomicBool::new(false);
    let written: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let deleted: Mutex<HashSet<String>> = Mutex::new(HashSet::new());
    let (job, searches) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut n = 0;
            while !stop.load(Ordering::Acquire) {
                let id = format!("w{n}");
                let (status, body) = add(&server.address, "kb", json!([{"id": id, "text": format!("Written during the re-embed, note number {n} on subject s{}", n % 5)}]));
                assert_eq!(status, 200, "write {id}: {body}");
                written.lock().unwrap().push(id);
                if n % 4 == 0 {
                    let gone = format!("d{}", n / 4);
                    let (status, body) = call(&server.address, "DELETE", &format!("/collections/kb/documents/{gone}"), None);
                    assert_eq!(status, 200, "delete {gone}: {body}");
                    deleted.lock().unwrap().insert(gone);
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let searcher = s.spawn(|| {
            let mut count = 0;
            while !stop.load(Ordering::Acquire) {
                let (status, body) = call(&server.address, "POST", "/collections/kb-live/search", Some(&json!({"query": "topic t3 in plain words", "k": 5})));
                assert_eq!(status, 200, "search: {body}");
                assert!(!body["results"].as_array().unwrap().is_empty());
                count += 1;
            }
            count
        });
        std::thread::sleep(Duration::from_millis(300));
        let (status, started) = server.post("/collections/kb/reembed", &json!({"model": "BAAI/bge-small-en-v1.5"}));
        assert_eq!(status, 202, "{started}");
        let id = started["id"].as_str().unwrap().to_owned();
        let job = wait_job(&server, &id, Duration::from_secs(300));
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Release);
        writer.join().unwrap();
        (job, searcher.join().unwrap())
    });
    assert_eq!(job["state"], "done", "{job}");
    assert!(searches > 10, "the searcher barely ran: {searches}");
    let (_, info) = server.get("/collections/kb");
    assert_eq!(info["model"], "bge-small-en-v1.5");
    let kept = job["kept_as"].as_str().unwrap();
    let (_, old) = server.get(&format!("/collections/{kept}"));
    assert_eq!(old["model"], "minilm-l6-v2", "{old}");
    // The old collection serves reads and writes under its kept name until deleted.
    assert_eq!(add(&server.address, kept, json!([{"id": "late", "text": "written to the kept collection"}])).0, 200);
    assert_eq!(server.get(&format!("/collections/{kept}/documents/late")).0, 200);
    assert_eq!(server.get("/collections/kb/documents/late").0, 404);

    let now = all_documents(&server, "kb");
    let written = written.into_inner().unwrap();
    let deleted = deleted.into_inner().unwrap();
    for id in &written {
        assert!(now.contains_key(id), "acknowledged write {id} is missing after the switch");
    }
    for id in &deleted {
        assert!(!now.contains_key(id), "deleted {id} came back");
    }
    assert_eq!(now.len(), 150 - deleted.len() + written.len());
    for (id, (text, _)) in &now {
        // Stored with the new model's vector, and found by it.
        let stored = vector_of(&server, "kb", id);
        let fresh = embed(&server, "bge-small-en-v1.5", text);
        let cosine: f32 = stored.iter().zip(&fresh).map(|(a, b)| a * b).sum();
        assert!(cosine > 0.9999, "{id} is not bge-small's vector of its text (cosine {cosine})");
        let (_, found) = server.post("/collections/kb/search", &json!({"query": text, "mode": "dense", "k": 1}));
        assert_eq!(found["results"][0]["id"].as_str(), Some(id.as_str()), "dense search for {id}");
    }
    // The alias followed the name to the new collection.
    let (_, via_alias) = server.get("/collections/kb-live");
    assert_eq!(via_alias["model"], "bge-small-en-v1.5");
    // Collections of vectors brought by clients cannot be re-embedded.
    assert_eq!(server.post("/collections", &json!({"name": "vecs", "dims": 3})).0, 201);
    common::server::assert_error(&server.post("/collections/vecs/reembed", &json!({"model": "bge-small-en-v1.5"})), 409, "not_reembeddable", "brought by its clients");
    // A model the server has not loaded is the request's mistake (400), not a missing collection.
    common::server::assert_error(&server.post("/collections/kb/reembed", &json!({"model": "no-such-model"})), 400, "model_not_found", "not loaded");
}

/// A server killed mid-way through a re-embed resumes it at the next start and finishes it.
#[test]
fn a_reembed_resumes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let docs: Vec<Value> = (0..200).map(|i| json!({"id": format!("r{i:03}"), "text": format!("Resumable document {i} on matter m{}", i % 11)})).collect();
    let id = {
        let server = Server::start_with_env(dir.path(), &BOTH_MODELS, &[("FAILPOINTS", "reembed.batch=sleep(400)")]);
        assert_eq!(server.post("/collections", &json!({"name": "kb", "model": "minilm-l6-v2"})).0, 201);
        assert_eq!(add(&server.address, "kb", json!(docs)).0, 200);
        let (status, started) = server.post("/collections/kb/reembed", &json!({"model": "bge-small-en-v1.5"}));
        assert_eq!(status, 202, "{started}");
        let id = started["id"].as_str().unwrap().to_owned();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, job) = server.get(&format!("/jobs/{id}"));
            let done = job["documents_done"].as_u64().unwrap();
            if done >= 64 {
                assert!(done < 200, "finished before the kill: {job}");
                assert!(job["rate_per_second"].as_f64().is_some() && job["eta_seconds"].as_f64().is_some(), "{job}");
                break;
            }
            assert!(Instant::now() < deadline, "no progress: {job}");
            std::thread::sleep(Duration::from_millis(50));
        }
        // Progress is saved every 2 s.
        std::thread::sleep(Duration::from_millis(2200));
        id
        // SIGKILL on drop.
    };
    // At info level: resuming logs the job (a log line that once locked its record twice).
    let server = Server::start(dir.path(), &["--model", "minilm-l6-v2,bge-small-en-v1.5", "--log", "info"]);
    let job = wait_job(&server, &id, Duration::from_secs(300));
    assert_eq!(job["state"], "done", "{job}");
    let (_, info) = server.get("/collections/kb");
    assert_eq!(info["model"], "bge-small-en-v1.5");
    assert_eq!(info["documents"], 200);
    let (_, list) = server.get("/collections");
    assert_eq!(list["collections"].as_array().unwrap().len(), 2, "the old collection is kept, nothing else: {list}");
    let (_, found) = server.post("/collections/kb/search", &json!({"query": "Resumable document 17 on matter m6", "mode": "dense", "k": 1}));
    assert_eq!(found["results"][0]["id"], "r017");
    // A cancelled job leaves the collection as it was and drops its shadow.
    let (status, started) = server.post("/collections/kb/reembed", &json!({"model": "minilm-l6-v2", "chunking": null}));
    assert_eq!(status, 202, "{started}");
    let second = started["id"].as_str().unwrap().to_owned();
    common::server::assert_error(&server.post("/collections/kb/reembed", &json!({"model": "minilm-l6-v2"})), 409, "conflict", "already being re-embedded");
    assert_eq!(server.delete(&format!("/jobs/{second}")).0, 200);
    let cancelled = wait_job(&server, &second, Duration::from_secs(60));
    assert!(cancelled["state"] == "cancelled" || cancelled["state"] == "done", "{cancelled}");
    if cancelled["state"] == "cancelled" {
        assert_eq!(server.get("/collections/kb").1["model"], "bge-small-en-v1.5");
        assert_eq!(server.get("/collections").1["collections"].as_array().unwrap().len(), 2);
    }
    // A finished job is forgotten on DELETE.
    assert_eq!(server.delete(&format!("/jobs/{id}")).0, 200);
    assert_eq!(server.get(&format!("/jobs/{id}")).0, 404);
}

/// The Qdrant listener's snapshot routes: create, list, download, upload (multipart, replacing
/// the collection, as Qdrant does), recover from a file:// location, delete.
#[test]
fn the_qdrant_listener_serves_snapshots_in_akidbs_format() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::server::free_port().to_string();
    let server = Server::start(dir.path(), &["--qdrant-port", &port]);
    let q = server.qdrant.clone().unwrap();
    let qd = |method: &str, path: &str, body: Option<&Value>| server.qdrant(method, path, body, &[]);
    assert_eq!(qd("PUT", "/collections/pts", Some(&json!({"vectors": {"size": 4, "distance": "Cosine"}}))).0, 200);
    let points: Vec<Value> = (0..20).map(|i| json!({"id": i, "vector": [1.0, i as f32, 0.5, -1.0], "payload": {"i": i}})).collect();
    assert_eq!(qd("PUT", "/collections/pts/points?wait=true", Some(&json!({"points": points}))).0, 200);
    let (status, made) = qd("POST", "/collections/pts/snapshots", None);
    assert_eq!(status, 200, "{made}");
    let name = made["result"]["name"].as_str().unwrap().to_owned();
    let (_, list) = qd("GET", "/collections/pts/snapshots", None);
    assert_eq!(list["result"][0]["name"], name.as_str());
    let (status, _, file) = raw_to(&q, "GET", &format!("/collections/pts/snapshots/{name}"), None, &[]);
    assert_eq!(status, 200);
    let boundary = "akidbboundary";
    let mut body = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"snapshot\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").into_bytes();
    body.extend_from_slice(&file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let (status, _, answer) = raw_to(&q, "POST", "/collections/other/snapshots/upload", Some(&body), &[("Content-Type", &content_type)]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let (_, count) = qd("POST", "/collections/other/points/count", Some(&json!({"exact": true})));
    assert_eq!(count["result"]["count"], 20);
    let (_, point) = qd("GET", "/collections/other/points/7", None);
    assert_eq!(point["result"]["payload"]["i"], 7);
    // Recover replaces: a third collection from the kept file.
    let location = format!("file://{}", dir.path().join("snapshots/pts").join(&name).canonicalize().unwrap().display());
    assert_eq!(qd("PUT", "/collections/third/snapshots/recover", Some(&json!({"location": location}))).0, 200);
    assert_eq!(qd("POST", "/collections/third/points/count", Some(&json!({}))).1["result"]["count"], 20);
    assert_eq!(qd("PUT", "/collections/third/snapshots/recover", Some(&json!({"location": "file:///etc/passwd"}))).0, 400);
    assert_eq!(qd("DELETE", &format!("/collections/pts/snapshots/{name}"), None).0, 200);
    assert_eq!(qd("GET", "/collections/pts/snapshots", None).1["result"].as_array().unwrap().len(), 0);
}

/// `akidb backup DIR` snapshots every collection of a running server; `akidb restore FILE
/// --as NAME` brings one back.
#[test]
fn backup_and_restore_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    for name in ["one", "two"] {
        assert_eq!(server.post("/collections", &json!({"name": name})).0, 201);
        assert_eq!(add(&server.address, name, json!([{"id": "a", "text": format!("the {name} collection")}])).0, 200);
    }
    let out = tempfile::tempdir().unwrap();
    let url = format!("http://{}", server.address);
    let run = |args: &[&str]| std::process::Command::new(env!("CARGO_BIN_EXE_akidb")).args(args).args(["--url", &url]).env_remove("AKIDB_API_KEY").output().unwrap();
    let backup = run(&["backup", out.path().to_str().unwrap()]);
    assert!(backup.status.success(), "{}", String::from_utf8_lossy(&backup.stderr));
    let files: Vec<_> = std::fs::read_dir(out.path()).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(files.len(), 2, "{files:?}");
    // Downloaded and checked, then removed from the server.
    assert_eq!(server.get("/collections/one/snapshots").1["snapshots"].as_array().unwrap().len(), 0);
    let one = files.iter().find(|f| f.file_name().unwrap().to_string_lossy().starts_with("one-")).unwrap();
    let restore = run(&["restore", one.to_str().unwrap(), "--as", "one-again"]);
    assert!(restore.status.success(), "{}", String::from_utf8_lossy(&restore.stderr));
    assert_eq!(all_documents(&server, "one-again")["a"].0, "the one collection");
    let refused = run(&["restore", one.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("already exists"));
    let mut damaged = std::fs::read(one).unwrap();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x40;
    std::fs::write(out.path().join("bad.snapshot"), damaged).unwrap();
    let bad = run(&["restore", out.path().join("bad.snapshot").to_str().unwrap(), "--as", "bad"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("checksum mismatch"), "{}", String::from_utf8_lossy(&bad.stderr));
}

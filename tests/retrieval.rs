//! Retrieval for RAG through the server: documents split into passages, lexical (BM25), dense and
//! hybrid search, and the lexical index as derived data (survives SIGKILL, rebuilt when missing
//! or corrupt).

mod common;

use std::path::{Path, PathBuf};

use common::server::{assert_error, Server};
use serde_json::{json, Value};

const TOPICS: [&str; 8] = [
    "Bread dough rises because yeast ferments sugars and releases carbon dioxide into the gluten network",
    "Glaciers carve valleys over thousands of years as compacted snow flows slowly downhill under its own weight",
    "Violin makers season spruce and maple for decades before carving the top and back plates of an instrument",
    "Honeybees communicate the direction of distant flowers to their sisters through a waggle dance in the hive",
    "Medieval cathedrals used flying buttresses to carry the thrust of stone vaults outward and down to the ground",
    "Tide pools host anemones, hermit crabs and starfish that survive hours of exposure between high tides",
    "Spreadsheet formulas recalculate dependent cells automatically whenever an input value changes",
    "Marathon runners train their aerobic base with long slow runs before adding intervals and tempo work",
];

/// Thirty paragraphs of unrelated filler, then one paragraph about a lighthouse keeper.
fn long_document() -> (String, &'static str) {
    let mut paragraphs: Vec<String> = (0..30).map(|i| format!("{}. {} Paragraph {i} continues with more of the same observations.", TOPICS[i % TOPICS.len()], TOPICS[(i + 3) % TOPICS.len()])).collect();
    let last = "On the island, the lighthouse keeper recorded every storm in a leather-bound logbook, noting wind, swell and the ships that passed.";
    paragraphs.push(last.to_owned());
    (paragraphs.join("\n\n"), last)
}

fn identifier_docs() -> Value {
    json!({"documents": [
        {"id": "uuid", "text": "Generate identifiers with Uuid::new_v4() and parse them back with Uuid::parse_str.", "metadata": {"lang": "rust"}},
        {"id": "tokio", "text": "Run futures concurrently: tokio::spawn returns a JoinHandle you can await.", "metadata": {"lang": "rust"}},
        {"id": "serde", "text": "Turn a struct into JSON text with serde_json::to_string after deriving Serialize.", "metadata": {"lang": "rust"}},
        {"id": "hashmap", "text": "A HashMap stores key-value pairs; get_or_insert_with fills a missing entry lazily.", "metadata": {"lang": "rust"}},
        {"id": "ids", "text": "Random identifiers for database rows can be generated in many ways, such as sequential integers, timestamps or random numbers.", "metadata": {"lang": "prose"}},
        {"id": "async", "text": "Asynchronous tasks run concurrently on an executor that schedules them over a pool of threads.", "metadata": {"lang": "prose"}},
        {"id": "json", "text": "JSON is a text format for structured data made of objects, arrays, strings and numbers.", "metadata": {"lang": "prose"}},
        {"id": "maps", "text": "Dictionaries map keys to values and allow constant-time lookup on average.", "metadata": {"lang": "prose"}},
    ]})
}

fn search(server: &Server, collection: &str, body: Value) -> Vec<Value> {
    let (status, response) = server.post(&format!("/collections/{collection}/search"), &body);
    assert_eq!(status, 200, "{response}");
    response["results"].as_array().cloned().unwrap_or_default()
}

fn ids(results: &[Value]) -> Vec<String> {
    results.iter().map(|r| r["id"].as_str().unwrap_or_default().to_owned()).collect()
}

/// The characters `start..end` of `text`.
fn chars(text: &str, start: u64, end: u64) -> String {
    text.chars().skip(start as usize).take((end - start) as usize).collect()
}

#[test]
fn a_long_document_is_found_by_its_last_paragraph_with_the_passage_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    assert_eq!(server.post("/collections", &json!({"name": "rag"})).0, 201);
    let (text, last) = long_document();
    let mut documents = vec![json!({"id": "long", "text": text})];
    documents.extend(TOPICS.iter().enumerate().map(|(i, t)| json!({"id": format!("short-{i}"), "text": t})));
    let added = server.post("/collections/rag/documents", &json!({"documents": documents}));
    assert_eq!(added.0, 200, "{}", added.1);
    let passages = added.1["passages"][0].as_u64().unwrap();
    assert!(passages >= 5, "a ~2,000-token document must be several passages, got {passages}");
    assert_eq!(added.1["truncated"][0], false);
    let info = server.get("/collections/rag").1;
    assert_eq!(info["documents"], 9);
    assert_eq!(info["passages"].as_u64().unwrap(), passages + 8);
    assert_eq!(info["index"]["lexical_passages"], info["passages"]);

    for mode in ["dense", "lexical", "hybrid"] {
        let results = search(&server, "rag", json!({"query": "Who kept a logbook of the storms at the lighthouse?", "mode": mode, "k": 3}));
        assert_eq!(results[0]["id"], "long", "{mode}: {results:?}");
        let (start, end) = (results[0]["passage"]["start"].as_u64().unwrap(), results[0]["passage"]["end"].as_u64().unwrap());
        let passage = results[0]["text"].as_str().unwrap();
        assert_eq!(chars(&text, start, end), passage, "{mode}: offsets and passage text agree");
        assert!(passage.contains(last), "{mode}: the hit is the last passage: {passage:?}");
        assert_eq!(end as usize, text.chars().count(), "{mode}: the last passage ends the document");
        // Documents are distinct by default.
        let all = ids(&results);
        assert_eq!(all.iter().collect::<std::collections::HashSet<_>>().len(), all.len(), "{mode}: {all:?}");
    }
    // Asked for passages, several of the long document's come back, each with its own offsets.
    let passages = search(&server, "rag", json!({"query": "glaciers carve valleys", "mode": "lexical", "passages": true, "k": 5}));
    let long: Vec<&Value> = passages.iter().filter(|p| p["id"] == "long").collect();
    assert!(long.len() >= 2, "{passages:?}");
    assert_ne!(long[0]["passage"]["index"], long[1]["passage"]["index"]);
    // The document is still one document: get returns the whole text and its passages.
    let got = server.get("/collections/rag/documents/long").1;
    assert_eq!(got["text"].as_str().unwrap(), text);
    assert_eq!(got["passages"].as_array().unwrap().len() as u64, added.1["passages"][0].as_u64().unwrap());
    // A delete removes every passage.
    assert_eq!(server.delete("/collections/rag/documents/long").1["deleted"], 1);
    let info = server.get("/collections/rag").1;
    assert_eq!((info["documents"].clone(), info["passages"].clone(), info["index"]["lexical_passages"].clone()), (json!(8), json!(8), json!(8)));
    for mode in ["dense", "lexical", "hybrid"] {
        let results = search(&server, "rag", json!({"query": "lighthouse keeper logbook", "mode": mode, "passages": true, "k": 20}));
        assert!(results.iter().all(|r| r["id"] != "long"), "{mode}: deleted passages returned");
    }
}

#[test]
fn identifiers_are_found_first_and_filters_apply_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    assert_eq!(server.post("/collections", &json!({"name": "code"})).0, 201);
    assert_eq!(server.post("/collections/code/documents", &identifier_docs()).0, 200);
    for (query, expected) in [("Uuid::new_v4", "uuid"), ("tokio::spawn", "tokio"), ("serde_json::to_string", "serde"), ("get_or_insert_with", "hashmap"), ("HashMap", "hashmap")] {
        for mode in ["lexical", "hybrid"] {
            let results = search(&server, "code", json!({"query": query, "mode": mode, "k": 3}));
            assert_eq!(results.first().map(|r| r["id"].clone()), Some(json!(expected)), "{mode} {query}: {results:?}");
        }
    }
    // The default mode is hybrid: an exact identifier wins there without asking.
    assert_eq!(ids(&search(&server, "code", json!({"query": "Uuid::new_v4", "k": 1}))), ["uuid"]);
    for mode in ["dense", "lexical", "hybrid"] {
        let results = search(&server, "code", json!({"query": "random identifiers", "mode": mode, "k": 8, "where": {"lang": "rust"}}));
        assert!(!results.is_empty(), "{mode}");
        assert!(results.iter().all(|r| r["metadata"]["lang"] == "rust"), "{mode}: {results:?}");
    }
    // Chunking is checked against the model's window.
    assert_error(&server.post("/collections", &json!({"name": "c2", "chunking": {"max_tokens": 1000, "overlap_tokens": 10}})), 400, "invalid_chunking", "254");
    // An overlap as long as the passage is capped below it, and the answer says so.
    let (status, capped) = server.post("/collections", &json!({"name": "c3", "chunking": {"max_tokens": 100, "overlap_tokens": 100}}));
    assert_eq!((status, capped["chunking"]["overlap_tokens"].as_u64()), (201, Some(99)), "{capped}");
    let small = server.post("/collections", &json!({"name": "c2", "chunking": {"max_tokens": 16, "overlap_tokens": 4}}));
    assert_eq!(small.1["chunking"], json!({"max_tokens": 16, "overlap_tokens": 4}), "{}", small.1);
    let added = server.post("/collections/c2/documents", &json!({"documents": [{"id": "d", "text": "one two three four five six seven eight nine ten. ".repeat(6)}]}));
    assert!(added.1["passages"][0].as_u64().unwrap() >= 4, "{}", added.1);
    // Lexical search needs words: a vector query is dense only.
    let vector = vec![0.05f32; 384];
    assert_error(&server.post("/collections/code/search", &json!({"vector": vector, "mode": "lexical"})), 400, "invalid_request", "dense");
    assert_error(&server.post("/collections/code/search", &json!({"query": "x", "mode": "fuzzy"})), 422, "invalid_request", "mode");
    assert_error(&server.post("/collections/code/search", &json!({"query": "x", "rrf_k": -1.0})), 400, "invalid_request", "rrf_k");
    // The candidate depth is bounded; a shallow one still answers k documents (it grows).
    assert_error(&server.post("/collections/code/search", &json!({"query": "x", "candidates": 10_001})), 400, "invalid_request", "candidates");
    assert_error(&server.post("/collections/code/search", &json!({"query": "x", "candidates": 0})), 400, "invalid_request", "candidates");
    let shallow = search(&server, "code", json!({"query": "random identifiers", "k": 3, "candidates": 1}));
    assert_eq!(shallow.len(), 3, "{shallow:?}");
    // Batch search takes modes per query.
    let batch = server.post("/collections/code/search/batch", &json!({"searches": [{"query": "tokio::spawn", "mode": "lexical", "k": 1}, {"query": "Uuid::new_v4", "mode": "hybrid", "k": 1}]}));
    assert_eq!(batch.0, 200, "{}", batch.1);
    assert_eq!((batch.1["results"][0][0]["id"].clone(), batch.1["results"][1][0]["id"].clone()), (json!("tokio"), json!("uuid")));
}

type Snapshot = Vec<(String, Vec<(String, String)>)>;

/// Results of lexical and hybrid searches, ids and scores, for comparing runs.
fn snapshot(server: &Server) -> Snapshot {
    let queries = ["Uuid::new_v4", "spawn a task", "JSON text", "identifiers", "key-value lookup", "glaciers and bees"];
    let mut out = Vec::new();
    for mode in ["lexical", "hybrid"] {
        for query in queries {
            let results = search(server, "code", json!({"query": query, "mode": mode, "k": 5, "include": []}));
            out.push((format!("{mode} {query}"), results.iter().map(|r| (r["id"].as_str().unwrap().to_owned(), format!("{:.5}", r["score"].as_f64().unwrap()))).collect()));
        }
    }
    out
}

/// Rankings only. A rebuilt index no longer counts deleted and replaced passages in its BM25
/// statistics (tantivy keeps them until segments merge), so its lexical scores differ slightly
/// from the index it replaces, while the rankings must not.
fn rankings(snapshot: &Snapshot) -> Vec<(String, Vec<String>)> {
    snapshot.iter().map(|(query, hits)| (query.clone(), hits.iter().map(|(id, _)| id.clone()).collect())).collect()
}

fn lexical_dir(data: &Path) -> PathBuf {
    let index = std::fs::read_dir(data.join("index")).unwrap().flatten().find(|e| e.path().is_dir()).expect("an index directory");
    index.path().join("lexical")
}

#[test]
fn the_lexical_index_survives_sigkill_and_is_rebuilt_when_missing_or_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    assert_eq!(server.post("/collections", &json!({"name": "code"})).0, 201);
    assert_eq!(server.post("/collections/code/documents", &identifier_docs()).0, 200);
    let extra: Vec<Value> = TOPICS.iter().enumerate().map(|(i, t)| json!({"id": format!("t{i}"), "text": t})).collect();
    assert_eq!(server.post("/collections/code/documents", &json!({"documents": extra})).0, 200);
    assert_eq!(server.delete("/collections/code/documents/t3").0, 200);
    assert_eq!(server.post("/collections/code/documents", &json!({"documents": [{"id": "t4", "text": "Bees and glaciers, rewritten."}]})).0, 200);
    let before = snapshot(&server);
    assert!(before.iter().all(|(_, hits)| !hits.is_empty()), "{before:?}");
    drop(server); // SIGKILL, right after acknowledged writes

    let server = Server::start(dir.path(), &[]);
    assert_eq!(snapshot(&server), before, "after SIGKILL and restart");
    server.stop();

    let lexical = lexical_dir(dir.path());
    std::fs::remove_dir_all(&lexical).unwrap();
    let server = Server::start(dir.path(), &[]);
    assert!(lexical.join("meta.json").exists(), "the missing index was rebuilt");
    assert_eq!(rankings(&snapshot(&server)), rankings(&before), "after rebuilding a missing index");
    server.stop();

    // Corrupt every segment file: checksums fail and the index is rebuilt from the store.
    let mut corrupted = 0;
    for entry in std::fs::read_dir(&lexical).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".idx") || name.ends_with(".term") || name.ends_with(".fast") {
            let mut bytes = std::fs::read(entry.path()).unwrap();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0xFF;
            std::fs::write(entry.path(), bytes).unwrap();
            corrupted += 1;
        }
    }
    assert!(corrupted > 0, "no segment files found in {}", lexical.display());
    let server = Server::start(dir.path(), &[]);
    assert_eq!(rankings(&snapshot(&server)), rankings(&before), "after rebuilding a corrupt index");
    // And garbage in meta.json.
    server.stop();
    std::fs::write(lexical.join("meta.json"), b"{not json").unwrap();
    let server = Server::start(dir.path(), &[]);
    assert_eq!(rankings(&snapshot(&server)), rankings(&before), "after rebuilding an unreadable index");
    server.stop();
}

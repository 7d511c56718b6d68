//! The REST API through a real `akidb serve` with the real default model.

mod common;

use std::collections::HashSet;

use common::server::{assert_error, Server};
use serde_json::{json, Value};

fn docs() -> Value {
    json!({"documents": [
        {"id": "paris", "text": "Paris is the capital of France.", "metadata": {"topic": "geo", "year": 2020}},
        {"id": "berlin", "text": "Berlin is the capital of Germany.", "metadata": {"topic": "geo", "year": 2021}},
        {"id": "rust", "text": "Rust is a systems programming language focused on safety.", "metadata": {"topic": "code", "year": 2015}},
        {"id": "hnsw", "text": "HNSW graphs make approximate nearest neighbour search fast.", "metadata": {"topic": "code", "year": 2016}},
        {"id": "bread", "text": "Sourdough bread needs a long fermentation.", "metadata": {"topic": "food", "year": 2019}}
    ]})
}

fn top_id(response: &(u16, Value)) -> String {
    assert_eq!(response.0, 200, "{}", response.1);
    response.1["results"][0]["id"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn full_lifecycle_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let health = server.get("/health");
    assert_eq!(health.0, 200);
    assert_eq!(health.1["models"][0]["name"], "minilm-l6-v2");
    assert_eq!(health.1["models"][0]["execution_provider"], "CPUExecutionProvider");

    let created = server.post("/collections", &json!({"name": "kb"}));
    assert_eq!(created.0, 201, "{}", created.1);
    assert_eq!((created.1["dims"].clone(), created.1["metric"].clone(), created.1["model"].clone()), (json!(384), json!("cosine"), json!("minilm-l6-v2")));
    assert_error(&server.post("/collections", &json!({"name": "kb"})), 409, "collection_exists", "kb");

    let added = server.post("/collections/kb/documents", &docs());
    assert_eq!(added.0, 200, "{}", added.1);
    assert_eq!(added.1["ids"], json!(["paris", "berlin", "rust", "hnsw", "bread"]));
    assert_eq!(added.1["truncated"], json!([false, false, false, false, false]));
    // A document without an id gets a UUIDv7; a long one is split into passages, not truncated.
    let generated = server.post("/collections/kb/documents", &json!({"documents": [{"text": "word ".repeat(400)}]}));
    assert_eq!(generated.1["truncated"], json!([false]), "{}", generated.1);
    assert!(generated.1["passages"][0].as_u64().unwrap() >= 2, "{}", generated.1);
    // Without chunking, the same text is one passage, cut at the window, and says so.
    assert_eq!(server.post("/collections", &json!({"name": "whole", "chunking": null})).0, 201);
    let whole = server.post("/collections/whole/documents", &json!({"documents": [{"text": "word ".repeat(400)}]}));
    assert_eq!((whole.1["truncated"].clone(), whole.1["passages"].clone()), (json!([true]), json!([1])), "{}", whole.1);
    assert_eq!(server.get("/collections/whole").1["chunking"], Value::Null);
    assert_eq!(server.get("/collections/kb").1["chunking"], json!({"max_tokens": 254, "overlap_tokens": 31}));
    assert_eq!(server.delete("/collections/whole").0, 200);
    let generated_id = generated.1["ids"][0].as_str().unwrap().to_owned();
    assert_eq!(uuid::Uuid::parse_str(&generated_id).map(|u| u.get_version_num()).ok(), Some(7));

    assert_eq!(top_id(&server.post("/collections/kb/search", &json!({"query": "What is the capital of Germany?"}))), "berlin");
    assert_eq!(top_id(&server.post("/collections/kb/search", &json!({"query": "fast vector search", "k": 2}))), "hnsw");
    let filtered = server.post("/collections/kb/search", &json!({"query": "capital city", "where": {"topic": {"$ne": "geo"}}, "include": ["metadata"]}));
    assert_eq!(filtered.0, 200);
    let results = filtered.1["results"].as_array().unwrap();
    assert!(results.iter().all(|r| r["metadata"]["topic"] != "geo" && r.get("text").is_none()));
    let batch = server.post("/collections/kb/search/batch", &json!({"searches": [{"query": "bread baking"}, {"query": "memory safe language", "k": 1}]}));
    assert_eq!(batch.0, 200, "{}", batch.1);
    assert_eq!(batch.1["results"][0][0]["id"], "bread");
    assert_eq!(batch.1["results"][1].as_array().unwrap().len(), 1);
    assert_eq!(batch.1["results"][1][0]["id"], "rust");

    // Search by vector: the stored vector of a document finds it first with score ~1.
    let stored = server.get("/collections/kb/documents/paris?include_vector=true");
    assert_eq!(stored.0, 200);
    assert_eq!(stored.1["metadata"]["year"], 2020);
    let by_vector = server.post("/collections/kb/search", &json!({"vector": stored.1["vector"], "k": 1}));
    assert_eq!(top_id(&by_vector), "paris");
    assert!(by_vector.1["results"][0]["score"].as_f64().unwrap() > 0.999);

    assert_eq!(server.delete("/collections/kb/documents/bread").1["deleted"], 1);
    assert_error(&server.get("/collections/kb/documents/bread"), 404, "document_not_found", "bread");
    assert_eq!(server.post("/collections/kb/documents/delete", &json!({"where": {"year": {"$lt": 2016}}})).1["deleted"], 1);
    let info = server.get("/collections/kb");
    assert_eq!(info.1["documents"], 4, "{}", info.1);
    assert_eq!(server.get("/collections").1["collections"][0]["name"], "kb");
    server.stop();

    // Same data directory, new process: everything is still there and searchable.
    let server = Server::start(dir.path(), &[]);
    assert_eq!(server.get("/collections/kb").1["documents"], 4);
    assert_eq!(top_id(&server.post("/collections/kb/search", &json!({"query": "capital of France"}))), "paris");
    assert_error(&server.get("/collections/kb/documents/rust"), 404, "document_not_found", "rust");
    assert_eq!(server.get(&format!("/collections/kb/documents/{generated_id}")).0, 200);
    assert_eq!(server.delete("/collections/kb").0, 200);
    assert_error(&server.get("/collections/kb"), 404, "collection_not_found", "kb");
    server.stop();
}

#[test]
fn fifty_concurrent_clients_ingest_and_search_without_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    assert_eq!(server.post("/collections", &json!({"name": "busy"})).0, 201);
    std::thread::scope(|scope| {
        for client in 0..50 {
            let server = &server;
            scope.spawn(move || {
                let documents: Vec<Value> = (0..4).map(|i| json!({"id": format!("c{client}-{i}"), "text": format!("client {client} writes note {i} about topic {}", (client + i) % 7)})).collect();
                let added = server.post("/collections/busy/documents", &json!({"documents": documents}));
                assert_eq!(added.0, 200, "client {client}: {}", added.1);
                for q in 0..2 {
                    let found = server.post("/collections/busy/search", &json!({"query": format!("note about topic {q}"), "k": 5}));
                    assert_eq!(found.0, 200, "client {client}: {}", found.1);
                }
            });
        }
    });
    assert_eq!(server.get("/collections/busy").1["documents"], 200);
    for client in (0..50).step_by(7) {
        for i in 0..4 {
            assert_eq!(server.get(&format!("/collections/busy/documents/c{client}-{i}")).0, 200);
        }
    }
}

#[test]
fn every_bad_input_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-batch-documents", "5", "--max-body-bytes", "200000"]);
    assert_eq!(server.post("/collections", &json!({"name": "c"})).0, 201);
    let raw = |method: &str, path: &str, body: &str| server.request(method, path, Some(body.as_bytes()), &[]);

    assert_error(&raw("POST", "/collections/c/search", "{\"query\": "), 400, "malformed_json", "");
    assert_error(&raw("POST", "/collections", "{\"nmae\": \"x\"}"), 422, "invalid_request", "nmae");
    assert_error(&raw("POST", "/collections/c/documents", "{\"documents\": [{\"id\": \"a\"}]}"), 400, "invalid_request", "neither text nor vector");
    assert_error(&raw("POST", "/collections/c/search", "{\"query\": \"x\", \"k\": \"ten\"}"), 422, "invalid_request", "k");
    assert_error(&server.request("POST", "/collections/c/search", Some(b"{}"), &[("Content-Type", "text/plain")]), 415, "unsupported_media_type", "");
    assert_error(&server.post("/collections/c/search", &json!({"query": "  "})), 400, "invalid_request", "query is empty");
    assert_error(&server.post("/collections/c/search", &json!({})), 400, "invalid_request", "give query");
    assert_error(&server.post("/collections/c/search", &json!({"query": "x", "vector": [1.0]})), 400, "invalid_request", "not both");
    assert_error(&server.post("/collections/c/search", &json!({"vector": [1.0, 2.0]})), 400, "dimension_mismatch", "expects 384");
    let mut huge = vec![json!(0.01); 384];
    // 1e39 is no f32 (it would overflow to infinity): refused by the bound, read as sent.
    huge[3] = json!(1e39);
    assert_error(&server.post("/collections/c/search", &json!({"vector": huge})), 400, "invalid_vector", "within ±1e15");
    assert_error(&server.post("/collections/c/search", &json!({"query": "x", "k": 0})), 400, "invalid_request", "k must be");
    assert_error(&server.post("/collections/c/search", &json!({"query": "x", "k": 1001})), 400, "invalid_request", "k must be");
    assert_error(&server.post("/collections/c/search", &json!({"query": "x", "where": {"a": {"$regex": "."}}})), 400, "invalid_filter", "$regex");
    assert_error(&server.post("/collections", &json!({"name": "bad name!"})), 400, "invalid_collection_name", "bad name!");
    assert_error(&server.post("/collections", &json!({"name": "m", "hnsw": {"m": 1000}})), 400, "invalid_hnsw_params", "m must be");
    assert_error(&server.post("/collections", &json!({"name": "x", "model": "gpt-9"})), 404, "model_not_found", "gpt-9");
    assert_error(&server.post("/collections/nope/search", &json!({"query": "x"})), 404, "collection_not_found", "nope");
    assert_error(&server.get("/collections/c/documents/ghost"), 404, "document_not_found", "ghost");
    assert_error(&server.get("/no/such/route"), 404, "route_not_found", "");
    assert_error(&server.request("PUT", "/collections", None, &[]), 405, "method_not_allowed", "");
    assert_error(&server.post("/collections/c/documents", &json!({"documents": [{"text": ""}]})), 400, "invalid_request", "documents[0] has neither text nor vector");
    assert_error(&server.post("/collections/c/documents", &json!({"documents": [{"id": "x".repeat(300), "text": "t"}]})), 400, "invalid_request", "256 characters");
    assert_error(&server.post("/collections/c/documents/delete", &json!({})), 400, "invalid_request", "give ids");
    assert_error(&server.post("/collections/c/documents/delete", &json!({"where": {}})), 400, "invalid_filter", "delete the collection");
    let six: Vec<Value> = (0..6).map(|i| json!({"text": format!("t{i}")})).collect();
    assert_error(&server.post("/collections/c/documents", &json!({"documents": six})), 413, "payload_too_large", "at most 5 documents");
    let big = json!({"documents": [{"text": "x".repeat(300_000)}]});
    assert_error(&server.post("/collections/c/documents", &big), 413, "payload_too_large", "");
    assert_error(&server.post("/v1/embeddings", &json!({"input": [1, 2], "model": "minilm-l6-v2"})), 400, "invalid_request", "token arrays");
    assert_error(&server.post("/v1/embeddings", &json!({"input": "x", "model": "minilm-l6-v2", "dimensions": 100})), 400, "unsupported_dimensions", "100");
    // Nothing half-written survived the rejected batches.
    assert_eq!(server.get("/collections/c").1["documents"], 0);
    // The server is still healthy.
    assert_eq!(server.get("/health").0, 200);
}

#[test]
fn overload_is_refused_with_503_and_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-in-flight", "1"]);
    let inputs: Vec<String> = (0..64).map(|i| format!("text number {i} to keep the model busy for a while")).collect();
    let body = json!({"input": inputs, "model": "minilm-l6-v2"}).to_string();
    let statuses: Vec<(u16, Vec<(String, String)>, Vec<u8>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8).map(|_| scope.spawn(|| server.raw("POST", "/v1/embeddings", Some(body.as_bytes()), &[]))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let refused: Vec<_> = statuses.iter().filter(|(s, _, _)| *s == 503).collect();
    assert!(statuses.iter().all(|(s, _, _)| *s == 200 || *s == 503));
    assert!(!refused.is_empty(), "8 concurrent requests with --max-in-flight 1 must shed some");
    for (_, headers, body) in refused {
        assert!(headers.iter().any(|(k, v)| k == "retry-after" && v == "1"));
        let body: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(body["error"]["code"], "overloaded");
    }
    assert_eq!(server.get("/health").0, 200, "probes are never shed");
}

#[test]
fn api_key_guards_everything_but_the_probes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--api-key", "s3cret"]);
    assert_eq!(server.get("/health").0, 200);
    assert_eq!(server.get("/ready").0, 200);
    assert_error(&server.get("/collections"), 401, "missing_api_key", "Bearer");
    assert_error(&server.request("GET", "/collections", None, &[("Authorization", "Bearer wrong")]), 401, "invalid_api_key", "");
    assert_error(&server.request("GET", "/metrics", None, &[]), 401, "missing_api_key", "");
    assert_eq!(server.request("GET", "/collections", None, &[("Authorization", "Bearer s3cret")]).0, 200);
    let (status, headers, _) = server.raw("GET", "/collections", None, &[]);
    assert_eq!(status, 401);
    assert!(headers.iter().any(|(k, v)| k == "www-authenticate" && v == "Bearer"));
    // A key already keeps other origins' pages out: any Host is answered.
    assert_eq!(server.request("GET", "/collections", None, &[("Host", "evil.example"), ("Authorization", "Bearer s3cret")]).0, 200);
}

/// Issue 18, item 12. Before: with no key, a request for `Host: evil.example` (a page whose name
/// was rebound to 127.0.0.1) was answered in full. Now only loopback names, the bound address
/// and --allowed-hosts are answered; the page may not be framed and loads nothing foreign.
#[test]
fn without_a_key_only_local_host_names_are_answered() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--allowed-hosts", "akidb.lan"]);
    assert_eq!(server.post("/collections", &json!({"name": "secret", "dims": 2})).0, 201);
    for host in ["evil.example", "evil.example:8080", "127.0.0.1.evil.example", "localhost.evil.example"] {
        let response = server.request("GET", "/collections", None, &[("Host", host)]);
        assert_error(&response, 403, "host_not_allowed", "--allowed-hosts");
        assert_error(&server.request("DELETE", "/collections/secret", None, &[("Host", host)]), 403, "host_not_allowed", "");
        assert_eq!(server.request("GET", "/", None, &[("Host", host)]).0, 403, "the page too");
    }
    for host in ["localhost", "LOCALHOST:6333", "127.0.0.1:1", "[::1]:8080", "akidb.lan", "app.localhost"] {
        assert_eq!(server.request("GET", "/collections", None, &[("Host", host)]).0, 200, "{host}");
    }
    assert_eq!(server.get("/collections/secret").0, 200, "nothing was dropped");
    let (status, headers, _) = server.raw("GET", "/", None, &[]);
    assert_eq!(status, 200);
    let csp = headers.iter().find(|(k, _)| k == "content-security-policy").map(|(_, v)| v.as_str()).unwrap_or_default();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("connect-src 'self'"), "{csp}");
}

/// Issue 18, item 13. Before: started outside the repository, `akidb serve` could not find its
/// default model ("model 'minilm-l6-v2' not found"). Now it looks beside the binary too.
#[test]
fn serve_started_elsewhere_finds_its_default_model_and_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), &dir.path().join("data"), &[], &[]);
    let (status, models) = server.get("/v1/models");
    assert_eq!(status, 200);
    assert_eq!(models["data"][0]["id"], "minilm-l6-v2");
}

#[test]
fn openapi_lists_every_route_and_metrics_are_prometheus_text() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (status, spec) = server.get("/openapi.json");
    assert_eq!(status, 200);
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."), "{}", spec["openapi"]);
    // Its validity as OpenAPI 3.1 is checked by schemathesis in tests/openapi.rs.
    let paths: HashSet<String> = spec["paths"].as_object().unwrap().keys().cloned().collect();
    for (path, methods) in [
        ("/", vec!["get"]),
        ("/health", vec!["get"]),
        ("/ready", vec!["get"]),
        ("/metrics", vec!["get"]),
        ("/openapi.json", vec!["get"]),
        ("/v1/embeddings", vec!["post"]),
        ("/collections", vec!["get", "post"]),
        ("/collections/{name}", vec!["get", "delete"]),
        ("/collections/{name}/documents", vec!["get", "post"]),
        ("/collections/{name}/count", vec!["post"]),
        ("/v1/models", vec!["get"]),
        ("/collections/{name}/documents/{id}", vec!["get", "delete"]),
        ("/collections/{name}/documents/delete", vec!["post"]),
        ("/collections/{name}/search", vec!["post"]),
        ("/collections/{name}/search/batch", vec!["post"]),
        ("/collections/{name}/rebuild", vec!["post"]),
        ("/aliases", vec!["get"]),
        ("/aliases/{alias}", vec!["put", "delete"]),
        ("/collections/{name}/snapshots", vec!["get", "post"]),
        ("/collections/{name}/snapshots/{snapshot}", vec!["get", "delete"]),
        ("/collections/{name}/snapshots/upload", vec!["post"]),
        ("/collections/{name}/reembed", vec!["post"]),
        ("/jobs", vec!["get"]),
        ("/jobs/{id}", vec!["get", "delete"]),
    ] {
        assert!(paths.contains(path), "{path} missing from the OpenAPI document");
        for method in methods {
            assert!(spec["paths"][path][method].is_object(), "{method} {path} missing");
        }
    }
    assert_eq!(paths.len(), 24, "the document lists a route the server does not have: {paths:?}");

    assert_eq!(server.post("/collections", &json!({"name": "m"})).0, 201);
    assert_eq!(server.post("/collections/m/documents", &json!({"documents": [{"text": "hello"}]})).0, 200);
    let (status, _, body) = server.raw("GET", "/metrics", None, &[]);
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    for needle in [
        "akidb_http_requests_total{route=\"/collections/{name}/documents\",method=\"POST\",status=\"200\"} 1",
        "akidb_http_request_duration_seconds_bucket",
        "akidb_embed_batch_texts",
        "akidb_embed_queue_texts{model=\"minilm-l6-v2\"} 0",
        "akidb_collection_documents{collection=\"m\"} 1",
        "akidb_collection_tombstones{collection=\"m\"} 0",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
}

#[test]
fn openai_python_client_gets_the_same_vectors_as_akidb_embed() {
    let python = common::repo().join(".venv/bin/python");
    assert!(python.is_file(), "{} is missing: scripts/test creates it with the openai package", python.display());
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let texts = ["Hello, world!", "Vector search with HNSW graphs is fast."];
    let script = r#"
import json, sys
from openai import OpenAI
client = OpenAI(base_url=sys.argv[1], api_key="unused")
out = client.embeddings.create(model="minilm-l6-v2", input=json.loads(sys.argv[2]))
print(json.dumps({"vectors": [d.embedding for d in out.data], "tokens": out.usage.total_tokens}))
"#;
    let output = std::process::Command::new(&python)
        .args(["-c", script, &format!("http://{}/v1", server.address), &serde_json::to_string(&texts).unwrap()])
        .output()
        .expect("run python");
    assert!(output.status.success(), "openai client failed: {}", String::from_utf8_lossy(&output.stderr));
    let reply: Value = serde_json::from_slice(&output.stdout).unwrap();
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_akidb"))
        .args(["embed", "--model", "minilm-l6-v2", "--device", "cpu", "--log", "warn"])
        .args(texts)
        .current_dir(common::repo())
        .output()
        .expect("akidb embed");
    assert!(cli.status.success());
    let lines: Vec<Value> = String::from_utf8_lossy(&cli.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut tokens = 0;
    for (i, line) in lines.iter().enumerate() {
        let ours = common::floats(&line["embedding"]);
        let theirs = common::floats(&reply["vectors"][i]);
        assert_eq!(ours.len(), 384);
        // The client decodes base64 float32: the values must be bit-identical to the CLI's.
        assert_eq!(ours, theirs, "text {i}");
        tokens += line["tokens"].as_u64().unwrap();
    }
    assert_eq!(reply["tokens"].as_u64().unwrap(), tokens);
}

#[test]
fn an_id_repeated_in_one_request_ends_with_its_last_document_and_nothing_else_is_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    assert_eq!(server.post("/collections", &json!({"name": "d"})).0, 201);
    assert_eq!(server.post("/collections/d/documents", &json!({"documents": [{"id": "old", "text": "an unrelated older document"}, {"id": "x", "text": "stored before"}]})).0, 200);
    let batch = json!({"documents": [
        {"id": "x", "text": "zeppelin airships float", "metadata": {"v": 1}},
        {"id": "y", "text": "new id written twice, first"},
        {"id": "x", "text": "submarines dive deep", "metadata": {"v": 2}},
        {"id": "y", "text": "new id written twice, second"}
    ]});
    let (status, answer) = server.post("/collections/d/documents", &batch);
    assert_eq!(status, 200, "{answer}");
    let (_, info) = server.get("/collections/d");
    assert_eq!((info["documents"].as_u64(), info["passages"].as_u64(), info["index"]["lexical_passages"].as_u64()), (Some(3), Some(3), Some(3)), "{info}");
    let (_, x) = server.get("/collections/d/documents/x");
    assert_eq!((x["text"].as_str(), x["metadata"]["v"].as_i64()), (Some("submarines dive deep"), Some(2)));
    // The superseded texts are found in no mode.
    for mode in ["lexical", "dense", "hybrid"] {
        let (_, found) = server.post("/collections/d/search", &json!({"query": "zeppelin airships", "mode": mode, "k": 3}));
        for hit in found["results"].as_array().unwrap() {
            assert_ne!(hit["text"], "zeppelin airships float", "{mode}: {found}");
        }
    }
    let (_, count) = server.post("/collections/d/count", &json!({"where": {"v": 1}}));
    assert_eq!(count["count"], 0);
}

/// Vectors brought by the client (issue 12's contract): a collection without a model, documents
/// that carry `vector`, search by vector with a filter, checks before anything is written, and a
/// vector in a model-bound collection.
#[test]
fn vectors_brought_by_the_client_are_stored_searched_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let created = server.post("/collections", &json!({"name": "v", "dims": 3, "metric": "cosine"}));
    assert_eq!(created.0, 201, "{}", created.1);
    assert_eq!((created.1["model"].clone(), created.1["dims"].clone(), created.1["index"]["backend"].clone()), (Value::Null, json!(3), json!("hnsw")));
    let added = server.post(
        "/collections/v/documents",
        &json!({"documents": [
            {"id": "x", "vector": [1.0, 0.0, 0.0], "metadata": {"axis": "x", "n": 1}},
            {"id": "y", "vector": [0.0, 2.0, 0.0], "metadata": {"axis": "y", "n": 2}, "text": "the y axis"},
            {"id": "z", "vector": [0.0, 0.0, 0.5], "metadata": {"axis": "z", "n": 3}}
        ]}),
    );
    assert_eq!(added.0, 200, "{}", added.1);
    assert_eq!((added.1["passages"].clone(), added.1["tokens"].clone()), (json!([1, 1, 1]), json!([0, 0, 0])));
    let near_y = server.post("/collections/v/search", &json!({"vector": [0.1, 1.0, 0.0], "k": 3, "include": ["vector", "text"]}));
    assert_eq!(top_id(&near_y), "y");
    assert_eq!(near_y.1["results"][0]["text"], "the y axis");
    // Stored normalized for cosine.
    assert_eq!(near_y.1["results"][0]["vector"], json!([0.0, 1.0, 0.0]));
    let filtered = server.post("/collections/v/search", &json!({"vector": [0.1, 1.0, 0.0], "k": 10, "where": {"n": {"$gte": 3}}}));
    assert_eq!(top_id(&filtered), "z");
    assert_eq!(filtered.1["results"].as_array().unwrap().len(), 1);
    // Text given with a vector is indexed lexically; a text query needs a model otherwise.
    assert_eq!(top_id(&server.post("/collections/v/search", &json!({"query": "axis", "mode": "lexical"}))), "y");
    assert_error(&server.post("/collections/v/search", &json!({"query": "axis"})), 400, "no_model", "has no model");
    assert_eq!(server.post("/collections/v/count", &json!({"where": {"axis": {"$in": ["x", "z"]}}})).1["count"], 2);

    // Checked before anything is written: nothing of a bad batch lands.
    for (document, code, needle) in [
        (json!({"id": "w", "vector": [1.0, 0.0]}), "invalid_vector", "expects 3"),
        (json!({"id": "w", "vector": [1e30, 0.0, 0.0]}), "invalid_vector", "within"),
        (json!({"id": "w", "text": "no vector"}), "no_model", "give each document a vector"),
        (json!({"id": "w"}), "invalid_request", "neither text nor vector"),
    ] {
        let batch = json!({"documents": [{"id": "ok", "vector": [1.0, 1.0, 1.0]}, document]});
        assert_error(&server.post("/collections/v/documents", &batch), 400, code, needle);
    }
    assert_eq!(server.get("/collections/v").1["documents"], 3, "a refused batch wrote nothing");
    assert_eq!(server.get("/collections/v/documents/ok").0, 404);

    // Creation: dims without a model; dims that contradict the model; unit-vector backends.
    assert_error(&server.post("/collections", &json!({"name": "bad", "dims": 0})), 400, "invalid_hnsw_params", "dims must be");
    assert_error(&server.post("/collections", &json!({"name": "bad", "model": "minilm-l6-v2", "dims": 50})), 400, "dimension_mismatch", "384");
    assert_error(&server.post("/collections", &json!({"name": "bad", "dims": 4, "metric": "l2", "index": {"backend": "usearch_i8"}})), 400, "invalid_hnsw_params", "cosine");
    assert_error(&server.post("/collections", &json!({"name": "bad", "dims": 4, "chunking": {"max_tokens": 10, "overlap_tokens": 0}})), 400, "invalid_chunking", "needs a model");
    let old = server.post("/collections", &json!({"name": "old", "dims": 3, "index": {"backend": "hnsw_rs"}}));
    assert_eq!(old.1["index"]["backend"], "hnsw_rs", "{}", old.1);

    // A vector in a model-bound collection of the same width: stored as given, not embedded.
    assert_eq!(server.post("/collections", &json!({"name": "kb"})).0, 201);
    let mut vector = vec![0.0f32; 384];
    vector[7] = 1.0;
    let mixed = server.post("/collections/kb/documents", &json!({"documents": [
        {"id": "brought", "vector": vector, "text": "a vector of my own"},
        {"id": "embedded", "text": "Paris is the capital of France."}
    ]}));
    assert_eq!(mixed.0, 200, "{}", mixed.1);
    assert_eq!(mixed.1["tokens"][0], 0);
    assert!(mixed.1["tokens"][1].as_u64().unwrap() > 0);
    assert_eq!(top_id(&server.post("/collections/kb/search", &json!({"vector": vector, "k": 1}))), "brought");
    assert_eq!(top_id(&server.post("/collections/kb/search", &json!({"query": "capital of France", "mode": "dense"}))), "embedded");
    assert_error(&server.post("/collections/kb/documents", &json!({"documents": [{"id": "w", "vector": [1.0, 2.0]}]})), 400, "invalid_vector", "384");

    // Everything survives a restart (dump at shutdown, usearch reload).
    drop(server);
    let server = Server::start(dir.path(), &[]);
    assert_eq!(top_id(&server.post("/collections/v/search", &json!({"vector": [0.1, 1.0, 0.0], "k": 3}))), "y");
    assert_eq!(server.get("/collections/old").1["index"]["backend"], "hnsw_rs");
}

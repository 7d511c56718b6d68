//! Issue 19: akidb's Qdrant-compatible listener, through the official client (qdrant-client
//! 1.20, installed in .venv by scripts/test) and raw HTTP.

mod common;

use std::process::Command;

use common::server::{free_port, Server};
use serde_json::{json, Value};

fn python() -> std::path::PathBuf {
    let python = common::repo().join(".venv/bin/python");
    assert!(python.is_file(), "{} is missing: scripts/test creates it with qdrant-client", python.display());
    python
}

fn qdrant_server(dir: &std::path::Path, extra: &[&str]) -> Server {
    let port = free_port().to_string();
    let mut args = vec!["--qdrant-port", port.as_str()];
    args.extend_from_slice(extra);
    Server::start(dir, &args)
}

fn run_script(script: &str, args: &[&str]) -> String {
    let output = Command::new(python()).arg(common::repo().join("tests/qdrant").join(script)).args(args).output().expect("run python");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{script} failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

#[test]
fn qdrant_client_agrees_with_its_own_local_mode_on_every_filter_kind() {
    let dir = tempfile::tempdir().unwrap();
    let server = qdrant_server(dir.path(), &[]);
    let out = run_script("differential.py", &[&format!("http://{}", server.qdrant.clone().unwrap())]);
    assert!(out.contains("differential: all agree"), "{out}");
}

#[test]
fn answers_validate_against_qdrants_published_schema() {
    let dir = tempfile::tempdir().unwrap();
    let server = qdrant_server(dir.path(), &[]);
    let spec = common::shared("reference/qdrant-1.19.0-openapi.json");
    assert!(spec.is_file(), "{} is missing", spec.display());
    let out = run_script("schema.py", &[&format!("http://{}", server.qdrant.clone().unwrap()), spec.to_str().unwrap()]);
    assert!(out.contains("every answer matches"), "{out}");
}

#[test]
fn one_store_behind_both_apis() {
    let dir = tempfile::tempdir().unwrap();
    let server = qdrant_server(dir.path(), &[]);
    // Made through akidb's API, seen through Qdrant's: ids, payload, text search by Document.
    assert_eq!(server.post("/collections", &json!({"name": "notes"})).0, 201);
    let (status, _) = server.post("/collections/notes/documents", &json!({"documents": [
        {"id": "7", "text": "Rust is a systems programming language.", "metadata": {"lang": "en"}},
        {"id": "not-a-qdrant-id", "text": "Bread is baked in an oven.", "metadata": {"lang": "en"}},
    ]}));
    assert_eq!(status, 200);
    let (status, info) = server.qdrant("GET", "/collections/notes", None, &[]);
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["status"], "ok");
    assert_eq!(info["result"]["points_count"], 2);
    assert_eq!(info["result"]["config"]["params"]["vectors"]["size"], 384);
    let (_, got) = server.qdrant("GET", "/collections/notes/points/7", None, &[]);
    assert_eq!(got["result"]["id"], 7);
    assert_eq!(got["result"]["payload"], json!({"lang": "en"}));
    assert_eq!(got["result"]["vector"].as_array().map(Vec::len), Some(384));
    let (_, found) = server.qdrant("POST", "/collections/notes/points/query", Some(&json!({
        "query": {"text": "programming languages", "model": "sentence-transformers/all-MiniLM-L6-v2"}, "limit": 1, "with_payload": true
    })), &[]);
    assert_eq!(found["result"]["points"][0]["id"], 7, "{found}");
    // Made through Qdrant's API, seen through akidb's.
    let (status, body) = server.qdrant("PUT", "/collections/vecs", Some(&json!({"vectors": {"size": 3, "distance": "Euclid"}})), &[]);
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.qdrant("PUT", "/collections/vecs/points?wait=true", Some(&json!({"points": [
        {"id": 1, "vector": [0, 0, 1], "payload": {"k": "a"}},
        {"id": "5c56c793-69f3-4fbf-87e6-c4bf54c28c26", "vector": [3, 0, 0], "payload": {"k": "b"}}
    ]})), &[]);
    assert_eq!(status, 200, "{body}");
    let (status, doc) = server.get("/collections/vecs/documents/5c56c793-69f3-4fbf-87e6-c4bf54c28c26");
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["metadata"], json!({"k": "b"}));
    let (_, hits) = server.post("/collections/vecs/search", &json!({"vector": [0, 0, 0.9], "k": 1}));
    assert_eq!(hits["results"][0]["id"], "1", "{hits}");
    // Euclid scores are distances, ascending.
    let (_, found) = server.qdrant("POST", "/collections/vecs/points/query", Some(&json!({"query": [0, 0, 0.9]})), &[]);
    let scores: Vec<f64> = found["result"]["points"].as_array().unwrap().iter().map(|p| p["score"].as_f64().unwrap()).collect();
    assert!((scores[0] - 0.1).abs() < 1e-5 && scores[1] > scores[0], "{found}");
    // Aliases are visible to both.
    let (status, _) = server.qdrant("POST", "/collections/aliases", Some(&json!({"actions": [{"create_alias": {"collection_name": "vecs", "alias_name": "current"}}]})), &[]);
    assert_eq!(status, 200);
    let (status, count) = server.qdrant("POST", "/collections/current/points/count", Some(&json!({})), &[]);
    assert_eq!((status, count["result"]["count"].clone()), (200, json!(2)));
}

#[test]
fn bad_input_gets_qdrant_shaped_errors_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = qdrant_server(dir.path(), &["--max-body-bytes", "100000"]);
    assert_eq!(server.qdrant("PUT", "/collections/c", Some(&json!({"vectors": {"size": 2, "distance": "Dot"}})), &[]).0, 200);
    let error = |r: &(u16, Value), status: u16, needle: &str| {
        assert_eq!(r.0, status, "{}", r.1);
        let message = r.1["status"]["error"].as_str().unwrap_or_else(|| panic!("not Qdrant's error shape: {}", r.1));
        assert!(message.contains(needle), "{message} lacks {needle}");
    };
    error(&server.qdrant("PUT", "/collections/c/points", Some(&json!({"points": [{"id": 1, "vector": [1, 2]}, {"id": -3, "vector": [1, 2]}]})), &[]), 400, "is not a valid point ID");
    error(&server.qdrant("PUT", "/collections/c/points", Some(&json!({"points": [{"id": 1, "vector": [1, 2]}, {"id": 2, "vector": [1, 2, 3]}]})), &[]), 400, "dimension");
    error(&server.qdrant("GET", "/collections/nope", None, &[]), 404, "Collection `nope` doesn't exist!");
    error(&server.qdrant("POST", "/collections/c/points/scroll", Some(&json!({"filter": {"must": [{"key": "a", "geo_radius": {}}]}})), &[]), 400, "geo_radius");
    error(&server.qdrant("POST", "/collections/c/points/scroll", Some(&json!({"filter": {"must": [{"key": "a", "match": {"value": [1]}}]}})), &[]), 400, "match values");
    error(&server.qdrant("PUT", "/collections/d", Some(&json!({"vectors": {"size": 2, "distance": "Manhattan"}})), &[]), 400, "Manhattan");
    // A payload may hold `text` and `model` keys of its own: only Documents name models.
    let (status, body) = server.qdrant("PUT", "/collections/c/points?wait=true", Some(&json!({"points": [{"id": 9, "vector": [1, 2], "payload": {"meta": {"text": "x", "model": "gpt-4"}}}]})), &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.qdrant("POST", "/collections/c/points/delete?wait=true", Some(&json!({"points": [9]})), &[]).0, 200);
    let big = json!({"points": [{"id": 1, "vector": [1, 2], "payload": {"x": "y".repeat(200_000)}}]});
    error(&server.qdrant("PUT", "/collections/c/points", Some(&big), &[]), 413, "");
    let (status, raw) = server.qdrant("PUT", "/collections/c/points", None, &[]);
    assert_eq!(status, 400, "{raw}");
    // Nothing of the refused batches was written.
    let (_, count) = server.qdrant("POST", "/collections/c/points/count", Some(&json!({"exact": true})), &[]);
    assert_eq!(count["result"]["count"], 0);
    // Root and probes.
    let (status, root) = server.qdrant("GET", "/", None, &[]);
    assert_eq!((status, root["version"].as_str().is_some()), (200, true));
    for probe in ["/healthz", "/livez", "/readyz"] {
        assert_eq!(server.qdrant("GET", probe, None, &[]).0, 200, "{probe}");
    }
}

#[test]
fn the_api_key_is_asked_for_in_qdrants_headers() {
    let dir = tempfile::tempdir().unwrap();
    let server = qdrant_server(dir.path(), &["--api-key", "s3cret"]);
    assert_eq!(server.qdrant("GET", "/collections", None, &[]).0, 401);
    assert_eq!(server.qdrant("GET", "/collections", None, &[("api-key", "wrong")]).0, 403);
    assert_eq!(server.qdrant("GET", "/collections", None, &[("api-key", "s3cret")]).0, 200);
    assert_eq!(server.qdrant("GET", "/collections", None, &[("Authorization", "Bearer s3cret")]).0, 200);
    assert_eq!(server.qdrant("GET", "/healthz", None, &[]).0, 200);
}

#[test]
fn a_qdrant_port_in_use_is_a_startup_error_naming_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_akidb"))
        .args(["serve", "--port", "0", "--qdrant-port", &port, "--log", "warn", "--data-dir"])
        .arg(dir.path())
        .current_dir(common::repo())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--qdrant-port"), "{stderr}");
}

#[test]
fn cloud_inference_documents_dense_bm25_and_hybrid() {
    let dir = tempfile::tempdir().unwrap();
    let server = qdrant_server(dir.path(), &[]);
    let out = run_script("inference.py", &[&format!("http://{}", server.qdrant.clone().unwrap())]);
    assert!(out.contains("inference: dense, bm25 and hybrid"), "{out}");
}

#[test]
fn langchain_and_llamaindex_stores_run_unmodified() {
    let dir = tempfile::tempdir().unwrap();
    let server = qdrant_server(dir.path(), &[]);
    let out = run_script("frameworks.py", &[&format!("http://{}", server.address), &format!("http://{}", server.qdrant.clone().unwrap())]);
    assert!(out.contains("langchain: add, search") && out.contains("llamaindex: add, filtered query"), "{out}");
}

fn akidb_cli(args: &[&str], cwd: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_akidb")).args(args).current_dir(cwd).env("AKIDB_LOG", "warn").env_remove("AKIDB_API_KEY").output().unwrap()
}

#[test]
fn export_and_import_copy_points_with_their_text_and_resume() {
    let (a_dir, b_dir, work) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (qdrant_server(a_dir.path(), &[]), qdrant_server(b_dir.path(), &["--api-key", "bkey"]));
    let (a_url, b_url) = (format!("http://{}", a.qdrant.clone().unwrap()), format!("http://{}", b.qdrant.clone().unwrap()));
    // Texts embedded by A, split into passages where long.
    assert_eq!(a.post("/collections", &json!({"name": "notes"})).0, 201);
    let long = "Tides follow the moon. ".repeat(200);
    let docs: Vec<Value> = (0..20).map(|i| json!({"id": i.to_string(), "text": if i == 0 { long.clone() } else { format!("Note {i} is about topic {}.", i % 3) }, "metadata": {"n": i}})).collect();
    assert_eq!(a.post("/collections/notes/documents", &json!({"documents": docs})).0, 200);
    let out = akidb_cli(&["export", "-c", "notes", "--from", &a_url, "--to", &b_url, "--api-key", "bkey", "--batch", "7"], work.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((summary["copied"].clone(), summary["points"].clone()), (json!(20), json!(20)));
    for i in [0, 5, 19] {
        let (status, got) = b.request("GET", &format!("/collections/notes/documents/{i}"), None, &[("Authorization", "Bearer bkey")]);
        let (_, want) = a.get(&format!("/collections/notes/documents/{i}"));
        assert_eq!(status, 200, "{got}");
        assert_eq!((got["text"].clone(), got["metadata"].clone()), (want["text"].clone(), want["metadata"].clone()), "document {i}");
    }
    let (_, va) = a.qdrant("GET", "/collections/notes/points/5", None, &[]);
    let (_, vb) = b.qdrant("GET", "/collections/notes/points/5", None, &[("api-key", "bkey")]);
    assert_eq!(va["result"]["vector"], vb["result"]["vector"]);
    // The copy is searchable by its text on B (lexical, from the text that travelled).
    let (_, hits) = b.request("POST", "/collections/notes/search", Some(json!({"query": "tides moon", "mode": "lexical", "k": 1}).to_string().as_bytes()), &[("Authorization", "Bearer bkey")]);
    assert_eq!(hits["results"][0]["id"], "0", "{hits}");

    // Import back under another name, interrupted and resumed: a vectors collection of 400 points
    // copied one point per request, killed once it has saved progress.
    assert_eq!(b.qdrant("PUT", "/collections/vecs", Some(&json!({"vectors": {"v": {"size": 4, "distance": "Dot"}}})), &[("api-key", "bkey")]).0, 200);
    let points: Vec<Value> = (0..400).map(|i| json!({"id": i, "vector": {"v": [i as f32, 1.0, 0.5, -1.0]}, "payload": {"i": i}})).collect();
    assert_eq!(b.qdrant("PUT", "/collections/vecs/points?wait=true", Some(&json!({"points": points})), &[("api-key", "bkey")]).0, 200);
    let state = work.path().join("import.json");
    let args = ["import", "-c", "vecs", "--from", &b_url, "--api-key", "bkey", "--to", &a_url, "--as", "copy", "--batch", "1", "--state", state.to_str().unwrap()];
    let mut child = Command::new(env!("CARGO_BIN_EXE_akidb")).args(args).current_dir(work.path()).env("AKIDB_LOG", "warn").stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !state.exists() {
        assert!(std::time::Instant::now() < deadline, "no progress saved");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let before = saved["copied"].as_u64().unwrap();
    assert!(before > 0 && before < 400, "{saved}");
    let out = akidb_cli(&args, work.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming"), "the second run started over");
    assert!(!state.exists(), "the state file is removed once the copy is verified");
    let (_, count) = a.qdrant("POST", "/collections/copy/points/count", Some(&json!({"exact": true})), &[]);
    assert_eq!(count["result"]["count"], 400);
    let (_, info) = a.qdrant("GET", "/collections/copy", None, &[]);
    assert_eq!(info["result"]["config"]["params"]["vectors"], json!({"v": {"size": 4, "distance": "Dot"}}));
    let (_, p) = a.qdrant("GET", "/collections/copy/points/399", None, &[]);
    assert_eq!((p["result"]["payload"].clone(), p["result"]["vector"].clone()), (json!({"i": 399}), json!({"v": [399.0, 1.0, 0.5, -1.0]})));
    // A wrong key on the target is a clear error.
    let out = akidb_cli(&["export", "-c", "notes", "--from", &a_url, "--to", &b_url, "--api-key", "nope", "--as", "x"], work.path());
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("403"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn aliases_in_both_apis_and_an_atomic_switch() {
    let dir = tempfile::tempdir().unwrap();
    let server = qdrant_server(dir.path(), &[]);
    for (name, v) in [("v1", [1.0, 0.0]), ("v2", [0.0, 1.0])] {
        assert_eq!(server.post("/collections", &json!({"name": name, "dims": 2})).0, 201);
        assert_eq!(server.post(&format!("/collections/{name}/documents"), &json!({"documents": [{"id": name, "vector": v}]})).0, 200);
    }
    let put = |alias: &str, collection: &str| server.request("PUT", &format!("/aliases/{alias}"), Some(json!({"collection": collection}).to_string().as_bytes()), &[]);
    assert_eq!(put("live", "v1").0, 200);
    let (_, hits) = server.post("/collections/live/search", &json!({"vector": [1.0, 0.0], "k": 1}));
    assert_eq!(hits["results"][0]["id"], "v1", "{hits}");
    // Qdrant's view of the same alias, then a switch made through Qdrant's API.
    let (_, listed) = server.qdrant("GET", "/aliases", None, &[]);
    assert_eq!(listed["result"]["aliases"], json!([{"alias_name": "live", "collection_name": "v1"}]));
    let switch = json!({"actions": [{"delete_alias": {"alias_name": "live"}}, {"create_alias": {"alias_name": "live", "collection_name": "v2"}}]});
    assert_eq!(server.qdrant("POST", "/collections/aliases", Some(&switch), &[]).0, 200);
    let (_, hits) = server.post("/collections/live/search", &json!({"vector": [1.0, 0.0], "k": 1}));
    assert_eq!(hits["results"][0]["id"], "v2", "{hits}");
    let (_, got) = server.get("/aliases");
    assert_eq!(got["aliases"], json!([{"alias": "live", "collection": "v2"}]));
    // Refusals: a collection's name, a missing collection, a bad name; nothing changes.
    assert_eq!(put("v1", "v2").0, 409);
    assert_eq!(put("other", "missing").0, 404);
    assert_eq!(put("bad name", "v2").0, 400);
    assert_eq!(server.post("/collections", &json!({"name": "live", "dims": 2})).0, 400, "a collection cannot take an alias's name");
    let bad = json!({"actions": [{"create_alias": {"alias_name": "x", "collection_name": "v1"}}, {"delete_alias": {"alias_name": "nope"}}]});
    assert_eq!(server.qdrant("POST", "/collections/aliases", Some(&bad), &[]).0, 404);
    let (_, got) = server.get("/aliases");
    assert_eq!(got["aliases"].as_array().map(Vec::len), Some(1), "a refused batch changes nothing: {got}");
    // Deleting through the alias is refused; deleting the collection takes its aliases.
    assert_eq!(server.delete("/collections/live").0, 404);
    assert_eq!(server.request("DELETE", "/aliases/nope", None, &[]).0, 404);
    assert_eq!(server.delete("/collections/v2").0, 200);
    let (_, got) = server.get("/aliases");
    assert_eq!(got["aliases"], json!([]));
}

#[test]
fn akidb_where_speaks_qdrant_conditions_too() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    assert_eq!(server.post("/collections", &json!({"name": "n", "dims": 2})).0, 201);
    let docs: Vec<Value> = (0..10)
        .map(|i| json!({"id": format!("d{i}"), "vector": [1.0, i as f32 / 10.0], "metadata": {"meta": {"lang": if i % 2 == 0 { "en" } else { "de" }}, "tags": if i < 3 { json!(["rust"]) } else { json!([]) }, "when": format!("2024-03-{:02}T00:00:00Z", i + 1)}}))
        .collect();
    assert_eq!(server.post("/collections/n/documents", &json!({"documents": docs})).0, 200);
    let en = json!({"must": [{"key": "meta.lang", "match": {"value": "en"}}], "must_not": [{"is_empty": {"key": "tags"}}]});
    let (status, hits) = server.post("/collections/n/search", &json!({"vector": [1.0, 0.0], "k": 10, "where": en}));
    assert_eq!(status, 200, "{hits}");
    let ids: Vec<&str> = hits["results"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["d0", "d2"], "en and tagged");
    let recent = json!({"must": [{"key": "when", "range": {"gte": "2024-03-08T00:00:00Z"}}]});
    let (_, count) = server.post("/collections/n/count", &json!({"where": recent}));
    assert_eq!(count["count"], 3, "{count}");
    let (_, page) = server.get(&format!("/collections/n/documents?where={}", urlencode(&json!({"must": [{"has_id": ["d4", "d5"]}]}).to_string())));
    assert_eq!(page["documents"].as_array().map(Vec::len), Some(2), "{page}");
    let (status, deleted) = server.post("/collections/n/documents/delete", &json!({"where": {"should": [{"key": "tags", "match": {"value": "rust"}}]}}));
    assert_eq!((status, deleted["deleted"].clone()), (200, json!(3)), "{deleted}");
    let (status, bad) = server.post("/collections/n/search", &json!({"vector": [1.0, 0.0], "where": {"must": [], "lang": "en"}}));
    assert_eq!(status, 400, "{bad}");
    // A filter that states no condition is refused for a delete, in either language.
    for everything in [json!({"must": []}), json!({"must": [{}]}), json!({"should": [], "must": [{"must": []}]})] {
        let (status, refused) = server.post("/collections/n/documents/delete", &json!({"where": everything}));
        assert_eq!(status, 400, "{everything}: {refused}");
    }
    let (_, left) = server.post("/collections/n/count", &json!({}));
    assert_eq!(left["count"], 7);
}

fn urlencode(text: &str) -> String {
    text.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

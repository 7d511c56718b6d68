//! Bundled models from outside: which ones a server loads, and that a damaged one is refused at
//! load by its self-test (the server never starts serving it) and by `akidb check-model`.

mod common;

use std::process::{Command, Stdio};

use common::server::Server;
use common::*;
use serde_json::json;

fn akidb(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_akidb")).args(args).current_dir(repo()).env_remove("AKIDB_API_KEY").stdin(Stdio::null()).output().expect("run akidb")
}

/// bge-small's manifest over a copy whose tokenizer no longer lowercases, hashes updated: the
/// files match the manifest, yet the model no longer computes the reference vectors.
fn damaged_bge() -> tempfile::TempDir {
    use sha2::Digest;
    let dir = copied_model("bge-small-en-v1.5");
    let mut tokenizer = read_json(&bundled_dir("bge-small-en-v1.5").tokenizer_path());
    tokenizer["normalizer"]["lowercase"] = json!(false);
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    let bytes = tokenizer.to_string();
    std::fs::write(dir.path().join("tokenizer.json"), &bytes).unwrap();
    let mut manifest = read_json(&dir.path().join("manifest.json"));
    let hex: String = sha2::Sha256::digest(bytes.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    manifest["files"][1]["sha256"] = json!(hex);
    std::fs::write(dir.path().join("manifest.json"), manifest.to_string()).unwrap();
    dir
}

#[test]
fn a_damaged_model_is_refused_by_the_server_and_by_check_model() {
    let model = damaged_bge();
    let model_dir = model.path().to_str().unwrap();
    let data = tempfile::tempdir().unwrap();
    let out = akidb(&["serve", "--port", "0", "--qdrant-port", "0", "--device", "cpu", "--model", model_dir, "--data-dir", data.path().to_str().unwrap()]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "the server started with a damaged model: {stdout} {stderr}");
    assert!(!stdout.contains("listening"), "it never claims to serve: {stdout}");
    for needle in ["bge-small-en-v1.5", "self-test", "probe", "cosine distance"] {
        assert!(stderr.contains(needle), "the error names {needle}: {stderr}");
    }
    let out = akidb(&["check-model", "--device", "cpu", "--model", model_dir]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("self-test") && stderr.contains("cosine distance"), "check-model: {stderr}");
    // The intact model passes the same check.
    let out = akidb(&["check-model", "--device", "cpu", "--model", "bge-small-en-v1.5"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("self-test\tpassed"), "check-model on the bundled model: {stdout} {}", String::from_utf8_lossy(&out.stderr));
}

/// `/v1/models` lists what is loaded with its self-test; a collection keeps the model it was
/// built with across a restart that names another model, and the server loads it for it.
#[test]
fn collections_keep_their_model_and_the_server_loads_it() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--model", "minilm-l6-v2"]);
    assert_eq!(server.post("/collections", &json!({"name": "old"})).0, 201);
    let docs = json!({"documents": [{"id": "a", "text": "Tokio spawns tasks on a thread pool."}, {"id": "b", "text": "Bread rises with yeast."}]});
    assert_eq!(server.post("/collections/old/documents", &docs).0, 200);
    server.stop();

    let server = Server::start(data.path(), &["--model", "bge-small-en-v1.5"]);
    let (status, models) = server.get("/v1/models");
    assert_eq!(status, 200);
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["bge-small-en-v1.5", "minilm-l6-v2"], "the flag's model first (the default), then what collections need");
    for model in models["data"].as_array().unwrap() {
        assert!(model["self_test"]["probes"].as_u64().unwrap() >= 3, "{model}");
        assert!(model["self_test"]["worst_cosine_distance"].as_f64().unwrap() < 1e-4, "{model}");
    }
    assert_eq!(models["data"][0]["aliases"], json!(["BAAI/bge-small-en-v1.5"]));
    let (status, info) = server.get("/collections/old");
    assert_eq!(status, 200);
    assert_eq!(info["model"], "minilm-l6-v2");
    let (status, hits) = server.post("/collections/old/search", &json!({"query": "spawning async tasks", "k": 1}));
    assert_eq!(status, 200, "{hits}");
    assert_eq!(hits["results"][0]["id"], "a");
    // A new collection takes the server's default, or a model by its hub id.
    assert_eq!(server.post("/collections", &json!({"name": "new"})).0, 201);
    assert_eq!(server.get("/collections/new").1["model"], "bge-small-en-v1.5");
    assert_eq!(server.post("/collections", &json!({"name": "hub", "model": "BAAI/bge-small-en-v1.5"})).0, 201);
    assert_eq!(server.get("/collections/hub").1["model"], "bge-small-en-v1.5");

    // Hybrid fusion a request leaves out is the model's tuned one (bge: RRF k 30, dense 3 :
    // lexical 1); MiniLM, with none in its manifest, keeps k 60 and 1 : 1.
    assert_eq!(server.post("/collections/new/documents", &docs).0, 200);
    let scores = |collection: &str, extra: serde_json::Value| -> Vec<f64> {
        let mut body = json!({"query": "tokio tasks", "k": 2, "mode": "hybrid", "include": []});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let (status, hits) = server.post(&format!("/collections/{collection}/search"), &body);
        assert_eq!(status, 200, "{hits}");
        hits["results"].as_array().unwrap().iter().map(|h| h["score"].as_f64().unwrap()).collect()
    };
    let tuned = json!({"rrf_k": 30, "weights": {"dense": 3, "lexical": 1}});
    let plain = json!({"rrf_k": 60, "weights": {"dense": 1, "lexical": 1}});
    assert_eq!(scores("new", json!({})), scores("new", tuned.clone()));
    assert!((scores("new", json!({}))[0] - (3.0 / 31.0 + 1.0 / 31.0)).abs() < 1e-6, "first on both sides");
    assert_eq!(scores("old", json!({})), scores("old", plain));
    assert_ne!(scores("old", json!({})), scores("old", tuned));
    server.stop();

    // `--model none` asks for no model at all: nothing is loaded for the old collections, which
    // say so (409), while lexical search, which needs no model, still answers.
    let server = Server::start(data.path(), &["--model", "none"]);
    assert_eq!(server.get("/v1/models").1["data"], json!([]));
    let (status, body) = server.post("/collections/old/search", &json!({"query": "tasks", "mode": "dense"}));
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("model_not_loaded")), "{body}");
    assert_eq!(server.post("/collections/old/search", &json!({"query": "tasks", "mode": "lexical"})).0, 200);
}

/// Two models answering to one name (a copy of bge-small under its own name, or an alias)
/// would make that name ambiguous: the server refuses to start, naming both and the name.
#[test]
fn two_models_answering_to_one_name_are_refused_at_startup() {
    let copy = copied_model("bge-small-en-v1.5");
    let data = tempfile::tempdir().unwrap();
    let out = akidb(&["serve", "--port", "0", "--qdrant-port", "0", "--device", "cpu", "--model", "bge-small-en-v1.5", "--model", copy.path().to_str().unwrap(), "--data-dir", data.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with an ambiguous model name: {stderr}");
    assert!(stderr.contains("both answer to 'bge-small-en-v1.5'"), "{stderr}");
}

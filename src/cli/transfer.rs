//! `akidb export` and `akidb import`: a collection's points (vectors, payload and, between akidb
//! servers, text) copied in batches between two servers speaking Qdrant's API — this akidb's
//! listener and a Qdrant cluster or another akidb. Resumable from a state file; counts verified
//! at the end.
//!
//! Qdrant keeps no text apart from the payload, so toward a Qdrant server a point's text travels
//! in its payload under `--text-key`; toward and from an akidb listener (recognised by `GET /`)
//! the `akidb_text_key` body field moves it in and out of the document's text.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};

use super::CliError;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The collection to copy.
    #[arg(long, short = 'c', env = "AKIDB_COLLECTION")]
    pub collection: String,
    /// The server to copy to, speaking Qdrant's API (a Qdrant cluster, another akidb's listener).
    #[arg(long, env = "AKIDB_EXPORT_TO")]
    pub to: String,
    /// The target's API key (sent as Qdrant's `api-key` header).
    #[arg(long, env = "AKIDB_EXPORT_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// This akidb's Qdrant-compatible listener.
    #[arg(long, env = "AKIDB_QDRANT_URL", default_value = "http://127.0.0.1:6333")]
    pub from: String,
    /// This akidb's API key.
    #[arg(long, env = "AKIDB_API_KEY", hide_env_values = true)]
    pub from_api_key: Option<String>,
    #[command(flatten)]
    pub options: TransferOptions,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The collection to copy.
    #[arg(long, short = 'c', env = "AKIDB_COLLECTION")]
    pub collection: String,
    /// The server to copy from, speaking Qdrant's API.
    #[arg(long, env = "AKIDB_IMPORT_FROM")]
    pub from: String,
    /// The source's API key (sent as Qdrant's `api-key` header).
    #[arg(long, env = "AKIDB_IMPORT_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// This akidb's Qdrant-compatible listener.
    #[arg(long, env = "AKIDB_QDRANT_URL", default_value = "http://127.0.0.1:6333")]
    pub to: String,
    /// This akidb's API key.
    #[arg(long, env = "AKIDB_API_KEY", hide_env_values = true)]
    pub to_api_key: Option<String>,
    #[command(flatten)]
    pub options: TransferOptions,
}

#[derive(Debug, Args)]
pub struct TransferOptions {
    /// The collection's name on the target (default: the same name).
    #[arg(long = "as")]
    pub target_name: Option<String>,
    /// Points per request.
    #[arg(long, env = "AKIDB_TRANSFER_BATCH", default_value_t = 256)]
    pub batch: usize,
    /// Where progress is kept for a resumed run (default: `.akidb-transfer-<collection>.json` in
    /// the working directory); removed once the copy is verified.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// The payload key a point's text travels under toward a Qdrant server.
    #[arg(long, default_value = "text")]
    pub text_key: String,
    /// Seconds to wait for one answer.
    #[arg(long, env = "AKIDB_CLIENT_TIMEOUT_SECS", default_value_t = 600)]
    pub timeout_secs: u64,
}

pub fn run_export(args: &ExportArgs) -> Result<(), CliError> {
    let source = Peer::new(&args.from, args.from_api_key.clone(), args.options.timeout_secs)?;
    let target = Peer::new(&args.to, args.api_key.clone(), args.options.timeout_secs)?;
    transfer(&source, &target, &args.collection, &args.options)
}

pub fn run_import(args: &ImportArgs) -> Result<(), CliError> {
    let source = Peer::new(&args.from, args.api_key.clone(), args.options.timeout_secs)?;
    let target = Peer::new(&args.to, args.to_api_key.clone(), args.options.timeout_secs)?;
    transfer(&source, &target, &args.collection, &args.options)
}

/// A server speaking Qdrant's REST API.
struct Peer {
    base: String,
    api_key: Option<String>,
    agent: ureq::Agent,
    /// An akidb listener (it keeps texts apart from payloads).
    akidb: bool,
}

impl Peer {
    fn new(url: &str, api_key: Option<String>, timeout_secs: u64) -> Result<Self, CliError> {
        let agent = ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(timeout_secs.max(1)))).build().into();
        let mut peer = Peer { base: url.trim_end_matches('/').to_owned(), api_key, agent, akidb: false };
        let root = peer.call("GET", "/", None)?;
        peer.akidb = root["title"].as_str().is_some_and(|t| t.contains("akidb"));
        Ok(peer)
    }

    /// One request; `result` of Qdrant's envelope. Overload and timeouts are retried.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, CliError> {
        let url = format!("{}{path}", self.base);
        let mut wait = Duration::from_millis(250);
        for attempt in 0.. {
            let mut request = ureq::http::Request::builder().method(method).uri(&url).header("Content-Type", "application/json");
            if let Some(key) = &self.api_key {
                request = request.header("api-key", key);
            }
            let body = body.map_or_else(String::new, Value::to_string);
            let request = request.body(body).map_err(|e| CliError::Transfer(format!("{url}: {e}")))?;
            let answer = self.agent.run(request);
            let retry = |message: String| -> Result<(), CliError> {
                if attempt >= 5 {
                    return Err(CliError::Transfer(message));
                }
                Ok(())
            };
            match answer {
                Err(e) => retry(format!("cannot reach {}: {e}", self.base))?,
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    let value: Value = response.body_mut().with_config().limit(1 << 30).read_json().unwrap_or(Value::Null);
                    if (200..300).contains(&status) {
                        return Ok(value.get("result").cloned().unwrap_or(value));
                    }
                    let message = format!("{method} {url}: {status}: {}", value["status"]["error"].as_str().map_or_else(|| value.to_string(), str::to_owned));
                    if !matches!(status, 408 | 429 | 502 | 503 | 504) {
                        return Err(CliError::Transfer(message));
                    }
                    retry(message)?;
                }
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_secs(8));
        }
        unreachable!("the loop returns or fails by its fifth retry")
    }

    fn count(&self, collection: &str) -> Result<u64, CliError> {
        let answer = self.call("POST", &format!("/collections/{}/points/count", super::client::segment(collection)), Some(&json!({"exact": true})))?;
        answer["count"].as_u64().ok_or_else(|| CliError::Transfer(format!("{}: a count without a number: {answer}", self.base)))
    }
}

/// Progress of one copy, saved after every batch.
#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq)]
struct State {
    source: String,
    collection: String,
    target: String,
    target_collection: String,
    /// The next page's first point id; `None` before the first page.
    offset: Option<Value>,
    copied: u64,
}

fn transfer(source: &Peer, target: &Peer, collection: &str, options: &TransferOptions) -> Result<(), CliError> {
    if options.batch == 0 {
        return Err(CliError::Transfer("--batch must be at least 1".into()));
    }
    let target_name = options.target_name.clone().unwrap_or_else(|| collection.to_owned());
    let (src, dst) = (format!("/collections/{}", super::client::segment(collection)), format!("/collections/{}", super::client::segment(&target_name)));
    let info = source.call("GET", &src, None)?;
    let params = &info["config"]["params"];
    ensure_target(target, &dst, &target_name, params)?;

    let state_path = options.state.clone().unwrap_or_else(|| PathBuf::from(format!(".akidb-transfer-{}.json", super::client::segment(collection))));
    let fresh = State { source: source.base.clone(), collection: collection.to_owned(), target: target.base.clone(), target_collection: target_name.clone(), offset: None, copied: 0 };
    let mut state = match std::fs::read(&state_path) {
        Ok(bytes) => {
            let saved: State = serde_json::from_slice(&bytes).map_err(|e| CliError::Transfer(format!("{}: not a transfer state file: {e}", state_path.display())))?;
            if (&saved.source, &saved.collection, &saved.target, &saved.target_collection) != (&fresh.source, &fresh.collection, &fresh.target, &fresh.target_collection) {
                return Err(CliError::Transfer(format!("{} belongs to another copy ({} {} → {} {}); give --state", state_path.display(), saved.source, saved.collection, saved.target, saved.target_collection)));
            }
            eprintln!("resuming: {} points already copied", saved.copied);
            saved
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fresh,
        Err(e) => return Err(e.into()),
    };

    let total = source.count(collection)?;
    let bar = indicatif::ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr());
    bar.set_position(state.copied.min(total));
    loop {
        let mut scroll = json!({"limit": options.batch, "with_payload": true, "with_vector": true});
        if let Some(offset) = &state.offset {
            scroll["offset"] = offset.clone();
        }
        if source.akidb {
            scroll["akidb_text_key"] = json!(options.text_key);
        }
        let page = source.call("POST", &format!("{src}/points/scroll"), Some(&scroll))?;
        let points: Vec<Value> = page["points"]
            .as_array()
            .ok_or_else(|| CliError::Transfer(format!("{}: a scroll page without points", source.base)))?
            .iter()
            .map(|p| json!({"id": p["id"], "vector": vectors_for(target, &p["vector"]), "payload": p.get("payload").cloned().unwrap_or_else(|| json!({}))}))
            .collect();
        if !points.is_empty() {
            let mut upsert = json!({"points": points});
            // Only a text akidb itself put in the payload goes back into a document's text.
            if target.akidb && source.akidb {
                upsert["akidb_text_key"] = json!(options.text_key);
            }
            target.call("PUT", &format!("{dst}/points?wait=true"), Some(&upsert))?;
        }
        state.copied += points.len() as u64;
        state.offset = page.get("next_page_offset").filter(|o| !o.is_null()).cloned();
        bar.set_position(state.copied.min(total));
        if state.offset.is_none() {
            break;
        }
        save(&state_path, &state)?;
    }
    bar.finish_and_clear();
    let (from, to) = (source.count(collection)?, target.count(&target_name)?);
    if from != to {
        save(&state_path, &state)?;
        return Err(CliError::Transfer(format!(
            "counts differ after the copy: {from} points in {} at {}, {to} in {} at {} (points written meanwhile, or the target held others)",
            collection, source.base, target_name, target.base
        )));
    }
    match std::fs::remove_file(&state_path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    super::emit(&format!("{}\n", json!({"collection": collection, "target": target_name, "copied": state.copied, "points": to})));
    Ok(())
}

/// A point's vectors as the target takes them: akidb answers sparse vectors with BM25 over the
/// text, so a Qdrant source's sparse vectors are left out toward akidb.
fn vectors_for(target: &Peer, vector: &Value) -> Value {
    match vector {
        Value::Object(named) if target.akidb => Value::Object(named.iter().filter(|(_, v)| v.get("indices").is_none()).map(|(k, v)| (k.clone(), v.clone())).collect()),
        other => other.clone(),
    }
}

/// Creates the target collection like the source's (its vectors and sparse names), or checks
/// that an existing one can take its points.
fn ensure_target(target: &Peer, dst: &str, name: &str, params: &Value) -> Result<(), CliError> {
    let exists = target.call("GET", &format!("{dst}/exists"), None)?["exists"].as_bool().unwrap_or(false);
    let shape = |vectors: &Value| -> Vec<(String, Value, Value)> {
        match vectors.get("size") {
            Some(size) => vec![(String::new(), size.clone(), vectors["distance"].clone())],
            None => vectors.as_object().into_iter().flatten().map(|(n, p)| (n.clone(), p["size"].clone(), p["distance"].clone())).collect(),
        }
    };
    if exists {
        let theirs = target.call("GET", dst, None)?;
        let (want, have) = (shape(&params["vectors"]), shape(&theirs["config"]["params"]["vectors"]));
        if want != have {
            return Err(CliError::Transfer(format!("{name} exists on the target with other vectors ({have:?}, need {want:?}); give --as another name")));
        }
        return Ok(());
    }
    let mut create = json!({"vectors": params["vectors"]});
    if let Some(sparse) = params.get("sparse_vectors").filter(|s| s.is_object()) {
        create["sparse_vectors"] = sparse.clone();
    }
    target.call("PUT", dst, Some(&create))?;
    Ok(())
}

/// Atomic write: temp file, fsync, rename.
fn save(path: &Path, state: &State) -> Result<(), CliError> {
    let temp = path.with_extension("json.tmp");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(&serde_json::to_vec(state)?)?;
        file.sync_all()?;
    }
    std::fs::rename(&temp, path)?;
    Ok(())
}

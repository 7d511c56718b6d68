//! Collections, aliases and payload indexes on the Qdrant listener.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::reply::{Body, QdrantError, Started};
use super::request::bad;
use super::{loaded, Ctx};
use crate::api::AppState;
use crate::domain::{IndexBackend, Metric};
use crate::embed::EmbeddingProvider;
use crate::engine::Collection;
use crate::service::points::View;
use crate::service::aliases::AliasChange;
use crate::service::{ChunkingChoice, NewCollection, Service};

pub async fn list(State(state): State<Arc<AppState>>, started: Started) -> Result<Response, QdrantError> {
    let service = loaded(&state)?;
    let names: Vec<Value> = service.collections().iter().map(|c| json!({"name": &*c.name()})).collect();
    Ok(started.ok(json!({"collections": names})))
}

pub async fn exists(State(state): State<Arc<AppState>>, Path(name): Path<String>, started: Started) -> Result<Response, QdrantError> {
    let service = loaded(&state)?;
    Ok(started.ok(json!({"exists": service.collection(&name).is_ok()})))
}

fn distance_of(metric: Metric) -> &'static str {
    match metric {
        Metric::Cosine => "Cosine",
        Metric::Dot => "Dot",
        Metric::L2 => "Euclid",
    }
}

pub async fn get(State(state): State<Arc<AppState>>, Path(name): Path<String>, started: Started) -> Result<Response, QdrantError> {
    let ctx = Ctx::open(&state, &name)?;
    Ok(started.ok(info(&ctx.collection, &ctx.view)))
}

/// Qdrant's `CollectionInfo` for an akidb collection.
fn info(collection: &Collection, view: &View) -> Value {
    let config = &collection.config;
    let stats = collection.stats();
    let params = json!({"size": config.dims, "distance": distance_of(config.metric)});
    let vectors = match &view.vector {
        None => params,
        Some(name) => json!({ name: params }),
    };
    let sparse: serde_json::Map<String, Value> = view.sparse.iter().map(|s| (s.clone(), json!({"modifier": "idf"}))).collect();
    let quantization = match collection.backend() {
        IndexBackend::UsearchI8 => json!({"scalar": {"type": "int8", "always_ram": true}}),
        _ => Value::Null,
    };
    json!({
        "status": "green",
        "optimizer_status": "ok",
        "indexed_vectors_count": stats.passages,
        "points_count": stats.documents,
        "segments_count": 1,
        "config": {
            "params": {
                "vectors": vectors,
                "shard_number": 1,
                "replication_factor": 1,
                "write_consistency_factor": 1,
                "on_disk_payload": true,
                "sparse_vectors": if sparse.is_empty() { Value::Null } else { Value::Object(sparse) },
            },
            "hnsw_config": {"m": config.hnsw.m, "ef_construct": config.hnsw.ef_construction, "full_scan_threshold": 10000, "on_disk": false},
            "optimizer_config": {"deleted_threshold": 0.2, "vacuum_min_vector_number": 1000, "default_segment_number": 1, "flush_interval_sec": 5},
            "wal_config": {"wal_capacity_mb": 32, "wal_segments_ahead": 0},
            "quantization_config": quantization,
        },
        "payload_schema": {},
    })
}

pub async fn create(State(state): State<Arc<AppState>>, Path(name): Path<String>, started: Started, Body(body): Body) -> Result<Response, QdrantError> {
    let service = loaded(&state)?;
    if service.collection(&name).is_ok() {
        return Err(QdrantError { status: StatusCode::CONFLICT, message: format!("Wrong input: Collection `{name}` already exists!") });
    }
    let request = new_collection(service, &name, &body)?;
    service.create_collection(request).await?;
    Ok(started.ok(json!(true)))
}

/// A Qdrant `CreateCollection` as akidb's: one dense vector (unnamed or named), sparse vectors
/// answered by BM25, the metric, the graph's links, i8 quantization where the backend has it.
fn new_collection(service: &Service, name: &str, body: &Value) -> Result<NewCollection, QdrantError> {
    let mut view = View::default();
    let params = match body.get("vectors") {
        Some(Value::Object(v)) if v.contains_key("size") => v.clone(),
        Some(Value::Object(named)) if named.len() == 1 => {
            let (vector_name, params) = named.iter().next().ok_or_else(|| bad("vectors is empty"))?;
            view.vector = Some(vector_name.clone());
            params.as_object().cloned().ok_or_else(|| bad(format!("vectors.{vector_name} must be an object with size and distance")))?
        }
        Some(Value::Object(named)) if named.len() > 1 => {
            return Err(QdrantError::unsupported("several named dense vectors in one collection"));
        }
        _ => return Err(bad("vectors must give size and distance (one unnamed vector, or one named vector)")),
    };
    let size = params.get("size").and_then(Value::as_u64).filter(|&s| s > 0).ok_or_else(|| bad("vectors.size must be a positive integer"))? as usize;
    let metric = match params.get("distance").and_then(Value::as_str) {
        Some("Cosine") => Metric::Cosine,
        Some("Dot") => Metric::Dot,
        Some("Euclid") => Metric::L2,
        Some("Manhattan") => return Err(QdrantError::unsupported("the Manhattan distance")),
        other => return Err(bad(format!("vectors.distance must be Cosine, Dot or Euclid, got {other:?}"))),
    };
    if params.get("multivector_config").is_some_and(|v| !v.is_null()) {
        return Err(QdrantError::unsupported("multivectors"));
    }
    if let Some(Value::Object(sparse)) = body.get("sparse_vectors") {
        view.sparse = sparse.keys().cloned().collect();
    }
    let hnsw = params.get("hnsw_config").filter(|v| !v.is_null()).or(body.get("hnsw_config"));
    let field = |key: &str| hnsw.and_then(|h| h.get(key)).and_then(Value::as_u64).map(|n| n as usize);
    let quantization = params.get("quantization_config").filter(|v| !v.is_null()).or(body.get("quantization_config"));
    let int8 = quantization.and_then(|q| q.get("scalar")).and_then(|s| s.get("type")).and_then(Value::as_str) == Some("int8");
    let backend = (int8 && metric == Metric::Cosine).then_some(IndexBackend::UsearchI8);
    // A width a loaded model makes: the collection is bound to it, so Documents are embedded
    // server-side (vectors brought by the client are stored as given either way).
    let model = service.models.iter().find(|m| m.info().dims == size).map(|m| m.info().name.clone());
    let request = NewCollection {
        name: name.to_owned(),
        chunking: if model.is_some() { ChunkingChoice::Default } else { ChunkingChoice::Off },
        model,
        dims: Some(size),
        backend,
        metric: Some(metric),
        m: field("m").filter(|&m| m > 0),
        ef_construction: field("ef_construct").filter(|&e| e > 0),
        ef_search: None,
        annex: (view != View::default()).then(|| serde_json::to_vec(&view)).transpose().map_err(|e| bad(e.to_string()))?,
    };
    Ok(request)
}

pub async fn update(State(state): State<Arc<AppState>>, Path(name): Path<String>, started: Started, Body(_): Body) -> Result<Response, QdrantError> {
    // Optimizer and storage settings have no counterpart here: accepted, as Qdrant would.
    Ctx::open(&state, &name)?;
    Ok(started.ok(json!(true)))
}

pub async fn delete(State(state): State<Arc<AppState>>, Path(name): Path<String>, started: Started) -> Result<Response, QdrantError> {
    let service = loaded(&state)?;
    // By its own name only: an alias names a collection for reads and writes, not for drops.
    if service.engine.collection(&name).is_err() {
        return Ok(started.ok(json!(false)));
    }
    service.drop_collection(&name).await?;
    Ok(started.ok(json!(true)))
}

/// `PUT /collections/{c}/index`: akidb indexes every field already.
pub async fn create_index(State(state): State<Arc<AppState>>, Path(name): Path<String>, started: Started, Body(_): Body) -> Result<Response, QdrantError> {
    Ctx::open(&state, &name)?;
    Ok(started.ok(json!({"operation_id": 0, "status": "completed"})))
}

pub async fn delete_index(State(state): State<Arc<AppState>>, Path((name, _field)): Path<(String, String)>, started: Started) -> Result<Response, QdrantError> {
    Ctx::open(&state, &name)?;
    Ok(started.ok(json!({"operation_id": 0, "status": "completed"})))
}

pub async fn list_aliases(State(state): State<Arc<AppState>>, started: Started) -> Result<Response, QdrantError> {
    let service = loaded(&state)?;
    Ok(started.ok(json!({"aliases": aliases_of(service, None)?})))
}

pub async fn collection_aliases(State(state): State<Arc<AppState>>, Path(name): Path<String>, started: Started) -> Result<Response, QdrantError> {
    let ctx = Ctx::open(&state, &name)?;
    Ok(started.ok(json!({"aliases": aliases_of(ctx.service, Some(&ctx.collection.name()))?})))
}

fn aliases_of(service: &Service, collection: Option<&str>) -> Result<Vec<Value>, QdrantError> {
    let all = service.aliases()?;
    Ok(all.into_iter().filter(|(_, target)| collection.is_none_or(|c| c == target)).map(|(alias, target)| json!({"alias_name": alias, "collection_name": target})).collect())
}

/// `POST /collections/aliases`: create, delete and rename, applied together.
pub async fn change_aliases(State(state): State<Arc<AppState>>, started: Started, Body(body): Body) -> Result<Response, QdrantError> {
    let service = loaded(&state)?;
    let actions = body.get("actions").and_then(Value::as_array).ok_or_else(|| bad("actions must be an array"))?;
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned).ok_or_else(|| bad(format!("{k} must be a string")));
    let mut changes = Vec::with_capacity(actions.len());
    for action in actions {
        changes.push(if let Some(create) = action.get("create_alias") {
            AliasChange::Create { alias: text(create, "alias_name")?, collection: text(create, "collection_name")? }
        } else if let Some(delete) = action.get("delete_alias") {
            AliasChange::Delete { alias: text(delete, "alias_name")? }
        } else if let Some(rename) = action.get("rename_alias") {
            AliasChange::Rename { from: text(rename, "old_alias_name")?, to: text(rename, "new_alias_name")? }
        } else {
            return Err(bad("each action is create_alias, delete_alias or rename_alias"));
        });
    }
    service.change_aliases(changes).await?;
    Ok(started.ok(json!(true)))
}

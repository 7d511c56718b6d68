//! Collection snapshots on the Qdrant listener, in akidb's own file format (a Qdrant snapshot
//! cannot be restored here, nor an akidb one in Qdrant: `akidb export` moves collections across).
//! As in Qdrant, an upload or a recover replaces the collection of that name.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::response::Response;
use serde_json::{json, Value};

use super::reply::{Body, QdrantError, Started};
use super::loaded;
use crate::api::snapshot_io;
use crate::api::AppState;
use crate::service::snapshots::{iso_time, SnapshotInfo};

fn description(info: SnapshotInfo) -> Value {
    // Qdrant's creation_time has no zone; its checksum is a SHA-256 that akidb's files do not carry.
    let time = iso_time(info.created_at_ms).0;
    json!({"name": info.name, "creation_time": time.trim_end_matches('Z'), "size": info.size, "checksum": null})
}

pub async fn create(State(state): State<Arc<AppState>>, Path(name): Path<String>, started: Started) -> Result<Response, QdrantError> {
    let info = loaded(&state)?.create_snapshot(&name).await.map_err(QdrantError::from)?;
    Ok(started.ok(description(info)))
}

pub async fn list(State(state): State<Arc<AppState>>, Path(name): Path<String>, started: Started) -> Result<Response, QdrantError> {
    let all = loaded(&state)?.list_snapshots(&name).await.map_err(QdrantError::from)?;
    Ok(started.ok(Value::Array(all.into_iter().map(description).collect())))
}

pub async fn download(State(state): State<Arc<AppState>>, Path((name, snapshot)): Path<(String, String)>) -> Result<Response, QdrantError> {
    let path = loaded(&state)?.snapshot_file(&name, &snapshot).map_err(QdrantError::from)?;
    Ok(snapshot_io::download(&path)?)
}

pub async fn delete(State(state): State<Arc<AppState>>, Path((name, snapshot)): Path<(String, String)>, started: Started) -> Result<Response, QdrantError> {
    loaded(&state)?.delete_snapshot(&name, &snapshot).await.map_err(QdrantError::from)?;
    Ok(started.ok(json!(true)))
}

#[derive(serde::Deserialize)]
pub struct UploadParams {
    /// SHA-256 of the file, hex: checked before restoring.
    checksum: Option<String>,
}

pub async fn upload(State(state): State<Arc<AppState>>, Path(name): Path<String>, Query(params): Query<UploadParams>, started: Started, request: Request) -> Result<Response, QdrantError> {
    let service = loaded(&state)?;
    crate::engine::validate_collection_name(&name).map_err(|e| QdrantError::bad_request(e.to_string()))?;
    let upload = snapshot_io::Upload::new(service.upload_path());
    snapshot_io::receive(request, upload.path(), state.limits.max_snapshot_bytes).await?;
    if let Some(expected) = params.checksum {
        check_sha256(upload.path(), &expected).await?;
    }
    service.restore_snapshot(upload.path().to_owned(), Some(name), true).await.map_err(QdrantError::from)?;
    Ok(started.ok(json!(true)))
}

async fn check_sha256(path: &std::path::Path, expected: &str) -> Result<(), QdrantError> {
    use sha2::Digest;
    let path = path.to_owned();
    let actual = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let mut hasher = sha2::Sha256::new();
        std::io::copy(&mut std::io::BufReader::new(std::fs::File::open(path)?), &mut hasher)?;
        Ok(format!("{:x}", hasher.finalize()))
    })
    .await
    .map_err(|e| QdrantError::from(crate::api::error::ApiError::from(e)))?
    .map_err(|e| QdrantError::from(crate::api::error::ApiError::internal(e.to_string())))?;
    if !actual.eq_ignore_ascii_case(expected) {
        return Err(QdrantError::bad_request(format!("Snapshot checksum mismatch: expected {expected}, got {actual}")));
    }
    Ok(())
}

/// `{"location": "file:///…"}`: a snapshot this server keeps (under its data directory's
/// `snapshots/`). akidb fetches nothing over the network: upload the file instead.
pub async fn recover(State(state): State<Arc<AppState>>, Path(name): Path<String>, started: Started, Body(body): Body) -> Result<Response, QdrantError> {
    let service = loaded(&state)?;
    let location = body.get("location").and_then(Value::as_str).ok_or_else(|| QdrantError::bad_request("location: a file:// URL of a snapshot is required"))?;
    let Some(file) = location.strip_prefix("file://") else {
        return Err(QdrantError::bad_request("akidb recovers only from file:// locations under its snapshots directory; upload the file to /collections/{name}/snapshots/upload instead"));
    };
    let root = service.engine.snapshot_root();
    let inside = std::fs::canonicalize(file).ok().zip(std::fs::canonicalize(&root).ok()).is_some_and(|(file, root)| file.starts_with(root) && file.is_file());
    if !inside {
        return Err(QdrantError::bad_request(format!("{location} is not a snapshot under this server's snapshots directory ({})", root.display())));
    }
    crate::engine::validate_collection_name(&name).map_err(|e| QdrantError::bad_request(e.to_string()))?;
    service.restore_snapshot(file.into(), Some(name), true).await.map_err(QdrantError::from)?;
    Ok(started.ok(json!(true)))
}

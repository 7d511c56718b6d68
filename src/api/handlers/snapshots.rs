//! Snapshots of a collection: make, list, download, delete, and restore from an upload.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Json};

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::ApiQuery;
use crate::api::middleware::WriteGate;
use crate::api::snapshot_io;
use crate::api::state::AppState;
use crate::api::types::{RestoreParams, RestoreResponse, SnapshotDeleted, SnapshotDescription, SnapshotList};
use crate::service::snapshots::{iso_time, Restored, SnapshotInfo};

pub fn description(info: SnapshotInfo) -> SnapshotDescription {
    SnapshotDescription {
        created_at: iso_time(info.created_at_ms).0,
        name: info.name,
        size: info.size,
        created_at_ms: info.created_at_ms,
        documents: info.documents,
        passages: info.passages,
        checksum: info.checksum,
    }
}

#[utoipa::path(post, path = "/collections/{name}/snapshots", tag = "snapshots", summary = "Snapshot a collection while it serves",
    description = "Writes one file holding the collection as it is at this moment (config, documents with texts and metadata, passages with their vectors) while searches and writes go on; writes made meanwhile are not in it. The file is akidb's own versioned format with a checksum over the whole file: restore it here (`/snapshots/upload`, `akidb restore`); `akidb export` is the way to Qdrant.",
    params(("name" = String, Path)),
    responses((status = 201, description = "The snapshot", body = SnapshotDescription), (status = 404, description = "No such collection", body = ErrorBody),
              (status = 409, description = "A snapshot of this collection is being written", body = ErrorBody)))]
pub async fn create_snapshot(State(state): State<Arc<AppState>>, Extension(gate): Extension<WriteGate>, Path(name): Path<String>) -> Result<(StatusCode, Json<SnapshotDescription>), ApiError> {
    let service = state.loaded()?;
    // A snapshot runs to its end once begun: the answer waits for it rather than time out
    // while the file is still written.
    gate.commit()?;
    let info = service.create_snapshot(&name).await?;
    Ok((StatusCode::CREATED, Json(description(info))))
}

#[utoipa::path(get, path = "/collections/{name}/snapshots", tag = "snapshots", summary = "List a collection's snapshots", params(("name" = String, Path)),
    responses((status = 200, description = "Newest first", body = SnapshotList), (status = 404, description = "No such collection, and no snapshots of that name", body = ErrorBody)))]
pub async fn list_snapshots(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Result<Json<SnapshotList>, ApiError> {
    let snapshots = state.loaded()?.list_snapshots(&name).await?.into_iter().map(description).collect();
    Ok(Json(SnapshotList { snapshots }))
}

#[utoipa::path(get, path = "/collections/{name}/snapshots/{snapshot}", tag = "snapshots", summary = "Download a snapshot", params(("name" = String, Path), ("snapshot" = String, Path, description = "A name from the list: letters, digits, `-`, `_`, `.`, ending in `.snapshot`")),
    responses((status = 200, description = "The file", content_type = "application/octet-stream", body = Vec<u8>), (status = 400, description = "Not a snapshot name", body = ErrorBody), (status = 404, description = "No such snapshot", body = ErrorBody)))]
pub async fn download_snapshot(State(state): State<Arc<AppState>>, Path((name, snapshot)): Path<(String, String)>) -> Result<Response, ApiError> {
    let path = state.loaded()?.snapshot_file(&name, &snapshot)?;
    snapshot_io::download(&path)
}

#[utoipa::path(delete, path = "/collections/{name}/snapshots/{snapshot}", tag = "snapshots", summary = "Delete a snapshot", params(("name" = String, Path), ("snapshot" = String, Path, description = "A name from the list: letters, digits, `-`, `_`, `.`, ending in `.snapshot`")),
    responses((status = 200, description = "Deleted", body = SnapshotDeleted), (status = 400, description = "Not a snapshot name", body = ErrorBody), (status = 404, description = "No such snapshot", body = ErrorBody)))]
pub async fn delete_snapshot(State(state): State<Arc<AppState>>, Path((name, snapshot)): Path<(String, String)>) -> Result<Json<SnapshotDeleted>, ApiError> {
    state.loaded()?.delete_snapshot(&name, &snapshot).await?;
    Ok(Json(SnapshotDeleted { deleted: 1 }))
}

pub fn restored(r: Restored) -> RestoreResponse {
    RestoreResponse { collection: r.collection, documents: r.documents, passages: r.passages, bytes: r.bytes, seconds: r.seconds, replaced: r.replaced }
}

#[utoipa::path(post, path = "/collections/{name}/snapshots/upload", tag = "snapshots", summary = "Restore a snapshot into this collection name",
    description = "The body is an akidb snapshot file, raw or as the multipart field `snapshot`. It is streamed to disk and checked whole (magic, version, checksum, totals) before anything is created: a damaged or cut file is a 400 and changes nothing. The documents are then written into a new collection with their stored vectors (nothing is re-embedded; the graph and BM25 index are built as they go), which takes the name in one step when complete. An existing collection of that name is replaced only with `replace=true` (409 otherwise); its writers are held during the switch and land in the restored collection. The snapshot's model must be loaded here.",
    params(("name" = String, Path), RestoreParams), request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, description = "Restored", body = RestoreResponse), (status = 400, description = "Not an intact akidb snapshot, or a bad name", body = ErrorBody),
              (status = 409, description = "The collection exists (and replace is not set), or the snapshot's model is not loaded", body = ErrorBody), (status = 413, description = "Larger than --max-snapshot-bytes", body = ErrorBody)))]
pub async fn upload_snapshot(
    State(state): State<Arc<AppState>>,
    Extension(gate): Extension<WriteGate>,
    Path(name): Path<String>,
    ApiQuery(params): ApiQuery<RestoreParams>,
    request: Request,
) -> Result<Json<RestoreResponse>, ApiError> {
    let service = state.loaded()?;
    crate::engine::validate_collection_name(&name)?;
    // A large file takes longer than the request timeout to arrive, and a restore runs to its
    // end once begun: the timeout stops here (the size limit and the in-flight limit bound it).
    gate.commit()?;
    let upload = snapshot_io::Upload::new(service.upload_path());
    snapshot_io::receive(request, upload.path(), state.limits.max_snapshot_bytes).await?;
    let restored = service.restore_snapshot(upload.path().to_owned(), Some(name), params.replace.unwrap_or(false)).await?;
    Ok(Json(self::restored(restored)))
}

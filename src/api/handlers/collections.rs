//! Collections: create, list, inspect, drop.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::ApiJson;
use crate::api::middleware::WriteGate;
use crate::api::state::AppState;
use crate::api::types::{BackendName, ChunkingConfig, CollectionDeleted, CollectionInfo, CollectionList, CreateCollectionRequest, HnswInfo, IndexInfo, IndexMemory, MetricName, RebuildRequest, RebuildStarted};
use crate::domain::{Chunking, IndexBackend, Metric};
use crate::engine::Collection;
use crate::service::{ChunkingChoice, NewCollection};

/// A request's `chunking`: absent → the model's default, `null` → one passage per document.
pub fn chunking_choice(requested: Option<Option<ChunkingConfig>>) -> ChunkingChoice {
    match requested {
        None => ChunkingChoice::Default,
        Some(None) => ChunkingChoice::Off,
        Some(Some(c)) => ChunkingChoice::Custom(Chunking { max_tokens: c.max_tokens, overlap_tokens: c.overlap_tokens }),
    }
}

pub fn metric_from(name: MetricName) -> Metric {
    match name {
        MetricName::Cosine => Metric::Cosine,
        MetricName::Dot => Metric::Dot,
        MetricName::L2 => Metric::L2,
    }
}

fn metric_name(metric: Metric) -> MetricName {
    match metric {
        Metric::Cosine => MetricName::Cosine,
        Metric::Dot => MetricName::Dot,
        Metric::L2 => MetricName::L2,
    }
}

fn backend_from(name: BackendName) -> IndexBackend {
    match name {
        BackendName::Usearch => IndexBackend::Usearch,
        BackendName::UsearchF16 => IndexBackend::UsearchF16,
        BackendName::UsearchI8 => IndexBackend::UsearchI8,
        BackendName::HnswRs => IndexBackend::HnswRs,
        BackendName::Hnsw => IndexBackend::Hnsw,
    }
}

fn backend_name(backend: IndexBackend) -> BackendName {
    match backend {
        IndexBackend::Usearch => BackendName::Usearch,
        IndexBackend::UsearchF16 => BackendName::UsearchF16,
        IndexBackend::UsearchI8 => BackendName::UsearchI8,
        IndexBackend::HnswRs => BackendName::HnswRs,
        IndexBackend::Hnsw => BackendName::Hnsw,
    }
}

pub fn info(collection: &Collection) -> CollectionInfo {
    let config = &collection.config;
    let stats = collection.stats();
    CollectionInfo {
        name: collection.name().to_string(),
        model: config.model.as_ref().map(|m| m.name.clone()),
        dims: config.dims,
        metric: metric_name(config.metric),
        hnsw: HnswInfo { m: config.hnsw.m, ef_construction: config.hnsw.ef_construction, ef_search: config.hnsw.ef_search },
        chunking: config.chunking.map(|c| ChunkingConfig { max_tokens: c.max_tokens, overlap_tokens: c.overlap_tokens }),
        created_at_ms: config.created_at_ms,
        documents: stats.documents,
        passages: stats.passages,
        index: IndexInfo { backend: backend_name(collection.backend()), lexical_passages: stats.lexical_passages, graph_points: stats.graph_points, tombstones: stats.tombstones, compacting: stats.compacting, search_ef: stats.search_ef, calibrated_recall: stats.calibration.map(|c| c.recall), calibrated_points: stats.calibration.map(|c| c.points), memory: IndexMemory { vectors: stats.vector_bytes, graph: stats.graph_bytes, payload_index: stats.payload_bytes } },
    }
}

#[utoipa::path(post, path = "/collections", tag = "collections", summary = "Create a collection", request_body = CreateCollectionRequest,
    responses((status = 201, description = "The new collection", body = CollectionInfo), (status = 400, description = "Bad name, metric, HNSW or chunking settings", body = ErrorBody),
              (status = 404, description = "Unknown model", body = ErrorBody), (status = 409, description = "A collection of that name exists", body = ErrorBody)))]
pub async fn create_collection(
    State(state): State<Arc<AppState>>,
    Extension(gate): Extension<WriteGate>,
    ApiJson(request): ApiJson<CreateCollectionRequest>,
) -> Result<(StatusCode, Json<CollectionInfo>), ApiError> {
    let service = state.loaded()?;
    let hnsw = request.hnsw.unwrap_or_default();
    let chunking = chunking_choice(request.chunking);
    let new = NewCollection {
        name: request.name,
        model: request.model,
        dims: request.dims,
        backend: request.index.and_then(|i| i.backend).map(backend_from),
        metric: request.metric.map(metric_from),
        m: hnsw.m,
        ef_construction: hnsw.ef_construction,
        ef_search: hnsw.ef_search,
        chunking,
        annex: None,
    };
    gate.commit()?;
    let collection = service.create_collection(new).await?;
    Ok((StatusCode::CREATED, Json(info(&collection))))
}

#[utoipa::path(get, path = "/collections", tag = "collections", summary = "List collections", responses((status = 200, description = "Every collection with its settings and counts", body = CollectionList)))]
pub async fn list_collections(State(state): State<Arc<AppState>>) -> Result<Json<CollectionList>, ApiError> {
    let collections = state.loaded()?.collections();
    Ok(Json(CollectionList { collections: collections.iter().map(|c| info(c)).collect() }))
}

#[utoipa::path(get, path = "/collections/{name}", tag = "collections", summary = "A collection's settings and counts", params(("name" = String, Path)),
    responses((status = 200, description = "The collection", body = CollectionInfo), (status = 404, description = "No such collection", body = ErrorBody)))]
pub async fn get_collection(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Result<Json<CollectionInfo>, ApiError> {
    let collection = state.loaded()?.collection(&name)?;
    Ok(Json(info(&collection)))
}

#[utoipa::path(post, path = "/collections/{name}/rebuild", tag = "collections", summary = "Rebuild the graph from the store, on another backend if asked",
    description = "Starts an online rebuild of the collection's ANN graph from its stored vectors (never a re-embedding): searches and writes go on against the old graph until the new one is swapped in, and the backend is recorded in the collection's config. How a collection migrated from an older store (hnsw_rs) moves to the default backend. `GET /collections/{name}` shows `index.compacting` until it ends, then the new `index.backend`.",
    params(("name" = String, Path)), request_body = RebuildRequest,
    responses((status = 202, description = "The rebuild started", body = RebuildStarted), (status = 400, description = "A backend the collection's metric cannot use", body = ErrorBody),
              (status = 404, description = "No such collection", body = ErrorBody), (status = 409, description = "A compaction or rebuild is already running", body = ErrorBody)))]
pub async fn rebuild_collection(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<RebuildRequest>,
) -> Result<(StatusCode, Json<RebuildStarted>), ApiError> {
    let (backend, started) = state.loaded()?.rebuild_collection(&name, request.backend.map(backend_from))?;
    if !started {
        return Err(ApiError::new(StatusCode::CONFLICT, "rebuild_running", format!("collection '{name}' is already being compacted or rebuilt; try again when index.compacting is false")));
    }
    Ok((StatusCode::ACCEPTED, Json(RebuildStarted { name, backend: backend_name(backend) })))
}

#[utoipa::path(delete, path = "/collections/{name}", tag = "collections", summary = "Delete a collection and its documents", params(("name" = String, Path)),
    responses((status = 200, description = "Deleted; how many documents it held", body = CollectionDeleted), (status = 404, description = "No such collection", body = ErrorBody)))]
pub async fn delete_collection(
    State(state): State<Arc<AppState>>,
    Extension(gate): Extension<WriteGate>,
    Path(name): Path<String>,
) -> Result<Json<CollectionDeleted>, ApiError> {
    let service = state.loaded()?;
    gate.commit()?;
    let documents = service.drop_collection(&name).await?;
    Ok(Json(CollectionDeleted { deleted: 1, documents }))
}

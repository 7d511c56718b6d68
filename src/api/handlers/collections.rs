//! Collections: create, list, inspect, drop.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::ApiJson;
use crate::api::middleware::WriteGate;
use crate::api::state::{AppState, Loaded};
use crate::api::types::{CollectionInfo, CollectionList, CreateCollectionRequest, Deleted, HnswInfo, IndexInfo, MetricName};
use crate::embed::{EmbeddingProvider, OnnxProvider};
use crate::engine::Collection;
use crate::store::{CollectionConfig, HnswParams, Metric, ModelBinding};

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

pub fn info(collection: &Collection) -> CollectionInfo {
    let config = &collection.config;
    let stats = collection.stats();
    CollectionInfo {
        name: config.name.clone(),
        model: config.model.name.clone(),
        dims: config.model.dims,
        metric: metric_name(config.metric),
        hnsw: HnswInfo { m: config.hnsw.m, ef_construction: config.hnsw.ef_construction, ef_search: config.hnsw.ef_search },
        created_at_ms: config.created_at_ms,
        documents: stats.documents,
        index: IndexInfo { graph_points: stats.graph_points, tombstones: stats.tombstones, compacting: stats.compacting },
    }
}

/// The loaded model a collection is bound to. Refused when the server has not loaded it, or when
/// a model of that name now differs from the one the collection's vectors were made with.
pub fn bound_model<'a>(loaded: &'a Loaded, collection: &Collection) -> Result<&'a Arc<OnnxProvider>, ApiError> {
    let binding = &collection.config.model;
    let provider = loaded.model(&binding.name).map_err(|_| {
        ApiError::new(StatusCode::CONFLICT, "model_not_loaded", format!("collection '{}' is bound to model '{}', which this server has not loaded", collection.name(), binding.name))
    })?;
    let info = provider.info();
    if info.dims != binding.dims || info.pooling != binding.pooling || info.query_instruction != binding.query_instruction {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "model_mismatch",
            format!("collection '{}' was built with a different '{}' ({} dims, {:?} pooling) than the one loaded ({} dims, {:?} pooling)", collection.name(), binding.name, binding.dims, binding.pooling, info.dims, info.pooling),
        ));
    }
    Ok(provider)
}

/// Runs a blocking engine call off the async workers.
pub async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await?
}

#[utoipa::path(post, path = "/collections", tag = "collections", request_body = CreateCollectionRequest,
    responses((status = 201, body = CollectionInfo), (status = 400, body = ErrorBody),
              (status = 404, description = "Unknown model", body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_collection(
    State(state): State<Arc<AppState>>,
    Extension(gate): Extension<WriteGate>,
    ApiJson(request): ApiJson<CreateCollectionRequest>,
) -> Result<(StatusCode, Json<CollectionInfo>), ApiError> {
    let loaded = state.loaded()?;
    let model = match &request.model {
        Some(name) => loaded.model(name)?,
        None => loaded.default_model()?,
    };
    let defaults = HnswParams::default();
    let hnsw = request.hnsw.unwrap_or_default();
    let model_info = model.info();
    let config = CollectionConfig {
        id: String::new(),
        name: request.name,
        model: ModelBinding {
            name: model_info.name.clone(),
            dims: model_info.dims,
            pooling: model_info.pooling,
            query_instruction: model_info.query_instruction.clone(),
        },
        metric: request.metric.map(metric_from).unwrap_or_default(),
        hnsw: HnswParams {
            m: hnsw.m.unwrap_or(defaults.m),
            ef_construction: hnsw.ef_construction.unwrap_or(defaults.ef_construction),
            ef_search: hnsw.ef_search.unwrap_or(defaults.ef_search),
        },
        created_at_ms: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
    };
    let engine = loaded.engine.clone();
    gate.commit()?;
    let collection = blocking(move || Ok(engine.create_collection(config)?)).await?;
    Ok((StatusCode::CREATED, Json(info(&collection))))
}

#[utoipa::path(get, path = "/collections", tag = "collections", responses((status = 200, body = CollectionList)))]
pub async fn list_collections(State(state): State<Arc<AppState>>) -> Result<Json<CollectionList>, ApiError> {
    let loaded = state.loaded()?;
    Ok(Json(CollectionList { collections: loaded.engine.collections().iter().map(|c| info(c)).collect() }))
}

#[utoipa::path(get, path = "/collections/{name}", tag = "collections", params(("name" = String, Path)),
    responses((status = 200, body = CollectionInfo), (status = 404, body = ErrorBody)))]
pub async fn get_collection(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Result<Json<CollectionInfo>, ApiError> {
    let collection = state.loaded()?.engine.collection(&name)?;
    Ok(Json(info(&collection)))
}

#[utoipa::path(delete, path = "/collections/{name}", tag = "collections", params(("name" = String, Path)),
    responses((status = 200, body = Deleted), (status = 404, body = ErrorBody)))]
pub async fn delete_collection(
    State(state): State<Arc<AppState>>,
    Extension(gate): Extension<WriteGate>,
    Path(name): Path<String>,
) -> Result<Json<Deleted>, ApiError> {
    let engine = state.loaded()?.engine.clone();
    gate.commit()?;
    blocking(move || Ok(engine.drop_collection(&name)?)).await?;
    Ok(Json(Deleted { deleted: 1 }))
}

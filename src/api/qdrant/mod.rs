//! The Qdrant-compatible listener (`akidb serve --qdrant-port`, default 6333): a second front
//! door onto the same service layer as akidb's own REST API, speaking Qdrant's REST protocol
//! (1.19 schema) so that `qdrant-client`, LangChain and LlamaIndex run unmodified, and embedding
//! `Document`s server-side. How points map onto documents: `service::points`.

mod collections;
mod filter;
mod points;
mod query;
mod reply;
mod request;
mod snapshots;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use serde_json::{json, Value};
use tower_http::catch_panic::CatchPanicLayer;

pub use reply::QdrantError;
use reply::Started;

use super::state::AppState;
use crate::embed::EmbeddingProvider;
use crate::engine::Collection;
use crate::service::points::View;
use crate::service::Service;

/// The Qdrant version whose REST schema this listener follows (the official client accepts
/// servers one minor version apart without a warning).
pub const QDRANT_VERSION: &str = "1.19.0";

fn loaded(state: &AppState) -> Result<&Service, QdrantError> {
    state.loaded().map_err(QdrantError::from)
}

/// A request's collection (by name or alias) with its Qdrant view.
pub(crate) struct Ctx<'a> {
    service: &'a Service,
    collection: Arc<Collection>,
    /// The collection's name when the request resolved it: writes address it by this name, so
    /// a switch (a re-embed, a restore) meanwhile sends them to the collection now under it.
    name: String,
    view: View,
}

impl<'a> Ctx<'a> {
    fn open(state: &'a AppState, name: &str) -> Result<Self, QdrantError> {
        let service = loaded(state)?;
        let collection = service.collection(name).map_err(|_| QdrantError::collection_not_found(name))?;
        let name = collection.name().to_string();
        let view = service.view(&collection)?;
        Ok(Ctx { service, collection, name, view })
    }

    /// A vector as Qdrant shows it: an array, or `{name: array}` for a named vector.
    fn vector_output(&self, vector: Vec<f32>) -> Value {
        match &self.view.vector {
            None => json!(vector),
            Some(name) => json!({ name: vector }),
        }
    }

    /// A `Document.model` must be the collection's model (by name or hub id, any case: the
    /// manifest's aliases).
    fn check_model(&self, model: &str) -> Result<(), QdrantError> {
        let Ok(provider) = self.service.model(model) else {
            let loaded: Vec<String> = self.service.models.iter().map(|m| m.info().name.clone()).collect();
            return Err(QdrantError::bad_request(format!("model '{model}' is not loaded by this server; loaded: {loaded:?} (and Qdrant/bm25 on a sparse vector)")));
        };
        let name = provider.info().name.as_str();
        match &self.collection.config.model {
            Some(bound) if bound.name == name => Ok(()),
            Some(bound) => Err(QdrantError::bad_request(format!("collection `{}` embeds with model '{}', not '{model}'", self.collection.name(), bound.name))),
            None => Err(QdrantError::bad_request(format!(
                "collection `{}` has no model (its size matches no loaded model): give vectors, not Documents",
                self.collection.name()
            ))),
        }
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    let max_body = state.limits.max_body_bytes;
    Router::new()
        .route("/", get(root))
        .route("/healthz", get(healthz))
        .route("/livez", get(healthz))
        .route("/readyz", get(readyz))
        .route("/collections", get(collections::list))
        .route("/aliases", get(collections::list_aliases))
        .route("/collections/aliases", post(collections::change_aliases))
        .route("/collections/{name}", get(collections::get).put(collections::create).patch(collections::update).delete(collections::delete))
        .route("/collections/{name}/exists", get(collections::exists))
        .route("/collections/{name}/aliases", get(collections::collection_aliases))
        .route("/collections/{name}/index", put(collections::create_index))
        .route("/collections/{name}/index/{field}", delete(collections::delete_index))
        .route("/collections/{name}/points", put(points::upsert).post(points::retrieve))
        .route("/collections/{name}/points/{id}", get(points::get_point))
        .route("/collections/{name}/points/delete", post(points::delete))
        .route("/collections/{name}/points/payload", post(points::set_payload).put(points::overwrite_payload))
        .route("/collections/{name}/points/payload/delete", post(points::delete_payload))
        .route("/collections/{name}/points/payload/clear", post(points::clear_payload))
        .route("/collections/{name}/points/vectors", put(points::update_vectors))
        .route("/collections/{name}/points/vectors/delete", post(points::delete_vectors))
        .route("/collections/{name}/points/batch", post(points::batch))
        .route("/collections/{name}/points/scroll", post(points::scroll))
        .route("/collections/{name}/points/count", post(points::count))
        .route("/collections/{name}/points/query", post(query::query))
        .route("/collections/{name}/points/query/batch", post(query::query_batch))
        .route("/collections/{name}/points/search", post(query::search))
        .route("/collections/{name}/points/search/batch", post(query::search_batch))
        .route("/collections/{name}/points/recommend", post(query::recommend))
        .route("/collections/{name}/points/recommend/batch", post(query::recommend_batch))
        .route("/collections/{name}/points/query/groups", post(query::query_groups))
        .route("/collections/{name}/points/search/groups", post(query::search_groups))
        .route("/collections/{name}/points/discover", post(query::unsupported))
        .route("/collections/{name}/snapshots", get(snapshots::list).post(snapshots::create))
        .route("/collections/{name}/snapshots/upload", post(snapshots::upload).layer(axum::extract::DefaultBodyLimit::disable()))
        .route("/collections/{name}/snapshots/recover", put(snapshots::recover))
        .route("/collections/{name}/snapshots/{snapshot}", get(snapshots::download).delete(snapshots::delete))
        .fallback(|method: axum::http::Method, uri: axum::http::Uri| async move {
            QdrantError { status: StatusCode::NOT_FOUND, message: format!("Not found: no route {method} {} on akidb's Qdrant-compatible API", uri.path()) }
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), shed_and_time_out))
        .layer(axum::middleware::from_fn_with_state(state.clone(), require_api_key))
        .layer(axum::middleware::from_fn_with_state(state.clone(), super::middleware::check_host))
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(CatchPanicLayer::custom(|_| QdrantError { status: StatusCode::INTERNAL_SERVER_ERROR, message: "Service internal error: a handler panicked; the server is still running".into() }.into_response()))
        .layer(axum::middleware::from_fn(start_clock))
        .layer(axum::middleware::from_fn(super::middleware::record_metrics))
        .with_state(state)
}

async fn start_clock(mut request: Request, next: Next) -> Response {
    request.extensions_mut().insert(Started(Instant::now()));
    next.run(request).await
}

async fn root() -> Response {
    axum::Json(json!({"title": "qdrant - vector search engine (akidb)", "version": QDRANT_VERSION})).into_response()
}

async fn healthz() -> &'static str {
    "healthz check passed"
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.is_ready() {
        "all shards are ready".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "akidb is still loading models and indexes").into_response()
    }
}

const OPEN: [&str; 4] = ["/", "/healthz", "/livez", "/readyz"];

/// The same key as akidb's own API, as Qdrant's clients send it: `api-key`, or
/// `Authorization: Bearer`.
async fn require_api_key(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Some(expected) = state.api_key.as_deref() else { return next.run(request).await };
    if OPEN.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let headers = request.headers();
    let given = headers
        .get("api-key")
        .and_then(|v| v.to_str().ok())
        .or_else(|| headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")));
    match given {
        Some(key) if super::middleware::constant_time_eq(key.as_bytes(), expected.as_bytes()) => next.run(request).await,
        Some(_) => QdrantError { status: StatusCode::FORBIDDEN, message: "Invalid api-key".into() }.into_response(),
        None => QdrantError { status: StatusCode::UNAUTHORIZED, message: "Must provide an API key or an Authorization bearer token".into() }.into_response(),
    }
}

/// The same in-flight limit and timeout as akidb's own API, answered in Qdrant's shape.
async fn shed_and_time_out(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if OPEN.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let Ok(_permit) = state.in_flight.clone().try_acquire_owned() else {
        return QdrantError { status: StatusCode::SERVICE_UNAVAILABLE, message: "Service unavailable: too many requests in flight; retry shortly".into() }.into_response();
    };
    // Snapshots run to their end once begun, and a large file takes longer than the timeout
    // to arrive: bounded by the size and in-flight limits instead.
    if request.uri().path().contains("/snapshots") {
        return next.run(request).await;
    }
    // A write cut off here may still commit (it runs on a blocking thread). Every Qdrant write
    // names its points (ids, or a filter) and is idempotent, so the client's retry after the
    // 408 repeats the same write rather than adding a second one.
    match tokio::time::timeout(state.limits.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => QdrantError { status: StatusCode::REQUEST_TIMEOUT, message: "Timeout: the request took longer than the server's request timeout".into() }.into_response(),
    }
}

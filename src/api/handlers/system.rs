//! Liveness, readiness, metrics, OpenAPI.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::api::openapi::{document, ModelFacts, ServerFacts};
use crate::api::state::AppState;
use crate::api::types::{HealthResponse, ModelStatus, ReadyResponse};
use crate::embed::EmbeddingProvider;

#[utoipa::path(get, path = "/health", tag = "system", summary = "Liveness, models and execution providers",
    responses((status = 200, description = "The process is alive", body = HealthResponse)))]
pub async fn health(State(state): State<Arc<AppState>>) -> Json<HealthResponse> {
    let models = state
        .models()
        .iter()
        .enumerate()
        .map(|(i, m)| ModelStatus { name: m.info().name.clone(), dims: m.info().dims, execution_provider: m.info().execution_provider, default: i == 0 })
        .collect();
    Json(HealthResponse { status: "ok", version: env!("CARGO_PKG_VERSION"), ready: state.is_ready(), models })
}

#[utoipa::path(get, path = "/ready", tag = "system", summary = "Readiness: models and indexes loaded",
    responses((status = 200, description = "Models and indexes are loaded", body = ReadyResponse),
              (status = 503, description = "Still loading", body = ReadyResponse)))]
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let ready = state.is_ready();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(ReadyResponse { ready })).into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "system", summary = "Prometheus metrics",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    if let Ok(loaded) = state.loaded() {
        crate::api::metrics::record_scrape_time_values(loaded);
    }
    let body = state.prometheus.as_ref().map(|h| {
        h.run_upkeep();
        h.render()
    }).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

#[utoipa::path(get, path = "/openapi.json", tag = "system", summary = "This document",
    responses((status = 200, description = "This API's OpenAPI 3 document")))]
pub async fn openapi(State(state): State<Arc<AppState>>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], state.openapi(build_openapi)).into_response()
}

/// This server's document: its key requirement, its limits, its models' widths.
fn build_openapi(state: &AppState) -> String {
    let models = state
        .models()
        .iter()
        .map(|m| ModelFacts { name: m.info().name.clone(), dims: m.info().dims, max_passage_tokens: m.encoder().window(), widths: m.info().matryoshka_dims.clone() })
        .collect();
    document(&ServerFacts { api_key: state.api_key.is_some(), limits: &state.limits, models })
}

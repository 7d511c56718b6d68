//! Semantic search: a text query (embedded with the collection's model) or a vector.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::collections::{blocking, bound_model};
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::ApiJson;
use crate::api::state::{AppState, Limits};
use crate::api::types::{BatchSearchRequest, BatchSearchResponse, Include, SearchHit, SearchRequest, SearchResponse};
use crate::embed::{EmbedRequest, EmbeddingProvider};
use crate::engine::{Collection, Filter, Found};

const DEFAULT_K: usize = 10;

/// A search request checked against the limits, before any embedding is done.
struct Checked {
    query: Option<String>,
    vector: Option<Vec<f32>>,
    k: usize,
    ef: Option<usize>,
    filter: Option<Filter>,
    include: Vec<Include>,
}

fn check(request: SearchRequest, limits: &Limits, at: &str) -> Result<Checked, ApiError> {
    let k = request.k.unwrap_or(DEFAULT_K);
    if k == 0 || k > limits.max_k {
        return Err(ApiError::bad_request(format!("{at}k must be in 1..={}, got {k}", limits.max_k)));
    }
    if let Some(ef) = request.ef {
        if ef == 0 || ef > 10_000 {
            return Err(ApiError::bad_request(format!("{at}ef must be in 1..=10000, got {ef}")));
        }
    }
    match (&request.query, &request.vector) {
        (Some(_), Some(_)) => return Err(ApiError::bad_request(format!("{at}give query or vector, not both"))),
        (None, None) => return Err(ApiError::bad_request(format!("{at}give query (text) or vector"))),
        (Some(q), None) if q.trim().is_empty() => return Err(ApiError::bad_request(format!("{at}query is empty"))),
        _ => {}
    }
    let filter = request
        .filter
        .as_ref()
        .map(Filter::parse)
        .transpose()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_filter", format!("{at}where: {e}")))?;
    Ok(Checked {
        query: request.query,
        vector: request.vector,
        k,
        ef: request.ef,
        filter,
        include: request.include.unwrap_or_else(|| vec![Include::Text, Include::Metadata]),
    })
}

fn hit(found: Found, include: &[Include]) -> SearchHit {
    let has = |field| include.contains(&field);
    SearchHit {
        id: found.document.id,
        score: found.score,
        text: has(Include::Text).then_some(found.document.text),
        metadata: has(Include::Metadata).then_some(found.document.metadata),
        vector: has(Include::Vector).then_some(found.document.vector),
    }
}

/// Embeds the text queries among `checked` in one model call, in order.
async fn query_vectors(state: &AppState, collection: &Collection, checked: &mut [Checked]) -> Result<(), ApiError> {
    let texts: Vec<String> = checked.iter().filter_map(|c| c.query.clone()).collect();
    if texts.is_empty() {
        return Ok(());
    }
    let provider = bound_model(state.loaded()?, collection)?;
    let mut vectors = provider.embed(EmbedRequest::queries(texts)).await?.into_iter();
    for c in checked.iter_mut().filter(|c| c.query.is_some()) {
        c.vector = vectors.next().map(|e| e.embedding);
    }
    Ok(())
}

async fn run(collection: Arc<Collection>, checked: Vec<Checked>) -> Result<Vec<Vec<SearchHit>>, ApiError> {
    blocking(move || {
        checked
            .into_iter()
            .map(|c| {
                let vector = collection.prepare_vector(c.vector.unwrap_or_default())?;
                let found = collection.search(&vector, c.k, c.ef, c.filter.as_ref())?;
                Ok(found.into_iter().map(|f| hit(f, &c.include)).collect())
            })
            .collect()
    })
    .await
}

#[utoipa::path(post, path = "/collections/{name}/search", tag = "search", params(("name" = String, Path)),
    request_body = SearchRequest,
    responses((status = 200, body = SearchResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn search(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<SearchRequest>,
) -> Result<Json<SearchResponse>, ApiError> {
    let collection = state.loaded()?.engine.collection(&name)?;
    let mut checked = vec![check(request, &state.limits, "")?];
    query_vectors(&state, &collection, &mut checked).await?;
    let results = run(collection, checked).await?.pop().unwrap_or_default();
    Ok(Json(SearchResponse { results }))
}

#[utoipa::path(post, path = "/collections/{name}/search/batch", tag = "search", params(("name" = String, Path)),
    request_body = BatchSearchRequest,
    responses((status = 200, body = BatchSearchResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 413, body = ErrorBody)))]
pub async fn search_batch(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<BatchSearchRequest>,
) -> Result<Json<BatchSearchResponse>, ApiError> {
    let collection = state.loaded()?.engine.collection(&name)?;
    if request.searches.is_empty() {
        return Err(ApiError::bad_request("searches must not be empty"));
    }
    if request.searches.len() > state.limits.max_batch_queries {
        return Err(ApiError::too_large(format!("at most {} searches per request, got {}", state.limits.max_batch_queries, request.searches.len())));
    }
    let mut checked = request
        .searches
        .into_iter()
        .enumerate()
        .map(|(i, s)| check(s, &state.limits, &format!("searches[{i}].")))
        .collect::<Result<Vec<_>, _>>()?;
    query_vectors(&state, &collection, &mut checked).await?;
    Ok(Json(BatchSearchResponse { results: run(collection, checked).await? }))
}

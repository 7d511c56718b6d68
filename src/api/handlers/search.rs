//! Search: parse the request, call the service, shape the hits.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::ApiJson;
use crate::api::state::AppState;
use crate::api::types::{BatchSearchRequest, BatchSearchResponse, Include, PassageRef, SearchHit, SearchMode, SearchRequest, SearchResponse};
use crate::engine::Filter;
use crate::service::{self, FusionChoice, Mode, SearchQuery};

const DEFAULT_K: usize = 10;

fn parse(request: SearchRequest, at: &str) -> Result<SearchQuery, ApiError> {
    let filter = request
        .filter
        .as_ref()
        .map(Filter::parse)
        .transpose()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_filter", format!("{at}where: {e}")))?;
    let include = request.include.unwrap_or_else(|| vec![Include::Text, Include::Metadata]);
    let weights = request.weights;
    Ok(SearchQuery {
        query: request.query,
        vector: super::vector_f32(request.vector, at)?,
        k: request.k.unwrap_or(DEFAULT_K),
        ef: request.ef,
        filter,
        mode: request.mode.map(|m| match m {
            SearchMode::Dense => Mode::Dense,
            SearchMode::Lexical => Mode::Lexical,
            SearchMode::Hybrid => Mode::Hybrid,
        }),
        passages: request.passages.unwrap_or(false),
        candidates: request.candidates,
        // What the request leaves out comes from the collection's model (service::search).
        fusion: FusionChoice { rrf_k: request.rrf_k, dense_weight: weights.and_then(|w| w.dense), lexical_weight: weights.and_then(|w| w.lexical) },
        include_text: include.contains(&Include::Text),
        include_metadata: include.contains(&Include::Metadata),
        include_vector: include.contains(&Include::Vector),
    })
}

fn hit(h: service::SearchHit) -> SearchHit {
    SearchHit {
        id: h.id,
        score: h.score,
        passage: PassageRef { index: h.passage, start: h.span.start, end: h.span.end },
        text: h.text,
        metadata: h.metadata,
        vector: h.vector,
    }
}

#[utoipa::path(post, path = "/collections/{name}/search", tag = "search", summary = "Search a collection (dense, lexical or hybrid)", params(("name" = String, Path)),
    request_body = SearchRequest,
    responses((status = 200, description = "The best documents (or passages), best first", body = SearchResponse), (status = 400, description = "Bad query, vector, k, ef, filter or mode", body = ErrorBody), (status = 404, description = "No such collection", body = ErrorBody),
              (status = 422, description = "JSON of the wrong shape", body = ErrorBody)))]
pub async fn search(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<SearchRequest>,
) -> Result<Json<SearchResponse>, ApiError> {
    let service = state.loaded()?;
    let query = parse(request, "")?;
    let results = service.search_one(&name, query).await?;
    Ok(Json(SearchResponse { results: results.into_iter().map(hit).collect() }))
}

#[utoipa::path(post, path = "/collections/{name}/search/batch", tag = "search", summary = "Run several searches in one request", params(("name" = String, Path)),
    request_body = BatchSearchRequest,
    responses((status = 200, description = "One result list per search, in order", body = BatchSearchResponse), (status = 400, description = "A bad search (named by its index)", body = ErrorBody), (status = 404, description = "No such collection", body = ErrorBody),
              (status = 413, description = "Too many searches", body = ErrorBody)))]
pub async fn search_batch(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<BatchSearchRequest>,
) -> Result<Json<BatchSearchResponse>, ApiError> {
    let service = state.loaded()?;
    service.collection(&name)?;
    if request.searches.len() > service.limits.max_batch_queries {
        return Err(ApiError::too_large(format!("at most {} searches per request, got {}", service.limits.max_batch_queries, request.searches.len())));
    }
    let queries = request.searches.into_iter().enumerate().map(|(i, s)| parse(s, &format!("searches[{i}].")));
    let queries = queries.collect::<Result<Vec<_>, _>>()?;
    let results = service.search(&name, queries).await?;
    Ok(Json(BatchSearchResponse { results: results.into_iter().map(|r| r.into_iter().map(hit).collect()).collect() }))
}

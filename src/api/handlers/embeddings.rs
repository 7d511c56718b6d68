//! `POST /v1/embeddings`, compatible with the OpenAI API and its official clients.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use base64::Engine as _;
use serde_json::Value;

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::ApiJson;
use crate::api::state::AppState;
use crate::api::types::{EmbeddingObject, EmbeddingsRequest, EmbeddingsResponse, ModelList, ModelObject, SelfTestObject, Usage};
use crate::embed::{EmbedRequest, EmbeddingProvider, Priority};

/// Embedding requests of at most this many inputs go to the interactive lane.
pub const INTERACTIVE_MAX_INPUTS: usize = 16;

fn inputs(input: Value) -> Result<Vec<String>, ApiError> {
    let texts = match input {
        Value::String(text) => vec![text],
        Value::Array(items) if items.is_empty() => return Err(ApiError::bad_request("input must not be an empty array")),
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(text) => Ok(text),
                _ => Err(ApiError::bad_request(format!("input[{i}] must be a string (token arrays are not supported)"))),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(ApiError::bad_request("input must be a string or an array of strings")),
    };
    if let Some(i) = texts.iter().position(|t| t.is_empty()) {
        return Err(ApiError::bad_request(format!("input[{i}] is empty")));
    }
    Ok(texts)
}

#[utoipa::path(post, path = "/v1/embeddings", tag = "embeddings", summary = "Embed texts (OpenAI-compatible)", request_body = EmbeddingsRequest,
    responses((status = 200, description = "One embedding per input, in order", body = EmbeddingsResponse),
              (status = 400, description = "Bad input or dimensions", body = ErrorBody), (status = 404, description = "Model not loaded", body = ErrorBody),
              (status = 413, description = "Too many inputs", body = ErrorBody)))]
pub async fn create_embeddings(State(state): State<Arc<AppState>>, ApiJson(request): ApiJson<EmbeddingsRequest>) -> Result<Json<EmbeddingsResponse>, ApiError> {
    let loaded = state.loaded()?;
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => return Err(ApiError::bad_request(format!("encoding_format must be float or base64, got {other}"))),
    };
    let texts = inputs(request.input)?;
    if texts.len() > state.limits.max_batch_queries {
        return Err(ApiError::too_large(format!("at most {} inputs per request, got {}", state.limits.max_batch_queries, texts.len())));
    }
    let provider = loaded.model(&request.model).map_err(ApiError::from)?;
    // A few texts: someone is waiting on them, like a search query. Many: a bulk job.
    let priority = if texts.len() <= INTERACTIVE_MAX_INPUTS { Priority::Interactive } else { Priority::Bulk };
    let embeddings = provider.embed(EmbedRequest::documents(texts).with_dims(request.dimensions).with_priority(priority)).await?;
    let tokens: usize = embeddings.iter().map(|e| e.tokens).sum();
    let data = embeddings
        .into_iter()
        .enumerate()
        .map(|(index, e)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = e.embedding.iter().flat_map(|v| v.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                serde_json::to_value(e.embedding).unwrap_or(Value::Null)
            };
            EmbeddingObject { object: "embedding", index, embedding }
        })
        .collect();
    Ok(Json(EmbeddingsResponse {
        object: "list",
        data,
        model: provider.info().name.clone(),
        usage: Usage { prompt_tokens: tokens, total_tokens: tokens },
    }))
}

#[utoipa::path(get, path = "/v1/models", tag = "embeddings", summary = "The loaded models, as OpenAI's API lists them",
    responses((status = 200, description = "The loaded models, the default first", body = ModelList)))]
pub async fn list_models(State(state): State<Arc<AppState>>) -> Result<Json<ModelList>, ApiError> {
    let created = state.loaded_at();
    let data = state
        .loaded()?
        .models
        .iter()
        .map(|m| {
            let info = m.info();
            let self_test = m.self_test_report().map(|r| SelfTestObject { probes: r.probes, worst_cosine_distance: r.worst_distance, milliseconds: r.elapsed.as_secs_f64() * 1e3 });
            ModelObject { id: info.name.clone(), object: "model", created, owned_by: "akidb", aliases: info.aliases.clone(), dims: info.dims, max_tokens: info.max_tokens, self_test }
        })
        .collect();
    Ok(Json(ModelList { object: "list", data }))
}

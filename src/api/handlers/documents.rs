//! Documents: add (embed → store → index), get, delete.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::{Extension, Json};

use super::collections::{blocking, bound_model};
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::ApiJson;
use crate::api::middleware::WriteGate;
use crate::api::state::AppState;
use crate::api::types::{AddDocumentsRequest, AddDocumentsResponse, DeleteDocumentsRequest, Deleted, DocumentResponse, GetDocumentQuery};
use crate::embed::EmbeddingProvider;
use crate::engine::{validate_document_id, Filter};
use crate::store::NewDocument;

#[utoipa::path(post, path = "/collections/{name}/documents", tag = "documents", params(("name" = String, Path)),
    request_body = AddDocumentsRequest,
    responses((status = 200, body = AddDocumentsResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_documents(
    State(state): State<Arc<AppState>>,
    Extension(gate): Extension<WriteGate>,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<AddDocumentsRequest>,
) -> Result<Json<AddDocumentsResponse>, ApiError> {
    let loaded = state.loaded()?;
    let collection = loaded.engine.collection(&name)?;
    let limits = &state.limits;
    if request.documents.is_empty() {
        return Err(ApiError::bad_request("documents must not be empty"));
    }
    if request.documents.len() > limits.max_batch_documents {
        return Err(ApiError::too_large(format!("at most {} documents per request, got {}", limits.max_batch_documents, request.documents.len())));
    }
    let mut seen = HashSet::with_capacity(request.documents.len());
    let mut prepared = Vec::with_capacity(request.documents.len());
    for (i, doc) in request.documents.into_iter().enumerate() {
        let id = doc.id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        validate_document_id(&id).map_err(|e| ApiError::bad_request(format!("documents[{i}].id: {e}")))?;
        if !seen.insert(id.clone()) {
            return Err(ApiError::bad_request(format!("documents[{i}].id: '{id}' appears twice in this request")));
        }
        if doc.text.trim().is_empty() {
            return Err(ApiError::bad_request(format!("documents[{i}].text is empty")));
        }
        let metadata = doc.metadata.unwrap_or_default();
        let size = serde_json::to_vec(&metadata).map_or(usize::MAX, |b| b.len());
        if size > limits.max_metadata_bytes {
            return Err(ApiError::too_large(format!("documents[{i}].metadata is {size} bytes; the limit is {}", limits.max_metadata_bytes)));
        }
        prepared.push((id, doc.text, metadata));
    }
    let provider = bound_model(loaded, &collection)?;
    let embeddings = provider.embed_documents(prepared.iter().map(|(_, text, _)| text.clone()).collect()).await?;
    let response = AddDocumentsResponse {
        ids: prepared.iter().map(|(id, _, _)| id.clone()).collect(),
        truncated: embeddings.iter().map(|e| e.truncated).collect(),
        tokens: embeddings.iter().map(|e| e.tokens).collect(),
    };
    let documents: Vec<NewDocument> = prepared
        .into_iter()
        .zip(embeddings)
        .map(|((id, text, metadata), e)| NewDocument { id, text, metadata, vector: e.embedding })
        .collect();
    // Tests delay here (asynchronously, so the timeout can win) to reach the 408 path.
    #[cfg(feature = "failpoints")]
    if let Some(ms) = (|| -> Option<u64> {
        fail::fail_point!("api.add_documents.before_commit", |arg: Option<String>| arg.and_then(|a| a.parse().ok()));
        None
    })() {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    // From here on the write is committed to: the request timeout no longer applies.
    gate.commit()?;
    blocking(move || Ok(collection.upsert(documents)?)).await?;
    Ok(Json(response))
}

#[utoipa::path(get, path = "/collections/{name}/documents/{id}", tag = "documents",
    params(("name" = String, Path), ("id" = String, Path), ("include_vector" = Option<bool>, Query)),
    responses((status = 200, body = DocumentResponse), (status = 404, body = ErrorBody)))]
pub async fn get_document(
    State(state): State<Arc<AppState>>,
    Path((name, id)): Path<(String, String)>,
    Query(query): Query<GetDocumentQuery>,
) -> Result<Json<DocumentResponse>, ApiError> {
    let collection = state.loaded()?.engine.collection(&name)?;
    let document = blocking(move || Ok(collection.get(&id)?.ok_or_else(|| ApiError::not_found("document_not_found", format!("document '{id}' not found"))))).await??;
    Ok(Json(DocumentResponse {
        id: document.id,
        text: document.text,
        metadata: document.metadata,
        vector: query.include_vector.then_some(document.vector),
    }))
}

#[utoipa::path(delete, path = "/collections/{name}/documents/{id}", tag = "documents",
    params(("name" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = Deleted), (status = 404, body = ErrorBody)))]
pub async fn delete_document(
    State(state): State<Arc<AppState>>,
    Extension(gate): Extension<WriteGate>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<Deleted>, ApiError> {
    let collection = state.loaded()?.engine.collection(&name)?;
    gate.commit()?;
    let deleted = blocking(move || Ok(collection.delete(&[id.clone()])?)).await?;
    if deleted == 0 {
        return Err(ApiError::not_found("document_not_found", "document not found"));
    }
    Ok(Json(Deleted { deleted }))
}

#[utoipa::path(post, path = "/collections/{name}/documents/delete", tag = "documents", params(("name" = String, Path)),
    request_body = DeleteDocumentsRequest,
    responses((status = 200, body = Deleted), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_documents(
    State(state): State<Arc<AppState>>,
    Extension(gate): Extension<WriteGate>,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<DeleteDocumentsRequest>,
) -> Result<Json<Deleted>, ApiError> {
    let collection = state.loaded()?.engine.collection(&name)?;
    let filter = request.filter.as_ref().map(Filter::parse).transpose().map_err(|e| ApiError::new(axum::http::StatusCode::BAD_REQUEST, "invalid_filter", e))?;
    let deleted = match (request.ids, filter) {
        (None, None) => return Err(ApiError::bad_request("give ids, where, or both")),
        (ids, filter) => {
            gate.commit()?;
            blocking(move || {
                let mut deleted = 0;
                if let Some(ids) = ids {
                    deleted += collection.delete(&ids)?;
                }
                if let Some(filter) = filter {
                    deleted += collection.delete_where(&filter)?;
                }
                Ok(deleted)
            })
            .await?
        }
    };
    Ok(Json(Deleted { deleted }))
}

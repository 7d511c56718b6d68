//! Documents: add (split → embed → store → index, in the service layer), list, count, get, delete.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::{Extension, Json};

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{ApiJson, ApiQuery};
use crate::api::middleware::WriteGate;
use crate::api::state::AppState;
use crate::api::types::{
    AddDocumentsRequest, AddDocumentsResponse, CountRequest, CountResponse, DeleteDocumentsRequest, Deleted, DocumentPage, DocumentResponse, GetDocumentQuery,
    ListDocumentsQuery, ListedDocument, PassageInfo,
};
use crate::engine::Filter;
use crate::service::DocumentInput;

#[utoipa::path(post, path = "/collections/{name}/documents", tag = "documents", summary = "Add or replace documents (split, embed, store, index)", params(("name" = String, Path)),
    request_body = AddDocumentsRequest,
    responses((status = 200, description = "Per document: id, passages, tokens, truncation", body = AddDocumentsResponse), (status = 400, description = "An invalid document (id, text, metadata)", body = ErrorBody), (status = 404, description = "No such collection", body = ErrorBody),
              (status = 413, description = "Too many documents or too large a body or metadata", body = ErrorBody), (status = 422, description = "JSON of the wrong shape", body = ErrorBody)))]
pub async fn add_documents(
    State(state): State<Arc<AppState>>,
    Extension(gate): Extension<WriteGate>,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<AddDocumentsRequest>,
) -> Result<Json<AddDocumentsResponse>, ApiError> {
    let service = state.loaded()?;
    let inputs = request
        .documents
        .into_iter()
        .enumerate()
        .map(|(i, d)| Ok(DocumentInput { id: d.id, text: d.text.unwrap_or_default(), metadata: d.metadata, vector: super::vector_f32(d.vector, &format!("documents[{i}]."))? }))
        .collect::<Result<Vec<_>, ApiError>>()?;
    let prepared = service.prepare_ingest(&name, inputs).await?;
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
    let report = service.write_ingest(&name, prepared).await?;
    Ok(Json(AddDocumentsResponse {
        ids: report.iter().map(|r| r.id.clone()).collect(),
        truncated: report.iter().map(|r| r.truncated).collect(),
        tokens: report.iter().map(|r| r.tokens).collect(),
        passages: report.iter().map(|r| r.passages).collect(),
    }))
}

#[utoipa::path(get, path = "/collections/{name}/documents/{id}", tag = "documents", summary = "A document: text, metadata, passages",
    params(("name" = String, Path), ("id" = String, Path), ("include_vector" = Option<bool>, Query)),
    responses((status = 200, description = "The document", body = DocumentResponse), (status = 404, description = "No such collection or document", body = ErrorBody)))]
pub async fn get_document(
    State(state): State<Arc<AppState>>,
    Path((name, id)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<GetDocumentQuery>,
) -> Result<Json<DocumentResponse>, ApiError> {
    let (document, vectors) = state.loaded()?.get_document_with(&name, &id, query.include_vector).await?;
    let mut vectors = vectors.map(|v| v.into_iter());
    let passages: Vec<PassageInfo> = document
        .passages
        .iter()
        .map(|p| PassageInfo { start: p.span.start, end: p.span.end, vector: vectors.as_mut().and_then(|v| v.next()) })
        .collect();
    let vector = match passages.as_slice() {
        [only] => only.vector.clone(),
        _ => None,
    };
    Ok(Json(DocumentResponse { id: document.id, text: document.text, metadata: document.metadata, passages, vector }))
}

#[utoipa::path(delete, path = "/collections/{name}/documents/{id}", tag = "documents", summary = "Delete a document",
    params(("name" = String, Path), ("id" = String, Path)),
    responses((status = 200, description = "Deleted (1)", body = Deleted), (status = 404, description = "No such collection or document", body = ErrorBody)))]
pub async fn delete_document(
    State(state): State<Arc<AppState>>,
    Extension(gate): Extension<WriteGate>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<Deleted>, ApiError> {
    let service = state.loaded()?;
    service.collection(&name)?;
    gate.commit()?;
    let deleted = service.delete_documents(&name, Some(vec![id.clone()]), None).await?;
    if deleted == 0 {
        return Err(ApiError::not_found("document_not_found", format!("document '{id}' not found")));
    }
    Ok(Json(Deleted { deleted }))
}

#[utoipa::path(post, path = "/collections/{name}/documents/delete", tag = "documents", summary = "Delete documents by id and/or filter", params(("name" = String, Path)),
    request_body = DeleteDocumentsRequest,
    responses((status = 200, description = "How many were deleted", body = Deleted), (status = 400, description = "Neither ids nor a filter, or a bad filter", body = ErrorBody), (status = 404, description = "No such collection", body = ErrorBody)))]
pub async fn delete_documents(
    State(state): State<Arc<AppState>>,
    Extension(gate): Extension<WriteGate>,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<DeleteDocumentsRequest>,
) -> Result<Json<Deleted>, ApiError> {
    let service = state.loaded()?;
    service.collection(&name)?;
    let filter = parse_filter(request.filter.as_ref())?;
    gate.commit()?;
    let deleted = service.delete_documents(&name, request.ids, filter).await?;
    Ok(Json(Deleted { deleted }))
}

const DEFAULT_PAGE: usize = 100;

fn parse_filter(filter: Option<&serde_json::Value>) -> Result<Option<Filter>, ApiError> {
    filter.map(Filter::parse).transpose().map_err(|e| ApiError::new(axum::http::StatusCode::BAD_REQUEST, "invalid_filter", format!("where: {e}")))
}

#[utoipa::path(get, path = "/collections/{name}/documents", tag = "documents", summary = "Page through documents in id order",
    params(("name" = String, Path, description = "Collection name"), ListDocumentsQuery),
    responses((status = 200, description = "One page of documents", body = DocumentPage),
              (status = 400, description = "Bad limit, cursor, filter or include", body = ErrorBody),
              (status = 404, description = "No such collection", body = ErrorBody)))]
pub async fn list_documents(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<ListDocumentsQuery>,
) -> Result<Json<DocumentPage>, ApiError> {
    let service = state.loaded()?;
    let filter = match query.filter.as_deref() {
        Some(json) => {
            let value: serde_json::Value = serde_json::from_str(json)
                .map_err(|e| ApiError::new(axum::http::StatusCode::BAD_REQUEST, "invalid_filter", format!("where is not JSON: {e}")))?;
            parse_filter(Some(&value))?
        }
        None => None,
    };
    let (mut text, mut metadata) = (true, true);
    if let Some(include) = query.include.as_deref() {
        (text, metadata) = (false, false);
        for field in include.split(',') {
            match field {
                "text" => text = true,
                "metadata" => metadata = true,
                other => return Err(ApiError::new(axum::http::StatusCode::BAD_REQUEST, "invalid_include", format!("include: unknown field '{other}' (a comma-separated list of text, metadata)"))),
            }
        }
    }
    let page = service.list_documents(&name, query.cursor.as_deref(), query.limit.unwrap_or(DEFAULT_PAGE), filter, text).await?;
    let documents = page
        .documents
        .into_iter()
        .map(|d| ListedDocument { passages: d.passages.len(), id: d.id, text: text.then_some(d.text), metadata: metadata.then_some(d.metadata) })
        .collect();
    Ok(Json(DocumentPage { documents, next_cursor: page.next_cursor }))
}

#[utoipa::path(post, path = "/collections/{name}/count", tag = "documents", summary = "Count documents, or those a filter matches",
    params(("name" = String, Path, description = "Collection name")),
    request_body = CountRequest,
    responses((status = 200, description = "The count", body = CountResponse),
              (status = 400, description = "Bad filter", body = ErrorBody),
              (status = 404, description = "No such collection", body = ErrorBody)))]
pub async fn count_documents(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<CountRequest>,
) -> Result<Json<CountResponse>, ApiError> {
    let service = state.loaded()?;
    let filter = parse_filter(request.filter.as_ref())?;
    Ok(Json(CountResponse { count: service.count_documents(&name, filter).await? }))
}

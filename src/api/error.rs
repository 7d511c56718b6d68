//! The one place where errors of the lower layers become HTTP statuses.
//! Every error body is `{"error": {"code": "...", "message": "..."}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::embed::EmbedError;
use crate::engine::EngineError;
use crate::model::ModelError;
use crate::service::ServiceError;
use crate::store::StoreError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `collection_not_found`.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self.status {
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::REQUEST_TIMEOUT => {
                tracing::warn!(status = %self.status, code = self.code, message = %self.message, "request refused")
            }
            status if status.is_server_error() => tracing::error!(%status, code = self.code, message = %self.message, "request failed"),
            _ => {}
        }
        let body = ErrorBody { error: ErrorDetail { code: self.code.to_owned(), message: self.message } };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<EngineError> for ApiError {
    fn from(err: EngineError) -> Self {
        let message = err.to_string();
        match err {
            EngineError::InvalidName(_) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_collection_name", message),
            EngineError::CollectionExists(_) => ApiError::new(StatusCode::CONFLICT, "collection_exists", message),
            EngineError::CollectionNotFound(_) => ApiError::not_found("collection_not_found", message),
            EngineError::DimensionMismatch { .. } => ApiError::new(StatusCode::BAD_REQUEST, "dimension_mismatch", message),
            EngineError::InvalidVector(_) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_vector", message),
            EngineError::InvalidId(_) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", message),
            EngineError::InvalidFilter(_) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_filter", message),
            EngineError::InvalidDocument(_) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_document", message),
            EngineError::Lexical(crate::lexical::LexicalError::TooManyTerms(_)) => ApiError::new(StatusCode::BAD_REQUEST, "query_too_large", message),
            EngineError::Lexical(_) => ApiError::internal(message),
            EngineError::Index(crate::index::IndexError::InvalidParams(_)) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_hnsw_params", message),
            EngineError::Index(_) => ApiError::internal(message),
            EngineError::Store(StoreError::CollectionNotFound(_)) => ApiError::not_found("collection_not_found", message),
            EngineError::Store(_) => ApiError::internal(message),
            EngineError::Moved(_) => ApiError::unavailable("collection_switched", message),
            EngineError::SnapshotRunning(_) => ApiError::new(StatusCode::CONFLICT, "snapshot_running", message),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        let message = err.to_string();
        match err {
            ServiceError::Invalid { code, .. } => ApiError::new(StatusCode::BAD_REQUEST, code, message),
            ServiceError::TooLarge(_) => ApiError::too_large(message),
            ServiceError::ModelNotFound { .. } => ApiError::not_found("model_not_found", message),
            ServiceError::DocumentNotFound(_) => ApiError::not_found("document_not_found", message),
            ServiceError::AliasNotFound(_) => ApiError::not_found("alias_not_found", message),
            ServiceError::SnapshotNotFound(_) => ApiError::not_found("snapshot_not_found", message),
            ServiceError::NotReembeddable(_) => ApiError::new(StatusCode::CONFLICT, "not_reembeddable", message),
            ServiceError::JobNotFound(_) => ApiError::not_found("job_not_found", message),
            ServiceError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            ServiceError::AliasIsCollection(_) => ApiError::new(StatusCode::CONFLICT, "alias_is_collection", message),
            ServiceError::ModelNotLoaded { .. } => ApiError::new(StatusCode::CONFLICT, "model_not_loaded", message),
            ServiceError::ModelMismatch(..) => ApiError::new(StatusCode::CONFLICT, "model_mismatch", message),
            ServiceError::NoModel => ApiError::unavailable("no_model", message),
            ServiceError::NoModelBound(..) => ApiError::new(StatusCode::BAD_REQUEST, "no_model", message),
            ServiceError::Engine(e) => e.into(),
            ServiceError::Embed(e) => e.into(),
            ServiceError::Worker(_) => ApiError::internal(message),
        }
    }
}

impl From<&EmbedError> for ApiError {
    fn from(err: &EmbedError) -> Self {
        let message = err.to_string();
        match err {
            EmbedError::Model(ModelError::UnsupportedDims { .. }) => ApiError::new(StatusCode::BAD_REQUEST, "unsupported_dimensions", message),
            EmbedError::InvalidInput(_) | EmbedError::Tokenize(_) => ApiError::bad_request(message),
            EmbedError::WorkerGone | EmbedError::BackendDown | EmbedError::BackendPanicked(_) => ApiError::unavailable("model_unavailable", message),
            _ => ApiError::internal(message),
        }
    }
}

impl From<std::sync::Arc<EmbedError>> for ApiError {
    fn from(err: std::sync::Arc<EmbedError>) -> Self {
        ApiError::from(err.as_ref())
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(err: tokio::task::JoinError) -> Self {
        ApiError::internal(format!("worker task failed: {err}"))
    }
}

//! Qdrant's envelope, `{"result", "status": "ok", "time"}`, and its error shape,
//! `{"status": {"error": "..."}, "time"}`, with the statuses Qdrant answers.

use std::time::Instant;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::api::error::ApiError;
use crate::engine::EngineError;
use crate::service::ServiceError;

/// When the request arrived (set by `super::start_clock`), for `time`.
#[derive(Debug, Clone, Copy)]
pub struct Started(pub Instant);

impl<S: Send + Sync> FromRequestParts<S> for Started {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Started>().copied().unwrap_or(Started(Instant::now())))
    }
}

impl Started {
    pub fn ok(self, result: Value) -> Response {
        axum::Json(json!({"result": result, "status": "ok", "time": self.0.elapsed().as_secs_f64()})).into_response()
    }
}

#[derive(Debug, Clone)]
pub struct QdrantError {
    pub status: StatusCode,
    pub message: String,
}

impl QdrantError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        QdrantError { status: StatusCode::BAD_REQUEST, message: format!("Bad request: {}", message.into()) }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        QdrantError { status: StatusCode::NOT_FOUND, message: format!("Not found: {}", message.into()) }
    }

    pub fn unsupported(what: &str) -> Self {
        Self::bad_request(format!("{what} is not supported by akidb's Qdrant-compatible API"))
    }

    pub fn collection_not_found(name: &str) -> Self {
        Self::not_found(format!("Collection `{name}` doesn't exist!"))
    }
}

impl IntoResponse for QdrantError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(json!({"status": {"error": self.message}, "time": 0.0}))).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<ApiError> for QdrantError {
    fn from(err: ApiError) -> Self {
        let message = match err.status {
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => format!("Bad request: {}", err.message),
            StatusCode::NOT_FOUND => format!("Not found: {}", err.message),
            _ => err.message,
        };
        // Qdrant answers 400 where akidb's own API says 422.
        let status = if err.status == StatusCode::UNPROCESSABLE_ENTITY { StatusCode::BAD_REQUEST } else { err.status };
        QdrantError { status, message }
    }
}

impl From<ServiceError> for QdrantError {
    fn from(err: ServiceError) -> Self {
        if let ServiceError::Engine(EngineError::CollectionNotFound(name)) = &err {
            return QdrantError::collection_not_found(name);
        }
        ApiError::from(err).into()
    }
}

/// A JSON body; a malformed one is Qdrant's 400 "Format error in JSON body".
pub struct Body(pub Value);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = QdrantError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(bytes) => bytes,
            Err(rejection) => return Err(QdrantError { status: rejection.status(), message: format!("Payload error: {}", rejection.body_text()) }),
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body(json!({})));
        }
        serde_json::from_slice(&bytes).map(Body).map_err(|e| QdrantError::bad_request(format!("Format error in JSON body: {e}")))
    }
}

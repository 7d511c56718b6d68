//! Route handlers, one file per resource.

pub mod aliases;
pub mod collections;
pub mod documents;
pub mod embeddings;
pub mod jobs;
pub mod page;
pub mod search;
pub mod snapshots;
pub mod system;

use axum::http::StatusCode;

use crate::api::error::ApiError;
use crate::engine::MAX_COMPONENT;

/// A vector from a request body, read as f64 so that the component bound is checked on the value
/// sent, not on its f32 rounding (1e15 + 1 rounds below 1e15).
pub(crate) fn vector_f32(vector: Option<Vec<f64>>, at: &str) -> Result<Option<Vec<f32>>, ApiError> {
    let Some(vector) = vector else { return Ok(None) };
    // The bound as written (1e15), not its f32 rounding.
    let bound: f64 = format!("{MAX_COMPONENT:e}").parse().unwrap_or(1e15);
    if vector.iter().any(|v| !v.is_finite()) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_vector", format!("{at}vector contains NaN or infinity")));
    }
    if vector.iter().any(|v| v.abs() > bound) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_vector", format!("{at}vector components must be within ±{bound:e}")));
    }
    Ok(Some(vector.into_iter().map(|v| v as f32).collect()))
}

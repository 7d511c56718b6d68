//! Shared server state: limits, auth, and what is loaded once the server is ready.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::Semaphore;

use super::error::ApiError;
use crate::embed::{EmbeddingProvider, OnnxProvider};
use crate::engine::Engine;

#[derive(Debug, Clone)]
pub struct Limits {
    /// Most documents in one add request.
    pub max_batch_documents: usize,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Requests served at once; more get 503 with Retry-After.
    pub max_in_flight: usize,
    pub request_timeout: Duration,
    /// Largest metadata object per document, serialized.
    pub max_metadata_bytes: usize,
    pub max_k: usize,
    /// Most searches in one batch request, and most inputs in one embeddings request.
    pub max_batch_queries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_batch_documents: 1024,
            max_body_bytes: 32 * 1024 * 1024,
            max_in_flight: 512,
            request_timeout: Duration::from_secs(120),
            max_metadata_bytes: 64 * 1024,
            max_k: 1000,
            max_batch_queries: 2048,
        }
    }
}

/// Models and collections, available once loading has finished.
pub struct Loaded {
    pub engine: Arc<Engine>,
    /// Loaded models; the first is the default.
    pub models: Vec<Arc<OnnxProvider>>,
}

impl Loaded {
    pub fn model(&self, name: &str) -> Result<&Arc<OnnxProvider>, ApiError> {
        self.models.iter().find(|m| m.info().name == name).ok_or_else(|| {
            let loaded: Vec<&str> = self.models.iter().map(|m| m.info().name.as_str()).collect();
            ApiError::not_found("model_not_found", format!("model '{name}' is not loaded by this server; loaded: {loaded:?}"))
        })
    }

    pub fn default_model(&self) -> Result<&Arc<OnnxProvider>, ApiError> {
        self.models.first().ok_or_else(|| ApiError::unavailable("no_model", "no model is loaded"))
    }
}

pub struct AppState {
    pub limits: Limits,
    pub api_key: Option<String>,
    pub prometheus: Option<PrometheusHandle>,
    pub in_flight: Arc<Semaphore>,
    loaded: OnceLock<Loaded>,
}

impl AppState {
    pub fn new(limits: Limits, api_key: Option<String>, prometheus: Option<PrometheusHandle>) -> Self {
        let in_flight = Arc::new(Semaphore::new(limits.max_in_flight));
        AppState { limits, api_key, prometheus, in_flight, loaded: OnceLock::new() }
    }

    /// Marks the server ready. Called once, when models and indexes are loaded.
    pub fn set_loaded(&self, loaded: Loaded) {
        let _ = self.loaded.set(loaded);
    }

    pub fn loaded(&self) -> Result<&Loaded, ApiError> {
        self.loaded.get().ok_or_else(|| ApiError::unavailable("not_ready", "akidb is still loading models and indexes"))
    }

    /// Loaded, and every model has a backend running (not while one is replaced after a panic).
    pub fn is_ready(&self) -> bool {
        self.loaded.get().is_some_and(|loaded| loaded.models.iter().all(|m| m.healthy()))
    }
}

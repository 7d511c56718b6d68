//! Shared server state: limits, auth, and what is loaded once the server is ready.

use std::sync::{Arc, OnceLock};

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::Semaphore;

use super::error::ApiError;

pub use crate::service::Limits;

/// What is loaded once the server is ready: the service layer over the engine and the models.
pub type Loaded = crate::service::Service;

pub struct AppState {
    pub limits: Limits,
    pub api_key: Option<String>,
    /// Host names (without port) a request may address when there is no API key (DNS
    /// rebinding); `None`: any. See `middleware::check_host`.
    pub allowed_hosts: Option<Vec<String>>,
    pub prometheus: Option<PrometheusHandle>,
    pub in_flight: Arc<Semaphore>,
    loaded: OnceLock<Loaded>,
    /// Unix seconds when the models were loaded (`created` in `GET /v1/models`).
    loaded_at: OnceLock<u64>,
    /// The OpenAPI document, once models are loaded (it states their widths).
    openapi: OnceLock<String>,
}

impl AppState {
    pub fn new(limits: Limits, api_key: Option<String>, prometheus: Option<PrometheusHandle>) -> Self {
        let in_flight = Arc::new(Semaphore::new(limits.max_in_flight));
        AppState {
            limits,
            api_key,
            allowed_hosts: None,
            prometheus,
            in_flight,
            loaded: OnceLock::new(),
            loaded_at: OnceLock::new(),
            openapi: OnceLock::new(),
        }
    }

    /// Answers only requests addressed to loopback names, `bound` (the address the server
    /// listens on) and `extra` names, unless an API key is set (a key already keeps pages of
    /// other origins out). `*` in `extra` allows any host.
    pub fn with_allowed_hosts(mut self, bound: &str, extra: &[String]) -> Self {
        if self.api_key.is_some() || extra.iter().any(|h| h == "*") {
            self.allowed_hosts = None;
            return self;
        }
        let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"].into_iter().map(str::to_owned).collect();
        hosts.push(bound.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase());
        hosts.extend(extra.iter().map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()));
        self.allowed_hosts = Some(hosts);
        self
    }

    /// Marks the server ready. Called once, when models and indexes are loaded.
    pub fn set_loaded(&self, loaded: Loaded) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let _ = self.loaded_at.set(now);
        let _ = self.loaded.set(loaded);
    }

    /// The OpenAPI document: built once after loading; rebuilt per request before.
    pub fn openapi(&self, build: fn(&AppState) -> String) -> String {
        match self.openapi.get() {
            Some(doc) => doc.clone(),
            None if self.loaded.get().is_some() => self.openapi.get_or_init(|| build(self)).clone(),
            None => build(self),
        }
    }

    /// The loaded models, the default first (none while loading).
    pub fn models(&self) -> &[std::sync::Arc<crate::embed::OnnxProvider>] {
        self.loaded.get().map_or(&[], |loaded| loaded.models.as_slice())
    }

    pub fn loaded_at(&self) -> u64 {
        self.loaded_at.get().copied().unwrap_or(0)
    }

    pub fn loaded(&self) -> Result<&Loaded, ApiError> {
        self.loaded.get().ok_or_else(|| ApiError::unavailable("not_ready", "akidb is still loading models and indexes"))
    }

    /// Loaded, and every model has a backend running (not while one is replaced after a panic).
    pub fn is_ready(&self) -> bool {
        self.loaded.get().is_some_and(|loaded| loaded.models.iter().all(|m| m.healthy()))
    }
}

//! Request middleware: API key, load shedding with a timeout, request metrics.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::state::AppState;

/// Probes and the page (static; it asks for the key itself): open without credentials, never shed.
const OPEN_ROUTES: [&str; 3] = ["/", "/health", "/ready"];

/// Refuses requests whose `Host` is not one the server answers to (see
/// `AppState::with_allowed_hosts`): a web page whose name is rebound to 127.0.0.1 sends its own
/// name as the Host, so without a key it could otherwise read every document.
pub async fn check_host(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Some(allowed) = state.allowed_hosts.as_deref() else { return next.run(request).await };
    // Probes carry no data, and orchestrators address them by the pod's IP.
    if ["/health", "/ready"].contains(&request.uri().path()) {
        return next.run(request).await;
    }
    // No Host header: not a browser (every browser sends one), so not a rebinding page.
    let Some(host) = request.headers().get(header::HOST) else { return next.run(request).await };
    let name = host.to_str().map(host_name).unwrap_or_default();
    if allowed.iter().any(|a| a == &name || (a == "localhost" && name.ends_with(".localhost"))) {
        return next.run(request).await;
    }
    let shown: String = name.chars().take(100).collect();
    ApiError::new(
        StatusCode::FORBIDDEN,
        "host_not_allowed",
        format!("requests for host '{shown}' are refused: without an API key akidb answers only loopback names and the address it listens on; add names with --allowed-hosts (AKIDB_ALLOWED_HOSTS) or set --api-key"),
    )
    .into_response()
}

/// The host name of a `Host` header, lowercased, without its port (`[::1]:8080` → `::1`).
fn host_name(header: &str) -> String {
    let header = header.trim();
    let name = match header.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => header.rsplit_once(':').filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit())).map_or(header, |(name, _)| name),
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

pub async fn require_api_key(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Some(expected) = state.api_key.as_deref() else { return next.run(request).await };
    if OPEN_ROUTES.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(key) if constant_time_eq(key.as_bytes(), expected.as_bytes()) => next.run(request).await,
        Some(_) => ApiError::new(StatusCode::UNAUTHORIZED, "invalid_api_key", "the API key is not valid").into_response(),
        None => ApiError::new(StatusCode::UNAUTHORIZED, "missing_api_key", "send the API key as 'Authorization: Bearer <key>'").into_response(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_names_lose_their_port_and_case() {
        assert_eq!(super::host_name("LOCALHOST:8080"), "localhost");
        assert_eq!(super::host_name("[::1]:6333"), "::1");
        assert_eq!(super::host_name("127.0.0.1"), "127.0.0.1");
        assert_eq!(super::host_name("evil.example."), "evil.example");
    }
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Decides, once, whether a request's write commits or its timeout wins. A write that has begun
/// committing is never cut off: the timeout waits for it and the client gets its real answer. A
/// 408 therefore always means that nothing was written, so a retry is safe even for documents
/// whose ids the server generates.
#[derive(Debug, Clone, Default)]
pub struct WriteGate(Arc<AtomicU8>);

const OPEN: u8 = 0;
const COMMITTED: u8 = 1;
const TIMED_OUT: u8 = 2;

impl WriteGate {
    /// Claims the request for its write; `Err` (a 408 to return as is) once the timeout has won.
    pub fn commit(&self) -> Result<(), ApiError> {
        match self.0.compare_exchange(OPEN, COMMITTED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) | Err(COMMITTED) => Ok(()),
            Err(_) => Err(timed_out_error()),
        }
    }

    fn time_out(&self) -> bool {
        matches!(self.0.compare_exchange(OPEN, TIMED_OUT, Ordering::AcqRel, Ordering::Acquire), Ok(_) | Err(TIMED_OUT))
    }
}

fn timed_out_error() -> ApiError {
    ApiError::new(StatusCode::REQUEST_TIMEOUT, "timeout", "the request timed out before anything was written; it is safe to retry")
}

/// Refuses work beyond `max_in_flight` at once (503 + Retry-After) instead of queueing without
/// bound, and stops requests that run past the timeout unless their write has begun.
pub async fn shed_and_time_out(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    let gate = WriteGate::default();
    request.extensions_mut().insert(gate.clone());
    if OPEN_ROUTES.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let Ok(_permit) = state.in_flight.clone().try_acquire_owned() else {
        return ApiError::unavailable("overloaded", "too many requests in flight; retry shortly").into_response();
    };
    let response = next.run(request);
    tokio::pin!(response);
    tokio::select! {
        response = &mut response => response,
        () = tokio::time::sleep(state.limits.request_timeout) => {
            if gate.time_out() {
                tracing::warn!(timeout = ?state.limits.request_timeout, "request timed out before writing anything");
                timed_out_error().into_response()
            } else {
                // Committed to a write: its outcome is the answer, however long it takes.
                response.await
            }
        }
    }
}

pub async fn record_metrics(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("route", route), ("method", method), ("status", status)];
    metrics::counter!("akidb_http_requests_total", &labels).increment(1);
    metrics::histogram!("akidb_http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    response
}

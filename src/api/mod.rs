//! The REST API: axum router, handlers, errors, limits, auth, metrics, OpenAPI.

pub mod error;
mod extract;
mod handlers;
pub mod metrics;
mod middleware;
mod serde_strict;
mod snapshot_io;
pub mod openapi;
pub mod qdrant;
pub mod state;
pub mod types;

use std::any::Any;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use error::ApiError;
use handlers::{aliases, collections, documents, embeddings, jobs, page, search, snapshots, system};
pub use middleware::WriteGate;
pub use state::{AppState, Limits, Loaded};

pub fn router(state: Arc<AppState>) -> Router {
    with_layers(routes().0, state)
}

/// Every route, and the OpenAPI document built from the same list.
pub(crate) fn routes() -> (Router<Arc<AppState>>, utoipa::openapi::OpenApi) {
    use utoipa::OpenApi as _;
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(page::page))
        .routes(routes!(system::health))
        .routes(routes!(system::ready))
        .routes(routes!(system::metrics))
        .routes(routes!(system::openapi))
        .routes(routes!(embeddings::create_embeddings))
        .routes(routes!(embeddings::list_models))
        .routes(routes!(collections::create_collection, collections::list_collections))
        .routes(routes!(collections::get_collection, collections::delete_collection))
        .routes(routes!(collections::rebuild_collection))
        .routes(routes!(aliases::list_aliases))
        .routes(routes!(aliases::put_alias, aliases::delete_alias))
        .routes(routes!(documents::add_documents, documents::list_documents))
        .routes(routes!(documents::count_documents))
        .routes(routes!(documents::delete_documents))
        .routes(routes!(documents::get_document, documents::delete_document))
        .routes(routes!(search::search))
        .routes(routes!(search::search_batch))
        .routes(routes!(snapshots::create_snapshot, snapshots::list_snapshots))
        .routes(routes!(snapshots::download_snapshot, snapshots::delete_snapshot))
        .routes(without_body_limit(routes!(snapshots::upload_snapshot)))
        .routes(routes!(jobs::start_reembed))
        .routes(routes!(jobs::list_jobs))
        .routes(routes!(jobs::get_job, jobs::delete_job))
        .split_for_parts()
}

/// A route whose body is streamed to disk under its own limit (snapshot uploads).
fn without_body_limit<S: Clone + Send + Sync + 'static>(route: utoipa_axum::router::UtoipaMethodRouter<S>) -> utoipa_axum::router::UtoipaMethodRouter<S> {
    let (schemas, paths, method_router) = route;
    (schemas, paths, method_router.layer(DefaultBodyLimit::disable()))
}

/// Fallbacks, load shedding with the timeout, auth, body limit, panic recovery and, outermost,
/// metrics around `routes`: every answer is counted, 401, 408, 503 and 500 included.
fn with_layers(routes: Router<Arc<AppState>>, state: Arc<AppState>) -> Router {
    let max_body = state.limits.max_body_bytes;
    routes
        .fallback(|method: axum::http::Method, uri: axum::http::Uri| async move {
            ApiError::not_found("route_not_found", format!("no route {method} {} (see /openapi.json)", uri.path()))
        })
        .method_not_allowed_fallback(|method: axum::http::Method, uri: axum::http::Uri| async move {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("{method} is not allowed on {}", uri.path()))
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::shed_and_time_out))
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::require_api_key))
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::check_host))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(axum::middleware::from_fn(middleware::record_metrics))
        .with_state(state)
}

/// A panicking handler answers a JSON 500; the server keeps serving.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned())).unwrap_or_default();
    tracing::error!(%detail, "handler panicked");
    ApiError::internal("internal error (a handler panicked; the server is still running)").into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use axum::routing::get;

    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_answers_json_500_and_the_router_keeps_serving() {
        let state = Arc::new(AppState::new(Limits::default(), None, None));
        let panicking: Router<Arc<AppState>> = Router::new().route("/boom", get(|| async {
            panic!("handler bug");
            #[allow(unreachable_code)]
            ""
        }));
        let app = with_layers(panicking.merge(routes().0), state);
        for _ in 0..2 {
            let response = app.clone().oneshot(Request::get("/boom").body(Body::empty()).unwrap()).await.unwrap();
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
            let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(json["error"]["code"], "internal_error");
        }
        let health = app.oneshot(Request::get("/health").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(health.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn routes_other_than_probes_answer_503_until_loaded() {
        let state = Arc::new(AppState::new(Limits::default(), None, None));
        let app = router(state);
        let ready = app.clone().oneshot(Request::get("/ready").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
        let list = app.oneshot(Request::get("/collections").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(list.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(list.headers().get("retry-after").map(|v| v.as_bytes()), Some(&b"1"[..]));
    }
}

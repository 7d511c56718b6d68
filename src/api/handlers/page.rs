//! The built-in search page at `/`: one HTML file with its CSS and script inline, compiled into
//! the binary (no CDN, no build step). It calls the same REST API as any client.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const PAGE: &str = include_str!("../page/index.html");

#[utoipa::path(get, path = "/", tag = "system", summary = "The built-in search page",
    description = "Open in a browser. Needs no API key itself; with --api-key it asks for the key once per browser session.",
    security(()),
    responses((status = 200, description = "The page (HTML with its script and styles inline)", body = String, content_type = "text/html")))]
pub async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            // Its script and styles are inline and it calls only this origin; no page may frame it.
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        PAGE,
    )
        .into_response()
}

const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

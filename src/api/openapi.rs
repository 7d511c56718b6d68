//! The OpenAPI document, generated from the handlers' annotations.

use std::sync::OnceLock;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::{ErrorBody, ErrorDetail};
use super::types::*;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("api_key", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "akidb", description = "Embedded vector search: in-process embeddings, sled storage, HNSW. \
        With --api-key, every route but /health and /ready needs 'Authorization: Bearer <key>'."),
    components(schemas(
        ErrorBody, ErrorDetail, HealthResponse, ModelStatus, ReadyResponse, EmbeddingsRequest, EmbeddingsResponse, EmbeddingObject, Usage,
        MetricName, HnswConfig, CreateCollectionRequest, CollectionInfo, HnswInfo, IndexInfo, CollectionList, Deleted, CollectionDeleted,
        DocumentInput, AddDocumentsRequest, AddDocumentsResponse, DocumentResponse, DeleteDocumentsRequest,
        DocumentPage, ListedDocument, CountRequest, CountResponse, ModelList, ModelObject,
        Include, SearchRequest, BatchSearchRequest, SearchHit, SearchResponse, BatchSearchResponse,
    )),
    modifiers(&BearerAuth),
    security(("api_key" = [])),
)]
pub struct ApiDoc;

pub fn openapi_json() -> String {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| super::routes().1.to_pretty_json().unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))).clone()
}

//! The OpenAPI document. Its paths and types come from the router (`api::routes`), so every
//! route is documented and every documented path is routed. Each server then states its own
//! facts: the key requirement only when it has a key, batch limits from its flags, and vector
//! widths, chunk sizes and `dimensions` from the models it loaded. Constraints the derive cannot
//! express (the filter grammar, "query or vector", responses every route can give) are added here.

use serde_json::{json, Value};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::error::{ErrorBody, ErrorDetail};
use super::state::Limits;
use super::types::*;

/// The document's frame: the types it names. Paths are added by the router.
#[derive(utoipa::OpenApi)]
#[openapi(components(schemas(
    ErrorBody, ErrorDetail, HealthResponse, ModelStatus, ReadyResponse, EmbeddingsRequest, EmbeddingsResponse, EmbeddingObject, Usage,
    ModelList, ModelObject, SelfTestObject, MetricName, HnswConfig, ChunkingConfig, CreateCollectionRequest, CollectionInfo, HnswInfo, IndexInfo,
    CollectionList, Deleted, CollectionDeleted, DocumentInput, AddDocumentsRequest, AddDocumentsResponse, DocumentResponse,
    DeleteDocumentsRequest, DocumentPage, ListedDocument, CountRequest, CountResponse, Include, SearchRequest, BatchSearchRequest,
    SearchHit, SearchResponse, BatchSearchResponse,
)))]
pub struct ApiDoc;

/// What a running server knows about itself.
pub struct ServerFacts<'a> {
    pub api_key: bool,
    pub limits: &'a Limits,
    /// Loaded models (empty while loading).
    pub models: Vec<ModelFacts>,
}

pub struct ModelFacts {
    pub name: String,
    pub dims: usize,
    /// Longest passage: the window less the special tokens.
    pub max_passage_tokens: usize,
    /// Widths `dimensions` may ask for.
    pub widths: Vec<usize>,
}

const ERROR: &str = "#/components/schemas/ErrorBody";

pub fn document(facts: &ServerFacts) -> String {
    let (_, mut openapi) = super::routes();
    if facts.api_key {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("api_key", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
        openapi.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new("api_key", Vec::<String>::new())]);
    }
    let mut doc = serde_json::to_value(&openapi).unwrap_or_default();
    doc["info"]["title"] = json!("akidb");
    doc["info"]["description"] = json!(if facts.api_key {
        "Embedded vector search: in-process embeddings, sled storage, HNSW and BM25. This server needs \
         'Authorization: Bearer <key>' on every route but /, /health and /ready."
    } else {
        "Embedded vector search: in-process embeddings, sled storage, HNSW and BM25. This server runs without an API key."
    });
    schemas(&mut doc, facts);
    responses(&mut doc, facts.api_key);
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// Sets the member a JSON pointer names (its parent object must exist).
fn set(doc: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", pointer));
    match doc.pointer_mut(parent).and_then(Value::as_object_mut) {
        Some(object) => {
            object.insert(key.replace("~1", "/").replace("~0", "~"), value);
        }
        // A renamed type or field: the OpenAPI test fails on a debug build rather than a stale
        // constraint being served.
        None => debug_assert!(false, "no {parent} in the OpenAPI document"),
    }
}

fn schemas(doc: &mut Value, facts: &ServerFacts) {
    let scalar = json!({"type": ["string", "number", "boolean", "null"]});
    let ordered = json!({"type": ["string", "number"]});
    let scalars = json!({"type": "array", "items": scalar});
    let filter = json!({
        "type": "object",
        "description": "A metadata filter (Chroma's `where`): `{\"field\": value}` is equality; `{\"field\": {\"$op\": operand}}` \
            with one of $eq $ne $gt $gte $lt $lte $in $nin; `$and` / `$or` take non-empty arrays of filters; several keys are ANDed.",
        "propertyNames": {"pattern": "^(\\$and|\\$or|[^$][\\s\\S]*)?$"},
        "properties": {
            "$and": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/WhereFilter"}},
            "$or": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/WhereFilter"}},
        },
        "additionalProperties": {"anyOf": [scalar, {
            "type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": false,
            "properties": {"$eq": scalar, "$ne": scalar, "$gt": ordered, "$gte": ordered, "$lt": ordered, "$lte": ordered, "$in": scalars, "$nin": scalars},
        }]},
    });
    set(doc, "/components/schemas/WhereFilter", filter);
    let nullable_filter = json!({"oneOf": [{"$ref": "#/components/schemas/WhereFilter"}, {"type": "null"}]});
    for schema in ["SearchRequest", "CountRequest"] {
        set(doc, &format!("/components/schemas/{schema}/properties/where"), nullable_filter.clone());
    }
    // A delete refuses `{}`, which would match everything.
    set(doc, "/components/schemas/DeleteDocumentsRequest/properties/where",
        json!({"oneOf": [{"allOf": [{"$ref": "#/components/schemas/WhereFilter"}, {"minProperties": 1}]}, {"type": "null"}]}));

    // Vectors: bounded components and, for cosine, at least one that is not (nearly) zero. Their
    // width is the collection's (a model's, or the `dims` it was created with): state a schema
    // cannot carry, so a wrong width is a 400 that names both widths.
    // No maxItems: the bound that applies is the collection's width (MAX_DIMS bounds `dims` at
    // creation), and a schema bound of 16,384 items makes generators build arrays that long.
    let vector = |what: &str| json!({"type": "array", "minItems": 1,
        "items": {"type": "number", "minimum": -1e15, "maximum": 1e15},
        "description": format!("{what} of the collection's width (cosine collections: not all zeros)."),
        "contains": {"anyOf": [{"type": "number", "minimum": 1e-18}, {"type": "number", "maximum": -1e-18}]}});
    set(doc, "/components/schemas/SearchRequest/properties/vector", json!({"oneOf": [vector("A query vector"), {"type": "null"}]}));
    set(doc, "/components/schemas/DocumentInput/properties/vector", json!({"oneOf": [vector("The document's vector"), {"type": "null"}]}));
    // A document has text, a vector, or both.
    if let Some(input) = doc.pointer_mut("/components/schemas/DocumentInput").and_then(Value::as_object_mut) {
        input.insert("anyOf".into(), json!([
            {"required": ["text"], "properties": {"text": {"type": "string"}}},
            {"required": ["vector"], "properties": {"vector": {"type": "array"}}},
        ]));
    }
    // A collection is bound to a model (dims absent, or the model's), or takes vectors (dims
    // given, no model, no chunking).
    let mut model_dims: Vec<Value> = facts.models.iter().map(|m| json!(m.dims)).collect();
    model_dims.push(Value::Null);
    if let Some(create) = doc.pointer_mut("/components/schemas/CreateCollectionRequest").and_then(Value::as_object_mut) {
        create.insert("anyOf".into(), json!([
            {"properties": {"dims": {"type": "null"}}},
            {"required": ["model"], "properties": {"model": {"type": "string"}, "dims": {"enum": model_dims}}},
            {"required": ["dims"], "properties": {"dims": {"type": "integer"}, "model": {"type": "null"}, "chunking": {"type": "null"}}},
        ]));
    }
    // Exactly one of query and vector; a vector searches in dense mode only.
    let search = doc.pointer_mut("/components/schemas/SearchRequest").and_then(Value::as_object_mut);
    if let Some(search) = search {
        search.insert("anyOf".into(), json!([
            {"required": ["query"], "properties": {"query": {"type": "string"}, "vector": {"type": "null"}}},
            {"required": ["vector"], "properties": {"vector": {"type": "array"}, "query": {"type": "null"}, "mode": {"enum": ["dense", null]}}},
        ]));
    }
    if let Some(delete) = doc.pointer_mut("/components/schemas/DeleteDocumentsRequest").and_then(Value::as_object_mut) {
        delete.insert("anyOf".into(), json!([
            {"required": ["ids"], "properties": {"ids": {"type": "array"}}},
            {"required": ["where"], "properties": {"where": {"type": "object"}}},
        ]));
    }

    if !facts.models.is_empty() {
        let names: Vec<Value> = facts.models.iter().map(|m| json!(m.name)).collect();
        set(doc, "/components/schemas/EmbeddingsRequest/properties/model", json!({"enum": names, "description": "A model this server loaded."}));
        let mut nullable = names.clone();
        nullable.push(Value::Null);
        set(doc, "/components/schemas/CreateCollectionRequest/properties/model",
            json!({"enum": nullable, "description": "A model this server loaded; default: its default model."}));
    }
    let limits = facts.limits;
    set(doc, "/components/schemas/AddDocumentsRequest/properties/documents/maxItems", json!(limits.max_batch_documents));
    set(doc, "/components/schemas/BatchSearchRequest/properties/searches/maxItems", json!(limits.max_batch_queries));
    if let Some(max) = facts.models.iter().map(|m| m.max_passage_tokens).max() {
        set(doc, "/components/schemas/ChunkingConfig/properties/max_tokens/maximum", json!(max));
        set(doc, "/components/schemas/ChunkingConfig/properties/overlap_tokens/maximum", json!(max));
    }

    let text = json!({"type": "string", "minLength": 1});
    set(doc, "/components/schemas/EmbeddingsRequest/properties/input", json!({
        "description": "A string or an array of strings (not empty). Token arrays are not supported.",
        "oneOf": [text, {"type": "array", "minItems": 1, "maxItems": limits.max_batch_queries, "items": text}],
    }));
    set(doc, "/components/schemas/EmbeddingObject/properties/embedding", json!({
        "description": "Floats, or with encoding_format base64 a base64 string of little-endian float32.",
        "oneOf": [{"type": "array", "items": {"type": "number"}}, {"type": "string"}],
    }));
    set(doc, "/components/schemas/EmbeddingsRequest/properties/encoding_format", json!({"enum": ["float", "base64", null]}));
    let mut widths: Vec<usize> = facts.models.iter().flat_map(|m| m.widths.iter().copied()).collect();
    widths.sort_unstable();
    widths.dedup();
    if !widths.is_empty() {
        let mut allowed: Vec<Value> = widths.into_iter().map(|w| json!(w)).collect();
        allowed.push(Value::Null);
        set(doc, "/components/schemas/EmbeddingsRequest/properties/dimensions", json!({"enum": allowed, "description": "Matryoshka width: one the model allows."}));
    }

    // A JSON filter in a query string (GET .../documents?where=...).
    let Some(parameters) = doc.pointer_mut("/paths/~1collections~1{name}~1documents/get/parameters").and_then(Value::as_array_mut) else { return };
    for parameter in parameters.iter_mut().filter(|p| p["name"] == "where") {
        let description = parameter["description"].clone();
        *parameter = json!({"name": "where", "in": "query", "required": false, "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/WhereFilter"}}}});
    }
}

/// Answers every operation can give besides its own: refused while loading or overloaded (503),
/// internal errors (500), a missing key (401) on servers with one; for routes with a body,
/// malformed JSON (400), a body over the limit (413), a wrong content type (415), a wrong shape
/// (422); for routes that do work, the request timeout (408).
fn responses(doc: &mut Value, api_key: bool) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for (path, operations) in paths.iter_mut() {
        let open = matches!(path.as_str(), "/" | "/health" | "/ready");
        let Some(operations) = operations.as_object_mut() else { continue };
        for operation in operations.values_mut() {
            let with_body = operation.get("requestBody").is_some();
            let with_query = operation["parameters"].as_array().is_some_and(|p| p.iter().any(|p| p["in"] == "query"));
            if with_body {
                // Documented as optional where every field is: an empty body is valid JSON `{}`
                // only when sent; say that a body is expected.
                operation["requestBody"]["required"] = json!(true);
            }
            let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else { continue };
            let mut add = |status: &str, description: &str| {
                let entry = responses.entry(status.to_owned()).or_insert_with(|| json!({}));
                if entry.get("description").is_none_or(|d| d.as_str().is_none_or(str::is_empty)) {
                    entry["description"] = json!(description);
                }
                if status != "200" && status != "201" && entry.get("content").is_none() {
                    entry["content"] = json!({"application/json": {"schema": {"$ref": ERROR}}});
                }
            };
            if !open {
                add("503", "Still loading, a model is restarting, or too many requests in flight; retry after Retry-After seconds");
                add("500", "Internal error; the server keeps serving");
                add("408", "Timed out before anything was written; safe to retry");
                if api_key {
                    add("401", "Missing or wrong API key");
                }
            }
            if with_body {
                add("400", "Malformed JSON or an invalid request");
                add("413", "Body or batch over the server's limits");
                add("415", "Content-Type is not application/json");
                add("422", "JSON of the wrong shape (a missing field, a wrong type)");
            }
            if with_query {
                add("400", "An invalid query parameter");
            }
            for (status, response) in responses.iter_mut() {
                if response.get("description").is_none_or(|d| d.as_str().is_none_or(str::is_empty)) {
                    response["description"] = json!(match status.as_str() {
                        "200" | "201" => "Success",
                        "400" => "Invalid request",
                        "404" => "Not found (the message names what)",
                        "409" => "Conflicts with the current state",
                        "413" => "Over the server's limits",
                        "422" => "JSON of the wrong shape",
                        _ => "See the error body",
                    });
                }
            }
        }
    }
}

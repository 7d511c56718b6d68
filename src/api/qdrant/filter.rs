//! Qdrant's filter JSON → the engine's `Clause`, with Qdrant's point ids and this collection's
//! vector names (the language itself: `engine::condition::parse_filter`).

use serde_json::Value;

use crate::engine::condition::{parse_filter, Dialect};
use crate::engine::Clause;
use crate::service::points::{PointKey, View};

pub fn parse(value: &Value, view: &View) -> Result<Option<Clause>, String> {
    if value.is_null() {
        return Ok(None);
    }
    let id = |v: &Value| PointKey::from_json(v).map(PointKey::document_id);
    // Every point carries its dense vector; sparse names are the BM25 index over its text.
    let has_vector = |name: &str| name == view.vector.as_deref().unwrap_or("") || view.sparse.iter().any(|s| s == name);
    parse_filter(value, &Dialect { id: &id, has_vector: &has_vector }).map(Some)
}

//! Request bodies of the Qdrant API → service inputs: vectors (dense, `Document`s for server-side
//! embedding, sparse names answered by BM25), payload selectors, point selectors.

use serde_json::{Map, Value};

use super::filter;
use super::reply::QdrantError;
use crate::service::points::{PointKey, Selector, View};
use crate::service::DocumentInput;

/// What a point or a query gives for the collection's vectors.
#[derive(Debug, Clone, Default)]
pub struct Given {
    pub dense: Option<Vec<f32>>,
    /// A `Document` on the dense vector: (text, model).
    pub dense_text: Option<(String, Option<String>)>,
    /// A `Document` on a sparse vector (BM25 over the text).
    pub lexical_text: Option<String>,
}

pub fn bad(message: impl Into<String>) -> QdrantError {
    QdrantError::bad_request(message)
}

/// Models that mean BM25 on a sparse vector.
fn is_bm25(model: &str) -> bool {
    matches!(model.to_ascii_lowercase().as_str(), "qdrant/bm25" | "bm25")
}

fn document(value: &Map<String, Value>) -> Result<(String, Option<String>), QdrantError> {
    let text = value.get("text").and_then(Value::as_str).ok_or_else(|| bad("a Document needs text (a string)"))?;
    let model = value.get("model").and_then(Value::as_str).map(str::to_owned);
    Ok((text.to_owned(), model))
}

fn floats(items: &[Value], at: &str) -> Result<Vec<f32>, QdrantError> {
    items
        .iter()
        .map(|v| v.as_f64().map(|x| x as f32).ok_or_else(|| bad(format!("{at}: a dense vector is an array of numbers"))))
        .collect()
}

/// One vector value under `name` (`""`: unnamed).
fn one(name: &str, value: &Value, view: &View, given: &mut Given, at: &str) -> Result<(), QdrantError> {
    let dense_name = view.vector.as_deref().unwrap_or("");
    let is_sparse = view.sparse.iter().any(|s| s == name);
    match value {
        Value::Array(items) if items.first().is_some_and(Value::is_array) => Err(QdrantError::unsupported("multivectors")),
        Value::Array(items) => {
            if name != dense_name {
                return Err(bad(format!("{at}: Wrong input: Not existing vector name error: {name}")));
            }
            given.dense = Some(floats(items, at)?);
            Ok(())
        }
        Value::Object(map) if map.contains_key("text") => {
            let (text, model) = document(map)?;
            if model.as_deref().is_some_and(is_bm25) || (is_sparse && model.is_none()) {
                if !is_sparse && !view.sparse.is_empty() {
                    return Err(bad(format!("{at}: BM25 Documents go on a sparse vector ({:?})", view.sparse)));
                }
                given.lexical_text = Some(text);
            } else {
                if name != dense_name {
                    return Err(bad(format!("{at}: Wrong input: Not existing vector name error: {name}")));
                }
                given.dense_text = Some((text, model));
            }
            Ok(())
        }
        Value::Object(map) if map.contains_key("indices") => Err(bad(format!(
            "{at}: sparse vectors brought by the client are not supported; give a Document with model \"Qdrant/bm25\" on `{name}` and akidb's BM25 index answers it"
        ))),
        Value::Object(map) if map.contains_key("image") || map.contains_key("object") => {
            Err(bad(format!("{at}: Image and other inference objects are not supported; akidb embeds Documents (text) only")))
        }
        other => Err(bad(format!("{at}: not a vector: {}", other.to_string().chars().take(100).collect::<String>()))),
    }
}

/// A point's `vector` field (an array, a Document, or a map of named vectors).
pub fn vectors(value: &Value, view: &View, at: &str) -> Result<Given, QdrantError> {
    let mut given = Given::default();
    match value {
        Value::Object(map) if !map.contains_key("text") && !map.contains_key("indices") && !map.contains_key("image") && !map.contains_key("object") => {
            for (name, v) in map {
                one(name, v, view, &mut given, at)?;
            }
        }
        other => one(view.vector.as_deref().unwrap_or(""), other, view, &mut given, at)?,
    }
    Ok(given)
}

/// A point to upsert, as akidb's document input, and the model its dense `Document` names (for
/// the caller to check). Vectors are normalised for cosine by the engine.
pub fn point_input(id: &Value, vector: Option<&Value>, payload: Option<&Value>, view: &View, at: &str) -> Result<(DocumentInput, Option<String>), QdrantError> {
    let key = PointKey::from_json(id).map_err(|e| bad(format!("{at}.id: {e}")))?;
    let metadata = match payload {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => return Err(bad(format!("{at}.payload must be an object"))),
    };
    let given = match vector {
        None | Some(Value::Null) => return Err(bad(format!("{at}: a point needs a vector (akidb keeps every point in its index)"))),
        Some(v) => vectors(v, view, at)?,
    };
    let text = match (&given.dense_text, &given.lexical_text) {
        (Some((a, _)), Some(b)) if a != b => return Err(bad(format!("{at}: the dense and the BM25 Documents of one point must have the same text (akidb keeps one text per point)"))),
        (Some((a, _)), _) => a.clone(),
        (None, Some(b)) => b.clone(),
        (None, None) => String::new(),
    };
    if given.dense.is_none() && text.trim().is_empty() {
        return Err(bad(format!("{at}: a point needs a dense vector or a Document with text")));
    }
    let model = given.dense_text.and_then(|(_, model)| model);
    Ok((DocumentInput { id: Some(key.document_id()), text, metadata: Some(metadata), vector: given.dense }, model))
}

/// `with_payload`: true / false / [keys] / {"include"} / {"exclude"}.
#[derive(Debug, Clone)]
pub enum PayloadSelector {
    All,
    None,
    Include(Vec<String>),
    Exclude(Vec<String>),
}

pub fn payload_selector(value: Option<&Value>, default: bool) -> Result<PayloadSelector, QdrantError> {
    let keys = |v: &Value| -> Result<Vec<String>, QdrantError> {
        v.as_array().ok_or_else(|| bad("payload keys are an array of strings"))?.iter().map(|k| k.as_str().map(str::to_owned).ok_or_else(|| bad("payload keys are strings"))).collect()
    };
    Ok(match value {
        None | Some(Value::Null) => if default { PayloadSelector::All } else { PayloadSelector::None },
        Some(Value::Bool(true)) => PayloadSelector::All,
        Some(Value::Bool(false)) => PayloadSelector::None,
        Some(v @ Value::Array(_)) => PayloadSelector::Include(keys(v)?),
        Some(Value::Object(m)) if m.contains_key("include") => PayloadSelector::Include(keys(&m["include"])?),
        Some(Value::Object(m)) if m.contains_key("exclude") => PayloadSelector::Exclude(keys(&m["exclude"])?),
        Some(_) => return Err(bad("with_payload is a boolean, a list of keys, {\"include\": [...]} or {\"exclude\": [...]}")),
    })
}

impl PayloadSelector {
    pub fn apply(&self, metadata: Map<String, Value>) -> Option<Value> {
        match self {
            PayloadSelector::None => None,
            PayloadSelector::All => Some(Value::Object(metadata)),
            PayloadSelector::Include(keys) => {
                let mut out = Map::new();
                for key in keys {
                    copy_path(&metadata, &mut out, key);
                }
                Some(Value::Object(out))
            }
            PayloadSelector::Exclude(keys) => {
                let mut metadata = metadata;
                for key in keys {
                    crate::service::points::delete_path(&mut metadata, key);
                }
                Some(Value::Object(metadata))
            }
        }
    }
}

fn copy_path(from: &Map<String, Value>, to: &mut Map<String, Value>, path: &str) {
    match path.split_once('.') {
        None => {
            if let Some(v) = from.get(path) {
                to.insert(path.to_owned(), v.clone());
            }
        }
        Some((head, rest)) => {
            if let Some(Value::Object(inner)) = from.get(head) {
                let slot = to.entry(head.to_owned()).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(target) = slot {
                    copy_path(inner, target, rest);
                }
            }
        }
    }
}


/// `with_vector`: true / false / [names].
pub fn vector_selector(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::Array(names)) => !names.is_empty(),
        _ => false,
    }
}

/// `{"points": [ids]}` or `{"filter": {...}}` (also a bare list of ids).
pub fn selector(body: &Value, view: &View) -> Result<Selector, QdrantError> {
    if let Some(ids) = body.get("points").or(if body.is_array() { Some(body) } else { None }) {
        let ids = ids.as_array().ok_or_else(|| bad("points must be an array of point ids"))?;
        return Ok(Selector::Ids(ids.iter().map(|id| PointKey::from_json(id).map_err(bad)).collect::<Result<_, _>>()?));
    }
    if let Some(f) = body.get("filter") {
        let clause = filter::parse(f, view).map_err(bad)?.unwrap_or_default();
        return Ok(Selector::Filter(clause));
    }
    Err(bad("give points (a list of ids) or filter"))
}

pub fn ids(value: Option<&Value>) -> Result<Vec<PointKey>, QdrantError> {
    let ids = value.and_then(Value::as_array).ok_or_else(|| bad("ids must be an array of point ids"))?;
    ids.iter().map(|id| PointKey::from_json(id).map_err(bad)).collect()
}

pub fn usize_field(body: &Value, key: &str, default: usize) -> Result<usize, QdrantError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_u64().map(|n| n as usize).ok_or_else(|| bad(format!("{key} must be an unsigned integer"))),
    }
}

//! Qdrant's filter JSON → the engine's `Clause`. Geo conditions are refused by name.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::engine::condition::{parse_datetime, Bounds, FieldTest, Path};
use crate::engine::{Clause, Condition};
use crate::service::points::{PointKey, View};

/// Deepest nesting of filters accepted (each level is a recursion).
const MAX_DEPTH: usize = 32;

pub fn parse(value: &Value, view: &View) -> Result<Option<Clause>, String> {
    match value {
        Value::Null => Ok(None),
        other => parse_clause(other, view, 0).map(Some),
    }
}

fn parse_clause(value: &Value, view: &View, depth: usize) -> Result<Clause, String> {
    if depth > MAX_DEPTH {
        return Err(format!("filters nest at most {MAX_DEPTH} deep"));
    }
    let object = value.as_object().ok_or("a filter must be an object with must, should, must_not or min_should")?;
    let list = |key: &str| -> Result<Vec<Condition>, String> {
        match object.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items.iter().map(|c| parse_condition(c, view, depth + 1)).collect(),
            Some(single) => Ok(vec![parse_condition(single, view, depth + 1)?]),
        }
    };
    for key in object.keys() {
        if !["must", "should", "must_not", "min_should"].contains(&key.as_str()) {
            return Err(format!("unknown filter field `{key}`: expected must, should, must_not or min_should"));
        }
    }
    let min_should = match object.get("min_should") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => {
            let conditions = m.get("conditions").and_then(Value::as_array).ok_or("min_should needs conditions (an array)")?;
            let min = m.get("min_count").and_then(Value::as_u64).ok_or("min_should needs min_count (an unsigned integer)")?;
            if min < 1 {
                return Err(format!("min_count value {min} is invalid. Must be 1 or larger."));
            }
            Some((conditions.iter().map(|c| parse_condition(c, view, depth + 1)).collect::<Result<_, _>>()?, min as usize))
        }
        Some(_) => return Err("min_should must be an object".into()),
    };
    Ok(Clause { must: list("must")?, should: list("should")?, must_not: list("must_not")?, min_should })
}

fn path(map: &Map<String, Value>, field: &str) -> Result<Path, String> {
    let key = map.get(field).and_then(Value::as_str).ok_or_else(|| format!("`{field}` must be a string (a payload key)"))?;
    Path::parse(key)
}

fn parse_condition(value: &Value, view: &View, depth: usize) -> Result<Condition, String> {
    let object = value.as_object().ok_or("a condition must be an object")?;
    if object.contains_key("key") {
        return parse_field(object);
    }
    if let Some(inner) = object.get("is_empty") {
        return Ok(Condition::IsEmpty(path(inner.as_object().ok_or("is_empty takes {\"key\": ...}")?, "key")?));
    }
    if let Some(inner) = object.get("is_null") {
        return Ok(Condition::IsNull(path(inner.as_object().ok_or("is_null takes {\"key\": ...}")?, "key")?));
    }
    if let Some(ids) = object.get("has_id") {
        let ids = ids.as_array().ok_or("has_id takes an array of point ids")?;
        let set: HashSet<String> = ids.iter().map(|id| PointKey::from_json(id).map(PointKey::document_id)).collect::<Result<_, _>>()?;
        return Ok(Condition::HasId(set));
    }
    if let Some(name) = object.get("has_vector") {
        let name = name.as_str().ok_or("has_vector takes a vector name")?;
        let dense = view.vector.as_deref().unwrap_or("");
        // Every point carries its dense vector; sparse names are the BM25 index over its text.
        return Ok(Condition::Constant(name == dense || view.sparse.iter().any(|s| s == name)));
    }
    if let Some(nested) = object.get("nested") {
        let nested = nested.as_object().ok_or("nested takes {\"key\", \"filter\"}")?;
        let filter = nested.get("filter").ok_or("nested needs a filter")?;
        return Ok(Condition::Nested { path: path(nested, "key")?, filter: Box::new(parse_clause(filter, view, depth + 1)?) });
    }
    if object.contains_key("slice") {
        return Err("the slice condition is not supported by akidb".into());
    }
    if ["must", "should", "must_not", "min_should"].iter().any(|k| object.contains_key(*k)) || object.is_empty() {
        return Ok(Condition::Clause(Box::new(parse_clause(value, view, depth)?)));
    }
    Err(format!("unknown condition {}", truncated(value)))
}

fn parse_field(object: &Map<String, Value>) -> Result<Condition, String> {
    let path = path(object, "key")?;
    for geo in ["geo_bounding_box", "geo_radius", "geo_polygon"] {
        if object.get(geo).is_some_and(|v| !v.is_null()) {
            return Err(format!("{geo}: geo conditions are not supported by akidb"));
        }
    }
    let some = |k: &str| object.get(k).filter(|v| !v.is_null());
    let test = if let Some(m) = some("match") {
        parse_match(m)?
    } else if let Some(r) = some("range") {
        parse_range(r)?
    } else if let Some(c) = some("values_count") {
        FieldTest::ValuesCount(number_bounds(c)?)
    } else if let Some(b) = some("is_empty") {
        FieldTest::IsEmpty(b.as_bool().ok_or("is_empty takes a boolean")?)
    } else if let Some(b) = some("is_null") {
        FieldTest::IsNull(b.as_bool().ok_or("is_null takes a boolean")?)
    } else {
        return Err(format!("the condition on `{}` states no match, range or values_count", object.get("key").and_then(Value::as_str).unwrap_or_default()));
    };
    Ok(Condition::Field { path, test })
}

fn scalar(v: &Value) -> Result<Value, String> {
    match v {
        Value::String(_) | Value::Bool(_) => Ok(v.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(v.clone()),
        other => Err(format!("match values are strings, integers or booleans, got {}", truncated(other))),
    }
}

fn scalars(v: &Value) -> Result<Vec<Value>, String> {
    v.as_array().ok_or("any / except take an array")?.iter().map(scalar).collect()
}

fn parse_match(m: &Value) -> Result<FieldTest, String> {
    let m = m.as_object().ok_or("match must be an object")?;
    let text = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned).ok_or_else(|| format!("{k} takes a string"));
    if let Some(v) = m.get("value") {
        return Ok(FieldTest::Value(scalar(v)?));
    }
    if let Some(v) = m.get("any") {
        return Ok(FieldTest::Any(scalars(v)?));
    }
    if let Some(v) = m.get("except") {
        return Ok(FieldTest::Except(scalars(v)?));
    }
    if m.contains_key("text") {
        return Ok(FieldTest::Text(text("text")?));
    }
    if m.contains_key("text_any") {
        return Ok(FieldTest::TextAny(text("text_any")?));
    }
    if m.contains_key("phrase") {
        return Ok(FieldTest::Phrase(text("phrase")?));
    }
    if m.contains_key("prefix") {
        return Ok(FieldTest::Prefix(text("prefix")?));
    }
    Err("match takes value, any, except, text, text_any, phrase or prefix".into())
}

fn parse_range(r: &Value) -> Result<FieldTest, String> {
    let object = r.as_object().ok_or("range must be an object")?;
    if object.values().any(Value::is_string) {
        let bound = |k: &str| -> Result<Option<i64>, String> {
            match object.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => parse_datetime(s).map(Some).ok_or_else(|| format!("range.{k}: '{s}' is not an RFC 3339 datetime")),
                Some(other) => Err(format!("range.{k}: a datetime range takes strings, got {}", truncated(other))),
            }
        };
        return Ok(FieldTest::Datetime(Bounds { gt: bound("gt")?, gte: bound("gte")?, lt: bound("lt")?, lte: bound("lte")? }));
    }
    Ok(FieldTest::Range(number_bounds(r)?))
}

fn number_bounds(r: &Value) -> Result<Bounds<f64>, String> {
    let object = r.as_object().ok_or("bounds must be an object of gt, gte, lt, lte")?;
    let bound = |k: &str| -> Result<Option<f64>, String> {
        match object.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| format!("{k} takes a number")),
        }
    };
    Ok(Bounds { gt: bound("gt")?, gte: bound("gte")?, lt: bound("lt")?, lte: bound("lte")? })
}

fn truncated(v: &Value) -> String {
    v.to_string().chars().take(200).collect()
}

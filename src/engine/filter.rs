//! Chroma-style `where` filters over document metadata.
//!
//! `{"field": value}` is equality; `{"field": {"$op": value}}` with `$eq $ne $gt $gte $lt $lte
//! $in $nin`; `{"$and": [..]}` / `{"$or": [..]}`. Several keys in one object are ANDed.
//! Comparisons are between numbers or between strings; a missing field matches only `$ne`/`$nin`.

use std::cmp::Ordering;

use std::sync::Arc;

use roaring::RoaringTreemap;
use serde_json::{Map, Value};

use super::condition::{parse_filter, Clause, Dialect};

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Field { field: String, op: Op, value: Value },
    /// Exactly these points: a `Condition` resolved against the store (`Collection::resolve`).
    Points(Arc<RoaringTreemap>),
    /// Qdrant's filter language (JSON paths, arrays, `nested`, `min_should`, existence, words,
    /// datetimes, ids: `condition.rs`), which the payload index cannot answer: a collection
    /// resolves it into `Points` with one pass over its metadata before planning.
    Condition(Arc<Clause>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    Nin,
}

impl Filter {
    pub fn parse(value: &Value) -> Result<Filter, String> {
        let object = value.as_object().ok_or("a filter must be a JSON object")?;
        // Qdrant's language, by its keys: `has_id` takes document ids, and every point has its
        // one (unnamed) vector.
        const CLAUSES: [&str; 4] = ["must", "should", "must_not", "min_should"];
        if object.keys().any(|k| CLAUSES.contains(&k.as_str())) {
            if let Some(other) = object.keys().find(|k| !CLAUSES.contains(&k.as_str())) {
                return Err(format!("a filter with must / should / must_not / min_should takes no other keys, got {other}"));
            }
            let id = |v: &Value| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                other => Err(format!("has_id takes document ids, got {other}")),
            };
            let has_vector = |name: &str| name.is_empty();
            return parse_filter(value, &Dialect { id: &id, has_vector: &has_vector }).map(|c| Filter::Condition(Arc::new(c)));
        }
        if object.is_empty() {
            // `{}` matches every document (as Chroma reads it); `Service::delete_documents` refuses it.
            return Ok(Filter::And(Vec::new()));
        }
        let mut clauses = Vec::with_capacity(object.len());
        for (key, value) in object {
            clauses.push(match key.as_str() {
                "$and" | "$or" => {
                    let items = value.as_array().ok_or_else(|| format!("{key} takes an array of filters"))?;
                    if items.is_empty() {
                        return Err(format!("{key} takes a non-empty array"));
                    }
                    let parsed = items.iter().map(Filter::parse).collect::<Result<Vec<_>, _>>()?;
                    if key == "$and" {
                        Filter::And(parsed)
                    } else {
                        Filter::Or(parsed)
                    }
                }
                op if op.starts_with('$') => return Err(format!("unknown operator {op} at the top level")),
                field => parse_field(field, value)?,
            });
        }
        Ok(if clauses.len() == 1 { clauses.remove(0) } else { Filter::And(clauses) })
    }

    /// `{}`, or a Qdrant-style filter that states no real condition.
    pub fn matches_everything(&self) -> bool {
        match self {
            Filter::And(all) => all.is_empty(),
            Filter::Condition(clause) => clause.matches_everything(),
            _ => false,
        }
    }

    /// Whether the document `id` with this metadata, whose first passage is `point`, matches.
    pub fn matches_document(&self, id: &str, metadata: &Map<String, Value>, point: Option<u64>) -> bool {
        match self {
            Filter::And(all) => all.iter().all(|f| f.matches_document(id, metadata, point)),
            Filter::Or(any) => any.iter().any(|f| f.matches_document(id, metadata, point)),
            Filter::Field { field, op, value } => compare(metadata.get(field), *op, value),
            Filter::Points(points) => point.is_some_and(|p| points.contains(p)),
            Filter::Condition(clause) => clause.matches(id, metadata),
        }
    }

    /// `matches_document` for filters on metadata alone (a `Points` filter matches nothing here,
    /// `has_id` no id).
    pub fn matches(&self, metadata: &Map<String, Value>) -> bool {
        self.matches_document("", metadata, None)
    }

    /// Whether a `Condition` is anywhere in the filter (then it needs `Collection::resolve`).
    pub fn has_condition(&self) -> bool {
        match self {
            Filter::And(all) | Filter::Or(all) => all.iter().any(Filter::has_condition),
            Filter::Condition(_) => true,
            Filter::Field { .. } | Filter::Points(_) => false,
        }
    }
}

fn parse_field(field: &str, value: &Value) -> Result<Filter, String> {
    let (op, operand) = match value {
        Value::Object(map) => {
            if map.len() != 1 {
                return Err(format!("field {field}: give exactly one operator, e.g. {{\"$eq\": 1}}"));
            }
            let (name, operand) = map.iter().next().ok_or("empty operator object")?;
            let op = match name.as_str() {
                "$eq" => Op::Eq,
                "$ne" => Op::Ne,
                "$gt" => Op::Gt,
                "$gte" => Op::Gte,
                "$lt" => Op::Lt,
                "$lte" => Op::Lte,
                "$in" => Op::In,
                "$nin" => Op::Nin,
                other => return Err(format!("field {field}: unknown operator {other}")),
            };
            (op, operand.clone())
        }
        scalar => (Op::Eq, scalar.clone()),
    };
    match op {
        Op::In | Op::Nin if !operand.as_array().is_some_and(|items| items.iter().all(|v| !(v.is_object() || v.is_array()))) => {
            return Err(format!("field {field}: $in/$nin take an array of scalars"))
        }
        Op::Gt | Op::Gte | Op::Lt | Op::Lte if !(operand.is_number() || operand.is_string()) => {
            return Err(format!("field {field}: range operators take a number or a string"))
        }
        Op::Eq | Op::Ne if operand.is_object() || operand.is_array() => {
            return Err(format!("field {field}: $eq/$ne take a scalar"));
        }
        _ => {}
    }
    Ok(Filter::Field { field: field.to_owned(), op, value: operand })
}

fn order(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    order(a, b) == Some(Ordering::Equal) || (a.is_null() && b.is_null())
}

fn compare(actual: Option<&Value>, op: Op, operand: &Value) -> bool {
    let Some(actual) = actual else { return matches!(op, Op::Ne | Op::Nin) };
    let list = || operand.as_array().map(|items| items.iter().any(|item| equal(actual, item))).unwrap_or(false);
    match op {
        Op::Eq => equal(actual, operand),
        Op::Ne => !equal(actual, operand),
        Op::In => list(),
        Op::Nin => !list(),
        Op::Gt => order(actual, operand) == Some(Ordering::Greater),
        Op::Gte => matches!(order(actual, operand), Some(Ordering::Greater | Ordering::Equal)),
        Op::Lt => order(actual, operand) == Some(Ordering::Less),
        Op::Lte => matches!(order(actual, operand), Some(Ordering::Less | Ordering::Equal)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn meta(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn check(filter: Value, metadata: Value) -> bool {
        Filter::parse(&filter).unwrap().matches(&meta(metadata))
    }

    #[test]
    fn operators() {
        let m = json!({"year": 2020, "lang": "en", "score": 0.5});
        assert!(check(json!({"lang": "en"}), m.clone()));
        assert!(!check(json!({"lang": "de"}), m.clone()));
        assert!(check(json!({"year": {"$gte": 2020}}), m.clone()));
        assert!(!check(json!({"year": {"$gt": 2020}}), m.clone()));
        assert!(check(json!({"score": {"$lt": 1}}), m.clone()));
        assert!(check(json!({"year": {"$lte": 2020.0}}), m.clone()));
        assert!(check(json!({"lang": {"$in": ["de", "en"]}}), m.clone()));
        assert!(check(json!({"lang": {"$nin": ["de"]}}), m.clone()));
        assert!(check(json!({"lang": {"$ne": "de"}}), m.clone()));
        assert!(check(json!({"$or": [{"lang": "de"}, {"year": 2020}]}), m.clone()));
        assert!(!check(json!({"$and": [{"lang": "en"}, {"year": 2021}]}), m.clone()));
        assert!(check(json!({"lang": "en", "year": 2020}), m.clone()));
        // Missing fields and mismatched types.
        assert!(!check(json!({"missing": 1}), m.clone()));
        assert!(check(json!({"missing": {"$ne": 1}}), m.clone()));
        assert!(!check(json!({"lang": {"$gt": 3}}), m));
    }

    #[test]
    fn an_empty_filter_matches_everything() {
        let all = Filter::parse(&json!({})).unwrap();
        assert!(all.matches(&Map::new()));
        assert!(all.matches(json!({"a": 1}).as_object().unwrap()));
    }

    #[test]
    fn malformed_filters_name_the_problem() {
        for (filter, needle) in [
            (json!([]), "JSON object"),
            (json!({"a": {"$in": [{"x": 1}]}}), "array of scalars"),
            (json!({"$xor": []}), "unknown operator"),
            (json!({"a": {"$regex": "x"}}), "unknown operator $regex"),
            (json!({"a": {"$in": 3}}), "take an array"),
            (json!({"a": {"$gt": [1]}}), "range operators"),
            (json!({"$and": []}), "non-empty"),
            (json!({"a": {"$eq": 1, "$ne": 2}}), "exactly one operator"),
        ] {
            let err = Filter::parse(&filter).unwrap_err();
            assert!(err.contains(needle), "{filter}: {err}");
        }
    }
}

//! Conditions on a document's metadata beyond what the payload index answers: Qdrant's filter
//! language (bool clauses with `min_should`, JSON paths into nested objects and arrays, `nested`
//! over arrays of objects, existence, value counts, word matches, datetime ranges, ids).
//!
//! The semantics follow Qdrant's own reference implementation (qdrant-client's local mode,
//! `local/payload_filters.py` in 1.20): a field condition holds when any value its path selects
//! passes; a selected array is unwrapped one level. A collection evaluates a condition against
//! every document's metadata and hands the matching points to the indexes as a
//! `Filter::Points` (`Collection::resolve`): correct for every condition, at the cost of one
//! metadata scan per request.

use std::collections::HashSet;

use serde_json::{Map, Value};

/// `must` / `should` / `must_not` / `min_should`, as in Qdrant's `Filter`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Clause {
    pub must: Vec<Condition>,
    /// Empty: no constraint (not "nothing matches").
    pub should: Vec<Condition>,
    pub must_not: Vec<Condition>,
    pub min_should: Option<(Vec<Condition>, usize)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Clause(Box<Clause>),
    Field { path: Path, test: FieldTest },
    /// No value at the path, or only nulls and empty arrays.
    IsEmpty(Path),
    /// A value at the path is null (or an array holding a null).
    IsNull(Path),
    /// The document's id is one of these.
    HasId(HashSet<String>),
    /// The filter holds for one element (an object) of the array at the path.
    Nested { path: Path, filter: Box<Clause> },
    /// Always true or always false (`has_vector` on a vector every point has, or none has).
    Constant(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub enum FieldTest {
    Value(Value),
    Any(Vec<Value>),
    Except(Vec<Value>),
    /// Every word of the query is a word of the value (lowercased, split on non-alphanumerics).
    Text(String),
    TextAny(String),
    Phrase(String),
    Prefix(String),
    Range(Bounds<f64>),
    /// Microseconds since the Unix epoch, UTC.
    Datetime(Bounds<i64>),
    /// Counts of the values at the path (an array counts its elements).
    ValuesCount(Bounds<f64>),
    /// `is_empty` / `is_null` given as a field condition's flag.
    IsEmpty(bool),
    IsNull(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Bounds<T> {
    pub gt: Option<T>,
    pub gte: Option<T>,
    pub lt: Option<T>,
    pub lte: Option<T>,
}

impl<T: PartialOrd + Copy> Bounds<T> {
    pub fn contains(&self, x: T) -> bool {
        self.gt.is_none_or(|b| x > b) && self.gte.is_none_or(|b| x >= b) && self.lt.is_none_or(|b| x < b) && self.lte.is_none_or(|b| x <= b)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
    /// `[]`: every element.
    Each,
}

/// A JSON path as Qdrant writes it: `a.b`, `a[].b`, `a[0]`, `"quoted.key"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path(pub Vec<Step>);

impl Path {
    pub fn parse(text: &str) -> Result<Path, String> {
        let invalid = || format!("invalid payload key '{text}'");
        let mut steps = Vec::new();
        let mut rest = text;
        loop {
            if let Some(quoted) = rest.strip_prefix('"') {
                let end = quoted.find('"').ok_or_else(invalid)?;
                steps.push(Step::Key(quoted[..end].to_owned()));
                rest = &quoted[end + 1..];
            } else {
                let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-')).unwrap_or(rest.len());
                if end == 0 {
                    return Err(invalid());
                }
                steps.push(Step::Key(rest[..end].to_owned()));
                rest = &rest[end..];
            }
            while let Some(inside) = rest.strip_prefix('[') {
                let end = inside.find(']').ok_or_else(invalid)?;
                let index = &inside[..end];
                steps.push(if index.is_empty() { Step::Each } else { Step::Index(index.parse().map_err(|_| invalid())?) });
                rest = &inside[end + 1..];
            }
            if rest.is_empty() {
                return Ok(Path(steps));
            }
            rest = rest.strip_prefix('.').filter(|r| !r.is_empty()).ok_or_else(invalid)?;
        }
    }

    /// The values the path selects; `flat`: a selected array gives its elements.
    pub fn values<'a>(&self, root: &'a Map<String, Value>, flat: bool) -> Vec<&'a Value> {
        let mut out = Vec::new();
        let Some((Step::Key(first), rest)) = self.0.split_first() else { return out };
        if let Some(value) = root.get(first) {
            collect(value, rest, flat, &mut out);
        }
        out
    }
}

fn collect<'a>(value: &'a Value, steps: &[Step], flat: bool, out: &mut Vec<&'a Value>) {
    let Some((step, rest)) = steps.split_first() else {
        match value {
            Value::Array(items) if flat => out.extend(items),
            other => out.push(other),
        }
        return;
    };
    match (step, value) {
        (Step::Key(key), Value::Object(map)) => {
            if let Some(v) = map.get(key) {
                collect(v, rest, flat, out);
            }
        }
        (Step::Index(i), Value::Array(items)) => {
            if let Some(v) = items.get(*i) {
                collect(v, rest, flat, out);
            }
        }
        (Step::Each, Value::Array(items)) => items.iter().for_each(|v| collect(v, rest, flat, out)),
        _ => {}
    }
}

impl Clause {
    pub fn matches(&self, id: &str, metadata: &Map<String, Value>) -> bool {
        self.must.iter().all(|c| c.matches(id, metadata))
            && !self.must_not.iter().any(|c| c.matches(id, metadata))
            && (self.should.is_empty() || self.should.iter().any(|c| c.matches(id, metadata)))
            && self.min_should.as_ref().is_none_or(|(conditions, min)| conditions.iter().filter(|c| c.matches(id, metadata)).count() >= *min)
    }

    /// No condition at all: every document matches.
    pub fn is_empty(&self) -> bool {
        self.must.is_empty() && self.should.is_empty() && self.must_not.is_empty() && self.min_should.is_none()
    }

    /// Matches every document by its form alone (`{}`, `{"must": [{}]}`, `{"should": []}`…):
    /// what a delete by filter refuses.
    pub fn matches_everything(&self) -> bool {
        let trivial = |c: &Condition| matches!(c, Condition::Constant(true)) || matches!(c, Condition::Clause(inner) if inner.matches_everything());
        self.must.iter().all(trivial) && (self.should.is_empty() || self.should.iter().any(trivial)) && self.must_not.is_empty() && self.min_should.is_none()
    }
}

impl Condition {
    pub fn matches(&self, id: &str, metadata: &Map<String, Value>) -> bool {
        match self {
            Condition::Clause(clause) => clause.matches(id, metadata),
            Condition::Field { path, test } => test.matches(path, metadata),
            Condition::IsEmpty(path) => is_empty(path, metadata),
            Condition::IsNull(path) => is_null(path, metadata),
            Condition::HasId(ids) => ids.contains(id),
            Condition::Nested { path, filter } => {
                let mut path = path.clone();
                if path.0.last() == Some(&Step::Each) {
                    path.0.pop();
                }
                // Nested conditions see each element as a payload of its own; ids do not apply.
                path.values(metadata, false)
                    .into_iter()
                    .filter_map(Value::as_array)
                    .flatten()
                    .filter_map(Value::as_object)
                    .any(|element| filter.matches("", element))
            }
            Condition::Constant(b) => *b,
        }
    }
}

fn is_empty(path: &Path, metadata: &Map<String, Value>) -> bool {
    path.values(metadata, false).iter().all(|v| match v {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        _ => false,
    })
}

fn is_null(path: &Path, metadata: &Map<String, Value>) -> bool {
    path.values(metadata, false).iter().any(|v| match v {
        Value::Null => true,
        Value::Array(items) => items.iter().any(Value::is_null),
        _ => false,
    })
}

impl FieldTest {
    fn matches(&self, path: &Path, metadata: &Map<String, Value>) -> bool {
        match self {
            FieldTest::IsEmpty(want) => is_empty(path, metadata) == *want,
            FieldTest::IsNull(want) => is_null(path, metadata) == *want,
            FieldTest::ValuesCount(bounds) => {
                let values = path.values(metadata, false);
                let counts: Vec<usize> = if values.iter().all(|v| v.is_null()) {
                    vec![0]
                } else {
                    values.iter().map(|v| match v {
                        Value::Null => 0,
                        Value::Array(items) => items.len(),
                        _ => 1,
                    }).collect()
                };
                counts.into_iter().any(|c| bounds.contains(c as f64))
            }
            test => path.values(metadata, true).into_iter().any(|v| test.matches_value(v)),
        }
    }

    fn matches_value(&self, value: &Value) -> bool {
        let text = || value.as_str();
        match self {
            FieldTest::Value(want) => same(value, want),
            FieldTest::Any(list) => list.iter().any(|w| same(value, w)),
            FieldTest::Except(list) => !value.is_null() && !list.iter().any(|w| same(value, w)),
            FieldTest::Text(query) => text().is_some_and(|t| {
                let (query, words) = (words(query), words(t).into_iter().collect::<HashSet<_>>());
                !query.is_empty() && query.iter().all(|w| words.contains(w))
            }),
            FieldTest::TextAny(query) => text().is_some_and(|t| {
                let words: HashSet<String> = words(t).into_iter().collect();
                self::words(query).iter().any(|w| words.contains(w))
            }),
            FieldTest::Phrase(phrase) => text().is_some_and(|t| {
                let (phrase, words) = (words(phrase), words(t));
                !phrase.is_empty() && words.windows(phrase.len()).any(|w| w == phrase.as_slice())
            }),
            FieldTest::Prefix(prefix) => text().is_some_and(|t| t.starts_with(prefix.as_str())),
            // Booleans are not numbers to a range.
            FieldTest::Range(bounds) => value.is_number() && value.as_f64().is_some_and(|x| bounds.contains(x)),
            FieldTest::Datetime(bounds) => text().and_then(parse_datetime).is_some_and(|t| bounds.contains(t)),
            FieldTest::ValuesCount(_) | FieldTest::IsEmpty(_) | FieldTest::IsNull(_) => false,
        }
    }
}

/// Qdrant's default word tokenizer: runs of alphanumerics, lowercased.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// Exact match as Qdrant keeps types apart: a bool is not a number, and an integer operand
/// never matches a float value (match operands are bools, integers and strings).
fn same(value: &Value, want: &Value) -> bool {
    match (value, want) {
        (Value::Number(a), Value::Number(b)) => {
            if a.is_f64() || b.is_f64() {
                return a.is_f64() && b.is_f64() && a.as_f64() == b.as_f64();
            }
            a.as_i64().zip(b.as_i64()).map_or(a.as_u64() == b.as_u64(), |(x, y)| x == y)
        }
        (Value::String(a), Value::String(b)) => a == b,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        _ => false,
    }
}

/// An RFC 3339 datetime (or a date, or a datetime without zone, read as UTC) as microseconds
/// since the Unix epoch: `2024-05-01`, `2024-05-01T10:00:00Z`, `2024-05-01 10:00:00.5+02:00`.
pub fn parse_datetime(text: &str) -> Option<i64> {
    let text = text.trim();
    let (date, time) = match text.find(['T', 't', ' ']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let mut parts = date.splitn(3, '-');
    let (year, month, day): (i64, u32, u32) = (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
    // Years stay within what microseconds since 1970 can hold in an i64 (±292,000 years).
    if !(-262_143..=262_143).contains(&year) || !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let mut micros = days_from_civil(year, month, day) * 86_400_000_000;
    if let Some(time) = time {
        let (clock, offset) = split_offset(time)?;
        let mut fields = clock.splitn(3, ':');
        let hour: i64 = fields.next()?.parse().ok()?;
        let minute: i64 = fields.next()?.parse().ok()?;
        let seconds = fields.next().unwrap_or("0");
        let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
        let second: i64 = whole.parse().ok()?;
        if hour > 23 || minute > 59 || second > 60 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let fraction_micros: i64 = format!("{fraction:0<6}")[..6].parse().ok()?;
        micros += ((hour * 60 + minute) * 60 + second) * 1_000_000 + fraction_micros - offset * 60_000_000;
    }
    Some(micros)
}

/// The clock part and the zone offset in minutes (none: UTC).
fn split_offset(time: &str) -> Option<(&str, i64)> {
    if let Some(clock) = time.strip_suffix(['Z', 'z']) {
        return Some((clock, 0));
    }
    match time.rfind(['+', '-']) {
        Some(at) => {
            let zone = time[at + 1..].replace(':', "");
            if zone.len() != 4 || !zone.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let minutes = zone[..2].parse::<i64>().ok()? * 60 + zone[2..].parse::<i64>().ok()?;
            Some((&time[..at], if &time[at..at + 1] == "-" { -minutes } else { minutes }))
        }
        None => Some((time, 0)),
    }
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

// ---------------------------------------------------------------------------------------------
// Parsing Qdrant's filter JSON

/// Deepest nesting of filters accepted (each level is a recursion).
const MAX_DEPTH: usize = 32;

/// How an API names points and vectors in its filters.
pub struct Dialect<'a> {
    /// A point id given in `has_id`, as the id of its document.
    pub id: &'a dyn Fn(&Value) -> Result<String, String>,
    /// Whether every point has the vector of this name (`has_vector`).
    pub has_vector: &'a dyn Fn(&str) -> bool,
}

/// Qdrant's filter JSON (`must`, `should`, `must_not`, `min_should`, their conditions); geo
/// conditions are refused by name.
pub fn parse_filter(value: &Value, dialect: &Dialect) -> Result<Clause, String> {
    parse_clause(value, dialect, 0)
}

fn parse_clause(value: &Value, dialect: &Dialect, depth: usize) -> Result<Clause, String> {
    if depth > MAX_DEPTH {
        return Err(format!("filters nest at most {MAX_DEPTH} deep"));
    }
    let object = value.as_object().ok_or("a filter must be an object with must, should, must_not or min_should")?;
    let list = |key: &str| -> Result<Vec<Condition>, String> {
        match object.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items.iter().map(|c| parse_condition(c, dialect, depth + 1)).collect(),
            Some(single) => Ok(vec![parse_condition(single, dialect, depth + 1)?]),
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
            Some((conditions.iter().map(|c| parse_condition(c, dialect, depth + 1)).collect::<Result<_, _>>()?, min as usize))
        }
        Some(_) => return Err("min_should must be an object".into()),
    };
    Ok(Clause { must: list("must")?, should: list("should")?, must_not: list("must_not")?, min_should })
}

fn path(map: &Map<String, Value>, field: &str) -> Result<Path, String> {
    let key = map.get(field).and_then(Value::as_str).ok_or_else(|| format!("`{field}` must be a string (a payload key)"))?;
    Path::parse(key)
}

fn parse_condition(value: &Value, dialect: &Dialect, depth: usize) -> Result<Condition, String> {
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
        let set: HashSet<String> = ids.iter().map(|id| (dialect.id)(id)).collect::<Result<_, _>>()?;
        return Ok(Condition::HasId(set));
    }
    if let Some(name) = object.get("has_vector") {
        let name = name.as_str().ok_or("has_vector takes a vector name")?;
        return Ok(Condition::Constant((dialect.has_vector)(name)));
    }
    if let Some(nested) = object.get("nested") {
        let nested = nested.as_object().ok_or("nested takes {\"key\", \"filter\"}")?;
        let filter = nested.get("filter").ok_or("nested needs a filter")?;
        return Ok(Condition::Nested { path: path(nested, "key")?, filter: Box::new(parse_clause(filter, dialect, depth + 1)?) });
    }
    if object.contains_key("slice") {
        return Err("the slice condition is not supported by akidb".into());
    }
    if ["must", "should", "must_not", "min_should"].iter().any(|k| object.contains_key(*k)) || object.is_empty() {
        return Ok(Condition::Clause(Box::new(parse_clause(value, dialect, depth)?)));
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn meta(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn field(path: &str, test: FieldTest) -> Condition {
        Condition::Field { path: Path::parse(path).unwrap(), test }
    }

    #[test]
    fn paths_parse_as_qdrant_writes_them() {
        assert_eq!(Path::parse("a.b").unwrap().0, [Step::Key("a".into()), Step::Key("b".into())]);
        assert_eq!(Path::parse("a[].b[2]").unwrap().0, [Step::Key("a".into()), Step::Each, Step::Key("b".into()), Step::Index(2)]);
        assert_eq!(Path::parse("\"x.y\".z").unwrap().0, [Step::Key("x.y".into()), Step::Key("z".into())]);
        for bad in ["", ".a", "a.", "a[x]", "a[", "a..b", "a b"] {
            assert!(Path::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_conditions_hold_for_any_selected_value() {
        let m = meta(json!({"tags": ["a", "b"], "meta": {"lang": "en"}, "items": [{"n": 1}, {"n": 5}], "x": 1.0, "y": 1, "t": "The quick brown fox"}));
        assert!(field("tags", FieldTest::Value(json!("b"))).matches("1", &m));
        assert!(field("meta.lang", FieldTest::Any(vec![json!("de"), json!("en")])).matches("1", &m));
        assert!(field("items[].n", FieldTest::Range(Bounds { gte: Some(4.0), ..Bounds::default() })).matches("1", &m));
        assert!(!field("items.n", FieldTest::Range(Bounds::default())).matches("1", &m), "a key does not reach into an array");
        assert!(!field("x", FieldTest::Value(json!(1))).matches("1", &m), "an integer operand never matches a float");
        assert!(field("y", FieldTest::Value(json!(1))).matches("1", &m));
        assert!(field("tags", FieldTest::Except(vec![json!("a")])).matches("1", &m), "b is not a");
        assert!(field("t", FieldTest::Text("FOX quick".into())).matches("1", &m));
        assert!(!field("t", FieldTest::Text("qui".into())).matches("1", &m), "whole words only");
        assert!(field("t", FieldTest::Phrase("quick brown".into())).matches("1", &m));
        assert!(!field("t", FieldTest::Phrase("brown quick".into())).matches("1", &m));
        assert!(field("tags", FieldTest::ValuesCount(Bounds { gte: Some(2.0), ..Bounds::default() })).matches("1", &m));
        let nested = Condition::Nested { path: Path::parse("items").unwrap(), filter: Box::new(Clause { must: vec![field("n", FieldTest::Value(json!(5)))], ..Clause::default() }) };
        assert!(nested.matches("1", &m));
    }

    #[test]
    fn emptiness_and_nulls_follow_qdrant() {
        let m = meta(json!({"e": [], "n": null, "a": [1, null], "v": 3}));
        for (key, empty, null) in [("e", true, false), ("n", true, true), ("a", false, true), ("v", false, false), ("missing", true, false)] {
            assert_eq!(Condition::IsEmpty(Path::parse(key).unwrap()).matches("1", &m), empty, "{key}");
            assert_eq!(Condition::IsNull(Path::parse(key).unwrap()).matches("1", &m), null, "{key}");
        }
        assert!(!field("n", FieldTest::Except(vec![json!(1)])).matches("1", &m), "null is absence, not a differing value");
    }

    #[test]
    fn clauses_combine_like_qdrant_filters() {
        let m = meta(json!({"a": 1, "b": 2}));
        let a = field("a", FieldTest::Value(json!(1)));
        let not_b = field("b", FieldTest::Value(json!(3)));
        assert!(Clause { should: vec![], ..Clause::default() }.matches("1", &m), "an empty should is no constraint");
        assert!(Clause { should: vec![a.clone(), not_b.clone()], ..Clause::default() }.matches("1", &m));
        assert!(!Clause { min_should: Some((vec![a.clone(), not_b.clone()], 2)), ..Clause::default() }.matches("1", &m));
        assert!(Clause { must_not: vec![not_b], must: vec![a], ..Clause::default() }.matches("1", &m));
        assert!(Condition::HasId(["7".to_owned()].into()).matches("7", &m));
    }

    #[test]
    fn datetimes_parse_to_utc_microseconds() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_datetime("1970-01-02"), Some(86_400_000_000));
        assert_eq!(parse_datetime("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_datetime("1970-01-01 00:00:00.5"), Some(500_000));
        assert_eq!(parse_datetime("2024-02-29T12:00:00Z"), Some(1_709_208_000_000_000));
        for bad in ["2023-02-29", "yesterday", "2024-13-01", "2024-01-01T25:00:00Z", "2024-01-01T00:00+1é1", "999999999-01-01"] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
    }
}

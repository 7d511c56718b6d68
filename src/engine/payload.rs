//! The payload index: filters answered from per-field indexes, not by scanning every document.
//!
//! Every scalar metadata field of every live passage is indexed, with no declaration needed:
//! - keyword, bool and null values → a posting set per value (roaring bitmaps);
//! - numbers → an ordered map from value to posting set, for ranges; strings are ordered too,
//!   since filters compare strings with `$gt`/`$lt`;
//! - each point's value, for checking a filter on one candidate during a graph walk.
//!
//! Arrays and objects are not indexed: filters take scalars only, and to `Filter::matches` such a
//! value is present but equal to nothing (it matches `$ne`/`$nin`, as here).
//!
//! The planner (`Collection::dense`) asks `estimate` for the number of matching points, read from
//! the posting sets' sizes without materializing them, and answers a small set exactly
//! (`matching`) and a large one with a filtered graph walk (`accepts` per candidate), as Qdrant
//! does. The index is derived data, built from the store when a collection opens.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use roaring::RoaringTreemap;
use serde_json::{Map, Value};

use super::filter::{Filter, Op};
use crate::domain::PointId;

pub mod file;

/// A number as a totally ordered map key (-0.0 is stored as 0.0, so they are equal as in JSON).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Number(f64);

impl Number {
    fn new(x: f64) -> Self {
        Number(if x == 0.0 { 0.0 } else { x })
    }
}

impl Eq for Number {}

impl std::hash::Hash for Number {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // -0.0 is stored as 0.0 (`new`), so equal numbers have equal bits.
        self.0.to_bits().hash(state);
    }
}

impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Number {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// One indexed value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scalar {
    Null,
    Bool(bool),
    Number(Number),
    String(Arc<str>),
    /// An array or an object: present, equal to nothing.
    Other,
}

fn scalar(value: &Value) -> Scalar {
    match value {
        Value::Null => Scalar::Null,
        Value::Bool(b) => Scalar::Bool(*b),
        Value::Number(n) => n.as_f64().map_or(Scalar::Other, |x| Scalar::Number(Number::new(x))),
        Value::String(s) => Scalar::String(Arc::from(s.as_str())),
        Value::Array(_) | Value::Object(_) => Scalar::Other,
    }
}

/// Point ids per column chunk: a chunk is allocated when its first point gets a value and freed
/// when its last one loses it, so a column costs 4 bytes per point id in use, not per id ever made.
const CHUNK: usize = 4096;

/// Each point's value code (0: no value), in chunks indexed by `point / CHUNK`.
#[derive(Default, Clone)]
struct Column {
    chunks: Vec<Option<Box<Chunk>>>,
}

#[derive(Clone)]
struct Chunk {
    codes: [u32; CHUNK],
    used: u32,
}

impl Column {
    #[inline]
    fn get(&self, point: PointId) -> u32 {
        let (chunk, at) = ((point / CHUNK as u64) as usize, (point % CHUNK as u64) as usize);
        self.chunks.get(chunk).and_then(|c| c.as_ref()).map_or(0, |c| c.codes[at])
    }

    /// Sets a point's code (0 clears it); returns the code it had.
    fn set(&mut self, point: PointId, code: u32) -> u32 {
        let (chunk, at) = ((point / CHUNK as u64) as usize, (point % CHUNK as u64) as usize);
        if chunk >= self.chunks.len() {
            if code == 0 {
                return 0;
            }
            self.chunks.resize_with(chunk + 1, || None);
        }
        let slot = &mut self.chunks[chunk];
        if slot.is_none() {
            if code == 0 {
                return 0;
            }
            *slot = Some(Box::new(Chunk { codes: [0; CHUNK], used: 0 }));
        }
        let Some(c) = slot.as_mut() else { return 0 };
        let old = std::mem::replace(&mut c.codes[at], code);
        match (old, code) {
            (0, 0) => {}
            (0, _) => c.used += 1,
            (_, 0) => {
                c.used -= 1;
                if c.used == 0 {
                    *slot = None;
                }
            }
            _ => {}
        }
        old
    }

    fn bytes(&self) -> usize {
        self.chunks.capacity() * 8 + self.chunks.iter().flatten().count() * std::mem::size_of::<Chunk>()
    }
}

/// One field: each distinct value interned once under a code, each point's code in a column, and
/// per code the points holding it (values that filters can match only: arrays and objects have
/// a code, so `$ne` sees them present, but no posting set).
#[derive(Default, Clone)]
struct FieldIndex {
    column: Column,
    /// Code → value; code 0 is never used. Codes of values no point holds any more are reused.
    dict: Vec<Scalar>,
    codes: HashMap<Scalar, u32>,
    free: Vec<u32>,
    /// Code → points holding it, and how many points hold each code.
    postings: Vec<RoaringTreemap>,
    holders: Vec<u64>,
    /// Ordered codes of numbers and strings, for ranges.
    numbers: BTreeMap<Number, u32>,
    strings: BTreeMap<Arc<str>, u32>,
    points: u64,
}

impl FieldIndex {
    /// The value a point holds.
    #[inline]
    fn value(&self, point: PointId) -> Option<&Scalar> {
        match self.column.get(point) {
            0 => None,
            code => self.dict.get(code as usize),
        }
    }

    fn postings(&self, value: &Scalar) -> Option<&RoaringTreemap> {
        self.codes.get(value).and_then(|&code| self.postings.get(code as usize))
    }

    /// The code of `value`, interning it on first use.
    fn intern(&mut self, value: Scalar) -> u32 {
        if let Some(&code) = self.codes.get(&value) {
            return code;
        }
        if self.dict.is_empty() {
            // Code 0 means "no value": never handed out.
            self.dict.push(Scalar::Other);
            self.postings.push(RoaringTreemap::new());
            self.holders.push(0);
        }
        let code = match self.free.pop() {
            Some(code) => {
                self.dict[code as usize] = value.clone();
                code
            }
            None => {
                self.dict.push(value.clone());
                self.postings.push(RoaringTreemap::new());
                self.holders.push(0);
                (self.dict.len() - 1) as u32
            }
        };
        match &value {
            Scalar::Number(n) => {
                self.numbers.insert(*n, code);
            }
            Scalar::String(s) => {
                self.strings.insert(s.clone(), code);
            }
            _ => {}
        }
        self.codes.insert(value, code);
        code
    }

    fn insert(&mut self, point: PointId, value: Scalar) {
        self.remove(point);
        let indexed = value != Scalar::Other;
        let code = self.intern(value);
        self.column.set(point, code);
        if indexed {
            self.postings[code as usize].insert(point);
        }
        self.holders[code as usize] += 1;
        self.points += 1;
    }

    fn remove(&mut self, point: PointId) {
        let code = self.column.set(point, 0);
        if code == 0 {
            return;
        }
        let c = code as usize;
        self.postings[c].remove(point);
        self.points -= 1;
        self.holders[c] -= 1;
        if self.holders[c] == 0 {
            // Nobody holds the value any more: its code is free for the next new value.
            let value = std::mem::replace(&mut self.dict[c], Scalar::Other);
            self.codes.remove(&value);
            match value {
                Scalar::Number(n) => {
                    self.numbers.remove(&n);
                }
                Scalar::String(s) => {
                    self.strings.remove(&s);
                }
                _ => {}
            }
            self.postings[c] = RoaringTreemap::new();
            self.free.push(code);
        }
    }

    fn is_empty(&self) -> bool {
        self.points == 0
    }

    /// Sizes of the posting sets of a range, summed until they pass `cap`.
    fn range_count(&self, range: &Range, cap: u64) -> u64 {
        let mut total = 0;
        for postings in self.range_postings(range) {
            total += postings.len();
            if total > cap {
                break;
            }
        }
        total
    }

    fn range_postings<'a>(&'a self, range: &'a Range) -> Box<dyn Iterator<Item = &'a RoaringTreemap> + 'a> {
        let postings = move |code: &u32| &self.postings[*code as usize];
        match range {
            Range::Numbers(lower, upper) => Box::new(self.numbers.range((*lower, *upper)).map(move |(_, c)| postings(c))),
            Range::Strings(lower, upper) => {
                let bound = |b: &'a Bound<Arc<str>>| match b {
                    Bound::Included(s) => Bound::Included(s.clone()),
                    Bound::Excluded(s) => Bound::Excluded(s.clone()),
                    Bound::Unbounded => Bound::Unbounded,
                };
                Box::new(self.strings.range((bound(lower), bound(upper))).map(move |(_, c)| postings(c)))
            }
        }
    }

    /// Heap bytes, roughly (for the memory table).
    fn bytes(&self) -> usize {
        let values: usize = self.dict.iter().map(|v| if let Scalar::String(s) = v { s.len() + 16 } else { 0 }).sum();
        let postings: usize = self.postings.iter().map(|p| p.serialized_size()).sum();
        self.column.bytes() + self.dict.capacity() * std::mem::size_of::<Scalar>() * 3 + values + postings + self.holders.capacity() * 8
    }
}

/// A range of one kind of value (filters compare numbers with numbers, strings with strings).
#[derive(Debug, Clone)]
pub enum Range {
    Numbers(Bound<Number>, Bound<Number>),
    Strings(Bound<Arc<str>>, Bound<Arc<str>>),
}

impl Range {
    fn contains(&self, value: &Scalar) -> bool {
        match (self, value) {
            (Range::Numbers(lower, upper), Scalar::Number(n)) => (*lower, *upper).contains(n),
            (Range::Strings(lower, upper), Scalar::String(s)) => {
                let above = match lower {
                    Bound::Included(l) => s.as_ref() >= l.as_ref(),
                    Bound::Excluded(l) => s.as_ref() > l.as_ref(),
                    Bound::Unbounded => true,
                };
                let below = match upper {
                    Bound::Included(u) => s.as_ref() <= u.as_ref(),
                    Bound::Excluded(u) => s.as_ref() < u.as_ref(),
                    Bound::Unbounded => true,
                };
                above && below
            }
            _ => false,
        }
    }
}

/// A filter compiled against the index's value types.
#[derive(Debug, Clone)]
pub enum Plan {
    All,
    And(Vec<Plan>),
    Or(Vec<Plan>),
    /// The field equals one of `values` (`negate`: it does not, or is missing). A set: `$in`
    /// with many values is one lookup per candidate, and a repeated value counts once.
    Equals { field: String, values: HashSet<Scalar>, negate: bool },
    Range { field: String, range: Range },
    /// A range operand of a type no value can be ordered against.
    Nothing,
    /// These points (a condition resolved against the store).
    Set(Arc<RoaringTreemap>),
}

impl Plan {
    pub fn compile(filter: &Filter) -> Plan {
        match filter {
            Filter::And(all) if all.is_empty() => Plan::All,
            Filter::And(all) => Plan::And(all.iter().map(Plan::compile).collect()),
            Filter::Or(any) => Plan::Or(any.iter().map(Plan::compile).collect()),
            Filter::Points(points) => Plan::Set(points.clone()),
            // Resolved into `Points` by the collection before planning; planned unresolved it
            // would match nothing rather than everything.
            Filter::Condition(_) => Plan::Nothing,
            Filter::Field { field, op, value } => {
                let field = field.clone();
                let list = || value.as_array().map(|items| items.iter().map(scalar).filter(|s| *s != Scalar::Other).collect()).unwrap_or_default();
                match op {
                    Op::Eq | Op::Ne => Plan::Equals { field, values: [scalar(value)].into_iter().filter(|s| *s != Scalar::Other).collect(), negate: *op == Op::Ne },
                    Op::In | Op::Nin => Plan::Equals { field, values: list(), negate: *op == Op::Nin },
                    Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
                        let range = match scalar(value) {
                            Scalar::Number(n) => Range::Numbers(lower(*op, n), upper(*op, n)),
                            Scalar::String(s) => Range::Strings(lower(*op, s.clone()), upper(*op, s)),
                            _ => return Plan::Nothing,
                        };
                        Plan::Range { field, range }
                    }
                }
            }
        }
    }
}

fn lower<T>(op: Op, value: T) -> Bound<T> {
    match op {
        Op::Gt => Bound::Excluded(value),
        Op::Gte => Bound::Included(value),
        _ => Bound::Unbounded,
    }
}

fn upper<T>(op: Op, value: T) -> Bound<T> {
    match op {
        Op::Lt => Bound::Excluded(value),
        Op::Lte => Bound::Included(value),
        _ => Bound::Unbounded,
    }
}

#[derive(Default, Clone)]
pub struct PayloadIndex {
    live: RoaringTreemap,
    /// The first passage of every live document: counting documents without a point → document map.
    firsts: RoaringTreemap,
    fields: HashMap<String, FieldIndex>,
}

impl PayloadIndex {
    /// Indexes one document's passages (`points`, in order) under its metadata.
    pub fn insert(&mut self, points: &[PointId], metadata: &Map<String, Value>) {
        let Some(&first) = points.first() else { return };
        self.firsts.insert(first);
        for &point in points {
            self.live.insert(point);
        }
        for (name, value) in metadata {
            let value = scalar(value);
            let field = self.fields.entry(name.clone()).or_default();
            for &point in points {
                field.insert(point, value.clone());
            }
        }
    }

    pub fn remove(&mut self, points: &[PointId]) {
        for &point in points {
            if self.live.remove(point) {
                self.firsts.remove(point);
                for field in self.fields.values_mut() {
                    field.remove(point);
                }
            }
        }
        self.fields.retain(|_, field| !field.is_empty());
    }

    /// Live points (passages).
    pub fn len(&self) -> u64 {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Every live point.
    pub fn live(&self) -> &RoaringTreemap {
        &self.live
    }

    pub fn is_live(&self, point: PointId) -> bool {
        self.live.contains(point)
    }

    /// Points matching `plan`, read from posting-set sizes: exact for a single condition and for
    /// `$and` (the posting sets' real intersection, cheap with roaring: the smallest side alone
    /// would plan two exclusive halves as a broad filter), an upper bound for `$or` (the sum).
    /// Counting stops past `cap`.
    pub fn estimate(&self, plan: &Plan, cap: u64) -> u64 {
        let live = self.live.len();
        match plan {
            Plan::All => live,
            Plan::Nothing => 0,
            Plan::And(all) => match all.iter().map(|p| self.estimate(p, cap)).min() {
                None => live,
                Some(0) => 0,
                Some(_) => self.matching(plan).len(),
            },
            Plan::Or(any) => {
                let mut total = 0;
                for p in any {
                    total += self.estimate(p, cap);
                    if total > cap {
                        break;
                    }
                }
                total.min(live)
            }
            Plan::Equals { field, values, negate } => {
                let hits: u64 = self.fields.get(field).map_or(0, |f| values.iter().filter_map(|v| f.postings(v)).map(RoaringTreemap::len).sum());
                if *negate {
                    live.saturating_sub(hits)
                } else {
                    hits.min(live)
                }
            }
            Plan::Range { field, range } => self.fields.get(field).map_or(0, |f| f.range_count(range, cap)),
            Plan::Set(points) => points.intersection_len(&self.live),
        }
    }

    /// Whether a live point matches: for candidates of a graph walk. Panic-free (it runs inside
    /// usearch's predicate, where a panic would abort the process).
    pub fn accepts(&self, plan: &Plan, point: PointId) -> bool {
        self.live.contains(point) && self.check(plan, point)
    }

    fn check(&self, plan: &Plan, point: PointId) -> bool {
        match plan {
            Plan::All => true,
            Plan::Nothing => false,
            Plan::And(all) => all.iter().all(|p| self.check(p, point)),
            Plan::Or(any) => any.iter().any(|p| self.check(p, point)),
            Plan::Equals { field, values, negate } => {
                let value = self.fields.get(field).and_then(|f| f.value(point));
                value.is_some_and(|v| values.contains(v)) != *negate
            }
            Plan::Range { field, range } => self.fields.get(field).and_then(|f| f.value(point)).is_some_and(|v| range.contains(v)),
            Plan::Set(points) => points.contains(point),
        }
    }

    /// The matching live points, as a set.
    pub fn matching(&self, plan: &Plan) -> RoaringTreemap {
        match plan {
            Plan::All => self.live.clone(),
            Plan::Nothing => RoaringTreemap::new(),
            Plan::And(all) => {
                // Equality sides are posting sets: intersect them (roaring does it word by word).
                // The others are checked point by point on what is left, unless no side is an
                // equality, in which case the smallest is materialized first.
                let (sets, others): (Vec<&Plan>, Vec<&Plan>) = all.iter().partition(|p| matches!(p, Plan::Equals { .. } | Plan::Set(_)));
                let (mut set, others) = if sets.is_empty() {
                    let Some((smallest, _)) = all.iter().enumerate().min_by_key(|(_, p)| self.estimate(p, u64::MAX)) else { return self.live.clone() };
                    (self.matching(&all[smallest]), all.iter().enumerate().filter(|(i, _)| *i != smallest).map(|(_, p)| p).collect())
                } else {
                    let mut materialized: Vec<RoaringTreemap> = sets.iter().map(|p| self.matching(p)).collect();
                    materialized.sort_by_key(RoaringTreemap::len);
                    let mut iter = materialized.into_iter();
                    let first = iter.next().unwrap_or_default();
                    (iter.fold(first, |acc, s| acc & s), others)
                };
                if !others.is_empty() {
                    set = set.into_iter().filter(|&p| others.iter().all(|o| self.check(o, p))).collect();
                }
                set
            }
            Plan::Or(any) => any.iter().map(|p| self.matching(p)).fold(RoaringTreemap::new(), |acc, s| acc | s),
            Plan::Equals { field, values, negate } => {
                let hits = self.fields.get(field).map_or_else(RoaringTreemap::new, |f| values.iter().filter_map(|v| f.postings(v)).fold(RoaringTreemap::new(), |acc, s| acc | s));
                if *negate {
                    &self.live - &hits
                } else {
                    hits
                }
            }
            Plan::Range { field, range } => self.fields.get(field).map_or_else(RoaringTreemap::new, |f| f.range_postings(range).fold(RoaringTreemap::new(), |acc, s| acc | s)),
            Plan::Set(points) => points.as_ref() & &self.live,
        }
    }

    /// Documents among the matching points (each counted by its first passage).
    pub fn count_documents(&self, plan: &Plan) -> u64 {
        match plan {
            Plan::All => self.firsts.len(),
            _ => self.matching(plan).intersection_len(&self.firsts),
        }
    }

    /// Live documents.
    pub fn documents(&self) -> u64 {
        self.firsts.len()
    }

    /// Heap bytes, roughly: the live sets and every field's column, dictionary and postings.
    pub fn memory_bytes(&self) -> usize {
        self.live.serialized_size() + self.firsts.serialized_size() + self.fields.iter().map(|(name, f)| name.len() + f.bytes()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The index must agree with `Filter::matches` on every filter: the same answers, faster.
    #[test]
    fn the_index_agrees_with_the_filter_on_every_operator() {
        let documents = [
            json!({"lang": "en", "year": 2020, "score": 0.5, "draft": false}),
            json!({"lang": "de", "year": 2021, "score": -0.0, "draft": true, "tags": ["a"]}),
            json!({"lang": "en", "year": 2022.0, "note": null}),
            json!({"year": "2020", "lang": 3}),
            json!({}),
        ];
        let mut index = PayloadIndex::default();
        for (i, doc) in documents.iter().enumerate() {
            let point = i as u64 * 2;
            index.insert(&[point, point + 1], doc.as_object().unwrap());
        }
        let filters = [
            json!({}),
            json!({"lang": "en"}),
            json!({"lang": {"$ne": "en"}}),
            json!({"year": 2022}),
            json!({"year": {"$gte": 2021}}),
            json!({"year": {"$lt": 2021}}),
            json!({"year": {"$gt": "2019"}}),
            json!({"score": 0}),
            json!({"draft": true}),
            json!({"draft": {"$ne": true}}),
            json!({"note": null}),
            json!({"lang": {"$in": ["de", 3]}}),
            json!({"lang": {"$nin": ["de", "en"]}}),
            json!({"tags": {"$ne": "a"}}),
            json!({"missing": {"$ne": 1}}),
            json!({"$or": [{"lang": "de"}, {"year": {"$lte": 2020}}]}),
            json!({"$and": [{"lang": "en"}, {"year": {"$gt": 2020}}]}),
            json!({"lang": "en", "draft": false}),
        ];
        for filter_json in filters {
            let filter = Filter::parse(&filter_json).unwrap();
            let plan = Plan::compile(&filter);
            let expected: Vec<u64> = (0..documents.len() as u64 * 2).filter(|p| filter.matches(documents[*p as usize / 2].as_object().unwrap())).collect();
            let matching: Vec<u64> = index.matching(&plan).into_iter().collect();
            assert_eq!(matching, expected, "matching {filter_json}");
            let accepted: Vec<u64> = (0..documents.len() as u64 * 2).filter(|p| index.accepts(&plan, *p)).collect();
            assert_eq!(accepted, expected, "accepts {filter_json}");
            assert!(index.estimate(&plan, u64::MAX) >= expected.len() as u64, "estimate {filter_json}");
            assert_eq!(index.count_documents(&plan), expected.len() as u64 / 2, "documents {filter_json}");
        }
        index.remove(&[0, 1]);
        let plan = Plan::compile(&Filter::parse(&json!({"lang": "en"})).unwrap());
        assert_eq!(index.matching(&plan).into_iter().collect::<Vec<_>>(), vec![4, 5]);
        assert!(!index.accepts(&plan, 0));
        assert_eq!(index.documents(), 4);
    }

    /// Issue 18, item 8. Two exclusive halves: before, `$and` was estimated by its smaller side
    /// (50 %), so the planner chose a post-filtered walk that nothing passed and then a filtered
    /// walk over the whole graph. The estimate is now the real intersection (0), which the exact
    /// path answers at once; `$in` counts a repeated value once.
    #[test]
    fn and_is_estimated_by_the_real_intersection_and_in_counts_values_once() {
        let mut index = PayloadIndex::default();
        let (a, b) = (json!({"a": "x"}), json!({"b": "y"}));
        for point in 0..100_000u64 {
            index.insert(&[point], if point % 2 == 0 { a.as_object().unwrap() } else { b.as_object().unwrap() });
        }
        let plan = |f: serde_json::Value| Plan::compile(&Filter::parse(&f).unwrap());
        let disjoint = plan(json!({"a": "x", "b": "y"}));
        assert_eq!(index.estimate(&disjoint, u64::MAX), 0);
        assert_eq!(index.estimate(&plan(json!({"a": "x", "b": {"$ne": "y"}})), u64::MAX), 50_000);
        assert_eq!(index.estimate(&plan(json!({"a": {"$in": ["x", "x", "x"]}})), u64::MAX), 50_000);
        let many: Vec<String> = (0..5_000).map(|i| format!("v{i}")).chain(["x".to_owned()]).collect();
        let wide = plan(json!({"a": {"$in": many}}));
        assert_eq!(index.estimate(&wide, u64::MAX), 50_000);
        assert!(index.accepts(&wide, 0) && !index.accepts(&wide, 1));
    }

    /// The index written at a dump and read back answers every filter as the original, values
    /// freed by removals are reused, and a damaged file is refused.
    #[test]
    fn a_saved_index_reads_back_the_same_and_damage_is_refused() {
        let mut index = PayloadIndex::default();
        for point in 0..20_000u64 {
            let meta = json!({"bucket": point % 100, "lang": if point % 3 == 0 { "en" } else { "de" }, "draft": point % 2 == 0, "tags": [1], "n": null});
            index.insert(&[point * 2, point * 2 + 1], meta.as_object().unwrap());
        }
        index.remove(&(0..2_000u64).collect::<Vec<_>>());
        index.insert(&[50_000], json!({"bucket": 1000, "lang": "fr"}).as_object().unwrap());
        let covers = file::Covers { watermark: 50_001, changes: 7 };
        let bytes = file::encode(&index, covers);
        let (back, read) = file::decode(&bytes).unwrap();
        assert_eq!(read, covers);
        for f in [json!({"bucket": {"$lt": 10}}), json!({"lang": "en"}), json!({"lang": {"$ne": "de"}}), json!({"draft": true}), json!({"n": null}), json!({"tags": {"$ne": 1}}), json!({"bucket": 1000})] {
            let plan = Plan::compile(&Filter::parse(&f).unwrap());
            assert_eq!(back.matching(&plan), index.matching(&plan), "{f}");
            assert_eq!(back.estimate(&plan, u64::MAX), index.estimate(&plan, u64::MAX), "{f}");
            assert!((0..40_000u64).step_by(7).all(|p| back.accepts(&plan, p) == index.accepts(&plan, p)), "{f}");
        }
        assert_eq!((back.len(), back.documents()), (index.len(), index.documents()));
        let mut bad = bytes.clone();
        bad[40] ^= 1;
        assert!(file::decode(&bad).is_err());
        assert!(file::decode(&bytes[..bytes.len() - 1]).is_err());
        // A value nobody holds any more gives its code to the next new value.
        let mut small = PayloadIndex::default();
        small.insert(&[1], json!({"k": "a"}).as_object().unwrap());
        small.remove(&[1]);
        small.insert(&[2], json!({"k": "b"}).as_object().unwrap());
        assert_eq!(small.fields["k"].dict.len(), 2, "code 1 reused");
    }
}

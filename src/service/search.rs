//! Search: dense, lexical (BM25) or hybrid (Reciprocal Rank Fusion of both), returning the `k`
//! best documents (each with its best passage) or the `k` best passages.
//!
//! Each side contributes `candidates` passages (default `max(4k, 50)`, `max(4k, 200)` in hybrid
//! mode); when grouping them by document leaves
//! fewer than `k` documents and a side had more to give, the candidate count grows fourfold and
//! the search runs again, so a few long documents cannot crowd the others out.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::{blocking, Service, ServiceError};
use crate::domain::{PointId, Span};
use crate::embed::{EmbedRequest, EmbeddingProvider};
use crate::engine::{Collection, Filter, FilterStrategy, Scored};

/// The mode a text query runs in when it names none, chosen on SciFact (README, "Retrieval").
pub const DEFAULT_MODE: Mode = Mode::Hybrid;
/// RRF's constant: a rank-r hit scores 1 / (k + r). 60 as in the RRF paper (Cormack et al. 2009).
pub const DEFAULT_RRF_K: f32 = 60.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Dense,
    Lexical,
    Hybrid,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fusion {
    pub rrf_k: f32,
    pub dense_weight: f32,
    pub lexical_weight: f32,
}

impl Default for Fusion {
    fn default() -> Self {
        Fusion { rrf_k: DEFAULT_RRF_K, dense_weight: 1.0, lexical_weight: 1.0 }
    }
}

/// A request's fusion settings; what it leaves out comes from the collection's model (its
/// manifest's tuned `hybrid`), else `Fusion::default()`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FusionChoice {
    pub rrf_k: Option<f32>,
    pub dense_weight: Option<f32>,
    pub lexical_weight: Option<f32>,
}

impl FusionChoice {
    fn resolve(self, defaults: Fusion) -> Fusion {
        Fusion {
            rrf_k: self.rrf_k.unwrap_or(defaults.rrf_k),
            dense_weight: self.dense_weight.unwrap_or(defaults.dense_weight),
            lexical_weight: self.lexical_weight.unwrap_or(defaults.lexical_weight),
        }
    }
}

/// One search. Give `query` (text) or `vector`; a vector can only search densely.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    pub query: Option<String>,
    pub vector: Option<Vec<f32>>,
    pub k: usize,
    pub ef: Option<usize>,
    pub filter: Option<Filter>,
    /// `None`: `DEFAULT_MODE` for text, dense for a vector.
    pub mode: Option<Mode>,
    /// Return passages rather than documents.
    pub passages: bool,
    /// Candidate passages per side before grouping and fusion; `None`: max(4k, 200) in hybrid
    /// mode, else max(4k, 50). Unused where no grouping happens (passages asked, or one passage
    /// per document, outside hybrid): the search then takes exactly k.
    pub candidates: Option<usize>,
    pub fusion: FusionChoice,
    pub include_text: bool,
    pub include_metadata: bool,
    pub include_vector: bool,
}

impl Default for SearchQuery {
    fn default() -> Self {
        SearchQuery {
            query: None,
            vector: None,
            k: 10,
            ef: None,
            filter: None,
            mode: None,
            passages: false,
            candidates: None,
            fusion: FusionChoice::default(),
            include_text: true,
            include_metadata: true,
            include_vector: false,
        }
    }
}

/// A document (its best passage) or a passage, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    /// The document's id.
    pub id: String,
    /// dense: the metric's score (cosine similarity, inner product, or l2 distance); lexical:
    /// BM25; hybrid: the RRF score.
    pub score: f32,
    /// The passage: its position in the document and its character span.
    pub passage: usize,
    pub span: Span,
    /// The passage's text.
    pub text: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    /// The passage's vector.
    pub vector: Option<Vec<f32>>,
}

struct Plan {
    query: SearchQuery,
    mode: Mode,
    vector: Option<Vec<f32>>,
    fusion: Fusion,
}

/// Fewest candidate passages each side brings to a hybrid search by default.
pub const HYBRID_MIN_CANDIDATES: usize = 200;

/// Most candidate passages a request may ask of each side.
pub const MAX_CANDIDATES: usize = 10_000;

/// Largest RRF constant or fusion weight (typical values: k 60, weights near 1); bounded so that
/// fused scores stay finite.
pub const MAX_FUSION_PARAMETER: f32 = 1e6;

impl Service {
    fn plan(&self, query: SearchQuery, at: &str, defaults: Fusion) -> Result<Plan, ServiceError> {
        let max_k = self.limits.max_k;
        if query.k == 0 || query.k > max_k {
            return Err(ServiceError::invalid(format!("{at}k must be in 1..={max_k}, got {}", query.k)));
        }
        if let Some(ef) = query.ef {
            if ef == 0 || ef > 10_000 {
                return Err(ServiceError::invalid(format!("{at}ef must be in 1..=10000, got {ef}")));
            }
        }
        if let Some(c) = query.candidates {
            if c == 0 || c > MAX_CANDIDATES {
                return Err(ServiceError::invalid(format!("{at}candidates must be in 1..={MAX_CANDIDATES}, got {c}")));
            }
        }
        let f = query.fusion.resolve(defaults);
        let in_range = |x: f32| (0.0..=MAX_FUSION_PARAMETER).contains(&x);
        if !(in_range(f.rrf_k) && in_range(f.dense_weight) && in_range(f.lexical_weight)) {
            return Err(ServiceError::invalid(format!("{at}rrf_k and weights must be in 0..={MAX_FUSION_PARAMETER:e}")));
        }
        let mode = match (&query.query, &query.vector) {
            (Some(_), Some(_)) => return Err(ServiceError::invalid(format!("{at}give query or vector, not both"))),
            (None, None) => return Err(ServiceError::invalid(format!("{at}give query (text) or vector"))),
            (Some(q), None) if q.trim().is_empty() => return Err(ServiceError::invalid(format!("{at}query is empty"))),
            (Some(q), None) if q.chars().count() > MAX_QUERY_CHARS => {
                return Err(ServiceError::Invalid { code: "query_too_large", message: format!("{at}query has {} characters; at most {MAX_QUERY_CHARS}", q.chars().count()) })
            }
            (Some(_), None) => query.mode.unwrap_or(DEFAULT_MODE),
            (None, Some(_)) => match query.mode {
                None | Some(Mode::Dense) => Mode::Dense,
                Some(_) => return Err(ServiceError::invalid(format!("{at}a vector query can only search in dense mode: give query (text) for lexical or hybrid"))),
            },
        };
        let vector = query.vector.clone();
        Ok(Plan { query, mode, vector, fusion: f })
    }

    /// Runs searches on one collection; text queries needing vectors are embedded in one call.
    pub async fn search(&self, collection: &str, queries: Vec<SearchQuery>) -> Result<Vec<Vec<SearchHit>>, ServiceError> {
        let collection = self.collection(collection)?;
        if queries.is_empty() {
            return Err(ServiceError::invalid("searches must not be empty"));
        }
        if queries.len() > self.limits.max_batch_queries {
            return Err(ServiceError::TooLarge(format!("at most {} searches per request, got {}", self.limits.max_batch_queries, queries.len())));
        }
        let single = queries.len() == 1;
        let defaults = self.fusion_defaults(&collection);
        let mut plans = queries
            .into_iter()
            .enumerate()
            .map(|(i, q)| self.plan(q, &if single { String::new() } else { format!("searches[{i}].") }, defaults))
            .collect::<Result<Vec<_>, _>>()?;
        let texts: Vec<String> = plans.iter().filter(|p| p.vector.is_none() && p.mode != Mode::Lexical).filter_map(|p| p.query.query.clone()).collect();
        if !texts.is_empty() {
            let provider = self.bound_model(&collection, "search it with a vector, or with mode lexical")?;
            let mut vectors = provider.embed(EmbedRequest::queries(texts)).await?.into_iter();
            for plan in plans.iter_mut().filter(|p| p.vector.is_none() && p.mode != Mode::Lexical) {
                plan.vector = vectors.next().map(|e| e.embedding);
            }
        }
        // A request abandoned by its client or its timeout drops this future: the searches not
        // yet run are skipped rather than run for no one.
        let abandoned = Abandoned::default();
        let flag = abandoned.0.clone();
        blocking(move || {
            plans
                .into_iter()
                .map(|plan| match flag.load(std::sync::atomic::Ordering::Relaxed) {
                    true => Err(ServiceError::Worker("the request was abandoned".into())),
                    false => run(&collection, plan),
                })
                .collect()
        })
        .await
    }

    /// Hybrid fusion for a collection when a request sets none: its model's tuned values.
    pub fn fusion_defaults(&self, collection: &Collection) -> Fusion {
        let model = collection.config.model.as_ref().and_then(|b| self.model_named(&b.name));
        model.and_then(|m| m.info().hybrid.as_ref()).map_or_else(Fusion::default, |h| Fusion { rrf_k: h.rrf_k, dense_weight: h.dense_weight, lexical_weight: h.lexical_weight })
    }

    /// One search.
    pub async fn search_one(&self, collection: &str, query: SearchQuery) -> Result<Vec<SearchHit>, ServiceError> {
        Ok(self.search(collection, vec![query]).await?.pop().unwrap_or_default())
    }
}

/// Set when dropped: tells blocking work that its request is gone.
#[derive(Default)]
struct Abandoned(Arc<std::sync::atomic::AtomicBool>);

impl Drop for Abandoned {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Longest text query, in characters (lexical work grows with its terms; see also
/// `lexical::MAX_QUERY_TERMS`).
pub const MAX_QUERY_CHARS: usize = 16_384;

/// A candidate passage with its ranks (1-based) in the lists that have it.
#[derive(Debug, Clone)]
struct Candidate {
    point: PointId,
    document: String,
    passage: usize,
    span: Span,
    dense: Option<(usize, f32)>,
    lexical: Option<(usize, f32)>,
}

fn rrf(fusion: &Fusion, rank: Option<usize>, weight: f32) -> f32 {
    rank.map_or(0.0, |r| weight / (fusion.rrf_k + r as f32))
}

fn run(collection: &Arc<Collection>, plan: Plan) -> Result<Vec<SearchHit>, ServiceError> {
    let Plan { mut query, mode, vector, fusion } = plan;
    // A Qdrant-style condition reads the store once here, not once per side and widening.
    if let Some(filter) = query.filter.take() {
        query.filter = Some(collection.resolve_filter(&filter)?);
    }
    let vector = vector.map(|v| collection.prepare_vector(v)).transpose()?;
    let k = query.k;
    let stats = collection.stats();
    let total = stats.passages.max(1);
    // With one passage per document, k passages are k documents: no grouping to make room for.
    let one_passage_each = stats.passages == stats.documents;
    // Hybrid fuses deeper lists: on SciFact train (bge-small, benches/results/models-tuning.md)
    // 200 candidates a side scored nDCG@10 0.7632 against 0.7596 with 50, for 1.4 ms more at p50.
    let floor = if mode == Mode::Hybrid { HYBRID_MIN_CANDIDATES } else { 50 };
    let mut limit = if (query.passages || one_passage_each) && mode != Mode::Hybrid { k } else { query.candidates.unwrap_or((4 * k).max(floor)) };
    loop {
        let dense: Vec<Scored> = match (&vector, mode) {
            (Some(v), Mode::Dense | Mode::Hybrid) => collection.dense(v, limit, query.ef, query.filter.as_ref(), FilterStrategy::Auto)?,
            _ => Vec::new(),
        };
        let lexical: Vec<Scored> = match (&query.query, mode) {
            (Some(text), Mode::Lexical | Mode::Hybrid) => collection.lexical(text, limit, query.filter.as_ref())?,
            _ => Vec::new(),
        };
        let candidates = resolve(collection, &dense, &lexical)?;
        let ranked = rank(&candidates, mode, &fusion, query.passages);
        let exhausted = (dense.len() < limit && lexical.len() < limit) || limit >= total;
        if ranked.len() >= k || exhausted {
            return fetch(collection, &query, ranked.into_iter().take(k).collect());
        }
        limit = (limit * 4).min(total);
    }
}

/// Which document and passage each candidate point is (points deleted meanwhile drop out).
fn resolve(collection: &Collection, dense: &[Scored], lexical: &[Scored]) -> Result<Vec<Candidate>, ServiceError> {
    let mut by_point: HashMap<PointId, Candidate> = HashMap::new();
    let mut order = Vec::new();
    for (side, list) in [(0, dense), (1, lexical)] {
        for (i, hit) in list.iter().enumerate() {
            if !by_point.contains_key(&hit.point) {
                let Some(place) = collection.passage_of(hit.point)? else { continue };
                by_point.insert(hit.point, Candidate { point: hit.point, document: place.document, passage: place.index, span: place.span, dense: None, lexical: None });
                order.push(hit.point);
            }
            if let Some(c) = by_point.get_mut(&hit.point) {
                let entry = Some((i + 1, hit.score));
                if side == 0 {
                    c.dense = entry;
                } else {
                    c.lexical = entry;
                }
            }
        }
    }
    Ok(order.into_iter().filter_map(|p| by_point.remove(&p)).collect())
}

/// Ranks candidates (passages, or documents by their best passage): returns (candidate, score), best first.
fn rank(candidates: &[Candidate], mode: Mode, fusion: &Fusion, passages: bool) -> Vec<(Candidate, f32)> {
    let passage_score = |c: &Candidate| -> f32 {
        match mode {
            Mode::Dense => c.dense.map_or(f32::NAN, |(_, s)| s),
            Mode::Lexical => c.lexical.map_or(f32::NAN, |(_, s)| s),
            Mode::Hybrid => rrf(fusion, c.dense.map(|d| d.0), fusion.dense_weight) + rrf(fusion, c.lexical.map(|l| l.0), fusion.lexical_weight),
        }
    };
    // Position in the mode's own order: dense and lexical lists are already best first.
    let order_key = |c: &Candidate| -> usize {
        match mode {
            Mode::Dense => c.dense.map_or(usize::MAX, |d| d.0),
            Mode::Lexical => c.lexical.map_or(usize::MAX, |l| l.0),
            Mode::Hybrid => 0,
        }
    };
    if passages {
        let mut out: Vec<(Candidate, f32)> = candidates.iter().filter(|c| !passage_score(c).is_nan()).map(|c| (c.clone(), passage_score(c))).collect();
        match mode {
            Mode::Hybrid => out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.point.cmp(&b.0.point))),
            _ => out.sort_by_key(|(c, _)| order_key(c)),
        }
        return out;
    }
    // Documents: each side ranks a document by its best passage there.
    let mut docs: HashMap<&str, (Option<usize>, Option<usize>, Option<&Candidate>, f32, usize)> = HashMap::new();
    let mut dense_docs: Vec<&Candidate> = candidates.iter().filter(|c| c.dense.is_some()).collect();
    dense_docs.sort_by_key(|c| c.dense.map(|d| d.0));
    let mut lexical_docs: Vec<&Candidate> = candidates.iter().filter(|c| c.lexical.is_some()).collect();
    lexical_docs.sort_by_key(|c| c.lexical.map(|l| l.0));
    for (side, list) in [(0, &dense_docs), (1, &lexical_docs)] {
        let mut rank = 0;
        for c in list.iter() {
            let entry = docs.entry(c.document.as_str()).or_insert((None, None, None, f32::NAN, usize::MAX));
            let slot = if side == 0 { &mut entry.0 } else { &mut entry.1 };
            if slot.is_none() {
                rank += 1;
                *slot = Some(rank);
            }
        }
    }
    // The passage shown for a document: its best by the mode's own passage order.
    for c in candidates {
        let score = passage_score(c);
        if score.is_nan() {
            continue;
        }
        if let Some(entry) = docs.get_mut(c.document.as_str()) {
            let better = match (mode, entry.2) {
                (_, None) => true,
                (Mode::Hybrid, Some(_)) => score > entry.3,
                (_, Some(_)) => order_key(c) < entry.4,
            };
            if better {
                entry.2 = Some(c);
                entry.3 = score;
                entry.4 = order_key(c);
            }
        }
    }
    let mut out: Vec<(Candidate, f32, usize)> = docs
        .into_values()
        .filter_map(|(dense_rank, lexical_rank, best, passage_score, order)| {
            let best = best?;
            let score = match mode {
                Mode::Hybrid => rrf(fusion, dense_rank, fusion.dense_weight) + rrf(fusion, lexical_rank, fusion.lexical_weight),
                _ => passage_score,
            };
            Some((best.clone(), score, order))
        })
        .collect();
    match mode {
        Mode::Hybrid => out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.document.cmp(&b.0.document))),
        _ => out.sort_by_key(|(_, _, order)| *order),
    }
    out.into_iter().map(|(c, s, _)| (c, s)).collect()
}

fn fetch(collection: &Collection, query: &SearchQuery, ranked: Vec<(Candidate, f32)>) -> Result<Vec<SearchHit>, ServiceError> {
    let mut hits = Vec::with_capacity(ranked.len());
    for (candidate, score) in ranked {
        if !(query.include_text || query.include_metadata || query.include_vector) {
            // Ids and scores only (a list to fuse): the candidate's document was live when
            // `resolve` read its passage, a moment ago.
            hits.push(SearchHit { id: candidate.document, score, passage: candidate.passage, span: candidate.span, text: None, metadata: None, vector: None });
            continue;
        }
        // Deleted between the search and this read: skipped.
        // The text is read only when the answer carries it.
        let document = if query.include_text { collection.get(&candidate.document)? } else { collection.get_head(&candidate.document)? };
        let Some(document) = document else { continue };
        let vector = if query.include_vector { collection.vectors_of(&[candidate.point])?.pop().map(|(_, v)| v) } else { None };
        hits.push(SearchHit {
            text: query.include_text.then(|| candidate.span.slice(&document.text).to_owned()),
            metadata: query.include_metadata.then_some(document.metadata),
            id: document.id,
            score,
            passage: candidate.passage,
            span: candidate.span,
            vector,
        });
    }
    Ok(hits)
}

//! Prometheus metrics: the recorder, every family's HELP text, and values read at scrape time.

use std::sync::atomic::Ordering;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::state::Loaded;
use crate::embed::EmbeddingProvider;

/// Request latency, seconds.
const LATENCY_BUCKETS: [f64; 13] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Texts per model call (at most `--max-batch-size`, 32 by default).
const BATCH_TEXT_BUCKETS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];
/// Padded tokens per model call (at most `--max-batch-tokens`, 1,024 by default, or one long text).
const PADDED_TOKEN_BUCKETS: [f64; 10] = [16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0];

/// Installs the process-wide recorder once; later calls get the same handle.
pub fn install() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full("akidb_http_request_duration_seconds".into()), &LATENCY_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full("akidb_embed_batch_texts".into()), &BATCH_TEXT_BUCKETS))
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full("akidb_embed_batch_padded_tokens".into()), &PADDED_TOKEN_BUCKETS))
                .ok()?
                .install_recorder()
                .map_err(|e| tracing::warn!(%e, "metrics recorder not installed"))
                .ok()?;
            describe();
            Some(handle)
        })
        .clone()
}

/// HELP lines: one per family.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!("akidb_http_requests_total", "HTTP requests answered, by route, method and status (refusals by auth, load shedding and timeouts included)");
    describe_histogram!("akidb_http_request_duration_seconds", Unit::Seconds, "Time from receiving a request to answering it, by route, method and status");
    describe_histogram!("akidb_embed_batch_texts", Unit::Count, "Texts per model call, by model and inference lane");
    describe_histogram!("akidb_embed_batch_padded_tokens", Unit::Count, "Padded tokens (texts x longest text) per model call, by model and inference lane");
    describe_counter!("akidb_embed_backend_restarts_total", "Embedding backends replaced after a panic, by model and inference lane");
    describe_gauge!("akidb_embed_queue_texts", "Texts waiting for a model call, by model");
    describe_gauge!("akidb_embed_backend_up", "1 while every inference lane of the model has a backend loaded, 0 while one is being replaced");
    describe_counter!("akidb_embed_batches_total", "Model calls made, by model");
    describe_counter!("akidb_embed_texts_total", "Texts embedded, by model");
    describe_counter!("akidb_embed_padded_tokens_total", "Padded tokens fed to the model, by model");
    describe_gauge!("akidb_collection_documents", "Live documents, by collection");
    describe_gauge!("akidb_collection_tombstones", "Deleted or replaced points still in the graph, by collection");
    describe_gauge!("akidb_collection_graph_points", "Points in the graph (tombstones included), by collection");
}

/// Queue depth, batching totals, documents and tombstones per collection: read when Prometheus
/// scrapes. The totals are counters kept by the batcher, exported as they stand.
pub fn record_scrape_time_values(loaded: &Loaded) {
    for model in &loaded.models {
        let name = model.info().name.clone();
        let stats = model.batcher().stats();
        metrics::gauge!("akidb_embed_queue_texts", "model" => name.clone()).set(stats.queued_texts.load(Ordering::Relaxed) as f64);
        metrics::gauge!("akidb_embed_backend_up", "model" => name.clone()).set(if model.healthy() { 1.0 } else { 0.0 });
        metrics::counter!("akidb_embed_batches_total", "model" => name.clone()).absolute(stats.batches.load(Ordering::Relaxed) as u64);
        metrics::counter!("akidb_embed_texts_total", "model" => name.clone()).absolute(stats.batched_texts.load(Ordering::Relaxed) as u64);
        metrics::counter!("akidb_embed_padded_tokens_total", "model" => name).absolute(stats.padded_tokens.load(Ordering::Relaxed) as u64);
    }
    for collection in loaded.collections() {
        let stats = collection.stats();
        let name = collection.name().to_string();
        metrics::gauge!("akidb_collection_documents", "collection" => name.clone()).set(stats.documents as f64);
        metrics::gauge!("akidb_collection_tombstones", "collection" => name.clone()).set(stats.tombstones as f64);
        metrics::gauge!("akidb_collection_graph_points", "collection" => name).set(stats.graph_points as f64);
    }
}

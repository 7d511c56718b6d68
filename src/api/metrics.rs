//! Prometheus metrics: the recorder, and gauges read at scrape time.

use std::sync::atomic::Ordering;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::state::Loaded;
use crate::embed::EmbeddingProvider;

/// Installs the process-wide recorder once; later calls get the same handle.
pub fn install() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
            PrometheusBuilder::new()
                .set_buckets(&buckets)
                .ok()?
                .install_recorder()
                .map_err(|e| tracing::warn!(%e, "metrics recorder not installed"))
                .ok()
        })
        .clone()
}

/// Queue depth, batching totals, documents and tombstones per collection: state, not events,
/// so they are read when Prometheus scrapes.
pub fn record_gauges(loaded: &Loaded) {
    for model in &loaded.models {
        let name = model.info().name.clone();
        let stats = model.batcher().stats();
        metrics::gauge!("akidb_embed_queue_texts", "model" => name.clone()).set(stats.queued_texts.load(Ordering::Relaxed) as f64);
        metrics::gauge!("akidb_embed_batches_total", "model" => name.clone()).set(stats.batches.load(Ordering::Relaxed) as f64);
        metrics::gauge!("akidb_embed_texts_total", "model" => name.clone()).set(stats.batched_texts.load(Ordering::Relaxed) as f64);
        metrics::gauge!("akidb_embed_padded_tokens_total", "model" => name).set(stats.padded_tokens.load(Ordering::Relaxed) as f64);
    }
    for collection in loaded.engine.collections() {
        let stats = collection.stats();
        let name = collection.name().to_owned();
        metrics::gauge!("akidb_collection_documents", "collection" => name.clone()).set(stats.documents as f64);
        metrics::gauge!("akidb_collection_tombstones", "collection" => name.clone()).set(stats.tombstones as f64);
        metrics::gauge!("akidb_collection_graph_points", "collection" => name).set(stats.graph_points as f64);
    }
}

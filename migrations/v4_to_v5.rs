//! Schema v4 → v5: collection configs gain `model: Option<_>` (collections without a model take
//! vectors from their clients), `dims`, and `backend`. Existing collections keep the backend their
//! index was built with (`hnsw_rs`), so their dumps stay valid. Documents and passages are
//! unchanged. All configs are rewritten in one transaction: the step is atomic, a re-run after
//! a crash starts from the v4 configs again.

use super::frozen::{decode, encode, v4, v5};
use crate::store::sled_store::COLLECTIONS;
use crate::store::StoreError;

fn fail(message: impl std::fmt::Display) -> StoreError {
    StoreError::Migration { from: 4, message: message.to_string() }
}

pub fn migrate(db: &sled::Db) -> Result<(), StoreError> {
    let collections = db.open_tree(COLLECTIONS)?;
    let mut batch = sled::Batch::default();
    for entry in collections.iter() {
        let (name, bytes) = entry?;
        let old: v4::CollectionConfig = decode(&bytes).map_err(|e| fail(format!("collection {}: {e}", String::from_utf8_lossy(&name))))?;
        let config = v5::CollectionConfig {
            id: old.id,
            name: old.name,
            dims: old.model.dims,
            model: Some(old.model),
            metric: old.metric,
            hnsw: old.hnsw,
            backend: v5::IndexBackend::HnswRs,
            created_at_ms: old.created_at_ms,
            chunking: old.chunking,
        };
        batch.insert(name, encode(&config));
    }
    // One batch is atomic in sled: every config is v4 or every config is v5.
    collections.apply_batch(batch)?;
    fail::fail_point!("migrate.v4_to_v5.written");
    db.flush()?;
    Ok(())
}

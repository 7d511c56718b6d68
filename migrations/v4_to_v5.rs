//! Schema v4 → v5: collection configs gain `model: Option<_>` (collections without a model take
//! vectors from their clients), `dims`, and `backend`. Existing collections keep the backend their
//! index was built with (`hnsw_rs`), so their dumps stay valid. Documents and passages are
//! unchanged. All configs and the schema version 5 are written in one transaction over both
//! trees: after a crash the store is wholly v4 (the step runs again) or wholly v5 with its
//! version saying so (v5 records are never decoded as v4).

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::frozen::{decode, encode, v4, v5};
use crate::store::sled_store::{COLLECTIONS, SCHEMA_KEY};
use crate::store::StoreError;

fn fail(message: impl std::fmt::Display) -> StoreError {
    StoreError::Migration { from: 4, message: message.to_string() }
}

pub fn migrate(db: &sled::Db) -> Result<(), StoreError> {
    let collections = db.open_tree(COLLECTIONS)?;
    let mut configs = Vec::new();
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
        configs.push((name, encode(&config)));
    }
    let default: &sled::Tree = db;
    (&collections, default)
        .transaction(|(collections, default)| {
            for (name, bytes) in &configs {
                collections.insert(name, bytes.as_slice())?;
            }
            default.insert(SCHEMA_KEY, &5u32.to_be_bytes())?;
            Ok::<_, ConflictableTransactionError<()>>(())
        })
        .map_err(|e| match e {
            TransactionError::Storage(e) => StoreError::Sled(e),
            TransactionError::Abort(()) => fail("transaction aborted"),
        })?;
    fail::fail_point!("migrate.v4_to_v5.written");
    db.flush()?;
    fail::fail_point!("migrate.v4_to_v5.flushed");
    Ok(())
}

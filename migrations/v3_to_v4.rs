//! Schema v3 → v4: documents become passages. Every existing document becomes one passage (its
//! whole text, its one vector, under its old point id) and every collection gets
//! `chunking: None`, so nothing is re-embedded and the indexes stay valid. See migrations/README.md.
//!
//! Crash-safe by steps recorded in the `migration_v4` tree (name → `done`):
//! 1. `c/<id>/docs` is read and written out as `c/<id>/documents` and `c/<id>/passages`
//!    (idempotent: a re-run overwrites the same keys with the same values);
//! 2. one transaction rewrites the config (v4) and marks the collection done;
//! 3. the v3 trees are dropped (a re-run of a done collection drops them again, and the next open
//!    drops any left).

use sled::transaction::Transactional;

use super::frozen::{decode, encode, v3, v4};
use crate::store::sled_store::{unwrap_tx, COLLECTIONS};
use crate::store::StoreError;

pub const PROGRESS_TREE: &str = "migration_v4";

fn fail(message: impl std::fmt::Display) -> StoreError {
    StoreError::Migration { from: 3, message: message.to_string() }
}

fn point_key(point: u64) -> [u8; 8] {
    point.to_be_bytes()
}

/// Rewrites one collection's documents as v4 records, in batches.
fn split_documents(db: &sled::Db, id: &str) -> Result<(), StoreError> {
    let old_docs = db.open_tree(v3::docs_tree(id))?;
    let (documents, passages) = (db.open_tree(v4::docs_tree(id))?, db.open_tree(v4::points_tree(id))?);
    let (mut doc_batch, mut passage_batch, mut pending) = (sled::Batch::default(), sled::Batch::default(), 0usize);
    for entry in old_docs.iter() {
        let (key, bytes) = entry?;
        let old: v3::DocRecord = decode(&bytes).map_err(|e| fail(format!("document {}: {e}", String::from_utf8_lossy(&key))))?;
        let document = String::from_utf8(key.to_vec()).map_err(fail)?;
        let span = v4::Span { start: 0, end: old.text.chars().count() };
        let passage = v4::PassageRecord { document, index: 0, span, vector: old.vector };
        doc_batch.insert(key, encode(&v4::DocRecord { text: old.text, metadata: old.metadata, passages: vec![(old.point, span)] }));
        passage_batch.insert(&point_key(old.point), encode(&passage));
        pending += 1;
        if pending == 10_000 {
            documents.apply_batch(std::mem::take(&mut doc_batch))?;
            passages.apply_batch(std::mem::take(&mut passage_batch))?;
            pending = 0;
        }
    }
    documents.apply_batch(doc_batch)?;
    passages.apply_batch(passage_batch)?;
    Ok(())
}

pub fn migrate(db: &sled::Db) -> Result<(), StoreError> {
    let collections = db.open_tree(COLLECTIONS)?;
    let progress = db.open_tree(PROGRESS_TREE)?;
    let names: Vec<sled::IVec> = collections.iter().keys().collect::<Result<_, _>>()?;
    for name_bytes in names {
        let name = String::from_utf8(name_bytes.to_vec()).map_err(fail)?;
        let config_bytes = collections.get(&name_bytes)?.ok_or_else(|| fail(format!("collection {name} vanished")))?;
        if progress.get(&name_bytes)?.is_some() {
            let config: v4::CollectionConfig = decode(&config_bytes).map_err(|e| fail(format!("collection {name}: {e}")))?;
            db.drop_tree(v3::docs_tree(&config.id))?;
            db.drop_tree(v3::points_tree(&config.id))?;
            continue;
        }
        let old: v3::CollectionConfig = decode(&config_bytes).map_err(|e| fail(format!("collection {name}: {e}")))?;
        split_documents(db, &old.id)?;
        db.flush()?;
        fail::fail_point!("migrate.v3_to_v4.copied");
        let id = old.id.clone();
        let config = v4::CollectionConfig { id: old.id, name: old.name, model: old.model, metric: old.metric, hnsw: old.hnsw, created_at_ms: old.created_at_ms, chunking: None };
        (&collections, &progress)
            .transaction(|(collections, progress)| {
                collections.insert(name.as_bytes(), encode(&config))?;
                progress.insert(name.as_bytes(), b"done".as_slice())?;
                Ok(())
            })
            .map_err(unwrap_tx)?;
        db.flush()?;
        db.drop_tree(v3::docs_tree(&id))?;
        db.drop_tree(v3::points_tree(&id))?;
    }
    Ok(())
}

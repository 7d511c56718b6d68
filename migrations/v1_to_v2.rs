//! Schema v1 → v2. See migrations/README.md.
//!
//! One sled transaction per collection writes all of it (re-encoded documents, the points tree,
//! the re-encoded config and, as the marker, the counter), so a crash leaves each collection
//! either wholly v1 or wholly v2, and a re-run skips the collections that have their counter.
//! The v1 documents are read outside the transaction (sled transactions cannot iterate) and held
//! in memory for it: v1 stores are small test-era stores.

use sled::transaction::{ConflictableTransactionError, Transactional};

use super::frozen::{encode, v1, v2};
use crate::store::sled_store::{unwrap_tx, COLLECTIONS, COUNTERS};
use crate::store::StoreError;

fn fail(message: impl std::fmt::Display) -> StoreError {
    StoreError::Migration { from: 1, message: message.to_string() }
}

pub fn migrate(db: &sled::Db) -> Result<(), StoreError> {
    let collections = db.open_tree(COLLECTIONS)?;
    let counters = db.open_tree(COUNTERS)?;
    for entry in collections.iter() {
        let (name_bytes, config_bytes) = entry?;
        let name = String::from_utf8(name_bytes.to_vec()).map_err(fail)?;
        if counters.contains_key(&name_bytes)? {
            continue;
        }
        // v1 configs hold the same fields as v2's, as JSON.
        let config: v1::CollectionConfig = serde_json::from_slice(&config_bytes).map_err(|e| fail(format!("collection {name}: {e}")))?;
        let docs = db.open_tree(v2::docs_tree(&name))?;
        let points = db.open_tree(v2::points_tree(&name))?;
        let mut records = Vec::new();
        for (point, doc) in docs.iter().enumerate() {
            let (id, json) = doc?;
            let old: v1::Document = serde_json::from_slice(&json).map_err(|e| fail(format!("{name}/{}: {e}", String::from_utf8_lossy(&id))))?;
            let record = v2::DocRecord {
                point: point as u64,
                text: old.text,
                metadata: serde_json::Value::Object(old.metadata).to_string(),
                vector: old.vector.iter().flat_map(|v| v.to_le_bytes()).collect(),
            };
            records.push((id, encode(&record)));
        }
        let next = records.len() as u64;
        (&docs, &points, &collections, &counters)
            .transaction(|(docs, points, collections, counters)| {
                for (point, (id, record)) in records.iter().enumerate() {
                    docs.insert(id.as_ref(), record.as_slice())?;
                    points.insert(&(point as u64).to_be_bytes(), id.as_ref())?;
                }
                // Documents re-encoded, marker not yet written: the window v1's old step crashed in.
                fail::fail_point!("migrate.v1_to_v2.documents_written");
                collections.insert(name.as_bytes(), encode(&config))?;
                counters.insert(name.as_bytes(), &next.to_be_bytes())?;
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(unwrap_tx)?;
        db.flush()?;
        fail::fail_point!("migrate.v1_to_v2.collection_done");
    }
    Ok(())
}

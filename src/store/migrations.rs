//! Brings an older store up to `SCHEMA_VERSION`, one step at a time. The steps live in the
//! top-level `migrations/` folder, with each version's records frozen in `frozen.rs`.

use std::path::Path;

use super::sled_store::{read_schema_version, write_schema_version};
use super::{StoreError, SCHEMA_VERSION};

#[path = "../../migrations/frozen.rs"]
pub mod frozen;
#[path = "../../migrations/v1_to_v2.rs"]
mod v1_to_v2;
#[path = "../../migrations/v2_to_v3.rs"]
mod v2_to_v3;
#[path = "../../migrations/v3_to_v4.rs"]
mod v3_to_v4;
#[path = "../../migrations/v4_to_v5.rs"]
mod v4_to_v5;

type Step = fn(&sled::Db) -> Result<(), StoreError>;

/// `STEPS[i]` migrates from version `i + 1` to `i + 2`.
const STEPS: [Step; (SCHEMA_VERSION - 1) as usize] = [v1_to_v2::migrate, v2_to_v3::migrate, v3_to_v4::migrate, v4_to_v5::migrate];

pub(crate) fn bring_up_to_date(db: &sled::Db, path: &Path) -> Result<(), StoreError> {
    let found = match read_schema_version(db)? {
        Some(version) => version,
        None if db.is_empty() && db.tree_names().len() <= 1 => {
            write_schema_version(db, SCHEMA_VERSION)?;
            return Ok(());
        }
        None => return Err(StoreError::Migration { from: 0, message: "the store has data but no schema version".into() }),
    };
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew { path: path.to_owned(), found, supported: SCHEMA_VERSION });
    }
    if found == 0 {
        return Err(StoreError::Migration { from: 0, message: "schema version 0 does not exist".into() });
    }
    for version in found..SCHEMA_VERSION {
        tracing::info!(from = version, to = version + 1, "migrating store");
        STEPS[(version - 1) as usize](db)?;
        write_schema_version(db, version + 1)?;
    }
    Ok(())
}

/// Trees a finished migration leaves behind for the next open to drop (never while a step that
/// reads them could still run: the store is at the current version when this is asked).
pub(crate) fn is_leftover_tree(name: &str) -> bool {
    name == v2_to_v3::PROGRESS_TREE || name == v3_to_v4::PROGRESS_TREE || name.starts_with("docs/") || name.starts_with("points/")
}

#[cfg(test)]
mod tests {
    use super::frozen;
    use crate::domain::IndexBackend;
    use crate::store::{codec, Chunking, CollectionConfig, HnswParams, Metric, ModelBinding, Span};

    /// Today's records must still be the v5 records: if this fails, a record changed and needs
    /// a v5 → v6 step (and SCHEMA_VERSION 6), not a silent change of v5's bytes.
    #[test]
    fn todays_records_are_the_frozen_v5_records() {
        let today = CollectionConfig {
            id: "0190-id".into(),
            name: "n".into(),
            model: Some(ModelBinding { name: "m".into(), dims: 4, pooling: crate::model::Pooling::LastToken, query_instruction: Some("q".into()) }),
            dims: 4,
            metric: Metric::L2,
            hnsw: HnswParams { m: 8, ef_construction: 100, ef_search: 50 },
            backend: IndexBackend::UsearchF16,
            created_at_ms: 42,
            chunking: Some(Chunking { max_tokens: 100, overlap_tokens: 10 }),
        };
        let frozen: frozen::v5::CollectionConfig = frozen::decode(&codec::encode(&today)).unwrap();
        assert_eq!(frozen.id, "0190-id");
        assert_eq!(frozen.model.as_ref().unwrap().pooling, frozen::v5::Pooling::LastToken);
        assert_eq!(frozen.metric, frozen::v5::Metric::L2);
        assert_eq!(frozen.backend, frozen::v5::IndexBackend::UsearchF16);
        assert_eq!(frozen.chunking, Some(frozen::v5::Chunking { max_tokens: 100, overlap_tokens: 10 }));
        for backend in IndexBackend::ALL {
            let frozen: frozen::v5::IndexBackend = frozen::decode(&codec::encode(&backend)).unwrap();
            assert_eq!(serde_json::to_value(frozen).unwrap(), serde_json::to_value(backend).unwrap());
        }
        assert_eq!(frozen::encode(&frozen), codec::encode(&today));
        let record = codec::DocRecord { text: "t".into(), metadata: "{}".into(), passages: vec![(3, Span { start: 0, end: 1 })] };
        let frozen_record: frozen::v5::DocRecord = frozen::decode(&codec::encode(&record)).unwrap();
        assert_eq!(frozen::encode(&frozen_record), codec::encode(&record));
        let passage = codec::PassageRecord { document: "d".into(), index: 2, span: Span { start: 1, end: 9 }, vector: vec![0, 0, 128, 63] };
        let frozen_passage: frozen::v5::PassageRecord = frozen::decode(&codec::encode(&passage)).unwrap();
        assert_eq!(frozen::encode(&frozen_passage), codec::encode(&passage));
    }
}

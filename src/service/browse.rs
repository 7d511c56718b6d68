//! Paging through a collection's documents and counting what a filter matches.

use super::{blocking, Service, ServiceError};
use crate::domain::Document;
use crate::engine::Filter;

/// One page of documents in id order, and the cursor of the next page (None on the last).
#[derive(Debug)]
pub struct Page {
    pub documents: Vec<Document>,
    pub next_cursor: Option<String>,
}

/// The cursor is the last id of a page in lowercase hex: opaque to clients, stable under writes
/// (documents added before it are skipped, after it are seen; nothing is seen twice). Any even-
/// length hex string is a valid position (the page starts after those bytes), so a cursor never
/// fails once it matches the documented pattern.
fn encode_cursor(id: &str) -> String {
    id.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_cursor(cursor: &str) -> Result<Vec<u8>, ServiceError> {
    let invalid = || ServiceError::Invalid { code: "invalid_cursor", message: format!("cursor '{cursor}' is not one this server returned (even-length hex)") };
    if cursor.is_empty() || cursor.len() % 2 != 0 {
        return Err(invalid());
    }
    (0..cursor.len())
        .step_by(2)
        .map(|i| cursor.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()).ok_or_else(invalid))
        .collect()
}

impl Service {
    /// Up to `limit` documents after `cursor`, in id order, that `filter` matches; their texts
    /// only `with_text` (else left empty, never read: paging for ids and metadata is cheap).
    pub async fn list_documents(&self, collection: &str, cursor: Option<&str>, limit: usize, filter: Option<Filter>, with_text: bool) -> Result<Page, ServiceError> {
        if limit == 0 || limit > self.limits.max_k {
            return Err(ServiceError::Invalid { code: "invalid_limit", message: format!("limit must be 1..={}, got {limit}", self.limits.max_k) });
        }
        let after = cursor.map(decode_cursor).transpose()?;
        let collection = self.collection(collection)?;
        blocking(move || {
            let (documents, more) = collection.page(after.as_deref(), limit, filter.as_ref(), with_text)?;
            let next_cursor = if more { documents.last().map(|d| encode_cursor(&d.id)) } else { None };
            Ok(Page { documents, next_cursor })
        })
        .await
    }

    /// Documents in the collection, or those the filter matches.
    pub async fn count_documents(&self, collection: &str, filter: Option<Filter>) -> Result<usize, ServiceError> {
        let collection = self.collection(collection)?;
        match filter {
            // A Qdrant-style condition reads the store's metadata: off the async workers.
            Some(filter) if filter.has_condition() => blocking(move || Ok(collection.count_matching(&filter)?)).await,
            Some(filter) => Ok(collection.count_matching(&filter)?),
            None => Ok(collection.stats().documents),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        for id in ["a", "docs/readme.md", "ünïcode id", "x".repeat(256).as_str()] {
            assert_eq!(decode_cursor(&encode_cursor(id)).unwrap(), id.as_bytes());
        }
        assert_eq!(decode_cursor("fffe").unwrap(), [0xff, 0xfe]);
        for bad in ["", "abc", "zz", "é1"] {
            assert!(matches!(decode_cursor(bad), Err(ServiceError::Invalid { code: "invalid_cursor", .. })), "{bad}");
        }
    }
}

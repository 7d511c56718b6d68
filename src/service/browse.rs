//! Paging through a collection's documents and counting what a filter matches.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::{blocking, Service, ServiceError};
use crate::domain::Document;
use crate::engine::Filter;

/// One page of documents in id order, and the cursor of the next page (None on the last).
#[derive(Debug)]
pub struct Page {
    pub documents: Vec<Document>,
    pub next_cursor: Option<String>,
}

/// The cursor is the last id of a page, base64url-encoded: opaque to clients, and stable under
/// writes (documents added before it are skipped, after it are seen; nothing is seen twice).
fn encode_cursor(id: &str) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

fn decode_cursor(cursor: &str) -> Result<String, ServiceError> {
    let invalid = || ServiceError::Invalid { code: "invalid_cursor", message: format!("cursor '{cursor}' is not one this server returned") };
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    String::from_utf8(bytes).map_err(|_| invalid())
}

impl Service {
    /// Up to `limit` documents after `cursor`, in id order, that `filter` matches.
    pub async fn list_documents(&self, collection: &str, cursor: Option<&str>, limit: usize, filter: Option<Filter>) -> Result<Page, ServiceError> {
        if limit == 0 || limit > self.limits.max_k {
            return Err(ServiceError::Invalid { code: "invalid_limit", message: format!("limit must be 1..={}, got {limit}", self.limits.max_k) });
        }
        let after = cursor.map(decode_cursor).transpose()?;
        let collection = self.collection(collection)?;
        blocking(move || {
            let (documents, more) = collection.page(after.as_deref(), limit, filter.as_ref())?;
            let next_cursor = if more { documents.last().map(|d| encode_cursor(&d.id)) } else { None };
            Ok(Page { documents, next_cursor })
        })
        .await
    }

    /// Documents in the collection, or those the filter matches.
    pub fn count_documents(&self, collection: &str, filter: Option<&Filter>) -> Result<usize, ServiceError> {
        let collection = self.collection(collection)?;
        Ok(match filter {
            Some(filter) => collection.count_matching(filter),
            None => collection.stats().documents,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        for id in ["a", "docs/readme.md", "ünïcode id", "x".repeat(256).as_str()] {
            assert_eq!(decode_cursor(&encode_cursor(id)).unwrap(), id);
        }
        assert!(matches!(decode_cursor("not base64!"), Err(ServiceError::Invalid { code: "invalid_cursor", .. })));
        assert!(matches!(decode_cursor(&URL_SAFE_NO_PAD.encode([0xff, 0xfe])), Err(ServiceError::Invalid { code: "invalid_cursor", .. })));
    }
}

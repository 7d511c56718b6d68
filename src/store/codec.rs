//! Record encoding: serde + bincode 2 (standard config), vectors as little-endian f32 bytes.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::{Span, StoreError};

/// A document as it lies in the `documents` tree (keyed by document id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct DocRecord {
    pub text: String,
    /// The metadata object as JSON text: bincode cannot carry `serde_json::Value` (it needs
    /// self-describing formats).
    pub metadata: String,
    /// Its passages' points and character spans, in text order.
    pub passages: Vec<(u64, Span)>,
}

/// A `DocRecord` read without copying or checking its text: the metadata-only path (paging,
/// counting, building the payload index at open). Same bytes: a string is its length and bytes.
#[derive(Debug, Deserialize)]
pub(crate) struct DocHead<'a> {
    #[serde(borrow)]
    #[allow(dead_code)]
    pub text: &'a [u8],
    pub metadata: String,
    pub passages: Vec<(u64, Span)>,
}

pub(crate) fn decode_head<'a>(bytes: &'a [u8], tree: &str) -> Result<DocHead<'a>, StoreError> {
    bincode::serde::borrow_decode_from_slice(bytes, bincode::config::standard())
        .map(|(value, _)| value)
        .map_err(|e| StoreError::Corrupt { tree: tree.to_owned(), message: e.to_string() })
}

/// A passage as it lies in the `passages` tree (keyed by point id, big-endian).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PassageRecord {
    pub document: String,
    pub index: u32,
    pub span: Span,
    /// Little-endian f32s.
    pub vector: Vec<u8>,
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Encoding plain structs into a Vec cannot fail; an empty record would be caught on decode.
    bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap_or_default()
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], tree: &str) -> Result<T, StoreError> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(value, _)| value)
        .map_err(|e| StoreError::Corrupt { tree: tree.to_owned(), message: e.to_string() })
}

pub fn vector_to_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn vector_from_bytes(bytes: &[u8]) -> Option<Vec<f32>> {
    if bytes.len() % 4 != 0 {
        return None;
    }
    Some(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let record = DocRecord { text: "héllo".into(), metadata: "{\"a\":1}".into(), passages: vec![(7, Span { start: 0, end: 5 })] };
        let back: DocRecord = decode(&encode(&record), "documents").unwrap();
        assert_eq!(back, record);
        let bytes = encode(&record);
        let head = decode_head(&bytes, "documents").unwrap();
        assert_eq!((head.text, head.metadata.as_str(), head.passages.as_slice()), ("héllo".as_bytes(), "{\"a\":1}", record.passages.as_slice()));
        let passage = PassageRecord { document: "d".into(), index: 0, span: Span { start: 0, end: 5 }, vector: vector_to_bytes(&[1.5, -0.25]) };
        let back: PassageRecord = decode(&encode(&passage), "passages").unwrap();
        assert_eq!(vector_from_bytes(&back.vector).unwrap(), vec![1.5, -0.25]);
        assert!(vector_from_bytes(&[0, 1, 2]).is_none());
        assert!(decode::<DocRecord>(&[255, 255], "documents").is_err());
    }
}

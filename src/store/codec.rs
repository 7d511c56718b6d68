//! Record encoding: serde + bincode 2 (standard config), vectors as little-endian f32 bytes.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::StoreError;

/// A document as it lies in the `docs` tree (keyed by document id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct DocRecord {
    pub point: u64,
    pub text: String,
    /// The metadata object as JSON text: bincode cannot carry `serde_json::Value` (it needs
    /// self-describing formats).
    pub metadata: String,
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
        let record = DocRecord { point: 7, text: "héllo".into(), metadata: "{\"a\":1}".into(), vector: vector_to_bytes(&[1.5, -0.25]) };
        let back: DocRecord = decode(&encode(&record), "docs").unwrap();
        assert_eq!(back, record);
        assert_eq!(vector_from_bytes(&back.vector).unwrap(), vec![1.5, -0.25]);
        assert!(vector_from_bytes(&[0, 1, 2]).is_none());
        assert!(decode::<DocRecord>(&[255, 255], "docs").is_err());
    }
}

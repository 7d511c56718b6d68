//! The payload index on disk, so that an open reads one file instead of decoding every document.
//!
//! Written at each dump with the store's watermark and change count at that moment (both taken
//! under the collection's writer, with a copy of the index). At open it is used only when the
//! store's change count is still the one recorded: then no point below the watermark was
//! deleted or changed since, and the points at or above it are read from the store and added.
//! Otherwise, or when the file is missing or damaged, the index is rebuilt from the store.
//!
//! Layout (little-endian): magic `AKIPAY01`; u64 watermark, u64 changes; the live and first-
//! passage sets (u64 length + roaring bytes each); u32 fields, each: name, dictionary (tagged
//! values, tag 0 for a free code), non-empty column chunks (u64 chunk number + `CHUNK` u32
//! codes); then a CRC-32 of everything before it. Posting sets are rebuilt from the columns.

use std::collections::HashMap;
use std::sync::Arc;

use roaring::RoaringTreemap;

use super::{Chunk, Column, FieldIndex, Number, PayloadIndex, Scalar, CHUNK};
use crate::domain::PointId;

pub const FILE: &str = "payload.bin";
const MAGIC: &[u8; 8] = b"AKIPAY01";

/// What a persisted index covers: the store's next point and change count when it was copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Covers {
    pub watermark: PointId,
    pub changes: u64,
}

pub fn encode(index: &PayloadIndex, covers: Covers) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 << 16);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&covers.watermark.to_le_bytes());
    out.extend_from_slice(&covers.changes.to_le_bytes());
    for set in [&index.live, &index.firsts] {
        let mut bytes = Vec::with_capacity(set.serialized_size());
        // Writing into a Vec cannot fail.
        let _ = set.serialize_into(&mut bytes);
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(&(index.fields.len() as u32).to_le_bytes());
    for (name, field) in &index.fields {
        put_str(&mut out, name);
        out.extend_from_slice(&(field.dict.len() as u32).to_le_bytes());
        for (code, value) in field.dict.iter().enumerate() {
            let free = code == 0 || field.holders.get(code).is_none_or(|h| *h == 0);
            match value {
                _ if free => out.push(0),
                Scalar::Null => out.push(1),
                Scalar::Bool(false) => out.push(2),
                Scalar::Bool(true) => out.push(3),
                Scalar::Number(n) => {
                    out.push(4);
                    out.extend_from_slice(&n.0.to_le_bytes());
                }
                Scalar::String(s) => {
                    out.push(5);
                    put_str(&mut out, s);
                }
                Scalar::Other => out.push(6),
            }
        }
        let chunks: Vec<(usize, &Chunk)> = field.column.chunks.iter().enumerate().filter_map(|(i, c)| c.as_deref().map(|c| (i, c))).collect();
        out.extend_from_slice(&(chunks.len() as u64).to_le_bytes());
        for (i, chunk) in chunks {
            out.extend_from_slice(&(i as u64).to_le_bytes());
            for code in chunk.codes {
                out.extend_from_slice(&code.to_le_bytes());
            }
        }
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!("{FILE} ends early"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    }
    fn str(&mut self) -> Result<&'a str, String> {
        let len = self.u32()? as usize;
        std::str::from_utf8(self.take(len)?).map_err(|e| format!("{FILE}: {e}"))
    }
    fn set(&mut self) -> Result<RoaringTreemap, String> {
        let len = self.u64()? as usize;
        RoaringTreemap::deserialize_from(self.take(len)?).map_err(|e| format!("{FILE}: {e}"))
    }
}

pub fn decode(bytes: &[u8]) -> Result<(PayloadIndex, Covers), String> {
    let Some(body_len) = bytes.len().checked_sub(4) else { return Err(format!("{FILE} is too short")) };
    let (body, crc) = bytes.split_at(body_len);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(format!("{FILE} fails its checksum"));
    }
    let mut r = Reader(body);
    if r.take(8)? != MAGIC {
        return Err(format!("{FILE} is not a payload index"));
    }
    let covers = Covers { watermark: r.u64()?, changes: r.u64()? };
    let live = r.set()?;
    let firsts = r.set()?;
    let mut fields = HashMap::new();
    for _ in 0..r.u32()? {
        let name = r.str()?.to_owned();
        let entries = r.u32()? as usize;
        if entries > r.0.len() {
            return Err(format!("{FILE}: field {name} claims {entries} values in {} bytes", r.0.len()));
        }
        let mut field = FieldIndex::default();
        let mut present = vec![false; entries];
        for (code, present) in present.iter_mut().enumerate() {
            let value = match r.take(1)?[0] {
                0 => None,
                1 => Some(Scalar::Null),
                2 => Some(Scalar::Bool(false)),
                3 => Some(Scalar::Bool(true)),
                4 => Some(Scalar::Number(Number::new(f64::from_le_bytes(r.take(8)?.try_into().map_err(|_| "short")?)))),
                5 => Some(Scalar::String(Arc::from(r.str()?))),
                6 => Some(Scalar::Other),
                tag => return Err(format!("{FILE}: unknown value tag {tag}")),
            };
            field.dict.push(value.clone().unwrap_or(Scalar::Other));
            field.postings.push(RoaringTreemap::new());
            field.holders.push(0);
            match value {
                Some(value) if code > 0 => {
                    *present = true;
                    match &value {
                        Scalar::Number(n) => drop(field.numbers.insert(*n, code as u32)),
                        Scalar::String(s) => drop(field.strings.insert(s.clone(), code as u32)),
                        _ => {}
                    }
                    if field.codes.insert(value, code as u32).is_some() {
                        return Err(format!("{FILE}: field {name} interns a value twice"));
                    }
                }
                _ if code > 0 => field.free.push(code as u32),
                _ => {}
            }
        }
        let chunks = r.u64()? as usize;
        let mut column = Column::default();
        // Chunks come in ascending order and cover points below the watermark only.
        let last_chunk = (covers.watermark / CHUNK as u64) as usize;
        let mut previous: Option<usize> = None;
        for _ in 0..chunks {
            let at = r.u64()? as usize;
            if at > last_chunk || previous.is_some_and(|p| at <= p) {
                return Err(format!("{FILE}: field {name} has chunk {at} out of order or past the watermark"));
            }
            previous = Some(at);
            let mut chunk = Chunk { codes: [0; CHUNK], used: 0 };
            for slot in chunk.codes.iter_mut() {
                *slot = r.u32()?;
            }
            if at >= column.chunks.len() {
                column.chunks.resize_with(at + 1, || None);
            }
            for (i, &code) in chunk.codes.iter().enumerate() {
                if code == 0 {
                    continue;
                }
                if !present.get(code as usize).copied().unwrap_or(false) {
                    return Err(format!("{FILE}: field {name} uses code {code}, which holds no value"));
                }
                let point = (at * CHUNK + i) as PointId;
                let c = code as usize;
                // Points come in ascending order: appends.
                if field.dict[c] != Scalar::Other && field.postings[c].try_push(point).is_err() {
                    return Err(format!("{FILE}: field {name} lists point {point} out of order"));
                }
                field.holders[c] += 1;
                field.points += 1;
                chunk.used += 1;
            }
            if chunk.used > 0 {
                column.chunks[at] = Some(Box::new(chunk));
            }
        }
        field.column = column;
        if let Some(code) = field.holders.iter().enumerate().skip(1).find(|(c, h)| **h == 0 && present[*c]).map(|(c, _)| c) {
            return Err(format!("{FILE}: field {name} interns code {code}, which no point holds"));
        }
        fields.insert(name, field);
    }
    if !r.0.is_empty() {
        return Err(format!("{FILE} has bytes past its end"));
    }
    Ok((PayloadIndex { live, firsts, fields }, covers))
}

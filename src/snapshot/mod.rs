//! akidb's snapshot file: one collection at one moment, in one self-checking file.
//!
//! Layout (version 1), every integer little-endian:
//!
//! ```text
//! "AKIDBSNP"  u32 version
//! frames:     u8 kind, u32 length, payload
//!   1 header     JSON `Header` (the collection's config, its annex, when, by which akidb)
//!   2 documents  bincode `Vec<DocFrame>` (text, metadata, passages with spans and vectors)
//!   3 end        JSON `Totals` (documents and passages written: a cut file cannot fake them)
//! "AKIDBEND"  u32 CRC-32 of every byte before "AKIDBEND"  u64 that byte count
//! ```
//!
//! A reader refuses a file whose magic, version, frame order, totals, checksum or length do not
//! hold; `verify` reads the whole file before a restore writes anything. The derived indexes are
//! not in the file: a restore rebuilds them while writing (the graph and BM25 from the stored
//! vectors and texts, never re-embedding). It is akidb's own format, not Qdrant's: `akidb
//! export` moves collections between akidb and Qdrant.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::domain::{CollectionConfig, NewDocument, NewPassage, Span};

pub const MAGIC: &[u8; 8] = b"AKIDBSNP";
pub const END_MAGIC: &[u8; 8] = b"AKIDBEND";
pub const VERSION: u32 = 1;
/// Files end in this; anything else in a snapshot directory is not listed.
pub const EXTENSION: &str = "snapshot";
/// Largest frame a reader accepts: a damaged length must not make it allocate gigabytes.
const MAX_FRAME: usize = 256 * 1024 * 1024;
/// Frames are cut near this size, whatever the documents' sizes.
const FRAME_TARGET: usize = 16 * 1024 * 1024;

const HEADER: u8 = 1;
const DOCUMENTS: u8 = 2;
const END: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The file is not a whole, intact akidb snapshot.
    #[error("not a valid akidb snapshot: {0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io { path: path.to_owned(), source }
}

/// What a snapshot says about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    /// The collection at the moment (its id and name as they were; a restore gives a new id).
    pub config: CollectionConfig,
    /// The interfaces' record of it (the Qdrant listener's vector names), base64.
    pub annex: Option<String>,
    /// Unix time of the moment, milliseconds.
    pub created_at_ms: u64,
    pub akidb_version: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub documents: u64,
    pub passages: u64,
}

#[derive(Serialize, Deserialize)]
struct DocFrame {
    id: String,
    text: String,
    /// The metadata object as JSON text (bincode cannot carry `serde_json::Value`).
    metadata: String,
    /// (start, end, vector as little-endian f32 bytes)
    passages: Vec<(u64, u64, Vec<u8>)>,
}

/// Writes one snapshot file; `finish` seals it. The caller makes it atomic (temp → fsync →
/// rename → fsync dir).
pub struct SnapshotWriter<W: Write> {
    out: W,
    crc: crc32fast::Hasher,
    bytes: u64,
    totals: Totals,
}

impl<W: Write> SnapshotWriter<W> {
    pub fn new(out: W, header: &Header) -> std::io::Result<Self> {
        let mut writer = SnapshotWriter { out, crc: crc32fast::Hasher::new(), bytes: 0, totals: Totals::default() };
        writer.raw(MAGIC)?;
        writer.raw(&VERSION.to_le_bytes())?;
        let header = serde_json::to_vec(header).map_err(std::io::Error::other)?;
        writer.frame(HEADER, &header)?;
        Ok(writer)
    }

    fn raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.crc.update(bytes);
        self.bytes += bytes.len() as u64;
        self.out.write_all(bytes)
    }

    fn frame(&mut self, kind: u8, payload: &[u8]) -> std::io::Result<()> {
        let len = u32::try_from(payload.len()).ok().filter(|&l| l as usize <= MAX_FRAME).ok_or_else(|| std::io::Error::other(format!("a snapshot frame of {} bytes is too large", payload.len())))?;
        self.raw(&[kind])?;
        self.raw(&len.to_le_bytes())?;
        self.raw(payload)
    }

    /// What it writes to (to flush and sync it part way).
    pub fn inner_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.bytes
    }

    /// Appends documents, in frames of at most about `FRAME_TARGET` bytes (a document larger
    /// than a frame may hold is an error).
    pub fn documents(&mut self, documents: &[NewDocument]) -> std::io::Result<()> {
        let size = |d: &NewDocument| d.id.len() + d.text.len() + 64 + d.passages.iter().map(|p| 24 + 4 * p.vector.len()).sum::<usize>() + serde_json::to_string(&d.metadata).map_or(0, |m| m.len());
        let (mut start, mut bytes) = (0, 0);
        for (i, doc) in documents.iter().enumerate() {
            let doc_bytes = size(doc);
            if i > start && bytes + doc_bytes > FRAME_TARGET {
                self.frame_of(&documents[start..i])?;
                (start, bytes) = (i, 0);
            }
            bytes += doc_bytes;
        }
        self.frame_of(&documents[start..])
    }

    fn frame_of(&mut self, documents: &[NewDocument]) -> std::io::Result<()> {
        if documents.is_empty() {
            return Ok(());
        }
        let frames: Vec<DocFrame> = documents
            .iter()
            .map(|d| DocFrame {
                id: d.id.clone(),
                text: d.text.clone(),
                metadata: serde_json::to_string(&d.metadata).unwrap_or_else(|_| "{}".into()),
                passages: d.passages.iter().map(|p| (p.span.start as u64, p.span.end as u64, crate::store::vector_to_bytes(&p.vector))).collect(),
            })
            .collect();
        let payload = bincode::serde::encode_to_vec(&frames, bincode::config::standard()).map_err(std::io::Error::other)?;
        self.frame(DOCUMENTS, &payload)?;
        self.totals.documents += documents.len() as u64;
        self.totals.passages += documents.iter().map(|d| d.passages.len() as u64).sum::<u64>();
        Ok(())
    }

    /// Writes the totals and the trailer; returns the writer (flushed), the totals and the
    /// CRC-32 the trailer holds.
    pub fn finish(mut self) -> std::io::Result<(W, Totals, u32)> {
        let totals = serde_json::to_vec(&self.totals).map_err(std::io::Error::other)?;
        self.frame(END, &totals)?;
        let crc = self.crc.clone().finalize();
        self.out.write_all(END_MAGIC)?;
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.write_all(&self.bytes.to_le_bytes())?;
        self.out.flush()?;
        Ok((self.out, self.totals, crc))
    }
}

/// Reads a snapshot frame by frame, checking everything it can as it goes and the checksum at
/// the end: a caller acts on documents only after `verify` passed over the same file.
pub struct SnapshotReader<R: Read> {
    input: R,
    crc: crc32fast::Hasher,
    bytes: u64,
    header: Header,
    totals: Totals,
    done: bool,
}

impl SnapshotReader<BufReader<File>> {
    pub fn open(path: &Path) -> Result<Self, SnapshotError> {
        let file = File::open(path).map_err(io(path))?;
        Self::new(BufReader::with_capacity(1 << 20, file))
    }
}

impl<R: Read> SnapshotReader<R> {
    pub fn new(input: R) -> Result<Self, SnapshotError> {
        let mut reader = SnapshotReader { input, crc: crc32fast::Hasher::new(), bytes: 0, header: placeholder_header(), totals: Totals::default(), done: false };
        let mut magic = [0u8; 8];
        reader.exact(&mut magic, "the file is empty or shorter than its magic")?;
        if &magic != MAGIC {
            return Err(SnapshotError::Invalid("it does not start with akidb's snapshot magic (a Qdrant snapshot cannot be restored here: use `akidb import`)".into()));
        }
        let mut version = [0u8; 4];
        reader.exact(&mut version, "truncated in its version")?;
        let version = u32::from_le_bytes(version);
        if version != VERSION {
            return Err(SnapshotError::Invalid(format!("format version {version}; this akidb reads version {VERSION}")));
        }
        let (kind, payload) = reader.frame()?;
        if kind != HEADER {
            return Err(SnapshotError::Invalid(format!("the first frame is of kind {kind}, not the header")));
        }
        reader.header = serde_json::from_slice(&payload).map_err(|e| SnapshotError::Invalid(format!("its header does not parse: {e}")))?;
        Ok(reader)
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    fn exact(&mut self, buf: &mut [u8], what: &str) -> Result<(), SnapshotError> {
        self.input.read_exact(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => SnapshotError::Invalid(format!("truncated: {what}")),
            _ => SnapshotError::Invalid(format!("cannot be read: {e}")),
        })?;
        self.crc.update(buf);
        self.bytes += buf.len() as u64;
        Ok(())
    }

    fn frame(&mut self) -> Result<(u8, Vec<u8>), SnapshotError> {
        let mut head = [0u8; 5];
        self.exact(&mut head, "a frame is cut")?;
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > MAX_FRAME {
            return Err(SnapshotError::Invalid(format!("a frame claims {len} bytes (damaged)")));
        }
        let mut payload = vec![0u8; len];
        self.exact(&mut payload, "a frame is cut")?;
        Ok((head[0], payload))
    }

    /// The next batch of documents; `None` after the end frame, once the trailer checked out.
    pub fn next_documents(&mut self) -> Result<Option<Vec<NewDocument>>, SnapshotError> {
        if self.done {
            return Ok(None);
        }
        let (kind, payload) = self.frame()?;
        match kind {
            DOCUMENTS => {
                let (frames, _): (Vec<DocFrame>, usize) = bincode::serde::decode_from_slice(&payload, bincode::config::standard()).map_err(|e| SnapshotError::Invalid(format!("a documents frame does not decode: {e}")))?;
                let mut documents = Vec::with_capacity(frames.len());
                for frame in frames {
                    documents.push(document(frame)?);
                }
                self.totals.documents += documents.len() as u64;
                self.totals.passages += documents.iter().map(|d| d.passages.len() as u64).sum::<u64>();
                Ok(Some(documents))
            }
            END => {
                let claimed: Totals = serde_json::from_slice(&payload).map_err(|e| SnapshotError::Invalid(format!("its end frame does not parse: {e}")))?;
                if claimed != self.totals {
                    return Err(SnapshotError::Invalid(format!("it claims {} documents and {} passages but holds {} and {}", claimed.documents, claimed.passages, self.totals.documents, self.totals.passages)));
                }
                let expected_crc = self.crc.clone().finalize();
                let expected_len = self.bytes;
                let mut trailer = [0u8; 20];
                self.input.read_exact(&mut trailer).map_err(|_| SnapshotError::Invalid("truncated: its trailer is missing".into()))?;
                if &trailer[..8] != END_MAGIC {
                    return Err(SnapshotError::Invalid("its trailer is damaged".into()));
                }
                let crc = u32::from_le_bytes([trailer[8], trailer[9], trailer[10], trailer[11]]);
                let mut len = [0u8; 8];
                len.copy_from_slice(&trailer[12..]);
                if u64::from_le_bytes(len) != expected_len {
                    return Err(SnapshotError::Invalid("its trailer gives another length (damaged)".into()));
                }
                if crc != expected_crc {
                    return Err(SnapshotError::Invalid(format!("checksum mismatch (CRC-32 {expected_crc:08x}, the file says {crc:08x}): the file is damaged")));
                }
                let mut extra = [0u8; 1];
                if self.input.read(&mut extra).map_err(|e| SnapshotError::Invalid(format!("cannot be read: {e}")))? != 0 {
                    return Err(SnapshotError::Invalid("bytes follow its trailer".into()));
                }
                self.done = true;
                Ok(None)
            }
            other => Err(SnapshotError::Invalid(format!("unknown frame kind {other}"))),
        }
    }

    pub fn totals(&self) -> Totals {
        self.totals
    }
}

fn placeholder_header() -> Header {
    Header {
        config: CollectionConfig {
            id: String::new(),
            name: String::new(),
            model: None,
            dims: 0,
            metric: Default::default(),
            hnsw: Default::default(),
            backend: Default::default(),
            created_at_ms: 0,
            chunking: None,
        },
        annex: None,
        created_at_ms: 0,
        akidb_version: String::new(),
    }
}

fn document(frame: DocFrame) -> Result<NewDocument, SnapshotError> {
    let metadata = match serde_json::from_str(&frame.metadata) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => return Err(SnapshotError::Invalid(format!("document '{}' has metadata that is not a JSON object", frame.id))),
    };
    let mut passages = Vec::with_capacity(frame.passages.len());
    for (start, end, bytes) in frame.passages {
        let vector = crate::store::vector_from_bytes(&bytes).ok_or_else(|| SnapshotError::Invalid(format!("document '{}' has a vector of {} bytes", frame.id, bytes.len())))?;
        passages.push(NewPassage { span: Span { start: start as usize, end: end as usize }, vector });
    }
    Ok(NewDocument { id: frame.id, text: frame.text, metadata, passages })
}

/// Reads a whole file and checks it: its header and totals, or why it is refused.
pub fn verify(path: &Path) -> Result<(Header, Totals), SnapshotError> {
    let mut reader = SnapshotReader::open(path)?;
    while reader.next_documents()?.is_some() {}
    Ok((reader.header.clone(), reader.totals))
}

/// Creates `path` through a temp file beside it: written by `fill`, fsynced, renamed, the
/// directory fsynced. A crash leaves the temp file (a dot file, never listed) or the whole file.
pub fn write_atomically<T>(path: &Path, fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<T>) -> Result<T, SnapshotError> {
    let dir = path.parent().ok_or_else(|| SnapshotError::Invalid(format!("{} has no directory", path.display())))?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = dir.join(format!(".{}.tmp", uuid::Uuid::now_v7()));
    let result = (|| {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        let value = fill(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(value)
    })();
    let value = match result {
        Ok(value) => value,
        Err(err) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(SnapshotError::Io { path: path.to_owned(), source: err });
        }
    };
    std::fs::rename(&tmp, path).map_err(io(path))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: &str, text: &str, vectors: &[&[f32]]) -> NewDocument {
        let mut metadata = serde_json::Map::new();
        metadata.insert("k".into(), serde_json::json!([1, "x", null]));
        let passages = vectors.iter().enumerate().map(|(i, v)| NewPassage { span: Span { start: i, end: i + 1 }, vector: v.to_vec() }).collect();
        NewDocument { id: id.into(), text: text.into(), metadata, passages }
    }

    fn sample() -> (Vec<u8>, Vec<NewDocument>) {
        let header = Header { annex: Some("eA==".into()), created_at_ms: 7, akidb_version: "t".into(), ..placeholder_header() };
        let docs = vec![doc("a", "héllo", &[&[1.0, -0.5], &[0.25, f32::MIN_POSITIVE]]), doc("b", "", &[&[0.0, 0.0]])];
        let mut writer = SnapshotWriter::new(Vec::new(), &header).unwrap();
        writer.documents(&docs[..1]).unwrap();
        writer.documents(&docs[1..]).unwrap();
        let (bytes, totals, _) = writer.finish().unwrap();
        assert_eq!(totals, Totals { documents: 2, passages: 3 });
        (bytes, docs)
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<NewDocument>, SnapshotError> {
        let mut reader = SnapshotReader::new(bytes)?;
        let mut all = Vec::new();
        while let Some(batch) = reader.next_documents()? {
            all.extend(batch);
        }
        Ok(all)
    }

    #[test]
    fn documents_round_trip_bit_for_bit() {
        let (bytes, docs) = sample();
        assert_eq!(read_all(&bytes).unwrap(), docs);
    }

    #[test]
    fn every_flipped_byte_and_every_cut_is_refused() {
        let (bytes, _) = sample();
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x10;
            assert!(read_all(&damaged).is_err(), "a flip at byte {i} was accepted");
            assert!(read_all(&bytes[..i]).is_err(), "a cut at byte {i} was accepted");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(read_all(&longer).is_err());
    }
}

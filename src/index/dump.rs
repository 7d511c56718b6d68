//! Crash-safe index dumps.
//!
//! Layout under a collection's index directory:
//! - `dump-<uuid>/`: the backend's files and `DUMP.json` (files with length and CRC-32, point
//!   count, watermark, metric, dims, backend)
//! - `CURRENT`: the name of the dump directory in force
//!
//! Writing: the backend dumps into `tmp-<uuid>/`; every file is fsynced, `DUMP.json` is written,
//! the directory is renamed to `dump-<uuid>` and the parent fsynced; then `CURRENT` is replaced
//! atomically (temp → fsync → rename → fsync dir) and older dumps are removed. A crash at any
//! point leaves either the old dump or the new one in force, never a half-written one.
//! Loading checks every length and checksum before the backend sees a byte.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::distance::DistNegDot;
use super::{native, HnswIndex, IndexError, IndexSpec, NativeIndex, UsearchIndex, VectorIndex};
use crate::domain::IndexBackend;
use crate::store::{Metric, PointId};

const CURRENT: &str = "CURRENT";
const MANIFEST: &str = "DUMP.json";
const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpFile {
    pub name: String,
    pub len: u64,
    pub crc32: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpManifest {
    pub format: u32,
    /// Every point below this id that existed when the dump was taken is in the graph;
    /// points at or above it must be inserted from the store after loading.
    pub watermark: PointId,
    /// Points in the graph (tombstoned ones included).
    pub points: usize,
    pub metric: Metric,
    pub dims: usize,
    /// Dumps written before backends were selectable are hnsw_rs dumps.
    #[serde(default = "hnsw_rs")]
    pub backend: IndexBackend,
    /// hnsw_rs basename: files are `<basename>.hnsw.graph` and `<basename>.hnsw.data` (empty
    /// for other backends).
    pub basename: String,
    pub files: Vec<DumpFile>,
}

fn hnsw_rs() -> IndexBackend {
    IndexBackend::HnswRs
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IndexError + '_ {
    move |source| IndexError::Io { path: path.to_owned(), source }
}

pub fn fsync_dir(dir: &Path) -> Result<(), IndexError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

fn checksum(path: &Path) -> Result<(u64, u32), IndexError> {
    let mut file = File::open(path).map_err(io_err(path))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((len, hasher.finalize()))
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), IndexError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tmp-{}", path.file_name().and_then(|n| n.to_str()).unwrap_or("file"), uuid::Uuid::now_v7()));
    let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))?;
    fsync_dir(dir)
}

/// Dumps `index` into `dir` (created if needed) and makes it the dump in force.
pub fn save(index: &dyn VectorIndex, dir: &Path, watermark: PointId, spec: &IndexSpec) -> Result<DumpManifest, IndexError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let tmp = dir.join(format!("tmp-{}", uuid::Uuid::now_v7()));
    fs::create_dir(&tmp).map_err(io_err(&tmp))?;
    let result = write_dump(index, dir, &tmp, watermark, spec);
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

fn write_dump(index: &dyn VectorIndex, dir: &Path, tmp: &Path, watermark: PointId, spec: &IndexSpec) -> Result<DumpManifest, IndexError> {
    let points = index.len();
    let names = index.dump_into(tmp)?;
    let basename = match spec.backend {
        IndexBackend::HnswRs => names
            .first()
            .and_then(|n| n.strip_suffix(".hnsw.graph"))
            .ok_or_else(|| IndexError::BadDump { path: tmp.to_owned(), reason: "unexpected dump file names".into() })?
            .to_owned(),
        _ => String::new(),
    };
    let mut files = Vec::with_capacity(names.len());
    for name in names {
        let path = tmp.join(&name);
        File::open(&path).and_then(|f| f.sync_all()).map_err(io_err(&path))?;
        let (len, crc32) = checksum(&path)?;
        files.push(DumpFile { name, len, crc32 });
    }
    let manifest = DumpManifest { format: FORMAT, watermark, points, metric: spec.metric, dims: spec.dims, backend: spec.backend, basename, files };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| IndexError::BadDump { path: tmp.to_owned(), reason: e.to_string() })?;
    write_atomically(&tmp.join(MANIFEST), &json)?;
    let final_name = format!("dump-{}", uuid::Uuid::now_v7());
    let final_dir = dir.join(&final_name);
    fs::rename(tmp, &final_dir).map_err(io_err(&final_dir))?;
    fsync_dir(dir)?;
    write_atomically(&dir.join(CURRENT), final_name.as_bytes())?;
    remove_stale(dir, &final_name);
    Ok(manifest)
}

/// Removes dumps and temp directories other than `keep` (best effort: leftovers are harmless).
fn remove_stale(dir: &Path, keep: &str) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if (name.starts_with("dump-") || name.starts_with("tmp-")) && name != keep {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// The dump in force under `dir`, validated. `Ok(None)` when there is none.
pub fn load(dir: &Path, spec: &IndexSpec) -> Result<Option<(Box<dyn VectorIndex>, DumpManifest)>, IndexError> {
    let (metric, dims) = (spec.metric, spec.dims);
    let current = dir.join(CURRENT);
    let name = match fs::read_to_string(&current) {
        Ok(name) => name,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(IndexError::Io { path: current, source: e }),
    };
    let dump_dir = dir.join(name.trim());
    let bad = |reason: String| IndexError::BadDump { path: dump_dir.clone(), reason };
    let manifest_path = dump_dir.join(MANIFEST);
    let bytes = fs::read(&manifest_path).map_err(|e| bad(format!("{MANIFEST}: {e}")))?;
    let manifest: DumpManifest = serde_json::from_slice(&bytes).map_err(|e| bad(format!("{MANIFEST}: {e}")))?;
    if manifest.format != FORMAT || manifest.metric != metric || manifest.dims != dims || manifest.backend != spec.backend {
        return Err(bad(format!("made for format {} / {:?} / {} dims / {}", manifest.format, manifest.metric, manifest.dims, manifest.backend.as_str())));
    }
    if spec.backend == IndexBackend::Hnsw {
        // Read once: the bytes checked are the bytes decoded.
        let file = manifest.files.iter().find(|f| f.name == native::GRAPH_FILE).ok_or_else(|| bad(format!("no {}", native::GRAPH_FILE)))?;
        let bytes = fs::read(dump_dir.join(&file.name)).map_err(|e| bad(format!("{}: {e}", file.name)))?;
        let crc32 = crc32fast::hash(&bytes);
        if (bytes.len() as u64, crc32) != (file.len, file.crc32) {
            return Err(bad(format!("{} has length {} and crc {crc32:08x}, expected {} and {:08x}", file.name, bytes.len(), file.len, file.crc32)));
        }
        let index = NativeIndex::load(&bytes, metric, &spec.params, dims).map_err(bad)?;
        if index.len() != manifest.points {
            return Err(bad(format!("holds {} points, manifest says {}", index.len(), manifest.points)));
        }
        return Ok(Some((Box::new(index), manifest)));
    }
    for file in &manifest.files {
        let (len, crc32) = checksum(&dump_dir.join(&file.name)).map_err(|e| bad(e.to_string()))?;
        if (len, crc32) != (file.len, file.crc32) {
            return Err(bad(format!("{} has length {len} and crc {crc32:08x}, expected {} and {:08x}", file.name, file.len, file.crc32)));
        }
    }
    let index: Box<dyn VectorIndex> = match (spec.backend, metric) {
        (IndexBackend::HnswRs, Metric::Cosine) => Box::new(HnswIndex::load(&dump_dir, &manifest.basename, hnsw_rs::prelude::DistDot)?),
        (IndexBackend::HnswRs, Metric::Dot) => Box::new(HnswIndex::load(&dump_dir, &manifest.basename, DistNegDot)?),
        (IndexBackend::HnswRs, Metric::L2) => Box::new(HnswIndex::load(&dump_dir, &manifest.basename, hnsw_rs::prelude::DistL2)?),
        _ => Box::new(UsearchIndex::load(&dump_dir, metric, spec.params.ef_search)?),
    };
    if index.len() != manifest.points {
        return Err(bad(format!("holds {} points, manifest says {}", index.len(), manifest.points)));
    }
    Ok(Some((index, manifest)))
}

/// The index directory of a collection under the data directory.
pub fn collection_dir(index_root: &Path, collection: &str) -> PathBuf {
    index_root.join(collection)
}

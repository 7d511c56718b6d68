//! The `hnsw` backend's dump: one file, read in one pass at load.
//!
//! Layout (little-endian): magic `AKIHNSW1`, then u32 metric, dims, m; u64 slots, upper arena
//! length, entry; then the arrays as the graph holds them: keys (u64), levels (u8), upper
//! offsets (u32), vectors (f32, slot-major), level-0 lists (u32, `1 + 2m` per slot), upper arena
//! (u32). The dump layer checks length and CRC before `decode`; `check` then validates every
//! link, so a file that passed the CRC but was written wrong is refused, never followed.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::Ordering;

use super::graph::Graph;
use super::{unpack, EMPTY, MAX_LEVEL};
use crate::domain::Metric;

pub const GRAPH_FILE: &str = "graph.hnsw";
const MAGIC: &[u8; 8] = b"AKIHNSW1";

fn metric_code(metric: Metric) -> u32 {
    match metric {
        Metric::Cosine => 0,
        Metric::Dot => 1,
        Metric::L2 => 2,
    }
}

pub(super) fn write(path: &Path, graph: &Graph, metric: Metric, slots: usize, upper_used: usize, entry: u64) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    out.write_all(MAGIC)?;
    for v in [metric_code(metric), graph.dims as u32, graph.m as u32] {
        out.write_all(&v.to_le_bytes())?;
    }
    for v in [slots as u64, upper_used as u64, entry] {
        out.write_all(&v.to_le_bytes())?;
    }
    for key in &graph.keys[..slots] {
        out.write_all(&key.load(Ordering::Relaxed).to_le_bytes())?;
    }
    let levels: Vec<u8> = graph.levels[..slots].iter().map(|l| l.load(Ordering::Relaxed)).collect();
    out.write_all(&levels)?;
    for at in &graph.upper_at[..slots] {
        out.write_all(&at.load(Ordering::Relaxed).to_le_bytes())?;
    }
    for x in graph.raw_vectors(slots) {
        out.write_all(&x.to_le_bytes())?;
    }
    let (level0, upper) = graph.raw_lists();
    for v in level0[..slots * (1 + graph.m0)].iter().chain(&upper[..upper_used]) {
        out.write_all(&v.load(Ordering::Relaxed).to_le_bytes())?;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()
}

pub(super) struct Parts {
    pub m: usize,
    pub entry: u64,
    pub upper_used: usize,
    pub keys: Vec<u64>,
    pub levels: Vec<u8>,
    pub upper_at: Vec<u32>,
    pub vectors: Vec<f32>,
    pub level0: Vec<u32>,
    pub upper: Vec<u32>,
}

/// Reads fixed-size fields off the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!("{GRAPH_FILE} is {} bytes short", n - self.0.len()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| "short")?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| "short")?))
    }
    fn array<T>(&mut self, count: usize, width: usize, read: impl Fn(&[u8]) -> T) -> Result<Vec<T>, String> {
        let bytes = self.take(count.checked_mul(width).ok_or("size overflows")?)?;
        Ok(bytes.chunks_exact(width).map(read).collect())
    }
}

pub(super) fn decode(bytes: &[u8], metric: Metric, dims: usize) -> Result<Parts, String> {
    let mut r = Reader(bytes);
    if r.take(8)? != MAGIC {
        return Err(format!("{GRAPH_FILE} does not start with {}", String::from_utf8_lossy(MAGIC)));
    }
    let (code, file_dims, m) = (r.u32()?, r.u32()? as usize, r.u32()? as usize);
    if code != metric_code(metric) || file_dims != dims || !(2..=super::super::MAX_M).contains(&m) {
        return Err(format!("{GRAPH_FILE} is for metric {code}, {file_dims} dims, m {m}"));
    }
    let (slots, upper_used, entry) = (r.u64()? as usize, r.u64()? as usize, r.u64()?);
    let u32_of = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let keys = r.array(slots, 8, |b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))?;
    let levels = r.take(slots)?.to_vec();
    let upper_at = r.array(slots, 4, u32_of)?;
    let vectors = r.array(slots.checked_mul(dims).ok_or("size overflows")?, 4, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))?;
    let level0 = r.array(slots.checked_mul(1 + 2 * m).ok_or("size overflows")?, 4, u32_of)?;
    let upper = r.array(upper_used, 4, u32_of)?;
    if !r.0.is_empty() {
        return Err(format!("{GRAPH_FILE} has {} bytes past its end", r.0.len()));
    }
    Ok(Parts { m, entry, upper_used, keys, levels, upper_at, vectors, level0, upper })
}

/// Every invariant a search relies on: entry point, levels, upper offsets, list counts and
/// neighbour ids all within bounds.
pub(super) fn check(graph: &Graph, slots: usize, upper_used: usize, entry: u64) -> Result<(), String> {
    if slots > graph.capacity() || upper_used > graph.upper_capacity() {
        return Err(format!("{slots} slots and {upper_used} arena entries exceed the arrays"));
    }
    if entry == EMPTY {
        return if slots == 0 { Ok(()) } else { Err(format!("{slots} points but no entry point")) };
    }
    let (entry_slot, top) = unpack(entry);
    if entry_slot as usize >= slots || graph.levels[entry_slot as usize].load(Ordering::Relaxed) as usize != top {
        return Err(format!("entry point {entry_slot} at level {top} is not a node of that level"));
    }
    for slot in 0..slots {
        let level = graph.levels[slot].load(Ordering::Relaxed) as usize;
        if level > top || level > MAX_LEVEL {
            return Err(format!("slot {slot} has level {level}, above the top {top}"));
        }
        if level > 0 && graph.upper_at[slot].load(Ordering::Relaxed) as usize + graph.upper_len(level) > upper_used {
            return Err(format!("slot {slot}'s upper lists run past the arena"));
        }
        for l in 0..=level {
            let list = graph.links(slot as u32, l);
            let count = list[0].load(Ordering::Relaxed) as usize;
            if count >= list.len() {
                return Err(format!("slot {slot} lists {count} neighbours at level {l}, above its capacity"));
            }
            if let Some(n) = list[1..=count].iter().map(|n| n.load(Ordering::Relaxed)).find(|&n| n as usize >= slots || (graph.levels[n as usize].load(Ordering::Relaxed) as usize) < l) {
                return Err(format!("slot {slot} links to {n} at level {l}, which is not a node there"));
            }
        }
    }
    Ok(())
}

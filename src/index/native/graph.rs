//! The graph's storage: flat arrays indexed by slot, grown only under the index's write lock.
//!
//! A slot is a node: its point id, its level, its vector (contiguous with every other vector),
//! its level-0 neighbour list (fixed size, contiguous) and, for the few nodes above level 0, an
//! offset into one arena of upper-level lists. A neighbour list is `[count, n1, n2, ...]`.
//!
//! Concurrency: searches and inserts share the structure (read lock of the index). A slot's
//! vector, id, level and upper offset are written once, before any link to the slot is
//! published; links are atomics written under the slot's own mutex with Release and read with
//! Acquire (plain loads on x86), so a reader always sees a complete vector behind any id it
//! reads, and a list being rewritten only ever holds valid slot ids.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

use parking_lot::Mutex;

pub(super) struct Graph {
    pub dims: usize,
    /// Links per node above level 0, and at level 0.
    pub m: usize,
    pub m0: usize,
    pub keys: Vec<AtomicU64>,
    pub levels: Vec<AtomicU8>,
    /// Offset of a node's upper lists in `upper` (level 1 first); unused at level 0.
    pub upper_at: Vec<AtomicU32>,
    /// Held while a node's lists are rewritten (inserts only; searches never lock).
    pub locks: Vec<Mutex<()>>,
    vectors: Vec<UnsafeCell<f32>>,
    level0: Vec<AtomicU32>,
    upper: Vec<AtomicU32>,
}

// SAFETY: `vectors` is written only through `write_vector`, for a slot no other thread can reach
// yet (allocated under the index's slot mutex and not linked); every other field is atomic or a
// mutex.
unsafe impl Sync for Graph {}

impl Graph {
    pub fn new(dims: usize, m: usize) -> Graph {
        Graph { dims, m, m0: 2 * m, keys: Vec::new(), levels: Vec::new(), upper_at: Vec::new(), locks: Vec::new(), vectors: Vec::new(), level0: Vec::new(), upper: Vec::new() }
    }

    pub fn capacity(&self) -> usize {
        self.keys.len()
    }

    pub fn upper_capacity(&self) -> usize {
        self.upper.len()
    }

    /// Room for `slots` nodes and `upper` arena entries (exclusive access: the write lock).
    pub fn grow(&mut self, slots: usize, upper: usize) {
        if slots > self.capacity() {
            self.keys.resize_with(slots, || AtomicU64::new(0));
            self.levels.resize_with(slots, || AtomicU8::new(0));
            self.upper_at.resize_with(slots, || AtomicU32::new(0));
            self.locks.resize_with(slots, || Mutex::new(()));
            self.vectors.resize_with(slots * self.dims, || UnsafeCell::new(0.0));
            self.level0.resize_with(slots * (1 + self.m0), || AtomicU32::new(0));
        }
        if upper > self.upper.len() {
            self.upper.resize_with(upper, || AtomicU32::new(0));
        }
    }

    /// Entries one node needs in the upper arena.
    pub fn upper_len(&self, level: usize) -> usize {
        level * (1 + self.m)
    }

    #[inline(always)]
    pub fn vector(&self, slot: u32) -> &[f32] {
        let start = slot as usize * self.dims;
        let cells = &self.vectors[start..start + self.dims];
        // SAFETY: UnsafeCell<f32> has f32's layout, and a published slot's vector is never
        // written again (module docs).
        unsafe { std::slice::from_raw_parts(cells.as_ptr() as *const f32, self.dims) }
    }

    /// Address of a slot's vector, for prefetching (no bounds check needed: a hint).
    #[inline(always)]
    pub fn vector_ptr(&self, slot: u32) -> *const f32 {
        self.vectors.as_ptr().wrapping_add(slot as usize * self.dims) as *const f32
    }

    /// Writes a fresh slot's id, level, upper offset and vector.
    ///
    /// Callers own `slot` exclusively: it was handed out under the slot mutex and nothing links
    /// to it yet.
    pub fn write_node(&self, slot: u32, key: u64, level: usize, upper_at: u32, vector: &[f32]) {
        let s = slot as usize;
        self.keys[s].store(key, Ordering::Relaxed);
        self.levels[s].store(level as u8, Ordering::Relaxed);
        self.upper_at[s].store(upper_at, Ordering::Relaxed);
        let start = s * self.dims;
        for (cell, &x) in self.vectors[start..start + self.dims].iter().zip(vector) {
            // SAFETY: the slot is unreachable by other threads until linked (see above).
            unsafe { *cell.get() = x };
        }
    }

    /// A node's list at `level`: `[count, neighbours...]`.
    #[inline(always)]
    pub fn links(&self, slot: u32, level: usize) -> &[AtomicU32] {
        if level == 0 {
            let start = slot as usize * (1 + self.m0);
            &self.level0[start..start + 1 + self.m0]
        } else {
            let start = self.upper_at[slot as usize].load(Ordering::Relaxed) as usize + (level - 1) * (1 + self.m);
            &self.upper[start..start + 1 + self.m]
        }
    }

    /// The neighbours in a list (as many as its count says, never past its capacity).
    #[inline(always)]
    pub fn neighbours(list: &[AtomicU32]) -> impl Iterator<Item = u32> + '_ {
        let count = (list[0].load(Ordering::Acquire) as usize).min(list.len() - 1);
        list[1..=count].iter().map(|n| n.load(Ordering::Acquire))
    }

    /// Replaces a list's contents (under the node's lock).
    pub fn set_links(list: &[AtomicU32], neighbours: impl Iterator<Item = u32>) {
        let mut count = 0;
        for (cell, n) in list[1..].iter().zip(neighbours) {
            cell.store(n, Ordering::Release);
            count += 1;
        }
        list[0].store(count, Ordering::Release);
    }

    /// Raw arrays for a dump: (level-0 lists, upper arena), as written.
    pub fn raw_lists(&self) -> (&[AtomicU32], &[AtomicU32]) {
        (&self.level0, &self.upper)
    }

    pub fn raw_vectors(&self, slots: usize) -> &[f32] {
        let cells = &self.vectors[..slots * self.dims];
        // SAFETY: as in `vector`.
        unsafe { std::slice::from_raw_parts(cells.as_ptr() as *const f32, cells.len()) }
    }

    /// A graph from a dump's arrays (`load` checked their sizes and contents).
    pub fn from_parts(dims: usize, m: usize, keys: Vec<u64>, levels: Vec<u8>, upper_at: Vec<u32>, vectors: Vec<f32>, level0: Vec<u32>, upper: Vec<u32>) -> Graph {
        let slots = keys.len();
        Graph {
            dims,
            m,
            m0: 2 * m,
            keys: keys.into_iter().map(AtomicU64::new).collect(),
            levels: levels.into_iter().map(AtomicU8::new).collect(),
            upper_at: upper_at.into_iter().map(AtomicU32::new).collect(),
            locks: (0..slots).map(|_| Mutex::new(())).collect(),
            vectors: vectors.into_iter().map(UnsafeCell::new).collect(),
            level0: level0.into_iter().map(AtomicU32::new).collect(),
            upper: upper.into_iter().map(AtomicU32::new).collect(),
        }
    }

    /// Heap bytes held (for stats and benchmarks).
    pub fn memory_usage(&self) -> usize {
        self.keys.capacity() * 8 + self.levels.capacity() + self.upper_at.capacity() * 4 + self.locks.capacity() * std::mem::size_of::<Mutex<()>>() + self.vectors.capacity() * 4 + self.level0.capacity() * 4 + self.upper.capacity() * 4
    }
}

//! The graph's storage: flat arrays indexed by slot, grown only under the index's write lock.
//!
//! A slot is a node: its point id, its level, its vector (contiguous with every other vector),
//! its level-0 neighbour list (fixed size, contiguous) and, for the few nodes above level 0, an
//! offset into one arena of upper-level lists. A neighbour list is `[count, n1, n2, ...]`.
//!
//! Concurrency: searches and inserts share the structure (read lock of the index). A slot's
//! vector, id, level and upper offset are written once, before any link to the slot is
//! published; links are atomics written under the slot's own lock with Release and read with
//! Acquire (plain loads on x86), so a reader always sees a complete vector behind any id it
//! reads, and a list being rewritten only ever holds valid slot ids.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};


pub(super) struct Graph {
    pub dims: usize,
    /// Links per node above level 0, and at level 0.
    pub m: usize,
    pub m0: usize,
    pub keys: Vec<AtomicU64>,
    pub levels: Vec<AtomicU8>,
    /// 1 once a node's lists are written at every level. Walks descend only through such
    /// nodes: a node still being linked is reachable at its upper levels before its lower lists
    /// exist, and a walk entering a level there would see it alone.
    done: Vec<AtomicU8>,
    /// Offset of a node's upper lists in `upper` (level 1 first); unused at level 0.
    pub upper_at: Vec<AtomicU32>,
    /// Held while a node's lists are rewritten (inserts only; searches never lock).
    pub locks: Vec<NodeLock>,
    vectors: Vec<UnsafeCell<f32>>,
    level0: Vec<AtomicU32>,
    upper: Vec<AtomicU32>,
    allocated: std::sync::atomic::AtomicUsize,
}

// SAFETY: `vectors` is written only through `write_vector`, for a slot no other thread can reach
// yet (allocated under the index's slot mutex and not linked); every other field is atomic or a
// mutex.
unsafe impl Sync for Graph {}

impl Graph {
    pub fn new(dims: usize, m: usize) -> Graph {
        Graph { dims, m, m0: 2 * m, allocated: 0.into(), keys: Vec::new(), levels: Vec::new(), done: Vec::new(), upper_at: Vec::new(), locks: Vec::new(), vectors: Vec::new(), level0: Vec::new(), upper: Vec::new() }
    }

    pub fn capacity(&self) -> usize {
        self.keys.len()
    }

    /// Nodes handed out so far (every link points below this).
    pub fn allocated(&self) -> usize {
        self.allocated.load(Ordering::Acquire)
    }

    /// Records `n` nodes handed out (under the index's slot mutex, after their vectors are written).
    pub fn set_allocated(&self, n: usize) {
        self.allocated.store(n, Ordering::Release);
    }

    pub fn upper_capacity(&self) -> usize {
        self.upper.len()
    }

    /// Room for `slots` nodes and `upper` arena entries (exclusive access: the write lock).
    ///
    /// New arrays come zeroed from the allocator (`zeroed`), so pages past the used part are
    /// not touched and cost no memory until nodes land there: capacity can double without the
    /// server's RSS doubling.
    pub fn grow(&mut self, slots: usize, upper: usize) {
        if slots > self.capacity() {
            grow_zeroed(&mut self.keys, slots);
            grow_zeroed(&mut self.levels, slots);
            grow_zeroed(&mut self.done, slots);
            grow_zeroed(&mut self.upper_at, slots);
            grow_zeroed(&mut self.locks, slots);
            grow_zeroed(&mut self.vectors, slots * self.dims);
            grow_zeroed(&mut self.level0, slots * (1 + self.m0));
        }
        if upper > self.upper.len() {
            grow_zeroed(&mut self.upper, upper);
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

    #[inline(always)]
    pub fn is_done(&self, slot: u32) -> bool {
        self.done[slot as usize].load(Ordering::Acquire) == 1
    }

    /// Marks a node linked at every level (after its last list was written).
    pub fn set_done(&self, slot: u32) {
        self.done[slot as usize].store(1, Ordering::Release);
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
    pub fn from_parts(dims: usize, parts: super::file::Parts) -> Graph {
        let super::file::Parts { m, keys, levels, upper_at, vectors, level0, upper, .. } = parts;
        let slots = keys.len();
        Graph {
            dims,
            m,
            m0: 2 * m,
            keys: keys.into_iter().map(AtomicU64::new).collect(),
            levels: levels.into_iter().map(AtomicU8::new).collect(),
            done: (0..slots).map(|_| AtomicU8::new(1)).collect(),
            upper_at: upper_at.into_iter().map(AtomicU32::new).collect(),
            locks: (0..slots).map(|_| NodeLock::default()).collect(),
            vectors: vectors.into_iter().map(UnsafeCell::new).collect(),
            level0: level0.into_iter().map(AtomicU32::new).collect(),
            upper: upper.into_iter().map(AtomicU32::new).collect(),
            allocated: slots.into(),
        }
    }
}

/// Types whose all-zero bytes are a valid value (an atomic or a cell over a number, or a lock
/// over one): arrays of them can come zeroed from the allocator.
///
/// # Safety
/// Implementors must have the size and alignment of `Self::Zero` and accept all-zero bytes.
pub(super) unsafe trait Zeroable: Sized {
    type Zero: Clone + Default;
}

// SAFETY: each has the size, alignment and bit validity of its integer (std docs), and
// `UnsafeCell<T>` and `NodeLock` are `repr(transparent)`.
unsafe impl Zeroable for AtomicU64 {
    type Zero = u64;
}
unsafe impl Zeroable for AtomicU32 {
    type Zero = u32;
}
unsafe impl Zeroable for AtomicU8 {
    type Zero = u8;
}
unsafe impl Zeroable for UnsafeCell<f32> {
    type Zero = f32;
}
unsafe impl Zeroable for NodeLock {
    type Zero = u8;
}

/// Checked at compile time for every implementor: same size and alignment as its zero type
/// (`AtomicU64` is 8-aligned where `u64` may be 4-aligned, on 32-bit targets).
const fn same_layout<T, Z>() -> bool {
    std::mem::size_of::<T>() == std::mem::size_of::<Z>() && std::mem::align_of::<T>() == std::mem::align_of::<Z>()
}
const _: () = assert!(same_layout::<AtomicU64, u64>() && same_layout::<AtomicU32, u32>() && same_layout::<AtomicU8, u8>());
const _: () = assert!(same_layout::<UnsafeCell<f32>, f32>() && same_layout::<NodeLock, u8>());

/// Replaces `v` with a zeroed array of `len` holding `v`'s elements first. `vec![0; n]` of an
/// integer is a zeroed allocation (calloc: fresh pages, untouched until written).
fn grow_zeroed<T: Zeroable>(v: &mut Vec<T>, len: usize) {
    if len <= v.len() {
        return;
    }
    let fresh: Vec<T::Zero> = vec![T::Zero::default(); len];
    let mut fresh = std::mem::ManuallyDrop::new(fresh);
    // SAFETY: `T` has `T::Zero`'s size and alignment and accepts its zero bytes (the trait's
    // contract), so the allocation is a valid `Vec<T>` of the same length and capacity.
    let mut grown: Vec<T> = unsafe { Vec::from_raw_parts(fresh.as_mut_ptr() as *mut T, fresh.len(), fresh.capacity()) };
    // SAFETY: both hold at least `v.len()` elements and do not overlap; the moved-out elements
    // of `v` are forgotten by `set_len(0)` (atomics and cells need no drop).
    unsafe {
        std::ptr::copy_nonoverlapping(v.as_ptr(), grown.as_mut_ptr(), v.len());
        v.set_len(0);
    }
    *v = grown;
}

/// A node's lock: one byte, held for the microseconds a list is rewritten. A spin with a yield
/// (contention is two inserts linking to the same node at once), zero when free.
#[derive(Default)]
#[repr(transparent)]
pub(super) struct NodeLock(AtomicU8);

impl NodeLock {
    pub fn lock(&self) -> NodeGuard<'_> {
        let mut spins = 0u32;
        while self.0.compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        NodeGuard(self)
    }
}

pub(super) struct NodeGuard<'a>(&'a NodeLock);

impl Drop for NodeGuard<'_> {
    fn drop(&mut self) {
        self.0 .0.store(0, Ordering::Release);
    }
}

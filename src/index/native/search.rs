//! The walks: greedy descent through the upper levels, and the best-first search of one level
//! with a breadth of `ef` (HNSW's SEARCH-LAYER), reusing per-thread buffers so that a search
//! allocates nothing but its answer.

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use super::graph::Graph;
use super::kernels::{prefetch, Kernel};

/// What a walk reads: the graph, its distance kernel, the query.
#[derive(Clone, Copy)]
pub(super) struct Walk<'a> {
    pub graph: &'a Graph,
    pub kernel: &'a Kernel,
    pub query: &'a [f32],
}

/// A node and its distance to the query, ordered by distance (then slot, for determinism).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Near {
    pub d: f32,
    pub slot: u32,
}

impl Eq for Near {}

impl Ord for Near {
    fn cmp(&self, other: &Self) -> Ordering {
        self.d.total_cmp(&other.d).then(self.slot.cmp(&other.slot))
    }
}

impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A thread's search buffers. The visited set is generation-stamped: a search bumps the stamp
/// instead of clearing one mark per node.
pub(super) struct Scratch {
    marks: Vec<u16>,
    stamp: u16,
    candidates: BinaryHeap<Reverse<Near>>,
    pub results: BinaryHeap<Near>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const { RefCell::new(Scratch { marks: Vec::new(), stamp: 0, candidates: BinaryHeap::new(), results: BinaryHeap::new() }) };
}

/// Runs `f` with this thread's buffers (never re-entered: walks do not nest).
pub(super) fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => f(&mut scratch),
        // Unreachable today; a fresh buffer keeps it correct if a walk ever nests.
        Err(_) => f(&mut Scratch { marks: Vec::new(), stamp: 0, candidates: BinaryHeap::new(), results: BinaryHeap::new() }),
    })
}

impl Scratch {
    /// Starts a walk over a graph of `slots` nodes: every mark is stale afterwards.
    fn begin(&mut self, slots: usize) {
        if self.marks.len() < slots {
            self.marks.resize(slots, 0);
        }
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.marks.fill(0);
            self.stamp = 1;
        }
        self.candidates.clear();
        self.results.clear();
    }

    /// Marks `slot` visited; false when it already was.
    #[inline(always)]
    fn visit(&mut self, slot: u32) -> bool {
        match self.marks.get_mut(slot as usize) {
            Some(mark) if *mark != self.stamp => {
                *mark = self.stamp;
                true
            }
            _ => false,
        }
    }
}

/// Greedy descent at one upper level: moves to the closest neighbour until none is closer,
/// through nodes linked at every level only (the walk goes on below from where it stops).
pub(super) fn greedy(graph: &Graph, kernel: &Kernel, query: &[f32], mut at: Near, level: usize) -> Near {
    loop {
        let mut moved = false;
        for n in Graph::neighbours(graph.links(at.slot, level)) {
            let d = kernel.distance(query, graph.vector(n));
            if d < at.d && graph.is_done(n) {
                at = Near { d, slot: n };
                moved = true;
            }
        }
        if !moved {
            return at;
        }
    }
}

/// SEARCH-LAYER from `entry` at `level` with breadth `ef`: leaves the best `ef` nodes that
/// `accept` takes in `scratch.results` (a max-heap). Without a filter the walk stops as soon as
/// the closest open candidate is farther than the worst result; with one, it goes on until `ef`
/// accepted results are found or the candidates run out (hnswlib's rule).
pub(super) fn search_layer(walk: Walk<'_>, entry: Near, level: usize, ef: usize, accept: Option<&dyn Fn(u32) -> bool>, scratch: &mut Scratch) {
    let Walk { graph, kernel, query } = walk;
    // Sized to the nodes handed out, not the grown capacity: a thread's marks cost 2 bytes
    // per node of the largest graph it walked. `visit` treats a slot past them as seen: a node
    // allocated after the walk began is not returned by it, as if its insert came after.
    scratch.begin(graph.allocated());
    scratch.visit(entry.slot);
    let mut bound = f32::INFINITY;
    if accept.is_none_or(|a| a(entry.slot)) {
        scratch.results.push(entry);
        bound = entry.d;
    }
    scratch.candidates.push(Reverse(entry));
    while let Some(Reverse(current)) = scratch.candidates.pop() {
        if current.d > bound && (scratch.results.len() >= ef || accept.is_none()) {
            break;
        }
        let list = graph.links(current.slot, level);
        let mut neighbours = Graph::neighbours(list).peekable();
        while let Some(n) = neighbours.next() {
            if let Some(&next) = neighbours.peek() {
                // The first line only, whether visited or not: prefetching every line of unvisited
                // vectors measured slower (benches/results/search-glove-prefetch.md).
                prefetch(graph.vector_ptr(next), 1);
            }
            if !scratch.visit(n) {
                continue;
            }
            let d = kernel.distance(query, graph.vector(n));
            if scratch.results.len() < ef || d < bound {
                scratch.candidates.push(Reverse(Near { d, slot: n }));
                if accept.is_none_or(|a| a(n)) {
                    scratch.results.push(Near { d, slot: n });
                    if scratch.results.len() > ef {
                        scratch.results.pop();
                    }
                }
                if let Some(worst) = scratch.results.peek() {
                    bound = worst.d;
                }
            }
        }
    }
}

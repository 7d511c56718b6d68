//! Watching a collection's writes while something reads it whole: a snapshot (which must see
//! the collection as it was at one moment while writes go on) and a re-embed (which must learn
//! which documents changed while it copied them).
//!
//! A watch is registered under the collection's `writer`, so its moment falls between two
//! writes; every write after it tells it, under `writer` and before its store commit, which
//! document ids it is about to change (`Collection::note_writes`).
//!
//! A snapshot reads the store in document-id order. Its `cursor` is the last id it emitted. A
//! write to a document ahead of the cursor first copies that document as it is (its
//! *before-image*: `None` when it does not exist), once; the reader, at each id, prefers the
//! before-image to what the store holds now, and at the end emits the before-images of
//! documents deleted ahead of it. A write to a document behind the cursor needs no copy: the
//! reader already emitted it. So the reader sees every document as it was at the moment, and
//! the memory it costs is the before-images of documents written ahead of it meanwhile.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::domain::NewDocument;

/// The ids written since a watch began (a re-embed's catch-up list).
#[derive(Default)]
pub struct ChangeLog {
    touched: Mutex<BTreeSet<String>>,
}

impl ChangeLog {
    /// The ids written since the last call, in id order.
    pub fn take(&self) -> BTreeSet<String> {
        std::mem::take(&mut *self.touched.lock())
    }

    pub(crate) fn touched_extend<'a>(&self, ids: impl Iterator<Item = &'a str>) {
        self.touched.lock().extend(ids.map(str::to_owned));
    }

    pub fn len(&self) -> usize {
        self.touched.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A snapshot's view of the writes made after its moment.
#[derive(Default)]
pub struct SnapshotLog {
    state: Mutex<SnapshotState>,
}

#[derive(Default)]
struct SnapshotState {
    /// The last document id the reader emitted.
    cursor: Option<String>,
    /// Documents ahead of the cursor as they were at the moment (None: absent then).
    before: BTreeMap<String, Option<NewDocument>>,
}

impl SnapshotLog {
    /// Of `ids`, those a write must copy first: ahead of the cursor and not copied yet.
    pub(crate) fn wanted<'a>(&self, ids: impl Iterator<Item = &'a str>) -> Vec<String> {
        let state = self.state.lock();
        ids.filter(|id| state.cursor.as_deref().is_none_or(|c| *id > c) && !state.before.contains_key(*id)).map(str::to_owned).collect()
    }

    /// Keeps a before-image, unless the reader went past its id meanwhile (it then read the
    /// store before this write committed: the same state).
    pub(crate) fn keep(&self, id: String, document: Option<NewDocument>) {
        let mut state = self.state.lock();
        if state.cursor.as_deref().is_none_or(|c| id.as_str() > c) {
            state.before.entry(id).or_insert(document);
        }
    }

    /// Called by the reader at each id it reads from the store, after reading it: moves the
    /// cursor there and gives the before-image if a write copied one (the store's copy is then
    /// newer than the moment).
    pub(crate) fn pass(&self, id: &str) -> Option<Option<NewDocument>> {
        let mut state = self.state.lock();
        state.cursor = Some(id.to_owned());
        state.before.remove(id)
    }

    /// After the last stored id: the before-images left, documents that existed at the moment
    /// and were deleted before the reader reached them.
    pub(crate) fn rest(&self) -> Vec<NewDocument> {
        let mut state = self.state.lock();
        std::mem::take(&mut state.before).into_values().flatten().collect()
    }
}

/// One registered watch.
#[derive(Clone)]
pub enum Watch {
    Changes(Arc<ChangeLog>),
    Snapshot(Arc<SnapshotLog>),
}

impl Watch {
    pub(crate) fn same(&self, other: &Watch) -> bool {
        match (self, other) {
            (Watch::Changes(a), Watch::Changes(b)) => Arc::ptr_eq(a, b),
            (Watch::Snapshot(a), Watch::Snapshot(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

//! Route handlers, one file per resource.

pub mod collections;
pub mod documents;
pub mod embeddings;
pub mod page;
pub mod search;
pub mod system;

//! akidb: an embedded vector-search server. See ARCHITECTURE.md for how the modules fit.

pub mod api;
pub mod cli;
pub mod embed;
pub mod engine;
pub mod index;
pub mod model;
pub mod store;

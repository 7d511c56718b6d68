//! akidb: an embedded vector-search server. See ARCHITECTURE.md for how the modules fit.

pub mod api;
pub mod cli;
pub mod domain;
pub mod embed;
pub mod engine;
pub mod index;
pub mod lexical;
pub mod model;
pub mod service;
pub mod snapshot;
pub mod store;

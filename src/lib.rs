//! akidb: an embedded vector-search server. See ARCHITECTURE.md for how the modules fit.

pub mod cli;
pub mod embed;
pub mod model;

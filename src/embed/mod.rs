//! Embedding: tokenizer, ONNX session on its own thread, token-budget batching, pooling.

mod batcher;
mod error;
pub mod graph_rewrite;
mod onnx;
mod pooling;
mod provider;
pub mod runtime;
mod tokenize;
mod tokenize_pool;

pub use batcher::{BackendFactory, BatchConfig, Batcher, BatcherStats, Priority, FAIRNESS};
pub use error::EmbedError;
pub use onnx::{Backend, OnnxBackend, OnnxOptions};
pub use provider::{EmbedRequest, Embedding, EmbeddingProvider, ModelInfo, OnnxProvider, PendingEmbeddings, SelfTestReport, TextKind};
pub use runtime::{Device, ExecutionProvider};
pub use tokenize::{EncodedText, TextEncoder};

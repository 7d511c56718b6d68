//! Splitting a document into passages that fit the model's window, with `text-splitter`:
//! paragraph, then sentence, then word boundaries, counted in the collection's own tokens.

use std::sync::Arc;

use text_splitter::{ChunkConfig, ChunkSizer, TextSplitter};

use crate::domain::{Chunking, Span};
use crate::embed::TextEncoder;

/// Counts tokens the way the model will see them (without the special tokens it adds).
struct TokenCounter(Arc<TextEncoder>);

impl ChunkSizer for TokenCounter {
    fn size(&self, chunk: &str) -> usize {
        self.0.count_tokens(chunk)
    }
}

/// The default chunking for a model: its window, and an overlap of one eighth of it.
pub fn default_chunking(encoder: &TextEncoder) -> Chunking {
    let max_tokens = encoder.window();
    Chunking { max_tokens, overlap_tokens: max_tokens / 8 }
}

/// Checks a requested chunking against the model's window.
pub fn validate_chunking(chunking: &Chunking, encoder: &TextEncoder) -> Result<(), String> {
    let window = encoder.window();
    if chunking.max_tokens == 0 || chunking.max_tokens > window {
        return Err(format!("chunking.max_tokens must be in 1..={window} (the model's window less its special tokens), got {}", chunking.max_tokens));
    }
    if chunking.overlap_tokens >= chunking.max_tokens {
        return Err(format!("chunking.overlap_tokens must be below max_tokens ({}), got {}", chunking.max_tokens, chunking.overlap_tokens));
    }
    Ok(())
}

pub struct Splitter {
    splitter: Option<TextSplitter<TokenCounter>>,
}

impl Splitter {
    /// `None`: every document is one passage.
    pub fn new(chunking: Option<Chunking>, encoder: Arc<TextEncoder>) -> Result<Self, String> {
        let splitter = match chunking {
            None => None,
            Some(c) => {
                let config = ChunkConfig::new(c.max_tokens).with_overlap(c.overlap_tokens).map_err(|e| e.to_string())?.with_sizer(TokenCounter(encoder));
                Some(TextSplitter::new(config))
            }
        };
        Ok(Splitter { splitter })
    }

    /// The passages of `text` as character spans, in order; never empty for a non-blank text.
    pub fn split(&self, text: &str) -> Vec<Span> {
        let whole = Span { start: 0, end: text.chars().count() };
        let Some(splitter) = &self.splitter else { return vec![whole] };
        let spans: Vec<Span> = splitter
            .chunk_char_indices(text)
            .map(|c| Span { start: c.char_offset, end: c.char_offset + c.chunk.chars().count() })
            .filter(|s| s.end > s.start)
            .collect();
        if spans.is_empty() {
            vec![whole]
        } else {
            spans
        }
    }
}

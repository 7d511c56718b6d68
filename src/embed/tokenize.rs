//! Tokenization under the manifest's rules, one text at a time (padding is the batcher's job).

use std::path::Path;

use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use super::EmbedError;
use crate::model::Manifest;

/// Token ids of one text, ready to batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedText {
    pub ids: Vec<u32>,
    /// The text was longer than the model's `max_tokens` and was cut.
    pub truncated: bool,
}

pub struct TextEncoder {
    tokenizer: Tokenizer,
    /// The same tokenizer without truncation or special tokens, for counting (passage splitting).
    counter: Tokenizer,
    /// Special tokens the model adds to every text (`[CLS]`/`[SEP]`, or EOS).
    special_tokens: usize,
    max_tokens: usize,
    eos: Option<u32>,
    pad_id: u32,
}

impl TextEncoder {
    pub fn from_file(path: &Path, manifest: &Manifest) -> Result<Self, EmbedError> {
        let load_err = |message: String| EmbedError::Tokenizer { path: path.to_owned(), message };
        let mut tokenizer = Tokenizer::from_file(path).map_err(|e| load_err(e.to_string()))?;
        // The file's own padding would pad every text to a fixed length and feed pads as real tokens.
        tokenizer.with_padding(None);
        let mut counter = tokenizer.clone();
        counter.with_truncation(None).map_err(|e| load_err(e.to_string()))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: manifest.max_tokens,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| load_err(e.to_string()))?;
        let pad_id = manifest
            .pad_token_id
            .or_else(|| ["[PAD]", "<pad>", "<|endoftext|>"].iter().find_map(|t| tokenizer.token_to_id(t)))
            .unwrap_or(0);
        let eos = if manifest.append_eos { manifest.eos_token_id } else { None };
        let mut encoder = TextEncoder { tokenizer, counter, special_tokens: 0, max_tokens: manifest.max_tokens, eos, pad_id };
        encoder.special_tokens = encoder.encode("").map(|e| e.ids.len()).unwrap_or(2);
        Ok(encoder)
    }

    /// Tokens of `text` without special tokens and without truncation.
    pub fn count_tokens(&self, text: &str) -> usize {
        self.counter.encode_fast(text, false).map_or(usize::MAX, |e| e.len())
    }

    /// Tokens the model adds to every text.
    pub fn special_tokens(&self) -> usize {
        self.special_tokens
    }

    /// The model's window less its special tokens: the longest passage embedded whole.
    pub fn window(&self) -> usize {
        self.max_tokens.saturating_sub(self.special_tokens).max(1)
    }

    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    pub fn encode(&self, text: &str) -> Result<EncodedText, EmbedError> {
        fail::fail_point!("embed.tokenize.text");
        let encoding = self.tokenizer.encode(text, true).map_err(|e| EmbedError::Tokenize(e.to_string()))?;
        let mut truncated = !encoding.get_overflowing().is_empty();
        let mut ids = encoding.get_ids().to_vec();
        if let Some(eos) = self.eos {
            // The Qwen3-Embedding tokenizer appends EOS itself; a plain Qwen3 tokenizer does not.
            if ids.last() != Some(&eos) {
                if ids.len() >= self.max_tokens {
                    ids.truncate(self.max_tokens - 1);
                    truncated = true;
                }
                ids.push(eos);
            }
        }
        Ok(EncodedText { ids, truncated })
    }
}

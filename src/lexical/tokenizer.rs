//! The lexical analyzer: keeps identifiers findable and stems prose.
//!
//! A *word* is a run of letters, digits and `_`, joined across `::`, `.`, `-`, `/` and `#` when
//! a letter or digit follows on both sides: `tokio::spawn`, `Uuid::new_v4`, `v1.2.3`,
//! `COVID-19`. A word made of several *parts* (split at the joiners, at `_`, and at camelCase
//! humps) is indexed whole and part by part, so `Uuid::new_v4` is found by `Uuid::new_v4`,
//! `new_v4`, `uuid` or `new`, and `HashMap` by `hashmap`, `hash` and `map`. Everything is
//! lowercased; English stop words are dropped and English stems taken (Snowball) downstream.

use tantivy::tokenizer::{Language, LowerCaser, RemoveLongFilter, Stemmer, StopWordFilter, TextAnalyzer, Token, TokenStream, Tokenizer};

/// Name the analyzer is registered under in the index.
pub const ANALYZER: &str = "akidb_code_english";

/// Words longer than this (bytes) are dropped: base64 blobs and hashes would bloat the terms.
const MAX_TOKEN_BYTES: usize = 64;

pub fn analyzer() -> TextAnalyzer {
    let builder = TextAnalyzer::builder(IdentifierTokenizer).filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES)).filter(LowerCaser);
    match StopWordFilter::new(Language::English) {
        Some(stop) => builder.filter(stop).filter(Stemmer::new(Language::English)).build(),
        None => builder.filter(Stemmer::new(Language::English)).build(),
    }
}

/// The terms a query text turns into (deduplicated, in first-seen order).
pub fn terms(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut stream = analyzer.token_stream(text);
    let mut out: Vec<String> = Vec::new();
    // A set, not `out.contains`: a query of n distinct words would cost n² comparisons.
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    while let Some(token) = stream.next() {
        if seen.insert(token.text.clone()) {
            out.push(token.text.clone());
        }
    }
    out
}

#[derive(Clone, Default)]
pub struct IdentifierTokenizer;

pub struct IdentifierStream {
    tokens: std::vec::IntoIter<Token>,
    current: Token,
}

impl Tokenizer for IdentifierTokenizer {
    type TokenStream<'a> = IdentifierStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> IdentifierStream {
        IdentifierStream { tokens: tokenize(text).into_iter(), current: Token::default() }
    }
}

impl TokenStream for IdentifierStream {
    fn advance(&mut self) -> bool {
        match self.tokens.next() {
            Some(token) => {
                self.current = token;
                true
            }
            None => false,
        }
    }

    fn token(&self) -> &Token {
        &self.current
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.current
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_joiner(c: char) -> bool {
    matches!(c, ':' | '.' | '-' | '/' | '#')
}

/// Byte ranges of the words of `text` (see the module docs).
fn words(text: &str) -> Vec<(usize, usize)> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !is_word_char(chars[i].1) {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i;
        loop {
            while end < chars.len() && is_word_char(chars[end].1) {
                end += 1;
            }
            // A joiner run (`::`, `.`, `-`) continues the word only if a word character follows.
            let mut j = end;
            while j < chars.len() && is_joiner(chars[j].1) && j - end < 2 {
                j += 1;
            }
            if j > end && j < chars.len() && is_word_char(chars[j].1) {
                end = j;
            } else {
                break;
            }
        }
        let byte_end = chars.get(end).map_or(text.len(), |(b, _)| *b);
        out.push((chars[start].0, byte_end));
        i = end;
    }
    out
}

/// Byte ranges of a word's parts: split at joiners and `_`, and at camelCase humps
/// (`HTTPServer` → `HTTP`, `Server`; `newV4` → `new`, `V4`).
fn parts(word: &str) -> Vec<(usize, usize)> {
    let chars: Vec<(usize, char)> = word.char_indices().collect();
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    for (k, &(b, c)) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if let Some(s) = start.take() {
                out.push((s, b));
            }
            continue;
        }
        if let Some(s) = start {
            let prev = chars[k - 1].1;
            let next = chars.get(k + 1).map(|&(_, n)| n);
            let hump = (prev.is_lowercase() && c.is_uppercase()) || (prev.is_uppercase() && c.is_uppercase() && next.is_some_and(|n| n.is_lowercase()));
            if hump {
                out.push((s, b));
                start = Some(b);
            }
        } else {
            start = Some(b);
        }
    }
    if let Some(s) = start {
        out.push((s, word.len()));
    }
    out
}

fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    for (position, (from, to)) in words(text).into_iter().enumerate() {
        let word = &text[from..to];
        let parts = parts(word);
        let token = |a: usize, b: usize| Token { offset_from: from + a, offset_to: from + b, position, text: word[a..b].to_owned(), position_length: 1 };
        if parts.len() > 1 {
            tokens.push(token(0, word.len()));
        }
        tokens.extend(parts.into_iter().map(|(a, b)| token(a, b)));
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str) -> Vec<String> {
        terms(&mut analyzer(), text)
    }

    #[test]
    fn identifiers_are_kept_whole_and_in_parts() {
        assert_eq!(all("tokio::spawn"), ["tokio::spawn", "tokio", "spawn"]);
        assert_eq!(all("Uuid::new_v4()"), ["uuid::new_v4", "uuid", "new", "v4"]);
        assert_eq!(all("HashMap"), ["hashmap", "hash", "map"]);
        assert_eq!(all("HTTPServer"), ["httpserver", "http", "server"]);
        assert_eq!(all("snake_case_name"), ["snake_case_nam", "snake", "case", "name"]);
        assert_eq!(all("version 1.2.3"), ["version", "1.2.3", "1", "2", "3"]);
    }

    #[test]
    fn prose_is_stemmed_and_stop_words_dropped() {
        assert_eq!(all("The cells was running."), ["cell", "run"]);
        assert_eq!(all("end. Next"), ["end", "next"]);
        assert_eq!(all("COVID-19 vaccines"), ["covid-19", "covid", "19", "vaccin"]);
    }
}

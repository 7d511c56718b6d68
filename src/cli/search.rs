//! `akidb search`: one query against a running server; a readable table or JSON lines.

use std::io::IsTerminal;

use clap::{Args, ValueEnum};
use serde_json::{json, Value};

use super::client::{segment, Client, ClientError, ServerArgs};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModeArg {
    Dense,
    Lexical,
    Hybrid,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Collection to search.
    #[arg(long, short = 'c', env = "AKIDB_COLLECTION")]
    pub collection: String,
    /// The question or keywords.
    pub query: String,
    /// Results to show.
    #[arg(long, short = 'k', default_value_t = 10)]
    pub k: usize,
    /// dense, lexical or hybrid (default: the server's, hybrid).
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Metadata filter as JSON, e.g. '{"path": {"$in": ["a.md", "b.md"]}}'.
    #[arg(long = "where")]
    pub filter: Option<String>,
    /// One JSON object per hit instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("--where is not JSON: {0}")]
    Filter(serde_json::Error),
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// Characters of passage shown per hit in the table.
const SHOWN_CHARS: usize = 320;

pub fn run_search(args: &SearchArgs) -> Result<(), SearchError> {
    let mut out = String::new();
    table(args, &mut out)?;
    super::emit(&out);
    Ok(())
}

fn table(args: &SearchArgs, out: &mut String) -> Result<(), SearchError> {
    use std::fmt::Write as _;
    let client = Client::new(&args.server);
    client.wait_ready(std::time::Duration::from_secs(120))?;
    let mut body = json!({"query": args.query, "k": args.k});
    if let Some(mode) = args.mode {
        body["mode"] = json!(format!("{mode:?}").to_lowercase());
    }
    if let Some(filter) = &args.filter {
        body["where"] = serde_json::from_str(filter).map_err(SearchError::Filter)?;
    }
    let answer = client.post(&format!("/collections/{}/search", segment(&args.collection)), &body)?;
    let hits = answer["results"].as_array().cloned().unwrap_or_default();
    if args.json {
        for hit in &hits {
            let _ = writeln!(out, "{hit}");
        }
        return Ok(());
    }
    if hits.is_empty() {
        let _ = writeln!(out, "no results");
        return Ok(());
    }
    let terminal = std::io::stdout().is_terminal();
    let terms = query_terms(&args.query);
    for (rank, hit) in hits.iter().enumerate() {
        let id = hit["id"].as_str().unwrap_or_default();
        let score = hit["score"].as_f64().unwrap_or_default();
        let passage = &hit["passage"];
        let _ = writeln!(out, "{:>2}. {score:.4}  {id}  (passage {}, chars {}..{})", rank + 1, passage["index"], passage["start"], passage["end"]);
        let text = hit["text"].as_str().unwrap_or_default();
        let shown = excerpt(text, &terms, SHOWN_CHARS);
        let _ = writeln!(out, "    {}", mark(&shown, &terms, terminal).replace('\n', "\n    "));
        if let Some(metadata) = hit["metadata"].as_object().filter(|m| !m.is_empty()) {
            let _ = writeln!(out, "    {}", Value::Object(metadata.clone()));
        }
        let _ = writeln!(out);
    }
    Ok(())
}

/// Words the lexical index drops, so not marked either (the page uses the same list).
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "do", "does", "for", "from", "has", "have", "how", "if", "in", "into", "is", "it", "its", "no", "not", "of",
    "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was", "what", "when", "where", "which", "who", "why", "will", "with",
];

/// The query's words, lowercased, as the matches to mark (words of one letter and stop words
/// skipped).
pub fn query_terms(query: &str) -> Vec<String> {
    let mut terms: Vec<String> = query
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| w.chars().count() > 1 && !STOP_WORDS.contains(&w.to_lowercase().as_str()))
        .map(str::to_lowercase)
        .collect();
    terms.sort_by_key(|t| std::cmp::Reverse(t.len()));
    terms.dedup();
    terms
}

/// Up to `max` characters of `text`, starting a little before the first match.
fn excerpt(text: &str, terms: &[String], max: usize) -> String {
    let lower = text.to_lowercase();
    // Lowercasing can change byte lengths: only use the match position when it maps back.
    let first = terms.iter().filter_map(|t| lower.find(t.as_str())).min().filter(|_| lower.len() == text.len()).unwrap_or(0);
    let chars_before = text[..first].chars().count();
    let start = chars_before.saturating_sub(max / 4);
    let mut shown: String = text.chars().skip(start).take(max).collect();
    if start > 0 {
        shown.insert_str(0, "…");
    }
    if text.chars().count() > start + max {
        shown.push('…');
    }
    shown.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Marks case-insensitive occurrences of a term that start a word (so `spawn` marks `spawning`,
/// as the stemmed lexical match does); terms under four characters must be whole words.
/// Bold on a terminal, `**term**` otherwise.
pub fn mark(text: &str, terms: &[String], terminal: bool) -> String {
    let (open, close) = if terminal { ("\x1b[1;33m", "\x1b[0m") } else { ("**", "**") };
    let lower = text.to_lowercase();
    if terms.is_empty() || lower.len() != text.len() {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut at = 0;
    while at < text.len() {
        let starts_word = !text[..at].chars().next_back().is_some_and(char::is_alphanumeric);
        let found = terms.iter().find(|t| {
            let end = at + t.len();
            starts_word
                && lower[at..].starts_with(t.as_str())
                && text.is_char_boundary(end)
                && (t.len() >= 4 || !text[end..].chars().next().is_some_and(char::is_alphanumeric))
        });
        match found {
            Some(term) => {
                out.push_str(open);
                out.push_str(&text[at..at + term.len()]);
                out.push_str(close);
                at += term.len();
            }
            None => {
                let next = text[at..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&text[at..at + next]);
                at += next;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_are_marked_case_insensitively_and_the_excerpt_starts_near_them() {
        let terms = query_terms("Tokio spawn?");
        assert_eq!(mark("use tokio::Spawn here", &terms, false), "use **tokio**::**Spawn** here");
        let long = format!("{} tokio at the end", "word ".repeat(200));
        let shown = excerpt(&long, &terms, 100);
        assert!(shown.starts_with('…') && shown.contains("tokio"), "{shown}");
        assert_eq!(mark("ünïcode text", &query_terms("text"), false), "ünïcode **text**");
        assert_eq!(mark("Sourdough: go spawning", &query_terms("how go I spawn"), false), "Sourdough: **go** **spawn**ing");
        assert_eq!(mark("how it is done", &query_terms("how is it done"), false), "how it is **done**");
    }
}

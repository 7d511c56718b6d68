//! `akidb embed`: embeddings on the command line, one JSON object per text.

use std::io::{BufRead, Write};

use clap::Args;
use serde_json::Value;

use super::{CliError, ModelArgs};
use crate::embed::{EmbedRequest, EmbeddingProvider, TextKind};

#[derive(Debug, Args)]
pub struct EmbedArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Treat the texts as queries (the model's query instruction is applied).
    #[arg(long)]
    pub query: bool,
    /// Task for the query instruction (default: the manifest's).
    #[arg(long, requires = "query")]
    pub task: Option<String>,
    /// Matryoshka output width (must be one of the model's allowed widths).
    #[arg(long)]
    pub dims: Option<usize>,
    /// Texts to embed; without any, reads stdin, one text per line: plain text, a JSON string, or
    /// {"text": "..."}. A bad JSON line is reported by number and skipped; the rest are embedded.
    pub texts: Vec<String>,
}

/// Texts per request when streaming stdin: keeps memory flat and output flowing.
const STDIN_CHUNK: usize = 256;

pub fn run_embed(args: &EmbedArgs) -> Result<(), CliError> {
    let (texts, bad_lines) = if args.texts.is_empty() { read_stdin()? } else { (args.texts.clone(), 0) };
    let provider = args.model.load_provider()?;
    tracing::info!(model = %provider.info().name, provider = provider.info().execution_provider.name(), "embedding {} texts", texts.len());
    let kind = if args.query { TextKind::Query } else { TextKind::Document };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for chunk in texts.chunks(STDIN_CHUNK) {
        let request = EmbedRequest { texts: chunk.to_vec(), kind, dims: args.dims, task: args.task.clone(), priority: None };
        let embeddings = provider.embed(request).wait()?;
        for embedding in embeddings {
            serde_json::to_writer(&mut out, &embedding)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    if bad_lines > 0 {
        return Err(CliError::BadLines(bad_lines));
    }
    Ok(())
}

/// Lines of stdin as texts, and how many lines were bad (each reported on stderr).
fn read_stdin() -> Result<(Vec<String>, usize), CliError> {
    let mut texts = Vec::new();
    let mut bad = 0;
    for (number, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(&line) {
            Ok(text) => texts.push(text),
            Err(message) => {
                bad += 1;
                eprintln!("{}", CliError::InputLine { line: number + 1, message });
            }
        }
    }
    Ok((texts, bad))
}

/// A line that looks like JSON (starts with `{` or `"`) must be a JSON string or an object with
/// a string `text`; any other line is the text itself.
fn parse_line(line: &str) -> Result<String, String> {
    let trimmed = line.trim_start();
    if !(trimmed.starts_with('{') || trimmed.starts_with('"')) {
        return Ok(line.to_owned());
    }
    match serde_json::from_str::<Value>(trimmed) {
        Ok(Value::String(text)) => Ok(text),
        Ok(Value::Object(mut object)) => match object.remove("text") {
            Some(Value::String(text)) => Ok(text),
            Some(_) => Err("\"text\" must be a string".into()),
            None => Err("a JSON object needs a \"text\" field".into()),
        },
        Ok(_) => Err("expected plain text, a JSON string or {\"text\": \"...\"}".into()),
        Err(err) => Err(format!("looks like JSON but does not parse: {}", err.to_string().split(" at line ").next().unwrap_or_default())),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_line;

    #[test]
    fn plain_json_string_and_object_lines_are_texts_and_bad_json_is_named() {
        assert_eq!(parse_line("plain words").unwrap(), "plain words");
        assert_eq!(parse_line("\"a json string\"").unwrap(), "a json string");
        assert_eq!(parse_line("{\"text\": \"an object\"}").unwrap(), "an object");
        let bad = parse_line("{\"text\": 3}").unwrap_err();
        assert_eq!(bad, "\"text\" must be a string");
        let broken = parse_line("{\"text\": ").unwrap_err();
        assert!(broken.starts_with("looks like JSON but does not parse: EOF"), "{broken}");
    }
}

//! `akidb embed`: embeddings on the command line, one JSON object per text.

use std::io::{BufRead, Write};

use clap::Args;
use serde::Deserialize;

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
    /// Texts to embed; without any, reads JSON lines from stdin: a JSON string or {"text": "..."} per line.
    pub texts: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum InputLine {
    Text(String),
    Object { text: String },
}

/// Texts per request when streaming stdin: keeps memory flat and output flowing.
const STDIN_CHUNK: usize = 256;

pub fn run_embed(args: &EmbedArgs) -> Result<(), CliError> {
    let texts = if args.texts.is_empty() { read_stdin()? } else { args.texts.clone() };
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
    Ok(())
}

fn read_stdin() -> Result<Vec<String>, CliError> {
    let mut texts = Vec::new();
    for (number, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: InputLine =
            serde_json::from_str(&line).map_err(|e| CliError::InputLine { line: number + 1, message: e.to_string() })?;
        texts.push(match parsed {
            InputLine::Text(text) | InputLine::Object { text } => text,
        });
    }
    Ok(texts)
}

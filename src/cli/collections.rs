//! `akidb collections list|create|info|delete`, over HTTP.

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::client::{segment, Client, ClientError, ServerArgs};

#[derive(Debug, Args)]
pub struct CollectionsArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Print the server's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: CollectionsCommand,
}

#[derive(Debug, Subcommand)]
pub enum CollectionsCommand {
    /// Every collection, with its model and counts.
    List,
    /// Create a collection.
    Create(CreateArgs),
    /// One collection's settings and counts.
    Info { name: String },
    /// Drop a collection and every document in it.
    Delete { name: String },
}

/// How a new collection is made (shared with `akidb ingest --create`).
#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// Collection name, [A-Za-z0-9_-]{1,64}.
    pub name: String,
    #[command(flatten)]
    pub options: CollectionOptions,
}

#[derive(Debug, Clone, Default, Args)]
pub struct CollectionOptions {
    /// Embedding model (default: the server's default model).
    #[arg(long)]
    pub model: Option<String>,
    /// cosine, dot or l2 (default cosine).
    #[arg(long)]
    pub metric: Option<String>,
    /// Longest passage in tokens (default: the model's window).
    #[arg(long, requires = "chunk_overlap")]
    pub chunk_tokens: Option<usize>,
    /// Tokens shared by consecutive passages.
    #[arg(long, requires = "chunk_tokens")]
    pub chunk_overlap: Option<usize>,
    /// One passage per document, truncated at the model's window.
    #[arg(long, conflicts_with_all = ["chunk_tokens", "chunk_overlap"])]
    pub no_chunking: bool,
}

impl CollectionOptions {
    pub fn request(&self, name: &str) -> Value {
        let mut body = Map::new();
        body.insert("name".into(), json!(name));
        if let Some(model) = &self.model {
            body.insert("model".into(), json!(model));
        }
        if let Some(metric) = &self.metric {
            body.insert("metric".into(), json!(metric));
        }
        if self.no_chunking {
            body.insert("chunking".into(), Value::Null);
        } else if let (Some(max), Some(overlap)) = (self.chunk_tokens, self.chunk_overlap) {
            body.insert("chunking".into(), json!({"max_tokens": max, "overlap_tokens": overlap}));
        }
        Value::Object(body)
    }
}

pub fn run_collections(args: &CollectionsArgs) -> Result<(), ClientError> {
    let mut out = String::new();
    report(args, &mut out)?;
    super::emit(&out);
    Ok(())
}

fn report(args: &CollectionsArgs, out: &mut String) -> Result<(), ClientError> {
    use std::fmt::Write as _;
    let client = Client::new(&args.server);
    let answer = match &args.command {
        CollectionsCommand::List => client.get("/collections", &[])?,
        CollectionsCommand::Create(create) => client.post("/collections", &create.options.request(&create.name))?,
        CollectionsCommand::Info { name } => client.get(&format!("/collections/{}", segment(name)), &[])?,
        CollectionsCommand::Delete { name } => client.delete(&format!("/collections/{}", segment(name)))?,
    };
    if args.json {
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&answer).unwrap_or_default());
        return Ok(());
    }
    match &args.command {
        CollectionsCommand::List => {
            let collections = answer["collections"].as_array().cloned().unwrap_or_default();
            if collections.is_empty() {
                let _ = writeln!(out, "no collections (create one with `akidb collections create NAME` or `akidb ingest --create`)");
            } else {
                let _ = writeln!(out, "{:<24} {:<22} {:>10} {:>10}", "NAME", "MODEL", "DOCUMENTS", "PASSAGES");
                for c in &collections {
                    let _ = writeln!(out, "{:<24} {:<22} {:>10} {:>10}", text(&c["name"]), text(&c["model"]), text(&c["documents"]), text(&c["passages"]));
                }
            }
        }
        CollectionsCommand::Create(_) | CollectionsCommand::Info { .. } => print_info(&answer, out),
        CollectionsCommand::Delete { name } => {
            let _ = writeln!(out, "deleted collection '{name}' and its {} documents", answer["documents"]);
        }
    }
    Ok(())
}

fn text(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_owned)
}

fn print_info(c: &Value, out: &mut String) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "name       {}", text(&c["name"]));
    let _ = writeln!(out, "model      {} ({} dims, {})", text(&c["model"]), c["dims"], text(&c["metric"]));
    let chunking = &c["chunking"];
    if chunking.is_null() {
        let _ = writeln!(out, "chunking   off (one passage per document)");
    } else {
        let _ = writeln!(out, "chunking   {} tokens, {} overlap", chunking["max_tokens"], chunking["overlap_tokens"]);
    }
    let _ = writeln!(out, "documents  {}", c["documents"]);
    let _ = writeln!(out, "passages   {}", c["passages"]);
    let _ = writeln!(out, "hnsw       m={} ef_construction={} ef_search={}", c["hnsw"]["m"], c["hnsw"]["ef_construction"], c["hnsw"]["ef_search"]);
}

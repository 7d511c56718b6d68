//! Command-line interface: every flag is also an `AKIDB_*` environment variable.

mod backup;
pub mod client;
mod collections;
mod embed;
mod ingest;
mod search;
mod serve;
mod transfer;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::embed::{runtime, BatchConfig, Device, EmbedError, OnnxOptions, OnnxProvider};
use crate::model::ModelDir;

pub use backup::{run_backup, run_restore, BackupArgs, RestoreArgs};
pub use collections::{run_collections, CollectionsArgs};
pub use embed::{run_embed, EmbedArgs};
pub use ingest::{run_ingest, IngestArgs};
pub use search::{run_search, SearchArgs};
pub use serve::{load_config_file, run_serve, ServeArgs};
pub use transfer::{run_export, run_import, ExportArgs, ImportArgs};

/// Writes command output to stdout; a closed pipe (`akidb search ... | head`) ends it quietly.
pub(crate) fn emit(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        if err.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: cannot write the output: {err}");
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Embed(#[from] std::sync::Arc<EmbedError>),
    #[error("stdin line {line}: {message}")]
    InputLine { line: usize, message: String },
    #[error("{0} bad stdin lines (reported above; the other lines were embedded)")]
    BadLines(usize),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error("config file: {0}")]
    Config(String),
    #[error("startup failed: {0}")]
    Startup(String),
    #[error("{0}")]
    Transfer(String),
}

impl From<EmbedError> for CliError {
    fn from(err: EmbedError) -> Self {
        CliError::Embed(std::sync::Arc::new(err))
    }
}

#[derive(Debug, Parser)]
#[command(name = "akidb", version, about = "Embedded vector search: in-process embeddings, sled storage, HNSW")]
pub struct Cli {
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `akidb=debug`.
    #[arg(long, env = "AKIDB_LOG", default_value = "info,ort=warn,hnsw_rs=warn", global = true)]
    pub log: String,
    /// A file of AKIDB_*=value lines read before the flags (flags and environment win).
    #[arg(long, env = "AKIDB_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the REST server.
    Serve(Box<ServeArgs>),
    /// Embed texts (arguments, or JSON lines on stdin) and print one JSON object per text.
    Embed(EmbedArgs),
    /// Check the model files against their manifest's sha256 and print the model's settings.
    CheckModel(CheckModelArgs),
    /// Load files and folders into a collection of a running server (resumable, idempotent).
    Ingest(Box<IngestArgs>),
    /// Search a collection of a running server.
    Search(SearchArgs),
    /// List, create, inspect or delete collections of a running server.
    Collections(CollectionsArgs),
    /// Copy a collection to a server speaking Qdrant's API (a Qdrant cluster, another akidb).
    Export(Box<ExportArgs>),
    /// Copy a collection from a server speaking Qdrant's API into this akidb.
    Import(Box<ImportArgs>),
    /// Snapshot every collection of a running server (while it serves) into a folder.
    Backup(BackupArgs),
    /// Restore a snapshot file into a running server, as a new or a replaced collection.
    Restore(RestoreArgs),
}

/// Which model to use.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Model name (a folder under --models-dir) or a directory with model.onnx, tokenizer.json, manifest.json.
    #[arg(long, env = "AKIDB_MODEL", default_value = "bge-small-en-v1.5")]
    pub model: String,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Where models and the runtime come from, and how inference runs.
#[derive(Debug, Clone, Args)]
pub struct RuntimeArgs {
    /// Folder holding named models. Default: the first of ./models, models/ beside the binary
    /// (and two folders up, for target/release), and the user data folder
    /// ($XDG_DATA_HOME/akidb/models, else ~/.local/share/akidb/models) that has the model.
    #[arg(long, env = "AKIDB_MODELS_DIR")]
    pub models_dir: Option<PathBuf>,
    /// ONNX Runtime 1.31.x shared library (scripts/setup puts it in runtime/). Default: the first
    /// that exists of ./runtime/, runtime/ beside the binary and two folders up (target/release).
    #[arg(long, env = "AKIDB_ORT_LIB")]
    pub ort_lib: Option<PathBuf>,
    /// Execution provider: auto picks CoreML on macOS, CUDA if built with it, else CPU.
    #[arg(long, env = "AKIDB_DEVICE", value_enum, default_value_t = Device::Auto)]
    pub device: Device,
    /// Intra-op threads for the model (default: the manifest's measured best, else 1).
    #[arg(long, env = "AKIDB_INTRA_THREADS")]
    pub intra_threads: Option<usize>,
    /// Intra-op threads of a second model session kept for interactive work (search queries,
    /// embedding requests of at most 16 texts), so it never waits behind document ingest; 0 runs
    /// everything on one session, interactive work first. Costs one more copy of the model in memory.
    #[arg(long, env = "AKIDB_INTERACTIVE_THREADS", default_value_t = 1)]
    pub interactive_threads: usize,
    /// Most padded tokens in one model call.
    #[arg(long, env = "AKIDB_MAX_BATCH_TOKENS", default_value_t = BatchConfig::default().max_batch_tokens)]
    pub max_batch_tokens: usize,
    /// Most texts in one model call.
    #[arg(long, env = "AKIDB_MAX_BATCH_SIZE", default_value_t = BatchConfig::default().max_batch_size)]
    pub max_batch_size: usize,
    /// Run the model file exactly as it is, skipping akidb's exact load-time graph rewrites
    /// (today: the no-op NaN scrub after each attention softmax of PyTorch SDPA exports).
    #[arg(long, env = "AKIDB_KEEP_GRAPH", value_parser = clap::builder::FalseyValueParser::new())]
    pub keep_graph: bool,
    /// Data directory: the store, the index dumps, the CoreML model cache.
    #[arg(long, env = "AKIDB_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
}

impl RuntimeArgs {
    pub fn model_dir(&self, model: &str) -> Result<ModelDir, EmbedError> {
        Ok(ModelDir::resolve_in(model, &self.models_dirs())?)
    }

    /// --ort-lib, else the first default place that has the library (else ./runtime/, whose
    /// absence the loader reports).
    pub fn ort_library(&self) -> PathBuf {
        if let Some(path) = &self.ort_lib {
            return path.clone();
        }
        let default = runtime::default_ort_library();
        let mut candidates = vec![default.clone()];
        if let Some(bin) = std::env::current_exe().ok().and_then(|exe| exe.parent().map(std::path::Path::to_owned)) {
            candidates.push(bin.join(&default));
            candidates.extend(bin.parent().and_then(std::path::Path::parent).map(|repo| repo.join(&default)));
        }
        candidates.into_iter().find(|c| c.is_file()).unwrap_or(default)
    }

    /// Where named models are looked for: --models-dir alone when given, else the defaults.
    pub fn models_dirs(&self) -> Vec<PathBuf> {
        if let Some(dir) = &self.models_dir {
            return vec![dir.clone()];
        }
        let mut dirs = vec![PathBuf::from("models")];
        if let Some(bin) = std::env::current_exe().ok().and_then(|exe| exe.parent().map(std::path::Path::to_owned)) {
            dirs.push(bin.join("models"));
            // A build's binary in target/release: the repository's models/.
            if let Some(repo) = bin.parent().and_then(std::path::Path::parent) {
                dirs.push(repo.join("models"));
            }
        }
        let data = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")));
        dirs.extend(data.map(|d| d.join("akidb").join("models")));
        dirs
    }

    pub fn load_provider(&self, model: &str) -> Result<OnnxProvider, EmbedError> {
        let model = self.model_dir(model)?;
        let options = OnnxOptions {
            ort_library: self.ort_library(),
            device: self.device,
            intra_threads: self.intra_threads,
            cache_dir: self.data_dir.join("coreml-cache"),
            keep_graph: self.keep_graph,
            interactive_threads: self.interactive_threads,
            spinning: true,
        };
        OnnxProvider::load(&model, &options, BatchConfig { max_batch_tokens: self.max_batch_tokens, max_batch_size: self.max_batch_size })
    }
}

impl ModelArgs {
    pub fn model_dir(&self) -> Result<ModelDir, EmbedError> {
        self.runtime.model_dir(&self.model)
    }

    pub fn load_provider(&self) -> Result<OnnxProvider, EmbedError> {
        self.runtime.load_provider(&self.model)
    }
}

#[derive(Debug, Args)]
pub struct CheckModelArgs {
    #[command(flatten)]
    pub model: ModelArgs,
}

pub fn run_check_model(args: &CheckModelArgs) -> Result<(), EmbedError> {
    let model = args.model.model_dir()?;
    for check in model.verify()? {
        let status = if check.pinned { "ok" } else { "unpinned" };
        println!("{status}\t{}\t{}", check.sha256, check.path.display());
    }
    // Loading runs the self-test, with the runtime and device a server would use (a failure
    // is the load's error); its report is the cold run's, as a server's startup pays it.
    let provider = args.model.load_provider()?;
    match provider.self_test_report() {
        Some(report) => println!(
            "self-test\tpassed\t{} probes, largest cosine distance {:.2e} (allowed {:e}), {:.0} ms on {:?}",
            report.probes,
            report.worst_distance,
            model.manifest.self_test.as_ref().map_or(0.0, |t| t.max_cosine_distance),
            report.elapsed.as_secs_f64() * 1e3,
            crate::embed::EmbeddingProvider::info(&provider).execution_provider,
        ),
        None => println!("self-test\tnone\tthe manifest has no probes"),
    }
    // The probes' vectors are long: shown by count only.
    let mut manifest = serde_json::to_value(&model.manifest).unwrap_or_default();
    if let Some(test) = manifest.get_mut("self_test").and_then(|t| t.as_object_mut()) {
        let count = test.get("probes").and_then(|p| p.as_array()).map_or(0, Vec::len);
        test.insert("probes".into(), serde_json::json!(format!("{count} probes")));
    }
    println!("{}", serde_json::to_string_pretty(&manifest).unwrap_or_default());
    Ok(())
}

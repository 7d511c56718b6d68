//! `akidb serve`: the REST server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::{CliError, RuntimeArgs};
use crate::api::{self, AppState, Limits, Loaded};
use crate::engine::Engine;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "AKIDB_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one; the address is printed on stdout).
    #[arg(long, env = "AKIDB_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Port of the Qdrant-compatible listener (same host, key and limits); 0 turns it off.
    #[arg(long, env = "AKIDB_QDRANT_PORT", default_value_t = 6333)]
    pub qdrant_port: u16,
    /// Models to load: a name under --models-dir or a directory; repeat for more; the first is the
    /// default. `none`: no model (collections of vectors brought by clients only).
    #[arg(long = "model", env = "AKIDB_MODELS", value_delimiter = ',', default_value = "bge-small-en-v1.5")]
    pub models: Vec<String>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// Require 'Authorization: Bearer <key>' on every route but /health and /ready.
    #[arg(long, env = "AKIDB_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Host names the server answers to without an API key, besides loopback names and --host
    /// (a guard against DNS rebinding); `*` answers any. Ignored with --api-key.
    #[arg(long, env = "AKIDB_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// Most documents in one add request.
    #[arg(long, env = "AKIDB_MAX_BATCH_DOCUMENTS", default_value_t = Limits::default().max_batch_documents)]
    pub max_batch_documents: usize,
    /// Largest request body, in bytes.
    #[arg(long, env = "AKIDB_MAX_BODY_BYTES", default_value_t = Limits::default().max_body_bytes)]
    pub max_body_bytes: usize,
    /// Largest snapshot upload (restore), in bytes; it is streamed to disk, not held in memory.
    #[arg(long, env = "AKIDB_MAX_SNAPSHOT_BYTES", default_value_t = Limits::default().max_snapshot_bytes)]
    pub max_snapshot_bytes: u64,
    /// Requests served at once; more are refused with 503 and Retry-After.
    #[arg(long, env = "AKIDB_MAX_IN_FLIGHT", default_value_t = Limits::default().max_in_flight)]
    pub max_in_flight: usize,
    /// Seconds before a request is abandoned with 408.
    #[arg(long, env = "AKIDB_REQUEST_TIMEOUT_SECS", default_value_t = Limits::default().request_timeout.as_secs())]
    pub request_timeout_secs: u64,
    /// Seconds between index dumps (dumps also happen at shutdown).
    /// The store's page cache, in MiB (sled's own default is 1024).
    #[arg(long, env = "AKIDB_STORE_CACHE_MB", default_value_t = crate::store::DEFAULT_CACHE_BYTES / (1024 * 1024))]
    pub store_cache_mb: u64,
    #[arg(long, env = "AKIDB_DUMP_INTERVAL_SECS", default_value_t = 300)]
    pub dump_interval_secs: u64,
}

pub fn run_serve(args: &ServeArgs) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("akidb-http").build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: &ServeArgs) -> Result<(), CliError> {
    let limits = Limits {
        max_batch_documents: args.max_batch_documents,
        max_body_bytes: args.max_body_bytes,
        max_snapshot_bytes: args.max_snapshot_bytes,
        max_in_flight: args.max_in_flight.max(1),
        request_timeout: Duration::from_secs(args.request_timeout_secs.max(1)),
        ..Limits::default()
    };
    let state = Arc::new(AppState::new(limits, args.api_key.clone(), api::metrics::install()).with_allowed_hosts(&args.host, &args.allowed_hosts));
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .map_err(|e| CliError::Startup(format!("cannot listen on {}:{}: {}", args.host, args.port, bind_reason(&e))))?;
    let address: SocketAddr = listener.local_addr()?;
    let qdrant_listener = match args.qdrant_port {
        0 => None,
        port => Some(
            tokio::net::TcpListener::bind((args.host.as_str(), port))
                .await
                .map_err(|e| CliError::Startup(format!("cannot listen on {}:{port} for --qdrant-port: {}", args.host, bind_reason(&e))))?,
        ),
    };
    tracing::info!(%address, "bound; loading models and indexes (/health and /ready answer meanwhile)");

    // Load in the background so that /health and /ready answer (503) while loading.
    let loading = {
        let (state, args_models, runtime, data_dir) = (state.clone(), args.models.clone(), args.runtime.clone(), args.runtime.data_dir.clone());
        let cache_bytes = args.store_cache_mb.max(1) * 1024 * 1024;
        tokio::task::spawn_blocking(move || -> Result<Arc<Engine>, CliError> {
            let mut models = Vec::with_capacity(args_models.len());
            // `--model none`: a server for vectors brought by clients, no model loaded.
            for model in args_models.iter().filter(|m| !m.is_empty() && m.as_str() != "none") {
                models.push(Arc::new(runtime.load_provider(model)?));
            }
            std::fs::create_dir_all(&data_dir)?;
            let engine = Arc::new(Engine::open_with_cache(&data_dir, cache_bytes)?);
            // Collections keep the model they were built with: load what they need beyond the
            // flags (not with `--model none` alone, which asks for no model at all).
            let no_model = args_models.iter().all(|m| m.is_empty() || m == "none") && !args_models.is_empty();
            if !no_model {
                let mut failed = std::collections::HashSet::new();
                for collection in engine.all_collections() {
                    let Some(bound) = &collection.config.model else { continue };
                    if failed.contains(&bound.name) || models.iter().any(|m: &Arc<crate::embed::OnnxProvider>| crate::embed::EmbeddingProvider::info(m.as_ref()).name == bound.name) {
                        continue;
                    }
                    match runtime.load_provider(&bound.name) {
                        Ok(provider) => {
                            tracing::info!(model = %bound.name, collection = %collection.name(), "loaded the model an existing collection was built with");
                            models.push(Arc::new(provider));
                        }
                        // Its collections answer 409 model_not_loaded; the others serve.
                        Err(err) => {
                            tracing::error!(model = %bound.name, collection = %collection.name(), %err, "cannot load the model an existing collection was built with; its collections answer 409 model_not_loaded");
                            failed.insert(bound.name.clone());
                        }
                    }
                }
            }
            crate::service::check_model_names(&models).map_err(CliError::Startup)?;
            let service = Loaded::new(engine.clone(), models, state.limits.clone());
            // Re-embeds that were running when the server stopped go on.
            if let Err(err) = service.resume_jobs() {
                tracing::error!(%err, "could not resume re-embed jobs");
            }
            state.set_loaded(service);
            tracing::info!("ready");
            Ok(engine)
        })
    };
    // One signal stops both listeners.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let qdrant_address = match &qdrant_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let qdrant_server = qdrant_listener.map(|l| {
        let (router, until) = (api::qdrant::router(state.clone()), until_stopped());
        tokio::spawn(async move { axum::serve(l, router).with_graceful_shutdown(until).await })
    });
    let until = until_stopped();
    let mut server = tokio::spawn(async move { axum::serve(listener, api::router(state)).with_graceful_shutdown(until).await });
    let engine = tokio::select! {
        loaded = loading => match loaded {
            Ok(Ok(engine)) => {
                // Printed only once requests are served: a server that fails to load never
                // claims to listen. Tests and scripts read this line to find the port.
                println!("akidb listening on http://{address}");
                if let Some(q) = qdrant_address {
                    println!("akidb Qdrant-compatible API on http://{q}");
                }
                engine
            }
            Ok(Err(err)) => {
                server.abort();
                return Err(err);
            }
            Err(join) => {
                server.abort();
                return Err(CliError::Startup(join.to_string()));
            }
        },
        // Stopped while loading: nothing was written yet that needs a flush.
        served = &mut server => return served.map_err(|e| CliError::Startup(e.to_string()))?.map_err(CliError::from),
    };
    let dumper = dump_periodically(engine.clone(), Duration::from_secs(args.dump_interval_secs.max(1)))?;
    // Returns once a signal came and every in-flight request has finished.
    let served = server.await.map_err(|e| CliError::Startup(e.to_string()))?;
    if let Some(qdrant) = qdrant_server {
        if let Ok(Err(err)) = qdrant.await {
            tracing::error!(%err, "the Qdrant-compatible listener failed");
        }
    }
    drop(dumper);
    tracing::info!("shutting down: flushing the store and dumping indexes");
    tokio::task::spawn_blocking(move || -> Result<(), CliError> {
        engine.store().flush().map_err(crate::engine::EngineError::from)?;
        engine.dump_all()?;
        engine.mark_clean_shutdown()?;
        Ok(())
    })
    .await
    .map_err(|e| CliError::Startup(e.to_string()))??;
    tracing::info!("stopped cleanly");
    Ok(served?)
}

/// Dumps every `every` on a thread of its own at background priority, so that dumps (graph
/// serialization, fsyncs) take CPU that requests leave. Stops when the returned sender is dropped.
fn dump_periodically(engine: Arc<Engine>, every: Duration) -> std::io::Result<std::sync::mpsc::Sender<()>> {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new().name("akidb-dump".into()).spawn(move || {
        crate::engine::run_as_background_thread();
        // At start too: a collection that grew since its last calibration (or a server stopped
        // before one ran) is measured now, not one interval later.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| engine.calibrate_all())).is_err() {
            tracing::error!("calibrating search breadths panicked");
        }
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let dumped = engine.dump_all();
                // After the dump, on the same background thread: measuring the breadth is an exact
                // scan per sample query, and runs only when a collection grew or shrank by half.
                engine.calibrate_all();
                dumped
            })) {
                Ok(Ok(())) => tracing::debug!("indexes dumped"),
                Ok(Err(err)) => tracing::error!(%err, "periodic index dump failed"),
                Err(_) => tracing::error!("periodic index dump panicked"),
            }
        }
    })?;
    Ok(stop)
}

/// The bind error without its OS error number (the address is named once, by the caller).
fn bind_reason(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::AddrInUse => "the address is in use (another akidb? pick one with --port)".into(),
        std::io::ErrorKind::AddrNotAvailable => "no such address on this machine (see --host)".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied (ports below 1024 need privileges)".into(),
        _ => err.to_string(),
    }
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}

/// Reads `KEY=VALUE` lines (blank lines and `#` comments skipped) into the environment, without
/// overriding variables already set: precedence is flag > environment > config file > default.
/// Called before any thread starts.
pub fn load_config_file(path: &std::path::Path) -> Result<(), CliError> {
    let text = std::fs::read_to_string(path)?;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| CliError::Config(format!("{}:{}: expected KEY=VALUE", path.display(), number + 1)))?;
        let key = key.trim();
        if !key.starts_with("AKIDB_") {
            return Err(CliError::Config(format!("{}:{}: only AKIDB_* settings belong here, got {key}", path.display(), number + 1)));
        }
        if std::env::var_os(key).is_none() {
            std::env::set_var(key, value.trim());
        }
    }
    Ok(())
}

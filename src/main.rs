use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use std::io::IsTerminal;

use akidb::cli::{load_config_file, run_backup, run_restore, run_check_model, run_collections, run_embed, run_export, run_import, run_ingest, run_search, run_serve, Cli, Command};

fn main() -> ExitCode {
    // Test builds only: failpoints named in the FAILPOINTS environment variable.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    // The config file feeds the environment, so it is read before clap looks at the environment.
    if let Some(path) = config_path() {
        if let Err(err) = load_config_file(&path) {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    }
    // `serve` reads its model list from AKIDB_MODELS; the README's AKIDB_MODEL (one model, what
    // `embed` reads) works for it too.
    if std::env::var_os("AKIDB_MODELS").is_none() {
        if let Some(model) = std::env::var_os("AKIDB_MODEL") {
            std::env::set_var("AKIDB_MODELS", model);
        }
    }
    let cli = Cli::parse();
    // Logs go to stderr: stdout carries command output (JSON lines for `embed`).
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&cli.log).unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One readable line for people; no backtrace for expected failures.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Serve(args) => run_serve(args)?,
        Command::Embed(args) => run_embed(args)?,
        Command::CheckModel(args) => run_check_model(args)?,
        Command::Ingest(args) => run_ingest(args)?,
        Command::Search(args) => run_search(args)?,
        Command::Collections(args) => run_collections(args)?,
        Command::Export(args) => run_export(args)?,
        Command::Import(args) => run_import(args)?,
        Command::Backup(args) => run_backup(args)?,
        Command::Restore(args) => run_restore(args)?,
    }
    Ok(())
}

/// `--config FILE`, `--config=FILE` or AKIDB_CONFIG.
fn config_path() -> Option<std::path::PathBuf> {
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--config" {
            return args.next().map(Into::into);
        }
        if let Some(path) = arg.to_str().and_then(|a| a.strip_prefix("--config=")) {
            return Some(path.into());
        }
    }
    std::env::var_os("AKIDB_CONFIG").map(Into::into)
}

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use akidb::cli::{run_check_model, run_embed, Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr: stdout carries command output (JSON lines for `embed`).
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&cli.log).unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
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
        Command::Embed(args) => run_embed(args)?,
        Command::CheckModel(args) => run_check_model(args)?,
    }
    Ok(())
}

//! `akidb backup DIR` and `akidb restore FILE`: clients of a running server (which holds the
//! data directory), moving snapshot files over HTTP.

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::Value;

use super::client::{segment, Client, ServerArgs};
use super::CliError;

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Where the snapshot files go (created if missing); one file per collection.
    pub dir: PathBuf,
    /// Only these collections (repeat); default: every collection.
    #[arg(long = "collection")]
    pub collections: Vec<String>,
    /// Keep the snapshots on the server too (by default each is deleted there once downloaded
    /// and checked).
    #[arg(long)]
    pub keep_on_server: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// A snapshot file (from `akidb backup` or a snapshot download).
    pub file: PathBuf,
    /// The collection to restore into (default: the name the snapshot was taken from).
    #[arg(long = "as")]
    pub name: Option<String>,
    /// Replace the collection of that name if it exists (otherwise that is an error).
    #[arg(long)]
    pub replace: bool,
}

fn client_error(err: super::client::ClientError) -> CliError {
    CliError::Transfer(err.to_string())
}

pub fn run_backup(args: &BackupArgs) -> Result<(), CliError> {
    let client = Client::new(&args.server);
    client.wait_ready(std::time::Duration::from_secs(600)).map_err(client_error)?;
    let names: Vec<String> = if args.collections.is_empty() {
        let list = client.get("/collections", &[]).map_err(client_error)?;
        list["collections"].as_array().map(|all| all.iter().filter_map(|c| c["name"].as_str().map(str::to_owned)).collect()).unwrap_or_default()
    } else {
        args.collections.clone()
    };
    std::fs::create_dir_all(&args.dir).map_err(|e| CliError::Transfer(format!("{}: {e}", args.dir.display())))?;
    let mut failed = 0;
    for name in &names {
        match backup_one(&client, name, &args.dir, args.keep_on_server) {
            Ok((file, documents, bytes)) => println!("{name}: {documents} documents, {bytes} bytes → {}", file.display()),
            Err(err) => {
                eprintln!("{name}: backup failed: {err}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        return Err(CliError::Transfer(format!("{failed} of {} collections were not backed up", names.len())));
    }
    println!("backed up {} collections to {}", names.len(), args.dir.display());
    Ok(())
}

/// Snapshot on the server, download beside the target, check the file whole, rename it into place.
fn backup_one(client: &Client, name: &str, dir: &Path, keep: bool) -> Result<(PathBuf, u64, u64), CliError> {
    let route = format!("/collections/{}/snapshots", segment(name));
    let made: Value = client.post(&route, &serde_json::json!({})).map_err(client_error)?;
    let snapshot = made["name"].as_str().ok_or_else(|| CliError::Transfer(format!("the server's answer names no snapshot: {made}")))?.to_owned();
    let file = dir.join(&snapshot);
    let partial = dir.join(format!(".{snapshot}.partial"));
    let bytes = client.download(&format!("{route}/{}", segment(&snapshot)), &partial).map_err(client_error)?;
    let checked = crate::snapshot::verify(&partial);
    let (_, totals) = match checked {
        Ok(ok) => ok,
        Err(err) => {
            let _ = std::fs::remove_file(&partial);
            return Err(CliError::Transfer(format!("the downloaded snapshot does not check out: {err}")));
        }
    };
    std::fs::rename(&partial, &file).map_err(|e| CliError::Transfer(format!("{}: {e}", file.display())))?;
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    if !keep {
        client.delete(&format!("{route}/{}", segment(&snapshot))).map_err(client_error)?;
    }
    Ok((file, totals.documents, bytes))
}

pub fn run_restore(args: &RestoreArgs) -> Result<(), CliError> {
    // Checked here first: a damaged file is refused without sending it.
    let (header, totals) = crate::snapshot::verify(&args.file).map_err(|e| CliError::Transfer(format!("{}: {e}", args.file.display())))?;
    let name = args.name.clone().unwrap_or_else(|| header.config.name.clone());
    let client = Client::new(&args.server);
    client.wait_ready(std::time::Duration::from_secs(600)).map_err(client_error)?;
    let replace = if args.replace { "true" } else { "false" };
    let answer = client.upload(&format!("/collections/{}/snapshots/upload", segment(&name)), &[("replace", replace)], &args.file).map_err(client_error)?;
    println!(
        "restored {} documents ({} passages) into '{}' in {:.1} s{}",
        answer["documents"].as_u64().unwrap_or(totals.documents),
        answer["passages"].as_u64().unwrap_or(totals.passages),
        answer["collection"].as_str().unwrap_or(&name),
        answer["seconds"].as_f64().unwrap_or(0.0),
        if answer["replaced"].as_bool() == Some(true) { ", replacing the collection of that name" } else { "" }
    );
    Ok(())
}

//! `akidb ingest PATH... --collection C`: files and folders into a running server.
//!
//! Walk (walk.rs) → read and hash each file (read.rs) → skip documents whose sha256 the server
//! already stores under the same id → batches bounded by documents and bytes → a few requests in
//! flight (send.rs) → progress on stderr → a summary, non-zero exit when anything failed.
//! Re-running after Ctrl-C or a kill completes the set: nothing is sent twice, because ids are
//! paths and unchanged content is skipped.
//!
//! Ids: a file's is its path relative to the folder given (its name, for a file given by name);
//! a JSON record's is its `id`, else `<path>#<hash of the record>`. Ids are unique across the
//! paths of one run: two files that would share an id stop the run before anything is sent, and
//! a record whose id another file already gave is refused, naming both. `--prune` then deletes
//! what a folder produced before and no longer does: documents stored with that folder as their
//! `root` whose file is gone, or whose file was read cleanly this run without giving their id.

mod read;
mod send;
mod walk;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::client::{segment, Client, ClientError, ServerArgs};
use super::collections::CollectionOptions;
use read::{read_file, Doc, Problem};
use send::{send, Fatal, Sent};

#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Files and folders: .jsonl ({id?, text, metadata?} per line), .json (an array of those),
    /// .txt, .md, .html, .pdf. Folders are walked recursively, honouring .gitignore, skipping hidden files.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Collection to load into.
    #[arg(long, short = 'c', env = "AKIDB_COLLECTION")]
    pub collection: String,
    /// Create the collection if it does not exist (see the collection options below).
    #[arg(long)]
    pub create: bool,
    #[command(flatten)]
    pub new_collection: CollectionOptions,
    /// Only files matching these globs (gitignore syntax, e.g. '*.md'); repeatable.
    #[arg(long)]
    pub include: Vec<String>,
    /// Skip files matching these globs; repeatable.
    #[arg(long)]
    pub exclude: Vec<String>,
    /// Requests in flight at once.
    #[arg(long, env = "AKIDB_INGEST_PARALLEL", default_value_t = 3)]
    pub parallel: usize,
    /// Most documents per request.
    #[arg(long, env = "AKIDB_INGEST_BATCH_DOCUMENTS", default_value_t = 64)]
    pub batch_documents: usize,
    /// Most text bytes per request (a larger single document goes alone).
    #[arg(long, env = "AKIDB_INGEST_BATCH_BYTES", default_value_t = 2 << 20)]
    pub batch_bytes: usize,
    /// Send every document, even those stored with the same content hash.
    #[arg(long)]
    pub force: bool,
    /// After sending, delete the documents these folders produced in earlier runs and no longer
    /// do (files deleted, records edited away). Only documents whose `root` is one of the
    /// folders given are considered.
    #[arg(long)]
    pub prune: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    Paths(String),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("stopped: {0}")]
    Fatal(#[from] Fatal),
    #[error("{0} failures (listed above)")]
    Failed(usize),
}

/// Running totals, shown by the progress line and the summary.
#[derive(Debug, Default)]
struct Totals {
    files: usize,
    documents: usize,
    passages: u64,
    tokens: u64,
    unchanged: usize,
    empty: usize,
    problems: Vec<String>,
    pruned: usize,
}

pub fn run_ingest(args: &IngestArgs) -> Result<(), IngestError> {
    let started = Instant::now();
    let client = Client::new(&args.server);
    client.wait_ready(READY_WAIT)?;
    ensure_collection(&client, args)?;
    let walked = walk::walk(&args.paths, &args.include, &args.exclude).map_err(IngestError::Paths)?;
    let stored = if args.force && !args.prune { HashMap::new() } else { stored_documents(&client, &args.collection)? };
    let known: HashMap<&str, &Stored> = if args.force { HashMap::new() } else { stored.iter().map(|(id, s)| (id.as_str(), s)).collect() };
    // Every id this run produced, with the file that gave it (ids must be unique across files).
    let mut produced: HashMap<String, String> = HashMap::new();
    // Files read without a problem: their stored documents with ids not produced are stale.
    let mut clean_files: std::collections::HashSet<(String, String)> = std::collections::HashSet::new();
    let total_bytes: u64 = walked.files.iter().map(|f| f.bytes).sum();
    let mut totals = Totals { problems: walked.problems.iter().map(Problem::to_string).collect(), ..Totals::default() };
    let progress = Progress::new(total_bytes, walked.files.len());

    // Senders: `parallel` threads over a bounded queue, so reading stays just ahead of sending.
    let (batches, queue) = shared_queue(args.parallel.max(1) * 2);
    let (results, done) = mpsc::channel::<Result<(Sent, u64), Fatal>>();
    let workers: Vec<_> = (0..args.parallel.max(1))
        .map(|_| {
            let (client, queue, results, collection) = (client.clone(), queue.clone(), results.clone(), args.collection.clone());
            std::thread::spawn(move || {
                while let Ok((docs, bytes)) = next(&queue) {
                    let outcome = send(&client, &collection, &docs).map(|sent| (sent, bytes));
                    let fatal = outcome.is_err();
                    if results.send(outcome).is_err() || fatal {
                        return;
                    }
                }
            })
        })
        .collect();
    // Only the workers hold the queue: if they all stop, sending fails instead of blocking.
    drop(queue);
    drop(results);

    let mut fatal: Option<Fatal> = None;
    let mut batch: Vec<Doc> = Vec::new();
    let mut batch_bytes = 0usize;
    let mut pending_file_bytes = 0u64;
    let absorb = |totals: &mut Totals, progress: &Progress, outcome: Result<(Sent, u64), Fatal>, fatal: &mut Option<Fatal>| match outcome {
        Ok((sent, bytes)) => {
            totals.documents += sent.documents;
            totals.passages += sent.passages;
            totals.tokens += sent.tokens;
            totals.problems.extend(sent.refused.into_iter().map(|(id, why)| format!("{id}: refused by the server: {why}")));
            progress.advance(bytes, totals);
        }
        Err(err) => *fatal = Some(err),
    };
    for file in &walked.files {
        while let Ok(outcome) = done.try_recv() {
            absorb(&mut totals, &progress, outcome, &mut fatal);
        }
        if fatal.is_some() {
            break;
        }
        let read = read_file(&file.path, &file.relative, file.root.as_deref(), file.kind);
        totals.files += 1;
        totals.empty += read.empty;
        totals.problems.extend(read.problems.iter().map(Problem::to_string));
        if let (true, Some(root)) = (read.problems.is_empty(), &file.root) {
            clean_files.insert((root.clone(), file.relative.clone()));
        }
        pending_file_bytes += file.bytes;
        for doc in read.docs {
            match produced.entry(doc.id.clone()) {
                std::collections::hash_map::Entry::Occupied(first) => {
                    totals.problems.push(format!("{}: id '{}' was already given by {}: not sent (ids must be unique across the files of a run)", file.path.display(), doc.id, first.get()));
                    continue;
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(file.path.display().to_string());
                }
            }
            // Unchanged: same content, found at the same place (a document that moved to another
            // folder or file is sent again, so its root and path follow it).
            let text = |key: &str| doc.metadata.get(key).and_then(|v| v.as_str());
            if known.get(doc.id.as_str()).is_some_and(|s| s.sha256.as_deref() == Some(doc.sha256.as_str()) && s.root.as_deref() == text("root") && s.path.as_deref() == text("path")) {
                totals.unchanged += 1;
                continue;
            }
            if !batch.is_empty() && (batch.len() >= args.batch_documents || batch_bytes + doc.text.len() > args.batch_bytes) {
                batches.send((std::mem::take(&mut batch), std::mem::take(&mut pending_file_bytes))).ok();
                batch_bytes = 0;
            }
            batch_bytes += doc.text.len();
            batch.push(doc);
        }
        if batch.is_empty() {
            // Nothing of this file waits to be sent: its bytes count as done now.
            progress.advance(std::mem::take(&mut pending_file_bytes), &totals);
        }
    }
    if fatal.is_none() && !batch.is_empty() {
        batches.send((batch, pending_file_bytes)).ok();
    }
    drop(batches);
    for outcome in done {
        absorb(&mut totals, &progress, outcome, &mut fatal);
    }
    for worker in workers {
        let _ = worker.join();
    }
    progress.finish();
    if args.prune && fatal.is_none() {
        // The folders given (as `walk` records them), even those with no file left.
        let folders: Vec<String> = args.paths.iter().filter(|p| p.is_dir()).filter_map(|p| std::fs::canonicalize(p).ok()).map(|p| p.display().to_string()).collect();
        let roots: std::collections::HashSet<&str> = folders.iter().map(String::as_str).collect();
        let stale: Vec<String> = stored
            .iter()
            .filter(|(id, s)| {
                let (Some(root), Some(path)) = (s.root.as_deref(), s.path.as_deref()) else { return false };
                // Gone: the file no longer exists (not merely unwalked: an --include, a walk error).
                let gone = !std::path::Path::new(root).join(path).exists();
                let edited = clean_files.contains(&(root.to_owned(), path.to_owned()));
                roots.contains(root) && !produced.contains_key(id.as_str()) && (gone || edited)
            })
            .map(|(id, _)| id.clone())
            .collect();
        match prune(&client, &args.collection, &stale) {
            Ok(deleted) => totals.pruned = deleted,
            Err(err) => totals.problems.push(format!("--prune: {err}")),
        }
    }
    summary(args, &walked, &totals, started.elapsed());
    if let Some(fatal) = fatal {
        return Err(fatal.into());
    }
    if !totals.problems.is_empty() {
        return Err(IngestError::Failed(totals.problems.len()));
    }
    Ok(())
}

/// The queue the senders share: std's receiver behind a mutex (one batch per pop).
type Queue = std::sync::Arc<std::sync::Mutex<mpsc::Receiver<(Vec<Doc>, u64)>>>;

fn shared_queue(bound: usize) -> (mpsc::SyncSender<(Vec<Doc>, u64)>, Queue) {
    let (sender, receiver) = mpsc::sync_channel(bound);
    (sender, std::sync::Arc::new(std::sync::Mutex::new(receiver)))
}

fn next(queue: &Queue) -> Result<(Vec<Doc>, u64), mpsc::RecvError> {
    queue.lock().map_err(|_| mpsc::RecvError)?.recv()
}

/// Creates the collection with --create when it is missing; without --create a missing
/// collection stops the run before anything is read.
fn ensure_collection(client: &Client, args: &IngestArgs) -> Result<(), IngestError> {
    match client.get(&format!("/collections/{}", segment(&args.collection)), &[]) {
        Ok(_) => Ok(()),
        Err(ClientError::Http { status: 404, .. }) if args.create => {
            client.post("/collections", &args.new_collection.request(&args.collection))?;
            eprintln!("created collection '{}'", args.collection);
            Ok(())
        }
        Err(ClientError::Http { status: 404, message, .. }) => Err(IngestError::Paths(format!("{message} (add --create to create it)"))),
        Err(err) => Err(err.into()),
    }
}

/// What ingest wrote into a stored document's metadata.
struct Stored {
    sha256: Option<String>,
    root: Option<String>,
    path: Option<String>,
}

/// Every stored document's id with the metadata ingest wrote: what a re-run may skip, and what
/// `--prune` may delete.
fn stored_documents(client: &Client, collection: &str) -> Result<HashMap<String, Stored>, ClientError> {
    let mut known = HashMap::new();
    let mut cursor: Option<String> = None;
    let path = format!("/collections/{}/documents", segment(collection));
    let text = |value: &serde_json::Value| value.as_str().map(str::to_owned);
    loop {
        let mut query = vec![("limit", "1000"), ("include", "metadata")];
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor.as_str()));
        }
        let page = client.get(&path, &query)?;
        for document in page["documents"].as_array().into_iter().flatten() {
            if let Some(id) = document["id"].as_str() {
                let metadata = &document["metadata"];
                known.insert(id.to_owned(), Stored { sha256: text(&metadata["sha256"]), root: text(&metadata["root"]), path: text(&metadata["path"]) });
            }
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(known),
        }
    }
}

/// Deletes documents by id in requests of at most 1,000; returns how many existed.
fn prune(client: &Client, collection: &str, ids: &[String]) -> Result<usize, ClientError> {
    let path = format!("/collections/{}/documents/delete", segment(collection));
    let mut deleted = 0;
    for chunk in ids.chunks(1_000) {
        let answer = client.post(&path, &serde_json::json!({ "ids": chunk }))?;
        deleted += answer["deleted"].as_u64().unwrap_or(0) as usize;
    }
    Ok(deleted)
}

/// A bar on a terminal; otherwise a plain line every few seconds (logs, CI).
struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    files: usize,
    done_bytes: std::cell::Cell<u64>,
    total_bytes: u64,
    last_line: std::cell::Cell<Instant>,
}

const LINE_EVERY: Duration = Duration::from_secs(5);
/// How long to wait for a server that is still loading.
const READY_WAIT: Duration = Duration::from_secs(120);

impl Progress {
    fn new(total_bytes: u64, files: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{spinner} [{bar:30}] {bytes}/{total_bytes} {msg} ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress { bar, started: Instant::now(), files, done_bytes: 0.into(), total_bytes, last_line: Instant::now().into() }
    }

    fn advance(&self, bytes: u64, totals: &Totals) {
        self.done_bytes.set(self.done_bytes.get() + bytes);
        let seconds = self.started.elapsed().as_secs_f64().max(1e-3);
        let message = format!(
            "files {}/{} · docs {} (unchanged {}) · passages {} · {:.1} docs/s · {:.0} tokens/s",
            totals.files,
            self.files,
            totals.documents,
            totals.unchanged,
            totals.passages,
            totals.documents as f64 / seconds,
            totals.tokens as f64 / seconds
        );
        match &self.bar {
            Some(bar) => {
                bar.set_position(self.done_bytes.get());
                bar.set_message(message);
            }
            None if self.last_line.get().elapsed() >= LINE_EVERY => {
                self.last_line.set(Instant::now());
                let percent = 100.0 * self.done_bytes.get() as f64 / self.total_bytes.max(1) as f64;
                eprintln!("ingest: {percent:.0}% of bytes · {message}");
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn summary(args: &IngestArgs, walked: &walk::Walked, totals: &Totals, elapsed: Duration) {
    use std::fmt::Write as _;
    let mut out = String::new();
    let seconds = elapsed.as_secs_f64().max(1e-3);
    let _ = writeln!(out, 
        "ingest into '{}': {} files read, {} documents sent ({} passages, {} tokens), {} unchanged skipped, {} empty skipped, {} pruned, {} files of other types ignored, {} failed; {:.1} s, {:.1} docs/s, {:.0} tokens/s",
        args.collection,
        totals.files,
        totals.documents,
        totals.passages,
        totals.tokens,
        totals.unchanged,
        totals.empty,
        totals.pruned,
        walked.other_kinds,
        totals.problems.len(),
        seconds,
        totals.documents as f64 / seconds,
        totals.tokens as f64 / seconds,
    );
    if !totals.problems.is_empty() {
        let _ = writeln!(out, "failed:");
        for problem in &totals.problems {
            let _ = writeln!(out, "  {problem}");
        }
    }
    super::emit(&out);
}

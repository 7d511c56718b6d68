//! The front door from outside: `akidb ingest`, `search` and `collections` against a real server.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::server::Server;
use serde_json::{json, Value};

fn akidb(server: &Server, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_akidb"))
        .args(args)
        .args(["--url", &format!("http://{}", server.address)])
        .env_remove("AKIDB_API_KEY")
        .env("AKIDB_LOG", "warn")
        .output()
        .expect("run akidb")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Every document of a collection, through the paging route (small pages, so paging is tested).
fn all_documents(server: &Server, collection: &str) -> Vec<Value> {
    let mut documents = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/collections/{collection}/documents?limit=7&cursor={c}"),
            None => format!("/collections/{collection}/documents?limit=7"),
        };
        let (status, page) = server.get(&path);
        assert_eq!(status, 200, "{page}");
        documents.extend(page["documents"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return documents,
        }
    }
}

fn write(root: &Path, name: &str, content: &[u8]) {
    let path = root.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

#[test]
fn a_folder_is_ingested_with_metadata_bad_files_are_named_and_a_rerun_skips_what_is_stored() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let folder = tempfile::tempdir().unwrap();
    let root = folder.path();
    write(root, "guide.md", b"# Sourdough\n\nFeed the starter with flour and water every day.\n");
    write(root, "notes/paris.txt", b"The Eiffel tower stands in Paris, the capital of France.\n");
    write(root, "notes/web/rust.html", b"<html><head><script>tracker()</script></head><body><h1>Rust</h1><p>Use <code>tokio::spawn</code> to run tasks.</p></body></html>");
    write(root, "facts.jsonl", b"{\"id\": \"q1\", \"text\": \"Quantum computers use qubits.\", \"metadata\": {\"topic\": \"physics\"}}\n{\"text\": \"Whales are mammals that breathe air.\"}\n{this is not json\n");
    write(root, "broken.txt", b"latin-1 \xe9t\xe9 is not UTF-8");
    write(root, ".gitignore", b"build/\n");
    write(root, "build/generated.md", b"# generated, ignored");
    write(root, ".hidden.md", b"# hidden, skipped");
    write(root, "picture.png", b"\x89PNG");

    let first = akidb(&server, &["ingest", root.to_str().unwrap(), "--collection", "notes", "--create"]);
    let summary = stdout(&first);
    assert!(!first.status.success(), "a bad file makes the exit code non-zero: {summary}");
    assert!(summary.contains("broken.txt: not UTF-8"), "{summary}");
    assert!(summary.contains("facts.jsonl:3: not JSON"), "{summary}");
    assert!(summary.contains("5 documents sent") && summary.contains("2 failed") && summary.contains("1 files of other types ignored"), "{summary}");

    let documents = all_documents(&server, "notes");
    let ids: Vec<&str> = documents.iter().map(|d| d["id"].as_str().unwrap()).collect();
    // A record without an id is named by its file and the first 16 hex digits of its hash.
    let whales = documents.iter().find(|d| d["text"].as_str().unwrap().contains("Whales")).unwrap();
    let whales_id = format!("facts.jsonl#{}", &whales["metadata"]["sha256"].as_str().unwrap()[..16]);
    assert_eq!(ids, [whales_id.as_str(), "guide.md", "notes/paris.txt", "notes/web/rust.html", "q1"]);
    let guide = documents.iter().find(|d| d["id"] == "guide.md").unwrap();
    assert_eq!(guide["metadata"]["path"], "guide.md");
    assert_eq!(guide["metadata"]["bytes"], 62);
    assert!(guide["metadata"]["modified"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(guide["metadata"]["sha256"].as_str().unwrap().len(), 64);
    let html = documents.iter().find(|d| d["id"] == "notes/web/rust.html").unwrap();
    assert!(html["text"].as_str().unwrap().contains("tokio::spawn"), "{html}");
    assert!(!html["text"].as_str().unwrap().contains("tracker"), "{html}");
    let q1 = documents.iter().find(|d| d["id"] == "q1").unwrap();
    assert_eq!(q1["metadata"]["topic"], "physics");
    assert_eq!(q1["metadata"]["path"], "facts.jsonl");

    // Search and collections through the CLI.
    let search = akidb(&server, &["search", "--collection", "notes", "how do I spawn a task", "-k", "2"]);
    assert!(search.status.success(), "{search:?}");
    let table = stdout(&search);
    assert!(table.starts_with(" 1. ") && table.lines().next().unwrap().contains("notes/web/rust.html"), "{table}");
    assert!(table.contains("**spawn**"), "the match is marked: {table}");
    let lines = akidb(&server, &["search", "-c", "notes", "whales", "--json", "--mode", "lexical", "--where", "{\"path\": \"facts.jsonl\"}"]);
    let hits: Vec<Value> = stdout(&lines).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0]["id"], whales_id.as_str());
    let listed = stdout(&akidb(&server, &["collections", "list"]));
    assert!(listed.lines().any(|l| l.starts_with("notes") && l.contains(" 5 ")), "{listed}");

    // A re-run sends nothing that is stored unchanged; a changed file is replaced.
    write(root, "guide.md", b"# Sourdough\n\nFeed the starter twice a day in summer.\n");
    let again = akidb(&server, &["ingest", root.to_str().unwrap(), "-c", "notes"]);
    let summary = stdout(&again);
    assert!(summary.contains("1 documents sent") && summary.contains("4 unchanged skipped"), "{summary}");
    let (_, guide) = server.get("/collections/notes/documents/guide.md");
    assert!(guide["text"].as_str().unwrap().contains("twice a day"), "{guide}");

    let (_, count) = server.post("/collections/notes/count", &json!({"where": {"path": "facts.jsonl"}}));
    assert_eq!(count["count"], 2);
    let deleted = stdout(&akidb(&server, &["collections", "delete", "notes"]));
    assert_eq!(deleted.trim(), "deleted collection 'notes' and its 5 documents");
}

/// Issue 18, item 11. Before: `a/README.md` and `b/README.md` given as two roots both got the id
/// `README.md` (4 sent, 3 stored, each re-run flipping the text), and a line added at the top of
/// a .jsonl moved every `path#N` id (a re-run stored every later record twice).
#[test]
fn ingest_ids_never_collide_do_not_move_and_prune_removes_what_is_gone() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let folder = tempfile::tempdir().unwrap();
    let root = folder.path();
    write(root, "a/README.md", b"# A\n\nthe first readme\n");
    write(root, "b/README.md", b"# B\n\nthe second readme\n");
    let (a, b) = (root.join("a"), root.join("b"));
    let clash = akidb(&server, &["ingest", a.to_str().unwrap(), b.to_str().unwrap(), "-c", "ids", "--create"]);
    let message = String::from_utf8_lossy(&clash.stderr).into_owned() + &stdout(&clash);
    assert!(!clash.status.success(), "{message}");
    assert!(message.contains("a/README.md") && message.contains("b/README.md") && message.contains("'README.md'"), "{message}");
    assert_eq!(all_documents(&server, "ids").len(), 0, "nothing is sent when ids collide");
    // Records with an explicit id given by two files: the second is refused, naming the first.
    write(root, "c/one.jsonl", b"{\"id\": \"same\", \"text\": \"from one\"}\n");
    write(root, "c/two.jsonl", b"{\"id\": \"same\", \"text\": \"from two\"}\n");
    let c = root.join("c");
    let twice = akidb(&server, &["ingest", c.to_str().unwrap(), "-c", "ids"]);
    let summary = stdout(&twice);
    assert!(!twice.status.success() && summary.contains("id 'same' was already given by") && summary.contains("one.jsonl"), "{summary}");
    assert_eq!(server.get("/collections/ids/documents/same").1["text"], "from one");

    // Ids without an explicit id do not move when a line is added at the top.
    let records = root.join("records");
    write(&records, "r.jsonl", b"{\"text\": \"alpha\"}\n{\"text\": \"beta\"}\n");
    write(&records, "notes/old.md", b"an old note\n");
    assert!(akidb(&server, &["ingest", records.to_str().unwrap(), "-c", "rec", "--create"]).status.success());
    let before: HashSet<String> = all_documents(&server, "rec").iter().map(|d| d["id"].as_str().unwrap().to_owned()).collect();
    write(&records, "r.jsonl", b"{\"text\": \"zero\"}\n{\"text\": \"alpha\"}\n{\"text\": \"beta\"}\n");
    let rerun = stdout(&akidb(&server, &["ingest", records.to_str().unwrap(), "-c", "rec"]));
    assert!(rerun.contains("1 documents sent") && rerun.contains("3 unchanged skipped"), "{rerun}");
    let after: HashSet<String> = all_documents(&server, "rec").iter().map(|d| d["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(after.len(), 4);
    assert!(before.is_subset(&after));

    // --prune: a deleted file's document and an edited-away record go; another root's stay.
    write(&records, "r.jsonl", b"{\"text\": \"zero\"}\n{\"text\": \"alpha, edited\"}\n{\"text\": \"beta\"}\n");
    std::fs::remove_file(records.join("notes/old.md")).unwrap();
    let other = root.join("other");
    write(&other, "keep.md", b"another folder's note\n");
    assert!(akidb(&server, &["ingest", other.to_str().unwrap(), "-c", "rec"]).status.success());
    let pruned = akidb(&server, &["ingest", records.to_str().unwrap(), "-c", "rec", "--prune"]);
    let summary = stdout(&pruned);
    assert!(pruned.status.success(), "{summary}");
    assert!(summary.contains("2 pruned"), "{summary}");
    let texts: HashSet<String> = all_documents(&server, "rec").iter().map(|d| d["text"].as_str().unwrap().trim().to_owned()).collect();
    assert_eq!(texts, ["zero", "alpha, edited", "beta", "another folder's note"].into_iter().map(str::to_owned).collect::<HashSet<_>>());

    // A file moved to another folder given in the same run keeps its document: it is sent again
    // with its new root, never pruned as gone from the old one.
    let moved = root.join("moved");
    write(&moved, "keep.md", b"another folder's note\n");
    std::fs::remove_file(other.join("keep.md")).unwrap();
    let summary = stdout(&akidb(&server, &["ingest", other.to_str().unwrap(), moved.to_str().unwrap(), "-c", "rec", "--prune"]));
    assert!(summary.contains("1 documents sent") && summary.contains("0 pruned"), "{summary}");
    let (_, keep) = server.get("/collections/rec/documents/keep.md");
    assert_eq!(keep["metadata"]["root"], std::fs::canonicalize(&moved).unwrap().display().to_string());
}

#[test]
fn an_ingest_killed_midway_is_completed_by_a_rerun_without_duplicates() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let folder = tempfile::tempdir().unwrap();
    const RECORDS: usize = 400;
    let lines: String = (0..RECORDS)
        .map(|i| format!("{}\n", json!({"text": format!("Record {i} tells about topic {} and the number {}.", i % 17, i * 31), "metadata": {"n": i}})))
        .collect();
    write(folder.path(), "records.jsonl", lines.as_bytes());
    let path = folder.path().to_str().unwrap().to_owned();
    let url = format!("http://{}", server.address);
    let mut child = Command::new(env!("CARGO_BIN_EXE_akidb"))
        .args(["ingest", &path, "-c", "big", "--create", "--batch-documents", "8", "--parallel", "1", "--url", &url])
        .env("AKIDB_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once some, not all, records are stored.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, info) = server.get("/collections/big");
        let stored = if status == 200 { info["documents"].as_u64().unwrap() } else { 0 };
        if stored >= 40 {
            assert!(stored < RECORDS as u64, "the ingest finished before it could be killed");
            break;
        }
        assert!(Instant::now() < deadline, "the ingest stored nothing");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // A batch in flight at the kill may still be written by the server: wait for a steady count.
    let mut stored_at_kill = usize::MAX;
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let (_, info) = server.get("/collections/big");
        let now = info["documents"].as_u64().unwrap() as usize;
        if now == stored_at_kill {
            break;
        }
        stored_at_kill = now;
    }

    let rerun = akidb(&server, &["ingest", &path, "-c", "big"]);
    let summary = stdout(&rerun);
    assert!(rerun.status.success(), "{summary}");
    assert!(summary.contains(&format!("{stored_at_kill} unchanged skipped")), "stored at kill: {stored_at_kill}; {summary}");
    assert!(summary.contains(&format!("{} documents sent", RECORDS - stored_at_kill)), "{summary}");
    let documents = all_documents(&server, "big");
    let ids: HashSet<&str> = documents.iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(documents.len(), RECORDS);
    assert_eq!(ids.len(), RECORDS);
    let (_, info) = server.get("/collections/big");
    assert_eq!(info["documents"], RECORDS);
    assert_eq!(info["passages"], RECORDS);
}

#[test]
fn ingest_splits_batches_the_server_refuses_as_too_large_and_retries_when_it_is_busy() {
    let data = tempfile::tempdir().unwrap();
    // At most 3 documents per request (413 beyond) and one request at a time (503 beyond).
    let server = Server::start(data.path(), &["--max-batch-documents", "3", "--max-in-flight", "1"]);
    let folder = tempfile::tempdir().unwrap();
    let lines: String = (0..40).map(|i| format!("{}\n", json!({"id": format!("r{i}"), "text": format!("record number {i}")}))).collect();
    write(folder.path(), "r.jsonl", lines.as_bytes());
    let output = akidb(&server, &["ingest", folder.path().to_str().unwrap(), "-c", "small", "--create", "--batch-documents", "10", "--parallel", "4"]);
    let summary = stdout(&output);
    assert!(output.status.success(), "{summary}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(summary.contains("40 documents sent") && summary.contains("0 failed"), "{summary}");
    assert_eq!(all_documents(&server, "small").len(), 40);
}

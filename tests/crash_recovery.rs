//! Crash stress: a child process runs concurrent writers (new documents, overwrites, deletes by
//! id and by filter), a dump every second and compactions, and is SIGKILLed at random moments.
//! After every kill the parent reopens the data directory and checks every document against the
//! writers' logs: acknowledged documents present in their latest version (or a later one that was
//! in flight), each of their passages found at rank 1 by its own stored vector with score ≥ 0.999
//! and by its unique word in the lexical index; deleted ids never returned by either; graph points
//! − tombstones = lexical passages = live passages; the graph holds every live point and no
//! point that is neither live nor tombstoned (`Collection::audit`); no orphan passage and no
//! half-replaced document (a version's passage count and vectors are all of that version).
//!
//! The child also fails 2 % of lexical writes (after the store commit: the writer treats the
//! write as unacknowledged) and slows the move of side-list points after each dump, so deletes
//! and overwrites race the thaw.
//!
//! 5 cycles run in the normal suite; `cargo test --features failpoints --test crash_recovery --
//! --ignored crash_stress` runs 20.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use akidb::engine::{Engine, Filter};
use akidb::store::Metric;
use common::*;
use serde_json::json;

const CHILD_ENV: &str = "AKIDB_CRASH_CHILD_DIR";
const COLLECTION: &str = "crash";
const DIMS: usize = 32;
const WRITERS: u64 = 3;
const GROUPS: u64 = 16;

/// Deterministic pseudo-random unit vector for a passage of a document version.
fn vector_for(id: &str, version: u64, passage: usize) -> Vec<f32> {
    let seed = version * 8 + passage as u64;
    unit_vector(id.bytes().fold(seed ^ 0xCBF2_9CE4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01B3)), DIMS)
}

/// Versions have 1 to 3 passages, so a replace changes how many points a document has.
fn passages_for(version: u64) -> usize {
    1 + (version % 3) as usize
}

/// A word found only in one passage of one version of one document.
fn marker(id: &str, version: u64, passage: usize) -> String {
    format!("marker_{}_v{version}_p{passage}", id.replace('-', "_"))
}

/// A document version: its passages are paragraphs, each with its marker and its own vector.
fn document(id: &str, version: u64, metadata: serde_json::Value) -> akidb::store::NewDocument {
    let mut text = String::new();
    let mut passages = Vec::new();
    for p in 0..passages_for(version) {
        if p > 0 {
            text.push_str("\n\n");
        }
        let start = text.chars().count();
        text.push_str(&format!("paragraph {p} of {id} holds {}", marker(id, version, p)));
        let span = akidb::store::Span { start, end: text.chars().count() };
        passages.push(akidb::store::NewPassage { span, vector: vector_for(id, version, p) });
    }
    akidb::store::NewDocument { id: id.to_owned(), text, metadata: metadata.as_object().cloned().unwrap_or_default(), passages }
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// One writer's log, fsynced line by line: `I id version` (put intended), `P id version` (put
/// acknowledged), `D id` (delete intended), `d id` (delete acknowledged), `X group` (a delete by
/// filter across every writer's documents of that group at version 0: racing the other writers'
/// upserts, so any of those documents may be gone, whatever the order of the logs).
struct Log(std::fs::File);

impl Log {
    fn line(&mut self, line: String) {
        // One write per line: a kill leaves at most a partial last line, which readers drop.
        self.0.write_all(format!("{line}\n").as_bytes()).expect("log write");
        self.0.sync_data().expect("log sync");
    }
}

/// The complete lines of a log: a last line without its newline was cut by a kill, and the
/// operation it names was not started (intents) or is treated as unacknowledged (acks).
fn complete_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete.lines().map(str::to_owned).collect()
}

/// One writer thread: owns the ids `w<writer>-<n>`, so its log alone orders them.
fn writer(engine: Arc<Engine>, dir: &Path, w: u64, stop: Arc<AtomicBool>) {
    let collection = engine.collection(COLLECTION).expect("collection");
    let path = dir.join(format!("writer-{w}.log"));
    // This writer's ids so far come from its log; their state after the crash, from the store.
    let mut versions: BTreeMap<String, u64> = BTreeMap::new();
    let mut next = 0;
    let lines = complete_lines(&path);
    // Drop a cut last line before appending after it.
    let keep: usize = lines.iter().map(|l| l.len() + 1).sum();
    if let Ok(file) = std::fs::OpenOptions::new().write(true).open(&path) {
        file.set_len(keep as u64).expect("truncate the log");
    }
    for line in lines.iter().filter(|l| !l.starts_with("X ")) {
        let id = line.split(' ').nth(1).expect("log line");
        next = next.max(id.rsplit('-').next().and_then(|n| n.parse::<u64>().ok()).expect("id number") + 1);
        if let Some(doc) = collection.get(id).expect("get") {
            versions.insert(id.to_owned(), doc.metadata["version"].as_u64().expect("version"));
        } else {
            versions.remove(id);
        }
    }
    let mut log = Log(std::fs::OpenOptions::new().create(true).append(true).open(&path).expect("log"));
    let mut rng = 0x2545_F491_4F6C_DD1D ^ (w + 1).wrapping_mul(0x9E37_79B9) ^ next;
    let doc = |id: &str, version: u64| {
        let n: u64 = id.rsplit('-').next().unwrap().parse().unwrap();
        document(id, version, json!({"writer": w, "group": n % GROUPS, "version": version}))
    };
    let mut announced = false;
    while !stop.load(Ordering::Relaxed) {
        // The parent times its kill from the first write this life acknowledged (opening grows
        // with the data, and a kill before any write would test nothing new).
        if !announced && log.0.metadata().map(|m| m.len()).unwrap_or(0) > keep as u64 {
            let _ = std::fs::File::create(dir.join("child.ready"));
            announced = true;
        }
        let live: Vec<String> = versions.keys().cloned().collect();
        match xorshift(&mut rng) % 10 {
            // New documents, sometimes with overwrites of existing ones in the same batch.
            0..=5 => {
                let mut batch = Vec::new();
                for _ in 0..8 {
                    let id = format!("w{w}-{next}");
                    next += 1;
                    batch.push((id, 0));
                }
                if !live.is_empty() {
                    for _ in 0..3 {
                        let id = &live[(xorshift(&mut rng) % live.len() as u64) as usize];
                        if !batch.iter().any(|(b, _)| b == id) {
                            batch.push((id.clone(), versions[id] + 1));
                        }
                    }
                }
                for (id, v) in &batch {
                    log.line(format!("I {id} {v}"));
                }
                // A failed write (the child fails some lexical writes) is unacknowledged: it may
                // or may not have committed, as the logs allow.
                if collection.upsert(batch.iter().map(|(id, v)| doc(id, *v)).collect()).is_err() {
                    continue;
                }
                for (id, v) in batch {
                    log.line(format!("P {id} {v}"));
                    versions.insert(id, v);
                }
            }
            // Delete by id.
            6..=7 if !live.is_empty() => {
                let id = live[(xorshift(&mut rng) % live.len() as u64) as usize].clone();
                log.line(format!("D {id}"));
                if collection.delete(std::slice::from_ref(&id)).is_err() {
                    continue;
                }
                log.line(format!("d {id}"));
                versions.remove(&id);
            }
            // Delete by filter across all writers, racing their upserts: version-0 documents of a
            // group (an overwrite that lands first takes its document out of the match).
            8 if xorshift(&mut rng) % 4 == 0 => {
                let group = xorshift(&mut rng) % GROUPS;
                log.line(format!("X {group}"));
                let filter = Filter::parse(&json!({"group": group, "version": 0})).expect("filter");
                let _ = collection.delete_where(&filter);
            }
            // Delete by filter: this writer's documents of one group.
            8..=9 if !live.is_empty() => {
                let group = xorshift(&mut rng) % GROUPS;
                let victims: Vec<String> = live.iter().filter(|id| id.rsplit('-').next().and_then(|n| n.parse::<u64>().ok()).map(|n| n % GROUPS) == Some(group)).cloned().collect();
                for id in &victims {
                    log.line(format!("D {id}"));
                }
                let filter = Filter::parse(&json!({"$and": [{"writer": w}, {"group": group}]})).expect("filter");
                if collection.delete_where(&filter).is_err() {
                    continue;
                }
                for id in victims {
                    log.line(format!("d {id}"));
                    versions.remove(&id);
                }
            }
            _ => {}
        }
    }
}

/// The child: writers, a dump every second, a compaction every 1.5 s. Run only by the parent.
#[test]
#[ignore = "run by the crash tests as their child process"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let dir = Path::new(&dir).to_owned();
    let _scenario = fail::FailScenario::setup();
    fail::cfg("collection.lexical.write", "2%return").expect("failpoint");
    fail::cfg("graph.thaw.moving", "sleep(20)").expect("failpoint");
    let engine = Arc::new(Engine::open(&dir.join("data")).expect("open"));
    if engine.collection(COLLECTION).is_err() {
        engine.create_collection(vector_collection(COLLECTION, DIMS, Metric::Cosine)).expect("create");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (engine, dir, stop) = (engine.clone(), dir.clone(), stop.clone());
            std::thread::spawn(move || writer(engine, &dir, w, stop))
        })
        .collect();
    let collection = engine.collection(COLLECTION).expect("collection");
    for tick in 0u64.. {
        std::thread::sleep(Duration::from_millis(500));
        if tick % 2 == 1 {
            engine.dump_all().expect("dump");
        }
        if tick % 3 == 2 {
            collection.compact().expect("compact");
        }
        assert!(writers.iter().all(|w| !w.is_finished()), "a writer died");
    }
}

/// What the logs allow for one id: every state it may be in (`None` = absent, `Some(v)` =
/// present at version v). An acknowledged operation pins the state; an operation logged as
/// intended but never acknowledged may or may not have committed, so it adds its outcome to the
/// states already possible (a later life of the writer may have acted on either).
#[derive(Debug)]
struct Allowed {
    states: HashSet<Option<u64>>,
    acked: bool,
}

impl Default for Allowed {
    fn default() -> Self {
        Allowed { states: HashSet::from([None]), acked: false }
    }
}

fn read_logs(dir: &Path) -> HashMap<String, Allowed> {
    let mut ids: HashMap<String, Allowed> = HashMap::new();
    let mut swept: HashSet<u64> = HashSet::new();
    for w in 0..WRITERS {
        for line in complete_lines(&dir.join(format!("writer-{w}.log"))) {
            let parts: Vec<&str> = line.split(' ').collect();
            if parts[0] == "X" {
                swept.insert(parts[1].parse().unwrap());
                continue;
            }
            let entry = ids.entry(parts[1].to_owned()).or_default();
            match parts[0] {
                "I" => {
                    entry.states.insert(Some(parts[2].parse().unwrap()));
                }
                "P" => (entry.states, entry.acked) = (HashSet::from([Some(parts[2].parse().unwrap())]), true),
                "D" => {
                    entry.states.insert(None);
                }
                "d" => (entry.states, entry.acked) = (HashSet::from([None]), true),
                other => panic!("bad log line {other}"),
            }
        }
    }
    // Documents of a swept group may be gone whatever else the logs say (the logs of different
    // writers do not order their lines against each other).
    for (id, allowed) in ids.iter_mut() {
        let group = id.rsplit('-').next().and_then(|n| n.parse::<u64>().ok()).map(|n| n % GROUPS);
        if group.is_some_and(|g| swept.contains(&g)) {
            allowed.states.insert(None);
        }
    }
    ids
}

fn check(dir: &Path, cycle: usize) -> usize {
    let logs = read_logs(dir);
    let engine = Engine::open(&dir.join("data")).expect("reopen after SIGKILL");
    let Ok(collection) = engine.collection(COLLECTION) else {
        assert!(logs.values().all(|a| !a.acked), "cycle {cycle}: collection lost");
        return 0;
    };
    let store_count = engine.store().count(collection.id()).unwrap();
    let live_points = engine.store().live_points(collection.id()).unwrap().len();
    let problems = engine.store().check_passages(collection.id()).unwrap();
    assert!(problems.is_empty(), "cycle {cycle}: documents and passages disagree: {problems:?}");
    let stats = collection.stats();
    assert_eq!(collection.audit(), Vec::<String>::new(), "cycle {cycle}: the graph is not whole: {stats:?}");
    assert_eq!(stats.graph_points - stats.tombstones, live_points, "cycle {cycle}: index and store disagree: {stats:?}");
    assert_eq!(stats.lexical_passages as usize, live_points, "cycle {cycle}: lexical index and store disagree: {stats:?}");
    let lexical_top = |word: &str| collection.lexical(word, 1, None).unwrap().first().and_then(|hit| collection.passage_of(hit.point).unwrap());
    let mut present = 0;
    for (id, allowed) in &logs {
        let stored = collection.get(id).unwrap();
        let state = stored.as_ref().map(|d| d.metadata["version"].as_u64().unwrap());
        assert!(allowed.states.contains(&state), "cycle {cycle}: {id} is {state:?}; the logs allow {allowed:?}");
        match stored {
            Some(doc) => {
                present += 1;
                let version = state.unwrap();
                assert_eq!(doc.passages.len(), passages_for(version), "cycle {cycle}: {id} v{version} is half replaced: {:?}", doc.passages);
                let points: Vec<u64> = doc.passages.iter().map(|p| p.point).collect();
                let vectors = collection.vectors_of(&points).unwrap();
                assert_eq!(vectors.len(), points.len(), "cycle {cycle}: {id} lost passages");
                for (p, (point, vector)) in vectors.iter().enumerate() {
                    assert!(max_abs_diff(vector, &vector_for(id, version, p)) < 1e-6, "cycle {cycle}: {id} passage {p} has the wrong vector");
                    let found = collection.search(vector, 1, Some(64), None).unwrap();
                    assert_eq!(found.first().map(|f| (f.document.id.as_str(), f.point)), Some((id.as_str(), *point)), "cycle {cycle}: {id} passage {p} not at rank 1 by its own vector");
                    assert!(found[0].score >= 0.999, "cycle {cycle}: {id} scores {}", found[0].score);
                    let lexical = lexical_top(&marker(id, version, p));
                    assert_eq!(lexical.map(|l| (l.document, l.index)), Some((id.clone(), p)), "cycle {cycle}: {id} passage {p} not found by its word");
                }
            }
            None => {
                // Deleted (or never committed): never returned, by the vector or the words of any version it had.
                for version in allowed.states.iter().flatten().copied().chain([0]) {
                    for p in 0..passages_for(version) {
                        let found = collection.search(&vector_for(id, version, p), 10, Some(64), None).unwrap();
                        assert!(found.iter().all(|f| &f.document.id != id), "cycle {cycle}: deleted {id} returned by search");
                        assert!(lexical_top(&marker(id, version, p)).is_none_or(|l| &l.document != id), "cycle {cycle}: deleted {id} returned by lexical search");
                    }
                }
            }
        }
    }
    assert_eq!(present, store_count, "cycle {cycle}: the store holds documents no log wrote");
    present
}

fn crash_cycles(cycles: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut acked_before = 0;
    for cycle in 0..cycles {
        let ready = dir.path().join("child.ready");
        let _ = std::fs::remove_file(&ready);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "crash_child", "--nocapture"])
            .env(CHILD_ENV, dir.path())
            .env(BACKEND_ENV, backend().as_str())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("child.stderr")).expect("child stderr file"))
            .spawn()
            .expect("spawn child");
        // Every fourth kill lands early, maybe while the child is still opening (replaying the
        // logs, rebuilding indexes); the others come 0.2-1.6 s after its first acknowledged write.
        let early = cycle % 4 == 3;
        if early {
            std::thread::sleep(Duration::from_millis(xorshift(&mut seed) % 600));
        } else {
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            while !ready.exists() && std::time::Instant::now() < deadline && child.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
            std::thread::sleep(Duration::from_millis(200 + xorshift(&mut seed) % 1_400));
        }
        child.kill().expect("SIGKILL the child");
        child.wait().unwrap();
        let acked = read_logs(dir.path()).values().filter(|a| a.acked).count();
        if acked <= acked_before && !early {
            let stderr = std::fs::read_to_string(dir.path().join("child.stderr")).unwrap_or_default();
            let tail: String = stderr.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
            panic!("cycle {cycle}: the child acknowledged nothing new; its stderr ends with:\n{tail}");
        }
        acked_before = acked;
        let present = check(dir.path(), cycle);
        eprintln!("cycle {cycle}: {acked} ids acknowledged, {present} present, all checked");
    }
}

per_backend! {
    fn crash_cycles_lose_no_acknowledged_write() {
        crash_cycles(5);
    }
}

#[test]
#[ignore = "stress target: 20 crash cycles (about 3 minutes)"]
fn crash_stress_20_cycles() {
    crash_cycles(20);
}

//! A child process ingests and is SIGKILLed at random moments; every write it acknowledged must
//! survive, be findable by its own vector, and the index must agree with the store.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use akidb::engine::Engine;
use akidb::store::Metric;
use common::*;
use serde_json::json;

const CHILD_ENV: &str = "AKIDB_CRASH_CHILD_DIR";
const COLLECTION: &str = "crash";
const DIMS: usize = 32;

/// Deterministic pseudo-random unit vectors, distinct per id.
fn vector_for(n: u64) -> Vec<f32> {
    let mut state = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let v: Vec<f32> = (0..DIMS)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 20_000) as f32 / 10_000.0 - 1.0
        })
        .collect();
    normalized(&v)
}

/// The child: ingests batches forever, appending each acknowledged id to `acked.log` (fsynced)
/// only after `upsert` returned, and dumps the index now and then. Run only by the parent.
#[test]
#[ignore = "run by crash_cycles_lose_no_acknowledged_write as its child process"]
fn crash_child() {
    let dir = std::env::var(CHILD_ENV).expect("crash_child is started by the crash test");
    let dir = Path::new(&dir);
    let engine = Engine::open(&dir.join("data")).expect("open");
    let collection = match engine.collection(COLLECTION) {
        Ok(c) => c,
        Err(_) => engine.create_collection(vector_collection(COLLECTION, DIMS, Metric::Cosine)).expect("create"),
    };
    let mut log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("acked.log")).expect("log");
    let mut next = engine.store().next_point(COLLECTION).expect("next point") * 1_000;
    for round in 0u64.. {
        let batch: Vec<_> = (0..20).map(|i| new_doc(format!("doc-{}", next + i), vector_for(next + i), json!({"round": round}))).collect();
        collection.upsert(batch).expect("upsert");
        for i in 0..20 {
            writeln!(log, "doc-{}", next + i).expect("log write");
        }
        log.sync_data().expect("log sync");
        next += 20;
        if round % 7 == 3 {
            engine.dump_all().expect("dump");
        }
        if round % 5 == 4 {
            // Deletes too, so tombstones and replays are part of every crash. The intent is logged
            // first: an acknowledged id may be missing only if its deletion was attempted.
            let victim = format!("doc-{}", next - 40);
            writeln!(log, "delete {victim}").expect("log write");
            log.sync_data().expect("log sync");
            collection.delete(&[victim]).expect("delete");
        }
    }
}

#[test]
fn crash_cycles_lose_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut acked_before = 0;
    for cycle in 0..6 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "crash_child", "--nocapture"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(400 + seed % 1_200));
        child.kill().expect("SIGKILL the child");
        child.wait().unwrap();

        let log = std::fs::read_to_string(dir.path().join("acked.log")).unwrap_or_default();
        let deleting: std::collections::HashSet<&str> = log.lines().filter_map(|l| l.strip_prefix("delete ")).collect();
        let acked: Vec<&str> = log.lines().filter(|l| !l.starts_with("delete ")).collect();
        assert!(acked.len() > acked_before, "cycle {cycle}: the child acknowledged nothing new");
        acked_before = acked.len();
        eprintln!("cycle {cycle}: {} acknowledged ids so far", acked.len());
        let engine = Engine::open(&dir.path().join("data")).expect("reopen after SIGKILL");
        let Ok(collection) = engine.collection(COLLECTION) else {
            assert!(acked.is_empty(), "cycle {cycle}: collection lost");
            continue;
        };
        let store_count = engine.store().count(COLLECTION).unwrap();
        let stats = collection.stats();
        assert_eq!(stats.graph_points - stats.tombstones, store_count, "cycle {cycle}: index and store disagree: {stats:?}");
        for &id in &acked {
            let Some(doc) = collection.get(id).unwrap() else {
                assert!(deleting.contains(id), "cycle {cycle}: acknowledged {id} is gone");
                continue;
            };
            let number: u64 = id.trim_start_matches("doc-").parse().unwrap();
            assert!(max_abs_diff(&doc.vector, &vector_for(number)) < 1e-6, "cycle {cycle}: {id} has the wrong vector");
            let found = collection.search(&doc.vector, 3, Some(64), None).unwrap();
            assert!(found.iter().any(|f| f.document.id == id), "cycle {cycle}: {id} not findable by its own vector");
        }
    }
}

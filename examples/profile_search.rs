//! The search path of one index backend under `perf record`: builds the backend over the first
//! 100,000 GloVe-50 rows (L2-normalized, cosine), then searches the next 1,000 rows, one call per
//! query on one thread, at the given ef for the given number of seconds. Prints the QPS; the
//! profile is the point (benches/peers/profile_index.py runs it and splits the samples).
//!
//! Usage: cargo run --release --example profile_search -- BACKEND EF SECONDS
//! (after scripts/setup --test-data).

use std::time::{Duration, Instant};

use akidb::domain::IndexBackend;
use akidb::index::{new_index, IndexSpec};
use akidb::store::{HnswParams, Metric};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let backend = args.get(1).and_then(|name| IndexBackend::ALL.into_iter().find(|b| b.as_str() == name)).unwrap_or_default();
    let ef: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(64);
    let seconds: u64 = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(10);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/glove_6B_50d_emb.npy");
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("{}: {e} (run scripts/setup --test-data)", path.display());
            std::process::exit(1);
        }
    };
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let data: Vec<f32> = bytes[10 + header_len..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    // Fortran order, 400,000 x 50.
    let row = |i: usize| {
        let v: Vec<f32> = (0..50).map(|j| data[j * 400_000 + i]).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        v.into_iter().map(|x| x / norm).collect::<Vec<f32>>()
    };
    let points: Vec<(u64, Vec<f32>)> = (0..100_000).map(|i| (i as u64, row(i))).collect();
    let queries: Vec<Vec<f32>> = (100_000..101_000).map(row).collect();
    let spec = IndexSpec { metric: Metric::Cosine, dims: 50, params: HnswParams::default(), backend };
    let index = match new_index(&spec, points.len()) {
        Ok(index) => index,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    index.insert(&points);
    eprintln!("built; searching at ef {ef} for {seconds} s");
    let (started, mut done) = (Instant::now(), 0u64);
    while started.elapsed() < Duration::from_secs(seconds) {
        for q in &queries {
            std::hint::black_box(index.search(q, 10, ef, None));
        }
        done += queries.len() as u64;
    }
    println!("{} ef {ef}: {:.0} QPS", backend.as_str(), done as f64 / started.elapsed().as_secs_f64());
}

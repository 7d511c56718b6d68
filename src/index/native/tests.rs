use super::*;

fn rows(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut s = seed;
    let mut next = move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    };
    (0..n)
        .map(|_| {
            let v: Vec<f32> = (0..dims).map(|_| next()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / norm).collect()
        })
        .collect()
}

fn exact(data: &[(PointId, Vec<f32>)], q: &[f32], k: usize, accept: impl Fn(PointId) -> bool) -> Vec<PointId> {
    let mut all: Vec<(f32, PointId)> = data.iter().filter(|(p, _)| accept(*p)).map(|(p, v)| (-v.iter().zip(q).map(|(a, b)| a * b).sum::<f32>(), *p)).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    all.into_iter().take(k).map(|(_, p)| p).collect()
}

fn params() -> HnswParams {
    HnswParams { m: 16, ef_construction: 100, ef_search: 64 }
}

fn recall(index: &NativeIndex, data: &[(PointId, Vec<f32>)], queries: &[Vec<f32>], ef: usize, accept: &(dyn Fn(PointId) -> bool + Sync)) -> f64 {
    let mut hit = 0;
    for q in queries {
        let truth = exact(data, q, 10, accept);
        let found: Vec<PointId> = index.search(q, 10, ef, Some(accept)).into_iter().map(|h| h.point).collect();
        hit += truth.iter().filter(|p| found.contains(p)).count();
    }
    hit as f64 / (queries.len() * 10) as f64
}

#[test]
fn finds_the_nearest_points_filtered_or_not() {
    let data: Vec<(PointId, Vec<f32>)> = rows(4000, 24, 1).into_iter().enumerate().map(|(i, v)| (i as PointId * 3 + 7, v)).collect();
    let index = NativeIndex::new(Metric::Cosine, 24, &params(), 100);
    index.insert(&data);
    assert_eq!(index.len(), 4000);
    index.check().unwrap();
    let queries = rows(100, 24, 2);
    assert!(recall(&index, &data, &queries, 64, &|_| true) >= 0.95);
    assert!(recall(&index, &data, &queries, 64, &|p| p % 2 == 0) >= 0.95);
    // Its own vector finds every point at rank 1, with distance ~0.
    for (p, v) in data.iter().step_by(97) {
        let hit = index.search(v, 1, 64, None)[0];
        assert_eq!(hit.point, *p);
        assert!(hit.distance.abs() < 1e-5);
    }
}

#[test]
fn inserts_in_small_batches_grow_the_arrays_and_skip_known_points() {
    let data: Vec<(PointId, Vec<f32>)> = rows(1500, 16, 3).into_iter().enumerate().map(|(i, v)| (i as PointId, v)).collect();
    let index = NativeIndex::new(Metric::Dot, 16, &params(), 1);
    for chunk in data.chunks(7) {
        index.insert(chunk);
    }
    index.insert(&data[..100]);
    assert_eq!(index.len(), 1500);
    index.check().unwrap();
    let mut out = vec![0f32; 16];
    assert!(index.vector_into(42, &mut out));
    assert_eq!(out, data[42].1);
    assert!(!index.vector_into(5000, &mut out));
    assert_eq!(index.point_set().len(), 1500);
    assert!(recall(&index, &data, &rows(50, 16, 4), 64, &|_| true) >= 0.95);
}

#[test]
fn a_dump_loads_back_identical_and_a_damaged_one_is_refused() {
    let data: Vec<(PointId, Vec<f32>)> = rows(2000, 8, 5).into_iter().enumerate().map(|(i, v)| (i as PointId + 1, v)).collect();
    let index = NativeIndex::new(Metric::L2, 8, &params(), 2000);
    index.insert(&data);
    let dir = tempfile::tempdir().unwrap();
    index.dump_into(dir.path()).unwrap();
    let bytes = std::fs::read(dir.path().join(GRAPH_FILE)).unwrap();
    let loaded = NativeIndex::load(&bytes, Metric::L2, &params(), 8).unwrap();
    loaded.check().unwrap();
    for q in rows(20, 8, 6) {
        assert_eq!(index.search(&q, 10, 50, None), loaded.search(&q, 10, 50, None));
    }
    assert!(NativeIndex::load(&bytes, Metric::Cosine, &params(), 8).is_err(), "another metric");
    assert!(NativeIndex::load(&bytes[..bytes.len() - 1], Metric::L2, &params(), 8).is_err(), "cut short");
    // A neighbour id past the end (a bad write the CRC could not catch) is refused, not followed.
    let header = 8 + 12 + 24;
    let level0_at = header + 2000 * (8 + 1 + 4) + 2000 * 8 * 4;
    let mut bad = bytes.clone();
    bad[level0_at..level0_at + 4].copy_from_slice(&1u32.to_le_bytes());
    bad[level0_at + 4..level0_at + 8].copy_from_slice(&999_999u32.to_le_bytes());
    assert!(NativeIndex::load(&bad, Metric::L2, &params(), 8).err().unwrap_or_default().contains("links to"));
}

#[test]
fn an_empty_index_answers_nothing_and_dumps() {
    let index = NativeIndex::new(Metric::Cosine, 4, &params(), 0);
    assert!(index.search(&[1.0, 0.0, 0.0, 0.0], 5, 10, None).is_empty());
    assert!(index.search(&[1.0, 0.0], 5, 10, None).is_empty(), "wrong width");
    let dir = tempfile::tempdir().unwrap();
    index.dump_into(dir.path()).unwrap();
    let loaded = NativeIndex::load(&std::fs::read(dir.path().join(GRAPH_FILE)).unwrap(), Metric::Cosine, &params(), 4).unwrap();
    assert!(loaded.is_empty());
}

//! `VectorIndex` over hnsw_rs 0.3.

use std::path::Path;
use std::sync::OnceLock;

use parking_lot::Mutex;
use roaring::RoaringTreemap;

use hnsw_rs::api::AnnT;
use hnsw_rs::prelude::{Distance, Hnsw, HnswIo};

use super::{Hit, IndexError, VectorIndex};
use crate::store::{HnswParams, PointId};

/// hnsw_rs exits the process above this many links per node.
pub const MAX_M: usize = 256;
/// hnsw_rs's own layer cap.
const MAX_LAYERS: usize = 16;
/// Below this many points an insert runs on the caller's thread: a pool hop costs more.
const PARALLEL_INSERT_MIN: usize = 64;
/// The basename hnsw_rs is asked to dump under (it may pick another; the dump records which).
const DUMP_BASENAME: &str = "graph";

/// Index builds get their own pool sized to the cores, not rayon's global pool, so that they
/// never compete with other rayon users for its threads.
pub(super) fn build_pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        rayon::ThreadPoolBuilder::new().num_threads(threads).thread_name(|i| format!("akidb-index-{i}")).build().ok()
    })
    .as_ref()
}

/// The pool background rebuilds (compactions, `rebuild_on`) build their new graphs on, niced
/// with the thread that starts them: a writer's insert into the live graph on `build_pool` never
/// queues behind a rebuild's (a 20-point hnsw_rs write waited 29.9 s behind one).
pub fn background_pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("akidb-rebuild-{i}"))
            .start_handler(|_| crate::engine::run_as_background_thread())
            .build()
            .ok()
    })
    .as_ref()
}

pub struct HnswIndex<D: Distance<f32> + Send + Sync + 'static> {
    graph: Hnsw<'static, f32, D>,
    /// Points in the graph, kept here because hnsw_rs's point iterator panics on an empty graph
    /// and re-takes a read lock it already holds (a deadlock risk next to a waiting writer).
    points: Mutex<RoaringTreemap>,
}

impl<D: Distance<f32> + Send + Sync + 'static> HnswIndex<D> {
    /// Parameters must have passed `validate_params`.
    pub fn new(params: &HnswParams, expected_points: usize, distance: D) -> Self {
        let graph = Hnsw::new(params.m, expected_points.max(1_000), MAX_LAYERS, params.ef_construction, distance);
        HnswIndex { graph, points: Mutex::new(RoaringTreemap::new()) }
    }

    /// Loads a dump written by `dump_into`. The loader must outlive the graph (hnsw_rs borrows
    /// it), so it is leaked: one small struct per load, and loads happen once per collection
    /// per process start.
    pub fn load(dir: &Path, basename: &str, distance: D) -> Result<Self, IndexError> {
        let loader: &'static HnswIo = Box::leak(Box::new(HnswIo::new(dir, basename)));
        let bad = |reason: String| IndexError::BadDump { path: dir.to_owned(), reason };
        // hnsw_rs unwraps on some malformed input; a panic here means a bad dump, not a bad process.
        let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| loader.load_hnsw_with_dist::<f32, D>(distance)));
        let mut graph = match loaded {
            Ok(Ok(graph)) => graph,
            Ok(Err(e)) => return Err(bad(e.to_string())),
            Err(_) => return Err(bad("hnsw_rs panicked while reading it".into())),
        };
        // A reloaded graph switches candidate extension on; keep search behaviour identical to a fresh one.
        graph.set_extend_candidates(false);
        graph.set_searching_mode(false);
        // Safe here: the graph was just loaded, is not empty (checked), and nobody else holds it.
        let points: RoaringTreemap = if graph.get_nb_point() == 0 {
            RoaringTreemap::new()
        } else {
            graph.get_point_indexation().into_iter().map(|p| p.get_origin_id() as PointId).collect()
        };
        Ok(HnswIndex { graph, points: Mutex::new(points) })
    }
}

impl<D: Distance<f32> + Send + Sync + 'static> VectorIndex for HnswIndex<D> {
    fn insert(&self, points: &[(PointId, Vec<f32>)]) {
        let data: Vec<(&[f32], usize)> = points.iter().map(|(p, v)| (v.as_slice(), *p as usize)).collect();
        self.points.lock().extend(points.iter().map(|(p, _)| *p));
        match build_pool() {
            // Already on a pool (`background_pool().install`): build on that one.
            _ if data.len() >= PARALLEL_INSERT_MIN && rayon::current_thread_index().is_some() => self.graph.parallel_insert_slice(&data),
            Some(pool) if data.len() >= PARALLEL_INSERT_MIN => pool.install(|| self.graph.parallel_insert_slice(&data)),
            _ => data.into_iter().for_each(|item| self.graph.insert_slice(item)),
        }
    }

    fn search(&self, query: &[f32], k: usize, ef: usize, filter: Option<&(dyn Fn(PointId) -> bool + Sync)>) -> Vec<Hit> {
        let neighbours = match filter {
            // No filter means no filter object at all: any filter turns off hnsw_rs's early stop.
            None => self.graph.search(query, k, ef),
            Some(accept) => {
                let accept = |id: &usize| accept(*id as PointId);
                // hnsw_rs cuts its candidates to k *before* dropping rejected ones, so asking for k
                // can return fewer than k: ask for all ef candidates and keep the first k.
                let mut found = self.graph.search_filter(query, ef.max(k), ef, Some(&accept));
                found.truncate(k);
                found
            }
        };
        neighbours.into_iter().map(|n| Hit { point: n.d_id as PointId, distance: n.distance }).collect()
    }

    fn len(&self) -> usize {
        self.graph.get_nb_point()
    }

    fn point_set(&self) -> RoaringTreemap {
        self.points.lock().clone()
    }

    fn contains(&self, point: PointId) -> bool {
        self.points.lock().contains(point)
    }

    fn check(&self) -> Result<(), String> {
        let listed = self.points.lock().len();
        let held = self.graph.get_nb_point() as u64;
        if listed != held {
            return Err(format!("{listed} points listed, the graph holds {held}"));
        }
        Ok(())
    }

    fn dump_into(&self, dir: &Path) -> Result<Vec<String>, IndexError> {
        let basename = self
            .graph
            .file_dump(dir, DUMP_BASENAME)
            .map_err(|e| IndexError::BadDump { path: dir.to_owned(), reason: format!("dump failed: {e}") })?;
        Ok(vec![format!("{basename}.hnsw.graph"), format!("{basename}.hnsw.data")])
    }
}

//! Approximate nearest neighbours over chunk embeddings (hnsw_rs), with tombstones, saved
//! and loaded so that opening an index never rebuilds the graph.
//!
//! hnsw_rs cannot delete points: a removed chunk is tombstoned and filtered from results;
//! when tombstones pile up (over a third of the points) the graph is rebuilt from the live
//! vectors, in the background.
//!
//! On disk (`<index>/graph/`): `CURRENT` names the newest complete dump directory
//! `dump-<seq>/`, which holds hnsw_rs's `graph.hnsw.graph` and `graph.hnsw.data` plus
//! `state` (the sequence number of the last logged change the dump contains, and the
//! tombstones). A dump is written in a fresh directory and `CURRENT` is replaced with a
//! rename, so a crash leaves the previous dump intact. Changes after a dump are in the
//! indexer's graph log and replayed at open.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use hnsw_rs::api::AnnT;
use hnsw_rs::hnswio::HnswIo;
use hnsw_rs::prelude::Hnsw;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

/// Cosine distance for L2-normalised vectors, clamped: anndists' `DistDot` asserts 1 − dot ≥ 0,
/// which rounding can break (RECIPES).
#[derive(Clone, Copy, Default)]
pub struct CosineDistance;

impl anndists::dist::Distance<f32> for CosineDistance {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - dot(a, b)).clamp(0.0, 2.0)
    }
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Four accumulators let the compiler vectorise.
    let mut acc = [0f32; 4];
    let chunks = a.len() / 4;
    for i in 0..chunks {
        for (j, slot) in acc.iter_mut().enumerate() {
            *slot += a[4 * i + j] * b[4 * i + j];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for i in chunks * 4..a.len().min(b.len()) {
        s += a[i] * b[i];
    }
    s
}

const M: usize = 16;
const EF_CONSTRUCTION: usize = 200;
const EF_SEARCH: usize = 64;

pub struct VectorIndex {
    graph: RwLock<Hnsw<'static, f32, CosineDistance>>,
    dead: RwLock<HashSet<u64>>,
    points: RwLock<usize>,
}

impl Default for VectorIndex {
    fn default() -> Self {
        Self::new(10_000)
    }
}

impl VectorIndex {
    pub fn new(capacity: usize) -> Self {
        Self {
            graph: RwLock::new(Hnsw::new(
                M,
                capacity.max(1000),
                16,
                EF_CONSTRUCTION,
                CosineDistance,
            )),
            dead: RwLock::new(HashSet::new()),
            points: RwLock::new(0),
        }
    }

    /// Builds a fresh index over `vectors` (id, vector).
    pub fn build(vectors: &[(u64, Vec<f32>)]) -> Self {
        let idx = Self::new(vectors.len() + 1000);
        let data: Vec<(&Vec<f32>, usize)> =
            vectors.iter().map(|(id, v)| (v, *id as usize)).collect();
        idx.graph.read().parallel_insert(&data);
        *idx.points.write() = vectors.len();
        idx
    }

    pub fn insert(&self, id: u64, v: &[f32]) {
        self.dead.write().remove(&id);
        self.graph.read().insert_slice((v, id as usize));
        *self.points.write() += 1;
    }

    pub fn remove(&self, id: u64) {
        self.dead.write().insert(id);
    }

    pub fn len(&self) -> usize {
        self.points.read().saturating_sub(self.dead.read().len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether tombstones are over a third of the points.
    pub fn needs_rebuild(&self) -> bool {
        let dead = self.dead.read().len();
        dead > 1000 && dead * 3 > *self.points.read()
    }

    /// Takes over `other`'s graph and tombstones.
    pub fn replace_with(&self, other: VectorIndex) {
        *self.graph.write() = other.graph.into_inner();
        *self.points.write() = other.points.into_inner();
        *self.dead.write() = other.dead.into_inner();
    }

    /// Replaces the graph with one over `vectors`.
    pub fn rebuild(&self, vectors: &[(u64, Vec<f32>)]) {
        let fresh = Self::build(vectors);
        *self.graph.write() = fresh.graph.into_inner();
        *self.points.write() = vectors.len();
        self.dead.write().clear();
    }

    /// Writes the graph to `dir` as a dump that contains every change up to `seq`.
    /// Callers keep inserts and removals out while it runs (searches may go on).
    pub fn dump(&self, dir: &Path, seq: u64) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let name = format!("dump-{seq:016x}");
        let tmp = dir.join(format!("tmp-{seq:016x}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        let points = *self.points.read();
        let basename = if points > 0 {
            let graph = self.graph.read();
            graph
                .file_dump(&tmp, "graph")
                .map_err(|e| std::io::Error::other(format!("dumping the vector graph: {e}")))?
        } else {
            String::new()
        };
        let state = DumpState {
            seq,
            points: points as u64,
            dead: self.dead.read().iter().copied().collect(),
            basename,
        };
        let bytes = postcard::to_allocvec(&state).map_err(std::io::Error::other)?;
        write_synced(&tmp.join("state"), &bytes)?;
        for entry in std::fs::read_dir(&tmp)? {
            std::fs::File::open(entry?.path())?.sync_all()?;
        }
        let target = dir.join(&name);
        let _ = std::fs::remove_dir_all(&target);
        std::fs::rename(&tmp, &target)?;
        write_synced(&dir.join("CURRENT.tmp"), name.as_bytes())?;
        std::fs::rename(dir.join("CURRENT.tmp"), dir.join("CURRENT"))?;
        std::fs::File::open(dir)?.sync_all()?;
        // Older dumps and leftovers of interrupted ones.
        for entry in std::fs::read_dir(dir)?.flatten() {
            let n = entry.file_name().to_string_lossy().into_owned();
            if (n.starts_with("dump-") || n.starts_with("tmp-")) && n != name {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        Ok(())
    }

    /// Loads the newest dump in `dir`: the graph and the sequence number it contains.
    /// `None` when there is none or it cannot be read (the caller rebuilds).
    pub fn load(dir: &Path) -> Option<(Self, u64)> {
        let name = std::fs::read_to_string(dir.join("CURRENT")).ok()?;
        let dump: PathBuf = dir.join(name.trim());
        let state: DumpState =
            postcard::from_bytes(&std::fs::read(dump.join("state")).ok()?).ok()?;
        if state.points == 0 {
            return Some((Self::new(10_000), state.seq));
        }
        // hnsw_rs asserts on malformed files: a corrupt dump must mean a rebuild, not a crash.
        let graph = std::panic::catch_unwind(|| {
            // The loaded graph borrows its loader (for the optional mmap, unused here); one
            // small loader per open is leaked so that the graph can be 'static.
            let io: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(&dump, &state.basename)));
            io.load_hnsw::<f32, CosineDistance>().ok()
        })
        .ok()
        .flatten()?;
        if graph.get_nb_point() as u64 != state.points {
            return None;
        }
        let idx = Self {
            graph: RwLock::new(graph),
            dead: RwLock::new(state.dead.into_iter().collect()),
            points: RwLock::new(state.points as usize),
        };
        Some((idx, state.seq))
    }

    /// The `k` nearest live ids with their cosine similarity, best first.
    pub fn search(&self, query: &[f32], k: usize) -> Vec<(u64, f32)> {
        let dead = self.dead.read();
        let want = k + dead.len().min(4 * k);
        let found = self.graph.read().search(query, want, EF_SEARCH.max(want));
        found
            .into_iter()
            .filter(|n| !dead.contains(&(n.d_id as u64)))
            .take(k)
            .map(|n| (n.d_id as u64, 1.0 - n.distance))
            .collect()
    }
}

#[derive(Serialize, Deserialize)]
struct DumpState {
    seq: u64,
    points: u64,
    dead: Vec<u64>,
    basename: String,
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(seed: u64, dim: usize) -> Vec<f32> {
        let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
        let mut v: Vec<f32> = (0..dim)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 1000) as f32 / 1000.0 - 0.5
            })
            .collect();
        let n = dot(&v, &v).sqrt();
        v.iter_mut().for_each(|a| *a /= n);
        v
    }

    #[test]
    fn finds_itself_and_honours_tombstones() {
        let vecs: Vec<(u64, Vec<f32>)> = (0..500).map(|i| (i, unit(i + 1, 32))).collect();
        let idx = VectorIndex::build(&vecs);
        let hits = idx.search(&vecs[42].1, 3);
        assert_eq!(hits[0].0, 42);
        assert!(hits[0].1 > 0.99);
        idx.remove(42);
        assert!(idx.search(&vecs[42].1, 3).iter().all(|h| h.0 != 42));
        idx.insert(1000, &vecs[42].1);
        assert_eq!(idx.search(&vecs[42].1, 1)[0].0, 1000);
    }

    #[test]
    fn a_dump_loads_with_the_same_results() {
        let dir = tempfile::tempdir().unwrap();
        let vecs: Vec<(u64, Vec<f32>)> = (0..2000).map(|i| (i, unit(i + 7, 48))).collect();
        let idx = VectorIndex::build(&vecs);
        idx.remove(5);
        idx.dump(dir.path(), 77).unwrap();
        let (loaded, seq) = VectorIndex::load(dir.path()).unwrap();
        assert_eq!(seq, 77);
        assert_eq!(loaded.len(), idx.len());
        for probe in [1u64, 5, 500, 1999] {
            assert_eq!(
                loaded.search(&vecs[probe as usize].1, 10),
                idx.search(&vecs[probe as usize].1, 10)
            );
        }
        // It takes inserts, and a second dump replaces the first.
        loaded.insert(5000, &vecs[3].1);
        loaded.dump(dir.path(), 78).unwrap();
        let (again, seq) = VectorIndex::load(dir.path()).unwrap();
        assert_eq!(seq, 78);
        assert_eq!(again.len(), idx.len() + 1);
        let dumps = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("dump-")
            })
            .count();
        assert_eq!(dumps, 1);
        // A corrupt dump is reported as absent, not a crash.
        let cur = std::fs::read_to_string(dir.path().join("CURRENT")).unwrap();
        let data = dir.path().join(cur.trim()).join("graph.hnsw.data");
        std::fs::write(&data, b"garbage").unwrap();
        assert!(VectorIndex::load(dir.path()).is_none());
    }
}

//! Approximate nearest neighbours over chunk embeddings (hnsw_rs), with tombstones.
//!
//! hnsw_rs cannot delete points: a removed chunk is tombstoned and filtered from results;
//! when tombstones pile up (over a third of the points) the graph is rebuilt from the live
//! vectors. Vectors themselves are persisted by the caller; the graph is rebuilt at open.

use std::collections::HashSet;

use hnsw_rs::prelude::Hnsw;
use parking_lot::RwLock;

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

    /// Replaces the graph with one over `vectors`.
    pub fn rebuild(&self, vectors: &[(u64, Vec<f32>)]) {
        let fresh = Self::build(vectors);
        *self.graph.write() = fresh.graph.into_inner();
        *self.points.write() = vectors.len();
        self.dead.write().clear();
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
}

//! Nearest passages over chunk embeddings: an exact scan of int8 copies of every vector, and an
//! hnsw_rs graph for long-lived processes, with tombstones, both saved and loaded so that
//! opening an index never rebuilds anything.
//!
//! Why two structures: hnsw_rs's loader allocates every edge of the graph (2.3 s for 100k
//! vectors here), far over what a one-shot `peros search` should wait, while an exact scan of
//! the int8 copies (39 MB at 100k, 1/4 of the f32 vectors) answers in milliseconds and is
//! exact up to quantisation (score error ~1e-3). So an index opens by reading the flat copies
//! only; the graph is loaded (or built) in a background thread when something needs it — the
//! daemon at start, an insert, a dump — and takes over searches once it is ready. Commands
//! that only read never load it, and their answers are exact and repeatable.
//!
//! hnsw_rs cannot delete points: a removed chunk is tombstoned and filtered from results;
//! when tombstones pile up (over a third of the points) the graph is rebuilt from the live
//! vectors, in the background.
//!
//! On disk (`<index>/graph/`): `CURRENT` names the newest complete dump directory
//! `dump-<seq>/`, which holds `flat` (ids, scales and int8 codes), hnsw_rs's
//! `graph.hnsw.graph` and `graph.hnsw.data` when a graph was built, and `state` (the sequence
//! number of the last logged change the dump contains, and the tombstones). A dump is written
//! in a fresh directory and `CURRENT` is replaced with a rename, so a crash leaves the previous
//! dump intact. Changes after a dump are in the indexer's graph log and replayed at open.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hnsw_rs::api::AnnT;
use hnsw_rs::hnswio::HnswIo;
use hnsw_rs::prelude::Hnsw;
use parking_lot::{Condvar, Mutex, RwLock};
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
const FLAT_MAGIC: &[u8; 8] = b"PFLAT001";

type Graph = Hnsw<'static, f32, CosineDistance>;

/// Int8 copies of every vector inserted (live or tombstoned), in insertion order.
#[derive(Default)]
struct Flat {
    dim: usize,
    ids: Vec<u64>,
    scales: Vec<f32>,
    codes: Vec<i8>,
    /// Where each id's newest copy is (an id re-inserted after a removal has older ones).
    newest: HashMap<u64, usize>,
}

impl Flat {
    fn from_vectors(vectors: &[(u64, Vec<f32>)]) -> Self {
        let mut flat = Flat::default();
        for (id, v) in vectors {
            flat.push(*id, v);
        }
        flat
    }

    fn push(&mut self, id: u64, v: &[f32]) {
        if self.ids.is_empty() {
            self.dim = v.len();
        }
        if v.len() != self.dim {
            tracing::error!(
                "vector of {} dimensions in an index of {}: skipped",
                v.len(),
                self.dim
            );
            return;
        }
        let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 0.0 };
        let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        self.newest.insert(id, self.ids.len());
        self.ids.push(id);
        self.scales.push(scale);
        self.codes.extend(
            v.iter()
                .map(|x| (x * inv).round().clamp(-127.0, 127.0) as i8),
        );
    }

    /// Copies held, older copies of re-inserted ids included.
    fn len(&self) -> usize {
        self.ids.len()
    }

    /// Distinct ids held.
    fn live(&self) -> usize {
        self.newest.len()
    }

    fn vector(&self, i: usize) -> Vec<f32> {
        let s = self.scales[i];
        self.codes[i * self.dim..(i + 1) * self.dim]
            .iter()
            .map(|&c| c as f32 * s)
            .collect()
    }

    /// The `k` best live ids by dot product with `q`, best first (the last copy of an id wins).
    fn scan(&self, q: &[f32], k: usize, dead: &HashSet<u64>) -> Vec<(u64, f32)> {
        if k == 0 || self.dim == 0 || q.len() != self.dim {
            return Vec::new();
        }
        let keep = 2 * k + 16;
        let mut best: Vec<(usize, f32)> = Vec::with_capacity(keep * 2);
        let mut floor = f32::NEG_INFINITY;
        for (i, codes) in self.codes.chunks_exact(self.dim).enumerate() {
            let s = dot_i8(q, codes) * self.scales[i];
            if s <= floor {
                continue;
            }
            best.push((i, s));
            if best.len() >= keep * 2 {
                best.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
                best.truncate(keep);
                floor = best[keep - 1].1;
            }
        }
        best.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
        let mut out = Vec::with_capacity(k);
        for (i, s) in best {
            let id = self.ids[i];
            // A re-inserted id has an older copy; tombstones hide both.
            if dead.contains(&id) || self.superseded(i) {
                continue;
            }
            out.push((id, s));
            if out.len() == k {
                break;
            }
        }
        if out.len() < k && self.len() > keep {
            // Rare: tombstones or duplicates ate the candidates; scan everything.
            return self.scan_all(q, k, dead);
        }
        out
    }

    fn scan_all(&self, q: &[f32], k: usize, dead: &HashSet<u64>) -> Vec<(u64, f32)> {
        let mut all: Vec<(u64, f32)> = self
            .codes
            .chunks_exact(self.dim)
            .enumerate()
            .filter(|(i, _)| !dead.contains(&self.ids[*i]) && !self.superseded(*i))
            .map(|(i, c)| (self.ids[i], dot_i8(q, c) * self.scales[i]))
            .collect();
        all.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
        all.truncate(k);
        all
    }

    /// Whether a later copy of the same id exists.
    fn superseded(&self, i: usize) -> bool {
        self.newest.get(&self.ids[i]) != Some(&i)
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(20 + self.len() * (12 + self.dim));
        out.extend_from_slice(FLAT_MAGIC);
        out.extend_from_slice(&(self.dim as u32).to_le_bytes());
        out.extend_from_slice(&(self.len() as u64).to_le_bytes());
        for id in &self.ids {
            out.extend_from_slice(&id.to_le_bytes());
        }
        for s in &self.scales {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out.extend(self.codes.iter().map(|&c| c as u8));
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < 20 || &bytes[..8] != FLAT_MAGIC {
            return None;
        }
        let dim = u32::from_le_bytes(bytes[8..12].try_into().ok()?) as usize;
        let n = u64::from_le_bytes(bytes[12..20].try_into().ok()?) as usize;
        let want = n.checked_mul(12usize.checked_add(dim)?)?.checked_add(20)?;
        if want != bytes.len() || (n > 0 && dim == 0) {
            return None;
        }
        let ids_end = 20 + 8 * n;
        let scales_end = ids_end + 4 * n;
        let ids = bytes[20..ids_end]
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let scales = bytes[ids_end..scales_end]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let codes = bytes[scales_end..].iter().map(|&b| b as i8).collect();
        let ids: Vec<u64> = ids;
        let newest = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        Some(Self {
            dim,
            ids,
            scales,
            codes,
            newest,
        })
    }
}

fn dot_i8(q: &[f32], c: &[i8]) -> f32 {
    let mut acc = [0f32; 8];
    let n = q.len().min(c.len()) / 8 * 8;
    for (qa, ca) in q[..n].chunks_exact(8).zip(c[..n].chunks_exact(8)) {
        for j in 0..8 {
            acc[j] += qa[j] * ca[j] as f32;
        }
    }
    let mut s: f32 = acc.iter().sum();
    for i in n..q.len().min(c.len()) {
        s += q[i] * c[i] as f32;
    }
    s
}

/// Where the graph comes from when something first needs it.
enum Source {
    /// hnsw_rs files `<dir>/<basename>.hnsw.{graph,data}` holding `points` points.
    Dump {
        dir: PathBuf,
        basename: String,
        points: usize,
    },
    /// No saved graph: built from the flat copies.
    Flat,
}

enum GraphState {
    NotLoaded(Source),
    Loading,
    Ready,
}

/// One generation of the index (a rebuild swaps in a new one).
struct Inner {
    flat: RwLock<Flat>,
    graph: RwLock<Option<Graph>>,
    /// Inserts made while the graph is not ready, applied when it is. Held while an insert
    /// appends to `flat`, so that the loader's snapshot and the backlog never overlap.
    backlog: Mutex<Vec<(u64, Vec<f32>)>>,
    state: Mutex<GraphState>,
    ready: Condvar,
    /// How long the last load or build took (ms).
    load_ms: AtomicU64,
    dead: RwLock<HashSet<u64>>,
}

impl Inner {
    fn new(flat: Flat, graph: Option<Graph>, state: GraphState, dead: HashSet<u64>) -> Arc<Self> {
        Arc::new(Self {
            flat: RwLock::new(flat),
            graph: RwLock::new(graph),
            backlog: Mutex::new(Vec::new()),
            state: Mutex::new(state),
            ready: Condvar::new(),
            load_ms: AtomicU64::new(0),
            dead: RwLock::new(dead),
        })
    }

    /// The flat copies as vectors, taken with the backlog emptied (they contain it).
    fn snapshot_for_build(&self) -> Vec<(u64, Vec<f32>)> {
        let mut backlog = self.backlog.lock();
        backlog.clear();
        let f = self.flat.read();
        (0..f.len()).map(|i| (f.ids[i], f.vector(i))).collect()
    }

    /// The loader: read the dump (or build from the flat copies when there is none or it is
    /// unreadable), apply the inserts that came meanwhile, install it, wake waiters.
    fn load(&self, source: Source) {
        let t = std::time::Instant::now();
        let from_dump = match &source {
            Source::Dump {
                dir,
                basename,
                points,
            } => match read_graph(dir, basename) {
                Some(g) if g.get_nb_point() == *points => Some(g),
                _ => {
                    tracing::warn!(
                        "the saved vector graph in {} is unreadable or incomplete: building it \
                         from the stored vectors",
                        dir.display()
                    );
                    None
                }
            },
            Source::Flat => None,
        };
        let graph = from_dump.unwrap_or_else(|| {
            let all = self.snapshot_for_build();
            let g = new_graph(all.len() + 1000);
            let data: Vec<(&Vec<f32>, usize)> =
                all.iter().map(|(id, v)| (v, *id as usize)).collect();
            g.parallel_insert(&data);
            g
        });
        {
            let mut installed = self.graph.write();
            for (id, v) in self.backlog.lock().drain(..) {
                graph.insert_slice((&v, id as usize));
            }
            *installed = Some(graph);
        }
        self.load_ms
            .store(t.elapsed().as_millis() as u64, Ordering::Relaxed);
        *self.state.lock() = GraphState::Ready;
        self.ready.notify_all();
        tracing::debug!("vector graph ready in {:?}", t.elapsed());
    }
}

fn new_graph(capacity: usize) -> Graph {
    Hnsw::new(M, capacity.max(1000), 16, EF_CONSTRUCTION, CosineDistance)
}

/// Reads an hnsw_rs dump. hnsw_rs asserts on malformed files: a corrupt dump must mean a
/// rebuild, not a crash.
fn read_graph(dir: &Path, basename: &str) -> Option<Graph> {
    std::panic::catch_unwind(|| {
        // The loaded graph borrows its loader (for the optional mmap, unused here); one small
        // loader per load is leaked so that the graph can be 'static.
        let io: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(dir, basename)));
        io.load_hnsw::<f32, CosineDistance>().ok()
    })
    .ok()
    .flatten()
}

pub struct VectorIndex {
    inner: RwLock<Arc<Inner>>,
}

impl Default for VectorIndex {
    fn default() -> Self {
        Self::new(10_000)
    }
}

impl VectorIndex {
    pub fn new(capacity: usize) -> Self {
        Self::with(Inner::new(
            Flat::default(),
            Some(new_graph(capacity)),
            GraphState::Ready,
            HashSet::new(),
        ))
    }

    fn with(inner: Arc<Inner>) -> Self {
        Self {
            inner: RwLock::new(inner),
        }
    }

    fn current(&self) -> Arc<Inner> {
        self.inner.read().clone()
    }

    /// Builds a fresh index over `vectors` (id, vector), graph included (blocking).
    pub fn build(vectors: &[(u64, Vec<f32>)]) -> Self {
        let graph = new_graph(vectors.len() + 1000);
        let data: Vec<(&Vec<f32>, usize)> =
            vectors.iter().map(|(id, v)| (v, *id as usize)).collect();
        graph.parallel_insert(&data);
        Self::with(Inner::new(
            Flat::from_vectors(vectors),
            Some(graph),
            GraphState::Ready,
            HashSet::new(),
        ))
    }

    /// An index over `vectors` whose graph is built from the flat copies when first needed:
    /// searchable at once, without the cost of building a graph.
    pub fn from_vectors(vectors: &[(u64, Vec<f32>)]) -> Self {
        Self::with(Inner::new(
            Flat::from_vectors(vectors),
            None,
            GraphState::NotLoaded(Source::Flat),
            HashSet::new(),
        ))
    }

    pub fn insert(&self, id: u64, v: &[f32]) {
        let inner = self.current();
        inner.dead.write().remove(&id);
        let graph = inner.graph.read();
        match graph.as_ref() {
            Some(g) => {
                inner.flat.write().push(id, v);
                g.insert_slice((v, id as usize));
            }
            // The loader takes the graph's write lock to install it, so it cannot miss this.
            None => {
                let mut backlog = inner.backlog.lock();
                inner.flat.write().push(id, v);
                backlog.push((id, v.to_vec()));
            }
        }
    }

    pub fn remove(&self, id: u64) {
        self.current().dead.write().insert(id);
    }

    pub fn len(&self) -> usize {
        let inner = self.current();
        let n = inner.flat.read().live();
        let dead = inner.dead.read().len();
        n.saturating_sub(dead)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether tombstones are over a third of the points.
    pub fn needs_rebuild(&self) -> bool {
        let inner = self.current();
        let dead = inner.dead.read().len();
        dead > 1000 && dead * 3 > inner.flat.read().len()
    }

    /// Takes over `other`'s vectors, graph and tombstones.
    pub fn replace_with(&self, other: VectorIndex) {
        *self.inner.write() = other.inner.into_inner();
    }

    /// Whether searches use the graph (else they scan the flat copies exactly).
    pub fn graph_ready(&self) -> bool {
        self.current().graph.read().is_some()
    }

    /// How long the graph took to load or build, once it is ready.
    pub fn graph_load_ms(&self) -> Option<u64> {
        let inner = self.current();
        let ready = inner.graph.read().is_some();
        ready.then(|| inner.load_ms.load(Ordering::Relaxed))
    }

    /// Starts loading (or building) the graph in the background if it is not there yet.
    pub fn ensure_graph(&self) {
        let inner = self.current();
        let source = {
            let mut state = inner.state.lock();
            match std::mem::replace(&mut *state, GraphState::Loading) {
                GraphState::NotLoaded(source) => source,
                other => {
                    *state = other;
                    return;
                }
            }
        };
        let loader = inner.clone();
        std::thread::Builder::new()
            .name("peros-graph-load".into())
            .spawn(move || loader.load(source))
            .expect("spawn graph loader");
    }

    /// Waits until the graph is ready (starting its load if needed).
    pub fn wait_graph(&self) {
        self.ensure_graph();
        let inner = self.current();
        let mut state = inner.state.lock();
        while !matches!(*state, GraphState::Ready) {
            inner.ready.wait(&mut state);
        }
    }

    /// Writes the index to `dir` as a dump that contains every change up to `seq`.
    /// Callers keep inserts and removals out while it runs (searches may go on).
    pub fn dump(&self, dir: &Path, seq: u64) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let name = format!("dump-{seq:016x}");
        let tmp = dir.join(format!("tmp-{seq:016x}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        let target = dir.join(&name);
        let inner = self.current();
        let points = inner.flat.read().len();
        // The graph part: written from memory when loaded; linked from the previous dump when
        // it was never loaded and nothing was inserted since (removals are tombstones, kept in
        // `state`); absent when it was never built. Otherwise wait for the load.
        let reuse = {
            let state = inner.state.lock();
            let quiet = inner.backlog.lock().is_empty();
            match &*state {
                GraphState::NotLoaded(Source::Dump {
                    dir: d,
                    basename: b,
                    ..
                }) if quiet => Some(Some((d.clone(), b.clone()))),
                GraphState::NotLoaded(Source::Flat) if quiet => Some(None),
                _ => None,
            }
        };
        let mut basename = String::new();
        let mut linked_from_dump = false;
        if points > 0 {
            match reuse {
                Some(Some((old, b))) => {
                    for ext in ["hnsw.graph", "hnsw.data"] {
                        let from = old.join(format!("{b}.{ext}"));
                        let to = tmp.join(format!("{b}.{ext}"));
                        if std::fs::hard_link(&from, &to).is_err() {
                            std::fs::copy(&from, &to)?;
                        }
                    }
                    basename = b;
                    linked_from_dump = true;
                }
                Some(None) => {}
                None => {
                    self.wait_graph();
                    let graph = inner.graph.read();
                    basename = graph
                        .as_ref()
                        .expect("the graph is ready")
                        .file_dump(&tmp, "graph")
                        .map_err(|e| {
                            std::io::Error::other(format!("dumping the vector graph: {e}"))
                        })?;
                }
            }
        }
        write_synced(&tmp.join("flat"), &inner.flat.read().encode())?;
        let state = DumpState {
            seq,
            points: points as u64,
            dead: inner.dead.read().iter().copied().collect(),
            basename,
        };
        let bytes = postcard::to_allocvec(&state).map_err(std::io::Error::other)?;
        write_synced(&tmp.join("state"), &bytes)?;
        for entry in std::fs::read_dir(&tmp)? {
            std::fs::File::open(entry?.path())?.sync_all()?;
        }
        let _ = std::fs::remove_dir_all(&target);
        std::fs::rename(&tmp, &target)?;
        write_synced(&dir.join("CURRENT.tmp"), name.as_bytes())?;
        std::fs::rename(dir.join("CURRENT.tmp"), dir.join("CURRENT"))?;
        std::fs::File::open(dir)?.sync_all()?;
        if linked_from_dump {
            // The graph still to be loaded now lives in the new dump (the old one goes next).
            if let GraphState::NotLoaded(Source::Dump { dir: d, .. }) = &mut *inner.state.lock() {
                *d = target.clone();
            }
        }
        // Older dumps and leftovers of interrupted ones.
        for entry in std::fs::read_dir(dir)?.flatten() {
            let n = entry.file_name().to_string_lossy().into_owned();
            if (n.starts_with("dump-") || n.starts_with("tmp-")) && n != name {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        Ok(())
    }

    /// Opens the newest dump in `dir`: the flat copies now, the graph when first needed.
    /// Returns the sequence number the dump contains; `None` when there is none or it cannot
    /// be read (the caller rebuilds).
    pub fn load(dir: &Path) -> Option<(Self, u64)> {
        let name = std::fs::read_to_string(dir.join("CURRENT")).ok()?;
        let dump: PathBuf = dir.join(name.trim());
        let state: DumpState =
            postcard::from_bytes(&std::fs::read(dump.join("state")).ok()?).ok()?;
        let flat = Flat::decode(&std::fs::read(dump.join("flat")).ok()?)?;
        if flat.len() as u64 != state.points {
            return None;
        }
        let points = state.points as usize;
        let (graph, gstate) = if points == 0 {
            (Some(new_graph(10_000)), GraphState::Ready)
        } else if state.basename.is_empty() {
            (None, GraphState::NotLoaded(Source::Flat))
        } else {
            for ext in ["hnsw.graph", "hnsw.data"] {
                if !dump.join(format!("{}.{ext}", state.basename)).is_file() {
                    return None;
                }
            }
            let source = Source::Dump {
                dir: dump,
                basename: state.basename,
                points,
            };
            (None, GraphState::NotLoaded(source))
        };
        let dead = state.dead.into_iter().collect();
        Some((Self::with(Inner::new(flat, graph, gstate, dead)), state.seq))
    }

    /// The `k` nearest live ids with their cosine similarity, best first: from the graph when
    /// it is ready, else by an exact scan of the flat copies.
    pub fn search(&self, query: &[f32], k: usize) -> Vec<(u64, f32)> {
        let inner = self.current();
        let dead = inner.dead.read();
        let graph = inner.graph.read();
        let Some(g) = graph.as_ref() else {
            drop(graph);
            return inner.flat.read().scan(query, k, &dead);
        };
        let want = k + dead.len().min(4 * k);
        let found = g.search(query, want, EF_SEARCH.max(want));
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

    fn exact_top(vecs: &[(u64, Vec<f32>)], q: &[f32], k: usize, dead: &[u64]) -> Vec<u64> {
        let mut all: Vec<(u64, f32)> = vecs
            .iter()
            .filter(|(id, _)| !dead.contains(id))
            .map(|(id, v)| (*id, dot(q, v)))
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1));
        all.into_iter().take(k).map(|(id, _)| id).collect()
    }

    #[test]
    fn the_flat_scan_is_exact_up_to_quantisation() {
        let vecs: Vec<(u64, Vec<f32>)> = (0..3000).map(|i| (i, unit(i + 3, 64))).collect();
        let idx = VectorIndex::from_vectors(&vecs);
        assert!(!idx.graph_ready());
        for probe in [0usize, 17, 2999] {
            let hits = idx.search(&vecs[probe].1, 10);
            assert_eq!(hits[0].0, probe as u64);
            assert!((hits[0].1 - 1.0).abs() < 0.01, "{hits:?}");
            let ids: Vec<u64> = hits.iter().map(|h| h.0).collect();
            let want = exact_top(&vecs, &vecs[probe].1, 10, &[]);
            let shared = ids.iter().filter(|i| want.contains(i)).count();
            assert!(shared >= 9, "{ids:?} vs {want:?}");
        }
        // Tombstones, re-inserts (the newest copy wins) and the graph taking over.
        idx.remove(17);
        assert!(idx.search(&vecs[17].1, 5).iter().all(|h| h.0 != 17));
        idx.insert(17, &vecs[18].1);
        let hits = idx.search(&vecs[18].1, 2);
        assert_eq!(hits.iter().filter(|h| h.0 == 17).count(), 1, "{hits:?}");
        assert_eq!(idx.len(), 3000);
        idx.wait_graph();
        assert!(idx.graph_ready());
        assert_eq!(idx.search(&vecs[2999].1, 1)[0].0, 2999);
    }

    #[test]
    fn a_dump_opens_without_the_graph_and_loads_it_on_demand() {
        let dir = tempfile::tempdir().unwrap();
        let vecs: Vec<(u64, Vec<f32>)> = (0..2000).map(|i| (i, unit(i + 7, 48))).collect();
        let idx = VectorIndex::build(&vecs);
        idx.remove(5);
        idx.dump(dir.path(), 77).unwrap();
        let (loaded, seq) = VectorIndex::load(dir.path()).unwrap();
        assert_eq!(seq, 77);
        assert_eq!(loaded.len(), idx.len());
        assert!(!loaded.graph_ready(), "opening must not load the graph");
        for probe in [1u64, 5, 500, 1999] {
            let got: Vec<u64> = loaded
                .search(&vecs[probe as usize].1, 10)
                .iter()
                .map(|h| h.0)
                .collect();
            // Exact up to quantisation: near-ties may swap places, nothing else changes.
            let want = exact_top(&vecs, &vecs[probe as usize].1, 10, &[5]);
            let shared = got.iter().filter(|i| want.contains(i)).count();
            assert!(shared >= 9, "{got:?} vs {want:?}");
            assert!(!got.contains(&5), "a tombstone was returned");
        }
        // Inserts before the graph is ready wait in its backlog; a dump waits for the graph.
        loaded.insert(5000, &vecs[3].1);
        loaded.dump(dir.path(), 78).unwrap();
        assert!(loaded.graph_ready());
        assert_eq!(loaded.search(&vecs[3].1, 2).len(), 2);
        let (again, seq) = VectorIndex::load(dir.path()).unwrap();
        assert_eq!(seq, 78);
        assert_eq!(again.len(), idx.len() + 1);
        // A dump of an index whose graph was never loaded links the saved graph.
        again.remove(7);
        again.dump(dir.path(), 79).unwrap();
        assert!(!again.graph_ready());
        let (third, _) = VectorIndex::load(dir.path()).unwrap();
        third.wait_graph();
        let hits = third.search(&vecs[3].1, 3);
        assert!(hits.iter().any(|h| h.0 == 5000) && hits.iter().any(|h| h.0 == 3));
        assert!(third.search(&vecs[7].1, 3).iter().all(|h| h.0 != 7));
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
        // A corrupt graph is rebuilt from the flat copies, not a crash; a corrupt flat file is
        // reported as no dump at all.
        let cur = std::fs::read_to_string(dir.path().join("CURRENT")).unwrap();
        let data = dir.path().join(cur.trim()).join("graph.hnsw.data");
        std::fs::write(&data, b"garbage").unwrap();
        let (fourth, _) = VectorIndex::load(dir.path()).unwrap();
        fourth.wait_graph();
        assert_eq!(fourth.search(&vecs[9].1, 1)[0].0, 9);
        std::fs::write(dir.path().join(cur.trim()).join("flat"), b"garbage").unwrap();
        assert!(VectorIndex::load(dir.path()).is_none());
    }
}

//! Access patterns and the prefetcher's decisions: a variable-order (PPM-like) model of which
//! file is opened next, kept both per process stream and across all streams.
//!
//! Pure and deterministic (no I/O), so the benchmark in `perfs/agent` replays traces through
//! exactly the code the daemon runs: [`Model::predict`] for what may be opened soon and
//! [`decide`] for what of that is worth fetching.
//!
//! Keys are inode numbers in the daemon and file ids in the benchmark. Successors are counted
//! per *stream* (the process name): a build's compiler and a music player interleave, and a
//! chain per process keeps their patterns apart. The same counts over the sequence of all
//! opens catch what runs one after the other across processes (make runs cc, then cc1, then
//! as; an editor opens a chapter, then the viewer its references).
//!
//! Next to the learned contexts, a *folder-order prior*: how often a stream's next open in a
//! folder was the file 1, 2, … places after its previous open there (in name order). A photo
//! viewer or a reader going through chapters scores high on "1 place after" and predicts the
//! next files of a folder it has never seen; a compiler scores near zero and the prior stays
//! silent. See docs/PREFETCH.md.

use std::collections::HashMap;

/// Longest context (last opens) the model conditions on.
pub const ORDER: usize = 3;

/// A context longer than one open is used once it has been seen this often; a single
/// sighting of a long context is more often a one-off (a skipped photo, a back step) than a
/// habit, and would override the better-supported shorter context.
const MIN_SUPPORT: f32 = 2.0;

/// Pseudo-count of "something else" in every context. A transition seen once is trusted at
/// 1 / (1 + KAPPA) = 0.8, one seen every time of n is trusted at n / (n + KAPPA), and two
/// successors seen once each (a coin toss) stay below 0.5.
const KAPPA: f32 = 0.25;

/// Futures followed at each step of the look-ahead.
const BEAM: usize = 4;

/// Probabilities below this are not followed or reported.
const FLOOR_P: f32 = 0.01;

/// Most candidates [`Model::predict`] returns.
const MAX_CANDIDATES: usize = 16;

/// Files much smaller than this need proportionally less confidence to be prefetched (see
/// [`worth`]).
pub const SMALL_FILE: u64 = 64 << 10;

/// Context rows kept before rarely seen ones are dropped.
const MAX_ROWS: usize = 200_000;

/// Counts above this are halved so old habits fade.
const DECAY_AT: f32 = 64.0;

/// Files after an open in its folder the folder-order prior looks at.
pub const FOLDER_SPAN: usize = 8;

/// Folders per stream whose latest open the prior remembers (a viewer alternating between a
/// photo folder and its thumbnail folder keeps both).
const FOLDERS_KEPT: usize = 4;

/// Weight of the latest open in the folder-order estimates (an exponential average): the
/// prior follows the current way of browsing (in order now, at random later) within about
/// 1 / FOLDER_RATE opens, and needs about as many opens in order before it is trusted.
const FOLDER_RATE: f32 = 1.0 / 8.0;

/// A file's place in its folder, as the caller knows it: the directory and the files after
/// the file there, in name order (at most [`FOLDER_SPAN`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Folder {
    pub dir: u64,
    pub after: Vec<u64>,
}

/// How a stream moves within folders: `ahead[k]` is the share of its recent opens (in a
/// folder it had opened before) that were the file k + 1 places after its previous open
/// there; back steps, re-reads and jumps are the rest. Starts at zero: trust is earned.
#[derive(Default, Clone, Debug)]
struct FolderHabit {
    ahead: [f32; FOLDER_SPAN],
}

impl FolderHabit {
    fn learn(&mut self, offset: Option<usize>) {
        for (k, a) in self.ahead.iter_mut().enumerate() {
            let hit = if offset == Some(k) { 1.0 } else { 0.0 };
            *a += FOLDER_RATE * (hit - *a);
        }
    }

    /// Probability that each of the next [`FOLDER_SPAN`] files of the folder is opened within
    /// the stream's next `depth` opens there. Moves only go forward in this estimate (a back
    /// step or a jump ends the path), so a file is reached at most once per path and the sum
    /// over paths is a probability.
    fn reach(&self, depth: usize) -> [f32; FOLDER_SPAN] {
        let step = self.ahead;
        let mut at = [0f32; FOLDER_SPAN + 1];
        at[0] = 1.0;
        let mut seen = [0f32; FOLDER_SPAN];
        for _ in 0..depth.max(1) {
            let mut next = [0f32; FOLDER_SPAN + 1];
            for (o, &q) in at.iter().enumerate() {
                if q < FLOOR_P {
                    continue;
                }
                for (j, &s) in step.iter().enumerate() {
                    if let Some(n) = next.get_mut(o + j + 1) {
                        *n += q * s;
                    }
                }
            }
            for (v, &n) in seen.iter_mut().zip(&next[1..]) {
                *v += n;
            }
            at = next;
        }
        seen.map(|v| v.min(1.0))
    }
}

/// A predicted file with a confidence in 0..1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prediction {
    pub key: u64,
    pub p: f32,
}

fn bump(row: &mut HashMap<u64, f32>, key: u64) {
    *row.entry(key).or_insert(0.0) += 1.0;
    if row.values().any(|&c| c > DECAY_AT) {
        row.values_mut().for_each(|c| *c /= 2.0);
        row.retain(|_, c| *c >= 0.5);
    }
}

/// Highest first; ties: smaller key first.
fn sorted(m: HashMap<u64, f32>) -> Vec<Prediction> {
    let mut v: Vec<Prediction> = m
        .into_iter()
        .map(|(key, p)| Prediction { key, p })
        .collect();
    v.sort_by(|a, b| b.p.total_cmp(&a.p).then(a.key.cmp(&b.key)));
    v
}

fn push_bounded(hist: &mut Vec<u64>, key: u64) {
    hist.push(key);
    if hist.len() > ORDER {
        hist.remove(0);
    }
}

/// Successor counts of contexts of 1..=ORDER opens (oldest first) → next open → count.
#[derive(Default, Clone)]
struct Contexts {
    rows: HashMap<Vec<u64>, HashMap<u64, f32>>,
}

impl Contexts {
    /// Records that `key` followed the opens `hist`.
    fn learn(&mut self, hist: &[u64], key: u64) {
        for k in 1..=hist.len().min(ORDER) {
            let c = &hist[hist.len() - k..];
            match self.rows.get_mut(c) {
                Some(row) => bump(row, key),
                None => {
                    self.rows.insert(c.to_vec(), HashMap::from([(key, 1.0)]));
                }
            }
        }
        if self.rows.len() > MAX_ROWS {
            self.rows.retain(|_, r| r.values().sum::<f32>() >= 2.0);
            if self.rows.len() > MAX_ROWS / 2 {
                self.rows.retain(|c, _| c.len() == 1);
            }
        }
    }

    /// The next open after `hist`. Longer contexts decide and shorter ones fill in (PPM
    /// blending): each order keeps KAPPA / (n + KAPPA) of its mass for the shorter contexts.
    /// This tells apart a file with several successors — a header included from several
    /// places, a library loaded by several programs — by the opens before it.
    fn next(&self, hist: &[u64]) -> Vec<Prediction> {
        let mut p: HashMap<u64, f32> = HashMap::new();
        for k in 1..=hist.len().min(ORDER) {
            let Some(row) = self.rows.get(&hist[hist.len() - k..]) else {
                break;
            };
            let n: f32 = row.values().sum();
            if k > 1 && n < MIN_SUPPORT {
                break;
            }
            let e = KAPPA / (n + KAPPA);
            p.values_mut().for_each(|v| *v *= e);
            for (&x, &c) in row {
                *p.entry(x).or_insert(0.0) += c / (n + KAPPA);
            }
        }
        sorted(p)
    }

    /// Probability that each file is opened within the next `depth` opens after `hist`,
    /// following the BEAM likeliest futures. A file reached by several paths (the next photo,
    /// or the one after it when the user skips) adds up, which a single best guess per step
    /// would not see. Merged into `out` by maximum.
    fn horizon(&self, hist: &[u64], depth: usize, out: &mut HashMap<u64, f32>) {
        let cur = hist.last().copied();
        let mut mine: HashMap<u64, f32> = HashMap::new();
        let mut states = vec![(hist.to_vec(), 1.0f32)];
        for _ in 0..depth.max(1) {
            let mut next: Vec<(Vec<u64>, f32)> = Vec::new();
            for (h, q) in &states {
                for pr in self.next(h) {
                    let r = q * pr.p;
                    if r < FLOOR_P {
                        break;
                    }
                    if Some(pr.key) != cur {
                        *mine.entry(pr.key).or_insert(0.0) += r;
                    }
                    let mut h2 = h.clone();
                    push_bounded(&mut h2, pr.key);
                    next.push((h2, r));
                }
            }
            if next.is_empty() {
                break;
            }
            next.sort_by(|a, b| b.1.total_cmp(&a.1));
            next.truncate(BEAM);
            states = next;
        }
        for (k, v) in mine {
            let e = out.entry(k).or_insert(0.0);
            *e = e.max(v.min(1.0));
        }
    }
}

#[derive(Default, Clone)]
pub struct Model {
    /// key → successor → count (first order, per stream): the textbook Markov baseline.
    succ: HashMap<u64, HashMap<u64, f32>>,
    /// key → the successor seen last time (the "last successor" baseline).
    last: HashMap<u64, u64>,
    /// Variable-order contexts within each stream.
    stream: Contexts,
    /// Variable-order contexts over all opens, whatever the stream.
    global: Contexts,
    /// Recent opens per stream (newest last), at most ORDER.
    recent: HashMap<String, Vec<u64>>,
    /// Recent opens of all streams (newest last), at most ORDER.
    all: Vec<u64>,
    /// Folder-order habits per stream.
    habits: HashMap<String, FolderHabit>,
    /// Per stream, the latest open's place in each of its recent folders (newest first).
    folders: HashMap<String, Vec<Folder>>,
    /// Per stream: time of the latest open (ms) and the smoothed gap between opens (ms).
    think: HashMap<String, (u64, f32)>,
    pub observed: u64,
}

impl Model {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `stream` opened `key` (no folder or time known).
    pub fn observe(&mut self, stream: &str, key: u64) {
        self.observe_in(stream, key, None, None);
    }

    /// Records that `stream` opened `key`, with its place in its folder and the time of the
    /// open (ms) when known: they feed the folder-order prior and the think time.
    pub fn observe_in(
        &mut self,
        stream: &str,
        key: u64,
        folder: Option<Folder>,
        t_ms: Option<u64>,
    ) {
        if self.recent.get(stream).and_then(|r| r.last()) != Some(&key) {
            if let Some(f) = folder {
                let kept = self.folders.entry(stream.to_string()).or_default();
                if let Some(i) = kept.iter().position(|k| k.dir == f.dir) {
                    let offset = kept[i].after.iter().position(|&k| k == key);
                    self.habits
                        .entry(stream.to_string())
                        .or_default()
                        .learn(offset);
                    kept.remove(i);
                }
                kept.insert(0, f);
                kept.truncate(FOLDERS_KEPT);
            }
            if let Some(t) = t_ms {
                // Gaps over 10 s are pauses, not the pace of browsing.
                match self.think.get_mut(stream) {
                    None => {
                        self.think.insert(stream.to_string(), (t, -1.0));
                    }
                    Some(e) => {
                        let gap = t.saturating_sub(e.0).min(10_000) as f32;
                        e.1 = if e.1 < 0.0 {
                            gap
                        } else {
                            0.7 * e.1 + 0.3 * gap
                        };
                        e.0 = t;
                    }
                }
            }
        }
        self.observed += 1;
        if self.all.last() != Some(&key) {
            self.global.learn(&self.all, key);
            push_bounded(&mut self.all, key);
        }
        let recent = self.recent.entry(stream.to_string()).or_default();
        if recent.last() == Some(&key) {
            return; // re-open of the same file: no transition
        }
        if let Some(&prev) = recent.last() {
            bump(self.succ.entry(prev).or_default(), key);
            self.last.insert(prev, key);
        }
        self.stream.learn(recent, key);
        push_bounded(recent, key);
    }

    /// The successor seen last time after `key`.
    pub fn last_successor(&self, key: u64) -> Option<u64> {
        self.last.get(&key).copied()
    }

    /// The most frequent successor of `key` (first-order Markov, top 1).
    pub fn markov_top(&self, key: u64) -> Option<Prediction> {
        self.markov(key).into_iter().next()
    }

    /// Successors of `key` by probability, highest first (ties: smaller key first).
    pub fn markov(&self, key: u64) -> Vec<Prediction> {
        let Some(row) = self.succ.get(&key) else {
            return Vec::new();
        };
        let total: f32 = row.values().sum();
        sorted(row.iter().map(|(&k, &c)| (k, c / total)).collect())
    }

    /// The smoothed gap between `stream`'s opens, ms (None before its second open).
    pub fn think_ms(&self, stream: &str) -> Option<f32> {
        self.think.get(stream).map(|e| e.1).filter(|&g| g >= 0.0)
    }

    /// Files likely to be opened within the next `depth` opens after `stream`'s latest open,
    /// with that probability, best first: the stream's own continuation, that of all opens,
    /// and the next files of its latest folder by the stream's folder-order habit, whichever
    /// is surest for each file. What is worth fetching is [`decide`]'s call.
    pub fn predict(&self, stream: &str, depth: usize) -> Vec<Prediction> {
        let mut out = HashMap::new();
        if let Some(h) = self.recent.get(stream) {
            self.stream.horizon(h, depth, &mut out);
        }
        self.global.horizon(&self.all, depth, &mut out);
        if let (Some(habit), Some(f)) = (
            self.habits.get(stream),
            self.folders.get(stream).and_then(|f| f.first()),
        ) {
            let cur = self.recent.get(stream).and_then(|r| r.last()).copied();
            for (&key, p) in f.after.iter().zip(habit.reach(depth)) {
                if p >= FLOOR_P && Some(key) != cur {
                    let e = out.entry(key).or_insert(0.0);
                    *e = e.max(p);
                }
            }
        }
        let mut v = sorted(out);
        v.truncate(MAX_CANDIDATES);
        v
    }

    /// Pairs (a → b) with their counts, most frequent first (for stats and planners).
    pub fn top_transitions(&self, n: usize) -> Vec<(u64, u64, f32)> {
        let mut v: Vec<(u64, u64, f32)> = self
            .succ
            .iter()
            .flat_map(|(&a, row)| row.iter().map(move |(&b, &c)| (a, b, c)))
            .collect();
        v.sort_by(|x, y| y.2.total_cmp(&x.2).then((x.0, x.1).cmp(&(y.0, y.1))));
        v.truncate(n);
        v
    }
}

/// A file taking less than this share of the chunk cache needs less confidence (see [`worth`]).
pub const CHEAP_SHARE: f32 = 1.0 / 32.0;

/// Whether a file of `bytes` opened soon with probability `p` is worth prefetching into a
/// chunk cache of `cache` bytes.
///
/// A hit is worth the same whatever the size, a wrong guess wastes its bytes and evicts as
/// much of the cache: a large file needs `min_p`, a file much smaller than [`SMALL_FILE`]
/// proportionally less (a few KiB of scripts a shell may run next are worth fetching at a few
/// percent each), and a file that is cheap next to the cache (under [`CHEAP_SHARE`] of it)
/// less again, by the square root of how cheap: the second and third guesses of a photo
/// viewer are worth fetching when a photo is a hundredth of the cache.
pub fn worth(p: f32, bytes: u64, min_p: f32, cache: u64) -> bool {
    let b = bytes as f32;
    let share = (b / (cache.max(1) as f32 * CHEAP_SHARE)).min(1.0);
    p >= min_p * b / (b + SMALL_FILE as f32) * share.sqrt()
}

/// Prefetched-but-unopened files may take at most 1 / BUDGET_SHARE of the chunk cache, whatever
/// `prefetch_budget_mb` says: beyond it they evict what the reader is using.
pub const BUDGET_SHARE: u64 = 2;

/// How many opens ahead a prefetch must be started to finish before its file is opened: a
/// fetch of `bytes` at `bandwidth` bytes/s, opens every `think_ms`, at least 1. A viewer
/// flicking through photos faster than one downloads needs the second and third next photo
/// on the way already.
pub fn lead(bytes: u64, bandwidth: f64, think_ms: f32) -> usize {
    let fetch_ms = bytes as f64 / bandwidth.max(1.0) * 1e3;
    let per = (think_ms as f64).max(1.0);
    1 + (fetch_ms / per).floor().min(16.0) as usize
}

/// What the cache holds of a predicted file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    /// Not in memory.
    No,
    /// In memory already (opened or prefetched and used).
    Cached,
    /// Prefetched and not opened yet.
    Prefetched,
}

/// A prediction with what fetching it would cost.
#[derive(Clone, Copy, Debug)]
pub struct Candidate {
    pub key: u64,
    pub p: f32,
    pub bytes: u64,
    pub held: Held,
}

/// The prefetcher's decision, shared by the daemon and the benchmark: the keys to fetch,
/// best first. A candidate is fetched if it is not held, [`worth`] its size, and the
/// predicted-but-unopened bytes (those already prefetched plus these) stay within `budget`.
/// Only prefetches the model still predicts count against the budget: one it has given up on
/// (the user skipped that photo) stays cached like any other chunk and is left to the cache's
/// eviction, instead of blocking the next guesses.
pub fn decide(cands: &[Candidate], min_p: f32, budget: u64, cache: u64) -> Vec<u64> {
    let mut held: u64 = cands
        .iter()
        .filter(|c| c.held == Held::Prefetched)
        .map(|c| c.bytes)
        .sum();
    let mut out = Vec::new();
    for c in cands {
        if c.held != Held::No || !worth(c.p, c.bytes, min_p, cache) || held + c.bytes > budget {
            continue;
        }
        held += c.bytes;
        out.push(c.key);
    }
    out
}

/// Adapts how far ahead the prefetcher looks from the fate of its recent prefetches: deeper
/// while most prefetched files get opened, shallower when they go to waste.
#[derive(Clone, Debug)]
pub struct Depth {
    pub depth: usize,
    pub max: usize,
    used: u32,
    wasted: u32,
}

impl Depth {
    pub fn new(max: usize) -> Self {
        Self {
            depth: 2.min(max.max(1)),
            max: max.max(1),
            used: 0,
            wasted: 0,
        }
    }

    pub fn outcome(&mut self, used: bool) {
        if used {
            self.used += 1
        } else {
            self.wasted += 1
        }
        if self.used + self.wasted >= 16 {
            let precision = self.used as f32 / (self.used + self.wasted) as f32;
            if precision >= 0.6 && self.depth < self.max {
                self.depth += 1;
            } else if precision < 0.3 && self.depth > 1 {
                self.depth -= 1;
            }
            self.used = 0;
            self.wasted = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(v: &[Prediction]) -> Vec<u64> {
        v.iter().map(|p| p.key).collect()
    }

    fn p_of(v: &[Prediction], key: u64) -> f32 {
        v.iter().find(|p| p.key == key).map_or(0.0, |p| p.p)
    }

    #[test]
    fn learns_a_chain_and_looks_ahead() {
        let mut m = Model::new();
        for _ in 0..3 {
            for k in [1, 2, 3, 4, 5] {
                m.observe("cat", k);
            }
        }
        assert_eq!(m.markov_top(1).unwrap().key, 2);
        assert_eq!(m.last_successor(5), Some(1));
        m.observe("cat", 1);
        m.observe("cat", 2);
        let p = m.predict("cat", 2);
        assert_eq!(keys(&p)[..2], [3, 4]);
        assert!(p[0].p > 0.9 && p[1].p > 0.8, "{p:?}");
    }

    #[test]
    fn streams_do_not_mix() {
        let mut m = Model::new();
        for _ in 0..4 {
            m.observe("a", 1);
            m.observe("b", 10);
            m.observe("a", 2);
            m.observe("b", 11);
        }
        assert_eq!(m.markov_top(1).unwrap().key, 2);
        assert_eq!(m.markov_top(10).unwrap().key, 11);
    }

    #[test]
    fn longer_context_picks_the_successor_first_order_cannot() {
        // A header (5) included from two sources: after 1 it is followed by 2, after 3 by 4.
        let mut m = Model::new();
        for _ in 0..4 {
            for k in [1, 5, 2, 3, 5, 4] {
                m.observe("cc1", k);
            }
        }
        let first = m.markov(5);
        assert_eq!(first.len(), 2);
        assert!(
            (first[0].p - 0.5).abs() < 0.01,
            "first order is a coin toss"
        );
        for (before, after) in [(1, 2), (3, 4)] {
            m.observe("cc1", before);
            m.observe("cc1", 5);
            let p = m.predict("cc1", 1);
            assert_eq!(p[0].key, after, "after {before}, 5: {p:?}");
            assert!(p[0].p > 0.9, "{p:?}");
            assert!(p_of(&p, 6 - after) < 0.1, "{p:?}");
        }
    }

    #[test]
    fn a_single_sighting_of_a_long_context_does_not_override() {
        // 7 → 8 four times; once, after 6, 7 → 9 (a one-off).
        let mut m = Model::new();
        for _ in 0..4 {
            for k in [1, 7, 8] {
                m.observe("s", k);
            }
        }
        for k in [6, 7, 9] {
            m.observe("s", k);
        }
        m.observe("s", 6);
        m.observe("s", 7);
        assert_eq!(m.predict("s", 1)[0].key, 8);
    }

    #[test]
    fn across_streams_the_next_program_is_predicted() {
        // make runs cc1 (opens 1, 2, 3) then as (opens 10, 11), over and over. Within the
        // cc1 stream, 3 is followed by the next cc1's 1; across streams by as's 10.
        let mut m = Model::new();
        for _ in 0..4 {
            for k in [1, 2, 3] {
                m.observe("cc1", k);
            }
            for k in [10, 11] {
                m.observe("as", k);
            }
        }
        for k in [1, 2, 3] {
            m.observe("cc1", k);
        }
        let p = m.predict("cc1", 2);
        assert!(p_of(&p, 10) > 0.9 && p_of(&p, 11) > 0.8, "{p:?}");
    }

    #[test]
    fn horizon_adds_up_paths() {
        // After 1 comes 2 or (skipping 2) 3, and 2 is followed by 3: 3 is opened within two
        // opens either way, 2 only half the time.
        let mut m = Model::new();
        for (i, next) in [2, 3, 2, 3].into_iter().enumerate() {
            let s = format!("s{i}");
            m.observe(&s, 1);
            m.observe(&s, next);
            if next == 2 {
                m.observe(&s, 3);
            }
            m.observe(&s, 4);
        }
        m.observe("x", 1);
        let p = m.predict("x", 2);
        assert!(p_of(&p, 3) > 0.8, "{p:?}");
        assert!(p_of(&p, 2) < 0.5, "{p:?}");
    }

    #[test]
    fn small_files_need_less_confidence() {
        let big = 1 << 40;
        assert!(worth(0.05, 2 << 10, 0.6, big));
        assert!(!worth(0.05, 4 << 20, 0.6, 128 << 20));
        assert!(!worth(0.5, 4 << 20, 0.6, 128 << 20));
        assert!(worth(0.61, 4 << 20, 0.6, 128 << 20));
        // A 1 MiB photo is cheap next to a 4 GiB cache, dear next to a 32 MiB one.
        assert!(worth(0.3, 1 << 20, 0.6, 4 << 30));
        assert!(!worth(0.3, 1 << 20, 0.6, 32 << 20));
    }

    #[test]
    fn folder_order_predicts_the_next_files_of_a_new_folder() {
        // A viewer going through folder 100 (files 1..=20) mostly in order, skipping one now
        // and then; then it opens the first file of folder 200, never seen before.
        let folder = |dir: u64, files: &[u64], key: u64| {
            let i = files.iter().position(|&k| k == key).unwrap();
            Some(Folder {
                dir,
                after: files[i + 1..].iter().take(FOLDER_SPAN).copied().collect(),
            })
        };
        let a: Vec<u64> = (1..=20).collect();
        let b: Vec<u64> = (101..=120).collect();
        let mut m = Model::new();
        for k in [1, 2, 3, 4, 6, 7, 8, 9, 10, 9, 10, 11, 12, 14, 15, 16] {
            m.observe_in("eog", k, folder(100, &a, k), None);
        }
        m.observe_in("eog", 101, folder(200, &b, 101), None);
        let p = m.predict("eog", 2);
        assert_eq!(keys(&p)[..2], [102, 103], "{p:?}");
        assert!(p_of(&p, 102) > 0.6, "{p:?}");
        assert!(p_of(&p, 103) > 0.5, "{p:?}");
        // A stream that opens files of a folder in no order gets no folder prior.
        let mut m = Model::new();
        for k in [5, 1, 19, 7, 3, 12, 2, 16, 9, 14, 4, 11] {
            m.observe_in("cc1", k, folder(100, &a, k), None);
        }
        m.observe_in("cc1", 101, folder(200, &b, 101), None);
        let p = m.predict("cc1", 2);
        assert!(p_of(&p, 102) < 0.2, "{p:?}");
        // A viewer that goes through folder 100 in order, then through folder 200 at
        // random: within about a dozen opens the prior stops predicting the next file.
        let mut m = Model::new();
        for k in 1..=20 {
            m.observe_in("eog", k, folder(100, &a, k), None);
        }
        for k in [111, 103, 119, 107, 101, 115, 105, 113, 109, 117, 102, 120] {
            m.observe_in("eog", k, folder(200, &b, k), None);
        }
        let after_102 = folder(200, &b, 102).unwrap().after;
        m.observe_in("eog", 102, folder(200, &b, 102), None);
        let p = m.predict("eog", 1);
        assert!(p_of(&p, after_102[0]) < 0.35, "{p:?}");
    }

    #[test]
    fn lead_grows_when_fetching_is_slower_than_browsing() {
        // 2 MiB at 20 MiB/s = 100 ms.
        assert_eq!(lead(2 << 20, 20.0 * 1048576.0, 500.0), 1);
        assert_eq!(lead(2 << 20, 20.0 * 1048576.0, 40.0), 3);
        assert_eq!(lead(2 << 20, 20.0 * 1048576.0, 0.0), 17);
    }

    #[test]
    fn think_time_is_smoothed_per_stream() {
        let mut m = Model::new();
        for (i, t) in [0, 100, 200, 300, 400].into_iter().enumerate() {
            m.observe_in("a", i as u64, None, Some(t));
        }
        assert!((m.think_ms("a").unwrap() - 100.0).abs() < 1.0);
        assert_eq!(m.think_ms("b"), None);
    }

    #[test]
    fn decide_skips_held_files_and_keeps_to_the_budget() {
        let c = |key, p, bytes, held| Candidate {
            key,
            p,
            bytes,
            held,
        };
        let cands = [
            c(1, 0.95, 600, Held::Prefetched),
            c(2, 0.9, 1_000_000, Held::Cached),
            c(3, 0.9, 300, Held::No),
            c(4, 0.8, 300, Held::No),
            c(5, 0.3, 100, Held::No),
        ];
        // 600 bytes are already out on a guess; 300 more fit in 1000, 600 more do not.
        assert_eq!(decide(&cands, 0.6, 1000, 1 << 30), vec![3, 5]);
        assert_eq!(decide(&cands, 0.6, 10_000, 1 << 30), vec![3, 4, 5]);
    }

    #[test]
    fn depth_adapts() {
        let mut d = Depth::new(4);
        for _ in 0..16 {
            d.outcome(true);
        }
        assert_eq!(d.depth, 3);
        for _ in 0..32 {
            d.outcome(false);
        }
        assert_eq!(d.depth, 1);
    }
}

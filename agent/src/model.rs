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
    pub observed: u64,
}

impl Model {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `stream` opened `key`.
    pub fn observe(&mut self, stream: &str, key: u64) {
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

    /// Files likely to be opened within the next `depth` opens after `stream`'s latest open,
    /// with that probability, best first: the stream's own continuation and that of all
    /// opens, whichever is surer for each file. What is worth fetching is [`decide`]'s call.
    pub fn predict(&self, stream: &str, depth: usize) -> Vec<Prediction> {
        let mut out = HashMap::new();
        if let Some(h) = self.recent.get(stream) {
            self.stream.horizon(h, depth, &mut out);
        }
        self.global.horizon(&self.all, depth, &mut out);
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

/// Whether a file of `bytes` opened soon with probability `p` is worth prefetching.
///
/// A hit is worth the same whatever the size, a wrong guess wastes its bytes: a large file
/// needs `min_p`, a file much smaller than [`SMALL_FILE`] proportionally less (a few KiB of
/// scripts a shell may run next are worth fetching at a few percent each).
pub fn worth(p: f32, bytes: u64, min_p: f32) -> bool {
    let b = bytes as f32;
    p >= min_p * b / (b + SMALL_FILE as f32)
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
pub fn decide(cands: &[Candidate], min_p: f32, budget: u64) -> Vec<u64> {
    let mut held: u64 = cands
        .iter()
        .filter(|c| c.held == Held::Prefetched)
        .map(|c| c.bytes)
        .sum();
    let mut out = Vec::new();
    for c in cands {
        if c.held != Held::No || !worth(c.p, c.bytes, min_p) || held + c.bytes > budget {
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
        assert!(worth(0.05, 2 << 10, 0.6));
        assert!(!worth(0.05, 4 << 20, 0.6));
        assert!(!worth(0.5, 4 << 20, 0.6));
        assert!(worth(0.61, 4 << 20, 0.6));
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
        assert_eq!(decide(&cands, 0.6, 1000), vec![3, 5]);
        assert_eq!(decide(&cands, 0.6, 10_000), vec![3, 4, 5]);
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

//! Access patterns: a first-order successor graph (Markov chain) per process stream plus
//! co-access windows, and the predictions the prefetcher acts on.
//!
//! Pure and deterministic (no I/O), so the benchmark in `perfs/agent` replays traces through
//! exactly the code the daemon runs.
//!
//! Keys are inode numbers in the daemon and file ids in the benchmark. Successors are counted
//! per *stream* (the process name): a build's compiler and a music player interleave, and a
//! chain per process keeps their patterns apart.

use std::collections::HashMap;

/// How many later opens count as "co-accessed" with an open.
pub const WINDOW: usize = 4;

#[derive(Default, Clone)]
pub struct Model {
    /// key → successor → count (first order, per stream).
    succ: HashMap<u64, HashMap<u64, f32>>,
    /// key → the successor seen last time (the "last successor" predictor).
    last: HashMap<u64, u64>,
    /// key → files opened within the next WINDOW opens of the same stream → count.
    co: HashMap<u64, HashMap<u64, f32>>,
    /// Recent opens per stream (newest last), at most WINDOW.
    recent: HashMap<String, Vec<u64>>,
    pub observed: u64,
}

/// A predicted next file with a confidence in 0..1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prediction {
    pub key: u64,
    pub p: f32,
}

/// Counts above this are halved so old habits fade.
const DECAY_AT: f32 = 64.0;

impl Model {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `stream` opened `key`.
    pub fn observe(&mut self, stream: &str, key: u64) {
        self.observed += 1;
        let recent = self.recent.entry(stream.to_string()).or_default();
        if recent.last() == Some(&key) {
            return; // re-open of the same file: no transition
        }
        if let Some(&prev) = recent.last() {
            let row = self.succ.entry(prev).or_default();
            *row.entry(key).or_insert(0.0) += 1.0;
            if row.values().any(|&c| c > DECAY_AT) {
                row.values_mut().for_each(|c| *c /= 2.0);
                row.retain(|_, c| *c >= 0.5);
            }
            self.last.insert(prev, key);
        }
        for (dist, &k) in recent.iter().rev().enumerate() {
            if k == key {
                continue;
            }
            let row = self.co.entry(k).or_default();
            *row.entry(key).or_insert(0.0) += 1.0 / (dist + 1) as f32;
            if row.values().any(|&c| c > DECAY_AT) {
                row.values_mut().for_each(|c| *c /= 2.0);
                row.retain(|_, c| *c >= 0.25);
            }
        }
        recent.push(key);
        if recent.len() > WINDOW {
            recent.remove(0);
        }
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
        let mut v: Vec<Prediction> = row
            .iter()
            .map(|(&k, &c)| Prediction {
                key: k,
                p: c / total,
            })
            .collect();
        v.sort_by(|a, b| b.p.total_cmp(&a.p).then(a.key.cmp(&b.key)));
        v
    }

    /// What the prefetcher fetches after an open of `key`: the Markov chain followed
    /// `depth` steps ahead (each step's probability multiplied along the path), plus
    /// strongly co-accessed files, keeping candidates whose confidence reaches `min_p`.
    /// At most `depth` candidates, best first.
    pub fn predict(&self, key: u64, depth: usize, min_p: f32) -> Vec<Prediction> {
        let mut scores: HashMap<u64, f32> = HashMap::new();
        // Chain: best path probability to each file within `depth` steps (beam of 3).
        let mut frontier = vec![(key, 1.0f32)];
        for _ in 0..depth.max(1) {
            let mut next = Vec::new();
            for &(k, p) in &frontier {
                for pr in self.markov(k).into_iter().take(3) {
                    let q = p * pr.p;
                    if q < min_p || pr.key == key {
                        continue;
                    }
                    let e = scores.entry(pr.key).or_insert(0.0);
                    if q > *e {
                        *e = q;
                        next.push((pr.key, q));
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            frontier = next;
        }
        // Co-access: files opened shortly after `key` (any order within the window), weighted
        // by how often, relative to how often `key` led anywhere.
        if let Some(row) = self.co.get(&key) {
            let total: f32 = self
                .succ
                .get(&key)
                .map(|r| r.values().sum())
                .unwrap_or(0.0)
                .max(1.0);
            for (&k, &c) in row {
                let q = (c / total).min(1.0) * 0.5;
                if q >= min_p && k != key {
                    let e = scores.entry(k).or_insert(0.0);
                    *e = e.max(q);
                }
            }
        }
        let mut v: Vec<Prediction> = scores
            .into_iter()
            .map(|(key, p)| Prediction { key, p })
            .collect();
        v.sort_by(|a, b| b.p.total_cmp(&a.p).then(a.key.cmp(&b.key)));
        v.truncate(depth.max(1));
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
        let p: Vec<u64> = m.predict(2, 2, 0.2).iter().map(|p| p.key).collect();
        assert_eq!(p, vec![3, 4]);
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

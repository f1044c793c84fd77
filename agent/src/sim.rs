//! Trace replay for the prefetch benchmark (`perfs/agent`): an LRU cache of first chunks and
//! the predictors compared against each other. Deterministic; prefetches complete before the
//! next open (the benchmark reports bytes and hit rates, not timing).

use std::collections::{HashMap, VecDeque};

use crate::model::{decide, worth, Candidate, Depth, Held, Model};

/// One open in a trace.
#[derive(Clone, Debug)]
pub struct Open {
    pub stream: String,
    pub key: u64,
    /// Bytes the first chunk(s) occupy (file size capped at the prefetch size).
    pub bytes: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Nothing kept between opens.
    NoCache,
    /// Demand-filled LRU, no prefetch.
    Lru,
    /// LRU + prefetch the file that followed last time.
    LastSuccessor,
    /// LRU + prefetch the most frequent successor (first-order Markov).
    Markov,
    /// LRU + the agent's prefetcher (variable-order contexts per stream and across
    /// streams, look-ahead, size-aware confidence threshold, adaptive depth, budget).
    Peros,
}

impl Strategy {
    pub const ALL: [Strategy; 5] = [
        Strategy::NoCache,
        Strategy::Lru,
        Strategy::LastSuccessor,
        Strategy::Markov,
        Strategy::Peros,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Strategy::NoCache => "no cache",
            Strategy::Lru => "LRU alone",
            Strategy::LastSuccessor => "LRU + last successor",
            Strategy::Markov => "LRU + Markov (1st order)",
            Strategy::Peros => "LRU + PerOS prefetcher",
        }
    }
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SimResult {
    pub opens: u64,
    pub hits: u64,
    pub prefetch_hits: u64,
    pub prefetched_bytes: u64,
    pub wasted_bytes: u64,
    pub fetched_bytes: u64,
}

impl SimResult {
    pub fn hit_rate(&self) -> f64 {
        if self.opens == 0 {
            0.0
        } else {
            self.hits as f64 / self.opens as f64
        }
    }
}

/// Settings of the PerOS prefetcher in the simulation (the daemon uses the same values
/// from `[agent]`).
#[derive(Clone, Copy, Debug)]
pub struct PerosParams {
    pub max_depth: usize,
    /// Confidence a large file needs (see `model::worth`).
    pub min_p: f32,
    /// Prefetched-but-unused bytes of the current predictions allowed at once.
    pub budget: u64,
}

struct Lru {
    cap: u64,
    used: u64,
    order: VecDeque<u64>,
    /// key → (bytes, prefetched and not yet used)
    items: HashMap<u64, (u64, bool)>,
}

impl Lru {
    fn touch(&mut self, key: u64) {
        if let Some(pos) = self.order.iter().position(|&k| k == key) {
            self.order.remove(pos);
        }
        self.order.push_back(key);
    }
    /// Inserts; returns wasted bytes of evicted unused prefetches.
    fn insert(&mut self, key: u64, bytes: u64, prefetched: bool) -> u64 {
        let mut wasted = 0;
        while self.used + bytes > self.cap {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some((b, pf)) = self.items.remove(&old) {
                self.used -= b;
                if pf {
                    wasted += b;
                }
            }
        }
        if bytes > self.cap {
            return wasted + if prefetched { bytes } else { 0 };
        }
        self.items.insert(key, (bytes, prefetched));
        self.used += bytes;
        self.touch(key);
        wasted
    }
}

/// Replays `trace` with a cache of `cache_bytes`.
pub fn replay(trace: &[Open], strategy: Strategy, cache_bytes: u64, p: PerosParams) -> SimResult {
    let mut r = SimResult::default();
    let mut cache = Lru {
        cap: if strategy == Strategy::NoCache {
            0
        } else {
            cache_bytes
        },
        used: 0,
        order: VecDeque::new(),
        items: HashMap::new(),
    };
    let sizes: HashMap<u64, u64> = trace.iter().map(|o| (o.key, o.bytes)).collect();
    let mut model = Model::new();
    let mut depth = Depth::new(p.max_depth);
    for o in trace {
        r.opens += 1;
        match cache.items.get_mut(&o.key) {
            Some((_, pf)) => {
                r.hits += 1;
                if *pf {
                    *pf = false;
                    r.prefetch_hits += 1;
                    if strategy == Strategy::Peros {
                        depth.outcome(true);
                    }
                }
                cache.touch(o.key);
            }
            None => {
                r.fetched_bytes += o.bytes;
                let w = cache.insert(o.key, o.bytes, false);
                r.wasted_bytes += w;
                if strategy == Strategy::Peros && w > 0 {
                    depth.outcome(false);
                }
            }
        }
        model.observe(&o.stream, o.key);
        let fetch: Vec<u64> = match strategy {
            Strategy::NoCache | Strategy::Lru => Vec::new(),
            Strategy::LastSuccessor => model.last_successor(o.key).into_iter().collect(),
            Strategy::Markov => model.markov_top(o.key).map(|p| p.key).into_iter().collect(),
            Strategy::Peros => {
                let cands: Vec<Candidate> = model
                    .predict(&o.stream, depth.depth)
                    .into_iter()
                    .map(|pr| {
                        let bytes = sizes.get(&pr.key).copied().unwrap_or(0);
                        let held = match cache.items.get(&pr.key) {
                            None => Held::No,
                            Some((_, true)) => Held::Prefetched,
                            Some((_, false)) => Held::Cached,
                        };
                        Candidate {
                            key: pr.key,
                            p: pr.p,
                            bytes,
                            held,
                        }
                    })
                    .collect();
                // Files it would fetch if they were not held are kept fresh, as the
                // baselines keep their prediction fresh.
                for c in &cands {
                    if c.held != Held::No && worth(c.p, c.bytes, p.min_p) {
                        cache.touch(c.key);
                    }
                }
                decide(&cands, p.min_p, p.budget)
            }
        };
        for k in fetch {
            if cache.items.contains_key(&k) {
                cache.touch(k);
                continue;
            }
            let bytes = sizes.get(&k).copied().unwrap_or(0);
            r.prefetched_bytes += bytes;
            r.fetched_bytes += bytes;
            let w = cache.insert(k, bytes, true);
            r.wasted_bytes += w;
            if strategy == Strategy::Peros && w > 0 {
                depth.outcome(false);
            }
        }
    }
    // Prefetched and never used by the end of the trace: wasted.
    r.wasted_bytes += cache
        .items
        .values()
        .filter(|(_, pf)| *pf)
        .map(|(b, _)| *b)
        .sum::<u64>();
    r
}

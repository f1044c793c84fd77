//! Trace replay for the prefetch benchmark (`perfs/agent`): an LRU cache of first chunks and
//! the predictors compared against each other, with or without a model of fetch time.
//!
//! Without [`SimParams::bandwidth`] every prefetch completes before the next open (the
//! benchmark reports bytes and hit rates, not timing). With it, a fetch of `b` bytes takes
//! `b / bandwidth` on one of [`SimParams::workers`] fetchers, the reader follows the trace's
//! gaps between opens and waits for its own misses, and an open that finds its prefetch still
//! downloading is an *in-flight hit*: the prediction was right, the open waited for the rest
//! of the download; it is counted apart, never as a hit — as the daemon counts it.

use std::collections::{HashMap, VecDeque};

use crate::model::{decide, lead, worth, Candidate, Depth, Folder, Held, Model};

/// One open in a trace.
#[derive(Clone, Debug)]
pub struct Open {
    pub stream: String,
    pub key: u64,
    /// Bytes the first chunk(s) occupy (file size capped at the prefetch size).
    pub bytes: u64,
    /// The file's directory and the files after it there in name order, when known.
    pub folder: Option<Folder>,
    /// Time of the open in the trace, ms (0 when the trace has no times).
    pub t_ms: u64,
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
    /// LRU + prefetch the two most frequent successors (first-order Markov, top 2).
    Markov2,
    /// LRU + the agent's prefetcher (variable-order contexts per stream and across
    /// streams, folder-order prior, look-ahead, size- and cache-aware confidence threshold,
    /// adaptive depth, budget).
    Peros,
}

impl Strategy {
    pub const ALL: [Strategy; 6] = [
        Strategy::NoCache,
        Strategy::Lru,
        Strategy::LastSuccessor,
        Strategy::Markov,
        Strategy::Markov2,
        Strategy::Peros,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Strategy::NoCache => "no cache",
            Strategy::Lru => "LRU alone",
            Strategy::LastSuccessor => "LRU + last successor",
            Strategy::Markov => "LRU + Markov (1st order)",
            Strategy::Markov2 => "LRU + Markov top-2",
            Strategy::Peros => "LRU + PerOS prefetcher",
        }
    }
}

/// Counts over the measured opens (those from [`SimParams::measure_from`] on); prefetches
/// count by the open that issued them.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SimResult {
    pub opens: u64,
    /// Opens whose first chunk was in the cache, complete.
    pub hits: u64,
    /// Hits on prefetched files.
    pub prefetch_hits: u64,
    /// Opens of a file whose prefetch was still downloading (not counted in `hits`).
    pub inflight_hits: u64,
    pub prefetched_bytes: u64,
    /// Prefetched bytes evicted before their file was opened, or never opened.
    pub wasted_bytes: u64,
    pub fetched_bytes: u64,
    /// Time the reader waited for data (misses and in-flight hits), ms; 0 without a bandwidth.
    pub wait_ms: f64,
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

/// How the replay runs.
#[derive(Clone, Copy, Debug)]
pub struct SimParams {
    pub cache_bytes: u64,
    pub peros: PerosParams,
    /// Backend bandwidth, bytes/s; None: fetches take no time.
    pub bandwidth: Option<f64>,
    /// Concurrent prefetches (the daemon runs 4 fetchers).
    pub workers: usize,
    /// Opens before this index warm the cache and the model but are not counted.
    pub measure_from: usize,
}

#[derive(Clone, Copy)]
struct Item {
    bytes: u64,
    /// Prefetched and not opened yet; the index of the open that issued it.
    prefetched_by: Option<usize>,
    /// When its download completes (ms).
    ready: f64,
}

struct Lru {
    cap: u64,
    used: u64,
    order: VecDeque<u64>,
    items: HashMap<u64, Item>,
}

impl Lru {
    fn touch(&mut self, key: u64) {
        if let Some(pos) = self.order.iter().position(|&k| k == key) {
            self.order.remove(pos);
        }
        self.order.push_back(key);
    }
    /// Inserts; returns the evicted unused prefetches (issuer, bytes).
    fn insert(&mut self, key: u64, item: Item) -> Vec<(usize, u64)> {
        let mut wasted = Vec::new();
        while self.used + item.bytes > self.cap {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(it) = self.items.remove(&old) {
                self.used -= it.bytes;
                if let Some(by) = it.prefetched_by {
                    wasted.push((by, it.bytes));
                }
            }
        }
        if item.bytes > self.cap {
            if let Some(by) = item.prefetched_by {
                wasted.push((by, item.bytes));
            }
            return wasted;
        }
        self.items.insert(key, item);
        self.used += item.bytes;
        self.touch(key);
        wasted
    }
}

/// Replays `trace` with the cache and timing of `sp`.
pub fn replay(trace: &[Open], strategy: Strategy, sp: SimParams) -> SimResult {
    let p = sp.peros;
    let mut r = SimResult::default();
    let mut cache = Lru {
        cap: if strategy == Strategy::NoCache {
            0
        } else {
            sp.cache_bytes
        },
        used: 0,
        order: VecDeque::new(),
        items: HashMap::new(),
    };
    let sizes: HashMap<u64, u64> = trace.iter().map(|o| (o.key, o.bytes)).collect();
    let fetch_ms = |bytes: u64| sp.bandwidth.map_or(0.0, |bw| bytes as f64 / bw * 1e3);
    let mut model = Model::new();
    let mut depth = Depth::new(p.max_depth);
    let mut free = vec![0f64; sp.workers.max(1)];
    let mut now = 0f64;
    let mut prev_t = trace.first().map_or(0, |o| o.t_ms);
    let waste = |r: &mut SimResult, depth: &mut Depth, w: Vec<(usize, u64)>| {
        for (by, b) in w {
            if by >= sp.measure_from {
                r.wasted_bytes += b;
            }
            if strategy == Strategy::Peros {
                depth.outcome(false);
            }
        }
    };
    for (i, o) in trace.iter().enumerate() {
        let counted = i >= sp.measure_from;
        now += o.t_ms.saturating_sub(prev_t) as f64;
        prev_t = o.t_ms;
        let mut c = SimResult {
            opens: 1,
            ..Default::default()
        };
        match cache.items.get_mut(&o.key) {
            Some(it) => {
                if it.ready > now {
                    c.inflight_hits = 1;
                    c.wait_ms = it.ready - now;
                    now = it.ready;
                } else {
                    c.hits = 1;
                }
                if it.prefetched_by.take().is_some() {
                    c.prefetch_hits = c.hits;
                    if strategy == Strategy::Peros {
                        depth.outcome(true);
                    }
                }
                cache.touch(o.key);
            }
            None => {
                c.fetched_bytes = o.bytes;
                c.wait_ms = fetch_ms(o.bytes);
                now += c.wait_ms;
                let w = cache.insert(
                    o.key,
                    Item {
                        bytes: o.bytes,
                        prefetched_by: None,
                        ready: now,
                    },
                );
                waste(&mut r, &mut depth, w);
            }
        }
        if counted {
            r.opens += c.opens;
            r.hits += c.hits;
            r.prefetch_hits += c.prefetch_hits;
            r.inflight_hits += c.inflight_hits;
            r.fetched_bytes += c.fetched_bytes;
            r.wait_ms += c.wait_ms;
        }
        model.observe_in(&o.stream, o.key, o.folder.clone(), Some(o.t_ms));
        let fetch: Vec<u64> = match strategy {
            Strategy::NoCache | Strategy::Lru => Vec::new(),
            Strategy::LastSuccessor => model.last_successor(o.key).into_iter().collect(),
            Strategy::Markov => model.markov_top(o.key).map(|p| p.key).into_iter().collect(),
            Strategy::Markov2 => model.markov(o.key).iter().take(2).map(|p| p.key).collect(),
            Strategy::Peros => {
                // As far ahead as fetching in time needs, no further than the precision of
                // recent prefetches allows (the daemon's rule).
                let d = match (sp.bandwidth, model.think_ms(&o.stream)) {
                    (Some(bw), Some(think)) => lead(o.bytes, bw, think).min(depth.depth),
                    _ => depth.depth,
                };
                let cands: Vec<Candidate> = model
                    .predict(&o.stream, d)
                    .into_iter()
                    .map(|pr| {
                        let bytes = sizes.get(&pr.key).copied().unwrap_or(0);
                        let held = match cache.items.get(&pr.key) {
                            None => Held::No,
                            Some(it) if it.prefetched_by.is_some() => Held::Prefetched,
                            Some(_) => Held::Cached,
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
                    if c.held != Held::No && worth(c.p, c.bytes, p.min_p, sp.cache_bytes) {
                        cache.touch(c.key);
                    }
                }
                decide(&cands, p.min_p, p.budget, sp.cache_bytes)
            }
        };
        for k in fetch {
            if k == o.key {
                continue;
            }
            if cache.items.contains_key(&k) {
                cache.touch(k);
                continue;
            }
            let bytes = sizes.get(&k).copied().unwrap_or(0);
            if counted {
                r.prefetched_bytes += bytes;
                r.fetched_bytes += bytes;
            }
            let w = free
                .iter_mut()
                .min_by(|a, b| a.total_cmp(b))
                .expect("at least one worker");
            *w = w.max(now) + fetch_ms(bytes);
            let ready = *w;
            let ev = cache.insert(
                k,
                Item {
                    bytes,
                    prefetched_by: Some(i),
                    ready,
                },
            );
            waste(&mut r, &mut depth, ev);
        }
    }
    // Prefetched and never used by the end of the trace: wasted.
    r.wasted_bytes += cache
        .items
        .values()
        .filter(|it| it.prefetched_by.is_some_and(|by| by >= sp.measure_from))
        .map(|it| it.bytes)
        .sum::<u64>();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(bandwidth: Option<f64>) -> SimParams {
        SimParams {
            // 4 of the 20 photos: the second pass finds only what was prefetched.
            cache_bytes: 4 << 20,
            peros: PerosParams {
                max_depth: 4,
                min_p: 0.6,
                budget: 16 << 20,
            },
            bandwidth,
            workers: 1,
            measure_from: 0,
        }
    }

    /// A folder of 1 MiB photos browsed in order twice, `gap` ms between opens.
    fn browse(gap: u64) -> Vec<Open> {
        let files: Vec<u64> = (0..20).collect();
        (0..40)
            .map(|i| {
                let k = i % 20;
                Open {
                    stream: "eog".into(),
                    key: k,
                    bytes: 1 << 20,
                    folder: Some(Folder {
                        dir: 1,
                        after: files[k as usize + 1..].iter().take(8).copied().collect(),
                    }),
                    t_ms: i * gap,
                }
            })
            .collect()
    }

    #[test]
    fn without_time_a_learned_successor_is_always_ready() {
        let r = replay(&browse(0), Strategy::Markov, params(None));
        assert_eq!(r.inflight_hits, 0);
        assert!(r.hits >= 19, "{r:?}");
    }

    #[test]
    fn a_prefetch_slower_than_the_reader_is_an_inflight_hit_not_a_hit() {
        // 1 MiB at 10 MiB/s = 100 ms, opens every 20 ms: Markov's one-ahead guess is still
        // downloading at every open of the second pass.
        let bw = Some(10.0 * 1048576.0);
        let m = replay(&browse(20), Strategy::Markov, params(bw));
        assert!(m.inflight_hits >= 15, "{m:?}");
        assert!(m.hits <= 2, "{m:?}");
        assert!(m.wait_ms > 0.0);
        // With 100 ms between opens every guess is in time.
        let m = replay(&browse(150), Strategy::Markov, params(bw));
        assert!(m.hits >= 19 && m.inflight_hits == 0, "{m:?}");
    }
}

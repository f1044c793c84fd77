//! The agent inside the daemon: drains access events from the mount, keeps the access log
//! and the patterns, and prefetches — all on its own threads, never in a FUSE callback.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use peros_store::access::{AccessEvent, AccessKind, AccessSink};
use peros_store::{Ino, Store};
use serde::{Deserialize, Serialize};

use crate::log::{self, AccessLog, Record};
use crate::model::{
    decide, lead, Candidate, Depth, Folder, Held, Model, BUDGET_SHARE, FOLDER_SPAN,
};
use crate::policy::{AgentConfig, Policy};

/// Prefetched files not opened within this long count as wasted.
const PREFETCH_EXPIRY: Duration = Duration::from_secs(300);
const QUEUE: usize = 8192;
/// Prefetches in flight at once.
const PREFETCH_WORKERS: usize = 4;
/// How long a folder's listing is reused for the folder-order prior.
const LISTING_TTL: Duration = Duration::from_secs(5);
/// Folder listings kept.
const LISTINGS_KEPT: usize = 256;

/// Prefetch and event counters (`peros agent stats`).
#[derive(Default, Serialize, Deserialize, Clone, Debug)]
#[serde(default)]
pub struct PrefetchStats {
    /// Opens of regular files seen.
    pub opens: u64,
    /// Opens whose first chunk was already decrypted in memory.
    pub hits: u64,
    pub misses: u64,
    /// Hits on files the prefetcher had warmed.
    pub prefetch_hits: u64,
    pub prefetched_files: u64,
    pub prefetched_bytes: u64,
    /// Prefetched bytes never used (expired or the file was opened after eviction).
    pub wasted_bytes: u64,
    /// Opens of a predicted file while its prefetch was still downloading: the prediction
    /// was right and the open joined that download (waiting for the rest of it), but it is
    /// not counted in `hits`.
    #[serde(alias = "late_prefetches")]
    pub inflight_hits: u64,
    /// Bytes prefetched and not opened yet (neither used nor wasted so far).
    pub outstanding_bytes: u64,
    /// The backend bandwidth the horizon assumes, bytes/s (measured on prefetches).
    pub bandwidth: u64,
    /// Events dropped because the queue was full (the mount never waits for the agent).
    pub dropped_events: u64,
    pub depth: usize,
}

/// What the agent thread receives, in order.
enum Msg {
    /// An event from the mount, with the opener's process name (for opens).
    Event(AccessEvent, [u8; 16]),
    /// Write out everything received before this message, then answer.
    Flush(SyncSender<()>),
}

struct Sink {
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
}

impl AccessSink for Sink {
    fn record(&self, ev: AccessEvent) {
        let mut comm = [0u8; 16];
        if ev.kind == AccessKind::Open && ev.pid != 0 {
            // procfs, in memory: microseconds. The process may be gone by the time the agent
            // thread looks, so the name is taken here.
            if let Ok(mut f) = std::fs::File::open(format!("/proc/{}/comm", ev.pid)) {
                let _ = f.read(&mut comm);
            }
        }
        if let Err(TrySendError::Full(_)) = self.tx.try_send(Msg::Event(ev, comm)) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn comm_name(c: &[u8; 16]) -> String {
    let end = c
        .iter()
        .position(|&b| b == 0 || b == b'\n')
        .unwrap_or(c.len());
    let s = String::from_utf8_lossy(&c[..end]).into_owned();
    if s.is_empty() {
        "?".into()
    } else {
        s
    }
}

struct State {
    model: Model,
    depth: Depth,
    stats: PrefetchStats,
    /// ino → (bytes warmed, when)
    prefetched: HashMap<Ino, (u64, Instant)>,
    /// ino → (path, process, bytes read) of open handles
    open: HashMap<Ino, (String, String, u64)>,
    pending: Vec<Record>,
    /// dir → its regular files in name order, when listed (for the folder-order prior).
    listings: HashMap<Ino, (Arc<Vec<Ino>>, Instant)>,
    /// Token bucket for prefetch bandwidth.
    tokens: f64,
    refilled: Instant,
}

/// The running agent.
pub struct Agent {
    store: Arc<Store>,
    pub dir: PathBuf,
    cfg: AgentConfig,
    policy: Policy,
    state: Mutex<State>,
    dropped: Arc<AtomicU64>,
    prefetch_tx: SyncSender<(Ino, usize)>,
    stop: std::sync::atomic::AtomicBool,
    /// Prefetched files not opened yet → when their fetch finished (ms since the epoch;
    /// None while queued or downloading): tells a late prefetch from a wasted one.
    inflight: Arc<Mutex<HashMap<Ino, Option<u64>>>>,
    /// Measured prefetch bandwidth, bytes/s (smoothed).
    bandwidth: Arc<AtomicU64>,
    /// Searches to log, apart from `state`: they are recorded from FUSE callbacks, which must
    /// not wait while the agent thread holds `state`.
    searches: Mutex<Vec<Record>>,
    /// The agent thread's queue, for [`Agent::flush`] (the mount's sink holds another sender).
    tx: SyncSender<Msg>,
}

impl Agent {
    /// Starts the agent threads and returns the sink to give the mount.
    pub fn start(
        store: Arc<Store>,
        dir: &Path,
        cfg: AgentConfig,
    ) -> std::io::Result<(Arc<Self>, Arc<dyn AccessSink>)> {
        crate::private_dir(dir)?;
        let mut model = Model::new();
        for r in log::read_all(dir) {
            if r.ev == "open" {
                model.observe(&r.proc, r.ino);
            }
        }
        let (tx, rx) = sync_channel(QUEUE);
        let (ptx, prx) = sync_channel::<(Ino, usize)>(256);
        let dropped = Arc::new(AtomicU64::new(0));
        let mut stats = PrefetchStats::default();
        if let Ok(text) = std::fs::read_to_string(dir.join("prefetch.json")) {
            stats = serde_json::from_str(&text).unwrap_or_default();
        }
        // Until prefetches have been timed, assume the configured prefetch bandwidth.
        let bw0 = cfg.prefetch_bandwidth_mb_s.max(1) << 20;
        let agent = Arc::new(Self {
            store: store.clone(),
            dir: dir.to_path_buf(),
            policy: Policy::from_config(&cfg),
            state: Mutex::new(State {
                model,
                depth: Depth::new(cfg.prefetch_max_depth),
                stats,
                prefetched: HashMap::new(),
                open: HashMap::new(),
                pending: Vec::new(),
                listings: HashMap::new(),
                tokens: 0.0,
                refilled: Instant::now(),
            }),
            cfg,
            dropped: dropped.clone(),
            prefetch_tx: ptx,
            stop: Default::default(),
            searches: Mutex::new(Vec::new()),
            inflight: Default::default(),
            bandwidth: Arc::new(AtomicU64::new(bw0)),
            tx: tx.clone(),
        });
        let mut log = AccessLog::open(dir, agent.cfg.log_max_mb.max(1) << 20)?;
        {
            let agent = agent.clone();
            std::thread::Builder::new()
                .name("peros-agent".into())
                .spawn(move || {
                    // Learning from accesses must not slow the accesses: the FUSE threads,
                    // which only queue events, come first (nice 19; measured with
                    // perfs/fio/metadata.py, the agent thread took 10 % of the daemon's CPU
                    // during 5,000 creates at normal priority).
                    peros_indexer::background_priority();
                    agent.drain(rx, &mut log)
                })?;
        }
        // Several fetchers: on a remote store each fetch is a round trip, and one fetcher
        // working through the predictions in turn falls behind a reader that opens files
        // back to back (perfs/agent/latency.sh). A reader that opens a file being fetched
        // joins that download (Store::read_chunk).
        let prx = Arc::new(Mutex::new(prx));
        for n in 0..PREFETCH_WORKERS {
            let store = store.clone();
            let prx = prx.clone();
            let inflight = agent.inflight.clone();
            let bandwidth = agent.bandwidth.clone();
            let chunks = agent.cfg.prefetch_chunks.max(1);
            std::thread::Builder::new()
                .name(format!("peros-prefetch-{n}"))
                .spawn(move || loop {
                    let next = prx.lock().recv();
                    let Ok((ino, _)) = next else {
                        break;
                    };
                    if let Ok(node) = store.getattr(ino) {
                        let start = Instant::now();
                        let mut bytes = 0;
                        for i in (0..node.size.div_ceil(CHUNK)).take(chunks) {
                            if store.chunk_cached(ino, i) {
                                continue;
                            }
                            if let Err(e) = store.prefetch_chunk(ino, i) {
                                tracing::debug!("prefetch of inode {ino}: {e}");
                                break;
                            }
                            bytes += chunk_len(&node, i);
                        }
                        let took = start.elapsed().as_secs_f64();
                        // A download that joined another is not a measure of the backend.
                        if bytes >= 64 << 10 && took > 0.0005 {
                            let sample = bytes as f64 / took;
                            let old = bandwidth.load(Ordering::Relaxed) as f64;
                            bandwidth.store((0.7 * old + 0.3 * sample) as u64, Ordering::Relaxed);
                        }
                    }
                    if let Some(done) = inflight.lock().get_mut(&ino) {
                        *done = Some(peros_store::access::now_ms());
                    }
                })?;
        }
        let sink: Arc<dyn AccessSink> = Arc::new(Sink { tx, dropped });
        Ok((agent, sink))
    }

    pub fn config(&self) -> &AgentConfig {
        &self.cfg
    }

    pub fn stats(&self) -> PrefetchStats {
        let st = self.state.lock();
        let mut s = st.stats.clone();
        s.outstanding_bytes = st.prefetched.values().map(|(b, _)| b).sum();
        drop(st);
        s.dropped_events += self.dropped.load(Ordering::Relaxed);
        s.bandwidth = self.bandwidth.load(Ordering::Relaxed);
        s
    }

    /// Records a search the user made (`source`: where) for the planners. Returns at once.
    pub fn record_search(&self, query: &str, source: &str) {
        let mut q = self.searches.lock();
        if q.len() < QUEUE {
            q.push(log::search_record(query, source));
        }
    }

    /// Writes out everything the agent holds in memory: the events the mount sent until now
    /// (queued or handled but not yet logged) and the searches recorded. Planner runs and
    /// `peros agent stats` call it first, so they see the opens of a moment ago, not the log
    /// as of the last periodic write (once a second). Waits at most a few seconds.
    pub fn flush(&self) {
        const WAIT: Duration = Duration::from_secs(5);
        if self.stop.load(Ordering::SeqCst) {
            return; // the agent thread is gone; shutdown saved what there was
        }
        let start = Instant::now();
        let (ack_tx, ack_rx) = sync_channel(1);
        let mut msg = Msg::Flush(ack_tx);
        // The queue keeps its order: once the agent thread answers, every event sent before
        // this message is in the log.
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if start.elapsed() < WAIT => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => {
                    tracing::warn!(
                        "agent: could not flush the access log (queue full or agent stopped)"
                    );
                    return;
                }
            }
        }
        if ack_rx
            .recv_timeout(
                WAIT.saturating_sub(start.elapsed())
                    .max(Duration::from_millis(100)),
            )
            .is_err()
        {
            tracing::warn!("agent: the access log was not flushed within {WAIT:?}");
        }
    }

    /// Flushes the log and counters (at shutdown).
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.save();
    }

    fn save(&self) {
        let s = self.stats();
        let mut pending = std::mem::take(&mut self.state.lock().pending);
        pending.append(&mut self.searches.lock());
        if let Ok(mut log) = AccessLog::open(&self.dir, self.cfg.log_max_mb.max(1) << 20) {
            let _ = log.append(&pending);
        }
        let _ = std::fs::write(
            self.dir.join("prefetch.json"),
            serde_json::to_vec_pretty(&s).unwrap_or_default(),
        );
    }

    fn drain(self: Arc<Self>, rx: Receiver<Msg>, log: &mut AccessLog) {
        let mut last_flush = Instant::now();
        loop {
            match rx.recv_timeout(Duration::from_millis(500)) {
                Ok(Msg::Event(ev, comm)) => self.handle(ev, &comm),
                Ok(Msg::Flush(ack)) => {
                    last_flush = Instant::now();
                    self.write_out(log);
                    let _ = ack.try_send(());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if last_flush.elapsed() >= Duration::from_secs(1) {
                last_flush = Instant::now();
                self.write_out(log);
            }
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
        }
    }

    /// Appends the pending records and searches to the log, saves the counters.
    fn write_out(&self, log: &mut AccessLog) {
        let mut pending = {
            let mut st = self.state.lock();
            self.expire(&mut st);
            std::mem::take(&mut st.pending)
        };
        pending.append(&mut self.searches.lock());
        if let Err(e) = log.append(&pending) {
            tracing::warn!("agent access log: {e}");
        }
        let s = self.stats();
        let _ = std::fs::write(
            self.dir.join("prefetch.json"),
            serde_json::to_vec_pretty(&s).unwrap_or_default(),
        );
    }

    fn expire(&self, st: &mut State) {
        let now = Instant::now();
        let old: Vec<Ino> = st
            .prefetched
            .iter()
            .filter(|(_, (_, t))| now.duration_since(*t) > PREFETCH_EXPIRY)
            .map(|(&k, _)| k)
            .collect();
        for k in old {
            self.inflight.lock().remove(&k);
            if let Some((b, _)) = st.prefetched.remove(&k) {
                st.stats.wasted_bytes += b;
                st.depth.outcome(false);
            }
        }
    }

    fn readable(&self, ino: Ino) -> Option<(String, peros_store::Inode)> {
        let node = self.store.getattr(ino).ok()?;
        let path = String::from_utf8_lossy(&self.store.path_of(ino).ok()?).into_owned();
        let tags = node
            .xattrs
            .get(peros_indexer::TAGS_XATTR)
            .map(|v| crate::tools::parse_tags(v))
            .unwrap_or_default();
        self.policy.readable(&path, &tags).then_some((path, node))
    }

    fn handle(&self, ev: AccessEvent, comm: &[u8; 16]) {
        match ev.kind {
            AccessKind::Read => {
                if let Some(o) = self.state.lock().open.get_mut(&ev.ino) {
                    o.2 += ev.bytes;
                }
            }
            AccessKind::Close => {
                let mut st = self.state.lock();
                if let Some((path, proc, bytes)) = st.open.remove(&ev.ino) {
                    st.pending.push(Record {
                        t: ev.time_ms,
                        ev: "close".into(),
                        ino: ev.ino,
                        path,
                        proc,
                        bytes,
                        cached: false,
                    });
                }
            }
            AccessKind::Open => {
                // Excluded files are not logged, modelled or prefetched.
                let Some((path, _)) = self.readable(ev.ino) else {
                    return;
                };
                let proc = comm_name(comm);
                let mut st = self.state.lock();
                let st = &mut *st;
                st.stats.opens += 1;
                if ev.cached {
                    st.stats.hits += 1;
                } else {
                    st.stats.misses += 1;
                }
                let fetch = self.inflight.lock().remove(&ev.ino);
                if let Some((bytes, _)) = st.prefetched.remove(&ev.ino) {
                    if ev.cached {
                        st.stats.prefetch_hits += 1;
                        st.depth.outcome(true);
                    } else if fetch.is_some_and(|done| done.is_none_or(|t| t >= ev.time_ms)) {
                        // Right but late: looking further ahead is what would help.
                        st.stats.inflight_hits += 1;
                        st.depth.outcome(true);
                    } else {
                        st.stats.wasted_bytes += bytes;
                        st.depth.outcome(false);
                    }
                }
                let folder = self.folder_of(st, ev.ino);
                st.model.observe_in(&proc, ev.ino, folder, Some(ev.time_ms));
                st.pending.push(Record {
                    t: ev.time_ms,
                    ev: "open".into(),
                    ino: ev.ino,
                    path: path.clone(),
                    proc: proc.clone(),
                    bytes: 0,
                    cached: ev.cached,
                });
                st.open.insert(ev.ino, (path, proc, 0));
                if self.cfg.prefetch {
                    self.prefetch_after(st, ev.ino);
                }
                st.stats.depth = st.depth.depth;
            }
        }
    }

    fn prefetch_after(&self, st: &mut State, ino: Ino) {
        // What the process that just opened `ino` opens next, and what all processes do.
        let Some((_, proc, _)) = st.open.get(&ino) else {
            return;
        };
        // Far enough ahead for a fetch of a file like this one to finish before its open at
        // the stream's pace — no further: a file prefetched many opens early may be evicted
        // before it is opened — and within what the precision of recent prefetches allows.
        let bytes_here = self.store.getattr(ino).map_or(CHUNK, |n| {
            n.size.min(CHUNK * self.cfg.prefetch_chunks.max(1) as u64)
        });
        let bw = self.bandwidth.load(Ordering::Relaxed) as f64;
        let depth = match st.model.think_ms(proc) {
            Some(think) => lead(bytes_here, bw, think).min(st.depth.depth),
            None => st.depth.depth,
        };
        let preds = st.model.predict(proc, depth);
        let cache = self.store.cache_capacity();
        // What the store holds of each prediction, then the benchmark's decision on it.
        let mut cands = Vec::new();
        let mut nchunks = HashMap::new();
        for p in preds {
            if st.open.contains_key(&p.key) {
                continue;
            }
            if let Some(&(bytes, _)) = st.prefetched.get(&p.key) {
                let done = self
                    .inflight
                    .lock()
                    .get(&p.key)
                    .copied()
                    .flatten()
                    .is_some();
                if !done || self.store.chunk_cached(p.key, 0) {
                    cands.push(Candidate {
                        key: p.key,
                        p: p.p,
                        bytes,
                        held: Held::Prefetched,
                    });
                    continue;
                }
                // Fetched, then evicted before it was opened: wasted; it may be fetched again.
                st.prefetched.remove(&p.key);
                self.inflight.lock().remove(&p.key);
                st.stats.wasted_bytes += bytes;
                st.depth.outcome(false);
            }
            let Some((_, node)) = self.readable(p.key) else {
                continue;
            };
            let chunks: Vec<u64> = (0..node.size.div_ceil(CHUNK))
                .take(self.cfg.prefetch_chunks.max(1))
                .collect();
            let held = if chunks.iter().all(|c| self.store.chunk_cached(p.key, *c)) {
                Held::Cached
            } else {
                Held::No
            };
            nchunks.insert(p.key, chunks.len());
            cands.push(Candidate {
                key: p.key,
                p: p.p,
                bytes: chunks.iter().map(|c| chunk_len(&node, *c)).sum(),
                held,
            });
        }
        let rate = (self.cfg.prefetch_bandwidth_mb_s.max(1) << 20) as f64;
        let now = Instant::now();
        st.tokens = (st.tokens + now.duration_since(st.refilled).as_secs_f64() * rate).min(rate);
        st.refilled = now;
        let budget = (self.cfg.prefetch_budget_mb << 20).min(cache / BUDGET_SHARE);
        for key in decide(&cands, self.cfg.prefetch_min_p, budget, cache) {
            let bytes = cands.iter().find(|c| c.key == key).map_or(0, |c| c.bytes);
            if (bytes as f64) > st.tokens {
                continue;
            }
            self.inflight.lock().insert(key, None);
            if self.prefetch_tx.try_send((key, nchunks[&key])).is_err() {
                self.inflight.lock().remove(&key);
                break;
            }
            st.tokens -= bytes as f64;
            st.prefetched.insert(key, (bytes, now));
            st.stats.prefetched_files += 1;
            st.stats.prefetched_bytes += bytes;
        }
    }

    /// `ino`'s place in its folder: the regular files after it in name order (listings are
    /// reused for [`LISTING_TTL`]).
    fn folder_of(&self, st: &mut State, ino: Ino) -> Option<Folder> {
        let dir = self.store.getattr(ino).ok()?.parent;
        let now = Instant::now();
        let files = match st.listings.get(&dir) {
            Some((files, at)) if now.duration_since(*at) < LISTING_TTL => files.clone(),
            _ => {
                let files: Arc<Vec<Ino>> = Arc::new(
                    self.store
                        .readdir_plus(dir)
                        .ok()?
                        .into_iter()
                        .filter(|(_, n)| n.kind == peros_store::Kind::File)
                        .map(|(e, _)| e.ino)
                        .collect(),
                );
                if st.listings.len() >= LISTINGS_KEPT {
                    st.listings
                        .retain(|_, (_, at)| now.duration_since(*at) < LISTING_TTL);
                }
                st.listings.insert(dir, (files.clone(), now));
                files
            }
        };
        let i = files.iter().position(|&k| k == ino)?;
        Some(Folder {
            dir,
            after: files[i + 1..].iter().take(FOLDER_SPAN).copied().collect(),
        })
    }

    /// Warms the first chunks of `ino` now (the planner's `prefetch` tool). Returns bytes.
    pub fn prefetch_now(&self, ino: Ino) -> u64 {
        let Some((_, node)) = self.readable(ino) else {
            return 0;
        };
        let mut bytes = 0;
        for i in (0..node.size.div_ceil(CHUNK)).take(self.cfg.prefetch_chunks.max(1)) {
            if self.store.prefetch_chunk(ino, i).is_ok() {
                bytes += chunk_len(&node, i);
            }
        }
        let mut st = self.state.lock();
        st.prefetched.insert(ino, (bytes, Instant::now()));
        st.stats.prefetched_files += 1;
        st.stats.prefetched_bytes += bytes;
        bytes
    }
}

const CHUNK: u64 = peros_store::CHUNK_SIZE as u64;

/// Bytes of chunk `i` of a file (the last one may be short).
fn chunk_len(node: &peros_store::Inode, i: u64) -> u64 {
    node.size.saturating_sub(i * CHUNK).min(CHUNK)
}

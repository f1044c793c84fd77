//! The embedding pipeline: from the queue to vectors in the graph, at the machine's limit.
//!
//! A round takes up to [`ROUND`] queued chunks in priority order, serves those whose text is
//! already in the embedding store without the model, embeds each distinct new text once (in
//! batches of similar token length, so little padding is computed), stores the vectors, and
//! adds the chunks to the graph in the same commit that logs them. The model runs on the
//! background session (all cores, lowest priority); queries use their own session.
//!
//! Also here: the graph's life cycle (load and replay at open, dumps in the background,
//! rebuild when tombstones pile up) and the model check (vectors of two models never mix).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use peros_store::Ino;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

use crate::state::*;
use crate::{passages, EmbedError, EmbedderState, IndexError, Indexer, Result};

/// A graph member: chunk id and its vector.
type Member = (u64, Vec<f32>);

/// Chunks per round (one commit each).
pub(crate) const ROUND: usize = 64;
/// Texts per model call. Measured with `perfs/search --raw-batches` (README there): with
/// texts sorted by length, 8 was within a few percent of the best at 1 and 2 threads.
pub(crate) const BATCH: usize = 8;
/// Dump the graph when this many changes are logged, or sooner when the queue is empty.
const DUMP_AFTER_CHANGES: u64 = 5_000;
/// Push embeddings to the object store once this many are waiting (or when idle).
const PUSH_AFTER: u64 = crate::embedstore::SEGMENT_ENTRIES as u64;

/// Embedding throughput over the last minute.
#[derive(Default)]
pub(crate) struct Rates {
    window: VecDeque<(Instant, Instant, u64, u64)>,
}

impl Rates {
    fn record(&mut self, start: Instant, chunks: u64, tokens: u64) {
        let now = Instant::now();
        self.window.push_back((start, now, chunks, tokens));
        while self
            .window
            .front()
            .is_some_and(|w| now.duration_since(w.1) > Duration::from_secs(60))
        {
            self.window.pop_front();
        }
    }

    /// (chunks/s, tokens/s) over the recorded window; 0 when nothing was embedded lately.
    pub fn per_sec(&self) -> (f64, f64) {
        let (Some(first), Some(last)) = (self.window.front(), self.window.back()) else {
            return (0.0, 0.0);
        };
        if last.1.elapsed() > Duration::from_secs(60) {
            return (0.0, 0.0);
        }
        let span = last.1.duration_since(first.0).as_secs_f64().max(0.001);
        let chunks: u64 = self.window.iter().map(|w| w.2).sum();
        let tokens: u64 = self.window.iter().map(|w| w.3).sum();
        (chunks as f64 / span, tokens as f64 / span)
    }
}

struct Queued {
    queue_key: (u64, u64),
    id: u64,
    rec: Option<ChunkRec>,
}

impl Indexer {
    pub(crate) fn vector_worker(self: Arc<Self>) {
        let mut last_change = Instant::now();
        while !self.stop.load(Ordering::SeqCst) {
            match self.embed_some(ROUND) {
                Ok(0) => {
                    // Idle: save the graph and push what is new, then wait.
                    if last_change.elapsed() > Duration::from_secs(2) {
                        if let Err(e) = self.persist_graph_if_changed() {
                            tracing::error!("saving the vector graph: {e}");
                        }
                        if let Err(e) = self.push_all_embeddings() {
                            tracing::warn!("{e}: will try again");
                        }
                    }
                    let mut q = self.queue.lock();
                    self.wake.wait_for(&mut q, Duration::from_millis(500));
                }
                Ok(_) => {
                    last_change = Instant::now();
                    if let Err(e) = self.maintain_graph() {
                        tracing::error!("vector graph upkeep: {e}");
                    }
                }
                Err(IndexError::Embed(e)) => {
                    // No model, or the service is down: text search still works; the queue
                    // keeps every passage, and we try again later.
                    tracing::warn!("{e}");
                    let wait = match e {
                        EmbedError::Unavailable(_) => Duration::from_secs(5),
                        _ => Duration::from_secs(30),
                    };
                    {
                        let mut q = self.queue.lock();
                        self.wake.wait_for(&mut q, wait);
                    }
                    if !matches!(
                        e,
                        EmbedError::ModelMissing(_) | EmbedError::RuntimeMissing(_)
                    ) {
                        // Transient: let the next round load or call again.
                        let mut st = self.embedder.lock();
                        if matches!(*st, EmbedderState::Failed(_)) {
                            *st = EmbedderState::NotLoaded;
                        }
                    }
                }
                Err(e) => {
                    tracing::error!("embedding failed: {e}");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
            self.idle.notify_all();
        }
    }

    /// Dumps the graph when enough changes are logged, rebuilds it when tombstones pile up,
    /// pushes embeddings when a segment's worth waits.
    fn maintain_graph(&self) -> Result<()> {
        if self.vectors.needs_rebuild() {
            self.rebuild_graph()?;
        } else if self.logged_changes()? >= DUMP_AFTER_CHANGES {
            self.persist_graph_if_changed()?;
        }
        if self.opts.share_embeddings
            && self.db.begin_read()?.open_table(UNPUSHED)?.len()? >= PUSH_AFTER
        {
            if let Err(e) = self.push_embeddings() {
                tracing::warn!("{e}: will try again");
            }
        }
        Ok(())
    }

    fn logged_changes(&self) -> Result<u64> {
        Ok(self.db.begin_read()?.open_table(GRAPH_LOG)?.len()?)
    }

    /// A file was opened in the mount: its passages still waiting for a vector go first.
    /// Never blocks (the mount's access sink calls it from a FUSE callback): the move happens
    /// on the embedding worker, before its next round. Remembers the last 256 files.
    pub fn opened(&self, ino: Ino) {
        let mut q = self.opened.lock();
        if !q.contains(&ino) {
            if q.len() >= 256 {
                q.pop_front();
            }
            q.push_back(ino);
        }
    }

    /// Moves the passages of the files [`Indexer::opened`] since the last round ahead.
    fn apply_open_hints(&self) {
        let opened: Vec<Ino> = self.opened.lock().drain(..).collect();
        for ino in opened {
            if let Err(e) = self.prioritize(ino) {
                tracing::warn!("moving the passages of an opened file ahead: {e}");
            }
        }
    }

    /// Moves the queued passages of `ino` ahead of every other file's (see
    /// [`opened_priority`]); returns how many moved.
    pub fn prioritize(&self, ino: Ino) -> Result<usize> {
        let txn = self.db.begin_write()?;
        let mut moved = 0;
        {
            let files = txn.open_table(FILES)?;
            let st: Option<FileState> = match files.get(ino)? {
                Some(v) => Some(postcard::from_bytes(v.value())?),
                None => None,
            };
            let mut q = txn.open_table(EMBED_QUEUE)?;
            if let Some(st) = st {
                for (pos, &id) in st.chunk_ids.iter().enumerate() {
                    if q.remove((queue_priority(pos, st.mtime), id))?.is_some() {
                        q.insert((opened_priority(pos), id), ())?;
                        moved += 1;
                    }
                }
            }
        }
        // Most opens are of files already embedded: no commit (and no fsync) for them.
        if moved > 0 {
            txn.commit()?;
        } else {
            txn.abort()?;
        }
        Ok(moved)
    }

    /// Embeds up to `max` queued chunks (fewer model calls when texts are already stored);
    /// returns how many chunks left the queue.
    pub fn embed_some(&self, max: usize) -> Result<usize> {
        self.apply_open_hints();
        let queued: Vec<Queued> = {
            let txn = self.db.begin_read()?;
            let q = txn.open_table(EMBED_QUEUE)?;
            let chunks = txn.open_table(CHUNKS)?;
            let mut out = Vec::new();
            for item in q.iter()?.take(max) {
                let (k, _) = item?;
                let queue_key = k.value();
                let rec = match chunks.get(queue_key.1)? {
                    Some(v) => Some(postcard::from_bytes::<ChunkRec>(v.value())?),
                    None => None,
                };
                out.push(Queued {
                    queue_key,
                    id: queue_key.1,
                    rec,
                });
            }
            out
        };
        if queued.is_empty() {
            return Ok(0);
        }
        *self.busy.lock() += 1;
        let result = self.embed_round(queued);
        *self.busy.lock() -= 1;
        result
    }

    fn embed_round(&self, queued: Vec<Queued>) -> Result<usize> {
        let start = Instant::now();
        // Distinct texts not in the embedding store yet.
        let mut stored: HashMap<EmbedKey, Vec<f32>> = HashMap::new();
        let mut missing: Vec<(EmbedKey, String, u32)> = Vec::new();
        {
            let txn = self.db.begin_read()?;
            let emb = txn.open_table(EMBEDDINGS)?;
            let mut seen = std::collections::HashSet::new();
            for q in &queued {
                let Some(rec) = &q.rec else { continue };
                if !seen.insert(rec.key) {
                    continue;
                }
                match emb.get(rec.key.as_slice())? {
                    Some(v) => {
                        stored.insert(rec.key, bytes_vec(v.value()));
                    }
                    None => missing.push((rec.key, passages::normalize(&rec.text), rec.tokens)),
                }
            }
        }
        // Similar lengths together: a batch is padded to its longest text.
        missing.sort_by_key(|m| m.2);
        let mut fresh: HashMap<EmbedKey, Vec<f32>> = HashMap::new();
        let mut tokens = 0u64;
        let mut failure = None;
        for batch in missing.chunks(BATCH) {
            let texts: Vec<&str> = batch.iter().map(|m| m.1.as_str()).collect();
            match self.embed_texts(&texts) {
                Ok(vecs) => {
                    for (m, v) in batch.iter().zip(vecs) {
                        tokens += m.2 as u64 + 2;
                        fresh.insert(m.0, v);
                    }
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        // Commit what is done; chunks whose text failed stay queued.
        let mut added: Vec<(u64, Vec<f32>)> = Vec::new();
        let mut done = 0usize;
        let mut reused = 0u64;
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::None)?;
        {
            let chunks = txn.open_table(CHUNKS)?;
            let mut emb = txn.open_table(EMBEDDINGS)?;
            let mut members = txn.open_table(VECTORS)?;
            let mut log = txn.open_table(GRAPH_LOG)?;
            let mut q = txn.open_table(EMBED_QUEUE)?;
            let mut unpushed = txn.open_table(UNPUSHED)?;
            let mut counters = txn.open_table(COUNTERS)?;
            let mut seq = counters.get("graph_seq")?.map(|v| v.value()).unwrap_or(0);
            for (k, v) in &fresh {
                emb.insert(k.as_slice(), vec_bytes(v).as_slice())?;
                if self.opts.share_embeddings {
                    unpushed.insert(k.as_slice(), ())?;
                }
            }
            for item in &queued {
                let vector = match &item.rec {
                    None => None,
                    Some(rec) => match fresh.get(&rec.key) {
                        Some(v) => Some(v),
                        None => match stored.get(&rec.key) {
                            Some(v) => {
                                reused += 1;
                                Some(v)
                            }
                            // Its text failed this round: leave it queued.
                            None => continue,
                        },
                    },
                };
                q.remove(item.queue_key)?;
                done += 1;
                let Some(v) = vector else { continue };
                // The file may have changed while we embedded: only live chunks, once.
                let live = chunks.get(item.id)?.is_some_and(|c| {
                    postcard::from_bytes::<ChunkRec>(c.value())
                        .is_ok_and(|c| Some(c.key) == item.rec.as_ref().map(|r| r.key))
                });
                if live && members.insert(item.id, ())?.is_none() {
                    seq += 1;
                    log.insert(seq, (OP_ADD, item.id))?;
                    added.push((item.id, v.clone()));
                }
            }
            counters.insert("graph_seq", seq)?;
        }
        {
            let _graph = self.graph_writer.lock();
            txn.commit()?;
            if !added.is_empty() {
                // Writing: the graph loads alongside (inserts wait in its backlog meanwhile).
                self.vectors.ensure_graph();
            }
            for (id, v) in &added {
                self.vectors.insert(*id, v);
            }
        }
        let embedded = fresh.len() as u64;
        self.counters
            .embedded
            .fetch_add(embedded, Ordering::Relaxed);
        self.counters.reused.fetch_add(reused, Ordering::Relaxed);
        if embedded > 0 {
            self.rates.lock().record(start, embedded, tokens);
        }
        if !added.is_empty() {
            self.vector_generation.fetch_add(1, Ordering::SeqCst);
        }
        match failure {
            Some(e) if done == 0 => Err(e),
            _ => Ok(done),
        }
    }

    fn embedder_ready(&self) -> Result<()> {
        let mut e = self.embedder.lock();
        if let EmbedderState::NotLoaded = *e {
            *e = match self.opts.embedder_config().load(None) {
                Ok(m) => EmbedderState::Ready(m),
                Err(err) => {
                    tracing::warn!("{err}");
                    EmbedderState::Failed(err)
                }
            };
        }
        match &*e {
            EmbedderState::Failed(err) => Err(err.clone().into()),
            _ => Ok(()),
        }
    }

    /// Embeds on the background session.
    fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.embedder_ready()?;
        let mut e = self.embedder.lock();
        match &mut *e {
            EmbedderState::Ready(m) => Ok(m.embed(texts)?),
            _ => unreachable!("embedder_ready checked"),
        }
    }

    /// Uses `embedder` for background embedding instead of loading the configured one
    /// (benchmarks and tests: a preloaded model or a stand-in). Vectors are recorded under
    /// the configured model id, so a stand-in needs an index directory of its own.
    pub fn set_embedder(&self, embedder: Box<dyn crate::Embedder>) {
        *self.embedder.lock() = EmbedderState::Ready(embedder);
    }

    /// The same for query embeddings.
    pub fn set_query_embedder(&self, embedder: Box<dyn crate::Embedder>) {
        *self.query_embedder.lock() = EmbedderState::Ready(embedder);
        self.query_vectors.lock().clear();
    }

    pub(crate) fn embedder_failed(&self) -> bool {
        matches!(*self.embedder.lock(), EmbedderState::Failed(_))
    }

    /// The embedding of a query text as search uses it (benchmarks compare it with
    /// [`Indexer::file_vectors`]).
    pub fn query_embedding(&self, text: &str) -> Result<Vec<f32>> {
        self.embed_query(text)
    }

    /// The embedding of a query text, on the query session (never behind the backlog),
    /// cached (bounded) because views repeat their queries.
    pub(crate) fn embed_query(&self, text: &str) -> Result<Vec<f32>> {
        let text = passages::normalize(text);
        if let Some(v) = self.query_vectors.lock().get(&text) {
            return Ok(v.clone());
        }
        let v = {
            let mut e = self.query_embedder.lock();
            if let EmbedderState::NotLoaded = *e {
                *e = match self.opts.embedder_config().load(Some(1)) {
                    Ok(m) => EmbedderState::Ready(m),
                    Err(err) => EmbedderState::Failed(err),
                };
            }
            match &mut *e {
                EmbedderState::Ready(m) => m.embed(&[text.as_str()])?.pop().unwrap_or_default(),
                EmbedderState::Failed(err) => {
                    let err = err.clone();
                    if !matches!(
                        err,
                        EmbedError::ModelMissing(_) | EmbedError::RuntimeMissing(_)
                    ) {
                        *e = EmbedderState::NotLoaded;
                    }
                    return Err(err.into());
                }
                EmbedderState::NotLoaded => unreachable!("loaded above"),
            }
        };
        let mut cache = self.query_vectors.lock();
        if cache.len() >= 512 {
            cache.clear();
        }
        cache.insert(text, v.clone());
        Ok(v)
    }

    // ----- the graph's life cycle -----

    fn graph_dir(&self) -> std::path::PathBuf {
        self.opts.dir.join("graph")
    }

    /// At open: the saved graph plus the changes logged since, or a build from the stored
    /// vectors when there is no usable dump.
    pub(crate) fn load_graph(&self) -> Result<&'static str> {
        let _graph = self.graph_writer.lock();
        let members = self.db.begin_read()?.open_table(VECTORS)?.len()?;
        if let Some((loaded, seq)) = crate::vectors::VectorIndex::load(&self.graph_dir()) {
            self.vectors.replace_with(loaded);
            let txn = self.db.begin_read()?;
            let log = txn.open_table(GRAPH_LOG)?;
            let chunks = txn.open_table(CHUNKS)?;
            let emb = txn.open_table(EMBEDDINGS)?;
            let mut replayed = 0;
            // Chunks added and removed again since the dump: their removal is no tombstone.
            let mut never_inserted = std::collections::HashSet::new();
            for item in log.range(seq + 1..)? {
                let (_, v) = item?;
                let (op, id) = v.value();
                if op == OP_REMOVE {
                    if !never_inserted.remove(&id) {
                        self.vectors.remove(id);
                    }
                } else {
                    let vector = match chunks.get(id)? {
                        Some(c) => {
                            let rec: ChunkRec = postcard::from_bytes(c.value())?;
                            emb.get(rec.key.as_slice())?.map(|v| bytes_vec(v.value()))
                        }
                        None => None,
                    };
                    match vector {
                        Some(v) => self.vectors.insert(id, &v),
                        None => {
                            never_inserted.insert(id);
                        }
                    }
                }
                replayed += 1;
            }
            tracing::debug!("vector index opened; {replayed} logged changes replayed");
            if self.vectors.len() as u64 == members {
                return Ok("saved");
            }
            tracing::warn!(
                "the saved vector index holds {} vectors, the index {members}: rebuilding it",
                self.vectors.len()
            );
        } else if members == 0 {
            return Ok("empty");
        } else {
            tracing::warn!("no usable saved vector index: making it from {members} vectors");
        }
        drop(_graph);
        self.rebuild_flat()?;
        Ok("built")
    }

    /// Makes the index afresh from the stored vectors of the graph's members, searchable at
    /// once by exact scan, and saves it; the graph is built from it in the background when
    /// something needs it (never at open).
    fn rebuild_flat(&self) -> Result<()> {
        self.remake(crate::vectors::VectorIndex::from_vectors)
    }

    /// Replaces the index with `make` over the members' stored vectors and saves it.
    fn remake(&self, make: fn(&[Member]) -> crate::vectors::VectorIndex) -> Result<()> {
        let _graph = self.graph_writer.lock();
        let all = self.member_vectors()?;
        self.vectors.replace_with(make(&all));
        let seq = self.current_seq()?;
        self.vectors.dump(&self.graph_dir(), seq)?;
        drop(_graph);
        self.truncate_log(seq)
    }

    /// The stored vectors of the graph's members.
    fn member_vectors(&self) -> Result<Vec<Member>> {
        let txn = self.db.begin_read()?;
        let members = txn.open_table(VECTORS)?;
        let chunks = txn.open_table(CHUNKS)?;
        let emb = txn.open_table(EMBEDDINGS)?;
        let mut out = Vec::with_capacity(members.len()? as usize);
        for item in members.iter()? {
            let (id, _) = item?;
            let id = id.value();
            let Some(c) = chunks.get(id)? else { continue };
            let rec: ChunkRec = postcard::from_bytes(c.value())?;
            if let Some(v) = emb.get(rec.key.as_slice())? {
                out.push((id, bytes_vec(v.value())));
            }
        }
        Ok(out)
    }

    /// Builds the graph afresh from the stored vectors of the graph's members, then saves it.
    pub(crate) fn rebuild_graph(&self) -> Result<()> {
        self.remake(crate::vectors::VectorIndex::build)
    }

    fn current_seq(&self) -> Result<u64> {
        let txn = self.db.begin_read()?;
        let c = txn.open_table(COUNTERS)?;
        Ok(c.get("graph_seq")?.map(|v| v.value()).unwrap_or(0))
    }

    fn truncate_log(&self, upto: u64) -> Result<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::None)?;
        {
            let mut log = txn.open_table(GRAPH_LOG)?;
            log.retain(|k, _| k > upto)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Saves the graph if changes were logged since the last dump (searches go on meanwhile;
    /// graph changes wait).
    pub fn persist_graph_if_changed(&self) -> Result<()> {
        if self.logged_changes()? == 0 {
            return Ok(());
        }
        let seq = {
            let _graph = self.graph_writer.lock();
            let seq = self.current_seq()?;
            self.vectors.dump(&self.graph_dir(), seq)?;
            seq
        };
        self.truncate_log(seq)
    }

    /// At open: a change of embedding model drops the old vectors and queues every passage.
    pub(crate) fn check_model(&self) -> Result<()> {
        let recorded = {
            let txn = self.db.begin_read()?;
            let meta = txn.open_table(META)?;
            meta.get("model")?
                .map(|v| String::from_utf8_lossy(v.value()).into_owned())
        };
        if recorded.as_deref() == Some(self.model_id.as_str()) {
            return Ok(());
        }
        let txn = self.db.begin_write()?;
        if let Some(old) = &recorded {
            let chunks = txn.open_table(CHUNKS)?.len()?;
            let msg = format!(
                "the embedding model changed from {old} to {}: re-embedding {chunks} passages (vectors of two models are never mixed)",
                self.model_id
            );
            tracing::warn!("{msg}");
            *self.notice.lock() = Some(msg);
            txn.open_table(EMBEDDINGS)?.retain(|_, _| false)?;
            txn.open_table(VECTORS)?.retain(|_, _| false)?;
            txn.open_table(GRAPH_LOG)?.retain(|_, _| false)?;
            txn.open_table(UNPUSHED)?.retain(|_, _| false)?;
            let files = txn.open_table(FILES)?;
            let mut q = txn.open_table(EMBED_QUEUE)?;
            q.retain(|_, _| false)?;
            for item in files.iter()? {
                let (_, v) = item?;
                let st: FileState = postcard::from_bytes(v.value())?;
                for (pos, id) in st.chunk_ids.iter().enumerate() {
                    q.insert((queue_priority(pos, st.mtime), *id), ())?;
                }
            }
            let _ = std::fs::remove_dir_all(self.graph_dir());
        }
        txn.open_table(META)?
            .insert("model", self.model_id.as_bytes())?;
        txn.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use peros_store::{Kind, ObjectStoreBackend, Store, StoreOptions, ROOT_INO};

    use crate::{Embedder, Indexer, Options};

    /// STAND-IN EMBEDDER for the graph's bookkeeping only (no ranking is checked): a
    /// deterministic unit vector per text, so the test needs no model. The crash it simulates
    /// (a process that stops between two dumps) is what the real model cannot make happen on
    /// demand; `tests/tests/semantic_index.rs` covers the same paths with the real model.
    struct StandIn;

    impl Embedder for StandIn {
        fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, crate::EmbedError> {
            Ok(texts
                .iter()
                .map(|t| {
                    let h = blake3::hash(t.as_bytes());
                    let mut v: Vec<f32> = h.as_bytes().iter().map(|b| *b as f32 - 127.5).collect();
                    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                    v.iter_mut().for_each(|x| *x /= n);
                    v
                })
                .collect())
        }
        fn dim(&self) -> usize {
            32
        }
    }

    impl Indexer {
        /// `catch_up` without its final dump and push: what a process that dies leaves.
        fn catch_up_text_and_vectors_without_dump(&self) {
            let batch: Vec<_> = std::mem::take(&mut *self.queue.lock())
                .into_iter()
                .collect();
            self.index_batch(&batch).unwrap();
            while self.embed_some(super::ROUND).unwrap() > 0 {}
        }
    }

    fn local_store(dir: &std::path::Path) -> Arc<Store> {
        let backend = ObjectStoreBackend::local(&dir.join("objects")).unwrap();
        Arc::new(
            Store::open(
                &dir.join("meta.redb"),
                Arc::new(peros_crypto::Keyring::generate()),
                Arc::new(backend),
                StoreOptions::default(),
            )
            .unwrap(),
        )
    }

    fn open(dir: &std::path::Path, store: &Arc<Store>) -> Arc<Indexer> {
        let ix = Indexer::open(store.clone(), Options::new(dir.join("index"))).unwrap();
        ix.set_embedder(Box::new(StandIn));
        ix.set_query_embedder(Box::new(StandIn));
        ix
    }

    fn write(store: &Store, name: &str, text: &str) {
        let ino = match store.lookup(ROOT_INO, name.as_bytes()) {
            Ok((ino, _)) => ino,
            Err(_) => {
                store
                    .create(ROOT_INO, name.as_bytes(), Kind::File, 0o644, 0, 0, 0, b"")
                    .unwrap()
                    .0
            }
        };
        store
            .write_content(ino, &mut text.as_bytes(), None, false)
            .unwrap();
    }

    fn para(i: usize) -> String {
        format!(
            "Paragraph {i} is about topic {} and nothing else at all.\n\n",
            i * 31 % 97
        )
    }

    /// The embedding queue in order (chunk ids).
    fn queue_order(ix: &Indexer) -> Vec<u64> {
        use redb::{ReadableDatabase, ReadableTable};
        let txn = ix.db.begin_read().unwrap();
        let q = txn.open_table(crate::state::EMBED_QUEUE).unwrap();
        q.iter().unwrap().map(|e| e.unwrap().0.value().1).collect()
    }

    fn chunk_ids(ix: &Indexer, ino: u64) -> Vec<u64> {
        use redb::ReadableDatabase;
        let txn = ix.db.begin_read().unwrap();
        let files = txn.open_table(crate::state::FILES).unwrap();
        let v = files.get(ino).unwrap().unwrap();
        postcard::from_bytes::<crate::state::FileState>(v.value())
            .unwrap()
            .chunk_ids
    }

    // No embedder at all: only the queue's order is checked, before any passage is embedded.
    #[test]
    fn an_opened_file_goes_ahead_of_newer_ones_in_the_embedding_queue() {
        let dir = tempfile::tempdir().unwrap();
        let store = local_store(dir.path());
        for f in 0..3 {
            write(
                &store,
                &format!("f{f}"),
                &(0..150).map(|i| para(f * 1000 + i)).collect::<String>(),
            );
        }
        // f0 is the oldest by far: without a hint its passages come last.
        let (old, _) = store.lookup(ROOT_INO, b"f0").unwrap();
        store
            .setattr(
                old,
                &peros_store::SetAttr {
                    mtime: Some(peros_store::Time {
                        secs: 1_000_000_000,
                        nanos: 0,
                    }),
                    ..Default::default()
                },
            )
            .unwrap();
        let ix = Indexer::open(store.clone(), Options::new(dir.path().join("index"))).unwrap();
        ix.reconcile().unwrap();
        let batch: Vec<_> = std::mem::take(&mut *ix.queue.lock()).into_iter().collect();
        ix.index_batch(&batch).unwrap();
        let mine = chunk_ids(&ix, old);
        assert!(mine.len() > 4, "f0 has {} passages", mine.len());
        let before = queue_order(&ix);
        assert!(!mine.contains(&before[0]), "f0 was first without a hint");
        ix.opened(old);
        ix.apply_open_hints();
        let after = queue_order(&ix);
        assert_eq!(after.len(), before.len(), "nothing lost or doubled");
        assert_eq!(
            &after[..mine.len()],
            &mine[..],
            "f0's passages first, head first"
        );
    }

    #[test]
    fn changes_after_the_last_dump_are_replayed_not_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let store = local_store(dir.path());
        for f in 0..6 {
            write(
                &store,
                &format!("f{f}"),
                &(0..40).map(|i| para(f * 100 + i)).collect::<String>(),
            );
        }
        let ix = open(dir.path(), &store);
        ix.catch_up(true, &|_, _, _| {}).unwrap();
        let members = ix.status().unwrap().vectors;
        assert!(members > 6);
        ix.shutdown();
        drop(ix);
        let ix = open(dir.path(), &store);
        assert_eq!(ix.status().unwrap().graph_origin, "saved");
        // Edit one file twice and remove another, then stop without a dump (as a crash would).
        write(
            &store,
            "f1",
            &(0..40).map(|i| para(500 + i)).collect::<String>(),
        );
        ix.reconcile().unwrap();
        ix.catch_up_text_and_vectors_without_dump();
        write(
            &store,
            "f1",
            &(0..40).map(|i| para(600 + i)).collect::<String>(),
        );
        store.unlink(ROOT_INO, b"f2").unwrap();
        ix.reconcile().unwrap();
        ix.catch_up_text_and_vectors_without_dump();
        let st = ix.status().unwrap();
        assert_eq!(st.vectors, st.chunks);
        drop(ix);
        let ix = open(dir.path(), &store);
        let st = ix.status().unwrap();
        assert_eq!(st.graph_origin, "saved", "{st:?}");
        assert_eq!(ix.vectors.len() as u64, st.vectors);
        // A passage of the last edit is found by its own vector (the stand-in maps equal
        // texts to equal vectors).
        let text = ix
            .search("605", crate::Mode::Text, 1)
            .unwrap()
            .hits
            .remove(0);
        assert_eq!(text.path, "/f1");
        let hits = ix.search(&text.passage, crate::Mode::Semantic, 3).unwrap();
        assert_eq!(hits.hits[0].path, "/f1");
        assert!(hits.hits[0].similarity > 0.99, "{:?}", hits.hits[0]);
    }
}

//! Keeping the text index current: change notifications, reconciliation with the store, the
//! text worker (extract, cut into passages, write tantivy, queue new passages for vectors),
//! and running everything in the caller's thread for commands without a daemon.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use peros_store::{Change, Ino, Inode, Kind, Store};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use tantivy::{doc, Term};

use crate::state::*;
use crate::{extract, passages, EmbedError, IndexError, Indexer, Result};

/// A file's state and its chunks (with ids) as written to the text index.
type FileDocs = (Ino, FileState, Vec<(u64, ChunkRec)>);

/// One passage of a freshly extracted file, before ids are assigned.
struct NewPassage {
    offset: u64,
    text: String,
    key: EmbedKey,
    tokens: u32,
}

/// What the text worker decided for one inode.
enum Update {
    Removed,
    /// Same content, new path or tags: same chunks.
    Renamed(FileState),
    Content(FileState, Vec<NewPassage>, Box<FileExtra>),
}

impl Indexer {
    /// Subscribes to the store's changes.
    pub fn attach(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        self.store.set_change_listener(move |changes| {
            if let Some(me) = weak.upgrade() {
                me.enqueue(changes);
            }
        });
    }

    /// Queues changed inodes (cheap: called right after store commits).
    pub fn enqueue(&self, changes: &[Change]) {
        let mut moved_dirs = Vec::new();
        {
            let mut q = self.queue.lock();
            for c in changes {
                if c.moved {
                    moved_dirs.push(c.ino);
                }
                q.insert(c.ino);
            }
        }
        // A renamed directory changes the path of everything below it: walk it off-thread.
        if !moved_dirs.is_empty() {
            let store = self.store.clone();
            let inos: Vec<Ino> = moved_dirs;
            let files: Vec<Ino> = inos
                .into_iter()
                .flat_map(|d| descendants(&store, d))
                .collect();
            self.queue.lock().extend(files);
        }
        self.wake.notify_all();
    }

    /// Queues every file whose recorded state differs from the store.
    pub fn reconcile(&self) -> Result<usize> {
        self.mark_for_new_extractors()?;
        let inodes = self.store.all_inodes()?;
        let txn = self.db.begin_read()?;
        let files = txn.open_table(FILES)?;
        let mut todo = Vec::new();
        let mut live = HashSet::new();
        for (ino, node) in &inodes {
            if node.kind != Kind::File {
                continue;
            }
            live.insert(*ino);
            match files.get(*ino)? {
                None => todo.push(*ino),
                Some(v) => {
                    let st: FileState = postcard::from_bytes(v.value())?;
                    if st.mtime != node.mtime.secs
                        || st.mtime_nanos != node.mtime.nanos
                        || st.size != node.size
                        || st.tags != tags_of(node)
                    {
                        todo.push(*ino);
                    } else if let Ok(p) = self.store.path_of(*ino) {
                        if String::from_utf8_lossy(&p) != st.path {
                            todo.push(*ino);
                        }
                    }
                }
            }
        }
        for item in files.iter()? {
            let (k, _) = item?;
            if !live.contains(&k.value()) {
                todo.push(k.value());
            }
        }
        let n = todo.len();
        if n > 0 {
            self.queue.lock().extend(todo);
            self.wake.notify_all();
        }
        Ok(n)
    }

    /// After an upgrade of the extractors ([`EXTRACT_VERSION`]): files they may now read
    /// better (unsupported or failed before; PDF and DOCX, which gained pages and metadata) get
    /// an impossible mtime in their recorded state, so that they are extracted again now and,
    /// after a crash, at the next open. Their unchanged passages keep their vectors.
    fn mark_for_new_extractors(&self) -> Result<()> {
        let recorded = {
            let txn = self.db.begin_read()?;
            let meta = txn.open_table(META)?;
            let v = meta.get("extract_version")?;
            v.and_then(|v| v.value().try_into().ok().map(u64::from_le_bytes))
                .unwrap_or(1)
        };
        if recorded >= EXTRACT_VERSION {
            return Ok(());
        }
        let txn = self.db.begin_write()?;
        let mut marked = 0usize;
        {
            let mut files = txn.open_table(FILES)?;
            let mut again = Vec::new();
            for item in files.iter()? {
                let (k, v) = item?;
                let st: FileState = postcard::from_bytes(v.value())?;
                if st.error.is_some() || REEXTRACT_KINDS_V2.contains(&st.kind.as_str()) {
                    again.push((k.value(), st));
                }
            }
            for (ino, mut st) in again {
                st.mtime = i64::MIN;
                files.insert(ino, postcard::to_allocvec(&st)?.as_slice())?;
                marked += 1;
            }
            txn.open_table(META)?
                .insert("extract_version", EXTRACT_VERSION.to_le_bytes().as_slice())?;
        }
        txn.commit()?;
        if marked > 0 {
            tracing::info!(
                "the extractors read more formats now: {marked} files are indexed again"
            );
        }
        Ok(())
    }

    /// Starts the background workers (text, embeddings, OCR), each at the lowest priority.
    pub fn start_workers(self: &Arc<Self>) {
        lower_tantivy_threads();
        // A long-lived process: searches are worth the graph (one-shot commands scan exactly).
        self.vectors.ensure_graph();
        self.spawn_worker("peros-index-text", Self::text_worker);
        self.spawn_worker("peros-index-vectors", Self::vector_worker);
        if self.opts.ocr.enabled {
            for _ in 0..self.opts.ocr.workers.max(1) {
                self.spawn_worker("peros-index-ocr", |me| me.ocr_worker());
            }
        }
    }

    fn spawn_worker(self: &Arc<Self>, name: &str, work: impl FnOnce(Arc<Self>) + Send + 'static) {
        let me = self.clone();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                background_priority();
                work(me)
            })
            .unwrap_or_else(|e| panic!("cannot start the {name} thread: {e}"));
    }

    /// Stops the workers, saves the vector graph and pushes new embeddings (best effort).
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake.notify_all();
        if let Err(e) = self.persist_graph_if_changed() {
            tracing::error!("saving the vector graph: {e} (it is rebuilt at the next open)");
        }
        if let Err(e) = self.push_all_embeddings() {
            tracing::warn!("{e}: the embeddings are pushed at the next start");
        }
    }

    fn text_worker(self: Arc<Self>) {
        while !self.stop.load(Ordering::SeqCst) {
            let batch: Vec<Ino> = {
                let mut q = self.queue.lock();
                if q.is_empty() {
                    self.wake.wait_for(&mut q, Duration::from_millis(500));
                    if q.is_empty() {
                        continue;
                    }
                    // Settle briefly: a burst of creates becomes one batch and one commit.
                    drop(q);
                    std::thread::sleep(SETTLE);
                    q = self.queue.lock();
                }
                let take: Vec<Ino> = q.iter().take(512).copied().collect();
                for i in &take {
                    q.remove(i);
                }
                if !take.is_empty() {
                    *self.busy.lock() += 1;
                    self.text_working.store(true, Ordering::SeqCst);
                }
                take
            };
            if batch.is_empty() {
                continue;
            }
            // Settle: a burst of writes to the same files becomes one indexing pass.
            if let Err(e) = self.index_batch(&batch) {
                tracing::error!("indexing failed: {e}");
                self.queue.lock().extend(batch);
                std::thread::sleep(Duration::from_secs(1));
            }
            self.text_working.store(false, Ordering::SeqCst);
            *self.busy.lock() -= 1;
            self.idle.notify_all();
            self.wake.notify_all();
        }
    }

    /// Re-indexes these inodes: text is searchable when this returns.
    pub fn index_batch(&self, inos: &[Ino]) -> Result<()> {
        {
            // Persist the batch first: a crash mid-way redoes it.
            let mut txn = self.db.begin_write()?;
            txn.set_durability(redb::Durability::None)?;
            {
                let mut p = txn.open_table(PENDING)?;
                for i in inos {
                    p.insert(*i, ())?;
                }
            }
            txn.commit()?;
        }
        let mut updates: Vec<(Ino, Update)> = Vec::new();
        for &ino in inos {
            let old = self.file_state(ino)?;
            let node = match self.store.getattr(ino) {
                Ok(n) if n.kind == Kind::File && n.nlink > 0 => n,
                Ok(_) | Err(peros_store::StoreError::NotFound(_)) => {
                    if old.is_some() {
                        updates.push((ino, Update::Removed));
                    }
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let path = String::from_utf8_lossy(&self.store.path_of(ino)?).into_owned();
            let tags = tags_of(&node);
            let same_content = old.as_ref().is_some_and(|o| {
                o.mtime == node.mtime.secs
                    && o.mtime_nanos == node.mtime.nanos
                    && o.size == node.size
            });
            // A file with parts waiting for OCR is queued again when OCR has read them.
            let ocr_pending = same_content && self.has_pending_ocr(ino)?;
            if let (true, false, Some(o)) = (same_content, ocr_pending, &old) {
                if o.path == path && o.tags == tags {
                    continue;
                }
                let mut st = o.clone();
                st.path = path;
                st.ext = ext_of(&st.path);
                st.tags = tags;
                updates.push((ino, Update::Renamed(st)));
                continue;
            }
            let mut st = FileState {
                ext: ext_of(&path),
                path,
                kind: String::new(),
                mtime: node.mtime.secs,
                mtime_nanos: node.mtime.nanos,
                size: node.size,
                tags,
                chunk_ids: Vec::new(),
                error: None,
            };
            let (passages, extra) = match self.extract_file(ino, &node, &st.path) {
                Ok((kind, passages, extra)) => {
                    st.kind = kind;
                    (passages, extra)
                }
                Err(reason) => {
                    st.error = Some(reason);
                    (Vec::new(), FileExtra::default())
                }
            };
            updates.push((ino, Update::Content(st, passages, Box::new(extra))));
        }
        if updates.is_empty() {
            self.clear_pending(inos)?;
            return Ok(());
        }
        // Assign chunk ids (a passage whose text the file already had keeps its id, and with
        // it its vector and its place in the graph), write state, then the text index.
        let txn = self.db.begin_write()?;
        let mut docs: Vec<FileDocs> = Vec::new();
        let mut graph_removals: Vec<u64> = Vec::new();
        let mut queued = 0usize;
        {
            let mut files = txn.open_table(FILES)?;
            let mut chunks = txn.open_table(CHUNKS)?;
            let mut members = txn.open_table(VECTORS)?;
            let mut log = txn.open_table(GRAPH_LOG)?;
            let mut equeue = txn.open_table(EMBED_QUEUE)?;
            let mut counters = txn.open_table(COUNTERS)?;
            let mut extras = txn.open_table(FILE_EXTRA)?;
            let mut ocr_queue = txn.open_table(OCR_QUEUE)?;
            let mut next = counters.get("next_chunk")?.map(|v| v.value()).unwrap_or(1);
            let mut seq = counters.get("graph_seq")?.map(|v| v.value()).unwrap_or(0);
            for (ino, update) in updates {
                let old: Option<FileState> = match files.get(ino)? {
                    Some(v) => Some(postcard::from_bytes(v.value())?),
                    None => None,
                };
                let (mut st, fresh) = match update {
                    Update::Removed => {
                        extras.remove(ino)?;
                        ocr_queue.remove(ino)?;
                        (None, Some(Vec::new()))
                    }
                    Update::Renamed(st) => (Some(st), None),
                    Update::Content(st, p, extra) => {
                        if extra.ocr_pending.is_empty() || !self.opts.ocr.enabled {
                            ocr_queue.remove(ino)?;
                        } else {
                            ocr_queue.insert(ino, ())?;
                        }
                        if *extra == FileExtra::default() {
                            extras.remove(ino)?;
                        } else {
                            extras.insert(ino, postcard::to_allocvec(&extra)?.as_slice())?;
                        }
                        (Some(st), Some(p))
                    }
                };
                let Some(fresh) = fresh else {
                    let st = st.take().expect("renamed has a state");
                    let mut with_ids = Vec::new();
                    for id in &st.chunk_ids {
                        if let Some(v) = chunks.get(*id)? {
                            with_ids.push((*id, postcard::from_bytes::<ChunkRec>(v.value())?));
                        }
                    }
                    files.insert(ino, postcard::to_allocvec(&st)?.as_slice())?;
                    docs.push((ino, st, with_ids));
                    continue;
                };
                // The file's old passages by text key, to keep what did not change.
                let mut reusable: HashMap<EmbedKey, Vec<u64>> = HashMap::new();
                for id in old.iter().flat_map(|o| o.chunk_ids.iter()) {
                    if let Some(v) = chunks.get(*id)? {
                        let rec: ChunkRec = postcard::from_bytes(v.value())?;
                        reusable.entry(rec.key).or_default().push(*id);
                    }
                }
                let mut with_ids = Vec::new();
                let mut ids = Vec::with_capacity(fresh.len());
                for (position, p) in fresh.into_iter().enumerate() {
                    let rec = ChunkRec {
                        ino,
                        offset: p.offset,
                        text: p.text,
                        key: p.key,
                        tokens: p.tokens,
                    };
                    let id = match reusable.get_mut(&p.key).and_then(|v| v.pop()) {
                        Some(id) => id,
                        None => {
                            let id = next;
                            next += 1;
                            let mtime = st.as_ref().map(|s| s.mtime).unwrap_or(0);
                            equeue.insert((queue_priority(position, mtime), id), ())?;
                            queued += 1;
                            id
                        }
                    };
                    chunks.insert(id, postcard::to_allocvec(&rec)?.as_slice())?;
                    ids.push(id);
                    with_ids.push((id, rec));
                }
                // Old passages whose text is gone. Their queue entries, if any, are dropped
                // when the embedder finds no chunk for them.
                for id in reusable.into_values().flatten() {
                    chunks.remove(id)?;
                    if members.remove(id)?.is_some() {
                        seq += 1;
                        log.insert(seq, (OP_REMOVE, id))?;
                        graph_removals.push(id);
                    }
                }
                match st {
                    Some(mut st) => {
                        st.chunk_ids = ids;
                        files.insert(ino, postcard::to_allocvec(&st)?.as_slice())?;
                        docs.push((ino, st, with_ids));
                    }
                    None => {
                        files.remove(ino)?;
                        docs.push((ino, FileState::default(), Vec::new()));
                    }
                }
            }
            counters.insert("next_chunk", next)?;
            counters.insert("graph_seq", seq)?;
        }
        {
            let mut writer = self.writer.lock();
            let f = &self.fields;
            for (ino, st, chunks) in &docs {
                writer.delete_term(Term::from_field_u64(f.ino, *ino));
                for (id, rec) in chunks {
                    let mut d = doc!(
                        f.chunk_id => *id,
                        f.ino => *ino,
                        f.path => st.path.clone(),
                        f.text => rec.text.clone(),
                        f.ext => st.ext.clone(),
                        f.mtime => st.mtime,
                        f.size => st.size,
                        f.offset => rec.offset,
                    );
                    for t in &st.tags {
                        d.add_text(f.tags, t);
                    }
                    writer.add_document(d)?;
                }
            }
            writer.commit()?;
        }
        {
            let mut p = txn.open_table(PENDING)?;
            for i in inos {
                p.remove(*i)?;
            }
        }
        {
            // Tombstones go in with the commit that logs them (the graph lock keeps a dump
            // from running between the two).
            let _graph = self.graph_writer.lock();
            txn.commit()?;
            for id in graph_removals {
                self.vectors.remove(id);
            }
        }
        self.reader.reload()?;
        self.generation.fetch_add(1, Ordering::SeqCst);
        if queued > 0 {
            self.wake.notify_all();
        }
        Ok(())
    }

    fn clear_pending(&self, inos: &[Ino]) -> Result<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::None)?;
        {
            let mut p = txn.open_table(PENDING)?;
            for i in inos {
                p.remove(*i)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Reads, extracts and cuts one file; `Err` is the reason it is not indexed.
    fn extract_file(
        &self,
        ino: Ino,
        node: &Inode,
        path: &str,
    ) -> std::result::Result<(String, Vec<NewPassage>, FileExtra), String> {
        let raw_cap = self.opts.max_text_bytes.saturating_mul(64) as u64;
        if node.size > raw_cap {
            return Err(format!(
                "too large to index ({} bytes; the limit is {raw_cap})",
                node.size
            ));
        }
        let bytes = self
            .store
            .read_from(ino, node, 0, node.size as usize)
            .map_err(|e| format!("cannot read: {e}"))?;
        let name = path.rsplit('/').next().unwrap_or(path);
        let ocr = crate::ocr::CachedOcr::new(self, &bytes);
        let ex = extract::extract_with(name, &bytes, self.opts.max_text_bytes, &ocr)
            .map_err(|e| e.to_string())?;
        // The model adds [CLS] and [SEP].
        let budget = self.opts.chunk_tokens.saturating_sub(2).max(16);
        // A passage never spans two pages, slides or sheets: its citation names one.
        let mut bounds: Vec<usize> = ex.sections.iter().map(|s| s.offset as usize).collect();
        bounds.retain(|&b| b > 0 && b < ex.text.len() && ex.text.is_char_boundary(b));
        bounds.insert(0, 0);
        bounds.push(ex.text.len());
        bounds.dedup();
        let cut: Vec<passages::Passage> = bounds
            .windows(2)
            .flat_map(|w| {
                passages::cut(&ex.text[w[0]..w[1]], budget, self.tokens.as_ref())
                    .into_iter()
                    .map(move |mut p| {
                        p.offset += w[0];
                        p
                    })
            })
            .collect();
        let out = cut
            .into_iter()
            .map(|p| {
                let text = ex.text[p.offset..p.offset + p.len].to_string();
                let key = self.keys.key_of(&passages::normalize(&text));
                NewPassage {
                    offset: p.offset as u64,
                    text,
                    key,
                    tokens: p.tokens as u32,
                }
            })
            .collect();
        let extra = FileExtra {
            meta: ex.meta,
            sections: ex.sections,
            warning: ex.warning,
            ocr_pending: ex.ocr,
        };
        Ok((ex.kind.as_str().to_string(), out, extra))
    }

    /// Processes everything queued in this thread (commands run without a daemon).
    /// With `vectors`, also embeds every queued chunk. `progress(stage, done, total)`.
    pub fn catch_up(
        &self,
        vectors: bool,
        progress: &dyn Fn(&str, u64, u64),
    ) -> Result<Option<EmbedError>> {
        loop {
            let batch: Vec<Ino> = {
                let mut q = self.queue.lock();
                let take: Vec<Ino> = q.iter().take(256).copied().collect();
                for i in &take {
                    q.remove(i);
                }
                take
            };
            if batch.is_empty() {
                break;
            }
            self.index_batch(&batch)?;
        }
        if !vectors {
            return Ok(None);
        }
        let total = self.pending_vectors()?;
        let mut done = 0;
        let outcome = loop {
            match self.embed_some(crate::pipeline::ROUND) {
                Ok(0) => break None,
                Ok(n) => {
                    done += n as u64;
                    progress("embedding", done.min(total), total);
                }
                Err(IndexError::Embed(e)) => break Some(e),
                Err(e) => return Err(e),
            }
        };
        self.persist_graph_if_changed()?;
        if let Err(e) = self.push_all_embeddings() {
            tracing::warn!("{e}: the embeddings stay queued for the next push");
        }
        Ok(outcome)
    }

    fn has_pending_ocr(&self, ino: Ino) -> Result<bool> {
        let txn = self.db.begin_read()?;
        let v = txn.open_table(FILE_EXTRA)?.get(ino)?;
        Ok(match v {
            Some(v) => !postcard::from_bytes::<FileExtra>(v.value())?
                .ocr_pending
                .is_empty(),
            None => false,
        })
    }

    /// What extraction found besides passages (metadata, sections, OCR still to do).
    pub fn file_extra(&self, ino: Ino) -> Result<FileExtra> {
        let txn = self.db.begin_read()?;
        let v = txn.open_table(FILE_EXTRA)?.get(ino)?;
        Ok(match v {
            Some(v) => postcard::from_bytes(v.value())?,
            None => FileExtra::default(),
        })
    }

    /// Chunks waiting for a vector.
    pub fn pending_vectors(&self) -> Result<u64> {
        Ok(self.db.begin_read()?.open_table(EMBED_QUEUE)?.len()?)
    }

    /// Waits until both queues are empty (with a running worker). `false` on timeout.
    pub fn wait_idle(&self, vectors: bool, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        // Writes and explicit mtimes the mount still buffers (group commit) reach the indexer
        // only when committed: commit them first, or `--wait` could return before it sees them.
        if let Err(e) = self.store.commit_buffered() {
            tracing::warn!("committing buffered writes before waiting: {e}");
        }
        loop {
            let pending_text = self.db.begin_read()?.open_table(PENDING)?.len()?;
            let queued = self.queue.lock().len();
            let busy = *self.busy.lock();
            let vectors_done = !vectors || self.pending_vectors()? == 0 || self.embedder_failed();
            let ocr_done = !self.opts.ocr.enabled
                || self.ocr_unavailable.lock().is_some()
                || self.db.begin_read()?.open_table(OCR_QUEUE)?.len()? == 0;
            if queued == 0 && busy == 0 && pending_text == 0 && vectors_done && ocr_done {
                return Ok(true);
            }
            if Instant::now() > deadline {
                return Ok(false);
            }
            let mut b = self.busy.lock();
            self.idle.wait_for(&mut b, Duration::from_millis(50));
        }
    }
}

/// How long the text worker lets a burst of changes accumulate before indexing them.
const SETTLE: Duration = Duration::from_millis(150);

/// Background work (indexing, the agent) yields the CPU to the file system: the calling
/// thread gets the lowest nice value (threads it creates, such as ONNX Runtime's, inherit it).
///
/// Not `SCHED_IDLE`: tried (2026-12-04). An idle-class thread preempted while it holds a lock
/// the FUSE threads need (the store's write-back state, the index) gets the CPU back only when
/// a core goes idle, so the file system waits on it; at nice 19 it still gets its small share.
/// The build that had it (with direct writes for every object too, not separated) took 1.3×
/// the time for 10,000 unlinks in both rounds of an A/B run, so the safe choice stays.
pub fn background_priority() {
    // SAFETY: gettid has no preconditions.
    set_background_priority(unsafe { libc::gettid() });
}

/// [`background_priority`] for thread `tid` of this process.
fn set_background_priority(tid: libc::pid_t) {
    // SAFETY: setpriority on a thread of this process, by its id (Linux: per-thread nice).
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
    }
}

/// Moves tantivy's own thread pools (segment updates, merges) to the lowest priority too.
///
/// They are started when the index writer is made, by whichever thread opened the index, so
/// they do not inherit the workers' priority (tantivy's indexing threads do: the text worker
/// starts them again at each commit). Measured during 10,000 unlinks on 2 cores: the segment
/// updater took 9 % of the daemon's CPU at normal priority, beside the FUSE threads.
fn lower_tantivy_threads() {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return; // not Linux: priorities stay as they are
    };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let comm = comm.trim_end();
        if comm == "segment_updater" || comm.starts_with("merge_thread_") {
            if let Some(tid) = task
                .file_name()
                .to_str()
                .and_then(|t| t.parse::<u32>().ok())
            {
                set_background_priority(tid as libc::pid_t);
            }
        }
    }
}

fn descendants(store: &Store, dir: Ino) -> Vec<Ino> {
    let mut out = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        if let Ok(entries) = store.readdir(d) {
            for e in entries {
                match e.kind {
                    Kind::Dir => stack.push(e.ino),
                    Kind::File => out.push(e.ino),
                    _ => {}
                }
            }
        }
    }
    out
}

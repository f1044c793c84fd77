//! `peros-indexer` makes the store searchable.
//!
//! It owns: extraction by type ([`extract`]), chunking with byte offsets ([`chunk`]), a tantivy
//! full-text index of chunks, embeddings of chunks ([`embed`], behind the [`Embedder`] trait) in
//! an hnsw_rs graph ([`vectors`]), the query language ([`query`]), hybrid ranking, and its own
//! state database (`state.redb`: what each file looked like when indexed, chunk texts, vectors,
//! the embedding queue).
//!
//! How it stays current: the store tells it which inodes changed ([`Indexer::attach`]); a
//! worker re-extracts those files, replaces their chunks in tantivy (searchable as soon as that
//! commit lands), and queues the new chunks for embedding, which a second worker does in the
//! background. At open, [`Indexer::reconcile`] compares the store with the recorded state and
//! queues every difference, so a crash or an offline change loses no indexing.
//!
//! It must not write to the store, and never runs on a FUSE callback: callbacks only enqueue.

pub mod chunk;
pub mod embed;
pub mod extract;
pub mod query;
pub mod search;
pub mod vectors;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use peros_store::{Change, Ino, Inode, Kind, Store};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use tantivy::schema::{Field, Schema, FAST, INDEXED, STORED, STRING, TEXT};
use tantivy::{doc, Index, IndexReader, IndexWriter, ReloadPolicy, Term};

pub use embed::{EmbedError, Embedder, FastEmbedder, ModelPaths};
pub use query::{parse as parse_query, Query, QueryError};
pub use search::{Hit, Mode, SearchOutcome};

const FILES: TableDefinition<u64, &[u8]> = TableDefinition::new("files");
const CHUNKS: TableDefinition<u64, &[u8]> = TableDefinition::new("chunks");
const VECTORS: TableDefinition<u64, &[u8]> = TableDefinition::new("vectors");
const PENDING: TableDefinition<u64, ()> = TableDefinition::new("pending");
const EMBED_QUEUE: TableDefinition<u64, ()> = TableDefinition::new("embed_queue");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

/// The tag attribute, shared with the FUSE layer and `peros tag`.
pub const TAGS_XATTR: &[u8] = b"user.peros.tags";

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Store(#[from] peros_store::StoreError),
    #[error("search index: {0}")]
    Index(String),
}

macro_rules! index_err {
    ($($t:ty),*) => {$(
        impl From<$t> for IndexError {
            fn from(e: $t) -> Self { IndexError::Index(e.to_string()) }
        }
    )*};
}
index_err!(
    tantivy::TantivyError,
    tantivy::directory::error::OpenDirectoryError,
    tantivy::query::QueryParserError,
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError,
    postcard::Error,
    std::io::Error
);

pub type Result<T, E = IndexError> = std::result::Result<T, E>;

/// What a file looked like when it was indexed.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct FileState {
    pub path: String,
    pub ext: String,
    pub kind: String,
    pub mtime: i64,
    pub mtime_nanos: u32,
    pub size: u64,
    pub tags: Vec<String>,
    pub chunk_ids: Vec<u64>,
    /// Why extraction failed or was skipped (binary, too large…).
    pub error: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct ChunkRec {
    ino: Ino,
    /// Byte offset of the chunk in the extracted text (= in the file for text types).
    offset: u64,
    text: String,
}

/// A file's state and its chunks (with ids) as written to the text index.
type FileDocs = (Ino, FileState, Vec<(u64, ChunkRec)>);

#[derive(Serialize, Clone, Debug, Default)]
pub struct IndexStatus {
    pub files: u64,
    pub chunks: u64,
    pub vectors: u64,
    pub pending_text: u64,
    pub pending_vectors: u64,
    pub embedder: String,
    pub errors: Vec<(String, String)>,
}

pub struct Options {
    pub dir: PathBuf,
    pub model: ModelPaths,
    /// Cap on extracted text per file.
    pub max_text_bytes: usize,
    pub chunk_bytes: usize,
    /// Weight of the semantic score in hybrid ranking (text gets 1 − this).
    pub semantic_weight: f32,
}

impl Options {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            model: ModelPaths::from_env(),
            max_text_bytes: 2 << 20,
            chunk_bytes: 1000,
            semantic_weight: 0.6,
        }
    }
}

struct Fields {
    chunk_id: Field,
    ino: Field,
    path: Field,
    text: Field,
    ext: Field,
    mtime: Field,
    size: Field,
    tags: Field,
    offset: Field,
}

enum EmbedderState {
    NotLoaded,
    Ready(Box<dyn Embedder>),
    Failed(EmbedError),
}

pub struct Indexer {
    store: Arc<Store>,
    db: Database,
    index: Index,
    writer: Mutex<IndexWriter>,
    reader: IndexReader,
    fields: Fields,
    vectors: vectors::VectorIndex,
    embedder: Mutex<EmbedderState>,
    opts: Options,
    /// In-memory view of the text queue (persisted in PENDING by the worker).
    queue: Mutex<BTreeSet<Ino>>,
    wake: Condvar,
    /// Set while a worker holds items it has taken from a queue.
    busy: Mutex<usize>,
    idle: Condvar,
    stop: AtomicBool,
    /// Bumped after every change to what a search can return (text commit, new vectors):
    /// views poll it to know when to re-evaluate.
    generation: AtomicU64,
    /// Bumped when new vectors arrive (only semantic results can change).
    vector_generation: AtomicU64,
    /// Recent query embeddings: views re-run the same queries on every index change.
    query_vectors: Mutex<HashMap<String, Vec<f32>>>,
}

fn ext_of(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or("");
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => String::new(),
    }
}

/// Tags are stored comma-separated in [`TAGS_XATTR`]; blanks around them are ignored.
pub fn parse_tags(v: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(v)
        .split(',')
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

fn tags_of(node: &Inode) -> Vec<String> {
    node.xattrs
        .get(TAGS_XATTR)
        .map(|v| parse_tags(v))
        .unwrap_or_default()
}

/// Creates `dir` (and missing parents) with mode 0700 whatever the umask, and sets an
/// existing one back to 0700: the index holds the text extracted from the files of an
/// encrypted store, in plaintext, so only its owner may enter it. (Indexes made by earlier
/// versions got the umask's mode: they are fixed on the next open.)
fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    if std::fs::metadata(dir)?.permissions().mode() & 0o7777 != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

fn vec_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn bytes_vec(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

impl Indexer {
    /// Opens (creating) the index in `opts.dir` and reconciles it with the store.
    pub fn open(store: Arc<Store>, opts: Options) -> Result<Arc<Self>> {
        make_private_dir(&opts.dir)?;
        make_private_dir(&opts.dir.join("text"))?;
        let db = Database::create(opts.dir.join("state.redb")).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => IndexError::Index(format!(
                "{} is in use by another peros process",
                opts.dir.display()
            )),
            other => other.into(),
        })?;
        {
            let txn = db.begin_write()?;
            txn.open_table(FILES)?;
            txn.open_table(CHUNKS)?;
            txn.open_table(VECTORS)?;
            txn.open_table(PENDING)?;
            txn.open_table(EMBED_QUEUE)?;
            txn.open_table(COUNTERS)?;
            txn.commit()?;
        }
        let mut sb = Schema::builder();
        let fields = Fields {
            chunk_id: sb.add_u64_field("chunk_id", INDEXED | STORED | FAST),
            ino: sb.add_u64_field("ino", INDEXED | FAST),
            path: sb.add_text_field("path", TEXT | STORED),
            text: sb.add_text_field("text", TEXT),
            ext: sb.add_text_field("ext", STRING | STORED),
            mtime: sb.add_i64_field("mtime", INDEXED | FAST),
            size: sb.add_u64_field("size", FAST),
            tags: sb.add_text_field("tags", STRING | STORED),
            offset: sb.add_u64_field("offset", STORED),
        };
        let schema = sb.build();
        let dir = tantivy::directory::MmapDirectory::open(opts.dir.join("text"))?;
        let index = Index::open_or_create(dir, schema)?;
        let writer = index.writer_with_num_threads(1, 50_000_000)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        // Rebuild the vector graph from the persisted vectors.
        let vecs: Vec<(u64, Vec<f32>)> = {
            let txn = db.begin_read()?;
            let t = txn.open_table(VECTORS)?;
            let mut out = Vec::new();
            for item in t.iter()? {
                let (k, v) = item?;
                out.push((k.value(), bytes_vec(v.value())));
            }
            out
        };
        let vectors = vectors::VectorIndex::build(&vecs);
        let pending: BTreeSet<Ino> = {
            let txn = db.begin_read()?;
            let t = txn.open_table(PENDING)?;
            t.iter()?
                .filter_map(|i| i.ok().map(|(k, _)| k.value()))
                .collect()
        };
        let me = Arc::new(Self {
            store,
            db,
            index,
            writer: Mutex::new(writer),
            reader,
            fields,
            vectors,
            embedder: Mutex::new(EmbedderState::NotLoaded),
            opts,
            queue: Mutex::new(pending),
            wake: Condvar::new(),
            busy: Mutex::new(0),
            idle: Condvar::new(),
            stop: AtomicBool::new(false),
            generation: AtomicU64::new(1),
            vector_generation: AtomicU64::new(1),
            query_vectors: Mutex::new(HashMap::new()),
        });
        me.reconcile()?;
        Ok(me)
    }

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

    /// Starts the background workers (text, then embeddings).
    pub fn start_workers(self: &Arc<Self>) {
        let me = self.clone();
        std::thread::Builder::new()
            .name("peros-index-text".into())
            .spawn(move || {
                background_priority();
                me.text_worker()
            })
            .expect("spawn text worker");
        let me = self.clone();
        std::thread::Builder::new()
            .name("peros-index-vectors".into())
            .spawn(move || {
                background_priority();
                me.vector_worker()
            })
            .expect("spawn vector worker");
    }

    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake.notify_all();
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
            *self.busy.lock() -= 1;
            self.idle.notify_all();
            self.wake.notify_all();
        }
    }

    fn vector_worker(self: Arc<Self>) {
        while !self.stop.load(Ordering::SeqCst) {
            match self.embed_some(32) {
                Ok(0) => {
                    let mut q = self.queue.lock();
                    self.wake.wait_for(&mut q, Duration::from_millis(500));
                }
                Ok(_) => {}
                Err(IndexError::Embed(_)) => {
                    // No model: text search still works; try again later.
                    let mut q = self.queue.lock();
                    self.wake.wait_for(&mut q, Duration::from_secs(30));
                }
                Err(e) => {
                    tracing::error!("embedding failed: {e}");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
            self.idle.notify_all();
        }
    }

    fn file_state(&self, ino: Ino) -> Result<Option<FileState>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(FILES)?;
        let v = t.get(ino)?;
        Ok(match v {
            Some(v) => Some(postcard::from_bytes(v.value())?),
            None => None,
        })
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
        let mut updates: Vec<(Ino, Option<FileState>, Vec<ChunkRec>, bool)> = Vec::new();
        for &ino in inos {
            let old = self.file_state(ino)?;
            let node = match self.store.getattr(ino) {
                Ok(n) if n.kind == Kind::File && n.nlink > 0 => n,
                Ok(_) | Err(peros_store::StoreError::NotFound(_)) => {
                    if old.is_some() {
                        updates.push((ino, None, Vec::new(), true));
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
            if let (true, Some(o)) = (same_content, &old) {
                if o.path == path && o.tags == tags {
                    continue;
                }
                // Renamed or retagged: same chunks and vectors, new path/tags in the text index.
                let mut st = o.clone();
                st.path = path;
                st.ext = ext_of(&st.path);
                st.tags = tags;
                let recs = self.chunk_recs(&st.chunk_ids)?;
                updates.push((ino, Some(st), recs, false));
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
            let recs = match self.extract_file(ino, &node, &st.path) {
                Ok((kind, chunks)) => {
                    st.kind = kind;
                    chunks
                        .into_iter()
                        .map(|c| ChunkRec {
                            ino,
                            offset: c.offset as u64,
                            text: c.text,
                        })
                        .collect()
                }
                Err(reason) => {
                    st.error = Some(reason);
                    Vec::new()
                }
            };
            updates.push((ino, Some(st), recs, true));
        }
        if updates.is_empty() {
            self.clear_pending(inos)?;
            return Ok(());
        }
        // Allocate chunk ids, write state, then the text index.
        let txn = self.db.begin_write()?;
        let mut docs: Vec<FileDocs> = Vec::new();
        {
            let mut files = txn.open_table(FILES)?;
            let mut chunks = txn.open_table(CHUNKS)?;
            let mut vecs = txn.open_table(VECTORS)?;
            let mut equeue = txn.open_table(EMBED_QUEUE)?;
            let mut counters = txn.open_table(COUNTERS)?;
            let mut next = counters.get("next_chunk")?.map(|v| v.value()).unwrap_or(1);
            for (ino, st, recs, content_changed) in updates {
                let old: Option<FileState> = match files.get(ino)? {
                    Some(v) => Some(postcard::from_bytes(v.value())?),
                    None => None,
                };
                if content_changed {
                    if let Some(o) = &old {
                        for id in &o.chunk_ids {
                            chunks.remove(*id)?;
                            vecs.remove(*id)?;
                            equeue.remove(*id)?;
                            self.vectors.remove(*id);
                        }
                    }
                }
                let Some(mut st) = st else {
                    files.remove(ino)?;
                    docs.push((ino, FileState::default(), Vec::new()));
                    continue;
                };
                let mut with_ids = Vec::new();
                if content_changed {
                    st.chunk_ids.clear();
                    for rec in recs {
                        let id = next;
                        next += 1;
                        chunks.insert(id, postcard::to_allocvec(&rec)?.as_slice())?;
                        equeue.insert(id, ())?;
                        st.chunk_ids.push(id);
                        with_ids.push((id, rec));
                    }
                } else {
                    with_ids = st.chunk_ids.iter().copied().zip(recs).collect();
                }
                files.insert(ino, postcard::to_allocvec(&st)?.as_slice())?;
                docs.push((ino, st, with_ids));
            }
            counters.insert("next_chunk", next)?;
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
        txn.commit()?;
        self.reader.reload()?;
        self.generation.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// The store this index follows.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Changes whenever the text index changes (files added, changed, removed, renamed,
    /// retagged): any search result may differ.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Changes whenever new embeddings arrive: only semantic and hybrid results may differ.
    pub fn vector_generation(&self) -> u64 {
        self.vector_generation.load(Ordering::SeqCst)
    }

    /// The embedding of a query text, cached (bounded) because views repeat their queries.
    fn embed_query(&self, text: &str) -> Result<Vec<f32>> {
        if let Some(v) = self.query_vectors.lock().get(text) {
            return Ok(v.clone());
        }
        let v = self.embed_texts(&[text])?.pop().unwrap_or_default();
        let mut cache = self.query_vectors.lock();
        if cache.len() >= 512 {
            cache.clear();
        }
        cache.insert(text.to_string(), v.clone());
        Ok(v)
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

    fn chunk_recs(&self, ids: &[u64]) -> Result<Vec<ChunkRec>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(CHUNKS)?;
        let mut out = Vec::new();
        for id in ids {
            if let Some(v) = t.get(*id)? {
                out.push(postcard::from_bytes(v.value())?);
            }
        }
        Ok(out)
    }

    /// Reads and extracts one file; `Err` is the reason it is not indexed.
    fn extract_file(
        &self,
        ino: Ino,
        node: &Inode,
        path: &str,
    ) -> std::result::Result<(String, Vec<chunk::TextChunk>), String> {
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
        let ex =
            extract::extract(name, &bytes, self.opts.max_text_bytes).map_err(|e| e.to_string())?;
        let chunks = chunk::chunk_text(&ex.text, self.opts.chunk_bytes, self.opts.chunk_bytes / 8);
        Ok((ex.kind.as_str().to_string(), chunks))
    }

    fn embedder_ready(&self) -> Result<()> {
        let mut e = self.embedder.lock();
        if let EmbedderState::NotLoaded = *e {
            *e = match FastEmbedder::load(&self.opts.model) {
                Ok(m) => EmbedderState::Ready(Box::new(m)),
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

    /// Uses `embedder` instead of loading the configured model (e.g. another model).
    pub fn set_embedder(&self, embedder: Box<dyn Embedder>) {
        *self.embedder.lock() = EmbedderState::Ready(embedder);
    }

    fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.embedder_ready()?;
        let mut e = self.embedder.lock();
        match &mut *e {
            EmbedderState::Ready(m) => Ok(m.embed(texts)?),
            _ => unreachable!("embedder_ready checked"),
        }
    }

    /// Embeds up to `max` queued chunks; returns how many.
    pub fn embed_some(&self, max: usize) -> Result<usize> {
        let ids: Vec<(u64, ChunkRec)> = {
            let txn = self.db.begin_read()?;
            let q = txn.open_table(EMBED_QUEUE)?;
            let chunks = txn.open_table(CHUNKS)?;
            let mut out = Vec::new();
            for item in q.iter()?.take(max) {
                let (k, _) = item?;
                if let Some(v) = chunks.get(k.value())? {
                    out.push((k.value(), postcard::from_bytes(v.value())?));
                }
            }
            out
        };
        if ids.is_empty() {
            // Queue entries without chunks (removed meanwhile) are dropped.
            let txn = self.db.begin_read()?;
            if txn.open_table(EMBED_QUEUE)?.len()? > 0 {
                drop(txn);
                let txn = self.db.begin_write()?;
                {
                    let chunks = txn.open_table(CHUNKS)?;
                    let mut q = txn.open_table(EMBED_QUEUE)?;
                    let stale: Vec<u64> = q
                        .iter()?
                        .filter_map(|i| i.ok().map(|(k, _)| k.value()))
                        .filter(|k| chunks.get(*k).ok().flatten().is_none())
                        .collect();
                    for k in stale {
                        q.remove(k)?;
                    }
                }
                txn.commit()?;
            }
            return Ok(0);
        }
        *self.busy.lock() += 1;
        let result = (|| {
            let texts: Vec<&str> = ids.iter().map(|(_, r)| r.text.as_str()).collect();
            let vecs = self.embed_texts(&texts)?;
            let mut txn = self.db.begin_write()?;
            txn.set_durability(redb::Durability::None)?;
            {
                let chunks = txn.open_table(CHUNKS)?;
                let mut vt = txn.open_table(VECTORS)?;
                let mut q = txn.open_table(EMBED_QUEUE)?;
                for ((id, _), v) in ids.iter().zip(&vecs) {
                    q.remove(*id)?;
                    // The file may have changed while we embedded: keep only live chunks.
                    if chunks.get(*id)?.is_some() {
                        vt.insert(*id, vec_bytes(v).as_slice())?;
                        self.vectors.insert(*id, v);
                    }
                }
            }
            txn.commit()?;
            self.vector_generation.fetch_add(1, Ordering::SeqCst);
            Ok(ids.len())
        })();
        *self.busy.lock() -= 1;
        if self.vectors.needs_rebuild() {
            let all = self.all_vectors()?;
            self.vectors.rebuild(&all);
        }
        result
    }

    fn all_vectors(&self) -> Result<Vec<(u64, Vec<f32>)>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(VECTORS)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            out.push((k.value(), bytes_vec(v.value())));
        }
        Ok(out)
    }

    /// Processes everything queued in this thread (commands run without a daemon).
    /// With `vectors`, also embeds every queued chunk. `progress(done, total)`.
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
        let total = self.status()?.pending_vectors;
        let mut done = 0;
        loop {
            match self.embed_some(16) {
                Ok(0) => break,
                Ok(n) => {
                    done += n as u64;
                    progress("embedding", done, total);
                }
                Err(IndexError::Embed(e)) => return Ok(Some(e)),
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Waits until both queues are empty (with a running worker). `false` on timeout.
    pub fn wait_idle(&self, vectors: bool, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.status()?;
            let queued = self.queue.lock().len();
            let busy = *self.busy.lock();
            let vectors_done = !vectors || st.pending_vectors == 0 || self.embedder_failed();
            if queued == 0 && busy == 0 && st.pending_text == 0 && vectors_done {
                return Ok(true);
            }
            if Instant::now() > deadline {
                return Ok(false);
            }
            let mut b = self.busy.lock();
            self.idle.wait_for(&mut b, Duration::from_millis(50));
        }
    }

    fn embedder_failed(&self) -> bool {
        matches!(*self.embedder.lock(), EmbedderState::Failed(_))
    }

    pub fn status(&self) -> Result<IndexStatus> {
        let txn = self.db.begin_read()?;
        let files = txn.open_table(FILES)?;
        let mut errors = Vec::new();
        for item in files.iter()? {
            let (_, v) = item?;
            let st: FileState = postcard::from_bytes(v.value())?;
            if let Some(e) = st.error {
                if errors.len() < 100 {
                    errors.push((st.path, e));
                }
            }
        }
        let embedder = match &*self.embedder.lock() {
            EmbedderState::NotLoaded => "not loaded yet".to_string(),
            EmbedderState::Ready(_) => "all-MiniLM-L6-v2 (384-d)".to_string(),
            EmbedderState::Failed(e) => format!("unavailable: {e}"),
        };
        Ok(IndexStatus {
            files: files.len()?,
            chunks: txn.open_table(CHUNKS)?.len()?,
            vectors: txn.open_table(VECTORS)?.len()?,
            pending_text: txn.open_table(PENDING)?.len()? + self.queue.lock().len() as u64,
            pending_vectors: txn.open_table(EMBED_QUEUE)?.len()?,
            embedder,
            errors,
        })
    }

    // ----- search -----
}

/// How long the text worker lets a burst of changes accumulate before indexing them.
const SETTLE: Duration = Duration::from_millis(150);

/// Indexing yields the CPU to the file system: the calling thread gets the lowest priority.
fn background_priority() {
    // SAFETY: setpriority on this thread's own id (Linux: per-thread nice values).
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
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

/// The default index directory inside a store's data directory.
pub fn default_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("index")
}

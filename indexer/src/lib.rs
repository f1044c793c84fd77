//! `peros-indexer` makes the store searchable.
//!
//! It owns: extraction by type ([`extract`]), passages cut to the model's window
//! ([`passages`]; snippets in [`chunk`]), a tantivy full-text index of passages, the embedding
//! store ([`embedstore`]: a vector per distinct passage text, sealed into the object store for
//! remote tenants), the embedder seam ([`embed`]: fastembed in process or an
//! OpenAI-compatible service), the vector graph ([`vectors`]: hnsw_rs, saved and loaded), the
//! query language ([`query`]), ranking ([`search`]) and its own state database ([`state`]).
//!
//! How it stays current ([`workers`]): the store tells it which inodes changed
//! ([`Indexer::attach`]); a worker re-extracts those files, replaces their passages in tantivy
//! (searchable as soon as that commit lands), keeps the ids of passages whose text did not
//! change, and queues the new ones for embedding, which a second worker does in the
//! background on all cores ([`pipeline`]), newest files and first passages first, looking
//! each text up in the embedding store before running the model. At open,
//! [`Indexer::reconcile`] compares the store with the recorded state and queues every
//! difference, so a crash or an offline change loses no indexing.
//!
//! It must not write the user's files, and never runs on a FUSE callback: callbacks only
//! enqueue. A query embeds on its own model session, so it never waits for the backlog.

pub mod chunk;
pub mod embed;
pub mod embedstore;
pub mod extract;
pub mod filevec;
pub mod ocr;
pub mod passages;
mod pipeline;
pub mod query;
pub mod relevance;
pub mod search;
pub mod state;
pub mod vectors;
mod workers;
pub use workers::background_priority;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};
use peros_store::{Ino, Store};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::Serialize;
use tantivy::schema::{Field, Schema, FAST, INDEXED, STORED, STRING, TEXT};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy};

pub use embed::{
    EmbedError, Embedder, EmbedderConfig, FastEmbedder, ModelPaths, RemoteEmbedder, RemoteEmbedding,
};
pub use filevec::{FileVector, FileVectors};
pub use query::{parse as parse_query, Query, QueryError};
pub use search::{Hit, Mode, SearchOutcome, SearchParams};
pub use state::{parse_tags, ChunkRec, FileState, TAGS_XATTR};

use state::*;

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

#[derive(Serialize, Clone, Debug, Default)]
pub struct IndexStatus {
    pub files: u64,
    pub chunks: u64,
    pub vectors: u64,
    pub pending_text: u64,
    pub pending_vectors: u64,
    pub embedder: String,
    /// The model the vectors are made with.
    pub model: String,
    /// Embedding throughput over the last minute of work (0 when idle).
    pub chunks_per_sec: f64,
    pub tokens_per_sec: f64,
    /// Seconds until the embedding queue is empty at that rate (None when idle or unknown).
    pub eta_secs: Option<u64>,
    /// Passages sent to the model since the index was opened, and passages whose vector came
    /// from the embedding store instead.
    pub embedded: u64,
    pub reused: u64,
    /// Distinct vectors in the embedding store.
    pub stored_vectors: u64,
    /// How this process got its vector index: "saved" (opened from its dump), "built" (from
    /// the stored vectors: no usable dump), or "empty"; and how long that took (the index is
    /// searchable from then on, by exact scan until the graph is ready).
    pub graph_origin: String,
    pub graph_open_ms: u64,
    /// Whether searches use the HNSW graph yet, and how long loading or building it took.
    /// One-shot commands never load it (their scans are exact); the daemon does at start.
    pub graph_ready: bool,
    pub graph_load_ms: Option<u64>,
    /// Something the user should know about the index (e.g. the model changed).
    pub notice: Option<String>,
    /// The OCR queue.
    pub ocr: ocr::OcrStatus,
    /// Files indexed only in part, and why (page limit, time limit, OCR limit); first 100.
    pub warnings: Vec<(String, String)>,
    pub errors: Vec<(String, String)>,
}

pub struct Options {
    pub dir: PathBuf,
    pub model: ModelPaths,
    /// `[index] embed_endpoint`: embed with a remote service instead of the local model.
    pub remote: Option<RemoteEmbedding>,
    /// ONNX Runtime threads for the background embedder (0: all cores).
    pub embed_threads: usize,
    /// Cap on extracted text per file.
    pub max_text_bytes: usize,
    /// Passage length in model tokens, special tokens included (the model's window is 256).
    pub chunk_tokens: usize,
    /// Weight of the semantic score in hybrid ranking (text gets 1 − this).
    pub semantic_weight: f32,
    /// Seal new embeddings into the object store and pull others' at open (remote stores:
    /// a fresh node then has semantic search without embedding anything).
    pub share_embeddings: bool,
    /// `[index] ocr_languages`, `ocr_time_limit_secs`, `ocr`.
    pub ocr: ocr::OcrOptions,
}

impl Options {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            model: ModelPaths::from_env(),
            remote: None,
            embed_threads: 0,
            max_text_bytes: 2 << 20,
            chunk_tokens: DEFAULT_CHUNK_TOKENS,
            // Chosen on the tuning half of perfs/search/questions.tsv (docs/RELEVANCE.md).
            semantic_weight: 0.9,
            share_embeddings: false,
            ocr: ocr::OcrOptions::default(),
        }
    }

    pub fn embedder_config(&self) -> EmbedderConfig {
        match &self.remote {
            Some(r) => EmbedderConfig::Remote(r.clone()),
            None => EmbedderConfig::Local {
                paths: self.model.clone(),
                threads: self.embed_threads,
            },
        }
    }
}

/// Passage length (tokens, special tokens included) unless configured: chosen on the labelled
/// questions of `perfs/search` (see its README for the comparison with 128).
pub const DEFAULT_CHUNK_TOKENS: usize = 256;

pub(crate) struct Fields {
    pub chunk_id: Field,
    pub ino: Field,
    pub path: Field,
    pub text: Field,
    pub ext: Field,
    pub mtime: Field,
    pub size: Field,
    pub tags: Field,
    pub offset: Field,
}

pub(crate) enum EmbedderState {
    NotLoaded,
    Ready(Box<dyn Embedder>),
    Failed(EmbedError),
}

/// Counters for `status` (since open).
#[derive(Default)]
pub(crate) struct Counters {
    pub embedded: AtomicU64,
    pub reused: AtomicU64,
    pub ocr_done: AtomicU64,
    pub ocr_failed: AtomicU64,
    pub ocr_cached: AtomicU64,
}

pub struct Indexer {
    pub(crate) store: Arc<Store>,
    pub(crate) db: Database,
    pub(crate) index: Index,
    pub(crate) writer: Mutex<IndexWriter>,
    pub(crate) reader: IndexReader,
    pub(crate) fields: Fields,
    pub(crate) vectors: vectors::VectorIndex,
    /// Held while the graph and its log change, and while the graph is dumped.
    pub(crate) graph_writer: Mutex<()>,
    /// The background embedder (all cores) and the query embedder (its own session).
    pub(crate) embedder: Mutex<EmbedderState>,
    pub(crate) query_embedder: Mutex<EmbedderState>,
    pub(crate) tokens: Box<dyn passages::TokenCounter>,
    pub(crate) keys: embedstore::KeyHasher,
    pub(crate) ocr_keys: ocr::OcrKeys,
    /// Why OCR cannot run on this machine (set when a tool is missing).
    pub(crate) ocr_unavailable: Mutex<Option<String>>,
    /// Files an OCR worker is reading now.
    pub(crate) ocr_claimed: Mutex<std::collections::HashSet<Ino>>,
    pub(crate) model_id: String,
    pub(crate) opts: Options,
    /// In-memory view of the text queue (persisted in PENDING by the worker).
    pub(crate) queue: Mutex<BTreeSet<Ino>>,
    pub(crate) wake: Condvar,
    /// Set while a worker holds items it has taken from a queue.
    pub(crate) busy: Mutex<usize>,
    /// Set while the text worker indexes a batch (OCR waits for text, not for embeddings).
    pub(crate) text_working: AtomicBool,
    pub(crate) idle: Condvar,
    pub(crate) stop: AtomicBool,
    /// Bumped after every change to what a search can return (text commit, new vectors):
    /// views poll it to know when to re-evaluate.
    pub(crate) generation: AtomicU64,
    /// Bumped when new vectors arrive (only semantic results can change).
    pub(crate) vector_generation: AtomicU64,
    /// Recent query embeddings: views re-run the same queries on every index change.
    pub(crate) query_vectors: Mutex<HashMap<String, Vec<f32>>>,
    pub(crate) counters: Counters,
    pub(crate) rates: Mutex<pipeline::Rates>,
    /// See [`IndexStatus::graph_origin`].
    pub(crate) graph_origin: Mutex<(String, u64)>,
    pub(crate) notice: Mutex<Option<String>>,
    /// Files just opened in the mount ([`Indexer::opened`]): their queued passages move ahead
    /// of every other file's at the next embedding round.
    pub(crate) opened: Mutex<std::collections::VecDeque<Ino>>,
}

impl Indexer {
    /// Opens (creating) the index in `opts.dir` and reconciles it with the store.
    pub fn open(store: Arc<Store>, opts: Options) -> Result<Arc<Self>> {
        make_private_dir(&opts.dir)?;
        let db = open_state(&opts.dir)?;
        make_private_dir(&opts.dir.join("text"))?;
        let model_id = opts.embedder_config().model_id();
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
        let tokens: Box<dyn passages::TokenCounter> =
            match passages::ModelTokens::load(&opts.embedder_config().tokenizer_file()) {
                Ok(t) => Box::new(t),
                Err(e) => {
                    tracing::warn!(
                        "no tokenizer ({e}): passages are cut by an estimate of their tokens"
                    );
                    Box::new(passages::ApproxTokens)
                }
            };
        let pending: BTreeSet<Ino> = {
            let txn = db.begin_read()?;
            let t = txn.open_table(PENDING)?;
            t.iter()?
                .filter_map(|i| i.ok().map(|(k, _)| k.value()))
                .collect()
        };
        let keys = embedstore::KeyHasher::new(store.keyring());
        let ocr_keys = ocr::OcrKeys::new(store.keyring());
        let me = Arc::new(Self {
            store,
            db,
            index,
            writer: Mutex::new(writer),
            reader,
            fields,
            vectors: vectors::VectorIndex::default(),
            graph_writer: Mutex::new(()),
            embedder: Mutex::new(EmbedderState::NotLoaded),
            query_embedder: Mutex::new(EmbedderState::NotLoaded),
            tokens,
            keys,
            ocr_keys,
            ocr_unavailable: Mutex::new(None),
            ocr_claimed: Mutex::new(Default::default()),
            model_id,
            opts,
            queue: Mutex::new(pending),
            wake: Condvar::new(),
            busy: Mutex::new(0),
            text_working: AtomicBool::new(false),
            idle: Condvar::new(),
            stop: AtomicBool::new(false),
            generation: AtomicU64::new(1),
            vector_generation: AtomicU64::new(1),
            query_vectors: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            rates: Mutex::new(pipeline::Rates::default()),
            graph_origin: Mutex::new(("empty".into(), 0)),
            notice: Mutex::new(None),
            opened: Mutex::new(Default::default()),
        });
        me.check_model()?;
        let t = std::time::Instant::now();
        let origin = me.load_graph()?;
        *me.graph_origin.lock() = (origin.to_string(), t.elapsed().as_millis() as u64);
        if let Err(e) = me.pull_embeddings() {
            tracing::warn!("{e}: continuing with the local embedding store");
        }
        if me.opts.ocr.enabled {
            if let Err(e) = me.pull_ocr_results() {
                tracing::warn!("{e}: OCR results of other nodes are not used yet");
            }
        }
        me.reconcile()?;
        Ok(me)
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

    /// The model id the vectors are made with.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    pub(crate) fn file_state(&self, ino: Ino) -> Result<Option<FileState>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(FILES)?;
        let v = t.get(ino)?;
        Ok(match v {
            Some(v) => Some(postcard::from_bytes(v.value())?),
            None => None,
        })
    }

    pub(crate) fn chunk_recs(&self, ids: &[u64]) -> Result<Vec<ChunkRec>> {
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

    /// The vector of a chunk, if it has one (for exact scans over a filtered set).
    pub fn chunk_vector(&self, id: u64) -> Result<Option<Vec<f32>>> {
        let txn = self.db.begin_read()?;
        let Some(rec) = txn.open_table(CHUNKS)?.get(id)? else {
            return Ok(None);
        };
        let rec: ChunkRec = postcard::from_bytes(rec.value())?;
        let v = txn.open_table(EMBEDDINGS)?.get(rec.key.as_slice())?;
        Ok(v.map(|v| bytes_vec(v.value())))
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
            EmbedderState::Ready(e) => match self.opts.remote.as_ref() {
                Some(r) => format!("{} at {}", r.model, r.endpoint),
                None => format!("{} ({}-d)", embed::LOCAL_MODEL_ID, e.dim()),
            },
            EmbedderState::Failed(e) => format!("unavailable: {e}"),
        };
        let pending_vectors = txn.open_table(EMBED_QUEUE)?.len()?;
        let (chunks_per_sec, tokens_per_sec) = self.rates.lock().per_sec();
        let eta_secs = (chunks_per_sec > 0.0 && pending_vectors > 0)
            .then(|| (pending_vectors as f64 / chunks_per_sec).ceil() as u64);
        // Each lock in its own statement: a guard in a struct expression lives to its end.
        let queued = self.queue.lock().len() as u64;
        let (graph_origin, graph_open_ms) = self.graph_origin.lock().clone();
        let notice = self.notice.lock().clone();
        let mut warnings = Vec::new();
        for item in txn.open_table(FILE_EXTRA)?.iter()? {
            let (ino, v) = item?;
            let x: FileExtra = postcard::from_bytes(v.value())?;
            if let (Some(w), Some(st)) = (x.warning, files.get(ino.value())?) {
                let st: FileState = postcard::from_bytes(st.value())?;
                warnings.push((st.path, w));
                if warnings.len() >= 100 {
                    break;
                }
            }
        }
        let ocr = self.ocr_status()?;
        Ok(IndexStatus {
            ocr,
            warnings,
            files: files.len()?,
            chunks: txn.open_table(CHUNKS)?.len()?,
            vectors: txn.open_table(VECTORS)?.len()?,
            pending_text: txn.open_table(PENDING)?.len()? + queued,
            pending_vectors,
            embedder,
            model: self.model_id.clone(),
            chunks_per_sec,
            tokens_per_sec,
            eta_secs,
            embedded: self.counters.embedded.load(Ordering::Relaxed),
            reused: self.counters.reused.load(Ordering::Relaxed),
            stored_vectors: txn.open_table(EMBEDDINGS)?.len()?,
            graph_origin,
            graph_open_ms,
            graph_ready: self.vectors.graph_ready(),
            graph_load_ms: self.vectors.graph_load_ms(),
            notice,
            errors,
        })
    }
}

/// Opens `state.redb`, creating its tables; an index of an older format is removed first
/// (it is rebuilt from the store: text in seconds, vectors from the embedding store).
fn open_state(dir: &Path) -> Result<Database> {
    let path = dir.join("state.redb");
    let open = |path: &Path| {
        // redb's default page cache is 1 GiB: bound it (passages and vectors are read in
        // small rounds; the OS page cache does the rest).
        Database::builder()
            .set_cache_size(64 << 20)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => IndexError::Index(format!(
                    "{} is in use by another peros process",
                    dir.display()
                )),
                other => other.into(),
            })
    };
    let mut db = open(&path)?;
    let format = {
        let txn = db.begin_read()?;
        match txn.open_table(META) {
            Ok(t) => t
                .get("format")?
                .map(|v| u64::from_le_bytes(v.value().try_into().unwrap_or([0; 8]))),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        }
    };
    let fresh = {
        let txn = db.begin_read()?;
        let list = txn.list_tables()?.count();
        list == 0
    };
    if format != Some(FORMAT) && !fresh {
        tracing::warn!(
            "the search index in {} is of an older format: rebuilding it from the store",
            dir.display()
        );
        drop(db);
        std::fs::remove_file(&path)?;
        let _ = std::fs::remove_dir_all(dir.join("text"));
        let _ = std::fs::remove_dir_all(dir.join("graph"));
        db = open(&path)?;
    }
    let txn = db.begin_write()?;
    txn.open_table(FILES)?;
    txn.open_table(CHUNKS)?;
    txn.open_table(EMBEDDINGS)?;
    txn.open_table(VECTORS)?;
    txn.open_table(GRAPH_LOG)?;
    txn.open_table(PENDING)?;
    txn.open_table(EMBED_QUEUE)?;
    txn.open_table(UNPUSHED)?;
    txn.open_table(SEGMENTS)?;
    txn.open_table(COUNTERS)?;
    txn.open_table(FILE_EXTRA)?;
    txn.open_table(OCR_QUEUE)?;
    txn.open_table(OCR_CACHE)?;
    txn.open_table(META)?
        .insert("format", FORMAT.to_le_bytes().as_slice())?;
    txn.commit()?;
    Ok(db)
}

/// The default index directory inside a store's data directory.
pub fn default_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("index")
}

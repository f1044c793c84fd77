//! `peros-store` is the file system's truth, independent of FUSE.
//!
//! It owns the namespace (inodes, directory entries, attributes, xattrs), each file's chunk
//! layouts, the per-path version history, and the set of sealed objects; all of it in one redb
//! database. A file is 4 MiB chunks; a chunk is slices, each a sealed object written once
//! (JuiceFS's layout): a write adds a slice with just the bytes it changed, a read applies
//! a chunk's slices oldest first, compaction replaces many slices by one. Layouts live in their
//! own table keyed by (inode, chunk), holes implicit, so a 1 PB sparse file costs bytes.
//!
//! The one write path for everything (the mount, import, restore, watch) is here too:
//! [`Store::write_at`] buffers writes in memory under a global dirty limit (writers wait,
//! never run the daemon out of memory), background committers seal and upload on every core,
//! and [`Store::flush`] commits what a close or fsync needs.
//!
//! Ordering gives crash consistency: a metadata transaction that references new objects is
//! committed durably only after [`ObjectBackend::sync`] returned. Garbage (overwritten slices,
//! objects no file or kept version references, objects of a crash in between) is reclaimed in
//! the background ([`Store::maintain`]); [`Store::fsck`] checks the invariants. A bounded
//! in-memory cache keeps decrypted objects.
//!
//! Modules by concern: `namespace` ops live in this file, `contents` (reads, sealing,
//! truncation, compaction), `writeback` (buffers, committers), `versions`, `gc`, `fsck`,
//! `migrate` (stores of the inline-chunk-list format), `layout` (pure slice arithmetic).
//!
//! It must not know about FUSE, the CLI, indexing or policy: callers translate to and from it.

pub mod access;
pub mod backend;
pub mod cached;
mod contents;
mod direct;
mod fsck;
mod gc;
mod held;
pub mod layout;
pub mod meta;
mod migrate;
pub mod querydirs;
pub mod s3;
pub mod tenant;
mod versions;
mod writeback;

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use peros_crypto::{CryptoError, Keyring, ObjectName};
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};
use serde::Serialize;

pub use backend::{BackendError, ObjectBackend, ObjectStoreBackend};
pub use cached::{CacheOptions, CacheStats, CachedBackend};
pub use meta::*;

const INODES: TableDefinition<u64, &[u8]> = TableDefinition::new("inodes");
const DIRENTS: TableDefinition<(u64, &[u8]), u64> = TableDefinition::new("dirents");
const VERSIONS: TableDefinition<(&[u8], u64), &[u8]> = TableDefinition::new("versions");
/// Sealed objects known to exist in the backend: keyed name → sealed size.
const OBJECTS: TableDefinition<&[u8], u64> = TableDefinition::new("objects");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
/// Facts about the store itself: `public_key` = the age recipient its objects are sealed to.
const INFO: TableDefinition<&str, &str> = TableDefinition::new("store_info");
/// Inodes whose last link went while the file was open: freed at last close or next mount.
const ORPHANS: TableDefinition<u64, ()> = TableDefinition::new("orphans");

/// Chunk layouts: (inode, chunk index) → [`ChunkLayout`]; a missing row is a hole.
const LAYOUT: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("layout");

/// redb's page cache for the metadata (its default is 1 GiB, which the daemon's RSS grew
/// towards as the database did: 2,000 files with 64 KiB of xattrs took 270 MB). Metadata
/// pages not cached are read again from the OS page cache.
const META_CACHE_BYTES: usize = 64 * 1024 * 1024;

const CHUNK_PREFIX: &str = "chunks/";
/// The metadata format this code writes (`store_info` key `format`): 2 = separate layouts.
const FORMAT: &str = "2";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}: no such file or directory")]
    NotFound(String),
    #[error("{0}: already exists")]
    Exists(String),
    #[error("{0}: not a directory")]
    NotDir(String),
    #[error("{0}: is a directory")]
    IsDir(String),
    #[error("{0}: directory not empty")]
    NotEmpty(String),
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error("file name too long (255 bytes at most)")]
    NameTooLong,
    #[error("{0}: no such attribute")]
    NoAttr(String),
    #[error("{0}: past the largest file size ({max} bytes)", max = MAX_FILE_SIZE)]
    TooBig(String),
    #[error("{0}: no room for more extended attributes ({total} bytes of names and values, {list} of names, at most)", total = XATTR_TOTAL_MAX, list = XATTR_LIST_MAX)]
    XattrSpace(String),
    #[error("cannot read {file}: chunk {index} (object {object}) is damaged: {detail}; run `peros fsck` to list damaged files")]
    Chunk {
        file: String,
        index: usize,
        object: String,
        detail: String,
    },
    #[error("the key does not belong to this store: its metadata was made with key {expected}, the key file holds {found}")]
    WrongKey { expected: String, found: String },
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("metadata database: {0}")]
    Db(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    /// The POSIX errno for this failure, for the FUSE layer.
    pub fn errno(&self) -> i32 {
        match self {
            StoreError::NotFound(_) => libc::ENOENT,
            StoreError::Exists(_) => libc::EEXIST,
            StoreError::NotDir(_) => libc::ENOTDIR,
            StoreError::IsDir(_) => libc::EISDIR,
            StoreError::NotEmpty(_) => libc::ENOTEMPTY,
            StoreError::Invalid(_) => libc::EINVAL,
            StoreError::NameTooLong => libc::ENAMETOOLONG,
            StoreError::NoAttr(_) => libc::ENODATA,
            StoreError::TooBig(_) => libc::EFBIG,
            StoreError::XattrSpace(_) => libc::ENOSPC,
            StoreError::Io(e) => e.raw_os_error().unwrap_or(libc::EIO),
            // A full disk under the objects or the metadata arrives as text (object_store and
            // redb keep only the message): say ENOSPC, so that writers see "disk full".
            StoreError::Backend(_) | StoreError::Db(_)
                if self.to_string().contains("No space left on device")
                    || self.to_string().contains("os error 28") =>
            {
                libc::ENOSPC
            }
            _ => libc::EIO,
        }
    }
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Db(e.to_string()) }
        }
    )*};
}
db_err!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError,
    postcard::Error
);

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Objects newly written by an operation: keyed name and sealed size.
type NewObjects = Vec<(ObjectName, u64)>;

/// Options for opening a store.
pub struct StoreOptions {
    /// Bytes of decrypted chunks kept in memory.
    pub cache_bytes: u64,
    /// Versions kept per path (oldest dropped first).
    pub versions_keep: usize,
    /// Buffered, not yet sealed write data across all files; writers wait beyond it.
    pub dirty_limit_bytes: u64,
    /// Pack the slices of small files into shared objects (off: one object per file, which
    /// benchmarks use to measure what packing saves).
    pub pack_small_files: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            cache_bytes: 256 * 1024 * 1024,
            versions_keep: 32,
            dirty_limit_bytes: 128 * 1024 * 1024,
            pack_small_files: true,
        }
    }
}

#[derive(Clone)]
struct ChunkWeighter;
impl quick_cache::Weighter<ObjectName, Arc<Vec<u8>>> for ChunkWeighter {
    fn weight(&self, _: &ObjectName, v: &Arc<Vec<u8>>) -> u64 {
        v.len().max(1) as u64
    }
}

/// Attribute changes for [`Store::setattr`]; `None` leaves a field alone.
#[derive(Default, Clone, Debug)]
pub struct SetAttr {
    pub perm: Option<u16>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<Time>,
    pub mtime: Option<Time>,
    pub ctime: Option<Time>,
}

/// How a rename treats an existing target (renameat2 flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RenameMode {
    #[default]
    Replace,
    NoReplace,
    Exchange,
}

#[derive(Serialize, Debug, Clone)]
pub struct VersionInfo {
    pub version: u64,
    pub recorded: Time,
    pub size: u64,
    pub mtime: Time,
    pub deleted: bool,
}

#[derive(Serialize, Debug, Default, Clone)]
pub struct Stats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub other: u64,
    pub logical_bytes: u64,
    /// Bytes of file data actually held (holes excluded).
    pub live_bytes: u64,
    pub objects: u64,
    /// Sealed bytes in the object store (live data, kept versions, garbage not yet reclaimed).
    pub stored_bytes: u64,
    pub versions: u64,
    /// Estimated bytes of garbage the background collection has yet to reclaim.
    pub garbage_bytes: u64,
    /// Write data buffered in memory, not yet sealed.
    pub dirty_bytes: u64,
    pub cache_bytes: u64,
    pub cache_capacity: u64,
}

#[derive(Serialize, Debug, Clone)]
pub struct Problem {
    pub kind: String,
    pub path: String,
    pub detail: String,
}

#[derive(Serialize, Debug, Default)]
pub struct FsckReport {
    pub inodes: u64,
    pub chunks_checked: u64,
    pub problems: Vec<Problem>,
}

#[derive(Serialize, Debug, Default)]
pub struct GcReport {
    pub objects_seen: u64,
    pub objects_removed: u64,
    pub bytes_freed: u64,
}

/// The store: metadata database + sealed objects + chunk cache.
pub struct Store {
    db: Database,
    keyring: Arc<Keyring>,
    backend: Arc<dyn ObjectBackend>,
    cache: quick_cache::sync::Cache<
        ObjectName,
        Arc<Vec<u8>>,
        ChunkWeighter,
        quick_cache::DefaultHashBuilder,
        held::Held,
    >,
    cache_capacity: u64,
    /// Prefetched objects not read yet, pinned in `cache` (held.rs says why).
    held: held::Held,
    versions_keep: usize,
    /// [`StoreOptions::pack_small_files`].
    pack_small_files: bool,
    /// Writers hold it shared from the first upload to the commit that references it; `gc`
    /// holds it exclusively, so it never deletes an object a commit is about to reference.
    ingest: RwLock<()>,
    /// Tells whether an inode is open (set by the FUSE layer), so unlink keeps it readable.
    open_probe: RwLock<Option<OpenProbe>>,
    /// Namespace and attribute changes commit without fsync; [`Store::sync`] (called by the
    /// mount's syncer every few seconds, by fsync, and on drop) makes them durable.
    lazy: AtomicBool,
    /// Told about every committed change (the indexer's queue).
    listener: RwLock<Option<ChangeListener>>,
    /// A commit was made without fsync since the last [`Store::sync`].
    unsynced: AtomicBool,
    /// Commits that changed something (not the empty ones of `sync`): lets a
    /// [`DurableHook`] tell whether the metadata changed since it last looked.
    commits: AtomicU64,
    /// Told after each durable point (remote stores push their metadata snapshot there).
    hook: RwLock<Option<Arc<dyn DurableHook>>>,
    meta_path: std::path::PathBuf,
    /// Write buffers of open files and the committers that drain them.
    writeback: writeback::Writeback,
    /// Garbage collection state: the estimate that triggers it, objects being deleted.
    gc: gc::GcState,
}

/// Told after each durable point of the store: [`Store::sync`], a durable content commit,
/// and close. Remote stores use it to push the encrypted metadata snapshot
/// ([`tenant::Tenant`]); an error fails the sync (and so the caller's fsync).
pub trait DurableHook: Send + Sync {
    fn after_durable(&self, store: &Store) -> Result<()>;
}

type OpenProbe = Box<dyn Fn(Ino) -> bool + Send + Sync>;

fn object_key(name: &ObjectName) -> String {
    let hex = name.to_hex();
    format!("{CHUNK_PREFIX}{}/{}", &hex[..2], hex)
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(StoreError::Invalid(format!(
            "{:?} is not a valid file name",
            show(name)
        )));
    }
    if name.len() > 255 {
        return Err(StoreError::NameTooLong);
    }
    Ok(())
}

/// Split a `/`-separated store path into components (empty and `.` components dropped).
pub fn path_components(path: &[u8]) -> Vec<&[u8]> {
    path.split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect()
}

/// Normalised absolute form of a store path: `/a/b`.
pub fn normalize_path(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in path_components(path) {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// Operations inside one write transaction.
struct Tx<'a> {
    txn: &'a WriteTransaction,
    /// Inodes written or removed, for the change listener; `true` = moved (renamed).
    touched: std::cell::RefCell<Vec<Change>>,
}

/// One inode changed by a committed transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    pub ino: Ino,
    /// Its name or parent changed (a rename): for a directory, every path below it changed.
    pub moved: bool,
}

type ChangeListener = Box<dyn Fn(&[Change]) + Send + Sync>;

impl Tx<'_> {
    fn inode(&self, ino: Ino) -> Result<Inode> {
        let t = self.txn.open_table(INODES)?;
        let v = t
            .get(ino)?
            .ok_or_else(|| StoreError::NotFound(format!("inode {ino}")))?;
        Ok(postcard::from_bytes(v.value())?)
    }

    fn touch(&self, ino: Ino, moved: bool) {
        self.touched.borrow_mut().push(Change { ino, moved });
    }

    fn put_inode(&self, ino: Ino, inode: &Inode) -> Result<()> {
        self.touch(ino, false);
        let bytes = postcard::to_allocvec(inode)?;
        self.txn.open_table(INODES)?.insert(ino, bytes.as_slice())?;
        Ok(())
    }

    fn del_inode(&self, ino: Ino) -> Result<()> {
        self.touch(ino, false);
        self.txn.open_table(INODES)?.remove(ino)?;
        self.del_layouts(ino, 0)?;
        Ok(())
    }

    /// The layout of chunk `idx` of `ino` (empty for a hole).
    fn layout(&self, ino: Ino, idx: u64) -> Result<ChunkLayout> {
        let t = self.txn.open_table(LAYOUT)?;
        let found = match t.get((ino, idx))? {
            Some(v) => postcard::from_bytes(v.value())?,
            None => ChunkLayout::default(),
        };
        Ok(found)
    }

    /// Every chunk layout of `ino`, by index.
    fn layouts(&self, ino: Ino) -> Result<Vec<(u64, ChunkLayout)>> {
        let t = self.txn.open_table(LAYOUT)?;
        let mut out = Vec::new();
        for item in t.range((ino, 0u64)..=(ino, u64::MAX))? {
            let (k, v) = item?;
            out.push((k.value().1, postcard::from_bytes(v.value())?));
        }
        Ok(out)
    }

    fn put_layout(&self, ino: Ino, idx: u64, layout: &ChunkLayout) -> Result<()> {
        let mut t = self.txn.open_table(LAYOUT)?;
        if layout.is_empty() {
            t.remove((ino, idx))?;
        } else {
            t.insert((ino, idx), postcard::to_allocvec(layout)?.as_slice())?;
        }
        Ok(())
    }

    /// Removes the layouts of chunks `from..` of `ino`; returns the bytes they referenced.
    fn del_layouts(&self, ino: Ino, from: u64) -> Result<u64> {
        let mut t = self.txn.open_table(LAYOUT)?;
        let mut freed = 0u64;
        t.retain_in((ino, from)..=(ino, u64::MAX), |_, v| {
            if let Ok(l) = postcard::from_bytes::<ChunkLayout>(v) {
                freed += l.referenced();
            }
            false
        })?;
        Ok(freed)
    }

    fn entry(&self, parent: Ino, name: &[u8]) -> Result<Option<Ino>> {
        let t = self.txn.open_table(DIRENTS)?;
        let found = t.get((parent, name))?.map(|v| v.value());
        Ok(found)
    }

    fn put_entry(&self, parent: Ino, name: &[u8], ino: Ino) -> Result<()> {
        self.txn.open_table(DIRENTS)?.insert((parent, name), ino)?;
        Ok(())
    }

    fn del_entry(&self, parent: Ino, name: &[u8]) -> Result<()> {
        self.txn.open_table(DIRENTS)?.remove((parent, name))?;
        Ok(())
    }

    fn has_children(&self, dir: Ino) -> Result<bool> {
        let t = self.txn.open_table(DIRENTS)?;
        let empty: &[u8] = &[];
        let any = t.range((dir, empty)..(dir + 1, empty))?.next().is_some();
        Ok(any)
    }

    fn alloc_ino(&self) -> Result<Ino> {
        let mut t = self.txn.open_table(COUNTERS)?;
        let next = t
            .get("next_ino")?
            .map(|v| v.value())
            .unwrap_or(ROOT_INO + 1);
        t.insert("next_ino", next + 1)?;
        Ok(next)
    }

    fn note_objects(&self, objs: &[(ObjectName, u64)]) -> Result<()> {
        let mut t = self.txn.open_table(OBJECTS)?;
        for (name, size) in objs {
            t.insert(name.0.as_slice(), *size)?;
        }
        Ok(())
    }

    fn path_of(&self, ino: Ino) -> Result<Vec<u8>> {
        let mut parts: Vec<Vec<u8>> = Vec::new();
        let mut cur = ino;
        let mut guard = 0;
        while cur != ROOT_INO && guard < 4096 {
            let node = self.inode(cur)?;
            parts.push(node.name.clone());
            cur = node.parent;
            guard += 1;
        }
        let mut out = Vec::new();
        for p in parts.iter().rev() {
            out.push(b'/');
            out.extend_from_slice(p);
        }
        if out.is_empty() {
            out.push(b'/');
        }
        Ok(out)
    }

    /// Appends a version of `path` unless it would repeat the newest one.
    fn add_version(&self, path: &[u8], rec: VersionRecord, keep: usize) -> Result<()> {
        let mut t = self.txn.open_table(VERSIONS)?;
        let (last_n, last_rec) = {
            let mut r = t.range((path, 0u64)..=(path, u64::MAX))?;
            match r.next_back() {
                Some(item) => {
                    let (k, v) = item?;
                    let rec: VersionRecord = postcard::from_bytes(v.value())?;
                    (k.value().1, Some(rec))
                }
                None => (0, None),
            }
        };
        if let Some(last) = &last_rec {
            if last.deleted == rec.deleted && last.layout == rec.layout && last.size == rec.size {
                return Ok(());
            }
        }
        if last_rec.is_none() && rec.deleted {
            return Ok(());
        }
        t.insert((path, last_n + 1), postcard::to_allocvec(&rec)?.as_slice())?;
        // Retention: drop the oldest beyond `keep`.
        let all: Vec<u64> = t
            .range((path, 0u64)..=(path, u64::MAX))?
            .map(|i| i.map(|(k, _)| k.value().1))
            .collect::<std::result::Result<_, _>>()?;
        if all.len() > keep {
            for n in &all[..all.len() - keep] {
                t.remove((path, *n))?;
            }
        }
        Ok(())
    }

    fn version_of(&self, ino: Ino, inode: &Inode, deleted: bool) -> Result<VersionRecord> {
        Ok(VersionRecord {
            recorded: Time::now(),
            size: inode.size,
            perm: inode.perm,
            mtime: inode.mtime,
            layout: if deleted {
                Vec::new()
            } else {
                self.layouts(ino)?
            },
            deleted,
        })
    }

    /// Drops one link to `ino`; frees the inode when it was the last (or, if `is_open` says the
    /// file is still open, keeps it as an orphan until [`Store::release_orphan`]).
    fn drop_link(&self, ino: Ino, keep: usize, is_open: &dyn Fn(Ino) -> bool) -> Result<()> {
        let mut node = self.inode(ino)?;
        if node.kind == Kind::Dir {
            self.del_inode(ino)?;
            return Ok(());
        }
        node.nlink = node.nlink.saturating_sub(1);
        if node.nlink == 0 {
            if node.kind == Kind::File {
                let path = self.path_of(ino)?;
                self.add_version(&path, self.version_of(ino, &node, true)?, keep)?;
            }
            if is_open(ino) {
                self.put_inode(ino, &node)?;
                self.txn.open_table(ORPHANS)?.insert(ino, ())?;
            } else {
                self.del_inode(ino)?;
            }
        } else {
            node.ctime = Time::now();
            self.put_inode(ino, &node)?;
        }
        Ok(())
    }
}

impl Store {
    /// Opens (creating if needed) the store whose metadata is at `meta_path`.
    pub fn open(
        meta_path: &Path,
        keyring: Arc<Keyring>,
        backend: Arc<dyn ObjectBackend>,
        opts: StoreOptions,
    ) -> Result<Self> {
        // redb trusts its file: some damage (found by fuzzing, see fuzz/targets.rs `meta_db`)
        // makes it panic instead of returning an error. Turn that into an error naming the file.
        let damaged = |what: &dyn std::fmt::Display| {
            StoreError::Db(format!(
                "{}: the metadata database is damaged ({what}); restore it from a backup or snapshot",
                meta_path.display()
            ))
        };
        let opened = std::panic::catch_unwind(|| {
            Database::builder()
                .set_cache_size(META_CACHE_BYTES)
                .create(meta_path)
        })
        .map_err(|p| damaged(&panic_text(&p)))?;
        let db = opened.map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Db(format!(
                "{} is in use by another peros process (a running `peros mount`?): stop it or use its mount",
                meta_path.display()
            )),
            other => StoreError::Db(format!("{}: {other}", meta_path.display())),
        })?;
        let held = held::Held::default();
        let store = Store {
            db,
            keyring,
            backend,
            // One shard: entries are 4 MiB, so lock contention is negligible, while quick_cache's
            // default shards split the budget so finely that a 64-chunk file thrashed a
            // 256 MiB cache (measured: 706 loads of 64 chunks in 10 s of random reads).
            cache:
                quick_cache::sync::Cache::with_options(
                    quick_cache::OptionsBuilder::new()
                        .shards(1)
                        .estimated_items_capacity(
                            (opts.cache_bytes / CHUNK_SIZE as u64).max(4) as usize
                        )
                        .weight_capacity(opts.cache_bytes.max(CHUNK_SIZE as u64))
                        .build()
                        .expect("valid cache options"),
                    ChunkWeighter,
                    Default::default(),
                    held.clone(),
                ),
            cache_capacity: opts.cache_bytes,
            held,
            versions_keep: opts.versions_keep.max(1),
            pack_small_files: opts.pack_small_files,
            ingest: RwLock::new(()),
            open_probe: RwLock::new(None),
            lazy: AtomicBool::new(false),
            listener: RwLock::new(None),
            unsynced: AtomicBool::new(false),
            commits: AtomicU64::new(0),
            hook: RwLock::new(None),
            meta_path: meta_path.to_path_buf(),
            writeback: writeback::Writeback::new(opts.dirty_limit_bytes),
            gc: gc::GcState::default(),
        };
        let root = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| store.ensure_root()));
        match root {
            Ok(Ok(())) => Ok(store),
            failed => {
                // Dropping syncs, which can panic on the same damage: keep that inside too.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(store)));
                Err(match failed {
                    Ok(Err(e)) => e,
                    Err(p) => damaged(&panic_text(&p)),
                    Ok(Ok(())) => unreachable!(),
                })
            }
        }
    }

    fn ensure_root(&self) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            let tx = Tx {
                txn: &txn,
                touched: Default::default(),
            };
            // Create every table so read transactions never meet a missing one.
            txn.open_table(INODES)?;
            txn.open_table(DIRENTS)?;
            txn.open_table(VERSIONS)?;
            txn.open_table(OBJECTS)?;
            txn.open_table(COUNTERS)?;
            txn.open_table(ORPHANS)?;
            txn.open_table(LAYOUT)?;
            // A key that is not this store's is refused before anything is written (stores made
            // before this check record their key on the next open).
            let mut info = txn.open_table(INFO)?;
            let found = self.keyring.public_key();
            let expected = info.get("public_key")?.map(|v| v.value().to_string());
            match expected {
                Some(expected) if expected != found => {
                    return Err(StoreError::WrongKey { expected, found });
                }
                Some(_) => {}
                None => {
                    info.insert("public_key", found.as_str())?;
                }
            }
            let format = info.get("format")?.map(|v| v.value().to_string());
            match format.as_deref() {
                Some(FORMAT) => {}
                Some(other) => {
                    return Err(StoreError::Db(format!(
                        "{}: metadata format {other} was made by a newer peros (this one reads \
                         format {FORMAT}); upgrade peros",
                        self.meta_path.display()
                    )))
                }
                None => {
                    // Empty (new) or made before layouts had their own table: convert in
                    // this transaction, so a crash leaves the old format whole.
                    let moved = migrate::inline_chunks_to_layouts(&tx)?;
                    if moved > 0 {
                        tracing::info!(
                            "{}: converted {moved} inodes to the sparse layout format {FORMAT}",
                            self.meta_path.display()
                        );
                    }
                    info.insert("format", FORMAT)?;
                }
            }
            drop(info);
            if tx.inode(ROOT_INO).is_err() {
                // SAFETY: getuid/getgid cannot fail.
                let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
                let root = Inode::new(Kind::Dir, 0o755, uid, gid, ROOT_INO, b"");
                tx.put_inode(ROOT_INO, &root)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Registers who knows which inodes are open (the FUSE layer's handle table).
    pub fn set_open_probe(&self, probe: impl Fn(Ino) -> bool + Send + Sync + 'static) {
        *self.open_probe.write().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(probe));
    }

    fn is_open(&self, ino: Ino) -> bool {
        self.open_probe
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|p| p(ino))
    }

    /// Registers the listener told about every committed change (after the commit).
    pub fn set_change_listener(&self, listener: impl Fn(&[Change]) + Send + Sync + 'static) {
        *self.listener.write().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(listener));
    }

    /// Every inode of the store (for reconciliation after a crash or an offline change).
    pub fn all_inodes(&self) -> Result<Vec<(Ino, Inode)>> {
        let txn = self.db.begin_read()?;
        let mut out = Vec::new();
        for item in txn.open_table(INODES)?.iter()? {
            let (k, v) = item?;
            out.push((k.value(), postcard::from_bytes(v.value())?));
        }
        Ok(out)
    }

    /// Frees an orphan (unlinked while open) once its last handle is closed.
    pub fn release_orphan(&self, ino: Ino) -> Result<()> {
        self.write(false, |tx| {
            let mut orphans = tx.txn.open_table(ORPHANS)?;
            if orphans.remove(ino)?.is_some() {
                drop(orphans);
                tx.del_inode(ino)?;
            }
            Ok(())
        })
    }

    /// Frees every orphan left by a previous run (nothing can have them open any more).
    pub fn purge_orphans(&self) -> Result<u64> {
        self.write(true, |tx| {
            let mut orphans = tx.txn.open_table(ORPHANS)?;
            let all: Vec<u64> = orphans
                .iter()?
                .map(|i| i.map(|(k, _)| k.value()))
                .collect::<std::result::Result<_, _>>()?;
            for ino in &all {
                orphans.remove(*ino)?;
            }
            drop(orphans);
            for ino in &all {
                tx.del_inode(*ino)?;
            }
            Ok(all.len() as u64)
        })
    }

    pub fn backend(&self) -> &Arc<dyn ObjectBackend> {
        &self.backend
    }

    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.keyring
    }

    /// Runs `f` in one write transaction and commits (durably if `durable`).
    fn write<T>(&self, durable: bool, f: impl FnOnce(&Tx) -> Result<T>) -> Result<T> {
        self.write_counted(durable, true, f)
    }

    /// [`Store::write`]; `counted`: the commit may change data (bumps [`Store::commit_count`]).
    fn write_counted<T>(
        &self,
        durable: bool,
        counted: bool,
        f: impl FnOnce(&Tx) -> Result<T>,
    ) -> Result<T> {
        let mut txn = self.db.begin_write()?;
        if !durable {
            txn.set_durability(redb::Durability::None)?;
            self.unsynced.store(true, Ordering::SeqCst);
        } else if self.unsynced.swap(false, Ordering::SeqCst) {
            // This commit also makes earlier fsync-less commits durable: their objects first.
            if let Err(e) = self.backend.sync() {
                self.unsynced.store(true, Ordering::SeqCst);
                return Err(e.into());
            }
        }
        let tx = Tx {
            txn: &txn,
            touched: Default::default(),
        };
        let out = f(&tx);
        let out = match out {
            Ok(v) => v,
            Err(e) => {
                if durable {
                    self.unsynced.store(true, Ordering::SeqCst);
                }
                return Err(e);
            }
        };
        let touched = tx.touched.take();
        drop(tx);
        txn.commit()?;
        if counted {
            self.commits.fetch_add(1, Ordering::SeqCst);
        }
        if !touched.is_empty() {
            if let Some(listener) = self
                .listener
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
            {
                listener(&touched);
            }
        }
        Ok(out)
    }

    /// Whether namespace changes are committed with fsync (false under a mount: see `lazy`).
    fn eager(&self) -> bool {
        !self.lazy.load(Ordering::Relaxed)
    }

    /// Commit namespace and attribute changes without fsync; the caller must call
    /// [`Store::sync_if_needed`] periodically (the mount does, every 2 s) and on fsync.
    pub fn set_lazy_durability(&self, lazy: bool) {
        self.lazy.store(lazy, Ordering::Relaxed);
    }

    /// Syncs if anything was committed without fsync since the last sync.
    pub fn sync_if_needed(&self) -> Result<()> {
        if self.unsynced.load(Ordering::Relaxed) {
            self.sync()?;
        }
        Ok(())
    }

    /// Makes everything written so far durable: objects first, then metadata (then, for a
    /// remote store, the metadata snapshot in the bucket: see [`DurableHook`]).
    pub fn sync(&self) -> Result<()> {
        self.unsynced.store(true, Ordering::SeqCst);
        self.write_counted(true, false, |_| Ok(()))?;
        self.run_hook()
    }

    fn run_hook(&self) -> Result<()> {
        let hook = self.hook.read().unwrap_or_else(|e| e.into_inner()).clone();
        match hook {
            Some(h) => h.after_durable(self),
            None => Ok(()),
        }
    }

    /// Registers the hook told after each durable point (see [`DurableHook`]).
    pub fn set_durable_hook(&self, hook: Arc<dyn DurableHook>) {
        *self.hook.write().unwrap_or_else(|e| e.into_inner()) = Some(hook);
    }

    /// Commits made so far by this process that may have changed the metadata.
    pub fn commit_count(&self) -> u64 {
        self.commits.load(Ordering::SeqCst)
    }

    /// A consistent copy of the metadata database file, with the [`Store::commit_count`] it
    /// reflects. Everything is made durable first (objects, then metadata); the copy is
    /// taken while holding the write lock right after a durable commit, so it is the image a
    /// crash at that instant would leave: redb opens it (repairing its allocator state) with
    /// every committed change.
    pub fn snapshot_image(&self) -> Result<(Vec<u8>, u64)> {
        for _ in 0..20 {
            self.unsynced.store(true, Ordering::SeqCst);
            self.write_counted(true, false, |_| Ok(()))?;
            let txn = self.db.begin_write()?;
            if self.unsynced.load(Ordering::SeqCst) {
                // A lazy commit slipped in between: make it durable too and try again.
                txn.abort()?;
                continue;
            }
            let count = self.commit_count();
            let image = std::fs::read(&self.meta_path)?;
            txn.abort()?;
            return Ok((image, count));
        }
        Err(StoreError::Db(
            "could not take a metadata snapshot: the store kept changing".into(),
        ))
    }

    /// The metadata database file.
    pub fn meta_path(&self) -> &Path {
        &self.meta_path
    }

    // ----- reads of metadata -----

    pub fn getattr(&self, ino: Ino) -> Result<Inode> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(INODES)?;
        let v = t
            .get(ino)?
            .ok_or_else(|| StoreError::NotFound(format!("inode {ino}")))?;
        Ok(postcard::from_bytes(v.value())?)
    }

    pub fn lookup(&self, parent: Ino, name: &[u8]) -> Result<(Ino, Inode)> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(DIRENTS)?;
        let ino = t
            .get((parent, name))?
            .map(|v| v.value())
            .ok_or_else(|| StoreError::NotFound(show(name)))?;
        drop(t);
        let inodes = txn.open_table(INODES)?;
        let v = inodes
            .get(ino)?
            .ok_or_else(|| StoreError::NotFound(show(name)))?;
        Ok((ino, postcard::from_bytes(v.value())?))
    }

    pub fn readdir(&self, dir: Ino) -> Result<Vec<DirEntry>> {
        Ok(self
            .readdir_plus(dir)?
            .into_iter()
            .map(|(e, _)| e)
            .collect())
    }

    /// Directory entries with their inodes, in name order. The inodes come without their
    /// xattrs (read those with [`Store::get_xattr`]): a listing holds every entry at once, and
    /// must not cost the sum of their attributes.
    pub fn readdir_plus(&self, dir: Ino) -> Result<Vec<(DirEntry, Inode)>> {
        let txn = self.db.begin_read()?;
        let inodes = txn.open_table(INODES)?;
        let dnode: Inode = postcard::from_bytes(
            inodes
                .get(dir)?
                .ok_or_else(|| StoreError::NotFound(format!("inode {dir}")))?
                .value(),
        )?;
        if dnode.kind != Kind::Dir {
            return Err(StoreError::NotDir(show(&dnode.name)));
        }
        let t = txn.open_table(DIRENTS)?;
        let empty: &[u8] = &[];
        let mut out = Vec::new();
        for item in t.range((dir, empty)..(dir + 1, empty))? {
            let (k, v) = item?;
            let ino = v.value();
            if let Some(n) = inodes.get(ino)? {
                let mut node: Inode = postcard::from_bytes(n.value())?;
                node.xattrs = Default::default();
                out.push((
                    DirEntry {
                        name: k.value().1.to_vec(),
                        ino,
                        kind: node.kind,
                    },
                    node,
                ));
            }
        }
        Ok(out)
    }

    /// Resolves an absolute store path (symlinks are not followed).
    pub fn resolve(&self, path: &[u8]) -> Result<(Ino, Inode)> {
        let mut ino = ROOT_INO;
        let mut node = self.getattr(ROOT_INO)?;
        for comp in path_components(path) {
            if node.kind != Kind::Dir {
                return Err(StoreError::NotDir(show(path)));
            }
            let (i, n) = self.lookup(ino, comp).map_err(|e| match e {
                StoreError::NotFound(_) => StoreError::NotFound(show(path)),
                other => other,
            })?;
            ino = i;
            node = n;
        }
        Ok((ino, node))
    }

    /// The path an inode was created or last renamed under.
    pub fn path_of(&self, ino: Ino) -> Result<Vec<u8>> {
        let txn = self.db.begin_write()?;
        let p = Tx {
            txn: &txn,
            touched: Default::default(),
        }
        .path_of(ino)?;
        txn.abort()?;
        Ok(p)
    }

    // ----- namespace changes -----

    /// Creates a file system object under `parent`.
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        &self,
        parent: Ino,
        name: &[u8],
        kind: Kind,
        perm: u16,
        uid: u32,
        gid: u32,
        rdev: u32,
        target: &[u8],
    ) -> Result<(Ino, Inode)> {
        check_name(name)?;
        self.write(self.eager(), |tx| {
            let mut pnode = tx.inode(parent)?;
            if pnode.kind != Kind::Dir {
                return Err(StoreError::NotDir(show(&pnode.name)));
            }
            if tx.entry(parent, name)?.is_some() {
                return Err(StoreError::Exists(show(name)));
            }
            let ino = tx.alloc_ino()?;
            let mut node = Inode::new(kind, perm, uid, gid, parent, name);
            node.rdev = rdev;
            if kind == Kind::Symlink {
                node.target = target.to_vec();
                node.size = target.len() as u64;
            }
            tx.put_inode(ino, &node)?;
            tx.put_entry(parent, name, ino)?;
            let now = Time::now();
            pnode.mtime = now;
            pnode.ctime = now;
            if kind == Kind::Dir {
                pnode.nlink += 1;
            }
            tx.put_inode(parent, &pnode)?;
            Ok((ino, node))
        })
    }

    /// Removes a non-directory entry.
    pub fn unlink(&self, parent: Ino, name: &[u8]) -> Result<()> {
        self.write(self.eager(), |tx| {
            let ino = tx
                .entry(parent, name)?
                .ok_or_else(|| StoreError::NotFound(show(name)))?;
            let node = tx.inode(ino)?;
            if node.kind == Kind::Dir {
                return Err(StoreError::IsDir(show(name)));
            }
            tx.del_entry(parent, name)?;
            tx.drop_link(ino, self.versions_keep, &|i| self.is_open(i))?;
            let mut pnode = tx.inode(parent)?;
            pnode.mtime = Time::now();
            pnode.ctime = pnode.mtime;
            tx.put_inode(parent, &pnode)
        })
    }

    /// Removes an empty directory.
    pub fn rmdir(&self, parent: Ino, name: &[u8]) -> Result<()> {
        self.write(self.eager(), |tx| {
            let ino = tx
                .entry(parent, name)?
                .ok_or_else(|| StoreError::NotFound(show(name)))?;
            let node = tx.inode(ino)?;
            if node.kind != Kind::Dir {
                return Err(StoreError::NotDir(show(name)));
            }
            if tx.has_children(ino)? {
                return Err(StoreError::NotEmpty(show(name)));
            }
            tx.del_entry(parent, name)?;
            tx.del_inode(ino)?;
            let mut pnode = tx.inode(parent)?;
            pnode.nlink = pnode.nlink.saturating_sub(1);
            pnode.mtime = Time::now();
            pnode.ctime = pnode.mtime;
            tx.put_inode(parent, &pnode)
        })
    }

    /// Removes `path` and, for a directory, everything below it. Returns the count removed.
    pub fn remove_tree(&self, parent: Ino, name: &[u8]) -> Result<u64> {
        let (ino, node) = self.lookup(parent, name)?;
        let mut count = 0;
        if node.kind == Kind::Dir {
            for e in self.readdir(ino)? {
                count += self.remove_tree(ino, &e.name)?;
            }
            self.rmdir(parent, name)?;
        } else {
            self.unlink(parent, name)?;
        }
        Ok(count + 1)
    }

    /// Adds a hard link to `ino`.
    pub fn link(&self, ino: Ino, new_parent: Ino, new_name: &[u8]) -> Result<Inode> {
        check_name(new_name)?;
        self.write(self.eager(), |tx| {
            let mut node = tx.inode(ino)?;
            if node.kind == Kind::Dir {
                return Err(StoreError::Invalid(
                    "hard links to directories are not allowed".into(),
                ));
            }
            let mut pnode = tx.inode(new_parent)?;
            if pnode.kind != Kind::Dir {
                return Err(StoreError::NotDir(show(&pnode.name)));
            }
            if tx.entry(new_parent, new_name)?.is_some() {
                return Err(StoreError::Exists(show(new_name)));
            }
            tx.put_entry(new_parent, new_name, ino)?;
            node.nlink += 1;
            node.ctime = Time::now();
            tx.put_inode(ino, &node)?;
            pnode.mtime = node.ctime;
            pnode.ctime = node.ctime;
            tx.put_inode(new_parent, &pnode)?;
            Ok(node)
        })
    }

    /// Renames `parent/name` to `new_parent/new_name`.
    pub fn rename(
        &self,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
        mode: RenameMode,
    ) -> Result<()> {
        check_name(new_name)?;
        self.write(self.eager(), |tx| {
            let src = tx
                .entry(parent, name)?
                .ok_or_else(|| StoreError::NotFound(show(name)))?;
            let mut snode = tx.inode(src)?;
            let dst = tx.entry(new_parent, new_name)?;
            if dst == Some(src) {
                return Ok(()); // same inode (also hard links to it): POSIX says do nothing
            }
            // A directory may not move below itself.
            if snode.kind == Kind::Dir {
                let mut cur = new_parent;
                while cur != ROOT_INO {
                    if cur == src {
                        return Err(StoreError::Invalid(
                            "cannot move a directory inside itself".into(),
                        ));
                    }
                    cur = tx.inode(cur)?.parent;
                }
            }
            let now = Time::now();
            match (mode, dst) {
                (RenameMode::NoReplace, Some(_)) => {
                    return Err(StoreError::Exists(show(new_name)));
                }
                (RenameMode::Exchange, None) => {
                    return Err(StoreError::NotFound(show(new_name)));
                }
                (RenameMode::Exchange, Some(d)) => {
                    let mut dnode = tx.inode(d)?;
                    tx.put_entry(parent, name, d)?;
                    tx.put_entry(new_parent, new_name, src)?;
                    dnode.parent = parent;
                    dnode.name = name.to_vec();
                    dnode.ctime = now;
                    snode.parent = new_parent;
                    snode.name = new_name.to_vec();
                    snode.ctime = now;
                    if parent != new_parent
                        && (snode.kind == Kind::Dir) != (dnode.kind == Kind::Dir)
                    {
                        let delta: i64 = if snode.kind == Kind::Dir { 1 } else { -1 };
                        let mut p = tx.inode(parent)?;
                        p.nlink = (p.nlink as i64 - delta) as u32;
                        tx.put_inode(parent, &p)?;
                        let mut np = tx.inode(new_parent)?;
                        np.nlink = (np.nlink as i64 + delta) as u32;
                        tx.put_inode(new_parent, &np)?;
                    }
                    tx.put_inode(d, &dnode)?;
                    tx.put_inode(src, &snode)?;
                    tx.touch(d, true);
                    tx.touch(src, true);
                    for p in [parent, new_parent] {
                        let mut pn = tx.inode(p)?;
                        pn.mtime = now;
                        pn.ctime = now;
                        tx.put_inode(p, &pn)?;
                    }
                    return Ok(());
                }
                (_, Some(d)) => {
                    let dnode = tx.inode(d)?;
                    match (snode.kind == Kind::Dir, dnode.kind == Kind::Dir) {
                        (true, false) => return Err(StoreError::NotDir(show(new_name))),
                        (false, true) => return Err(StoreError::IsDir(show(new_name))),
                        (true, true) => {
                            if tx.has_children(d)? {
                                return Err(StoreError::NotEmpty(show(new_name)));
                            }
                            tx.del_inode(d)?;
                            let mut np = tx.inode(new_parent)?;
                            np.nlink = np.nlink.saturating_sub(1);
                            tx.put_inode(new_parent, &np)?;
                        }
                        (false, false) => {
                            // The replaced file's content stays in the path's history, and the
                            // new content follows it: editors save by renaming over the file.
                            tx.drop_link(d, self.versions_keep, &|i| self.is_open(i))?;
                        }
                    }
                }
                (_, None) => {}
            }
            tx.del_entry(parent, name)?;
            tx.put_entry(new_parent, new_name, src)?;
            snode.parent = new_parent;
            snode.name = new_name.to_vec();
            snode.ctime = now;
            tx.put_inode(src, &snode)?;
            tx.touch(src, true);
            if snode.kind == Kind::Dir && parent != new_parent {
                let mut p = tx.inode(parent)?;
                p.nlink = p.nlink.saturating_sub(1);
                tx.put_inode(parent, &p)?;
                let mut np = tx.inode(new_parent)?;
                np.nlink += 1;
                tx.put_inode(new_parent, &np)?;
            }
            for p in [parent, new_parent] {
                let mut pn = tx.inode(p)?;
                pn.mtime = now;
                pn.ctime = now;
                tx.put_inode(p, &pn)?;
            }
            if snode.kind == Kind::File {
                let path = tx.path_of(src)?;
                tx.add_version(
                    &path,
                    tx.version_of(src, &snode, false)?,
                    self.versions_keep,
                )?;
            }
            Ok(())
        })
    }

    /// Changes attributes; a size change truncates or extends (with a hole), metadata only,
    /// after the file's buffered writes are committed.
    pub fn setattr(&self, ino: Ino, attr: &SetAttr) -> Result<Inode> {
        if let Some(size) = attr.size {
            let node = self.getattr(ino)?;
            if node.kind == Kind::Dir {
                return Err(StoreError::IsDir(show(&node.name)));
            }
            if node.kind != Kind::File {
                return Err(StoreError::Invalid("truncate of a non-regular file".into()));
            }
            return self.resize_settled(ino, attr, size);
        }
        let node = self.apply_setattr(ino, attr)?;
        if attr.mtime.is_some() {
            // The buffers' view of mtime follows an explicit one (utimens after a write).
            self.note_mtime(ino, node.mtime);
        }
        Ok(node)
    }

    /// The transaction of [`Store::setattr`] (buffers already settled for a size change).
    fn apply_setattr(&self, ino: Ino, attr: &SetAttr) -> Result<Inode> {
        let _guard = self.ingest.read().unwrap_or_else(|e| e.into_inner());
        let mut freed = 0;
        let node = self.write(self.eager(), |tx| {
            let mut node = tx.inode(ino)?;
            let now = Time::now();
            if let Some(p) = attr.perm {
                node.perm = p & 0o7777;
            }
            if let Some(u) = attr.uid {
                node.uid = u;
            }
            if let Some(g) = attr.gid {
                node.gid = g;
            }
            if let Some(a) = attr.atime {
                node.atime = a;
            }
            let resized = attr.size.filter(|s| *s != node.size);
            if let Some(size) = resized {
                freed = tx.resize(ino, &mut node, size)?;
                node.mtime = now;
            }
            if let Some(m) = attr.mtime {
                node.mtime = m;
            }
            node.ctime = attr.ctime.unwrap_or(now);
            tx.put_inode(ino, &node)?;
            if resized.is_some() {
                let path = tx.path_of(ino)?;
                tx.add_version(&path, tx.version_of(ino, &node, false)?, self.versions_keep)?;
            }
            Ok(node)
        })?;
        self.gc.add_garbage(freed);
        Ok(node)
    }

    // ----- xattrs -----

    pub fn set_xattr(
        &self,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        create: bool,
        replace: bool,
    ) -> Result<()> {
        self.write(self.eager(), |tx| {
            let mut node = tx.inode(ino)?;
            let exists = node.xattrs.contains_key(name);
            if create && exists {
                return Err(StoreError::Exists(show(name)));
            }
            if replace && !exists {
                return Err(StoreError::NoAttr(show(name)));
            }
            let old = node
                .xattrs
                .get(name)
                .map_or(0, |v| name.len() + 1 + v.len());
            let (total, list) = node.xattrs.iter().fold((0, 0), |(t, l), (k, v)| {
                (t + k.len() + 1 + v.len(), l + k.len() + 1)
            });
            let listed = if exists { 0 } else { name.len() + 1 };
            if total - old + name.len() + 1 + value.len() > XATTR_TOTAL_MAX
                || list + listed > XATTR_LIST_MAX
            {
                return Err(StoreError::XattrSpace(show(&node.name)));
            }
            node.xattrs.insert(name.to_vec(), value.to_vec());
            node.ctime = Time::now();
            tx.put_inode(ino, &node)
        })
    }

    pub fn get_xattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        self.getattr(ino)?
            .xattrs
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::NoAttr(show(name)))
    }

    pub fn remove_xattr(&self, ino: Ino, name: &[u8]) -> Result<()> {
        self.write(self.eager(), |tx| {
            let mut node = tx.inode(ino)?;
            if node.xattrs.remove(name).is_none() {
                return Err(StoreError::NoAttr(show(name)));
            }
            node.ctime = Time::now();
            tx.put_inode(ino, &node)
        })
    }

    /// Bytes the decrypted-chunk cache may hold (`[store] cache_mb`).
    pub fn cache_capacity(&self) -> u64 {
        self.cache_capacity
    }

    pub fn stats(&self) -> Result<Stats> {
        let txn = self.db.begin_read()?;
        let mut s = Stats {
            cache_bytes: self.cache.weight(),
            cache_capacity: self.cache_capacity,
            ..Default::default()
        };
        for item in txn.open_table(INODES)?.iter()? {
            let (_, v) = item?;
            let node: Inode = postcard::from_bytes(v.value())?;
            match node.kind {
                Kind::File => {
                    s.files += 1;
                    s.logical_bytes += node.size;
                    s.live_bytes += node.stored_bytes();
                }
                Kind::Dir => s.dirs += 1,
                Kind::Symlink => s.symlinks += 1,
                _ => s.other += 1,
            }
        }
        for item in txn.open_table(OBJECTS)?.iter()? {
            let (_, v) = item?;
            s.objects += 1;
            s.stored_bytes += v.value();
        }
        s.versions = txn.open_table(VERSIONS)?.len()?;
        s.garbage_bytes = self.gc.garbage();
        s.dirty_bytes = self.writeback.dirty_bytes();
        Ok(s)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Err(e) = self.flush_all() {
            tracing::error!("final commit of buffered writes failed: {e}");
        } else if let Err(e) = self.sync_if_needed() {
            tracing::error!("final sync of the store failed: {e}");
        } else if let Err(e) = self.run_hook() {
            tracing::error!("final metadata snapshot failed: {e}");
        }
    }
}

/// Reads until `buf` holds `n` bytes or the reader ends.
/// The message of a caught panic.
fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

fn read_full(reader: &mut dyn Read, n: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(n);
    reader.take(n as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

//! `peros-fs` is the FUSE front end: it translates kernel requests into `peros-store` calls.
//!
//! What it owns: file handles (open counts per inode, for orphans), directory-listing
//! snapshots per open directory, and the kernel cache settings (attribute/entry TTLs,
//! `FOPEN_KEEP_CACHE` for files unchanged since this mount last saw them, readdirplus, 1 MiB
//! writes).
//!
//! What it must not do: own policy (that is the store's and the agent's), buffer or seal file
//! data (the store's one write path does: [`Store::write_at`], [`Store::flush`]), or wait on
//! anything slower than local disk inside a callback. Close commits (not yet durable), fsync
//! commits durably; the store's background threads seal full buffers and make commits durable
//! within a couple of seconds, like a journaling file system's commit interval.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use parking_lot::Mutex;
use peros_store::{
    DirEntry, Ino, Inode, Kind, RenameMode, SetAttr, Store, StoreError, Time, ROOT_INO,
};

pub mod access;
mod readahead;
pub mod virt;
mod virt_ops;
use virt::{is_virtual, VInodes};
pub use virt::{Listing, ListingEntry, QueryDirError, QueryDirs};

/// How long the kernel may trust attributes and entries. Only this mount changes the store
/// while it runs (other commands go through its control socket), so a short TTL suffices to
/// pick up those changes.
const TTL: Duration = Duration::from_secs(1);
/// Every open asks the kernel not to send FLUSH at close(2): a close then costs no round
/// trip (closing is the asynchronous RELEASE, which records the version and queues the commit,
/// as FLUSH did: nothing in FLUSH ever waited for the store). FLUSH was one of the four
/// synchronous requests of a create+write+close; 5,000 files of 4 KiB took 2.1–2.2 s without
/// it against 2.5–2.6 s with it (perfs/fio/metadata.py, same run). Kernels before 5.17 ignore
/// the flag and keep sending FLUSH, which `flush` still serves.
const NO_FLUSH: FopenFlags = FopenFlags::FOPEN_NOFLUSH;
const BLOCK: u64 = 4096;

fn errno(e: &StoreError) -> Errno {
    if let StoreError::Chunk { .. } | StoreError::Backend(_) | StoreError::Crypto(_) = e {
        tracing::error!("{e}");
    }
    Errno::from_i32(e.errno())
}

fn file_type(kind: Kind) -> FileType {
    match kind {
        Kind::File => FileType::RegularFile,
        Kind::Dir => FileType::Directory,
        Kind::Symlink => FileType::Symlink,
        Kind::Fifo => FileType::NamedPipe,
        Kind::Socket => FileType::Socket,
        Kind::CharDevice => FileType::CharDevice,
        Kind::BlockDevice => FileType::BlockDevice,
    }
}

fn to_time(t: Option<TimeOrNow>) -> Option<Time> {
    t.map(|t| match t {
        TimeOrNow::Now => Time::now(),
        TimeOrNow::SpecificTime(s) => Time::from_system(s),
    })
}

struct DirHandle {
    entries: Vec<(DirEntry, Inode)>,
    /// Virtual entries after the stored ones (the query directories at the root, and
    /// everything in a query directory).
    extra: Vec<(Vec<u8>, FileAttr)>,
}

/// Counters shown by `peros status`.
#[derive(Default)]
pub struct FsCounters {
    pub reads: AtomicU64,
    pub read_bytes: AtomicU64,
    pub writes: AtomicU64,
    pub write_bytes: AtomicU64,
    pub commits: AtomicU64,
}

pub struct MountOptions {
    pub allow_other: bool,
    /// Directory whose file system's free space `statfs` reports (the local data dir).
    pub space_from: PathBuf,
    pub threads: usize,
}

/// The FUSE file system over a store.
pub struct PerosFs {
    store: Arc<Store>,
    /// Open handles per regular file.
    files: Mutex<HashMap<Ino, u32>>,
    dirs: Mutex<HashMap<u64, Arc<DirHandle>>>,
    /// Per inode, (mtime, size) when this mount last had it open: unchanged → keep page cache.
    seen: Mutex<HashMap<Ino, (Time, u64)>>,
    next_fh: AtomicU64,
    readahead: readahead::ReadAhead,
    space_from: PathBuf,
    pub counters: Arc<FsCounters>,
    query_dirs: std::sync::OnceLock<QueryDirsMount>,
    vinodes: VInodes,
    /// uid << 32 | gid of the root directory, u64::MAX = not read yet (reset by setattr).
    root_owner: AtomicU64,
    /// Where open/read/close events go (the agent), if anywhere.
    access: std::sync::OnceLock<Arc<dyn access::AccessSink>>,
}

/// The query directories and the names they appear under at the root.
struct QueryDirsMount {
    dirs: Arc<dyn QueryDirs>,
    views_name: Vec<u8>,
    search_name: Vec<u8>,
}

impl PerosFs {
    pub fn new(store: Arc<Store>, space_from: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            store,
            files: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            readahead: Default::default(),
            space_from,
            counters: Arc::new(FsCounters::default()),
            query_dirs: std::sync::OnceLock::new(),
            vinodes: VInodes::default(),
            root_owner: AtomicU64::new(u64::MAX),
            access: std::sync::OnceLock::new(),
        })
    }

    /// Shows `dirs` at the root under `views_name` and `search_name` (once, before mounting).
    pub fn set_query_dirs(&self, dirs: Arc<dyn QueryDirs>, views_name: &str, search_name: &str) {
        let _ = self.query_dirs.set(QueryDirsMount {
            dirs,
            views_name: views_name.as_bytes().to_vec(),
            search_name: search_name.as_bytes().to_vec(),
        });
    }

    /// Sends open/read/close events to `sink` (once, before mounting). The sink must not block.
    pub fn set_access_sink(&self, sink: Arc<dyn access::AccessSink>) {
        let _ = self.access.set(sink);
    }

    fn note_access(&self, kind: access::AccessKind, ino: Ino, pid: u32, bytes: u64, cached: bool) {
        if let Some(sink) = self.access.get() {
            sink.record(access::AccessEvent {
                kind,
                ino,
                pid,
                bytes,
                time_ms: access::now_ms(),
                cached,
            });
        }
    }

    fn attr(&self, ino: Ino, node: &Inode) -> FileAttr {
        // Buffered state first, the record second: a commit lands before the buffer is
        // dropped, so with no buffer the record read now is current (the caller's may not be).
        let pending = if node.kind == Kind::File {
            self.store.pending_attr(ino)
        } else {
            None
        };
        let fresh;
        let node = match pending {
            None if node.kind == Kind::File => {
                fresh = self.store.getattr(ino).unwrap_or_else(|_| node.clone());
                &fresh
            }
            _ => node,
        };
        let (mut size, mut mtime, mut ctime) = (node.size, node.mtime, node.ctime);
        // Holes (sparse chunks) take no blocks, so `du` and sparse-aware copies see them.
        let mut stored = node.stored_bytes().min(size);
        if node.kind == Kind::File {
            if let Some((psize, pmtime, dirty)) = pending {
                size = psize;
                mtime = pmtime;
                // A write changes ctime too; the commit that records it may still be queued.
                ctime = ctime.max(pmtime);
                stored = (stored + dirty).min(size);
            }
        } else {
            stored = size;
        }
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: stored.div_ceil(512),
            atime: node.atime.to_system(),
            mtime: mtime.to_system(),
            ctime: ctime.to_system(),
            crtime: node.crtime.to_system(),
            kind: file_type(node.kind),
            perm: node.perm,
            nlink: node.nlink,
            uid: node.uid,
            gid: node.gid,
            rdev: node.rdev,
            blksize: 1 << 20,
            flags: 0,
        }
    }

    /// Free bytes for unprivileged writers on the file system under the data directory.
    fn free_bytes(&self) -> Option<u64> {
        let c = std::ffi::CString::new(self.space_from.as_os_str().as_bytes()).ok()?;
        // SAFETY: statvfs writes into the zeroed struct we pass.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
            return None;
        }
        Some(st.f_bavail.saturating_mul(st.f_frsize))
    }

    fn is_open(&self, ino: Ino) -> bool {
        self.files.lock().contains_key(&ino)
    }

    /// Commits what is buffered for `ino` (`durable`: fsync; `record_version`: a close).
    fn commit(&self, ino: Ino, durable: bool, record_version: bool) -> Result<(), StoreError> {
        let node = self.store.flush(ino, durable, record_version)?;
        self.committed(ino, node);
        Ok(())
    }

    /// A close: the store records a version and commits in its next group commit.
    fn close(&self, ino: Ino) -> Result<(), StoreError> {
        let node = self.store.close(ino)?;
        self.committed(ino, node);
        Ok(())
    }

    /// Counts a commit made on this thread and remembers the file's state for KEEP_CACHE.
    fn committed(&self, ino: Ino, node: Option<Inode>) {
        if let Some(node) = node {
            self.counters.commits.fetch_add(1, Ordering::Relaxed);
            self.seen.lock().insert(ino, (node.mtime, node.size));
        }
    }

    fn open_file(&self, ino: Ino) {
        *self.files.lock().entry(ino).or_insert(0) += 1;
    }

    fn open_flags(&self, ino: Ino, node: &Inode) -> FopenFlags {
        let mut seen = self.seen.lock();
        let unchanged = seen.get(&ino) == Some(&(node.mtime, node.size));
        seen.insert(ino, (node.mtime, node.size));
        let keep = if unchanged {
            FopenFlags::FOPEN_KEEP_CACHE
        } else {
            FopenFlags::empty()
        };
        keep | NO_FLUSH
    }

    fn release_file(&self, ino: Ino) -> Result<(), StoreError> {
        // A failed commit keeps its data buffered in the store, which retries it.
        let result = self.close(ino);
        let last = {
            let mut files = self.files.lock();
            match files.get_mut(&ino) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                Some(_) => {
                    files.remove(&ino);
                    self.readahead.forget(ino);
                    true
                }
                None => false,
            }
        };
        if last {
            if let Ok(node) = self.store.getattr(ino) {
                if node.nlink == 0 {
                    self.store.release_orphan(ino)?;
                }
            }
        }
        result
    }

    fn read_range(&self, ino: Ino, offset: u64, size: usize) -> Result<Vec<u8>, StoreError> {
        if self.store.pending_attr(ino).is_none() {
            self.readahead
                .on_read(&self.store, ino, offset, size as u64);
        }
        self.store.read(ino, offset, size)
    }

    fn write_at(&self, ino: Ino, offset: u64, data: &[u8]) -> Result<(), StoreError> {
        self.store.write_at(ino, offset, data)
    }

    /// Commits any buffered writes of `ino` (before a utimens or rename).
    fn settle(&self, ino: Ino) -> Result<(), StoreError> {
        self.commit(ino, false, false)
    }

    /// Commits every buffered file and makes everything durable (unmount, shutdown).
    pub fn flush_all(&self) -> Result<(), StoreError> {
        self.store.flush_all()
    }

    /// Starts the store's background work (committers, durability every `interval`,
    /// compaction, garbage collection).
    pub fn start_syncer(self: &Arc<Self>, interval: Duration) {
        self.store.start_background(interval);
    }

    /// Creating `name` in `parent` is refused: a reserved name at the root (EEXIST) or a
    /// query directory (read-only: EACCES).
    fn refuse_virtual(&self, parent: Ino, name: &[u8]) -> Option<Errno> {
        if is_virtual(parent) {
            Some(Errno::EACCES)
        } else if self.reserved(parent, name).is_some() {
            Some(Errno::EEXIST)
        } else {
            None
        }
    }

    fn entry_reply(&self, reply: ReplyEntry, ino: Ino, node: &Inode) {
        reply.entry(&TTL, &self.attr(ino, node), Generation(0));
    }

    #[allow(clippy::too_many_arguments)] // mirrors the kernel's mknod/mkdir/symlink arguments
    fn new_node(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        kind: Kind,
        mode: u32,
        umask: u32,
        rdev: u32,
        target: &[u8],
    ) -> Result<(Ino, Inode), StoreError> {
        let perm = (mode & !umask & 0o7777) as u16;
        let (mut gid, mut perm) = (req.gid(), perm);
        // setgid directories pass their group (and, to subdirectories, the bit) on.
        let pnode = self.store.getattr(parent.0)?;
        if pnode.perm & 0o2000 != 0 {
            gid = pnode.gid;
            if kind == Kind::Dir {
                perm |= 0o2000;
            }
        }
        self.store.create(
            parent.0,
            name.as_bytes(),
            kind,
            perm,
            req.uid(),
            gid,
            rdev,
            target,
        )
    }
}

/// The `fuser::Filesystem` adapter, shared with the syncer and the control socket.
pub struct FuseAdapter(pub Arc<PerosFs>);

impl Filesystem for FuseAdapter {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_readahead(1 << 20);
        let wanted = InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_CACHE_SYMLINKS;
        let supported = config.capabilities() & wanted;
        let _ = config.add_capabilities(supported);
        let fs = self.0.clone();
        self.0.store.set_lazy_durability(true);
        self.0.store.set_open_probe({
            let weak = Arc::downgrade(&fs);
            move |ino| weak.upgrade().is_some_and(|f| f.is_open(ino))
        });
        if let Err(e) = self.0.store.purge_orphans() {
            tracing::warn!("could not free orphans from a previous run: {e}");
        }
        Ok(())
    }

    fn destroy(&mut self) {
        if let Err(e) = self.0.flush_all() {
            tracing::error!("flushing at unmount failed: {e}");
        }
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        // POSIX: a component over NAME_MAX is ENAMETOOLONG, even when nothing has that name
        // (pjdfstest checks it for chmod, chown, link, rename, rmdir, truncate, unlink).
        if name.len() > 255 {
            return reply.error(Errno::ENAMETOOLONG);
        }
        if let Some(r) = self.0.virtual_lookup(parent.0, name.as_bytes()) {
            return match r {
                Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
                Err(e) => reply.error(e),
            };
        }
        match self.0.store.lookup(parent.0, name.as_bytes()) {
            Ok((ino, node)) => self.0.entry_reply(reply, ino, &node),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if is_virtual(ino.0) {
            return match self.0.vattr(ino.0) {
                Ok(attr) => reply.attr(&TTL, &attr),
                Err(e) => reply.error(e),
            };
        }
        match self.0.store.getattr(ino.0) {
            Ok(node) => reply.attr(&TTL, &self.0.attr(ino.0, &node)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let fs = &self.0;
        if is_virtual(ino.0) {
            return reply.error(Errno::EPERM);
        }
        if ino.0 == ROOT_INO {
            fs.root_owner.store(u64::MAX, Ordering::Relaxed);
        }
        let result = (|| {
            // An explicit mtime survives a commit of older writes that is in flight (the
            // store applies it over theirs), so utimens never waits for a commit here.
            let mut perm = mode.map(|m| (m & 0o7777) as u16);
            if (uid.is_some() || gid.is_some()) && perm.is_none() {
                // chown clears setuid/setgid on non-directories, as on local file systems.
                let node = fs.store.getattr(ino.0)?;
                if node.kind != Kind::Dir && node.perm & 0o6000 != 0 {
                    perm = Some(node.perm & !0o6000);
                }
            }
            let node = fs.store.setattr(
                ino.0,
                &SetAttr {
                    perm,
                    uid,
                    gid,
                    size,
                    atime: to_time(atime),
                    mtime: to_time(mtime),
                    ctime: ctime.map(Time::from_system),
                },
            )?;
            fs.seen.lock().insert(ino.0, (node.mtime, node.size));
            Ok::<_, StoreError>(node)
        })();
        match result {
            Ok(node) => reply.attr(&TTL, &fs.attr(ino.0, &node)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        if is_virtual(ino.0) {
            return match self.0.vreadlink(ino.0) {
                Ok(t) => reply.data(&t),
                Err(e) => reply.error(e),
            };
        }
        match self.0.store.getattr(ino.0) {
            Ok(node) if node.kind == Kind::Symlink => reply.data(&node.target),
            Ok(_) => reply.error(Errno::EINVAL),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        if let Some(e) = self.0.refuse_virtual(parent.0, name.as_bytes()) {
            return reply.error(e);
        }
        let kind = match mode & libc::S_IFMT {
            libc::S_IFREG => Kind::File,
            libc::S_IFIFO => Kind::Fifo,
            libc::S_IFSOCK => Kind::Socket,
            libc::S_IFCHR => Kind::CharDevice,
            libc::S_IFBLK => Kind::BlockDevice,
            _ => return reply.error(Errno::EINVAL),
        };
        match self
            .0
            .new_node(req, parent, name, kind, mode, umask, rdev, &[])
        {
            Ok((ino, node)) => self.0.entry_reply(reply, ino, &node),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        if is_virtual(parent.0) {
            return match self.0.vmkdir(parent.0, name.as_bytes()) {
                Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
                Err(e) => reply.error(e),
            };
        }
        if let Some(e) = self.0.refuse_virtual(parent.0, name.as_bytes()) {
            return reply.error(e);
        }
        match self
            .0
            .new_node(req, parent, name, Kind::Dir, mode, umask, 0, &[])
        {
            Ok((ino, node)) => self.0.entry_reply(reply, ino, &node),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        if is_virtual(parent.0) {
            return match self.0.vunlink(parent.0, name.as_bytes()) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(e),
            };
        }
        if let Some(e) = self.0.refuse_virtual(parent.0, name.as_bytes()) {
            return reply.error(if is_virtual(parent.0) {
                e
            } else {
                Errno::EPERM
            });
        }
        match self.0.store.unlink(parent.0, name.as_bytes()) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        if is_virtual(parent.0) {
            return match self.0.vrmdir(parent.0, name.as_bytes()) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(e),
            };
        }
        if self.0.reserved(parent.0, name.as_bytes()).is_some() {
            return reply.error(Errno::EPERM);
        }
        match self.0.store.rmdir(parent.0, name.as_bytes()) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        if let Some(e) = self.0.refuse_virtual(parent.0, link_name.as_bytes()) {
            return reply.error(e);
        }
        match self.0.new_node(
            req,
            parent,
            link_name,
            Kind::Symlink,
            0o777,
            0,
            0,
            target.as_os_str().as_bytes(),
        ) {
            Ok((ino, node)) => self.0.entry_reply(reply, ino, &node),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mode = if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            RenameMode::Exchange
        } else if flags.contains(RenameFlags::RENAME_NOREPLACE) {
            RenameMode::NoReplace
        } else if flags.is_empty() {
            RenameMode::Replace
        } else {
            return reply.error(Errno::EINVAL);
        };
        if is_virtual(parent.0) || is_virtual(newparent.0) {
            return match self
                .0
                .vrename(parent.0, name.as_bytes(), newparent.0, newname.as_bytes())
            {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(e),
            };
        }
        if self.0.reserved(parent.0, name.as_bytes()).is_some()
            || self.0.reserved(newparent.0, newname.as_bytes()).is_some()
        {
            return reply.error(Errno::EPERM);
        }
        // Buffered writes are committed first, so the version recorded under the new name is complete.
        if let Ok((ino, _)) = self.0.store.lookup(parent.0, name.as_bytes()) {
            if let Err(e) = self.0.settle(ino) {
                return reply.error(errno(&e));
            }
        }
        match self.0.store.rename(
            parent.0,
            name.as_bytes(),
            newparent.0,
            newname.as_bytes(),
            mode,
        ) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        if is_virtual(ino.0) {
            return reply.error(Errno::EPERM);
        }
        if let Some(e) = self.0.refuse_virtual(newparent.0, newname.as_bytes()) {
            return reply.error(e);
        }
        match self.0.store.link(ino.0, newparent.0, newname.as_bytes()) {
            Ok(node) => self.0.entry_reply(reply, ino.0, &node),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let fs = &self.0;
        if is_virtual(ino.0) {
            return reply.error(match fs.vattr(ino.0) {
                Ok(a) if a.kind == FileType::Directory => Errno::EISDIR,
                Ok(_) => Errno::ELOOP,
                Err(e) => e,
            });
        }
        let node = match fs.store.getattr(ino.0) {
            Ok(n) => n,
            Err(e) => return reply.error(errno(&e)),
        };
        if node.kind == Kind::Dir {
            return reply.error(Errno::EISDIR);
        }
        fs.open_file(ino.0);
        if flags.0 & libc::O_TRUNC != 0 && node.size > 0 {
            // Only reached when the kernel passes O_TRUNC through (atomic_o_trunc); else setattr.
            if let Err(e) = fs.store.setattr(
                ino.0,
                &SetAttr {
                    size: Some(0),
                    ..Default::default()
                },
            ) {
                let _ = fs.release_file(ino.0);
                return reply.error(errno(&e));
            }
        }
        let fh = fs.next_fh.fetch_add(1, Ordering::Relaxed);
        if fs.access.get().is_some() {
            let cached = fs.store.chunk_cached(ino.0, 0);
            fs.note_access(access::AccessKind::Open, ino.0, req.pid(), 0, cached);
        }
        reply.opened(FileHandle(fh), fs.open_flags(ino.0, &node));
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.0.read_range(ino.0, offset, size as usize) {
            Ok(data) => {
                self.0.counters.reads.fetch_add(1, Ordering::Relaxed);
                self.0
                    .counters
                    .read_bytes
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                self.0.note_access(
                    access::AccessKind::Read,
                    ino.0,
                    req.pid(),
                    data.len() as u64,
                    true,
                );
                reply.data(&data)
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.0.write_at(ino.0, offset, data) {
            Ok(()) => {
                self.0.counters.writes.fetch_add(1, Ordering::Relaxed);
                self.0
                    .counters
                    .write_bytes
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                reply.written(data.len() as u32)
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let fs = &self.0;
        match fs.close(ino.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn release(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.0
            .note_access(access::AccessKind::Close, ino.0, req.pid(), 0, true);
        match self.0.release_file(ino.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let fs = &self.0;
        let result = fs.commit(ino.0, true, false);
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let fs = &self.0;
        let listing = if is_virtual(ino.0) {
            fs.virtual_entries(ino.0).map(|extra| (Vec::new(), extra))
        } else {
            match fs.store.readdir_plus(ino.0) {
                Ok(mut entries) => fs.virtual_entries(ino.0).map(|extra| {
                    // A stored entry with a reserved name (imported before) stays hidden.
                    entries.retain(|(e, _)| fs.reserved(ino.0, &e.name).is_none());
                    (entries, extra)
                }),
                Err(e) => Err(errno(&e)),
            }
        };
        match listing {
            Ok((entries, extra)) => {
                let fh = fs.next_fh.fetch_add(1, Ordering::Relaxed);
                fs.dirs
                    .lock()
                    .insert(fh, Arc::new(DirHandle { entries, extra }));
                reply.opened(FileHandle(fh), FopenFlags::empty());
            }
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(dir) = self.0.dirs.lock().get(&fh.0).cloned() else {
            return reply.error(Errno::EBADF);
        };
        let parent = if is_virtual(ino.0) {
            self.0.vparent(ino.0)
        } else {
            self.0
                .store
                .getattr(ino.0)
                .map(|n| n.parent)
                .unwrap_or(ino.0)
        };
        let mut i = offset as usize;
        let stored = dir.entries.len();
        // Offsets: 0 = ".", 1 = "..", 2.. = stored entries, then virtual ones.
        while i < stored + dir.extra.len() + 2 {
            let full = match i {
                0 => reply.add(ino, 1, FileType::Directory, "."),
                1 => reply.add(INodeNo(parent), 2, FileType::Directory, ".."),
                _ if i - 2 >= stored => {
                    let (name, attr) = &dir.extra[i - 2 - stored];
                    reply.add(attr.ino, i as u64 + 1, attr.kind, OsStr::from_bytes(name))
                }
                _ => {
                    let (e, _) = &dir.entries[i - 2];
                    reply.add(
                        INodeNo(e.ino),
                        i as u64 + 1,
                        file_type(e.kind),
                        OsStr::from_bytes(&e.name),
                    )
                }
            };
            if full {
                break;
            }
            i += 1;
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let fs = &self.0;
        let Some(dir) = fs.dirs.lock().get(&fh.0).cloned() else {
            return reply.error(Errno::EBADF);
        };
        let stored = dir.entries.len();
        if is_virtual(ino.0) {
            let me = match fs.vattr(ino.0) {
                Ok(a) => a,
                Err(e) => return reply.error(e),
            };
            let parent = fs.vparent(ino.0);
            let pattr = if is_virtual(parent) {
                fs.vattr(parent).unwrap_or(me)
            } else {
                match fs.store.getattr(parent) {
                    Ok(n) => fs.attr(parent, &n),
                    Err(_) => me,
                }
            };
            let mut i = offset as usize;
            while i < dir.extra.len() + 2 {
                let full = match i {
                    0 => reply.add(ino, 1, ".", &TTL, &me, Generation(0)),
                    1 => reply.add(INodeNo(parent), 2, "..", &TTL, &pattr, Generation(0)),
                    _ => {
                        let (name, attr) = &dir.extra[i - 2];
                        let n = OsStr::from_bytes(name);
                        reply.add(attr.ino, i as u64 + 1, n, &TTL, attr, Generation(0))
                    }
                };
                if full {
                    break;
                }
                i += 1;
            }
            return reply.ok();
        }
        let me = match fs.store.getattr(ino.0) {
            Ok(n) => n,
            Err(e) => return reply.error(errno(&e)),
        };
        let mut i = offset as usize;
        while i < stored + dir.extra.len() + 2 {
            let full = match i {
                0 => reply.add(ino, 1, ".", &TTL, &fs.attr(ino.0, &me), Generation(0)),
                _ if i >= 2 && i - 2 >= stored => {
                    let (name, attr) = &dir.extra[i - 2 - stored];
                    let n = OsStr::from_bytes(name);
                    reply.add(attr.ino, i as u64 + 1, n, &TTL, attr, Generation(0))
                }
                1 => {
                    let pnode = fs.store.getattr(me.parent).unwrap_or_else(|_| me.clone());
                    reply.add(
                        INodeNo(me.parent),
                        2,
                        "..",
                        &TTL,
                        &fs.attr(me.parent, &pnode),
                        Generation(0),
                    )
                }
                _ => {
                    let (e, node) = &dir.entries[i - 2];
                    reply.add(
                        INodeNo(e.ino),
                        i as u64 + 1,
                        OsStr::from_bytes(&e.name),
                        &TTL,
                        &fs.attr(e.ino, node),
                        Generation(0),
                    )
                }
            };
            if full {
                break;
            }
            i += 1;
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.0.dirs.lock().remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Namespace changes are committed durably as they happen; sync covers earlier file commits.
        match self.0.store.sync() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let files = self
            .0
            .store
            .stats()
            .map(|s| s.files + s.dirs + s.symlinks + s.other)
            .unwrap_or(0);
        let c =
            std::ffi::CString::new(self.0.space_from.as_os_str().as_bytes()).unwrap_or_default();
        // SAFETY: statvfs writes into the zeroed struct we pass.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        let ok = unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0;
        if !ok {
            return reply.statfs(0, 0, 0, files, 0, BLOCK as u32, 255, BLOCK as u32);
        }
        let scale = |blocks: u64| blocks * st.f_frsize / BLOCK;
        reply.statfs(
            scale(st.f_blocks),
            scale(st.f_bfree),
            scale(st.f_bavail),
            files + st.f_ffree,
            st.f_ffree,
            BLOCK as u32,
            255,
            BLOCK as u32,
        );
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        // POSIX ACLs are not supported: refusing them makes tools such as `cp -a` fall back to
        // chmod, instead of storing an ACL that would silently not apply to the mode bits.
        if name.as_bytes().starts_with(b"system.posix_acl_") {
            return reply.error(Errno::EOPNOTSUPP);
        }
        if is_virtual(ino.0) {
            return reply.error(Errno::EPERM);
        }
        let create = flags & libc::XATTR_CREATE != 0;
        let replace = flags & libc::XATTR_REPLACE != 0;
        match self
            .0
            .store
            .set_xattr(ino.0, name.as_bytes(), value, create, replace)
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        if is_virtual(ino.0) {
            return match self.0.vxattr(ino.0, name.as_bytes()) {
                Ok(v) if size == 0 => reply.size(v.len() as u32),
                Ok(v) if v.len() > size as usize => reply.error(Errno::ERANGE),
                Ok(v) => reply.data(&v),
                Err(e) => reply.error(e),
            };
        }
        match self.0.store.get_xattr(ino.0, name.as_bytes()) {
            Ok(v) if size == 0 => reply.size(v.len() as u32),
            Ok(v) if v.len() > size as usize => reply.error(Errno::ERANGE),
            Ok(v) => reply.data(&v),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let names = if is_virtual(ino.0) {
            self.0.vxattr_names(ino.0)
        } else {
            self.0
                .store
                .getattr(ino.0)
                .map(|node| {
                    let mut buf = Vec::new();
                    for k in node.xattrs.keys() {
                        buf.extend_from_slice(k);
                        buf.push(0);
                    }
                    buf
                })
                .map_err(|e| errno(&e))
        };
        match names {
            Ok(buf) => {
                if size == 0 {
                    reply.size(buf.len() as u32)
                } else if buf.len() > size as usize {
                    reply.error(Errno::ERANGE)
                } else {
                    reply.data(&buf)
                }
            }
            Err(e) => reply.error(e),
        }
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        if is_virtual(ino.0) {
            return reply.error(Errno::EPERM);
        }
        match self.0.store.remove_xattr(ino.0, name.as_bytes()) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let node = if is_virtual(ino.0) {
            match self.0.vattr(ino.0) {
                Ok(a) => Inode {
                    perm: a.perm,
                    uid: a.uid,
                    gid: a.gid,
                    ..Inode::new(Kind::Dir, a.perm, a.uid, a.gid, ROOT_INO, b"")
                },
                Err(e) => return reply.error(e),
            }
        } else {
            match self.0.store.getattr(ino.0) {
                Ok(n) => n,
                Err(e) => return reply.error(errno(&e)),
            }
        };
        let mask = mask.bits() as u32 & 7;
        if mask == 0 || req.uid() == 0 {
            return reply.ok();
        }
        let bits = if req.uid() == node.uid {
            (node.perm >> 6) & 7
        } else if req.gid() == node.gid {
            (node.perm >> 3) & 7
        } else {
            node.perm & 7
        } as u32;
        if bits & mask == mask {
            reply.ok()
        } else {
            reply.error(Errno::EACCES)
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let fs = &self.0;
        if let Some(e) = fs.refuse_virtual(parent.0, name.as_bytes()) {
            return reply.error(e);
        }
        match fs.new_node(req, parent, name, Kind::File, mode, umask, 0, &[]) {
            Ok((ino, node)) => {
                fs.open_file(ino);
                fs.seen.lock().insert(ino, (node.mtime, node.size));
                let fh = fs.next_fh.fetch_add(1, Ordering::Relaxed);
                reply.created(
                    &TTL,
                    &fs.attr(ino, &node),
                    Generation(0),
                    FileHandle(fh),
                    NO_FLUSH,
                );
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        // Plain allocation (mode 0, or KEEP_SIZE) is supported; space is not reserved
        // ahead in an object store, so it only extends the size when asked to.
        if mode & !libc::FALLOC_FL_KEEP_SIZE != 0 {
            return reply.error(Errno::EOPNOTSUPP);
        }
        let fs = &self.0;
        let Some(end) = offset
            .checked_add(length)
            .filter(|e| *e <= peros_store::MAX_FILE_SIZE)
        else {
            return reply.error(Errno::EFBIG);
        };
        let result = (|| {
            let size = match fs.store.pending_attr(ino.0) {
                Some((size, _, _)) => size,
                None => fs.store.getattr(ino.0).map_err(|e| errno(&e))?.size,
            };
            // Space cannot be reserved in an object store; what the local disk holding the
            // data (or the write-back cache) has free is the honest promise: a request past it
            // fails now with ENOSPC rather than at a later write.
            let wanted = end.saturating_sub(size.max(offset)).min(length);
            if wanted > fs.free_bytes().unwrap_or(u64::MAX) {
                return Err(Errno::ENOSPC);
            }
            if mode & libc::FALLOC_FL_KEEP_SIZE == 0 && end > size {
                fs.store
                    .setattr(
                        ino.0,
                        &SetAttr {
                            size: Some(end),
                            ..Default::default()
                        },
                    )
                    .map_err(|e| errno(&e))?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}

/// Mounts `fs` at `dir` in the background. Dropping the session unmounts.
pub fn mount(
    fs: Arc<PerosFs>,
    dir: &Path,
    opts: &MountOptions,
) -> std::io::Result<fuser::BackgroundSession> {
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName("peros".into()),
        fuser::MountOption::Subtype("peros".into()),
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::NoAtime,
    ];
    if opts.allow_other {
        config.acl = fuser::SessionACL::All;
    }
    config.n_threads = Some(opts.threads.max(1));
    fs.start_syncer(Duration::from_secs(2));
    fuser::spawn_mount(FuseAdapter(fs), dir, &config)
}

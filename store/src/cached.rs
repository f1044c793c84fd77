//! A remote backend with a local disk in front: bounded cache of sealed chunks plus a
//! write-back upload queue.
//!
//! Layout (under the directory given, `PEROS_HOME/cache` by default, mode 0700):
//! - `objects/<key>`: sealed objects known to be in the bucket (downloaded or uploaded),
//!   evicted least-recently-used beyond the byte budget. They are the bucket's bytes:
//!   still encrypted, so the cache reveals no more than the bucket does.
//! - `pending/<key>`: sealed objects written but not yet acknowledged by the server. Never
//!   evicted; moved to `objects/` once uploaded; found again and re-queued at the next open
//!   if the process stopped first.
//!
//! Durability contract: [`ObjectBackend::put`] returns once the object is on local disk and
//! queued (so FUSE callbacks never wait on the network); [`ObjectBackend::sync`] returns Ok
//! only once every object put before it is acknowledged by the server, and fails (the
//! caller's fsync then fails with EIO) if that does not happen within `sync_timeout`. Uploads
//! are retried without end while the process runs, with a backoff bounded at 5 s, so nothing
//! written is dropped when the server comes back; what an fsync acknowledged is in the bucket.
//!
//! Reads look in `objects/` and `pending/` first, so cached data stays readable while the
//! server is down; a miss downloads and caches.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::PutMode;

use crate::backend::{runtime, BackendError, ObjectBackend};
use crate::s3::{PutOutcome, Remote};

/// Options of a [`CachedBackend`].
#[derive(Clone, Debug)]
pub struct CacheOptions {
    /// Directory for `objects/` and `pending/`.
    pub dir: PathBuf,
    /// Bytes of sealed objects kept in `objects/` (pending uploads are not counted). 0 keeps
    /// nothing once uploaded: every read goes to the server.
    pub budget: u64,
    /// How long `sync` waits for outstanding uploads before it reports failure.
    pub sync_timeout: Duration,
    /// Uploads in flight at once.
    pub parallel_uploads: usize,
}

#[derive(Default)]
struct State {
    /// Cached (uploaded) objects: key → (size, last use tick).
    cached: HashMap<String, (u64, u64)>,
    lru: BTreeMap<u64, String>,
    total: u64,
    tick: u64,
    /// Objects not yet acknowledged: key → queue sequence number.
    pending: HashMap<String, u64>,
    order: BTreeSet<(u64, String)>,
    next_seq: u64,
    last_error: Option<String>,
    uploaded: u64,
    upload_failures: u64,
}

impl State {
    fn touch(&mut self, key: &str) {
        if let Some((_, t)) = self.cached.get_mut(key) {
            self.lru.remove(t);
            self.tick += 1;
            *t = self.tick;
            self.lru.insert(self.tick, key.to_string());
        }
    }

    fn add_cached(&mut self, key: &str, size: u64) {
        self.forget_cached(key);
        self.tick += 1;
        self.cached.insert(key.to_string(), (size, self.tick));
        self.lru.insert(self.tick, key.to_string());
        self.total += size;
    }

    fn forget_cached(&mut self, key: &str) -> bool {
        if let Some((size, t)) = self.cached.remove(key) {
            self.lru.remove(&t);
            self.total -= size;
            true
        } else {
            false
        }
    }

    /// Keys to delete so that the cache fits `budget`.
    fn evict(&mut self, budget: u64) -> Vec<String> {
        let mut out = Vec::new();
        while self.total > budget {
            let Some((_, key)) = self.lru.pop_first() else {
                break;
            };
            if let Some((size, _)) = self.cached.remove(&key) {
                self.total -= size;
            }
            out.push(key);
        }
        out
    }

    fn take_pending(&mut self, key: &str) -> bool {
        if let Some(seq) = self.pending.remove(key) {
            self.order.remove(&(seq, key.to_string()));
            true
        } else {
            false
        }
    }
}

struct Inner {
    remote: Remote,
    objects: PathBuf,
    pending: PathBuf,
    opts: CacheOptions,
    state: Mutex<State>,
    changed: Condvar,
    slots: Arc<tokio::sync::Semaphore>,
}

/// Statistics for `peros status` and the load tool.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CacheStats {
    pub cached_objects: u64,
    pub cached_bytes: u64,
    pub budget_bytes: u64,
    pub pending_uploads: u64,
    pub uploaded: u64,
    pub upload_failures: u64,
    pub last_error: Option<String>,
}

/// See the module documentation.
pub struct CachedBackend {
    inner: Arc<Inner>,
}

fn io_err(key: &str, e: impl std::fmt::Display) -> BackendError {
    BackendError::Other {
        key: key.to_string(),
        detail: e.to_string(),
    }
}

fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes `data` to `path` atomically (temporary file + rename), mode 0600.
fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(p) = path.parent() {
        private_dir(p)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data)?;
    drop(f);
    std::fs::rename(&tmp, path)
}

fn safe_key(key: &str) -> Result<(), BackendError> {
    if key.is_empty()
        || key.starts_with('/')
        || key
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(io_err(key, "invalid object key"));
    }
    Ok(())
}

/// Files under `dir` as (key relative to `dir`, size, mtime), skipping temporary files.
fn scan(dir: &Path) -> Vec<(String, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(p);
            } else if p
                .extension()
                .is_some_and(|x| x.to_string_lossy().starts_with("tmp"))
            {
                let _ = std::fs::remove_file(&p);
            } else if let Ok(rel) = p.strip_prefix(dir) {
                out.push((
                    rel.to_string_lossy().into_owned(),
                    m.len(),
                    m.modified().unwrap_or(std::time::UNIX_EPOCH),
                ));
            }
        }
    }
    out
}

impl CachedBackend {
    /// Opens the cache in `opts.dir`, re-queues uploads left by an earlier run.
    pub fn new(remote: Remote, opts: CacheOptions) -> Result<Self, BackendError> {
        let objects = opts.dir.join("objects");
        let pending = opts.dir.join("pending");
        for d in [&opts.dir, &objects, &pending] {
            private_dir(d).map_err(|e| io_err(&d.display().to_string(), e))?;
        }
        let mut state = State::default();
        let mut cached = scan(&objects);
        cached.sort_by_key(|(_, _, t)| *t);
        for (key, size, _) in cached {
            state.add_cached(&key, size);
        }
        let leftover: Vec<String> = scan(&pending).into_iter().map(|(k, _, _)| k).collect();
        let inner = Arc::new(Inner {
            remote,
            objects,
            pending,
            state: Mutex::new(state),
            changed: Condvar::new(),
            slots: Arc::new(tokio::sync::Semaphore::new(opts.parallel_uploads.max(1))),
            opts,
        });
        let evicted = inner.lock().evict(inner.opts.budget);
        for k in evicted {
            let _ = std::fs::remove_file(inner.objects.join(&k));
        }
        for key in leftover {
            tracing::info!("re-queueing upload of {key} left by an earlier run");
            inner.enqueue(key);
        }
        Ok(Self { inner })
    }

    pub fn remote(&self) -> &Remote {
        &self.inner.remote
    }

    pub fn stats(&self) -> CacheStats {
        let s = self.inner.lock();
        CacheStats {
            cached_objects: s.cached.len() as u64,
            cached_bytes: s.total,
            budget_bytes: self.inner.opts.budget,
            pending_uploads: s.pending.len() as u64,
            uploaded: s.uploaded,
            upload_failures: s.upload_failures,
            last_error: s.last_error.clone(),
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `key` as pending and starts its upload task.
    fn enqueue(self: &Arc<Self>, key: String) {
        {
            let mut s = self.lock();
            if s.pending.contains_key(&key) {
                return;
            }
            let seq = s.next_seq;
            s.next_seq += 1;
            s.pending.insert(key.clone(), seq);
            s.order.insert((seq, key.clone()));
        }
        let weak = Arc::downgrade(self);
        let slots = self.slots.clone();
        runtime().spawn(upload(weak, slots, key));
    }

    /// Called when `key` is acknowledged by the server.
    fn uploaded(&self, key: &str) {
        let from = self.pending.join(key);
        let mut s = self.lock();
        if !s.take_pending(key) {
            return; // deleted meanwhile
        }
        s.uploaded += 1;
        s.last_error = None;
        let size = std::fs::metadata(&from).map(|m| m.len()).unwrap_or(0);
        let keep = self.opts.budget > 0
            && private_dir(self.objects.join(key).parent().unwrap_or(&self.objects)).is_ok()
            && std::fs::rename(&from, self.objects.join(key)).is_ok();
        if keep {
            s.add_cached(key, size);
        } else {
            let _ = std::fs::remove_file(&from);
        }
        let evicted = s.evict(self.opts.budget);
        drop(s);
        self.changed.notify_all();
        for k in evicted {
            let _ = std::fs::remove_file(self.objects.join(&k));
        }
    }
}

/// Uploads one pending object, retrying with a bounded backoff until it is acknowledged, the
/// object is deleted, or the backend is dropped (the next open re-queues it).
async fn upload(weak: Weak<Inner>, slots: Arc<tokio::sync::Semaphore>, key: String) {
    let mut delay = Duration::from_millis(100);
    loop {
        let permit = slots.acquire().await;
        let Some(inner) = weak.upgrade() else { return };
        let data = match std::fs::read(inner.pending.join(&key)) {
            Ok(d) => d,
            Err(_) => {
                // Deleted (gc) while queued.
                inner.lock().take_pending(&key);
                inner.changed.notify_all();
                return;
            }
        };
        let remote = inner.remote.clone();
        drop(inner);
        let result = remote
            .put_async(&key, Bytes::from(data), PutMode::Create)
            .await;
        drop(permit);
        let Some(inner) = weak.upgrade() else { return };
        match result {
            Ok(PutOutcome::Done(_) | PutOutcome::Exists | PutOutcome::Conflict) => {
                inner.uploaded(&key);
                return;
            }
            Err(e) => {
                tracing::warn!("upload of {key} failed (retrying in {delay:?}): {e}");
                {
                    let mut s = inner.lock();
                    s.last_error = Some(e.to_string());
                    s.upload_failures += 1;
                }
                inner.changed.notify_all();
            }
        }
        drop(inner);
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

impl ObjectBackend for CachedBackend {
    fn put(&self, key: &str, data: Bytes) -> Result<(), BackendError> {
        safe_key(key)?;
        {
            let s = self.inner.lock();
            if s.pending.contains_key(key) || s.cached.contains_key(key) {
                return Ok(()); // content-addressed: same bytes
            }
        }
        write_atomic(&self.inner.pending.join(key), &data).map_err(|e| {
            io_err(
                key,
                format!(
                    "cannot queue the upload in {}: {e}",
                    self.inner.pending.display()
                ),
            )
        })?;
        self.inner.enqueue(key.to_string());
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Bytes, BackendError> {
        safe_key(key)?;
        let local = {
            let mut s = self.inner.lock();
            if s.cached.contains_key(key) {
                s.touch(key);
                Some(self.inner.objects.join(key))
            } else if s.pending.contains_key(key) {
                Some(self.inner.pending.join(key))
            } else {
                None
            }
        };
        if let Some(p) = local {
            match std::fs::read(&p) {
                Ok(d) => return Ok(Bytes::from(d)),
                Err(e) => {
                    tracing::warn!(
                        "cached object {} unreadable ({e}): fetching it",
                        p.display()
                    );
                    self.inner.lock().forget_cached(key);
                }
            }
        }
        let Some((data, _)) = self.inner.remote.get(key)? else {
            // A pending upload may have completed (moved to objects/) in between.
            if let Ok(d) = std::fs::read(self.inner.objects.join(key)) {
                return Ok(Bytes::from(d));
            }
            return Err(BackendError::NotFound(key.to_string()));
        };
        if self.inner.opts.budget > 0 && (data.len() as u64) <= self.inner.opts.budget {
            let path = self.inner.objects.join(key);
            if write_atomic(&path, &data).is_ok() {
                let mut s = self.inner.lock();
                s.add_cached(key, data.len() as u64);
                let evicted = s.evict(self.inner.opts.budget);
                drop(s);
                for k in evicted {
                    let _ = std::fs::remove_file(self.inner.objects.join(&k));
                }
            }
        }
        Ok(data)
    }

    fn delete(&self, key: &str) -> Result<(), BackendError> {
        safe_key(key)?;
        {
            let mut s = self.inner.lock();
            s.take_pending(key);
            s.forget_cached(key);
        }
        self.inner.changed.notify_all();
        let _ = std::fs::remove_file(self.inner.pending.join(key));
        let _ = std::fs::remove_file(self.inner.objects.join(key));
        self.inner.remote.delete(key)
    }

    fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, BackendError> {
        let mut all: BTreeMap<String, u64> = self.inner.remote.list(prefix)?.into_iter().collect();
        let pending: Vec<String> = self
            .inner
            .lock()
            .pending
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        for k in pending {
            let path = self.inner.pending.join(&k);
            all.entry(k)
                .or_insert_with(|| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0));
        }
        Ok(all.into_iter().collect())
    }

    fn sync(&self) -> Result<(), BackendError> {
        let deadline = Instant::now() + self.inner.opts.sync_timeout;
        let mut s = self.inner.lock();
        let target = s.next_seq;
        loop {
            let waiting = s.order.range(..(target, String::new())).count();
            if waiting == 0 {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(BackendError::Other {
                    key: "(sync)".into(),
                    detail: format!(
                        "{waiting} objects are not yet stored in {} after {:?} (last error: {}); \
                         they are kept in {} and retried until the server takes them",
                        self.inner.remote.url(),
                        self.inner.opts.sync_timeout,
                        s.last_error.as_deref().unwrap_or("none"),
                        self.inner.pending.display()
                    ),
                });
            }
            s = self
                .inner
                .changed
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn describe(&self) -> String {
        let st = self.stats();
        format!(
            "{} at {} (disk cache {}: {:.1} / {:.0} MB, {} uploads pending)",
            self.inner.remote.url(),
            self.inner.remote.endpoint(),
            self.inner.opts.dir.display(),
            st.cached_bytes as f64 / 1e6,
            st.budget_bytes as f64 / 1e6,
            st.pending_uploads
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn backend(dir: &Path, budget: u64) -> (CachedBackend, Arc<InMemory>) {
        let mem = Arc::new(InMemory::new());
        let remote = Remote::from_store(mem.clone(), "t1", "s3://mem/t1");
        let b = CachedBackend::new(
            remote,
            CacheOptions {
                dir: dir.to_path_buf(),
                budget,
                sync_timeout: Duration::from_secs(5),
                parallel_uploads: 2,
            },
        )
        .unwrap();
        (b, mem)
    }

    #[test]
    fn write_back_sync_read_evict() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _mem) = backend(dir.path(), 250);
        for i in 0..5 {
            b.put(
                &format!("chunks/0{i}/k{i}"),
                Bytes::from(vec![i as u8; 100]),
            )
            .unwrap();
        }
        b.sync().unwrap();
        let st = b.stats();
        assert_eq!(st.pending_uploads, 0);
        assert!(st.cached_bytes <= 250, "{st:?}");
        assert_eq!(b.list("chunks/").unwrap().len(), 5);
        // Evicted ones come back from the remote.
        for i in 0..5 {
            assert_eq!(
                b.get(&format!("chunks/0{i}/k{i}")).unwrap(),
                Bytes::from(vec![i as u8; 100])
            );
        }
        b.delete("chunks/00/k0").unwrap();
        assert!(matches!(
            b.get("chunks/00/k0"),
            Err(BackendError::NotFound(_))
        ));
        assert!(b.get("../x").is_err());
    }

    #[test]
    fn leftover_pending_is_uploaded_at_next_open() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(&dir.path().join("pending/chunks/aa/left"), b"sealed").unwrap();
        let (b, mem) = backend(dir.path(), 1 << 20);
        b.sync().unwrap();
        let remote = Remote::from_store(mem, "t1", "s3://mem/t1");
        assert_eq!(
            remote.get("chunks/aa/left").unwrap().unwrap().0,
            Bytes::from_static(b"sealed")
        );
        assert_eq!(
            b.get("chunks/aa/left").unwrap(),
            Bytes::from_static(b"sealed")
        );
    }
}

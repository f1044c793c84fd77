//! One tenant of a shared bucket: stateless daemons.
//!
//! A tenant is one key and one prefix (`s3://BUCKET/PREFIX`). Under the prefix:
//! - `chunks/xx/<hex>`: sealed chunks, named by a MAC keyed per tenant (see `peros-crypto`):
//!   equal content in two tenants gets unrelated names.
//! - `meta/snapshot`: the metadata database (redb file image) plus a generation number,
//!   sealed with age to the tenant's key and prefixed with a keyed MAC of the plaintext
//!   (age alone authenticates nothing: anyone holding the public key can encrypt).
//!   Pushed after each durable point (fsync, the mount's 2-s syncer when something changed,
//!   close). `peros init --from` and any daemon start pull it when the bucket's copy is
//!   newer than the local one, so a daemon can start on any node that has the key.
//! - `meta/lease`: JSON `{host, pid, node, id, expires}` — no file names. Created with
//!   `PutMode::Create`, renewed and released with ETag-matched updates, so two daemons
//!   cannot mount one tenant read-write: the second is refused with the holder's name. A
//!   lease is free once expired, released, or held by a dead process of this same home.
//! - `meta/identity.age`: the passphrase-wrapped key, only when the key has a passphrase
//!   (`init --from` then needs just the passphrase). Unwrapped keys never leave the node.
//!
//! Local state: `meta/remote.json` (generation and ETag of the snapshot last pushed or
//! pulled, and whether local changes are not pushed yet) and `meta/node-id`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use object_store::{PutMode, UpdateVersion};
use peros_crypto::{Keyring, ObjectName, NAME_LEN};
use serde::{Deserialize, Serialize};

use crate::backend::{runtime, BackendError};
use crate::s3::{PutOutcome, Remote};
use crate::{DurableHook, Store, StoreError};

pub const SNAPSHOT_KEY: &str = "meta/snapshot";
pub const LEASE_KEY: &str = "meta/lease";
pub const IDENTITY_KEY: &str = "meta/identity.age";
const SNAPSHOT_MAGIC: &[u8; 10] = b"PEROSMETA1";

#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error(
        "{url} is in use by another PerOS daemon: host {host}, pid {pid} (its lease runs until \
         {expires_in} s from now and is renewed while it runs). Stop it there with \
         `peros umount`; if that machine is gone, wait {expires_in} s for the lease to expire \
         and try again"
    )]
    LeaseHeld {
        url: String,
        host: String,
        pid: u32,
        expires_in: u64,
    },
    #[error("the metadata snapshot {url}/{SNAPSHOT_KEY} cannot be opened with this key: {detail}")]
    BadSnapshot { url: String, detail: String },
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<TenantError> for StoreError {
    fn from(e: TenantError) -> Self {
        match e {
            TenantError::Backend(b) => StoreError::Backend(b),
            TenantError::Io(e) => StoreError::Io(e),
            other => StoreError::Invalid(other.to_string()),
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut buf);
    }
    hex::encode(buf)
}

// ----- snapshot format -----

/// Seals a metadata image: `MAC(plaintext) || age(MAGIC || generation || image)`.
pub fn seal_snapshot(
    keyring: &Keyring,
    generation: u64,
    image: &[u8],
) -> Result<Vec<u8>, StoreError> {
    let mut plain = Vec::with_capacity(image.len() + 18);
    plain.extend_from_slice(SNAPSHOT_MAGIC);
    plain.extend_from_slice(&generation.to_le_bytes());
    plain.extend_from_slice(image);
    let mac = keyring.object_name(&plain);
    let sealed = keyring.seal(&plain)?;
    let mut out = Vec::with_capacity(NAME_LEN + sealed.len());
    out.extend_from_slice(&mac.0);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens a sealed snapshot: (generation, image). Fails on a wrong key or any tampering.
pub fn open_snapshot(keyring: &Keyring, bytes: &[u8]) -> Result<(u64, Vec<u8>), String> {
    if bytes.len() < NAME_LEN {
        return Err("too short".into());
    }
    let mut mac = [0u8; NAME_LEN];
    mac.copy_from_slice(&bytes[..NAME_LEN]);
    let plain = keyring
        .open(&bytes[NAME_LEN..], &ObjectName(mac))
        .map_err(|e| e.to_string())?;
    if plain.len() < 18 || &plain[..10] != SNAPSHOT_MAGIC {
        return Err("not a PerOS metadata snapshot".into());
    }
    let generation = u64::from_le_bytes(plain[10..18].try_into().expect("8 bytes"));
    Ok((generation, plain[18..].to_vec()))
}

// ----- local state -----

#[derive(Serialize, Deserialize, Default, Debug, Clone)]
struct LocalState {
    generation: u64,
    etag: Option<String>,
    /// Local metadata changed since the last successful push.
    dirty: bool,
}

fn load_state(path: &Path) -> LocalState {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn save_state(path: &Path, st: &LocalState) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(st).map_err(std::io::Error::other)?)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The random id of this home (so a restarted daemon can take back its own dead lease).
fn node_id(meta_dir: &Path) -> std::io::Result<String> {
    let p = meta_dir.join("node-id");
    if let Ok(s) = std::fs::read_to_string(&p) {
        let s = s.trim().to_string();
        if !s.is_empty() {
            return Ok(s);
        }
    }
    let id = random_hex(16);
    std::fs::write(&p, format!("{id}\n"))?;
    Ok(id)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into())
}

fn pid_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid as i32, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

// ----- lease -----

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct LeaseRecord {
    pub host: String,
    pub pid: u32,
    /// Random id of the holder's home.
    pub node: String,
    /// Random id of this acquisition.
    pub id: String,
    /// Unix seconds; 0 = released.
    pub expires: u64,
}

struct LeaseInner {
    remote: Remote,
    record: Mutex<(LeaseRecord, UpdateVersion)>,
    ttl: Duration,
    lost: AtomicBool,
}

/// A held lease on a tenant; renewed in the background, released on drop.
pub struct Lease {
    inner: Arc<LeaseInner>,
}

impl Lease {
    /// Takes the tenant's lease or says who holds it.
    pub fn acquire(remote: &Remote, node: &str, ttl: Duration) -> Result<Self, TenantError> {
        let ttl = ttl.max(Duration::from_secs(3));
        let mine = |expires| LeaseRecord {
            host: hostname(),
            pid: std::process::id(),
            node: node.to_string(),
            id: random_hex(8),
            expires,
        };
        for _ in 0..10 {
            let rec = mine(now_secs() + ttl.as_secs());
            let body = Bytes::from(serde_json::to_vec(&rec).expect("lease serializes"));
            let outcome = match remote.get(LEASE_KEY)? {
                None => remote.put(LEASE_KEY, body, PutMode::Create)?,
                Some((bytes, version)) => {
                    let held: Option<LeaseRecord> = serde_json::from_slice(&bytes).ok();
                    if let Some(h) = held.filter(|h| {
                        let now = now_secs();
                        let dead_own = h.node == node && h.host == hostname() && !pid_alive(h.pid);
                        h.expires > now && !dead_own
                    }) {
                        return Err(TenantError::LeaseHeld {
                            url: remote.url().to_string(),
                            host: h.host,
                            pid: h.pid,
                            expires_in: h.expires.saturating_sub(now_secs()),
                        });
                    }
                    remote.put(LEASE_KEY, body, PutMode::Update(version))?
                }
            };
            if let PutOutcome::Done(version) = outcome {
                let inner = Arc::new(LeaseInner {
                    remote: remote.clone(),
                    record: Mutex::new((rec, version)),
                    ttl,
                    lost: AtomicBool::new(false),
                });
                runtime().spawn(renew(Arc::downgrade(&inner)));
                held_leases()
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Arc::downgrade(&inner));
                return Ok(Self { inner });
            }
            // Someone else changed it in between: look again.
        }
        Err(TenantError::Backend(BackendError::Other {
            key: LEASE_KEY.into(),
            detail: "the lease keeps changing; another daemon is starting: try again".into(),
        }))
    }

    /// Fails once the lease was taken over by someone else (this daemon must stop writing).
    pub fn check(&self) -> Result<(), StoreError> {
        if self.inner.lost.load(Ordering::SeqCst) {
            return Err(StoreError::Backend(BackendError::Other {
                key: self.inner.remote.url().to_string(),
                detail: "this daemon lost its lease on the tenant (another daemon took it over \
                         after it expired): nothing more is written to the bucket; unmount"
                    .into(),
            }));
        }
        Ok(())
    }

    pub fn record(&self) -> LeaseRecord {
        self.inner
            .record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }
}

async fn renew(weak: Weak<LeaseInner>) {
    loop {
        let every = match weak.upgrade() {
            Some(i) => i.ttl / 3,
            None => return,
        };
        tokio::time::sleep(every).await;
        let Some(inner) = weak.upgrade() else { return };
        if inner.lost.load(Ordering::SeqCst) {
            return;
        }
        let (mut rec, version) = inner
            .record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        rec.expires = now_secs() + inner.ttl.as_secs();
        let body = Bytes::from(serde_json::to_vec(&rec).expect("lease serializes"));
        match inner
            .remote
            .put_async(LEASE_KEY, body, PutMode::Update(version))
            .await
        {
            Ok(PutOutcome::Done(v)) => {
                *inner.record.lock().unwrap_or_else(|e| e.into_inner()) = (rec, v);
            }
            Ok(_) => {
                tracing::error!(
                    "lost the lease on {}: another daemon took it over",
                    inner.remote.url()
                );
                inner.lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => tracing::warn!("lease renewal failed (will retry): {e}"),
        }
    }
}

impl LeaseInner {
    /// Gives the lease up (once): marks it expired with an ETag-matched update.
    fn release(&self) {
        if self.lost.swap(true, Ordering::SeqCst) {
            return;
        }
        let (mut rec, version) = self
            .record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        rec.expires = 0;
        let body = Bytes::from(serde_json::to_vec(&rec).expect("lease serializes"));
        if let Err(e) = self.remote.put(LEASE_KEY, body, PutMode::Update(version)) {
            tracing::warn!("releasing the lease on {} failed: {e}", self.remote.url());
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.inner.release();
    }
}

fn held_leases() -> &'static Mutex<Vec<Weak<LeaseInner>>> {
    static HELD: std::sync::OnceLock<Mutex<Vec<Weak<LeaseInner>>>> = std::sync::OnceLock::new();
    HELD.get_or_init(Default::default)
}

/// Releases every lease this process still holds: call before exiting, when stores may
/// still be referenced by threads that never end (their `Drop` would not run).
pub fn release_all() {
    let all: Vec<_> = std::mem::take(&mut *held_leases().lock().unwrap_or_else(|e| e.into_inner()));
    for l in all.iter().filter_map(Weak::upgrade) {
        l.release();
    }
}

// ----- the tenant -----

struct PushState {
    local: LocalState,
    last_count: u64,
}

/// A remote tenant attached to a local home: holds the lease and pushes metadata snapshots.
pub struct Tenant {
    remote: Remote,
    keyring: Arc<Keyring>,
    state_path: PathBuf,
    lease: Lease,
    push: Mutex<PushState>,
    pulled: bool,
}

/// Options for [`Tenant::attach`].
pub struct AttachOptions {
    /// Lease duration; renewed every third of it.
    pub lease_ttl: Duration,
}

impl Tenant {
    /// Takes the lease, then makes the local metadata file `meta_path` current: replaced by
    /// the bucket's snapshot when that one is newer (or the local file is missing). Call
    /// before [`Store::open`], then [`Tenant::install`] on the opened store.
    pub fn attach(
        remote: Remote,
        keyring: Arc<Keyring>,
        meta_path: &Path,
        opts: AttachOptions,
    ) -> Result<Arc<Self>, TenantError> {
        let meta_dir = meta_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let node = node_id(&meta_dir)?;
        let lease = Lease::acquire(&remote, &node, opts.lease_ttl)?;
        let state_path = meta_dir.join("remote.json");
        let mut local = load_state(&state_path);
        let mut pulled = false;
        let head = remote.head(SNAPSHOT_KEY)?;
        if head.is_none() {
            // A new tenant: its first durable point creates the snapshot.
            local.dirty = true;
        }
        if let Some(head) = head {
            let current = meta_path.exists() && head.e_tag.is_some() && head.e_tag == local.etag;
            if !current {
                if let Some((bytes, version)) = remote.get(SNAPSHOT_KEY)? {
                    let (generation, image) =
                        open_snapshot(&keyring, &bytes).map_err(|detail| {
                            TenantError::BadSnapshot {
                                url: remote.url().to_string(),
                                detail,
                            }
                        })?;
                    if generation > local.generation || !meta_path.exists() {
                        let tmp = meta_path.with_extension("redb.pull");
                        std::fs::write(&tmp, &image)?;
                        std::fs::File::open(&tmp)?.sync_all()?;
                        std::fs::rename(&tmp, meta_path)?;
                        tracing::info!(
                            "metadata pulled from {} (generation {generation})",
                            remote.url()
                        );
                        local = LocalState {
                            generation,
                            etag: version.e_tag,
                            dirty: false,
                        };
                        save_state(&state_path, &local)?;
                        pulled = true;
                    }
                }
            }
        }
        Ok(Arc::new(Self {
            remote,
            keyring,
            state_path,
            lease,
            push: Mutex::new(PushState {
                local,
                last_count: 0,
            }),
            pulled,
        }))
    }

    /// Whether [`Tenant::attach`] replaced the local metadata with the bucket's (local
    /// derived state such as the search index must then be rebuilt).
    pub fn pulled(&self) -> bool {
        self.pulled
    }

    /// Registers this tenant as the store's durable hook.
    pub fn install(self: &Arc<Self>, store: &Store) {
        store.set_durable_hook(self.clone());
    }

    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Generation of the snapshot last pushed or pulled.
    pub fn generation(&self) -> u64 {
        self.push
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .local
            .generation
    }

    /// Pushes the metadata snapshot if anything changed since the last push (or `force`).
    pub fn push(&self, store: &Store, force: bool) -> Result<(), StoreError> {
        self.lease.check()?;
        let mut st = self.push.lock().unwrap_or_else(|e| e.into_inner());
        let changed = store.commit_count() != st.last_count;
        if !(force || changed || st.local.dirty) {
            return Ok(());
        }
        if !st.local.dirty {
            st.local.dirty = true;
            save_state(&self.state_path, &st.local)?;
        }
        let (image, count) = store.snapshot_image()?;
        let generation = st.local.generation + 1;
        let sealed = seal_snapshot(&self.keyring, generation, &image)?;
        let mode = match &st.local.etag {
            Some(e) => PutMode::Update(UpdateVersion {
                e_tag: Some(e.clone()),
                version: None,
            }),
            None => PutMode::Overwrite,
        };
        let mut outcome = self
            .remote
            .put(SNAPSHOT_KEY, Bytes::from(sealed.clone()), mode)?;
        if matches!(outcome, PutOutcome::Conflict) {
            // Our record of the ETag may be stale (e.g. a push whose answer was lost). We
            // hold the lease, so nobody else may write: accept if the bucket's copy is ours
            // or older.
            if let Some((bytes, _)) = self.remote.get(SNAPSHOT_KEY)? {
                let theirs = open_snapshot(&self.keyring, &bytes)
                    .map(|(g, _)| g)
                    .unwrap_or(0);
                if theirs < generation {
                    outcome =
                        self.remote
                            .put(SNAPSHOT_KEY, Bytes::from(sealed), PutMode::Overwrite)?;
                }
            }
        }
        match outcome {
            PutOutcome::Done(v) => {
                st.local = LocalState {
                    generation,
                    etag: v.e_tag,
                    dirty: false,
                };
                st.last_count = count;
                save_state(&self.state_path, &st.local)?;
                Ok(())
            }
            _ => Err(StoreError::Backend(BackendError::Other {
                key: format!("{}/{SNAPSHOT_KEY}", self.remote.url()),
                detail: "the bucket holds a newer metadata snapshot than this daemon's: \
                         another daemon wrote this tenant; unmount and start again"
                    .into(),
            })),
        }
    }
}

impl DurableHook for Tenant {
    fn after_durable(&self, store: &Store) -> Result<(), StoreError> {
        self.push(store, false)
    }
}

/// Uploads the passphrase-wrapped key file (never an unwrapped one) so that `init --from`
/// needs only the passphrase. Leaves an existing copy alone.
pub fn upload_wrapped_key(remote: &Remote, key_file: &Path) -> Result<(), TenantError> {
    let bytes = std::fs::read(key_file)?;
    if !bytes.starts_with(b"age-encryption.org/") {
        return Ok(());
    }
    remote.put(IDENTITY_KEY, Bytes::from(bytes), PutMode::Create)?;
    Ok(())
}

/// The passphrase-wrapped key stored by [`upload_wrapped_key`], if any.
pub fn download_wrapped_key(remote: &Remote) -> Result<Option<Vec<u8>>, TenantError> {
    Ok(remote.get(IDENTITY_KEY)?.map(|(b, _)| b.to_vec()))
}

/// Whether the prefix already holds a tenant (a snapshot).
pub fn exists(remote: &Remote) -> Result<bool, TenantError> {
    Ok(remote.head(SNAPSHOT_KEY)?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[test]
    fn snapshot_seal_open_and_tamper() {
        let k = Keyring::generate();
        let sealed = seal_snapshot(&k, 7, b"image bytes").unwrap();
        assert_eq!(
            open_snapshot(&k, &sealed).unwrap(),
            (7, b"image bytes".to_vec())
        );
        let other = Keyring::generate();
        assert!(open_snapshot(&other, &sealed).is_err());
        // A snapshot forged with the public key alone fails the MAC.
        let mut forged = sealed.clone();
        forged[0] ^= 1;
        assert!(open_snapshot(&k, &forged).is_err());
    }

    #[test]
    fn lease_is_exclusive_and_released() {
        let mem = Arc::new(InMemory::new());
        let remote = Remote::from_store(mem, "t", "s3://mem/t");
        let a = Lease::acquire(&remote, "node-a", Duration::from_secs(30)).unwrap();
        match Lease::acquire(&remote, "node-b", Duration::from_secs(30)) {
            Err(TenantError::LeaseHeld { pid, .. }) => assert_eq!(pid, std::process::id()),
            other => panic!("second lease: {:?}", other.map(|_| ())),
        }
        drop(a);
        let b = Lease::acquire(&remote, "node-b", Duration::from_secs(30)).unwrap();
        assert_eq!(b.record().node, "node-b");
    }
}

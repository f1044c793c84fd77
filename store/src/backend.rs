//! The object backend seam: where sealed chunks live.
//!
//! [`ObjectBackend`] is a small synchronous trait so that the store (and the FUSE layer on top)
//! need no async runtime of their own. [`ObjectStoreBackend`] implements it over any
//! `object_store` implementation: a local directory (the embedded default) or S3.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::{path::Path as ObjPath, ObjectStore, ObjectStoreExt, PutMode, PutOptions};

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("object {0} not found in the object store")]
    NotFound(String),
    #[error("object store error on {key}: {detail}")]
    Other { key: String, detail: String },
}

/// Where sealed objects go. Keys are opaque, `/`-separated names chosen by the store.
pub trait ObjectBackend: Send + Sync {
    /// Stores `data` under `key`. An existing object with that key is left as is (keys are
    /// content-addressed, so it holds the same plaintext).
    fn put(&self, key: &str, data: Bytes) -> Result<(), BackendError>;
    fn get(&self, key: &str) -> Result<Bytes, BackendError>;
    fn delete(&self, key: &str) -> Result<(), BackendError>;
    /// All objects under `prefix` with their sizes.
    fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, BackendError>;
    /// Makes every `put` that returned so far durable. Called before a metadata commit that
    /// references new objects.
    fn sync(&self) -> Result<(), BackendError>;
    /// Human description for `peros status`.
    fn describe(&self) -> String;
}

/// An [`ObjectBackend`] over the `object_store` crate.
pub struct ObjectStoreBackend {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    /// For the local backend: the directory whose file system `sync` flushes with one
    /// `syncfs(2)`, instead of an fsync per object (which made small-file imports 10× slower).
    local_root: Option<PathBuf>,
    description: String,
}

/// The one I/O runtime of the process, shared by every backend (a thousand tenants in one
/// process must not mean a thousand thread pools). Callers block on it from their own
/// threads; it is never entered from inside itself.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("peros-objects")
            .enable_all()
            .build()
            .expect("cannot start the object store I/O runtime")
    })
}

impl ObjectStoreBackend {
    /// The embedded default: objects as files under `dir`.
    pub fn local(dir: &Path) -> Result<Self, BackendError> {
        std::fs::create_dir_all(dir).map_err(|e| BackendError::Other {
            key: dir.display().to_string(),
            detail: e.to_string(),
        })?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir).map_err(|e| {
            BackendError::Other {
                key: dir.display().to_string(),
                detail: e.to_string(),
            }
        })?;
        Self::new(
            Arc::new(fs),
            "",
            Some(dir.to_path_buf()),
            format!("local directory {}", dir.display()),
        )
    }

    /// Any `object_store` implementation, with all keys placed under `prefix`.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        local_root: Option<PathBuf>,
        description: String,
    ) -> Result<Self, BackendError> {
        Ok(Self {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            local_root,
            description,
        })
    }

    fn path(&self, key: &str) -> ObjPath {
        if self.prefix.is_empty() {
            ObjPath::from(key)
        } else {
            ObjPath::from(format!("{}/{}", self.prefix, key))
        }
    }

    fn strip<'a>(&self, full: &'a str) -> &'a str {
        if self.prefix.is_empty() {
            full
        } else {
            full.strip_prefix(&self.prefix)
                .map(|s| s.trim_start_matches('/'))
                .unwrap_or(full)
        }
    }
}

fn other(key: &str, e: impl std::fmt::Display) -> BackendError {
    BackendError::Other {
        key: key.to_string(),
        detail: e.to_string(),
    }
}

impl ObjectBackend for ObjectStoreBackend {
    fn put(&self, key: &str, data: Bytes) -> Result<(), BackendError> {
        let path = self.path(key);
        if let Some(root) = &self.local_root {
            // Around the page cache where it can (direct.rs); the same file names and layout
            // as object_store's LocalFileSystem, which reads, lists and deletes them.
            return crate::direct::put_file(&root.join(path.as_ref()), &data)
                .map_err(|e| other(key, e));
        }
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match runtime().block_on(self.store.put_opts(&path, data.into(), opts)) {
            Ok(_) => Ok(()),
            // Content-addressed: an existing object already holds these bytes.
            Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(other(key, e)),
        }
    }

    fn get(&self, key: &str) -> Result<Bytes, BackendError> {
        let path = self.path(key);
        runtime().block_on(async {
            match self.store.get(&path).await {
                Ok(r) => r.bytes().await.map_err(|e| other(key, e)),
                Err(object_store::Error::NotFound { .. }) => {
                    Err(BackendError::NotFound(key.to_string()))
                }
                Err(e) => Err(other(key, e)),
            }
        })
    }

    fn delete(&self, key: &str) -> Result<(), BackendError> {
        let path = self.path(key);
        match runtime().block_on(self.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(other(key, e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, BackendError> {
        let path = self.path(prefix);
        let metas: Vec<_> = runtime()
            .block_on(self.store.list(Some(&path)).try_collect())
            .map_err(|e: object_store::Error| other(prefix, e))?;
        Ok(metas
            .into_iter()
            .map(|m| (self.strip(m.location.as_ref()).to_string(), m.size))
            .collect())
    }

    fn sync(&self) -> Result<(), BackendError> {
        let Some(root) = &self.local_root else {
            return Ok(()); // remote stores acknowledge a put only once it is durable
        };
        use std::os::fd::AsRawFd;
        let dir = std::fs::File::open(root).map_err(|e| other("(sync)", e))?;
        // SAFETY: syncfs only reads the descriptor, which stays open for the call.
        if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
            return Err(other("(sync)", std::io::Error::last_os_error()));
        }
        Ok(())
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

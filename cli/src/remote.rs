//! Remote (`s3://BUCKET/PREFIX`) stores: configuration and opening.
//!
//! A remote store keeps in the local home only what is needed to run: the key, the config,
//! the metadata database (a working copy: the bucket holds the encrypted snapshot, see
//! `peros_store::tenant`), the search index and a bounded disk cache of sealed chunks
//! (`disk_cache_dir`, `disk_cache_mb`). Everything that leaves the machine is sealed.
//!
//! Decisions, written down:
//! - Settings: config keys win over the `AWS_*` environment variables (a config file is
//!   specific to one tenant; the environment is shared). `peros init --store/--from` record
//!   the endpoint, region and allow_http found in the environment, never credentials: those
//!   stay in the environment, or in the config (mode 0600) if the user puts them there.
//!   `secret_access_key = "env:NAME"` reads another variable.
//! - fsync on a remote store means: chunks acknowledged by the server, the local metadata
//!   committed, and the metadata snapshot uploaded. If the server cannot be reached within
//!   `sync_timeout_secs`, fsync fails with EIO; the data stays queued on local disk and is
//!   uploaded when the server is back.
//! - Every process that opens a remote store for itself (daemon or a command without a
//!   daemon) holds the tenant's lease while it runs.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use peros_crypto::Keyring;
use peros_store::s3::{Remote, S3Settings};
use peros_store::tenant::{AttachOptions, Tenant};
use peros_store::{CacheOptions, CachedBackend, ObjectBackend};

use crate::home::{Home, StoreConfig};

pub fn is_remote(backend: &str) -> bool {
    backend.starts_with("s3://")
}

fn resolve_secret(v: &str) -> Result<String> {
    match v.strip_prefix("env:") {
        Some(name) => std::env::var(name)
            .with_context(|| format!("store.secret_access_key names ${name}, which is not set")),
        None => Ok(v.to_string()),
    }
}

/// S3 settings from the config (environment variables fill in what it leaves out).
pub fn settings(cfg: &StoreConfig) -> Result<S3Settings> {
    Ok(S3Settings {
        url: cfg.backend.clone(),
        endpoint: cfg.endpoint.clone(),
        region: cfg.region.clone(),
        access_key_id: cfg.access_key_id.clone(),
        secret_access_key: cfg
            .secret_access_key
            .as_deref()
            .map(resolve_secret)
            .transpose()?,
        allow_http: cfg.allow_http,
    })
}

pub fn connect(cfg: &StoreConfig) -> Result<Remote> {
    let s = settings(cfg)?;
    Ok(Remote::connect(&s)?)
}

/// The `[store]` section `peros init --store URL` / `--from URL` writes: the URL plus the
/// endpoint, region and allow_http of the environment (no credentials).
pub fn config_for(url: &str) -> Result<StoreConfig> {
    peros_store::s3::parse_url(url)?;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    Ok(StoreConfig {
        backend: url.trim_end_matches('/').to_string(),
        endpoint: env("AWS_ENDPOINT_URL").or_else(|| env("AWS_ENDPOINT")),
        region: env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")),
        allow_http: env("AWS_ALLOW_HTTP")
            .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes")),
        ..StoreConfig::default()
    })
}

/// Opens the remote side of a store: takes the lease, pulls newer metadata, sets up the disk
/// cache. Returns the backend and the tenant (to install on the opened store).
pub fn open(
    home: &Home,
    cfg: &StoreConfig,
    keyring: &Arc<Keyring>,
) -> Result<(Arc<dyn ObjectBackend>, Arc<Tenant>)> {
    let remote = connect(cfg)?;
    let tenant = Tenant::attach(
        remote.clone(),
        keyring.clone(),
        &home.meta_file(),
        AttachOptions {
            lease_ttl: Duration::from_secs(cfg.lease_secs.max(3)),
        },
    )
    .with_context(|| format!("opening {}", cfg.backend))?;
    if tenant.pulled() {
        // The search index described the old metadata: rebuild it from the new.
        let index = peros_indexer::default_dir(&home.data_dir);
        if index.exists() {
            std::fs::remove_dir_all(&index)
                .with_context(|| format!("removing the stale index {}", index.display()))?;
        }
    }
    let dir = if cfg.disk_cache_dir.is_absolute() {
        cfg.disk_cache_dir.clone()
    } else {
        home.data_dir.join(&cfg.disk_cache_dir)
    };
    let backend = CachedBackend::new(
        remote,
        CacheOptions {
            dir,
            budget: cfg.disk_cache_mb * 1024 * 1024,
            sync_timeout: Duration::from_secs(cfg.sync_timeout_secs.max(1)),
            parallel_uploads: 4,
        },
    )?;
    Ok((Arc::new(backend), tenant))
}

/// Before `init --store URL`: the prefix must not hold a tenant already.
pub fn check_new(cfg: &StoreConfig) -> Result<()> {
    let remote = connect(cfg)?;
    if peros_store::tenant::exists(&remote)
        .with_context(|| format!("cannot reach {}", cfg.backend))?
    {
        bail!(
            "{} already holds a PerOS store: to use it on this machine run `peros init --from {}` \
             (with its key: --key FILE, or its passphrase)",
            cfg.backend,
            cfg.backend
        );
    }
    Ok(())
}

/// For `init --from URL`: the key file bytes, from `--key FILE` or (passphrase-wrapped keys
/// only) from the bucket.
pub fn key_bytes(cfg: &StoreConfig, key: Option<&Path>) -> Result<Vec<u8>> {
    let remote = connect(cfg)?;
    if !peros_store::tenant::exists(&remote)
        .with_context(|| format!("cannot reach {}", cfg.backend))?
    {
        bail!(
            "{} holds no PerOS store (no metadata snapshot): check the URL, or create one with \
             `peros init --store {}`",
            cfg.backend,
            cfg.backend
        );
    }
    match key {
        Some(p) => {
            std::fs::read(p).with_context(|| format!("reading the key file {}", p.display()))
        }
        None => peros_store::tenant::download_wrapped_key(&remote)?.with_context(|| {
            format!(
                "{} holds no passphrase-wrapped key (its key has no passphrase): pass the key \
                 file with --key FILE",
                cfg.backend
            )
        }),
    }
}

/// After `init --store`: upload the key if it is passphrase-wrapped.
pub fn upload_key(cfg: &StoreConfig, key_file: &Path) -> Result<()> {
    let remote = connect(cfg)?;
    peros_store::tenant::upload_wrapped_key(&remote, key_file)?;
    Ok(())
}

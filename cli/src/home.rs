//! Where a store lives on this machine, its configuration, and how it is opened.
//!
//! `PEROS_HOME` puts everything (config, keys, metadata, objects, indexes) in one directory.
//! Without it: config in `$XDG_CONFIG_HOME/peros`, data in `$XDG_DATA_HOME/peros`.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use peros_crypto::secrecy::SecretString;
use peros_crypto::Keyring;
use peros_store::{ObjectStoreBackend, Store, StoreOptions};
use serde::{Deserialize, Serialize};

/// The configuration file (`config.toml`). Every key is optional.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub index: IndexConfig,
    #[serde(default)]
    pub llm: LlmConfig,
    #[serde(default)]
    pub views: ViewsConfig,
    /// Not written by `init`: defaults apply (documented in examples/config.toml).
    #[serde(default, skip_serializing)]
    pub mount: MountConfig,
    /// The agent: prefetch, planner schedule, privacy policy (see peros_agent::AgentConfig;
    /// documented in examples/config.toml; not written by `init`: defaults apply).
    #[serde(default, skip_serializing)]
    pub agent: peros_agent::AgentConfig,
}

/// How the daemon serves the kernel.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MountConfig {
    /// Threads reading FUSE requests (default: one per core, from 2 to 8).
    pub threads: Option<usize>,
}

impl MountConfig {
    /// The FUSE thread count. One per core, because more threads than cores only add context
    /// switches to every round trip: on 2 cores, 5,000 creates of 4 KiB files took 1.6 s
    /// with 2 threads and 2.4 s with 4 (perfs/fio/metadata.py). At least 2, so that a read
    /// waiting for an object does not hold up everything else; at most 8.
    pub fn fuse_threads(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        match self.threads {
            Some(n) => n.clamp(1, 64),
            None => cores.clamp(2, 8),
        }
    }
}

/// Where the query directories appear at the mount root.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ViewsConfig {
    /// Name of the views directory (default `@views`).
    pub views_dir: Option<String>,
    /// Name of the search directory (default `@search`).
    pub search_dir: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct IndexConfig {
    /// Directory with model.onnx and tokenizer files (default: $PEROS_MODEL_DIR, else the setup cache).
    pub model_dir: Option<PathBuf>,
    /// libonnxruntime.so (default: $ORT_DYLIB_PATH, else the setup cache).
    pub ort_library: Option<PathBuf>,
    /// Weight of semantic similarity in hybrid ranking, 0..1.
    pub semantic_weight: Option<f32>,
    /// ONNX Runtime threads for background embedding (default 0: all cores; it runs at the
    /// lowest priority, so file system work goes first).
    pub embed_threads: Option<usize>,
    /// Passage length in model tokens (default 256, the model's window).
    pub chunk_tokens: Option<usize>,
    /// An OpenAI-compatible embeddings service (`/v1/embeddings`: llama-server --embeddings,
    /// Ollama, vLLM, TEI) to use instead of the local model. Needs `embed_model`.
    pub embed_endpoint: Option<String>,
    /// The model name for `embed_endpoint` (recorded: a change re-embeds everything).
    pub embed_model: Option<String>,
    /// API key for `embed_endpoint`, or "env:NAME" to read it from a variable.
    pub embed_api_key: Option<String>,
    /// Seconds before a call to `embed_endpoint` times out (default 60).
    pub embed_timeout_secs: Option<u64>,
    /// OCR of pictures and of PDF pages without text (default true; needs Tesseract).
    pub ocr: Option<bool>,
    /// Tesseract languages joined by '+' (default "eng"; each needs `tesseract-ocr-<lang>`).
    pub ocr_languages: Option<String>,
    /// Seconds OCR may spend on one picture or page (default 120).
    pub ocr_time_limit_secs: Option<u64>,
    /// OCR workers, each one page at a time (default: half the cores, at least 1).
    pub ocr_workers: Option<usize>,
}

/// An OpenAI-compatible chat endpoint for `peros ask` (and the agent).
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// Base URL, e.g. http://127.0.0.1:8080/v1 (empty: no LLM, extractive answers).
    pub endpoint: String,
    pub model: String,
    /// API key, or the name of an environment variable holding it as "env:NAME".
    pub api_key: String,
    pub max_tokens: u32,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `local` (objects under `objects_dir`) or `s3://BUCKET/PREFIX` (see crate::remote).
    pub backend: String,
    /// Directory for the local backend, relative to the data directory unless absolute.
    pub objects_dir: PathBuf,
    /// Memory for decrypted chunks, MiB.
    pub cache_mb: u64,
    /// Versions kept per path.
    pub versions_keep: usize,
    /// Memory for written data not yet sealed, MiB, across all files; writers wait beyond it.
    pub dirty_mb: u64,
    /// Pack the data of small files (up to 256 KiB) into shared objects of up to 4 MiB.
    pub pack_small_files: bool,
    // ----- remote (`s3://…`) backends; see crate::remote and examples/config.toml -----
    /// S3 endpoint URL (default: `AWS_ENDPOINT_URL`, else AWS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Region (default: `AWS_REGION`, else us-east-1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Access key id (default: `AWS_ACCESS_KEY_ID`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// Secret key, or `env:NAME` (default: `AWS_SECRET_ACCESS_KEY`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    /// Allow plain-HTTP endpoints (default: `AWS_ALLOW_HTTP`, else false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_http: Option<bool>,
    /// Directory of the local cache of sealed chunks, relative to the data directory.
    pub disk_cache_dir: PathBuf,
    /// Bytes of sealed chunks kept on local disk, MiB.
    pub disk_cache_mb: u64,
    /// How long fsync waits for uploads before failing with EIO, seconds.
    pub sync_timeout_secs: u64,
    /// Lease duration on the tenant, seconds (renewed every third of it).
    pub lease_secs: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: "local".into(),
            objects_dir: PathBuf::from("objects"),
            cache_mb: 256,
            versions_keep: 32,
            dirty_mb: 128,
            pack_small_files: true,
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            allow_http: None,
            disk_cache_dir: PathBuf::from("cache"),
            disk_cache_mb: 2048,
            sync_timeout_secs: 30,
            lease_secs: 30,
        }
    }
}

pub struct Home {
    pub config_file: PathBuf,
    pub data_dir: PathBuf,
}

impl Home {
    pub fn locate() -> Result<Self> {
        if let Some(home) = std::env::var_os("PEROS_HOME").filter(|v| !v.is_empty()) {
            let dir = PathBuf::from(home);
            return Ok(Self {
                config_file: dir.join("config.toml"),
                data_dir: dir,
            });
        }
        let user_home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .context("neither PEROS_HOME nor HOME is set: set PEROS_HOME to the store directory")?;
        let xdg = |var: &str, default: &str| {
            std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| user_home.join(default))
        };
        Ok(Self {
            config_file: xdg("XDG_CONFIG_HOME", ".config")
                .join("peros")
                .join("config.toml"),
            data_dir: xdg("XDG_DATA_HOME", ".local/share").join("peros"),
        })
    }

    pub fn key_file(&self) -> PathBuf {
        self.data_dir.join("keys").join("identity.age")
    }

    pub fn meta_file(&self) -> PathBuf {
        self.data_dir.join("meta").join("peros.redb")
    }

    /// `views.toml`, beside config.toml (in PEROS_HOME).
    pub fn views_file(&self) -> PathBuf {
        self.config_file
            .parent()
            .map(|p| p.join("views.toml"))
            .unwrap_or_else(|| self.data_dir.join("views.toml"))
    }

    /// Names of the views and search directories at the mount root.
    pub fn query_dir_names(&self) -> Result<(String, String)> {
        let c = self.load_config()?.views;
        let views = c.views_dir.unwrap_or_else(|| "@views".into());
        let search = c.search_dir.unwrap_or_else(|| "@search".into());
        for (key, name) in [("views_dir", &views), ("search_dir", &search)] {
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                anyhow::bail!(
                    "{}: [views] {key} = {name:?} is not a usable directory name",
                    self.config_file.display()
                );
            }
        }
        if views == search {
            anyhow::bail!(
                "{}: [views] views_dir and search_dir must differ",
                self.config_file.display()
            );
        }
        Ok((views, search))
    }

    pub fn socket_path(&self) -> PathBuf {
        self.data_dir.join("control.sock")
    }

    pub fn pid_path(&self) -> PathBuf {
        self.data_dir.join("daemon.pid")
    }

    /// The daemon's log: `PEROS_HOME/logs/daemon.log`, or without PEROS_HOME under the XDG
    /// state dir (`$XDG_STATE_HOME/peros/logs`, default `~/.local/state/peros/logs`): logs are
    /// state, not data (see `peros --help`).
    pub fn log_path(&self) -> PathBuf {
        let peros_home = std::env::var_os("PEROS_HOME").is_some_and(|v| !v.is_empty());
        let state = std::env::var_os("XDG_STATE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")));
        match state {
            Some(s) if !peros_home => s.join("peros").join("logs").join("daemon.log"),
            _ => self.data_dir.join("logs").join("daemon.log"),
        }
    }

    /// Index options: `PEROS_HOME/index`, model paths from the config or the environment.
    pub fn index_options(&self) -> Result<peros_indexer::Options> {
        let config = self.load_config()?;
        let mut opts = peros_indexer::Options::new(peros_indexer::default_dir(&self.data_dir));
        if let Some(d) = config.index.model_dir {
            opts.model.model_dir = d;
        }
        if let Some(l) = config.index.ort_library {
            opts.model.ort_library = l;
        }
        if let Some(w) = config.index.semantic_weight {
            opts.semantic_weight = w;
        }
        if let Some(t) = config.index.embed_threads {
            opts.embed_threads = t;
        }
        if let Some(t) = config.index.chunk_tokens {
            if !(32..=8192).contains(&t) {
                anyhow::bail!(
                    "[index] chunk_tokens = {t} in {}: use a value from 32 to 8192 (default 256)",
                    self.config_file.display()
                );
            }
            opts.chunk_tokens = t;
        }
        if let Some(on) = config.index.ocr {
            opts.ocr.enabled = on;
        }
        if let Some(langs) = config.index.ocr_languages {
            let ok = !langs.is_empty()
                && langs.split('+').all(|l| {
                    !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                });
            if !ok {
                anyhow::bail!(
                    "[index] ocr_languages = {langs:?} in {}: write Tesseract language codes joined by '+', e.g. \"eng\" or \"eng+deu\"",
                    self.config_file.display()
                );
            }
            opts.ocr.languages = langs;
        }
        if let Some(t) = config.index.ocr_time_limit_secs {
            if !(1..=3600).contains(&t) {
                anyhow::bail!(
                    "[index] ocr_time_limit_secs = {t} in {}: use 1 to 3600 seconds (default 120)",
                    self.config_file.display()
                );
            }
            opts.ocr.time_limit = std::time::Duration::from_secs(t);
        }
        if let Some(n) = config.index.ocr_workers {
            if !(1..=64).contains(&n) {
                anyhow::bail!(
                    "[index] ocr_workers = {n} in {}: use 1 to 64 (default: half the cores)",
                    self.config_file.display()
                );
            }
            opts.ocr.workers = n;
        }
        if let Some(endpoint) = config.index.embed_endpoint.filter(|e| !e.trim().is_empty()) {
            let Some(model) = config.index.embed_model.filter(|m| !m.trim().is_empty()) else {
                anyhow::bail!(
                    "[index] embed_endpoint is set in {} but embed_model is not: name the model the service runs",
                    self.config_file.display()
                );
            };
            let api_key = match config.index.embed_api_key {
                Some(k) => match k.strip_prefix("env:") {
                    Some(name) => Some(std::env::var(name).with_context(|| {
                        format!("[index] embed_api_key names ${name}, which is not set")
                    })?),
                    None => Some(k),
                },
                None => None,
            };
            opts.remote = Some(peros_indexer::RemoteEmbedding {
                endpoint,
                model,
                api_key,
                timeout: std::time::Duration::from_secs(
                    config.index.embed_timeout_secs.unwrap_or(60).max(1),
                ),
            });
        }
        // A remote store carries its embeddings, so that another node need not recompute them.
        opts.share_embeddings = crate::remote::is_remote(&config.store.backend);
        Ok(opts)
    }

    pub fn load_config(&self) -> Result<Config> {
        let text = match fs::read_to_string(&self.config_file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(e).with_context(|| format!("reading {}", self.config_file.display()))
            }
        };
        toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{} is not a valid PerOS config: {}(see examples/config.toml for every key)",
                self.config_file.display(),
                e
            )
        })
    }

    pub fn is_initialized(&self) -> bool {
        self.key_file().exists()
    }

    /// Creates the directories (0700), the key file and the config with this `[store]`
    /// section (`local`, or `s3://…`). For `init --from`, `existing_key` holds the bytes of
    /// the store's key file: installed as is (mode 0600) and unlocked to check it.
    pub fn init_with(
        &self,
        passphrase: Option<SecretString>,
        store: StoreConfig,
        existing_key: Option<&[u8]>,
    ) -> Result<Keyring> {
        if self.is_initialized() {
            bail!(
                "a store already exists in {} (key {}); use it, or point PEROS_HOME elsewhere",
                self.data_dir.display(),
                self.key_file().display()
            );
        }
        if existing_key.is_none() && self.meta_file().exists() {
            bail!(
                "a store already exists in {} but its key file {} is missing: put it back; \
                 a new key could not decrypt this store",
                self.data_dir.display(),
                self.key_file().display()
            );
        }
        for dir in [
            self.data_dir.clone(),
            self.data_dir.join("keys"),
            self.data_dir.join("meta"),
        ] {
            make_private_dir(&dir)?;
        }
        if let Some(parent) = self.config_file.parent() {
            fs::create_dir_all(parent)?;
        }
        if !self.config_file.exists() {
            let text = format!(
                "# PerOS configuration; every key is documented in examples/config.toml\n{}",
                toml::to_string_pretty(&Config {
                    store,
                    index: IndexConfig::default(),
                    llm: LlmConfig::default(),
                    views: ViewsConfig::default(),
                    mount: MountConfig::default(),
                    agent: Default::default(),
                })?
            );
            // 0600: it may come to hold S3 credentials.
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&self.config_file)
                .with_context(|| format!("creating {}", self.config_file.display()))?;
            std::io::Write::write_all(&mut f, text.as_bytes())?;
        }
        if let Some(bytes) = existing_key {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(self.key_file())
                .with_context(|| format!("creating {}", self.key_file().display()))?;
            std::io::Write::write_all(&mut f, bytes)?;
            f.sync_all()?;
            return Ok(Keyring::load(&self.key_file(), read_passphrase_for_unlock)?);
        }
        let keyring = Keyring::generate();
        keyring.save(&self.key_file(), passphrase.as_ref())?;
        Ok(keyring)
    }

    /// Unlocks the key (asking for the passphrase if needed) and opens the store.
    pub fn open_store(&self) -> Result<Store> {
        if !self.is_initialized() && self.meta_file().exists() {
            bail!(
                "the key file {} is missing, but this store's metadata ({}) exists: put the key file back \
                 (from your backup); without it the contents cannot be decrypted",
                self.key_file().display(),
                self.meta_file().display()
            );
        }
        if !self.is_initialized() {
            bail!(
                "no PerOS store in {}: run `peros init` first (or set PEROS_HOME)",
                self.data_dir.display()
            );
        }
        let config = self.load_config()?;
        // The key is unlocked before anything else is opened, so a wrong passphrase modifies nothing.
        let keyring = Arc::new(Keyring::load(&self.key_file(), read_passphrase_for_unlock)?);
        make_private_dir(&self.data_dir.join("meta"))?;
        let mut tenant = None;
        let backend: Arc<dyn peros_store::ObjectBackend> = match config.store.backend.as_str() {
            url if crate::remote::is_remote(url) => {
                let (backend, t) = crate::remote::open(self, &config.store, &keyring)?;
                tenant = Some(t);
                backend
            }
            "local" => {
                let dir = if config.store.objects_dir.is_absolute() {
                    config.store.objects_dir.clone()
                } else {
                    self.data_dir.join(&config.store.objects_dir)
                };
                make_private_dir(&dir)?;
                Arc::new(ObjectStoreBackend::local(&dir)?)
            }
            other => bail!(
                "{}: store.backend = {other:?} is not supported; use \"local\" or \"s3://BUCKET/PREFIX\"",
                self.config_file.display()
            ),
        };
        let store = Store::open(
            &self.meta_file(),
            keyring,
            backend,
            StoreOptions {
                cache_bytes: config.store.cache_mb * 1024 * 1024,
                versions_keep: config.store.versions_keep,
                dirty_limit_bytes: config.store.dirty_mb.saturating_mul(1024 * 1024),
                pack_small_files: config.store.pack_small_files,
            },
        )
        .map_err(|e| match e {
            peros_store::StoreError::WrongKey { .. } => anyhow::anyhow!(
                "{}: {e}; put back this store's key file, or point PEROS_HOME at the store it belongs to",
                self.key_file().display()
            ),
            e => e.into(),
        })?;
        if let Some(t) = tenant {
            t.install(&store);
        }
        Ok(store)
    }
}

/// Whether unlocking this store's key will need a passphrase.
pub fn needs_passphrase(home: &Home) -> Result<bool> {
    Ok(Keyring::needs_passphrase(&home.key_file())?)
}

fn make_private_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("setting mode 0700 on {}", dir.display()))?;
    Ok(())
}

fn stdin_is_tty() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(0) == 1 }
}

/// `PEROS_PASSPHRASE`, else a prompt on the terminal, else none.
fn read_passphrase_for_unlock() -> Option<SecretString> {
    if let Ok(p) = std::env::var("PEROS_PASSPHRASE") {
        return Some(SecretString::from(p));
    }
    if stdin_is_tty() {
        return rpassword::prompt_password("PerOS passphrase: ")
            .ok()
            .map(SecretString::from);
    }
    None
}

/// The passphrase for a new store: `PEROS_PASSPHRASE`, else asked twice on the terminal.
pub fn read_new_passphrase() -> Result<SecretString> {
    if let Ok(p) = std::env::var("PEROS_PASSPHRASE") {
        if p.is_empty() {
            bail!("PEROS_PASSPHRASE is empty: set a passphrase, or use --no-passphrase");
        }
        return Ok(SecretString::from(p));
    }
    if !stdin_is_tty() {
        bail!("no terminal to ask for a passphrase: set PEROS_PASSPHRASE, or use --no-passphrase (key file kept with mode 0600)");
    }
    let first = rpassword::prompt_password("New PerOS passphrase: ")?;
    if first.is_empty() {
        bail!("an empty passphrase is not allowed: use --no-passphrase for an unwrapped key file");
    }
    let second = rpassword::prompt_password("Repeat the passphrase: ")?;
    if first != second {
        bail!("the passphrases differ; nothing was created");
    }
    Ok(SecretString::from(first))
}

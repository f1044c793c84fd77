//! The S3-compatible remote: `s3://BUCKET/PREFIX` through `object_store`'s `AmazonS3Builder`.
//!
//! [`Remote`] is a thin synchronous wrapper over one tenant's prefix in a bucket, with the
//! conditional operations the lease and the metadata snapshot need (`PutMode::Create`,
//! ETag-matched updates). Chunks do not go through it directly: [`crate::CachedBackend`]
//! puts a bounded disk cache and a write-back upload queue in front of it.
//!
//! Settings come from the config (`[store]` keys) first, then the standard `AWS_*`
//! environment variables (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_REGION`, `AWS_ALLOW_HTTP`, …). Conditional puts use ETag matching
//! (`S3ConditionalPut::ETagMatch`), which AWS S3, MinIO and SeaweedFS implement.
//!
//! Retries: `object_store` retries each request a little (2 times, at most 5 s) so that a
//! server that is down is reported quickly; the upload queue above retries without end,
//! with a bounded backoff, and fsync reports what is not uploaded yet.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::{
    path::Path as ObjPath, BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutMode,
    PutOptions, RetryConfig, UpdateVersion,
};

use crate::backend::{runtime, BackendError};

/// Where and how to reach one tenant's prefix of an S3-compatible bucket.
#[derive(Clone, Debug, Default)]
pub struct S3Settings {
    /// `s3://BUCKET/PREFIX` (the prefix may be empty, but one prefix per tenant is the point).
    pub url: String,
    /// e.g. `http://127.0.0.1:8333`; default: `AWS_ENDPOINT_URL`, else AWS itself.
    pub endpoint: Option<String>,
    /// Default: `AWS_REGION`, else us-east-1.
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Allow `http://` endpoints. Default: `AWS_ALLOW_HTTP`, else false.
    pub allow_http: Option<bool>,
}

/// Splits `s3://BUCKET/PREFIX` into bucket and prefix (without slashes at the ends).
pub fn parse_url(url: &str) -> Result<(String, String), BackendError> {
    let bad = |why: &str| BackendError::Other {
        key: url.to_string(),
        detail: format!("not a valid S3 store URL ({why}): expected s3://BUCKET/PREFIX"),
    };
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| bad("no s3:// scheme"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(bad("no bucket"));
    }
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|c| c == "." || c == "..") || prefix.contains("//") {
        return Err(bad("the prefix has empty, . or .. components"));
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

/// Result of a conditional put.
#[derive(Debug)]
pub enum PutOutcome {
    /// Written; the new version (ETag) for a later conditional update.
    Done(UpdateVersion),
    /// `PutMode::Create` and the object exists.
    Exists,
    /// `PutMode::Update` and the object changed since that version.
    Conflict,
}

/// One tenant's prefix in a bucket.
#[derive(Clone)]
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
    endpoint: String,
}

fn err(key: &str, e: impl std::fmt::Display) -> BackendError {
    BackendError::Other {
        key: key.to_string(),
        detail: e.to_string(),
    }
}

impl Remote {
    /// Builds the S3 client (no request is made).
    pub fn connect(s: &S3Settings) -> Result<Self, BackendError> {
        let (bucket, prefix) = parse_url(&s.url)?;
        // Environment first, then the explicit settings over it.
        let mut b = AmazonS3Builder::from_env().with_bucket_name(&bucket);
        if let Some(e) = &s.endpoint {
            b = b.with_endpoint(e);
        }
        let region = s
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".into());
        b = b.with_region(region);
        if let Some(k) = &s.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(k) = &s.secret_access_key {
            b = b.with_secret_access_key(k);
        }
        let allow_http = s.allow_http.unwrap_or_else(|| {
            std::env::var("AWS_ALLOW_HTTP")
                .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
                .unwrap_or(false)
        });
        let endpoint = s
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT").ok())
            .unwrap_or_else(|| "AWS".into());
        b = b
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(allow_http)
                    .with_connect_timeout(Duration::from_secs(3))
                    .with_timeout(Duration::from_secs(60)),
            )
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(1),
                    base: 2.0,
                },
                max_retries: 2,
                retry_timeout: Duration::from_secs(5),
            });
        let store = b.build().map_err(|e| err(&s.url, e))?;
        Ok(Self {
            store: Arc::new(store),
            prefix,
            url: s.url.clone(),
            endpoint,
        })
    }

    /// Any object store (tests: `InMemory`) under `prefix`, shown as `url`.
    pub fn from_store(store: Arc<dyn ObjectStore>, prefix: &str, url: &str) -> Self {
        Self {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            url: url.to_string(),
            endpoint: "custom".into(),
        }
    }

    /// Another prefix of the same bucket through the same client (one connection pool for
    /// many tenants in one process): `sub` is appended to this prefix.
    pub fn with_prefix(&self, sub: &str) -> Self {
        let sub = sub.trim_matches('/');
        let prefix = if self.prefix.is_empty() {
            sub.to_string()
        } else {
            format!("{}/{sub}", self.prefix)
        };
        Self {
            store: self.store.clone(),
            url: format!("{}/{sub}", self.url.trim_end_matches('/')),
            prefix,
            endpoint: self.endpoint.clone(),
        }
    }

    /// `s3://BUCKET/PREFIX`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub(crate) fn path(&self, key: &str) -> ObjPath {
        if self.prefix.is_empty() {
            ObjPath::from(key)
        } else {
            ObjPath::from(format!("{}/{}", self.prefix, key))
        }
    }

    fn strip(&self, full: &str) -> String {
        if self.prefix.is_empty() {
            full.to_string()
        } else {
            full.strip_prefix(&self.prefix)
                .map(|s| s.trim_start_matches('/').to_string())
                .unwrap_or_else(|| full.to_string())
        }
    }

    /// The object and its version, or `None` if absent.
    pub fn get(&self, key: &str) -> Result<Option<(Bytes, UpdateVersion)>, BackendError> {
        runtime().block_on(self.get_async(key))
    }

    pub(crate) async fn get_async(
        &self,
        key: &str,
    ) -> Result<Option<(Bytes, UpdateVersion)>, BackendError> {
        match self.store.get(&self.path(key)).await {
            Ok(r) => {
                let v = UpdateVersion {
                    e_tag: r.meta.e_tag.clone(),
                    version: r.meta.version.clone(),
                };
                let bytes = r.bytes().await.map_err(|e| err(key, e))?;
                Ok(Some((bytes, v)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(err(key, e)),
        }
    }

    /// The object's current version, or `None` if absent.
    pub fn head(&self, key: &str) -> Result<Option<UpdateVersion>, BackendError> {
        match runtime().block_on(self.store.head(&self.path(key))) {
            Ok(m) => Ok(Some(UpdateVersion {
                e_tag: m.e_tag,
                version: m.version,
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(err(key, e)),
        }
    }

    /// Writes `data` at `key` in `mode` (create-only, conditional update or overwrite).
    pub fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<PutOutcome, BackendError> {
        runtime().block_on(self.put_async(key, data, mode))
    }

    pub(crate) async fn put_async(
        &self,
        key: &str,
        data: Bytes,
        mode: PutMode,
    ) -> Result<PutOutcome, BackendError> {
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&self.path(key), data.into(), opts)
            .await
        {
            Ok(r) => Ok(PutOutcome::Done(r.into())),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(PutOutcome::Exists),
            Err(object_store::Error::Precondition { .. }) => Ok(PutOutcome::Conflict),
            Err(e) => Err(err(key, e)),
        }
    }

    pub fn delete(&self, key: &str) -> Result<(), BackendError> {
        match runtime().block_on(self.store.delete(&self.path(key))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(err(key, e)),
        }
    }

    /// Every object under `prefix` (relative to the tenant prefix) with its size.
    pub fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, BackendError> {
        let path = self.path(prefix);
        let metas: Vec<_> = runtime()
            .block_on(self.store.list(Some(&path)).try_collect())
            .map_err(|e: object_store::Error| err(prefix, e))?;
        Ok(metas
            .into_iter()
            .map(|m| (self.strip(m.location.as_ref()), m.size))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("s3://b/p/q/").unwrap(),
            ("b".into(), "p/q".into())
        );
        assert_eq!(parse_url("s3://b").unwrap(), ("b".into(), "".into()));
        assert!(parse_url("s3:///p").is_err());
        assert!(parse_url("http://b/p").is_err());
        assert!(parse_url("s3://b/../x").is_err());
    }
}

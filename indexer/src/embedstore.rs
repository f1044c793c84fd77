//! The embedding store: vectors by keyed hash of normalised passage text, so a text is
//! embedded once (an unchanged passage after an edit, a copied file, an old version), and its
//! travel with the tenant.
//!
//! The key is `blake3::keyed_hash(K, normalised text)` with `K` derived from the tenant's
//! identity: equal passages in two tenants get unrelated keys, and a key reveals nothing
//! without the identity.
//!
//! Travel: for stores that share their index (`Options::share_embeddings`, set for remote
//! stores), new embeddings are sealed in *segments* (up to [`SEGMENT_ENTRIES`] vectors each,
//! age-encrypted to the tenant, named by the keyed MAC of their plaintext like chunks) under
//! `index/embeddings/` in the object store, incrementally: each push seals only what was
//! not pushed yet. A fresh node (`peros init --from s3://…`) pulls the segments at open, so
//! its indexer finds every passage's vector without running the model. Segments of another
//! model are skipped. OCR results travel the same way ([`Indexer::put_sealed`],
//! [`Indexer::pull_sealed`]; see `ocr`). Unreferenced vectors are kept (they are small, and versions and undo
//! bring texts back); merging small segments is left to a later compaction.

use bytes::Bytes;
use peros_crypto::ObjectName;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

use crate::state::{EmbedKey, EMBEDDINGS, SEGMENTS, UNPUSHED};
use crate::{Indexer, Result};

/// The object-store prefix of embedding segments.
pub const SEGMENT_PREFIX: &str = "index/embeddings/";
/// Vectors per segment (about 1.5 MB of 384-d vectors).
pub const SEGMENT_ENTRIES: usize = 1024;
const SEGMENT_MAGIC: &[u8; 9] = b"PEROSEMB1";

pub(crate) struct KeyHasher {
    key: zeroize::Zeroizing<[u8; 32]>,
}

impl KeyHasher {
    pub fn new(keyring: &peros_crypto::Keyring) -> Self {
        Self {
            key: keyring.derive_key("peros index embedding keys v1"),
        }
    }

    /// The key of a normalised passage text.
    pub fn key_of(&self, normalised: &str) -> EmbedKey {
        *blake3::keyed_hash(&self.key, normalised.as_bytes()).as_bytes()
    }
}

fn encode_segment(model: &str, entries: &[(EmbedKey, Vec<u8>)]) -> Vec<u8> {
    let dim_bytes = entries.first().map(|e| e.1.len()).unwrap_or(0);
    let mut out = Vec::with_capacity(64 + entries.len() * (32 + dim_bytes));
    out.extend_from_slice(SEGMENT_MAGIC);
    out.extend_from_slice(&(model.len() as u32).to_le_bytes());
    out.extend_from_slice(model.as_bytes());
    out.extend_from_slice(&(dim_bytes as u32).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (k, v) in entries {
        out.extend_from_slice(k);
        out.extend_from_slice(v);
    }
    out
}

/// The model and entries of a segment; `None` if malformed.
type SegmentEntries<'a> = Vec<(EmbedKey, &'a [u8])>;

fn decode_segment(b: &[u8]) -> Option<(String, SegmentEntries<'_>)> {
    let rest = b.strip_prefix(SEGMENT_MAGIC)?;
    let u32_at = |s: &[u8], at: usize| -> Option<usize> {
        Some(u32::from_le_bytes(s.get(at..at + 4)?.try_into().ok()?) as usize)
    };
    let mlen = u32_at(rest, 0)?;
    let model = std::str::from_utf8(rest.get(4..4 + mlen)?)
        .ok()?
        .to_string();
    let dim_bytes = u32_at(rest, 4 + mlen)?;
    let count = u32_at(rest, 8 + mlen)?;
    let body = rest.get(12 + mlen..)?;
    let entry = 32 + dim_bytes;
    if dim_bytes % 4 != 0 || body.len() != count.checked_mul(entry)? {
        return None;
    }
    let entries = body
        .chunks_exact(entry)
        .map(|e| {
            let mut k = [0u8; 32];
            k.copy_from_slice(&e[..32]);
            (k, &e[32..])
        })
        .collect();
    Some((model, entries))
}

impl Indexer {
    /// Seals up to one segment of not-yet-pushed embeddings into the object store. Returns how
    /// many vectors went out (0: nothing to push, or sharing is off).
    pub fn push_embeddings(&self) -> Result<usize> {
        if !self.opts.share_embeddings {
            return Ok(0);
        }
        let entries: Vec<(EmbedKey, Vec<u8>)> = {
            let txn = self.db.begin_read()?;
            let unpushed = txn.open_table(UNPUSHED)?;
            let vectors = txn.open_table(EMBEDDINGS)?;
            let mut out = Vec::new();
            for item in unpushed.iter()?.take(SEGMENT_ENTRIES) {
                let (k, _) = item?;
                if let Some(v) = vectors.get(k.value())? {
                    let mut key = [0u8; 32];
                    key.copy_from_slice(k.value());
                    out.push((key, v.value().to_vec()));
                }
            }
            out
        };
        if entries.is_empty() {
            self.drop_unpushed_orphans()?;
            return Ok(0);
        }
        let plain = encode_segment(&self.model_id, &entries);
        let key = self.put_sealed(SEGMENT_PREFIX, &plain, "embeddings")?;
        let txn = self.db.begin_write()?;
        {
            let mut unpushed = txn.open_table(UNPUSHED)?;
            for (k, _) in &entries {
                unpushed.remove(k.as_slice())?;
            }
            txn.open_table(SEGMENTS)?.insert(key.as_str(), ())?;
        }
        txn.commit()?;
        Ok(entries.len())
    }

    /// Pushes everything not pushed yet (best effort: a store that is down keeps them queued).
    pub fn push_all_embeddings(&self) -> Result<usize> {
        let mut total = 0;
        loop {
            let n = self.push_embeddings()?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    }

    fn drop_unpushed_orphans(&self) -> Result<()> {
        let txn = self.db.begin_read()?;
        if txn.open_table(UNPUSHED)?.len()? == 0 {
            return Ok(());
        }
        drop(txn);
        let txn = self.db.begin_write()?;
        {
            let vectors = txn.open_table(EMBEDDINGS)?;
            let mut unpushed = txn.open_table(UNPUSHED)?;
            let stale: Vec<Vec<u8>> = unpushed
                .iter()?
                .filter_map(|i| i.ok().map(|(k, _)| k.value().to_vec()))
                .filter(|k| vectors.get(k.as_slice()).ok().flatten().is_none())
                .collect();
            for k in stale {
                unpushed.remove(k.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Imports the segments in the object store that this index has not seen. Returns the
    /// number of vectors imported.
    pub fn pull_embeddings(&self) -> Result<usize> {
        if !self.opts.share_embeddings {
            return Ok(0);
        }
        self.pull_sealed(
            SEGMENT_PREFIX,
            "embedding segment",
            |txn, key, plain| match decode_segment(plain) {
                Some((model, entries)) if model == self.model_id => {
                    let mut t = txn.open_table(EMBEDDINGS)?;
                    let mut imported = 0;
                    for (k, v) in &entries {
                        if t.get(k.as_slice())?.is_none() {
                            t.insert(k.as_slice(), *v)?;
                            imported += 1;
                        }
                    }
                    Ok(imported)
                }
                Some((model, _)) => {
                    tracing::info!("embedding segment {key} is of model {model}: skipped");
                    Ok(0)
                }
                None => {
                    tracing::warn!("embedding segment {key} is malformed: skipped");
                    Ok(0)
                }
            },
        )
    }

    /// Seals `plain` to the tenant into the object store under `prefix`, named by the keyed
    /// MAC of its plaintext like chunks; returns the object's key. What travels with the
    /// tenant besides files (embedding segments, OCR results) goes through here.
    pub(crate) fn put_sealed(&self, prefix: &str, plain: &[u8], what: &str) -> Result<String> {
        let keyring = self.store.keyring();
        let name = keyring.object_name(plain);
        let sealed = keyring
            .seal(plain)
            .map_err(|e| crate::IndexError::Index(e.to_string()))?;
        let key = format!("{prefix}{}", name.to_hex());
        self.store
            .backend()
            .put(&key, Bytes::from(sealed))
            .map_err(|e| crate::IndexError::Index(format!("pushing {what}: {e}")))?;
        Ok(key)
    }

    /// Opens every object under `prefix` that this index has not imported yet and hands its
    /// plaintext to `import` (in the transaction that records it as seen); returns the sum of
    /// what `import` counted. An object that cannot be read is tried again next time; one
    /// that does not open with this tenant's key is skipped with a warning.
    pub(crate) fn pull_sealed(
        &self,
        prefix: &str,
        what: &str,
        mut import: impl FnMut(&redb::WriteTransaction, &str, &[u8]) -> Result<usize>,
    ) -> Result<usize> {
        let listed = self
            .store
            .backend()
            .list(prefix)
            .map_err(|e| crate::IndexError::Index(format!("listing {what}s: {e}")))?;
        let seen: std::collections::HashSet<String> = {
            let txn = self.db.begin_read()?;
            let t = txn.open_table(SEGMENTS)?;
            t.range(prefix..)?
                .filter_map(|i| i.ok().map(|(k, _)| k.value().to_string()))
                .take_while(|k| k.starts_with(prefix))
                .collect()
        };
        let mut imported = 0;
        for (key, _) in listed {
            if seen.contains(&key) {
                continue;
            }
            let Some(name) = key.strip_prefix(prefix).and_then(ObjectName::from_hex) else {
                tracing::warn!("ignoring {key}: not a {what} name");
                continue;
            };
            let sealed = match self.store.backend().get(&key) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!("{what} {key}: {e}; it will be tried again");
                    continue;
                }
            };
            let plain = match self.store.keyring().open(&sealed, &name) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!("{what} {key} does not open with this key: {e}");
                    continue;
                }
            };
            let txn = self.db.begin_write()?;
            imported += import(&txn, &key, &plain)?;
            txn.open_table(SEGMENTS)?.insert(key.as_str(), ())?;
            txn.commit()?;
        }
        Ok(imported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_round_trip_and_reject_garbage() {
        let entries = vec![([1u8; 32], vec![0u8; 16]), ([2u8; 32], vec![1u8; 16])];
        let b = encode_segment("m", &entries);
        let (model, got) = decode_segment(&b).unwrap();
        assert_eq!(model, "m");
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].0, [2u8; 32]);
        assert_eq!(got[1].1, &[1u8; 16][..]);
        assert!(decode_segment(&b[..b.len() - 1]).is_none());
        assert!(decode_segment(b"PEROSEMB1\xff\xff\xff\xff").is_none());
    }
}

//! The indexer's own database (`state.redb`): what each file looked like when indexed, its
//! passages, the embedding store, the embedding queue and the vector graph's change log.
//!
//! Tables:
//! - `files`: ino → [`FileState`]; `chunks`: chunk id → [`ChunkRec`].
//! - `embeddings`: keyed hash of a passage's normalised text → vector (the embedding store:
//!   a text is embedded once, whatever file or version holds it).
//! - `vectors`: chunk ids whose vector is in the graph; `graph_log`: seq → graph change since
//!   the last dump of the graph (replayed at open).
//! - `embed_queue`: (priority, chunk id): chunks waiting for a vector, best first.
//! - `pending`: inodes whose text indexing is in progress (redone after a crash).
//! - `unpushed` / `segments`: embeddings not yet in the object store, and segments already
//!   pushed or pulled (see `embedstore`).
//! - `file_extra`: ino → [`FileExtra`] (metadata fields, sections, warnings, OCR still to do).
//! - `ocr_queue`: inodes with parts waiting for OCR; `ocr_cache`: keyed hash of (content, part,
//!   languages) → [`OcrResult`] (a part is OCR'd once, whatever file or version holds it).
//! - `meta`: format, model id, extractor version, counters.

use std::path::Path;

use peros_store::{Ino, Inode};
use redb::TableDefinition;
use serde::{Deserialize, Serialize};

pub(crate) const FILES: TableDefinition<u64, &[u8]> = TableDefinition::new("files");
pub(crate) const CHUNKS: TableDefinition<u64, &[u8]> = TableDefinition::new("chunks");
pub(crate) const EMBEDDINGS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("embeddings");
pub(crate) const VECTORS: TableDefinition<u64, ()> = TableDefinition::new("graph_members");
pub(crate) const GRAPH_LOG: TableDefinition<u64, (u8, u64)> = TableDefinition::new("graph_log");
pub(crate) const PENDING: TableDefinition<u64, ()> = TableDefinition::new("pending");
pub(crate) const EMBED_QUEUE: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("embed_queue_v2");
pub(crate) const UNPUSHED: TableDefinition<&[u8], ()> = TableDefinition::new("unpushed");
pub(crate) const SEGMENTS: TableDefinition<&str, ()> = TableDefinition::new("segments");
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(crate) const FILE_EXTRA: TableDefinition<u64, &[u8]> = TableDefinition::new("file_extra");
pub(crate) const OCR_QUEUE: TableDefinition<u64, ()> = TableDefinition::new("ocr_queue");
pub(crate) const OCR_CACHE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("ocr_cache");
pub(crate) const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

/// Graph log operations.
pub(crate) const OP_ADD: u8 = 1;
pub(crate) const OP_REMOVE: u8 = 2;

/// The layout of `state.redb`. Indexes of an older format are rebuilt from the store (text is
/// fast; vectors come back from the embedding store or are recomputed).
pub(crate) const FORMAT: u64 = 2;

/// What the extractors can read. When it grows, files whose kind gained something (formats that
/// were unsupported, PDFs that now have pages and metadata) are extracted again at open; the
/// index is not rebuilt (passages whose text did not change keep their vectors).
pub(crate) const EXTRACT_VERSION: u64 = 2;

/// Kinds (as recorded in [`FileState::kind`]) extracted again when [`EXTRACT_VERSION`] grows
/// from 1, besides every file that had an error (unsupported then).
pub(crate) const REEXTRACT_KINDS_V2: &[&str] = &["pdf", "docx"];

/// What extraction found besides passages, for filters, citations and OCR.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct FileExtra {
    pub meta: crate::extract::DocMeta,
    pub sections: Vec<crate::extract::Section>,
    /// Indexed, but not all of it: why.
    pub warning: Option<String>,
    /// Parts OCR has not read yet (the file is in `ocr_queue` while this is not empty).
    pub ocr_pending: Vec<crate::extract::OcrPart>,
}

/// What OCR made of one part.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct OcrResult {
    pub text: String,
    /// Why there is no text (time limit, damaged picture): not tried again for this content.
    pub error: Option<String>,
    pub millis: u64,
}

/// A keyed hash of a passage's normalised text (see `embedstore::key_of`).
pub type EmbedKey = [u8; 32];

/// What a file looked like when it was indexed.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct FileState {
    pub path: String,
    pub ext: String,
    pub kind: String,
    pub mtime: i64,
    pub mtime_nanos: u32,
    pub size: u64,
    pub tags: Vec<String>,
    pub chunk_ids: Vec<u64>,
    /// Why extraction failed or was skipped (binary, too large…).
    pub error: Option<String>,
}

/// One passage of a file.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ChunkRec {
    pub ino: Ino,
    /// Byte offset of the passage in the extracted text (= in the file for text types).
    pub offset: u64,
    pub text: String,
    /// Keyed hash of the normalised text: where its vector is in the embedding store.
    pub key: EmbedKey,
    /// Model tokens (for batching by length and for rates).
    pub tokens: u32,
}

pub(crate) fn ext_of(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or("");
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => String::new(),
    }
}

/// The tag attribute, shared with the FUSE layer and `peros tag`.
pub const TAGS_XATTR: &[u8] = b"user.peros.tags";

/// Tags are stored comma-separated in [`TAGS_XATTR`]; blanks around them are ignored.
pub fn parse_tags(v: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(v)
        .split(',')
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

pub(crate) fn tags_of(node: &Inode) -> Vec<String> {
    node.xattrs
        .get(TAGS_XATTR)
        .map(|v| parse_tags(v))
        .unwrap_or_default()
}

/// Creates `dir` (and missing parents) with mode 0700 whatever the umask, and sets an
/// existing one back to 0700: the index holds the text extracted from the files of an
/// encrypted store, in plaintext, so only its owner may enter it. (Indexes made by earlier
/// versions got the umask's mode: they are fixed on the next open.)
pub(crate) fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    if std::fs::metadata(dir)?.permissions().mode() & 0o7777 != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

pub(crate) fn vec_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn bytes_vec(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Queue priority of a chunk of a file the user just opened: before every chunk that
/// [`queue_priority`] ranks (whose age part is positive for any mtime before 2106), its own
/// head first.
pub(crate) fn opened_priority(position: usize) -> u64 {
    position.min(255) as u64
}

/// Queue priority of a chunk: the first chunks of every file before any file's tail, and
/// within each, newer files first. Lower sorts first.
pub(crate) fn queue_priority(position: usize, mtime: i64) -> u64 {
    const HEAD_CHUNKS: usize = 4;
    let tier: u64 = if position < HEAD_CHUNKS { 0 } else { 1 };
    let age = (u32::MAX as i64 - mtime.clamp(0, u32::MAX as i64)) as u64;
    (tier << 40) | (age << 8) | (position.min(255) as u64)
}

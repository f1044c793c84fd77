//! File-level vectors for grouping files by what they are about: the mean of a file's
//! passage vectors, L2-normalised, read from the embedding store (nothing is re-embedded),
//! with the file's indexed text for naming groups of files.

use peros_store::Ino;
use redb::{ReadableDatabase, ReadableTable};

use crate::state::{bytes_vec, ChunkRec, FileState, CHUNKS, EMBEDDINGS, FILES};
use crate::{Indexer, Result};

/// One indexed file with its aggregated vector.
#[derive(Clone, Debug)]
pub struct FileVector {
    pub ino: Ino,
    pub path: String,
    pub tags: Vec<String>,
    /// Mean of the passage vectors, L2-normalised (unit length).
    pub vector: Vec<f32>,
    /// Passages that had a vector (those without are still waiting for the model).
    pub passages: usize,
}

/// What [`Indexer::file_vectors`] found.
#[derive(Debug, Default)]
pub struct FileVectors {
    pub files: Vec<FileVector>,
    /// Files with text whose passages have no vector yet (embedding pending).
    pub pending: usize,
}

/// The sum of the vectors of these passages (those that have one) and how many had one.
fn passage_sum(
    chunks: &redb::ReadOnlyTable<u64, &[u8]>,
    embeddings: &redb::ReadOnlyTable<&[u8], &[u8]>,
    ids: &[u64],
) -> Result<(Vec<f32>, usize)> {
    let mut sum: Vec<f32> = Vec::new();
    let mut n = 0usize;
    for id in ids {
        let Some(rec) = chunks.get(*id)? else {
            continue;
        };
        let rec: ChunkRec = postcard::from_bytes(rec.value())?;
        let Some(vec) = embeddings.get(rec.key.as_slice())? else {
            continue;
        };
        let vec = bytes_vec(vec.value());
        if sum.is_empty() {
            sum = vec![0.0; vec.len()];
        }
        if vec.len() != sum.len() {
            continue;
        }
        for (s, x) in sum.iter_mut().zip(&vec) {
            *s += x;
        }
        n += 1;
    }
    Ok((sum, n))
}

/// `sum` scaled to unit length (None for no passages or a zero sum).
fn normalised(mut sum: Vec<f32>, n: usize) -> Option<Vec<f32>> {
    let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n == 0 || !norm.is_finite() || norm == 0.0 {
        return None;
    }
    sum.iter_mut().for_each(|x| *x /= norm);
    Some(sum)
}

impl Indexer {
    /// Every indexed file with at least one embedded passage, with its file-level vector
    /// (see the module doc). Files only partly embedded use the passages embedded so far;
    /// files with none are counted in `pending`.
    pub fn file_vectors(&self) -> Result<FileVectors> {
        let txn = self.db.begin_read()?;
        let files = txn.open_table(FILES)?;
        let chunks = txn.open_table(CHUNKS)?;
        let embeddings = txn.open_table(EMBEDDINGS)?;
        let mut out = FileVectors::default();
        for item in files.iter()? {
            let (ino, v) = item?;
            let st: FileState = postcard::from_bytes(v.value())?;
            if st.chunk_ids.is_empty() {
                continue;
            }
            let (sum, n) = passage_sum(&chunks, &embeddings, &st.chunk_ids)?;
            let Some(sum) = normalised(sum, n) else {
                out.pending += 1;
                continue;
            };
            out.files.push(FileVector {
                ino: ino.value(),
                path: st.path,
                tags: st.tags,
                vector: sum,
                passages: n,
            });
        }
        Ok(out)
    }

    /// Cosine similarity of `query` (a unit vector) to each file's vector (the mean of its
    /// passage vectors, as [`Indexer::file_vectors`]); files without a vector are left out.
    /// Reads every passage vector of these files: meant for the few files a relevance
    /// decision hinges on, not for a whole corpus.
    pub fn file_similarities(&self, query: &[f32], inos: &[Ino]) -> Result<Vec<(Ino, f32)>> {
        let txn = self.db.begin_read()?;
        let files = txn.open_table(FILES)?;
        let chunks = txn.open_table(CHUNKS)?;
        let embeddings = txn.open_table(EMBEDDINGS)?;
        let mut out = Vec::with_capacity(inos.len());
        for ino in inos {
            let Some(v) = files.get(*ino)? else { continue };
            let st: FileState = postcard::from_bytes(v.value())?;
            let (sum, n) = passage_sum(&chunks, &embeddings, &st.chunk_ids)?;
            if let Some(v) = normalised(sum, n) {
                if v.len() == query.len() {
                    out.push((*ino, crate::vectors::dot(query, &v)));
                }
            }
        }
        Ok(out)
    }

    /// The indexed (extracted) text of a file, its passages in order, up to `max_bytes`
    /// (cut at a character boundary); empty for a file not indexed.
    pub fn file_text(&self, ino: Ino, max_bytes: usize) -> Result<String> {
        let Some(st) = self.file_state(ino)? else {
            return Ok(String::new());
        };
        let mut text = String::new();
        for rec in self.chunk_recs(&st.chunk_ids)? {
            if text.len() >= max_bytes {
                break;
            }
            let room = max_bytes - text.len();
            let mut cut = rec.text.len().min(room);
            while !rec.text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.push_str(&rec.text[..cut]);
            text.push('\n');
        }
        Ok(text)
    }
}

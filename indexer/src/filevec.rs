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
            let mut sum: Vec<f32> = Vec::new();
            let mut n = 0usize;
            for id in &st.chunk_ids {
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
            let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
            if n == 0 || !norm.is_finite() || norm == 0.0 {
                out.pending += 1;
                continue;
            }
            sum.iter_mut().for_each(|x| *x /= norm);
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

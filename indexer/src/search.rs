//! Search: ranking files for a query (text, semantic, hybrid fusion), and filter-only queries.
//!
//! It reads the text index, the vector index and the indexer's state; it never writes them.

use std::collections::{HashMap, HashSet};

use peros_store::Ino;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};
use tantivy::collector::TopDocs;
use tantivy::query::QueryParser;
use tantivy::schema::Value;
use tantivy::TantivyDocument;

use crate::query::{self, Query};
use crate::{
    chunk, parse_query, ChunkRec, FileState, IndexError, Indexer, Result, CHUNKS, EMBED_QUEUE,
    FILES,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Mode {
    #[default]
    Hybrid,
    Text,
    Semantic,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "hybrid" => Ok(Mode::Hybrid),
            "text" => Ok(Mode::Text),
            "semantic" => Ok(Mode::Semantic),
            other => Err(format!(
                "unknown mode {other:?}: use hybrid, text or semantic"
            )),
        }
    }
}

/// One ranked file.
#[derive(Serialize, Clone, Debug)]
pub struct Hit {
    pub path: String,
    pub ino: Ino,
    pub score: f32,
    /// Modification time (seconds since the epoch) and size when indexed.
    pub mtime: i64,
    pub size: u64,
    /// The text query matched this file (always true for filter-only queries).
    pub text_match: bool,
    /// The file's BM25 score relative to the best file's (1 for the best and for filter-only
    /// queries, 0 without a text match): small when only common words matched.
    pub text_rel: f32,
    /// Best cosine similarity of a passage to the query (0 when not computed).
    pub similarity: f32,
    /// Byte offset of the best passage (in the file for text types, in the extracted text
    /// for PDF/DOCX/HTML).
    pub offset: u64,
    pub snippet: String,
    /// The best passage in full (for `ask`).
    #[serde(skip)]
    pub passage: String,
}

#[derive(Serialize, Clone, Debug, Default)]
pub struct SearchOutcome {
    pub hits: Vec<Hit>,
    /// Set when the requested mode could not be served in full (e.g. no embedding model).
    pub note: Option<String>,
}

impl Indexer {
    fn facts_ok(&self, q: &Query, st: &FileState) -> bool {
        q.matches(&query::FileFacts {
            path: &st.path,
            ext: &st.ext,
            mtime: st.mtime,
            size: st.size,
            tags: &st.tags,
        })
    }

    /// Text hits per chunk: (chunk id, ino, bm25).
    fn text_chunks(&self, text: &str, limit: usize) -> Result<Vec<(u64, Ino, f32)>> {
        let searcher = self.reader.searcher();
        let mut parser =
            QueryParser::for_index(&self.index, vec![self.fields.text, self.fields.path]);
        parser.set_field_boost(self.fields.path, 0.5);
        let (query, _errors) = parser.parse_query_lenient(text);
        let top = searcher.search(&query, &TopDocs::with_limit(limit).order_by_score())?;
        let mut out = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let d: TantivyDocument = searcher.doc(addr)?;
            let id = d
                .get_first(self.fields.chunk_id)
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            let rec_ino = self.chunk_recs(&[id])?.first().map(|r| r.ino).unwrap_or(0);
            out.push((id, rec_ino, score));
        }
        Ok(out)
    }

    /// Ranked files for `query_text` in `mode`.
    pub fn search(&self, query_text: &str, mode: Mode, limit: usize) -> Result<SearchOutcome> {
        let q = parse_query(query_text)?;
        let mut outcome = SearchOutcome::default();
        let pool = (limit * 20).clamp(200, 100_000);
        // Per file: best text score, best semantic score, best chunk for each.
        let mut text_best: HashMap<Ino, (f32, u64)> = HashMap::new();
        let mut sem_best: HashMap<Ino, (f32, u64)> = HashMap::new();
        if q.text.trim().is_empty() {
            return self.filter_only(&q, limit);
        }
        if mode != Mode::Semantic {
            for (id, ino, s) in self.text_chunks(&q.text, pool)? {
                let e = text_best.entry(ino).or_insert((s, id));
                if s > e.0 {
                    *e = (s, id);
                }
            }
        }
        if mode != Mode::Text {
            match self.embed_query(q.text.as_str()) {
                Ok(v) => {
                    let ids = self.vectors.search(&v, pool);
                    let recs = self.chunk_recs(&ids.iter().map(|(i, _)| *i).collect::<Vec<_>>())?;
                    // chunk_recs skips missing ids: match by position only where present.
                    let by_id: HashMap<u64, Ino> = {
                        let txn = self.db.begin_read()?;
                        let t = txn.open_table(CHUNKS)?;
                        let mut m = HashMap::new();
                        for (id, _) in &ids {
                            if let Some(v) = t.get(*id)? {
                                let r: ChunkRec = postcard::from_bytes(v.value())?;
                                m.insert(*id, r.ino);
                            }
                        }
                        m
                    };
                    drop(recs);
                    for (id, sim) in ids {
                        if let Some(ino) = by_id.get(&id) {
                            let e = sem_best.entry(*ino).or_insert((sim, id));
                            if sim > e.0 {
                                *e = (sim, id);
                            }
                        }
                    }
                    // Only the queue length: `status()` scans every file's state.
                    let pending = self.db.begin_read()?.open_table(EMBED_QUEUE)?.len()?;
                    if pending > 0 {
                        outcome.note = Some(format!(
                            "{pending} passages are still being embedded; semantic results may be incomplete (`peros index --wait`)"
                        ));
                    }
                }
                Err(IndexError::Embed(e)) if mode == Mode::Hybrid => {
                    outcome.note = Some(format!("semantic ranking unavailable, text only: {e}"));
                }
                Err(e) => return Err(e),
            }
        }
        // BM25 is normalised by the best text score, but never by less than a floor: when the
        // best match is weak (only "a" or "by" matched), it must not count as a perfect one and
        // outrank a strong semantic match (seen with paraphrased queries).
        const BM25_FLOOR: f32 = 4.0;
        let max_text = text_best
            .values()
            .map(|v| v.0)
            .fold(0f32, f32::max)
            .max(BM25_FLOOR);
        let w = self.opts.semantic_weight;
        let best_text = text_best.values().map(|v| v.0).fold(0f32, f32::max);
        let mut fused: Vec<(Ino, f32, u64, f32, f32)> = Vec::new();
        let inos: HashSet<Ino> = text_best.keys().chain(sem_best.keys()).copied().collect();
        for ino in inos {
            let t = text_best.get(&ino);
            let s = sem_best.get(&ino);
            let score = match mode {
                Mode::Text => t.map(|x| x.0).unwrap_or(0.0),
                Mode::Semantic => s.map(|x| x.0).unwrap_or(0.0),
                Mode::Hybrid => {
                    let tn = t.map(|x| x.0 / max_text).unwrap_or(0.0);
                    // Cosine similarities of unrelated MiniLM texts sit near 0.1–0.2:
                    // rescale so that only the informative part counts.
                    let sn = s.map(|x| ((x.0 - 0.1) / 0.9).max(0.0)).unwrap_or(0.0);
                    if sem_best.is_empty() {
                        tn
                    } else {
                        w * sn + (1.0 - w) * tn
                    }
                }
            };
            // The passage to show: the semantic one if it ranks, else the text one.
            let chunk = match (mode, t, s) {
                (Mode::Text, Some(t), _) => t.1,
                (_, _, Some(s)) => s.1,
                (_, Some(t), None) => t.1,
                _ => continue,
            };
            let text_rel = match t {
                Some(t) if best_text > 0.0 => t.0 / best_text,
                Some(_) => 1.0,
                None => 0.0,
            };
            fused.push((ino, score, chunk, text_rel, s.map(|x| x.0).unwrap_or(0.0)));
        }
        fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let terms = q.terms();
        for (ino, score, chunk_id, text_rel, similarity) in fused {
            if outcome.hits.len() >= limit {
                break;
            }
            let Some(st) = self.file_state(ino)? else {
                continue;
            };
            if !self.facts_ok(&q, &st) {
                continue;
            }
            let rec = self.chunk_recs(&[chunk_id])?.pop();
            let (offset, passage) = rec.map(|r| (r.offset, r.text)).unwrap_or_default();
            outcome.hits.push(Hit {
                mtime: st.mtime,
                size: st.size,
                text_match: text_rel > 0.0,
                text_rel,
                similarity,
                path: st.path,
                ino,
                score,
                offset,
                snippet: chunk::snippet(&passage, &terms, 200),
                passage,
            });
        }
        Ok(outcome)
    }

    fn filter_only(&self, q: &Query, limit: usize) -> Result<SearchOutcome> {
        let txn = self.db.begin_read()?;
        let files = txn.open_table(FILES)?;
        let mut hits = Vec::new();
        for item in files.iter()? {
            let (k, v) = item?;
            let st: FileState = postcard::from_bytes(v.value())?;
            if q.filter.is_some() && self.facts_ok(q, &st) {
                let first = st.chunk_ids.first().copied();
                hits.push((k.value(), st, first));
            }
        }
        hits.sort_by(|a, b| a.1.path.cmp(&b.1.path));
        let mut out = SearchOutcome::default();
        for (ino, st, first) in hits.into_iter().take(limit) {
            let rec = match first {
                Some(id) => self.chunk_recs(&[id])?.pop(),
                None => None,
            };
            let passage = rec.as_ref().map(|r| r.text.clone()).unwrap_or_default();
            out.hits.push(Hit {
                mtime: st.mtime,
                size: st.size,
                text_match: true,
                text_rel: 1.0,
                similarity: 0.0,
                path: st.path,
                ino,
                score: 1.0,
                offset: 0,
                snippet: chunk::snippet(&passage, &[], 200),
                passage,
            });
        }
        Ok(out)
    }
}

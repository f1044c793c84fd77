//! Search: ranking files for a query (text, semantic, hybrid fusion), and filter-only queries.
//!
//! It reads the text index, the vector index and the indexer's state; it never writes them.
//! Which hits are relevant (views, `@search`, `ask`) is decided in [`crate::relevance`]; the
//! choices and their measurements are in docs/RELEVANCE.md.

use std::collections::{HashMap, HashSet};

use peros_store::Ino;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};
use tantivy::collector::{DocSetCollector, TopDocs};
use tantivy::columnar::Column;
use tantivy::query::{BooleanQuery, Occur, QueryParser, TermQuery, TermSetQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::Term;

use crate::query::{self, Query};
use crate::relevance::{self, Params, TermStat};
use crate::state::{CHUNKS, EMBED_QUEUE, FILES};
use crate::{
    chunk, parse_query, passages, vectors, ChunkRec, FileState, IndexError, Indexer, Result,
};

/// At most this many files per query get their file vector read for the relevance rule
/// (each costs a read of every passage vector of the file).
const FILE_VECTORS_MAX: usize = 1000;

/// One candidate file of a query: its scores per signal and the passage to show.
struct Cand {
    ino: Ino,
    score: f32,
    chunk: u64,
    text: f32,
    sim: f32,
    sem_norm: f32,
    matched: u64,
}

/// Where one query term occurs.
#[derive(Default)]
struct TermHits {
    /// Files containing it in their text or path.
    files: HashSet<Ino>,
    /// Files containing it in their path.
    paths: HashSet<Ino>,
    /// (chunk id, ino) of the passages containing it.
    passages: Vec<(u64, Ino)>,
}

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
    /// The ranking score: BM25 in text mode, cosine similarity in semantic mode, the convex
    /// combination of both normalised scores in hybrid mode.
    pub score: f32,
    /// Modification time (seconds since the epoch) and size when indexed.
    pub mtime: i64,
    pub size: u64,
    /// The text query matched this file (always true for filter-only queries).
    pub text_match: bool,
    /// The file's BM25 score relative to the best file's (1 for the best and for filter-only
    /// queries, 0 without a text match): small when only common words matched.
    pub text_rel: f32,
    /// BM25 score of the file's best passage (0 without a text match).
    pub text_score: f32,
    /// Best cosine similarity of a passage to the query (0 when not computed).
    pub similarity: f32,
    /// The similarity min-max normalised over this query's candidates (what hybrid combines).
    pub semantic_norm: f32,
    /// Share of the query's informative (idf) weight whose terms the file contains
    /// ([`relevance`]): 0 when it has none of them.
    pub coverage: f32,
    /// The similarity the relevance rule judged: the mean of the file's best passages
    /// ([`relevance::Params::sem_top`]).
    pub file_similarity: f32,
    /// What the relevance rule saw (benchmarks re-decide with other parameters).
    #[serde(skip)]
    pub evidence: relevance::Evidence,
    /// Bit i: the file contains `SearchOutcome::terms[i]` (first 64 terms).
    pub matched: u64,
    /// A keyword member: `coverage` reaches `relevance::Params::kw_coverage`.
    pub keyword: bool,
    /// The calibrated relevance rule holds ([`relevance`]): what views, `@search` and `ask`
    /// keep. Always true for filter-only queries.
    pub relevant: bool,
    /// Byte offset of the best passage (in the file for text types, in the extracted text
    /// for PDF/DOCX/HTML).
    pub offset: u64,
    /// Where the best passage is, for formats with pages, slides, sheets or messages
    /// ("page 3", "slide 2", "sheet Budget", "message 4: Re: invoice").
    pub location: Option<String>,
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
    /// The query's terms as the text index tokenizes them, with their file frequencies and
    /// weights in the relevance rule.
    pub terms: Vec<TermStat>,
    /// Files in the index when the query ran (the base of the term frequencies).
    pub files: u64,
    /// Files that passed the query's filters (None without filters).
    pub filtered: Option<u64>,
}

/// How a search runs; [`Default`] is what [`Indexer::search`] uses.
#[derive(Clone, Debug, Default)]
pub struct SearchParams {
    /// Weight of the semantic score in hybrid ranking (None: the index's configured one).
    pub semantic_weight: Option<f32>,
    pub relevance: Params,
    /// Embed the query even if its vector is cached (benchmarks: cold query latency).
    pub no_query_cache: bool,
    /// Rank by the first stage only (benchmarks: what the second stage adds).
    pub no_second_stage: bool,
}

/// The second stage of hybrid ranking: the first stage's best [`SECOND_STAGE_DEPTH`] files are
/// re-scored with the file similarity (the mean of the file's [`SECOND_STAGE_TOP`] best
/// passages, [`SECOND_STAGE_FILE_SHARE`] of it replaced by the cosine to the file vector) in
/// place of the best passage alone, combined with BM25 at [`SECOND_STAGE_WEIGHT`]. Chosen on
/// the tuning half of perfs/search/questions.tsv (docs/RELEVANCE.md): held-out recall@5 0.961
/// → 1.000, MRR@10 0.819 → 0.858.
const SECOND_STAGE_DEPTH: usize = 50;
const SECOND_STAGE_TOP: usize = 3;
const SECOND_STAGE_FILE_SHARE: f32 = 0.5;
const SECOND_STAGE_WEIGHT: f32 = 0.7;

/// At most this many passages are scanned exactly (every vector compared) when a filter
/// narrows the candidates; above it the graph is searched and its results filtered.
const EXACT_SCAN_MAX: usize = 50_000;

/// Terms in more passages than this are not collected per file (see `term_files`).
const COMMON_PASSAGES: u64 = 200_000;

/// Files' metadata for one pass over the file states: opened in the pass's transaction, and
/// only when the query filters on metadata.
struct FileMeta(Option<redb::ReadOnlyTable<u64, &'static [u8]>>);

impl FileMeta {
    fn open(txn: &redb::ReadTransaction, q: &Query) -> Result<Self> {
        Ok(FileMeta(if q.needs_meta() {
            Some(txn.open_table(crate::state::FILE_EXTRA)?)
        } else {
            None
        }))
    }

    fn of(&self, ino: Ino) -> Result<Option<crate::extract::DocMeta>> {
        let Some(t) = &self.0 else {
            return Ok(None);
        };
        Ok(match t.get(ino)? {
            Some(v) => Some(postcard::from_bytes::<crate::state::FileExtra>(v.value())?.meta),
            None => Some(crate::extract::DocMeta::default()),
        })
    }
}

/// Candidate files' per-signal bests: (score, chunk id).
type Best = HashMap<Ino, (f32, u64)>;

impl Indexer {
    /// Whether a file passes the query's filters. `meta` is the file's metadata, needed only
    /// when [`Query::needs_meta`] (it lives in its own table: see [`FileMeta`]).
    fn facts_ok(q: &Query, st: &FileState, meta: Option<&crate::extract::DocMeta>) -> bool {
        q.matches(&query::FileFacts {
            path: &st.path,
            ext: &st.ext,
            mtime: st.mtime,
            size: st.size,
            tags: &st.tags,
            kind: &st.kind,
            meta,
        })
    }

    /// The files (and their chunks) a query's filters admit, or None without filters. One
    /// pass over the recorded file states: filters on paths are substrings, which the text
    /// index cannot answer, and the pass is cheap next to ranking.
    fn filtered_files(&self, q: &Query) -> Result<Option<HashMap<Ino, Vec<u64>>>> {
        if q.filter.is_none() {
            return Ok(None);
        }
        let txn = self.db.begin_read()?;
        let files = txn.open_table(FILES)?;
        let metas = FileMeta::open(&txn, q)?;
        let mut out = HashMap::new();
        for item in files.iter()? {
            let (k, v) = item?;
            let st: FileState = postcard::from_bytes(v.value())?;
            if Self::facts_ok(q, &st, metas.of(k.value())?.as_ref()) {
                out.insert(k.value(), st.chunk_ids);
            }
        }
        Ok(Some(out))
    }

    /// Text hits per chunk: (chunk id, ino, bm25), restricted to `only` inside tantivy (a
    /// term-set filter on the file's id), so a selective filter loses no match to the cut-off.
    fn text_chunks(
        &self,
        text: &str,
        limit: usize,
        only: Option<&HashMap<Ino, Vec<u64>>>,
    ) -> Result<Vec<(u64, Ino, f32)>> {
        let searcher = self.reader.searcher();
        let mut parser =
            QueryParser::for_index(&self.index, vec![self.fields.text, self.fields.path]);
        parser.set_field_boost(self.fields.path, 0.5);
        let (query, _errors) = parser.parse_query_lenient(text);
        let query: Box<dyn tantivy::query::Query> = match only {
            None => query,
            Some(set) => {
                if set.is_empty() {
                    return Ok(Vec::new());
                }
                let terms = set
                    .keys()
                    .map(|ino| Term::from_field_u64(self.fields.ino, *ino));
                Box::new(BooleanQuery::new(vec![
                    (Occur::Must, query),
                    (Occur::Must, Box::new(TermSetQuery::new(terms))),
                ]))
            }
        };
        let top = searcher.search(&query, &TopDocs::with_limit(limit).order_by_score())?;
        let mut cols: HashMap<u32, (Column<u64>, Column<u64>)> = HashMap::new();
        let mut out = Vec::with_capacity(top.len());
        for (score, addr) in top {
            if let std::collections::hash_map::Entry::Vacant(e) = cols.entry(addr.segment_ord) {
                let ff = searcher.segment_reader(addr.segment_ord).fast_fields();
                e.insert((ff.u64("chunk_id")?, ff.u64("ino")?));
            }
            let (ids, inos) = &cols[&addr.segment_ord];
            let (Some(id), Some(ino)) = (ids.first(addr.doc_id), inos.first(addr.doc_id)) else {
                continue;
            };
            out.push((id, ino, score));
        }
        Ok(out)
    }

    /// The query's terms (the text field's tokenizer, in order, once each) and, per term, where
    /// it occurs (files, passages, paths). Stopwords are not looked up (they weigh nothing), nor
    /// are terms in more than [`COMMON_PASSAGES`] passages (too common to weigh anything in a
    /// corpus that size, and costly to collect).
    fn term_files(&self, text: &str) -> Result<Vec<(String, Option<TermHits>)>> {
        let mut analyzer = self.index.tokenizer_for_field(self.fields.text)?;
        let mut terms: Vec<String> = Vec::new();
        let mut stream = analyzer.token_stream(text);
        stream.process(&mut |t| {
            if !terms.contains(&t.text) {
                terms.push(t.text.clone());
            }
        });
        let searcher = self.reader.searcher();
        // (chunk id, ino) of every passage a term query finds.
        let found = |term: Term| -> Result<Vec<(u64, Ino)>> {
            let q = TermQuery::new(term, IndexRecordOption::Basic);
            let mut cols: HashMap<u32, (Column<u64>, Column<u64>)> = HashMap::new();
            let mut out = Vec::new();
            for addr in searcher.search(&q, &DocSetCollector)? {
                if let std::collections::hash_map::Entry::Vacant(e) = cols.entry(addr.segment_ord) {
                    let ff = searcher.segment_reader(addr.segment_ord).fast_fields();
                    e.insert((ff.u64("chunk_id")?, ff.u64("ino")?));
                }
                let (ids, inos) = &cols[&addr.segment_ord];
                if let (Some(id), Some(ino)) = (ids.first(addr.doc_id), inos.first(addr.doc_id)) {
                    out.push((id, ino));
                }
            }
            Ok(out)
        };
        let mut out = Vec::with_capacity(terms.len());
        for t in terms {
            if relevance::is_stopword(&t) {
                out.push((t, Some(TermHits::default())));
                continue;
            }
            let tt = Term::from_field_text(self.fields.text, &t);
            let tp = Term::from_field_text(self.fields.path, &t);
            if searcher.doc_freq(&tt)? > COMMON_PASSAGES {
                out.push((t, None));
                continue;
            }
            let mut hits = TermHits {
                passages: found(tt)?,
                ..TermHits::default()
            };
            hits.paths = found(tp)?.into_iter().map(|(_, ino)| ino).collect();
            hits.files = hits.paths.clone();
            hits.files.extend(hits.passages.iter().map(|(_, ino)| *ino));
            out.push((t, Some(hits)));
        }
        Ok(out)
    }

    /// The stored vectors of these chunks (exact scans of a filtered set).
    fn chunk_vectors(&self, ids: impl Iterator<Item = u64>) -> Result<Vec<(u64, Vec<f32>)>> {
        let mut out = Vec::new();
        for id in ids {
            if let Some(v) = self.chunk_vector(id)? {
                out.push((id, v));
            }
        }
        Ok(out)
    }

    /// Nearest passages to `v` among those `only` admits: an exact scan when that is at most
    /// [`EXACT_SCAN_MAX`] passages, else the graph with a deeper search, filtered.
    fn semantic_chunks(
        &self,
        v: &[f32],
        pool: usize,
        only: Option<&HashMap<Ino, Vec<u64>>>,
    ) -> Result<Vec<(u64, f32)>> {
        let Some(set) = only else {
            return Ok(self.vectors.search(v, pool));
        };
        let n: usize = set.values().map(|c| c.len()).sum();
        if n <= EXACT_SCAN_MAX {
            let mut out: Vec<(u64, f32)> = self
                .chunk_vectors(set.values().flatten().copied())?
                .into_iter()
                .map(|(id, x)| (id, vectors::dot(v, &x)))
                .collect();
            out.sort_by(|a, b| b.1.total_cmp(&a.1));
            out.truncate(pool);
            return Ok(out);
        }
        // Most passages pass: the graph's neighbours, filtered, lose little.
        let admitted: HashSet<u64> = set.values().flatten().copied().collect();
        Ok(self
            .vectors
            .search(v, (pool * 4).min(100_000))
            .into_iter()
            .filter(|(id, _)| admitted.contains(id))
            .take(pool)
            .collect())
    }

    fn chunk_inos(&self, ids: &[(u64, f32)]) -> Result<HashMap<u64, Ino>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(CHUNKS)?;
        let mut m = HashMap::new();
        for (id, _) in ids {
            if let Some(v) = t.get(*id)? {
                let r: ChunkRec = postcard::from_bytes(v.value())?;
                m.insert(*id, r.ino);
            }
        }
        Ok(m)
    }

    /// Cosine similarities of `texts` to `query` with the index's model (ask: which sentences
    /// of a passage answer).
    pub fn similarities(&self, query: &str, texts: &[&str]) -> Result<Vec<f32>> {
        let q = self.embed_query(query)?;
        texts
            .iter()
            .map(|t| Ok(vectors::dot(&q, &self.embed_query(t)?)))
            .collect()
    }

    /// Ranked files for `query_text` in `mode`.
    pub fn search(&self, query_text: &str, mode: Mode, limit: usize) -> Result<SearchOutcome> {
        self.search_with(query_text, mode, limit, &SearchParams::default())
    }

    /// [`Indexer::search`] with explicit parameters.
    ///
    /// Filters are applied inside retrieval (text: a tantivy filter clause; vectors: an exact
    /// scan of the admitted passages when few), so they never drop a match. Each file's score
    /// is its best passage's per signal; hybrid combines the two normalised scores convexly
    /// (BM25 divided by the best candidate's, cosine min-max normalised over the candidates:
    /// Bruch et al., TOIS 2023). Relevance ([`relevance`]) is decided over all candidates,
    /// before the cut to `limit`.
    pub fn search_with(
        &self,
        query_text: &str,
        mode: Mode,
        limit: usize,
        params: &SearchParams,
    ) -> Result<SearchOutcome> {
        let q = parse_query(query_text)?;
        if q.text.trim().is_empty() {
            return self.filter_only(&q, limit);
        }
        let mut outcome = SearchOutcome::default();
        let only = self.filtered_files(&q)?;
        outcome.filtered = only.as_ref().map(|s| s.len() as u64);
        let pool = (limit * 20).clamp(200, 100_000);
        let mut text_best: Best = HashMap::new();
        let mut sem_best: Best = HashMap::new();
        // Every candidate's best passage similarities (what relevance aggregates per file).
        let mut sem_top: HashMap<Ino, Vec<f32>> = HashMap::new();
        let mut query_vector: Option<Vec<f32>> = None;
        // The text signal also runs in semantic mode: keyword membership needs it.
        for (id, ino, s) in self.text_chunks(&q.text, pool, only.as_ref())? {
            let e = text_best.entry(ino).or_insert((s, id));
            if s > e.0 {
                *e = (s, id);
            }
        }
        if mode != Mode::Text {
            if params.no_query_cache {
                self.query_vectors
                    .lock()
                    .remove(&passages::normalize(&q.text));
            }
            match self.embed_query(q.text.as_str()) {
                Ok(v) => {
                    let ids = self.semantic_chunks(&v, pool, only.as_ref())?;
                    let by_id = self.chunk_inos(&ids)?;
                    for (id, sim) in ids {
                        if let Some(ino) = by_id.get(&id) {
                            let e = sem_best.entry(*ino).or_insert((sim, id));
                            if sim > e.0 {
                                *e = (sim, id);
                            }
                            sem_top.entry(*ino).or_default().push(sim);
                        }
                    }
                    for top in sem_top.values_mut() {
                        top.sort_by(|a, b| b.total_cmp(a));
                        top.truncate(relevance::TOP_PASSAGES);
                    }
                    query_vector = Some(v);
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
        outcome.files = self.db.begin_read()?.open_table(FILES)?.len()?;
        let term_files = self.term_files(&q.text)?;
        let df: Vec<(String, u64)> = term_files
            .iter()
            .map(|(t, f)| {
                (
                    t.clone(),
                    f.as_ref().map_or(outcome.files, |s| s.files.len() as u64),
                )
            })
            .collect();
        outcome.terms = relevance::term_weights(&df, outcome.files, &params.relevance);

        let max_text = text_best.values().map(|v| v.0).fold(0f32, f32::max);
        let (min_sim, max_sim) = sem_best.values().fold((f32::MAX, f32::MIN), |(lo, hi), v| {
            (lo.min(v.0), hi.max(v.0))
        });
        let w = params.semantic_weight.unwrap_or(self.opts.semantic_weight);
        let inos: Vec<Ino> = {
            let mut v: Vec<Ino> = text_best.keys().chain(sem_best.keys()).copied().collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let mut cands: Vec<Cand> = Vec::with_capacity(inos.len());
        for ino in inos {
            let t = text_best.get(&ino);
            let s = sem_best.get(&ino);
            let tn = t
                .map(|x| x.0 / max_text.max(f32::MIN_POSITIVE))
                .unwrap_or(0.0);
            let sn = match s {
                Some(x) if max_sim > min_sim => (x.0 - min_sim) / (max_sim - min_sim),
                Some(_) => 1.0,
                None => 0.0,
            };
            let score = match mode {
                Mode::Text => t.map(|x| x.0).unwrap_or(0.0),
                // Files only the text signal found (kept for keyword membership) rank last.
                Mode::Semantic => s.map(|x| x.0).unwrap_or(-1.0),
                Mode::Hybrid if sem_best.is_empty() => tn,
                Mode::Hybrid => w * sn + (1.0 - w) * tn,
            };
            // The passage to show: the semantic one if it ranks, else the text one.
            let chunk = match (mode, t, s) {
                (Mode::Text, Some(t), _) => t.1,
                (_, _, Some(s)) => s.1,
                (_, Some(t), None) => t.1,
                _ => continue,
            };
            let mut matched = 0u64;
            for (i, (_, hits)) in term_files.iter().take(64).enumerate() {
                if hits.as_ref().is_some_and(|h| h.files.contains(&ino)) {
                    matched |= 1 << i;
                }
            }
            cands.push(Cand {
                ino,
                score,
                chunk,
                text: t.map(|x| x.0).unwrap_or(0.0),
                sim: s.map(|x| x.0).unwrap_or(0.0),
                sem_norm: sn,
                matched,
            });
        }
        // Per passage, the terms it holds (with its file's path terms): keyword coverage
        // inside one passage.
        let mut path_masks: HashMap<Ino, u64> = HashMap::new();
        let mut passage_masks: HashMap<u64, (Ino, u64)> = HashMap::new();
        for (i, (_, hits)) in term_files.iter().take(64).enumerate() {
            let Some(h) = hits else { continue };
            for ino in &h.paths {
                *path_masks.entry(*ino).or_default() |= 1 << i;
            }
            for (id, ino) in &h.passages {
                passage_masks.entry(*id).or_insert((*ino, 0)).1 |= 1 << i;
            }
        }
        let mut by_file: HashMap<Ino, Vec<u64>> = HashMap::new();
        for (ino, m) in passage_masks.values() {
            by_file.entry(*ino).or_default().push(*m);
        }
        // File vectors only where the rule uses them: files whose best passage reaches the
        // floor (the others cannot be members).
        let mut centroids: HashMap<Ino, f32> = HashMap::new();
        // (The second stage below reuses these and reads the rest it needs.)
        if let (Some(q), true) = (&query_vector, params.relevance.sem_centroid > 0.0) {
            let mut near: Vec<(f32, Ino)> = cands
                .iter()
                .filter(|c| c.sim >= params.relevance.sem_floor)
                .map(|c| (c.sim, c.ino))
                .collect();
            // Bounded work: past the best FILE_VECTORS_MAX, files are judged on their best
            // passages alone (a query that broad lists more than a folder can show anyway).
            near.sort_by(|a, b| b.0.total_cmp(&a.0));
            near.truncate(FILE_VECTORS_MAX);
            let near: Vec<Ino> = near.into_iter().map(|(_, ino)| ino).collect();
            centroids = self.file_similarities(q, &near)?.into_iter().collect();
        }
        let mut evidence: Vec<relevance::Evidence> = Vec::with_capacity(cands.len());
        for c in &cands {
            let path = path_masks.get(&c.ino).copied().unwrap_or(0);
            let mut masks: Vec<u64> = by_file
                .get(&c.ino)
                .map(|v| v.iter().map(|m| m | path).collect())
                .unwrap_or_default();
            if masks.is_empty() && path != 0 {
                masks.push(path);
            }
            masks.sort_unstable();
            masks.dedup();
            let sims = sem_top.remove(&c.ino).unwrap_or_default();
            // How many passages the file has matters only when fewer were retrieved than
            // the rule may average, and only for files that could be members.
            let passages = if sims.len() < relevance::TOP_PASSAGES
                && sims
                    .first()
                    .is_some_and(|s| *s >= params.relevance.sem_floor)
            {
                self.file_state(c.ino)?
                    .map_or(sims.len(), |st| st.chunk_ids.len())
            } else {
                sims.len()
            };
            evidence.push(relevance::Evidence {
                sims,
                passages,
                centroid: centroids.get(&c.ino).copied(),
                file_mask: c.matched,
                passage_masks: masks,
            });
        }
        let decided = relevance::decide(
            &evidence,
            &outcome.terms,
            outcome.files,
            &params.relevance,
            mode != Mode::Text,
        );
        let mut order: Vec<usize> = (0..cands.len()).collect();
        order.sort_by(|&a, &b| {
            cands[b]
                .score
                .total_cmp(&cands[a].score)
                .then(cands[a].ino.cmp(&cands[b].ino))
        });
        if let (Mode::Hybrid, Some(v), false) = (mode, &query_vector, params.no_second_stage) {
            self.second_stage(v, &mut cands, &evidence, &mut centroids, &mut order)?;
        }
        let terms = q.terms();
        for i in order {
            if outcome.hits.len() >= limit {
                break;
            }
            let c = &cands[i];
            if mode == Mode::Semantic && c.score < 0.0 {
                continue;
            }
            let Some(st) = self.file_state(c.ino)? else {
                continue;
            };
            let meta = if q.needs_meta() {
                Some(self.file_extra(c.ino)?.meta)
            } else {
                None
            };
            if !Self::facts_ok(&q, &st, meta.as_ref()) {
                continue;
            }
            let rec = self.chunk_recs(&[c.chunk])?.pop();
            let (offset, passage) = rec.map(|r| (r.offset, r.text)).unwrap_or_default();
            outcome.hits.push(Hit {
                mtime: st.mtime,
                size: st.size,
                text_match: c.text > 0.0,
                text_rel: c.text / max_text.max(f32::MIN_POSITIVE),
                text_score: c.text,
                similarity: c.sim,
                semantic_norm: c.sem_norm,
                coverage: decided.coverage[i],
                file_similarity: decided.similarity[i],
                evidence: evidence[i].clone(),
                matched: c.matched,
                keyword: decided.keyword[i],
                relevant: decided.relevant[i],
                path: st.path,
                ino: c.ino,
                score: c.score,
                offset,
                location: self.location_of(c.ino, offset),
                snippet: chunk::snippet(&passage, &terms, 200),
                passage,
            });
        }
        Ok(outcome)
    }

    /// Hybrid's second stage (see [`SECOND_STAGE_DEPTH`]): re-scores the first `order`'s best
    /// files with the file similarity and puts them first, re-sorted; the others follow in
    /// their first-stage order, their scores scaled under the last re-scored one. File vector
    /// similarities already in `centroids` are reused, the missing ones read and added.
    fn second_stage(
        &self,
        query: &[f32],
        cands: &mut [Cand],
        evidence: &[relevance::Evidence],
        centroids: &mut HashMap<Ino, f32>,
        order: &mut [usize],
    ) -> Result<()> {
        let depth = order.len().min(SECOND_STAGE_DEPTH);
        let (block, rest) = order.split_at_mut(depth);
        let missing: Vec<Ino> = block
            .iter()
            .map(|&i| cands[i].ino)
            .filter(|ino| !centroids.contains_key(ino))
            .collect();
        centroids.extend(self.file_similarities(query, &missing)?);
        let file_sim: Vec<f32> = block
            .iter()
            .map(|&i| {
                let e = &evidence[i];
                if e.sims.is_empty() {
                    return 0.0;
                }
                let top = relevance::best_passages_mean(e, SECOND_STAGE_TOP.min(e.passages), None);
                let c = centroids.get(&cands[i].ino).copied().unwrap_or(0.0);
                (1.0 - SECOND_STAGE_FILE_SHARE) * top + SECOND_STAGE_FILE_SHARE * c
            })
            .collect();
        let (lo, hi) = file_sim
            .iter()
            .fold((f32::MAX, f32::MIN), |(l, h), x| (l.min(*x), h.max(*x)));
        let block_text = block.iter().map(|&i| cands[i].text).fold(0f32, f32::max);
        let rest_best = rest.first().map(|&i| cands[i].score).unwrap_or(0.0);
        for (&i, fs) in block.iter().zip(&file_sim) {
            let sn = if hi > lo { (fs - lo) / (hi - lo) } else { 1.0 };
            let tn = cands[i].text / block_text.max(f32::MIN_POSITIVE);
            cands[i].score = SECOND_STAGE_WEIGHT * sn + (1.0 - SECOND_STAGE_WEIGHT) * tn;
        }
        let floor = block
            .iter()
            .map(|&i| cands[i].score)
            .fold(f32::MAX, f32::min);
        if rest_best > 0.0 && floor < f32::MAX {
            let scale = (floor / rest_best).min(1.0) * 0.999;
            for &i in rest.iter() {
                cands[i].score *= scale;
            }
        }
        block.sort_by(|&a, &b| {
            cands[b]
                .score
                .total_cmp(&cands[a].score)
                .then(cands[a].ino.cmp(&cands[b].ino))
        });
        Ok(())
    }

    /// The section (page, slide, sheet…) holding text byte `offset` of a file.
    pub fn location_of(&self, ino: Ino, offset: u64) -> Option<String> {
        let extra = self.file_extra(ino).ok()?;
        crate::extract::section_at(&extra.sections, offset).map(str::to_string)
    }

    fn filter_only(&self, q: &Query, limit: usize) -> Result<SearchOutcome> {
        let txn = self.db.begin_read()?;
        let files = txn.open_table(FILES)?;
        let metas = FileMeta::open(&txn, q)?;
        let mut hits = Vec::new();
        for item in files.iter()? {
            let (k, v) = item?;
            let st: FileState = postcard::from_bytes(v.value())?;
            if q.filter.is_some() && Self::facts_ok(q, &st, metas.of(k.value())?.as_ref()) {
                let first = st.chunk_ids.first().copied();
                hits.push((k.value(), st, first));
            }
        }
        hits.sort_by(|a, b| a.1.path.cmp(&b.1.path));
        let mut out = SearchOutcome {
            files: files.len()?,
            filtered: Some(hits.len() as u64),
            ..SearchOutcome::default()
        };
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
                text_score: 0.0,
                similarity: 0.0,
                semantic_norm: 0.0,
                coverage: 0.0,
                file_similarity: 0.0,
                evidence: relevance::Evidence::default(),
                matched: 0,
                keyword: false,
                relevant: true,
                path: st.path,
                ino,
                score: 1.0,
                offset: 0,
                location: None,
                snippet: chunk::snippet(&passage, &[], 200),
                passage,
            });
        }
        Ok(out)
    }
}

//! `search-bench`: how well and how fast PerOS search works, measured on real text.
//!
//! Two runs (see perfs/search/README.md):
//!
//! * default (quality): the rendered Debian man pages of `--corpus` are written into a fresh
//!   encrypted store, indexed with the real model (all-MiniLM-L6-v2 int8), and the labeled
//!   questions of `--questions` are asked in text, semantic and hybrid mode (recall@5, MRR@10,
//!   latency), then hybrid again for several `semantic_weight`s. The same chunk texts are also
//!   embedded by the raw model (no indexing) as the throughput baseline.
//! * `--scale N`: about N chunks of synthetic text (perturbed copies of the man pages) with a
//!   deterministic stand-in embedder ([`HashingEmbedder`]), for query latency, peak RSS and
//!   write→searchable latency at a size the real model would take half an hour to embed.
//!
//! Prints figures only: nothing is asserted.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use peros_crypto::Keyring;
use peros_indexer::{
    extract, passages, EmbedError, Embedder, FastEmbedder, Indexer, Mode, Options,
};
use peros_store::{Ino, Kind, ObjectStoreBackend, Store, StoreOptions, ROOT_INO};

// ---------------------------------------------------------------------------------------------
// Arguments

struct Args {
    corpus: PathBuf,
    questions: PathBuf,
    out: PathBuf,
    append: bool,
    work: PathBuf,
    weights: Vec<f32>,
    scale: Option<usize>,
    fresh: usize,
    limit_pages: Option<usize>,
    repeats: usize,
    keep: bool,
}

const USAGE: &str = "usage: search-bench [--corpus DIR] [--questions FILE] [--out FILE] [--append]
                    [--work DIR] [--weights 0.2,0.4,...] [--fresh K] [--limit-pages N] [--keep]
       search-bench --scale N [--repeats R] [same options]

  --corpus DIR      rendered man pages (DIR/man1/*, DIR/man8/*; perfs/search/corpus.sh makes it)
                    default $SEARCH_CORPUS, else /var/tmp/peros-search-corpus
  --questions FILE  question<TAB>page lines (default perfs/search/questions.tsv)
  --out FILE        Markdown report (default perfs/results/search-<UTC date>.md)
  --append          append to --out instead of replacing it
  --work DIR        where the temporary store and index go (default /var/tmp)
  --weights LIST    hybrid semantic_weight variants (default 0.2,0.4,0.6,0.7,0.8,0.9)
  --fresh K         write->searchable samples (default 20; 50 with --scale)
  --limit-pages N   only the first N pages (quick trial)
  --scale N         latency run with ~N synthetic chunks and the HashingEmbedder stand-in
  --repeats R       timed passes over the questions per mode in --scale (default 3)
  --keep            keep the temporary store and index";

fn parse_args() -> Result<Args> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut a = Args {
        corpus: std::env::var_os("SEARCH_CORPUS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/tmp/peros-search-corpus")),
        questions: manifest.join("questions.tsv"),
        out: manifest
            .join("../results")
            .join(format!("search-{}.md", utc_date())),
        append: false,
        work: PathBuf::from("/var/tmp"),
        weights: vec![0.2, 0.4, 0.6, 0.7, 0.8, 0.9],
        scale: None,
        fresh: 0,
        limit_pages: None,
        repeats: 3,
        keep: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || {
            it.next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--corpus" => a.corpus = val()?.into(),
            "--questions" => a.questions = val()?.into(),
            "--out" => a.out = val()?.into(),
            "--append" => a.append = true,
            "--work" => a.work = val()?.into(),
            "--weights" => {
                a.weights = val()?
                    .split(',')
                    .map(|w| w.trim().parse::<f32>())
                    .collect::<Result<_, _>>()
                    .context("--weights: comma-separated numbers")?
            }
            "--scale" => a.scale = Some(val()?.parse().context("--scale N")?),
            "--fresh" => a.fresh = val()?.parse().context("--fresh K")?,
            "--limit-pages" => a.limit_pages = Some(val()?.parse().context("--limit-pages N")?),
            "--repeats" => a.repeats = val()?.parse::<usize>().context("--repeats R")?.max(1),
            "--keep" => a.keep = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if a.fresh == 0 {
        a.fresh = if a.scale.is_some() { 50 } else { 20 };
    }
    Ok(a)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let report = match args.scale {
        Some(n) => scale_run(&args, n)?,
        None => quality_run(&args)?,
    };
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(args.append)
        .truncate(!args.append)
        .open(&args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    if args.append {
        writeln!(f)?;
    }
    f.write_all(report.as_bytes())?;
    eprintln!("report written to {}", args.out.display());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Small measuring helpers

/// Process CPU time (user + system, all threads).
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Wall and CPU time of `f`.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration, Duration) {
    let (w, c) = (Instant::now(), cpu_time());
    let out = f();
    (out, w.elapsed(), cpu_time() - c)
}

/// A field of /proc/self/status in MiB (VmHWM = peak RSS, VmRSS = current).
fn proc_status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Nearest-rank percentile of durations, in ms.
fn pct_ms(samples: &[Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut v: Vec<Duration> = samples.to_vec();
    v.sort();
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1].as_secs_f64() * 1000.0
}

fn utc_date() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    // Civil from days (Howard Hinnant).
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn machine_line() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} CPUs ({model}), load average at start {}", loadavg())
}

// ---------------------------------------------------------------------------------------------
// Corpus, questions, store

struct Page {
    /// "man1" or "man8".
    section: String,
    /// File name, e.g. "scp.1".
    name: String,
    bytes: Vec<u8>,
}

fn load_corpus(dir: &Path, limit: Option<usize>) -> Result<Vec<Page>> {
    let mut pages = Vec::new();
    for section in ["man1", "man8"] {
        let d = dir.join(section);
        let mut names: Vec<String> = std::fs::read_dir(&d)
            .with_context(|| {
                format!(
                    "{}: no rendered corpus (run perfs/search/corpus.sh first)",
                    d.display()
                )
            })?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".tmp"))
            .collect();
        names.sort();
        for name in names {
            let bytes = std::fs::read(d.join(&name))?;
            pages.push(Page {
                section: section.to_string(),
                name,
                bytes,
            });
        }
    }
    if let Some(n) = limit {
        pages.truncate(n);
    }
    if pages.is_empty() {
        bail!("{}: the corpus is empty", dir.display());
    }
    Ok(pages)
}

struct Question {
    text: String,
    page: String,
}

fn load_questions(path: &Path) -> Result<Vec<Question>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (q, p) = line
            .split_once('\t')
            .with_context(|| format!("{}:{}: expected question<TAB>page", path.display(), i + 1))?;
        out.push(Question {
            text: q.trim().to_string(),
            page: p.trim().to_string(),
        });
    }
    Ok(out)
}

/// A fresh store in `dir` as the CLI opens one: generated key, local object backend.
fn open_store(dir: &Path) -> Result<Arc<Store>> {
    std::fs::create_dir_all(dir.join("meta"))?;
    let backend = ObjectStoreBackend::local(&dir.join("objects"))?;
    let store = Store::open(
        &dir.join("meta").join("peros.redb"),
        Arc::new(Keyring::generate()),
        Arc::new(backend),
        StoreOptions::default(),
    )?;
    Ok(Arc::new(store))
}

fn ids() -> (u32, u32) {
    // SAFETY: getuid/getgid cannot fail.
    unsafe { (libc::getuid(), libc::getgid()) }
}

fn mkdir(store: &Store, parent: Ino, name: &str) -> Result<Ino> {
    let (uid, gid) = ids();
    match store.create(parent, name.as_bytes(), Kind::Dir, 0o755, uid, gid, 0, b"") {
        Ok((ino, _)) => Ok(ino),
        Err(peros_store::StoreError::Exists(_)) => Ok(store.lookup(parent, name.as_bytes())?.0),
        Err(e) => Err(e.into()),
    }
}

/// Creates `name` under `parent` and writes `bytes` into it (not durable: the caller syncs).
fn write_file(store: &Store, parent: Ino, name: &str, bytes: &[u8]) -> Result<Ino> {
    let (uid, gid) = ids();
    let (ino, _) = store.create(parent, name.as_bytes(), Kind::File, 0o644, uid, gid, 0, b"")?;
    store.write_content(ino, &mut &bytes[..], None, false)?;
    Ok(ino)
}

fn page_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The passage texts the indexer embeds for `name`'s bytes (same functions, same parameters:
/// cut to the model's window, whitespace normalised).
fn chunks_of(name: &str, bytes: &[u8], opts: &Options) -> Vec<String> {
    let tokens = passages::ModelTokens::load(&opts.model.model_dir.join("tokenizer.json"))
        .expect("the model's tokenizer.json (source /var/cache/peros/env.sh)");
    match extract::extract(name, bytes, opts.max_text_bytes) {
        Ok(ex) => passages::cut(&ex.text, opts.chunk_tokens - 2, &tokens)
            .into_iter()
            .map(|p| passages::normalize(&ex.text[p.offset..p.offset + p.len]))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Index options for the runs; `CHUNK_TOKENS=N` compares passage lengths (128 vs 256).
fn model_options(dir: PathBuf, weight: f32) -> Options {
    let mut o = Options::new(dir);
    o.semantic_weight = weight;
    if let Some(t) = std::env::var("CHUNK_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        o.chunk_tokens = t;
    }
    o
}

// ---------------------------------------------------------------------------------------------
// Asking the questions

#[derive(Default, Clone)]
struct ModeResult {
    /// 1-based rank of the expected page in the top 10, per question.
    ranks: Vec<Option<usize>>,
    latencies: Vec<Duration>,
    notes: BTreeSet<String>,
}

impl ModeResult {
    fn recall_at(&self, k: usize) -> f64 {
        let hits = self
            .ranks
            .iter()
            .filter(|r| r.is_some_and(|r| r <= k))
            .count();
        hits as f64 / self.ranks.len().max(1) as f64
    }
    fn mrr(&self) -> f64 {
        let s: f64 = self
            .ranks
            .iter()
            .map(|r| r.map(|r| 1.0 / r as f64).unwrap_or(0.0))
            .sum();
        s / self.ranks.len().max(1) as f64
    }
}

fn ask_all(ix: &Indexer, qs: &[Question], mode: Mode) -> Result<ModeResult> {
    // One untimed query first: the first search of a mode pays for lazy set-up.
    ix.search("warm up the searcher", mode, 10)?;
    let mut r = ModeResult::default();
    for q in qs {
        let t = Instant::now();
        let out = ix.search(&q.text, mode, 10)?;
        r.latencies.push(t.elapsed());
        if let Some(n) = out.note {
            r.notes.insert(n);
        }
        let rank = out
            .hits
            .iter()
            .position(|h| page_of(&h.path) == q.page)
            .map(|i| i + 1);
        r.ranks.push(rank);
    }
    Ok(r)
}

/// What reciprocal-rank fusion of the product's own text and semantic rankings would score:
/// computed here from two `search` calls per question (top 50 each), to compare fusion
/// methods. Not something the indexer does.
fn rrf_what_if(ix: &Indexer, qs: &[Question]) -> Result<ModeResult> {
    let mut r = ModeResult::default();
    for q in qs {
        let mut score: std::collections::HashMap<String, f64> = Default::default();
        for mode in [Mode::Text, Mode::Semantic] {
            for (i, h) in ix.search(&q.text, mode, 50)?.hits.iter().enumerate() {
                *score.entry(h.path.clone()).or_default() += 1.0 / (60.0 + i as f64 + 1.0);
            }
        }
        let mut ranked: Vec<(String, f64)> = score.into_iter().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        r.ranks.push(
            ranked
                .iter()
                .take(10)
                .position(|(p, _)| page_of(p) == q.page)
                .map(|i| i + 1),
        );
    }
    Ok(r)
}

fn mode_row(name: &str, r: &ModeResult) -> String {
    format!(
        "| {name} | {:.3} | {:.3} | {:.3} | {:.1} | {:.1} |",
        r.recall_at(5),
        r.recall_at(10),
        r.mrr(),
        pct_ms(&r.latencies, 50.0),
        pct_ms(&r.latencies, 99.0),
    )
}

const MODE_HEADER: &str =
    "| mode | recall@5 | recall@10 | MRR@10 | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|---:|";

// ---------------------------------------------------------------------------------------------
// Quality run: real corpus, real model

fn quality_run(args: &Args) -> Result<String> {
    let mut md = String::new();
    let say = |md: &mut String, s: String| {
        println!("{s}");
        md.push_str(&s);
        md.push('\n');
    };
    let started = Instant::now();
    say(&mut md, format!("# Search benchmark, {}\n", utc_date()));
    say(&mut md, format!("Machine: {}.  ", machine_line()));
    let pages = load_corpus(&args.corpus, args.limit_pages)?;
    let all_qs = load_questions(&args.questions)?;
    let names: BTreeSet<&str> = pages.iter().map(|p| p.name.as_str()).collect();
    let qs: Vec<Question> = all_qs
        .into_iter()
        .filter(|q| names.contains(q.page.as_str()))
        .collect();
    let skipped = load_questions(&args.questions)?.len() - qs.len();
    if qs.is_empty() {
        bail!("no question's page is in the corpus");
    }
    let corpus_bytes: usize = pages.iter().map(|p| p.bytes.len()).sum();
    let model = peros_indexer::ModelPaths::from_env();
    say(
        &mut md,
        format!(
            "Corpus: {} rendered man pages ({:.1} MB) from {} (selection: perfs/search/pages.txt, rule in corpus.sh).  ",
            pages.len(),
            corpus_bytes as f64 / 1e6,
            args.corpus.display()
        ),
    );
    say(
        &mut md,
        format!(
            "Questions: {} from {} ({skipped} skipped: page not in the corpus).  ",
            qs.len(),
            args.questions.display()
        ),
    );
    say(
        &mut md,
        format!(
            "Model: {} with ONNX Runtime {}.\n",
            model.model_dir.display(),
            model.ort_library.display()
        ),
    );

    let tmp = tempfile::Builder::new()
        .prefix("peros-search-bench-")
        .tempdir_in(&args.work)?;
    let store = open_store(&tmp.path().join("store"))?;
    let index_dir = tmp.path().join("index");

    // 1. Store writes.
    let (written, w_wall, w_cpu) = timed(|| -> Result<usize> {
        let mut dirs = std::collections::HashMap::new();
        for p in &pages {
            let parent = match dirs.get(&p.section) {
                Some(d) => *d,
                None => {
                    let d = mkdir(&store, ROOT_INO, &p.section)?;
                    dirs.insert(p.section.clone(), d);
                    d
                }
            };
            write_file(&store, parent, &p.name, &p.bytes)?;
        }
        store.sync()?;
        Ok(pages.len())
    });
    let written = written?;
    eprintln!("wrote {written} files in {:.1}s", w_wall.as_secs_f64());

    // 2. Text indexing (open reconciles: every file is queued).
    let opts = model_options(index_dir.clone(), 0.6);
    let chunk_texts: Vec<String> = pages
        .iter()
        .flat_map(|p| chunks_of(&p.name, &p.bytes, &opts))
        .collect();
    let (ix, o_wall, _) = timed(|| Indexer::open(store.clone(), opts));
    let ix = ix?;
    let (r, t_wall, t_cpu) = timed(|| ix.catch_up(false, &|_, _, _| {}));
    r?;
    let st = ix.status()?;
    eprintln!(
        "text-indexed {} files, {} chunks in {:.1}s",
        st.files,
        st.chunks,
        t_wall.as_secs_f64()
    );
    let mut warnings = Vec::new();
    if st.chunks as usize != chunk_texts.len() {
        warnings.push(format!(
            "the indexer made {} chunks, extract+chunk_text here made {}: the raw baseline embeds a different set",
            st.chunks,
            chunk_texts.len()
        ));
    }
    if !st.errors.is_empty() {
        warnings.push(format!(
            "{} files not indexed, e.g. {:?}",
            st.errors.len(),
            st.errors.first()
        ));
    }

    // 3. Embedding through the indexer. The model is loaded first (what the indexer would do
    //    lazily at its first embedding) so that load time is reported on its own.
    let (emb, load_wall, _) = timed(|| FastEmbedder::load(&model));
    let emb = emb.context("loading the embedding model (source /var/cache/peros/env.sh)")?;
    ix.set_embedder(Box::new(emb));
    let la_before = loadavg();
    let (r, e_wall, e_cpu) = timed(|| {
        let last = std::cell::Cell::new(Instant::now());
        ix.catch_up(true, &|_, done, total| {
            if last.get().elapsed() > Duration::from_secs(30) {
                eprintln!("  embedding (indexer) {done}/{total}");
                last.set(Instant::now());
            }
        })
    });
    if let Some(e) = r? {
        bail!("embedding through the indexer failed: {e}");
    }
    let st = ix.status()?;
    let embedded = st.vectors as usize;
    eprintln!(
        "indexer embedded {embedded} chunks in {:.1}s",
        e_wall.as_secs_f64()
    );

    // 4. The raw model on the same chunk texts, batches of 4, nothing else.
    let (raw, raw_load, _) = timed(|| FastEmbedder::load(&model));
    let mut raw = raw?;
    let (r, raw_wall, raw_cpu) = timed(|| -> Result<usize, EmbedError> {
        let mut n = 0;
        let last = Instant::now();
        let mut shown = Instant::now();
        for batch in chunk_texts.chunks(4) {
            let refs: Vec<&str> = batch.iter().map(|s| s.as_str()).collect();
            n += raw.embed(&refs)?.len();
            if shown.elapsed() > Duration::from_secs(30) {
                eprintln!(
                    "  embedding (raw) {n}/{} after {:.0}s",
                    chunk_texts.len(),
                    last.elapsed().as_secs_f64()
                );
                shown = Instant::now();
            }
        }
        Ok(n)
    });
    let raw_n = r?;
    let la_after = loadavg();
    drop(raw);

    let idx_rate = embedded as f64 / e_wall.as_secs_f64();
    let raw_rate = raw_n as f64 / raw_wall.as_secs_f64();
    let idx_rate_cpu = embedded as f64 / e_cpu.as_secs_f64();
    let raw_rate_cpu = raw_n as f64 / raw_cpu.as_secs_f64();

    say(&mut md, "## Indexing\n".into());
    say(
        &mut md,
        "| phase | items | wall s | CPU s | rate (wall) | rate (CPU) |".into(),
    );
    say(&mut md, "|---|---:|---:|---:|---:|---:|".into());
    say(
        &mut md,
        format!(
            "| store writes (create + write_content, one sync) | {written} files | {:.2} | {:.2} | {:.1} MB/s | |",
            w_wall.as_secs_f64(),
            w_cpu.as_secs_f64(),
            corpus_bytes as f64 / 1e6 / w_wall.as_secs_f64()
        ),
    );
    say(
        &mut md,
        format!(
            "| Indexer::open (reconcile) | {} files | {:.2} | | | |",
            st.files,
            o_wall.as_secs_f64()
        ),
    );
    say(
        &mut md,
        format!(
            "| text indexing, catch_up(false) | {} chunks | {:.2} | {:.2} | {:.0} chunks/s, {:.1} MB/s | {:.0} chunks/s |",
            st.chunks,
            t_wall.as_secs_f64(),
            t_cpu.as_secs_f64(),
            st.chunks as f64 / t_wall.as_secs_f64(),
            corpus_bytes as f64 / 1e6 / t_wall.as_secs_f64(),
            st.chunks as f64 / t_cpu.as_secs_f64()
        ),
    );
    say(
        &mut md,
        format!(
            "| model load (FastEmbedder::load) | | {:.2} / {:.2} | | | |",
            load_wall.as_secs_f64(),
            raw_load.as_secs_f64()
        ),
    );
    say(
        &mut md,
        format!(
            "| embedding via indexer, catch_up(true) | {embedded} chunks | {:.1} | {:.1} | {idx_rate:.1} chunks/s | {idx_rate_cpu:.1} chunks/s |",
            e_wall.as_secs_f64(),
            e_cpu.as_secs_f64()
        ),
    );
    say(
        &mut md,
        format!(
            "| **baseline**: raw model, embed() in batches of 4 | {raw_n} chunks | {:.1} | {:.1} | {raw_rate:.1} chunks/s | {raw_rate_cpu:.1} chunks/s |",
            raw_wall.as_secs_f64(),
            raw_cpu.as_secs_f64()
        ),
    );
    say(
        &mut md,
        format!(
            "\n**Embedding throughput, indexing / raw: {:.3} (wall), {:.3} (CPU time)** (goal ≥ 0.9). Load average before/after the two embedding phases: {la_before} / {la_after}.\n",
            idx_rate / raw_rate,
            idx_rate_cpu / raw_rate_cpu
        ),
    );

    // 5. Questions in each mode.
    let text = ask_all(&ix, &qs, Mode::Text)?;
    let sem = ask_all(&ix, &qs, Mode::Semantic)?;
    let hyb = ask_all(&ix, &qs, Mode::Hybrid)?;
    let rrf = rrf_what_if(&ix, &qs)?;

    // 6. Write → searchable, with the real model (small corpus).
    let fresh = fresh_samples(&store, &ix, args.fresh, true)?;
    drop(ix);

    say(
        &mut md,
        "## Retrieval quality (top 10 per question)\n".into(),
    );
    say(
        &mut md,
        format!(
            "A hit is the expected page's path among the results; {} questions; latency is one `Indexer::search` call (semantic and hybrid include embedding the query with the real model).\n",
            qs.len()
        ),
    );
    say(&mut md, MODE_HEADER.into());
    say(&mut md, mode_row("text", &text));
    say(&mut md, mode_row("semantic", &sem));
    say(&mut md, mode_row("hybrid (w = 0.6, default)", &hyb));
    say(
        &mut md,
        format!(
            "| *what-if, not a product mode*: RRF (k = 60) of the text and semantic top 50 | {:.3} | {:.3} | {:.3} | | |",
            rrf.recall_at(5),
            rrf.recall_at(10),
            rrf.mrr()
        ),
    );
    let best_single = |f: &dyn Fn(&ModeResult) -> f64| f(&text).max(f(&sem));
    say(
        &mut md,
        format!(
            "\n**Hybrid / better of text and semantic: recall@5 {:.3}, MRR@10 {:.3}** (goal ≥ 1.0).\n",
            hyb.recall_at(5) / best_single(&|r| r.recall_at(5)).max(1e-9),
            hyb.mrr() / best_single(&|r| r.mrr()).max(1e-9)
        ),
    );
    for (name, r) in [("text", &text), ("semantic", &sem), ("hybrid", &hyb)] {
        for n in &r.notes {
            say(&mut md, format!("Note from {name} search: {n}  "));
        }
    }

    // 7. Hybrid weights, each on a freshly opened indexer over the same directories.
    say(&mut md, "## Hybrid semantic_weight\n".into());
    say(
        &mut md,
        "Each row re-opens the index (its HNSW graph is rebuilt from the stored vectors by a parallel insert, so semantic neighbours can differ slightly between rows); the semantic-only row of each re-open is shown for comparison.\n".into(),
    );
    say(
        &mut md,
        "| semantic_weight | recall@5 | recall@10 | MRR@10 | p50 ms | p99 ms | semantic-only MRR@10 (same open) |\n|---|---:|---:|---:|---:|---:|---:|".into(),
    );
    let mut best: Option<(f32, f64, f64)> = None;
    let mut per_weight = Vec::new();
    let mut reopen = Vec::new();
    for &w in &args.weights {
        let (ix, open_wall, _) =
            timed(|| Indexer::open(store.clone(), model_options(index_dir.clone(), w)));
        let ix = ix?;
        reopen.push(open_wall);
        ix.set_embedder(Box::new(FastEmbedder::load(&model)?));
        let h = ask_all(&ix, &qs, Mode::Hybrid)?;
        let s = ask_all(&ix, &qs, Mode::Semantic)?;
        drop(ix);
        say(
            &mut md,
            format!(
                "| {w:.2} | {:.3} | {:.3} | {:.3} | {:.1} | {:.1} | {:.3} |",
                h.recall_at(5),
                h.recall_at(10),
                h.mrr(),
                pct_ms(&h.latencies, 50.0),
                pct_ms(&h.latencies, 99.0),
                s.mrr()
            ),
        );
        let key = (h.mrr(), h.recall_at(5));
        if best.is_none_or(|b| key > (b.1, b.2)) {
            best = Some((w, key.0, key.1));
        }
        per_weight.push((w, h));
    }
    say(
        &mut md,
        format!(
            "\n`Indexer::open` of this index ({embedded} vectors: the HNSW graph is rebuilt at every open) took p50 {:.2} s, max {:.2} s.",
            pct_ms(&reopen, 50.0) / 1000.0,
            pct_ms(&reopen, 100.0) / 1000.0
        ),
    );
    if let Some((w, mrr, r5)) = best {
        say(
            &mut md,
            format!(
                "\n**Best weight: {w:.2}** (MRR@10 {mrr:.3}, recall@5 {r5:.3}; ranked by MRR@10, then recall@5). Text-only MRR@10 {:.3}, semantic-only {:.3}.\n",
                text.mrr(),
                sem.mrr()
            ),
        );
    }

    // 8. Write → searchable.
    say(
        &mut md,
        "## Write → searchable (real model, this corpus)\n".into(),
    );
    md.push_str(&fresh);
    println!("{fresh}");

    // 9. Per question.
    say(&mut md, "## Per question\n".into());
    say(
        &mut md,
        "Rank of the expected page in the top 10 (– = not found).\n\n<details><summary>ranks</summary>\n".into(),
    );
    let mut head = "| question | page | text | semantic | hybrid 0.6 |".to_string();
    let mut sep = "|---|---|---:|---:|---:|".to_string();
    for (w, _) in &per_weight {
        head.push_str(&format!(" h {w:.1} |"));
        sep.push_str("---:|");
    }
    say(&mut md, head);
    say(&mut md, sep);
    let show = |r: Option<usize>| r.map(|r| r.to_string()).unwrap_or_else(|| "–".into());
    for (i, q) in qs.iter().enumerate() {
        let mut row = format!(
            "| {} | {} | {} | {} | {} |",
            q.text,
            q.page,
            show(text.ranks[i]),
            show(sem.ranks[i]),
            show(hyb.ranks[i])
        );
        for (_, h) in &per_weight {
            row.push_str(&format!(" {} |", show(h.ranks[i])));
        }
        say(&mut md, row);
    }
    say(&mut md, "\n</details>\n".into());
    for w in warnings {
        say(&mut md, format!("Warning: {w}  "));
    }
    say(
        &mut md,
        format!(
            "Peak RSS (VmHWM) of the quality run: {:.0} MiB (two models loaded at times). Total run time {:.0} s.\n",
            proc_status_mib("VmHWM"),
            started.elapsed().as_secs_f64()
        ),
    );
    if args.keep {
        let kept = tmp.keep();
        eprintln!("kept {}", kept.display());
    }
    Ok(md)
}

/// Writes `k` new files, each with a unique word, indexes each alone and times until a text
/// search finds it; with `embed`, also times embedding its chunk (real model). Markdown table.
fn fresh_samples(store: &Store, ix: &Indexer, k: usize, embed: bool) -> Result<String> {
    let dir = mkdir(store, ROOT_INO, "fresh")?;
    let (mut write, mut index, mut search, mut total, mut emb) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut misses = 0;
    for i in 0..k {
        let word = format!("freshword{i}q{}", i * 7919 % 1000);
        let body = format!(
            "Note {i}: the quarterly review mentions {word} together with the budget for the new storage cluster.\n"
        );
        let t0 = Instant::now();
        let ino = write_file(store, dir, &format!("note-{i}.txt"), body.as_bytes())?;
        let t1 = Instant::now();
        ix.index_batch(&[ino])?;
        let t2 = Instant::now();
        let mut found = false;
        for _ in 0..100 {
            if ix
                .search(&word, Mode::Text, 5)?
                .hits
                .iter()
                .any(|h| h.ino == ino)
            {
                found = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let t3 = Instant::now();
        if !found {
            misses += 1;
        }
        write.push(t1 - t0);
        index.push(t2 - t1);
        search.push(t3 - t2);
        total.push(t3 - t0);
        if embed {
            let t = Instant::now();
            while ix.embed_some(16)? > 0 {}
            emb.push(t.elapsed());
        }
    }
    let row = |name: &str, v: &[Duration]| {
        format!(
            "| {name} | {:.1} | {:.1} | {:.1} |\n",
            pct_ms(v, 50.0),
            pct_ms(v, 95.0),
            pct_ms(v, 100.0)
        )
    };
    let mut s = format!(
        "{k} files, each written (store create + write_content, not durable: as under a mount), then `index_batch(&[ino])`, then `search(word, text)` until the file is a hit; in-process, so this is the indexing path without the daemon's queue wake-up.{}\n\n| step | p50 ms | p95 ms | max ms |\n|---|---:|---:|---:|\n",
        if misses > 0 {
            format!(" **{misses} of {k} were never found.**")
        } else {
            String::new()
        }
    );
    s += &row("store write", &write);
    s += &row("index_batch", &index);
    s += &row("search until found", &search);
    s += &row("**write → text-searchable**", &total);
    if embed {
        s += &row(
            "then embed_some until the queue is empty (vector ready)",
            &emb,
        );
    }
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// Scale run: synthetic chunks, stand-in embedder

/// STAND-IN EMBEDDER, used only by `--scale` to fill the vector index quickly: signed feature
/// hashing of lowercased words into 384 dimensions, L2-normalised. Deterministic and about
/// 1000× faster than the real model, so 100k chunks take seconds instead of ~30 min on 2
/// cores. Its vectors have the right shape (dimension, norm, a spread similar to bag-of-words
/// similarity), which is what vector-search latency depends on; their ranking quality is
/// meaningless and is not measured.
struct HashingEmbedder;

const DIM: usize = 384;

impl Embedder for HashingEmbedder {
    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts.iter().map(|t| hash_vector(t)).collect())
    }
    fn dim(&self) -> usize {
        DIM
    }
}

fn hash_vector(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; DIM];
    for w in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        // FNV-1a over the lowercased word.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for c in w.chars().flat_map(|c| c.to_lowercase()) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        let sign = if (h >> 63) == 0 { 1.0 } else { -1.0 };
        v[(h % DIM as u64) as usize] += sign;
    }
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    } else {
        v[0] = 1.0;
    }
    v
}

/// xorshift64*: deterministic perturbation of the synthetic corpus.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Synthetic file `i`: a window of 2–10 KB of whole lines from a man page picked at random,
/// with about 15 % of its words replaced by random corpus words, prefixed by a line naming the
/// copy. Small files like these (about 5 chunks each) also exercise per-file costs.
fn synth_file(i: usize, pages: &[Page], vocab: &[String], rng: &mut Rng) -> (String, String) {
    let p = &pages[(rng.next() % pages.len() as u64) as usize];
    let src = String::from_utf8_lossy(&p.bytes);
    let lines: Vec<&str> = src.lines().collect();
    let want = 2048 + (rng.next() % 8192) as usize;
    let mut at = (rng.next() % lines.len().max(1) as u64) as usize;
    let mut out = String::with_capacity(want + 256);
    out.push_str(&format!("synthetic note {i}, after {}\n", p.name));
    let mut taken = 0;
    while out.len() < want && taken < 4 * lines.len().max(1) {
        let line = lines.get(at % lines.len().max(1)).copied().unwrap_or("");
        at += 1;
        taken += 1;
        // Keep the indentation of the line, perturb its words.
        let indent = line.len() - line.trim_start().len();
        out.push_str(&line[..indent]);
        let mut first = true;
        for w in line.split_whitespace() {
            if !first {
                out.push(' ');
            }
            first = false;
            if rng.next() % 100 < 15 {
                out.push_str(&vocab[(rng.next() % vocab.len() as u64) as usize]);
            } else {
                out.push_str(w);
            }
        }
        out.push('\n');
    }
    (format!("{:06}-{}.txt", i, p.name.replace('.', "_")), out)
}

struct Stage {
    files: usize,
    chunks: u64,
    text_index: Duration,
    /// Size of state.redb after text indexing and after vector indexing, bytes.
    redb_after_text: u64,
    redb_after_vectors: u64,
    vector_index: Duration,
    write: Duration,
    modes: Vec<(&'static str, Vec<Duration>)>,
    /// `Indexer::status()` (called by every semantic/hybrid search).
    status: Vec<Duration>,
    rss: f64,
    hwm: f64,
}

fn scale_run(args: &Args, target_chunks: usize) -> Result<String> {
    let started = Instant::now();
    let pages = load_corpus(&args.corpus, args.limit_pages)?;
    let qs = load_questions(&args.questions)?;
    let vocab: Vec<String> = {
        let mut set = BTreeSet::new();
        for p in &pages {
            for w in String::from_utf8_lossy(&p.bytes).split_whitespace() {
                if w.len() >= 3 && w.len() <= 20 && w.chars().all(|c| c.is_alphabetic()) {
                    set.insert(w.to_lowercase());
                }
            }
        }
        set.into_iter().collect()
    };
    let tmp = tempfile::Builder::new()
        .prefix("peros-search-scale-")
        .tempdir_in(&args.work)?;
    let store = open_store(&tmp.path().join("store"))?;
    // As under a mount: namespace commits without fsync, one sync per stage.
    store.set_lazy_durability(true);
    let opts = Options::new(tmp.path().join("index"));
    let chunk_opts = Options::new(PathBuf::new());
    let root = mkdir(&store, ROOT_INO, "scale")?;
    let mut subdirs = Vec::new();
    for d in 0..100 {
        subdirs.push(mkdir(&store, root, &format!("d{d:02}"))?);
    }

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut file_i = 0usize;
    let mut made_chunks = 0usize;
    let mut text_bytes = 0usize;
    let targets = [target_chunks / 10, target_chunks];
    let mut ix: Option<Arc<Indexer>> = None;
    let mut stages: Vec<Stage> = Vec::new();
    for &target in &targets {
        // Write files until the chunk count (as the indexer will cut them) reaches the target.
        let t = Instant::now();
        while made_chunks < target {
            let (name, text) = synth_file(file_i, &pages, &vocab, &mut rng);
            made_chunks += chunks_of(&name, text.as_bytes(), &chunk_opts).len();
            text_bytes += text.len();
            write_file(
                &store,
                subdirs[file_i % subdirs.len()],
                &name,
                text.as_bytes(),
            )?;
            file_i += 1;
            if file_i.is_multiple_of(1000) {
                eprintln!("  wrote {file_i} files, {made_chunks} chunks");
            }
        }
        store.sync()?;
        let write = t.elapsed();
        let ix = match &ix {
            Some(i) => {
                i.reconcile()?;
                i.clone()
            }
            None => {
                let i = Indexer::open(store.clone(), Options::new(opts.dir.clone()))?;
                i.set_embedder(Box::new(HashingEmbedder));
                i.set_query_embedder(Box::new(HashingEmbedder));
                ix = Some(i.clone());
                i
            }
        };
        let redb_size = || {
            std::fs::metadata(opts.dir.join("state.redb"))
                .map(|m| m.len())
                .unwrap_or(0)
        };
        let (r, text_index, _) = timed(|| ix.catch_up(false, &|_, _, _| {}));
        r?;
        let redb_after_text = redb_size();
        let (r, vector_index, _) = timed(|| ix.catch_up(true, &|_, _, _| {}));
        if let Some(e) = r? {
            bail!("stand-in embedding failed: {e}");
        }
        let redb_after_vectors = redb_size();
        let st = ix.status()?;
        eprintln!(
            "stage: {} files, {} chunks, {} vectors; text {:.1}s, vectors {:.1}s",
            st.files,
            st.chunks,
            st.vectors,
            text_index.as_secs_f64(),
            vector_index.as_secs_f64()
        );
        let mut modes = Vec::new();
        for (name, mode) in [
            ("text", Mode::Text),
            ("semantic", Mode::Semantic),
            ("hybrid", Mode::Hybrid),
        ] {
            ix.search("warm up the searcher", mode, 10)?;
            let mut lat = Vec::new();
            for _ in 0..args.repeats {
                for q in &qs {
                    let t = Instant::now();
                    ix.search(&q.text, mode, 10)?;
                    lat.push(t.elapsed());
                }
            }
            modes.push((name, lat));
        }
        let mut status = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            ix.status()?;
            status.push(t.elapsed());
        }
        stages.push(Stage {
            files: st.files as usize,
            chunks: st.chunks,
            text_index,
            redb_after_text,
            redb_after_vectors,
            vector_index,
            write,
            modes,
            status,
            rss: proc_status_mib("VmRSS"),
            hwm: proc_status_mib("VmHWM"),
        });
    }
    let ix = ix.expect("at least one stage");
    let fresh = fresh_samples(&store, &ix, args.fresh, false)?;
    let hwm_end = proc_status_mib("VmHWM");
    let index_bytes = dir_size(&opts.dir);
    let text_dir_bytes = dir_size(&opts.dir.join("text"));
    let store_bytes = dir_size(&tmp.path().join("store"));
    let vectors_n = ix.status()?.vectors;
    drop(ix);
    // What a command without a daemon pays: open (vector graph rebuilt) and one search.
    let (ix, reopen, reopen_cpu) =
        timed(|| Indexer::open(store.clone(), Options::new(opts.dir.clone())));
    let ix = ix?;
    ix.set_embedder(Box::new(HashingEmbedder));
    ix.set_query_embedder(Box::new(HashingEmbedder));
    let t = Instant::now();
    ix.search(&qs[0].text, Mode::Hybrid, 10)?;
    let cold_search = t.elapsed();
    drop(ix);

    // What the real model adds to a semantic/hybrid query: embedding the question text.
    let model_line = match FastEmbedder::load(&peros_indexer::ModelPaths::from_env()) {
        Ok(mut m) => {
            let _ = m.embed(&["warm up"]);
            let mut lat = Vec::new();
            for q in &qs {
                let t = Instant::now();
                m.embed(&[q.text.as_str()])?;
                lat.push(t.elapsed());
            }
            format!(
                "Embedding one question with the real model (what semantic and hybrid queries add to the stand-in figures): p50 {:.1} ms, p99 {:.1} ms.",
                pct_ms(&lat, 50.0),
                pct_ms(&lat, 99.0)
            )
        }
        Err(e) => format!("Real model not available ({e}): query-embedding cost not measured."),
    };

    let mut md = String::new();
    let mut say = |s: String| {
        println!("{s}");
        md.push_str(&s);
        md.push('\n');
    };
    say(format!(
        "## Query latency at scale (`--scale {target_chunks}`)\n"
    ));
    say(format!("Machine: {}.  ", machine_line()));
    say(format!(
        "Corpus: {} synthetic files, {:.0} MB of text: windows of 2–10 KB of the {} man pages with 15 % of their words replaced by random corpus words. \
         Vectors come from **`HashingEmbedder`, a deterministic stand-in** (feature hashing, 384-d, L2-normalised) so that the vector index can be filled \
         in minutes: latency is measured here, not ranking quality. {} questions × {} passes per mode, after one warm-up query; the baseline is the same \
         measurement at about a tenth of the chunks, in the same process.\n",
        file_i,
        text_bytes as f64 / 1e6,
        pages.len(),
        qs.len(),
        args.repeats
    ));
    say("| chunks | files | mode | p50 ms | p95 ms | p99 ms | max ms |".into());
    say("|---:|---:|---|---:|---:|---:|---:|".into());
    for s in &stages {
        for (name, lat) in &s.modes {
            say(format!(
                "| {} | {} | {name} | {:.1} | {:.1} | {:.1} | {:.1} |",
                s.chunks,
                s.files,
                pct_ms(lat, 50.0),
                pct_ms(lat, 95.0),
                pct_ms(lat, 99.0),
                pct_ms(lat, 100.0)
            ));
        }
    }
    if stages.len() == 2 {
        let (a, b) = (&stages[0], &stages[1]);
        let ratios: Vec<String> = a
            .modes
            .iter()
            .zip(&b.modes)
            .map(|((n, la), (_, lb))| format!("{n} {:.2}", pct_ms(lb, 50.0) / pct_ms(la, 50.0)))
            .collect();
        say(format!(
            "\n**p50 at {} chunks / p50 at {} chunks ({:.1}× the data): {}** (goal: p50 < 30 ms at 100k).\n",
            b.chunks,
            a.chunks,
            b.chunks as f64 / a.chunks.max(1) as f64,
            ratios.join(", ")
        ));
    }
    say(model_line);
    for s in &stages {
        say(format!(
            "`Indexer::status()`, which every semantic and hybrid search calls (it reads every file's state to count errors), at {} files: p50 {:.1} ms.  ",
            s.files,
            pct_ms(&s.status, 50.0)
        ));
    }
    say("\n| stage | store writes s | text indexing s | chunks/s | vectors (stand-in) s | chunks/s | state.redb MB after text / after vectors | VmRSS MiB | VmHWM MiB |".into());
    say("|---:|---:|---:|---:|---:|---:|---:|---:|---:|".into());
    let mut prev = 0u64;
    for s in &stages {
        let n = (s.chunks - prev) as f64;
        prev = s.chunks;
        say(format!(
            "| {} chunks | {:.1} | {:.1} | {:.0} | {:.1} | {:.0} | {:.0} / {:.0} | {:.0} | {:.0} |",
            s.chunks,
            s.write.as_secs_f64(),
            s.text_index.as_secs_f64(),
            n / s.text_index.as_secs_f64(),
            s.vector_index.as_secs_f64(),
            n / s.vector_index.as_secs_f64(),
            s.redb_after_text as f64 / 1e6,
            s.redb_after_vectors as f64 / 1e6,
            s.rss,
            s.hwm
        ));
    }
    say(format!(
        "\nVector indexing with the stand-in measures the indexer's own per-chunk cost (queue, redb, HNSW insert) without the model. \
         **Peak RSS (VmHWM) {:.0} MiB** at the end; index directory {:.0} MB (of which tantivy {:.0} MB; 384-d f32 vectors alone are {:.0} MB), store {:.0} MB on disk.\n",
        hwm_end,
        index_bytes as f64 / 1e6,
        text_dir_bytes as f64 / 1e6,
        vectors_n as f64 * DIM as f64 * 4.0 / 1e6,
        store_bytes as f64 / 1e6
    ));
    say(format!(
        "**Re-opening the index** (what `peros search`/`status` without a daemon, and the daemon at start, do): `Indexer::open` took {:.1} s wall, {:.1} s CPU with {vectors_n} vectors (the HNSW graph is rebuilt from every stored vector); the first hybrid search after it {:.1} ms.\n",
        reopen.as_secs_f64(),
        reopen_cpu.as_secs_f64(),
        cold_search.as_secs_f64() * 1000.0
    ));
    say(format!(
        "### Write → searchable at {} chunks\n",
        stages.last().map(|s| s.chunks).unwrap_or(0)
    ));
    say(fresh);
    say(format!(
        "Total run time {:.0} s.\n",
        started.elapsed().as_secs_f64()
    ));
    if args.keep {
        let kept = tmp.keep();
        eprintln!("kept {}", kept.display());
    }
    Ok(md)
}

fn dir_size(p: &Path) -> u64 {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => n += dir_size(&e.path()),
                Ok(_) => n += e.metadata().map(|m| m.len()).unwrap_or(0),
                Err(_) => {}
            }
        }
    }
    n
}

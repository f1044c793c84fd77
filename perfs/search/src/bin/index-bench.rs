//! `index-bench`: the semantic index at scale (issue "The semantic index at the scale of a
//! real home directory"). Release build; every figure is a ratio against a baseline measured
//! in the same run, on the rendered man pages of `perfs/search` (see its README).
//!
//! Parts:
//! 1. Throughput: the indexer embedding the corpus (`catch_up`, embed threads = all cores)
//!    against the raw model on the same distinct passages at the same thread count and batch
//!    (goal ≥ 0.9), and against the previous pipeline's settings (1000-byte chunks, one
//!    thread, batches of 4 in file order) on a sample of the same corpus.
//! 2. Compute once: passages embedded after editing one paragraph of the longest page, after
//!    appending a line, and after copying a page.
//! 3. Open: `Indexer::open` time and RSS growth with the corpus's vectors, and the top-10 of
//!    every question before and after the reopen (identical: the graph is loaded, not rebuilt).
//! 4. 100k: a graph of 100,000 vectors made from the corpus's real vectors (each real vector
//!    plus Gaussian noise of σ = 0.02 per dimension, renormalised: cos ≈ 0.8 to its source),
//!    built, dumped, and loaded: load time and RSS growth, search p50/p99 (k = 200).
//! 5. Backlog: search p50/p99 (semantic, distinct queries, so no cached query vector) while
//!    the background worker embeds ≥ 5,000 queued passages, against idle.
//!
//! Usage: `cargo run --release -p peros-perfs-search --bin index-bench -- [--corpus DIR]
//! [--questions FILE] [--out FILE] [--work DIR] [--skip-raw] [--compare-threads]
//! [--open-only [--graph-100k]] [--backlog-only]`. `--backlog-only` runs part 5 alone, on an
//! index of the first 60 pages (a few minutes). `--open-only` runs only the table of opening the vector index
//! at 10k and 100k vectors (a few minutes; with `--graph-100k` the 100k graph is built too).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use peros_crypto::Keyring;
use peros_indexer::vectors::VectorIndex;
use peros_indexer::{chunk, extract, passages, Embedder, FastEmbedder, Indexer, Mode, Options};
use peros_store::{Ino, Kind, ObjectStoreBackend, Store, StoreOptions, ROOT_INO};

struct Args {
    corpus: PathBuf,
    questions: PathBuf,
    out: Option<PathBuf>,
    work: PathBuf,
    skip_raw: bool,
    compare_threads: bool,
    open_only: bool,
    backlog_only: bool,
    graph_100k: bool,
}

fn args() -> Result<Args> {
    let mut a = Args {
        corpus: std::env::var_os("SEARCH_CORPUS")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/var/tmp/peros-search-corpus".into()),
        questions: "perfs/search/questions.tsv".into(),
        out: None,
        work: "/var/tmp".into(),
        skip_raw: false,
        compare_threads: false,
        open_only: false,
        backlog_only: false,
        graph_100k: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || it.next().with_context(|| format!("{k} needs a value"));
        match k.as_str() {
            "--corpus" => a.corpus = val()?.into(),
            "--questions" => a.questions = val()?.into(),
            "--out" => a.out = Some(val()?.into()),
            "--work" => a.work = val()?.into(),
            "--skip-raw" => a.skip_raw = true,
            "--compare-threads" => a.compare_threads = true,
            "--open-only" => a.open_only = true,
            "--backlog-only" => a.backlog_only = true,
            "--graph-100k" => a.graph_100k = true,
            other => {
                bail!("unknown option {other} (see the top of perfs/search/src/bin/index-bench.rs)")
            }
        }
    }
    Ok(a)
}

/// `n` vectors made from `real` ones: each real vector in turn, plus N(0, 0.02²) per
/// dimension, renormalised (ids 0..n).
fn scaled(real: &[Vec<f32>], n: usize) -> Vec<(u64, Vec<f32>)> {
    let mut rng = 0x9E3779B97F4A7C15u64;
    let mut gauss = move || {
        // Box–Muller from xorshift.
        let mut u = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng >> 11) as f64 / (1u64 << 53) as f64
        };
        let (a, b) = (u().max(1e-12), u());
        ((-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()) as f32
    };
    (0..n)
        .map(|i| {
            let mut v: Vec<f32> = real[i % real.len()]
                .iter()
                .map(|x| x + 0.02 * gauss())
                .collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            (i as u64, v)
        })
        .collect()
}

/// Opening the flat index at 10k and 100k vectors: what a one-shot command pays, next to
/// loading the HNSW graph (at 10k always; at 100k with `--graph-100k`: building it takes
/// minutes here), and the exact scan's latency.
fn open_at_scale(
    real: &[Vec<f32>],
    work: &Path,
    graph_100k: bool,
    say: &mut dyn FnMut(String),
) -> Result<()> {
    say("## Opening the vector index at scale\n".into());
    say(format!(
        "Vectors made from {} real model vectors of this corpus (+ N(0, 0.02²) per dimension, renormalised). *Open* = `VectorIndex::load` of a saved dump (flat int8 copies; what every command pays). *Graph load* = hnsw_rs loading the saved graph (what every open paid before; now only the daemon, in the background). Exact scan: k=200 over all vectors, 300 queries. Warm page cache (the dump was just written).\n",
        real.len()
    ));
    say("| vectors | open s | RSS +MiB | exact scan p50 ms | p99 ms | graph build s | graph load s | open / graph load |".into());
    say("|---:|---:|---:|---:|---:|---:|---:|---:|".into());
    for n in [10_000usize, 100_000] {
        let big = scaled(real, n);
        let dir = tempfile::Builder::new()
            .prefix("peros-open-bench-")
            .tempdir_in(work)?;
        let with_graph = n <= 10_000 || graph_100k;
        let (build_s, graph_load_s) = if with_graph {
            let t = Instant::now();
            let g = VectorIndex::build(&big);
            let build = t.elapsed().as_secs_f64();
            g.dump(&dir.path().join("g"), 1)?;
            drop(g);
            let t = Instant::now();
            let (g, _) = VectorIndex::load(&dir.path().join("g")).context("loading the dump")?;
            g.wait_graph();
            (Some(build), Some(t.elapsed().as_secs_f64()))
        } else {
            (None, None)
        };
        VectorIndex::from_vectors(&big).dump(&dir.path().join("f"), 1)?;
        drop(big);
        let rss0 = rss_mib();
        let t = Instant::now();
        let (idx, _) = VectorIndex::load(&dir.path().join("f")).context("opening the dump")?;
        let open_s = t.elapsed().as_secs_f64();
        let rss1 = rss_mib();
        let mut lat = Vec::new();
        for i in 0..300 {
            let q = &real[(i * 7) % real.len()];
            let t = Instant::now();
            std::hint::black_box(idx.search(q, 200));
            lat.push(t.elapsed());
        }
        let f = |x: Option<f64>, d: usize| x.map_or("—".to_string(), |v| format!("{v:.d$}"));
        say(format!(
            "| {n} | {open_s:.3} | {:.0} | {:.2} | {:.2} | {} | {} | {} |",
            rss1 - rss0,
            pct_ms(&lat, 50.0),
            pct_ms(&lat, 99.0),
            f(build_s, 1),
            f(graph_load_s, 3),
            graph_load_s.map_or("—".to_string(), |g| format!("{:.3}", open_s / g)),
        ));
    }
    say(String::new());
    Ok(())
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn pct_ms(samples: &[Duration], p: f64) -> f64 {
    let mut v = samples.to_vec();
    v.sort();
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1].as_secs_f64() * 1000.0
}

struct Page {
    path: String,
    bytes: Vec<u8>,
}

fn load_pages(dir: &Path) -> Result<Vec<Page>> {
    let mut out = Vec::new();
    for section in ["man1", "man8"] {
        let d = dir.join(section);
        let mut names: Vec<_> = std::fs::read_dir(&d)
            .with_context(|| format!("{}: run perfs/search/corpus.sh first", d.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".tmp"))
            .collect();
        names.sort();
        for n in names {
            out.push(Page {
                path: format!("{section}/{n}"),
                bytes: std::fs::read(d.join(&n))?,
            });
        }
    }
    if out.is_empty() {
        bail!("{}: empty corpus", dir.display());
    }
    Ok(out)
}

fn questions(path: &Path) -> Result<Vec<String>> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| path.display().to_string())?
        .lines()
        .filter_map(|l| l.split('\t').next())
        .filter(|q| !q.trim().is_empty() && !q.starts_with('#'))
        .map(str::to_string)
        .collect())
}

fn open_store(dir: &Path) -> Result<Arc<Store>> {
    std::fs::create_dir_all(dir.join("meta"))?;
    let backend = ObjectStoreBackend::local(&dir.join("objects"))?;
    Ok(Arc::new(Store::open(
        &dir.join("meta/peros.redb"),
        Arc::new(Keyring::generate()),
        Arc::new(backend),
        StoreOptions::default(),
    )?))
}

fn put(store: &Store, path: &str, bytes: &[u8]) -> Result<Ino> {
    let (uid, gid) = (0, 0);
    let mut parent = ROOT_INO;
    let parts: Vec<&str> = path.split('/').collect();
    for d in &parts[..parts.len() - 1] {
        parent = match store.lookup(parent, d.as_bytes()) {
            Ok((ino, _)) => ino,
            Err(_) => {
                store
                    .create(parent, d.as_bytes(), Kind::Dir, 0o755, uid, gid, 0, b"")?
                    .0
            }
        };
    }
    let name = parts[parts.len() - 1].as_bytes();
    let ino = match store.lookup(parent, name) {
        Ok((ino, _)) => ino,
        Err(_) => {
            store
                .create(parent, name, Kind::File, 0o644, uid, gid, 0, b"")?
                .0
        }
    };
    store.write_content(ino, &mut &bytes[..], None, false)?;
    Ok(ino)
}

/// Distinct normalised passages the indexer embeds for these pages, with token counts.
fn passages_of(pages: &[Page], opts: &Options) -> Result<Vec<(String, usize)>> {
    let tokens = passages::ModelTokens::load(&opts.model.model_dir.join("tokenizer.json"))
        .map_err(anyhow::Error::msg)?;
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for p in pages {
        let name = p.path.rsplit('/').next().unwrap_or(&p.path);
        let Ok(ex) = extract::extract(name, &p.bytes, opts.max_text_bytes) else {
            continue;
        };
        for c in passages::cut(&ex.text, opts.chunk_tokens - 2, &tokens) {
            let t = passages::normalize(&ex.text[c.offset..c.offset + c.len]);
            if seen.insert(t.clone()) {
                out.push((t, c.tokens + 2));
            }
        }
    }
    Ok(out)
}

/// Ways to use the cores, interleaved round by round on the same texts so that a noisy machine
/// affects each alike: one session with N intra-op threads, N one-thread sessions side by side,
/// and one one-thread session.
fn compare_threads(
    model: &peros_indexer::ModelPaths,
    distinct: &[(String, usize)],
    say: &mut dyn FnMut(String),
) -> Result<()> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut sorted: Vec<&(String, usize)> = distinct.iter().step_by(4).take(960).collect();
    sorted.sort_by_key(|d| d.1);
    let mut wide = FastEmbedder::load_with_threads(model, cores)?;
    let mut one = FastEmbedder::load_with_threads(model, 1)?;
    let mut side: Vec<FastEmbedder> = (0..cores)
        .map(|_| FastEmbedder::load_with_threads(model, 1))
        .collect::<Result<_, _>>()?;
    let mut secs = [0f64; 3];
    let mut tokens = 0usize;
    // Rounds of 8 batches of 8: each way embeds the same round, in turn.
    for round in sorted.chunks(64) {
        tokens += round.iter().map(|d| d.1).sum::<usize>();
        let batches: Vec<Vec<&str>> = round
            .chunks(8)
            .map(|b| b.iter().map(|d| d.0.as_str()).collect())
            .collect();
        let t = Instant::now();
        for b in &batches {
            wide.embed(b)?;
        }
        secs[0] += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for e in side.iter_mut() {
                let (next, batches) = (&next, &batches);
                s.spawn(move || loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(b) = batches.get(i) else { break };
                    e.embed(b).expect("embed");
                });
            }
        });
        secs[1] += t.elapsed().as_secs_f64();
        let t = Instant::now();
        for b in &batches {
            one.embed(b)?;
        }
        secs[2] += t.elapsed().as_secs_f64();
    }
    say(format!(
        "## Using {cores} cores: {} passages, {tokens} tokens, interleaved\n",
        sorted.len()
    ));
    say("| way | s | tokens/s | vs one thread |\n|---|---:|---:|---:|".into());
    for (name, s) in [
        (format!("one session, {cores} intra-op threads"), secs[0]),
        (format!("{cores} one-thread sessions side by side"), secs[1]),
        ("one session, one thread".to_string(), secs[2]),
    ] {
        say(format!(
            "| {name} | {s:.1} | {:.0} | {:.2} |",
            tokens as f64 / s,
            secs[2] / s
        ));
    }
    Ok(())
}

fn main() -> Result<()> {
    let a = args()?;
    let mut md = String::new();
    let mut say = |s: String| {
        println!("{s}");
        md.push_str(&s);
        md.push('\n');
    };
    let pages = load_pages(&a.corpus)?;
    let qs = questions(&a.questions)?;
    let text_bytes: usize = pages.iter().map(|p| p.bytes.len()).sum();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    say("# Semantic index benchmark\n".to_string());
    say(format!(
        "Corpus: {} rendered man pages ({:.1} MB) from {}; {} questions; {cores} cores; load {}.\n",
        pages.len(),
        text_bytes as f64 / 1e6,
        a.corpus.display(),
        qs.len(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    ));
    let tmp = tempfile::Builder::new()
        .prefix("peros-index-bench-")
        .tempdir_in(&a.work)?;
    let store = open_store(&tmp.path().join("store"))?;
    for p in &pages {
        put(&store, &p.path, &p.bytes)?;
    }
    store.sync()?;
    let index_dir = tmp.path().join("index");
    let opts = Options::new(index_dir.clone());
    let model = opts.model.clone();
    let distinct = passages_of(&pages, &opts)?;
    let distinct_tokens: usize = distinct.iter().map(|d| d.1).sum();
    if a.compare_threads {
        return compare_threads(&model, &distinct, &mut say);
    }
    if a.open_only {
        // Real vectors of 2,000 of the corpus's passages, then the scale table only.
        let mut emb = FastEmbedder::load_with_threads(&model, 0)?;
        let texts: Vec<&str> = distinct
            .iter()
            .step_by(3)
            .take(2000)
            .map(|d| d.0.as_str())
            .collect();
        let mut real = Vec::new();
        for batch in texts.chunks(16) {
            real.extend(emb.embed(batch)?);
        }
        open_at_scale(&real, &a.work, a.graph_100k, &mut say)?;
        if let Some(out) = &a.out {
            std::fs::write(out, &md)?;
        }
        return Ok(());
    }

    if a.backlog_only {
        // Part 5 alone: an index of the first BACKLOG_BASE pages embedded, then the backlog of
        // every page (a few minutes instead of the whole corpus's embedding).
        const BACKLOG_BASE: usize = 60;
        let base = tempfile::Builder::new()
            .prefix("peros-index-bench-")
            .tempdir_in(&a.work)?;
        let store = open_store(&base.path().join("store"))?;
        for p in pages.iter().take(BACKLOG_BASE) {
            put(&store, &p.path, &p.bytes)?;
        }
        store.sync()?;
        let ix = Indexer::open(store.clone(), Options::new(base.path().join("index")))?;
        ix.catch_up(false, &|_, _, _| {})?;
        ix.set_embedder(Box::new(FastEmbedder::load_with_threads(&model, 0)?));
        if let Some(e) = ix.catch_up(true, &|_, _, _| {})? {
            bail!("embedding failed: {e}");
        }
        say(format!(
            "Part 5 only (`--backlog-only`): the first {BACKLOG_BASE} pages embedded ({} vectors) before the backlog.\n",
            ix.status()?.embedded
        ));
        backlog_part(&ix, &store, &pages, &qs, &mut say)?;
        ix.shutdown();
        if let Some(out) = &a.out {
            std::fs::write(out, &md)?;
        }
        return Ok(());
    }

    // 1. Throughput.
    let ix = Indexer::open(store.clone(), Options::new(index_dir.clone()))?;
    let t = Instant::now();
    ix.catch_up(false, &|_, _, _| {})?;
    let text_secs = t.elapsed().as_secs_f64();
    // Load the model first (what the worker does lazily) so load time is not in the rate.
    ix.set_embedder(Box::new(FastEmbedder::load_with_threads(&model, 0)?));
    let t = Instant::now();
    if let Some(e) = ix.catch_up(true, &|_, done, total| {
        if done % 512 < 64 {
            eprintln!("  indexer embedding {done}/{total}");
        }
    })? {
        bail!("embedding failed: {e}");
    }
    let idx_secs = t.elapsed().as_secs_f64();
    let st = ix.status()?;
    say("## 1. Throughput (release, warm page cache, cold model caches)\n".into());
    say(format!(
        "Indexer: {} files, {} passages ({} distinct texts, {} tokens) in {:.1} s text + {:.1} s embedding.\n",
        st.files, st.chunks, st.embedded, distinct_tokens, text_secs, idx_secs
    ));
    say("| pipeline | passages | tokens | s | passages/s | tokens/s | MB text/s | ratio |".into());
    say("|---|---:|---:|---:|---:|---:|---:|---:|".into());
    let idx_tps = distinct_tokens as f64 / idx_secs;
    let idx_row = format!(
        "| indexer (all cores, ≤{} tokens, batch by length) | {} | {} | {:.1} | {:.1} | {:.0} | {:.3} |",
        opts.chunk_tokens,
        st.embedded,
        distinct_tokens,
        idx_secs,
        st.embedded as f64 / idx_secs,
        idx_tps,
        text_bytes as f64 / 1e6 / (idx_secs + text_secs)
    );
    if a.skip_raw {
        say(format!("{idx_row} – |"));
    } else {
        // Raw model, same texts, same threads, same batching (sorted by length, batches of 8).
        let mut raw = FastEmbedder::load_with_threads(&model, 0)?;
        let mut sorted: Vec<&(String, usize)> = distinct.iter().collect();
        sorted.sort_by_key(|d| d.1);
        let t = Instant::now();
        for b in sorted.chunks(8) {
            let texts: Vec<&str> = b.iter().map(|d| d.0.as_str()).collect();
            raw.embed(&texts)?;
        }
        let raw_secs = t.elapsed().as_secs_f64();
        let raw_tps = distinct_tokens as f64 / raw_secs;
        say(format!("{idx_row} {:.2} |", idx_tps / raw_tps));
        say(format!(
            "| raw model, same passages, same threads and batches | {} | {} | {:.1} | {:.1} | {:.0} | {:.3} | 1.00 |",
            distinct.len(),
            distinct_tokens,
            raw_secs,
            distinct.len() as f64 / raw_secs,
            raw_tps,
            text_bytes as f64 / 1e6 / raw_secs
        ));
        drop(raw);
        // The previous pipeline's settings on a sample: 1000-byte chunks (100-byte overlap),
        // one thread, batches of 4, file order.
        let mut old = FastEmbedder::load_with_threads(&model, 1)?;
        let mut sample: Vec<String> = Vec::new();
        let mut sample_bytes = 0usize;
        for p in pages.iter().step_by(8) {
            let name = p.path.rsplit('/').next().unwrap_or(&p.path);
            if let Ok(ex) = extract::extract(name, &p.bytes, opts.max_text_bytes) {
                sample_bytes += ex.text.len();
                sample.extend(
                    chunk::chunk_text(&ex.text, 1000, 125)
                        .into_iter()
                        .map(|c| c.text),
                );
            }
        }
        let t = Instant::now();
        for b in sample.chunks(4) {
            let texts: Vec<&str> = b.iter().map(|s| s.as_str()).collect();
            old.embed(&texts)?;
        }
        let old_secs = t.elapsed().as_secs_f64();
        let old_mbps = sample_bytes as f64 / 1e6 / old_secs;
        say(format!(
            "| previous settings (1 thread, 1000-byte chunks, batch 4), every 8th page | {} | – | {:.1} | {:.1} | – | {:.3} | {:.2} (MB/s vs indexer) |",
            sample.len(),
            old_secs,
            sample.len() as f64 / old_secs,
            old_mbps,
            old_mbps / (text_bytes as f64 / 1e6 / (idx_secs + text_secs))
        ));
    }
    say(String::new());

    // 2. Compute once.
    say("## 2. Passages embedded per edit\n".into());
    say("| edit | passages in file | embedded |".into());
    say("|---|---:|---:|".into());
    let longest = pages.iter().max_by_key(|p| p.bytes.len()).expect("pages");
    let text = String::from_utf8_lossy(&longest.bytes).into_owned();
    let n_passages = passages_of(std::slice::from_ref(longest), &opts)?.len();
    let mut edit = |label: &str, path: &str, bytes: &[u8]| -> Result<()> {
        let before = ix.status()?.embedded;
        put(&store, path, bytes)?;
        ix.reconcile()?;
        ix.catch_up(true, &|_, _, _| {})?;
        let after = ix.status()?.embedded;
        say(format!("| {label} | {n_passages} | {} |", after - before));
        Ok(())
    };
    let mid = text.len() / 2;
    let at = mid + text[mid..].find("\n\n").unwrap_or(0);
    let para_end = at + 2 + text[at + 2..].find("\n\n").unwrap_or(0);
    let edited = format!(
        "{}\n\nThis paragraph was rewritten by the benchmark to change one passage of the page.{}",
        &text[..at],
        &text[para_end..]
    );
    edit(
        &format!(
            "rewrite one paragraph of {} ({} KB)",
            longest.path,
            text.len() / 1000
        ),
        &longest.path,
        edited.as_bytes(),
    )?;
    let appended = format!("{edited}\nOne more line at the end.\n");
    edit("append one line", &longest.path, appended.as_bytes())?;
    edit(
        "copy the page to a new file",
        "copies/copy-of-longest",
        appended.as_bytes(),
    )?;
    say(String::new());

    // 3. Open.
    let before: Vec<Vec<String>> = qs
        .iter()
        .map(|q| {
            ix.search(q, Mode::Semantic, 10)
                .map(|o| o.hits.into_iter().map(|h| h.path).collect())
        })
        .collect::<Result<_, _>>()?;
    let vectors = ix.status()?.vectors;
    ix.shutdown();
    drop(ix);
    let rss0 = rss_mib();
    let t = Instant::now();
    let ix = Indexer::open(store.clone(), Options::new(index_dir.clone()))?;
    let open_secs = t.elapsed().as_secs_f64();
    let rss1 = rss_mib();
    ix.set_query_embedder(Box::new(FastEmbedder::load(&model)?));
    let after: Vec<Vec<String>> = qs
        .iter()
        .map(|q| {
            ix.search(q, Mode::Semantic, 10)
                .map(|o| o.hits.into_iter().map(|h| h.path).collect())
        })
        .collect::<Result<_, _>>()?;
    let same = before.iter().zip(&after).filter(|(a, b)| a == b).count();
    say("## 3. Reopening the index\n".into());
    say(format!(
        "`Indexer::open` with {vectors} vectors: {:.3} s, RSS +{:.0} MiB; semantic top-10 identical before and after for {same} of {} questions.\n",
        open_secs,
        rss1 - rss0,
        qs.len()
    ));

    // 4. 100k vectors from the real ones.
    let real: Vec<Vec<f32>> = (1..200_000u64)
        .filter_map(|id| ix.chunk_vector(id).ok().flatten())
        .take(20_000)
        .collect();
    if real.is_empty() {
        bail!("no vectors to scale from");
    }
    let n = 100_000usize;
    let big = scaled(&real, n);
    let t = Instant::now();
    let graph = VectorIndex::build(&big);
    let build_secs = t.elapsed().as_secs_f64();
    let gdir = tmp.path().join("graph-100k");
    let t = Instant::now();
    graph.dump(&gdir, 1)?;
    let dump_secs = t.elapsed().as_secs_f64();
    drop(graph);
    let rss0 = rss_mib();
    let t = Instant::now();
    let (graph, _) = VectorIndex::load(&gdir).context("loading the 100k dump")?;
    let load_secs = t.elapsed().as_secs_f64();
    let rss1 = rss_mib();
    let mut lat = Vec::new();
    for i in 0..500 {
        let q = &big[(i * 197) % n].1;
        let t = Instant::now();
        std::hint::black_box(graph.search(q, 200));
        lat.push(t.elapsed());
    }
    say("## 4. 100,000 vectors\n".into());
    say(format!(
        "Made from {} real vectors of this corpus (+ N(0, 0.02²) per dimension, renormalised). Build (parallel insert) {:.1} s — what every open paid before — dump {:.2} s, **load {:.3} s** (RSS +{:.0} MiB), ratio load/build {:.3}. Graph search k=200: p50 {:.2} ms, p99 {:.2} ms.\n",
        real.len(),
        build_secs,
        dump_secs,
        load_secs,
        rss1 - rss0,
        load_secs / build_secs,
        pct_ms(&lat, 50.0),
        pct_ms(&lat, 99.0)
    ));
    drop(graph);
    drop(big);

    backlog_part(&ix, &store, &pages, &qs, &mut say)?;
    ix.shutdown();
    if let Some(out) = &a.out {
        std::fs::write(out, &md)?;
        eprintln!("report: {}", out.display());
    }
    Ok(())
}

/// Part 5: semantic search latency while the background worker embeds a backlog of every
/// page again (words of each line reversed, so every passage needs the model), against idle.
fn backlog_part(
    ix: &Arc<Indexer>,
    store: &Arc<Store>,
    pages: &[Page],
    qs: &[String],
    say: &mut impl FnMut(String),
) -> Result<()> {
    let time_queries = |ix: &Indexer, salt: &str| -> Result<Vec<Duration>> {
        let mut v = Vec::new();
        for q in qs.iter().take(40) {
            let q = format!("{q} {salt}");
            let t = Instant::now();
            ix.search(&q, Mode::Semantic, 10)?;
            v.push(t.elapsed());
        }
        Ok(v)
    };
    // One untimed query first: the query model loads on first use.
    ix.search("warm up the query model", Mode::Semantic, 10)?;
    let idle = time_queries(ix, "idle")?;
    // Queue passages that need the model: every page again, with its words shuffled per line.
    let mut queued_files = 0;
    for p in pages.iter() {
        let t = String::from_utf8_lossy(&p.bytes);
        let scrambled: String = t
            .lines()
            .map(|l| {
                let mut w: Vec<&str> = l.split_whitespace().collect();
                w.reverse();
                w.join(" ") + "\n"
            })
            .collect();
        put(store, &format!("backlog/{}", p.path), scrambled.as_bytes())?;
        queued_files += 1;
    }
    ix.reconcile()?;
    ix.catch_up(false, &|_, _, _| {})?;
    let backlog = ix.pending_vectors()?;
    ix.start_workers();
    // Time only once the worker is embedding (model loaded, a first round committed).
    let deadline = Instant::now() + Duration::from_secs(600);
    while ix.pending_vectors()? == backlog && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let before_timed = ix.pending_vectors()?;
    // Rounds commit every few seconds: keep timing (new salts, so no cached query vector)
    // until at least one more round has committed, so the window covers embedding work.
    let mut busy = Vec::new();
    let until = Instant::now() + Duration::from_secs(60);
    for round in 0.. {
        busy.extend(time_queries(ix, &format!("busy {round}"))?);
        if ix.pending_vectors()? < before_timed || Instant::now() > until {
            break;
        }
    }
    let left = ix.pending_vectors()?;
    say(format!(
        "{} passages were embedded while the timed queries ran.",
        before_timed - left
    ));
    say("## 5. Search while embedding a backlog\n".into());
    say(format!(
        "Backlog: {backlog} passages queued ({queued_files} files), {left} still queued after the timed queries. Semantic search, {} distinct queries (no cached query vector; rounds of 40 until the worker committed a round during them), warm page cache:\n",
        busy.len()
    ));
    say("| state | p50 ms | p99 ms |\n|---|---:|---:|".into());
    say(format!(
        "| idle | {:.1} | {:.1} |",
        pct_ms(&idle, 50.0),
        pct_ms(&idle, 99.0)
    ));
    say(format!(
        "| during backlog | {:.1} | {:.1} |",
        pct_ms(&busy, 50.0),
        pct_ms(&busy, 99.0)
    ));
    say(format!(
        "\nRatio p50 backlog/idle: {:.2}.",
        pct_ms(&busy, 50.0) / pct_ms(&idle, 50.0)
    ));
    Ok(())
}

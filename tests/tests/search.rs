//! Search end to end, with the real embedding model (all-MiniLM-L6-v2 through ONNX Runtime; no
//! mocks): live indexing through the mount, semantic search of paraphrases, extraction of every
//! supported type, the query language, search with and without a mount, `peros ask` citations,
//! and recovery of the index after `kill -9`.
//!
//! The model is found through `PEROS_MODEL_DIR` / `ORT_DYLIB_PATH` (or the setup script's
//! cache): `source /var/cache/peros/env.sh` first. The corpus is kept tiny, since embedding
//! runs at about 50 passages a second on a small machine.
//!
//! Every test unmounts on every path (the [`Mounted`] guard), also when an assertion fails.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use peros_tests::*;

// ----- search helpers -----

/// One hit of `peros search --json`.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    score: f64,
    offset: u64,
    snippet: String,
}

/// The hits and note of `peros search --json`, checking that every hit has the documented
/// fields: path, score, offset, snippet.
fn parse_hits(v: &Value, what: &str) -> (Vec<Hit>, Option<String>) {
    let hits = v["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no `hits` array in {v}"));
    let hits = hits
        .iter()
        .map(|h| {
            let path = h["path"]
                .as_str()
                .unwrap_or_else(|| panic!("{what}: hit without a string `path`: {h}"));
            let score = h["score"]
                .as_f64()
                .unwrap_or_else(|| panic!("{what}: hit without a numeric `score`: {h}"));
            assert!(score.is_finite(), "{what}: score is not finite: {h}");
            let offset = h["offset"]
                .as_u64()
                .unwrap_or_else(|| panic!("{what}: hit without an integer `offset`: {h}"));
            let snippet = h["snippet"]
                .as_str()
                .unwrap_or_else(|| panic!("{what}: hit without a string `snippet`: {h}"));
            Hit {
                path: path.to_string(),
                score,
                offset,
                snippet: snippet.to_string(),
            }
        })
        .collect();
    let note = v["note"].as_str().map(str::to_string);
    (hits, note)
}

/// `peros search --json --mode MODE --limit LIMIT -- QUERY`: the hits and the note.
fn search_full(env: &Env, query: &str, mode: &str, limit: usize) -> (Vec<Hit>, Option<String>) {
    let limit = limit.to_string();
    let v = env.json([
        "search", "--json", "--mode", mode, "--limit", &limit, "--", query,
    ]);
    parse_hits(&v, &format!("search --mode {mode} {query:?}"))
}

/// The hits of a search (at most 50).
fn search(env: &Env, query: &str, mode: &str) -> Vec<Hit> {
    search_full(env, query, mode, 50).0
}

/// A semantic or hybrid search once everything is embedded: no note allowed (a note means
/// the model is missing or passages are still waiting for their vectors).
fn search_embedded(env: &Env, query: &str, mode: &str) -> Vec<Hit> {
    let (hits, note) = search_full(env, query, mode, 50);
    assert!(
        note.is_none(),
        "search --mode {mode} {query:?} after `peros index --wait` has a note: {note:?}"
    );
    hits
}

fn paths(hits: &[Hit]) -> Vec<String> {
    hits.iter().map(|h| h.path.clone()).collect()
}

fn path_set(hits: &[Hit]) -> BTreeSet<String> {
    hits.iter().map(|h| h.path.clone()).collect()
}

fn set(paths: &[&str]) -> BTreeSet<String> {
    paths.iter().map(|s| s.to_string()).collect()
}

/// `peros index --wait --json`: everything indexed and embedded, with the real model.
fn index_wait(env: &Env) -> Value {
    let v = env.json(["index", "--wait", "--timeout", "120", "--json"]);
    assert_eq!(v["pending_text"], 0, "pending text after index --wait: {v}");
    assert_eq!(
        v["pending_vectors"], 0,
        "pending vectors after index --wait: {v}"
    );
    assert_eq!(v["vectors"], v["chunks"], "every chunk has a vector: {v}");
    let embedder = v["embedder"].as_str().unwrap_or_default();
    assert!(
        !embedder.contains("unavailable"),
        "the embedding model is not available ({embedder}): run scripts/setup.sh and \
         `source /var/cache/peros/env.sh` (ORT_DYLIB_PATH, PEROS_MODEL_DIR)"
    );
    assert!(v["note"].is_null(), "index --wait has a note: {v}");
    v
}

/// Polls `check` every 100 ms until it holds; panics after `timeout` (measured from `start`).
/// Returns the time from `start` until it held.
fn poll_until(
    start: Instant,
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> bool,
) -> Duration {
    loop {
        if check() {
            return start.elapsed();
        }
        if start.elapsed() >= timeout {
            panic!("{what}: not within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

const TWO_SECONDS: Duration = Duration::from_secs(2);

/// The words of `s` as the text index sees them: alphanumeric runs, lowercased.
fn words(s: &str) -> BTreeSet<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Writes `files` (relative path, content) under `root`.
fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (rel, content) in files {
        write_file(&root.join(rel), content.as_bytes());
    }
}

// ----- a small corpus on distinct topics -----

const FELINE_PATH: &str = "/notes/feline.txt";
const FELINE: &str = "The feline slept on the windowsill in the afternoon sun.\n";
/// A paraphrase of [`FELINE`] that shares no word with it (nor with its path).
const PARAPHRASE: &str = "cat napping by a sunny window";

const SOUP: &str = "# Lentil soup\n\nSimmer red lentils with cumin, garlic and diced carrots \
                    for thirty minutes, then blend until smooth.\n";

fn corpus() -> Vec<(&'static str, &'static str)> {
    vec![
        ("feline.txt", FELINE),
        (
            "puppy.txt",
            "The puppy chased a ball across the muddy park.\n",
        ),
        (
            "revenue.txt",
            "Quarterly revenue grew by twelve percent thanks to strong exports.\n",
        ),
        ("soup.md", SOUP),
        (
            "backup.py",
            "def rotate_backups(directory, keep=7):\n    \
             \"\"\"Delete the oldest snapshot archives beyond the retention count.\"\"\"\n    \
             return sorted(directory.glob('*.tar'))[:-keep]\n",
        ),
    ]
}

/// The paraphrase really shares no word with the target document, its name or its path:
/// otherwise finding it would prove nothing about semantic search.
fn assert_paraphrase_shares_no_word() {
    let q = words(PARAPHRASE);
    let target = words(FELINE)
        .union(&words(FELINE_PATH))
        .cloned()
        .collect::<BTreeSet<_>>();
    let shared: Vec<_> = q.intersection(&target).collect();
    assert!(
        shared.is_empty(),
        "the paraphrase {PARAPHRASE:?} shares {shared:?} with {FELINE:?} ({FELINE_PATH})"
    );
}

// ----- tests -----

#[test]
fn live_index_follows_writes_removes_and_renames() {
    let env = Env::init();
    let m = Mounted::new(&env, &[]);
    fs::create_dir_all(m.p("inbox/2024")).unwrap();
    fs::write(m.p("inbox/soup.md"), SOUP).unwrap();

    // Written through the mount: found by text search within 2 s.
    let word = unique_marker("w");
    let volcano = format!(
        "Field notes {word}: lava flowed down the slopes of the volcano after the eruption, \
         and ash covered the nearby villages.\n"
    );
    let start = Instant::now();
    fs::write(m.p("inbox/volcano.txt"), &volcano).unwrap();
    let lat = poll_until(start, TWO_SECONDS, "a new file in text search", || {
        paths(&search(&env, &word, "text")) == ["/inbox/volcano.txt"]
    });
    println!("latency write -> text-searchable: {} ms", lat.as_millis());
    let hit = &search(&env, &word, "text")[0];
    assert!(
        hit.snippet.contains(&word) && hit.offset == 0 && hit.score > 0.0,
        "{hit:?}"
    );

    // And by semantic search once embedded.
    index_wait(&env);
    println!(
        "latency write -> embedded (index --wait returned): {} ms",
        start.elapsed().as_millis()
    );
    let hits = search_embedded(&env, "magma erupting from a mountain", "semantic");
    assert_eq!(
        hits.first().map(|h| h.path.as_str()),
        Some("/inbox/volcano.txt"),
        "semantic search for the new file: {hits:?}"
    );

    // rm: gone within 2 s, from both modes.
    let start = Instant::now();
    fs::remove_file(m.p("inbox/volcano.txt")).unwrap();
    let lat = poll_until(
        start,
        TWO_SECONDS,
        "a removed file leaving text search",
        || search(&env, &word, "text").is_empty(),
    );
    println!(
        "latency rm -> gone from text search: {} ms",
        lat.as_millis()
    );
    let hits = search(&env, "magma erupting from a mountain", "semantic");
    assert!(
        !paths(&hits).contains(&"/inbox/volcano.txt".to_string()),
        "a removed file in semantic results: {hits:?}"
    );

    // mv of a file: found under the new path only.
    let word2 = unique_marker("m");
    let word3 = unique_marker("d");
    fs::write(
        m.p("inbox/aurora.txt"),
        format!(
            "Observation log {word2}: green aurora curtains shimmered over the fjord at midnight.\n"
        ),
    )
    .unwrap();
    fs::write(
        m.p("inbox/2024/ledger.txt"),
        format!("Ledger {word3}: paid the plumber for the leaking kitchen tap.\n"),
    )
    .unwrap();
    let start = Instant::now();
    poll_until(start, TWO_SECONDS, "two new files in text search", || {
        paths(&search(&env, &word2, "text")) == ["/inbox/aurora.txt"]
            && paths(&search(&env, &word3, "text")) == ["/inbox/2024/ledger.txt"]
    });
    let start = Instant::now();
    fs::rename(m.p("inbox/aurora.txt"), m.p("inbox/northern-lights.txt")).unwrap();
    let lat = poll_until(
        start,
        TWO_SECONDS,
        "a renamed file under its new path",
        || paths(&search(&env, &word2, "text")) == ["/inbox/northern-lights.txt"],
    );
    println!(
        "latency mv file -> new path in search: {} ms",
        lat.as_millis()
    );

    // mv of the parent directory: everything below it, nested too, moves in the results.
    let start = Instant::now();
    fs::rename(m.p("inbox"), m.p("archive")).unwrap();
    let lat = poll_until(
        start,
        TWO_SECONDS,
        "files under a renamed directory",
        || {
            paths(&search(&env, &word2, "text")) == ["/archive/northern-lights.txt"]
                && paths(&search(&env, &word3, "text")) == ["/archive/2024/ledger.txt"]
                && paths(&search(&env, "lentils", "text")) == ["/archive/soup.md"]
        },
    );
    println!(
        "latency mv parent dir -> new paths in search: {} ms",
        lat.as_millis()
    );
    // Filters see the new paths too, and the old ones match nothing.
    assert!(search(&env, "path:inbox/", "text").is_empty());
    assert_eq!(
        path_set(&search(&env, "path:archive/", "text")),
        set(&[
            "/archive/2024/ledger.txt",
            "/archive/northern-lights.txt",
            "/archive/soup.md"
        ])
    );
    // Overwriting a file replaces its old text in the index.
    let word4 = unique_marker("o");
    let start = Instant::now();
    fs::write(
        m.p("archive/2024/ledger.txt"),
        format!("Ledger {word4}: bought seeds for the vegetable patch.\n"),
    )
    .unwrap();
    let lat = poll_until(start, TWO_SECONDS, "an overwritten file's new text", || {
        paths(&search(&env, &word4, "text")) == ["/archive/2024/ledger.txt"]
            && search(&env, &word3, "text").is_empty()
    });
    println!(
        "latency overwrite -> new text searchable, old gone: {} ms",
        lat.as_millis()
    );
    index_wait(&env);
    let hits = search_embedded(&env, "polar lights glowing in the night sky", "semantic");
    assert_eq!(
        hits.first().map(|h| h.path.as_str()),
        Some("/archive/northern-lights.txt"),
        "{hits:?}"
    );
    assert!(
        hits.iter().all(|h| !h.path.starts_with("/inbox/")),
        "old paths in semantic results: {hits:?}"
    );
    m.unmount();
}

#[test]
fn semantic_search_finds_a_paraphrase_that_text_search_cannot() {
    assert_paraphrase_shares_no_word();
    let env = Env::init();
    let m = Mounted::new(&env, &[]);
    let files: Vec<(String, &str)> = corpus()
        .into_iter()
        .map(|(name, text)| (format!("notes/{name}"), text))
        .collect();
    for (rel, text) in &files {
        write_file(&m.p(rel), text.as_bytes());
    }
    index_wait(&env);

    let sem = search_embedded(&env, PARAPHRASE, "semantic");
    assert_eq!(
        sem.first().map(|h| h.path.as_str()),
        Some(FELINE_PATH),
        "semantic search for {PARAPHRASE:?} must rank {FELINE_PATH} first: {sem:?}"
    );
    assert!(
        sem[0].snippet.contains("feline"),
        "snippet of the semantic hit: {:?}",
        sem[0]
    );
    let text = search(&env, PARAPHRASE, "text");
    assert!(
        !paths(&text).contains(&FELINE_PATH.to_string()),
        "text search cannot find a document sharing no word with the query: {text:?}"
    );
    let hybrid = search_embedded(&env, PARAPHRASE, "hybrid");
    assert!(
        paths(&hybrid).contains(&FELINE_PATH.to_string()),
        "hybrid search includes the semantic match: {hybrid:?}"
    );
    println!(
        "hybrid ranking for {PARAPHRASE:?}: {:?}",
        hybrid
            .iter()
            .map(|h| format!("{} {:.3}", h.path, h.score))
            .collect::<Vec<_>>()
    );

    // Every mode answers a keyword query, with the right document first.
    for mode in ["text", "semantic", "hybrid"] {
        let hits = search_embedded(&env, "lentils cumin", mode);
        assert_eq!(
            hits.first().map(|h| h.path.as_str()),
            Some("/notes/soup.md"),
            "--mode {mode}: {hits:?}"
        );
    }
    // Default mode is hybrid; plain (non-JSON) output names the path.
    let out = env.ok(["search", "lentils cumin"]);
    assert!(out.contains("/notes/soup.md"), "{out}");
    m.unmount();
}

#[test]
fn every_supported_type_is_extracted_and_searchable() {
    let env = Env::init();
    let src = env.path("docs");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    write_tree(
        &src,
        &[
            ("plain.txt", "A plain note about glimmerwort seedlings.\n"),
            (
                "readme.md",
                "# Garden\n\nThe **quillfeather** hedge needs trimming in May.\n",
            ),
            (
                "tool.rs",
                "/// Counts zanthorax records.\nfn count_zanthorax(v: &[u8]) -> usize {\n    v.len()\n}\n",
            ),
            (
                "script.py",
                "def plumbicorn_total(rows):\n    return sum(r['plumbicorn'] for r in rows)\n",
            ),
            (
                "page.html",
                "<!DOCTYPE html>\n<html><head><title>Club page</title>\n\
                 <script>var scriptheadword = 1;</script>\n\
                 <style>.styleonlyword { color: red }</style></head>\n\
                 <body><h1>Welcome</h1><p>Our <b>velvetrox</b> roses bloom in <i>June</i>.</p>\n\
                 <script>console.log('scriptbodyword');</script></body></html>\n",
            ),
            (
                "books.json",
                "{\"title\": \"The jsonmarkerzed almanac\", \"year\": 1987, \"tags\": [\"atlas\"]}\n",
            ),
            (
                "table.csv",
                "date,item,amount\n2024-03-01,csvmarkerquo refill,12.50\n2024-03-02,bread,3.10\n",
            ),
        ],
    );
    fs::copy(
        examples.join("invoice-MH-24-0931.pdf"),
        src.join("invoice.pdf"),
    )
    .unwrap();
    fs::copy(
        examples.join("solar-proposal.docx"),
        src.join("proposal.docx"),
    )
    .unwrap();
    // Random bytes with NULs, and a "text" file that is not UTF-8.
    let mut blob = random_bytes(11, 4096);
    blob[10] = 0;
    blob[100] = 0;
    write_file(&src.join("blob.dat"), &blob);
    write_file(
        &src.join("latin1.txt"),
        b"Caf\xe9 cr\xe8me latinmarkerword \xff\xfe\n",
    );
    env.ok(["import".as_ref(), src.as_os_str(), "/docs".as_ref()]);

    // Without a mount, the CLI indexes what is pending itself.
    let st = env.json(["index", "--json"]);
    let errors: Vec<(String, String)> = st["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("index --json has no errors array: {st}"))
        .iter()
        .map(|e| {
            (
                e[0].as_str().unwrap_or_default().to_string(),
                e[1].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    println!("index errors: {errors:#?}");
    for bad in ["/docs/blob.dat", "/docs/latin1.txt"] {
        let reason = errors
            .iter()
            .find(|(p, _)| p == bad)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("{bad} is not listed under errors by index --json: {st}"));
        assert!(
            reason.len() > 10,
            "{bad}: the reason it is not indexed says nothing: {reason:?}"
        );
    }
    assert_eq!(
        errors.len(),
        2,
        "only the two bad files are errors: {errors:?}"
    );
    assert_eq!(st["files"], 11, "every file has an index record: {st}");
    assert!(search(&env, "latinmarkerword", "text").is_empty());

    // Each type: its distinctive word finds exactly that file.
    for (word, path, verbatim) in [
        ("glimmerwort", "/docs/plain.txt", true),
        ("quillfeather", "/docs/readme.md", true),
        ("zanthorax", "/docs/tool.rs", true),
        ("plumbicorn", "/docs/script.py", true),
        ("velvetrox", "/docs/page.html", false),
        ("jsonmarkerzed", "/docs/books.json", true),
        ("csvmarkerquo", "/docs/table.csv", true),
        ("electrode", "/docs/invoice.pdf", false),
        ("Haustechnik", "/docs/invoice.pdf", false),
        ("photovoltaic", "/docs/proposal.docx", false),
    ] {
        let hits = search(&env, word, "text");
        assert_eq!(paths(&hits), [path], "text search for {word:?}: {hits:?}");
        assert!(
            hits[0]
                .snippet
                .to_lowercase()
                .contains(&word.to_lowercase()),
            "the snippet for {word:?} shows it: {:?}",
            hits[0]
        );
        if verbatim {
            // Offsets of text types are file offsets.
            let content = env.cat(path);
            let at = &content[hits[0].offset as usize..];
            assert!(
                contains(at, word.as_bytes()),
                "{word:?} after offset: {:?}",
                hits[0]
            );
        }
    }
    // HTML: text inside tags is found, scripts and styles are not text.
    for word in ["scriptheadword", "scriptbodyword", "styleonlyword"] {
        let hits = search(&env, word, "text");
        assert!(
            hits.is_empty(),
            "{word:?} from <script>/<style> is indexed: {hits:?}"
        );
    }
    assert_eq!(
        paths(&search(&env, "roses bloom", "text")),
        ["/docs/page.html"]
    );
    // The HTML title is searchable.
    assert_eq!(paths(&search(&env, "club", "text")), ["/docs/page.html"]);
    // ext: works on every type.
    for ext in [
        "txt", "md", "rs", "py", "html", "json", "csv", "pdf", "docx",
    ] {
        let hits = search(&env, &format!("ext:{ext}"), "text");
        assert!(
            !hits.is_empty() && hits.iter().all(|h| h.path.ends_with(&format!(".{ext}"))),
            "ext:{ext}: {hits:?}"
        );
    }
}

#[test]
fn filters_modes_limits_and_bad_queries() {
    let env = Env::init();
    let m = Mounted::new(&env, &[]);
    let mut budget = String::from("month,category,amount\n");
    for i in 0..300 {
        budget.push_str(&format!("2024-{:02},supplies,{}.00\n", i % 12 + 1, 10 + i));
    }
    budget.push_str("2024-12,quarterly audit fee,400.00\n");
    assert!(budget.len() > 5000);
    // (path, content, tags, mtime)
    let files: [(&str, &str, &str, &str); 5] = [
        (
            "projects/alpha/plan.md",
            "Quarterly plan for project alpha: milestones and staffing.\n",
            "work",
            "2025-02-01 12:00:00 UTC",
        ),
        (
            "projects/beta/budget.csv",
            &budget,
            "work,tax",
            "2024-07-15 12:00:00 UTC",
        ),
        (
            "personal/taxes.txt",
            "Quarterly tax prepayment notes for the household.\n",
            "tax, personal",
            "2024-03-01 12:00:00 UTC",
        ),
        (
            "archive/plan-2022.md",
            "Quarterly plan from 2022, superseded by the new one.\n",
            "work",
            "2022-05-05 12:00:00 UTC",
        ),
        (
            "personal/diary.txt",
            "Went hiking along the river today.\n",
            "",
            "2023-09-09 12:00:00 UTC",
        ),
    ];
    for (rel, content, tags, mtime) in &files {
        write_file(&m.p(rel), content.as_bytes());
        let f = m.p(rel);
        if !tags.is_empty() {
            sh(&format!(
                "setfattr -n user.peros.tags -v '{tags}' '{}'",
                f.display()
            ));
        }
        sh(&format!("touch -d '{mtime}' '{}'", f.display()));
    }
    index_wait(&env);

    let plan = "/projects/alpha/plan.md";
    let budget_p = "/projects/beta/budget.csv";
    let taxes = "/personal/taxes.txt";
    let old = "/archive/plan-2022.md";
    let diary = "/personal/diary.txt";
    // Filter-only queries list the matching files; combined with text they restrict it.
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("ext:md", vec![plan, old]),
        ("ext:csv", vec![budget_p]),
        ("tag:tax", vec![budget_p, taxes]),
        ("tag:work", vec![plan, budget_p, old]),
        ("tag:personal", vec![taxes]),
        ("path:projects/", vec![plan, budget_p]),
        ("path:personal/", vec![taxes, diary]),
        ("modified:>2024-06-01", vec![plan, budget_p]),
        ("modified:<2023-01-01", vec![old]),
        ("modified:>2024-07-15", vec![plan]),
        ("size:>4k", vec![budget_p]),
        ("size:<1k", vec![plan, taxes, old, diary]),
        ("tag:work AND ext:md", vec![plan, old]),
        ("ext:md OR ext:csv", vec![plan, old, budget_p]),
        ("tag:work NOT path:archive/", vec![plan, budget_p]),
        ("(ext:md OR ext:txt) -tag:personal", vec![plan, old, diary]),
        (
            "(tag:tax OR tag:work) AND modified:>2024-01-01",
            vec![plan, budget_p, taxes],
        ),
        ("quarterly", vec![plan, budget_p, taxes, old]),
        ("quarterly tag:tax", vec![budget_p, taxes]),
        (
            "quarterly modified:>2024-01-01 NOT ext:csv",
            vec![plan, taxes],
        ),
        ("quarterly (path:archive/ OR size:>4k)", vec![old, budget_p]),
        ("hiking ext:md", vec![]),
    ];
    for (q, want) in &cases {
        let hits = search(&env, q, "text");
        assert_eq!(path_set(&hits), set(want), "query {q:?}: {hits:?}");
        assert_eq!(
            hits.len(),
            want.len(),
            "query {q:?} lists a file twice: {hits:?}"
        );
    }
    // Filters apply in every mode.
    for mode in ["semantic", "hybrid"] {
        let hits = search_embedded(&env, "quarterly plan tag:work -path:archive/", mode);
        assert!(
            !hits.is_empty()
                && hits
                    .iter()
                    .all(|h| [plan, budget_p].contains(&h.path.as_str())),
            "--mode {mode}: {hits:?}"
        );
        assert_eq!(hits[0].path, plan, "--mode {mode}: {hits:?}");
    }

    // --limit is honoured, for text and for filter-only queries.
    assert_eq!(search_full(&env, "quarterly", "text", 2).0.len(), 2);
    assert_eq!(search_full(&env, "quarterly", "hybrid", 1).0.len(), 1);
    assert_eq!(search_full(&env, "tag:work", "text", 1).0.len(), 1);
    let out = env.ok(["search", "--limit", "3", "quarterly"]);
    // One line per hit, then its snippet indented.
    let listed = out.lines().filter(|l| !l.starts_with(' ')).count();
    assert_eq!(listed, 3, "--limit 3 in plain output:\n{out}");

    // A malformed query fails (exit 1) naming the problem, through the daemon…
    for q in ["modified:>yesterday", "size:>lots", "(ext:pdf", "ext:"] {
        let out = env.fails(["search", "--", q]);
        let err = stderr(&out);
        println!("search {q:?} (mounted): {}", err.trim());
        assert!(err.contains(q), "the message quotes the query {q:?}: {err}");
    }
    let err = stderr(&env.fails(["search", "modified:>yesterday"]));
    assert!(
        err.contains("yesterday") && err.contains("not a date"),
        "the message names the problem: {err}"
    );
    m.unmount();
    // …and without one.
    let err = stderr(&env.fails(["search", "--json", "modified:>yesterday"]));
    assert!(
        err.contains("yesterday") && err.contains("not a date"),
        "the message names the problem: {err}"
    );
    let err = stderr(&env.fails(["search", "size:>lots ext:pdf"]));
    assert!(err.contains("lots") && err.contains("not a size"), "{err}");
}

#[test]
fn search_without_and_with_a_mount_gives_the_same_top_result() {
    assert_paraphrase_shares_no_word();
    let env = Env::init();
    let src = env.path("notes");
    write_tree(&src, &corpus());
    env.ok(["import".as_ref(), src.as_os_str(), "/notes".as_ref()]);

    let queries = [
        (PARAPHRASE, "semantic"),
        ("lentils cumin", "hybrid"),
        ("how do I prune old backup archives", "hybrid"),
        ("exports revenue", "text"),
    ];
    // Without a mount: the CLI opens the store and indexes (and embeds) what is pending.
    let offline: Vec<Vec<Hit>> = queries
        .iter()
        .map(|(q, mode)| search_embedded(&env, q, mode))
        .collect();
    assert_eq!(offline[0][0].path, FELINE_PATH, "{:?}", offline[0]);
    assert_eq!(offline[1][0].path, "/notes/soup.md", "{:?}", offline[1]);
    assert_eq!(offline[2][0].path, "/notes/backup.py", "{:?}", offline[2]);
    assert_eq!(offline[3][0].path, "/notes/revenue.txt", "{:?}", offline[3]);

    // With a mount: the daemon answers, the same way.
    let m = Mounted::new(&env, &[]);
    let st = env.json(["status", "--json"]);
    assert!(st["daemon"]["pid"].as_u64().is_some(), "{st}");
    index_wait(&env);
    for ((q, mode), want) in queries.iter().zip(&offline) {
        let got = search_embedded(&env, q, mode);
        assert_eq!(
            got.first().map(|h| &h.path),
            Some(&want[0].path),
            "search --mode {mode} {q:?}: mounted {got:?}, without a mount {want:?}"
        );
        assert_eq!(path_set(&got), path_set(want), "{q:?} --mode {mode}");
    }
    // A change made through the mount is seen by the CLI after unmount…
    fs::write(
        m.p("notes/garden.txt"),
        "Prune the apple trees in late winter before the buds open.\n",
    )
    .unwrap();
    m.unmount();
    assert_eq!(
        paths(&search(&env, "apple buds", "text")),
        ["/notes/garden.txt"]
    );
    // …and one made without a mount (offline) by the next daemon.
    let extra = env.path("extra.txt");
    write_file(
        &extra,
        b"The tram to the harbour leaves every twelve minutes.\n",
    );
    env.ok([
        "import".as_ref(),
        extra.as_os_str(),
        "/notes/tram.txt".as_ref(),
    ]);
    let m = Mounted::new(&env, &[]);
    index_wait(&env);
    let hits = search_embedded(&env, "public transport to the port", "semantic");
    assert_eq!(
        hits.first().map(|h| h.path.as_str()),
        Some("/notes/tram.txt"),
        "{hits:?}"
    );
    assert_eq!(
        paths(&search(&env, "apple buds", "text")),
        ["/notes/garden.txt"]
    );
    m.unmount();
}

#[test]
fn ask_cites_path_and_byte_offset_of_the_passage() {
    let env = Env::init();
    let src = env.path("household");
    // Several paragraphs, so that the answer is in a later chunk; non-ASCII text before it,
    // so that byte offsets and character offsets differ.
    let notes = "Garden: water the tomatoes every second evening in July; the café on the \
                 corner sells compost by the sack, and Jürgen next door lends his wheelbarrow \
                 when asked nicely. The hedge along the street is trimmed in May and again in \
                 September, never while birds are nesting.\n\n\
                 Car: the insurance renews on 1 October. Compare at least three offers before \
                 then; last year the premium rose by 14 % without any claim. The tyres were \
                 changed to winter tyres in November and are stored at the garage in Straße 12.\n\n\
                 Library: four books are due back on the 22nd. The children's reading club meets \
                 on Saturdays at ten; bring the membership cards, which are in the blue folder \
                 in the hall cupboard. Late fees are charged per book and day.\n\n\
                 Dentist: the check-up for both children is booked for the second Tuesday of \
                 the month at half past three. The practice moved to the new health centre \
                 behind the station; the old address on the reminder card is wrong.\n\n\
                 Recycling: glass goes to the containers by the school, paper is collected every \
                 other Thursday, and batteries are taken back by the supermarket at the till. \
                 Garden waste needs the brown bin, which is emptied in the summer months only.\n\n\
                 Heating: the annual boiler inspection is due on 14 March. The technician from \
                 Meyer Haustechnik needs access to the cellar between 8 and 10 in the morning, \
                 so the cellar key must be left with the neighbours if nobody is at home.\n\n\
                 Internet: the router password is on the sticker underneath the device. If the \
                 connection drops, restart the router first, then call the provider's hotline, \
                 which is open until eight in the evening on weekdays.\n";
    assert!(notes.len() > 1000 && notes.len() != notes.chars().count());
    write_tree(
        &src,
        &[
            ("notes.txt", notes),
            ("soup.md", SOUP),
            (
                "puppy.txt",
                "The puppy chased a ball across the muddy park.\n",
            ),
        ],
    );
    env.ok(["import".as_ref(), src.as_os_str(), "/household".as_ref()]);

    let v = env.json(["ask", "--json", "When is the boiler inspection due?"]);
    println!("ask: {}", serde_json::to_string_pretty(&v).unwrap());
    assert!(
        v["answer"].as_str().is_some_and(|a| !a.trim().is_empty()),
        "an answer: {v}"
    );
    let citations = v["citations"]
        .as_array()
        .unwrap_or_else(|| panic!("ask --json has no citations array: {v}"));
    assert!(!citations.is_empty(), "no citations: {v}");
    let first = &citations[0];
    assert_eq!(first["path"], "/household/notes.txt", "first citation: {v}");
    // Every citation of a text file points at its passage in the file.
    for c in citations {
        let path = c["path"]
            .as_str()
            .unwrap_or_else(|| panic!("citation without path: {c}"));
        let offset = c["offset"]
            .as_u64()
            .unwrap_or_else(|| panic!("citation without an integer offset: {c}"))
            as usize;
        let passage = c["passage"].as_str().unwrap_or_default();
        assert!(!passage.is_empty(), "citation without its passage: {c}");
        let content = env.cat(path);
        assert!(offset < content.len(), "offset past the end of {path}: {c}");
        assert!(
            content[offset..].starts_with(passage.as_bytes()),
            "{path} at byte {offset} does not start the cited passage:\n  file: {:?}\n  passage: {:?}",
            String::from_utf8_lossy(&content[offset..(offset + 80).min(content.len())]),
            passage.chars().take(80).collect::<String>()
        );
    }
    let offset = first["offset"].as_u64().unwrap() as usize;
    let passage = first["passage"].as_str().unwrap();
    assert!(
        passage.contains("boiler inspection is due on 14 March"),
        "the cited passage holds the answer: {passage:?}"
    );
    assert!(offset > 0, "the answer is not in the first chunk: {first}");
    // Also through the mount, reading the file itself.
    let m = Mounted::new(&env, &[]);
    let v = env.json(["ask", "--json", "When is the boiler inspection due?"]);
    let c = &v["citations"][0];
    assert_eq!(c["path"], "/household/notes.txt", "{v}");
    let content = fs::read(m.p("household/notes.txt")).unwrap();
    let offset = c["offset"].as_u64().unwrap() as usize;
    assert!(
        content[offset..].starts_with(c["passage"].as_str().unwrap().as_bytes()),
        "through the mount: {c}"
    );
    m.unmount();
}

#[test]
fn index_recovers_after_kill_9() {
    let env = Env::init();
    let m = Mounted::new(&env, &[]);
    fs::create_dir(m.p("fresh")).unwrap();
    let docs: Vec<(String, String, String)> = (0..6)
        .map(|i| {
            let word = unique_marker(&format!("k{i}"));
            let topics = [
                "The orchestra tuned their violins before the symphony began.",
                "Glaciers carve deep valleys as they slowly retreat.",
                "The bakery sells sourdough loaves every morning at seven.",
                "Satellites orbit the planet and relay television signals.",
                "The chess grandmaster sacrificed her queen to win the game.",
                "Bees collect nectar from clover and lavender in the meadow.",
            ];
            (
                format!("fresh/doc{i}.txt"),
                word.clone(),
                format!("{word}: {}\n", topics[i]),
            )
        })
        .collect();
    for (rel, _, text) in &docs {
        let mut f = fs::File::create(m.p(rel)).unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f.sync_all().unwrap();
    }
    // Right away, before indexing (and certainly embedding) could finish.
    let pid = m.daemon_pid();
    // SAFETY: sending a signal.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(300));
    drop(m); // clears the stale mount

    let m = Mounted::new(&env, &[]);
    let st = index_wait(&env);
    assert_eq!(st["files"], 6, "{st}");
    for (rel, word, _) in &docs {
        assert_eq!(
            paths(&search(&env, word, "text")),
            [format!("/{rel}")],
            "{word} after kill -9"
        );
    }
    let hits = search_embedded(&env, "honey insects among flowers", "semantic");
    assert_eq!(
        hits.first().map(|h| h.path.as_str()),
        Some("/fresh/doc5.txt"),
        "{hits:?}"
    );
    let hits = search_embedded(&env, "frozen ice rivers shaping mountains", "semantic");
    assert_eq!(
        hits.first().map(|h| h.path.as_str()),
        Some("/fresh/doc1.txt"),
        "{hits:?}"
    );
    m.unmount();
    env.ok(["fsck"]);
}

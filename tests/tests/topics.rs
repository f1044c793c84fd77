//! Topic views on a real mount with the real embedding model: a corpus of clearly different
//! subjects (man pages of compression, process and networking tools rendered from this
//! machine's /usr/share/man at test time, and markdown notes on cooking and on taxes) gets
//! one `@views/topics/<name>/` per subject holding that subject's files and named by its
//! terms; `agent undo --run` removes every view and tag exactly; files of one subject added
//! later join that subject's view without renaming it; a file the user removes from a topic
//! view stays out on the next pass; the user's own view is never touched.
//!
//! Needs the embedding model (`source /var/cache/peros/env.sh`) and man pages (scripts/setup.sh
//! installs man-db and the tools' packages).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use peros_tests::llama::{Llama, Template};
use peros_tests::*;
use serde_json::Value;

/// Bytes of each rendered man page kept (the model embeds ~100-200 tokens/s per core).
const PAGE_BYTES: usize = 4000;

const SUBJECTS: &[(&str, &[&str])] = &[
    ("compression", &["gzip", "bzip2", "xz", "zstd", "lz4"]),
    ("process", &["ps", "top", "kill", "pgrep", "free"]),
    ("network", &["ip", "ss", "curl", "wget", "netstat"]),
];
/// Pages added after the first pass (one subject).
const LATER: &[&str] = &["zip", "unzip"];

/// Words that may name each subject's topic (its distinctive vocabulary).
fn vocabulary(subject: &str) -> &'static [&'static str] {
    match subject {
        "compression" => &[
            "gzip",
            "bzip2",
            "xz",
            "zstd",
            "lz4",
            "compress",
            "compression",
            "compressed",
            "decompress",
            "decompression",
            "lzma",
            "archive",
            "unxz",
            "bunzip2",
            "gunzip",
            "lempel",
            "ziv",
            "zstandard",
            "level",
            "levels",
            "ratio",
            "block",
        ],
        "process" => &[
            "process",
            "processes",
            "ps",
            "top",
            "kill",
            "pgrep",
            "pkill",
            "signal",
            "signals",
            "pid",
            "pids",
            "memory",
            "cpu",
            "free",
            "swap",
            "procps",
            "tasks",
            "task",
            "running",
        ],
        "network" => &[
            "ip",
            "ss",
            "curl",
            "wget",
            "netstat",
            "network",
            "networking",
            "socket",
            "sockets",
            "tcp",
            "udp",
            "http",
            "https",
            "url",
            "urls",
            "route",
            "routing",
            "interface",
            "interfaces",
            "address",
            "download",
            "server",
            "protocol",
            "protocols",
            "iproute2",
            "connections",
            "ftp",
            "web",
        ],
        "cooking" => &[
            "recipe", "recipes", "oven", "bake", "dough", "flour", "bread", "sauce", "garlic",
            "onion", "onions", "simmer", "butter", "cooking", "tomato", "tomatoes", "pasta",
            "soup", "minutes", "stir", "salt", "pan",
        ],
        "taxes" => &[
            "tax",
            "taxes",
            "deduction",
            "deductions",
            "income",
            "return",
            "returns",
            "irs",
            "refund",
            "deductible",
            "taxable",
            "filing",
            "receipts",
            "expenses",
            "allowance",
            "credit",
            "credits",
            "withholding",
            "form",
        ],
        _ => unreachable!(),
    }
}

fn man_page(name: &str) -> PathBuf {
    for sec in ["1", "8"] {
        let p = PathBuf::from(format!("/usr/share/man/man{sec}/{name}.{sec}.gz"));
        if p.exists() {
            return p;
        }
    }
    panic!(
        "no man page for {name} in /usr/share/man: run scripts/setup.sh (it installs man-db \
         and the packages of the tools this test reads: procps iproute2 curl wget zstd lz4 \
         xz-utils bzip2 zip unzip net-tools)"
    );
}

/// The head of a rendered man page (header line dropped).
fn render(name: &str) -> String {
    let page = man_page(name);
    let out = Command::new("man")
        .env("MANWIDTH", "200")
        .args(["-P", "cat", "-l"])
        .arg(&page)
        .output()
        .unwrap_or_else(|e| panic!("man (install man-db: scripts/setup.sh): {e}"));
    assert!(
        out.status.success(),
        "man -l {}: {}",
        page.display(),
        stderr(&out)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let body: String = text.lines().skip(1).collect::<Vec<_>>().join("\n");
    let mut cut = body.len().min(PAGE_BYTES);
    while !body.is_char_boundary(cut) {
        cut -= 1;
    }
    assert!(cut > 500, "man page of {name} rendered to {cut} bytes");
    body[..cut].to_string()
}

/// Notes composed at test time from a subject's sentences (each note a different selection).
fn notes(subject: &str) -> Vec<(String, String)> {
    let (title, lines): (&str, &[&str]) = match subject {
        "cooking" => (
            "Recipe",
            &[
                "Preheat the oven to 200 degrees and grease the baking tin with butter.",
                "Knead the dough with flour, water, yeast and a pinch of salt for ten minutes.",
                "Fry the chopped onions and garlic in olive oil until golden, then add the tomatoes.",
                "Simmer the tomato sauce for twenty minutes and stir it now and then.",
                "Boil the pasta in salted water and drain it a minute before it is soft.",
                "Roast the vegetables on a tray in the oven and season them with pepper.",
                "Let the bread rise for an hour before baking it until the crust is brown.",
                "Whisk the eggs with sugar, fold in the flour and bake the cake for forty minutes.",
                "For the soup, cook lentils with carrots, celery and a bay leaf.",
            ],
        ),
        "taxes" => (
            "Tax return",
            &[
                "File the income tax return before the deadline at the end of April.",
                "Keep receipts of deductible expenses such as work equipment and travel.",
                "The refund depends on withholding taxes already paid from the salary.",
                "Charitable donations are deductible from taxable income up to a limit.",
                "Self-employed income needs quarterly estimated tax payments.",
                "Claim the child tax credit and the deduction for home office expenses.",
                "The tax office may ask for bank statements and the employer's income form.",
                "Capital gains from selling shares are taxed at a different rate.",
                "Mortgage interest and property tax can reduce the taxable income.",
            ],
        ),
        _ => unreachable!(),
    };
    (0..5)
        .map(|i| {
            let body: Vec<&str> = (0..5).map(|k| lines[(i * 2 + k) % lines.len()]).collect();
            (
                format!("{subject}-{i}.md"),
                format!("# {title} {}\n\n{}\n", i + 1, body.join(" ")),
            )
        })
        .collect()
}

fn names(dir: &Path) -> BTreeSet<String> {
    match fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

fn views(env: &Env) -> Value {
    env.json(["views", "list", "--json"])["views"].clone()
}

fn tags(env: &Env, path: &str) -> Value {
    env.json(["tag", path, "--json"])[0]["tags"].clone()
}

/// subject → the store paths of its files.
type Corpus = BTreeMap<String, Vec<String>>;

/// Subjects different enough that their files must make one topic each. Man pages of process
/// tools and of network tools are both "system tools" to MiniLM: measured here, they come out
/// as one topic, or as two that share a page or two (`kill` with `ip` and `ss`). The test
/// holds them to the purity bound only (docs/TOPICS.md, "Open").
const DISTINCT: &[&str] = &["compression", "cooking", "taxes"];
/// Least share of the topics' members that belong to their topic's main subject.
const MIN_PURITY: f64 = 0.8;

/// Which subject each topic view mostly holds: view → (subject, members). Panics when the
/// topics' purity is under [`MIN_PURITY`].
fn topics_by_subject(m: &Mounted, corpus: &Corpus) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let root = m.p("@views/topics");
    let mut out = BTreeMap::new();
    let (mut main_members, mut all_members) = (0usize, 0usize);
    for view in names(&root) {
        // A view lists its tag's files once the index has seen the new tags.
        let start = std::time::Instant::now();
        let mut members = names(&root.join(&view));
        while members.is_empty() && start.elapsed() < std::time::Duration::from_secs(60) {
            std::thread::sleep(std::time::Duration::from_millis(250));
            members = names(&root.join(&view));
        }
        let mut counts: BTreeMap<&String, usize> = BTreeMap::new();
        for n in &members {
            if let Some((s, _)) = corpus
                .iter()
                .find(|(_, files)| files.iter().any(|f| f.ends_with(&format!("/{n}"))))
            {
                *counts.entry(s).or_default() += 1;
            }
        }
        let Some((s, c)) = counts.iter().max_by_key(|(_, c)| **c) else {
            panic!("topic {view} lists no file of the corpus: {members:?}");
        };
        main_members += c;
        all_members += members.len();
        eprintln!("topic {view}: {counts:?}");
        out.insert(view, ((*s).clone(), members));
    }
    let purity = main_members as f64 / all_members.max(1) as f64;
    eprintln!(
        "purity {purity:.3} over {all_members} members of {} topics",
        out.len()
    );
    assert!(
        purity >= MIN_PURITY,
        "topics are too mixed (purity {purity:.3}): {out:?}"
    );
    out
}

/// Writes and imports the man pages and notes under /manuals and /notes.
fn import_corpus(env: &Env) -> Corpus {
    let src = env.path("src");
    let mut corpus: Corpus = BTreeMap::new();
    for (subject, pages) in SUBJECTS {
        for p in *pages {
            write_file(&src.join(format!("manuals/{p}.txt")), render(p).as_bytes());
            corpus
                .entry(subject.to_string())
                .or_default()
                .push(format!("/manuals/{p}.txt"));
        }
    }
    for subject in ["cooking", "taxes"] {
        for (name, text) in notes(subject) {
            write_file(&src.join(format!("notes/{name}")), text.as_bytes());
            corpus
                .entry(subject.to_string())
                .or_default()
                .push(format!("/notes/{name}"));
        }
    }
    env.ok([
        "import".as_ref(),
        src.join("manuals").as_os_str(),
        "/manuals".as_ref(),
    ]);
    env.ok([
        "import".as_ref(),
        src.join("notes").as_os_str(),
        "/notes".as_ref(),
    ]);
    corpus
}

#[test]
fn topics_from_content_are_named_kept_current_and_undone_exactly() {
    let env = Env::init();
    assert!(
        have("man"),
        "man is not installed: run scripts/setup.sh (man-db)"
    );
    let mut corpus = import_corpus(&env);
    // The user's own things, which topics must leave as they are.
    env.ok(["views", "add", "my-baking", "oven bake"]);
    env.ok(["tag", "/notes/cooking-0.md", "+mine"]);
    let m = Mounted::new(&env, &[]);
    index_embedded(&env);
    let views_before = views(&env);

    // First pass: one topic per subject, each with its subject's files, named by its terms.
    let r = env.json(["agent", "topics", "--json"]);
    assert_eq!(r["mode"], "full", "{r}");
    let found = topics_by_subject(&m, &corpus);
    let by_subject: BTreeMap<&String, Vec<(&String, &BTreeSet<String>)>> =
        found
            .iter()
            .fold(BTreeMap::new(), |mut acc, (v, (s, mem))| {
                acc.entry(s).or_default().push((v, mem));
                acc
            });
    for (subject, files) in corpus
        .iter()
        .filter(|(s, _)| DISTINCT.contains(&s.as_str()))
    {
        let got = by_subject
            .get(subject)
            .unwrap_or_else(|| panic!("no topic for {subject}: {found:?}\n{r}"));
        assert_eq!(got.len(), 1, "{subject} split over {got:?}");
        let (view, members) = got[0];
        // At most one file of a subject may be left out as an outlier.
        let own = members
            .iter()
            .filter(|n| files.iter().any(|f| f.ends_with(&format!("/{n}"))))
            .count();
        assert!(
            own + 1 >= files.len(),
            "topic {view} holds {members:?} of {subject}'s {files:?}"
        );
        let words: Vec<&str> = view.split('-').collect();
        assert!(
            words.iter().any(|w| vocabulary(subject).contains(w)),
            "topic {view} of {subject} is not named by its terms"
        );
    }
    // The user's view and tag are untouched; the topic views are under topics/.
    let all = views(&env);
    let user: Vec<&Value> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| !v["name"].as_str().unwrap().starts_with("topics/"))
        .collect();
    assert_eq!(
        Value::Array(user.into_iter().cloned().collect()),
        views_before
    );
    let t = tags(&env, "/notes/cooking-0.md");
    assert!(t.as_array().unwrap().iter().any(|x| x == "mine"), "{t}");

    // Undo removes every topic view and tag exactly.
    env.ok(["agent", "undo", "--run"]);
    assert_eq!(views(&env), views_before);
    assert!(names(&m.p("@views")).iter().all(|n| n != "topics"));
    for files in corpus.values() {
        for f in files {
            let want: Value = if f == "/notes/cooking-0.md" {
                serde_json::json!(["mine"])
            } else {
                serde_json::json!([])
            };
            assert_eq!(tags(&env, f), want, "tags of {f} after undo");
        }
    }

    // Again, then files of one subject arrive: they join its view, which keeps its name.
    env.json(["agent", "topics", "--json"]);
    let first = topics_by_subject(&m, &corpus);
    let (compression_view, _) = first
        .iter()
        .find(|(_, (s, _))| s == "compression")
        .map(|(v, x)| (v.clone(), x.clone()))
        .expect("compression topic");
    for p in LATER {
        fs::write(m.p(&format!("manuals/{p}.txt")), render(p)).unwrap();
        corpus
            .get_mut("compression")
            .unwrap()
            .push(format!("/manuals/{p}.txt"));
    }
    index_embedded(&env);
    let r = env.json(["agent", "topics", "--json"]);
    assert_eq!(r["mode"], "incremental", "{r}");
    // The view lists the files that joined once the index has seen their new tags.
    let view_dir = m.p(&format!("@views/topics/{compression_view}"));
    let start = std::time::Instant::now();
    while !LATER
        .iter()
        .all(|p| names(&view_dir).contains(&format!("{p}.txt")))
        && start.elapsed() < std::time::Duration::from_secs(60)
    {
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let after = topics_by_subject(&m, &corpus);
    let members = &after
        .get(&compression_view)
        .unwrap_or_else(|| panic!("{compression_view} renamed or gone: {after:?}"))
        .1;
    // They join the compression view (the topic of their nearest clustered neighbours,
    // docs/TOPICS.md "Keeping current") and no other.
    for a in r["admissions"].as_array().into_iter().flatten() {
        eprintln!("admission: {a}");
    }
    for p in LATER {
        let name = format!("{p}.txt");
        let joined = members.contains(&name);
        eprintln!(
            "{p}: {}",
            if joined {
                "joined the compression topic"
            } else {
                "in no compression topic"
            }
        );
        for (v, (subject, m)) in &after {
            assert!(
                !(m.contains(&name) && v != &compression_view),
                "{p} joined {v} ({subject}) instead of {compression_view}"
            );
        }
        assert!(
            joined,
            "{p} did not join {compression_view}: {after:?}\n{}",
            r["admissions"]
        );
    }
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "topic names changed"
    );

    // The user takes a file out of a topic view: it stays a file, loses the topic, and the
    // next pass keeps it out.
    let (cooking_view, _) = after
        .iter()
        .find(|(_, (s, _))| s == "cooking")
        .expect("cooking topic");
    let entry = m.p(&format!("@views/topics/{cooking_view}/cooking-2.md"));
    fs::remove_file(&entry).unwrap_or_else(|e| panic!("rm {}: {e}", entry.display()));
    assert!(
        m.p("notes/cooking-2.md").exists(),
        "the file itself is gone"
    );
    assert!(!names(&m.p(&format!("@views/topics/{cooking_view}"))).contains("cooking-2.md"));
    index_embedded(&env);
    let r = env.json(["agent", "topics", "--json"]);
    assert!(r["kept_out"].as_u64().unwrap_or(0) >= 1, "{r}");
    assert!(
        !names(&m.p(&format!("@views/topics/{cooking_view}"))).contains("cooking-2.md"),
        "a file taken out came back"
    );
    m.unmount();
}

/// With an `[llm]` endpoint (the real local Qwen2.5-Coder-1.5B, the stronger option setup
/// assembles), the new topics get names the model proposes: each rename is journaled, keeps the view in `topics/` and its members, and
/// is undone with the pass; nothing of a `never_read` file is sent.
#[test]
fn an_llm_names_the_topics_and_undo_restores_everything() {
    let Some(llama) = Llama::start_model("PEROS_LLM_MODEL_15B", Template::ToolCalls, 4096, 0)
    else {
        return;
    };
    let env = Env::init();
    let corpus = import_corpus(&env);
    let vault = env.path("vault");
    write_file(
        &vault.join("secret.md"),
        b"# SECRET-VAULT-7781\nThe recipe for the sauce: simmer tomatoes, garlic and onions.\n",
    );
    env.ok(["import".as_ref(), vault.as_os_str(), "/vault".as_ref()]);
    append_config(&env, "[agent]\nnever_read = [\"/vault/**\"]\n");
    let path = env.home.join("config.toml");
    let text = fs::read_to_string(&path)
        .unwrap()
        .replace(
            "endpoint = \"\"",
            &format!("endpoint = \"{}\"", llama.endpoint()),
        )
        .replace("max_tokens = 0", "max_tokens = 300");
    fs::write(&path, text).unwrap();
    // The pass runs in this process (not in a daemon), so PEROS_AGENT_TRACE sees its requests.
    index_embedded(&env);
    let views_before = views(&env);
    let trace = env.path("trace.jsonl");
    let out = env.run_with(
        ["agent", "topics", "--json"],
        &[("PEROS_AGENT_TRACE", Some(trace.to_str().unwrap()))],
    );
    let r: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{} {}", stdout(&out), stderr(&out)));
    eprintln!(
        "topics: {}",
        serde_json::to_string_pretty(&r["topics"]).unwrap()
    );
    eprintln!(
        "model calls: {}",
        serde_json::to_string_pretty(&r["llm_calls"]).unwrap()
    );
    let renames: Vec<&Value> = r["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "rename_view" && a["change"]["after"].is_object())
        .collect();
    assert!(!renames.is_empty(), "the model renamed no topic: {r}");
    // Every topic view is still under topics/, holds one subject, and its name is words.
    let m = Mounted::new(&env, &[]);
    let found = topics_by_subject(&m, &corpus);
    assert!(
        found.len() >= corpus.len(),
        "topics lost in renaming: {found:?}"
    );
    for a in &renames {
        let name = a["change"]["name"].as_str().unwrap();
        let leaf = name
            .strip_prefix("topics/")
            .unwrap_or_else(|| panic!("{name} left topics/"));
        assert!(
            leaf.split('-').all(|w| !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())),
            "renamed to {name}"
        );
        assert!(
            found.contains_key(leaf),
            "{leaf} not listed in @views/topics: {found:?}"
        );
    }
    let traced = fs::read_to_string(&trace).unwrap();
    assert!(
        traced.contains("list_topics"),
        "no request reached the model"
    );
    assert!(
        !traced.contains("SECRET-VAULT") && !traced.contains("secret.md"),
        "a never_read file was sent"
    );
    // Undo takes the whole pass back: views and tags as before.
    env.ok(["agent", "undo", "--run"]);
    assert_eq!(views(&env), views_before);
    for files in corpus.values() {
        for f in files {
            assert_eq!(
                tags(&env, f),
                serde_json::json!([]),
                "tags of {f} after undo"
            );
        }
    }
    m.unmount();
}

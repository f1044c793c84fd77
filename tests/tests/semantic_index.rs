//! The semantic index at scale, end to end with the real embedding model (and a real
//! llama-server for the remote embedder): work is done once and kept.
//!
//! - An edit to one paragraph of a long file re-embeds only the passages around it; a copy of
//!   a file embeds nothing (the embedding store is keyed by the text).
//! - Reopening an index of 10k+ vectors loads its saved graph instead of rebuilding it, with
//!   identical results.
//! - `init --from s3://…` on a fresh home (SeaweedFS) answers a semantic query without
//!   embedding a passage.
//! - A search while thousands of passages wait for vectors returns in about its idle time.
//! - `[index] embed_endpoint` against llama-server in embedding mode; the service going down
//!   loses nothing, and indexing resumes when it is back; a change of model re-embeds with a
//!   notice.

use std::time::{Duration, Instant};

use peros_tests::llama::{Llama, Template};
use peros_tests::seaweed;
use peros_tests::*;

#[allow(non_snake_case)]
fn OsStr(s: &str) -> std::ffi::OsString {
    s.into()
}

/// Adds `lines` to the `[index]` table of the env's config.
fn set_index(env: &Env, lines: &str) {
    let path = env.home.join("config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let (head, tail) = text.split_once("[index]\n").expect("an [index] table");
    // Drop what an earlier call put there (up to the next table).
    let rest = match tail.find("\n[") {
        Some(i) => &tail[i..],
        None => "",
    };
    std::fs::write(&path, format!("{head}[index]\n{lines}\n{rest}")).unwrap();
}

/// A word list for prose that differs from paragraph to paragraph.
const WORDS: &[&str] = &[
    "garden",
    "harbour",
    "ledger",
    "violin",
    "glacier",
    "pottery",
    "satellite",
    "orchard",
    "lantern",
    "compiler",
    "meadow",
    "invoice",
    "telescope",
    "bakery",
    "railway",
    "canyon",
    "archive",
    "thunder",
    "mosaic",
    "falcon",
    "quarry",
    "lighthouse",
    "tapestry",
    "volcano",
    "library",
    "compass",
    "prairie",
    "cathedral",
    "reservoir",
    "workshop",
    "saddle",
    "carousel",
];

/// Paragraph `i`: four sentences whose words depend on `i` (distinct texts, real prose shape).
fn paragraph(i: usize) -> String {
    let w = |k: usize| WORDS[(i * 7 + k * 3) % WORDS.len()];
    format!(
        "Paragraph {i} describes the {} near the {} and how the {} was kept in order. \
         Everyone who visited the {} remembered the {} for years afterwards. \
         In the evening the {} and the {} were quiet, and the notes about item {i} were filed. \
         Nobody expected the {} to matter, yet it shaped the rest of chapter {i}.",
        w(0),
        w(1),
        w(2),
        w(3),
        w(4),
        w(5),
        w(6),
        w(7)
    )
}

fn document(paragraphs: usize) -> String {
    (0..paragraphs)
        .map(paragraph)
        .collect::<Vec<_>>()
        .join("\n\n")
        + "\n"
}

fn index_wait(env: &Env) -> Value {
    let v = env.json(["index", "--wait", "--timeout", "600", "--json"]);
    assert_eq!(v["pending_vectors"], 0, "{v}");
    assert!(v["note"].is_null(), "index --wait left a note: {v}");
    v
}

fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no integer {key:?} in {v}"))
}

fn semantic_top(env: &Env, query: &str) -> Vec<String> {
    let v = env.json([
        "search", "--json", "--mode", "semantic", "--limit", "10", "--", query,
    ]);
    assert!(v["note"].is_null(), "semantic search has a note: {v}");
    v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_edit_re_embeds_only_nearby_passages_and_a_copy_nothing() {
    let env = Env::init();
    let text = document(120);
    let src = env.path("long.txt");
    write_file(&src, text.as_bytes());
    env.ok([
        OsStr("import"),
        src.as_os_str().into(),
        OsStr("/notes/long.txt"),
    ]);
    let first = index_wait(&env);
    let chunks = n(&first, "chunks");
    assert!(chunks >= 20, "a long file makes many passages: {first}");
    assert_eq!(n(&first, "embedded"), chunks, "{first}");

    // Rewrite one paragraph in the middle.
    let old = paragraph(60);
    let new = "This paragraph was rewritten: the sixtieth section now talks about a broken \
               heating system, a landlord, and a plumber who came on Tuesday.";
    let edited = text.replace(&old, new);
    assert_ne!(edited, text);
    write_file(&src, edited.as_bytes());
    env.ok([
        OsStr("import"),
        src.as_os_str().into(),
        OsStr("/notes/long.txt"),
    ]);
    let after_edit = index_wait(&env);
    let re_embedded = n(&after_edit, "embedded");
    assert!(
        (1..=3).contains(&re_embedded),
        "one paragraph changed in a file of {chunks} passages, {re_embedded} re-embedded: {after_edit}"
    );
    assert_eq!(
        n(&after_edit, "vectors"),
        n(&after_edit, "chunks"),
        "{after_edit}"
    );
    assert_eq!(
        semantic_top(&env, "who fixed the broken heating for the landlord")[0],
        "/notes/long.txt"
    );

    // A copy embeds nothing: every passage's text is in the embedding store.
    env.ok([
        OsStr("import"),
        src.as_os_str().into(),
        OsStr("/notes/copy.txt"),
    ]);
    let after_copy = index_wait(&env);
    assert_eq!(n(&after_copy, "embedded"), 0, "{after_copy}");
    assert!(n(&after_copy, "reused") >= chunks - 3, "{after_copy}");
    assert_eq!(
        n(&after_copy, "vectors"),
        n(&after_copy, "chunks"),
        "{after_copy}"
    );
    let top = semantic_top(&env, "who fixed the broken heating for the landlord");
    assert!(top[..2].contains(&"/notes/copy.txt".to_string()), "{top:?}");
}

#[test]
fn reopening_ten_thousand_vectors_loads_the_saved_graph() {
    let env = Env::init();
    // Short passages (32 tokens) make 10k+ real-model vectors quickly.
    set_index(&env, "chunk_tokens = 32");
    let dir = env.path("many");
    // Notes of about 20 tokens: one passage each (two do not fit in 30).
    for f in 0..34 {
        let body: String = (0..300)
            .map(|p| {
                let i = f * 1000 + p;
                let w = |k: usize| WORDS[(i * 11 + k * 5) % WORDS.len()];
                format!(
                    "Note {i}: the {} and the {} of the {} were moved to the {} on day {p}.\n\n",
                    w(0),
                    w(1),
                    w(2),
                    w(3)
                )
            })
            .collect();
        write_file(&dir.join(format!("notes-{f:02}.txt")), body.as_bytes());
    }
    env.ok([OsStr("import"), dir.as_os_str().into(), OsStr("/many")]);
    let st = index_wait(&env);
    assert!(n(&st, "vectors") >= 10_000, "{st}");
    let queries = [
        "the lighthouse and the glacier",
        "a falcon over the quarry",
        "bakery invoice",
    ];
    let reference: Vec<Vec<String>> = queries.iter().map(|q| semantic_top(&env, q)).collect();
    // Each command opens the index on its own (no daemon): the saved index is opened, and a
    // one-shot command scans its flat copies exactly instead of loading the HNSW graph.
    let st = env.json(["index", "--json"]);
    assert_eq!(st["graph_origin"], "saved", "{st}");
    assert_eq!(
        st["graph_ready"], false,
        "a one-shot command loaded the graph: {st}"
    );
    let load_ms = n(&st, "graph_open_ms");
    // Same answers after reopening.
    for (q, want) in queries.iter().zip(&reference) {
        assert_eq!(
            &semantic_top(&env, q),
            want,
            "results of {q:?} changed after reopening"
        );
    }
    // Without its dump the index is made again from the stored vectors (no graph build at
    // open either), saved, and opened from the new dump afterwards.
    std::fs::remove_dir_all(env.home.join("index/graph")).unwrap();
    let st = env.json(["index", "--json"]);
    assert_eq!(st["graph_origin"], "built", "{st}");
    let build_ms = n(&st, "graph_open_ms");
    let st = env.json(["index", "--json"]);
    assert_eq!(st["graph_origin"], "saved", "{st}");
    eprintln!(
        "index of {} vectors: open {load_ms} ms, made from the store {build_ms} ms",
        st["vectors"]
    );
    assert!(
        load_ms < build_ms,
        "opening the saved index ({load_ms} ms) should be cheaper than making it ({build_ms} ms)"
    );
    for (q, want) in queries.iter().zip(&reference) {
        assert_eq!(
            &semantic_top(&env, q),
            want,
            "results of {q:?} changed after the index was made again"
        );
    }
}

#[test]
fn init_from_s3_answers_semantic_queries_without_embedding() {
    let Some(w) = seaweed::shared() else {
        panic!("{}", seaweed::skip_message());
    };
    let t = S3Target {
        url: format!("s3://{}/{}", seaweed::BUCKET, seaweed::unique_prefix("emb")),
        env: w.aws_env(),
    };
    // A passphrase-wrapped key travels with the tenant: the new node needs only the passphrase.
    let mut a = Env::new();
    a.passphrase = Some("embeddings travel".into());
    a.s3 = Some(t.clone());
    a.ok(["init", "--store", &t.url]);
    let src = a.path("docs");
    write_file(&src.join("heating.txt"), b"The landlord promised to repair the broken boiler before winter; the radiators stay cold.\n");
    write_file(
        &src.join("garden.txt"),
        b"Tomatoes and courgettes grow best in full sun; water the beds every other evening.\n",
    );
    write_file(&src.join("long.txt"), document(40).as_bytes());
    a.ok([OsStr("import"), src.as_os_str().into(), OsStr("/docs")]);
    let st = index_wait(&a);
    assert!(n(&st, "embedded") > 0);
    // The embeddings went to the bucket, sealed.
    let bucket = w.remote(t.url.splitn(4, '/').nth(3).unwrap());
    let listed = bucket.list("index/embeddings/").unwrap();
    assert!(!listed.is_empty(), "no embedding segment in the bucket");

    let mut b = Env::new();
    b.s3 = Some(t.clone());
    b.passphrase = a.passphrase.clone();
    b.ok(["init", "--from", &t.url]);
    let st = index_wait(&b);
    assert_eq!(
        n(&st, "embedded"),
        0,
        "the new node embedded passages: {st}"
    );
    assert_eq!(n(&st, "vectors"), n(&st, "chunks"), "{st}");
    assert!(n(&st, "reused") >= n(&st, "chunks"), "{st}");
    assert_eq!(
        semantic_top(&b, "heater not working, the owner of the flat must fix it")[0],
        "/docs/heating.txt"
    );
}

#[test]
fn a_search_during_a_large_backlog_returns_in_its_usual_time() {
    let env = Env::init();
    set_index(&env, "chunk_tokens = 32");
    let seed = env.path("seed");
    write_file(
        &seed.join("heating.txt"),
        b"The landlord promised to repair the broken boiler before winter.\n",
    );
    env.ok([OsStr("import"), seed.as_os_str().into(), OsStr("/seed")]);
    let m = Mounted::new(&env, &[]);
    index_wait(&env);
    let queries: Vec<String> = (0..9)
        .map(|i| format!("who repairs the heating, question {i}"))
        .collect();
    let time = |qs: &[String]| -> Vec<Duration> {
        qs.iter()
            .map(|q| {
                let t = Instant::now();
                let v = env.json([
                    "search", "--json", "--mode", "hybrid", "--limit", "5", "--", q,
                ]);
                assert!(v["hits"].is_array(), "{v}");
                t.elapsed()
            })
            .collect()
    };
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let idle = median(time(&queries[..4]));
    // A backlog of 6,000 short passages, written through the mount.
    for f in 0..20 {
        let body: String = (0..300)
            .map(|p| {
                let w = |k: usize| WORDS[(f * 31 + p * 7 + k * 3) % WORDS.len()];
                // About 20 tokens: one passage per note (two do not fit in 30).
                format!(
                    "Backlog note {f}-{p} about the {} and the {} near the {}, filed under {}.\n\n",
                    w(0),
                    w(1),
                    w(2),
                    w(3)
                )
            })
            .collect();
        std::fs::write(m.p(&format!("backlog-{f}.txt")), body).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let pending = loop {
        let st = env.json(["index", "--json"]);
        let p = n(&st, "pending_vectors");
        if p >= 5_000 {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "the backlog never reached 5,000: {st}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // Time only while the worker is embedding: once its first round has left the queue.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let p = n(&env.json(["index", "--json"]), "pending_vectors");
        if p < pending {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "embedding never started: {p} queued"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let busy = median(time(&queries[4..]));
    let still = n(&env.json(["index", "--json"]), "pending_vectors");
    eprintln!(
        "search median idle {idle:?}, with {pending} passages queued {busy:?} ({still} left after)"
    );
    assert!(
        still > 0,
        "the backlog drained before the timed searches ended"
    );
    assert!(
        busy <= idle * 3 + Duration::from_millis(300),
        "search took {busy:?} during the backlog against {idle:?} idle"
    );
    m.unmount();
}

#[test]
fn the_remote_embedder_survives_its_service_going_down() {
    let Some(llama) = Llama::start(Template::Embeddings, 2048) else {
        return;
    };
    let env = Env::init();
    set_index(
        &env,
        &format!(
            "embed_endpoint = {:?}\nembed_model = \"qwen-test\"\nembed_timeout_secs = 20",
            llama.base_url()
        ),
    );
    let src = env.path("a");
    write_file(
        &src.join("heating.txt"),
        b"The landlord promised to repair the broken boiler before winter.\n",
    );
    write_file(
        &src.join("garden.txt"),
        b"Tomatoes grow best in full sun; water the beds in the evening.\n",
    );
    env.ok([OsStr("import"), src.as_os_str().into(), OsStr("/a")]);
    let st = index_wait(&env);
    assert_eq!(st["model"], "remote:qwen-test", "{st}");
    assert_eq!(n(&st, "vectors"), n(&st, "chunks"), "{st}");
    let port = llama.stop();

    // Down: the new file's passages stay queued, with a clear note; search still answers.
    let more = env.path("b");
    write_file(
        &more.join("taxes.txt"),
        b"The tax return for 2024 is due on 31 July 2025.\n",
    );
    env.ok([OsStr("import"), more.as_os_str().into(), OsStr("/b")]);
    let st = env.json(["index", "--wait", "--timeout", "60", "--json"]);
    assert!(n(&st, "pending_vectors") > 0, "{st}");
    let note = st["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("unavailable") && note.contains(&port.to_string()),
        "the note should say the service at port {port} is down: {st}"
    );
    let text = env.json(["search", "--json", "--mode", "text", "--", "tax return"]);
    assert_eq!(text["hits"][0]["path"], "/b/taxes.txt", "{text}");

    // Back: indexing resumes and nothing was lost.
    let _llama = Llama::start_on(Template::Embeddings, 2048, port).expect("llama-server again");
    let st = index_wait(&env);
    assert_eq!(n(&st, "vectors"), n(&st, "chunks"), "{st}");
    drop(_llama);

    // Back to the local model: a notice, and everything is re-embedded with it.
    set_index(&env, "");
    let out = env.run(["index", "--wait", "--timeout", "600"]);
    assert_success(&["index".into()], &out);
    assert!(
        stderr(&out).contains("changed from remote:qwen-test to all-MiniLM-L6-v2-int8"),
        "{}",
        stderr(&out)
    );
    let st = index_wait(&env);
    assert_eq!(st["model"], "all-MiniLM-L6-v2-int8", "{st}");
    assert_eq!(n(&st, "vectors"), n(&st, "chunks"), "{st}");
}

//! Relevance on a real mount with the real model (issue 15): views and `@search` list what
//! their words ask for and little else, filters never drop a match, and `ask` quotes the
//! sentence that answers. The model is found through `PEROS_MODEL_DIR` / `ORT_DYLIB_PATH`
//! (`source /var/cache/peros/env.sh`); without it these tests fail, they do not skip.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use peros_tests::*;

const BOUND: Duration = Duration::from_secs(120);

fn poll<T>(what: &str, bound: Duration, f: impl FnMut() -> Option<T>) -> T {
    poll_every(what, bound, Duration::from_millis(200), f).0
}

fn names(dir: &Path) -> Vec<String> {
    dir_names(dir)
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

#[test]
fn a_view_named_in_plain_words_lists_only_what_it_names() {
    let env = Env::init();
    let m = Mounted::new(&env, &[]);
    fs::create_dir_all(m.p("notes")).unwrap();
    for (name, text) in [
        (
            "garden.md",
            "# Garden\nPlanted tomatoes, courgettes and runner beans in the raised beds. \
             Sow lettuce and carrots every three weeks, water the seedlings in the evening \
             and spread compost before the spring planting.\n",
        ),
        (
            "taxes.md",
            "# Taxes 2024\nFiling deadline 31 July 2025. Receipts for the home office, \
             the train to Hamburg and the liability insurance go to the tax advisor.\n",
        ),
        (
            "borrow-checker.md",
            "# Rust notes\nThe borrow checker rejects a mutable reference while a shared \
             one is alive; lifetimes say how long a reference stays valid.\n",
        ),
    ] {
        fs::write(m.p("notes").join(name), text).unwrap();
    }
    index_embedded(&env);
    let view = m.p("@views/growing vegetables");
    fs::create_dir(&view).unwrap();
    // Wait for the full (hybrid) evaluation, then the listing must be exactly the garden note.
    poll("hybrid evaluation of the view", BOUND, || {
        let v = env.json(["views", "show", "growing vegetables", "--json"]);
        (v["listing"]["mode"] == "hybrid" || v["mode"] == "hybrid").then_some(())
    });
    assert_eq!(names(&view), ["garden.md"]);
}

#[test]
fn search_who_repairs_the_boiler_in_the_demo_files() {
    let env = Env::init();
    env.ok([
        "import".as_ref(),
        examples().as_os_str(),
        "/examples".as_ref(),
    ]);
    let m = Mounted::new(&env, &[]);
    index_embedded(&env);
    let dir = m.p("@search/who repairs the boiler");
    // The first listing is text-only; the refined one adds the landlord letter (no shared
    // word but "the"): wait for it, then check the whole listing.
    let got = poll("the landlord letter in @search", BOUND, || {
        let n = names(&dir);
        n.contains(&"letter-to-landlord.txt".to_string())
            .then_some(n)
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(names(&dir), got, "the refined listing is stable");
    for want in [
        "invoice-MH-24-0931.pdf",
        "letter-to-landlord.txt",
        "taxes-2024.md",
    ] {
        assert!(got.contains(&want.to_string()), "{want} missing: {got:?}");
    }
    for not in ["trip-plan-lisbon.md", "meeting-notes-2024-09-12.md"] {
        assert!(!got.contains(&not.to_string()), "{not} listed: {got:?}");
    }
}

#[test]
fn a_filter_never_drops_a_match() {
    let env = Env::init();
    let src = env.path("many");
    fs::create_dir_all(&src).unwrap();
    // 5,000 short text files that say "boiler" three times each outrank the one PDF (a
    // longer text that says it once) on BM25: a filter applied after retrieval loses it.
    for i in 0..5000 {
        fs::write(
            src.join(format!("note-{i:04}.txt")),
            format!("boiler {i}: boiler checked, boiler fine.\n"),
        )
        .unwrap();
    }
    fs::copy(
        examples().join("invoice-MH-24-0931.pdf"),
        src.join("invoice.pdf"),
    )
    .unwrap();
    env.ok([
        "-q".as_ref(),
        "import".as_ref(),
        src.as_os_str(),
        "/many".as_ref(),
    ]);
    let v = env.json(["search", "boiler ext:pdf", "--mode", "text", "--json"]);
    let paths: Vec<&str> = v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/many/invoice.pdf"], "{v}");
    // The same through the mount, where the hybrid listing replaces the text one.
    let m = Mounted::new(&env, &[]);
    let dir = m.p("@search/boiler ext:pdf");
    poll("the PDF in @search/boiler ext:pdf", BOUND, || {
        (names(&dir) == ["invoice.pdf"]).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(names(&dir), ["invoice.pdf"]);
}

#[test]
fn ask_quotes_the_sentence_that_answers() {
    let env = Env::init();
    env.ok([
        "import".as_ref(),
        examples().as_os_str(),
        "/examples".as_ref(),
    ]);
    let m = Mounted::new(&env, &[]);
    index_embedded(&env);
    let v = env.json(["ask", "When is the tax filing deadline?", "--json"]);
    assert_eq!(v["method"], "extractive", "{v}");
    let answer = v["answer"].as_str().unwrap();
    assert!(answer.contains("31 July 2025"), "{answer}");
    let cited: Vec<&str> = v["citations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(cited.first(), Some(&"/examples/taxes-2024.md"), "{v}");
    for not in ["make_samples.py", "config.toml"] {
        assert!(!cited.iter().any(|c| c.ends_with(not)), "{not} cited: {v}");
    }
    // Every quote is the file's bytes at its offset.
    let quotes = v["quotes"].as_array().unwrap();
    assert!(!quotes.is_empty(), "{v}");
    for q in quotes {
        let path = q["path"].as_str().unwrap();
        let off = q["offset"].as_u64().unwrap() as usize;
        let text = q["text"].as_str().unwrap();
        if path.ends_with(".md") {
            let bytes = fs::read(m.p(path.trim_start_matches('/'))).unwrap();
            assert_eq!(&bytes[off..off + text.len()], text.as_bytes(), "{q}");
        }
    }
    assert!(
        quotes.iter().any(|q| q["path"] == "/examples/taxes-2024.md"
            && q["text"].as_str().unwrap().contains("31 July 2025")),
        "{v}"
    );
}

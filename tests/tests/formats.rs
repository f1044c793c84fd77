//! Document formats end to end: real ODT, DOCX, RTF, EPUB, ODS, XLSX, ODP, PPTX, EML and MBOX
//! files made on this machine by `scripts/make-format-samples.sh` (LibreOffice headless and
//! Python's `email`), copied into a mounted store, indexed, and searched with
//! `peros search --json`: each sample's known phrases find that file first, and the hit's
//! `location` names the page, sheet, slide, chapter, attachment or message that holds it.
//! Hostile files of each family (a zip bomb XLSX, a truncated ODT, an RTF of 1,000,000 nested
//! braces, an e-mail of 100,000 nested multiparts) sit beside them: the mount keeps working, everything else is found, and the index
//! says what happened to them.
//!
//! LibreOffice is required (Debian: libreoffice-writer-nogui, libreoffice-calc-nogui,
//! libreoffice-impress-nogui): without it the test fails, it does not skip.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use peros_tests::*;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/make-format-samples.sh")
}

/// Runs the sample script into `out`; panics with its output when it fails.
fn make_samples(out: &Path) {
    assert!(
        have("soffice"),
        "soffice (LibreOffice) is not installed, so the format samples cannot be made: \
         apt-get install libreoffice-writer-nogui libreoffice-calc-nogui \
         libreoffice-impress-nogui"
    );
    let start = Instant::now();
    let o = Command::new("bash")
        .arg(script())
        .arg(out)
        .output()
        .expect("run make-format-samples.sh");
    assert!(
        o.status.success(),
        "make-format-samples.sh failed ({}):\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    println!("samples made in {:?}", start.elapsed());
}

/// (file, phrase, location) rows of the script's phrases.tsv.
fn phrases(dir: &Path) -> Vec<(String, String, Option<String>)> {
    let tsv = fs::read_to_string(dir.join("phrases.tsv")).expect("phrases.tsv");
    tsv.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert!(f.len() >= 2, "bad phrases.tsv line {l:?}");
            let loc = f.get(2).map(|s| s.trim()).filter(|s| !s.is_empty());
            (f[0].to_string(), f[1].to_string(), loc.map(str::to_string))
        })
        .collect()
}

/// The hits of a text search: (path, location, snippet).
fn search(env: &Env, query: &str) -> Vec<(String, Option<String>, String)> {
    let v = env.json([
        "search", "--json", "--mode", "text", "--limit", "5", "--", query,
    ]);
    v["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("search {query:?}: no hits array in {v}"))
        .iter()
        .map(|h| {
            (
                h["path"].as_str().unwrap_or_default().to_string(),
                h["location"].as_str().map(str::to_string),
                h["snippet"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// (path, reason) pairs of an `index --json` list ("errors" or "warnings").
fn listed(st: &Value, key: &str) -> Vec<(String, String)> {
    st[key]
        .as_array()
        .unwrap_or_else(|| panic!("index --json has no {key} array: {st}"))
        .iter()
        .map(|e| {
            (
                e[0].as_str().unwrap_or_default().to_string(),
                e[1].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

const WORKBOOK: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Kept" sheetId="1" r:id="rId1"/><sheet name="Bomb" sheetId="2" r:id="rId2"/></sheets></workbook>"#;
const WORKBOOK_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet2.xml"/></Relationships>"#;
const SHEET1: &str = r#"<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>the bombproof walnut register</t></is></c></row></sheetData></worksheet>"#;

/// An XLSX whose second sheet decompresses to 1 GiB (markup then blanks), built by Python's
/// zipfile (the tests have no zip crate of their own).
fn write_zip_bomb_xlsx(path: &Path) {
    let py = std::env::var("PEROS_PYTHON").unwrap_or_else(|_| "python3".into());
    let prog = format!(
        r#"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("xl/workbook.xml", {WORKBOOK:?})
    z.writestr("xl/_rels/workbook.xml.rels", {WORKBOOK_RELS:?})
    z.writestr("xl/worksheets/sheet1.xml", {SHEET1:?})
    with z.open("xl/worksheets/sheet2.xml", "w", force_zip64=True) as f:
        f.write(b"<worksheet><sheetData>")
        block = b" " * (1 << 20)
        for _ in range(1024):
            f.write(block)
"#
    );
    let start = Instant::now();
    let o = Command::new(py)
        .arg("-c")
        .arg(prog)
        .arg(path)
        .output()
        .expect("run python3");
    assert!(
        o.status.success(),
        "building the zip bomb failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    println!(
        "zip bomb: {} bytes, built in {:?}",
        fs::metadata(path).unwrap().len(),
        start.elapsed()
    );
}

#[test]
fn office_ebook_rtf_and_mail_samples_are_found_at_their_location() {
    let env = Env::init();
    let samples = env.path("samples");
    make_samples(&samples);
    let rows = phrases(&samples);
    let files: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    for ext in [
        "odt", "docx", "rtf", "epub", "ods", "xlsx", "odp", "pptx", "eml", "mbox",
    ] {
        assert!(
            files.contains(format!("sample.{ext}").as_str()),
            "phrases.tsv has no sample.{ext}: {files:?}"
        );
    }

    // Hostile files, one per family.
    let hostile = env.path("hostile");
    fs::create_dir_all(&hostile).unwrap();
    write_zip_bomb_xlsx(&hostile.join("bomb.xlsx"));
    let odt = fs::read(samples.join("sample.odt")).unwrap();
    write_file(&hostile.join("truncated.odt"), &odt[..odt.len() / 2]);
    let mut rtf = b"{\\rtf1\\ansi ".to_vec();
    rtf.extend(std::iter::repeat_n(b'{', 1_000_000));
    rtf.extend_from_slice(b"the fathomless brace lagoon");
    rtf.extend(std::iter::repeat_n(b'}', 1_000_000));
    rtf.push(b'}');
    write_file(&hostile.join("braces.rtf"), &rtf);
    let mut eml = String::from("From: deep@example.org\nSubject: nested\n");
    for i in 0..100_000 {
        eml.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\n\n--b{i}\n"
        ));
    }
    write_file(&hostile.join("deep.eml"), eml.as_bytes());

    let m = Mounted::new(&env, &[]);
    fs::create_dir_all(m.p("docs")).unwrap();
    fs::create_dir_all(m.p("hostile")).unwrap();
    for f in &files {
        fs::copy(samples.join(f), m.p(&format!("docs/{f}")))
            .unwrap_or_else(|e| panic!("copy {f} into the mount: {e}"));
    }
    for f in ["bomb.xlsx", "truncated.odt", "braces.rtf", "deep.eml"] {
        fs::copy(hostile.join(f), m.p(&format!("hostile/{f}")))
            .unwrap_or_else(|e| panic!("copy {f} into the mount: {e}"));
    }
    let start = Instant::now();
    let st = env.json(["index", "--wait", "--timeout", "600", "--json"]);
    println!("indexed in {:?}: {st}", start.elapsed());

    // Every phrase: its file first, at its place.
    let mut wrong = Vec::new();
    for (file, phrase, location) in &rows {
        let hits = search(&env, phrase);
        let want = format!("/docs/{file}");
        match hits.first() {
            Some((path, loc, _)) if *path == want && loc == location => {}
            _ => wrong.push(format!(
                "{phrase:?}: want {want} at {location:?}, got {:?}",
                hits.iter()
                    .map(|(p, l, _)| format!("{p} @ {l:?}"))
                    .collect::<Vec<_>>()
            )),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} phrases not found at their place:\n{}",
        wrong.len(),
        rows.len(),
        wrong.join("\n")
    );

    // The metadata as filters: kind, author (document properties), from and subject (mail).
    let filtered = |q: &str| -> std::collections::BTreeSet<String> {
        let v = env.json(["search", "--json", "--limit", "50", "--", q]);
        v["hits"]
            .as_array()
            .unwrap_or_else(|| panic!("search {q:?}: no hits array in {v}"))
            .iter()
            .map(|h| h["path"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let docs = |names: &[&str]| -> std::collections::BTreeSet<String> {
        names.iter().map(|n| format!("/docs/{n}")).collect()
    };
    for (q, want) in [
        ("kind:mbox", docs(&["sample.mbox"])),
        ("kind:email", docs(&["sample.eml"])),
        (
            "kind:xlsx",
            [
                "/docs/sample.xlsx".to_string(),
                "/hostile/bomb.xlsx".to_string(),
            ]
            .into(),
        ),
        ("from:pelican@example.org", docs(&["sample.mbox"])),
        ("subject:drone", docs(&["sample.eml"])),
        (
            "author:\"Sample Author\"",
            docs(&[
                "sample.odt",
                "sample.docx",
                "sample.rtf",
                "sample.epub",
                "sample.ods",
                "sample.xlsx",
                "sample.odp",
                "sample.pptx",
            ]),
        ),
    ] {
        assert_eq!(filtered(q), want, "search {q:?}");
    }

    // The hostile files: the truncated ODT is an error that names the format and the damage;
    // the bomb is indexed in part with a warning, its other sheet found; the braces are read.
    let errors = listed(&st, "errors");
    let warnings = listed(&st, "warnings");
    println!("errors: {errors:#?}\nwarnings: {warnings:#?}");
    let reason = errors
        .iter()
        .find(|(p, _)| p == "/hostile/truncated.odt")
        .map(|(_, r)| r.clone())
        .unwrap_or_else(|| panic!("the truncated ODT is not an index error: {errors:?}"));
    assert!(
        reason.contains("ODT") && reason.contains("zip"),
        "the truncated ODT's error should name the format and the damage: {reason:?}"
    );
    let reason = errors
        .iter()
        .find(|(p, _)| p == "/hostile/deep.eml")
        .map(|(_, r)| r.clone())
        .unwrap_or_else(|| panic!("the deeply nested e-mail is not an index error: {errors:?}"));
    assert!(
        reason.contains("EML") && reason.contains("multipart"),
        "the nested e-mail's error should say why: {reason:?}"
    );
    assert_eq!(
        errors.len(),
        2,
        "only the truncated ODT and the nested e-mail are errors: {errors:?}"
    );
    let bomb = warnings
        .iter()
        .find(|(p, _)| p == "/hostile/bomb.xlsx")
        .map(|(_, r)| r.clone())
        .unwrap_or_else(|| panic!("the zip bomb has no warning: {warnings:?}"));
    assert!(
        bomb.contains("XLSX") && bomb.contains("sheet2.xml") && bomb.contains("bound"),
        "{bomb:?}"
    );
    let hits = search(&env, "the bombproof walnut register");
    assert_eq!(
        hits.first().map(|h| (h.0.as_str(), h.1.as_deref())),
        Some(("/hostile/bomb.xlsx", Some("sheet Kept"))),
        "{hits:?}"
    );
    let hits = search(&env, "the fathomless brace lagoon");
    assert_eq!(
        hits.first().map(|h| h.0.as_str()),
        Some("/hostile/braces.rtf"),
        "{hits:?}"
    );

    // The mount still works: a new file is written, read back and found.
    let word = unique_marker("after");
    fs::write(
        m.p("docs/after.txt"),
        format!("written after the hostile files {word}\n"),
    )
    .unwrap();
    assert!(fs::read_to_string(m.p("docs/after.txt"))
        .unwrap()
        .contains(&word));
    env.json(["index", "--wait", "--timeout", "600", "--json"]);
    let hits = search(&env, &word);
    assert_eq!(
        hits.first().map(|h| h.0.as_str()),
        Some("/docs/after.txt"),
        "{hits:?}"
    );
    let names = dir_names(&m.p("docs"));
    assert_eq!(names.len(), files.len() + 1, "{names:?}");
    m.unmount();
}

//! Declarative views on a real mount: `@views` directories declared in views.toml or made
//! with mkdir, `@search/<text>`, entries as relative symlinks that every tool follows
//! (`ls`, `find -L`, `stat`, Python's `os.walk(followlinks=True)`), live updates as files
//! change, tags, and a broken views.toml that must not break the mount.
//!
//! Uses the real embedding model like search.rs (`source /var/cache/peros/env.sh`).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use peros_tests::*;

const LIVE_BOUND: Duration = Duration::from_secs(20);

fn poll<T>(what: &str, bound: Duration, f: impl FnMut() -> Option<T>) -> (T, Duration) {
    poll_every(what, bound, Duration::from_millis(100), f)
}

fn names(dir: &Path) -> Vec<String> {
    dir_names(dir)
}

fn getxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let out = Command::new("getfattr")
        .args(["--only-values", "-h", "-n", name])
        .arg(path)
        .output()
        .unwrap();
    out.status.success().then_some(out.stdout)
}

fn write_views(env: &Env, text: &str) {
    // Atomic replace, as editors do.
    let tmp = env.home.join("views.toml.edit");
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, env.home.join("views.toml")).unwrap();
}

fn corpus(root: &Path) {
    for (p, text) in [
        (
            "docs/tax/2023/receipt.txt",
            "Tax receipt for 2023: charitable donation, deductible.\n",
        ),
        (
            "docs/tax/2024/receipt.txt",
            "Tax receipt for 2024: home office expenses, deductible.\n",
        ),
        (
            "docs/notes/ideas.md",
            "# Ideas\nA garden with tomatoes and basil.\n",
        ),
        (
            "docs/notes/plan.md",
            "# Plan\nRepaint the kitchen in spring.\n",
        ),
        (
            "docs/odd name ü.txt",
            "A file with an odd name about tax forms.\n",
        ),
    ] {
        let path = root.join(p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
}

#[test]
fn views_browse_like_directories() {
    let env = Env::init();
    write_views(
        &env,
        "# my views\n[views]\ntaxes = \"tax\"\nmarkdown = { query = \"ext:md\", sort = \"name\" }\n",
    );
    let m = Mounted::new(&env, &[]);
    corpus(&m.dir);
    let root = names(&m.dir);
    assert!(
        root.contains(&"@views".into()) && root.contains(&"@search".into()),
        "{root:?}"
    );
    assert_eq!(names(&m.p("@views")), ["markdown", "taxes"]);
    // Stored directories list as before, the reserved names only at the root.
    assert_eq!(names(&m.p("docs/notes")), ["ideas.md", "plan.md"]);
    assert_eq!(names(&m.p("docs")), ["notes", "odd name ü.txt", "tax"]);

    let taxes = m.p("@views/taxes");
    let want = ["odd name ü.txt", "receipt (2023).txt", "receipt (2024).txt"];
    let (_, t) = poll("tax files in @views/taxes", LIVE_BOUND, || {
        (names(&taxes) == want).then_some(())
    });
    println!("files written -> listed in a view: {} ms", t.as_millis());
    let (_, _) = poll("markdown view", LIVE_BOUND, || {
        (names(&m.p("@views/markdown")) == ["ideas.md", "plan.md"]).then_some(())
    });

    // Every entry is a relative symlink to the real file, and reads its bytes.
    for (name, real) in [
        ("receipt (2023).txt", "docs/tax/2023/receipt.txt"),
        ("receipt (2024).txt", "docs/tax/2024/receipt.txt"),
        ("odd name ü.txt", "docs/odd name ü.txt"),
    ] {
        let entry = taxes.join(name);
        let meta = fs::symlink_metadata(&entry).unwrap();
        assert!(meta.file_type().is_symlink(), "{name} is not a symlink");
        let target = fs::read_link(&entry).unwrap();
        assert!(target.is_relative(), "{name} -> {}", target.display());
        assert_eq!(target, Path::new("../..").join(real));
        assert_eq!(
            fs::read(&entry).unwrap(),
            fs::read(m.p(real)).unwrap(),
            "{name}"
        );
        let followed = fs::metadata(&entry).unwrap();
        let direct = fs::metadata(m.p(real)).unwrap();
        assert_eq!(
            (followed.ino(), followed.len()),
            (direct.ino(), direct.len())
        );
        // The score: on the directory (Linux refuses user.* xattrs on symlinks).
        let score = getxattr(&taxes, &format!("user.peros.score.{name}"))
            .unwrap_or_else(|| panic!("no score xattr for {name}"));
        let score: f32 = String::from_utf8(score).unwrap().parse().unwrap();
        assert!(score > 0.0, "{name}: score {score}");
    }
    assert_eq!(getxattr(&taxes, "user.peros.query").unwrap(), b"tax");

    // ls -l, find -L, stat and Python all follow the entries.
    let ls = Command::new("ls").arg("-l").arg(&taxes).output().unwrap();
    let ls = String::from_utf8_lossy(&ls.stdout);
    assert!(
        ls.contains("receipt (2023).txt -> ../../docs/tax/2023/receipt.txt"),
        "{ls}"
    );
    let find = Command::new("find")
        .arg("-L")
        .arg(m.p("@views"))
        .args(["-type", "f"])
        .output()
        .unwrap();
    assert!(
        find.status.success(),
        "{}",
        String::from_utf8_lossy(&find.stderr)
    );
    let found = String::from_utf8_lossy(&find.stdout);
    assert_eq!(found.lines().count(), 5, "{found}");
    let stat = Command::new("stat")
        .args(["-L", "-c", "%s"])
        .arg(taxes.join("receipt (2024).txt"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&stat.stdout).trim(),
        fs::metadata(m.p("docs/tax/2024/receipt.txt"))
            .unwrap()
            .len()
            .to_string()
    );
    let py = Command::new("python3")
        .arg("-c")
        .arg(
            "import os,sys,hashlib\n\
             root=sys.argv[1]; n=0\n\
             for d,_,fs in os.walk(os.path.join(root,'@views'), followlinks=True):\n\
             \x20 for f in fs:\n\
             \x20   p=os.path.join(d,f); r=os.path.realpath(p)\n\
             \x20   assert r.startswith(root), r\n\
             \x20   assert open(p,'rb').read()==open(r,'rb').read(), p\n\
             \x20   n+=1\n\
             print(n)",
        )
        .arg(&m.dir)
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&py.stdout).trim(), "5");

    // Query directories are read-only; the reserved names cannot be taken.
    assert!(fs::write(taxes.join("new.txt"), b"x").is_err());
    assert!(fs::remove_file(taxes.join("receipt (2023).txt")).is_err());
    assert!(
        m.p("docs/tax/2023/receipt.txt").exists(),
        "a view removal must never touch a file"
    );
    assert!(fs::write(m.p("@views"), b"x").is_err());
    assert!(fs::create_dir(m.p("@search")).is_err());
    assert!(fs::rename(m.p("docs/notes"), m.p("@views")).is_err());

    // @search: any name is a query, not persisted.
    let s = m.p("@search/kitchen");
    assert_eq!(names(&s), ["plan.md"]);
    assert_eq!(
        fs::read(s.join("plan.md")).unwrap(),
        fs::read(m.p("docs/notes/plan.md")).unwrap()
    );
    assert!(
        fs::metadata(m.p("@search/.hidden")).is_err(),
        "dot names are not queries"
    );
    let bad = fs::read_dir(m.p("@search/size:>abc")).unwrap_err();
    assert_eq!(bad.raw_os_error(), Some(libc_einval()), "{bad}");
    assert!(!fs::read_to_string(env.home.join("views.toml"))
        .unwrap()
        .contains("kitchen"));
    m.unmount();
}

fn libc_einval() -> i32 {
    22
}

#[test]
fn mkdir_rmdir_and_views_toml_round_trip() {
    let env = Env::init();
    let m = Mounted::new(&env, &[]);
    corpus(&m.dir);
    let file = env.home.join("views.toml");

    // mkdir: the name is the query; views.toml records it.
    fs::create_dir(m.p("@views/ext:md")).unwrap();
    let text = fs::read_to_string(&file).unwrap();
    assert!(text.contains("\"ext:md\" = \"ext:md\""), "{text}");
    poll("mkdir view fills", LIVE_BOUND, || {
        (names(&m.p("@views/ext:md")) == ["ideas.md", "plan.md"]).then_some(())
    });
    let list = env.json(["views", "list", "--json"]);
    assert_eq!(list["views"][0]["name"], "ext:md", "{list}");
    // A bad query is refused, and nothing is written.
    let e = fs::create_dir(m.p("@views/size:>abc")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc_einval()));
    assert!(!fs::read_to_string(&file).unwrap().contains("abc"));

    // Rename, then rmdir: views.toml follows; files are untouched.
    fs::rename(m.p("@views/ext:md"), m.p("@views/notes")).unwrap();
    assert_eq!(names(&m.p("@views")), ["notes"]);
    // The renamed view is evaluated again in the background.
    poll("renamed view fills", LIVE_BOUND, || {
        (names(&m.p("@views/notes")) == ["ideas.md", "plan.md"]).then_some(())
    });
    fs::remove_dir(m.p("@views/notes")).unwrap();
    assert!(names(&m.p("@views")).is_empty());
    assert!(!fs::read_to_string(&file).unwrap().contains("ext:md"));
    assert!(m.p("docs/notes/ideas.md").exists());

    // Edits of views.toml apply live, keeping comments when the mount edits it back.
    write_views(&env, "# keep me\n[views]\ngarden = \"tomatoes\"\n");
    let (_, t) = poll("views.toml edit applies", LIVE_BOUND, || {
        (names(&m.p("@views/garden")) == ["ideas.md"]).then_some(())
    });
    println!("views.toml edit -> view listed: {} ms", t.as_millis());
    fs::create_dir(m.p("@views/tag:x")).unwrap();
    let text = fs::read_to_string(&file).unwrap();
    assert!(
        text.starts_with("# keep me") && text.contains("garden") && text.contains("tag:x"),
        "{text}"
    );

    // A broken file keeps the previous views, and says where it is broken.
    write_views(
        &env,
        "[views]\ngarden = \"tomatoes\"\nbroken = \"unterminated\n",
    );
    let (err, _) = poll("status reports the broken views.toml", LIVE_BOUND, || {
        env.status()["views"]["error"].as_str().map(str::to_string)
    });
    assert!(err.contains(":3:"), "error names line 3: {err}");
    assert_eq!(
        names(&m.p("@views")),
        ["garden", "tag:x"],
        "previous views kept"
    );
    assert_eq!(names(&m.p("@views/garden")), ["ideas.md"]);
    // mkdir while broken: refused, and the user's text is not overwritten.
    assert!(fs::create_dir(m.p("@views/ext:txt")).is_err());
    assert!(fs::read_to_string(&file).unwrap().contains("unterminated"));
    let st = env.ok(["status"]);
    assert!(st.contains("ERROR"), "{st}");
    // Fixed: applies, error gone.
    write_views(&env, "[views]\ngarden = \"tomatoes\"\n");
    poll("fixed views.toml applies", LIVE_BOUND, || {
        (names(&m.p("@views")) == ["garden"] && env.status()["views"]["error"].is_null())
            .then_some(())
    });
    m.unmount();
}

#[test]
fn views_follow_changes_live() {
    let env = Env::init();
    let word = unique_marker("lv");
    write_views(
        &env,
        &format!("[views]\nlive = \"{word}\"\nlogs = \"ext:log\"\n"),
    );
    let m = Mounted::new(&env, &[]);
    fs::create_dir_all(m.p("a")).unwrap();
    fs::create_dir_all(m.p("b")).unwrap();
    let view = m.p("@views/live");
    assert!(names(&view).is_empty());

    // A new matching file appears.
    let start = Instant::now();
    fs::write(m.p("a/report.txt"), format!("quarterly {word} numbers\n")).unwrap();
    poll("new file appears in its view", LIVE_BOUND, || {
        (names(&view) == ["report.txt"]).then_some(())
    });
    println!(
        "new matching file -> in view: {} ms",
        start.elapsed().as_millis()
    );

    // Two files with the same name in one view.
    fs::write(m.p("b/report.txt"), format!("annual {word} numbers\n")).unwrap();
    poll("same-name files disambiguated", LIVE_BOUND, || {
        (names(&view) == ["report (a).txt", "report (b).txt"]).then_some(())
    });
    assert_eq!(
        fs::read(view.join("report (b).txt")).unwrap(),
        fs::read(m.p("b/report.txt")).unwrap()
    );

    // Changed so it no longer matches: leaves. Deleted: leaves.
    fs::write(m.p("a/report.txt"), b"nothing to see\n").unwrap();
    poll("changed file leaves", LIVE_BOUND, || {
        (names(&view) == ["report.txt"]).then_some(())
    });
    assert_eq!(
        fs::read(view.join("report.txt")).unwrap(),
        fs::read(m.p("b/report.txt")).unwrap()
    );
    fs::remove_file(m.p("b/report.txt")).unwrap();
    poll("deleted file leaves", LIVE_BOUND, || {
        names(&view).is_empty().then_some(())
    });

    // Renamed: the link follows the new path.
    fs::write(m.p("a/x.log"), b"log line\n").unwrap();
    poll("log view", LIVE_BOUND, || {
        (names(&m.p("@views/logs")) == ["x.log"]).then_some(())
    });
    fs::rename(m.p("a/x.log"), m.p("b/x.log")).unwrap();
    poll("renamed file relinked", LIVE_BOUND, || {
        (fs::read_link(m.p("@views/logs/x.log")).ok()? == Path::new("../../b/x.log")).then_some(())
    });
    assert_eq!(fs::read(m.p("@views/logs/x.log")).unwrap(), b"log line\n");
    m.unmount();
}

#[test]
fn tags_from_the_command_line_and_xattrs() {
    let env = Env::init();
    write_views(&env, "[views]\ntaxed = \"tag:tax\"\n");
    let m = Mounted::new(&env, &[]);
    corpus(&m.dir);
    let out = env.json(["tag", "/docs/notes/plan.md", "+tax", "+home", "--json"]);
    assert_eq!(out[0]["tags"], serde_json::json!(["tax", "home"]), "{out}");
    assert_eq!(
        getxattr(&m.p("docs/notes/plan.md"), "user.peros.tags").unwrap(),
        b"tax,home"
    );
    poll("tagged file in tag view", LIVE_BOUND, || {
        (names(&m.p("@views/taxed")) == ["plan.md"]).then_some(())
    });
    // A tag set with setfattr in the mount counts too; a path inside the mount works.
    sh(&format!(
        "setfattr -n user.peros.tags -v tax '{}'",
        m.p("docs/notes/ideas.md").display()
    ));
    poll("setfattr tag", LIVE_BOUND, || {
        (names(&m.p("@views/taxed")) == ["ideas.md", "plan.md"]).then_some(())
    });
    let mount_path = m.p("docs/notes/plan.md");
    env.ok(["tag".as_ref(), mount_path.as_os_str(), "-tax".as_ref()]);
    poll("untagged file leaves", LIVE_BOUND, || {
        (names(&m.p("@views/taxed")) == ["ideas.md"]).then_some(())
    });
    let shown = env.ok(["tag", "/docs/notes/plan.md"]);
    assert!(shown.contains("home") && !shown.contains("tax"), "{shown}");
    let bad = env.fails(["tag", "/docs/notes/plan.md", "+two words"]);
    assert!(stderr(&bad).contains("bad tag"), "{}", stderr(&bad));
    let missing = env.fails(["tag", "/nope.txt", "+x"]);
    assert!(
        stderr(&missing).contains("nope.txt"),
        "{}",
        stderr(&missing)
    );
    m.unmount();
}

#[test]
fn views_cli_without_a_daemon() {
    let env = Env::init();
    let src = env.path("src");
    corpus(&src);
    env.ok([
        "import".as_ref(),
        src.join("docs").as_os_str(),
        "/docs".as_ref(),
    ]);
    env.ok([
        "views", "add", "recent", "ext:txt", "--sort", "name", "--limit", "2",
    ]);
    let dup = env.fails(["views", "add", "recent", "ext:md"]);
    assert!(stderr(&dup).contains("--replace"), "{}", stderr(&dup));
    let bad = env.fails(["views", "add", "x", "modified:>notadate"]);
    assert!(stderr(&bad).contains("modified"), "{}", stderr(&bad));
    let shown = env.json(["views", "show", "recent", "--json"]);
    let entries: Vec<&str> = shown["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(entries, ["odd name ü.txt", "receipt.txt"], "{shown}");
    assert_eq!(shown["limit"], 2);
    env.ok(["views", "rm", "recent"]);
    let gone = env.fails(["views", "show", "recent"]);
    assert!(stderr(&gone).contains("views list"), "{}", stderr(&gone));
    // A broken views.toml is reported by status and list, with its line.
    fs::write(env.home.join("views.toml"), "[views]\na = \n").unwrap();
    let st = env.status();
    assert!(
        st["views"]["error"].as_str().unwrap_or("").contains(":2:"),
        "{st}"
    );
    // ...and a mount still comes up, with no views.
    let m = Mounted::new(&env, &[]);
    assert!(names(&m.p("@views")).is_empty());
    assert_eq!(
        fs::read(m.p("docs/tax/2023/receipt.txt")).unwrap(),
        fs::read(src.join("docs/tax/2023/receipt.txt")).unwrap()
    );
    m.unmount();
}

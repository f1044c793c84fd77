//! The command surface: `rm`, `ls`, `status`, exit codes and messages.

use std::ffi::OsStr;
use std::fs;

use peros_tests::*;

fn sample_store() -> Env {
    let env = Env::init();
    let src = env.path("src");
    write_file(&src.join("a.txt"), b"alpha\n");
    write_random(&src.join("dir/b.bin"), 1, 5000);
    write_file(&src.join("dir/ünï cødé.txt"), b"u\n");
    fs::create_dir_all(src.join("dir/empty")).unwrap();
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
    set_mode(&src.join("a.txt"), 0o640);
    set_mtime(&src.join("a.txt"), 1_600_000_000, 0);
    env.ok([OsStr::new("import"), src.as_os_str(), "/src".as_ref()]);
    env
}

#[test]
fn rm_of_a_directory_needs_r() {
    let env = sample_store();
    let out = env.fails(["rm", "/src/dir"]);
    let err = stderr(&out);
    assert!(err.contains("/src/dir") && err.contains("-r"), "{err}");
    // Nothing was removed.
    assert_eq!(env.cat("/src/dir/b.bin"), random_bytes(1, 5000));
    env.ok(["ls", "/src/dir/empty"]);

    // Removing a file, then a tree.
    env.ok(["rm", "/src/a.txt"]);
    env.fails(["cat", "/src/a.txt"]);
    env.ok(["rm", "-r", "/src/dir"]);
    let out = env.fails(["ls", "/src/dir"]);
    assert!(stderr(&out).contains("no such file"), "{}", stderr(&out));
    let names: Vec<_> = env
        .json(["ls", "/src", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].clone())
        .collect();
    assert_eq!(names, vec![Value::from("link")]);

    // Errors: missing path, the root.
    let out = env.fails(["rm", "/src/nope"]);
    assert!(stderr(&out).contains("/src/nope"), "{}", stderr(&out));
    env.fails(["rm", "-r", "/"]);
    env.ok(["ls", "/src"]);

    let st = env.status()["stats"].clone();
    assert_eq!(st["files"], 0, "{st}");
    assert_eq!(st["symlinks"], 1, "{st}");
    env.ok(["fsck"]);
}

#[test]
fn ls_json_lists_entries_with_attributes() {
    let env = sample_store();
    let v = env.json(["ls", "/src", "--json"]);
    let list = v.as_array().expect("an array");
    let names: Vec<_> = list.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a.txt", "dir", "link"]);
    let a = &list[0];
    assert_eq!(a["kind"], "file");
    assert_eq!(a["size"], 6);
    assert_eq!(a["mode"], "640");
    assert_eq!(a["nlink"], 1);
    assert_eq!(a["mtime"], "2020-09-13T12:26:40Z");
    assert_eq!(list[1]["kind"], "dir");
    assert_eq!(list[2]["kind"], "symlink");
    assert_eq!(
        list[2]["size"], 5,
        "a symlink's size is its target's length"
    );

    let v = env.json(["ls", "/src/dir", "--json"]);
    let names: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["b.bin", "empty", "ünï cødé.txt"]);

    // ls of a file lists that file; ls of the root lists /src.
    let v = env.json(["ls", "/src/a.txt", "--json"]);
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["name"], "a.txt");
    let v = env.json(["ls", "--json"]);
    assert_eq!(
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].clone())
            .collect::<Vec<_>>(),
        [Value::from("src")]
    );
    assert_eq!(
        env.json(["ls", "/src/dir/empty", "--json"]),
        Value::Array(vec![])
    );

    // Plain and long formats.
    assert_eq!(env.ok(["ls", "/src"]), "a.txt\ndir\nlink\n");
    let long = env.ok(["ls", "-l", "/src"]);
    assert!(long.contains("link -> a.txt"), "{long}");
    assert!(long.lines().next().unwrap().starts_with("-0640"), "{long}");

    let out = env.fails(["ls", "/nope"]);
    assert!(stderr(&out).contains("/nope"), "{}", stderr(&out));
}

#[test]
fn status_json_parses() {
    let env = Env::init();
    let v = env.status();
    assert!(v["home"].as_str().is_some(), "{v}");
    assert!(v["public_key"].as_str().unwrap().starts_with("age1"), "{v}");
    assert!(v["backend"].as_str().is_some(), "{v}");
    let st = &v["stats"];
    for k in [
        "files",
        "dirs",
        "symlinks",
        "logical_bytes",
        "objects",
        "stored_bytes",
        "versions",
    ] {
        assert!(st[k].as_u64().is_some(), "stats.{k} missing: {v}");
    }
    assert_eq!(st["files"], 0);
    assert_eq!(st["dirs"], 1, "the root");
    assert_eq!(st["objects"], 0);

    let env = sample_store();
    let v = env.status();
    let st = &v["stats"];
    assert_eq!(st["files"], 3, "{v}");
    assert_eq!(st["dirs"], 4, "root, /src, /src/dir, /src/dir/empty: {v}");
    assert_eq!(st["symlinks"], 1, "{v}");
    assert_eq!(st["logical_bytes"], 6 + 5000 + 2, "{v}");
    assert_eq!(st["objects"], 3, "{v}");
    assert!(st["stored_bytes"].as_u64().unwrap() > 5008, "{v}");
    assert!(v["stored_per_logical"].as_f64().unwrap() > 1.0, "{v}");
    // The human form too.
    let text = env.ok(["status"]);
    assert!(
        text.contains("files:") && text.contains("objects:"),
        "{text}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let env = Env::init();
    for args in [
        vec!["frobnicate"],
        vec!["cat"],
        vec!["restore", "/x"],
        vec!["ls", "--bogus"],
    ] {
        let out = env.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"));
    }
    let out = env.run(["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("import"));
}

#[test]
fn import_errors_are_clean() {
    let env = Env::init();
    let missing = env.path("does-not-exist");
    let out = env.fails([OsStr::new("import"), missing.as_os_str(), "/x".as_ref()]);
    assert!(stderr(&out).contains("does-not-exist"), "{}", stderr(&out));
    // Importing onto the root itself is refused with a hint.
    let f = env.path("f");
    write_file(&f, b"x");
    let out = env.fails([OsStr::new("import"), f.as_os_str(), "/".as_ref()]);
    assert!(stderr(&out).contains("root"), "{}", stderr(&out));
    // Without DEST, the name of SRC is used.
    env.ok([OsStr::new("import"), f.as_os_str()]);
    assert_eq!(env.cat("/f"), b"x");
    // A file where a directory is needed.
    let out = env.fails([OsStr::new("import"), f.as_os_str(), "/f/g".as_ref()]);
    assert!(stderr(&out).contains("not a directory"), "{}", stderr(&out));
    // cat of a directory.
    let out = env.fails(["cat", "/"]);
    assert!(stderr(&out).contains("directory"), "{}", stderr(&out));
}

/// The agent, views, indexer and store act through store and indexer APIs; only the mount
/// (`peros-fs`) and the CLI that starts it may link the FUSE crate.
#[test]
fn only_the_mount_depends_on_fuse() {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for krate in ["peros-agent", "peros-views", "peros-indexer", "peros-store"] {
        let out = std::process::Command::new(env!("CARGO"))
            .args([
                "tree",
                "--offline",
                "--edges",
                "normal",
                "--prefix",
                "none",
                "-p",
                krate,
            ])
            .current_dir(&workspace)
            .output()
            .expect("cargo tree runs");
        assert!(
            out.status.success(),
            "cargo tree -p {krate}: {}",
            stderr(&out)
        );
        let tree = String::from_utf8_lossy(&out.stdout);
        assert!(
            tree.lines().count() > 5,
            "cargo tree -p {krate} listed nothing:\n{tree}"
        );
        for forbidden in ["fuser ", "peros-fs "] {
            assert!(
                !tree.lines().any(|l| l.starts_with(forbidden)),
                "{krate} depends on {forbidden}:\n{tree}"
            );
        }
    }
}

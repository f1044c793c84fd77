//! Damaged and missing objects, `fsck`, `gc`, and deduplication of identical content.

use std::ffi::OsStr;
use std::fs;
use std::path::PathBuf;

use peros_tests::*;

/// A store holding `/docs` (several files) and `/victim dir/the victim.bin`, whose single chunk
/// is the one object returned (found as the only object that its import added).
fn store_with_victim() -> (Env, PathBuf, PathBuf) {
    let env = Env::init();
    let src = env.path("docs");
    write_file(&src.join("a.txt"), b"alpha alpha alpha\n");
    write_random(&src.join("b.bin"), 1, CHUNK + 10);
    write_random(&src.join("sub/c.bin"), 2, 300_000);
    env.ok([OsStr::new("import"), src.as_os_str(), "/docs".as_ref()]);
    let before = env.objects();

    let victim = env.path("victim.bin");
    write_random(&victim, 3, 200_000);
    env.ok([
        OsStr::new("import"),
        victim.as_os_str(),
        "/victim dir/the victim.bin".as_ref(),
    ]);
    let after = env.objects();
    assert!(before.is_subset(&after));
    let new: Vec<_> = after.difference(&before).cloned().collect();
    assert_eq!(
        new.len(),
        1,
        "importing one small file should add one object: {new:?}"
    );
    let object = env.objects_dir().join(&new[0]);
    (env, src, object)
}

fn check_other_files_read(env: &Env, src: &std::path::Path) {
    assert_eq!(env.cat("/docs/a.txt"), fs::read(src.join("a.txt")).unwrap());
    assert_eq!(
        hash_bytes(&env.cat("/docs/b.bin")),
        hash_file(&src.join("b.bin"))
    );
    assert_eq!(
        hash_bytes(&env.cat("/docs/sub/c.bin")),
        hash_file(&src.join("sub/c.bin"))
    );
}

fn fsck_problems(env: &Env) -> Vec<Value> {
    // --json still exits 3 when there are problems: run it without `ok`.
    let out = env.run(["fsck", "--json"]);
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("fsck --json printed invalid JSON ({e}): {}", stdout(&out)));
    let problems = v["problems"].as_array().expect("problems array").clone();
    let want = if problems.is_empty() { 0 } else { 3 };
    assert_eq!(out.status.code(), Some(want), "fsck --json exit code: {v}");
    problems
}

#[test]
fn flipped_byte_in_a_chunk_is_reported_and_contained() {
    let (env, src, object) = store_with_victim();
    assert_eq!(
        hash_bytes(&env.cat("/victim dir/the victim.bin")),
        hash_file(&env.path("victim.bin"))
    );
    assert!(fsck_problems(&env).is_empty());

    let mut data = fs::read(&object).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0x01;
    fs::write(&object, &data).unwrap();

    // cat fails, naming the file, without a panic.
    let out = env.fails(["cat", "/victim dir/the victim.bin"]);
    let err = stderr(&out);
    assert!(
        err.contains("/victim dir/the victim.bin"),
        "the error should name the file: {err}"
    );
    assert!(
        err.contains("damaged"),
        "the error should say the chunk is damaged: {err}"
    );
    assert!(
        err.contains("peros fsck"),
        "the error should point to fsck: {err}"
    );

    // Exporting the tree that holds it fails the same way and leaves no partial file.
    let out_dir = env.path("out");
    let out = env.fails([
        OsStr::new("export"),
        "/victim dir".as_ref(),
        out_dir.as_os_str(),
    ]);
    assert!(
        stderr(&out).contains("/victim dir/the victim.bin"),
        "{}",
        stderr(&out)
    );
    if out_dir.exists() {
        for e in walkdir::WalkDir::new(&out_dir) {
            let e = e.unwrap();
            assert!(
                !e.file_name().to_string_lossy().contains("peros-partial"),
                "partial file left: {}",
                e.path().display()
            );
            assert!(
                !e.file_type().is_file(),
                "a damaged file was exported: {}",
                e.path().display()
            );
        }
    }

    // fsck: exit code 3, the path in its output.
    let out = env.run(["fsck"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "fsck exit code\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(!stderr(&out).contains("panicked"));
    assert!(
        stdout(&out).contains("/victim dir/the victim.bin"),
        "{}",
        stdout(&out)
    );
    let problems = fsck_problems(&env);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(
        problems[0]["path"], "/victim dir/the victim.bin",
        "{problems:?}"
    );
    assert_eq!(problems[0]["kind"], "damaged-chunk", "{problems:?}");

    // Everything else still reads.
    check_other_files_read(&env, &src);
    let docs_out = env.path("docs-out");
    env.ok([OsStr::new("export"), "/docs".as_ref(), docs_out.as_os_str()]);
    assert_same_tree(
        "export of the undamaged tree",
        &snapshot(&src),
        &snapshot(&docs_out),
    );

    // Putting the original bytes back repairs the store.
    data[mid] ^= 0x01;
    fs::write(&object, &data).unwrap();
    assert!(fsck_problems(&env).is_empty());
    assert_eq!(
        hash_bytes(&env.cat("/victim dir/the victim.bin")),
        hash_file(&env.path("victim.bin"))
    );
}

#[test]
fn damaged_header_and_truncated_object_are_reported() {
    let (env, src, object) = store_with_victim();
    let original = fs::read(&object).unwrap();
    for (what, damaged) in [
        ("first byte flipped", {
            let mut d = original.clone();
            d[0] ^= 0x20;
            d
        }),
        ("last byte flipped", {
            let mut d = original.clone();
            *d.last_mut().unwrap() ^= 0x80;
            d
        }),
        ("truncated", original[..original.len() - 100].to_vec()),
        ("empty", Vec::new()),
    ] {
        fs::write(&object, &damaged).unwrap();
        let out = env.fails(["cat", "/victim dir/the victim.bin"]);
        assert!(
            stderr(&out).contains("/victim dir/the victim.bin"),
            "{what}: {}",
            stderr(&out)
        );
        let problems = fsck_problems(&env);
        assert_eq!(problems.len(), 1, "{what}: {problems:?}");
        assert_eq!(problems[0]["path"], "/victim dir/the victim.bin", "{what}");
        check_other_files_read(&env, &src);
    }
}

#[test]
fn missing_object_is_reported() {
    let (env, src, object) = store_with_victim();
    fs::remove_file(&object).unwrap();
    let out = env.fails(["cat", "/victim dir/the victim.bin"]);
    assert!(
        stderr(&out).contains("/victim dir/the victim.bin"),
        "{}",
        stderr(&out)
    );
    let problems = fsck_problems(&env);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0]["kind"], "missing-chunk");
    assert_eq!(problems[0]["path"], "/victim dir/the victim.bin");
    // --quick checks presence, so it sees this too.
    let out = env.run(["fsck", "--quick"]);
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(stdout(&out).contains("/victim dir/the victim.bin"));
    check_other_files_read(&env, &src);
    // gc must not make things worse (nothing references a missing object... but the file
    // still does, so its record stays; other files stay readable).
    env.ok(["gc"]);
    check_other_files_read(&env, &src);
}

#[test]
fn gc_removes_stray_objects_only() {
    let env = Env::init();
    let src = env.path("src");
    write_random(&src.join("big"), 11, 2 * CHUNK + 5);
    write_file(&src.join("small"), b"small file\n");
    write_file(&src.join("empty"), b"");
    env.ok([OsStr::new("import"), src.as_os_str(), "/src".as_ref()]);
    // A deleted file: its chunks stay referenced by its versions.
    let gone = env.path("gone");
    write_random(&gone, 12, 50_000);
    env.ok([OsStr::new("import"), gone.as_os_str(), "/gone".as_ref()]);
    env.ok(["rm", "/gone"]);

    let objects_before = env.objects();
    let stats_before = env.status()["stats"].clone();

    // Nothing to collect yet.
    let report = env.json(["gc", "--json"]);
    assert_eq!(report["objects_removed"], 0, "{report}");
    assert_eq!(env.objects(), objects_before);

    // Stray objects: one in an odd fan-out directory, one where a real object would go.
    let hex: String = (0..64)
        .map(|i| b"0123456789abcdef"[(i * 7) % 16] as char)
        .collect();
    let stray1 = env.objects_dir().join("chunks/zz").join(&hex);
    let stray2 = env
        .objects_dir()
        .join(format!("chunks/{}/{}", &hex[..2], hex.replace('0', "f")));
    for s in [&stray1, &stray2] {
        write_random_parent(s);
    }
    assert_eq!(env.objects().len(), objects_before.len() + 2);

    let report = env.json(["gc", "--json"]);
    assert_eq!(report["objects_removed"], 2, "{report}");
    assert_eq!(report["bytes_freed"], 2 * 1000, "{report}");
    assert!(
        !stray1.exists() && !stray2.exists(),
        "gc left a stray object"
    );
    assert_eq!(
        env.objects(),
        objects_before,
        "gc removed a referenced object"
    );
    assert_eq!(env.status()["stats"], stats_before);

    // Still consistent and readable, deleted file restorable.
    assert!(fsck_problems(&env).is_empty());
    for name in ["big", "small", "empty"] {
        assert_eq!(
            hash_bytes(&env.cat(format!("/src/{name}"))),
            hash_file(&src.join(name))
        );
    }
    env.ok(["restore", "/gone", "--version", "1"]);
    assert_eq!(hash_bytes(&env.cat("/gone")), hash_file(&gone));
}

fn write_random_parent(p: &std::path::Path) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    write_random(p, 99, 1000);
}

#[test]
fn identical_content_is_stored_once() {
    let two_dirs = |env: &Env| {
        let a = env.path("a");
        write_random(&a.join("one.bin"), 42, 5 * MIB);
        write_random(&a.join("two.bin"), 42, 5 * MIB);
        let b = env.path("b");
        write_random(&b.join("three.bin"), 42, 5 * MIB);
        env.ok([OsStr::new("import"), a.as_os_str(), "/a".as_ref()]);
        env.ok([OsStr::new("import"), b.as_os_str(), "/elsewhere/b".as_ref()]);
    };
    let disk_bytes = |env: &Env| -> u64 {
        env.objects()
            .iter()
            .map(|p| fs::metadata(env.objects_dir().join(p)).unwrap().len())
            .sum()
    };
    let check_reads = |env: &Env| {
        let want = hash_bytes(&random_bytes(42, 5 * MIB));
        for p in ["/a/one.bin", "/a/two.bin", "/elsewhere/b/three.bin"] {
            assert_eq!(hash_bytes(&env.cat(p)), want, "{p}");
        }
    };

    // One copy first; then the three copies add nothing at all.
    let env = Env::init();
    let single = env.path("single.bin");
    write_random(&single, 42, 5 * MIB);
    env.ok([
        OsStr::new("import"),
        single.as_os_str(),
        "/single.bin".as_ref(),
    ]);
    let one_copy = env.status()["stats"].clone();
    assert_eq!(one_copy["objects"], 2, "5 MiB = 2 chunks: {one_copy}");
    let objects_one_copy = env.objects();
    two_dirs(&env);
    let got = env.status()["stats"].clone();
    assert_eq!(got["files"], 4, "{got}");
    assert_eq!(got["logical_bytes"], 20 * MIB as u64, "{got}");
    assert_eq!(
        got["objects"], one_copy["objects"],
        "objects: 4 copies vs 1: {got} vs {one_copy}"
    );
    assert_eq!(
        got["stored_bytes"], one_copy["stored_bytes"],
        "{got} vs {one_copy}"
    );
    assert_eq!(env.objects(), objects_one_copy, "no object was added");
    assert_eq!(Some(disk_bytes(&env)), got["stored_bytes"].as_u64());
    check_reads(&env);

    // In a fresh store, the three copies take what one copy takes. (Sealed sizes differ a
    // little between stores: age adds a random-length "grease" stanza to each header.)
    let fresh = Env::init();
    two_dirs(&fresh);
    let got = fresh.status()["stats"].clone();
    assert_eq!(got["files"], 3, "{got}");
    assert_eq!(got["objects"], 2, "{got}");
    assert_eq!(fresh.objects().len(), 2);
    let stored = got["stored_bytes"].as_u64().unwrap();
    assert_eq!(disk_bytes(&fresh), stored, "stored_bytes matches the disk");
    let single_stored = one_copy["stored_bytes"].as_u64().unwrap();
    assert!(
        stored.abs_diff(single_stored) < 1024,
        "three copies stored {stored} bytes, one copy {single_stored}"
    );
    assert!(stored < 5 * MIB as u64 + 4096, "{stored}");
    check_reads(&fresh);
}

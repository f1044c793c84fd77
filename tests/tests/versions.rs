//! Versions: `peros log` lists them (also for deleted paths), `peros restore` brings them back.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use peros_tests::*;

fn log(env: &Env, path: &str) -> Vec<Value> {
    env.json(["log", path, "--json"])
        .as_array()
        .unwrap_or_else(|| panic!("log --json of {path} is not an array"))
        .clone()
}

fn import(env: &Env, src: &Path, dest: &str) {
    env.ok([OsStr::new("import"), src.as_os_str(), dest.as_ref()]);
}

/// Exports store path `p` and returns (content, mode, mtime) of the copy.
fn exported(env: &Env, p: &str, name: &str) -> (Vec<u8>, u32, (i64, i64)) {
    let out = env.path(name);
    env.ok([OsStr::new("export"), p.as_ref(), out.as_os_str()]);
    let m = fs::metadata(&out).unwrap();
    (
        fs::read(&out).unwrap(),
        m.mode() & 0o7777,
        (m.mtime(), m.mtime_nsec()),
    )
}

#[test]
fn reimport_of_a_modified_file_keeps_the_old_version() {
    let env = Env::init();
    let src = env.path("src");
    let f = src.join("f.bin");
    let v1 = random_bytes(1, CHUNK + 1234);
    write_file(&f, &v1);
    set_mode(&f, 0o640);
    set_mtime(&f, 1_600_000_000, 111);
    write_file(&src.join("other"), b"unchanged");
    import(&env, &src, "/d");

    let versions = log(&env, "/d/f.bin");
    assert_eq!(versions.len(), 1, "{versions:?}");
    assert_eq!(versions[0]["version"], 1);
    assert_eq!(versions[0]["size"], v1.len() as u64);
    assert_eq!(versions[0]["deleted"], false);

    // The same tree again adds no version.
    import(&env, &src, "/d");
    assert_eq!(
        log(&env, "/d/f.bin").len(),
        1,
        "re-import of unchanged content"
    );

    let v2 = random_bytes(2, 2 * CHUNK + 5);
    write_file(&f, &v2);
    set_mtime(&f, 1_700_000_000, 222);
    import(&env, &src, "/d");
    assert_eq!(env.cat("/d/f.bin"), v2);
    let versions = log(&env, "/d/f.bin");
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert_eq!(versions[1]["version"], 2);
    assert_eq!(versions[1]["size"], v2.len() as u64);
    assert_eq!(versions[1]["deleted"], false);
    assert_eq!(
        versions[0]["size"],
        v1.len() as u64,
        "version 1 is unchanged"
    );
    assert_eq!(
        log(&env, "/d/other").len(),
        1,
        "an unchanged file gets no version"
    );

    // The human-readable log names both.
    let text = env.ok(["log", "/d/f.bin"]);
    assert!(text.contains("current"), "{text}");
    assert_eq!(text.lines().count(), 3, "header + 2 versions:\n{text}");

    env.ok(["restore", "/d/f.bin", "--version", "1"]);
    assert_eq!(env.cat("/d/f.bin"), v1, "restored version 1");
    let (data, mode, mtime) = exported(&env, "/d/f.bin", "restored-v1");
    assert_eq!(data, v1);
    assert_eq!(mode, 0o640, "restore keeps the mode");
    assert_eq!(
        mtime,
        (1_600_000_000, 111),
        "restore brings back the version's mtime"
    );
    let versions = log(&env, "/d/f.bin");
    let last = versions.last().unwrap();
    assert_eq!(last["size"], v1.len() as u64, "{versions:?}");
    assert_eq!(last["deleted"], false);

    // And forward again.
    env.ok(["restore", "/d/f.bin", "--version", "2"]);
    assert_eq!(env.cat("/d/f.bin"), v2);
    env.ok(["fsck"]);
}

#[test]
fn deleted_file_can_be_listed_and_restored() {
    let env = Env::init();
    let src = env.path("src");
    let g = src.join("sub dir/g ü.bin");
    let content = random_bytes(3, 2 * CHUNK + 7);
    write_file(&g, &content);
    set_mode(&g, 0o604);
    set_mtime(&g, 1_650_000_000, 333);
    let small = src.join("small.txt");
    write_file(&small, b"small\n");
    set_mode(&small, 0o644);
    set_mtime(&small, 1_650_000_100, 0);
    import(&env, &src, "/d");

    env.ok(["rm", "/d/sub dir/g ü.bin"]);
    let out = env.fails(["cat", "/d/sub dir/g ü.bin"]);
    assert!(stderr(&out).contains("no such file"), "{}", stderr(&out));
    env.fails(["ls", "/d/sub dir/g ü.bin"]);

    let versions = log(&env, "/d/sub dir/g ü.bin");
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert_eq!(versions[0]["deleted"], false);
    assert_eq!(versions[0]["size"], content.len() as u64);
    assert_eq!(versions[1]["deleted"], true);
    let text = env.ok(["log", "/d/sub dir/g ü.bin"]);
    assert!(text.contains("deleted"), "{text}");

    // The version that records the deletion cannot be restored: say which to pick.
    let out = env.fails(["restore", "/d/sub dir/g ü.bin", "--version", "2"]);
    assert!(stderr(&out).contains("earlier version"), "{}", stderr(&out));
    // A version that does not exist.
    let out = env.fails(["restore", "/d/sub dir/g ü.bin", "--version", "9"]);
    assert!(stderr(&out).contains("peros log"), "{}", stderr(&out));

    env.ok(["restore", "/d/sub dir/g ü.bin", "--version", "1"]);
    assert_eq!(env.cat("/d/sub dir/g ü.bin"), content);
    let (data, mode, mtime) = exported(&env, "/d/sub dir/g ü.bin", "g-restored");
    assert_eq!(data, content);
    assert_eq!(mtime, (1_650_000_000, 333));
    assert_eq!(mode, 0o604, "a restored file keeps its mode");

    // A whole tree removed: files come back with their parent directories.
    env.ok(["rm", "-r", "/d"]);
    env.fails(["ls", "/d"]);
    let versions = log(&env, "/d/small.txt");
    assert_eq!(versions.last().unwrap()["deleted"], true, "{versions:?}");
    env.ok(["restore", "/d/small.txt", "--version", "1"]);
    assert_eq!(env.cat("/d/small.txt"), b"small\n");
    let v = log(&env, "/d/sub dir/g ü.bin");
    let n = v
        .iter()
        .rev()
        .find(|v| v["deleted"] == false)
        .map(|v| v["version"].as_u64().unwrap())
        .expect("a non-deleted version");
    env.ok(["restore", "/d/sub dir/g ü.bin", "--version", &n.to_string()]);
    assert_eq!(env.cat("/d/sub dir/g ü.bin"), content);

    // After gc, everything restored still reads; fsck is clean.
    env.ok(["gc"]);
    assert_eq!(env.cat("/d/sub dir/g ü.bin"), content);
    env.ok(["fsck"]);
}

#[test]
fn log_of_an_unknown_path_fails_clearly() {
    let env = Env::init();
    let out = env.fails(["log", "/never/was"]);
    assert!(stderr(&out).contains("/never/was"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no recorded versions"),
        "{}",
        stderr(&out)
    );
}

//! Bad input everywhere: clear errors, nothing lost.
//!
//! Wrong key, missing key file, corrupt config, invalid queries, odd and over-long file names
//! through the mount, huge and sparse files, a full disk under PEROS_HOME, a read-only
//! PEROS_HOME, a second daemon on the same store. (Wrong/missing passphrase: security.rs;
//! damaged objects: integrity.rs and tamper.rs; views.toml: views.rs.)

use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use peros_tests::*;

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A store with two files, for the key tests.
fn small_store() -> Env {
    let env = Env::init();
    let src = env.path("src");
    write_file(&src.join("a.txt"), b"alpha\n");
    write_random(&src.join("b.bin"), 3, 100_000);
    env.ok([OsStr::new("import"), src.as_os_str(), "/src".as_ref()]);
    env
}

#[test]
fn key_of_another_store_is_refused_before_anything_changes() {
    let env = small_store();
    let other = Env::init();
    let key = env.home.join("keys/identity.age");
    let mine = fs::read(&key).unwrap();
    fs::remove_file(&key).unwrap();
    fs::copy(other.home.join("keys/identity.age"), &key).unwrap();
    let before = snapshot(&env.home);
    for args in [
        vec!["ls", "/src"],
        vec!["cat", "/src/a.txt"],
        vec!["status"],
        vec!["fsck"],
        vec!["gc"],
    ] {
        let out = env.fails(&args);
        let err = stderr(&out);
        assert!(
            err.contains("does not belong to this store") && err.contains("identity.age"),
            "{args:?}: the error should say the key is not this store's: {err}"
        );
    }
    let mnt = env.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let out = env.fails([OsStr::new("mount"), mnt.as_os_str()]);
    assert!(
        stderr(&out).contains("does not belong to this store"),
        "{}",
        stderr(&out)
    );
    assert!(!is_mounted(&mnt));
    // Nothing was changed: objects and keys as before. (redb itself may rewrite its file's
    // header when opened and closed, so the metadata file is checked by reading it back.)
    let after = snapshot(&env.home);
    for (k, v) in &before {
        if k.starts_with(b"objects") || k.starts_with(b"keys") {
            assert_eq!(after.get(k), Some(v), "{} changed", show(k));
        }
    }
    assert_eq!(
        after.keys().filter(|k| k.starts_with(b"objects")).count(),
        before.keys().filter(|k| k.starts_with(b"objects")).count(),
        "objects added or removed"
    );
    // The right key back: everything reads.
    fs::remove_file(&key).unwrap();
    fs::write(&key, &mine).unwrap();
    assert_eq!(env.cat("/src/a.txt"), b"alpha\n");
    env.ok(["fsck"]);
}

#[test]
fn missing_key_file_is_named_and_init_refuses_to_replace_it() {
    let env = small_store();
    let key = env.home.join("keys/identity.age");
    let saved = fs::read(&key).unwrap();
    fs::remove_file(&key).unwrap();
    for args in [vec!["ls", "/"], vec!["cat", "/src/a.txt"], vec!["status"]] {
        let out = env.fails(&args);
        let err = stderr(&out);
        assert!(
            err.contains("identity.age") && err.contains("missing"),
            "{args:?}: the error should name the missing key file: {err}"
        );
    }
    // `peros init` must not make a new key for the existing store's metadata.
    let out = env.fails(["init", "--no-passphrase"]);
    assert!(
        stderr(&out).contains("identity.age"),
        "init should refuse and name the key file: {}",
        stderr(&out)
    );
    assert!(
        !key.exists(),
        "init created a new key for an existing store"
    );
    fs::write(&key, &saved).unwrap();
    crate::set_mode(&key, 0o600);
    assert_eq!(env.cat("/src/a.txt"), b"alpha\n");
}

#[test]
fn corrupt_key_file_is_named() {
    let env = small_store();
    let key = env.home.join("keys/identity.age");
    fs::write(&key, b"# not a key\nAGE-SECRET-KEY-1NOTVALID\n").unwrap();
    let out = env.fails(["ls", "/"]);
    assert!(
        stderr(&out).contains("identity.age") && stderr(&out).contains("not a valid age identity"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn corrupt_config_names_file_line_and_column() {
    let env = small_store();
    let config = env.home.join("config.toml");
    let good = fs::read_to_string(&config).unwrap();
    for (what, text, want) in [
        (
            "syntax",
            "[store]\ncache_mb = 12\nversions_keep = = 3\n",
            "line 3",
        ),
        ("bad type", "[store]\ncache_mb = \"lots\"\n", "line 2"),
        (
            "unknown key",
            "[store]\ncache_megabytes = 5\n",
            "cache_megabytes",
        ),
        ("unknown section", "[stor]\ncache_mb = 5\n", "stor"),
        ("not UTF-8", "[store]\ncache_mb = 1 # \u{fffd}\n", ""),
    ] {
        let bytes: Vec<u8> = if what == "not UTF-8" {
            b"[store]\ncache_mb = 1 # \xff\xfe\n".to_vec()
        } else {
            text.as_bytes().to_vec()
        };
        fs::write(&config, &bytes).unwrap();
        let out = env.fails(["ls", "/"]);
        let err = stderr(&out);
        assert!(
            err.contains(&config.display().to_string()),
            "{what}: names the file: {err}"
        );
        assert!(err.contains(want), "{what}: expected {want:?} in: {err}");
        if what == "syntax" || what == "bad type" {
            assert!(err.contains("column"), "{what}: names the column: {err}");
        }
        // The mount refuses too, with the same message.
        let mnt = env.path("mnt");
        fs::create_dir_all(&mnt).unwrap();
        let out = env.fails([OsStr::new("mount"), mnt.as_os_str()]);
        assert!(
            stderr(&out).contains(&config.display().to_string()),
            "{what}: mount: {}",
            stderr(&out)
        );
    }
    fs::write(&config, good).unwrap();
    assert_eq!(env.cat("/src/a.txt"), b"alpha\n");
}

#[test]
fn deeply_nested_query_is_refused_and_the_daemon_survives() {
    // 10,000 `(` once overflowed the parser's stack: run through the daemon, that killed the
    // daemon and with it the mount (found by fuzzing).
    let env = small_store();
    let m = Mounted::new(&env, &[]);
    let q = format!("{}ext:txt", "(".repeat(10_000));
    let out = env.fails(["search", "--mode", "text", q.as_str()]);
    assert!(
        stderr(&out).contains("nested too deeply"),
        "{}",
        stderr(&out)
    );
    let q = format!("{}tag:x", "NOT ".repeat(10_000));
    let out = env.fails(["search", "--mode", "text", q.as_str()]);
    assert!(
        stderr(&out).contains("nested too deeply"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read(m.p("src/a.txt")).unwrap(), b"alpha\n");
    assert!(env.status()["daemon"]["pid"].as_u64().is_some());
    m.unmount();
}

#[test]
fn invalid_queries_fail_cleanly() {
    let env = small_store();
    for q in [
        "ext:",
        "size:>lots",
        "modified:>2024-13-45",
        "modified:>99999999-01-01",
        "(ext:pdf",
        "ext:pdf)",
        "tag:a OR",
        "NOT",
        "\"unclosed phrase",
        "(((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((ext:md",
    ] {
        let out = env.run(["search", "--mode", "text", q]);
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{q:?}: {err}");
        if !out.status.success() {
            assert_clean_failure(&["search".into(), q.into()], &out);
            assert!(
                err.contains("query"),
                "{q:?}: the error should say the query is bad: {err}"
            );
        }
    }
}

/// Creates a file named by raw bytes in `dir` through `open(2)`.
fn create_raw(dir: &Path, name: &[u8], data: &[u8]) -> std::io::Result<()> {
    let p = dir.join(OsStr::from_bytes(name));
    fs::File::create(&p)?.write_all(data)
}

#[test]
fn odd_and_over_long_names_through_the_mount() {
    let env = Env::init();
    let m = Mounted::new(&env, &[]);
    // Invalid UTF-8, control characters, a name of 255 bytes (the limit) in bytes and in
    // multi-byte characters.
    let names: Vec<Vec<u8>> = vec![
        b"\xff\xfe invalid utf8 \x80.bin".to_vec(),
        b"tab\there\x01\x1b".to_vec(),
        vec![b'a'; 255],
        "é".repeat(127)
            .into_bytes()
            .into_iter()
            .chain([b'x'])
            .collect(),
    ];
    for (i, n) in names.iter().enumerate() {
        assert!(n.len() <= 255);
        create_raw(&m.dir, n, format!("content {i}").as_bytes())
            .unwrap_or_else(|e| panic!("creating {}: {e}", show(n)));
    }
    let listed: Vec<Vec<u8>> = fs::read_dir(&m.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_vec())
        .collect();
    for (i, n) in names.iter().enumerate() {
        assert!(listed.contains(n), "{} not listed: {listed:?}", show(n));
        assert_eq!(
            fs::read(m.dir.join(OsStr::from_bytes(n))).unwrap(),
            format!("content {i}").as_bytes()
        );
    }
    // 256 bytes: ENAMETOOLONG for create, mkdir, rename, symlink, link.
    let long = vec![b'b'; 256];
    let long_p = m.dir.join(OsStr::from_bytes(&long));
    let errno = |r: std::io::Result<()>| r.err().and_then(|e| e.raw_os_error());
    assert_eq!(
        errno(fs::File::create(&long_p).map(|_| ())),
        Some(libc::ENAMETOOLONG)
    );
    assert_eq!(errno(fs::create_dir(&long_p)), Some(libc::ENAMETOOLONG));
    let first = m.dir.join(OsStr::from_bytes(&names[2]));
    assert_eq!(errno(fs::rename(&first, &long_p)), Some(libc::ENAMETOOLONG));
    assert_eq!(
        errno(std::os::unix::fs::symlink("target", &long_p)),
        Some(libc::ENAMETOOLONG)
    );
    assert_eq!(
        errno(fs::hard_link(&first, &long_p)),
        Some(libc::ENAMETOOLONG)
    );
    // A lookup of an over-long name is ENAMETOOLONG too (POSIX; pjdfstest's */02.t), and so
    // are the calls that start with one: chmod, unlink, rmdir, truncate of a missing name.
    let e = fs::metadata(&long_p).unwrap_err().raw_os_error();
    assert_eq!(e, Some(libc::ENAMETOOLONG));
    assert_eq!(
        errno(fs::set_permissions(
            &long_p,
            fs::Permissions::from_mode(0o600)
        )),
        Some(libc::ENAMETOOLONG)
    );
    assert_eq!(errno(fs::remove_file(&long_p)), Some(libc::ENAMETOOLONG));
    assert_eq!(errno(fs::remove_dir(&long_p)), Some(libc::ENAMETOOLONG));
    // Over-long in multi-byte characters (128 × 2 bytes).
    let long_utf8 = "é".repeat(128);
    assert_eq!(
        errno(fs::File::create(m.dir.join(&long_utf8)).map(|_| ())),
        Some(libc::ENAMETOOLONG)
    );
    m.unmount();
    // After a remount, still there; fsck clean; export keeps the bytes of the names.
    let m = Mounted::new(&env, &[]);
    for n in &names {
        assert!(m.dir.join(OsStr::from_bytes(n)).exists(), "{}", show(n));
    }
    m.unmount();
    env.ok(["fsck"]);
    let out = env.path("out");
    env.ok([OsStr::new("export"), "/".as_ref(), out.as_os_str()]);
    for n in &names {
        assert!(
            out.join(OsStr::from_bytes(n)).exists(),
            "export {}",
            show(n)
        );
    }
}

#[test]
fn huge_sparse_file_through_the_mount() {
    let env = Env::init();
    let m = Mounted::new(&env, &[]);
    let p = m.p("huge.img");
    let size: u64 = 5 << 30; // 5 GiB
    {
        let f = fs::File::create(&p).unwrap();
        f.set_len(size).unwrap();
        f.write_all_at(b"MIDDLE", 2 << 30).unwrap();
        f.write_all_at(b"END!", size - 4).unwrap();
        // Across a chunk boundary far out.
        f.write_all_at(&[7u8; 100], (1000 * CHUNK) as u64 - 50)
            .unwrap();
        f.sync_all().unwrap();
    }
    let check = |p: &Path| {
        let meta = fs::metadata(p).unwrap();
        assert_eq!(meta.len(), size);
        // Holes take no space: blocks cover the four written chunks at most.
        assert!(
            meta.blocks() * 512 <= 4 * CHUNK as u64,
            "st_blocks {} for a mostly sparse file",
            meta.blocks()
        );
        let f = fs::File::open(p).unwrap();
        let mut buf = vec![0xaau8; 1 << 20];
        f.read_exact_at(&mut buf, 1 << 30).unwrap();
        assert!(buf.iter().all(|&b| b == 0), "a hole reads as zeros");
        let mut b6 = [0u8; 8];
        f.read_exact_at(&mut b6, (2 << 30) - 1).unwrap();
        assert_eq!(&b6, b"\0MIDDLE\0");
        let mut e = [0u8; 4];
        f.read_exact_at(&mut e, size - 4).unwrap();
        assert_eq!(&e, b"END!");
        let mut c = vec![0u8; 200];
        f.read_exact_at(&mut c, (1000 * CHUNK) as u64 - 100)
            .unwrap();
        assert!(c[..50].iter().all(|&b| b == 0) && c[50..150].iter().all(|&b| b == 7));
        assert!(c[150..].iter().all(|&b| b == 0));
        // Reading at and past the end.
        let mut tail = [1u8; 16];
        assert_eq!(f.read_at(&mut tail, size).unwrap(), 0);
        let mut g = fs::File::open(p).unwrap();
        g.seek(SeekFrom::Start(size - 2)).unwrap();
        let mut rest = Vec::new();
        g.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"D!");
    };
    check(&p);
    m.unmount();
    // Only the four chunks written to were stored (4 MiB each, holes not at all).
    let stored: u64 = env
        .objects()
        .iter()
        .map(|o| fs::metadata(env.objects_dir().join(o)).unwrap().len())
        .sum();
    assert!(
        stored < 4 * CHUNK as u64 + 65536,
        "stored {stored} bytes for a sparse 5 GiB file"
    );
    let m = Mounted::new(&env, &[]);
    check(&m.p("huge.img"));
    // Truncating the huge file down keeps the right prefix.
    let f = fs::OpenOptions::new()
        .write(true)
        .open(m.p("huge.img"))
        .unwrap();
    f.set_len((2 << 30) + 3).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let mut b = [0u8; 4];
    fs::File::open(m.p("huge.img"))
        .unwrap()
        .read_exact_at(&mut b, (2 << 30) - 1)
        .unwrap();
    assert_eq!(&b, b"\0MID");
    assert_eq!(fs::metadata(m.p("huge.img")).unwrap().len(), (2 << 30) + 3);
    m.unmount();
    env.ok(["fsck"]);
}

#[test]
fn sparse_local_file_imports_exactly_and_dedups_its_zeros() {
    let env = Env::init();
    let src = env.path("sparse.bin");
    {
        let f = fs::File::create(&src).unwrap();
        f.set_len(64 * MIB as u64).unwrap();
        f.write_all_at(b"island", 33 * MIB as u64).unwrap();
    }
    env.ok([
        OsStr::new("import"),
        src.as_os_str(),
        "/sparse.bin".as_ref(),
    ]);
    assert_eq!(hash_bytes(&env.cat("/sparse.bin")), hash_file(&src));
    // 16 chunks, 15 of them all zeros: those become holes, so one object.
    assert_eq!(env.stat("objects"), 1, "{}", env.status());
    let m = Mounted::new(&env, &[]);
    assert_eq!(hash_file(&m.p("sparse.bin")), hash_file(&src));
    m.unmount();
}

/// A tmpfs of `mib` MiB at `dir` (root only); unmounted on drop.
struct Tmpfs(std::path::PathBuf);
impl Tmpfs {
    fn new(dir: &Path, mib: u64, ro: bool) -> Self {
        fs::create_dir_all(dir).unwrap();
        let opts = format!("size={mib}m,mode=0700{}", if ro { ",ro" } else { "" });
        sh(&format!(
            "mount -t tmpfs -o {opts} tmpfs '{}'",
            dir.display()
        ));
        Tmpfs(dir.to_path_buf())
    }
}
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn full_disk_gives_enospc_and_loses_nothing_stored() {
    if !is_root() {
        eprintln!("skipped: needs root to mount a small tmpfs");
        return;
    }
    let mut env = Env::new();
    let small = env.scratch.join("small-home");
    let _fs = Tmpfs::new(&small, 48, false);
    env.home = small.join("home");
    env.ok(["init", "--no-passphrase"]);
    let m = Mounted::new(&env, &[]);
    // Stored and fsynced first.
    let keep = random_bytes(1, 6 * MIB);
    {
        let mut f = fs::File::create(m.p("keep.bin")).unwrap();
        f.write_all(&keep).unwrap();
        f.sync_all().unwrap();
    }
    fs::write(m.p("note.txt"), b"small note\n").unwrap();
    // Then fill the disk: some write, flush or fsync must fail with ENOSPC (not EIO).
    let mut failure = None;
    let mut written = 0usize;
    'outer: for i in 0..20 {
        let mut f = match fs::File::create(m.p(&format!("fill{i}.bin"))) {
            Ok(f) => f,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        for j in 0..8 {
            if let Err(e) = f.write_all(&random_bytes(100 + i * 10 + j, MIB)) {
                failure = Some(e);
                break 'outer;
            }
            written += MIB;
        }
        if let Err(e) = f.sync_all() {
            failure = Some(e);
            break;
        }
    }
    let e = failure
        .unwrap_or_else(|| panic!("wrote {written} bytes to a 48 MiB disk without an error"));
    assert_eq!(
        e.raw_os_error(),
        Some(libc::ENOSPC),
        "a full disk should give ENOSPC, got {e}"
    );
    // The daemon is alive and what was stored reads back exactly.
    assert_eq!(fs::read(m.p("keep.bin")).unwrap(), keep);
    assert_eq!(fs::read(m.p("note.txt")).unwrap(), b"small note\n");
    let st = env.status();
    assert!(st["daemon"]["pid"].as_u64().is_some(), "{st}");
    m.unmount();
    // After the disk is full: fsck is clean, everything stored is still there.
    let out = env.run(["fsck"]);
    assert!(
        out.status.success(),
        "fsck: {}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(env.cat("/keep.bin"), keep);
    // Free space by removing the fill files and collecting their chunks; writing works again.
    for i in 0..20 {
        let _ = env.run(["rm", &format!("/fill{i}.bin")]);
    }
    let m = Mounted::new(&env, &[]);
    assert_eq!(fs::read(m.p("keep.bin")).unwrap(), keep);
    m.unmount();
}

#[test]
fn read_only_home_gives_a_clear_error() {
    if !is_root() {
        eprintln!("skipped: needs root to remount read-only");
        return;
    }
    let env = small_store();
    // A read-only bind mount of PEROS_HOME on itself.
    sh(&format!(
        "mount --bind '{0}' '{0}' && mount -o remount,bind,ro '{0}'",
        env.home.display()
    ));
    struct Unbind(std::path::PathBuf);
    impl Drop for Unbind {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _u = Unbind(env.home.clone());
    let before = snapshot(&env.home);
    for args in [vec!["ls", "/"], vec!["cat", "/src/a.txt"], vec!["status"]] {
        let out = env.fails(&args);
        let err = stderr(&out);
        assert!(
            err.contains("read-only") || err.contains("Read-only"),
            "{args:?}: the error should say the store is read-only: {err}"
        );
    }
    let mnt = env.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let out = env.fails([OsStr::new("mount"), mnt.as_os_str()]);
    let err = stderr(&out);
    assert!(
        err.contains("read-only") || err.contains("Read-only"),
        "{err}"
    );
    assert!(!is_mounted(&mnt));
    assert_same_tree("read-only PEROS_HOME", &before, &snapshot(&env.home));
}

#[test]
fn second_daemon_on_the_same_store_is_refused() {
    let env = small_store();
    let m = Mounted::new(&env, &[]);
    let other = env.path("mnt2");
    fs::create_dir_all(&other).unwrap();
    let out = env.fails([OsStr::new("mount"), other.as_os_str()]);
    let err = stderr(&out);
    assert!(
        err.contains("in use by another peros process") || err.contains("already"),
        "{err}"
    );
    assert!(!is_mounted(&other), "a second mount appeared");
    // Mounting the same directory again is refused too.
    let out = env.fails([OsStr::new("mount"), m.dir.as_os_str()]);
    assert!(stderr(&out).contains("already"), "{}", stderr(&out));
    // The first daemon is unharmed.
    assert_eq!(fs::read(m.p("src/a.txt")).unwrap(), b"alpha\n");
    fs::write(m.p("after.txt"), b"still works\n").unwrap();
    assert_eq!(env.cat("/after.txt"), b"still works\n");
    m.unmount();
    env.ok(["fsck"]);
}

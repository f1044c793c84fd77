//! Tampering with the object store, seen through the REAL MOUNT.
//!
//! `integrity.rs` covers damaged/missing objects through `peros cat`/`export`/`fsck`. Here an
//! attacker with write access to the object directory flips bytes, truncates, swaps one chunk
//! for another chunk of the same store, replays an old chunk in place of a new one, or deletes a
//! chunk; then the store is mounted and read with ordinary system calls. Every case must give:
//!
//! - `EIO` for each read that touches the affected chunk (never other bytes, never a short read
//!   that looks like end of file);
//! - a line in the daemon log (`PEROS_HOME/logs/daemon.log`) naming the file's path;
//! - `peros fsck` naming the path, with exit code 3 (also for every other file sharing the chunk);
//! - unaffected files — and unaffected chunks of the same file — reading back exactly.
//!
//! Tampering happens while the store is not mounted, so no decrypted copy of the chunk sits in
//! the daemon's cache (a cached chunk would be served as the correct bytes, which is also fine).

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use peros_tests::*;

/// Sizes chosen so that the multi-chunk file has a distinct middle chunk.
const VICTIM_LEN: usize = 200_000;
const MULTI_LEN: usize = 2 * CHUNK + 1000;

struct Fixture {
    env: Env,
    /// Object of `/victim dir/the victim.bin` (one chunk).
    victim_obj: PathBuf,
    /// Object of chunk 1 (the middle one) of `/multi.bin` (three chunks).
    multi_mid_obj: PathBuf,
    /// Object of `/keep/small.bin`, a bystander (one chunk).
    bystander_obj: PathBuf,
    /// `/doc.txt` version 1 and version 2 (current) objects.
    doc_v1_obj: PathBuf,
    doc_v2_obj: PathBuf,
    /// Local copies of what the store holds, for comparison.
    victim: Vec<u8>,
    multi: Vec<u8>,
    doc_v2: Vec<u8>,
    keep_src: PathBuf,
}

/// Imports `src` at `dest`; returns the objects the import added.
fn import_new(env: &Env, src: &Path, dest: &str) -> Vec<PathBuf> {
    let before = env.objects();
    env.ok([OsStr::new("import"), src.as_os_str(), dest.as_ref()]);
    let after: BTreeSet<PathBuf> = env.objects();
    after
        .difference(&before)
        .map(|p| env.objects_dir().join(p))
        .collect()
}

fn one(v: Vec<PathBuf>, what: &str) -> PathBuf {
    assert_eq!(v.len(), 1, "{what}: expected exactly one new object: {v:?}");
    v.into_iter().next().unwrap()
}

fn fixture() -> Fixture {
    let env = Env::init();
    // Bystanders: a text file, a two-chunk file, a small binary.
    let keep_src = env.path("keep");
    write_file(&keep_src.join("a.txt"), b"alpha beta gamma\n");
    write_random(&keep_src.join("big.bin"), 21, CHUNK + 4321);
    env.ok([OsStr::new("import"), keep_src.as_os_str(), "/keep".as_ref()]);
    let small = env.path("small.bin");
    write_random(&small, 22, 50_000);
    let bystander_obj = one(import_new(&env, &small, "/keep/small.bin"), "small");
    fs::copy(&small, keep_src.join("small.bin")).unwrap();

    let victim = random_bytes(23, VICTIM_LEN);
    let vpath = env.path("victim.bin");
    write_file(&vpath, &victim);
    let victim_obj = one(
        import_new(&env, &vpath, "/victim dir/the victim.bin"),
        "victim",
    );

    // The middle chunk of /multi.bin is imported alone first (as /probe): deduplication makes
    // it the very object that /multi.bin's chunk 1 references.
    let multi = random_bytes(24, MULTI_LEN);
    let probe = env.path("probe.bin");
    write_file(&probe, &multi[CHUNK..2 * CHUNK]);
    let multi_mid_obj = one(import_new(&env, &probe, "/probe.bin"), "probe");
    env.ok(["rm", "/probe.bin"]);
    let mpath = env.path("multi.bin");
    write_file(&mpath, &multi);
    let added = import_new(&env, &mpath, "/multi.bin");
    assert_eq!(added.len(), 2, "chunks 0 and 2 are new: {added:?}");

    // /doc.txt: version 1, then version 2 over it (same inode, history kept).
    let d = env.path("doc.txt");
    write_file(&d, &b"version one of the document\n".repeat(100));
    let doc_v1_obj = one(import_new(&env, &d, "/doc.txt"), "doc v1");
    let doc_v2 = b"VERSION TWO of the document, the current one\n".repeat(100);
    write_file(&d, &doc_v2);
    let doc_v2_obj = one(import_new(&env, &d, "/doc.txt"), "doc v2");
    let log = env.json(["log", "/doc.txt", "--json"]);
    assert!(
        log.as_array().map(|a| a.len()) == Some(2)
            || log["versions"].as_array().map(|a| a.len()) == Some(2),
        "two versions of /doc.txt: {log}"
    );

    assert!(fsck_problems(&env).is_empty());
    Fixture {
        env,
        victim_obj,
        multi_mid_obj,
        bystander_obj,
        doc_v1_obj,
        doc_v2_obj,
        victim,
        multi,
        doc_v2,
        keep_src,
    }
}

fn fsck_problems(env: &Env) -> Vec<Value> {
    let out = env.run(["fsck", "--json"]);
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("fsck --json printed invalid JSON ({e}): {}", stdout(&out)));
    let problems = v["problems"].as_array().expect("problems array").clone();
    let want = if problems.is_empty() { 0 } else { 3 };
    assert_eq!(out.status.code(), Some(want), "fsck --json exit code: {v}");
    problems
}

fn daemon_log(env: &Env) -> String {
    fs::read_to_string(env.home.join("logs/daemon.log")).unwrap_or_default()
}

/// Reads all of `path` through the mount; `Err(errno)` on failure.
fn read_errno(path: &Path) -> Result<Vec<u8>, i32> {
    fs::read(path).map_err(|e| e.raw_os_error().unwrap_or(-1))
}

/// `pread` of `len` bytes at `off`; `Err(errno)` on failure.
fn pread(path: &Path, off: u64, len: usize) -> Result<Vec<u8>, i32> {
    let f = fs::File::open(path).map_err(|e| e.raw_os_error().unwrap_or(-1))?;
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match f.read_at(&mut buf[got..], off + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(e.raw_os_error().unwrap_or(-1)),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// Mounts, checks that reading `victims` fails with EIO (and the log names each), that the
/// bystanders read back exactly; unmounts; checks that fsck names exactly `victims`.
fn check_detected(fx: &Fixture, what: &str, victims: &[&str]) {
    let env = &fx.env;
    let m = Mounted::new(env, &[]);
    for v in victims {
        let before = daemon_log(env).len();
        let got = read_errno(&m.p(v.trim_start_matches('/'))).map(|b| b.len());
        assert_eq!(
            got,
            Err(libc::EIO),
            "{what}: reading {v} through the mount must fail with EIO (Ok = bytes read)"
        );
        // A second read fails the same way (no cached wrong bytes).
        assert_eq!(
            read_errno(&m.p(v.trim_start_matches('/'))).err(),
            Some(libc::EIO),
            "{what}: second read of {v}"
        );
        let log = daemon_log(env);
        let new = &log[before.min(log.len())..];
        assert!(
            new.contains(&format!("cannot read {v}")),
            "{what}: the daemon log should name {v}; new log lines:\n{new}"
        );
    }
    check_bystanders(fx, &m, what, victims);
    // fsck through the daemon names the victims.
    let problems = fsck_problems(env);
    let named: BTreeSet<String> = problems
        .iter()
        .map(|p| p["path"].as_str().unwrap_or("").to_string())
        .collect();
    let want: BTreeSet<String> = victims.iter().map(|s| s.to_string()).collect();
    assert_eq!(named, want, "{what}: fsck (mounted) problems {problems:?}");
    m.unmount();
    // And fsck without the daemon, human output.
    let out = env.run(["fsck"]);
    assert_eq!(out.status.code(), Some(3), "{what}: {}", stdout(&out));
    for v in victims {
        assert!(
            stdout(&out).contains(v),
            "{what}: fsck output names {v}: {}",
            stdout(&out)
        );
    }
}

fn check_bystanders(fx: &Fixture, m: &Mounted, what: &str, victims: &[&str]) {
    for name in ["a.txt", "big.bin", "small.bin"] {
        if victims.contains(&format!("/keep/{name}").as_str()) {
            continue;
        }
        assert_eq!(
            hash_file(&m.p(&format!("keep/{name}"))),
            hash_file(&fx.keep_src.join(name)),
            "{what}: bystander /keep/{name}"
        );
    }
    for (path, want) in [
        ("/victim dir/the victim.bin", &fx.victim),
        ("/multi.bin", &fx.multi),
        ("/doc.txt", &fx.doc_v2),
    ] {
        if victims.contains(&path) {
            continue;
        }
        let got = fs::read(m.p(path.trim_start_matches('/'))).unwrap_or_else(|e| {
            panic!("{what}: {path} is not affected and must read: {e}");
        });
        assert!(got == *want, "{what}: {path} read back different bytes");
    }
}

fn restore(path: &Path, data: &[u8]) {
    fs::write(path, data).unwrap();
}

#[test]
fn flipped_byte_gives_eio_through_the_mount() {
    let fx = fixture();
    let original = fs::read(&fx.victim_obj).unwrap();
    for (what, pos) in [
        ("flip in the header", 10),
        ("flip in the middle", original.len() / 2),
        ("flip in the last byte", original.len() - 1),
    ] {
        let mut d = original.clone();
        d[pos] ^= 0x04;
        restore(&fx.victim_obj, &d);
        check_detected(&fx, what, &["/victim dir/the victim.bin"]);
    }
    restore(&fx.victim_obj, &original);
    assert!(fsck_problems(&fx.env).is_empty(), "repaired");
}

#[test]
fn truncated_and_deleted_chunks_give_eio_through_the_mount() {
    let fx = fixture();
    let original = fs::read(&fx.victim_obj).unwrap();
    restore(&fx.victim_obj, &original[..original.len() - 1]);
    check_detected(
        &fx,
        "truncated by one byte",
        &["/victim dir/the victim.bin"],
    );
    restore(&fx.victim_obj, &original[..original.len() / 3]);
    check_detected(&fx, "truncated to a third", &["/victim dir/the victim.bin"]);
    restore(&fx.victim_obj, b"");
    check_detected(&fx, "emptied", &["/victim dir/the victim.bin"]);
    fs::remove_file(&fx.victim_obj).unwrap();
    check_detected(&fx, "deleted", &["/victim dir/the victim.bin"]);
    restore(&fx.victim_obj, &original);
    assert!(fsck_problems(&fx.env).is_empty(), "repaired");
}

#[test]
fn chunk_swapped_for_another_chunk_of_the_same_store_gives_eio() {
    let fx = fixture();
    // The bystander's object (validly sealed with this store's key) is copied over the
    // victim's: it decrypts fine, but its content does not match the name the file expects.
    let original = fs::read(&fx.victim_obj).unwrap();
    fs::copy(&fx.bystander_obj, &fx.victim_obj).unwrap();
    check_detected(
        &fx,
        "victim's chunk replaced by the bystander's",
        &["/victim dir/the victim.bin"],
    );
    // Both ways round: swap the two objects (each file now points at the other's chunk).
    let bystander = fs::read(&fx.bystander_obj).unwrap();
    restore(&fx.bystander_obj, &original);
    restore(&fx.victim_obj, &bystander);
    check_detected(
        &fx,
        "two objects swapped",
        &["/keep/small.bin", "/victim dir/the victim.bin"],
    );
    restore(&fx.victim_obj, &original);
    restore(&fx.bystander_obj, &bystander);
    assert!(fsck_problems(&fx.env).is_empty(), "repaired");
}

#[test]
fn old_chunk_replayed_over_a_new_one_gives_eio_not_old_bytes() {
    let fx = fixture();
    // Version 1's object (an authentic chunk of this store, once the content of /doc.txt) is
    // copied over the object of version 2: the file must not silently read as version 1.
    let v2 = fs::read(&fx.doc_v2_obj).unwrap();
    fs::copy(&fx.doc_v1_obj, &fx.doc_v2_obj).unwrap();
    check_detected(&fx, "version 1 replayed over version 2", &["/doc.txt"]);
    restore(&fx.doc_v2_obj, &v2);
    assert!(fsck_problems(&fx.env).is_empty(), "repaired");
    let m = Mounted::new(&fx.env, &[]);
    assert_eq!(fs::read(m.p("doc.txt")).unwrap(), fx.doc_v2);
    m.unmount();
}

#[test]
fn damaged_middle_chunk_fails_only_the_reads_that_touch_it() {
    let fx = fixture();
    let original = fs::read(&fx.multi_mid_obj).unwrap();
    let mut d = original.clone();
    let mid = d.len() / 2;
    d[mid] ^= 0xff;
    restore(&fx.multi_mid_obj, &d);

    let m = Mounted::new(&fx.env, &[]);
    let p = m.p("multi.bin");
    assert_eq!(
        fs::metadata(&p).unwrap().len(),
        MULTI_LEN as u64,
        "size from metadata"
    );
    // Chunk 0 and chunk 2 read exactly.
    assert!(
        pread(&p, 0, 65536).unwrap() == fx.multi[..65536],
        "start of chunk 0"
    );
    assert!(
        pread(&p, CHUNK as u64 - 4096, 4096).unwrap() == fx.multi[CHUNK - 4096..CHUNK],
        "end of chunk 0"
    );
    assert!(
        pread(&p, 2 * CHUNK as u64, 1000).unwrap() == fx.multi[2 * CHUNK..],
        "chunk 2"
    );
    // Any read inside chunk 1 fails with EIO — also far from the flipped byte.
    for off in [CHUNK as u64, CHUNK as u64 + 12345, 2 * CHUNK as u64 - 10] {
        assert_eq!(
            pread(&p, off, 4096).err(),
            Some(libc::EIO),
            "read at {off} in chunk 1"
        );
    }
    // A read across the boundary from chunk 0 into chunk 1 never returns bytes of chunk 1.
    match pread(&p, CHUNK as u64 - 100, 200) {
        Err(e) => assert_eq!(e, libc::EIO),
        Ok(b) => {
            assert!(
                b.len() <= 100,
                "got {} bytes across the damaged boundary",
                b.len()
            );
            assert!(b == fx.multi[CHUNK - 100..CHUNK - 100 + b.len()]);
        }
    }
    // Reading the whole file fails.
    assert_eq!(read_errno(&p).err(), Some(libc::EIO));
    assert!(
        daemon_log(&fx.env).contains("cannot read /multi.bin: chunk 1"),
        "the log names the file and the chunk:\n{}",
        daemon_log(&fx.env)
    );
    check_bystanders(&fx, &m, "middle chunk", &["/multi.bin"]);
    m.unmount();
    let problems = fsck_problems(&fx.env);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0]["path"], "/multi.bin");
    assert!(
        problems[0]["detail"].as_str().unwrap().contains("chunk 1"),
        "{problems:?}"
    );
    restore(&fx.multi_mid_obj, &original);
    assert!(fsck_problems(&fx.env).is_empty(), "repaired");
}

#[test]
fn fsck_names_every_file_sharing_a_damaged_chunk() {
    let env = Env::init();
    let data = random_bytes(31, 300_000);
    let a = env.path("a.bin");
    write_file(&a, &data);
    let obj = one(import_new(&env, &a, "/one/a.bin"), "a");
    // Same content twice more: deduplicated onto the same object.
    assert!(import_new(&env, &a, "/two/b.bin").is_empty());
    assert!(import_new(&env, &a, "/three/c.bin").is_empty());
    let mut d = fs::read(&obj).unwrap();
    d[100] ^= 1;
    fs::write(&obj, &d).unwrap();
    let named: BTreeSet<String> = fsck_problems(&env)
        .iter()
        .map(|p| p["path"].as_str().unwrap().to_string())
        .collect();
    let want: BTreeSet<String> = ["/one/a.bin", "/two/b.bin", "/three/c.bin"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        named, want,
        "every file that shares the damaged chunk is named"
    );
}

#[test]
fn damaged_chunk_only_in_an_old_version_is_found_by_fsck() {
    let env = Env::init();
    let d = env.path("doc.txt");
    write_file(&d, b"old content of the file\n");
    let v1 = one(import_new(&env, &d, "/doc.txt"), "v1");
    write_file(&d, b"new content of the file\n");
    one(import_new(&env, &d, "/doc.txt"), "v2");
    assert!(fsck_problems(&env).is_empty());
    let mut bytes = fs::read(&v1).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x10;
    fs::write(&v1, &bytes).unwrap();
    let problems = fsck_problems(&env);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0]["kind"], "damaged-chunk", "{problems:?}");
    assert!(
        problems[0]["path"]
            .as_str()
            .unwrap()
            .starts_with("/doc.txt (version 1)"),
        "{problems:?}"
    );
    // Restoring the damaged version fails cleanly; the current content is untouched.
    let out = env.run(["restore", "/doc.txt", "--version", "1"]);
    if out.status.success() {
        // Restore may only copy chunk references: then reading must fail, not invent bytes.
        let out = env.fails(["cat", "/doc.txt"]);
        assert!(stderr(&out).contains("/doc.txt"), "{}", stderr(&out));
    } else {
        assert!(!stderr(&out).contains("panicked"));
        assert_eq!(env.cat("/doc.txt"), b"new content of the file\n");
    }
}

#[test]
fn object_store_sees_chunk_sizes_and_counts_but_no_names() {
    // What an observer of the object store learns (docs/THREAT_MODEL.md): one object per
    // distinct 4 MiB chunk, each about as large as its plaintext; nothing else.
    let env = Env::init();
    let small = env.path("small.txt");
    write_random(&small, 41, 1000);
    let obj = one(import_new(&env, &small, "/secret-name.txt"), "small");
    let sealed = fs::metadata(&obj).unwrap().len();
    assert!(
        (1000..1000 + 512).contains(&sealed),
        "a 1000-byte file is one object of {sealed} bytes: the size leaks to within age's overhead"
    );
    let big = env.path("big.bin");
    write_random(&big, 42, 2 * CHUNK + 10);
    let objs = import_new(&env, &big, "/big.bin");
    let mut sizes: Vec<u64> = objs
        .iter()
        .map(|o| fs::metadata(o).unwrap().len())
        .collect();
    sizes.sort_unstable();
    assert_eq!(sizes.len(), 3, "one object per chunk");
    assert!(
        sizes[0] < 1024,
        "the 10-byte tail chunk is a small object: {sizes:?}"
    );
    assert!(
        sizes[2] > CHUNK as u64 && sizes[2] < CHUNK as u64 + 8192,
        "{sizes:?}"
    );
    // Names are keyed MACs: not the content's plain hash, nor anything of the path.
    let name = obj.file_name().unwrap().to_string_lossy().to_string();
    assert_ne!(name, hash_file(&small));
    assert!(!name.contains("secret"));
}

#[test]
fn rollback_of_the_whole_object_store_is_detected_for_files_changed_since() {
    // An attacker restores an old copy of the entire object store. Metadata is local, so every
    // file whose current chunks are newer than the copy is reported missing (EIO, fsck);
    // files unchanged since the copy still read exactly (their objects are the same).
    let env = Env::init();
    let src = env.path("src");
    write_file(&src.join("stable.txt"), b"never changes\n");
    write_file(&src.join("doc.txt"), b"first state\n");
    env.ok([OsStr::new("import"), src.as_os_str(), "/src".as_ref()]);
    let old_copy = env.path("objects-copy");
    sh(&format!(
        "cp -a '{}' '{}'",
        env.objects_dir().display(),
        old_copy.display()
    ));
    write_file(&src.join("doc.txt"), b"second state, after the copy\n");
    env.ok([OsStr::new("import"), src.as_os_str(), "/src".as_ref()]);
    // Roll back: the old copy replaces the object directory.
    sh(&format!(
        "rm -rf '{0}' && cp -a '{1}' '{0}'",
        env.objects_dir().display(),
        old_copy.display()
    ));
    let problems = fsck_problems(&env);
    let named: BTreeSet<String> = problems
        .iter()
        .map(|p| p["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        named,
        ["/src/doc.txt".to_string()].into_iter().collect(),
        "{problems:?}"
    );
    assert_eq!(problems[0]["kind"], "missing-chunk");
    let m = Mounted::new(&env, &[]);
    assert_eq!(read_errno(&m.p("src/doc.txt")).err(), Some(libc::EIO));
    assert_eq!(fs::read(m.p("src/stable.txt")).unwrap(), b"never changes\n");
    m.unmount();
    // The old version is still there to restore (its object is in the old copy).
    env.ok(["restore", "/src/doc.txt", "--version", "1"]);
    assert_eq!(env.cat("/src/doc.txt"), b"first state\n");
}

//! The S3 backend against a real SeaweedFS (started by the tests on free 127.0.0.1 ports,
//! killed on drop): round trips through the store and a FUSE mount, tenant isolation, the
//! server dying mid-workload, `init --from` on a fresh home, and the lease.
//!
//! Skipped, loudly, only when SeaweedFS is not installed (scripts/setup.sh installs it; CI
//! always has it).

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use peros_crypto::{Keyring, ObjectName};
use peros_tests::seaweed::{self, Seaweed};
use peros_tests::*;

fn server() -> Option<&'static Seaweed> {
    seaweed::shared()
}

fn target(w: &Seaweed, tag: &str) -> S3Target {
    S3Target {
        url: format!("s3://{}/{}", seaweed::BUCKET, seaweed::unique_prefix(tag)),
        env: w.aws_env(),
    }
}

fn prefix_of(url: &str) -> String {
    url.splitn(4, '/').nth(3).unwrap_or_default().to_string()
}

/// A tree with nested directories, empty/small/multi-chunk files, a symlink, odd modes.
fn build_tree(root: &Path, seed: u64) {
    write_file(&root.join("empty"), b"");
    write_file(&root.join("a/small.txt"), b"hello s3\n");
    write_random(&root.join("a/b/big.bin"), seed, 9 * MIB + 123);
    write_random(&root.join("a/b/c/mid.bin"), seed + 1, 300_000);
    write_file(
        &root.join("name with spaces/ünïcödé.txt"),
        "ünïcödé\n".as_bytes(),
    );
    std::os::unix::fs::symlink("a/small.txt", root.join("link")).unwrap();
    set_mode(&root.join("a/small.txt"), 0o600);
    set_mtime(&root.join("a/small.txt"), 1_600_000_000, 123_456_789);
    set_mtime(&root.join("a/b/big.bin"), 1_500_000_000, 0);
}

fn fsck_clean(env: &Env) {
    let out = env.run(["fsck"]);
    assert!(
        out.status.success(),
        "fsck not clean:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
}

fn objects_of(w: &Seaweed, url: &str) -> Vec<(String, u64)> {
    w.remote(&prefix_of(url))
        .list("")
        .expect("listing the bucket")
}

#[test]
fn store_round_trip_on_s3() {
    let Some(w) = server() else { return };
    let env = Env::init_s3(target(w, "rt"));
    let src = env.path("src");
    build_tree(&src, 1);
    env.ok([OsStr("import"), src.as_os_str().into(), OsStr("/t")]);
    let out = env.path("out");
    env.ok([OsStr("export"), OsStr("/t"), out.as_os_str().into()]);
    assert_same_tree(
        "export after import through S3",
        &snapshot(&src),
        &snapshot(&out),
    );
    let status = env.status();
    let backend = status["backend"].as_str().unwrap();
    assert!(backend.starts_with("s3://"), "{backend}");
    fsck_clean(&env);
    // Chunks, the snapshot and the (released) lease are in the bucket; nothing else.
    let objs = objects_of(w, &env.s3.as_ref().unwrap().url);
    let names: BTreeSet<&str> = objs.iter().map(|(k, _)| k.as_str()).collect();
    assert!(names.contains("meta/snapshot"), "{names:?}");
    assert!(names.contains("meta/lease"), "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("chunks/") || n.starts_with("meta/")),
        "{names:?}"
    );
    assert!(names.iter().filter(|n| n.starts_with("chunks/")).count() >= 4);
    // The disk cache holds sealed chunks only (mode 0700 directory).
    let cache = env.home.join("cache");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&cache).unwrap().permissions().mode() & 0o777,
        0o700
    );
}

#[allow(non_snake_case)]
fn OsStr(s: &str) -> std::ffi::OsString {
    s.into()
}

#[test]
fn mount_round_trip_on_s3() {
    let Some(w) = server() else { return };
    let env = Env::init_s3(target(w, "mnt"));
    let src = env.path("src");
    build_tree(&src, 2);
    // Under a subdirectory: the mount root also shows the reserved view/search directories.
    {
        let m = Mounted::new(&env, &[]);
        fs::create_dir(m.p("t")).unwrap();
        sh(&format!(
            "cp -a {}/. {}/",
            src.display(),
            m.p("t").display()
        ));
        sh(&format!("sync -f {}", m.dir.display()));
        assert_same_tree("mount after cp -a", &snapshot(&src), &snapshot(&m.p("t")));
        m.unmount();
    }
    // A fresh mount reads everything back (from the disk cache or the bucket).
    let m = Mounted::new(&env, &[]);
    assert_same_tree("remount", &snapshot(&src), &snapshot(&m.p("t")));
    m.unmount();
    fsck_clean(&env);
}

#[test]
fn tenants_are_isolated_and_the_bucket_holds_nothing_plain() {
    let Some(w) = server() else { return };
    let a = Env::init_s3(target(w, "tenant-a"));
    let b = Env::init_s3(target(w, "tenant-b"));
    let content_mark = unique_marker("CONTENT");
    let name_mark = unique_marker("NAME");
    // Same content in both tenants, under a telling name; several chunks' worth.
    let mut data = content_mark.repeat(10).into_bytes();
    data.extend(random_bytes(7, 5 * MIB));
    data.extend(content_mark.as_bytes());
    let f = env_file(&a, &name_mark, &data);
    for env in [&a, &b] {
        env.ok([
            OsStr("import"),
            f.as_os_str().into(),
            OsStr(&format!("/{name_mark}/{name_mark}.txt")),
        ]);
        assert_eq!(env.cat(format!("/{name_mark}/{name_mark}.txt")), data);
    }
    let url_a = a.s3.as_ref().unwrap().url.clone();
    let url_b = b.s3.as_ref().unwrap().url.clone();
    let objs_a = objects_of(w, &url_a);
    let objs_b = objects_of(w, &url_b);
    let chunks = |objs: &[(String, u64)]| -> BTreeSet<String> {
        objs.iter()
            .filter(|(k, _)| k.starts_with("chunks/"))
            .map(|(k, _)| k.rsplit('/').next().unwrap().to_string())
            .collect()
    };
    let (ca, cb) = (chunks(&objs_a), chunks(&objs_b));
    assert!(ca.len() >= 2 && cb.len() >= 2, "{ca:?} {cb:?}");
    assert!(
        ca.is_disjoint(&cb),
        "equal content got equal object names in two tenants: {:?}",
        ca.intersection(&cb).collect::<Vec<_>>()
    );
    // No key or byte of either tenant's prefix holds a file name or content in the clear:
    // chunks, metadata snapshot, lease, all of it.
    let ra = w.remote(&prefix_of(&url_a));
    let rb = w.remote(&prefix_of(&url_b));
    for (remote, objs) in [(&ra, &objs_a), (&rb, &objs_b)] {
        for (key, _) in objs {
            assert!(!key.contains(&name_mark) && !key.contains("NAME"), "{key}");
            let (bytes, _) = remote.get(key).unwrap().unwrap();
            for mark in [&content_mark, &name_mark] {
                assert!(
                    !contains(&bytes, mark.as_bytes()),
                    "{key} holds {mark} in the clear"
                );
            }
        }
    }
    // Tenant B's key opens none of A's objects (A's own key does: the check is real).
    let ka = Keyring::load(&a.home.join("keys/identity.age"), || None).unwrap();
    let kb = Keyring::load(&b.home.join("keys/identity.age"), || None).unwrap();
    for hex in &ca {
        let (sealed, _) = ra
            .get(&format!("chunks/{}/{hex}", &hex[..2]))
            .unwrap()
            .unwrap();
        let name = ObjectName::from_hex(hex).unwrap();
        assert!(
            ka.open(&sealed, &name).is_ok(),
            "A cannot open its own chunk"
        );
        assert!(kb.open(&sealed, &name).is_err(), "B opened A's chunk");
        assert!(
            kb.open(&sealed, &kb.object_name(b"x")).is_err(),
            "B opened A's chunk"
        );
    }
    let (snap, _) = ra.get("meta/snapshot").unwrap().unwrap();
    assert!(peros_store::tenant::open_snapshot(&ka, &snap).is_ok());
    assert!(peros_store::tenant::open_snapshot(&kb, &snap).is_err());
    // B's home pointed at A's prefix, with B's key: refused, nothing shown.
    let mut thief = Env::new();
    thief.s3 = Some(S3Target {
        url: url_a.clone(),
        env: w.aws_env(),
    });
    let out = thief.fails([
        OsStr("init"),
        OsStr("--from"),
        OsStr(&url_a),
        OsStr("--key"),
        b.home.join("keys/identity.age").into_os_string(),
    ]);
    assert!(
        stderr(&out).contains("cannot be opened with this key"),
        "{}",
        stderr(&out)
    );
    assert!(!thief.home.join("keys/identity.age").exists());
    // What SeaweedFS wrote to its disk holds neither marker either.
    for e in walkdir::WalkDir::new(w.data_dir()).into_iter().flatten() {
        if e.file_type().is_file() {
            let bytes = fs::read(e.path()).unwrap_or_default();
            for mark in [&content_mark, &name_mark] {
                assert!(
                    !contains(&bytes, mark.as_bytes()),
                    "{} holds {mark} in the clear",
                    e.path().display()
                );
            }
        }
    }
}

fn env_file(env: &Env, name: &str, data: &[u8]) -> std::path::PathBuf {
    let p = env.path(format!("{name}.src"));
    write_file(&p, data);
    p
}

#[test]
fn init_from_gives_a_byte_identical_tree() {
    let Some(w) = server() else { return };
    // A passphrase-protected tenant: the new home needs only the URL and the passphrase.
    let t = target(w, "move");
    let mut a = Env::new();
    a.passphrase = Some("correct horse".into());
    a.s3 = Some(t.clone());
    a.ok(["init", "--store", &t.url]);
    let src = a.path("src");
    build_tree(&src, 3);
    a.ok([OsStr("import"), src.as_os_str().into(), OsStr("/t")]);
    // Changes through the mount too (rename, delete, overwrite, new directory).
    {
        let m = Mounted::new(&a, &[]);
        fs::rename(m.p("t/a/small.txt"), m.p("t/a/renamed.txt")).unwrap();
        fs::remove_file(m.p("t/empty")).unwrap();
        fs::write(m.p("t/a/b/c/mid.bin"), b"overwritten").unwrap();
        fs::create_dir(m.p("t/newdir")).unwrap();
        fs::write(m.p("t/newdir/n.txt"), b"new").unwrap();
        m.unmount();
    }
    let want_out = a.path("want");
    a.ok([OsStr("export"), OsStr("/t"), want_out.as_os_str().into()]);
    let want = snapshot(&want_out);
    let mut b = Env::new();
    b.s3 = Some(t.clone());
    // Wrong passphrase: a clean error, and the home stays usable for a retry.
    b.passphrase = Some("wrong".into());
    let out = b.fails(["init", "--from", &t.url]);
    assert!(stderr(&out).contains("passphrase"), "{}", stderr(&out));
    b.passphrase = Some("correct horse".into());
    let said = b.ok(["init", "--from", &t.url]);
    assert!(said.contains("Restored"), "{said}");
    let got_out = b.path("got");
    b.ok([OsStr("export"), OsStr("/t"), got_out.as_os_str().into()]);
    assert_same_tree("tree restored from the bucket", &want, &snapshot(&got_out));
    // Through a mount as well.
    {
        let m = Mounted::new(&b, &[]);
        assert_same_tree("mount of the restored tenant", &want, &snapshot(&m.p("t")));
        m.unmount();
    }
    fsck_clean(&b);
    use std::os::unix::fs::PermissionsExt;
    for p in [b.home.join("keys/identity.age"), b.home.join("config.toml")] {
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600,
            "{}",
            p.display()
        );
    }

    // An unwrapped key never goes to the bucket: --key is required.
    let t2 = target(w, "move-nopass");
    let c = Env::init_s3(t2.clone());
    c.ok([OsStr("import"), src.as_os_str().into(), OsStr("/t")]);
    let mut d = Env::new();
    d.s3 = Some(t2.clone());
    let out = d.fails(["init", "--from", &t2.url]);
    assert!(stderr(&out).contains("--key"), "{}", stderr(&out));
    d.ok([
        OsStr("init"),
        OsStr("--from"),
        OsStr(&t2.url),
        OsStr("--key"),
        c.home.join("keys/identity.age").into_os_string(),
    ]);
    let d_out = d.path("d");
    d.ok([OsStr("export"), OsStr("/t"), d_out.as_os_str().into()]);
    assert_same_tree("restored with --key", &snapshot(&src), &snapshot(&d_out));
    // init --store on a prefix that holds a tenant is refused.
    let mut e = Env::new();
    e.s3 = Some(t2.clone());
    let out = e.fails(["init", "--no-passphrase", "--store", &t2.url]);
    assert!(stderr(&out).contains("init --from"), "{}", stderr(&out));
}

#[test]
fn the_lease_refuses_a_second_daemon() {
    let Some(w) = server() else { return };
    let t = target(w, "lease");
    let a = Env::init_s3(t.clone());
    let mut b = Env::new();
    b.s3 = Some(t.clone());
    b.ok([
        OsStr("init"),
        OsStr("--from"),
        OsStr(&t.url),
        OsStr("--key"),
        a.home.join("keys/identity.age").into_os_string(),
    ]);
    let ma = Mounted::new(&a, &[]);
    fs::write(ma.p("from-a.txt"), b"written by a").unwrap();
    let pid = ma.daemon_pid();
    let dir = b.path("mnt");
    fs::create_dir_all(&dir).unwrap();
    let out = b.fails([OsStr("mount"), dir.as_os_str().into()]);
    let err = stderr(&out);
    assert!(err.contains("in use by another PerOS daemon"), "{err}");
    assert!(err.contains(&format!("pid {pid}")), "{err}");
    assert!(err.contains("peros umount"), "{err}");
    assert!(!is_mounted(&dir));
    // A command without a daemon is refused too (it would write the metadata).
    let out = b.fails(["ls", "/"]);
    assert!(stderr(&out).contains("in use by another PerOS daemon"));
    ma.unmount();
    // Released at unmount: B takes over at once and sees A's last write.
    let mb = Mounted::new(&b, &[]);
    assert_eq!(fs::read(mb.p("from-a.txt")).unwrap(), b"written by a");
    mb.unmount();
}

fn fsync_file(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

#[test]
fn server_killed_mid_workload() {
    let Some(mut w) = Seaweed::start() else {
        return;
    };
    let t = target(&w, "kill");
    let env = Env::init_s3(t);
    // fsync gives up after 3 s instead of 30.
    let cfg = env.home.join("config.toml");
    let text = fs::read_to_string(&cfg)
        .unwrap()
        .replace("sync_timeout_secs = 30", "sync_timeout_secs = 3");
    fs::write(&cfg, text).unwrap();
    let m = Mounted::new(&env, &[]);
    let early = random_bytes(11, 6 * MIB);
    fsync_file(&m.p("early.bin"), &early).unwrap();
    // A writer keeps going while the server dies and comes back.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let dir = m.dir.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut acked = Vec::new();
            let mut failed = 0;
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let data = random_bytes(100 + i, 200_000 + i as usize);
                match fsync_file(&dir.join(format!("w{i}.bin")), &data) {
                    Ok(()) => acked.push((i, data)),
                    Err(e) => {
                        assert_eq!(e.raw_os_error(), Some(libc::EIO), "fsync: {e}");
                        failed += 1;
                    }
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            (acked, failed)
        })
    };
    std::thread::sleep(Duration::from_millis(700));
    w.kill();
    // While it is down: fsync of new data fails with EIO (not a hang, not a false OK)...
    let t0 = Instant::now();
    let e = fsync_file(&m.p("during.bin"), b"written while the server is down")
        .expect_err("fsync must fail while the server is down");
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    // ...the mount stays up, cached data reads, listing works, status answers.
    assert_eq!(fs::read(m.p("early.bin")).unwrap(), early);
    assert!(fs::read_dir(&m.dir).unwrap().count() >= 2);
    let st = env.ok(["status"]);
    assert!(st.contains("uploads pending"), "{st}");
    std::thread::sleep(Duration::from_secs(2));
    w.restart();
    // The queued data goes up once the server is back: fsync succeeds again.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match fs::File::open(m.p("during.bin")).and_then(|f| f.sync_all()) {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => panic!("fsync still fails 60 s after the restart: {e}"),
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (acked, failed) = writer.join().unwrap();
    eprintln!(
        "writer: {} fsyncs acknowledged, {failed} failed with EIO",
        acked.len()
    );
    assert!(!acked.is_empty());
    m.unmount();
    fsck_clean(&env);
    assert_eq!(env.cat("/during.bin"), b"written while the server is down");
    assert_eq!(env.cat("/early.bin"), early);
    for (i, data) in &acked {
        assert_eq!(&env.cat(format!("/w{i}.bin")), data, "w{i}.bin");
    }
    // And a fresh home restored from the bucket has all of it: nothing acknowledged was lost.
    let mut fresh = Env::new();
    fresh.s3 = env.s3.clone();
    fresh.ok([
        OsStr("init"),
        OsStr("--from"),
        OsStr(&env.s3.as_ref().unwrap().url),
        OsStr("--key"),
        env.home.join("keys/identity.age").into_os_string(),
    ]);
    fsck_clean(&fresh);
    for (i, data) in &acked {
        assert_eq!(&fresh.cat(format!("/w{i}.bin")), data, "w{i}.bin");
    }
    assert_eq!(fresh.cat("/early.bin"), early);
}

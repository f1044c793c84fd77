//! The mount through ordinary tools: a real FUSE file system served by `peros mount`.
//!
//! Every test unmounts on every path (the [`Mounted`] guard), also when an assertion fails.

use std::ffi::CString;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use peros_tests::*;

/// The foundation's tree: boundary sizes, odd names, symlinks, empty dirs.
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("sub/deeper")).unwrap();
    fs::create_dir_all(root.join("empty dir")).unwrap();
    for (i, size) in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 50 * MIB]
        .iter()
        .enumerate()
    {
        write_random(&root.join(format!("f{size}")), i as u64 + 1, *size);
    }
    write_file(&root.join("with space.txt"), b"space\n");
    write_file(&root.join("ünïcødé ✓.md"), b"unicode\n");
    write_file(&root.join("new\nline"), b"newline in name\n");
    write_file(&root.join("-leading-dash"), b"dash\n");
    write_file(&root.join("sub/deeper/x.txt"), b"deep\n");
    set_mode(&root.join("sub/deeper/x.txt"), 0o640);
    std::os::unix::fs::symlink("sub/deeper/x.txt", root.join("rel-link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("dangling")).unwrap();
}

#[test]
fn ordinary_tools_round_trip_through_the_mount() {
    let env = Env::init();
    let src = env.path("src");
    make_tree(&src);
    let want = snapshot(&src);
    let m = Mounted::new(&env, &[]);

    sh(&format!(
        "cp -a '{}' '{}'",
        src.display(),
        m.p("cp").display()
    ));
    assert_same_tree("cp -a into the mount", &want, &snapshot(&m.p("cp")));

    let tarball = env.path("tree.tar");
    sh(&format!(
        "tar --format=posix -C '{}' -cf '{}' .",
        src.display(),
        tarball.display()
    ));
    fs::create_dir(m.p("tar")).unwrap();
    sh(&format!(
        "tar -C '{}' -xpf '{}'",
        m.p("tar").display(),
        tarball.display()
    ));
    let mut got = snapshot(&m.p("tar"));
    let mut want_tar = want.clone();
    // `tar x` into an existing directory leaves that directory's own mode and mtime alone.
    got.remove(&Vec::new());
    want_tar.remove(&Vec::new());
    assert_same_tree("tar x into the mount", &want_tar, &got);

    if have("rsync") {
        sh(&format!(
            "rsync -a '{}/' '{}/'",
            src.display(),
            m.p("rsync").display()
        ));
        assert_same_tree("rsync -a into the mount", &want, &snapshot(&m.p("rsync")));
    }
    sh(&format!(
        "diff -r --no-dereference '{}' '{}'",
        src.display(),
        m.p("cp").display()
    ));

    // Everything is still there, byte for byte, after unmount + mount, and fsck is clean.
    m.unmount();
    let m = Mounted::new(&env, &[]);
    assert_same_tree("after remount", &want, &snapshot(&m.p("cp")));
    env.ok(["fsck"]);
    // And out again through export, without the mount.
    m.unmount();
    let out = env.path("exported");
    env.ok(["export".as_ref(), "/cp".as_ref(), out.as_os_str()]);
    assert_same_tree("export of what cp wrote", &want, &snapshot(&out));
}

#[test]
fn random_writes_into_a_large_file_match_a_plain_file() {
    let env = Env::init();
    let m = Mounted::new(&env, &[]);
    let plain_path = env.path("plain.bin");
    let size = 100 * MIB;
    write_random(&plain_path, 7, size);
    fs::copy(&plain_path, m.p("big.bin")).unwrap();

    let plain = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&plain_path)
        .unwrap();
    let mounted = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.p("big.bin"))
        .unwrap();
    let mut rng = Rng::new(42);
    for i in 0..300 {
        let len =
            1 + (rng.next_u64() % (if i % 10 == 0 { 3 * MIB as u64 } else { 70_000 })) as usize;
        // Some writes run past the end and extend the file.
        let off = rng.next_u64() % (size as u64 + 2 * MIB as u64);
        let data = random_bytes(rng.next_u64(), len);
        plain.write_all_at(&data, off).unwrap();
        mounted.write_all_at(&data, off).unwrap();
        if i % 37 == 0 {
            // Reads see this process's own writes before any flush.
            let mut a = vec![0u8; 8192];
            let mut b = vec![0u8; 8192];
            let ra = plain.read_at(&mut a, off).unwrap();
            let rb = mounted.read_at(&mut b, off).unwrap();
            assert_eq!(a[..ra], b[..rb], "read-back at {off} after write {i}");
        }
    }
    mounted.sync_all().unwrap();
    drop(mounted);
    assert_eq!(
        fs::metadata(&plain_path).unwrap().len(),
        fs::metadata(m.p("big.bin")).unwrap().len()
    );
    assert_eq!(hash_file(&plain_path), hash_file(&m.p("big.bin")));
    m.unmount();
    let m = Mounted::new(&env, &[]);
    assert_eq!(
        hash_file(&plain_path),
        hash_file(&m.p("big.bin")),
        "after remount"
    );
    // Truncate down and up behaves like a plain file.
    for f in [plain_path.clone(), m.p("big.bin")] {
        let h = fs::OpenOptions::new().write(true).open(&f).unwrap();
        h.set_len(5 * MIB as u64 + 123).unwrap();
        h.set_len(9 * MIB as u64).unwrap();
    }
    assert_eq!(
        hash_file(&plain_path),
        hash_file(&m.p("big.bin")),
        "after truncates"
    );
}

fn renameat2(from: &Path, to: &Path, flags: u32) -> std::io::Result<()> {
    let a = CString::new(from.as_os_str().as_bytes()).unwrap();
    let b = CString::new(to.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid C strings; renameat2 has no other memory effects.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            flags,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[test]
fn posix_semantics_rename_links_xattrs_times_df() {
    let env = Env::init();
    let m = Mounted::new(&env, &[]);

    // rename over an existing file replaces it.
    fs::write(m.p("a"), b"AAA").unwrap();
    fs::write(m.p("b"), b"BBB").unwrap();
    fs::rename(m.p("a"), m.p("b")).unwrap();
    assert_eq!(fs::read(m.p("b")).unwrap(), b"AAA");
    assert!(!m.p("a").exists());
    // NOREPLACE refuses, EXCHANGE swaps.
    fs::write(m.p("c"), b"CCC").unwrap();
    let e = renameat2(&m.p("c"), &m.p("b"), libc::RENAME_NOREPLACE).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
    renameat2(&m.p("c"), &m.p("b"), libc::RENAME_EXCHANGE).unwrap();
    assert_eq!(fs::read(m.p("b")).unwrap(), b"CCC");
    assert_eq!(fs::read(m.p("c")).unwrap(), b"AAA");
    // Renaming a directory over a non-empty one fails; into itself fails.
    fs::create_dir_all(m.p("d1/inner")).unwrap();
    fs::create_dir_all(m.p("d2/x")).unwrap();
    assert!(fs::rename(m.p("d1"), m.p("d2")).is_err());
    assert!(fs::rename(m.p("d1"), m.p("d1/inner/moved")).is_err());
    fs::rename(m.p("d1"), m.p("d3")).unwrap();
    assert!(m.p("d3/inner").is_dir());

    // Hard links share content and count.
    fs::write(m.p("h1"), b"linked").unwrap();
    fs::hard_link(m.p("h1"), m.p("h2")).unwrap();
    assert_eq!(fs::metadata(m.p("h1")).unwrap().nlink(), 2);
    assert_eq!(
        fs::metadata(m.p("h1")).unwrap().ino(),
        fs::metadata(m.p("h2")).unwrap().ino()
    );
    fs::OpenOptions::new()
        .append(true)
        .open(m.p("h2"))
        .unwrap()
        .write_all(b"+more")
        .unwrap();
    assert_eq!(fs::read(m.p("h1")).unwrap(), b"linked+more");
    fs::remove_file(m.p("h1")).unwrap();
    assert_eq!(fs::metadata(m.p("h2")).unwrap().nlink(), 1);
    assert_eq!(
        fs::metadata(m.p("d3")).unwrap().nlink(),
        3,
        "dir nlink = 2 + subdirs"
    );

    // Symlinks.
    std::os::unix::fs::symlink("h2", m.p("sl")).unwrap();
    assert_eq!(fs::read_link(m.p("sl")).unwrap(), PathBuf::from("h2"));
    assert_eq!(fs::read(m.p("sl")).unwrap(), b"linked+more");

    // xattrs.
    sh(&format!(
        "setfattr -n user.peros.tags -v 'work,tax' '{}'",
        m.p("h2").display()
    ));
    let out = Command::new("getfattr")
        .arg("-n")
        .arg("user.peros.tags")
        .arg("--only-values")
        .arg(m.p("h2"))
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"work,tax");
    sh(&format!(
        "setfattr -n user.other -v 1 '{}'",
        m.p("h2").display()
    ));
    let out = Command::new("getfattr")
        .arg("-d")
        .arg(m.p("h2"))
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("user.peros.tags") && listed.contains("user.other"),
        "{listed}"
    );
    sh(&format!("setfattr -x user.other '{}'", m.p("h2").display()));
    let out = Command::new("getfattr")
        .arg("-n")
        .arg("user.other")
        .arg(m.p("h2"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "removed attribute still readable");

    // mtime/ctime: a write moves both; chmod moves ctime only; utimens sets mtime.
    fs::write(m.p("t"), b"1").unwrap();
    let before = fs::metadata(m.p("t")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    fs::OpenOptions::new()
        .append(true)
        .open(m.p("t"))
        .unwrap()
        .write_all(b"2")
        .unwrap();
    let after_write = fs::metadata(m.p("t")).unwrap();
    assert!(after_write.mtime() > before.mtime() || after_write.mtime_nsec() > before.mtime_nsec());
    assert!(after_write.ctime() >= after_write.mtime());
    std::thread::sleep(std::time::Duration::from_millis(1100));
    fs::set_permissions(m.p("t"), fs::Permissions::from_mode(0o600)).unwrap();
    let after_chmod = fs::metadata(m.p("t")).unwrap();
    assert_eq!(
        (after_chmod.mtime(), after_chmod.mtime_nsec()),
        (after_write.mtime(), after_write.mtime_nsec())
    );
    assert!(after_chmod.ctime() > after_write.ctime());
    assert_eq!(after_chmod.mode() & 0o777, 0o600);
    set_mtime(&m.p("t"), 1_000_000_000, 5);
    let set = fs::metadata(m.p("t")).unwrap();
    assert_eq!((set.mtime(), set.mtime_nsec()), (1_000_000_000, 5));
    // Parent directory mtime moves when an entry is added.
    let dir_before = fs::metadata(&m.dir).unwrap().mtime();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    fs::write(m.p("newfile"), b"x").unwrap();
    assert!(fs::metadata(&m.dir).unwrap().mtime() > dir_before);

    // Errors carry the right errno.
    assert_eq!(
        fs::remove_dir(m.p("d2")).unwrap_err().raw_os_error(),
        Some(libc::ENOTEMPTY)
    );
    assert_eq!(
        fs::read(m.p("missing")).unwrap_err().raw_os_error(),
        Some(libc::ENOENT)
    );
    assert_eq!(
        fs::create_dir(m.p("d2")).unwrap_err().raw_os_error(),
        Some(libc::EEXIST)
    );
    assert_eq!(
        fs::remove_file(m.p("d2")).unwrap_err().raw_os_error(),
        Some(libc::EISDIR)
    );

    // An unlinked file stays readable through an open handle.
    fs::write(m.p("ghost"), b"still here").unwrap();
    let mut f = fs::File::open(m.p("ghost")).unwrap();
    fs::remove_file(m.p("ghost")).unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "still here");
    drop(f);

    // FIFOs.
    sh(&format!("mkfifo '{}'", m.p("fifo").display()));
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(
        &fs::symlink_metadata(m.p("fifo")).unwrap().file_type()
    ));

    // df is sane.
    let out = Command::new("df").arg("-k").arg(&m.dir).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().nth(1).expect("df line");
    let cols: Vec<&str> = line.split_whitespace().collect();
    let (total, avail): (u64, u64) = (cols[1].parse().unwrap(), cols[3].parse().unwrap());
    assert!(total > 0 && avail > 0 && avail <= total, "df: {line}");

    // Other commands run through the daemon while mounted.
    let st = env.json(["status", "--json"]);
    assert!(
        st["daemon"]["pid"].as_u64().is_some(),
        "status through the daemon: {st}"
    );
    assert_eq!(env.cat("/b"), b"CCC");
    m.unmount();
    env.ok(["fsck"]);
}

#[test]
fn permissions_are_enforced_with_allow_other() {
    if unsafe { libc::geteuid() } != 0 || !have("setpriv") {
        eprintln!("skipped: needs root and setpriv");
        return;
    }
    let env = Env::init();
    // The non-root user must be able to reach the mount point.
    fs::set_permissions(
        env.home.parent().unwrap(),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    fs::set_permissions(&env.scratch, fs::Permissions::from_mode(0o755)).unwrap();
    let m = Mounted::new(&env, &["--allow-other"]);
    fs::set_permissions(&m.dir, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(m.p("public"), b"everyone").unwrap();
    fs::set_permissions(m.p("public"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(m.p("secret"), b"root only").unwrap();
    fs::set_permissions(m.p("secret"), fs::Permissions::from_mode(0o600)).unwrap();
    let as_nobody = |cmd: &str| {
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "sh",
                "-c",
                cmd,
            ])
            .output()
            .unwrap()
    };
    let ok = as_nobody(&format!("cat '{}'", m.p("public").display()));
    assert!(
        ok.status.success(),
        "nobody reads a 0644 file: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(ok.stdout, b"everyone");
    let denied = as_nobody(&format!("cat '{}'", m.p("secret").display()));
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("Permission denied"));
    let denied = as_nobody(&format!("echo x > '{}'", m.p("public").display()));
    assert!(
        !denied.status.success(),
        "nobody must not write a 0644 root file"
    );
    let denied = as_nobody(&format!("touch '{}'", m.p("newfile").display()));
    assert!(
        !denied.status.success(),
        "nobody must not create in a 0755 root dir"
    );
    m.unmount();
}

/// The default (no --allow-other): only the mounting user enters; another uid gets EACCES
/// for every kind of access, and the daemon goes on serving its owner.
#[test]
fn other_users_get_eacces_without_allow_other() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test switches to another uid: run it as root"
    );
    assert!(have("setpriv"), "setpriv (util-linux) is missing");
    let env = Env::init();
    fs::set_permissions(
        env.home.parent().unwrap(),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    fs::set_permissions(&env.scratch, fs::Permissions::from_mode(0o755)).unwrap();
    let m = Mounted::new(&env, &[]);
    let pid = m.daemon_pid();
    fs::set_permissions(&m.dir, fs::Permissions::from_mode(0o777)).unwrap();
    fs::write(m.p("public"), b"everyone").unwrap();
    fs::set_permissions(m.p("public"), fs::Permissions::from_mode(0o666)).unwrap();
    let dir = m.dir.display().to_string();
    for cmd in [
        format!("stat '{dir}/public'"),
        format!("cat '{dir}/public'"),
        format!("ls '{dir}'"),
        format!("echo x > '{dir}/new'"),
        format!("mkdir '{dir}/d'"),
        format!("getfattr -d '{dir}/public'"),
    ] {
        let out = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "sh",
                "-c",
            ])
            .arg(&cmd)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("Permission denied"),
            "`{cmd}` as nobody on a mount without --allow-other: want EACCES, got {} {err}",
            out.status
        );
    }
    // SAFETY: signal 0 only checks the process exists.
    assert_eq!(unsafe { libc::kill(pid, 0) }, 0, "the daemon died");
    assert_eq!(fs::read(m.p("public")).unwrap(), b"everyone");
    assert!(!m.p("new").exists() && !m.p("d").exists());
    m.unmount();
}

#[test]
fn fsynced_data_survives_kill_9() {
    let env = Env::init();
    let m = Mounted::new(&env, &[]);
    let mut expected = Vec::new();
    for i in 0..5u64 {
        let data = random_bytes(100 + i, (i as usize + 1) * 3 * MIB / 2);
        let mut f = fs::File::create(m.p(&format!("synced{i}"))).unwrap();
        f.write_all(&data).unwrap();
        f.sync_all().unwrap();
        expected.push((format!("synced{i}"), hash_bytes(&data)));
    }
    // Overwrite part of one fsynced file and fsync again.
    let f = fs::OpenOptions::new()
        .write(true)
        .open(m.p("synced2"))
        .unwrap();
    f.write_all_at(b"PATCHED", 1000).unwrap();
    f.sync_all().unwrap();
    let mut want2 = fs::read(m.p("synced2")).unwrap();
    want2[1000..1007].copy_from_slice(b"PATCHED");
    expected[2].1 = hash_bytes(&want2);
    // A file still being written when the daemon dies (not fsynced): may be lost, never corrupt others.
    let mut open = fs::File::create(m.p("unsynced")).unwrap();
    open.write_all(&random_bytes(9, MIB)).unwrap();

    let pid = m.daemon_pid();
    // SAFETY: sending a signal.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    std::thread::sleep(std::time::Duration::from_millis(300));
    drop(open);
    drop(m); // clears the stale mount
    let m = Mounted::new(&env, &[]);
    for (name, hash) in &expected {
        assert_eq!(
            &hash_file(&m.p(name)),
            hash,
            "{name} after kill -9 and remount"
        );
    }
    m.unmount();
    let out = env.run(["fsck"]);
    assert!(out.status.success(), "fsck after kill -9: {}", stdout(&out));
}

#[test]
fn fio_verify_passes_on_the_mount() {
    if !have("fio") {
        panic!("fio is not installed: scripts/setup.sh installs it (apt-get install fio)");
    }
    let env = Env::init();
    let m = Mounted::new(&env, &[]);
    let out = Command::new("fio")
        .args([
            "--name=verify",
            "--ioengine=psync",
            "--rw=randwrite",
            "--bs=4k",
            "--bsrange=4k-256k",
            "--size=48M",
            "--verify=crc32c",
            "--do_verify=1",
            "--verify_fatal=1",
            "--end_fsync=1",
            "--verify_state_save=0",
        ])
        .arg(format!("--directory={}", m.dir.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fio verify failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("verify: bad"), "{text}");
    m.unmount();
}

#[test]
fn concurrent_writers_and_reader_do_not_corrupt() {
    let env = Env::init();
    let m = Mounted::new(&env, &[]);
    let reference = random_bytes(5, 9 * MIB);
    fs::write(m.p("stable"), &reference).unwrap();
    let want = hash_bytes(&reference);
    std::thread::scope(|s| {
        for w in 0..2u64 {
            let path = m.p(&format!("writer{w}"));
            s.spawn(move || {
                let mut f = fs::File::create(&path).unwrap();
                for i in 0..40u64 {
                    f.write_all(&random_bytes(w * 1000 + i, 256 * 1024))
                        .unwrap();
                }
                f.sync_all().unwrap();
            });
        }
        let stable = m.p("stable");
        let want = want.clone();
        s.spawn(move || {
            for _ in 0..6 {
                assert_eq!(hash_file(&stable), want, "reader saw a corrupt file");
            }
        });
    });
    for w in 0..2u64 {
        let mut expect = Vec::new();
        for i in 0..40u64 {
            expect.extend(random_bytes(w * 1000 + i, 256 * 1024));
        }
        let mut got = Vec::new();
        let mut f = fs::File::open(m.p(&format!("writer{w}"))).unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut got).unwrap();
        assert!(got == expect, "writer{w} content differs");
    }
    m.unmount();
    env.ok(["fsck"]);
}

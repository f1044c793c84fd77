//! Keys, passphrases, permissions, and no plaintext in the object directory.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use peros_tests::*;

fn mode_of(p: &Path) -> u32 {
    fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn objects_hold_no_plaintext_names_or_contents() {
    let env = Env::init();
    let marker = unique_marker("plain");
    let m = marker.as_bytes();
    let src = env.path("src");

    // The marker in file contents: alone, repeated over several chunks, at a chunk boundary,
    // in a file of zeros, and in names of files, directories and symlink targets.
    write_file(&src.join("small.txt"), m);
    write_file(
        &src.join(format!("{marker}.txt")),
        format!("hello {marker}\n").as_bytes(),
    );
    write_file(
        &src.join(format!("dir-{marker}/nested {marker}")),
        &m.repeat(CHUNK * 2 / m.len() + 10),
    );
    let mut zeros = vec![0u8; CHUNK + 4096];
    zeros[CHUNK - m.len() / 2..CHUNK - m.len() / 2 + m.len()].copy_from_slice(m);
    write_file(&src.join("zeros-with-marker-at-boundary"), &zeros);
    let mut rnd = random_bytes(5, 3 * MIB);
    for off in (0..rnd.len() - m.len()).step_by(100_000) {
        rnd[off..off + m.len()].copy_from_slice(m);
    }
    write_file(&src.join("random-with-markers"), &rnd);
    write_file(&src.join("all-zeros"), &vec![0u8; CHUNK]);
    std::os::unix::fs::symlink(
        format!("target-{marker}"),
        src.join(format!("link-{marker}")),
    )
    .unwrap();
    fs::create_dir_all(src.join(format!("empty-{marker}"))).unwrap();

    env.ok([
        OsStr::new("import"),
        src.as_os_str(),
        format!("/{marker}").as_ref(),
    ]);
    // A second copy elsewhere, and an export, so every code path has written what it writes.
    env.ok([
        OsStr::new("import"),
        src.as_os_str(),
        format!("/again/{marker}-2").as_ref(),
    ]);
    env.ok([
        OsStr::new("export"),
        format!("/{marker}").as_ref(),
        env.path("out").as_os_str(),
    ]);
    assert_same_tree("export", &snapshot(&src), &snapshot(&env.path("out")));

    let objects = env.objects();
    assert!(objects.len() >= 5, "expected objects, found {objects:?}");
    let zero_run = vec![0u8; 64];
    for rel in &objects {
        let path_bytes = rel.as_os_str().as_bytes();
        assert!(
            !contains(path_bytes, m) && !contains(path_bytes, b"PEROSMARK"),
            "an object path holds the marker: {}",
            rel.display()
        );
        let full = env.objects_dir().join(rel);
        let data = fs::read(&full).unwrap();
        assert!(
            !contains(&data, m),
            "object {} holds the marker",
            rel.display()
        );
        assert!(
            !contains(&data, &m[..12]),
            "object {} holds part of the marker",
            rel.display()
        );
        assert!(
            !contains(&data, &zero_run),
            "object {} holds a run of 64 zero bytes: content not encrypted?",
            rel.display()
        );
        assert!(
            !contains(&data, b"hello "),
            "object {} holds plaintext",
            rel.display()
        );
    }
    // Also anything else under the object directory (directory names included).
    for e in walkdir::WalkDir::new(env.objects_dir()) {
        let e = e.unwrap();
        assert!(
            !contains(e.path().as_os_str().as_bytes(), b"PEROSMARK"),
            "{}",
            e.path().display()
        );
    }
}

#[test]
fn no_passphrase_init_makes_private_files() {
    let env = Env::init();
    let key = env.home.join("keys/identity.age");
    assert_eq!(mode_of(&key), 0o600, "key file mode");
    for d in ["", "keys", "meta", "objects"] {
        assert_eq!(
            mode_of(&env.home.join(d)),
            0o700,
            "mode of {}/{d}",
            env.home.display()
        );
    }
    // Opening the store (which creates the object directory) keeps it private too.
    let src = env.path("f");
    write_file(&src, b"data");
    env.ok([OsStr::new("import"), src.as_os_str(), "/f".as_ref()]);
    // (Below `objects/` the backend makes its fan-out directories with the umask: they are
    // only reachable through the 0700 directories checked here.)
    for d in ["", "keys", "meta", "objects"] {
        assert_eq!(
            mode_of(&env.home.join(d)),
            0o700,
            "mode of {d} after import"
        );
    }
    assert_eq!(mode_of(&key), 0o600);
    // An unwrapped key is an age identity: it must not be world- or group-readable.
    let text = fs::read_to_string(&key).unwrap();
    assert!(
        text.contains("AGE-SECRET-KEY-"),
        "unwrapped key file holds the identity"
    );

    // A second init refuses and keeps the key.
    let before = fs::read(&key).unwrap();
    let out = env.fails(["init", "--no-passphrase"]);
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(fs::read(&key).unwrap(), before);
}

/// The index holds extracted plaintext: its directory is 0700 whatever the umask, and an
/// existing one made with the umask is made private on open.
#[test]
fn the_index_directory_is_private() {
    use std::os::unix::process::CommandExt;
    let env = Env::init();
    let src = env.path("notes.md");
    write_file(&src, b"# Notes\nThe plaintext the index keeps.\n");
    env.ok([OsStr::new("import"), src.as_os_str(), "/notes.md".as_ref()]);
    let index = |env: &Env| {
        let mut cmd = env.command(["index", "--json"]);
        // SAFETY: umask is async-signal-safe and touches only this child.
        unsafe {
            cmd.pre_exec(|| {
                libc::umask(0o022);
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "peros index: {}", stderr(&out));
    };
    index(&env);
    let dir = env.home.join("index");
    assert_eq!(mode_of(&dir), 0o700, "mode of {}", dir.display());
    // One made by an older version with the umask is fixed on the next open.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    index(&env);
    assert_eq!(
        mode_of(&dir),
        0o700,
        "mode of {} after reopening",
        dir.display()
    );
}

#[test]
fn passphrase_store_works_with_the_right_passphrase() {
    let env = Env::init_with_passphrase("correct horse battery staple");
    let key = env.home.join("keys/identity.age");
    assert_eq!(mode_of(&key), 0o600, "key file mode");
    for d in ["", "keys", "meta", "objects"] {
        assert_eq!(mode_of(&env.home.join(d)), 0o700, "mode of {d}");
    }
    let text = fs::read(&key).unwrap();
    assert!(
        !contains(&text, b"AGE-SECRET-KEY-"),
        "a passphrase-wrapped key file must not hold the identity in clear"
    );
    let src = env.path("f.txt");
    write_file(&src, b"secret content\n");
    env.ok([OsStr::new("import"), src.as_os_str(), "/f.txt".as_ref()]);
    assert_eq!(env.cat("/f.txt"), b"secret content\n");
}

#[test]
fn wrong_or_missing_passphrase_fails_clearly_and_modifies_nothing() {
    let env = Env::init_with_passphrase("right passphrase");
    let src = env.path("src");
    write_file(&src.join("a"), b"alpha");
    write_random(&src.join("b"), 9, 100_000);
    env.ok([OsStr::new("import"), src.as_os_str(), "/src".as_ref()]);
    let before = snapshot(&env.home);

    let other = env.path("other");
    write_file(&other, b"other");
    let export_to = env.path("exported");
    let commands: Vec<Vec<&OsStr>> = vec![
        vec!["ls".as_ref(), "/src".as_ref()],
        vec!["cat".as_ref(), "/src/a".as_ref()],
        vec!["status".as_ref()],
        vec!["import".as_ref(), other.as_os_str(), "/other".as_ref()],
        vec!["export".as_ref(), "/src".as_ref(), export_to.as_os_str()],
        vec!["rm".as_ref(), "-r".as_ref(), "/src".as_ref()],
        vec!["gc".as_ref()],
        vec!["fsck".as_ref()],
        vec!["log".as_ref(), "/src/a".as_ref()],
        vec![
            "restore".as_ref(),
            "/src/a".as_ref(),
            "--version".as_ref(),
            "1".as_ref(),
        ],
    ];
    for args in &commands {
        // Wrong passphrase.
        let out = env.run_with(args, &[("PEROS_PASSPHRASE", Some("wrong passphrase"))]);
        assert_clean_failure(
            &args.iter().map(|a| a.to_os_string()).collect::<Vec<_>>(),
            &out,
        );
        let err = stderr(&out);
        assert!(
            err.contains("wrong passphrase"),
            "{args:?}: the message should say the passphrase is wrong: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: printed {}", stdout(&out));
        // No passphrase and no terminal to ask on.
        let out = env.run_with(args, &[("PEROS_PASSPHRASE", None)]);
        assert_clean_failure(
            &args.iter().map(|a| a.to_os_string()).collect::<Vec<_>>(),
            &out,
        );
        let err = stderr(&out);
        assert!(
            err.contains("passphrase") && err.contains("PEROS_PASSPHRASE"),
            "{args:?}: the message should say how to give the passphrase: {err}"
        );
        assert_same_tree(
            &format!("PEROS_HOME after `peros {args:?}` without the right passphrase"),
            &before,
            &snapshot(&env.home),
        );
    }
    assert!(
        fs::symlink_metadata(&export_to).is_err(),
        "export created {}",
        export_to.display()
    );

    // And the right one still works.
    assert_eq!(env.cat("/src/a"), b"alpha");
}

#[test]
fn init_without_passphrase_and_without_terminal_fails_clearly() {
    let env = Env::new();
    let out = env.fails(["init"]);
    let err = stderr(&out);
    assert!(
        err.contains("passphrase")
            && err.contains("PEROS_PASSPHRASE")
            && err.contains("--no-passphrase"),
        "{err}"
    );
    assert!(
        !env.home.join("keys/identity.age").exists(),
        "a failed init must not leave a key"
    );
    // An empty passphrase is refused too.
    let out = env.run_with(["init"], &[("PEROS_PASSPHRASE", Some(""))]);
    assert_clean_failure(&["init".into()], &out);
    assert!(
        stderr(&out).contains("PEROS_PASSPHRASE"),
        "{}",
        stderr(&out)
    );
    assert!(!env.home.join("keys/identity.age").exists());
    // After the failures a proper init still succeeds.
    let out = env.run_with(["init"], &[("PEROS_PASSPHRASE", Some("pw"))]);
    assert_success(&["init".into()], &out);
    assert!(env.home.join("keys/identity.age").exists());
}

#[test]
fn commands_without_a_store_say_to_run_init() {
    let env = Env::new();
    for args in [
        vec!["status"],
        vec!["ls", "/"],
        vec!["cat", "/x"],
        vec!["fsck"],
        vec!["gc"],
    ] {
        let out = env.fails(&args);
        assert!(
            stderr(&out).contains("peros init"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert!(!env.home.join("keys").exists());
}

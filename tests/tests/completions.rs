//! Ecosystem fit: shell completions, man pages, `--help` (exit codes, environment), NO_COLOR,
//! and the systemd user unit in examples/.

use std::process::Command;

use peros_tests::*;

#[test]
fn bash_completions_name_the_subcommands_and_every_shell_generates() {
    let env = Env::new();
    let bash = env.ok(["completions", "bash"]);
    for sub in [
        "mount", "umount", "search", "ask", "views", "agent", "doctor", "manpage", "import",
    ] {
        assert!(bash.contains(sub), "bash completions lack {sub}");
    }
    assert!(bash.contains("complete -F"), "not a bash completion script");
    // bash accepts it.
    if have("bash") {
        let f = env.path("peros.bash");
        std::fs::write(&f, &bash).unwrap();
        sh(&format!("bash -n {}", f.display()));
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = env.ok(["completions", shell]);
        assert!(out.contains("doctor"), "{shell} completions lack doctor");
    }
    let out = env.run(["completions", "tcsh"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[test]
fn man_pages_render() {
    let env = Env::new();
    let page = env.ok(["manpage"]);
    assert!(page.contains(".TH peros 1"), "roff header: {page:.200}");
    assert!(
        page.contains("doctor"),
        "the main page lists the subcommands"
    );
    let dir = env.path("man");
    let listed = env.ok(["manpage", "--out", dir.to_str().unwrap()]);
    for name in [
        "peros.1",
        "peros-mount.1",
        "peros-doctor.1",
        "peros-views-add.1",
    ] {
        assert!(
            dir.join(name).is_file(),
            "{name} missing; listed:\n{listed}"
        );
        assert!(listed.contains(name));
    }
    let mount = std::fs::read_to_string(dir.join("peros-mount.1")).unwrap();
    assert!(mount.contains(".TH peros-mount 1"), "{mount:.200}");
    if have("man") {
        let out = Command::new("man")
            .arg("-l")
            .arg(dir.join("peros-mount.1"))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "man -l failed: {}", stderr(&out));
        assert!(
            text.contains("NAME") && text.contains("--foreground"),
            "{text}"
        );
    } else {
        eprintln!("man not installed: checked the roff header only");
    }
}

#[test]
fn help_documents_exit_codes_and_no_color_is_respected() {
    let env = Env::new();
    let help = env.ok(["--help"]);
    for w in [
        "Exit codes:",
        "3  fsck",
        "NO_COLOR",
        "PEROS_HOME",
        "-q, --quiet",
        "-v, --verbose",
    ] {
        assert!(help.contains(w), "--help lacks {w:?}:\n{help}");
    }
    // A usage error: exit code 2, and no escape sequences (NO_COLOR is set, no terminal).
    let out = env.run(["no-such-command"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !out.stderr.contains(&0x1b),
        "colour escapes: {}",
        stderr(&out)
    );
    // Logs too (doctor output as well).
    let out = env.run_with(["-vv", "doctor"], &[("NO_COLOR", Some("1"))]);
    assert!(!out.stderr.contains(&0x1b), "colour escapes in logs");
    assert!(!out.stdout.contains(&0x1b), "colour escapes in doctor");
}

#[test]
fn systemd_unit_mounts_at_login() {
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/peros.service"),
    )
    .unwrap();
    for w in [
        "ExecStart=peros mount --foreground %h/peros",
        "ExecStop=peros umount %h/peros",
        "Restart=on-failure",
        "WantedBy=default.target",
    ] {
        assert!(unit.contains(w), "peros.service lacks {w:?}");
    }
}

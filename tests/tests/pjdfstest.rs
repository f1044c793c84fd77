//! POSIX conformance: the whole pjdfstest suite (tests/pjdfstest/README.md) inside a real
//! `peros mount --allow-other`, run as root with `prove -r`; 0 failed subtests.
//!
//! The suite switches to other uids (so the mount lets other users in) and includes
//! ftruncate/truncate to 999,999,999,999,999 bytes (ftruncate/12.t, truncate/12.t), so the
//! daemon runs under an RSS watchdog: a layout that grew with the file size would fail here.
//! `scripts/setup.sh` builds the binary; without it, or without `prove`, the test fails.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use peros_tests::watch::*;
use peros_tests::*;

/// The whole suite takes a few minutes; a hang is killed well before CI's own limit.
const SUITE_SECS: u64 = 40 * 60;
/// The daemon's RSS, at most (the embedder alone takes ~300 MB in a debug build; what the
/// suite writes is tiny, and a 1 PB truncate must cost bytes, not memory).
const RSS_LIMIT_MB: u64 = 1000;

/// The built pjdfstest binary: `$PEROS_PJDFSTEST` (env.sh), else where setup.sh puts it.
fn pjdfstest_bin() -> PathBuf {
    let bin = match std::env::var_os("PEROS_PJDFSTEST").filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(
            std::env::var("PEROS_CACHE").unwrap_or_else(|_| "/var/cache/peros".into()),
        )
        .join("pjdfstest-85a8aea/pjdfstest"),
    };
    assert!(
        bin.is_file() && bin.parent().unwrap().join("tests/conf").is_file(),
        "pjdfstest is not built at {} (with its tests/ beside it): run `bash scripts/setup.sh` \
         (it builds tests/pjdfstest/pjdfstest-85a8aea.tar.gz) and `source \
         /var/cache/peros/env.sh`, or set PEROS_PJDFSTEST",
        bin.display()
    );
    bin
}

/// The totals of a `prove` run.
#[derive(Debug, Default, PartialEq)]
struct Totals {
    files: u64,
    subtests: u64,
    /// Failed subtests, summed over the "Test Summary Report".
    failed: u64,
    /// Files in the summary report (failed subtests, a bad exit status or a wrong plan).
    bad_files: Vec<String>,
    passed: bool,
}

/// Parses prove's summary: `Files=238, Tests=8792, ...`, `Result: PASS|FAIL` and, per bad file,
/// `/path/x.t (Wstat: 0 Tests: 5 Failed: 1)`.
fn parse_prove(out: &str) -> Option<Totals> {
    let mut t = Totals::default();
    let mut seen_totals = false;
    let mut in_report = false;
    for line in out.lines() {
        if line.starts_with("Test Summary Report") {
            in_report = true;
        } else if let Some(rest) = line.strip_prefix("Files=") {
            let mut parts = rest.split(',');
            t.files = parts.next()?.trim().parse().ok()?;
            t.subtests = parts.next()?.trim().strip_prefix("Tests=")?.parse().ok()?;
            seen_totals = true;
            in_report = false;
        } else if let Some(r) = line.strip_prefix("Result: ") {
            t.passed = r.trim() == "PASS";
        } else if in_report && line.contains(" (Wstat: ") {
            let failed = line
                .split("Failed: ")
                .nth(1)
                .and_then(|s| s.trim_end_matches(')').trim().parse::<u64>().ok())
                .unwrap_or(0);
            t.failed += failed;
            t.bad_files.push(line.trim().to_string());
        }
    }
    seen_totals.then_some(t)
}

#[test]
fn prove_output_parses() {
    let out = "\
/x/tests/chmod/02.t ........ Failed 1/5 subtests
Test Summary Report
-------------------
/x/tests/chmod/02.t (Wstat: 0 Tests: 5 Failed: 1)
  Failed test:  3
/x/tests/rename/01.t (Wstat: 256 (exited 1) Tests: 8 Failed: 2)
  Failed tests:  1-2
Files=238, Tests=8792, 301 wallclock secs ( 1.2 usr  0.4 sys + 50 cusr 60 csys = 111 CPU)
Result: FAIL
";
    let t = parse_prove(out).unwrap();
    assert_eq!(
        (t.files, t.subtests, t.failed, t.passed),
        (238, 8792, 3, false)
    );
    assert_eq!(t.bad_files.len(), 2);
    let ok = "All tests successful.\nFiles=2, Tests=10,  1 wallclock secs\nResult: PASS\n";
    let t = parse_prove(ok).unwrap();
    assert_eq!((t.files, t.subtests, t.failed, t.passed), (2, 10, 0, true));
    assert!(parse_prove("prove: command not found").is_none());
}

#[test]
fn pjdfstest_passes_on_a_mount_with_allow_other() {
    // SAFETY: geteuid cannot fail.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "pjdfstest switches uids: run the tests as root (CI does)"
    );
    let bin = pjdfstest_bin();
    assert!(
        have("prove"),
        "`prove` (package perl) is missing: run `bash scripts/setup.sh`"
    );
    let tests = bin.parent().unwrap().join("tests");

    let env = Env::init();
    // Other uids must reach the mount point.
    for d in [env.home.parent().unwrap(), &env.scratch] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let m = Mounted::new(&env, &["--allow-other"]);
    let pid = m.daemon_pid();
    let watch = RssWatch::start(pid, RSS_LIMIT_MB);
    let work = m.p("pjdfstest");
    fs::create_dir(&work).unwrap();
    fs::set_permissions(&work, fs::Permissions::from_mode(0o755)).unwrap();

    let t0 = Instant::now();
    let mut child = Command::new("prove")
        .arg("-r")
        .arg(&tests)
        .current_dir(&work)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start prove");
    // Output is read on threads, so a full pipe cannot stall the suite.
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > Duration::from_secs(SUITE_SECS) {
            let _ = child.kill();
            kill9(pid);
            let _ = child.wait();
            panic!(
                "pjdfstest still running after {SUITE_SECS} s (a hang?): killed prove and the \
                 daemon [{}]\n{}",
                watch.state(),
                out_t.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let secs = t0.elapsed().as_secs_f64();
    let out = out_t.join().unwrap();
    let err = err_t.join().unwrap();
    let hwm_mb = hwm_kib(pid).unwrap_or(0) as f64 * 1024.0 / 1e6;
    watch.check("pjdfstest");
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    assert!(alive, "the daemon died during pjdfstest\n{out}\n{err}");

    let totals = parse_prove(&out).unwrap_or_else(|| {
        panic!("no totals in prove's output ({status}):\n{out}\n--- stderr:\n{err}")
    });
    println!(
        "pjdfstest: {} files, {} subtests, {} failed, {:.0} s; daemon peak RSS {hwm_mb:.0} MB",
        totals.files, totals.subtests, totals.failed, secs
    );
    assert!(
        totals.passed && totals.failed == 0 && totals.bad_files.is_empty() && status.success(),
        "pjdfstest: {} of {} subtests failed in {} files ({status}):\n{}\n--- stderr:\n{}",
        totals.failed,
        totals.subtests,
        totals.bad_files.len(),
        totals.bad_files.join("\n"),
        err
    );
    // The suite's counts are known: a run that found no tests must not pass.
    assert!(
        totals.files >= 200 && totals.subtests >= 8000,
        "pjdfstest ran only {} files, {} subtests",
        totals.files,
        totals.subtests
    );

    // The mount still works after the suite, and the store is consistent.
    fs::write(m.p("after.bin"), b"still works").unwrap();
    assert_eq!(fs::read(m.p("after.bin")).unwrap(), b"still works");
    drop(watch);
    unmount_within(m, 120);
    fsck_clean(&env, "after pjdfstest");
}

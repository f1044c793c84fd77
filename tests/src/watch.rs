//! Watching the daemon in tests that could run it out of memory or hang it: an RSS watchdog
//! that kills the daemon over a limit, time limits that kill it when a call blocks, and
//! `umount`/`fsck` within a time limit. (Moved from write_path.rs, shared with badinput.rs and
//! pjdfstest.rs.)

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use crate::{is_mounted, stderr, stdout, Env, Mounted};

/// `kill -9 PID` and wait (up to 10 s) until it is gone (as crash.rs does).
pub fn kill9(pid: i32) {
    // SAFETY: sending a signal to the daemon this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(10);
    // SAFETY: signal 0 only checks the process exists.
    while unsafe { libc::kill(pid, 0) } == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The daemon's pid from `PEROS_HOME/daemon.pid` (what [`Mounted::daemon_pid`] reads).
pub fn daemon_pid_of(home: &Path) -> Option<i32> {
    fs::read_to_string(home.join("daemon.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// VmRSS of `pid` in KiB (None once the process is gone).
pub fn rss_kib(pid: i32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// VmHWM (the peak RSS over the process's life) of `pid` in KiB: catches a spike between the
/// watchdog's samples.
pub fn hwm_kib(pid: i32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

fn status_kib(pid: i32, key: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Samples the daemon's RSS every 20 ms; over `limit_mb` it says so on stderr and kills the
/// daemon (so it cannot take the machine's memory), and [`RssWatch::check`] fails.
pub struct RssWatch {
    pid: i32,
    limit_kib: u64,
    start_kib: u64,
    /// RSS at named moments (shown in failures).
    marks: Vec<String>,
    max_kib: Arc<AtomicU64>,
    over: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl RssWatch {
    pub fn start(pid: i32, limit_mb: u64) -> Self {
        let limit_kib = limit_mb * 1000 * 1000 / 1024;
        let start_kib = rss_kib(pid).unwrap_or(0);
        let max_kib = Arc::new(AtomicU64::new(start_kib));
        let over = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let (max_kib, over, stop) = (max_kib.clone(), over.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match rss_kib(pid) {
                        Some(kib) => {
                            max_kib.fetch_max(kib, Ordering::Relaxed);
                            if kib > limit_kib && !over.swap(true, Ordering::Relaxed) {
                                eprintln!(
                                    "RSS WATCHDOG: daemon {pid} RSS {:.0} MB > limit {limit_mb} MB: \
                                     kill -9 of the daemon",
                                    kib as f64 * 1024.0 / 1e6
                                );
                                kill9(pid);
                            }
                        }
                        None => break,
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        RssWatch {
            pid,
            limit_kib,
            start_kib,
            marks: Vec::new(),
            max_kib,
            over,
            stop,
            handle: Some(handle),
        }
    }

    /// Records the RSS now under `label`.
    pub fn mark(&mut self, label: &str) {
        let mb = rss_kib(self.pid).unwrap_or(0) as f64 * 1024.0 / 1e6;
        let peak = self.max_mb();
        println!("daemon RSS {label}: {mb:.0} MB (peak so far {peak:.0} MB)");
        self.marks
            .push(format!("{mb:.0} MB (peak so far {peak:.0} MB) {label}"));
    }

    pub fn max_mb(&self) -> f64 {
        self.max_kib.load(Ordering::Relaxed) as f64 * 1024.0 / 1e6
    }

    pub fn exceeded(&self) -> bool {
        self.over.load(Ordering::Relaxed)
    }

    pub fn state(&self) -> String {
        format!(
            "daemon {} peak RSS {:.0} MB (limit {:.0} MB; {:.0} MB when the watch began{}){}",
            self.pid,
            self.max_mb(),
            self.limit_kib as f64 * 1024.0 / 1e6,
            self.start_kib as f64 * 1024.0 / 1e6,
            self.marks
                .iter()
                .map(|m| format!(", {m}"))
                .collect::<String>(),
            if self.exceeded() {
                ", OVER THE LIMIT: the watchdog killed the daemon"
            } else {
                ""
            }
        )
    }

    /// Fails if the RSS went over the limit at any time so far.
    pub fn check(&self, step: &str) {
        assert!(!self.exceeded(), "{step}: {}", self.state());
    }
}

impl Drop for RssWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Kills the daemon (whichever `PEROS_HOME/daemon.pid` names then) if the test is still
/// running after `secs`: blocked calls into the mount then fail instead of hanging forever.
pub struct Deadline {
    done: Arc<AtomicBool>,
    fired: Arc<AtomicBool>,
}

impl Deadline {
    pub fn new(home: &Path, secs: u64, what: &str) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let fired = Arc::new(AtomicBool::new(false));
        let (d, f, home, what) = (
            done.clone(),
            fired.clone(),
            home.to_path_buf(),
            what.to_string(),
        );
        std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(secs);
            while Instant::now() < end {
                if d.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            f.store(true, Ordering::Relaxed);
            eprintln!("DEADLINE: {what} still running after {secs} s: kill -9 of the daemon");
            if let Some(pid) = daemon_pid_of(&home) {
                kill9(pid);
            }
        });
        Deadline { done, fired }
    }

    pub fn check(&self, what: &str) {
        assert!(
            !self.fired.load(Ordering::Relaxed),
            "{what}: the test's time limit passed (a hang?); the daemon was killed"
        );
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

/// Runs `f` in a thread; if it has not returned after `secs`, kills the daemon `pid` (so the
/// blocked call returns) and fails naming `what`.
pub fn timed<T: Send + 'static>(
    what: &str,
    secs: u64,
    pid: i32,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => {
            let _ = handle.join();
            v
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            kill9(pid);
            panic!("{what}: no answer after {secs} s (a hang); killed the daemon");
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => unreachable!("the thread sent nothing but did not panic"),
        },
    }
}

/// Runs `cmd` (stdout and stderr captured); kills it and fails after `secs`.
pub fn output_within(mut cmd: Command, secs: u64, what: &str) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let pid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(out) => out.unwrap_or_else(|e| panic!("{what}: {e}")),
        Err(_) => {
            // SAFETY: killing the child this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("{what}: still running after {secs} s (a hang); killed it");
        }
    }
}

/// `peros umount` within `secs` (a wedged daemon fails the test instead of blocking it).
pub fn unmount_within(m: Mounted<'_>, secs: u64) {
    let (env, dir) = (m.env, m.dir.clone());
    std::mem::forget(m);
    let out = output_within(
        env.command(["umount".as_ref(), dir.as_os_str()]),
        secs,
        "peros umount",
    );
    if !out.status.success() || is_mounted(&dir) {
        let _ = Command::new("fusermount3")
            .arg("-u")
            .arg("-z")
            .arg(&dir)
            .status();
        panic!(
            "peros umount failed ({}): {}{}",
            out.status,
            stdout(&out),
            stderr(&out)
        );
    }
}

/// Offline `peros fsck` (no daemon) must be clean.
pub fn fsck_clean(env: &Env, what: &str) {
    let out = output_within(env.command(["fsck"]), 300, "peros fsck");
    assert!(
        out.status.success(),
        "{what}: fsck found problems ({}):\n{}{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
}

//! Shared helpers for the PerOS integration tests (`tests/tests/*.rs`).
//!
//! The tests drive the real `peros` binary with [`std::process::Command`] against real stores
//! in temporary directories (`PEROS_HOME=<tempdir>`). Cargo does not build another package's
//! binary for this package's tests, so build it first, with the same `CARGO_TARGET_DIR`:
//!
//! ```text
//! cargo build -p peros && cargo test -p peros-tests
//! ```
//!
//! `PEROS_BIN=/path/to/peros` tests another binary.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{CString, OsStr};
use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub use serde_json::Value;

pub mod fake_llm;
pub mod llama;
pub mod seaweed;
pub mod watch;

pub const MIB: usize = 1024 * 1024;
/// The store's fixed chunk size.
pub const CHUNK: usize = 4 * MIB;

/// The `peros` binary under test: `$PEROS_BIN`, else `peros` in the target directory that
/// holds this test executable (`target/debug/deps/<test>` → `target/debug/peros`).
pub fn peros_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = match std::env::var_os("PEROS_BIN").filter(|v| !v.is_empty()) {
            Some(p) => PathBuf::from(p),
            None => {
                let exe = std::env::current_exe().expect("current_exe");
                let deps = exe.parent().expect("test executable has a directory");
                deps.parent()
                    .expect("test executable lives in target/<profile>/deps")
                    .join("peros")
            }
        };
        if !bin.is_file() {
            panic!(
                "the peros binary is missing at {}: build it first with \
                 `cargo build -p peros` (same CARGO_TARGET_DIR as the tests), \
                 or set PEROS_BIN to the binary to test",
                bin.display()
            );
        }
        warn_if_stale(&bin);
        bin
    })
    .clone()
}

/// Tests against an old binary mislead: say so (shown with the output of a failing test).
fn warn_if_stale(bin: &Path) {
    let Ok(built) = fs::metadata(bin).and_then(|m| m.modified()) else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in ["cli/src", "store/src", "crypto/src"] {
        for e in walkdir::WalkDir::new(root.join(dir)).into_iter().flatten() {
            if let Ok(m) = fs::metadata(e.path()).and_then(|m| m.modified()) {
                if m > built {
                    eprintln!(
                        "WARNING: {} is newer than {}: run `cargo build -p peros` first",
                        e.path().display(),
                        bin.display()
                    );
                    return;
                }
            }
        }
    }
}

/// A store in a temporary directory, plus scratch space for sources and exports.
pub struct Env {
    _tmp: tempfile::TempDir,
    /// `PEROS_HOME`.
    pub home: PathBuf,
    /// Scratch directory (sibling of `home`) for source trees and exports.
    pub scratch: PathBuf,
    /// Given to every command as `PEROS_PASSPHRASE` when set.
    pub passphrase: Option<String>,
    /// The store lives in S3 (`init --store URL`); its `AWS_*` variables go to every command.
    pub s3: Option<S3Target>,
}

/// Where an [`Env`]'s store lives in S3, and the variables that reach the server.
#[derive(Clone, Debug)]
pub struct S3Target {
    pub url: String,
    pub env: Vec<(String, String)>,
}

/// The backend the ordinary tests use: `PEROS_TEST_BACKEND=s3` puts every [`Env::init`] store
/// in a fresh prefix of one SeaweedFS per test binary (scripts/test.sh runs the round-trip
/// and mount tests a second time so).
pub fn test_backend_s3() -> Option<S3Target> {
    if std::env::var("PEROS_TEST_BACKEND").as_deref() != Ok("s3") {
        return None;
    }
    let Some(server) = seaweed::shared() else {
        panic!("PEROS_TEST_BACKEND=s3 but {}", seaweed::skip_message());
    };
    Some(S3Target {
        url: format!("s3://{}/{}", seaweed::BUCKET, seaweed::unique_prefix("env")),
        env: server.aws_env(),
    })
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

impl Env {
    /// A temporary directory with no store yet (`home` does not exist).
    pub fn new() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("peros-test-")
            .tempdir()
            .expect("tempdir");
        let home = tmp.path().join("home");
        let scratch = tmp.path().join("scratch");
        fs::create_dir(&scratch).expect("scratch dir");
        Env {
            _tmp: tmp,
            home,
            scratch,
            passphrase: None,
            s3: None,
        }
    }

    /// A fresh store made with `peros init --no-passphrase` (in S3 when
    /// `PEROS_TEST_BACKEND=s3`: see [`test_backend_s3`]).
    pub fn init() -> Self {
        let mut env = Self::new();
        env.s3 = test_backend_s3();
        env.ok(env.init_args(&["init", "--no-passphrase"]));
        env
    }

    /// A fresh store whose key is wrapped with `passphrase` (given through `PEROS_PASSPHRASE`).
    pub fn init_with_passphrase(passphrase: &str) -> Self {
        let mut env = Self::new();
        env.passphrase = Some(passphrase.to_string());
        env.s3 = test_backend_s3();
        env.ok(env.init_args(&["init"]));
        env
    }

    /// A fresh store in `target` (`peros init --no-passphrase --store URL`).
    pub fn init_s3(target: S3Target) -> Self {
        let mut env = Self::new();
        env.s3 = Some(target);
        env.ok(env.init_args(&["init", "--no-passphrase"]));
        env
    }

    fn init_args(&self, base: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        if let Some(t) = &self.s3 {
            v.push("--store".into());
            v.push(t.url.clone());
        }
        v
    }

    /// A path in the scratch directory.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.scratch.join(rel)
    }

    pub fn objects_dir(&self) -> PathBuf {
        self.home.join("objects")
    }

    /// `peros ARGS` with a clean environment: `PEROS_HOME` set, stdin not a terminal.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(peros_bin());
        cmd.args(args)
            .env("PEROS_HOME", &self.home)
            .env_remove("PEROS_PASSPHRASE")
            .env_remove("PEROS_LOG")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_DATA_HOME")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        if let Some(p) = &self.passphrase {
            cmd.env("PEROS_PASSPHRASE", p);
        }
        for v in [
            "AWS_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ] {
            cmd.env_remove(v);
        }
        if let Some(t) = &self.s3 {
            cmd.envs(t.env.iter().map(|(k, v)| (k, v)));
        }
        cmd
    }

    /// Runs `peros ARGS` and returns its output, whatever the exit code.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_cmd(self.command(args))
    }

    /// Runs `peros ARGS` with extra environment (`None` removes a variable).
    pub fn run_with<I, S>(&self, args: I, envs: &[(&str, Option<&str>)]) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(args);
        for (k, v) in envs {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        run_cmd(cmd)
    }

    /// Runs `peros ARGS`, asserts success, returns stdout as bytes.
    pub fn ok_bytes<I, S>(&self, args: I) -> Vec<u8>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args = collect_args(args);
        let out = self.run(&args);
        assert_success(&args, &out);
        out.stdout
    }

    /// Runs `peros ARGS`, asserts success, returns stdout.
    pub fn ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        String::from_utf8_lossy(&self.ok_bytes(args)).into_owned()
    }

    /// Runs `peros ARGS` (which should include `--json`), asserts success, parses stdout.
    pub fn json<I, S>(&self, args: I) -> Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args = collect_args(args);
        let out = self.ok(&args);
        serde_json::from_str(&out).unwrap_or_else(|e| {
            panic!(
                "peros {} printed invalid JSON ({e}):\n{out}",
                show_args(&args)
            )
        })
    }

    /// Runs `peros ARGS`, asserts it failed cleanly (exit code 1, a `peros: error:` message,
    /// no panic) and returns the output.
    pub fn fails<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args = collect_args(args);
        let out = self.run(&args);
        assert_clean_failure(&args, &out);
        out
    }

    /// `peros status --json`.
    pub fn status(&self) -> Value {
        self.json(["status", "--json"])
    }

    /// `stats.KEY` of `peros status --json`.
    pub fn stat(&self, key: &str) -> u64 {
        self.status()["stats"][key]
            .as_u64()
            .unwrap_or_else(|| panic!("status --json has no numeric stats.{key}"))
    }

    /// Every file under the object directory (paths relative to it).
    pub fn objects(&self) -> BTreeSet<PathBuf> {
        let dir = self.objects_dir();
        walkdir::WalkDir::new(&dir)
            .into_iter()
            .map(|e| e.expect("walking the object directory"))
            .filter(|e| e.file_type().is_file())
            .map(|e| e.path().strip_prefix(&dir).unwrap().to_path_buf())
            .collect()
    }

    /// `peros cat PATH` as bytes, asserting success.
    pub fn cat(&self, store_path: impl AsRef<OsStr>) -> Vec<u8> {
        self.ok_bytes([OsStr::new("cat"), store_path.as_ref()])
    }
}

fn collect_args<I, S>(args: I) -> Vec<std::ffi::OsString>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    args.into_iter()
        .map(|a| a.as_ref().to_os_string())
        .collect()
}

fn show_args(args: &[std::ffi::OsString]) -> String {
    args.iter()
        .map(|a| format!("{:?}", a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn run_cmd(mut cmd: Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", peros_bin().display()))
}

fn clip(bytes: &[u8]) -> String {
    const MAX: usize = 4000;
    let s = String::from_utf8_lossy(bytes);
    if s.len() > MAX {
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}… ({} bytes)", &s[..end], bytes.len())
    } else {
        s.into_owned()
    }
}

/// Panics with the command, exit status, stdout and stderr unless `out` succeeded.
pub fn assert_success(args: &[std::ffi::OsString], out: &Output) {
    if !out.status.success() {
        panic!(
            "peros {} failed ({})\n--- stderr:\n{}\n--- stdout:\n{}",
            show_args(args),
            out.status,
            clip(&out.stderr),
            clip(&out.stdout)
        );
    }
}

/// Asserts `out` is a clean error: exit code 1, a `peros: error:` message, no panic.
pub fn assert_clean_failure(args: &[std::ffi::OsString], out: &Output) {
    let err = String::from_utf8_lossy(&out.stderr);
    let ctx = || {
        format!(
            "peros {} ({})\n--- stderr:\n{}\n--- stdout:\n{}",
            show_args(args),
            out.status,
            clip(&out.stderr),
            clip(&out.stdout)
        )
    };
    assert!(!out.status.success(), "expected a failure: {}", ctx());
    assert!(!err.contains("panicked"), "peros panicked: {}", ctx());
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected exit code 1: {}",
        ctx()
    );
    assert!(
        err.contains("peros: error:"),
        "expected a `peros: error:` message: {}",
        ctx()
    );
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ----- data -----

/// SplitMix64: a fast deterministic generator for incompressible test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5eed_0f9e_2026)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let v = self.next_u64().to_le_bytes();
            let n = rest.len();
            rest.copy_from_slice(&v[..n]);
        }
    }
}

/// `len` pseudo-random bytes from `seed`.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Rng::new(seed).fill(&mut v);
    v
}

/// Writes `len` pseudo-random bytes from `seed` to `path` (in 1 MiB blocks), creating the
/// parent directories.
pub fn write_random(path: &Path, seed: u64, len: usize) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    let mut rng = Rng::new(seed);
    let mut f = fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut buf = vec![0u8; MIB];
    let mut left = len;
    while left > 0 {
        let n = left.min(MIB);
        rng.fill(&mut buf[..n]);
        f.write_all(&buf[..n]).expect("write");
        left -= n;
    }
}

/// Creates the parent directories of `path` and writes `data` to it.
pub fn write_file(path: &Path, data: &[u8]) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    fs::write(path, data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Sets atime and mtime of `path` itself (a symlink is not followed).
pub fn set_mtime(path: &Path, secs: i64, nanos: i64) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    let ts = [
        libc::timespec {
            tv_sec: secs as libc::time_t,
            tv_nsec: nanos as libc::c_long,
        },
        libc::timespec {
            tv_sec: secs as libc::time_t,
            tv_nsec: nanos as libc::c_long,
        },
    ];
    // SAFETY: a valid C string and a two-element timespec array.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(
        rc,
        0,
        "utimensat {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// BLAKE3 of a file's content, hex.
pub fn hash_file(path: &Path) -> String {
    let mut h = blake3::Hasher::new();
    h.update_reader(fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap();
    h.finalize().to_hex().to_string()
}

pub fn hash_bytes(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

// ----- tree snapshots -----

/// One entry of a local tree as the tests compare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    File {
        size: u64,
        hash: String,
        mode: u32,
        mtime: (i64, i64),
    },
    Dir {
        mode: u32,
        mtime: (i64, i64),
    },
    Symlink {
        target: Vec<u8>,
        mtime: (i64, i64),
    },
    Other {
        mode: u32,
    },
}

/// Every path under `root` (relative, as bytes; `root` itself is the empty path) with type,
/// permission bits, content hash, symlink target and mtime. Symlinks are not followed.
pub fn snapshot(root: &Path) -> BTreeMap<Vec<u8>, Entry> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).follow_links(false) {
        let e = e.unwrap_or_else(|err| panic!("walking {}: {err}", root.display()));
        let rel = e
            .path()
            .strip_prefix(root)
            .unwrap()
            .as_os_str()
            .as_bytes()
            .to_vec();
        let m = fs::symlink_metadata(e.path()).unwrap();
        let mtime = (m.mtime(), m.mtime_nsec());
        let mode = m.mode() & 0o7777;
        let ft = m.file_type();
        let entry = if ft.is_file() {
            Entry::File {
                size: m.len(),
                hash: hash_file(e.path()),
                mode,
                mtime,
            }
        } else if ft.is_dir() {
            Entry::Dir { mode, mtime }
        } else if ft.is_symlink() {
            Entry::Symlink {
                target: fs::read_link(e.path())
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec(),
                mtime,
            }
        } else {
            Entry::Other { mode: m.mode() }
        };
        out.insert(rel, entry);
    }
    out
}

/// Printable form of a path or name given as bytes.
pub fn show(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

/// Differences between two snapshots, one line each; empty when they are equal.
pub fn diff_snapshots(
    want: &BTreeMap<Vec<u8>, Entry>,
    got: &BTreeMap<Vec<u8>, Entry>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in want {
        match got.get(k) {
            None => out.push(format!("missing: {} ({v:?})", show(k))),
            Some(g) if g != v => {
                out.push(format!("differs: {}\n  want {v:?}\n  got  {g:?}", show(k)))
            }
            _ => {}
        }
    }
    for (k, v) in got {
        if !want.contains_key(k) {
            out.push(format!("unexpected: {} ({v:?})", show(k)));
        }
    }
    out
}

/// Panics with a readable list of differences unless the snapshots are equal.
pub fn assert_same_tree(
    what: &str,
    want: &BTreeMap<Vec<u8>, Entry>,
    got: &BTreeMap<Vec<u8>, Entry>,
) {
    let diff = diff_snapshots(want, got);
    if !diff.is_empty() {
        let mut msg = format!("{what}: {} differences\n", diff.len());
        for d in diff.iter().take(50) {
            let _ = writeln!(msg, "{d}");
        }
        panic!("{msg}");
    }
}

/// All occurrences of `needle` in `hay` (as a boolean).
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// A marker unique to this test run, so that it cannot appear in a store by chance.
pub fn unique_marker(tag: &str) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "PEROSMARK{tag}{:016x}{:08x}",
        Rng::new(t as u64).next_u64(),
        std::process::id()
    )
}

// ----- mounts -----

/// A store mounted with `peros mount` at `scratch/mnt`; unmounts (and clears a stale mount)
/// when dropped, so tests clean up on every path.
pub struct Mounted<'a> {
    pub env: &'a Env,
    pub dir: PathBuf,
}

impl<'a> Mounted<'a> {
    pub fn new(env: &'a Env, extra: &[&str]) -> Self {
        let dir = env.path("mnt");
        std::fs::create_dir_all(&dir).unwrap();
        let mut args = vec!["mount".to_string(), dir.display().to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        env.ok(&args);
        Mounted { env, dir }
    }

    pub fn p(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    pub fn daemon_pid(&self) -> i32 {
        let text = std::fs::read_to_string(self.env.home.join("daemon.pid")).expect("daemon.pid");
        text.lines().next().unwrap().trim().parse().unwrap()
    }

    pub fn unmount(self) {
        let dir = self.dir.clone();
        self.env.ok(["umount".as_ref(), dir.as_os_str()]);
        std::mem::forget(self);
        assert!(!is_mounted(&dir), "still mounted after umount");
    }
}

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let _ = self.env.run(["umount".as_ref(), self.dir.as_os_str()]);
        if is_mounted(&self.dir) {
            let _ = std::process::Command::new("fusermount3")
                .arg("-u")
                .arg("-z")
                .arg(&self.dir)
                .status();
        }
    }
}

pub fn is_mounted(dir: &std::path::Path) -> bool {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = dir.to_string_lossy().replace(' ', "\\040");
    text.lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

pub fn sh(cmd: &str) {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn have(tool: &str) -> bool {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Reports a test that cannot run because the local LLM (llama-server and its model) is not
/// set up. With `PEROS_REQUIRE_LLM=1` (scripts/test.sh sets it after building them) that is a
/// failure instead, so CI cannot pass by skipping.
pub fn skip_without_llm(why: &str) {
    if std::env::var("PEROS_REQUIRE_LLM").as_deref() == Ok("1") {
        panic!("PEROS_REQUIRE_LLM=1 but the local LLM is not available: {why}");
    }
    eprintln!("\nSKIPPED: {why}\n");
}

/// Calls `f` until it gives a value, every `every`, failing the test after `bound`; returns the
/// value and how long it took.
pub fn poll_every<T>(
    what: &str,
    bound: std::time::Duration,
    every: std::time::Duration,
    mut f: impl FnMut() -> Option<T>,
) -> (T, std::time::Duration) {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f() {
            return (v, start.elapsed());
        }
        assert!(start.elapsed() < bound, "{what}: not within {bound:?}");
        std::thread::sleep(every);
    }
}

/// The sorted names in `dir` (none when it cannot be read).
pub fn dir_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Appends `text` to the home's config.toml.
pub fn append_config(env: &Env, text: &str) {
    let path = env.home.join("config.toml");
    let mut cur = std::fs::read_to_string(&path).unwrap();
    cur.push('\n');
    cur.push_str(text);
    std::fs::write(&path, cur).unwrap();
}

/// Waits until everything is indexed and embedded with the real model (through the daemon
/// when mounted); fails, naming the setup step, when the model is missing.
pub fn index_embedded(env: &Env) {
    let v = env.json(["index", "--wait", "--timeout", "600", "--json"]);
    let embedder = v["embedder"].as_str().unwrap_or_default();
    assert!(
        !embedder.contains("unavailable") && v["vectors"] == v["chunks"],
        "the embedding model is not available or did not finish ({v}): run scripts/setup.sh \
         and `source /var/cache/peros/env.sh` (ORT_DYLIB_PATH, PEROS_MODEL_DIR)"
    );
}

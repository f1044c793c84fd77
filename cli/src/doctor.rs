//! `peros doctor`: checks what PerOS needs on this machine and says how to fix what is missing.
//!
//! Each check reports `ok`, `warn` or `fail`, a message and (unless ok) the fix. The exit code
//! is 0 when no check failed, 1 otherwise. Decisions, written down:
//! - doctor always runs in its own process (never forwarded to the daemon): it checks the
//!   daemon from the outside, and asks it for the index state over the control socket.
//! - No daemon running is a `warn` (a store need not be mounted); a daemon that left its
//!   pid file or socket behind when it died is a `fail`.
//! - doctor never prompts: with a passphrase-wrapped key and no `PEROS_PASSPHRASE`, the index
//!   check (which must open the store when no daemon runs) is a `warn` that says so.
//! - Checks that talk to something that may hang (ONNX Runtime, the LLM endpoint, S3) run on
//!   their own threads with a time limit, all at once; a check over its limit fails.

use std::io::{IsTerminal, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;
use serde_json::json;

use crate::home::{Config, Home};

#[derive(Serialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Serialize, Clone, Debug)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub message: String,
    /// What to do about it (None when ok).
    pub fix: Option<String>,
}

fn ok(name: &'static str, message: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::Ok,
        message: message.into(),
        fix: None,
    }
}

fn warn(name: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::Warn,
        message: message.into(),
        fix: Some(fix.into()),
    }
}

fn fail(name: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::Fail,
        message: message.into(),
        fix: Some(fix.into()),
    }
}

/// Time limits of the checks that may hang (seconds); `PEROS_DOCTOR_TIMEOUT` overrides all.
fn limit(default: u64) -> Duration {
    let secs = std::env::var("PEROS_DOCTOR_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Duration::from_secs(secs)
}

/// Runs `f` on its own thread; a `fail` if it does not answer within `limit`.
fn timeboxed(
    name: &'static str,
    limit: Duration,
    f: impl FnOnce() -> Check + Send + 'static,
) -> impl FnOnce() -> Check {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let c = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
            fail(
                name,
                "the check panicked",
                "run with -v and report it; see the message above",
            )
        });
        let _ = tx.send(c);
    });
    move || {
        rx.recv_timeout(limit).unwrap_or_else(|_| {
            fail(
                name,
                format!("no answer within {} s", limit.as_secs()),
                "see the message of this part's own command (peros status, peros ask …); \
                 PEROS_DOCTOR_TIMEOUT=SECONDS allows more time",
            )
        })
    }
}

fn home_copy(home: &Home) -> Home {
    Home {
        config_file: home.config_file.clone(),
        data_dir: home.data_dir.clone(),
    }
}

/// Runs every check and prints them (a table, or JSON). Returns the exit code.
pub fn run(home: &Home, json: bool, out: &mut dyn Write) -> Result<u8> {
    let config = home.load_config();
    // The slow ones start first and run while the quick ones are done here.
    let embedding = {
        let h = home_copy(home);
        timeboxed("embedding", limit(60), move || check_embedding(&h))
    };
    let llm = {
        let cfg = config.as_ref().ok().map(|c| c.llm.clone());
        timeboxed("llm", limit(90), move || check_llm(cfg))
    };
    let backend = {
        let h = home_copy(home);
        let cfg = config.as_ref().ok().cloned();
        timeboxed("backend", limit(30), move || check_backend(&h, cfg))
    };
    let mut checks = vec![check_fuse(), check_config(home, &config)];
    checks.extend(check_permissions(home));
    checks.push(check_disk(home));
    let daemon = check_daemon(home);
    let daemon_up = daemon.status == Status::Ok;
    checks.push(daemon);
    checks.push(if daemon_up {
        check_index_daemon(home)
    } else {
        let h = home_copy(home);
        timeboxed("index", limit(60), move || check_index_local(&h))()
    });
    checks.push(embedding());
    checks.push(backend());
    checks.push(llm());

    let failed = checks.iter().any(|c| c.status == Status::Fail);
    if json {
        crate::print_json(
            out,
            &json!({
                "ok": !failed,
                "home": home.data_dir,
                "config": home.config_file,
                "checks": checks,
            }),
        )?;
    } else {
        let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && std::io::stdout().is_terminal();
        writeln!(
            out,
            "PerOS doctor: home {}, config {}",
            home.data_dir.display(),
            home.config_file.display()
        )?;
        for c in &checks {
            let (word, code) = match c.status {
                Status::Ok => ("ok", "32"),
                Status::Warn => ("warn", "33"),
                Status::Fail => ("FAIL", "31"),
            };
            let word = if color {
                format!("\x1b[{code}m{word:<4}\x1b[0m")
            } else {
                format!("{word:<4}")
            };
            writeln!(out, "{word}  {:<11} {}", c.name, c.message)?;
            if let Some(f) = &c.fix {
                writeln!(out, "      {:<11} fix: {f}", "")?;
            }
        }
        let (w, f) = (
            checks.iter().filter(|c| c.status == Status::Warn).count(),
            checks.iter().filter(|c| c.status == Status::Fail).count(),
        );
        writeln!(
            out,
            "{} checks: {} ok, {w} warnings, {f} failed",
            checks.len(),
            checks.len() - w - f
        )?;
    }
    Ok(if failed { 1 } else { 0 })
}

/// The first `dir` in PATH holding an executable `name`.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn check_fuse() -> Check {
    const N: &str = "fuse";
    let dev = Path::new("/dev/fuse");
    match std::fs::metadata(dev) {
        Err(e) => {
            return fail(
                N,
                format!("/dev/fuse: {e}"),
                "load the module and create the device: `modprobe fuse` (or `mknod /dev/fuse c 10 229; \
                 chmod 666 /dev/fuse` in a container, which also needs --device /dev/fuse)",
            )
        }
        Ok(m) if !m.file_type().is_char_device() => {
            return fail(
                N,
                "/dev/fuse is not a character device",
                "remove it and create the device: `mknod /dev/fuse c 10 229; chmod 666 /dev/fuse`",
            )
        }
        Ok(_) => {}
    }
    // SAFETY: access(2) on a constant NUL-terminated path.
    if unsafe { libc::access(c"/dev/fuse".as_ptr(), libc::R_OK | libc::W_OK) } != 0 {
        return fail(
            N,
            format!(
                "/dev/fuse is not readable and writable by this user: {}",
                std::io::Error::last_os_error()
            ),
            "`chmod 666 /dev/fuse` (its usual mode), or run as a user allowed to use it",
        );
    }
    match which("fusermount3") {
        Some(p) => ok(N, format!("/dev/fuse and {} present", p.display())),
        None => fail(
            N,
            "fusermount3 is not in PATH (needed to unmount, and to mount as a non-root user)",
            "`apt-get install fuse3` (Debian/Ubuntu) or `dnf install fuse3`",
        ),
    }
}

fn check_config(home: &Home, config: &Result<Config>) -> Check {
    const N: &str = "store";
    if let Err(e) = config {
        return fail(
            N,
            format!("{e:#}"),
            format!(
                "fix {} (every key is documented in examples/config.toml)",
                home.config_file.display()
            ),
        );
    }
    if !home.is_initialized() {
        if home.meta_file().exists() {
            return fail(
                N,
                format!(
                    "the key file {} is missing but the store's metadata exists",
                    home.key_file().display()
                ),
                "put the key file back from your backup; without it nothing can be decrypted",
            );
        }
        return warn(
            N,
            format!("no store in {}", home.data_dir.display()),
            "`peros init` (or set PEROS_HOME to the directory of an existing store)",
        );
    }
    let wrapped = crate::home::needs_passphrase(home).unwrap_or(false);
    ok(
        N,
        format!(
            "store in {} (key {})",
            home.data_dir.display(),
            if wrapped {
                "passphrase-wrapped"
            } else {
                "in a 0600 file, no passphrase"
            }
        ),
    )
}

fn mode_of(p: &Path) -> Option<(u32, u32)> {
    std::fs::metadata(p)
        .ok()
        .map(|m| (m.permissions().mode() & 0o7777, m.uid()))
}

fn check_permissions(home: &Home) -> Vec<Check> {
    const N: &str = "permissions";
    if !home.data_dir.exists() {
        return vec![];
    }
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let mut problems: Vec<Check> = Vec::new();
    if let Some((mode, owner)) = mode_of(&home.key_file()) {
        let key = home.key_file();
        if mode & 0o077 != 0 {
            problems.push(fail(
                N,
                format!(
                    "the key file {} has mode {mode:04o}: other users can read it",
                    key.display()
                ),
                format!("`chmod 600 {}`", key.display()),
            ));
        }
        if owner != uid {
            problems.push(warn(
                N,
                format!(
                    "the key file {} belongs to uid {owner}, not to you (uid {uid})",
                    key.display()
                ),
                format!("`chown {uid} {}`", key.display()),
            ));
        }
    }
    for dir in [
        home.data_dir.clone(),
        home.data_dir.join("keys"),
        home.data_dir.join("meta"),
    ] {
        let Some((mode, _)) = mode_of(&dir) else {
            continue;
        };
        if mode & 0o007 != 0 {
            problems.push(fail(
                N,
                format!(
                    "{} has mode {mode:04o}: every user on this machine can enter it",
                    dir.display()
                ),
                format!("`chmod 700 {}`", dir.display()),
            ));
        } else if mode & 0o070 != 0 {
            problems.push(warn(
                N,
                format!(
                    "{} has mode {mode:04o}: your group can enter it",
                    dir.display()
                ),
                format!("`chmod 700 {}`", dir.display()),
            ));
        }
    }
    if let Some((mode, _)) = mode_of(&home.config_file) {
        if mode & 0o044 != 0 {
            problems.push(warn(
                N,
                format!(
                    "{} has mode {mode:04o}: other users can read it (it may hold credentials)",
                    home.config_file.display()
                ),
                format!("`chmod 600 {}`", home.config_file.display()),
            ));
        }
    }
    if problems.is_empty() {
        return vec![ok(
            N,
            "key file 0600, data, keys and metadata directories private to you",
        )];
    }
    problems
}

fn check_disk(home: &Home) -> Check {
    const N: &str = "disk";
    let mut dir = home.data_dir.as_path();
    while !dir.exists() {
        match dir.parent() {
            Some(p) => dir = p,
            None => break,
        }
    }
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return warn(N, "cannot check the data directory", "");
    };
    // SAFETY: statvfs fills the struct we own from a NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return warn(
            N,
            format!(
                "statvfs {}: {}",
                dir.display(),
                std::io::Error::last_os_error()
            ),
            "check that the data directory's file system is mounted",
        );
    }
    let free = st.f_bavail as u64 * st.f_frsize as u64;
    let total = st.f_blocks as u64 * st.f_frsize as u64;
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let msg = format!(
        "{:.1} GiB free of {:.1} GiB on the file system of {}",
        gib(free),
        gib(total),
        dir.display()
    );
    let fix =
        "free space there, or move the store (PEROS_HOME, [store] objects_dir) to a larger disk";
    if free < 256 << 20 {
        fail(N, msg, fix)
    } else if free < 2 << 30 || (total > 0 && free * 20 < total) {
        warn(N, msg, fix)
    } else {
        ok(N, msg)
    }
}

fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

fn check_daemon(home: &Home) -> Check {
    const N: &str = "daemon";
    let pid_info = std::fs::read_to_string(home.pid_path()).ok();
    let pid: Option<i32> = pid_info
        .as_deref()
        .and_then(|t| t.lines().next())
        .and_then(|l| l.trim().parse().ok());
    let mountpoint = pid_info
        .as_deref()
        .and_then(|t| t.lines().nth(1))
        .unwrap_or("?")
        .to_string();
    let sock = home.socket_path();
    let answers = std::os::unix::net::UnixStream::connect(&sock).is_ok();
    match (pid, answers) {
        (Some(pid), true) if pid_alive(pid) => ok(
            N,
            format!("running (pid {pid}), serving {mountpoint}; control socket answers"),
        ),
        (_, true) => ok(N, "a daemon answers on the control socket"),
        (Some(pid), false) if pid_alive(pid) => fail(
            N,
            format!(
                "the daemon (pid {pid}) is alive but its control socket {} does not answer",
                sock.display()
            ),
            format!(
                "see {}; if it hangs: `kill {pid}`, `fusermount3 -u {mountpoint}`, then `peros mount {mountpoint}`",
                home.log_path().display()
            ),
        ),
        (Some(pid), false) => fail(
            N,
            format!(
                "the daemon (pid {pid}) serving {mountpoint} is gone: it left {} behind",
                home.pid_path().display()
            ),
            format!(
                "see {}; then `peros mount {mountpoint}` (it clears the stale mount and pid file)",
                home.log_path().display()
            ),
        ),
        (None, false) if sock.exists() => fail(
            N,
            format!(
                "no daemon, but its control socket {} was left behind",
                sock.display()
            ),
            "`peros mount DIR` (replaces it), or remove the socket file",
        ),
        (None, false) => warn(
            N,
            "not running: the store is not mounted (commands open it themselves)",
            "`mkdir -p ~/peros && peros mount ~/peros` (or enable examples/peros.service)",
        ),
    }
}

const INDEX_FIX: &str = "the index is derived data: stop the daemon (`peros umount DIR`), remove \
PEROS_HOME/index and run `peros index --wait` to rebuild it from the store";

fn describe_index(v: &serde_json::Value) -> Check {
    const N: &str = "index";
    if let Some(e) = v["error"].as_str() {
        return fail(N, format!("cannot open the index: {e}"), INDEX_FIX);
    }
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    let errors = v["errors"].as_array().map(|a| a.len()).unwrap_or(0);
    let embedder = v["embedder"].as_str().unwrap_or("?");
    let msg = format!(
        "{} files, {} chunks, {} vectors; pending {} files, {} chunks; {} not indexable; embedder {}",
        n("files"),
        n("chunks"),
        n("vectors"),
        n("pending_text"),
        n("pending_vectors"),
        errors,
        embedder
    );
    if embedder.starts_with("unavailable") {
        warn(
            N,
            msg,
            "semantic search is off until the embedding check passes (text search works)",
        )
    } else {
        ok(N, msg)
    }
}

fn check_index_daemon(home: &Home) -> Check {
    const N: &str = "index";
    let args = vec!["peros".into(), "status".into(), "--json".into()];
    match crate::daemon::forward_capture(home, args) {
        Some(Ok((0, out, _))) => match serde_json::from_slice::<serde_json::Value>(&out) {
            Ok(v) => describe_index(&v["index"]),
            Err(e) => fail(
                N,
                format!("the daemon's status is not JSON: {e}"),
                INDEX_FIX,
            ),
        },
        Some(Ok((code, _, err))) => fail(
            N,
            format!(
                "`peros status` in the daemon failed (exit {code}): {}",
                String::from_utf8_lossy(&err).trim()
            ),
            format!("see {}", home.log_path().display()),
        ),
        Some(Err(e)) => fail(
            N,
            format!("asking the daemon: {e:#}"),
            format!("see {}", home.log_path().display()),
        ),
        None => warn(
            N,
            "the daemon stopped answering while doctor ran",
            "run `peros doctor` again",
        ),
    }
}

fn check_index_local(home: &Home) -> Check {
    const N: &str = "index";
    if !home.is_initialized() {
        return warn(N, "no store yet", "`peros init`");
    }
    if crate::home::needs_passphrase(home).unwrap_or(false)
        && std::env::var_os("PEROS_PASSPHRASE").is_none()
    {
        return warn(
            N,
            "not checked: the key is passphrase-wrapped and no daemon runs",
            "set PEROS_PASSPHRASE, or mount the store, and run doctor again",
        );
    }
    let store = match home.open_store() {
        Ok(s) => std::sync::Arc::new(s),
        Err(e) => {
            return fail(
                N,
                format!("cannot open the store: {e:#}"),
                "see the store and backend checks",
            )
        }
    };
    let opened = home
        .index_options()
        .and_then(|o| peros_indexer::Indexer::open(store, o).map_err(Into::into))
        .and_then(|ix| ix.status().map_err(Into::into));
    let r = match opened {
        Ok(st) => describe_index(&serde_json::to_value(st).unwrap_or_default()),
        Err(e) => fail(N, format!("cannot open the index: {e:#}"), INDEX_FIX),
    };
    peros_store::tenant::release_all();
    r
}

fn check_embedding(home: &Home) -> Check {
    const N: &str = "embedding";
    let paths = match home.index_options() {
        Ok(o) => o.model,
        Err(e) => return fail(N, format!("{e:#}"), "fix the config file"),
    };
    let dir = &paths.model_dir;
    let missing: Vec<&str> = ["model.onnx", "tokenizer.json", "config.json"]
        .into_iter()
        .chain(["special_tokens_map.json", "tokenizer_config.json"])
        .filter(|f| !dir.join(f).is_file())
        .collect();
    if !missing.is_empty() {
        return fail(
            N,
            format!(
                "the embedding model directory {} lacks {}",
                dir.display(),
                missing.join(", ")
            ),
            "`bash scripts/setup.sh` assembles all-MiniLM-L6-v2 there; or set PEROS_MODEL_DIR \
             (or [index] model_dir) to a directory holding those files. Without it search works \
             in text mode only",
        );
    }
    if !paths.ort_library.is_file() {
        return fail(
            N,
            format!(
                "ONNX Runtime library {} not found",
                paths.ort_library.display()
            ),
            "`bash scripts/setup.sh` unpacks it from the onnxruntime wheel; or set ORT_DYLIB_PATH \
             (or [index] ort_library) to libonnxruntime.so ≥ 1.24",
        );
    }
    let t = Instant::now();
    let mut emb = match peros_indexer::FastEmbedder::load(&paths) {
        Ok(e) => e,
        Err(e) => {
            return fail(
                N,
                format!("loading failed: {e}"),
                "ORT_DYLIB_PATH must name libonnxruntime.so ≥ 1.24 and the model directory \
                 all-MiniLM-L6-v2 in ONNX form: re-run `bash scripts/setup.sh`",
            )
        }
    };
    use peros_indexer::Embedder;
    match emb.embed(&["peros doctor"]) {
        Ok(v) if v.first().is_some_and(|x| x.len() == emb.dim()) => ok(
            N,
            format!(
                "model {} and ONNX Runtime {} load; one embedding in {} ms ({}-d)",
                dir.display(),
                paths.ort_library.display(),
                t.elapsed().as_millis(),
                emb.dim()
            ),
        ),
        Ok(_) => fail(
            N,
            "the model answered with a vector of the wrong size",
            "use all-MiniLM-L6-v2 (384 dimensions) from `bash scripts/setup.sh`",
        ),
        Err(e) => fail(
            N,
            format!("embedding a test sentence failed: {e}"),
            "re-run `bash scripts/setup.sh`",
        ),
    }
}

fn check_llm(cfg: Option<crate::home::LlmConfig>) -> Check {
    const N: &str = "llm";
    let Some(llm) = cfg else {
        return warn(
            N,
            "not checked (the config file is invalid)",
            "see the store check",
        );
    };
    let endpoint = llm.endpoint.trim().trim_end_matches('/');
    if endpoint.is_empty() {
        return warn(
            N,
            "no [llm] endpoint: `peros ask` answers with the passages themselves and the agent \
             uses its heuristic planner",
            "set [llm] endpoint in config.toml to an OpenAI-compatible /v1 URL, e.g. \
             llama-server on http://127.0.0.1:8080/v1 (see README)",
        );
    }
    let url = format!("{endpoint}/chat/completions");
    let body = json!({
        "model": if llm.model.is_empty() { "local" } else { llm.model.as_str() },
        "max_tokens": 96,
        "temperature": 0.0,
        "messages": [
            {"role": "system", "content": "You are a file assistant. Use the tools."},
            {"role": "user", "content": "Search my files for 'tax receipt'. Call the search tool."}
        ],
        "tools": [{
            "type": "function",
            "function": {
                "name": "search",
                "description": "Search the user's files",
                "parameters": {
                    "type": "object",
                    "properties": {"query": {"type": "string"}},
                    "required": ["query"]
                }
            }
        }]
    });
    let client = match reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .timeout(limit(90).saturating_sub(Duration::from_secs(2)))
        .build()
    {
        Ok(c) => c,
        Err(e) => return fail(N, format!("HTTP client: {e}"), ""),
    };
    let mut req = client.post(&url).json(&body);
    let key = llm.api_key.trim();
    let key = match key.strip_prefix("env:") {
        Some(var) => std::env::var(var).ok(),
        None => (!key.is_empty()).then(|| key.to_string()),
    };
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let t = Instant::now();
    let resp = match req.send() {
        Ok(r) => r,
        Err(e) => {
            let mut msg = format!("{url}: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            return fail(
                N,
                format!("cannot reach the LLM endpoint: {msg}"),
                "start the server (e.g. `llama-server -m MODEL --jinja --host 127.0.0.1 --port 8080`) \
                 or correct [llm] endpoint in config.toml (it ends in /v1)",
            );
        }
    };
    let status = resp.status();
    let text = resp.text().unwrap_or_default();
    if !status.is_success() {
        let snippet: String = text.chars().take(300).collect();
        return fail(
            N,
            format!("{url} answered HTTP {status}: {snippet}"),
            "check [llm] endpoint, model and api_key in config.toml",
        );
    }
    let v: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            return fail(
                N,
                format!("{url} did not answer with JSON ({e})"),
                "[llm] endpoint must be an OpenAI-compatible base URL ending in /v1",
            )
        }
    };
    let message = &v["choices"][0]["message"];
    let structured = message["tool_calls"]
        .as_array()
        .is_some_and(|a| !a.is_empty());
    let calls = peros_agent::planner::parse_calls(message);
    let secs = t.elapsed().as_secs_f64();
    match calls.first() {
        Some(c) => ok(
            N,
            format!(
                "{endpoint} answered in {secs:.1} s with a tool call `{}` ({})",
                c.name,
                if structured {
                    "structured tool_calls"
                } else {
                    "fenced JSON in the text, accepted by the agent"
                }
            ),
        ),
        None => warn(
            N,
            format!(
                "{endpoint} answers (in {secs:.1} s) but made no tool call: `peros ask` works, \
                 the agent's LLM planner will not"
            ),
            "use a model with tool calling and start llama-server with --jinja (see RECIPES / README)",
        ),
    }
}

fn check_backend(home: &Home, config: Option<Config>) -> Check {
    const N: &str = "backend";
    let Some(config) = config else {
        return warn(
            N,
            "not checked (the config file is invalid)",
            "see the store check",
        );
    };
    let cfg = &config.store;
    if !crate::remote::is_remote(&cfg.backend) {
        let dir = if cfg.objects_dir.is_absolute() {
            cfg.objects_dir.clone()
        } else {
            home.data_dir.join(&cfg.objects_dir)
        };
        if !home.is_initialized() {
            return ok(
                N,
                format!("local objects in {} (created by init)", dir.display()),
            );
        }
        return match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => ok(N, format!("local objects in {}", dir.display())),
            Ok(_) => fail(
                N,
                format!("{} is not a directory", dir.display()),
                "fix [store] objects_dir",
            ),
            Err(e) => fail(
                N,
                format!("the objects directory {}: {e}", dir.display()),
                "mount the disk that holds it, or fix [store] objects_dir in config.toml",
            ),
        };
    }
    let fix = "start the S3 server or check [store] endpoint / AWS_ENDPOINT_URL, the credentials \
               (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or the config), and allow_http for http:// \
               endpoints (docs/S3.md)";
    let remote = match crate::remote::connect(cfg) {
        Ok(r) => r,
        Err(e) => return fail(N, format!("{}: {e:#}", cfg.backend), fix),
    };
    let t = Instant::now();
    match peros_store::tenant::exists(&remote) {
        Ok(true) => ok(
            N,
            format!(
                "{} at {} reachable with these credentials; store snapshot present ({} ms)",
                cfg.backend,
                remote.endpoint(),
                t.elapsed().as_millis()
            ),
        ),
        Ok(false) => warn(
            N,
            format!(
                "{} at {} reachable, but it holds no PerOS store yet",
                cfg.backend,
                remote.endpoint()
            ),
            "`peros init --store URL` creates one; check the bucket and prefix",
        ),
        Err(e) => {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                let s_text = s.to_string();
                if !msg.contains(&s_text) {
                    msg.push_str(&format!(": {s_text}"));
                }
                src = s.source();
            }
            fail(
                N,
                format!("{} at {}: {msg}", cfg.backend, remote.endpoint()),
                fix,
            )
        }
    }
}

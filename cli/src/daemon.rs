//! The mount daemon and its control socket ("one owner per store").
//!
//! While `peros mount` runs, its process owns the metadata database. Every other `peros`
//! command finds the socket `PEROS_HOME/control.sock` (mode 0600) and runs *inside* the daemon:
//! the client sends its arguments and working directory, the daemon runs the same command code
//! against its open store and streams stdout/stderr back, then the exit code. Same commands,
//! same output, with or without a mount.
//!
//! Frames on the socket: request = u32 length + JSON; response = repeated
//! `[kind u8][len u32][bytes]`, kind 1 = stdout, 2 = stderr, 3 = exit code (1 byte).

use std::ffi::OsString;
use std::io::{BufRead, Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use peros_fs::{MountOptions, PerosFs};
use peros_store::Store;
use serde::{Deserialize, Serialize};

use crate::home::Home;

#[derive(Serialize, Deserialize)]
pub struct Request {
    /// Raw argument bytes: file names need not be UTF-8.
    pub args: Vec<Vec<u8>>,
    pub cwd: PathBuf,
}

/// What the daemon shares with commands run through its socket.
pub struct DaemonInfo {
    pub mountpoint: PathBuf,
    pub pid: u32,
    pub fs: Arc<PerosFs>,
    pub indexer: Option<Arc<peros_indexer::Indexer>>,
    /// Declarative views (None when the index could not be opened).
    pub views: Option<Arc<peros_views::Views>>,
    /// The agent (access log, prefetch), unless `[agent] enabled = false`.
    pub agent: Option<Arc<peros_agent::Agent>>,
    pub shutdown: mpsc::Sender<&'static str>,
}

const OUT: u8 = 1;
const ERR: u8 = 2;
const EXIT: u8 = 3;

/// A writer that forwards everything as frames of one kind.
pub struct FrameWriter {
    stream: UnixStream,
    kind: u8,
}

impl Write for FrameWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut frame = Vec::with_capacity(buf.len() + 5);
        frame.push(self.kind);
        frame.extend_from_slice(&(buf.len() as u32).to_le_bytes());
        frame.extend_from_slice(buf);
        self.stream.write_all(&frame)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.stream.flush()
    }
}

/// Sends this command to a running daemon, relaying its output. `None` if no daemon answers.
pub fn try_forward(home: &Home, args: Vec<OsString>) -> Option<Result<ExitCode>> {
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    forward_to(home, args, &mut out, &mut err).map(|r| r.map(ExitCode::from))
}

/// Like [`try_forward`], collecting stdout and stderr.
/// Exit code, stdout and stderr of a command run in the daemon.
pub type Captured = (u8, Vec<u8>, Vec<u8>);

pub fn forward_capture(home: &Home, args: Vec<OsString>) -> Option<Result<Captured>> {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let r = forward_to(home, args, &mut out, &mut err)?;
    Some(r.map(|code| (code, out, err)))
}

fn forward_to(
    home: &Home,
    args: Vec<OsString>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Option<Result<u8>> {
    let sock = home.socket_path();
    let mut stream = UnixStream::connect(&sock).ok()?;
    let req = Request {
        args: args.into_iter().map(|a| a.into_vec()).collect(),
        cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
    };
    Some((|| {
        let body = serde_json::to_vec(&req)?;
        stream.write_all(&(body.len() as u32).to_le_bytes())?;
        stream.write_all(&body)?;
        loop {
            let mut head = [0u8; 5];
            if let Err(e) = stream.read_exact(&mut head) {
                bail!(
                    "the PerOS daemon closed the connection ({e}); see {}",
                    home.log_path().display()
                );
            }
            let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
            let mut data = vec![0u8; len];
            stream.read_exact(&mut data)?;
            match head[0] {
                OUT => out.write_all(&data)?,
                ERR => err.write_all(&data)?,
                EXIT => {
                    out.flush()?;
                    return Ok(data.first().copied().unwrap_or(1));
                }
                other => bail!("unexpected frame {other} from the daemon"),
            }
        }
    })())
}

fn serve_one(mut stream: UnixStream, store: &Arc<Store>, info: &Arc<DaemonInfo>) -> Result<()> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > 16 << 20 {
        bail!("request too large");
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body)?;
    let req: Request = serde_json::from_slice(&body)?;
    // A command sees what was written through the mount before it: closed files may still
    // wait for their group commit (a few ms), so commit what is buffered first.
    if let Err(e) = store.commit_buffered() {
        tracing::warn!("committing buffered writes before a command: {e}");
    }
    let mut out = FrameWriter {
        stream: stream.try_clone()?,
        kind: OUT,
    };
    let mut err = FrameWriter {
        stream: stream.try_clone()?,
        kind: ERR,
    };
    let code = crate::run_args(
        req.args.into_iter().map(OsString::from_vec).collect(),
        crate::Ctx {
            cwd: req.cwd,
            store: Some(store.clone()),
            daemon: Some(info.clone()),
            opened: Default::default(),
        },
        &mut out,
        &mut err,
    );
    let mut end = FrameWriter { stream, kind: EXIT };
    end.write_all(&[code])?;
    Ok(())
}

fn is_mounted(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = dir.to_string_lossy();
    text.lines().any(|l| {
        l.split(' ')
            .nth(4)
            .is_some_and(|m| unescape_mount(m) == want)
    })
}

fn unescape_mount(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Clears a mount left by a killed daemon ("Transport endpoint is not connected").
fn clear_stale_mount(dir: &Path) {
    if let Err(e) = std::fs::metadata(dir) {
        if e.raw_os_error() == Some(libc::ENOTCONN) || is_mounted(dir) {
            let _ = std::process::Command::new("fusermount3")
                .arg("-u")
                .arg(dir)
                .status();
            if std::fs::metadata(dir).is_err() {
                let _ = std::process::Command::new("umount")
                    .arg("-l")
                    .arg(dir)
                    .status();
            }
        }
    }
}

/// Keeps freed write buffers and sealed objects (4 MiB each) in the allocator for reuse.
///
/// With glibc's defaults a buffer that size is mapped fresh and unmapped on free (or trimmed
/// back to the kernel), so every chunk a writer fills costs page faults and the kernel zeroing
/// each page again: measured during a sequential write on the mount, `clear_page` took 6 % of
/// all CPU, more than ChaCha20 and BLAKE3 together. Memory stays bounded by the daemon's own
/// limits (dirty data, chunk cache): the allocator keeps at most what was once in use.
fn reuse_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before the daemon's threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

/// Runs the daemon in this process until unmounted or signalled.
pub fn run_foreground(home: &Home, dir: &Path, allow_other: bool) -> Result<()> {
    clear_stale_mount(dir);
    let meta = std::fs::metadata(dir)
        .with_context(|| format!("mount point {} (create it with mkdir)", dir.display()))?;
    if !meta.is_dir() {
        bail!("mount point {} is not a directory", dir.display());
    }
    if is_mounted(dir) {
        bail!(
            "{} is already a mount point: run `peros umount {}` first",
            dir.display(),
            dir.display()
        );
    }
    if !Path::new("/dev/fuse").exists() {
        bail!("/dev/fuse is missing: install fuse3 (apt-get install fuse3) and load the fuse module (modprobe fuse)");
    }
    reuse_freed_buffers();
    let store = Arc::new(home.open_store()?);
    // The index follows every change; its workers run in the background, never in a callback.
    let indexer = match peros_indexer::Indexer::open(store.clone(), home.index_options()?) {
        Ok(ix) => {
            ix.attach();
            ix.start_workers();
            Some(ix)
        }
        Err(e) => {
            tracing::error!("search index unavailable: {e}");
            None
        }
    };
    let fs = PerosFs::new(store.clone(), home.data_dir.clone());
    let views = match &indexer {
        Some(ix) => {
            let (views_name, search_name) = home.query_dir_names()?;
            let views = peros_views::Views::open(home.views_file(), ix.clone(), store.clone());
            views.start();
            fs.set_query_dirs(views.clone(), &views_name, &search_name);
            Some(views)
        }
        None => None,
    };
    // The agent: access events from the mount, prefetch; planner runs on a schedule below.
    let agent_cfg = home.load_config()?.agent;
    let agent = if agent_cfg.enabled {
        match peros_agent::Agent::start(
            store.clone(),
            &peros_agent::state_dir(&home.data_dir),
            agent_cfg.clone(),
        ) {
            Ok((agent, sink)) => {
                if let Some(sink) = with_index_hints(Some(sink), indexer.as_ref()) {
                    fs.set_access_sink(sink);
                }
                if let Some(v) = &views {
                    // Searches are access patterns too: repeated ones become views.
                    let a = agent.clone();
                    v.set_search_hook(Box::new(move |q| a.record_search(q, "@search")));
                }
                Some(agent)
            }
            Err(e) => {
                tracing::error!("agent unavailable: {e}");
                if let Some(sink) = with_index_hints(None, indexer.as_ref()) {
                    fs.set_access_sink(sink);
                }
                None
            }
        }
    } else {
        if let Some(sink) = with_index_hints(None, indexer.as_ref()) {
            fs.set_access_sink(sink);
        }
        None
    };
    let session = peros_fs::mount(
        fs.clone(),
        dir,
        &MountOptions {
            allow_other,
            space_from: home.data_dir.clone(),
            threads: home.load_config()?.mount.fuse_threads(),
        },
    )
    .with_context(|| format!("mounting on {}", dir.display()))?;

    let (tx, rx) = mpsc::channel::<&'static str>();
    let info = Arc::new(DaemonInfo {
        mountpoint: dir.to_path_buf(),
        pid: std::process::id(),
        fs: fs.clone(),
        indexer: indexer.clone(),
        views: views.clone(),
        agent: agent.clone(),
        shutdown: tx.clone(),
    });
    if agent.is_some() && agent_cfg.schedule_minutes > 0.0 {
        crate::agent_cmd::schedule(
            home,
            info.clone(),
            store.clone(),
            agent_cfg.schedule_minutes,
        );
    }
    if agent.is_some() && indexer.is_some() && agent_cfg.topics_schedule_minutes > 0.0 {
        crate::agent_cmd::schedule_topics(
            home,
            info.clone(),
            store.clone(),
            agent_cfg.topics_schedule_minutes,
        );
    }

    // Control socket.
    let sock = home.socket_path();
    if UnixStream::connect(&sock).is_ok() {
        bail!(
            "another PerOS daemon already serves {}",
            home.data_dir.display()
        );
    }
    let _ = std::fs::remove_file(&sock);
    let listener =
        UnixListener::bind(&sock).with_context(|| format!("binding {}", sock.display()))?;
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600))?;
    {
        let store = store.clone();
        let info = info.clone();
        std::thread::Builder::new()
            .name("peros-control".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    let Ok(conn) = conn else { continue };
                    let store = store.clone();
                    let info = info.clone();
                    std::thread::spawn(move || {
                        if let Err(e) = serve_one(conn, &store, &info) {
                            tracing::warn!("control request failed: {e:#}");
                        }
                    });
                }
            })?;
    }

    // Signals.
    {
        let tx = tx.clone();
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGHUP,
        ])?;
        std::thread::spawn(move || {
            if signals.forever().next().is_some() {
                let _ = tx.send("signal");
            }
        });
    }
    // An external `fusermount3 -u` ends the session: notice it.
    {
        let tx = tx.clone();
        let dir = dir.to_path_buf();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(500));
            if !is_mounted(&dir) {
                let _ = tx.send("unmounted");
                return;
            }
        });
    }
    std::fs::write(
        home.pid_path(),
        format!("{}\n{}\n", std::process::id(), dir.display()),
    )?;
    println!("PEROS_READY {}", dir.display());
    let _ = std::io::stdout().flush();
    // The parent stops reading after this line: send any later stdout to /dev/null.
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        // SAFETY: dup2 onto stdout of a descriptor we own.
        unsafe { libc::dup2(null.as_raw_fd(), 1) };
    }

    let why = rx.recv().unwrap_or("channel closed");
    tracing::info!("shutting down ({why})");
    let _ = std::fs::remove_file(&sock);
    if let Some(v) = &views {
        v.shutdown();
    }
    if let Some(a) = &agent {
        a.shutdown();
    }
    // Saves the vector graph (the next open loads it instead of rebuilding) and pushes new
    // embeddings of a remote tenant.
    if let Some(ix) = &indexer {
        ix.shutdown();
    }
    let flushed = fs.flush_all();
    // The final snapshot is pushed (flush_all syncs): give the tenant's lease back now.
    peros_store::tenant::release_all();
    if is_mounted(dir) {
        if let Err(e) = session.umount_and_join() {
            tracing::warn!("unmount: {e}");
            let _ = std::process::Command::new("fusermount3")
                .arg("-u")
                .arg("-z")
                .arg(dir)
                .status();
        }
    } else {
        drop(session);
    }
    let _ = std::fs::remove_file(home.pid_path());
    flushed.context("flushing buffered writes at shutdown")?;
    Ok(())
}

/// Starts the daemon in the background and returns once the mount is ready.
pub fn spawn_background(home: &Home, dir: &Path, allow_other: bool) -> Result<()> {
    let exe = std::env::current_exe()?;
    let log = home.log_path();
    if let Some(p) = log.parent() {
        // Logs name files: private to the user, like the data directory.
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(p)?;
    }
    let logfile = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("mount").arg(dir).arg("--foreground");
    if allow_other {
        cmd.arg("--allow-other");
    }
    // A passphrase-protected key is unlocked here, where the terminal is.
    if crate::home::needs_passphrase(home)? && std::env::var_os("PEROS_PASSPHRASE").is_none() {
        let p = rpassword::prompt_password("PerOS passphrase: ")?;
        cmd.env("PEROS_PASSPHRASE", p);
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(logfile);
    // SAFETY: setsid in the child before exec detaches it from our terminal session.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("starting the PerOS daemon")?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(stdout);
        let mut line = String::new();
        let ok = reader.read_line(&mut line).is_ok() && line.starts_with("PEROS_READY");
        let _ = tx.send(ok);
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(ready) = rx.recv_timeout(Duration::from_millis(100)) {
            if ready {
                return Ok(());
            }
            let _ = child.wait();
            bail!("the PerOS daemon failed to start:\n{}", tail(&log, 15));
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!("the PerOS daemon exited ({status}):\n{}", tail(&log, 15));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!(
                "the PerOS daemon did not become ready in 60 s:\n{}",
                tail(&log, 15)
            );
        }
    }
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Asks the daemon serving `home` to unmount `dir` and waits for it to exit.
pub fn unmount(home: &Home, dir: &Path) -> Result<()> {
    let pid_info = std::fs::read_to_string(home.pid_path()).ok();
    let pid: Option<i32> = pid_info
        .as_ref()
        .and_then(|t| t.lines().next())
        .and_then(|l| l.trim().parse().ok());
    let served = pid_info
        .as_ref()
        .and_then(|t| t.lines().nth(1))
        .map(PathBuf::from);
    if let (Some(pid), Some(served)) = (pid, served) {
        if served != dir {
            bail!(
                "the daemon for {} serves {}, not {}",
                home.data_dir.display(),
                served.display(),
                dir.display()
            );
        }
        // SAFETY: kill with signal 0 only checks the process exists.
        if unsafe { libc::kill(pid, 0) } == 0 {
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(120);
            while unsafe { libc::kill(pid, 0) } == 0 {
                if Instant::now() > deadline {
                    bail!(
                        "the daemon (pid {pid}) did not exit within 120 s; see {}",
                        home.log_path().display()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            return Ok(());
        }
    }
    // No live daemon: clear a stale mount if there is one.
    if is_mounted(dir) || std::fs::metadata(dir).is_err() {
        clear_stale_mount(dir);
        let _ = std::fs::remove_file(home.socket_path());
        return Ok(());
    }
    bail!("{} is not mounted by PerOS", dir.display())
}

/// Opens also tell the indexer, which embeds what the user just opened before older files
/// (`Indexer::opened` never blocks, like every access sink).
struct IndexHints {
    agent: Option<Arc<dyn peros_store::access::AccessSink>>,
    indexer: Arc<peros_indexer::Indexer>,
}

impl peros_store::access::AccessSink for IndexHints {
    fn record(&self, ev: peros_store::access::AccessEvent) {
        if ev.kind == peros_store::access::AccessKind::Open {
            self.indexer.opened(ev.ino);
        }
        if let Some(a) = &self.agent {
            a.record(ev);
        }
    }
}

fn with_index_hints(
    agent: Option<Arc<dyn peros_store::access::AccessSink>>,
    indexer: Option<&Arc<peros_indexer::Indexer>>,
) -> Option<Arc<dyn peros_store::access::AccessSink>> {
    match (agent, indexer) {
        (agent, Some(ix)) => Some(Arc::new(IndexHints {
            agent,
            indexer: ix.clone(),
        })),
        (agent, None) => agent,
    }
}

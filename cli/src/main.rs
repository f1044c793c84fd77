//! `peros`: the command line. It parses arguments, opens the store and wires the crates
//! together; the behaviour lives in the library crates.
//!
//! Exit codes: 0 success, 1 error (the message says what to do), 2 usage error,
//! 3 `fsck` found problems.

mod agent_cmd;
mod ask;
mod completions;
mod daemon;
mod doctor;
mod home;
mod remote;
mod transfer;
mod views_cmd;
mod watch;

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use peros_store::{Kind, Store, Time};
use serde_json::json;

use home::Home;
use peros_indexer::{Indexer, Mode};

#[derive(Parser)]
#[command(
    name = "peros",
    version,
    about = "PerOS: a personal, encrypted, self-organising file system",
    after_help = completions::AFTER_HELP
)]
struct Cli {
    /// More log output on stderr: -v info, -vv debug, -vvv trace (PEROS_LOG=FILTER overrides).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// No progress bars (they are drawn only on a terminal anyway).
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Mount the store at DIR (returns once the mount is ready; --foreground stays attached).
    ///
    /// Who may enter: by default only the user who mounted it (FUSE's rule); every other user,
    /// root included, gets "Permission denied" (EACCES) for anything under DIR. With
    /// --allow-other every user may enter and the kernel checks each access against the owner
    /// and mode bits of the files (default_permissions, always on), as on a local disk. For a
    /// user other than root, --allow-other needs `user_allow_other` in /etc/fuse.conf.
    Mount {
        dir: PathBuf,
        /// Stay attached: the daemon runs in this process until unmounted.
        #[arg(long)]
        foreground: bool,
        /// Let other users in; their access is checked against owner and mode bits
        /// (default_permissions). Without it only the mounting user may enter.
        #[arg(long)]
        allow_other: bool,
    },
    /// Unmount DIR: flushes everything and stops the daemon.
    Umount { dir: PathBuf },
    /// Check this machine and store: FUSE, permissions, model, LLM, S3, disk, index, daemon.
    Doctor {
        #[arg(long)]
        json: bool,
    },
    /// Print shell completions: `peros completions bash > ~/.local/share/bash-completion/completions/peros`.
    Completions { shell: clap_complete::Shell },
    /// Print the man page (peros.1); with --out DIR write it and one page per subcommand there.
    Manpage {
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Search the store: free text plus filters (ext: tag: path: modified:>DATE size:>N, AND/OR/NOT).
    Search {
        query: String,
        /// hybrid (default), text or semantic.
        #[arg(long, default_value = "hybrid")]
        mode: Mode,
        #[arg(long, default_value_t = 10)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// The agent: access statistics, planner runs (views and tags), journal and undo.
    Agent {
        #[command(subcommand)]
        cmd: agent_cmd::AgentCmd,
    },
    /// Declarative views: directories under @views whose contents are a query (views.toml).
    Views {
        #[command(subcommand)]
        cmd: views_cmd::ViewsCmd,
    },
    /// Show or change tags: `peros tag PATH... +tax -draft` (the user.peros.tags xattr; query with tag:).
    Tag {
        /// Paths (in the store, or in the mount), then +TAG to add and -TAG to remove.
        #[arg(required = true, allow_hyphen_values = true, num_args = 1..)]
        args: Vec<OsString>,
    },
    /// Answer a question from your files, citing path and byte offset of each passage used.
    Ask {
        question: String,
        /// Passages to retrieve.
        #[arg(long, default_value_t = 5)]
        passages: usize,
        #[arg(long)]
        json: bool,
    },
    /// Import a local folder and keep the store copy in sync with it (create/modify/delete/rename).
    Watch {
        dir: PathBuf,
        /// Store path (default: /<name of DIR>).
        dest: Option<OsString>,
    },
    /// Show the index state; --wait blocks until all pending indexing (text and vectors) is done.
    Index {
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds (exit 1).
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        #[arg(long)]
        json: bool,
    },
    /// Create a new store (key, metadata, object directory) in PEROS_HOME.
    Init {
        /// Keep the key unwrapped in a 0600 file instead of asking for a passphrase.
        #[arg(long)]
        no_passphrase: bool,
        /// Keep the chunks and the encrypted metadata in s3://BUCKET/PREFIX (one prefix per
        /// user; endpoint and credentials from AWS_* variables or the config).
        #[arg(long, value_name = "URL", conflicts_with = "from")]
        store: Option<String>,
        /// Bring an existing store up in this (fresh) PEROS_HOME from s3://BUCKET/PREFIX.
        #[arg(long, value_name = "URL")]
        from: Option<String>,
        /// With --from: the store's key file (default: its passphrase-wrapped key from the
        /// bucket, unlocked with PEROS_PASSPHRASE or a prompt).
        #[arg(long, value_name = "FILE", requires = "from")]
        key: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Copy a local file or directory tree into the store (DEST defaults to /<name of SRC>).
    Import {
        src: PathBuf,
        dest: Option<OsString>,
        #[arg(long)]
        json: bool,
    },
    /// Copy a store file or tree out to a local path (DEST becomes the copy of SRC).
    Export {
        src: OsString,
        dest: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// List a directory of the store.
    Ls {
        #[arg(default_value = "/")]
        path: OsString,
        /// Long format: type, mode, size, mtime.
        #[arg(short, long)]
        long: bool,
        #[arg(long)]
        json: bool,
    },
    /// Write files' contents to standard output.
    Cat {
        #[arg(required = true)]
        paths: Vec<OsString>,
    },
    /// Remove a file (or, with -r, a directory tree). Versions stay restorable.
    Rm {
        #[arg(required = true)]
        paths: Vec<OsString>,
        #[arg(short, long)]
        recursive: bool,
    },
    /// Show the store's state.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Check the store: entries, link counts, every chunk present and decryptable.
    Fsck {
        /// Check chunk presence only, without decrypting.
        #[arg(long)]
        quick: bool,
        #[arg(long)]
        json: bool,
    },
    /// Remove objects that no file or version references.
    Gc {
        #[arg(long)]
        json: bool,
    },
    /// List the recorded versions of a path (also after it was deleted).
    Log {
        path: OsString,
        #[arg(long)]
        json: bool,
    },
    /// Make version N of PATH its current content (recreating it if deleted).
    Restore {
        path: OsString,
        #[arg(long)]
        version: u64,
    },
}

/// How a command reaches the store: its own (opened on demand) or the daemon's.
pub struct Ctx {
    pub cwd: PathBuf,
    pub store: Option<Arc<Store>>,
    pub daemon: Option<Arc<daemon::DaemonInfo>>,
    /// The store this process opened itself, kept: the metadata database allows one opener,
    /// so a command that needs the store and an index must share one.
    pub opened: std::sync::OnceLock<Arc<Store>>,
}

impl Ctx {
    fn store(&self, home: &Home) -> Result<Arc<Store>> {
        if let Some(s) = self.store.as_ref().or(self.opened.get()) {
            return Ok(s.clone());
        }
        let s = Arc::new(home.open_store()?);
        Ok(self.opened.get_or_init(|| s).clone())
    }

    /// The daemon's live index, or this process's own, caught up with the store first
    /// (text always; vectors when `vectors`), with a progress bar on long work.
    fn indexer(
        &self,
        home: &Home,
        vectors: bool,
        quiet: bool,
    ) -> Result<(Arc<Indexer>, Option<String>)> {
        if let Some(ix) = self.daemon.as_ref().and_then(|d| d.indexer.clone()) {
            return Ok((ix, None));
        }
        let store = self.store(home)?;
        let ix = Indexer::open(store, home.index_options()?)?;
        let bar = counter_bar(quiet, "indexing");
        let missing = ix.catch_up(vectors, &|_, done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })?;
        bar.finish_and_clear();
        Ok((ix, missing.map(|e| e.to_string())))
    }
}

/// glibc raises its mmap threshold to the size of each large block freed, after which 4 MiB
/// chunk buffers come from per-thread arenas that keep their pages: measured, 50 files written
/// and read at once pushed the daemon from 525 MB to over 700 MB. A fixed threshold returns
/// large buffers to the system when freed; fewer arenas bound what small ones retain.
fn bound_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 512 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 4);
    }
}

/// "12.3 chunks/s, 2,950 tokens/s, about 4 min left; 120 embedded, 30 reused" for status lines.
fn ocr_progress(o: &peros_indexer::ocr::OcrStatus) -> String {
    if !o.enabled {
        return "off ([index] ocr = false)".into();
    }
    let queue = if o.queued_files == 0 {
        "nothing queued".to_string()
    } else {
        let plural =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        format!(
            "{} ({}) queued",
            plural(o.queued_files, "file", "files"),
            plural(o.queued_parts, "picture or page", "pictures or pages")
        )
    };
    let mut line = format!(
        "{queue}; {} read, {} failed, {} from the cache since start; languages {}",
        o.done, o.failed, o.cached, o.languages
    );
    if let Some(u) = &o.unavailable {
        line.push_str(&format!("; unavailable: {u}"));
    }
    line
}

fn embedding_progress(st: &peros_indexer::IndexStatus) -> String {
    let rate = if st.chunks_per_sec > 0.0 {
        let eta = match st.eta_secs {
            Some(s) if s >= 120 => format!(", about {} min left", s.div_ceil(60)),
            Some(s) => format!(", about {s} s left"),
            None => String::new(),
        };
        format!(
            "{:.1} chunks/s, {:.0} tokens/s{eta}",
            st.chunks_per_sec, st.tokens_per_sec
        )
    } else if st.pending_vectors > 0 {
        "waiting to start".to_string()
    } else {
        "idle".to_string()
    };
    format!(
        "{rate}; since start {} embedded, {} from the embedding store ({} stored vectors)",
        st.embedded, st.reused, st.stored_vectors
    )
}

fn main() -> ExitCode {
    bound_malloc();
    // Arguments stay bytes end to end: file names need not be UTF-8.
    let args: Vec<OsString> = std::env::args_os().collect();
    // Commands other than init/mount/umount run inside a running daemon if there is one.
    let local_only = args
        .iter()
        .skip(1)
        .find(|a| !a.as_bytes().starts_with(b"-"))
        .is_none_or(|c| {
            matches!(
                c.to_str(),
                Some(
                    "init"
                        | "mount"
                        | "umount"
                        | "watch"
                        | "help"
                        | "doctor"
                        | "completions"
                        | "manpage"
                )
            )
        });
    if !local_only {
        if let Ok(home) = Home::locate() {
            if let Some(result) = daemon::try_forward(&home, args.clone()) {
                return match result {
                    Ok(code) => code,
                    Err(e) => {
                        eprintln!("peros: error: {e:#}");
                        ExitCode::from(1)
                    }
                };
            }
        }
    }
    let ctx = Ctx {
        cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
        store: None,
        daemon: None,
        opened: Default::default(),
    };
    let code = run_args(args, ctx, &mut std::io::stdout(), &mut std::io::stderr());
    // A remote store's lease must not outlive the command (threads may still hold the store).
    peros_store::tenant::release_all();
    ExitCode::from(code)
}

/// Parses `args` and runs the command, writing to `out`/`err`; returns the exit code.
pub fn run_args(args: Vec<OsString>, ctx: Ctx, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            let text = if completions::color(ctx.daemon.is_none()) {
                e.render().ansi().to_string()
            } else {
                e.render().to_string()
            };
            let code = e.exit_code() as u8;
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) {
                let _ = write!(out, "{text}");
                return 0;
            }
            let _ = write!(err, "{text}");
            return code;
        }
    };
    if ctx.daemon.is_none() {
        let level = match cli.verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        };
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("PEROS_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
            )
            .with_writer(std::io::stderr)
            .with_ansi(completions::color(true))
            .try_init();
    }
    match run(cli, &ctx, out, err) {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(err, "peros: error: {e:#}");
            let _ = out.flush();
            1
        }
    }
}

fn print_json(out: &mut dyn Write, v: &serde_json::Value) -> Result<()> {
    serde_json::to_writer_pretty(&mut *out, v)?;
    writeln!(out)?;
    Ok(())
}

fn fmt_time(t: Time) -> String {
    humantime::format_rfc3339_seconds(t.to_system()).to_string()
}

fn counter_bar(quiet: bool, verb: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(&format!("{verb} {{bar:30}} {{pos}}/{{len}} eta {{eta}}"))
            .expect("valid template"),
    );
    bar
}

/// Views count and views.toml error: the daemon's live state, else the file on disk.
fn views_status(ctx: &Ctx, home: &Home) -> serde_json::Value {
    match ctx.daemon.as_ref().and_then(|d| d.views.clone()) {
        Some(v) => {
            let st = v.status();
            json!({"views": st.views, "file": st.file, "error": st.error.map(|e| e.to_string())})
        }
        None => match peros_views::load_file(&home.views_file()) {
            Ok(d) => json!({"views": d.len(), "file": home.views_file(), "error": null}),
            Err(e) => json!({"views": 0, "file": home.views_file(), "error": e.to_string()}),
        },
    }
}

fn store_path(p: &OsStr) -> Vec<u8> {
    peros_store::normalize_path(p.as_bytes())
}

fn run(cli: Cli, ctx: &Ctx, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8> {
    let home = Home::locate()?;
    // Progress bars only where a person watches: not inside the daemon.
    let quiet = cli.quiet || ctx.daemon.is_some();
    match cli.command {
        Command::Mount {
            dir,
            foreground,
            allow_other,
        } => {
            let dir = std::path::absolute(ctx.cwd.join(&dir))?;
            if foreground {
                daemon::run_foreground(&home, &dir, allow_other)?;
            } else {
                daemon::spawn_background(&home, &dir, allow_other)?;
                writeln!(
                    out,
                    "Mounted PerOS at {} (stop with: peros umount {})",
                    dir.display(),
                    dir.display()
                )?;
            }
        }
        Command::Doctor { json } => return doctor::run(&home, json, out),
        Command::Completions { shell } => completions::completions(shell, out)?,
        Command::Manpage { out: dir } => {
            completions::manpages(dir.map(|d| ctx.cwd.join(d)).as_deref(), out)?
        }
        Command::Umount { dir } => {
            let dir = std::path::absolute(ctx.cwd.join(&dir))?;
            daemon::unmount(&home, &dir)?;
            writeln!(out, "Unmounted {}", dir.display())?;
        }
        Command::Search {
            query,
            mode,
            limit,
            json,
        } => {
            let (ix, missing) = ctx.indexer(&home, mode != Mode::Text, quiet || json)?;
            let mut outcome = ix.search(&query, mode, limit)?;
            agent_cmd::note_search(ctx, &home, &query, "peros search");
            if outcome.note.is_none() {
                outcome.note = missing;
            }
            if json {
                print_json(out, &serde_json::to_value(&outcome)?)?;
            } else {
                if let Some(n) = &outcome.note {
                    writeln!(err, "note: {n}")?;
                }
                if outcome.hits.is_empty() {
                    writeln!(err, "no matches for {query:?}")?;
                }
                for h in &outcome.hits {
                    match &h.location {
                        Some(l) => writeln!(out, "{:.3}  {}  {l} @{}", h.score, h.path, h.offset)?,
                        None => writeln!(out, "{:.3}  {}  @{}", h.score, h.path, h.offset)?,
                    }
                    if !h.snippet.is_empty() {
                        writeln!(out, "       {}", h.snippet.replace('\n', " "))?;
                    }
                }
            }
        }
        Command::Ask {
            question,
            passages,
            json,
        } => {
            let (ix, missing) = ctx.indexer(&home, true, quiet || json)?;
            let answer = ask::answer(&home, &ix, &question, passages, missing)?;
            if json {
                print_json(out, &serde_json::to_value(&answer)?)?;
            } else {
                writeln!(out, "{}", answer.answer)?;
                writeln!(out)?;
                for (i, c) in answer.citations.iter().enumerate() {
                    match &c.location {
                        Some(l) => writeln!(out, "[{}] {} {l} @{}", i + 1, c.path, c.offset)?,
                        None => writeln!(out, "[{}] {} @{}", i + 1, c.path, c.offset)?,
                    }
                }
                if let Some(n) = &answer.note {
                    writeln!(err, "note: {n}")?;
                }
            }
        }
        Command::Watch { dir, dest } => {
            let abs = std::fs::canonicalize(ctx.cwd.join(&dir))
                .with_context(|| format!("cannot watch {}", dir.display()))?;
            let dest = dest.unwrap_or_else(|| {
                format!(
                    "/{}",
                    abs.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_else(|| "watched".into())
                )
                .into()
            });
            return watch::watch(&home, &abs, &dest.to_string_lossy(), out, err);
        }
        Command::Index {
            wait,
            timeout,
            json,
        } => {
            let (ix, missing) = ctx.indexer(&home, wait, quiet || json)?;
            if wait && ctx.daemon.is_none() {
                // Without a daemon, `--wait` also reads scans (OCR), then indexes their text.
                let bar = counter_bar(quiet || json, "ocr");
                let unavailable = ix.ocr_catch_up(&|done, total| {
                    bar.set_length(total);
                    bar.set_position(done);
                })?;
                bar.finish_and_clear();
                if let Some(u) = unavailable {
                    writeln!(err, "note: OCR skipped: {u}")?;
                }
                ix.catch_up(true, &|_, _, _| {})?;
            }
            if wait
                && ctx.daemon.is_some()
                && !ix.wait_idle(true, std::time::Duration::from_secs(timeout))?
            {
                bail!("indexing did not finish within {timeout} s; see `peros index`");
            }
            let st = ix.status()?;
            if json {
                let mut v = serde_json::to_value(&st)?;
                v["note"] = json!(missing);
                print_json(out, &v)?;
            } else {
                writeln!(
                    out,
                    "files:    {} indexed, {} chunks, {} vectors",
                    st.files, st.chunks, st.vectors
                )?;
                writeln!(
                    out,
                    "pending:  {} files (text), {} chunks (vectors)",
                    st.pending_text, st.pending_vectors
                )?;
                writeln!(out, "embedder: {} (model id {})", st.embedder, st.model)?;
                writeln!(out, "embedding: {}", embedding_progress(&st))?;
                writeln!(out, "ocr:      {}", ocr_progress(&st.ocr))?;
                for (p, e) in &st.errors {
                    writeln!(out, "not indexed: {p}: {e}")?;
                }
                for (p, w) in &st.warnings {
                    writeln!(out, "in part:  {p}: {w}")?;
                }
                if let Some(n) = &st.notice {
                    writeln!(err, "note: {n}")?;
                }
                if let Some(m) = missing {
                    writeln!(err, "note: {m}")?;
                }
            }
        }
        Command::Init {
            no_passphrase: _,
            store: None,
            from: Some(url),
            key,
            json,
        } => {
            return init_from(&home, ctx, &url, key.as_deref(), json, out);
        }
        Command::Init {
            no_passphrase,
            store: store_url,
            from: _,
            key: _,
            json,
        } => {
            let cfg = match &store_url {
                Some(url) => {
                    let cfg = remote::config_for(url)?;
                    if home.is_initialized() {
                        bail!("a store already exists in {}", home.data_dir.display());
                    }
                    remote::check_new(&cfg)?;
                    cfg
                }
                None => home::StoreConfig::default(),
            };
            let pass = if no_passphrase {
                None
            } else {
                Some(home::read_new_passphrase()?)
            };
            let keyring = home.init_with(pass, cfg.clone(), None)?;
            drop(keyring);
            // Create the metadata database and object directory now, so errors show at init.
            let store = ctx.store(&home)?;
            if store_url.is_some() {
                // The first snapshot (and the wrapped key) make the tenant movable at once.
                store.sync()?;
                if !no_passphrase {
                    remote::upload_key(&cfg, &home.key_file())?;
                }
            }
            if json {
                print_json(
                    out,
                    &json!({
                        "home": home.data_dir,
                        "config": home.config_file,
                        "public_key": store.keyring().public_key(),
                        "passphrase": !no_passphrase,
                    }),
                )?;
            } else {
                writeln!(out, "Created a PerOS store in {}", home.data_dir.display())?;
                writeln!(
                    out,
                    "  key:    {} ({})",
                    home.key_file().display(),
                    if no_passphrase {
                        "unwrapped, mode 0600"
                    } else {
                        "passphrase-wrapped"
                    }
                )?;
                writeln!(out, "  config: {}", home.config_file.display())?;
                writeln!(out, "Next: peros import ~/Documents")?;
            }
        }
        Command::Import { src, dest, json } => {
            let store = ctx.store(&home)?;
            let dest = match dest {
                Some(d) => store_path(&d),
                None => {
                    let abs = std::fs::canonicalize(ctx.cwd.join(&src))
                        .with_context(|| format!("cannot import {}", src.display()))?;
                    let name = abs
                        .file_name()
                        .map(|n| n.as_bytes().to_vec())
                        .unwrap_or_else(|| b"import".to_vec());
                    let mut p = b"/".to_vec();
                    p.extend(name);
                    p
                }
            };
            let report = transfer::import(&store, &ctx.cwd.join(&src), &dest, quiet || json)?;
            if json {
                print_json(out, &serde_json::to_value(&report)?)?;
            } else {
                let mb = report.bytes as f64 / 1e6;
                writeln!(
                    out,
                    "Imported {} files, {} directories, {} symlinks ({:.1} MB) into {} in {:.1}s ({:.0} MB/s)",
                    report.files, report.dirs, report.symlinks, mb,
                    String::from_utf8_lossy(&dest), report.seconds, mb / report.seconds.max(1e-9)
                )?;
                for s in &report.skipped {
                    writeln!(err, "skipped: {s}")?;
                }
            }
        }
        Command::Export { src, dest, json } => {
            let store = ctx.store(&home)?;
            let report = transfer::export(
                &store,
                &store_path(&src),
                &ctx.cwd.join(&dest),
                quiet || json,
            )?;
            if json {
                print_json(out, &serde_json::to_value(&report)?)?;
            } else {
                writeln!(
                    out,
                    "Exported {} files, {} directories, {} symlinks ({:.1} MB) to {}",
                    report.files,
                    report.dirs,
                    report.symlinks,
                    report.bytes as f64 / 1e6,
                    dest.display()
                )?;
            }
        }
        Command::Ls { path, long, json } => {
            let store = ctx.store(&home)?;
            let p = store_path(&path);
            let (ino, node) = store.resolve(&p)?;
            let entries = if node.kind == Kind::Dir {
                store.readdir_plus(ino)?
            } else {
                let name = peros_store::path_components(&p)
                    .last()
                    .map(|n| n.to_vec())
                    .unwrap_or_default();
                vec![(
                    peros_store::DirEntry {
                        name,
                        ino,
                        kind: node.kind,
                    },
                    node,
                )]
            };
            if json {
                let list: Vec<_> = entries
                    .iter()
                    .map(|(e, n)| {
                        json!({
                            "name": String::from_utf8_lossy(&e.name),
                            "kind": format!("{:?}", n.kind).to_lowercase(),
                            "mode": format!("{:o}", n.perm),
                            "size": n.size,
                            "mtime": fmt_time(n.mtime),
                            "nlink": n.nlink,
                        })
                    })
                    .collect();
                print_json(out, &serde_json::Value::Array(list))?;
            } else {
                for (e, n) in &entries {
                    if long {
                        write!(
                            out,
                            "{}{:04o} {:>12} {} ",
                            n.kind.letter(),
                            n.perm,
                            n.size,
                            fmt_time(n.mtime)
                        )?;
                    }
                    out.write_all(&e.name)?;
                    if long && n.kind == Kind::Symlink {
                        out.write_all(b" -> ")?;
                        out.write_all(&n.target)?;
                    }
                    out.write_all(b"\n")?;
                }
            }
        }
        Command::Cat { paths } => {
            let store = ctx.store(&home)?;
            for p in paths {
                cat(&store, &store_path(&p), out)
                    .with_context(|| format!("cat {}", p.display()))?;
            }
        }
        Command::Rm { paths, recursive } => {
            let store = ctx.store(&home)?;
            for p in paths {
                let sp = store_path(&p);
                let comps = peros_store::path_components(&sp);
                let Some((name, _)) = comps.split_last() else {
                    bail!("refusing to remove the store root");
                };
                let parent_path = &sp[..sp.len() - name.len()];
                let (parent, _) = store.resolve(parent_path)?;
                let (_, node) = store
                    .lookup(parent, name)
                    .map_err(|_| anyhow::anyhow!("{}: no such file or directory", p.display()))?;
                if node.kind == Kind::Dir {
                    if !recursive {
                        bail!("{} is a directory: use rm -r", p.display());
                    }
                    store.remove_tree(parent, name)?;
                } else {
                    store.unlink(parent, name)?;
                }
            }
        }
        Command::Views { cmd } => return views_cmd::run_views(cmd, ctx, &home, quiet, out),
        Command::Agent { cmd } => return agent_cmd::run_agent(cmd, ctx, &home, quiet, out),
        Command::Tag { args } => return views_cmd::run_tag(args, ctx, &home, out),
        Command::Status { json } => {
            let store = ctx.store(&home)?;
            let stats = store.stats()?;
            let overhead = if stats.logical_bytes > 0 {
                stats.stored_bytes as f64 / stats.logical_bytes as f64
            } else {
                0.0
            };
            // The index queue and extraction failures (without a daemon: as left on disk).
            let index = match ctx.daemon.as_ref().and_then(|d| d.indexer.clone()) {
                Some(ix) => ix.status().map_err(|e| e.to_string()),
                None => home
                    .index_options()
                    .map_err(|e| e.to_string())
                    .and_then(|o| Indexer::open(store.clone(), o).map_err(|e| e.to_string()))
                    .and_then(|ix| ix.status().map_err(|e| e.to_string())),
            };
            if json {
                print_json(
                    out,
                    &json!({
                        "index": match &index {
                            Ok(st) => serde_json::to_value(st)?,
                            Err(e) => json!({"error": e}),
                        },
                        "home": home.data_dir,
                        "backend": store.backend().describe(),
                        "public_key": store.keyring().public_key(),
                        "daemon": ctx.daemon.as_ref().map(|d| json!({
                            "pid": d.pid,
                            "mountpoint": d.mountpoint,
                            "reads": d.fs.counters.reads.load(Ordering::Relaxed),
                            "read_bytes": d.fs.counters.read_bytes.load(Ordering::Relaxed),
                            "writes": d.fs.counters.writes.load(Ordering::Relaxed),
                            "write_bytes": d.fs.counters.write_bytes.load(Ordering::Relaxed),
                            "commits": d.fs.counters.commits.load(Ordering::Relaxed),
                        })),
                        "stats": stats,
                        "stored_per_logical": overhead,
                        "views": views_status(ctx, &home),
                    }),
                )?;
            } else {
                writeln!(out, "home:     {}", home.data_dir.display())?;
                match &ctx.daemon {
                    Some(d) => writeln!(
                        out,
                        "mount:    {} (daemon pid {})",
                        d.mountpoint.display(),
                        d.pid
                    )?,
                    None => writeln!(out, "mount:    not mounted")?,
                }
                writeln!(out, "backend:  {}", store.backend().describe())?;
                writeln!(out, "key:      {}", store.keyring().public_key())?;
                writeln!(
                    out,
                    "files:    {} ({:.1} MB), {} directories, {} symlinks",
                    stats.files,
                    stats.logical_bytes as f64 / 1e6,
                    stats.dirs,
                    stats.symlinks
                )?;
                writeln!(
                    out,
                    "objects:  {} ({:.1} MB stored, {:.3}× logical; {:.1} MB of file data held, \
                     {:.1} MB garbage to reclaim, {:.1} MB buffered)",
                    stats.objects,
                    stats.stored_bytes as f64 / 1e6,
                    overhead,
                    stats.live_bytes as f64 / 1e6,
                    stats.garbage_bytes as f64 / 1e6,
                    stats.dirty_bytes as f64 / 1e6
                )?;
                writeln!(out, "versions: {}", stats.versions)?;
                match &index {
                    Ok(st) => {
                        writeln!(
                            out,
                            "index:    {} files, {} chunks, {} vectors; pending {} files, {} chunks; embedder {}",
                            st.files, st.chunks, st.vectors, st.pending_text, st.pending_vectors, st.embedder
                        )?;
                        writeln!(out, "          embedding: {}", embedding_progress(st))?;
                        writeln!(out, "          ocr: {}", ocr_progress(&st.ocr))?;
                        for (p, e) in st.errors.iter().take(10) {
                            writeln!(out, "          not indexed: {p}: {e}")?;
                        }
                        for (p, w) in st.warnings.iter().take(10) {
                            writeln!(out, "          in part: {p}: {w}")?;
                        }
                    }
                    Err(e) => writeln!(out, "index:    unavailable: {e}")?,
                }
                let vs = views_status(ctx, &home);
                match vs["error"].as_str() {
                    Some(e) => writeln!(
                        out,
                        "views:    {} (ERROR, previous views kept: {e})",
                        vs["views"]
                    )?,
                    None => writeln!(
                        out,
                        "views:    {} in {}",
                        vs["views"],
                        home.views_file().display()
                    )?,
                }
                writeln!(
                    out,
                    "cache:    {:.1} / {:.0} MB",
                    stats.cache_bytes as f64 / 1e6,
                    stats.cache_capacity as f64 / 1e6
                )?;
            }
        }
        Command::Fsck { quick, json } => {
            let store = ctx.store(&home)?;
            let bar = counter_bar(quiet || json, "checking chunks");
            let report = store.fsck(quick, &|done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })?;
            bar.finish_and_clear();
            if json {
                print_json(out, &serde_json::to_value(&report)?)?;
            } else {
                for p in &report.problems {
                    writeln!(out, "{}: {}: {}", p.kind, p.path, p.detail)?;
                }
                writeln!(
                    out,
                    "fsck: {} inodes, {} chunks checked, {} problems",
                    report.inodes,
                    report.chunks_checked,
                    report.problems.len()
                )?;
            }
            if !report.problems.is_empty() {
                return Ok(3);
            }
        }
        Command::Gc { json } => {
            let store = ctx.store(&home)?;
            let bar = counter_bar(quiet || json, "removing");
            let report = store.gc(&|done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })?;
            bar.finish_and_clear();
            if json {
                print_json(out, &serde_json::to_value(&report)?)?;
            } else {
                writeln!(
                    out,
                    "gc: {} objects seen, {} removed, {:.1} MB freed",
                    report.objects_seen,
                    report.objects_removed,
                    report.bytes_freed as f64 / 1e6
                )?;
            }
        }
        Command::Log { path, json } => {
            let store = ctx.store(&home)?;
            let versions = store.versions(&store_path(&path))?;
            if versions.is_empty() {
                bail!(
                    "{}: no recorded versions (is the path right? versions are kept per path)",
                    path.display()
                );
            }
            if json {
                print_json(out, &serde_json::to_value(&versions)?)?;
            } else {
                writeln!(
                    out,
                    "{:>7}  {:<20}  {:>12}  note",
                    "version", "recorded", "size"
                )?;
                let last = versions.last().map(|v| v.version);
                for v in &versions {
                    let note = if v.deleted {
                        "deleted"
                    } else if Some(v.version) == last {
                        "current"
                    } else {
                        ""
                    };
                    writeln!(
                        out,
                        "{:>7}  {:<20}  {:>12}  {}",
                        v.version,
                        fmt_time(v.recorded),
                        v.size,
                        note
                    )?;
                }
            }
        }
        Command::Restore { path, version } => {
            let store = ctx.store(&home)?;
            store.restore(&store_path(&path), version)?;
            writeln!(out, "Restored {} to version {version}", path.display())?;
        }
    }
    Ok(0)
}

/// `peros init --from URL`: a fresh home for an existing remote store.
fn init_from(
    home: &Home,
    ctx: &Ctx,
    url: &str,
    key: Option<&std::path::Path>,
    json: bool,
    out: &mut dyn Write,
) -> Result<u8> {
    if home.is_initialized() {
        bail!(
            "a store already exists in {}: `init --from` needs a fresh PEROS_HOME",
            home.data_dir.display()
        );
    }
    let cfg = remote::config_for(url)?;
    let key_bytes = remote::key_bytes(&cfg, key)?;
    let config_existed = home.config_file.exists();
    let result = (|| -> Result<(Arc<Store>, peros_store::Stats)> {
        home.init_with(None, cfg, Some(&key_bytes))?;
        let store = ctx.store(home)?;
        let stats = store.stats()?;
        Ok((store, stats))
    })();
    let (store, stats) = match result {
        Ok(v) => v,
        Err(e) => {
            // Leave the home as it was, so that a retry (another key, the right passphrase) works.
            let _ = std::fs::remove_file(home.key_file());
            let _ = std::fs::remove_file(home.meta_file());
            let _ = std::fs::remove_file(home.data_dir.join("meta").join("remote.json"));
            if !config_existed {
                let _ = std::fs::remove_file(&home.config_file);
            }
            return Err(e);
        }
    };
    if json {
        print_json(
            out,
            &json!({
                "home": home.data_dir,
                "from": url,
                "public_key": store.keyring().public_key(),
                "stats": stats,
            }),
        )?;
    } else {
        writeln!(
            out,
            "Restored {url} into {}: {} files, {} directories ({:.1} MB)",
            home.data_dir.display(),
            stats.files,
            stats.dirs,
            stats.logical_bytes as f64 / 1e6
        )?;
        writeln!(out, "Next: peros mount DIR")?;
    }
    Ok(0)
}

fn cat(store: &Store, path: &[u8], out: &mut dyn Write) -> Result<()> {
    let (ino, node) = store.resolve(path)?;
    if node.kind == Kind::Dir {
        bail!("is a directory");
    }
    let mut off = 0u64;
    while off < node.size {
        let want = (node.size - off).min(peros_store::CHUNK_SIZE as u64) as usize;
        let data = store.read_from(ino, &node, off, want)?;
        if data.is_empty() {
            break;
        }
        out.write_all(&data)?;
        off += data.len() as u64;
    }
    Ok(())
}

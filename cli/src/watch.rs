//! `peros watch DIR [DEST]`: import a local folder and keep the store copy in sync.
//!
//! Changes reported by notify (inotify on Linux) are debounced for half a second, then each
//! changed path is re-imported (if it exists) or removed from the store (if it is gone); a
//! rename is the removal of the old path plus the import of the new one. Every step is an
//! ordinary `import` / `rm` command, run inside the mount's daemon when one owns the store.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result};
use notify::{RecursiveMode, Watcher};

use crate::home::Home;

/// Runs one `peros` command (through the daemon if there is one) and returns its exit code.
fn exec(home: &Home, args: Vec<String>, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let mut full: Vec<std::ffi::OsString> = vec!["peros".into(), "-q".into()];
    full.extend(args.into_iter().map(Into::into));
    match crate::daemon::forward_capture(home, full.clone()) {
        Some(Ok((code, o, e))) => {
            let _ = out.write_all(&o);
            let _ = err.write_all(&e);
            code
        }
        Some(Err(e)) => {
            let _ = writeln!(err, "peros: error: {e:#}");
            1
        }
        None => {
            let ctx = crate::Ctx {
                cwd: PathBuf::from("/"),
                store: None,
                daemon: None,
                opened: Default::default(),
            };
            crate::run_args(full, ctx, out, err)
        }
    }
}

fn store_path_of(dest: &str, root: &Path, changed: &Path) -> Option<String> {
    let rel = changed.strip_prefix(root).ok()?;
    let mut p = dest.trim_end_matches('/').to_string();
    for c in rel.components() {
        p.push('/');
        p.push_str(&c.as_os_str().to_string_lossy());
    }
    Some(p)
}

pub fn watch(
    home: &Home,
    dir: &Path,
    dest: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8> {
    let root =
        std::fs::canonicalize(dir).with_context(|| format!("cannot watch {}", dir.display()))?;
    let code = exec(
        home,
        vec!["import".into(), root.display().to_string(), dest.into()],
        out,
        err,
    );
    if code != 0 {
        anyhow::bail!("the initial import of {} failed", root.display());
    }
    writeln!(out, "Watching {} → {dest} (Ctrl-C to stop)", root.display())?;
    out.flush()?;
    let (tx, rx) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            // Our own imports read the files: access events would loop forever.
            if matches!(ev.kind, notify::EventKind::Access(_)) {
                return;
            }
            for p in ev.paths {
                let _ = tx.send(p);
            }
        }
    })?;
    watcher.watch(&root, RecursiveMode::Recursive)?;
    loop {
        let first = match rx.recv() {
            Ok(p) => p,
            Err(_) => return Ok(0),
        };
        let mut batch = BTreeSet::from([first]);
        // Debounce: editors write, rename and chmod in quick succession.
        while let Ok(p) = rx.recv_timeout(Duration::from_millis(500)) {
            batch.insert(p);
        }
        // Parents before children; a path inside an already handled directory is skipped.
        let mut done: Vec<PathBuf> = Vec::new();
        for p in batch {
            if done.iter().any(|d| p.starts_with(d)) {
                continue;
            }
            let Some(sp) = store_path_of(dest, &root, &p) else {
                continue;
            };
            if p == root {
                continue;
            }
            let meta = std::fs::symlink_metadata(&p).ok();
            if meta.as_ref().is_some_and(|m| m.is_dir()) {
                // A directory event follows changes inside it (reported on their own); only a
                // directory new to the store (created, or moved in with its contents) is imported.
                let (mut o, mut e) = (Vec::new(), Vec::new());
                if exec(
                    home,
                    vec!["ls".into(), "--json".into(), sp.clone()],
                    &mut o,
                    &mut e,
                ) == 0
                {
                    continue;
                }
            }
            let args = if meta.is_some() {
                vec!["import".into(), p.display().to_string(), sp.clone()]
            } else {
                vec!["rm".into(), "-r".into(), sp.clone()]
            };
            let verb = args[0].clone();
            let mut sink = Vec::new();
            let mut errs = Vec::new();
            let code = exec(home, args, &mut sink, &mut errs);
            if code == 0 {
                writeln!(out, "{verb} {sp}")?;
            } else if verb == "import" {
                // The file may have vanished again meanwhile; anything else is worth showing.
                err.write_all(&errs)?;
            }
            out.flush()?;
            if std::fs::metadata(&p).map(|m| m.is_dir()).unwrap_or(false) {
                done.push(p);
            }
        }
    }
}

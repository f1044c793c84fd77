//! `peros-agent` is the self-adapting half of PerOS.
//!
//! - [`runtime::Agent`] runs in the daemon: the mount sends open/read/close events through a
//!   non-blocking [`peros_store::access::AccessSink`]; the agent's thread logs them
//!   ([`log`], bounded JSON lines), learns patterns ([`model`]: per-process Markov chain +
//!   co-access windows) and prefetches predicted files' first chunks into the store's chunk
//!   cache on a worker thread, within a memory and bandwidth budget and with a depth that
//!   adapts to the observed precision. Counters: hits, misses, prefetch hits, wasted bytes.
//! - [`planner`]: a heuristic planner (default, needs nothing) and an LLM planner over any
//!   OpenAI-compatible `/v1/chat/completions` with `tools`, both acting only through
//!   [`tools::Host`], which validates arguments, applies the privacy [`policy`], never
//!   touches file content, only deletes its own views, and journals every change.
//! - [`journal`]: append-only, fsynced JSON lines with what undo needs; [`undo`] restores the
//!   exact previous view definition or tags value.
//! - [`topics`]: views from what files are about: file vectors clustered (HDBSCAN), named
//!   by class-based TF-IDF, shown as tag views under `@views/topics/`, kept current.
//! - [`sim`]: the trace replay used by the benchmark in `perfs/agent`.

pub mod journal;
pub mod log;
pub mod model;
pub mod planner;
pub mod policy;
pub mod runtime;
pub mod sim;
pub mod tools;
pub mod topics;

use std::path::Path;

use anyhow::{bail, Result};
use serde::Serialize;

pub use journal::{Change, Entry, Journal};
pub use policy::{AgentConfig, Policy};
pub use runtime::{Agent, PrefetchStats};
pub use tools::{Host, ViewsHandle};

/// What one planner run did.
#[derive(Serialize)]
pub struct RunReport {
    pub run: u64,
    pub planner: String,
    pub actions: Vec<Entry>,
    pub calls: Vec<tools::CallReport>,
    pub error: Option<String>,
    /// Why the search index was unavailable to the planner (its `search` tool and the
    /// checks that evaluate a new view's query are off then).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_error: Option<String>,
}

/// Runs `planner` once over `host` (whose `run` and `planner` fields this sets).
pub fn run_planner(host: &mut Host, planner: &mut dyn planner::Planner) -> RunReport {
    host.run = host.journal.next_run();
    host.planner = planner.name().into();
    let error = planner.plan(host).err().map(|e| format!("{e:#}"));
    RunReport {
        run: host.run,
        planner: host.planner.clone(),
        actions: host.actions.clone(),
        calls: host.calls.clone(),
        error,
        index_error: host.indexer.is_none().then(|| {
            host.index_error
                .clone()
                .unwrap_or_else(|| "not opened".into())
        }),
    }
}

/// What one topics pass did (a run of its own in the journal).
#[derive(Serialize)]
pub struct TopicsRun {
    pub run: u64,
    pub actions: Vec<Entry>,
    #[serde(flatten)]
    pub report: topics::Report,
}

/// Runs a topics pass over `host` as its own journal run (planner "topics").
pub fn run_topics(
    host: &mut Host,
    agent_dir: &Path,
    settings: &topics::Settings,
    namer: Option<&mut planner::Llm>,
) -> Result<TopicsRun> {
    host.run = host.journal.next_run();
    host.planner = "topics".into();
    let report = topics::run(host, agent_dir, settings, namer)?;
    Ok(TopicsRun {
        run: host.run,
        actions: host.actions.clone(),
        report,
    })
}

/// Undoes journal entry `id` (an action not yet undone): restores the exact previous view
/// definition or tags value, and journals the undo. Refuses if the user changed the object
/// since (undo never overwrites a user's edit).
pub fn undo(
    journal: &Journal,
    store: &peros_store::Store,
    views: &ViewsHandle,
    id: u64,
) -> Result<Entry> {
    let Some(e) = journal.active().into_iter().find(|e| e.id == id) else {
        bail!("no action {id} to undo (`peros agent log` lists them; undone ones cannot be undone twice)");
    };
    // Later active changes to the same object must be undone first.
    let later = journal.active().into_iter().any(|x| {
        x.id > id
            && match (&x.change, &e.change) {
                (Change::View { name: a, .. }, Change::View { name: b, .. }) => a == b,
                (Change::Tags { path: a, .. }, Change::Tags { path: b, .. }) => a == b,
                _ => false,
            }
    });
    if later {
        bail!("a later agent action changed the same object: undo that first");
    }
    match &e.change {
        Change::View {
            name,
            before,
            after,
        } => {
            let cur = views.get(name).map(|d| journal::ViewSnap::of(&d));
            if cur != *after {
                bail!("view {name:?} was changed since action {id}: not undoing over your edit");
            }
            if cur.is_some() {
                views.remove(name).map_err(anyhow::Error::msg)?;
            }
            if let Some(b) = before {
                views.add(b.to_def()).map_err(anyhow::Error::msg)?;
            }
        }
        Change::Tags {
            path,
            before,
            after,
            ..
        } => {
            let (ino, node) = store.resolve(path.as_bytes())?;
            let cur = node
                .xattrs
                .get(peros_indexer::TAGS_XATTR)
                .map(|v| String::from_utf8_lossy(v).into_owned());
            if cur != *after {
                bail!(
                    "the tags of {path} were changed since action {id}: not undoing over your edit"
                );
            }
            tools::set_tags_raw(store, ino, before.as_deref()).map_err(anyhow::Error::msg)?;
        }
    }
    let u = Entry {
        id: 0,
        time: peros_store::access::now_ms(),
        run: e.run,
        planner: e.planner.clone(),
        action: format!("undo {}", e.action),
        reason: format!("undo of action {id}"),
        change: e.change.clone(),
        undoes: Some(id),
    };
    Ok(journal.append(u)?)
}

/// Ids to undo for `peros agent undo [ID | --run [RUN]]`: newest first.
pub fn undo_targets(
    journal: &Journal,
    id: Option<u64>,
    run: Option<Option<u64>>,
) -> Result<Vec<u64>> {
    let active = journal.active();
    if let Some(run) = run {
        let run = match run {
            Some(r) => r,
            None => active
                .last()
                .map(|e| e.run)
                .ok_or_else(|| anyhow::anyhow!("nothing to undo"))?,
        };
        let mut ids: Vec<u64> = active
            .iter()
            .filter(|e| e.run == run)
            .map(|e| e.id)
            .collect();
        if ids.is_empty() {
            bail!("run {run} has no actions left to undo");
        }
        ids.reverse();
        return Ok(ids);
    }
    match id {
        Some(i) => Ok(vec![i]),
        None => active
            .last()
            .map(|e| vec![e.id])
            .ok_or_else(|| anyhow::anyhow!("nothing to undo")),
    }
}

/// The agent's state directory in a PerOS home.
/// Creates the agent's state directory (access log, journal) private to the user: it records
/// which files were opened when, which is as telling as their names.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

pub fn state_dir(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("agent")
}

#[cfg(test)]
mod tests {
    /// The access log and journal say which files were opened when: their directory is 0700,
    /// made so whatever the umask, and put back to 0700 if an older version left it open.
    #[test]
    fn the_agent_state_directory_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let fresh = tmp.path().join("a/agent");
        crate::journal::Journal::open(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o700);
        let old = tmp.path().join("old");
        std::fs::create_dir(&old).unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
        crate::log::AccessLog::open(&old, 1 << 20).unwrap();
        assert_eq!(mode(&old), 0o700);
    }

    /// The agent acts through store and indexer APIs only: access events come from
    /// `peros_store::access`, so the agent does not depend on the FUSE crate (or fuser) itself.
    #[test]
    fn the_agent_does_not_depend_on_the_fuse_crate() {
        let manifest = include_str!("../Cargo.toml");
        let deps: Vec<&str> = manifest
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['=', '.', ' ']).next())
            .collect();
        assert!(
            !deps.contains(&"peros-fs"),
            "agent/Cargo.toml lists peros-fs"
        );
        // The types the mount sends are the store's.
        fn same(e: peros_store::access::AccessEvent) -> peros_store::access::AccessEvent {
            e
        }
        let e = same(peros_store::access::AccessEvent {
            kind: peros_store::access::AccessKind::Open,
            ino: 1,
            pid: 0,
            bytes: 0,
            time_ms: peros_store::access::now_ms(),
            cached: false,
        });
        assert!(e.time_ms > 0);
    }
}

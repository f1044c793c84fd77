//! `peros agent …`: access statistics, planner runs, the journal and undo. With a daemon these
//! run inside it (its live agent, views and index); without one they read the agent's files
//! in PEROS_HOME/agent and edit views.toml directly.

use std::io::Write;
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::Subcommand;
use peros_agent::planner::{Heuristic, HttpChat, Llm, Planner};
use peros_agent::{Host, Journal, Policy, ViewsHandle};
use peros_indexer::Indexer;
use peros_store::Store;
use serde_json::json;

use crate::home::Home;
use crate::{print_json, Ctx};

#[derive(Subcommand)]
pub enum AgentCmd {
    /// Summarise the access log and the prefetcher's counters.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Run a planner: it may create views and tag files (journaled, undoable).
    Run {
        /// One pass, then exit (without it and without a daemon: repeat on the [agent] schedule).
        #[arg(long)]
        once: bool,
        /// heuristic (default from [agent] planner) or llm ([llm] endpoint).
        #[arg(long)]
        planner: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Group files by what they are about into topic views under @views/topics (journaled,
    /// undoable with `agent undo --run`); later passes add new files to the nearest topic.
    Topics {
        #[arg(long)]
        json: bool,
    },
    /// The journal of agent actions.
    Log {
        #[arg(long)]
        json: bool,
    },
    /// Undo an action (default: the last one), or with --run every action of a run
    /// (default: the last run). Restores the exact previous views and tags.
    Undo {
        id: Option<u64>,
        #[arg(long, num_args = 0..=1)]
        run: Option<Option<u64>>,
        #[arg(long)]
        json: bool,
    },
}

fn api_key(k: &str) -> Option<String> {
    let k = k.trim();
    if let Some(var) = k.strip_prefix("env:") {
        return std::env::var(var).ok();
    }
    (!k.is_empty()).then(|| k.to_string())
}

/// Prints `title:` then up to 10 lines "COUNT  TEXT" from a JSON list of objects.
fn counted_list(
    out: &mut dyn Write,
    title: &str,
    list: &serde_json::Value,
    count_key: &str,
    text_key: &str,
) -> Result<()> {
    writeln!(out, "{title}:")?;
    for f in list.as_array().into_iter().flatten().take(10) {
        writeln!(
            out,
            "  {:>5}  {}",
            f[count_key],
            f[text_key].as_str().unwrap_or("")
        )?;
    }
    Ok(())
}

/// Records a search the user made (`peros search`) in the agent's access log: through the
/// daemon's agent when one runs, else appended to the log directly.
pub fn note_search(ctx: &Ctx, home: &Home, query: &str, source: &str) {
    if let Some(agent) = ctx.daemon.as_ref().and_then(|d| d.agent.clone()) {
        agent.record_search(query, source);
        return;
    }
    let Ok(cfg) = home.load_config() else {
        return;
    };
    if !cfg.agent.enabled {
        return;
    }
    let dir = peros_agent::state_dir(&home.data_dir);
    if let Ok(mut log) = peros_agent::log::AccessLog::open(&dir, cfg.agent.log_max_mb.max(1) << 20)
    {
        // Losing one search record costs the planner nothing that matters: not an error.
        let _ = log.append(&[peros_agent::log::search_record(query, source)]);
    }
}

/// A tool host over the given parts.
pub fn make_host(
    home: &Home,
    store: Arc<Store>,
    indexer: Option<Arc<Indexer>>,
    views: ViewsHandle,
    agent: Option<Arc<peros_agent::Agent>>,
) -> Result<Host> {
    let cfg = home.load_config()?.agent;
    let dir = peros_agent::state_dir(&home.data_dir);
    if let Some(a) = &agent {
        // The daemon's agent writes its log once a second: what it holds goes to the log
        // first, so a run or `agent stats` right after a burst of opens sees them.
        a.flush();
    }
    Ok(Host {
        store,
        indexer,
        views,
        journal: Journal::open(&dir)?,
        policy: Policy::from_config(&cfg),
        agent,
        records: peros_agent::log::read_all(&dir),
        run: 0,
        planner: String::new(),
        content_ok: true,
        actions: Vec::new(),
        calls: Vec::new(),
        index_error: None,
        min_view_matches: 0,
    })
}

/// The `[llm]` endpoint as the LLM planner and the topic namer use it.
fn llm_client(config: &crate::home::Config) -> Result<Llm> {
    let llm = &config.llm;
    Ok(Llm {
        chat: Box::new(HttpChat::new(&llm.endpoint, api_key(&llm.api_key))?),
        model: llm.model.clone(),
        max_tokens: if llm.max_tokens == 0 {
            300
        } else {
            llm.max_tokens
        },
        max_steps: config.agent.max_steps,
        endpoint: llm.endpoint.clone(),
    })
}

/// Who names new topics beyond their terms: the `[llm]` endpoint when one is set and
/// `[agent] topics_llm_names` is on (the default).
pub fn topic_namer(home: &Home) -> Result<Option<Llm>> {
    let config = home.load_config()?;
    if config.llm.endpoint.trim().is_empty() || !config.agent.topics_llm_names {
        return Ok(None);
    }
    llm_client(&config).map(Some)
}

/// The planner named `name` (None: the configured one).
pub fn make_planner(home: &Home, name: Option<&str>) -> Result<Box<dyn Planner>> {
    let config = home.load_config()?;
    let name = name.unwrap_or(&config.agent.planner).to_string();
    match name.as_str() {
        "heuristic" => Ok(Box::new(Heuristic)),
        "llm" => {
            if config.llm.endpoint.trim().is_empty() {
                bail!(
                    "the llm planner needs [llm] endpoint in {}",
                    home.config_file.display()
                );
            }
            Ok(Box::new(llm_client(&config)?))
        }
        other => bail!("unknown planner {other:?}: use heuristic or llm"),
    }
}

fn views_handle(ctx: &Ctx, home: &Home) -> ViewsHandle {
    match ctx.daemon.as_ref().and_then(|d| d.views.clone()) {
        Some(v) => ViewsHandle::Live(v),
        None => ViewsHandle::File(home.views_file()),
    }
}

fn print_report(out: &mut dyn Write, r: &peros_agent::RunReport, json: bool) -> Result<()> {
    if json {
        return print_json(out, &serde_json::to_value(r)?);
    }
    writeln!(
        out,
        "run {} ({} planner): {} action(s)",
        r.run,
        r.planner,
        r.actions.len()
    )?;
    for a in &r.actions {
        writeln!(out, "  #{} {}: {}", a.id, describe(&a.change), a.reason)?;
    }
    for c in r.calls.iter().filter(|c| !c.ok) {
        writeln!(
            out,
            "  refused {} {}: {}",
            c.tool, c.args, c.result["error"]
        )?;
    }
    if let Some(e) = &r.index_error {
        writeln!(
            out,
            "  note: no search index ({e}); the planner worked without search"
        )?;
    }
    if let Some(e) = &r.error {
        writeln!(out, "  error: {e}")?;
    }
    Ok(())
}

/// The topics pass settings from `[agent]`.
pub fn topic_settings(home: &Home) -> Result<peros_agent::topics::Settings> {
    let cfg = home.load_config()?.agent;
    let mut s = peros_agent::topics::Settings {
        dir: cfg.topics_dir.trim_matches('/').to_string(),
        ..Default::default()
    };
    s.params.min_topic_size = cfg.topics_min_size.max(2);
    Ok(s)
}

fn print_topics(out: &mut dyn Write, r: &peros_agent::TopicsRun) -> Result<()> {
    let t = &r.report;
    writeln!(
        out,
        "run {} (topics, {}): {} files in {} topics, {} in none, {} pending embedding; {} action(s) in {} ms",
        r.run,
        t.mode,
        t.files,
        t.topics.len(),
        t.outliers,
        t.pending,
        r.actions.len(),
        t.millis
    )?;
    for x in &t.topics {
        writeln!(
            out,
            "  @views/{}  {} files{}{}  ({})",
            x.view,
            x.files,
            if x.new { ", new" } else { "" },
            if x.joined > 0 {
                format!(", {} joined", x.joined)
            } else {
                String::new()
            },
            x.terms.join(", ")
        )?;
    }
    if t.kept_out > 0 {
        writeln!(
            out,
            "  {} file(s) kept out of topics you took them out of",
            t.kept_out
        )?;
    }
    Ok(())
}

fn describe(c: &peros_agent::Change) -> String {
    match c {
        peros_agent::Change::View {
            name,
            before,
            after,
        } => match (before, after) {
            (None, Some(a)) => format!("view {name} = {:?}", a.query),
            (Some(_), None) => format!("view {name} removed"),
            _ => format!("view {name} changed"),
        },
        peros_agent::Change::Tags {
            path,
            before,
            after,
            ..
        } => format!(
            "tags of {path}: {:?} -> {:?}",
            before.as_deref().unwrap_or(""),
            after.as_deref().unwrap_or("")
        ),
    }
}

pub fn run_agent(
    cmd: AgentCmd,
    ctx: &Ctx,
    home: &Home,
    quiet: bool,
    out: &mut dyn Write,
) -> Result<u8> {
    let dir = peros_agent::state_dir(&home.data_dir);
    let live = ctx.daemon.as_ref().and_then(|d| d.agent.clone());
    match cmd {
        AgentCmd::Stats { json } => {
            let store = ctx.store(home)?;
            let host = make_host(home, store, None, views_handle(ctx, home), live.clone())?;
            let prefetch = match &live {
                Some(a) => a.stats(),
                None => std::fs::read_to_string(dir.join("prefetch.json"))
                    .ok()
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or_default(),
            };
            let opens = host.records.iter().filter(|r| r.ev == "open").count();
            let files: std::collections::HashSet<&str> = host
                .records
                .iter()
                .filter(|r| r.ev != "search")
                .map(|r| r.path.as_str())
                .collect();
            let searches = host.records.iter().filter(|r| r.ev == "search").count();
            let summary = host.access_summary();
            let hit_rate = if prefetch.opens > 0 {
                prefetch.hits as f64 / prefetch.opens as f64
            } else {
                0.0
            };
            let v = json!({
                "log": {"events": host.records.len(), "opens": opens, "files": files.len(), "searches": searches,
                        "first": host.records.first().map(|r| r.t), "last": host.records.last().map(|r| r.t)},
                "access": summary,
                "prefetch": prefetch,
                "hit_rate": hit_rate,
                "live": live.is_some(),
            });
            if json {
                print_json(out, &v)?;
            } else {
                writeln!(
                    out,
                    "access log: {} events, {opens} opens of {} files, {searches} searches",
                    host.records.len(),
                    files.len()
                )?;
                writeln!(
                    out,
                    "prefetch: {} opens, hit rate {:.1}% ({} hits, {} prefetch hits, {} misses of which {} in flight: predicted, still downloading), {} files / {} bytes prefetched, {} bytes wasted, {} bytes not opened yet, depth {}",
                    prefetch.opens, hit_rate * 100.0, prefetch.hits, prefetch.prefetch_hits, prefetch.misses, prefetch.inflight_hits,
                    prefetch.prefetched_files, prefetch.prefetched_bytes, prefetch.wasted_bytes, prefetch.outstanding_bytes, prefetch.depth
                )?;
                counted_list(out, "most opened", &summary["top_files"], "opens", "path")?;
                if summary["frequent_searches"]
                    .as_array()
                    .is_some_and(|l| !l.is_empty())
                {
                    let list = &summary["frequent_searches"];
                    counted_list(out, "repeated searches", list, "count", "query")?;
                }
                writeln!(out, "frequent successions:")?;
                for f in summary["frequent_successions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .take(10)
                {
                    writeln!(
                        out,
                        "  {:>5}  {} -> {}",
                        f["count"],
                        f["from"].as_str().unwrap_or(""),
                        f["to"].as_str().unwrap_or("")
                    )?;
                }
            }
        }
        AgentCmd::Run {
            once,
            planner,
            json,
        } => loop {
            let store = ctx.store(home)?;
            let (indexer, index_error) = match ctx.daemon.as_ref().and_then(|d| d.indexer.clone()) {
                Some(ix) => (Some(ix), None),
                None => match ctx.indexer(home, true, quiet || json) {
                    Ok((ix, _)) => (Some(ix), None),
                    Err(e) => (None, Some(format!("{e:#}"))),
                },
            };
            let mut host = make_host(home, store, indexer, views_handle(ctx, home), live.clone())?;
            host.index_error = index_error;
            let mut p = make_planner(home, planner.as_deref())?;
            let report = peros_agent::run_planner(&mut host, p.as_mut());
            print_report(out, &report, json)?;
            let minutes = home.load_config()?.agent.schedule_minutes;
            if once || ctx.daemon.is_some() || minutes <= 0.0 {
                return Ok(if report.error.is_some() { 1 } else { 0 });
            }
            std::thread::sleep(std::time::Duration::from_secs_f64(minutes.min(1e6) * 60.0));
        },
        AgentCmd::Topics { json } => {
            let store = ctx.store(home)?;
            let (indexer, index_error) = match ctx.daemon.as_ref().and_then(|d| d.indexer.clone()) {
                Some(ix) => (Some(ix), None),
                None => match ctx.indexer(home, true, quiet || json) {
                    Ok((ix, _)) => (Some(ix), None),
                    Err(e) => (None, Some(format!("{e:#}"))),
                },
            };
            let mut host = make_host(home, store, indexer, views_handle(ctx, home), live.clone())?;
            host.index_error = index_error;
            let mut namer = topic_namer(home)?;
            let r =
                peros_agent::run_topics(&mut host, &dir, &topic_settings(home)?, namer.as_mut())?;
            if json {
                print_json(out, &serde_json::to_value(&r)?)?;
            } else {
                print_topics(out, &r)?;
            }
        }
        AgentCmd::Log { json } => {
            let entries = Journal::open(&dir)?.entries();
            if json {
                print_json(out, &serde_json::to_value(&entries)?)?;
            } else {
                if entries.is_empty() {
                    writeln!(out, "the agent has not changed anything yet")?;
                }
                let undone: std::collections::HashSet<u64> =
                    entries.iter().filter_map(|e| e.undoes).collect();
                for e in &entries {
                    let when = humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + std::time::Duration::from_millis(e.time),
                    );
                    let mark = if undone.contains(&e.id) {
                        " (undone)"
                    } else {
                        ""
                    };
                    writeln!(
                        out,
                        "#{} {when} run {} {} {}: {}{mark}\n    reason: {}",
                        e.id,
                        e.run,
                        e.planner,
                        e.action,
                        describe(&e.change),
                        e.reason
                    )?;
                }
            }
        }
        AgentCmd::Undo { id, run, json } => {
            let store = ctx.store(home)?;
            let journal = Journal::open(&dir)?;
            let views = views_handle(ctx, home);
            let mut done = Vec::new();
            for i in peros_agent::undo_targets(&journal, id, run)? {
                let e = peros_agent::undo(&journal, &store, &views, i)?;
                if !json {
                    writeln!(out, "undid #{i}: {}", describe(&e.change))?;
                }
                done.push(e);
            }
            if json {
                print_json(out, &json!({"undone": done}))?;
            }
        }
    }
    Ok(0)
}

/// Runs `job` on a fresh [`Host`] every `minutes`, on a background thread of the daemon
/// (never in a FUSE callback); logs what it says it did, or why it failed.
fn every(
    thread: &str,
    home: &Home,
    info: Arc<crate::daemon::DaemonInfo>,
    store: Arc<Store>,
    minutes: f64,
    job: impl Fn(&Home, &mut Host) -> Result<String> + Send + 'static,
) {
    let home = Home {
        config_file: home.config_file.clone(),
        data_dir: home.data_dir.clone(),
    };
    let name = thread.to_string();
    let _ = std::thread::Builder::new()
        .name(thread.into())
        .spawn(move || {
            // Scheduled passes are background work: the file system comes first.
            peros_indexer::background_priority();
            loop {
                std::thread::sleep(std::time::Duration::from_secs_f64(minutes.min(1e6) * 60.0));
                let views = match info.views.clone() {
                    Some(v) => ViewsHandle::Live(v),
                    None => ViewsHandle::File(home.views_file()),
                };
                let result = make_host(
                    &home,
                    store.clone(),
                    info.indexer.clone(),
                    views,
                    info.agent.clone(),
                )
                .and_then(|mut host| job(&home, &mut host));
                match result {
                    Ok(done) => tracing::info!("{name}: {done}"),
                    Err(e) => tracing::warn!("{name} failed: {e:#}"),
                }
            }
        });
}

/// Runs the configured planner every `minutes` in the daemon.
pub fn schedule(
    home: &Home,
    info: Arc<crate::daemon::DaemonInfo>,
    store: Arc<Store>,
    minutes: f64,
) {
    every(
        "peros-agent-planner",
        home,
        info,
        store,
        minutes,
        |home, host| {
            let mut p = make_planner(home, None)?;
            let r = peros_agent::run_planner(host, p.as_mut());
            Ok(format!(
                "run {}: {} action(s){}",
                r.run,
                r.actions.len(),
                r.error.map(|e| format!(", error: {e}")).unwrap_or_default()
            ))
        },
    );
}

/// Runs a topics pass every `minutes` in the daemon.
pub fn schedule_topics(
    home: &Home,
    info: Arc<crate::daemon::DaemonInfo>,
    store: Arc<Store>,
    minutes: f64,
) {
    every(
        "peros-agent-topics",
        home,
        info,
        store,
        minutes,
        |home, host| {
            let dir = peros_agent::state_dir(&home.data_dir);
            let mut namer = topic_namer(home)?;
            let r = peros_agent::run_topics(host, &dir, &topic_settings(home)?, namer.as_mut())?;
            Ok(format!(
                "pass {}: {} topics, {} action(s)",
                r.run,
                r.report.topics.len(),
                r.actions.len()
            ))
        },
    );
}

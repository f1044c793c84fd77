//! `peros views …` and `peros tag …`: views.toml and tags from the command line. With a
//! daemon these run inside it (its live views); without one they edit views.toml directly
//! and evaluate with this process's own index.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use peros_fs::{Listing, QueryDirError};
use peros_indexer::{parse_tags, Mode, TAGS_XATTR};
use peros_views::{Sort, ViewDef};
use serde_json::json;

use crate::home::Home;
use crate::{print_json, Ctx};

#[derive(Subcommand)]
pub enum ViewsCmd {
    /// List the declared views.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Declare a view: a directory @views/NAME listing the files that match QUERY.
    Add {
        name: String,
        query: String,
        /// Most entries shown.
        #[arg(long, default_value_t = peros_views::file::DEFAULT_LIMIT)]
        limit: usize,
        /// score, name, modified (newest first) or size (largest first).
        #[arg(long, default_value = "score")]
        sort: Sort,
        /// A fixed cosine similarity a passage needs to count as a semantic match (0..1),
        /// instead of the per-query calibrated rule (the default).
        #[arg(long)]
        min_similarity: Option<f32>,
        /// Replace an existing view of that name.
        #[arg(long)]
        replace: bool,
    },
    /// Remove a view (the files it lists are not touched).
    Rm { name: String },
    /// Show a view's definition and current entries.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

fn qd(e: QueryDirError) -> anyhow::Error {
    match e {
        QueryDirError::NotFound(n) => {
            anyhow::anyhow!("no view named {n:?}: `peros views list` shows the views")
        }
        QueryDirError::Exists(n) => {
            anyhow::anyhow!("view {n:?} already exists: use --replace to redefine it")
        }
        other => anyhow::anyhow!("{other}"),
    }
}

fn def_json(d: &ViewDef) -> serde_json::Value {
    json!({"name": d.name, "query": d.query, "limit": d.limit, "sort": d.sort, "min_similarity": d.min_similarity})
}

/// The store path of an entry from its link target (`../..` out of `@views/NAME`, one more
/// `..` per folder of a nested view name).
fn entry_path(target: &[u8]) -> String {
    let mut rel = target;
    while let Some(r) = rel.strip_prefix(b"../") {
        rel = r;
    }
    format!("/{}", String::from_utf8_lossy(rel).trim_start_matches('/'))
}

fn listing_json(l: &Listing) -> serde_json::Value {
    json!({
        "mode": l.mode,
        "note": l.note,
        "count": l.entries.len(),
        "entries": l.entries.iter().map(|e| json!({
            "name": String::from_utf8_lossy(&e.name),
            "path": entry_path(&e.target),
            "score": e.score,
            "mtime": e.mtime,
            "size": e.size,
        })).collect::<Vec<_>>(),
    })
}

pub fn run_views(
    cmd: ViewsCmd,
    ctx: &Ctx,
    home: &Home,
    quiet: bool,
    out: &mut dyn Write,
) -> Result<u8> {
    let live = ctx.daemon.as_ref().and_then(|d| d.views.clone());
    let file = home.views_file();
    match cmd {
        ViewsCmd::List { json } => {
            let (defs, error) = match &live {
                Some(v) => (v.list(), v.status().error.map(|e| e.to_string())),
                None => match peros_views::load_file(&file) {
                    Ok(d) => (d.into_values().collect(), None),
                    Err(e) => (Vec::new(), Some(e.to_string())),
                },
            };
            if json {
                print_json(
                    out,
                    &json!({"file": file, "views": defs.iter().map(def_json).collect::<Vec<_>>(), "error": error}),
                )?;
            } else {
                if let Some(e) = &error {
                    writeln!(out, "error: {e} (the previous views stay in effect)")?;
                }
                if defs.is_empty() {
                    writeln!(
                        out,
                        "no views yet: `peros views add NAME QUERY`, or mkdir in @views"
                    )?;
                }
                let w = defs
                    .iter()
                    .map(|d| d.name.chars().count())
                    .max()
                    .unwrap_or(0);
                for d in &defs {
                    let count = live
                        .as_ref()
                        .and_then(|v| v.show(&d.name))
                        .map(|(_, l)| format!("  ({} files)", l.entries.len()))
                        .unwrap_or_default();
                    writeln!(out, "{:w$}  {}{count}", d.name, d.query)?;
                }
            }
        }
        ViewsCmd::Add {
            name,
            query,
            limit,
            sort,
            min_similarity,
            replace,
        } => {
            if limit == 0 || limit > peros_views::file::MAX_LIMIT {
                bail!(
                    "--limit must be between 1 and {}",
                    peros_views::file::MAX_LIMIT
                );
            }
            if min_similarity.is_some_and(|m| !(0.0..=1.0).contains(&m)) {
                bail!("--min-similarity must be between 0 and 1");
            }
            let def = ViewDef {
                name: name.clone(),
                query,
                limit,
                sort,
                min_similarity,
            };
            match &live {
                Some(v) => v.add(def, replace).map_err(qd)?,
                None => peros_views::add_to_file(&file, &def, replace).map_err(qd)?,
            }
            writeln!(out, "view {name:?} saved in {}", file.display())?;
        }
        ViewsCmd::Rm { name } => {
            match &live {
                Some(v) => v.remove(&name).map_err(qd)?,
                None => peros_views::remove_from_file(&file, &name).map_err(qd)?,
            }
            writeln!(out, "view {name:?} removed (no file was touched)")?;
        }
        ViewsCmd::Show { name, json } => {
            let (def, listing) = match &live {
                Some(v) => v
                    .show(&name)
                    .ok_or_else(|| qd(QueryDirError::NotFound(name.clone())))?,
                None => {
                    let defs = peros_views::load_file(&file).map_err(qd)?;
                    let def = defs
                        .get(&name)
                        .cloned()
                        .ok_or_else(|| qd(QueryDirError::NotFound(name.clone())))?;
                    let (ix, _missing) = ctx.indexer(home, true, quiet || json)?;
                    let l = peros_views::evaluate(&ix, ix.store(), &def, Mode::Hybrid)
                        .map_err(|e| anyhow::anyhow!("view {name:?}: {e}"))?;
                    (def, Arc::new(l))
                }
            };
            if json {
                let mut v = def_json(&def);
                if let (Some(o), serde_json::Value::Object(l)) =
                    (v.as_object_mut(), listing_json(&listing))
                {
                    o.extend(l);
                }
                print_json(out, &v)?;
            } else {
                writeln!(out, "view:  {}", def.name)?;
                writeln!(out, "query: {}", def.query)?;
                writeln!(
                    out,
                    "       limit {}, sort {}, {} ranking, {} files",
                    def.limit,
                    def.sort.as_str(),
                    listing.mode,
                    listing.entries.len()
                )?;
                if let Some(n) = &listing.note {
                    writeln!(out, "note:  {n}")?;
                }
                for e in &listing.entries {
                    writeln!(
                        out,
                        "{:.3}  {}  -> {}",
                        e.score,
                        String::from_utf8_lossy(&e.name),
                        entry_path(&e.target)
                    )?;
                }
            }
        }
    }
    Ok(0)
}

/// A path given to `peros tag`: inside the mount (absolute or relative to the current
/// directory) or a store path.
fn tag_path(ctx: &Ctx, arg: &OsStr) -> Vec<u8> {
    if let Some(d) = &ctx.daemon {
        let abs = ctx.cwd.join(arg);
        let abs = std::path::absolute(&abs).unwrap_or(abs);
        if let Ok(rel) = abs.strip_prefix(&d.mountpoint) {
            let mut p = b"/".to_vec();
            p.extend_from_slice(rel.as_os_str().as_bytes());
            return peros_store::normalize_path(&p);
        }
    }
    peros_store::normalize_path(arg.as_bytes())
}

fn check_tag(t: &str) -> Result<()> {
    if t.is_empty() || t.contains(',') || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("bad tag {t:?}: tags are single words without commas or spaces");
    }
    Ok(())
}

pub fn run_tag(args: Vec<OsString>, ctx: &Ctx, home: &Home, out: &mut dyn Write) -> Result<u8> {
    let mut json = false;
    let mut add = Vec::new();
    let mut remove = Vec::new();
    let mut paths = Vec::new();
    for a in &args {
        let b = a.as_bytes();
        if b == b"--json" {
            json = true;
        } else if b.len() > 1 && b[0] == b'+' {
            let t = String::from_utf8_lossy(&b[1..]).into_owned();
            check_tag(&t)?;
            add.push(t);
        } else if b.len() > 1 && b[0] == b'-' && b[1] != b'-' {
            let t = String::from_utf8_lossy(&b[1..]).into_owned();
            check_tag(&t)?;
            remove.push(t);
        } else {
            paths.push(a.clone());
        }
    }
    if paths.is_empty() {
        bail!("usage: peros tag PATH... [+TAG] [-TAG]  (no +/- shows the tags)");
    }
    let store = ctx.store(home)?;
    let mut report = Vec::new();
    for p in &paths {
        let sp = tag_path(ctx, p);
        let (ino, node) = store
            .resolve(&sp)
            .with_context(|| format!("{}: no such file in the store", p.to_string_lossy()))?;
        let mut tags = node
            .xattrs
            .get(TAGS_XATTR)
            .map(|v| parse_tags(v))
            .unwrap_or_default();
        let before = tags.clone();
        tags.retain(|t| !remove.iter().any(|r| r.eq_ignore_ascii_case(t)));
        for a in &add {
            if !tags.iter().any(|t| t.eq_ignore_ascii_case(a)) {
                tags.push(a.clone());
            }
        }
        if tags != before {
            if tags.is_empty() {
                store.remove_xattr(ino, TAGS_XATTR)?;
            } else {
                store.set_xattr(ino, TAGS_XATTR, tags.join(",").as_bytes(), false, false)?;
            }
        }
        report.push((String::from_utf8_lossy(&sp).into_owned(), tags));
    }
    if json {
        print_json(
            out,
            &serde_json::Value::Array(
                report
                    .iter()
                    .map(|(p, t)| json!({"path": p, "tags": t}))
                    .collect(),
            ),
        )?;
    } else {
        for (p, t) in &report {
            writeln!(
                out,
                "{p}: {}",
                if t.is_empty() {
                    "(no tags)".into()
                } else {
                    t.join(", ")
                }
            )?;
        }
    }
    Ok(0)
}

//! The journal: every change the agent makes, with its reason, planner and time, and what
//! undo needs (the previous view definition, the previous tags value). JSON lines in
//! `PEROS_HOME/agent/journal.jsonl`, fsynced per line; undos are appended as their own lines,
//! so the file is an append-only history.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A view definition as journaled (peros_views::ViewDef without the dependency on its serde).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ViewSnap {
    pub name: String,
    pub query: String,
    pub limit: usize,
    pub sort: String,
    /// None: the calibrated rule (journals written before it hold a number).
    #[serde(default)]
    pub min_similarity: Option<f32>,
}

impl ViewSnap {
    pub fn of(d: &peros_views::ViewDef) -> Self {
        Self {
            name: d.name.clone(),
            query: d.query.clone(),
            limit: d.limit,
            sort: d.sort.as_str().into(),
            min_similarity: d.min_similarity,
        }
    }
    pub fn to_def(&self) -> peros_views::ViewDef {
        peros_views::ViewDef {
            name: self.name.clone(),
            query: self.query.clone(),
            limit: self.limit,
            sort: self.sort.parse().unwrap_or_default(),
            min_similarity: self.min_similarity,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A view was created (`before` None) or replaced.
    View {
        name: String,
        before: Option<ViewSnap>,
        after: Option<ViewSnap>,
    },
    /// The tags xattr of a file changed (values are the raw comma-separated strings).
    Tags {
        path: String,
        ino: u64,
        before: Option<String>,
        after: Option<String>,
    },
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Entry {
    pub id: u64,
    /// Milliseconds since the epoch.
    pub time: u64,
    /// The run (one `agent run` or scheduled run) this action belongs to.
    pub run: u64,
    pub planner: String,
    /// The tool that made the change (create_view, delete_view, tag, untag).
    pub action: String,
    pub reason: String,
    pub change: Change,
    /// Set on undo lines: the id of the entry undone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undoes: Option<u64>,
}

pub struct Journal {
    path: PathBuf,
}

impl Journal {
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        crate::private_dir(dir)?;
        Ok(Self {
            path: dir.join("journal.jsonl"),
        })
    }

    pub fn entries(&self) -> Vec<Entry> {
        let Ok(f) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        BufReader::new(f)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect()
    }

    pub fn next_id(&self) -> u64 {
        self.entries().iter().map(|e| e.id).max().unwrap_or(0) + 1
    }

    pub fn next_run(&self) -> u64 {
        self.entries().iter().map(|e| e.run).max().unwrap_or(0) + 1
    }

    /// Appends and fsyncs one entry (its id is assigned here).
    pub fn append(&self, mut e: Entry) -> std::io::Result<Entry> {
        e.id = self.next_id();
        let mut line = serde_json::to_vec(&e).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        f.write_all(&line)?;
        f.sync_all()?;
        Ok(e)
    }

    /// Actions (not undo lines) that have not been undone, oldest first.
    pub fn active(&self) -> Vec<Entry> {
        let all = self.entries();
        let undone: std::collections::HashSet<u64> = all.iter().filter_map(|e| e.undoes).collect();
        all.into_iter()
            .filter(|e| e.undoes.is_none() && !undone.contains(&e.id))
            .collect()
    }

    /// Names of views the agent made and still owns: created by an active entry and not
    /// deleted by a later one.
    pub fn own_views(&self) -> std::collections::BTreeMap<String, ViewSnap> {
        let mut own = std::collections::BTreeMap::new();
        for e in self.active() {
            if let Change::View {
                name,
                before,
                after,
            } = &e.change
            {
                match (before, after) {
                    (None, Some(a)) => {
                        own.insert(name.clone(), a.clone());
                    }
                    (_, None) => {
                        own.remove(name);
                    }
                    _ => {}
                }
            }
        }
        own
    }

    /// Tags the agent added to a path and still owns.
    pub fn own_tags(&self, path: &str) -> Vec<String> {
        let mut own: Vec<String> = Vec::new();
        for e in self.active() {
            if let Change::Tags {
                path: p,
                before,
                after,
                ..
            } = &e.change
            {
                if p != path {
                    continue;
                }
                let b = crate::tools::parse_tags(before.as_deref().unwrap_or("").as_bytes());
                let a = crate::tools::parse_tags(after.as_deref().unwrap_or("").as_bytes());
                for t in &a {
                    if !b.contains(t) && !own.contains(t) {
                        own.push(t.clone());
                    }
                }
                own.retain(|t| a.contains(t));
            }
        }
        own
    }
}

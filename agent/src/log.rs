//! The persisted access log: JSON lines in `PEROS_HOME/agent/access.log`, rotated to
//! `access.log.1` when it reaches half of `log_max_mb` (so at most `log_max_mb` on disk).
//!
//! One line per open and per close (the close carries the bytes read through that open:
//! reads are aggregated per open rather than logged one by one). Lines are written by the
//! agent's own thread, never in a FUSE callback; a crash can lose the last second of lines,
//! which only costs the patterns a little history.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Record {
    /// Milliseconds since the epoch.
    pub t: u64,
    /// "open", "close", or "search" (then `path` holds the query and `proc` where it was
    /// made: "@search" in the mount or "peros search").
    pub ev: String,
    pub ino: u64,
    pub path: String,
    /// Process name (/proc/PID/comm) of the opener.
    pub proc: String,
    /// Close: bytes read through this open.
    #[serde(default)]
    pub bytes: u64,
    /// Open: the first chunk was already in the decrypted cache.
    #[serde(default)]
    pub cached: bool,
}

pub struct AccessLog {
    path: PathBuf,
    max_bytes: u64,
    file: Option<(File, u64)>,
}

impl AccessLog {
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<Self> {
        crate::private_dir(dir)?;
        Ok(Self {
            path: dir.join("access.log"),
            max_bytes: max_bytes.max(64 * 1024),
            file: None,
        })
    }

    pub fn append(&mut self, recs: &[Record]) -> std::io::Result<()> {
        if recs.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for r in recs {
            serde_json::to_writer(&mut buf, r).map_err(std::io::Error::other)?;
            buf.push(b'\n');
        }
        if self.file.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            let len = f.metadata()?.len();
            self.file = Some((f, len));
        }
        let (f, len) = self.file.as_mut().expect("opened above");
        f.write_all(&buf)?;
        *len += buf.len() as u64;
        if *len >= self.max_bytes / 2 {
            self.file = None;
            std::fs::rename(&self.path, self.path.with_extension("log.1"))?;
        }
        Ok(())
    }
}

/// A search the user made, as a log record.
pub fn search_record(query: &str, source: &str) -> Record {
    Record {
        t: peros_store::access::now_ms(),
        ev: "search".into(),
        ino: 0,
        path: query.trim().chars().take(500).collect(),
        proc: source.into(),
        bytes: 0,
        cached: false,
    }
}

/// Queries searched at least `min` times (case and spacing ignored), most frequent first,
/// with the count; the spelling used last is kept.
pub fn frequent_searches(records: &[Record], min: usize) -> Vec<(String, usize)> {
    let mut counts: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for r in records.iter().filter(|r| r.ev == "search") {
        let key = r
            .path
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        if key.is_empty() {
            continue;
        }
        let e = counts.entry(key).or_default();
        e.0 += 1;
        e.1 = r.path.trim().to_string();
    }
    let mut v: Vec<(String, usize)> = counts
        .into_values()
        .filter(|(n, _)| *n >= min)
        .map(|(n, q)| (q, n))
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

/// All records on disk, oldest first.
pub fn read_all(dir: &Path) -> Vec<Record> {
    let mut out = Vec::new();
    for name in ["access.log.1", "access.log"] {
        let Ok(f) = File::open(dir.join(name)) else {
            continue;
        };
        for line in BufReader::new(f).lines() {
            let Ok(line) = line else { break };
            if let Ok(r) = serde_json::from_str::<Record>(&line) {
                out.push(r);
            }
        }
    }
    out
}

/// Sessions: runs of opens without a gap longer than this.
pub const SESSION_GAP_MS: u64 = 5 * 60 * 1000;

/// Files that are opened together: for each open, the distinct files among the previous
/// `window` opens (a gap of [`SESSION_GAP_MS`] resets it) count as co-accessed with it,
/// weighted 1/distance. A pair is strong when its weight reaches `min_count` and in at least half the opens of the
/// more often opened of the two (so a file opened everywhere does not glue groups together).
/// Strong pairs are joined into connected groups, largest first, paths sorted.
pub fn co_access_clusters(
    recs: &[Record],
    window: usize,
    min_count: usize,
    keep: &dyn Fn(&str) -> bool,
) -> Vec<Vec<String>> {
    let opens: Vec<&Record> = recs
        .iter()
        .filter(|r| r.ev == "open" && keep(&r.path))
        .collect();
    let mut pair_counts: HashMap<(String, String), f32> = HashMap::new();
    let mut open_counts: HashMap<&str, usize> = HashMap::new();
    let mut last_t = 0u64;
    let mut recent: Vec<&str> = Vec::new();
    for r in &opens {
        if r.t.saturating_sub(last_t) > SESSION_GAP_MS {
            recent.clear();
        }
        last_t = r.t;
        if recent.last() == Some(&r.path.as_str()) {
            continue; // re-open of the same file
        }
        *open_counts.entry(&r.path).or_default() += 1;
        let mut seen: Vec<&str> = Vec::new();
        for (d, &p) in recent.iter().rev().take(window).enumerate() {
            if p != r.path && !seen.contains(&p) {
                seen.push(p);
                let key = if p < r.path.as_str() {
                    (p.to_string(), r.path.clone())
                } else {
                    (r.path.clone(), p.to_string())
                };
                *pair_counts.entry(key).or_default() += 1.0 / (d + 1) as f32;
            }
        }
        recent.push(&r.path);
        if recent.len() > window {
            recent.remove(0);
        }
    }
    let mut parent: BTreeMap<String, String> = BTreeMap::new();
    fn find(parent: &mut BTreeMap<String, String>, x: &str) -> String {
        let mut cur = x.to_string();
        while let Some(p) = parent.get(&cur) {
            if *p == cur {
                break;
            }
            cur = p.clone();
        }
        cur
    }
    let mut strong: Vec<&(String, String)> = pair_counts
        .iter()
        .filter(|((a, b), n)| {
            let most = open_counts[a.as_str()].max(open_counts[b.as_str()]);
            **n >= min_count as f32 && **n * 2.0 >= most as f32
        })
        .map(|(k, _)| k)
        .collect();
    strong.sort();
    for (a, b) in strong {
        parent.entry(a.clone()).or_insert_with(|| a.clone());
        parent.entry(b.clone()).or_insert_with(|| b.clone());
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        if ra != rb {
            parent.insert(ra, rb);
        }
    }
    let keys: Vec<String> = parent.keys().cloned().collect();
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for k in keys {
        let root = find(&mut parent, &k);
        groups.entry(root).or_default().push(k);
    }
    let mut v: Vec<Vec<String>> = groups.into_values().filter(|g| g.len() >= 2).collect();
    for g in &mut v {
        g.sort();
    }
    v.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(t: u64, path: &str) -> Record {
        Record {
            t,
            ev: "open".into(),
            ino: 0,
            path: path.into(),
            proc: "cat".into(),
            bytes: 0,
            cached: false,
        }
    }

    #[test]
    fn clusters_need_repeats() {
        let mut recs = Vec::new();
        let mut t = 0;
        for s in 0..3 {
            t += SESSION_GAP_MS + 1;
            for p in ["/p/a", "/p/b", "/p/c"] {
                t += 1000;
                recs.push(open(t, p));
            }
            t += 1000;
            recs.push(open(t, &format!("/noise/{s}")));
        }
        let c = co_access_clusters(&recs, 3, 2, &|_| true);
        assert_eq!(c, vec![vec!["/p/a", "/p/b", "/p/c"]]);
        let c = co_access_clusters(&recs, 3, 2, &|p| p != "/p/b");
        assert_eq!(c, vec![vec!["/p/a", "/p/c"]]);
    }

    #[test]
    fn log_rotates_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AccessLog::open(dir.path(), 64 * 1024).unwrap();
        for i in 0..2000 {
            log.append(&[open(i, "/some/longer/path/name.txt")])
                .unwrap();
        }
        let all = read_all(dir.path());
        assert!(all.len() < 2000 && all.len() > 300, "{}", all.len());
        assert_eq!(all.last().unwrap().t, 1999);
        let total: u64 = ["access.log", "access.log.1"]
            .iter()
            .map(|n| {
                std::fs::metadata(dir.path().join(n))
                    .map(|m| m.len())
                    .unwrap_or(0)
            })
            .sum();
        assert!(total <= 64 * 1024 + 100, "{total}");
    }
}

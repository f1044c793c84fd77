//! `fsck`: the invariants of the namespace, the layouts and the objects they reference.

use std::collections::{BTreeMap, HashMap, HashSet};

use peros_crypto::ObjectName;
use redb::{ReadableDatabase, ReadableTable};

use crate::meta::{ChunkLayout, Ino, Inode, Kind, VersionRecord, CHUNK_SIZE, ROOT_INO};
use crate::{
    object_key, show, FsckReport, Problem, Result, Store, CHUNK_PREFIX, DIRENTS, INODES, LAYOUT,
    ORPHANS, VERSIONS,
};

impl Store {
    /// Checks the invariants: entries lead to inodes, link counts match, every referenced
    /// chunk exists and decrypts to its name (unless `quick`, which checks existence only).
    pub fn fsck(&self, quick: bool, progress: &dyn Fn(u64, u64)) -> Result<FsckReport> {
        let mut report = FsckReport::default();
        let txn = self.db.begin_read()?;
        let mut inodes: HashMap<Ino, Inode> = HashMap::new();
        for item in txn.open_table(INODES)?.iter()? {
            let (k, v) = item?;
            match postcard::from_bytes::<Inode>(v.value()) {
                Ok(n) => {
                    inodes.insert(k.value(), n);
                }
                Err(e) => report.problems.push(Problem {
                    kind: "bad-inode".into(),
                    path: format!("inode {}", k.value()),
                    detail: e.to_string(),
                }),
            }
        }
        report.inodes = inodes.len() as u64;
        let orphans: HashSet<Ino> = txn
            .open_table(ORPHANS)?
            .iter()?
            .filter_map(|i| i.ok().map(|(k, _)| k.value()))
            .collect();
        let mut links: HashMap<Ino, u32> = HashMap::new();
        let mut subdirs: HashMap<Ino, u32> = HashMap::new();
        for item in txn.open_table(DIRENTS)?.iter()? {
            let (k, v) = item?;
            let (parent, name) = k.value();
            let ino = v.value();
            match inodes.get(&ino) {
                None => report.problems.push(Problem {
                    kind: "dangling-entry".into(),
                    path: format!("inode {parent}/{}", show(name)),
                    detail: format!("entry leads to missing inode {ino}"),
                }),
                Some(n) => {
                    *links.entry(ino).or_default() += 1;
                    if n.kind == Kind::Dir {
                        *subdirs.entry(parent).or_default() += 1;
                    }
                }
            }
            if !inodes.get(&parent).is_some_and(|p| p.kind == Kind::Dir) {
                report.problems.push(Problem {
                    kind: "orphan-entry".into(),
                    path: format!("inode {parent}/{}", show(name)),
                    detail: "parent is missing or not a directory".into(),
                });
            }
        }
        drop(txn);
        let path_of = |ino: Ino| self.path_of(ino).map(|p| show(&p)).unwrap_or_default();
        for (ino, node) in &inodes {
            if *ino == ROOT_INO || orphans.contains(ino) {
                continue;
            }
            let n = links.get(ino).copied().unwrap_or(0);
            if n == 0 {
                report.problems.push(Problem {
                    kind: "unreachable-inode".into(),
                    path: format!("inode {ino} ({})", show(&node.name)),
                    detail: "no directory entry leads to it".into(),
                });
            } else if node.kind != Kind::Dir && n != node.nlink {
                report.problems.push(Problem {
                    kind: "link-count".into(),
                    path: path_of(*ino),
                    detail: format!("nlink is {} but {n} entries lead to it", node.nlink),
                });
            }
        }
        enum User {
            Inode(Ino),
            Version(String),
        }
        // Layout rows: each belongs to a file and lies inside its size.
        let mut users: BTreeMap<[u8; 32], Vec<(User, u64)>> = BTreeMap::new();
        // Per object, the plaintext length its pieces need (checked when it is decrypted).
        let mut need: HashMap<[u8; 32], u64> = HashMap::new();
        for item in self.db.begin_read()?.open_table(LAYOUT)?.iter()? {
            let (k, v) = item?;
            let (ino, idx) = k.value();
            let layout: ChunkLayout = match postcard::from_bytes(v.value()) {
                Ok(l) => l,
                Err(e) => {
                    report.problems.push(Problem {
                        kind: "bad-layout".into(),
                        path: format!("inode {ino} chunk {idx}"),
                        detail: e.to_string(),
                    });
                    continue;
                }
            };
            match inodes.get(&ino) {
                Some(n) if n.kind == Kind::File => {
                    let end = idx.saturating_mul(CHUNK_SIZE as u64) + layout.end() as u64;
                    if end > n.size || layout.end() as usize > CHUNK_SIZE {
                        report.problems.push(Problem {
                            kind: "layout-past-end".into(),
                            path: path_of(ino),
                            detail: format!(
                                "chunk {idx} holds data up to byte {end} of a {}-byte file",
                                n.size
                            ),
                        });
                    }
                }
                _ => report.problems.push(Problem {
                    kind: "orphan-layout".into(),
                    path: format!("inode {ino} chunk {idx}"),
                    detail: "layout of a missing inode or a non-file".into(),
                }),
            }
            for s in &layout.slices {
                users
                    .entry(s.object)
                    .or_default()
                    .push((User::Inode(ino), idx));
                if let Some(n) = s.pieces.iter().map(|p| p.at as u64 + p.len as u64).max() {
                    let e = need.entry(s.object).or_default();
                    *e = (*e).max(n);
                }
            }
        }
        // Chunks: existence from one listing, content by decrypting each referenced object once.
        let present: HashMap<String, u64> = self.backend.list(CHUNK_PREFIX)?.into_iter().collect();
        // Every user of each chunk, so a damaged shared chunk names every file that holds it.
        // Chunks only old versions reference are checked too (named "PATH (version N)").
        let mut version_users: BTreeMap<[u8; 32], Vec<(User, u64)>> = BTreeMap::new();
        for item in self.db.begin_read()?.open_table(VERSIONS)?.iter()? {
            let (k, v) = item?;
            let rec: VersionRecord = postcard::from_bytes(v.value())?;
            for (i, c) in rec
                .layout
                .iter()
                .flat_map(|(i, l)| l.objects().map(move |o| (*i, *o)))
            {
                if !users.contains_key(&c) {
                    let label = format!("{} (version {})", show(k.value().0), k.value().1);
                    let list = version_users.entry(c).or_default();
                    if !list
                        .iter()
                        .any(|(l, _)| matches!(l, User::Version(l) if *l == label))
                    {
                        list.push((User::Version(label), i));
                    }
                }
            }
        }
        // Inode users become paths (hard links: one path per inode).
        let mut resolved: HashMap<Ino, String> = HashMap::new();
        let mut label = |user: &User| -> String {
            match user {
                User::Inode(ino) => resolved
                    .entry(*ino)
                    .or_insert_with(|| path_of(*ino))
                    .clone(),
                User::Version(l) => l.clone(),
            }
        };
        let total = (users.len() + version_users.len()) as u64;
        for (done, (name, list)) in users.into_iter().chain(version_users).enumerate() {
            let on = ObjectName(name);
            let key = object_key(&on);
            report.chunks_checked += 1;
            progress(done as u64 + 1, total);
            let verdict = if !present.contains_key(&key) {
                Err(("missing-chunk", format!("object {key} is missing")))
            } else if quick {
                Ok(())
            } else {
                self.backend
                    .get(&key)
                    .map_err(|e| e.to_string())
                    .and_then(|b| self.keyring.open(&b, &on).map_err(|e| e.to_string()))
                    .and_then(|plain| match need.get(&name) {
                        Some(n) if *n > plain.len() as u64 => Err(format!(
                            "pieces want {n} bytes of an object of {} bytes",
                            plain.len()
                        )),
                        _ => Ok(()),
                    })
                    .map_err(|detail| ("damaged-chunk", format!("object {key}: {detail}")))
            };
            if let Err((kind, detail)) = verdict {
                self.cache.remove(&on);
                for (user, idx) in &list {
                    report.problems.push(Problem {
                        kind: kind.into(),
                        path: label(user),
                        detail: format!("chunk {idx}: {detail}"),
                    });
                }
            }
        }
        Ok(report)
    }
}

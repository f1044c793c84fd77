//! Answers for virtual inodes (query directories and their entries): attributes, lookups,
//! listings, links and xattrs. Translation only: what a view contains is decided elsewhere.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{Errno, FileAttr, FileType, INodeNo};
use peros_store::ROOT_INO;

use crate::virt::{is_virtual, Listing, ListingEntry, QueryDirError, VNode, SEARCH_INO, VIEWS_INO};
use crate::PerosFs;

pub(crate) fn qerr(e: &QueryDirError) -> Errno {
    match e {
        QueryDirError::Config(_) => tracing::error!("views: {e}"),
        _ => tracing::info!("views: {e}"),
    }
    Errno::from_i32(e.errno())
}

/// Names under `@search` starting with a dot are not queries: file managers probe for
/// `.hidden`, `.directory`, `.Trash-1000`… in every directory they open.
fn is_probe(name: &[u8]) -> bool {
    name.first() == Some(&b'.') || name == b"autorun.inf" || name == b"desktop.ini"
}

fn utf8(name: &[u8]) -> Result<&str, Errno> {
    std::str::from_utf8(name).map_err(|_| Errno::EINVAL)
}

impl PerosFs {
    /// Virtual nodes belong to the owner of the mount's root (cached: asked per entry).
    fn owner(&self) -> (u32, u32) {
        let packed = self.root_owner.load(std::sync::atomic::Ordering::Relaxed);
        if packed != u64::MAX {
            return ((packed >> 32) as u32, packed as u32);
        }
        let (uid, gid) = self
            .store
            .getattr(ROOT_INO)
            .map(|n| (n.uid, n.gid))
            .unwrap_or((0, 0));
        self.root_owner.store(
            ((uid as u64) << 32) | gid as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        (uid, gid)
    }

    fn dir_attr(&self, ino: u64, perm: u16, mtime: SystemTime) -> FileAttr {
        let (uid, gid) = self.owner();
        FileAttr {
            ino: INodeNo(ino),
            size: 0,
            blocks: 0,
            atime: mtime,
            mtime,
            ctime: mtime,
            crtime: mtime,
            kind: FileType::Directory,
            perm,
            nlink: 2,
            uid,
            gid,
            rdev: 0,
            blksize: 1 << 20,
            flags: 0,
        }
    }

    fn entry_attr(&self, ino: u64, e: &ListingEntry, owner: (u32, u32)) -> FileAttr {
        let mtime = UNIX_EPOCH + Duration::from_secs(e.mtime.max(0) as u64);
        FileAttr {
            ino: INodeNo(ino),
            size: e.target.len() as u64,
            blocks: 0,
            atime: mtime,
            mtime,
            ctime: mtime,
            crtime: mtime,
            kind: FileType::Symlink,
            perm: 0o777,
            nlink: 1,
            uid: owner.0,
            gid: owner.1,
            rdev: 0,
            blksize: 1 << 20,
            flags: 0,
        }
    }

    /// The reserved root entry `name` stands for, if any.
    pub(crate) fn reserved(&self, parent: u64, name: &[u8]) -> Option<VNode> {
        let q = self.query_dirs.get()?;
        if parent != ROOT_INO {
            return None;
        }
        if name == q.views_name.as_slice() {
            Some(VNode::ViewsRoot)
        } else if name == q.search_name.as_slice() {
            Some(VNode::SearchRoot)
        } else {
            None
        }
    }

    fn listing_of(&self, node: &VNode) -> Result<Arc<Listing>, Errno> {
        let q = self.query_dirs.get().ok_or(Errno::ENOENT)?;
        match node {
            VNode::View(name) => match q.dirs.view(name) {
                Some(l) => Ok(l),
                // A folder of nested views that is no view itself: no entries of its own.
                None if self.is_view_group(name) => Ok(Arc::new(Listing {
                    changed: Some(q.dirs.views_changed()),
                    ..Listing::default()
                })),
                None => Err(Errno::ENOENT),
            },
            VNode::Search(text) => q.dirs.search(text).map_err(|e| qerr(&e)),
            _ => Err(Errno::ENOTDIR),
        }
    }

    /// Whether `prefix` is a folder holding nested views (`prefix/…`).
    fn is_view_group(&self, prefix: &str) -> bool {
        let Some(q) = self.query_dirs.get() else {
            return false;
        };
        let want = format!("{prefix}/");
        q.dirs.view_names().iter().any(|n| n.starts_with(&want))
    }

    /// The folders of nested views directly inside view folder `prefix`, as entries.
    fn view_dirs(&self, prefix: &str) -> Vec<(Vec<u8>, FileAttr)> {
        let Some(q) = self.query_dirs.get() else {
            return Vec::new();
        };
        let changed = q.dirs.views_changed();
        crate::virt::view_children(&q.dirs.view_names(), prefix)
            .into_iter()
            .filter_map(|(n, is_view, _)| {
                let full = if prefix.is_empty() {
                    n.clone()
                } else {
                    format!("{prefix}/{n}")
                };
                let t = match q.dirs.view(&full) {
                    Some(l) => l.changed.unwrap_or(changed),
                    None if !is_view => changed,
                    None => return None,
                };
                let ino = self.vinodes.ino(VNode::View(full), b"");
                Some((n.into_bytes(), self.dir_attr(ino, 0o555, t)))
            })
            .collect()
    }

    pub(crate) fn vattr(&self, ino: u64) -> Result<FileAttr, Errno> {
        let node = self.vinodes.node(ino).ok_or(Errno::ENOENT)?;
        let q = self.query_dirs.get().ok_or(Errno::ENOENT)?;
        match &node {
            VNode::ViewsRoot => Ok(self.dir_attr(ino, 0o755, q.dirs.views_changed())),
            VNode::SearchRoot => Ok(self.dir_attr(ino, 0o555, q.dirs.views_changed())),
            VNode::View(_) | VNode::Search(_) => {
                let l = self.listing_of(&node)?;
                Ok(self.dir_attr(ino, 0o555, l.changed.unwrap_or(UNIX_EPOCH)))
            }
            VNode::Entry { .. } => {
                let e = self.ventry(ino)?;
                Ok(self.entry_attr(ino, &e, self.owner()))
            }
        }
    }

    /// The listing entry behind an entry inode (ENOENT once it left its view).
    pub(crate) fn ventry(&self, ino: u64) -> Result<ListingEntry, Errno> {
        let Some(VNode::Entry { dir, name }) = self.vinodes.node(ino) else {
            return Err(Errno::EINVAL);
        };
        let dir_node = self.vinodes.node(dir).ok_or(Errno::ENOENT)?;
        let l = self.listing_of(&dir_node)?;
        l.get(&name).cloned().ok_or(Errno::ENOENT)
    }

    /// Lookup when it concerns a virtual node; None = an ordinary stored entry.
    pub(crate) fn virtual_lookup(
        &self,
        parent: u64,
        name: &[u8],
    ) -> Option<Result<FileAttr, Errno>> {
        if let Some(node) = self.reserved(parent, name) {
            let ino = self.vinodes.ino(node, b"");
            return Some(self.vattr(ino));
        }
        if !is_virtual(parent) {
            return None;
        }
        Some(self.lookup_in_virtual(parent, name))
    }

    fn lookup_in_virtual(&self, parent: u64, name: &[u8]) -> Result<FileAttr, Errno> {
        let q = self.query_dirs.get().ok_or(Errno::ENOENT)?;
        match self.vinodes.node(parent).ok_or(Errno::ENOENT)? {
            VNode::ViewsRoot => {
                let name = utf8(name).map_err(|_| Errno::ENOENT)?;
                let node = VNode::View(name.to_string());
                let l = self.listing_of(&node)?;
                let ino = self.vinodes.ino(node, b"");
                Ok(self.dir_attr(ino, 0o555, l.changed.unwrap_or(UNIX_EPOCH)))
            }
            VNode::View(prefix)
                if !name.contains(&b'/') && {
                    let n = String::from_utf8_lossy(name);
                    self.is_view_group(&format!("{prefix}/{n}"))
                        || q.dirs.view(&format!("{prefix}/{n}")).is_some()
                } =>
            {
                let full = format!("{prefix}/{}", utf8(name).map_err(|_| Errno::ENOENT)?);
                let node = VNode::View(full);
                let l = self.listing_of(&node)?;
                let ino = self.vinodes.ino(node, b"");
                Ok(self.dir_attr(ino, 0o555, l.changed.unwrap_or(UNIX_EPOCH)))
            }
            VNode::SearchRoot => {
                if is_probe(name) {
                    return Err(Errno::ENOENT);
                }
                let text = utf8(name).map_err(|_| Errno::ENOENT)?;
                let l = q.dirs.search(text).map_err(|e| qerr(&e))?;
                let ino = self.vinodes.ino(VNode::Search(text.to_string()), b"");
                Ok(self.dir_attr(ino, 0o555, l.changed.unwrap_or(UNIX_EPOCH)))
            }
            dir @ (VNode::View(_) | VNode::Search(_)) => {
                let l = self.listing_of(&dir)?;
                let e = l.get(name).ok_or(Errno::ENOENT)?;
                let ino = self.vinodes.ino(
                    VNode::Entry {
                        dir: parent,
                        name: name.to_vec(),
                    },
                    &e.target,
                );
                Ok(self.entry_attr(ino, e, self.owner()))
            }
            VNode::Entry { .. } => Err(Errno::ENOTDIR),
        }
    }

    /// Parent inode of a virtual directory.
    pub(crate) fn vparent(&self, ino: u64) -> u64 {
        match self.vinodes.node(ino) {
            Some(VNode::View(name)) => match name.rsplit_once('/') {
                Some((parent, _)) => self.vinodes.ino(VNode::View(parent.to_string()), b""),
                None => VIEWS_INO,
            },
            Some(VNode::Search(_)) => SEARCH_INO,
            _ => ROOT_INO,
        }
    }

    /// Entries of a virtual directory, or the reserved entries to add to the root.
    pub(crate) fn virtual_entries(&self, ino: u64) -> Result<Vec<(Vec<u8>, FileAttr)>, Errno> {
        let Some(q) = self.query_dirs.get() else {
            return Ok(Vec::new());
        };
        if ino == ROOT_INO {
            return Ok(vec![
                (q.views_name.clone(), self.vattr(VIEWS_INO)?),
                (q.search_name.clone(), self.vattr(SEARCH_INO)?),
            ]);
        }
        if !is_virtual(ino) {
            return Ok(Vec::new());
        }
        let node = self.vinodes.node(ino).ok_or(Errno::ENOENT)?;
        match &node {
            VNode::ViewsRoot => Ok(self.view_dirs("")),
            VNode::SearchRoot => Ok(q
                .dirs
                .recent_searches()
                .into_iter()
                .map(|t| {
                    let ino = self.vinodes.ino(VNode::Search(t.clone()), b"");
                    (
                        t.into_bytes(),
                        self.dir_attr(ino, 0o555, q.dirs.views_changed()),
                    )
                })
                .collect()),
            VNode::View(_) | VNode::Search(_) => {
                let l = self.listing_of(&node)?;
                let owner = self.owner();
                let mut dirs = match &node {
                    VNode::View(prefix) => self.view_dirs(prefix),
                    _ => Vec::new(),
                };
                let mut out: Vec<(Vec<u8>, FileAttr)> = l
                    .entries
                    .iter()
                    .map(|e| {
                        let eino = self.vinodes.ino(
                            VNode::Entry {
                                dir: ino,
                                name: e.name.clone(),
                            },
                            &e.target,
                        );
                        (e.name.clone(), self.entry_attr(eino, e, owner))
                    })
                    .collect();
                // A nested view's folder wins over an entry of the same name (lookup agrees).
                out.retain(|(n, _)| !dirs.iter().any(|(d, _)| d == n));
                dirs.append(&mut out);
                Ok(dirs)
            }
            VNode::Entry { .. } => Err(Errno::ENOTDIR),
        }
    }

    /// `rm @views/VIEW/NAME`: the views service decides (a tag view untags the file).
    pub(crate) fn vunlink(&self, parent: u64, name: &[u8]) -> Result<(), Errno> {
        let q = self.query_dirs.get().ok_or(Errno::ENOENT)?;
        match self.vinodes.node(parent).ok_or(Errno::ENOENT)? {
            VNode::View(view) => q.dirs.remove_entry(&view, name).map_err(|e| qerr(&e)),
            _ => Err(Errno::EACCES),
        }
    }

    /// `mkdir` under `@views`.
    pub(crate) fn vmkdir(&self, parent: u64, name: &[u8]) -> Result<FileAttr, Errno> {
        let q = self.query_dirs.get().ok_or(Errno::ENOENT)?;
        if parent != VIEWS_INO {
            return Err(Errno::EACCES);
        }
        let name = utf8(name)?;
        q.dirs.create_view(name).map_err(|e| qerr(&e))?;
        self.lookup_in_virtual(parent, name.as_bytes())
    }

    pub(crate) fn vrmdir(&self, parent: u64, name: &[u8]) -> Result<(), Errno> {
        let q = self.query_dirs.get().ok_or(Errno::ENOENT)?;
        let name = utf8(name).map_err(|_| Errno::ENOENT)?;
        match parent {
            VIEWS_INO => q.dirs.remove_view(name).map_err(|e| qerr(&e)),
            _ => match self.vinodes.node(parent) {
                // `rmdir @views/a/b`: the nested view a/b.
                Some(VNode::View(prefix)) => q
                    .dirs
                    .remove_view(&format!("{prefix}/{name}"))
                    .map_err(|e| qerr(&e)),
                _ => Err(Errno::EACCES),
            },
        }
    }

    pub(crate) fn vrename(
        &self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
    ) -> Result<(), Errno> {
        let q = self.query_dirs.get().ok_or(Errno::ENOENT)?;
        if parent == VIEWS_INO && newparent == VIEWS_INO {
            let from = utf8(name).map_err(|_| Errno::ENOENT)?;
            return q
                .dirs
                .rename_view(from, utf8(newname)?)
                .map_err(|e| qerr(&e));
        }
        if is_virtual(parent) != is_virtual(newparent) {
            // Moving between stored and query directories: let `mv` fall back to copying,
            // which the read-only query directories then refuse with a clear EACCES.
            return Err(Errno::EXDEV);
        }
        Err(Errno::EACCES)
    }

    /// xattrs of virtual nodes: the query and mode on directories; each entry's score as
    /// `user.peros.score.<name>` on its directory, because Linux allows `user.*` attributes
    /// only on regular files and directories, never on symlinks.
    pub(crate) fn vxattr(&self, ino: u64, name: &[u8]) -> Result<Vec<u8>, Errno> {
        let no_attr = Errno::from_i32(libc::ENODATA);
        // `ls -l` asks every entry for security.selinux: answer without any lookup.
        if !name.starts_with(b"user.peros.") {
            return Err(no_attr);
        }
        let node = self.vinodes.node(ino).ok_or(Errno::ENOENT)?;
        match &node {
            VNode::View(_) | VNode::Search(_) => {
                let l = self.listing_of(&node)?;
                match name {
                    b"user.peros.query" => Ok(l.query.clone().into_bytes()),
                    b"user.peros.mode" => Ok(l.mode.clone().into_bytes()),
                    b"user.peros.note" => l.note.clone().map(String::into_bytes).ok_or(no_attr),
                    b"user.peros.count" => Ok(l.entries.len().to_string().into_bytes()),
                    _ => match name.strip_prefix(b"user.peros.score.") {
                        Some(entry) => l
                            .get(entry)
                            .map(|e| format!("{:.4}", e.score).into_bytes())
                            .ok_or(no_attr),
                        None => Err(no_attr),
                    },
                }
            }
            VNode::Entry { .. } => {
                let e = self.ventry(ino)?;
                match name {
                    b"user.peros.score" => Ok(format!("{:.4}", e.score).into_bytes()),
                    _ => Err(no_attr),
                }
            }
            _ => Err(no_attr),
        }
    }

    pub(crate) fn vxattr_names(&self, ino: u64) -> Result<Vec<u8>, Errno> {
        let node = self.vinodes.node(ino).ok_or(Errno::ENOENT)?;
        let mut out = Vec::new();
        match &node {
            VNode::View(_) | VNode::Search(_) => {
                let l = self.listing_of(&node)?;
                let mut names: Vec<Vec<u8>> = vec![
                    b"user.peros.query".to_vec(),
                    b"user.peros.mode".to_vec(),
                    b"user.peros.count".to_vec(),
                ];
                if l.note.is_some() {
                    names.push(b"user.peros.note".to_vec());
                }
                // The per-entry scores are listed while the list stays under the kernel's
                // 64 KiB limit for listxattr; they can always be read by name.
                let per_entry: usize = l.entries.iter().map(|e| e.name.len() + 18).sum();
                if per_entry < 48 << 10 {
                    for e in &l.entries {
                        let mut n = b"user.peros.score.".to_vec();
                        n.extend_from_slice(&e.name);
                        names.push(n);
                    }
                }
                for n in names {
                    out.extend_from_slice(&n);
                    out.push(0);
                }
            }
            VNode::Entry { .. } => out.extend_from_slice(b"user.peros.score\0"),
            _ => {}
        }
        Ok(out)
    }

    pub(crate) fn vreadlink(&self, ino: u64) -> Result<Vec<u8>, Errno> {
        Ok(self.ventry(ino)?.target)
    }
}

//! Query directories: the seam between the file system and whoever evaluates queries.
//!
//! The mount shows two reserved entries at its root (by default `@views` and `@search`).
//! Their contents are not stored: a [`QueryDirs`] implementation (the `peros-views` crate)
//! supplies ready-made listings, and this module only hands out inode numbers for them and
//! answers the kernel. Every call here must be cheap: listings are precomputed in the
//! background; `search` may run a quick text-only query and refine it later.

use std::collections::HashMap;

use parking_lot::Mutex;

pub use peros_store::querydirs::{Listing, ListingEntry, QueryDirError, QueryDirs};

/// Nested views: `a/b` shows as folder `b` inside folder `a` of `@views`. The names of the
/// entries directly inside folder `prefix` ("" = `@views` itself): (name, whether it is a
/// view, whether it holds nested views), sorted.
pub fn view_children(names: &[String], prefix: &str) -> Vec<(String, bool, bool)> {
    let mut out: std::collections::BTreeMap<String, (bool, bool)> = Default::default();
    for n in names {
        let rest = if prefix.is_empty() {
            n.as_str()
        } else {
            match n.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) {
                Some(r) => r,
                None => continue,
            }
        };
        match rest.split_once('/') {
            None => out.entry(rest.to_string()).or_default().0 = true,
            Some((head, _)) => out.entry(head.to_string()).or_default().1 = true,
        }
    }
    out.into_iter().map(|(k, (v, g))| (k, v, g)).collect()
}

/// Inode numbers of virtual nodes have this bit set; store inodes never reach it.
pub const VIRTUAL_BIT: u64 = 1 << 62;
pub const VIEWS_INO: u64 = VIRTUAL_BIT | 1;
pub const SEARCH_INO: u64 = VIRTUAL_BIT | 2;

pub fn is_virtual(ino: u64) -> bool {
    ino & VIRTUAL_BIT != 0
}

/// What a virtual inode stands for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum VNode {
    ViewsRoot,
    SearchRoot,
    View(String),
    Search(String),
    /// An entry of a view or search directory: its directory's inode and its name.
    Entry {
        dir: u64,
        name: Vec<u8>,
    },
}

/// Stable inode numbers for virtual nodes while the mount runs. An entry keeps its number as
/// long as its name and target stay the same; a changed target gets a new number, so the
/// kernel's cached symlink (FUSE_CACHE_SYMLINKS) can never point to the old place.
#[derive(Default)]
pub struct VInodes {
    inner: Mutex<VInodeMaps>,
}

#[derive(Default)]
struct VInodeMaps {
    by_node: HashMap<(VNode, Vec<u8>), u64>,
    by_ino: HashMap<u64, VNode>,
    next: u64,
}

/// Numbers handed out before the maps are reset (bounds memory with many searches).
const MAX_VIRTUAL_INODES: usize = 2_000_000;

impl VInodes {
    /// The inode for `node`; `target` distinguishes entries whose link changed.
    pub fn ino(&self, node: VNode, target: &[u8]) -> u64 {
        match node {
            VNode::ViewsRoot => return VIEWS_INO,
            VNode::SearchRoot => return SEARCH_INO,
            _ => {}
        }
        let mut m = self.inner.lock();
        let key = (node, target.to_vec());
        if let Some(&i) = m.by_node.get(&key) {
            return i;
        }
        if m.by_node.len() >= MAX_VIRTUAL_INODES {
            // Old numbers become stale (ENOENT); directories are re-looked-up by name.
            m.by_node.clear();
            m.by_ino.clear();
        }
        m.next += 1;
        let ino = VIRTUAL_BIT | (m.next + 16);
        m.by_ino.insert(ino, key.0.clone());
        m.by_node.insert(key, ino);
        ino
    }

    pub fn node(&self, ino: u64) -> Option<VNode> {
        match ino {
            VIEWS_INO => Some(VNode::ViewsRoot),
            SEARCH_INO => Some(VNode::SearchRoot),
            _ => self.inner.lock().by_ino.get(&ino).cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::view_children;

    /// `topics/cooking` shows as folder `cooking` in folder `topics`; a name that is both a
    /// view and a folder of nested views is both.
    #[test]
    fn nested_view_names_make_folders() {
        let names: Vec<String> = ["a", "topics", "topics/cooking", "topics/tax/2024", "zz"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let top = view_children(&names, "");
        assert_eq!(
            top,
            vec![
                ("a".into(), true, false),
                ("topics".into(), true, true),
                ("zz".into(), true, false)
            ]
        );
        let inner = view_children(&names, "topics");
        assert_eq!(
            inner,
            vec![("cooking".into(), true, false), ("tax".into(), false, true)]
        );
        assert_eq!(
            view_children(&names, "topics/tax"),
            vec![("2024".into(), true, false)]
        );
        assert!(view_children(&names, "top").is_empty());
    }
}

//! Conversion of stores made before format 2, whose inodes held their whole chunk list inline
//! (one entry per 4 MiB, holes included) and whose versions did too. Each chunk becomes a
//! one-slice layout row; holes become no row at all. Objects are untouched: a chunk object of
//! the old format is a slice object of the new one.

use std::collections::BTreeMap;

use redb::ReadableTable;
use serde::Deserialize;

use crate::meta::{ChunkLayout, Ino, Inode, Kind, Time, VersionRecord};
use crate::{Result, Tx, INODES, VERSIONS};

#[derive(Deserialize, Clone, Copy)]
#[cfg_attr(test, derive(serde::Serialize))]
struct ChunkRefV1 {
    name: Option<[u8; 32]>,
    len: u32,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct InodeV1 {
    kind: Kind,
    perm: u16,
    uid: u32,
    gid: u32,
    nlink: u32,
    size: u64,
    atime: Time,
    mtime: Time,
    ctime: Time,
    crtime: Time,
    rdev: u32,
    chunks: Vec<ChunkRefV1>,
    target: Vec<u8>,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    parent: Ino,
    name: Vec<u8>,
}

#[derive(Deserialize)]
struct VersionRecordV1 {
    recorded: Time,
    size: u64,
    perm: u16,
    mtime: Time,
    chunks: Vec<ChunkRefV1>,
    deleted: bool,
}

fn layouts(chunks: &[ChunkRefV1]) -> Vec<(u64, ChunkLayout)> {
    chunks
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.name.map(|n| (i as u64, ChunkLayout::whole(n, c.len))))
        .collect()
}

/// Converts every inode and version record of the old format; returns how many inodes.
/// An empty (new) database converts nothing.
pub(crate) fn inline_chunks_to_layouts(tx: &Tx) -> Result<u64> {
    let old: Vec<(u64, InodeV1)> = {
        let t = tx.txn.open_table(INODES)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            out.push((k.value(), postcard::from_bytes(v.value())?));
        }
        out
    };
    let count = old.len() as u64;
    for (ino, n) in old {
        let rows = layouts(&n.chunks);
        let stored = rows.iter().map(|(_, l)| l.covered()).sum();
        for (idx, l) in &rows {
            tx.put_layout(ino, *idx, l)?;
        }
        let node = Inode {
            kind: n.kind,
            perm: n.perm,
            uid: n.uid,
            gid: n.gid,
            nlink: n.nlink,
            size: n.size,
            atime: n.atime,
            mtime: n.mtime,
            ctime: n.ctime,
            crtime: n.crtime,
            rdev: n.rdev,
            stored,
            target: n.target,
            xattrs: n.xattrs,
            parent: n.parent,
            name: n.name,
        };
        tx.txn
            .open_table(INODES)?
            .insert(ino, postcard::to_allocvec(&node)?.as_slice())?;
    }
    let versions: Vec<((Vec<u8>, u64), VersionRecordV1)> = {
        let t = tx.txn.open_table(VERSIONS)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            let (p, n) = k.value();
            out.push(((p.to_vec(), n), postcard::from_bytes(v.value())?));
        }
        out
    };
    let mut t = tx.txn.open_table(VERSIONS)?;
    for ((path, n), r) in versions {
        let rec = VersionRecord {
            recorded: r.recorded,
            size: r.size,
            perm: r.perm,
            mtime: r.mtime,
            layout: layouts(&r.chunks),
            deleted: r.deleted,
        };
        t.insert(
            (path.as_slice(), n),
            postcard::to_allocvec(&rec)?.as_slice(),
        )?;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_records_decode_and_holes_vanish() {
        let old = InodeV1 {
            kind: Kind::File,
            perm: 0o644,
            uid: 1,
            gid: 2,
            nlink: 1,
            size: 3 * 4 * 1024 * 1024,
            atime: Time::default(),
            mtime: Time::default(),
            ctime: Time::default(),
            crtime: Time::default(),
            rdev: 0,
            chunks: vec![
                ChunkRefV1 {
                    name: Some([7; 32]),
                    len: 4 << 20,
                },
                ChunkRefV1 {
                    name: None,
                    len: 4 << 20,
                },
                ChunkRefV1 {
                    name: Some([8; 32]),
                    len: 4 << 20,
                },
            ],
            target: vec![],
            xattrs: BTreeMap::new(),
            parent: 1,
            name: b"f".to_vec(),
        };
        let bytes = postcard::to_allocvec(&old).unwrap();
        let back: InodeV1 = postcard::from_bytes(&bytes).unwrap();
        let rows = layouts(&back.chunks);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].0, 2);
        assert_eq!(rows[1].1, ChunkLayout::whole([8; 32], 4 << 20));
    }
}

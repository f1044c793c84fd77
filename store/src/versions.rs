//! Versions: the recorded states of each path (layouts at that time), and restoring one.

use redb::ReadableDatabase;

use crate::meta::{Ino, Kind, Time, VersionRecord};
use crate::{
    normalize_path, path_components, show, Result, Store, StoreError, VersionInfo, ROOT_INO,
    VERSIONS,
};

impl Store {
    pub fn versions(&self, path: &[u8]) -> Result<Vec<VersionInfo>> {
        let path = normalize_path(path);
        let txn = self.db.begin_read()?;
        let t = txn.open_table(VERSIONS)?;
        let mut out = Vec::new();
        for item in t.range((path.as_slice(), 0u64)..=(path.as_slice(), u64::MAX))? {
            let (k, v) = item?;
            let rec: VersionRecord = postcard::from_bytes(v.value())?;
            out.push(VersionInfo {
                version: k.value().1,
                recorded: rec.recorded,
                size: rec.size,
                mtime: rec.mtime,
                deleted: rec.deleted,
            });
        }
        Ok(out)
    }

    fn version_record(&self, path: &[u8], n: u64) -> Result<VersionRecord> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(VERSIONS)?;
        let v = t.get((path, n))?.ok_or_else(|| {
            StoreError::NotFound(format!(
                "version {n} of {} (see `peros log {}`)",
                show(path),
                show(path)
            ))
        })?;
        Ok(postcard::from_bytes(v.value())?)
    }

    /// Makes version `n` of `path` its current content, recreating the file (and its parent
    /// directories) if it was deleted. Returns the inode.
    pub fn restore(&self, path: &[u8], n: u64) -> Result<Ino> {
        let path = normalize_path(path);
        let rec = self.version_record(&path, n)?;
        if rec.deleted {
            return Err(StoreError::Invalid(format!(
                "version {n} of {} records its deletion; pick an earlier version",
                show(&path)
            )));
        }
        let comps = path_components(&path);
        let (name, dirs) = comps
            .split_last()
            .ok_or_else(|| StoreError::Invalid("cannot restore the root".into()))?;
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let mut parent = ROOT_INO;
        for d in dirs {
            parent = match self.lookup(parent, d) {
                Ok((i, n)) if n.kind == Kind::Dir => i,
                Ok(_) => return Err(StoreError::NotDir(show(d))),
                Err(StoreError::NotFound(_)) => {
                    self.create(parent, d, Kind::Dir, 0o755, uid, gid, 0, &[])?
                        .0
                }
                Err(e) => return Err(e),
            };
        }
        let ino = match self.lookup(parent, name) {
            Ok((i, n)) if n.kind == Kind::File => i,
            Ok(_) => return Err(StoreError::Exists(show(&path))),
            Err(StoreError::NotFound(_)) => {
                self.create(parent, name, Kind::File, rec.perm, uid, gid, 0, &[])?
                    .0
            }
            Err(e) => return Err(e),
        };
        self.flush(ino, false, false)?;
        let _guard = self.ingest.read().unwrap_or_else(|e| e.into_inner());
        // Check every object is still readable before pointing the file at them.
        for (idx, layout) in &rec.layout {
            for o in layout.objects() {
                self.open_object(ino, *idx, o)?;
            }
        }
        self.write(true, |tx| {
            let mut node = tx.inode(ino)?;
            let (freed, _) = tx.del_layouts_counted(ino, 0)?;
            self.gc.add_garbage(freed);
            node.stored = 0;
            for (idx, layout) in &rec.layout {
                node.stored += layout.covered();
                tx.put_layout(ino, *idx, layout)?;
            }
            node.size = rec.size;
            node.mtime = rec.mtime;
            node.ctime = Time::now();
            tx.put_inode(ino, &node)?;
            let path = tx.path_of(ino)?;
            tx.add_version(&path, tx.version_of(ino, &node, false)?, self.versions_keep)?;
            Ok(())
        })?;
        self.run_hook()?;
        Ok(ino)
    }
}

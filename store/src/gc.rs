//! Garbage collection: objects no layout and no kept version references.
//!
//! Mark and sweep. The mark runs with the ingest lock held exclusively, so no writer is
//! between sealing an object and committing the layout that references it; dead objects are
//! forgotten in metadata in that same window and put on a "doomed" list, the lock is released,
//! and the deletes run while writers go on. A writer that seals content equal to a doomed
//! object waits for its delete, then writes it afresh ([`GcState::wait_not_doomed`]).
//!
//! [`Store::gc`] (the `peros gc` command) lists the backend, so it also finds objects of a
//! crash between upload and commit. The background pass ([`Store::collect_if_needed`]) only
//! sweeps the objects the metadata knows, and only once the garbage estimate (bytes of pieces
//! dropped by overwrites, truncates, compaction and deletes) passes [`GC_MIN_GARBAGE`] or an
//! eighth of what is stored: its cost (a scan of the layouts and versions) stays proportional
//! to the garbage it can free.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

use peros_crypto::ObjectName;
use redb::{ReadableDatabase, ReadableTable};

use crate::meta::{ChunkLayout, Ino, VersionRecord};
use crate::{object_key, GcReport, Result, Store, CHUNK_PREFIX, LAYOUT, OBJECTS, VERSIONS};

/// Garbage estimate (bytes) that starts a background collection, at least.
pub const GC_MIN_GARBAGE: u64 = 32 * 1024 * 1024;

#[derive(Default)]
pub(crate) struct GcState {
    garbage: AtomicU64,
    /// The estimate when the small-store rule last summed the stored bytes: unchanged
    /// garbage needs no new sum (it would scan every object record each maintenance pass).
    checked_at: AtomicU64,
    doomed: Mutex<HashSet<[u8; 32]>>,
    deleted: Condvar,
    compactions: Mutex<BTreeSet<(Ino, u64)>>,
}

impl GcState {
    pub(crate) fn add_garbage(&self, bytes: u64) {
        self.garbage.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn garbage(&self) -> u64 {
        self.garbage.load(Ordering::Relaxed)
    }

    pub(crate) fn wait_not_doomed(&self, name: &[u8; 32]) {
        let mut d = self.doomed.lock().unwrap_or_else(|e| e.into_inner());
        while d.contains(name) {
            d = self.deleted.wait(d).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn doom(&self, names: impl IntoIterator<Item = [u8; 32]>) {
        self.doomed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(names);
    }

    fn spare(&self, name: &[u8; 32]) {
        self.doomed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        self.deleted.notify_all();
    }

    pub(crate) fn queue_compaction(&self, ino: Ino, chunks: Vec<u64>) {
        let mut q = self.compactions.lock().unwrap_or_else(|e| e.into_inner());
        q.extend(chunks.into_iter().map(|c| (ino, c)));
    }

    pub(crate) fn take_compactions(&self) -> Vec<(Ino, u64)> {
        std::mem::take(&mut *self.compactions.lock().unwrap_or_else(|e| e.into_inner()))
            .into_iter()
            .collect()
    }
}

impl Store {
    /// Every object referenced by a layout or a kept version.
    fn referenced(&self) -> Result<HashSet<[u8; 32]>> {
        let txn = self.db.begin_read()?;
        let mut set = HashSet::new();
        for item in txn.open_table(LAYOUT)?.iter()? {
            let (_, v) = item?;
            let l: ChunkLayout = postcard::from_bytes(v.value())?;
            l.mark(&mut set);
        }
        for item in txn.open_table(VERSIONS)?.iter()? {
            let (_, v) = item?;
            let rec: VersionRecord = postcard::from_bytes(v.value())?;
            for (_, l) in &rec.layout {
                l.mark(&mut set);
            }
        }
        Ok(set)
    }

    /// Estimated garbage bytes not yet reclaimed (for `peros status`).
    pub fn garbage_estimate(&self) -> u64 {
        self.gc.garbage()
    }

    /// Removes objects that nothing references, listing the backend (finds leftovers of a
    /// crash too).
    pub fn gc(&self, progress: &dyn Fn(u64, u64)) -> Result<GcReport> {
        // Listed before the mark: an object uploaded after the listing is not in it, so it
        // cannot be taken for garbage.
        let listed = self.backend.list(CHUNK_PREFIX)?;
        let mut report = GcReport {
            objects_seen: listed.len() as u64,
            ..Default::default()
        };
        let dead: Vec<(String, u64, Option<ObjectName>)> = {
            let _guard = self.ingest.write().unwrap_or_else(|e| e.into_inner());
            let referenced = self.referenced()?;
            let mut dead = Vec::new();
            for (key, size) in &listed {
                let hex = key.rsplit('/').next().unwrap_or_default();
                match ObjectName::from_hex(hex) {
                    Some(n) if referenced.contains(&n.0) => {}
                    n => dead.push((key.clone(), *size, n)),
                }
            }
            let present: HashSet<&str> = listed.iter().map(|(k, _)| k.as_str()).collect();
            self.forget_objects(
                dead.iter().filter_map(|(_, _, n)| n.map(|n| n.0)),
                Some(&present),
            )?;
            self.gc
                .doom(dead.iter().filter_map(|(_, _, n)| n.map(|n| n.0)));
            self.gc.garbage.store(0, Ordering::Relaxed);
            dead
        };
        let total = dead.len() as u64;
        let mut first_err = None;
        for (i, (key, size, n)) in dead.into_iter().enumerate() {
            let r = self.backend.delete(&key);
            if let Some(n) = n {
                self.cache.remove(&n);
                self.gc.spare(&n.0);
            }
            match r {
                Ok(()) => {
                    report.objects_removed += 1;
                    report.bytes_freed += size;
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
            progress(i as u64 + 1, total);
        }
        match first_err {
            Some(e) => Err(e.into()),
            None => Ok(report),
        }
    }

    /// Drops object records: `dead`, and with `present`, records of objects the backend
    /// listing does not show. A crash after this leaves at worst objects nothing records,
    /// which the next `peros gc` lists and removes.
    fn forget_objects(
        &self,
        dead: impl Iterator<Item = [u8; 32]>,
        present: Option<&HashSet<&str>>,
    ) -> Result<()> {
        self.write(true, |tx| {
            let mut t = tx.txn.open_table(OBJECTS)?;
            for n in dead {
                t.remove(n.as_slice())?;
            }
            if let Some(present) = present {
                let stale: Vec<Vec<u8>> = t
                    .iter()?
                    .filter_map(|i| i.ok())
                    .map(|(k, _)| k.value().to_vec())
                    .filter(|k| {
                        k.len() == 32 && {
                            let mut a = [0u8; 32];
                            a.copy_from_slice(k);
                            !present.contains(object_key(&ObjectName(a)).as_str())
                        }
                    })
                    .collect();
                for k in stale {
                    t.remove(k.as_slice())?;
                }
            }
            Ok(())
        })
    }

    /// The background collection: when the garbage estimate is large enough, deletes the
    /// recorded objects that nothing references. Returns the bytes freed.
    pub fn collect_if_needed(&self) -> Result<u64> {
        let garbage = self.gc.garbage();
        if garbage < GC_MIN_GARBAGE {
            // Small stores: still collect once an eighth of what is stored is garbage.
            if garbage == 0 || self.gc.checked_at.swap(garbage, Ordering::Relaxed) == garbage {
                return Ok(0);
            }
            if garbage < self.stored_bytes_recorded()? / 8 {
                return Ok(0);
            }
        }
        self.collect_recorded()
    }

    fn stored_bytes_recorded(&self) -> Result<u64> {
        let txn = self.db.begin_read()?;
        let mut total = 0;
        for item in txn.open_table(OBJECTS)?.iter()? {
            total += item?.1.value();
        }
        Ok(total)
    }

    /// Sweeps the objects the metadata records against what layouts and versions reference.
    pub fn collect_recorded(&self) -> Result<u64> {
        let dead: Vec<([u8; 32], u64)> = {
            let _guard = self.ingest.write().unwrap_or_else(|e| e.into_inner());
            let referenced = self.referenced()?;
            let txn = self.db.begin_read()?;
            let mut dead = Vec::new();
            for item in txn.open_table(OBJECTS)?.iter()? {
                let (k, v) = item?;
                if k.value().len() != 32 {
                    continue;
                }
                let mut n = [0u8; 32];
                n.copy_from_slice(k.value());
                if !referenced.contains(&n) {
                    dead.push((n, v.value()));
                }
            }
            drop(txn);
            self.forget_objects(dead.iter().map(|(n, _)| *n), None)?;
            self.gc.doom(dead.iter().map(|(n, _)| *n));
            self.gc.garbage.store(0, Ordering::Relaxed);
            dead
        };
        let mut freed = 0;
        for (n, size) in dead {
            let on = ObjectName(n);
            let r = self.backend.delete(&object_key(&on));
            self.cache.remove(&on);
            self.gc.spare(&n);
            match r {
                Ok(()) => freed += size,
                // Forgotten but not deleted: `peros gc` (which lists) removes it later.
                Err(e) => tracing::warn!("deleting {}: {e}", object_key(&on)),
            }
        }
        if freed > 0 {
            tracing::debug!("background gc freed {freed} bytes");
        }
        Ok(freed)
    }
}

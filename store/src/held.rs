//! Prefetched objects not read yet, held in the chunk cache until their file is read.
//!
//! Why: the chunk cache is quick_cache (CLOCK-Pro). It admits a new entry to a cold section
//! of 3 % of the cache (`hot_allocation` 0.97) and evicts an unreferenced entry there first.
//! A prefetched object is unreferenced until its file is opened, so the next insertion evicted
//! it. The simulator's LRU keeps it until it is the least recent. Live on the photo-browsing
//! trace (issue 19), 258 of 480 prefetched MiB were wasted this way. Two other fixes were
//! measured or ruled out. Marking the prefetch as referenced only moved it to the hot ring,
//! where the photos just read outlive it (each FUSE read of an open references them again, up
//! to quick_cache's MAX_F of 2): 84.5 % hits and 226 MiB wasted, worse. A lower
//! `hot_allocation` caps the largest entry admitted at that share of the cache (quick_cache
//! refuses heavier ones), which would drop 4 MiB chunks from small caches.
//!
//! So a prefetched object is pinned (quick_cache's `Lifecycle::is_pinned`) until it is read, or
//! until newer prefetches push it out (first in, first out, over at most half the cache: the
//! agent keeps at most half the cache unopened), or for at most [`HOLD_FOR`]. Pinned bytes stay
//! in the cache's weight, and the unpinned half is evicted as before, so the cache stays within
//! `[store] cache_mb`. The download stays one per object (`get_or_insert_with`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use peros_crypto::ObjectName;

/// A prefetch not read within this long is a wrong guess (the agent's `PREFETCH_EXPIRY`).
pub(crate) const HOLD_FOR: Duration = Duration::from_secs(300);

#[derive(Default)]
struct Inner {
    /// Bytes, insertion number, when.
    by_name: HashMap<ObjectName, (u64, u64, Instant)>,
    /// Oldest first; entries whose number no longer matches `by_name` are stale.
    order: VecDeque<(u64, ObjectName)>,
    bytes: u64,
    seq: u64,
}

impl Inner {
    /// Lets the oldest held go until at most `limit` bytes are held.
    fn trim(&mut self, limit: u64) {
        while self.bytes > limit {
            let Some((seq, old)) = self.order.pop_front() else {
                break;
            };
            if self.by_name.get(&old).is_some_and(|(_, s, _)| *s == seq) {
                let (b, _, _) = self.by_name.remove(&old).expect("just found");
                self.bytes -= b;
            }
        }
        // Released ones leave stale entries behind: drop them before they pile up.
        if self.order.len() > 2 * self.by_name.len() + 64 {
            let live = &self.by_name;
            self.order
                .retain(|(seq, n)| live.get(n).is_some_and(|(_, s, _)| s == seq));
        }
    }
}

/// The held set; a clone shares it (the cache's lifecycle and the store hold one each).
#[derive(Clone, Default)]
pub(crate) struct Held(Arc<Mutex<Inner>>);

impl Held {
    // Never call into the cache while holding this lock: the cache calls `holds` under its own.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn holds(&self, name: &ObjectName) -> bool {
        self.lock()
            .by_name
            .get(name)
            .is_some_and(|(_, _, at)| at.elapsed() < HOLD_FOR)
    }

    /// Holds `name` (`bytes` decrypted) until it is read; the oldest held go past `limit`.
    pub(crate) fn hold(&self, name: ObjectName, bytes: u64, limit: u64) {
        if bytes > limit {
            return;
        }
        let mut g = self.lock();
        let g = &mut *g;
        if let Some((b, _, _)) = g.by_name.remove(&name) {
            g.bytes -= b;
        }
        g.seq += 1;
        g.by_name.insert(name, (bytes, g.seq, Instant::now()));
        g.order.push_back((g.seq, name));
        g.bytes += bytes;
        g.trim(limit);
    }

    /// The real size of a held `name` once its plaintext is known; nothing if it was read
    /// (released) meanwhile, so a read that waited on the prefetch's download is not held again.
    pub(crate) fn resize(&self, name: &ObjectName, bytes: u64, limit: u64) {
        let mut g = self.lock();
        let g = &mut *g;
        let Some(entry) = g.by_name.get_mut(name) else {
            return;
        };
        let old = std::mem::replace(&mut entry.0, bytes);
        g.bytes = g.bytes - old + bytes;
        if bytes > limit {
            g.by_name.remove(name);
            g.bytes -= bytes;
        }
        g.trim(limit);
    }

    /// `name` was read: an ordinary cache entry from now on.
    pub(crate) fn release(&self, name: &ObjectName) {
        let mut g = self.lock();
        if g.by_name.is_empty() {
            return;
        }
        if let Some((b, _, _)) = g.by_name.remove(name) {
            g.bytes -= b;
        }
    }
}

impl quick_cache::Lifecycle<ObjectName, Arc<Vec<u8>>> for Held {
    type RequestState = ();

    fn begin_request(&self) -> Self::RequestState {}

    fn is_pinned(&self, key: &ObjectName, _: &Arc<Vec<u8>>) -> bool {
        self.holds(key)
    }

    fn on_evict(&self, _: &mut Self::RequestState, _: ObjectName, _: Arc<Vec<u8>>) {}
}

//! Sequential read-ahead: which chunks to decrypt ahead of a reader, and at most how many at
//! once. The fetching itself is the store's (`Store::prefetch_chunk`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;
use peros_store::{Ino, Store, CHUNK_SIZE};

/// Chunks kept decrypted ahead of a sequential reader (12 MiB). One was too few: a reader
/// served from memory reaches the next chunk long before one fetch + decrypt of 4 MiB
/// completes, so cold sequential reads ran at the speed of one fetch at a time (0.18× of
/// gocryptfs in `perfs/results/fio-2026-12-03.md`).
const DEPTH: u64 = 3;
/// Fetches in flight at once, over all files.
const MAX_IN_FLIGHT: usize = 3;
/// A read that starts within this distance of where the last read of the file ended
/// continues a sequential pass (the kernel's read-ahead requests may arrive out of order).
const SEQUENTIAL_SLACK: u64 = 2 << 20;
/// Files whose read position is remembered; past this the table starts over.
const MAX_TRACKED: usize = 4096;

#[derive(Default)]
pub(crate) struct ReadAhead {
    /// Per inode, where its last read ended.
    last_end: Mutex<HashMap<Ino, u64>>,
    /// Chunks being fetched now.
    in_flight: Arc<Mutex<HashSet<(Ino, u64)>>>,
}

impl ReadAhead {
    /// Notes a read of `len` bytes at `offset` of `ino` and, when it continues a sequential
    /// pass, starts fetching the chunks after it (chunks past the end have no objects, so
    /// `chunk_cached` skips them). Random readers get nothing fetched ahead: a 4 KiB read
    /// must not cost 12 MiB.
    pub(crate) fn on_read(&self, store: &Arc<Store>, ino: Ino, offset: u64, len: u64) {
        let end = offset.saturating_add(len);
        let sequential = {
            let mut last = self.last_end.lock();
            if last.len() >= MAX_TRACKED && !last.contains_key(&ino) {
                last.clear();
            }
            // The first read of a file does not count: `file`, `head` and thumbnailers read
            // the start and stop. Then the chunks ahead are looked at once per MiB read, not
            // at every (possibly 4 KiB) read.
            last.insert(ino, end).is_some_and(|prev| {
                offset.abs_diff(prev) <= SEQUENTIAL_SLACK && (prev >> 20 != end >> 20)
            })
        };
        if !sequential {
            return;
        }
        let chunk = CHUNK_SIZE as u64;
        let current = end / chunk;
        for idx in current + 1..=current + DEPTH {
            if store.chunk_cached(ino, idx) {
                continue;
            }
            {
                let mut flying = self.in_flight.lock();
                if flying.len() >= MAX_IN_FLIGHT {
                    return;
                }
                if !flying.insert((ino, idx)) {
                    continue;
                }
            }
            let store = store.clone();
            let flying = self.in_flight.clone();
            std::thread::spawn(move || {
                // Best effort: the read itself reports any error.
                let _ = store.prefetch_chunk(ino, idx);
                flying.lock().remove(&(ino, idx));
            });
        }
    }

    /// The file was closed for the last time.
    pub(crate) fn forget(&self, ino: Ino) {
        self.last_end.lock().remove(&ino);
    }
}

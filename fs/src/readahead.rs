//! Sequential read-ahead: which chunks to decrypt ahead of a reader, and at most how many at
//! once. The fetching itself is the store's (`Store::prefetch_chunk`).

use std::collections::{HashMap, HashSet};
use std::ops::RangeInclusive;
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
    /// `chunk_cached` skips them).
    pub(crate) fn on_read(&self, store: &Arc<Store>, ino: Ino, offset: u64, len: u64) {
        let Some(ahead) = self.chunks_ahead(ino, offset, len) else {
            return;
        };
        for idx in ahead {
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

    /// The chunks to have decrypted after this read, if it continues a sequential pass.
    /// Random readers get none: a 4 KiB read must not cost 12 MiB.
    fn chunks_ahead(&self, ino: Ino, offset: u64, len: u64) -> Option<RangeInclusive<u64>> {
        let end = offset.saturating_add(len);
        let mut last = self.last_end.lock();
        if last.len() >= MAX_TRACKED && !last.contains_key(&ino) {
            last.clear();
        }
        // The first read of a file does not count: `file`, `head` and thumbnailers read the
        // start and stop. Then the chunks ahead are looked at once per MiB read, not at every
        // (possibly 4 KiB) read.
        let prev = last.insert(ino, end)?;
        let sequential = offset.abs_diff(prev) <= SEQUENTIAL_SLACK;
        if !sequential || prev >> 20 == end >> 20 {
            return None;
        }
        let current = end / CHUNK_SIZE as u64;
        Some(current + 1..=current + DEPTH)
    }

    /// The file was closed for the last time.
    pub(crate) fn forget(&self, ino: Ino) {
        self.last_end.lock().remove(&ino);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn sequential_readers_get_chunks_ahead_random_ones_none() {
        let ra = ReadAhead::default();
        // First read of a file: nothing yet.
        assert_eq!(ra.chunks_ahead(7, 0, MIB), None);
        // It goes on where it stopped: the three chunks after the current one.
        assert_eq!(ra.chunks_ahead(7, MIB, MIB), Some(1..=3));
        assert_eq!(ra.chunks_ahead(7, 4 * MIB, MIB), Some(2..=4));
        // Small reads within one MiB are looked at once, at the MiB boundary.
        let ra = ReadAhead::default();
        assert_eq!(ra.chunks_ahead(8, 0, 4096), None);
        let mut triggered = 0;
        for i in 1..256 {
            if ra.chunks_ahead(8, i * 4096, 4096).is_some() {
                triggered += 1;
            }
        }
        assert_eq!(triggered, 1, "one look per MiB of 4 KiB reads");
        // A random reader: jumps farther than the slack every time.
        let ra = ReadAhead::default();
        let mut at = 0u64;
        for i in 0..100u64 {
            at = (at + 37 * MIB + i * 4096) % (1 << 34);
            assert_eq!(ra.chunks_ahead(9, at, 4096), None, "read {i} at {at}");
        }
        // Files are told apart, and forgotten at close.
        let ra = ReadAhead::default();
        assert_eq!(ra.chunks_ahead(1, 0, MIB), None);
        assert_eq!(ra.chunks_ahead(2, MIB, MIB), None);
        assert_eq!(ra.chunks_ahead(1, MIB, MIB), Some(1..=3));
        ra.forget(1);
        assert_eq!(ra.chunks_ahead(1, 2 * MIB, MIB), None);
    }
}

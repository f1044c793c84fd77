//! Chunk layouts: how the slices of one chunk combine into its bytes, and when a chunk is
//! worth compacting. Pure functions over [`ChunkLayout`]; no I/O, no database.
//!
//! The model follows JuiceFS: a write never rewrites what is stored, it adds a slice (one
//! sealed object holding the bytes that commit changed in this chunk); a read applies the
//! slices oldest first; compaction later replaces a chunk's slices by one.

use std::collections::HashSet;

use crate::meta::{ChunkLayout, Piece, Slice, CHUNK_SIZE};

/// A chunk with more slices than this is compacted.
pub const MAX_SLICES: usize = 8;
/// A chunk with more pieces than this (many small scattered writes) is compacted.
pub const MAX_PIECES: usize = 256;
/// A buffer this large that is appended to is taken for a sequential writer's: it reserves
/// the rest of its chunk ([`DirtyRanges`]). Smaller ones (4 KiB records, small files) hold
/// exactly their bytes.
pub const STREAM_WRITE: usize = 64 << 10;

/// A piece's byte range in its chunk (u64: never overflows, whatever a record says).
fn span(p: &Piece) -> (u64, u64) {
    (p.offset as u64, p.offset as u64 + p.len as u64)
}

impl ChunkLayout {
    /// A layout holding `len` bytes from offset 0 of `object`.
    pub fn whole(object: [u8; 32], len: u32) -> Self {
        ChunkLayout {
            slices: vec![Slice {
                object,
                pieces: vec![Piece {
                    offset: 0,
                    len,
                    at: 0,
                }],
            }],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.slices.iter().all(|s| s.pieces.is_empty())
    }

    /// Adds a newer slice. Older slices that it covers entirely are dropped: a rewrite of a
    /// whole chunk, or of the part an earlier slice held, leaves no dead reference behind.
    /// Returns the bytes of older pieces that were dropped (now garbage unless shared).
    pub fn push(&mut self, slice: Slice) -> u64 {
        let mut covered: Vec<(u64, u64)> = slice.pieces.iter().map(span).collect();
        covered.sort_unstable();
        let inside = |p: &Piece| {
            let (ps, pe) = span(p);
            covered.iter().any(|&(s, e)| s <= ps && pe <= e)
        };
        let mut dropped = 0u64;
        for old in &mut self.slices {
            old.pieces.retain(|p| {
                let gone = inside(p);
                if gone {
                    dropped += p.len as u64;
                }
                !gone
            });
        }
        self.slices.retain(|s| !s.pieces.is_empty());
        self.slices.push(slice);
        dropped
    }

    /// Cuts everything at or beyond `len` (a truncate inside this chunk). Returns the bytes cut.
    pub fn clip(&mut self, len: u32) -> u64 {
        let mut cut = 0u64;
        for s in &mut self.slices {
            s.pieces.retain_mut(|p| {
                if p.offset >= len {
                    cut += p.len as u64;
                    return false;
                }
                let end = span(p).1;
                if end > len as u64 {
                    cut += end - len as u64;
                    p.len = len - p.offset;
                }
                true
            });
        }
        self.slices.retain(|s| !s.pieces.is_empty());
        cut
    }

    /// The end of the last byte any piece holds.
    pub fn end(&self) -> u32 {
        self.slices
            .iter()
            .flat_map(|s| &s.pieces)
            .map(|p| span(p).1.min(u32::MAX as u64) as u32)
            .max()
            .unwrap_or(0)
    }

    /// Bytes of this chunk backed by some piece (the union of the pieces).
    pub fn covered(&self) -> u64 {
        let mut ranges: Vec<(u64, u64)> = self
            .slices
            .iter()
            .flat_map(|s| &s.pieces)
            .map(span)
            .collect();
        ranges.sort_unstable();
        let (mut total, mut cur_end) = (0u64, 0u64);
        for (s, e) in ranges {
            let s = s.max(cur_end);
            if e > s {
                total += e - s;
                cur_end = e;
            }
        }
        total
    }

    /// Bytes the pieces reference (what the chunk keeps alive in stored objects, at least).
    pub fn referenced(&self) -> u64 {
        self.slices
            .iter()
            .flat_map(|s| &s.pieces)
            .map(|p| p.len as u64)
            .sum()
    }

    /// Too many slices or pieces for cheap reads, or much more referenced than held.
    pub fn needs_compaction(&self) -> bool {
        let pieces: usize = self.slices.iter().map(|s| s.pieces.len()).sum();
        self.slices.len() > MAX_SLICES
            || pieces > MAX_PIECES
            || self.referenced() > self.covered() + (CHUNK_SIZE as u64 / 2)
    }

    /// The objects this layout references.
    pub fn objects(&self) -> impl Iterator<Item = &[u8; 32]> {
        self.slices.iter().map(|s| &s.object)
    }

    /// Adds every referenced object to `set`.
    pub fn mark(&self, set: &mut HashSet<[u8; 32]>) {
        set.extend(self.objects().copied());
    }

    /// Fills `out` (zeroed by the caller) with bytes `within..within + out.len()` of the chunk.
    /// `open` returns the plaintext of an object; a piece that points past the end of its
    /// object's plaintext is an error naming the object.
    pub fn read_into<E>(
        &self,
        within: u32,
        out: &mut [u8],
        mut open: impl FnMut(&[u8; 32]) -> Result<std::sync::Arc<Vec<u8>>, E>,
        bad_piece: impl Fn(&[u8; 32], &Piece, usize) -> E,
    ) -> Result<(), E> {
        let want_end = within as u64 + out.len() as u64;
        for slice in &self.slices {
            let mut plain: Option<std::sync::Arc<Vec<u8>>> = None;
            for p in &slice.pieces {
                let (ps, pe) = (p.offset as u64, p.offset as u64 + p.len as u64);
                let (s, e) = (ps.max(within as u64), pe.min(want_end));
                if s >= e {
                    continue;
                }
                let data = match &plain {
                    Some(d) => d.clone(),
                    None => {
                        let d = open(&slice.object)?;
                        plain = Some(d.clone());
                        d
                    }
                };
                let src = p.at as u64 + (s - ps);
                let len = (e - s) as usize;
                if src as usize + len > data.len() {
                    return Err(bad_piece(&slice.object, p, data.len()));
                }
                out[(s - within as u64) as usize..(e - within as u64) as usize]
                    .copy_from_slice(&data[src as usize..src as usize + len]);
            }
        }
        Ok(())
    }
}

/// Byte ranges of one chunk waiting to be committed: non-overlapping and non-adjacent,
/// keyed by their offset in the chunk. Adjacent writes merge, so a sequential writer keeps
/// one growing buffer per chunk.
///
/// Memory is counted as the buffers' capacity ([`DirtyRanges::bytes`]), which is what the
/// dirty limit must bound. When a buffer of at least [`STREAM_WRITE`] bytes is appended to,
/// it reserves the rest of its chunk at once: a sequential writer then moves its buffer once
/// per chunk (growing 1 → 2 → 3 → 4 MiB copied 6 MiB and touched fresh pages for every 4 MiB
/// chunk of a 1 MiB-block writer). A file written in one call (most small and medium files)
/// holds exactly its bytes, so many of them in flight do not reach the dirty limit early.
#[derive(Default, Clone, Debug)]
pub struct DirtyRanges {
    pub ranges: std::collections::BTreeMap<u32, Vec<u8>>,
}

impl DirtyRanges {
    /// Copies `data` in at `offset`; returns how many bytes the buffers grew by.
    pub fn insert(&mut self, offset: u32, data: &[u8]) -> usize {
        let (start, end) = (offset, offset + data.len() as u32);
        // Ranges that overlap or touch [start, end].
        let first = self
            .ranges
            .range(..=start)
            .next_back()
            .filter(|(s, v)| **s + v.len() as u32 >= start)
            .map(|(s, _)| *s)
            .unwrap_or(start);
        let hit: Vec<u32> = self.ranges.range(first..=end).map(|(s, _)| *s).collect();
        if hit.is_empty() {
            let buf = data.to_vec();
            let held = buf.capacity();
            self.ranges.insert(start, buf);
            return held;
        }
        let before: usize = hit.iter().map(|s| self.ranges[s].capacity()).sum();
        let new_start = start.min(hit[0]);
        let mut buf = self.ranges.remove(&hit[0]).expect("listed above");
        if hit[0] > new_start {
            // The new write starts before the first buffer: prepend room (exactly).
            let mut b = Vec::with_capacity((hit[0] - new_start) as usize + buf.len());
            b.resize((hit[0] - new_start) as usize, 0);
            b.extend_from_slice(&buf);
            buf = b;
        }
        for s in &hit[1..] {
            let v = self.ranges.remove(s).expect("listed above");
            let at = (s - new_start) as usize;
            if buf.len() < at + v.len() {
                buf.reserve_exact(at + v.len() - buf.len());
                buf.resize(at + v.len(), 0);
            }
            buf[at..at + v.len()].copy_from_slice(&v);
        }
        let at = (start - new_start) as usize;
        if buf.len() < at + data.len() {
            let need = at + data.len();
            let streaming = at == buf.len() && buf.len() >= STREAM_WRITE;
            let room = if streaming {
                need.max(CHUNK_SIZE - new_start as usize)
            } else {
                need
            };
            buf.reserve_exact(room - buf.len());
        }
        if at == buf.len() {
            // An append: copied once, not zeroed first.
            buf.extend_from_slice(data);
        } else {
            if buf.len() < at + data.len() {
                buf.resize(at + data.len(), 0);
            }
            buf[at..at + data.len()].copy_from_slice(data);
        }
        let grew = buf.capacity().saturating_sub(before);
        self.ranges.insert(new_start, buf);
        grew
    }

    /// Drops everything at or beyond `len`; returns the bytes of memory freed.
    pub fn clip(&mut self, len: u32) -> usize {
        let mut freed = 0;
        let beyond: Vec<u32> = self.ranges.range(len..).map(|(s, _)| *s).collect();
        for s in beyond {
            freed += self.ranges.remove(&s).map(|v| v.capacity()).unwrap_or(0);
        }
        if let Some((s, v)) = self.ranges.range_mut(..len).next_back() {
            let keep = (len - s) as usize;
            if v.len() > keep {
                let held = v.capacity();
                v.truncate(keep);
                v.shrink_to_fit();
                freed += held - v.capacity();
            }
        }
        freed
    }

    /// Memory the buffers hold (their capacity: see the type's comment).
    pub fn bytes(&self) -> usize {
        self.ranges.values().map(Vec::capacity).sum()
    }

    /// Whether one buffer covers `0..len`.
    pub fn covers(&self, len: u32) -> bool {
        self.ranges.len() == 1 && self.ranges.get(&0).is_some_and(|v| v.len() as u32 >= len)
    }

    /// Overlays the buffered bytes on `out`, which holds bytes `within..` of the chunk.
    pub fn overlay(&self, within: u32, out: &mut [u8]) {
        let want_end = within as u64 + out.len() as u64;
        for (s, v) in &self.ranges {
            let (rs, re) = (*s as u64, *s as u64 + v.len() as u64);
            let (a, b) = (rs.max(within as u64), re.min(want_end));
            if a < b {
                out[(a - within as u64) as usize..(b - within as u64) as usize]
                    .copy_from_slice(&v[(a - rs) as usize..(b - rs) as usize]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn read(l: &ChunkLayout, objs: &[(u8, Vec<u8>)], within: u32, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        l.read_into(
            within,
            &mut out,
            |o| {
                Ok::<_, String>(Arc::new(
                    objs.iter().find(|(n, _)| [*n; 32] == *o).unwrap().1.clone(),
                ))
            },
            |_, _, _| "bad".to_string(),
        )
        .unwrap();
        out
    }

    #[test]
    fn newer_slices_win_and_holes_are_zero() {
        let mut l = ChunkLayout::whole([1; 32], 8);
        let dropped = l.push(Slice {
            object: [2; 32],
            pieces: vec![Piece {
                offset: 2,
                len: 3,
                at: 0,
            }],
        });
        assert_eq!(dropped, 0);
        let objs = [(1, b"abcdefgh".to_vec()), (2, b"XYZ".to_vec())];
        assert_eq!(read(&l, &objs, 0, 10), b"abXYZfgh\0\0");
        assert_eq!(read(&l, &objs, 3, 3), b"YZf");
        assert_eq!(l.covered(), 8);
        assert_eq!(l.referenced(), 11);
        // A slice covering the first slice entirely drops it.
        let dropped = l.push(Slice {
            object: [3; 32],
            pieces: vec![Piece {
                offset: 0,
                len: 10,
                at: 0,
            }],
        });
        assert_eq!(dropped, 11);
        assert_eq!(l.slices.len(), 1);
    }

    #[test]
    fn clip_cuts_pieces() {
        let mut l = ChunkLayout::whole([1; 32], 8);
        assert_eq!(l.clip(5), 3);
        assert_eq!(l.end(), 5);
        assert_eq!(l.clip(0), 5);
        assert!(l.is_empty());
    }

    #[test]
    fn dirty_ranges_merge() {
        let mut d = DirtyRanges::default();
        assert_eq!(d.insert(10, b"abc"), 3);
        assert_eq!(d.insert(13, b"de"), 2); // adjacent: merged
        assert_eq!(d.ranges.len(), 1);
        assert_eq!(d.insert(0, b"zz"), 2);
        assert_eq!(d.ranges.len(), 2);
        // Bridges both: 0..12 covers the gap 2..10.
        assert_eq!(d.insert(1, &[b'.'; 11]), 8);
        assert_eq!(d.ranges.len(), 1);
        assert_eq!(d.ranges[&0], b"z...........cde");
        let mut out = vec![0u8; 4];
        d.overlay(11, &mut out);
        assert_eq!(out, b".cde");
        assert_eq!(d.clip(12), 3);
        assert_eq!(d.bytes(), 12);
        assert!(d.covers(12));
    }

    #[test]
    fn a_sequential_writer_fills_one_buffer_counted_at_once() {
        let mut d = DirtyRanges::default();
        let block = vec![7u8; STREAM_WRITE];
        // A file written in one call holds exactly its bytes; the first append reserves (and
        // counts) the rest of the chunk.
        assert_eq!(d.insert(0, &block), STREAM_WRITE);
        assert_eq!(
            d.insert(STREAM_WRITE as u32, &block),
            CHUNK_SIZE - STREAM_WRITE
        );
        let first = d.ranges[&0].as_ptr();
        for i in 2..CHUNK_SIZE / STREAM_WRITE {
            assert_eq!(d.insert((i * STREAM_WRITE) as u32, &block), 0);
        }
        assert_eq!(d.ranges[&0].as_ptr(), first, "the buffer was never moved");
        assert!(d.covers(CHUNK_SIZE as u32));
        assert_eq!(d.bytes(), CHUNK_SIZE);
        // A truncate gives the memory back, and says how much.
        let freed = d.clip(STREAM_WRITE as u32);
        assert_eq!(freed, CHUNK_SIZE - STREAM_WRITE);
        assert_eq!(d.bytes(), STREAM_WRITE);
        // Small writes hold what they hold.
        let mut small = DirtyRanges::default();
        assert_eq!(small.insert(4096, &[1u8; 4096]), 4096);
        assert_eq!(small.bytes(), 4096);
    }
}

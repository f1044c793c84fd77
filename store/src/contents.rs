//! File contents: sealing objects, reading chunks through the decrypted-object cache,
//! applying slices and truncations to layouts, whole-file replacement (import), compaction.

use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use peros_crypto::ObjectName;
use redb::ReadableDatabase;

use crate::meta::{ChunkLayout, Ino, Inode, Kind, Piece, Slice, Time, CHUNK_SIZE, MAX_FILE_SIZE};
use crate::{object_key, read_full, show, NewObjects, Result, Store, StoreError, Tx, LAYOUT};

/// A sealed object for one chunk: its name, and the object to record if newly written.
pub(crate) type Sealed = ([u8; 32], Option<(ObjectName, u64)>);

const CHUNK: u64 = CHUNK_SIZE as u64;

impl Tx<'_> {
    /// Adds `slice` to chunk `idx` of `node` (updating its stored-bytes figure).
    /// Returns the bytes of older pieces it made unreachable, and whether the chunk now wants
    /// compaction.
    pub(crate) fn apply_slice(
        &self,
        ino: Ino,
        node: &mut Inode,
        idx: u64,
        slice: Slice,
    ) -> Result<(u64, bool)> {
        let mut layout = self.layout(ino, idx)?;
        let before = layout.covered();
        let dropped = layout.push(slice);
        node.stored = (node.stored + layout.covered()).saturating_sub(before);
        self.put_layout(ino, idx, &layout)?;
        Ok((dropped, layout.needs_compaction()))
    }

    /// Sets the size of `node` to `size`: shrinking drops the layouts past the end and clips
    /// the last one (metadata only); growing leaves a hole, which costs nothing. Returns the
    /// bytes of pieces dropped.
    pub(crate) fn resize(&self, ino: Ino, node: &mut Inode, size: u64) -> Result<u64> {
        let mut freed = 0;
        if size < node.size {
            let keep = size.div_ceil(CHUNK);
            let (referenced, covered) = self.del_layouts_counted(ino, keep)?;
            freed += referenced;
            node.stored = node.stored.saturating_sub(covered);
            let tail = (size % CHUNK) as u32;
            if tail != 0 {
                let idx = size / CHUNK;
                let mut layout = self.layout(ino, idx)?;
                let before = layout.covered();
                freed += layout.clip(tail);
                node.stored = node.stored.saturating_sub(before - layout.covered());
                self.put_layout(ino, idx, &layout)?;
            }
        }
        node.size = size;
        Ok(freed)
    }

    /// [`Tx::del_layouts`], also counting the bytes the removed chunks covered.
    pub(crate) fn del_layouts_counted(&self, ino: Ino, from: u64) -> Result<(u64, u64)> {
        let mut t = self.txn.open_table(LAYOUT)?;
        let (mut referenced, mut covered) = (0u64, 0u64);
        t.retain_in((ino, from)..=(ino, u64::MAX), |_, v| {
            if let Ok(l) = postcard::from_bytes::<ChunkLayout>(v) {
                referenced += l.referenced();
                covered += l.covered();
            }
            false
        })?;
        Ok((referenced, covered))
    }
}

impl Store {
    /// Seals `data` and stores it (once) under its keyed name. The object is not yet durable:
    /// callers sync the backend before committing metadata that references it.
    pub(crate) fn put_object(&self, data: &[u8]) -> Result<Sealed> {
        let name = self.keyring.object_name(data);
        if self.object_known(&name)? {
            return Ok((name.0, None));
        }
        // Background gc may be deleting an object of the same content right now: wait for
        // that delete, then write it afresh.
        self.gc.wait_not_doomed(&name.0);
        // A whole chunk is sealed page-aligned, so that a local backend writes it around the
        // page cache (direct.rs): it is a streaming writer's, whose re-reads the kernel's cache
        // of the mounted file serves (KEEP_CACHE). Smaller objects (packs of small files,
        // slices of partial writes) stay buffered: small files are read back soon (a build, git),
        // and a direct write would make the group commit wait for the disk (measured with direct
        // writes for every object, 10,000 files of 4 KiB: creating them took 1.2–1.3× and
        // reading them back 1.6–1.9× the time of the build before; whole chunks only: as before).
        let sealed = if data.len() == CHUNK_SIZE {
            let mut sealed = crate::direct::AlignedBuf::with_capacity(
                peros_crypto::sealed_len_bound(data.len()),
            );
            self.keyring.seal_to(data, &mut sealed)?;
            Bytes::from_owner(sealed)
        } else {
            Bytes::from(self.keyring.seal(data)?)
        };
        let size = sealed.len() as u64;
        // Not cached here: the writer's page cache holds the data, and a 4 MiB copy per chunk
        // cost a fifth of sequential-write CPU.
        self.backend.put(&object_key(&name), sealed)?;
        Ok((name.0, Some((name, size))))
    }

    fn object_known(&self, name: &ObjectName) -> Result<bool> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(crate::OBJECTS)?;
        Ok(t.get(name.0.as_slice())?.is_some())
    }

    /// Seals every item, on as many threads as the machine has cores (at most).
    pub(crate) fn seal_many(&self, items: Vec<(u64, &[u8])>) -> Result<Vec<(u64, Sealed)>> {
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .min(items.len());
        if workers <= 1 {
            return items
                .into_iter()
                .map(|(i, d)| Ok((i, self.put_object(d)?)))
                .collect();
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let items = &items;
        let results: Vec<Result<Vec<(u64, Sealed)>>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    s.spawn(|| {
                        let mut out = Vec::new();
                        loop {
                            let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some((i, d)) = items.get(k) else {
                                return Ok(out);
                            };
                            out.push((*i, self.put_object(d)?));
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("sealing thread panicked"))
                .collect()
        });
        let mut all = Vec::with_capacity(items.len());
        for r in results {
            all.extend(r?);
        }
        all.sort_by_key(|(i, _)| *i);
        Ok(all)
    }

    /// Plaintext of object `name`, through the cache; `ino`/`index` name the file and chunk
    /// in errors. One download per object at a time: a read that finds it being fetched (say
    /// by the prefetcher) waits for that fetch instead of downloading it again.
    pub(crate) fn open_object(
        &self,
        ino: Ino,
        index: u64,
        name: &[u8; 32],
    ) -> Result<Arc<Vec<u8>>> {
        let name = ObjectName(*name);
        let plain = self.cached_object(ino, index, &name)?;
        self.held.release(&name);
        Ok(plain)
    }

    /// Through the cache, without counting as a read (prefetch).
    fn cached_object(&self, ino: Ino, index: u64, name: &ObjectName) -> Result<Arc<Vec<u8>>> {
        self.cache
            .get_or_insert_with(name, || self.fetch_object(ino, index, name))
    }

    fn chunk_error(&self, ino: Ino, index: u64, name: &ObjectName, detail: String) -> StoreError {
        let file = self
            .path_of(ino)
            .map(|p| show(&p))
            .unwrap_or_else(|_| format!("inode {ino}"));
        StoreError::Chunk {
            file,
            index: index as usize,
            object: object_key(name),
            detail,
        }
    }

    /// Downloads and decrypts one object (no cache).
    fn fetch_object(&self, ino: Ino, index: u64, name: &ObjectName) -> Result<Arc<Vec<u8>>> {
        let sealed = self
            .backend
            .get(&object_key(name))
            .map_err(|e| self.chunk_error(ino, index, name, e.to_string()))?;
        let plain = self
            .keyring
            .open(&sealed, name)
            .map_err(|e| self.chunk_error(ino, index, name, e.to_string()))?;
        Ok(Arc::new(plain))
    }

    /// The layout of chunk `idx` of `ino` as committed.
    pub fn chunk_layout(&self, ino: Ino, idx: u64) -> Result<ChunkLayout> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(LAYOUT)?;
        let found = match t.get((ino, idx))? {
            Some(v) => postcard::from_bytes(v.value())?,
            None => ChunkLayout::default(),
        };
        Ok(found)
    }

    /// Loads the objects of chunk `idx` of `ino` into the cache (prefetch, read-ahead), held
    /// there until read (held.rs: quick_cache evicted an unread prefetch first).
    pub fn prefetch_chunk(&self, ino: Ino, idx: u64) -> Result<()> {
        // At most half the cache is held: the agent keeps at most that much unopened
        // (its BUDGET_SHARE), and the other half stays for what is being read.
        let limit = self.cache_capacity / 2;
        for slice in &self.chunk_layout(ino, idx)?.slices {
            let name = ObjectName(slice.object);
            // Held *before* it is inserted: quick_cache evicts while it inserts, and an object
            // heavier than the cold section (3 % of the cache) was evicted by its own insertion
            // before a hold taken afterwards could pin it (issue 19: 404 of 1,883 prefetches
            // were gone when the file was opened). The size is the end of the slice's last
            // piece until the plaintext is known.
            let estimate = slice
                .pieces
                .iter()
                .map(|p| p.at as u64 + p.len as u64)
                .max()
                .unwrap_or(1);
            self.held.hold(name, estimate.max(1), limit);
            match self.cached_object(ino, idx, &name) {
                Ok(plain) => self.held.resize(&name, plain.len().max(1) as u64, limit),
                Err(e) => {
                    self.held.release(&name);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Whether every object of chunk `idx` of `ino` is in the decrypted cache (holes are).
    pub fn chunk_cached(&self, ino: Ino, idx: u64) -> bool {
        self.chunk_layout(ino, idx).is_ok_and(|l| {
            l.objects()
                // A look, not a use: `get` would mark the entry referenced and so change what
                // the cache evicts (the agent asks about every candidate on every open).
                .all(|o| self.cache.peek(&ObjectName(*o)).is_some())
        })
    }

    /// Reads up to `len` bytes at `offset` as committed (no write buffers) from an inode
    /// record the caller holds. Holes read as zeros; at most `len` bytes are allocated.
    pub fn read_from(&self, ino: Ino, node: &Inode, offset: u64, len: usize) -> Result<Vec<u8>> {
        if node.kind == Kind::Dir {
            return Err(StoreError::IsDir(show(&node.name)));
        }
        if offset >= node.size || len == 0 {
            return Ok(Vec::new());
        }
        let end = offset.saturating_add(len as u64).min(node.size);
        let mut out = vec![0u8; (end - offset) as usize];
        self.read_committed_into(ino, offset, &mut out)?;
        Ok(out)
    }

    /// Fills `out` with the committed bytes at `offset` (zeros where nothing is stored).
    pub(crate) fn read_committed_into(&self, ino: Ino, offset: u64, out: &mut [u8]) -> Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        let end = offset + out.len() as u64;
        let rows: Vec<(u64, ChunkLayout)> = {
            let txn = self.db.begin_read()?;
            let t = txn.open_table(LAYOUT)?;
            let mut rows = Vec::new();
            for item in t.range((ino, offset / CHUNK)..=(ino, (end - 1) / CHUNK))? {
                let (k, v) = item?;
                rows.push((k.value().1, postcard::from_bytes(v.value())?));
            }
            rows
        };
        for (idx, layout) in rows {
            let start = idx * CHUNK;
            let (s, e) = (start.max(offset), (start + CHUNK).min(end));
            let dst = &mut out[(s - offset) as usize..(e - offset) as usize];
            layout.read_into(
                (s - start) as u32,
                dst,
                |o| self.open_object(ino, idx, o),
                |o, p, have| {
                    self.chunk_error(
                        ino,
                        idx,
                        &ObjectName(*o),
                        format!(
                            "a piece wants bytes {}..{} of an object of {have} bytes",
                            p.at,
                            p.at as u64 + p.len as u64
                        ),
                    )
                },
            )?;
        }
        Ok(())
    }

    /// Replaces the whole content of file `ino` with what `reader` yields, recording a version
    /// (import, watch). `durable`: sync objects and commit durably (else the next
    /// [`Store::sync`] does). Buffered writes of the file are committed first.
    pub fn write_content(
        &self,
        ino: Ino,
        reader: &mut dyn Read,
        mtime: Option<Time>,
        durable: bool,
    ) -> Result<Inode> {
        self.flush(ino, false, false)?;
        let _guard = self.ingest.read().unwrap_or_else(|e| e.into_inner());
        let (chunks, objs, size) = self.ingest_reader(reader)?;
        if durable && !objs.is_empty() {
            self.backend.sync()?;
        }
        let node = self.write(durable, |tx| {
            let mut node = tx.inode(ino)?;
            if node.kind != Kind::File {
                return Err(StoreError::Invalid(format!(
                    "{} is not a regular file",
                    show(&node.name)
                )));
            }
            tx.note_objects(&objs)?;
            let old = tx.layouts(ino)?;
            let changed = node.size != size
                || old.len() != chunks.len()
                || old
                    .iter()
                    .zip(&chunks)
                    .any(|((i, l), (j, m))| i != j || l != m);
            let (freed, _) = tx.del_layouts_counted(ino, 0)?;
            self.gc.add_garbage(freed);
            node.stored = 0;
            for (idx, layout) in &chunks {
                node.stored += layout.covered();
                tx.put_layout(ino, *idx, layout)?;
            }
            node.size = size;
            let now = Time::now();
            node.mtime = mtime.unwrap_or(if changed { now } else { node.mtime });
            node.ctime = now;
            tx.put_inode(ino, &node)?;
            let path = tx.path_of(ino)?;
            tx.add_version(&path, tx.version_of(ino, &node, false)?, self.versions_keep)?;
            Ok(node)
        })?;
        if durable {
            self.run_hook()?;
        }
        Ok(node)
    }

    /// Chunks, seals and uploads everything `reader` yields, a few chunks at a time in
    /// parallel. All-zero chunks become holes.
    #[allow(clippy::type_complexity)]
    fn ingest_reader(
        &self,
        reader: &mut dyn Read,
    ) -> Result<(Vec<(u64, ChunkLayout)>, NewObjects, u64)> {
        const BATCH: usize = 4;
        let mut chunks = Vec::new();
        let mut objs = Vec::new();
        let mut size = 0u64;
        let mut next = 0u64;
        loop {
            let mut bufs = Vec::with_capacity(BATCH);
            let mut eof = false;
            while bufs.len() < BATCH {
                let buf = read_full(reader, CHUNK_SIZE)?;
                if buf.is_empty() {
                    eof = true;
                    break;
                }
                let short = buf.len() < CHUNK_SIZE;
                size += buf.len() as u64;
                if size > MAX_FILE_SIZE {
                    return Err(StoreError::TooBig("the imported file".into()));
                }
                bufs.push((next, buf));
                next += 1;
                if short {
                    eof = true;
                    break;
                }
            }
            let items = bufs
                .iter()
                .filter(|(_, b)| b.iter().any(|&x| x != 0))
                .map(|(i, b)| (*i, b.as_slice()))
                .collect();
            for (idx, (name, obj)) in self.seal_many(items)? {
                let len = bufs
                    .iter()
                    .find(|(i, _)| *i == idx)
                    .map(|(_, b)| b.len())
                    .unwrap_or(0);
                chunks.push((idx, ChunkLayout::whole(name, len as u32)));
                objs.extend(obj);
            }
            if eof {
                break;
            }
        }
        Ok((chunks, objs, size))
    }

    /// Rewrites chunk `idx` of `ino` as one slice if it still wants it: reads what its
    /// slices make, seals that, and swaps the layout in only if no commit changed it since.
    pub(crate) fn compact_chunk(&self, ino: Ino, idx: u64) -> Result<bool> {
        let _guard = self.ingest.read().unwrap_or_else(|e| e.into_inner());
        let layout = match self.chunk_layout(ino, idx) {
            Ok(l) => l,
            Err(_) => return Ok(false),
        };
        if !layout.needs_compaction() {
            return Ok(false);
        }
        let len = layout.end();
        if len as usize > CHUNK_SIZE {
            return Err(StoreError::Db(format!(
                "inode {ino} chunk {idx}: the layout reaches byte {len} of a {CHUNK_SIZE}-byte \
                 chunk; run `peros fsck`"
            )));
        }
        let mut data = vec![0u8; len as usize];
        layout.read_into(
            0,
            &mut data,
            |o| self.open_object(ino, idx, o),
            |o, _, have| {
                self.chunk_error(
                    ino,
                    idx,
                    &ObjectName(*o),
                    format!("short object ({have} bytes)"),
                )
            },
        )?;
        let (name, obj) = self.put_object(&data)?;
        let replaced = self.write(false, |tx| {
            if tx.layout(ino, idx)? != layout {
                return Ok(false); // a commit or truncate got there first: try another time
            }
            let mut node = tx.inode(ino)?;
            tx.note_objects(&obj.into_iter().collect::<Vec<_>>())?;
            let compacted = ChunkLayout {
                slices: vec![Slice {
                    object: name,
                    pieces: vec![Piece {
                        offset: 0,
                        len,
                        at: 0,
                    }],
                }],
            };
            node.stored = (node.stored + compacted.covered()).saturating_sub(layout.covered());
            tx.put_layout(ino, idx, &compacted)?;
            // Not a content change: no version, no mtime; the node is rewritten for `stored`.
            tx.txn
                .open_table(crate::INODES)?
                .insert(ino, postcard::to_allocvec(&node)?.as_slice())?;
            Ok(true)
        })?;
        if replaced {
            self.gc.add_garbage(layout.referenced());
        }
        Ok(replaced)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::meta::{Kind, ROOT_INO};
    use crate::{ObjectStoreBackend, Store, StoreOptions};

    const KIB: usize = 1024;

    /// A file of `len` bytes no other file shares (content-addressed objects would dedupe).
    fn file(store: &Store, name: &str, len: usize) -> u64 {
        let (ino, _) = store
            .create(ROOT_INO, name.as_bytes(), Kind::File, 0o644, 0, 0, 0, b"")
            .unwrap();
        // xorshift seeded by the name: incompressible and distinct per file.
        let mut x = name.bytes().fold(0x9E37_79B9_7F4A_7C15u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01B3)
        });
        let data: Vec<u8> = (0..len.div_ceil(8))
            .flat_map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()
            })
            .take(len)
            .collect();
        store
            .write_content(ino, &mut data.as_slice(), None, false)
            .unwrap();
        ino
    }

    /// A store on a local backend in `dir` with a chunk cache of `cache` bytes.
    fn store_with_cache(dir: &std::path::Path, cache: u64) -> Store {
        let backend = ObjectStoreBackend::local(&dir.join("objects")).unwrap();
        Store::open(
            &dir.join("meta.redb"),
            Arc::new(peros_crypto::Keyring::generate()),
            Arc::new(backend),
            StoreOptions {
                cache_bytes: cache,
                ..Default::default()
            },
        )
        .unwrap()
    }

    /// A prefetched object heavier than the cache's cold section (3 %) must survive its own
    /// insertion: quick_cache evicts while it inserts, before a hold taken afterwards pins it.
    #[test]
    fn a_heavy_prefetch_survives_its_own_insertion() {
        let dir = tempfile::tempdir().unwrap();
        let cache = 8 * 1024 * KIB;
        let store = store_with_cache(dir.path(), cache as u64);
        let small: Vec<u64> = (0..40)
            .map(|i| file(&store, &format!("s{i:02}"), 256 * KIB))
            .collect();
        let heavy: Vec<u64> = (0..3)
            .map(|i| file(&store, &format!("h{i}"), 1200 * KIB))
            .collect();
        // Read twice, so the small files fill the cache's hot section.
        for _ in 0..2 {
            for &ino in &small {
                store.read(ino, 0, 256 * KIB).unwrap();
            }
        }
        for &ino in &heavy {
            store.prefetch_chunk(ino, 0).unwrap();
            assert!(
                store.chunk_cached(ino, 0),
                "prefetch of {ino} evicted at once"
            );
        }
        for &ino in &heavy {
            assert!(store.chunk_cached(ino, 0), "prefetch of {ino} evicted");
        }
    }

    /// A prefetched chunk that is not read yet must outlive insertions of less than the
    /// cache's worth, as in an LRU: quick_cache put it in its 3 % cold section, where the
    /// next insertion evicted it (the live prefetcher's waste, issue 19).
    #[test]
    fn a_prefetched_chunk_outlives_reads_of_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let cache = 8 * 1024 * KIB;
        let store = store_with_cache(dir.path(), cache as u64);
        let size = 512 * KIB;
        let files: Vec<u64> = (0..24)
            .map(|i| file(&store, &format!("f{i:02}"), size))
            .collect();
        // Fill the cache with reads (16 × 512 KiB = its capacity).
        for &ino in &files[..16] {
            assert_eq!(store.read(ino, 0, size).unwrap().len(), size);
        }
        let ahead = files[16];
        store.prefetch_chunk(ahead, 0).unwrap();
        assert!(store.chunk_cached(ahead, 0));
        // A quarter of the cache of other reads: an LRU keeps the prefetched chunk.
        for &ino in &files[17..21] {
            store.read(ino, 0, size).unwrap();
            assert!(store.chunk_cached(ahead, 0), "evicted after reading {ino}");
        }
        // The join and the bound: reading it takes it from the cache, which stays in budget.
        assert_eq!(store.read(ahead, 0, size).unwrap().len(), size);
        let st = store.stats().unwrap();
        assert!(
            st.cache_bytes <= cache as u64,
            "{} > {cache}",
            st.cache_bytes
        );
    }
}

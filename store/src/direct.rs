//! Sealed objects written to a local directory around the page cache (`O_DIRECT`).
//!
//! A sealed object is never read back from the page cache in a way that matters: the store
//! keeps decrypted chunks in its own cache, and the ciphertext is useless to anyone else. A
//! buffered write copies every sealed byte into fresh page-cache pages first (measured during
//! a sequential write on the mount: that copy was the largest single cost, 10–13 % of all CPU,
//! above ChaCha20 and BLAKE3 together; 128 files of 4 MiB took 0.2–1.5 s of CPU buffered and
//! 0.04 s with `O_DIRECT` on this machine). So the local backend writes the block-aligned part
//! of each object with `O_DIRECT` from a page-aligned buffer ([`AlignedBuf`], which sealing
//! fills) and the short tail with an ordinary write, into a staging file that is renamed into
//! place. Durability is unchanged: `syncfs` (the backend's `sync`) flushes both. The store
//! seals only whole chunks into aligned buffers (`Store::put_object` says why); anything
//! not page-aligned is written the ordinary way.
//!
//! Where `O_DIRECT` is refused (tmpfs, some FUSE or network file systems) the object is
//! written the ordinary way and the backend stops trying.
//!
//! Why not object_store's `LocalFileSystem::put` here: it takes any buffer and writes it
//! buffered; it has no way to ask for direct I/O. Why a small buffer type of our own rather than
//! a crate's aligned vector: sealing needs an `io::Write` target and `Bytes::from_owner` an
//! owner, and a page-aligned allocation with `Write` is these few lines.

use std::alloc::{alloc, dealloc, realloc, Layout};
use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Memory and file offsets of direct I/O are aligned to this (a page: enough for any
/// logical block size up to 4 KiB).
pub const ALIGN: usize = 4096;

/// A growable byte buffer whose start is page-aligned, to be written with `O_DIRECT`.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
    cap: usize,
}

// SAFETY: AlignedBuf owns its allocation exclusively, like Vec<u8>.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared references only read the initialised bytes.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// An empty buffer with room for at least `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        let cap = capacity.max(1).next_multiple_of(ALIGN);
        let layout = Layout::from_size_align(cap, ALIGN).expect("page-aligned layout");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc(layout) };
        let ptr = NonNull::new(ptr).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        Self { ptr, len: 0, cap }
    }

    fn reserve(&mut self, more: usize) {
        let want = self.len + more;
        if want <= self.cap {
            return;
        }
        let cap = want.max(self.cap * 2).next_multiple_of(ALIGN);
        let old = Layout::from_size_align(self.cap, ALIGN).expect("page-aligned layout");
        // SAFETY: ptr was allocated with `old`; the new size is non-zero and a multiple of the
        // alignment, which realloc keeps.
        let ptr = unsafe { realloc(self.ptr.as_ptr(), old, cap) };
        self.ptr = NonNull::new(ptr).unwrap_or_else(|| {
            std::alloc::handle_alloc_error(Layout::from_size_align(cap, ALIGN).expect("layout"))
        });
        self.cap = cap;
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        let layout = Layout::from_size_align(self.cap, ALIGN).expect("page-aligned layout");
        // SAFETY: ptr was allocated (or reallocated) with exactly this layout.
        unsafe { dealloc(self.ptr.as_ptr(), layout) }
    }
}

impl AsRef<[u8]> for AlignedBuf {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the first `len` bytes were written by `write`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Write for AlignedBuf {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.reserve(data.len());
        // SAFETY: reserve made room for data.len() bytes after len; the regions cannot overlap
        // (data is borrowed immutably while self is borrowed mutably).
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.ptr.as_ptr().add(self.len),
                data.len(),
            )
        };
        self.len += data.len();
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether direct I/O still looks possible for this process's local stores.
static DIRECT_OK: AtomicBool = AtomicBool::new(true);
static STAGING: AtomicU64 = AtomicU64::new(0);

/// Writes `data` as the file `dest` (replacing one that exists: objects are named by their
/// content, so an existing one holds the same plaintext). The block-aligned part goes around
/// the page cache when `data` starts page-aligned and the file system allows it.
pub fn put_file(dest: &Path, data: &[u8]) -> std::io::Result<()> {
    // object_store's LocalFileSystem skips `name#<digits>` when listing: staging files of an
    // interrupted put are never taken for objects.
    let staging = {
        let mut s = dest.as_os_str().to_owned();
        let n = STAGING.fetch_add(1, Ordering::Relaxed);
        s.push(format!("#{}{n}", std::process::id()));
        std::path::PathBuf::from(s)
    };
    let open = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&staging)
    };
    let file = match open() {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            open()?
        }
        Err(e) => return Err(e),
    };
    let written = (|| {
        let direct_len = if (data.as_ptr() as usize).is_multiple_of(ALIGN)
            && DIRECT_OK.load(Ordering::Relaxed)
        {
            data.len() / ALIGN * ALIGN
        } else {
            0
        };
        let mut done = 0;
        if direct_len > 0 && set_direct(&file, true) {
            match file.write_all_at(&data[..direct_len], 0) {
                Ok(()) => done = direct_len,
                // Refused at the first write by some file systems: write it the ordinary way.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    DIRECT_OK.store(false, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
            set_direct(&file, false);
        }
        file.write_all_at(&data[done..], done as u64)
    })();
    let published = written.and_then(|()| std::fs::rename(&staging, dest));
    if published.is_err() {
        let _ = std::fs::remove_file(&staging);
    }
    published
}

/// Turns `O_DIRECT` on or off for `file`; false if the file system refuses it.
fn set_direct(file: &std::fs::File, on: bool) -> bool {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor this function's caller keeps open.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 {
            return false;
        }
        let want = if on {
            flags | libc::O_DIRECT
        } else {
            flags & !libc::O_DIRECT
        };
        if libc::fcntl(fd, libc::F_SETFL, want) != 0 {
            if on {
                DIRECT_OK.store(false, Ordering::Relaxed);
            }
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buffer_grows_and_stays_aligned() {
        let mut b = AlignedBuf::with_capacity(10);
        assert_eq!(b.as_ref().as_ptr() as usize % ALIGN, 0);
        for i in 0..3000u32 {
            b.write_all(&i.to_le_bytes()).unwrap();
        }
        assert_eq!(b.as_ref().len(), 12_000);
        assert_eq!(b.as_ref().as_ptr() as usize % ALIGN, 0);
        assert_eq!(&b.as_ref()[4..8], &1u32.to_le_bytes());
        assert_eq!(&b.as_ref()[11_996..], &2999u32.to_le_bytes());
    }

    #[test]
    fn objects_of_every_length_land_whole_and_replace() {
        let dir = std::env::temp_dir().join(format!("peros-direct-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for len in [
            0,
            1,
            ALIGN - 1,
            ALIGN,
            ALIGN + 1,
            3 * ALIGN + 17,
            (4 << 20) + 300,
        ] {
            let mut b = AlignedBuf::with_capacity(len);
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            b.write_all(&data).unwrap();
            let dest = dir.join("chunks/ab").join(format!("obj{len}"));
            put_file(&dest, b.as_ref()).unwrap();
            assert_eq!(std::fs::read(&dest).unwrap(), data, "length {len}");
            // Unaligned input takes the ordinary path; a second put replaces the first.
            let other: Vec<u8> = data.iter().map(|x| x ^ 0xff).collect();
            put_file(&dest, &other).unwrap();
            assert_eq!(std::fs::read(&dest).unwrap(), other, "length {len}");
        }
        let left: Vec<_> = std::fs::read_dir(dir.join("chunks/ab"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains('#'))
            .collect();
        assert!(left.is_empty(), "staging files left: {left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

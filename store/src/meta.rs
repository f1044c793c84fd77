//! Metadata records as stored in redb (postcard-encoded).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub type Ino = u64;
pub const ROOT_INO: Ino = 1;

/// Fixed chunk size. Content-defined chunking is a later upgrade; fixed chunks keep random
/// writes cheap (a write touches exactly the chunks it covers).
pub const CHUNK_SIZE: usize = 4 * 1024 * 1024;

/// The largest file size (and write end): 2^62 bytes, well inside `off_t`; layouts are
/// sparse, so a file this size costs only the chunks it holds.
pub const MAX_FILE_SIZE: u64 = 1 << 62;

/// Extended attributes of one inode, names and values together, at most: they live in the
/// inode record, which every lookup and getattr decodes whole, so their size must stay small.
/// (One value may be the kernel's largest, 64 KiB; ext4 allows about one block.) Beyond it
/// setxattr fails with ENOSPC, as setxattr(2) documents for "no space left for the attribute".
pub const XATTR_TOTAL_MAX: usize = 128 * 1024;
/// The names of one inode's xattrs as listxattr returns them (NUL-terminated), at most: the
/// kernel's own limit for a list (XATTR_LIST_MAX), so listxattr can always return them all.
pub const XATTR_LIST_MAX: usize = 64 * 1024;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

impl Kind {
    pub fn letter(self) -> char {
        match self {
            Kind::File => '-',
            Kind::Dir => 'd',
            Kind::Symlink => 'l',
            Kind::Fifo => 'p',
            Kind::Socket => 's',
            Kind::CharDevice => 'c',
            Kind::BlockDevice => 'b',
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Time {
    pub secs: i64,
    pub nanos: u32,
}

impl Time {
    pub fn now() -> Self {
        Self::from_system(SystemTime::now())
    }

    pub fn from_system(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Time {
                secs: d.as_secs() as i64,
                nanos: d.subsec_nanos(),
            },
            Err(e) => {
                let d = e.duration();
                if d.subsec_nanos() == 0 {
                    Time {
                        secs: -(d.as_secs() as i64),
                        nanos: 0,
                    }
                } else {
                    Time {
                        secs: -(d.as_secs() as i64) - 1,
                        nanos: 1_000_000_000 - d.subsec_nanos(),
                    }
                }
            }
        }
    }

    pub fn to_system(self) -> SystemTime {
        if self.secs >= 0 {
            UNIX_EPOCH + std::time::Duration::new(self.secs as u64, self.nanos)
        } else {
            UNIX_EPOCH - std::time::Duration::from_secs((-self.secs) as u64)
                + std::time::Duration::from_nanos(self.nanos as u64)
        }
    }
}

/// `len` bytes at `offset` within a chunk, stored at `at` in its slice object's plaintext.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub offset: u32,
    pub len: u32,
    pub at: u32,
}

/// One sealed object written once by one commit, and the parts of a chunk it holds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Slice {
    /// Keyed name of the sealed object (a MAC of its plaintext).
    pub object: [u8; 32],
    pub pieces: Vec<Piece>,
}

/// What one 4 MiB chunk of a file holds: slices oldest first, newer ones win where they
/// overlap; bytes no piece covers are zeros (holes cost nothing). Stored in its own table
/// keyed by (inode, chunk index), so a write's metadata cost does not grow with the file.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct ChunkLayout {
    pub slices: Vec<Slice>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Inode {
    pub kind: Kind,
    /// Permission bits (07777).
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub size: u64,
    pub atime: Time,
    pub mtime: Time,
    pub ctime: Time,
    pub crtime: Time,
    pub rdev: u32,
    /// Bytes of the file backed by stored data (holes excluded), for `st_blocks`.
    pub stored: u64,
    /// Symlink target bytes.
    pub target: Vec<u8>,
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// The link this inode was created or last renamed under: gives it a path for versions.
    pub parent: Ino,
    pub name: Vec<u8>,
}

impl Inode {
    pub fn new(kind: Kind, perm: u16, uid: u32, gid: u32, parent: Ino, name: &[u8]) -> Self {
        let now = Time::now();
        Inode {
            kind,
            perm: perm & 0o7777,
            uid,
            gid,
            nlink: if kind == Kind::Dir { 2 } else { 1 },
            size: 0,
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
            rdev: 0,
            stored: 0,
            target: Vec::new(),
            xattrs: BTreeMap::new(),
            parent,
            name: name.to_vec(),
        }
    }

    /// `st_mode` bits: type and permissions.
    pub fn mode(&self) -> u32 {
        let t = match self.kind {
            Kind::File => libc::S_IFREG,
            Kind::Dir => libc::S_IFDIR,
            Kind::Symlink => libc::S_IFLNK,
            Kind::Fifo => libc::S_IFIFO,
            Kind::Socket => libc::S_IFSOCK,
            Kind::CharDevice => libc::S_IFCHR,
            Kind::BlockDevice => libc::S_IFBLK,
        };
        t | self.perm as u32
    }

    /// Bytes actually stored for this inode (holes excluded), for `st_blocks`.
    pub fn stored_bytes(&self) -> u64 {
        self.stored.min(self.size)
    }
}

/// One recorded state of the file at a path.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct VersionRecord {
    /// When this version was recorded.
    pub recorded: Time,
    pub size: u64,
    pub perm: u16,
    pub mtime: Time,
    /// The file's chunk layouts at that time, by chunk index (holes absent).
    pub layout: Vec<(u64, ChunkLayout)>,
    /// A tombstone: the path was deleted at `recorded`.
    pub deleted: bool,
}

/// A directory entry as listed.
#[derive(Clone, Debug)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub ino: Ino,
    pub kind: Kind,
}

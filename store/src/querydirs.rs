//! Query directories: the seam between the mount and whoever evaluates queries.
//! (Here, not in the FUSE crate, so the views crate and the agent above it depend on the
//! store only, never on fuser.)
//!
//! The mount shows `@views` and `@search`; a [`QueryDirs`] implementation (the `peros-views`
//! crate) supplies ready-made listings, and the FUSE layer only hands out inode numbers for
//! them. Every call must be cheap: listings are precomputed in the background.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use crate::Ino;

/// One entry of a query directory: a symlink to a real file.
#[derive(Clone, Debug)]
pub struct ListingEntry {
    /// Name shown in the directory (readable, unique within the listing).
    pub name: Vec<u8>,
    /// Relative symlink target (`../../path/in/store`).
    pub target: Vec<u8>,
    /// The real file's inode.
    pub ino: Ino,
    pub score: f32,
    /// The real file's modification time (seconds) and size, shown on the link.
    pub mtime: i64,
    pub size: u64,
}

/// The evaluated contents of one view or search.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    pub query: String,
    /// How it was evaluated: "text", "hybrid", or "filter".
    pub mode: String,
    /// Why results may be partial (model missing, embeddings pending).
    pub note: Option<String>,
    pub entries: Vec<ListingEntry>,
    pub by_name: HashMap<Vec<u8>, usize>,
    /// When the contents last changed (the directory's mtime).
    pub changed: Option<SystemTime>,
}

impl Listing {
    pub fn new(
        query: String,
        mode: String,
        note: Option<String>,
        entries: Vec<ListingEntry>,
    ) -> Self {
        let by_name = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name.clone(), i))
            .collect();
        Self {
            query,
            mode,
            note,
            entries,
            by_name,
            changed: Some(SystemTime::now()),
        }
    }

    pub fn get(&self, name: &[u8]) -> Option<&ListingEntry> {
        self.by_name.get(name).map(|&i| &self.entries[i])
    }

    /// Same entries (names, targets, order)? Used to keep the old `changed` time.
    pub fn same_entries(&self, other: &Listing) -> bool {
        self.entries.len() == other.entries.len()
            && self
                .entries
                .iter()
                .zip(&other.entries)
                .all(|(a, b)| a.name == b.name && a.target == b.target && a.ino == b.ino)
    }
}

/// Why a view operation was refused; mapped to an errno by the file system.
#[derive(Debug, thiserror::Error)]
pub enum QueryDirError {
    /// Malformed name or query (EINVAL).
    #[error("{0}")]
    Invalid(String),
    /// The view cannot change that way (EACCES), e.g. removing an entry of a query view.
    #[error("{0}")]
    ReadOnly(String),
    #[error("view {0:?} already exists")]
    Exists(String),
    #[error("no view named {0:?}")]
    NotFound(String),
    /// views.toml could not be read or written (EIO).
    #[error("{0}")]
    Config(String),
}

impl QueryDirError {
    pub fn errno(&self) -> i32 {
        match self {
            QueryDirError::Invalid(_) => libc::EINVAL,
            QueryDirError::ReadOnly(_) => libc::EACCES,
            QueryDirError::Exists(_) => libc::EEXIST,
            QueryDirError::NotFound(_) => libc::ENOENT,
            QueryDirError::Config(_) => libc::EIO,
        }
    }
}

/// What the file system needs from the views service.
pub trait QueryDirs: Send + Sync {
    /// Names of the declared views, sorted.
    fn view_names(&self) -> Vec<String>;
    /// The current listing of a view (None = no such view).
    fn view(&self, name: &str) -> Option<Arc<Listing>>;
    /// Listing for a free-text query under `@search` (cached; refined in the background).
    fn search(&self, text: &str) -> Result<Arc<Listing>, QueryDirError>;
    /// Searches still cached, newest first (what `ls @search` shows).
    fn recent_searches(&self) -> Vec<String>;
    /// `mkdir @views/NAME`: a view named and defined by NAME.
    fn create_view(&self, name: &str) -> Result<(), QueryDirError>;
    /// `rmdir @views/NAME`.
    fn remove_view(&self, name: &str) -> Result<(), QueryDirError>;
    /// `mv @views/A @views/B`.
    fn rename_view(&self, from: &str, to: &str) -> Result<(), QueryDirError>;
    /// When the set of views last changed (the `@views` directory's mtime).
    fn views_changed(&self) -> SystemTime;
    /// `rm @views/VIEW/NAME`: takes the file out of the view where the view allows it (a
    /// view of one tag loses the tag on that file); the file itself is never touched.
    fn remove_entry(&self, view: &str, name: &[u8]) -> Result<(), QueryDirError> {
        let _ = name;
        Err(QueryDirError::ReadOnly(format!(
            "view {view:?} lists a query's results: change its query to leave a file out"
        )))
    }
}

//! Access events for the agent: what was opened, read and closed, by which process.
//! (Here, not in the FUSE crate, so the agent depends on the store only.)
//!
//! The mount calls [`AccessSink::record`] from inside FUSE callbacks (open, read, release),
//! so a sink must never block: the agent's sink pushes into a bounded channel and drops
//! (and counts) events when it is full. Paths are not resolved here — that is a metadata
//! lookup the agent does on its own thread.

use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessKind {
    Open,
    Read,
    Close,
}

#[derive(Clone, Copy, Debug)]
pub struct AccessEvent {
    pub kind: AccessKind,
    pub ino: u64,
    /// The requesting process (0 when the kernel did not say).
    pub pid: u32,
    /// Bytes returned by a read (0 for open and close).
    pub bytes: u64,
    /// Milliseconds since the epoch.
    pub time_ms: u64,
    /// For opens: the file's first chunk was already decrypted in the store's chunk cache
    /// (a prefetch or earlier read made this open fast). Always true for empty files.
    pub cached: bool,
}

/// Receives access events. Implementations must return at once (bounded queue, try_send).
pub trait AccessSink: Send + Sync {
    fn record(&self, ev: AccessEvent);
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

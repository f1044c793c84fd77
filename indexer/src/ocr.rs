//! OCR: the text of pictures and of PDF pages without a text layer.
//!
//! Tesseract reads (its CLI, `tesseract stdin stdout`: the maintained bindings need
//! libtesseract's headers at build time and gain nothing for a process per page), poppler's
//! `pdftocairo` renders a PDF page (scaled to fit 3,500 px, about A4 at 300 dpi). Both get the
//! content on stdin and answer on stdout: no plaintext touches a temporary file. Each runs at
//! nice 19 with one thread, a per-part time limit ([`OcrOptions::time_limit`]) and a memory
//! limit, so a hostile picture costs bounded time and memory and is reported, never fatal.
//!
//! Results are cached by a keyed hash of (content, part, languages) in `ocr_cache`, so a part
//! is recognised once whatever file, copy or version holds it; for stores that share their
//! index (remote tenants) each result is also sealed into the object store under
//! [`OCR_PREFIX`] and pulled by a fresh node, like embeddings.
//!
//! The OCR workers are the last in line: they run only while the text queue is empty (alongside
//! the embedder, all at the lowest priority), each one part at a time (half the cores by
//! default, `[index] ocr_workers`), and when a file's parts are all read it queues the file for text indexing again,
//! where extraction finds the recognised text in the cache ([`CachedOcr`]).
//!
//! This module must not run on a FUSE callback or hold a lock while a tool runs.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use peros_store::{Ino, Kind};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::Serialize;

use crate::extract::{OcrLookup, OcrPart};
use crate::state::{FileExtra, OcrResult, FILE_EXTRA, OCR_CACHE, OCR_QUEUE, SEGMENTS};
use crate::{Indexer, Result};

/// The object-store prefix of sealed OCR results.
pub const OCR_PREFIX: &str = "index/ocr/";
const RESULT_MAGIC: &[u8; 9] = b"PEROSOCR1";

/// A rendered page or a recognised text larger than this is refused (bounded memory).
const MAX_TOOL_OUTPUT: usize = 256 << 20;
/// Address-space limit of each OCR tool process.
const TOOL_MEMORY_LIMIT: u64 = 3 << 30;
/// Longest side of a rendered PDF page, in pixels.
const PAGE_PIXELS: u32 = 3_500;

/// `[index] ocr_*` settings.
#[derive(Clone, Debug)]
pub struct OcrOptions {
    /// Tesseract languages joined by '+' ("eng", "eng+deu"); each needs its
    /// `tesseract-ocr-<lang>` package.
    pub languages: String,
    /// Per part (a picture, a page).
    pub time_limit: Duration,
    pub enabled: bool,
    /// OCR workers (each reads one part at a time with one thread).
    pub workers: usize,
}

impl Default for OcrOptions {
    fn default() -> Self {
        Self {
            languages: "eng".into(),
            time_limit: Duration::from_secs(120),
            enabled: true,
            workers: default_workers(),
        }
    }
}

/// Half the cores, at least one: OCR shares the machine with the embedder (both at the
/// lowest priority) and with the user's own work; on 2 cores that is one worker.
fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() / 2)
        .unwrap_or(1)
        .max(1)
}

/// The OCR queue, for `peros status`.
#[derive(Serialize, Clone, Debug, Default)]
pub struct OcrStatus {
    pub enabled: bool,
    pub languages: String,
    /// Files with parts still to read, and those parts.
    pub queued_files: u64,
    pub queued_parts: u64,
    /// Parts read since open, and how many of them failed (time limit, damaged picture).
    pub done: u64,
    pub failed: u64,
    /// Parts whose text came from the cache (this node's or the tenant's in the object store).
    pub cached: u64,
    /// Distinct parts in the cache.
    pub cache_entries: u64,
    /// Why OCR cannot run here (Tesseract missing…), if so.
    pub unavailable: Option<String>,
}

pub(crate) struct OcrKeys {
    key: zeroize::Zeroizing<[u8; 32]>,
}

impl OcrKeys {
    pub fn new(keyring: &peros_crypto::Keyring) -> Self {
        Self {
            key: keyring.derive_key("peros index ocr keys v1"),
        }
    }

    /// The cache key of one part of a content (blake3 of the file's bytes) read in `languages`.
    pub fn key_of(&self, content: &blake3::Hash, part: OcrPart, languages: &str) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(content.as_bytes());
        h.update(part.label().as_bytes());
        h.update(b"\0");
        h.update(languages.as_bytes());
        *h.finalize().as_bytes()
    }
}

/// Extraction's view of the cache for one content. The content is hashed only when an
/// extractor asks (pictures, PDF pages without text), not for every file indexed.
pub(crate) struct CachedOcr<'a> {
    ix: &'a Indexer,
    bytes: &'a [u8],
    content: std::cell::OnceCell<blake3::Hash>,
}

impl<'a> CachedOcr<'a> {
    pub fn new(ix: &'a Indexer, bytes: &'a [u8]) -> Self {
        Self {
            ix,
            bytes,
            content: std::cell::OnceCell::new(),
        }
    }
}

impl OcrLookup for CachedOcr<'_> {
    fn recognised(&self, part: OcrPart) -> Option<String> {
        let content = self.content.get_or_init(|| blake3::hash(self.bytes));
        let key = self
            .ix
            .ocr_keys
            .key_of(content, part, &self.ix.opts.ocr.languages);
        self.ix.cached_ocr(&key).ok().flatten().map(|r| r.text)
    }
}

/// Runs `program` on `input` (stdin) and returns its stdout, within `deadline`.
fn run_tool(
    program: &str,
    args: &[&str],
    input: &[u8],
    deadline: Instant,
) -> Result<Vec<u8>, String> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("OMP_THREAD_LIMIT", "1");
    // SAFETY: only async-signal-safe libc calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setpriority(libc::PRIO_PROCESS, 0, 19);
            let lim = libc::rlimit {
                rlim_cur: TOOL_MEMORY_LIMIT,
                rlim_max: TOOL_MEMORY_LIMIT,
            };
            libc::setrlimit(libc::RLIMIT_AS, &lim);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("{program} is not installed ({})", install_hint())
        } else {
            format!("cannot start {program}: {e}")
        }
    })?;
    let mut stdin = child.stdin.take().expect("piped");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        // A tool that stops reading (bad input) closes the pipe: not an error here.
        let _ = stdin.write_all(&input);
    });
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let r = (&mut stdout)
            .take(MAX_TOOL_OUTPUT as u64 + 1)
            .read_to_end(&mut out);
        // Drain the rest so the tool is not blocked on a full pipe before it is killed.
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        r.map(|_| out)
    });
    let mut stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = (&mut stderr).take(64 << 10).read_to_end(&mut out);
        let _ = std::io::copy(&mut stderr, &mut std::io::sink());
        out
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = writer.join();
                return Err(format!(
                    "{program} did not finish within the OCR time limit"
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for {program}: {e}")),
        }
    };
    let _ = writer.join();
    let out = reader
        .join()
        .map_err(|_| format!("reading {program}'s output"))?
        .map_err(|e| format!("reading {program}'s output: {e}"))?;
    let err = errors.join().unwrap_or_default();
    if !status.success() {
        let msg = String::from_utf8_lossy(&err);
        let last = msg
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no message");
        return Err(format!("{program} failed ({status}): {last}"));
    }
    if out.len() > MAX_TOOL_OUTPUT {
        return Err(format!(
            "{program}'s output is over {} MiB",
            MAX_TOOL_OUTPUT >> 20
        ));
    }
    Ok(out)
}

fn install_hint() -> &'static str {
    "install tesseract-ocr, tesseract-ocr-eng and poppler-utils, as scripts/setup.sh does"
}

/// The text of one part of a file: renders a PDF page first.
pub fn recognise(bytes: &[u8], part: OcrPart, opts: &OcrOptions) -> Result<String, String> {
    let deadline = Instant::now() + opts.time_limit;
    let picture;
    let image: &[u8] = match part {
        OcrPart::Image => bytes,
        OcrPart::PdfPage(n) => {
            let page = n.to_string();
            let scale = PAGE_PIXELS.to_string();
            // pdftocairo, not pdftoppm: only it writes a single page to stdout.
            picture = run_tool(
                "pdftocairo",
                &[
                    "-f",
                    &page,
                    "-l",
                    &page,
                    "-singlefile",
                    "-scale-to",
                    &scale,
                    "-gray",
                    "-png",
                    "-",
                    "-",
                ],
                bytes,
                deadline,
            )?;
            if picture.is_empty() {
                return Err(format!("pdftocairo rendered nothing for page {n}"));
            }
            &picture
        }
    };
    let out = run_tool(
        "tesseract",
        &["stdin", "stdout", "-l", &opts.languages, "--psm", "3"],
        image,
        deadline,
    )?;
    Ok(tidy(&String::from_utf8_lossy(&out)))
}

/// Tesseract's output without form feeds, trailing blanks and runs of blank lines.
fn tidy(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank = false;
    for line in s.split(['\n', '\u{c}']) {
        let line = line.trim_end();
        if line.is_empty() {
            blank = !out.is_empty();
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank { "\n\n" } else { "\n" });
        }
        blank = false;
        out.push_str(line);
    }
    out
}

/// Whether Tesseract runs here with these languages; the reason if not.
pub fn check_tesseract(languages: &str) -> Result<(), String> {
    let out = Command::new("tesseract")
        .arg("--list-langs")
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                format!("Tesseract is not installed ({})", install_hint())
            }
            _ => format!("cannot run tesseract: {e}"),
        })?;
    let listed =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let have: Vec<&str> = listed.lines().map(str::trim).collect();
    for lang in languages.split('+').filter(|l| !l.is_empty()) {
        if !have.contains(&lang) {
            return Err(format!(
                "Tesseract has no '{lang}' language data ([index] ocr_languages = \"{languages}\"): \
                 install tesseract-ocr-{lang}"
            ));
        }
    }
    Ok(())
}

fn encode_result(key: &[u8; 32], r: &OcrResult) -> Vec<u8> {
    let body = postcard::to_allocvec(r).unwrap_or_default();
    let mut out = Vec::with_capacity(RESULT_MAGIC.len() + 32 + body.len());
    out.extend_from_slice(RESULT_MAGIC);
    out.extend_from_slice(key);
    out.extend_from_slice(&body);
    out
}

fn decode_result(b: &[u8]) -> Option<([u8; 32], OcrResult)> {
    let rest = b.strip_prefix(RESULT_MAGIC)?;
    let key: [u8; 32] = rest.get(..32)?.try_into().ok()?;
    let r = postcard::from_bytes(rest.get(32..)?).ok()?;
    Some((key, r))
}

impl Indexer {
    pub(crate) fn cached_ocr(&self, key: &[u8; 32]) -> Result<Option<OcrResult>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(OCR_CACHE)?;
        let v = t.get(key.as_slice())?;
        Ok(match v {
            Some(v) => Some(postcard::from_bytes(v.value())?),
            None => None,
        })
    }

    fn cache_ocr(&self, key: &[u8; 32], r: &OcrResult) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(OCR_CACHE)?
            .insert(key.as_slice(), postcard::to_allocvec(r)?.as_slice())?;
        txn.commit()?;
        if self.opts.share_embeddings {
            if let Err(e) = self.push_ocr_result(key, r) {
                tracing::warn!("{e}: this OCR result stays on this node");
            }
        }
        Ok(())
    }

    fn push_ocr_result(&self, key: &[u8; 32], r: &OcrResult) -> Result<()> {
        let object = self.put_sealed(OCR_PREFIX, &encode_result(key, r), "an OCR result")?;
        let txn = self.db.begin_write()?;
        txn.open_table(SEGMENTS)?.insert(object.as_str(), ())?;
        txn.commit()?;
        Ok(())
    }

    /// Imports the tenant's OCR results this node has not seen (remote stores).
    pub fn pull_ocr_results(&self) -> Result<usize> {
        if !self.opts.share_embeddings {
            return Ok(0);
        }
        self.pull_sealed(OCR_PREFIX, "OCR result", |txn, object, plain| {
            let Some((key, r)) = decode_result(plain) else {
                tracing::warn!("OCR result {object} is malformed: skipped");
                return Ok(0);
            };
            let mut t = txn.open_table(OCR_CACHE)?;
            if t.get(key.as_slice())?.is_some() {
                return Ok(0);
            }
            t.insert(key.as_slice(), postcard::to_allocvec(&r)?.as_slice())?;
            Ok(1)
        })
    }

    /// The OCR queue and counters.
    pub fn ocr_status(&self) -> Result<OcrStatus> {
        let txn = self.db.begin_read()?;
        let queue = txn.open_table(OCR_QUEUE)?;
        let extra = txn.open_table(FILE_EXTRA)?;
        let mut parts = 0u64;
        for item in queue.iter()? {
            let (ino, _) = item?;
            if let Some(v) = extra.get(ino.value())? {
                let x: FileExtra = postcard::from_bytes(v.value())?;
                parts += x.ocr_pending.len() as u64;
            }
        }
        Ok(OcrStatus {
            enabled: self.opts.ocr.enabled,
            languages: self.opts.ocr.languages.clone(),
            queued_files: queue.len()?,
            queued_parts: parts,
            done: self.counters.ocr_done.load(Ordering::Relaxed),
            failed: self.counters.ocr_failed.load(Ordering::Relaxed),
            cached: self.counters.ocr_cached.load(Ordering::Relaxed),
            cache_entries: txn.open_table(OCR_CACHE)?.len()?,
            unavailable: self.ocr_unavailable.lock().clone(),
        })
    }

    /// The next file waiting for OCR.
    /// Claims the next file waiting for OCR that no other OCR worker holds.
    fn next_ocr_file(&self) -> Result<Option<Ino>> {
        let txn = self.db.begin_read()?;
        let q = txn.open_table(OCR_QUEUE)?;
        let mut claimed = self.ocr_claimed.lock();
        for item in q.iter()? {
            let ino = item?.0.value();
            if claimed.insert(ino) {
                return Ok(Some(ino));
            }
        }
        Ok(None)
    }

    fn drop_from_ocr_queue(&self, ino: Ino) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(OCR_QUEUE)?.remove(ino)?;
        txn.commit()?;
        Ok(())
    }

    /// Reads the parts of one queued file that are not cached yet, then queues the file for
    /// text indexing (which merges the text in). `Ok(false)`: OCR cannot run here.
    pub(crate) fn ocr_file(&self, ino: Ino) -> Result<bool> {
        let pending = {
            let txn = self.db.begin_read()?;
            let v = txn.open_table(FILE_EXTRA)?.get(ino)?;
            match v {
                Some(v) => postcard::from_bytes::<FileExtra>(v.value())?.ocr_pending,
                None => Vec::new(),
            }
        };
        let node = match self.store.getattr(ino) {
            Ok(n) if n.kind == Kind::File && n.nlink > 0 => Some(n),
            _ => None,
        };
        let (Some(node), false) = (node, pending.is_empty()) else {
            self.drop_from_ocr_queue(ino)?;
            return Ok(true);
        };
        let bytes = match self.store.read_from(ino, &node, 0, node.size as usize) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("OCR: cannot read inode {ino}: {e}; skipped");
                self.drop_from_ocr_queue(ino)?;
                return Ok(true);
            }
        };
        let content = blake3::hash(&bytes);
        for part in pending {
            if self.stop.load(Ordering::SeqCst) {
                return Ok(true);
            }
            let key = self
                .ocr_keys
                .key_of(&content, part, &self.opts.ocr.languages);
            if self.cached_ocr(&key)?.is_some() {
                self.counters.ocr_cached.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let t = Instant::now();
            let result = match recognise(&bytes, part, &self.opts.ocr) {
                Ok(text) => OcrResult {
                    text,
                    error: None,
                    millis: t.elapsed().as_millis() as u64,
                },
                Err(e) if e.contains("is not installed") => {
                    *self.ocr_unavailable.lock() = Some(e);
                    return Ok(false);
                }
                Err(e) => {
                    tracing::warn!("OCR of {} of inode {ino}: {e}", part.label());
                    self.counters.ocr_failed.fetch_add(1, Ordering::Relaxed);
                    OcrResult {
                        text: String::new(),
                        error: Some(e),
                        millis: t.elapsed().as_millis() as u64,
                    }
                }
            };
            self.counters.ocr_done.fetch_add(1, Ordering::Relaxed);
            self.cache_ocr(&key, &result)?;
        }
        self.drop_from_ocr_queue(ino)?;
        self.queue.lock().insert(ino);
        self.wake.notify_all();
        Ok(true)
    }

    /// The OCR worker: one part at a time, only while the text queue is empty.
    pub(crate) fn ocr_worker(&self) {
        if let Err(e) = check_tesseract(&self.opts.ocr.languages) {
            tracing::warn!("OCR is off: {e}");
            *self.ocr_unavailable.lock() = Some(e);
        }
        if let Err(e) = self.pull_ocr_results() {
            tracing::warn!("{e}: OCR results of other nodes are not used");
        }
        while !self.stop.load(Ordering::SeqCst) {
            // Text first; embeddings run alongside (both at the lowest priority).
            let text_busy =
                !self.queue.lock().is_empty() || self.text_working.load(Ordering::SeqCst);
            let next = if text_busy || self.ocr_unavailable.lock().is_some() {
                None
            } else {
                self.next_ocr_file().unwrap_or_else(|e| {
                    tracing::error!("OCR queue: {e}");
                    None
                })
            };
            let Some(ino) = next else {
                let mut q = self.queue.lock();
                self.wake.wait_for(&mut q, Duration::from_secs(1));
                continue;
            };
            *self.busy.lock() += 1;
            let outcome = self.ocr_file(ino);
            self.ocr_claimed.lock().remove(&ino);
            if let Err(e) = outcome {
                tracing::error!("OCR of inode {ino}: {e}");
                std::thread::sleep(Duration::from_secs(1));
            }
            *self.busy.lock() -= 1;
            self.idle.notify_all();
        }
    }

    /// Runs OCR on everything queued, in this thread (commands without a daemon); then the
    /// text worker's queue has the files to merge. `progress(done, total)` counts files.
    pub fn ocr_catch_up(&self, progress: &dyn Fn(u64, u64)) -> Result<Option<String>> {
        if !self.opts.ocr.enabled {
            return Ok(None);
        }
        if let Err(e) = check_tesseract(&self.opts.ocr.languages) {
            *self.ocr_unavailable.lock() = Some(e.clone());
            return Ok(Some(e));
        }
        let _ = self.pull_ocr_results();
        let total = self.db.begin_read()?.open_table(OCR_QUEUE)?.len()?;
        let mut done = 0;
        while let Some(ino) = self.next_ocr_file()? {
            let outcome = self.ocr_file(ino);
            self.ocr_claimed.lock().remove(&ino);
            if !outcome? {
                return Ok(self.ocr_unavailable.lock().clone());
            }
            done += 1;
            progress(done.min(total), total);
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_round_trip_and_reject_garbage() {
        let r = OcrResult {
            text: "hello".into(),
            error: None,
            millis: 5,
        };
        let b = encode_result(&[7; 32], &r);
        assert_eq!(decode_result(&b), Some(([7; 32], r)));
        assert_eq!(decode_result(&b[..20]), None);
        assert_eq!(decode_result(b"nonsense"), None);
    }

    #[test]
    fn a_missing_tool_is_named() {
        let e = run_tool(
            "peros-no-such-tool",
            &[],
            b"",
            Instant::now() + Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(e.contains("not installed"), "{e}");
    }

    #[test]
    fn languages_without_data_are_named() {
        check_tesseract("eng").expect("setup installs tesseract-ocr-eng");
        let e = check_tesseract("eng+qqz").unwrap_err();
        assert!(e.contains("install tesseract-ocr-qqz"), "{e}");
    }

    #[test]
    fn a_tool_past_its_time_limit_is_killed() {
        let t = Instant::now();
        let e = run_tool(
            "sleep",
            &["30"],
            b"",
            Instant::now() + Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(e.contains("time limit"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}

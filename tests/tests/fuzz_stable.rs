//! The fuzz targets of `fuzz/targets.rs` on the stable toolchain, for a bounded time each.
//!
//! cargo-fuzz (libFuzzer, coverage-guided) needs nightly: `fuzz/run_nightly.sh`. This driver
//! needs nothing: it mutates the seed inputs (built in, plus `fuzz/seeds/<target>/*` and
//! `fuzz/corpus/<target>/*` when present) with random bit flips, byte changes, inserts,
//! deletes, duplications, splices and dictionary tokens, and runs each input under
//! `catch_unwind`. Not coverage-guided, so it finds shallower bugs than libFuzzer, but it runs
//! everywhere, including CI.
//!
//! - `PEROS_FUZZ_SECS` seconds per target (default 4: about half a minute for all targets).
//! - `PEROS_FUZZ_TARGETS=query,extract` to pick targets; `PEROS_FUZZ_SEED` to replay.
//! - `PEROS_FUZZ_REPORT=FILE` appends one line per target.
//! - An input that panics is saved to `fuzz/artifacts/stable/<target>-<hash>` and fails the
//!   test; once fixed, move it to `fuzz/regressions/<target>/`, which every run replays.

#[path = "../../fuzz/targets.rs"]
mod targets;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use peros_tests::Rng;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn files_in(dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        let mut paths: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            if p.is_file() {
                if let Ok(b) = std::fs::read(&p) {
                    out.push(b);
                }
            }
        }
    }
    out
}

const DICT: &[&str] = &[
    "ext:",
    "tag:",
    "path:",
    "modified:>",
    "modified:<=",
    "size:>",
    "size:<",
    "size:=",
    "1M",
    "9G",
    "k",
    " AND ",
    " OR ",
    " NOT ",
    "(",
    ")",
    "\"",
    "-",
    "2024-01-01",
    "9999-99-99",
    ":",
    ">=",
    "\u{0301}",
    "ü",
    "\u{1F600}",
    "\n\n",
    "\r\n",
    "\t",
    " ",
    "<",
    ">",
    "&amp;",
    "<p>",
    "</w:t>",
    "obj",
    "endobj",
    "stream",
    "/Length",
    "%%EOF",
    "PK\x03\x04",
    "AGE-SECRET-KEY-1",
    "age-encryption.org/v1\n",
    "-> X25519 ",
    "---",
];

fn mutate(rng: &mut Rng, pool: &[Vec<u8>], input: &mut Vec<u8>, gentle: bool) {
    let n = 1 + rng.next_u64() % if gentle { 3 } else { 8 };
    for _ in 0..n {
        let len = input.len();
        let pos = |rng: &mut Rng| {
            if len == 0 {
                0
            } else {
                (rng.next_u64() % len as u64) as usize
            }
        };
        let op = rng.next_u64() % if gentle { 3 } else { 10 };
        match op {
            0 if len > 0 => {
                let p = pos(rng);
                input[p] ^= 1 << (rng.next_u64() % 8);
            }
            1 if len > 0 => {
                let p = pos(rng);
                input[p] = [0, 0xff, 0x7f, 0x80, b'0', b'9', b' ', rng.next_u64() as u8]
                    [(rng.next_u64() % 8) as usize];
            }
            2 if len >= 4 => {
                // A little- or big-endian "interesting" integer.
                let p = pos(rng).min(len - 4);
                let v: u32 = [0, 1, u32::MAX, 0x7fff_ffff, 0x8000_0000, 0xffff, 4096]
                    [(rng.next_u64() % 7) as usize];
                let b = if rng.next_u64().is_multiple_of(2) {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                };
                input[p..p + 4].copy_from_slice(&b);
            }
            3 => {
                let p = pos(rng);
                let k = 1 + (rng.next_u64() % 16) as usize;
                let bytes: Vec<u8> = (0..k).map(|_| rng.next_u64() as u8).collect();
                input.splice(p..p, bytes);
            }
            4 if len > 0 => {
                let p = pos(rng);
                let k = 1 + (rng.next_u64() % 64) as usize;
                input.drain(p..(p + k).min(len));
            }
            5 if len > 0 => {
                let a = pos(rng);
                let k = 1 + (rng.next_u64() % 128) as usize;
                let piece = input[a..(a + k).min(len)].to_vec();
                let p = pos(rng);
                input.splice(p..p, piece);
            }
            6 | 7 => {
                let tok = DICT[(rng.next_u64() % DICT.len() as u64) as usize].as_bytes();
                let p = pos(rng);
                input.splice(p..p, tok.iter().copied());
            }
            8 if !pool.is_empty() => {
                let other = &pool[(rng.next_u64() % pool.len() as u64) as usize];
                if !other.is_empty() {
                    let a = (rng.next_u64() % other.len() as u64) as usize;
                    let k = 1 + (rng.next_u64() % 256) as usize;
                    let piece = other[a..(a + k).min(other.len())].to_vec();
                    let p = pos(rng);
                    input.splice(p..p, piece);
                }
            }
            9 if len > 1 => {
                input.truncate(pos(rng));
            }
            _ => {}
        }
    }
    input.truncate(1 << 20);
}

static LAST_PANIC: Mutex<String> = Mutex::new(String::new());

struct Outcome {
    execs: u64,
    secs: f64,
    slowest_ms: u128,
    failure: Option<String>,
}

fn run_target(name: &str, f: fn(&[u8]), budget: Duration, seed: u64) -> Outcome {
    let mut pool = targets::builtin_seeds(name);
    pool.extend(files_in(&fuzz_dir().join("seeds").join(name)));
    pool.extend(
        files_in(&fuzz_dir().join("corpus").join(name))
            .into_iter()
            .take(2000),
    );
    let regressions = files_in(&fuzz_dir().join("regressions").join(name));
    if pool.is_empty() {
        pool.push(Vec::new());
    }
    // meta_db inputs are whole database files: few, local changes keep them interesting.
    let gentle = name == "meta_db";
    let mut rng = Rng::new(
        seed ^ name
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31) ^ b as u64),
    );
    let start = Instant::now();
    let mut execs = 0u64;
    let mut slowest = 0u128;
    let mut queue: Vec<Vec<u8>> = regressions
        .into_iter()
        .chain(pool.iter().cloned())
        .collect();
    queue.reverse();
    loop {
        let input = match queue.pop() {
            Some(i) => i,
            None => {
                if start.elapsed() >= budget {
                    break;
                }
                let mut i = pool[(rng.next_u64() % pool.len() as u64) as usize].clone();
                mutate(&mut rng, &pool, &mut i, gentle);
                i
            }
        };
        let t = Instant::now();
        let r = std::panic::catch_unwind(|| f(&input));
        slowest = slowest.max(t.elapsed().as_millis());
        execs += 1;
        if r.is_err() {
            let dir = fuzz_dir().join("artifacts/stable");
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(format!("{name}-{}", &blake3::hash(&input).to_hex()[..16]));
            std::fs::write(&path, &input).unwrap();
            let msg = LAST_PANIC.lock().unwrap().clone();
            return Outcome {
                execs,
                secs: start.elapsed().as_secs_f64(),
                slowest_ms: slowest,
                failure: Some(format!(
                    "{name}: panic on {} ({} bytes): {msg}",
                    path.display(),
                    input.len()
                )),
            };
        }
    }
    Outcome {
        execs,
        secs: start.elapsed().as_secs_f64(),
        slowest_ms: slowest,
        failure: None,
    }
}

#[test]
fn fuzz_targets_on_stable() {
    let secs: f64 = std::env::var("PEROS_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4.0);
    let seed: u64 = std::env::var("PEROS_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let only: Option<Vec<String>> = std::env::var("PEROS_FUZZ_TARGETS")
        .ok()
        .map(|s| s.split(',').map(|x| x.trim().to_string()).collect());
    std::panic::set_hook(Box::new(|info| {
        let loc = info.location().map(|l| l.to_string()).unwrap_or_default();
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        *LAST_PANIC.lock().unwrap() = format!("{msg} at {loc}");
    }));
    // PEROS_FUZZ_EXPORT_SEEDS=1 writes the built-in seeds to fuzz/seeds/<target>/ (for
    // libFuzzer, which cannot call builtin_seeds itself).
    if std::env::var_os("PEROS_FUZZ_EXPORT_SEEDS").is_some() {
        for (name, _) in targets::TARGETS {
            let dir = fuzz_dir().join("seeds").join(name);
            std::fs::create_dir_all(&dir).unwrap();
            for (i, s) in targets::builtin_seeds(name).iter().enumerate() {
                std::fs::write(dir.join(format!("builtin-{i}")), s).unwrap();
            }
        }
    }
    let mut failures = Vec::new();
    let mut lines = Vec::new();
    for (name, f) in targets::TARGETS {
        if only.as_ref().is_some_and(|o| !o.iter().any(|x| x == name)) {
            continue;
        }
        let o = run_target(name, *f, Duration::from_secs_f64(secs), seed);
        let line = format!(
            "{name}: {} execs in {:.1} s ({:.0}/s), slowest input {} ms, seed {seed}{}",
            o.execs,
            o.secs,
            o.execs as f64 / o.secs.max(1e-9),
            o.slowest_ms,
            if o.failure.is_some() { ", FAILED" } else { "" }
        );
        println!("{line}");
        lines.push(line);
        failures.extend(o.failure);
    }
    let _ = std::panic::take_hook();
    if let Some(path) = std::env::var_os("PEROS_FUZZ_REPORT") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        for l in &lines {
            writeln!(f, "{l}").unwrap();
        }
        for l in &failures {
            writeln!(f, "  FAILURE {l}").unwrap();
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

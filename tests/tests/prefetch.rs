//! The prefetcher's folder-order prior on a real mount: after browsing one folder mostly in
//! order (with skips and a step back), the agent prefetches the next files of a folder it has
//! never seen, which no learned successor can predict; a reader that opens files in no order
//! gets no such prefetches.
//!
//! Needs the `peros` binary and FUSE (root), like agent.rs.

use std::path::Path;
use std::time::{Duration, Instant};

use peros_tests::*;
use serde_json::Value;

fn read(path: &Path) {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn stats(env: &Env) -> Value {
    env.json(["agent", "stats", "--json"])["prefetch"].clone()
}

fn delta(a: &Value, b: &Value, k: &str) -> u64 {
    let get = |v: &Value| {
        v[k].as_u64()
            .unwrap_or_else(|| panic!("agent stats has no {k}: {v}"))
    };
    get(b) - get(a)
}

/// Opens every file of `order` (names under `dir` in the mount) with a pause between them,
/// and returns the prefetcher's counters over these opens.
fn browse(env: &Env, m: &Mounted, dir: &str, order: &[usize], pause_ms: u64) -> (Value, Value) {
    let a = stats(env);
    for &i in order {
        read(&m.p(&format!("{dir}/IMG_{i:04}.raw")));
        std::thread::sleep(Duration::from_millis(pause_ms));
    }
    // The agent handles events on its own thread; `agent stats` flushes them.
    std::thread::sleep(Duration::from_millis(500));
    (a, stats(env))
}

#[test]
fn folder_order_prefetches_the_next_photos_of_a_folder_never_seen() {
    let start = Instant::now();
    let env = Env::init();
    append_config(&env, "[agent]\nschedule_minutes = 0\n");
    // A chunk cache of 8 MiB: a 200 KiB photo is not so cheap next to it that any guess is
    // worth fetching (model::worth).
    let cfg = env.home.join("config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("\ncache_mb = 256\n"), "no cache_mb in {text}");
    std::fs::write(&cfg, text.replace("\ncache_mb = 256\n", "\ncache_mb = 8\n")).unwrap();
    let src = env.path("src");
    for (f, folder) in ["2024-alps", "2025-coast", "2025-misc"].iter().enumerate() {
        for i in 0..24 {
            let seed = (f * 100 + i) as u64;
            write_random(
                &src.join(folder).join(format!("IMG_{i:04}.raw")),
                seed,
                200 * 1024 + i * 4096,
            );
        }
    }
    env.ok(["import".as_ref(), src.as_os_str(), "/photos".as_ref()]);
    // Indexing reads every file: done before the mount, so the daemon's chunk cache is cold.
    env.ok(["index", "--wait"]);
    let m = Mounted::new(&env, &[]);

    // Folder one, mostly in order: skips ahead, a step back.
    let first = [
        0, 1, 2, 3, 5, 6, 7, 8, 7, 8, 9, 10, 12, 13, 14, 15, 17, 18, 19, 20, 21,
    ];
    browse(&env, &m, "photos/2024-alps", &first, 150);

    // Folder two, never opened: only the folder order can tell what comes next.
    let second: Vec<usize> = (0..16).collect();
    let (a, b) = browse(&env, &m, "photos/2025-coast", &second, 250);
    let opens = delta(&a, &b, "opens");
    let hits = delta(&a, &b, "hits");
    let pf_hits = delta(&a, &b, "prefetch_hits");
    let inflight = delta(&a, &b, "inflight_hits");
    eprintln!("new folder in order: {opens} opens, {hits} hits ({pf_hits} prefetched, {inflight} in flight); {b}");
    assert_eq!(opens, 16, "{a} {b}");
    // The first open of the folder cannot be predicted; the 15 after it can.
    assert!(
        pf_hits >= 13,
        "only {pf_hits} of the 15 predictable opens were prefetch hits ({hits} hits, {inflight} in flight): {b}"
    );
    // What it prefetched was opened: at most the few files past the last one browsed are
    // outstanding, nothing was wasted.
    assert_eq!(delta(&a, &b, "wasted_bytes"), 0, "{b}");
    let outstanding = b["outstanding_bytes"].as_u64().unwrap();
    assert!(
        outstanding <= 4 * 300 * 1024,
        "{outstanding} bytes prefetched and not opened: {b}"
    );

    // Folder three in no order: the prior follows the new habit and goes quiet.
    let random = [
        11, 3, 19, 7, 0, 15, 22, 5, 13, 9, 1, 17, 21, 4, 14, 8, 23, 2, 18, 10,
    ];
    let (a, b) = browse(&env, &m, "photos/2025-misc", &random, 150);
    let pf_random = delta(&a, &b, "prefetched_files");
    eprintln!("third folder at random: {pf_random} files prefetched; {b}");
    assert!(
        pf_random <= 12,
        "{pf_random} prefetches for 20 opens in no order: the folder prior does not fade: {b}"
    );
    let text = env.ok(["agent", "stats"]);
    assert!(text.contains("in flight"), "{text}");
    eprintln!("took {:?}", start.elapsed());
}

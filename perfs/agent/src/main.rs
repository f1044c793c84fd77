//! agent-bench: replays access traces (from traces.sh) through the prefetch strategies of
//! `peros_agent::sim` and prints a markdown table of hit rates and wasted bytes.
//!
//! Usage: agent-bench [--cache-frac F] TRACE...   (cache = F × the trace's distinct first-chunk bytes)

use std::collections::HashMap;

use peros_agent::sim::{replay, Open, PerosParams, Strategy};

const CHUNK: u64 = 4 << 20;

fn load(path: &str) -> Vec<Open> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut ids: HashMap<String, u64> = HashMap::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let mut it = line.splitn(3, '\t');
        let (Some(stream), Some(size), Some(p)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let n = ids.len() as u64;
        let key = *ids.entry(p.to_string()).or_insert(n);
        out.push(Open {
            stream: stream.to_string(),
            key,
            bytes: size.parse::<u64>().unwrap_or(0).clamp(1, CHUNK),
        });
    }
    out
}

fn mib(b: u64) -> String {
    format!("{:.1}", b as f64 / (1 << 20) as f64)
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut frac = 0.25;
    if let Some(i) = args.iter().position(|a| a == "--cache-frac") {
        frac = args[i + 1].parse().expect("--cache-frac F");
        args.drain(i..i + 2);
    }
    for path in &args {
        let trace = load(path);
        let mut sizes: HashMap<u64, u64> = HashMap::new();
        for o in &trace {
            sizes.insert(o.key, o.bytes);
        }
        let distinct: u64 = sizes.values().sum();
        let cache = ((distinct as f64 * frac) as u64).max(CHUNK);
        let name = std::path::Path::new(path)
            .file_stem()
            .unwrap()
            .to_string_lossy();
        println!(
            "\n### {name}: {} opens of {} files ({} MiB of first chunks), cache {} MiB\n",
            trace.len(),
            sizes.len(),
            mib(distinct),
            mib(cache)
        );
        println!(
            "| strategy | hit rate | prefetch hits | prefetched MiB | wasted MiB | fetched MiB |"
        );
        println!("|---|---:|---:|---:|---:|---:|");
        // The daemon's defaults ([agent] in config.toml): look-ahead of up to 2 opens, a
        // large file needs a 0.6 chance of being opened, budget = 64 MiB of the store's
        // 256 MiB chunk cache, i.e. a quarter of it.
        let cfg = peros_agent::policy::AgentConfig::default();
        let params = PerosParams {
            max_depth: cfg.prefetch_max_depth,
            min_p: cfg.prefetch_min_p,
            budget: cache / 4,
        };
        for s in Strategy::ALL {
            let r = replay(&trace, s, cache, params);
            println!(
                "| {} | {:.1}% | {} | {} | {} | {} |",
                s.name(),
                r.hit_rate() * 100.0,
                r.prefetch_hits,
                mib(r.prefetched_bytes),
                mib(r.wasted_bytes),
                mib(r.fetched_bytes)
            );
        }
    }
}

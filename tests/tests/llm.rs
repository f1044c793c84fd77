//! `peros ask` against a real local LLM (llama-server + Qwen2.5-Coder-0.5B, see RECIPES).
//!
//! Runs when `scripts/setup.sh` built them (`PEROS_SETUP_LLM=1`): `PEROS_LLAMA_SERVER` and
//! `PEROS_LLM_MODEL` (from /var/cache/peros/env.sh) name the server and the model. Without
//! them the test says so and passes: the extractive path is covered by tests/search.rs.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use peros_tests::*;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn healthy(port: u16) -> bool {
    Command::new("curl")
        .args(["-sf", &format!("http://127.0.0.1:{port}/health")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn ask_answers_from_passages_with_a_local_llm() {
    let (Some(server), Some(model)) = (
        std::env::var_os("PEROS_LLAMA_SERVER").map(PathBuf::from),
        std::env::var_os("PEROS_LLM_MODEL").map(PathBuf::from),
    ) else {
        skip_without_llm("no local LLM (run `PEROS_SETUP_LLM=1 bash scripts/setup.sh`)");
        return;
    };
    if !server.is_file() || !model.is_file() {
        skip_without_llm(&format!(
            "{} or {} missing",
            server.display(),
            model.display()
        ));
        return;
    }
    let port = free_port();
    let _server = Server(
        Command::new(&server)
            .args(["-m".as_ref(), model.as_os_str()])
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "-c",
                "4096",
                "-t",
                "1",
                "-np",
                "1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start llama-server"),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while !healthy(port) {
        assert!(
            Instant::now() < deadline,
            "llama-server did not become healthy in 120 s"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    let env = Env::init();
    let config = env.home.join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text
        .replace(
            "endpoint = \"\"",
            &format!("endpoint = \"http://127.0.0.1:{port}/v1\""),
        )
        .replace("max_tokens = 0", "max_tokens = 120");
    std::fs::write(&config, text).unwrap();

    let src = env.path("docs");
    std::fs::create_dir_all(&src).unwrap();
    write_file(
        &src.join("boat.md"),
        b"# Sailing club\n\nThe sailing boat Albatross is moored at pier 7 of the Wannsee harbour.\n\
          The mooring fee is 480 EUR per season.\n",
    );
    write_file(
        &src.join("soup.md"),
        b"# Soup\n\nRed lentils, onion, carrots and cumin; simmer 25 minutes.\n",
    );
    env.ok(["import".as_ref(), src.as_os_str(), "/docs".as_ref()]);

    let v = env.json([
        "ask",
        "At which pier is the Albatross moored?",
        "--json",
        "--passages",
        "2",
    ]);
    assert_eq!(v["method"], "llm", "the answer must come from the LLM: {v}");
    let answer = v["answer"].as_str().unwrap();
    assert!(answer.contains('7'), "answer should name pier 7: {answer}");
    let cites = v["citations"].as_array().unwrap();
    assert_eq!(cites[0]["path"], "/docs/boat.md", "{v}");
    assert!(cites[0]["offset"].is_u64());

    // With the endpoint down, ask still answers (extractively) and says why.
    drop(_server);
    let v = env.json([
        "ask",
        "At which pier is the Albatross moored?",
        "--json",
        "--passages",
        "2",
    ]);
    assert_eq!(v["method"], "extractive", "{v}");
    assert!(v["note"].as_str().unwrap_or("").contains("failed"), "{v}");
    assert!(v["answer"].as_str().unwrap().contains("pier 7"), "{v}");
}

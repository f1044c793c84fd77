//! `peros ask` against a real local LLM (llama-server + Qwen2.5-Coder-0.5B, see RECIPES).
//!
//! Runs when `scripts/setup.sh` built them (`PEROS_SETUP_LLM=1`): `PEROS_LLAMA_SERVER` and
//! `PEROS_LLM_MODEL` (from /var/cache/peros/env.sh) name the server and the model. Without
//! them the test says so and passes: the extractive path is covered by tests/search.rs.

use peros_tests::llama::{Llama, Template};
use peros_tests::*;

#[test]
fn ask_answers_from_passages_with_a_local_llm() {
    let Some(server) = Llama::start(Template::ModelOwn, 4096) else {
        return;
    };
    let env = Env::init();
    let config = env.home.join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text
        .replace(
            "endpoint = \"\"",
            &format!("endpoint = \"{}\"", server.endpoint()),
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
    drop(server);
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

//! `peros ask` with an `[llm] endpoint` honours the agent's privacy policy exactly as the LLM
//! planner does, checked against a recording OpenAI-compatible server (FakeLlm): files the
//! policy excludes (secret files by default, `never_read`, `never_read_tags`) are never cited
//! nor sent, what is sent is redacted and scrubbed of excluded paths, and nothing goes to a
//! non-loopback endpoint unless `allow_content_to_remote = true`.
//!
//! A remote endpoint is played by the same server acting as the HTTP proxy (`http_proxy`), so
//! the test sees what would have left for it.

use peros_tests::fake_llm::FakeLlm;
use peros_tests::*;
use serde_json::json;

const QUESTION: &str = "At which pier is the Albatross moored?";
const ANSWER: &str = "The Albatross is moored at pier 7 [1].";

/// Sets `[llm] endpoint` and replaces the `[agent]` table (kept last in the file) by `agent`.
fn configure(env: &Env, endpoint: &str, agent: &str) {
    let path = env.home.join("config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = match text.find("\n[agent]\n") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut table = "";
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with('[') {
            table = line;
        }
        if table == "[llm]" && line.starts_with("endpoint =") {
            out.push_str(&format!("endpoint = {endpoint:?}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(&format!("\n[agent]\nschedule_minutes = 0\n{agent}"));
    std::fs::write(&path, out).unwrap();
}

const NO_PROXY: &[(&str, Option<&str>)] = &[
    ("http_proxy", None),
    ("HTTP_PROXY", None),
    ("https_proxy", None),
    ("HTTPS_PROXY", None),
    ("all_proxy", None),
    ("ALL_PROXY", None),
    ("no_proxy", None),
    ("NO_PROXY", None),
];

fn ask(env: &Env, envs: &[(&str, Option<&str>)]) -> Value {
    let out = env.run_with(["ask", QUESTION, "--json", "--passages", "10"], envs);
    assert!(out.status.success(), "peros ask: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn cited(v: &Value) -> Vec<String> {
    v["citations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap().to_string())
        .collect()
}

/// What must never leave: excluded files' paths and text, and (with redact) the secrets of a
/// readable file.
fn assert_nothing_excluded(body: &str, also: &[&str]) {
    for bad in [
        "albatross.pem",
        "PEM-SECRET",
        "/proj/.env",
        "ENV-SECRET",
        "id_rsa",
        "SSH-SECRET",
        "diary.md",
        "DIARY-SECRET",
    ]
    .iter()
    .chain(also)
    {
        assert!(!body.contains(bad), "{bad} was sent: {body}");
    }
}

#[test]
fn ask_sends_only_what_the_privacy_policy_allows() {
    let env = Env::init();
    let src = env.path("src");
    let files: &[(&str, &str)] = &[
        (
            "docs/boat.md",
            "# Sailing club\nThe sailing boat Albatross is moored at pier 7 of the harbour.\n\
             Harbour master: harbour.master@example.com, gate password = GATE-4711-SECRET.\n\
             The boat's key file is /keys/albatross.pem.\n",
        ),
        (
            "keys/albatross.pem",
            "-----BEGIN PRIVATE KEY-----\nPEM-SECRET Albatross pier 7 mooring key\n-----END PRIVATE KEY-----\n",
        ),
        ("proj/.env", "ALBATROSS_PIER=7\nENV-SECRET=the Albatross pier token\n"),
        ("home/ssh-backup/id_rsa", "SSH-SECRET Albatross pier private key material\n"),
        ("notes/diary.md", "DIARY-SECRET: the Albatross is moored at pier 7, dear diary.\n"),
        ("vault/contract.md", "VAULT-SECRET mooring contract of the Albatross at pier 7.\n"),
    ];
    for (p, text) in files {
        write_file(&src.join(p), text.as_bytes());
    }
    for top in ["docs", "keys", "proj", "home", "notes", "vault"] {
        env.ok([
            "import".as_ref(),
            src.join(top).as_os_str(),
            format!("/{top}").as_ref(),
        ]);
    }
    env.ok(["tag", "/notes/diary.md", "+private"]);
    // The secret files are indexed: `peros search` (the user, locally) still finds them.
    let found = env
        .json(["search", "Albatross pier", "--json", "--limit", "20"])
        .to_string();
    for p in [
        "/keys/albatross.pem",
        "/proj/.env",
        "/home/ssh-backup/id_rsa",
    ] {
        assert!(found.contains(p), "{p} is searchable: {found}");
    }

    let fake = FakeLlm::start(vec![json!({"role": "assistant", "content": ANSWER}); 8]);

    // 1. A loopback endpoint, the default policy: secret files and the private tag excluded,
    //    redaction on.
    configure(&env, &fake.endpoint(), "");
    let v = ask(&env, NO_PROXY);
    assert_eq!(v["method"], "llm", "{v}");
    assert_eq!(v["answer"], ANSWER, "{v}");
    let paths = cited(&v);
    assert!(paths.contains(&"/docs/boat.md".to_string()), "{v}");
    for p in &paths {
        assert!(
            ["/docs/boat.md", "/vault/contract.md"].contains(&p.as_str()),
            "{p} cited: {v}"
        );
    }
    assert!(
        v["note"].as_str().unwrap_or("").contains("privacy policy"),
        "{v}"
    );
    let bodies = fake.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert!(
        bodies[0].contains("pier 7"),
        "the passage was sent: {}",
        bodies[0]
    );
    assert!(bodies[0].contains("[REDACTED]"), "{}", bodies[0]);
    assert_nothing_excluded(&bodies[0], &["harbour.master@example.com", "GATE-4711"]);

    // 2. The user's own never_read (it replaces the default list), redaction off.
    configure(
        &env,
        &fake.endpoint(),
        "never_read = [\"/vault/**\"]\nredact = false\n",
    );
    let v = ask(&env, NO_PROXY);
    assert_eq!(v["method"], "llm", "{v}");
    assert!(
        !cited(&v).contains(&"/vault/contract.md".to_string()),
        "{v}"
    );
    let bodies = fake.bodies();
    assert_eq!(bodies.len(), 2);
    for bad in ["/vault", "VAULT-SECRET", "diary.md", "DIARY-SECRET"] {
        assert!(!bodies[1].contains(bad), "{bad} was sent: {}", bodies[1]);
    }
    assert!(
        bodies[1].contains("harbour.master@example.com"),
        "redact = false: {}",
        bodies[1]
    );

    // 3. A remote endpoint without allow_content_to_remote: nothing at all is sent.
    let proxy = format!("http://127.0.0.1:{}", fake.port);
    let via_proxy: Vec<(&str, Option<&str>)> = NO_PROXY
        .iter()
        .map(|(k, v)| match *k {
            "http_proxy" | "HTTP_PROXY" => (*k, Some(proxy.as_str())),
            _ => (*k, *v),
        })
        .collect();
    let remote = "http://llm.example.invalid/v1";
    configure(&env, remote, "");
    let v = ask(&env, &via_proxy);
    assert_eq!(v["method"], "extractive", "{v}");
    assert!(
        v["note"]
            .as_str()
            .unwrap_or("")
            .contains("allow_content_to_remote"),
        "{v}"
    );
    assert!(cited(&v).contains(&"/docs/boat.md".to_string()), "{v}");
    for p in cited(&v) {
        assert!(
            ["/docs/boat.md", "/vault/contract.md"].contains(&p.as_str()),
            "{p} cited: {v}"
        );
    }
    assert_eq!(fake.bodies().len(), 2, "a request went to {remote}");

    // 4. Allowed: the request goes there (through the proxy), redacted and without excluded files.
    configure(&env, remote, "allow_content_to_remote = true\n");
    let v = ask(&env, &via_proxy);
    assert_eq!(v["method"], "llm", "{v}");
    let bodies = fake.bodies();
    assert_eq!(bodies.len(), 3);
    let line = fake.request_lines.lock().unwrap().last().cloned().unwrap();
    assert!(line.contains("llm.example.invalid"), "{line}");
    assert!(bodies[2].contains("pier 7"), "{}", bodies[2]);
    assert_nothing_excluded(&bodies[2], &["harbour.master@example.com", "GATE-4711"]);
}

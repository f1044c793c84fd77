//! The agent's configuration (`[agent]` in config.toml) and privacy policy.
//!
//! Decisions (documented in examples/config.toml):
//! - `never_read` globs (on store paths, `*` within a component, `**` across) and
//!   `never_read_tags` exclude files from *everything* the agent does: tool results, the
//!   access summary a planner sees, prefetch, and every request body (the LLM client also
//!   scrubs known excluded paths out of the serialized body as a last line of defence).
//! - File content (search snippets, `read_excerpt`) is sent to an LLM endpoint only if it is
//!   loopback (127.0.0.0/8, ::1, localhost) or `allow_content_to_remote = true`. Otherwise a
//!   remote planner sees paths and metadata only; `read_excerpt` answers "refused by policy".
//! - `redact = true` (default) replaces private keys, API tokens (sk-…, AKIA…, ghp_…, xox?-…),
//!   AWS secret assignments, password assignments and e-mail addresses with `[REDACTED]` in
//!   everything sent, loopback or not.
//! - `peros ask` applies the same policy through the same functions ([`Policy::visible_file`],
//!   [`Policy::content_allowed`], [`Policy::outgoing`]): excluded files are never cited or
//!   sent, passages are redacted, and nothing at all goes to a non-loopback endpoint unless
//!   `allow_content_to_remote` (the answer is then extractive).
//! - Secret files (SSH and GnuPG directories, `*.pem`, `*.key`, `*.p12`/`*.pfx`, SSH private
//!   keys `id_rsa*`/`id_ed25519*`/…, `.env` files, `.netrc`, `.aws/`) are in the default
//!   `never_read`, not in the indexer's skip list: what the policy guards is content leaving
//!   the machine (LLM requests) and what the agent and `ask` show; `peros search` is the user
//!   searching their own files in a local index (0700, like the metadata), and a user who
//!   wants a key file found by name or content keeps that. A user's own `never_read`
//!   replaces the default list, so it should repeat these patterns.

use std::sync::OnceLock;

use peros_store::{Ino, Inode, Kind, Store};
use regex::Regex;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Record accesses and prefetch while mounted.
    pub enabled: bool,
    /// Minutes between background planner runs in the daemon (0: never; fractions allowed,
    /// e.g. 0.5 for every 30 s).
    pub schedule_minutes: f64,
    /// Planner for scheduled runs: "heuristic" or "llm".
    pub planner: String,
    /// Prefetch predicted next files' first chunks.
    pub prefetch: bool,
    /// Decrypted-but-unused prefetched bytes of the current predictions allowed at once, MiB.
    pub prefetch_budget_mb: u64,
    /// Prefetch bandwidth, MiB/s.
    pub prefetch_bandwidth_mb_s: u64,
    /// Chunks warmed per predicted file.
    pub prefetch_chunks: usize,
    /// How many opens ahead the prefetcher looks at most (the depth adapts between 1 and this
    /// from the precision of recent prefetches and from how fast files are opened against how
    /// fast they download).
    pub prefetch_max_depth: usize,
    /// Chance of being opened soon a large file needs to be prefetched (0..1); smaller files
    /// need proportionally less.
    pub prefetch_min_p: f32,
    /// Size of the access log before it rotates (two files are kept), MiB.
    pub log_max_mb: u64,
    /// Most LLM requests per run.
    pub max_steps: usize,
    /// Store-path globs the agent never reads, lists or sends.
    pub never_read: Vec<String>,
    /// Files with any of these tags are treated like never_read paths.
    pub never_read_tags: Vec<String>,
    /// Whether file content may go to a non-loopback LLM endpoint.
    pub allow_content_to_remote: bool,
    /// Redact secrets and e-mail addresses in everything sent to an LLM.
    pub redact: bool,
    /// The folder of `@views` that topic views (`peros agent topics`) go in.
    pub topics_dir: String,
    /// Fewest files a topic has.
    pub topics_min_size: usize,
    /// Minutes between topic passes while mounted (0: only `peros agent topics`).
    pub topics_schedule_minutes: f64,
    /// With an `[llm]` endpoint, new topics get names the model proposes (docs/TOPICS.md).
    pub topics_llm_names: bool,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            schedule_minutes: 10.0,
            planner: "heuristic".into(),
            prefetch: true,
            prefetch_budget_mb: 64,
            prefetch_bandwidth_mb_s: 64,
            prefetch_chunks: 1,
            prefetch_max_depth: 4,
            prefetch_min_p: 0.6,
            log_max_mb: 8,
            max_steps: 8,
            never_read: default_never_read(),
            never_read_tags: vec!["private".into()],
            allow_content_to_remote: false,
            redact: true,
            topics_dir: "topics".into(),
            topics_min_size: 3,
            topics_schedule_minutes: 60.0,
            topics_llm_names: true,
        }
    }
}

/// The default `never_read`: where secrets live (see the module comment for why here and not
/// in the indexer).
pub fn default_never_read() -> Vec<String> {
    [
        "**/.ssh/**",
        "**/.gnupg/**",
        "**/.aws/**",
        "**/*.key",
        "**/*.pem",
        "**/*.p12",
        "**/*.pfx",
        "**/id_rsa*",
        "**/id_dsa*",
        "**/id_ecdsa*",
        "**/id_ed25519*",
        "**/.env",
        "**/.env.*",
        "**/.netrc",
    ]
    .map(String::from)
    .to_vec()
}

/// `*` matches within one path component, `**` any number of components, `?` one character.
pub fn glob_match(pattern: &str, path: &str) -> bool {
    fn m(p: &[u8], s: &[u8]) -> bool {
        if p.is_empty() {
            return s.is_empty();
        }
        if p.starts_with(b"**") {
            let rest = p[2..].strip_prefix(b"/").unwrap_or(&p[2..]);
            // `**/` may match nothing, or any prefix ending at a '/'.
            if m(rest, s) {
                return true;
            }
            for i in 0..s.len() {
                if (s[i] == b'/' || rest.is_empty()) && m(rest, &s[i + 1..]) {
                    return true;
                }
            }
            return false;
        }
        match p[0] {
            b'*' => {
                for i in 0..=s.len() {
                    if m(&p[1..], &s[i..]) {
                        return true;
                    }
                    if i < s.len() && s[i] == b'/' {
                        break;
                    }
                }
                false
            }
            b'?' => !s.is_empty() && s[0] != b'/' && m(&p[1..], &s[1..]),
            c => !s.is_empty() && s[0] == c && m(&p[1..], &s[1..]),
        }
    }
    let pat = pattern.trim_start_matches('/');
    let path = path.trim_start_matches('/');
    m(pat.as_bytes(), path.as_bytes())
}

/// The policy as the agent applies it.
#[derive(Clone, Debug)]
pub struct Policy {
    pub never_read: Vec<String>,
    pub never_read_tags: Vec<String>,
    pub allow_content_to_remote: bool,
    pub redact: bool,
}

impl Policy {
    pub fn from_config(c: &AgentConfig) -> Self {
        Self {
            never_read: c.never_read.clone(),
            never_read_tags: c.never_read_tags.clone(),
            allow_content_to_remote: c.allow_content_to_remote,
            redact: c.redact,
        }
    }

    /// Whether the agent may look at `path` (with its `tags`).
    pub fn readable(&self, path: &str, tags: &[String]) -> bool {
        if self.never_read.iter().any(|g| glob_match(g, path)) {
            return false;
        }
        // A file under an excluded directory is excluded too.
        let dir_excluded = self.never_read.iter().any(|g| {
            let g = g.trim_end_matches("/**");
            let mut p = path.to_string();
            while let Some(i) = p.rfind('/') {
                p.truncate(i);
                if !p.is_empty() && glob_match(g, &p) {
                    return true;
                }
            }
            false
        });
        if dir_excluded {
            return false;
        }
        !tags.iter().any(|t| {
            self.never_read_tags
                .iter()
                .any(|n| n.eq_ignore_ascii_case(t))
        })
    }

    /// Whether content may be sent to `endpoint`.
    pub fn content_allowed(&self, endpoint: &str) -> bool {
        self.allow_content_to_remote || is_loopback(endpoint)
    }

    pub fn clean(&self, text: &str) -> String {
        if self.redact {
            redact(text)
        } else {
            text.to_string()
        }
    }

    /// The tags of a stored file (the `user.peros.tags` xattr), as `never_read_tags` sees them.
    pub fn tags_of(node: &Inode) -> Vec<String> {
        node.xattrs
            .get(peros_indexer::TAGS_XATTR)
            .map(|v| peros_indexer::parse_tags(v))
            .unwrap_or_default()
    }

    /// Whether the policy lets the agent see `path`, with the tags `store` holds for it (a
    /// path that does not resolve is judged by its name).
    pub fn readable_in(&self, store: &Store, path: &str) -> bool {
        let tags = store
            .resolve(path.as_bytes())
            .map(|(_, n)| Self::tags_of(&n))
            .unwrap_or_default();
        self.readable(path, &tags)
    }

    /// The regular file at `path` if the policy lets the agent see it. An excluded file is
    /// `None` like a missing one or a directory, so callers cannot tell them apart.
    pub fn visible_file(&self, store: &Store, path: &str) -> Option<(Ino, Inode)> {
        let (ino, node) = store.resolve(path.as_bytes()).ok()?;
        (node.kind == Kind::File && self.readable(path, &Self::tags_of(&node)))
            .then_some((ino, node))
    }

    /// Paths of every stored file the policy excludes, longest first (so a file is scrubbed
    /// before its directory), for [`Policy::outgoing`]. Capped for very large stores.
    pub fn excluded_paths(&self, store: &Store) -> Vec<String> {
        let mut out = Vec::new();
        if self.never_read.is_empty() && self.never_read_tags.is_empty() {
            return out;
        }
        for (ino, node) in store
            .all_inodes()
            .unwrap_or_default()
            .into_iter()
            .take(200_000)
        {
            if let Ok(p) = store.path_of(ino) {
                let p = String::from_utf8_lossy(&p).into_owned();
                if p != "/" && !self.readable(&p, &Self::tags_of(&node)) {
                    out.push(p);
                }
            }
        }
        out.sort_by_key(|p| std::cmp::Reverse(p.len()));
        out
    }

    /// `text` as it may leave for an LLM: redacted ([`Policy::clean`]), and, as the last line
    /// of defence, with every `excluded` path (from [`Policy::excluded_paths`]) replaced by
    /// `[excluded]`, whatever a file, tool result or prompt held.
    pub fn outgoing(&self, text: &str, excluded: &[String]) -> String {
        let mut t = self.clean(text);
        for p in excluded {
            if p.len() > 1 && t.contains(p.as_str()) {
                t = t.replace(p.as_str(), "[excluded]");
            }
        }
        t
    }
}

/// Whether `endpoint` is an http(s) URL whose host is loopback: an IPv4 address in
/// 127.0.0.0/8, the IPv6 address ::1, or exactly the name `localhost`.
///
/// The URL is parsed by the `url` crate (WHATWG rules, as HTTP clients parse it), so userinfo
/// (`http://evil@127.0.0.1`), fragments and queries (`http://evil#@127.0.0.1`) and names that
/// merely start like an address (`127.0.0.1.evil.com`) are judged by the host the request
/// really goes to; the numeric IPv4 forms it normalises (`2130706433`, `0x7f000001`, `127.1`)
/// count as what they are. Anything else is remote, failing safe: `localhost.` and
/// `*.localhost` (a resolver may ask DNS for them), IPv4-mapped IPv6 addresses, `0.0.0.0`, and
/// strings that do not parse as an http(s) URL.
pub fn is_loopback(endpoint: &str) -> bool {
    let Ok(url) = url::Url::parse(endpoint.trim()) else {
        return false;
    };
    if !matches!(url.scheme(), "http" | "https") {
        return false;
    }
    match url.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

fn patterns() -> &'static [Regex] {
    static P: OnceLock<Vec<Regex>> = OnceLock::new();
    P.get_or_init(|| {
        [
            r"(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----.*?(-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----|$)",
            r"AGE-SECRET-KEY-1[0-9A-Z]+",
            r"\bsk-[A-Za-z0-9_\-]{16,}",
            r"\b(AKIA|ASIA)[0-9A-Z]{16}\b",
            r"\bgh[pousr]_[A-Za-z0-9]{20,}",
            r"\bxox[abprs]-[A-Za-z0-9\-]{10,}",
            r"(?i)(aws_secret_access_key|secret_key|api_key|apikey|token|password|passwd)(\s*[:=]\s*)\S+",
            r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b",
        ]
        .iter()
        .map(|p| Regex::new(p).expect("valid pattern"))
        .collect()
    })
}

/// Replaces secrets and e-mail addresses with `[REDACTED]`.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    for (i, re) in patterns().iter().enumerate() {
        out = if i == 6 {
            re.replace_all(&out, "$1$2[REDACTED]").into_owned()
        } else {
            re.replace_all(&out, "[REDACTED]").into_owned()
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("**/.ssh/**", "/home/u/.ssh/id_rsa"));
        assert!(glob_match("**/*.pem", "/a/b/c.pem"));
        assert!(glob_match("/private/**", "/private/x/y.txt"));
        assert!(glob_match("private/*", "/private/y.txt"));
        assert!(!glob_match("private/*", "/private/x/y.txt"));
        assert!(!glob_match("/private/**", "/public/private.txt"));
        assert!(glob_match("**/secret*", "/x/secret-plans.md"));
    }

    #[test]
    fn secret_files_are_excluded_by_default() {
        let p = Policy::from_config(&AgentConfig::default());
        for path in [
            "/home/u/.ssh/config",
            "/backup/.ssh/authorized_keys",
            "/keys/id_rsa",
            "/keys/id_rsa.pub",
            "/old/laptop/id_ed25519",
            "/x/id_ecdsa_sk",
            "/srv/tls/server.pem",
            "/srv/tls/server.key",
            "/certs/client.p12",
            "/proj/.env",
            "/proj/.env.production",
            "/home/u/.netrc",
            "/home/u/.aws/credentials",
            "/home/u/.gnupg/private-keys-v1.d/a.key",
        ] {
            assert!(!p.readable(path, &[]), "{path} is excluded by default");
        }
        for path in [
            "/proj/env.md",
            "/proj/.envrc",
            "/notes/keys.md",
            "/docs/pem-format.txt",
            "/a/id_card.pdf",
        ] {
            assert!(p.readable(path, &[]), "{path} is readable by default");
        }
    }

    #[test]
    fn outgoing_text_is_redacted_and_loses_excluded_paths() {
        let p = Policy::from_config(&AgentConfig::default());
        let t = p.outgoing(
            "see /vault/a.txt and /vault, mail bob@example.com",
            &["/vault/a.txt".into(), "/vault".into()],
        );
        assert_eq!(t, "see [excluded] and [excluded], mail [REDACTED]");
        let raw = Policy { redact: false, ..p };
        assert_eq!(raw.outgoing("bob@example.com", &[]), "bob@example.com");
    }

    #[test]
    fn policy_excludes_dirs_and_tags() {
        let p = Policy::from_config(&AgentConfig {
            never_read: vec!["/vault".into()],
            ..Default::default()
        });
        assert!(!p.readable("/vault/a.txt", &[]));
        assert!(p.readable("/vaults.txt", &[]));
        assert!(!p.readable("/x.txt", &["Private".into()]));
    }

    #[test]
    fn loopback() {
        assert!(is_loopback("http://127.0.0.1:8080/v1"));
        assert!(is_loopback("http://localhost/v1"));
        assert!(is_loopback("http://[::1]:80/v1"));
        assert!(!is_loopback("https://api.openai.com/v1"));
        assert!(!is_loopback("http://10.0.0.1/v1"));
    }

    #[test]
    fn loopback_is_decided_by_a_url_parser() {
        for u in [
            "http://127.0.0.1:8080/v1",
            "http://127.8.9.10/v1",
            "https://LOCALHOST:8443/v1",
            "http://localhost/v1",
            "http://[::1]:8080/v1",
            "http://[0:0:0:0:0:0:0:1]/v1",
            // userinfo that names another host is only userinfo
            "http://evil.com@127.0.0.1:8080/v1",
            "http://user:pw@localhost/v1",
            // the url crate normalises these IPv4 forms to 127.0.0.1
            "http://2130706433/v1",
            "http://0x7f000001/v1",
            "http://0177.0.0.1/v1",
            "http://127.1/v1",
        ] {
            assert!(is_loopback(u), "{u} is loopback");
        }
        for u in [
            // a fragment or query is not the authority
            "http://evil#@127.0.0.1",
            "http://evil?@127.0.0.1/v1",
            "http://evil.com/#@localhost",
            "http://evil.com\\@127.0.0.1/v1",
            "http://127.0.0.1.evil.com/v1",
            "http://localhost.evil.com/v1",
            "http://127.0.0.1@evil.com/v1",
            "http://localhost:8080@evil.com/v1",
            "http://[::1]@evil.com/v1",
            // not exactly `localhost`: a resolver may look these names up in DNS
            "http://localhost.:8080/v1",
            "http://app.localhost/v1",
            "http://[::ffff:7f00:1]/v1",
            "http://0.0.0.0:8080/v1",
            "http://10.0.0.1/v1",
            "https://api.openai.com/v1",
            // not a URL, or not HTTP
            "127.0.0.1:8080/v1",
            "localhost:8080/v1",
            "file:///127.0.0.1",
            "",
        ] {
            assert!(!is_loopback(u), "{u} is not loopback");
        }
    }

    #[test]
    fn redacts_secrets() {
        let t = "key sk-abcdefghijklmnopqrstuvwx and AKIAABCDEFGHIJKLMNOP, mail bob@example.com\n\
                 password = hunter2\n-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\nok";
        let r = redact(t);
        for s in ["sk-abc", "AKIAABC", "bob@example.com", "hunter2", "abc\n"] {
            assert!(!r.contains(s), "{s} left in {r}");
        }
        assert!(
            r.contains("password = [REDACTED]") && r.ends_with("ok"),
            "{r}"
        );
    }
}

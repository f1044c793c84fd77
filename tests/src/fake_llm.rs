//! A scripted, recording OpenAI-compatible chat server: answers the n-th request with the n-th
//! assistant message of a script and keeps every request, so a test can check what left
//! (the agent's rules, `peros ask`'s privacy policy) deterministically, without a model.
//!
//! It also serves as an HTTP proxy: a client with `http_proxy=http://127.0.0.1:PORT` sends
//! requests for any host here (the request line then names that host), which is how a test
//! sees what would go to a remote endpoint.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

pub struct FakeLlm {
    pub port: u16,
    /// Request bodies, in arrival order.
    pub bodies: Arc<Mutex<Vec<String>>>,
    /// Request lines (`POST /v1/chat/completions HTTP/1.1`, or with a full URL through a proxy).
    pub request_lines: Arc<Mutex<Vec<String>>>,
}

fn http_reply(stream: &mut TcpStream, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}

impl FakeLlm {
    /// Answers the n-th request with `script[n]` (an assistant message), then with "done".
    pub fn start(script: Vec<Value>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let request_lines = Arc::new(Mutex::new(Vec::new()));
        let (seen, lines) = (bodies.clone(), request_lines.clone());
        std::thread::spawn(move || {
            for (n, conn) in listener.incoming().enumerate() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut len = 0usize;
                let mut first = true;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if first {
                        lines.lock().unwrap().push(line.trim_end().to_string());
                        first = false;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; len];
                reader.read_exact(&mut body).unwrap();
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
                let msg = script
                    .get(n)
                    .cloned()
                    .unwrap_or(json!({"role": "assistant", "content": "done"}));
                let resp =
                    json!({"choices": [{"index": 0, "message": msg, "finish_reason": "stop"}]});
                http_reply(&mut conn, &resp.to_string());
            }
        });
        FakeLlm {
            port,
            bodies,
            request_lines,
        }
    }

    /// Its base URL as an `[llm] endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// The request bodies so far.
    pub fn bodies(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }
}

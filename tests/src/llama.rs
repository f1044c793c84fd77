//! A real local LLM for the tests: llama-server with the Qwen2.5-Coder model, both built by
//! `PEROS_SETUP_LLM=1 bash scripts/setup.sh` (scripts/test.sh does it) and named by
//! `PEROS_LLAMA_SERVER`, `PEROS_LLM_MODEL` and `PEROS_LLM_TEMPLATE` in /var/cache/peros/env.sh.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::skip_without_llm;

/// Which chat template the server uses.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Template {
    /// The model's own (plain chat, as `peros ask` uses it).
    ModelOwn,
    /// `--jinja` with RECIPES' `qwen25-coder-jsonfence.jinja` when set up: structured
    /// `tool_calls` from the 0.5B model.
    ToolCalls,
    /// `--embeddings --pooling mean`: an OpenAI-compatible `/v1/embeddings` service (the
    /// chat model's 896-d vectors: right for testing the protocol, not for quality).
    Embeddings,
}

/// A running llama-server on 127.0.0.1, stopped on drop.
pub struct Llama {
    child: Child,
    pub port: u16,
}

impl Llama {
    /// Starts llama-server with a context of `ctx` tokens and waits until it is healthy.
    /// None (after [`skip_without_llm`]) when the server or the model is not set up.
    pub fn start(template: Template, ctx: u32) -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::start_on(template, ctx, port)
    }

    /// The same on a given port (to bring a server back where a client expects it).
    pub fn start_on(template: Template, ctx: u32, port: u16) -> Option<Self> {
        Self::start_model("PEROS_LLM_MODEL", template, ctx, port)
    }

    /// With the GGUF named by the environment variable `model_var` (`PEROS_LLM_MODEL`: the
    /// 0.5B; `PEROS_LLM_MODEL_15B`: the 1.5B option), on `port` (0: any free one).
    pub fn start_model(model_var: &str, template: Template, ctx: u32, port: u16) -> Option<Self> {
        let port = if port == 0 {
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        } else {
            port
        };
        let path = |var: &str| std::env::var_os(var).map(PathBuf::from);
        let (Some(server), Some(model)) = (path("PEROS_LLAMA_SERVER"), path(model_var)) else {
            skip_without_llm(&format!(
                "no local LLM (PEROS_LLAMA_SERVER / {model_var} unset: run \
                     `PEROS_SETUP_LLM=1 bash scripts/setup.sh` and source /var/cache/peros/env.sh)"
            ));
            return None;
        };
        if !server.is_file() || !model.is_file() {
            skip_without_llm(&format!(
                "{} or {} missing",
                server.display(),
                model.display()
            ));
            return None;
        }
        let mut cmd = Command::new(&server);
        cmd.arg("-m").arg(&model).args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "-c",
            &ctx.to_string(),
            // One thread: the tests run beside other work (RECIPES: -t 2 under load is slower).
            "-t",
            "1",
            "-np",
            "1",
        ]);
        if template == Template::Embeddings {
            cmd.args(["--embeddings", "--pooling", "mean"]);
        }
        if template == Template::ToolCalls {
            cmd.arg("--jinja");
            if let Some(t) = path("PEROS_LLM_TEMPLATE").filter(|t| t.is_file()) {
                cmd.arg("--chat-template-file").arg(t);
            }
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start llama-server");
        let llama = Llama { child, port };
        let deadline = Instant::now() + Duration::from_secs(300);
        while !llama.healthy() {
            assert!(
                Instant::now() < deadline,
                "llama-server did not become healthy in 300 s"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        Some(llama)
    }

    /// The OpenAI-compatible base URL (`[llm] endpoint`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// The base URL without `/v1` (`[index] embed_endpoint`).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the server now (a service that goes down).
    pub fn stop(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }

    fn healthy(&self) -> bool {
        Command::new("curl")
            .args(["-sf", &format!("http://127.0.0.1:{}/health", self.port)])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }
}

impl Drop for Llama {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! `peros completions SHELL` (clap_complete) and `peros manpage [--out DIR]` (clap_mangen),
//! both generated from the same clap definition as the parser, so they never drift.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;

/// Completions for `shell` on `out`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) -> Result<()> {
    let mut cmd = crate::Cli::command();
    // Into a buffer first: clap_complete panics on a write error (e.g. a closed pipe).
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "peros", &mut buf);
    out.write_all(&buf)?;
    Ok(())
}

/// Without `dir`: the main page (peros.1) on `out`. With `dir`: peros.1 plus one page per
/// subcommand (peros-mount.1, peros-views-add.1 …) written there; their names on `out`.
pub fn manpages(dir: Option<&Path>, out: &mut dyn Write) -> Result<()> {
    let mut cmd = crate::Cli::command();
    cmd.build();
    let Some(dir) = dir else {
        let mut buf = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut buf)?;
        out.write_all(&buf)?;
        return Ok(());
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    write_tree(&cmd, "peros", dir, &mut written)?;
    for p in written {
        writeln!(out, "{}", p.display())?;
    }
    Ok(())
}

fn write_tree(
    cmd: &clap::Command,
    name: &str,
    dir: &Path,
    written: &mut Vec<std::path::PathBuf>,
) -> Result<()> {
    // clap names are &'static without its `string` feature: a few bytes, once per page.
    let page = cmd
        .clone()
        .name(&*Box::leak(name.to_string().into_boxed_str()));
    let path = dir.join(format!("{name}.1"));
    let mut buf = Vec::new();
    clap_mangen::Man::new(page).render(&mut buf)?;
    std::fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
    written.push(path);
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        write_tree(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}

/// Colour (ANSI escapes) only for a person: not when `NO_COLOR` is set (https://no-color.org),
/// not when the output is not a terminal, never from inside the daemon (`local` false).
pub fn color(local: bool) -> bool {
    use std::io::IsTerminal;
    local
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::io::stderr().is_terminal()
}

/// The tail of `peros --help`: exit codes, environment, files.
pub const AFTER_HELP: &str = "\
Exit codes:
  0  success (doctor: no check failed)
  1  error: the message on stderr says what to do (doctor: a check failed)
  2  usage error (unknown command or option, bad argument)
  3  fsck found problems (they are listed)

Environment:
  PEROS_HOME        one directory for config, key, metadata, objects, index and logs
  PEROS_PASSPHRASE  passphrase of a wrapped key (else asked on the terminal)
  PEROS_LOG         tracing filter for log output, e.g. peros_store=debug (overrides -v)
  PEROS_MODEL_DIR, ORT_DYLIB_PATH  embedding model directory and ONNX Runtime library
  AWS_*             S3 endpoint and credentials for s3:// stores
  NO_COLOR          no colour in help, errors, logs and doctor output

Logs: the mount daemon logs to PEROS_HOME/logs/daemon.log, or without PEROS_HOME to
$XDG_STATE_HOME/peros/logs/daemon.log (~/.local/state/peros/logs). Other commands log to stderr.
Progress bars are drawn only on a terminal; -q hides them. Most listing and reporting
commands take --json. `peros doctor` checks this machine and says how to fix what is missing.";

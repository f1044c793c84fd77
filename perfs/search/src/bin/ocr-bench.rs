//! `ocr-bench`: OCR and extraction throughput (issue "What personal files really are").
//! Release build; every figure is printed next to a baseline measured in the same run.
//!
//! 1. `--pages DIR`: DIR holds `NNN.png` scans rendered from `NNN.txt` (perfs/ocr/run.sh makes
//!    them from man pages with ImageMagick: A4 at 300 dpi, rotated, with noise). Each page is
//!    read through PerOS's OCR path (`peros_indexer::ocr::recognise`: Tesseract at nice 19,
//!    one thread per process, as the OCR worker runs it) one at a time and two at a time (the
//!    2 cores), and by plain `tesseract FILE stdout` (its default threads, normal priority) as
//!    the baseline, and with `OMP_THREAD_LIMIT=1` (what PerOS sets: Tesseract's OpenMP threads
//!    spin against each other on a small, busy machine). Figures: pages per minute and character accuracy (1 − Levenshtein distance
//!    / source length, on whitespace-normalised text).
//! 2. `--extract DIR`: every file of DIR extracted `--repeat` times by `extract::extract`:
//!    files/s and MB/s per kind, with plain-text files of the same run as the baseline.
//!
//! Usage: `ocr-bench [--pages DIR] [--extract DIR] [--repeat N] [--out FILE]`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use peros_indexer::extract::{self, OcrPart};
use peros_indexer::ocr::{recognise, OcrOptions};

fn normalise(s: &str) -> Vec<char> {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .collect()
}

/// 1 − edit distance / source length (0 when the text is all wrong or missing).
fn accuracy(ocr: &str, source: &str) -> f64 {
    let (a, b) = (normalise(ocr), normalise(source));
    if b.is_empty() {
        return if a.is_empty() { 1.0 } else { 0.0 };
    }
    let mut prev: Vec<usize> = (0..=a.len()).collect();
    let mut cur = vec![0; a.len() + 1];
    for (j, cb) in b.iter().enumerate() {
        cur[0] = j + 1;
        for (i, ca) in a.iter().enumerate() {
            let sub = prev[i] + usize::from(ca != cb);
            cur[i + 1] = sub.min(prev[i + 1] + 1).min(cur[i] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    (1.0 - prev[a.len()] as f64 / b.len() as f64).max(0.0)
}

struct Run {
    label: String,
    pages: usize,
    wall: Duration,
    accuracy: f64,
}

impl Run {
    fn per_minute(&self) -> f64 {
        self.pages as f64 / self.wall.as_secs_f64() * 60.0
    }
}

fn pages_of(dir: &Path) -> Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "png") {
            let txt = p.with_extension("txt");
            let source = std::fs::read_to_string(&txt)
                .with_context(|| format!("{} has no source text {}", p.display(), txt.display()))?;
            out.push((p, source));
        }
    }
    out.sort();
    if out.is_empty() {
        bail!(
            "no NNN.png pages in {}: run perfs/ocr/run.sh",
            dir.display()
        );
    }
    Ok(out)
}

/// Reads every page with `read`, `parallel` at a time.
fn timed_run(
    label: &str,
    pages: &[(PathBuf, String)],
    parallel: usize,
    read: &(dyn Fn(&Path) -> Result<String> + Sync),
) -> Result<Run> {
    let start = Instant::now();
    let results: Vec<Result<f64>> = std::thread::scope(|s| {
        let chunks: Vec<&[(PathBuf, String)]> =
            pages.chunks(pages.len().div_ceil(parallel)).collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|(p, src)| read(p).map(|t| accuracy(&t, src)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("reader thread"))
            .collect()
    });
    let wall = start.elapsed();
    let mut acc = Vec::new();
    for r in results {
        acc.push(r?);
    }
    Ok(Run {
        label: label.to_string(),
        pages: pages.len(),
        wall,
        accuracy: acc.iter().sum::<f64>() / acc.len() as f64,
    })
}

fn ocr_table(dir: &Path, out: &mut String) -> Result<()> {
    let pages = pages_of(dir)?;
    let opts = OcrOptions::default();
    let peros = |p: &Path| -> Result<String> {
        let bytes = std::fs::read(p)?;
        recognise(&bytes, OcrPart::Image, &opts).map_err(|e| anyhow::anyhow!(e))
    };
    let cli = |p: &Path, one_thread: bool| -> Result<String> {
        let mut cmd = std::process::Command::new("tesseract");
        cmd.arg(p).arg("stdout");
        if one_thread {
            cmd.env("OMP_THREAD_LIMIT", "1");
        }
        let o = cmd
            .output()
            .context("running tesseract (install tesseract-ocr)")?;
        if !o.status.success() {
            bail!("tesseract failed on {}", p.display());
        }
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let plain = |p: &Path| cli(p, false);
    let plain_one = |p: &Path| cli(p, true);
    // Warm the page cache and Tesseract's model files once, so that no run pays it.
    plain(&pages[0].0)?;
    let runs = [
        timed_run(
            "tesseract CLI, default threads (baseline)",
            &pages,
            1,
            &plain,
        )?,
        timed_run("tesseract CLI, OMP_THREAD_LIMIT=1", &pages, 1, &plain_one)?,
        timed_run(
            "PerOS OCR path, 1 page at a time (the worker)",
            &pages,
            1,
            &peros,
        )?,
        timed_run(
            "PerOS OCR path, 2 pages at a time (2 cores)",
            &pages,
            2,
            &peros,
        )?,
    ];
    let base = runs[0].per_minute();
    out.push_str(&format!(
        "### OCR: {} scanned pages (A4, 300 dpi, rotated, noise), cold process per page\n\n\
         | reader | pages/min | × baseline | character accuracy |\n|---|---:|---:|---:|\n",
        pages.len()
    ));
    for r in &runs {
        out.push_str(&format!(
            "| {} | {:.1} | {:.2} | {:.3} |\n",
            r.label,
            r.per_minute(),
            r.per_minute() / base,
            r.accuracy
        ));
    }
    out.push('\n');
    Ok(())
}

fn extract_table(dir: &Path, repeat: usize, out: &mut String) -> Result<()> {
    let mut by_kind: BTreeMap<String, (usize, u64, Duration, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for e in walk(dir)? {
        let bytes = std::fs::read(&e)?;
        let name = e.to_string_lossy().to_string();
        let t = Instant::now();
        let mut kind = String::new();
        let mut text_len = 0;
        for _ in 0..repeat {
            match extract::extract(&name, &bytes, 2 << 20) {
                Ok(x) => {
                    kind = x.kind.as_str().to_string();
                    text_len = x.text.len();
                }
                Err(err) => {
                    failures.push(format!("{name}: {err}"));
                    break;
                }
            }
        }
        if kind.is_empty() {
            continue;
        }
        // Large documents (a `large/` folder) are reported apart from one-page samples.
        if e.components().any(|c| c.as_os_str() == "large") {
            kind.push_str(" (large)");
        }
        let entry = by_kind.entry(kind).or_default();
        entry.0 += repeat;
        entry.1 += bytes.len() as u64 * repeat as u64;
        entry.2 += t.elapsed();
        entry.3 += text_len * repeat;
    }
    let base = by_kind
        .get("text")
        .map(|(_, b, d, _)| *b as f64 / d.as_secs_f64())
        .unwrap_or(0.0);
    out.push_str(&format!(
        "### Extraction throughput by kind ({repeat} passes over {}; warm: files in memory)\n\n\
         | kind | files | MB/s of file | × plain text | text MB/s | ms per file |\n|---|---:|---:|---:|---:|---:|\n",
        dir.display()
    ));
    for (kind, (n, bytes, d, text)) in &by_kind {
        let mbs = *bytes as f64 / d.as_secs_f64() / 1e6;
        out.push_str(&format!(
            "| {kind} | {} | {mbs:.1} | {} | {:.1} | {:.2} |\n",
            n / repeat,
            if base > 0.0 {
                format!("{:.3}", mbs * 1e6 / base)
            } else {
                "–".into()
            },
            *text as f64 / d.as_secs_f64() / 1e6,
            d.as_secs_f64() * 1e3 / *n as f64
        ));
    }
    if !failures.is_empty() {
        out.push_str("\nNot extracted (reported, as the indexer reports them):\n\n");
        for f in failures {
            out.push_str(&format!("- {f}\n"));
        }
    }
    out.push('\n');
    Ok(())
}

fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn main() -> Result<()> {
    let mut pages = None;
    let mut extract_dir = None;
    let mut repeat = 5;
    let mut out_file = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--pages" => pages = args.next().map(PathBuf::from),
            "--extract" => extract_dir = args.next().map(PathBuf::from),
            "--repeat" => repeat = args.next().context("--repeat N")?.parse()?,
            "--out" => out_file = args.next().map(PathBuf::from),
            other => bail!("unknown argument {other}: ocr-bench [--pages DIR] [--extract DIR] [--repeat N] [--out FILE]"),
        }
    }
    let mut out = String::new();
    if let Some(d) = &pages {
        ocr_table(d, &mut out)?;
    }
    if let Some(d) = &extract_dir {
        extract_table(d, repeat.max(1), &mut out)?;
    }
    if out.is_empty() {
        bail!("nothing to do: give --pages DIR and/or --extract DIR");
    }
    print!("{out}");
    if let Some(f) = out_file {
        std::fs::write(&f, &out).with_context(|| format!("writing {}", f.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn accuracy_is_one_minus_the_edit_rate() {
        assert_eq!(super::accuracy("hello  world", "hello world"), 1.0);
        assert!((super::accuracy("hellp world", "hello world") - (1.0 - 1.0 / 11.0)).abs() < 1e-9);
        assert_eq!(super::accuracy("", "abc"), 0.0);
    }
}

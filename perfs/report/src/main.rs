//! `perf-report`: one Markdown page with charts of every benchmark against its baselines.
//!
//! It reads the Markdown tables of the latest `perfs/results/<bench>-YYYY-MM-DD[-HHMM].md` of
//! each benchmark (the reports the scripts already write: no second output format to keep in
//! step), draws SVG bar charts with plotters (SVG backend only: no system fonts needed, the
//! viewer lays out the text) into `perfs/results/charts/`, and writes `perfs/results/REPORT.md`.
//! A benchmark with no result file, or whose tables are not found, gets a section that says
//! "not run yet" and how to run it; nothing here fails because a result is missing.
//!
//! ```sh
//! cargo run -p peros-perfs-report --release -- [--results DIR] [--out FILE]
//! ```

use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

type Res<T> = Result<T, Box<dyn Error>>;

// ----- Markdown tables -----

#[derive(Debug, Clone)]
struct Table {
    /// The last heading above the table.
    section: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Index of the first column whose header contains `needle` (case-insensitive).
    fn col(&self, needle: &str) -> Option<usize> {
        let n = needle.to_lowercase();
        self.header
            .iter()
            .position(|h| h.to_lowercase().contains(&n))
    }
}

fn cells(line: &str) -> Vec<String> {
    let t = line.trim().trim_start_matches('|').trim_end_matches('|');
    t.split('|').map(|c| c.trim().to_string()).collect()
}

fn parse_tables(text: &str) -> Vec<Table> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut section = String::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i].trim();
        if l.starts_with('#') {
            section = l.trim_start_matches('#').trim().to_string();
        }
        let is_sep = |s: &str| {
            let s = s.trim();
            s.starts_with('|') && s.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '))
        };
        if l.starts_with('|') && i + 1 < lines.len() && is_sep(lines[i + 1]) {
            let header = cells(l);
            let mut rows = Vec::new();
            let mut j = i + 2;
            while j < lines.len() && lines[j].trim().starts_with('|') {
                rows.push(cells(lines[j]));
                j += 1;
            }
            out.push(Table {
                section: section.clone(),
                header,
                rows,
            });
            i = j;
            continue;
        }
        i += 1;
    }
    out
}

/// The first number in a cell: `1,384` → 1384, `0.49 s` → 0.49, `**1595 KiB**` → 1595,
/// `.75×` → 0.75, `654 (min 535, max 739)` → 654; `–` or empty → None.
fn num(cell: &str) -> Option<f64> {
    let s: String = cell.chars().filter(|c| *c != ',' && *c != '*').collect();
    let bytes: Vec<char> = s.chars().collect();
    let start = bytes
        .iter()
        .position(|c| c.is_ascii_digit() || (*c == '.'))?;
    let mut end = start;
    while end < bytes.len() && (bytes[end].is_ascii_digit() || bytes[end] == '.') {
        end += 1;
    }
    let neg = start > 0 && bytes[start - 1] == '-';
    let v: f64 = bytes[start..end].iter().collect::<String>().parse().ok()?;
    Some(if neg { -v } else { v })
}

fn clean(cell: &str) -> String {
    cell.replace("**", "").replace('`', "")
}

/// The latest `<prefix>-YYYY-MM-DD[-HHMM].md` in `dir` (variants such as `-scale-20k` are not
/// runs of the same benchmark and are left out).
fn latest(dir: &Path, prefix: &str) -> Option<PathBuf> {
    let mut best: Option<(String, PathBuf)> = None;
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(rest) = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('-'))
            .and_then(|r| r.strip_suffix(".md"))
        else {
            continue;
        };
        let (date, time) = match rest.len() {
            10 => (rest, "0000"),
            15 if rest.as_bytes()[10] == b'-' => (&rest[..10], &rest[11..]),
            _ => continue,
        };
        let ok = date.len() == 10
            && date.chars().enumerate().all(|(i, c)| {
                if i == 4 || i == 7 {
                    c == '-'
                } else {
                    c.is_ascii_digit()
                }
            })
            && time.chars().all(|c| c.is_ascii_digit());
        if !ok {
            continue;
        }
        let key = format!("{date}{time}");
        if best.as_ref().is_none_or(|(k, _)| key > *k) {
            best = Some((key, e.path()));
        }
    }
    best.map(|(_, p)| p)
}

// ----- charts -----

const PALETTE: [RGBColor; 6] = [
    RGBColor(150, 150, 150), // baseline grey
    RGBColor(230, 145, 56),  // orange
    RGBColor(31, 119, 180),  // blue (PerOS)
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(214, 39, 40),
];

struct Bars<'a> {
    title: String,
    x_desc: String,
    categories: Vec<String>,
    /// (name, one value per category).
    series: Vec<(String, Vec<Option<f64>>)>,
    /// With one series: colour of each category (index into PALETTE).
    category_colors: Option<Vec<usize>>,
    label_width: u32,
    _p: std::marker::PhantomData<&'a ()>,
}

fn fmt_value(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 100.0 {
        let i = v.round() as i64;
        let s = i.abs().to_string();
        let mut out = String::new();
        for (k, ch) in s.chars().enumerate() {
            if k > 0 && (s.len() - k).is_multiple_of(3) {
                out.push(',');
            }
            out.push(ch);
        }
        if i < 0 {
            format!("-{out}")
        } else {
            out
        }
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// Horizontal grouped bars on `area`: one group per category, one bar per series.
fn draw_bars<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, b: &Bars) -> Res<()>
where
    DB::ErrorType: 'static,
{
    let n = b.categories.len().max(1);
    let k = b.series.len().max(1);
    let max = b
        .series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten())
        .fold(0.0f64, |m, v| m.max(*v));
    // Room on the right for the value labels (and the legend with several series).
    let head = if k > 1 { 1.32 } else { 1.18 };
    let xmax = if max > 0.0 { max * head } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(&b.title, ("sans-serif", 15))
        .margin(6)
        .margin_left(b.label_width)
        .margin_right(18)
        .x_label_area_size(32)
        .y_label_area_size(0)
        .build_cartesian_2d(0f64..xmax, 0f64..n as f64)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_labels(5)
        .x_desc(b.x_desc.as_str())
        .x_label_formatter(&|v| fmt_value(*v))
        .label_style(("sans-serif", 11))
        .draw()?;
    let base = area.get_base_pixel();
    let band = 0.8 / k as f64;
    for (si, (name, values)) in b.series.iter().enumerate() {
        let mut rects = Vec::new();
        let mut texts = Vec::new();
        for (ci, v) in values.iter().enumerate() {
            // Categories top to bottom.
            let top = (n - ci) as f64 - 0.1 - band * si as f64;
            let color = match (&b.category_colors, b.series.len()) {
                (Some(cc), 1) => PALETTE[cc[ci] % PALETTE.len()],
                _ => PALETTE[(si + if k == 1 { 2 } else { 0 }) % PALETTE.len()],
            };
            match v {
                Some(v) => {
                    rects.push(Rectangle::new(
                        [(0.0, top - band * 0.92), (*v, top)],
                        color.filled(),
                    ));
                    texts.push(Text::new(
                        fmt_value(*v),
                        (*v + xmax * 0.01, top - band * 0.46),
                        TextStyle::from(("sans-serif", 10).into_font())
                            .pos(Pos::new(HPos::Left, VPos::Center)),
                    ));
                }
                None => texts.push(Text::new(
                    "n/a".to_string(),
                    (xmax * 0.01, top - band * 0.46),
                    TextStyle::from(("sans-serif", 10).into_font())
                        .pos(Pos::new(HPos::Left, VPos::Center)),
                )),
            }
        }
        let color = PALETTE[(si + if k == 1 { 2 } else { 0 }) % PALETTE.len()];
        let drawn = chart.draw_series(rects)?;
        if k > 1 {
            drawn.label(name.as_str()).legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
            });
        }
        chart.draw_series(texts)?;
    }
    if k > 1 {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font(("sans-serif", 11))
            .draw()?;
    }
    for (ci, c) in b.categories.iter().enumerate() {
        let mid = (n - ci) as f64 - 0.5;
        let (px, py) = chart.backend_coord(&(0.0, mid));
        let label: String = if c.chars().count() > 48 {
            c.chars().take(47).collect::<String>() + "…"
        } else {
            c.clone()
        };
        area.draw(&Text::new(
            label,
            (px - base.0 - 6, py - base.1),
            TextStyle::from(("sans-serif", 11).into_font())
                .pos(Pos::new(HPos::Right, VPos::Center)),
        ))?;
    }
    Ok(())
}

fn bar_height(b: &Bars) -> u32 {
    let per = (b.series.len().max(1) as u32 * 16).max(22) + 8;
    70 + b.categories.len().max(1) as u32 * per
}

/// One chart in its own SVG file.
fn chart_file(path: &Path, b: &Bars) -> Res<()> {
    let root = SVGBackend::new(path, (900, bar_height(b))).into_drawing_area();
    root.fill(&WHITE)?;
    draw_bars(&root, b)?;
    root.present()?;
    Ok(())
}

/// Several charts stacked in a grid of `cols` columns, in one SVG file.
fn panels_file(path: &Path, panels: &[Bars], cols: usize) -> Res<()> {
    let rows = panels.len().div_ceil(cols).max(1);
    let h = panels.iter().map(bar_height).max().unwrap_or(150);
    let root = SVGBackend::new(path, (460 * cols as u32, h * rows as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    for (area, b) in root.split_evenly((rows, cols)).iter().zip(panels) {
        draw_bars(area, b)?;
    }
    root.present()?;
    Ok(())
}

fn bars(
    title: &str,
    x_desc: &str,
    categories: Vec<String>,
    series: Vec<(String, Vec<Option<f64>>)>,
) -> Bars<'static> {
    let longest = categories
        .iter()
        .map(|c| c.chars().count().min(48))
        .max()
        .unwrap_or(4);
    Bars {
        title: title.to_string(),
        x_desc: x_desc.to_string(),
        categories,
        series,
        category_colors: None,
        label_width: (longest as u32 * 6 + 14).clamp(60, 320),
        _p: std::marker::PhantomData,
    }
}

/// `t` as a markdown table.
fn md_table(t: &Table) -> String {
    let mut md = format!(
        "| {} |\n|{}\n",
        t.header.join(" | "),
        "---|".repeat(t.header.len())
    );
    for r in &t.rows {
        let _ = writeln!(
            md,
            "| {} |",
            r.iter().map(|c| clean(c)).collect::<Vec<_>>().join(" | ")
        );
    }
    md
}

// ----- the sections -----

struct Ctx {
    results: PathBuf,
    charts: PathBuf,
    out: String,
    made: Vec<String>,
}

impl Ctx {
    fn chart(&mut self, name: &str, b: &Bars, alt: &str) {
        let path = self.charts.join(name);
        match chart_file(&path, b) {
            Ok(()) => {
                let _ = writeln!(self.out, "\n![{alt}](charts/{name})\n");
                self.made.push(name.to_string());
            }
            Err(e) => {
                let _ = writeln!(self.out, "\n(chart {name} failed: {e})\n");
            }
        }
    }

    fn not_run(&mut self, what: &str, how: &str) {
        let _ = writeln!(
            self.out,
            "**Not run yet** ({what}). Run: `{how}`, then this tool again.\n"
        );
    }

    fn source(&mut self, p: &Path) {
        let _ = writeln!(
            self.out,
            "Source: [`{}`]({}).\n",
            p.file_name().unwrap().to_string_lossy(),
            p.file_name().unwrap().to_string_lossy()
        );
    }
}

fn read_tables(p: &Path) -> Vec<Table> {
    std::fs::read_to_string(p)
        .map(|t| parse_tables(&t))
        .unwrap_or_default()
}

fn fio(cx: &mut Ctx) {
    cx.out
        .push_str("## File system throughput: plain directory vs gocryptfs vs PerOS (fio)\n\n");
    let Some(p) = latest(&cx.results, "fio") else {
        return cx.not_run("no fio-*.md", "bash perfs/fio_bench.sh");
    };
    cx.source(&p);
    let tables = read_tables(&p);
    let Some(t) = tables.iter().find(|t| {
        t.col("job").is_some()
            && t.col("plain").is_some()
            && t.col("gocryptfs").is_some()
            && t.col("peros").is_some()
    }) else {
        return cx.not_run(
            "no plain/gocryptfs/PerOS table in it",
            "bash perfs/fio_bench.sh",
        );
    };
    let (cj, cu, cp, cg, co) = (
        t.col("job").unwrap(),
        t.col("unit"),
        t.col("plain").unwrap(),
        t.col("gocryptfs").unwrap(),
        t.header
            .iter()
            .position(|h| h == "PerOS")
            .unwrap_or(t.col("peros").unwrap()),
    );
    let mut panels = Vec::new();
    let mut ratio_cats = Vec::new();
    let mut ratios = Vec::new();
    for r in &t.rows {
        let get = |c: usize| r.get(c).and_then(|s| num(s));
        let unit = cu.and_then(|c| r.get(c)).cloned().unwrap_or_default();
        let lower_better = unit.trim() == "s";
        let job = clean(&r[cj]);
        let mut b = bars(
            &format!(
                "{job} ({})",
                if lower_better {
                    "s, lower is better"
                } else {
                    "higher is better"
                }
            ),
            &unit,
            vec!["plain dir".into(), "gocryptfs".into(), "PerOS".into()],
            vec![("".into(), vec![get(cp), get(cg), get(co)])],
        );
        b.category_colors = Some(vec![0, 1, 2]);
        b.label_width = 80;
        panels.push(b);
        if let (Some(g), Some(o)) = (get(cg), get(co)) {
            if g > 0.0 && o > 0.0 {
                ratio_cats.push(job);
                // Speed-up over gocryptfs: for times, gocryptfs / PerOS.
                ratios.push(Some(if lower_better { g / o } else { o / g }));
            }
        }
    }
    let name = "fio.svg";
    match panels_file(&cx.charts.join(name), &panels, 2) {
        Ok(()) => {
            let _ = writeln!(
                cx.out,
                "![fio: each job, plain vs gocryptfs vs PerOS](charts/{name})\n"
            );
            cx.made.push(name.into());
        }
        Err(e) => {
            let _ = writeln!(cx.out, "(chart failed: {e})\n");
        }
    }
    let b = bars(
        "PerOS speed relative to gocryptfs (1.0 = as fast; higher is better)",
        "× gocryptfs",
        ratio_cats,
        vec![("PerOS / gocryptfs".into(), ratios)],
    );
    cx.chart(
        "fio-vs-gocryptfs.svg",
        &b,
        "PerOS relative to gocryptfs per job",
    );
    let mut md =
        String::from("| job | unit | plain | gocryptfs | PerOS |\n|---|---|---:|---:|---:|\n");
    for r in &t.rows {
        let c = |i: usize| r.get(i).map(|s| clean(s)).unwrap_or_default();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            c(cj),
            cu.map(c).unwrap_or_default(),
            c(cp),
            c(cg),
            c(co)
        );
    }
    cx.out.push_str(&md);
    cx.out.push('\n');
}

fn search(cx: &mut Ctx) {
    cx.out
        .push_str("## Retrieval quality per mode (labelled man-page questions)\n\n");
    let Some(p) = latest(&cx.results, "search") else {
        return cx.not_run("no search-*.md", "bash perfs/search/run.sh");
    };
    cx.source(&p);
    let tables = read_tables(&p);
    let Some(t) = tables
        .iter()
        .find(|t| t.header.first().is_some_and(|h| h == "mode") && t.col("recall@5").is_some())
    else {
        return cx.not_run("no mode/recall table in it", "bash perfs/search/run.sh");
    };
    let modes: Vec<String> = t.rows.iter().map(|r| clean(&r[0])).collect();
    let metric = |name: &str| -> Option<(String, Vec<Option<f64>>)> {
        let c = t.col(name)?;
        Some((
            t.header[c].clone(),
            t.rows
                .iter()
                .map(|r| r.get(c).and_then(|s| num(s)))
                .collect(),
        ))
    };
    let series: Vec<_> = ["recall@5", "recall@10", "mrr@10"]
        .iter()
        .filter_map(|m| metric(m))
        .collect();
    let b = bars(
        "Retrieval quality per mode (text = BM25 baseline; higher is better)",
        "fraction of questions",
        modes.clone(),
        series,
    );
    cx.chart("search-quality.svg", &b, "recall and MRR per search mode");
    let lat: Vec<_> = ["p50 ms", "p99 ms"]
        .iter()
        .filter_map(|m| metric(m))
        .collect();
    if !lat.is_empty() {
        let b = bars("Query latency per mode (lower is better)", "ms", modes, lat);
        cx.chart("search-latency.svg", &b, "query latency per search mode");
    }
    cx.out.push_str(&md_table(t));
    cx.out.push('\n');
}

fn tenants(cx: &mut Ctx) {
    cx.out
        .push_str("## Tenants sharing one S3 cluster: throughput and latency\n\n");
    let Some(p) = latest(&cx.results, "tenants") else {
        return cx.not_run(
            "no tenants-*.md",
            "cargo run --release -p peros-perfs-tenants --bin tenants-bench",
        );
    };
    cx.source(&p);
    let tables = read_tables(&p);
    let phases: Vec<&Table> = tables
        .iter()
        .filter(|t| t.col("phase").is_some() && t.col("ops/s").is_some())
        .collect();
    if phases.is_empty() {
        return cx.not_run("no phase/ops/s table in it", "tenants-bench");
    }
    let mut cats = Vec::new();
    let (mut ops, mut p50, mut p99) = (Vec::new(), Vec::new(), Vec::new());
    let mut md = String::from("| run | phase | ops/s | MB/s | p50 ms | p99 ms | errors |\n|---|---|---:|---:|---:|---:|---:|\n");
    for t in &phases {
        let run = short_run(&t.section);
        for r in &t.rows {
            let g = |name: &str| t.col(name).and_then(|c| r.get(c)).and_then(|s| num(s));
            let s = |name: &str| {
                t.col(name)
                    .and_then(|c| r.get(c))
                    .map(|s| clean(s))
                    .unwrap_or_default()
            };
            let phase = clean(&r[0]);
            cats.push(format!("{run}: {phase}"));
            ops.push(g("ops/s"));
            p50.push(g("p50"));
            p99.push(g("p99"));
            let _ = writeln!(
                md,
                "| N = {run} | {phase} | {} | {} | {} | {} | {} |",
                s("ops/s"),
                s("mb/s"),
                s("p50"),
                s("p99"),
                s("errors")
            );
        }
    }
    let b = bars(
        "Operations per second, all tenants together (higher is better)",
        "ops/s",
        cats.clone(),
        vec![("ops/s".into(), ops)],
    );
    cx.chart("tenants-throughput.svg", &b, "tenants throughput per phase");
    let b = bars(
        "Latency per operation (lower is better)",
        "ms",
        cats,
        vec![("p50 ms".into(), p50), ("p99 ms".into(), p99)],
    );
    cx.chart("tenants-latency.svg", &b, "tenants latency per phase");
    cx.out.push_str(&md);
    // Memory per tenant, from the memory tables.
    let per: Vec<String> = tables
        .iter()
        .filter(|t| t.col("memory").is_some())
        .filter_map(|t| {
            let r = t.rows.iter().find(|r| r[0].contains("per tenant"))?;
            Some(format!(
                "N = {}: {}",
                t.section.trim_start_matches("N = "),
                clean(r.get(1)?)
            ))
        })
        .collect();
    if !per.is_empty() {
        let _ = writeln!(cx.out, "\nMemory per open tenant: {}.", per.join("; "));
    }
    cx.out.push('\n');
}

/// "N = 1000 (run 2, `MALLOC_ARENA_MAX=2`, machine busier)" → "N=1000 run 2".
fn short_run(section: &str) -> String {
    let s = section.replace('`', "");
    let (head, rest) = s.split_once('(').unwrap_or((&s, ""));
    let head = head.trim().replace(" = ", "=");
    let first = rest
        .trim_end_matches(')')
        .split(',')
        .next()
        .unwrap_or("")
        .trim();
    if !first.is_empty() && first.chars().count() <= 12 {
        format!("{head} {first}")
    } else {
        head
    }
}

fn views(cx: &mut Ctx) {
    cx.out.push_str("## Views: listing a view vs baselines\n\n");
    let Some(p) = latest(&cx.results, "views") else {
        return cx.not_run("no views-*.md", "bash perfs/views/bench.sh");
    };
    cx.source(&p);
    let tables = read_tables(&p);
    let Some(t) = tables
        .iter()
        .find(|t| t.col("listing").is_some() && t.col("median").is_some())
    else {
        return cx.not_run("no listing table in it", "bash perfs/views/bench.sh");
    };
    let cm = t.col("median").unwrap();
    let cats: Vec<String> = t.rows.iter().map(|r| clean(&r[0])).collect();
    let colors: Vec<usize> = cats
        .iter()
        .map(|c| {
            if c.contains("baseline") || c.contains("local") {
                0
            } else if c.contains("stored directory") {
                1
            } else {
                2
            }
        })
        .collect();
    let vals = t
        .rows
        .iter()
        .map(|r| r.get(cm).and_then(|s| num(s)))
        .collect();
    let mut b = bars(
        "Warm listing time, median ms (grey: local-disk baselines; orange: a stored directory; blue: views)",
        "ms (lower is better)",
        cats,
        vec![("median ms".into(), vals)],
    );
    b.category_colors = Some(colors);
    cx.chart("views-listing.svg", &b, "views listing vs baselines");
    cx.out.push_str(&md_table(t));
    if let Some(t) = tables.iter().find(|t| t.col("what").is_some()) {
        cx.out.push_str("\nFollowing changes:\n\n");
        for r in &t.rows {
            let _ = writeln!(
                cx.out,
                "- {}: {} ms",
                clean(&r[0]),
                r.get(1).map(|s| clean(s)).unwrap_or_default()
            );
        }
    }
    cx.out.push('\n');
}

fn agent(cx: &mut Ctx) {
    cx.out
        .push_str("## Agent: prefetch hit rates per policy\n\n");
    let Some(p) = latest(&cx.results, "agent") else {
        return cx.not_run(
            "no agent-*.md",
            "the agent benchmark in perfs/agent (see its README)",
        );
    };
    cx.source(&p);
    // One table per (trace, cache size); rows are the policies.
    let tables: Vec<Table> = read_tables(&p)
        .into_iter()
        .filter(|t| t.col("strategy").is_some() && t.col("hit").is_some())
        .collect();
    if tables.is_empty() {
        return cx.not_run(
            "no table with a strategy and hit-rate column in it",
            "perfs/agent",
        );
    }
    // "build: 11823 opens of 68 files (…), cache 4.0 MiB" → "build, cache 4.0 MiB"
    let cats: Vec<String> = tables
        .iter()
        .map(|t| {
            let trace = t.section.split(':').next().unwrap_or("").trim();
            let cache = t.section.rsplit(", ").next().unwrap_or("").trim();
            format!("{trace}, {cache}")
        })
        .collect();
    let policies: Vec<String> = tables[0].rows.iter().map(|r| clean(&r[0])).collect();
    let series_of = |needle: &str| -> Vec<(String, Vec<Option<f64>>)> {
        policies
            .iter()
            .filter(|p| !p.starts_with("no cache"))
            .map(|policy| {
                let values = tables
                    .iter()
                    .map(|t| {
                        let c = t.col(needle)?;
                        let row = t.rows.iter().find(|r| clean(&r[0]) == *policy)?;
                        num(row.get(c)?)
                    })
                    .collect();
                (policy.clone(), values)
            })
            .collect()
    };
    let hit = bars(
        "first-chunk hit rate per trace and cache size (higher is better)",
        "hit rate, %",
        cats.clone(),
        series_of("hit rate"),
    );
    cx.chart("agent-prefetch.svg", &hit, "prefetch hit rates per policy");
    let wasted = bars(
        "prefetched bytes never used, per trace and cache size (lower is better)",
        "wasted MiB",
        cats.clone(),
        series_of("wasted")
            .into_iter()
            .filter(|(p, _)| !p.eq_ignore_ascii_case("LRU alone"))
            .collect(),
    );
    cx.chart(
        "agent-wasted.svg",
        &wasted,
        "wasted prefetch bytes per policy",
    );
    let mut md = String::from("| trace, cache |");
    for p in policies.iter().filter(|p| !p.starts_with("no cache")) {
        let _ = write!(md, " {p}: hit / wasted MiB |");
    }
    md.push('\n');
    md.push('|');
    md.push_str(&"---|".repeat(policies.len()));
    md.push('\n');
    for (t, cat) in tables.iter().zip(&cats) {
        let _ = write!(md, "| {cat} |");
        for row in t
            .rows
            .iter()
            .filter(|r| !clean(&r[0]).starts_with("no cache"))
        {
            let cell = |needle: &str| {
                t.col(needle)
                    .and_then(|c| row.get(c))
                    .map(|s| clean(s))
                    .unwrap_or_default()
            };
            let _ = write!(md, " {} / {} |", cell("hit rate"), cell("wasted"));
        }
        md.push('\n');
    }
    cx.out.push_str(&md);
    if let Some(l) = latest(&cx.results, "agent-latency") {
        let _ = writeln!(
            cx.out,
            "\nFirst-read latency from a slow S3 backend, with and without prefetch: see [`{}`]({}).",
            l.file_name().unwrap_or_default().to_string_lossy(),
            l.file_name().unwrap_or_default().to_string_lossy()
        );
    }
    cx.out.push('\n');
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut results = Path::new(env!("CARGO_MANIFEST_DIR")).join("../results");
    let mut out: Option<PathBuf> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--results" => results = PathBuf::from(args.next().expect("--results DIR")),
            "--out" => out = Some(PathBuf::from(args.next().expect("--out FILE"))),
            "-h" | "--help" => {
                println!("perf-report [--results DIR] [--out FILE]: charts of perfs/results/*.md into REPORT.md");
                return;
            }
            other => {
                eprintln!("perf-report: unknown argument {other:?} (try --help)");
                std::process::exit(2);
            }
        }
    }
    let out = out.unwrap_or_else(|| results.join("REPORT.md"));
    let charts = out.parent().unwrap_or(Path::new(".")).join("charts");
    if let Err(e) = std::fs::create_dir_all(&charts) {
        eprintln!("perf-report: creating {}: {e}", charts.display());
        std::process::exit(1);
    }
    let mut cx = Ctx {
        results,
        charts,
        out: String::new(),
        made: Vec::new(),
    };
    cx.out.push_str(
        "# PerOS benchmark report\n\nGenerated by `perf-report` (perfs/report) from the latest result of each benchmark in \
         this directory; regenerate with `cargo run -p peros-perfs-report --release`. Figures are only comparable \
         within one run on one machine (see each source file for its machine, load and method).\n\n",
    );
    fio(&mut cx);
    search(&mut cx);
    tenants(&mut cx);
    views(&mut cx);
    agent(&mut cx);
    if let Err(e) = std::fs::write(&out, &cx.out) {
        eprintln!("perf-report: writing {}: {e}", out.display());
        std::process::exit(1);
    }
    println!(
        "wrote {} and {} charts in {}",
        out.display(),
        cx.made.len(),
        cx.charts.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_tables() {
        assert_eq!(num("1,384"), Some(1384.0));
        assert_eq!(num("0.49 s"), Some(0.49));
        assert_eq!(num("**1595 KiB**"), Some(1595.0));
        assert_eq!(num(".75×"), Some(0.75));
        assert_eq!(num("654 (min 535, max 739)"), Some(654.0));
        assert_eq!(num("–"), None);
        let t = parse_tables("# A\n\n| x | y |\n|---|---:|\n| a | 1 |\n| b | 2 |\n\ntext\n");
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].section, "A");
        assert_eq!(t[0].rows.len(), 2);
        assert_eq!(short_run("N = 1000 (run 2, `X=2`, busy)"), "N=1000 run 2");
        assert_eq!(short_run("N = 100 (same work per tenant, more)"), "N=100");
    }

    #[test]
    fn latest_skips_variants_and_orders_times() {
        let d = std::env::temp_dir().join(format!("perf-report-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        for n in [
            "fio-2026-11-27.md",
            "fio-2026-11-27-2055.md",
            "fio-2026-11-27-2048.md",
            "search-2026-11-28-scale-20k.md",
            "search-2026-11-27.md",
        ] {
            std::fs::write(d.join(n), "").unwrap();
        }
        assert!(latest(&d, "fio")
            .unwrap()
            .ends_with("fio-2026-11-27-2055.md"));
        assert!(latest(&d, "search")
            .unwrap()
            .ends_with("search-2026-11-27.md"));
        assert!(latest(&d, "agent").is_none());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn missing_results_say_not_run_yet() {
        let d = std::env::temp_dir().join(format!("perf-report-empty-{}", std::process::id()));
        std::fs::create_dir_all(d.join("charts")).unwrap();
        let mut cx = Ctx {
            results: d.clone(),
            charts: d.join("charts"),
            out: String::new(),
            made: vec![],
        };
        fio(&mut cx);
        agent(&mut cx);
        assert_eq!(cx.out.matches("Not run yet").count(), 2, "{}", cx.out);
        std::fs::remove_dir_all(&d).unwrap();
    }
}

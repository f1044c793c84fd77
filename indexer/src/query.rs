//! The query language: free text plus filters.
//!
//! ```text
//! invoice 2024 ext:pdf tag:work path:projects/ modified:>2024-01-01 size:>1M
//! report (ext:pdf OR ext:docx) NOT path:archive/
//! ```
//! Words that are not filters form the free text. Filters combine with AND (implicit),
//! OR, NOT (or a leading `-`), and parentheses. Dates are `YYYY-MM-DD`, or an age relative to
//! now: `Nh`, `Nd`, `Nw`, `Ny` ("N hours/days/weeks/years ago"), so `modified:>7d` is "in the
//! last 7 days" and `modified:<1y` "more than a year ago"; sizes take the suffixes k, M, G
//! (powers of 1024).
//!
//! Document metadata (see `extract::DocMeta`) has filters of its own:
//!
//! ```text
//! taken:2023  taken:2023-07  taken:>=2022-06-01  taken:>30d     EXIF date taken (a period)
//! date:2024-03                                                  e-mail Date, PDF creation date
//! near:45.76,4.84  near:45.76,4.84,5km  near:Lyon  place:Lyon   GPS position (default 25 km),
//!                                                               or the gazetteer's place name
//! from:alice@  to:bob  author:Curie  title:report  subject:invoice  camera:canon
//! kind:image  kind:email  kind:pdf                              what the extractor read
//! ```
//! A value with spaces is quoted: `near:"Le Mans"`, `from:"Alice Martin"`.

use serde::Serialize;

use crate::extract::{distance_km, DocMeta};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Cmp {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Filter {
    Ext(String),
    Tag(String),
    /// Path prefix or substring (matched case-insensitively against the store path).
    Path(String),
    /// Seconds since the epoch.
    Modified(Cmp, i64),
    Size(Cmp, u64),
    /// EXIF date taken within `[from, until)` (seconds since the epoch).
    Taken(i64, i64),
    /// The document's own date (e-mail Date, PDF CreationDate) within `[from, until)`.
    Dated(i64, i64),
    /// GPS position within `km` of a point.
    Near {
        lat: f64,
        lon: f64,
        km: f64,
    },
    /// A metadata field contains this text (case-insensitive).
    Field(MetaField, String),
    /// The extractor's kind ("image", "pdf", "email", …).
    Kind(String),
}

/// The metadata fields `from:`, `to:`, … look in.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum MetaField {
    From,
    To,
    Author,
    Title,
    Subject,
    Camera,
    Place,
}

impl MetaField {
    fn value(self, m: &DocMeta) -> Option<&str> {
        match self {
            MetaField::From => m.from.as_deref(),
            MetaField::To => m.to.as_deref(),
            MetaField::Author => m.author.as_deref(),
            MetaField::Title => m.title.as_deref(),
            MetaField::Subject => m.subject.as_deref(),
            MetaField::Camera => m.camera.as_deref(),
            MetaField::Place => m.place.as_deref(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Expr {
    Filter(Filter),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Query {
    pub text: String,
    pub filter: Option<Expr>,
}

/// What a filter is checked against.
pub struct FileFacts<'a> {
    pub path: &'a str,
    pub ext: &'a str,
    pub mtime: i64,
    pub size: u64,
    pub tags: &'a [String],
    /// The extractor's kind ("image", "pdf", …).
    pub kind: &'a str,
    /// The document's metadata (None: not loaded, or none).
    pub meta: Option<&'a DocMeta>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("bad query {query:?}: {reason}")]
pub struct QueryError {
    pub query: String,
    pub reason: String,
}

fn cmp_num<T: PartialOrd>(cmp: &Cmp, a: T, b: T) -> bool {
    match cmp {
        Cmp::Gt => a > b,
        Cmp::Ge => a >= b,
        Cmp::Lt => a < b,
        Cmp::Le => a <= b,
        Cmp::Eq => a == b,
    }
}

impl Filter {
    pub fn matches(&self, f: &FileFacts) -> bool {
        match self {
            Filter::Ext(e) => f.ext.eq_ignore_ascii_case(e),
            Filter::Tag(t) => f.tags.iter().any(|x| x.eq_ignore_ascii_case(t)),
            Filter::Path(p) => {
                let path = f.path.to_lowercase();
                let p = p.to_lowercase();
                let rel = path.trim_start_matches('/');
                rel.starts_with(p.trim_start_matches('/')) || path.contains(&p)
            }
            Filter::Modified(c, t) => cmp_num(c, f.mtime, *t),
            Filter::Size(c, s) => cmp_num(c, f.size, *s),
            Filter::Taken(from, until) => f
                .meta
                .and_then(|m| m.taken)
                .is_some_and(|t| *from <= t && t < *until),
            Filter::Dated(from, until) => f
                .meta
                .and_then(|m| m.date)
                .is_some_and(|t| *from <= t && t < *until),
            Filter::Near { lat, lon, km } => f
                .meta
                .and_then(|m| m.gps)
                .is_some_and(|p| distance_km(p, (*lat, *lon)) <= *km),
            Filter::Field(field, v) => f
                .meta
                .and_then(|m| field.value(m))
                .is_some_and(|x| x.to_lowercase().contains(&v.to_lowercase())),
            Filter::Kind(k) => f.kind.eq_ignore_ascii_case(k),
        }
    }

    /// Whether matching needs the document's metadata.
    fn needs_meta(&self) -> bool {
        matches!(
            self,
            Filter::Taken(..) | Filter::Dated(..) | Filter::Near { .. } | Filter::Field(..)
        )
    }
}

impl Expr {
    pub fn matches(&self, f: &FileFacts) -> bool {
        match self {
            Expr::Filter(x) => x.matches(f),
            Expr::And(v) => v.iter().all(|e| e.matches(f)),
            Expr::Or(v) => v.iter().any(|e| e.matches(f)),
            Expr::Not(e) => !e.matches(f),
        }
    }
}

impl Expr {
    fn needs_meta(&self) -> bool {
        match self {
            Expr::Filter(x) => x.needs_meta(),
            Expr::And(v) | Expr::Or(v) => v.iter().any(Expr::needs_meta),
            Expr::Not(e) => e.needs_meta(),
        }
    }
}

impl Query {
    pub fn matches(&self, f: &FileFacts) -> bool {
        self.filter.as_ref().is_none_or(|e| e.matches(f))
    }

    /// Whether [`FileFacts::meta`] must be loaded to match this query.
    pub fn needs_meta(&self) -> bool {
        self.filter.as_ref().is_some_and(Expr::needs_meta)
    }

    /// The free-text words, lowercased (for snippets).
    pub fn terms(&self) -> Vec<String> {
        self.text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Filter(Filter),
    And,
    Or,
    Not,
    Open,
    Close,
}

/// Seconds since the epoch of an age such as `7d` (7 days before now); units h, d, w, y.
fn parse_ago(s: &str) -> Option<i64> {
    let s = s.trim().to_ascii_lowercase();
    let unit = match s.chars().last()? {
        'h' => 3600,
        'd' => 86400,
        'w' => 7 * 86400,
        'y' => 365 * 86400 + 21600, // a Julian year: leap days averaged in
        _ => return None,
    };
    let n: i64 = s[..s.len() - 1].parse().ok()?;
    if !(0..=100_000).contains(&n) {
        return None;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Some(now - n * unit)
}

/// Whether `query` has a relative date (`modified:>7d`): its matches change as time passes,
/// so a saved view of it must be re-evaluated now and then even when no file changes.
pub fn is_time_relative(query: &str) -> bool {
    query.split_whitespace().any(|w| {
        let w = w.trim_start_matches(['-', '(']).trim_end_matches(')');
        let Some((key, value)) = w.split_once(':') else {
            return false;
        };
        matches!(key.to_ascii_lowercase().as_str(), "modified" | "mtime")
            && parse_ago(split_cmp(value).1).is_some()
    })
}

fn parse_date(s: &str) -> Option<i64> {
    let mut parts = s.split('-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next().map(|p| p.parse().ok()).unwrap_or(Some(1))?;
    let d: i64 = parts.next().map(|p| p.parse().ok()).unwrap_or(Some(1))?;
    if parts.next().is_some() {
        return None;
    }
    // Out-of-range fields, and years beyond ±9999 (typos), give None.
    crate::extract::civil_to_epoch(y, m, d, 0, 0, 0)
}

fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let unit = s[i..].to_ascii_lowercase();
            let mult = match unit.trim_end_matches("ib").trim_end_matches('b') {
                "" => 1,
                "k" => 1 << 10,
                "m" => 1 << 20,
                "g" => 1 << 30,
                "t" => 1u64 << 40,
                _ => return None,
            };
            (&s[..i], mult)
        }
        None => (s, 1),
    };
    let n: f64 = num.parse().ok()?;
    if n < 0.0 {
        return None;
    }
    Some((n * mult as f64) as u64)
}

fn split_cmp(v: &str) -> (Cmp, &str) {
    for (p, c) in [
        (">=", Cmp::Ge),
        ("<=", Cmp::Le),
        (">", Cmp::Gt),
        ("<", Cmp::Lt),
        ("=", Cmp::Eq),
    ] {
        if let Some(rest) = v.strip_prefix(p) {
            return (c, rest);
        }
    }
    (Cmp::Eq, v)
}

fn filter_of(key: &str, value: &str, q: &str) -> Result<Option<Filter>, QueryError> {
    let err = |reason: String| QueryError {
        query: q.to_string(),
        reason,
    };
    let key = key.to_ascii_lowercase();
    if value.is_empty()
        && matches!(
            key.as_str(),
            "ext"
                | "tag"
                | "path"
                | "modified"
                | "size"
                | "taken"
                | "date"
                | "near"
                | "place"
                | "from"
                | "to"
                | "author"
                | "title"
                | "subject"
                | "camera"
                | "kind"
        )
    {
        return Err(err(format!(
            "`{key}:` needs a value, e.g. {key}:{}",
            example(&key)
        )));
    }
    Ok(Some(match key.as_str() {
        "ext" => Filter::Ext(value.trim_start_matches('.').to_string()),
        "tag" => Filter::Tag(value.to_string()),
        "path" => Filter::Path(value.to_string()),
        "modified" | "mtime" => {
            let (c, rest) = split_cmp(value);
            if let Some(t) = parse_ago(rest) {
                // An instant, not a day: no whole-day rounding.
                return Ok(Some(Filter::Modified(c, t)));
            }
            let t = parse_date(rest).ok_or_else(|| {
                err(format!(
                    "`{rest}` is not a date: write modified:>2024-01-01, or modified:>7d for the last 7 days (h, d, w, y)"
                ))
            })?;
            // `modified:=DAY` and `<=DAY` mean the whole day.
            match c {
                Cmp::Le => Filter::Modified(Cmp::Lt, t + 86400),
                Cmp::Gt => Filter::Modified(Cmp::Ge, t + 86400),
                other => Filter::Modified(other, t),
            }
        }
        "size" => {
            let (c, rest) = split_cmp(value);
            let n = parse_size(rest).ok_or_else(|| {
                err(format!(
                    "`{rest}` is not a size: write size:>1M or size:<10k"
                ))
            })?;
            Filter::Size(c, n)
        }
        "taken" | "date" => {
            let (from, until) = parse_period(value).ok_or_else(|| {
                err(format!(
                    "`{value}` is not a date or period: write {key}:2023, {key}:2023-07, \
                     {key}:>=2023-07-14 or {key}:<30d"
                ))
            })?;
            if key == "taken" {
                Filter::Taken(from, until)
            } else {
                Filter::Dated(from, until)
            }
        }
        "near" => match parse_point(value) {
            Some((lat, lon, km)) => Filter::Near { lat, lon, km },
            None if value.chars().any(|c| c.is_alphabetic()) && !value.contains(',') => {
                Filter::Field(MetaField::Place, value.to_string())
            }
            None => {
                return Err(err(format!(
                    "`{value}` is not a position: write near:45.76,4.84 (latitude, longitude), \
                     near:45.76,4.84,5km, or a place name such as near:Lyon"
                )))
            }
        },
        "place" => Filter::Field(MetaField::Place, value.to_string()),
        "from" => Filter::Field(MetaField::From, value.to_string()),
        "to" => Filter::Field(MetaField::To, value.to_string()),
        "author" => Filter::Field(MetaField::Author, value.to_string()),
        "title" => Filter::Field(MetaField::Title, value.to_string()),
        "subject" => Filter::Field(MetaField::Subject, value.to_string()),
        "camera" => Filter::Field(MetaField::Camera, value.to_string()),
        "kind" => Filter::Kind(value.to_ascii_lowercase()),
        _ => return Ok(None),
    }))
}

/// Default radius of `near:`, in km.
const NEAR_KM: f64 = 25.0;

/// `LAT,LON` or `LAT,LON,RADIUS` (km; a `km` or `m` suffix allowed).
fn parse_point(v: &str) -> Option<(f64, f64, f64)> {
    let parts: Vec<&str> = v.split(',').map(str::trim).collect();
    if !(2..=3).contains(&parts.len()) {
        return None;
    }
    let lat: f64 = parts[0].parse().ok()?;
    let lon: f64 = parts[1].parse().ok()?;
    let km = match parts.get(2) {
        None => NEAR_KM,
        Some(r) => {
            let r = r.to_ascii_lowercase();
            if let Some(km) = r.strip_suffix("km") {
                km.trim().parse().ok()?
            } else if let Some(m) = r.strip_suffix('m') {
                m.trim().parse::<f64>().ok()? / 1000.0
            } else {
                r.parse().ok()?
            }
        }
    };
    let ok = (-90.0..=90.0).contains(&lat)
        && (-180.0..=180.0).contains(&lon)
        && km.is_finite()
        && km >= 0.0;
    ok.then_some((lat, lon, km))
}

/// A period as `[from, until)`: `2023`, `2023-07`, `2023-07-14` (the whole year, month or
/// day), with `>`, `>=`, `<`, `<=` for open ends, or an age (`>30d`: the last 30 days).
fn parse_period(v: &str) -> Option<(i64, i64)> {
    let (c, rest) = split_cmp(v);
    if let Some(t) = parse_ago(rest) {
        return Some(match c {
            Cmp::Gt | Cmp::Ge => (t, i64::MAX),
            Cmp::Lt | Cmp::Le => (i64::MIN, t),
            Cmp::Eq => (t - 86400, t + 86400),
        });
    }
    let parts: Vec<&str> = rest.split('-').collect();
    let nums: Vec<i64> = parts
        .iter()
        .map(|p| p.parse().ok())
        .collect::<Option<Vec<_>>>()?;
    let (y, m, d) = match nums.as_slice() {
        [y] => (*y, None, None),
        [y, m] => (*y, Some(*m), None),
        [y, m, d] => (*y, Some(*m), Some(*d)),
        _ => return None,
    };
    let start = crate::extract::civil_to_epoch(y, m.unwrap_or(1), d.unwrap_or(1), 0, 0, 0)?;
    let end = match (m, d) {
        (None, _) => crate::extract::civil_to_epoch(y + 1, 1, 1, 0, 0, 0)?,
        (Some(12), None) => crate::extract::civil_to_epoch(y + 1, 1, 1, 0, 0, 0)?,
        (Some(m), None) => crate::extract::civil_to_epoch(y, m + 1, 1, 0, 0, 0)?,
        (Some(_), Some(_)) => start + 86400,
    };
    Some(match c {
        Cmp::Eq => (start, end),
        Cmp::Ge => (start, i64::MAX),
        Cmp::Gt => (end, i64::MAX),
        Cmp::Lt => (i64::MIN, start),
        Cmp::Le => (i64::MIN, end),
    })
}

fn example(key: &str) -> &'static str {
    match key {
        "ext" => "pdf",
        "tag" => "work",
        "path" => "projects/",
        "modified" => ">2024-01-01",
        "taken" | "date" => "2023",
        "near" => "45.76,4.84",
        "place" => "Lyon",
        "from" | "to" => "alice@example.org",
        "kind" => "image",
        _ => ">1M",
    }
}

fn tokenize(q: &str) -> Result<Vec<Tok>, QueryError> {
    let mut toks = Vec::new();
    let mut chars = q.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '(' || c == ')' {
            chars.next();
            toks.push(if c == '(' { Tok::Open } else { Tok::Close });
            continue;
        }
        let mut word = String::new();
        if c == '"' {
            chars.next();
            for c in chars.by_ref() {
                if c == '"' {
                    break;
                }
                word.push(c);
            }
            toks.push(Tok::Word(word));
            continue;
        }
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || c == '(' || c == ')' {
                break;
            }
            chars.next();
            // `key:"a value with spaces"`
            if c == '"' && word.ends_with(':') {
                for c in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    word.push(c);
                }
                break;
            }
            word.push(c);
        }
        let (negated, body) = match word.strip_prefix('-') {
            Some(rest) if rest.contains(':') => (true, rest.to_string()),
            _ => (false, word.clone()),
        };
        match body.as_str() {
            "AND" => toks.push(Tok::And),
            "OR" => toks.push(Tok::Or),
            "NOT" => toks.push(Tok::Not),
            _ => {
                if let Some((k, v)) = body.split_once(':') {
                    if let Some(f) = filter_of(k, v, q)? {
                        if negated {
                            toks.push(Tok::Not);
                        }
                        toks.push(Tok::Filter(f));
                        continue;
                    }
                }
                toks.push(Tok::Word(word));
            }
        }
    }
    Ok(toks)
}

/// Parses a query; words become free text, filters an expression.
pub fn parse(q: &str) -> Result<Query, QueryError> {
    let toks = tokenize(q)?;
    let mut words = Vec::new();
    let mut ftoks = Vec::new();
    for t in toks {
        match t {
            Tok::Word(w) => words.push(w),
            other => ftoks.push(other),
        }
    }
    // Drop operators left dangling by removed words ("tax AND ext:pdf" → "ext:pdf").
    let mut p = Parser {
        toks: ftoks,
        pos: 0,
        q,
        depth: 0,
    };
    let filter = if p.toks.is_empty() {
        None
    } else {
        let e = p.or()?;
        if p.pos != p.toks.len() {
            return Err(QueryError {
                query: q.into(),
                reason: "unbalanced parentheses or a stray operator".into(),
            });
        }
        e
    };
    Ok(Query {
        text: words.join(" "),
        filter,
    })
}

struct Parser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    q: &'a str,
    /// Nesting of parentheses and NOT so far.
    depth: usize,
}

/// Deeper nesting is refused: the parser (and matching, and dropping the expression) recurse,
/// and thousands of `(` overflowed the stack, killing the daemon that ran the search (found by
/// fuzzing: fuzz/regressions/query/).
const MAX_DEPTH: usize = 64;

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn or(&mut self) -> Result<Option<Expr>, QueryError> {
        let mut parts = Vec::new();
        if let Some(e) = self.and()? {
            parts.push(e);
        }
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            if let Some(e) = self.and()? {
                parts.push(e);
            }
        }
        Ok(match parts.len() {
            0 => None,
            1 => parts.pop(),
            _ => Some(Expr::Or(parts)),
        })
    }

    fn and(&mut self) -> Result<Option<Expr>, QueryError> {
        let mut parts = Vec::new();
        loop {
            match self.peek() {
                Some(Tok::And) => {
                    self.pos += 1;
                }
                Some(Tok::Or) | Some(Tok::Close) | None => break,
                _ => {
                    if let Some(e) = self.unary()? {
                        parts.push(e);
                    }
                }
            }
        }
        Ok(match parts.len() {
            0 => None,
            1 => parts.pop(),
            _ => Some(Expr::And(parts)),
        })
    }

    fn unary(&mut self) -> Result<Option<Expr>, QueryError> {
        if self.depth >= MAX_DEPTH {
            return Err(QueryError {
                query: self.q.into(),
                reason: format!(
                    "nested too deeply (at most {MAX_DEPTH} levels of parentheses and NOT)"
                ),
            });
        }
        self.depth += 1;
        let e = self.unary_inner();
        self.depth -= 1;
        e
    }

    fn unary_inner(&mut self) -> Result<Option<Expr>, QueryError> {
        match self.peek().cloned() {
            Some(Tok::Not) => {
                self.pos += 1;
                Ok(self.unary()?.map(|e| Expr::Not(Box::new(e))))
            }
            Some(Tok::Open) => {
                self.pos += 1;
                let e = self.or()?;
                if self.peek() != Some(&Tok::Close) {
                    return Err(QueryError {
                        query: self.q.into(),
                        reason: "missing `)`".into(),
                    });
                }
                self.pos += 1;
                Ok(e)
            }
            Some(Tok::Filter(f)) => {
                self.pos += 1;
                Ok(Some(Expr::Filter(f)))
            }
            _ => {
                self.pos += 1;
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(
        path: &'a str,
        ext: &'a str,
        mtime: i64,
        size: u64,
        tags: &'a [String],
    ) -> FileFacts<'a> {
        FileFacts {
            path,
            ext,
            mtime,
            size,
            tags,
            kind: "",
            meta: None,
        }
    }

    #[test]
    fn words_and_filters_separate() {
        let q = parse("tax invoice ext:pdf modified:>2024-01-01 size:>1M").unwrap();
        assert_eq!(q.text, "tax invoice");
        let tags = vec![];
        let jan2 = parse_date("2024-01-03").unwrap();
        assert!(q.matches(&facts("/a/b.pdf", "pdf", jan2, 2 << 20, &tags)));
        assert!(!q.matches(&facts("/a/b.pdf", "pdf", jan2, 1000, &tags)));
        assert!(!q.matches(&facts("/a/b.txt", "txt", jan2, 2 << 20, &tags)));
        assert!(!q.matches(&facts(
            "/a/b.pdf",
            "pdf",
            parse_date("2023-12-31").unwrap(),
            2 << 20,
            &tags
        )));
    }

    #[test]
    fn boolean_filters() {
        let q = parse("report (ext:pdf OR ext:docx) NOT path:archive/").unwrap();
        assert_eq!(q.text, "report");
        let t = vec!["work".to_string()];
        assert!(q.matches(&facts("/docs/r.pdf", "pdf", 0, 1, &t)));
        assert!(q.matches(&facts("/docs/r.docx", "docx", 0, 1, &t)));
        assert!(!q.matches(&facts("/docs/r.md", "md", 0, 1, &t)));
        assert!(!q.matches(&facts("/archive/r.pdf", "pdf", 0, 1, &t)));
        let q = parse("-tag:work").unwrap();
        assert!(!q.matches(&facts("/x", "", 0, 1, &t)));
        assert!(parse("tag:work")
            .unwrap()
            .matches(&facts("/x", "", 0, 1, &t)));
    }

    #[test]
    fn bad_queries_explain_themselves() {
        let e = parse("modified:>yesterday").unwrap_err();
        assert!(e.reason.contains("not a date"), "{e}");
        assert!(parse("size:>lots")
            .unwrap_err()
            .reason
            .contains("not a size"));
        assert!(parse("(ext:pdf").unwrap_err().reason.contains(')'));
        assert!(parse("ext:").unwrap_err().reason.contains("needs a value"));
        // Unknown keys are plain words (e.g. "re:meeting").
        assert_eq!(parse("re:meeting").unwrap().text, "re:meeting");
    }

    #[test]
    fn relative_dates() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let tags = vec![];
        let q = parse("ext:md modified:>7d").unwrap();
        assert!(q.matches(&facts("/a.md", "md", now - 6 * 86400, 1, &tags)));
        assert!(!q.matches(&facts("/a.md", "md", now - 8 * 86400, 1, &tags)));
        let q = parse("modified:<1y").unwrap();
        assert!(q.matches(&facts("/a", "", now - 400 * 86400, 1, &tags)));
        assert!(!q.matches(&facts("/a", "", now - 300 * 86400, 1, &tags)));
        assert!(parse("modified:>3h").is_ok() && parse("mtime:>=2w").is_ok());
        assert!(is_time_relative("report (modified:>7d OR tag:x)"));
        assert!(is_time_relative("-mtime:<2w"));
        assert!(!is_time_relative("modified:>2024-01-01 7d"));
        assert!(parse("modified:>7x").is_err());
        assert!(parse("modified:>-7d").is_err());
    }

    #[test]
    fn sizes_and_dates() {
        assert_eq!(parse_size("1M"), Some(1 << 20));
        assert_eq!(parse_size("10k"), Some(10 << 10));
        assert_eq!(parse_size("1.5G"), Some(3 << 29));
        assert_eq!(parse_date("1970-01-02"), Some(86400));
        assert_eq!(parse_date("2024-01-01"), Some(1704067200));
    }

    #[test]
    fn metadata_filters_parse_and_match() {
        let meta = DocMeta {
            from: Some("Alice Martin <alice@example.org>".into()),
            taken: crate::extract::civil_to_epoch(2023, 7, 14, 10, 0, 0),
            gps: Some((45.764, 4.8357)),
            place: Some("Lyon, Auvergne-Rhone-Alpes, FR".into()),
            ..DocMeta::default()
        };
        let tags: Vec<String> = Vec::new();
        let facts = FileFacts {
            path: "/photos/a.jpg",
            ext: "jpg",
            mtime: 0,
            size: 1,
            tags: &tags,
            kind: "image",
            meta: Some(&meta),
        };
        let yes = |q: &str| {
            let q = parse(q).unwrap();
            assert!(q.needs_meta() || q.filter.is_some());
            q.matches(&facts)
        };
        for q in [
            "taken:2023",
            "taken:2023-07",
            "taken:2023-07-14",
            "taken:>=2023-07-01",
            "taken:<2024",
            "near:45.75,4.85",
            "near:45.75,4.85,2km",
            "near:Lyon",
            "place:lyon",
            "from:alice@",
            "from:\"alice martin\"",
            "kind:image",
        ] {
            assert!(yes(q), "{q} should match");
        }
        for q in [
            "taken:2022",
            "taken:2023-08",
            "taken:>2023-07-14",
            "near:48.85,2.35",
            "near:45.75,4.85,100m",
            "from:bob",
            "kind:pdf",
            "date:2023",
        ] {
            assert!(!yes(q), "{q} should not match");
        }
        for bad in ["taken:soon", "near:91,0", "near:1,2,3,4", "taken:"] {
            assert!(parse(bad).is_err(), "{bad} should be refused");
        }
    }
}

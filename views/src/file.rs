//! `views.toml`: parsing with line/column errors, and edits that keep the user's comments
//! and layout (toml_edit).
//!
//! ```toml
//! [views]
//! # short form: name = query
//! recent-pdfs = "ext:pdf modified:>2024-01-01"
//!
//! # long form, with options
//! [views."tax 2024"]
//! query = "tax OR invoice modified:>2024-01-01"
//! limit = 500            # most entries shown (default 10000)
//! sort = "modified"      # score (default) | name | modified | size
//! min_similarity = 0.5   # override: a fixed cosine similarity for semantic matches
//!                        # (default: none, calibrated per query, see peros_indexer::relevance)
//! ```

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Serialize;
use toml_edit::{DocumentMut, Item, Value};

/// Most entries a view shows unless it says otherwise.
pub const DEFAULT_LIMIT: usize = 10_000;
pub const MAX_LIMIT: usize = 100_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Sort {
    #[default]
    Score,
    Name,
    Modified,
    Size,
}

impl std::str::FromStr for Sort {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "score" => Ok(Sort::Score),
            "name" => Ok(Sort::Name),
            "modified" => Ok(Sort::Modified),
            "size" => Ok(Sort::Size),
            other => Err(format!(
                "unknown sort {other:?}: use score, name, modified or size"
            )),
        }
    }
}

impl Sort {
    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Score => "score",
            Sort::Name => "name",
            Sort::Modified => "modified",
            Sort::Size => "size",
        }
    }
}

/// One declared view.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ViewDef {
    pub name: String,
    pub query: String,
    pub limit: usize,
    pub sort: Sort,
    /// A fixed cosine similarity a semantic match needs, instead of the calibrated rule
    /// (`peros_indexer::relevance`): an override for one view, absent by default.
    pub min_similarity: Option<f32>,
}

impl ViewDef {
    pub fn new(name: &str, query: &str) -> Self {
        Self {
            name: name.to_string(),
            query: query.to_string(),
            limit: DEFAULT_LIMIT,
            sort: Sort::Score,
            min_similarity: None,
        }
    }
}

/// What is wrong with views.toml, and where (1-based line and column).
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize)]
#[error("{file}:{line}:{column}: {message}")]
pub struct FileError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

fn position(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

/// Checks a view name: it must be usable as a directory name.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("{name:?} cannot be a view name"));
    }
    if name.contains('/') || name.contains('\0') {
        return Err(format!(
            "view name {name:?} contains '/' or NUL: use another name"
        ));
    }
    if name.len() > 255 {
        return Err(format!(
            "view name is {} bytes long; directory names are at most 255",
            name.len()
        ));
    }
    Ok(())
}

/// Checks a view name that may be nested: one or more valid directory names joined by '/'
/// (`topics/cooking` shows as `@views/topics/cooking/`).
pub fn check_view_name(name: &str) -> Result<(), String> {
    if name.split('/').count() > 8 {
        return Err(format!("view name {name:?} nests more than 8 folders deep"));
    }
    name.split('/')
        .try_for_each(|part| check_name(part).map_err(|e| format!("view name {name:?}: {e}")))
}

/// Parses views.toml (`file` names it in errors). Every query is checked with the indexer's
/// parser, so a bad query is reported at its own line and column.
pub fn parse(text: &str, file: &str) -> Result<BTreeMap<String, ViewDef>, FileError> {
    let err = |span: Option<Range<usize>>, message: String| {
        let (line, column) = position(text, span.map(|s| s.start).unwrap_or(0));
        FileError {
            file: file.to_string(),
            line,
            column,
            message,
        }
    };
    let doc = toml_edit::Document::parse(text).map_err(|e| {
        let msg = e.message().to_string();
        err(e.span(), msg)
    })?;
    let mut out = BTreeMap::new();
    for (key, item) in doc.as_table().iter() {
        if key != "views" {
            let span = doc.as_table().key(key).and_then(|k| k.span());
            return Err(err(
                span,
                format!("unknown section {key:?}: views.toml holds only [views]"),
            ));
        }
        let Some(table) = item.as_table_like() else {
            return Err(err(item.span(), "`views` must be a table".into()));
        };
        for (name, item) in table.iter() {
            let name_span = table.key(name).and_then(|k| k.span());
            check_view_name(name).map_err(|m| err(name_span.clone(), m))?;
            let def = parse_view(name, item, &err)?;
            out.insert(name.to_string(), def);
        }
    }
    Ok(out)
}

fn parse_view(
    name: &str,
    item: &Item,
    err: &dyn Fn(Option<Range<usize>>, String) -> FileError,
) -> Result<ViewDef, FileError> {
    let mut def = ViewDef::new(name, "");
    let check_query = |q: &str, span: Option<Range<usize>>| {
        peros_indexer::parse_query(q)
            .map(|_| ())
            .map_err(|e| err(span, format!("view {name:?}: {}", e.reason)))
    };
    if let Some(q) = item.as_str() {
        check_query(q, item.span())?;
        def.query = q.to_string();
        return Ok(def);
    }
    let Some(t) = item.as_table_like() else {
        return Err(err(
            item.span(),
            format!("view {name:?} must be a query string or a table with `query`"),
        ));
    };
    let mut query = None;
    for (k, v) in t.iter() {
        let span = v.span().or_else(|| t.key(k).and_then(|k| k.span()));
        match k {
            "query" => {
                let q = v
                    .as_str()
                    .ok_or_else(|| err(span.clone(), format!("view {name:?}: query must be a string")))?;
                check_query(q, span)?;
                query = Some(q.to_string());
            }
            "limit" => {
                let n = v.as_integer().filter(|n| *n > 0).ok_or_else(|| {
                    err(span.clone(), format!("view {name:?}: limit must be a positive integer"))
                })?;
                def.limit = (n as usize).min(MAX_LIMIT);
            }
            "sort" => {
                let s = v.as_str().ok_or_else(|| {
                    err(span.clone(), format!("view {name:?}: sort must be a string"))
                })?;
                def.sort = s
                    .parse()
                    .map_err(|m| err(span.clone(), format!("view {name:?}: {m}")))?;
            }
            "min_similarity" => {
                let x = v
                    .as_float()
                    .or_else(|| v.as_integer().map(|i| i as f64))
                    .filter(|x| (0.0..=1.0).contains(x))
                    .ok_or_else(|| {
                        err(
                            span.clone(),
                            format!("view {name:?}: min_similarity must be a number from 0 to 1"),
                        )
                    })?;
                def.min_similarity = Some(x as f32);
            }
            other => {
                return Err(err(
                    t.key(other).and_then(|k| k.span()),
                    format!(
                        "view {name:?}: unknown key {other:?} (known: query, limit, sort, min_similarity)"
                    ),
                ))
            }
        }
    }
    def.query = query.ok_or_else(|| err(item.span(), format!("view {name:?} has no query")))?;
    Ok(def)
}

/// Adds (or replaces) a view in the text of views.toml, keeping everything else as written.
/// The short form `name = "query"` is used when the view has default options.
pub fn with_view(text: &str, def: &ViewDef) -> Result<String, String> {
    let mut doc: DocumentMut = text.parse().map_err(|e| format!("{e}"))?;
    let views = doc
        .entry("views")
        .or_insert_with(|| {
            let mut t = toml_edit::Table::new();
            t.set_implicit(false);
            Item::Table(t)
        })
        .as_table_like_mut()
        .ok_or("`views` in views.toml is not a table")?;
    let defaults =
        def.limit == DEFAULT_LIMIT && def.sort == Sort::Score && def.min_similarity.is_none();
    if defaults {
        views.insert(&def.name, Item::Value(Value::from(def.query.as_str())));
    } else {
        let mut t = toml_edit::InlineTable::new();
        t.insert("query", Value::from(def.query.as_str()));
        if def.limit != DEFAULT_LIMIT {
            t.insert("limit", Value::from(def.limit as i64));
        }
        if def.sort != Sort::Score {
            t.insert("sort", Value::from(def.sort.as_str()));
        }
        if let Some(m) = def.min_similarity {
            t.insert("min_similarity", Value::from(m as f64));
        }
        views.insert(&def.name, Item::Value(Value::InlineTable(t)));
    }
    Ok(doc.to_string())
}

/// Removes a view from the text; Ok(None) when there was no such view.
pub fn without_view(text: &str, name: &str) -> Result<Option<String>, String> {
    let mut doc: DocumentMut = text.parse().map_err(|e| format!("{e}"))?;
    let Some(views) = doc.get_mut("views").and_then(|v| v.as_table_like_mut()) else {
        return Ok(None);
    };
    if views.remove(name).is_none() {
        return Ok(None);
    }
    Ok(Some(doc.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let v = parse(
            include_str!("../../examples/views.toml"),
            "examples/views.toml",
        )
        .unwrap();
        assert_eq!(v["money 2024"].sort, Sort::Modified);
        assert_eq!(v.len(), 4);
        assert_eq!(v["this-week-notes"].query, "ext:md modified:>7d");
    }

    #[test]
    fn both_forms_parse() {
        let text = "# mine\n[views]\npdfs = \"ext:pdf\"\n\n[views.\"tax 2024\"]\nquery = \"tax\"\nlimit = 5\nsort = \"modified\"\n";
        let v = parse(text, "views.toml").unwrap();
        assert_eq!(v["pdfs"].query, "ext:pdf");
        assert_eq!(v["pdfs"].limit, DEFAULT_LIMIT);
        assert_eq!(v["tax 2024"].limit, 5);
        assert_eq!(v["tax 2024"].sort, Sort::Modified);
    }

    #[test]
    fn errors_have_line_and_column() {
        let e = parse("[views]\na = \"ext:pdf\"\nb = \"size:>abc\"\n", "v.toml").unwrap_err();
        assert_eq!((e.line, e.column), (3, 5), "{e}");
        assert!(e.message.contains("view \"b\""), "{e}");
        let e = parse("[views]\na = \"unterminated\n", "v.toml").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        let e = parse("[views]\na = { query = \"x\", colour = 1 }\n", "v.toml").unwrap_err();
        assert!(e.message.contains("colour"), "{e}");
        let e = parse("[other]\n", "v.toml").unwrap_err();
        assert_eq!(e.line, 1);
    }

    #[test]
    fn edits_keep_comments() {
        let text = "# my views\n[views]\n# pdfs first\npdfs = \"ext:pdf\"\n";
        let added = with_view(text, &ViewDef::new("notes", "ext:md")).unwrap();
        assert!(added.contains("# pdfs first"), "{added}");
        let v = parse(&added, "v").unwrap();
        assert_eq!(v.len(), 2);
        let removed = without_view(&added, "pdfs").unwrap().unwrap();
        assert!(removed.contains("# my views"));
        assert_eq!(parse(&removed, "v").unwrap().len(), 1);
        assert!(without_view(&removed, "nope").unwrap().is_none());
        let mut d = ViewDef::new("big", "tag:x");
        d.limit = 3;
        let fresh = with_view("", &d).unwrap();
        assert_eq!(parse(&fresh, "v").unwrap()["big"].limit, 3);
        // Names that need quoting survive.
        let odd = with_view("", &ViewDef::new("ext:pdf tag:tax \"q\"", "ext:pdf")).unwrap();
        assert!(parse(&odd, "v")
            .unwrap()
            .contains_key("ext:pdf tag:tax \"q\""));
    }
}

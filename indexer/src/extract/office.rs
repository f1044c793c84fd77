//! Office documents through `zip` + `quick-xml`: OOXML (DOCX, XLSX, PPTX) and OpenDocument
//! (ODT, ODS, ODP). Every part is read through the bound of [`super::zipxml`].
//!
//! Sections: a sheet per `sheet <name>` (XLSX, ODS), a slide per `slide N` (PPTX, ODP;
//! 1-based, in presentation order). Spreadsheet rows are lines, cells tab-separated, values as
//! written (shared strings and inline strings resolved; formulas not kept). Metadata: title,
//! author and creation date from `docProps/core.xml` (OOXML) or `meta.xml` (OpenDocument).

use super::zipxml::{
    attr, attr_prefixed, dir_of, failed, number_in, relationships, rels_path, resolve_target, walk,
    FirstTexts, Node, Part, Zip,
};
use super::{parse_iso_date, DocKind, DocMeta, ExtractError, Extracted, TextBuilder};

/// Repeated empty rows or cells (OpenDocument writes `number-columns-repeated="1000"` for the
/// rest of a row) are not expanded; a repeated non-empty one is written at most this often.
const MAX_REPEAT: usize = 100;
/// Empty cells before a value in a spreadsheet row are kept as tabs up to this many.
const MAX_GAP: usize = 64;
/// Shared strings kept from an XLSX (later ones read as empty cells): a table of millions of
/// tiny `<si/>` would otherwise cost far more memory than its markup.
const MAX_SHARED_STRINGS: usize = 1 << 20;

// ---- OOXML -----------------------------------------------------------------

pub(super) fn extract_docx(bytes: &[u8], max_text_bytes: usize) -> Result<Extracted, ExtractError> {
    let mut zip = Zip::open(bytes, "DOCX", max_text_bytes)?;
    let part = zip.require("word/document.xml")?;
    let mut tb = TextBuilder::new(max_text_bytes);
    let mut in_text = false; // inside <w:t>
    let mut in_tab_stops = 0usize; // inside <w:tabs> (tab stop definitions, not tabs)
    walk(&part, "DOCX word/document.xml", |n| {
        match n {
            Node::Start(e) => match e.local_name().as_ref() {
                "t" => in_text = true,
                "tabs" => in_tab_stops += 1,
                "tab" if in_tab_stops == 0 => tb.push("\t"),
                "br" | "cr" => tb.push("\n"),
                "noBreakHyphen" => tb.push("-"),
                _ => {}
            },
            Node::End(name) => match name {
                "t" => in_text = false,
                "tabs" => in_tab_stops = in_tab_stops.saturating_sub(1),
                "p" => tb.push("\n"),
                _ => {}
            },
            Node::Text(t) if in_text => tb.push(t),
            Node::Text(_) => {}
        }
        !tb.full()
    })?;
    drop(part);
    let meta = core_properties(&mut zip)?;
    Ok(built(&zip, DocKind::Docx, tb, meta, None))
}

/// Title, author and creation date from `docProps/core.xml`, when there is one.
fn core_properties(zip: &mut Zip) -> Result<DocMeta, ExtractError> {
    let mut meta = DocMeta::default();
    let Some(part) = zip.read("docProps/core.xml")? else {
        return Ok(meta);
    };
    let what = format!("{} docProps/core.xml", zip.fmt);
    let mut texts = FirstTexts::new(["title", "creator", "created"]);
    walk(&part, &what, |n| {
        texts.feed(&n);
        true
    })?;
    let [title, creator, created] = texts.finish();
    meta.title = title;
    meta.author = creator;
    meta.date = created.and_then(|c| parse_iso_date(&c));
    Ok(meta)
}

/// The parts of a workbook's or presentation's list (`sheet`s of `xl/workbook.xml`,
/// `sldId`s of `ppt/presentation.xml`) in order: (name, part path).
fn listed_parts(
    zip: &mut Zip,
    main: &str,
    element: &str,
) -> Result<Vec<(Option<String>, String)>, ExtractError> {
    let fmt = zip.fmt;
    let Some(part) = zip.read(main)? else {
        return Ok(Vec::new());
    };
    let mut listed = Vec::new(); // (name, relationship id)
    walk(&part, &format!("{fmt} {main}"), |n| {
        if let Node::Start(e) = n {
            if e.local_name().as_ref() == element {
                if let Some(id) = attr_prefixed(e, "id") {
                    listed.push((attr(e, "name"), id));
                }
            }
        }
        true
    })?;
    let rels_name = rels_path(main);
    let rels: std::collections::HashMap<String, String> = match zip.read(&rels_name)? {
        Some(p) => relationships(&p, &format!("{fmt} {rels_name}"))?
            .into_iter()
            .map(|(id, _, target)| (id, target))
            .collect(),
        None => Default::default(),
    };
    let dir = dir_of(main);
    Ok(listed
        .into_iter()
        .filter_map(|(name, id)| Some((name, resolve_target(dir, rels.get(&id)?))))
        .collect())
}

/// Entries named `prefix<N>.xml` in numeric order (slide10 after slide9).
fn numbered_parts(zip: &Zip, prefix: &str) -> Vec<String> {
    let mut v: Vec<(u64, String)> = zip
        .names()
        .into_iter()
        .filter(|n| {
            n.strip_prefix(prefix)
                .and_then(|r| r.strip_suffix(".xml"))
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|n| Some((number_in(&n)?, n)))
        .collect();
    v.sort();
    v.into_iter().map(|(_, n)| n).collect()
}

pub(super) fn extract_xlsx(bytes: &[u8], max_text_bytes: usize) -> Result<Extracted, ExtractError> {
    let mut zip = Zip::open(bytes, "XLSX", max_text_bytes)?;
    if !zip.has("xl/workbook.xml") {
        return Err(failed("XLSX has no xl/workbook.xml"));
    }
    let mut sheets = listed_parts(&mut zip, "xl/workbook.xml", "sheet")?;
    if sheets.is_empty() {
        sheets = numbered_parts(&zip, "xl/worksheets/sheet")
            .into_iter()
            .map(|p| (None, p))
            .collect();
    }
    let shared = match zip.read("xl/sharedStrings.xml")? {
        Some(part) => shared_strings(&part)?,
        None => Vec::new(),
    };
    let mut tb = TextBuilder::new(max_text_bytes);
    let mut warning = None;
    for (i, (name, path)) in sheets.iter().enumerate() {
        if tb.full() {
            break;
        }
        let Some(part) = zip.read(path)? else {
            if zip.exhausted() {
                warning = Some(format!("XLSX: only the first {} parts read", i));
                break;
            }
            continue;
        };
        let name = name.clone().unwrap_or_else(|| format!("{}", i + 1));
        tb.section(format!("sheet {name}"));
        xlsx_sheet(&part, &format!("XLSX {path}"), &shared, &mut tb)?;
    }
    let meta = core_properties(&mut zip)?;
    Ok(built(&zip, DocKind::Xlsx, tb, meta, warning))
}

/// The shared strings table: the text of each `<si>` (rich-text runs joined, phonetic
/// guides dropped).
fn shared_strings(part: &Part) -> Result<Vec<String>, ExtractError> {
    let mut strings = Vec::new();
    let mut cur = String::new();
    let (mut in_t, mut in_phonetic) = (false, 0usize);
    walk(part, "XLSX xl/sharedStrings.xml", |n| {
        match n {
            Node::Start(e) => match e.local_name().as_ref() {
                "si" => cur.clear(),
                "t" => in_t = true,
                "rPh" => in_phonetic += 1,
                _ => {}
            },
            Node::End(name) => match name {
                "si" => {
                    strings.push(std::mem::take(&mut cur));
                    if strings.len() >= MAX_SHARED_STRINGS {
                        return false;
                    }
                }
                "t" => in_t = false,
                "rPh" => in_phonetic = in_phonetic.saturating_sub(1),
                _ => {}
            },
            Node::Text(t) if in_t && in_phonetic == 0 => cur.push_str(t),
            Node::Text(_) => {}
        }
        true
    })?;
    // A string cut by the bound.
    if !cur.is_empty() {
        strings.push(cur);
    }
    Ok(strings)
}

/// Column number (0-based) of a cell reference ("C7" → 2).
fn column_of(r: &str) -> Option<usize> {
    let mut col = 0usize;
    let mut any = false;
    for b in r.bytes().take_while(u8::is_ascii_alphabetic) {
        col = col.checked_mul(26)? + (b.to_ascii_uppercase() - b'A' + 1) as usize;
        any = true;
    }
    (any && col > 0).then(|| col - 1)
}

fn xlsx_sheet(
    part: &Part,
    what: &str,
    shared: &[String],
    tb: &mut TextBuilder,
) -> Result<(), ExtractError> {
    let mut row: Vec<(Option<usize>, String)> = Vec::new();
    let mut cell_type = String::new();
    let mut cell_col = None;
    let mut value = String::new();
    let (mut in_v, mut in_t, mut in_cell) = (false, false, false);
    walk(part, what, |n| {
        match n {
            Node::Start(e) => match e.local_name().as_ref() {
                "row" => row.clear(),
                "c" => {
                    in_cell = true;
                    cell_type = attr(e, "t").unwrap_or_default();
                    cell_col = attr(e, "r").as_deref().and_then(column_of);
                    value.clear();
                }
                "v" if in_cell => in_v = true,
                "t" if in_cell => in_t = true,
                _ => {}
            },
            Node::End(name) => match name {
                "v" => in_v = false,
                "t" => in_t = false,
                "c" => {
                    in_cell = false;
                    let v = value.trim();
                    let text = match cell_type.as_str() {
                        "s" => v
                            .parse::<usize>()
                            .ok()
                            .and_then(|i| shared.get(i))
                            .cloned()
                            .unwrap_or_default(),
                        "b" => match v {
                            "1" => "TRUE".into(),
                            "0" => "FALSE".into(),
                            _ => v.to_string(),
                        },
                        _ => v.to_string(),
                    };
                    if !text.is_empty() {
                        row.push((cell_col, one_line(&text)));
                    }
                }
                "row" => {
                    write_row(tb, &row);
                    row.clear();
                }
                _ => {}
            },
            Node::Text(t) if in_v || in_t => value.push_str(t),
            Node::Text(_) => {}
        }
        !tb.full()
    })?;
    // A row cut by the bound.
    write_row(tb, &row);
    Ok(())
}

/// A row of (column, text) cells as one tab-separated line; gaps between columns kept as
/// empty cells (up to [`MAX_GAP`]).
fn write_row(tb: &mut TextBuilder, row: &[(Option<usize>, String)]) {
    if row.is_empty() {
        return;
    }
    let mut line = String::new();
    let mut next_col = 0usize;
    for (i, (col, text)) in row.iter().enumerate() {
        let col = col.unwrap_or(next_col).max(next_col);
        let gap = (col - next_col).min(MAX_GAP);
        if i > 0 {
            line.push('\t');
        }
        for _ in 0..gap {
            line.push('\t');
        }
        line.push_str(text);
        next_col = col + 1;
    }
    tb.push(&line);
    tb.push("\n");
}

/// Cell text on one line: line breaks and tabs become spaces.
fn one_line(s: &str) -> String {
    s.split(['\n', '\r', '\t'])
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn extract_pptx(bytes: &[u8], max_text_bytes: usize) -> Result<Extracted, ExtractError> {
    let mut zip = Zip::open(bytes, "PPTX", max_text_bytes)?;
    if !zip.has("ppt/presentation.xml") {
        return Err(failed("PPTX has no ppt/presentation.xml"));
    }
    let mut slides: Vec<String> = listed_parts(&mut zip, "ppt/presentation.xml", "sldId")?
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    if slides.is_empty() {
        slides = numbered_parts(&zip, "ppt/slides/slide");
    }
    let mut tb = TextBuilder::new(max_text_bytes);
    let mut warning = None;
    for (i, path) in slides.iter().enumerate() {
        if tb.full() {
            break;
        }
        let Some(part) = zip.read(path)? else {
            if zip.exhausted() {
                warning = Some(format!("PPTX: only the first {i} slides read"));
                break;
            }
            continue;
        };
        tb.section(format!("slide {}", i + 1));
        drawing_text(&part, &format!("PPTX {path}"), false, &mut tb)?;
        // The speaker notes, through the slide's relationships.
        let rels_name = rels_path(path);
        let notes = match zip.read(&rels_name)? {
            Some(p) => relationships(&p, &format!("PPTX {rels_name}"))?
                .into_iter()
                .find(|(_, ty, _)| ty.ends_with("/notesSlide"))
                .map(|(_, _, target)| resolve_target(dir_of(path), &target)),
            None => None,
        };
        if let Some(notes) = notes {
            if let Some(part) = zip.read(&notes)? {
                drawing_text(&part, &format!("PPTX {notes}"), true, &mut tb)?;
            }
        }
    }
    let meta = core_properties(&mut zip)?;
    Ok(built(&zip, DocKind::Pptx, tb, meta, warning))
}

/// The `a:t` runs of a DrawingML part, paragraphs as lines. In notes, fields (the slide
/// number) are dropped.
fn drawing_text(
    part: &Part,
    what: &str,
    notes: bool,
    tb: &mut TextBuilder,
) -> Result<(), ExtractError> {
    let (mut in_t, mut in_field) = (false, 0usize);
    let mut line = String::new();
    walk(part, what, |n| {
        match n {
            Node::Start(e) => match e.local_name().as_ref() {
                "t" => in_t = true,
                "fld" if notes => in_field += 1,
                "br" => line.push('\n'),
                "tab" => line.push('\t'),
                _ => {}
            },
            Node::End(name) => match name {
                "t" => in_t = false,
                "fld" if notes => in_field = in_field.saturating_sub(1),
                "p" => {
                    if !line.trim().is_empty() {
                        tb.push(line.trim_end());
                        tb.push("\n");
                    }
                    line.clear();
                }
                _ => {}
            },
            Node::Text(t) if in_t && in_field == 0 => line.push_str(t),
            Node::Text(_) => {}
        }
        !tb.full()
    })?;
    // A paragraph cut by the bound.
    if !line.trim().is_empty() {
        tb.push(line.trim_end());
        tb.newline();
    }
    Ok(())
}

// ---- OpenDocument -----------------------------------------------------------

/// The OpenDocument kind a `mimetype` member names.
pub(super) fn odf_kind(mimetype: &str) -> Option<DocKind> {
    let sub = mimetype
        .trim()
        .strip_prefix("application/vnd.oasis.opendocument.")?;
    match sub {
        "text" | "text-template" | "text-master" | "text-web" => Some(DocKind::Odt),
        "spreadsheet" | "spreadsheet-template" => Some(DocKind::Ods),
        "presentation" | "presentation-template" => Some(DocKind::Odp),
        _ => None,
    }
}

pub(super) fn extract_odf(
    bytes: &[u8],
    kind: DocKind,
    max_text_bytes: usize,
) -> Result<Extracted, ExtractError> {
    let fmt = match kind {
        DocKind::Ods => "ODS",
        DocKind::Odp => "ODP",
        _ => "ODT",
    };
    let mut zip = Zip::open(bytes, fmt, max_text_bytes)?;
    let part = zip.require("content.xml")?;
    let mut tb = TextBuilder::new(max_text_bytes);
    odf_content(&part, &format!("{fmt} content.xml"), kind, &mut tb)?;
    drop(part);
    let meta = match zip.read("meta.xml")? {
        Some(part) => odf_meta(&part, &format!("{fmt} meta.xml"))?,
        None => DocMeta::default(),
    };
    Ok(built(&zip, kind, tb, meta, None))
}

/// Where the ODF walker is inside a table.
#[derive(Default)]
struct OdfTable {
    /// Cells of the current row: (text, columns repeated).
    row: Vec<(String, usize)>,
    row_repeat: usize,
    cell: Option<(String, usize)>,
}

fn odf_content(
    part: &Part,
    what: &str,
    kind: DocKind,
    tb: &mut TextBuilder,
) -> Result<(), ExtractError> {
    let mut skip = 0usize; // inside elements whose text is not the document's
    let mut tables: Vec<OdfTable> = Vec::new();
    let mut slide = 0usize;
    let mut line = String::new();
    let mut para_depth = 0usize;
    walk(part, what, |n| {
        match n {
            Node::Start(e) => {
                let name = e.local_name();
                let name = name.as_ref();
                if skip > 0 {
                    skip += 1;
                    return true;
                }
                match name {
                    "tracked-changes" | "sequence-decls" | "forms" | "scripts"
                    | "font-face-decls" | "automatic-styles" | "note-citation" => skip = 1,
                    "page" if kind == DocKind::Odp => {
                        slide += 1;
                        tb.section(format!("slide {slide}"));
                    }
                    "table" => {
                        // A top-level table of a spreadsheet is a sheet; tables in text are
                        // not sections.
                        if tables.is_empty() && kind == DocKind::Ods {
                            let sheet = attr(e, "name").unwrap_or_else(|| "".into());
                            tb.section(format!("sheet {sheet}"));
                        }
                        tables.push(OdfTable::default());
                    }
                    "table-row" => {
                        if let Some(t) = tables.last_mut() {
                            t.row.clear();
                            t.row_repeat = repeat(e, "number-rows-repeated");
                        }
                    }
                    "table-cell" | "covered-table-cell" => {
                        if let Some(t) = tables.last_mut() {
                            t.cell = Some((String::new(), repeat(e, "number-columns-repeated")));
                        }
                    }
                    "p" | "h" => {
                        para_depth += 1;
                        if para_depth == 1 {
                            line.clear();
                        }
                    }
                    "tab" => line.push('\t'),
                    "line-break" => line.push('\n'),
                    "s" => {
                        let n = attr(e, "c").and_then(|c| c.parse().ok()).unwrap_or(1usize);
                        line.extend(std::iter::repeat_n(' ', n.min(MAX_GAP)));
                    }
                    _ => {}
                }
            }
            Node::End(name) => {
                if skip > 0 {
                    skip -= 1;
                    return true;
                }
                match name {
                    "p" | "h" => {
                        para_depth = para_depth.saturating_sub(1);
                        if para_depth == 0 {
                            let text = std::mem::take(&mut line);
                            match tables.last_mut().and_then(|t| t.cell.as_mut()) {
                                Some((cell, _)) => {
                                    if !cell.is_empty() {
                                        cell.push(' ');
                                    }
                                    cell.push_str(&one_line(&text));
                                }
                                None => {
                                    tb.push(text.trim_end());
                                    tb.newline();
                                }
                            }
                        }
                    }
                    "table-cell" | "covered-table-cell" => {
                        if let Some(t) = tables.last_mut() {
                            if let Some(c) = t.cell.take() {
                                t.row.push(c);
                            }
                        }
                    }
                    "table-row" => {
                        if let Some(t) = tables.last_mut() {
                            let mut cells: Vec<(Option<usize>, String)> = Vec::new();
                            let mut col = 0usize;
                            for (text, n) in &t.row {
                                if !text.is_empty() {
                                    for k in 0..(*n).min(MAX_REPEAT) {
                                        cells.push((Some(col + k), text.clone()));
                                    }
                                }
                                col = col.saturating_add(*n);
                            }
                            if !cells.is_empty() {
                                for _ in 0..t.row_repeat.min(MAX_REPEAT) {
                                    write_row(tb, &cells);
                                }
                            }
                            t.row.clear();
                        }
                    }
                    "table" => {
                        tables.pop();
                        tb.newline();
                    }
                    _ => {}
                }
            }
            Node::Text(t) => {
                if skip == 0 && para_depth > 0 {
                    line.push_str(t);
                }
            }
        }
        !tb.full()
    })?;
    // A paragraph cut by the bound.
    tb.push(line.trim_end());
    Ok(())
}

fn repeat(e: &quick_xml::events::BytesStart<'_>, name: &str) -> usize {
    attr(e, name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1usize)
        .max(1)
}

fn odf_meta(part: &Part, what: &str) -> Result<DocMeta, ExtractError> {
    let mut texts = FirstTexts::new(["title", "initial-creator", "creator", "creation-date"]);
    walk(part, what, |n| {
        texts.feed(&n);
        true
    })?;
    let [title, initial, creator, created] = texts.finish();
    Ok(DocMeta {
        title,
        author: initial.or(creator),
        date: created.and_then(|c| parse_iso_date(&c)),
        ..DocMeta::default()
    })
}

// ---- shared -----------------------------------------------------------------

fn built(
    zip: &Zip,
    kind: DocKind,
    tb: TextBuilder,
    meta: DocMeta,
    warning: Option<String>,
) -> Extracted {
    let (text, sections) = tb.finish();
    Extracted {
        text,
        kind,
        sections,
        meta,
        warning: zip.warning(warning),
        ..Extracted::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extract_cell_columns() {
        assert_eq!(column_of("A1"), Some(0));
        assert_eq!(column_of("c7"), Some(2));
        assert_eq!(column_of("AA3"), Some(26));
        assert_eq!(column_of("12"), None);
        assert_eq!(column_of(&"Z".repeat(100)), None);
    }
}

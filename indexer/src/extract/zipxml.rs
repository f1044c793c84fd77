//! What the zip-based formats (DOCX, XLSX, PPTX, OpenDocument, EPUB) share: a zip reader that
//! reads each part through a bound, and an XML walker.
//!
//! Bounds: every decompressed part is read through `take(bound)` with bound =
//! max([`PART_MIN_BOUND`], [`RAW_SIZE_FACTOR`] × the text budget), so a zip bomb costs at most
//! that much inflating and memory per part; at most [`MAX_PARTS_READ`] parts are read from one
//! file, and an archive listing more than [`MAX_ZIP_ENTRIES`] entries is refused.

use std::borrow::Cow;
use std::io::{Cursor, Read};

use quick_xml::events::{BytesStart, Event};

use super::{ExtractError, RAW_SIZE_FACTOR};

/// The least a part may decompress to, whatever the text budget (markup is much larger than
/// its text).
pub(super) const PART_MIN_BOUND: u64 = 64 << 20;
/// An archive with more entries than this is refused.
pub(super) const MAX_ZIP_ENTRIES: usize = 50_000;
/// At most this many parts are read from one file (sheets, slides, chapters…).
pub(super) const MAX_PARTS_READ: usize = 2_000;

pub(super) fn failed(msg: impl Into<String>) -> ExtractError {
    ExtractError::Failed(msg.into())
}

/// A part of the archive, decompressed up to the bound.
pub(super) struct Part {
    pub text: String,
    /// The bound cut it: its markup may end mid-element.
    pub cut: bool,
}

pub(super) struct Zip<'a> {
    archive: zip::ZipArchive<Cursor<&'a [u8]>>,
    /// The format's name for messages ("XLSX").
    pub fmt: &'static str,
    bound: u64,
    reads: usize,
    /// Parts cut by the bound.
    cut: Vec<String>,
}

impl<'a> Zip<'a> {
    pub fn open(bytes: &'a [u8], fmt: &'static str, max_text: usize) -> Result<Self, ExtractError> {
        let archive = zip::ZipArchive::new(Cursor::new(bytes))
            .map_err(|e| failed(format!("not a valid {fmt} (zip) file: {e}")))?;
        if archive.len() > MAX_ZIP_ENTRIES {
            return Err(failed(format!(
                "{fmt}: the zip lists {} entries, over the limit of {MAX_ZIP_ENTRIES}",
                archive.len()
            )));
        }
        Ok(Zip {
            archive,
            fmt,
            bound: part_bound(max_text),
            reads: 0,
            cut: Vec::new(),
        })
    }

    pub fn has(&self, name: &str) -> bool {
        self.archive.index_for_name(name).is_some()
    }

    /// The names of the entries (those that are valid UTF-8).
    pub fn names(&self) -> Vec<String> {
        self.archive
            .file_names()
            .filter_map(|n| n.ok().map(Cow::into_owned))
            .collect()
    }

    /// True once [`MAX_PARTS_READ`] parts have been read.
    pub fn exhausted(&self) -> bool {
        self.reads >= MAX_PARTS_READ
    }

    /// The part `name`, or `None` when the archive has no such entry (or the read limit is
    /// reached: check [`Zip::exhausted`]).
    pub fn read(&mut self, name: &str) -> Result<Option<Part>, ExtractError> {
        if self.exhausted() {
            return Ok(None);
        }
        let fmt = self.fmt;
        let Some(index) = self.archive.index_for_name(name) else {
            return Ok(None);
        };
        self.reads += 1;
        let entry = self
            .archive
            .by_index(index)
            .map_err(|e| failed(format!("{fmt} {name}: cannot be read: {e}")))?;
        let mut raw = Vec::new();
        entry
            .take(self.bound)
            .read_to_end(&mut raw)
            .map_err(|e| failed(format!("{fmt} {name}: cannot be decompressed: {e}")))?;
        let cut = raw.len() as u64 >= self.bound;
        if cut {
            self.cut.push(name.to_string());
        }
        let text = match String::from_utf8(raw) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        Ok(Some(Part { text, cut }))
    }

    /// Why the file was read only in part: parts that decompress past the bound (a zip
    /// bomb, or a huge document), then `other` (a limit of the format).
    pub fn warning(&self, other: Option<String>) -> Option<String> {
        let mut w: Vec<String> = Vec::new();
        if !self.cut.is_empty() {
            w.push(format!(
                "{}: {} decompresses past the {} MiB bound for one part (a zip bomb?); read in part",
                self.fmt,
                self.cut.join(", "),
                self.bound >> 20
            ));
        }
        w.extend(other);
        (!w.is_empty()).then(|| w.join("; "))
    }

    /// [`Zip::read`], failing when the part is missing.
    pub fn require(&mut self, name: &str) -> Result<Part, ExtractError> {
        let fmt = self.fmt;
        self.read(name)?
            .ok_or_else(|| failed(format!("{fmt} has no readable {name}")))
    }
}

/// The bound on one decompressed part for a text budget.
pub(super) fn part_bound(max_text: usize) -> u64 {
    (max_text as u64)
        .saturating_mul(RAW_SIZE_FACTOR as u64)
        .max(PART_MIN_BOUND)
}

/// One step of [`walk`]. An empty element (`<a/>`) is a `Start` then an `End`.
pub(super) enum Node<'x> {
    Start(&'x BytesStart<'x>),
    /// The local name of the element that ends.
    End(&'x str),
    Text(&'x str),
}

/// Walks the XML of `part`, calling `f` for each element start, end and piece of text (with
/// character and predefined entity references resolved) until it returns false or the end.
/// Malformed markup is an error naming `what` ("XLSX xl/sharedStrings.xml"), except past a
/// cut by the bound, where the walk just stops.
pub(super) fn walk(
    part: &Part,
    what: &str,
    mut f: impl FnMut(Node<'_>) -> bool,
) -> Result<(), ExtractError> {
    let mut reader = quick_xml::Reader::from_str(&part.text);
    let malformed = |e: &dyn std::fmt::Display| failed(format!("{what} is malformed XML: {e}"));
    loop {
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(_) if part.cut => return Ok(()),
            Err(e) => return Err(malformed(&e)),
        };
        let go_on = match &event {
            Event::Start(e) => f(Node::Start(e)),
            Event::Empty(e) => f(Node::Start(e)) && f(Node::End(e.local_name().as_ref())),
            Event::End(e) => f(Node::End(e.local_name().as_ref())),
            Event::Text(t) => f(Node::Text(&t.xml10_content())),
            Event::CData(t) => f(Node::Text(&t.xml10_content())),
            Event::GeneralRef(r) => match r.resolve_char_ref() {
                Ok(Some(c)) => f(Node::Text(c.encode_utf8(&mut [0; 4]))),
                Ok(None) => match quick_xml::escape::resolve_predefined_entity(r) {
                    Some(s) => f(Node::Text(s)),
                    None => f(Node::Text(&format!("&{};", &**r))),
                },
                Err(_) if part.cut => return Ok(()),
                Err(e) => return Err(malformed(&e)),
            },
            Event::Eof => return Ok(()),
            _ => true,
        };
        if !go_on {
            return Ok(());
        }
    }
}

/// Collects, during a [`walk`], the text of the first element of each of `N` local names
/// (document metadata: `title`, `creator`, `created`…).
pub(super) struct FirstTexts<const N: usize> {
    names: [&'static str; N],
    texts: [String; N],
    seen: [bool; N],
    open: Option<usize>,
}

impl<const N: usize> FirstTexts<N> {
    pub fn new(names: [&'static str; N]) -> Self {
        Self {
            names,
            texts: std::array::from_fn(|_| String::new()),
            seen: [false; N],
            open: None,
        }
    }

    pub fn feed(&mut self, n: &Node<'_>) {
        match n {
            Node::Start(e) => {
                let name = e.local_name();
                let name: &str = name.as_ref();
                self.open = self
                    .names
                    .iter()
                    .position(|x| *x == name)
                    .filter(|&i| !self.seen[i]);
                if let Some(i) = self.open {
                    self.seen[i] = true;
                }
            }
            Node::End(_) => self.open = None,
            Node::Text(t) => {
                if let Some(i) = self.open {
                    self.texts[i].push_str(t);
                }
            }
        }
    }

    /// Each text trimmed, `None` when absent or blank.
    pub fn finish(self) -> [Option<String>; N] {
        self.texts.map(|t| {
            let t = t.trim();
            (!t.is_empty()).then(|| t.to_string())
        })
    }
}

/// The value of the attribute whose local name is `name` (any prefix), unescaped.
pub(super) fn attr(e: &BytesStart<'_>, name: &str) -> Option<String> {
    attr_where(e, name, |_| true)
}

/// The value of the attribute whose local name is `name` and that has a namespace prefix
/// (`r:id`, not `id`).
pub(super) fn attr_prefixed(e: &BytesStart<'_>, name: &str) -> Option<String> {
    attr_where(e, name, |prefixed| prefixed)
}

fn attr_where(e: &BytesStart<'_>, name: &str, want: impl Fn(bool) -> bool) -> Option<String> {
    e.attributes().flatten().find_map(|a| {
        (a.key.local_name().as_ref() == name && want(a.key.prefix().is_some())).then(|| {
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map(Cow::into_owned)
                .unwrap_or_else(|_| a.value.clone().into_owned())
        })
    })
}

/// Resolves a relationship target (`worksheets/sheet1.xml`, `../notesSlides/n1.xml`,
/// `/xl/x.xml`) against the folder of the part that refers to it (`xl/`), removing `.` and
/// `..` and a `#fragment`, and decoding `%XX` escapes.
pub(super) fn resolve_target(base_dir: &str, target: &str) -> String {
    let target = target.split('#').next().unwrap_or("");
    let target = percent_decode(target);
    let joined = match target.strip_prefix('/') {
        Some(abs) => abs.to_string(),
        None => format!("{base_dir}{target}"),
    };
    let mut parts: Vec<&str> = Vec::new();
    for seg in joined.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

/// The folder of a part's path, with its trailing slash ("" at the root).
pub(super) fn dir_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "",
    }
}

fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A relationships part (`_rels/x.xml.rels`): (Id, Type, Target) of each relationship.
pub(super) fn relationships(
    part: &Part,
    what: &str,
) -> Result<Vec<(String, String, String)>, ExtractError> {
    let mut rels = Vec::new();
    walk(part, what, |n| {
        if let Node::Start(e) = n {
            if e.local_name().as_ref() == "Relationship" {
                if let (Some(id), Some(target)) = (attr(e, "Id"), attr(e, "Target")) {
                    rels.push((id, attr(e, "Type").unwrap_or_default(), target));
                }
            }
        }
        true
    })?;
    Ok(rels)
}

/// The relationships part of `path` (`xl/workbook.xml` → `xl/_rels/workbook.xml.rels`).
pub(super) fn rels_path(path: &str) -> String {
    let dir = dir_of(path);
    format!("{dir}_rels/{}.rels", &path[dir.len()..])
}

/// The number in a part name (`ppt/slides/slide12.xml` → 12), for numeric ordering.
pub(super) fn number_in(name: &str) -> Option<u64> {
    let base = &name[dir_of(name).len()..];
    let digits: String = base
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extract_targets_resolve() {
        assert_eq!(
            resolve_target("xl/", "worksheets/sheet1.xml"),
            "xl/worksheets/sheet1.xml"
        );
        assert_eq!(
            resolve_target("ppt/slides/", "../notesSlides/n1.xml"),
            "ppt/notesSlides/n1.xml"
        );
        assert_eq!(resolve_target("xl/", "/xl/a.xml"), "xl/a.xml");
        assert_eq!(
            resolve_target("OEBPS/", "ch%201.xhtml#x"),
            "OEBPS/ch 1.xhtml"
        );
        assert_eq!(resolve_target("", "a%2"), "a%2");
        assert_eq!(rels_path("xl/workbook.xml"), "xl/_rels/workbook.xml.rels");
        assert_eq!(number_in("ppt/slides/slide12.xml"), Some(12));
        assert_eq!(number_in("x/sheet.xml"), None);
    }
}

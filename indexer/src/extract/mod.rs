//! Text extraction by file type.
//!
//! [`extract`] turns a file's bytes into searchable text, the places in it a citation names
//! ([`Section`]: page, slide, sheet, message…), the document's metadata ([`DocMeta`]: title,
//! author, e-mail headers, EXIF date taken, camera and position) and the parts that only OCR
//! can read ([`OcrPart`]). The type is chosen by the name's extension (case-insensitive),
//! refined by sniffing the content when the extension is missing or unknown:
//!
//! | kind | extensions | how | sections |
//! | --- | --- | --- | --- |
//! | [`DocKind::Text`] | txt, log, rst, …; none or unknown if the content is UTF-8 | as is | – |
//! | [`DocKind::Markdown`] | md, markdown, … | as is | – |
//! | [`DocKind::Code`] | rs, py, js, ts, go, c, h, cpp, java, sh, toml, yaml, sql, … | as is | – |
//! | [`DocKind::Json`] | json, jsonl, ndjson, … | as is | – |
//! | [`DocKind::Csv`] | csv, tsv | as is | – |
//! | [`DocKind::Html`] | html, htm, xhtml | `html2text`, plus the `<title>` | – |
//! | [`DocKind::Pdf`] | pdf (or `%PDF-` magic) | `pdf-extract` page by page, panics caught; pages without a text layer go to OCR | page |
//! | [`DocKind::Docx`] | docx, docm, dotx (or a zip holding `word/document.xml`) | `zip` + `quick-xml` | – |
//! | [`DocKind::Xlsx`] | xlsx, xlsm (or a zip holding `xl/workbook.xml`) | `zip` + `quick-xml` | `sheet <name>` |
//! | [`DocKind::Pptx`] | pptx, pptm (or a zip holding `ppt/presentation.xml`) | `zip` + `quick-xml` | `slide N` |
//! | [`DocKind::Odt`] | odt, ott (or a zip whose `mimetype` says so) | `content.xml`, `meta.xml` | – |
//! | [`DocKind::Ods`] | ods, ots | the same | `sheet <name>` |
//! | [`DocKind::Odp`] | odp, otp | the same | `slide N` |
//! | [`DocKind::Epub`] | epub (or a zip whose `mimetype` is `application/epub+zip`) | OPF spine, XHTML by `html2text` | `chapter N[: title]` |
//! | [`DocKind::Rtf`] | rtf (or `{\rtf` magic) | a small bounded parser | – |
//! | [`DocKind::Email`] | eml | `mailparse` | `attachment <name>` |
//! | [`DocKind::Mbox`] | mbox | split on `From ` lines, `mailparse` | `message N: <subject>` |
//! | [`DocKind::Image`] | png, jpg, jpeg, tif, tiff, webp | EXIF (`kamadak-exif`) as fields; the picture's text by OCR | – |
//!
//! This module does not run OCR: it asks an [`OcrLookup`] for text already recognised (the
//! indexer's cache) and lists what is still missing in [`Extracted::ocr`].
//!
//! For the "as is" kinds the text is exactly a prefix of the file's bytes
//! (a UTF-8 BOM included), so byte offsets into the text are byte offsets
//! into the file: [`Extracted::offsets_are_file_bytes`] says so. Anything
//! that is not valid UTF-8 there is [`ExtractError::Binary`]: there is no
//! Latin-1 guess.
//!
//! Limits: the text is cut to `max_text_bytes` (on a char boundary, not an
//! error); a file larger than [`RAW_SIZE_FACTOR`] × `max_text_bytes` is
//! [`ExtractError::TooLarge`] and is not read at all. Decompressed parts of
//! zip-based formats are read through a bound (zip bombs), and parsers that can
//! loop run under a time limit.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

mod ebook;
mod html;
mod image;
mod mail;
mod office;
mod pdf;
mod rtf;
#[cfg(test)]
mod tests_formats;
mod zipxml;

/// A file may be this many times larger than the text budget; past that it is
/// refused as [`ExtractError::TooLarge`] without being parsed.
pub const RAW_SIZE_FACTOR: usize = 64;

/// How many leading bytes are sniffed for NUL bytes (binary content).
const SNIFF_BYTES: usize = 8 * 1024;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The kind of document the text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DocKind {
    #[default]
    Text,
    Markdown,
    Code,
    Html,
    Pdf,
    Docx,
    Json,
    Csv,
    Image,
    Odt,
    Ods,
    Odp,
    Xlsx,
    Pptx,
    Epub,
    Rtf,
    Email,
    Mbox,
}

impl DocKind {
    /// All kinds, in declaration order.
    pub const ALL: [DocKind; 18] = [
        DocKind::Text,
        DocKind::Markdown,
        DocKind::Code,
        DocKind::Html,
        DocKind::Pdf,
        DocKind::Docx,
        DocKind::Json,
        DocKind::Csv,
        DocKind::Image,
        DocKind::Odt,
        DocKind::Ods,
        DocKind::Odp,
        DocKind::Xlsx,
        DocKind::Pptx,
        DocKind::Epub,
        DocKind::Rtf,
        DocKind::Email,
        DocKind::Mbox,
    ];

    /// A short stable lowercase name ("text", "markdown", "code", "html",
    /// "pdf", "docx", "json", "csv", "image", "odt", "ods", "odp", "xlsx", "pptx", "epub",
    /// "rtf", "email", "mbox"), suitable for storing in an index.
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Text => "text",
            DocKind::Markdown => "markdown",
            DocKind::Code => "code",
            DocKind::Html => "html",
            DocKind::Pdf => "pdf",
            DocKind::Docx => "docx",
            DocKind::Json => "json",
            DocKind::Csv => "csv",
            DocKind::Image => "image",
            DocKind::Odt => "odt",
            DocKind::Ods => "ods",
            DocKind::Odp => "odp",
            DocKind::Xlsx => "xlsx",
            DocKind::Pptx => "pptx",
            DocKind::Epub => "epub",
            DocKind::Rtf => "rtf",
            DocKind::Email => "email",
            DocKind::Mbox => "mbox",
        }
    }

    /// The inverse of [`DocKind::as_str`].
    pub fn parse(s: &str) -> Option<DocKind> {
        DocKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// True for the kinds whose extracted text is the file's own bytes.
    pub fn is_verbatim(self) -> bool {
        matches!(
            self,
            DocKind::Text | DocKind::Markdown | DocKind::Code | DocKind::Json | DocKind::Csv
        )
    }
}

impl std::fmt::Display for DocKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a part of the text starts: what a citation names ("page 3", "slide 2",
/// "sheet Budget", "message 4"). Sections are sorted by offset.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Byte offset in the extracted text.
    pub offset: u64,
    pub label: String,
}

/// The label of the section holding text byte `offset`, if any.
pub fn section_at(sections: &[Section], offset: u64) -> Option<&str> {
    let i = sections.partition_point(|s| s.offset <= offset);
    (i > 0).then(|| sections[i - 1].label.as_str())
}

/// A document's metadata, as fields for filters (`taken:2023`, `from:alice`, `author:`).
/// Every field is optional; strings are as the file gives them, trimmed.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct DocMeta {
    pub title: Option<String>,
    pub author: Option<String>,
    /// E-mail sender and recipients (To and Cc), as written in the headers.
    pub from: Option<String>,
    pub to: Option<String>,
    pub subject: Option<String>,
    /// The document's own date (e-mail Date, PDF creation date), seconds since the epoch (UTC).
    pub date: Option<i64>,
    /// When a photo was taken (EXIF DateTimeOriginal, read as UTC), seconds since the epoch.
    pub taken: Option<i64>,
    /// Camera make and model.
    pub camera: Option<String>,
    /// Latitude and longitude in degrees (EXIF GPS).
    pub gps: Option<(f64, f64)>,
    /// The nearest place to `gps` in the offline gazetteer ("Lyon, FR").
    pub place: Option<String>,
}

impl DocMeta {
    pub fn is_empty(&self) -> bool {
        *self == DocMeta::default()
    }

    /// The fields as one line each ("Camera: Canon EOS 5D"), indexed with the text so that
    /// free-text search finds them too.
    pub fn as_text(&self) -> String {
        let mut out = String::new();
        let mut line = |k: &str, v: &Option<String>| {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                out.push_str(k);
                out.push_str(": ");
                out.push_str(v);
                out.push('\n');
            }
        };
        line("Title", &self.title);
        line("Author", &self.author);
        line("Camera", &self.camera);
        line("Place", &self.place);
        out
    }
}

/// A part of a file that has no text of its own: OCR can read it.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OcrPart {
    /// The whole picture (an image file).
    Image,
    /// A PDF page without a text layer (1-based).
    PdfPage(u32),
}

impl OcrPart {
    /// A stable name for cache keys and logs ("image", "page 3").
    pub fn label(self) -> String {
        match self {
            OcrPart::Image => "image".into(),
            OcrPart::PdfPage(p) => format!("page {p}"),
        }
    }
}

/// Text already recognised for a part of this file (the indexer's OCR cache).
pub trait OcrLookup {
    fn recognised(&self, part: OcrPart) -> Option<String>;
}

/// No OCR results: every part without text is listed as missing.
pub struct NoOcr;

impl OcrLookup for NoOcr {
    fn recognised(&self, _: OcrPart) -> Option<String> {
        None
    }
}

/// The text of a file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Extracted {
    /// The extracted text, at most `max_text_bytes` long.
    pub text: String,
    pub kind: DocKind,
    /// True when `text` is a verbatim prefix of the file, so that a byte
    /// offset into `text` is the same byte offset into the file.
    pub offsets_are_file_bytes: bool,
    /// Where pages, slides, sheets, messages… start in `text` (empty for plain kinds).
    pub sections: Vec<Section>,
    pub meta: DocMeta,
    /// Parts with no text that the [`OcrLookup`] did not know yet: OCR them, then extract
    /// again.
    pub ocr: Vec<OcrPart>,
    /// Indexed, but not all of it (page limit, time limit, OCR limit): the reason.
    pub warning: Option<String>,
}

/// Seconds since the epoch of a UTC civil time; `None` when a field is out of range.
pub fn civil_to_epoch(y: i64, m: i64, d: i64, h: i64, mi: i64, s: i64) -> Option<i64> {
    if !(-9999..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&d)
        || !(0..=23).contains(&h)
        || !(0..=59).contains(&mi)
        || !(0..=60).contains(&s)
    {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146097 + doe - 719468) * 86400 + h * 3600 + mi * 60 + s)
}

/// Great-circle distance in kilometres between two (latitude, longitude) points in degrees.
pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1, la2, lo2) = (
        a.0.to_radians(),
        a.1.to_radians(),
        b.0.to_radians(),
        b.1.to_radians(),
    );
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().min(1.0).asin()
}

/// Builds extracted text within the budget, recording where sections start.
pub struct TextBuilder {
    pub text: String,
    pub sections: Vec<Section>,
    max: usize,
}

impl TextBuilder {
    pub fn new(max: usize) -> Self {
        Self {
            text: String::new(),
            sections: Vec::new(),
            max,
        }
    }

    /// True once the budget is spent: stop reading.
    pub fn full(&self) -> bool {
        self.text.len() >= self.max
    }

    /// Starts a section here (a blank line separates it from the previous text).
    pub fn section(&mut self, label: impl Into<String>) {
        if self.full() {
            return;
        }
        if !self.text.is_empty() && !self.text.ends_with("\n\n") {
            self.text.push_str(if self.text.ends_with('\n') {
                "\n"
            } else {
                "\n\n"
            });
        }
        let offset = self.text.len() as u64;
        // An empty section is replaced by the next one at the same place.
        if self.sections.last().is_some_and(|s| s.offset == offset) {
            self.sections.pop();
        }
        self.sections.push(Section {
            offset,
            label: clean_label(label.into()),
        });
    }

    /// Ends the current line: a newline, unless the text is empty or already ends with a
    /// blank line (so runs of empty paragraphs leave one blank line).
    pub fn newline(&mut self) {
        if !self.text.is_empty() && !self.text.ends_with("\n\n") {
            self.push("\n");
        }
    }

    /// Appends text, cut to the budget on a char boundary.
    pub fn push(&mut self, s: &str) {
        let room = self.max.saturating_sub(self.text.len());
        if s.len() <= room {
            self.text.push_str(s);
        } else {
            let mut cut = room;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            self.text.push_str(&s[..cut]);
        }
    }

    pub fn finish(mut self) -> (String, Vec<Section>) {
        let len = self.text.trim_end().len();
        self.text.truncate(len);
        let end = self.text.len() as u64;
        self.sections.retain(|s| s.offset < end);
        (self.text, self.sections)
    }
}

/// The longest a section label may be (a sheet name or subject in a hostile file can be
/// megabytes); longer ones are cut on a char boundary.
pub const MAX_LABEL_BYTES: usize = 200;

/// A label on one line (control characters become spaces, runs of spaces one), at most
/// [`MAX_LABEL_BYTES`] long.
fn clean_label(label: String) -> String {
    if label.len() <= MAX_LABEL_BYTES && !label.chars().any(char::is_control) {
        return label;
    }
    let mut out = String::new();
    for word in label
        .split(|c: char| c.is_control() || c == ' ')
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
        if out.len() > MAX_LABEL_BYTES {
            break;
        }
    }
    truncate_on_char_boundary(&mut out, MAX_LABEL_BYTES);
    out
}

/// Why a file yields no text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExtractError {
    #[error(
        "content looks binary (NUL bytes or invalid UTF-8) and is not a supported document type \
         ({SUPPORTED}); not indexed"
    )]
    Binary,
    #[error(
        "file is {size} bytes, over the {limit}-byte limit for text extraction \
         ({RAW_SIZE_FACTOR} x the text budget); not indexed - raise the text budget to index it"
    )]
    TooLarge { size: usize, limit: usize },
    #[error("no text extractor for '.{0}' files (supported: {SUPPORTED}); not indexed")]
    Unsupported(String),
    #[error("text extraction failed: {0}")]
    Failed(String),
}

/// What the error messages list as supported.
const SUPPORTED: &str = "text, Markdown, source code, HTML, PDF, DOCX, XLSX, PPTX, \
                         OpenDocument (ODT, ODS, ODP), EPUB, RTF, e-mail (EML, MBOX), JSON, CSV, \
                         images (PNG, JPEG, TIFF, WebP: OCR and EXIF)";

/// Extracts the text of the file called `name` (a file name or a path; only
/// its extension matters) whose content is `bytes`, without OCR results.
///
/// The text is cut to at most `max_text_bytes` on a char boundary. Files
/// larger than `RAW_SIZE_FACTOR * max_text_bytes` are refused with
/// [`ExtractError::TooLarge`].
pub fn extract(name: &str, bytes: &[u8], max_text_bytes: usize) -> Result<Extracted, ExtractError> {
    extract_with(name, bytes, max_text_bytes, &NoOcr)
}

/// [`extract`], with the text OCR already recognised for this content filled in its place.
pub fn extract_with(
    name: &str,
    bytes: &[u8],
    max_text_bytes: usize,
    ocr: &dyn OcrLookup,
) -> Result<Extracted, ExtractError> {
    let ext = extension(name);
    let by_name = match ext.as_deref() {
        Some(e) => classify_extension(e),
        None => Class::Unknown,
    };
    let kind = match by_name {
        Class::Unsupported => {
            return Err(ExtractError::Unsupported(ext.unwrap_or_default()));
        }
        Class::Kind(kind) => kind,
        Class::Unknown => match sniff(bytes) {
            Some(kind) => kind,
            // Named by a well-known file name (Makefile, Dockerfile, …)?
            None if is_code_file_name(name) => DocKind::Code,
            None => DocKind::Text,
        },
    };

    let limit = max_text_bytes.saturating_mul(RAW_SIZE_FACTOR);
    if bytes.len() > limit {
        return Err(ExtractError::TooLarge {
            size: bytes.len(),
            limit,
        });
    }

    let mut out = match kind {
        DocKind::Html => Extracted::plain(kind, html::extract_html(bytes)?),
        DocKind::Pdf => pdf::extract_pdf(bytes, max_text_bytes, ocr)?,
        DocKind::Docx => office::extract_docx(bytes, max_text_bytes)?,
        DocKind::Xlsx => office::extract_xlsx(bytes, max_text_bytes)?,
        DocKind::Pptx => office::extract_pptx(bytes, max_text_bytes)?,
        DocKind::Odt | DocKind::Ods | DocKind::Odp => {
            office::extract_odf(bytes, kind, max_text_bytes)?
        }
        DocKind::Epub => ebook::extract_epub(bytes, max_text_bytes)?,
        DocKind::Rtf => rtf::extract_rtf(bytes, max_text_bytes)?,
        DocKind::Email => mail::extract_eml(bytes, max_text_bytes)?,
        DocKind::Mbox => mail::extract_mbox(bytes, max_text_bytes)?,
        DocKind::Image => image::extract_image(bytes, max_text_bytes, ocr)?,
        DocKind::Text | DocKind::Markdown | DocKind::Code | DocKind::Json | DocKind::Csv => {
            return Ok(Extracted {
                text: verbatim_text(bytes, max_text_bytes)?.to_owned(),
                kind,
                offsets_are_file_bytes: true,
                ..Extracted::default()
            });
        }
    };
    out.kind = kind;
    truncate_on_char_boundary(&mut out.text, max_text_bytes);
    let end = out.text.len() as u64;
    out.sections.retain(|s| s.offset < end);
    Ok(out)
}

impl Extracted {
    fn plain(kind: DocKind, text: String) -> Self {
        Extracted {
            text,
            kind,
            ..Extracted::default()
        }
    }
}

/// The kind a file name alone implies, if its extension is known.
/// `None` when the extension is missing, unknown or unsupported.
pub fn kind_from_name(name: &str) -> Option<DocKind> {
    match classify_extension(&extension(name)?) {
        Class::Kind(k) => Some(k),
        Class::Unknown | Class::Unsupported => None,
    }
}

/// Cuts `s` to at most `max` bytes, on a char boundary.
pub fn truncate_on_char_boundary(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

enum Class {
    Kind(DocKind),
    Unsupported,
    Unknown,
}

/// The lowercase extension of the last path component, if any. A leading
/// dot alone (".bashrc") is not an extension.
fn extension(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let dot = base.rfind('.')?;
    if dot == 0 || dot + 1 == base.len() {
        return None;
    }
    Some(base[dot + 1..].to_ascii_lowercase())
}

fn classify_extension(ext: &str) -> Class {
    let kind = match ext {
        "txt" | "text" | "log" | "rst" | "adoc" | "asciidoc" | "org" | "tex" | "nfo" | "me"
        | "1st" | "textile" | "srt" | "vtt" | "bib" => DocKind::Text,
        "md" | "markdown" | "mdown" | "mkd" | "mkdn" | "mdx" => DocKind::Markdown,
        "html" | "htm" | "xhtml" | "shtml" => DocKind::Html,
        "pdf" => DocKind::Pdf,
        "docx" | "docm" | "dotx" | "dotm" => DocKind::Docx,
        "xlsx" | "xlsm" | "xltx" | "xltm" => DocKind::Xlsx,
        "pptx" | "pptm" | "potx" | "potm" | "ppsx" | "ppsm" => DocKind::Pptx,
        "odt" | "ott" => DocKind::Odt,
        "ods" | "ots" => DocKind::Ods,
        "odp" | "otp" => DocKind::Odp,
        "epub" => DocKind::Epub,
        "rtf" => DocKind::Rtf,
        "eml" => DocKind::Email,
        "mbox" | "mbx" => DocKind::Mbox,
        "json" | "jsonl" | "ndjson" | "geojson" | "json5" | "jsonc" | "ipynb" => DocKind::Json,
        "csv" | "tsv" => DocKind::Csv,
        "rs" | "py" | "pyi" | "js" | "mjs" | "cjs" | "jsx" | "ts" | "tsx" | "mts" | "cts"
        | "go" | "c" | "h" | "cc" | "cpp" | "cxx" | "c++" | "hh" | "hpp" | "hxx" | "inl"
        | "java" | "kt" | "kts" | "scala" | "groovy" | "gradle" | "cs" | "fs" | "fsx" | "vb"
        | "swift" | "m" | "mm" | "rb" | "php" | "pl" | "pm" | "lua" | "r" | "jl" | "dart"
        | "zig" | "nim" | "hs" | "ml" | "mli" | "ex" | "exs" | "erl" | "hrl" | "clj" | "cljs"
        | "el" | "lisp" | "scm" | "rkt" | "sh" | "bash" | "zsh" | "fish" | "ps1" | "bat"
        | "cmd" | "toml" | "yaml" | "yml" | "ini" | "cfg" | "conf" | "properties" | "sql"
        | "xml" | "xsd" | "xsl" | "svg" | "css" | "scss" | "sass" | "less" | "vue" | "svelte"
        | "proto" | "graphql" | "gql" | "tf" | "hcl" | "nix" | "vim" | "cmake" | "mk" | "mak"
        | "make" | "dockerfile" | "v" | "sv" | "vhd" | "vhdl" | "asm" | "s" | "f90" | "f"
        | "pas" | "ada" | "adb" | "diff" | "patch" | "awk" | "sed" | "tcl" | "purs" | "elm"
        | "sol" | "cu" | "glsl" | "wgsl" | "hlsl" | "lock" => DocKind::Code,
        "png" | "jpg" | "jpeg" | "jpe" | "webp" | "tif" | "tiff" => DocKind::Image,
        "gif" | "bmp" | "ico" | "heic" | "heif" | "avif" | "psd" | "raw" | "cr2" | "nef"
        | "dng" | "mp3" | "wav" | "flac" | "ogg" | "oga" | "opus" | "m4a" | "aac" | "wma"
        | "mid" | "midi" | "mp4" | "m4v" | "mkv" | "webm" | "avi" | "mov" | "wmv" | "flv"
        | "zip" | "tar" | "gz" | "tgz" | "bz2" | "xz" | "zst" | "7z" | "rar" | "jar" | "war"
        | "apk" | "iso" | "dmg" | "img" | "exe" | "dll" | "so" | "dylib" | "o" | "a" | "lib"
        | "class" | "pyc" | "wasm" | "bin" | "sqlite" | "sqlite3" | "db" | "doc" | "dot"
        | "xls" | "ppt" | "mobi" | "ttf" | "otf" | "woff" | "woff2" | "eot" => {
            return Class::Unsupported
        }
        _ => return Class::Unknown,
    };
    Class::Kind(kind)
}

/// Well-known extension-less (or oddly named) source files.
fn is_code_file_name(name: &str) -> bool {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    matches!(
        base,
        "Makefile"
            | "makefile"
            | "GNUmakefile"
            | "Dockerfile"
            | "Containerfile"
            | "Rakefile"
            | "Gemfile"
            | "Justfile"
            | "justfile"
            | "Vagrantfile"
            | "Jenkinsfile"
            | "Procfile"
            | "BUILD"
            | "WORKSPACE"
    )
}

/// The document type that the content implies, for names that do not say.
/// `None` means "treat as plain text (if it is text)".
fn sniff(bytes: &[u8]) -> Option<DocKind> {
    if bytes.starts_with(b"%PDF-") {
        return Some(DocKind::Pdf);
    }
    if image::is_image(bytes) {
        return Some(DocKind::Image);
    }
    if bytes.starts_with(b"PK\x03\x04") {
        // Any other zip falls through to the binary check.
        return sniff_zip(bytes);
    }
    if bytes.starts_with(b"{\\rtf") {
        return Some(DocKind::Rtf);
    }
    let head = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    let head = &head[..head.len().min(512)];
    let start = head
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(head.len());
    let head = &head[start..];
    let starts_with_ci =
        |p: &[u8]| head.len() >= p.len() && head[..p.len()].eq_ignore_ascii_case(p);
    if starts_with_ci(b"<!doctype html") || starts_with_ci(b"<html") {
        return Some(DocKind::Html);
    }
    None
}

/// The document kind of a zip: by its `mimetype` member (OpenDocument, EPUB), else by the
/// main part it holds (DOCX, XLSX, PPTX).
fn sniff_zip(bytes: &[u8]) -> Option<DocKind> {
    use std::io::Read;
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).ok()?;
    if let Ok(entry) = archive.by_name("mimetype") {
        let mut mimetype = String::new();
        if entry.take(256).read_to_string(&mut mimetype).is_ok() {
            let mimetype = mimetype.trim();
            if mimetype == "application/epub+zip" {
                return Some(DocKind::Epub);
            }
            if let Some(kind) = office::odf_kind(mimetype) {
                return Some(kind);
            }
        }
    }
    [
        ("word/document.xml", DocKind::Docx),
        ("xl/workbook.xml", DocKind::Xlsx),
        ("ppt/presentation.xml", DocKind::Pptx),
    ]
    .into_iter()
    .find(|(part, _)| archive.index_for_name(part).is_some())
    .map(|(_, kind)| kind)
}

/// Seconds since the epoch of an ISO 8601 / W3CDTF date as documents write it
/// ("2024-03-01", "2024-03-01T10:20:30Z", "2024-03-01T10:20:30.5+02:00"); a time without a
/// zone is read as UTC.
pub fn parse_iso_date(s: &str) -> Option<i64> {
    let s = s.trim();
    let num = |a: usize, b: usize| -> Option<i64> {
        let part = s.get(a..b)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, m, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    if s.len() > 10 && s.as_bytes().get(4) != Some(&b'-') {
        return None;
    }
    if s.len() <= 10 {
        return civil_to_epoch(y, m, d, 0, 0, 0);
    }
    if !matches!(s.as_bytes()[10], b'T' | b't' | b' ') {
        return None;
    }
    let (h, mi) = (num(11, 13)?, num(14, 16)?);
    let mut rest = &s[16.min(s.len())..];
    let mut sec = 0;
    if let Some(r) = rest.strip_prefix(':') {
        sec = r.get(..2)?.parse().ok()?;
        rest = &r[2..];
    }
    if let Some(r) = rest.strip_prefix('.') {
        rest = r.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let z = rest[1..].replace(':', "");
            let (oh, om): (i64, i64) = (
                z.get(..2)?.parse().ok()?,
                z.get(2..4).unwrap_or("0").parse().ok()?,
            );
            sign * (oh * 3600 + om * 60)
        }
    };
    Some(civil_to_epoch(y, m, d, h, mi, sec)? - offset)
}

/// The longest valid UTF-8 prefix of `bytes` within `max` bytes, or
/// [`ExtractError::Binary`] if the content is not UTF-8 text.
fn verbatim_text(bytes: &[u8], max: usize) -> Result<&str, ExtractError> {
    let body = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    if body[..body.len().min(SNIFF_BYTES)].contains(&0) {
        return Err(ExtractError::Binary);
    }
    let kept = &bytes[..bytes.len().min(max)];
    match std::str::from_utf8(kept) {
        Ok(s) => Ok(s),
        // Only an incomplete last character, cut by the budget or by the
        // end of the file: keep what precedes it (still a file prefix).
        Err(e) if e.error_len().is_none() => {
            Ok(std::str::from_utf8(&kept[..e.valid_up_to()]).expect("valid prefix"))
        }
        Err(_) => Err(ExtractError::Binary),
    }
}

/// Trims trailing spaces from each line, collapses runs of blank lines to
/// one and trims the whole.
fn tidy_lines(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank_run = 0;
    for line in s.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_run > 0 { "\n\n" } else { "\n" });
        }
        blank_run = 0;
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::html::{decode_entities, html_title};
    use super::*;
    use std::io::Write;

    const MAX: usize = 1 << 20;

    fn ok(name: &str, bytes: &[u8]) -> Extracted {
        extract(name, bytes, MAX).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    // ---- plain text family ------------------------------------------------

    #[test]
    fn text_family_is_verbatim_and_kind_by_extension() {
        let cases = [
            ("notes.txt", DocKind::Text),
            ("server.LOG", DocKind::Text),
            ("index.rst", DocKind::Text),
            ("README.md", DocKind::Markdown),
            ("post.Markdown", DocKind::Markdown),
            ("src/main.rs", DocKind::Code),
            ("a/b/script.PY", DocKind::Code),
            ("app.ts", DocKind::Code),
            ("main.go", DocKind::Code),
            ("x.c", DocKind::Code),
            ("x.h", DocKind::Code),
            ("x.cpp", DocKind::Code),
            ("X.java", DocKind::Code),
            ("run.sh", DocKind::Code),
            ("Cargo.toml", DocKind::Code),
            ("ci.yaml", DocKind::Code),
            ("ci.yml", DocKind::Code),
            ("q.sql", DocKind::Code),
            ("r.rb", DocKind::Code),
            ("data.json", DocKind::Json),
            ("table.CSV", DocKind::Csv),
            ("table.tsv", DocKind::Csv),
            ("Makefile", DocKind::Code),
            ("dir/Dockerfile", DocKind::Code),
            ("no_extension", DocKind::Text),
            (".bashrc", DocKind::Text),
            ("weird.zzzz", DocKind::Text),
        ];
        let content = "line one\r\n\tline two — ünïcødé ✓ 🦀\n\nend {\"k\": [1, 2]}\n";
        for (name, kind) in cases {
            let x = ok(name, content.as_bytes());
            assert_eq!(x.kind, kind, "{name}");
            assert_eq!(x.text, content, "{name}");
            assert!(x.offsets_are_file_bytes, "{name}");
        }
    }

    #[test]
    fn json_is_kept_as_is_even_if_invalid() {
        let raw = "{ \"a\" :1,\n  \"b\": [true, null]  ";
        let x = ok("x.json", raw.as_bytes());
        assert_eq!(x.kind, DocKind::Json);
        assert_eq!(x.text, raw);
    }

    #[test]
    fn bom_is_kept_so_offsets_are_file_bytes() {
        let bytes = b"\xEF\xBB\xBFhello world\n";
        let x = ok("bom.txt", bytes);
        assert_eq!(x.text.as_bytes(), bytes);
        assert!(x.offsets_are_file_bytes);
        let at = x.text.find("world").unwrap();
        assert_eq!(&bytes[at..at + 5], b"world");
    }

    #[test]
    fn empty_file_is_empty_text() {
        let x = ok("empty.txt", b"");
        assert_eq!(x.text, "");
        assert_eq!(x.kind, DocKind::Text);
        let x = ok("empty", b"");
        assert_eq!(x.text, "");
    }

    #[test]
    fn nul_bytes_or_invalid_utf8_are_binary() {
        for name in [
            "a.txt",
            "a.rs",
            "noext",
            "a.unknownext",
            "a.json",
            "a.csv",
            "a.md",
        ] {
            assert_eq!(
                extract(name, b"abc\0def", MAX),
                Err(ExtractError::Binary),
                "{name}"
            );
            assert_eq!(
                extract(name, b"caf\xe9 au lait", MAX),
                Err(ExtractError::Binary),
                "{name}: Latin-1 is not guessed"
            );
        }
        // UTF-16 text has NULs: binary too.
        let utf16: Vec<u8> = "\u{feff}hi there"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        assert_eq!(extract("u16.txt", &utf16, MAX), Err(ExtractError::Binary));
        // BOM followed by NUL.
        assert_eq!(
            extract("x.txt", b"\xEF\xBB\xBF\0\0", MAX),
            Err(ExtractError::Binary)
        );
        // Invalid UTF-8 after the sniffed head is caught too.
        let mut late = "ok ".repeat(5000).into_bytes();
        late.extend_from_slice(b"\xff\xfe tail");
        assert_eq!(extract("late.txt", &late, MAX), Err(ExtractError::Binary));
        // A NUL past the sniffed head is valid UTF-8 and kept verbatim.
        let mut nul_late = "ok ".repeat(5000).into_bytes();
        nul_late.extend_from_slice(b"\0tail");
        assert_eq!(ok("late.txt", &nul_late).text.as_bytes(), &nul_late[..]);
    }

    #[test]
    fn non_document_zip_without_extension_is_binary() {
        let zip = build_zip(&[("hello.txt", b"hello".as_slice())]);
        assert_eq!(extract("archive", &zip, MAX), Err(ExtractError::Binary));
    }

    #[test]
    fn known_binary_extensions_are_unsupported() {
        for (name, ext) in [
            ("song.MP3", "mp3"),
            ("a/b.gif", "gif"),
            ("x.zip", "zip"),
            ("old.doc", "doc"),
            ("sheet.XLS", "xls"),
            ("deck.ppt", "ppt"),
        ] {
            let err = extract(name, b"whatever", MAX).unwrap_err();
            assert_eq!(err, ExtractError::Unsupported(ext.to_string()));
            assert!(err.to_string().contains(&format!("'.{ext}'")), "{err}");
        }
        assert_eq!(kind_from_name("photo.gif"), None);
        assert_eq!(kind_from_name("a.MD"), Some(DocKind::Markdown));
        assert_eq!(kind_from_name("noext"), None);
    }

    #[test]
    fn too_large_is_refused_before_parsing() {
        let bytes = vec![b'a'; 64 * 10 + 1];
        assert_eq!(
            extract("big.txt", &bytes, 10),
            Err(ExtractError::TooLarge {
                size: 641,
                limit: 640
            })
        );
        let msg = extract("big.txt", &bytes, 10).unwrap_err().to_string();
        assert!(msg.contains("641") && msg.contains("640"), "{msg}");
        // Exactly at the limit: truncated, not refused.
        let x = ok_with("big.txt", &bytes[..640], 10);
        assert_eq!(x.text, "a".repeat(10));
        // A PDF over the limit is refused too (never parsed).
        assert!(matches!(
            extract("big.pdf", &bytes, 10),
            Err(ExtractError::TooLarge { .. })
        ));
    }

    fn ok_with(name: &str, bytes: &[u8], max: usize) -> Extracted {
        extract(name, bytes, max).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn truncation_is_on_a_char_boundary() {
        // "é" is 2 bytes, "🦀" 4: cut budgets fall inside them.
        let s = "aé🦀b".repeat(10);
        // (A budget under 2 would refuse the 80-byte file as too large.)
        for max in 2..s.len() + 2 {
            let x = ok_with("t.txt", s.as_bytes(), max);
            assert!(x.text.len() <= max);
            assert!(s.starts_with(&x.text));
            // The longest such prefix.
            let mut best = max.min(s.len());
            while !s.is_char_boundary(best) {
                best -= 1;
            }
            assert_eq!(x.text.len(), best, "max {max}");
        }
        let mut owned = String::from("héllo");
        truncate_on_char_boundary(&mut owned, 2);
        assert_eq!(owned, "h");
    }

    #[test]
    fn file_ending_in_a_partial_char_keeps_the_valid_prefix() {
        let mut bytes = "crab ".as_bytes().to_vec();
        bytes.extend_from_slice(&"🦀".as_bytes()[..2]);
        assert_eq!(ok("cut.txt", &bytes).text, "crab ");
    }

    #[test]
    fn doc_kind_names_round_trip() {
        for k in DocKind::ALL {
            assert_eq!(DocKind::parse(k.as_str()), Some(k));
            assert_eq!(k.to_string(), k.as_str());
        }
        assert_eq!(DocKind::parse("nope"), None);
        assert!(DocKind::Code.is_verbatim());
        assert!(!DocKind::Pdf.is_verbatim());
    }

    #[test]
    fn error_messages_are_actionable() {
        assert!(ExtractError::Binary.to_string().contains("binary"));
        let e = ExtractError::Failed("boom".into()).to_string();
        assert!(e.contains("boom") && e.contains("failed"), "{e}");
    }

    // ---- HTML -------------------------------------------------------------

    const PAGE: &str = r#"<!DOCTYPE html>
<html><head>
  <title>Quarterly  Report &amp; Plans</title>
  <style>body { color: red; } .secretstyle {}</style>
  <script>var secretScript = "do not index";</script>
</head>
<body>
  <h1>Revenue Overview</h1>
  <p>Sales grew by <b>12%</b> in the <a href="/q3">third quarter</a>.</p>
  <script>console.log("also hidden")</script>
  <ul><li>First item</li><li>Second item</li></ul>
  <p>Caf&eacute; &lt;tags&gt; &#x1F980;</p>
</body></html>"#;

    #[test]
    fn html_keeps_title_and_headings_and_drops_script_and_style() {
        let x = ok("page.HTML", PAGE.as_bytes());
        assert_eq!(x.kind, DocKind::Html);
        assert!(!x.offsets_are_file_bytes);
        let t = &x.text;
        assert!(t.starts_with("Quarterly Report & Plans"), "{t}");
        assert!(t.contains("Revenue Overview"), "{t}");
        assert!(t.contains("Sales grew by 12% in the third quarter."), "{t}");
        assert!(t.contains("\nFirst item\nSecond item\n"), "{t}");
        assert!(t.contains("Café <tags> 🦀"), "{t}");
        for hidden in [
            "secretScript",
            "do not index",
            "color: red",
            "also hidden",
            "<p>",
            "[",
            "# ",
            "*",
        ] {
            assert!(!t.contains(hidden), "{hidden} leaked into {t}");
        }
    }

    #[test]
    fn html_is_sniffed_without_extension_and_htm_works() {
        let x = ok("saved_page", PAGE.as_bytes());
        assert_eq!(x.kind, DocKind::Html);
        assert!(x.text.contains("Revenue Overview"));
        let x = ok("frag.htm", b"<p>just a <i>fragment</i></p>");
        assert_eq!(x.kind, DocKind::Html);
        assert_eq!(x.text, "just a fragment");
    }

    #[test]
    fn html_long_paragraph_is_not_hard_wrapped_and_is_truncated() {
        let para = "word ".repeat(400);
        let html = format!("<html><body><p>{para}</p></body></html>");
        let x = ok("long.html", html.as_bytes());
        assert_eq!(x.text.lines().count(), 1, "{}", x.text);
        let x = ok_with("long.html", html.as_bytes(), 99);
        assert_eq!(x.text.len(), 99);
    }

    #[test]
    fn html_entities_in_title() {
        assert_eq!(
            decode_entities("a &amp; b &#65;&#x42; &bogus; & c"),
            "a & b AB &bogus; & c"
        );
        assert_eq!(
            html_title(b"<html><head><TITLE id=x>\n Hi\tthere </TITLE>"),
            Some("Hi there".into())
        );
        assert_eq!(html_title(b"<titles>no</titles>"), None);
    }

    // ---- DOCX -------------------------------------------------------------

    pub(super) fn build_zip(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in files {
            w.start_file(*name, opts).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    pub(super) fn build_docx(body: &str) -> Vec<u8> {
        let content_types = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>
</Types>"#;
        let rels = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>
</Relationships>"#;
        let document = format!(
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}<w:sectPr/></w:body></w:document>"#
        );
        build_zip(&[
            ("[Content_Types].xml", content_types.as_bytes()),
            ("_rels/.rels", rels.as_bytes()),
            ("word/document.xml", document.as_bytes()),
        ])
    }

    const DOCX_BODY: &str = concat!(
        r#"<w:p><w:pPr><w:pStyle w:val="Heading1"/><w:tabs><w:tab w:val="left" w:pos="720"/></w:tabs></w:pPr>"#,
        r#"<w:r><w:t>Project </w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t>Aurora</w:t></w:r></w:p>"#,
        r#"<w:p><w:r><w:t xml:space="preserve">Name:</w:t></w:r><w:r><w:tab/><w:t>Value &amp; more</w:t></w:r></w:p>"#,
        r#"<w:p/>"#,
        r#"<w:p><w:r><w:t>Line one</w:t><w:br/><w:t>Line two &#x1F980; ünï</w:t></w:r>"#,
        r#"<w:del><w:r><w:delText>deleted words</w:delText></w:r></w:del><w:r><w:instrText>PAGE</w:instrText></w:r></w:p>"#,
    );

    #[test]
    fn docx_text_runs_paragraphs_tabs_and_breaks() {
        let docx = build_docx(DOCX_BODY);
        let x = ok("Report.DOCX", &docx);
        assert_eq!(x.kind, DocKind::Docx);
        assert!(!x.offsets_are_file_bytes);
        assert_eq!(
            x.text,
            "Project Aurora\nName:\tValue & more\n\nLine one\nLine two 🦀 ünï"
        );
    }

    #[test]
    fn docx_is_sniffed_without_extension_and_truncated() {
        let docx = build_docx(DOCX_BODY);
        let x = ok("attachment", &docx);
        assert_eq!(x.kind, DocKind::Docx);
        assert!(x.text.starts_with("Project Aurora"));
        // (The zip must stay under 64 x the budget.)
        let x = ok_with("r.docx", &docx, 30);
        assert_eq!(x.text, "Project Aurora\nName:\tValue & m");
        // Budget inside a multi-byte character.
        let docx = build_docx("<w:p><w:r><w:t>ab🦀cd</w:t></w:r></w:p>");
        assert_eq!(ok_with("r.docx", &docx, 30).text, "ab🦀cd");
        assert_eq!(ok_with("r.docx", &docx, 20).text, "ab🦀cd");
        let long = format!("<w:p><w:r><w:t>{}</w:t></w:r></w:p>", "ab🦀".repeat(100));
        let docx = build_docx(&long);
        let x = ok_with("r.docx", &docx, 34);
        assert_eq!(x.text, "ab🦀".repeat(5) + "ab");
    }

    #[test]
    fn docx_broken_inputs_fail_cleanly() {
        let e = extract("bad.docx", b"this is not a zip", MAX).unwrap_err();
        assert!(matches!(e, ExtractError::Failed(_)), "{e}");
        assert!(e.to_string().contains("zip"), "{e}");

        let no_doc = build_zip(&[("word/other.xml", b"<x/>".as_slice())]);
        let e = extract("nodoc.docx", &no_doc, MAX).unwrap_err();
        assert!(e.to_string().contains("word/document.xml"), "{e}");

        let bad_xml = build_zip(&[(
            "word/document.xml",
            b"<w:document><w:body><w:p><w:t>hi</w:x></w:body>".as_slice(),
        )]);
        let e = extract("badxml.docx", &bad_xml, MAX).unwrap_err();
        assert!(matches!(e, ExtractError::Failed(_)), "{e}");

        // Truncated zip.
        let docx = build_docx(DOCX_BODY);
        let e = extract("trunc.docx", &docx[..docx.len() / 2], MAX).unwrap_err();
        assert!(matches!(e, ExtractError::Failed(_)), "{e}");
    }

    // ---- PDF --------------------------------------------------------------

    /// A minimal one-page PDF showing `text` in Helvetica, with a correct
    /// cross-reference table.
    fn build_pdf(text: &str) -> Vec<u8> {
        build_pdf_content(&format!("BT\n/F1 24 Tf\n72 720 Td\n({text}) Tj\nET\n"))
    }

    /// The same PDF with a given page content stream.
    fn build_pdf_content(content: &str) -> Vec<u8> {
        let objects = [
            "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
             /Resources << /Font << /F1 5 0 R >> >> >>"
                .to_string(),
            format!(
                "<< /Length {} >>\nstream\n{content}endstream",
                content.len()
            ),
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
                .to_string(),
        ];
        let mut pdf = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
        let mut offsets = Vec::new();
        for (i, body) in objects.iter().enumerate() {
            offsets.push(pdf.len());
            pdf.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
        }
        let xref_at = pdf.len();
        let mut xref = format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
        for off in offsets {
            xref.push_str(&format!("{off:010} 00000 n \n"));
        }
        pdf.extend_from_slice(xref.as_bytes());
        pdf.extend_from_slice(
            format!(
                "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref_at}\n%%EOF\n",
                objects.len() + 1
            )
            .as_bytes(),
        );
        pdf
    }

    #[test]
    fn pdf_hello_world() {
        let pdf = build_pdf("Hello PDF world");
        // Each xref entry is 20 bytes and points at its "N 0 obj".
        let xref = pdf.windows(5).position(|w| w == b"xref\n").unwrap();
        let table = std::str::from_utf8(&pdf[xref..]).unwrap();
        for (i, line) in table.lines().skip(3).take(5).enumerate() {
            let off: usize = line[..10].parse().unwrap();
            assert!(pdf[off..].starts_with(format!("{} 0 obj", i + 1).as_bytes()));
        }
        let startxref: usize = table.lines().rev().nth(1).unwrap().parse().unwrap();
        assert_eq!(startxref, xref);
        let x = ok("hello.pdf", &pdf);
        assert_eq!(x.kind, DocKind::Pdf);
        assert!(!x.offsets_are_file_bytes);
        assert_eq!(x.text, "Hello PDF world");
        // Sniffed by magic without an extension.
        let x = ok("scan_0001", &pdf);
        assert_eq!(x.kind, DocKind::Pdf);
        assert_eq!(x.text, "Hello PDF world");
        // And truncated to the budget.
        assert_eq!(ok_with("hello.pdf", &pdf, 11).text, "Hello PDF w");
    }

    #[test]
    fn pdf_parser_panics_become_failed() {
        // pdf-extract panics on a font that the page does not define, and
        // on a text operator without its operand.
        for content in [
            "BT\n/F2 24 Tf\n72 720 Td\n(x) Tj\nET\n",
            "BT\n/F1 Tf\n(x) Tj\nET\n",
        ] {
            match extract("crash.pdf", &build_pdf_content(content), MAX) {
                Err(ExtractError::Failed(msg)) => assert!(msg.contains("crashed"), "{msg}"),
                // Page by page, a page whose text layer crashes the parser is left to OCR.
                Ok(x) if x.ocr == [OcrPart::PdfPage(1)] => {}
                other => panic!("expected a caught panic, got {other:?}"),
            }
        }
    }

    #[test]
    fn broken_pdfs_fail_without_panicking() {
        let pdf = build_pdf("Hello PDF world");
        let inputs: Vec<Vec<u8>> = vec![
            b"%PDF-1.4\nnot really a pdf".to_vec(),
            b"garbage".to_vec(),
            Vec::new(),
            pdf[..pdf.len() / 2].to_vec(),
            pdf.iter()
                .map(|b| if *b == b'R' { b'Q' } else { *b })
                .collect(),
        ];
        for (i, bytes) in inputs.iter().enumerate() {
            match extract("broken.pdf", bytes, MAX) {
                Err(ExtractError::Failed(msg)) => assert!(msg.contains("PDF"), "{i}: {msg}"),
                // lopdf can recover some damage; then any text will do.
                Ok(x) => assert_eq!(x.kind, DocKind::Pdf),
                Err(e) => panic!("{i}: unexpected {e:?}"),
            }
        }
    }
}

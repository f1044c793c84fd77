//! RTF: a small, bounded parser of our own. There is no well-kept RTF crate (the few on
//! crates.io are unmaintained or pull in a large tree), and text extraction needs little:
//! groups, control words, a few destinations.
//!
//! What it does: `\par`, `\line`, `\sect`, `\page`, `\row` → newline; `\tab`, `\cell` → tab;
//! `\'hh` and 8-bit characters are bytes of the `\ansicpgN` code page (Windows-1252 by
//! default; the double-byte pages 932, 936, 949 and 950 pair them; `\fcharset` of single
//! fonts is not followed); `\uN` is a Unicode character (negative N + 65536), after
//! which the `\ucN` (default 1) fallback characters are skipped; `\~` a space, `\_` a hyphen,
//! `\emdash`, `\bullet`, the quote words… as their characters; `\binN` skips N raw bytes.
//! `{\info{\title …}{\author …}{\subject …}{\creatim\yrY\moM\dyD\hrH\minM}}` → metadata.
//!
//! Dropped: destinations marked `\*` (unknown to a reader by definition), the font, colour,
//! style, list and revision tables, pictures and objects (binary as hex), field instructions
//! (the field result is kept), and page headers and footers (repeated boilerplate on every
//! page: not worth indexing as document text, and they would repeat in every page's text).
//!
//! Bounds: no recursion; groups nested deeper than [`MAX_DEPTH`] share the state of the
//! deepest kept one (so a file of 1,000,000 `{` costs one counter), and the work is linear in
//! the input; text stops at the budget.

use super::{civil_to_epoch, DocKind, DocMeta, ExtractError, Extracted, TextBuilder};

/// Group states kept on the stack; deeper groups are counted only.
const MAX_DEPTH: usize = 256;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dest {
    /// Document text.
    Text,
    /// Dropped.
    Skip,
    /// Inside `\info`: only its sub-destinations matter.
    Info,
    Title,
    Author,
    Subject,
    Created,
}

#[derive(Clone, Copy)]
struct Group {
    dest: Dest,
    /// Fallback characters after `\uN`.
    uc: usize,
}

/// Windows-1252 bytes 0x80..=0x9F (the rest of the range is Latin-1).
const CP1252_HIGH: [char; 32] = [
    '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž', '\u{8f}',
    '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}', 'ž', 'Ÿ',
];

fn cp1252(b: u8) -> char {
    match b {
        0x80..=0x9f => CP1252_HIGH[(b - 0x80) as usize],
        _ => b as char,
    }
}

pub(super) fn extract_rtf(bytes: &[u8], max_text_bytes: usize) -> Result<Extracted, ExtractError> {
    if !bytes.starts_with(b"{\\rtf") {
        return Err(ExtractError::Failed(
            "RTF: the file does not start with {\\rtf (not RTF, or damaged)".into(),
        ));
    }
    let mut p = Parser {
        tb: TextBuilder::new(max_text_bytes),
        stack: vec![Group {
            dest: Dest::Text,
            uc: 1,
        }],
        overflow: 0,
        skip_fallback: 0,
        cp: encoding_rs::WINDOWS_1252,
        raw: Vec::new(),
        title: String::new(),
        author: String::new(),
        subject: String::new(),
        created: [0; 5],
        pending: String::new(),
    };
    p.run(bytes);
    p.flush_raw();
    p.flush();
    let (y, mo, d, h, mi) = (
        p.created[0],
        p.created[1],
        p.created[2],
        p.created[3],
        p.created[4],
    );
    let meta = DocMeta {
        title: Some(p.title.trim().to_string()).filter(|s| !s.is_empty()),
        author: Some(p.author.trim().to_string()).filter(|s| !s.is_empty()),
        subject: Some(p.subject.trim().to_string()).filter(|s| !s.is_empty()),
        date: (y > 0)
            .then(|| civil_to_epoch(y, mo.max(1), d.max(1), h, mi, 0))
            .flatten(),
        ..DocMeta::default()
    };
    let (text, sections) = p.tb.finish();
    Ok(Extracted {
        text,
        kind: DocKind::Rtf,
        sections,
        meta,
        ..Extracted::default()
    })
}

struct Parser {
    tb: TextBuilder,
    stack: Vec<Group>,
    /// Groups open beyond [`MAX_DEPTH`].
    overflow: usize,
    /// Fallback characters still to skip after a `\uN`.
    skip_fallback: usize,
    /// The code page of `\'hh` bytes and 8-bit characters (`\ansicpgN`; Windows-1252 by
    /// default), and such bytes not decoded yet (a double-byte code page pairs them).
    cp: &'static encoding_rs::Encoding,
    raw: Vec<u8>,
    title: String,
    author: String,
    subject: String,
    /// \creatim: year, month, day, hour, minute.
    created: [i64; 5],
    /// Text not yet pushed to the builder (pushed in pieces, not per character).
    pending: String,
}

impl Parser {
    fn top(&self) -> Group {
        *self.stack.last().expect("the root group is never popped")
    }

    fn top_mut(&mut self) -> &mut Group {
        self.stack
            .last_mut()
            .expect("the root group is never popped")
    }

    fn flush(&mut self) {
        if !self.pending.is_empty() {
            self.tb.push(&self.pending);
            self.pending.clear();
        }
    }

    /// A character of the current destination (fallback characters after `\uN` skipped).
    /// An 8-bit byte of the document's code page.
    fn byte(&mut self, b: u8) {
        if self.skip_fallback > 0 {
            self.skip_fallback -= 1;
        } else if self.cp == encoding_rs::WINDOWS_1252 {
            self.emit_always(cp1252(b));
        } else {
            self.raw.push(b);
        }
    }

    /// Decodes the bytes gathered by [`Parser::byte`].
    fn flush_raw(&mut self) {
        if self.raw.is_empty() {
            return;
        }
        let raw = std::mem::take(&mut self.raw);
        let (text, _) = self.cp.decode_without_bom_handling(&raw);
        for c in text.chars() {
            self.emit_always(c);
        }
    }

    fn emit(&mut self, c: char) {
        if self.skip_fallback > 0 {
            self.skip_fallback -= 1;
            return;
        }
        self.emit_always(c);
    }

    fn emit_always(&mut self, c: char) {
        match self.top().dest {
            Dest::Text => {
                self.pending.push(c);
                if self.pending.len() >= 4096 {
                    self.flush();
                }
            }
            Dest::Title => self.title.push(c),
            Dest::Author => self.author.push(c),
            Dest::Subject => self.subject.push(c),
            Dest::Skip | Dest::Info | Dest::Created => {}
        }
    }

    fn run(&mut self, b: &[u8]) {
        let mut i = 0;
        while i < b.len() {
            if self.tb.full() || self.pending.len() + self.tb.text.len() > usize::MAX / 2 {
                return;
            }
            if self.pending.len() >= 4096 {
                self.flush();
                if self.tb.full() {
                    return;
                }
            }
            match b[i] {
                b'{' => {
                    self.flush_raw();
                    self.skip_fallback = 0;
                    if self.stack.len() < MAX_DEPTH {
                        let g = self.top();
                        self.stack.push(g);
                    } else {
                        self.overflow += 1;
                    }
                    i += 1;
                }
                b'}' => {
                    self.flush_raw();
                    self.skip_fallback = 0;
                    if self.overflow > 0 {
                        self.overflow -= 1;
                    } else if self.stack.len() > 1 {
                        self.stack.pop();
                    }
                    i += 1;
                }
                b'\\' => {
                    // Consecutive \'hh bytes may make one character.
                    if b.get(i + 1) != Some(&b'\'') {
                        self.flush_raw();
                    }
                    i = self.control(b, i + 1)
                }
                b'\r' | b'\n' => i += 1,
                c if c >= 0x80 => {
                    self.byte(c);
                    i += 1;
                }
                c => {
                    self.flush_raw();
                    self.emit(c as char);
                    i += 1;
                }
            }
        }
    }

    /// A control word or symbol starting after its backslash at `i`; returns where the next
    /// token starts.
    fn control(&mut self, b: &[u8], mut i: usize) -> usize {
        let Some(&c) = b.get(i) else {
            return i;
        };
        if !c.is_ascii_alphabetic() {
            // Control symbols.
            i += 1;
            match c {
                b'\'' => {
                    let hex = |c: u8| (c as char).to_digit(16);
                    if let (Some(h), Some(l)) = (
                        b.get(i).copied().and_then(hex),
                        b.get(i + 1).copied().and_then(hex),
                    ) {
                        self.byte((h * 16 + l) as u8);
                        return i + 2;
                    }
                }
                b'\\' | b'{' | b'}' => self.emit(c as char),
                b'~' => self.emit(' '),
                b'_' => self.emit('-'),
                b'*' => self.top_mut().dest = Dest::Skip,
                b'\r' | b'\n' => self.emit_always('\n'),
                _ => {} // \- (optional hyphen), \: and others
            }
            return i;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_alphabetic() && i - start < 32 {
            i += 1;
        }
        let word = &b[start..i];
        let num_start = i;
        if i < b.len() && b[i] == b'-' {
            i += 1;
        }
        while i < b.len() && b[i].is_ascii_digit() && i - num_start < 11 {
            i += 1;
        }
        let param: Option<i64> = std::str::from_utf8(&b[num_start..i])
            .ok()
            .and_then(|s| s.parse().ok());
        // A space delimiter belongs to the control word.
        if i < b.len() && b[i] == b' ' {
            i += 1;
        }
        self.word(word, param, b, &mut i);
        i
    }

    fn word(&mut self, word: &[u8], param: Option<i64>, b: &[u8], i: &mut usize) {
        let dest = self.top().dest;
        match word {
            b"par" | b"line" | b"sect" | b"page" | b"row" => self.emit_always('\n'),
            b"tab" | b"cell" => self.emit_always('\t'),
            b"emdash" => self.emit_always('—'),
            b"endash" => self.emit_always('–'),
            b"bullet" => self.emit_always('•'),
            b"lquote" => self.emit_always('‘'),
            b"rquote" => self.emit_always('’'),
            b"ldblquote" => self.emit_always('“'),
            b"rdblquote" => self.emit_always('”'),
            b"emspace" | b"enspace" | b"qmspace" => self.emit_always(' '),
            b"u" => {
                if let Some(n) = param {
                    let n = if n < 0 { n + 65536 } else { n };
                    let c = u32::try_from(n)
                        .ok()
                        .and_then(char::from_u32)
                        .unwrap_or('\u{fffd}');
                    self.emit_always(c);
                    self.skip_fallback = self.top().uc;
                }
                return;
            }
            b"ansicpg" => {
                if let Some(cp) = param.and_then(codepage) {
                    self.cp = cp;
                }
            }
            b"uc" => {
                self.top_mut().uc = param.unwrap_or(1).clamp(0, 16) as usize;
            }
            b"bin" => {
                // Raw binary data of the given length.
                let n = param.unwrap_or(0).max(0) as usize;
                *i = i.saturating_add(n).min(b.len());
            }
            b"info" => self.top_mut().dest = Dest::Info,
            // The first of each (LibreOffice writes \author twice).
            b"title" if dest == Dest::Info => self.top_mut().dest = first(&self.title, Dest::Title),
            b"author" if dest == Dest::Info => {
                self.top_mut().dest = first(&self.author, Dest::Author)
            }
            b"subject" if dest == Dest::Info => {
                self.top_mut().dest = first(&self.subject, Dest::Subject)
            }
            b"creatim" if dest == Dest::Info => self.top_mut().dest = Dest::Created,
            b"yr" | b"mo" | b"dy" | b"hr" | b"min" if dest == Dest::Created => {
                let k = match word {
                    b"yr" => 0,
                    b"mo" => 1,
                    b"dy" => 2,
                    b"hr" => 3,
                    _ => 4,
                };
                self.created[k] = param.unwrap_or(0);
            }
            // Other \info fields (\operator, \revtim, …): their text is dropped with the
            // rest of \info that is not a field kept.
            _ if dest == Dest::Info => {}
            _ if is_destination(word) => self.top_mut().dest = Dest::Skip,
            _ => {}
        }
        self.skip_fallback = 0;
    }
}

/// The encoding of a Windows code page number.
fn codepage(n: i64) -> Option<&'static encoding_rs::Encoding> {
    use encoding_rs::*;
    Some(match n {
        874 => WINDOWS_874,
        932 => SHIFT_JIS,
        936 => GBK,
        949 => EUC_KR,
        950 => BIG5,
        1250 => WINDOWS_1250,
        1251 => WINDOWS_1251,
        1252 => WINDOWS_1252,
        1253 => WINDOWS_1253,
        1254 => WINDOWS_1254,
        1255 => WINDOWS_1255,
        1256 => WINDOWS_1256,
        1257 => WINDOWS_1257,
        1258 => WINDOWS_1258,
        10000 => MACINTOSH,
        65001 => UTF_8,
        _ => return None,
    })
}

/// `dest` for a metadata field not read yet, else skipped.
fn first(field: &str, dest: Dest) -> Dest {
    if field.trim().is_empty() {
        dest
    } else {
        Dest::Skip
    }
}

/// Destinations whose content is not document text (`listtext` and `pntext` are the list
/// numbers and bullets that a reader would compute itself).
fn is_destination(word: &[u8]) -> bool {
    matches!(
        word,
        b"fonttbl"
            | b"colortbl"
            | b"stylesheet"
            | b"listtable"
            | b"listoverridetable"
            | b"revtbl"
            | b"rsidtbl"
            | b"generator"
            | b"pict"
            | b"object"
            | b"objdata"
            | b"fldinst"
            | b"header"
            | b"headerl"
            | b"headerr"
            | b"headerf"
            | b"footer"
            | b"footerl"
            | b"footerr"
            | b"footerf"
            | b"filetbl"
            | b"themedata"
            | b"colorschememapping"
            | b"datastore"
            | b"latentstyles"
            | b"xmlnstbl"
            | b"pgdsctbl"
            | b"operator"
            | b"comment"
            | b"doccomm"
            | b"keywords"
            | b"company"
            | b"manager"
            | b"category"
            | b"bkmkstart"
            | b"listtext"
            | b"pntext"
            | b"bkmkend"
    )
}

#[cfg(test)]
mod tests {
    use super::super::{extract, DocKind, ExtractError};
    use std::time::Instant;

    const MAX: usize = 1 << 20;

    #[test]
    fn extract_rtf_text_escapes_and_meta() {
        let rtf = br#"{\rtf1\ansi\ansicpg1252\deff0{\fonttbl{\f0\fswiss Helvetica;}}{\colortbl;\red255\green0\blue0;}
{\stylesheet{\s0 Normal;}}{\info{\title The Heron Report}{\author Ada Lovelace}{\author Ada Lovelace}{\creatim\yr2024\mo3\dy1\hr10\min5}{\operator someone}}
{\header {\pard header words\par}}
{\*\generator Riched20 10.0;}\pard\plain\f0 Caf\'e9 cr\'e8me \u8364?uro and \uc2\u9731 xxsnow\par
Line\line two\tab tabbed \{braces\} \\ back\par
{\*\unknowndest hidden}{\pict\pngblip 89504e47}{\field{\*\fldinst HYPERLINK "x"}{\fldrslt linked words}}\par
\ldblquote quoted\rdblquote  \emdash  end}"#;
        let x = extract("a.rtf", rtf, MAX).unwrap();
        assert_eq!(x.kind, DocKind::Rtf);
        assert_eq!(
            x.text,
            "Café crème €uro and ☃snow\nLine\ntwo\ttabbed {braces} \\ back\nlinked words\n“quoted” — end"
        );
        assert_eq!(x.meta.title.as_deref(), Some("The Heron Report"));
        assert_eq!(x.meta.author.as_deref(), Some("Ada Lovelace"));
        assert_eq!(x.meta.date, super::civil_to_epoch(2024, 3, 1, 10, 5, 0));
        // Sniffed without an extension.
        assert_eq!(extract("noext", rtf, MAX).unwrap().kind, DocKind::Rtf);
        // Not RTF at all.
        let e = extract("b.rtf", b"hello", MAX).unwrap_err();
        assert!(
            matches!(&e, ExtractError::Failed(m) if m.contains("RTF")),
            "{e}"
        );
        // Truncated anywhere: no panic.
        for cut in 0..rtf.len() {
            let _ = extract("t.rtf", &rtf[..cut], MAX);
        }
        // The budget (the smallest that does not refuse the file as too large).
        let budget = rtf.len().div_ceil(64);
        let x = extract("a.rtf", rtf, budget).unwrap();
        assert!(
            x.text.len() <= budget && x.text.starts_with("Café"),
            "{}",
            x.text
        );
    }

    #[test]
    fn extract_rtf_code_pages() {
        // Cyrillic (1251), and Shift-JIS whose characters are two \'hh bytes.
        let x = extract(
            "c.rtf",
            br"{\rtf1\ansi\ansicpg1251 \'cf\'f0\'e8\'e2\'e5\'f2 world}",
            MAX,
        )
        .unwrap();
        assert_eq!(x.text, "Привет world");
        let x = extract(
            "j.rtf",
            br"{\rtf1\ansi\ansicpg932 \'93\'fa\'96\'7b ok}",
            MAX,
        )
        .unwrap();
        assert_eq!(x.text, "日本 ok");
        // A \u character's fallback bytes are skipped, not decoded.
        let x = extract("u.rtf", br"{\rtf1\ansicpg932\uc2 \u26085\'93\'fa!}", MAX).unwrap();
        assert_eq!(x.text, "日!");
    }

    #[test]
    fn extract_rtf_deep_nesting_is_bounded() {
        let mut rtf = b"{\\rtf1 ".to_vec();
        rtf.extend(std::iter::repeat_n(b'{', 1_000_000));
        rtf.extend_from_slice(b"deep words");
        rtf.extend(std::iter::repeat_n(b'}', 1_000_000));
        rtf.extend_from_slice(b" after}");
        let start = Instant::now();
        let x = extract("deep.rtf", &rtf, MAX).unwrap();
        assert!(start.elapsed().as_secs() < 5, "{:?}", start.elapsed());
        assert_eq!(x.text, "deep words after");
        // Unbalanced: only opening braces.
        let mut rtf = b"{\\rtf1 ".to_vec();
        rtf.extend(std::iter::repeat_n(b'{', 1_000_000));
        assert_eq!(extract("open.rtf", &rtf, MAX).unwrap().text, "");
        // A skipped destination deep in the nesting stays skipped beyond the kept depth.
        let mut rtf = b"{\\rtf1 {\\*\\x ".to_vec();
        rtf.extend(std::iter::repeat_n(b'{', 1000));
        rtf.extend_from_slice(b"hidden");
        rtf.extend(std::iter::repeat_n(b'}', 1001));
        rtf.extend_from_slice(b"shown}");
        assert_eq!(extract("skip.rtf", &rtf, MAX).unwrap().text, "shown");
    }
}

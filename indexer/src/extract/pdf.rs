//! PDF: `pdf-extract` page by page, in a thread of its own with a time limit; the document
//! info (title, author, creation date) as metadata; pages without a text layer listed for OCR.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{tidy_lines, DocMeta, ExtractError, Extracted, OcrLookup, OcrPart, TextBuilder};

/// How long the PDF parser may work on one file. The stable fuzz driver found damaged PDFs on
/// which lopdf loops without end; past this the file is reported as failed (or, if some pages
/// came out, indexed up to there with a warning) and the parser's thread is abandoned (it
/// costs a core until it ends or the process exits, never the indexer's progress).
const PDF_TIME_LIMIT: Duration = Duration::from_secs(20);

/// Pages read at most from one PDF: a 10,000-page file is indexed up to here (with a warning).
/// pdf-extract finds each page by walking the page tree, so reading n pages costs n².
pub const MAX_PDF_PAGES: u32 = 2_000;

/// Pages of one PDF sent to OCR at most (a scanned book costs hours of OCR: its first pages
/// are searchable, the rest is reported).
pub const MAX_OCR_PAGES: u32 = 300;

/// A page with fewer letters or digits than this has no usable text layer: OCR reads it.
const MIN_TEXT_LAYER_CHARS: usize = 16;

enum Msg {
    Meta { meta: DocMeta, pages: u32 },
    Page(u32, String),
    Done(Result<(), String>),
}

pub(super) fn extract_pdf(
    bytes: &[u8],
    max_text_bytes: usize,
    ocr: &dyn OcrLookup,
) -> Result<Extracted, ExtractError> {
    // PDF parsers meet hostile and broken files and can panic or loop: a panic here must cost
    // one file, never the indexer; a loop, one file and one thread.
    let (tx, rx) = mpsc::channel();
    let owned = bytes.to_vec();
    let budget = max_text_bytes;
    let spawned = std::thread::Builder::new()
        .name("peros-pdf".into())
        .stack_size(16 << 20)
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                parse(&owned, budget, &tx)
            }));
            let done = match r {
                Ok(r) => r,
                Err(panic) => Err(format!(
                    "PDF parser crashed on this file (damaged or unsupported PDF): {}",
                    panic_message(&panic)
                )),
            };
            let _ = tx.send(Msg::Done(done));
        });
    if let Err(e) = spawned {
        return Err(ExtractError::Failed(format!(
            "could not start the PDF parser: {e}"
        )));
    }

    let deadline = Instant::now() + PDF_TIME_LIMIT;
    let mut meta = DocMeta::default();
    let mut total_pages = 0u32;
    let mut pages: Vec<(u32, String)> = Vec::new();
    let mut warning = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Msg::Meta { meta: m, pages: n }) => {
                meta = m;
                total_pages = n;
            }
            Ok(Msg::Page(n, text)) => pages.push((n, text)),
            Ok(Msg::Done(Ok(()))) => break,
            Ok(Msg::Done(Err(e))) if pages.is_empty() => return Err(ExtractError::Failed(e)),
            Ok(Msg::Done(Err(e))) => {
                warning = Some(format!("indexed up to page {}: {e}", pages.len()));
                break;
            }
            Err(_) if pages.is_empty() => {
                return Err(ExtractError::Failed(format!(
                    "the PDF parser did not finish within {} s on this file (damaged or \
                     unsupported PDF); skipped",
                    PDF_TIME_LIMIT.as_secs()
                )))
            }
            Err(_) => {
                warning = Some(format!(
                    "indexed {} of {total_pages} pages: the parser's {} s limit for one file ran out",
                    pages.len(),
                    PDF_TIME_LIMIT.as_secs()
                ));
                break;
            }
        }
    }
    if warning.is_none() && total_pages > MAX_PDF_PAGES {
        warning = Some(format!(
            "indexed the first {MAX_PDF_PAGES} of {total_pages} pages (the per-file page limit)"
        ));
    }

    let mut tb = TextBuilder::new(max_text_bytes);
    let mut missing = Vec::new();
    let mut ocr_skipped = 0u32;
    for (n, text) in pages {
        if tb.full() {
            break;
        }
        tb.section(format!("page {n}"));
        let text = tidy_lines(&text);
        let letters = text.chars().filter(|c| c.is_alphanumeric()).count();
        if letters >= MIN_TEXT_LAYER_CHARS {
            tb.push(&text);
            continue;
        }
        let part = OcrPart::PdfPage(n);
        match ocr.recognised(part) {
            Some(t) => tb.push(t.trim()),
            None if (missing.len() as u32) < MAX_OCR_PAGES => {
                tb.push(&text);
                missing.push(part);
            }
            None => {
                tb.push(&text);
                ocr_skipped += 1;
            }
        }
    }
    if ocr_skipped > 0 {
        let w = format!("{ocr_skipped} pages without text were not sent to OCR (the per-file limit is {MAX_OCR_PAGES})");
        warning = Some(match warning {
            Some(x) => format!("{x}; {w}"),
            None => w,
        });
    }
    let (text, sections) = tb.finish();
    Ok(Extracted {
        text,
        sections,
        meta,
        ocr: missing,
        warning,
        ..Extracted::default()
    })
}

fn parse(bytes: &[u8], budget: usize, tx: &mpsc::Sender<Msg>) -> Result<(), String> {
    use pdf_extract::{Document, PlainTextOutput};
    let mut doc = Document::load_mem(bytes)
        .map_err(|e| format!("could not read PDF (damaged or unsupported): {e}"))?;
    if doc.is_encrypted() && doc.decrypt("").is_err() {
        return Err("the PDF is encrypted with a password; not indexed".into());
    }
    let page_ids = doc.get_pages();
    let _ = tx.send(Msg::Meta {
        meta: info_meta(&doc),
        pages: page_ids.len() as u32,
    });
    let mut text_bytes = 0usize;
    for &n in page_ids.keys().take(MAX_PDF_PAGES as usize) {
        let mut s = String::new();
        // A page that fails is empty (a bad font on page 7 must not lose pages 8…).
        let page = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut out = PlainTextOutput::new(&mut s);
            pdf_extract::output_doc_page(&doc, &mut out, n)
        }));
        if !matches!(page, Ok(Ok(()))) {
            s.clear();
        }
        text_bytes += s.len();
        if tx.send(Msg::Page(n, s)).is_err() {
            break; // the caller gave up
        }
        if text_bytes >= budget {
            break;
        }
    }
    Ok(())
}

/// Title, author and creation date from the document information dictionary.
fn info_meta(doc: &pdf_extract::Document) -> DocMeta {
    let mut meta = DocMeta::default();
    let info = doc.trailer.get(b"Info").ok().and_then(|o| match o {
        pdf_extract::Object::Reference(id) => doc.get_dictionary(*id).ok(),
        pdf_extract::Object::Dictionary(d) => Some(d),
        _ => None,
    });
    let Some(info) = info else {
        return meta;
    };
    let text = |key: &[u8]| -> Option<String> {
        let o = info.get(key).ok()?;
        let o = match o {
            pdf_extract::Object::Reference(id) => doc.get_object(*id).ok()?,
            o => o,
        };
        let s = pdf_extract::decode_text_string(o).ok()?;
        let s: String = s.chars().filter(|c| !c.is_control()).collect();
        let s = s.trim();
        (!s.is_empty()).then(|| s.chars().take(512).collect())
    };
    meta.title = text(b"Title");
    meta.author = text(b"Author");
    meta.subject = text(b"Subject");
    meta.date = text(b"CreationDate").and_then(|d| pdf_date(&d));
    meta
}

/// A PDF date (`D:YYYYMMDDHHmmSS`, the time optional, a zone ignored) in epoch seconds.
fn pdf_date(s: &str) -> Option<i64> {
    let s = s.strip_prefix("D:").unwrap_or(s);
    let digits: String = s
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .take(14)
        .collect();
    if digits.len() < 4 {
        return None;
    }
    let num = |a: usize, b: usize, default: i64| -> i64 {
        digits
            .get(a..b)
            .and_then(|x| x.parse().ok())
            .unwrap_or(default)
    };
    super::civil_to_epoch(
        num(0, 4, 1970),
        num(4, 6, 1),
        num(6, 8, 1),
        num(8, 10, 0),
        num(10, 12, 0),
        num(12, 14, 0),
    )
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PDF of `pages` pages that all draw the same one-line text.
    fn many_pages(pages: usize) -> Vec<u8> {
        let mut objs: Vec<String> = vec![
            "<< /Type /Catalog /Pages 2 0 R >>".into(),
            String::new(), // the page tree, below
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".into(),
        ];
        let content = "BT /F1 12 Tf 72 720 Td (Chapter of the endless ledger) Tj ET";
        objs.push(format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len() + 1
        ));
        let first_page = objs.len() + 1;
        let kids: Vec<String> = (0..pages)
            .map(|i| format!("{} 0 R", first_page + i))
            .collect();
        objs[1] = format!(
            "<< /Type /Pages /Kids [{}] /Count {pages} >>",
            kids.join(" ")
        );
        for _ in 0..pages {
            objs.push(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
                 /Resources << /Font << /F1 3 0 R >> >> >>"
                    .into(),
            );
        }
        let mut pdf = b"%PDF-1.4\n".to_vec();
        let mut offsets = Vec::new();
        for (i, o) in objs.iter().enumerate() {
            offsets.push(pdf.len());
            pdf.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
        }
        let xref = pdf.len();
        pdf.extend_from_slice(
            format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes(),
        );
        for o in offsets {
            pdf.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
        }
        pdf.extend_from_slice(
            format!(
                "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
                objs.len() + 1
            )
            .as_bytes(),
        );
        pdf
    }

    #[test]
    fn a_ten_thousand_page_pdf_costs_bounded_time_and_says_what_it_left_out() {
        let pdf = many_pages(10_000);
        let t = Instant::now();
        let x = extract_pdf(&pdf, 2 << 20, &super::super::NoOcr).expect("indexed in part");
        let took = t.elapsed();
        assert!(took < PDF_TIME_LIMIT + Duration::from_secs(5), "{took:?}");
        let w = x.warning.expect("a warning says what was left out");
        assert!(w.contains("of 10000 pages"), "{w}");
        assert!(x.text.contains("endless ledger"));
        assert_eq!(x.sections[0].label, "page 1");
        assert!(x.sections.len() <= MAX_PDF_PAGES as usize);
    }

    #[test]
    fn pdf_dates() {
        assert_eq!(super::pdf_date("D:20230415"), Some(1_681_516_800));
        assert_eq!(
            super::pdf_date("D:20230415120000+02'00'"),
            Some(1_681_560_000)
        );
        assert_eq!(super::pdf_date("garbage"), None);
    }
}

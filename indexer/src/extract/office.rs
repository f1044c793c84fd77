//! Office documents: OOXML (DOCX) through `zip` + `quick-xml`.

use std::io::{BufReader, Cursor, Read};

use super::{ExtractError, RAW_SIZE_FACTOR};

/// An upper bound on the decompressed `word/document.xml` read from a DOCX,
/// whatever the text budget (markup is much larger than its text).
const DOCX_XML_MIN_BUDGET: u64 = 64 << 20;

pub(super) fn extract_docx(bytes: &[u8], max_text_bytes: usize) -> Result<String, ExtractError> {
    use quick_xml::events::Event;

    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| ExtractError::Failed(format!("not a valid DOCX (zip) file: {e}")))?;
    let part = archive.by_name("word/document.xml").map_err(|e| {
        ExtractError::Failed(format!("DOCX has no readable word/document.xml: {e}"))
    })?;
    // Bound the decompressed markup read (zip bombs): past it, stop as if
    // the text budget were reached.
    let xml_budget = (max_text_bytes as u64)
        .saturating_mul(RAW_SIZE_FACTOR as u64)
        .max(DOCX_XML_MIN_BUDGET);
    let mut reader = quick_xml::Reader::from_reader(BufReader::new(part.take(xml_budget)));

    let mut out = String::new();
    let mut buf = Vec::new();
    let mut in_text = false; // inside <w:t>
    let mut in_tab_stops = 0usize; // inside <w:tabs> (tab stop definitions, not tabs)
    let malformed = |e: &dyn std::fmt::Display| {
        ExtractError::Failed(format!("DOCX word/document.xml is malformed: {e}"))
    };
    while out.len() < max_text_bytes {
        let event = match reader.read_event_into(&mut buf) {
            Ok(event) => event,
            // A budget cut in the middle of the markup: keep what we have.
            Err(_) if reader.buffer_position() >= xml_budget => break,
            Err(e) => return Err(malformed(&e)),
        };
        match event {
            Event::Start(e) => match e.local_name().as_ref() {
                "t" => in_text = true,
                "tabs" => in_tab_stops += 1,
                "tab" if in_tab_stops == 0 => out.push('\t'),
                "br" | "cr" => out.push('\n'),
                _ => {}
            },
            Event::Empty(e) => match e.local_name().as_ref() {
                "tab" if in_tab_stops == 0 => out.push('\t'),
                "br" | "cr" | "p" => out.push('\n'),
                "noBreakHyphen" => out.push('-'),
                _ => {}
            },
            Event::End(e) => match e.local_name().as_ref() {
                "t" => in_text = false,
                "tabs" => in_tab_stops = in_tab_stops.saturating_sub(1),
                "p" => out.push('\n'),
                _ => {}
            },
            Event::Text(t) if in_text => out.push_str(&t.xml10_content()),
            Event::CData(t) if in_text => out.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if in_text => match r.resolve_char_ref() {
                Ok(Some(c)) => out.push(c),
                Ok(None) => match quick_xml::escape::resolve_predefined_entity(&r) {
                    Some(s) => out.push_str(s),
                    None => {
                        out.push('&');
                        out.push_str(&r);
                        out.push(';');
                    }
                },
                Err(e) => return Err(malformed(&e)),
            },
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    let len = out.trim_end().len();
    out.truncate(len);
    Ok(out)
}

//! HTML: `html2text` for the body, plus the `<title>`.

use super::{tidy_lines, ExtractError};

/// Line width handed to html2text: wide enough that paragraphs are not
/// hard-wrapped into many short lines.
const HTML_WIDTH: usize = 10_000;

pub(super) fn extract_html(bytes: &[u8]) -> Result<String, ExtractError> {
    let body = html_body(bytes)?;
    Ok(match html_title(bytes) {
        Some(title) if !body.starts_with(&title) => {
            if body.is_empty() {
                title
            } else {
                format!("{title}\n\n{body}")
            }
        }
        _ => body,
    })
}

/// The rendered text of a page's body (no title), lines tidied.
pub(super) fn html_body(bytes: &[u8]) -> Result<String, ExtractError> {
    // The trivial decorator adds no markup ("# ", "*", "[link]"): only text.
    let body = html2text::config::with_decorator(html2text::render::TrivialDecorator::new())
        .string_from_read(bytes, HTML_WIDTH)
        .map_err(|e| ExtractError::Failed(format!("could not parse HTML: {e}")))?;
    Ok(tidy_lines(&body))
}

/// The text of the first `<title>` element (HTML drops the head when
/// rendering, but the title is what a person searches for).
pub(super) fn html_title(bytes: &[u8]) -> Option<String> {
    let html = String::from_utf8_lossy(&bytes[..bytes.len().min(256 * 1024)]);
    let lower = html.to_ascii_lowercase();
    let mut from = 0;
    let open = loop {
        let at = from + lower[from..].find("<title")?;
        let next = lower.as_bytes().get(at + 6).copied();
        if matches!(next, Some(b'>') | Some(b' ' | b'\t' | b'\n' | b'\r' | b'/')) {
            break at;
        }
        from = at + 6;
    };
    let content_start = open + lower[open..].find('>')? + 1;
    let content_end = content_start + lower[content_start..].find("</title")?;
    let title = decode_entities(&html[content_start..content_end]);
    let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
    (!title.is_empty()).then_some(title)
}

/// Decodes the character references commonly found in titles: the XML five,
/// `&nbsp;` and numeric ones. Others are left as written.
pub(super) fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        // Bytes, not str: the 12-byte window may end inside a multi-byte character.
        let semi = rest.as_bytes()[..rest.len().min(12)]
            .iter()
            .position(|&b| b == b';');
        let decoded = semi.and_then(|semi| {
            let name = &rest[1..semi];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ => {
                    let num = name.strip_prefix('#')?;
                    let code = match num.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => num.parse().ok()?,
                    };
                    char::from_u32(code)
                }
            }?;
            Some((c, semi + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

//! E-mail: one message (EML) or a mailbox of them (MBOX), through `mailparse`.
//!
//! A message's text is its header lines (`From:`, `To:` with To and Cc, `Subject:`, `Date:`),
//! a blank line, the body (the first text/plain part, else the first text/html part rendered
//! like HTML), a line `[attachment: name, type]` for each binary attachment, then each text
//! attachment (text/*, or a name with a text extension). In an EML each text attachment is a
//! section `attachment <name>`; in an MBOX each message is a section `message N: <subject>`
//! and its attachments are inside it.
//!
//! Bounds (hostile mail): `mailparse` parses nested multiparts by recursion without a depth
//! limit, so a message that mentions `multipart/` more than [`MAX_MULTIPART`] times or has
//! more than [`MAX_BOUNDARY_LINES`] lines starting with `--` is not parsed at all (legitimate
//! mail has a handful of each); at most [`MAX_PARTS`] parts of a message are read, at most
//! [`MAX_MESSAGES`] messages of a mailbox, and the sender and recipient lists of a mailbox
//! stop at [`MAX_ADDRESS_LIST`] bytes. The text stops at the budget.

use mailparse::{DispositionType, MailHeaderMap, ParsedMail};

use super::html::html_body;
use super::{kind_from_name, DocKind, DocMeta, ExtractError, Extracted, TextBuilder};

/// Mentions of `multipart/` in one message past which it is not parsed.
const MAX_MULTIPART: usize = 64;
/// Lines starting with `--` (MIME boundaries) in one message past which it is not parsed.
const MAX_BOUNDARY_LINES: usize = 10_000;
/// MIME parts read from one message.
const MAX_PARTS: usize = 500;
/// Messages read from one mailbox.
pub(super) const MAX_MESSAGES: usize = 5_000;
/// The distinct senders (and recipients) of a mailbox, joined by "; ", stop at this length.
const MAX_ADDRESS_LIST: usize = 4096;

fn failed(fmt: &str, reason: impl std::fmt::Display) -> ExtractError {
    ExtractError::Failed(format!("{fmt}: {reason}"))
}

/// A message as text, with its header fields.
struct Message {
    /// Header lines, a blank line, the body and the binary attachments' lines.
    main: String,
    /// (file name, text) of each text attachment.
    attachments: Vec<(String, String)>,
    meta: DocMeta,
    /// Individual sender and recipient addresses (for a mailbox's lists).
    senders: Vec<String>,
    recipients: Vec<String>,
}

/// Refuses, before parsing, what would make the parser recurse deeply or allocate a part per
/// few bytes.
fn check_shape(raw: &[u8]) -> Result<(), String> {
    let multipart = raw
        .windows(10)
        .filter(|w| w.eq_ignore_ascii_case(b"multipart/"))
        .take(MAX_MULTIPART + 1)
        .count();
    if multipart > MAX_MULTIPART {
        return Err(format!(
            "more than {MAX_MULTIPART} nested or sibling multipart parts: not parsed"
        ));
    }
    let boundaries = raw
        .split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b"--"))
        .take(MAX_BOUNDARY_LINES + 1)
        .count();
    if boundaries > MAX_BOUNDARY_LINES {
        return Err(format!(
            "more than {MAX_BOUNDARY_LINES} MIME boundary lines: not parsed"
        ));
    }
    Ok(())
}

fn addresses(mail: &ParsedMail, header: &str) -> Vec<String> {
    let mut out = Vec::new();
    for h in mail.headers.get_all_headers(header) {
        match mailparse::addrparse_header(h) {
            Ok(list) => {
                for a in list.iter() {
                    match a {
                        mailparse::MailAddr::Single(s) => out.push(show_addr(s)),
                        mailparse::MailAddr::Group(g) => out.extend(g.addrs.iter().map(show_addr)),
                    }
                }
            }
            Err(_) => out.push(h.get_value().trim().to_string()),
        }
    }
    out.retain(|a| !a.is_empty());
    out
}

fn show_addr(s: &mailparse::SingleInfo) -> String {
    match s.display_name.as_deref().map(str::trim) {
        Some(name) if !name.is_empty() => format!("{name} <{}>", s.addr),
        _ => s.addr.clone(),
    }
}

fn header(mail: &ParsedMail, name: &str) -> Option<String> {
    mail.headers
        .get_first_value(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The decoded text of a part (charset and transfer encoding), lossy when it is not valid.
fn part_text(part: &ParsedMail) -> String {
    match part.get_body() {
        Ok(s) => s,
        Err(_) => String::from_utf8_lossy(&part.get_body_raw().unwrap_or_default()).into_owned(),
    }
}

/// A name that says the content is text (notes.txt, data.csv, page.html…).
fn text_name(name: &str) -> bool {
    kind_from_name(name).is_some_and(|k| k.is_verbatim() || k == DocKind::Html)
}

fn is_html(mimetype: &str, name: &str) -> bool {
    mimetype == "text/html" || kind_from_name(name) == Some(DocKind::Html)
}

fn render(raw: &[u8], fmt: &str) -> Result<Message, ExtractError> {
    check_shape(raw).map_err(|r| failed(fmt, r))?;
    let mail = mailparse::parse_mail(raw).map_err(|e| failed(fmt, format!("unreadable: {e}")))?;
    let from = header(&mail, "From");
    let to: Vec<String> = ["To", "Cc"]
        .into_iter()
        .filter_map(|h| header(&mail, h))
        .collect();
    let to = (!to.is_empty()).then(|| to.join(", "));
    let subject = header(&mail, "Subject");
    let date_raw = header(&mail, "Date");
    let meta = DocMeta {
        from: from.clone(),
        to: to.clone(),
        subject: subject.clone(),
        date: date_raw
            .as_deref()
            .and_then(|d| mailparse::dateparse(d).ok()),
        ..DocMeta::default()
    };

    let mut plain: Option<String> = None;
    let mut html: Option<String> = None;
    let mut binaries = Vec::new();
    let mut attachments = Vec::new();
    // Depth-first, in order, at most MAX_PARTS parts.
    let mut stack: Vec<&ParsedMail> = vec![&mail];
    let mut seen = 0usize;
    while let Some(part) = stack.pop() {
        seen += 1;
        if seen > MAX_PARTS {
            break;
        }
        if !part.subparts.is_empty() {
            stack.extend(part.subparts.iter().rev());
            continue;
        }
        let mimetype = part.ctype.mimetype.to_ascii_lowercase();
        if mimetype.starts_with("multipart/") {
            continue;
        }
        let disposition = part.get_content_disposition();
        let name = disposition
            .params
            .get("filename")
            .or_else(|| part.ctype.params.get("name"))
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty());
        let attached = disposition.disposition == DispositionType::Attachment || name.is_some();
        if !attached && mimetype == "text/plain" {
            let text = part_text(part);
            match &mut plain {
                Some(p) => {
                    p.push_str("\n\n");
                    p.push_str(&text);
                }
                None => plain = Some(text),
            }
            continue;
        }
        if !attached && mimetype == "text/html" {
            if html.is_none() {
                html = Some(part_text(part));
            }
            continue;
        }
        let name = name.unwrap_or_else(|| "unnamed".to_string());
        if mimetype.starts_with("text/") || mimetype == "message/rfc822" || text_name(&name) {
            let text = if mimetype.starts_with("text/") {
                part_text(part)
            } else {
                String::from_utf8_lossy(&part.get_body_raw().unwrap_or_default()).into_owned()
            };
            let text = if is_html(&mimetype, &name) {
                html_body(text.as_bytes()).unwrap_or(text)
            } else {
                text
            };
            attachments.push((name, text));
        } else {
            binaries.push(format!("[attachment: {name}, {mimetype}]"));
        }
    }

    let mut main = String::new();
    for (k, v) in [
        ("From", &from),
        ("To", &to),
        ("Subject", &subject),
        ("Date", &date_raw),
    ] {
        if let Some(v) = v {
            main.push_str(k);
            main.push_str(": ");
            main.push_str(v);
            main.push('\n');
        }
    }
    main.push('\n');
    let body = match (plain, html) {
        (Some(p), _) => p,
        (None, Some(h)) => html_body(h.as_bytes()).unwrap_or(h),
        (None, None) => String::new(),
    };
    main.push_str(body.trim_end());
    main.push('\n');
    for b in binaries {
        main.push_str(&b);
        main.push('\n');
    }
    Ok(Message {
        main,
        attachments,
        meta,
        senders: addresses(&mail, "From"),
        recipients: [addresses(&mail, "To"), addresses(&mail, "Cc")].concat(),
    })
}

pub(super) fn extract_eml(bytes: &[u8], max_text_bytes: usize) -> Result<Extracted, ExtractError> {
    let m = render(bytes, "EML")?;
    let mut tb = TextBuilder::new(max_text_bytes);
    tb.push(&m.main);
    for (name, text) in &m.attachments {
        tb.section(format!("attachment {name}"));
        tb.push(text.trim_end());
        tb.newline();
    }
    let (text, sections) = tb.finish();
    Ok(Extracted {
        text,
        kind: DocKind::Email,
        sections,
        meta: m.meta,
        ..Extracted::default()
    })
}

/// Where the messages of a mailbox start: at the beginning and at each line starting with
/// `From ` that follows a blank line (mbox writers separate messages so, and quote `From `
/// in bodies as `>From `).
fn message_starts(b: &[u8]) -> Vec<usize> {
    let mut starts = vec![0];
    let mut i = 0;
    while let Some(nl) = b[i..].iter().position(|&c| c == b'\n') {
        let at = i + nl + 1;
        i = at;
        if !b[at..].starts_with(b"From ") {
            continue;
        }
        let before = &b[..at - 1];
        let blank = before.is_empty()
            || before.ends_with(b"\n")
            || before.ends_with(b"\n\r")
            || before == b"\r";
        if blank {
            starts.push(at);
        }
    }
    starts
}

/// Adds the addresses not yet in `list` (compared without case), within the length cap.
fn add_distinct(list: &mut String, seen: &mut Vec<String>, addrs: &[String]) {
    for a in addrs {
        let key = a.to_lowercase();
        if seen.contains(&key) {
            continue;
        }
        let extra = if list.is_empty() { 0 } else { 2 } + a.len();
        if list.len() + extra > MAX_ADDRESS_LIST {
            return;
        }
        if !list.is_empty() {
            list.push_str("; ");
        }
        list.push_str(a);
        seen.push(key);
    }
}

pub(super) fn extract_mbox(bytes: &[u8], max_text_bytes: usize) -> Result<Extracted, ExtractError> {
    let starts = message_starts(bytes);
    let mut tb = TextBuilder::new(max_text_bytes);
    let mut meta = DocMeta::default();
    let (mut from, mut to) = (String::new(), String::new());
    let (mut seen_from, mut seen_to) = (Vec::new(), Vec::new());
    let mut unread = 0usize;
    let mut count = 0usize;
    let mut last_error = None;
    for (k, &start) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(bytes.len());
        let mut raw = &bytes[start..end];
        if raw.starts_with(b"From ") {
            let nl = raw
                .iter()
                .position(|&c| c == b'\n')
                .map_or(raw.len(), |p| p + 1);
            raw = &raw[nl..];
        }
        if raw.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        count += 1;
        if count > MAX_MESSAGES || tb.full() {
            continue; // counted for the warning, not read
        }
        let m = match render(raw, &format!("MBOX message {count}")) {
            Ok(m) => m,
            Err(e) => {
                unread += 1;
                tb.section(format!("message {count}"));
                let reason = e.to_string();
                tb.push(&format!("[message not read: {reason}]\n"));
                last_error = Some(reason);
                continue;
            }
        };
        if count == 1 {
            meta.subject = m.meta.subject.clone();
            meta.date = m.meta.date;
        }
        add_distinct(&mut from, &mut seen_from, &m.senders);
        add_distinct(&mut to, &mut seen_to, &m.recipients);
        tb.section(match &m.meta.subject {
            Some(s) => format!("message {count}: {s}"),
            None => format!("message {count}"),
        });
        tb.push(&m.main);
        for (name, text) in &m.attachments {
            tb.push(&format!("\n[attachment: {name}]\n"));
            tb.push(text.trim_end());
            tb.newline();
        }
    }
    if count == 0 {
        return Err(failed("MBOX", "no message found"));
    }
    meta.from = (!from.is_empty()).then_some(from);
    meta.to = (!to.is_empty()).then_some(to);
    let mut warnings = Vec::new();
    if count > MAX_MESSAGES {
        warnings.push(format!(
            "MBOX: only the first {MAX_MESSAGES} of {count} messages read"
        ));
    }
    if let Some(e) = last_error {
        warnings.push(format!("{unread} message(s) not read ({e})"));
    }
    let (text, sections) = tb.finish();
    Ok(Extracted {
        text,
        kind: DocKind::Mbox,
        sections,
        meta,
        warning: (!warnings.is_empty()).then(|| warnings.join("; ")),
        ..Extracted::default()
    })
}

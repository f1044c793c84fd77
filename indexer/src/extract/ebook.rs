//! EPUB: `META-INF/container.xml` names the package (OPF); its spine gives the reading order
//! of XHTML items, each rendered like HTML (`html2text`) as a section `chapter N` (N = its
//! place in the spine, 1-based), or `chapter N: Title` when the item has a non-empty
//! `<title>`. `dc:title` and `dc:creator` are the metadata. Parts are read through the bounds
//! of [`super::zipxml`]; at most [`super::zipxml::MAX_PARTS_READ`] of them.

use std::collections::HashMap;

use super::html::{html_body, html_title};
use super::zipxml::{attr, dir_of, failed, resolve_target, walk, FirstTexts, Node, Zip};
use super::{DocKind, DocMeta, ExtractError, Extracted, TextBuilder};

/// A chapter is rendered from at most this many bytes of markup per byte of text budget
/// left…
const MARKUP_PER_TEXT: usize = 8;
/// …and at least this many.
const MIN_CHAPTER_MARKUP: usize = 1 << 20;

pub(super) fn extract_epub(bytes: &[u8], max_text_bytes: usize) -> Result<Extracted, ExtractError> {
    let mut zip = Zip::open(bytes, "EPUB", max_text_bytes)?;
    let container = zip.require("META-INF/container.xml")?;
    let mut opf_path = None;
    walk(&container, "EPUB META-INF/container.xml", |n| {
        if let Node::Start(e) = n {
            if e.local_name().as_ref() == "rootfile" {
                opf_path = attr(e, "full-path");
            }
        }
        opf_path.is_none()
    })?;
    let opf_path = opf_path
        .map(|p| resolve_target("", &p))
        .ok_or_else(|| failed("EPUB META-INF/container.xml names no rootfile (package)"))?;
    let opf = zip.require(&opf_path)?;
    let what = format!("EPUB {opf_path}");

    let mut meta = DocMeta::default();
    // id → (href, media type)
    let mut manifest: HashMap<String, (String, String)> = HashMap::new();
    let mut spine: Vec<String> = Vec::new();
    let mut texts = FirstTexts::new(["title", "creator"]);
    walk(&opf, &what, |n| {
        texts.feed(&n);
        if let Node::Start(e) = n {
            match e.local_name().as_ref() {
                "item" => {
                    if let (Some(id), Some(href)) = (attr(e, "id"), attr(e, "href")) {
                        let ty = attr(e, "media-type").unwrap_or_default();
                        manifest.entry(id).or_insert((href, ty));
                    }
                }
                "itemref" => spine.extend(attr(e, "idref")),
                _ => {}
            }
        }
        true
    })?;
    drop(opf);
    let [title, creator] = texts.finish();
    meta.title = title;
    meta.author = creator;
    if spine.is_empty() {
        return Err(failed(format!(
            "{what} has an empty spine (no reading order)"
        )));
    }

    let base = dir_of(&opf_path).to_string();
    let mut tb = TextBuilder::new(max_text_bytes);
    let mut warning = None;
    for (i, idref) in spine.iter().enumerate() {
        if tb.full() {
            break;
        }
        let Some((href, ty)) = manifest.get(idref) else {
            continue;
        };
        if !(ty.contains("html") || ty.is_empty()) {
            continue;
        }
        let path = resolve_target(&base, href);
        let Some(part) = zip.read(&path)? else {
            if zip.exhausted() {
                warning = Some(format!("EPUB: only the first {i} chapters read"));
                break;
            }
            continue;
        };
        // The HTML renderer builds a tree of the whole chapter: give it no more markup than
        // the text budget left can use (markup runs a few times larger than its text).
        let room = (max_text_bytes.saturating_sub(tb.text.len()))
            .saturating_mul(MARKUP_PER_TEXT)
            .max(MIN_CHAPTER_MARKUP);
        let mut end = part.text.len().min(room);
        while !part.text.is_char_boundary(end) {
            end -= 1;
        }
        let html = &part.text.as_bytes()[..end];
        let body = html_body(html).map_err(|e| failed(format!("EPUB {path}: {e}")))?;
        let label = match html_title(html) {
            Some(t) => format!("chapter {}: {t}", i + 1),
            None => format!("chapter {}", i + 1),
        };
        tb.section(label);
        tb.push(&body);
        tb.newline();
    }
    let (text, sections) = tb.finish();
    Ok(Extracted {
        text,
        kind: DocKind::Epub,
        sections,
        meta,
        warning: zip.warning(warning),
        ..Extracted::default()
    })
}

//! Unit tests of the office, e-book, RTF and e-mail extractors, on documents built here.

use std::io::{Cursor, Write};
use std::time::Instant;

use super::tests::{build_docx, build_zip};
use super::*;

const MAX: usize = 1 << 20;

fn ok(name: &str, bytes: &[u8]) -> Extracted {
    extract(name, bytes, MAX).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn failed(name: &str, bytes: &[u8]) -> String {
    match extract(name, bytes, MAX) {
        Err(ExtractError::Failed(m)) => m,
        other => panic!("{name}: expected Failed, got {other:?}"),
    }
}

/// The section label holding the first occurrence of `needle`.
fn section_of<'a>(x: &'a Extracted, needle: &str) -> Option<&'a str> {
    let at = x
        .text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in {:?}", x.text));
    section_at(&x.sections, at as u64)
}

fn labels(x: &Extracted) -> Vec<&str> {
    x.sections.iter().map(|s| s.label.as_str()).collect()
}

/// A zip whose member `name` is `head`, then `run` bytes of `fill`, streamed through the
/// deflater (a zip bomb when `run` is large).
fn build_bomb(other: &[(&str, &[u8])], name: &str, head: &[u8], fill: u8, run: usize) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(run > u32::MAX as usize / 2);
    for (n, data) in other {
        w.start_file(*n, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.start_file(name, opts).unwrap();
    w.write_all(head).unwrap();
    let block = vec![fill; 1 << 20];
    let mut left = run;
    while left > 0 {
        let n = left.min(block.len());
        w.write_all(&block[..n]).unwrap();
        left -= n;
    }
    w.finish().unwrap().into_inner()
}

const GIB: usize = 1 << 30;

// ---- OpenDocument -------------------------------------------------------------

const ODF_NS: &str = r#"xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0""#;

const ODF_META: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<office:document-meta xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:meta="urn:oasis:names:tc:opendocument:xmlns:meta:1.0"><office:meta>
<meta:initial-creator>Ada Lovelace</meta:initial-creator><dc:creator>Someone Else</dc:creator>
<meta:creation-date>2024-03-01T10:20:30.123456789</meta:creation-date><dc:title>Heron &amp; Co</dc:title>
</office:meta></office:document-meta>"#;

fn build_odf(mimetype: &str, body: &str) -> Vec<u8> {
    let content = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content {ODF_NS}><office:automatic-styles><style:style xmlns:style="s">styletext</style:style></office:automatic-styles><office:body>{body}</office:body></office:document-content>"#
    );
    build_zip(&[
        ("mimetype", mimetype.as_bytes()),
        ("content.xml", content.as_bytes()),
        ("meta.xml", ODF_META.as_bytes()),
    ])
}

const ODT_MIME: &str = "application/vnd.oasis.opendocument.text";

#[test]
fn extract_odt_paragraphs_spaces_tabs_and_meta() {
    let odt = build_odf(
        ODT_MIME,
        concat!(
            r#"<office:text><text:sequence-decls><text:sequence-decl text:name="Illustration"/></text:sequence-decls>"#,
            r#"<text:tracked-changes><text:changed-region><text:deletion><text:p>deleted words</text:p></text:deletion></text:changed-region></text:tracked-changes>"#,
            r#"<text:h text:outline-level="1">The <text:span>Heron</text:span> Census</text:h>"#,
            r#"<text:p>Name:<text:tab/>Value<text:s text:c="3"/>spaced<text:line-break/>next line &#x1F980;</text:p>"#,
            r#"<text:p/><text:p/><text:p/>"#,
            r#"<text:list><text:list-item><text:p>first item</text:p></text:list-item></text:list>"#,
            r#"<table:table table:name="T1"><table:table-row><table:table-cell><text:p>a1</text:p></table:table-cell><table:table-cell><text:p>b1</text:p></table:table-cell></table:table-row></table:table>"#,
            r#"<text:p>after table</text:p></office:text>"#
        ),
    );
    let x = ok("notes.odt", &odt);
    assert_eq!(x.kind, DocKind::Odt);
    assert_eq!(
        x.text,
        "The Heron Census\nName:\tValue   spaced\nnext line 🦀\n\nfirst item\na1\tb1\n\nafter table"
    );
    assert!(x.sections.is_empty());
    assert_eq!(x.meta.title.as_deref(), Some("Heron & Co"));
    assert_eq!(x.meta.author.as_deref(), Some("Ada Lovelace"));
    assert_eq!(x.meta.date, civil_to_epoch(2024, 3, 1, 10, 20, 30));
    // Sniffed by its mimetype member, also as a template.
    assert_eq!(ok("attachment", &odt).kind, DocKind::Odt);
    assert_eq!(ok("x.ott", &odt).kind, DocKind::Odt);
}

#[test]
fn extract_ods_sheets_rows_and_repeats() {
    let ods = build_odf(
        "application/vnd.oasis.opendocument.spreadsheet",
        concat!(
            r#"<office:spreadsheet><table:table table:name="Budget">"#,
            r#"<table:table-column table:number-columns-repeated="1024"/>"#,
            r#"<table:table-row><table:table-cell office:value-type="string"><text:p>item</text:p></table:table-cell><table:table-cell><text:p>amount</text:p></table:table-cell></table:table-row>"#,
            r#"<table:table-row><table:table-cell><text:p>heron feed</text:p></table:table-cell><table:table-cell table:number-columns-repeated="2"/><table:table-cell office:value-type="float" office:value="12.5"><text:p>12.50</text:p></table:table-cell><table:table-cell table:number-columns-repeated="16380"/></table:table-row>"#,
            r#"<table:table-row table:number-rows-repeated="1048570"><table:table-cell table:number-columns-repeated="16384"/></table:table-row>"#,
            r#"<table:table-row table:number-rows-repeated="2"><table:table-cell table:number-columns-repeated="2"><text:p>x</text:p></table:table-cell></table:table-row>"#,
            r#"</table:table><table:table table:name="Notes &amp; more"><table:table-row><table:table-cell><text:p>two</text:p><text:p>paragraphs</text:p></table:table-cell></table:table-row></table:table></office:spreadsheet>"#
        ),
    );
    let x = ok("book.ods", &ods);
    assert_eq!(x.kind, DocKind::Ods);
    assert_eq!(
        x.text,
        "item\tamount\nheron feed\t\t\t12.50\nx\tx\nx\tx\n\ntwo paragraphs"
    );
    assert_eq!(labels(&x), ["sheet Budget", "sheet Notes & more"]);
    assert_eq!(section_of(&x, "heron feed"), Some("sheet Budget"));
    assert_eq!(section_of(&x, "paragraphs"), Some("sheet Notes & more"));
    assert_eq!(ok("noext", &ods).kind, DocKind::Ods);
}

#[test]
fn extract_odp_slides_frames_and_notes() {
    let odp = build_odf(
        "application/vnd.oasis.opendocument.presentation",
        concat!(
            r#"<office:presentation><draw:page draw:name="page1"><draw:frame><draw:text-box><text:p>Opening slide</text:p></draw:text-box></draw:frame></draw:page>"#,
            r#"<draw:page draw:name="page2"><draw:frame><draw:text-box><text:list><text:list-item><text:p>the quarterly heron census</text:p></text:list-item></text:list></draw:text-box></draw:frame>"#,
            r#"<presentation:notes><draw:page-thumbnail draw:page-number="2"/><draw:frame><draw:text-box><text:p>speaker notes here</text:p></draw:text-box></draw:frame></presentation:notes></draw:page>"#,
            r#"<draw:page draw:name="empty"/><draw:page><draw:frame><draw:text-box><text:p>Fourth</text:p></draw:text-box></draw:frame></draw:page></office:presentation>"#
        ),
    );
    let x = ok("deck.odp", &odp);
    assert_eq!(x.kind, DocKind::Odp);
    assert_eq!(labels(&x), ["slide 1", "slide 2", "slide 4"]);
    assert_eq!(section_of(&x, "heron census"), Some("slide 2"));
    assert_eq!(section_of(&x, "speaker notes"), Some("slide 2"));
    assert_eq!(section_of(&x, "Fourth"), Some("slide 4"));
    assert_eq!(x.meta.author.as_deref(), Some("Ada Lovelace"));
}

#[test]
fn extract_odf_damage_fails_with_the_format_and_the_reason() {
    let bad = build_odf(ODT_MIME, "<office:text><text:p>hi</text:h></office:text>");
    let m = failed("bad.odt", &bad);
    assert!(m.contains("ODT content.xml is malformed"), "{m}");
    let good = build_odf(ODT_MIME, "<office:text><text:p>hi</text:p></office:text>");
    let m = failed("trunc.odt", &good[..good.len() / 2]);
    assert!(m.contains("ODT") && m.contains("zip"), "{m}");
    let m = failed("x.ods", &build_zip(&[("mimetype", b"x".as_slice())]));
    assert!(m.contains("ODS has no readable content.xml"), "{m}");
    let m = failed("x.odp", b"not a zip at all");
    assert!(m.contains("ODP"), "{m}");
    // Without meta.xml: no metadata, still text.
    let odt = build_zip(&[(
        "content.xml",
        format!("<office:document-content {ODF_NS}><office:body><office:text><text:p>lone</text:p></office:text></office:body></office:document-content>").as_bytes(),
    )]);
    let x = ok("lone.odt", &odt);
    assert_eq!(x.text, "lone");
    assert!(x.meta.is_empty());
}

#[test]
fn extract_odt_zip_bomb_stops_at_the_bound() {
    let head = format!("<office:document-content {ODF_NS}><office:body><office:text><text:p>bomb ");
    let start = Instant::now();
    let bomb = build_bomb(
        &[("mimetype", ODT_MIME.as_bytes())],
        "content.xml",
        head.as_bytes(),
        b'a',
        GIB,
    );
    println!("built a {} byte bomb in {:?}", bomb.len(), start.elapsed());
    assert!(bomb.len() < MAX * RAW_SIZE_FACTOR);
    let start = Instant::now();
    let x = ok("bomb.odt", &bomb);
    let took = start.elapsed();
    println!("extracted in {took:?}");
    assert!(took.as_secs() < 10, "{took:?}");
    assert_eq!(x.text.len(), MAX);
    assert!(x.text.starts_with("bomb aaaa"));
    let w = x.warning.as_deref().unwrap_or_default();
    assert!(
        w.contains("ODT: content.xml decompresses past the 64 MiB bound"),
        "{w}"
    );
    // A bomb of markup: parsed only up to the bound, then stops without an error.
    let bomb = build_bomb(
        &[("mimetype", ODT_MIME.as_bytes())],
        "content.xml",
        head.as_bytes(),
        b'<',
        GIB / 4,
    );
    let start = Instant::now();
    match extract("bomb2.odt", &bomb, MAX) {
        Ok(x) => assert!(x.text.starts_with("bomb")),
        Err(ExtractError::Failed(m)) => assert!(m.contains("ODT"), "{m}"),
        Err(e) => panic!("{e}"),
    }
    assert!(start.elapsed().as_secs() < 20, "{:?}", start.elapsed());
}

// ---- OOXML ---------------------------------------------------------------------

const CORE: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<dc:title>Bird Budget</dc:title><dc:creator>Grace Hopper</dc:creator>
<dcterms:created xsi:type="dcterms:W3CDTF">2023-11-05T08:00:00Z</dcterms:created></cp:coreProperties>"#;

const WORKBOOK: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">
<sheets><sheet name="Summary" sheetId="2" r:id="rId2"/><sheet name="Raw &amp; data" sheetId="1" r:id="rId1"/></sheets></workbook>"#;

const WORKBOOK_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>
<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="/xl/worksheets/sheet2.xml"/>
<Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>
</Relationships>"#;

const SHARED: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="3" uniqueCount="3">
<si><t>item</t></si><si><r><t>heron </t></r><r><rPr><b/></rPr><t>feed</t></r><rPh><t>phonetic</t></rPh></si><si><t xml:space="preserve">multi
line</t></si></sst>"#;

fn sheet(rows: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>{rows}</sheetData></worksheet>"#
    )
}

fn build_xlsx(sheet1: &str, sheet2: &str) -> Vec<u8> {
    build_zip(&[
        ("xl/workbook.xml", WORKBOOK.as_bytes()),
        ("xl/_rels/workbook.xml.rels", WORKBOOK_RELS.as_bytes()),
        ("xl/sharedStrings.xml", SHARED.as_bytes()),
        ("xl/worksheets/sheet1.xml", sheet(sheet1).as_bytes()),
        ("xl/worksheets/sheet2.xml", sheet(sheet2).as_bytes()),
        ("docProps/core.xml", CORE.as_bytes()),
    ])
}

const SHEET1: &str = concat!(
    r#"<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="inlineStr"><is><t>amount</t></is></c></row>"#,
    r#"<row r="2"><c r="A2" t="s"><v>1</v></c><c r="D2"><f>SUM(X1)</f><v>12.5</v></c><c r="E2" t="b"><v>1</v></c></row>"#,
    r#"<row r="3"/><row r="4"><c r="A4" t="s"><v>2</v></c><c r="B4" t="str"><v>formula text</v></c><c r="C4" t="s"><v>99</v></c></row>"#
);

#[test]
fn extract_xlsx_sheets_in_workbook_order_with_cell_values() {
    let xlsx = build_xlsx(
        SHEET1,
        r#"<row r="1"><c r="A1" t="inlineStr"><is><t>summary cell</t></is></c></row>"#,
    );
    let x = ok("Birds.XLSX", &xlsx);
    assert_eq!(x.kind, DocKind::Xlsx);
    assert_eq!(
        x.text,
        "summary cell\n\nitem\tamount\nheron feed\t\t\t12.5\tTRUE\nmulti line\tformula text"
    );
    assert_eq!(labels(&x), ["sheet Summary", "sheet Raw & data"]);
    assert_eq!(section_of(&x, "heron feed"), Some("sheet Raw & data"));
    assert_eq!(x.meta.title.as_deref(), Some("Bird Budget"));
    assert_eq!(x.meta.author.as_deref(), Some("Grace Hopper"));
    assert_eq!(x.meta.date, civil_to_epoch(2023, 11, 5, 8, 0, 0));
    assert_eq!(ok("noext", &xlsx).kind, DocKind::Xlsx);
    assert_eq!(ok("m.xlsm", &xlsx).kind, DocKind::Xlsx);

    // Without the workbook's relationships: the sheets by number.
    let bare = build_zip(&[
        ("xl/workbook.xml", b"<workbook/>".as_slice()),
        (
            "xl/worksheets/sheet10.xml",
            sheet(r#"<row><c t="inlineStr"><is><t>ten</t></is></c></row>"#).as_bytes(),
        ),
        (
            "xl/worksheets/sheet9.xml",
            sheet(r#"<row><c t="inlineStr"><is><t>nine</t></is></c></row>"#).as_bytes(),
        ),
    ]);
    let x = ok("bare.xlsx", &bare);
    assert_eq!(x.text, "nine\n\nten");
    assert_eq!(labels(&x), ["sheet 1", "sheet 2"]);
}

#[test]
fn extract_xlsx_damage_and_bombs() {
    let bad = build_xlsx("<row><c><v>1</v></row>", "");
    let m = failed("bad.xlsx", &bad);
    assert!(
        m.contains("XLSX xl/worksheets/sheet1.xml is malformed"),
        "{m}"
    );
    let good = build_xlsx(SHEET1, "");
    let m = failed("trunc.xlsx", &good[..good.len() - 30]);
    assert!(m.contains("XLSX"), "{m}");
    let m = failed("none.xlsx", &build_zip(&[("a", b"b".as_slice())]));
    assert!(m.contains("XLSX has no xl/workbook.xml"), "{m}");

    // A shared string of 1 GiB: read up to the bound, text cut at the budget.
    let start = Instant::now();
    let bomb = build_bomb(
        &[
            ("xl/workbook.xml", WORKBOOK.as_bytes()),
            ("xl/_rels/workbook.xml.rels", WORKBOOK_RELS.as_bytes()),
            ("xl/worksheets/sheet1.xml", sheet(SHEET1).as_bytes()),
        ],
        "xl/sharedStrings.xml",
        b"<sst><si><t>",
        b'z',
        GIB,
    );
    println!("built a {} byte bomb in {:?}", bomb.len(), start.elapsed());
    let start = Instant::now();
    let x = ok("bomb.xlsx", &bomb);
    assert!(start.elapsed().as_secs() < 10, "{:?}", start.elapsed());
    assert_eq!(x.text.len(), MAX);
    assert_eq!(labels(&x), ["sheet Raw & data"]);
    let w = x.warning.as_deref().unwrap_or_default();
    assert!(
        w.contains("XLSX: xl/sharedStrings.xml decompresses past"),
        "{w}"
    );
}

const PRESENTATION: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<p:presentation xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">
<p:sldMasterIdLst><p:sldMasterId id="2147483648" r:id="rId1"/></p:sldMasterIdLst>
<p:sldIdLst><p:sldId id="256" r:id="rId3"/><p:sldId id="257" r:id="rId2"/></p:sldIdLst></p:presentation>"#;

const PRESENTATION_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/slideMaster" Target="slideMasters/slideMaster1.xml"/>
<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/slide" Target="slides/slide1.xml"/>
<Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/slide" Target="slides/slide2.xml"/>
</Relationships>"#;

fn slide(paras: &[&str]) -> String {
    let body: String = paras
        .iter()
        .map(|p| format!("<a:p><a:r><a:rPr lang=\"en\"/><a:t>{p}</a:t></a:r></a:p>"))
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><p:sld xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"><p:cSld><p:spTree><p:sp><p:txBody>{body}</p:txBody></p:sp></p:spTree></p:cSld></p:sld>"#
    )
}

#[test]
fn extract_pptx_slides_in_presentation_order_with_notes() {
    let notes = r#"<p:notes xmlns:a="a" xmlns:p="p"><p:cSld><p:spTree><p:sp><p:txBody><a:p><a:fld type="slidenum"><a:t>1</a:t></a:fld></a:p><a:p><a:r><a:t>say hello</a:t></a:r><a:br/><a:r><a:t>slowly</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:notes>"#;
    let slide2_rels = r#"<Relationships><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/notesSlide" Target="../notesSlides/notesSlide1.xml"/></Relationships>"#;
    let pptx = build_zip(&[
        ("ppt/presentation.xml", PRESENTATION.as_bytes()),
        (
            "ppt/_rels/presentation.xml.rels",
            PRESENTATION_RELS.as_bytes(),
        ),
        (
            "ppt/slides/slide1.xml",
            slide(&["second shown", "the quarterly heron census"]).as_bytes(),
        ),
        (
            "ppt/slides/slide2.xml",
            slide(&["Title &amp; intro"]).as_bytes(),
        ),
        ("ppt/slides/_rels/slide2.xml.rels", slide2_rels.as_bytes()),
        ("ppt/notesSlides/notesSlide1.xml", notes.as_bytes()),
        ("docProps/core.xml", CORE.as_bytes()),
    ]);
    let x = ok("deck.pptx", &pptx);
    assert_eq!(x.kind, DocKind::Pptx);
    assert_eq!(
        x.text,
        "Title & intro\nsay hello\nslowly\n\nsecond shown\nthe quarterly heron census"
    );
    assert_eq!(labels(&x), ["slide 1", "slide 2"]);
    assert_eq!(section_of(&x, "heron census"), Some("slide 2"));
    assert_eq!(x.meta.author.as_deref(), Some("Grace Hopper"));
    assert_eq!(ok("noext", &pptx).kind, DocKind::Pptx);

    // Without the list: slide10 after slide9.
    let mut files: Vec<(String, String)> = (1..=11)
        .map(|i| {
            (
                format!("ppt/slides/slide{i}.xml"),
                slide(&[&format!("text of {i}")]),
            )
        })
        .collect();
    files.push((
        "ppt/presentation.xml".into(),
        "<p:presentation xmlns:p=\"p\"/>".into(),
    ));
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_bytes()))
        .collect();
    let x = ok("n.pptx", &build_zip(&refs));
    assert_eq!(section_of(&x, "text of 9"), Some("slide 9"));
    assert_eq!(section_of(&x, "text of 10"), Some("slide 10"));
    assert_eq!(section_of(&x, "text of 11"), Some("slide 11"));
    assert!(x.text.find("text of 9").unwrap() < x.text.find("text of 10").unwrap());

    let m = failed(
        "bad.pptx",
        &build_zip(&[(
            "ppt/presentation.xml",
            b"<p:presentation><p:sldIdLst></p:presentation>".as_slice(),
        )]),
    );
    assert!(m.contains("PPTX ppt/presentation.xml is malformed"), "{m}");
    let m = failed("t.pptx", &pptx[..pptx.len() / 3]);
    assert!(m.contains("PPTX"), "{m}");
}

#[test]
fn extract_docx_core_properties() {
    let mut docx = build_docx("<w:p><w:r><w:t>hello</w:t></w:r></w:p>");
    let x = ok("a.docx", &docx);
    assert!(x.meta.is_empty());
    // The same with docProps/core.xml.
    let mut archive = zip::ZipArchive::new(Cursor::new(&docx)).unwrap();
    let mut files = Vec::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).unwrap();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut data).unwrap();
        files.push((f.name().unwrap().to_string(), data));
    }
    files.push(("docProps/core.xml".into(), CORE.as_bytes().to_vec()));
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    docx = build_zip(&refs);
    let x = ok("a.docx", &docx);
    assert_eq!(x.text, "hello");
    assert_eq!(x.meta.title.as_deref(), Some("Bird Budget"));
    assert_eq!(x.meta.date, civil_to_epoch(2023, 11, 5, 8, 0, 0));
}

#[test]
fn extract_iso_dates() {
    assert_eq!(
        parse_iso_date("2024-03-01"),
        civil_to_epoch(2024, 3, 1, 0, 0, 0)
    );
    assert_eq!(
        parse_iso_date("2024-03-01T10:20:30+02:00"),
        civil_to_epoch(2024, 3, 1, 8, 20, 30)
    );
    assert_eq!(
        parse_iso_date("2024-03-01T10:20"),
        civil_to_epoch(2024, 3, 1, 10, 20, 0)
    );
    for bad in [
        "",
        "2024",
        "20240301",
        "2024-13-01",
        "2024-03-01X",
        "2024-03-01T1",
        "2024-03-01T10:20:30+x",
        "é",
    ] {
        assert_eq!(parse_iso_date(bad), None, "{bad:?}");
    }
}

// ---- EPUB ------------------------------------------------------------------------

fn build_epub(opf: &str, chapters: &[(&str, &str)]) -> Vec<u8> {
    let container = r#"<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>"#;
    let mut files: Vec<(&str, &[u8])> = vec![
        ("mimetype", b"application/epub+zip".as_slice()),
        ("META-INF/container.xml", container.as_bytes()),
        ("OEBPS/content.opf", opf.as_bytes()),
    ];
    files.extend(chapters.iter().map(|(n, d)| (*n, d.as_bytes())));
    build_zip(&files)
}

const OPF: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">
<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:identifier id="id">urn:x</dc:identifier><dc:title>Birds of the Marsh</dc:title><dc:creator>Mary Anning</dc:creator></metadata>
<manifest><item id="c1" href="text/one.xhtml" media-type="application/xhtml+xml"/><item id="c2" href="text/two%20b.xhtml" media-type="application/xhtml+xml"/><item id="css" href="style.css" media-type="text/css"/><item id="img" href="cover.png" media-type="image/png"/></manifest>
<spine><itemref idref="c2"/><itemref idref="c1"/><itemref idref="img"/><itemref idref="missing"/></spine></package>"#;

#[test]
fn extract_epub_spine_order_chapters_and_meta() {
    let one = r#"<?xml version="1.0" encoding="UTF-8"?><html xmlns="http://www.w3.org/1999/xhtml"><head><title>The Heron</title><style>p{}</style></head><body><h1>Herons</h1><p>A chapter about the <b>grey heron</b>.</p></body></html>"#;
    let two =
        r#"<html><head><title> </title></head><body><p>Prologue text first.</p></body></html>"#;
    let epub = build_epub(
        OPF,
        &[
            ("OEBPS/text/one.xhtml", one),
            ("OEBPS/text/two b.xhtml", two),
        ],
    );
    let x = ok("book.epub", &epub);
    assert_eq!(x.kind, DocKind::Epub);
    assert_eq!(
        x.text,
        "Prologue text first.\n\nHerons\n\nA chapter about the grey heron."
    );
    assert_eq!(labels(&x), ["chapter 1", "chapter 2: The Heron"]);
    assert_eq!(section_of(&x, "grey heron"), Some("chapter 2: The Heron"));
    assert_eq!(x.meta.title.as_deref(), Some("Birds of the Marsh"));
    assert_eq!(x.meta.author.as_deref(), Some("Mary Anning"));
    assert_eq!(ok("noext", &epub).kind, DocKind::Epub);

    let m = failed("t.epub", &epub[..epub.len() / 2]);
    assert!(m.contains("EPUB"), "{m}");
    let m = failed(
        "n.epub",
        &build_zip(&[("mimetype", b"application/epub+zip".as_slice())]),
    );
    assert!(
        m.contains("EPUB has no readable META-INF/container.xml"),
        "{m}"
    );
    let bad_opf = build_epub("<package><spine><itemref idref='a'></spine>", &[]);
    let m = failed("b.epub", &bad_opf);
    assert!(m.contains("EPUB OEBPS/content.opf is malformed"), "{m}");
    let empty = build_epub("<package><spine/></package>", &[]);
    let m = failed("e.epub", &empty);
    assert!(m.contains("empty spine"), "{m}");
}

// ---- e-mail ------------------------------------------------------------------------

const EML: &str = "From: =?UTF-8?Q?Ren=C3=A9e?= <renee@example.org>\r
To: Bob <bob@example.org>, carol@example.org\r
Cc: dave@example.org\r
Subject: Heron census =?UTF-8?B?4pyT?=\r
Date: Tue, 05 Mar 2024 10:00:00 +0100\r
MIME-Version: 1.0\r
Content-Type: multipart/mixed; boundary=\"outer\"\r
\r
preamble\r
--outer\r
Content-Type: multipart/alternative; boundary=\"alt\"\r
\r
--alt\r
Content-Type: text/plain; charset=utf-8\r
Content-Transfer-Encoding: quoted-printable\r
\r
We counted 42 herons at the marsh. Caf=C3=A9 after.\r
--alt\r
Content-Type: text/html\r
\r
<p>HTML version should not be used</p>\r
--alt--\r
--outer\r
Content-Type: text/csv; name=\"counts.csv\"\r
Content-Disposition: attachment; filename=\"counts.csv\"\r
\r
species,count\r
grey heron,42\r
--outer\r
Content-Type: application/octet-stream\r
Content-Disposition: attachment; filename=\"notes.txt\"\r
Content-Transfer-Encoding: base64\r
\r
dGhlIG5vdGVzIGF0dGFjaG1lbnQ=\r
--outer\r
Content-Type: image/png\r
Content-Disposition: attachment; filename=\"photo.png\"\r
Content-Transfer-Encoding: base64\r
\r
iVBORw0KGgo=\r
--outer--\r
";

#[test]
fn extract_eml_headers_body_and_attachments() {
    let x = ok("mail.eml", EML.as_bytes());
    assert_eq!(x.kind, DocKind::Email);
    assert_eq!(x.meta.from.as_deref(), Some("Renée <renee@example.org>"));
    assert_eq!(
        x.meta.to.as_deref(),
        Some("Bob <bob@example.org>, carol@example.org, dave@example.org")
    );
    assert_eq!(x.meta.subject.as_deref(), Some("Heron census ✓"));
    assert_eq!(x.meta.date, civil_to_epoch(2024, 3, 5, 9, 0, 0));
    assert!(
        x.text.starts_with(
            "From: Renée <renee@example.org>\nTo: Bob <bob@example.org>, carol@example.org, \
             dave@example.org\nSubject: Heron census ✓\nDate: Tue, 05 Mar 2024 10:00:00 +0100\n\n\
             We counted 42 herons at the marsh. Café after.\n[attachment: photo.png, image/png]\n"
        ),
        "{}",
        x.text
    );
    assert!(!x.text.contains("HTML version"), "{}", x.text);
    assert_eq!(
        labels(&x),
        ["attachment counts.csv", "attachment notes.txt"]
    );
    assert_eq!(
        section_of(&x, "grey heron,42"),
        Some("attachment counts.csv")
    );
    assert_eq!(
        section_of(&x, "the notes attachment"),
        Some("attachment notes.txt")
    );
    assert_eq!(section_of(&x, "42 herons"), None);

    // HTML only.
    let html = "From: a@b.c\nSubject: hi\nContent-Type: text/html\n\n<html><body><p>Only <b>html</b> here</p><script>x()</script></body></html>\n";
    let x = ok("h.eml", html.as_bytes());
    assert_eq!(x.text, "From: a@b.c\nSubject: hi\n\nOnly html here");
    // No headers at all, garbage: still text, never a panic.
    for junk in [
        &b""[..],
        b"\xff\xfe\x00garbage",
        b"Content-Type: multipart/mixed; boundary=x\n\n--x\n--x",
    ] {
        let _ = extract("j.eml", junk, MAX);
    }
}

#[test]
fn extract_eml_deep_multipart_is_refused_not_recursed() {
    let mut m = String::from("From: a@b.c\n");
    for i in 0..100_000 {
        m.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\n\n--b{i}\n"
        ));
    }
    m.push_str("\ninner\n");
    let start = Instant::now();
    let e = failed("deep.eml", m.as_bytes());
    assert!(e.contains("EML") && e.contains("multipart"), "{e}");
    assert!(start.elapsed().as_secs() < 5);
}

fn mbox_message(i: usize) -> String {
    format!(
        "From sender{s}@example.org Mon Jan  1 00:00:00 2024\nFrom: Sender {s} <sender{s}@example.org>\nTo: list@example.org\nSubject: Note {i}\nDate: Mon, 01 Jan 2024 00:{m:02}:00 +0000\n\nBody of message number {i}.\n>From the archive.\n\n",
        s = i % 3,
        m = i % 60
    )
}

#[test]
fn extract_mbox_messages_as_sections() {
    let mbox: String = (1..=3).map(mbox_message).collect();
    let x = ok("box.mbox", mbox.as_bytes());
    assert_eq!(x.kind, DocKind::Mbox);
    assert_eq!(
        labels(&x),
        [
            "message 1: Note 1",
            "message 2: Note 2",
            "message 3: Note 3"
        ]
    );
    assert_eq!(
        section_of(&x, "message number 2"),
        Some("message 2: Note 2")
    );
    assert_eq!(
        x.meta.from.as_deref(),
        Some("Sender 1 <sender1@example.org>; Sender 2 <sender2@example.org>; Sender 0 <sender0@example.org>")
    );
    assert_eq!(x.meta.to.as_deref(), Some("list@example.org"));
    assert_eq!(x.meta.subject.as_deref(), Some("Note 1"));
    assert_eq!(x.meta.date, civil_to_epoch(2024, 1, 1, 0, 1, 0));
    assert!(x.warning.is_none());
    // A "From " line inside a body (not after a blank line) does not split.
    let mbox =
        "From a Mon\nSubject: one\n\nline\nFrom here on\n\nFrom b Tue\nSubject: two\n\nbody two\n";
    let x = ok("b.mbox", mbox.as_bytes());
    assert_eq!(labels(&x), ["message 1: one", "message 2: two"]);
    let m = failed("e.mbox", b"\n\n  \n");
    assert!(m.contains("MBOX"), "{m}");
}

#[test]
fn extract_mbox_of_10000_messages_is_bounded() {
    let mbox: String = (1..=10_000).map(mbox_message).collect();
    let start = Instant::now();
    let x = ok("big.mbox", mbox.as_bytes());
    let took = start.elapsed();
    assert!(took.as_secs() < 20, "{took:?}");
    assert_eq!(x.sections.len(), mail::MAX_MESSAGES);
    let w = x.warning.as_deref().unwrap_or_default();
    assert!(w.contains("5000 of 10000"), "{w}");
    assert!(x.meta.from.as_deref().unwrap().len() <= 4096);
    // A small budget stops early.
    let x = extract("big.mbox", mbox.as_bytes(), mbox.len() / 64 + 1).unwrap();
    assert!(x.text.len() <= mbox.len() / 64 + 1);
}

#[test]
fn extract_new_kinds_by_extension_and_names() {
    for (name, kind) in [
        ("a.odt", DocKind::Odt),
        ("a.ODS", DocKind::Ods),
        ("a.odp", DocKind::Odp),
        ("a.xlsx", DocKind::Xlsx),
        ("a.pptx", DocKind::Pptx),
        ("a.epub", DocKind::Epub),
        ("a.rtf", DocKind::Rtf),
        ("a.eml", DocKind::Email),
        ("a.mbox", DocKind::Mbox),
    ] {
        assert_eq!(kind_from_name(name), Some(kind), "{name}");
        assert!(!kind.is_verbatim());
    }
    let names: Vec<&str> = DocKind::ALL.iter().map(|k| k.as_str()).collect();
    for n in [
        "odt", "ods", "odp", "xlsx", "pptx", "epub", "rtf", "email", "mbox",
    ] {
        assert!(names.contains(&n), "{n}");
    }
    for ext in ["doc", "xls", "ppt"] {
        assert_eq!(
            extract(&format!("old.{ext}"), b"x", MAX),
            Err(ExtractError::Unsupported(ext.into()))
        );
    }
}

/// Prints what the extractor makes of the real samples of `scripts/make-format-samples.sh`
/// in `$PEROS_FORMAT_SAMPLES` and checks each phrase's section (tests/tests/formats.rs does
/// the same end to end); without the variable there is nothing to do.
#[test]
fn extract_real_samples_when_given() {
    let Some(dir) = std::env::var_os("PEROS_FORMAT_SAMPLES") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let tsv = std::fs::read_to_string(dir.join("phrases.tsv")).unwrap();
    for line in tsv.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let (file, phrase, location) = (f[0], f[1], f.get(2).copied().unwrap_or(""));
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let x = ok(file, &bytes);
        println!("--- {file}: {:?} {:?}\n{}\n", x.sections, x.meta, x.text);
        let want = (!location.is_empty()).then_some(location);
        assert_eq!(section_of(&x, phrase), want, "{file}: {phrase}");
    }
}

/// Damaged copies of every format (cut short, bytes overwritten): an error or some text,
/// never a panic.
#[test]
fn extract_damaged_documents_never_panic() {
    let odt = build_odf(
        ODT_MIME,
        "<office:text><text:p>hello <text:s/>world</text:p></office:text>",
    );
    let xlsx = build_xlsx(
        SHEET1,
        "<row><c t=\"inlineStr\"><is><t>x</t></is></c></row>",
    );
    let epub = build_epub(
        OPF,
        &[(
            "OEBPS/text/one.xhtml",
            "<html><body><p>one</p></body></html>",
        )],
    );
    let rtf = br"{\rtf1{\info{\title T}}\u8364?x\'e9{\*\d y}\par z}".to_vec();
    let docs: Vec<(&str, Vec<u8>)> = vec![
        ("a.odt", odt),
        ("a.xlsx", xlsx),
        ("a.epub", epub),
        ("a.rtf", rtf),
        ("a.eml", EML.as_bytes().to_vec()),
        (
            "a.mbox",
            (1..=3).map(mbox_message).collect::<String>().into_bytes(),
        ),
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for (name, doc) in &docs {
        for cut in (0..doc.len()).step_by((doc.len() / 97).max(1)) {
            let _ = extract(name, &doc[..cut], MAX);
        }
        for _ in 0..300 {
            let mut d = doc.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % d.len();
                d[at] = next() as u8;
            }
            let _ = extract(name, &d, MAX);
        }
    }
}

#[test]
fn extract_epub_reads_a_bounded_number_of_parts() {
    let n = zipxml::MAX_PARTS_READ + 500;
    let mut opf = String::from("<package><metadata/><manifest>");
    for i in 0..n {
        opf.push_str(&format!(
            "<item id=\"c{i}\" href=\"c{i}.xhtml\" media-type=\"application/xhtml+xml\"/>"
        ));
    }
    opf.push_str("</manifest><spine>");
    for i in 0..n {
        opf.push_str(&format!("<itemref idref=\"c{i}\"/>"));
    }
    opf.push_str("</spine></package>");
    let chapters: Vec<(String, String)> = (0..n)
        .map(|i| {
            (
                format!("OEBPS/c{i}.xhtml"),
                format!("<html><body><p>part{i}</p></body></html>"),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = chapters
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let x = ok("many.epub", &build_epub(&opf, &refs));
    // container.xml and the OPF count as reads too.
    assert_eq!(x.sections.len(), zipxml::MAX_PARTS_READ - 2);
    let w = x.warning.as_deref().unwrap_or_default();
    assert!(w.contains("EPUB: only the first"), "{w}");
}

#[test]
fn extract_section_labels_are_one_short_line() {
    let mut tb = TextBuilder::new(1000);
    tb.section(format!("sheet {}", "é".repeat(500)));
    tb.push("a");
    tb.section("message 2: Re:\r\n\tnext  line");
    tb.push("b");
    let (_, sections) = tb.finish();
    assert!(sections[0].label.len() <= MAX_LABEL_BYTES);
    assert!(sections[0].label.starts_with("sheet éé"));
    assert_eq!(sections[1].label, "message 2: Re: next line");
}

//! OCR and photo metadata end to end, on a real mount with the real tools: Tesseract reads a
//! scanned letter (a PNG that ImageMagick renders from text and rotates), a PDF with one text
//! page and one scanned page is found by words of either and cited by page, a copy of a scan is
//! never read twice, EXIF written by exiftool is filterable (`taken:`, `near:`, `camera:`) and
//! usable in a view, and hostile pictures are reported with their reason while the mount keeps
//! working.
//!
//! The tools come from scripts/setup.sh (tesseract-ocr, imagemagick, libimage-exiftool-perl,
//! poppler-utils); a missing one fails the test, naming the package.

use std::fs;
use std::path::Path;
use std::process::Command;

use peros_tests::*;

fn need(tool: &str, package: &str) {
    assert!(
        have(tool),
        "`{tool}` is not installed: run scripts/setup.sh (apt package {package})"
    );
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Renders `text` as a slightly rotated scan, `w`×`h` pixels of 8-bit grey, written as
/// `format:path` by ImageMagick (`png:x.png`, `gray:x.raw`).
fn render_scan(text: &str, w: u32, h: u32, out: &str) {
    need("convert", "imagemagick");
    run(Command::new("convert")
        .args([
            "-background",
            "white",
            "-fill",
            "black",
            "-font",
            "DejaVu-Serif",
            "-pointsize",
            "40",
            "-size",
        ])
        .arg(format!("{}x", w - 200))
        .arg(format!("caption:{text}"))
        .args([
            "-rotate",
            "1.2",
            "-background",
            "white",
            "-gravity",
            "center",
        ])
        .arg("-extent")
        .arg(format!("{w}x{h}"))
        .args(["-colorspace", "Gray", "-depth", "8"])
        .arg(out));
}

/// A two-page PDF: page 1 has `text` as a text layer (Helvetica), page 2 is only a picture
/// (8-bit grey, `w`×`h`), as a scanner makes it.
fn pdf_text_then_scan(text: &[&str], gray: &[u8], w: u32, h: u32) -> Vec<u8> {
    let mut content = String::from("BT /F1 14 Tf 72 720 Td 18 TL\n");
    for line in text {
        let esc = line
            .replace('\\', "\\\\")
            .replace('(', "\\(")
            .replace(')', "\\)");
        content.push_str(&format!("({esc}) Tj T*\n"));
    }
    content.push_str("ET\n");
    let draw = "q 612 0 0 792 0 0 cm /Im1 Do Q\n";
    let mut objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R 6 0 R] /Count 2 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
           /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_vec(),
        format!(
            "<< /Length {} >>\nstream\n{content}endstream",
            content.len()
        )
        .into_bytes(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 7 0 R \
           /Resources << /XObject << /Im1 8 0 R >> >> >>"
            .to_vec(),
        format!("<< /Length {} >>\nstream\n{draw}endstream", draw.len()).into_bytes(),
    ];
    let mut image = format!(
        "<< /Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceGray \
         /BitsPerComponent 8 /Length {} >>\nstream\n",
        gray.len()
    )
    .into_bytes();
    image.extend_from_slice(gray);
    image.extend_from_slice(b"\nendstream");
    objects.push(image);
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        pdf.extend_from_slice(body);
        pdf.extend_from_slice(b"\nendobj\n");
    }
    let xref = pdf.len();
    pdf.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        pdf.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    pdf
}

/// `peros index --wait --json` through the daemon: text, OCR and vectors done.
fn wait_all(env: &Env) -> Value {
    let v = env.json(["index", "--wait", "--timeout", "300", "--json"]);
    assert_eq!(v["pending_text"], 0, "text still pending: {v}");
    assert!(
        v["ocr"]["unavailable"].is_null(),
        "OCR cannot run here: {} (run scripts/setup.sh)",
        v["ocr"]["unavailable"]
    );
    assert_eq!(v["ocr"]["queued_files"], 0, "OCR still queued: {v}");
    v
}

/// Paths and locations of `peros search --json` hits.
fn hits(env: &Env, query: &str, mode: &str) -> Vec<(String, Option<String>)> {
    let v = env.json(["search", "--json", "--mode", mode, "--", query]);
    v["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("no hits array for {query:?}: {v}"))
        .iter()
        .map(|h| {
            (
                h["path"].as_str().expect("path").to_string(),
                h["location"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn paths(h: &[(String, Option<String>)]) -> Vec<&str> {
    h.iter().map(|(p, _)| p.as_str()).collect()
}

const LETTER: &str = "Dear Mr Whitcombe, the quarterly invoice from the lighthouse keeper \
    arrived on Tuesday. Please settle the balance of four hundred pounds before the spring \
    tide, or the lamp oil deliveries to Gannet Rock will stop.";

const SCANNED_PAGE: &str = "Minutes of the allotment committee. The marrow competition is \
    moved to September because the greenhouse roof collapsed under the hailstorm.";

#[test]
fn scans_are_read_in_the_background_and_cited_by_page() {
    need("tesseract", "tesseract-ocr");
    need("pdftocairo", "poppler-utils");
    let env = Env::init();
    // Two workers read the letter and the scanned page side by side, each its own file.
    set_index_key(&env, "ocr_workers = 2");
    let m = Mounted::new(&env, &[]);
    let scans = env.path("scans");
    fs::create_dir_all(&scans).unwrap();
    let letter = scans.join("letter.png");
    render_scan(LETTER, 1700, 900, &format!("png:{}", letter.display()));
    let raw = scans.join("page.raw");
    render_scan(SCANNED_PAGE, 1275, 1650, &format!("gray:{}", raw.display()));
    let gray = fs::read(&raw).unwrap();
    assert_eq!(
        gray.len(),
        1275 * 1650,
        "ImageMagick's raw page has the asked size"
    );
    let pdf = pdf_text_then_scan(
        &[
            "Garden society newsletter.",
            "The beekeeping workshop on Saturday covers swarm prevention and queen rearing.",
        ],
        &gray,
        1275,
        1650,
    );

    fs::create_dir_all(m.p("inbox")).unwrap();
    fs::copy(&letter, m.p("inbox/letter.png")).unwrap();
    fs::write(m.p("inbox/society.pdf"), &pdf).unwrap();
    let v = wait_all(&env);
    assert!(
        v["ocr"]["done"].as_u64().unwrap_or(0) >= 2,
        "the letter and the scanned page were read: {v}"
    );
    assert_eq!(v["ocr"]["failed"], 0, "no OCR failure: {v}");

    // The scan, by words only its picture holds.
    let h = hits(&env, "lighthouse keeper invoice Whitcombe", "text");
    assert_eq!(paths(&h).first(), Some(&"/inbox/letter.png"), "{h:?}");
    let h = hits(&env, "greenhouse hailstorm marrow competition", "text");
    assert_eq!(
        h.first(),
        Some(&("/inbox/society.pdf".to_string(), Some("page 2".to_string()))),
        "the scanned page is found and cited as page 2: {h:?}"
    );
    let h = hits(&env, "beekeeping swarm prevention", "text");
    assert_eq!(
        h.first(),
        Some(&("/inbox/society.pdf".to_string(), Some("page 1".to_string()))),
        "the text page is cited as page 1: {h:?}"
    );
    // And by meaning, once embedded: the OCR'd text has vectors like any other.
    index_embedded(&env);
    let h = hits(&env, "bill for the lamp oil at the lighthouse", "hybrid");
    assert_eq!(paths(&h).first(), Some(&"/inbox/letter.png"), "{h:?}");

    // A copy of a scan is never read again: its text comes from the cache.
    let done = v["ocr"]["done"].as_u64().unwrap();
    fs::copy(&letter, m.p("inbox/letter copy.png")).unwrap();
    let v = wait_all(&env);
    assert_eq!(
        v["ocr"]["done"].as_u64().unwrap(),
        done,
        "no second OCR: {v}"
    );
    let h = hits(&env, "lighthouse keeper invoice Whitcombe", "text");
    let top2: std::collections::BTreeSet<&str> = paths(&h).into_iter().take(2).collect();
    assert_eq!(
        top2,
        ["/inbox/letter copy.png", "/inbox/letter.png"].into(),
        "{h:?}"
    );

    // The text survives a remount (it is in the index, not in memory).
    m.unmount();
    let _m = Mounted::new(&env, &[]);
    let h = hits(&env, "greenhouse hailstorm marrow", "text");
    assert_eq!(paths(&h).first(), Some(&"/inbox/society.pdf"), "{h:?}");
}

fn photo(dir: &Path, name: &str, colour: &str, exif: &[&str]) -> std::path::PathBuf {
    need("exiftool", "libimage-exiftool-perl");
    let p = dir.join(name);
    run(Command::new("convert")
        .args(["-size", "320x240"])
        .arg(format!("gradient:{colour}-white"))
        .arg(&p));
    run(Command::new("exiftool")
        .args(["-q", "-overwrite_original"])
        .args(exif)
        .arg(&p));
    p
}

#[test]
fn photo_metadata_is_filterable_and_makes_views() {
    need("convert", "imagemagick");
    let env = Env::init();
    fs::write(
        env.home.join("views.toml"),
        "[views]\n\"photos 2023\" = \"kind:image taken:2023\"\n",
    )
    .unwrap();
    let m = Mounted::new(&env, &[]);
    let src = env.path("photos");
    fs::create_dir_all(&src).unwrap();
    let lyon = photo(
        &src,
        "IMG_0001.jpg",
        "blue",
        &[
            "-DateTimeOriginal=2023:07:14 10:30:00",
            "-GPSLatitude=45.7640",
            "-GPSLatitudeRef=N",
            "-GPSLongitude=4.8357",
            "-GPSLongitudeRef=E",
            "-Make=Canon",
            "-Model=Canon EOS 5D",
        ],
    );
    let paris = photo(
        &src,
        "IMG_0002.jpg",
        "green",
        &[
            "-DateTimeOriginal=2021:05:01 08:00:00",
            "-GPSLatitude=48.8566",
            "-GPSLatitudeRef=N",
            "-GPSLongitude=2.3522",
            "-GPSLongitudeRef=E",
            "-Make=FUJIFILM",
            "-Model=X-T3",
        ],
    );
    fs::create_dir_all(m.p("camera")).unwrap();
    fs::copy(&lyon, m.p("camera/IMG_0001.jpg")).unwrap();
    fs::copy(&paris, m.p("camera/IMG_0002.jpg")).unwrap();
    wait_all(&env);

    let lyon_only = vec!["/camera/IMG_0001.jpg"];
    let paris_only = vec!["/camera/IMG_0002.jpg"];
    for (q, want) in [
        ("taken:2023", &lyon_only),
        ("taken:2023-07", &lyon_only),
        ("taken:<2022", &paris_only),
        ("near:45.76,4.84", &lyon_only),
        ("near:48.85,2.35,5km", &paris_only),
        ("near:Lyon", &lyon_only),
        ("near:Paris", &paris_only),
        ("camera:canon", &lyon_only),
        ("camera:x-t3 kind:image", &paris_only),
    ] {
        let h = hits(&env, q, "text");
        assert_eq!(&paths(&h), want, "{q}");
    }
    // The place and the camera are words too.
    let h = hits(&env, "Lyon", "text");
    assert_eq!(paths(&h), lyon_only, "free text finds the place name");
    // A view of photos of one year.
    let (_, _) = poll_every(
        "@views/photos 2023 lists the 2023 photo",
        std::time::Duration::from_secs(30),
        std::time::Duration::from_millis(200),
        || (dir_names(&m.p("@views/photos 2023")) == ["IMG_0001.jpg"]).then_some(()),
    );
    // A bad filter is refused with what to write.
    let out = env.fails(["search", "--", "near:95,400"]);
    assert!(stderr(&out).contains("near:45.76,4.84"), "{}", stderr(&out));
}

/// A PNG of `w`×`h` pixels whose header is valid and whose pixel data is missing.
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    png.extend_from_slice(&0u32.to_be_bytes());
    png.extend_from_slice(b"IEND");
    png.extend_from_slice(&crc32(b"IEND").to_be_bytes());
    png
}

/// A PDF of `pages` pages that all draw the same line of text.
fn many_page_pdf(pages: usize) -> Vec<u8> {
    let content = "BT /F1 12 Tf 72 720 Td (Chapter of the endless ledger) Tj ET";
    let mut objs: Vec<String> = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".into(),
        String::new(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".into(),
        format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len() + 1
        ),
    ];
    let kids: Vec<String> = (0..pages).map(|i| format!("{} 0 R", 5 + i)).collect();
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
    pdf.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes());
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
fn hostile_pictures_are_reported_and_the_mount_survives() {
    need("tesseract", "tesseract-ocr");
    let env = Env::init();
    let m = Mounted::new(&env, &[]);
    fs::create_dir_all(m.p("bad")).unwrap();
    // A picture too large to OCR (a decompression bomb's header), a damaged PNG, a text file
    // under a picture's name, and a picture whose pixels are missing.
    fs::write(m.p("bad/bomb.png"), png_header_only(60_000, 60_000)).unwrap();
    fs::write(m.p("bad/damaged.png"), b"\x89PNG\r\n\x1a\n\x00\x00garbage").unwrap();
    fs::write(m.p("bad/not-a-photo.jpg"), b"just some text, not a JPEG").unwrap();
    fs::write(m.p("bad/empty-pixels.png"), png_header_only(800, 600)).unwrap();
    fs::write(
        m.p("bad/fine.txt"),
        b"the mount still indexes ordinary files",
    )
    .unwrap();
    // A 10,000-page PDF: read up to the page limit, with the reason.
    fs::write(m.p("bad/ledger.pdf"), many_page_pdf(10_000)).unwrap();
    let t = std::time::Instant::now();
    let v = wait_all(&env);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(120),
        "hostile pictures cost bounded time: {:?}",
        t.elapsed()
    );
    let listed = |key: &str| -> Vec<(String, String)> {
        v[key]
            .as_array()
            .unwrap_or_else(|| panic!("no {key} in {v}"))
            .iter()
            .map(|e| {
                (
                    e[0].as_str().unwrap().to_string(),
                    e[1].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let errors = listed("errors");
    let warnings = listed("warnings");
    let reason = |list: &[(String, String)], path: &str| {
        list.iter()
            .find(|(p, _)| p == path)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("{path} is not reported: {list:?}"))
    };
    assert!(
        reason(&warnings, "/bad/bomb.png").contains("OCR limit"),
        "{warnings:?}"
    );
    assert!(
        reason(&errors, "/bad/damaged.png").contains("damaged"),
        "{errors:?}"
    );
    assert!(
        reason(&warnings, "/bad/ledger.pdf").contains("of 10000 pages"),
        "{warnings:?}"
    );
    let h = hits(&env, "endless ledger", "text");
    assert_eq!(
        paths(&h),
        ["/bad/ledger.pdf"],
        "its first pages are searchable"
    );
    assert!(
        reason(&errors, "/bad/not-a-photo.jpg").contains("not a PNG, JPEG"),
        "{errors:?}"
    );
    // The picture with no pixels went to Tesseract, which failed on it: counted, not fatal.
    assert!(v["ocr"]["failed"].as_u64().unwrap() >= 1, "{v}");
    let h = hits(&env, "ordinary files", "text");
    assert_eq!(paths(&h), ["/bad/fine.txt"]);
    // The mount is still there and writable.
    fs::write(m.p("bad/after.txt"), b"still alive").unwrap();
    assert_eq!(fs::read(m.p("bad/after.txt")).unwrap(), b"still alive");
}

/// Adds `line` to the `[index]` table of the home's config.toml.
fn set_index_key(env: &Env, line: &str) {
    let path = env.home.join("config.toml");
    let cur = fs::read_to_string(&path).unwrap();
    assert!(
        cur.contains("\n[index]\n"),
        "config.toml has an [index] table: {cur}"
    );
    fs::write(
        &path,
        cur.replacen("\n[index]\n", &format!("\n[index]\n{line}\n"), 1),
    )
    .unwrap();
}

#[test]
fn ocr_languages_are_checked() {
    need("tesseract", "tesseract-ocr");
    let env = Env::init();
    set_index_key(&env, "ocr_languages = \"eng deu\"");
    let out = env.fails(["index", "--json"]);
    assert!(
        stderr(&out).contains("ocr_languages") && stderr(&out).contains("eng+deu"),
        "a malformed list says how to write it: {}",
        stderr(&out)
    );
    let env = Env::init();
    set_index_key(&env, "ocr_languages = \"eng+qqz\"");
    let m = Mounted::new(&env, &[]);
    render_scan(
        LETTER,
        1700,
        900,
        &format!("png:{}", m.p("letter.png").display()),
    );
    let v = env.json(["index", "--wait", "--timeout", "120", "--json"]);
    let why = v["ocr"]["unavailable"].as_str().unwrap_or_default();
    assert!(
        why.contains("tesseract-ocr-qqz"),
        "names the missing package: {v}"
    );
    assert_eq!(v["ocr"]["queued_files"], 1, "the scan waits for OCR: {v}");
}

#[test]
fn ocr_results_travel_with_the_tenant() {
    need("tesseract", "tesseract-ocr");
    let Some(w) = peros_tests::seaweed::shared() else {
        panic!("{}", peros_tests::seaweed::skip_message());
    };
    let t = S3Target {
        url: format!(
            "s3://{}/{}",
            peros_tests::seaweed::BUCKET,
            peros_tests::seaweed::unique_prefix("ocr")
        ),
        env: w.aws_env(),
    };
    let mut a = Env::new();
    a.passphrase = Some("scans travel".into());
    a.s3 = Some(t.clone());
    a.ok(["init", "--store", &t.url]);
    let src = a.path("scans");
    fs::create_dir_all(&src).unwrap();
    render_scan(
        LETTER,
        1700,
        900,
        &format!("png:{}", src.join("letter.png").display()),
    );
    a.ok([
        std::ffi::OsStr::new("import"),
        src.as_os_str(),
        std::ffi::OsStr::new("/scans"),
    ]);
    let v = a.json(["index", "--wait", "--timeout", "300", "--json"]);
    assert_eq!(v["ocr"]["done"], 1, "node A read the scan: {v}");
    // The result went to the bucket, sealed (no plaintext: the phrase is not in it).
    let bucket = w.remote(t.url.splitn(4, '/').nth(3).unwrap());
    let listed = bucket.list("index/ocr/").unwrap();
    assert_eq!(listed.len(), 1, "one sealed OCR result: {listed:?}");
    let (sealed, _) = bucket
        .get(&listed[0].0)
        .unwrap()
        .expect("the listed result");
    assert!(
        !contains(&sealed, b"lighthouse") && !contains(&sealed, b"Whitcombe"),
        "the OCR result is sealed, not plaintext"
    );

    let mut b = Env::new();
    b.s3 = Some(t.clone());
    b.passphrase = a.passphrase.clone();
    b.ok(["init", "--from", &t.url]);
    let v = b.json(["index", "--wait", "--timeout", "300", "--json"]);
    assert_eq!(v["ocr"]["done"], 0, "node B ran no OCR: {v}");
    let h = hits(&b, "lighthouse keeper invoice Whitcombe", "text");
    assert_eq!(paths(&h).first(), Some(&"/scans/letter.png"), "{h:?}");
}

//! Images (PNG, JPEG, TIFF, WebP): EXIF as metadata (date taken, camera, GPS position and the
//! nearest place in the offline gazetteer), the picture's own text through OCR (asked of the
//! [`OcrLookup`], never run here).

use std::io::Cursor;
use std::sync::OnceLock;

use super::{DocMeta, ExtractError, Extracted, OcrLookup, OcrPart, TextBuilder};

/// Pictures larger than this are not sent to OCR (Tesseract's memory grows with the pixels;
/// a 100-megapixel panorama is not a document).
pub const MAX_OCR_PIXELS: u64 = 40_000_000;

/// Whether the bytes start like a PNG, JPEG, TIFF or WebP file.
pub(super) fn is_image(b: &[u8]) -> bool {
    b.starts_with(b"\x89PNG\r\n\x1a\n")
        || b.starts_with(b"\xFF\xD8\xFF")
        || b.starts_with(b"II*\0")
        || b.starts_with(b"MM\0*")
        || (b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP")
}

pub(super) fn extract_image(
    bytes: &[u8],
    max_text_bytes: usize,
    ocr: &dyn OcrLookup,
) -> Result<Extracted, ExtractError> {
    if !is_image(bytes) {
        return Err(ExtractError::Failed(
            "not a PNG, JPEG, TIFF or WebP picture (damaged, or another format under an image \
             name); not indexed"
                .into(),
        ));
    }
    let size = imagesize::blob_size(bytes).map_err(|e| {
        ExtractError::Failed(format!(
            "damaged picture (its size cannot be read: {e}); not indexed"
        ))
    })?;
    let pixels = (size.width as u64).saturating_mul(size.height as u64);
    let meta = exif_meta(bytes);
    let mut tb = TextBuilder::new(max_text_bytes);
    tb.push(&meta.as_text());
    let mut out = Extracted::default();
    if pixels == 0 {
        out.warning = Some("the picture is empty (0 pixels): nothing to read".into());
    } else if pixels > MAX_OCR_PIXELS {
        out.warning = Some(format!(
            "{}x{} pixels is over the OCR limit of {} megapixels: its text is not read",
            size.width,
            size.height,
            MAX_OCR_PIXELS / 1_000_000
        ));
    } else {
        match ocr.recognised(OcrPart::Image) {
            Some(text) => {
                if !tb.text.is_empty() {
                    tb.push("\n");
                }
                tb.push(text.trim());
            }
            None => out.ocr.push(OcrPart::Image),
        }
    }
    let (text, sections) = tb.finish();
    out.text = text;
    out.sections = sections;
    out.meta = meta;
    Ok(out)
}

/// What EXIF says; an image without EXIF (or with damaged EXIF) has no metadata.
fn exif_meta(bytes: &[u8]) -> DocMeta {
    use exif::{In, Tag, Value};
    let mut meta = DocMeta::default();
    let Ok(exif) = exif::Reader::new().read_from_container(&mut Cursor::new(bytes)) else {
        return meta;
    };
    let ascii = |tag: Tag| -> Option<String> {
        let f = exif.get_field(tag, In::PRIMARY)?;
        match &f.value {
            Value::Ascii(parts) => {
                let s: String = parts
                    .iter()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ");
                let s: String = s.chars().filter(|c| !c.is_control()).take(256).collect();
                let s = s.trim().to_string();
                (!s.is_empty()).then_some(s)
            }
            _ => None,
        }
    };
    meta.taken = ascii(Tag::DateTimeOriginal)
        .or_else(|| ascii(Tag::DateTimeDigitized))
        .or_else(|| ascii(Tag::DateTime))
        .and_then(|s| exif_date(&s));
    meta.camera = match (ascii(Tag::Make), ascii(Tag::Model)) {
        // Models often repeat the make ("Canon" + "Canon EOS 5D").
        (Some(make), Some(model)) if model.to_lowercase().starts_with(&make.to_lowercase()) => {
            Some(model)
        }
        (Some(make), Some(model)) => Some(format!("{make} {model}")),
        (a, b) => a.or(b),
    };
    meta.title = ascii(Tag::ImageDescription);
    meta.author = ascii(Tag::Artist);
    let degrees = |tag: Tag| -> Option<f64> {
        let f = exif.get_field(tag, In::PRIMARY)?;
        let Value::Rational(r) = &f.value else {
            return None;
        };
        let part = |i: usize| {
            r.get(i)
                .filter(|x| x.denom != 0)
                .map(|x| x.num as f64 / x.denom as f64)
                .unwrap_or(0.0)
        };
        (!r.is_empty()).then(|| part(0) + part(1) / 60.0 + part(2) / 3600.0)
    };
    let reference = |tag: Tag| ascii(tag).and_then(|s| s.chars().next());
    if let (Some(lat), Some(lon)) = (degrees(Tag::GPSLatitude), degrees(Tag::GPSLongitude)) {
        let lat = if reference(Tag::GPSLatitudeRef) == Some('S') {
            -lat
        } else {
            lat
        };
        let lon = if reference(Tag::GPSLongitudeRef) == Some('W') {
            -lon
        } else {
            lon
        };
        if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) && lat.is_finite() {
            meta.gps = Some((lat, lon));
            meta.place = place_near(lat, lon);
        }
    }
    meta
}

/// `YYYY:MM:DD HH:MM:SS` (read as UTC: EXIF has no zone unless OffsetTime is set).
fn exif_date(s: &str) -> Option<i64> {
    let n: Vec<i64> = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .take(6)
        .map(|p| p.parse().ok())
        .collect::<Option<Vec<_>>>()?;
    if n.len() < 3 || n[0] == 0 {
        return None;
    }
    let at = |i: usize| n.get(i).copied().unwrap_or(0);
    super::civil_to_epoch(n[0], n[1], n[2], at(3), at(4), at(5))
}

/// The nearest city of the offline gazetteer (GeoNames cities over 1,000 people, shipped in
/// the `reverse_geocoder` crate), as "City, Region, CC"; none farther than 100 km.
pub fn place_near(lat: f64, lon: f64) -> Option<String> {
    static GAZETTEER: OnceLock<reverse_geocoder::ReverseGeocoder> = OnceLock::new();
    let g = GAZETTEER.get_or_init(reverse_geocoder::ReverseGeocoder::new);
    let r = g.search((lat, lon)).record;
    if super::distance_km((lat, lon), (r.lat, r.lon)) > 100.0 {
        return None;
    }
    let parts: Vec<&str> = [r.name.as_str(), r.admin1.as_str(), r.cc.as_str()]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect();
    Some(parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exif_dates_parse() {
        assert_eq!(exif_date("2023:07:14 10:30:00"), Some(1_689_330_600));
        assert_eq!(exif_date("0000:00:00 00:00:00"), None);
        assert_eq!(exif_date("junk"), None);
    }

    #[test]
    fn the_gazetteer_names_a_city() {
        let p = place_near(45.764, 4.8357).unwrap();
        assert!(p.contains("Lyon"), "{p}");
        assert_eq!(place_near(0.0, -140.0), None, "mid-Pacific is near nothing");
    }

    #[test]
    fn broken_pictures_fail_cleanly() {
        let e = extract_image(b"\x89PNG\r\n\x1a\nxx", 1 << 20, &super::super::NoOcr);
        assert!(matches!(e, Err(ExtractError::Failed(_))), "{e:?}");
        let e = extract_image(b"hello", 1 << 20, &super::super::NoOcr);
        assert!(matches!(e, Err(ExtractError::Failed(_))), "{e:?}");
    }
}

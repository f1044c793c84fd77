//! Chunking of extracted text with byte offsets, and search-result snippets.
//!
//! [`chunk_text`] cuts a text into pieces of about `target_bytes`, preferring
//! to cut at paragraph boundaries (blank lines), then after sentence ends,
//! then at whitespace, and only as a last resort between two characters.
//! Consecutive chunks overlap by up to `overlap_bytes`, starting on a
//! sentence or word boundary where there is one. Every chunk records where it
//! starts, so that `&text[c.offset..c.offset + c.text.len()] == c.text`:
//! with extracted text whose offsets are file bytes, a chunk points straight
//! into the file.

/// The chunk size the indexer uses unless configured otherwise.
pub const DEFAULT_TARGET_BYTES: usize = 1000;
/// The overlap between consecutive chunks unless configured otherwise.
pub const DEFAULT_OVERLAP_BYTES: usize = 100;

/// A piece of a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextChunk {
    /// Byte offset into the chunked text where `text` starts.
    pub offset: usize,
    /// The chunk: never empty nor whitespace-only, no leading or trailing
    /// whitespace.
    pub text: String,
}

impl TextChunk {
    /// The byte range of the chunk in the chunked text.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.text.len()
    }
}

/// Splits `text` into chunks of at most `target_bytes` (or one character,
/// if a single character is longer), consecutive chunks sharing up to
/// `overlap_bytes` (capped at half the target so that chunking always moves
/// forward). Whitespace-only stretches produce no chunk.
pub fn chunk_text(text: &str, target_bytes: usize, overlap_bytes: usize) -> Vec<TextChunk> {
    let target = target_bytes.max(1);
    let overlap = overlap_bytes.min(target / 2);
    let mut chunks = Vec::with_capacity(text.len() / target + 1);
    let mut pos = skip_whitespace(text, 0);
    while pos < text.len() {
        let end = if text.len() - pos <= target {
            text.len()
        } else {
            find_cut(text, pos, target)
        };
        let piece = text[pos..end].trim_end();
        if !piece.is_empty() {
            chunks.push(TextChunk {
                offset: pos,
                text: piece.to_owned(),
            });
        }
        if end == text.len() || text[end..].trim_start().is_empty() {
            break;
        }
        let next = skip_whitespace(text, overlap_start(text, pos, end, overlap));
        debug_assert!(next > pos);
        pos = next;
    }
    chunks
}

/// Where the chunk starting at `pos` should end: an index in `pos+1..`
/// at most `pos + target`, unless a single character is longer.
fn find_cut(text: &str, pos: usize, target: usize) -> usize {
    let bytes = text.as_bytes();
    let mut hard = floor_char_boundary(text, pos + target);
    if hard <= pos {
        hard = ceil_char_boundary(text, pos + 1);
    }
    // Structural cuts may shorten a chunk to half the target, not more.
    let min = pos + (target / 2).max(1);

    // 1. A paragraph boundary: a newline ending a blank (or whitespace-only)
    //    line. Cut just before that line's leading newline.
    let mut i = hard;
    while i > min {
        i -= 1;
        if bytes[i] != b'\n' {
            continue;
        }
        let mut j = i;
        while j > pos && matches!(bytes[j - 1], b' ' | b'\t' | b'\r') {
            j -= 1;
        }
        if j > min && bytes[j - 1] == b'\n' {
            return j - 1;
        }
    }

    // 2. After a sentence end: ".!?" followed by whitespace, or a CJK full stop.
    let mut i = hard;
    while i > min {
        if text.is_char_boundary(i) && is_sentence_end(text, i) {
            return i;
        }
        i -= 1;
    }

    // 3. At the last whitespace.
    if let Some((i, _)) = text[pos..hard]
        .char_indices()
        .rev()
        .find(|&(i, c)| i > 0 && c.is_whitespace())
    {
        return pos + i;
    }

    // 4. Between two characters.
    hard
}

/// True when a sentence ends just before byte `i` (a char boundary).
fn is_sentence_end(text: &str, i: usize) -> bool {
    let Some(prev) = text[..i].chars().next_back() else {
        return false;
    };
    match prev {
        '。' | '！' | '？' | '…' => true,
        '.' | '!' | '?' => text[i..].chars().next().is_none_or(char::is_whitespace),
        _ => false,
    }
}

/// Where the chunk after the one spanning `pos..cut` starts: up to `overlap`
/// bytes before `cut`, moved forward to the first sentence start, else the
/// first word start, in that stretch. Always in `pos+1..=cut`.
fn overlap_start(text: &str, pos: usize, cut: usize, overlap: usize) -> usize {
    if overlap == 0 {
        return cut;
    }
    let from = ceil_char_boundary(text, cut.saturating_sub(overlap).max(pos + 1));
    if from >= cut {
        return cut;
    }
    let region = &text[from..cut];
    // A sentence start: just after a sentence end.
    if let Some(i) = region
        .char_indices()
        .map(|(i, c)| from + i + c.len_utf8())
        .find(|&i| i < cut && is_sentence_end(text, i))
    {
        return i;
    }
    // A word start: just after whitespace (unless we already are at one).
    let at_word_start = text[..from]
        .chars()
        .next_back()
        .is_some_and(char::is_whitespace);
    if !at_word_start {
        if let Some((i, c)) = region.char_indices().find(|&(_, c)| c.is_whitespace()) {
            return from + i + c.len_utf8();
        }
    }
    from
}

fn skip_whitespace(text: &str, from: usize) -> usize {
    from + (text[from..].len() - text[from..].trim_start().len())
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    if i >= text.len() {
        return text.len();
    }
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char_boundary(text: &str, mut i: usize) -> usize {
    if i >= text.len() {
        return text.len();
    }
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// A window of at most `max_chars` characters of `text` (ellipses included)
/// around the first occurrence of any of `query_terms` (case-insensitive),
/// cut at word boundaries where possible, with "…" where text was left out
/// and runs of whitespace shown as one space. Without a match, the start of
/// the text.
pub fn snippet(text: &str, query_terms: &[String], max_chars: usize) -> String {
    if max_chars == 0 {
        return String::new();
    }
    if text.chars().nth(max_chars).is_none() {
        return collapse_whitespace(text);
    }
    // Room for an ellipsis on each side.
    let budget = max_chars.saturating_sub(2).max(1);
    let (m_start, m_end) = find_first_ci(text, query_terms).unwrap_or((0, 0));
    let match_chars = text[m_start..m_end].chars().count();
    // Put the match about a third into the window.
    let before = budget.saturating_sub(match_chars) / 3;
    let mut start = text[..m_start]
        .char_indices()
        .rev()
        .take(before)
        .last()
        .map_or(m_start, |(i, _)| i);
    let mut end = text[start..]
        .char_indices()
        .nth(budget)
        .map_or(text.len(), |(i, _)| start + i);
    if end == text.len() {
        // Near the end of the text: use the whole budget before the match.
        start = text[..end]
            .char_indices()
            .rev()
            .take(budget)
            .last()
            .map_or(end, |(i, _)| i);
    }

    // Word boundaries, never cutting into the match.
    let is_ws_before = |i: usize| {
        text[..i]
            .chars()
            .next_back()
            .is_none_or(char::is_whitespace)
    };
    if start > 0 && !is_ws_before(start) {
        let limit = m_start.max(start);
        if let Some((i, c)) = text[start..limit]
            .char_indices()
            .find(|&(_, c)| c.is_whitespace())
        {
            start += i + c.len_utf8();
        }
    }
    if end < text.len() && !text[end..].starts_with(char::is_whitespace) {
        let from = m_end.clamp(start, end);
        if let Some((i, _)) = text[from..end]
            .char_indices()
            .rev()
            .find(|&(_, c)| c.is_whitespace())
        {
            end = from + i;
        }
    }

    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    out.push_str(&collapse_whitespace(&text[start..end]));
    if end < text.len() {
        out.push('…');
    }
    out
}

fn collapse_whitespace(s: &str) -> String {
    crate::passages::normalize(s)
}

/// The byte range in `text` of the earliest case-insensitive occurrence of
/// any non-blank term (the longest one, if several start there).
fn find_first_ci(text: &str, terms: &[String]) -> Option<(usize, usize)> {
    let terms: Vec<String> = terms
        .iter()
        .map(|t| t.trim().to_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    if terms.is_empty() {
        return None;
    }
    // Lowercasing can change lengths ('İ' becomes two chars): keep, for
    // each byte of the lowercased text, the offset of its source char.
    let mut lower = String::with_capacity(text.len());
    let mut source = Vec::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        let before = lower.len();
        lower.extend(c.to_lowercase());
        source.resize(source.len() + (lower.len() - before), i);
    }
    let (ls, le) = terms
        .iter()
        .filter_map(|t| lower.find(t.as_str()).map(|p| (p, p + t.len())))
        .min_by_key(|&(p, e)| (p, std::cmp::Reverse(e)))?;
    let start = source[ls];
    let last = source[le - 1];
    let end = last + text[last..].chars().next().map_or(0, char::len_utf8);
    Some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The invariants every chunking must satisfy.
    fn check(text: &str, target: usize, overlap: usize) -> Vec<TextChunk> {
        let chunks = chunk_text(text, target, overlap);
        let max_char = text.chars().map(char::len_utf8).max().unwrap_or(1);
        let mut prev: Option<&TextChunk> = None;
        for c in &chunks {
            assert_eq!(
                &text[c.offset..c.offset + c.text.len()],
                c.text,
                "target {target} overlap {overlap}"
            );
            assert_eq!(&text[c.range()], c.text);
            assert!(!c.text.trim().is_empty());
            assert_eq!(c.text.trim(), c.text);
            assert!(
                c.text.len() <= target.max(1).max(max_char),
                "chunk of {} bytes for target {target}",
                c.text.len()
            );
            if let Some(p) = prev {
                assert!(c.offset > p.offset, "offsets strictly increase");
                assert!(
                    c.offset >= p.offset + p.text.len() - overlap.min(target / 2).min(p.text.len()),
                    "overlap too large: prev {:?} next {:?}",
                    p.range(),
                    c.range()
                );
            }
            prev = Some(c);
        }
        // Coverage: every non-whitespace char is in some chunk.
        let mut covered = vec![false; text.len()];
        for c in &chunks {
            covered[c.range()].iter_mut().for_each(|b| *b = true);
        }
        for (i, ch) in text.char_indices() {
            assert!(
                ch.is_whitespace() || covered[i],
                "char {ch:?} at {i} not covered (target {target} overlap {overlap})"
            );
        }
        chunks
    }

    /// A small deterministic generator (no rand dependency).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
        fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
            xs[self.next() as usize % xs.len()]
        }
    }

    fn random_text(rng: &mut Lcg, len: usize) -> String {
        let pieces = [
            "word",
            "Zeile",
            "ünïcødé",
            "日本語の文章",
            "🦀",
            "é",
            " ",
            " ",
            " ",
            "\n",
            "\n\n",
            "\n  \n",
            ". ",
            "! ",
            "? ",
            "。",
            "\t",
            "\r\n",
            "a",
            "longwordwithoutanyspaces",
            "\u{3000}",
            "\u{a0}",
            "İ",
        ];
        let mut s = String::new();
        while s.len() < len {
            s.push_str(rng.pick(&pieces));
        }
        s
    }

    #[test]
    fn offsets_point_into_the_text_on_varied_inputs() {
        let fixed = [
            String::new(),
            " \n\t ".to_string(),
            "a".to_string(),
            "x".repeat(5000),
            "🦀".repeat(700),
            "日本語の文章です。".repeat(200),
            "Ünïcødé wörds ärë fün. ".repeat(150),
            "para one line\nstill para one.\n\npara two\n\n\n   \n\npara three ".repeat(60),
            "\n\n\n  leading and trailing whitespace  \n\n\n".to_string(),
            "no-whitespace-at-all-".repeat(100),
        ];
        for text in &fixed {
            for target in [1, 2, 3, 5, 7, 16, 64, 100, 1000] {
                for overlap in [0, 1, 10, 100] {
                    check(text, target, overlap);
                }
            }
        }
        let mut rng = Lcg(42);
        for round in 0..300 {
            let len = (rng.next() % 3000) as usize;
            let text = random_text(&mut rng, len);
            let target = 1 + (rng.next() % 400) as usize;
            let overlap = (rng.next() % 120) as usize;
            let chunks = check(&text, target, overlap);
            if !text.trim().is_empty() {
                assert!(!chunks.is_empty(), "round {round}");
            }
        }
    }

    #[test]
    fn short_text_is_one_trimmed_chunk() {
        let text = "\n  Hello world.  \n";
        let chunks = chunk_text(text, 1000, 100);
        assert_eq!(
            chunks,
            vec![TextChunk {
                offset: 3,
                text: "Hello world.".into()
            }]
        );
        assert!(chunk_text("", 1000, 100).is_empty());
        assert!(chunk_text("   \n\n\t ", 1000, 100).is_empty());
    }

    #[test]
    fn prefers_paragraph_boundaries() {
        let p1 = "First paragraph. It has two sentences and some more words to fill it.";
        let p2 = "Second paragraph, also reasonably long, with a sentence. And another one.";
        let p3 = "Third paragraph is here.";
        let text = format!("{p1}\n\n{p2}\n \n{p3}");
        let chunks = check(&text, 90, 0);
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, vec![p1, p2, p3]);
        assert_eq!(chunks[1].offset, p1.len() + 2);
    }

    #[test]
    fn falls_back_to_sentences_then_words_then_chars() {
        let text = "One sentence here. Two sentence here. Three sentence here. Four.";
        let chunks = check(text, 40, 0);
        assert_eq!(chunks[0].text, "One sentence here. Two sentence here.");

        let text = "alpha beta gamma delta epsilon zeta eta theta iota kappa";
        let chunks = check(text, 20, 0);
        for c in &chunks {
            assert!(!c.text.starts_with(' ') && text.contains(&c.text));
            // Whole words only.
            assert!(
                c.text.split(' ').all(|w| text.split(' ').any(|x| x == w)),
                "{c:?}"
            );
        }

        let text = "abcdefghij".repeat(10);
        let chunks = check(&text, 30, 0);
        assert_eq!(chunks.len(), 4);
        assert_eq!(
            chunks.iter().map(|c| c.text.as_str()).collect::<String>(),
            text
        );

        // CJK sentences end without spaces.
        let text = "これは文です。".repeat(10);
        let chunks = check(&text, 50, 0);
        assert!(chunks.iter().all(|c| c.text.ends_with('。')), "{chunks:?}");
    }

    #[test]
    fn overlap_starts_on_a_sentence_or_word() {
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(30);
        let chunks = check(&text, 200, 60);
        assert!(chunks.len() > 5);
        for pair in chunks.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            assert!(b.offset < a.offset + a.text.len(), "chunks overlap");
            assert!(b.text.starts_with("The quick"), "{:?}", b.text);
        }
        let words = "lorem ipsum dolor sit amet consectetur adipiscing elit ".repeat(30);
        for pair in check(&words, 100, 30).windows(2) {
            let b = &pair[1];
            assert!(
                words[..b.offset].ends_with(' '),
                "starts mid-word: {:?}",
                b.text
            );
            assert!(b.offset < pair[0].offset + pair[0].text.len());
        }
    }

    #[test]
    fn default_sizes_on_a_long_document() {
        let text = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. \
                    Sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.\n\n"
            .repeat(200);
        let chunks = check(&text, DEFAULT_TARGET_BYTES, DEFAULT_OVERLAP_BYTES);
        let n = chunks.len();
        assert!(n > text.len() / DEFAULT_TARGET_BYTES, "{n}");
        for c in &chunks[..n - 1] {
            assert!(c.text.len() >= DEFAULT_TARGET_BYTES / 2, "{}", c.text.len());
        }
    }

    // ---- snippet ----------------------------------------------------------

    fn terms(ts: &[&str]) -> Vec<String> {
        ts.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn snippet_short_text_is_whole_and_collapsed() {
        assert_eq!(
            snippet("  Hello\n\n  world  ", &terms(&["world"]), 50),
            "Hello world"
        );
        assert_eq!(snippet("anything", &terms(&["x"]), 0), "");
    }

    #[test]
    fn snippet_windows_around_first_match_at_word_boundaries() {
        let text = format!(
            "{} The secret Password is hidden right here in the middle. {}",
            "filler text goes here ".repeat(20),
            "more trailing words ".repeat(20)
        );
        let s = snippet(&text, &terms(&["password"]), 60);
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
        assert!(s.contains("Password"), "{s}");
        assert!(s.chars().count() <= 60, "{} chars: {s}", s.chars().count());
        // Whole words only: every word of the snippet is a word of the text.
        let inner = s.trim_matches('…');
        for w in inner.split(' ') {
            assert!(
                text.split_whitespace().any(|x| x == w),
                "cut word {w:?} in {s}"
            );
        }
    }

    #[test]
    fn snippet_earliest_of_several_terms_case_insensitive() {
        let text = format!("{}ALPHA then beta{}", "x ".repeat(100), " y".repeat(100));
        let s = snippet(&text, &terms(&["beta", "Alpha"]), 30);
        assert!(s.contains("ALPHA"), "{s}");
        // Blank terms are ignored.
        let s2 = snippet(&text, &terms(&["", "  ", "beta"]), 30);
        assert!(s2.contains("beta"), "{s2}");
    }

    #[test]
    fn snippet_without_match_shows_the_start() {
        let text = "First words of the document. ".repeat(20);
        let s = snippet(&text, &terms(&["absent"]), 40);
        assert!(s.starts_with("First words"), "{s}");
        assert!(s.ends_with('…') && !s.starts_with('…'), "{s}");
        assert!(s.chars().count() <= 40);
        assert_eq!(snippet(&text, &[], 40), s);
    }

    #[test]
    fn snippet_match_near_end_uses_budget_before_it() {
        let text = format!("{}final keyword", "lead ".repeat(50));
        let s = snippet(&text, &terms(&["keyword"]), 40);
        assert!(s.starts_with('…') && s.ends_with("final keyword"), "{s}");
        assert!(s.chars().count() > 30 && s.chars().count() <= 40, "{s}");
    }

    #[test]
    fn snippet_unicode_and_case_folding_are_safe() {
        // 'İ' lowercases to two chars: offsets must map back correctly.
        let text = format!(
            "{}İstanbul ÜBER straße {}",
            "ä ".repeat(60),
            "ö ".repeat(60)
        );
        let s = snippet(&text, &terms(&["über"]), 30);
        assert!(s.contains("ÜBER"), "{s}");
        let s = snippet(&text, &terms(&["i̇stanbul"]), 30);
        assert!(s.contains("İstanbul"), "{s}");
        assert_eq!(find_first_ci("xİy", &terms(&["i"])), Some((1, 3)));
        // No whitespace at all: cut between characters, still valid.
        let cjk = "日本語の文章".repeat(50);
        let s = snippet(&cjk, &terms(&["文章"]), 20);
        assert!(s.contains("文章") && s.chars().count() <= 20, "{s}");
        // Every window size on a mixed text keeps the bound and never panics.
        let mixed = "🦀 crab ünï 日本 word ".repeat(20);
        for n in 1..80 {
            let s = snippet(&mixed, &terms(&["日本"]), n);
            assert!(s.chars().count() <= n.max(3), "{n}: {s}");
        }
    }
}

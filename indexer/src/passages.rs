//! Passages: extracted text cut into chunks that fill the embedding model's window, at
//! boundaries chosen by content so that an edit moves only the boundaries near it.
//!
//! How a text is cut:
//! 1. It is split into *units*: sentences, and the rest of a paragraph (a blank line ends one).
//!    A unit longer than the window is split at whitespace (or, failing that, between
//!    characters) into pieces that fit.
//! 2. Units are counted in model tokens ([`TokenCounter`]).
//! 3. A chunk starting at unit `s` ends at the boundary, among those leaving it between half
//!    the window and the whole window, with the strongest break (paragraph > sentence > other)
//!    and, among equals, the highest keyed hash of the unit before it. The choice depends only
//!    on the text near the boundary, not on where the chunk started, so after an insertion the
//!    old boundaries come back within a chunk or two (as content-defined chunking does for
//!    bytes): an edit re-embeds the chunks around it, not the rest of the file.
//!
//! No overlap between chunks: a shared tail would shift with every edit before it.
//! Each chunk records its byte range in the text; [`normalize`] gives the text that is
//! embedded and hashed (whitespace runs collapsed, so re-wrapping a paragraph costs nothing).

/// Counts model tokens in a piece of text (without the special tokens a model adds).
pub trait TokenCounter: Send + Sync {
    fn count(&self, text: &str) -> usize;
}

/// Counts with the model's own tokenizer (`tokenizer.json`), no truncation, no padding.
pub struct ModelTokens(tokenizers::Tokenizer);

impl ModelTokens {
    pub fn load(tokenizer_json: &std::path::Path) -> Result<Self, String> {
        let mut t = tokenizers::Tokenizer::from_file(tokenizer_json)
            .map_err(|e| format!("{}: {e}", tokenizer_json.display()))?;
        t.with_truncation(None).map_err(|e| e.to_string())?;
        t.with_padding(None);
        Ok(Self(t))
    }
}

impl TokenCounter for ModelTokens {
    fn count(&self, text: &str) -> usize {
        match self.0.encode_fast(text, false) {
            Ok(enc) => enc.len(),
            Err(_) => ApproxTokens.count(text),
        }
    }
}

/// Without a tokenizer: a conservative estimate (WordPiece averages about 4 bytes a token on
/// English prose and fewer on code and symbols), so that a chunk never overflows the window.
pub struct ApproxTokens;

impl TokenCounter for ApproxTokens {
    fn count(&self, text: &str) -> usize {
        let words = text.split_whitespace().count();
        (text.len() / 3).max(words)
    }
}

/// A passage of a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passage {
    /// Byte offset in the text.
    pub offset: usize,
    /// Length in bytes (`&text[offset..offset + len]` is the passage, trimmed).
    pub len: usize,
    /// Model tokens (special tokens excluded).
    pub tokens: usize,
}

/// Collapses whitespace runs to one space and trims: the text that is embedded and hashed.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Break {
    Other = 0,
    Sentence = 1,
    Paragraph = 2,
}

struct Unit {
    start: usize,
    end: usize,
    tokens: usize,
    /// The break after this unit.
    brk: Break,
}

/// Cuts `text` into passages of at most `max_tokens` tokens (the model adds its special
/// tokens on top: pass the window minus those).
pub fn cut(text: &str, max_tokens: usize, counter: &dyn TokenCounter) -> Vec<Passage> {
    let max = max_tokens.max(8);
    let units = units(text, max, counter);
    let mut out = Vec::new();
    let mut s = 0;
    while s < units.len() {
        // Candidate ends e (exclusive) with tokens(s..e) in [max/2, max]; the first unit always fits.
        let mut total = 0;
        let mut best: Option<(Break, u64, usize)> = None;
        let mut e = s;
        while e < units.len() {
            let t = units[e].tokens;
            if e > s && total + t > max {
                break;
            }
            total += t;
            e += 1;
            if total * 2 >= max || e == units.len() {
                let u = &units[e - 1];
                let key = (u.brk, boundary_hash(&text[u.start..u.end]), e);
                if best.is_none_or(|b| (key.0, key.1) > (b.0, b.1)) {
                    best = Some(key);
                }
            }
        }
        let end = match best {
            // The end of the text is always the best place to stop if it fits.
            _ if e == units.len() => e,
            Some((_, _, e)) => e,
            None => e.max(s + 1),
        };
        let first = &units[s];
        let last = &units[end - 1];
        out.push(Passage {
            offset: first.start,
            len: last.end - first.start,
            tokens: units[s..end].iter().map(|u| u.tokens).sum(),
        });
        s = end;
    }
    out
}

/// A stable pseudo-random rank of a boundary, from the unit before it.
fn boundary_hash(unit: &str) -> u64 {
    let h = blake3::hash(normalize(unit).as_bytes());
    u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"))
}

fn units(text: &str, max: usize, counter: &dyn TokenCounter) -> Vec<Unit> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut start = skip_ws(text, 0);
    let mut i = start;
    while i < text.len() {
        let c = text[i..].chars().next().expect("in bounds");
        let next = i + c.len_utf8();
        let brk = if c == '\n' && blank_line_follows(bytes, next) {
            Some(Break::Paragraph)
        } else if is_sentence_end(text, next) {
            Some(Break::Sentence)
        } else {
            None
        };
        if let Some(brk) = brk {
            push_unit(text, start, next, brk, max, counter, &mut out);
            start = skip_ws(text, next);
            i = start;
            continue;
        }
        i = next;
    }
    if start < text.len() {
        push_unit(
            text,
            start,
            text.len(),
            Break::Paragraph,
            max,
            counter,
            &mut out,
        );
    }
    out
}

fn blank_line_follows(bytes: &[u8], mut i: usize) -> bool {
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => return true,
            b' ' | b'\t' | b'\r' => i += 1,
            _ => return false,
        }
    }
    true
}

fn is_sentence_end(text: &str, i: usize) -> bool {
    let Some(prev) = text[..i].chars().next_back() else {
        return false;
    };
    match prev {
        '。' | '！' | '？' => true,
        '.' | '!' | '?' | ';' | ':' => text[i..].chars().next().is_some_and(char::is_whitespace),
        _ => false,
    }
}

fn skip_ws(text: &str, from: usize) -> usize {
    from + (text[from..].len() - text[from..].trim_start().len())
}

/// Adds the unit `start..end` (trimmed), split into pieces of at most `max` tokens.
fn push_unit(
    text: &str,
    start: usize,
    end: usize,
    brk: Break,
    max: usize,
    counter: &dyn TokenCounter,
    out: &mut Vec<Unit>,
) {
    let piece = text[start..end].trim_end();
    if piece.is_empty() {
        return;
    }
    let end = start + piece.len();
    let tokens = counter.count(piece);
    // Too long: halve at the whitespace nearest the middle (else at a char boundary) and recurse.
    let cut = (tokens > max).then(|| {
        let mid = start + piece.len() / 2;
        text[start..mid]
            .rfind(char::is_whitespace)
            .map(|p| start + p)
            .filter(|&p| p > start)
            .or_else(|| text[mid..end].find(char::is_whitespace).map(|p| mid + p))
            .filter(|&p| p > start && p < end)
            .unwrap_or_else(|| {
                let mut m = mid;
                while !text.is_char_boundary(m) {
                    m += 1;
                }
                m
            })
    });
    // Short enough, or a single character longer than the window (the model truncates it).
    let Some(cut) = cut.filter(|&c| c > start && c < end) else {
        out.push(Unit {
            start,
            end,
            tokens,
            brk,
        });
        return;
    };
    push_unit(text, start, cut, Break::Other, max, counter, out);
    let rest = skip_ws(text, cut);
    push_unit(text, rest, end, brk, max, counter, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn para(seed: usize, sentences: usize) -> String {
        (0..sentences)
            .map(|i| {
                format!(
                    "Sentence {i} of paragraph {seed} talks about topic {} in some words.",
                    seed * 7 + i
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn doc(paras: usize) -> String {
        (0..paras)
            .map(|p| para(p, 3 + p % 5))
            .collect::<Vec<_>>()
            .join("\n\n")
    }

    fn texts<'a>(text: &'a str, ps: &[Passage]) -> Vec<&'a str> {
        ps.iter()
            .map(|p| &text[p.offset..p.offset + p.len])
            .collect()
    }

    #[test]
    fn passages_fit_cover_and_are_trimmed() {
        let text = doc(60);
        let ps = cut(&text, 64, &ApproxTokens);
        assert!(ps.len() > 10);
        for (p, t) in ps.iter().zip(texts(&text, &ps)) {
            assert!(p.tokens <= 64, "{p:?}");
            assert_eq!(t, t.trim());
            assert!(ApproxTokens.count(t) <= 64 + 8);
        }
        // Every non-blank byte is in exactly one passage, in order.
        let mut pos = 0;
        for p in &ps {
            assert!(text[pos..p.offset].trim().is_empty());
            pos = p.offset + p.len;
        }
        assert!(text[pos..].trim().is_empty());
    }

    #[test]
    fn an_insertion_moves_only_nearby_boundaries() {
        let text = doc(300);
        let before = cut(&text, 200, &ApproxTokens);
        let old: std::collections::HashSet<&str> = texts(&text, &before).into_iter().collect();
        let mut worst = 0;
        for frac in [0.1, 0.3, 0.5, 0.7, 0.9] {
            let at = (text.len() as f64 * frac) as usize;
            let at = at + text[at..].find(". ").unwrap() + 2;
            let edited = format!(
                "{}An inserted sentence about nothing much. {}",
                &text[..at],
                &text[at..]
            );
            let after = cut(&edited, 200, &ApproxTokens);
            let new_only = texts(&edited, &after)
                .into_iter()
                .filter(|t| !old.contains(t))
                .count();
            worst = worst.max(new_only);
        }
        assert!(before.len() > 60);
        assert!(
            worst <= 4,
            "an insertion changed {worst} of {} passages",
            before.len()
        );
    }

    #[test]
    fn a_long_line_without_breaks_is_split() {
        let text = "word ".repeat(5000);
        let ps = cut(&text, 100, &ApproxTokens);
        assert!(ps.iter().all(|p| p.tokens <= 100));
        let text = "x".repeat(10_000);
        let ps = cut(&text, 100, &ApproxTokens);
        assert!(ps.iter().all(|p| p.tokens <= 100));
        assert_eq!(ps.iter().map(|p| p.len).sum::<usize>(), 10_000);
    }

    #[test]
    fn normalize_collapses_whitespace() {
        assert_eq!(normalize("  a\n\n b\t c  "), "a b c");
    }
}

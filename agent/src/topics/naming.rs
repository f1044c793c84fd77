//! Topic names from the topics' own text: class-based TF-IDF as BERTopic does it. All the
//! text of a topic is one "class" document; a term's weight in class `c` is
//! `tf(t,c) · ln(1 + A / f(t))` with `tf` the term's share of the class's words, `f(t)` its
//! frequency over all classes (the files in no topic form one more class, so words common
//! everywhere weigh little) and `A` the average number of words per class. Two changes for
//! names a person reads: stopwords (the `stop-words` crate's English list, plus words of
//! document structure such as "synopsis") are dropped, and a term's weight is multiplied by
//! the share of the topic's files that contain it, so one long file's jargon does not name
//! its topic.

use std::collections::{HashMap, HashSet};

/// Words of document structure (headings of manuals and notes) that say nothing of a topic.
const STRUCTURE_WORDS: &[&str] = &[
    "synopsis",
    "description",
    "options",
    "option",
    "author",
    "authors",
    "bugs",
    "copyright",
    "manual",
    "page",
    "pages",
    "usage",
    "example",
    "examples",
    "note",
    "notes",
    "version",
    "default",
    "see",
    "also",
    "license",
    "reporting",
    "environment",
    "exit",
    "status",
    "return",
    "value",
    "values",
    "section",
    "name",
    "names",
    "file",
    "files",
    "command",
    "commands",
    "user",
    "users",
    "program",
    "programs",
    "specified",
    "specify",
    "using",
];

/// Splits text into lowercase terms: runs of letters and digits (with at least one letter),
/// 3 to 24 characters, not stopwords.
pub struct Tokenizer {
    stop: HashSet<String>,
}

impl Default for Tokenizer {
    fn default() -> Self {
        let mut stop: HashSet<String> = stop_words::get(stop_words::LANGUAGE::English)
            .iter()
            .map(|w| w.to_lowercase())
            .collect();
        stop.extend(STRUCTURE_WORDS.iter().map(|w| w.to_string()));
        Self { stop }
    }
}

impl Tokenizer {
    pub fn terms(&self, text: &str) -> Vec<String> {
        text.split(|c: char| !c.is_alphanumeric())
            .filter(|w| (3..=24).contains(&w.chars().count()))
            .filter(|w| w.chars().any(char::is_alphabetic))
            .map(str::to_lowercase)
            .filter(|w| !self.stop.contains(w))
            .collect()
    }
}

/// The `k` most distinctive terms of each class. `classes[c]` holds the texts of class
/// `c`'s files; `background` the texts of files in no class (they weigh in `f(t)` only).
pub fn ctfidf(classes: &[Vec<String>], background: &[String], k: usize) -> Vec<Vec<(String, f32)>> {
    let tok = Tokenizer::default();
    // Per class: term counts, and in how many of its files each term appears.
    let count = |docs: &[String]| {
        let mut tf: HashMap<String, f32> = HashMap::new();
        let mut df: HashMap<String, f32> = HashMap::new();
        let mut words = 0f32;
        for d in docs {
            let terms = tok.terms(d);
            words += terms.len() as f32;
            let mut seen = HashSet::new();
            for t in terms {
                *tf.entry(t.clone()).or_default() += 1.0;
                if seen.insert(t.clone()) {
                    *df.entry(t).or_default() += 1.0;
                }
            }
        }
        (tf, df, words)
    };
    let per: Vec<_> = classes.iter().map(|c| count(c)).collect();
    let bg = count(background);
    let mut total: HashMap<&str, f32> = HashMap::new();
    for (tf, _, _) in per.iter().chain(std::iter::once(&bg)) {
        for (t, n) in tf {
            *total.entry(t.as_str()).or_default() += n;
        }
    }
    let nclasses = per.len() as f32 + if bg.2 > 0.0 { 1.0 } else { 0.0 };
    let avg = (per.iter().map(|p| p.2).sum::<f32>() + bg.2) / nclasses.max(1.0);
    per.iter()
        .zip(classes)
        .map(|((tf, df, words), docs)| {
            let mut scored: Vec<(String, f32)> = tf
                .iter()
                .map(|(t, n)| {
                    let share = n / words.max(1.0);
                    let idf = (1.0 + avg / total[t.as_str()]).ln();
                    let coverage = df[t] / docs.len().max(1) as f32;
                    (t.clone(), share * idf * coverage)
                })
                .collect();
            scored.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            // One form of a word: drop a term that extends a better one ("compress" /
            // "compression", "file" / "files").
            let mut out: Vec<(String, f32)> = Vec::new();
            for (t, s) in scored {
                if out.len() == k {
                    break;
                }
                let related = out.iter().any(|(o, _)| {
                    let (a, b) = if o.len() <= t.len() { (o, &t) } else { (&t, o) };
                    a.len() >= 4 && b.starts_with(a.as_str())
                });
                if !related {
                    out.push((t, s));
                }
            }
            out
        })
        .collect()
}

/// A folder name from a topic's top terms: the first `n` joined with '-'.
pub fn slug(terms: &[String], n: usize) -> String {
    let s: Vec<&str> = terms.iter().take(n).map(String::as_str).collect();
    if s.is_empty() {
        "misc".into()
    } else {
        s.join("-")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_class_is_named_by_its_own_words_not_by_shared_or_stop_words() {
        let a = vec![
            "The gzip program compresses files; gzip compression uses Lempel-Ziv.".to_string(),
            "bzip2 compresses files with block compression, better than gzip.".to_string(),
        ];
        let b = vec![
            "Preheat the oven, knead the dough, bake the bread for the recipe.".to_string(),
            "A recipe for bread: flour, water, salt; bake in the oven.".to_string(),
        ];
        let names = ctfidf(&[a, b], &["files and more files".to_string()], 3);
        let top = |c: usize| names[c].iter().map(|x| x.0.clone()).collect::<Vec<_>>();
        assert!(top(0).contains(&"gzip".to_string()), "{:?}", top(0));
        assert!(
            top(1)
                .iter()
                .any(|t| t == "bread" || t == "oven" || t == "bake" || t == "recipe"),
            "{:?}",
            top(1)
        );
        for c in 0..2 {
            for t in top(c) {
                assert!(
                    !["the", "files", "for", "with"].contains(&t.as_str()),
                    "{t}"
                );
            }
        }
        assert_eq!(slug(&top(0), 2).matches('-').count(), 1);
    }
}

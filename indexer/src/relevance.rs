//! Calibrated relevance: which ranked files a query is actually *about*.
//!
//! A ranking always has a first hit; a view, `@search/<text>` or a citation in `peros ask` must
//! also know where the relevant files end. A fixed cosine threshold does not do it with
//! all-MiniLM-L6-v2: good matches of a short query often score 0.3–0.45 while unrelated texts
//! score 0.0–0.2, and the level moves with the query's length and wording. So the rule is per
//! query, from the distribution of its own scores (see docs/RELEVANCE.md for how the
//! parameters were chosen on the labelled set of perfs/views):
//!
//! * **semantic member**: best-passage similarity at least [`Params::sem_floor`] (learnt: below
//!   it nothing in the labelled set was relevant), at least the best similarity minus
//!   [`Params::sem_window`] (relative to the best match), and above the largest gap of at least
//!   [`Params::sem_gap`] inside that window (the knee: a cluster of matches, then a drop);
//! * **keyword member**: the file contains query terms carrying at least
//!   [`Params::kw_coverage`] of the query's informative weight. Informative terms are the
//!   query's words minus stopwords ([`is_stopword`]) and minus terms found in more than
//!   [`Params::common_df`] of the files; each weighs its idf, so a file matching only "the" or
//!   "files" is not a keyword member of "compare two files".
//!
//! A file is relevant if it is either. Filter-only queries have no scores: every file that
//! passes the filter is relevant.

use serde::Serialize;

/// The tunable parts of the rule. [`Params::default`] holds the values chosen on the tuning
/// half of the labelled views (perfs/views); the held-out half reports them.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Params {
    /// No semantic member below this best-passage cosine similarity.
    pub sem_floor: f32,
    /// Semantic members are within this much of the best similarity.
    pub sem_window: f32,
    /// A drop of at least this much between consecutive similarities (sorted) inside the window
    /// ends the members there.
    pub sem_gap: f32,
    /// Fraction of the informative (idf) weight of the query a keyword member must contain.
    pub kw_coverage: f32,
    /// Terms in more than this fraction of the files are too common to make a keyword member.
    pub common_df: f32,
    /// The idf a keyword member's matched terms must add up to, as a fraction of the largest
    /// possible idf, ln(1 + files): 0.5 means about a term in at most √files files. One
    /// moderately common word left over from a long query is not enough.
    pub kw_min_idf: f32,
    /// Semantic members are at least this far from the query's background (the median
    /// similarity of its candidates) to its best match: relative to the query's own scale.
    pub sem_ratio: f32,
}

impl Default for Params {
    /// Chosen on the tuning half of perfs/views/views.tsv (docs/RELEVANCE.md): floors from 0.25
    /// to 0.40 tie there (the relative cut binds first), 0.30 is the middle; the knee did not
    /// pay on any setting tried (`sem_gap` 1 disables it); keyword membership costs 0.005 of
    /// tuning F1 on these natural-language names and is kept for one-word views (`tax`).
    fn default() -> Self {
        Self {
            sem_floor: 0.30,
            sem_window: 0.20,
            sem_gap: 1.0,
            sem_ratio: 0.6,
            kw_coverage: 1.0,
            common_df: 0.5,
            kw_min_idf: 0.0,
        }
    }
}

/// English function words: they say nothing about what a file is about. Short on purpose
/// (question words and auxiliaries included, as view names and questions are phrased so).
const STOPWORDS: &[&str] = &[
    "a", "about", "after", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be",
    "been", "before", "being", "but", "by", "can", "could", "did", "do", "does", "doing", "for",
    "from", "had", "has", "have", "having", "he", "her", "here", "him", "his", "how", "i", "if",
    "in", "into", "is", "it", "its", "me", "my", "no", "nor", "not", "of", "off", "on", "one",
    "or", "other", "our", "out", "over", "own", "same", "she", "should", "so", "some", "such",
    "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "those",
    "through", "to", "too", "under", "until", "up", "very", "was", "we", "were", "what", "when",
    "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your",
];

pub fn is_stopword(term: &str) -> bool {
    STOPWORDS.binary_search(&term).is_ok()
}

/// One query term as seen in the index.
#[derive(Clone, Debug, Serialize)]
pub struct TermStat {
    pub term: String,
    /// Files containing it (text or path).
    pub df: u64,
    /// Its weight in the coverage (0 for stopwords, absent and too common terms).
    pub weight: f32,
}

/// Weights of the query's terms given their document frequencies among `files` files. When
/// every informative term is too common (a one-word view `tax` over a folder of tax files),
/// the common ones count after all: the person asked for that word.
pub fn term_weights(terms: &[(String, u64)], files: u64, p: &Params) -> Vec<TermStat> {
    let n = files.max(1) as f32;
    let idf = |df: f32| (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
    // A term in most of a tiny corpus is still informative (3 notes: "garden" is in a third of
    // them), so "too common" needs more than a couple of files.
    let common = |df: u64| df as f32 > (p.common_df * n).max(2.0);
    let usable = |t: &str, df: u64| df > 0 && !is_stopword(t);
    let any_rare = terms.iter().any(|(t, df)| usable(t, *df) && !common(*df));
    terms
        .iter()
        .map(|(t, df)| TermStat {
            term: t.clone(),
            df: *df,
            weight: if usable(t, *df) && (!common(*df) || !any_rare) {
                idf(*df as f32)
            } else {
                0.0
            },
        })
        .collect()
}

/// Semantic members among `sims` (best-passage similarity per file, any order; 0 = none).
pub fn semantic_members(sims: &[f32], p: &Params) -> Vec<bool> {
    let best = sims.iter().copied().fold(0f32, f32::max);
    if best < p.sem_floor {
        return vec![false; sims.len()];
    }
    let mut sorted: Vec<f32> = sims.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let background = sorted[sorted.len() / 2];
    let mut cut = p
        .sem_floor
        .max(best - p.sem_window)
        .max(background + p.sem_ratio * (best - background));
    let mut inside: Vec<f32> = sims.iter().copied().filter(|s| *s >= cut).collect();
    inside.sort_by(|a, b| b.total_cmp(a));
    // The knee: the largest drop inside the window, if it is a real one.
    let mut widest = (0f32, None);
    for w in inside.windows(2) {
        let gap = w[0] - w[1];
        if gap > widest.0 {
            widest = (gap, Some(w[0]));
        }
    }
    if let (gap, Some(last)) = widest {
        if gap >= p.sem_gap {
            cut = last;
        }
    }
    sims.iter().map(|s| *s >= cut).collect()
}

/// Whether a file whose matched terms weigh `got` of the query's `total` is a keyword member.
pub fn keyword_member(got: f32, total: f32, files: u64, p: &Params) -> bool {
    let max_idf = (1.0 + files as f32).ln();
    total > 0.0
        && got > 0.0
        && got + 1e-6 >= p.kw_coverage * total
        && got + 1e-6 >= p.kw_min_idf * max_idf
}

/// The rule applied to one query's candidates.
pub struct Decision {
    pub relevant: Vec<bool>,
    pub keyword: Vec<bool>,
    pub coverage: Vec<f32>,
}

/// Decides every candidate of a query: `sims[i]` is candidate i's best-passage similarity (0
/// if none), `matched[i]` its bitmask of `terms` (bit j: it contains `terms[j]`). With
/// `semantic` false (text-only ranking: no vectors), only keyword members are relevant.
pub fn decide(
    sims: &[f32],
    matched: &[u64],
    terms: &[TermStat],
    files: u64,
    p: &Params,
    semantic: bool,
) -> Decision {
    let total: f32 = terms.iter().take(64).map(|t| t.weight).sum();
    let got: Vec<f32> = matched
        .iter()
        .map(|m| {
            terms
                .iter()
                .take(64)
                .enumerate()
                .filter(|(j, _)| m & (1 << j) != 0)
                .map(|(_, t)| t.weight)
                .sum()
        })
        .collect();
    let coverage: Vec<f32> = got
        .iter()
        .map(|g| if total > 0.0 { g / total } else { 0.0 })
        .collect();
    let keyword: Vec<bool> = got
        .iter()
        .map(|g| keyword_member(*g, total, files, p))
        .collect();
    let sem = if semantic {
        semantic_members(sims, p)
    } else {
        vec![false; sims.len()]
    };
    let relevant = keyword.iter().zip(&sem).map(|(k, s)| *k || *s).collect();
    Decision {
        relevant,
        keyword,
        coverage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopwords_are_sorted() {
        let mut s = STOPWORDS.to_vec();
        s.sort();
        assert_eq!(s, STOPWORDS);
    }

    #[test]
    fn one_clear_match_among_unrelated() {
        // The garden note at 0.41, the taxes and borrow-checker notes near 0.
        let m = semantic_members(&[0.41, 0.02, -0.03], &Params::default());
        assert_eq!(m, [true, false, false]);
    }

    #[test]
    fn the_knee_cuts_a_cluster_from_the_tail() {
        // The knee ships switched off (`sem_gap` 1): this checks the mechanism when enabled.
        let p = Params {
            sem_gap: 0.05,
            sem_ratio: 0.0,
            ..Params::default()
        };
        let m = semantic_members(&[0.62, 0.60, 0.59, 0.53, 0.52, 0.1, 0.1, 0.1, 0.1], &p);
        assert_eq!(
            m,
            [true, true, true, false, false, false, false, false, false]
        );
        // Off by default: the window and the ratio to the background decide alone.
        let m = semantic_members(&[0.62, 0.60, 0.59, 0.53, 0.52], &Params::default());
        assert_eq!(m, [true, false, false, false, false]);
    }

    #[test]
    fn nothing_when_the_best_is_weak() {
        assert!(!semantic_members(&[0.2, 0.1], &Params::default())
            .iter()
            .any(|m| *m));
    }

    #[test]
    fn common_and_stop_words_weigh_nothing() {
        let p = Params::default();
        let w = term_weights(
            &[
                ("the".into(), 90),
                ("files".into(), 60),
                ("compare".into(), 5),
                ("zzz".into(), 0),
            ],
            100,
            &p,
        );
        assert_eq!(w[0].weight, 0.0);
        assert_eq!(w[1].weight, 0.0);
        assert!(w[2].weight > 1.0);
        assert_eq!(w[3].weight, 0.0);
        // Only common words: they count.
        let w = term_weights(&[("tax".into(), 3), ("the".into(), 5)], 5, &p);
        assert!(w[0].weight > 0.0);
        assert_eq!(w[1].weight, 0.0);
    }
}

//! Grouping file vectors into topics: HDBSCAN (the `hdbscan` crate) finds the number of
//! topics itself and leaves outliers out (label -1). It is quadratic in the files it sees,
//! so above [`Params::max_sample`] files it clusters a fixed pseudo-random sample
//! ([`sample_indices`]: not every k-th file, which aliases with a periodic order) and assigns
//! every other file to the nearest topic centroid when that file is as close to it as the
//! topic's own members are ([`Topic::admits`]: cheap, one comparison per topic). New files
//! between full clusterings join by the finer [`Predictor`] (their nearest clustered
//! neighbours; [`Predictor::predict_all`] judges many in blocks).

use hdbscan::{DistanceMetric, Hdbscan, HdbscanHyperParams, NnAlgorithm};

/// Clustering settings.
#[derive(Clone, Debug)]
pub struct Params {
    /// Fewest files a topic has (HDBSCAN's `min_cluster_size`; also `min_samples`).
    pub min_topic_size: usize,
    /// Most files HDBSCAN itself sees (a fixed pseudo-random sample, [`sample_indices`]; the
    /// rest are assigned to the topics found).
    pub max_sample: usize,
    /// A topic with more files than this is clustered again into sub-topics.
    pub split_above: usize,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            min_topic_size: 3,
            max_sample: 2000,
            split_above: 60,
        }
    }
}

/// Cosine similarity of unit vectors. Eight running sums, so the compiler can use SIMD (a
/// single sum is kept in order, one lane at a time): new files are compared with every
/// clustered file.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    let mut acc = [0.0f32; 8];
    for (x, y) in ca.zip(cb) {
        for ((s, x), y) in acc.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The unit-length mean of some vectors.
pub fn centroid<'a>(vs: impl IntoIterator<Item = &'a [f32]>) -> Vec<f32> {
    let mut sum: Vec<f32> = Vec::new();
    for v in vs {
        if sum.is_empty() {
            sum = vec![0.0; v.len()];
        }
        for (s, x) in sum.iter_mut().zip(v) {
            *s += x;
        }
    }
    let n = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        sum.iter_mut().for_each(|x| *x /= n);
    }
    sum
}

/// A topic's geometry: its centroid and how close its members are to it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Topic {
    pub centroid: Vec<f32>,
    /// The similarity to the centroid a file needs to join: a low quantile of the members'
    /// own similarities, lowered a little so a typical new member is not refused.
    pub admit: f32,
}

/// Quantile of the members' similarities used for [`Topic::admit`].
const ADMIT_QUANTILE: f32 = 0.1;
/// Margin below that quantile.
const ADMIT_MARGIN: f32 = 0.06;

impl Topic {
    pub fn of(members: &[&[f32]]) -> Self {
        let c = centroid(members.iter().copied());
        let mut sims: Vec<f32> = members.iter().map(|v| dot(v, &c)).collect();
        sims.sort_by(|a, b| a.total_cmp(b));
        let q = sims
            .get(((sims.len() as f32 - 1.0) * ADMIT_QUANTILE).round() as usize)
            .copied()
            .unwrap_or(1.0);
        Self {
            centroid: c,
            admit: q - ADMIT_MARGIN,
        }
    }

    pub fn admits(&self, v: &[f32]) -> bool {
        dot(v, &self.centroid) >= self.admit
    }
}

/// The topic (index into `topics`) that admits `v` best, if any does.
pub fn nearest(topics: &[Topic], v: &[f32]) -> Option<(usize, f32)> {
    topics
        .iter()
        .enumerate()
        .map(|(i, t)| (i, dot(v, &t.centroid)))
        .filter(|(i, s)| *s >= topics[*i].admit)
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// How many of a topic's members a file's closeness to the topic is measured on (capped
/// by the topic's size less one): HDBSCAN's `min_samples`, [`Params::min_topic_size`].
pub fn neighbours(p: &Params) -> usize {
    p.min_topic_size.max(2)
}

/// Margin by which a new file's closeness to its best topic must exceed its closeness to
/// any other topic and to the files the clustering left in no topic.
pub const PREDICT_MARGIN: f32 = 0.03;
/// Members of a large topic whose own closeness sets its floor (an even sample: the floor
/// of a sample is at or above the whole topic's).
const FLOOR_SAMPLE: usize = 200;

/// The `k` largest values pushed so far, largest first.
struct TopK {
    k: usize,
    top: Vec<f32>,
}

impl TopK {
    fn new(k: usize) -> Self {
        Self {
            k,
            top: Vec::with_capacity(k + 1),
        }
    }

    fn push(&mut self, s: f32) {
        let k = self.k;
        if self.top.len() < k {
            self.top.push(s);
            self.top.sort_by(|a, b| b.total_cmp(a));
        } else if k > 0 && s > self.top[k - 1] {
            self.top[k - 1] = s;
            self.top.sort_by(|a, b| b.total_cmp(a));
        }
    }

    /// Their mean ([`f32::MIN`] when none was pushed).
    fn mean(&self) -> f32 {
        if self.top.is_empty() {
            f32::MIN
        } else {
            self.top.iter().sum::<f32>() / self.top.len() as f32
        }
    }
}

/// Mean of the `k` largest values of `sims` (all of them when fewer).
fn top_mean(sims: impl Iterator<Item = f32>, k: usize) -> f32 {
    let mut top = TopK::new(k);
    sims.for_each(|s| top.push(s));
    top.mean()
}

/// New files [`Predictor::predict_all`] compares with the reference files together: each
/// reference vector is read from memory once per block, not once per new file (the block,
/// 64 × 384 floats = 96 KiB, stays in the L2 cache).
pub const PREDICT_BLOCK: usize = 64;

/// Four of [`dot`]'s running sums, one step: `a[l] + x[l] * y[l]`.
#[inline(always)]
fn madd4(a: [f32; 4], x: &[f32], y: &[f32]) -> [f32; 4] {
    [
        a[0] + x[0] * y[0],
        a[1] + x[1] * y[1],
        a[2] + x[2] * y[2],
        a[3] + x[3] * y[3],
    ]
}

/// [`dot`] of `w` with each of four vectors at once (`w` read once, eight independent sums
/// in flight instead of two), with exactly `dot`'s arithmetic in the same order: the results
/// are bit for bit `dot`'s. (Written as halves of four lanes: with eight-lane arrays the
/// compiler vectorises across the four vectors instead, with shuffles, and is slower.)
fn dots4(v: [&[f32]; 4], w: &[f32]) -> [f32; 4] {
    if v.iter().any(|x| x.len() != w.len()) {
        return v.map(|x| dot(x, w));
    }
    let n = w.len() - w.len() % 8;
    let mut lo = [[0.0f32; 4]; 4];
    let mut hi = [[0.0f32; 4]; 4];
    for c in (0..n).step_by(8) {
        let (ylo, yhi) = w[c..c + 8].split_at(4);
        let (x0, x1, x2, x3) = (
            &v[0][c..c + 8],
            &v[1][c..c + 8],
            &v[2][c..c + 8],
            &v[3][c..c + 8],
        );
        // Spelled out: a loop over the four makes the compiler vectorise across them.
        lo[0] = madd4(lo[0], &x0[..4], ylo);
        hi[0] = madd4(hi[0], &x0[4..], yhi);
        lo[1] = madd4(lo[1], &x1[..4], ylo);
        hi[1] = madd4(hi[1], &x1[4..], yhi);
        lo[2] = madd4(lo[2], &x2[..4], ylo);
        hi[2] = madd4(hi[2], &x2[4..], yhi);
        lo[3] = madd4(lo[3], &x3[..4], ylo);
        hi[3] = madd4(hi[3], &x3[4..], yhi);
    }
    // (With a loop over the four here too the compiler vectorises across them again.)
    [0, 1, 2, 3].map(|r| {
        let (l, h) = (lo[r], hi[r]);
        let acc = [l[0], l[1], l[2], l[3], h[0], h[1], h[2], h[3]];
        let tail: f32 = v[r][n..].iter().zip(&w[n..]).map(|(x, y)| x * y).sum();
        acc.iter().sum::<f32>() + tail
    })
}

/// For each of `block`, the mean similarity to its `k` nearest of `members` (the one at
/// index `skip[b]` left out: a member measured against the rest of its topic), the same as
/// [`top_mean`] over `members` one file at a time; each member is read once for the block.
fn closeness_block(
    block: &[&[f32]],
    skip: &[Option<usize>],
    members: &[&[f32]],
    k: usize,
) -> Vec<f32> {
    let mut tops: Vec<TopK> = block.iter().map(|_| TopK::new(k)).collect();
    let quads = block.len() / 4 * 4;
    for (j, w) in members.iter().enumerate() {
        for b in (0..quads).step_by(4) {
            let s = dots4([block[b], block[b + 1], block[b + 2], block[b + 3]], w);
            for (r, s) in s.into_iter().enumerate() {
                if skip[b + r] != Some(j) {
                    tops[b + r].push(s);
                }
            }
        }
        for b in quads..block.len() {
            if skip[b] != Some(j) {
                tops[b].push(dot(block[b], w));
            }
        }
    }
    tops.iter().map(TopK::mean).collect()
}

/// What [`Predictor::predict`] found for one file.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Prediction {
    /// The topic the file joins, if any.
    pub topic: Option<usize>,
    /// The topic it is closest to (joined or not).
    pub best: Option<usize>,
    /// Its closeness to `best`: the mean similarity to its `k` nearest members.
    pub score: f32,
    /// The same closeness to the runner-up: another topic, or the files in no topic.
    pub rival: f32,
    /// What `score` had to reach: `best`'s density floor.
    pub floor: f32,
}

/// Admission of new files between full clusterings, after HDBSCAN's approximate prediction
/// (a new point takes the cluster of its nearest clustered neighbours when it is as dense
/// there as the cluster's own points): built from the files labelled at the last clustering
/// (each one's topic, or none for the outliers), it puts a new file into topic *T* when
///
/// 1. *T* is clearly the nearest: the file's closeness to *T* — the mean cosine similarity
///    to its `k` nearest members of *T* — exceeds its closeness to every other topic and to
///    the outliers by [`PREDICT_MARGIN`] (a file between two topics, or nearer files the
///    clustering left out, joins none), and
/// 2. it is as dense in *T* as *T*'s members are: the closeness reaches *T*'s floor, the
///    least closeness of a member to the rest of *T* (leave one out). HDBSCAN accepted its
///    loosest member at that density (its λ at the cluster's birth), so a new file at least
///    that close would have been accepted too; a file about an unrelated subject, whose
///    nearest topic is far, joins none.
///
/// `k` is [`neighbours`] (capped by the topic's size less one). Unlike a centroid, this
/// follows a topic's shape: a file near some members joins even when the topic is wide.
pub struct Predictor<'a> {
    /// Reference files of each topic, then (last) the outliers.
    by_label: Vec<Vec<&'a [f32]>>,
    floors: Vec<f32>,
    k: usize,
    /// [`PREDICT_MARGIN`] unless changed (the benchmark measures others).
    pub margin: f32,
}

impl<'a> Predictor<'a> {
    /// `labels[i]` is the topic (0..`topics`) of `vectors[i]`, or `None` for an outlier.
    pub fn new(vectors: &[&'a [f32]], labels: &[Option<usize>], topics: usize, k: usize) -> Self {
        let mut by_label: Vec<Vec<&[f32]>> = vec![Vec::new(); topics + 1];
        for (v, l) in vectors.iter().zip(labels) {
            match l {
                Some(t) if *t < topics => by_label[*t].push(v),
                _ => by_label[topics].push(v),
            }
        }
        let floors = by_label[..topics]
            .iter()
            .map(|m| {
                if m.len() < 2 {
                    return f32::MAX; // a topic of one file has no density to match
                }
                let kk = k.min(m.len() - 1).max(1);
                let step = m.len().div_ceil(FLOOR_SAMPLE);
                let sampled: Vec<usize> = (0..m.len()).step_by(step).collect();
                let mut floor = f32::MAX;
                for chunk in sampled.chunks(PREDICT_BLOCK) {
                    let block: Vec<&[f32]> = chunk.iter().map(|&i| m[i]).collect();
                    let skip: Vec<Option<usize>> = chunk.iter().map(|&i| Some(i)).collect();
                    for own in closeness_block(&block, &skip, m, kk) {
                        floor = floor.min(own);
                    }
                }
                floor
            })
            .collect();
        Self {
            by_label,
            floors,
            k: k.max(1),
            margin: PREDICT_MARGIN,
        }
    }

    /// How many of label `l`'s files a closeness to it is the mean over: as many as its
    /// floor used.
    fn k_of(&self, l: usize) -> usize {
        let m = self.by_label[l].len();
        if l < self.floors.len() && m > 1 {
            self.k.min(m - 1)
        } else {
            self.k
        }
    }

    /// Where `v` (a file not among the reference files) goes: one pass over the reference
    /// files for this file alone. For several files, [`Predictor::predict_all`] gives the
    /// same answers in a fraction of the time.
    pub fn predict(&self, v: &[f32]) -> Prediction {
        let closeness: Vec<f32> = self
            .by_label
            .iter()
            .enumerate()
            .map(|(l, m)| {
                if m.is_empty() {
                    return f32::MIN;
                }
                top_mean(m.iter().map(|w| dot(v, w)), self.k_of(l))
            })
            .collect();
        self.decide(&closeness)
    }

    /// [`Predictor::predict`] of each of `vs` (files not among the reference files), in order
    /// and with identical answers, judging [`PREDICT_BLOCK`] files per pass over the reference
    /// files. One file at a time, a pass is bound by reading the reference vectors from
    /// memory; here each is read once per block and compared with four new files at a time
    /// (1,000 new files against 100k reference files: 7–11 times less time).
    pub fn predict_all(&self, vs: &[&[f32]]) -> Vec<Prediction> {
        let mut out = Vec::with_capacity(vs.len());
        let none = [None; PREDICT_BLOCK];
        for block in vs.chunks(PREDICT_BLOCK) {
            let mut closeness = vec![vec![f32::MIN; self.by_label.len()]; block.len()];
            for (l, m) in self.by_label.iter().enumerate() {
                if m.is_empty() {
                    continue;
                }
                let c = closeness_block(block, &none[..block.len()], m, self.k_of(l));
                for (row, c) in closeness.iter_mut().zip(c) {
                    row[l] = c;
                }
            }
            out.extend(closeness.iter().map(|c| self.decide(c)));
        }
        out
    }

    /// The rule, from a file's closeness to each topic and (last) to the outliers.
    fn decide(&self, closeness: &[f32]) -> Prediction {
        let topics = self.floors.len();
        let best = (0..topics)
            .filter(|&t| !self.by_label[t].is_empty())
            .max_by(|&a, &b| closeness[a].total_cmp(&closeness[b]));
        let Some(best) = best else {
            return Prediction {
                topic: None,
                best: None,
                score: f32::MIN,
                rival: f32::MIN,
                floor: f32::MAX,
            };
        };
        let rival = (0..=topics)
            .filter(|&l| l != best)
            .map(|l| closeness[l])
            .fold(f32::MIN, f32::max);
        let score = closeness[best];
        let floor = self.floors[best];
        let joins = score >= rival + self.margin && score >= floor;
        Prediction {
            topic: joins.then_some(best),
            best: Some(best),
            score,
            rival,
            floor,
        }
    }
}

fn hdbscan_labels(data: &[Vec<f32>], p: &Params) -> Result<Vec<i32>, String> {
    let size = p.min_topic_size.max(2);
    if data.len() < size * 2 {
        // Too few files for two topics: one topic would say nothing.
        return Ok(vec![-1; data.len()]);
    }
    let hp = HdbscanHyperParams::builder()
        .min_cluster_size(size)
        .min_samples(size.min(data.len() - 1).max(1))
        // Unit vectors: Euclidean distance orders pairs exactly as cosine similarity does.
        .dist_metric(DistanceMetric::Euclidean)
        // A k-d tree does not help in 384 dimensions.
        .nn_algorithm(NnAlgorithm::BruteForce)
        .build();
    Hdbscan::new(data, hp)
        .cluster()
        .map_err(|e| format!("clustering failed: {e:?}"))
}

/// Labels for every vector: a topic number (0..) or -1 for files in no topic.
pub fn cluster(vectors: &[Vec<f32>], p: &Params) -> Result<Vec<i32>, String> {
    let labels = cluster_coarse(vectors, p)?;
    Ok(refine(vectors, labels, p))
}

/// How much closer, on average, the members of each part of a split are to their own part's
/// centroid than to the nearest other part's, for the split to stand (cosine). HDBSCAN's
/// excess-of-mass choice keeps a parent cluster whose children are each clearly about one
/// thing (man pages of process tools and of network tools came out as one topic); a split
/// this clean is what a person would make.
const SEPARATION: f32 = 0.04;

/// Splits each middle-sized topic (up to [`Params::split_above`] files; larger ones become
/// sub-topics instead) into the clearly separate topics HDBSCAN finds inside it.
fn refine(vectors: &[Vec<f32>], mut labels: Vec<i32>, p: &Params) -> Vec<i32> {
    let size = p.min_topic_size.max(2);
    let mut next = labels.iter().copied().max().unwrap_or(-1) + 1;
    for members in groups(&labels) {
        if members.len() < 2 * size || members.len() > p.split_above {
            continue;
        }
        let sub: Vec<Vec<f32>> = members.iter().map(|&i| vectors[i].clone()).collect();
        let Ok(sl) = hdbscan_labels(&sub, p) else {
            continue;
        };
        let parts = groups(&sl);
        if parts.len() < 2 {
            continue;
        }
        let covered: usize = parts.iter().map(|g| g.len()).sum();
        if (covered as f32) < 0.75 * members.len() as f32 {
            continue;
        }
        let topics: Vec<Topic> = parts
            .iter()
            .map(|g| Topic::of(&g.iter().map(|&j| sub[j].as_slice()).collect::<Vec<_>>()))
            .collect();
        let separation = parts
            .iter()
            .enumerate()
            .map(|(k, g)| {
                let mean =
                    |c: &[f32]| g.iter().map(|&j| dot(&sub[j], c)).sum::<f32>() / g.len() as f32;
                let own = mean(&topics[k].centroid);
                let other = (0..topics.len())
                    .filter(|&o| o != k)
                    .map(|o| mean(&topics[o].centroid))
                    .fold(f32::MIN, f32::max);
                own - other
            })
            .fold(f32::MAX, f32::min);
        tracing::info!(
            "topics: a topic of {} files splits into {} (separation {separation:.3}, needs {SEPARATION})",
            members.len(),
            parts.len()
        );
        if separation < SEPARATION {
            continue;
        }
        // The first part keeps the topic's number; members in no part join the nearest part
        // that admits them, or no topic.
        let old = labels[members[0]];
        let ids: Vec<i32> = (0..parts.len())
            .map(|k| {
                if k == 0 {
                    old
                } else {
                    next += 1;
                    next - 1
                }
            })
            .collect();
        for (j, &i) in members.iter().enumerate() {
            labels[i] = match parts.iter().position(|g| g.contains(&j)) {
                Some(k) => ids[k],
                None => nearest(&topics, &sub[j]).map(|(k, _)| ids[k]).unwrap_or(-1),
            };
        }
    }
    labels
}

/// Seed of [`sample_indices`]: fixed, so a clustering is reproducible (and, with it, the
/// topics and their names).
const SAMPLE_SEED: u64 = 0x7065_726f_735f_3137;

/// SplitMix64's finaliser: a bijection of `u64` whose outputs look independent of their
/// inputs (consecutive inputs give unrelated outputs).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The `m` of the indices `0..n` that HDBSCAN clusters when `n` exceeds it: those with the
/// smallest hash of the index and a fixed seed ([`SAMPLE_SEED`]), in increasing order. A
/// pseudo-random choice, so it cannot alias with a periodic order of the files (directory
/// listings, generated series; every k-th file of files listed in turns of k subjects is all
/// one subject), and deterministic, so runs are reproducible. A file's hash depends on its
/// index only, so adding files at the end changes the sample by at most as many files as
/// were added.
pub fn sample_indices(n: usize, m: usize) -> Vec<usize> {
    let mut keyed: Vec<(u64, usize)> = (0..n).map(|i| (mix(i as u64 ^ SAMPLE_SEED), i)).collect();
    if m < n {
        keyed.select_nth_unstable(m);
        keyed.truncate(m);
    }
    let mut idx: Vec<usize> = keyed.into_iter().map(|(_, i)| i).collect();
    idx.sort_unstable();
    idx
}

fn cluster_coarse(vectors: &[Vec<f32>], p: &Params) -> Result<Vec<i32>, String> {
    let n = vectors.len();
    if n <= p.max_sample {
        return hdbscan_labels(vectors, p);
    }
    // A fixed pseudo-random sample, clustered; the rest assigned.
    let sample_idx = sample_indices(n, p.max_sample);
    let sample: Vec<Vec<f32>> = sample_idx.iter().map(|&i| vectors[i].clone()).collect();
    let sl = hdbscan_labels(&sample, p)?;
    let k = sl.iter().copied().max().unwrap_or(-1) + 1;
    let topics: Vec<Topic> = (0..k)
        .map(|c| {
            let m: Vec<&[f32]> = sample
                .iter()
                .zip(&sl)
                .filter(|(_, &l)| l == c)
                .map(|(v, _)| v.as_slice())
                .collect();
            Topic::of(&m)
        })
        .collect();
    let mut labels = vec![-1; n];
    let mut sampled = vec![false; n];
    for (j, &i) in sample_idx.iter().enumerate() {
        labels[i] = sl[j];
        sampled[i] = true;
    }
    for (i, v) in vectors.iter().enumerate() {
        if !sampled[i] {
            labels[i] = nearest(&topics, v).map(|(t, _)| t as i32).unwrap_or(-1);
        }
    }
    Ok(labels)
}

/// Member indices of each topic found in `labels`, largest topic first.
pub fn groups(labels: &[i32]) -> Vec<Vec<usize>> {
    let k = labels.iter().copied().max().unwrap_or(-1) + 1;
    let mut g: Vec<Vec<usize>> = (0..k)
        .map(|c| {
            labels
                .iter()
                .enumerate()
                .filter(|(_, &l)| l == c)
                .map(|(i, _)| i)
                .collect()
        })
        .filter(|m: &Vec<usize>| !m.is_empty())
        .collect();
    g.sort_by_key(|m| std::cmp::Reverse(m.len()));
    g
}

/// Sub-topics of a large topic (member indices into `vectors`), when HDBSCAN finds at
/// least two inside it; empty otherwise.
pub fn split(vectors: &[Vec<f32>], members: &[usize], p: &Params) -> Vec<Vec<usize>> {
    if members.len() <= p.split_above {
        return Vec::new();
    }
    let sub: Vec<Vec<f32>> = members.iter().map(|&i| vectors[i].clone()).collect();
    let Ok(labels) = cluster(&sub, p) else {
        return Vec::new();
    };
    let g = groups(&labels);
    if g.len() < 2 {
        return Vec::new();
    }
    g.into_iter()
        .map(|m| m.into_iter().map(|j| members[j]).collect())
        .collect()
}

/// Purity and normalised mutual information of `labels` against `truth` (noise, -1, counts
/// as its own cluster), for the benchmark.
pub fn purity_nmi(labels: &[i32], truth: &[usize]) -> (f64, f64) {
    use std::collections::HashMap;
    let n = labels.len() as f64;
    if n == 0.0 {
        return (0.0, 0.0);
    }
    let mut joint: HashMap<(i32, usize), f64> = HashMap::new();
    let mut a: HashMap<i32, f64> = HashMap::new();
    let mut b: HashMap<usize, f64> = HashMap::new();
    for (&l, &t) in labels.iter().zip(truth) {
        *joint.entry((l, t)).or_default() += 1.0;
        *a.entry(l).or_default() += 1.0;
        *b.entry(t).or_default() += 1.0;
    }
    let mut best: HashMap<i32, f64> = HashMap::new();
    for (&(l, _), &c) in &joint {
        let e = best.entry(l).or_default();
        *e = e.max(c);
    }
    let purity = best.values().sum::<f64>() / n;
    let mi: f64 = joint
        .iter()
        .map(|(&(l, t), &c)| c / n * ((c * n) / (a[&l] * b[&t])).ln())
        .sum();
    let h =
        |counts: Vec<f64>| -> f64 { -counts.iter().map(|&c| c / n * (c / n).ln()).sum::<f64>() };
    let (ha, hb) = (
        h(a.values().copied().collect()),
        h(b.values().copied().collect()),
    );
    let nmi = if ha + hb > 0.0 {
        2.0 * mi / (ha + hb)
    } else {
        1.0
    };
    (purity, nmi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(mut v: Vec<f32>) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        v
    }

    /// One unit vector per entry of `subjects`, near the axis of its subject (16-d, noise from
    /// a xorshift generator seeded with `seed`).
    fn near_axes(subjects: &[usize], seed: u64) -> Vec<Vec<f32>> {
        let mut rng = seed;
        let mut r = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % 1000) as f32 / 1000.0 - 0.5
        };
        subjects
            .iter()
            .map(|&c| {
                let mut x: Vec<f32> = (0..16).map(|_| r() * 0.2).collect();
                x[c] += 1.0;
                unit(x)
            })
            .collect()
    }

    /// Three tight groups around three axes and a few scattered points: three topics, the
    /// scattered points in none.
    fn blobs(per: usize) -> (Vec<Vec<f32>>, Vec<usize>) {
        let t: Vec<usize> = (0..3).flat_map(|c| std::iter::repeat_n(c, per)).collect();
        (near_axes(&t, 12345), t)
    }

    #[test]
    fn finds_the_number_of_topics_itself() {
        let (v, t) = blobs(12);
        let labels = cluster(&v, &Params::default()).unwrap();
        assert_eq!(groups(&labels).len(), 3, "{labels:?}");
        let (purity, nmi) = purity_nmi(&labels, &t);
        assert!(purity > 0.95 && nmi > 0.85, "purity {purity} nmi {nmi}");
    }

    #[test]
    fn a_sample_and_assignment_agree_with_the_labels() {
        let (v, t) = blobs(400);
        let p = Params {
            max_sample: 300,
            ..Params::default()
        };
        let labels = cluster(&v, &p).unwrap();
        let (purity, nmi) = purity_nmi(&labels, &t);
        assert!(purity > 0.9 && nmi > 0.7, "purity {purity} nmi {nmi}");
    }

    /// Approximate prediction: a new point near one topic's members joins it; a point
    /// halfway between two topics, one far from all, or one nearer the outliers than any
    /// topic joins none.
    #[test]
    fn a_new_file_joins_the_topic_of_its_neighbours_or_none() {
        let (v, t) = blobs(12);
        // Topics 0 and 1 clustered; the files of blob 2 were left as outliers.
        let labels: Vec<Option<usize>> = t.iter().map(|&c| (c < 2).then_some(c)).collect();
        let refs: Vec<&[f32]> = v.iter().map(|x| x.as_slice()).collect();
        let p = Predictor::new(&refs, &labels, 2, neighbours(&Params::default()));
        let point = |w: [f32; 4]| {
            let mut x = vec![0.0f32; 16];
            x[..4].copy_from_slice(&w);
            x[5] = 0.05;
            unit(x)
        };
        // Near topic 0 (a little off its axis, as a new member would be).
        let near = p.predict(&point([1.0, 0.15, 0.0, 0.0]));
        assert_eq!(near.topic, Some(0), "{near:?}");
        let near1 = p.predict(&point([0.1, 1.0, 0.0, 0.1]));
        assert_eq!(near1.topic, Some(1), "{near1:?}");
        // Halfway between topics 0 and 1: clearly in neither.
        let between = p.predict(&point([1.0, 1.0, 0.0, 0.0]));
        assert_eq!(between.topic, None, "{between:?}");
        // Far from every file (its own direction): no topic.
        let far = p.predict(&point([0.0, 0.0, 0.0, 1.0]));
        assert_eq!(far.topic, None, "{far:?}");
        assert!(far.score < far.floor, "{far:?}");
        // Among the outliers (blob 2): nearer files the clustering left out, so none.
        let noise = p.predict(&point([0.0, 0.1, 1.0, 0.0]));
        assert_eq!(noise.topic, None, "{noise:?}");
        // Skewed towards topic 0 but well off it: nearest, yet less close than its members.
        let loose = p.predict(&point([1.0, 0.0, 0.0, 0.9]));
        assert_eq!(loose.best, Some(0), "{loose:?}");
        assert_eq!(loose.topic, None, "{loose:?}");
    }

    /// Files listed in turns of subjects (file i about subject i % k, as a directory listing
    /// or a generated series can be) with n / max_sample a multiple of k: every k-th file is
    /// one subject (the even sample this replaced gave purity 0.32 here). The pseudo-random
    /// sample sees them all.
    #[test]
    fn a_periodic_order_does_not_alias_with_the_sample() {
        let k = 5;
        let n = 2000;
        let p = Params {
            max_sample: 200, // n / max_sample = 10, a multiple of k
            ..Params::default()
        };
        let t: Vec<usize> = (0..n).map(|i| i % k).collect();
        let v = near_axes(&t, 777);
        let sample = sample_indices(n, p.max_sample);
        assert_eq!(sample.len(), p.max_sample);
        assert!(sample.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(sample, sample_indices(n, p.max_sample), "deterministic");
        for c in 0..k {
            let of_c = sample.iter().filter(|&&i| i % k == c).count();
            assert!(of_c > p.max_sample / k / 2, "subject {c}: {of_c} sampled");
        }
        let labels = cluster(&v, &p).unwrap();
        let (purity, nmi) = purity_nmi(&labels, &t);
        assert_eq!(groups(&labels).len(), k, "purity {purity} nmi {nmi}");
        assert!(purity > 0.95 && nmi > 0.9, "purity {purity} nmi {nmi}");
    }

    /// Judging new files in blocks gives the answers of judging them one at a time, bit for
    /// bit, and the blocked floors are the leave-one-out closeness of the members.
    #[test]
    fn blocked_predictions_are_those_of_one_file_at_a_time() {
        let mut rng = 4242u64;
        let mut r = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        // 37 dimensions: the sums' tail (37 = 4 × 8 + 5) is exercised too; 384 as the model's.
        for dims in [37usize, 384] {
            let topics = 4;
            let centres: Vec<Vec<f32>> = (0..topics)
                .map(|_| {
                    unit(
                        (0..dims)
                            .map(|_| (r() % 1000) as f32 / 1000.0 - 0.5)
                            .collect(),
                    )
                })
                .collect();
            let mut point = |c: usize, noise: f32| {
                let x: Vec<f32> = (0..dims)
                    .map(|d| centres[c][d] + noise * ((r() % 1000) as f32 / 1000.0 - 0.5))
                    .collect();
                unit(x)
            };
            let mut refs = Vec::new();
            let mut labels = Vec::new();
            for i in 0..300 {
                let c = i % topics;
                refs.push(point(c, 0.25));
                // One in seven files of each blob left as outliers, and a topic of one file.
                labels.push(match i {
                    7 => Some(topics),
                    _ if i % 7 == 0 => None,
                    _ => Some(c),
                });
            }
            // 150 new files: two full blocks and a partial one whose size is not a multiple
            // of 4; near a topic, loosely near one, and far from all.
            let fresh: Vec<Vec<f32>> = (0..150)
                .map(|i| match i % 3 {
                    0 => point(i % topics, 0.25),
                    1 => point(i % topics, 0.9),
                    _ => point(i % topics, 20.0), // a random direction
                })
                .collect();
            let rv: Vec<&[f32]> = refs.iter().map(|x| x.as_slice()).collect();
            let p = Predictor::new(&rv, &labels, topics + 1, 3);
            // The floors against leave-one-out top_mean, one member at a time.
            for (t, floor) in p.floors.iter().enumerate() {
                let m = &p.by_label[t];
                if m.len() < 2 {
                    assert_eq!(*floor, f32::MAX);
                    continue;
                }
                let kk = 3.min(m.len() - 1);
                let step = m.len().div_ceil(FLOOR_SAMPLE);
                let want = (0..m.len())
                    .step_by(step)
                    .map(|i| {
                        top_mean(
                            m.iter()
                                .enumerate()
                                .filter(|(j, _)| *j != i)
                                .map(|(_, w)| dot(m[i], w)),
                            kk,
                        )
                    })
                    .fold(f32::MAX, f32::min);
                assert_eq!(floor.to_bits(), want.to_bits(), "topic {t}");
            }
            let fv: Vec<&[f32]> = fresh.iter().map(|x| x.as_slice()).collect();
            let blocked = p.predict_all(&fv);
            assert_eq!(blocked.len(), fresh.len());
            let mut joined = 0;
            for (i, (v, b)) in fv.iter().zip(&blocked).enumerate() {
                let one = p.predict(v);
                assert_eq!(
                    (
                        one.topic,
                        one.best,
                        one.score.to_bits(),
                        one.rival.to_bits()
                    ),
                    (b.topic, b.best, b.score.to_bits(), b.rival.to_bits()),
                    "file {i}: {one:?} / {b:?}"
                );
                assert_eq!(one.floor.to_bits(), b.floor.to_bits());
                joined += usize::from(one.topic.is_some());
            }
            // Both kinds of answer were compared.
            assert!(
                joined > 10 && joined < 140,
                "{dims} dimensions: {joined} joined"
            );
        }
    }

    #[test]
    fn purity_and_nmi_of_perfect_and_random_labels() {
        let (p, n) = purity_nmi(&[0, 0, 1, 1], &[5, 5, 7, 7]);
        assert!((p - 1.0).abs() < 1e-9 && (n - 1.0).abs() < 1e-9);
        let (_, n) = purity_nmi(&[0, 1, 0, 1], &[5, 5, 7, 7]);
        assert!(n < 1e-9);
    }
}

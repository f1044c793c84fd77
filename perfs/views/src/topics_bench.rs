//! Topics benchmark (issue 17, docs/TOPICS.md): cluster quality of the agent's topic pass
//! against labels, per corpus size, with the names it gives; and the time and memory of
//! clustering at 10k and 100k files (synthetic vectors: this machine has no 100k embedded
//! files, and the model would take days to embed them).
//!
//!   topics-bench --home H --labels L.tsv --out OUT.md     quality (vectors from H's index)
//!   topics-bench --synthetic N [--periodic] [--shuffle S] one timing run, JSON on stdout
//!                                                         (in turns of blobs; shuffled)
//!
//! Baselines measured in the same run: for quality, the same group sizes with the labels
//! shuffled (what chance gives); for time, one pass of the centroid assignment (every file
//! to its nearest topic) over the same vectors; for admitting new files, the same files
//! judged one at a time (`Predictor::predict`, the path before) against in blocks
//! (`Predictor::predict_all`), whose answers must be the same.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use peros_agent::topics::{cluster, naming};
use peros_crypto::Keyring;
use peros_indexer::{Indexer, Options};
use peros_store::{ObjectStoreBackend, Store, StoreOptions};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn f(&mut self) -> f32 {
        (self.next() % 1_000_000) as f32 / 1_000_000.0 - 0.5
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, (self.next() % (i as u64 + 1)) as usize);
        }
    }
}

fn open(home: &Path) -> Result<Arc<Indexer>> {
    let keyring = Keyring::load(&home.join("keys/identity.age"), || None)
        .with_context(|| format!("{}: no PerOS home", home.display()))?;
    let backend = ObjectStoreBackend::local(&home.join("objects"))?;
    let store = Store::open(
        &home.join("meta/peros.redb"),
        Arc::new(keyring),
        Arc::new(backend),
        StoreOptions::default(),
    )?;
    let ix = Indexer::open(
        Arc::new(store),
        Options::new(peros_indexer::default_dir(home)),
    )?;
    if let Some(e) = ix.catch_up(true, &|_, _, _| {})? {
        bail!("the embedding model is not available ({e}): source /var/cache/peros/env.sh");
    }
    Ok(ix)
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The synthetic vectors (see [`synthetic`]): weight of the direction shared by all and of
/// the blob's centre; the noise weight of blob `b` of `k` runs from `NOISE.0` to `NOISE.1`.
const SHARED: f32 = 0.47;
const CENTRE: f32 = 0.54;
const NOISE: (f32, f32) = (0.5, 0.9);
/// Blob `b`'s centre is in family `b % FAMILIES`, with this weight of the family's direction.
const FAMILIES: usize = 10;
const FAMILY: f32 = 0.7;

/// A random unit direction (384-d): each coordinate uniform in [-0.5, 0.5), zero mean, then
/// normalised; two such directions have a cosine of 0 ± 0.05.
fn direction(r: &mut Rng) -> Vec<f32> {
    let v: Vec<f32> = (0..384).map(|_| r.f()).collect();
    cluster::centroid([v.as_slice()])
}

/// `a·x + b·y`, normalised.
fn mix(a: f32, x: &[f32], b: f32, y: &[f32]) -> Vec<f32> {
    let v: Vec<f32> = x.iter().zip(y).map(|(x, y)| a * x + b * y).collect();
    cluster::centroid([v.as_slice()])
}

/// Unit vectors in `k` blobs (384-d), like file vectors of `k` subjects, and each one's blob.
/// Each vector's blob is drawn at random (seeded), so the order has no period for a sample
/// to alias with (blob `i % k`, as before, made every 50th vector one blob: an even sample
/// of 2,000 of 100k saw one blob).
///
/// A vector of blob `b` is `SHARED·g + CENTRE·c_b + N_b·e`, normalised: `g` one direction
/// common to all (text embeddings share one: unrelated files are not orthogonal), `c_b` the
/// blob's centre, `e` the vector's own noise, all random unit directions (zero-mean: the
/// centres before were already centred on 0, the coordinates of `Rng::f` being in
/// [-0.5, 0.5)). Subjects come in families, as man pages of git, of dpkg or of network tools
/// do: `c_b` is `FAMILY` of its family's direction and the rest its own, so two centres of
/// one family have a cosine of 0.49. Blobs differ in spread: `N_b` from 0.5 (cosine 0.67
/// within the blob) to 0.9 (0.39). Measured over 200,000 pairs of the 10k run: cosine
/// 0.514 ± 0.092 within a blob, 0.225 ± 0.068 between blobs, the same means as the embedded
/// man pages of one Debian package and of different ones (0.508 ± 0.157, 0.224 ± 0.124,
/// perfs/results/topics-2026-12-04.md), less spread. The blobs before (centre plus 0.35 ×
/// uniform ±0.5 per coordinate, no shared direction) had 0.89 within and 0.00 between:
/// distinct, but so far apart that any method separates them.
fn synthetic(n: usize, k: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<usize>) {
    let mut r = Rng(seed);
    let shared = direction(&mut r);
    let families: Vec<Vec<f32>> = (0..FAMILIES).map(|_| direction(&mut r)).collect();
    let centres: Vec<Vec<f32>> = (0..k)
        .map(|b| {
            let own = direction(&mut r);
            mix(
                FAMILY,
                &families[b % FAMILIES],
                (1.0 - FAMILY * FAMILY).sqrt(),
                &own,
            )
        })
        .collect();
    let noise = |b: usize| NOISE.0 + (NOISE.1 - NOISE.0) * b as f32 / (k - 1).max(1) as f32;
    let mut truth = Vec::with_capacity(n);
    let vectors = (0..n)
        .map(|_| {
            let b = (r.next() % k as u64) as usize;
            truth.push(b);
            let e = direction(&mut r);
            let v: Vec<f32> = (0..384)
                .map(|d| SHARED * shared[d] + CENTRE * centres[b][d] + noise(b) * e[d])
                .collect();
            cluster::centroid([v.as_slice()])
        })
        .collect();
    (vectors, truth)
}

/// Mean and standard deviation of the cosine of two vectors with the same label, then the
/// same of two with different labels: over all pairs, or `pairs` pairs drawn at random
/// (seeded; half of them within one label) when there are more.
fn cosines(vectors: &[Vec<f32>], labels: &[usize], pairs: usize) -> [(f64, f64); 2] {
    let n = vectors.len();
    // Count, sum and sum of squares: same label, different labels.
    let mut acc = [(0usize, 0f64, 0f64); 2];
    let mut add = |i: usize, j: usize| {
        let c = cluster::dot(&vectors[i], &vectors[j]) as f64;
        let a = &mut acc[usize::from(labels[i] != labels[j])];
        *a = (a.0 + 1, a.1 + c, a.2 + c * c);
    };
    if n * n.saturating_sub(1) / 2 <= pairs {
        for i in 0..n {
            for j in i + 1..n {
                add(i, j);
            }
        }
    } else {
        let mut r = Rng(11);
        let mut by: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, &l) in labels.iter().enumerate() {
            by.entry(l).or_default().push(i);
        }
        for p in 0..pairs {
            let i = (r.next() % n as u64) as usize;
            let j = if p % 2 == 0 {
                let g = &by[&labels[i]];
                g[(r.next() % g.len() as u64) as usize]
            } else {
                (r.next() % n as u64) as usize
            };
            if i != j {
                add(i, j);
            }
        }
    }
    acc.map(|(k, s, q)| {
        let k = k.max(1) as f64;
        let mean = s / k;
        (mean, (q / k - mean * mean).max(0.0).sqrt())
    })
}

/// New files between clusterings, for the timing of their admission.
const NEW_FILES: usize = 1000;

/// The files' vectors and their labels as numbers (in order of first appearance).
fn vectors_and_truth(
    files: &[peros_indexer::FileVector],
    labels: &HashMap<String, String>,
) -> (Vec<Vec<f32>>, Vec<usize>) {
    let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
    let truth = files
        .iter()
        .map(|f| {
            let k = ids.len();
            *ids.entry(labels[&f.path].as_str()).or_insert(k)
        })
        .collect();
    (files.iter().map(|f| f.vector.clone()).collect(), truth)
}

/// Reference labels for [`cluster::Predictor`] from clustering labels (-1: outlier).
fn reference(labels: &[i32]) -> (Vec<Option<usize>>, usize) {
    let k = labels.iter().copied().max().unwrap_or(-1) + 1;
    (
        labels
            .iter()
            .map(|&l| (l >= 0).then_some(l as usize))
            .collect(),
        k as usize,
    )
}

/// The same vectors in turns of blobs (blob 0, 1, …, k − 1, 0, 1, …, while each has some
/// left), as files listed in directory order or a generated series can be: the order an
/// even sample aliases with (n / 2,000 a multiple of k: every sampled file of one blob).
fn in_turns(vectors: Vec<Vec<f32>>, truth: Vec<usize>, k: usize) -> (Vec<Vec<f32>>, Vec<usize>) {
    let mut by: Vec<std::collections::VecDeque<Vec<f32>>> = vec![Default::default(); k];
    for (v, &b) in vectors.into_iter().zip(&truth) {
        by[b].push_back(v);
    }
    let (mut vs, mut ts) = (
        Vec::with_capacity(truth.len()),
        Vec::with_capacity(truth.len()),
    );
    while vs.len() < truth.len() {
        for (b, q) in by.iter_mut().enumerate() {
            if let Some(v) = q.pop_front() {
                vs.push(v);
                ts.push(b);
            }
        }
    }
    (vs, ts)
}

/// One timing run over `n` synthetic vectors: in their drawn order, in turns of blobs
/// (`periodic`), or shuffled with a seed (`shuffle`: another sample of the same vectors).
fn synthetic_run(n: usize, periodic: bool, shuffle: Option<u64>) -> Result<()> {
    // The same vectors as `synthetic(n, ..)`, then NEW_FILES more of the same blobs.
    let (mut vectors, mut truth) = synthetic(n + NEW_FILES, 50, 7);
    let fresh = vectors.split_off(n);
    truth.truncate(n);
    if periodic {
        (vectors, truth) = in_turns(vectors, truth, 50);
    }
    if let Some(seed) = shuffle {
        let mut pairs: Vec<(Vec<f32>, usize)> = vectors.into_iter().zip(truth).collect();
        Rng(seed).shuffle(&mut pairs);
        (vectors, truth) = pairs.into_iter().unzip();
    }
    let before = peak_rss_kb();
    let t = Instant::now();
    let labels =
        cluster::cluster(&vectors, &cluster::Params::default()).map_err(anyhow::Error::msg)?;
    let full_ms = t.elapsed().as_secs_f64() * 1000.0;
    let groups = cluster::groups(&labels);
    let topics: Vec<cluster::Topic> = groups
        .iter()
        .map(|g| cluster::Topic::of(&g.iter().map(|&i| vectors[i].as_slice()).collect::<Vec<_>>()))
        .collect();
    let t = Instant::now();
    let assigned = vectors
        .iter()
        .filter(|v| cluster::nearest(&topics, v).is_some())
        .count();
    let assign_ms = t.elapsed().as_secs_f64() * 1000.0;
    // Admission of new files between clusterings: the predictor over all clustered files,
    // built once (its floors), then the new files judged in blocks (`predict_all`, the
    // incremental pass's path) and, as the baseline, one at a time (`predict`, the path
    // before): the same answers, checked.
    let t = Instant::now();
    let (rl, k) = reference(&labels);
    let refs: Vec<&[f32]> = vectors.iter().map(|v| v.as_slice()).collect();
    let predictor = cluster::Predictor::new(
        &refs,
        &rl,
        k,
        cluster::neighbours(&cluster::Params::default()),
    );
    let build_ms = t.elapsed().as_secs_f64() * 1000.0;
    let new: Vec<&[f32]> = fresh.iter().map(|v| v.as_slice()).collect();
    let t = Instant::now();
    let blocked = predictor.predict_all(&new);
    let block_ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    let one: Vec<cluster::Prediction> = new.iter().map(|v| predictor.predict(v)).collect();
    let one_ms = t.elapsed().as_secs_f64() * 1000.0;
    let same = blocked.iter().zip(&one).all(|(a, b)| {
        a.topic == b.topic
            && a.score.to_bits() == b.score.to_bits()
            && a.rival.to_bits() == b.rival.to_bits()
    });
    if !same {
        bail!("blocked and one-at-a-time admission disagree");
    }
    let admitted = blocked.iter().filter(|p| p.topic.is_some()).count();
    let (purity, nmi) = cluster::purity_nmi(&labels, &truth);
    let [(cos_within, sd_within), (cos_between, sd_between)] = cosines(&vectors, &truth, 200_000);
    println!(
        "{}",
        serde_json::json!({"n": n, "order": if periodic { "periodic" } else { "random" }, "shuffle": shuffle, "full_ms": full_ms, "assign_ms": assign_ms, "topics": groups.len(),
            "assigned": assigned, "outliers": labels.iter().filter(|&&l| l < 0).count(),
            "new_files": NEW_FILES, "build_ms": build_ms, "admit_one_ms": one_ms, "admit_block_ms": block_ms,
            "block": cluster::PREDICT_BLOCK, "admitted": admitted, "purity": purity, "nmi": nmi,
            "cos_within": cos_within, "cos_within_sd": sd_within, "cos_between": cos_between, "cos_between_sd": sd_between,
            "rss_before_kb": before, "peak_rss_kb": peak_rss_kb()})
    );
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let get = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if let Some(n) = get("--synthetic") {
        let shuffle = get("--shuffle").map(|s| s.parse()).transpose()?;
        return synthetic_run(n.parse()?, args.iter().any(|a| a == "--periodic"), shuffle);
    }
    let home = PathBuf::from(get("--home").context("--home H")?);
    let labels_path = get("--labels").context("--labels L.tsv")?;
    let out = get("--out").context("--out OUT.md")?;
    let labels: HashMap<String, String> = std::fs::read_to_string(&labels_path)?
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(p, l)| (p.to_string(), l.to_string()))
        .collect();
    let ix = open(&home)?;
    let fv = ix.file_vectors()?;
    let mut files: Vec<_> = fv
        .files
        .into_iter()
        .filter(|f| labels.contains_key(&f.path))
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Rng(42).shuffle(&mut files);
    let mut md = String::new();
    md.push_str("# Topics: cluster quality, names, time and memory\n\n");
    md.push_str(&format!(
        "Corpus: {} embedded man pages of this machine (perfs/search/pages.txt), labelled by their \
         Debian package (`dpkg -S`); {} distinct labels. Files: a fixed shuffle, first N. Clustering: \
         `peros_agent::topics::cluster` with default parameters (HDBSCAN, min topic size 3). \
         *Chance*: the same clusters with the labels shuffled (baseline measured in the same run). \
         Purity counts outliers as one more cluster.\n\n",
        files.len(),
        files.iter().map(|f| &labels[&f.path]).collect::<std::collections::HashSet<_>>().len()
    ));
    {
        let (vectors, truth) = vectors_and_truth(&files, &labels);
        let [(within, sd_within), (between, sd_between)] = cosines(&vectors, &truth, usize::MAX);
        md.push_str(&format!(
            "Cosine of two pages' file vectors (all pairs, mean ± standard deviation): \
             {within:.3} ± {sd_within:.3} for the same package, {between:.3} ± {sd_between:.3} \
             for different ones (the synthetic blobs below have about these means).\n\n"
        ));
    }
    md.push_str("| files | topics | outliers | purity | NMI | chance NMI | NMI / chance | ms |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let mut sizes: Vec<usize> = [100, 200, 400]
        .into_iter()
        .filter(|&n| n < files.len())
        .collect();
    sizes.push(files.len());
    let mut last = None;
    for &n in &sizes {
        let sub = &files[..n];
        let (vectors, truth) = vectors_and_truth(sub, &labels);
        let t = Instant::now();
        let l =
            cluster::cluster(&vectors, &cluster::Params::default()).map_err(anyhow::Error::msg)?;
        let ms = t.elapsed().as_millis();
        let (purity, nmi) = cluster::purity_nmi(&l, &truth);
        let mut shuffled = truth.clone();
        Rng(9).shuffle(&mut shuffled);
        let (_, chance) = cluster::purity_nmi(&l, &shuffled);
        let topics = cluster::groups(&l).len();
        let outliers = l.iter().filter(|&&x| x < 0).count();
        md.push_str(&format!(
            "| {n} | {topics} | {outliers} | {purity:.3} | {nmi:.3} | {chance:.3} | {:.1} | {ms} |\n",
            nmi / chance.max(1e-6)
        ));
        last = Some((l, n));
    }
    // New files between clusterings: the first 80 % clustered, the last 20 % admitted by
    // the predictor (the incremental rule) and, for comparison, by the centroid rule; an
    // admission is right when the topic's majority label is the file's own.
    {
        let n = files.len();
        let cut = n * 4 / 5;
        let vectors: Vec<Vec<f32>> = files.iter().map(|f| f.vector.clone()).collect();
        let l = cluster::cluster(&vectors[..cut], &cluster::Params::default())
            .map_err(anyhow::Error::msg)?;
        let groups = cluster::groups(&l);
        let mut topic_of = vec![None; cut];
        let mut majority: Vec<&str> = Vec::new();
        for (gi, g) in groups.iter().enumerate() {
            let mut count: BTreeMap<&str, usize> = BTreeMap::new();
            for &i in g {
                topic_of[i] = Some(gi);
                *count.entry(labels[&files[i].path].as_str()).or_default() += 1;
            }
            majority.push(count.iter().max_by_key(|x| *x.1).map(|x| *x.0).unwrap());
        }
        let refs: Vec<&[f32]> = vectors[..cut].iter().map(|v| v.as_slice()).collect();
        let mut predictor = cluster::Predictor::new(
            &refs,
            &topic_of,
            groups.len(),
            cluster::neighbours(&cluster::Params::default()),
        );
        let centroids: Vec<cluster::Topic> = groups
            .iter()
            .map(|g| cluster::Topic::of(&g.iter().map(|&i| refs[i]).collect::<Vec<_>>()))
            .collect();
        // Each rule's topic for each new file.
        let mut rules: Vec<(String, Vec<Option<usize>>)> = Vec::new();
        for margin in [cluster::PREDICT_MARGIN, 0.06, 0.10] {
            predictor.margin = margin;
            let name = if margin == cluster::PREDICT_MARGIN {
                format!(
                    "nearest clustered neighbours (`Predictor`, the incremental rule), margin {margin}"
                )
            } else {
                format!("the same, margin {margin}")
            };
            let got = vectors[cut..]
                .iter()
                .map(|v| predictor.predict(v).topic)
                .collect();
            rules.push((name, got));
        }
        rules.push((
            "nearest admitting centroid (`Topic::admits`, the rule before)".into(),
            vectors[cut..]
                .iter()
                .map(|v| cluster::nearest(&centroids, v).map(|x| x.0))
                .collect(),
        ));
        let new = &files[cut..];
        let coverable = new
            .iter()
            .filter(|f| majority.contains(&labels[&f.path].as_str()))
            .count();
        let mut rows = Vec::new();
        for (name, got) in &rules {
            let (mut admitted, mut right) = (0usize, 0usize);
            for (f, t) in new.iter().zip(got) {
                if let Some(t) = t {
                    admitted += 1;
                    if majority[*t] == labels[&f.path] {
                        right += 1;
                    }
                }
            }
            rows.push(format!(
                "| {name} | {admitted} ({:.0} %) | {right} ({:.0} % of admitted) | {:.0} % |\n",
                100.0 * admitted as f64 / new.len().max(1) as f64,
                100.0 * right as f64 / admitted.max(1) as f64,
                100.0 * right as f64 / coverable.max(1) as f64,
            ));
        }
        md.push_str(&format!(
            "\n## New files between clusterings\n\nThe first {cut} files clustered ({} topics, {} outliers), \
             the other {} added as new files; {coverable} of them have a label that is some topic's majority \
             label (they can join a right topic). *Right*: the topic's majority label is the file's.\n\n\
             | rule | admitted | right | right / could be right |\n|---|---:|---:|---:|\n",
            groups.len(),
            l.iter().filter(|&&x| x < 0).count(),
            new.len()
        ));
        for r in rows {
            md.push_str(&r);
        }
    }

    // Names of the topics of the largest run, with their majority label.
    let (l, n) = last.expect("a size");
    let sub = &files[..n];
    let groups = cluster::groups(&l);
    let texts: Vec<String> = sub
        .iter()
        .map(|f| ix.file_text(f.ino, 4000).unwrap_or_default())
        .collect();
    let classes: Vec<Vec<String>> = groups
        .iter()
        .map(|g| g.iter().map(|&i| texts[i].clone()).collect())
        .collect();
    let bg: Vec<String> = l
        .iter()
        .enumerate()
        .filter(|(_, &x)| x < 0)
        .map(|(i, _)| texts[i].clone())
        .collect();
    let names = naming::ctfidf(&classes, &bg, 6);
    md.push_str(&format!("\n## Names produced ({n} files)\n\n| folder | files | majority label (share) | members (first 4) | terms |\n|---|---:|---|---|---|\n"));
    for (g, terms) in groups.iter().zip(names) {
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for &i in g {
            *count.entry(labels[&sub[i].path].as_str()).or_default() += 1;
        }
        let (maj, c) = count
            .iter()
            .max_by_key(|x| *x.1)
            .map(|(a, b)| (*a, *b))
            .unwrap();
        let terms: Vec<String> = terms.into_iter().map(|t| t.0).collect();
        let members: Vec<&str> = g
            .iter()
            .take(4)
            .map(|&i| sub[i].path.rsplit('/').next().unwrap())
            .collect();
        md.push_str(&format!(
            "| topics/{} | {} | {maj} ({:.0} %) | {} | {} |\n",
            naming::slug(&terms, 2),
            g.len(),
            100.0 * c as f64 / g.len() as f64,
            members.join(", "),
            terms.join(", ")
        ));
    }
    std::fs::write(&out, md)?;
    eprintln!("wrote {out}");
    Ok(())
}

//! Topics benchmark (issue 17, docs/TOPICS.md): cluster quality of the agent's topic pass
//! against labels, per corpus size, with the names it gives; and the time and memory of
//! clustering at 10k and 100k files (synthetic vectors: this machine has no 100k embedded
//! files, and the model would take days to embed them).
//!
//!   topics-bench --home H --labels L.tsv --out OUT.md     quality (vectors from H's index)
//!   topics-bench --synthetic N                            one timing run, JSON on stdout
//!
//! Baselines measured in the same run: for quality, the same group sizes with the labels
//! shuffled (what chance gives); for time, one pass of the incremental path (every file to
//! its nearest topic) over the same vectors.

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

/// Unit vectors in `k` blobs (384-d), like file vectors of `k` subjects.
fn synthetic(n: usize, k: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut r = Rng(seed);
    let centres: Vec<Vec<f32>> = (0..k).map(|_| (0..384).map(|_| r.f()).collect()).collect();
    (0..n)
        .map(|i| {
            let c = &centres[i % k];
            let v: Vec<f32> = c.iter().map(|x| x + r.f() * 0.35).collect();
            cluster::centroid([v.as_slice()])
        })
        .collect()
}

/// New files between clusterings, for the timing of their admission.
const NEW_FILES: usize = 1000;

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

fn synthetic_run(n: usize) -> Result<()> {
    // The same vectors as `synthetic(n, ..)`, then NEW_FILES more of the same blobs.
    let mut vectors = synthetic(n + NEW_FILES, 50, 7);
    let fresh = vectors.split_off(n);
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
    // Admission of new files between clusterings: the predictor over all clustered files.
    let t = Instant::now();
    let (rl, k) = reference(&labels);
    let refs: Vec<&[f32]> = vectors.iter().map(|v| v.as_slice()).collect();
    let predictor = cluster::Predictor::new(
        &refs,
        &rl,
        k,
        cluster::neighbours(&cluster::Params::default()),
    );
    let admitted = fresh
        .iter()
        .filter(|v| predictor.predict(v).topic.is_some())
        .count();
    let predict_ms = t.elapsed().as_secs_f64() * 1000.0;
    let truth: Vec<usize> = (0..n).map(|i| i % 50).collect();
    let (purity, nmi) = cluster::purity_nmi(&labels, &truth);
    println!(
        "{}",
        serde_json::json!({"n": n, "full_ms": full_ms, "assign_ms": assign_ms, "topics": groups.len(),
            "assigned": assigned, "new_files": NEW_FILES, "predict_ms": predict_ms, "admitted": admitted, "purity": purity, "nmi": nmi,
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
        return synthetic_run(n.parse()?);
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
    md.push_str("| files | topics | outliers | purity | NMI | chance NMI | NMI / chance | ms |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let mut sizes: Vec<usize> = [100, 200, 400]
        .into_iter()
        .filter(|&n| n < files.len())
        .collect();
    sizes.push(files.len());
    let mut last = None;
    for &n in &sizes {
        let sub = &files[..n];
        let vectors: Vec<Vec<f32>> = sub.iter().map(|f| f.vector.clone()).collect();
        let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
        let truth: Vec<usize> = sub
            .iter()
            .map(|f| {
                let k = ids.len();
                *ids.entry(labels[&f.path].as_str()).or_insert(k)
            })
            .collect();
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

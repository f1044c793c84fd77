//! Topics: views the agent builds from what files are about, names and keeps current.
//!
//! A pass ([`run`]) reads every readable file's vector from the index (the mean of its
//! passage vectors, `Indexer::file_vectors`), groups them ([`cluster`]: HDBSCAN, outliers
//! left out, large topics split into sub-topics), names each group from its own text
//! ([`naming`]: class-based TF-IDF) and shows it as a view `@views/<dir>/<name>/`
//! (`[agent] topics_dir`, default `topics`).
//!
//! Membership is a tag (`topic-<id>`) on each member file, and the view's query is that tag,
//! so: every change goes through the journaled `tag` and `create_view` tools of [`Host`]
//! (`peros agent undo --run` removes a pass exactly); a topic's folder and name survive
//! renames of its members and re-clustering; and the user takes a file out with
//! `rm @views/topics/NAME/FILE` (the mount untags it). A topic tag the agent added that the
//! file no longer has is a *negative label*: the file never rejoins that topic.
//!
//! Incremental: between full clusterings, new files join the topic of their nearest
//! clustered neighbours when they are clearly nearer its members than any other topic's or
//! the outliers, and as close to them as the members are to each other
//! ([`cluster::Predictor`]); files the last clustering left out stay out. The whole corpus is
//! clustered again when the files not seen at the last full clustering reach
//! `recluster_fraction` of those seen; a new group that holds most of an existing topic's
//! members *is* that topic (same id, tag, folder and name).
//!
//! State (`PEROS_HOME/agent/topics.json`): each topic's id, tag, view, terms and geometry,
//! the files seen at the last full clustering and the negative labels. The tags and the views
//! are the truth: a topic whose view is gone (undone, or removed by the user) is forgotten,
//! and one the user removed is remembered as dismissed so it is not made again.

pub mod cluster;
pub mod llm_names;
pub mod naming;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::journal::Change;
use crate::tools::Host;

/// Prefix of the tags that carry topic membership.
pub const TAG_PREFIX: &str = "topic-";
/// Text of each file read for naming (the head of a file names it well enough).
const TEXT_BYTES: usize = 4000;
/// Files in no topic whose text weighs in the names' IDF (a sample is enough).
const BACKGROUND_DOCS: usize = 300;
/// Terms kept per topic; the folder name uses the first [`NAME_TERMS`].
const TERMS: usize = 8;
const NAME_TERMS: usize = 2;
/// A new group this similar to a dismissed topic's centroid is that topic again: not made.
const DISMISSED_SIMILARITY: f32 = 0.95;

/// How a pass works.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The folder of `@views` topic views go in.
    pub dir: String,
    pub params: cluster::Params,
    /// Re-cluster when the files unseen at the last full clustering reach this share of
    /// those seen.
    pub recluster_fraction: f32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            dir: "topics".into(),
            params: cluster::Params::default(),
            recluster_fraction: 0.5,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct TopicState {
    pub id: u64,
    pub tag: String,
    pub view: String,
    pub terms: Vec<String>,
    pub geometry: cluster::Topic,
    /// The topic this one is a sub-topic of.
    #[serde(default)]
    pub parent: Option<u64>,
}

#[derive(Serialize, Deserialize, Default, Debug)]
pub struct State {
    pub next_id: u64,
    pub topics: Vec<TopicState>,
    /// Files (inodes) seen at the last full clustering.
    pub seen: BTreeSet<u64>,
    /// Negative labels: tag → files the user took out of that topic.
    pub excluded: BTreeMap<String, BTreeSet<u64>>,
    /// Centroids of topics the user removed.
    pub dismissed: Vec<Vec<f32>>,
}

impl State {
    pub fn path(agent_dir: &Path) -> PathBuf {
        agent_dir.join("topics.json")
    }
    pub fn load(agent_dir: &Path) -> Result<Self> {
        let p = Self::path(agent_dir);
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).with_context(|| {
                format!(
                    "{} is damaged: remove it to start the topics afresh",
                    p.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
        }
    }
    pub fn save(&self, agent_dir: &Path) -> Result<()> {
        let p = Self::path(agent_dir);
        let tmp = p.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(self)?)?;
        std::fs::rename(&tmp, &p)?;
        Ok(())
    }
}

/// One topic as the pass left it.
#[derive(Serialize, Clone, Debug)]
pub struct TopicReport {
    pub id: u64,
    pub view: String,
    pub tag: String,
    pub terms: Vec<String>,
    pub files: usize,
    /// Made in this pass (false: kept from an earlier one).
    pub new: bool,
    /// Files that joined in this pass.
    pub joined: usize,
    /// A few member paths (what an LLM gets as titles).
    pub titles: Vec<String>,
}

#[derive(Serialize, Debug, Default)]
pub struct Report {
    /// "full" (clustered) or "incremental" (new files joined the nearest topic).
    pub mode: String,
    pub files: usize,
    /// Files whose passages are not embedded yet (not grouped in this pass).
    pub pending: usize,
    pub topics: Vec<TopicReport>,
    /// Files in no topic.
    pub outliers: usize,
    /// Negative labels respected (files kept out of a topic the user took them out of).
    pub kept_out: usize,
    /// How new files were judged in an incremental pass (the first
    /// [`ADMISSIONS_REPORTED`]): the topic each joined, or why none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub admissions: Vec<Admission>,
    /// New topics named by the `[llm]` endpoint in this pass (see [`llm_names`]).
    pub llm_named: usize,
    /// The model's calls and their results.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub llm_calls: Vec<serde_json::Value>,
    /// Why the LLM did not name them (the c-TF-IDF names stay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm_error: Option<String>,
    pub millis: u64,
}

/// Admissions listed in a report.
pub const ADMISSIONS_REPORTED: usize = 100;

/// How one new file was judged ([`cluster::Predictor`]).
#[derive(Serialize, Clone, Debug)]
pub struct Admission {
    pub path: String,
    /// The view of the top-level topic it joined, if any.
    pub topic: Option<String>,
    /// The view of the topic it is closest to.
    pub nearest: Option<String>,
    /// Its closeness to that topic (mean similarity to its nearest members), the runner-up's
    /// (another topic or the outliers) and the topic's floor.
    pub score: f32,
    pub rival: f32,
    pub floor: f32,
    /// It would have joined, but the user took it out of that topic.
    pub kept_out: bool,
}

struct File {
    ino: u64,
    path: String,
    vector: Vec<f32>,
    /// Topic tags the file has now (from the store).
    topic_tags: Vec<String>,
}

/// Tags the agent added and still owns, by path, from the journal's active entries.
fn own_tags(host: &Host) -> HashMap<String, HashSet<String>> {
    let mut own: HashMap<String, HashSet<String>> = HashMap::new();
    for e in host.journal.active() {
        if let Change::Tags {
            path,
            before,
            after,
            ..
        } = &e.change
        {
            let b = crate::tools::parse_tags(before.as_deref().unwrap_or("").as_bytes());
            let a = crate::tools::parse_tags(after.as_deref().unwrap_or("").as_bytes());
            let set = own.entry(path.clone()).or_default();
            for t in &a {
                if !b.contains(t) {
                    set.insert(t.clone());
                }
            }
            set.retain(|t| a.contains(t));
        }
    }
    own
}

/// Tags `f` into the topic of `tag` through the journaled tool; whether it took.
fn join(host: &mut Host, f: &mut File, tag: &str, reason: &str) -> bool {
    let ok = host
        .call(
            "tag",
            &json!({"path": f.path, "tag": tag, "reason": reason}),
            reason,
        )
        .is_ok();
    if ok {
        f.topic_tags.push(tag.to_string());
    }
    ok
}

/// One pass: see the module doc. Journals its changes under `host.run`.
pub fn run(
    host: &mut Host,
    agent_dir: &Path,
    s: &Settings,
    namer: Option<&mut crate::planner::Llm>,
) -> Result<Report> {
    let started = std::time::Instant::now();
    peros_views::file::check_view_name(&s.dir)
        .map_err(|e| anyhow::anyhow!("[agent] topics_dir: {e}"))?;
    let Some(ix) = host.indexer.clone() else {
        bail!(
            "topics need the search index ({})",
            host.index_error.as_deref().unwrap_or("not opened")
        );
    };
    let mut state = State::load(agent_dir)?;
    let fv = ix.file_vectors()?;
    let mut files: Vec<File> = Vec::with_capacity(fv.files.len());
    for f in fv.files {
        // What the policy keeps from the agent is neither grouped nor tagged.
        let Some((_, node)) = host.policy.visible_file(&host.store, &f.path) else {
            continue;
        };
        let tags = node
            .xattrs
            .get(peros_indexer::TAGS_XATTR)
            .map(|v| peros_indexer::parse_tags(v))
            .unwrap_or_default();
        files.push(File {
            ino: f.ino,
            path: f.path,
            vector: f.vector,
            topic_tags: tags
                .into_iter()
                .filter(|t| t.starts_with(TAG_PREFIX))
                .collect(),
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));

    // The views are the truth: forget topics whose view is gone or no longer theirs.
    let journal_views = host.journal.own_views();
    let all_views = host.views.list();
    let mut kept = Vec::new();
    for mut t in std::mem::take(&mut state.topics) {
        let query = format!("tag:{}", t.tag);
        match host.views.get(&t.view) {
            Some(d) if d.query == query => kept.push(t),
            Some(_) => {} // the user redefined it: theirs now
            // Renamed (`mv` in @views, or the LLM's rename_view): the topic follows its view.
            None if all_views.iter().any(|d| d.query == query) => {
                let d = all_views.iter().find(|d| d.query == query).expect("found");
                t.view = d.name.clone();
                kept.push(t);
            }
            None => {
                // Removed by the user (not by undo, which also drops the journal's claim).
                if journal_views.contains_key(&t.view) {
                    state.dismissed.push(t.geometry.centroid.clone());
                }
            }
        }
    }
    state.topics = kept;

    // Negative labels: topic tags the agent added that the file lost since.
    let own = own_tags(host);
    for f in &files {
        if let Some(tags) = own.get(&f.path) {
            for t in tags.iter().filter(|t| t.starts_with(TAG_PREFIX)) {
                if !f.topic_tags.iter().any(|x| x.eq_ignore_ascii_case(t)) {
                    state.excluded.entry(t.clone()).or_default().insert(f.ino);
                }
            }
        }
    }
    let excluded = |state: &State, tag: &str, ino: u64| {
        state.excluded.get(tag).is_some_and(|s| s.contains(&ino))
    };

    let unseen = files
        .iter()
        .filter(|f| !state.seen.contains(&f.ino))
        .count();
    let full = state.topics.is_empty()
        || unseen as f32 >= s.recluster_fraction * state.seen.len().max(1) as f32;
    let mut report = Report {
        mode: if full { "full" } else { "incremental" }.into(),
        files: files.len(),
        pending: fv.pending,
        ..Report::default()
    };
    let mut joined: HashMap<u64, usize> = HashMap::new();
    let mut new_topics: HashSet<u64> = HashSet::new();
    let mut kept_out = 0usize;

    if full {
        let vectors: Vec<Vec<f32>> = files.iter().map(|f| f.vector.clone()).collect();
        let labels = cluster::cluster(&vectors, &s.params).map_err(anyhow::Error::msg)?;
        let groups = cluster::groups(&labels);
        // Top-level groups, then sub-groups of the large ones (parent index).
        let mut all: Vec<(Vec<usize>, Option<usize>)> =
            groups.iter().map(|g| (g.clone(), None)).collect();
        for (gi, g) in groups.iter().enumerate() {
            for sub in cluster::split(&vectors, g, &s.params) {
                all.push((sub, Some(gi)));
            }
        }
        let texts: Vec<String> = files
            .iter()
            .map(|f| ix.file_text(f.ino, TEXT_BYTES).unwrap_or_default())
            .collect();
        // Names of the top-level groups against each other (and the outliers); names of
        // sub-groups against their siblings.
        let outliers: Vec<String> = labels
            .iter()
            .enumerate()
            .filter(|(_, &l)| l < 0)
            .take(BACKGROUND_DOCS)
            .map(|(i, _)| texts[i].clone())
            .collect();
        let mut terms: Vec<Vec<String>> = vec![Vec::new(); all.len()];
        let mut families: BTreeMap<Option<usize>, Vec<usize>> = BTreeMap::new();
        for (i, (_, parent)) in all.iter().enumerate() {
            families.entry(*parent).or_default().push(i);
        }
        for (parent, members) in &families {
            let classes: Vec<Vec<String>> = members
                .iter()
                .map(|&i| all[i].0.iter().map(|&j| texts[j].clone()).collect())
                .collect();
            let bg = if parent.is_none() {
                outliers.clone()
            } else {
                Vec::new()
            };
            for (k, names) in naming::ctfidf(&classes, &bg, TERMS).into_iter().enumerate() {
                terms[members[k]] = names.into_iter().map(|(t, _)| t).collect();
            }
        }
        // Match each group to the existing topic holding most of its members.
        let mut ids: Vec<Option<u64>> = vec![None; all.len()];
        let mut taken: HashSet<u64> = HashSet::new();
        for (i, (members, parent)) in all.iter().enumerate() {
            let parent_id = parent.and_then(|p| ids[p]);
            let mut best: Option<(u64, f32)> = None;
            for t in state.topics.iter().filter(|t| !taken.contains(&t.id)) {
                if t.parent != parent_id && parent.is_some() {
                    continue;
                }
                let had: Vec<&File> = files
                    .iter()
                    .filter(|f| f.topic_tags.iter().any(|x| x.eq_ignore_ascii_case(&t.tag)))
                    .collect();
                if had.is_empty() {
                    continue;
                }
                let inside = had
                    .iter()
                    .filter(|f| members.iter().any(|&j| files[j].ino == f.ino))
                    .count();
                let share = inside as f32 / had.len() as f32;
                if share > 0.5 && best.is_none_or(|b| share > b.1) {
                    best = Some((t.id, share));
                }
            }
            if let Some((id, _)) = best {
                taken.insert(id);
                ids[i] = Some(id);
                let geometry = cluster::Topic::of(
                    &members
                        .iter()
                        .map(|&j| files[j].vector.as_slice())
                        .collect::<Vec<_>>(),
                );
                if let Some(t) = state.topics.iter_mut().find(|t| t.id == id) {
                    t.geometry = geometry;
                    t.terms = terms[i].clone();
                }
                continue;
            }
            let geometry = cluster::Topic::of(
                &members
                    .iter()
                    .map(|&j| files[j].vector.as_slice())
                    .collect::<Vec<_>>(),
            );
            if state
                .dismissed
                .iter()
                .any(|c| cluster::dot(c, &geometry.centroid) >= DISMISSED_SIMILARITY)
            {
                continue;
            }
            if parent.is_some() && parent_id.is_none() {
                continue; // its parent was not made
            }
            let parent_view = parent_id
                .and_then(|p| state.topics.iter().find(|t| t.id == p))
                .map(|t| t.view.clone())
                .unwrap_or_else(|| s.dir.clone());
            let id = state.next_id.max(1);
            state.next_id = id + 1;
            let tag = format!("{TAG_PREFIX}{id}");
            let base = format!("{parent_view}/{}", naming::slug(&terms[i], NAME_TERMS));
            let mut view = base.clone();
            let mut n = 2;
            while host.views.get(&view).is_some() {
                view = format!("{base}-{n}");
                n += 1;
            }
            let reason = format!(
                "{} files about {}",
                members.len(),
                terms[i]
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let r = host.call(
                "create_view",
                &json!({"name": view, "query": format!("tag:{tag}"), "reason": reason}),
                &reason,
            );
            if let Err(e) = r {
                tracing::warn!("topic view {view}: {e}");
                continue;
            }
            ids[i] = Some(id);
            new_topics.insert(id);
            state.topics.push(TopicState {
                id,
                tag,
                view,
                terms: terms[i].clone(),
                geometry,
                parent: parent_id,
            });
        }
        // Membership follows the groups: tag new members, untag (agent-added) leavers.
        for (i, (members, _)) in all.iter().enumerate() {
            let Some(id) = ids[i] else { continue };
            let t = state
                .topics
                .iter()
                .find(|t| t.id == id)
                .cloned()
                .expect("topic");
            let inside: HashSet<u64> = members.iter().map(|&j| files[j].ino).collect();
            for f in files.iter_mut() {
                let has = f.topic_tags.iter().any(|x| x.eq_ignore_ascii_case(&t.tag));
                if inside.contains(&f.ino) && !has {
                    if excluded(&state, &t.tag, f.ino) {
                        kept_out += 1;
                        continue;
                    }
                    let reason = format!(
                        "about {}",
                        t.terms
                            .iter()
                            .take(3)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    if join(host, f, &t.tag, &reason) {
                        *joined.entry(id).or_default() += 1;
                    }
                } else if !inside.contains(&f.ino)
                    && has
                    && own.get(&f.path).is_some_and(|o| o.contains(&t.tag))
                {
                    let reason = "no longer close to the topic".to_string();
                    if host
                        .call(
                            "untag",
                            &json!({"path": f.path, "tag": t.tag, "reason": reason}),
                            &reason,
                        )
                        .is_ok()
                    {
                        f.topic_tags.retain(|x| !x.eq_ignore_ascii_case(&t.tag));
                    }
                }
            }
        }
        state.seen = files.iter().map(|f| f.ino).collect();
    } else {
        // New files (unseen at the last full clustering, in no topic) join the topic of their
        // nearest clustered neighbours (cluster::Predictor), top level first, then the
        // sub-topics of the topic joined. The reference files are the rest: each topic's
        // members are the files with its tag now (the tags are the truth: files the user took
        // out are not members, files joined since are), and the files seen at the last full
        // clustering in no topic are its outliers. Those are not judged again until the next
        // full clustering (HDBSCAN left them out, with more to go on than one vote), except
        // the files the user took out of a topic: they are judged (not being their own
        // reference) and may join another topic, never the one they left.
        let k = cluster::neighbours(&s.params);
        let taken_out: HashSet<u64> = state.excluded.values().flatten().copied().collect();
        let has =
            |f: &File, t: &TopicState| f.topic_tags.iter().any(|x| x.eq_ignore_ascii_case(&t.tag));
        let candidates: Vec<usize> = files
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                f.topic_tags.is_empty()
                    && (!state.seen.contains(&f.ino) || taken_out.contains(&f.ino))
            })
            .map(|(i, _)| i)
            .collect();
        let candidate: HashSet<usize> = candidates.iter().copied().collect();
        let mut plans: Vec<(usize, TopicState)> = Vec::new();
        if !candidates.is_empty() {
            // One level: `level` topics, reference files `within` (indices into `files`).
            let predictor = |level: &[&TopicState], within: &[usize]| {
                let labels: Vec<Option<usize>> = within
                    .iter()
                    .map(|&i| level.iter().position(|t| has(&files[i], t)))
                    .collect();
                let vs: Vec<&[f32]> = within.iter().map(|&i| files[i].vector.as_slice()).collect();
                cluster::Predictor::new(&vs, &labels, level.len(), k)
            };
            let reference: Vec<usize> = (0..files.len())
                .filter(|&i| {
                    let f = &files[i];
                    !candidate.contains(&i)
                        && (state.seen.contains(&f.ino)
                            || state.topics.iter().any(|t| t.parent.is_none() && has(f, t)))
                })
                .collect();
            let tops: Vec<&TopicState> =
                state.topics.iter().filter(|t| t.parent.is_none()).collect();
            let top = predictor(&tops, &reference);
            // Sub-topic predictors, built when first needed: parent id → (children, predictor).
            let mut subs: HashMap<u64, (Vec<&TopicState>, cluster::Predictor)> = HashMap::new();
            // All the candidates judged together (in blocks: each reference vector is read
            // once per block of new files, not once per file), then level by level those
            // that joined a topic among its sub-topics, again together.
            let vectors: Vec<&[f32]> = candidates
                .iter()
                .map(|&fi| files[fi].vector.as_slice())
                .collect();
            let mut decisions: Vec<Admission> = Vec::with_capacity(candidates.len());
            let mut chosen: Vec<Option<&TopicState>> = Vec::with_capacity(candidates.len());
            for (&fi, p) in candidates.iter().zip(top.predict_all(&vectors)) {
                let f = &files[fi];
                let decision = Admission {
                    path: f.path.clone(),
                    topic: None,
                    nearest: p.best.map(|b| tops[b].view.clone()),
                    score: p.score,
                    rival: p.rival,
                    floor: p.floor,
                    kept_out: false,
                };
                tracing::info!(
                    "topics: {} nearest {:?} closeness {:.3} rival {:.3} floor {:.3}: {}",
                    f.path,
                    decision.nearest,
                    p.score,
                    p.rival,
                    p.floor,
                    if p.topic.is_some() {
                        "joins"
                    } else {
                        "no topic"
                    }
                );
                decisions.push(decision);
                chosen.push(p.topic.map(|b| tops[b]));
            }
            // The topics each candidate joins, top level first.
            let mut joins: Vec<Vec<&TopicState>> = vec![Vec::new(); candidates.len()];
            loop {
                // Candidates (positions in `candidates`) going on among each topic's sub-topics.
                let mut next: BTreeMap<u64, (&TopicState, Vec<usize>)> = BTreeMap::new();
                for (c, slot) in chosen.iter_mut().enumerate() {
                    let Some(t) = slot.take() else { continue };
                    if excluded(&state, &t.tag, files[candidates[c]].ino) {
                        kept_out += 1;
                        decisions[c].kept_out = true;
                        continue;
                    }
                    if decisions[c].topic.is_none() {
                        decisions[c].topic = Some(t.view.clone());
                    }
                    joins[c].push(t);
                    next.entry(t.id)
                        .or_insert_with(|| (t, Vec::new()))
                        .1
                        .push(c);
                }
                if next.is_empty() {
                    break;
                }
                for (id, (t, cs)) in next {
                    let entry = subs.entry(id).or_insert_with(|| {
                        let children: Vec<&TopicState> = state
                            .topics
                            .iter()
                            .filter(|c| c.parent == Some(t.id))
                            .collect();
                        let members: Vec<usize> = reference
                            .iter()
                            .copied()
                            .filter(|&i| has(&files[i], t))
                            .collect();
                        let pr = predictor(&children, &members);
                        (children, pr)
                    });
                    if entry.0.is_empty() {
                        continue;
                    }
                    let vs: Vec<&[f32]> = cs.iter().map(|&c| vectors[c]).collect();
                    for (&c, p) in cs.iter().zip(entry.1.predict_all(&vs)) {
                        chosen[c] = p.topic.map(|k| entry.0[k]);
                    }
                }
            }
            for (&fi, ts) in candidates.iter().zip(joins) {
                plans.extend(ts.into_iter().map(|t| (fi, t.clone())));
            }
            let room = ADMISSIONS_REPORTED.saturating_sub(report.admissions.len());
            report.admissions.extend(decisions.into_iter().take(room));
        }
        for (fi, t) in plans {
            let f = &mut files[fi];
            let reason = format!("near the files of the topic {}", t.view);
            if join(host, f, &t.tag, &reason) {
                *joined.entry(t.id).or_default() += 1;
            }
        }
    }
    state.save(agent_dir)?;

    if let Some(llm) = namer {
        let fresh: Vec<&TopicState> = state
            .topics
            .iter()
            .filter(|t| new_topics.contains(&t.id))
            .collect();
        if !fresh.is_empty() {
            let listing: Vec<llm_names::Topic> = fresh
                .iter()
                .map(|t| llm_names::Topic {
                    view: t.view.clone(),
                    terms: t.terms.clone(),
                    titles: files
                        .iter()
                        .filter(|f| f.topic_tags.iter().any(|x| x.eq_ignore_ascii_case(&t.tag)))
                        .take(llm_names::TITLES)
                        .map(|f| f.path.clone())
                        .collect(),
                })
                .collect();
            match llm_names::rename(host, llm, &listing) {
                Ok(outcome) => {
                    report.llm_named = outcome.renamed.len();
                    for (from, to) in outcome.renamed {
                        if let Some(t) = state.topics.iter_mut().find(|t| t.view == from) {
                            t.view = to;
                        }
                    }
                    report.llm_calls = outcome.calls;
                }
                Err(e) => {
                    tracing::warn!("topic names from the LLM: {e:#}");
                    report.llm_error = Some(format!("{e:#}"));
                }
            }
            state.save(agent_dir)?;
        }
    }

    for t in &state.topics {
        let members: Vec<&File> = files
            .iter()
            .filter(|f| f.topic_tags.iter().any(|x| x.eq_ignore_ascii_case(&t.tag)))
            .collect();
        report.topics.push(TopicReport {
            id: t.id,
            view: t.view.clone(),
            tag: t.tag.clone(),
            terms: t.terms.clone(),
            files: members.len(),
            new: new_topics.contains(&t.id),
            joined: joined.get(&t.id).copied().unwrap_or(0),
            titles: members.iter().take(5).map(|f| f.path.clone()).collect(),
        });
    }
    report.outliers = files.iter().filter(|f| f.topic_tags.is_empty()).count();
    report.kept_out = kept_out;
    report.millis = started.elapsed().as_millis() as u64;
    Ok(report)
}

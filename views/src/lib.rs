//! `peros-views`: declarative views — directories whose contents are a query.
//!
//! What it owns: `views.toml` (the source of truth: parsed, watched with notify, edited in
//! place by `mkdir`/`rmdir`/`mv` under `@views` and by `peros views`), the evaluation of each
//! view and of `@search/<text>` queries against the indexer, and the resulting listings
//! (readable, disambiguated entry names; relative symlink targets), which it keeps current
//! as the index changes.
//!
//! What it must not do: touch user files (a view only ever lists them), or make the file
//! system wait on the embedding model: listings are evaluated in a background thread; the
//! FUSE side only reads the last result. A search seen for the first time is answered with a
//! quick text-only query and refined (hybrid) in the background.

pub mod file;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Condvar, Mutex, RwLock};
use peros_indexer::{Hit, Indexer, Mode};
use peros_store::querydirs::{Listing, ListingEntry, QueryDirError, QueryDirs};
use peros_store::Store;

pub use file::{FileError, Sort, ViewDef};

/// Results shown under `@search/<text>`.
pub const SEARCH_LIMIT: usize = 200;
/// Searches kept (what `ls @search` lists).
const RECENT_SEARCHES: usize = 32;
/// While the index keeps changing, views are re-evaluated at most this often.
const MIN_REEVALUATION: Duration = Duration::from_millis(500);
/// New embeddings arrive in a steady stream while a backlog is embedded; they only refine
/// the ranking of views with free text, so those are re-evaluated for them at most this often.
const MIN_SEMANTIC_REEVALUATION: Duration = Duration::from_secs(10);
/// Views with relative dates (`modified:>7d`) are re-evaluated at least this often.
const RELATIVE_REEVALUATION: Duration = Duration::from_secs(60);
/// The background thread's tick (also how often views.toml's mtime is checked, in case a
/// notify event was missed, e.g. on a network file system).
const TICK: Duration = Duration::from_millis(250);

struct Search {
    text: String,
    listing: Arc<Listing>,
    generation: u64,
    refined: bool,
    /// When the search hook last heard of this search.
    noted: std::time::Instant,
}

/// File managers look a name up many times in a row; a search is reported to the hook again
/// only after this long (the agent counts searches the user repeats, not lookups).
const SEARCH_RENOTE: Duration = Duration::from_secs(600);
/// Lookups of cached searches this soon after `@search` was listed are not searches.
const LISTING_PROBES: Duration = Duration::from_secs(5);

/// Told of each search made under `@search` (the daemon passes them to the agent's access
/// log). Called from a FUSE callback: it must return at once.
pub type SearchHook = Box<dyn Fn(&str) + Send + Sync>;

#[derive(Default)]
struct State {
    defs: BTreeMap<String, ViewDef>,
    listings: HashMap<String, Arc<Listing>>,
    searches: VecDeque<Search>,
    /// Vector generation of the last evaluation of the views with free text.
    evaluated_vectors: u64,
    error: Option<FileError>,
    views_changed: Option<SystemTime>,
    /// Text of views.toml as last loaded (skip reloads of an unchanged file).
    loaded_text: Option<String>,
    evaluated_generation: u64,
}

/// The views service of one store (one per daemon).
pub struct Views {
    file: PathBuf,
    indexer: Arc<Indexer>,
    store: Arc<Store>,
    state: RwLock<State>,
    /// Serialises edits of views.toml (read-modify-write).
    edit: Mutex<()>,
    wake: Mutex<Wake>,
    wake_cv: Condvar,
    stop: AtomicBool,
    watcher: Mutex<Option<notify::RecommendedWatcher>>,
    search_hook: RwLock<Option<SearchHook>>,
    /// When `@search` was last listed (see [`LISTING_PROBES`]).
    searches_listed: Mutex<Option<std::time::Instant>>,
}

#[derive(Default)]
struct Wake {
    file_changed: bool,
    defs_changed: bool,
    search_pending: bool,
}

/// The status line material for `peros status`.
#[derive(serde::Serialize, Debug, Clone)]
pub struct ViewsStatus {
    pub file: String,
    pub views: usize,
    pub error: Option<FileError>,
    pub searches_cached: usize,
}

impl Views {
    fn note_search(&self, text: &str) {
        if let Some(hook) = self.search_hook.read().as_ref() {
            hook(text);
        }
    }

    /// Installs the hook told of `@search` queries (see [`SearchHook`]).
    pub fn set_search_hook(&self, hook: SearchHook) {
        *self.search_hook.write() = Some(hook);
    }

    /// Loads `file` (absent = no views) and evaluates every view once with text ranking, so
    /// the mount shows contents at once. Call [`Views::start`] for live updates.
    pub fn open(file: PathBuf, indexer: Arc<Indexer>, store: Arc<Store>) -> Arc<Self> {
        let me = Arc::new(Self {
            file,
            indexer,
            store,
            state: RwLock::new(State::default()),
            edit: Mutex::new(()),
            wake: Mutex::new(Wake::default()),
            wake_cv: Condvar::new(),
            stop: AtomicBool::new(false),
            watcher: Mutex::new(None),
            search_hook: RwLock::new(None),
            searches_listed: Mutex::new(None),
        });
        me.reload();
        me.evaluate_views(Mode::Text, false);
        me
    }

    /// Starts watching views.toml and the index; listings follow both.
    pub fn start(self: &Arc<Self>) {
        if let Some(dir) = self.file.parent() {
            let weak = Arc::downgrade(self);
            let name = self.file.file_name().map(|n| n.to_os_string());
            let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                let Ok(ev) = res else { return };
                if ev.kind.is_access() {
                    return;
                }
                if ev.paths.iter().any(|p| p.file_name() == name.as_deref()) {
                    if let Some(me) = weak.upgrade() {
                        me.wake.lock().file_changed = true;
                        me.wake_cv.notify_all();
                    }
                }
            });
            match watcher {
                Ok(mut w) => {
                    use notify::Watcher;
                    if let Err(e) = w.watch(dir, notify::RecursiveMode::NonRecursive) {
                        tracing::warn!("cannot watch {}: {e}; polling it instead", dir.display());
                    }
                    *self.watcher.lock() = Some(w);
                }
                Err(e) => tracing::warn!("cannot watch views.toml: {e}; polling it instead"),
            }
        }
        let me = self.clone();
        std::thread::Builder::new()
            .name("views".into())
            .spawn(move || me.run())
            .expect("spawn views thread");
    }

    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake_cv.notify_all();
        self.watcher.lock().take();
    }

    fn run(self: Arc<Self>) {
        let mut last_eval = Instant::now() - MIN_REEVALUATION;
        let mut last_semantic = Instant::now();
        let mut last_mtime = file_mtime(&self.file);
        loop {
            let wake = {
                let mut w = self.wake.lock();
                if !w.file_changed && !w.defs_changed && !w.search_pending {
                    self.wake_cv.wait_for(&mut w, TICK);
                }
                std::mem::take(&mut *w)
            };
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            let mtime = file_mtime(&self.file);
            if wake.file_changed || mtime != last_mtime {
                last_mtime = mtime;
                self.reload();
            }
            let generation = self.indexer.generation();
            let vectors = self.indexer.vector_generation();
            let (stale, semantic_stale) = {
                let st = self.state.read();
                (
                    generation != st.evaluated_generation,
                    vectors != st.evaluated_vectors,
                )
            };
            let defs_changed = wake.defs_changed || self.take_defs_dirty();
            if defs_changed || (stale && last_eval.elapsed() >= MIN_REEVALUATION) {
                {
                    let mut st = self.state.write();
                    st.evaluated_generation = generation;
                    st.evaluated_vectors = vectors;
                }
                self.evaluate_views(Mode::Hybrid, false);
                last_eval = Instant::now();
                last_semantic = last_eval;
            } else if semantic_stale && last_semantic.elapsed() >= MIN_SEMANTIC_REEVALUATION {
                self.state.write().evaluated_vectors = vectors;
                self.evaluate_views(Mode::Hybrid, true);
                last_semantic = Instant::now();
            } else if last_eval.elapsed() >= RELATIVE_REEVALUATION && self.has_relative_dates() {
                // `modified:>7d`: files age out of such views with no change to any file.
                self.evaluate_views(Mode::Hybrid, false);
                last_eval = Instant::now();
            }
            self.refine_searches(generation ^ (vectors << 32));
        }
    }

    fn has_relative_dates(&self) -> bool {
        self.state
            .read()
            .defs
            .values()
            .any(|d| peros_indexer::query::is_time_relative(&d.query))
    }

    /// Views loaded but not yet evaluated with the full ranking.
    fn take_defs_dirty(&self) -> bool {
        let st = self.state.read();
        st.defs.keys().any(|n| !st.listings.contains_key(n))
    }

    /// Re-reads views.toml. A broken file keeps the views as they were; the error (with line
    /// and column) is kept for `peros status` and logged.
    pub fn reload(&self) {
        let text = match std::fs::read_to_string(&self.file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                let err = FileError {
                    file: self.file.display().to_string(),
                    line: 0,
                    column: 0,
                    message: format!("cannot read: {e}"),
                };
                tracing::error!("views: {err}; keeping the previous views");
                self.state.write().error = Some(err);
                return;
            }
        };
        if self.state.read().loaded_text.as_deref() == Some(text.as_str()) {
            return;
        }
        match file::parse(&text, &self.file.display().to_string()) {
            Ok(defs) => {
                let mut st = self.state.write();
                if st.error.take().is_some() {
                    tracing::info!("views: {} is valid again", self.file.display());
                }
                if st.defs != defs {
                    st.listings.retain(|n, _| defs.contains_key(n));
                    // A changed definition is re-evaluated; listings of unchanged ones stay.
                    let changed: Vec<String> = defs
                        .iter()
                        .filter(|(n, d)| st.defs.get(*n) != Some(*d))
                        .map(|(n, _)| n.clone())
                        .collect();
                    for n in changed {
                        st.listings.remove(&n);
                    }
                    st.defs = defs;
                    st.views_changed = Some(SystemTime::now());
                    tracing::info!(
                        "views: {} views from {}",
                        st.defs.len(),
                        self.file.display()
                    );
                }
                st.loaded_text = Some(text);
                drop(st);
                self.wake.lock().defs_changed = true;
                self.wake_cv.notify_all();
            }
            Err(e) => {
                tracing::error!("views: {e}; keeping the previous views");
                let mut st = self.state.write();
                st.error = Some(e);
                st.loaded_text = Some(text);
            }
        }
    }

    /// Evaluates every view (`only_free_text`: only those whose query has free text, the
    /// ones new embeddings can change).
    fn evaluate_views(&self, mode: Mode, only_free_text: bool) {
        let defs: Vec<ViewDef> = self.state.read().defs.values().cloned().collect();
        for def in defs {
            if only_free_text && !has_free_text(&def.query) {
                continue;
            }
            let listing = match evaluate(&self.indexer, &self.store, &def, mode) {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!("view {:?}: {e}", def.name);
                    Listing::new(def.query.clone(), "error".into(), Some(e), Vec::new())
                }
            };
            let mut st = self.state.write();
            if st.defs.get(&def.name) != Some(&def) {
                continue; // redefined meanwhile: the next round evaluates the new one
            }
            install(&mut st.listings, &def.name, listing);
        }
    }

    fn refine_searches(&self, generation: u64) {
        let todo: Vec<String> = self
            .state
            .read()
            .searches
            .iter()
            .filter(|s| !s.refined || s.generation != generation)
            .map(|s| s.text.clone())
            .collect();
        for text in todo {
            let def = search_def(&text);
            let Ok(listing) = evaluate(&self.indexer, &self.store, &def, Mode::Hybrid) else {
                continue;
            };
            let mut st = self.state.write();
            if let Some(s) = st.searches.iter_mut().find(|s| s.text == text) {
                let mut listing = listing;
                if listing.same_entries(&s.listing) {
                    listing.changed = s.listing.changed;
                }
                s.listing = Arc::new(listing);
                s.generation = generation;
                s.refined = true;
            }
        }
    }

    /// The declared views.
    pub fn list(&self) -> Vec<ViewDef> {
        self.state.read().defs.values().cloned().collect()
    }

    /// A view's definition and current listing.
    pub fn show(&self, name: &str) -> Option<(ViewDef, Arc<Listing>)> {
        let st = self.state.read();
        let def = st.defs.get(name)?.clone();
        let listing = st.listings.get(name).cloned().unwrap_or_default();
        Some((def, listing))
    }

    pub fn status(&self) -> ViewsStatus {
        let st = self.state.read();
        ViewsStatus {
            file: self.file.display().to_string(),
            views: st.defs.len(),
            error: st.error.clone(),
            searches_cached: st.searches.len(),
        }
    }

    /// Adds a view (or replaces it when `replace`), writes views.toml and evaluates the view
    /// with text ranking at once (the background thread refines it).
    pub fn add(&self, def: ViewDef, replace: bool) -> Result<(), QueryDirError> {
        validate(&def)?;
        {
            let _edit = self.edit.lock();
            if !replace && self.state.read().defs.contains_key(&def.name) {
                return Err(QueryDirError::Exists(def.name.clone()));
            }
            edit_file(&self.file, |text| file::with_view(text, &def).map(Some))?;
            self.reload();
        }
        if let Ok(l) = evaluate(&self.indexer, &self.store, &def, Mode::Text) {
            let mut st = self.state.write();
            if st.defs.get(&def.name) == Some(&def) {
                install(&mut st.listings, &def.name, l);
            }
        }
        self.wake.lock().defs_changed = true;
        self.wake_cv.notify_all();
        Ok(())
    }

    pub fn remove(&self, name: &str) -> Result<(), QueryDirError> {
        let _edit = self.edit.lock();
        if !self.state.read().defs.contains_key(name) {
            return Err(QueryDirError::NotFound(name.to_string()));
        }
        edit_file(&self.file, |text| file::without_view(text, name))?;
        self.reload();
        Ok(())
    }

    pub fn rename(&self, from: &str, to: &str) -> Result<(), QueryDirError> {
        file::check_view_name(to).map_err(QueryDirError::Invalid)?;
        let _edit = self.edit.lock();
        let Some(mut def) = self.state.read().defs.get(from).cloned() else {
            return Err(QueryDirError::NotFound(from.to_string()));
        };
        if from == to {
            return Ok(());
        }
        if self.state.read().defs.contains_key(to) {
            return Err(QueryDirError::Exists(to.to_string()));
        }
        def.name = to.to_string();
        edit_file(&self.file, |text| {
            let without = file::without_view(text, from)?.unwrap_or_else(|| text.to_string());
            file::with_view(&without, &def).map(Some)
        })?;
        // The listing moves with the name (same query).
        let moved = self.state.write().listings.remove(from);
        self.reload();
        if let Some(l) = moved {
            self.state.write().listings.insert(to.to_string(), l);
        }
        Ok(())
    }
}

impl QueryDirs for Views {
    fn view_names(&self) -> Vec<String> {
        self.state.read().defs.keys().cloned().collect()
    }

    fn view(&self, name: &str) -> Option<Arc<Listing>> {
        let st = self.state.read();
        st.defs.get(name)?;
        Some(st.listings.get(name).cloned().unwrap_or_else(|| {
            Arc::new(Listing {
                changed: st.views_changed,
                ..Listing::default()
            })
        }))
    }

    fn search(&self, text: &str) -> Result<Arc<Listing>, QueryDirError> {
        {
            let mut st = self.state.write();
            if let Some(i) = st.searches.iter().position(|s| s.text == text) {
                let mut s = st.searches.remove(i).expect("position is valid");
                let listing = s.listing.clone();
                // Lookups right after `ls @search` are a file manager stat-ing the listing,
                // not the user searching again.
                let probing = self
                    .searches_listed
                    .lock()
                    .is_some_and(|t| t.elapsed() < LISTING_PROBES);
                let renote = s.noted.elapsed() >= SEARCH_RENOTE && !probing;
                if renote {
                    s.noted = std::time::Instant::now();
                }
                let g = self.indexer.generation() ^ (self.indexer.vector_generation() << 32);
                let stale = !s.refined || s.generation != g;
                st.searches.push_front(s);
                drop(st);
                // The hook runs outside the state lock: lookups of other names never wait on it.
                if renote {
                    self.note_search(text);
                }
                if stale {
                    self.wake.lock().search_pending = true;
                    self.wake_cv.notify_all();
                }
                return Ok(listing);
            }
        }
        let def = search_def(text);
        peros_indexer::parse_query(text).map_err(|e| QueryDirError::Invalid(e.to_string()))?;
        let generation = self.indexer.generation() ^ (self.indexer.vector_generation() << 32);
        let listing = Arc::new(
            evaluate(&self.indexer, &self.store, &def, Mode::Text)
                .map_err(QueryDirError::Invalid)?,
        );
        let mut st = self.state.write();
        if let Some(s) = st.searches.iter().find(|s| s.text == text) {
            return Ok(s.listing.clone()); // a concurrent lookup got there first
        }
        st.searches.push_front(Search {
            text: text.to_string(),
            listing: listing.clone(),
            generation,
            refined: false,
            noted: std::time::Instant::now(),
        });
        st.searches.truncate(RECENT_SEARCHES);
        drop(st);
        self.note_search(text);
        self.wake.lock().search_pending = true;
        self.wake_cv.notify_all();
        Ok(listing)
    }

    fn recent_searches(&self) -> Vec<String> {
        *self.searches_listed.lock() = Some(std::time::Instant::now());
        self.state
            .read()
            .searches
            .iter()
            .map(|s| s.text.clone())
            .filter(|t| file::check_name(t).is_ok())
            .collect()
    }

    fn create_view(&self, name: &str) -> Result<(), QueryDirError> {
        self.add(ViewDef::new(name, name), false)
    }

    fn remove_view(&self, name: &str) -> Result<(), QueryDirError> {
        self.remove(name)
    }

    fn rename_view(&self, from: &str, to: &str) -> Result<(), QueryDirError> {
        self.rename(from, to)
    }

    fn views_changed(&self) -> SystemTime {
        self.state
            .read()
            .views_changed
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }

    fn remove_entry(&self, view: &str, name: &[u8]) -> Result<(), QueryDirError> {
        let (def, listing) = {
            let st = self.state.read();
            let def = st
                .defs
                .get(view)
                .cloned()
                .ok_or_else(|| QueryDirError::NotFound(view.to_string()))?;
            (def, st.listings.get(view).cloned())
        };
        let Some(tag) = single_tag(&def.query) else {
            return Err(QueryDirError::ReadOnly(format!(
                "view {view:?} lists the results of {:?}: change its query to leave a file out \
                 (only a view of one tag, `tag:NAME`, takes files out by untagging them)",
                def.query
            )));
        };
        let entry = listing
            .as_ref()
            .and_then(|l| l.get(name).cloned())
            .ok_or_else(|| QueryDirError::NotFound(String::from_utf8_lossy(name).into_owned()))?;
        // The file loses the tag (other tags stay); the file itself is not touched.
        let node = self
            .store
            .getattr(entry.ino)
            .map_err(|e| QueryDirError::Config(e.to_string()))?;
        let mut tags = node
            .xattrs
            .get(peros_indexer::TAGS_XATTR)
            .map(|v| peros_indexer::parse_tags(v))
            .unwrap_or_default();
        tags.retain(|t| !t.eq_ignore_ascii_case(&tag));
        let res = if tags.is_empty() {
            match self
                .store
                .remove_xattr(entry.ino, peros_indexer::TAGS_XATTR)
            {
                Err(peros_store::StoreError::NoAttr(_)) => Ok(()),
                r => r,
            }
        } else {
            self.store.set_xattr(
                entry.ino,
                peros_indexer::TAGS_XATTR,
                tags.join(",").as_bytes(),
                false,
                false,
            )
        };
        res.map_err(|e| QueryDirError::Config(e.to_string()))?;
        // Shown at once; the next evaluation (once the index has the new tags) agrees.
        if let Some(l) = listing {
            let entries: Vec<ListingEntry> = l
                .entries
                .iter()
                .filter(|e| e.name != name)
                .cloned()
                .collect();
            let next = Listing::new(l.query.clone(), l.mode.clone(), l.note.clone(), entries);
            self.state
                .write()
                .listings
                .insert(view.to_string(), Arc::new(next));
        }
        Ok(())
    }
}

/// The tag of a query that is exactly one `tag:NAME` filter.
fn single_tag(query: &str) -> Option<String> {
    use peros_indexer::query::{Expr, Filter};
    let q = peros_indexer::parse_query(query).ok()?;
    if !q.text.trim().is_empty() {
        return None;
    }
    match q.filter? {
        Expr::Filter(Filter::Tag(t)) => Some(t),
        _ => None,
    }
}

fn has_free_text(query: &str) -> bool {
    peros_indexer::parse_query(query).is_ok_and(|q| !q.text.trim().is_empty())
}

fn search_def(text: &str) -> ViewDef {
    let mut d = ViewDef::new(text, text);
    d.limit = SEARCH_LIMIT;
    d
}

/// Puts a new listing in place, keeping the old change time when nothing changed (so the
/// directory's mtime means "contents changed").
fn install(listings: &mut HashMap<String, Arc<Listing>>, name: &str, mut listing: Listing) {
    if let Some(old) = listings.get(name) {
        if old.same_entries(&listing) {
            listing.changed = old.changed;
        }
    }
    listings.insert(name.to_string(), Arc::new(listing));
}

fn file_mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Read-modify-write of views.toml: refuses to edit a file that does not parse (the user's
/// text must not be lost), keeps the previous version as `views.toml.bak`, and replaces the
/// file atomically.
fn edit_file(
    path: &Path,
    edit: impl FnOnce(&str) -> Result<Option<String>, String>,
) -> Result<(), QueryDirError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(QueryDirError::Config(format!(
                "cannot read {}: {e}",
                path.display()
            )))
        }
    };
    if let Err(e) = file::parse(&text, &path.display().to_string()) {
        return Err(QueryDirError::Config(format!(
            "{e}; fix views.toml before changing views"
        )));
    }
    let Some(new_text) = edit(&text).map_err(QueryDirError::Config)? else {
        return Ok(());
    };
    let io =
        |e: std::io::Error| QueryDirError::Config(format!("cannot write {}: {e}", path.display()));
    if !text.is_empty() {
        std::fs::write(path.with_extension("toml.bak"), &text).map_err(io)?;
    }
    let tmp = path.with_extension("toml.tmp");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(new_text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

/// A view's name must be a usable directory name and its query must parse.
fn validate(def: &ViewDef) -> Result<(), QueryDirError> {
    file::check_view_name(&def.name).map_err(QueryDirError::Invalid)?;
    peros_indexer::parse_query(&def.query)
        .map(|_| ())
        .map_err(|e| QueryDirError::Invalid(format!("view {:?}: {}", def.name, e.reason)))
}

/// Adds a view to views.toml without a running service (the CLI without a daemon).
pub fn add_to_file(path: &Path, def: &ViewDef, replace: bool) -> Result<(), QueryDirError> {
    validate(def)?;
    let defs = load_file(path)?;
    if !replace && defs.contains_key(&def.name) {
        return Err(QueryDirError::Exists(def.name.clone()));
    }
    edit_file(path, |text| file::with_view(text, def).map(Some))
}

pub fn remove_from_file(path: &Path, name: &str) -> Result<(), QueryDirError> {
    if !load_file(path)?.contains_key(name) {
        return Err(QueryDirError::NotFound(name.to_string()));
    }
    edit_file(path, |text| file::without_view(text, name))
}

/// The views declared in `path` (absent = none).
pub fn load_file(path: &Path) -> Result<BTreeMap<String, ViewDef>, QueryDirError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => {
            return Err(QueryDirError::Config(format!(
                "cannot read {}: {e}",
                path.display()
            )))
        }
    };
    file::parse(&text, &path.display().to_string())
        .map_err(|e| QueryDirError::Config(e.to_string()))
}

/// Evaluates one view: runs its query, keeps the files that match (its filters, and the
/// calibrated relevance rule of `peros_indexer::relevance`, the one `@search`, `peros views
/// show`, `peros ask` and the agent all use: a keyword member or a semantic member relative to
/// the query's own best match; with `min_similarity` set, a fixed cosine similarity replaces
/// the semantic part), sorts, limits, and names the entries.
pub fn evaluate(
    indexer: &Indexer,
    store: &Store,
    def: &ViewDef,
    mode: Mode,
) -> Result<Listing, String> {
    let query = peros_indexer::parse_query(&def.query).map_err(|e| e.to_string())?;
    let filter_only = query.text.trim().is_empty();
    let fetch = if def.sort == Sort::Score {
        def.limit
    } else {
        file::MAX_LIMIT
    };
    let outcome = indexer
        .search(&def.query, mode, fetch)
        .map_err(|e| e.to_string())?;
    let mut hits: Vec<Hit> = outcome
        .hits
        .into_iter()
        .filter(|h| match def.min_similarity {
            Some(m) => h.keyword || h.similarity >= m,
            None => h.relevant,
        })
        .collect();
    match def.sort {
        Sort::Score => {}
        Sort::Modified => hits.sort_by(|a, b| b.mtime.cmp(&a.mtime).then(a.path.cmp(&b.path))),
        Sort::Size => hits.sort_by(|a, b| b.size.cmp(&a.size).then(a.path.cmp(&b.path))),
        Sort::Name => {
            hits.sort_by(|a, b| basename(a.path.as_bytes()).cmp(basename(b.path.as_bytes())))
        }
    }
    hits.truncate(def.limit);
    // Paths as bytes from the store: the index keeps them lossily as UTF-8.
    let mut files: Vec<(Vec<u8>, Hit)> = Vec::with_capacity(hits.len());
    for h in hits {
        if let Ok(p) = store.path_of(h.ino) {
            files.push((p, h));
        }
    }
    let names = entry_names(&files.iter().map(|(p, _)| p.as_slice()).collect::<Vec<_>>());
    let entries = files
        .into_iter()
        .zip(names)
        .map(|((path, h), name)| {
            // `../..` out of `@views/NAME`, one more `..` per folder a nested name adds.
            let mut target = b"../..".to_vec();
            for _ in 0..def.name.matches('/').count() {
                target.extend_from_slice(b"/..");
            }
            if !path.starts_with(b"/") {
                target.push(b'/');
            }
            target.extend_from_slice(&path);
            ListingEntry {
                name,
                target,
                ino: h.ino,
                score: h.score,
                mtime: h.mtime,
                size: h.size,
            }
        })
        .collect();
    let mode_name = if filter_only {
        "filter"
    } else if mode == Mode::Text {
        "text"
    } else {
        "hybrid"
    };
    Ok(Listing::new(
        def.query.clone(),
        mode_name.to_string(),
        outcome.note,
        entries,
    ))
}

fn basename(path: &[u8]) -> &[u8] {
    path.rsplit(|b| *b == b'/').next().unwrap_or(path)
}

/// Readable, unique names: a file's own name, and for names shared by several files, the
/// name with as many parent directories as it takes to tell them apart, e.g.
/// `report (2023).pdf` and `report (2024).pdf`; `#<n>` as the last resort.
pub fn entry_names(paths: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut groups: HashMap<&[u8], Vec<usize>> = HashMap::new();
    for (i, p) in paths.iter().enumerate() {
        groups.entry(basename(p)).or_default().push(i);
    }
    let mut names: Vec<Vec<u8>> = paths.iter().map(|p| basename(p).to_vec()).collect();
    for (base, idx) in groups {
        if idx.len() < 2 {
            continue;
        }
        let dirs: Vec<Vec<&[u8]>> = idx
            .iter()
            .map(|&i| {
                let p = paths[i];
                let parent = &p[..p.len() - base.len()];
                parent
                    .split(|b| *b == b'/')
                    .filter(|c| !c.is_empty())
                    .collect()
            })
            .collect();
        let deepest = dirs.iter().map(|d| d.len()).max().unwrap_or(0);
        let mut chosen: Option<Vec<Vec<u8>>> = None;
        for depth in 1..=deepest.max(1) {
            let labels: Vec<Vec<u8>> = dirs
                .iter()
                .map(|d| d[d.len().saturating_sub(depth)..].join(&b'-'))
                .collect();
            let mut seen = std::collections::HashSet::new();
            if labels.iter().all(|l| seen.insert(l.clone())) {
                chosen = Some(labels);
                break;
            }
        }
        let (stem, ext) = split_ext(base);
        for (k, &i) in idx.iter().enumerate() {
            let label = match &chosen {
                Some(labels) if !labels[k].is_empty() => labels[k].clone(),
                Some(_) => b"top".to_vec(),
                None => format!("#{}", k + 1).into_bytes(),
            };
            let mut n = stem.to_vec();
            n.extend_from_slice(b" (");
            n.extend_from_slice(&label);
            n.push(b')');
            n.extend_from_slice(ext);
            if n.len() > 255 {
                // Keep the label and extension; shorten the stem.
                let excess = n.len() - 255;
                let keep = stem.len().saturating_sub(excess);
                let mut m = stem[..keep].to_vec();
                m.extend_from_slice(&n[stem.len()..]);
                n = m;
            }
            names[i] = n;
        }
    }
    // A disambiguated name could equal another file's own name: number the later ones.
    let mut used = std::collections::HashSet::new();
    for n in names.iter_mut() {
        if !used.insert(n.clone()) {
            let mut k = 2;
            loop {
                let (stem, ext) = split_ext(n);
                let mut c = stem.to_vec();
                c.extend_from_slice(format!(" #{k}").as_bytes());
                c.extend_from_slice(ext);
                if used.insert(c.clone()) {
                    *n = c;
                    break;
                }
                k += 1;
            }
        }
    }
    names
}

/// `report.tar.gz` → (`report.tar`, `.gz`); dot files and names without a dot have no
/// extension.
fn split_ext(name: &[u8]) -> (&[u8], &[u8]) {
    match name.iter().rposition(|b| *b == b'.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(paths: &[&str]) -> Vec<String> {
        let p: Vec<&[u8]> = paths.iter().map(|s| s.as_bytes()).collect();
        entry_names(&p)
            .into_iter()
            .map(|n| String::from_utf8(n).unwrap())
            .collect()
    }

    #[test]
    fn unique_names_stay_plain() {
        assert_eq!(names(&["/a/x.pdf", "/b/y.pdf"]), ["x.pdf", "y.pdf"]);
    }

    #[test]
    fn shared_names_get_their_folder() {
        assert_eq!(
            names(&["/2023/report.pdf", "/2024/report.pdf", "/z.txt"]),
            ["report (2023).pdf", "report (2024).pdf", "z.txt"]
        );
        assert_eq!(
            names(&["/a/x/notes", "/b/x/notes"]),
            ["notes (a-x)", "notes (b-x)"]
        );
        assert_eq!(names(&["/r.md", "/d/r.md"]), ["r (top).md", "r (d).md"]);
        // A disambiguated name that collides with a real one.
        let n = names(&["/a/r.md", "/b/r.md", "/r (a).md"]);
        let set: std::collections::HashSet<_> = n.iter().collect();
        assert_eq!(set.len(), 3, "{n:?}");
    }
}

//! Copying trees between the local file system and the store (`import`, `export`).

use std::ffi::{CString, OsStr};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use peros_store::{Ino, Kind, SetAttr, Store, StoreError, Time, ROOT_INO};
use serde::Serialize;

#[derive(Serialize, Default, Debug)]
pub struct TransferReport {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    pub skipped: Vec<String>,
    pub seconds: f64,
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

pub fn bytes_bar(total: u64, verb: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{verb} {{bar:30}} {{bytes}}/{{total_bytes}} {{bytes_per_sec}} eta {{eta}} {{wide_msg}}"
        ))
        .expect("valid template"),
    );
    bar
}

fn local_total(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        fs::read_dir(path)
            .map(|rd| rd.flatten().map(|e| local_total(&e.path())).sum())
            .unwrap_or(0)
    } else if meta.is_file() {
        meta.len()
    } else {
        0
    }
}

/// Makes sure every directory of `path` exists in the store; returns the last one's inode.
pub fn ensure_dirs(store: &Store, comps: &[&[u8]]) -> Result<Ino> {
    let mut parent = ROOT_INO;
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    for c in comps {
        parent = match store.lookup(parent, c) {
            Ok((ino, node)) if node.kind == Kind::Dir => ino,
            Ok(_) => bail!(
                "{} exists in the store and is not a directory",
                String::from_utf8_lossy(c)
            ),
            Err(StoreError::NotFound(_)) => {
                store
                    .create(parent, c, Kind::Dir, 0o755, uid, gid, 0, &[])?
                    .0
            }
            Err(e) => return Err(e.into()),
        };
    }
    Ok(parent)
}

struct Importer<'a> {
    store: &'a Store,
    bar: ProgressBar,
    report: TransferReport,
    since_sync: u64,
}

impl Importer<'_> {
    fn maybe_sync(&mut self, force: bool) -> Result<()> {
        // Commits are made non-durable per file and made durable in batches: one object-store
        // sync and one metadata fsync per batch instead of per file.
        if force || self.since_sync >= 256 {
            self.store.sync()?;
            self.since_sync = 0;
        }
        Ok(())
    }

    fn attrs_of(meta: &fs::Metadata) -> SetAttr {
        SetAttr {
            perm: Some((meta.mode() & 0o7777) as u16),
            uid: is_root().then_some(meta.uid()),
            gid: is_root().then_some(meta.gid()),
            mtime: Some(Time {
                secs: meta.mtime(),
                nanos: meta.mtime_nsec() as u32,
            }),
            atime: Some(Time {
                secs: meta.atime(),
                nanos: meta.atime_nsec() as u32,
            }),
            ..Default::default()
        }
    }

    fn import(&mut self, src: &Path, parent: Ino, name: &[u8]) -> Result<()> {
        let meta =
            fs::symlink_metadata(src).with_context(|| format!("reading {}", src.display()))?;
        let (uid, gid) = (meta.uid(), meta.gid());
        let ft = meta.file_type();
        let existing = match self.store.lookup(parent, name) {
            Ok(found) => Some(found),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        if ft.is_dir() {
            let ino = match existing {
                Some((ino, node)) if node.kind == Kind::Dir => ino,
                Some(_) => {
                    self.store.unlink(parent, name)?;
                    self.store
                        .create(parent, name, Kind::Dir, 0o700, uid, gid, 0, &[])?
                        .0
                }
                None => {
                    self.store
                        .create(parent, name, Kind::Dir, 0o700, uid, gid, 0, &[])?
                        .0
                }
            };
            self.report.dirs += 1;
            let mut entries: Vec<_> = fs::read_dir(src)
                .with_context(|| format!("listing {}", src.display()))?
                .collect::<std::io::Result<_>>()?;
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                self.import(&e.path(), ino, e.file_name().as_bytes())?;
            }
            // Attributes last, so that adding children does not bump the copied mtime.
            self.store.setattr(ino, &Self::attrs_of(&meta))?;
            return Ok(());
        }
        if let Some((_, node)) = &existing {
            // A file over a file keeps its inode (and history); anything else is replaced.
            if !(ft.is_file() && node.kind == Kind::File) {
                if node.kind == Kind::Dir {
                    self.store.remove_tree(parent, name)?;
                } else {
                    self.store.unlink(parent, name)?;
                }
            }
        }
        let existing_file = existing.filter(|(_, n)| n.kind == Kind::File && ft.is_file());
        if ft.is_file() {
            let ino = match existing_file {
                Some((ino, _)) => ino,
                None => {
                    self.store
                        .create(
                            parent,
                            name,
                            Kind::File,
                            (meta.mode() & 0o7777) as u16,
                            uid,
                            gid,
                            0,
                            &[],
                        )?
                        .0
                }
            };
            let mut file =
                fs::File::open(src).with_context(|| format!("opening {}", src.display()))?;
            let mtime = Time {
                secs: meta.mtime(),
                nanos: meta.mtime_nsec() as u32,
            };
            self.bar.set_message(src.display().to_string());
            self.store
                .write_content(ino, &mut file, Some(mtime), false)
                .with_context(|| format!("importing {}", src.display()))?;
            self.store.setattr(ino, &Self::attrs_of(&meta))?;
            self.report.files += 1;
            self.report.bytes += meta.len();
            self.bar.inc(meta.len());
            self.since_sync += 1;
            self.maybe_sync(false)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(src)?;
            let ino = self
                .store
                .create(
                    parent,
                    name,
                    Kind::Symlink,
                    0o777,
                    uid,
                    gid,
                    0,
                    target.as_os_str().as_bytes(),
                )?
                .0;
            let mut attrs = Self::attrs_of(&meta);
            attrs.perm = None;
            self.store.setattr(ino, &attrs)?;
            self.report.symlinks += 1;
        } else {
            use std::os::unix::fs::FileTypeExt;
            let kind = if ft.is_fifo() {
                Kind::Fifo
            } else if ft.is_char_device() {
                Kind::CharDevice
            } else if ft.is_block_device() {
                Kind::BlockDevice
            } else {
                self.report
                    .skipped
                    .push(format!("{} (socket)", src.display()));
                return Ok(());
            };
            let ino = self
                .store
                .create(
                    parent,
                    name,
                    kind,
                    (meta.mode() & 0o7777) as u16,
                    uid,
                    gid,
                    meta.rdev() as u32,
                    &[],
                )?
                .0;
            self.store.setattr(ino, &Self::attrs_of(&meta))?;
        }
        Ok(())
    }
}

/// Copies the local tree `src` to store path `dest` (which becomes the copy of `src`).
pub fn import(store: &Store, src: &Path, dest: &[u8], quiet: bool) -> Result<TransferReport> {
    let started = std::time::Instant::now();
    fs::symlink_metadata(src).with_context(|| format!("cannot import {}", src.display()))?;
    let comps = peros_store::path_components(dest);
    let Some((name, dirs)) = comps.split_last() else {
        bail!(
            "cannot import onto the store root itself: give a destination such as /{}",
            src.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "data".into())
        );
    };
    let parent = ensure_dirs(store, dirs)?;
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        bytes_bar(local_total(src), "importing")
    };
    let mut imp = Importer {
        store,
        bar,
        report: TransferReport::default(),
        since_sync: 0,
    };
    let result = imp.import(src, parent, name);
    // Whatever happened, make what was imported durable.
    imp.maybe_sync(true)?;
    imp.bar.finish_and_clear();
    result?;
    imp.report.seconds = started.elapsed().as_secs_f64();
    Ok(imp.report)
}

fn set_times(path: &Path, atime: Time, mtime: Time, follow: bool) -> Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())?;
    let ts = [
        libc::timespec {
            tv_sec: atime.secs as libc::time_t,
            tv_nsec: atime.nanos as libc::c_long,
        },
        libc::timespec {
            tv_sec: mtime.secs as libc::time_t,
            tv_nsec: mtime.nanos as libc::c_long,
        },
    ];
    let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
    // SAFETY: valid C string and a two-element timespec array.
    if unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), ts.as_ptr(), flags) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("setting times on {}", path.display()));
    }
    Ok(())
}

fn lchown(path: &Path, uid: u32, gid: u32) -> Result<()> {
    if !is_root() {
        return Ok(());
    }
    let c = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: valid C string.
    if unsafe { libc::lchown(c.as_ptr(), uid, gid) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("chown {}", path.display()));
    }
    Ok(())
}

struct Exporter<'a> {
    store: &'a Store,
    bar: ProgressBar,
    report: TransferReport,
}

impl Exporter<'_> {
    fn export(&mut self, ino: Ino, store_path: &str, dest: &Path) -> Result<()> {
        let node = self.store.getattr(ino)?;
        match node.kind {
            Kind::Dir => {
                match fs::symlink_metadata(dest) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => bail!("{} exists and is not a directory", dest.display()),
                    Err(_) => fs::create_dir(dest)
                        .with_context(|| format!("creating {}", dest.display()))?,
                }
                // Writable while we fill it; the stored mode is applied at the end.
                fs::set_permissions(dest, fs::Permissions::from_mode(0o700))?;
                for e in self.store.readdir(ino)? {
                    let child = dest.join(OsStr::from_bytes(&e.name));
                    let child_path = format!(
                        "{}/{}",
                        store_path.trim_end_matches('/'),
                        String::from_utf8_lossy(&e.name)
                    );
                    self.export(e.ino, &child_path, &child)?;
                }
                self.report.dirs += 1;
                lchown(dest, node.uid, node.gid)?;
                fs::set_permissions(dest, fs::Permissions::from_mode(node.perm as u32))?;
                set_times(dest, node.atime, node.mtime, true)?;
            }
            Kind::File => {
                let tmp = temp_name(dest);
                {
                    let mut out = fs::File::create(&tmp)
                        .with_context(|| format!("creating {}", tmp.display()))?;
                    let mut off = 0u64;
                    while off < node.size {
                        let want = (node.size - off).min(peros_store::CHUNK_SIZE as u64) as usize;
                        let data =
                            self.store
                                .read_from(ino, &node, off, want)
                                .inspect_err(|_| {
                                    let _ = fs::remove_file(&tmp);
                                })?;
                        std::io::Write::write_all(&mut out, &data)?;
                        off += data.len() as u64;
                        self.bar.inc(data.len() as u64);
                    }
                    out.sync_all()?;
                }
                fs::rename(&tmp, dest)?;
                lchown(dest, node.uid, node.gid)?;
                fs::set_permissions(dest, fs::Permissions::from_mode(node.perm as u32))?;
                set_times(dest, node.atime, node.mtime, true)?;
                self.report.files += 1;
                self.report.bytes += node.size;
            }
            Kind::Symlink => {
                if fs::symlink_metadata(dest).is_ok() {
                    fs::remove_file(dest)?;
                }
                std::os::unix::fs::symlink(OsStr::from_bytes(&node.target), dest)?;
                lchown(dest, node.uid, node.gid)?;
                set_times(dest, node.atime, node.mtime, false)?;
                self.report.symlinks += 1;
            }
            Kind::Fifo => {
                let c = CString::new(dest.as_os_str().as_bytes())?;
                // SAFETY: valid C string.
                if unsafe { libc::mkfifo(c.as_ptr(), node.perm as libc::mode_t) } != 0 {
                    return Err(std::io::Error::last_os_error())
                        .with_context(|| format!("mkfifo {}", dest.display()));
                }
                lchown(dest, node.uid, node.gid)?;
            }
            _ => self.report.skipped.push(store_path.to_string()),
        }
        Ok(())
    }
}

fn temp_name(dest: &Path) -> PathBuf {
    let suffix = format!(".peros-partial-{}", std::process::id());
    let name = dest.file_name().unwrap_or_default().as_bytes();
    // A name holds 255 bytes at most: shorten the original part so the suffix fits.
    let mut tmp = name[..name.len().min(255 - suffix.len())].to_vec();
    tmp.extend_from_slice(suffix.as_bytes());
    dest.with_file_name(OsStr::from_bytes(&tmp))
}

/// Copies store path `src` to local `dest` (which becomes the copy of `src`).
pub fn export(store: &Store, src: &[u8], dest: &Path, quiet: bool) -> Result<TransferReport> {
    let started = std::time::Instant::now();
    let (ino, node) = store.resolve(src)?;
    let mut dest = dest.to_path_buf();
    if node.kind != Kind::Dir && dest.is_dir() {
        if let Some(name) = peros_store::path_components(src).last() {
            dest = dest.join(OsStr::from_bytes(name));
        }
    }
    let total = if node.kind == Kind::Dir {
        store.stats().map(|s| s.logical_bytes).unwrap_or(0)
    } else {
        node.size
    };
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        bytes_bar(total, "exporting")
    };
    let mut exp = Exporter {
        store,
        bar,
        report: TransferReport::default(),
    };
    let result = exp.export(ino, &String::from_utf8_lossy(src), &dest);
    exp.bar.finish_and_clear();
    result?;
    exp.report.seconds = started.elapsed().as_secs_f64();
    Ok(exp.report)
}

//! [`FeedbackStore`]: thumbs-up/thumbs-down records appended to a JSON Lines file.
//!
//! One record per line, each line written whole:
//!
//! * [`append`](FeedbackStore::append) opens the file in append mode, takes an **exclusive
//!   lock** ([`File::lock`]) and writes `line + "\n"` with a single `write_all`. Several
//!   processes (a web server's workers, a notebook and a script) can append at once and every
//!   line stays intact.
//! * [`load`](FeedbackStore::load) takes a **shared lock**, so it never sees a line that is
//!   being written.
//! * A crash in the middle of a write can still leave a **torn last line**: no newline, not
//!   valid JSON. `load` skips it and *reports* it in [`Loaded::torn_tail`]. The next `append`
//!   moves the fragment to a sidecar file `<file>.torn-<unix-seconds>` (nothing is lost),
//!   truncates just that fragment and appends after it — it never glues a new record onto the
//!   fragment, and never rewrites a line that was a complete record.
//! * An append reads only the end of the file (back to its last newline), so it costs the
//!   same on a file of ten records or ten million. If the write fails (a full disk, an I/O
//!   error), the file is cut back to where it was, so no torn line is left behind.
//! * Only regular files: a directory, a device (`/dev/full`, `/dev/zero`) or a FIFO is refused
//!   before anything is read or written.
//! * Durability: an acknowledged append is in the operating system's cache, so it survives the
//!   process crashing; with [`with_fsync`](FeedbackStore::with_fsync) it is on the disk before
//!   `append` returns, so it survives a power loss too (a few milliseconds more per append on a
//!   disk; off by default).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::error::FeedbackError;
use super::jsonl::{is_torn, parse_lines, write_new_file, TornTail};
use super::record::Record;

/// A feedback file in JSON Lines format: one record per line.
///
/// * [`append`](Self::append) writes one whole line under an exclusive file lock, so several
///   processes can append to one file at once;
/// * [`load`](Self::load) reads under a shared lock and reports (never hides) a last line
///   torn by a crash;
/// * the next `append` moves such a torn fragment to `<file>.torn-<unix-seconds>` before
///   writing, so nothing is lost and no record is glued onto a fragment.
///
/// The store holds only the path: every call opens the file, so many `FeedbackStore`s — in
/// one process or several — can share a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackStore {
    path: PathBuf,
    fsync: bool,
}

/// What [`FeedbackStore::append`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Appended {
    /// The byte offset in the file where the record's line starts (an append does not read
    /// the whole file, so it cannot count lines).
    pub offset: u64,
    /// Set when a torn last line had to be moved aside first.
    pub repaired: Option<TailRepair>,
}

/// A torn last line that [`FeedbackStore::append`] moved to a sidecar file before appending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TailRepair {
    /// The byte offset where the fragment started (the new record now starts there).
    pub offset: u64,
    /// The fragment's length in bytes.
    pub bytes: usize,
    /// Where the fragment's bytes were saved, unchanged.
    pub sidecar: PathBuf,
}

/// What [`FeedbackStore::load`] read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    /// Every complete record, in file order.
    pub records: Vec<Record>,
    /// A torn last line that was skipped, if any. Never dropped silently: check it.
    pub torn_tail: Option<TornTail>,
}

/// Counts of desirable and undesirable feedback.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stats {
    /// All records.
    pub total: usize,
    /// Thumbs up (`label: true`).
    pub desirable: usize,
    /// Thumbs down (`label: false`).
    pub undesirable: usize,
    /// `desirable / undesirable`, or `None` (JSON `null`) when there is no undesirable record.
    ///
    /// The seed notebook divided by `max(undesirable, 1)`, which reports 5 desirable / 0
    /// undesirable as a ratio of 5 — indistinguishable from 5 / 1. A missing class is a
    /// different situation (see [`advise`](super::advise)), so it is shown as "undefined".
    pub ratio: Option<f64>,
}

impl Stats {
    /// Count the records.
    pub fn of(records: &[Record]) -> Stats {
        let desirable = records.iter().filter(|r| r.label).count();
        let undesirable = records.len() - desirable;
        Stats {
            total: records.len(),
            desirable,
            undesirable,
            ratio: (undesirable > 0).then(|| desirable as f64 / undesirable as f64),
        }
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} records: {} desirable (thumbs up), {} undesirable (thumbs down), ratio ",
            self.total, self.desirable, self.undesirable
        )?;
        match self.ratio {
            Some(r) => write!(f, "{r:.2}"),
            None => f.write_str("undefined (no undesirable records)"),
        }
    }
}

/// What [`FeedbackStore::export`] wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exported {
    /// The new training file.
    pub path: PathBuf,
    /// Rows written.
    pub count: usize,
    /// Desirable rows written.
    pub desirable: usize,
    /// Undesirable rows written.
    pub undesirable: usize,
    /// A torn last line of the store that was not exported.
    pub torn_tail: Option<TornTail>,
    /// Set when the file holds only one class: exporting works, training on it is weak.
    pub warning: Option<String>,
}

impl FeedbackStore {
    /// A store backed by `path`. Nothing is touched on disk until the first call.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FeedbackStore {
            path: path.into(),
            fsync: false,
        }
    }

    /// The same store, flushing every append to the disk (`fsync`) before returning, so that an
    /// acknowledged record survives a power loss, not only a crash of the process.
    pub fn with_fsync(mut self, fsync: bool) -> Self {
        self.fsync = fsync;
        self
    }

    fn check_regular(&self, meta: &std::fs::Metadata) -> Result<(), FeedbackError> {
        check_regular(&self.path, meta)
    }

    /// The backing file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, e: io::Error) -> FeedbackError {
        FeedbackError::io(&self.path, e)
    }

    /// Append one record as one line; creates the file if it is missing.
    ///
    /// The record is checked first ([`Record::validate`]): a record that `load` would reject
    /// is never written. Then, under an exclusive lock:
    ///
    /// 1. the end of the file is read back to its last newline. If the file does not end in a
    ///    newline and that last line is torn (not valid JSON), the fragment is copied to
    ///    `<file>.torn-<unix-seconds>` and cut off the file; if the last line is complete JSON
    ///    that only lacks its newline, it is kept and a newline is written before the record;
    /// 2. `line + "\n"` is written with one `write_all` (and `fsync`ed, with
    ///    [`with_fsync`](Self::with_fsync)). If that fails, the file is cut back to its length
    ///    before the write, and the error is returned: the record was not stored.
    ///
    /// Returns the byte offset of the record's line and any repair made. Refuses a path that
    /// is not a regular file.
    pub fn append(&self, record: &Record) -> Result<Appended, FeedbackError> {
        record.check().map_err(|p| FeedbackError::InvalidRecord {
            path: self.path.clone(),
            field: p.field(),
            message: p.to_string(),
        })?;
        append_line(&self.path, &record.to_store_line(), self.fsync)
    }

    /// Read every record, under a shared lock.
    ///
    /// Blank lines are skipped. A malformed line is an error naming `file:line` and the
    /// field. A torn last line (no newline, not valid JSON) is skipped and reported in
    /// [`Loaded::torn_tail`]. A file that does not exist yet is an empty store.
    pub fn load(&self) -> Result<Loaded, FeedbackError> {
        match std::fs::metadata(&self.path) {
            Ok(meta) => self.check_regular(&meta)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Loaded::default()),
            Err(e) => return Err(self.io(e)),
        }
        let mut file = File::open(&self.path).map_err(|e| self.io(e))?;
        self.check_regular(&file.metadata().map_err(|e| self.io(e))?)?;
        file.lock_shared().map_err(|e| self.io(e))?;
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(|e| self.io(e))?;
        drop(file); // releases the lock

        let lines = parse_lines(&self.path, &data, true)?;
        let records = lines
            .rows
            .iter()
            .map(|(n, v)| Record::from_value(v).map_err(|p| p.at(&self.path, *n)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Loaded {
            records,
            torn_tail: lines.torn_tail,
        })
    }

    /// Count desirable and undesirable records. A torn last line is not counted (call
    /// [`load`](Self::load) to see it). A file that does not exist is an error naming it
    /// (unlike `load`, for which it is an empty store yet): counting a mistyped path must not
    /// report "0 records".
    pub fn stats(&self) -> Result<Stats, FeedbackError> {
        self.require_file()?;
        Ok(Stats::of(&self.load()?.records))
    }

    /// Like [`load`](Self::load), but a file that does not exist is an error naming it: for
    /// reading a file someone named (a typo must not read as an empty store).
    pub fn load_existing(&self) -> Result<Loaded, FeedbackError> {
        self.require_file()?;
        self.load()
    }

    /// An error naming the file when it does not exist.
    fn require_file(&self) -> Result<(), FeedbackError> {
        match std::fs::metadata(&self.path) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(FeedbackError::NotFound {
                path: self.path.clone(),
            }),
            Err(e) => Err(self.io(e)),
        }
    }

    /// Write the store as a KTO training file for TRL — one
    /// `{"prompt","completion","label"}` line per record, metadata dropped — to `dest`,
    /// which must be a **new** file.
    ///
    /// Refuses to overwrite an existing `dest` (it is left byte-for-byte as it was) and
    /// refuses an empty store. The file is written to a temporary name in the same directory
    /// and hard-linked into place, so a crash never leaves a half-written `dest`. One-class
    /// data is exported with a [`warning`](Exported::warning).
    pub fn export(&self, dest: impl AsRef<Path>) -> Result<Exported, FeedbackError> {
        let dest = dest.as_ref();
        if std::fs::symlink_metadata(dest).is_ok() {
            return Err(FeedbackError::AlreadyExists {
                path: dest.to_path_buf(),
            });
        }
        self.require_file()?;
        let loaded = self.load()?;
        if loaded.records.is_empty() {
            return Err(FeedbackError::EmptyFile {
                path: self.path.clone(),
            });
        }
        let mut content = String::new();
        for r in &loaded.records {
            content.push_str(&r.to_training_line());
            content.push('\n');
        }
        write_new_file(dest, content.as_bytes())?;
        let stats = Stats::of(&loaded.records);
        Ok(Exported {
            path: dest.to_path_buf(),
            count: stats.total,
            desirable: stats.desirable,
            undesirable: stats.undesirable,
            torn_tail: loaded.torn_tail,
            warning: one_class_warning(&stats),
        })
    }
}

/// Appends `line + "\n"` to the JSON Lines file at `path` under an exclusive lock, as
/// [`FeedbackStore::append`] describes (a torn last line moved aside first, a failed write cut
/// back). Shared by every append-only log of the crate ([`FeedbackStore`], the rating page's
/// [`VoteLog`](super::VoteLog)): one implementation of "a whole line or nothing".
pub(crate) fn append_line(path: &Path, line: &str, fsync: bool) -> Result<Appended, FeedbackError> {
    // Before opening: opening a device or a FIFO can already have effects (or block).
    match std::fs::metadata(path) {
        Ok(meta) => check_regular(path, &meta)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(FeedbackError::io(path, e)),
    }
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| FeedbackError::io(path, e))?;
    check_regular(
        path,
        &file.metadata().map_err(|e| FeedbackError::io(path, e))?,
    )?;
    file.lock().map_err(|e| FeedbackError::io(path, e))?;

    let tail = last_line(&mut file).map_err(|e| FeedbackError::io(path, e))?;
    let mut len = tail.start + tail.fragment.len() as u64;
    let mut repaired = None;
    let mut buf = String::with_capacity(line.len() + 2);
    if !tail.fragment.is_empty() {
        if is_torn(&tail.fragment) {
            let sidecar = save_sidecar(path, &tail.fragment)?;
            file.set_len(tail.start)
                .map_err(|e| FeedbackError::io(path, e))?;
            len = tail.start;
            repaired = Some(TailRepair {
                offset: tail.start,
                bytes: tail.fragment.len(),
                sidecar,
            });
        } else {
            // A complete (or blank) last line without its newline: finish it, keep it.
            buf.push('\n');
        }
    }
    let offset = len + buf.len() as u64;
    buf.push_str(line);
    buf.push('\n');
    let written = file
        .write_all(buf.as_bytes())
        .and_then(|()| file.flush())
        .and_then(|()| if fsync { file.sync_data() } else { Ok(()) });
    if let Err(e) = written {
        // A full disk or an I/O error part-way: cut the partial line back off, so the file
        // holds exactly what it held before (a retry then cannot glue onto a fragment).
        let _ = file.set_len(len);
        return Err(FeedbackError::io(path, e));
    }
    // The record is written: an unlock failure must not report it as lost (a caller
    // retrying would duplicate it). Closing the file below releases the lock anyway.
    let _ = file.unlock();
    drop(file);
    Ok(Appended { offset, repaired })
}

/// Copy a torn fragment to a new sidecar file `<file>.torn-<unix-seconds>[-n]`.
fn save_sidecar(path: &Path, fragment: &[u8]) -> Result<PathBuf, FeedbackError> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for n in 0u32..1000 {
        let mut name = path.to_path_buf().into_os_string();
        name.push(format!(".torn-{secs}"));
        if n > 0 {
            name.push(format!("-{n}"));
        }
        let candidate = PathBuf::from(name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&candidate)
        {
            Ok(mut f) => {
                f.write_all(fragment)
                    .and_then(|()| f.sync_all())
                    .map_err(|e| FeedbackError::io(&candidate, e))?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(FeedbackError::io(&candidate, e)),
        }
    }
    Err(FeedbackError::io(
        path,
        io::Error::new(
            io::ErrorKind::AlreadyExists,
            "1000 sidecar files <file>.torn-<seconds>-<n> already exist for this second",
        ),
    ))
}

/// Refuses anything at `path` that is not a regular file (a missing file is fine).
fn check_regular(path: &Path, meta: &std::fs::Metadata) -> Result<(), FeedbackError> {
    if meta.is_file() {
        Ok(())
    } else {
        Err(FeedbackError::NotARegularFile {
            path: path.to_path_buf(),
        })
    }
}

/// The warning for data with only one label, or `None`.
pub(crate) fn one_class_warning(stats: &Stats) -> Option<String> {
    let (have, missing) = match (stats.desirable, stats.undesirable) {
        (0, 0) => return None,
        (_, 0) => ("desirable (thumbs up)", "undesirable (thumbs down)"),
        (0, _) => ("undesirable (thumbs down)", "desirable (thumbs up)"),
        _ => return None,
    };
    let all = if stats.total == 1 {
        "the only record is".to_string()
    } else {
        format!("all {} records are", stats.total)
    };
    Some(format!(
        "{all} {have}: KTO can train on one class, but it only moves those \
         completions against the KL baseline, a weak signal; DPO cannot train at all. \
         Collect some {missing} feedback."
    ))
}

/// The file's last line when it does not end in a newline.
struct Tail {
    /// Offset just after the last `\n` (0 if none): where the unterminated last line starts.
    start: u64,
    /// The bytes from `start` to the end of the file (empty when the file ends in `\n`).
    fragment: Vec<u8>,
}

/// Reads the file backwards from its end, 64 KiB at a time, to its last newline: an append
/// costs the same on a small file and a huge one (only a last line with no newline at all is
/// read whole).
fn last_line(file: &mut File) -> io::Result<Tail> {
    const CHUNK: u64 = 64 * 1024;
    let len = file.seek(SeekFrom::End(0))?;
    let mut end = len;
    let mut fragment: Vec<u8> = Vec::new();
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let mut chunk = vec![0u8; (end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            chunk.drain(..=i);
            chunk.extend_from_slice(&fragment);
            return Ok(Tail {
                start: start + i as u64 + 1,
                fragment: chunk,
            });
        }
        chunk.extend_from_slice(&fragment);
        fragment = chunk;
        end = start;
    }
    Ok(Tail { start: 0, fragment })
}

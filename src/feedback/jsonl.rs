//! JSON Lines plumbing shared by the store, unpairing and the guide: splitting a file into
//! numbered lines, spotting a torn last line, and writing a new file without ever leaving a
//! half-written one behind.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde_json::Value;

use super::error::FeedbackError;

/// The last line of a file that was cut short: it has no trailing newline and is not valid
/// JSON — what a crash (or a full disk) in the middle of an append leaves behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TornTail {
    /// Its 1-based line number.
    pub line: usize,
    /// How many bytes it holds.
    pub bytes: usize,
}

/// A file's non-blank lines, each with its 1-based physical line number, parsed as JSON.
pub(crate) struct JsonLines {
    pub(crate) rows: Vec<(usize, Value)>,
    pub(crate) torn_tail: Option<TornTail>,
}

pub(crate) fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// A fragment after the last newline is *torn* when it is not blank and not valid JSON.
/// A complete JSON value that only lacks its newline is not torn: it is kept.
pub(crate) fn is_torn(fragment: &[u8]) -> bool {
    !is_blank(fragment) && serde_json::from_slice::<Value>(fragment).is_err()
}

/// Read a whole file, naming it on error.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, FeedbackError> {
    fs::read(path).map_err(|e| FeedbackError::io(path, e))
}

/// Split `data` into lines and parse each non-blank one as JSON.
///
/// With `allow_torn_tail`, a last line that has no newline and does not parse is returned as
/// [`TornTail`] instead of failing; any other bad line is an error naming `path:line`.
pub(crate) fn parse_lines(
    path: &Path,
    data: &[u8],
    allow_torn_tail: bool,
) -> Result<JsonLines, FeedbackError> {
    let mut rows = Vec::new();
    let mut torn_tail = None;
    let ends_with_newline = data.last() == Some(&b'\n');
    let mut pieces: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    if ends_with_newline || data.is_empty() {
        // `split` yields an empty piece after the final newline: it is not a line.
        pieces.pop();
    }
    let count = pieces.len();
    for (i, piece) in pieces.into_iter().enumerate() {
        let number = i + 1;
        let line = piece.strip_suffix(b"\r").unwrap_or(piece);
        if is_blank(line) {
            continue;
        }
        match serde_json::from_slice::<Value>(line) {
            Ok(value) => rows.push((number, value)),
            Err(_) if allow_torn_tail && number == count && !ends_with_newline => {
                torn_tail = Some(TornTail {
                    line: number,
                    bytes: piece.len(),
                });
            }
            Err(e) => {
                return Err(FeedbackError::InvalidJson {
                    path: path.to_path_buf(),
                    line: number,
                    field: None,
                    message: e.to_string(),
                })
            }
        }
    }
    Ok(JsonLines { rows, torn_tail })
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Removes the temporary file unless disarmed.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// Write `content` to `dest`, which must not exist yet.
///
/// The bytes go to a temporary file in the same directory first (flushed to disk), which is
/// then *hard-linked* to `dest`. Linking fails if `dest` exists — even if another process
/// created it a moment ago — so nothing is ever overwritten, and `dest` appears complete or
/// not at all. The temporary file is removed afterwards.
pub(crate) fn write_new_file(dest: &Path, content: &[u8]) -> Result<(), FeedbackError> {
    if fs::symlink_metadata(dest).is_ok() {
        return Err(FeedbackError::AlreadyExists {
            path: dest.to_path_buf(),
        });
    }
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".to_string());

    let (tmp_path, mut tmp) = loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let candidate = dir.join(format!(".{name}.{}-{n}.partial", std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&candidate)
        {
            Ok(f) => break (candidate, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(FeedbackError::io(&candidate, e)),
        }
    };
    let guard = TempGuard(Some(tmp_path.clone()));
    tmp.write_all(content)
        .and_then(|()| tmp.sync_all())
        .map_err(|e| FeedbackError::io(&tmp_path, e))?;
    drop(tmp);
    match fs::hard_link(&tmp_path, dest) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(FeedbackError::AlreadyExists {
                path: dest.to_path_buf(),
            })
        }
        Err(e) => return Err(FeedbackError::io(dest, e)),
    }
    drop(guard);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_numbered_physically() {
        let data = b"{}\n\n  \n{\"a\":1}\r\n{\"b\"";
        let out = parse_lines(Path::new("f.jsonl"), data, true).unwrap();
        let numbers: Vec<usize> = out.rows.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, vec![1, 4]);
        assert_eq!(out.torn_tail, Some(TornTail { line: 5, bytes: 4 }));
        let err = parse_lines(Path::new("f.jsonl"), data, false)
            .err()
            .unwrap();
        assert!(
            err.to_string().starts_with("f.jsonl:5: not valid JSON"),
            "{err}"
        );
    }

    #[test]
    fn empty_input_has_no_lines() {
        let out = parse_lines(Path::new("f"), b"", true).unwrap();
        assert!(out.rows.is_empty() && out.torn_tail.is_none());
    }

    #[test]
    fn torn_means_unparseable_and_not_blank() {
        assert!(is_torn(b"{\"prompt\": \"a"));
        assert!(!is_torn(b"{}"));
        assert!(!is_torn(b"  "));
    }
}

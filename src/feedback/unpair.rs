//! Paired (DPO) data → unpaired (KTO) data, like TRL's `unpair_preference_dataset`.
//!
//! Every `{"prompt", "chosen", "rejected"}` row becomes two rows:
//! `{"prompt", "completion": chosen, "label": true}` and
//! `{"prompt", "completion": rejected, "label": false}`.
//!
//! The result is perfectly balanced (as many desirable as undesirable rows), so KTO's default
//! weights already satisfy the paper's imbalance rule. Going the other way is not possible in
//! general: unpaired feedback only pairs up where one prompt got both a thumbs up and a thumbs
//! down (see [`analyze`](super::analyze)).
//!
//! Row order: TRL's batched `map` emits a batch's chosen rows, then its rejected rows; here each
//! pair's two rows are adjacent. Trainers shuffle, so the order carries no meaning.

use std::path::Path;

use super::error::FeedbackError;
use super::jsonl::{parse_lines, read_file, write_new_file};
use super::record::{PairedRecord, Record};

/// Split each paired row into a desirable and an undesirable [`Record`] (no metadata).
pub fn unpair(rows: &[PairedRecord]) -> Vec<Record> {
    rows.iter()
        .flat_map(|r| {
            [
                Record::new(r.prompt.clone(), r.chosen.clone(), true),
                Record::new(r.prompt.clone(), r.rejected.clone(), false),
            ]
        })
        .collect()
}

/// Read a JSONL file of paired rows `{"prompt", "chosen", "rejected"}`.
///
/// Blank lines are skipped; any bad line (including an unterminated last line) is an error
/// naming the file, the line and the field. An empty file gives an empty `Vec`.
pub fn read_paired(path: impl AsRef<Path>) -> Result<Vec<PairedRecord>, FeedbackError> {
    let path = path.as_ref();
    let data = read_file(path)?;
    let lines = parse_lines(path, &data, false)?;
    lines
        .rows
        .iter()
        .map(|(n, v)| PairedRecord::from_value(v).map_err(|p| p.at(path, *n)))
        .collect()
}

/// Read paired rows from `src` and write them unpaired to the **new** file `dest`, in TRL's
/// KTO training format. Returns the number of rows written (twice the number of pairs).
///
/// Refuses an existing `dest` (left untouched) and a `src` without rows; like
/// [`FeedbackStore::export`](super::FeedbackStore::export), `dest` appears complete or not at all.
pub fn unpair_file(src: impl AsRef<Path>, dest: impl AsRef<Path>) -> Result<usize, FeedbackError> {
    let (src, dest) = (src.as_ref(), dest.as_ref());
    if std::fs::symlink_metadata(dest).is_ok() {
        return Err(FeedbackError::AlreadyExists {
            path: dest.to_path_buf(),
        });
    }
    let rows = read_paired(src)?;
    if rows.is_empty() {
        return Err(FeedbackError::EmptyFile {
            path: src.to_path_buf(),
        });
    }
    let records = unpair(&rows);
    let mut content = String::new();
    for r in &records {
        content.push_str(&r.to_training_line());
        content.push('\n');
    }
    write_new_file(dest, content.as_bytes())?;
    Ok(records.len())
}

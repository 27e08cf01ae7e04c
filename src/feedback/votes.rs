//! A rater's clicks, kept: the rating page's append-only log, and the training rows it gives.
//!
//! The page (`kto-lab rate`) shows answers from an [`AnswerPool`] one at a time. Every click is
//! one line of a [`VoteLog`] — a [`Click`] (prompt, completion, [`Vote`]) with who clicked, when,
//! and on which answer — written before the page hears "saved". Nothing in the log is ever
//! rewritten: a changed mind is a new line, a skip is a [`Vote::Clear`] (the answer was seen and
//! has no label), an undo is a `Clear` marked `undo` (the answer is to be rated again).
//!
//! The training rows come out of lab 4's own rule, [`final_votes`](super::final_votes), applied
//! to each rater's clicks: one row per (rater, answer), its last vote, in TRL's unpaired
//! conversational format with the rater and the time of the vote in `metadata`
//! ([`final_records`]). The log is the one source of truth; the rows are derived from it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::FeedbackError;
use super::jsonl::{parse_lines, write_new_file, TornTail};
use super::record::{Message, Record, Text};
use super::store::{append_line, Appended};
use super::{Click, Vote};

/// The longest rater name, in characters.
pub const MAX_RATER_NAME: usize = 40;

/// A rater's name: 1–[`MAX_RATER_NAME`] letters, digits, spaces, `_`, `.` or `-`, not only
/// spaces. Names never become paths; the rule keeps the log and the page's text plain.
pub fn check_rater_name(name: &str) -> Result<(), String> {
    let n = name.chars().count();
    if n == 0 || name.trim().is_empty() {
        return Err("the rater name is empty".into());
    }
    if n > MAX_RATER_NAME {
        return Err(format!(
            "the rater name has {n} characters (at most {MAX_RATER_NAME})"
        ));
    }
    match name
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, ' ' | '_' | '.' | '-')))
    {
        Some(c) => Err(format!(
            "the rater name has {c:?}: letters, digits, space, _ . - only"
        )),
        None => Ok(()),
    }
}

/// One answer to rate: the question, the model's answer, and an id the page and the log use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolAnswer {
    /// `a000`, `a001`, … in the pool's order.
    pub id: String,
    /// The question.
    pub prompt: String,
    /// The model's answer.
    pub completion: String,
}

/// The answers a rating session shows, in the order it shows them, and where they came from.
///
/// Sampled once, before the page opens (so the next answer is always ready), and saved beside
/// the log (`pool.json`): a restarted page shows the same answers under the same ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerPool {
    /// Which model wrote the answers, in words (shown on the page, kept in the report).
    pub model: String,
    /// The answers.
    pub answers: Vec<PoolAnswer>,
}

impl AnswerPool {
    /// A pool of `(prompt, completion)` answers, numbered in order.
    pub fn new(
        model: impl Into<String>,
        answers: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        AnswerPool {
            model: model.into(),
            answers: answers
                .into_iter()
                .enumerate()
                .map(|(i, (prompt, completion))| PoolAnswer {
                    id: format!("a{i:03}"),
                    prompt,
                    completion,
                })
                .collect(),
        }
    }

    /// The answer with this id.
    pub fn get(&self, id: &str) -> Option<&PoolAnswer> {
        // Ids are `a` + the index: no search needed, and a forged id finds nothing.
        let i: usize = id.strip_prefix('a')?.parse().ok()?;
        self.answers.get(i).filter(|a| a.id == id)
    }

    /// Reads a pool saved by [`save_new`](Self::save_new).
    pub fn load(path: &Path) -> Result<AnswerPool, FeedbackError> {
        let data = fs::read(path).map_err(|e| FeedbackError::io(path, e))?;
        let pool: AnswerPool =
            serde_json::from_slice(&data).map_err(|e| FeedbackError::InvalidValue {
                path: path.to_path_buf(),
                line: e.line(),
                field: None,
                message: format!("not an answer pool: {e}"),
            })?;
        if pool.answers.is_empty() {
            return Err(FeedbackError::EmptyFile {
                path: path.to_path_buf(),
            });
        }
        for (i, a) in pool.answers.iter().enumerate() {
            if a.id != format!("a{i:03}") {
                return Err(FeedbackError::InvalidValue {
                    path: path.to_path_buf(),
                    line: 0,
                    field: Some("answers.id".into()),
                    message: format!("answer {i} has id {:?} (expected a{i:03})", a.id),
                });
            }
        }
        Ok(pool)
    }

    /// Writes the pool to `path`, which must not exist (nothing saved is overwritten).
    pub fn save_new(&self, path: &Path) -> Result<(), FeedbackError> {
        if fs::symlink_metadata(path).is_ok() {
            return Err(FeedbackError::AlreadyExists {
                path: path.to_path_buf(),
            });
        }
        let json =
            serde_json::to_vec_pretty(self).map_err(|e| FeedbackError::io(path, e.into()))?;
        write_new_file(path, &json)
    }
}

/// One click as the log keeps it: the [`Click`] itself, and who clicked, when, on what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RatedClick {
    /// The answer's id in the session's [`AnswerPool`].
    pub answer: String,
    /// Who clicked.
    pub rater: String,
    /// When, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The click: prompt, completion and vote.
    #[serde(flatten)]
    pub click: Click,
    /// Set on the `Clear` an undo writes (the answer is to be rated again); a `Clear` without it
    /// is a skip.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub undo: bool,
}

/// The rating page's log: one [`RatedClick`] per line, appended whole under a file lock
/// (the same code as [`FeedbackStore::append`](super::FeedbackStore::append)), never rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoteLog {
    path: PathBuf,
    fsync: bool,
}

/// What [`VoteLog::load`] read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadedClicks {
    /// Every complete line, in file order.
    pub clicks: Vec<RatedClick>,
    /// A last line torn by a crash, skipped (the next append moves it aside).
    pub torn_tail: Option<TornTail>,
}

impl VoteLog {
    /// The log at `path` (created by the first append).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        VoteLog {
            path: path.into(),
            fsync: false,
        }
    }

    /// The same log, `fsync`ing every append before it returns (survives a power loss).
    pub fn with_fsync(mut self, fsync: bool) -> Self {
        self.fsync = fsync;
        self
    }

    /// The backing file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one click as one line. When this returns `Ok`, the line is in the file (in the
    /// operating system's cache; on the disk with [`with_fsync`](Self::with_fsync)).
    pub fn append(&self, click: &RatedClick) -> Result<Appended, FeedbackError> {
        check_rater_name(&click.rater).map_err(|message| FeedbackError::InvalidRecord {
            path: self.path.clone(),
            field: Some("rater".into()),
            message,
        })?;
        let line =
            serde_json::to_string(click).map_err(|e| FeedbackError::io(&self.path, e.into()))?;
        append_line(&self.path, &line, self.fsync)
    }

    /// Every click, in file order (a missing file is an empty log). A malformed line is an
    /// error naming `file:line` and the field; a torn last line is skipped and reported.
    pub fn load(&self) -> Result<LoadedClicks, FeedbackError> {
        let data = match fs::read(&self.path) {
            Ok(data) => data,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(LoadedClicks::default())
            }
            Err(e) => return Err(FeedbackError::io(&self.path, e)),
        };
        let lines = parse_lines(&self.path, &data, true)?;
        let clicks = lines
            .rows
            .into_iter()
            .map(|(n, v)| {
                serde_path_to_error::deserialize::<_, RatedClick>(v).map_err(|e| {
                    FeedbackError::InvalidValue {
                        path: self.path.clone(),
                        line: n,
                        field: Some(e.path().to_string()),
                        message: e.inner().to_string(),
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LoadedClicks {
            clicks,
            torn_tail: lines.torn_tail,
        })
    }
}

/// What a rater clicked last on an answer, as the page shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Choice {
    /// 👍
    Up,
    /// 👎
    Down,
    /// Seen, not rated.
    Skip,
}

impl Choice {
    /// The click that records this choice.
    pub fn vote(self) -> Vote {
        match self {
            Choice::Up => Vote::Up,
            Choice::Down => Vote::Down,
            Choice::Skip => Vote::Clear,
        }
    }
}

/// Where one rater stands, replayed from the log: what they decided on each answer, and the
/// order they decided in (for undo).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaterProgress {
    decided: HashMap<String, Choice>,
    /// Answers decided, oldest first; undo takes the last one back.
    order: Vec<String>,
}

impl RaterProgress {
    /// Replays `rater`'s clicks (others' are ignored), in log order.
    pub fn replay<'a>(rater: &str, clicks: impl IntoIterator<Item = &'a RatedClick>) -> Self {
        let mut p = RaterProgress::default();
        for c in clicks.into_iter().filter(|c| c.rater == rater) {
            p.apply(c);
        }
        p
    }

    /// Takes one more click of this rater into account.
    pub fn apply(&mut self, c: &RatedClick) {
        self.order.retain(|id| id != &c.answer);
        if c.undo {
            self.decided.remove(&c.answer);
            return;
        }
        let choice = match c.click.vote {
            Vote::Up => Choice::Up,
            Vote::Down => Choice::Down,
            Vote::Clear => Choice::Skip,
        };
        self.decided.insert(c.answer.clone(), choice);
        self.order.push(c.answer.clone());
    }

    /// The first answer of `pool` not yet decided, and the one after it.
    pub fn current<'p>(
        &self,
        pool: &'p AnswerPool,
    ) -> (Option<&'p PoolAnswer>, Option<&'p PoolAnswer>) {
        let mut open = pool
            .answers
            .iter()
            .filter(|a| !self.decided.contains_key(&a.id));
        (open.next(), open.next())
    }

    /// The last decision, which undo would take back.
    pub fn last(&self) -> Option<(&str, Choice)> {
        let id = self.order.last()?;
        Some((id.as_str(), self.decided[id]))
    }

    /// How many answers got each choice.
    pub fn counts(&self) -> (usize, usize, usize) {
        let count = |c: Choice| self.decided.values().filter(|&&d| d == c).count();
        (count(Choice::Up), count(Choice::Down), count(Choice::Skip))
    }

    /// Answers decided (rated or skipped).
    pub fn decided(&self) -> usize {
        self.decided.len()
    }
}

/// The training rows of a log: for each rater, lab 4's [`final_votes`](super::final_votes) of
/// their clicks — one row per answer they rated, its last vote (a skip or an undone vote gives
/// none) — in TRL's unpaired conversational format, with `rater`, `answer` and the time of that
/// last vote (`time_ms`) in `metadata`. Raters in order of first click; rows in the order each
/// rater first clicked the answers.
pub fn final_records(clicks: &[RatedClick]) -> Vec<Record> {
    let mut raters: Vec<&str> = Vec::new();
    let mut by_rater: HashMap<&str, Vec<&RatedClick>> = HashMap::new();
    for c in clicks {
        by_rater
            .entry(c.rater.as_str())
            .or_insert_with(|| {
                raters.push(c.rater.as_str());
                Vec::new()
            })
            .push(c);
    }
    let mut rows = Vec::new();
    for rater in raters {
        let mine = &by_rater[rater];
        let plain: Vec<Click> = mine.iter().map(|c| c.click.clone()).collect();
        // When and on which answer each (prompt, completion) was last clicked.
        let mut last: HashMap<(&str, &str), &RatedClick> = HashMap::new();
        for c in mine {
            last.insert((c.click.prompt.as_str(), c.click.completion.as_str()), c);
        }
        for record in super::clicks::final_votes(&plain) {
            let (Text::Plain(prompt), Text::Plain(completion)) =
                (&record.prompt, &record.completion)
            else {
                continue; // final_votes writes plain text
            };
            let click = last[&(prompt.as_str(), completion.as_str())];
            let mut meta = Map::new();
            meta.insert("rater".into(), Value::from(rater));
            meta.insert("answer".into(), Value::from(click.answer.as_str()));
            meta.insert("time_ms".into(), Value::from(click.time_ms));
            rows.push(
                Record::new(
                    vec![Message::user(prompt.as_str())],
                    vec![Message::assistant(completion.as_str())],
                    record.label,
                )
                .with_metadata(meta),
            );
        }
    }
    rows
}

/// Raters and how many rows each has, in name order.
pub fn rows_per_rater(rows: &[Record]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in rows {
        let rater = r
            .metadata
            .as_ref()
            .and_then(|m| m.get("rater"))
            .and_then(Value::as_str)
            .unwrap_or("?");
        *out.entry(rater.to_string()).or_insert(0) += 1;
    }
    out
}

/// The distinct answers (prompt, completion) of `rows`.
pub fn distinct_answers(rows: &[Record]) -> usize {
    rows.iter()
        .map(|r| (r.prompt.key(), r.completion.key()))
        .collect::<HashSet<_>>()
        .len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn click(rater: &str, answer: &str, vote: Vote, undo: bool) -> RatedClick {
        RatedClick {
            answer: answer.into(),
            rater: rater.into(),
            time_ms: 1,
            click: Click::new(format!("Q{answer}"), format!("A{answer}"), vote),
            undo,
        }
    }

    #[test]
    fn replay_gives_the_place_the_counts_and_undo() {
        let pool = AnswerPool::new(
            "m",
            (0..4).map(|i| (format!("Qa00{i}"), format!("Aa00{i}"))),
        );
        let log = [
            click("ana", "a000", Vote::Up, false),
            click("bo", "a000", Vote::Down, false),
            click("ana", "a001", Vote::Clear, false),
            click("ana", "a002", Vote::Down, false),
            click("ana", "a002", Vote::Clear, true),
        ];
        let ana = RaterProgress::replay("ana", &log);
        assert_eq!(ana.counts(), (1, 0, 1));
        assert_eq!(ana.current(&pool).0.map(|a| a.id.as_str()), Some("a002"));
        assert_eq!(ana.last(), Some(("a001", Choice::Skip)));
        let rows = final_records(&log);
        // ana: a000 up (a001 skipped, a002 undone); bo: a000 down.
        assert_eq!(rows.len(), 2);
        assert!(rows[0].label && !rows[1].label);
        assert_eq!(
            rows_per_rater(&rows).into_iter().collect::<Vec<_>>(),
            [("ana".into(), 1), ("bo".into(), 1)]
        );
        assert!(rows[0].prompt.is_conversational());
    }

    #[test]
    fn names_are_plain() {
        assert!(check_rater_name("Ana B.").is_ok());
        for bad in ["", "   ", "../etc", "a\nb", &"x".repeat(41), "<script>"] {
            assert!(check_rater_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn forged_ids_find_nothing() {
        let pool = AnswerPool::new("m", [("q".to_string(), "a".to_string())]);
        assert!(pool.get("a000").is_some());
        for id in ["a0", "a1", "a-0", "../a000", "a0000", ""] {
            assert!(pool.get(id).is_none(), "{id}");
        }
    }
}

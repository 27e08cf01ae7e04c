//! Binary feedback: collecting thumbs up / thumbs down, and choosing between KTO and DPO.
//!
//! This module serves **lab 4** (collect binary feedback into a file a trainer can read) and
//! **lab 5** (decide between KTO and DPO from the data you have).
//!
//! | item | what it does |
//! |---|---|
//! | [`Record`], [`Text`], [`Message`] | one thumbs-up/down example in TRL's KTO format (plain or conversational) |
//! | [`PairedRecord`] | one (prompt, chosen, rejected) example in TRL's DPO format |
//! | [`Click`], [`Vote`], [`final_votes`] | a chat UI's clicks → one record per answer, its last vote |
//! | [`FeedbackStore`] | append / load / count / export feedback in a JSON Lines file |
//! | [`VoteLog`], [`RatedClick`], [`AnswerPool`], [`RaterProgress`], [`final_records`] | the rating page's click log (who, when, which answer) and the training rows it gives |
//! | [`Agreement`] | two raters (a person and the judge) on the same answers: agreement, Cohen's κ |
//! | [`unpair()`], [`read_paired`], [`unpair_file`] | paired DPO data → unpaired KTO data |
//! | [`advise`] | the KTO paper's weighting rule: λD·nD / (λU·nU) in [1, 4/3] |
//! | [`DECISION_GUIDE`], [`analyze`] | KTO or DPO? — a printable guide, and a report on a dataset file |
//! | [`FeedbackError`] | every error, naming the file, the line and the field |
//! | [`SEED_FEEDBACK`] | the seed notebook's feedback rows (labs 4 and 5, the tour) |
//!
//! ## Why a JSON Lines file?
//!
//! Feedback arrives one click at a time, from many places. JSON Lines (one JSON object per
//! line) makes recording a click a single **append** — no need to read, parse and rewrite a
//! whole document — and it is the format TRL and the 🤗 `datasets` library load directly.
//! Appends are whole lines under a file lock, so several processes can share one file; a line
//! torn by a crash is detected and set aside, never silently dropped or glued to the next one.
//!
//! ```no_run
//! use kto_lab::feedback::{FeedbackStore, Record};
//!
//! # fn main() -> Result<(), kto_lab::feedback::FeedbackError> {
//! let store = FeedbackStore::new("feedback.jsonl");
//! store.append(&Record::desirable("What is Python?", "A high-level programming language."))?;
//! store.append(&Record::undesirable("What is Python?", "A snake."))?;
//! println!("{}", store.stats()?); // 2 records: 1 desirable, 1 undesirable, ratio 1.00
//! store.export("kto_train.jsonl")?; // TRL's {"prompt","completion","label"} rows
//! # Ok(())
//! # }
//! ```

mod agreement;
mod clicks;
mod error;
mod guide;
mod imbalance;
mod jsonl;
mod record;
mod store;
mod unpair;
mod votes;

pub use agreement::Agreement;
pub use clicks::{Click, Vote};
// The graded exercises' answers: crate-private in the grader's build (`answer_key!`).
#[cfg(not(feature = "exam"))]
pub use clicks::final_votes;
#[cfg(feature = "exam")]
pub(crate) use clicks::final_votes;
pub use error::FeedbackError;
pub use guide::{analyze, DatasetFormat, GuideReport, Method, DECISION_GUIDE};
pub use imbalance::{ImbalanceAdvice, ImbalanceError, RECOMMENDED_RATIO};
// The graded exercises' answers: crate-private in the grader's build (`answer_key!`).
#[cfg(not(feature = "exam"))]
pub use imbalance::advise;
#[cfg(feature = "exam")]
pub(crate) use imbalance::advise;
pub use jsonl::TornTail;
pub use record::{Message, PairedRecord, Record, Role, Text};
pub use store::{Appended, Exported, FeedbackStore, Loaded, Stats, TailRepair};
pub use unpair::{read_paired, unpair, unpair_file};
pub use votes::{
    check_rater_name, distinct_answers, final_records, rows_per_rater, AnswerPool, Choice,
    LoadedClicks, PoolAnswer, RatedClick, RaterProgress, VoteLog, MAX_RATER_NAME,
};

/// The seed notebook's feedback rows, plus one prompt with two thumbs down: 9 rows,
/// 4 desirable, 5 undesirable.
pub const SEED_FEEDBACK: &[(&str, &str, bool)] = &[
    ("Explain machine learning.", "Machine learning is a subset of AI where computers learn patterns from data without explicit programming.", true),
    ("What's the capital of France?", "Paris is the capital of France.", true),
    ("How do I stay healthy?", "Eat balanced meals, exercise regularly, get enough sleep, and manage stress.", true),
    ("Explain machine learning.", "Its computers doing stuff.", false),
    ("What's the capital of France?", "I don't know.", false),
    ("How do I stay healthy?", "Just don't get sick lol", false),
    ("What is Python?", "Python is a high-level programming language known for its readability.", true),
    ("What is Python?", "A snake.", false),
    ("What is Python?", "Python is a language for snakes.", false),
];

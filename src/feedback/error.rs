//! The one error type of the feedback module.
//!
//! Every error about a line of a file names the file, the line (1-based, counting every
//! physical line, blank ones included — the number your editor shows) and, when one field is
//! at fault, that field. `Display` prints exactly that, e.g.
//!
//! ```text
//! feedback.jsonl:3: field "label": expected true or false, got "yes"
//! ```

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::imbalance::ImbalanceError;

/// Everything that can go wrong reading, writing or analysing feedback files.
///
/// The line-level variants all carry `path`, `line` and `field`; use [`FeedbackError::path`],
/// [`FeedbackError::line`] and [`FeedbackError::field`] to read them without matching.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FeedbackError {
    /// The operating system refused to read or write `path`.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file (or directory) involved.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },

    /// A line is not valid JSON at all (for example a truncated write or a stray comma).
    #[error("{}:{line}: not valid JSON: {message}", path.display())]
    InvalidJson {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// Always `None`: no field can be named in text that does not parse.
        field: Option<String>,
        /// serde_json's description, with the column.
        message: String,
    },

    /// A required field is absent.
    #[error("{}:{line}: missing field \"{}\"", path.display(), show(field))]
    MissingField {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// The missing field.
        field: Option<String>,
    },

    /// A field that the format does not have — usually a typo such as `"lable"`.
    #[error("{}:{line}: unknown field \"{}\" (expected one of: {allowed})", path.display(), show(field))]
    UnknownField {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// The field as written in the file.
        field: Option<String>,
        /// The fields this kind of row may have, comma-separated.
        allowed: String,
    },

    /// A field (or the whole line, when `field` is `None`) has the wrong JSON type.
    #[error("{}:{line}: {}expected {expected}, got {found}", path.display(), field_prefix(field))]
    WrongType {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// The field, e.g. `label` or `prompt[1].role`; `None` for the line itself.
        field: Option<String>,
        /// What was expected, in words.
        expected: String,
        /// The offending value, as (possibly shortened) JSON.
        found: String,
    },

    /// A field has the right type but a value the format forbids (an empty prompt, an
    /// unknown role, a completion whose form differs from the prompt's, ...).
    #[error("{}:{line}: {}{message}", path.display(), field_prefix(field))]
    InvalidValue {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// The field at fault.
        field: Option<String>,
        /// What is wrong with it.
        message: String,
    },

    /// A dataset mixes unpaired (KTO) and paired (DPO) rows.
    #[error(
        "{}:{line}: this is {found} but line {first_line} is {expected}: use one format per file",
        path.display()
    )]
    MixedFormats {
        /// The file.
        path: PathBuf,
        /// The 1-based line number of the first row in the other format.
        line: usize,
        /// Always `None`: the row as a whole is at fault.
        field: Option<String>,
        /// The line that fixed the file's format.
        first_line: usize,
        /// The format of `first_line`, in words ("an unpaired (KTO) row ...").
        expected: String,
        /// The format of `line`, in words.
        found: String,
    },

    /// A row that is neither an unpaired nor a paired row.
    #[error("{}:{line}: {message}", path.display())]
    UnrecognizedRow {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// Always `None`: the row as a whole is at fault.
        field: Option<String>,
        /// Why it could not be recognised.
        message: String,
    },

    /// A record handed to [`FeedbackStore::append`](super::FeedbackStore::append) breaks a rule of
    /// the format; nothing was written.
    #[error("{}: refusing to append: {message}", path.display())]
    InvalidRecord {
        /// The store's file.
        path: PathBuf,
        /// The field at fault.
        field: Option<String>,
        /// What is wrong with it (naming the field).
        message: String,
    },

    /// The file holds no records.
    #[error("{}: no records (the file is empty or has only blank lines)", path.display())]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },

    /// The file does not exist (counting or exporting a mistyped path must not report "0
    /// records").
    #[error("{}: no such file", path.display())]
    NotFound {
        /// The missing file.
        path: PathBuf,
    },

    /// The path is a directory, a device or a FIFO, not a regular file; nothing was read or
    /// written.
    #[error("{}: not a regular file (a directory, a device or a FIFO); a feedback store is a regular file", path.display())]
    NotARegularFile {
        /// The path.
        path: PathBuf,
    },

    /// An export or conversion would overwrite a file; nothing was written.
    #[error("{}: already exists; refusing to overwrite it (choose a new name or remove it first)", path.display())]
    AlreadyExists {
        /// The existing file, left untouched.
        path: PathBuf,
    },

    /// The imbalance advice could not be computed (one-class data or bad weights).
    #[error(transparent)]
    Imbalance(#[from] ImbalanceError),
}

impl FeedbackError {
    /// The file the error is about, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Io { path, .. }
            | Self::InvalidJson { path, .. }
            | Self::MissingField { path, .. }
            | Self::UnknownField { path, .. }
            | Self::WrongType { path, .. }
            | Self::InvalidValue { path, .. }
            | Self::MixedFormats { path, .. }
            | Self::UnrecognizedRow { path, .. }
            | Self::InvalidRecord { path, .. }
            | Self::EmptyFile { path }
            | Self::NotFound { path }
            | Self::NotARegularFile { path }
            | Self::AlreadyExists { path } => Some(path),
            Self::Imbalance(_) => None,
        }
    }

    /// The 1-based line number, for errors about one line of a file.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::InvalidJson { line, .. }
            | Self::MissingField { line, .. }
            | Self::UnknownField { line, .. }
            | Self::WrongType { line, .. }
            | Self::InvalidValue { line, .. }
            | Self::MixedFormats { line, .. }
            | Self::UnrecognizedRow { line, .. } => Some(*line),
            _ => None,
        }
    }

    /// The field at fault (e.g. `label` or `prompt[0].role`), when one is.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::InvalidJson { field, .. }
            | Self::MissingField { field, .. }
            | Self::UnknownField { field, .. }
            | Self::WrongType { field, .. }
            | Self::InvalidValue { field, .. }
            | Self::MixedFormats { field, .. }
            | Self::UnrecognizedRow { field, .. }
            | Self::InvalidRecord { field, .. } => field.as_deref(),
            _ => None,
        }
    }

    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

fn show(field: &Option<String>) -> &str {
    field.as_deref().unwrap_or("?")
}

fn field_prefix(field: &Option<String>) -> String {
    match field {
        Some(f) => format!("field \"{f}\": "),
        None => String::new(),
    }
}

/// A problem found in one JSON value, before we know which file and line it came from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Problem {
    Missing(String),
    Unknown {
        field: String,
        allowed: &'static str,
    },
    WrongType {
        field: Option<String>,
        expected: String,
        found: String,
    },
    Invalid {
        field: Option<String>,
        message: String,
    },
}

impl Problem {
    /// Pin the problem to `path:line`.
    pub(crate) fn at(self, path: &Path, line: usize) -> FeedbackError {
        let path = path.to_path_buf();
        match self {
            Problem::Missing(field) => FeedbackError::MissingField {
                path,
                line,
                field: Some(field),
            },
            Problem::Unknown { field, allowed } => FeedbackError::UnknownField {
                path,
                line,
                field: Some(field),
                allowed: allowed.to_string(),
            },
            Problem::WrongType {
                field,
                expected,
                found,
            } => FeedbackError::WrongType {
                path,
                line,
                field,
                expected,
                found,
            },
            Problem::Invalid { field, message } => FeedbackError::InvalidValue {
                path,
                line,
                field,
                message,
            },
        }
    }

    pub(crate) fn field(&self) -> Option<String> {
        match self {
            Problem::Missing(f) | Problem::Unknown { field: f, .. } => Some(f.clone()),
            Problem::WrongType { field, .. } | Problem::Invalid { field, .. } => field.clone(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing(field) => write!(f, "missing field \"{field}\""),
            Problem::Unknown { field, allowed } => {
                write!(f, "unknown field \"{field}\" (expected one of: {allowed})")
            }
            Problem::WrongType {
                field,
                expected,
                found,
            } => write!(f, "{}expected {expected}, got {found}", field_prefix(field)),
            Problem::Invalid { field, message } => write!(f, "{}{message}", field_prefix(field)),
        }
    }
}
